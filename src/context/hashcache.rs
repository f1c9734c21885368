//! Content digests of context files, remembered by (device, inode, size, mtime, ctime): an
//! unchanged file is not read again on the next build. Saved per context in the store.

// Paths here are the store's stat cache, and context files the walker (select.rs) already resolved inside the context: the boundary rule (clippy.toml) does not apply.
#![allow(clippy::disallowed_methods)]

use std::collections::HashMap;
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
    /// The xattrs COPY keeps (`user.*`, `security.capability`), as of this stat: setting one
    /// changes the ctime, so an unchanged stamp means unchanged xattrs and the walk need not
    /// list them again. None: not remembered (a cache written before they were).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    xattrs: Option<boundary::layer::Xattrs>,
}

/// What tells a file unchanged: the stat fields of a [`Stamp`], as the context walk saw them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileStamp {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

impl Stamp {
    fn file_stamp(&self) -> FileStamp {
        FileStamp {
            dev: self.dev,
            ino: self.ino,
            size: self.size,
            mtime_ns: self.mtime_ns,
            ctime_ns: self.ctime_ns,
        }
    }

    fn is(&self, file: &FileStamp) -> bool {
        self.dev == file.dev
            && self.ino == file.ino
            && self.size == file.size
            && self.mtime_ns == file.mtime_ns
            && self.ctime_ns == file.ctime_ns
    }
}

/// A host path as the map's key, hashed and compared as bytes: `Path`'s own Hash and Eq go
/// component by component, which was a visible part of a no-change rebuild of 10,000 files.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
struct Key(PathBuf);

impl Key {
    fn bytes(&self) -> &[u8] {
        use std::os::unix::ffi::OsStrExt as _;
        self.0.as_os_str().as_bytes()
    }
}

fn key_bytes(path: &Path) -> &[u8] {
    use std::os::unix::ffi::OsStrExt as _;
    path.as_os_str().as_bytes()
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for Key {}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.bytes().hash(state);
    }
}

impl std::borrow::Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.bytes()
    }
}

/// The remembered digests; a miss reads and hashes the file.
#[derive(Debug, Default)]
pub struct HashCache {
    entries: Mutex<HashMap<Key, Stamp>>,
    /// Where it is saved; None keeps it in memory only.
    file: Option<PathBuf>,
    /// Set when a digest was added or changed: an unchanged context is not written back.
    changed: std::sync::atomic::AtomicBool,
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
            changed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Writes the cache back (best effort: a cache that cannot be saved is only slower).
    pub fn save(&self) {
        if !self.changed.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
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
        // The walk's stat answers for an unchanged file without opening it (10,000 opens were
        // most of a no-change rebuild of a 10,000-file COPY).
        if let Ok(entries) = self.entries.lock() {
            if let Some(known) = entries.get(key_bytes(&entry.host_path)) {
                if known.is(&entry.stamp) && known.xattrs.as_ref() == Some(&entry.xattrs) {
                    return Ok(known.digest.clone());
                }
            }
        }
        self.digest_of(&entry.host_path, entry.open()?, Some(&entry.xattrs))
    }

    /// The kept xattrs remembered for the file at `path`, if its stat is still `stamp`.
    pub fn xattrs(&self, path: &Path, stamp: &FileStamp) -> Option<boundary::layer::Xattrs> {
        let entries = self.entries.lock().ok()?;
        let known = entries.get(key_bytes(path))?;
        if known.is(stamp) {
            known.xattrs.clone()
        } else {
            None
        }
    }

    fn digest_of(
        &self,
        path: &Path,
        mut file: std::fs::File,
        xattrs: Option<&boundary::layer::Xattrs>,
    ) -> std::io::Result<String> {
        let meta = file.metadata()?;
        let stamp = |digest: String| Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            digest,
            xattrs: xattrs.cloned(),
        };
        if let Ok(mut entries) = self.entries.lock() {
            if let Some(known) = entries.get_mut(key_bytes(path)) {
                let now = stamp(known.digest.clone());
                if known.is(&now.file_stamp()) {
                    // Same content; xattrs remembered now if they were not.
                    if known.xattrs != now.xattrs {
                        known.xattrs = now.xattrs;
                        self.changed
                            .store(true, std::sync::atomic::Ordering::Relaxed);
                    }
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
            entries.insert(Key(path.to_path_buf()), stamp(digest.clone()));
            self.changed
                .store(true, std::sync::atomic::Ordering::Relaxed);
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
                .digest_of(&file, std::fs::File::open(&file).expect("open"), None)
                .expect("digest")
        };
        let first = digest(&cache);
        cache.save();
        // A poisoned entry proves the second read came from the cache, not the file.
        let reloaded = HashCache::load(store.clone());
        if let Ok(mut entries) = reloaded.entries.lock() {
            if let Some(e) = entries.get_mut(key_bytes(&file)) {
                e.digest = "remembered".into();
            }
        }
        assert_eq!(digest(&reloaded), "remembered");
        std::fs::write(&file, "two").expect("write");
        let changed = digest(&reloaded);
        assert_ne!(changed, first);
        assert_ne!(changed, "remembered");
    }

    fn stamp_of(path: &Path) -> FileStamp {
        let meta = std::fs::metadata(path).expect("stat");
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }

    #[test]
    fn xattrs_are_remembered_for_an_unchanged_stat_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("f");
        std::fs::write(&file, "one").expect("write");
        let cache = HashCache::load(dir.path().join("cache.json"));
        let kept: boundary::layer::Xattrs = vec![(b"user.a".to_vec(), b"1".to_vec())];
        let open = || std::fs::File::open(&file).expect("open");
        cache.digest_of(&file, open(), Some(&kept)).expect("digest");
        assert_eq!(cache.xattrs(&file, &stamp_of(&file)), Some(kept.clone()));
        // Saved and loaded again, they are still there.
        cache.save();
        let reloaded = HashCache::load(dir.path().join("cache.json"));
        assert_eq!(reloaded.xattrs(&file, &stamp_of(&file)), Some(kept));
        // Any change of the stat (a setxattr changes the ctime) forgets them.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&file, "two").expect("write");
        assert_eq!(reloaded.xattrs(&file, &stamp_of(&file)), None);
    }
}
