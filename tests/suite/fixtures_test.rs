//! Tests of the test harness itself: the fixtures read as scripts/make-fixtures promises, the
//! independent OCI reader applies whiteouts and rejects broken layers, the sandbox is unprivileged.

use std::fs;
use std::os::unix::fs::MetadataExt;

use serde_json::json;

use crate::support::{
    busybox_docker_archive, busybox_layout_dir, busybox_oci_archive, file_mode, gate, hardlink_to,
    is_root, podman_load_and_run, podman_load_and_run_with, skopeo_inspect, symlink_to,
    umoci_unpack, Compression, ImageBuilder, NodeKind, OciImage, TarEntry, TestEnv,
};

fn assert_busybox_tree(image: &OciImage) {
    let tree = image.tree();
    assert!(tree.node("bin/busybox").is_file());
    assert_eq!(tree.node("bin/busybox").mode, 0o755);
    for applet in [
        "sh", "ls", "cat", "echo", "id", "whoami", "find", "sed", "[", "sort", "dd",
    ] {
        assert_eq!(
            tree.node(&format!("bin/{applet}")).symlink_target(),
            Some("busybox"),
            "bin/{applet}"
        );
    }
    assert!(tree.text("etc/passwd").contains("app:x:1000:1000:"));
    assert!(tree.text("etc/group").contains("extra:x:2000:app"));
    assert_eq!(tree.node("tmp").mode, 0o1777);
    assert_eq!(tree.node("root").mode, 0o700);
    assert_eq!(tree.node("home/app").owner(), (1000, 1000));
    assert_eq!(tree.text("/data/a"), "a\n");
    assert_eq!(tree.text("data/sub/c"), "c\n");
    assert_eq!(image.runtime_config()["Cmd"], json!(["sh"]));
    assert_eq!(
        image.runtime_config()["Env"],
        json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
    );
    assert_eq!(image.layer_count(), 1);
    assert_eq!(image.history().len(), 1);
}

#[test]
fn busybox_oci_archive_reads_as_made() {
    let Some(archive) = busybox_oci_archive() else {
        return;
    };
    let image = OciImage::open(&archive);
    assert_busybox_tree(&image);
    assert_eq!(image.ref_names(), ["busybox:latest"]);
    assert_eq!(image.layer(0).compression, Compression::Gzip);
    let same = OciImage::open_ref(&archive, "busybox:latest");
    assert_eq!(same.config_digest, image.config_digest);
}

#[test]
fn busybox_docker_archive_holds_the_same_image() {
    let (Some(docker), Some(oci)) = (busybox_docker_archive(), busybox_oci_archive()) else {
        return;
    };
    let docker_image = OciImage::open(&docker);
    assert_busybox_tree(&docker_image);
    assert_eq!(docker_image.ref_names(), ["busybox:latest"]);
    let oci_image = OciImage::open(&oci);
    assert_eq!(docker_image.diff_ids(), oci_image.diff_ids());
    assert_eq!(docker_image.tree, oci_image.tree);
}

#[test]
fn busybox_layout_dir_holds_the_same_manifest() {
    let (Some(layout), Some(oci)) = (busybox_layout_dir(), busybox_oci_archive()) else {
        return;
    };
    let layout_image = OciImage::open(&layout);
    assert_busybox_tree(&layout_image);
    assert_eq!(layout_image.ref_names(), ["latest"]);
    assert_eq!(
        layout_image.manifest_digest,
        OciImage::open(&oci).manifest_digest
    );
}

#[test]
fn skopeo_reads_the_busybox_archive() {
    let Some(archive) = busybox_oci_archive() else {
        return;
    };
    let Some(inspect) = skopeo_inspect(&format!("oci-archive:{}", archive.display())) else {
        return;
    };
    assert_eq!(inspect["Os"], "linux");
    assert_eq!(inspect["Layers"].as_array().map(Vec::len), Some(1));
}

#[test]
fn reader_applies_whiteouts_opaque_dirs_and_replacements() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    ImageBuilder::new()
        .gzip_layer(&[
            TarEntry::dir("keep"),
            TarEntry::file("keep/x", "x"),
            TarEntry::dir("gone"),
            TarEntry::file("gone/inner", "i"),
            TarEntry::dir("opq"),
            TarEntry::file("opq/old", "o"),
            TarEntry::dir("opq/olddir"),
            TarEntry::file("opq/olddir/deep", "d"),
            TarEntry::dir("becomes-file"),
            TarEntry::file("becomes-file/child", "c"),
            TarEntry::file("plain", "p"),
        ])
        .layer(&[
            TarEntry::whiteout("gone"),
            TarEntry::whiteout("plain"),
            TarEntry::dir("opq").mode(0o700),
            TarEntry::opaque("opq"),
            TarEntry::file("opq/new", "n"),
            TarEntry::file("becomes-file", "now a file").owner(1000, 1000),
            TarEntry::file("keep/y", "y").xattr("user.note", "hi"),
            TarEntry::hardlink("keep/y-link", "keep/y"),
            TarEntry::symlink("abs", "/etc/passwd"),
            TarEntry::fifo("pipe"),
        ])
        .write_layout(&layout);
    let image = OciImage::open(&layout);
    let tree = image.tree();
    assert_eq!(tree.text("keep/x"), "x");
    assert!(!tree.contains("gone") && !tree.contains("gone/inner"));
    assert!(!tree.contains("plain"));
    assert_eq!(tree.children("opq"), ["new"]);
    assert_eq!(tree.node("opq").mode, 0o700);
    assert_eq!(tree.text("becomes-file"), "now a file");
    assert!(!tree.contains("becomes-file/child"));
    assert_eq!(tree.node("becomes-file").owner(), (1000, 1000));
    assert_eq!(
        tree.node("keep/y")
            .xattrs
            .get("user.note")
            .map(Vec::as_slice),
        Some(&b"hi"[..])
    );
    assert_eq!(
        tree.node("keep/y-link").kind,
        NodeKind::Hardlink("keep/y".to_string())
    );
    assert_eq!(tree.text("keep/y-link"), "y");
    assert_eq!(tree.node("abs").symlink_target(), Some("/etc/passwd"));
    assert_eq!(tree.node("pipe").kind, NodeKind::Fifo);
    assert_eq!(image.layer(0).compression, Compression::Gzip);
    assert_eq!(image.layer(1).compression, Compression::None);
    assert_eq!(image.layer(1).deleted_paths(), ["gone", "plain"]);
    assert_eq!(image.layer(1).opaque_dirs(), ["opq"]);
}

fn open_single_layer(entries: &[TarEntry]) -> OciImage {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("image.tar");
    ImageBuilder::new()
        .layer(entries)
        .write_oci_archive(&archive);
    OciImage::open(&archive)
}

#[test]
#[should_panic(expected = "holds `a` twice")]
fn reader_rejects_a_path_twice_in_one_layer() {
    open_single_layer(&[TarEntry::file("a", "1"), TarEntry::file("./a", "2")]);
}

#[test]
#[should_panic(expected = "0/0 character device")]
fn reader_rejects_an_unconverted_overlay_whiteout() {
    open_single_layer(&[TarEntry::char_dev("a", 0, 0)]);
}

#[test]
#[should_panic(expected = "overlay xattr")]
fn reader_rejects_overlay_xattrs() {
    open_single_layer(&[TarEntry::dir("d").xattr("user.overlay.opaque", "y")]);
}

#[test]
#[should_panic(expected = "which the same layer deletes")]
fn reader_rejects_a_whiteout_under_a_deleted_path() {
    open_single_layer(&[TarEntry::whiteout("d"), TarEntry::whiteout("d/e")]);
}

#[test]
#[should_panic(expected = "does not point to an earlier entry")]
fn reader_rejects_a_hardlink_to_a_later_entry() {
    open_single_layer(&[TarEntry::hardlink("a", "b"), TarEntry::file("b", "b")]);
}

#[test]
#[should_panic(expected = "differs from the manifest digest")]
fn reader_rejects_a_corrupted_blob() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    ImageBuilder::new()
        .layer(&[TarEntry::file("a", "1")])
        .write_layout(&layout);
    let image = OciImage::open(&layout);
    let blob = layout
        .join("blobs/sha256")
        .join(image.layer(0).blob_digest.trim_start_matches("sha256:"));
    let mut bytes = fs::read(&blob).unwrap();
    // Flip one byte of the file's content (after the 512-byte header).
    bytes[512] ^= 1;
    fs::write(&blob, bytes).unwrap();
    OciImage::open(&layout);
}

#[test]
fn crafted_image_on_busybox_reads_with_other_tools() {
    let Some(layout) = busybox_layout_dir() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("crafted.tar");
    ImageBuilder::from_layout(&layout, "latest")
        .tag("crafted:1")
        .layer(&[
            TarEntry::whiteout("data/a"),
            TarEntry::file("hello", "hi\n").mode(0o600),
        ])
        .config_field("Cmd", json!(["cat", "/hello"]))
        .write_oci_archive(&archive);
    let image = OciImage::open_ref(&archive, "crafted:1");
    assert_eq!(image.layer_count(), 2);
    assert!(image.tree().contains("bin/busybox"));
    assert!(!image.tree().contains("data/a"));
    assert_eq!(image.tree().node("hello").mode, 0o600);
    if let Some(inspect) = skopeo_inspect(&format!("oci-archive:{}", archive.display())) {
        assert_eq!(inspect["Layers"].as_array().map(Vec::len), Some(2));
    }
}

#[test]
fn umoci_unpacks_the_busybox_archive() {
    let Some(archive) = busybox_oci_archive() else {
        return;
    };
    let Some(bundle) = umoci_unpack(&archive) else {
        return;
    };
    let rootfs = bundle.rootfs();
    assert!(rootfs.join("bin/busybox").is_file());
    assert_eq!(
        fs::read_to_string(rootfs.join("data/sub/c")).unwrap(),
        "c\n"
    );
    if is_root() {
        assert_eq!(fs::metadata(rootfs.join("home/app")).unwrap().uid(), 1000);
    }
    assert_eq!(bundle.runtime_spec()["process"]["args"], json!(["sh"]));
}

#[test]
fn podman_runs_the_busybox_fixture() {
    let (Some(docker), Some(oci)) = (busybox_docker_archive(), busybox_oci_archive()) else {
        return;
    };
    let Some(output) = podman_load_and_run(&docker, &["echo", "hi"]) else {
        return;
    };
    assert!(
        output.status.success(),
        "{}",
        crate::support::describe_output(&output)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), "hi\n");
    let Some(output) = podman_load_and_run_with(&oci, &["--user", "app"], &["id"]) else {
        return;
    };
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "uid=1000(app) gid=1000(app) groups=1000(app),2000(extra)\n",
        "{}",
        crate::support::describe_output(&output)
    );
}

#[test]
fn sandbox_commands_run_unprivileged_and_own_the_context() {
    let env = TestEnv::new();
    let ctx = env.context(&[
        ("Dockerfile", crate::support::file("FROM busybox\n")),
        ("bin/tool", file_mode("#!/bin/sh\n", 0o4755)),
        ("link", symlink_to("Dockerfile")),
        ("same", hardlink_to("Dockerfile")),
        ("private/secret", file_mode("s", 0o600)),
    ]);
    let output = env
        .command_as_user("sh")
        .args(["-c", "id -u; cat private/secret"])
        .current_dir(&ctx)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        crate::support::describe_output(&output)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let uid: u32 = stdout.lines().next().unwrap().parse().unwrap();
    assert_ne!(uid, 0);
    assert!(stdout.ends_with('s'));
    for path in ["Dockerfile", "bin", "bin/tool", "private/secret"] {
        assert_eq!(
            fs::symlink_metadata(ctx.join(path)).unwrap().uid(),
            uid,
            "{path}"
        );
    }
    assert_eq!(
        fs::metadata(ctx.join("bin/tool")).unwrap().mode() & 0o7777,
        0o4755
    );
    assert_eq!(
        fs::metadata(ctx.join("same")).unwrap().ino(),
        fs::metadata(ctx.join("Dockerfile")).unwrap().ino()
    );
    assert_eq!(fs::metadata(env.store()).unwrap().uid(), uid);
    let sandbox = env.dir().to_path_buf();
    drop(env);
    assert!(!sandbox.exists(), "the sandbox outlived its TestEnv");
}

#[test]
fn gate_passes_what_is_available() {
    assert!(gate("always there", true));
}
