//! Loads an image into the store from an OCI layout dir, an OCI archive or a Docker archive
//! (legacy or Docker >= 25), as skopeo, umoci and `docker save` write them. Layers are
//! applied safely into layer dirs and keep their original blobs.

// Paths here are the archive or layout the user named; blobs are verified against their digests: the boundary rule (clippy.toml) does not apply.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};

use super::import::{import_image, invalid, LoadedImage};
use super::{io_err, ArchiveError};
use crate::image::host_architecture;
use crate::image::manifest::REF_NAME;
use crate::store::{LayerBlob, Store};

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
    let root = boundary::open_root(temp.path()).map_err(io_err("open", temp.path()))?;
    // Layouts and docker archives hold plain files and dirs: links could point anywhere.
    let options = boundary::ExtractOptions {
        format: boundary::Format::Plain,
        ownership: boundary::Ownership::Extractor,
        special_files: false,
        links: false,
        xattrs: false,
    };
    boundary::extract_tar(file, &root, options).map_err(|e| ArchiveError::Invalid {
        path: path.to_path_buf(),
        message: crate::error_chain(&e),
    })?;
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
        let mut image = import_image(store, &config_bytes, layer_blobs, tags, origin)?;
        store.set_image_manifest(&image.image_id, &manifest_digest)?;
        image.ref_name = desc["annotations"][REF_NAME].as_str().map(str::to_string);
        image.descriptor_digest = desc["digest"].as_str().map(str::to_string);
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
