//! The overlayfs snapshotter: a step's root is an overlay of the parent layers' dirs (topmost
//! first) with upper/, work/ and merged/ in one temp dir of the store, so that the upper dir,
//! which receives every change, is renamed into layers/ as the new layer without a copy.

// Boundary: every path here is a dir rbuild makes in its own store (temp dirs, layer dirs).
#![allow(clippy::disallowed_methods)]

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Mutex;

use rbuild_runtime::RootfsSpec;
use rustix::fs::{Mode, OFlags};

use super::{io_error, Snapshot, Snapshotter, WorkerError};
use crate::store::{Lease, Store};

/// The overlayfs snapshotter, and the flattened bottoms of stacks too deep for overlayfs.
#[derive(Default)]
pub struct OverlaySnapshotter {
    flattened: Mutex<Vec<Flattened>>,
}

/// overlayfs stacks at most 500 lower dirs (the kernel's OVL_MAX_STACK).
const MAX_LOWERS: usize = 500;
/// A deeper stack has its bottom flattened in whole chunks of this many layers, so that
/// consecutive steps share one flattened tree and it is rebuilt once per chunk, not per step.
const FLATTEN_CHUNK: usize = 256;

/// The tree of the bottom `layers` of a stack, applied one on the other into a temp dir of the
/// store; kept for the build (the snapshotter's life), removed with it.
struct Flattened {
    layers: Vec<String>,
    dir: tempfile::TempDir,
}

impl OverlaySnapshotter {
    /// The layer dirs of `layers` (bottom first in the config), topmost first as overlay wants,
    /// with an empty dir of `temp` at the bottom when `add_empty`. A stack deeper than
    /// overlayfs allows gets its bottom as one flattened tree.
    fn lower_dirs(
        &self,
        store: &Store,
        layers: &[String],
        temp: &tempfile::TempDir,
        add_empty: bool,
    ) -> Result<Vec<PathBuf>, WorkerError> {
        let needed = layers.len() + usize::from(add_empty);
        if needed > MAX_LOWERS {
            // Whole chunks, enough that the rest plus the flattened tree fit.
            let over = needed + 1 - MAX_LOWERS;
            let bottom = over.div_ceil(FLATTEN_CHUNK) * FLATTEN_CHUNK;
            let (below, above) = layers.split_at(bottom.min(layers.len()));
            let mut dirs = store.overlay_lowers(above)?;
            dirs.push(self.flattened(store, below)?);
            return Ok(dirs);
        }
        let mut dirs: Vec<PathBuf> = store.overlay_lowers(layers)?;
        if add_empty {
            let empty = temp.path().join("empty");
            create_dir(&empty)?;
            dirs.push(empty);
        }
        Ok(dirs)
    }

    /// The flattened tree of `layers`, made on first use.
    fn flattened(&self, store: &Store, layers: &[String]) -> Result<PathBuf, WorkerError> {
        // Held while flattening: parallel stages on the same base wait for one tree.
        // (A stage that panicked holding it left the list as it was: still usable.)
        let mut made = self
            .flattened
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(tree) = made.iter().find(|t| t.layers == layers) {
            return Ok(tree.dir.path().join("root"));
        }
        let dir = store.temp_dir("flattened")?;
        let root = dir.path().join("root");
        create_dir(&root)?;
        let root_fd = boundary::open_root(&root).map_err(io_error("open", &root))?;
        for diff_id in layers {
            let layer_dir = store.layer_dir(diff_id)?;
            let layer = boundary::open_root(&layer_dir).map_err(io_error("open", &layer_dir))?;
            boundary::walk::apply_layer(&layer, &root_fd).map_err(|source| WorkerError::Walk {
                path: layer_dir.clone(),
                source,
            })?;
        }
        made.push(Flattened {
            layers: layers.to_vec(),
            dir,
        });
        Ok(root)
    }
}

fn create_dir(dir: &std::path::Path) -> Result<(), WorkerError> {
    std::fs::create_dir(dir).map_err(io_error("create", dir))
}

impl Snapshotter for OverlaySnapshotter {
    fn name(&self) -> &'static str {
        "overlayfs"
    }

    fn uses_overlay(&self) -> bool {
        true
    }

    fn prepare(
        &self,
        store: &Store,
        layers: &[String],
        purpose: &str,
    ) -> Result<Snapshot, WorkerError> {
        let temp = store.temp_dir(purpose)?;
        // overlay needs a lower layer; FROM scratch has none.
        let lower_dirs = self.lower_dirs(store, layers, &temp, layers.is_empty())?;
        let rootfs = RootfsSpec {
            lower_dirs,
            upper_dir: temp.path().join("upper"),
            work_dir: temp.path().join("work"),
            merged_dir: temp.path().join("merged"),
            plain: false,
        };
        for dir in [&rootfs.upper_dir, &rootfs.work_dir, &rootfs.merged_dir] {
            create_dir(dir)?;
        }
        // The upper dir's root becomes the image's / when committed: root-owned, 0755.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&rootfs.upper_dir, std::fs::Permissions::from_mode(0o755))
            .map_err(io_error("chmod", &rootfs.upper_dir))?;
        Ok(Snapshot::new(rootfs, temp))
    }

    fn view(
        &self,
        store: &Store,
        layers: &[String],
        purpose: &str,
    ) -> Result<Snapshot, WorkerError> {
        let temp = store.temp_dir(purpose)?;
        // Without an upper dir overlay wants two lowers at least.
        let lower_dirs = self.lower_dirs(store, layers, &temp, true)?;
        let merged_dir = temp.path().join("merged");
        create_dir(&merged_dir)?;
        let rootfs = RootfsSpec {
            lower_dirs,
            upper_dir: PathBuf::new(),
            work_dir: PathBuf::new(),
            merged_dir,
            plain: false,
        };
        Ok(Snapshot::new(rootfs, temp))
    }

    fn mount(&self, snapshot: &Snapshot) -> Result<MountedRootfs, WorkerError> {
        MountedRootfs::mount(&snapshot.rootfs)
    }

    /// The upper dir's tar digest is computed by streaming, then the dir is renamed into the
    /// store.
    fn commit(
        &self,
        store: &Store,
        lease: &Lease,
        snapshot: Snapshot,
    ) -> Result<Option<String>, WorkerError> {
        let upper = &snapshot.rootfs.upper_dir;
        let is_empty = std::fs::read_dir(upper)
            .map_err(io_error("read", upper))?
            .next()
            .is_none();
        if is_empty {
            return Ok(None);
        }
        Ok(Some(super::commit_layer_dir(store, lease, upper)?))
    }
}

/// Whether an overlay can be mounted over dirs of the store, here: a read-write overlay of
/// one empty lower dir, mounted and unmounted in rbuild's own mount namespace.
pub(super) fn probe(store: &Store) -> Result<(), WorkerError> {
    let snapshotter = OverlaySnapshotter::default();
    let snapshot = snapshotter.prepare(store, &[], "overlay-probe")?;
    let mounted = snapshotter.mount(&snapshot)?;
    drop(mounted);
    Ok(())
}

/// A root open for the steps that write without a container: an overlay mounted at its
/// merged dir in rbuild's own mount namespace (unmounted on drop, also on error paths), or a
/// plain directory a snapshotter keeps as the tree itself.
pub struct MountedRootfs {
    merged: PathBuf,
    root: OwnedFd,
    mounted: bool,
}

impl MountedRootfs {
    /// A plain directory as the root: nothing to mount or unmount.
    pub fn dir(path: &std::path::Path) -> Result<MountedRootfs, WorkerError> {
        let root = rustix::fs::open(path, OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| io_error("open", path)(e.into()))?;
        Ok(MountedRootfs {
            merged: path.to_path_buf(),
            root,
            mounted: false,
        })
    }

    fn mount(rootfs: &RootfsSpec) -> Result<MountedRootfs, WorkerError> {
        rbuild_runtime::mounts::mount_overlay(rootfs)?;
        match rustix::fs::open(
            &rootfs.merged_dir,
            OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(root) => Ok(MountedRootfs {
                merged: rootfs.merged_dir.clone(),
                root,
                mounted: true,
            }),
            Err(e) => {
                let _ = nix::mount::umount2(&rootfs.merged_dir, nix::mount::MntFlags::MNT_DETACH);
                Err(io_error("open", &rootfs.merged_dir)(e.into()))
            }
        }
    }

    /// Where it is mounted.
    pub fn path(&self) -> &std::path::Path {
        &self.merged
    }

    /// A dirfd of the image's `/`: every path below is resolved against it, never the host.
    pub fn root_fd(&self) -> &OwnedFd {
        &self.root
    }

    /// Reads a small file of the image (e.g. /etc/passwd), empty when missing.
    pub fn read_image_file(&self, path: &str) -> String {
        let Ok(fd) = boundary::open_in_root(&self.root, path, OFlags::RDONLY) else {
            return String::new();
        };
        std::io::read_to_string(std::fs::File::from(fd)).unwrap_or_default()
    }
}

impl Drop for MountedRootfs {
    fn drop(&mut self) {
        // The root fd is closed after the lazy unmount; the mount goes once it is.
        if self.mounted {
            let _ = nix::mount::umount2(&self.merged, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}
