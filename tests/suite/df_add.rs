//! ADD of local sources as BuildKit's dockerfile_test.go (testAddArchive...,
//! testAddArchiveWildcard) and reference.md "ADD" describe it.

use std::io::Write;

use crate::support::*;

fn tarball(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, content) in entries {
        let mut header = tar::Header::new_ustar();
        if let Some(target) = content.strip_prefix("->") {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            header.set_mode(0o777);
            builder
                .append_link(&mut header, name, target)
                .expect("append symlink");
            continue;
        }
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_600_000_000);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, name, content.as_bytes())
            .expect("append");
    }
    builder.into_inner().expect("tar")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
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
            ("first.tar.gz", file(gzip(&tarball(&[("one.txt", "one")])))),
            ("second.tar.gz", file(gzip(&tarball(&[("two.txt", "two")])))),
            ("replace-b.tar", file(tarball(&[("b", "from archive\n")]))),
            ("fake.tar.gz", file("not an archive at all\n")),
            (
                "links.tar",
                file(tarball(&[("target.txt", "t"), ("link", "->target.txt")])),
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
            ("arch.tar.gz", file(gzip(&tarball(&[("in.txt", "in")])))),
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
        &[("notes.txt.gz", file(gzip(b"plain text, gzipped\n")))],
        &[],
    );
    assert!(image.tree().node("gz/notes.txt.gz").is_file());
    assert_eq!(image.tree().bytes("gz/notes.txt.gz")[..2], [0x1f, 0x8b]);
}
