//! Puts an image into the store from blobs on disk (an unpacked archive, or blobs a pull has
//! just downloaded): each layer is applied safely to a fresh layer dir while both its blob
//! digest and its diff_id are checked, and keeps its original blob.

// Paths here are store temp dirs and blob files whose content is verified against their digests: the boundary rule (clippy.toml) does not apply.
#![allow(clippy::disallowed_methods)]

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{io_err, ArchiveError};
use crate::image::ImageConfig;
use crate::snapshot::{self, DigestReader};
use crate::store::{LayerBlob, LayerInfo, Store};

#[derive(Debug, Clone)]
pub struct LoadedImage {
    pub image_id: String,
    pub tags: Vec<String>,
    /// In an OCI layout: the `org.opencontainers.image.ref.name` of its index entry (as
    /// written, e.g. `1` or `app:1`) and that entry's digest.
    pub ref_name: Option<String>,
    pub descriptor_digest: Option<String>,
    /// What applying its layers neutralised or left out (overlay xattrs, device nodes), one
    /// line per layer concerned.
    pub notices: Vec<String>,
}

pub(crate) fn invalid(path: &Path, message: impl Into<String>) -> ArchiveError {
    ArchiveError::Invalid {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Stores the config, applies each layer not already present, and records the image.
/// `layers` are (blob file, its descriptor when known), in the config's diff_id order.
pub fn import_image(
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
    let mut notices = Vec::new();
    for ((blob_path, blob), diff_id) in layers.into_iter().zip(&config.rootfs.diff_ids) {
        if store.has_layer(diff_id) {
            continue;
        }
        if let Some(notice) = import_layer(store, &blob_path, blob, diff_id, origin)? {
            notices.push(format!("layer {diff_id}: {notice}"));
        }
    }
    let image_id = store.put_blob(config_bytes)?;
    store.add_image(&image_id, &tags)?;
    Ok(LoadedImage {
        image_id,
        tags,
        notices,
        ref_name: None,
        descriptor_digest: None,
    })
}

/// Applies the layer blob at `blob_path` (gzip or plain tar) as the layer `diff_id`, checking
/// both digests on the way; the blob is copied into the store unless it is already there.
/// Applies one layer blob (verified against `blob.digest` and `diff_id`) into the store.
pub fn import_layer_blob(
    store: &Store,
    blob_path: &Path,
    blob: LayerBlob,
    diff_id: &str,
) -> Result<Option<String>, ArchiveError> {
    if store.has_layer(diff_id) {
        return Ok(None);
    }
    import_layer(store, blob_path, Some(blob), diff_id, blob_path)
}

pub fn import_layer(
    store: &Store,
    blob_path: &Path,
    blob: Option<LayerBlob>,
    diff_id: &str,
    origin: &Path,
) -> Result<Option<String>, ArchiveError> {
    let file = std::fs::File::open(blob_path).map_err(io_err("read layer", blob_path))?;
    let compressed = DigestReader::new(file);
    let temp = store.temp_dir("layer")?;
    let layer_dir = temp.path().join("diff");
    std::fs::create_dir(&layer_dir).map_err(io_err("create", &layer_dir))?;
    // Hash the compressed bytes (the blob digest) and the tar (the diff_id) in one pass.
    let (blob_digest_rx, tar_digest, report) = {
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
        let report = snapshot::apply_layer_tar(&mut tar_stream, &layer_dir)?;
        // Drain what the tar reader left (padding) so both digests cover the whole stream.
        std::io::copy(&mut tar_stream, &mut std::io::sink())
            .map_err(io_err("read layer", blob_path))?;
        let (_, tar_digest) = tar_stream.finish();
        (receiver, tar_digest, report)
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
    Ok(snapshot::report_notice(&report))
}
