//! The step cache: cache key -> what the step produced, so a rebuild can skip it.

use serde::{Deserialize, Serialize};

use super::{io_err, write_atomic_unsynced, Store, StoreError};

/// What a cached step produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// The layer it added, or None when its diff was empty.
    pub diff_id: Option<String>,
    /// When it ran (the history entry's `created`), so a hit reproduces the same config.
    pub created: String,
}

impl Store {
    fn cache_path(&self, key: &str) -> std::path::PathBuf {
        self.root.join("cache").join(format!("{key}.json"))
    }

    /// The record for `key`, if present and its layer still exists.
    pub fn cache_lookup(&self, key: &str) -> Option<CacheRecord> {
        let path = self.cache_path(key);
        let bytes = std::fs::read(&path).ok()?;
        let record: CacheRecord = serde_json::from_slice(&bytes).ok()?;
        // Its mtime tells prune when it was last used.
        if let Ok(file) = std::fs::File::options().write(true).open(&path) {
            let _ = file.set_modified(std::time::SystemTime::now());
        }
        match &record.diff_id {
            Some(diff_id) if !self.has_layer(diff_id) => None,
            _ => Some(record),
        }
    }

    /// The record for `key` as stored, without touching its last-use time.
    pub fn cache_peek(&self, key: &str) -> Option<CacheRecord> {
        let bytes = std::fs::read(self.cache_path(key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Where the cache mount `id` keeps its files.
    pub fn cache_mount_dir(&self, id: &str) -> std::path::PathBuf {
        use sha2::Digest as _;
        self.root
            .join("cache-mounts")
            .join(hex::encode(sha2::Sha256::digest(id.as_bytes())))
    }

    /// Held while a step with this key runs: another rbuild (or stage) about to run the same
    /// step waits, then finds it in the cache instead of running it again.
    pub fn step_lock(&self, key: &str) -> Result<super::StoreLock, StoreError> {
        super::StoreLock::acquire(&self.root.join("cache").join(format!("{key}.lock")))
    }

    pub fn cache_store(&self, key: &str, record: &CacheRecord) -> Result<(), StoreError> {
        let path = self.cache_path(key);
        let bytes = serde_json::to_vec(record).map_err(|source| StoreError::Corrupt {
            path: path.clone(),
            source,
        })?;
        // A record is a hint (a lost one is a miss): not worth an fsync per step.
        write_atomic_unsynced(&path, &bytes)
    }

    /// Drops every cache record (used by `rbuild system reset` callers and tests).
    pub fn cache_clear(&self) -> Result<(), StoreError> {
        let dir = self.root.join("cache");
        for entry in std::fs::read_dir(&dir)
            .map_err(io_err("list", &dir))?
            .flatten()
        {
            let _ = std::fs::remove_file(entry.path());
        }
        Ok(())
    }
}
