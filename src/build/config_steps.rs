//! The instructions that change only the image config (ENV, ARG, LABEL, USER, EXPOSE,
//! VOLUME, CMD, ENTRYPOINT, SHELL, STOPSIGNAL, HEALTHCHECK, MAINTAINER, ONBUILD): each sets
//! its part of the config and returns its history entry as BuildKit writes it; values are
//! checked in metadata.rs.

use super::error::{BuildError, Location};
use super::history::{go_plain_list, go_port_map, go_quoted_list};
use super::instructions::{command_args, expand};
use super::metadata::{healthcheck, parse_port, validate_signal};
use super::steps::StepContext;
use super::Stage;
use crate::dockerfile::{ArgDecl, InstructionKind};

/// Applies a config instruction to `stage`; returns its history entry (None for ONBUILD,
/// which has none: it is stored as written and run by the stages built FROM this image).
pub(super) fn apply(
    ctx: &StepContext,
    stage: &mut Stage,
    loc: &Location,
    kind: &InstructionKind,
) -> Result<Option<String>, BuildError> {
    let expand_in = |stage: &Stage, keyword, word: &str| {
        expand(loc, keyword, word, ctx.escape, &|n| stage.lookup(n))
    };
    let entry = match kind {
        InstructionKind::Env { pairs, .. } => {
            // Every value is expanded with the environment as it was before the instruction
            // (`ENV A=1 B=$A` gives B the old A), as BuildKit processes the whole command's
            // words first (conformance case env-001-multi-pair).
            let mut values = Vec::new();
            for (key, raw) in pairs {
                values.push((key, expand_in(stage, "ENV", raw)?));
            }
            let mut parts = Vec::new();
            for (key, value) in values {
                stage.config.set_env(key, &value);
                parts.push(format!("{key}={value}"));
            }
            format!("ENV {}", parts.join(" "))
        }
        InstructionKind::Arg(decls) => arg(ctx, stage, loc, decls)?,
        InstructionKind::Label(pairs) => {
            let mut parts = Vec::new();
            for (raw_key, raw_value) in pairs {
                let key = expand_in(stage, "LABEL", raw_key)?;
                let value = expand_in(stage, "LABEL", raw_value)?;
                parts.push(format!("{key}={value}"));
                stage.config.config.labels.insert(key, value);
            }
            format!("LABEL {}", parts.join(" "))
        }
        InstructionKind::User(user) => {
            let user = expand_in(stage, "USER", user)?;
            stage.config.config.user = user.clone();
            format!("USER {user}")
        }
        InstructionKind::Expose(ports) => expose(ctx, stage, loc, ports)?,
        InstructionKind::Volume(volumes) => volume(ctx, stage, loc, volumes)?,
        InstructionKind::Cmd(command) => {
            let args = command_args(stage, command);
            stage.config.config.cmd = Some(args.clone());
            stage.config.config.args_escaped = Some(true);
            stage.cmd_set = true;
            format!("CMD {}", go_quoted_list(&args))
        }
        InstructionKind::Entrypoint(command) => {
            let args = command_args(stage, command);
            stage.config.config.entrypoint = Some(args.clone());
            if !stage.cmd_set {
                stage.config.config.cmd = None;
            }
            format!("ENTRYPOINT {}", go_quoted_list(&args))
        }
        InstructionKind::Shell(shell) => {
            stage.config.config.shell = Some(shell.clone());
            format!("SHELL {}", go_plain_list(shell))
        }
        InstructionKind::StopSignal(signal) => {
            let signal = expand_in(stage, "STOPSIGNAL", signal)?;
            validate_signal(&signal).map_err(|e| loc.error("STOPSIGNAL", e.to_string()))?;
            stage.config.config.stop_signal = signal.clone();
            format!("STOPSIGNAL {signal}")
        }
        InstructionKind::Healthcheck(check) => {
            let (value, text) =
                healthcheck(stage, check).map_err(|e| loc.error("HEALTHCHECK", e.to_string()))?;
            stage.config.config.healthcheck = Some(value);
            format!("HEALTHCHECK {text}")
        }
        InstructionKind::Maintainer(name) => {
            stage.config.author = Some(name.clone());
            format!("MAINTAINER {name}")
        }
        InstructionKind::Onbuild(inner) => {
            stage
                .config
                .config
                .on_build
                .get_or_insert_with(Vec::new)
                .push(inner.original.clone());
            return Ok(None);
        }
        other => {
            return Err(loc.error(
                other.keyword(),
                "not an instruction that changes only the config: a bug, please report it",
            ))
        }
    };
    Ok(Some(entry))
}

/// ARG: each name takes its --build-arg, else its default (expanded), else the global ARG's
/// value; the stage sees it from here on.
fn arg(
    ctx: &StepContext,
    stage: &mut Stage,
    loc: &Location,
    decls: &[ArgDecl],
) -> Result<String, BuildError> {
    let mut parts = Vec::new();
    for decl in decls {
        let value = match ctx.options.build_args.get(&decl.name) {
            Some(v) => Some(v.clone()),
            None => match &decl.default {
                Some(default) => Some(expand(loc, "ARG", default, ctx.escape, &|n| {
                    stage.lookup(n)
                })?),
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
    Ok(format!("ARG {}", parts.join(" ")))
}

/// EXPOSE: each word's ports (`80`, `53/udp`, `8000-8002`), sorted and each once.
fn expose(
    ctx: &StepContext,
    stage: &mut Stage,
    loc: &Location,
    ports: &[String],
) -> Result<String, BuildError> {
    let mut added = Vec::new();
    for raw in ports {
        let word = expand(loc, "EXPOSE", raw, ctx.escape, &|n| stage.lookup(n))?;
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
    Ok(format!("EXPOSE {}", go_port_map(added.iter())))
}

/// VOLUME: each path (never empty) becomes a volume of the config.
fn volume(
    ctx: &StepContext,
    stage: &mut Stage,
    loc: &Location,
    volumes: &[String],
) -> Result<String, BuildError> {
    let mut expanded = Vec::new();
    for raw in volumes {
        let v = expand(loc, "VOLUME", raw, ctx.escape, &|n| stage.lookup(n))?;
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
    Ok(format!("VOLUME {}", go_plain_list(&expanded)))
}
