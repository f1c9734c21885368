//! One function per Dockerfile instruction: what it does to the stage's config, its history
//! entry (BuildKit's strings), and for RUN/COPY/WORKDIR the layer it commits.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::copy::{copy_sources, join_image_path, Chmod, CopyAttrs};
use super::error::{io_error, BuildError, Location};
use super::history::{go_plain_list, go_port_map, go_quoted_list};
use super::rootfs::{mkdir_all_in_root, MountedRootfs, StepDirs};
use super::{created_time, BuildOptions, Stage, StageResult};
use crate::context::{hash_selection_with, BuildContext};
use crate::dockerfile::{self, Command, CopyArgs, Flag, Healthcheck, Instruction, InstructionKind};
use crate::image::{ImageConfig, DEFAULT_PATH};
use crate::plan::{resolve_source, Base, Plan, Source, StagePlan};
use crate::progress::StageProgress;
use crate::snapshot;
use crate::store::{CacheRecord, LayerInfo, Store};

pub(crate) struct StepContext<'a> {
    /// Where the time goes (printed with RBUILD_TIMINGS=1).
    pub timings: super::Timings,
    /// How progress is shown (pull progress follows it).
    pub progress_mode: crate::progress::ProgressMode,
    /// Digests of context files, by stat, kept between builds.
    pub hashes: crate::context::HashCache,
    /// Caches given with --cache-from, consulted when the store misses.
    pub imported: crate::cache::Imported,
    /// Keys and cache mounts this build used, for --cache-to.
    pub used: crate::cache::UsedCache,
    pub store: &'a Store,
    pub context: &'a BuildContext,
    pub options: &'a BuildOptions,
    pub escape: char,
    pub plan: &'a Plan<'a>,
    /// Set when a stage failed: the others stop before their next step.
    pub cancelled: AtomicBool,
    /// The layers this build uses, kept by a `prune` that runs meanwhile.
    pub lease: crate::store::Lease,
}

impl StepContext<'_> {
    /// A cache record from the store, else from an imported cache (its layer is imported
    /// now); the key counts as used by this stage.
    pub fn lookup(&self, stage: &Stage, key: &str) -> Option<CacheRecord> {
        let started = Instant::now();
        let record = self
            .store
            .cache_lookup(key)
            .or_else(|| self.imported.lookup(self.store, key));
        self.timings.add(&self.timings.lookup_ns, started);
        let record = record?;
        self.used.key(stage.index, key);
        Some(record)
    }

    /// Stores what a step produced under its key, as used by this stage.
    pub fn remember(
        &self,
        stage: &Stage,
        key: &str,
        record: CacheRecord,
    ) -> Result<(), BuildError> {
        self.store.cache_store(key, &record)?;
        self.used.key(stage.index, key);
        Ok(())
    }
}

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
        if ctx.cancelled.load(Ordering::SeqCst) {
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

/// Reads an image's config, after checking every layer is there; an image the store does not
/// have (or any, with `--pull` for FROM) is pulled from its registry first.
pub(super) fn image_config(
    ctx: &StepContext,
    loc: &Location,
    keyword: &'static str,
    name: &str,
) -> Result<(ImageConfig, String), BuildError> {
    image_config_for(ctx, loc, keyword, name, None)
}

/// `image_config`, pulling the variant for `platform` (default: the build's) when it pulls.
fn image_config_for(
    ctx: &StepContext,
    loc: &Location,
    keyword: &'static str,
    name: &str,
    platform: Option<&crate::plan::Platform>,
) -> Result<(ImageConfig, String), BuildError> {
    let pull = keyword == "FROM" && ctx.options.pull;
    let image_id = match (pull, ctx.store.resolve_image(name)) {
        (false, Ok(id)) => id,
        (false, Err(crate::store::StoreError::NoSuchImage { .. })) | (true, _) => pull_image(
            ctx,
            loc,
            keyword,
            name,
            platform.unwrap_or(&ctx.plan.platform),
        )?,
        (false, Err(e)) => return Err(loc.error(keyword, e.to_string())),
    };
    let image_id = match platform {
        Some(platform) => platform_member(ctx, name, platform)?.unwrap_or(image_id),
        None => image_id,
    };
    let bytes = ctx.store.read_blob(&image_id)?;
    let config: ImageConfig = serde_json::from_slice(&bytes).map_err(|e| {
        loc.error(
            keyword,
            format!("image {name} has an unreadable config: {e}"),
        )
    })?;
    // Claimed before use: a prune from now on keeps them.
    if !ctx.lease.hold(ctx.store, &config.rootfs.diff_ids)? {
        let missing = config
            .rootfs
            .diff_ids
            .iter()
            .find(|d| !ctx.store.has_layer(d))
            .cloned()
            .unwrap_or_default();
        return Err(loc.error(
            keyword,
            format!("image {name} is incomplete: layer {missing} is missing"),
        ));
    }
    Ok((config, image_id))
}

/// The image of `platform` when `name` is a multi-platform tag of the store.
fn platform_member(
    ctx: &StepContext,
    name: &str,
    platform: &crate::plan::Platform,
) -> Result<Option<String>, BuildError> {
    for image_id in ctx.store.platform_list(name)?.unwrap_or_default() {
        let config: ImageConfig = match serde_json::from_slice(&ctx.store.read_blob(&image_id)?) {
            Ok(config) => config,
            Err(_) => continue,
        };
        let variant = config.variant.unwrap_or_default();
        if config.os == platform.os
            && config.architecture == platform.architecture
            && (platform.variant.is_empty() || variant == platform.variant)
        {
            return Ok(Some(image_id));
        }
    }
    Ok(None)
}

fn pull_image(
    ctx: &StepContext,
    loc: &Location,
    keyword: &'static str,
    name: &str,
    platform: &crate::plan::Platform,
) -> Result<String, BuildError> {
    let reference =
        crate::image::parse_reference(name).map_err(|e| loc.error(keyword, e.to_string()))?;
    let plain = |line: &str| eprintln!("  {line}");
    let quiet = |_: &str| {};
    let terminal = crate::progress::TerminalTransfers::default();
    let log: &dyn crate::progress::Reporter = match ctx.progress_mode {
        crate::progress::ProgressMode::Plain => &plain,
        crate::progress::ProgressMode::Tty => &terminal,
        crate::progress::ProgressMode::Quiet => &quiet,
    };
    crate::registry::pull(
        ctx.store,
        &reference,
        &crate::registry::PullOptions {
            platform: Some(crate::registry::Platform {
                os: platform.os.clone(),
                architecture: platform.architecture.clone(),
                variant: (!platform.variant.is_empty()).then(|| platform.variant.clone()),
            }),
        },
        log,
    )
    .map(|pulled| pulled.image_id)
    .map_err(|e| loc.error(keyword, format!("cannot pull {name}: {e}")))
}

fn start_stage(
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
        Base::Scratch => {
            let mut config = ImageConfig::scratch();
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
            let (config, image_id) = image_config_for(ctx, loc, "FROM", name, Some(&platform))?;
            if config.architecture != platform.architecture {
                progress.notice(&format!(
                    "warning: {}:{}: image {name} is for {}/{}, not {} (--pull fetches the \
                     image of {} from its registry)",
                    loc.file,
                    loc.line,
                    config.os,
                    config.architecture,
                    platform.text(),
                    platform.text()
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

fn reject_flags(
    loc: &Location,
    keyword: &'static str,
    flags: &[Flag],
    allowed: &[&str],
) -> Result<(), BuildError> {
    match flags.iter().find(|f| !allowed.contains(&f.name.as_str())) {
        Some(flag) => Err(not_supported(loc, keyword, &format!("--{}", flag.name))),
        None => Ok(()),
    }
}

fn flag_value<'f>(flags: &'f [Flag], name: &str) -> Option<&'f str> {
    flags
        .iter()
        .rev()
        .find(|f| f.name == name)
        .map(|f| f.value.as_deref().unwrap_or(""))
}

#[allow(clippy::too_many_arguments)]
fn dispatch(
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
                    added.extend(parse_port(port).map_err(|m| loc.error("EXPOSE", m))?);
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
            validate_signal(&signal).map_err(|m| loc.error("STOPSIGNAL", m))?;
            stage.config.config.stop_signal = signal.clone();
            stage.add_history(format!("STOPSIGNAL {signal}"), now, true);
        }
        InstructionKind::Healthcheck(check) => {
            let (value, text) =
                healthcheck(stage, check).map_err(|m| loc.error("HEALTHCHECK", m))?;
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

/// Adds a layer (or none for an empty diff) produced by a step, with its history entry.
fn record_layer(stage: &mut Stage, diff_id: Option<String>, created_by: String, created: String) {
    let empty = diff_id.is_none();
    if let Some(diff_id) = diff_id {
        stage.config.rootfs.diff_ids.push(diff_id);
    }
    stage.add_history(created_by, created, empty);
}

/// Turns a finished upper dir into a layer: its tar's digest is computed by streaming, then
/// the dir is renamed into the store. None when the step changed nothing.
// Boundary: the upper dir is a store temp dir rbuild made.
#[allow(clippy::disallowed_methods)]
pub(super) fn commit_upper(
    ctx: &StepContext,
    upper: &std::path::Path,
) -> Result<Option<String>, BuildError> {
    let store = ctx.store;
    let is_empty = std::fs::read_dir(upper)
        .map_err(io_error("read upper dir"))?
        .next()
        .is_none();
    if is_empty {
        return Ok(None);
    }
    let digest = snapshot::layer_diff_id(upper)?;
    let diff_id = digest.as_oci();
    // Claimed before it exists, so that no prune removes it before an image or record does.
    ctx.lease.hold_new(store, &diff_id)?;
    store.commit_layer(
        upper,
        &LayerInfo {
            diff_id: diff_id.clone(),
            tar_size: digest.size,
            blobs: Vec::new(),
        },
    )?;
    Ok(Some(diff_id))
}

/// A cache hit: reuse the recorded layer. Returns true when it hit.
/// The `created` time of a metadata step (no layer): remembered per position in the cache
/// chain, so that a rebuild with every step cached writes the same history and so the same
/// image digest. Metadata steps never move the chain: a changed LABEL does not make the RUN
/// after it miss, as in BuildKit.
fn metadata_created(ctx: &StepContext, stage: &Stage, ins: &Instruction) -> (String, bool) {
    if ctx.options.source_date_epoch.is_some() {
        return (created_time(ctx.options), false);
    }
    let position = stage.config.history.len().to_string();
    let key = stage.next_key(&["METADATA", &position, &ins.original]);
    if !stage.no_cache {
        if let Some(record) = ctx.lookup(stage, &key) {
            return (record.created, true);
        }
    }
    let created = created_time(ctx.options);
    let _ = ctx.remember(
        stage,
        &key,
        CacheRecord {
            diff_id: None,
            created: created.clone(),
        },
    );
    (created, false)
}

pub(super) fn try_cache(ctx: &StepContext, stage: &mut Stage, key: &str, created_by: &str) -> bool {
    if stage.no_cache {
        return false;
    }
    match ctx.lookup(stage, key) {
        // claimed, or gone since the lookup (a prune): then it is a miss
        Some(record)
            if record.diff_id.as_ref().is_some_and(|d| {
                !ctx.lease
                    .hold(ctx.store, std::slice::from_ref(d))
                    .unwrap_or(false)
            }) =>
        {
            false
        }
        Some(record) => {
            record_layer(
                stage,
                record.diff_id,
                created_by.to_string(),
                record.created,
            );
            stage.cache_key = key.to_string();
            true
        }
        None => false,
    }
}

pub(super) fn finish_step(
    ctx: &StepContext,
    stage: &mut Stage,
    key: String,
    diff_id: Option<String>,
    created_by: String,
) -> Result<(), BuildError> {
    let next = key.clone();
    finish_step_chained(ctx, stage, &key, next, diff_id, created_by)
}

/// Records what a step produced under `key` and moves the stage's chain to `next` (the key
/// itself, except for COPY --link whose key does not depend on the chain).
fn finish_step_chained(
    ctx: &StepContext,
    stage: &mut Stage,
    key: &str,
    next: String,
    diff_id: Option<String>,
    created_by: String,
) -> Result<(), BuildError> {
    let created = created_time(ctx.options);
    ctx.remember(
        stage,
        key,
        CacheRecord {
            diff_id: diff_id.clone(),
            created: created.clone(),
        },
    )?;
    record_layer(stage, diff_id, created_by, created);
    stage.cache_key = next;
    Ok(())
}

fn resolve_owner(
    mounted: &MountedRootfs,
    spec: &str,
    loc: &Location,
    keyword: &'static str,
) -> Result<(u32, u32), BuildError> {
    let passwd = mounted.read_image_file("/etc/passwd");
    let group = mounted.read_image_file("/etc/group");
    // `--chown=user` alone means the user's primary group, as in BuildKit.
    let user = rbuild_runtime::user::resolve_user(spec, &passwd, &group)
        .map_err(|e| loc.error(keyword, e.to_string()))?;
    Ok((user.uid, user.gid))
}

/// Where the files of a COPY come from, kept mounted (or on disk) while it runs.
enum CopySource {
    Context,
    /// Another stage or an image, mounted read-only.
    Layers(Box<MountedLayers>),
    /// A directory given with --build-context.
    Dir(BuildContext),
}

struct MountedLayers {
    _mounted: MountedRootfs,
    _dirs: StepDirs,
    root: BuildContext,
    key: String,
}

fn copy_source(
    ctx: &StepContext,
    plan: &StagePlan,
    deps: &BTreeMap<usize, StageResult>,
    loc: &Location,
    from: Option<&str>,
) -> Result<CopySource, BuildError> {
    let Some(from) = from else {
        return Ok(CopySource::Context);
    };
    let from = expand(loc, "COPY", from, ctx.escape, &|n| {
        super::lookup_args(&ctx.plan.global_args, n)
    })?;
    let (layers, key) = match resolve_source(
        &ctx.plan.stages,
        plan.index,
        &ctx.plan.named_contexts,
        &from,
    ) {
        Source::Stage(index) => {
            let done = deps
                .get(&index)
                .ok_or_else(|| loc.error("COPY", format!("stage {from} has not been built")))?;
            (done.config.rootfs.diff_ids.clone(), done.cache_key.clone())
        }
        Source::Image(name) => {
            let (config, image_id) = image_config(ctx, loc, "COPY", &name)?;
            (config.rootfs.diff_ids, image_id)
        }
        Source::Dir(dir) => {
            let root = BuildContext::open(&dir).map_err(|e| loc.error("COPY", e.to_string()))?;
            return Ok(CopySource::Dir(root));
        }
    };
    let dirs = StepDirs::read_only(ctx.store, &layers, "from")?;
    let mounted = MountedRootfs::mount(&dirs.rootfs)?;
    let root = BuildContext::image_root(&dirs.rootfs.merged_dir)
        .map_err(|e| loc.error("COPY", e.to_string()))?;
    Ok(CopySource::Layers(Box::new(MountedLayers {
        _mounted: mounted,
        _dirs: dirs,
        root,
        key,
    })))
}

/// Heredoc sources (`COPY <<EOF /dst`) become files of a scratch dir, read like a context.
// Boundary: heredoc files go to a store temp dir rbuild made.
#[allow(clippy::disallowed_methods)]
fn heredoc_files(
    ctx: &StepContext,
    stage: &Stage,
    loc: &Location,
    heredocs: &[dockerfile::Heredoc],
) -> Result<Option<(tempfile::TempDir, BuildContext)>, BuildError> {
    if heredocs.is_empty() {
        return Ok(None);
    }
    let dir = ctx.store.temp_dir("heredoc")?;
    for heredoc in heredocs {
        let content = if heredoc.expand {
            expand_heredoc(loc, &heredoc.content, ctx.escape, &|n| stage.lookup(n))?
        } else {
            heredoc.content.clone()
        };
        let path = dir.path().join(&heredoc.name);
        std::fs::write(&path, content).map_err(io_error("write heredoc"))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
            .map_err(io_error("chmod heredoc"))?;
    }
    let root =
        BuildContext::image_root(dir.path()).map_err(|e| loc.error("COPY", e.to_string()))?;
    Ok(Some((dir, root)))
}

/// Expands variables in a heredoc body as BuildKit does for unquoted delimiters: `$VAR` and
/// `${VAR...}` forms, quotes left as they are.
fn expand_heredoc(
    loc: &Location,
    body: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, BuildError> {
    let mut out = String::with_capacity(body.len());
    for line in body.split_inclusive('\n') {
        // Quotes in the body are content, not syntax: escape them for the word expander.
        let protected: String = line
            .chars()
            .flat_map(|c| {
                if c == '"' || c == '\'' {
                    vec![escape, c]
                } else {
                    vec![c]
                }
            })
            .collect();
        out.push_str(&expand(loc, "COPY", &protected, escape, lookup)?);
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
// Boundary: the download is a store temp file rbuild made.
#[allow(clippy::disallowed_methods)]
fn copy(
    ctx: &StepContext,
    stage: &mut Stage,
    plan: &StagePlan,
    deps: &BTreeMap<usize, StageResult>,
    loc: &Location,
    args: &CopyArgs,
    is_add: bool,
) -> Result<bool, BuildError> {
    let keyword = if is_add { "ADD" } else { "COPY" };
    if is_add {
        reject_flags(
            loc,
            keyword,
            &args.flags,
            &[
                "chown",
                "chmod",
                "unpack",
                "link",
                "exclude",
                "keep-git-dir",
                "checksum",
            ],
        )?;
        let is_url = |s: &String| s.starts_with("http://") || s.starts_with("https://");
        if let Some(remote) = args.sources.iter().find(|s| {
            (s.contains("://") || s.starts_with("git@"))
                && !crate::context::remote::is_git_url(s)
                && !is_url(s)
        }) {
            return Err(not_supported(
                loc,
                keyword,
                &format!("a remote source ({remote})"),
            ));
        }
        if flag_value(&args.flags, "checksum").is_some()
            && (args.sources.len() != 1
                || !args
                    .sources
                    .iter()
                    .all(|s| is_url(s) && !crate::context::remote::is_git_url(s)))
        {
            return Err(loc.error(
                keyword,
                "--checksum can only be used with a single http(s) source",
            ));
        }
    } else {
        reject_flags(
            loc,
            keyword,
            &args.flags,
            &["chown", "chmod", "from", "link", "parents", "exclude"],
        )?;
    }
    let bool_flag = |name: &str, default: bool| match flag_value(&args.flags, name) {
        None => Ok(default),
        Some("true") | Some("") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(loc.error(keyword, format!("--{name}={other}: expected true or false"))),
    };
    let unpack = bool_flag("unpack", is_add)?;
    let link = bool_flag("link", false)?;
    let parents = bool_flag("parents", false)?;
    let escape = ctx.escape;
    let chown = flag_value(&args.flags, "chown")
        .map(|v| expand(loc, keyword, v, escape, &|n| stage.lookup(n)))
        .transpose()?;
    let chmod_text = flag_value(&args.flags, "chmod").map(str::to_string);
    let chmod = chmod_text
        .as_deref()
        .map(Chmod::parse)
        .transpose()
        .map_err(|m| loc.error(keyword, m))?;
    let excludes: Vec<String> = args
        .flags
        .iter()
        .filter(|f| f.name == "exclude")
        .map(|f| {
            expand(
                loc,
                keyword,
                f.value.as_deref().unwrap_or(""),
                escape,
                &|n| stage.lookup(n),
            )
        })
        .collect::<Result<_, _>>()?;
    let exclude_rules = crate::context::IgnoreRules::parse(&excludes.join("\n"));

    let source = copy_source(ctx, plan, deps, loc, flag_value(&args.flags, "from"))?;
    let heredocs = heredoc_files(ctx, stage, loc, &args.heredocs)?;
    let mut sources = Vec::new();
    let mut selected = Vec::new();
    let mut git_dirs: Vec<tempfile::TempDir> = Vec::new();
    let mut downloads_kept_whole: Vec<std::path::PathBuf> = Vec::new();
    for raw in &args.sources {
        if let Some(name) = raw.strip_prefix("<<") {
            let Some((_, root)) = &heredocs else { continue };
            selected.extend(
                root.select(name)
                    .map_err(|e| loc.error(keyword, e.to_string()))?,
            );
            sources.push(raw.clone());
            continue;
        }
        let word = expand(loc, keyword, raw, escape, &|n| stage.lookup(n))?;
        if is_add
            && (word.starts_with("http://") || word.starts_with("https://"))
            && !crate::context::remote::is_git_url(&word)
        {
            // ADD of a URL: downloaded (mode 0600, mtime from Last-Modified), not extracted
            // unless --unpack=true says so.
            let temp = ctx.store.temp_dir("add-url")?;
            let checksum = flag_value(&args.flags, "checksum");
            let download = crate::context::http::download(&word, temp.path(), checksum)
                .map_err(|e| loc.error(keyword, e.to_string()))?;
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&download.path, std::fs::Permissions::from_mode(0o600))
                    .map_err(io_error("chmod download"))?;
                if let Some(modified) = download.modified {
                    if let Ok(file) = std::fs::File::options().write(true).open(&download.path) {
                        let _ = file.set_modified(
                            std::time::UNIX_EPOCH
                                + std::time::Duration::from_secs(modified.max(0) as u64),
                        );
                    }
                }
            }
            let root = BuildContext::image_root(temp.path())
                .map_err(|e| loc.error(keyword, e.to_string()))?;
            selected.extend(
                root.select(&download.name)
                    .map_err(|e| loc.error(keyword, e.to_string()))?,
            );
            if flag_value(&args.flags, "unpack") != Some("true") {
                downloads_kept_whole.push(download.path.clone());
            }
            git_dirs.push(temp);
            sources.push(word);
            continue;
        }
        if is_add && crate::context::remote::is_git_url(&word) {
            // ADD of a git repository: its files (one commit) land in dest.
            let keep_git_dir = bool_flag("keep-git-dir", false)?;
            let temp = ctx.store.temp_dir("add-git")?;
            let dir = crate::context::remote::fetch_git_keeping(&word, temp.path(), keep_git_dir)
                .map_err(|e| loc.error(keyword, e.to_string()))?;
            let root =
                BuildContext::image_root(&dir).map_err(|e| loc.error(keyword, e.to_string()))?;
            let mut found = root
                .select(".")
                .map_err(|e| loc.error(keyword, e.to_string()))?;
            for sel in &mut found {
                sel.name = String::new();
            }
            selected.extend(found);
            git_dirs.push(temp);
            sources.push(word);
            continue;
        }
        let root = match &source {
            CopySource::Context => ctx.context,
            CopySource::Layers(layers) => &layers.root,
            CopySource::Dir(root) => root,
        };
        // --parents keeps the source's path below an optional `/./` pivot.
        let pivot = word
            .find("/./")
            .map(|i| crate::context::clean_relative(&word[..i]));
        let mut found = root
            .select(&word)
            .map_err(|e| loc.error(keyword, e.to_string()))?;
        for sel in &mut found {
            if parents {
                let kept = match &pivot {
                    Some(p) if !p.is_empty() => sel
                        .path
                        .strip_prefix(&format!("{p}/"))
                        .unwrap_or(&sel.path)
                        .to_string(),
                    _ => sel.path.clone(),
                };
                sel.name = kept;
            }
            if !exclude_rules.is_empty() {
                let base = sel.path.clone();
                sel.entries.retain(|e| {
                    let full = if e.rel.is_empty() {
                        base.clone()
                    } else {
                        format!("{base}/{}", e.rel)
                    };
                    !exclude_rules.is_excluded(&full) && !exclude_rules.is_excluded(&e.rel)
                });
            }
        }
        found.retain(|sel| !sel.entries.is_empty());
        selected.extend(found);
        sources.push(word);
    }
    let dest_raw = expand(loc, keyword, &args.dest, escape, &|n| stage.lookup(n))?;
    let dest_is_dir = dest_raw.ends_with('/') || dest_raw == "." || dest_raw.ends_with("/.");
    if sources.len() > 1 && !dest_is_dir {
        return Err(loc.error(
            keyword,
            format!("when using {keyword} with more than one source file, the destination must be a directory and end with a /"),
        ));
    }
    // Several files (a wildcard matching more than one) also land inside dest.
    let several = selected.len() > 1;
    let dest = join_image_path(&stage.workdir(), &dest_raw);

    let mut created_by = String::from(keyword);
    if parents {
        created_by.push_str(" --parents");
    }
    if let Some(chown) = &chown {
        created_by.push_str(&format!(" --chown={chown}"));
    }
    if let Some(chmod) = &chmod_text {
        created_by.push_str(&format!(" --chmod={chmod}"));
    }
    for source in &sources {
        created_by.push(' ');
        created_by.push_str(source);
    }
    created_by.push_str(&format!(" {dest_raw} # buildkit"));

    let hashing = Instant::now();
    let content = hash_selection_with(&selected, &ctx.hashes);
    ctx.timings.add(&ctx.timings.hash_ns, hashing);
    let content = content.map_err(|e| loc.error(keyword, e.to_string()))?;
    let from_key = match &source {
        CopySource::Context => "context",
        CopySource::Layers(layers) => layers.key.as_str(),
        CopySource::Dir(_) => "named-context",
    };
    let options_key = format!("unpack={unpack} parents={parents} exclude={excludes:?} link={link}");
    let step_parts = [
        keyword,
        &options_key,
        from_key,
        &content,
        &dest,
        &dest_is_dir.to_string(),
        chown.as_deref().unwrap_or(""),
        chmod_text.as_deref().unwrap_or(""),
    ];
    // --link: the layer does not depend on the layers below, so neither does its key; the
    // stage's chain still moves on from it.
    let key = if link {
        Stage::independent_key(&step_parts)
    } else {
        stage.next_key(&step_parts)
    };
    let chained = |stage: &Stage| {
        if link {
            stage.next_key(&[&key])
        } else {
            key.clone()
        }
    };
    let _step_lock = ctx.store.step_lock(&key)?;
    if !stage.no_cache {
        if let Some(record) = ctx.lookup(stage, &key) {
            let next = chained(stage);
            record_layer(stage, record.diff_id, created_by, record.created);
            stage.cache_key = next;
            return Ok(true);
        }
    }
    // A --link layer is written over nothing: its own files only, no copied-up parents.
    let lower_layers: Vec<String> = if link {
        Vec::new()
    } else {
        stage.config.rootfs.diff_ids.clone()
    };
    let dirs = StepDirs::new(ctx.store, &lower_layers, "copy")?;
    {
        let mounted = MountedRootfs::mount(&dirs.rootfs)?;
        let owner = match (&chown, &source) {
            (Some(spec), _) => Some(resolve_owner_for(
                ctx, stage, &mounted, link, spec, loc, keyword,
            )?),
            // Files of another stage or image keep their owners, as in BuildKit.
            (None, CopySource::Layers(_)) => None,
            (None, CopySource::Context | CopySource::Dir(_)) => Some((0, 0)),
        };
        // ADD extracts local archives (told by content) into dest; the rest is copied.
        let (archives, plain): (Vec<_>, Vec<_>) = selected.iter().cloned().partition(|sel| {
            unpack
                && !sel.is_dir()
                && !sel
                    .entries
                    .first()
                    .is_some_and(|e| downloads_kept_whole.contains(&e.host_path))
                && sel.entries.first().is_some_and(|e| {
                    // Only a regular file is opened to sniff it: a FIFO would block.
                    matches!(e.kind, crate::context::SourceKind::File { .. })
                        && super::add::archive_kind(e).is_some()
                })
        });
        for sel in &archives {
            let Some(entry) = sel.entries.first() else {
                continue;
            };
            // Extracted files keep the archive's owners unless --chown says otherwise.
            let chown_owner = if chown.is_some() { owner } else { None };
            super::add::extract_archive(mounted.root_fd(), entry, &dest, chown_owner)
                .map_err(|m| loc.error(keyword, m))?;
        }
        let attrs = CopyAttrs {
            owner,
            chmod,
            keep_dir_names: parents,
        };
        copy_sources(
            mounted.root_fd(),
            &plain,
            &dest,
            several || dest_is_dir || parents,
            attrs,
        )
        .map_err(|m| loc.error(keyword, m))?;
    }
    drop(source);
    let diff_id = commit_upper(ctx, &dirs.rootfs.upper_dir)?;
    let next = chained(stage);
    finish_step_chained(ctx, stage, &key, next, diff_id, created_by)?;
    Ok(false)
}

/// --chown by name: resolved in the destination stage's /etc/passwd and /etc/group (for a
/// --link layer, written over nothing, the stage's own view is mounted to read them).
fn resolve_owner_for(
    ctx: &StepContext,
    stage: &Stage,
    mounted: &MountedRootfs,
    link: bool,
    spec: &str,
    loc: &Location,
    keyword: &'static str,
) -> Result<(u32, u32), BuildError> {
    if !link || spec.split(':').all(|part| part.parse::<u32>().is_ok()) {
        return resolve_owner(mounted, spec, loc, keyword);
    }
    let view = StepDirs::read_only(ctx.store, &stage.config.rootfs.diff_ids, "chown")?;
    let view_mounted = MountedRootfs::mount(&view.rootfs)?;
    resolve_owner(&view_mounted, spec, loc, keyword)
}

fn workdir(
    ctx: &StepContext,
    stage: &mut Stage,
    loc: &Location,
    path: &str,
) -> Result<bool, BuildError> {
    let wd = join_image_path(&stage.workdir(), path);
    stage.config.config.working_dir = wd.clone();
    let created_by = format!("WORKDIR {wd}");
    if wd == "/" {
        stage.add_history(created_by, created_time(ctx.options), true);
        return Ok(false);
    }
    let user = stage.config.config.user.clone();
    let key = stage.next_key(&["WORKDIR", &wd, &user]);
    let _step_lock = ctx.store.step_lock(&key)?;
    if try_cache(ctx, stage, &key, &created_by) {
        return Ok(true);
    }
    let dirs = StepDirs::new(ctx.store, &stage.config.rootfs.diff_ids, "workdir")?;
    {
        let mounted = MountedRootfs::mount(&dirs.rootfs)?;
        let owner = if user.is_empty() {
            (0, 0)
        } else {
            resolve_owner(&mounted, &user, loc, "WORKDIR")?
        };
        mkdir_all_in_root(mounted.root_fd(), &wd, 0o755, owner)
            .map_err(|m| loc.error("WORKDIR", m))?;
    }
    let diff_id = commit_upper(ctx, &dirs.rootfs.upper_dir)?;
    finish_step(ctx, stage, key, diff_id, created_by)?;
    Ok(false)
}

/// `80`, `80/udp`, `8000-8002/tcp` -> `80/tcp`, ... as docker's nat.ParsePortSpecs.
fn parse_port(spec: &str) -> Result<Vec<String>, String> {
    let (range, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let parse = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("invalid containerPort: {spec}"))
    };
    let (start, end) = match range.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => (parse(range)?, parse(range)?),
    };
    if end < start {
        return Err(format!(
            "invalid range specified for container port: {spec}"
        ));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

const SIGNALS: [&str; 31] = [
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
    "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
    "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
];

fn validate_signal(signal: &str) -> Result<(), String> {
    if let Ok(n) = signal.parse::<u32>() {
        return if (1..=64).contains(&n) {
            Ok(())
        } else {
            Err(format!("invalid signal: {signal}"))
        };
    }
    let name = signal.strip_prefix("SIG").unwrap_or(signal);
    let realtime = name.starts_with("RTMIN") || name.starts_with("RTMAX");
    if SIGNALS.contains(&name) || realtime {
        Ok(())
    } else {
        Err(format!("invalid signal: {signal}"))
    }
}

/// Go duration text (`30s`, `1m30s`, `500ms`) -> nanoseconds.
fn parse_duration(text: &str) -> Result<i64, String> {
    let mut total: f64 = 0.0;
    let mut rest = text;
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..number_len]
            .parse()
            .map_err(|_| format!("invalid duration {text:?}"))?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(format!("invalid duration {text:?}")),
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Ok(total as i64)
}

/// Go's time.Duration String().
fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let secs = ns as f64 / 1e9;
    if ns < 1_000_000_000 {
        return if ns % 1_000_000 == 0 {
            format!("{}ms", ns / 1_000_000)
        } else {
            format!("{secs}s")
        };
    }
    let h = ns / 3_600_000_000_000;
    let m = (ns / 60_000_000_000) % 60;
    let s = (ns % 60_000_000_000) as f64 / 1e9;
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{s}s"));
    out
}

fn healthcheck(stage: &Stage, check: &Healthcheck) -> Result<(serde_json::Value, String), String> {
    let (flags, command) = match check {
        Healthcheck::Disable => {
            let value = serde_json::json!({"Test": ["NONE"]});
            return Ok((
                value,
                "&{[\"NONE\"] \"0s\" \"0s\" \"0s\" \"0s\" '\\x00'}".into(),
            ));
        }
        Healthcheck::Check { flags, command } => (flags, command),
    };
    let test: Vec<String> = match command {
        Command::Exec(args) => std::iter::once("CMD".to_string())
            .chain(args.iter().cloned())
            .collect(),
        Command::Shell(text) => vec!["CMD-SHELL".to_string(), text.clone()],
    };
    let _ = stage;
    let mut durations = [0i64; 4];
    let names = ["interval", "timeout", "start-period", "start-interval"];
    let mut retries: i64 = 0;
    for flag in flags {
        let value = flag.value.as_deref().unwrap_or("");
        if let Some(i) = names.iter().position(|n| *n == flag.name) {
            let ns = parse_duration(value)?;
            if ns != 0 && ns < 1_000_000 {
                return Err(format!("--{} cannot be less than 1ms", flag.name));
            }
            durations[i] = ns;
        } else if flag.name == "retries" {
            retries = value
                .parse()
                .map_err(|_| format!("invalid --retries value {value:?}"))?;
            if retries < 0 {
                return Err("--retries cannot be negative".into());
            }
        } else {
            return Err(format!("unknown flag: --{}", flag.name));
        }
    }
    let mut value = serde_json::Map::new();
    value.insert("Test".into(), serde_json::json!(test));
    for (key, ns) in ["Interval", "Timeout", "StartPeriod", "StartInterval"]
        .iter()
        .zip(durations)
    {
        if ns != 0 {
            value.insert((*key).into(), serde_json::json!(ns));
        }
    }
    if retries != 0 {
        value.insert("Retries".into(), serde_json::json!(retries));
    }
    let text = format!(
        "&{{{} {} {} {} {} '\\x{:02x}'}}",
        go_quoted_list(&test),
        super::history::go_quote(&go_duration(durations[0])),
        super::history::go_quote(&go_duration(durations[1])),
        super::history::go_quote(&go_duration(durations[2])),
        super::history::go_quote(&go_duration(durations[3])),
        retries
    );
    Ok((serde_json::Value::Object(value), text))
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // fixtures the tests create
mod tests {
    use super::*;

    #[test]
    fn ports_parse_like_docker() {
        assert_eq!(parse_port("80").expect("port"), ["80/tcp"]);
        assert_eq!(parse_port("53/udp").expect("port"), ["53/udp"]);
        assert_eq!(
            parse_port("8000-8002").expect("range"),
            ["8000/tcp", "8001/tcp", "8002/tcp"]
        );
        assert!(parse_port("http").is_err());
        assert!(parse_port("80/xyz").is_err());
        assert!(parse_port("9-1").is_err());
    }

    #[test]
    fn signals_and_durations() {
        for ok in ["SIGTERM", "TERM", "9", "SIGRTMIN+3", "KILL"] {
            assert!(validate_signal(ok).is_ok(), "{ok}");
        }
        for bad in ["SIGFOO", "0", "65", ""] {
            assert!(validate_signal(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_duration("30s"), Ok(30_000_000_000));
        assert_eq!(parse_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_duration("500ms"), Ok(500_000_000));
        assert!(parse_duration("5 minutes").is_err());
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(300_000_000_000), "5m0s");
        assert_eq!(go_duration(3_000_000_000), "3s");
        assert_eq!(go_duration(0), "0s");
    }
}
