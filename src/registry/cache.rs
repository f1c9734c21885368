//! The travelling build cache over a registry (`--cache-to/--cache-from type=registry,ref=`):
//! the cache's OCI layout (see `crate::cache`) is pushed as one manifest under the ref's tag,
//! and read back: the manifest and config up front, a layer blob only when its step hits.

use std::path::{Path, PathBuf};

use super::client::{Client, RequestBody};
use super::pull::{download_blob, fetch_manifest, OCI_MANIFEST};
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
    /// Reads the cache manifest and config at `source`.
    pub fn open(source: &Reference) -> Result<RemoteCache, RegistryError> {
        let settings = RegistrySettings::load()?;
        let client = Client::connect(&settings, &source.registry, &source.repository, "pull", &[])?;
        let reference = source
            .digest
            .clone()
            .or_else(|| source.tag.clone())
            .unwrap_or_else(|| "latest".to_string());
        let (manifest_bytes, _, _) = fetch_manifest(&client, &reference, &source.to_string())?;
        let manifest: serde_json::Value = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| invalid("cache manifest", e.to_string()))?;
        let config = LayerBlob {
            media_type: manifest["config"]["mediaType"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            digest: manifest["config"]["digest"]
                .as_str()
                .ok_or_else(|| invalid("cache manifest", "no config"))?
                .to_string(),
            size: manifest["config"]["size"].as_u64().unwrap_or(0),
        };
        let url = client.repo_url(&format!("blobs/{}", config.digest));
        let response = client.expect("GET", &url, &[], &RequestBody::Empty, &[200])?;
        let mut config_bytes = Vec::new();
        std::io::Read::read_to_end(&mut response.into_body().into_reader(), &mut config_bytes)
            .map_err(|e| invalid("cache config", e.to_string()))?;
        let actual = format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&config_bytes))
        );
        if actual != config.digest {
            return Err(RegistryError::DigestMismatch {
                what: "cache config".into(),
                expected: config.digest,
                actual,
            });
        }
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
