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
mod root;
mod walk;

use std::path::PathBuf;

use rbuild_runtime::{MountStub, OutputStream, RootfsSpec, RuntimeError, StepOutcome, StepSpec};

use crate::store::{Lease, Store};

pub use namespaces::NamespaceExecutor;
pub use overlay::{MountedRootfs, OverlaySnapshotter};
pub use root::{kept_paths, InPlaceExecutor, RootSnapshotter};
pub use walk::WalkSnapshotter;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
    /// The runtime could not mount a view.
    #[error(transparent)]
    Setup(#[from] rbuild_runtime::SetupError),
    #[error(
        "overlayfs cannot be mounted here ({overlay}), and the store {} cannot hold layers \
         without it (it is on overlayfs, which turns a layer's whiteouts into deletions): give \
         rbuild a store on a volume or another filesystem (--root DIR or RBUILD_ROOT)",
        store.display()
    )]
    NoSnapshotter { overlay: String, store: PathBuf },
    #[error(
        "--isolation none keeps its layers in the store {}, which cannot hold them (it is on \
         overlayfs, as a container's own files are, which turns a layer's whiteouts into \
         deletions): put the store on a volume or a tmpfs (docker run -v rbuild-store:{0} or \
         --tmpfs {0}), or give another with --root DIR",
        .store.display()
    )]
    StoreOnOverlay { store: PathBuf },
    #[error("cannot snapshot {}", path.display())]
    Walk {
        path: PathBuf,
        #[source]
        source: boundary::walk::WalkError,
    },
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

/// Moves the layer dir `dir` (overlay upper-dir format) into the store as a layer: its tar's
/// digest computed by streaming, the layer claimed by `lease` before it exists (so that no
/// prune removes it before an image or record holds it), the dir renamed into place.
pub(crate) fn commit_layer_dir(
    store: &Store,
    lease: &Lease,
    dir: &std::path::Path,
) -> Result<String, WorkerError> {
    let digest = crate::snapshot::layer_diff_id(dir)?;
    let diff_id = digest.as_oci();
    lease.hold_new(store, &diff_id)?;
    store.commit_layer(
        dir,
        &crate::store::LayerInfo {
            diff_id: diff_id.clone(),
            tar_size: digest.size,
            blobs: Vec::new(),
        },
    )?;
    Ok(diff_id)
}

/// A root prepared by a snapshotter: what the executor mounts (`rootfs`), and the scratch
/// space that lives as long as the snapshot.
pub struct Snapshot {
    pub rootfs: RootfsSpec,
    /// Where the step's helper files go (e.g. /etc/hosts), removed with the snapshot.
    pub temp: tempfile::TempDir,
    /// The walk snapshotter's working tree and its walk before the step.
    walked: Option<walk::WalkedTree>,
    /// The root snapshotter's: the layers the root held when the step began.
    root_layers: Option<Vec<String>>,
}

impl Snapshot {
    pub fn new(rootfs: RootfsSpec, temp: tempfile::TempDir) -> Snapshot {
        Snapshot {
            rootfs,
            temp,
            walked: None,
            root_layers: None,
        }
    }

    /// Takes the mount points the sandbox created out of the snapshot's changes.
    pub fn remove_stubs(&self, stubs: &[MountStub]) {
        rbuild_runtime::remove_stubs(&self.rootfs, stubs);
    }
}

/// Prepares roots over parent layers and commits what a step changed as a layer.
pub trait Snapshotter: Send + Sync {
    /// Its name, as the build output and `rbuild info` show it.
    fn name(&self) -> &'static str;
    /// True when overlayfs can be mounted where it works (the step's bind mounts of layers
    /// may then be overlays too).
    fn uses_overlay(&self) -> bool {
        false
    }
    /// Paths of the root its steps may not write (`--isolation none`: mount points and
    /// rbuild's own); None when the root is a tree of rbuild's own.
    fn kept(&self) -> Option<&boundary::walk::Kept> {
        None
    }
    /// A writable root over `layers` (diff_ids, bottom first) whose changes become the next
    /// layer.
    fn prepare(
        &self,
        store: &Store,
        layers: &[String],
        purpose: &str,
    ) -> Result<Snapshot, WorkerError>;
    /// A read-only view of `layers` (another stage, an image), for COPY --from and mounts;
    /// by default a root of its own that nothing writes into.
    fn view(
        &self,
        store: &Store,
        layers: &[String],
        purpose: &str,
    ) -> Result<Snapshot, WorkerError> {
        self.prepare(store, layers, purpose)
    }
    /// Opens a snapshot's root in rbuild's own mount namespace, for the steps that change
    /// files without a container (COPY, WORKDIR) and for reading a view; by default the root
    /// is a plain directory and nothing is mounted.
    fn mount(&self, snapshot: &Snapshot) -> Result<MountedRootfs, WorkerError> {
        MountedRootfs::dir(&snapshot.rootfs.merged_dir)
    }
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
            snapshotter: Box::new(OverlaySnapshotter::default()),
        }
    }
}

/// Which snapshotter this process uses, decided once: `RBUILD_SNAPSHOTTER=overlay|walk`
/// when set, else overlayfs when a test mount in the store works, else the walk snapshotter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotterChoice {
    Overlay,
    /// With why overlayfs was not used.
    Walk(String),
    /// Neither works: overlayfs cannot be mounted and the store cannot hold a layer's
    /// whiteouts (a store on overlayfs turns them into real deletions).
    Neither {
        overlay: String,
        store: PathBuf,
    },
}

static CHOICE: std::sync::OnceLock<SnapshotterChoice> = std::sync::OnceLock::new();

impl SnapshotterChoice {
    /// The choice for `store`, and whether this call made it (to say it once).
    pub fn for_store(store: &Store) -> (SnapshotterChoice, bool) {
        let mut made = false;
        let choice = CHOICE.get_or_init(|| {
            made = true;
            match std::env::var("RBUILD_SNAPSHOTTER").as_deref() {
                Ok("walk") if walk::store_holds_whiteouts(store) => {
                    SnapshotterChoice::Walk("RBUILD_SNAPSHOTTER=walk".into())
                }
                Ok("walk") => SnapshotterChoice::Neither {
                    overlay: "RBUILD_SNAPSHOTTER=walk".into(),
                    store: store.root().to_path_buf(),
                },
                Ok("overlay") => SnapshotterChoice::Overlay,
                _ => match overlay::probe(store) {
                    Ok(()) => SnapshotterChoice::Overlay,
                    Err(e) if walk::store_holds_whiteouts(store) => {
                        SnapshotterChoice::Walk(format!(
                            "overlayfs cannot be mounted here ({})",
                            crate::error_chain(&e)
                        ))
                    }
                    Err(e) => SnapshotterChoice::Neither {
                        overlay: crate::error_chain(&e),
                        store: store.root().to_path_buf(),
                    },
                },
            }
        });
        (choice.clone(), made)
    }
}

impl Worker {
    /// `--isolation none`: steps in place on this container's root, `kept` left alone; the
    /// store must hold whiteouts (not be on the container's overlayfs).
    pub fn in_place(store: &Store, kept: boundary::walk::Kept) -> Result<Worker, WorkerError> {
        if !walk::store_holds_whiteouts(store) {
            return Err(WorkerError::StoreOnOverlay {
                store: store.root().to_path_buf(),
            });
        }
        Ok(Worker {
            executor: Box::new(InPlaceExecutor),
            snapshotter: Box::new(RootSnapshotter::new(kept)),
        })
    }

    /// The namespaced sandbox over the snapshotter `choice` names.
    pub fn with(choice: &SnapshotterChoice) -> Result<Worker, WorkerError> {
        Ok(Worker {
            executor: Box::new(NamespaceExecutor),
            snapshotter: match choice {
                SnapshotterChoice::Overlay => Box::new(OverlaySnapshotter::default()),
                SnapshotterChoice::Walk(_) => Box::new(WalkSnapshotter::default()),
                SnapshotterChoice::Neither { overlay, store } => {
                    return Err(WorkerError::NoSnapshotter {
                        overlay: overlay.clone(),
                        store: store.clone(),
                    })
                }
            },
        })
    }
}
