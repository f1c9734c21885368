//! Comparing a local output (a directory) with an image's tree read by the test's reader.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use super::oci::{sha256_digest, NodeKind, Tree};

/// Asserts that `dir` holds exactly the files of `tree` (kinds, modes, contents, link targets;
/// device nodes excepted: an unprivileged user cannot create them). Owners are not compared:
/// rootless, everything belongs to the user.
pub fn assert_dir_matches_tree(dir: &Path, tree: &Tree) {
    let mut expected = Vec::new();
    for (path, node) in &tree.nodes {
        if path.is_empty() {
            continue;
        }
        let local = dir.join(path);
        let meta = fs::symlink_metadata(&local)
            .unwrap_or_else(|e| panic!("{path} of the image is missing locally: {e}"));
        match &node.kind {
            NodeKind::Dir => assert!(meta.is_dir(), "{path} is not a dir"),
            NodeKind::File { sha256, .. } => {
                assert!(meta.is_file(), "{path} is not a file");
                let bytes = fs::read(&local).expect("read local file");
                assert_eq!(
                    sha256_digest(&bytes).trim_start_matches("sha256:"),
                    sha256.trim_start_matches("sha256:"),
                    "{path}: content"
                );
            }
            NodeKind::Hardlink(target) => {
                let other = fs::metadata(dir.join(target)).expect("hard link target");
                assert_eq!(meta.ino(), other.ino(), "{path} is a hard link of {target}");
            }
            NodeKind::Symlink(target) => {
                assert_eq!(
                    fs::read_link(&local).expect("read link").to_str(),
                    Some(target.as_str()),
                    "{path}: link target"
                );
            }
            NodeKind::Fifo => assert!(meta.file_type().is_fifo(), "{path} is not a fifo"),
            NodeKind::CharDev { .. } | NodeKind::BlockDev { .. } => continue,
        }
        if !matches!(node.kind, NodeKind::Symlink(_) | NodeKind::Hardlink(_)) {
            assert_eq!(
                meta.permissions().mode() & 0o7777,
                node.mode,
                "{path}: mode"
            );
        }
        expected.push(path.clone());
    }
    let mut found = Vec::new();
    for entry in walkdir::WalkDir::new(dir).min_depth(1) {
        let entry = entry.expect("walk local output");
        let rel = entry.path().strip_prefix(dir).expect("inside").to_str();
        found.push(rel.expect("utf-8").to_string());
    }
    found.sort();
    expected.sort();
    assert_eq!(
        found, expected,
        "the local output holds exactly the image's files"
    );
}
