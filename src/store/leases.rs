//! Leases: the layers a running build uses, so that `prune` running meanwhile keeps them.
//!
//! A build holds `leases/PID-N.lease` open with an exclusive `flock` for as long as it runs and
//! appends to it every layer it starts to use (a base image's, a cache hit's, one it is about
//! to commit). gc reads the leases under the store lock: a file whose lock it can take belongs
//! to a process that is gone (the kernel drops a dead process's locks), and is reclaimed; the
//! layers of the others are kept. Appends also take the store lock and then check the layer is
//! still there, so a layer is either kept by gc or known to the build as gone, never both.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use super::{io_err, Store, StoreError};

/// A running build's claim on the layers it uses; released (the file removed) on drop.
#[derive(Debug)]
pub struct Lease {
    file: Mutex<std::fs::File>,
    path: PathBuf,
}

impl Store {
    fn leases_dir(&self) -> PathBuf {
        self.root.join("leases")
    }

    /// Takes a lease for this process.
    pub fn lease(&self) -> Result<Lease, StoreError> {
        let dir = self.leases_dir();
        std::fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        let (file, path) = tempfile::Builder::new()
            .prefix(&format!("{}-", std::process::id()))
            .suffix(".lease")
            .tempfile_in(&dir)
            .map_err(io_err("create a lease in", &dir))?
            .keep()
            .map_err(|e| StoreError::Io {
                action: "keep",
                path: dir.clone(),
                source: e.error,
            })?;
        file.lock().map_err(io_err("lock", &path))?;
        Ok(Lease {
            file: Mutex::new(file),
            path,
        })
    }

    /// The layers of the leases of running builds; leases whose owner is gone are removed.
    /// The caller holds the store lock.
    pub(super) fn leased_layers(&self) -> Result<BTreeSet<String>, StoreError> {
        let mut layers = BTreeSet::new();
        let dir = self.leases_dir();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(layers);
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(file) = std::fs::File::open(&path) else {
                continue;
            };
            match file.try_lock() {
                // nobody holds it: its build is gone
                Ok(()) => {
                    let _ = std::fs::remove_file(&path);
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    layers.extend(text.lines().map(str::to_string));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(StoreError::Io {
                        action: "check the lease",
                        path,
                        source: e,
                    })
                }
            }
        }
        Ok(layers)
    }
}

impl Lease {
    /// Claims `diff_ids` for the build. False when one of them is no longer in the store
    /// (pruned before the claim): the caller treats it as missing.
    pub fn hold(&self, store: &Store, diff_ids: &[String]) -> Result<bool, StoreError> {
        if diff_ids.is_empty() {
            return Ok(true);
        }
        let _lock = store.lock()?;
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let mut lines = String::new();
        for diff_id in diff_ids {
            lines.push_str(diff_id);
            lines.push('\n');
        }
        file.write_all(lines.as_bytes())
            .map_err(io_err("write the lease", &self.path))?;
        Ok(diff_ids.iter().all(|d| store.has_layer(d)))
    }

    /// Claims a layer that is about to be committed (it is not in the store yet).
    pub fn hold_new(&self, store: &Store, diff_id: &str) -> Result<(), StoreError> {
        self.hold(store, &[diff_id.to_string()]).map(|_| ())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
