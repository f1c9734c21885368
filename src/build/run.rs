//! RUN: the command (shell or exec form, heredocs), its mounts (`--mount`), network, and the
//! step's cache key; runs it in the sandbox and commits the upper dir as the layer.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rbuild_runtime::{
    EtcFiles, MountSource, NetworkMode, OutputStream, Security, StepMount, StepSpec, TreeMount,
};

use super::error::{io_error, BuildError, Location};
use super::history::run_created_by;
use super::images::image_config;
use super::instructions::command_args;
use super::steps::{finish_step, try_cache, StepContext};
use super::{Stage, StageResult};
use crate::context::hash_selection_with;
use crate::dockerfile::{
    Command, Heredoc, MountKind, Network, RunFlags, RunMount, SecurityMode, Sharing,
};
use crate::plan::{is_proxy_arg, resolve_source, Source, StagePlan};
use crate::progress::StageProgress;

/// What a RUN needs kept alive while it runs: temp dirs and cache locks.
#[derive(Default)]
struct MountGuards {
    /// Sockets of ssh mounts (dropped before their temp dirs).
    ssh_proxies: Vec<crate::ssh::SocketProxy>,
    temp_dirs: Vec<tempfile::TempDir>,
    locks: Vec<std::fs::File>,
    /// Trees of other stages or images a snapshotter made for bind mounts.
    views: Vec<crate::worker::Snapshot>,
}

/// How a RUN's process is isolated: `--network` (the build's default unless the step says)
/// and `--security`.
struct Isolation {
    network: Network,
    security: Security,
}

impl Isolation {
    fn read(ctx: &StepContext, loc: &Location, flags: &RunFlags) -> Result<Isolation, BuildError> {
        let network = flags.network.or(ctx.options.network).unwrap_or_default();
        let security = match flags.security.unwrap_or_default() {
            SecurityMode::Sandbox => Security::Sandbox,
            SecurityMode::Insecure if ctx.options.allow_insecure => Security::Insecure,
            SecurityMode::Insecure => {
                return Err(loc.error(
                    "RUN",
                    "--security=insecure runs the step with every capability and no seccomp \
                     filter: allow it with `rbuild build --allow security.insecure`",
                ))
            }
        };
        Ok(Isolation { network, security })
    }

    /// The runtime's network: rbuild gives steps the host's network, or none.
    fn mode(&self) -> NetworkMode {
        match self.network {
            Network::Default | Network::Host => NetworkMode::Host,
            Network::None => NetworkMode::None,
        }
    }
}

/// A RUN's environment: BuildKit hands every ARG with a value to RUN as environment, under
/// ENV. Proxy args reach the command too, but neither the history nor the cache key.
struct StepEnv {
    /// What the key and the process see.
    env: Vec<String>,
    /// The ARGs as the history shows them.
    history_args: Vec<(String, String)>,
    /// Proxy build args no ARG declares: for the process only.
    proxy: Vec<String>,
}

impl StepEnv {
    fn of(ctx: &StepContext, stage: &Stage) -> StepEnv {
        let mut env: Vec<String> = Vec::new();
        let mut history_args: Vec<(String, String)> = Vec::new();
        for (key, value) in &stage.args {
            let effective = stage
                .config
                .env_value(key)
                .map(str::to_string)
                .or_else(|| value.clone());
            history_args.push((key.clone(), effective.unwrap_or_default()));
            if let Some(value) = value {
                if stage.config.env_value(key).is_none() {
                    env.push(format!("{key}={value}"));
                }
            }
        }
        env.extend(stage.config.config.env.iter().cloned());
        let proxy = ctx
            .options
            .build_args
            .iter()
            .filter(|(k, _)| is_proxy_arg(k) && !stage.args.iter().any(|(a, _)| a == *k))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        StepEnv {
            env,
            history_args,
            proxy,
        }
    }
}

/// What a RUN's cache key is made of (after the stage's chain): the command, its
/// environment, user and working directory, its isolation and extra hosts, and its mounts'
/// keys. Secret values, cache-mount contents and proxy args are not in it.
pub(super) fn run_key_parts(
    args: &[String],
    env: &[String],
    user: &str,
    cwd: &str,
    isolation: (Network, Security, &str),
    extra_hosts: &[(String, String)],
    mount_keys: &[&str],
) -> Vec<String> {
    let (network, security, limits) = isolation;
    // --ulimit and --shm-size say themselves only when given: keys without them are as before.
    let limits = if limits.is_empty() {
        String::new()
    } else {
        format!(" limits={limits}")
    };
    vec![
        "RUN".to_string(),
        serde_json::to_string(args).unwrap_or_default(),
        serde_json::to_string(env).unwrap_or_default(),
        user.to_string(),
        cwd.to_string(),
        format!("network={network} hosts={extra_hosts:?} security={security:?}{limits}"),
        serde_json::to_string(mount_keys).unwrap_or_default(),
    ]
}

#[allow(clippy::too_many_arguments)]
pub(super) fn run(
    ctx: &StepContext,
    stage: &mut Stage,
    plan: &StagePlan,
    deps: &BTreeMap<usize, StageResult>,
    loc: &Location,
    run_flags: &RunFlags,
    command: &Command,
    heredocs: &[Heredoc],
    progress: &mut StageProgress,
) -> Result<bool, BuildError> {
    let isolation = Isolation::read(ctx, loc, run_flags)?;
    let mut guards = MountGuards::default();
    let (args, mut extra_mounts) = heredoc_command(ctx, stage, command, heredocs, &mut guards)?;
    let step_env = StepEnv::of(ctx, stage);
    let user = stage.config.config.user.clone();
    let cwd = stage.workdir();
    let created_by = run_created_by(&args, &step_env.history_args);

    // The mounts' parts of the key come first, without side effects; they are prepared
    // (secret files written, cache-mount locks taken, imported caches extracted, bind
    // sources staged) only when the cache misses.
    let expand_value = |word: &str| {
        super::instructions::expand(loc, "RUN", word, ctx.escape, &|n| stage.lookup(n))
            .map_err(|e| e.to_string())
    };
    let expanded = run_flags
        .mounts
        .iter()
        .map(|mount| {
            let mut expanded = mount
                .expanded(&expand_value)
                .map_err(|e| loc.error("RUN", format!("--mount={}: {e}", mount.spec)))?;
            // BUILDKIT_CACHE_MOUNT_NS keeps one project's caches apart from another's.
            if let (MountKind::Cache, Some(ns)) =
                (expanded.kind, ctx.options.cache_mount_namespace())
            {
                expanded.id = format!("{ns}/{}", expanded.id);
            }
            Ok(expanded)
        })
        .collect::<Result<Vec<_>, BuildError>>()?;
    let mounts = expanded
        .iter()
        .map(|mount| PlannedMount::plan(ctx, plan, deps, loc, mount, &cwd))
        .collect::<Result<Vec<_>, _>>()?;
    let mount_keys: Vec<&str> = mounts.iter().map(|m| m.key.as_str()).collect();
    let parts = run_key_parts(
        &args,
        &step_env.env,
        &user,
        &cwd,
        (
            isolation.network,
            isolation.security,
            &ctx.options.limits_text(),
        ),
        &ctx.options.extra_hosts,
        &mount_keys,
    );
    let key = stage.next_key(&parts.iter().map(String::as_str).collect::<Vec<_>>());
    let _step_lock = ctx.store.step_lock(&key)?;
    if try_cache(ctx, stage, &key, &created_by) {
        return Ok(true);
    }

    let mut hidden_env = Vec::new();
    for mount in &mounts {
        extra_mounts.extend(mount.prepare(ctx, &mut guards, &mut hidden_env)?);
    }
    let snapshot = ctx.prepare(&stage.config.rootfs.diff_ids, "run")?;
    let mut env = step_env.env;
    env.extend(step_env.proxy);
    env.extend(hidden_env);
    let spec = StepSpec {
        rootfs: snapshot.rootfs.clone(),
        args,
        env,
        cwd,
        user,
        hostname: ctx.options.sandbox_hostname().into(),
        etc_files: write_etc_files(
            snapshot.temp.path(),
            ctx.options.sandbox_hostname(),
            &ctx.options.extra_hosts,
        )?,
        network: isolation.mode(),
        mounts: extra_mounts,
        security: isolation.security,
        shm_size: ctx.options.shm_size,
        ulimits: ctx.options.ulimits.clone(),
    };
    execute(ctx, loc, &spec, &snapshot, guards, progress)?;
    let diff_id = ctx.commit(snapshot)?;
    finish_step(ctx, stage, key, diff_id, created_by)?;
    Ok(false)
}

/// Runs the step through the worker's executor; its output goes to the progress display, the
/// mount points it created are taken out of the snapshot, a failure names the line.
fn execute(
    ctx: &StepContext,
    loc: &Location,
    spec: &StepSpec,
    snapshot: &crate::worker::Snapshot,
    guards: MountGuards,
    progress: &mut StageProgress,
) -> Result<(), BuildError> {
    let outcome = ctx
        .worker
        .executor
        .run(spec, &mut |_stream: OutputStream, line: &[u8]| {
            progress.step_output(line)
        })
        .map_err(|e| match e {
            rbuild_runtime::RuntimeError::Setup(e) => loc.error("RUN", crate::error_chain(&e)),
            other => BuildError::Runtime(other),
        })?;
    drop(guards);
    for notice in &outcome.notices {
        progress.notice(&format!("notice: {notice}"));
    }
    snapshot.remove_stubs(&outcome.stubs);
    if outcome.exit_code != 0 {
        progress.step_failed();
        return Err(BuildError::RunFailed {
            file: loc.file.clone(),
            line: loc.line,
            command: spec.args.join(" "),
            exit_code: outcome.exit_code,
            excerpt: loc.excerpt.clone(),
        });
    }
    Ok(())
}

/// The argv of a RUN with heredocs. `RUN <<EOF` alone runs the body as the script (a `#!`
/// body is executed as a file, mounted under /dev/pipes); otherwise the command line and the
/// bodies go to the shell together, which reads the heredocs itself.
// Boundary: a script file in a store temp dir rbuild made.
#[allow(clippy::disallowed_methods)]
fn heredoc_command(
    ctx: &StepContext,
    stage: &Stage,
    command: &Command,
    heredocs: &[Heredoc],
    guards: &mut MountGuards,
) -> Result<(Vec<String>, Vec<StepMount>), BuildError> {
    let Command::Shell(text) = command else {
        return Ok((command_args(stage, command), Vec::new()));
    };
    if heredocs.is_empty() {
        return Ok((command_args(stage, command), Vec::new()));
    }
    let only_marker = heredocs.len() == 1
        && text
            .trim()
            .trim_start_matches("<<")
            .trim_start_matches('-')
            .trim_matches(['"', '\''])
            == heredocs[0].name;
    if only_marker {
        let body = &heredocs[0].content;
        if body.starts_with("#!") {
            let dir = ctx.store.temp_dir("heredoc")?;
            let script = dir.path().join(&heredocs[0].name);
            std::fs::write(&script, body).map_err(io_error("write heredoc script"))?;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
                .map_err(io_error("chmod heredoc script"))?;
            let target = format!("/dev/pipes/{}", heredocs[0].name);
            guards.temp_dirs.push(dir);
            let mount = StepMount {
                target: target.clone(),
                source: MountSource::Host {
                    path: script,
                    read_only: true,
                },
            };
            return Ok((vec![target], vec![mount]));
        }
        let mut args = stage.shell();
        args.push(body.clone());
        return Ok((args, Vec::new()));
    }
    let mut script = text.clone();
    for heredoc in heredocs {
        script.push('\n');
        script.push_str(&heredoc.content);
        script.push_str(&heredoc.name);
    }
    let mut args = stage.shell();
    args.push(script);
    Ok((args, Vec::new()))
}

/// One `--mount` decided before the cache lookup: its part of the step's cache key (never a
/// secret's value), computed without side effects, and what [`PlannedMount::prepare`] sets
/// up if the step runs.
struct PlannedMount<'a> {
    mount: &'a RunMount,
    /// Absolute in the rootfs (a relative target is under WORKDIR, as in BuildKit).
    target: String,
    key: String,
    what: Planned<'a>,
}

enum Planned<'a> {
    /// An optional secret or agent that was not given, or a secret given as env only.
    Nothing,
    Tmpfs,
    Secret(&'a [u8]),
    Ssh(PathBuf),
    Cache,
    /// A bind of the build context or of a named context dir.
    Context(ContextRef<'a>, String),
    /// A bind of another stage's or an image's layers.
    Layers(Vec<String>, String),
}

/// The build context, or a named context opened for this mount.
enum ContextRef<'a> {
    Build(&'a crate::context::BuildContext),
    Named(crate::context::BuildContext),
}

impl ContextRef<'_> {
    fn get(&self) -> &crate::context::BuildContext {
        match self {
            ContextRef::Build(context) => context,
            ContextRef::Named(context) => context,
        }
    }
}

impl<'a> PlannedMount<'a> {
    fn plan(
        ctx: &'a StepContext,
        plan: &StagePlan,
        deps: &BTreeMap<usize, StageResult>,
        loc: &Location,
        mount: &'a RunMount,
        cwd: &str,
    ) -> Result<PlannedMount<'a>, BuildError> {
        let target = super::copy::join_image_path(cwd, &mount.target);
        let planned = |key: String, what: Planned<'a>| PlannedMount {
            mount,
            target: target.clone(),
            key,
            what,
        };
        let missing = |what: &str, hint: String| {
            loc.error(
                "RUN",
                format!("{what} {} is required but was not given ({hint})", mount.id),
            )
        };
        Ok(match mount.kind {
            MountKind::Tmpfs => planned(format!("tmpfs {target} {}", mount.size), Planned::Tmpfs),
            MountKind::Secret => match ctx.options.secrets.get(&mount.id) {
                None if mount.required => {
                    return Err(missing(
                        "secret",
                        format!("--secret id={},src=FILE", mount.id),
                    ))
                }
                None => planned(
                    format!("secret {} {target} absent", mount.id),
                    Planned::Nothing,
                ),
                Some(value) if mount.target.is_empty() => {
                    planned(format!("secret {} env", mount.id), Planned::Secret(value))
                }
                Some(value) => planned(
                    format!("secret {} {target}", mount.id),
                    Planned::Secret(value),
                ),
            },
            MountKind::Ssh => match ctx.options.ssh.get(&mount.id) {
                None if mount.required => {
                    return Err(missing(
                        "ssh agent",
                        format!("--ssh {}=$SSH_AUTH_SOCK", mount.id),
                    ))
                }
                None => planned(
                    format!("ssh {} {target} absent", mount.id),
                    Planned::Nothing,
                ),
                Some(socket) => planned(
                    format!("ssh {} {target}", mount.id),
                    Planned::Ssh(socket.clone()),
                ),
            },
            MountKind::Cache => planned(
                format!(
                    "cache {} {target} {:?} {}",
                    mount.id, mount.sharing, mount.read_only
                ),
                Planned::Cache,
            ),
            MountKind::Bind => {
                let (key, what) = plan_bind(ctx, plan, deps, loc, mount, &target)?;
                planned(key, what)
            }
        })
    }

    /// Sets the mount up for a step that runs: what the sandbox mounts (None for nothing),
    /// and environment the step gets but the key does not hold.
    fn prepare(
        &self,
        ctx: &StepContext,
        guards: &mut MountGuards,
        hidden_env: &mut Vec<String>,
    ) -> Result<Option<StepMount>, BuildError> {
        let mount = self.mount;
        let host = |path: PathBuf, read_only: bool| {
            Some(StepMount {
                target: self.target.clone(),
                source: MountSource::Host { path, read_only },
            })
        };
        let bind = TreeBind {
            source: &crate::context::clean_relative(&mount.source),
            target: &self.target,
            read_only: mount.read_only,
        };
        Ok(match &self.what {
            Planned::Nothing => None,
            Planned::Tmpfs => Some(StepMount {
                target: self.target.clone(),
                source: MountSource::Tmpfs { size: mount.size },
            }),
            Planned::Secret(value) => {
                if let Some(name) = &mount.env {
                    hidden_env.push(format!("{name}={}", String::from_utf8_lossy(value)));
                }
                if mount.target.is_empty() {
                    None
                } else {
                    host(secret_file(ctx, mount, value, guards)?, true)
                }
            }
            Planned::Ssh(agent) => {
                // SSH_AUTH_SOCK points at the forwarding socket bind-mounted at the target.
                hidden_env.push(format!("SSH_AUTH_SOCK={}", self.target));
                if ctx.options.in_place.is_some() {
                    // In place the step links to the agent itself: a socket of rbuild's own
                    // would be a change of the root (uid, gid and mode are not applied).
                    host(agent.clone(), false)
                } else {
                    host(ssh_socket(mount, agent, guards)?, false)
                }
            }
            Planned::Cache => host(cache_mount_dir(ctx, mount, guards)?, mount.read_only),
            Planned::Context(context, describe) => {
                Some(bind.of_context(ctx, context.get(), describe, guards)?)
            }
            Planned::Layers(diff_ids, describe) if !ctx.worker.snapshotter.uses_overlay() => {
                // Without overlayfs the snapshotter makes the tree (a copy: an `rw` mount
                // would still need overlayfs to keep its writes away from it).
                if !mount.read_only {
                    return Err(BuildError::Io {
                        action: format!("bind {describe} read-write"),
                        source: std::io::Error::other(
                            "rw bind mounts of another stage or image need overlayfs, which \
                             cannot be mounted here",
                        ),
                    });
                }
                let view = ctx
                    .worker
                    .snapshotter
                    .view(ctx.store, diff_ids, "bind-view")?;
                let tree = view.rootfs.merged_dir.clone();
                guards.views.push(view);
                Some(bind.step_mount(ctx, vec![tree], false, describe.clone(), guards)?)
            }
            Planned::Layers(diff_ids, describe) => {
                let layers = ctx.store.overlay_lowers(diff_ids)?;
                Some(bind.step_mount(ctx, layers, true, describe.clone(), guards)?)
            }
        })
    }
}

/// A secret as a file only its step reads, in a store temp dir removed after the step.
// Boundary: secret files in a store temp dir rbuild made.
#[allow(clippy::disallowed_methods)]
fn secret_file(
    ctx: &StepContext,
    mount: &RunMount,
    value: &[u8],
    guards: &mut MountGuards,
) -> Result<PathBuf, BuildError> {
    let dir = ctx.store.temp_dir("secret")?;
    let file = dir.path().join("secret");
    std::fs::write(&file, value).map_err(io_error("write secret"))?;
    std::os::unix::fs::chown(&file, Some(mount.uid), Some(mount.gid))
        .map_err(io_error("chown secret"))?;
    std::fs::set_permissions(
        &file,
        std::fs::Permissions::from_mode(mount.mode.unwrap_or(0o400)),
    )
    .map_err(io_error("chmod secret"))?;
    guards.temp_dirs.push(dir);
    Ok(file)
}

/// `type=ssh`: a socket owned and moded as the mount says, forwarding to the agent.
fn ssh_socket(
    mount: &RunMount,
    agent: &Path,
    guards: &mut MountGuards,
) -> Result<PathBuf, BuildError> {
    let failed = |e: crate::ssh::SshError| BuildError::Io {
        action: format!("serve ssh agent {} to the step", mount.id),
        source: std::io::Error::other(crate::error_chain(&e)),
    };
    let dir = crate::ssh::private_dir().map_err(&failed)?;
    let proxy = crate::ssh::SocketProxy::start(
        &dir.path().join("agent.sock"),
        agent,
        mount.uid,
        mount.gid,
        mount.mode.unwrap_or(0o600),
    )
    .map_err(failed)?;
    let socket = proxy.socket().to_path_buf();
    guards.ssh_proxies.push(proxy);
    guards.temp_dirs.push(dir);
    Ok(socket)
}

/// `type=cache`: a dir of the store kept between builds, never part of a layer.
// Boundary: the store's cache-mounts dir.
#[allow(clippy::disallowed_methods)]
fn cache_mount_dir(
    ctx: &StepContext,
    mount: &RunMount,
    guards: &mut MountGuards,
) -> Result<PathBuf, BuildError> {
    let dir = ctx.store.cache_mount_dir(&mount.id);
    let root = dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| ctx.store.root().to_path_buf());
    std::fs::create_dir_all(&root).map_err(io_error("create cache-mounts dir"))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    ctx.used.mount(&mount.id);
    // A cache exported with mounts=true seeds an empty cache mount.
    if !dir.exists() && !ctx.imported.is_empty() {
        ctx.imported.seed_mount(ctx.store, &mount.id, &dir);
    }
    let lock_path = root.join(format!("{name}.lock"));
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_error("open cache mount lock"))?;
    match mount.sharing {
        Sharing::Shared => {}
        Sharing::Locked => {
            lock.lock().map_err(io_error("lock cache mount"))?;
            guards.locks.push(lock);
        }
        Sharing::Private => {
            if lock.try_lock().is_err() {
                // In use by another step: this one gets a fresh, build-local cache.
                let temp = ctx.store.temp_dir("cache-private")?;
                let private = temp.path().join("cache");
                create_cache_dir(&private, mount)?;
                guards.temp_dirs.push(temp);
                return Ok(private);
            }
            guards.locks.push(lock);
        }
    }
    if !dir.exists() {
        create_cache_dir(&dir, mount)?;
    }
    Ok(dir)
}

// Boundary: the store's cache-mounts dir.
#[allow(clippy::disallowed_methods)]
fn create_cache_dir(dir: &Path, mount: &RunMount) -> Result<(), BuildError> {
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(io_error("create cache mount dir")(e)),
    }
    std::os::unix::fs::chown(dir, Some(mount.uid), Some(mount.gid))
        .map_err(io_error("chown cache mount dir"))?;
    std::fs::set_permissions(
        dir,
        std::fs::Permissions::from_mode(mount.mode.unwrap_or(0o755)),
    )
    .map_err(io_error("chmod cache mount dir"))
}

/// `type=bind`: a path of the context, or of another stage, image or named context (`from=`);
/// read-only unless `rw`, and then writes land in a scratch dir that is thrown away. The
/// source path is resolved by the step process inside its own tree, never on the host. The
/// key holds the content of what a context source selects, or the stage's key or image id.
fn plan_bind<'a>(
    ctx: &'a StepContext,
    plan: &StagePlan,
    deps: &BTreeMap<usize, StageResult>,
    loc: &Location,
    mount: &RunMount,
    target: &str,
) -> Result<(String, Planned<'a>), BuildError> {
    let source = crate::context::clean_relative(&mount.source);
    let context_key = |context: &crate::context::BuildContext, key_name: &str| {
        let selected = context
            .select(if source.is_empty() { "." } else { &source })
            .map_err(|e| loc.error("RUN", e.to_string()))?;
        let content = hash_selection_with(&selected, &ctx.hashes)
            .map_err(|e| loc.error("RUN", e.to_string()))?;
        Ok::<_, BuildError>(format!(
            "bind {key_name} {source} {target} {} {content}",
            mount.read_only
        ))
    };
    let Some(from) = &mount.from else {
        let key = context_key(ctx.context, "context")?;
        return Ok((
            key,
            Planned::Context(ContextRef::Build(ctx.context), "the build context".into()),
        ));
    };
    let (diff_ids, from_key, describe) =
        match resolve_source(&ctx.plan.stages, plan.index, &ctx.plan.named_contexts, from) {
            Source::Dir(dir) => {
                let named = crate::context::BuildContext::open(&dir)
                    .map_err(|e| loc.error("RUN", e.to_string()))?;
                // Keyed by content, like the main context: the dir may change between builds.
                let key = context_key(&named, &format!("named-context {from}"))?;
                let describe = format!("build context {from}");
                return Ok((key, Planned::Context(ContextRef::Named(named), describe)));
            }
            Source::Stage(index) => {
                let done = deps
                    .get(&index)
                    .ok_or_else(|| loc.error("RUN", format!("stage {from} has not been built")))?;
                let diff_ids = done.config.rootfs.diff_ids.clone();
                (diff_ids, done.cache_key.clone(), format!("stage {from}"))
            }
            Source::Image(name) => {
                let (config, image_id) = image_config(ctx, loc, "RUN", &name)?;
                (config.rootfs.diff_ids, image_id, format!("image {from}"))
            }
        };
    let key = format!("bind {from_key} {source} {target} {}", mount.read_only);
    Ok((key, Planned::Layers(diff_ids, describe)))
}

/// One bind mount of a path inside a tree the build was given.
struct TreeBind<'a> {
    /// Path inside the tree, cleaned and relative.
    source: &'a str,
    target: &'a str,
    read_only: bool,
}

impl TreeBind<'_> {
    /// A bind of the build context or a named context dir: what `.dockerignore` excludes is
    /// hidden by a layer of whiteouts over the whole context, so no symlink inside it can
    /// reach an excluded file.
    fn of_context(
        &self,
        ctx: &StepContext,
        context: &crate::context::BuildContext,
        describe: &str,
        guards: &mut MountGuards,
    ) -> Result<StepMount, BuildError> {
        let excluded = context.excluded_below("");
        let mut layers = Vec::new();
        if !excluded.is_empty() {
            layers.push(whiteout_layer(ctx, &excluded, guards)?);
        }
        layers.push(context.root().to_path_buf());
        self.step_mount(ctx, layers, false, describe.to_string(), guards)
    }

    /// The mount: `layers` topmost first. A single layer dir of an image still goes through
    /// an overlay (with an empty dir below) so that its whiteouts mean what they mean.
    // Boundary: staging and scratch dirs rbuild makes in its own store temp dir.
    #[allow(clippy::disallowed_methods)]
    fn step_mount(
        &self,
        ctx: &StepContext,
        mut layers: Vec<PathBuf>,
        image_layers: bool,
        describe: String,
        guards: &mut MountGuards,
    ) -> Result<StepMount, BuildError> {
        let temp = ctx.store.temp_dir("bind")?;
        let staging_dir = temp.path().join("staging");
        std::fs::create_dir(&staging_dir).map_err(io_error("create bind staging dir"))?;
        if image_layers && layers.len() < 2 {
            let empty = temp.path().join("empty");
            std::fs::create_dir(&empty).map_err(io_error("create empty lower dir"))?;
            layers.push(empty);
        }
        let scratch_dir = if self.read_only {
            None
        } else {
            let scratch = temp.path().join("scratch");
            std::fs::create_dir(&scratch).map_err(io_error("create bind scratch dir"))?;
            Some(scratch)
        };
        guards.temp_dirs.push(temp);
        Ok(StepMount {
            target: self.target.to_string(),
            source: MountSource::InTree(TreeMount {
                layers,
                staging_dir,
                path: self.source.to_string(),
                scratch_dir,
                describe,
            }),
        })
    }
}

/// A layer dir holding an overlay whiteout (a 0/0 character device) for each path.
// Boundary: a fresh temp dir of whiteouts; names come from the context walk (no '..', no symlinks created).
#[allow(clippy::disallowed_methods)]
fn whiteout_layer(
    ctx: &StepContext,
    paths: &[String],
    guards: &mut MountGuards,
) -> Result<PathBuf, BuildError> {
    let temp = ctx.store.temp_dir("mask")?;
    let mask = temp.path().join("mask");
    for path in paths {
        let target = mask.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io_error("create whiteout dir"))?;
        }
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &target,
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            rustix::fs::makedev(0, 0),
        )
        .map_err(|e| BuildError::Io {
            action: format!("create a whiteout for {path}"),
            source: e.into(),
        })?;
    }
    std::fs::create_dir_all(&mask).map_err(io_error("create whiteout dir"))?;
    guards.temp_dirs.push(temp);
    Ok(mask)
}

/// /etc/hosts, /etc/resolv.conf and /etc/hostname for the step, bind-mounted from here so
/// they never land in a layer.
// Boundary: /etc files rbuild writes into its own temp dir.
#[allow(clippy::disallowed_methods)]
pub(super) fn write_etc_files(
    dir: &Path,
    hostname: &str,
    extra_hosts: &[(String, String)],
) -> Result<EtcFiles, BuildError> {
    let files = EtcFiles {
        hosts: dir.join("hosts"),
        resolv_conf: dir.join("resolv.conf"),
        hostname: dir.join("hostname"),
    };
    let mut hosts =
        format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for (host, ip) in extra_hosts {
        hosts.push_str(&format!("{ip}\t{host}\n"));
    }
    std::fs::write(&files.hosts, hosts).map_err(io_error("write hosts file"))?;
    let resolv = std::fs::read("/etc/resolv.conf").unwrap_or_default();
    std::fs::write(&files.resolv_conf, resolv).map_err(io_error("write resolv.conf"))?;
    std::fs::write(&files.hostname, format!("{hostname}\n"))
        .map_err(io_error("write hostname file"))?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inputs of one RUN's key, each of which can be changed alone.
    #[derive(Clone)]
    struct Inputs {
        args: Vec<String>,
        env: Vec<String>,
        user: String,
        cwd: String,
        network: Network,
        security: Security,
        limits: String,
        hosts: Vec<(String, String)>,
        mounts: Vec<String>,
    }

    impl Inputs {
        fn parts(&self) -> Vec<String> {
            let mounts: Vec<&str> = self.mounts.iter().map(String::as_str).collect();
            run_key_parts(
                &self.args,
                &self.env,
                &self.user,
                &self.cwd,
                (self.network, self.security, &self.limits),
                &self.hosts,
                &mounts,
            )
        }
    }

    /// Every input of a RUN changes its key; the same inputs give the same key.
    #[test]
    fn every_input_of_a_run_is_in_its_key() {
        let base = Inputs {
            args: vec!["/bin/sh".into(), "-c".into(), "make".into()],
            env: vec!["PATH=/bin".into(), "A=1".into()],
            user: String::new(),
            cwd: "/".into(),
            network: Network::Default,
            security: Security::Sandbox,
            limits: String::new(),
            hosts: Vec::new(),
            mounts: vec!["cache id=/c target=/c".into()],
        };
        assert_eq!(base.parts(), base.clone().parts());
        type Change = fn(&mut Inputs);
        let changes: [(&str, Change); 10] = [
            ("command", |i| i.args[2] = "make all".into()),
            ("env value", |i| i.env[1] = "A=2".into()),
            ("env order", |i| i.env.reverse()),
            ("user", |i| i.user = "app".into()),
            ("workdir", |i| i.cwd = "/src".into()),
            ("network", |i| i.network = Network::None),
            ("security", |i| i.security = Security::Insecure),
            ("ulimit", |i| i.limits = "ulimit nofile=256:256".into()),
            ("extra host", |i| {
                i.hosts.push(("db".into(), "10.0.0.2".into()))
            }),
            ("mount", |i| i.mounts[0] = "cache id=/d target=/c".into()),
        ];
        for (what, change) in changes {
            let mut changed = base.clone();
            change(&mut changed);
            assert_ne!(changed.parts(), base.parts(), "{what} must change the key");
        }
    }
}
