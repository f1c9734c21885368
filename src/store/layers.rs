//! Layer dirs: a layer's files in overlay upper-dir format, used directly as a lowerdir, plus
//! what is known of its tar form.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{digest_hex, io_err, write_atomic, Store, StoreError};

/// A compressed (or not) blob that carries a layer, as it was pulled, loaded or made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerBlob {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

/// layers/HEX/layer.json
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerInfo {
    pub diff_id: String,
    /// Size of the uncompressed tar (what `docker history` shows).
    pub tar_size: u64,
    /// Blobs known to carry this layer. A loaded or pulled layer keeps its original blob here;
    /// a built layer gets one when an output first needs it.
    #[serde(default)]
    pub blobs: Vec<LayerBlob>,
}

impl Store {
    fn layer_root(&self, diff_id: &str) -> Result<PathBuf, StoreError> {
        Ok(self.root.join("layers").join(digest_hex(diff_id)?))
    }

    /// The dir holding the layer's files (a lowerdir).
    /// The dirs of `diff_ids` (bottom first, as an image lists them) as overlayfs stacks lower
    /// dirs: topmost first, each dir once. A layer that appears twice (empty layers all share
    /// one) would make the mount fail with ELOOP; keeping only its topmost place changes
    /// nothing, as the same content above hides all the lower copy could show.
    pub fn overlay_lowers(&self, diff_ids: &[String]) -> Result<Vec<PathBuf>, StoreError> {
        let mut seen = std::collections::HashSet::new();
        let mut dirs = Vec::new();
        for diff_id in diff_ids.iter().rev() {
            if seen.insert(diff_id.as_str()) {
                dirs.push(self.layer_dir(diff_id)?);
            }
        }
        Ok(dirs)
    }

    pub fn layer_dir(&self, diff_id: &str) -> Result<PathBuf, StoreError> {
        Ok(self.layer_root(diff_id)?.join("diff"))
    }

    pub fn has_layer(&self, diff_id: &str) -> bool {
        self.layer_root(diff_id)
            .is_ok_and(|p| p.join("layer.json").exists())
    }

    pub fn layer_info(&self, diff_id: &str) -> Result<LayerInfo, StoreError> {
        let path = self.layer_root(diff_id)?.join("layer.json");
        let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::MissingLayer {
                diff_id: diff_id.to_string(),
            },
            _ => StoreError::Io {
                action: "read",
                path: path.clone(),
                source: e,
            },
        })?;
        serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt { path, source })
    }

    pub fn set_layer_info(&self, info: &LayerInfo) -> Result<(), StoreError> {
        let path = self.layer_root(&info.diff_id)?.join("layer.json");
        let bytes = serde_json::to_vec_pretty(info).map_err(|source| StoreError::Corrupt {
            path: path.clone(),
            source,
        })?;
        write_atomic(&path, &bytes)
    }

    /// Makes `dir` (a finished upper dir or extracted layer, on the store's filesystem) the
    /// layer `info.diff_id`, by rename: no copy. When the layer already exists (another build
    /// made the same content), `dir` is discarded and the existing one kept.
    pub fn commit_layer(&self, dir: &Path, info: &LayerInfo) -> Result<(), StoreError> {
        let root = self.layer_root(&info.diff_id)?;
        // Under the store lock: another rbuild committing the same content at the same time
        // must not take a half-committed layer for a leftover.
        let _lock = self.lock()?;
        if self.has_layer(&info.diff_id) {
            let _ = super::remove_tree(dir);
            return Ok(());
        }
        // The layer exists only once layer.json is in place: a diff/ without it is the leftover
        // of a killed commit.
        std::fs::create_dir_all(&root).map_err(io_err("create", &root))?;
        let diff = root.join("diff");
        if diff.exists() {
            let _ = super::remove_tree(&diff); // leftover of a killed commit
        }
        std::fs::rename(dir, &diff).map_err(io_err("move layer into", &diff))?;
        if let Err(e) = self.set_layer_info(info) {
            // Roll back (a full disk fails here): a diff/ without its record is no layer, and
            // left behind it would hold the space that the next build needs.
            let _ = super::remove_tree(&root);
            return Err(e);
        }
        Ok(())
    }

    /// Every layer in the store (diff_ids).
    pub fn list_layers(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.root.join("layers");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir)
            .map_err(io_err("list", &dir))?
            .flatten()
        {
            if let Some(name) = entry.file_name().to_str() {
                out.push(format!("sha256:{name}"));
            }
        }
        Ok(out)
    }

    /// Deletes a layer (dir and record). Callers make sure nothing references it.
    pub fn remove_layer(&self, diff_id: &str) -> Result<(), StoreError> {
        let root = self.layer_root(diff_id)?;
        let _ = std::fs::remove_file(root.join("layer.json"));
        super::remove_tree(&root).map_err(io_err("remove", &root))
    }
}
