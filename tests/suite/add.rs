//! ADD from the context: archives told by content and extracted (gzip, bzip2, xz, zstd, plain
//! tar), plain files copied, `--unpack=false`, `--chown`. Mirrors BuildKit's
//! dockerfile_test.go testAddArchive / testAddArchiveWildcard and reference.md "ADD".
//!
//! ADD of local sources as BuildKit's dockerfile_test.go (testAddArchive...,
//! testAddArchiveWildcard) and reference.md "ADD" describe it.

use std::io::Write;

use crate::support::*;

/// Files owned by 1000:1000, mode 0640.
fn tarball(entries: &[(&str, &str)]) -> Vec<u8> {
    let entries: Vec<TarEntry> = entries
        .iter()
        .map(|(name, content)| {
            TarEntry::file(name, content)
                .mode(0o640)
                .owner(1000, 1000)
                .mtime(1_600_000_000)
        })
        .collect();
    layer_tar(&entries)
}

fn compressed(kind: &str, tar: &[u8]) -> Vec<u8> {
    match kind {
        "gz" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(tar).expect("gzip");
            e.finish().expect("gzip")
        }
        "bz2" => {
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
            e.write_all(tar).expect("bzip2");
            e.finish().expect("bzip2")
        }
        "xz" => {
            let mut out = Vec::new();
            lzma_rs::xz_compress(&mut std::io::Cursor::new(tar), &mut out).expect("xz");
            out
        }
        "zst" => zstd::encode_all(std::io::Cursor::new(tar), 3).expect("zstd"),
        _ => tar.to_vec(),
    }
}

#[test]
fn add_extracts_local_archives_of_every_compression() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let mut entries: Vec<(String, Content)> = Vec::new();
    let mut dockerfile = String::from("FROM busybox:latest\n");
    for kind in ["tar", "gz", "bz2", "xz", "zst"] {
        let tar = tarball(&[("top.txt", kind), ("dir/inner.txt", "inner")]);
        // Misleading names on purpose: the content decides.
        entries.push((format!("archive-{kind}.bin"), file(compressed(kind, &tar))));
        dockerfile.push_str(&format!("ADD archive-{kind}.bin /out/{kind}/\n"));
    }
    dockerfile.push_str("ADD --unpack=false archive-gz.bin /kept/\nADD --chown=2000:2000 archive-tar.bin /owned\nADD plain.txt /plain.txt\n");
    entries.push(("plain.txt".into(), file("just a file\n")));
    entries.push(("Dockerfile".into(), file(dockerfile)));
    let refs: Vec<(&str, Content)> = entries
        .iter()
        .map(|(n, c)| (n.as_str(), c.clone()))
        .collect();
    let ctx = env.context(&refs);
    let (_, image) = env.build_oci("add-archives", &[], &ctx);
    let tree = image.tree();
    for kind in ["tar", "gz", "bz2", "xz", "zst"] {
        assert_eq!(tree.text(&format!("out/{kind}/top.txt")), kind, "{kind}");
        assert_eq!(
            tree.text(&format!("out/{kind}/dir/inner.txt")),
            "inner",
            "{kind}"
        );
        let node = tree.node(&format!("out/{kind}/top.txt"));
        assert_eq!(
            (node.mode, node.owner(), node.mtime),
            (0o640, (1000, 1000), 1_600_000_000),
            "{kind}: tar metadata kept"
        );
    }
    assert!(
        tree.node("kept/archive-gz.bin").is_file(),
        "--unpack=false copies the archive"
    );
    assert_eq!(tree.node("owned/top.txt").owner(), (2000, 2000));
    assert_eq!(tree.text("plain.txt"), "just a file\n");
    let history: Vec<String> = image
        .history()
        .iter()
        .filter_map(|h| h["created_by"].as_str().map(str::to_string))
        .collect();
    assert!(
        history
            .iter()
            .any(|h| h == "ADD archive-gz.bin /out/gz/ # buildkit"),
        "{history:?}"
    );
}

#[test]
fn add_archive_entries_cannot_climb_out_of_the_destination() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let evil = RawTar::new().file("../../escaped.txt", b"bad").finish();
    let ctx = env.context(&[
        ("evil.tar", file(evil)),
        (
            "Dockerfile",
            file("FROM busybox:latest\nADD evil.tar /deep/dest/\n"),
        ),
    ]);
    let (_, image) = env.build_oci("add-evil", &[], &ctx);
    assert_eq!(image.tree().text("deep/dest/escaped.txt"), "bad");
    assert!(!image.tree().contains("escaped.txt"));
}

#[test]
fn add_of_a_remote_url_says_not_supported_yet() {
    let env = TestEnv::new();
    let ctx = env.context(&[(
        "Dockerfile",
        file("FROM scratch\nADD ftp://example.invalid/x.tar.gz /x\n"),
    )]);
    let stderr = env.rbuild_err(["build", ctx.to_str().expect("utf-8")]);
    assert!(
        stderr.contains("not supported yet") && stderr.contains("Dockerfile:2:"),
        "{stderr}"
    );
}

/// reference.md "ADD ... git": a repository at a ref is added to dest; .git only with
/// --keep-git-dir.
#[test]
fn add_git_repository() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    if !require_command("git") {
        return;
    }
    let repo = env.path("addrepo");
    std::fs::create_dir_all(repo.join("sub")).expect("mkdir");
    std::fs::write(repo.join("sub/file.txt"), "v1\n").expect("write");
    let git = |args: &[&str]| git_in(&repo, args);
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "v1"]);
    git(&["tag", "v1"]);
    std::fs::write(repo.join("sub/file.txt"), "v2\n").expect("write");
    git(&["commit", "-qam", "v2"]);
    let server = GitServer::serve(&env.path(""));
    let url = server.url("addrepo");
    let ctx = env.context(&[(
        "Dockerfile",
        file(format!("FROM busybox:latest\nADD {url}#v1:sub /at-tag/\nADD --keep-git-dir=true {url} /with-git/\n")),
    )]);
    let (_, image) = env.build_oci("add-git", &[], &ctx);
    let tree = image.tree();
    assert_eq!(tree.text("at-tag/file.txt"), "v1\n");
    assert!(!tree.contains("at-tag/.git"));
    assert_eq!(tree.text("with-git/sub/file.txt"), "v2\n");
    assert!(tree.contains("with-git/.git"));
}

/// Files (mode 0644), and symlinks for contents written `->TARGET`.
fn tarball_with_links(entries: &[(&str, &str)]) -> Vec<u8> {
    let entries: Vec<TarEntry> = entries
        .iter()
        .map(|(name, content)| match content.strip_prefix("->") {
            Some(target) => TarEntry::symlink(name, target).mtime(0),
            None => TarEntry::file(name, content).mtime(1_600_000_000),
        })
        .collect();
    layer_tar(&entries)
}

/// One build covering: testAddArchive (a destination without a trailing slash becomes the
/// directory the archive is unpacked into), testAddArchiveWildcard (each matching archive is
/// unpacked), reference "ADD" ("whatever existed at the destination path and the contents of
/// the source tree" are merged, file by file), a `.tar.gz` name that is no archive is copied
/// as is (testAddArchive "not an archive" case), symlinks inside an archive
/// are kept, ADD of a directory copies its contents, and variables in ADD (reference
/// "Environment replacement").
#[test]
fn add_unpacks_tar_archives_only() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let dockerfile = "FROM busybox:latest\n\
        ADD first.tar.gz /unpacked\n\
        ADD *.tar.gz /wild/\n\
        ADD replace-b.tar /data/\n\
        ADD fake.tar.gz /fake/\n\
        ADD links.tar /links/\n\
        ADD somedir /adddir/\n\
        ENV DEST=/from-env\n\
        ADD plain.txt $DEST/\n";
    let image = build_df(
        &env,
        "dfadd-unpack",
        dockerfile,
        &[
            (
                "first.tar.gz",
                file(compressed("gz", &tarball_with_links(&[("one.txt", "one")]))),
            ),
            (
                "second.tar.gz",
                file(compressed("gz", &tarball_with_links(&[("two.txt", "two")]))),
            ),
            (
                "replace-b.tar",
                file(tarball_with_links(&[("b", "from archive\n")])),
            ),
            ("fake.tar.gz", file("not an archive at all\n")),
            (
                "links.tar",
                file(tarball_with_links(&[
                    ("target.txt", "t"),
                    ("link", "->target.txt"),
                ])),
            ),
            ("somedir/inner.txt", file("inner\n")),
            ("plain.txt", file("plain\n")),
        ],
        &[],
    );
    let tree = image.tree();
    // testAddArchive
    assert!(tree.node("unpacked").is_dir());
    assert_eq!(tree.text("unpacked/one.txt"), "one");
    // testAddArchiveWildcard: each match unpacked, the fake one copied
    assert_eq!(
        tree.children("wild"),
        vec!["fake.tar.gz", "one.txt", "two.txt"]
    );
    // reference "ADD": merged into an existing directory
    assert_eq!(tree.text("data/b"), "from archive\n");
    assert_eq!(tree.text("data/a"), "a\n");
    assert_eq!(tree.text("data/sub/c"), "c\n");
    // testAddArchive: not an archive despite its name
    assert_eq!(tree.text("fake/fake.tar.gz"), "not an archive at all\n");
    // symlinks in archives stay symlinks
    assert_eq!(tree.node("links/link").symlink_target(), Some("target.txt"));
    // reference "ADD": a directory source copies its contents
    assert_eq!(tree.text("adddir/inner.txt"), "inner\n");
    assert!(!tree.contains("adddir/somedir"));
    // reference "Environment replacement"
    assert_eq!(tree.text("from-env/plain.txt"), "plain\n");
}

/// One build covering: reference "ADD --chmod" on a plain file, "ADD --chown" by user and
/// group name, "ADD --link" (the layer holds only the added files), `--unpack=false` with a
/// file destination, and the history line BuildKit writes for ADD.
#[test]
fn add_flags() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let dockerfile = "FROM busybox:latest\n\
        ADD --chmod=0755 run.sh /usr/local/bin/run.sh\n\
        ADD --chown=app:extra plain.txt /owned.txt\n\
        ADD --unpack=false arch.tar.gz /kept.tar.gz\n\
        ADD --link arch.tar.gz /linked/\n";
    let image = build_df(
        &env,
        "dfadd-flags",
        dockerfile,
        &[
            ("run.sh", file("#!/bin/sh\necho run\n")),
            ("plain.txt", file("plain\n")),
            (
                "arch.tar.gz",
                file(compressed("gz", &tarball_with_links(&[("in.txt", "in")]))),
            ),
        ],
        &[],
    );
    let tree = image.tree();
    assert_eq!(tree.node("usr/local/bin/run.sh").mode, 0o755);
    assert_eq!(tree.node("owned.txt").owner(), (1000, 2000));
    assert!(tree.node("kept.tar.gz").is_file());
    assert_eq!(tree.bytes("kept.tar.gz")[..2], [0x1f, 0x8b]);
    assert_eq!(tree.text("linked/in.txt"), "in");
    let top = image.layer(image.layer_count() - 1);
    let mut paths = top.paths();
    paths.sort();
    assert_eq!(paths, vec!["linked", "linked/in.txt"], "--link layer");
    assert!(
        created_by(&image)
            .contains(&"ADD --chmod=0755 run.sh /usr/local/bin/run.sh # buildkit".to_string()),
        "{:?}",
        created_by(&image)
    );
}

/// testAddArchive ("a gzip of a non-tar file is copied as is") and reference "ADD": only "a
/// local tar archive in a recognized compression format" is unpacked; any other file, even a
/// gzip stream, is copied unchanged.
#[test]
fn add_copies_a_compressed_file_that_is_not_a_tar() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let image = build_df(
        &env,
        "dfadd-gz-plain",
        "FROM busybox:latest\nADD notes.txt.gz /gz/\n",
        &[(
            "notes.txt.gz",
            file(compressed("gz", b"plain text, gzipped\n")),
        )],
        &[],
    );
    assert!(image.tree().node("gz/notes.txt.gz").is_file());
    assert_eq!(image.tree().bytes("gz/notes.txt.gz")[..2], [0x1f, 0x8b]);
}
