//! One stage: its base (scratch, an image, another stage), the ONBUILD triggers the base
//! carries, then its instructions in order.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::error::{BuildError, Location};
use super::images::image_config_for;
use super::instructions::dispatch;
use super::steps::StepContext;
use super::{Stage, StageResult};
use crate::dockerfile::{self, Instruction};
use crate::image::{ImageConfig, DEFAULT_PATH};
use crate::plan::{Base, StagePlan};
use crate::progress::StageProgress;

/// Builds one stage: its base, ONBUILD triggers inherited from it, then its instructions.
pub(crate) fn build_stage(
    ctx: &StepContext,
    plan: &StagePlan,
    deps: &BTreeMap<usize, StageResult>,
    progress: &mut StageProgress,
    locate: &(dyn Fn(&Instruction) -> Location + Sync),
) -> Result<StageResult, BuildError> {
    let total = plan.instructions.len() + 1;
    let mut stage = start_stage(ctx, plan, deps, &locate(plan.from), progress, total)?;
    for (index, ins) in plan.instructions.iter().enumerate() {
        if ctx.cancelled.load(Ordering::SeqCst) || rbuild_runtime::inplace::terminated() {
            return Err(BuildError::Cancelled);
        }
        dispatch(
            ctx,
            &mut stage,
            plan,
            deps,
            ins,
            &locate(ins),
            index + 2,
            total,
            progress,
        )?;
    }
    Ok(StageResult {
        config: stage.config,
        cache_key: stage.cache_key,
        args: stage.args,
        base: stage.base,
    })
}

pub(super) fn start_stage(
    ctx: &StepContext,
    plan: &StagePlan,
    deps: &BTreeMap<usize, StageResult>,
    loc: &Location,
    progress: &mut StageProgress,
    total: usize,
) -> Result<Stage, BuildError> {
    let started = Instant::now();
    progress.step_started(1, total, &plan.from.original);
    // The stage's platform: FROM --platform, else the build's.
    let platform = plan
        .platform
        .clone()
        .unwrap_or_else(|| ctx.plan.platform.clone());
    let (mut config, cache_key, args, base) = match &plan.base {
        Base::Scratch | Base::Dir(_) => {
            let mut config = ImageConfig::scratch();
            // BuildKit's empty image has WorkingDir "/" (dockerfile2llb/image.go emptyImage;
            // conformance case from-004-scratch-copy).
            config.config.working_dir = "/".to_string();
            config.architecture = platform.architecture.clone();
            config.variant = (!platform.variant.is_empty()).then(|| platform.variant.clone());
            (
                config,
                format!("scratch {}", platform.text()),
                Vec::new(),
                None,
            )
        }
        Base::Image(name) => {
            let (mut config, image_id) = image_config_for(ctx, loc, "FROM", name, Some(&platform))?;
            // A base's inline cache (rbuild's or BuildKit's) describes the base's build, not
            // this one: not inherited, as BuildKit drops it.
            for field in [crate::cache::INLINE_FIELD, "moby.buildkit.cache.v0"] {
                config.other.remove(field);
            }
            if config.architecture != platform.architecture
                && ctx.checks.runs("InvalidBaseImagePlatform")
            {
                // Only a registry with no image of the platform gets here (a local image
                // of another platform is never used).
                progress.notice(&format!(
                    "warning: {}:{}: InvalidBaseImagePlatform: Base image {name} was pulled \
                     with platform \"{}/{}\", expected \"{}\" for current build",
                    loc.file,
                    loc.line,
                    config.os,
                    config.architecture,
                    platform.text(),
                ));
            }
            let base = super::BaseRef {
                name: name.clone(),
                image_id: image_id.clone(),
            };
            (config, image_id, Vec::new(), Some(base))
        }
        Base::Stage(index) => {
            let base = deps
                .get(index)
                .ok_or_else(|| loc.error("FROM", format!("stage {index} has not been built")))?;
            (
                base.config.clone(),
                base.cache_key.clone(),
                base.args.clone(),
                base.base.clone(),
            )
        }
    };
    if config.env_value("PATH").is_none() {
        config.set_env("PATH", DEFAULT_PATH);
    }
    let triggers = config.config.on_build.take().unwrap_or_default();
    progress.step_finished(started.elapsed(), false);
    let no_cache = ctx.options.no_cache
        || plan.name.as_ref().is_some_and(|name| {
            ctx.options
                .no_cache_filter
                .iter()
                .any(|f| f.eq_ignore_ascii_case(name))
        });
    let mut stage = Stage {
        config,
        cache_key,
        args,
        cmd_set: false,
        no_cache,
        index: plan.index,
        base,
    };
    if let Base::Dir(name) = &plan.base {
        start_from_dir(ctx, &mut stage, plan, deps, loc, name, total, progress)?;
    }
    // ONBUILD triggers of the base run right after FROM, and are not passed on.
    for trigger in triggers {
        let parsed = dockerfile::parse(&format!("FROM scratch\n{trigger}\n")).map_err(|e| {
            loc.error(
                "ONBUILD",
                format!("trigger {trigger:?} of the base image: {}", e.message),
            )
        })?;
        let Some(ins) = parsed.instructions.get(1) else {
            continue;
        };
        let mut trigger_loc = loc.clone();
        trigger_loc.excerpt = format!("{}\n  (ONBUILD trigger: {trigger})", loc.excerpt);
        dispatch(
            ctx,
            &mut stage,
            plan,
            deps,
            ins,
            &trigger_loc,
            1,
            total,
            progress,
        )?;
    }
    Ok(stage)
}

/// `FROM NAME` of a directory `--build-context`: its files become the stage's first layer, by
/// a `COPY --from=NAME / /` (so the dir's `.dockerignore`, the cache key of its content and
/// root ownership are COPY's).
#[allow(clippy::too_many_arguments)]
fn start_from_dir(
    ctx: &StepContext,
    stage: &mut Stage,
    plan: &StagePlan,
    deps: &BTreeMap<usize, StageResult>,
    loc: &Location,
    name: &str,
    total: usize,
    progress: &mut StageProgress,
) -> Result<(), BuildError> {
    let text = format!("FROM scratch\nCOPY --from={name} / /\n");
    let parsed = dockerfile::parse(&text)
        .map_err(|e| loc.error("FROM", format!("build context {name:?}: {}", e.message)))?;
    let Some(copy) = parsed.instructions.get(1) else {
        return Err(loc.error("FROM", format!("build context {name:?} cannot be copied")));
    };
    dispatch(ctx, stage, plan, deps, copy, loc, 1, total, progress)
}
