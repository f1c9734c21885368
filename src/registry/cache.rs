//! The travelling build cache over a registry (`--cache-to/--cache-from type=registry,ref=`):
//! the cache's OCI layout (see `crate::cache`) is pushed as one manifest under the ref's tag,
//! and read back: the manifest and config up front, a layer blob only when its step hits.

use std::path::{Path, PathBuf};

use super::client::{Client, RequestBody};
use super::pull::{download_blob, fetch_manifest, DOCKER_LIST, OCI_INDEX, OCI_MANIFEST};
use super::push::push_blob;
use super::{Log, RegistryError, RegistrySettings};
use crate::image::Reference;
use crate::store::{LayerBlob, Store};

fn invalid(what: &str, message: impl Into<String>) -> RegistryError {
    RegistryError::Invalid {
        what: what.to_string(),
        message: message.into(),
    }
}

/// A descriptor's media type, digest and size.
fn descriptor(value: &serde_json::Value) -> Option<LayerBlob> {
    Some(LayerBlob {
        media_type: value["mediaType"].as_str().unwrap_or_default().to_string(),
        digest: value["digest"].as_str()?.to_string(),
        size: value["size"].as_u64().unwrap_or(0),
    })
}

/// A small blob (a config), checked against its digest.
fn fetch_verified(client: &Client, blob: &LayerBlob) -> Result<Vec<u8>, RegistryError> {
    let url = client.repo_url(&format!("blobs/{}", blob.digest));
    let response = client.expect("GET", &url, &[], &RequestBody::Empty, &[200])?;
    // A config is small; a registry sending more is cut off (and fails the digest check).
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(response.into_body().into_reader(), 64 << 20),
        &mut bytes,
    )
    .map_err(|e| invalid("cache config", e.to_string()))?;
    let actual = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes))
    );
    if actual != blob.digest {
        return Err(RegistryError::DigestMismatch {
            what: "cache config".into(),
            expected: blob.digest.clone(),
            actual,
        });
    }
    Ok(bytes)
}

fn layout_blob(dir: &Path, digest: &str) -> PathBuf {
    dir.join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// Pushes the cache layout at `dir` to `dest`; returns how many blobs were uploaded (blobs the
/// registry has are skipped, so an unchanged cache uploads nothing).
pub fn push_cache(dir: &Path, dest: &Reference, log: Log) -> Result<usize, RegistryError> {
    let read = |path: PathBuf| {
        std::fs::read(&path).map_err(|e| invalid(&path.display().to_string(), e.to_string()))
    };
    let index: serde_json::Value = serde_json::from_slice(&read(dir.join("index.json"))?)
        .map_err(|e| invalid("cache index", e.to_string()))?;
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .ok_or_else(|| invalid("cache index", "no manifest"))?;
    let manifest_bytes = read(layout_blob(dir, manifest_digest))?;
    let manifest: serde_json::Value = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| invalid("cache manifest", e.to_string()))?;
    let settings = RegistrySettings::load()?;
    let client = Client::connect(
        &settings,
        &dest.registry,
        &dest.repository,
        "pull,push",
        &[],
    )?;
    let mut uploaded = 0;
    let blobs = manifest["layers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .chain(std::iter::once(manifest["config"].clone()));
    for blob in blobs {
        let digest = blob["digest"]
            .as_str()
            .ok_or_else(|| invalid("cache manifest", "a blob without digest"))?;
        let size = blob["size"].as_u64().unwrap_or(0);
        if push_blob(
            &client,
            digest,
            size,
            &layout_blob(dir, digest),
            None,
            "cache",
            log,
        )? {
            uploaded += 1;
        }
    }
    let tag = dest.tag.clone().unwrap_or_else(|| "latest".to_string());
    client.put_manifest(&tag, &manifest_bytes, OCI_MANIFEST)?;
    Ok(uploaded)
}

/// A cache in a registry: its config, and a client to fetch blobs when steps hit.
pub struct RemoteCache {
    client: Client,
    pub config_bytes: Vec<u8>,
}

impl std::fmt::Debug for RemoteCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteCache")
            .field("registry", &self.client.registry())
            .finish()
    }
}

impl RemoteCache {
    /// Reads the cache at `source`: a cache manifest (`--cache-to type=registry`), or an
    /// image (or image index) whose configs carry an inline cache (`--cache-to type=inline`).
    /// `config_bytes` is the cache config either way.
    pub fn open(source: &Reference) -> Result<RemoteCache, RegistryError> {
        let settings = RegistrySettings::load()?;
        let client = Client::connect(&settings, &source.registry, &source.repository, "pull", &[])?;
        let reference = source
            .digest
            .clone()
            .or_else(|| source.tag.clone())
            .unwrap_or_else(|| "latest".to_string());
        let (manifest_bytes, media_type, _) =
            fetch_manifest(&client, &reference, &source.to_string())?;
        let manifest: serde_json::Value = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| invalid("cache manifest", e.to_string()))?;
        let manifests = if media_type == OCI_INDEX || media_type == DOCKER_LIST {
            // Every platform's image: the keys of one platform's steps differ from another's.
            let mut manifests = Vec::new();
            for entry in manifest["manifests"].as_array().into_iter().flatten() {
                let Some(digest) = entry["digest"].as_str() else {
                    continue;
                };
                let (bytes, _, _) = fetch_manifest(&client, digest, &source.to_string())?;
                manifests.push(
                    serde_json::from_slice(&bytes)
                        .map_err(|e| invalid("image manifest", e.to_string()))?,
                );
            }
            manifests
        } else {
            vec![manifest]
        };
        let mut inline = crate::cache::CacheConfig::default();
        for manifest in &manifests {
            let config = descriptor(&manifest["config"])
                .ok_or_else(|| invalid("cache manifest", "no config"))?;
            let config_bytes = fetch_verified(&client, &config)?;
            if config.media_type == crate::cache::CONFIG_MEDIA_TYPE {
                return Ok(RemoteCache {
                    client,
                    config_bytes,
                });
            }
            let image: serde_json::Value = serde_json::from_slice(&config_bytes)
                .map_err(|e| invalid("image config", e.to_string()))?;
            let layers: Vec<LayerBlob> = manifest["layers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(descriptor)
                .collect();
            if let Some(found) = crate::cache::inline_config(&image, &layers) {
                inline.records.extend(found.records);
            }
        }
        if inline.records.is_empty() {
            return Err(invalid(
                &source.to_string(),
                "neither a build cache nor an image with an inline cache",
            ));
        }
        let config_bytes =
            serde_json::to_vec(&inline).map_err(|e| invalid("inline cache", e.to_string()))?;
        Ok(RemoteCache {
            client,
            config_bytes,
        })
    }

    /// Downloads `blob` into the store (resumable, verified) and returns its path.
    pub fn fetch(&self, store: &Store, blob: &LayerBlob) -> Result<PathBuf, RegistryError> {
        if store.has_blob(&blob.digest) {
            return Ok(store.blob_path(&blob.digest)?);
        }
        let quiet = |_: &str| {};
        download_blob(store, &self.client, blob, &quiet)
    }
}
