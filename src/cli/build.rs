//! `rbuild build`: flags -> BuildOptions, run the build, write the requested outputs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::Args;

use rbuild::archive::{self, ArchiveFormat};
use rbuild::build::{self, BuildOptions};
use rbuild::image::parse_tag;
use rbuild::progress::{Progress, ProgressMode};

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
    /// Progress output
    #[arg(long, value_name = "plain|tty|auto", default_value = "auto")]
    pub progress: String,
    /// Print only the image id on success
    #[arg(short, long)]
    pub quiet: bool,
    /// Write the image id to this file
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Also write the image out: `type=oci,dest=FILE` or `type=docker,dest=FILE`
    #[arg(short = 'o', long = "output", value_name = "type=oci,dest=FILE")]
    pub outputs: Vec<String>,
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
    pub network: Option<String>,
    /// Another context: `NAME=DIR`, `NAME=docker-image://REF`, `NAME=oci-layout://PATH[:TAG]`;
    /// replaces the stage or image NAME in FROM, COPY --from and RUN --mount from=
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    pub build_contexts: Vec<String>,
    /// Add a line to /etc/hosts of RUN steps: `HOST:IP`
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub add_hosts: Vec<String>,
    /// Run the build checks only (exit 1 when they find something)
    #[arg(long)]
    pub check: bool,
    /// The build context: a directory, a git URL (`https://host/repo.git#ref:subdir`), or `-`
    /// for a tar (or a lone Dockerfile) on stdin
    #[arg(default_value = ".")]
    pub context: String,
}

struct Output {
    format: ArchiveFormat,
    dest: PathBuf,
}

fn parse_output(spec: &str) -> anyhow::Result<Output> {
    let mut kind = None;
    let mut dest = None;
    for part in spec.split(',') {
        match part.split_once('=') {
            Some(("type", v)) => kind = Some(v.to_string()),
            Some(("dest", v)) => dest = Some(PathBuf::from(v)),
            _ => bail!("--output {spec:?}: expected type=oci,dest=FILE (or type=docker,dest=FILE)"),
        }
    }
    let format = match kind.as_deref() {
        Some("oci") => ArchiveFormat::Oci,
        Some("docker") => ArchiveFormat::Docker,
        Some(other) => bail!("--output type={other} is not supported yet (supported: oci, docker)"),
        None => bail!("--output {spec:?}: missing type= (e.g. type=oci,dest=image.tar)"),
    };
    let dest = dest.with_context(|| format!("--output {spec:?}: missing dest=FILE"))?;
    Ok(Output { format, dest })
}

fn parse_key_values(
    flag: &str,
    values: &[String],
    from_env: bool,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for value in values {
        match value.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                map.insert(k.to_string(), v.to_string());
            }
            None if from_env && !value.is_empty() => {
                // `--build-arg K` takes K from the environment; unset means not given.
                if let Ok(v) = std::env::var(value) {
                    map.insert(value.clone(), v);
                }
            }
            _ => bail!("{flag} {value:?}: expected KEY=VALUE"),
        }
    }
    Ok(map)
}

fn parse_build_contexts(
    store: &rbuild::store::Store,
    specs: &[String],
) -> anyhow::Result<BTreeMap<String, rbuild::plan::NamedContext>> {
    use rbuild::plan::NamedContext;
    let mut named = BTreeMap::new();
    for spec in specs {
        let (name, value) = spec
            .split_once('=')
            .with_context(|| format!("--build-context {spec:?}: expected NAME=VALUE"))?;
        let context = if let Some(reference) = value.strip_prefix("docker-image://") {
            NamedContext::Image(reference.to_string())
        } else if let Some(layout) = value.strip_prefix("oci-layout://") {
            let path = layout
                .rsplit_once(':')
                .filter(|(_, tag)| !tag.contains('/'))
                .map_or(layout, |(p, _)| p);
            let loaded = archive::load(store, Path::new(path))
                .with_context(|| format!("--build-context {name}: cannot load {path}"))?;
            let image = loaded
                .first()
                .with_context(|| format!("--build-context {name}: no image in {path}"))?;
            NamedContext::Image(image.image_id.clone())
        } else {
            let dir = PathBuf::from(value);
            if !dir.is_dir() {
                bail!("--build-context {name}={value}: not a directory (use docker-image:// or oci-layout:// for images)");
            }
            NamedContext::Dir(dir)
        };
        named.insert(name.to_string(), context);
    }
    Ok(named)
}

/// Where the build's context is, and what keeps it there.
struct Context {
    dir: PathBuf,
    /// Set when stdin held a Dockerfile rather than a context.
    dockerfile_text: Option<String>,
    _temp: Option<tempfile::TempDir>,
}

/// A local dir as it is; a git URL fetched (one shallow commit); `-` read from stdin: a tar
/// (plain or gzip) is the context, anything else is a Dockerfile with an empty context.
fn acquire_context(
    store: &rbuild::store::Store,
    spec: &str,
    stdin_dockerfile: bool,
) -> anyhow::Result<Context> {
    use rbuild::context::remote;
    if spec == "-" {
        if stdin_dockerfile {
            bail!("-f - and a context from stdin cannot both read stdin");
        }
        let temp = store.temp_dir("context")?;
        let mut head = Vec::new();
        let mut stdin = std::io::stdin().lock();
        std::io::Read::read_to_end(&mut stdin, &mut head)
            .context("cannot read the context from stdin")?;
        let is_tar =
            head.starts_with(&[0x1f, 0x8b]) || (head.len() > 262 && &head[257..262] == b"ustar");
        if is_tar {
            remote::unpack_tar(std::io::Cursor::new(head), temp.path())
                .context("cannot unpack the context from stdin")?;
            return Ok(Context {
                dir: temp.path().to_path_buf(),
                dockerfile_text: None,
                _temp: Some(temp),
            });
        }
        let text = String::from_utf8(head).context("stdin is neither a tar nor a Dockerfile")?;
        return Ok(Context {
            dir: temp.path().to_path_buf(),
            dockerfile_text: Some(text),
            _temp: Some(temp),
        });
    }
    if remote::is_git_url(spec) {
        let temp = store.temp_dir("git")?;
        let dir = remote::fetch_git(spec, temp.path())
            .with_context(|| format!("cannot fetch the context {spec}"))?;
        return Ok(Context {
            dir,
            dockerfile_text: None,
            _temp: Some(temp),
        });
    }
    if spec.starts_with("http://") || spec.starts_with("https://") {
        bail!("a tarball URL as build context is not supported yet ({spec}): download it and pass it with `rbuild build - < file.tar.gz`");
    }
    let dir = PathBuf::from(spec);
    if !dir.is_dir() {
        bail!("build context {spec} is not a directory");
    }
    Ok(Context {
        dir,
        dockerfile_text: None,
        _temp: None,
    })
}

/// `--secret id=ID,src=FILE`, `id=ID,env=VAR`, or `id=ID` (the variable ID, as buildx).
fn parse_secrets(specs: &[String]) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut secrets = BTreeMap::new();
    for spec in specs {
        let mut id = None;
        let mut source = None;
        for part in spec.split(',') {
            match part.split_once('=') {
                Some(("id", v)) => id = Some(v.to_string()),
                Some(("src" | "source", v)) => source = Some((false, v.to_string())),
                Some(("env", v)) => source = Some((true, v.to_string())),
                Some(("type", "file" | "env")) => {}
                _ => bail!("--secret {spec:?}: expected id=ID,src=FILE or id=ID,env=VAR"),
            }
        }
        let id = id.with_context(|| format!("--secret {spec:?}: missing id="))?;
        let (from_env, name) = source.unwrap_or((true, id.clone()));
        let value = if from_env {
            std::env::var_os(&name)
                .with_context(|| {
                    format!("--secret id={id}: environment variable {name} is not set")
                })?
                .into_encoded_bytes()
        } else {
            std::fs::read(&name).with_context(|| format!("--secret id={id}: cannot read {name}"))?
        };
        secrets.insert(id, value);
    }
    Ok(secrets)
}

pub fn run(root: &Path, args: BuildArgs) -> anyhow::Result<i32> {
    let mut tags = Vec::new();
    for tag in &args.tags {
        tags.push(
            parse_tag(tag)
                .with_context(|| format!("-t {tag}"))?
                .to_string(),
        );
    }
    let outputs = args
        .outputs
        .iter()
        .map(|o| parse_output(o))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mode = match (args.quiet, args.progress.as_str()) {
        (true, _) => ProgressMode::Quiet,
        (false, "plain") | (false, "auto") => ProgressMode::Plain,
        (false, "tty") => ProgressMode::Tty,
        (false, other) => bail!("--progress {other}: expected plain, tty or auto"),
    };
    let store = super::open_store(root)?;
    let stdin_dockerfile = args.file.as_deref() == Some(Path::new("-"));
    let context = acquire_context(&store, &args.context, stdin_dockerfile)?;
    let dockerfile_text = match (&context.dockerfile_text, stdin_dockerfile) {
        (Some(text), _) => Some(text.clone()),
        (None, true) => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .context("cannot read the Dockerfile from stdin")?;
            Some(text)
        }
        (None, false) => None,
    };
    if let Some(network) = &args.network {
        if !matches!(network.as_str(), "default" | "none" | "host") {
            bail!("--network {network}: expected default, none or host");
        }
    }
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
        network: args.network.clone(),
        check_only: args.check,
        named_contexts: parse_build_contexts(&store, &args.build_contexts)?,
        extra_hosts: args
            .add_hosts
            .iter()
            .map(|h| {
                h.split_once(':')
                    .filter(|(host, ip)| !host.is_empty() && !ip.is_empty())
                    .map(|(host, ip)| (host.to_string(), ip.to_string()))
                    .with_context(|| format!("--add-host {h:?}: expected HOST:IP"))
            })
            .collect::<anyhow::Result<_>>()?,
        tags: tags.clone(),
        build_args: parse_key_values("--build-arg", &args.build_args, true)?,
        labels: parse_key_values("--label", &args.labels, false)?,
        no_cache: args.no_cache,
    };
    let progress = Progress::new(mode);
    let outcome = match build::build(&store, &options, &progress) {
        Ok(outcome) => outcome,
        Err(build::BuildError::Checks {
            count: 0,
            check_only: true,
            ..
        }) => {
            progress.notice("Check complete, no warnings found.");
            return Ok(0);
        }
        Err(build::BuildError::Checks {
            count,
            check_only: true,
            ..
        }) => {
            progress.notice(&format!(
                "Check complete, {count} warning(s) have been found!"
            ));
            return Ok(1);
        }
        Err(e) => return Err(e.into()),
    };
    for output in &outputs {
        archive::save(
            &store,
            &outcome.image_id,
            &tags,
            output.format,
            &output.dest,
        )
        .with_context(|| format!("cannot write {}", output.dest.display()))?;
        progress.notice(&format!("exported to {}", output.dest.display()));
    }
    if let Some(iidfile) = &args.iidfile {
        std::fs::write(iidfile, &outcome.image_id)
            .with_context(|| format!("cannot write {}", iidfile.display()))?;
    }
    if args.quiet {
        println!("{}", outcome.image_id);
    } else {
        progress.notice(&format!("writing image {} done", outcome.image_id));
        for tag in &tags {
            progress.notice(&format!("naming to {tag} done"));
        }
    }
    Ok(0)
}
