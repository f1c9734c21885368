//! `--output` types, `--load`, `--metadata-file`, annotations, media types, compression and
//! reproducible images, each read back by a tool other than rbuild.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::Value;

use crate::support::oci::{read_tar_tree, sha256_digest};
use crate::support::*;

const APP_DOCKERFILE: &str = "FROM busybox:latest\n\
     RUN mkdir -p /app/sub && echo hi > /app/a && ln /app/a /app/hard && ln -s /etc /app/link \
     && chmod 4755 /app/a && mkfifo /app/pipe && rm /data/a\n\
     COPY f.txt /app/sub/f.txt\n\
     WORKDIR /app\n\
     CMD [\"cat\", \"/app/a\", \"/app/sub/f.txt\"]\n";

fn app_context(env: &TestEnv) -> std::path::PathBuf {
    env.context(&[
        ("Dockerfile", file(APP_DOCKERFILE)),
        ("f.txt", file_mode("from the context\n", 0o640)),
    ])
}

fn text(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

#[test]
fn every_output_type_is_read_back_by_another_tool() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = app_context(&env);
    let oci = env.path("out-oci.tar");
    let layout = env.path("out-layout");
    let docker = env.path("out-docker.tar");
    let local = env.path("out-local");
    let fs_tar = env.path("out-fs.tar");
    env.rbuild_ok([
        "build",
        "-q",
        "-t",
        "outputs:1",
        "-o",
        &format!("type=oci,dest={}", text(&oci)),
        "-o",
        &format!("type=oci,dest={},tar=false", text(&layout)),
        "--output",
        &format!("type=docker,dest={}", text(&docker)),
        "-o",
        text(&local),
        "-o",
        &format!("type=tar,dest={}", text(&fs_tar)),
        text(&ctx),
    ]);

    // The test's own reader: the archive, the layout dir and the docker-archive agree.
    let image = OciImage::open(&oci);
    assert_eq!(image.ref_names(), ["outputs:1"]);
    let from_layout = OciImage::open(&layout);
    assert_eq!(from_layout.manifest_digest, image.manifest_digest);
    let from_docker = OciImage::open(&docker);
    assert_eq!(from_docker.ref_names(), ["outputs:1"]);
    assert_eq!(from_docker.config_digest, image.config_digest);
    assert_eq!(image.tree().text("app/sub/f.txt"), "from the context\n");

    // The local output is the image's filesystem; so is the tar output.
    assert_dir_matches_tree(&local, image.tree());
    let mut tar_file = fs::File::open(&fs_tar).expect("open the tar output");
    let from_tar = read_tar_tree("tar output", &mut tar_file);
    for (path, node) in &image.tree().nodes {
        if path.is_empty() {
            continue;
        }
        let other = from_tar
            .get(path)
            .unwrap_or_else(|| panic!("{path} missing in the tar output"));
        assert_eq!(other.mode, node.mode, "{path}: mode in the tar output");
        if let NodeKind::File { sha256, .. } = &node.kind {
            match &other.kind {
                NodeKind::File { sha256: s, .. } => assert_eq!(&s, &sha256, "{path}"),
                NodeKind::Hardlink(_) => {}
                kind => panic!("{path} is a {kind:?} in the tar output"),
            }
        }
    }
    assert_eq!(
        from_tar.paths().filter(|p| !p.is_empty()).count(),
        image.tree().paths().filter(|p| !p.is_empty()).count()
    );

    // skopeo reads both archive kinds: base, RUN, COPY and WORKDIR (an existing dir still
    // makes a layer, an empty one, as BuildKit commits WORKDIR).
    if let Some(inspected) = tools::skopeo_inspect(&format!("oci-archive:{}", text(&oci))) {
        assert_eq!(inspected["Layers"].as_array().map(Vec::len), Some(4));
        let inspected = tools::skopeo_inspect(&format!("docker-archive:{}", text(&docker)))
            .expect("skopeo is there");
        assert_eq!(inspected["Layers"].as_array().map(Vec::len), Some(4));
    }
    // umoci unpacks the OCI archive and the layout dir.
    for oci_image in [&oci, &layout] {
        if let Some(bundle) = tools::umoci_unpack(oci_image) {
            let rootfs = bundle.rootfs();
            assert_eq!(
                fs::read_to_string(rootfs.join("app/a")).expect("app/a"),
                "hi\n"
            );
            assert_eq!(
                fs::read_link(rootfs.join("app/link")).expect("link"),
                Path::new("/etc")
            );
        }
    }
    // podman loads and runs the docker-archive.
    if let Some(output) = tools::podman_load_and_run(&docker, &[]) {
        assert!(output.status.success(), "{}", describe_output(&output));
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "hi\nfrom the context\n"
        );
    }
}

#[test]
fn tar_to_stdout_and_local_dir_shorthands() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = app_context(&env);
    let output = env.rbuild(["build", "-q", "-o", "-", text(&ctx)]);
    assert!(output.status.success(), "{}", describe_output(&output));
    let tree = read_tar_tree("stdout", &mut &output.stdout[..]);
    assert_eq!(tree.text("app/sub/f.txt"), "from the context\n");
    assert!(!tree.contains("data/a"), "deleted files stay deleted");
    assert_eq!(tree.node("app/a").mode, 0o4755);

    // `type=oci,dest=-`: the OCI archive itself on stdout.
    let output = env.rbuild([
        "build",
        "-q",
        "-t",
        "piped:1",
        "-o",
        "type=oci,dest=-",
        text(&ctx),
    ]);
    assert!(output.status.success(), "{}", describe_output(&output));
    let piped = env.path("piped.tar");
    fs::write(&piped, &output.stdout).expect("write piped archive");
    let image = OciImage::open(&piped);
    assert_eq!(image.ref_names(), ["piped:1"]);
    assert_eq!(image.tree().text("app/sub/f.txt"), "from the context\n");
}

#[test]
fn local_output_never_writes_through_a_symlink_in_dest() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = app_context(&env);
    // A destination prepared by someone else: `app` points outside it.
    let outside = env.write_tree("outside", &[("keep", file("untouched\n"))]);
    let dest = env.write_tree(
        "dest",
        &[
            ("app", symlink_to(text(&outside))),
            ("etc", symlink_to("/")),
        ],
    );
    env.rbuild_ok([
        "build",
        "-q",
        "-o",
        &format!("type=local,dest={}", text(&dest)),
        text(&ctx),
    ]);
    assert!(fs::symlink_metadata(dest.join("app"))
        .expect("app")
        .is_dir());
    assert!(fs::symlink_metadata(dest.join("etc"))
        .expect("etc")
        .is_dir());
    assert_eq!(
        fs::read_to_string(dest.join("app/a")).expect("app/a"),
        "hi\n"
    );
    let outside_names: Vec<_> = fs::read_dir(&outside)
        .expect("outside")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(outside_names, ["keep"], "nothing was written outside dest");
}

/// `type=image` names the image in the store, `type=registry` (or push=true) also pushes it;
/// checked against a registry on loopback with skopeo.
#[test]
fn image_and_registry_outputs() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = app_context(&env);
    env.rbuild_ok([
        "build",
        "-q",
        "-o",
        "type=image,name=named/app:2",
        text(&ctx),
    ]);
    let inspect: Value =
        serde_json::from_str(&env.rbuild_ok(["inspect", "named/app:2"])).expect("inspect");
    assert!(inspect[0]["Id"]
        .as_str()
        .is_some_and(|id| id.starts_with("sha256:")));
    let stderr = env.rbuild_err(["build", "-o", "type=registry", text(&ctx)]);
    assert!(stderr.contains("missing name="), "{stderr}");
    let stderr = env.rbuild_err(["build", "-o", "type=oci", text(&ctx)]);
    assert!(stderr.contains("missing dest="), "{stderr}");
    let stderr = env.rbuild_err(["build", "-o", "type=oci,dest=x,compression=lz4", text(&ctx)]);
    assert!(stderr.contains("compression=lz4"), "{stderr}");
    let Some(registry) = crate::support::registry::Registry::start() else {
        return;
    };
    // zstd output pushed and read back by skopeo, with zstd media types.
    let zstd_target = format!("{}/outputs/zstd:1", registry.host);
    env.rbuild_ok([
        "build",
        "-q",
        "-o",
        &format!("type=registry,name={zstd_target},compression=zstd"),
        text(&ctx),
    ]);
    let raw = tools::skopeo_inspect_with(
        &format!("docker://{zstd_target}"),
        &["--tls-verify=false", "--raw"],
    )
    .expect("skopeo --raw");
    let layers = raw["layers"].as_array().cloned().unwrap_or_default();
    assert!(
        layers
            .iter()
            .skip(1)
            .all(|l| l["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd"),
        "{raw}"
    );
    let copied = env.path("zstd-copy");
    let copy = std::process::Command::new("skopeo")
        .args([
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{zstd_target}"),
            &format!("oci:{}:x", copied.display()),
        ])
        .output()
        .expect("skopeo copy");
    assert!(copy.status.success(), "{}", describe_output(&copy));
    let pulled = OciImage::open_ref(&copied, "x");
    assert_eq!(pulled.tree().text("app/a"), "hi\n");
    let target = format!("{}/outputs/app:1", registry.host);
    env.rbuild_ok([
        "build",
        "-q",
        "-o",
        &format!("type=registry,name={target}"),
        text(&ctx),
    ]);
    let pushed = tools::skopeo_inspect_with(&format!("docker://{target}"), &["--tls-verify=false"])
        .expect("skopeo reads the pushed image");
    assert!(
        pushed["Layers"].as_array().is_some_and(|l| l.len() >= 2),
        "{pushed}"
    );
}

#[test]
fn metadata_file_annotations_and_oci_annotations() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = app_context(&env);
    let layout = env.path("annotated");
    let metadata = env.path("metadata.json");
    env.rbuild_ok([
        "build",
        "-q",
        "-t",
        "annotated:1",
        "--annotation",
        "org.example.team=builders",
        "--annotation",
        "index:org.example.index=yes",
        "--annotation",
        "manifest-descriptor:org.example.desc=yes",
        "--build-arg",
        "SOURCE_DATE_EPOCH=1700000000",
        "--metadata-file",
        text(&metadata),
        "-o",
        &format!("type=oci,dest={},tar=false", text(&layout)),
        text(&ctx),
    ]);
    let image = OciImage::open(&layout);
    let annotations = &image.manifest["annotations"];
    assert_eq!(annotations["org.example.team"], "builders");
    assert_eq!(
        annotations["org.opencontainers.image.created"],
        "2023-11-14T22:13:20Z"
    );
    assert_eq!(
        annotations["org.opencontainers.image.base.name"],
        "busybox:latest"
    );
    assert_eq!(image.index["annotations"]["org.example.index"], "yes");
    let descriptor = &image.index["manifests"][0];
    assert_eq!(descriptor["annotations"]["org.example.desc"], "yes");
    assert_eq!(
        descriptor["annotations"]["org.opencontainers.image.ref.name"],
        "annotated:1"
    );
    // SOURCE_DATE_EPOCH sets `created` of the config and of every new history entry.
    assert_eq!(image.config()["created"], "2023-11-14T22:13:20Z");
    let history = image.history();
    for entry in &history[history.len() - 3..] {
        assert_eq!(entry["created"], "2023-11-14T22:13:20Z", "{entry}");
    }

    let metadata: Value =
        serde_json::from_slice(&fs::read(&metadata).expect("metadata file")).expect("JSON");
    let manifest_digest = image.manifest_digest.clone().expect("OCI manifest digest");
    assert_eq!(metadata["containerimage.digest"], manifest_digest.as_str());
    assert_eq!(
        metadata["containerimage.config.digest"],
        image.config_digest.as_str()
    );
    assert_eq!(
        metadata["containerimage.descriptor"]["digest"],
        manifest_digest.as_str()
    );
    assert_eq!(
        metadata["containerimage.descriptor"]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(metadata["image.name"], "annotated:1");
}

#[test]
fn docker_media_types_and_zstd_layers() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = app_context(&env);
    let docker_types = env.path("docker-types.tar");
    let zstd = env.path("zstd.tar");
    let plain = env.path("plain");
    env.rbuild_ok([
        "build",
        "-q",
        "-t",
        "types:1",
        "-o",
        &format!("type=oci,dest={},oci-mediatypes=false", text(&docker_types)),
        "-o",
        &format!(
            "type=oci,dest={},compression=zstd,compression-level=9",
            text(&zstd)
        ),
        "-o",
        &format!(
            "type=oci,dest={},tar=false,compression=uncompressed",
            text(&plain)
        ),
        text(&ctx),
    ]);
    let docker_image = OciImage::open(&docker_types);
    assert_eq!(
        docker_image.manifest["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        docker_image.manifest["config"]["mediaType"],
        "application/vnd.docker.container.image.v1+json"
    );
    for layer in docker_image.manifest["layers"].as_array().expect("layers") {
        assert_eq!(
            layer["mediaType"],
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        );
    }
    let plain_image = OciImage::open(&plain);
    for layer in plain_image.manifest["layers"].as_array().expect("layers") {
        assert_eq!(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar");
    }
    assert_eq!(plain_image.config_digest, docker_image.config_digest);

    // zstd: our reader (through the zstd tool) and skopeo read it back, base layer included.
    if require_command("zstd") {
        let zstd_image = OciImage::open(&zstd);
        for layer in zstd_image.manifest["layers"].as_array().expect("layers") {
            assert_eq!(
                layer["mediaType"],
                "application/vnd.oci.image.layer.v1.tar+zstd"
            );
        }
        assert_eq!(zstd_image.diff_ids(), plain_image.diff_ids());
        assert_eq!(zstd_image.tree().text("app/a"), "hi\n");
    }
    if require_command("skopeo") {
        let copied = env.path("skopeo-copy");
        // As root, as tools::skopeo_inspect: rootless skopeo cannot chown while untarring.
        let mut copy = std::process::Command::new("skopeo");
        copy.arg("copy")
            .arg(format!("oci-archive:{}", text(&zstd)))
            .arg(format!("oci:{}:copied", text(&copied)));
        run_ok(&mut copy);
        let copied_image = OciImage::open(&copied);
        assert_eq!(copied_image.diff_ids(), plain_image.diff_ids());
    }
    // rbuild loads its own zstd archive; an image built on it keeps the zstd base blobs as
    // they are, unless Docker media types force gzip.
    let other = TestEnv::new();
    other.rbuild_ok(["load", "-i", text(&zstd)]);
    if require_command("zstd") {
        let zstd_base = OciImage::open(&zstd);
        let on_zstd = other.context(&[("Dockerfile", file("FROM types:1\nRUN echo on > /on\n"))]);
        let kept = other.path("kept.tar");
        let regzipped = other.path("regzipped.tar");
        other.rbuild_ok([
            "build",
            "-q",
            "-o",
            &format!("type=oci,dest={}", text(&kept)),
            "-o",
            &format!("type=oci,dest={},oci-mediatypes=false", text(&regzipped)),
            text(&on_zstd),
        ]);
        let kept = OciImage::open(&kept);
        for i in 0..3 {
            assert_eq!(kept.manifest["layers"][i], zstd_base.manifest["layers"][i]);
        }
        let regzipped = OciImage::open(&regzipped);
        for layer in regzipped.manifest["layers"].as_array().expect("layers") {
            assert_eq!(
                layer["mediaType"],
                "application/vnd.docker.image.rootfs.diff.tar.gzip"
            );
        }
        assert_eq!(regzipped.diff_ids(), kept.diff_ids());
        assert_eq!(regzipped.tree().text("on"), "on\n");
    }

    let stderr = env.rbuild_err([
        "build",
        "-o",
        &format!(
            "type=oci,dest={},compression=zstd,oci-mediatypes=false",
            text(&zstd)
        ),
        text(&ctx),
    ]);
    assert!(
        stderr.contains("zstd layers need OCI media types"),
        "{stderr}"
    );
}

/// A tar that ADD extracts, the same bytes in every round.
fn bundle_tar() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(7);
    header.set_mode(0o644);
    header.set_mtime(1_700_000_000);
    header.set_entry_type(tar::EntryType::Regular);
    builder
        .append_data(&mut header, "inside.txt", &b"bundled"[..])
        .expect("append");
    builder.into_inner().expect("tar")
}

/// The same multi-stage Dockerfile (RUN, COPY, ADD, COPY --from) built in two fresh stores,
/// with context files of different mtimes (both newer than the epoch), gives byte-identical
/// images.
#[test]
fn reproducible_builds_give_identical_digests() {
    let mut digests = Vec::new();
    let mut archives = Vec::new();
    for (round, mtime) in [(1, "2031-01-01 00:00"), (2, "2032-06-01 12:00")] {
        let Some(env) = TestEnv::with_busybox() else {
            return;
        };
        let ctx = env.context(&[
            (
                "Dockerfile",
                file(
                    "FROM busybox:latest AS builder\n\
                     RUN echo from-builder > /artifact\n\
                     FROM busybox:latest\n\
                     RUN mkdir /out && echo built > /out/built && touch /out/stamp\n\
                     COPY src/ /out/src/\n\
                     ADD bundle.tar /out/bundle/\n\
                     COPY --from=builder /artifact /out/artifact\n\
                     WORKDIR /work\n\
                     RUN cp -a /out/src /work/copy && ls /out > /work/listing\n\
                     ENV DONE=1\n",
                ),
            ),
            ("bundle.tar", file(bundle_tar())),
            ("src/one.txt", file("one\n")),
            ("src/two/three.txt", file_mode("three\n", 0o600)),
        ]);
        let mut touch = env.command_as_user("touch");
        touch
            .args(["-h", "-d", mtime])
            .arg(ctx.join("src/one.txt"))
            .arg(ctx.join("src/two/three.txt"))
            .arg(ctx.join("src/two"))
            .arg(ctx.join("src"));
        run_ok(&mut touch);
        let archive = env.path("repro.tar");
        let metadata = env.path("repro.json");
        let mut command = env.command([
            "build",
            "-q",
            "--metadata-file",
            text(&metadata),
            "-o",
            &format!("type=oci,dest={},rewrite-timestamp=true", text(&archive)),
            text(&ctx),
        ]);
        command.env("SOURCE_DATE_EPOCH", "1700000000");
        let output = command.output().expect("run rbuild");
        assert!(
            output.status.success(),
            "round {round}: {}",
            describe_output(&output)
        );
        let metadata: Value =
            serde_json::from_slice(&fs::read(&metadata).expect("metadata")).expect("JSON");
        digests.push(
            metadata["containerimage.digest"]
                .as_str()
                .map(str::to_string),
        );
        let image = OciImage::open(&archive);
        assert_eq!(image.tree().text("out/bundle/inside.txt"), "bundled");
        assert_eq!(image.tree().text("out/artifact"), "from-builder\n");
        for path in [
            "out/src/one.txt",
            "out/built",
            "out/artifact",
            "work/copy/two/three.txt",
            "work",
        ] {
            assert!(
                image.tree().node(path).mtime <= 1_700_000_000,
                "{path} is clamped to the epoch"
            );
        }
        archives.push(fs::read(&archive).expect("read archive"));
    }
    assert!(digests[0].is_some());
    assert_eq!(
        digests[0], digests[1],
        "same manifest digest from two stores"
    );
    assert!(archives[0] == archives[1], "byte-identical archives");
}

#[test]
fn reproducible_flag_picks_epoch_zero() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    // FROM through a global ARG: the base is still recognised, and its layers kept.
    let ctx = env.context(&[(
        "Dockerfile",
        file(
            "ARG BASE=busybox\nFROM ${BASE}:latest\nARG SOURCE_DATE_EPOCH\n\
             RUN mkdir /app && echo hi > /app/a && echo \"epoch=$SOURCE_DATE_EPOCH\" > /app/epoch\n",
        ),
    )]);
    let (_, image) = env.build_oci("zero", &["--reproducible"], &ctx);
    assert_eq!(image.config()["created"], "1970-01-01T00:00:00Z");
    assert_eq!(image.tree().node("app/a").mtime, 0);
    assert_eq!(
        image.tree().text("app/epoch"),
        "epoch=0\n",
        "ARG SOURCE_DATE_EPOCH sees it"
    );
    // The base's files keep their own times, and its blob is the one it came with.
    assert_ne!(image.tree().node("bin").mtime, 0);
    let base = OciImage::open(&busybox_oci_archive().expect("fixture"));
    assert_eq!(image.manifest["layers"][0], base.manifest["layers"][0]);
    assert_eq!(
        image.manifest["annotations"]["org.opencontainers.image.base.name"],
        "busybox:latest"
    );
    assert_eq!(
        image.manifest["annotations"]["org.opencontainers.image.base.digest"],
        base.manifest_digest
            .clone()
            .expect("the fixture's manifest digest")
            .as_str(),
        "the digest of the manifest busybox was loaded with"
    );
}

#[test]
fn load_hands_the_image_to_podman() {
    if !require_command("podman") || !require_command("runc") {
        return;
    }
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = app_context(&env);
    let tag = format!("rbuild-load-test-{}:1", std::process::id());
    env.rbuild_ok(["build", "-q", "--load=podman", "-t", &tag, text(&ctx)]);
    let mut run = env.command_as_user("podman");
    run.args([
        "run",
        "--rm",
        "--runtime",
        "runc",
        "--cgroup-manager",
        "cgroupfs",
        "--network",
        "none",
        "--ulimit",
        "host",
        &tag,
    ]);
    let output = run.output().expect("run podman");
    let mut remove = env.command_as_user("podman");
    remove.args(["rmi", "--force", &tag]);
    let _ = remove.output();
    assert!(output.status.success(), "{}", describe_output(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "hi\nfrom the context\n"
    );
    // A failed build stops the loader it started and fails at once.
    let failing = env.context(&[("Dockerfile", file("FROM busybox:latest\nRUN false\n"))]);
    let stderr = env.rbuild_err(["build", "--load=podman", text(&failing)]);
    assert!(stderr.contains("did not complete successfully"), "{stderr}");
    let stderr = env.rbuild_err(["build", "--load=nerdctl", text(&ctx)]);
    assert!(stderr.contains("expected podman or docker"), "{stderr}");
}

/// A docker-archive in the legacy layout (`docker save` < 25: `ID/layer.tar`, `ID.json`,
/// manifest.json, repositories), made by hand, loads; so does the result of saving it again.
#[test]
fn legacy_docker_archive_loads_and_saves_back() {
    let env = TestEnv::new();
    let layer = layer_tar(&[
        TarEntry::dir("etc"),
        TarEntry::file("etc/legacy", "from a legacy archive\n"),
    ]);
    let diff_id = sha256_digest(&layer);
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "hand made"}],
    });
    let config_bytes = serde_json::to_vec(&config).expect("config JSON");
    let config_hex = sha256_digest(&config_bytes)
        .trim_start_matches("sha256:")
        .to_string();
    let layer_id = "4f2ab3c47bd1d0c7d6d7e0cb18e8b3a5b2e95b7d5c53ae1e8f7b3b8a36f2d9c1";
    let manifest = serde_json::json!([{
        "Config": format!("{config_hex}.json"),
        "RepoTags": ["legacy:1"],
        "Layers": [format!("{layer_id}/layer.tar")],
    }]);
    let repositories = serde_json::json!({"legacy": {"1": layer_id}});
    let archive = env.path("legacy.tar");
    {
        let mut builder = tar::Builder::new(fs::File::create(&archive).expect("create archive"));
        let mut add = |name: &str, bytes: &[u8]| {
            let mut header = tar::Header::new_ustar();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            builder
                .append_data(&mut header, name, bytes)
                .expect("append member");
        };
        add(&format!("{layer_id}/VERSION"), b"1.0");
        add(&format!("{layer_id}/json"), b"{}");
        add(&format!("{layer_id}/layer.tar"), &layer);
        add(&format!("{config_hex}.json"), &config_bytes);
        add("manifest.json", manifest.to_string().as_bytes());
        add("repositories", repositories.to_string().as_bytes());
        builder.finish().expect("finish archive");
    }
    fs::set_permissions(&archive, fs::Permissions::from_mode(0o644)).expect("chmod");
    let loaded = env.rbuild_ok(["load", "-i", text(&archive)]);
    assert!(loaded.contains("Loaded image: legacy:1"), "{loaded}");
    for format in ["oci", "docker"] {
        let saved = env.path(&format!("legacy-{format}.tar"));
        env.rbuild_ok(["save", "--format", format, "-o", text(&saved), "legacy:1"]);
        let image = OciImage::open(&saved);
        assert_eq!(image.diff_ids(), std::slice::from_ref(&diff_id), "{format}");
        assert_eq!(image.tree().text("etc/legacy"), "from a legacy archive\n");
        let skopeo_ref = match format {
            "oci" => format!("oci-archive:{}", text(&saved)),
            _ => format!("docker-archive:{}", text(&saved)),
        };
        if let Some(inspected) = tools::skopeo_inspect(&skopeo_ref) {
            assert_eq!(inspected["Layers"].as_array().map(Vec::len), Some(1));
        }
    }
    // The loaded layer (an uncompressed blob) recompressed on request.
    let zstd = env.path("legacy-zstd.tar");
    env.rbuild_ok([
        "save",
        "--format",
        "oci",
        "--compression",
        "zstd",
        "-o",
        text(&zstd),
        "legacy:1",
    ]);
    if let Some(raw) =
        tools::skopeo_inspect_with(&format!("oci-archive:{}", text(&zstd)), &["--raw"])
    {
        assert_eq!(
            raw["layers"][0]["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
    }
    if require_command("zstd") {
        let image = OciImage::open(&zstd);
        assert_eq!(image.diff_ids(), std::slice::from_ref(&diff_id));
    }
}

/// Output archives are created as any file a command writes (0666 less the umask), not with a
/// temp file's 0600: a later CI step running as another user can read them.
#[test]
fn output_archives_follow_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[("Dockerfile", file("FROM busybox:latest\nENV A=1\n"))]);
    for (kind, name) in [
        ("oci", "out-oci.tar"),
        ("docker", "out-docker.tar"),
        ("tar", "out-fs.tar"),
    ] {
        let out = env.path(name);
        let mut command = env.command([
            "build",
            "-q",
            "-o",
            &format!("type={kind},dest={}", out.display()),
            ctx.to_str().expect("utf-8"),
        ]);
        // SAFETY: umask(2) in the child between fork and exec touches no shared state.
        unsafe {
            command.pre_exec(|| {
                libc::umask(0o022);
                Ok(())
            });
        }
        let output = command.output().expect("run rbuild");
        assert!(output.status.success(), "{}", describe_output(&output));
        let mode = std::fs::metadata(&out).expect(name).permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "{kind}: {mode:o}");
    }
}
