//! Word expansion with BuildKit's shell-lexer semantics (`shell/lex.go`, `ProcessWord`).
//!
//! Quotes are removed, the escape character escapes the next character, and `$V`, `${V}` and
//! the `${V<op>word}` forms are substituted. Pattern operators (`#`, `##`, `%`, `%%`, `/`, `//`)
//! take shell glob patterns (`*`, `?`, `[...]`); quoted or escaped pattern characters match
//! literally, as in bash.

use thiserror::Error;

/// The result of expanding one word.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expansion {
    /// The expanded word, quotes and escapes removed.
    pub value: String,
    /// Variable names looked up, in order of appearance, without duplicates.
    pub referenced: Vec<String>,
    /// The referenced names that were unset.
    pub unset: Vec<String>,
}

/// A word could not be expanded (bad syntax, or `${V?message}` with V unset).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("failed to process {word:?}: {message}")]
pub struct ExpandError {
    /// The word as given to [`expand_word`].
    pub word: String,
    /// What went wrong.
    pub message: ExpandFailure,
}

/// What is wrong with a word, worded as BuildKit's shell lexer words it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ExpandFailure {
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    #[error("substitutions nested more than {MAX_NESTING} deep")]
    TooDeep,
    #[error("unexpected end of statement while looking for matching {0}")]
    Unterminated(char),
    #[error("unexpected end of statement while looking for matching {0}")]
    UnterminatedQuote(&'static str),
    #[error("unsupported modifier ({0}) in substitution")]
    UnsupportedModifier(String),
    /// `${V?message}` / `${V:?message}`: the message, or what is wrong with V.
    #[error("{name}: {message}")]
    Required { name: String, message: String },
}

/// Expands `word` (see the module documentation). `lookup` returns a variable's value, or
/// `None` when it is unset.
pub fn expand_word(
    word: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Expansion, ExpandError> {
    let mut lexer = Lexer {
        chars: word.chars().collect(),
        pos: 0,
        escape,
        lookup,
        referenced: Vec::new(),
        unset: Vec::new(),
        depth: 0,
    };
    match lexer.process_stop_on(&[]) {
        Ok((pieces, _)) => Ok(Expansion {
            value: pieces_to_string(&pieces),
            referenced: lexer.referenced,
            unset: lexer.unset,
        }),
        Err(message) => Err(ExpandError {
            word: word.to_string(),
            message,
        }),
    }
}

/// One output character and whether it was quoted or escaped (matters only in patterns).
type Piece = (char, bool);

fn pieces_to_string(pieces: &[Piece]) -> String {
    pieces.iter().map(|(c, _)| *c).collect()
}

fn unquoted(s: &str) -> Vec<Piece> {
    s.chars().map(|c| (c, false)).collect()
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    referenced: Vec<String>,
    unset: Vec<String>,
    /// How deeply substitutions and quotes are nested here: each level recurses, so a
    /// hostile word (`${a:-${a:-...}}` thousands deep) would overflow the stack.
    depth: usize,
}

/// The deepest nesting a word may have; far beyond any real Dockerfile.
const MAX_NESTING: usize = 128;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Default,
    Alternative,
    Required,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        let value = (self.lookup)(name);
        if !self.referenced.iter().any(|n| n == name) {
            self.referenced.push(name.to_string());
        }
        if value.is_none() && !self.unset.iter().any(|n| n == name) {
            self.unset.push(name.to_string());
        }
        value
    }

    /// Processes until the end of input (`stops` empty) or an unquoted, unescaped character in
    /// `stops`, which is consumed and returned.
    fn process_stop_on(
        &mut self,
        stops: &[char],
    ) -> Result<(Vec<Piece>, Option<char>), ExpandFailure> {
        if self.depth >= MAX_NESTING {
            return Err(ExpandFailure::TooDeep);
        }
        self.depth += 1;
        let result = self.process_stop_on_inner(stops);
        self.depth -= 1;
        result
    }

    fn process_stop_on_inner(
        &mut self,
        stops: &[char],
    ) -> Result<(Vec<Piece>, Option<char>), ExpandFailure> {
        let mut out = Vec::new();
        while let Some(c) = self.peek() {
            if stops.contains(&c) {
                self.pos += 1;
                return Ok((out, Some(c)));
            }
            match c {
                '\'' => out.extend(self.single_quote()?),
                '"' => out.extend(self.double_quote()?),
                '$' => out.extend(self.dollar()?),
                _ => {
                    self.pos += 1;
                    if c == self.escape {
                        match self.next() {
                            Some(e) => out.push((e, true)),
                            // An escape at the very end is dropped.
                            None => break,
                        }
                    } else {
                        out.push((c, false));
                    }
                }
            }
        }
        match stops.first() {
            Some(stop) => Err(ExpandFailure::Unterminated(*stop)),
            None => Ok((out, None)),
        }
    }

    fn single_quote(&mut self) -> Result<Vec<Piece>, ExpandFailure> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.next() {
                None => return Err(ExpandFailure::UnterminatedQuote("single-quote")),
                Some('\'') => return Ok(out),
                Some(c) => out.push((c, true)),
            }
        }
    }

    fn double_quote(&mut self) -> Result<Vec<Piece>, ExpandFailure> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(ExpandFailure::UnterminatedQuote("double-quote")),
                Some('"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some('$') => {
                    let value = self.dollar()?;
                    out.extend(value.into_iter().map(|(c, _)| (c, true)));
                }
                Some(c) => {
                    self.pos += 1;
                    if c == self.escape {
                        match self.peek() {
                            // An escape right before the end: dropped, then the loop reports the
                            // missing closing quote.
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.escape => {
                                self.pos += 1;
                                out.push((n, true));
                                continue;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push((c, true));
                }
            }
        }
    }

    /// Reads a variable name: letters, digits and `_`; or a run of digits; or one special
    /// parameter character (`@ * # ? - $ ! 0`), as BuildKit does.
    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && c.is_ascii_digit() {
                while let Some(d) = self.peek().filter(|d| d.is_ascii_digit()) {
                    name.push(d);
                    self.pos += 1;
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!') {
                self.pos += 1;
                name.push(c);
                return name;
            }
            if !(c.is_alphanumeric() || c == '_') {
                break;
            }
            self.pos += 1;
            name.push(c);
        }
        name
    }

    fn dollar(&mut self) -> Result<Vec<Piece>, ExpandFailure> {
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok(vec![('$', false)]);
            }
            let value = self.get_env(&name).unwrap_or_default();
            return Ok(unquoted(&value));
        }
        self.pos += 1;
        match self.peek() {
            None => return Err(ExpandFailure::MissingBrace),
            Some('{' | '}' | ':') => return Err(ExpandFailure::BadSubstitution),
            Some(_) => {}
        }
        let name = self.process_name();
        let Some(ch) = self.next() else {
            return Err(ExpandFailure::MissingBrace);
        };
        if name.is_empty() {
            return Err(ExpandFailure::BadSubstitution);
        }
        match ch {
            '}' => {
                let value = self.get_env(&name).unwrap_or_default();
                Ok(unquoted(&value))
            }
            ':' => match self.next() {
                None => Err(ExpandFailure::MissingBrace),
                Some('-') => self.modifier(&name, Op::Default, true),
                Some('+') => self.modifier(&name, Op::Alternative, true),
                Some('?') => self.modifier(&name, Op::Required, true),
                Some(c @ ('#' | '%')) => self.trim(&name, c),
                Some(c) => {
                    // Consume the rest so that a missing '}' is reported as such.
                    self.word_until_brace()?;
                    Err(ExpandFailure::UnsupportedModifier(format!(":{c}")))
                }
            },
            '-' => self.modifier(&name, Op::Default, false),
            '+' => self.modifier(&name, Op::Alternative, false),
            '?' => self.modifier(&name, Op::Required, false),
            '#' | '%' => self.trim(&name, ch),
            '/' => self.replace(&name),
            c => {
                self.word_until_brace()?;
                Err(ExpandFailure::UnsupportedModifier(c.to_string()))
            }
        }
    }

    /// The word up to the closing `}` (consumed).
    fn word_until_brace(&mut self) -> Result<Vec<Piece>, ExpandFailure> {
        match self.process_stop_on(&['}']) {
            Ok((word, _)) => Ok(word),
            Err(_) if self.peek().is_none() => Err(ExpandFailure::MissingBrace),
            Err(e) => Err(e),
        }
    }

    fn modifier(
        &mut self,
        name: &str,
        op: Op,
        null_is_unset: bool,
    ) -> Result<Vec<Piece>, ExpandFailure> {
        let value = self.get_env(name);
        let word = self.word_until_brace()?;
        let empty = match &value {
            None => true,
            Some(v) => null_is_unset && v.is_empty(),
        };
        match op {
            Op::Default => Ok(if empty {
                word
            } else {
                unquoted(value.as_deref().unwrap_or(""))
            }),
            Op::Alternative => Ok(if empty { Vec::new() } else { word }),
            Op::Required => {
                let message = pieces_to_string(&word);
                match value {
                    None => Err(ExpandFailure::Required {
                        name: name.to_string(),
                        message: if message.is_empty() {
                            "is not allowed to be unset".to_string()
                        } else {
                            message
                        },
                    }),
                    Some(v) if v.is_empty() && null_is_unset => Err(ExpandFailure::Required {
                        name: name.to_string(),
                        message: if message.is_empty() {
                            "is not allowed to be empty".to_string()
                        } else {
                            message
                        },
                    }),
                    Some(v) => Ok(unquoted(&v)),
                }
            }
        }
    }

    fn trim(&mut self, name: &str, op: char) -> Result<Vec<Piece>, ExpandFailure> {
        let longest = if self.peek() == Some(op) {
            self.pos += 1;
            true
        } else {
            false
        };
        let value = self.get_env(name).unwrap_or_default();
        let pattern = compile_pattern(&self.word_until_brace()?);
        let chars: Vec<char> = value.chars().collect();
        let n = chars.len();
        let result: &[char] = if op == '#' {
            let lengths = match_lengths(&pattern, chars.iter().copied());
            let pick = if longest {
                lengths.last()
            } else {
                lengths.first()
            };
            &chars[pick.copied().unwrap_or(0)..]
        } else {
            // Match the reversed pattern against the reversed value to find suffixes.
            let reversed: Vec<Tok> = pattern.iter().rev().cloned().collect();
            let lengths = match_lengths(&reversed, chars.iter().rev().copied());
            let pick = if longest {
                lengths.last()
            } else {
                lengths.first()
            };
            &chars[..n - pick.copied().unwrap_or(0)]
        };
        Ok(result.iter().map(|c| (*c, false)).collect())
    }

    fn replace(&mut self, name: &str) -> Result<Vec<Piece>, ExpandFailure> {
        let all = if self.peek() == Some('/') {
            self.pos += 1;
            true
        } else {
            false
        };
        let value = self.get_env(name).unwrap_or_default();
        let (pattern, stop) = match self.process_stop_on(&['/', '}']) {
            Ok(r) => r,
            Err(_) if self.peek().is_none() => return Err(ExpandFailure::MissingBrace),
            Err(e) => return Err(e),
        };
        // `${V/pattern}` (no replacement) deletes the match, as in bash.
        let replacement = if stop == Some('/') {
            self.word_until_brace()?
        } else {
            Vec::new()
        };
        let pattern = compile_pattern(&pattern);
        let chars: Vec<char> = value.chars().collect();
        let n = chars.len();
        let mut out: Vec<Piece> = Vec::new();
        let mut i = 0;
        let mut replaced = false;
        while i < n {
            let found = if replaced && !all {
                None
            } else {
                let (lengths, read_to_end) = scan_matches(&pattern, chars[i..].iter().copied());
                let found = lengths.last().filter(|&&len| len > 0).map(|len| i + len);
                if found.is_none() && read_to_end {
                    // The pattern was alive to the end of the value and still found nothing:
                    // no later start can match either (a later match would have been one from
                    // here). Stopping keeps `${a//*b/x}` linear on a long value.
                    out.extend(chars[i..].iter().map(|&c| (c, false)));
                    break;
                }
                found
            };
            match found {
                Some(end) => {
                    out.extend(replacement.iter().copied());
                    i = end;
                    replaced = true;
                }
                None => {
                    out.push((chars[i], false));
                    i += 1;
                }
            }
        }
        Ok(out)
    }
}

/// A compiled glob token.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Char(char),
    Any,
    Star,
    Class {
        negated: bool,
        items: Vec<ClassItem>,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum ClassItem {
    Char(char),
    Range(char, char),
    Named(String),
}

impl Tok {
    fn matches(&self, c: char) -> bool {
        match self {
            Tok::Char(p) => *p == c,
            Tok::Any => true,
            Tok::Star => false,
            Tok::Class { negated, items } => {
                let hit = items.iter().any(|item| match item {
                    ClassItem::Char(p) => *p == c,
                    ClassItem::Range(a, b) => *a <= c && c <= *b,
                    ClassItem::Named(name) => named_class(name, c),
                });
                hit != *negated
            }
        }
    }
}

fn named_class(name: &str, c: char) -> bool {
    match name {
        "alpha" => c.is_alphabetic(),
        "digit" => c.is_ascii_digit(),
        "alnum" => c.is_alphanumeric(),
        "upper" => c.is_uppercase(),
        "lower" => c.is_lowercase(),
        "space" => c.is_whitespace(),
        "blank" => c == ' ' || c == '\t',
        "punct" => c.is_ascii_punctuation(),
        "xdigit" => c.is_ascii_hexdigit(),
        "cntrl" => c.is_control(),
        "print" => !c.is_control(),
        "graph" => !c.is_control() && !c.is_whitespace(),
        "word" => c.is_alphanumeric() || c == '_',
        _ => false,
    }
}

/// Turns pattern pieces into glob tokens; quoted/escaped pieces are literal.
fn compile_pattern(pieces: &[Piece]) -> Vec<Tok> {
    let mut toks = Vec::new();
    let mut i = 0;
    while i < pieces.len() {
        let (c, literal) = pieces[i];
        if literal {
            toks.push(Tok::Char(c));
            i += 1;
            continue;
        }
        match c {
            '*' => {
                if toks.last() != Some(&Tok::Star) {
                    toks.push(Tok::Star);
                }
                i += 1;
            }
            '?' => {
                toks.push(Tok::Any);
                i += 1;
            }
            '[' => match parse_class(pieces, i + 1) {
                Some((tok, next)) => {
                    toks.push(tok);
                    i = next;
                }
                None => {
                    toks.push(Tok::Char('['));
                    i += 1;
                }
            },
            _ => {
                toks.push(Tok::Char(c));
                i += 1;
            }
        }
    }
    toks
}

/// Parses a bracket expression whose body starts at `start`; returns the token and the index
/// after the closing `]`, or `None` when there is no closing `]`.
fn parse_class(pieces: &[Piece], start: usize) -> Option<(Tok, usize)> {
    let mut i = start;
    let mut negated = false;
    if let Some(&(c, false)) = pieces.get(i) {
        if c == '!' || c == '^' {
            negated = true;
            i += 1;
        }
    }
    let mut items = Vec::new();
    let mut first = true;
    loop {
        let &(c, literal) = pieces.get(i)?;
        if c == ']' && !literal && !first {
            return Some((Tok::Class { negated, items }, i + 1));
        }
        first = false;
        if c == '[' && !literal && matches!(pieces.get(i + 1), Some((':', false))) {
            // [:name:]
            let mut j = i + 2;
            let mut name = String::new();
            let mut closed = false;
            while let Some(&(d, _)) = pieces.get(j) {
                if d == ':' && matches!(pieces.get(j + 1), Some((']', _))) {
                    closed = true;
                    break;
                }
                name.push(d);
                j += 1;
            }
            if closed {
                items.push(ClassItem::Named(name));
                i = j + 2;
                continue;
            }
        }
        if let (Some(&('-', false)), Some(&(hi, hi_lit))) = (pieces.get(i + 1), pieces.get(i + 2)) {
            if hi != ']' || hi_lit {
                items.push(ClassItem::Range(c, hi));
                i += 3;
                continue;
            }
        }
        items.push(ClassItem::Char(c));
        i += 1;
    }
}

/// The lengths `k` (ascending) for which `pattern` matches the first `k` characters of `text`,
/// by simulating the pattern as an automaton: O(len(text) * len(pattern)).
fn match_lengths(pattern: &[Tok], text: impl Iterator<Item = char>) -> Vec<usize> {
    scan_matches(pattern, text).0
}

/// [`match_lengths`], and whether the pattern was still alive when the text ran out (it read
/// all of it) rather than dying on a character.
fn scan_matches(pattern: &[Tok], text: impl Iterator<Item = char>) -> (Vec<usize>, bool) {
    let m = pattern.len();
    // A star can match nothing: a state on a star also activates the next state.
    let close = |states: &mut Vec<bool>| {
        for p in 0..m {
            if states[p] && pattern[p] == Tok::Star {
                states[p + 1] = true;
            }
        }
    };
    let mut states = vec![false; m + 1];
    states[0] = true;
    close(&mut states);
    let mut lengths = Vec::new();
    if states[m] {
        lengths.push(0);
    }
    for (i, c) in text.enumerate() {
        let mut next = vec![false; m + 1];
        for p in 0..m {
            if !states[p] {
                continue;
            }
            match &pattern[p] {
                Tok::Star => next[p] = true,
                tok if tok.matches(c) => next[p + 1] = true,
                _ => {}
            }
        }
        close(&mut next);
        if !next.iter().any(|&s| s) {
            return (lengths, false);
        }
        if next[m] {
            lengths.push(i + 1);
        }
        states = next;
    }
    (lengths, true)
}

/// Whole-string glob match.
#[cfg(test)]
fn glob_match(pattern: &[Tok], text: &[char]) -> bool {
    match_lengths(pattern, text.iter().copied()).last() == Some(&text.len())
}

#[cfg(test)]
mod tests;
