//! Hand-made images for tests that need layers no tool would write: whiteouts, opaque dirs,
//! duplicate paths, overlay xattrs, 0/0 devices, absolute symlinks, long names.
//!
//! `ImageBuilder` writes a valid OCI layout or archive (digests, diff_ids and history all
//! consistent) around layers given as raw tar entries, optionally on top of a base image.

use std::fs;
use std::io::Write;
use std::path::Path;

use flate2::write::GzEncoder;
use serde_json::{json, Value};

use super::oci::{sha256_digest, Compression};

const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

pub use test_support::tar::{layer_tar, TarEntry};

struct LayerBlob {
    blob: Vec<u8>,
    media_type: String,
    diff_id: String,
}

/// Builds a consistent OCI image around hand-made layers.
pub struct ImageBuilder {
    layers: Vec<LayerBlob>,
    config: Value,
    tag: String,
}

impl Default for ImageBuilder {
    fn default() -> Self {
        ImageBuilder::new()
    }
}

impl ImageBuilder {
    /// An image without layers: linux on this host's architecture, PATH set, tag `latest`.
    pub fn new() -> ImageBuilder {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        ImageBuilder {
            layers: Vec::new(),
            config: json!({
                "architecture": arch,
                "os": "linux",
                "config": { "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] },
                "rootfs": { "type": "layers", "diff_ids": [] },
                "history": [],
            }),
            tag: "latest".to_string(),
        }
    }

    /// Starts from the image tagged `tag` in an OCI layout dir (its blobs reused as they are),
    /// e.g. the busybox fixture's layout with tag `latest`.
    pub fn from_layout(layout: &Path, tag: &str) -> ImageBuilder {
        let read = |name: &str| {
            fs::read(layout.join(name))
                .unwrap_or_else(|e| panic!("{}/{name}: {e}", layout.display()))
        };
        let json =
            |bytes: Vec<u8>| -> Value { serde_json::from_slice(&bytes).expect("layout JSON") };
        let blob = |digest: &str| {
            read(&format!(
                "blobs/sha256/{}",
                digest.trim_start_matches("sha256:")
            ))
        };
        let index = json(read("index.json"));
        let descriptor = index["manifests"]
            .as_array()
            .and_then(|manifests| {
                manifests
                    .iter()
                    .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
            })
            .unwrap_or_else(|| panic!("{}: no tag `{tag}`", layout.display()))
            .clone();
        let manifest = json(blob(
            descriptor["digest"].as_str().expect("manifest digest"),
        ));
        let config = json(blob(
            manifest["config"]["digest"]
                .as_str()
                .expect("config digest"),
        ));
        let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
            .as_array()
            .expect("diff_ids")
            .iter()
            .map(|d| d.as_str().expect("diff_id").to_string())
            .collect();
        let layers = manifest["layers"]
            .as_array()
            .expect("manifest layers")
            .iter()
            .zip(diff_ids)
            .map(|(layer, diff_id)| LayerBlob {
                blob: blob(layer["digest"].as_str().expect("layer digest")),
                media_type: layer["mediaType"]
                    .as_str()
                    .expect("layer media type")
                    .to_string(),
                diff_id,
            })
            .collect();
        ImageBuilder {
            layers,
            config,
            tag: "latest".to_string(),
        }
    }

    /// The tag (`org.opencontainers.image.ref.name`) written in index.json.
    pub fn tag(mut self, tag: &str) -> ImageBuilder {
        self.tag = tag.to_string();
        self
    }

    /// Adds an uncompressed layer.
    pub fn layer(self, entries: &[TarEntry]) -> ImageBuilder {
        self.layer_with(entries, Compression::None)
    }

    /// Adds a gzip-compressed layer.
    pub fn gzip_layer(self, entries: &[TarEntry]) -> ImageBuilder {
        self.layer_with(entries, Compression::Gzip)
    }

    pub fn layer_with(self, entries: &[TarEntry], compression: Compression) -> ImageBuilder {
        self.raw_layer(layer_tar(entries), compression)
    }

    /// Adds a layer from tar bytes made elsewhere.
    pub fn raw_layer(mut self, tar: Vec<u8>, compression: Compression) -> ImageBuilder {
        let diff_id = sha256_digest(&tar);
        let (blob, media_type) = match compression {
            Compression::None => (tar, LAYER_TAR),
            Compression::Gzip => {
                let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::fast());
                encoder.write_all(&tar).expect("gzip");
                (encoder.finish().expect("gzip"), LAYER_TAR_GZIP)
            }
            Compression::Zstd => (
                zstd::encode_all(&tar[..], 3).expect("zstd"),
                "application/vnd.oci.image.layer.v1.tar+zstd",
            ),
        };
        let created_by = format!("test layer {}", self.layers.len());
        self.config["history"]
            .as_array_mut()
            .expect("history")
            .push(json!({ "created": "2023-11-14T22:13:20Z", "created_by": created_by }));
        self.layers.push(LayerBlob {
            blob,
            media_type: media_type.to_string(),
            diff_id,
        });
        self
    }

    /// Sets a field of the runtime config, e.g. `("Cmd", json!(["sh"]))`.
    pub fn config_field(mut self, key: &str, value: Value) -> ImageBuilder {
        self.config["config"][key] = value;
        self
    }

    /// Sets a top-level config field, e.g. `("architecture", json!("arm64"))`.
    pub fn config_top(mut self, key: &str, value: Value) -> ImageBuilder {
        self.config[key] = value;
        self
    }

    /// Writes an OCI layout into `dir` (created if needed); returns the manifest digest.
    pub fn write_layout(&self, dir: &Path) -> String {
        let blobs = dir.join("blobs/sha256");
        fs::create_dir_all(&blobs).unwrap_or_else(|e| panic!("mkdir {}: {e}", blobs.display()));
        let put = |bytes: &[u8]| -> String {
            let digest = sha256_digest(bytes);
            fs::write(blobs.join(digest.trim_start_matches("sha256:")), bytes).expect("write blob");
            digest
        };
        let mut config = self.config.clone();
        config["rootfs"]["diff_ids"] = json!(self
            .layers
            .iter()
            .map(|l| l.diff_id.clone())
            .collect::<Vec<_>>());
        let config_bytes = serde_json::to_vec(&config).expect("config JSON");
        let config_digest = put(&config_bytes);
        let layers: Vec<Value> = self
            .layers
            .iter()
            .map(|layer| json!({ "mediaType": layer.media_type, "digest": put(&layer.blob), "size": layer.blob.len() }))
            .collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config_bytes.len(),
            },
            "layers": layers,
        });
        let manifest_bytes = serde_json::to_vec(&manifest).expect("manifest JSON");
        let manifest_digest = put(&manifest_bytes);
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": manifest_bytes.len(),
                "annotations": { "org.opencontainers.image.ref.name": self.tag },
            }],
        });
        fs::write(
            dir.join("index.json"),
            serde_json::to_vec(&index).expect("index JSON"),
        )
        .expect("write index.json");
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
            .expect("write oci-layout");
        manifest_digest
    }

    /// Writes an OCI archive (a tar of the layout) at `path`; returns the manifest digest.
    pub fn write_oci_archive(&self, path: &Path) -> String {
        let staging = tempfile::tempdir().expect("staging dir");
        let digest = self.write_layout(staging.path());
        let file =
            fs::File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        let mut builder = tar::Builder::new(file);
        builder.mode(tar::HeaderMode::Deterministic);
        // Member names without a `./` prefix, as skopeo writes them.
        for entry in walkdir::WalkDir::new(staging.path())
            .sort_by_file_name()
            .min_depth(1)
        {
            let entry = entry.expect("walk the layout");
            let name = entry
                .path()
                .strip_prefix(staging.path())
                .expect("inside the layout");
            builder
                .append_path_with_name(entry.path(), name)
                .expect("tar the layout");
        }
        builder
            .into_inner()
            .expect("finish the archive")
            .sync_all()
            .expect("sync the archive");
        digest
    }
}
