//! `--ssh` with key files (an agent rbuild runs for the build), the socket a step's ssh mount
//! gets (its `uid`, `gid`, `mode`), and `ADD` of a git repository over ssh: the build's key,
//! host keys checked against the user's known_hosts, failing closed.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::sshd::{keygen, Sshd};
use crate::support::*;

/// The agent probe (tests/probes/agent_ids.c), static, so it runs in a busybox image.
fn agent_probe(env: &TestEnv) -> Option<PathBuf> {
    if !require_command("cc") || !require_command("ssh-agent") {
        return None;
    }
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/probes/agent_ids.c");
    let out = env.path("agent_ids");
    let output = Command::new("cc")
        .args(["-static", "-O1", "-o"])
        .arg(&out)
        .arg(&source)
        .output()
        .expect("run cc");
    assert!(output.status.success(), "{}", describe_output(&output));
    Some(out)
}

/// A key pair made by ssh-keygen, the private half handed to the test user (mode 0600) in
/// the sandbox at `name`; returns its path and the private key's text.
fn user_key(env: &TestEnv, name: &str, comment: &str, passphrase: &str) -> (PathBuf, String) {
    let made = tempfile::tempdir().expect("temp dir");
    let path = made.path().join("key");
    keygen(&path, comment, passphrase);
    let private = std::fs::read_to_string(&path).expect("read key");
    let public = std::fs::read_to_string(made.path().join("key.pub")).expect("read key");
    env.write_tree(
        "keys",
        &[
            (name, file_mode(private.as_bytes(), 0o600)),
            (&format!("{name}.pub"), file(public)),
        ],
    );
    (env.path(&format!("keys/{name}")), private)
}

/// Every file under `dir` (read as root: the store's files belong to subordinate ids).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .follow_links(false)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect()
}

#[test]
fn key_files_become_an_agent_the_steps_reach_as_their_mount_says() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let Some(probe) = agent_probe(&env) else {
        return;
    };
    let (first, first_private) = user_key(&env, "id_first", "first-key", "");
    let (second, _) = user_key(&env, "id_second", "second-key", "");
    let ctx = env.context(&[(
        "Dockerfile",
        file(
            "FROM busybox:latest\nCOPY agent_ids /agent_ids\n\
             RUN --mount=type=ssh,uid=1000,gid=1001,mode=0660 stat -c '%u:%g %a' \"$SSH_AUTH_SOCK\" > /sock-owner\n\
             RUN --mount=type=ssh /agent_ids > /as-root\n\
             USER 1000\n\
             RUN --mount=type=ssh,id=deploy,uid=1000 /agent_ids > /tmp/as-user\n",
        ),
    )]);
    std::fs::copy(&probe, ctx.join("agent_ids")).expect("copy the probe");
    let keys = format!("default={},{}", first.display(), second.display());
    let deploy = format!("deploy={}", second.display());
    let (out, image) = env.build_oci("ssh-keys", &["--ssh", &keys, "--ssh", &deploy], &ctx);
    let tree = image.tree();
    assert_eq!(tree.text("sock-owner"), "1000:1001 660\n");
    assert_eq!(tree.text("as-root"), "keys 2\nfirst-key\nsecond-key\n");
    // An agent refuses peers of another uid: the step as USER 1000 reaches it through the
    // socket rbuild serves.
    assert_eq!(tree.text("tmp/as-user"), "keys 1\nsecond-key\n");

    // The private key is nowhere in the store or the output.
    let secret_line = first_private
        .lines()
        .nth(2)
        .expect("a key body line")
        .to_string();
    for path in files_under(env.store()).into_iter().chain([out.clone()]) {
        let bytes = std::fs::read(&path).unwrap_or_default();
        assert!(
            !bytes
                .windows(secret_line.len())
                .any(|w| w == secret_line.as_bytes()),
            "the private key is in {}",
            path.display()
        );
    }
}

#[test]
fn a_key_with_a_passphrase_and_no_terminal_is_refused_with_the_way_out() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    if !require_command("ssh-agent") {
        return;
    }
    let (key, _) = user_key(&env, "id_locked", "locked-key", "a passphrase");
    let ctx = env.context(&[(
        "Dockerfile",
        file("FROM busybox:latest\nRUN --mount=type=ssh true\n"),
    )]);
    let stderr = env.rbuild_err([
        "build",
        "--ssh",
        &format!("default={}", key.display()),
        ctx.to_str().expect("utf-8"),
    ]);
    assert!(
        stderr.contains("protected by a passphrase") && stderr.contains("ssh-add"),
        "{stderr}"
    );
    let (plain, _) = user_key(&env, "not_a_key", "x", "");
    std::fs::write(&plain, "hello\n").expect("overwrite");
    let stderr = env.rbuild_err([
        "build",
        "--ssh",
        &format!("default={}", plain.display()),
        ctx.to_str().expect("utf-8"),
    ]);
    assert!(stderr.contains("is not a private key"), "{stderr}");
}

#[test]
fn add_over_ssh_uses_the_build_key_and_fails_closed_on_unknown_hosts() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    if !require_command("git") || !require_command("ssh-agent") {
        return;
    }
    let (key, _) = user_key(&env, "id_git", "git-key", "");
    let Some(sshd) = Sshd::start("rbuild-test", &env.path("keys/id_git.pub")) else {
        return;
    };
    // A repository the test user can read, at a tag.
    let repo = env.path("repo");
    std::fs::create_dir_all(&repo).expect("mkdir");
    std::fs::write(repo.join("hello.txt"), "over ssh\n").expect("write");
    let git = |args: &[&str]| crate::support::git::git_in(&repo, args);
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "one"]);
    git(&["tag", "v1"]);
    // git-upload-pack runs as the test user, which must own the repository (safe.directory).
    run_ok(
        Command::new("chown")
            .args(["-R", "rbuild-test:"])
            .arg(&repo),
    );

    let url = format!(
        "ssh://rbuild-test@127.0.0.1:{}{}#v1",
        sshd.port,
        repo.display()
    );
    let ctx = env.context(&[(
        "Dockerfile",
        file(format!("FROM busybox:latest\nADD {url} /src\n")),
    )]);
    let home = env.write_tree("home/.ssh", &[]);
    let build = |args: &[&str]| {
        let mut command = env.command(["build", "-q"]);
        command
            .args(args)
            .arg(ctx.to_str().expect("utf-8"))
            .env("HOME", env.path("home"));
        command.output().expect("run rbuild")
    };
    let ssh_key = format!("default={}", key.display());

    // The host is in no known_hosts: refused, with what to do.
    let output = build(&["--ssh", &ssh_key]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("known_hosts"),
        "{}",
        describe_output(&output)
    );

    env.write_tree(
        "home/.ssh",
        &[("known_hosts", file(sshd.known_hosts_line()))],
    );
    assert!(home.join("known_hosts").exists());
    // Known host, no key for the build: the user's own agent is not used behind its back.
    let output = build(&[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("--ssh default"),
        "{}",
        describe_output(&output)
    );

    let out = env.path("ssh-add.tar");
    let dest = format!("type=oci,dest={}", out.display());
    let output = build(&["--ssh", &ssh_key, "-o", &dest]);
    assert!(
        output.status.success(),
        "{}\nsshd:\n{}",
        describe_output(&output),
        sshd.log()
    );
    assert_eq!(
        OciImage::open(&out).tree().text("src/hello.txt"),
        "over ssh\n"
    );
}
