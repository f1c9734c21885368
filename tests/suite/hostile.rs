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
