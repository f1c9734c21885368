//! The dispatcher: each instruction of a stage goes to its handler (RUN in run.rs, COPY/ADD in
//! copy_add.rs, WORKDIR in workdir.rs); the metadata instructions change the config here and
//! add their history entry (BuildKit's strings), with values checked in metadata.rs.

use std::collections::BTreeMap;
use std::time::Instant;

use super::copy_add::copy;
use super::error::{BuildError, Location};
use super::history::{go_plain_list, go_port_map, go_quoted_list};
use super::metadata::{healthcheck, parse_port, validate_signal};
use super::steps::{metadata_created, StepContext};
use super::workdir::workdir;
use super::{Stage, StageResult};
use crate::dockerfile::{self, Command, Instruction, InstructionKind};
use crate::plan::StagePlan;
use crate::progress::StageProgress;

/// Expands ARG/ENV references in a word, with the error pointing at the instruction.
pub fn expand(
    loc: &Location,
    keyword: &'static str,
    word: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, BuildError> {
    dockerfile::expand_word(word, escape, lookup)
        .map(|e| e.value)
        .map_err(|e| loc.error(keyword, e.to_string()))
}

pub(super) fn not_supported(loc: &Location, keyword: &'static str, what: &str) -> BuildError {
    loc.error(keyword, format!("{what} is not supported yet"))
}

#[allow(clippy::too_many_arguments)]
pub(super) fn dispatch(
    ctx: &StepContext,
    stage: &mut Stage,
    plan: &StagePlan,
    deps: &BTreeMap<usize, StageResult>,
    ins: &Instruction,
    loc: &Location,
    index: usize,
    total: usize,
    progress: &mut StageProgress,
) -> Result<(), BuildError> {
    let started = Instant::now();
    progress.step_started(index, total, &ins.original);
    let escape = ctx.escape;
    let makes_layer = matches!(
        ins.kind,
        InstructionKind::Run { .. }
            | InstructionKind::Copy(_)
            | InstructionKind::Add(_)
            | InstructionKind::Workdir(_)
    );
    let (now, mut cached) = if makes_layer {
        (String::new(), false)
    } else {
        metadata_created(ctx, stage, ins)
    };
    match &ins.kind {
        InstructionKind::Run {
            flags,
            command,
            heredocs,
        } => {
            cached = super::run::run(
                ctx, stage, plan, deps, loc, flags, command, heredocs, progress,
            )?;
        }
        InstructionKind::Copy(args) => cached = copy(ctx, stage, plan, deps, loc, args, false)?,
        InstructionKind::Add(args) => cached = copy(ctx, stage, plan, deps, loc, args, true)?,
        InstructionKind::Workdir(path) => {
            let path = expand(loc, "WORKDIR", path, escape, &|n| stage.lookup(n))?;
            cached = workdir(ctx, stage, loc, &path)?;
        }
        InstructionKind::Env { pairs, .. } => {
            let mut parts = Vec::new();
            for (key, raw) in pairs {
                let value = expand(loc, "ENV", raw, escape, &|n| stage.lookup(n))?;
                stage.config.set_env(key, &value);
                parts.push(format!("{key}={value}"));
            }
            stage.add_history(format!("ENV {}", parts.join(" ")), now, true);
        }
        InstructionKind::Arg(decls) => {
            let mut parts = Vec::new();
            for decl in decls {
                let value = match ctx.options.build_args.get(&decl.name) {
                    Some(v) => Some(v.clone()),
                    None => match &decl.default {
                        Some(default) => {
                            Some(expand(loc, "ARG", default, escape, &|n| stage.lookup(n))?)
                        }
                        None => super::lookup_args(&ctx.plan.global_args, &decl.name),
                    },
                };
                parts.push(match &value {
                    Some(v) => format!("{}={v}", decl.name),
                    None => decl.name.clone(),
                });
                stage.args.retain(|(k, _)| k != &decl.name);
                stage.args.push((decl.name.clone(), value));
            }
            stage.add_history(format!("ARG {}", parts.join(" ")), now, true);
        }
        InstructionKind::Label(pairs) => {
            let mut parts = Vec::new();
            for (raw_key, raw_value) in pairs {
                let key = expand(loc, "LABEL", raw_key, escape, &|n| stage.lookup(n))?;
                let value = expand(loc, "LABEL", raw_value, escape, &|n| stage.lookup(n))?;
                parts.push(format!("{key}={value}"));
                stage.config.config.labels.insert(key, value);
            }
            stage.add_history(format!("LABEL {}", parts.join(" ")), now, true);
        }
        InstructionKind::User(user) => {
            let user = expand(loc, "USER", user, escape, &|n| stage.lookup(n))?;
            stage.config.config.user = user.clone();
            stage.add_history(format!("USER {user}"), now, true);
        }
        InstructionKind::Expose(ports) => {
            let mut added = Vec::new();
            for raw in ports {
                let word = expand(loc, "EXPOSE", raw, escape, &|n| stage.lookup(n))?;
                for port in word.split_whitespace() {
                    added.extend(parse_port(port).map_err(|e| loc.error("EXPOSE", e.to_string()))?);
                }
            }
            added.sort();
            added.dedup();
            for port in &added {
                stage
                    .config
                    .config
                    .exposed_ports
                    .insert(port.clone(), serde_json::json!({}));
            }
            stage.add_history(format!("EXPOSE {}", go_port_map(added.iter())), now, true);
        }
        InstructionKind::Volume(volumes) => {
            let mut expanded = Vec::new();
            for raw in volumes {
                let v = expand(loc, "VOLUME", raw, escape, &|n| stage.lookup(n))?;
                if v.is_empty() {
                    return Err(loc.error("VOLUME", "VOLUME specified can not be an empty string"));
                }
                stage
                    .config
                    .config
                    .volumes
                    .insert(v.clone(), serde_json::json!({}));
                expanded.push(v);
            }
            stage.add_history(format!("VOLUME {}", go_plain_list(&expanded)), now, true);
        }
        InstructionKind::Cmd(command) => {
            let args = command_args(stage, command);
            stage.config.config.cmd = Some(args.clone());
            stage.config.config.args_escaped = Some(true);
            stage.cmd_set = true;
            stage.add_history(format!("CMD {}", go_quoted_list(&args)), now, true);
        }
        InstructionKind::Entrypoint(command) => {
            let args = command_args(stage, command);
            stage.config.config.entrypoint = Some(args.clone());
            if !stage.cmd_set {
                stage.config.config.cmd = None;
            }
            stage.add_history(format!("ENTRYPOINT {}", go_quoted_list(&args)), now, true);
        }
        InstructionKind::Shell(shell) => {
            stage.config.config.shell = Some(shell.clone());
            stage.add_history(format!("SHELL {}", go_plain_list(shell)), now, true);
        }
        InstructionKind::StopSignal(signal) => {
            let signal = expand(loc, "STOPSIGNAL", signal, escape, &|n| stage.lookup(n))?;
            validate_signal(&signal).map_err(|e| loc.error("STOPSIGNAL", e.to_string()))?;
            stage.config.config.stop_signal = signal.clone();
            stage.add_history(format!("STOPSIGNAL {signal}"), now, true);
        }
        InstructionKind::Healthcheck(check) => {
            let (value, text) =
                healthcheck(stage, check).map_err(|e| loc.error("HEALTHCHECK", e.to_string()))?;
            stage.config.config.healthcheck = Some(value);
            stage.add_history(format!("HEALTHCHECK {text}"), now, true);
        }
        InstructionKind::Maintainer(name) => {
            stage.config.author = Some(name.clone());
            stage.add_history(format!("MAINTAINER {name}"), now, true);
        }
        InstructionKind::Onbuild(inner) => {
            // Stored as written, run by the stages built FROM this image; no history entry.
            stage
                .config
                .config
                .on_build
                .get_or_insert_with(Vec::new)
                .push(inner.original.clone());
        }
        InstructionKind::From { .. } => return Err(not_supported(loc, "FROM", "a second FROM")),
    }
    progress.step_finished(started.elapsed(), cached);
    Ok(())
}

/// Shell form gets the stage's SHELL in front; exec form is used as is.
pub(super) fn command_args(stage: &Stage, command: &Command) -> Vec<String> {
    match command {
        Command::Exec(args) => args.clone(),
        Command::Shell(text) => {
            let mut args = stage.shell();
            args.push(text.clone());
            args
        }
    }
}
