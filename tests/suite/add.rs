//! ADD from the context: archives told by content and extracted (gzip, bzip2, xz, zstd, plain
//! tar), plain files copied, `--unpack=false`, `--chown`. Mirrors BuildKit's
//! dockerfile_test.go testAddArchive / testAddArchiveWildcard and reference.md "ADD".

use std::io::Write;

use crate::support::*;

fn tarball(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, content) in entries {
        let mut header = tar::Header::new_ustar();
        header.set_size(content.len() as u64);
        header.set_mode(0o640);
        header.set_uid(1000);
        header.set_gid(1000);
        header.set_mtime(1_600_000_000);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, name, content.as_bytes())
            .expect("append");
    }
    builder.into_inner().expect("tar")
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
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    let name = b"../../escaped.txt";
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_size(3);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    builder.append(&header, &b"bad"[..]).expect("append");
    let ctx = env.context(&[
        ("evil.tar", file(builder.into_inner().expect("tar"))),
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
