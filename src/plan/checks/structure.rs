//! The checks about a Dockerfile's shape rather than its values: keyword casing, stage
//! names, `FROM --platform`, instructions that only count once, `EXPOSE` spellings, base
//! names that the ARG defaults leave invalid, and description comments. Rules, names and
//! messages as BuildKit's linter (frontend/dockerfile/linter/ruleset.go) words them.

use super::{CheckInput, Finding};
use crate::dockerfile::{expand_word, Flag, Instruction, InstructionKind};

/// The keyword as written (`from`, `FROM`, `From`).
fn written_keyword(ins: &Instruction) -> &str {
    ins.original.split_whitespace().next().unwrap_or("")
}

fn self_consistent(word: &str) -> bool {
    word == word.to_ascii_lowercase() || word == word.to_ascii_uppercase()
}

/// ConsistentInstructionCasing: every keyword in one casing, the majority's; FromAsCasing:
/// `AS` cased as its `FROM`.
pub(super) fn casing(input: &CheckInput, findings: &mut Vec<Finding>) {
    let all: Vec<&Instruction> = input
        .plan
        .stages
        .iter()
        .flat_map(|s| std::iter::once(s.from).chain(s.instructions.iter().copied()))
        .collect();
    let (mut lower, mut upper) = (0, 0);
    for ins in &all {
        let word = written_keyword(ins);
        if self_consistent(word) {
            if word == word.to_ascii_lowercase() {
                lower += 1;
            } else {
                upper += 1;
            }
        }
    }
    let majority_lower = lower > upper;
    for ins in &all {
        let word = written_keyword(ins);
        let correct = if majority_lower && word != word.to_ascii_lowercase() {
            "lowercase"
        } else if !majority_lower && word != word.to_ascii_uppercase() {
            "uppercase"
        } else {
            continue;
        };
        findings.push(Finding {
            rule: "ConsistentInstructionCasing",
            line: ins.span.line,
            message: format!(
                "Command '{word}' should match the case of the command majority ({correct})"
            ),
        });
    }
    for stage in &input.plan.stages {
        let words: Vec<&str> = stage.from.original.split_whitespace().collect();
        let from = written_keyword(stage.from);
        let Some(as_word) = words.iter().skip(1).find(|w| w.eq_ignore_ascii_case("as")) else {
            continue;
        };
        let from_lower = from == from.to_ascii_lowercase();
        let from_upper = from == from.to_ascii_uppercase();
        let mismatch = (from_lower && *as_word != as_word.to_ascii_lowercase())
            || (from_upper && !from_lower && *as_word != as_word.to_ascii_uppercase());
        if mismatch {
            findings.push(Finding {
                rule: "FromAsCasing",
                line: stage.from.span.line,
                message: format!("'{as_word}' and '{from}' keywords' casing do not match"),
            });
        }
    }
}

/// DuplicateStageName and ReservedStageName (`context`, `scratch`).
pub(super) fn stage_names(input: &CheckInput, findings: &mut Vec<Finding>) {
    let mut seen: Vec<&str> = Vec::new();
    for stage in &input.plan.stages {
        let Some(name) = stage.name.as_deref() else {
            continue;
        };
        let line = stage.from.span.line;
        if name == "context" || name == "scratch" {
            findings.push(Finding {
                rule: "ReservedStageName",
                line,
                message: format!(
                    "Stage name should not use the same name as reserved stage \"{name}\""
                ),
            });
        }
        if seen.contains(&name) {
            findings.push(Finding {
                rule: "DuplicateStageName",
                line,
                message: format!("Duplicate stage name \"{name}\", stage names should be unique"),
            });
        }
        seen.push(name);
    }
}

/// RedundantTargetPlatform (`--platform=$TARGETPLATFORM`) and FromPlatformFlagConstDisallowed
/// (`--platform=linux/arm64` written as a constant, unless the stage's name says it).
pub(super) fn from_platform(input: &CheckInput, findings: &mut Vec<Finding>) {
    let escape = input.dockerfile.directives.escape;
    for stage in &input.plan.stages {
        let InstructionKind::From { flags, alias, .. } = &stage.from.kind else {
            continue;
        };
        let Some(Flag {
            value: Some(value), ..
        }) = flags.iter().find(|f| f.name == "platform")
        else {
            continue;
        };
        let line = stage.from.span.line;
        let Ok(expansion) = expand_word(value, escape, &|_| Some(String::from("x"))) else {
            continue;
        };
        if expansion.referenced.len() == 1
            && expansion.referenced[0] == "TARGETPLATFORM"
            && matches!(value.as_str(), "$TARGETPLATFORM" | "${TARGETPLATFORM}")
        {
            findings.push(Finding {
                rule: "RedundantTargetPlatform",
                line,
                message: format!(
                    "Setting platform to predefined {value} in FROM is redundant as this is the default behavior"
                ),
            });
        }
        if expansion.referenced.is_empty() {
            let Ok(platform) = super::super::Platform::parse(value) else {
                continue;
            };
            let name = alias.as_deref().unwrap_or("");
            if !name.contains(platform.os.as_str()) && !name.contains(&platform.architecture) {
                findings.push(Finding {
                    rule: "FromPlatformFlagConstDisallowed",
                    line,
                    message: format!(
                        "FROM --platform flag should not use constant value \"{value}\""
                    ),
                });
            }
        }
    }
}

/// MultipleInstructionsDisallowed: a second CMD, ENTRYPOINT or HEALTHCHECK in a stage makes
/// the first one dead; the warning points at that first one.
pub(super) fn used_once(input: &CheckInput, findings: &mut Vec<Finding>) {
    for stage in &input.plan.stages {
        let mut last: [Option<usize>; 3] = [None; 3];
        for ins in &stage.instructions {
            let slot = match ins.kind {
                InstructionKind::Cmd(_) => 0,
                InstructionKind::Entrypoint(_) => 1,
                InstructionKind::Healthcheck(_) => 2,
                _ => continue,
            };
            if let Some(previous) = last[slot] {
                findings.push(Finding {
                    rule: "MultipleInstructionsDisallowed",
                    line: previous,
                    message: format!(
                        "Multiple {} instructions should not be used in the same stage because only the last one will be used",
                        ins.kind.keyword()
                    ),
                });
            }
            last[slot] = Some(ins.span.line);
        }
    }
}

/// ExposeProtoCasing (`80/TCP`) and ExposeInvalidFormat (an IP or host port: `8080:80`).
pub(super) fn expose(ins: &Instruction, ports: &[String], findings: &mut Vec<Finding>) {
    for port in ports.iter().filter(|p| !p.contains('$')) {
        let (mapping, proto) = port.split_once('/').unwrap_or((port.as_str(), ""));
        if proto != proto.to_ascii_lowercase() {
            findings.push(Finding {
                rule: "ExposeProtoCasing",
                line: ins.span.line,
                message: format!(
                    "Defined protocol '{port}' in EXPOSE instruction should be lowercase"
                ),
            });
        }
        if mapping.contains(':') {
            findings.push(Finding {
                rule: "ExposeInvalidFormat",
                line: ins.span.line,
                message: format!(
                    "EXPOSE instruction should not define an IP address or host-port mapping, found '{port}'"
                ),
            });
        }
    }
}

/// InvalidDefaultArgInFrom: with only the ARG defaults (no --build-arg), a base name is empty
/// or no valid reference (`FROM busybox:${TAG}` with `ARG TAG` and no default).
pub(super) fn default_args_in_from(input: &CheckInput, findings: &mut Vec<Finding>) {
    let escape = input.dockerfile.directives.escape;
    let mut defaults: Vec<(String, String)> = Vec::new();
    for ins in input
        .dockerfile
        .instructions
        .iter()
        .take_while(|i| !matches!(i.kind, InstructionKind::From { .. }))
    {
        if let InstructionKind::Arg(decls) = &ins.kind {
            for decl in decls {
                let lookup = |n: &str| {
                    defaults
                        .iter()
                        .rev()
                        .find(|(k, _)| k == n)
                        .map(|(_, v)| v.clone())
                };
                let value = match &decl.default {
                    Some(raw) => match expand_word(raw, escape, &lookup) {
                        Ok(e) => e.value,
                        Err(_) => return,
                    },
                    None => String::new(),
                };
                defaults.push((decl.name.clone(), value));
            }
        }
    }
    for stage in &input.plan.stages {
        let InstructionKind::From { image, .. } = &stage.from.kind else {
            continue;
        };
        if !image.contains('$') {
            continue;
        }
        let lookup = |n: &str| {
            defaults
                .iter()
                .rev()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
        };
        let Ok(expansion) = expand_word(image, escape, &lookup) else {
            continue;
        };
        let name = expansion.value;
        let is_stage = input
            .plan
            .stages
            .iter()
            .any(|s| s.name.as_deref() == Some(name.to_ascii_lowercase().as_str()));
        if name != "scratch" && !is_stage && crate::image::parse_reference(&name).is_err() {
            findings.push(Finding {
                rule: "InvalidDefaultArgInFrom",
                line: stage.from.span.line,
                message: format!(
                    "Default value for ARG {image} results in empty or invalid base image name"
                ),
            });
        }
    }
}

/// InvalidDefinitionDescription (experimental): a comment right above a named stage or a
/// global ARG is its description, so it should start with the name.
pub(super) fn descriptions(input: &CheckInput, findings: &mut Vec<Finding>) {
    for ins in &input.dockerfile.instructions {
        let (instruction, names): (&str, Vec<&str>) = match &ins.kind {
            InstructionKind::From {
                alias: Some(name), ..
            } => ("FROM", vec![name.as_str()]),
            InstructionKind::Arg(decls) => ("ARG", decls.iter().map(|d| d.name.as_str()).collect()),
            _ => continue,
        };
        let Some(last) = ins.comments.last() else {
            continue;
        };
        let first = last.trim_start().split(' ').next().unwrap_or("");
        if names.contains(&first) {
            continue;
        }
        let example = if names.len() > 1 {
            "<arg_key>"
        } else {
            names[0]
        };
        findings.push(Finding {
            rule: "InvalidDefinitionDescription",
            line: ins.span.line,
            message: format!(
                "Comment for {instruction} should follow the format: `# {example} <description>`"
            ),
        });
    }
}
