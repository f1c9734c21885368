//! The walk snapshotter (where overlayfs cannot be mounted): the same Dockerfile built over
//! overlayfs and with `RBUILD_SNAPSHOTTER=walk` gives an image with the same files, modes,
//! owners, link targets and config.

use std::collections::BTreeMap;

use crate::support::*;

/// What two builds must agree on: each path's type and content (or link target), mode and
/// owner; times differ between builds.
fn files(image: &OciImage) -> BTreeMap<String, (String, u32, (u64, u64))> {
    let tree = image.tree();
    tree.nodes
        .iter()
        .map(|(path, node)| {
            let what = match &node.kind {
                NodeKind::File { sha256, size, .. } => format!("file {size} {sha256}"),
                other => format!("{other:?}"),
            };
            (path.clone(), (what, node.mode, node.owner()))
        })
        .collect()
}

/// The config without the times of the build that made it.
fn config_of(image: &OciImage) -> serde_json::Value {
    let mut config = image.config().clone();
    config["created"] = serde_json::Value::Null;
    for entry in config["history"].as_array_mut().into_iter().flatten() {
        entry["created"] = serde_json::Value::Null;
    }
    config["rootfs"] = serde_json::Value::Null;
    config
}

#[test]
fn the_walk_snapshotter_builds_the_image_overlayfs_builds() {
    let Some(overlay) = TestEnv::with_busybox() else {
        return;
    };
    let Some(walk) = TestEnv::with_busybox() else {
        return;
    };
    let dockerfile = "FROM busybox:latest AS tools\n\
        RUN mkdir -p /out/bin && echo tool > /out/bin/t && chmod 750 /out/bin/t\n\
        FROM busybox:latest\n\
        RUN echo one > /one && mkdir -p /d/sub && echo x > /d/sub/x && rm -rf /tmp && mkdir /tmp\n\
        COPY --chown=1000:1000 ctx.txt /app/ctx.txt\n\
        RUN rm /one && rm -rf /d/sub && ln -s /app/ctx.txt /link && ln /app/ctx.txt /hard \
            && chmod 600 /app/ctx.txt && chown 2:3 /hard && rm -rf /etc/network\n\
        COPY --from=tools /out/ /opt/\n\
        WORKDIR /work/dir\n\
        RUN --mount=type=cache,target=/c echo cached > /c/f && cp /c/f ./copied && mkfifo pipe\n\
        RUN --mount=type=bind,from=tools,source=/out,target=/in cat /in/bin/t > /from-bind\n\
        ENV K=v\n";
    let build = |env: &TestEnv, walk: bool| {
        let ctx = env.context(&[
            ("Dockerfile", file(dockerfile)),
            ("ctx.txt", file("from the context\n")),
        ]);
        let out = env.path("image.tar");
        let mut command = env.command([
            "build",
            "--progress",
            "plain",
            "-o",
            &format!("type=oci,dest={}", out.display()),
            ctx.to_str().expect("utf-8"),
        ]);
        if walk {
            command.env("RBUILD_SNAPSHOTTER", "walk");
        }
        let output = command.output().expect("run rbuild");
        assert!(output.status.success(), "{}", describe_output(&output));
        (
            OciImage::open(&out),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (by_overlay, overlay_log) = build(&overlay, false);
    let (by_walk, walk_log) = build(&walk, true);
    assert!(!overlay_log.contains("walking"), "{overlay_log}");
    assert_eq!(
        walk_log.matches("layers are found by walking").count(),
        1,
        "the walk snapshotter is said once: {walk_log}"
    );
    let (a, b) = (files(&by_overlay), files(&by_walk));
    let differ: Vec<_> = a
        .iter()
        .filter(|(path, node)| b.get(*path) != Some(*node))
        .map(|(path, node)| format!("{path}: overlay {node:?}, walk {:?}", b.get(path)))
        .chain(
            b.keys()
                .filter(|path| !a.contains_key(*path))
                .map(|path| format!("{path}: only in the walk image")),
        )
        .collect();
    assert!(differ.is_empty(), "{}", differ.join("\n"));
    assert_eq!(config_of(&by_overlay), config_of(&by_walk));
    // The things the steps did are there (not two images equally wrong).
    let tree = by_walk.tree();
    assert!(!tree.contains("one") && !tree.contains("d/sub") && tree.contains("d"));
    assert!(!tree.contains("etc/network"));
    assert_eq!(tree.node("link").symlink_target(), Some("/app/ctx.txt"));
    assert_eq!(tree.node("app/ctx.txt").mode, 0o600);
    assert_eq!(tree.text("work/dir/copied"), "cached\n");
    assert_eq!(tree.text("opt/bin/t"), "tool\n");
    assert_eq!(
        tree.text("from-bind"),
        "tool\n",
        "a bind mount of another stage"
    );
    assert_eq!(tree.node("opt/bin/t").mode, 0o750);
}

/// An overlayfs mount the harness (root) makes for a test, unmounted when dropped.
struct OverlayMount {
    mountpoint: std::path::PathBuf,
}

impl Drop for OverlayMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.mountpoint)
            .status();
    }
}

/// With the store on overlayfs (a container's own root, without a volume), overlay cannot be
/// mounted over it and layer dirs there would lose their whiteouts: the build stops before
/// any step with a message that names the way out, instead of writing wrong images.
#[test]
fn a_store_on_overlayfs_is_refused_with_the_way_out() {
    if !require_root() {
        return;
    }
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let base = env.path("ovl");
    for dir in ["lower", "upper", "work", "mnt"] {
        std::fs::create_dir_all(base.join(dir)).expect("overlay dirs");
    }
    let mounted = std::process::Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!(
            "lowerdir={},upperdir={},workdir={}",
            base.join("lower").display(),
            base.join("upper").display(),
            base.join("work").display()
        ))
        .arg(base.join("mnt"))
        .status()
        .expect("run mount");
    assert!(mounted.success(), "mount overlay for the test");
    let _guard = OverlayMount {
        mountpoint: base.join("mnt"),
    };
    run_ok(
        std::process::Command::new("chown")
            .arg("rbuild-test:")
            .arg(base.join("mnt")),
    );
    let store = base.join("mnt/store");
    let ctx = env.context(&[("Dockerfile", file("FROM scratch\nCOPY Dockerfile /\n"))]);
    let output = env
        .command_as_user(rbuild_binary().to_str().expect("utf-8"))
        .arg("--root")
        .arg(&store)
        .args(["build", ctx.to_str().expect("utf-8")])
        .output()
        .expect("run rbuild");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot hold layers") && stderr.contains("--root DIR"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
