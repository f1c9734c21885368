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
    let diff_ids = &config.rootfs.diff_ids;
    // Layers with a blob already go as they are; the others are compressed while they upload.
    let existing = existing_blobs(store, diff_ids, options.compression)?;
    let sources = BlobSources::of(store, dest);
    let known: Vec<LayerBlob> = existing.iter().flatten().cloned().collect();
    let extra_pull = sources.repositories(&known);
    let client = Client::connect(
        &RegistrySettings::load()?,
        &dest.registry,
        &dest.repository,
        "pull,push",
        &extra_pull,
    )?;
    let missing: Vec<&String> = {
        let mut missing: Vec<&String> = diff_ids
            .iter()
            .zip(&existing)
            .filter(|(_, blob)| blob.is_none())
            .map(|(d, _)| d)
            .collect();
        missing.sort();
        missing.dedup();
        missing
    };
    let streamed = archive::each_layer(&missing, store.root(), |&d| {
        Ok(stream_layer(store, &client, d, options.compression, log))
    })?
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?;
    let blobs: Vec<LayerBlob> = diff_ids
        .iter()
        .zip(&existing)
        .filter_map(|(d, blob)| match blob {
            Some(blob) => Some(blob.clone()),
            None => {
                let at = missing.binary_search(&d).ok()?;
                streamed.get(at).map(|(blob, _)| blob.clone())
            }
        })
        .collect();
    let already_sent: std::collections::HashSet<&str> = streamed
        .iter()
        .filter(|(_, sent)| *sent)
        .map(|(blob, _)| blob.digest.as_str())
        .collect();
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
        if already_sent.contains(blob.digest.as_str()) {
            uploaded += 1;
            store.add_blob_source(&blob.digest, &sources.dest);
            continue;
        }
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

/// The blob each layer already has in `compression` (None where it needs making).
fn existing_blobs(
    store: &Store,
    diff_ids: &[String],
    compression: Option<archive::Compression>,
) -> Result<Vec<Option<LayerBlob>>, RegistryError> {
    Ok(diff_ids
        .iter()
        .map(|d| archive::existing_layer_blob(store, d, compression))
        .collect::<Result<_, _>>()?)
}

/// Compresses a layer that has no blob yet into the store while its bytes upload (one
/// streamed PATCH, then the PUT that names the digest), so the push takes about as long as
/// the compression rather than the compression and then the upload. Returns the blob and
/// whether it was uploaded here; when streaming fails (a registry refusing a chunked upload,
/// a dropped connection), the blob is made (or kept, if it was finished) and left to the
/// ordinary upload.
fn stream_layer(
    store: &Store,
    client: &Client,
    diff_id: &str,
    compression: Option<archive::Compression>,
    log: Log,
) -> Result<(LayerBlob, bool), RegistryError> {
    let short = short_digest(diff_id);
    match try_stream_layer(store, client, diff_id, compression, log) {
        Ok(blob) => Ok((blob, true)),
        Err(e) => {
            log.line(&format!(
                "layer {short}: streamed upload failed ({}); uploading the blob instead",
                crate::error_chain(&e)
            ));
            let blob = match compression {
                None => archive::gzip_blob(store, diff_id)?,
                Some(c) => archive::layer_blob_with(store, diff_id, Some(c))?.0,
            };
            Ok((blob, false))
        }
    }
}

fn try_stream_layer(
    store: &Store,
    client: &Client,
    diff_id: &str,
    compression: Option<archive::Compression>,
    log: Log,
) -> Result<LayerBlob, RegistryError> {
    let started = client.expect(
        "POST",
        &client.repo_url("blobs/uploads/"),
        &[("content-length", "0".to_string())],
        &RequestBody::Empty,
        &[202],
    )?;
    let location = |response: &ureq::http::Response<ureq::Body>, what: &str| {
        response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(|l| client.absolute(l))
            .ok_or_else(|| RegistryError::Invalid {
                what: format!("upload of layer {diff_id}"),
                message: format!("the registry gave no location {what}"),
            })
    };
    let upload_url = location(&started, "to upload to")?;
    let timer = std::time::Instant::now();
    let (reader, mut writer) = std::io::pipe().map_err(|e| RegistryError::Invalid {
        what: format!("upload of layer {diff_id}"),
        message: format!("cannot make a pipe: {e}"),
    })?;
    let name = short_digest(diff_id);
    let mut reader = Sent {
        inner: reader,
        done: 0,
        // The compressed size is known only at the end: the tar's size stands for it.
        estimate: store.layer_info(diff_id)?.tar_size,
        name: &name,
        log,
    };
    let (made, sent) = std::thread::scope(|scope| {
        let maker = scope.spawn(move || {
            // The writer is dropped when the blob is made (or fails): the upload's end.
            archive::make_layer_blob_into(store, diff_id, compression, &mut writer)
        });
        let body = RequestBody::Stream(std::cell::RefCell::new(&mut reader));
        let sent = client.expect("PATCH", &upload_url, &[], &body, &[202]);
        drop(body);
        // Unblock the maker if the upload stopped reading early.
        drop(reader);
        let made = maker.join().unwrap_or_else(|_| {
            Err(archive::ArchiveError::Invalid {
                path: store.root().to_path_buf(),
                message: "layer compression panicked".into(),
            })
        });
        (made, sent)
    });
    let blob = made?;
    let patched = sent?;
    log.transfer(&name, blob.size, blob.size);
    let mut finish_url = location(&patched, "to finish the upload at")?;
    finish_url.push(if finish_url.contains('?') { '&' } else { '?' });
    finish_url.push_str(&format!("digest={}", blob.digest));
    client.expect(
        "PUT",
        &finish_url,
        &[("content-length", "0".to_string())],
        &RequestBody::Empty,
        &[201, 204],
    )?;
    let secs = timer.elapsed().as_secs_f64().max(0.001);
    log.line(&format!(
        "layer {}: compressed and uploaded {} in {secs:.1}s ({}/s)",
        short_digest(&blob.digest),
        human_size(blob.size),
        human_size((blob.size as f64 / secs) as u64)
    ));
    Ok(blob)
}

/// Counts the bytes of a streamed upload for the progress display.
struct Sent<'a, R> {
    inner: R,
    done: u64,
    estimate: u64,
    name: &'a str,
    log: Log<'a>,
}

impl<R: std::io::Read> std::io::Read for Sent<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        // Kept below the total so the line stays until the real size is reported.
        let total = self.estimate.max(self.done + 1);
        self.log.transfer(self.name, self.done, total);
        Ok(n)
    }
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
