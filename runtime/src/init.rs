//! The step-init role: `/proc/self/exe __rbuild-step-init`, spawned by `run_step`.
//!
//! It reads the spec from stdin, unshares mount/pid/ipc/uts(/net), and forks the step's pid 1,
//! which builds the rootfs, drops to the step's user and execs the command. The step-init
//! process stays outside the new pid namespace to report pid 1's exit status; when pid 1 ends,
//! the kernel kills every other process of the step.

// Paths here are kernel interfaces (/proc, /sys) and the step's own files: the boundary rule (clippy.toml) does not apply.
#![allow(clippy::disallowed_methods)]

use crate::error::SetupError;
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

use nix::sched::{unshare, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Gid, Uid};
use rustix::fs::{Mode, OFlags};

use crate::mounts;
use crate::spec::{MountStub, NetworkMode, StepReport, StepSpec};

/// The hidden argument that selects the step-init role of the rbuild binary.
pub const STEP_INIT_ARG: &str = "__rbuild-step-init";
/// The descriptor on which the step-init process sends `StepReport`s.
pub const REPORT_FD: i32 = 3;
/// Exit status when set-up failed before the command started.
pub const SETUP_FAILED_STATUS: i32 = 125;

struct Reporter {
    file: std::fs::File,
}

impl Reporter {
    fn send(&mut self, report: &StepReport) {
        if let Ok(mut line) = serde_json::to_vec(report) {
            line.push(b'\n');
            let _ = self.file.write_all(&line);
        }
    }
}

/// Entry point of the step-init role. Never returns.
pub fn step_init_main() -> ! {
    // SAFETY: fd 3 was set up by run_step for this process; nothing else owns it.
    let report_fd = unsafe { OwnedFd::from_raw_fd(REPORT_FD) };
    let _ = rustix::io::fcntl_setfd(&report_fd, rustix::io::FdFlags::CLOEXEC);
    let mut reporter = Reporter {
        file: std::fs::File::from(report_fd),
    };
    let code = match read_spec().and_then(|spec| run(&spec, &mut reporter)) {
        Ok(code) => code,
        Err(message) => {
            reporter.send(&StepReport::SetupFailed(message));
            SETUP_FAILED_STATUS
        }
    };
    std::process::exit(code)
}

fn read_spec() -> Result<StepSpec, SetupError> {
    let mut raw = Vec::new();
    std::io::stdin()
        .read_to_end(&mut raw)
        .map_err(|e| SetupError::os("read step spec", e))?;
    let spec = serde_json::from_slice(&raw)
        .map_err(|e| SetupError::Refused(format!("invalid step spec: {e}")))?;
    // The command gets no input, as in `docker build`.
    let null = std::fs::File::open("/dev/null").map_err(|e| SetupError::os("open /dev/null", e))?;
    nix::unistd::dup2_stdin(&null).map_err(|e| SetupError::os("redirect stdin", e))?;
    Ok(spec)
}

fn run(spec: &StepSpec, reporter: &mut Reporter) -> Result<i32, SetupError> {
    let mut flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWUTS;
    if spec.network == NetworkMode::None {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    unshare(flags).map_err(|e| SetupError::os("unshare mount/pid/ipc/uts namespaces", e))?;
    mounts::make_mounts_private()?;

    // SAFETY: this process is single-threaded (a fresh exec that started no threads).
    match unsafe { fork() }.map_err(|e| SetupError::os("fork step pid 1", e))? {
        ForkResult::Child => {
            // Die with the step-init process, whatever kills it.
            // SAFETY: prctl with constant arguments.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
            let message = match setup_and_exec(spec, reporter) {
                Ok(never) => match never {},
                Err(message) => message,
            };
            reporter.send(&StepReport::SetupFailed(message));
            // SAFETY: leave the forked child without running destructors twice.
            unsafe { libc::_exit(SETUP_FAILED_STATUS) }
        }
        ForkResult::Parent { child } => loop {
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(code),
                Ok(WaitStatus::Signaled(_, signal, _)) => return Ok(128 + signal as i32),
                Ok(_) => continue,
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(SetupError::os("wait for step pid 1", e)),
            }
        },
    }
}

enum Never {}

/// The step process's setup, one explicit step at a time: the root and its mounts, the
/// switch into it, the user and environment, the confinement, the identity, then exec.
fn setup_and_exec(spec: &StepSpec, reporter: &mut Reporter) -> Result<Never, SetupError> {
    if spec.network == NetworkMode::None {
        mounts::loopback_up()?;
    }
    let (stubs, notices) = mount_rootfs(spec)?;
    reporter.send(&StepReport::Stubs(stubs));
    for notice in notices {
        reporter.send(&StepReport::Notice(notice));
    }
    mounts::pivot_into(&spec.rootfs.merged_dir)?;
    nix::unistd::sethostname(&spec.hostname).map_err(|e| SetupError::os("sethostname", e))?;

    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let user = crate::user::resolve_user(&spec.user, &passwd, &group)
        .map_err(|e| SetupError::Refused(e.to_string()))?;
    if std::fs::symlink_metadata(&spec.cwd).is_err() {
        std::fs::create_dir_all(&spec.cwd)
            .map_err(|e| SetupError::os(format!("create working dir {}", spec.cwd), e))?;
    }
    std::env::set_current_dir(&spec.cwd)
        .map_err(|e| SetupError::os(format!("chdir {}", spec.cwd), e))?;
    let mut env: Vec<String> = spec.env.clone();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }

    let sandboxed = spec.security == crate::spec::Security::Sandbox;
    if sandboxed {
        confine()?;
    }
    crate::ulimit::apply(&spec.ulimits)?;
    switch_identity(&user, sandboxed)?;
    exec(&spec.args, &env)
}

/// The overlay root with /proc, /dev, /sys, the /etc files and the RUN mounts in it; returns
/// the mount points created in the root (kept out of the layer) and what to tell the user.
fn mount_rootfs(spec: &StepSpec) -> Result<(Vec<MountStub>, Vec<String>), SetupError> {
    let mut notices = Vec::new();
    let merged = &spec.rootfs.merged_dir;
    if spec.rootfs.plain {
        // The tree itself, made a mount point of its own so that the pivot can take it.
        mounts::bind(merged, merged, "the step's root", false)?;
    } else {
        mounts::mount_overlay(&spec.rootfs)?;
    }
    let root = rustix::fs::open(
        merged,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SetupError::os(format!("open rootfs {}", merged.display()), e))?;

    let mut stubs: Vec<MountStub> = Vec::new();
    let proc_dir = mounts::ensure_in_root(&root, merged, "/proc", true, &mut stubs)?;
    let dev_dir = mounts::ensure_in_root(&root, merged, "/dev", true, &mut stubs)?;
    let sys_dir = mounts::ensure_in_root(&root, merged, "/sys", true, &mut stubs)?;
    let etc_targets = [
        ("/etc/hosts", &spec.etc_files.hosts),
        ("/etc/resolv.conf", &spec.etc_files.resolv_conf),
        ("/etc/hostname", &spec.etc_files.hostname),
    ]
    .into_iter()
    .map(|(path, source)| {
        Ok((
            path,
            source,
            mounts::ensure_in_root(&root, merged, path, false, &mut stubs)?,
        ))
    })
    .collect::<Result<Vec<_>, SetupError>>()?;

    mount_proc(&proc_dir, &mut notices)?;
    mounts::setup_dev(&dev_dir, spec.shm_size, &mut notices)?;
    mount_sys(spec, &sys_dir, &mut notices)?;
    for (path, source, target) in &etc_targets {
        mounts::bind(source, target, path, false)?;
    }
    for step_mount in &spec.mounts {
        mount_one(&root, merged, step_mount, &mut stubs)?;
    }
    Ok((stubs, notices))
}

/// A procfs of the step's pid namespace; nested in a container that masks /proc, where a new
/// procfs is refused, the host's, read-only.
fn mount_proc(proc_dir: &Path, notices: &mut Vec<String>) -> Result<(), SetupError> {
    let proc_flags = nix::mount::MsFlags::MS_NOSUID
        | nix::mount::MsFlags::MS_NODEV
        | nix::mount::MsFlags::MS_NOEXEC;
    if nix::mount::mount(
        Some("proc"),
        proc_dir,
        Some("proc"),
        proc_flags,
        None::<&str>,
    )
    .is_err()
    {
        mounts::bind(Path::new("/proc"), proc_dir, "/proc", true)?;
        notices.push(
            "procfs could not be mounted; /proc is the host's (read-only view of other processes)"
                .into(),
        );
    }
    Ok(())
}

/// A fresh sysfs needs a network namespace of our own; with the host's network, a read-only
/// view of the host's /sys stands in.
fn mount_sys(spec: &StepSpec, sys_dir: &Path, notices: &mut Vec<String>) -> Result<(), SetupError> {
    let ro = nix::mount::MsFlags::MS_RDONLY
        | nix::mount::MsFlags::MS_NOSUID
        | nix::mount::MsFlags::MS_NODEV
        | nix::mount::MsFlags::MS_NOEXEC;
    let own_sysfs = spec.network == NetworkMode::None
        && nix::mount::mount(Some("sysfs"), sys_dir, Some("sysfs"), ro, None::<&str>).is_ok();
    if !own_sysfs {
        match mounts::bind(Path::new("/sys"), sys_dir, "/sys", true) {
            Ok(()) => mounts::remount_readonly(sys_dir)?,
            Err(e) => notices.push(format!("/sys is empty in this step ({e})")),
        }
    }
    Ok(())
}

/// The seccomp filter and the capability bounding set. Installed while this process still
/// holds CAP_SYS_ADMIN in the user namespace: the kernel then takes the filter without
/// NO_NEW_PRIVS, which Docker does not set either.
fn confine() -> Result<(), SetupError> {
    crate::seccomp::install_default_filter().map_err(|e| match e {
        crate::seccomp::SeccompError::Filter { what, source } => SetupError::Os {
            what: format!("install the seccomp filter ({what})"),
            source: crate::error::OsError {
                errno: source.errno().map_or(0, |e| e as i32),
                text: source.to_string(),
            },
        },
    })?;
    crate::caps::limit_bounding_set().map_err(|e| SetupError::os("limit capabilities", e))
}

/// Becomes the step's user: its groups, gid and uid, and root's capabilities for root.
fn switch_identity(user: &crate::user::ResolvedUser, sandboxed: bool) -> Result<(), SetupError> {
    let groups: Vec<Gid> = user
        .additional_gids
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    // With a single-id mapping setgroups(2) is denied; the primary group alone needs no call.
    let setgroups_denied =
        std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny");
    let only_primary = user.additional_gids.iter().all(|g| *g == user.gid);
    if !(setgroups_denied && only_primary) {
        nix::unistd::setgroups(&groups).map_err(|e| {
            SetupError::os(
                format!(
                    "set supplementary groups {:?} (needs subordinate gid ranges in /etc/subgid)",
                    user.additional_gids
                ),
                e,
            )
        })?;
    }
    let gid = Gid::from_raw(user.gid);
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| unmapped("gid", user.gid, e))?;
    let uid = Uid::from_raw(user.uid);
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| unmapped("uid", user.uid, e))?;
    if user.uid == 0 && sandboxed {
        crate::caps::set_root_capabilities().map_err(|e| SetupError::os("set capabilities", e))?;
    } else if user.uid == 0 {
        crate::caps::set_all_capabilities().map_err(|e| SetupError::os("set capabilities", e))?;
    }
    Ok(())
}

/// Execs `args[0]` (looked up in the step's PATH) with `env`, the process state reset first.
fn exec(args: &[String], env: &[String]) -> Result<Never, SetupError> {
    let path_var = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .map(str::to_string);
    let program = args
        .first()
        .ok_or_else(|| SetupError::Refused("no command to run".into()))?;
    let executable = mounts::find_executable(program, path_var.as_deref()).ok_or_else(|| {
        SetupError::Refused(format!(
            "exec: \"{program}\": executable file not found in $PATH"
        ))
    })?;
    let to_c = |s: &String| {
        CString::new(s.as_str())
            .map_err(|_| SetupError::Refused(format!("argument {s:?} holds a NUL byte")))
    };
    let argv = args.iter().map(to_c).collect::<Result<Vec<_>, _>>()?;
    let envp = env.iter().map(to_c).collect::<Result<Vec<_>, _>>()?;
    reset_process_state()?;
    let errno = nix::unistd::execve(&executable, &argv, &envp)
        .err()
        .unwrap_or(nix::Error::UnknownErrno);
    Err(SetupError::os(
        format!("exec {}", executable.to_string_lossy()),
        errno,
    ))
}

/// Mounts one RUN --mount at its target inside the rootfs (created if missing, recorded as a
/// stub so it never reaches the layer).
fn mount_one(
    root: &std::os::fd::OwnedFd,
    merged: &Path,
    step_mount: &crate::spec::StepMount,
    stubs: &mut Vec<MountStub>,
) -> Result<(), SetupError> {
    use crate::spec::MountSource;
    match &step_mount.source {
        MountSource::Host { path, read_only } => {
            let target =
                mounts::ensure_in_root(root, merged, &step_mount.target, path.is_dir(), stubs)?;
            mounts::bind(path, &target, &step_mount.target, true)?;
            if *read_only {
                mounts::remount_readonly(&target)?;
            }
        }
        MountSource::InTree(tree) => {
            mounts::mount_from_tree(root, merged, &step_mount.target, tree, stubs)?;
        }
        MountSource::Tmpfs { size } => {
            let target = mounts::ensure_in_root(root, merged, &step_mount.target, true, stubs)?;
            let options = if *size > 0 {
                format!("size={size}")
            } else {
                String::new()
            };
            nix::mount::mount(
                Some("tmpfs"),
                &target,
                Some("tmpfs"),
                nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
                Some(options.as_str()),
            )
            .map_err(|e| SetupError::os(format!("mount tmpfs on {}", step_mount.target), e))?;
        }
    }
    Ok(())
}

/// The command starts as `docker run` would start it: default signal dispositions and an
/// empty signal mask (the Rust runtime ignores SIGPIPE, and an ignored signal stays ignored
/// across exec, so `yes | head` would never end), and no descriptor but 0-2. Descriptors are
/// marked close-on-exec rather than closed, so a failed exec can still be reported.
pub(crate) fn reset_process_state() -> Result<(), SetupError> {
    // The raw system call: the C library refuses the two real-time signals it reserves for
    // itself, and those can be inherited as ignored too. An all-zero kernel sigaction is
    // SIG_DFL with no flags and an empty mask, whatever the architecture's layout.
    let default_action = [0u64; 4];
    for signal in 1..=libc::SIGRTMAX() {
        if signal == libc::SIGKILL || signal == libc::SIGSTOP {
            continue;
        }
        // SAFETY: the kernel reads at most 32 bytes of the zeroed action; no old action.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                signal,
                default_action.as_ptr(),
                std::ptr::null_mut::<u64>(),
                8usize,
            )
        };
    }
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    )
    .map_err(|e| SetupError::os("clear the signal mask", e))?;
    // SAFETY: close_range with the CLOEXEC flag only changes descriptor flags.
    let marked = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if marked != 0 {
        // Kernels before 5.11: mark each open descriptor.
        let open: Vec<i32> = std::fs::read_dir("/proc/self/fd")
            .map_err(|e| SetupError::os("list open descriptors", e))?
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .filter(|fd| *fd > 2)
            .collect();
        for fd in open {
            // SAFETY: F_SETFD on a descriptor number; a stale one fails harmlessly.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
    Ok(())
}

fn unmapped(kind: &str, id: u32, e: nix::Error) -> SetupError {
    if e == nix::Error::EINVAL {
        SetupError::Refused(format!(
            "USER needs {kind} {id}, which the user namespace does not map: add a subordinate \
             range (sudo usermod --add-sub{kind}s 100000-165535 $USER)"
        ))
    } else {
        SetupError::os(format!("set{kind} {id}"), e)
    }
}
