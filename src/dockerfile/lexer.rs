//! Line- and word-level helpers of the Dockerfile parser, after BuildKit's `parser.go`,
//! `line_parsers.go` and `directives.go`.

/// Go's `unicode.IsSpace` (close enough: Rust's `char::is_whitespace`).
pub(super) fn is_space(c: char) -> bool {
    c.is_whitespace()
}

/// BuildKit's `reWhitespace` (`[\t\v\f\r ]+`).
pub(super) const WS_SEP: [char; 5] = ['\t', '\u{0b}', '\u{0c}', '\r', ' '];

fn is_ws_sep(c: char) -> bool {
    WS_SEP.contains(&c)
}

/// RE2's `\s` (`[\t\n\f\r ]`).
fn is_re_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\u{0c}' | '\r' | ' ')
}

/// Splits the source into lines (`\n` or `\r\n`), without the line terminators. A final
/// terminator does not start an extra line. A UTF-8 byte-order mark is removed.
pub(super) fn split_lines(source: &str) -> Vec<&str> {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let mut lines: Vec<&str> = source.split('\n').collect();
    if source.ends_with('\n') || source.is_empty() {
        lines.pop();
    }
    lines
        .into_iter()
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect()
}

/// Matches a parser directive line (`#\s*key\s*=\s*value\s*`), leading whitespace already
/// removed. Returns the lower-cased key and the value.
pub(super) fn parse_directive(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix('#')?.trim_start_matches(is_re_space);
    let mut chars = rest.char_indices();
    match chars.next() {
        Some((_, c)) if c.is_ascii_alphabetic() => {}
        _ => return None,
    }
    let key_end = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    let key = &rest[..key_end];
    let after = rest[key_end..].trim_start_matches(is_re_space);
    let value = after.strip_prefix('=')?.trim_matches(is_re_space);
    if value.is_empty() {
        return None;
    }
    Some((key.to_ascii_lowercase(), value.to_string()))
}

/// If the line ends with the escape character (then optional spaces/tabs), returns the line
/// without them and `false` ("not the end of the instruction"); otherwise the line and `true`.
pub(super) fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    match trimmed.strip_suffix(escape) {
        Some(rest) => (rest, false),
        None => (line, true),
    }
}

/// Splits off the keyword: `(keyword, rest)`, both trimmed.
pub(super) fn split_command(line: &str) -> (&str, &str) {
    let line = line.trim_matches(is_space);
    match line.find(is_ws_sep) {
        Some(i) => (&line[..i], line[i..].trim_matches(is_space)),
        None => (line, ""),
    }
}

/// BuildKit's `extractBuilderFlags`: leading `--flag` words (quotes removed, `\` escapes
/// processed) and the rest of the line. A lone `--` ends the flags.
pub(super) fn extract_flags(line: &str) -> (String, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    while pos <= chars.len() {
        let at_end = pos == chars.len();
        let ch = chars.get(pos).map(|&(_, c)| c).unwrap_or('\0');
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if is_space(ch) {
                pos += 1;
                continue;
            }
            let next_is_dash = matches!(chars.get(pos + 1), Some(&(_, '-')));
            if ch != '-' || !next_is_dash {
                return (line[chars[pos].0..].to_string(), words);
            }
            phase = Phase::Word;
        }
        if at_end {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if is_space(ch) {
                phase = Phase::Spaces;
                if word == "--" {
                    return (
                        line[chars[pos].0..]
                            .trim_start_matches(is_space)
                            .to_string(),
                        words,
                    );
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
            let mut c = ch;
            if c == '\\' {
                if pos + 1 == chars.len() {
                    pos += 1;
                    continue;
                }
                pos += 1;
                c = chars[pos].1;
            }
            word.push(c);
            pos += 1;
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        let mut c = ch;
        if c == '\\' {
            if pos + 1 == chars.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            c = chars[pos].1;
        }
        word.push(c);
        pos += 1;
    }
    (String::new(), words)
}

/// BuildKit's `parseWords`: splits on unquoted whitespace, keeping quotes and escapes in the
/// words. An escape character at the very end is dropped.
pub(super) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    while pos <= chars.len() {
        let at_end = pos == chars.len();
        let mut ch = chars.get(pos).copied().unwrap_or('\0');
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if is_space(ch) {
                pos += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if at_end {
            if blank_ok || !word.is_empty() {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if is_space(ch) {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if pos + 1 == chars.len() {
                    pos += 1;
                    continue;
                }
                word.push(ch);
                pos += 1;
                ch = chars[pos];
            }
            word.push(ch);
            pos += 1;
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            if pos + 1 == chars.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            word.push(ch);
            pos += 1;
            ch = chars[pos];
        }
        word.push(ch);
        pos += 1;
    }
    words
}

/// BuildKit's `parseStringsWhitespaceDelimited`: split on spaces/tabs, no quote handling.
pub(super) fn split_whitespace(rest: &str) -> Vec<String> {
    rest.split(is_ws_sep)
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Outcome of trying the JSON (exec) form on an instruction's arguments.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum JsonForm {
    /// Not a JSON array: shell form.
    NotJson,
    /// A JSON array of strings.
    Strings(Vec<String>),
    /// A JSON array with a non-string element: an error in BuildKit.
    NotStrings,
}

pub(super) const JSON_NOT_STRINGS: &str =
    "when using JSON array syntax, arrays must be comprised of strings only";

pub(super) fn parse_json_array(rest: &str) -> JsonForm {
    let rest = rest.trim_start_matches(is_space);
    if !rest.starts_with('[') {
        return JsonForm::NotJson;
    }
    match serde_json::from_str::<serde_json::Value>(rest) {
        Ok(serde_json::Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    serde_json::Value::String(s) => out.push(s),
                    _ => return JsonForm::NotStrings,
                }
            }
            JsonForm::Strings(out)
        }
        _ => JsonForm::NotJson,
    }
}

/// A heredoc marker word (`<<EOF`, `<<-"EOF"`, `3<<EOF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HeredocMarker {
    pub name: String,
    pub expand: bool,
    pub strip_tabs: bool,
}

/// Recognises a heredoc marker word (BuildKit's `^(\d*)<<(-?)([^<]*)$`). The delimiter has its
/// quotes and escapes removed; `expand` is false when any part of it was quoted or escaped.
pub(super) fn parse_heredoc_word(word: &str, escape: char) -> Option<HeredocMarker> {
    let after_fd = word.trim_start_matches(|c: char| c.is_ascii_digit());
    let rest = after_fd.strip_prefix("<<")?;
    let (strip_tabs, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let mut name = String::new();
    let mut quoted = false;
    let mut quote: Option<char> = None;
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => quote = None,
            Some('"') if c == escape => {
                quoted = true;
                match chars.next() {
                    Some(n) if n == '"' || n == '$' || n == escape => name.push(n),
                    Some(n) => {
                        name.push(c);
                        name.push(n);
                    }
                    None => return None,
                }
            }
            Some(_) => name.push(c),
            None if c == '\'' || c == '"' => {
                quoted = true;
                quote = Some(c);
            }
            None if c == escape => {
                quoted = true;
                name.push(chars.next()?);
            }
            None if is_space(c) => return None,
            None => name.push(c),
        }
    }
    if quote.is_some() || name.is_empty() {
        return None;
    }
    Some(HeredocMarker {
        name,
        expand: !quoted,
        strip_tabs,
    })
}

#[cfg(test)]
mod tests;
