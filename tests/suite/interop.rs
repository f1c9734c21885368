//! Other tools consume what rbuild writes: podman loads and runs the docker-archive, rbuild
//! loads what skopeo and umoci wrote.

use crate::support::*;

#[test]
fn podman_runs_the_built_image() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[
        (
            "Dockerfile",
            file(
                "FROM busybox:latest\n\
                 COPY greeting.txt /srv/greeting.txt\n\
                 RUN rm /data/a && echo built > /srv/built\n\
                 WORKDIR /srv\n\
                 USER app\n\
                 ENV WHO=podman\n\
                 CMD [\"sh\", \"-c\", \"cat greeting.txt built; echo $WHO; pwd; id -u; ls /data\"]\n",
            ),
        ),
        ("greeting.txt", file("hello\n")),
    ]);
    // The build's own OCI output and `rbuild save`'s docker-archive both run.
    let (oci_archive, _) = env.build_oci("interop-oci", &["-t", "interop:1"], &ctx);
    let docker_archive = env.path("interop.tar");
    env.rbuild_ok([
        "save",
        "-o",
        docker_archive.to_str().expect("utf-8"),
        "interop:1",
    ]);
    for archive in [&oci_archive, &docker_archive] {
        let Some(output) = podman_load_and_run(archive, &[]) else {
            return;
        };
        assert!(
            output.status.success(),
            "{}: {}",
            archive.display(),
            describe_output(&output)
        );
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "hello\nbuilt\npodman\n/srv\n1000\nb\nsub\n",
            "{}",
            archive.display()
        );
    }
}

#[test]
fn xattrs_survive_and_overlay_metadata_never_leaks() {
    let env = TestEnv::new();
    let Some(busybox) = busybox_oci_archive() else {
        return;
    };
    env.rbuild_ok(["load", "-i", busybox.to_str().expect("utf-8")]);
    // A base whose file carries a user xattr and a file capability (cap_net_raw+ep, v2).
    let capability: [u8; 20] = [
        0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    ImageBuilder::new()
        .tag("xattrs:1")
        .gzip_layer(&[
            TarEntry::dir("opt"),
            TarEntry::file("opt/tool", "tool\n")
                .mode(0o755)
                .xattr("user.origin", "base")
                .xattr("security.capability", capability),
        ])
        .write_oci_archive(&env.path("xattrs-base.tar"));
    env.rbuild_ok([
        "load",
        "-i",
        env.path("xattrs-base.tar").to_str().expect("utf-8"),
    ]);
    let ctx = env.context(&[
        ("busybox", file(std::fs::read("/bin/busybox").unwrap_or_default())),
        (
            "Dockerfile",
            file("FROM xattrs:1\nCOPY --chmod=0755 busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox chmod 0750 /opt/tool && /bin/busybox rm -rf /opt && /bin/busybox mkdir /opt\"]\n"),
        ),
    ]);
    let chmod_only = env.context(&[
        ("busybox", file(std::fs::read("/bin/busybox").unwrap_or_default())),
        (
            "Dockerfile",
            file("FROM xattrs:1\nCOPY --chmod=0755 busybox /bin/busybox\nRUN [\"/bin/busybox\", \"chmod\", \"0750\", \"/opt/tool\"]\n"),
        ),
    ]);
    let (_, image) = env.build_oci("xattrs-chmod", &[], &chmod_only);
    let top = image.layer(image.layer_count() - 1);
    let tool = top
        .get("opt/tool")
        .expect("the chmod copied opt/tool up into the new layer");
    assert_eq!(tool.mode, 0o750);
    assert_eq!(
        tool.xattrs.get("user.origin").map(Vec::as_slice),
        Some(&b"base"[..]),
        "{:?}",
        tool.xattrs
    );
    assert!(
        tool.xattrs.contains_key("security.capability"),
        "{:?}",
        tool.xattrs
    );
    assert!(
        tool.xattrs.keys().all(|k| !k.contains("overlay")),
        "{:?}",
        tool.xattrs
    );
    // Removing and recreating the dir: an opaque marker, no overlay xattr in the tar.
    let (_, image) = env.build_oci("xattrs-opaque", &[], &ctx);
    let top = image.layer(image.layer_count() - 1);
    assert_eq!(top.opaque_dirs(), vec!["opt".to_string()]);
    assert!(!image.tree().contains("opt/tool"));
}

#[test]
fn images_written_by_skopeo_and_umoci_load_in_every_format() {
    let env = TestEnv::new();
    let (Some(oci), Some(docker), Some(layout)) = (
        busybox_oci_archive(),
        busybox_docker_archive(),
        busybox_layout_dir(),
    ) else {
        return;
    };
    for (source, expect_tag) in [(&oci, true), (&docker, true), (&layout, false)] {
        let stdout = env.rbuild_ok(["load", "-i", source.to_str().expect("utf-8")]);
        if expect_tag {
            assert!(
                stdout.contains("busybox:latest"),
                "{}: {stdout}",
                source.display()
            );
        } else {
            assert!(stdout.contains("sha256:"), "{}: {stdout}", source.display());
        }
    }
    // The same image whatever the container format: one image id.
    let ids = env.rbuild_ok(["images", "-q"]);
    assert_eq!(ids.lines().count(), 1, "{ids}");
    let ctx = env.context(&[(
        "Dockerfile",
        file("FROM busybox:latest\nRUN ls /bin/busybox > /ok\n"),
    )]);
    let (out, _) = env.build_oci("loaded", &[], &ctx);
    assert_eq!(OciImage::open(&out).tree().text("ok"), "/bin/busybox\n");
}

#[test]
fn hostile_layers_are_refused_and_write_nothing_outside_the_store() {
    let env = TestEnv::new();
    let evil = ImageBuilder::new()
        .tag("evil:1")
        .layer(&[
            TarEntry::symlink("escape", "/"),
            TarEntry::file("escape/tmp/rbuild-owned", "x"),
        ])
        .write_oci_archive(&env.path("evil.tar"));
    let _ = evil;
    let output = env.rbuild(["load", "-i", env.path("evil.tar").to_str().expect("utf-8")]);
    assert!(
        !std::path::Path::new("/tmp/rbuild-owned").exists(),
        "a layer wrote through a symlink to the host"
    );
    if output.status.success() {
        let ctx = env.context(&[("Dockerfile", file("FROM evil:1\n"))]);
        let out = env.path("evil-out.tar");
        env.rbuild_ok([
            "build",
            "-o",
            &format!("type=oci,dest={}", out.display()),
            ctx.to_str().expect("utf-8"),
        ]);
        let tree = OciImage::open(&out).tree().clone();
        assert!(
            tree.get("escape/tmp/rbuild-owned").is_some() || tree.get("tmp/rbuild-owned").is_some()
        );
    }
    let dotdot = ImageBuilder::new()
        .tag("dotdot:1")
        .raw_layer(raw_tar_with_name("../../outside", b"x"), Compression::None);
    dotdot.write_oci_archive(&env.path("dotdot.tar"));
    let stderr = env.rbuild_err([
        "load",
        "-i",
        env.path("dotdot.tar").to_str().expect("utf-8"),
    ]);
    assert!(
        stderr.contains("outside") || stderr.contains(".."),
        "{stderr}"
    );
    let whiteout_dev = ImageBuilder::new()
        .tag("dev:1")
        .layer(&[TarEntry::char_dev("fake-whiteout", 0, 0)])
        .write_oci_archive(&env.path("dev.tar"));
    let _ = whiteout_dev;
    let stderr = env.rbuild_err(["load", "-i", env.path("dev.tar").to_str().expect("utf-8")]);
    assert!(stderr.contains("fake-whiteout"), "{stderr}");
}

/// A one-file tar whose name is written raw, bypassing the tar crate's `..` guard.
fn raw_tar_with_name(name: &str, content: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_ustar();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut bytes = header.as_bytes().to_vec();
    bytes.extend_from_slice(content);
    bytes.resize(bytes.len().div_ceil(512) * 512, 0);
    bytes.extend_from_slice(&[0u8; 1024]);
    bytes
}
