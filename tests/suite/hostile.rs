//! Hostile builds: a Dockerfile, context, stage or named context that tries to reach the host.
//! Each test plants canary files outside the store, runs rbuild as the unprivileged test user
//! and asserts that nothing outside the build's sandbox and store changed.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::support::*;

/// Files outside the store that belong to the user running rbuild, so that a build that
/// escapes could read, change or delete them.
struct Canary {
    dir: PathBuf,
    before: BTreeMap<String, String>,
}

impl Canary {
    fn plant(env: &TestEnv) -> Canary {
        let dir = env.write_tree(
            "canary",
            &[
                ("secret", file("HOST SECRET\n")),
                ("victim.txt", file("untouched\n")),
                ("t", dir()),
                ("empty", file("")),
            ],
        );
        let before = describe_tree(&dir);
        Canary { dir, before }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn assert_untouched(&self) {
        assert_eq!(
            describe_tree(&self.dir),
            self.before,
            "files outside the store changed"
        );
    }
}

/// Every entry below `dir`: type, mode and content.
fn describe_tree(dir: &Path) -> BTreeMap<String, String> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|entry| {
            let entry = entry.expect("walk the canary");
            let meta = entry.path().symlink_metadata().expect("stat");
            let content = if meta.is_file() {
                std::fs::read_to_string(entry.path()).unwrap_or_default()
            } else {
                String::new()
            };
            let what = format!("{:?} {:o} {content:?}", meta.file_type(), meta.mode());
            (entry.path().display().to_string(), what)
        })
        .collect()
}

/// A git ref is never an option (`--upload-pack=CMD` would run CMD on the host), and
/// `file://` is no build source (it would copy any repository of the host into the image).
#[test]
fn git_sources_never_run_host_commands_or_read_host_repositories() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    if !require_command("git") {
        return;
    }
    let canary = Canary::plant(&env);
    let pwned = canary.path("pwned");
    let repo = env.path("hostrepo");
    std::fs::create_dir_all(&repo).expect("mkdir");
    std::fs::write(repo.join("private.txt"), "host repository\n").expect("write");
    git_in(&repo, &["init", "-q"]);
    git_in(&repo, &["add", "."]);
    git_in(&repo, &["commit", "-qm", "private"]);
    let _ = std::process::Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&repo)
        .status();
    let cases = [
        (
            format!("ADD [\"file:///nonexistent.git#--upload-pack=touch {pwned};false\", \"/x/\"]"),
            "file:// is not a build source",
        ),
        (
            format!("ADD [\"git://127.0.0.1:9/r#--upload-pack=touch {pwned};false\", \"/x/\"]"),
            "is not a git ref",
        ),
        (
            format!("ADD file://{}/.git /stolen/", repo.display()),
            "file:// is not a build source",
        ),
    ];
    for (instruction, expected) in cases {
        let ctx = env.context(&[(
            "Dockerfile",
            file(format!("FROM busybox:latest\n{instruction}\n")),
        )]);
        let stderr = env.rbuild_err(["build", ctx.to_str().expect("utf-8")]);
        assert!(stderr.contains(expected), "{instruction}: {stderr}");
        assert!(stderr.contains("Dockerfile:2:"), "names the line: {stderr}");
        assert!(
            !Path::new(&pwned).exists(),
            "{instruction} ran a host command"
        );
    }
    // A build context given as a host repository is refused the same way.
    let stderr = env.rbuild_err(["build", &format!("file://{}/.git", repo.display())]);
    assert!(stderr.contains("file:// is not a build source"), "{stderr}");
    canary.assert_untouched();
}

/// A step starts as `docker run` starts a container: default signal dispositions, nothing
/// blocked, and no descriptor but 0-2 even when rbuild inherited more (CI runners leak them).
#[test]
fn steps_start_with_default_signals_and_only_standard_descriptors() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[(
        "Dockerfile",
        file(concat!(
            "FROM busybox:latest\n",
            // Not the last command, so busybox sh forks grep (as pid 1 it ignores SIGQUIT for
            // itself and keeps that for a command it execs in its place).
            "RUN grep -E '^Sig(Ign|Blk)' /proc/self/status > /signals && true\n",
            // ls's own descriptors: the standard three and the one it reads the dir with.
            "RUN ls /proc/self/fd > /fds\n",
            // With SIGPIPE ignored, `yes` never ends: the timeout turns a hang into a failure.
            "RUN timeout -s KILL 20 sh -c 'yes x | head -c 1000 > /y'\n",
        )),
    )]);
    let archive = env.path("signals.tar");
    let leaked = std::fs::File::open(ctx.join("Dockerfile")).expect("open a file to leak");
    let leaked_fd = std::os::fd::AsRawFd::as_raw_fd(&leaked);
    let mut command = env.command([
        "build",
        "-o",
        &format!("type=oci,dest={}", archive.display()),
        ctx.to_str().expect("utf-8"),
    ]);
    // SAFETY: dup2 is async-signal-safe; fd 9 stays open (no CLOEXEC) across the exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
            if libc::dup2(leaked_fd, 9) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let output = command.output().expect("run rbuild");
    assert!(output.status.success(), "{}", describe_output(&output));
    let image = OciImage::open(&archive);
    let tree = image.tree();
    assert_eq!(
        tree.text("signals"),
        "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"
    );
    assert_eq!(tree.text("fds"), "0\n1\n2\n3\n");
    assert_eq!(tree.bytes("y").len(), 1000);
}
