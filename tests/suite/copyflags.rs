//! COPY flags beyond the basics, mirroring BuildKit's dockerfile_test.go (testCopyChmod,
//! testCopyLink..., testCopyParents, testCopyExclude) and reference.md "COPY --link",
//! "COPY --parents", "COPY --exclude".
//!
//! COPY as BuildKit's frontend/dockerfile/dockerfile_test.go tests it and reference.md "COPY"
//! documents it: wildcards, destinations, overwrites, symlinks, --chown, --chmod, variables.

use crate::support::*;

#[test]
fn copy_link_layer_holds_only_its_files_and_survives_a_base_change() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let entries = |base_change: &str| {
        vec![
            ("Dockerfile", file(format!("FROM busybox:latest\nRUN echo {base_change} > /base\nCOPY --link app.txt /opt/app/app.txt\n"))),
            ("app.txt", file("app\n")),
        ]
    };
    let first = env.context(&entries("one"));
    let (_, image) = env.build_oci("link-1", &[], &first);
    let top = image.layer(image.layer_count() - 1);
    let mut paths = top.paths();
    paths.sort();
    assert_eq!(
        paths,
        vec!["opt", "opt/app", "opt/app/app.txt"],
        "only the linked files and their dirs"
    );
    assert_eq!(image.tree().text("opt/app/app.txt"), "app\n");
    let link_layer = image.diff_ids().last().cloned();

    // The layer below changes: the --link step still hits the cache and reuses its layer.
    let second = env.context(&entries("two"));
    let output = env.rbuild([
        "build",
        "--progress",
        "plain",
        second.to_str().expect("utf-8"),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("[3/3] CACHED"), "{stderr}");
    let (_, image) = env.build_oci("link-2", &[], &second);
    assert_eq!(image.diff_ids().last().cloned(), link_layer);
    assert_eq!(image.tree().text("base"), "two\n");
}

#[test]
fn copy_parents_keeps_source_paths_and_pivots() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[
        ("Dockerfile", file("FROM busybox:latest\nCOPY --parents a/b/file.txt c/d /kept/\nCOPY --parents ./src/./lib/x.txt /pivot/\nCOPY --parents ./x/./y /dir-pivot/\nCOPY --parents x/./y/* /glob-pivot/\n")),
        ("x/y/f", file("f\n")),
        ("a/b/file.txt", file("ab\n")),
        ("c/d/inner.txt", file("cd\n")),
        ("src/lib/x.txt", file("x\n")),
    ]);
    let (_, image) = env.build_oci("parents", &[], &ctx);
    let tree = image.tree();
    assert_eq!(tree.text("kept/a/b/file.txt"), "ab\n");
    assert_eq!(tree.text("kept/c/d/inner.txt"), "cd\n");
    assert_eq!(
        tree.text("pivot/lib/x.txt"),
        "x\n",
        "the path below /./ is kept"
    );
    assert!(!tree.contains("pivot/src"));
    // A directory after the pivot keeps its own name, not the levels above the pivot.
    assert_eq!(tree.text("dir-pivot/y/f"), "f\n");
    assert!(!tree.contains("dir-pivot/x"));
    assert_eq!(tree.text("glob-pivot/y/f"), "f\n");
}

#[test]
fn copy_exclude_patterns() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[
        (
            "Dockerfile",
            file("FROM busybox:latest\nCOPY --exclude=*.log --exclude=tmp dir /out/\n"),
        ),
        ("dir/keep.txt", file("k\n")),
        ("dir/drop.log", file("d\n")),
        ("dir/sub/also.log", file("d\n")),
        ("dir/tmp/x", file("t\n")),
    ]);
    let (_, image) = env.build_oci("exclude", &[], &ctx);
    let tree = image.tree();
    assert_eq!(tree.text("out/keep.txt"), "k\n");
    assert!(!tree.contains("out/drop.log"));
    assert!(!tree.contains("out/tmp/x") && !tree.contains("out/tmp"));
    assert!(tree.contains("out/sub"));
}

#[test]
fn copy_chmod_symbolic_and_octal() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[
        (
            "Dockerfile",
            file("FROM busybox:latest\nCOPY --chmod=u+x,g-r f /sym\nCOPY --chmod=a+X d /dirs/\nCOPY --chmod=0600 f /oct\n"),
        ),
        ("f", file_mode("f\n", 0o644)),
        ("d/inner", file_mode("i\n", 0o644)),
    ]);
    let (_, image) = env.build_oci("chmod", &[], &ctx);
    let tree = image.tree();
    assert_eq!(tree.node("sym").mode, 0o704);
    assert_eq!(tree.node("oct").mode, 0o600);
    assert_eq!(
        tree.node("dirs/inner").mode,
        0o644,
        "X adds x only to dirs and executables"
    );
    let history: Vec<String> = image
        .history()
        .iter()
        .filter_map(|h| h["created_by"].as_str().map(str::to_string))
        .collect();
    assert!(
        history.contains(&"COPY --chmod=u+x,g-r f /sym # buildkit".to_string()),
        "{history:?}"
    );
}

/// One build covering: testCopyWildcards, testCopyRelative, testCopyOverrideFiles,
/// testCopyVarSubstitution, testEmptyDestDir, testCopyThroughSymlinkContext,
/// testCopyUnicodePath, reference "COPY" (dest without trailing slash is a file, with one a dir;
/// `?` wildcard; wildcard directories copy their contents).
#[test]
fn copy_sources_and_destinations() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let dockerfile = "FROM busybox:latest\n\
        COPY *.go /gofiles/\n\
        COPY f?.txt /question/\n\
        WORKDIR /test1\n\
        COPY rel.txt ./\n\
        COPY rel.txt ../rel2/\n\
        WORKDIR /\n\
        COPY b.txt /data/b\n\
        ENV FOO=bar.txt\n\
        COPY $FOO /baz.txt\n\
        ENV empty=\"\"\n\
        WORKDIR /emptydest\n\
        COPY rel.txt $empty\n\
        WORKDIR /\n\
        COPY link/foo /through-link\n\
        COPY ö/Ä/☕.txt /unicode/\n\
        COPY rel.txt /newfile\n\
        COPY rel.txt /newdir/\n\
        COPY dir* /merged/\n";
    let image = build_df(
        &env,
        "dfcopy-sources",
        dockerfile,
        &[
            ("a.go", file("package a\n")),
            ("b.go", file("package b\n")),
            ("c.txt", file("not go\n")),
            ("f1.txt", file("f1\n")),
            ("f22.txt", file("f22\n")),
            ("rel.txt", file("rel\n")),
            ("b.txt", file("overridden\n")),
            ("bar.txt", file("from var\n")),
            ("sub/foo", file("through a symlinked dir\n")),
            ("link", symlink_to("sub")),
            ("ö/Ä/☕.txt", file("coffee\n")),
            ("dir1/one", file("1\n")),
            ("dir2/two", file("2\n")),
        ],
        &[],
    );
    let tree = image.tree();
    // testCopyWildcards
    assert_eq!(tree.children("gofiles"), vec!["a.go", "b.go"]);
    // reference "COPY": `?` matches exactly one character
    assert_eq!(tree.children("question"), vec!["f1.txt"]);
    // testCopyRelative: relative destinations are under WORKDIR, `..` climbs out of it
    assert_eq!(tree.text("test1/rel.txt"), "rel\n");
    assert_eq!(tree.text("rel2/rel.txt"), "rel\n");
    // testCopyOverrideFiles: an existing file is replaced
    assert_eq!(tree.text("data/b"), "overridden\n");
    assert_eq!(tree.text("data/a"), "a\n", "siblings untouched");
    // testCopyVarSubstitution
    assert_eq!(tree.text("baz.txt"), "from var\n");
    // testEmptyDestDir: an empty destination is the working directory
    assert_eq!(tree.text("emptydest/rel.txt"), "rel\n");
    // testCopyThroughSymlinkContext
    assert_eq!(tree.text("through-link"), "through a symlinked dir\n");
    assert!(tree.node("through-link").is_file());
    // testCopyUnicodePath
    assert_eq!(tree.text("unicode/☕.txt"), "coffee\n");
    // reference "COPY": no trailing slash names the file, a trailing slash a new directory
    assert!(tree.node("newfile").is_file());
    assert_eq!(tree.text("newdir/rel.txt"), "rel\n");
    // reference "COPY": directories matched by a wildcard copy their contents
    assert_eq!(tree.children("merged"), vec!["one", "two"]);
}

/// One build covering: testSymlinkDestination (a destination through a symlink in the image
/// is resolved inside the image), testCopyChownCreateDest (file part), --chown on a directory source (reference "COPY --chown"), --chown by
/// name with group resolved in the destination stage, --chmod on a directory tree
/// (testCopyChmod), and the source mode kept without --chmod
/// (reference "COPY": "files and directories ... retain their permissions").
#[test]
fn copy_ownership_modes_and_symlinked_destinations() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let dockerfile = "FROM busybox:latest\n\
        RUN mkdir /real && ln -s /real /linkdir\n\
        COPY foo /linkdir/\n\
        COPY --chown=1000:1000 foo /dest/\n\
        COPY --chown=1000:2000 tree /chowndir\n\
        COPY --chown=app tree /byname\n\
        COPY --chmod=0700 tree /chmoddir/\n\
        COPY exec.sh /kept/\n";
    let image = build_df(
        &env,
        "dfcopy-owners",
        dockerfile,
        &[
            ("foo", file("foo\n")),
            ("tree/top", file("top\n")),
            ("tree/sub/nested", file("nested\n")),
            ("exec.sh", file_mode("#!/bin/sh\n", 0o751)),
        ],
        &[],
    );
    let tree = image.tree();
    // testSymlinkDestination
    assert_eq!(tree.node("linkdir").symlink_target(), Some("/real"));
    assert_eq!(tree.text("real/foo"), "foo\n");
    // testCopyChownCreateDest
    assert_eq!(tree.node("dest/foo").owner(), (1000, 1000));
    // reference "COPY --chown": every copied file and directory
    for path in ["chowndir/top", "chowndir/sub", "chowndir/sub/nested"] {
        assert_eq!(tree.node(path).owner(), (1000, 2000), "{path}");
    }
    // reference "COPY --chown": a user name without group takes the user's primary group
    assert_eq!(tree.node("byname/sub/nested").owner(), (1000, 1000));
    // testCopyChmod: --chmod applies to files and directories alike
    assert_eq!(tree.node("chmoddir/top").mode, 0o700);
    assert_eq!(tree.node("chmoddir/sub").mode, 0o700);
    assert_eq!(tree.node("chmoddir/sub/nested").mode, 0o700);
    // reference "COPY": permissions kept, owner root without --chown
    assert_eq!(tree.node("kept/exec.sh").mode, 0o751);
    assert_eq!(tree.node("kept/exec.sh").owner(), (0, 0));
}

/// One build covering: testCopySymlinks (a symlink inside a directory source is copied as a
/// symlink, even an absolute one), testCopyHardlinks (hard-linked context files both arrive with
/// their content), testCopyWholeContext (`COPY . /ctx/`), and a `dir/.` source copying the
/// directory's contents (reference "COPY").
#[test]
fn copy_whole_context_and_links() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let image = build_df(
        &env,
        "dfcopy-context",
        "FROM busybox:latest\nCOPY . /ctx/\nCOPY pkg/. /dot/\n",
        &[
            ("pkg/real.txt", file("real\n")),
            ("pkg/abs-link", symlink_to("/etc/passwd")),
            ("pkg/hard.txt", hardlink_to("pkg/real.txt")),
        ],
        &[],
    );
    let tree = image.tree();
    assert_eq!(tree.text("ctx/pkg/real.txt"), "real\n");
    assert_eq!(
        tree.text("ctx/Dockerfile").lines().next(),
        Some("FROM busybox:latest")
    );
    assert_eq!(
        tree.node("dot/abs-link").symlink_target(),
        Some("/etc/passwd")
    );
    assert_eq!(tree.text("dot/hard.txt"), "real\n");
    assert_eq!(tree.text("dot/real.txt"), "real\n");
}

/// testCopyChownCreateDest, reference "COPY --chown": "All new files and directories are
/// created with a UID and GID of 0, unless the optional --chown flag specifies" otherwise, so
/// the destination directory COPY creates belongs to the --chown owner too.
#[test]
fn copy_chown_owns_the_destination_dir_it_creates() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let image = build_df(
        &env,
        "dfcopy-chown-dest",
        "FROM busybox:latest\nCOPY --chown=1000:1000 foo /dest/\n",
        &[("foo", file("foo\n"))],
        &[],
    );
    assert_eq!(image.tree().node("dest/foo").owner(), (1000, 1000));
    assert_eq!(image.tree().node("dest").owner(), (1000, 1000));
}
