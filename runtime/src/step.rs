//! The caller's side of one step: spawn the step-init role, feed it the spec, stream its
//! output, collect its reports and exit status.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use crate::error::RuntimeError;
use crate::init::{REPORT_FD, SETUP_FAILED_STATUS, STEP_INIT_ARG};
use crate::spec::{MountStub, StepReport, StepSpec};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// What a finished step left behind.
#[derive(Debug, Clone)]
pub struct StepOutcome {
    /// The command's exit status (128 + signal when killed).
    pub exit_code: i32,
    /// Mount points the sandbox created in the rootfs; remove them from the upper dir.
    pub stubs: Vec<MountStub>,
    pub notices: Vec<String>,
}

/// Runs one step and blocks until every process of it has ended. `on_output` receives the
/// command's output line by line, as it comes.
pub fn run_step(
    spec: &StepSpec,
    on_output: &mut dyn FnMut(OutputStream, &[u8]),
) -> Result<StepOutcome, RuntimeError> {
    let spec_json = serde_json::to_vec(spec).map_err(RuntimeError::Spec)?;
    let (report_read, report_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| RuntimeError::Channel(e.into()))?;
    let report_write_raw = report_write.as_raw_fd();

    let mut command = Command::new("/proc/self/exe");
    command
        .arg(STEP_INIT_ARG)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls (dup2, prctl) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::dup2(report_write_raw, REPORT_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(RuntimeError::Spawn)?;
    drop(report_write);

    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(&spec_json).map_err(RuntimeError::Channel)?;
    }
    pump_output(&mut child, on_output);
    let status = child.wait().map_err(RuntimeError::Channel)?;

    let mut reports = String::new();
    std::fs::File::from(report_read)
        .read_to_string(&mut reports)
        .map_err(RuntimeError::Channel)?;
    let mut outcome = StepOutcome {
        exit_code: 0,
        stubs: Vec::new(),
        notices: Vec::new(),
    };
    let mut setup_failure = None;
    for line in reports.lines() {
        match serde_json::from_str::<StepReport>(line) {
            Ok(StepReport::Stubs(stubs)) => outcome.stubs = stubs,
            Ok(StepReport::Notice(notice)) => outcome.notices.push(notice),
            Ok(StepReport::SetupFailed(message)) => setup_failure = Some(message),
            Err(_) => {}
        }
    }
    outcome.exit_code = match (
        status.code(),
        std::os::unix::process::ExitStatusExt::signal(&status),
    ) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => SETUP_FAILED_STATUS,
    };
    if let Some(message) = setup_failure {
        return Err(RuntimeError::Setup(message));
    }
    Ok(outcome)
}

/// Hands the child's stdout and stderr to `on_output` line by line, as they come, until both
/// close.
pub(crate) fn pump_output(child: &mut Child, on_output: &mut dyn FnMut(OutputStream, &[u8])) {
    let (sender, receiver) = mpsc::channel::<(OutputStream, Vec<u8>)>();
    let mut readers = Vec::new();
    let pipes: [(OutputStream, Option<Box<dyn Read + Send>>); 2] = [
        (
            OutputStream::Stdout,
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ),
        (
            OutputStream::Stderr,
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ),
    ];
    for (stream, pipe) in pipes {
        let Some(pipe) = pipe else { continue };
        let sender = sender.clone();
        readers.push(std::thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut line = Vec::new();
            while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                if sender.send((stream, std::mem::take(&mut line))).is_err() {
                    break;
                }
            }
        }));
    }
    drop(sender);
    for (stream, line) in receiver {
        on_output(stream, &line);
    }
    for reader in readers {
        let _ = reader.join();
    }
}

/// Removes the mount points the sandbox created from the upper dir (deepest first), so that
/// they never land in a layer. A stub the command replaced with real content is kept. A
/// parent dir that overlay copied up only because a stub was created in it goes too, when
/// it is still empty and identical to the lower dir it came from.
///
/// The upper dir holds what the step left, symlinks included (`mv /m /m.old && ln -s /home
/// /m`): every path is resolved beneath its dir with no symlink followed, and removed by
/// descriptor, so nothing outside the upper dir can be touched.
pub fn remove_stubs(rootfs: &crate::spec::RootfsSpec, stubs: &[MountStub]) {
    let Ok(upper) = open_dir(&rootfs.upper_dir) else {
        return;
    };
    let mut parents: Vec<String> = Vec::new();
    for stub in stubs.iter().rev() {
        let rel = stub.path.trim_start_matches('/');
        let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        let Ok(parent_fd) = open_beneath(&upper, parent, OFlags::DIRECTORY) else {
            continue;
        };
        let Ok(stat) = rustix::fs::statat(&parent_fd, name, AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        let kind = FileType::from_raw_mode(stat.st_mode);
        let removed = if stub.is_dir && kind == FileType::Directory {
            // Fails, as it should, when the step put something in it.
            rustix::fs::unlinkat(&parent_fd, name, AtFlags::REMOVEDIR).is_ok()
        } else if !stub.is_dir && kind == FileType::RegularFile && stat.st_size == 0 {
            rustix::fs::unlinkat(&parent_fd, name, AtFlags::empty()).is_ok()
        } else {
            false
        };
        if removed {
            let mut dir = rel;
            while let Some((p, _)) = dir.rsplit_once('/') {
                parents.push(p.to_string());
                dir = p;
            }
        }
    }
    parents.sort_by_key(|p| std::cmp::Reverse(p.len()));
    parents.dedup();
    for parent in parents {
        remove_copied_up_parent(rootfs, &upper, &parent);
    }
}

/// Removes `rel` from the upper dir when overlay copied it up only to hold a stub: an empty,
/// non-opaque dir with the mode and owner of the same dir in the lower layers.
fn remove_copied_up_parent(rootfs: &crate::spec::RootfsSpec, upper: &OwnedFd, rel: &str) {
    let Ok(dir) = open_beneath(upper, rel, OFlags::DIRECTORY) else {
        return;
    };
    let Ok(stat) = rustix::fs::fstat(&dir) else {
        return;
    };
    let empty = rustix::fs::Dir::read_from(&dir).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .all(|e| matches!(e.file_name().to_bytes(), b"." | b".."))
    });
    let opaque = rustix::fs::fgetxattr(&dir, "user.overlay.opaque", &mut [0u8; 8][..]).is_ok();
    let same_as_lower = rootfs
        .lower_dirs
        .iter()
        .filter_map(|lower| open_dir(lower).ok())
        .find_map(|lower| {
            // O_PATH: a FIFO planted in a layer must not block the open.
            let found = open_beneath(&lower, rel, OFlags::PATH).ok()?;
            rustix::fs::fstat(&found).ok()
        })
        .is_some_and(|l| {
            FileType::from_raw_mode(l.st_mode) == FileType::Directory
                && l.st_mode == stat.st_mode
                && l.st_uid == stat.st_uid
                && l.st_gid == stat.st_gid
        });
    if empty && !opaque && same_as_lower {
        let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        if let Ok(parent_fd) = open_beneath(upper, parent, OFlags::DIRECTORY) {
            let _ = rustix::fs::unlinkat(&parent_fd, name, AtFlags::REMOVEDIR);
        }
    }
}

fn open_dir(path: &std::path::Path) -> rustix::io::Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Opens `rel` beneath `dir` without following any symlink on the way or at the end.
fn open_beneath(dir: &OwnedFd, rel: &str, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    boundary::open_beneath(dir, rel, flags | OFlags::RDONLY | OFlags::NOFOLLOW)
}
