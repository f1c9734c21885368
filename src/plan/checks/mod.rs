//! BuildKit's build checks (`--check`, `# check=skip=...;error=true`): warnings about a
//! Dockerfile that builds but probably not as meant. Each names its rule and line, as
//! `docker build --check` prints them.

use super::{Base, Plan};
use crate::context::IgnoreRules;
use crate::dockerfile::{expand_word, Command, Dockerfile, Instruction, InstructionKind};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: &'static str,
    pub line: usize,
    pub message: String,
}

mod structure;

/// The rules BuildKit runs only when asked (`check=experimental=RULE|all`).
const EXPERIMENTAL: [&str; 1] = ["InvalidDefinitionDescription"];

/// `# check=skip=A,B;error=true;experimental=C` (or the build arg BUILDKIT_DOCKERFILE_CHECK,
/// which replaces the directive, as BuildKit's frontend reads it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckDirective {
    pub skip: Vec<String>,
    pub skip_all: bool,
    pub error: bool,
    pub experimental: Vec<String>,
    pub experimental_all: bool,
}

/// A check option BuildKit refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid check option {0:?}: expected skip=RULE,...|all; error=true|false; experimental=RULE,...|all")]
pub struct CheckOptionError(pub String);

impl CheckDirective {
    /// Does `rule` run? Skipped rules do not; experimental ones only when enabled.
    pub fn runs(&self, rule: &str) -> bool {
        if self.skip_all || self.skip.iter().any(|s| s == rule) {
            return false;
        }
        !EXPERIMENTAL.contains(&rule)
            || self.experimental_all
            || self.experimental.iter().any(|e| e == rule)
    }
}

/// Reads check options (BuildKit's linter.ParseLintOptions): at most three `;`-separated
/// `key=value` parts; an unknown key or a bad boolean is an error.
pub fn parse_check_directive(text: Option<&str>) -> Result<CheckDirective, CheckOptionError> {
    let mut directive = CheckDirective::default();
    let text = text.unwrap_or("").trim();
    if text.is_empty() {
        return Ok(directive);
    }
    let list = |value: &str| -> (bool, Vec<String>) {
        let value = value.trim();
        if value == "all" {
            return (true, Vec::new());
        }
        let rules = value
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_string)
            .collect();
        (false, rules)
    };
    for part in text.splitn(3, ';') {
        let Some((key, value)) = part.split_once('=') else {
            return Err(CheckOptionError(part.to_string()));
        };
        match key.trim() {
            "skip" => (directive.skip_all, directive.skip) = list(value),
            "experimental" => (directive.experimental_all, directive.experimental) = list(value),
            "error" => {
                directive.error = match value.trim().to_ascii_lowercase().as_str() {
                    "true" | "1" | "t" => true,
                    "false" | "0" | "f" => false,
                    _ => return Err(CheckOptionError(part.to_string())),
                }
            }
            _ => return Err(CheckOptionError(part.to_string())),
        }
    }
    Ok(directive)
}

/// Names that look like they hold a secret (BuildKit's SecretsUsedInArgOrEnv: a token as the
/// whole name or one `_`-separated part of it, unless a part says it is public, a file or a
/// version).
fn looks_secret(name: &str) -> bool {
    const TOKENS: [&str; 10] = [
        "apikey",
        "auth",
        "credential",
        "credentials",
        "key",
        "password",
        "pword",
        "passwd",
        "secret",
        "token",
    ];
    const ALLOWED: [&str; 3] = ["public", "file", "version"];
    let lower = name.to_ascii_lowercase();
    let parts: Vec<&str> = lower.split('_').collect();
    parts.iter().any(|p| TOKENS.contains(p)) && !parts.iter().any(|p| ALLOWED.contains(p))
}

/// What a check needs from outside the Dockerfile: the `.dockerignore` rules and the ENV of
/// an image base (when it is in the store).
pub struct CheckInput<'a> {
    pub dockerfile: &'a Dockerfile,
    pub plan: &'a Plan<'a>,
    pub ignore: &'a IgnoreRules,
    pub image_env: &'a dyn Fn(&str) -> Vec<String>,
    /// Which rules run (the `# check=` directive or BUILDKIT_DOCKERFILE_CHECK).
    pub config: &'a CheckDirective,
}

pub fn run_checks(input: &CheckInput) -> Vec<Finding> {
    let mut findings = Vec::new();
    // The parser's empty continuation lines (it words them itself).
    for warning in &input.dockerfile.warnings {
        if warning.message.starts_with("Empty continuation line") {
            findings.push(Finding {
                rule: "NoEmptyContinuation",
                line: warning.line,
                message: "Empty continuation line".into(),
            });
        }
    }
    structure::casing(input, &mut findings);
    structure::stage_names(input, &mut findings);
    structure::from_platform(input, &mut findings);
    structure::used_once(input, &mut findings);
    structure::default_args_in_from(input, &mut findings);
    structure::descriptions(input, &mut findings);
    let escape = input.dockerfile.directives.escape;
    let global_names: Vec<&str> = input
        .plan
        .global_args
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();

    for ins in input
        .dockerfile
        .instructions
        .iter()
        .take_while(|i| matches!(i.kind, InstructionKind::Arg(_)))
    {
        if let InstructionKind::Arg(decls) = &ins.kind {
            for decl in decls.iter().filter(|d| looks_secret(&d.name)) {
                findings.push(secret_finding(ins, "ARG", &decl.name));
            }
        }
    }

    // Per stage: the names visible, to spot undefined variables; ENV of a stage base carries on.
    let mut stage_env: Vec<Vec<String>> = Vec::new();
    for stage in &input.plan.stages {
        if let InstructionKind::From { image, alias, .. } = &stage.from.kind {
            let expansion = expand_word(image, escape, &|n| {
                input
                    .plan
                    .global_args
                    .iter()
                    .rev()
                    .find(|(k, _)| k == n)
                    .and_then(|(_, v)| v.clone())
            });
            if let Ok(expansion) = expansion {
                for name in expansion
                    .referenced
                    .iter()
                    .filter(|n| !global_names.contains(&n.as_str()))
                {
                    findings.push(Finding {
                        rule: "UndefinedArgInFrom",
                        line: stage.from.span.line,
                        message: format!("FROM argument '{name}' is not declared"),
                    });
                }
            }
            // The parser lower-cases the name; the check reads it as written.
            let written = alias.as_ref().and_then(|_| {
                let words: Vec<&str> = stage.from.original.split_whitespace().collect();
                words
                    .iter()
                    .position(|w| w.eq_ignore_ascii_case("as"))
                    .and_then(|i| words.get(i + 1))
                    .map(|w| w.to_string())
            });
            if let Some(alias) = written {
                if alias.chars().any(|c| c.is_ascii_uppercase()) {
                    findings.push(Finding {
                        rule: "StageNameCasing",
                        line: stage.from.span.line,
                        message: format!("Stage name '{alias}' should be lowercase"),
                    });
                }
            }
        }
        let mut visible: Vec<String> = match &stage.base {
            Base::Scratch | Base::Dir(_) => Vec::new(),
            Base::Stage(i) => stage_env.get(*i).cloned().unwrap_or_default(),
            Base::Image(name) => (input.image_env)(name),
        };
        visible.push("PATH".into());
        let mut shell_set = false;
        let mut workdir_set = false;
        for ins in &stage.instructions {
            check_instruction(
                input,
                ins,
                escape,
                &mut visible,
                &mut shell_set,
                &mut workdir_set,
                &mut findings,
            );
        }
        stage_env.push(visible);
    }
    findings.retain(|f| input.config.runs(f.rule));
    findings.sort_by_key(|f| f.line);
    findings.dedup();
    findings
}

fn secret_finding(ins: &Instruction, keyword: &str, name: &str) -> Finding {
    Finding {
        rule: "SecretsUsedInArgOrEnv",
        line: ins.span.line,
        message: format!(
            "Do not use ARG or ENV instructions for sensitive data ({keyword} \"{name}\")"
        ),
    }
}

fn check_instruction(
    input: &CheckInput,
    ins: &Instruction,
    escape: char,
    visible: &mut Vec<String>,
    shell_set: &mut bool,
    workdir_set: &mut bool,
    findings: &mut Vec<Finding>,
) {
    let line = ins.span.line;
    let undefined = |word: &str, visible: &[String], findings: &mut Vec<Finding>| {
        let known = |n: &str| visible.iter().any(|v| v == n) || super::is_proxy_arg(n);
        if let Ok(expansion) = expand_word(word, escape, &|n| known(n).then(String::new)) {
            for name in expansion.unset {
                findings.push(Finding {
                    rule: "UndefinedVar",
                    line,
                    message: format!("Usage of undefined variable '${name}'"),
                });
            }
        }
    };
    match &ins.kind {
        InstructionKind::Env { pairs, legacy_form } => {
            if *legacy_form {
                findings.push(Finding {
                    rule: "LegacyKeyValueFormat",
                    line,
                    message: "\"ENV key=value\" should be used instead of legacy \"ENV key value\" format".into(),
                });
            }
            // Values see the environment from before the instruction (see build's ENV).
            for (_, value) in pairs {
                undefined(value, visible, findings);
            }
            for (key, _) in pairs {
                if looks_secret(key) {
                    findings.push(secret_finding(ins, "ENV", key));
                }
                visible.push(key.clone());
            }
        }
        InstructionKind::Arg(decls) => {
            for decl in decls {
                if let Some(default) = &decl.default {
                    undefined(default, visible, findings);
                }
                if looks_secret(&decl.name) {
                    findings.push(secret_finding(ins, "ARG", &decl.name));
                }
                visible.push(decl.name.clone());
            }
        }
        InstructionKind::Label(pairs) => {
            for (key, value) in pairs {
                undefined(key, visible, findings);
                undefined(value, visible, findings);
            }
        }
        InstructionKind::Workdir(path) => {
            undefined(path, visible, findings);
            if !*workdir_set && !path.starts_with('/') && !path.starts_with('$') {
                findings.push(Finding {
                    rule: "WorkdirRelativePath",
                    line,
                    message: format!("Relative workdir '{path}' can have unexpected results if the base image changes"),
                });
            }
            *workdir_set = true;
        }
        InstructionKind::User(word) | InstructionKind::StopSignal(word) => {
            undefined(word, visible, findings)
        }
        InstructionKind::Expose(words) | InstructionKind::Volume(words) => {
            for word in words {
                undefined(word, visible, findings);
            }
            if matches!(ins.kind, InstructionKind::Expose(_)) {
                structure::expose(ins, words, findings);
            }
        }
        InstructionKind::Shell(_) => *shell_set = true,
        InstructionKind::Cmd(Command::Shell(_))
        | InstructionKind::Entrypoint(Command::Shell(_))
            if !*shell_set =>
        {
            findings.push(Finding {
                rule: "JSONArgsRecommended",
                line,
                message: format!(
                    "JSON arguments recommended for {} to prevent unintended behavior related to OS signals",
                    ins.kind.keyword()
                ),
            });
        }
        InstructionKind::Maintainer(_) => findings.push(Finding {
            rule: "MaintainerDeprecated",
            line,
            message: "Maintainer instruction is deprecated in favor of using label".into(),
        }),
        InstructionKind::Copy(args) | InstructionKind::Add(args) => {
            for source in args.sources.iter().chain(std::iter::once(&args.dest)) {
                if !source.starts_with("<<") {
                    undefined(source, visible, findings);
                }
            }
            copy_ignored_findings(input, ins, args, findings);
        }
        _ => {}
    }
}

/// CopyIgnoredFile: a COPY or ADD from the context names a file `.dockerignore` excludes.
fn copy_ignored_findings(
    input: &CheckInput,
    ins: &Instruction,
    args: &crate::dockerfile::CopyArgs,
    findings: &mut Vec<Finding>,
) {
    let from_context = args.flags.from.is_none();
    if !from_context || input.ignore.is_empty() {
        return;
    }
    for source in &args.sources {
        let clean = crate::context::clean_relative(source);
        if !source.starts_with("<<") && !clean.is_empty() && input.ignore.is_excluded(&clean) {
            findings.push(Finding {
                rule: "CopyIgnoredFile",
                line: ins.span.line,
                message: format!(
                    "Attempting to {} file \"{source}\" that is excluded by .dockerignore",
                    if ins.kind.keyword() == "ADD" {
                        "Add"
                    } else {
                        "Copy"
                    }
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn findings(source: &str, ignore: &str) -> Vec<(&'static str, usize)> {
        let parsed = crate::dockerfile::parse(source).expect("parse");
        let args = BTreeMap::new();
        let platform = super::super::Platform::host();
        let input = super::super::PlanInput {
            instructions: &parsed.instructions,
            escape: '\\',
            build_args: &args,
            target: None,
            platform: &platform,
            named_contexts: &BTreeMap::new(),
        };
        let plan = super::super::plan(&input).expect("plan");
        let rules = IgnoreRules::parse(ignore);
        let image_env = |_: &str| vec!["HOME".to_string()];
        let config = parse_check_directive(parsed.directives.check.as_deref()).expect("options");
        run_checks(&CheckInput {
            dockerfile: &parsed,
            plan: &plan,
            ignore: &rules,
            image_env: &image_env,
            config: &config,
        })
        .into_iter()
        .map(|f| (f.rule, f.line))
        .collect()
    }

    #[test]
    fn each_rule_fires_on_its_pattern() {
        type Row<'a> = (&'a str, &'a str, &'a [(&'a str, usize)]);
        let table: &[Row] = &[
            ("FROM scratch AS Builder\n", "", &[("StageNameCasing", 1)]),
            (
                "FROM $NOPE\n",
                "",
                &[("InvalidDefaultArgInFrom", 1), ("UndefinedArgInFrom", 1)],
            ),
            ("ARG BASE=scratch\nFROM $BASE\n", "", &[]),
            ("FROM scratch\nENV A=$MISSING\n", "", &[("UndefinedVar", 2)]),
            ("FROM busybox\nENV A=$HOME\nENV B=$A\n", "", &[]),
            (
                "FROM scratch\nENV A b\n",
                "",
                &[("LegacyKeyValueFormat", 2)],
            ),
            (
                "FROM scratch\nARG API_TOKEN\nENV DB_PASSWORD=x\n",
                "",
                &[("SecretsUsedInArgOrEnv", 2), ("SecretsUsedInArgOrEnv", 3)],
            ),
            (
                "ARG GITHUB_TOKEN\nFROM scratch\n",
                "",
                &[("SecretsUsedInArgOrEnv", 1)],
            ),
            ("FROM scratch\nARG MONKEY=1\n", "", &[]),
            (
                "FROM scratch\nCMD echo hi\nENTRYPOINT [\"a\"]\n",
                "",
                &[("JSONArgsRecommended", 2)],
            ),
            (
                "FROM scratch\nSHELL [\"/bin/bash\", \"-c\"]\nCMD echo hi\n",
                "",
                &[],
            ),
            (
                "FROM scratch\nWORKDIR app\nWORKDIR more\n",
                "",
                &[("WorkdirRelativePath", 2)],
            ),
            ("FROM scratch\nWORKDIR /app\nWORKDIR more\n", "", &[]),
            (
                "FROM scratch\nCOPY secret.txt /\nCOPY --from=0 secret.txt /\n",
                "secret.txt\n",
                &[("CopyIgnoredFile", 2)],
            ),
            (
                "FROM scratch\nMAINTAINER me\n",
                "",
                &[("MaintainerDeprecated", 2)],
            ),
            (
                "# check=skip=StageNameCasing,UndefinedVar\nFROM scratch AS Big\nENV A=$X\n",
                "",
                &[],
            ),
            ("# check=skip=all\nFROM scratch AS Big\n", "", &[]),
            ("FROM scratch\nARG PUBLIC_KEY\nARG KEY_FILE\n", "", &[]),
            ("FROM scratch\nARG MY-TOKEN\n", "", &[]),
            // The rules BuildKit's linter added after the first ones.
            (
                "FROM scratch as build\nFROM scratch AS copy\n",
                "",
                &[("FromAsCasing", 1)],
            ),
            (
                "FROM scratch\nrun true\nCOPY a /\n",
                "",
                &[("ConsistentInstructionCasing", 2)],
            ),
            (
                "from scratch\nCOPY a /\nrun true\n",
                "",
                &[("ConsistentInstructionCasing", 2)],
            ),
            (
                "FROM scratch AS a\nFROM scratch AS A\n",
                "",
                &[("DuplicateStageName", 2), ("StageNameCasing", 2)],
            ),
            (
                "FROM scratch AS context\n",
                "",
                &[("ReservedStageName", 1)],
            ),
            (
                "FROM --platform=$TARGETPLATFORM scratch\n",
                "",
                &[("RedundantTargetPlatform", 1)],
            ),
            (
                "FROM --platform=linux/arm64 scratch\nFROM --platform=linux/arm64 scratch AS arm64-tools\nFROM --platform=$BUILDPLATFORM scratch\n",
                "",
                &[("FromPlatformFlagConstDisallowed", 1)],
            ),
            (
                "FROM scratch\nCMD [\"a\"]\nENTRYPOINT [\"b\"]\nCMD [\"c\"]\nHEALTHCHECK NONE\nHEALTHCHECK NONE\n",
                "",
                &[
                    ("MultipleInstructionsDisallowed", 2),
                    ("MultipleInstructionsDisallowed", 5),
                ],
            ),
            (
                "FROM scratch\nEXPOSE 80/TCP 8080:80 127.0.0.1:53:53/udp 443/tcp\n",
                "",
                &[
                    ("ExposeProtoCasing", 2),
                    ("ExposeInvalidFormat", 2),
                    ("ExposeInvalidFormat", 2),
                ],
            ),
            (
                "ARG TAG\nFROM busybox:${TAG}\nFROM busybox:${TAG:-latest}\n",
                "",
                &[("InvalidDefaultArgInFrom", 2)],
            ),
            (
                "FROM scratch\nRUN a \\\n\n  b\n",
                "",
                &[("NoEmptyContinuation", 3)],
            ),
            // Experimental: only when asked for.
            ("# the builder\nFROM scratch AS build\n", "", &[]),
            (
                "# check=experimental=InvalidDefinitionDescription\n\n# the builder\nFROM scratch AS build\n# out is the image\nFROM scratch AS out\n",
                "",
                &[("InvalidDefinitionDescription", 4)],
            ),
        ];
        for (source, ignore, want) in table {
            assert_eq!(findings(source, ignore), want.to_vec(), "{source:?}");
        }
    }

    #[test]
    fn check_directive_parses() {
        assert_eq!(
            parse_check_directive(Some("skip=A,B;error=true;experimental=all")),
            Ok(CheckDirective {
                skip: vec!["A".into(), "B".into()],
                skip_all: false,
                error: true,
                experimental: Vec::new(),
                experimental_all: true,
            })
        );
        assert_eq!(parse_check_directive(None), Ok(CheckDirective::default()));
        for bad in ["skip", "nope=1", "error=maybe"] {
            assert!(parse_check_directive(Some(bad)).is_err(), "{bad}");
        }
        let config = parse_check_directive(Some("experimental=InvalidDefinitionDescription"))
            .expect("options");
        assert!(config.runs("InvalidDefinitionDescription") && config.runs("FromAsCasing"));
        assert!(!CheckDirective::default().runs("InvalidDefinitionDescription"));
    }
}
