//! The walk snapshotter, for where overlayfs cannot be mounted (overlay on overlayfs, kernels
//! without unprivileged overlay): a stage's steps run in place on a working tree built once
//! from the base layers, and each step's layer is what a metadata walk after it finds changed
//! since the walk before it (`boundary::walk`). A committed step leaves the tree as the next
//! step's root, so a stage's tree is built once, not once per step.

// The paths made here are store temp dirs rbuild creates; the trees themselves are walked,
// read and written only through boundary::walk, by fd.
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::sync::Mutex;

use boundary::walk::{apply_layer, changes, write_layer, Scan};
use rbuild_runtime::RootfsSpec;

use super::{io_error, Snapshot, Snapshotter, WorkerError};
use crate::store::{Lease, Store};

/// True when a directory of the store keeps a whiteout (a 0/0 character device) as one:
/// overlayfs, for one, turns it into a deletion, and layer dirs there would lose theirs.
pub(crate) fn store_holds_whiteouts(store: &Store) -> bool {
    use rustix::fs::{AtFlags, FileType, Mode};
    let Ok(temp) = store.temp_dir("whiteout-probe") else {
        return false;
    };
    let Ok(dir) = boundary::open_root(temp.path()) else {
        return false;
    };
    rustix::fs::mknodat(
        &dir,
        "wh",
        FileType::CharacterDevice,
        Mode::from_raw_mode(0o600),
        0,
    )
    .is_ok()
        && rustix::fs::statat(&dir, "wh", AtFlags::SYMLINK_NOFOLLOW).is_ok_and(|st| {
            FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0
        })
}

/// A working tree: the state of `layers` (bottom first), and its walk.
pub(super) struct WalkedTree {
    dir: tempfile::TempDir,
    layers: Vec<String>,
    scan: Scan,
}

impl WalkedTree {
    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }
}

/// See the module doc. Trees not in use wait in `idle` for the step that continues them.
#[derive(Default)]
pub struct WalkSnapshotter {
    idle: Mutex<Vec<WalkedTree>>,
}

impl WalkSnapshotter {
    /// The tree at the state of `layers`: one left by the step before, else one built by
    /// applying the layers to an empty dir.
    fn tree(&self, store: &Store, layers: &[String]) -> Result<WalkedTree, WorkerError> {
        if let Ok(mut idle) = self.idle.lock() {
            if let Some(at) = idle.iter().position(|t| t.layers == layers) {
                return Ok(idle.swap_remove(at));
            }
        }
        let dir = store.temp_dir("walk-tree")?;
        let root = dir.path().join("root");
        std::fs::create_dir(&root).map_err(io_error("create", &root))?;
        let root_fd = boundary::open_root(&root).map_err(io_error("open", &root))?;
        for diff_id in layers {
            let layer_dir = store.layer_dir(diff_id)?;
            let layer = boundary::open_root(&layer_dir).map_err(io_error("open", &layer_dir))?;
            apply_layer(&layer, &root_fd).map_err(|source| WorkerError::Walk {
                path: layer_dir.clone(),
                source,
            })?;
        }
        let scan = Scan::of(&root_fd, &|_| false).map_err(io_error("walk", &root))?;
        Ok(WalkedTree {
            dir,
            layers: layers.to_vec(),
            scan,
        })
    }
}

impl Snapshotter for WalkSnapshotter {
    fn name(&self) -> &'static str {
        "walk (no overlayfs)"
    }

    fn prepare(
        &self,
        store: &Store,
        layers: &[String],
        purpose: &str,
    ) -> Result<Snapshot, WorkerError> {
        let tree = self.tree(store, layers)?;
        let root = tree.root();
        let rootfs = RootfsSpec {
            lower_dirs: Vec::new(),
            upper_dir: root.clone(),
            work_dir: PathBuf::new(),
            merged_dir: root,
            plain: true,
        };
        let mut snapshot = Snapshot::new(rootfs, store.temp_dir(purpose)?);
        snapshot.walked = Some(tree);
        Ok(snapshot)
    }

    fn commit(
        &self,
        store: &Store,
        lease: &Lease,
        mut snapshot: Snapshot,
    ) -> Result<Option<String>, WorkerError> {
        let Some(mut tree) = snapshot.walked.take() else {
            return Ok(None);
        };
        let root = tree.root();
        let root_fd = boundary::open_root(&root).map_err(io_error("open", &root))?;
        let after = Scan::of(&root_fd, &|_| false).map_err(io_error("walk", &root))?;
        let found = changes(&tree.scan, &after);
        let diff_id = if found.is_empty() {
            None
        } else {
            let layer = snapshot.temp.path().join("layer");
            std::fs::create_dir(&layer).map_err(io_error("create", &layer))?;
            let layer_fd = boundary::open_root(&layer).map_err(io_error("open", &layer))?;
            write_layer(&root_fd, &after, &found, &layer_fd).map_err(|source| {
                WorkerError::Walk {
                    path: root.clone(),
                    source,
                }
            })?;
            let diff_id = super::commit_layer_dir(store, lease, &layer)?;
            tree.layers.push(diff_id.clone());
            Some(diff_id)
        };
        tree.scan = after;
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(tree);
        }
        Ok(diff_id)
    }
}
