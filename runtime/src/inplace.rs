//! The in-place step of `--isolation none`: the command runs directly in the container rbuild
//! itself runs in, as root there, on the container's own root (the stage's files were put
//! there by the root snapshotter). No namespace, mount or seccomp filter is made (the
//! container has none to give); what a RUN asks that needs one is emulated or refused:
//!
//! - a secret or other file rbuild made: copied to the target for the step, removed after;
//! - an ssh agent socket: a symlink at the target to it, removed after;
//! - a cache mount: its store dir renamed to the target for the step and back after (copied
//!   in and back when the store is on another filesystem, as it mostly is: a volume);
//! - a tmpfs: an empty dir, removed after with what the step put in it;
//! - a bind of the context, a stage or an image, and `--network=none`: refused, naming why.
//!
//! Every directory the emulation creates is removed after the step and the modification
//! times of the directories it touched are put back, so nothing of it reaches the layer.

// The root is the container's own, which the caller (rbuild as root in a container made for
// the build) owns; the paths here are its mount targets and rbuild's own files.
#![allow(clippy::disallowed_methods)]

use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use crate::error::{RuntimeError, SetupError};
use crate::spec::{MountSource, NetworkMode, StepSpec};
use crate::step::{pump_output, OutputStream, StepOutcome};

/// The session of the step running now (0: none), for the termination handler.
static CURRENT_SESSION: AtomicI32 = AtomicI32::new(0);
/// Set once SIGTERM, SIGINT or SIGHUP arrived.
static TERMINATED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_termination(_: libc::c_int) {
    TERMINATED.store(true, Ordering::SeqCst);
    let session = CURRENT_SESSION.load(Ordering::SeqCst);
    if session > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(-session, libc::SIGKILL) };
    }
}

/// Makes SIGTERM, SIGINT and SIGHUP end the running step and the build instead of rbuild
/// itself, so that the build can put the container's root back on its way out (a CI job
/// cancelled, `docker stop`).
pub fn handle_termination() -> Result<(), SetupError> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_termination),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: the handler only stores to atomics and calls kill.
        unsafe { sigaction(signal, &action) }
            .map_err(|e| SetupError::os(format!("handle {signal}"), e))?;
    }
    Ok(())
}

/// True once a termination signal arrived: no further step starts.
pub fn terminated() -> bool {
    TERMINATED.load(Ordering::SeqCst)
}

fn refused(message: impl Into<String>) -> RuntimeError {
    RuntimeError::Setup(SetupError::Refused(message.into()))
}

fn failed(what: String) -> impl FnOnce(std::io::Error) -> RuntimeError {
    move |e| RuntimeError::Setup(SetupError::os(what, e))
}

/// What the emulation put in the root, undone on drop (deepest first).
#[derive(Default)]
struct Emulated {
    /// Files, symlinks and dirs to remove.
    made: Vec<PathBuf>,
    /// Cache dirs to move back: (target in the root, store dir).
    moved: Vec<(PathBuf, PathBuf)>,
    /// Cache dirs copied in (the store is on another filesystem), to copy back and remove.
    copied: Vec<(PathBuf, PathBuf)>,
    /// Directories whose mtime changed, with the times to put back.
    times: Vec<(PathBuf, i64, i64, i64, i64)>,
}

impl Emulated {
    /// Creates the missing parents of `target`, remembering them and the times of the first
    /// existing one.
    fn parents(&mut self, target: &Path) -> Result<(), RuntimeError> {
        let mut missing = Vec::new();
        let mut at = target.parent();
        while let Some(dir) = at {
            if dir.symlink_metadata().is_ok() {
                self.keep_times(dir);
                break;
            }
            missing.push(dir.to_path_buf());
            at = dir.parent();
        }
        for dir in missing.into_iter().rev() {
            std::fs::create_dir(&dir).map_err(failed(format!("create {}", dir.display())))?;
            self.made.push(dir);
        }
        Ok(())
    }

    fn keep_times(&mut self, dir: &Path) {
        if let Ok(meta) = dir.metadata() {
            self.times.push((
                dir.to_path_buf(),
                meta.atime(),
                meta.atime_nsec(),
                meta.mtime(),
                meta.mtime_nsec(),
            ));
        }
    }

    fn add(
        &mut self,
        target: &Path,
        source: &MountSource,
        root_mount: Option<u64>,
    ) -> Result<(), RuntimeError> {
        // Never into a mount point of the container (a volume holds the host's data): the
        // nearest existing directory on the way must be on the root's own mount.
        let existing = target
            .ancestors()
            .skip(1)
            .find(|dir| dir.symlink_metadata().is_ok());
        if root_mount.is_some() && existing.and_then(mount_id) != root_mount {
            return Err(refused(format!(
                "RUN --mount at {}: it is on a mount point of the container (a volume), which \
                 --isolation none never writes to: pick another target",
                target.display()
            )));
        }
        if target.symlink_metadata().is_ok() {
            return Err(refused(format!(
                "RUN --mount at {}: the image has something there, which --isolation none \
                 cannot cover without mounting (pick another target)",
                target.display()
            )));
        }
        self.parents(target)?;
        match source {
            MountSource::Host { path, .. } => {
                let meta = path
                    .symlink_metadata()
                    .map_err(failed(format!("read {}", path.display())))?;
                let kind = meta.file_type();
                use std::os::unix::fs::FileTypeExt as _;
                if kind.is_socket() {
                    std::os::unix::fs::symlink(path, target)
                        .map_err(failed(format!("link {}", target.display())))?;
                    self.made.push(target.to_path_buf());
                } else if kind.is_dir() {
                    // A cache dir: moved in when the store is on the root's filesystem, else
                    // copied in (and back after the step).
                    match std::fs::rename(path, target) {
                        Ok(()) => self.moved.push((target.to_path_buf(), path.clone())),
                        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                            copy_tree(path, target).map_err(failed(format!(
                                "copy the cache {} to {}",
                                path.display(),
                                target.display()
                            )))?;
                            self.copied.push((target.to_path_buf(), path.clone()));
                        }
                        Err(e) => {
                            return Err(failed(format!(
                                "move the cache {} to {}",
                                path.display(),
                                target.display()
                            ))(e))
                        }
                    }
                } else {
                    std::fs::copy(path, target)
                        .map_err(failed(format!("copy to {}", target.display())))?;
                    self.made.push(target.to_path_buf());
                    std::os::unix::fs::lchown(target, Some(meta.uid()), Some(meta.gid()))
                        .map_err(failed(format!("chown {}", target.display())))?;
                    std::fs::set_permissions(target, meta.permissions())
                        .map_err(failed(format!("chmod {}", target.display())))?;
                }
            }
            MountSource::Tmpfs { .. } => {
                std::fs::create_dir(target)
                    .map_err(failed(format!("create {}", target.display())))?;
                self.made.push(target.to_path_buf());
            }
            MountSource::InTree(_) => {
                return Err(refused(format!(
                    "RUN --mount=type=bind at {}: --isolation none cannot mount (no \
                     CAP_SYS_ADMIN in the container): COPY the files in a step before, or \
                     build with namespaces",
                    target.display()
                )))
            }
        }
        Ok(())
    }
}

impl Drop for Emulated {
    fn drop(&mut self) {
        for (target, store_dir) in self.moved.drain(..).rev() {
            let _ = std::fs::rename(&target, &store_dir);
        }
        for (target, store_dir) in self.copied.drain(..).rev() {
            // The cache keeps what the step left; the target goes with the step.
            if std::fs::remove_dir_all(&store_dir).is_ok() {
                let _ = copy_tree(&target, &store_dir);
            }
            let _ = std::fs::remove_dir_all(&target);
        }
        for made in self.made.drain(..).rev() {
            let removed = match made.symlink_metadata() {
                Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&made),
                Ok(_) => std::fs::remove_file(&made),
                Err(_) => Ok(()),
            };
            drop(removed);
        }
        for (dir, atime, atime_ns, mtime, mtime_ns) in self.times.drain(..) {
            let times = [
                nix::sys::time::TimeSpec::new(atime, atime_ns),
                nix::sys::time::TimeSpec::new(mtime, mtime_ns),
            ];
            let _ = nix::sys::stat::utimensat(
                nix::fcntl::AT_FDCWD,
                &dir,
                &times[0],
                &times[1],
                nix::sys::stat::UtimensatFlags::NoFollowSymlink,
            );
        }
    }
}

/// The mount id of `path` (statx, Linux >= 5.8), following symlinks as the copy would.
fn mount_id(path: &Path) -> Option<u64> {
    rustix::fs::statx(
        rustix::fs::CWD,
        path,
        rustix::fs::AtFlags::empty(),
        rustix::fs::StatxFlags::MNT_ID,
    )
    .ok()
    .map(|st| st.stx_mnt_id)
}

/// Copies the tree `from` to `to` (which must not exist) with modes, owners and times,
/// never following a symlink: they are copied as links. Only directories, regular files and
/// symlinks are copied (a cache holds nothing else worth keeping).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let meta = from.symlink_metadata()?;
    let kind = meta.file_type();
    if kind.is_dir() {
        std::fs::create_dir(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
    } else if kind.is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(from)?, to)?;
    } else if kind.is_file() {
        std::fs::copy(from, to)?;
    } else {
        return Ok(());
    }
    std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid()))?;
    if !kind.is_symlink() {
        std::fs::set_permissions(to, meta.permissions())?;
        let times = [
            nix::sys::time::TimeSpec::new(meta.atime(), meta.atime_nsec()),
            nix::sys::time::TimeSpec::new(meta.mtime(), meta.mtime_nsec()),
        ];
        nix::sys::stat::utimensat(
            nix::fcntl::AT_FDCWD,
            to,
            &times[0],
            &times[1],
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .map_err(std::io::Error::from)?;
    }
    Ok(())
}

/// Runs `spec` in place (see the module doc) and waits for it and every process it left in
/// its session.
pub fn run_in_place(
    spec: &StepSpec,
    on_output: &mut dyn FnMut(OutputStream, &[u8]),
) -> Result<StepOutcome, RuntimeError> {
    if terminated() {
        return Err(refused("the build was stopped (SIGTERM, SIGINT or SIGHUP)"));
    }
    if spec.network == NetworkMode::None {
        return Err(refused(
            "RUN --network=none needs a network namespace, which --isolation none does not \
             make: drop the flag, or build with namespaces",
        ));
    }
    let root = &spec.rootfs.merged_dir;
    let read = |name: &str| std::fs::read_to_string(root.join(name)).unwrap_or_default();
    let user = crate::user::resolve_user(&spec.user, &read("etc/passwd"), &read("etc/group"))?;
    let mut emulated = Emulated::default();
    let root_mount = mount_id(root);
    for mount in &spec.mounts {
        let target = root.join(mount.target.trim_start_matches('/'));
        emulated.add(&target, &mount.source, root_mount)?;
    }
    let cwd = root.join(spec.cwd.trim_start_matches('/'));
    if cwd.symlink_metadata().is_err() {
        std::fs::create_dir_all(&cwd).map_err(failed(format!("create {}", cwd.display())))?;
    }
    let program = spec
        .args
        .first()
        .ok_or_else(|| refused("RUN has no command"))?;
    let mut command = Command::new(program);
    command
        .args(&spec.args[1..])
        .env_clear()
        .envs(spec.env.iter().filter_map(|kv| kv.split_once('=')))
        .current_dir(&cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let ulimits = spec.ulimits.clone();
    let (uid, gid, groups) = (user.uid, user.gid, user.additional_gids.clone());
    // SAFETY: between fork and exec: signal and id system calls, and setrlimit.
    unsafe {
        command.pre_exec(move || {
            let os = |e: nix::Error| std::io::Error::from_raw_os_error(e as i32);
            crate::init::reset_process_state().map_err(std::io::Error::other)?;
            // Its own session: whatever it leaves running is killed with it.
            nix::unistd::setsid().map_err(os)?;
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            crate::ulimit::apply(&ulimits).map_err(std::io::Error::other)?;
            let gids: Vec<nix::unistd::Gid> = groups
                .iter()
                .map(|g| nix::unistd::Gid::from_raw(*g))
                .collect();
            nix::unistd::setgroups(&gids).map_err(os)?;
            nix::unistd::setgid(nix::unistd::Gid::from_raw(gid)).map_err(os)?;
            nix::unistd::setuid(nix::unistd::Uid::from_raw(uid)).map_err(os)?;
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(RuntimeError::Spawn)?;
    let session = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
    CURRENT_SESSION.store(session.as_raw(), Ordering::SeqCst);
    if terminated() {
        // The signal came between the check above and now.
        let _ = nix::sys::signal::killpg(session, nix::sys::signal::Signal::SIGKILL);
    }
    pump_output(&mut child, on_output);
    let status = child.wait().map_err(RuntimeError::Channel);
    CURRENT_SESSION.store(0, Ordering::SeqCst);
    let status = status?;
    // What the step left running ends with it, as in a container whose init exits.
    let _ = nix::sys::signal::killpg(session, nix::sys::signal::Signal::SIGKILL);
    drop(emulated);
    let exit_code = match (
        status.code(),
        std::os::unix::process::ExitStatusExt::signal(&status),
    ) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 255,
    };
    Ok(StepOutcome {
        exit_code,
        stubs: Vec::new(),
        notices: Vec::new(),
    })
}
