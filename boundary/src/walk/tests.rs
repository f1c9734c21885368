use std::fs;
use std::os::unix::ffi::OsStringExt as _;
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
    // A directory that replaced a file is opaque. One removed and made again is opaque too,
    // unless the filesystem gave the new one the old inode number: then it is the same
    // directory, and the old entries get whiteouts. Either way the old contents are hidden.
    assert_eq!(changes[0], Change::Opaque("file-then-dir".into()));
    let app_opaque = changes.contains(&Change::Opaque("opt/app".into()));
    let old_whited_out = changes.contains(&Change::Delete("opt/app/old".into()));
    assert!(app_opaque != old_whited_out, "{changes:?}");
    assert!(
        !changes.iter().any(|c| c.path().starts_with("opt/app")
            && app_opaque
            && matches!(c, Change::Delete(_))),
        "no whiteout below an opaque dir: {changes:?}"
    );
    if app_opaque {
        assert_eq!(xattr_of(&case.layer.join("opt/app")), Some(b"y".to_vec()));
    } else {
        assert!(is_whiteout(&case.layer.join("opt/app/old")));
    }
    assert_eq!(
        fs::read_to_string(case.layer.join("opt/app/kept-name")).expect("kept-name"),
        "new"
    );
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

/// The contents of a tree, for comparing two: path, type, mode, owner, and the bytes of each
/// file or link target.
fn contents(root: &Path) -> Vec<(PathBuf, FileType, u32, u32, Vec<u8>)> {
    let scan = Scan::of(crate::open_root(root).expect("open"), &|_| false).expect("scan");
    scan.entries
        .iter()
        .map(|(path, seen)| {
            let full = root.join(path);
            let bytes = match seen.kind {
                FileType::RegularFile => fs::read(&full).expect("read"),
                FileType::Symlink => fs::read_link(&full)
                    .expect("link")
                    .into_os_string()
                    .into_vec(),
                _ => Vec::new(),
            };
            (path.clone(), seen.kind, seen.mode, seen.uid, bytes)
        })
        .collect()
}

/// A tree, changed by a step: the layer of the change applied onto a copy of the tree (made
/// by applying the tree itself as a layer onto an empty dir) gives the changed tree.
#[test]
fn applying_the_layer_of_a_change_onto_the_old_tree_gives_the_new_one() {
    let case = Case::new(|t| {
        fs::create_dir_all(t.join("a/b/c")).expect("dirs");
        fs::create_dir_all(t.join("replaced/old")).expect("dirs");
        write(&t.join("a/b/c/file"), "one");
        write(&t.join("a/gone"), "gone");
        write(&t.join("replaced/old/x"), "x");
        write(&t.join("dir-later"), "file first");
        symlink("b/c", t.join("a/link")).expect("symlink");
    });
    let copy = tempfile::tempdir().expect("copy");
    let everything = changes(&Scan::default(), &case.scan());
    write_layer(
        crate::open_root(&case.tree).expect("tree"),
        &case.scan(),
        &everything,
        crate::open_root(copy.path()).expect("copy"),
    )
    .expect("the whole tree as a layer");
    assert_eq!(contents(copy.path()), contents(&case.tree));

    case.step(|t| {
        write(&t.join("a/b/c/file"), "two");
        fs::remove_file(t.join("a/gone")).expect("rm");
        fs::remove_dir_all(t.join("replaced")).expect("rm");
        fs::create_dir(t.join("replaced")).expect("mkdir");
        write(&t.join("replaced/new"), "new");
        fs::remove_file(t.join("dir-later")).expect("rm");
        fs::create_dir(t.join("dir-later")).expect("mkdir");
        fs::set_permissions(t.join("a/b"), fs::Permissions::from_mode(0o700)).expect("chmod");
    });
    apply_layer(
        crate::open_root(&case.layer).expect("layer"),
        crate::open_root(copy.path()).expect("copy"),
    )
    .expect("apply");
    assert_eq!(contents(copy.path()), contents(&case.tree));
}

/// Applying a layer onto a tree whose mount points are kept: nothing at or below a kept path
/// is written, replaced or removed, whatever the layer says (a whiteout, an opaque dir).
#[test]
fn kept_paths_are_never_touched_by_an_applied_layer() {
    let case = Case::new(|t| {
        fs::create_dir_all(t.join("mnt/volume")).expect("dirs");
        write(&t.join("mnt/volume/data"), "host data");
        fs::create_dir_all(t.join("a/b")).expect("dirs");
        write(&t.join("a/b/kept"), "kept");
        write(&t.join("a/other"), "other");
    });
    // A layer that deletes mnt, replaces a with an opaque dir and writes below both.
    let source = tempfile::tempdir().expect("source");
    let layer = source.path();
    fs::create_dir_all(layer.join("a")).expect("a");
    write(&layer.join("a/new"), "new");
    write(&layer.join("written-beside"), "fine");
    rustix::fs::mknodat(
        crate::open_root(layer).expect("layer"),
        "mnt",
        FileType::CharacterDevice,
        Mode::from_raw_mode(0o600),
        0,
    )
    .expect("whiteout");
    rfs::setxattr(
        layer.join("a"),
        OPAQUE_XATTR,
        b"y",
        rfs::XattrFlags::empty(),
    )
    .expect("opaque");
    let kept = Kept(vec![PathBuf::from("mnt/volume"), PathBuf::from("a/b")]);
    apply_layer_keeping(
        crate::open_root(layer).expect("layer"),
        crate::open_root(&case.tree).expect("tree"),
        &kept,
    )
    .expect("apply");
    let t = &case.tree;
    assert_eq!(
        fs::read_to_string(t.join("mnt/volume/data")).expect("data"),
        "host data"
    );
    assert_eq!(
        fs::read_to_string(t.join("a/b/kept")).expect("kept"),
        "kept"
    );
    assert!(
        !t.join("a/other").exists(),
        "the opaque dir replaced what was not kept"
    );
    assert_eq!(fs::read_to_string(t.join("a/new")).expect("new"), "new");
    assert_eq!(
        fs::read_to_string(t.join("written-beside")).expect("beside"),
        "fine"
    );
}

/// A walk lists its entries in path order (component by component), which the one-pass diff
/// relies on: names that sort differently as bytes and as paths (`a/x` before `a.b`, `a-c`).
#[test]
fn a_walk_comes_out_in_path_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    for made in ["a/x", "a.b/y", "a-c", "b", "a/x/deep"] {
        fs::create_dir_all(dir.path().join(made)).expect("mkdir");
    }
    fs::write(dir.path().join("a/file"), "f").expect("write");
    let scan = Scan::of(crate::open_root(dir.path()).expect("open"), &|_| false).expect("scan");
    let paths: Vec<&PathBuf> = scan.iter().map(|(p, _)| p).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted);
    assert_eq!(paths.len(), 8);
    assert!(scan.get(Path::new("a/x/deep")).is_some());
    assert!(scan.get(Path::new("a/missing")).is_none());
}
