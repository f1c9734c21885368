//! `--isolation none`: the checks before anything runs (root, in a container or forced) and
//! the paths of this machine the build uses, which the root snapshotter must leave alone.

use std::path::{Path, PathBuf};

use anyhow::bail;

use super::build::BuildArgs;
use super::flags::IsolationFlag;
use rbuild::context::{AcquiredContext, NamedContexts};

/// True when this build runs its steps in place.
pub fn in_place(args: &BuildArgs) -> bool {
    args.isolation == IsolationFlag::None
}

/// Refuses `--isolation none` where it would do harm or cannot work: not as root (the steps
/// run as the container's root and own its files), or outside a container unless forced on
/// the command line (an environment variable set for a project must not reach a shell runner
/// on a real host: `--force-isolation-none` is a flag only).
pub fn check(args: &BuildArgs) -> anyhow::Result<()> {
    if !in_place(args) {
        return Ok(());
    }
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "--isolation none runs the steps as root on this container's own root files: run \
             rbuild as root in the container (docker run --user 0), or build with namespaces \
             (--isolation auto)"
        );
    }
    if rbuild_runtime::container::this_process().is_none() && !args.force_isolation_none {
        bail!(
            "--isolation none replaces the root files of the machine it runs on for the build, \
             and this does not look like a container (no /.dockerenv, /run/.containerenv, \
             container= variable, container cgroup or overlay root): refused. In a container \
             rbuild cannot recognise, add --force-isolation-none"
        );
    }
    // A stopped job still gets the container's root back.
    rbuild_runtime::inplace::handle_termination()?;
    Ok(())
}

/// rbuild's own files: the directory of the executable, or the one above a `bin` dir of its
/// own (the rbuild image's `/rbuild`, with its libraries and certificates); in a system
/// directory (`/usr/bin`...) only the executable itself, as the steps must still see the rest.
fn own_files() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let home = if dir.file_name().is_some_and(|n| n == "bin") {
        dir.parent()?
    } else {
        dir
    };
    let system = [
        "/",
        "/bin",
        "/sbin",
        "/usr",
        "/usr/bin",
        "/usr/sbin",
        "/usr/local",
        "/usr/local/bin",
        "/usr/local/sbin",
        "/opt",
    ];
    if system.iter().any(|s| home == Path::new(s)) {
        Some(exe)
    } else {
        Some(home.to_path_buf())
    }
}

/// Every path of this machine the build reads or keeps using while its steps run: the
/// context, the Dockerfile, named context dirs, the ssh agents' dirs, credentials and
/// ssh known hosts, and rbuild's own files. Mount points are found by the worker.
pub fn used_paths(
    args: &BuildArgs,
    context: &AcquiredContext,
    named: &NamedContexts,
    ssh_sockets: &[PathBuf],
) -> Vec<PathBuf> {
    let mut used = vec![context.dir.clone()];
    used.extend(args.file.clone().filter(|f| f != Path::new("-")));
    for named in named.contexts.values() {
        if let rbuild::plan::NamedContext::Dir(dir) = named {
            used.push(dir.clone());
        }
    }
    used.extend(
        ssh_sockets
            .iter()
            .filter_map(|s| s.parent().map(Path::to_path_buf)),
    );
    let env_path = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    used.extend(env_path("DOCKER_CONFIG"));
    used.extend(env_path("REGISTRY_AUTH_FILE"));
    if let Some(home) = env_path("HOME") {
        used.extend([
            home.join(".docker"),
            home.join(".ssh"),
            home.join(".config/containers"),
        ]);
    }
    used.extend(env_path("XDG_RUNTIME_DIR").map(|run| run.join("containers")));
    used.extend(own_files());
    // Only what exists: a path that does not cannot be wiped.
    used.retain(|path| path.symlink_metadata().is_ok());
    used
}
