//! The solver: runs the planned stages (in parallel where independent), walks each stage's
//! instructions, computes every step's cache key, runs or reuses it, and records config and
//! history as BuildKit does.

mod add;
mod config_steps;
pub mod copy;
mod copy_add;
mod copy_select;
pub mod emulation;
mod error;
mod history;
mod images;
mod instructions;
#[cfg(test)]
mod keys_tests;
mod metadata;
mod result;
mod rootfs;
mod run;
mod squash;
mod stage;
mod steps;
mod time;
mod workdir;

use std::collections::BTreeMap;
use std::path::PathBuf;

use sha2::{Digest as _, Sha256};

pub use error::{excerpt, BuildError, Location};
pub use result::{build_platforms, BuildResult, ResultImage};
pub use time::{created_time, rfc3339, rfc3339_now};

use std::sync::atomic::{AtomicBool, Ordering};

use crate::context::BuildContext;
use crate::dockerfile::{self, InstructionKind};
use crate::image::{History, ImageConfig};
use crate::plan::{self, Plan, PlanInput, Platform};
use crate::progress::Progress;
use crate::store::Store;

/// Everything `rbuild build` was asked, validated once.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub context_dir: PathBuf,
    /// The Dockerfile; default `<context>/Dockerfile`.
    pub dockerfile: Option<PathBuf>,
    /// The Dockerfile's text when it came from stdin (`-f -`).
    pub dockerfile_text: Option<String>,
    pub build_args: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub no_cache: bool,
    /// The stage to build (`--target`); default the last.
    pub target: Option<String>,
    /// How many stages may build at once; 0 means one per core.
    pub jobs: usize,
    /// `--secret id=...`: id -> the secret's bytes, kept out of layers, history and keys.
    pub secrets: BTreeMap<String, Vec<u8>>,
    /// `--network` default for RUN steps.
    pub network: Option<crate::dockerfile::Network>,
    /// `--check`: run the build checks only.
    pub check_only: bool,
    /// `--no-cache-filter`: stages (by name) that must not use the cache.
    pub no_cache_filter: Vec<String>,
    /// `--build-context NAME=...`.
    pub named_contexts: BTreeMap<String, crate::plan::NamedContext>,
    /// `--add-host HOST:IP`, added to the steps' /etc/hosts.
    pub extra_hosts: Vec<(String, String)>,
    /// `--platform`: the platform to build for (default: this host's).
    pub platform: Option<crate::plan::Platform>,
    /// Put the platform in every step's header (`[linux/arm64 2/5]`): one of several
    /// platforms building at once.
    pub label_platform: bool,
    /// `--cache-from`: caches to import from.
    pub cache_from: Vec<crate::cache::CacheFrom>,
    /// `--ssh ID=SOCKET`: ssh-agent sockets for RUN --mount=type=ssh.
    pub ssh: BTreeMap<String, PathBuf>,
    /// `SOURCE_DATE_EPOCH`: the `created` time of the config and history, for reproducible
    /// images; None means now.
    pub source_date_epoch: Option<i64>,
    /// `--pull`: when base images are pulled.
    pub pull: PullPolicy,
    /// `--ulimit`: resource limits of RUN steps.
    pub ulimits: Vec<rbuild_runtime::ulimit::Ulimit>,
    /// `--shm-size`: bytes of RUN steps' /dev/shm.
    pub shm_size: Option<u64>,
    /// `--squash`: the layers the build makes over its base become one.
    pub squash: bool,
    /// `--cache-to type=inline` (or the build arg `BUILDKIT_INLINE_CACHE=1`): the image's
    /// config carries the cache records of its own steps.
    pub inline_cache: bool,
    /// `--isolation none`: steps run in place on this container's root, leaving these paths
    /// (the ones the build uses; mount points are found by the worker) alone. None: the
    /// namespaced sandbox.
    pub in_place: Option<Vec<PathBuf>>,
    /// `--allow security.insecure`: RUN --security=insecure may run.
    pub allow_insecure: bool,
    /// The context is a tree rbuild was given (a tar from stdin or a URL, a git repository),
    /// not a directory of the user's: its Dockerfile is resolved inside it.
    pub untrusted_context: bool,
    /// The Dockerfile read and parsed once for the whole `rbuild build` (every platform's
    /// build shares it); read by [`build`] when unset.
    pub loaded: Option<std::sync::Arc<LoadedDockerfile>>,
    /// Leave out the Dockerfile's warnings (another platform's build of the same Dockerfile
    /// prints them).
    pub quiet_warnings: bool,
}

/// A boolean as Go's strconv.ParseBool reads it (BuildKit's frontend options).
pub fn go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// The hostname of RUN steps, BuildKit's (executor/oci/hosts.go).
pub const DEFAULT_HOSTNAME: &str = "buildkitsandbox";

impl BuildOptions {
    /// A BuildKit frontend option given as a build arg (`BUILDKIT_*`), read as a boolean the
    /// way Go's strconv.ParseBool reads it; None when absent or not a boolean.
    fn buildkit_bool(&self, name: &str) -> Option<bool> {
        go_bool(self.build_args.get(name)?)
    }

    /// `--cache-to type=inline`, or `--build-arg BUILDKIT_INLINE_CACHE=1` as BuildKit reads it.
    pub fn wants_inline_cache(&self) -> bool {
        self.inline_cache || self.buildkit_bool("BUILDKIT_INLINE_CACHE") == Some(true)
    }

    /// `--build-arg BUILDKIT_MULTI_PLATFORM=1`: an image index even for one platform.
    pub fn wants_index(&self) -> bool {
        self.buildkit_bool("BUILDKIT_MULTI_PLATFORM") == Some(true)
    }

    /// `--build-arg BUILDKIT_CONTEXT_KEEP_GIT_DIR=1`: a git context keeps its `.git`.
    pub fn keeps_git_dir(&self) -> bool {
        self.buildkit_bool("BUILDKIT_CONTEXT_KEEP_GIT_DIR") == Some(true)
    }

    /// RUN steps' hostname: `--build-arg BUILDKIT_SANDBOX_HOSTNAME=NAME`, else BuildKit's.
    pub fn sandbox_hostname(&self) -> &str {
        self.build_args
            .get("BUILDKIT_SANDBOX_HOSTNAME")
            .map(String::as_str)
            .filter(|h| !h.is_empty())
            .unwrap_or(DEFAULT_HOSTNAME)
    }

    /// `--build-arg BUILDKIT_CACHE_MOUNT_NS=NS`: cache mount ids are `NS/ID`.
    pub fn cache_mount_namespace(&self) -> Option<&str> {
        self.build_args
            .get("BUILDKIT_CACHE_MOUNT_NS")
            .map(String::as_str)
            .filter(|ns| !ns.is_empty())
    }

    /// The sandbox's settings as a RUN step's key shows them: `--ulimit`, `--shm-size` and a
    /// hostname other than BuildKit's (empty without them, so keys without them stay).
    pub(crate) fn limits_text(&self) -> String {
        let mut parts: Vec<String> = self
            .ulimits
            .iter()
            .map(|u| format!("ulimit {}", u.text()))
            .collect();
        if let Some(size) = self.shm_size {
            parts.push(format!("shm {size}"));
        }
        if self.sandbox_hostname() != DEFAULT_HOSTNAME {
            parts.push(format!("hostname {}", self.sandbox_hostname()));
        }
        parts.join(" ")
    }
}

/// `--pull[=always|missing|never|newer]`: when a base image is pulled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PullPolicy {
    /// Only when the store does not have it (the default).
    #[default]
    Missing,
    /// The FROM image's tag is resolved again at its registry every build (`--pull`).
    Always,
    /// Never: an image the store lacks is an error.
    Never,
    /// As podman's: pulled when the registry's is newer; rbuild resolves the tag again and
    /// transfers only what changed, as with `always`.
    Newer,
}

/// A Dockerfile read and parsed: its text (for excerpts), the name messages call it by, and
/// its syntax tree.
#[derive(Debug)]
pub struct LoadedDockerfile {
    pub source: String,
    pub file: String,
    pub parsed: dockerfile::Dockerfile,
}

impl LoadedDockerfile {
    /// Reads ([`dockerfile_source`]) and parses the Dockerfile `options` name.
    pub fn load(options: &BuildOptions) -> Result<std::sync::Arc<LoadedDockerfile>, BuildError> {
        let (source, file) = dockerfile_source(options)?;
        let parsed = dockerfile::parse(&source).map_err(|e| BuildError::Syntax {
            file: file.clone(),
            line: e.line,
            message: e.message.clone(),
            excerpt: excerpt(&source, e.line, e.line),
        })?;
        Ok(std::sync::Arc::new(LoadedDockerfile {
            source,
            file,
            parsed,
        }))
    }
}

/// Dockerfiles larger than this are refused rather than read into memory.
const DOCKERFILE_LIMIT: u64 = 16 << 20;

/// The Dockerfile's text and the name messages call it by: the text given on stdin, the file
/// named with `-f` (a host path the user chose), or `Dockerfile` in the context. In a context
/// rbuild was given (tar, git, URL) that name is resolved inside the context, so a symlink
/// there cannot read a host file; a FIFO or device is refused instead of blocking.
pub fn dockerfile_source(options: &BuildOptions) -> Result<(String, String), BuildError> {
    if let Some(text) = &options.dockerfile_text {
        return Ok((text.clone(), "Dockerfile (stdin)".to_string()));
    }
    let (path, bytes) = match &options.dockerfile {
        Some(path) => (
            path.clone(),
            boundary::read_regular_file(path, DOCKERFILE_LIMIT),
        ),
        None => {
            // `Dockerfile`, else podman's `Containerfile` (with both, `Dockerfile` wins, as
            // docker reads only it). An untrusted context's is read inside it; the user's own
            // may be a link to elsewhere of theirs.
            let read = |name: &str| {
                if !options.untrusted_context {
                    return boundary::read_regular_file(
                        &options.context_dir.join(name),
                        DOCKERFILE_LIMIT,
                    );
                }
                boundary::open_root(&options.context_dir)
                    .map_err(|source| boundary::RootError::Io {
                        action: "open",
                        path: options.context_dir.display().to_string(),
                        source,
                    })
                    .and_then(|root| boundary::read_in_root(&root, name, DOCKERFILE_LIMIT))
            };
            match read("Dockerfile") {
                Err(e) if e.is_not_found() => match read("Containerfile") {
                    Err(c) if c.is_not_found() => (options.context_dir.join("Dockerfile"), Err(e)),
                    found => (options.context_dir.join("Containerfile"), found),
                },
                found => (options.context_dir.join("Dockerfile"), found),
            }
        }
    };
    let bytes = bytes.map_err(|source| BuildError::ReadDockerfile {
        path: path.clone(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| BuildError::ReadDockerfile {
        path: path.clone(),
        source: boundary::RootError::Io {
            action: "read (it is not UTF-8)",
            path: path.display().to_string(),
            source: std::io::ErrorKind::InvalidData.into(),
        },
    })?;
    Ok((text, path.display().to_string()))
}

#[derive(Debug, Clone)]
pub struct BuildOutcome {
    pub image_id: String,
    pub config: ImageConfig,
    /// The image the target stage starts from (through `FROM <stage>` chains), as the build
    /// resolved it: None for `FROM scratch`.
    pub base: Option<BaseRef>,
    /// The cache records the build used, for `--cache-to`.
    pub cache: crate::cache::UsedRecords,
}

/// An image a stage starts from: the name after ARG expansion (predefined platform args
/// included) and the image id the build used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseRef {
    pub name: String,
    pub image_id: String,
}

/// Time spent in the parts of a build, for RBUILD_TIMINGS=1.
#[derive(Debug, Default)]
pub(crate) struct Timings {
    pub hash_ns: std::sync::atomic::AtomicU64,
    pub lookup_ns: std::sync::atomic::AtomicU64,
}

impl Timings {
    pub fn add(&self, counter: &std::sync::atomic::AtomicU64, since: std::time::Instant) {
        counter.fetch_add(since.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    fn ms(counter: &std::sync::atomic::AtomicU64) -> f64 {
        counter.load(Ordering::Relaxed) as f64 / 1e6
    }
}

/// What a finished stage hands to the stages that use it.
#[derive(Debug, Clone)]
pub(crate) struct StageResult {
    pub config: ImageConfig,
    pub cache_key: String,
    pub args: Vec<(String, Option<String>)>,
    pub base: Option<BaseRef>,
}

/// The state of the stage being built.
pub(crate) struct Stage {
    pub config: ImageConfig,
    /// Cache key of the last step (the chain every later key extends).
    pub cache_key: String,
    /// ARGs declared in this stage (or inherited through FROM <stage>), in order, with their
    /// effective values.
    pub args: Vec<(String, Option<String>)>,
    /// CMD was set in this stage (ENTRYPOINT then keeps it).
    pub cmd_set: bool,
    /// --no-cache, or this stage is named in --no-cache-filter.
    pub no_cache: bool,
    /// The stage's index in the plan.
    pub index: usize,
    /// The image the stage starts from (None for scratch).
    pub base: Option<BaseRef>,
}

impl Stage {
    /// Looks a variable up as the Dockerfile sees it: ENV first, then ARGs.
    pub fn lookup(&self, name: &str) -> Option<String> {
        if let Some(v) = self.config.env_value(name) {
            return Some(v.to_string());
        }
        lookup_args(&self.args, name)
    }

    pub fn shell(&self) -> Vec<String> {
        self.config
            .config
            .shell
            .clone()
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    pub fn workdir(&self) -> String {
        if self.config.config.working_dir.is_empty() {
            "/".into()
        } else {
            self.config.config.working_dir.clone()
        }
    }

    pub fn add_history(&mut self, created_by: String, created: String, empty_layer: bool) {
        self.config.history.push(History {
            created: Some(created),
            created_by: Some(created_by),
            comment: Some("buildkit.dockerfile.v0".into()),
            empty_layer,
            ..History::default()
        });
    }

    /// A key from the step's inputs alone, for steps whose result does not depend on the
    /// layers below (COPY --link).
    pub fn independent_key(parts: &[&str]) -> String {
        let mut hasher = Sha256::new();
        hasher.update(b"independent");
        for part in parts {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        hex::encode(hasher.finalize())
    }

    /// Extends the cache chain with this step's inputs.
    pub fn next_key(&self, parts: &[&str]) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.cache_key.as_bytes());
        for part in parts {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        hex::encode(hasher.finalize())
    }
}

/// Builds the Dockerfile into an image in `store` (the exporters name it). Stages the target needs run in
/// dependency order, independent ones in parallel (at most `options.jobs` at once).
pub fn build(
    store: &Store,
    options: &BuildOptions,
    progress: &Progress,
) -> Result<BuildOutcome, BuildError> {
    use crate::worker::{SnapshotterChoice, Worker};
    if let Some(used) = &options.in_place {
        let mut used = used.clone();
        used.push(store.root().to_path_buf());
        let worker = Worker::in_place(store, crate::worker::kept_paths(&used))?;
        return build_on(store, options, progress, worker);
    }
    let (choice, new) = SnapshotterChoice::for_store(store);
    if let (SnapshotterChoice::Walk(why), true) = (&choice, new) {
        progress.notice(&format!(
            "notice: {why}: steps run on a working tree and their layers are found by walking \
             it (slower than overlayfs)"
        ));
    }
    build_on(store, options, progress, Worker::with(&choice)?)
}

/// [`build`] with `worker`'s executor and snapshotter.
pub(crate) fn build_on(
    store: &Store,
    options: &BuildOptions,
    progress: &Progress,
    worker: crate::worker::Worker,
) -> Result<BuildOutcome, BuildError> {
    let loaded = match &options.loaded {
        Some(loaded) => loaded.clone(),
        None => LoadedDockerfile::load(options)?,
    };
    let (source, file, parsed) = (&loaded.source, loaded.file.clone(), &loaded.parsed);
    if !options.quiet_warnings {
        // Empty continuation lines are the check NoEmptyContinuation's to report.
        for warning in parsed
            .warnings
            .iter()
            .filter(|w| !w.message.starts_with("Empty continuation line"))
        {
            progress.notice(&format!(
                "warning: {file}:{}: {}",
                warning.line, warning.message
            ));
        }
    }
    let mut context = BuildContext::open_for(&options.context_dir, options.dockerfile.as_deref())
        .map_err(|source| BuildError::OpenContext {
        path: options.context_dir.clone(),
        source,
    })?;
    let lines = error::SourceLines::new(source);
    let locate = |ins: &dockerfile::Instruction| Location {
        file: file.clone(),
        line: ins.span.line,
        end_line: ins.span.end_line,
        excerpt: lines.excerpt(ins.span.line, ins.span.end_line),
    };
    let platform = options.platform.clone().unwrap_or_else(Platform::host);
    let plan = plan_of(&loaded, options, &platform)?;

    let checks = check_config(options, &loaded)?;
    run_checks(store, options, &loaded, &plan, &context, &checks, progress)?;

    let started = std::time::Instant::now();
    let mut platforms = vec![plan.platform.clone()];
    platforms.extend(
        plan.order
            .iter()
            .filter_map(|i| plan.stages[*i].platform.clone()),
    );
    if options.in_place.is_some() {
        emulation::check_host_handlers(&platforms, progress)?;
    } else {
        emulation::prepare(store, &platforms, progress)?;
    }
    let hashes = std::sync::Arc::new(crate::context::HashCache::load(hash_file(store, &context)));
    context.remember_with(hashes.clone());
    let ctx = steps::StepContext {
        timings: Timings::default(),
        progress_mode: progress.mode(),
        hashes,
        imported: crate::cache::Imported::open(&options.cache_from),
        used: crate::cache::UsedCache::default(),
        store,
        context: &context,
        options,
        escape: parsed.directives.escape,
        plan: &plan,
        cancelled: AtomicBool::new(false),
        lease: store.lease()?,
        worker,
        checks,
        progress,
    };
    let results = run_stages(&ctx, &plan, progress, &locate);
    ctx.hashes.save();
    let results = results?;
    let Some(target) = results.get(&plan.target) else {
        return Err(BuildError::Io {
            action: "build the target stage".into(),
            source: std::io::Error::other("it did not run"),
        });
    };

    warn_unused_build_args(options, parsed, progress);
    let mut config = final_config(target, options);
    if options.squash {
        let base_layers = base_layer_count(store, target);
        squash::squash(store, &ctx.lease, &mut config, base_layers)?;
    }
    let used = used_records(&ctx, &plan);
    if options.wants_inline_cache() {
        let inline = crate::cache::inline_records(store, &used.image, &config.rootfs.diff_ids);
        config
            .other
            .insert(crate::cache::INLINE_FIELD.to_string(), inline);
    }
    let config_bytes = config.to_canonical_json().map_err(|e| BuildError::Io {
        action: "serialize image config".into(),
        source: std::io::Error::other(e),
    })?;
    let steps_done = started.elapsed();
    let writing = std::time::Instant::now();
    let image_id = store.put_blob(&config_bytes)?;
    // Recorded as an image of the store; the exporters name it.
    store.add_image(&image_id, &[])?;
    if std::env::var_os("RBUILD_TIMINGS").is_some() {
        report_timings(&ctx.timings, steps_done, writing.elapsed(), progress);
    }
    Ok(BuildOutcome {
        image_id,
        config,
        base: target.base.clone(),
        cache: used,
    })
}

/// The plan of `loaded` for `options` and `platform`, errors pointing at their line.
fn plan_of<'a>(
    loaded: &'a LoadedDockerfile,
    options: &'a BuildOptions,
    platform: &'a Platform,
) -> Result<Plan<'a>, BuildError> {
    let parsed = &loaded.parsed;
    let plan_input = PlanInput {
        instructions: &parsed.instructions,
        escape: parsed.directives.escape,
        build_args: &options.build_args,
        target: options.target.as_deref(),
        platform,
        named_contexts: &options.named_contexts,
    };
    plan::plan(&plan_input).map_err(|e| match e.instruction {
        Some(ins) => Location {
            file: loaded.file.clone(),
            line: ins.span.line,
            end_line: ins.span.end_line,
            excerpt: excerpt(&loaded.source, ins.span.line, ins.span.end_line),
        }
        .error(e.keyword, e.message),
        None => BuildError::Syntax {
            file: loaded.file.clone(),
            line: 1,
            message: e.message,
            excerpt: excerpt(&loaded.source, 1, 1),
        },
    })
}

/// What `--call=targets` or `--call=outline` prints instead of building.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Describe {
    Targets,
    Outline,
}

/// The Dockerfile's targets, or what the target takes (see `plan::outline`).
pub fn describe(options: &BuildOptions, what: Describe) -> Result<String, BuildError> {
    let loaded = match &options.loaded {
        Some(loaded) => loaded.clone(),
        None => LoadedDockerfile::load(options)?,
    };
    let platform = options.platform.clone().unwrap_or_else(Platform::host);
    let plan = plan_of(&loaded, options, &platform)?;
    Ok(match what {
        Describe::Targets => plan::outline::targets(&plan),
        Describe::Outline => {
            let global: Vec<dockerfile::Instruction> = loaded
                .parsed
                .instructions
                .iter()
                .take_while(|ins| !matches!(ins.kind, InstructionKind::From { .. }))
                .cloned()
                .collect();
            plan::outline::outline(&plan, &global)
        }
    })
}

/// Which checks run: the build arg BUILDKIT_DOCKERFILE_CHECK when given (it replaces the
/// directive, as in BuildKit's frontend), else the Dockerfile's `# check=` directive.
fn check_config(
    options: &BuildOptions,
    loaded: &LoadedDockerfile,
) -> Result<plan::checks::CheckDirective, BuildError> {
    let (origin, text) = match options.build_args.get("BUILDKIT_DOCKERFILE_CHECK") {
        Some(value) => (
            "--build-arg BUILDKIT_DOCKERFILE_CHECK".to_string(),
            Some(value.as_str()),
        ),
        None => (
            format!("{}: the # check= directive", loaded.file),
            loaded.parsed.directives.check.as_deref(),
        ),
    };
    plan::checks::parse_check_directive(text)
        .map_err(|source| BuildError::CheckOptions { origin, source })
}

/// Build checks: printed as warnings; fatal with `# check=error=true`; all there is to do
/// with --check.
fn run_checks(
    store: &Store,
    options: &BuildOptions,
    loaded: &LoadedDockerfile,
    plan: &Plan,
    context: &BuildContext,
    checks: &plan::checks::CheckDirective,
    progress: &Progress,
) -> Result<(), BuildError> {
    // The names of the ENV of a base image, for the checks that look at them.
    let image_env = |name: &str| -> Vec<String> {
        let config = store
            .resolve_image(name)
            .and_then(|id| store.read_blob(&id))
            .ok();
        let config: Option<ImageConfig> =
            config.and_then(|bytes| serde_json::from_slice(&bytes).ok());
        config
            .map(|c| {
                c.config
                    .env
                    .iter()
                    .map(|e| e.split('=').next().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let parsed = &loaded.parsed;
    let findings = plan::checks::run_checks(&plan::checks::CheckInput {
        dockerfile: parsed,
        plan,
        ignore: context.ignore_rules(),
        image_env: &image_env,
        config: checks,
    });
    for finding in findings.iter().filter(|_| !options.quiet_warnings) {
        progress.notice(&format!(
            "warning: {}:{}: {}: {}",
            loaded.file, finding.line, finding.rule, finding.message
        ));
    }
    if options.check_only || (checks.error && !findings.is_empty()) {
        return Err(BuildError::Checks {
            file: loaded.file.clone(),
            count: findings.len(),
            check_only: options.check_only,
        });
    }
    Ok(())
}

/// Where the context's file digests are remembered between builds: one file per context dir.
fn hash_file(store: &Store, context: &BuildContext) -> PathBuf {
    let root = context.root().to_string_lossy().into_owned();
    store.root().join("context-hashes").join(format!(
        "{}.json",
        hex::encode(Sha256::digest(root.as_bytes()))
    ))
}

/// `--build-arg`s no ARG of the Dockerfile declares (proxy args need none), as BuildKit warns.
fn warn_unused_build_args(
    options: &BuildOptions,
    parsed: &dockerfile::Dockerfile,
    progress: &Progress,
) {
    let consumed: Vec<&str> = parsed
        .instructions
        .iter()
        .flat_map(|ins| match &ins.kind {
            InstructionKind::Arg(decls) => {
                decls.iter().map(|d| d.name.as_str()).collect::<Vec<_>>()
            }
            _ => Vec::new(),
        })
        .collect();
    let unused: Vec<&str> = options
        .build_args
        .keys()
        .map(String::as_str)
        // BUILDKIT_* args are options of the frontend (BUILDKIT_INLINE_CACHE), as BuildKit's.
        .filter(|k| !consumed.contains(k) && !plan::is_proxy_arg(k) && !k.starts_with("BUILDKIT_"))
        .collect();
    if !unused.is_empty() {
        progress.notice(&format!(
            "warning: build-args [{}] were not consumed",
            unused.join(" ")
        ));
    }
}

/// The image's config: the target stage's, with --label and its `created`.
fn final_config(target: &StageResult, options: &BuildOptions) -> ImageConfig {
    let mut config = target.config.clone();
    for (key, value) in &options.labels {
        config.config.labels.insert(key.clone(), value.clone());
    }
    // The image is as old as its newest step: a rebuild where every step hits gives the same
    // config, so the same image id.
    config.created = match options.source_date_epoch {
        Some(_) => Some(created_time(options)),
        None => config
            .history
            .iter()
            .rev()
            .find_map(|h| h.created.clone())
            .or_else(|| Some(created_time(options))),
    };
    config
}

/// How many of the target's layers (bottom first) are its base image's.
fn base_layer_count(store: &Store, target: &StageResult) -> usize {
    let Some(base) = &target.base else {
        return 0;
    };
    let base_config: Option<ImageConfig> = store
        .read_blob(&base.image_id)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    match base_config {
        Some(base)
            if target
                .config
                .rootfs
                .diff_ids
                .starts_with(&base.rootfs.diff_ids) =>
        {
            base.rootfs.diff_ids.len()
        }
        _ => 0,
    }
}

/// RBUILD_TIMINGS=1: where a build's time went, and how often the Dockerfile was parsed.
fn report_timings(
    timings: &Timings,
    steps: std::time::Duration,
    writing: std::time::Duration,
    progress: &Progress,
) {
    progress.notice(&format!(
        "timings: steps {:.1} ms (context hashing {:.1} ms, cache lookups {:.1} ms), writing the image {:.1} ms; Dockerfile parsed {} time(s)",
        steps.as_secs_f64() * 1e3,
        Timings::ms(&timings.hash_ns),
        Timings::ms(&timings.lookup_ns),
        writing.as_secs_f64() * 1e3,
        dockerfile::parse_count()
    ));
}

/// The label of a stage's step headers: the stage's (when several build) after the
/// platform's (when several platforms build), as BuildKit writes `[linux/arm64 builder 2/5]`.
fn step_label(options: &BuildOptions, stage: Option<String>) -> Option<String> {
    let platform = options
        .platform
        .as_ref()
        .filter(|_| options.label_platform)
        .map(|p| p.text());
    match (platform, stage) {
        (Some(platform), Some(stage)) => Some(format!("{platform} {stage}")),
        (platform, stage) => platform.or(stage),
    }
}

/// Runs the planned stages: each starts once the stages it needs are done, up to `jobs` at a
/// time. After a failure no new stage starts; running ones stop at their next step.
fn run_stages(
    ctx: &steps::StepContext,
    plan: &Plan,
    progress: &Progress,
    locate: &(dyn Fn(&dockerfile::Instruction) -> Location + Sync),
) -> Result<BTreeMap<usize, StageResult>, BuildError> {
    // One root: in place, stages run one after the other.
    let jobs = if ctx.options.in_place.is_some() {
        1
    } else if ctx.options.jobs == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        ctx.options.jobs
    };
    let labelled = plan.order.len() > 1;
    let mut results: BTreeMap<usize, StageResult> = BTreeMap::new();
    let mut first_error: Option<BuildError> = None;
    std::thread::scope(|scope| {
        let (done_tx, done_rx) =
            std::sync::mpsc::channel::<(usize, Result<StageResult, BuildError>)>();
        let mut started: Vec<usize> = Vec::new();
        let mut running = 0usize;
        loop {
            if first_error.is_none() {
                for &index in &plan.order {
                    if running >= jobs || started.contains(&index) {
                        continue;
                    }
                    let stage = &plan.stages[index];
                    if !stage.deps.iter().all(|d| results.contains_key(d)) {
                        continue;
                    }
                    let deps: BTreeMap<usize, StageResult> = stage
                        .deps
                        .iter()
                        .filter_map(|d| results.get(d).map(|r| (*d, r.clone())))
                        .collect();
                    let done_tx = done_tx.clone();
                    let label = step_label(ctx.options, labelled.then(|| stage.label()));
                    started.push(index);
                    running += 1;
                    scope.spawn(move || {
                        let mut reporter = progress.stage(label);
                        let result = stage::build_stage(ctx, stage, &deps, &mut reporter, locate);
                        if result.is_err() {
                            ctx.cancelled.store(true, Ordering::SeqCst);
                        }
                        let _ = done_tx.send((index, result));
                    });
                }
            }
            if running == 0 {
                break;
            }
            let Ok((index, result)) = done_rx.recv() else {
                break;
            };
            running -= 1;
            match result {
                Ok(done) => {
                    results.insert(index, done);
                }
                Err(e) => {
                    if first_error.is_none() && !matches!(e, BuildError::Cancelled) {
                        first_error = Some(e);
                    }
                }
            }
        }
    });
    match first_error {
        Some(e) => Err(e),
        None => Ok(results),
    }
}

/// The cache records this build used, for `--cache-to` (exported once, after every platform
/// is built): mode=min keeps those of the stages whose layers are in the image (the target
/// and the stages it is FROM).
fn used_records(ctx: &steps::StepContext, plan: &Plan) -> crate::cache::UsedRecords {
    let mut in_image = vec![plan.target];
    while let Some(plan::Base::Stage(base)) = in_image.last().map(|i| plan.stages[*i].base.clone())
    {
        in_image.push(base);
    }
    ctx.used.records(&in_image)
}

pub(crate) fn lookup_args(args: &[(String, Option<String>)], name: &str) -> Option<String> {
    args.iter()
        .rev()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.clone())
}
