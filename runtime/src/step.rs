//! The caller's side of one step: spawn the step-init role, feed it the spec, stream its
//! output, collect its reports and exit status.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
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

/// Removes the mount points the sandbox created from the upper dir (deepest first), so that
/// they never land in a layer. A stub the command replaced with real content is kept. A
/// parent dir that overlay copied up only because a stub was created in it goes too, when
/// it is still empty and identical to the lower dir it came from.
pub fn remove_stubs(rootfs: &crate::spec::RootfsSpec, stubs: &[MountStub]) {
    use std::os::unix::fs::MetadataExt;
    let upper_dir = &rootfs.upper_dir;
    let mut parents: Vec<String> = Vec::new();
    for stub in stubs.iter().rev() {
        let rel = stub.path.trim_start_matches('/');
        let path = upper_dir.join(rel);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let removed = if stub.is_dir && meta.is_dir() {
            std::fs::remove_dir(&path).is_ok() // fails, as it should, when not empty
        } else if !stub.is_dir && meta.is_file() && meta.len() == 0 {
            std::fs::remove_file(&path).is_ok()
        } else {
            false
        };
        if removed {
            let mut parent = rel;
            while let Some((p, _)) = parent.rsplit_once('/') {
                parents.push(p.to_string());
                parent = p;
            }
        }
    }
    parents.sort_by_key(|p| std::cmp::Reverse(p.len()));
    parents.dedup();
    for parent in parents {
        let upper = upper_dir.join(&parent);
        let Ok(meta) = std::fs::symlink_metadata(&upper) else {
            continue;
        };
        let empty = std::fs::read_dir(&upper)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        let opaque = xattr_present(&upper, "user.overlay.opaque");
        let lower = rootfs
            .lower_dirs
            .iter()
            .map(|l| l.join(&parent))
            .find_map(|p| std::fs::symlink_metadata(p).ok());
        let same = lower.is_some_and(|l| {
            l.is_dir() && l.mode() == meta.mode() && l.uid() == meta.uid() && l.gid() == meta.gid()
        });
        if meta.is_dir() && empty && !opaque && same {
            let _ = std::fs::remove_dir(&upper);
        }
    }
}

fn xattr_present(path: &std::path::Path, name: &str) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let (Ok(c_path), Ok(c_name)) = (
        std::ffi::CString::new(path.as_os_str().as_bytes()),
        std::ffi::CString::new(name),
    ) else {
        return false;
    };
    // SAFETY: valid NUL-terminated strings; a null buffer asks only for the size.
    unsafe { libc::lgetxattr(c_path.as_ptr(), c_name.as_ptr(), std::ptr::null_mut(), 0) >= 0 }
}
