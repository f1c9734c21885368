//! `rbuild pull`: manifest (or index -> platform manifest), config, then the missing layers in
//! parallel, each streamed to a partial file (resumed with Range after an interruption),
//! digest-checked, kept as the original blob and applied safely to a layer dir.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use sha2::{Digest as _, Sha256};

use super::client::{Client, RequestBody};
use super::{human_size, io_err, short_digest, Log, RegistryError, RegistrySettings};
use crate::archive;
use crate::image::{ImageConfig, Reference};
use crate::store::{LayerBlob, Store};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Layers downloaded at the same time.
const PARALLEL_LAYERS: usize = 3;
/// Manifests and configs are small; anything bigger is refused rather than buffered.
const MAX_METADATA: u64 = 8 * 1024 * 1024;

pub use crate::image::Platform;

#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Default: the host's.
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone)]
pub struct PulledImage {
    pub image_id: String,
    /// Digest of the image manifest that was pulled (for an index, the platform's entry).
    pub manifest_digest: String,
    pub tags: Vec<String>,
}

/// The digest of the entry of an image index for the platform asked (default: this host's).
fn platform_entry(
    index_bytes: &[u8],
    options: &PullOptions,
    display: &str,
    log: Log,
) -> Result<String, RegistryError> {
    let platform = options.platform.clone().unwrap_or_else(Platform::host);
    let index: serde_json::Value =
        serde_json::from_slice(index_bytes).map_err(|e| RegistryError::Invalid {
            what: format!("index of {display}"),
            message: e.to_string(),
        })?;
    let entries = index["manifests"].as_array().cloned().unwrap_or_default();
    let chosen = entries
        .iter()
        .find(|m| platform.matches(&m["platform"]))
        .ok_or_else(|| RegistryError::NoPlatform {
            reference: display.to_string(),
            platform: platform.to_string(),
            available: entries
                .iter()
                .filter_map(|m| {
                    let p = &m["platform"];
                    let mut s = format!("{}/{}", p["os"].as_str()?, p["architecture"].as_str()?);
                    if let Some(v) = p["variant"].as_str() {
                        s = format!("{s}/{v}");
                    }
                    Some(s)
                })
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let entry_digest = chosen["digest"]
        .as_str()
        .ok_or_else(|| RegistryError::Invalid {
            what: format!("index of {display}"),
            message: "an entry without a digest".to_string(),
        })?
        .to_string();
    crate::store::digest_hex(&entry_digest)?;
    log.line(&format!("platform {platform}: manifest {entry_digest}"));
    Ok(entry_digest)
}

/// An image manifest's config digest and layers, each digest checked for form, foreign
/// layers refused.
fn read_manifest(bytes: &[u8], display: &str) -> Result<(String, Vec<LayerBlob>), RegistryError> {
    let bad_manifest = |message: &str| RegistryError::Invalid {
        what: format!("manifest of {display}"),
        message: message.to_string(),
    };
    let manifest: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| bad_manifest(&e.to_string()))?;
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .ok_or_else(|| bad_manifest("no config digest"))?
        .to_string();
    crate::store::digest_hex(&config_digest)?;
    let mut layers = Vec::new();
    for layer in manifest["layers"].as_array().cloned().unwrap_or_default() {
        let digest = layer["digest"]
            .as_str()
            .ok_or_else(|| bad_manifest("a layer without a digest"))?;
        crate::store::digest_hex(digest)?;
        let media_type = layer["mediaType"]
            .as_str()
            .unwrap_or("application/vnd.oci.image.layer.v1.tar+gzip")
            .to_string();
        if media_type.contains("foreign") || media_type.contains("nondistributable") {
            return Err(RegistryError::Invalid {
                what: format!("layer {digest} of {display}"),
                message: "foreign (non-distributable) layers are not supported".to_string(),
            });
        }
        layers.push(LayerBlob {
            media_type,
            digest: digest.to_string(),
            // The size bounds the download: a registry cannot stream forever.
            size: layer["size"]
                .as_u64()
                .ok_or_else(|| bad_manifest("a layer without a size"))?,
        });
    }
    Ok((config_digest, layers))
}

/// The image config: from the store when it is there, else downloaded and checked against
/// its digest.
fn fetch_config(
    store: &Store,
    client: &Client,
    config_digest: &str,
    display: &str,
) -> Result<Vec<u8>, RegistryError> {
    if store.has_blob(config_digest) {
        return Ok(store.read_blob(config_digest)?);
    }
    let url = client.repo_url(&format!("blobs/{config_digest}"));
    let response = client.expect("GET", &url, &[], &RequestBody::Empty, &[200])?;
    let bytes = read_limited(response, &format!("config of {display}"))?;
    let actual = sha256_of(&bytes);
    if actual != config_digest {
        return Err(RegistryError::DigestMismatch {
            what: format!("config of {display}"),
            expected: config_digest.to_string(),
            actual,
        });
    }
    Ok(bytes)
}

/// The config agrees with the platform asked and with the manifest's layers.
fn check_config(
    config: &ImageConfig,
    layers: &[LayerBlob],
    options: &PullOptions,
    display: &str,
) -> Result<(), RegistryError> {
    if let Some(platform) = &options.platform {
        if config.architecture != platform.architecture {
            return Err(RegistryError::NoPlatform {
                reference: display.to_string(),
                platform: platform.to_string(),
                available: format!("{}/{}", config.os, config.architecture),
            });
        }
    }
    if layers.len() != config.rootfs.diff_ids.len() {
        return Err(RegistryError::Invalid {
            what: format!("manifest of {display}"),
            message: format!(
                "{} layers but the config lists {} diff_ids",
                layers.len(),
                config.rootfs.diff_ids.len()
            ),
        });
    }
    Ok(())
}

fn sha256_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn read_limited(
    response: ureq::http::Response<ureq::Body>,
    what: &str,
) -> Result<Vec<u8>, RegistryError> {
    let mut response = response;
    response
        .body_mut()
        .with_config()
        .limit(MAX_METADATA)
        .read_to_vec()
        .map_err(|e| RegistryError::Invalid {
            what: what.to_string(),
            message: e.to_string(),
        })
}

/// Fetches a manifest by tag or digest: (bytes, media type, digest of the bytes).
pub(crate) fn fetch_manifest(
    client: &Client,
    reference: &str,
    display: &str,
) -> Result<(Vec<u8>, String, String), RegistryError> {
    let accept = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].join(", ");
    let url = client.repo_url(&format!("manifests/{reference}"));
    let response = client.send("GET", &url, &[("accept", accept)], &RequestBody::Empty)?;
    match response.status().as_u16() {
        200 => {}
        404 => {
            return Err(RegistryError::NotFound {
                reference: display.to_string(),
            })
        }
        status => {
            return Err(RegistryError::Status {
                url,
                status,
                message: String::new(),
            })
        }
    }
    let header_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
    let announced = response
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string());
    let bytes = read_limited(response, &format!("manifest of {display}"))?;
    let digest = sha256_of(&bytes);
    // By digest, the bytes must be what was asked for; by tag, what the registry says they
    // are (a manifest swapped on the way would otherwise be taken for the tag's).
    let expected = if reference.starts_with("sha256:") {
        Some(reference.to_string())
    } else {
        announced.filter(|d| d.starts_with("sha256:"))
    };
    if let Some(expected) = expected.filter(|e| *e != digest) {
        return Err(RegistryError::DigestMismatch {
            what: format!("manifest of {display}"),
            expected,
            actual: digest,
        });
    }
    let json: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| RegistryError::Invalid {
            what: format!("manifest of {display}"),
            message: e.to_string(),
        })?;
    let media_type = json["mediaType"]
        .as_str()
        .map(str::to_string)
        .or(header_type)
        .unwrap_or_default();
    Ok((bytes, media_type, digest))
}

/// Pulls `reference` (trying configured mirrors first) into the store and tags it.
pub fn pull(
    store: &Store,
    reference: &Reference,
    options: &PullOptions,
    log: Log,
) -> Result<PulledImage, RegistryError> {
    let settings = RegistrySettings::load()?;
    for (host, repository) in settings.mirrors(&reference.registry, &reference.repository) {
        match pull_from(
            store,
            &settings,
            &host,
            &repository,
            reference,
            options,
            log,
        ) {
            Ok(pulled) => return Ok(pulled),
            Err(error) => log.line(&format!(
                "mirror {host}/{repository} failed ({error}); trying the next"
            )),
        }
    }
    pull_from(
        store,
        &settings,
        &reference.registry,
        &reference.repository,
        reference,
        options,
        log,
    )
}

fn pull_from(
    store: &Store,
    settings: &RegistrySettings,
    registry: &str,
    repository: &str,
    reference: &Reference,
    options: &PullOptions,
    log: Log,
) -> Result<PulledImage, RegistryError> {
    let display = reference.to_string();
    if registry == reference.registry {
        log.line(&format!("pulling {display}"));
    } else {
        log.line(&format!(
            "pulling {display} from mirror {registry}/{repository}"
        ));
    }
    let client = Client::connect(settings, registry, repository, "pull", &[])?;
    let (mut bytes, mut media_type, mut digest) =
        fetch_manifest(&client, reference.manifest_ref(), &display)?;
    if media_type == OCI_INDEX || media_type == DOCKER_LIST {
        let entry_digest = platform_entry(&bytes, options, &display, log)?;
        (bytes, media_type, digest) = fetch_manifest(&client, &entry_digest, &display)?;
    } else if let Some(platform) = &options.platform {
        // A single-platform image is used as it is; the config says what it is.
        log.line(&format!(
            "{display} is a single-platform image; --platform {platform} is checked against its config"
        ));
    }
    if media_type != OCI_MANIFEST && media_type != DOCKER_MANIFEST {
        return Err(RegistryError::Invalid {
            what: format!("manifest of {display}"),
            message: format!(
                "unsupported media type {media_type:?} (docker schema 1 images are not supported)"
            ),
        });
    }
    let (config_digest, layers) = read_manifest(&bytes, &display)?;
    let config_bytes = fetch_config(store, &client, &config_digest, &display)?;
    let config: ImageConfig =
        serde_json::from_slice(&config_bytes).map_err(|e| RegistryError::Invalid {
            what: format!("config of {display}"),
            message: e.to_string(),
        })?;
    check_config(&config, &layers, options, &display)?;
    let source = format!("{registry}/{repository}");
    fetch_layers(
        store,
        &client,
        &layers,
        &config.rootfs.diff_ids,
        &source,
        log,
    )?;

    let mut tags = Vec::new();
    if let Some(key) = reference.tag_key() {
        tags.push(key);
    }
    if let Some(key) = reference.digest_key() {
        tags.push(key);
    }
    tags.push(format!("{}@{digest}", reference.familiar_name()));
    tags.dedup();
    let blob_paths = layers
        .iter()
        .map(|l| Ok((store.blob_path(&l.digest)?, Some(l.clone()))))
        .collect::<Result<Vec<_>, RegistryError>>()?;
    // The tag's images of other platforms, kept beside the one pulled now.
    let tag_key = reference.tag_key();
    let before = match &tag_key {
        Some(key) => tagged_images(store, key)?,
        None => Vec::new(),
    };
    let imported = archive::import_image(
        store,
        &config_bytes,
        blob_paths,
        tags.clone(),
        Path::new(&display),
    )?;
    if let Some(key) = &tag_key {
        keep_other_platforms(store, key, &before, &imported.image_id, &config)?;
    }
    log.line(&format!("pulled {display}: {digest}"));
    Ok(PulledImage {
        image_id: imported.image_id,
        manifest_digest: digest,
        tags,
    })
}

/// The images `tag` names in the store: its platform list, or its one image.
fn tagged_images(store: &Store, tag: &str) -> Result<Vec<String>, RegistryError> {
    if let Some(list) = store.platform_list(tag)? {
        return Ok(list);
    }
    Ok(store.tags()?.get(tag).cloned().into_iter().collect())
}

/// A tag keeps one image per platform (as podman's store does): after a pull of one
/// platform, the tag's images of other platforms stay listed under it, and the tag itself
/// names the host's image when it has one. Without this, a tag pulled for arm64 would stand
/// for amd64 too, and a build for amd64 would start from the arm64 image.
fn keep_other_platforms(
    store: &Store,
    tag: &str,
    before: &[String],
    pulled: &str,
    config: &ImageConfig,
) -> Result<(), RegistryError> {
    let pulled_platform = Platform::of_config(config);
    let platform_of = |id: &str| -> Option<Platform> {
        let bytes = store.read_blob(id).ok()?;
        let config: ImageConfig = serde_json::from_slice(&bytes).ok()?;
        Some(Platform::of_config(&config))
    };
    let mut images: Vec<(String, Platform)> = before
        .iter()
        .filter(|id| id.as_str() != pulled)
        .filter_map(|id| Some((id.clone(), platform_of(id)?)))
        .filter(|(_, platform)| *platform != pulled_platform)
        .collect();
    if images.is_empty() {
        return Ok(());
    }
    images.push((pulled.to_string(), pulled_platform));
    let host = Platform::host();
    let default = images
        .iter()
        .find(|(_, platform)| platform.os == host.os && platform.architecture == host.architecture)
        .map_or(pulled, |(id, _)| id.as_str())
        .to_string();
    let ids: Vec<String> = images.into_iter().map(|(id, _)| id).collect();
    store.add_platform_list(&ids, &default, &[tag.to_string()])?;
    Ok(())
}

/// Downloads and applies the layers not yet in the store, `PARALLEL_LAYERS` at a time.
fn fetch_layers(
    store: &Store,
    client: &Client,
    layers: &[LayerBlob],
    diff_ids: &[String],
    source: &str,
    log: Log,
) -> Result<(), RegistryError> {
    let next = AtomicUsize::new(0);
    let first_error: Mutex<Option<RegistryError>> = Mutex::new(None);
    let failed = || first_error.lock().map(|e| e.is_some()).unwrap_or(true);
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL_LAYERS.min(layers.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= layers.len() || failed() {
                    break;
                }
                let result = fetch_layer(store, client, &layers[i], &diff_ids[i], source, log);
                if let Err(error) = result {
                    if let Ok(mut slot) = first_error.lock() {
                        slot.get_or_insert(error);
                    }
                    break;
                }
            });
        }
    });
    match first_error.into_inner() {
        Ok(Some(error)) => Err(error),
        _ => Ok(()),
    }
}

fn fetch_layer(
    store: &Store,
    client: &Client,
    blob: &LayerBlob,
    diff_id: &str,
    source: &str,
    log: Log,
) -> Result<(), RegistryError> {
    let short = short_digest(&blob.digest);
    store.add_blob_source(&blob.digest, source);
    if store.has_layer(diff_id) {
        log.line(&format!("{short}: already present"));
        return Ok(());
    }
    let path = if store.has_blob(&blob.digest) {
        log.line(&format!("{short}: blob already present"));
        store.blob_path(&blob.digest)?
    } else {
        download_blob(store, client, blob, log)?
    };
    let notice = archive::import_layer(
        store,
        &path,
        Some(blob.clone()),
        diff_id,
        Path::new(&blob.digest),
    )?;
    match notice {
        Some(notice) => log.line(&format!("{short}: applied; {notice}")),
        None => log.line(&format!("{short}: applied")),
    }
    Ok(())
}

/// A blob being downloaded: `tmp/pull-HEX.partial` (locked, so two rbuilds never write it
/// at once), what it holds so far and the hash of that.
struct PartialBlob {
    file: std::fs::File,
    path: PathBuf,
    hasher: Sha256,
    have: u64,
}

impl PartialBlob {
    /// Opens the partial file and hashes what an earlier run already wrote; None when another
    /// rbuild finished the blob meanwhile.
    fn open(store: &Store, blob: &LayerBlob) -> Result<Option<PartialBlob>, RegistryError> {
        let hex = crate::store::digest_hex(&blob.digest)?;
        let path = store.root().join("tmp").join(format!("pull-{hex}.partial"));
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err("create", &path))?;
        // Another rbuild pulling the same blob: wait for it, then use its result.
        file.lock().map_err(io_err("lock", &path))?;
        if store.blob_path(&blob.digest)?.exists() {
            // Another rbuild finished it; whoever opens this name now finds the blob too.
            let _ = std::fs::remove_file(&path);
            return Ok(None);
        }
        let mut hasher = Sha256::new();
        let mut have = file.metadata().map_err(io_err("stat", &path))?.len();
        if have > blob.size {
            have = 0;
        }
        if have > 0 {
            file.rewind().map_err(io_err("read", &path))?;
            let mut reader = (&file).take(have);
            have = std::io::copy(&mut reader, &mut HashWriter(&mut hasher))
                .map_err(io_err("read", &path))?;
        }
        file.set_len(have).map_err(io_err("truncate", &path))?;
        Ok(Some(PartialBlob {
            file,
            path,
            hasher,
            have,
        }))
    }

    /// Drops what was written: the registry will send the blob from its start.
    fn restart(&mut self) -> Result<(), RegistryError> {
        self.have = 0;
        self.hasher = Sha256::new();
        self.file.set_len(0).map_err(io_err("truncate", &self.path))
    }

    /// Appends the response body; an Err is a broken transfer (worth a retry).
    fn receive(
        &mut self,
        body: &mut dyn Read,
        blob: &LayerBlob,
        short: &str,
        log: Log,
    ) -> Result<std::io::Result<()>, RegistryError> {
        self.file
            .seek(std::io::SeekFrom::Start(self.have))
            .map_err(io_err("write", &self.path))?;
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            let n = match body.read(&mut buffer) {
                Ok(0) => return Ok(Ok(())),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Ok(Err(e)),
            };
            self.file
                .write_all(&buffer[..n])
                .map_err(io_err("write", &self.path))?;
            self.hasher.update(&buffer[..n]);
            self.have += n as u64;
            log.transfer(short, self.have, blob.size);
            if self.have > blob.size {
                return Ok(Err(std::io::Error::other(
                    "the registry sent more than the blob's size",
                )));
            }
        }
    }

    /// Checks the digest and renames the file into the store.
    fn finish(self, store: &Store, blob: &LayerBlob) -> Result<PathBuf, RegistryError> {
        let actual = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        if actual != blob.digest {
            let _ = std::fs::remove_file(&self.path);
            return Err(RegistryError::DigestMismatch {
                what: format!("blob {}", blob.digest),
                expected: blob.digest.clone(),
                actual,
            });
        }
        self.file.sync_all().map_err(io_err("sync", &self.path))?;
        let final_path = store.blob_path(&blob.digest)?;
        std::fs::rename(&self.path, &final_path).map_err(io_err("store blob", &final_path))?;
        Ok(final_path)
    }
}

/// Streams a blob into the store: into `tmp/pull-HEX.partial` first (kept across runs, so an
/// interrupted download resumes with a Range request), then renamed once its digest checks.
pub(crate) fn download_blob(
    store: &Store,
    client: &Client,
    blob: &LayerBlob,
    log: Log,
) -> Result<PathBuf, RegistryError> {
    let short = short_digest(&blob.digest);
    let Some(mut partial) = PartialBlob::open(store, blob)? else {
        return Ok(store.blob_path(&blob.digest)?);
    };
    let url = client.repo_url(&format!("blobs/{}", blob.digest));
    let started = std::time::Instant::now();
    let resumed_at = partial.have;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut headers = Vec::new();
        if partial.have > 0 {
            headers.push(("range", format!("bytes={}-", partial.have)));
            log.line(&format!(
                "{short}: resuming at {}",
                human_size(partial.have)
            ));
        }
        let response = client.send("GET", &url, &headers, &RequestBody::Empty)?;
        match response.status().as_u16() {
            206 => {}
            // The registry ignored the range (or it is stale): start over.
            200 => partial.restart()?,
            416 => {
                partial.restart()?;
                continue;
            }
            status => {
                return Err(RegistryError::Status {
                    url,
                    status,
                    message: String::new(),
                })
            }
        }
        let mut body = response.into_body().into_reader();
        match partial.receive(&mut body, blob, short, log)? {
            Ok(()) if partial.have == blob.size => break,
            Ok(()) | Err(_) if attempt < 5 => {
                log.line(&format!(
                    "{short}: download interrupted at {}; retrying",
                    human_size(partial.have)
                ));
                std::thread::sleep(std::time::Duration::from_millis(500 << attempt));
            }
            Ok(()) => {
                return Err(RegistryError::Invalid {
                    what: format!("blob {}", blob.digest),
                    message: format!("the registry sent {} of {} bytes", partial.have, blob.size),
                })
            }
            Err(e) => {
                return Err(RegistryError::Io {
                    action: "download",
                    path: PathBuf::from(&url),
                    source: e,
                })
            }
        }
    }
    let have = partial.have;
    let final_path = partial.finish(store, blob)?;
    let secs = started.elapsed().as_secs_f64().max(0.001);
    log.line(&format!(
        "{short}: downloaded {} in {secs:.1}s ({}/s)",
        human_size(have),
        human_size((have.saturating_sub(resumed_at) as f64 / secs) as u64)
    ));
    Ok(final_path)
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_and_match_index_entries() {
        let arm = Platform::parse("linux/arm64").unwrap();
        assert!(arm.matches(
            &serde_json::json!({"os": "linux", "architecture": "arm64", "variant": "v8"})
        ));
        assert!(!arm.matches(&serde_json::json!({"os": "linux", "architecture": "amd64"})));
        let v7 = Platform::parse("linux/arm/v7").unwrap();
        assert!(
            v7.matches(&serde_json::json!({"os": "linux", "architecture": "arm", "variant": "v7"}))
        );
        assert!(!v7
            .matches(&serde_json::json!({"os": "linux", "architecture": "arm", "variant": "v6"})));
        let v8 = Platform::parse("linux/arm64/v8").unwrap();
        assert!(v8.matches(&serde_json::json!({"os": "linux", "architecture": "arm64"})));
        assert_eq!(
            Platform::parse("x86_64").unwrap().to_string(),
            "linux/amd64"
        );
        assert!(Platform::parse("linux//v7").is_err());
        assert!(Platform::parse("a/b/c/d").is_err());
    }
}
