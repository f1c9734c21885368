//! `rbuild push`: gzip blobs for the layers (the original blob when the layer came with one,
//! else made once and cached), then per blob: HEAD (skip when present), cross-repository
//! mount when the blob is known to live in another repository of the same registry, else a
//! monolithic upload streamed from the file; the manifest goes last.

use oci_spec::image::MediaType;

use super::client::{Client, RequestBody};
use super::pull::{OCI_INDEX, OCI_MANIFEST};
use super::{human_size, short_digest, Log, RegistryError, RegistrySettings};
use crate::archive;
use crate::image::manifest::{descriptor, image_index, image_manifest, to_bytes};
use crate::image::{ImageConfig, Reference};
use crate::store::{LayerBlob, Store};

#[derive(Debug, Clone)]
pub struct PushedImage {
    pub manifest_digest: String,
    pub manifest_size: u64,
    /// Blobs actually uploaded (not skipped or mounted).
    pub uploaded: usize,
}

/// The OCI media type of a layer blob (docker's names carry the same bytes).
fn oci_layer_type(media_type: &str) -> &'static str {
    if media_type.ends_with("gzip") {
        "application/vnd.oci.image.layer.v1.tar+gzip"
    } else if media_type.ends_with("zstd") {
        "application/vnd.oci.image.layer.v1.tar+zstd"
    } else {
        "application/vnd.oci.image.layer.v1.tar"
    }
}

/// How an image is pushed: its layers' compression (made and cached when needed; gzip by
/// default) and the annotations of its manifest (a build's, from
/// `archive::manifest_annotations`, so the pushed manifest is the one its outputs describe).
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    pub compression: Option<archive::Compression>,
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// Pushes `image_id` from the store to `dest` (which must carry a tag).
pub fn push(
    store: &Store,
    image_id: &str,
    dest: &Reference,
    log: Log,
) -> Result<PushedImage, RegistryError> {
    push_with(store, image_id, dest, &PushOptions::default(), log)
}

/// `push` with `options`.
pub fn push_with(
    store: &Store,
    image_id: &str,
    dest: &Reference,
    options: &PushOptions,
    log: Log,
) -> Result<PushedImage, RegistryError> {
    push_image(store, image_id, dest, options, ManifestAt::Tag, log)
}

/// Where an image's manifest goes: under the tag, or (for an index's entries) its digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ManifestAt {
    Tag,
    Digest,
}

/// How an image index is pushed: each image's options (in the order of the images; missing
/// ones are the default) and the annotations of the index and of its entries, so that the
/// pushed index is the one `archive::save_platforms` writes with the same options.
#[derive(Debug, Clone, Default)]
pub struct IndexPushOptions {
    pub images: Vec<PushOptions>,
    pub descriptor_annotations: std::collections::BTreeMap<String, String>,
    /// By platform (`linux/arm64`): annotations of that platform's entry only.
    pub platform_descriptor_annotations:
        std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    pub index_annotations: std::collections::BTreeMap<String, String>,
}

/// Pushes the images of a multi-platform tag (their manifests by digest), then an OCI image
/// index over them under `dest`'s tag; each entry carries the platform of its config.
pub fn push_index(
    store: &Store,
    image_ids: &[String],
    dest: &Reference,
    options: &IndexPushOptions,
    log: Log,
) -> Result<PushedImage, RegistryError> {
    let tag = dest.tag.clone().unwrap_or_else(|| "latest".to_string());
    let display = dest.with_tag(&tag).to_string();
    let mut uploaded = 0;
    let mut manifests = Vec::with_capacity(image_ids.len());
    for (position, image_id) in image_ids.iter().enumerate() {
        let image_options = options.images.get(position).cloned().unwrap_or_default();
        let pushed = push_image(
            store,
            image_id,
            dest,
            &image_options,
            ManifestAt::Digest,
            log,
        )?;
        uploaded += pushed.uploaded;
        let config: ImageConfig =
            serde_json::from_slice(&store.read_blob(image_id)?).map_err(|e| {
                RegistryError::Invalid {
                    what: format!("config of {image_id}"),
                    message: e.to_string(),
                }
            })?;
        let platform = config.oci_platform().map_err(|e| RegistryError::Invalid {
            what: format!("platform of {image_id}"),
            message: e.to_string(),
        })?;
        let mut desc = descriptor(
            MediaType::ImageManifest,
            &pushed.manifest_digest,
            pushed.manifest_size,
        )?;
        desc.set_platform(Some(platform));
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
    let mut index = image_index(manifests)?;
    if !options.index_annotations.is_empty() {
        index.set_annotations(Some(
            options.index_annotations.clone().into_iter().collect(),
        ));
    }
    let index_bytes = to_bytes("index", &index)?;
    let index_digest = sha256_digest(&index_bytes);
    let client = Client::connect(
        &RegistrySettings::load()?,
        &dest.registry,
        &dest.repository,
        "pull,push",
        &[],
    )?;
    client.put_manifest(&tag, &index_bytes, OCI_INDEX)?;
    log.line(&format!(
        "pushed {display}: {index_digest} (an index of {} platforms)",
        image_ids.len()
    ));
    Ok(PushedImage {
        manifest_digest: index_digest,
        manifest_size: index_bytes.len() as u64,
        uploaded,
    })
}

fn sha256_digest(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
    )
}

fn push_image(
    store: &Store,
    image_id: &str,
    dest: &Reference,
    options: &PushOptions,
    at: ManifestAt,
    log: Log,
) -> Result<PushedImage, RegistryError> {
    let tag = dest.tag.clone().unwrap_or_else(|| "latest".to_string());
    let display = match at {
        ManifestAt::Tag => dest.with_tag(&tag).to_string(),
        ManifestAt::Digest => format!("{} ({image_id})", dest.with_tag(&tag)),
    };
    log.line(&format!("pushing {display}"));
    let config_bytes = store.read_blob(image_id)?;
    let config: ImageConfig =
        serde_json::from_slice(&config_bytes).map_err(|e| RegistryError::Invalid {
            what: format!("config of {image_id}"),
            message: e.to_string(),
        })?;
    let blobs = layer_blobs(store, &config.rootfs.diff_ids, options.compression)?;
    let sources = BlobSources::of(store, dest);
    let extra_pull = sources.repositories(&blobs);
    let client = Client::connect(
        &RegistrySettings::load()?,
        &dest.registry,
        &dest.repository,
        "pull,push",
        &extra_pull,
    )?;
    let config_blob = LayerBlob {
        media_type: "config".into(),
        digest: image_id.to_string(),
        size: config_bytes.len() as u64,
    };
    let mut uploaded = 0;
    for blob in blobs.iter().chain(std::iter::once(&config_blob)) {
        let kind = if blob.digest == image_id {
            "config"
        } else {
            "layer"
        };
        let path = store.blob_path(&blob.digest)?;
        let mount = sources.mount_from(&blob.digest);
        if push_blob(&client, &blob.digest, blob.size, &path, mount, kind, log)? {
            uploaded += 1;
        }
        store.add_blob_source(&blob.digest, &sources.dest);
    }
    let manifest_bytes = manifest_bytes(image_id, config_bytes.len() as u64, &blobs, options)?;
    let manifest_digest = sha256_digest(&manifest_bytes);
    let reference = match at {
        ManifestAt::Tag => &tag,
        ManifestAt::Digest => &manifest_digest,
    };
    client.put_manifest(reference, &manifest_bytes, OCI_MANIFEST)?;
    log.line(&format!("pushed {display}: {manifest_digest}"));
    Ok(PushedImage {
        manifest_digest,
        manifest_size: manifest_bytes.len() as u64,
        uploaded,
    })
}

/// The compressed blob of each layer (gzip unless asked otherwise; a layer keeps the blob it
/// came with), made in parallel.
fn layer_blobs(
    store: &Store,
    diff_ids: &[String],
    compression: Option<archive::Compression>,
) -> Result<Vec<LayerBlob>, RegistryError> {
    // A layer that appears twice (two identical steps) is compressed once.
    let mut unique: Vec<&String> = diff_ids.iter().collect();
    unique.sort();
    unique.dedup();
    let made = archive::each_layer(&unique, store.root(), |&d| match compression {
        None => archive::gzip_blob(store, d),
        Some(c) => archive::layer_blob_with(store, d, Some(c)).map(|(blob, _)| blob),
    })?;
    Ok(diff_ids
        .iter()
        .filter_map(|d| made.get(unique.binary_search(&d).ok()?).cloned())
        .collect())
}

/// Where the store knows a blob to live already: another repository of the destination's
/// registry can lend it by a cross-repository mount.
struct BlobSources<'s> {
    store: &'s Store,
    /// `registry/repository` of the destination.
    dest: String,
    registry_prefix: String,
}

impl<'s> BlobSources<'s> {
    fn of(store: &'s Store, dest: &Reference) -> BlobSources<'s> {
        BlobSources {
            store,
            dest: format!("{}/{}", dest.registry, dest.repository),
            registry_prefix: format!("{}/", dest.registry),
        }
    }

    /// The repository of the same registry to mount `digest` from, if any.
    fn mount_from(&self, digest: &str) -> Option<String> {
        self.store
            .blob_sources(digest)
            .into_iter()
            .filter(|s| *s != self.dest)
            .find_map(|s| s.strip_prefix(&self.registry_prefix).map(str::to_string))
    }

    /// The repositories to ask pull access to up front, for the mounts.
    fn repositories(&self, blobs: &[LayerBlob]) -> Vec<String> {
        let mut repositories: Vec<String> = blobs
            .iter()
            .filter_map(|b| self.mount_from(&b.digest))
            .collect();
        repositories.sort();
        repositories.dedup();
        repositories
    }
}

/// The OCI manifest of a pushed image: its config, its layers' blobs, its annotations.
fn manifest_bytes(
    config_digest: &str,
    config_size: u64,
    blobs: &[LayerBlob],
    options: &PushOptions,
) -> Result<Vec<u8>, RegistryError> {
    let config_desc = descriptor(MediaType::ImageConfig, config_digest, config_size)?;
    let layer_descs = blobs
        .iter()
        .map(|b| {
            descriptor(
                MediaType::from(oci_layer_type(&b.media_type)),
                &b.digest,
                b.size,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut manifest = image_manifest(config_desc, layer_descs)?;
    if !options.annotations.is_empty() {
        manifest.set_annotations(Some(options.annotations.clone().into_iter().collect()));
    }
    Ok(to_bytes("manifest", &manifest)?)
}

/// Puts one blob in the registry unless it is there; returns whether bytes were uploaded.
pub(crate) fn push_blob(
    client: &Client,
    digest: &str,
    size: u64,
    path: &std::path::Path,
    mount_from: Option<String>,
    kind: &str,
    log: Log,
) -> Result<bool, RegistryError> {
    let short = short_digest(digest);
    let head_url = client.repo_url(&format!("blobs/{digest}"));
    let head = client.send("HEAD", &head_url, &[], &RequestBody::Empty)?;
    if head.status().as_u16() == 200 {
        log.line(&format!("{kind} {short}: already in the registry"));
        return Ok(false);
    }
    let mut start_url = client.repo_url("blobs/uploads/");
    if let Some(source) = &mount_from {
        start_url = format!("{start_url}?mount={digest}&from={source}");
    }
    let started = client.expect(
        "POST",
        &start_url,
        &[("content-length", "0".to_string())],
        &RequestBody::Empty,
        &[201, 202],
    )?;
    if started.status().as_u16() == 201 {
        log.line(&format!(
            "{kind} {short}: mounted from {}",
            mount_from.unwrap_or_default()
        ));
        return Ok(false);
    }
    let location = started
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| RegistryError::Invalid {
            what: format!("upload of {digest}"),
            message: "the registry gave no upload location".to_string(),
        })?;
    let mut upload_url = client.absolute(location);
    upload_url.push(if upload_url.contains('?') { '&' } else { '?' });
    upload_url.push_str(&format!("digest={digest}"));
    let timer = std::time::Instant::now();
    client.expect(
        "PUT",
        &upload_url,
        &[],
        &RequestBody::File(path, size, Some((short, log))),
        &[201, 204],
    )?;
    let secs = timer.elapsed().as_secs_f64().max(0.001);
    log.line(&format!(
        "{kind} {short}: uploaded {} in {secs:.1}s ({}/s)",
        human_size(size),
        human_size((size as f64 / secs) as u64)
    ));
    Ok(true)
}
