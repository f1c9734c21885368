//! Manifests, indexes and descriptors (oci-spec types), serialized canonically so that a
//! digest is always the sha256 of exactly the bytes written.

use std::collections::HashMap;

use oci_spec::image::{
    Descriptor, Digest, ImageIndex, ImageIndexBuilder, ImageManifest, ImageManifestBuilder,
    MediaType,
};

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("invalid digest {digest:?}: {source}")]
    Digest {
        digest: String,
        #[source]
        source: oci_spec::OciSpecError,
    },
    #[error("cannot build {what}: {source}")]
    Build {
        what: &'static str,
        #[source]
        source: oci_spec::OciSpecError,
    },
    #[error("cannot serialize {what}: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// The annotation that names a tag on an index.json descriptor.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

pub fn parse_digest(digest: &str) -> Result<Digest, ManifestError> {
    digest
        .parse::<Digest>()
        .map_err(|source| ManifestError::Digest {
            digest: digest.to_string(),
            source,
        })
}

pub fn descriptor(
    media_type: MediaType,
    digest: &str,
    size: u64,
) -> Result<Descriptor, ManifestError> {
    Ok(Descriptor::new(media_type, size, parse_digest(digest)?))
}

/// An OCI image manifest for a config and its layer blobs.
pub fn image_manifest(
    config: Descriptor,
    layers: Vec<Descriptor>,
) -> Result<ImageManifest, ManifestError> {
    ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config)
        .layers(layers)
        .build()
        .map_err(|source| ManifestError::Build {
            what: "manifest",
            source,
        })
}

/// An index listing `manifest` once per tag (each with its `ref.name`), or once untagged.
pub fn tagged_index(manifest: &Descriptor, tags: &[String]) -> Result<ImageIndex, ManifestError> {
    let manifests = if tags.is_empty() {
        vec![manifest.clone()]
    } else {
        tags.iter()
            .map(|tag| {
                let mut d = manifest.clone();
                d.set_annotations(Some(HashMap::from([(REF_NAME.to_string(), tag.clone())])));
                d
            })
            .collect()
    };
    image_index(manifests)
}

/// An image index over `manifests` (one per platform, each with its `platform`).
pub fn image_index(manifests: Vec<Descriptor>) -> Result<ImageIndex, ManifestError> {
    ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests)
        .build()
        .map_err(|source| ManifestError::Build {
            what: "index",
            source,
        })
}

/// Canonical JSON bytes (sorted keys, compact) of a manifest or index.
pub fn to_bytes<T: serde::Serialize>(
    what: &'static str,
    value: &T,
) -> Result<Vec<u8>, ManifestError> {
    super::canonical_json(value).map_err(|source| ManifestError::Json { what, source })
}
