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

const FIXED_MTIME: u64 = 1_700_000_000;
const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// What a tar entry is.
#[derive(Clone, Debug)]
pub enum EntryKind {
    File(Vec<u8>),
    Dir,
    Symlink(String),
    Hardlink(String),
    CharDev(u32, u32),
    BlockDev(u32, u32),
    Fifo,
}

/// One raw tar entry, written exactly as given (paths are not normalized or deduplicated).
#[derive(Clone, Debug)]
pub struct TarEntry {
    pub path: String,
    pub kind: EntryKind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    /// Written as PAX `SCHILY.xattr.NAME` records.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

impl TarEntry {
    fn new(path: &str, kind: EntryKind, mode: u32) -> TarEntry {
        TarEntry {
            path: path.to_string(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: FIXED_MTIME,
            xattrs: Vec::new(),
        }
    }

    /// A regular file, mode 0644.
    pub fn file(path: &str, bytes: impl AsRef<[u8]>) -> TarEntry {
        TarEntry::new(path, EntryKind::File(bytes.as_ref().to_vec()), 0o644)
    }

    /// A directory, mode 0755 (written as `path/`).
    pub fn dir(path: &str) -> TarEntry {
        let path = format!("{}/", path.trim_end_matches('/'));
        TarEntry::new(&path, EntryKind::Dir, 0o755)
    }

    pub fn symlink(path: &str, target: &str) -> TarEntry {
        TarEntry::new(path, EntryKind::Symlink(target.to_string()), 0o777)
    }

    pub fn hardlink(path: &str, target: &str) -> TarEntry {
        TarEntry::new(path, EntryKind::Hardlink(target.to_string()), 0o644)
    }

    pub fn char_dev(path: &str, major: u32, minor: u32) -> TarEntry {
        TarEntry::new(path, EntryKind::CharDev(major, minor), 0o666)
    }

    pub fn block_dev(path: &str, major: u32, minor: u32) -> TarEntry {
        TarEntry::new(path, EntryKind::BlockDev(major, minor), 0o660)
    }

    pub fn fifo(path: &str) -> TarEntry {
        TarEntry::new(path, EntryKind::Fifo, 0o644)
    }

    /// The whiteout that deletes `path` from lower layers (`DIR/.wh.NAME`).
    pub fn whiteout(path: &str) -> TarEntry {
        let path = path.trim_end_matches('/');
        let whiteout = match path.rsplit_once('/') {
            Some((parent, name)) => format!("{parent}/.wh.{name}"),
            None => format!(".wh.{path}"),
        };
        TarEntry::file(&whiteout, b"")
    }

    /// The marker that hides `dir`'s lower contents (`DIR/.wh..wh..opq`).
    pub fn opaque(dir: &str) -> TarEntry {
        let dir = dir.trim_end_matches('/');
        let marker = if dir.is_empty() {
            ".wh..wh..opq".to_string()
        } else {
            format!("{dir}/.wh..wh..opq")
        };
        TarEntry::file(&marker, b"")
    }

    pub fn mode(mut self, mode: u32) -> TarEntry {
        self.mode = mode;
        self
    }

    pub fn owner(mut self, uid: u64, gid: u64) -> TarEntry {
        self.uid = uid;
        self.gid = gid;
        self
    }

    pub fn mtime(mut self, mtime: u64) -> TarEntry {
        self.mtime = mtime;
        self
    }

    pub fn xattr(mut self, name: &str, value: impl AsRef<[u8]>) -> TarEntry {
        self.xattrs
            .push((name.to_string(), value.as_ref().to_vec()));
        self
    }
}

/// A tar stream of `entries` in order (GNU headers, long names allowed).
pub fn layer_tar(entries: &[TarEntry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        if !entry.xattrs.is_empty() {
            let records: Vec<(String, Vec<u8>)> = entry
                .xattrs
                .iter()
                .map(|(name, value)| (format!("SCHILY.xattr.{name}"), value.clone()))
                .collect();
            builder
                .append_pax_extensions(
                    records
                        .iter()
                        .map(|(key, value)| (key.as_str(), value.as_slice())),
                )
                .expect("append pax records");
        }
        let mut header = tar::Header::new_gnu();
        header.set_mode(entry.mode);
        header.set_uid(entry.uid);
        header.set_gid(entry.gid);
        header.set_mtime(entry.mtime);
        header.set_size(0);
        let result = match &entry.kind {
            EntryKind::File(bytes) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(bytes.len() as u64);
                builder.append_data(&mut header, &entry.path, bytes.as_slice())
            }
            EntryKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                builder.append_data(&mut header, &entry.path, std::io::empty())
            }
            EntryKind::Symlink(target) | EntryKind::Hardlink(target) => {
                let entry_type = if matches!(entry.kind, EntryKind::Symlink(_)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                };
                header.set_entry_type(entry_type);
                builder.append_link(&mut header, &entry.path, target)
            }
            EntryKind::CharDev(major, minor) | EntryKind::BlockDev(major, minor) => {
                let entry_type = if matches!(entry.kind, EntryKind::CharDev(..)) {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                };
                header.set_entry_type(entry_type);
                header.set_device_major(*major).expect("device major");
                header.set_device_minor(*minor).expect("device minor");
                builder.append_data(&mut header, &entry.path, std::io::empty())
            }
            EntryKind::Fifo => {
                header.set_entry_type(tar::EntryType::Fifo);
                builder.append_data(&mut header, &entry.path, std::io::empty())
            }
        };
        result.unwrap_or_else(|e| panic!("tar entry `{}`: {e}", entry.path));
    }
    builder.into_inner().expect("finish the tar")
}

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
