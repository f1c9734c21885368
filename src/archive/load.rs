//! Loads an image into the store from an OCI layout dir, an OCI archive or a Docker archive
//! (legacy or Docker >= 25), as skopeo, umoci and `docker save` write them. Layers are
//! applied safely into layer dirs and keep their original blobs.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{io_err, ArchiveError};
use crate::image::manifest::REF_NAME;
use crate::image::{host_architecture, ImageConfig};
use crate::snapshot::{self, DigestReader};
use crate::store::{LayerBlob, LayerInfo, Store};

#[derive(Debug, Clone)]
pub struct LoadedImage {
    pub image_id: String,
    pub tags: Vec<String>,
}

fn invalid(path: &Path, message: impl Into<String>) -> ArchiveError {
    ArchiveError::Invalid {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Loads every image of the archive or layout at `path`.
pub fn load(store: &Store, path: &Path) -> Result<Vec<LoadedImage>, ArchiveError> {
    let meta = std::fs::metadata(path).map_err(io_err("open", path))?;
    if meta.is_dir() {
        return load_dir(store, path, path);
    }
    // An archive is unpacked into the store's temp area (same filesystem: blobs are then
    // renamed, not copied again).
    let temp = store.temp_dir("load")?;
    let file = std::fs::File::open(path).map_err(io_err("open", path))?;
    let mut archive = tar::Archive::new(file);
    archive.set_preserve_permissions(false);
    archive.set_overwrite(true);
    for entry in archive.entries().map_err(io_err("read archive", path))? {
        let mut entry = entry.map_err(io_err("read archive", path))?;
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            continue; // layouts hold plain files only; links could point anywhere
        }
        // unpack_in refuses names that climb out of the dir.
        entry
            .unpack_in(temp.path())
            .map_err(io_err("unpack archive", path))?;
    }
    load_dir(store, temp.path(), path)
}

fn read_json(
    dir: &Path,
    name: &str,
    origin: &Path,
) -> Result<Option<serde_json::Value>, ArchiveError> {
    let file = dir.join(name);
    match std::fs::read(&file) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| invalid(origin, format!("{name}: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ArchiveError::Io {
            action: "read",
            path: file,
            source: e,
        }),
    }
}

/// Path of a blob in a layout, refusing anything that is not a plain digest.
fn layout_blob(dir: &Path, digest: &str, origin: &Path) -> Result<PathBuf, ArchiveError> {
    let hex = crate::store::digest_hex(digest)
        .map_err(|_| invalid(origin, format!("bad digest {digest:?}")))?;
    Ok(dir.join("blobs/sha256").join(hex))
}

fn load_dir(store: &Store, dir: &Path, origin: &Path) -> Result<Vec<LoadedImage>, ArchiveError> {
    // A Docker archive names its images in manifest.json (also in Docker >= 25 archives).
    if let Some(manifest) = read_json(dir, "manifest.json", origin)? {
        let entries = manifest
            .as_array()
            .ok_or_else(|| invalid(origin, "manifest.json is not a list"))?;
        let mut loaded = Vec::new();
        for entry in entries {
            let config = entry["Config"]
                .as_str()
                .ok_or_else(|| invalid(origin, "manifest.json entry has no Config"))?;
            let layers: Vec<PathBuf> = entry["Layers"]
                .as_array()
                .ok_or_else(|| invalid(origin, "manifest.json entry has no Layers"))?
                .iter()
                .map(|l| {
                    l.as_str()
                        .map(|s| dir.join(safe_rel(s)))
                        .ok_or_else(|| invalid(origin, "bad Layers entry"))
                })
                .collect::<Result<_, _>>()?;
            let tags: Vec<String> = entry["RepoTags"]
                .as_array()
                .map(|t| {
                    t.iter()
                        .filter_map(|v| v.as_str())
                        .map(normalise_tag)
                        .collect()
                })
                .unwrap_or_default();
            let config_bytes =
                std::fs::read(dir.join(safe_rel(config))).map_err(io_err("read", origin))?;
            let layer_blobs = layers.into_iter().map(|p| (p, None)).collect();
            loaded.push(import_image(
                store,
                &config_bytes,
                layer_blobs,
                tags,
                origin,
            )?);
        }
        return Ok(loaded);
    }
    let index = read_json(dir, "index.json", origin)?.ok_or_else(|| {
        invalid(
            origin,
            "not an image archive: no index.json (OCI) or manifest.json (Docker)",
        )
    })?;
    let mut loaded = Vec::new();
    let descriptors = index["manifests"].as_array().cloned().unwrap_or_default();
    for desc in descriptors {
        let tag = desc["annotations"][REF_NAME].as_str().map(str::to_string);
        let (manifest_digest, manifest) = resolve_manifest(dir, &desc, origin)?;
        let config_digest = manifest["config"]["digest"]
            .as_str()
            .ok_or_else(|| invalid(origin, "manifest has no config"))?;
        let config_bytes = std::fs::read(layout_blob(dir, config_digest, origin)?)
            .map_err(io_err("read config of", origin))?;
        let mut layer_blobs = Vec::new();
        for layer in manifest["layers"].as_array().cloned().unwrap_or_default() {
            let digest = layer["digest"]
                .as_str()
                .ok_or_else(|| invalid(origin, "layer without digest"))?;
            let blob = LayerBlob {
                media_type: layer["mediaType"]
                    .as_str()
                    .unwrap_or("application/vnd.oci.image.layer.v1.tar")
                    .to_string(),
                digest: digest.to_string(),
                size: layer["size"].as_u64().unwrap_or(0),
            };
            layer_blobs.push((layout_blob(dir, digest, origin)?, Some(blob)));
        }
        // A bare `latest` (as umoci writes) names no repository: the image stays untagged.
        let tags = tag
            .filter(|t| t.contains(':') || t.contains('/'))
            .map(|t| vec![normalise_tag(&t)])
            .unwrap_or_default();
        let image = import_image(store, &config_bytes, layer_blobs, tags, origin)?;
        store.set_image_manifest(&image.image_id, &manifest_digest)?;
        loaded.push(image);
    }
    Ok(loaded)
}

fn safe_rel(name: &str) -> PathBuf {
    PathBuf::from(crate::context::clean_relative(name))
}

fn normalise_tag(tag: &str) -> String {
    crate::image::parse_tag(tag)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| tag.to_string())
}

/// A descriptor's manifest and its digest; an index in its place is resolved to the host
/// platform's entry.
fn resolve_manifest(
    dir: &Path,
    desc: &serde_json::Value,
    origin: &Path,
) -> Result<(String, serde_json::Value), ArchiveError> {
    let digest = desc["digest"]
        .as_str()
        .ok_or_else(|| invalid(origin, "descriptor without digest"))?;
    let bytes = std::fs::read(layout_blob(dir, digest, origin)?)
        .map_err(io_err("read manifest of", origin))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| invalid(origin, format!("manifest {digest}: {e}")))?;
    if let Some(manifests) = value["manifests"].as_array() {
        let arch = host_architecture();
        let chosen = manifests
            .iter()
            .find(|m| m["platform"]["architecture"].as_str() == Some(arch))
            .or_else(|| manifests.first())
            .ok_or_else(|| invalid(origin, "empty image index"))?;
        return resolve_manifest(dir, chosen, origin);
    }
    Ok((digest.to_string(), value))
}

/// Stores the config, applies each layer not already present, and records the image.
fn import_image(
    store: &Store,
    config_bytes: &[u8],
    layers: Vec<(PathBuf, Option<LayerBlob>)>,
    tags: Vec<String>,
    origin: &Path,
) -> Result<LoadedImage, ArchiveError> {
    let config: ImageConfig = serde_json::from_slice(config_bytes)
        .map_err(|e| invalid(origin, format!("image config: {e}")))?;
    if config.rootfs.diff_ids.len() != layers.len() {
        return Err(invalid(
            origin,
            format!(
                "config lists {} layers but the manifest {}",
                config.rootfs.diff_ids.len(),
                layers.len()
            ),
        ));
    }
    for ((blob_path, blob), diff_id) in layers.into_iter().zip(&config.rootfs.diff_ids) {
        if store.has_layer(diff_id) {
            continue;
        }
        import_layer(store, &blob_path, blob, diff_id, origin)?;
    }
    let image_id = store.put_blob(config_bytes)?;
    store.add_image(&image_id, &tags)?;
    Ok(LoadedImage { image_id, tags })
}

/// Applies one layer blob (verified against `blob.digest` and `diff_id`) into the store.
pub fn import_layer_blob(
    store: &Store,
    blob_path: &Path,
    blob: LayerBlob,
    diff_id: &str,
) -> Result<(), ArchiveError> {
    if store.has_layer(diff_id) {
        return Ok(());
    }
    import_layer(store, blob_path, Some(blob), diff_id, blob_path)
}

fn import_layer(
    store: &Store,
    blob_path: &Path,
    blob: Option<LayerBlob>,
    diff_id: &str,
    origin: &Path,
) -> Result<(), ArchiveError> {
    let file = std::fs::File::open(blob_path).map_err(io_err("read layer", blob_path))?;
    let compressed = DigestReader::new(file);
    let temp = store.temp_dir("layer")?;
    let layer_dir = temp.path().join("diff");
    std::fs::create_dir(&layer_dir).map_err(io_err("create", &layer_dir))?;
    // Hash the compressed bytes (the blob digest) and the tar (the diff_id) in one pass.
    let (blob_digest_rx, tar_digest) = {
        let (sender, receiver) = std::sync::mpsc::channel();
        struct Tee<R: Read> {
            inner: Option<DigestReader<R>>,
            done: std::sync::mpsc::Sender<crate::snapshot::Digest>,
        }
        impl<R: Read> Read for Tee<R> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = match self.inner.as_mut() {
                    Some(r) => r.read(buf)?,
                    None => 0,
                };
                if n == 0 {
                    if let Some(r) = self.inner.take() {
                        let _ = self.done.send(r.finish().1);
                    }
                }
                Ok(n)
            }
        }
        let tee = Tee {
            inner: Some(compressed),
            done: sender,
        };
        let decompressed =
            snapshot::decompressing_reader(tee).map_err(io_err("decompress layer", blob_path))?;
        let mut tar_stream = DigestReader::new(decompressed);
        snapshot::apply_layer_tar(&mut tar_stream, &layer_dir)?;
        // Drain what the tar reader left (padding) so both digests cover the whole stream.
        std::io::copy(&mut tar_stream, &mut std::io::sink())
            .map_err(io_err("read layer", blob_path))?;
        let (_, tar_digest) = tar_stream.finish();
        (receiver, tar_digest)
    };
    if tar_digest.as_oci() != diff_id {
        return Err(invalid(
            origin,
            format!(
                "layer {} has diff_id {} but the config says {diff_id}",
                blob_path.display(),
                tar_digest.as_oci()
            ),
        ));
    }
    let mut blobs = Vec::new();
    if let Ok(blob_digest) = blob_digest_rx.recv() {
        let digest = blob
            .as_ref()
            .map(|b| b.digest.clone())
            .unwrap_or_else(|| blob_digest.as_oci());
        if digest != blob_digest.as_oci() {
            return Err(invalid(
                origin,
                format!("blob {digest} hashes to {}", blob_digest.as_oci()),
            ));
        }
        // Keep the original blob as it came, compressed or not: never re-tarred later.
        let stored = store.blob_path(&digest)?;
        if !stored.exists() {
            let mut source =
                std::fs::File::open(blob_path).map_err(io_err("read layer", blob_path))?;
            let temp_blob = store.blob_temp_file()?;
            let (mut file, temp_path) = temp_blob.into_parts();
            std::io::copy(&mut source, &mut file).map_err(io_err("store blob", blob_path))?;
            store.adopt_blob(temp_path, &digest)?;
        }
        let media_type = match blob {
            Some(b) => b.media_type,
            None if digest == diff_id => "application/vnd.oci.image.layer.v1.tar".into(),
            None => "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        };
        blobs.push(LayerBlob {
            media_type,
            digest,
            size: blob_digest.size,
        });
    }
    store.commit_layer(
        &layer_dir,
        &LayerInfo {
            diff_id: diff_id.to_string(),
            tar_size: tar_digest.size,
            blobs,
        },
    )?;
    Ok(())
}
