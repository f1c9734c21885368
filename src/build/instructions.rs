//! One function per Dockerfile instruction: what it does to the stage's config, its history
//! entry (BuildKit's strings), and for RUN/COPY/WORKDIR the layer it commits.

use std::time::Instant;

use rbuild_runtime::{EtcFiles, NetworkMode, OutputStream, StepSpec};

use super::copy::{copy_sources, join_image_path, CopyAttrs};
use super::error::{io_error, BuildError, Location};
use super::history::{go_plain_list, go_port_map, go_quoted_list, run_created_by};
use super::rootfs::{mkdir_all_in_root, MountedRootfs, StepDirs};
use super::{rfc3339_now, BuildOptions, Stage};
use crate::context::{hash_selection, BuildContext};
use crate::dockerfile::{self, Command, CopyArgs, Flag, Healthcheck, Instruction, InstructionKind};
use crate::image::ImageConfig;
use crate::progress::Progress;
use crate::snapshot;
use crate::store::{CacheRecord, LayerInfo, Store};

pub(crate) struct StepContext<'a> {
    pub store: &'a Store,
    pub context: &'a BuildContext,
    pub options: &'a BuildOptions,
    pub escape: char,
    pub global_args: &'a [(String, Option<String>)],
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

fn not_supported(loc: &Location, keyword: &'static str, what: &str) -> BuildError {
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

/// Where a FROM image comes from: the store, pulling when it is missing (or always).
pub(crate) struct BaseSource<'a> {
    pub store: &'a Store,
    /// `--pull`: re-resolve the tag in the registry even when the store has the image.
    pub pull: bool,
}

pub(crate) fn dispatch_from(
    source: BaseSource,
    ins: &Instruction,
    loc: &Location,
    escape: char,
    global_args: &[(String, Option<String>)],
    progress: &mut Progress,
    total: usize,
) -> Result<Stage, BuildError> {
    let BaseSource { store, pull } = source;
    let InstructionKind::From {
        flags,
        image,
        alias: _,
    } = &ins.kind
    else {
        return Err(loc.error(
            "FROM",
            "the first instruction must be FROM (after optional ARGs)",
        ));
    };
    reject_flags(loc, "FROM", flags, &[])?;
    let started = Instant::now();
    progress.step_started(1, total, &ins.original);
    let name = expand(loc, "FROM", image, escape, &|n| {
        super::lookup_args(global_args, n)
    })?;
    let (config, cache_key) = if name == "scratch" {
        (ImageConfig::scratch(), "scratch".to_string())
    } else {
        let image_id = base_image(store, &name, pull, loc, progress)?;
        let bytes = store.read_blob(&image_id)?;
        let config: ImageConfig = serde_json::from_slice(&bytes).map_err(|e| {
            loc.error(
                "FROM",
                format!("image {name} has an unreadable config: {e}"),
            )
        })?;
        for diff_id in &config.rootfs.diff_ids {
            if !store.has_layer(diff_id) {
                return Err(loc.error(
                    "FROM",
                    format!("image {name} is incomplete: layer {diff_id} is missing"),
                ));
            }
        }
        (config, image_id)
    };
    progress.step_finished(started.elapsed(), false);
    Ok(Stage {
        config,
        cache_key,
        args: Vec::new(),
        cmd_set: false,
    })
}

/// The image id of a FROM image: from the store, else (or always with `--pull`) pulled from
/// its registry.
fn base_image(
    store: &Store,
    name: &str,
    pull: bool,
    loc: &Location,
    progress: &mut Progress,
) -> Result<String, BuildError> {
    if !pull {
        match store.resolve_image(name) {
            Ok(id) => return Ok(id),
            Err(crate::store::StoreError::NoSuchImage { .. }) => {}
            Err(e) => return Err(loc.error("FROM", e.to_string())),
        }
    }
    let reference =
        crate::image::parse_reference(name).map_err(|e| loc.error("FROM", e.to_string()))?;
    let plain = |line: &str| eprintln!("  {line}");
    let quiet = |_: &str| {};
    let terminal = crate::progress::TerminalTransfers::default();
    let log: &dyn crate::progress::Reporter = match progress.mode() {
        crate::progress::ProgressMode::Plain => &plain,
        crate::progress::ProgressMode::Tty => &terminal,
        crate::progress::ProgressMode::Quiet => &quiet,
    };
    crate::registry::pull(
        store,
        &reference,
        &crate::registry::PullOptions::default(),
        log,
    )
    .map(|pulled| pulled.image_id)
    .map_err(|e| loc.error("FROM", format!("cannot pull {name}: {e}")))
}

pub(crate) fn dispatch(
    ctx: &StepContext,
    stage: &mut Stage,
    ins: &Instruction,
    loc: &Location,
    index: usize,
    total: usize,
    progress: &mut Progress,
) -> Result<(), BuildError> {
    let started = Instant::now();
    progress.step_started(index, total, &ins.original);
    let escape = ctx.escape;
    let now = rfc3339_now();
    let mut cached = false;
    match &ins.kind {
        InstructionKind::Run {
            flags,
            command,
            heredocs,
        } => {
            reject_flags(loc, "RUN", flags, &[])?;
            if !heredocs.is_empty() {
                return Err(not_supported(loc, "RUN", "a heredoc"));
            }
            cached = run(ctx, stage, loc, command, progress)?;
        }
        InstructionKind::Copy(args) => cached = copy(ctx, stage, loc, args)?,
        InstructionKind::Add(_) => {
            return Err(not_supported(loc, "ADD", "ADD (use COPY for local files)"))
        }
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
                        None => super::lookup_args(ctx.global_args, &decl.name),
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
        InstructionKind::Onbuild(_) => return Err(not_supported(loc, "ONBUILD", "ONBUILD")),
        InstructionKind::From { .. } => return Err(not_supported(loc, "FROM", "a second FROM")),
    }
    progress.step_finished(started.elapsed(), cached);
    Ok(())
}

/// Shell form gets the stage's SHELL in front; exec form is used as is.
fn command_args(stage: &Stage, command: &Command) -> Vec<String> {
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
fn commit_upper(store: &Store, upper: &std::path::Path) -> Result<Option<String>, BuildError> {
    let is_empty = std::fs::read_dir(upper)
        .map_err(io_error("read upper dir"))?
        .next()
        .is_none();
    if is_empty {
        return Ok(None);
    }
    let digest = snapshot::layer_diff_id(upper)?;
    let diff_id = digest.as_oci();
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
fn try_cache(ctx: &StepContext, stage: &mut Stage, key: &str, created_by: &str) -> bool {
    if ctx.options.no_cache {
        return false;
    }
    match ctx.store.cache_lookup(key) {
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

fn finish_step(
    ctx: &StepContext,
    stage: &mut Stage,
    key: String,
    diff_id: Option<String>,
    created_by: String,
) -> Result<(), BuildError> {
    let created = rfc3339_now();
    ctx.store.cache_store(
        &key,
        &CacheRecord {
            diff_id: diff_id.clone(),
            created: created.clone(),
        },
    )?;
    record_layer(stage, diff_id, created_by, created);
    stage.cache_key = key;
    Ok(())
}

fn run(
    ctx: &StepContext,
    stage: &mut Stage,
    loc: &Location,
    command: &Command,
    progress: &mut Progress,
) -> Result<bool, BuildError> {
    let args = command_args(stage, command);
    // BuildKit hands every ARG with a value to RUN as environment, under ENV.
    let mut env: Vec<String> = Vec::new();
    let mut history_args: Vec<(String, String)> = Vec::new();
    for (key, value) in &stage.args {
        let effective = stage
            .config
            .env_value(key)
            .map(str::to_string)
            .or_else(|| value.clone());
        history_args.push((key.clone(), effective.clone().unwrap_or_default()));
        if let Some(value) = value {
            if stage.config.env_value(key).is_none() {
                env.push(format!("{key}={value}"));
            }
        }
    }
    env.extend(stage.config.config.env.iter().cloned());
    let user = stage.config.config.user.clone();
    let cwd = stage.workdir();
    let created_by = run_created_by(&args, &history_args);
    let args_json = serde_json::to_string(&args).unwrap_or_default();
    let env_json = serde_json::to_string(&env).unwrap_or_default();
    let key = stage.next_key(&["RUN", &args_json, &env_json, &user, &cwd, "network=default"]);
    if try_cache(ctx, stage, &key, &created_by) {
        return Ok(true);
    }

    let dirs = StepDirs::new(ctx.store, &stage.config.rootfs.diff_ids, "run")?;
    let etc_files = write_etc_files(dirs.temp.path())?;
    let spec = StepSpec {
        rootfs: dirs.rootfs.clone(),
        args: args.clone(),
        env,
        cwd,
        user,
        hostname: "rbuild".into(),
        etc_files,
        network: NetworkMode::Host,
    };
    let outcome = rbuild_runtime::run_step(&spec, &mut |_stream: OutputStream, line: &[u8]| {
        progress.step_output(line)
    })
    .map_err(|e| match e {
        rbuild_runtime::RuntimeError::Setup(message) => loc.error("RUN", message),
        other => BuildError::Runtime(other),
    })?;
    for notice in &outcome.notices {
        progress.notice(&format!("notice: {notice}"));
    }
    rbuild_runtime::remove_stubs(&dirs.rootfs, &outcome.stubs);
    if outcome.exit_code != 0 {
        progress.step_failed();
        return Err(BuildError::RunFailed {
            file: loc.file.clone(),
            line: loc.line,
            command: args.join(" "),
            exit_code: outcome.exit_code,
            excerpt: loc.excerpt.clone(),
        });
    }
    let diff_id = commit_upper(ctx.store, &dirs.rootfs.upper_dir)?;
    finish_step(ctx, stage, key, diff_id, created_by)?;
    Ok(false)
}

/// /etc/hosts, /etc/resolv.conf and /etc/hostname for the step, bind-mounted from here so
/// they never land in a layer.
fn write_etc_files(dir: &std::path::Path) -> Result<EtcFiles, BuildError> {
    let files = EtcFiles {
        hosts: dir.join("hosts"),
        resolv_conf: dir.join("resolv.conf"),
        hostname: dir.join("hostname"),
    };
    let hosts = "127.0.0.1\tlocalhost rbuild\n::1\tlocalhost ip6-localhost ip6-loopback\n";
    std::fs::write(&files.hosts, hosts).map_err(io_error("write hosts file"))?;
    let resolv = std::fs::read("/etc/resolv.conf").unwrap_or_default();
    std::fs::write(&files.resolv_conf, resolv).map_err(io_error("write resolv.conf"))?;
    std::fs::write(&files.hostname, "rbuild\n").map_err(io_error("write hostname file"))?;
    Ok(files)
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

fn copy(
    ctx: &StepContext,
    stage: &mut Stage,
    loc: &Location,
    args: &CopyArgs,
) -> Result<bool, BuildError> {
    reject_flags(loc, "COPY", &args.flags, &["chown", "chmod"])?;
    if !args.heredocs.is_empty() {
        return Err(not_supported(loc, "COPY", "a heredoc"));
    }
    let escape = ctx.escape;
    let chown = flag_value(&args.flags, "chown")
        .map(|v| expand(loc, "COPY", v, escape, &|n| stage.lookup(n)))
        .transpose()?;
    let chmod_text = flag_value(&args.flags, "chmod").map(str::to_string);
    let chmod = match &chmod_text {
        Some(text) => match u32::from_str_radix(text, 8) {
            Ok(mode) if mode <= 0o7777 => Some(mode),
            _ => {
                return Err(loc.error(
                    "COPY",
                    format!("invalid chmod parameter: '{text}'. it should be octal string and between 0 and 07777"),
                ))
            }
        },
        None => None,
    };
    let mut sources = Vec::new();
    for raw in &args.sources {
        sources.push(expand(loc, "COPY", raw, escape, &|n| stage.lookup(n))?);
    }
    let dest_raw = expand(loc, "COPY", &args.dest, escape, &|n| stage.lookup(n))?;
    let mut selected = Vec::new();
    for source in &sources {
        selected.extend(
            ctx.context
                .select(source)
                .map_err(|e| loc.error("COPY", e.to_string()))?,
        );
    }
    let dest_is_dir = dest_raw.ends_with('/') || dest_raw == "." || dest_raw.ends_with("/.");
    if sources.len() > 1 && !dest_is_dir {
        return Err(loc.error(
            "COPY",
            "when using COPY with more than one source file, the destination must be a directory and end with a /",
        ));
    }
    // Several files (a wildcard matching more than one) also land inside dest.
    let several = selected.len() > 1;
    let dest = join_image_path(&stage.workdir(), &dest_raw);

    let mut created_by = String::from("COPY");
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

    let content = hash_selection(&selected).map_err(|e| loc.error("COPY", e.to_string()))?;
    let key = stage.next_key(&[
        "COPY",
        &content,
        &dest,
        &dest_is_dir.to_string(),
        chown.as_deref().unwrap_or(""),
        chmod_text.as_deref().unwrap_or(""),
    ]);
    if try_cache(ctx, stage, &key, &created_by) {
        return Ok(true);
    }
    let dirs = StepDirs::new(ctx.store, &stage.config.rootfs.diff_ids, "copy")?;
    {
        let mounted = MountedRootfs::mount(&dirs.rootfs)?;
        let owner = match &chown {
            Some(spec) => resolve_owner(&mounted, spec, loc, "COPY")?,
            None => (0, 0),
        };
        copy_sources(
            mounted.root_fd(),
            &selected,
            &dest,
            several || dest_is_dir,
            CopyAttrs { owner, chmod },
        )
        .map_err(|m| loc.error("COPY", m))?;
    }
    let diff_id = commit_upper(ctx.store, &dirs.rootfs.upper_dir)?;
    finish_step(ctx, stage, key, diff_id, created_by)?;
    Ok(false)
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
        stage.add_history(created_by, rfc3339_now(), true);
        return Ok(false);
    }
    let user = stage.config.config.user.clone();
    let key = stage.next_key(&["WORKDIR", &wd, &user]);
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
    let diff_id = commit_upper(ctx.store, &dirs.rootfs.upper_dir)?;
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
