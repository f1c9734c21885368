//! The travelling build cache (`--cache-to`, `--cache-from`): cache records, the layer blobs
//! of their steps and, with `mounts=true`, cache-mount contents, written to and read from a
//! directory as an OCI layout (one manifest: the records as its config, the blobs as its
//! layers), so CI runners that start empty can share a cache.
//!
//! Import is lazy: the records are read up front, a layer blob only when its step hits.

// Paths here are cache dirs named on the command line and store blobs; archives are extracted by boundary::extract_tar: the boundary rule (clippy.toml) does not apply.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::store::{CacheRecord, LayerBlob, Store};

pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.rbuild.cache.config.v1+json";
const MOUNT_MEDIA_TYPE: &str = "application/vnd.rbuild.cache.mount.v1.tar+gzip";

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cache at {path} is not readable: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Archive(#[from] crate::archive::ArchiveError),
    #[error("--cache-{direction} {spec:?}: {message}")]
    Spec {
        direction: &'static str,
        spec: String,
        message: String,
    },
}

fn io<'p>(what: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> CacheError + 'p {
    move |source| CacheError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Where a cache lives: a directory, a registry reference, or the image itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheLocation {
    Dir(PathBuf),
    Registry(String),
    /// `--cache-to type=inline`: the records of the image's own steps in its config (field
    /// [`INLINE_FIELD`]), read back by `--cache-from REF` of the pushed image.
    Inline,
}

/// The image config field that holds an inline cache: `{"records": {KEY: CacheRecord}}`.
/// Layers are not named: a record's layer is the image's layer of the same diff id.
pub const INLINE_FIELD: &str = "rbuild.cache.v1";

/// `--cache-to type=local,dest=DIR|type=registry,ref=REF [,mode=min|max][,mounts=true]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheTo {
    pub location: CacheLocation,
    /// max: every step of every stage built; min: the target stage's steps only.
    pub max: bool,
    pub mounts: bool,
}

/// `--cache-from type=local,src=DIR|type=registry,ref=REF`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheFrom {
    pub location: CacheLocation,
}

fn parse_fields(
    direction: &'static str,
    spec: &str,
) -> Result<BTreeMap<String, String>, CacheError> {
    let mut fields = BTreeMap::new();
    for part in spec.split(',') {
        let (k, v) = part.split_once('=').ok_or_else(|| CacheError::Spec {
            direction,
            spec: spec.to_string(),
            message: format!("{part:?} is not KEY=VALUE"),
        })?;
        fields.insert(k.to_string(), v.to_string());
    }
    match fields.get("type").map(String::as_str) {
        Some("local") | Some("registry") => Ok(fields),
        Some("inline") if direction == "to" => Ok(fields),
        Some(other) => Err(CacheError::Spec {
            direction,
            spec: spec.to_string(),
            message: format!(
                "type={other} is not supported (supported: local, registry{})",
                if direction == "to" { ", inline" } else { "" }
            ),
        }),
        None => Err(CacheError::Spec {
            direction,
            spec: spec.to_string(),
            message: "missing type=".into(),
        }),
    }
}

fn location(
    direction: &'static str,
    spec: &str,
    fields: &BTreeMap<String, String>,
    dir_key: &str,
) -> Result<CacheLocation, CacheError> {
    let err = |message: String| CacheError::Spec {
        direction,
        spec: spec.to_string(),
        message,
    };
    if fields.get("type").map(String::as_str) == Some("registry") {
        let reference = fields
            .get("ref")
            .ok_or_else(|| err("missing ref=NAME[:TAG]".into()))?;
        crate::image::parse_reference(reference).map_err(|e| err(e.to_string()))?;
        return Ok(CacheLocation::Registry(reference.clone()));
    }
    let dir = fields
        .get(dir_key)
        .ok_or_else(|| err(format!("missing {dir_key}=DIR")))?;
    Ok(CacheLocation::Dir(PathBuf::from(dir)))
}

pub fn parse_cache_to(spec: &str) -> Result<CacheTo, CacheError> {
    let fields = parse_fields("to", spec)?;
    if fields.get("type").map(String::as_str) == Some("inline") {
        // BuildKit's inline cache is mode=min: only the image's own steps have their layers
        // in it.
        return Ok(CacheTo {
            location: CacheLocation::Inline,
            max: false,
            mounts: false,
        });
    }
    let err = |message: String| CacheError::Spec {
        direction: "to",
        spec: spec.to_string(),
        message,
    };
    let location = location("to", spec, &fields, "dest")?;
    let max = match fields.get("mode").map(String::as_str) {
        None | Some("min") => false,
        Some("max") => true,
        Some(other) => return Err(err(format!("mode={other}: expected min or max"))),
    };
    let mounts = matches!(fields.get("mounts").map(String::as_str), Some("true"));
    Ok(CacheTo {
        location,
        max,
        mounts,
    })
}

/// `--cache-from type=local,src=DIR|type=registry,ref=REF`, or a bare image reference (the
/// shorthand docker and buildx take for `type=registry,ref=REF`).
pub fn parse_cache_from(spec: &str) -> Result<CacheFrom, CacheError> {
    if !spec.contains('=') {
        return parse_cache_from(&format!("type=registry,ref={spec}"));
    }
    let fields = parse_fields("from", spec)?;
    Ok(CacheFrom {
        location: location("from", spec, &fields, "src")?,
    })
}

/// One exported record: what the step produced, and the blob that carries its layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TravelRecord {
    pub record: CacheRecord,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<LayerBlob>,
}

/// The cache config: records by key, cache mounts by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheConfig {
    pub records: BTreeMap<String, TravelRecord>,
    #[serde(default)]
    pub mounts: BTreeMap<String, LayerBlob>,
}

/// What a build used, to export afterwards: keys per stage, and cache-mount ids.
#[derive(Debug, Default)]
pub struct UsedCache {
    keys: Mutex<Vec<(usize, String)>>,
    mounts: Mutex<Vec<String>>,
}

impl UsedCache {
    pub fn key(&self, stage: usize, key: &str) {
        if let Ok(mut keys) = self.keys.lock() {
            keys.push((stage, key.to_string()));
        }
    }

    /// The keys (with their stage) and mount ids used so far, keys deduplicated.
    pub fn snapshot(&self) -> (Vec<(usize, String)>, Vec<String>) {
        let mut keys = self.keys.lock().map(|k| k.clone()).unwrap_or_default();
        let mut seen = std::collections::BTreeSet::new();
        keys.retain(|(_, k)| seen.insert(k.clone()));
        let mounts = self.mounts.lock().map(|m| m.clone()).unwrap_or_default();
        (keys, mounts)
    }

    pub fn mount(&self, id: &str) {
        if let Ok(mut mounts) = self.mounts.lock() {
            if !mounts.iter().any(|m| m == id) {
                mounts.push(id.to_string());
            }
        }
    }

    /// What was used, split as `--cache-to mode=min|max` selects: `in_image` are the stages
    /// whose layers are in the image (the target and the stages it is FROM).
    pub fn records(&self, in_image: &[usize]) -> UsedRecords {
        let (keys, mounts) = self.snapshot();
        let mut used = UsedRecords {
            mounts,
            ..UsedRecords::default()
        };
        for (stage, key) in keys {
            if in_image.contains(&stage) {
                used.image.push(key.clone());
            }
            used.all.push(key);
        }
        used
    }
}

/// The cache records one build (or the builds of several platforms) used: what `--cache-to`
/// exports once after every platform is built.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsedRecords {
    /// Keys of the steps of the stages whose layers are in the image (mode=min).
    pub image: Vec<String>,
    /// Keys of every step used (mode=max).
    pub all: Vec<String>,
    /// Cache-mount ids (`mounts=true`).
    pub mounts: Vec<String>,
}

impl UsedRecords {
    /// Adds `other`'s records, each key once.
    pub fn merge(&mut self, other: &UsedRecords) {
        fn add(into: &mut Vec<String>, from: &[String]) {
            for item in from {
                if !into.contains(item) {
                    into.push(item.clone());
                }
            }
        }
        add(&mut self.image, &other.image);
        add(&mut self.all, &other.all);
        add(&mut self.mounts, &other.mounts);
    }

    /// The keys `to` exports.
    pub fn selected(&self, to: &CacheTo) -> &[String] {
        if to.max {
            &self.all
        } else {
            &self.image
        }
    }
}

/// `--cache-to`'s location as the user wrote it, for messages.
pub fn describe_location(location: &CacheLocation) -> String {
    match location {
        CacheLocation::Dir(dir) => dir.display().to_string(),
        CacheLocation::Registry(reference) => reference.clone(),
        CacheLocation::Inline => "the image config (inline)".to_string(),
    }
}

/// The inline cache of an image: the records of `keys` whose layer is one of `diff_ids` (the
/// image's) or that added none.
pub fn inline_records(store: &Store, keys: &[String], diff_ids: &[String]) -> serde_json::Value {
    let records: BTreeMap<&String, CacheRecord> = keys
        .iter()
        .filter_map(|key| store.cache_peek(key).map(|record| (key, record)))
        .filter(|(_, record)| {
            record
                .diff_id
                .as_ref()
                .is_none_or(|diff_id| diff_ids.contains(diff_id))
        })
        .collect();
    serde_json::json!({ "records": records })
}

/// The cache an image config carries inline, its layers found in `layers` (the manifest's
/// layer descriptors, in the order of the config's diff ids). None when it carries none.
pub fn inline_config(
    image_config: &serde_json::Value,
    layers: &[LayerBlob],
) -> Option<CacheConfig> {
    #[derive(Deserialize)]
    struct Inline {
        records: BTreeMap<String, CacheRecord>,
    }
    let inline: Inline = serde_json::from_value(image_config.get(INLINE_FIELD)?.clone()).ok()?;
    let diff_ids: Vec<&str> = image_config["rootfs"]["diff_ids"]
        .as_array()?
        .iter()
        .filter_map(|d| d.as_str())
        .collect();
    let mut config = CacheConfig::default();
    for (key, record) in inline.records {
        let blob = match &record.diff_id {
            Some(diff_id) => match diff_ids
                .iter()
                .position(|d| d == diff_id)
                .and_then(|index| layers.get(index))
            {
                Some(layer) => Some(layer.clone()),
                // A record whose layer is not the image's: of no use here.
                None => continue,
            },
            None => None,
        };
        config.records.insert(key, TravelRecord { record, blob });
    }
    Some(config)
}

fn blob_path(dir: &Path, digest: &str) -> PathBuf {
    dir.join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// Copies a blob into the cache dir unless it is already there (an unchanged cache exports
/// nothing new).
fn put_blob(dir: &Path, digest: &str, source: &Path) -> Result<bool, CacheError> {
    let target = blob_path(dir, digest);
    if target.exists() {
        return Ok(false);
    }
    // Same filesystem (a layout staged in the store): a hard link, no copy.
    if std::fs::hard_link(source, &target).is_ok() {
        return Ok(true);
    }
    let parent = target.parent().unwrap_or(dir);
    let temp = tempfile::NamedTempFile::new_in(parent).map_err(io("write", parent))?;
    std::fs::copy(source, temp.path()).map_err(io("write", &target))?;
    temp.persist(&target).map_err(|e| CacheError::Io {
        what: "write",
        path: target.clone(),
        source: e.error,
    })?;
    Ok(true)
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<Vec<u8>, CacheError> {
    let bytes = crate::image::canonical_json(value).map_err(|e| CacheError::Invalid {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(bytes)
}

fn store_bytes(dir: &Path, bytes: &[u8]) -> Result<(String, u64), CacheError> {
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
    let target = blob_path(dir, &digest);
    if !target.exists() {
        crate::store::write_atomic(&target, bytes)?;
    }
    Ok((digest, bytes.len() as u64))
}

/// Writes the records of `keys` (and the cache mounts `mount_ids`) where `to` says: a
/// directory, or a registry (through a layout staged in the store). Returns how many blobs
/// were newly written or uploaded.
pub fn export(
    store: &Store,
    to: &CacheTo,
    keys: &[String],
    mount_ids: &[String],
) -> Result<usize, CacheError> {
    match &to.location {
        // Written into the image config when the image was made.
        CacheLocation::Inline => Ok(0),
        CacheLocation::Dir(dir) => export_dir(store, dir, to.mounts, keys, mount_ids),
        CacheLocation::Registry(reference) => {
            let parsed =
                crate::image::parse_reference(reference).map_err(|e| CacheError::Invalid {
                    path: PathBuf::from(reference),
                    message: e.to_string(),
                })?;
            let staging = store.temp_dir("cache-push")?;
            // Start from the records already in the registry, so other builds' steps stay.
            if let Ok(remote) = crate::registry::cache::RemoteCache::open(&parsed) {
                if let Ok(config) = serde_json::from_slice::<CacheConfig>(&remote.config_bytes) {
                    seed_config(staging.path(), &config)?;
                }
            }
            export_dir(store, staging.path(), to.mounts, keys, mount_ids)?;
            let quiet = |_: &str| {};
            crate::registry::cache::push_cache(staging.path(), &parsed, &quiet).map_err(|e| {
                CacheError::Invalid {
                    path: PathBuf::from(reference),
                    message: e.to_string(),
                }
            })
        }
    }
}

/// A staging layout holding only `config` (its blobs stay in the registry: a push finds them
/// there and skips them).
fn seed_config(dir: &Path, config: &CacheConfig) -> Result<(), CacheError> {
    std::fs::create_dir_all(dir.join("blobs/sha256")).map_err(io("create", dir))?;
    let bytes = write_json(dir, config)?;
    let (config_digest, config_size) = store_bytes(dir, &bytes)?;
    let manifest = serde_json::json!({"schemaVersion": 2, "config": {"digest": config_digest, "size": config_size}, "layers": []});
    let (digest, size) = store_bytes(dir, &write_json(dir, &manifest)?)?;
    let index =
        serde_json::json!({"schemaVersion": 2, "manifests": [{"digest": digest, "size": size}]});
    crate::store::write_atomic(&dir.join("index.json"), &write_json(dir, &index)?)?;
    Ok(())
}

fn export_dir(
    store: &Store,
    dir: &Path,
    mounts: bool,
    keys: &[String],
    mount_ids: &[String],
) -> Result<usize, CacheError> {
    std::fs::create_dir_all(dir.join("blobs/sha256")).map_err(io("create", dir))?;
    let mut config = read_config(dir).unwrap_or_default();
    let mut written = 0;
    for key in keys {
        let Some(record) = store.cache_peek(key) else {
            continue;
        };
        let blob = match &record.diff_id {
            Some(diff_id) => {
                let (blob, path) = crate::archive::layer_blob(store, diff_id)?;
                if put_blob(dir, &blob.digest, &path)? {
                    written += 1;
                }
                Some(blob)
            }
            None => None,
        };
        config
            .records
            .insert(key.clone(), TravelRecord { record, blob });
    }
    if mounts {
        for id in mount_ids {
            let mount_dir = store.cache_mount_dir(id);
            if !mount_dir.is_dir() {
                continue;
            }
            let temp = store.blob_temp_file()?;
            let (file, temp_path) = temp.into_parts();
            let counted = crate::snapshot::DigestWriter::new(std::io::BufWriter::new(file));
            let encoder = flate2::GzBuilder::new()
                .mtime(0)
                .write(counted, flate2::Compression::fast());
            let mut tar = tar::Builder::new(encoder);
            tar.follow_symlinks(false);
            tar.append_dir_all(".", &mount_dir)
                .map_err(io("archive cache mount", &mount_dir))?;
            let encoder = tar
                .into_inner()
                .map_err(io("archive cache mount", &mount_dir))?;
            let counted = encoder
                .finish()
                .map_err(io("archive cache mount", &mount_dir))?;
            let (_, digest) = counted.finish();
            if put_blob(dir, &digest.as_oci(), &temp_path)? {
                written += 1;
            }
            config.mounts.insert(
                id.clone(),
                LayerBlob {
                    media_type: MOUNT_MEDIA_TYPE.into(),
                    digest: digest.as_oci(),
                    size: digest.size,
                },
            );
        }
    }
    // The records as a manifest's config, the blobs as its layers: an OCI layout.
    let config_bytes = write_json(dir, &config)?;
    let (config_digest, config_size) = store_bytes(dir, &config_bytes)?;
    let mut layers: Vec<serde_json::Value> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for blob in config
        .records
        .values()
        .filter_map(|r| r.blob.as_ref())
        .chain(config.mounts.values())
    {
        if seen.insert(blob.digest.clone()) {
            layers.push(serde_json::json!({"mediaType": blob.media_type, "digest": blob.digest, "size": blob.size}));
        }
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest, "size": config_size},
        "layers": layers,
    });
    let manifest_bytes = write_json(dir, &manifest)?;
    let (manifest_digest, manifest_size) = store_bytes(dir, &manifest_bytes)?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": "rbuild-cache"},
        }],
    });
    crate::store::write_atomic(&dir.join("index.json"), &write_json(dir, &index)?)?;
    crate::store::write_atomic(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    Ok(written)
}

/// The cache config of a layout written by `export`.
pub fn read_config(dir: &Path) -> Result<CacheConfig, CacheError> {
    let invalid = |message: String| CacheError::Invalid {
        path: dir.to_path_buf(),
        message,
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).map_err(io("read", dir))?)
            .map_err(|e| invalid(e.to_string()))?;
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .ok_or_else(|| invalid("index.json has no manifest".into()))?;
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(blob_path(dir, manifest_digest)).map_err(io("read", dir))?,
    )
    .map_err(|e| invalid(e.to_string()))?;
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .ok_or_else(|| invalid("manifest has no config".into()))?;
    serde_json::from_slice(&std::fs::read(blob_path(dir, config_digest)).map_err(io("read", dir))?)
        .map_err(|e| invalid(e.to_string()))
}

/// Where an imported cache's blobs come from.
#[derive(Debug)]
enum BlobSource {
    Dir(PathBuf),
    Registry(Box<crate::registry::cache::RemoteCache>),
}

impl BlobSource {
    /// A local path for `blob` (downloaded into the store from a registry).
    fn path(&self, store: &Store, blob: &LayerBlob) -> Option<PathBuf> {
        match self {
            BlobSource::Dir(dir) => Some(blob_path(dir, &blob.digest)),
            BlobSource::Registry(remote) => remote.fetch(store, blob).ok(),
        }
    }
}

/// Imported caches, consulted when the store misses.
#[derive(Debug, Default)]
pub struct Imported {
    sources: Vec<(BlobSource, CacheConfig)>,
}

impl Imported {
    pub fn open(from: &[CacheFrom]) -> Imported {
        // A cache that is not there yet (the first CI run) is no error.
        let sources = from
            .iter()
            .filter_map(|f| match &f.location {
                CacheLocation::Inline => None,
                CacheLocation::Dir(dir) => read_config(dir)
                    .ok()
                    .map(|c| (BlobSource::Dir(dir.clone()), c)),
                CacheLocation::Registry(reference) => {
                    let parsed = crate::image::parse_reference(reference).ok()?;
                    let remote = crate::registry::cache::RemoteCache::open(&parsed).ok()?;
                    let config = serde_json::from_slice(&remote.config_bytes).ok()?;
                    Some((BlobSource::Registry(Box::new(remote)), config))
                }
            })
            .collect();
        Imported { sources }
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// The record for `key`, with its layer imported into the store (only now: blobs of
    /// steps that miss are never read).
    pub fn lookup(&self, store: &Store, key: &str) -> Option<CacheRecord> {
        for (source, config) in &self.sources {
            let Some(travel) = config.records.get(key) else {
                continue;
            };
            if let (Some(diff_id), Some(blob)) = (&travel.record.diff_id, &travel.blob) {
                if !store.has_layer(diff_id) {
                    let Some(path) = source.path(store, blob) else {
                        continue;
                    };
                    if crate::archive::import_layer_blob(store, &path, blob.clone(), diff_id)
                        .is_err()
                    {
                        continue;
                    }
                }
            }
            let _ = store.cache_store(key, &travel.record);
            return Some(travel.record.clone());
        }
        None
    }

    /// Seeds a cache mount from an imported one when the store has none yet.
    pub fn seed_mount(&self, store: &Store, id: &str, dir: &Path) -> bool {
        for (source, config) in &self.sources {
            let Some(blob) = config.mounts.get(id) else {
                continue;
            };
            let Some(path) = source.path(store, blob) else {
                continue;
            };
            let Ok(file) = std::fs::File::open(path) else {
                continue;
            };
            // An imported cache is untrusted like any archive: through the boundary.
            let Ok((_, stream)) = boundary::decompress::decompressing_reader(file) else {
                continue;
            };
            if std::fs::create_dir_all(dir).is_err() {
                continue;
            }
            let Ok(root) = boundary::open_root(dir) else {
                continue;
            };
            let options = boundary::ExtractOptions {
                format: boundary::Format::Plain,
                ownership: boundary::Ownership::Archive,
                special_files: false,
                links: true,
                xattrs: true,
            };
            if boundary::extract_tar(stream, &root, options).is_ok() {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bare reference is the registry cache at it, as docker's `--cache-from IMAGE`.
    #[test]
    fn cache_from_takes_a_bare_image_reference() {
        assert_eq!(
            parse_cache_from("registry.lan/team/app:cache")
                .map(|c| c.location)
                .ok(),
            Some(CacheLocation::Registry(
                "registry.lan/team/app:cache".into()
            ))
        );
        assert_eq!(
            parse_cache_from("type=local,src=dir")
                .map(|c| c.location)
                .ok(),
            Some(CacheLocation::Dir(PathBuf::from("dir")))
        );
        assert!(parse_cache_from("Not A Reference").is_err());
    }

    /// mode=min exports the steps of the stages in the image, mode=max every step; the records
    /// of several platforms merge with each key once.
    #[test]
    fn used_records_split_by_mode_and_merge_once() {
        let used = UsedCache::default();
        used.key(0, "builder-step");
        used.key(1, "final-step");
        used.key(1, "final-step");
        used.mount("m");
        let mut records = used.records(&[1]);
        assert_eq!(records.image, ["final-step"]);
        assert_eq!(records.all, ["builder-step", "final-step"]);
        let to = |max| CacheTo {
            location: CacheLocation::Dir(PathBuf::from("c")),
            max,
            mounts: false,
        };
        assert_eq!(records.selected(&to(false)), ["final-step"]);
        assert_eq!(records.selected(&to(true)).len(), 2);

        let other = UsedCache::default();
        other.key(1, "final-step");
        other.key(1, "arm-step");
        other.mount("m");
        records.merge(&other.records(&[1]));
        assert_eq!(records.image, ["final-step", "arm-step"]);
        assert_eq!(records.all, ["builder-step", "final-step", "arm-step"]);
        assert_eq!(records.mounts, ["m"]);
    }

    /// An inline cache names no blobs: each record's layer is the manifest's layer at the
    /// index of its diff id; a record whose layer the image lacks is left out.
    #[test]
    fn inline_records_find_their_layers_in_the_manifest() {
        assert_eq!(
            parse_cache_to("type=inline").map(|to| to.location).ok(),
            Some(CacheLocation::Inline)
        );
        assert!(parse_cache_from("type=inline").is_err());
        let record = |diff_id: Option<&str>| serde_json::json!({"diff_id": diff_id, "created": "2024-01-01T00:00:00Z"});
        let config = serde_json::json!({
            "rootfs": {"type": "layers", "diff_ids": ["sha256:base", "sha256:mine"]},
            INLINE_FIELD: {"records": {
                "k-layer": record(Some("sha256:mine")),
                "k-empty": record(None),
                "k-elsewhere": record(Some("sha256:other")),
            }},
        });
        let layer = |digest: &str| LayerBlob {
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            digest: digest.into(),
            size: 1,
        };
        let layers = [layer("sha256:gz-base"), layer("sha256:gz-mine")];
        let found = inline_config(&config, &layers).expect("an inline cache");
        assert_eq!(
            found.records.keys().collect::<Vec<_>>(),
            ["k-empty", "k-layer"]
        );
        assert_eq!(found.records["k-layer"].blob, Some(layers[1].clone()));
        assert_eq!(found.records["k-empty"].blob, None);
        assert!(inline_config(&serde_json::json!({"rootfs": {}}), &layers).is_none());
    }
}
