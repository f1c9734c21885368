//! `rbuild build`: flags -> BuildOptions, run the build, write the requested outputs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::Args;

use rbuild::archive::output::{parse_output, Output, OutputKind};
use rbuild::archive::{
    self, ArchiveDest, ArchiveFormat, BaseImage, Compression, ExportOptions, MediaTypes,
};
use rbuild::build::{self, BuildOptions};
use rbuild::image::parse_tag;
use rbuild::progress::{Progress, ProgressMode};
use rbuild::store::Store;

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
    /// Pull the FROM image even when the store has it (re-resolve its tag)
    #[arg(long)]
    pub pull: bool,
    /// Push the image to its registry under every -t name after the build
    #[arg(long)]
    pub push: bool,
    /// Progress output
    #[arg(long, value_name = "plain|tty|auto", default_value = "auto")]
    pub progress: String,
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
    pub network: Option<String>,
    /// Entitlements, as buildx: `security.insecure` lets RUN --security=insecure run with every
    /// capability and no seccomp filter; `network.host` is accepted (host is the default)
    #[arg(long = "allow", value_name = "ENTITLEMENT", value_delimiter = ',')]
    pub allow: Vec<String>,
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
    /// An ssh agent for RUN --mount=type=ssh: `default` ($SSH_AUTH_SOCK) or `ID=SOCKET`
    #[arg(long = "ssh", value_name = "ID[=SOCKET]")]
    pub ssh: Vec<String>,
    /// Add a line to /etc/hosts of RUN steps: `HOST:IP`
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub add_hosts: Vec<String>,
    /// Run the build checks only (exit 1 when they find something)
    #[arg(long)]
    pub check: bool,
    /// Hand the image to the local podman or docker (`podman load`/`docker load`); the default
    /// picks whichever is installed, podman first
    #[arg(long, value_name = "podman|docker", num_args = 0..=1, require_equals = true,
          default_missing_value = "auto")]
    pub load: Option<String>,
    /// Write the image digest, config digest, descriptor and names as JSON (as buildx does)
    #[arg(long, value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,
    /// Add an annotation (`KEY=VALUE`, or `manifest:`, `index:`, `manifest-descriptor:` before KEY)
    #[arg(long = "annotation", value_name = "[TYPE:]KEY=VALUE")]
    pub annotations: Vec<String>,
    /// Media types of the written images: OCI (default) or Docker schema2
    #[arg(long, value_name = "oci|docker", default_value = "oci")]
    pub format: String,
    /// Reproducible output: SOURCE_DATE_EPOCH defaults to 0 and every output rewrites timestamps
    #[arg(long)]
    pub reproducible: bool,
    /// The build context: a directory, a git URL (`https://host/repo.git#ref:subdir`), or `-`
    /// for a tar (or a lone Dockerfile) on stdin
    #[arg(default_value = ".")]
    pub context: String,
}

/// `--annotation [TYPE:]KEY=VALUE` sorted by where they go.
#[derive(Debug, Default)]
struct Annotations {
    manifest: BTreeMap<String, String>,
    manifest_descriptor: BTreeMap<String, String>,
    index: BTreeMap<String, String>,
}

fn parse_annotations(values: &[String]) -> anyhow::Result<Annotations> {
    let mut annotations = Annotations::default();
    for value in values {
        let Some((key, val)) = value.split_once('=') else {
            bail!("--annotation {value:?}: expected [TYPE:]KEY=VALUE");
        };
        let (target, key) = match key.split_once(':') {
            Some(("manifest", k)) => (&mut annotations.manifest, k),
            Some(("manifest-descriptor", k)) => (&mut annotations.manifest_descriptor, k),
            Some(("index", k)) => (&mut annotations.index, k),
            Some(("index-descriptor", _)) => {
                bail!("--annotation {value:?}: index-descriptor annotations are not supported")
            }
            _ => (&mut annotations.manifest, key),
        };
        if key.is_empty() {
            bail!("--annotation {value:?}: expected [TYPE:]KEY=VALUE");
        }
        target.insert(key.to_string(), val.to_string());
    }
    Ok(annotations)
}

/// `SOURCE_DATE_EPOCH` from `--build-arg` (taken out of the build args), else the environment,
/// else 0 with `--reproducible`.
fn source_date_epoch(
    build_args: &mut BTreeMap<String, String>,
    reproducible: bool,
) -> anyhow::Result<Option<i64>> {
    let value = build_args
        .remove(SOURCE_DATE_EPOCH)
        .or_else(|| std::env::var(SOURCE_DATE_EPOCH).ok())
        .filter(|v| !v.is_empty());
    match value {
        Some(v) => Ok(Some(v.parse().with_context(|| {
            format!("{SOURCE_DATE_EPOCH}={v}: expected seconds since 1970-01-01")
        })?)),
        None => Ok(reproducible.then_some(0)),
    }
}

const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";

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

/// `--ssh default`, `--ssh ID=SOCKET`: agent sockets only (key files need an agent).
fn parse_ssh(specs: &[String]) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let mut agents = BTreeMap::new();
    for spec in specs {
        let (id, socket) = match spec.split_once('=') {
            Some((id, socket)) => (id.to_string(), PathBuf::from(socket)),
            None => {
                let socket = std::env::var_os("SSH_AUTH_SOCK").with_context(|| {
                    format!(
                        "--ssh {spec}: SSH_AUTH_SOCK is not set; give the socket as {spec}=PATH"
                    )
                })?;
                (spec.clone(), PathBuf::from(socket))
            }
        };
        use std::os::unix::fs::FileTypeExt;
        let is_socket = std::fs::metadata(&socket)
            .map(|m| m.file_type().is_socket())
            .unwrap_or(false);
        if !is_socket {
            bail!("--ssh {id}={}: not an ssh-agent socket (key files are not supported; run ssh-agent and ssh-add)", socket.display());
        }
        agents.insert(id, socket);
    }
    Ok(agents)
}

/// Where the build's context is, and what keeps it there.
struct Context {
    dir: PathBuf,
    /// Set when stdin held a Dockerfile rather than a context.
    dockerfile_text: Option<String>,
    /// A tree rbuild was given (stdin tar, git, URL) rather than the user's own directory.
    untrusted: bool,
    _temp: Option<tempfile::TempDir>,
}

/// A local dir as it is; a git URL fetched (one shallow commit); `-` read from stdin: a tar
/// (plain or gzip) is the context, anything else is a Dockerfile with an empty context.
fn acquire_context(
    store: &rbuild::store::Store,
    spec: &str,
    stdin_dockerfile: bool,
) -> anyhow::Result<Context> {
    use rbuild::context::{http as remote_http, remote};
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
                untrusted: true,
                _temp: Some(temp),
            });
        }
        let text = String::from_utf8(head).context("stdin is neither a tar nor a Dockerfile")?;
        return Ok(Context {
            dir: temp.path().to_path_buf(),
            dockerfile_text: Some(text),
            untrusted: true,
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
            untrusted: true,
            _temp: Some(temp),
        });
    }
    if spec.starts_with("http://") || spec.starts_with("https://") {
        // A tarball URL: downloaded, then unpacked (plain or gzip) as the context.
        let temp = store.temp_dir("url-context")?;
        let downloads = temp.path().join("download");
        let dir = temp.path().join("context");
        std::fs::create_dir_all(&downloads).context("cannot create a temp dir")?;
        std::fs::create_dir_all(&dir).context("cannot create a temp dir")?;
        let download = remote_http::download(spec, &downloads, None)
            .with_context(|| format!("cannot fetch the context {spec}"))?;
        let file = std::fs::File::open(&download.path)
            .with_context(|| format!("cannot read {}", download.path.display()))?;
        remote::unpack_tar(file, &dir)
            .with_context(|| format!("the context {spec} is not a tar"))?;
        return Ok(Context {
            dir,
            dockerfile_text: None,
            untrusted: true,
            _temp: Some(temp),
        });
    }
    let dir = PathBuf::from(spec);
    if !dir.is_dir() {
        bail!("build context {spec} is not a directory");
    }
    Ok(Context {
        dir,
        dockerfile_text: None,
        untrusted: false,
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

/// The image loader of `--load`, started before rbuild enters its user namespace: podman or
/// docker must run as the user who called rbuild, not as root of rbuild's namespace (where
/// rootless podman would find neither its storage nor its id mappings). The docker-archive is
/// streamed to its stdin after the build; nothing is written to disk.
pub struct Loader {
    program: String,
    child: std::process::Child,
}

impl Loader {
    /// Starts `podman load` or `docker load` when `args` ask for `--load`.
    pub fn start(args: &BuildArgs) -> anyhow::Result<Option<Loader>> {
        let Some(choice) = args.load.as_deref() else {
            return Ok(None);
        };
        let program = match choice {
            "auto" => ["podman", "docker"]
                .into_iter()
                .find(|p| find_in_path(p))
                .with_context(|| "--load: neither podman nor docker is installed".to_string())?,
            "podman" | "docker" => choice,
            other => bail!("--load={other}: expected podman or docker"),
        };
        let child = std::process::Command::new(program)
            .arg("load")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("--load: cannot start `{program} load`"))?;
        Ok(Some(Loader {
            program: program.to_string(),
            child,
        }))
    }

    /// Streams the image as a docker-archive into the loader and waits for it; returns what
    /// it printed ("Loaded image: ...").
    fn load(
        mut self,
        store: &Store,
        image_id: &str,
        options: &ExportOptions,
    ) -> anyhow::Result<String> {
        let stdin = self.child.stdin.take().context("loader stdin")?;
        let stdout = self.child.stdout.take().context("loader stdout")?;
        let stderr = self.child.stderr.take().context("loader stderr")?;
        // Drained while the archive is written, so that a chatty loader cannot block on a full pipe.
        let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = pipe.read_to_string(&mut text);
                text
            })
        };
        let out_thread = drain(Box::new(stdout));
        let err_thread = drain(Box::new(stderr));
        let written = archive::save_with(
            store,
            image_id,
            options,
            ArchiveFormat::Docker,
            ArchiveDest::Stream(Box::new(stdin)),
        );
        let status = self.child.wait();
        let out = out_thread.join().unwrap_or_default();
        let err = err_thread.join().unwrap_or_default();
        let status = status.with_context(|| format!("wait for `{} load`", self.program))?;
        if !status.success() {
            bail!("`{} load` failed ({status}): {}", self.program, err.trim());
        }
        written.with_context(|| format!("cannot write the image to `{} load`", self.program))?;
        Ok(out)
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        // Only reached without `load` (the build failed): stop the loader we started.
        if let Ok(None) = self.child.try_wait() {
            drop(self.child.stdin.take());
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn find_in_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// The base image the build resolved for the target stage (through `FROM <stage>` chains),
/// when the built image's layers start with its layers: for the `base.name`/`base.digest`
/// annotations and to keep the base's layers out of `rewrite-timestamp`.
fn base_image(store: &Store, outcome: &build::BuildOutcome) -> Option<BaseImage> {
    let Some(base) = &outcome.base else {
        return Some(BaseImage::default()); // FROM scratch: every layer is the build's
    };
    let config: serde_json::Value =
        serde_json::from_slice(&store.read_blob(&base.image_id).ok()?).ok()?;
    let base_layers: Vec<String> = config["rootfs"]["diff_ids"]
        .as_array()?
        .iter()
        .filter_map(|d| d.as_str().map(str::to_string))
        .collect();
    outcome
        .config
        .rootfs
        .diff_ids
        .starts_with(&base_layers)
        .then(|| BaseImage {
            name: parse_tag(&base.name)
                .map(|t| t.to_string())
                .unwrap_or_else(|_| base.name.clone()),
            digest: store.image_manifest(&base.image_id),
            layer_count: base_layers.len(),
        })
}

/// True when an `ARG NAME` of the Dockerfile declares `name`.
fn declares_arg(dockerfile: &rbuild::dockerfile::Dockerfile, name: &str) -> bool {
    dockerfile.instructions.iter().any(|ins| {
        matches!(&ins.kind, rbuild::dockerfile::InstructionKind::Arg(decls)
            if decls.iter().any(|d| d.name == name))
    })
}

/// `--platform a,b,...`: each platform once, in the order given (`local` is this host).
fn parse_platforms(list: Option<&str>) -> anyhow::Result<Vec<rbuild::plan::Platform>> {
    let mut platforms: Vec<rbuild::plan::Platform> = Vec::new();
    for text in list.into_iter().flat_map(|l| l.split(',')) {
        let platform = rbuild::plan::Platform::parse(text.trim())
            .map_err(|e| anyhow::anyhow!("--platform: {e}"))?;
        if !platforms.contains(&platform) {
            platforms.push(platform);
        }
    }
    Ok(platforms)
}

/// The refusal, before anything is built, of what a multi-platform build cannot do yet.
fn refuse_for_several_platforms(
    args: &BuildArgs,
    loader: Option<&Loader>,
    outputs: &[Output],
) -> anyhow::Result<()> {
    let list = args.platform.as_deref().unwrap_or_default();
    let what = if loader.is_some() {
        Some("--load")
    } else if (args.metadata_file.is_some() || args.iidfile.is_some())
        && !args.push
        && !outputs.iter().any(|o| {
            matches!(
                o.kind,
                OutputKind::Archive {
                    format: ArchiveFormat::Oci,
                    ..
                } | OutputKind::Image { push: true }
            )
        })
    {
        Some("--iidfile and --metadata-file without an image index (add --push or --output type=oci)")
    } else if !args.cache_to.is_empty() {
        Some("--cache-to (one cache export for all platforms)")
    } else if args.check {
        Some("--check")
    } else {
        outputs.iter().find_map(|o| o.kind.single_platform_only())
    };
    match what {
        Some(what) => bail!(
            "--platform {list}: {what} is not supported yet with several platforms; name the \
             image index with -t NAME (and --push it), write it with --output \
             type=oci,dest=FILE (or type=local,dest=DIR for one directory per platform), or \
             build each platform with its own --platform"
        ),
        None => Ok(()),
    }
}

/// A build for several platforms: each platform's image is built (in parallel), then written
/// as one OCI image index (`type=oci`) or one directory per platform (`type=local`).
struct MultiPlatform<'a> {
    store: &'a Store,
    options: &'a BuildOptions,
    platforms: &'a [rbuild::plan::Platform],
    outputs: &'a [Output],
    index_options: ExportOptions,
    reproducible: bool,
    epoch: Option<i64>,
    /// `--push`: the names (as typed) the image index goes to.
    push_to: Vec<String>,
    quiet: bool,
    terminal: bool,
    /// `--iidfile` and `--metadata-file`: they name the image index the build wrote or pushed.
    iidfile: Option<PathBuf>,
    metadata_file: Option<PathBuf>,
}

impl MultiPlatform<'_> {
    fn run(&self, progress: &Progress) -> anyhow::Result<i32> {
        let results: Vec<anyhow::Result<archive::PlatformImage>> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .platforms
                .iter()
                .enumerate()
                .map(|(index, platform)| {
                    let mut options = self.options.clone();
                    options.platform = Some(platform.clone());
                    options.label_platform = true;
                    // The Dockerfile's warnings are the same for every platform: said once.
                    options.quiet_warnings = index > 0;
                    // The tags go to the platform list, after every platform is built.
                    options.tags.clear();
                    scope.spawn(move || -> anyhow::Result<archive::PlatformImage> {
                        let outcome = build::build(self.store, &options, progress)
                            .with_context(|| format!("building for {}", platform.text()))?;
                        Ok(archive::PlatformImage {
                            base: base_image(self.store, &outcome),
                            image_id: outcome.image_id,
                        })
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a platform's build panicked")))
                })
                .collect()
        });
        let images = results.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
        let image_ids: Vec<String> = images.iter().map(|i| i.image_id.clone()).collect();
        // A tag names the host's image (else the first), for every command that reads one
        // image; push and save see the whole list.
        let host = rbuild::plan::Platform::host();
        let default = self.platforms.iter().position(|p| *p == host).unwrap_or(0);
        if !self.options.tags.is_empty() {
            self.store
                .add_platform_list(&image_ids, &image_ids[default], &self.options.tags)?;
        }
        // The image index the build makes (pushed or written): what --iidfile names.
        let mut index: Option<archive::ExportedIndex> = None;
        for name in &self.push_to {
            let pushed = super::registry::push_platform_list(
                self.store,
                &image_ids,
                name,
                None,
                self.quiet,
                self.terminal,
            )?;
            index.get_or_insert(archive::ExportedIndex {
                digest: pushed.manifest_digest,
                size: pushed.manifest_size,
            });
        }
        if self.outputs.is_empty() && self.options.tags.is_empty() {
            progress.notice(
                "warning: no -t and no --output: the images are in the store untagged; name \
                 them with -t, or write them as one image index with --output type=oci,dest=FILE",
            );
        }
        let platforms: Vec<String> = self.platforms.iter().map(|p| p.text()).collect();
        for output in self.outputs {
            let rewrite = self.reproducible || output.rewrite_timestamp;
            let mut options = self.index_options.clone();
            options.tags = output
                .names
                .iter()
                .filter_map(|n| parse_tag(n).ok().map(|t| t.to_string()))
                .collect();
            options
                .manifest_annotations
                .extend(output.annotations.clone());
            options.compression = output.compression;
            options.compression_level = output.compression_level;
            if let Some(media_types) = output.media_types {
                options.media_types = media_types;
            }
            options.rewrite_timestamp = if rewrite { self.epoch } else { None };
            if let OutputKind::Image { push } = &output.kind {
                for name in &output.names {
                    let tag = parse_tag(name).with_context(|| format!("--output name={name}"))?;
                    self.store.add_platform_list(
                        &image_ids,
                        &image_ids[default],
                        &[tag.to_string()],
                    )?;
                    if *push {
                        let pushed = super::registry::push_platform_list(
                            self.store,
                            &image_ids,
                            name,
                            output.compression,
                            self.quiet,
                            self.terminal,
                        )?;
                        index.get_or_insert(archive::ExportedIndex {
                            digest: pushed.manifest_digest,
                            size: pushed.manifest_size,
                        });
                    }
                }
            }
            let report = archive::output::write_output_platforms(
                self.store, &images, &platforms, output, &options,
            )
            .with_context(|| format!("cannot write {}", output.describe_dest()))?;
            if !report.skipped_devices.is_empty() {
                progress.notice(&format!(
                    "warning: device nodes not created (an unprivileged user cannot): {}",
                    report.skipped_devices.join(" ")
                ));
            }
            match report.index {
                Some(written) => {
                    progress.notice(&format!(
                        "exported the image index {} to {}",
                        written.digest,
                        output.describe_dest()
                    ));
                    index.get_or_insert(written);
                }
                None => progress.notice(&format!("exported to {}", output.describe_dest())),
            }
        }
        if let Some(index) = &index {
            write_index_files(self, index)?;
        }
        Ok(0)
    }
}

/// `--iidfile` and `--metadata-file` of a build for several platforms: the image index, as
/// buildx writes them (no config digest: each platform has its own).
fn write_index_files(multi: &MultiPlatform, index: &archive::ExportedIndex) -> anyhow::Result<()> {
    if let Some(path) = &multi.iidfile {
        std::fs::write(path, &index.digest)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &multi.metadata_file {
        let metadata = serde_json::json!({
            "containerimage.digest": index.digest,
            "containerimage.descriptor": {
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": index.digest,
                "size": index.size,
            },
            "image.name": multi.options.tags.join(","),
        });
        let text = serde_json::to_string_pretty(&metadata).context("metadata JSON")?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

pub fn run(root: &Path, args: BuildArgs, loader: Option<Loader>) -> anyhow::Result<i32> {
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
        .collect::<Result<Vec<_>, _>>()?;
    if outputs.iter().filter(|o| o.to_stdout()).count() > 1 {
        bail!("--output: only one output can go to stdout");
    }
    let media_types = match args.format.as_str() {
        "oci" => MediaTypes::Oci,
        "docker" => MediaTypes::Docker,
        other => bail!("--format {other}: expected oci or docker"),
    };
    let annotations = parse_annotations(&args.annotations)?;
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
    for entitlement in &args.allow {
        if !matches!(entitlement.as_str(), "security.insecure" | "network.host") {
            bail!("--allow {entitlement}: expected security.insecure or network.host");
        }
    }
    let platforms = parse_platforms(args.platform.as_deref())?;
    if platforms.len() > 1 {
        refuse_for_several_platforms(&args, loader.as_ref(), &outputs)?;
    }
    if args.push && args.tags.is_empty() {
        bail!("--push needs at least one -t NAME[:TAG] to push to");
    }
    let mut build_args = parse_key_values("--build-arg", &args.build_args, true)?;
    let epoch = source_date_epoch(&mut build_args, args.reproducible)?;
    let mut options = BuildOptions {
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
        allow_insecure: args.allow.iter().any(|a| a == "security.insecure"),
        untrusted_context: context.untrusted,
        check_only: args.check,
        no_cache_filter: args.no_cache_filter.clone(),
        platform: match platforms.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        },
        cache_to: args
            .cache_to
            .iter()
            .map(|s| rbuild::cache::parse_cache_to(s))
            .collect::<Result<_, _>>()?,
        cache_from: args
            .cache_from
            .iter()
            .map(|s| rbuild::cache::parse_cache_from(s))
            .collect::<Result<_, _>>()?,
        ssh: parse_ssh(&args.ssh)?,
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
        build_args,
        labels: parse_key_values("--label", &args.labels, false)?,
        no_cache: args.no_cache,
        source_date_epoch: epoch,
        pull: args.pull,
        label_platform: false,
        loaded: None,
        quiet_warnings: false,
    };
    // Read and parsed once here: every platform's build and the questions below share it.
    let loaded = build::LoadedDockerfile::load(&options)?;
    options.loaded = Some(loaded.clone());
    // A Dockerfile that declares `ARG SOURCE_DATE_EPOCH` sees the epoch, as with BuildKit;
    // otherwise it is no build arg (and no "not consumed" warning).
    if let Some(epoch) = epoch {
        if declares_arg(&loaded.parsed, SOURCE_DATE_EPOCH) {
            options
                .build_args
                .insert(SOURCE_DATE_EPOCH.to_string(), epoch.to_string());
        }
    }
    let progress = Progress::new(mode);
    if platforms.len() > 1 {
        let index_options = ExportOptions {
            media_types,
            manifest_annotations: annotations.manifest.clone(),
            descriptor_annotations: annotations.manifest_descriptor.clone(),
            index_annotations: annotations.index.clone(),
            ..ExportOptions::default()
        };
        let multi = MultiPlatform {
            store: &store,
            options: &options,
            platforms: &platforms,
            outputs: &outputs,
            index_options,
            reproducible: args.reproducible,
            epoch,
            push_to: if args.push {
                args.tags.clone()
            } else {
                Vec::new()
            },
            quiet: args.quiet,
            terminal: mode == ProgressMode::Tty,
            iidfile: args.iidfile.clone(),
            metadata_file: args.metadata_file.clone(),
        };
        return multi.run(&progress);
    }
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
    if epoch.is_none() && outputs.iter().any(|o| o.rewrite_timestamp) {
        progress.notice(
            "warning: rewrite-timestamp=true does nothing without SOURCE_DATE_EPOCH \
             (--build-arg SOURCE_DATE_EPOCH=N, the environment, or --reproducible)",
        );
    }
    let base = base_image(&store, &outcome);
    if base.is_none()
        && epoch.is_some()
        && (args.reproducible || outputs.iter().any(|o| o.rewrite_timestamp))
    {
        progress.notice(
            "warning: the base image was not found in the store: rewrite-timestamp rewrites \
             every layer, the base's too",
        );
    }
    let export_options = |output: Option<&Output>| {
        let mut names = tags.clone();
        let mut manifest_annotations = annotations.manifest.clone();
        let mut rewrite = args.reproducible;
        let mut export = ExportOptions::default();
        if let Some(output) = output {
            for name in &output.names {
                if let Ok(tag) = parse_tag(name) {
                    let tag = tag.to_string();
                    if !names.contains(&tag) {
                        names.push(tag);
                    }
                }
            }
            manifest_annotations.extend(output.annotations.clone());
            rewrite |= output.rewrite_timestamp;
            export.compression = output.compression;
            export.compression_level = output.compression_level;
            export.media_types = output.media_types.unwrap_or(media_types);
        } else {
            export.media_types = media_types;
        }
        export.tags = names;
        export.manifest_annotations = manifest_annotations;
        export.descriptor_annotations = annotations.manifest_descriptor.clone();
        export.index_annotations = annotations.index.clone();
        export.rewrite_timestamp = if rewrite { epoch } else { None };
        export.base = base.clone();
        export
    };
    // What a push sends: the layers' compression, and the manifest annotations every other
    // output writes (an OCI manifest), so that the pushed manifest is the one
    // --metadata-file describes and a registry knows its digest.
    let push_options = |output: Option<&Output>| -> anyhow::Result<rbuild::registry::PushOptions> {
        let mut export = export_options(output);
        export.media_types = MediaTypes::Oci;
        let config: serde_json::Value =
            serde_json::from_slice(&store.read_blob(&outcome.image_id)?)
                .context("the image's config")?;
        Ok(rbuild::registry::PushOptions {
            compression: output.and_then(|o| o.compression),
            annotations: archive::manifest_annotations(&export, &config)
                .map_err(anyhow::Error::msg)?,
        })
    };
    let mut pushed: Option<String> = None;
    let mut exported = None;
    for output in &outputs {
        let options = export_options(Some(output));
        if let OutputKind::Image { push } = &output.kind {
            for name in &output.names {
                let tag = parse_tag(name).with_context(|| format!("--output name={name}"))?;
                store.add_image(&outcome.image_id, &[tag.to_string()])?;
                if *push {
                    let digest = super::registry::push_image_with(
                        &store,
                        &outcome.image_id,
                        name,
                        &push_options(Some(output))?,
                        args.quiet,
                        mode == ProgressMode::Tty,
                    )?;
                    pushed.get_or_insert(digest);
                }
            }
        }
        let report = archive::output::write_output(&store, &outcome.image_id, output, &options)
            .with_context(|| format!("cannot write {}", output.describe_dest()))?;
        if exported.is_none() {
            exported = report.written;
        }
        if !report.skipped_devices.is_empty() {
            progress.notice(&format!(
                "warning: device nodes not created (an unprivileged user cannot): {}",
                report.skipped_devices.join(" ")
            ));
        }
        progress.notice(&format!("exported to {}", output.describe_dest()));
    }
    if let Some(loader) = loader {
        let program = loader.program.clone();
        let mut options = export_options(None);
        options.compression = Some(Compression::Uncompressed);
        let printed = loader.load(&store, &outcome.image_id, &options)?;
        progress.notice(&format!("loaded into {program}: {}", printed.trim()));
    }
    if args.push {
        // The names as typed: `-t busybox` pushes to docker.io/library/busybox.
        let options = push_options(None)?;
        for tag in &args.tags {
            let digest = super::registry::push_image_with(
                &store,
                &outcome.image_id,
                tag,
                &options,
                args.quiet,
                mode == ProgressMode::Tty,
            )?;
            pushed.get_or_insert(digest);
        }
    }
    if let Some(path) = &args.metadata_file {
        // A pushed image is described as pushed; else as the first output wrote it.
        let written = match (exported, &pushed) {
            (Some(written), None) => written,
            (_, Some(_)) => {
                let mut options = export_options(None);
                options.media_types = MediaTypes::Oci;
                archive::describe(&store, &outcome.image_id, &options)
                    .context("cannot describe the image for --metadata-file")?
            }
            (None, None) => archive::describe(&store, &outcome.image_id, &export_options(None))
                .context("cannot describe the image for --metadata-file")?,
        };
        if let Some(digest) = pushed.as_ref().filter(|d| **d != written.manifest_digest) {
            bail!(
                "the pushed manifest {digest} is not the one described ({}): a bug, please report it",
                written.manifest_digest
            );
        }
        let metadata = serde_json::json!({
            "containerimage.config.digest": written.config_digest,
            "containerimage.digest": written.manifest_digest,
            "containerimage.descriptor": {
                "mediaType": written.manifest_media_type,
                "digest": written.manifest_digest,
                "size": written.manifest_size,
            },
            "image.name": tags.join(","),
        });
        let text = serde_json::to_string_pretty(&metadata).context("metadata JSON")?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(iidfile) = &args.iidfile {
        std::fs::write(iidfile, &outcome.image_id)
            .with_context(|| format!("cannot write {}", iidfile.display()))?;
    }
    if args.quiet {
        if !outputs.iter().any(Output::to_stdout) {
            outln!("{}", outcome.image_id);
        }
    } else {
        progress.notice(&format!("writing image {} done", outcome.image_id));
        for tag in &tags {
            progress.notice(&format!("naming to {tag} done"));
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_by_target() {
        let parsed = parse_annotations(&[
            "a=1".to_string(),
            "manifest:b=2".to_string(),
            "index:c=3".to_string(),
            "manifest-descriptor:d=4".to_string(),
        ])
        .expect("valid");
        assert_eq!(parsed.manifest.len(), 2);
        assert_eq!(parsed.index.get("c").map(String::as_str), Some("3"));
        assert_eq!(
            parsed.manifest_descriptor.get("d").map(String::as_str),
            Some("4")
        );
        assert!(parse_annotations(&["novalue".to_string()]).is_err());
    }

    #[test]
    fn source_date_epoch_from_build_arg_or_reproducible() {
        let mut args = BTreeMap::from([(SOURCE_DATE_EPOCH.to_string(), "42".to_string())]);
        assert_eq!(source_date_epoch(&mut args, false).ok(), Some(Some(42)));
        assert!(args.is_empty(), "taken out of the build args");
        let mut bad = BTreeMap::from([(SOURCE_DATE_EPOCH.to_string(), "soon".to_string())]);
        assert!(source_date_epoch(&mut bad, false).is_err());
        if std::env::var_os(SOURCE_DATE_EPOCH).is_none() {
            assert_eq!(
                source_date_epoch(&mut BTreeMap::new(), true).ok(),
                Some(Some(0))
            );
            assert_eq!(
                source_date_epoch(&mut BTreeMap::new(), false).ok(),
                Some(None)
            );
        }
    }
}
