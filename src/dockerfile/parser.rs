//! Dockerfile parser: source text to [`Dockerfile`], following BuildKit's
//! `parser/parser.go` (lines, continuations, heredocs, directives) and
//! `instructions/parse.go` (per-instruction validation).

use thiserror::Error;

use super::ast::*;
use super::flags::{CopyFlags, FlagError, RunFlags};
use super::lexer::{
    extract_flags, is_space, parse_directive, parse_heredoc_word, parse_json_array, parse_words,
    split_command, split_lines, split_whitespace, trim_continuation, JsonForm, JSON_NOT_STRINGS,
    WS_SEP,
};

/// A fatal parse error, located at an instruction (or directive) of the Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// 1-based line (the first line of the instruction).
    pub line: usize,
    /// 1-based column (of the instruction keyword), 1 when not meaningful.
    pub column: usize,
    pub message: String,
}

impl ParseError {
    fn new(line: usize, column: usize, message: impl Into<String>) -> Self {
        ParseError {
            line,
            column,
            message: message.into(),
        }
    }
}

/// An instruction after line joining, before validation.
struct RawNode {
    line: usize,
    end_line: usize,
    column: usize,
    /// Joined text, trimmed.
    original: String,
    heredocs: Vec<Heredoc>,
    /// The comment lines right above it (no blank line between), `#` removed.
    comments: Vec<String>,
}

/// Parses a Dockerfile. Pure: no I/O.
/// How many times [`parse`] ran in this process (a build parses its Dockerfile once, whatever
/// the number of platforms; RBUILD_TIMINGS=1 shows it).
static PARSES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

pub fn parse_count() -> usize {
    PARSES.load(std::sync::atomic::Ordering::Relaxed)
}

pub fn parse(source: &str) -> Result<Dockerfile, ParseError> {
    PARSES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let lines = split_lines(source);
    let mut directives = Directives::default();
    let mut warnings = Vec::new();
    let mut nodes = Vec::new();
    let mut directives_done = false;
    let mut seen_directives: Vec<String> = Vec::new();
    let mut comments: Vec<String> = Vec::new();

    let mut i = 0;
    while i < lines.len() {
        let raw = lines[i];
        let lineno = i + 1;
        i += 1;
        let trimmed = raw.trim_start_matches(is_space);
        if !directives_done {
            match parse_directive(trimmed) {
                Some((key, value)) if matches!(key.as_str(), "syntax" | "escape" | "check") => {
                    if seen_directives.contains(&key) {
                        return Err(ParseError::new(
                            lineno,
                            1,
                            format!("only one {key} parser directive can be used"),
                        ));
                    }
                    seen_directives.push(key.clone());
                    apply_directive(&key, value, lineno, &mut directives, &mut warnings)?;
                    continue;
                }
                _ => directives_done = true,
            }
        }
        if trimmed.is_empty() {
            comments.clear();
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            comments.push(comment.trim().to_string());
            continue;
        }
        let escape = directives.escape;
        let (original, empty_continuation) = join_continuations(&lines, &mut i, trimmed, escape);
        if let Some(at) = empty_continuation {
            warnings.push(Warning {
                line: at,
                message: format!("Empty continuation line found in: {original}"),
            });
        }
        let mut node = RawNode {
            line: lineno,
            end_line: i,
            column: raw.chars().count() - trimmed.chars().count() + 1,
            original,
            heredocs: Vec::new(),
            comments: std::mem::take(&mut comments),
        };
        if may_have_heredocs(&node.original) {
            read_heredocs(&lines, &mut i, &mut node, escape)?;
        }
        nodes.push(node);
    }
    if nodes.is_empty() {
        return Err(ParseError::new(1, 1, "the Dockerfile has no instructions"));
    }
    Ok(Dockerfile {
        instructions: convert_all(nodes, directives.escape)?,
        directives,
        warnings,
    })
}

/// `# escape=`, `# syntax=`, `# check=`.
fn apply_directive(
    key: &str,
    value: String,
    lineno: usize,
    directives: &mut Directives,
    warnings: &mut Vec<Warning>,
) -> Result<(), ParseError> {
    match key {
        "escape" => {
            directives.escape = match value.as_str() {
                "\\" => '\\',
                "`" => '`',
                _ => {
                    return Err(ParseError::new(
                        lineno,
                        1,
                        format!("invalid escape token '{value}' does not match ` or \\"),
                    ))
                }
            }
        }
        "syntax" => {
            if !is_dockerfile_frontend(&value) {
                warnings.push(Warning {
                    line: lineno,
                    message: format!(
                        "syntax directive names frontend {value:?}, which is not the \
                         Dockerfile frontend; parsing as a plain Dockerfile"
                    ),
                });
            }
            directives.syntax = Some(value);
        }
        _ => directives.check = Some(value),
    }
    Ok(())
}

/// The instruction that starts with `first` (trimmed) and goes on over continuation lines
/// (comment lines among them skipped); `*i` moves past them. Also the line of the first
/// empty continuation line, which BuildKit warns about.
fn join_continuations(
    lines: &[&str],
    i: &mut usize,
    first: &str,
    escape: char,
) -> (String, Option<usize>) {
    let (text, mut end_of_line) = trim_continuation(first, escape);
    let mut line = text.to_string();
    let mut empty_continuation: Option<usize> = None;
    while !end_of_line && *i < lines.len() {
        let cont = lines[*i];
        *i += 1;
        let cont_trimmed = cont.trim_start_matches(is_space);
        if cont_trimmed.starts_with('#') {
            continue;
        }
        if cont_trimmed.is_empty() {
            empty_continuation.get_or_insert(*i);
            continue;
        }
        let (text, eol) = trim_continuation(cont, escape);
        line.push_str(text);
        end_of_line = eol;
    }
    (line.trim_matches(is_space).to_string(), empty_continuation)
}

/// The bodies of the heredocs `node` opens, read from the lines after it (`*i` moves past
/// them).
fn read_heredocs(
    lines: &[&str],
    i: &mut usize,
    node: &mut RawNode,
    escape: char,
) -> Result<(), ParseError> {
    for marker in heredoc_markers(&node.original, escape) {
        let mut content = String::new();
        let mut terminated = false;
        while *i < lines.len() {
            let l = lines[*i];
            *i += 1;
            let candidate = if marker.strip_tabs {
                l.trim_start_matches('\t')
            } else {
                l
            };
            if candidate == marker.name {
                terminated = true;
                break;
            }
            content.push_str(if marker.strip_tabs { candidate } else { l });
            content.push('\n');
        }
        if !terminated {
            return Err(ParseError::new(
                node.line,
                node.column,
                format!("unterminated heredoc: {}", marker.name),
            ));
        }
        node.heredocs.push(Heredoc {
            name: marker.name,
            content,
            expand: marker.expand,
            strip_tabs: marker.strip_tabs,
        });
    }
    node.end_line = *i;
    Ok(())
}

/// Every node converted, with only ARG allowed before the first FROM.
fn convert_all(nodes: Vec<RawNode>, escape: char) -> Result<Vec<Instruction>, ParseError> {
    let mut instructions = Vec::with_capacity(nodes.len());
    let mut seen_from = false;
    for node in nodes {
        let (line, column) = (node.line, node.column);
        let inst = convert(node, escape)?;
        match inst.kind {
            InstructionKind::From { .. } => seen_from = true,
            InstructionKind::Arg(_) => {}
            ref other if !seen_from => {
                return Err(ParseError::new(
                    line,
                    column,
                    format!(
                        "no build stage in current context: {} before the first FROM (only ARG \
                         may precede FROM)",
                        other.keyword()
                    ),
                ));
            }
            _ => {}
        }
        instructions.push(inst);
    }
    Ok(instructions)
}

/// Whether `# syntax=` names the Dockerfile frontend (`[docker.io/]docker/dockerfile[:tag][@digest]`,
/// also `dockerfile-upstream`).
fn is_dockerfile_frontend(value: &str) -> bool {
    let v = value.strip_prefix("docker.io/").unwrap_or(value);
    ["docker/dockerfile-upstream", "docker/dockerfile"]
        .iter()
        .any(|base| {
            v.strip_prefix(base).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with(':') || rest.starts_with('@')
            })
        })
}

/// Whether the instruction can carry heredocs: RUN, COPY, ADD (also under ONBUILD), not in JSON
/// form, and `<<` somewhere.
fn may_have_heredocs(original: &str) -> bool {
    if !original.contains("<<") {
        return false;
    }
    let (mut keyword, mut rest) = split_command(original);
    if keyword.eq_ignore_ascii_case("onbuild") {
        let (k, r) = split_command(rest);
        keyword = k;
        rest = r;
    }
    if !["run", "copy", "add"]
        .iter()
        .any(|k| keyword.eq_ignore_ascii_case(k))
    {
        return false;
    }
    let (args, _) = extract_flags(rest);
    !matches!(parse_json_array(&args), JsonForm::Strings(_))
}

fn heredoc_markers(line: &str, escape: char) -> Vec<super::lexer::HeredocMarker> {
    parse_words(line, escape)
        .iter()
        .filter_map(|w| parse_heredoc_word(w, escape))
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FlagKind {
    Bool,
    String,
    Strings,
}

const FROM_FLAGS: &[(&str, FlagKind)] = &[("platform", FlagKind::String)];
const RUN_FLAGS: &[(&str, FlagKind)] = &[
    ("mount", FlagKind::Strings),
    ("network", FlagKind::String),
    ("security", FlagKind::String),
];
const COPY_FLAGS: &[(&str, FlagKind)] = &[
    ("from", FlagKind::String),
    ("chown", FlagKind::String),
    ("chmod", FlagKind::String),
    ("link", FlagKind::Bool),
    ("parents", FlagKind::Bool),
    ("exclude", FlagKind::Strings),
];
const ADD_FLAGS: &[(&str, FlagKind)] = &[
    ("chown", FlagKind::String),
    ("chmod", FlagKind::String),
    ("link", FlagKind::Bool),
    ("keep-git-dir", FlagKind::Bool),
    ("checksum", FlagKind::String),
    ("exclude", FlagKind::Strings),
    ("unpack", FlagKind::Bool),
];
const HEALTHCHECK_FLAGS: &[(&str, FlagKind)] = &[
    ("interval", FlagKind::String),
    ("timeout", FlagKind::String),
    ("start-period", FlagKind::String),
    ("start-interval", FlagKind::String),
    ("retries", FlagKind::String),
];

/// BuildKit's `BFlags.Parse` over the flag words of one instruction.
fn parse_flags(words: &[String], spec: &[(&str, FlagKind)]) -> Result<Vec<Flag>, FlagError> {
    let mut flags: Vec<Flag> = Vec::new();
    for word in words {
        let Some(arg) = word.strip_prefix("--") else {
            return Err(FlagError::NotAFlag(word.clone()));
        };
        let (name, value) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (arg, None),
        };
        let Some(&(_, kind)) = spec.iter().find(|(n, _)| *n == name) else {
            return Err(FlagError::Unknown(name.to_string()));
        };
        if kind != FlagKind::Strings && flags.iter().any(|f| f.name == name) {
            return Err(FlagError::Duplicate(name.to_string()));
        }
        match kind {
            FlagKind::Bool => match value {
                None => {}
                Some("") => return Err(FlagError::MissingValue(name.to_string())),
                Some(v) if v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false") => {}
                Some(v) => {
                    return Err(FlagError::NotBoolean {
                        name: name.to_string(),
                        value: v.to_string(),
                    })
                }
            },
            FlagKind::String | FlagKind::Strings => {
                if value.is_none() {
                    return Err(FlagError::MissingValue(name.to_string()));
                }
            }
        }
        flags.push(Flag {
            name: name.to_string(),
            value: value.map(str::to_string),
        });
    }
    Ok(flags)
}

fn at_least_one(keyword: &str) -> String {
    format!("{keyword} requires at least one argument")
}

fn exactly_one(keyword: &str) -> String {
    format!("{keyword} requires exactly one argument")
}

/// Validates one instruction and builds its syntax node.
fn convert(node: RawNode, escape: char) -> Result<Instruction, ParseError> {
    let RawNode {
        line,
        end_line,
        column,
        original,
        heredocs,
        comments,
    } = node;
    let (keyword, rest) = split_command(&original);
    let (args, flag_words) = extract_flags(rest);
    let mut ins = Converting {
        kw: keyword.to_ascii_uppercase(),
        args: args.trim_matches(is_space).to_string(),
        flag_words,
        heredocs,
        escape,
        line,
        end_line,
        column,
        original: &original,
    };
    let kind = match ins.kw.as_str() {
        "FROM" => ins.from()?,
        "RUN" => ins.run()?,
        "CMD" | "ENTRYPOINT" => ins.cmd_or_entrypoint()?,
        "SHELL" => ins.shell()?,
        "COPY" | "ADD" => ins.copy_or_add()?,
        "ENV" | "LABEL" => ins.env_or_label()?,
        "ARG" => ins.arg()?,
        "WORKDIR" | "USER" | "STOPSIGNAL" | "MAINTAINER" => ins.single()?,
        "EXPOSE" => ins.expose()?,
        "VOLUME" => ins.volume()?,
        "HEALTHCHECK" => ins.healthcheck()?,
        "ONBUILD" => ins.onbuild()?,
        _ => return Err(ins.err(format!("unknown instruction: {}", ins.kw))),
    };
    Ok(Instruction {
        span: Span {
            line,
            end_line,
            column,
        },
        original,
        kind,
        comments,
    })
}

/// One instruction being validated into its syntax node: its keyword (upper case), its
/// arguments and flag words as written.
struct Converting<'a> {
    kw: String,
    args: String,
    flag_words: Vec<String>,
    heredocs: Vec<Heredoc>,
    escape: char,
    line: usize,
    end_line: usize,
    column: usize,
    original: &'a str,
}

impl Converting<'_> {
    fn err(&self, message: impl Into<String>) -> ParseError {
        ParseError::new(self.line, self.column, message)
    }

    /// The flag words, checked against what the instruction takes.
    fn flags(&self, spec: &[(&str, FlagKind)]) -> Result<Vec<Flag>, ParseError> {
        parse_flags(&self.flag_words, spec).map_err(|e| self.err(e.to_string()))
    }

    /// The arguments in JSON (exec) form, when they are.
    fn json(&self) -> Result<Option<Vec<String>>, ParseError> {
        match parse_json_array(&self.args) {
            JsonForm::NotStrings => Err(self.err(JSON_NOT_STRINGS)),
            JsonForm::Strings(v) => Ok(Some(v)),
            JsonForm::NotJson => Ok(None),
        }
    }

    fn from(&mut self) -> Result<InstructionKind, ParseError> {
        let words = split_whitespace(&self.args);
        let alias = match words.len() {
            3 if words[1].eq_ignore_ascii_case("as") => {
                let name = words[2].to_lowercase();
                if !is_valid_stage_name(&name) {
                    return Err(self.err(format!(
                        "invalid name for build stage: {:?}, name can't start with a number \
                         or contain symbols",
                        words[2]
                    )));
                }
                Some(name)
            }
            1 => None,
            _ => return Err(self.err("FROM requires either one or three arguments")),
        };
        Ok(InstructionKind::From {
            flags: self.flags(FROM_FLAGS)?,
            image: words[0].clone(),
            alias,
        })
    }

    fn run(&mut self) -> Result<InstructionKind, ParseError> {
        let json = self.json()?;
        let flags = self.flags(RUN_FLAGS)?;
        let command = match json {
            Some(v) if v.is_empty() => return Err(self.err(at_least_one("RUN"))),
            Some(v) => Command::Exec(v),
            None if self.args.is_empty() => return Err(self.err(at_least_one("RUN"))),
            None => Command::Shell(self.args.clone()),
        };
        let flags = RunFlags::read(&flags).map_err(|e| self.err(e.to_string()))?;
        Ok(InstructionKind::Run {
            flags,
            command,
            heredocs: std::mem::take(&mut self.heredocs),
        })
    }

    fn cmd_or_entrypoint(&mut self) -> Result<InstructionKind, ParseError> {
        let json = self.json()?;
        self.flags(&[])?;
        // A bare CMD or ENTRYPOINT is the shell form of nothing (`/bin/sh -c ""`), as
        // BuildKit takes it (conformance case cmd-008-no-argument).
        let command = match json {
            Some(v) => Command::Exec(v),
            None => Command::Shell(self.args.clone()),
        };
        Ok(if self.kw == "CMD" {
            InstructionKind::Cmd(command)
        } else {
            InstructionKind::Entrypoint(command)
        })
    }

    fn shell(&mut self) -> Result<InstructionKind, ParseError> {
        let json = self.json()?;
        self.flags(&[])?;
        match json {
            Some(v) if !v.is_empty() => Ok(InstructionKind::Shell(v)),
            Some(_) => Err(self.err(at_least_one("SHELL"))),
            None if self.args.is_empty() => Err(self.err(at_least_one("SHELL"))),
            None => Err(self.err("SHELL requires the arguments to be in JSON form")),
        }
    }

    fn copy_or_add(&mut self) -> Result<InstructionKind, ParseError> {
        let kw = self.kw.clone();
        let json = self.json()?;
        let json_form = json.is_some();
        let mut words = match json {
            Some(v) => v,
            None => split_whitespace(&self.args),
        };
        if words.len() < 2 {
            return Err(self.err(format!(
                "{kw} requires at least two arguments, but only one was provided. \
                 Destination could not be determined"
            )));
        }
        let flags = self.flags(if kw == "COPY" { COPY_FLAGS } else { ADD_FLAGS })?;
        let flags = CopyFlags::read(&flags).map_err(|e| self.err(e.to_string()))?;
        let dest = words.pop().unwrap_or_default();
        if !json_form && parse_heredoc_word(&dest, self.escape).is_some() {
            return Err(self.err(format!("{kw} cannot accept a heredoc as a destination")));
        }
        let sources = words
            .into_iter()
            .map(|w| match (json_form, parse_heredoc_word(&w, self.escape)) {
                (false, Some(m)) => format!("<<{}", m.name),
                _ => w,
            })
            .collect();
        let copy = CopyArgs {
            flags,
            sources,
            dest,
            heredocs: std::mem::take(&mut self.heredocs),
            json_form,
        };
        Ok(if kw == "COPY" {
            InstructionKind::Copy(copy)
        } else {
            InstructionKind::Add(copy)
        })
    }

    fn env_or_label(&mut self) -> Result<InstructionKind, ParseError> {
        let (pairs, legacy_form) = parse_name_val(&self.args, &self.kw, self.escape)
            .map_err(|e| self.err(e.to_string()))?;
        self.flags(&[])?;
        if pairs.is_empty() {
            return Err(self.err(at_least_one(&self.kw)));
        }
        if pairs.iter().any(|(k, _)| k.is_empty()) {
            return Err(self.err(format!("{} names can not be blank", self.kw)));
        }
        Ok(if self.kw == "ENV" {
            InstructionKind::Env { pairs, legacy_form }
        } else {
            InstructionKind::Label(pairs)
        })
    }

    fn arg(&mut self) -> Result<InstructionKind, ParseError> {
        self.flags(&[])?;
        let words = parse_words(&self.args, self.escape);
        if words.is_empty() {
            return Err(self.err(at_least_one("ARG")));
        }
        let mut decls = Vec::with_capacity(words.len());
        for w in words {
            decls.push(match w.split_once('=') {
                Some(("", _)) => return Err(self.err("ARG names can not be blank")),
                Some((k, v)) => ArgDecl {
                    name: k.to_string(),
                    default: Some(v.to_string()),
                },
                None => ArgDecl {
                    name: w,
                    default: None,
                },
            });
        }
        Ok(InstructionKind::Arg(decls))
    }

    /// WORKDIR, USER, STOPSIGNAL, MAINTAINER: the rest of the line is the one argument.
    fn single(&mut self) -> Result<InstructionKind, ParseError> {
        if self.args.is_empty() {
            return Err(self.err(exactly_one(&self.kw)));
        }
        self.flags(&[])?;
        let arg = self.args.clone();
        Ok(match self.kw.as_str() {
            "WORKDIR" => InstructionKind::Workdir(arg),
            "USER" => InstructionKind::User(arg),
            "STOPSIGNAL" => InstructionKind::StopSignal(arg),
            _ => InstructionKind::Maintainer(arg),
        })
    }

    fn expose(&mut self) -> Result<InstructionKind, ParseError> {
        let words = split_whitespace(&self.args);
        if words.is_empty() {
            return Err(self.err(at_least_one("EXPOSE")));
        }
        self.flags(&[])?;
        Ok(InstructionKind::Expose(words))
    }

    fn volume(&mut self) -> Result<InstructionKind, ParseError> {
        let words = match self.json()? {
            Some(v) => v,
            None => split_whitespace(&self.args),
        };
        if words.is_empty() {
            return Err(self.err(at_least_one("VOLUME")));
        }
        self.flags(&[])?;
        if words.iter().any(|w| w.trim().is_empty()) {
            return Err(self.err("VOLUME specified can not be an empty string"));
        }
        Ok(InstructionKind::Volume(
            words.into_iter().map(|w| w.trim().to_string()).collect(),
        ))
    }

    fn healthcheck(&mut self) -> Result<InstructionKind, ParseError> {
        let args = &self.args;
        if args.is_empty() {
            return Err(self.err(at_least_one("HEALTHCHECK")));
        }
        let (typ, cmd_text) = match args.find(is_space) {
            Some(i) => (&args[..i], args[i..].trim_start_matches(is_space)),
            None => (args.as_str(), ""),
        };
        let typ = typ.to_ascii_uppercase();
        if typ == "NONE" {
            if !cmd_text.is_empty() || !self.flag_words.is_empty() {
                return Err(self.err("HEALTHCHECK NONE takes no arguments"));
            }
            return Ok(InstructionKind::Healthcheck(Healthcheck::Disable));
        }
        let json = match parse_json_array(cmd_text) {
            JsonForm::NotStrings => return Err(self.err(JSON_NOT_STRINGS)),
            JsonForm::Strings(v) => Some(v),
            JsonForm::NotJson => None,
        };
        let flags = self.flags(HEALTHCHECK_FLAGS)?;
        if typ != "CMD" {
            return Err(self.err(format!("Unknown type {typ:?} in HEALTHCHECK (try CMD)")));
        }
        let command = match json {
            Some(v) if !v.is_empty() => Command::Exec(v),
            None if !cmd_text.trim().is_empty() => {
                Command::Shell(cmd_text.trim_matches(is_space).to_string())
            }
            _ => return Err(self.err("Missing command after HEALTHCHECK CMD")),
        };
        Ok(InstructionKind::Healthcheck(Healthcheck::Check {
            flags,
            command,
        }))
    }

    fn onbuild(&mut self) -> Result<InstructionKind, ParseError> {
        if self.args.is_empty() {
            return Err(self.err(at_least_one("ONBUILD")));
        }
        self.flags(&[])?;
        let (trigger, _) = split_command(&self.args);
        let trigger = trigger.to_ascii_uppercase();
        match trigger.as_str() {
            "ONBUILD" => {
                return Err(self.err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"))
            }
            "MAINTAINER" | "FROM" => {
                return Err(self.err(format!("{trigger} isn't allowed as an ONBUILD trigger")))
            }
            _ => {}
        }
        // Column of the trigger keyword: the ONBUILD column plus its offset in the text.
        let offset = self.original.find(self.args.as_str()).unwrap_or(0);
        let nested = RawNode {
            line: self.line,
            end_line: self.end_line,
            column: self.column + self.original[..offset].chars().count(),
            original: self.args.clone(),
            heredocs: std::mem::take(&mut self.heredocs),
            comments: Vec::new(),
        };
        Ok(InstructionKind::Onbuild(Box::new(convert(
            nested,
            self.escape,
        )?)))
    }
}

/// `^[a-z][a-z0-9-_.]*$`
fn is_valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

/// What is wrong with the pairs of an ENV or LABEL, worded as BuildKit words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum NameValError {
    #[error("{keyword} must have two arguments")]
    TwoArguments { keyword: String },
    #[error("Syntax error - can't find = in {word:?}. Must be of the form: name=value")]
    NoEquals { word: String },
}

/// BuildKit's `parseNameVal` for ENV and LABEL: `k=v ...` pairs, or the legacy `k v` form.
/// Returns the pairs and whether the legacy form was used.
fn parse_name_val(
    rest: &str,
    keyword: &str,
    escape: char,
) -> Result<(Vec<(String, String)>, bool), NameValError> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok((Vec::new(), false));
    };
    if !first.contains('=') {
        let rest = rest.trim_matches(is_space);
        return match rest.find(WS_SEP) {
            Some(i) => {
                let value = rest[i..].trim_start_matches(WS_SEP);
                Ok((vec![(rest[..i].to_string(), value.to_string())], true))
            }
            None => Err(NameValError::TwoArguments {
                keyword: keyword.to_string(),
            }),
        };
    }
    let mut pairs = Vec::with_capacity(words.len());
    for word in &words {
        match word.split_once('=') {
            Some((k, v)) => pairs.push((k.to_string(), v.to_string())),
            None => return Err(NameValError::NoEquals { word: word.clone() }),
        }
    }
    Ok((pairs, false))
}

#[cfg(test)]
mod tests;
