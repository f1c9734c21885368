//! Foreign-platform builds with no root and no host setup: QEMU registered in rbuild's own
//! binfmt_misc instance (Linux >= 6.7), from an arm64 busybox made by
//! scripts/make-fixture-arm64 (Debian's arm64 busybox-static via apt-get download).

use crate::support::tools::{require_commands, skopeo_inspect_with};
use crate::support::*;

fn arm64_fixture() -> Option<std::path::PathBuf> {
    let path = fixtures_dir()?.join("busybox-arm64-oci.tar");
    gate(
        "the arm64 busybox fixture (scripts/make-fixture-arm64)",
        path.exists(),
    )
    .then_some(path)
}

/// A store with `busybox-arm64:latest` and `busybox-amd64:latest` (also `busybox:latest`), so
/// that `ARG TARGETARCH` + `FROM busybox-${TARGETARCH}:latest` builds for both; None (the
/// test skips, or fails on CI) when a fixture, qemu-aarch64-static or one of `tools` is missing.
fn two_platform_env(tools: &[&str]) -> Option<TestEnv> {
    let arm64 = arm64_fixture()?;
    let amd64 = busybox_oci_archive()?;
    let mut needed = vec!["qemu-aarch64-static"];
    needed.extend_from_slice(tools);
    if !require_commands(&needed) {
        return None;
    }
    let env = TestEnv::new();
    env.rbuild_ok(["load", "-i", arm64.to_str().expect("utf-8")]);
    env.rbuild_ok(["load", "-i", amd64.to_str().expect("utf-8")]);
    env.rbuild_ok(["tag", "busybox:latest", "busybox-amd64:latest"]);
    Some(env)
}

/// ELF e_machine of a file's bytes (0xB7 = aarch64).
fn elf_machine(bytes: &[u8]) -> Option<u16> {
    (bytes.len() > 20 && bytes.starts_with(b"\x7fELF"))
        .then(|| u16::from_le_bytes([bytes[18], bytes[19]]))
}

const DOCKERFILE: &str = "FROM busybox-arm64:latest\nRUN uname -m > /arch && cp /bin/busybox /bb && sh -c 'sh -c \"echo nested > /nested\"'\n";

#[test]
fn arm64_build_runs_under_sandboxed_qemu_as_an_unprivileged_user() {
    let Some(fixture) = arm64_fixture() else {
        return;
    };
    if !require_command("qemu-aarch64-static") {
        return;
    }
    let env = TestEnv::new();
    env.rbuild_ok(["load", "-i", fixture.to_str().expect("utf-8")]);
    let ctx = env.context(&[("Dockerfile", file(DOCKERFILE))]);
    let out = env.path("arm64.tar");
    let output = env.rbuild([
        "build",
        "--platform",
        "linux/arm64",
        "-t",
        "arm:1",
        "-o",
        &format!("type=oci,dest={}", out.display()),
        ctx.to_str().expect("utf-8"),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("linux/arm64 steps run under sandboxed binfmt_misc"),
        "the log names the path: {stderr}"
    );
    let image = OciImage::open(&out);
    assert_eq!(image.config()["architecture"], "arm64");
    assert_eq!(image.tree().text("arch"), "aarch64\n");
    if let Some(bundle) = umoci_unpack(&out) {
        let bb = std::fs::read(bundle.rootfs().join("bb")).expect("read /bb unpacked by umoci");
        assert_eq!(elf_machine(&bb), Some(0xB7), "/bb is an aarch64 ELF");
    }
    assert_eq!(
        image.tree().text("nested"),
        "nested\n",
        "children of emulated processes are emulated too"
    );

    let info = env.rbuild_ok(["info"]);
    assert!(
        info.lines()
            .any(|l| l.starts_with("linux/arm64: sandboxed binfmt_misc")),
        "{info}"
    );

    // No qemu where rbuild may look: the documented error.
    let mut command = env.command([
        "build",
        "--no-cache",
        "--platform",
        "linux/arm64",
        ctx.to_str().expect("utf-8"),
    ]);
    command.env("RBUILD_QEMU_PATH", "/nonexistent");
    let output = command.output().expect("run rbuild");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("qemu-aarch64-static")
            && stderr.contains("apt-get install qemu-user-static"),
        "{stderr}"
    );
}

/// Root uses an identity-mapped user namespace for its binfmt_misc: the host's registrations
/// are the same before and after.
#[test]
fn root_builds_foreign_platforms_without_touching_host_binfmt() {
    if !require_root() || !require_command("qemu-aarch64-static") {
        return;
    }
    let Some(fixture) = arm64_fixture() else {
        return;
    };
    let host = std::path::Path::new("/proc/sys/fs/binfmt_misc");
    let mounted_here = !host.join("status").exists()
        && std::process::Command::new("mount")
            .args(["-t", "binfmt_misc", "binfmt_misc"])
            .arg(host)
            .status()
            .is_ok_and(|s| s.success());
    let entries = || {
        let mut names: Vec<String> = std::fs::read_dir(host)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };
    let before = entries();
    let dir = tempfile::Builder::new()
        .prefix("rbuild-root-arm64.")
        .tempdir_in("/var/tmp")
        .expect("temp dir");
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).expect("mkdir");
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).expect("write");
    let run = |args: &[&str]| {
        std::process::Command::new(rbuild_binary())
            .arg("--root")
            .arg(dir.path().join("store"))
            .args(args)
            .output()
            .expect("run rbuild")
    };
    let loaded = run(&["load", "-i", fixture.to_str().expect("utf-8")]);
    assert!(loaded.status.success(), "{}", describe_output(&loaded));
    let out = dir.path().join("root-arm64.tar");
    let built = run(&[
        "build",
        "--platform",
        "linux/arm64",
        "-o",
        &format!("type=oci,dest={}", out.display()),
        ctx.to_str().expect("utf-8"),
    ]);
    assert!(built.status.success(), "{}", describe_output(&built));
    assert_eq!(OciImage::open(&out).tree().text("arch"), "aarch64\n");
    assert_eq!(
        entries(),
        before,
        "the host's binfmt_misc registrations are untouched"
    );
    let _ = run(&["system", "reset"]);
    if mounted_here {
        let _ = std::process::Command::new("umount").arg(host).status();
    }
}

/// `--platform linux/arm64,linux/amd64`: both built (the arm64 one emulated), written as one
/// OCI image index whose entries carry the platform of their config and the right binaries;
/// `type=local` writes one directory per platform.
#[test]
fn two_platforms_make_one_index_with_the_right_binaries() {
    let Some(env) = two_platform_env(&["skopeo"]) else {
        return;
    };
    let ctx = env.context(&[(
        "Dockerfile",
        file(
            "ARG TARGETARCH\nFROM busybox-${TARGETARCH}:latest\nARG TARGETPLATFORM\n\
             RUN uname -m > /arch && echo $TARGETPLATFORM > /tp && cp /bin/busybox /bb\n",
        ),
    )]);
    let out = env.path("multi.tar");
    let local = env.path("multi-local");
    let output = env.rbuild([
        "build",
        "--platform",
        "linux/arm64,linux/amd64",
        "-o",
        &format!("type=oci,dest={},name=multi:1", out.display()),
        "-o",
        &format!("type=local,dest={}", local.display()),
        ctx.to_str().expect("utf-8"),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("linux/arm64 steps run under sandboxed binfmt_misc"),
        "the log names the emulation path: {stderr}"
    );
    for platform in ["linux/arm64", "linux/amd64"] {
        assert!(
            stderr.contains(&format!("[{platform} 3/3] RUN uname -m")),
            "step headers name the platform: {stderr}"
        );
    }

    let archive_ref = format!("oci-archive:{}:multi:1", out.display());
    let raw = skopeo_inspect_with(&archive_ref, &["--raw"]).expect("skopeo is there");
    assert_eq!(raw["mediaType"], "application/vnd.oci.image.index.v1+json");
    let platforms: Vec<(String, String)> = raw["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| {
            (
                m["platform"]["os"].as_str().unwrap_or_default().to_string(),
                m["platform"]["architecture"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        platforms,
        [
            ("linux".into(), "arm64".into()),
            ("linux".into(), "amd64".into())
        ]
    );

    for (arch, uname, machine) in [("arm64", "aarch64", 0xB7), ("amd64", "x86_64", 0x3E)] {
        // The test's own reader picks the platform from the index...
        let image = OciImage::open_with(&out, Some("multi:1"), Some(&format!("linux/{arch}")));
        assert_eq!(image.config()["architecture"], arch);
        assert_eq!(image.config()["os"], "linux");
        assert_eq!(image.tree().text("arch"), format!("{uname}\n"));
        assert_eq!(image.tree().text("tp"), format!("linux/{arch}\n"));
        assert!(image.tree().contains("bb"), "/bb of linux/{arch}");
        // ...and so does skopeo.
        let skopeo = std::process::Command::new("skopeo")
            .args(["--override-arch", arch, "inspect", "--config", &archive_ref])
            .output()
            .expect("run skopeo");
        assert!(
            skopeo.status.success(),
            "{}",
            String::from_utf8_lossy(&skopeo.stderr)
        );
        let config: serde_json::Value =
            serde_json::from_slice(&skopeo.stdout).expect("skopeo prints the config as JSON");
        assert_eq!(config["architecture"], arch);
        // type=local: linux_arm64/, linux_amd64/
        let dir = local.join(format!("linux_{arch}"));
        let text = std::fs::read_to_string(dir.join("arch")).expect("read arch of local output");
        assert_eq!(text, format!("{uname}\n"));
        assert_dir_matches_tree(&dir, image.tree());
        let bb = std::fs::read(dir.join("bb")).expect("read bb of local output");
        assert_eq!(elf_machine(&bb), Some(machine), "/bb of linux/{arch}");
    }
}

#[test]
fn several_platforms_refuse_outputs_that_hold_one_image() {
    let env = TestEnv::new();
    let ctx = env.context(&[
        ("Dockerfile", file("FROM scratch\nCOPY a /a\n")),
        ("a", file("a")),
    ]);
    for extra in [
        ["-o", "type=docker,dest=x.tar"],
        ["-o", "type=tar,dest=x.tar"],
        ["--load=docker", "-q"],
    ] {
        let mut args = vec!["build", "--platform", "linux/arm64,linux/amd64"];
        args.extend(extra);
        args.push(ctx.to_str().expect("utf-8"));
        let stderr = env.rbuild_err(args);
        assert!(stderr.contains("not supported yet"), "{extra:?}: {stderr}");
        assert!(stderr.contains("--output type=oci"), "{extra:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // Nothing was built: the refusal comes first.
    assert!(env.rbuild_ok(["images", "-q"]).trim().is_empty());
}

/// `-t NAME --push` with two platforms: the store keeps the tag's platform list (shown by
/// `images` and `inspect`, written whole by `save --format oci`), and the registry gets one
/// image index from which skopeo pulls each platform back.
#[test]
fn two_platforms_are_tagged_pushed_and_pulled_back_per_platform() {
    let Some(env) = two_platform_env(&["skopeo"]) else {
        return;
    };
    let Some(registry) = crate::support::registry::Registry::start() else {
        return;
    };
    let ctx = env.context(&[(
        "Dockerfile",
        file("ARG TARGETARCH\nFROM busybox-${TARGETARCH}:latest\nRUN uname -m > /arch\n"),
    )]);
    let target = format!("{}/multi/app:1", registry.host);
    let metadata = env.path("pushed.json");
    env.rbuild_ok([
        "build",
        "-q",
        "--platform",
        "linux/arm64,linux/amd64",
        "-t",
        &target,
        "--push",
        "--metadata-file",
        metadata.to_str().expect("utf-8"),
        ctx.to_str().expect("utf-8"),
    ]);
    // The metadata names the index pushed: the registry serves it by that digest, and each
    // platform's manifest names the base the build resolved for it.
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&metadata).expect("metadata")).expect("json");
    let pushed_digest = meta["containerimage.digest"].as_str().expect("digest");
    let repo = target.trim_end_matches(":1");
    let by_digest = skopeo_inspect_with(
        &format!("docker://{repo}@{pushed_digest}"),
        &["--raw", "--tls-verify=false"],
    )
    .expect("skopeo");
    for entry in by_digest["manifests"].as_array().expect("manifests") {
        let arch = entry["platform"]["architecture"].as_str().expect("arch");
        let digest = entry["digest"].as_str().expect("digest");
        let manifest = skopeo_inspect_with(
            &format!("docker://{repo}@{digest}"),
            &["--raw", "--tls-verify=false"],
        )
        .expect("skopeo");
        assert_eq!(
            manifest["annotations"]["org.opencontainers.image.base.name"],
            format!("busybox-{arch}:latest"),
            "{manifest}"
        );
    }

    // The store: the tag lists both platforms; it names the host's image itself.
    let images = env.rbuild_ok(["images"]);
    assert!(
        images
            .lines()
            .any(|l| l.contains("multi/app") && l.ends_with("linux/arm64,linux/amd64")),
        "{images}"
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&env.rbuild_ok(["inspect", &target])).expect("inspect JSON");
    assert_eq!(inspect[0]["Architecture"], "amd64", "the host's image");
    let platforms: Vec<&str> = inspect[0]["Platforms"]
        .as_array()
        .expect("Platforms")
        .iter()
        .filter_map(|p| p["Platform"].as_str())
        .collect();
    assert_eq!(platforms, ["linux/arm64", "linux/amd64"]);

    // save --format oci writes the whole index.
    let saved = env.path("saved.tar");
    env.rbuild_ok([
        "save",
        "--format",
        "oci",
        "-o",
        saved.to_str().expect("utf-8"),
        &target,
    ]);
    let arm = OciImage::open_with(&saved, None, Some("linux/arm64"));
    assert_eq!(arm.tree().text("arch"), "aarch64\n");

    // The registry: one index, each platform pulled back by skopeo.
    let raw = skopeo_inspect_with(
        &format!("docker://{target}"),
        &["--raw", "--tls-verify=false"],
    )
    .expect("skopeo");
    assert_eq!(raw["mediaType"], "application/vnd.oci.image.index.v1+json");
    let archs: Vec<&str> = raw["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .filter_map(|m| m["platform"]["architecture"].as_str())
        .collect();
    assert_eq!(archs, ["arm64", "amd64"]);
    for (arch, uname) in [("arm64", "aarch64"), ("amd64", "x86_64")] {
        let layout = env.path(&format!("pulled-{arch}"));
        let copy = std::process::Command::new("skopeo")
            .args([
                "--override-arch",
                arch,
                "copy",
                "-q",
                "--src-tls-verify=false",
            ])
            .arg(format!("docker://{target}"))
            .arg(format!("oci:{}:x", layout.display()))
            .output()
            .expect("run skopeo");
        assert!(
            copy.status.success(),
            "{}",
            String::from_utf8_lossy(&copy.stderr)
        );
        let image = OciImage::open(&layout);
        assert_eq!(image.config()["architecture"], arch);
        assert_eq!(image.tree().text("arch"), format!("{uname}\n"));
    }

    // podman picks this host's platform from the index.
    if let Some(run) = crate::support::tools::podman_pull_and_run(&target, &["cat", "/arch"]) {
        assert!(run.status.success(), "{}", describe_output(&run));
        assert_eq!(String::from_utf8_lossy(&run.stdout), "x86_64\n");
    }

    // -o type=registry: the same index, here with zstd layers.
    let zstd_target = format!("{}/multi/zstd:1", registry.host);
    env.rbuild_ok([
        "build",
        "-q",
        "--platform",
        "linux/arm64,linux/amd64",
        "-o",
        &format!("type=registry,name={zstd_target},compression=zstd"),
        ctx.to_str().expect("utf-8"),
    ]);
    let raw = skopeo_inspect_with(
        &format!("docker://{zstd_target}"),
        &["--raw", "--tls-verify=false"],
    )
    .expect("skopeo");
    assert_eq!(raw["manifests"].as_array().map(Vec::len), Some(2), "{raw}");
    // The arm64 entry's manifest: the layer the build made is zstd (the base's keeps its blob).
    let arm_digest = raw["manifests"][0]["digest"].as_str().expect("digest");
    let repo = zstd_target.trim_end_matches(":1");
    let arm = skopeo_inspect_with(
        &format!("docker://{repo}@{arm_digest}"),
        &["--raw", "--tls-verify=false"],
    )
    .expect("skopeo");
    let layer_types: Vec<&str> = arm["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .filter_map(|l| l["mediaType"].as_str())
        .collect();
    assert_eq!(
        layer_types.last().copied(),
        Some("application/vnd.oci.image.layer.v1.tar+zstd"),
        "{arm}"
    );

    // FROM a multi-platform tag takes each platform's own image.
    let child = env.context(&[(
        "Dockerfile",
        file(format!("FROM {target}\nRUN cp /arch /base-arch\n")),
    )]);
    let local = env.path("child");
    env.rbuild_ok([
        "build",
        "-q",
        "--platform",
        "linux/arm64,linux/amd64",
        "-o",
        &format!("type=local,dest={}", local.display()),
        child.to_str().expect("utf-8"),
    ]);
    for (dir, uname) in [("linux_arm64", "aarch64"), ("linux_amd64", "x86_64")] {
        let text = std::fs::read_to_string(local.join(dir).join("base-arch")).expect("base-arch");
        assert_eq!(text, format!("{uname}\n"), "{dir}");
    }

    // `tag` copies the list, and `prune --all` keeps its untagged (arm64) image.
    env.rbuild_ok(["tag", &target, "copy:1"]);
    env.rbuild_ok(["prune", "--all"]);
    let images = env.rbuild_ok(["images"]);
    assert!(
        images
            .lines()
            .any(|l| l.starts_with("copy ") && l.ends_with("linux/arm64,linux/amd64")),
        "{images}"
    );
    let copied = env.path("copied.tar");
    env.rbuild_ok([
        "save",
        "--format",
        "oci",
        "-o",
        copied.to_str().expect("utf-8"),
        "copy:1",
    ]);
    let arm = OciImage::open_with(&copied, None, Some("linux/arm64"));
    assert_eq!(arm.tree().text("arch"), "aarch64\n");
    // A Docker archive holds one platform: the host's, and the user is told.
    let docker = env.path("copied-docker.tar");
    let output = env.rbuild(["save", "-o", docker.to_str().expect("utf-8"), "copy:1"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("holds 2 platforms") && stderr.contains("--format oci"),
        "{stderr}"
    );
    assert_eq!(OciImage::open(&docker).config()["architecture"], "amd64");
    // rmi of an image a multi-platform tag needs keeps it.
    let inspect: serde_json::Value =
        serde_json::from_str(&env.rbuild_ok(["inspect", "copy:1"])).expect("inspect JSON");
    let arm_id = inspect[0]["Platforms"][0]["Id"]
        .as_str()
        .expect("arm64 id")
        .to_string();
    assert!(env.rbuild_ok(["rmi", &arm_id]).contains("Kept:"));
    env.rbuild_ok([
        "save",
        "--format",
        "oci",
        "-o",
        copied.to_str().expect("utf-8"),
        "copy:1",
    ]);
    // Giving the tag to one image ends its list.
    env.rbuild_ok(["tag", "busybox:latest", "copy:1"]);
    let images = env.rbuild_ok(["images"]);
    let copy_line = images
        .lines()
        .find(|l| l.starts_with("copy "))
        .expect("copy:1");
    assert!(copy_line.ends_with(" linux/amd64"), "{images}");

    // Removing the tag ends the list.
    env.rbuild_ok(["rmi", &target]);
    assert!(!env.rbuild_ok(["images"]).contains("multi/app"));
}

/// A tag keeps one image per platform, and a local image of another platform is never used:
/// after a linux/arm64 build from a multi-platform registry image (which pulls its arm64
/// member), a linux/amd64,linux/arm64 build of the same Dockerfile starts each platform from
/// its own image (the amd64 one is pulled), and the index holds both platforms once each.
#[test]
fn a_local_image_of_another_platform_is_never_used_for_a_build() {
    let Some(env) = two_platform_env(&["skopeo"]) else {
        return;
    };
    let Some(registry) = crate::support::registry::Registry::start() else {
        return;
    };
    let base_ctx = env.context(&[(
        "Dockerfile",
        file("ARG TARGETARCH\nFROM busybox-${TARGETARCH}:latest\nRUN uname -m > /arch\n"),
    )]);
    let base = format!("{}/base/multi:1", registry.host);
    env.rbuild_ok([
        "build",
        "-q",
        "--platform",
        "linux/arm64,linux/amd64",
        "-o",
        &format!("type=registry,name={base}"),
        base_ctx.to_str().expect("utf-8"),
    ]);

    // A second store that has never seen the base.
    let user = TestEnv::new();
    let ctx = user.context(&[(
        "Dockerfile",
        file(format!(
            "FROM {base}\nARG TARGETARCH\nRUN cp /arch /base-arch && echo $TARGETARCH > /target\n"
        )),
    )]);
    let arm_only = user.path("arm-only");
    user.rbuild_ok([
        "build",
        "-q",
        "--platform",
        "linux/arm64",
        "-o",
        &format!("type=local,dest={}", arm_only.display()),
        ctx.to_str().expect("utf-8"),
    ]);
    assert_eq!(
        std::fs::read_to_string(arm_only.join("base-arch")).expect("base-arch"),
        "aarch64\n"
    );
    // --pull=never cannot take the arm64 image for amd64: it says so.
    let refused = user.rbuild_err([
        "build",
        "--pull=never",
        "--platform",
        "linux/amd64",
        ctx.to_str().expect("utf-8"),
    ]);
    assert!(
        refused.contains("linux/arm64, not linux/amd64") && refused.contains("rbuild pull"),
        "{refused}"
    );

    let both = user.path("both.tar");
    user.rbuild_ok([
        "build",
        "-q",
        "--platform",
        "linux/amd64,linux/arm64",
        "-o",
        &format!("type=oci,dest={}", both.display()),
        ctx.to_str().expect("utf-8"),
    ]);
    let raw = skopeo_inspect_with(&format!("oci-archive:{}", both.display()), &["--raw"])
        .expect("skopeo");
    let mut archs: Vec<&str> = raw["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .filter_map(|m| m["platform"]["architecture"].as_str())
        .collect();
    archs.sort_unstable();
    assert_eq!(archs, ["amd64", "arm64"], "{raw}");
    for (arch, uname) in [("amd64", "x86_64"), ("arm64", "aarch64")] {
        let image = OciImage::open_with(&both, None, Some(&format!("linux/{arch}")));
        assert_eq!(image.config()["architecture"], arch);
        assert_eq!(
            image.tree().text("base-arch"),
            format!("{uname}\n"),
            "{arch}"
        );
        assert_eq!(image.tree().text("target"), format!("{arch}\n"), "{arch}");
    }
    // The store keeps the base tag's two platforms, the host's image first in line.
    let images = user.rbuild_ok(["images"]);
    let line = images
        .lines()
        .find(|l| l.contains("base/multi"))
        .unwrap_or_else(|| panic!("base/multi listed: {images}"));
    assert!(
        line.contains("linux/arm64") && line.contains("linux/amd64"),
        "{images}"
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&user.rbuild_ok(["inspect", &base])).expect("inspect JSON");
    assert_eq!(inspect[0]["Architecture"], "amd64", "the host's image");
}

/// The cross-compilation idiom: a `FROM --platform=$BUILDPLATFORM` stage runs natively for
/// every target (TARGETARCH says which), and `COPY --from` carries its output into each
/// platform's own stage.
#[test]
fn buildplatform_stage_runs_natively_for_each_target() {
    let Some(env) = two_platform_env(&[]) else {
        return;
    };
    let ctx = env.context(&[(
        "Dockerfile",
        file(
            "FROM --platform=$BUILDPLATFORM busybox:latest AS build\n\
             ARG TARGETARCH\n\
             RUN echo \"built on $(uname -m) for $TARGETARCH\" > /out\n\
             FROM busybox-${TARGETARCH}:latest\n\
             COPY --from=build /out /built\n\
             RUN uname -m > /arch\n",
        ),
    )]);
    let local = env.path("cross");
    env.rbuild_ok([
        "build",
        "-q",
        "--platform",
        "linux/arm64,linux/amd64",
        "-o",
        &format!("type=local,dest={}", local.display()),
        ctx.to_str().expect("utf-8"),
    ]);
    let read = |platform: &str, file: &str| {
        std::fs::read_to_string(local.join(platform).join(file))
            .unwrap_or_else(|e| panic!("{platform}/{file}: {e}"))
    };
    assert_eq!(read("linux_arm64", "built"), "built on x86_64 for arm64\n");
    assert_eq!(read("linux_arm64", "arch"), "aarch64\n");
    assert_eq!(read("linux_amd64", "built"), "built on x86_64 for amd64\n");
    assert_eq!(read("linux_amd64", "arch"), "x86_64\n");
}

/// One Dockerfile, two platforms: it is parsed once (RBUILD_TIMINGS reports the count), its
/// warnings are printed once, and each platform's image names the base the build resolved for
/// it, `ARG TARGETARCH` included (the CLI's own re-expansion missed the predefined args).
#[test]
fn two_platforms_parse_once_warn_once_and_name_their_base() {
    let Some(env) = two_platform_env(&[]) else {
        return;
    };
    let ctx = env.context(&[
        (
            "Dockerfile",
            file(
                "ARG TARGETARCH\n\
                 FROM busybox-${TARGETARCH}:latest\n\
                 MAINTAINER someone\n\
                 COPY f /f\n",
            ),
        ),
        ("f", file("f\n")),
    ]);
    let layout = env.path("two-bases");
    let mut command = env.command([
        "build",
        "--platform",
        "linux/amd64,linux/arm64",
        "-o",
        &format!("type=oci,dest={},tar=false", layout.display()),
        ctx.to_str().expect("utf-8"),
    ]);
    command.env("RBUILD_TIMINGS", "1");
    let output = command.output().expect("run rbuild");
    assert!(output.status.success(), "{}", describe_output(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let parsed: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.split("Dockerfile parsed ").nth(1))
        .collect();
    assert_eq!(parsed, ["1 time(s)", "1 time(s)"], "{stderr}");
    assert_eq!(
        stderr.matches("MaintainerDeprecated").count(),
        1,
        "the warning is said once: {stderr}"
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index.json"))
            .expect("json");
    let index_digest = index["manifests"][0]["digest"].as_str().expect("digest");
    let blob = |digest: &str| -> serde_json::Value {
        let path = layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        serde_json::from_slice(&std::fs::read(path).expect("blob")).expect("json")
    };
    let platform_index = blob(index_digest);
    let manifests = platform_index["manifests"].as_array().expect("manifests");
    assert_eq!(manifests.len(), 2, "{platform_index}");
    for descriptor in manifests {
        let arch = descriptor["platform"]["architecture"]
            .as_str()
            .expect("arch");
        let manifest = blob(descriptor["digest"].as_str().expect("digest"));
        assert_eq!(
            manifest["annotations"]["org.opencontainers.image.base.name"],
            format!("busybox-{arch}:latest"),
            "{manifest}"
        );
    }
}

/// With several platforms, `--iidfile` and `--metadata-file` name the image index the build
/// wrote (as buildx does: the index digest, an index descriptor, no config digest).
#[test]
fn two_platforms_iidfile_and_metadata_name_the_index() {
    let Some(env) = two_platform_env(&[]) else {
        return;
    };
    let ctx = env.context(&[
        (
            "Dockerfile",
            file("ARG TARGETARCH\nFROM busybox-${TARGETARCH}:latest\nCOPY f /f\n"),
        ),
        ("f", file("f\n")),
    ]);
    let layout = env.path("indexed");
    let (iid, metadata) = (env.path("iid"), env.path("meta.json"));
    env.rbuild_ok([
        "build",
        "--platform",
        "linux/amd64,linux/arm64",
        "-t",
        "indexed:1",
        "--iidfile",
        iid.to_str().expect("utf-8"),
        "--metadata-file",
        metadata.to_str().expect("utf-8"),
        "-o",
        &format!("type=oci,dest={},tar=false", layout.display()),
        ctx.to_str().expect("utf-8"),
    ]);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index.json"))
            .expect("json");
    let digest = index["manifests"][0]["digest"].as_str().expect("digest");
    let size = index["manifests"][0]["size"].as_u64().expect("size");
    assert_eq!(std::fs::read_to_string(&iid).expect("iid"), digest);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&metadata).expect("metadata")).expect("json");
    assert_eq!(meta["containerimage.digest"], digest);
    assert_eq!(
        meta["containerimage.descriptor"]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(meta["containerimage.descriptor"]["size"], size);
    assert_eq!(meta["image.name"], "indexed:1");
}

/// With several platforms and no output that writes an index, `--iidfile` and
/// `--metadata-file` still name the image index the build made (the one `-o type=oci` writes
/// for the same images), `--cache-to` exports every platform's steps once (a fresh store that
/// imports it rebuilds both platforms into the same index), and `--check` looks once.
#[test]
fn several_platforms_name_their_index_and_share_one_cache_export() {
    let a = TestEnv::new();
    let b = TestEnv::new();
    let dockerfile = "FROM scratch\nARG TARGETARCH\nCOPY a /a-$TARGETARCH\nLABEL k=v\n";
    let platforms = "linux/arm64,linux/amd64";
    let cache = a.path("cache");
    let ctx_a = a.context(&[("Dockerfile", file(dockerfile)), ("a", file("a"))]);
    let (iid, metadata) = (a.path("iid"), a.path("meta.json"));
    a.rbuild_ok([
        "build",
        "--platform",
        platforms,
        "-t",
        "several:1",
        "--iidfile",
        iid.to_str().expect("utf-8"),
        "--metadata-file",
        metadata.to_str().expect("utf-8"),
        "--cache-to",
        &format!("type=local,dest={},mode=max", cache.display()),
        ctx_a.to_str().expect("utf-8"),
    ]);
    let iid = std::fs::read_to_string(&iid).expect("iid");
    assert!(iid.starts_with("sha256:"), "{iid}");
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&metadata).expect("metadata")).expect("json");
    assert_eq!(meta["containerimage.digest"], iid.as_str());
    assert_eq!(
        meta["containerimage.descriptor"]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(meta["image.name"], "several:1");

    // The same images (every step hits) written as an OCI layout: the index named above.
    let layout = a.path("layout");
    a.rbuild_ok([
        "build",
        "--platform",
        platforms,
        "-o",
        &format!("type=oci,dest={},tar=false", layout.display()),
        ctx_a.to_str().expect("utf-8"),
    ]);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index.json"))
            .expect("json");
    assert_eq!(index["manifests"][0]["digest"], iid.as_str(), "{index}");

    // A fresh store that imports the one cache export gets both platforms' images back, with
    // their timestamps: the same index.
    let ctx_b = b.context(&[("Dockerfile", file(dockerfile)), ("a", file("a"))]);
    let iid_b = b.path("iid");
    let output = b.rbuild([
        "build",
        "--progress",
        "plain",
        "--platform",
        platforms,
        "--iidfile",
        iid_b.to_str().expect("utf-8"),
        "--cache-from",
        &format!("type=local,src={}", cache.display()),
        ctx_b.to_str().expect("utf-8"),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("[linux/arm64 3/4] CACHED"), "{stderr}");
    assert!(stderr.contains("[linux/amd64 3/4] CACHED"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&iid_b).expect("iid"), iid);

    // --check with several platforms: the Dockerfile is looked at once.
    let checked = a.rbuild([
        "build",
        "--check",
        "--platform",
        platforms,
        ctx_a.to_str().expect("utf-8"),
    ]);
    let stderr = String::from_utf8_lossy(&checked.stderr);
    assert!(checked.status.success(), "{stderr}");
    assert_eq!(stderr.matches("Check complete").count(), 1, "{stderr}");
}

/// buildx's annotation targets: `manifest[PLATFORM]:` and `manifest-descriptor[PLATFORM]:`
/// reach only that platform's manifest and index entry; `index-descriptor:` the image index's
/// entry in the layout's index.json.
#[test]
fn annotations_by_platform_and_on_the_index_descriptor() {
    let env = TestEnv::new();
    let ctx = env.context(&[
        ("Dockerfile", file("FROM scratch\nCOPY a /a\n")),
        ("a", file("a")),
    ]);
    let layout = env.path("annotated");
    env.rbuild_ok([
        "build",
        "--platform",
        "linux/arm64,linux/amd64",
        "--annotation",
        "manifest[linux/arm64]:only.arm=yes",
        "--annotation",
        "manifest-descriptor[linux/amd64]:only.amd=yes",
        "--annotation",
        "index-descriptor:on.index.entry=yes",
        "-o",
        &format!("type=oci,dest={},tar=false", layout.display()),
        ctx.to_str().expect("utf-8"),
    ]);
    let read = |path: std::path::PathBuf| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json")
    };
    let blob = |digest: &str| {
        read(
            layout
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
    };
    let top = read(layout.join("index.json"));
    let entry = &top["manifests"][0];
    assert_eq!(entry["annotations"]["on.index.entry"], "yes", "{top}");
    let index = blob(entry["digest"].as_str().expect("digest"));
    for descriptor in index["manifests"].as_array().expect("manifests") {
        let arch = descriptor["platform"]["architecture"]
            .as_str()
            .expect("arch");
        let manifest = blob(descriptor["digest"].as_str().expect("digest"));
        let on_manifest = manifest["annotations"]["only.arm"].as_str();
        let on_descriptor = descriptor["annotations"]["only.amd"].as_str();
        match arch {
            "arm64" => assert_eq!((on_manifest, on_descriptor), (Some("yes"), None)),
            "amd64" => assert_eq!((on_manifest, on_descriptor), (None, Some("yes"))),
            other => panic!("unexpected platform {other}"),
        }
    }
}
