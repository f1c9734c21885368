//! The dispatcher: each instruction of a stage goes to its handler (RUN in run.rs, COPY/ADD in
//! copy_add.rs, WORKDIR in workdir.rs, the config-only instructions in config_steps.rs).

use std::collections::BTreeMap;
use std::time::Instant;

use super::copy_add::copy;
use super::error::{BuildError, Location};
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
    let cached = match &ins.kind {
        InstructionKind::Run {
            flags,
            command,
            heredocs,
        } => super::run::run(
            ctx, stage, plan, deps, loc, flags, command, heredocs, progress,
        )?,
        InstructionKind::Copy(args) => copy(ctx, stage, plan, deps, loc, args, false)?,
        InstructionKind::Add(args) => copy(ctx, stage, plan, deps, loc, args, true)?,
        InstructionKind::Workdir(path) => {
            let path = expand(loc, "WORKDIR", path, ctx.escape, &|n| stage.lookup(n))?;
            workdir(ctx, stage, loc, &path)?
        }
        InstructionKind::From { .. } => return Err(not_supported(loc, "FROM", "a second FROM")),
        config_only => {
            let (now, cached) = metadata_created(ctx, stage, ins);
            if let Some(entry) = super::config_steps::apply(ctx, stage, loc, config_only)? {
                stage.add_history(entry, now, true);
            }
            cached
        }
    };
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
