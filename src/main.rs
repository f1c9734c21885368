//! The `rbuild` binary: enter the user namespace first (before any thread exists), then
//! parse flags and hand them to the library.

mod cli;

use clap::Parser;

/// Global options that take a separate value (`--root DIR`).
const GLOBAL_WITH_VALUE: [&str; 4] = ["--root", "--authfile", "--creds", "--retry"];

fn main() {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // After the copy above: the standard library reads the same argument memory.
    cli::argv::hide_passwords();
    if args
        .get(1)
        .is_some_and(|a| a == rbuild_runtime::STEP_INIT_ARG)
    {
        rbuild_runtime::step_init_main();
    }
    // `rbuild .` and `rbuild DIR` mean `rbuild build DIR` (after global options).
    let mut i = 1;
    while let Some(arg) = args.get(i).and_then(|a| a.to_str()) {
        if GLOBAL_WITH_VALUE.contains(&arg) {
            i += 2;
        } else if GLOBAL_WITH_VALUE
            .iter()
            .any(|option| arg.strip_prefix(option).is_some_and(|v| v.starts_with('=')))
            || arg == "--skip-tls-verify"
            || arg.starts_with("--tls-verify")
        {
            i += 1;
        } else {
            if !arg.starts_with('-') && !cli::SUBCOMMANDS.contains(&arg) {
                args.insert(i, "build".into());
            }
            break;
        }
    }
    let parsed = cli::Cli::parse_from(args);
    // `--load` starts podman/docker now, outside the user namespace entered next.
    let started = cli::start_loader(&parsed)
        .and_then(|loader| prepare(&parsed).map(|()| loader))
        .and_then(|loader| cli::run(parsed, loader));
    let code = match started {
        Ok(code) => code,
        Err(error) => {
            let causes: Vec<&dyn std::error::Error> = error.chain().collect();
            eprintln!("error: {}", rbuild::describe_causes(&causes));
            1
        }
    };
    std::process::exit(code);
}

/// Enters the user namespace (and a private mount namespace for COPY's overlay mounts) for
/// the commands that work on files owned by subordinate ids.
fn prepare(parsed: &cli::Cli) -> anyhow::Result<()> {
    if !parsed.command.needs_user_namespace() {
        return Ok(());
    }
    let userns = rbuild_runtime::enter_user_namespace()?;
    if let Some(notice) = &userns.notice {
        eprintln!("notice: {notice}");
    }
    // Root too gets a user namespace (mapping ids to themselves) when foreign platforms need a
    // binfmt_misc instance of rbuild's own: the host's registrations are never touched.
    // So does root without CAP_SYS_ADMIN (a container's root, even with seccomp unconfined):
    // it gets its capabilities, and so its mount namespaces, in a namespace of its own.
    let can_mount = rbuild_runtime::caps::can_mount();
    if userns.mapping == rbuild_runtime::IdMapping::HostRoot
        && (parsed.command.needs_emulation() || !can_mount)
    {
        rbuild_runtime::enter_identity_user_namespace()?;
    }
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(|e| {
        anyhow::anyhow!(
            "cannot create a mount namespace: {e}{}",
            rbuild_runtime::container::way_out("mount namespaces")
        )
    })?;
    rbuild_runtime::mounts::make_mounts_private()?;
    Ok(())
}
