//! The command line: clap definitions (what the user typed) and one module per subcommand
//! turning them into library calls.

// Paths here are given on the command line by the user: the boundary rule (clippy.toml) does not apply.
#![allow(clippy::disallowed_methods)]

#[macro_use]
mod output;

pub mod argv;
mod build;
mod build_flags;
mod docs;
mod flags;
mod images;
mod isolation;
mod listing;
mod manage;
mod registry;
mod terminal;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use rbuild::store::Store;

#[derive(Debug, Parser)]
#[command(
    name = "rbuild",
    version,
    about = "Rootless, daemonless container image builder"
)]
pub struct Cli {
    /// The store directory [default: $XDG_DATA_HOME/rbuild or ~/.local/share/rbuild]
    #[arg(long, global = true, env = "RBUILD_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Registry credentials file for this command (podman's `--authfile`; default
    /// $REGISTRY_AUTH_FILE, else containers' auth.json and docker's config.json)
    #[arg(long, global = true, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// Registry credentials for this command, before any file (podman's `--creds`). Without
    /// `:PASS` the password is read from $RBUILD_PASSWORD, else asked on the terminal; a
    /// password given here is blanked in the process list at start
    #[arg(long, global = true, value_name = "USER[:PASS]")]
    pub creds: Option<String>,
    /// `--tls-verify=false`: talk to every registry of this command without checking its
    /// certificate (or over plain http), as podman
    #[arg(long, global = true, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub tls_verify: Option<bool>,
    /// kaniko's spelling of `--tls-verify=false`
    #[arg(long, global = true)]
    pub skip_tls_verify: bool,
    /// Retries of a registry request that failed transiently (reset connection, 429, 5xx)
    #[arg(long, global = true, value_name = "N", default_value_t = rbuild::registry::DEFAULT_RETRIES)]
    pub retry: u32,
    #[command(subcommand)]
    pub command: Commands,
}

#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Build an image from a Dockerfile
    Build(Box<build::BuildArgs>),
    /// List images in the store
    Images(images::ImagesArgs),
    /// Show the history of an image
    History(images::HistoryArgs),
    /// Show an image's details as JSON
    Inspect(images::InspectArgs),
    /// Give an image another name
    Tag(manage::TagArgs),
    /// Remove image names (and images left without a name)
    Rmi(manage::RmiArgs),
    /// Load images from an OCI archive, OCI layout dir or Docker archive
    Load(manage::LoadArgs),
    /// Write an image to a Docker archive (default) or an OCI archive
    Save(manage::SaveArgs),
    /// Delete build cache and what no image needs
    Prune(manage::PruneArgs),
    /// Show the space images, layers, build cache and cache mounts use
    Df(manage::DfArgs),
    /// Show this machine's setup: user namespace, kernel, and how each platform would run
    Info,
    /// Pull an image from a registry
    Pull(registry::PullArgs),
    /// Push an image to a registry
    Push(registry::PushArgs),
    /// Save credentials for a registry (in docker's config.json or $REGISTRY_AUTH_FILE)
    Login(registry::LoginArgs),
    /// Remove saved credentials for a registry
    Logout(registry::LogoutArgs),
    /// Manage the store
    System {
        #[command(subcommand)]
        command: manage::SystemCommand,
    },
    /// Print a shell completion script (bash, zsh or fish)
    Completion(docs::CompletionArgs),
    /// Write the man pages (one per command) into a directory
    Man(docs::ManArgs),
}

/// The subcommand names, so that `rbuild .` can mean `rbuild build .`.
pub const SUBCOMMANDS: [&str; 19] = [
    "build",
    "images",
    "history",
    "inspect",
    "tag",
    "rmi",
    "load",
    "save",
    "pull",
    "push",
    "login",
    "logout",
    "prune",
    "df",
    "info",
    "system",
    "completion",
    "man",
    "help",
];

impl Commands {
    /// A build for a platform this machine does not run natively, or `rbuild info` (which
    /// tries the emulation paths).
    pub fn needs_emulation(&self) -> bool {
        let host = rbuild::image::host_architecture();
        match self {
            Commands::Build(args) => args
                .platform
                .as_deref()
                .and_then(|p| rbuild::plan::Platform::parse(p).ok())
                .is_some_and(|p| !rbuild_runtime::binfmt::is_native(&p.architecture, host)),
            Commands::Info => true,
            _ => false,
        }
    }

    /// Commands that touch files owned by subordinate ids work inside the user namespace;
    /// none does for root under `--isolation none` (or `RBUILD_ISOLATION=none`, the rbuild
    /// image's setting): it owns its store's files, and a default container lets it make no
    /// namespace.
    pub fn needs_user_namespace(&self) -> bool {
        let in_place = match self {
            Commands::Build(args) => isolation::in_place(args),
            _ => std::env::var("RBUILD_ISOLATION").is_ok_and(|v| v == "none"),
        };
        if in_place && nix::unistd::geteuid().is_root() {
            return false;
        }
        matches!(
            self,
            Commands::Build(_)
                | Commands::Load(_)
                | Commands::Save(_)
                | Commands::Pull(_)
                | Commands::Push(_)
                | Commands::Rmi(_)
                | Commands::Prune(_)
                | Commands::Info
                | Commands::System { .. }
        )
    }
}

pub fn default_root() -> PathBuf {
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(data).join("rbuild");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".local/share/rbuild")
}

pub fn open_store(root: &std::path::Path) -> anyhow::Result<Store> {
    Store::open(root).with_context(|| format!("cannot open the store at {}", root.display()))
}

pub use rbuild::export::Loader;

/// Work that must happen before rbuild enters its user namespace: starting the `--load`
/// loader as the calling user.
pub fn start_loader(cli: &Cli) -> anyhow::Result<Option<Loader>> {
    match &cli.command {
        Commands::Build(args) => build::start_loader(args),
        _ => Ok(None),
    }
}

pub fn run(cli: Cli, loader: Option<Loader>) -> anyhow::Result<i32> {
    let root = cli.root.clone().unwrap_or_else(default_root);
    rbuild::registry::configure(registry::command_options(&cli)?);
    match cli.command {
        Commands::Build(args) => build::run(&root, *args, loader),
        Commands::Images(args) => images::images(&root, args),
        Commands::History(args) => images::history(&root, args),
        Commands::Inspect(args) => images::inspect(&root, args),
        Commands::Tag(args) => manage::tag(&root, args),
        Commands::Rmi(args) => manage::rmi(&root, args),
        Commands::Load(args) => manage::load(&root, args),
        Commands::Save(args) => manage::save(&root, args),
        Commands::Prune(args) => manage::prune(&root, args),
        Commands::Df(args) => manage::df(&root, args),
        Commands::Info => manage::info(&root),
        Commands::Pull(args) => registry::pull(&root, args),
        Commands::Push(args) => registry::push(&root, args),
        Commands::Login(args) => registry::login(args),
        Commands::Logout(args) => registry::logout(args),
        Commands::System { command } => manage::system(&root, command),
        Commands::Completion(args) => docs::completion(args),
        Commands::Man(args) => docs::man(args),
    }
}
