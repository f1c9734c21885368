//! Shell completions and man pages, generated from the clap definitions themselves, so they
//! never disagree with the flags (`rbuild completion bash`, `rbuild man --out DIR`; installed
//! by `scripts/setup`).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::CommandFactory;

/// The shells `rbuild completion` writes for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, clap::Args)]
pub struct CompletionArgs {
    /// The shell to complete in
    pub shell: CompletionShell,
}

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Directory to write the pages into (rbuild.1, rbuild-build.1, ...); created if missing
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Writes the completion script for `args.shell` to stdout.
pub fn completion(args: CompletionArgs) -> anyhow::Result<i32> {
    let shell = match args.shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    let mut command = super::Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut command, "rbuild", &mut out);
    out.flush().context("write the completion script")?;
    Ok(0)
}

/// Writes one man page per command (`rbuild.1`, `rbuild-build.1`, `rbuild-system-check.1`).
pub fn man(args: ManArgs) -> anyhow::Result<i32> {
    create_dir(&args.out)?;
    let mut command = super::Cli::command();
    command.build();
    let mut written = 0;
    write_pages(&command, "rbuild", &args.out, &mut written)?;
    eprintln!("{written} man pages written to {}", args.out.display());
    Ok(0)
}

fn write_pages(
    command: &clap::Command,
    name: &str,
    dir: &Path,
    written: &mut usize,
) -> anyhow::Result<()> {
    let page = command.clone().name(name.to_string());
    let mut text = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut text)
        .with_context(|| format!("render the man page of {name}"))?;
    write_file(&dir.join(format!("{name}.1")), &text)?;
    *written += 1;
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}

// The user's own output directory, named on the command line.
#[allow(clippy::disallowed_methods)]
fn create_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))
}

#[allow(clippy::disallowed_methods)]
fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("write {}", path.display()))
}
