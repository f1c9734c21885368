use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

use super::*;

/// A tree, a walk of it, changes made by `step`, and the layer written from the difference.
struct Case {
    _dir: tempfile::TempDir,
    tree: PathBuf,
    layer: PathBuf,
}

impl Case {
    fn new(setup: impl FnOnce(&Path)) -> Case {
        let dir = tempfile::tempdir().expect("temp dir");
        let tree = dir.path().join("tree");
        let layer = dir.path().join("layer");
        fs::create_dir(&tree).expect("tree");
        fs::create_dir(&layer).expect("layer");
        setup(&tree);
        Case {
            _dir: dir,
            tree,
            layer,
        }
    }

    fn scan(&self) -> Scan {
        Scan::of(crate::open_root(&self.tree).expect("open"), &|p| {
            p.starts_with("skipped")
        })
        .expect("scan")
    }

    /// Runs `step` on the tree; returns the changes and the report of the layer written.
    fn step(&self, step: impl FnOnce(&Path)) -> (Vec<Change>, LayerReport) {
        let before = self.scan();
        step(&self.tree);
        let after = self.scan();
        let changes = changes(&before, &after);
        let report = write_layer(
            crate::open_root(&self.tree).expect("tree"),
            &after,
            &changes,
            crate::open_root(&self.layer).expect("layer"),
        )
        .expect("write layer");
        (changes, report)
    }

    fn layer_paths(&self) -> Vec<String> {
        let mut paths = Vec::new();
        let mut stack = vec![self.layer.clone()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).expect("read layer") {
                let entry = entry.expect("entry");
                let path = entry.path();
                let rel = path.strip_prefix(&self.layer).expect("in layer");
                paths.push(rel.display().to_string());
                if entry.file_type().expect("type").is_dir() {
                    stack.push(path);
                }
            }
        }
        paths.sort();
        paths
    }
}

fn write(path: &Path, content: &str) {
    fs::write(path, content).expect("write");
}

fn is_whiteout(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0)
}

#[test]
fn an_unchanged_tree_gives_an_empty_layer() {
    let case = Case::new(|t| {
        fs::create_dir_all(t.join("etc/app")).expect("dirs");
        write(&t.join("etc/app/conf"), "a");
        symlink("conf", t.join("etc/app/link")).expect("symlink");
    });
    let (changes, report) = case.step(|_| {});
    assert!(changes.is_empty(), "{changes:?}");
    assert_eq!(report, LayerReport::default());
    assert!(case.layer_paths().is_empty());
}

#[test]
fn new_changed_and_deleted_entries_become_files_and_whiteouts() {
    let case = Case::new(|t| {
        fs::create_dir_all(t.join("etc/app")).expect("dirs");
        fs::create_dir_all(t.join("var/cache/big")).expect("dirs");
        write(&t.join("etc/app/conf"), "old");
        write(&t.join("etc/keep"), "keep");
        write(&t.join("var/cache/big/blob"), "x");
        write(&t.join("var/cache/gone"), "x");
    });
    let (changes, report) = case.step(|t| {
        write(&t.join("etc/app/conf"), "new");
        write(&t.join("etc/app/added"), "added");
        fs::remove_dir_all(t.join("var/cache/big")).expect("rm dir");
        fs::remove_file(t.join("var/cache/gone")).expect("rm file");
        fs::set_permissions(t.join("etc/keep"), fs::Permissions::from_mode(0o600)).expect("chmod");
    });
    assert_eq!(
        changes,
        [
            Change::Write("etc/app/added".into()),
            Change::Write("etc/app/conf".into()),
            Change::Write("etc/keep".into()),
            Change::Delete("var/cache/big".into()),
            Change::Delete("var/cache/gone".into()),
        ]
    );
    assert_eq!((report.written, report.whiteouts), (3, 2));
    let layer = &case.layer;
    assert_eq!(
        fs::read_to_string(layer.join("etc/app/conf")).expect("conf"),
        "new"
    );
    assert_eq!(
        fs::read_to_string(layer.join("etc/app/added")).expect("added"),
        "added"
    );
    assert_eq!(
        fs::metadata(layer.join("etc/keep")).expect("keep").mode() & 0o7777,
        0o600,
        "a mode change alone is a change"
    );
    assert!(
        is_whiteout(&layer.join("var/cache/big")),
        "one whiteout for the dir"
    );
    assert!(!layer.join("var/cache/big/blob").exists());
    assert!(is_whiteout(&layer.join("var/cache/gone")));
    // Parent dirs come with the tree's modes.
    assert_eq!(
        fs::metadata(layer.join("etc")).expect("etc").mode() & 0o7777,
        fs::metadata(case.tree.join("etc")).expect("etc").mode() & 0o7777
    );
}

#[test]
fn a_replaced_directory_is_opaque_and_rewritten_whole() {
    let case = Case::new(|t| {
        fs::create_dir_all(t.join("opt/app")).expect("dirs");
        write(&t.join("opt/app/old"), "old");
        write(&t.join("opt/app/kept-name"), "old");
        write(&t.join("file-then-dir"), "f");
    });
    let (changes, _) = case.step(|t| {
        fs::remove_dir_all(t.join("opt/app")).expect("rm");
        fs::create_dir(t.join("opt/app")).expect("mkdir");
        write(&t.join("opt/app/kept-name"), "new");
        fs::remove_file(t.join("file-then-dir")).expect("rm");
        fs::create_dir(t.join("file-then-dir")).expect("mkdir");
    });
    assert_eq!(
        changes,
        [
            Change::Opaque("file-then-dir".into()),
            Change::Opaque("opt/app".into()),
            Change::Write("opt/app/kept-name".into()),
        ],
        "no whiteout below a replaced dir: the opaque dir hides the old contents"
    );
    assert_eq!(xattr_of(&case.layer.join("opt/app")), Some(b"y".to_vec()));
}

fn xattr_of(path: &Path) -> Option<Vec<u8>> {
    let fd = crate::open_root(path).ok()?;
    let mut buf = vec![0u8; 16];
    let n = rfs::fgetxattr(&fd, OPAQUE_XATTR, &mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

#[test]
fn symlinks_and_hard_links_are_kept_as_what_they_are() {
    let case = Case::new(|t| fs::create_dir(t.join("bin")).expect("bin"));
    let (_, report) = case.step(|t| {
        write(&t.join("bin/tool"), "#!/bin/sh\n");
        fs::hard_link(t.join("bin/tool"), t.join("bin/tool2")).expect("link");
        symlink("/etc/passwd", t.join("bin/abs")).expect("symlink");
    });
    assert_eq!(report.written, 3);
    let layer = &case.layer;
    assert_eq!(
        fs::metadata(layer.join("bin/tool")).expect("tool").ino(),
        fs::metadata(layer.join("bin/tool2")).expect("tool2").ino(),
        "hard links stay one inode"
    );
    assert_eq!(
        fs::read_link(layer.join("bin/abs")).expect("link"),
        Path::new("/etc/passwd"),
        "a symlink is copied as a link, never followed"
    );
}

#[test]
fn skipped_paths_are_neither_walked_nor_written() {
    let case = Case::new(|t| fs::create_dir(t.join("skipped")).expect("dir"));
    let (changes, _) = case.step(|t| write(&t.join("skipped/secret"), "s"));
    assert!(changes.is_empty(), "{changes:?}");
}

/// A file swapped for a symlink after the walk is refused, never followed out of the tree.
#[test]
fn a_file_swapped_for_a_symlink_after_the_walk_is_not_followed() {
    let outside = tempfile::tempdir().expect("outside");
    write(&outside.path().join("secret"), "host secret");
    let case = Case::new(|_| {});
    let before = case.scan();
    write(&case.tree.join("f"), "mine");
    let after = case.scan();
    fs::remove_file(case.tree.join("f")).expect("rm");
    symlink(outside.path().join("secret"), case.tree.join("f")).expect("swap");
    let result = write_layer(
        crate::open_root(&case.tree).expect("tree"),
        &after,
        &changes(&before, &after),
        crate::open_root(&case.layer).expect("layer"),
    );
    assert!(result.is_err(), "the swapped file is refused");
    assert!(
        fs::read(case.layer.join("f")).map_or(true, |b| b != b"host secret"),
        "nothing of the host was copied"
    );
}
