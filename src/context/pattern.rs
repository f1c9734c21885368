//! Glob patterns as Docker's patternmatcher reads them: `*` and `?` stay within one path
//! component, `**` spans components, `[...]` classes, `\` escapes.

/// Does `pattern` match the whole of `path` (both relative, `/`-separated, cleaned)?
pub fn glob_match(pattern: &str, path: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = path.chars().collect();
    match_from(&p, &s, &mut Failed::default())
}

/// (pattern suffix, path suffix) pairs, by length, already known not to match: every pair is
/// tried at most once, so a pattern like `**.*********a` cannot backtrack exponentially (found
/// by the dockerignore fuzz target: seconds for one 100-byte rule).
type Failed = std::collections::HashSet<(usize, usize)>;

fn match_from(p: &[char], s: &[char], failed: &mut Failed) -> bool {
    let key = (p.len(), s.len());
    if failed.contains(&key) {
        return false;
    }
    let matched = match_uncached(p, s, failed);
    if !matched {
        failed.insert(key);
    }
    matched
}

fn match_uncached(p: &[char], s: &[char], failed: &mut Failed) -> bool {
    let Some(&first) = p.first() else {
        return s.is_empty();
    };
    match first {
        '*' if p.get(1) == Some(&'*') => {
            let rest = &p[2..];
            if rest.first() == Some(&'/') {
                // `**/x` matches x at the top or below any directory.
                let after = &rest[1..];
                if match_from(after, s, failed) {
                    return true;
                }
                (0..s.len()).any(|i| s[i] == '/' && match_from(after, &s[i + 1..], failed))
            } else {
                (0..=s.len()).any(|i| match_from(rest, &s[i..], failed))
            }
        }
        '*' => {
            let rest = &p[1..];
            let mut i = 0;
            loop {
                if match_from(rest, &s[i..], failed) {
                    return true;
                }
                if i == s.len() || s[i] == '/' {
                    return false;
                }
                i += 1;
            }
        }
        '?' => !s.is_empty() && s[0] != '/' && match_from(&p[1..], &s[1..], failed),
        '[' => match match_class(p, s.first().copied()) {
            Some((true, consumed)) => match_from(&p[consumed..], &s[1..], failed),
            _ => false,
        },
        '\\' if p.len() > 1 => {
            !s.is_empty() && s[0] == p[1] && match_from(&p[2..], &s[1..], failed)
        }
        c => !s.is_empty() && s[0] == c && match_from(&p[1..], &s[1..], failed),
    }
}

/// Matches a `[...]` class at the start of `p` against `c`; returns (matched, pattern chars used).
fn match_class(p: &[char], c: Option<char>) -> Option<(bool, usize)> {
    let c = c.filter(|c| *c != '/')?;
    let mut i = 1;
    let negate = matches!(p.get(i), Some('^') | Some('!'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let ch = *p.get(i)?;
        if ch == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        let (lo, next) = if ch == '\\' {
            (*p.get(i + 1)?, i + 2)
        } else {
            (ch, i + 1)
        };
        if p.get(next) == Some(&'-') && p.get(next + 1).is_some_and(|e| *e != ']') {
            let hi_raw = *p.get(next + 1)?;
            let (hi, after) = if hi_raw == '\\' {
                (*p.get(next + 2)?, next + 3)
            } else {
                (hi_raw, next + 2)
            };
            matched |= lo <= c && c <= hi;
            i = after;
        } else {
            matched |= lo == c;
            i = next;
        }
    }
}

/// True when the text holds glob metacharacters (so a COPY source is a wildcard).
pub fn has_wildcards(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn many_stars_do_not_backtrack_exponentially() {
        // the rule the dockerignore fuzz target found taking seconds
        let pattern = format!("{}.enp.{}a", "*".repeat(34), "*".repeat(25));
        let path = format!("{}b", "x.enp.".repeat(8));
        // (before the fix this call did not return for minutes)
        assert!(!glob_match(&pattern, &path));
        assert!(glob_match(&pattern, &format!("{path}a")));
    }

    #[test]
    fn globs_match_like_docker() {
        let table = [
            ("*.txt", "a.txt", true),
            ("*.txt", "dir/a.txt", false),
            ("*/a.txt", "dir/a.txt", true),
            ("**/a.txt", "a.txt", true),
            ("**/a.txt", "x/y/a.txt", true),
            ("**/a.txt", "x/y/b.txt", false),
            ("**", "anything/at/all", true),
            ("dir/**", "dir/x/y", true),
            ("dir/**/z", "dir/z", true),
            ("dir/**/z", "dir/a/b/z", true),
            ("a?c", "abc", true),
            ("a?c", "a/c", false),
            ("[ab]x", "bx", true),
            ("[^ab]x", "bx", false),
            ("[a-c]x", "cx", true),
            ("[!a-c]x", "dx", true),
            ("\\*x", "*x", true),
            ("\\*x", "ax", false),
            ("file", "file", true),
            ("file", "file2", false),
            ("*", "", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY/c", false),
        ];
        for (pattern, path, want) in table {
            assert_eq!(glob_match(pattern, path), want, "{pattern} vs {path}");
        }
    }
}
