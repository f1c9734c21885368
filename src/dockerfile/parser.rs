//! Dockerfile parser: source text to [`Dockerfile`], following BuildKit's
//! `parser/parser.go` (lines, continuations, heredocs, directives) and
//! `instructions/parse.go` (per-instruction validation).

use thiserror::Error;

use super::ast::*;
use super::flags::FlagError;
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
                    match key.as_str() {
                        "escape" => {
                            directives.escape = match value.as_str() {
                                "\\" => '\\',
                                "`" => '`',
                                _ => {
                                    return Err(ParseError::new(
                                        lineno,
                                        1,
                                        format!(
                                            "invalid escape token '{value}' does not match ` or \\"
                                        ),
                                    ))
                                }
                            }
                        }
                        "syntax" => {
                            if !is_dockerfile_frontend(&value) {
                                warnings.push(Warning {
                                    line: lineno,
                                    message: format!(
                                        "syntax directive names frontend {value:?}, which is not \
                                         the Dockerfile frontend; parsing as a plain Dockerfile"
                                    ),
                                });
                            }
                            directives.syntax = Some(value);
                        }
                        _ => directives.check = Some(value),
                    }
                    continue;
                }
                _ => directives_done = true,
            }
        }

        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }

        let escape = directives.escape;
        let column = raw.chars().count() - trimmed.chars().count() + 1;
        let (first, mut end_of_line) = trim_continuation(trimmed, escape);
        let mut line = first.to_string();
        let mut empty_continuation: Option<usize> = None;
        while !end_of_line && i < lines.len() {
            let cont = lines[i];
            i += 1;
            let cont_trimmed = cont.trim_start_matches(is_space);
            if cont_trimmed.starts_with('#') {
                continue;
            }
            if cont_trimmed.is_empty() {
                empty_continuation.get_or_insert(i);
                continue;
            }
            let (text, eol) = trim_continuation(cont, escape);
            line.push_str(text);
            end_of_line = eol;
        }
        let original = line.trim_matches(is_space).to_string();
        if let Some(at) = empty_continuation {
            warnings.push(Warning {
                line: at,
                message: format!("Empty continuation line found in: {original}"),
            });
        }

        let mut node = RawNode {
            line: lineno,
            end_line: i,
            column,
            original,
            heredocs: Vec::new(),
        };
        if may_have_heredocs(&node.original) {
            for marker in heredoc_markers(&node.original, escape) {
                let mut body: Vec<&str> = Vec::new();
                let mut terminated = false;
                while i < lines.len() {
                    let l = lines[i];
                    i += 1;
                    let candidate = if marker.strip_tabs {
                        l.trim_start_matches('\t')
                    } else {
                        l
                    };
                    if candidate == marker.name {
                        terminated = true;
                        break;
                    }
                    body.push(if marker.strip_tabs { candidate } else { l });
                }
                if !terminated {
                    return Err(ParseError::new(
                        node.line,
                        node.column,
                        format!("unterminated heredoc: {}", marker.name),
                    ));
                }
                let mut content = String::new();
                for b in body {
                    content.push_str(b);
                    content.push('\n');
                }
                node.heredocs.push(Heredoc {
                    name: marker.name,
                    content,
                    expand: marker.expand,
                    strip_tabs: marker.strip_tabs,
                });
            }
            node.end_line = i;
        }
        nodes.push(node);
    }

    if nodes.is_empty() {
        return Err(ParseError::new(1, 1, "the Dockerfile has no instructions"));
    }

    let escape = directives.escape;
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

    Ok(Dockerfile {
        directives,
        instructions,
        warnings,
    })
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
    } = node;
    let err = |message: String| ParseError::new(line, column, message);
    let span = Span {
        line,
        end_line,
        column,
    };
    let (keyword, rest) = split_command(&original);
    let (args, flag_words) = extract_flags(rest);
    let args = args.trim_matches(is_space).to_string();
    let kw = keyword.to_ascii_uppercase();
    let flags_for =
        |spec: &[(&str, FlagKind)]| parse_flags(&flag_words, spec).map_err(|e| err(e.to_string()));
    let json = || match parse_json_array(&args) {
        JsonForm::NotStrings => Err(err(JSON_NOT_STRINGS.to_string())),
        JsonForm::Strings(v) => Ok(Some(v)),
        JsonForm::NotJson => Ok(None),
    };

    let kind = match kw.as_str() {
        "FROM" => {
            let words = split_whitespace(&args);
            let alias = match words.len() {
                3 if words[1].eq_ignore_ascii_case("as") => {
                    let name = words[2].to_lowercase();
                    if !is_valid_stage_name(&name) {
                        return Err(err(format!(
                            "invalid name for build stage: {:?}, name can't start with a number \
                             or contain symbols",
                            words[2]
                        )));
                    }
                    Some(name)
                }
                1 => None,
                _ => {
                    return Err(err(
                        "FROM requires either one or three arguments".to_string()
                    ))
                }
            };
            let flags = flags_for(FROM_FLAGS)?;
            InstructionKind::From {
                flags,
                image: words[0].clone(),
                alias,
            }
        }
        "RUN" => {
            let json = json()?;
            let flags = flags_for(RUN_FLAGS)?;
            let command = match json {
                Some(v) if v.is_empty() => return Err(err(at_least_one("RUN"))),
                Some(v) => Command::Exec(v),
                None if args.is_empty() => return Err(err(at_least_one("RUN"))),
                None => Command::Shell(args),
            };
            InstructionKind::Run {
                flags,
                command,
                heredocs,
            }
        }
        "CMD" | "ENTRYPOINT" => {
            let json = json()?;
            flags_for(&[])?;
            let command = match json {
                Some(v) => Command::Exec(v),
                None if args.is_empty() => return Err(err(at_least_one(&kw))),
                None => Command::Shell(args),
            };
            if kw == "CMD" {
                InstructionKind::Cmd(command)
            } else {
                InstructionKind::Entrypoint(command)
            }
        }
        "SHELL" => {
            let json = json()?;
            flags_for(&[])?;
            match json {
                Some(v) if !v.is_empty() => InstructionKind::Shell(v),
                Some(_) => return Err(err(at_least_one("SHELL"))),
                None if args.is_empty() => return Err(err(at_least_one("SHELL"))),
                None => {
                    return Err(err(
                        "SHELL requires the arguments to be in JSON form".to_string()
                    ))
                }
            }
        }
        "COPY" | "ADD" => {
            let json = json()?;
            let json_form = json.is_some();
            let mut words = match json {
                Some(v) => v,
                None => split_whitespace(&args),
            };
            if words.len() < 2 {
                return Err(err(format!(
                    "{kw} requires at least two arguments, but only one was provided. \
                     Destination could not be determined"
                )));
            }
            let flags = flags_for(if kw == "COPY" { COPY_FLAGS } else { ADD_FLAGS })?;
            let dest = words.pop().unwrap_or_default();
            if !json_form && parse_heredoc_word(&dest, escape).is_some() {
                return Err(err(format!(
                    "{kw} cannot accept a heredoc as a destination"
                )));
            }
            let sources = words
                .into_iter()
                .map(|w| match (json_form, parse_heredoc_word(&w, escape)) {
                    (false, Some(m)) => format!("<<{}", m.name),
                    _ => w,
                })
                .collect();
            let copy = CopyArgs {
                flags,
                sources,
                dest,
                heredocs,
                json_form,
            };
            if kw == "COPY" {
                InstructionKind::Copy(copy)
            } else {
                InstructionKind::Add(copy)
            }
        }
        "ENV" | "LABEL" => {
            let (pairs, legacy_form) =
                parse_name_val(&args, &kw, escape).map_err(|e| err(e.to_string()))?;
            flags_for(&[])?;
            if pairs.is_empty() {
                return Err(err(at_least_one(&kw)));
            }
            if pairs.iter().any(|(k, _)| k.is_empty()) {
                return Err(err(format!("{kw} names can not be blank")));
            }
            if kw == "ENV" {
                InstructionKind::Env { pairs, legacy_form }
            } else {
                InstructionKind::Label(pairs)
            }
        }
        "ARG" => {
            flags_for(&[])?;
            let words = parse_words(&args, escape);
            if words.is_empty() {
                return Err(err(at_least_one("ARG")));
            }
            let mut decls = Vec::with_capacity(words.len());
            for w in words {
                let decl = match w.split_once('=') {
                    Some(("", _)) => return Err(err("ARG names can not be blank".to_string())),
                    Some((k, v)) => ArgDecl {
                        name: k.to_string(),
                        default: Some(v.to_string()),
                    },
                    None => ArgDecl {
                        name: w,
                        default: None,
                    },
                };
                decls.push(decl);
            }
            InstructionKind::Arg(decls)
        }
        "WORKDIR" | "USER" | "STOPSIGNAL" | "MAINTAINER" => {
            if args.is_empty() {
                return Err(err(exactly_one(&kw)));
            }
            flags_for(&[])?;
            match kw.as_str() {
                "WORKDIR" => InstructionKind::Workdir(args),
                "USER" => InstructionKind::User(args),
                "STOPSIGNAL" => InstructionKind::StopSignal(args),
                _ => InstructionKind::Maintainer(args),
            }
        }
        "EXPOSE" => {
            let words = split_whitespace(&args);
            if words.is_empty() {
                return Err(err(at_least_one("EXPOSE")));
            }
            flags_for(&[])?;
            InstructionKind::Expose(words)
        }
        "VOLUME" => {
            let words = match json()? {
                Some(v) => v,
                None => split_whitespace(&args),
            };
            if words.is_empty() {
                return Err(err(at_least_one("VOLUME")));
            }
            flags_for(&[])?;
            if words.iter().any(|w| w.trim().is_empty()) {
                return Err(err(
                    "VOLUME specified can not be an empty string".to_string()
                ));
            }
            InstructionKind::Volume(words.into_iter().map(|w| w.trim().to_string()).collect())
        }
        "HEALTHCHECK" => {
            if args.is_empty() {
                return Err(err(at_least_one("HEALTHCHECK")));
            }
            let (typ, cmd_text) = match args.find(is_space) {
                Some(i) => (&args[..i], args[i..].trim_start_matches(is_space)),
                None => (args.as_str(), ""),
            };
            let typ = typ.to_ascii_uppercase();
            if typ == "NONE" {
                if !cmd_text.is_empty() || !flag_words.is_empty() {
                    return Err(err("HEALTHCHECK NONE takes no arguments".to_string()));
                }
                InstructionKind::Healthcheck(Healthcheck::Disable)
            } else {
                let json = match parse_json_array(cmd_text) {
                    JsonForm::NotStrings => return Err(err(JSON_NOT_STRINGS.to_string())),
                    JsonForm::Strings(v) => Some(v),
                    JsonForm::NotJson => None,
                };
                let flags = flags_for(HEALTHCHECK_FLAGS)?;
                if typ != "CMD" {
                    let shown = &args[..args.find(is_space).unwrap_or(args.len())];
                    return Err(err(format!(
                        "Unknown type {:?} in HEALTHCHECK (try CMD)",
                        shown.to_ascii_uppercase()
                    )));
                }
                let command = match json {
                    Some(v) if !v.is_empty() => Command::Exec(v),
                    None if !cmd_text.trim().is_empty() => {
                        Command::Shell(cmd_text.trim_matches(is_space).to_string())
                    }
                    _ => return Err(err("Missing command after HEALTHCHECK CMD".to_string())),
                };
                InstructionKind::Healthcheck(Healthcheck::Check { flags, command })
            }
        }
        "ONBUILD" => {
            if args.is_empty() {
                return Err(err(at_least_one("ONBUILD")));
            }
            flags_for(&[])?;
            let (trigger, _) = split_command(&args);
            let trigger = trigger.to_ascii_uppercase();
            match trigger.as_str() {
                "ONBUILD" => {
                    return Err(err(
                        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".to_string()
                    ))
                }
                "MAINTAINER" | "FROM" => {
                    return Err(err(format!(
                        "{trigger} isn't allowed as an ONBUILD trigger"
                    )))
                }
                _ => {}
            }
            // Column of the trigger keyword: the ONBUILD column plus its offset in the text.
            let offset = original.find(args.as_str()).unwrap_or(0);
            let nested = RawNode {
                line,
                end_line,
                column: column + original[..offset].chars().count(),
                original: args.clone(),
                heredocs,
            };
            InstructionKind::Onbuild(Box::new(convert(nested, escape)?))
        }
        _ => {
            return Err(err(format!("unknown instruction: {kw}")));
        }
    };

    Ok(Instruction {
        span,
        original,
        kind,
    })
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
