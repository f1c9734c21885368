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

/// A tar of (name, kind, link target or content) entries, owned by root.
fn tar_of(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
    let entries: Vec<TarEntry> = entries
        .iter()
        .map(|(name, kind, data)| match kind {
            tar::EntryType::Symlink => TarEntry::symlink(name, data),
            _ => TarEntry::file(name, data),
        })
        .collect();
    layer_tar(&entries)
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

/// `rw` bind mounts write into a throw-away copy, for a single file too: a step that appends
/// to a context file (think `.git/config`) changes the step's view only.
#[test]
fn rw_bind_mounts_never_write_through_to_the_host() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let canary = Canary::plant(&env);
    let ctx = env.context(&[
        ("Dockerfile", file(concat!(
            "FROM busybox:latest\n",
            "RUN --mount=type=bind,source=conf,target=/c,rw sh -c 'echo evil >> /c && cat /c > /seen'\n",
            "RUN --mount=type=bind,from=extra,source=victim.txt,target=/v,rw sh -c 'echo evil >> /v && cat /v > /seen-named'\n",
            "RUN --mount=type=bind,from=extra,target=/e,rw sh -c 'echo new > /e/new && rm /e/victim.txt /e/secret && rmdir /e/t && ls /e > /listing'\n",
        ))),
        ("conf", file("[core]\n")),
    ]);
    let canary_arg = format!("extra={}", canary.dir.display());
    let (_, image) = env.build_oci("rw", &["--build-context", &canary_arg], &ctx);
    let tree = image.tree();
    assert_eq!(
        tree.text("seen"),
        "[core]\nevil\n",
        "the step saw its write"
    );
    assert_eq!(tree.text("seen-named"), "untouched\nevil\n");
    assert_eq!(tree.text("listing"), "empty\nnew\n");
    assert_eq!(
        std::fs::read_to_string(ctx.join("conf")).expect("read"),
        "[core]\n",
        "the context file is unchanged"
    );
    canary.assert_untouched();
}

/// A bind mount `from=` a stage resolves its source inside that stage's filesystem: symlinks
/// the stage planted (`/hostroot -> /`, `/leak -> <host file>`) name the stage's own files.
#[test]
fn bind_mounts_from_a_stage_resolve_symlinks_inside_the_stage() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let canary = Canary::plant(&env);
    let secret = canary.path("secret");
    let stage = format!(
        "FROM busybox:latest AS a\nRUN ln -s {secret} /leak && ln -s / /hostroot && mkdir /d && echo stage-a > /d/own && ln -s /d/own /abs-own\n"
    );
    let ctx = env.context(&[(
        "Dockerfile",
        file(format!(
            "{stage}FROM busybox:latest\n\
             RUN --mount=type=bind,from=a,source=hostroot,target=/h sh -c 'ls /h > /listing; cat /h{secret} > /via-root 2>/dev/null || echo absent > /via-root'\n\
             RUN --mount=type=bind,from=a,source=abs-own,target=/o cat /o > /own-through-link\n\
             RUN --mount=type=bind,from=a,source=hostroot/d,target=/hd,rw sh -c 'cat /hd/own > /through-root && echo x > /hd/own'\n"
        )),
    )]);
    let (_, image) = env.build_oci("from-stage", &[], &ctx);
    let tree = image.tree();
    assert_eq!(
        tree.text("via-root"),
        "absent\n",
        "the host's / was mounted"
    );
    let listing = tree.text("listing");
    assert!(
        listing.contains("abs-own") && listing.contains("hostroot"),
        "/ is the stage's root: {listing}"
    );
    assert_eq!(tree.text("own-through-link"), "stage-a\n");
    assert_eq!(tree.text("through-root"), "stage-a\n");

    // A link to a host file names a file the stage lacks: a clear error, no host content.
    let ctx = env.context(&[(
        "Dockerfile",
        file(format!(
            "{stage}FROM busybox:latest\nRUN --mount=type=bind,from=a,source=leak,target=/l cat /l\n"
        )),
    )]);
    let output = env.rbuild(["build", ctx.to_str().expect("utf-8")]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{all}");
    assert!(
        !all.contains("HOST SECRET"),
        "the host file was mounted: {all}"
    );
    assert!(
        all.contains("not found in stage a") && all.contains("Dockerfile:4:"),
        "{all}"
    );
    canary.assert_untouched();
}

/// The same rule for a named context directory (`--build-context name=DIR`): a symlink in it
/// stays inside it, even with `rw`; and the step's cache key follows the dir's content.
#[test]
fn bind_mounts_from_a_named_context_stay_inside_it_and_follow_its_content() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let canary = Canary::plant(&env);
    let named = env.write_tree(
        "named",
        &[
            ("data", file("one\n")),
            ("link", symlink_to(&canary.path("victim.txt"))),
        ],
    );
    let ctx = env.context(&[(
        "Dockerfile",
        file("FROM busybox:latest\nRUN --mount=type=bind,from=extra,source=data,target=/d cat /d > /copy\n"),
    )]);
    let extra = format!("extra={}", named.display());
    let build = |name: &str| env.build_oci(name, &["--build-context", &extra], &ctx).1;
    assert_eq!(build("first").tree().text("copy"), "one\n");
    std::fs::write(named.join("data"), "two\n").expect("write");
    assert_eq!(
        build("second").tree().text("copy"),
        "two\n",
        "a changed named context misses the cache"
    );

    let ctx = env.context(&[(
        "Dockerfile",
        file("FROM busybox:latest\nRUN --mount=type=bind,from=extra,source=link,target=/l,rw sh -c 'echo pwned > /l'\n"),
    )]);
    let stderr = env.rbuild_err([
        "build",
        "--build-context",
        &extra,
        ctx.to_str().expect("utf-8"),
    ]);
    assert!(
        stderr.contains("\"/link\": not found") && stderr.contains("Dockerfile:2:"),
        "{stderr}"
    );
    canary.assert_untouched();
}

/// Mount points the sandbox created are removed after the step by descriptor: a step that
/// replaced their parent with a symlink to a host dir cannot make rbuild delete host files.
#[test]
fn stub_removal_never_follows_symlinks_the_step_planted() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let canary = Canary::plant(&env);
    let ctx = env.context(&[(
        "Dockerfile",
        file(format!(
            "FROM busybox:latest\nRUN --mount=type=tmpfs,target=/m/t sh -c 'mv /m /m.old && ln -s {} /m'\n",
            canary.dir.display()
        )),
    )]);
    let (_, image) = env.build_oci("stubs", &[], &ctx);
    let tree = image.tree();
    assert!(tree.contains("m.old"), "{:?}", tree.children(""));
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

/// The store is private (0700) whatever mode its directory had: it holds every layer, setuid
/// files included, and secrets while their step runs. Another user can read none of it.
#[test]
fn the_store_is_private_to_its_owner() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[
        ("Dockerfile", file("FROM busybox:latest\nCOPY --chmod=4755 tool /suid-tool\nRUN --mount=type=secret,id=token,mode=0444 cat /run/secrets/token > /dev/null\n")),
        ("tool", executable("#!/bin/sh\n")),
        ("token", file("s3cret\n")),
    ]);
    let token = format!("id=token,src={}", ctx.join("token").display());
    env.rbuild_ok(["build", "--secret", &token, ctx.to_str().expect("utf-8")]);
    let mode = std::fs::metadata(env.store())
        .expect("stat the store")
        .mode()
        & 0o7777;
    assert_eq!(mode, 0o700, "store mode {mode:o}");
    if !is_root() {
        return;
    }
    let layer_file = walkdir::WalkDir::new(env.store().join("layers"))
        .into_iter()
        .filter_map(Result::ok)
        .find(|e| e.file_name() == "suid-tool")
        .expect("the COPY layer holds suid-tool")
        .into_path();
    let output = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
        .arg(&layer_file)
        .output()
        .expect("run setpriv");
    assert!(
        !output.status.success(),
        "another user read {}",
        layer_file.display()
    );
}

/// A FIFO in the context is copied as a FIFO (BuildKit does so) and a socket is left out;
/// neither makes the build hang or fail.
#[test]
fn special_files_in_the_context_never_hang_a_build() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[
        ("Dockerfile", file("FROM busybox:latest\nCOPY . /ctx/\nCOPY fifo /f\nRUN --mount=target=/m ls /m > /mounted\n")),
        ("data", file("data\n")),
    ]);
    nix::unistd::mkfifo(
        &ctx.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .expect("mkfifo");
    let _socket = std::os::unix::net::UnixListener::bind(ctx.join("sock")).expect("bind a socket");
    let (_, image) = env.build_oci("special", &[], &ctx);
    let tree = image.tree();
    assert_eq!(tree.node("f").kind, NodeKind::Fifo);
    assert_eq!(tree.node("ctx/fifo").kind, NodeKind::Fifo);
    assert_eq!(tree.text("ctx/data"), "data\n");
    assert!(!tree.contains("ctx/sock"), "{:?}", tree.children("ctx"));
    assert!(tree.text("mounted").contains("fifo"));
}

/// Limits give an error naming the line, never an abort: 4,000 nested substitutions.
#[test]
fn deeply_nested_substitutions_are_an_error_not_a_crash() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let word = format!("{}x{}", "${a:-".repeat(4000), "}".repeat(4000));
    let ctx = env.context(&[(
        "Dockerfile",
        file(format!("FROM busybox:latest\nARG a\nENV b={word}\n")),
    )]);
    let stderr = env.rbuild_err(["build", ctx.to_str().expect("utf-8")]);
    assert!(
        stderr.contains("nested more than 128 deep") && stderr.contains("Dockerfile:3"),
        "{}",
        &stderr[..stderr.len().min(2000)]
    );
}

/// `rbuild history X | head -1`: a reader that went away ends a listing quietly, with the
/// status of a process killed by SIGPIPE (as `ls` has), never a panic.
#[test]
fn a_closed_pipe_ends_listings_quietly() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    for args in [&["history", "busybox:latest"][..], &["images"], &["df"]] {
        let (reader, writer) = nix::unistd::pipe().expect("pipe");
        drop(reader);
        let output = env
            .command(args)
            .stdout(std::process::Stdio::from(writer))
            .stderr(std::process::Stdio::piped())
            .output()
            .expect("run rbuild");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(141), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// What `.dockerignore` excludes stays out of a bind mount of the context, whichever path
/// leads to it: a symlink to the excluded file (`alias -> .env`) or to the context itself
/// (`self -> .`) resolves inside a context where the file does not exist.
#[test]
fn ignored_files_stay_out_of_context_mounts_through_symlinks() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let entries = |dockerfile: &str| {
        env.context(&[
            ("Dockerfile", file(dockerfile)),
            (".dockerignore", file(".env\n")),
            (".env", file("TOKEN=host-secret\n")),
            ("alias", symlink_to(".env")),
            ("self", symlink_to(".")),
            ("data", file("data\n")),
        ])
    };
    let ctx = entries("FROM busybox:latest\nRUN --mount=type=bind,source=self,target=/s sh -c 'ls -a /s > /listing; cat /s/.env > /leak 2>/dev/null || echo absent > /leak'\n");
    let (_, image) = env.build_oci("ignored-self", &[], &ctx);
    let tree = image.tree();
    assert_eq!(tree.text("leak"), "absent\n");
    let listing = tree.text("listing");
    assert!(
        listing.contains("data") && !listing.contains(".env"),
        "{listing}"
    );

    let ctx = entries("FROM busybox:latest\nRUN --mount=type=bind,source=alias,target=/a cat /a\n");
    let output = env.rbuild(["build", ctx.to_str().expect("utf-8")]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{all}");
    assert!(
        !all.contains("host-secret"),
        "the ignored file was mounted: {all}"
    );
    assert!(
        all.contains("alias") && all.contains(".dockerignore") && all.contains("Dockerfile:2:"),
        "{all}"
    );
}

/// A device node in the context cannot be created by a rootless build: a clear error naming
/// it, not an attempt to read the device.
#[test]
fn device_nodes_in_the_context_are_refused_clearly() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    if !require_root() {
        return;
    }
    let ctx = env.context(&[("Dockerfile", file("FROM busybox:latest\nCOPY . /ctx/\n"))]);
    // The same device as /dev/zero: reading it would never end.
    nix::sys::stat::mknod(
        &ctx.join("zero"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 5),
    )
    .expect("mknod");
    let stderr = env.rbuild_err(["build", ctx.to_str().expect("utf-8")]);
    assert!(
        stderr.contains("\"/zero\" is a device node") && stderr.contains("Dockerfile:2:"),
        "{stderr}"
    );
}

/// An archive added to a subdirectory is extracted with that directory as its root: its
/// symlinks (`up -> ..`, `abs -> /etc`, one to a host dir) cannot carry writes into the
/// image's `/etc` or `/`, nor to the host.
#[test]
fn add_archives_resolve_their_symlinks_inside_the_destination() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let canary = Canary::plant(&env);
    let entries: [(&str, tar::EntryType, &str); 6] = [
        ("up", tar::EntryType::Symlink, ".."),
        ("up/x.txt", tar::EntryType::Regular, "through up\n"),
        ("abs", tar::EntryType::Symlink, "/etc"),
        ("abs/passwd", tar::EntryType::Regular, "through abs\n"),
        ("host", tar::EntryType::Symlink, &canary.path("t")),
        ("host/pwned", tar::EntryType::Regular, "through host\n"),
    ];
    let archive = tar_of(&entries);
    let ctx = env.context(&[
        (
            "Dockerfile",
            file("FROM busybox:latest\nADD evil.tar /dest/\n"),
        ),
        ("evil.tar", file(archive)),
    ]);
    let (_, image) = env.build_oci("add-evil", &[], &ctx);
    let tree = image.tree();
    assert_eq!(tree.text("dest/x.txt"), "through up\n");
    assert_eq!(tree.text("dest/etc/passwd"), "through abs\n");
    let planted = format!("dest{}/pwned", canary.path("t"));
    assert_eq!(tree.text(&planted), "through host\n");
    assert!(tree.get("x.txt").is_none(), "up/x.txt landed in /");
    assert!(
        !tree.text("etc/passwd").contains("through abs"),
        "abs/passwd overwrote the image's /etc/passwd"
    );
    canary.assert_untouched();
}

/// Rootless buildah and podman leave `user.overlay.origin` and `user.overlay.impure` on the
/// directories of the layers they make. Such an image loads and builds (podman runs it): the
/// xattrs are stripped with a notice, never applied as overlay metadata.
#[test]
fn images_made_by_rootless_buildah_load_with_their_overlay_xattrs_stripped() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    ImageBuilder::new()
        .tag("rootless-made:1")
        .gzip_layer(&[
            TarEntry::dir("d")
                .xattr("user.overlay.origin", b"\x00\xfb\x21\x00\x01")
                .xattr("user.overlay.impure", "y"),
            TarEntry::file("d/f", "made rootless\n"),
        ])
        .write_oci_archive(&env.path("rootless-made.tar"));
    let output = env.rbuild([
        "load",
        "-i",
        env.path("rootless-made.tar").to_str().expect("utf-8"),
    ]);
    assert!(output.status.success(), "{}", describe_output(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("user.overlay.origin") && stderr.contains("stripped"),
        "no notice of the stripped xattrs: {stderr}"
    );
    let ctx = env.context(&[(
        "Dockerfile",
        file(
            "FROM rootless-made:1 AS made\n\
             FROM busybox:latest\n\
             COPY --from=made /d /d\n\
             RUN cat /d/f > /seen && touch /d/new && ls /d > /listing\n",
        ),
    )]);
    let (_, image) = env.build_oci("from-rootless", &[], &ctx);
    let tree = image.tree();
    assert_eq!(tree.text("seen"), "made rootless\n");
    assert_eq!(tree.text("listing"), "f\nnew\n");
}

/// A context given as a tar (stdin, URL) is a tree rbuild was given: a `Dockerfile` there that
/// is a symlink to a host file is resolved inside the context, never read from the host (its
/// content would land in the error message, and so in CI logs).
#[test]
fn a_dockerfile_symlink_in_a_tar_context_never_reads_the_host() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let canary = Canary::plant(&env);
    let up = "../../../../../../../".to_string() + &canary.path("secret")[1..];
    let tar = tar_of(&[
        (
            "Dockerfile",
            tar::EntryType::Symlink,
            &canary.path("secret"),
        ),
        ("Dockerfile.up", tar::EntryType::Symlink, &up),
    ]);
    let output = env.rbuild_with_stdin(["build", "-"], &tar);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{all}");
    assert!(
        !all.contains("HOST SECRET"),
        "the host file was read: {all}"
    );
    assert!(all.contains("Dockerfile"), "{all}");
    canary.assert_untouched();
}

/// A Dockerfile or .dockerignore that is a FIFO is refused at once with its name, never opened
/// for reading (which would block the build forever).
#[test]
fn a_fifo_dockerfile_or_dockerignore_is_refused_not_waited_on() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let fifo = |path: &Path| {
        nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o644)).expect("mkfifo")
    };
    let no_dockerfile = env.context(&[("data", file("x"))]);
    fifo(&no_dockerfile.join("Dockerfile"));
    let stderr = env.rbuild_err(["build", no_dockerfile.to_str().expect("utf-8")]);
    assert!(stderr.contains("not a regular file"), "{stderr}");

    let ignore = env.context(&[("Dockerfile", file("FROM busybox:latest\nCOPY . /c/\n"))]);
    fifo(&ignore.join(".dockerignore"));
    let stderr = env.rbuild_err(["build", ignore.to_str().expect("utf-8")]);
    assert!(
        stderr.contains(".dockerignore") && stderr.contains("not a regular file"),
        "{stderr}"
    );
}

/// A dangling symlink on a destination path (`/y -> /nowhere`) is followed inside the image and
/// its target created there, as BuildKit does; it was "File exists".
#[test]
fn dangling_symlinks_on_destinations_are_created_inside_the_image() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[
        (
            "Dockerfile",
            file(
                "FROM busybox:latest\n\
                 RUN ln -s /nowhere /y && ln -s /also/gone /z\n\
                 COPY f /y/\n\
                 WORKDIR /z/w\n\
                 RUN cat /nowhere/f > /copied && test -d /also/gone/w && echo ok > /workdir\n",
            ),
        ),
        ("f", file("content\n")),
    ]);
    let (_, image) = env.build_oci("dangling", &[], &ctx);
    let tree = image.tree();
    assert_eq!(tree.text("copied"), "content\n");
    assert_eq!(tree.text("workdir"), "ok\n");
}

/// `.dockerignore` rules apply to what a COPY source resolves to: with `.env` ignored,
/// `alias -> .env` and `self -> .` cannot bring it into the image.
#[test]
fn ignored_files_stay_out_of_copies_through_symlinks() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let entries = |dockerfile: &str| {
        vec![
            ("Dockerfile", file(dockerfile)),
            (".dockerignore", file(".env\n")),
            (".env", file("TOKEN=secret\n")),
            ("data", file("data\n")),
            ("alias", symlink_to(".env")),
            ("self", symlink_to(".")),
        ]
    };
    let ctx = env.context(&entries("FROM busybox:latest\nCOPY alias /x\n"));
    let stderr = env.rbuild_err(["build", ctx.to_str().expect("utf-8")]);
    assert!(stderr.contains(".dockerignore"), "{stderr}");

    let ctx = env.context(&entries("FROM busybox:latest\nCOPY self/ /y/\n"));
    let (_, image) = env.build_oci("self-copy", &[], &ctx);
    let tree = image.tree();
    assert_eq!(tree.text("y/data"), "data\n");
    assert!(!tree.contains("y/.env"), "{:?}", tree.children("y"));
}

/// `rbuild prune --all` while a build runs keeps what the build uses: here a cached layer no
/// image names any more. The build finishes and its image is complete.
#[test]
fn prune_during_a_build_keeps_the_layers_the_build_uses() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let dockerfile = |last: &str| {
        file(format!(
            "FROM busybox:latest\nRUN echo one > /one\nRUN sleep 3 && echo {last} > /last\n"
        ))
    };
    // First build: its layers are then only in the cache (the image is untagged).
    let first = env.context(&[("Dockerfile", dockerfile("first"))]);
    env.rbuild_ok(["build", first.to_str().expect("utf-8")]);
    // Second build: `RUN echo one` hits the cache; the prune runs during its sleep.
    let second = env.context(&[("Dockerfile", dockerfile("second"))]);
    let out = env.path("after-prune.tar");
    let log_path = env.path("build.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let mut build = env.command([
        "build",
        "--progress=plain",
        "-o",
        &format!("type=oci,dest={}", out.display()),
        second.to_str().expect("utf-8"),
    ]);
    let mut child = build
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn the build");
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(&log_path)
        .unwrap_or_default()
        .contains("sleep 3")
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "the build never reached its long step"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let pruned = env.rbuild_ok(["prune", "--all"]);
    let status = child.wait().expect("wait for the build");
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(
        status.success(),
        "the build failed after a prune:\n{log}\n{pruned:?}"
    );
    let image = OciImage::open(&out);
    assert_eq!(image.tree().text("one"), "one\n");
    assert_eq!(image.tree().text("last"), "second\n");
    // and the lease is gone with the build
    let leases: Vec<_> = std::fs::read_dir(env.store().join("leases"))
        .map(|entries| entries.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leases.is_empty(), "{leases:?}");
}

/// The lease of a build killed with SIGKILL is reclaimed by the next prune: its layers are no
/// longer kept for a build that is gone.
#[test]
fn leases_of_killed_builds_are_reclaimed() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[(
        "Dockerfile",
        file("FROM busybox:latest\nRUN echo one > /one\nRUN sleep 30\n"),
    )]);
    let log_path = env.path("killed.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let mut child = env
        .command(["build", "--progress=plain", ctx.to_str().expect("utf-8")])
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn the build");
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(&log_path)
        .unwrap_or_default()
        .contains("sleep 30")
    {
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let leases = env.store().join("leases");
    let count = || std::fs::read_dir(&leases).map(|e| e.count()).unwrap_or(0);
    assert_eq!(count(), 1, "a running build holds one lease");
    // the whole process group: rbuild and its step
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) on the child this test spawned and has not reaped yet.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let _ = child.wait();
    env.rbuild_ok(["prune"]);
    assert_eq!(count(), 0, "the dead build's lease was not reclaimed");
}

/// The bind source is resolved once, inside its tree, and that open object is what gets
/// mounted: swapping the source for a symlink to a host directory while builds run never
/// shows the host directory in a step, whatever the timing (each build sees the real source
/// or fails to find it).
#[test]
fn swapping_a_bind_source_for_a_symlink_never_escapes() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let canary = Canary::plant(&env);
    let ctx = env.context(&[
        (
            "Dockerfile",
            file(
                "FROM busybox:latest\n\
                 RUN --mount=type=bind,source=src,target=/m sh -c 'ls /m > /seen; cat /m/secret >> /seen 2>/dev/null; true'\n",
            ),
        ),
        ("src/inside", file("inside\n")),
        ("other", symlink_to(&canary.dir.display().to_string())),
    ]);
    let stop = AtomicBool::new(false);
    let (src, other) = (
        std::ffi::CString::new(ctx.join("src").display().to_string()).expect("path"),
        std::ffi::CString::new(ctx.join("other").display().to_string()).expect("path"),
    );
    let (mut seen_real, mut failed) = (0, 0);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: renameat2 on two NUL-terminated paths this test owns.
                let r = unsafe {
                    libc::renameat2(
                        libc::AT_FDCWD,
                        src.as_ptr(),
                        libc::AT_FDCWD,
                        other.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    )
                };
                assert_eq!(r, 0, "swap: {}", std::io::Error::last_os_error());
                std::thread::sleep(std::time::Duration::from_micros(300));
            }
        });
        for round in 0..40 {
            let out = env.path(&format!("swap-{round}"));
            let output = env.rbuild([
                "build",
                "--no-cache",
                "-o",
                &format!("type=local,dest={}", out.display()),
                ctx.to_str().expect("utf-8"),
            ]);
            let all = describe_output(&output);
            assert!(!all.contains("HOST SECRET"), "round {round}: {all}");
            if output.status.success() {
                let seen = std::fs::read_to_string(out.join("seen")).expect("seen");
                assert_eq!(seen, "inside\n", "round {round}: the step saw {seen:?}");
                seen_real += 1;
            } else {
                failed += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    eprintln!("swap rounds: {seen_real} saw the real source, {failed} failed");
    assert!(
        seen_real > 0,
        "no build ever saw the real source ({failed} failed)"
    );
    canary.assert_untouched();
}
