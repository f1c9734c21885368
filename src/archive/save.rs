//! Writes an image of the store as an OCI archive or layout dir (gzip layers by default, as
//! `docker buildx --output type=oci` does) or a Docker archive (`docker save` >= 25: an OCI
//! layout with uncompressed layers plus manifest.json, which `docker load` and `podman load`
//! read). Media types (OCI or Docker schema2), layer compression, annotations and timestamp
//! rewriting are chosen by [`ExportOptions`].

// Paths here are the store's layer blobs and the output path the user named: the boundary rule (clippy.toml) does not apply.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::MediaType;

use super::{io_err, ArchiveError};
use crate::image::manifest::{descriptor, image_manifest, tagged_index, to_bytes};
use crate::snapshot::{self, DigestReader, DigestWriter};
use crate::store::{LayerBlob, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    Oci,
    Docker,
}

/// Media types of manifest, config and layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MediaTypes {
    #[default]
    Oci,
    /// Docker image manifest v2 schema 2 (no zstd).
    Docker,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zstd,
    Uncompressed,
}

impl Compression {
    fn of_media_type(media_type: &str) -> Compression {
        if media_type.ends_with("gzip") {
            Compression::Gzip
        } else if media_type.ends_with("zstd") {
            Compression::Zstd
        } else {
            Compression::Uncompressed
        }
    }

    fn layer_media_type(self, media_types: MediaTypes) -> &'static str {
        match (media_types, self) {
            (MediaTypes::Oci, Compression::Gzip) => OCI_GZIP_LAYER,
            (MediaTypes::Oci, Compression::Zstd) => OCI_ZSTD_LAYER,
            (MediaTypes::Oci, Compression::Uncompressed) => OCI_TAR_LAYER,
            (MediaTypes::Docker, Compression::Uncompressed) => DOCKER_TAR_LAYER,
            // zstd is refused with Docker media types before getting here
            (MediaTypes::Docker, _) => DOCKER_GZIP_LAYER,
        }
    }
}

/// The base image, for the `org.opencontainers.image.base.*` annotations and for telling
/// the layers the build made (which `rewrite-timestamp` may change) from the base's.
#[derive(Debug, Clone, Default)]
pub struct BaseImage {
    /// As written in FROM, e.g. `busybox:latest`.
    pub name: String,
    /// The base's manifest digest, when known.
    pub digest: Option<String>,
    /// How many of the image's layers (bottom first) are the base's.
    pub layer_count: usize,
}

/// The annotations an image's manifest carries when written with `options`: the ones asked
/// for, and with OCI media types the image's `created` and its base (`base.name`,
/// `base.digest`). Every output and push of one build uses this, so that they all describe
/// the same manifest (and `--metadata-file`'s digest is one the registry knows).
pub fn manifest_annotations(
    options: &ExportOptions,
    config: &serde_json::Value,
) -> Result<std::collections::BTreeMap<String, String>, super::ArchiveError> {
    let mut annotations: std::collections::BTreeMap<String, String> =
        options.manifest_annotations.clone().into_iter().collect();
    let platform = match (config["os"].as_str(), config["architecture"].as_str()) {
        (Some(os), Some(arch)) => match config["variant"].as_str().filter(|v| !v.is_empty()) {
            Some(variant) => format!("{os}/{arch}/{variant}"),
            None => format!("{os}/{arch}"),
        },
        _ => String::new(),
    };
    if let Some(extra) = options.platform_manifest_annotations.get(&platform) {
        annotations.extend(extra.clone());
    }
    if options.media_types == MediaTypes::Oci {
        if let Some(created) = config["created"].as_str() {
            annotations
                .entry(ANNOTATION_CREATED.into())
                .or_insert_with(|| created.to_string());
        }
        if let Some(base) = options.base.as_ref().filter(|b| !b.name.is_empty()) {
            annotations
                .entry(ANNOTATION_BASE_NAME.into())
                .or_insert_with(|| base.name.clone());
            if let Some(digest) = &base.digest {
                annotations
                    .entry(ANNOTATION_BASE_DIGEST.into())
                    .or_insert_with(|| digest.clone());
            }
        }
    } else if !annotations.is_empty() {
        return Err(super::ArchiveError::AnnotationsNeedOci);
    }
    Ok(annotations)
}

/// How an image is written: names, media types, compression, annotations, timestamps.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// `name:tag` names: `ref.name` on index.json descriptors, RepoTags in manifest.json.
    pub tags: Vec<String>,
    pub media_types: MediaTypes,
    /// None: gzip, except that a layer keeps the blob it came with whatever its compression.
    pub compression: Option<Compression>,
    pub compression_level: Option<i32>,
    /// Annotations on the image manifest.
    pub manifest_annotations: BTreeMap<String, String>,
    /// Annotations on the manifest's descriptors in index.json.
    pub descriptor_annotations: BTreeMap<String, String>,
    /// Annotations on index.json itself.
    pub index_annotations: BTreeMap<String, String>,
    /// `manifest[os/arch]:` annotations, by platform (`linux/arm64`): only on that
    /// platform's manifest.
    pub platform_manifest_annotations: BTreeMap<String, BTreeMap<String, String>>,
    /// `manifest-descriptor[os/arch]:` annotations: only on that platform's index entry.
    pub platform_descriptor_annotations: BTreeMap<String, BTreeMap<String, String>>,
    /// `index-descriptor:` annotations: on the image index's entry in a layout's index.json.
    pub index_descriptor_annotations: BTreeMap<String, String>,
    /// `SOURCE_DATE_EPOCH` with `rewrite-timestamp=true`: mtimes of the files of the layers the
    /// build made are clamped to it (the base's layers are kept as they are).
    pub rewrite_timestamp: Option<i64>,
    pub base: Option<BaseImage>,
}

/// An image index as written: what `--iidfile` and `--metadata-file` name for several
/// platforms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedIndex {
    pub digest: String,
    pub size: u64,
}

/// What was written, as `--metadata-file` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedImage {
    pub manifest_digest: String,
    pub manifest_size: u64,
    pub manifest_media_type: String,
    pub config_digest: String,
}

/// Where an OCI or Docker archive goes.
pub enum ArchiveDest {
    /// A tar file, written to a temp file beside it and renamed into place.
    File(PathBuf),
    /// An OCI layout directory (created when missing; blobs already there are kept).
    Dir(PathBuf),
    /// A tar stream, e.g. stdout.
    Stream(Box<dyn Write>),
}

impl ArchiveDest {
    fn label(&self) -> PathBuf {
        match self {
            ArchiveDest::File(p) | ArchiveDest::Dir(p) => p.clone(),
            ArchiveDest::Stream(_) => PathBuf::from("-"),
        }
    }
}

const OCI_GZIP_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_ZSTD_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const OCI_TAR_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const DOCKER_GZIP_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const DOCKER_TAR_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
pub const ANNOTATION_BASE_NAME: &str = "org.opencontainers.image.base.name";
pub const ANNOTATION_BASE_DIGEST: &str = "org.opencontainers.image.base.digest";

/// Compresses the layer's tar (clamped or not) into a new blob of the store; returns the blob
/// and the tar's digest (the layer's diff_id, which changes when mtimes are clamped).
fn make_blob(
    store: &Store,
    diff_id: &str,
    compression: Compression,
    level: Option<i32>,
    clamp_mtime: Option<i64>,
    original: Option<&Path>,
) -> Result<(LayerBlob, String), ArchiveError> {
    let layer_dir = store.layer_dir(diff_id)?;
    // A layer that came with a blob is recompressed from that blob: its tar (entry order,
    // headers) is not ours, so re-tarring the layer dir would change its diff_id.
    let original = original.filter(|_| clamp_mtime.is_none());
    let write_tar = |out: &mut dyn Write| -> Result<(), ArchiveError> {
        match original {
            Some(path) => {
                let file = std::fs::File::open(path).map_err(io_err("read", path))?;
                let mut tar =
                    snapshot::decompressing_reader(file).map_err(io_err("decompress", path))?;
                std::io::copy(&mut tar, out).map_err(io_err("decompress", path))?;
                Ok(())
            }
            None => {
                snapshot::write_layer_tar_clamped(&layer_dir, out, clamp_mtime)?;
                Ok(())
            }
        }
    };
    let temp = store.blob_temp_file()?;
    let (file, temp_path) = temp.into_parts();
    let counted = DigestWriter::new(std::io::BufWriter::new(file));
    // Hash the tar on its way into the compressor: that is the diff_id.
    let (counted, tar_digest) = match compression {
        Compression::Gzip => {
            let level = level.unwrap_or(6).clamp(0, 9) as u32;
            let encoder = snapshot::ParallelGzEncoder::new(counted, level, 0);
            let mut tar = DigestWriter::new(encoder);
            write_tar(&mut tar)?;
            let (encoder, tar_digest) = tar.finish();
            (
                encoder
                    .finish()
                    .map_err(io_err("compress layer", &layer_dir))?,
                tar_digest,
            )
        }
        Compression::Zstd => {
            let level = level.unwrap_or(3).clamp(1, 22);
            let encoder = snapshot::zstd_encoder(counted, level, 0)
                .map_err(io_err("compress layer", &layer_dir))?;
            let mut tar = DigestWriter::new(encoder);
            write_tar(&mut tar)?;
            let (encoder, tar_digest) = tar.finish();
            (
                encoder
                    .finish()
                    .map_err(io_err("compress layer", &layer_dir))?,
                tar_digest,
            )
        }
        Compression::Uncompressed => {
            let mut tar = DigestWriter::new(counted);
            write_tar(&mut tar)?;
            let (counted, tar_digest) = tar.finish();
            (counted, tar_digest)
        }
    };
    if clamp_mtime.is_none() && tar_digest.as_oci() != diff_id {
        return Err(ArchiveError::Invalid {
            path: layer_dir,
            message: format!(
                "layer reads back as {}, not {diff_id}: the store's copy is damaged",
                tar_digest.as_oci()
            ),
        });
    }
    let (buffered, digest) = counted.finish();
    buffered
        .into_inner()
        .map_err(|e| ArchiveError::Io {
            action: "write blob for",
            path: layer_dir.clone(),
            source: e.into_error(),
        })?
        .sync_all()
        .map_err(io_err("sync blob for", &layer_dir))?;
    let blob = LayerBlob {
        media_type: compression.layer_media_type(MediaTypes::Oci).to_string(),
        digest: digest.as_oci(),
        size: digest.size,
    };
    store.adopt_blob(temp_path, &blob.digest)?;
    Ok((blob, tar_digest.as_oci()))
}

/// One layer as it will be written.
#[derive(Clone)]
struct ExportLayer {
    media_type: String,
    digest: String,
    size: u64,
    diff_id: String,
    source: Source,
}

#[derive(Clone)]
enum Source {
    Blob(PathBuf),
    /// The layer's uncompressed tar, from its compressed blob or its layer dir.
    LayerTar {
        diff_id: String,
        compressed: Option<PathBuf>,
    },
}

/// The blob carrying `diff_id` as `options` ask: a blob the store has with that compression
/// (cached by an earlier export, or the one a base layer came with), else a new one.
fn export_layer(
    store: &Store,
    diff_id: &str,
    options: &ExportOptions,
    rewrite: bool,
    uncompressed_only: bool,
) -> Result<ExportLayer, ArchiveError> {
    let mut info = store.layer_info(diff_id)?;
    let present: Vec<&LayerBlob> = info
        .blobs
        .iter()
        .filter(|b| store.has_blob(&b.digest))
        .collect();
    let wanted = if uncompressed_only {
        Compression::Uncompressed
    } else {
        match options.compression {
            Some(c) => c,
            None => {
                let gzip = present
                    .iter()
                    .find(|b| Compression::of_media_type(&b.media_type) == Compression::Gzip);
                gzip.or(present.first())
                    .map(|b| Compression::of_media_type(&b.media_type))
                    .unwrap_or(Compression::Gzip)
            }
        }
    };
    // Docker schema2 has no zstd: a zstd base layer is recompressed with gzip there.
    let wanted = if options.media_types == MediaTypes::Docker && wanted == Compression::Zstd {
        Compression::Gzip
    } else {
        wanted
    };
    let media_type = wanted.layer_media_type(options.media_types).to_string();
    if rewrite {
        let (blob, new_diff_id) = make_blob(
            store,
            diff_id,
            wanted,
            options.compression_level,
            options.rewrite_timestamp,
            None,
        )?;
        return Ok(ExportLayer {
            media_type,
            source: Source::Blob(store.blob_path(&blob.digest)?),
            digest: blob.digest,
            size: blob.size,
            diff_id: new_diff_id,
        });
    }
    if let Some(blob) = present
        .iter()
        .find(|b| Compression::of_media_type(&b.media_type) == wanted)
    {
        return Ok(ExportLayer {
            media_type,
            source: Source::Blob(store.blob_path(&blob.digest)?),
            digest: blob.digest.clone(),
            size: blob.size,
            diff_id: diff_id.to_string(),
        });
    }
    if wanted == Compression::Uncompressed {
        // Streamed from a compressed blob or the layer dir: no second copy in the store.
        let compressed = present
            .first()
            .map(|b| store.blob_path(&b.digest))
            .transpose()?;
        return Ok(ExportLayer {
            media_type,
            digest: diff_id.to_string(),
            size: info.tar_size,
            diff_id: diff_id.to_string(),
            source: Source::LayerTar {
                diff_id: diff_id.to_string(),
                compressed,
            },
        });
    }
    let original = present
        .first()
        .map(|b| store.blob_path(&b.digest))
        .transpose()?;
    let (blob, _) = make_blob(
        store,
        diff_id,
        wanted,
        options.compression_level,
        None,
        original.as_deref(),
    )?;
    info.blobs.push(blob.clone());
    store.set_layer_info(&info)?;
    Ok(ExportLayer {
        media_type,
        source: Source::Blob(store.blob_path(&blob.digest)?),
        digest: blob.digest,
        size: blob.size,
        diff_id: diff_id.to_string(),
    })
}

/// An image ready to be written: every blob exists or can be streamed, the JSON is final.
struct PreparedImage {
    config_digest: String,
    config_bytes: Vec<u8>,
    layers: Vec<ExportLayer>,
    manifest_digest: String,
    manifest_bytes: Vec<u8>,
    manifest_media_type: String,
    index_bytes: Vec<u8>,
}

fn sha256_oci(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
    )
}

fn prepare(
    store: &Store,
    image_id: &str,
    options: &ExportOptions,
    format: ArchiveFormat,
    label: &Path,
) -> Result<PreparedImage, ArchiveError> {
    let invalid = |message: String| ArchiveError::Invalid {
        path: label.to_path_buf(),
        message,
    };
    if options.media_types == MediaTypes::Docker && options.compression == Some(Compression::Zstd) {
        return Err(invalid(
            "zstd layers need OCI media types (Docker schema2 has no zstd): use --format oci"
                .into(),
        ));
    }
    let original_config = store.read_blob(image_id)?;
    let mut config: serde_json::Value = serde_json::from_slice(&original_config)
        .map_err(|e| invalid(format!("image config: {e}")))?;
    let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
        .as_array()
        .map(|ids| {
            ids.iter()
                .filter_map(|d| d.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let layers = export_layers(store, &diff_ids, options, format, label)?;

    // Clamped layers have new diff_ids: the config changes with them.
    let new_diff_ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
    let config_bytes = if new_diff_ids != diff_ids {
        config["rootfs"]["diff_ids"] = serde_json::json!(new_diff_ids);
        crate::image::config::canonical_json(&config)
            .map_err(|e| invalid(format!("image config: {e}")))?
    } else {
        original_config
    };
    let config_digest = sha256_oci(&config_bytes);
    if config_digest != image_id {
        store.put_blob(&config_bytes)?;
    }

    let manifest_type = match options.media_types {
        MediaTypes::Oci => MediaType::ImageManifest,
        MediaTypes::Docker => MediaType::Other(DOCKER_MANIFEST.into()),
    };
    let manifest_bytes = manifest_bytes(
        options,
        &config,
        (&config_digest, config_bytes.len() as u64),
        &layers,
    )?;
    let manifest_digest = sha256_oci(&manifest_bytes);
    let manifest_desc = descriptor(manifest_type, &manifest_digest, manifest_bytes.len() as u64)?;
    let index_bytes = layout_index(&manifest_desc, options)?;
    Ok(PreparedImage {
        config_digest,
        config_bytes,
        layers,
        manifest_digest,
        manifest_bytes,
        manifest_media_type: match options.media_types {
            MediaTypes::Oci => OCI_MANIFEST.to_string(),
            MediaTypes::Docker => DOCKER_MANIFEST.to_string(),
        },
        index_bytes,
    })
}

/// Each layer's blob as the options want it (compressed, timestamps rewritten above the
/// base's layers), made in parallel.
fn export_layers(
    store: &Store,
    diff_ids: &[String],
    options: &ExportOptions,
    format: ArchiveFormat,
    label: &Path,
) -> Result<Vec<ExportLayer>, ArchiveError> {
    let base_layers = options.base.as_ref().map_or(0, |b| b.layer_count);
    // A layer that appears twice (two identical steps) is compressed once.
    let wanted: Vec<(&String, bool)> = diff_ids
        .iter()
        .enumerate()
        .map(|(i, d)| (d, options.rewrite_timestamp.is_some() && i >= base_layers))
        .collect();
    let mut unique = wanted.clone();
    unique.sort();
    unique.dedup();
    let docker = format == ArchiveFormat::Docker;
    let made: Vec<ExportLayer> = each_layer(&unique, label, |&(d, rewrite)| {
        export_layer(store, d, options, rewrite, docker)
    })?;
    Ok(wanted
        .iter()
        .filter_map(|key| {
            let at = unique.binary_search(key).ok()?;
            made.get(at).cloned()
        })
        .collect())
}

/// `make` for each of `items` in parallel, results in order. Each compression already runs
/// on every core, so only as many layers as there are cores are worked on at once: more would
/// add memory (zstd's workers hold tens of MB each), not speed.
pub(crate) fn each_layer<T: Sync, R: Send>(
    items: &[T],
    label: &Path,
    make: impl Fn(&T) -> Result<R, ArchiveError> + Sync,
) -> Result<Vec<R>, ArchiveError> {
    let at_once = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<Option<Result<R, ArchiveError>>>> =
        std::sync::Mutex::new(items.iter().map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..at_once {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let result = make(item);
                let mut slots = results
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                slots[i] = Some(result);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .into_iter()
        .map(|slot| {
            // A slot left empty is a worker that panicked.
            slot.unwrap_or_else(|| {
                Err(ArchiveError::Invalid {
                    path: label.to_path_buf(),
                    message: "layer compression panicked".into(),
                })
            })
        })
        .collect()
}

/// The image manifest: its config and layers in the options' media types, and its
/// annotations.
fn manifest_bytes(
    options: &ExportOptions,
    config: &serde_json::Value,
    (config_digest, config_size): (&str, u64),
    layers: &[ExportLayer],
) -> Result<Vec<u8>, ArchiveError> {
    let (manifest_type, config_type) = match options.media_types {
        MediaTypes::Oci => (MediaType::ImageManifest, MediaType::ImageConfig),
        MediaTypes::Docker => (
            MediaType::Other(DOCKER_MANIFEST.into()),
            MediaType::Other(DOCKER_CONFIG.into()),
        ),
    };
    let config_desc = descriptor(config_type, config_digest, config_size)?;
    let layer_descs = layers
        .iter()
        .map(|l| descriptor(MediaType::from(l.media_type.as_str()), &l.digest, l.size))
        .collect::<Result<Vec<_>, _>>()?;
    let mut manifest = image_manifest(config_desc, layer_descs)?;
    manifest.set_media_type(Some(manifest_type));
    let annotations = manifest_annotations(options, config)?;
    if !annotations.is_empty() {
        manifest.set_annotations(Some(annotations.into_iter().collect()));
    }
    Ok(to_bytes("manifest", &manifest)?)
}

/// index.json of a layout holding one image: its descriptor under each tag, with the
/// descriptor and index annotations asked.
fn layout_index(
    manifest_desc: &oci_spec::image::Descriptor,
    options: &ExportOptions,
) -> Result<Vec<u8>, ArchiveError> {
    let mut index = tagged_index(manifest_desc, &options.tags)?;
    if !options.descriptor_annotations.is_empty() {
        let mut manifests = index.manifests().clone();
        for desc in &mut manifests {
            let mut annotations = desc.annotations().clone().unwrap_or_default();
            for (k, v) in &options.descriptor_annotations {
                annotations.entry(k.clone()).or_insert_with(|| v.clone());
            }
            desc.set_annotations(Some(annotations));
        }
        index.set_manifests(manifests);
    }
    if !options.index_annotations.is_empty() {
        index.set_annotations(Some(
            options
                .index_annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ));
    }
    Ok(to_bytes("index", &index)?)
}

/// What the image would be if written with `options` (its manifest and config digests),
/// making the blobs that needs but writing no archive: for `--metadata-file`.
pub fn describe(
    store: &Store,
    image_id: &str,
    options: &ExportOptions,
) -> Result<ExportedImage, ArchiveError> {
    let prepared = prepare(store, image_id, options, ArchiveFormat::Oci, Path::new("-"))?;
    Ok(exported(&prepared))
}

fn exported(prepared: &PreparedImage) -> ExportedImage {
    ExportedImage {
        manifest_digest: prepared.manifest_digest.clone(),
        manifest_size: prepared.manifest_bytes.len() as u64,
        manifest_media_type: prepared.manifest_media_type.clone(),
        config_digest: prepared.config_digest.clone(),
    }
}

/// A fixed tar header for archive members: the archive's bytes depend only on the image.
fn member_header(size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    header
}

fn blob_name(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

/// The members of an archive go to a tar stream or into a layout dir.
enum Sink {
    Tar(tar::Builder<Box<dyn Write>>),
    Dir(PathBuf),
}

impl Sink {
    fn put(
        &mut self,
        name: &str,
        size: u64,
        reader: &mut dyn Read,
        label: &Path,
    ) -> Result<(), ArchiveError> {
        match self {
            Sink::Tar(out) => {
                let mut header = member_header(size);
                out.append_data(&mut header, name, reader)
                    .map_err(io_err("write", label))
            }
            Sink::Dir(dir) => {
                let path = dir.join(name);
                let parent = path.parent().unwrap_or(dir);
                std::fs::create_dir_all(parent).map_err(io_err("create", parent))?;
                if name.starts_with("blobs/") && path.exists() {
                    return Ok(()); // content-addressed: already there means already right
                }
                let mut temp =
                    output_temp_file(parent).map_err(io_err("create temp file in", parent))?;
                std::io::copy(reader, &mut temp).map_err(io_err("write", &path))?;
                temp.as_file().sync_all().map_err(io_err("sync", &path))?;
                temp.persist(&path).map_err(|e| ArchiveError::Io {
                    action: "write",
                    path: path.clone(),
                    source: e.error,
                })?;
                Ok(())
            }
        }
    }

    fn put_bytes(&mut self, name: &str, bytes: &[u8], label: &Path) -> Result<(), ArchiveError> {
        self.put(name, bytes.len() as u64, &mut &bytes[..], label)
    }
}

/// Writes `image_id` to `dest` in `format`, naming it with `tags` (`name:tag`), with OCI media
/// types and the default compression.
pub fn save(
    store: &Store,
    image_id: &str,
    tags: &[String],
    format: ArchiveFormat,
    dest: &Path,
) -> Result<(), ArchiveError> {
    let options = ExportOptions {
        tags: tags.to_vec(),
        ..ExportOptions::default()
    };
    save_with(
        store,
        image_id,
        &options,
        format,
        ArchiveDest::File(dest.to_path_buf()),
    )?;
    Ok(())
}

/// Writes `image_id` to `dest` in `format` as `options` say.
pub fn save_with(
    store: &Store,
    image_id: &str,
    options: &ExportOptions,
    format: ArchiveFormat,
    dest: ArchiveDest,
) -> Result<ExportedImage, ArchiveError> {
    let label = dest.label();
    let prepared = prepare(store, image_id, options, format, &label)?;
    let (mut sink, temp_file) = open_sink(dest, &label)?;
    sink.put_bytes("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#, &label)?;
    put_image(&mut sink, store, &prepared, &label)?;
    if format == ArchiveFormat::Docker {
        let docker_manifest = serde_json::json!([{
            "Config": blob_name(&prepared.config_digest),
            "RepoTags": options.tags,
            "Layers": prepared.layers.iter().map(|l| blob_name(&l.digest)).collect::<Vec<_>>(),
        }]);
        sink.put_bytes(
            "manifest.json",
            docker_manifest.to_string().as_bytes(),
            &label,
        )?;
    }
    sink.put_bytes("index.json", &prepared.index_bytes, &label)?;
    finish_sink(sink, temp_file, &label)?;
    Ok(exported(&prepared))
}

/// One platform's image of a multi-platform build, and its base (for annotations and
/// `rewrite-timestamp`).
#[derive(Debug, Clone)]
pub struct PlatformImage {
    pub image_id: String,
    pub base: Option<BaseImage>,
}

/// The images of several platforms prepared as one image index: what `save_platforms` writes
/// and `describe_platforms` names.
struct PreparedIndex {
    images: Vec<PreparedImage>,
    index_bytes: Vec<u8>,
    index_digest: String,
}

fn prepare_platforms(
    store: &Store,
    images: &[PlatformImage],
    options: &ExportOptions,
    label: &Path,
) -> Result<PreparedIndex, ArchiveError> {
    let mut prepared = Vec::with_capacity(images.len());
    for image in images {
        let image_options = ExportOptions {
            tags: Vec::new(),
            base: image.base.clone(),
            ..options.clone()
        };
        prepared.push(prepare(
            store,
            &image.image_id,
            &image_options,
            ArchiveFormat::Oci,
            label,
        )?);
    }
    let mut manifests = Vec::with_capacity(prepared.len());
    for image in &prepared {
        let invalid = |e: &dyn std::fmt::Display| ArchiveError::Invalid {
            path: label.to_path_buf(),
            message: format!("image config {}: {e}", image.config_digest),
        };
        let config: crate::image::ImageConfig =
            serde_json::from_slice(&image.config_bytes).map_err(|e| invalid(&e))?;
        let mut desc = descriptor(
            MediaType::from(image.manifest_media_type.as_str()),
            &image.manifest_digest,
            image.manifest_bytes.len() as u64,
        )?;
        desc.set_platform(Some(config.oci_platform().map_err(|e| invalid(&e))?));
        let mut annotations = options.descriptor_annotations.clone();
        if let Some(extra) = options
            .platform_descriptor_annotations
            .get(&config.platform_text())
        {
            annotations.extend(extra.clone());
        }
        if !annotations.is_empty() {
            desc.set_annotations(Some(annotations.into_iter().collect()));
        }
        manifests.push(desc);
    }
    let mut index = crate::image::manifest::image_index(manifests)?;
    if !options.index_annotations.is_empty() {
        index.set_annotations(Some(
            options.index_annotations.clone().into_iter().collect(),
        ));
    }
    let index_bytes = to_bytes("index", &index)?;
    Ok(PreparedIndex {
        index_digest: sha256_oci(&index_bytes),
        images: prepared,
        index_bytes,
    })
}

/// Writes the images of one build for several platforms as one OCI archive or layout:
/// index.json names (with `options.tags`) an image index whose manifests carry the platform
/// of their config, as `docker buildx --output type=oci` writes it. Returns the index's digest.
pub fn save_platforms(
    store: &Store,
    images: &[PlatformImage],
    options: &ExportOptions,
    dest: ArchiveDest,
) -> Result<ExportedIndex, ArchiveError> {
    let label = dest.label();
    let prepared = prepare_platforms(store, images, options, &label)?;
    let mut index_desc = descriptor(
        MediaType::ImageIndex,
        &prepared.index_digest,
        prepared.index_bytes.len() as u64,
    )?;
    if !options.index_descriptor_annotations.is_empty() {
        index_desc.set_annotations(Some(
            options
                .index_descriptor_annotations
                .clone()
                .into_iter()
                .collect(),
        ));
    }
    let layout_index = to_bytes("index", &tagged_index(&index_desc, &options.tags)?)?;

    let (mut sink, temp_file) = open_sink(dest, &label)?;
    sink.put_bytes("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#, &label)?;
    for image in &prepared.images {
        put_image(&mut sink, store, image, &label)?;
    }
    sink.put_bytes(
        &blob_name(&prepared.index_digest),
        &prepared.index_bytes,
        &label,
    )?;
    sink.put_bytes("index.json", &layout_index, &label)?;
    finish_sink(sink, temp_file, &label)?;
    Ok(ExportedIndex {
        digest: prepared.index_digest,
        size: prepared.index_bytes.len() as u64,
    })
}

/// The image index `save_platforms` would write with `options`, writing no archive: for
/// `--iidfile` and `--metadata-file`.
pub fn describe_platforms(
    store: &Store,
    images: &[PlatformImage],
    options: &ExportOptions,
) -> Result<ExportedIndex, ArchiveError> {
    let prepared = prepare_platforms(store, images, options, Path::new("-"))?;
    Ok(ExportedIndex {
        size: prepared.index_bytes.len() as u64,
        digest: prepared.index_digest,
    })
}

/// A temp file renamed into place by [`finish_sink`]: a failed write leaves no partial archive.
type PendingFile = Option<(tempfile::NamedTempFile, PathBuf)>;

/// A temp file beside an output the user asked for, renamed over it when complete. Created
/// 0666 less the umask, as any file a command writes for its user (a temp file's own 0600
/// would leave the archive unreadable to a later CI step running as another user).
pub fn output_temp_file(dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
}

fn open_sink(dest: ArchiveDest, label: &Path) -> Result<(Sink, PendingFile), ArchiveError> {
    Ok(match dest {
        ArchiveDest::File(path) => {
            let parent = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf();
            let temp = output_temp_file(&parent).map_err(io_err("create temp file in", &parent))?;
            let file = temp.reopen().map_err(io_err("open", temp.path()))?;
            let sink = Sink::Tar(tar::Builder::new(Box::new(std::io::BufWriter::new(file))));
            (sink, Some((temp, path)))
        }
        ArchiveDest::Stream(out) => (Sink::Tar(tar::Builder::new(out)), None),
        ArchiveDest::Dir(path) => {
            std::fs::create_dir_all(&path).map_err(io_err("create", label))?;
            (Sink::Dir(path), None)
        }
    })
}

/// The config, layer and manifest blobs of one image.
fn put_image(
    sink: &mut Sink,
    store: &Store,
    prepared: &PreparedImage,
    label: &Path,
) -> Result<(), ArchiveError> {
    sink.put_bytes(
        &blob_name(&prepared.config_digest),
        &prepared.config_bytes,
        label,
    )?;
    for layer in &prepared.layers {
        let mut reader: Box<dyn Read> = match &layer.source {
            Source::Blob(path) => {
                Box::new(std::fs::File::open(path).map_err(io_err("read", path))?)
            }
            Source::LayerTar {
                diff_id,
                compressed,
            } => layer_tar_reader(store, diff_id, compressed.as_deref())?,
        };
        sink.put(&blob_name(&layer.digest), layer.size, &mut reader, label)?;
    }
    sink.put_bytes(
        &blob_name(&prepared.manifest_digest),
        &prepared.manifest_bytes,
        label,
    )
}

fn finish_sink(sink: Sink, temp_file: PendingFile, label: &Path) -> Result<(), ArchiveError> {
    if let Sink::Tar(out) = sink {
        let mut writer = out.into_inner().map_err(io_err("write", label))?;
        writer.flush().map_err(io_err("write", label))?;
        drop(writer);
    }
    if let Some((temp, path)) = temp_file {
        temp.as_file().sync_all().map_err(io_err("sync", &path))?;
        temp.persist(&path).map_err(|e| ArchiveError::Io {
            action: "write",
            path: path.clone(),
            source: e.error,
        })?;
    }
    Ok(())
}

/// The layer's uncompressed tar as a reader: the original blob decompressed, or the layer dir
/// streamed through a pipe from a writer thread. Either way nothing is held in memory.
/// The blob push sends for a layer: the one it came with (compressed or not), else a gzip
/// blob made now and cached in the store, so a later save or push reuses it.
pub fn gzip_blob(store: &Store, diff_id: &str) -> Result<LayerBlob, ArchiveError> {
    layer_blob(store, diff_id).map(|(blob, _)| blob)
}

/// The blob an export uses for a layer by default (its original blob, else a gzip blob made
/// now and cached in the store), with its path in the store.
pub fn layer_blob(store: &Store, diff_id: &str) -> Result<(LayerBlob, PathBuf), ArchiveError> {
    layer_blob_with(store, diff_id, None)
}

/// The layer's blob in `compression` (made and cached when the store has none; None keeps the
/// blob the layer came with, else gzip).
pub fn layer_blob_with(
    store: &Store,
    diff_id: &str,
    compression: Option<Compression>,
) -> Result<(LayerBlob, PathBuf), ArchiveError> {
    let options = ExportOptions {
        compression,
        ..ExportOptions::default()
    };
    let layer = export_layer(store, diff_id, &options, false, false)?;
    match layer.source {
        Source::Blob(path) => Ok((
            LayerBlob {
                media_type: layer.media_type,
                digest: layer.digest,
                size: layer.size,
            },
            path,
        )),
        Source::LayerTar { .. } => Err(ArchiveError::Invalid {
            path: store.layer_dir(diff_id)?,
            message: "the layer has no blob to export".into(),
        }),
    }
}

pub(crate) fn layer_tar_reader(
    store: &Store,
    diff_id: &str,
    compressed: Option<&Path>,
) -> Result<Box<dyn Read>, ArchiveError> {
    let tar: Box<dyn Read> = match compressed {
        Some(path) => {
            let file = std::fs::File::open(path).map_err(io_err("read", path))?;
            snapshot::decompressing_reader(file).map_err(io_err("decompress", path))?
        }
        None => {
            let layer_dir = store.layer_dir(diff_id)?;
            let (reader, writer) =
                std::io::pipe().map_err(io_err("create pipe for", &layer_dir))?;
            std::thread::spawn(move || {
                let _ = snapshot::write_layer_tar(&layer_dir, writer);
            });
            Box::new(reader)
        }
    };
    Ok(Box::new(Verified {
        inner: Some(DigestReader::new(tar)),
        expected: diff_id.to_string(),
    }))
}

/// Passes a layer tar through and fails at its end unless it hashes to the diff_id the
/// archive announces: a layer dir changed behind the store's back, or a writer that died
/// half-way, must not produce an archive with a silently wrong layer.
struct Verified {
    inner: Option<DigestReader<Box<dyn Read>>>,
    expected: String,
}

impl Read for Verified {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(inner) = self.inner.as_mut() else {
            return Ok(0);
        };
        let n = inner.read(buf)?;
        if n == 0 {
            if let Some(inner) = self.inner.take() {
                let (_, digest) = inner.finish();
                if digest.as_oci() != self.expected {
                    return Err(std::io::Error::other(format!(
                        "layer {} reads back as {}: the store's copy is damaged",
                        self.expected,
                        digest.as_oci()
                    )));
                }
            }
        }
        Ok(n)
    }
}
