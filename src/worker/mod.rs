//! The worker: where steps run and how their changes become layers, behind two seams the
//! solver (`build`) goes through, as BuildKit's worker splits executor and snapshotter.
//!
//! - An [`Executor`] runs a RUN step's process over a prepared root: today the namespaced
//!   sandbox ([`NamespaceExecutor`]: user, mount, pid, ipc and uts namespaces, seccomp).
//! - A [`Snapshotter`] prepares that root over the parent layers and turns what a step
//!   changed into the next layer: today overlayfs ([`OverlaySnapshotter`]: the upper dir is
//!   the layer).
//!
//! A [`Worker`] holds the pair a build uses; the in-place executor and the walk-based
//! snapshotter of the CI-sandbox issue come in as other implementations.

mod namespaces;
mod overlay;

use std::path::PathBuf;

use rbuild_runtime::{MountStub, OutputStream, RootfsSpec, RuntimeError, StepOutcome, StepSpec};

use crate::store::{Lease, Store};

pub use namespaces::NamespaceExecutor;
pub use overlay::{MountedRootfs, OverlaySnapshotter};

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
    /// The runtime could not mount a view.
    #[error(transparent)]
    Setup(#[from] rbuild_runtime::SetupError),
    #[error("{action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io_error(
    action: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> WorkerError {
    let path = path.to_path_buf();
    move |source| WorkerError::Io {
        action,
        path,
        source,
    }
}

/// A root prepared by a snapshotter: what the executor mounts (`rootfs`), and the scratch
/// space that lives as long as the snapshot.
pub struct Snapshot {
    pub rootfs: RootfsSpec,
    /// Where the step's helper files go (e.g. /etc/hosts), removed with the snapshot.
    pub temp: tempfile::TempDir,
}

impl Snapshot {
    /// Takes the mount points the sandbox created out of the snapshot's changes.
    pub fn remove_stubs(&self, stubs: &[MountStub]) {
        rbuild_runtime::remove_stubs(&self.rootfs, stubs);
    }
}

/// Prepares roots over parent layers and commits what a step changed as a layer.
pub trait Snapshotter: Send + Sync {
    /// Its name, as the build output and `rbuild info` show it.
    fn name(&self) -> &'static str;
    /// A writable root over `layers` (diff_ids, bottom first) whose changes become the next
    /// layer.
    fn prepare(
        &self,
        store: &Store,
        layers: &[String],
        purpose: &str,
    ) -> Result<Snapshot, WorkerError>;
    /// A read-only view of `layers` (another stage, an image), for COPY --from and mounts.
    fn view(
        &self,
        store: &Store,
        layers: &[String],
        purpose: &str,
    ) -> Result<Snapshot, WorkerError>;
    /// Mounts a snapshot in rbuild's own mount namespace, for the steps that change files
    /// without a container (COPY, WORKDIR) and for reading a view.
    fn mount(&self, snapshot: &Snapshot) -> Result<MountedRootfs, WorkerError>;
    /// What changed in `snapshot` as a layer in the store, held by `lease`; None when the
    /// step changed nothing.
    fn commit(
        &self,
        store: &Store,
        lease: &Lease,
        snapshot: Snapshot,
    ) -> Result<Option<String>, WorkerError>;
}

/// Runs a RUN step's process over a root a snapshotter prepared.
pub trait Executor: Send + Sync {
    /// Its name, as the build output and `rbuild info` show it.
    fn name(&self) -> &'static str;
    /// Runs `spec` to its end; `on_output` receives its output lines as they come.
    fn run(
        &self,
        spec: &StepSpec,
        on_output: &mut dyn FnMut(OutputStream, &[u8]),
    ) -> Result<StepOutcome, RuntimeError>;
}

/// The executor and snapshotter a build uses.
pub struct Worker {
    pub executor: Box<dyn Executor>,
    pub snapshotter: Box<dyn Snapshotter>,
}

impl Default for Worker {
    /// The namespaced sandbox over overlayfs.
    fn default() -> Worker {
        Worker {
            executor: Box::new(NamespaceExecutor),
            snapshotter: Box::new(OverlaySnapshotter),
        }
    }
}
