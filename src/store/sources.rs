//! Where blobs came from (`registry/repository` per blob digest), so that a push to the same
//! registry can mount a blob from its source repository instead of uploading it again.
//! A hint only: errors are ignored and a stale entry just costs a failed mount.

use super::{digest_hex, write_atomic, Store};

impl Store {
    fn sources_path(&self, digest: &str) -> Option<std::path::PathBuf> {
        digest_hex(digest)
            .ok()
            .map(|hex| self.root.join("blobs/sources").join(hex))
    }

    /// Records that `source` (`registry/repository`) holds the blob `digest`.
    pub fn add_blob_source(&self, digest: &str, source: &str) {
        let Some(path) = self.sources_path(digest) else {
            return;
        };
        let mut sources = self.blob_sources(digest);
        if sources.iter().any(|s| s == source) {
            return;
        }
        sources.push(source.to_string());
        let _ = std::fs::create_dir_all(self.root.join("blobs/sources"));
        let _ = write_atomic(&path, sources.join("\n").as_bytes());
    }

    /// Repositories known to hold the blob `digest`.
    pub fn blob_sources(&self, digest: &str) -> Vec<String> {
        self.sources_path(digest)
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|text| {
                text.lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }
}
