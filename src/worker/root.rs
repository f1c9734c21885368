//! `--isolation none`, kaniko's model, for a container that exists only for the build: the
//! stage's files are put into the container's own root, RUN steps run there directly
//! ([`InPlaceExecutor`]), and each step's layer is what a metadata walk of the root finds
//! changed since the walk before it ([`RootSnapshotter`]).
//!
//! Never walked, written, replaced or removed ([`kept_paths`]): `/proc`, `/sys`, `/dev`, every
//! mount point of `/proc/self/mountinfo` (volumes: the context, the CI's build dir, a mounted
//! docker.sock), the files the engine manages (`/etc/hosts`, `/etc/resolv.conf`,
//! `/etc/hostname`), and the paths rbuild uses (its own directory, the store, the context, the
//! outputs). The root as rbuild found it is saved first and put back when the build ends,
//! on success or failure, so a CI job can go on with its next script line.

// The tree here is the container's root, which rbuild (root in a container made for the
// build) owns; it is walked, written and cleared through boundary::walk by fd, leaving out
// the kept paths. The paths opened by name are rbuild's own (mountinfo, store dirs).
#![allow(clippy::disallowed_methods)]

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use boundary::walk::{apply_layer_keeping, changes, remove_except, write_layer, Kept, Scan};
use rbuild_runtime::{OutputStream, RootfsSpec, RuntimeError, StepOutcome, StepSpec};

use super::{io_error, Executor, Snapshot, Snapshotter, WalkSnapshotter, WorkerError};
use crate::store::{Lease, Store};

/// Runs a RUN step's process directly in this container (`rbuild_runtime::inplace`).
pub struct InPlaceExecutor;

impl Executor for InPlaceExecutor {
    fn name(&self) -> &'static str {
        "in place (--isolation none)"
    }

    fn run(
        &self,
        spec: &StepSpec,
        on_output: &mut dyn FnMut(OutputStream, &[u8]),
    ) -> Result<StepOutcome, RuntimeError> {
        rbuild_runtime::inplace::run_in_place(spec, on_output)
    }
}

/// `\040`-style escapes of a mountinfo field undone.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4].iter().all(u8::is_ascii_digit)
        {
            let octal = std::str::from_utf8(&bytes[i + 1..i + 4]).unwrap_or("0");
            out.push(u8::from_str_radix(octal, 8).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount points of a mountinfo text, but `/`.
pub fn mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|point| point != "/")
        .map(PathBuf::from)
        .collect()
}

/// What the root snapshotter leaves alone, relative to `/`: the fixed list, every mount point
/// of this process, and `used` (the paths the build reads or writes; canonicalized, so a
/// symlink on the way cannot send a wipe past them).
pub fn kept_paths(used: &[PathBuf]) -> Kept {
    let mut kept: Vec<PathBuf> = [
        "proc",
        "sys",
        "dev",
        "etc/hosts",
        "etc/resolv.conf",
        "etc/hostname",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let absolute = mount_points(&mountinfo).into_iter().chain(
        used.iter()
            .map(|p| p.canonicalize().unwrap_or_else(|_| p.clone())),
    );
    for path in absolute {
        if let Ok(relative) = path.strip_prefix("/") {
            if !relative.as_os_str().is_empty() && !kept.iter().any(|k| relative.starts_with(k)) {
                kept.push(relative.to_path_buf());
            }
        }
    }
    Kept(kept)
}

/// The root's state: the layers it holds (None: unknown, e.g. after a step that failed) and
/// its walk.
#[derive(Default)]
struct RootState {
    layers: Option<Vec<String>>,
    scan: Scan,
    /// The root as found, as a layer dir, put back on drop.
    as_found: Option<tempfile::TempDir>,
}

/// See the module doc. Views (COPY --from, mounts of other stages) are trees of their own
/// in the store, made by the walk snapshotter.
pub struct RootSnapshotter {
    root: PathBuf,
    kept: Kept,
    state: Mutex<RootState>,
    views: WalkSnapshotter,
}

impl RootSnapshotter {
    pub fn new(kept: Kept) -> RootSnapshotter {
        RootSnapshotter {
            root: PathBuf::from("/"),
            kept,
            state: Mutex::new(RootState::default()),
            views: WalkSnapshotter::default(),
        }
    }

    fn open_root(&self) -> Result<OwnedFd, WorkerError> {
        boundary::open_root(&self.root).map_err(io_error("open", &self.root))
    }

    fn scan(&self, root: &OwnedFd) -> Result<Scan, WorkerError> {
        let kept = &self.kept;
        Scan::of(root, &|path| kept.keeps(path)).map_err(io_error("walk", &self.root))
    }

    /// Removes everything of the root but the kept paths.
    fn clear(&self, root: &OwnedFd) -> Result<(), WorkerError> {
        let names: Vec<std::ffi::OsString> = std::fs::read_dir(&self.root)
            .map_err(io_error("list", &self.root))?
            .filter_map(|entry| entry.ok().map(|e| e.file_name()))
            .collect();
        for name in names {
            remove_except(root, &name, Path::new(&name), &self.kept)
                .map_err(io_error("clear", &self.root.join(&name)))?;
        }
        Ok(())
    }

    fn apply(&self, store: &Store, root: &OwnedFd, layers: &[String]) -> Result<(), WorkerError> {
        for diff_id in layers {
            let layer_dir = store.layer_dir(diff_id)?;
            let layer = boundary::open_root(&layer_dir).map_err(io_error("open", &layer_dir))?;
            apply_layer_keeping(&layer, root, &self.kept).map_err(|source| WorkerError::Walk {
                path: layer_dir.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Saves the root as found (once), as a layer dir in the store.
    fn save_as_found(
        &self,
        store: &Store,
        state: &mut RootState,
        root: &OwnedFd,
    ) -> Result<(), WorkerError> {
        if state.as_found.is_some() {
            return Ok(());
        }
        let scan = self.scan(root)?;
        let all = changes(&Scan::default(), &scan);
        let dir = store.temp_dir("root-as-found")?;
        let layer = boundary::open_root(dir.path()).map_err(io_error("open", dir.path()))?;
        write_layer(root, &scan, &all, &layer).map_err(|source| WorkerError::Walk {
            path: self.root.clone(),
            source,
        })?;
        state.as_found = Some(dir);
        Ok(())
    }
}

impl Snapshotter for RootSnapshotter {
    fn name(&self) -> &'static str {
        "the container's root (--isolation none)"
    }

    fn kept(&self) -> Option<&Kept> {
        Some(&self.kept)
    }

    fn prepare(
        &self,
        store: &Store,
        layers: &[String],
        purpose: &str,
    ) -> Result<Snapshot, WorkerError> {
        let mut state = self.state.lock().map_err(|_| WorkerError::Io {
            action: "lock",
            path: self.root.clone(),
            source: std::io::Error::other("a step panicked"),
        })?;
        let root = self.open_root()?;
        self.save_as_found(store, &mut state, &root)?;
        match state.layers.as_deref() {
            Some(held) if held == layers => {}
            // The step before committed; the steps since hit the cache: add their layers.
            Some(held) if layers.starts_with(held) => {
                self.apply(store, &root, &layers[held.len()..])?;
            }
            _ => {
                self.clear(&root)?;
                self.apply(store, &root, layers)?;
            }
        }
        state.scan = self.scan(&root)?;
        // Unknown until the step commits (a failed step leaves its changes).
        state.layers = None;
        let pending = layers.to_vec();
        drop(state);
        let rootfs = RootfsSpec {
            lower_dirs: Vec::new(),
            upper_dir: self.root.clone(),
            work_dir: PathBuf::new(),
            merged_dir: self.root.clone(),
            plain: true,
        };
        let mut snapshot = Snapshot::new(rootfs, store.temp_dir(purpose)?);
        snapshot.root_layers = Some(pending);
        Ok(snapshot)
    }

    fn view(
        &self,
        store: &Store,
        layers: &[String],
        purpose: &str,
    ) -> Result<Snapshot, WorkerError> {
        self.views.prepare(store, layers, purpose)
    }

    fn commit(
        &self,
        store: &Store,
        lease: &Lease,
        mut snapshot: Snapshot,
    ) -> Result<Option<String>, WorkerError> {
        let Some(mut layers) = snapshot.root_layers.take() else {
            // A view: nothing of the root.
            return self.views.commit(store, lease, snapshot);
        };
        let mut state = self.state.lock().map_err(|_| WorkerError::Io {
            action: "lock",
            path: self.root.clone(),
            source: std::io::Error::other("a step panicked"),
        })?;
        let root = self.open_root()?;
        let after = self.scan(&root)?;
        let found = changes(&state.scan, &after);
        let diff_id = if found.is_empty() {
            None
        } else {
            let layer = snapshot.temp.path().join("layer");
            std::fs::create_dir(&layer).map_err(io_error("create", &layer))?;
            let layer_fd = boundary::open_root(&layer).map_err(io_error("open", &layer))?;
            write_layer(&root, &after, &found, &layer_fd).map_err(|source| WorkerError::Walk {
                path: self.root.clone(),
                source,
            })?;
            let diff_id = super::commit_layer_dir(store, lease, &layer)?;
            layers.push(diff_id.clone());
            Some(diff_id)
        };
        state.scan = after;
        state.layers = Some(layers);
        Ok(diff_id)
    }
}

impl Drop for RootSnapshotter {
    /// Puts the root back as it was found.
    fn drop(&mut self) {
        let Ok(state) = self.state.get_mut() else {
            return;
        };
        let Some(as_found) = state.as_found.take() else {
            return;
        };
        let restored = self.open_root().and_then(|root| {
            self.clear(&root)?;
            let layer =
                boundary::open_root(as_found.path()).map_err(io_error("open", as_found.path()))?;
            apply_layer_keeping(&layer, &root, &self.kept).map_err(|source| WorkerError::Walk {
                path: self.root.clone(),
                source,
            })?;
            Ok(())
        });
        if let Err(e) = restored {
            eprintln!(
                "error: cannot put the container's root back as it was: {}",
                crate::error_chain(&e)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_come_from_mountinfo_unescaped() {
        let mountinfo = "22 1 0:21 / / rw,relatime - overlay overlay rw\n\
            23 22 0:22 / /proc rw - proc proc rw\n\
            40 22 8:1 /builds /builds rw - ext4 /dev/sda1 rw\n\
            41 22 8:1 /x /my\\040volume rw - ext4 /dev/sda1 rw\n";
        assert_eq!(
            mount_points(mountinfo),
            [
                PathBuf::from("/proc"),
                PathBuf::from("/builds"),
                PathBuf::from("/my volume")
            ]
        );
    }
}
