//! Walk-based snapshots: what a step changed in a tree, found without overlayfs by comparing
//! two metadata walks of the tree, and written out as a layer dir in overlay's upper-dir format
//! (whiteouts as 0/0 character devices, `user.overlay.opaque` on replaced directories), so the
//! rest of rbuild takes it as it takes an overlay upper dir.
//!
//! A walk records, for every entry, its type, inode, device, ctime, mtime, size, mode and owner;
//! nothing is read from file contents. Any change to a file's bytes, mode, owner, links or
//! xattrs moves its ctime (which no process can set), and a replaced entry has a new inode, so
//! comparing those decides every entry without hashing. A directory counts as changed when its
//! own mode or owner changed or it is new; its ctime and mtime move whenever its children
//! change, which the children's own entries already say.
//!
//! The tree is untrusted (a step wrote it): the walk opens every directory by fd beneath the
//! previous one and never follows a symlink; the writer reads each file with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` and writes the layer through [`crate::write`].

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};

use crate::write::{self, EntryMeta, WriteError};

/// The metadata of one entry, as a walk saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub kind: FileType,
    pub ino: u64,
    pub dev: u64,
    pub ctime: (i64, i64),
    pub mtime: (i64, i64),
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub nlink: u64,
}

impl Seen {
    fn of(st: &rfs::Stat) -> Seen {
        Seen {
            kind: FileType::from_raw_mode(st.st_mode),
            ino: st.st_ino,
            dev: st.st_dev,
            ctime: (st.st_ctime, st.st_ctime_nsec as i64),
            mtime: (st.st_mtime, st.st_mtime_nsec as i64),
            size: st.st_size as u64,
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            rdev: st.st_rdev,
            nlink: st.st_nlink,
        }
    }

    /// The same entry, unchanged: for a directory its own mode and owner (its times follow
    /// its children); for anything else every field but the access time.
    fn unchanged(&self, before: &Seen) -> bool {
        if self.kind != before.kind || self.ino != before.ino || self.dev != before.dev {
            return false;
        }
        if self.kind == FileType::Directory {
            return (self.mode, self.uid, self.gid) == (before.mode, before.uid, before.gid);
        }
        self == before
    }

    fn meta(&self) -> EntryMeta {
        EntryMeta {
            owner: Some((self.uid, self.gid)),
            mode: self.mode,
            mtime: self.mtime,
        }
    }
}

/// Every entry of a tree below its root (the root itself excluded), by relative path, in
/// path order (parents first). A sorted vector, filled in that order by a walk that sorts
/// each directory's names: no map to insert into, and two walks compare in one merge pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    entries: Vec<(PathBuf, Seen)>,
}

impl Scan {
    /// Walks the tree at `root` without following symlinks. `skip` names relative paths to
    /// leave out (not recorded, not descended into): mount points, rbuild's own files.
    pub fn of(root: impl AsFd, skip: &dyn Fn(&Path) -> bool) -> io::Result<Scan> {
        let mut scan = Scan::default();
        let root = rfs::openat(
            root,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        scan.walk(&root, PathBuf::new(), skip)?;
        Ok(scan)
    }

    fn walk(
        &mut self,
        dir: &OwnedFd,
        rel: PathBuf,
        skip: &dyn Fn(&Path) -> bool,
    ) -> io::Result<()> {
        let mut names: Vec<OsString> = Vec::new();
        for entry in rfs::Dir::read_from(dir)? {
            let name = entry?.file_name().to_bytes().to_vec();
            if name != b"." && name != b".." {
                names.push(OsString::from_vec(name));
            }
        }
        // Byte order of the names, depth first: the order of the paths, component by
        // component, so `entries` comes out sorted.
        names.sort_unstable();
        for name in names {
            let path = rel.join(&name);
            if skip(&path) {
                continue;
            }
            let st = match rfs::statat(dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(rustix::io::Errno::NOENT) => continue, // gone since the listing
                Err(e) => return Err(e.into()),
            };
            let seen = Seen::of(&st);
            self.entries.push((path.clone(), seen));
            if seen.kind == FileType::Directory {
                let child = rfs::openat(
                    dir,
                    name.as_os_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                self.walk(&child, path, skip)?;
            }
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, path: &Path) -> Option<&Seen> {
        self.entries
            .binary_search_by(|(p, _)| p.as_path().cmp(path))
            .ok()
            .map(|i| &self.entries[i].1)
    }

    /// The entries, in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&PathBuf, &Seen)> {
        self.entries.iter().map(|(p, s)| (p, s))
    }
}

/// One difference between two walks, as the layer must say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// New or changed: the entry as it is now.
    Write(PathBuf),
    /// A directory that replaced another (or something else): opaque, hiding what was below.
    Opaque(PathBuf),
    /// Gone: a whiteout.
    Delete(PathBuf),
}

impl Change {
    pub fn path(&self) -> &Path {
        match self {
            Change::Write(p) | Change::Opaque(p) | Change::Delete(p) => p,
        }
    }
}

/// What changed from `before` to `after`, parents before children. Below a replaced
/// directory everything is written again and nothing is whited out (the opaque directory
/// hides the old contents); below a deleted directory only the directory is whited out.
pub fn changes(before: &Scan, after: &Scan) -> Vec<Change> {
    use std::cmp::Ordering;
    let mut out = Vec::new();
    let mut opaque: Option<&Path> = None;
    let mut deleted: Option<&Path> = None;
    // One pass over both walks, in path order.
    let (mut old, mut new) = (
        before.entries.iter().peekable(),
        after.entries.iter().peekable(),
    );
    loop {
        let order = match (old.peek(), new.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((was_path, _)), Some((now_path, _))) => was_path.cmp(now_path),
        };
        match order {
            // Only before: deleted.
            Ordering::Less => {
                let Some((path, _)) = old.next() else { break };
                if deleted.is_some_and(|d| path.starts_with(d)) {
                    continue;
                }
                // A replaced ancestor (a new directory is opaque; a non-directory hides all
                // below) hides this already.
                let hidden = path.ancestors().skip(1).any(|a| replaced(before, after, a));
                if !hidden {
                    out.push(Change::Delete(path.clone()));
                }
                deleted = Some(path);
            }
            // Only after: new.
            Ordering::Greater => {
                let Some((path, _)) = new.next() else { break };
                if !opaque.is_some_and(|o| path.starts_with(o)) {
                    opaque = None;
                }
                out.push(Change::Write(path.clone()));
            }
            Ordering::Equal => {
                let (Some((_, was)), Some((path, seen))) = (old.next(), new.next()) else {
                    break;
                };
                if opaque.is_some_and(|o| path.starts_with(o)) {
                    out.push(Change::Write(path.clone()));
                    continue;
                }
                opaque = None;
                if seen.unchanged(was) {
                    continue;
                }
                if seen.kind == FileType::Directory
                    && was.kind == FileType::Directory
                    && seen.ino == was.ino
                {
                    out.push(Change::Write(path.clone())); // its own mode or owner
                } else if seen.kind == FileType::Directory {
                    out.push(Change::Opaque(path.clone()));
                    opaque = Some(path);
                } else {
                    out.push(Change::Write(path.clone()));
                }
            }
        }
    }
    out.sort_by(|a, b| a.path().cmp(b.path()));
    out
}

/// True when what `after` has at `path` is not what `before` had there (another inode or
/// another type).
fn replaced(before: &Scan, after: &Scan, path: &Path) -> bool {
    matches!(
        (after.get(path), before.get(path)),
        (Some(now), Some(was)) if now.kind != was.kind || now.ino != was.ino
    )
}

/// Paths of a tree that are never walked, written, replaced or removed (mount points, the
/// builder's own files): an entry is kept when it is one of them or below one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kept(pub Vec<PathBuf>);

impl Kept {
    /// True for a kept path or anything below one.
    pub fn keeps(&self, path: &Path) -> bool {
        self.0.iter().any(|k| path.starts_with(k))
    }

    /// True when a kept path is strictly below `path` (it cannot be removed whole).
    pub fn holds(&self, path: &Path) -> bool {
        self.0.iter().any(|k| k.starts_with(path) && k != path)
    }
}

/// Removes `name` (at `path`) in `parent` and all below it, except what `kept` keeps: a
/// directory holding a kept path loses its other entries and stays.
pub fn remove_except(parent: &OwnedFd, name: &OsStr, path: &Path, kept: &Kept) -> io::Result<()> {
    if kept.keeps(path) {
        return Ok(());
    }
    if !kept.holds(path) {
        return crate::root::remove_all_at(parent, name);
    }
    let dir = rfs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut names: Vec<OsString> = Vec::new();
    for entry in rfs::Dir::read_from(&dir)? {
        let child = entry?.file_name().to_bytes().to_vec();
        if child != b"." && child != b".." {
            names.push(OsString::from_vec(child));
        }
    }
    for child in names {
        remove_except(&dir, &child, &path.join(&child), kept)?;
    }
    Ok(())
}

/// What writing a layer did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LayerReport {
    pub written: usize,
    pub whiteouts: usize,
    /// Device nodes that could not be made (an unprivileged user cannot).
    pub skipped_devices: Vec<String>,
}

/// Why a layer could not be written from a tree.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("cannot read {path} in the tree")]
    Read {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path} changed while the layer was written from it")]
    Changed { path: String },
}

const OPAQUE_XATTR: &str = "user.overlay.opaque";

/// Writes `changes` (from [`changes`] against `after`, a walk of `tree`) into the empty
/// directory `layer`, in overlay upper-dir format.
pub fn write_layer(
    tree: impl AsFd,
    after: &Scan,
    changes: &[Change],
    layer: impl AsFd,
) -> Result<LayerReport, WalkError> {
    let writer = LayerWriter {
        tree: tree.as_fd(),
        after,
        layer: layer.as_fd(),
        dirs: HashMap::new(),
        finish: Vec::new(),
        links: HashMap::new(),
        report: LayerReport::default(),
        onto_tree: false,
        kept: Kept::default(),
    };
    writer.run(changes)
}

/// Applies the layer dir `layer` (overlay upper-dir format: whiteouts, opaque dirs) onto the
/// tree `tree`: what a walk snapshotter does to build a stage's working tree from its base
/// layers. Whiteouts remove, opaque dirs replace, everything else is copied (never linked:
/// steps write in the tree, the store's layers must not change).
pub fn apply_layer(layer: impl AsFd, tree: impl AsFd) -> Result<LayerReport, WalkError> {
    apply_layer_keeping(layer, tree, &Kept::default())
}

/// [`apply_layer`] leaving what `kept` keeps alone: the layer's entries at or below a kept
/// path are not applied, and nothing kept is removed (a container's mount points, when the
/// tree is its root).
pub fn apply_layer_keeping(
    layer: impl AsFd,
    tree: impl AsFd,
    kept: &Kept,
) -> Result<LayerReport, WalkError> {
    let layer = layer.as_fd();
    let scan = Scan::of(layer, &|_| false).map_err(|source| WalkError::Read {
        path: "/".into(),
        source,
    })?;
    let mut changes = Vec::with_capacity(scan.len());
    for (path, seen) in scan.iter() {
        if kept.keeps(path) {
            continue;
        }
        let change = if seen.kind == FileType::CharacterDevice && seen.rdev == 0 {
            Change::Delete(path.clone())
        } else if seen.kind == FileType::Directory && is_opaque(layer, path) {
            Change::Opaque(path.clone())
        } else {
            Change::Write(path.clone())
        };
        changes.push(change);
    }
    let writer = LayerWriter {
        tree: layer,
        after: &scan,
        layer: tree.as_fd(),
        dirs: HashMap::new(),
        finish: Vec::new(),
        links: HashMap::new(),
        report: LayerReport::default(),
        onto_tree: true,
        kept: kept.clone(),
    };
    writer.run(&changes)
}

/// Whether the directory `path` beneath `root` is an overlay opaque dir.
fn is_opaque(root: std::os::fd::BorrowedFd, path: &Path) -> bool {
    let Ok(dir) = crate::root::open_beneath(root, path, OFlags::DIRECTORY) else {
        return false;
    };
    [OPAQUE_XATTR, "trusted.overlay.opaque"].iter().any(|name| {
        let mut value = [0u8; 1];
        matches!(rfs::fgetxattr(&dir, *name, &mut value), Ok(1) if value == *b"y")
    })
}

impl LayerWriter<'_> {
    fn run(mut self, changes: &[Change]) -> Result<LayerReport, WalkError> {
        for change in changes {
            self.apply(change)?;
        }
        // Directory times last: writing their contents moved them. Deepest first.
        for (path, seen) in self.finish.iter().rev() {
            if let Some(fd) = self.dirs.get(path) {
                write::finish_dir(fd, &display(path), &seen.meta())?;
            }
        }
        Ok(self.report)
    }
}

struct LayerWriter<'a> {
    tree: std::os::fd::BorrowedFd<'a>,
    after: &'a Scan,
    layer: std::os::fd::BorrowedFd<'a>,
    /// Directories made in the layer, open.
    dirs: HashMap<PathBuf, OwnedFd>,
    /// Their metadata, set once their contents are written.
    finish: Vec<(PathBuf, Seen)>,
    /// (dev, ino) of hard-linked files written, and where.
    links: HashMap<(u64, u64), PathBuf>,
    report: LayerReport,
    /// Writing onto a tree (deletions remove, opaque dirs replace) rather than into an empty
    /// layer dir (deletions are whiteouts, opaque dirs are marked).
    onto_tree: bool,
    /// Onto a tree: what is never touched.
    kept: Kept,
}

fn display(path: &Path) -> String {
    format!("/{}", path.display())
}

impl LayerWriter<'_> {
    /// The layer directory for `dir`, made (with the tree's metadata for it, set at the end)
    /// along with its parents when missing.
    fn dir(&mut self, dir: &Path) -> Result<&OwnedFd, WalkError> {
        if !self.dirs.contains_key(dir) {
            let fd = match dir.parent() {
                None => rfs::openat(
                    self.layer,
                    ".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| WalkError::Read {
                    path: "/".into(),
                    source: e.into(),
                })?,
                Some(parent) => {
                    let name = dir.file_name().unwrap_or_default();
                    let parent_fd = self.dir(parent)?;
                    let fd = write::dir(parent_fd, name, &display(dir))?;
                    if let Some(seen) = self.after.get(dir) {
                        self.finish.push((dir.to_path_buf(), *seen));
                    }
                    fd
                }
            };
            self.dirs.insert(dir.to_path_buf(), fd);
        }
        Ok(&self.dirs[dir])
    }

    fn apply(&mut self, change: &Change) -> Result<(), WalkError> {
        let path = change.path();
        let shown = display(path);
        let parent = path.parent().unwrap_or(Path::new(""));
        let name = path.file_name().unwrap_or_default().to_os_string();
        match change {
            Change::Delete(_) if self.onto_tree => {
                let kept = self.kept.clone();
                let parent_fd = self.dir(parent)?;
                remove_except(parent_fd, &name, path, &kept).map_err(|source| WalkError::Read {
                    path: shown,
                    source,
                })?;
            }
            Change::Delete(_) => {
                let parent_fd = self.dir(parent)?;
                let whiteout = EntryMeta {
                    owner: None,
                    mode: 0o600,
                    mtime: (0, 0),
                };
                write::node(
                    parent_fd,
                    &name,
                    &shown,
                    FileType::CharacterDevice,
                    0,
                    &whiteout,
                )?;
                self.report.whiteouts += 1;
            }
            Change::Opaque(_) | Change::Write(_) => {
                let Some(seen) = self.after.get(path).copied() else {
                    return Ok(());
                };
                self.write_entry(
                    path,
                    &name,
                    &shown,
                    seen,
                    matches!(change, Change::Opaque(_)),
                )?;
                self.report.written += 1;
            }
        }
        Ok(())
    }

    fn write_entry(
        &mut self,
        path: &Path,
        name: &OsStr,
        shown: &str,
        seen: Seen,
        opaque: bool,
    ) -> Result<(), WalkError> {
        let parent = path.parent().unwrap_or(Path::new(""));
        let read_err = |source: io::Error| WalkError::Read {
            path: shown.to_string(),
            source,
        };
        if self.onto_tree {
            // Onto a tree: what is there goes when a replacement (or an opaque dir) says so.
            let kept = self.kept.clone();
            let parent_fd = self.dir(parent)?;
            let there = rfs::statat(parent_fd, name, AtFlags::SYMLINK_NOFOLLOW).ok();
            let there_dir =
                there.is_some_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory);
            if there.is_some() && (opaque || (there_dir && seen.kind != FileType::Directory)) {
                remove_except(parent_fd, name, path, &kept).map_err(read_err)?;
            }
        }
        match seen.kind {
            FileType::Directory => {
                let mark_opaque = opaque && !self.onto_tree;
                let fd = self.dir(path)?;
                if mark_opaque {
                    rfs::fsetxattr(fd, OPAQUE_XATTR, b"y", rfs::XattrFlags::empty())
                        .map_err(|e| read_err(e.into()))?;
                }
            }
            FileType::RegularFile => {
                if seen.nlink > 1 {
                    if let Some(first) = self.links.get(&(seen.dev, seen.ino)).cloned() {
                        let layer = self.layer;
                        let parent_fd = self.dir(parent)?;
                        // `first` is in the layer, written by this writer: no symlink on it.
                        write::hard_link(layer, &first, parent_fd, name, shown)?;
                        return Ok(());
                    }
                    self.links.insert((seen.dev, seen.ino), path.to_path_buf());
                }
                let source = crate::root::open_beneath(self.tree, path, OFlags::RDONLY)
                    .map_err(|e| read_err(e.into()))?;
                let now = rfs::fstat(&source).map_err(|e| read_err(e.into()))?;
                if FileType::from_raw_mode(now.st_mode) != FileType::RegularFile
                    || now.st_ino != seen.ino
                {
                    return Err(WalkError::Changed {
                        path: shown.to_string(),
                    });
                }
                let mut input = std::fs::File::from(source);
                let parent_fd = self.dir(parent)?;
                write::file(parent_fd, name, shown, &mut input, &seen.meta())?;
            }
            FileType::Symlink => {
                let parent_in_tree =
                    crate::root::open_beneath(self.tree, parent, OFlags::DIRECTORY)
                        .map_err(|e| read_err(e.into()))?;
                let target = rfs::readlinkat(&parent_in_tree, name, Vec::new())
                    .map_err(|e| read_err(e.into()))?;
                let target = OsStr::from_bytes(target.as_bytes()).to_os_string();
                let parent_fd = self.dir(parent)?;
                write::symlink(parent_fd, name, shown, &target, &seen.meta())?;
            }
            kind => {
                let parent_fd = self.dir(parent)?;
                // A 0/0 character device would read as a whiteout: it is not reproduced.
                let whiteout_like = kind == FileType::CharacterDevice && seen.rdev == 0;
                if whiteout_like
                    || !write::node(parent_fd, name, shown, kind, seen.rdev, &seen.meta())?
                {
                    self.report.skipped_devices.push(shown.to_string());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
