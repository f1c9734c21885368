//! The local content store (DESIGN.md, The store): config and layer blobs, layer dirs in
//! overlay format, tags, the step cache; atomic writes and a store lock.
//!
//! Layout under the root:
//!   blobs/sha256/HEX     configs, and compressed layer blobs (pulled, loaded or made for an output)
//!   blobs/sources/HEX    registry repositories known to hold the blob (cross-repo mount hints)
//!   layers/HEX/diff/     a layer's files in overlay upper-dir format (HEX = its diff_id)
//!   layers/HEX/layer.json  what is known of it: tar size, blobs that carry it
//!   images/HEX           one file per image in the store (HEX = config digest = image id)
//!   refs.json            tag -> image id
//!   platform-lists.json  tag -> image ids of a multi-platform build, one per platform
//!   cache/KEY.json       step cache records
//!   tmp/                 work dirs of running builds; reclaimed when their owner is gone
//!   leases/PID-N.lease   layers a running build uses (flock held while it runs); gc keeps them
//!   lock                 flock: held exclusively while refs/images change

// Paths here are the store's own (layer dirs, blobs, records under --root): the boundary rule (clippy.toml) does not apply.
#![allow(clippy::disallowed_methods)]

mod atomic;
mod blobs;
mod cache;
mod gc;
mod layers;
mod leases;
mod lists;
mod refs;
mod sources;

use std::path::{Path, PathBuf};

pub use atomic::{write_atomic, write_atomic_unsynced, StoreLock};
pub use cache::CacheRecord;
pub use gc::{DiskUsage, PruneOptions, PruneReport};
pub use layers::{LayerBlob, LayerInfo};
pub use leases::Lease;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt store file {path}: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("blob {digest} is missing from the store")]
    MissingBlob { digest: String },
    #[error("blob {digest} is corrupt: its content hashes to {actual}")]
    BadBlob { digest: String, actual: String },
    #[error("layer {diff_id} is missing from the store")]
    MissingLayer { diff_id: String },
    #[error("no such image: {name}")]
    NoSuchImage { name: String },
    #[error("image id prefix {prefix} matches several images; give more characters")]
    AmbiguousImage { prefix: String },
    #[error("invalid digest {digest:?}: expected sha256:<64 hex digits>")]
    BadDigest { digest: String },
}

pub(crate) fn io_err<'p>(
    action: &'static str,
    path: &'p Path,
) -> impl FnOnce(std::io::Error) -> StoreError + 'p {
    move |source| StoreError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// An open store. Cheap to clone paths from; every mutation is atomic on disk.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// `sha256:HEX` -> `HEX`, checking the form (store paths are built from it).
pub fn digest_hex(digest: &str) -> Result<&str, StoreError> {
    let hex = digest.strip_prefix("sha256:").unwrap_or("");
    if hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(hex)
    } else {
        Err(StoreError::BadDigest {
            digest: digest.to_string(),
        })
    }
}

impl Store {
    /// Opens (creating when needed) the store at `root`, and reclaims temp dirs of dead builds.
    /// The store is private to its owner (0700): it holds every layer (setuid files
    /// included), secrets while their step runs, and cached build state.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        for sub in ["blobs/sha256", "layers", "images", "cache", "tmp"] {
            let dir = root.join(sub);
            std::fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        }
        make_private(root)?;
        let store = Store {
            root: root.to_path_buf(),
        };
        store.reclaim_temp_dirs();
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Takes the store lock (blocking) for a read-modify-write of refs or images.
    pub fn lock(&self) -> Result<StoreLock, StoreError> {
        StoreLock::acquire(&self.root.join("lock"))
    }

    /// A fresh work dir under tmp/, removed when dropped. Its name carries our pid so that a
    /// later command can tell a dead build's leftovers from a running one's.
    pub fn temp_dir(&self, purpose: &str) -> Result<tempfile::TempDir, StoreError> {
        let tmp = self.root.join("tmp");
        tempfile::Builder::new()
            .prefix(&format!("{}-{purpose}-", std::process::id()))
            .tempdir_in(&tmp)
            .map_err(io_err("create temp dir in", &tmp))
    }

    /// Removes what dead processes left: their work dirs and temp files in tmp/ (`PID-...`),
    /// and write_atomic's temp files (`.PID-...`) in the flat dirs of the store. (A layer
    /// dir's leftover makes the layer incomplete: prune and `system check` remove it.)
    fn reclaim_temp_dirs(&self) {
        self.reclaim_in(&self.root.join("tmp"), "");
        for dir in ["", "blobs/sha256", "cache", "images"] {
            self.reclaim_in(&self.root.join(dir), ".");
        }
    }

    fn reclaim_in(&self, dir: &Path, prefix: &str) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix(prefix))
                .and_then(|n| n.split('-').next())
                .and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            // EPERM: the process exists, as someone we may not signal (conservatively alive)
            let alive = pid == std::process::id() as i32
                || !matches!(
                    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
                    Err(nix::errno::Errno::ESRCH)
                );
            if !alive {
                // a work dir, or a blob temp file of a killed save or pull
                let path = entry.path();
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    let _ = remove_tree(&path);
                } else {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
    }
}

/// Gives `root` mode 0700 unless it has it already.
fn make_private(root: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(root).map_err(io_err("stat", root))?;
    if meta.permissions().mode() & 0o7777 != 0o700 {
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))
            .map_err(io_err("make private (chmod 0700)", root))?;
    }
    Ok(())
}

/// Removes a tree, first making dirs writable (overlay work dirs are left mode 000).
pub fn remove_tree(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            for entry in walkdir::WalkDir::new(path).into_iter().flatten() {
                if entry.file_type().is_dir() {
                    let _ = std::fs::set_permissions(
                        entry.path(),
                        std::fs::Permissions::from_mode(0o700),
                    );
                }
            }
            std::fs::remove_dir_all(path)
        }
    }
}
