//! The image's final filesystem as an output (`type=local` and `type=tar`): the layers are
//! mounted as one read-only overlay view and that view is copied into a directory or tarred.
//! Writes into the destination never follow a symlink: each parent is opened beneath it with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` and the entry created relative to that fd.

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags};

use super::{io_err, ArchiveError};
use crate::snapshot;
use crate::store::Store;
use crate::worker::{MountedRootfs, Snapshot, SnapshotterChoice, Worker};

/// What a local export could not reproduce as an unprivileged user.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LocalReport {
    /// Device nodes skipped: creating them needs privileges the user does not have.
    pub skipped_devices: Vec<String>,
}

/// The image's layers merged read-only at a mount point (the worker's read-only view),
/// unmounted on drop before its dirs go.
struct MergedView {
    mounted: MountedRootfs,
    _view: Snapshot,
}

impl MergedView {
    fn mount(store: &Store, image_id: &str) -> Result<MergedView, ArchiveError> {
        let config = store.read_blob(image_id)?;
        let config: serde_json::Value =
            serde_json::from_slice(&config).map_err(|e| ArchiveError::Invalid {
                path: PathBuf::from(image_id),
                message: format!("image config: {e}"),
            })?;
        let mut diff_ids = Vec::new();
        for diff_id in config["rootfs"]["diff_ids"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(diff_id) = diff_id.as_str() {
                // A layer changed behind the store's back is never exported (as `save`).
                if let Some(why) = crate::check::layer_problem(store, diff_id) {
                    return Err(ArchiveError::Invalid {
                        path: store.layer_dir(diff_id)?,
                        message: format!("layer {diff_id}: {why}"),
                    });
                }
                diff_ids.push(diff_id.to_string());
            }
        }
        // The snapshotter builds use: overlayfs, or a tree of its own where overlayfs cannot
        // be mounted.
        let (choice, _) = SnapshotterChoice::for_store(store);
        let snapshotter = Worker::with(&choice)?.snapshotter;
        let view = snapshotter.view(store, &diff_ids, "export")?;
        Ok(MergedView {
            mounted: snapshotter.mount(&view)?,
            _view: view,
        })
    }

    fn path(&self) -> &Path {
        self.mounted.path()
    }
}

/// Writes the image's filesystem as one tar (`type=tar`), mtimes clamped to `clamp_mtime`.
pub fn export_tar(
    store: &Store,
    image_id: &str,
    out: Box<dyn Write>,
    clamp_mtime: Option<i64>,
) -> Result<(), ArchiveError> {
    let view = MergedView::mount(store, image_id)?;
    let mut out = snapshot::write_layer_tar_clamped(view.path(), out, clamp_mtime)?;
    out.flush().map_err(io_err("write", Path::new("-")))?;
    Ok(())
}

/// Copies the image's filesystem into `dest` (`type=local`). Ownership is kept only when
/// rbuild runs as the real root: an unprivileged user gets files of their own.
pub fn export_local(
    store: &Store,
    image_id: &str,
    dest: &Path,
    clamp_mtime: Option<i64>,
) -> Result<LocalReport, ArchiveError> {
    let view = MergedView::mount(store, image_id)?;
    copy_tree(view.path(), dest, is_host_root(), clamp_mtime)
}

/// True when the process is root of the initial user namespace (the identity map).
// Boundary: a kernel interface.
#[allow(clippy::disallowed_methods)]
fn is_host_root() -> bool {
    let Ok(map) = std::fs::read_to_string("/proc/self/uid_map") else {
        return false;
    };
    let fields: Vec<&str> = map.split_whitespace().collect();
    rustix::process::geteuid().is_root() && fields == ["0", "0", "4294967295"]
}

fn errno_err(action: &'static str, path: &Path) -> impl FnOnce(rustix::io::Errno) -> ArchiveError {
    let path = path.to_path_buf();
    move |e| ArchiveError::Io {
        action,
        path,
        source: e.into(),
    }
}

fn open_beneath(root: &OwnedFd, rel: &Path, dest: &Path) -> Result<OwnedFd, ArchiveError> {
    boundary::open_beneath(root, rel, OFlags::DIRECTORY).map_err(errno_err(
        "open (without following symlinks)",
        &dest.join(rel),
    ))
}

/// Copies `src` (our own read-only mount of the image's layers) into `dest`. Every entry is
/// written by the boundary's tree writer, relative to its parent opened beneath `dest` with no
/// symlink followed: whatever is in the way is replaced, never written through.
// Boundary: reads a read-only overlay view rbuild mounted (walked without following symlinks:
// no path component can change under it); writes go through boundary::write.
#[allow(clippy::disallowed_methods)]
fn copy_tree(
    src: &Path,
    dest: &Path,
    keep_owner: bool,
    clamp_mtime: Option<i64>,
) -> Result<LocalReport, ArchiveError> {
    use boundary::write::{self, EntryMeta};
    std::fs::create_dir_all(dest).map_err(io_err("create", dest))?;
    let root = rustix::fs::open(
        dest,
        OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )
    .map_err(errno_err("open", dest))?;
    let meta_of = |meta: &std::fs::Metadata| EntryMeta {
        owner: keep_owner.then(|| (meta.uid(), meta.gid())),
        mode: meta.mode() & 0o7777,
        mtime: (clamp_mtime.map_or(meta.mtime(), |c| meta.mtime().min(c)), 0),
    };
    let mut report = LocalReport::default();
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    // Dirs get their final mode, owner and mtime after their contents are written.
    let mut dirs: Vec<(PathBuf, EntryMeta)> = Vec::new();
    let walker = walkdir::WalkDir::new(src)
        .min_depth(1)
        .follow_links(false)
        .sort_by(|a, b| a.file_name().as_bytes().cmp(b.file_name().as_bytes()));
    for item in walker {
        let item = item.map_err(|e| ArchiveError::Io {
            action: "read",
            path: e.path().unwrap_or(src).to_path_buf(),
            source: e.into(),
        })?;
        let path = item.path();
        let rel = path.strip_prefix(src).unwrap_or(path).to_path_buf();
        let shown = dest.join(&rel).display().to_string();
        let name = item.file_name();
        let parent = open_beneath(&root, rel.parent().unwrap_or(Path::new("")), dest)?;
        let meta = item.metadata().map_err(|e| ArchiveError::Io {
            action: "read",
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        let entry = meta_of(&meta);
        let ft = meta.file_type();
        if ft.is_dir() {
            write::dir(&parent, name, &shown)?;
            dirs.push((rel, entry));
        } else if ft.is_file() {
            if meta.nlink() > 1 {
                if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
                    write::hard_link(&root, first, &parent, name, &shown)?;
                    continue;
                }
                links.insert((meta.dev(), meta.ino()), rel.clone());
            }
            let mut input = std::fs::File::open(path).map_err(io_err("read", path))?;
            write::file(&parent, name, &shown, &mut input, &entry)?;
        } else if ft.is_symlink() {
            let link = std::fs::read_link(path).map_err(io_err("read", path))?;
            write::symlink(&parent, name, &shown, link.as_os_str(), &entry)?;
        } else if ft.is_fifo() || ft.is_char_device() || ft.is_block_device() {
            let kind = if ft.is_fifo() {
                FileType::Fifo
            } else if ft.is_char_device() {
                FileType::CharacterDevice
            } else {
                FileType::BlockDevice
            };
            if !write::node(&parent, name, &shown, kind, meta.rdev(), &entry)? {
                report
                    .skipped_devices
                    .push(format!("/{}", rel.as_os_str().to_string_lossy()));
            }
        }
        // sockets are skipped, as in layer tars
    }
    for (rel, entry) in dirs.iter().rev() {
        let fd = open_beneath(&root, rel, dest)?;
        write::finish_dir(&fd, &dest.join(rel).display().to_string(), entry)?;
    }
    Ok(report)
}
