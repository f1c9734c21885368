//! An OCI image reader written apart from rbuild's own code, so tests check its outputs against
//! the spec rather than against itself: digests, diff_ids, history, whiteouts, tar invariants.
//!
//! `OciImage::open` reads an OCI archive (tar), an OCI layout directory or a docker-archive,
//! verifies every digest and the layer invariants, panicking with a clear message on the first
//! violation, and applies the layers in order into a [`Tree`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use flate2::read::MultiGzDecoder;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Files up to this size keep their bytes in [`NodeKind::File`].
pub const KEEP_CONTENT_LIMIT: u64 = 1 << 20;

const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// What kind of file a tree entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// `content` is kept for files up to [`KEEP_CONTENT_LIMIT`] bytes.
    File {
        sha256: String,
        size: u64,
        content: Option<Vec<u8>>,
    },
    Dir,
    Symlink(String),
    /// The target path (normalized like tree paths) of an earlier entry of the same layer.
    Hardlink(String),
    CharDev {
        major: u32,
        minor: u32,
    },
    BlockDev {
        major: u32,
        minor: u32,
    },
    Fifo,
}

/// One tar entry's file and metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: NodeKind,
    /// Permission bits, setuid/setgid/sticky included (07777).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    /// From PAX `SCHILY.xattr.*` records.
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

impl Node {
    pub fn is_file(&self) -> bool {
        matches!(self.kind, NodeKind::File { .. })
    }

    pub fn is_dir(&self) -> bool {
        matches!(self.kind, NodeKind::Dir)
    }

    pub fn symlink_target(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Symlink(target) => Some(target),
            _ => None,
        }
    }

    pub fn owner(&self) -> (u64, u64) {
        (self.uid, self.gid)
    }
}

/// A filesystem as a sorted map from path (relative, no leading or trailing slash) to node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    pub nodes: BTreeMap<String, Node>,
}

impl Tree {
    /// The node at `path` (a leading `/` or `./` is ignored).
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(&normalize(path))
    }

    /// The node at `path`; panics, listing the neighbouring paths, when it is missing.
    pub fn node(&self, path: &str) -> &Node {
        let path = normalize(path);
        self.nodes.get(&path).unwrap_or_else(|| {
            let parent = path.rsplit_once('/').map_or("", |(parent, _)| parent);
            panic!(
                "no `{path}` in the image; `{parent}/` holds: {:?}",
                self.children(parent)
            )
        })
    }

    pub fn contains(&self, path: &str) -> bool {
        self.get(path).is_some()
    }

    /// A file's bytes (following hard links, not symlinks); panics unless `path` is a file whose
    /// bytes were kept.
    pub fn bytes(&self, path: &str) -> &[u8] {
        let mut node = self.node(path);
        for _ in 0..8 {
            match &node.kind {
                NodeKind::Hardlink(target) => node = self.node(target),
                NodeKind::File {
                    content: Some(content),
                    ..
                } => return content,
                NodeKind::File { size, .. } => panic!("`{path}` has {size} bytes: too big to keep"),
                other => panic!("`{path}` is not a regular file: {other:?}"),
            }
        }
        panic!("`{path}`: hard link chain too long")
    }

    /// A file's content as UTF-8.
    pub fn text(&self, path: &str) -> String {
        String::from_utf8(self.bytes(path).to_vec())
            .unwrap_or_else(|_| panic!("`{path}` is not UTF-8"))
    }

    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.nodes.keys().map(String::as_str)
    }

    /// Names of the direct children of `dir` ("" is the root).
    pub fn children(&self, dir: &str) -> Vec<String> {
        let dir = normalize(dir);
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        self.nodes
            .keys()
            .filter_map(|path| path.strip_prefix(&prefix))
            .filter(|rest| !rest.is_empty() && !rest.contains('/'))
            .map(str::to_string)
            .collect()
    }

    fn remove_subtree(&mut self, path: &str) {
        self.nodes.remove(path);
        self.remove_children(path);
    }

    fn remove_children(&mut self, dir: &str) {
        if dir.is_empty() {
            self.nodes.clear();
            return;
        }
        // Every key under `dir/` sorts between `dir/` and `dir0` ('0' follows '/').
        let doomed: Vec<String> = self
            .nodes
            .range(format!("{dir}/")..format!("{dir}0"))
            .map(|(path, _)| path.clone())
            .collect();
        for path in doomed {
            self.nodes.remove(&path);
        }
    }

    /// Applies one layer with OCI whiteout semantics: `.wh.NAME` deletes NAME and its subtree
    /// from the lower layers, `DIR/.wh..wh..opq` deletes DIR's lower contents.
    fn apply(&mut self, layer: &Layer) {
        for (path, _) in &layer.entries {
            match whiteout(path) {
                Some(Whiteout::Opaque(dir)) => self.remove_children(dir),
                Some(Whiteout::Remove(target)) => self.remove_subtree(&target),
                None => {}
            }
        }
        for (path, node) in &layer.entries {
            if whiteout(path).is_some() {
                continue;
            }
            let replaces_dir_with_non_dir =
                self.nodes.get(path).is_some_and(|old| old.is_dir()) && !node.is_dir();
            if replaces_dir_with_non_dir {
                self.remove_children(path);
            }
            self.nodes.insert(path.clone(), node.clone());
        }
    }
}

enum Whiteout<'a> {
    /// The directory whose lower contents are hidden ("" for the root).
    Opaque(&'a str),
    /// The path deleted from the lower layers.
    Remove(String),
}

fn whiteout(path: &str) -> Option<Whiteout<'_>> {
    let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
    let hidden = name.strip_prefix(".wh.")?;
    if hidden == ".wh..opq" {
        return Some(Whiteout::Opaque(parent));
    }
    assert!(
        !hidden.starts_with(".wh."),
        "unknown whiteout meta-file `{path}` (aufs-only)"
    );
    Some(Whiteout::Remove(if parent.is_empty() {
        hidden.to_string()
    } else {
        format!("{parent}/{hidden}")
    }))
}

/// Strips `./`, leading and trailing slashes; "" is the root.
pub fn normalize(path: &str) -> String {
    path.split('/')
        .filter(|component| !component.is_empty() && *component != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// Which compression a layer blob has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// One layer as stored: its descriptor and its tar entries in order (whiteouts included).
#[derive(Clone, Debug)]
pub struct Layer {
    /// None in a docker-archive.
    pub media_type: Option<String>,
    pub blob_digest: String,
    pub blob_size: u64,
    pub diff_id: String,
    pub compression: Compression,
    /// Tar entries in archive order with normalized paths; the root entry (`./`) is left out.
    pub entries: Vec<(String, Node)>,
}

impl Layer {
    pub fn paths(&self) -> Vec<&str> {
        self.entries.iter().map(|(path, _)| path.as_str()).collect()
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        let path = normalize(path);
        self.entries
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, node)| node)
    }

    /// Paths this layer deletes from the lower layers (targets of `.wh.NAME` files).
    pub fn deleted_paths(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter_map(|(path, _)| match whiteout(path) {
                Some(Whiteout::Remove(target)) => Some(target),
                _ => None,
            })
            .collect()
    }

    /// Directories this layer marks opaque.
    pub fn opaque_dirs(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter_map(|(path, _)| match whiteout(path) {
                Some(Whiteout::Opaque(dir)) => Some(dir.to_string()),
                _ => None,
            })
            .collect()
    }

    /// The layer alone as a tree, whiteout files left out.
    pub fn tree(&self) -> Tree {
        let nodes = self
            .entries
            .iter()
            .filter(|(path, _)| whiteout(path).is_none())
            .cloned()
            .collect();
        Tree { nodes }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    OciLayout,
    OciArchive,
    DockerArchive,
}

/// A verified image with its layers applied.
#[derive(Debug)]
pub struct OciImage {
    pub path: PathBuf,
    pub format: ImageFormat,
    /// index.json (OCI) or manifest.json (docker-archive).
    pub index: Value,
    /// The image manifest (for a docker-archive, its manifest.json entry).
    pub manifest: Value,
    /// None for a docker-archive, which has no manifest blob.
    pub manifest_digest: Option<String>,
    pub config: Value,
    /// sha256 of the config blob: the image ID.
    pub config_digest: String,
    pub layers: Vec<Layer>,
    pub tree: Tree,
}

impl OciImage {
    /// Opens the first image of an OCI archive, OCI layout dir or docker-archive; for an index,
    /// the manifest of this host's platform.
    pub fn open(path: &Path) -> OciImage {
        OciImage::open_with(path, None, None)
    }

    /// Opens the image tagged `reference` (`org.opencontainers.image.ref.name`, or a docker
    /// `RepoTags` entry).
    pub fn open_ref(path: &Path, reference: &str) -> OciImage {
        OciImage::open_with(path, Some(reference), None)
    }

    /// `platform` is `os/arch[/variant]`, e.g. `linux/arm64`, for multi-platform indexes.
    pub fn open_with(path: &Path, reference: Option<&str>, platform: Option<&str>) -> OciImage {
        let source = Source::open(path);
        if source.exists("index.json") {
            open_oci(path, &source, reference, platform)
        } else if source.exists("manifest.json") {
            open_docker(path, &source, reference)
        } else {
            panic!(
                "{}: neither index.json nor manifest.json: not an image",
                path.display()
            )
        }
    }

    pub fn config(&self) -> &Value {
        &self.config
    }

    /// The runtime part of the config (`Env`, `Cmd`, `Entrypoint`, `Labels`, ...).
    pub fn runtime_config(&self) -> &Value {
        &self.config["config"]
    }

    pub fn history(&self) -> Vec<Value> {
        self.config["history"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn diff_ids(&self) -> Vec<String> {
        diff_ids(&self.config)
    }

    pub fn layer_count(&self) -> usize {
        self.layers.len()
    }

    pub fn layer(&self, index: usize) -> &Layer {
        &self.layers[index]
    }

    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// Tags in index.json (`org.opencontainers.image.ref.name`) or docker `RepoTags`.
    pub fn ref_names(&self) -> Vec<String> {
        match self.format {
            ImageFormat::DockerArchive => strings(&self.manifest["RepoTags"]),
            _ => self.index["manifests"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|descriptor| descriptor["annotations"][REF_NAME].as_str())
                .map(str::to_string)
                .collect(),
        }
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

fn diff_ids(config: &Value) -> Vec<String> {
    strings(&config["rootfs"]["diff_ids"])
}

fn open_oci(
    path: &Path,
    source: &Source,
    reference: Option<&str>,
    platform: Option<&str>,
) -> OciImage {
    let what = path.display().to_string();
    let layout = parse_json(&what, "oci-layout", &source.read("oci-layout"));
    assert!(
        layout["imageLayoutVersion"].is_string(),
        "{what}: oci-layout lacks imageLayoutVersion: {layout}"
    );
    let index = parse_json(&what, "index.json", &source.read("index.json"));
    let manifests = index["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: index.json has no manifests"));
    let descriptor = match reference {
        Some(reference) => manifests
            .iter()
            .find(|descriptor| descriptor["annotations"][REF_NAME] == reference)
            .unwrap_or_else(|| {
                panic!("{what}: no manifest tagged `{reference}` in index.json: {index}")
            }),
        None => manifests
            .first()
            .unwrap_or_else(|| panic!("{what}: index.json lists no manifest")),
    };
    let (manifest_digest, manifest) = resolve_manifest(&what, source, descriptor, platform, 0);
    assert_eq!(
        manifest["schemaVersion"], 2,
        "{what}: manifest schemaVersion"
    );
    let config_descriptor = &manifest["config"];
    let config_bytes = read_blob(&what, source, config_descriptor);
    let config = parse_json(&what, "config", &config_bytes);
    let config_digest = config_descriptor["digest"]
        .as_str()
        .expect("config digest")
        .to_string();
    let descriptors = manifest["layers"].as_array().cloned().unwrap_or_default();
    let expected_diff_ids = diff_ids(&config);
    assert_eq!(
        descriptors.len(),
        expected_diff_ids.len(),
        "{what}: the manifest has {} layers but config rootfs.diff_ids has {}",
        descriptors.len(),
        expected_diff_ids.len()
    );
    let layers: Vec<Layer> = descriptors
        .iter()
        .zip(&expected_diff_ids)
        .enumerate()
        .map(|(i, (descriptor, diff_id))| {
            let digest = descriptor["digest"].as_str().unwrap_or_else(|| panic!("{what}: layer {i} has no digest"));
            let media_type = descriptor["mediaType"].as_str().map(str::to_string);
            let layer = read_layer(&format!("{what}: layer {i}"), source, &blob_path(digest), media_type);
            assert_eq!(layer.blob_digest, digest, "{what}: layer {i}: blob sha256 differs from the manifest digest");
            let size = descriptor["size"].as_u64();
            assert_eq!(Some(layer.blob_size), size, "{what}: layer {i}: blob size differs from the manifest");
            assert_eq!(
                &layer.diff_id, diff_id,
                "{what}: layer {i}: sha256 of the uncompressed tar differs from config rootfs.diff_ids[{i}]"
            );
            layer
        })
        .collect();
    finish(
        path,
        ImageFormat::from_source(source),
        index,
        manifest,
        Some(manifest_digest),
        config,
        config_digest,
        layers,
    )
}

/// Follows nested indexes down to an image manifest, checking each blob's digest and size.
fn resolve_manifest(
    what: &str,
    source: &Source,
    descriptor: &Value,
    platform: Option<&str>,
    depth: u32,
) -> (String, Value) {
    assert!(depth < 4, "{what}: indexes nested too deep");
    let bytes = read_blob(what, source, descriptor);
    let blob = parse_json(what, "manifest", &bytes);
    let digest = descriptor["digest"].as_str().expect("digest").to_string();
    let media_type = blob["mediaType"]
        .as_str()
        .or(descriptor["mediaType"].as_str())
        .unwrap_or_default();
    let is_index = media_type.ends_with("image.index.v1+json")
        || media_type.ends_with("manifest.list.v2+json")
        || (blob["manifests"].is_array() && !blob["layers"].is_array());
    if !is_index {
        return (digest, blob);
    }
    let wanted = platform.map(str::to_string).unwrap_or_else(host_platform);
    let manifests = blob["manifests"].as_array().cloned().unwrap_or_default();
    let chosen = manifests
        .iter()
        .find(|m| platform_of(&m["platform"]) == wanted)
        .or_else(|| {
            if platform.is_none() {
                manifests.first()
            } else {
                None
            }
        })
        .unwrap_or_else(|| {
            panic!("{what}: no manifest for platform {wanted} in index {digest}: {blob}")
        })
        .clone();
    resolve_manifest(what, source, &chosen, platform, depth + 1)
}

fn platform_of(platform: &Value) -> String {
    let mut text = format!(
        "{}/{}",
        platform["os"].as_str().unwrap_or_default(),
        platform["architecture"].as_str().unwrap_or_default()
    );
    if let Some(variant) = platform["variant"].as_str() {
        text.push('/');
        text.push_str(variant);
    }
    text
}

fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    format!("linux/{arch}")
}

fn open_docker(path: &Path, source: &Source, reference: Option<&str>) -> OciImage {
    let what = path.display().to_string();
    let index = parse_json(&what, "manifest.json", &source.read("manifest.json"));
    let entries = index
        .as_array()
        .unwrap_or_else(|| panic!("{what}: manifest.json is not an array"));
    let manifest = match reference {
        Some(reference) => entries
            .iter()
            .find(|entry| {
                strings(&entry["RepoTags"])
                    .iter()
                    .any(|tag| tag == reference)
            })
            .unwrap_or_else(|| {
                panic!("{what}: no RepoTags entry `{reference}` in manifest.json: {index}")
            }),
        None => entries
            .first()
            .unwrap_or_else(|| panic!("{what}: manifest.json is empty")),
    }
    .clone();
    let config_path = manifest["Config"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no Config"));
    let config_bytes = source.read(config_path);
    let config_digest = sha256_digest(&config_bytes);
    let config_hex = Path::new(config_path)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    if config_hex.len() == 64 {
        assert_eq!(
            format!("sha256:{config_hex}"),
            config_digest,
            "{what}: config file name differs from its sha256"
        );
    }
    let config = parse_json(&what, "config", &config_bytes);
    let layer_paths = strings(&manifest["Layers"]);
    let expected_diff_ids = diff_ids(&config);
    assert_eq!(
        layer_paths.len(),
        expected_diff_ids.len(),
        "{what}: manifest.json lists {} layers but config rootfs.diff_ids has {}",
        layer_paths.len(),
        expected_diff_ids.len()
    );
    let layers = layer_paths
        .iter()
        .zip(&expected_diff_ids)
        .enumerate()
        .map(|(i, (layer_path, diff_id))| {
            let layer = read_layer(&format!("{what}: layer {i} ({layer_path})"), source, layer_path, None);
            assert_eq!(
                &layer.diff_id, diff_id,
                "{what}: layer {i}: sha256 of the uncompressed tar differs from config rootfs.diff_ids[{i}]"
            );
            layer
        })
        .collect();
    finish(
        path,
        ImageFormat::DockerArchive,
        index,
        manifest,
        None,
        config,
        config_digest,
        layers,
    )
}

#[allow(clippy::too_many_arguments)]
fn finish(
    path: &Path,
    format: ImageFormat,
    index: Value,
    manifest: Value,
    manifest_digest: Option<String>,
    config: Value,
    config_digest: String,
    layers: Vec<Layer>,
) -> OciImage {
    let what = path.display();
    if let Some(history) = config["history"].as_array() {
        let with_layer = history
            .iter()
            .filter(|entry| entry["empty_layer"] != true)
            .count();
        assert_eq!(
            with_layer,
            layers.len(),
            "{what}: {with_layer} history entries without empty_layer but {} layers",
            layers.len()
        );
    }
    let mut tree = Tree::default();
    for layer in &layers {
        tree.apply(layer);
    }
    OciImage {
        path: path.to_path_buf(),
        format,
        index,
        manifest,
        manifest_digest,
        config,
        config_digest,
        layers,
        tree,
    }
}

impl ImageFormat {
    fn from_source(source: &Source) -> ImageFormat {
        match source {
            Source::Dir(_) => ImageFormat::OciLayout,
            Source::Tar { .. } => ImageFormat::OciArchive,
        }
    }
}

fn parse_json(what: &str, name: &str, bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{what}: {name} is not JSON: {e}"))
}

fn blob_path(digest: &str) -> String {
    let (algorithm, hex) = digest
        .split_once(':')
        .unwrap_or_else(|| panic!("malformed digest `{digest}`"));
    assert_eq!(
        algorithm, "sha256",
        "unsupported digest algorithm in `{digest}`"
    );
    assert!(
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "malformed digest `{digest}`"
    );
    format!("blobs/sha256/{hex}")
}

/// Reads a small blob (manifest, config), checking its digest and size against `descriptor`.
fn read_blob(what: &str, source: &Source, descriptor: &Value) -> Vec<u8> {
    let digest = descriptor["digest"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: descriptor without digest: {descriptor}"));
    let bytes = source.read(&blob_path(digest));
    assert_eq!(
        sha256_digest(&bytes),
        digest,
        "{what}: blob {digest} does not hash to its digest"
    );
    assert_eq!(
        Some(bytes.len() as u64),
        descriptor["size"].as_u64(),
        "{what}: blob {digest}: size differs from its descriptor"
    );
    bytes
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

// ---------------------------------------------------------------------------------------------
// Where blobs come from: a directory or a tar archive (read in place, by offset)

enum Source {
    Dir(PathBuf),
    Tar {
        path: PathBuf,
        members: HashMap<String, Member>,
    },
}

enum Member {
    File { offset: u64, size: u64 },
    Symlink(String),
    Other,
}

impl Source {
    fn open(path: &Path) -> Source {
        let metadata = fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if metadata.is_dir() {
            return Source::Dir(path.to_path_buf());
        }
        let file = fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut archive = tar::Archive::new(BufReader::new(file));
        let mut members = HashMap::new();
        for entry in archive
            .entries()
            .unwrap_or_else(|e| panic!("{}: not a tar: {e}", path.display()))
        {
            let entry = entry.unwrap_or_else(|e| panic!("{}: bad tar entry: {e}", path.display()));
            let name = normalize(&entry.path().expect("member path").to_string_lossy());
            let member = match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => Member::File {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                },
                tar::EntryType::Symlink => Member::Symlink(
                    entry
                        .link_name()
                        .ok()
                        .flatten()
                        .map(|t| t.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                ),
                _ => Member::Other,
            };
            members.insert(name, member);
        }
        Source::Tar {
            path: path.to_path_buf(),
            members,
        }
    }

    fn exists(&self, name: &str) -> bool {
        match self {
            Source::Dir(dir) => dir.join(name).exists(),
            Source::Tar { members, .. } => members.contains_key(&normalize(name)),
        }
    }

    fn reader(&self, name: &str) -> Box<dyn Read> {
        match self {
            Source::Dir(dir) => {
                let path = dir.join(name);
                Box::new(
                    fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
                )
            }
            Source::Tar { path, members } => {
                let mut name = normalize(name);
                for _ in 0..8 {
                    match members.get(&name) {
                        Some(Member::File { offset, size }) => {
                            let mut file = fs::File::open(path).expect("reopen the archive");
                            file.seek(SeekFrom::Start(*offset))
                                .expect("seek in the archive");
                            return Box::new(file.take(*size));
                        }
                        Some(Member::Symlink(target)) => {
                            let parent = name.rsplit_once('/').map_or("", |(parent, _)| parent);
                            name = resolve_relative(parent, target);
                        }
                        _ => panic!("{}: no file `{name}` in the archive", path.display()),
                    }
                }
                panic!("{}: symlink loop at `{name}`", path.display())
            }
        }
    }

    fn read(&self, name: &str) -> Vec<u8> {
        let mut bytes = Vec::new();
        self.reader(name)
            .read_to_end(&mut bytes)
            .unwrap_or_else(|e| panic!("read `{name}`: {e}"));
        bytes
    }
}

fn resolve_relative(dir: &str, target: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        dir.split('/').filter(|p| !p.is_empty()).collect()
    };
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts.join("/")
}

// ---------------------------------------------------------------------------------------------
// Layers

/// Counts and hashes what passes through.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Reads to the end and returns the digest and byte count of everything read.
    fn finish(mut self) -> (String, u64) {
        io::copy(&mut self, &mut io::sink()).expect("read to the end");
        (
            format!("sha256:{}", hex::encode(self.hasher.finalize())),
            self.count,
        )
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

fn compression_of_media_type(media_type: &str) -> Option<Compression> {
    if media_type.ends_with("+gzip") || media_type.ends_with(".tar.gzip") {
        Some(Compression::Gzip)
    } else if media_type.ends_with("+zstd") {
        Some(Compression::Zstd)
    } else if media_type.ends_with(".tar") || media_type.ends_with("rootfs.diff.tar") {
        Some(Compression::None)
    } else {
        None
    }
}

fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

fn read_layer(what: &str, source: &Source, blob: &str, media_type: Option<String>) -> Layer {
    let mut compressed = BufReader::with_capacity(1 << 16, HashingReader::new(source.reader(blob)));
    let head = compressed
        .fill_buf()
        .unwrap_or_else(|e| panic!("{what}: read: {e}"))
        .to_vec();
    let compression = sniff(&head);
    if let Some(media_type) = &media_type {
        let declared = compression_of_media_type(media_type)
            .unwrap_or_else(|| panic!("{what}: unknown layer media type `{media_type}`"));
        assert_eq!(
            declared, compression,
            "{what}: media type `{media_type}` but the blob's bytes say {compression:?}"
        );
    }
    let (entries, diff_id) = match compression {
        Compression::None => {
            let mut tar_stream = HashingReader::new(&mut compressed);
            let entries = read_tar(what, &mut tar_stream);
            (entries, tar_stream.finish().0)
        }
        Compression::Gzip => {
            let mut tar_stream = HashingReader::new(MultiGzDecoder::new(&mut compressed));
            let entries = read_tar(what, &mut tar_stream);
            (entries, tar_stream.finish().0)
        }
        Compression::Zstd => {
            let mut bytes = Vec::new();
            compressed
                .read_to_end(&mut bytes)
                .expect("read the zstd blob");
            let tar_bytes = zstd_decompress(what, &bytes);
            let mut tar_stream = HashingReader::new(tar_bytes.as_slice());
            let entries = read_tar(what, &mut tar_stream);
            (entries, tar_stream.finish().0)
        }
    };
    let (blob_digest, blob_size) = compressed.into_inner().finish();
    Layer {
        media_type,
        blob_digest,
        blob_size,
        diff_id,
        compression,
        entries,
    }
}

/// zstd is not among our crates: use the `zstd` command (scripts/test-deps installs it).
fn zstd_decompress(what: &str, bytes: &[u8]) -> Vec<u8> {
    let mut child = Command::new("zstd")
        .args(["-d", "-c", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{what}: zstd layer, but the zstd command failed to start: {e}")
        });
    let mut stdin = child.stdin.take().expect("zstd stdin");
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().expect("wait for zstd");
    let _ = writer.join();
    assert!(
        output.status.success(),
        "{what}: zstd -d failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Reads a layer tar into entries, checking the invariants every layer must keep.
fn read_tar(what: &str, stream: &mut dyn Read) -> Vec<(String, Node)> {
    let mut archive = tar::Archive::new(stream);
    let mut entries: Vec<(String, Node)> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for entry in archive
        .entries()
        .unwrap_or_else(|e| panic!("{what}: not a tar: {e}"))
    {
        let mut entry = entry.unwrap_or_else(|e| panic!("{what}: bad tar entry: {e}"));
        let entry_type = entry.header().entry_type();
        if matches!(entry_type, tar::EntryType::XGlobalHeader) {
            continue;
        }
        let raw_path = entry
            .path()
            .unwrap_or_else(|e| panic!("{what}: entry path: {e}"))
            .to_string_lossy()
            .into_owned();
        let path = normalize(&raw_path);
        assert!(
            !path.split('/').any(|c| c == ".."),
            "{what}: entry `{raw_path}` escapes the root"
        );
        let mut uid = entry
            .header()
            .uid()
            .unwrap_or_else(|e| panic!("{what}: `{path}` uid: {e}"));
        let mut gid = entry
            .header()
            .gid()
            .unwrap_or_else(|e| panic!("{what}: `{path}` gid: {e}"));
        let mode = entry
            .header()
            .mode()
            .unwrap_or_else(|e| panic!("{what}: `{path}` mode: {e}"))
            & 0o7777;
        let mtime = entry.header().mtime().unwrap_or(0);
        let mut xattrs = BTreeMap::new();
        if let Some(extensions) = entry
            .pax_extensions()
            .unwrap_or_else(|e| panic!("{what}: `{path}` pax: {e}"))
        {
            for extension in extensions {
                let extension =
                    extension.unwrap_or_else(|e| panic!("{what}: `{path}` pax record: {e}"));
                let key = extension.key().unwrap_or_default().to_string();
                let value = extension.value_bytes();
                if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                    xattrs.insert(name.to_string(), value.to_vec());
                } else if key == "uid" {
                    uid = std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(uid);
                } else if key == "gid" {
                    gid = std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(gid);
                }
            }
        }
        let device = || {
            let major = entry.header().device_major().ok().flatten().unwrap_or(0);
            let minor = entry.header().device_minor().ok().flatten().unwrap_or(0);
            (major, minor)
        };
        let kind = match entry_type {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let mut hasher = Sha256::new();
                let mut content = Vec::new();
                let mut size = 0u64;
                let mut buf = [0u8; 64 * 1024];
                loop {
                    let n = entry
                        .read(&mut buf)
                        .unwrap_or_else(|e| panic!("{what}: `{path}` content: {e}"));
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                    if size + (n as u64) <= KEEP_CONTENT_LIMIT {
                        content.extend_from_slice(&buf[..n]);
                    }
                    size += n as u64;
                }
                let content = (size <= KEEP_CONTENT_LIMIT).then_some(content);
                NodeKind::File {
                    sha256: hex::encode(hasher.finalize()),
                    size,
                    content,
                }
            }
            tar::EntryType::Directory => NodeKind::Dir,
            tar::EntryType::Symlink => NodeKind::Symlink(link_name(what, &entry, &path)),
            tar::EntryType::Link => NodeKind::Hardlink(normalize(&link_name(what, &entry, &path))),
            tar::EntryType::Char => {
                let (major, minor) = device();
                NodeKind::CharDev { major, minor }
            }
            tar::EntryType::Block => {
                let (major, minor) = device();
                NodeKind::BlockDev { major, minor }
            }
            tar::EntryType::Fifo => NodeKind::Fifo,
            other => panic!("{what}: `{path}` has an unexpected tar entry type {other:?}"),
        };
        if path.is_empty() {
            assert!(
                matches!(kind, NodeKind::Dir),
                "{what}: the root entry `{raw_path}` is not a directory"
            );
            continue;
        }
        assert!(
            seen.insert(path.clone()),
            "{what}: the tar holds `{path}` twice"
        );
        let node = Node {
            kind,
            mode,
            uid,
            gid,
            mtime,
            xattrs,
        };
        check_entry(what, &path, &node, &seen);
        entries.push((path, node));
    }
    check_whiteouts(what, &entries);
    entries
}

fn link_name<R: Read>(what: &str, entry: &tar::Entry<'_, R>, path: &str) -> String {
    entry
        .link_name()
        .unwrap_or_else(|e| panic!("{what}: `{path}` link name: {e}"))
        .unwrap_or_else(|| panic!("{what}: `{path}` is a link without a target"))
        .to_string_lossy()
        .into_owned()
}

/// Invariants of one entry: no overlay metadata leaked, whiteouts are empty files, hard links
/// point to earlier entries.
fn check_entry(what: &str, path: &str, node: &Node, seen: &HashSet<String>) {
    for name in node.xattrs.keys() {
        assert!(
            !name.contains(".overlay."),
            "{what}: `{path}` carries the overlay xattr `{name}`"
        );
    }
    if matches!(node.kind, NodeKind::CharDev { major: 0, minor: 0 }) {
        panic!("{what}: `{path}` is a 0/0 character device: an overlay whiteout left unconverted");
    }
    if whiteout(path).is_some() {
        assert!(
            matches!(node.kind, NodeKind::File { size: 0, .. }),
            "{what}: whiteout `{path}` is not an empty regular file: {:?}",
            node.kind
        );
    }
    if let NodeKind::Hardlink(target) = &node.kind {
        assert!(
            target != path && seen.contains(target) && whiteout(target).is_none(),
            "{what}: hard link `{path}` -> `{target}` does not point to an earlier entry of the layer"
        );
    }
}

/// No whiteout under a path that the same layer deletes.
fn check_whiteouts(what: &str, entries: &[(String, Node)]) {
    let deleted: HashSet<String> = entries
        .iter()
        .filter_map(|(path, _)| match whiteout(path) {
            Some(Whiteout::Remove(target)) => Some(target),
            _ => None,
        })
        .collect();
    for (path, _) in entries {
        if whiteout(path).is_none() {
            continue;
        }
        let mut ancestor = path.as_str();
        while let Some((parent, _)) = ancestor.rsplit_once('/') {
            assert!(
                !deleted.contains(parent),
                "{what}: whiteout `{path}` lies under `{parent}`, which the same layer deletes"
            );
            ancestor = parent;
        }
    }
}

/// A plain tar (e.g. `--output type=tar`) read into a tree, with the checks layer tars get.
pub fn read_tar_tree(what: &str, stream: &mut dyn Read) -> Tree {
    Tree {
        nodes: read_tar(what, stream).into_iter().collect(),
    }
}
