//! `rbuild pull`, `push`, `login`, `logout`.

use std::io::Read as _;
use std::path::Path;

use anyhow::{bail, Context as _};
use clap::Args;

use super::flags::ProgressFlag;
use rbuild::image::parse_reference;
use rbuild::progress::{ProgressMode, Reporter, TerminalTransfers};
use rbuild::registry::{self, Credentials, Platform, PullOptions, RegistrySettings};

#[derive(Debug, Args)]
pub struct PullArgs {
    /// `NAME[:TAG]`, `NAME@sha256:...` (`busybox` means `docker.io/library/busybox:latest`)
    pub image: String,
    /// Platform to pick from a multi-platform image [default: the host's]
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// Print only the image id
    #[arg(short, long)]
    pub quiet: bool,
    /// Progress output: `plain` (a line per event), `tty` (live per-layer bytes and rates),
    /// `rawjson`, `quiet`/`none`, `auto` [default: $RBUILD_PROGRESS, $BUILDKIT_PROGRESS, else auto]
    #[arg(long, value_enum)]
    pub progress: Option<ProgressFlag>,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// An image of the store (name or id)
    pub image: String,
    /// Where to push it [default: IMAGE's name]
    pub destination: Option<String>,
    /// Print only the manifest digest
    #[arg(short, long)]
    pub quiet: bool,
    /// Progress output: `plain` (a line per event), `tty` (live per-layer bytes and rates),
    /// `rawjson`, `quiet`/`none`, `auto` [default: $RBUILD_PROGRESS, $BUILDKIT_PROGRESS, else auto]
    #[arg(long, value_enum)]
    pub progress: Option<ProgressFlag>,
    /// Compression of layers that have no blob in it yet (podman's flag): a layer that came
    /// with a blob, or was pushed before, keeps it [default: gzip]
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub compression_format: Option<PushCompression>,
}

/// Layer compression for a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PushCompression {
    Gzip,
    Zstd,
}

impl PushCompression {
    fn options(format: Option<PushCompression>) -> registry::PushOptions {
        registry::PushOptions {
            compression: format.map(|f| match f {
                PushCompression::Gzip => rbuild::archive::Compression::Gzip,
                PushCompression::Zstd => rbuild::archive::Compression::Zstd,
            }),
            ..registry::PushOptions::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Registry host (`registry.example.com`, `localhost:5000`) [default: docker.io]
    pub registry: Option<String>,
    #[arg(short, long)]
    pub username: Option<String>,
    /// The password (visible to other users in the process list: prefer --password-stdin)
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from standard input
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Registry host [default: docker.io]
    pub registry: Option<String>,
}

/// The registry options of this command's global flags (`--authfile`, `--creds`,
/// `--tls-verify`, `--skip-tls-verify`, `--retry`).
pub fn command_options(cli: &super::Cli) -> anyhow::Result<registry::CommandOptions> {
    let credentials = cli.creds.as_deref().map(creds_of).transpose()?;
    Ok(registry::CommandOptions {
        auth_file: cli.authfile.clone(),
        credentials,
        tls_verify: cli.tls_verify.unwrap_or(true) && !cli.skip_tls_verify,
        retries: cli.retry,
    })
}

/// `--creds USER[:PASS]`: without a password, $RBUILD_PASSWORD, else a prompt on the terminal.
fn creds_of(value: &str) -> anyhow::Result<Credentials> {
    let (username, secret) = match value.split_once(':') {
        Some((user, pass)) => (user.to_string(), pass.to_string()),
        None => {
            let secret = match std::env::var("RBUILD_PASSWORD") {
                Ok(secret) => {
                    // Not passed on to the programs rbuild runs (git, credential helpers).
                    std::env::remove_var("RBUILD_PASSWORD");
                    secret
                }
                Err(_) => super::terminal::read_password(&format!("Password for {value}: "))
                    .with_context(|| {
                        format!(
                            "--creds {value}: no password; give it in $RBUILD_PASSWORD \
                             (or run on a terminal to be asked)"
                        )
                    })?,
            };
            (value.to_string(), secret)
        }
    };
    if username.is_empty() || secret.is_empty() {
        bail!("--creds: expected USER[:PASS] with a non-empty user and password");
    }
    Ok(Credentials { username, secret })
}

pub fn stderr_log(quiet: bool) -> impl Fn(&str) + Sync {
    move |line: &str| {
        if !quiet {
            eprintln!("{line}");
        }
    }
}

pub fn pull(root: &Path, args: PullArgs) -> anyhow::Result<i32> {
    let reference = parse_reference(&args.image)?;
    let platform = args.platform.as_deref().map(Platform::parse).transpose()?;
    let store = super::open_store(root)?;
    let mode = ProgressFlag::resolve(args.progress)?.mode(args.quiet);
    let plain = stderr_log(mode == ProgressMode::Quiet);
    let terminal = TerminalTransfers::default();
    let log: &dyn Reporter = match mode {
        ProgressMode::Tty => &terminal,
        ProgressMode::RawJson => &rbuild::progress::JsonTransfers,
        _ => &plain,
    };
    let pulled = registry::pull(&store, &reference, &PullOptions { platform }, log)
        .with_context(|| format!("cannot pull {reference}"))?;
    outln!("{}", pulled.image_id);
    Ok(0)
}

/// Pushes `image_id` to `dest` (a reference typed by the user).
fn push_image(
    store: &rbuild::store::Store,
    image_id: &str,
    dest: &str,
    options: &registry::PushOptions,
    quiet: bool,
    mode: ProgressMode,
) -> anyhow::Result<String> {
    push_reporting(dest, quiet, mode, |reference, log| {
        registry::push_with(store, image_id, reference, options, log)
    })
    .map(|pushed| pushed.manifest_digest)
}

/// Pushes the images of a multi-platform tag as one image index to `dest`.
fn push_platform_list(
    store: &rbuild::store::Store,
    image_ids: &[String],
    dest: &str,
    options: &registry::PushOptions,
    quiet: bool,
    mode: ProgressMode,
) -> anyhow::Result<registry::PushedImage> {
    let options = registry::IndexPushOptions {
        images: vec![options.clone(); image_ids.len()],
        ..registry::IndexPushOptions::default()
    };
    push_reporting(dest, quiet, mode, |reference, log| {
        registry::push_index(store, image_ids, reference, &options, log)
    })
}

/// Parses `dest` (a tag, not a digest), runs `push` with the progress reporter the user
/// asked for, and returns the digest pushed under the tag.
fn push_reporting(
    dest: &str,
    quiet: bool,
    mode: ProgressMode,
    push: impl FnOnce(
        &rbuild::image::Reference,
        &dyn Reporter,
    ) -> Result<registry::PushedImage, registry::RegistryError>,
) -> anyhow::Result<registry::PushedImage> {
    let reference = parse_reference(dest)?;
    if reference.digest.is_some() {
        bail!("cannot push to {dest}: a digest names content, give a tag instead");
    }
    let plain = stderr_log(quiet || mode == ProgressMode::Quiet);
    let live = TerminalTransfers::default();
    let log: &dyn Reporter = match mode {
        _ if quiet => &plain,
        ProgressMode::Tty => &live,
        ProgressMode::RawJson => &rbuild::progress::JsonTransfers,
        _ => &plain,
    };
    push(&reference, log).with_context(|| format!("cannot push {reference}"))
}

pub fn push(root: &Path, args: PushArgs) -> anyhow::Result<i32> {
    let store = super::open_store(root)?;
    let image_id = store.resolve_image(&args.image)?;
    let dest = args.destination.as_deref().unwrap_or(&args.image);
    // --quiet keeps standard output to the digest; --progress still says what stderr shows.
    let mode = ProgressFlag::resolve(args.progress)?.mode(false);
    let options = PushCompression::options(args.compression_format);
    let digest = match store.platform_list(&args.image)? {
        Some(image_ids) => {
            push_platform_list(&store, &image_ids, dest, &options, args.quiet, mode)?
                .manifest_digest
        }
        None => push_image(&store, &image_id, dest, &options, args.quiet, mode)?,
    };
    if args.quiet {
        outln!("{digest}");
    }
    Ok(0)
}

fn registry_host(registry: Option<&str>) -> anyhow::Result<String> {
    let Some(registry) = registry else {
        return Ok("docker.io".to_string());
    };
    let host = registry
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let host = host.split('/').next().unwrap_or(host);
    if host.is_empty() {
        bail!("{registry:?} is not a registry host");
    }
    Ok(match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        other => other.to_string(),
    })
}

pub fn login(args: LoginArgs) -> anyhow::Result<i32> {
    let registry = registry_host(args.registry.as_deref())?;
    let Some(username) = args.username else {
        bail!("login needs --username (and --password-stdin or --password)");
    };
    let secret = match (args.password, args.password_stdin) {
        (Some(_), true) => bail!("--password and --password-stdin cannot be used together"),
        (Some(password), false) => password,
        (None, true) => {
            let mut input = String::new();
            std::io::stdin()
                .read_to_string(&mut input)
                .context("cannot read the password from standard input")?;
            input.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => bail!("login needs --password-stdin (or --password)"),
    };
    if secret.is_empty() {
        bail!("the password is empty");
    }
    let credentials = Credentials { username, secret };
    let settings = RegistrySettings::load()?;
    registry::Client::check_login(&settings, &registry, credentials.clone())
        .with_context(|| format!("cannot log in to {registry}"))?;
    let place = registry::login(&registry, &credentials)?;
    eprintln!("credentials for {registry} saved in {place}");
    outln!("Login Succeeded");
    Ok(0)
}

pub fn logout(args: LogoutArgs) -> anyhow::Result<i32> {
    let registry = registry_host(args.registry.as_deref())?;
    if registry::logout(&registry)? {
        outln!("Removed login credentials for {registry}");
    } else {
        outln!("Not logged in to {registry}");
    }
    Ok(0)
}
