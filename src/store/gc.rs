//! Space accounting and garbage collection: `rbuild df` and `rbuild prune`. Layers live while
//! an image or a cache record needs them; blobs while a layer or an image does.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use super::{io_err, CacheRecord, Store, StoreError};

/// What `prune` may delete.
#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    /// Also images without a tag.
    pub all: bool,
    /// Only cache records and cache mounts not used for this long.
    pub older_than: Option<Duration>,
    /// Keep the build cache under this many bytes, dropping the least recently used first.
    pub keep_storage: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub images: usize,
    pub cache_records: usize,
    pub cache_mounts: usize,
    pub layers: usize,
    pub blobs: usize,
    pub bytes: u64,
}

/// `rbuild df`: counts and sizes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskUsage {
    pub images: usize,
    /// Layers some image uses.
    pub image_layers: usize,
    pub image_bytes: u64,
    /// Layers only the build cache uses.
    pub cache_layers: usize,
    pub cache_bytes: u64,
    pub cache_records: usize,
    pub cache_mounts: usize,
    pub cache_mount_bytes: u64,
    /// Work dirs and temp files of running builds, saves and pulls (tmp/).
    pub temp_entries: usize,
    pub temp_bytes: u64,
}

struct CacheEntry {
    path: std::path::PathBuf,
    record: Option<CacheRecord>,
    used: SystemTime,
}

fn dir_size(path: &std::path::Path) -> u64 {
    walkdir::WalkDir::new(path)
        .into_iter()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

impl Store {
    fn image_layer_set(&self) -> Result<BTreeSet<String>, StoreError> {
        let mut layers = BTreeSet::new();
        for image_id in self.list_images()? {
            if let Ok(config) = self.read_blob(&image_id) {
                if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&config) {
                    for diff_id in value["rootfs"]["diff_ids"].as_array().into_iter().flatten() {
                        if let Some(d) = diff_id.as_str() {
                            layers.insert(d.to_string());
                        }
                    }
                }
            }
        }
        Ok(layers)
    }

    fn cache_entries(&self) -> Result<Vec<CacheEntry>, StoreError> {
        let dir = self.root.join("cache");
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(&dir)
            .map_err(io_err("list", &dir))?
            .flatten()
        {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let record = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let used = entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            entries.push(CacheEntry { path, record, used });
        }
        entries.sort_by_key(|e| e.used);
        Ok(entries)
    }

    fn layer_size(&self, diff_id: &str) -> u64 {
        self.layer_info(diff_id).map(|i| i.tar_size).unwrap_or(0)
    }

    pub fn disk_usage(&self) -> Result<DiskUsage, StoreError> {
        let image_layers = self.image_layer_set()?;
        let mut usage = DiskUsage {
            images: self.list_images()?.len(),
            image_layers: image_layers.len(),
            image_bytes: image_layers.iter().map(|d| self.layer_size(d)).sum(),
            ..DiskUsage::default()
        };
        let cache = self.cache_entries()?;
        usage.cache_records = cache.len();
        let cache_only: BTreeSet<String> = cache
            .iter()
            .filter_map(|e| e.record.as_ref().and_then(|r| r.diff_id.clone()))
            .filter(|d| !image_layers.contains(d) && self.has_layer(d))
            .collect();
        usage.cache_layers = cache_only.len();
        usage.cache_bytes = cache_only.iter().map(|d| self.layer_size(d)).sum();
        let mounts = self.root.join("cache-mounts");
        if let Ok(entries) = std::fs::read_dir(&mounts) {
            for entry in entries.flatten().filter(|e| e.path().is_dir()) {
                usage.cache_mounts += 1;
                usage.cache_mount_bytes += dir_size(&entry.path());
            }
        }
        if let Ok(entries) = std::fs::read_dir(self.root.join("tmp")) {
            for entry in entries.flatten() {
                usage.temp_entries += 1;
                usage.temp_bytes += dir_size(&entry.path());
            }
        }
        Ok(usage)
    }

    /// Deletes build cache (records, cache mounts), optionally untagged images, then every
    /// layer and blob nothing references any more.
    pub fn prune(&self, options: &PruneOptions) -> Result<PruneReport, StoreError> {
        let mut report = PruneReport::default();
        let now = SystemTime::now();
        let old_enough = |used: SystemTime| match options.older_than {
            Some(age) => now.duration_since(used).unwrap_or_default() >= age,
            None => true,
        };
        if options.all {
            let listed = self.listed_images()?;
            for image_id in self.list_images()? {
                if self.tags_of(&image_id)?.is_empty() && !listed.contains(&image_id) {
                    self.remove_image_record(&image_id)?;
                    report.images += 1;
                }
            }
        }
        let image_layers = self.image_layer_set()?;
        let mut cache = self.cache_entries()?;
        // --keep-storage: drop the least recently used records until the rest fits.
        let mut keep_budget = options.keep_storage;
        if let Some(limit) = keep_budget.as_mut() {
            let mut total: u64 = cache
                .iter()
                .filter_map(|e| e.record.as_ref().and_then(|r| r.diff_id.clone()))
                .filter(|d| !image_layers.contains(d))
                .map(|d| self.layer_size(&d))
                .sum();
            cache.retain(|entry| {
                if total <= *limit {
                    return false; // keep it: not a candidate
                }
                if let Some(d) = entry.record.as_ref().and_then(|r| r.diff_id.clone()) {
                    if !image_layers.contains(&d) {
                        total = total.saturating_sub(self.layer_size(&d));
                    }
                }
                true
            });
        }
        for entry in cache.iter().filter(|e| old_enough(e.used)) {
            if std::fs::remove_file(&entry.path).is_ok() {
                report.cache_records += 1;
            }
            let _ = std::fs::remove_file(entry.path.with_extension("lock"));
        }
        if options.keep_storage.is_none() {
            let mounts = self.root.join("cache-mounts");
            if let Ok(entries) = std::fs::read_dir(&mounts) {
                for entry in entries.flatten() {
                    let used = entry
                        .metadata()
                        .and_then(|m| m.modified())
                        .unwrap_or(SystemTime::UNIX_EPOCH);
                    if entry.path().is_dir() && old_enough(used) {
                        report.bytes += dir_size(&entry.path());
                        if super::remove_tree(&entry.path()).is_ok() {
                            report.cache_mounts += 1;
                        }
                    }
                }
            }
        }

        // Whatever no image and no remaining cache record needs goes.
        let _lock = self.lock()?;
        let mut wanted: BTreeSet<String> = self.image_layer_set()?;
        // Layers running builds use, though no image or record names them (yet, or any more).
        wanted.extend(self.leased_layers()?);
        for entry in self.cache_entries()? {
            if let Some(d) = entry.record.and_then(|r| r.diff_id) {
                wanted.insert(d);
            }
        }
        let mut wanted_blobs: BTreeSet<String> = self.list_images()?.into_iter().collect();
        for diff_id in self.list_layers()? {
            if wanted.contains(&diff_id) {
                if let Ok(info) = self.layer_info(&diff_id) {
                    wanted_blobs.extend(info.blobs.into_iter().map(|b| b.digest));
                }
                continue;
            }
            // Its blobs are no longer wanted either: they go below.
            report.bytes += self.layer_size(&diff_id);
            self.remove_layer(&diff_id)?;
            report.layers += 1;
        }
        let blobs = self.root.join("blobs/sha256");
        for entry in std::fs::read_dir(&blobs)
            .map_err(io_err("list", &blobs))?
            .flatten()
        {
            // `.tmpXXXX`: a blob being written right now (write_atomic), not one to collect
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let digest = format!("sha256:{}", entry.file_name().to_string_lossy());
            if !wanted_blobs.contains(&digest) {
                report.bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
                if std::fs::remove_file(entry.path()).is_ok() {
                    report.blobs += 1;
                }
            }
        }
        Ok(report)
    }
}
