//! History strings as BuildKit's Dockerfile frontend writes them (`docker history` shows
//! these), and the Go-style formatting they rely on.

/// Go's `%q` of a `[]string`: `["a" "b"]`.
pub fn go_quoted_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// Go's `%v` of a `[]string`: `[a b]`.
pub fn go_plain_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// Go's strconv.Quote for the printable cases Dockerfiles hold.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `RUN` history: in-scope build args as `|N K=V ...` before the command, as BuildKit does.
pub fn run_created_by(args: &[String], build_args: &[(String, String)]) -> String {
    let mut parts: Vec<String> = Vec::new();
    if !build_args.is_empty() {
        parts.push(format!("|{}", build_args.len()));
        parts.extend(build_args.iter().map(|(k, v)| format!("{k}={v}")));
    }
    parts.extend(args.iter().cloned());
    format!("RUN {} # buildkit", parts.join(" "))
}

/// Go's `%v` of a `map[string]struct{}` of exposed ports: `map[80/tcp:{} 443/tcp:{}]`.
pub fn go_port_map<'a>(ports: impl Iterator<Item = &'a String>) -> String {
    let items: Vec<String> = ports.map(|p| format!("{p}:{{}}")).collect();
    format!("map[{}]", items.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_match_go() {
        let v = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            go_quoted_list(&v(&["/bin/sh", "-c", "echo \"hi\""])),
            r#"["/bin/sh" "-c" "echo \"hi\""]"#
        );
        assert_eq!(go_plain_list(&v(&["/bin/bash", "-c"])), "[/bin/bash -c]");
        assert_eq!(
            run_created_by(
                &v(&["/bin/sh", "-c", "echo $A"]),
                &[("A".into(), "1".into()), ("B".into(), "x y".into())]
            ),
            "RUN |2 A=1 B=x y /bin/sh -c echo $A # buildkit"
        );
        assert_eq!(
            run_created_by(&v(&["/bin/sh", "-c", "true"]), &[]),
            "RUN /bin/sh -c true # buildkit"
        );
        let ports = ["443/tcp".to_string(), "80/tcp".to_string()];
        assert_eq!(go_port_map(ports.iter()), "map[443/tcp:{} 80/tcp:{}]");
    }
}
