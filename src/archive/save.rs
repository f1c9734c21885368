//! Writes an image of the store as an OCI archive (gzip layers, as `docker buildx
//! --output type=oci` does) or a Docker archive (`docker save` >= 25: an OCI layout with
//! uncompressed layers plus manifest.json, which `docker load` and `podman load` read).

use std::io::{Read, Write};
use std::path::Path;

use oci_spec::image::MediaType;

use super::{io_err, ArchiveError};
use crate::image::manifest::{descriptor, image_manifest, tagged_index, to_bytes};
use crate::image::ImageConfig;
use crate::snapshot::{self, DigestReader, DigestWriter};
use crate::store::{LayerBlob, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    Oci,
    Docker,
}

const GZIP_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const TAR_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// A compressed blob for the layer: the one it came with, else one made now (and cached in
/// the store, so a later save or push reuses it). Shared by `save` and registry push.
pub fn gzip_blob(store: &Store, diff_id: &str) -> Result<LayerBlob, ArchiveError> {
    let mut info = store.layer_info(diff_id)?;
    // The blob a layer came with is used as it is, compressed or not.
    let present = |b: &&LayerBlob| store.has_blob(&b.digest);
    let gzip = info
        .blobs
        .iter()
        .filter(present)
        .find(|b| b.media_type.ends_with("gzip"));
    if let Some(blob) = gzip.or_else(|| info.blobs.iter().find(present)) {
        return Ok(blob.clone());
    }
    let temp = store.blob_temp_file()?;
    let (file, temp_path) = temp.into_parts();
    let counted = DigestWriter::new(file);
    let encoder = flate2::write::GzEncoder::new(counted, flate2::Compression::new(6));
    // Hash the tar on its way into the compressor: it must still be the layer's diff_id.
    let tar = snapshot::write_layer_tar(&store.layer_dir(diff_id)?, DigestWriter::new(encoder))?;
    let (encoder, tar_digest) = tar.finish();
    if tar_digest.as_oci() != diff_id {
        return Err(ArchiveError::Invalid {
            path: store.layer_dir(diff_id)?,
            message: format!(
                "layer reads back as {}, not {diff_id}: the store's copy is damaged",
                tar_digest.as_oci()
            ),
        });
    }
    let counted = encoder
        .finish()
        .map_err(io_err("compress layer", Path::new(diff_id)))?;
    let (_file, digest) = counted.finish();
    let blob = LayerBlob {
        media_type: GZIP_LAYER.to_string(),
        digest: digest.as_oci(),
        size: digest.size,
    };
    store.adopt_blob(temp_path, &blob.digest)?;
    info.blobs.push(blob.clone());
    store.set_layer_info(&info)?;
    Ok(blob)
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

fn append_bytes<W: Write>(
    out: &mut tar::Builder<W>,
    name: &str,
    bytes: &[u8],
    dest: &Path,
) -> Result<(), ArchiveError> {
    let mut header = member_header(bytes.len() as u64);
    out.append_data(&mut header, name, bytes)
        .map_err(io_err("write", dest))
}

fn blob_name(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

/// Writes `image_id` to `dest` in `format`, naming it with `tags` (`name:tag`).
pub fn save(
    store: &Store,
    image_id: &str,
    tags: &[String],
    format: ArchiveFormat,
    dest: &Path,
) -> Result<(), ArchiveError> {
    let config_bytes = store.read_blob(image_id)?;
    let config: ImageConfig =
        serde_json::from_slice(&config_bytes).map_err(|e| ArchiveError::Invalid {
            path: dest.to_path_buf(),
            message: format!("image config: {e}"),
        })?;
    let diff_ids = &config.rootfs.diff_ids;

    // Layers as they will be written: (media type, digest, size, source).
    enum Source {
        Blob(std::path::PathBuf),
        LayerTar {
            diff_id: String,
            compressed: Option<std::path::PathBuf>,
        },
    }
    let mut layers: Vec<(String, String, u64, Source)> = Vec::new();
    match format {
        ArchiveFormat::Oci => {
            let blobs: Vec<Result<LayerBlob, ArchiveError>> = std::thread::scope(|scope| {
                let handles: Vec<_> = diff_ids
                    .iter()
                    .map(|d| scope.spawn(move || gzip_blob(store, d)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(ArchiveError::Invalid {
                                path: dest.to_path_buf(),
                                message: "layer compression panicked".into(),
                            })
                        })
                    })
                    .collect()
            });
            for blob in blobs {
                let blob = blob?;
                let path = store.blob_path(&blob.digest)?;
                layers.push((blob.media_type, blob.digest, blob.size, Source::Blob(path)));
            }
        }
        ArchiveFormat::Docker => {
            for diff_id in diff_ids {
                let info = store.layer_info(diff_id)?;
                let compressed = info
                    .blobs
                    .iter()
                    .find(|b| store.has_blob(&b.digest))
                    .map(|b| store.blob_path(&b.digest))
                    .transpose()?;
                layers.push((
                    TAR_LAYER.to_string(),
                    diff_id.clone(),
                    info.tar_size,
                    Source::LayerTar {
                        diff_id: diff_id.clone(),
                        compressed,
                    },
                ));
            }
        }
    }

    let config_desc = descriptor(MediaType::ImageConfig, image_id, config_bytes.len() as u64)?;
    let layer_descs = layers
        .iter()
        .map(|(media, digest, size, _)| descriptor(MediaType::from(media.as_str()), digest, *size))
        .collect::<Result<Vec<_>, _>>()?;
    let manifest = image_manifest(config_desc, layer_descs)?;
    let manifest_bytes = to_bytes("manifest", &manifest)?;
    let manifest_digest = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&manifest_bytes))
    );
    let manifest_desc = descriptor(
        MediaType::ImageManifest,
        &manifest_digest,
        manifest_bytes.len() as u64,
    )?;
    let index = tagged_index(&manifest_desc, tags)?;
    let index_bytes = to_bytes("index", &index)?;

    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let temp =
        tempfile::NamedTempFile::new_in(parent).map_err(io_err("create temp file in", parent))?;
    let mut out = tar::Builder::new(std::io::BufWriter::new(temp));
    append_bytes(
        &mut out,
        "oci-layout",
        br#"{"imageLayoutVersion":"1.0.0"}"#,
        dest,
    )?;
    append_bytes(&mut out, &blob_name(image_id), &config_bytes, dest)?;
    for (_, digest, size, source) in &layers {
        let mut header = member_header(*size);
        match source {
            Source::Blob(path) => {
                let file = std::fs::File::open(path).map_err(io_err("read", path))?;
                out.append_data(&mut header, blob_name(digest), file)
                    .map_err(io_err("write", dest))?;
            }
            Source::LayerTar {
                diff_id,
                compressed,
            } => {
                let reader = layer_tar_reader(store, diff_id, compressed.as_deref())?;
                out.append_data(&mut header, blob_name(digest), reader)
                    .map_err(io_err("write", dest))?;
            }
        }
    }
    append_bytes(
        &mut out,
        &blob_name(&manifest_digest),
        &manifest_bytes,
        dest,
    )?;
    if format == ArchiveFormat::Docker {
        let docker_manifest = serde_json::json!([{
            "Config": blob_name(image_id),
            "RepoTags": tags,
            "Layers": diff_ids.iter().map(|d| blob_name(d)).collect::<Vec<_>>(),
        }]);
        append_bytes(
            &mut out,
            "manifest.json",
            docker_manifest.to_string().as_bytes(),
            dest,
        )?;
    }
    append_bytes(&mut out, "index.json", &index_bytes, dest)?;
    let writer = out.into_inner().map_err(io_err("write", dest))?;
    let temp = writer.into_inner().map_err(|e| ArchiveError::Io {
        action: "write",
        path: dest.to_path_buf(),
        source: e.into_error(),
    })?;
    temp.as_file().sync_all().map_err(io_err("sync", dest))?;
    temp.persist(dest).map_err(|e| ArchiveError::Io {
        action: "write",
        path: dest.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

/// The layer's uncompressed tar as a reader: the original blob decompressed, or the layer dir
/// streamed through a pipe from a writer thread. Either way nothing is held in memory.
fn layer_tar_reader(
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
