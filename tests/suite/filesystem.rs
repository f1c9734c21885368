//! What RUN and COPY leave in the image's file tree, read back from the exported OCI archive
//! by the test's own reader (and cross-checked with umoci): whiteouts, opaque dirs, links,
//! modes, owners, odd names. rbuild runs as an unprivileged user throughout.

use crate::support::*;

fn export(env: &TestEnv, ctx: &std::path::Path, name: &str) -> OciImage {
    env.build_oci(name, &["-t", name], ctx).1
}

#[test]
fn run_changes_and_deletes_base_files() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[(
        "Dockerfile",
        file(
            "FROM busybox:latest\n\
             RUN echo added > /added && echo changed > /data/b && rm /data/a\n",
        ),
    )]);
    let image = export(&env, &ctx, "fs-change");
    let tree = image.tree();
    assert_eq!(tree.text("added"), "added\n");
    assert_eq!(tree.text("data/b"), "changed\n");
    assert!(
        !tree.contains("data/a"),
        "data/a must be deleted by a whiteout"
    );
    let top = image.layer(image.layer_count() - 1);
    assert!(
        top.deleted_paths().contains(&"data/a".to_string()),
        "top layer whiteouts: {:?}",
        top.deleted_paths()
    );
    assert!(
        !top.paths().iter().any(|p| p.starts_with("etc")),
        "no mount stubs leak into the layer: {:?}",
        top.paths()
    );
}

#[test]
fn removed_and_recreated_directory_is_opaque() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[(
        "Dockerfile",
        file("FROM busybox:latest\nRUN rm -rf /data/sub && mkdir /data/sub && echo fresh > /data/sub/new\n"),
    )]);
    let image = export(&env, &ctx, "fs-opaque");
    let tree = image.tree();
    assert_eq!(tree.children("data/sub"), vec!["new".to_string()]);
    assert_eq!(tree.text("data/sub/new"), "fresh\n");
    let top = image.layer(image.layer_count() - 1);
    assert_eq!(top.opaque_dirs(), vec!["data/sub".to_string()]);
}

#[test]
fn links_modes_empty_dirs_and_odd_names() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[(
        "Dockerfile",
        file(
            "FROM busybox:latest\n\
             RUN mkdir -p /t/empty && echo x > /t/orig && ln /t/orig /t/hard && ln -s orig /t/soft \\\n\
              && ln -s /nowhere /t/dangling && cp /bin/busybox /t/suid && chmod 4755 /t/suid \\\n\
              && chmod 2711 /t/empty && echo s > '/t/with space' && echo u > '/t/ünïcødé ✓' \\\n\
              && mkdir /t/sticky && chmod 1777 /t/sticky\n",
        ),
    )]);
    let image = export(&env, &ctx, "fs-links");
    let tree = image.tree();
    assert!(tree.node("t/empty").is_dir());
    assert_eq!(tree.node("t/empty").mode, 0o2711);
    assert!(tree.children("t/empty").is_empty());
    assert_eq!(tree.text("t/hard"), "x\n");
    let top = image.layer(image.layer_count() - 1);
    let hard = top.get("t/hard").expect("t/hard in the layer");
    let orig = top.get("t/orig").expect("t/orig in the layer");
    let linked = matches!(&hard.kind, NodeKind::Hardlink(target) if target == "t/orig")
        || matches!(&orig.kind, NodeKind::Hardlink(target) if target == "t/hard");
    assert!(
        linked,
        "t/hard and t/orig are one inode: {:?} / {:?}",
        hard.kind, orig.kind
    );
    assert_eq!(tree.node("t/soft").symlink_target(), Some("orig"));
    assert_eq!(tree.node("t/dangling").symlink_target(), Some("/nowhere"));
    assert_eq!(tree.node("t/suid").mode, 0o4755);
    assert_eq!(tree.node("t/sticky").mode, 0o1777);
    assert_eq!(tree.text("t/with space"), "s\n");
    assert_eq!(tree.text("t/ünïcødé ✓"), "u\n");
    if let Some(bundle) = umoci_unpack(&env.path("fs-links.tar")) {
        use std::os::unix::fs::MetadataExt;
        let rootfs = bundle.rootfs();
        let meta = std::fs::metadata(rootfs.join("t/suid")).expect("umoci unpacked t/suid");
        assert_eq!(meta.mode() & 0o7777, 0o4755);
        assert_eq!(
            std::fs::read_to_string(rootfs.join("t/ünïcødé ✓")).expect("unicode name"),
            "u\n"
        );
        let orig = std::fs::metadata(rootfs.join("t/orig")).expect("t/orig");
        let hard = std::fs::metadata(rootfs.join("t/hard")).expect("t/hard");
        assert_eq!(orig.ino(), hard.ino(), "umoci sees one inode");
    }
}

#[test]
fn files_owned_by_a_user_from_run_and_copy_chown() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[
        (
            "Dockerfile",
            file(
                "FROM busybox:latest\n\
                 COPY --chown=1000:1000 owned.txt /srv/owned.txt\n\
                 COPY --chown=app:extra owned.txt /srv/by-name.txt\n\
                 USER app\n\
                 RUN echo mine > /home/app/mine && id > /home/app/id\n",
            ),
        ),
        ("owned.txt", file("data\n")),
    ]);
    let image = export(&env, &ctx, "fs-owner");
    let tree = image.tree();
    assert_eq!(tree.node("srv/owned.txt").owner(), (1000, 1000));
    assert_eq!(tree.node("srv/by-name.txt").owner(), (1000, 2000));
    assert_eq!(
        tree.node("srv").owner(),
        (1000, 1000),
        "created parents belong to the --chown owner"
    );
    assert_eq!(tree.node("home/app/mine").owner(), (1000, 1000));
    let id = tree.text("home/app/id");
    assert!(
        id.starts_with("uid=1000(app) gid=1000(app)"),
        "id as USER app: {id}"
    );
    assert!(
        id.contains("2000(extra)"),
        "supplementary group from /etc/group: {id}"
    );
}

#[test]
fn copy_rules_dirs_wildcards_trailing_slash_workdir_dockerignore() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[
        (
            "Dockerfile",
            file(
                "FROM busybox:latest\n\
                 WORKDIR /w\n\
                 COPY dir /copied-dir\n\
                 COPY a.txt b.txt /two/\n\
                 COPY *.md docs/\n\
                 COPY a.txt renamed.txt\n\
                 COPY --chmod=0600 a.txt /modes/a\n\
                 COPY link-to-a /followed\n\
                 COPY dir/ /contents/\n",
            ),
        ),
        ("a.txt", file_mode("A\n", 0o640)),
        ("b.txt", file("B\n")),
        ("x.md", file("X\n")),
        ("y.md", file("Y\n")),
        ("ignored.log", file("nope\n")),
        ("dir/inner.txt", file("I\n")),
        ("dir/sub/deep.txt", file("D\n")),
        ("dir/skip.log", file("nope\n")),
        ("dir/keep.log", file("kept\n")),
        ("dir/rel-link", symlink_to("inner.txt")),
        ("link-to-a", symlink_to("a.txt")),
        (".dockerignore", file("**/*.log\n!dir/keep.log\n")),
    ]);
    let image = export(&env, &ctx, "fs-copy");
    let tree = image.tree();
    assert_eq!(tree.text("copied-dir/inner.txt"), "I\n");
    assert_eq!(tree.text("copied-dir/sub/deep.txt"), "D\n");
    assert!(
        !tree.contains("copied-dir/dir"),
        "a directory source copies its contents"
    );
    assert!(
        !tree.contains("copied-dir/skip.log"),
        ".dockerignore excludes **/*.log"
    );
    assert_eq!(tree.text("copied-dir/keep.log"), "kept\n", "! re-includes");
    assert_eq!(
        tree.node("copied-dir/rel-link").symlink_target(),
        Some("inner.txt"),
        "inner symlinks are kept"
    );
    assert_eq!(tree.text("two/a.txt"), "A\n");
    assert_eq!(tree.text("two/b.txt"), "B\n");
    assert_eq!(
        tree.text("w/docs/x.md"),
        "X\n",
        "relative dest is under WORKDIR"
    );
    assert_eq!(tree.text("w/docs/y.md"), "Y\n");
    assert_eq!(tree.text("w/renamed.txt"), "A\n");
    assert_eq!(tree.node("w/renamed.txt").mode, 0o640, "source mode kept");
    assert_eq!(
        tree.node("w/renamed.txt").owner(),
        (0, 0),
        "COPY without --chown gives root"
    );
    assert_eq!(tree.node("modes/a").mode, 0o600);
    assert!(
        tree.node("followed").is_file(),
        "a top-level symlink source is followed"
    );
    assert_eq!(tree.text("followed"), "A\n");
    assert_eq!(tree.text("contents/inner.txt"), "I\n");
    assert!(tree.node("w").is_dir());
    assert!(!tree.paths().any(|p| p.ends_with("ignored.log")));
}

#[test]
fn copy_errors_name_the_line_and_the_problem() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let cases = [
        (
            "FROM busybox:latest\nCOPY missing.txt /x\n",
            "missing.txt",
            2,
        ),
        // `..` stops at the context's root (as BuildKit cleans it): the context's `outside`,
        // which is not there, never the host's.
        (
            "FROM busybox:latest\nCOPY ../outside /x\n",
            "\"/outside\": not found in the build context",
            2,
        ),
        (
            "FROM busybox:latest\nCOPY --chmod=999 a.txt /x\n",
            "invalid chmod",
            2,
        ),
        (
            "FROM busybox:latest\nCOPY --from=127.0.0.1:1/none/such a.txt /x\n",
            "cannot pull",
            2,
        ),
    ];
    for (dockerfile, expected, line) in cases {
        let ctx = env.context(&[
            ("Dockerfile", file(dockerfile)),
            ("a.txt", file("A")),
            ("b.txt", file("B")),
        ]);
        let stderr = env.rbuild_err(["build", ctx.to_str().expect("utf-8")]);
        assert!(
            stderr.contains(expected),
            "{dockerfile:?}: expected {expected:?} in:\n{stderr}"
        );
        assert!(
            stderr.contains(&format!("Dockerfile:{line}:")),
            "{dockerfile:?}: expected line {line} in:\n{stderr}"
        );
    }
}
