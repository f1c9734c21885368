//! Values of the metadata instructions checked and written as BuildKit writes them:
//! EXPOSE ports, STOPSIGNAL signals, HEALTHCHECK durations and tests.

use super::history::go_quoted_list;
use super::Stage;
use crate::dockerfile::{Command, Healthcheck};

/// A value a metadata instruction cannot take, worded as docker words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum ValueError {
    #[error("invalid proto: {0}")]
    Protocol(String),
    #[error("invalid containerPort: {0}")]
    Port(String),
    #[error("invalid range specified for container port: {0}")]
    PortRange(String),
    #[error("invalid signal: {0}")]
    Signal(String),
    #[error("empty duration")]
    EmptyDuration,
    #[error("invalid duration {0:?}")]
    Duration(String),
    #[error("--{0} cannot be less than 1ms")]
    TooShort(String),
    #[error("invalid --retries value {0:?}")]
    Retries(String),
    #[error("--retries cannot be negative")]
    NegativeRetries,
    #[error("unknown flag: --{0}")]
    UnknownFlag(String),
}

/// `80`, `80/udp`, `8000-8002/tcp` -> `80/tcp`, ... as docker's nat.ParsePortSpecs.
pub(super) fn parse_port(spec: &str) -> Result<Vec<String>, ValueError> {
    let (range, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(ValueError::Protocol(proto));
    }
    let parse = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| ValueError::Port(spec.to_string()))
    };
    let (start, end) = match range.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => (parse(range)?, parse(range)?),
    };
    if end < start {
        return Err(ValueError::PortRange(spec.to_string()));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

pub(super) const SIGNALS: [&str; 31] = [
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
    "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
    "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
];

pub(super) fn validate_signal(signal: &str) -> Result<(), ValueError> {
    if let Ok(n) = signal.parse::<u32>() {
        return if (1..=64).contains(&n) {
            Ok(())
        } else {
            Err(ValueError::Signal(signal.to_string()))
        };
    }
    let name = signal.strip_prefix("SIG").unwrap_or(signal);
    let realtime = name.starts_with("RTMIN") || name.starts_with("RTMAX");
    if SIGNALS.contains(&name) || realtime {
        Ok(())
    } else {
        Err(ValueError::Signal(signal.to_string()))
    }
}

/// Go duration text (`30s`, `1m30s`, `500ms`) -> nanoseconds.
pub(super) fn parse_duration(text: &str) -> Result<i64, ValueError> {
    let mut total: f64 = 0.0;
    let mut rest = text;
    if rest.is_empty() {
        return Err(ValueError::EmptyDuration);
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..number_len]
            .parse()
            .map_err(|_| ValueError::Duration(text.to_string()))?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(ValueError::Duration(text.to_string())),
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Ok(total as i64)
}

/// Go's time.Duration String().
pub(super) fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let secs = ns as f64 / 1e9;
    if ns < 1_000_000_000 {
        return if ns % 1_000_000 == 0 {
            format!("{}ms", ns / 1_000_000)
        } else {
            format!("{secs}s")
        };
    }
    let h = ns / 3_600_000_000_000;
    let m = (ns / 60_000_000_000) % 60;
    let s = (ns % 60_000_000_000) as f64 / 1e9;
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{s}s"));
    out
}

pub(super) fn healthcheck(
    stage: &Stage,
    check: &Healthcheck,
) -> Result<(serde_json::Value, String), ValueError> {
    let (flags, command) = match check {
        Healthcheck::Disable => {
            let value = serde_json::json!({"Test": ["NONE"]});
            return Ok((
                value,
                "&{[\"NONE\"] \"0s\" \"0s\" \"0s\" \"0s\" '\\x00'}".into(),
            ));
        }
        Healthcheck::Check { flags, command } => (flags, command),
    };
    let test: Vec<String> = match command {
        Command::Exec(args) => std::iter::once("CMD".to_string())
            .chain(args.iter().cloned())
            .collect(),
        Command::Shell(text) => vec!["CMD-SHELL".to_string(), text.clone()],
    };
    let _ = stage;
    let mut durations = [0i64; 4];
    let names = ["interval", "timeout", "start-period", "start-interval"];
    let mut retries: i64 = 0;
    for flag in flags {
        let value = flag.value.as_deref().unwrap_or("");
        if let Some(i) = names.iter().position(|n| *n == flag.name) {
            let ns = parse_duration(value)?;
            if ns != 0 && ns < 1_000_000 {
                return Err(ValueError::TooShort(flag.name.clone()));
            }
            durations[i] = ns;
        } else if flag.name == "retries" {
            retries = value
                .parse()
                .map_err(|_| ValueError::Retries(value.to_string()))?;
            if retries < 0 {
                return Err(ValueError::NegativeRetries);
            }
        } else {
            return Err(ValueError::UnknownFlag(flag.name.clone()));
        }
    }
    let mut value = serde_json::Map::new();
    value.insert("Test".into(), serde_json::json!(test));
    for (key, ns) in ["Interval", "Timeout", "StartPeriod", "StartInterval"]
        .iter()
        .zip(durations)
    {
        if ns != 0 {
            value.insert((*key).into(), serde_json::json!(ns));
        }
    }
    if retries != 0 {
        value.insert("Retries".into(), serde_json::json!(retries));
    }
    let text = format!(
        "&{{{} {} {} {} {} '\\x{:02x}'}}",
        go_quoted_list(&test),
        super::history::go_quote(&go_duration(durations[0])),
        super::history::go_quote(&go_duration(durations[1])),
        super::history::go_quote(&go_duration(durations[2])),
        super::history::go_quote(&go_duration(durations[3])),
        retries
    );
    Ok((serde_json::Value::Object(value), text))
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // fixtures the tests create
mod tests {
    use super::*;

    #[test]
    fn ports_parse_like_docker() {
        assert_eq!(parse_port("80").expect("port"), ["80/tcp"]);
        assert_eq!(parse_port("53/udp").expect("port"), ["53/udp"]);
        assert_eq!(
            parse_port("8000-8002").expect("range"),
            ["8000/tcp", "8001/tcp", "8002/tcp"]
        );
        assert!(parse_port("http").is_err());
        assert!(parse_port("80/xyz").is_err());
        assert!(parse_port("9-1").is_err());
    }

    #[test]
    fn signals_and_durations() {
        for ok in ["SIGTERM", "TERM", "9", "SIGRTMIN+3", "KILL"] {
            assert!(validate_signal(ok).is_ok(), "{ok}");
        }
        for bad in ["SIGFOO", "0", "65", ""] {
            assert!(validate_signal(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_duration("30s"), Ok(30_000_000_000));
        assert_eq!(parse_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_duration("500ms"), Ok(500_000_000));
        assert!(parse_duration("5 minutes").is_err());
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(300_000_000_000), "5m0s");
        assert_eq!(go_duration(3_000_000_000), "3s");
        assert_eq!(go_duration(0), "0s");
    }
}
