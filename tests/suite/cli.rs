//! The image commands around a build: images, history, inspect, tag, rmi, save, iidfile,
//! quiet mode, `rbuild DIR` shorthand and system reset.

use serde_json::Value;

use crate::support::*;

#[test]
fn images_history_inspect_tag_rmi() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[(
        "Dockerfile",
        file("FROM busybox:latest\nRUN echo 1 > /one\nENV X=1\n"),
    )]);
    let iid = env.path("iid");
    let quiet = env.rbuild_ok([
        "build",
        "-q",
        "-t",
        "app:1",
        "-t",
        "app:latest",
        "--iidfile",
        iid.to_str().expect("utf-8"),
        ctx.to_str().expect("utf-8"),
    ]);
    let image_id = quiet.trim().to_string();
    assert!(
        image_id.starts_with("sha256:") && image_id.len() == 71,
        "-q prints the id: {quiet}"
    );
    let from_file = env
        .command_as_user("cat")
        .arg(&iid)
        .output()
        .expect("cat iidfile");
    assert_eq!(String::from_utf8_lossy(&from_file.stdout), image_id);

    let images = env.rbuild_ok(["images"]);
    let short = &image_id[7..19];
    assert!(
        images
            .lines()
            .any(|l| l.starts_with("app ") && l.contains(" 1 ") && l.contains(short)),
        "{images}"
    );
    assert!(
        images
            .lines()
            .any(|l| l.starts_with("app ") && l.contains("latest") && l.contains(short)),
        "{images}"
    );

    let history = env.rbuild_ok(["history", "app:1"]);
    let rows: Vec<&str> = history.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "FROM's one entry + RUN + ENV: {history}");
    assert!(
        rows[0].starts_with(short) && rows[0].contains("ENV X=1") && rows[0].contains(" 0B "),
        "{history}"
    );
    assert!(
        rows[1].starts_with("<missing>")
            && rows[1].contains("RUN /bin/sh -c echo 1 > /one # buildkit"),
        "{history}"
    );
    assert!(
        !rows[1].contains(" 0B "),
        "the RUN row has a size: {history}"
    );

    let inspect: Value =
        serde_json::from_str(&env.rbuild_ok(["inspect", "app:1"])).expect("inspect is JSON");
    assert_eq!(inspect[0]["Id"], Value::String(image_id.clone()));
    assert_eq!(
        inspect[0]["RepoTags"],
        serde_json::json!(["app:1", "app:latest"])
    );
    assert_eq!(inspect[0]["Config"]["Env"][1], "X=1");
    // By id prefix too.
    let by_prefix: Value =
        serde_json::from_str(&env.rbuild_ok(["inspect", short])).expect("inspect is JSON");
    assert_eq!(by_prefix[0]["Id"], Value::String(image_id.clone()));

    env.rbuild_ok(["tag", "app:1", "other/name:v2"]);
    let inspect: Value =
        serde_json::from_str(&env.rbuild_ok(["inspect", "other/name:v2"])).expect("json");
    assert_eq!(inspect[0]["Id"], Value::String(image_id.clone()));

    assert!(env.rbuild_ok(["rmi", "app:1"]).contains("Untagged: app:1"));
    assert!(env.rbuild(["inspect", "app:1"]).status.code() == Some(1));
    env.rbuild_ok(["rmi", "app:latest", "other/name:v2"]);
    let images = env.rbuild_ok(["images", "-q"]);
    assert!(
        !images.contains(short),
        "the last name removed the image: {images}"
    );
    let stderr = env.rbuild_err(["rmi", "app:1"]);
    assert!(stderr.contains("no such image"), "{stderr}");
}

#[test]
fn save_in_both_formats_and_load_back() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[(
        "Dockerfile",
        file("FROM busybox:latest\nRUN echo saved > /saved\n"),
    )]);
    env.rbuild_ok(["build", "-t", "saveme:1", ctx.to_str().expect("utf-8")]);
    let docker = env.path("saveme-docker.tar");
    let oci = env.path("saveme-oci.tar");
    env.rbuild_ok(["save", "-o", docker.to_str().expect("utf-8"), "saveme:1"]);
    env.rbuild_ok([
        "save",
        "--format",
        "oci",
        "-o",
        oci.to_str().expect("utf-8"),
        "saveme:1",
    ]);
    let a = OciImage::open(&docker);
    let b = OciImage::open(&oci);
    assert_eq!(
        a.config_digest, b.config_digest,
        "one image, two containers"
    );
    assert_eq!(a.tree().text("saved"), "saved\n");
    assert_eq!(b.tree().text("saved"), "saved\n");
    assert_eq!(a.ref_names(), vec!["saveme:1".to_string()]);
    if let Some(inspect) = skopeo_inspect(&format!("docker-archive:{}", docker.display())) {
        assert_eq!(
            inspect["Layers"].as_array().map(Vec::len),
            Some(a.layer_count())
        );
    }
    // Round trip through a second store.
    let other = TestEnv::new();
    let stdout = other.rbuild_ok(["load", "-i", docker.to_str().expect("utf-8")]);
    assert!(stdout.contains("saveme:1"), "{stdout}");
    let inspect: Value =
        serde_json::from_str(&other.rbuild_ok(["inspect", "saveme:1"])).expect("json");
    assert_eq!(inspect[0]["Id"], Value::String(a.config_digest.clone()));
}

/// Flags with a fixed set of values are refused, before anything runs, with the value and
/// the choices; RUN's own --network and --security values are refused with the line.
#[test]
fn flag_values_are_checked_once_with_their_choices() {
    let env = TestEnv::new();
    let ctx = env.context(&[("Dockerfile", file("FROM scratch\nCOPY Dockerfile /\n"))]);
    let ctx = ctx.to_str().expect("utf-8");
    for (flag, value, choices) in [
        ("--network", "bridge", "expected default, none or host"),
        ("--progress", "fancy", "plain"),
        ("--format", "zip", "oci"),
        ("--allow", "everything", "security.insecure"),
    ] {
        let stderr = env.rbuild_err(["build", flag, value, ctx]);
        assert!(
            stderr.contains(value) && stderr.contains(choices),
            "{flag} {value}: {stderr}"
        );
    }
    for (run, message) in [
        (
            "RUN --network=bridge true",
            "--network=bridge: expected default, none or host",
        ),
        (
            "RUN --security=lax true",
            "--security=lax: expected sandbox or insecure",
        ),
    ] {
        let bad = env.context(&[("Dockerfile", file(format!("FROM scratch\n{run}\n")))]);
        let stderr = env.rbuild_err(["build", bad.to_str().expect("utf-8")]);
        assert!(
            stderr.contains(message) && stderr.contains("Dockerfile:2"),
            "{run}: {stderr}"
        );
    }
    assert!(
        env.rbuild_ok(["images", "-q"]).trim().is_empty(),
        "nothing was built"
    );
}

#[test]
fn shorthand_build_and_system_reset() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[("Dockerfile", file("FROM busybox:latest\nRUN echo x > /x\n"))]);
    let output = env
        .command([ctx.to_str().expect("utf-8")])
        .output()
        .expect("run rbuild DIR");
    assert!(output.status.success(), "{}", describe_output(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("[2/2] RUN echo x > /x"));
    env.rbuild_ok(["system", "reset"]);
    let ls = env
        .command_as_user("ls")
        .arg(env.store())
        .output()
        .expect("ls");
    assert!(
        !ls.status.success() || ls.stdout.is_empty(),
        "store is gone"
    );
}

#[test]
fn a_damaged_layer_is_never_exported() {
    if !require_root() {
        return;
    }
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[(
        "Dockerfile",
        file("FROM busybox:latest\nRUN echo v1 > /v\n"),
    )]);
    let id = env.rbuild_ok([
        "build",
        "-q",
        "-t",
        "damaged:1",
        ctx.to_str().expect("utf-8"),
    ]);
    let inspect: Value =
        serde_json::from_str(&env.rbuild_ok(["inspect", id.trim()])).expect("json");
    let top = inspect[0]["RootFS"]["Layers"]
        .as_array()
        .and_then(|l| l.last())
        .and_then(|d| d.as_str())
        .expect("a layer")
        .to_string();
    // Root tampers with the stored layer dir behind rbuild's back.
    let layer_dir = env
        .store()
        .join("layers")
        .join(top.trim_start_matches("sha256:"))
        .join("diff");
    std::fs::write(layer_dir.join("v"), "tampered\n").expect("tamper");
    for format in ["oci", "docker"] {
        let out = env.path(&format!("damaged-{format}.tar"));
        let stderr = env.rbuild_err([
            "save",
            "--format",
            format,
            "-o",
            out.to_str().expect("utf-8"),
            "damaged:1",
        ]);
        assert!(stderr.contains("damaged"), "{format}: {stderr}");
        assert!(!out.exists(), "{format}: no half-written archive");
    }
    // The file outputs of a build check the layers too (the step is a cache hit).
    for kind in ["tar", "local"] {
        let out = env.path(&format!("damaged-{kind}"));
        let stderr = env.rbuild_err([
            "build",
            "-o",
            &format!("type={kind},dest={}", out.display()),
            ctx.to_str().expect("utf-8"),
        ]);
        assert!(stderr.contains("damaged"), "{kind}: {stderr}");
        let written = match std::fs::read_dir(&out) {
            Ok(entries) => entries.count() as u64,
            Err(_) => std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0),
        };
        assert_eq!(written, 0, "{kind}: something was exported");
    }
}

/// buildx's context forms: a tar on stdin, a Dockerfile on stdin, `-f -`, a git repository
/// (served over git:// on loopback, fetched with the git binary).
#[test]
fn contexts_from_stdin_and_git() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    // A context tar on stdin.
    let tar_bytes = layer_tar(&[
        TarEntry::file(
            "Dockerfile",
            "FROM busybox:latest\nCOPY hello.txt /hello.txt\n",
        )
        .mtime(0),
        TarEntry::file("hello.txt", "from a tar\n").mtime(0),
    ]);
    let out = env.path("stdin-tar.tar");
    let output = env.rbuild_with_stdin(
        [
            "build",
            "-o",
            &format!("type=oci,dest={}", out.display()),
            "-",
        ],
        &tar_bytes,
    );
    assert!(output.status.success(), "{}", describe_output(&output));
    assert_eq!(
        OciImage::open(&out).tree().text("hello.txt"),
        "from a tar\n"
    );

    // A lone Dockerfile on stdin (empty context), and -f - with a directory context.
    let out = env.path("stdin-df.tar");
    let output = env.rbuild_with_stdin(
        [
            "build",
            "-o",
            &format!("type=oci,dest={}", out.display()),
            "-",
        ],
        b"FROM busybox:latest\nRUN echo lone > /lone\n",
    );
    assert!(output.status.success(), "{}", describe_output(&output));
    assert_eq!(OciImage::open(&out).tree().text("lone"), "lone\n");
    let ctx = env.context(&[("data.txt", file("dir context\n"))]);
    let out = env.path("stdin-f.tar");
    let output = env.rbuild_with_stdin(
        [
            "build",
            "-f",
            "-",
            "-o",
            &format!("type=oci,dest={}", out.display()),
            ctx.to_str().expect("utf-8"),
        ],
        b"FROM busybox:latest\nCOPY data.txt /data.txt\n",
    );
    assert!(output.status.success(), "{}", describe_output(&output));
    assert_eq!(
        OciImage::open(&out).tree().text("data.txt"),
        "dir context\n"
    );

    // A git repository with the context in a subdir, at a tag.
    if !require_command("git") {
        return;
    }
    let repo = env.path("repo");
    std::fs::create_dir_all(repo.join("app")).expect("mkdir");
    std::fs::write(
        repo.join("app/Dockerfile"),
        "FROM busybox:latest\nCOPY version /version\n",
    )
    .expect("write");
    std::fs::write(repo.join("app/version"), "v1\n").expect("write");
    std::fs::write(
        repo.join("Dockerfile"),
        "FROM busybox:latest\nCOPY . /src\n",
    )
    .expect("write");
    let git = |args: &[&str]| git_in(&repo, args);
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "v1"]);
    git(&["tag", "v1"]);
    std::fs::write(repo.join("app/version"), "v2\n").expect("write");
    git(&["commit", "-qam", "v2"]);
    let server = GitServer::serve(&env.path(""));
    let out = env.path("git.tar");
    let url = format!("{}#v1:app", server.url("repo"));
    env.rbuild_ok([
        "build",
        "-o",
        &format!("type=oci,dest={}", out.display()),
        &url,
    ]);
    assert_eq!(
        OciImage::open(&out).tree().text("version"),
        "v1\n",
        "the tag's content, not the branch head"
    );
    // The whole repository: .git is left out, unless BUILDKIT_CONTEXT_KEEP_GIT_DIR=1.
    let whole = format!("{}#v1", server.url("repo"));
    for (keep, kept) in [(None, false), (Some("1"), true), (Some("false"), false)] {
        let out = env.path("git-whole.tar");
        let mut args = vec![
            "build".to_string(),
            "-o".to_string(),
            format!("type=oci,dest={}", out.display()),
        ];
        if let Some(value) = keep {
            args.extend([
                "--build-arg".to_string(),
                format!("BUILDKIT_CONTEXT_KEEP_GIT_DIR={value}"),
            ]);
        }
        args.push(whole.clone());
        env.rbuild_ok(&args);
        let image = OciImage::open(&out);
        let tree = image.tree();
        assert_eq!(tree.text("src/app/version"), "v1\n");
        assert_eq!(tree.contains("src/.git/HEAD"), kept, "{keep:?}");
    }
}

/// One corrupt config blob: `images` lists the others and names the bad one (exit 1);
/// `system check` finds it, `--repair` removes it, and the image can be built again.
#[test]
fn a_corrupt_image_is_named_checked_and_repaired() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    for (tag, word) in [("good:1", "good"), ("bad:1", "bad")] {
        let ctx = env.context(&[(
            "Dockerfile",
            file(format!("FROM busybox:latest\nRUN echo {word} > /word\n")),
        )]);
        env.rbuild_ok(["build", "-q", "-t", tag, ctx.to_str().expect("utf-8")]);
    }
    let inspect = env.rbuild_ok(["inspect", "bad:1"]);
    let value: Value = serde_json::from_str(&inspect).expect("json");
    let id = value[0]["Id"].as_str().expect("Id").to_string();
    let blob = env
        .store()
        .join("blobs/sha256")
        .join(id.trim_start_matches("sha256:"));
    std::fs::write(&blob, b"{ not a config").expect("corrupt the config");

    let listed = env.rbuild(["images"]);
    assert_eq!(
        listed.status.code(),
        Some(1),
        "{}",
        describe_output(&listed)
    );
    let stdout = String::from_utf8_lossy(&listed.stdout);
    let stderr = String::from_utf8_lossy(&listed.stderr);
    assert!(
        stdout.contains("good") && stdout.contains("busybox"),
        "{stdout}"
    );
    assert!(stderr.contains(&id) && stderr.contains("bad:1"), "{stderr}");

    let checked = env.rbuild(["system", "check"]);
    assert_eq!(
        checked.status.code(),
        Some(1),
        "{}",
        describe_output(&checked)
    );
    let report = String::from_utf8_lossy(&checked.stdout);
    assert!(report.contains(&format!("corrupt blob {id}")), "{report}");
    assert!(report.contains(&format!("corrupt image {id}")), "{report}");

    let repaired = env.rbuild_ok(["system", "check", "--repair"]);
    assert!(repaired.contains("(removed)"), "{repaired}");
    env.rbuild_ok(["system", "check"]);
    let listed = env.rbuild_ok(["images"]);
    assert!(
        listed.contains("good") && !listed.contains("bad"),
        "{listed}"
    );
    let again = env.context(&[(
        "Dockerfile",
        file("FROM busybox:latest\nRUN echo bad > /word\n"),
    )]);
    env.rbuild_ok(["build", "-q", "-t", "bad:1", again.to_str().expect("utf-8")]);
}

/// Temp files of a killed save or pull (named by their process id) are reclaimed by the next
/// command; those of a running one are counted by `df`.
#[test]
fn temp_files_of_dead_commands_are_reclaimed_and_live_ones_counted() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let tmp = env.store().join("tmp");
    // pid_max is at most 2^22: this process cannot exist
    let dead = tmp.join("4194305-blob-killed");
    let live = tmp.join(format!("{}-blob-running", std::process::id()));
    // write_atomic's temp file of a killed command, beside the blobs
    let dead_atomic = env.store().join("blobs/sha256/.4194305-half-written");
    for path in [&dead, &live, &dead_atomic] {
        std::fs::write(path, vec![7u8; 5000]).expect("plant a temp file");
    }
    let df = env.rbuild_ok(["df"]);
    assert!(
        !dead_atomic.exists(),
        "the dead command's atomic temp file was not reclaimed"
    );
    assert!(
        !dead.exists(),
        "the dead command's temp file was not reclaimed"
    );
    assert!(live.exists(), "a running command's temp file was removed");
    let row = df
        .lines()
        .find(|l| l.starts_with("Temp files"))
        .unwrap_or_else(|| panic!("no temp row: {df}"));
    assert!(row.split_whitespace().any(|w| w == "5kB"), "{row}");
}

/// A full disk while a layer is committed: the commit rolls back (no layer dir without its
/// record holding the space), and once there is room again the next build works. The store
/// is a 24 MB tmpfs mounted by the root harness for the test user.
#[test]
fn a_commit_that_hits_a_full_disk_rolls_back() {
    use std::os::unix::fs::MetadataExt;
    if !require_root() {
        return;
    }
    let Some(archive) = busybox_oci_archive() else {
        return;
    };
    let env = TestEnv::new();
    let store = env.store().to_path_buf();
    let meta = std::fs::metadata(&store).expect("store");
    let options = format!("size=24m,mode=0700,uid={},gid={}", meta.uid(), meta.gid());
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &options, "tmpfs"])
        .arg(&store)
        .status()
        .expect("mount");
    assert!(mounted.success(), "mount a tmpfs for the store");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _unmount = Unmount(store.clone());
    env.rbuild_ok(["load", "-i", archive.to_str().expect("utf-8")]);
    // The step fills the disk and succeeds; committing its layer then finds no room.
    let fill = env.context(&[(
        "Dockerfile",
        file("FROM busybox:latest\nRUN dd if=/dev/zero of=/big bs=64k 2>/dev/null; true\n"),
    )]);
    let stderr = env.rbuild_err(["build", fill.to_str().expect("utf-8")]);
    assert!(stderr.contains("No space left"), "{stderr}");
    for layer in std::fs::read_dir(store.join("layers"))
        .expect("layers")
        .flatten()
    {
        assert!(
            layer.path().join("layer.json").exists(),
            "{} has no record: a commit was not rolled back",
            layer.path().display()
        );
    }
    let small = env.context(&[(
        "Dockerfile",
        file("FROM busybox:latest\nRUN echo small > /small\n"),
    )]);
    let (_, image) = env.build_oci("after-enospc", &[], &small);
    assert_eq!(image.tree().text("small"), "small\n");
}

/// buildx's `--call`: `targets` lists the stages with the descriptions of the comments above
/// their FROM, `outline` what a target takes (build args with defaults and descriptions,
/// secrets), `check` is `--check`; nothing is built.
#[test]
fn call_targets_outline_and_check() {
    let env = TestEnv::new();
    let ctx = env.context(&[(
        "Dockerfile",
        file(
            "# VERSION is the release\nARG VERSION=1.0\n\n\
             # build compiles the app\nFROM scratch AS build\n\
             RUN --mount=type=secret,id=token,required make\n\
             FROM build AS release\nMAINTAINER someone\n",
        ),
    )]);
    let ctx = ctx.to_str().expect("utf-8");
    let targets = env.rbuild_ok(["build", "--call=targets", ctx]);
    let lines: Vec<Vec<&str>> = targets
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines,
        [
            vec!["TARGET", "DESCRIPTION"],
            vec!["build", "compiles", "the", "app"],
            vec!["release", "(default)"],
        ],
        "{targets}"
    );
    let outline = env.rbuild_ok(["build", "--call=outline", "--target", "build", ctx]);
    assert!(outline.starts_with("TARGET:      build\n"), "{outline}");
    assert!(
        outline.contains("DESCRIPTION: compiles the app"),
        "{outline}"
    );
    assert!(
        outline
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["VERSION", "1.0", "is", "the", "release"]),
        "{outline}"
    );
    assert!(
        outline
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["token", "true"]),
        "{outline}"
    );
    let check = env.rbuild(["build", "--call=check", ctx]);
    assert_eq!(
        check.status.code(),
        Some(1),
        "a finding (MAINTAINER): exit 1"
    );
    assert!(String::from_utf8_lossy(&check.stderr).contains("MaintainerDeprecated"));
    assert!(
        env.rbuild_ok(["images", "-q"]).trim().is_empty(),
        "nothing built"
    );
}

/// The BuildKit frontend options CI passes as build args (reference.md "BuildKit built-in
/// build args"): BUILDKIT_SANDBOX_HOSTNAME (RUN's hostname, part of the step's key),
/// BUILDKIT_CACHE_MOUNT_NS (cache mounts of one namespace apart from another's) and
/// BUILDKIT_MULTI_PLATFORM (an image index for one platform). None of them is reported as an
/// unused build arg.
#[test]
fn buildkit_build_args_are_honoured() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[(
        "Dockerfile",
        file(
            "FROM busybox:latest\n\
             RUN hostname > /hostname && grep -c \"$(hostname)\" /etc/hosts > /in-hosts\n\
             RUN --mount=type=cache,id=shared,target=/c (cat /c/seen 2>/dev/null || echo none) > /before && echo here > /c/seen\n",
        ),
    )]);
    let build = |name: &str, args: &[&str]| {
        let out = env.path(&format!("{name}.tar"));
        let mut all = vec!["build", "--progress", "plain"];
        all.extend_from_slice(args);
        let dest = format!("type=oci,dest={}", out.display());
        all.extend(["-o", &dest, ctx.to_str().expect("utf-8")]);
        let output = env.rbuild(&all);
        assert!(output.status.success(), "{}", describe_output(&output));
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(!stderr.contains("not consumed"), "{stderr}");
        (out, stderr)
    };
    let (first, _) = build("ns-a", &["--build-arg", "BUILDKIT_CACHE_MOUNT_NS=a"]);
    let image = OciImage::open(&first);
    assert_eq!(image.tree().text("hostname"), "buildkitsandbox\n");
    assert_eq!(image.tree().text("before"), "none\n");
    // Another hostname: the RUN runs again (not cached) and sees it in /etc/hosts too. The
    // cache mount of namespace a was filled by the first build.
    let (second, stderr) = build(
        "named",
        &[
            "--build-arg",
            "BUILDKIT_SANDBOX_HOSTNAME=builder-7",
            "--build-arg",
            "BUILDKIT_CACHE_MOUNT_NS=a",
        ],
    );
    assert!(!stderr.contains("[2/3] CACHED"), "{stderr}");
    let image = OciImage::open(&second);
    assert_eq!(image.tree().text("hostname"), "builder-7\n");
    assert_eq!(image.tree().text("in-hosts"), "1\n");
    assert_eq!(image.tree().text("before"), "here\n");
    // Namespace b has its own, empty cache mount.
    let (third, _) = build(
        "ns-b",
        &["--no-cache", "--build-arg", "BUILDKIT_CACHE_MOUNT_NS=b"],
    );
    assert_eq!(OciImage::open(&third).tree().text("before"), "none\n");
    // One platform, as an index.
    let (index, _) = build("index", &["--build-arg", "BUILDKIT_MULTI_PLATFORM=1"]);
    let raw = crate::support::tools::skopeo_inspect_with(
        &format!("oci-archive:{}", index.display()),
        &["--raw"],
    );
    if let Some(raw) = raw {
        assert_eq!(
            raw["mediaType"], "application/vnd.oci.image.index.v1+json",
            "{raw}"
        );
        assert_eq!(raw["manifests"].as_array().map(Vec::len), Some(1), "{raw}");
        assert_eq!(
            raw["manifests"][0]["platform"]["architecture"], "amd64",
            "{raw}"
        );
    }
}

/// `rbuild completion SHELL` and `rbuild man --out DIR` come from the clap definitions: bash
/// completes subcommands and flags with the generated script, and every command has a page.
#[test]
fn completions_and_man_pages_come_from_the_flags() {
    let env = TestEnv::new();
    let bash = env.rbuild_ok(["completion", "bash"]);
    let script = env.path("rbuild.bash");
    std::fs::write(&script, &bash).expect("write the script");
    let complete = |words: &str| {
        let output = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
                 _rbuild rbuild \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
                 printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                script.display()
            ))
            .output()
            .expect("run bash");
        assert!(output.status.success(), "{}", describe_output(&output));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let words = complete("rbuild bu");
    assert_eq!(words.trim(), "build", "{words}");
    let flags = complete("rbuild build --no-c");
    assert_eq!(
        flags.lines().collect::<Vec<_>>(),
        ["--no-cache", "--no-cache-filter"],
        "{flags}"
    );
    assert!(env
        .rbuild_ok(["completion", "zsh"])
        .starts_with("#compdef rbuild"));
    assert!(env
        .rbuild_ok(["completion", "fish"])
        .contains("complete -c rbuild -n \"__fish_rbuild_needs_command\" -f -a \"build\""));
    let refused = env.rbuild_err(["completion", "tcsh"]);
    assert!(
        refused.contains("possible values: bash, zsh, fish"),
        "{refused}"
    );

    let pages = env.path("man");
    env.rbuild_ok(["man", "--out", pages.to_str().expect("utf-8")]);
    for page in [
        "rbuild.1",
        "rbuild-build.1",
        "rbuild-system-check.1",
        "rbuild-completion.1",
    ] {
        let text = std::fs::read_to_string(pages.join(page)).expect(page);
        assert!(text.starts_with(".ie \\n(.g .ds Aq"), "{page}: roff");
        assert!(text.contains(".SH NAME"), "{page}");
    }
    let build = std::fs::read_to_string(pages.join("rbuild-build.1")).expect("page");
    assert!(
        build.contains("build\\-arg"),
        "the build page lists --build-arg"
    );
}

/// `images` and `history` as docker prints them: CREATED as "N units ago", `--no-trunc`,
/// `--format json|table|TEMPLATE` (the Go-template subset, anything else refused), and
/// `images --filter reference=PATTERN|dangling=BOOL`.
#[test]
fn listings_format_and_filter_as_docker_does() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let first = env.context(&[("Dockerfile", file("FROM busybox:latest\nRUN echo 1 > /x\n"))]);
    let second = env.context(&[("Dockerfile", file("FROM busybox:latest\nRUN echo 2 > /x\n"))]);
    env.rbuild_ok(["build", "-q", "-t", "app:1", first.to_str().expect("utf-8")]);
    // The tag moves: the first image is left dangling.
    env.rbuild_ok([
        "build",
        "-q",
        "-t",
        "app:1",
        second.to_str().expect("utf-8"),
    ]);

    let json = env.rbuild_ok(["images", "--format", "json"]);
    let rows: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let app = rows
        .iter()
        .find(|r| r["Repository"] == "app")
        .unwrap_or_else(|| panic!("app:1 in {json}"));
    assert_eq!(app["Tag"], "1");
    assert_eq!(app["ID"].as_str().map(str::len), Some(12), "{app}");
    assert!(
        app["CreatedSince"]
            .as_str()
            .is_some_and(|s| s.ends_with("seconds ago")
                || s == "Less than a second ago"
                || s == "About a minute ago"),
        "{app}"
    );
    assert!(rows.iter().any(|r| r["Repository"] == "<none>"), "{json}");

    let names = env.rbuild_ok(["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    let mut names: Vec<&str> = names.lines().collect();
    names.sort_unstable();
    assert_eq!(names, ["<none>:<none>", "app:1", "busybox:latest"]);
    let full = env.rbuild_ok([
        "images",
        "--no-trunc",
        "--format",
        "{{.ID}}",
        "--filter",
        "reference=app",
    ]);
    assert!(
        full.trim().starts_with("sha256:") && full.trim().len() == 71,
        "{full}"
    );
    let busy = env.rbuild_ok(["images", "--filter", "reference=busy*"]);
    assert_eq!(busy.lines().count(), 2, "header and busybox: {busy}");
    assert!(
        busy.lines()
            .next()
            .is_some_and(|h| h.starts_with("REPOSITORY   ")),
        "{busy}"
    );
    let dangling = env.rbuild_ok(["images", "-q", "--filter", "dangling=true"]);
    assert_eq!(dangling.lines().count(), 1, "{dangling}");
    let table = env.rbuild_ok([
        "images",
        "--format",
        "table {{.Repository}}\\t{{.Size}}",
        "--filter",
        "reference=app:1",
    ]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(lines[0].starts_with("REPOSITORY   SIZE"), "{table}");
    assert!(lines[1].starts_with("app          "), "{table}");

    let history = env.rbuild_ok(["history", "--format", "{{.CreatedBy}}", "app:1"]);
    assert!(
        history
            .lines()
            .next()
            .is_some_and(|l| l.contains("echo 2 > /x")),
        "{history}"
    );
    let history = env.rbuild_ok(["history", "--format", "json", "app:1"]);
    let newest: serde_json::Value =
        serde_json::from_str(history.lines().next().expect("a row")).expect("json");
    assert_eq!(newest["ID"].as_str().map(str::len), Some(12), "{newest}");
    assert!(
        newest["CreatedSince"]
            .as_str()
            .is_some_and(|s| s.ends_with(" ago")),
        "{newest}"
    );
    let header = env.rbuild_ok(["history", "app:1"]);
    assert!(
        header.lines().next().is_some_and(|h| h.starts_with("IMAGE")
            && h.contains("   CREATED   ")
            && h.contains("CREATED BY")),
        "{header}"
    );

    for bad in ["{{if .ID}}x{{end}}", "{{.Nope}}"] {
        let stderr = env.rbuild_err(["images", "--format", bad]);
        assert!(stderr.contains("--format"), "{bad}: {stderr}");
    }
    let stderr = env.rbuild_err(["images", "--filter", "label=x"]);
    assert!(stderr.contains("reference=PATTERN or dangling"), "{stderr}");

    let df = env.rbuild_ok(["df", "--format", "json"]);
    let images: serde_json::Value = df
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
        .find(|r| r["Type"] == "Images")
        .unwrap_or_else(|| panic!("{df}"));
    assert_eq!(
        images["TotalCount"], "3",
        "busybox, app:1 and the dangling one: {df}"
    );
    let counts = env.rbuild_ok(["df", "--format", "{{.Type}}={{.TotalCount}}"]);
    assert!(counts.lines().any(|l| l == "Images=3"), "{counts}");
}

/// `--progress=rawjson`: every line on standard error is one JSON event (step started,
/// log, finished with `cached`, errored; notices); $BUILDKIT_PROGRESS and $RBUILD_PROGRESS
/// choose the mode when the flag is absent; `quiet`/`none` print nothing.
#[test]
fn rawjson_progress_is_one_event_per_line() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[(
        "Dockerfile",
        file("FROM busybox:latest\nRUN echo hello-from-run\nENV A=1\n"),
    )]);
    let events = |output: &std::process::Output| -> Vec<serde_json::Value> {
        assert!(output.status.success(), "{}", describe_output(output));
        String::from_utf8_lossy(&output.stderr)
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON event ({e}): {l}"))
            })
            .collect()
    };
    let dir = ctx.to_str().expect("utf-8");
    let first = events(&env.rbuild(["build", "--progress=rawjson", "-t", "ev:1", dir]));
    let of = |events: &[serde_json::Value], kind: &str| -> Vec<serde_json::Value> {
        events
            .iter()
            .filter(|e| e["type"] == kind)
            .cloned()
            .collect()
    };
    let started = of(&first, "step.started");
    assert_eq!(started.len(), 3, "{first:?}");
    assert_eq!(started[1]["name"], "RUN echo hello-from-run");
    assert_eq!(
        (started[1]["index"].as_u64(), started[1]["total"].as_u64()),
        (Some(2), Some(3))
    );
    assert!(
        of(&first, "log")
            .iter()
            .any(|e| e["data"] == "hello-from-run" && e["step"] == "[2/3]"),
        "{first:?}"
    );
    let finished = of(&first, "step.finished");
    assert_eq!(finished.len(), 3, "{first:?}");
    assert_eq!(finished[1]["cached"], false);
    assert!(finished[1]["seconds"].as_f64().is_some());

    // Again, chosen by BUILDKIT_PROGRESS: the RUN is cached now.
    let again = env
        .command(["build", "-t", "ev:1", dir])
        .env("BUILDKIT_PROGRESS", "rawjson")
        .output()
        .expect("run rbuild");
    let again = events(&again);
    assert_eq!(of(&again, "step.finished")[1]["cached"], true, "{again:?}");

    let quiet = env
        .command(["build", "-t", "ev:1", dir])
        .env("RBUILD_PROGRESS", "none")
        .env("BUILDKIT_PROGRESS", "plain")
        .output()
        .expect("run rbuild");
    assert!(
        quiet.status.success() && quiet.stderr.is_empty(),
        "{}",
        describe_output(&quiet)
    );
    let bad = env
        .command(["build", dir])
        .env("RBUILD_PROGRESS", "fancy")
        .output()
        .expect("run rbuild");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && stderr.contains("$RBUILD_PROGRESS=fancy"),
        "{stderr}"
    );

    // A failing step: an errored event, then rbuild's error line.
    let failing = env.context(&[(
        "Dockerfile",
        file("FROM busybox:latest\nRUN echo doomed && false\n"),
    )]);
    let output = env.rbuild([
        "build",
        "--progress=rawjson",
        failing.to_str().expect("utf-8"),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let (json, rest): (Vec<&str>, Vec<&str>) = stderr.lines().partition(|l| l.starts_with('{'));
    assert!(
        rest.iter()
            .all(|l| !l.trim().is_empty() && !l.starts_with('[')),
        "{stderr}"
    );
    assert!(
        json.iter().any(|l| l.contains("\"type\":\"step.errored\"")),
        "{stderr}"
    );
    assert!(
        json.iter().any(|l| l.contains("\"data\":\"doomed\"")),
        "{stderr}"
    );
}

/// `--progress=tty` in a real pty (`script`): a live display redrawn in place (cursor moves),
/// the header with steps done, each step with its time; a failing step's whole output is
/// printed above it, never clipped.
#[test]
fn tty_progress_is_a_live_display_in_a_pty() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    if !require_command("script") {
        return;
    }
    let in_pty = |ctx: &std::path::Path| {
        let command = format!(
            "{} --root {} build --progress=tty {}",
            rbuild_binary().display(),
            env.store().display(),
            ctx.display()
        );
        let output = env
            .command_as_user("script")
            .args(["-qfec", &command, "/dev/null"])
            .env("TERM", "xterm")
            .output()
            .expect("run script");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    let ctx = env.context(&[(
        "Dockerfile",
        file("FROM busybox:latest\nRUN echo building && sleep 0.3\n"),
    )]);
    let (ok, screen) = in_pty(&ctx);
    assert!(ok, "{screen}");
    assert!(
        screen.contains("\u{1b}[") && screen.contains("A\r\u{1b}[J"),
        "redrawn in place: {screen:?}"
    );
    assert!(screen.contains("[+] Building"), "{screen}");
    assert!(
        screen.contains("(2/2)"),
        "the last frame counts both steps: {screen}"
    );
    let last_frame = screen.rsplit("[+] Building").next().unwrap_or_default();
    assert!(
        last_frame.lines().any(
            |l| l.starts_with(" => [2/2] RUN echo building && sleep 0.3")
                && l.trim_end().ends_with('s')
        ),
        "{last_frame:?}"
    );

    let lines: String = (1..=30).map(|i| format!("echo line-{i}; ")).collect();
    let failing = env.context(&[(
        "Dockerfile",
        file(format!("FROM busybox:latest\nRUN {lines}false\n")),
    )]);
    let (ok, screen) = in_pty(&failing);
    assert!(!ok);
    assert!(screen.contains("[2/2] failed; its output:"), "{screen}");
    for i in 1..=30 {
        assert!(
            screen.contains(&format!("line-{i}\r\n")),
            "line-{i} in {screen}"
        );
    }
}
