//! Atomic file replacement and the store lock.

use std::io::Write;
use std::path::Path;

use super::{io_err, StoreError};

/// Writes `bytes` to `path` through a temp file in the same dir, fsync, rename: readers see
/// the old content or the new, never a torn file, even if the process dies. The temp file is
/// named `.PID-XXXX`, so that one left by a killed process is reclaimed (Store::open).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    write_replacing(path, bytes, true)
}

/// As [`write_atomic`] (readers see the old content or the new) but without the fsync, for
/// records that are hints: a step-cache record lost or emptied by a crash reads as a miss
/// and costs one rerun of the step, while an fsync per step was most of the cost of a
/// Dockerfile of metadata instructions (a build of 100,000 `ENV` lines spent it 100,000 times).
pub fn write_atomic_unsynced(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    write_replacing(path, bytes, false)
}

fn write_replacing(path: &Path, bytes: &[u8], sync: bool) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{}-", std::process::id()))
        .tempfile_in(dir)
        .map_err(io_err("create temp file in", dir))?;
    temp.write_all(bytes)
        .map_err(io_err("write", temp.path()))?;
    if sync {
        temp.as_file().sync_all().map_err(io_err("sync", path))?;
    }
    temp.persist(path).map_err(|e| StoreError::Io {
        action: "replace",
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

/// An exclusive flock on the store's lock file, released on drop.
#[derive(Debug)]
pub struct StoreLock {
    _file: std::fs::File,
}

impl StoreLock {
    pub fn acquire(path: &Path) -> Result<StoreLock, StoreError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io_err("open lock file", path))?;
        file.lock().map_err(io_err("lock", path))?;
        Ok(StoreLock { _file: file })
    }
}
