//! `rbuild build`: flags -> a `BuildRequest` for `rbuild::pipeline::run`, and what it prints.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;

use rbuild::archive::output::{parse_output, Output};
use rbuild::archive::MediaTypes;
use rbuild::build::{BuildError, BuildOptions};
use rbuild::context::remote::GitSsh;
use rbuild::context::{AcquiredContext, NamedContexts};
use rbuild::dockerfile::Network;
use rbuild::export::load::LoadWith;
use rbuild::export::{ExportRequest, ImageName, ImageSettings, Loader};
use rbuild::pipeline::{BuildRequest, PipelineError};
use rbuild::progress::{Progress, ProgressMode, Reporter};

use super::build_flags::{
    parse_add_host, parse_annotations, parse_key_values, parse_platforms, parse_secrets,
    source_date_epoch,
};
use super::flags::{CallFlag, Entitlement, FormatFlag, IsolationFlag, ProgressFlag, PullFlag};

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Name and optionally a tag (`name:tag`); repeatable
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    pub tags: Vec<String>,
    /// The Dockerfile [default: CONTEXT/Dockerfile]
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Set a build-time variable (`KEY=VALUE`, or `KEY` to take it from the environment)
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    pub build_args: Vec<String>,
    /// Set a label on the image (`KEY=VALUE`)
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Do not use the cache: run every step
    #[arg(long)]
    pub no_cache: bool,
    /// When to pull base images: `always` (`--pull` alone: resolve the FROM tag again),
    /// `missing` (default: only what the store lacks), `never`, `newer` (as always)
    #[arg(long, value_enum, num_args = 0..=1, require_equals = true,
          default_missing_value = "always")]
    pub pull: Option<PullFlag>,
    /// Push the image to its registry under every -t name after the build
    #[arg(long)]
    pub push: bool,
    /// Progress output: `plain` (a line per event), `tty` (a live display; step output
    /// shown when a step fails), `rawjson` (a JSON object per event), `quiet`/`none`, `auto`
    /// (tty on a terminal) [default: $RBUILD_PROGRESS, $BUILDKIT_PROGRESS, else auto]
    #[arg(long, value_enum)]
    pub progress: Option<ProgressFlag>,
    /// Print only the image id on success
    #[arg(short, long)]
    pub quiet: bool,
    /// Write the image id to this file
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Write the result out (repeatable): `type=oci|docker,dest=FILE`, `type=oci,dest=DIR,tar=false`,
    /// `type=local,dest=DIR`, `type=tar,dest=FILE|-`, or `DIR` (local) and `-` (tar to stdout).
    /// Options: `compression=gzip|zstd|uncompressed`, `compression-level=N`,
    /// `oci-mediatypes=true|false`, `rewrite-timestamp=true`, `name=NAME[,NAME]`,
    /// `annotation.KEY=VALUE`
    #[arg(short = 'o', long = "output", value_name = "type=TYPE,dest=PATH")]
    pub outputs: Vec<String>,
    /// The platform to build for: `os/arch[/variant]` (e.g. linux/arm64) or `local`;
    /// foreign platforms run under QEMU in rbuild's own binfmt_misc
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// Build only up to this stage (by name or index)
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// How many stages may build at once [default: one per core]
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub jobs: usize,
    /// A secret for RUN --mount=type=secret: `id=ID,src=FILE` or `id=ID,env=VAR` (never stored)
    #[arg(long = "secret", value_name = "id=ID,src=FILE|env=VAR")]
    pub secrets: Vec<String>,
    /// Network for RUN steps: default (the host's), none, host
    #[arg(long, value_name = "default|none|host")]
    pub network: Option<Network>,
    /// Entitlements, as buildx: `security.insecure` lets RUN --security=insecure run with every
    /// capability and no seccomp filter; `network.host` is accepted (host is the default)
    #[arg(long = "allow", value_enum, value_delimiter = ',')]
    pub allow: Vec<Entitlement>,
    /// Another context: `NAME=DIR`, `NAME=docker-image://REF`, `NAME=oci-layout://PATH[:TAG]`;
    /// replaces the stage or image NAME in FROM, COPY --from and RUN --mount from=
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    pub build_contexts: Vec<String>,
    /// Export the build cache: `type=local,dest=DIR` or `type=registry,ref=NAME[:TAG]`, with
    /// `mode=min|max` and `mounts=true`
    #[arg(
        long = "cache-to",
        value_name = "type=local,dest=DIR|type=registry,ref=REF"
    )]
    pub cache_to: Vec<String>,
    /// Import a build cache: `type=local,src=DIR` or `type=registry,ref=NAME[:TAG]`
    #[arg(
        long = "cache-from",
        value_name = "type=local,src=DIR|type=registry,ref=REF"
    )]
    pub cache_from: Vec<String>,
    /// Do not use the cache for these stages (comma-separated names)
    #[arg(
        long = "no-cache-filter",
        value_name = "STAGE[,STAGE]",
        value_delimiter = ','
    )]
    pub no_cache_filter: Vec<String>,
    /// An ssh agent for RUN --mount=type=ssh and git over ssh: `default` (your
    /// $SSH_AUTH_SOCK: the whole agent), `ID=SOCKET`, or `ID=KEYFILE[,KEYFILE...]` (an agent
    /// rbuild runs for the build, holding just those keys)
    #[arg(long = "ssh", value_name = "ID[=SOCKET|KEYFILE,...]")]
    pub ssh: Vec<String>,
    /// A resource limit of RUN steps, as docker: `TYPE=SOFT[:HARD]` (nofile, nproc, core,
    /// stack, ...); repeatable
    #[arg(long = "ulimit", value_name = "TYPE=SOFT[:HARD]")]
    pub ulimits: Vec<String>,
    /// One layer for everything the build adds over its base (podman's --squash; kaniko's
    /// --single-snapshot)
    #[arg(long, alias = "single-snapshot")]
    pub squash: bool,
    /// Where RUN steps run: `auto` (the namespaced sandbox), `namespaces`, or `none`: as root
    /// in a container made for the build, directly on its own root (kaniko's model; the root
    /// is put back after; refused outside a container)
    #[arg(long, value_enum, env = "RBUILD_ISOLATION", default_value_t = IsolationFlag::Auto)]
    pub isolation: IsolationFlag,
    /// Let `--isolation none` run where rbuild sees no container (it replaces that machine's
    /// root files for the build); a flag only, never an environment variable
    #[arg(long)]
    pub force_isolation_none: bool,
    /// Size of RUN steps' /dev/shm: bytes, or with k, m or g [default: 64m]
    #[arg(long = "shm-size", value_name = "SIZE")]
    pub shm_size: Option<String>,
    /// Add a line to /etc/hosts of RUN steps: `HOST:IP` or `HOST=IP`; `host-gateway` is the
    /// host (the steps share its network)
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub add_hosts: Vec<String>,
    /// Run the build checks only (exit 1 when they find something)
    #[arg(long)]
    pub check: bool,
    /// What to do, as buildx: `build` (default), `check` (as --check), `outline` (what the
    /// target takes: build args, secrets, ssh), `targets` (the Dockerfile's stages)
    #[arg(long, value_enum, value_name = "build|check|outline|targets")]
    pub call: Option<CallFlag>,
    /// Hand the image to the local podman or docker (`podman load`/`docker load`); the default
    /// picks whichever is installed, podman first
    #[arg(long, value_name = "podman|docker", num_args = 0..=1, require_equals = true,
          default_missing_value = "auto")]
    pub load: Option<LoadWith>,
    /// Write the image digest, config digest, descriptor and names as JSON (as buildx does)
    #[arg(long, value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,
    /// Add an annotation (`KEY=VALUE`, or `manifest:`, `index:`, `manifest-descriptor:` before KEY)
    #[arg(long = "annotation", value_name = "[TYPE:]KEY=VALUE")]
    pub annotations: Vec<String>,
    /// Media types of the written images: OCI (default) or Docker schema2
    #[arg(long, value_enum, default_value_t = FormatFlag::Oci)]
    pub format: FormatFlag,
    /// Reproducible output: SOURCE_DATE_EPOCH defaults to 0 and every output rewrites timestamps
    #[arg(long)]
    pub reproducible: bool,
    /// The build context: a directory, a git URL (`https://host/repo.git#ref:subdir`), or `-`
    /// for a tar (or a lone Dockerfile) on stdin
    #[arg(default_value = ".")]
    pub context: String,
}

/// Starts the `--load` loader when `args` ask for it: before rbuild enters its user namespace
/// (see [`rbuild::export::Loader`]).
pub fn start_loader(args: &BuildArgs) -> anyhow::Result<Option<Loader>> {
    match args.load {
        Some(with) => Ok(Some(Loader::start(with)?)),
        None => Ok(None),
    }
}

/// Where the result goes: `-t`, `--output`, `--push`, `--load`, `--cache-to`, the files.
fn export_request(
    args: &BuildArgs,
    loader: Option<Loader>,
    epoch: Option<i64>,
) -> anyhow::Result<ExportRequest> {
    let names = args
        .tags
        .iter()
        .map(|t| ImageName::parse(t).with_context(|| format!("-t {t}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let media_types = MediaTypes::from(args.format);
    Ok(ExportRequest {
        settings: ImageSettings {
            names,
            media_types,
            annotations: parse_annotations(&args.annotations)?,
            reproducible: args.reproducible,
            epoch,
        },
        outputs: args
            .outputs
            .iter()
            .map(|o| parse_output(o))
            .collect::<Result<Vec<_>, _>>()?,
        push: args.push,
        load: loader,
        cache_to: args
            .cache_to
            .iter()
            .map(|s| rbuild::cache::parse_cache_to(s))
            .collect::<Result<_, _>>()?,
        iidfile: args.iidfile.clone(),
        metadata_file: args.metadata_file.clone(),
    })
}

/// The Dockerfile's text when it does not come from a file: the context was one (stdin), or
/// `-f -`.
fn dockerfile_text(
    context: &AcquiredContext,
    stdin_dockerfile: bool,
) -> anyhow::Result<Option<String>> {
    Ok(match (&context.dockerfile_text, stdin_dockerfile) {
        (Some(text), _) => Some(text.clone()),
        (None, true) => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .context("cannot read the Dockerfile from stdin")?;
            Some(text)
        }
        (None, false) => None,
    })
}

/// What to build: the context, the Dockerfile and every flag of the steps.
fn build_options(
    args: &BuildArgs,
    context: &AcquiredContext,
    named: &NamedContexts,
    agents: &rbuild::ssh::BuildAgents,
    dockerfile_text: Option<String>,
) -> anyhow::Result<(BuildOptions, Option<i64>)> {
    let mut build_args = parse_key_values("--build-arg", &args.build_args, true)?;
    let epoch = source_date_epoch(&mut build_args, args.reproducible)?;
    let options = BuildOptions {
        context_dir: context.dir.clone(),
        dockerfile: if dockerfile_text.is_some() {
            None
        } else {
            args.file.clone()
        },
        dockerfile_text,
        target: args.target.clone(),
        jobs: args.jobs,
        secrets: parse_secrets(&args.secrets)?,
        network: args.network,
        allow_insecure: args.allow.contains(&Entitlement::SecurityInsecure),
        untrusted_context: context.untrusted,
        check_only: args.check || args.call == Some(CallFlag::Check),
        no_cache_filter: args.no_cache_filter.clone(),
        cache_from: args
            .cache_from
            .iter()
            .map(|s| rbuild::cache::parse_cache_from(s))
            .collect::<Result<_, _>>()?,
        ssh: agents.sockets.clone(),
        named_contexts: named.contexts.clone(),
        in_place: super::isolation::in_place(args).then(|| {
            let sockets: Vec<PathBuf> = agents.sockets.values().cloned().collect();
            super::isolation::used_paths(args, context, named, &sockets)
        }),
        extra_hosts: args
            .add_hosts
            .iter()
            .map(|h| parse_add_host(h))
            .collect::<anyhow::Result<_>>()?,
        ulimits: args
            .ulimits
            .iter()
            .map(|u| rbuild_runtime::ulimit::Ulimit::parse(u))
            .collect::<Result<_, _>>()?,
        shm_size: args
            .shm_size
            .as_deref()
            .map(|s| {
                rbuild::dockerfile::runmount::parse_size(s)
                    .with_context(|| format!("--shm-size {s}: expected bytes, or a size like 128m"))
            })
            .transpose()?,
        squash: args.squash,
        inline_cache: args.cache_to.iter().any(|spec| {
            rbuild::cache::parse_cache_to(spec)
                .is_ok_and(|to| to.location == rbuild::cache::CacheLocation::Inline)
        }),
        build_args,
        labels: parse_key_values("--label", &args.labels, false)?,
        no_cache: args.no_cache,
        source_date_epoch: epoch,
        pull: args.pull.map(Into::into).unwrap_or_default(),
        ..BuildOptions::default()
    };
    Ok((options, epoch))
}

pub fn run(root: &Path, args: BuildArgs, loader: Option<Loader>) -> anyhow::Result<i32> {
    let mode = ProgressFlag::resolve(args.progress)?.mode(args.quiet);
    let platforms = parse_platforms(args.platform.as_deref())?;
    super::isolation::check(&args)?;
    // Flags are checked before the context is fetched.
    let mut export = export_request(&args, loader, None)?;
    let store = super::open_store(root)?;
    let stdin_dockerfile = args.file.as_deref() == Some(Path::new("-"));
    // Kept until the build is done: the agents rbuild started for --ssh key files, and the
    // git and http contexts in the store's temp dirs.
    let agents = rbuild::ssh::BuildAgents::start(&args.ssh)?;
    let git_ssh = GitSsh::with_agent(agents.sockets.get("default").cloned());
    let keep_git_dir = args.build_args.iter().any(|arg| {
        arg.strip_prefix("BUILDKIT_CONTEXT_KEEP_GIT_DIR=")
            .and_then(rbuild::build::go_bool)
            == Some(true)
    });
    let context = rbuild::context::acquire(
        &store,
        &args.context,
        stdin_dockerfile,
        &git_ssh,
        keep_git_dir,
    )?;
    let text = dockerfile_text(&context, stdin_dockerfile)?;
    let named = rbuild::context::named_contexts(&store, &args.build_contexts, &git_ssh)?;
    let (options, epoch) = build_options(&args, &context, &named, &agents, text)?;
    let describe = match args.call {
        Some(CallFlag::Outline) => Some(rbuild::build::Describe::Outline),
        Some(CallFlag::Targets) => Some(rbuild::build::Describe::Targets),
        _ => None,
    };
    if let Some(what) = describe {
        outln!("{}", rbuild::build::describe(&options, what)?.trim_end());
        return Ok(0);
    }
    export.settings.epoch = epoch;
    let to_stdout = export.outputs.iter().any(Output::to_stdout);
    let request = BuildRequest {
        options,
        platforms,
        export,
    };
    let progress = Progress::new(mode);
    let plain = super::registry::stderr_log(mode == ProgressMode::Quiet);
    let log: &dyn Reporter = match mode {
        // Pushes and loads after the build report above the live display.
        ProgressMode::Tty => &progress,
        ProgressMode::RawJson => &rbuild::progress::JsonTransfers,
        _ => &plain,
    };
    let result = match rbuild::pipeline::run(&store, request, &progress, log) {
        Ok(result) => result,
        Err(PipelineError::Build(BuildError::Checks {
            count,
            check_only: true,
            ..
        })) => {
            progress.notice(&match count {
                0 => "Check complete, no warnings found.".to_string(),
                n => format!("Check complete, {n} warning(s) have been found!"),
            });
            return Ok(i32::from(count > 0));
        }
        Err(e) => return Err(e.into()),
    };
    if result.is_index() {
        return Ok(0);
    }
    let image_id = &result.default_image().image_id;
    if args.quiet {
        if !to_stdout {
            outln!("{image_id}");
        }
    } else {
        progress.notice(&format!("writing image {image_id} done"));
        for tag in &args.tags {
            if let Ok(name) = ImageName::parse(tag) {
                progress.notice(&format!("naming to {} done", name.tag));
            }
        }
    }
    Ok(0)
}
