//! Content digests of context files, remembered by (device, inode, size, mtime, ctime): an
//! unchanged file is not read again on the next build. Saved per context in the store.

// Paths here are the store's stat cache, and context files the walker (select.rs) already resolved inside the context: the boundary rule (clippy.toml) does not apply.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    digest: String,
}

/// The remembered digests; a miss reads and hashes the file.
#[derive(Debug, Default)]
pub struct HashCache {
    entries: Mutex<BTreeMap<PathBuf, Stamp>>,
    /// Where it is saved; None keeps it in memory only.
    file: Option<PathBuf>,
}

impl HashCache {
    /// Loads the cache kept at `file` (a missing or unreadable file is an empty cache).
    pub fn load(file: PathBuf) -> HashCache {
        let entries = std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        HashCache {
            entries: Mutex::new(entries),
            file: Some(file),
        }
    }

    /// Writes the cache back (best effort: a cache that cannot be saved is only slower).
    pub fn save(&self) {
        let (Some(file), Ok(entries)) = (&self.file, self.entries.lock()) else {
            return;
        };
        if let Ok(bytes) = serde_json::to_vec(&*entries) {
            let Some(dir) = file.parent() else { return };
            let _ = std::fs::create_dir_all(dir);
            // A temp file of its own: two builds of one context may save at once.
            if let Ok(mut temp) = tempfile::NamedTempFile::new_in(dir) {
                if std::io::Write::write_all(&mut temp, &bytes).is_ok() {
                    let _ = temp.persist(file);
                }
            }
        }
    }

    /// The sha256 (hex) of a selected file's content, opened through the entry (beneath its
    /// tree, no symlink followed); remembered by its host path and stat.
    pub fn digest(&self, entry: &super::SourceEntry) -> std::io::Result<String> {
        self.digest_of(&entry.host_path, entry.open()?)
    }

    fn digest_of(&self, path: &Path, mut file: std::fs::File) -> std::io::Result<String> {
        let meta = file.metadata()?;
        let stamp = |digest: String| Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            digest,
        };
        if let Ok(entries) = self.entries.lock() {
            if let Some(known) = entries.get(path) {
                if *known == stamp(known.digest.clone()) {
                    return Ok(known.digest.clone());
                }
            }
        }
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let digest = hex::encode(hasher.finalize());
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(path.to_path_buf(), stamp(digest.clone()));
        }
        Ok(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_files_are_not_reread_and_changes_are_seen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("f");
        std::fs::write(&file, "one").expect("write");
        let store = dir.path().join("cache.json");
        let cache = HashCache::load(store.clone());
        let digest = |cache: &HashCache| {
            cache
                .digest_of(&file, std::fs::File::open(&file).expect("open"))
                .expect("digest")
        };
        let first = digest(&cache);
        cache.save();
        // A poisoned entry proves the second read came from the cache, not the file.
        let reloaded = HashCache::load(store.clone());
        if let Ok(mut entries) = reloaded.entries.lock() {
            if let Some(e) = entries.get_mut(&file) {
                e.digest = "remembered".into();
            }
        }
        assert_eq!(digest(&reloaded), "remembered");
        std::fs::write(&file, "two").expect("write");
        let changed = digest(&reloaded);
        assert_ne!(changed, first);
        assert_ne!(changed, "remembered");
    }
}
