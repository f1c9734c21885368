//! What can go wrong writing a build's result where it was asked to go.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot write {dest}")]
    Write {
        dest: String,
        #[source]
        source: crate::archive::ArchiveError,
    },
    #[error("cannot write {}", path.display())]
    WriteFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot describe the image for --metadata-file")]
    Describe(#[source] crate::archive::ArchiveError),
    #[error("{what} {name}")]
    Name {
        what: &'static str,
        name: String,
        #[source]
        source: crate::image::ReferenceError,
    },
    #[error("cannot push to {dest}: a digest names content, give a tag instead")]
    PushToDigest { dest: String },
    #[error("cannot push {reference}")]
    Push {
        reference: String,
        #[source]
        source: crate::registry::RegistryError,
    },
    #[error("--push needs at least one -t NAME[:TAG] to push to")]
    PushWithoutName,
    #[error("--output: only one output can go to stdout")]
    TwoOnStdout,
    #[error(
        "the pushed manifest {pushed} is not the one described ({described}): a bug, please report it"
    )]
    PushedIsNotDescribed { pushed: String, described: String },
    #[error(
        "--platform {platforms}: {what} is not supported yet with several platforms; name the \
         image index with -t NAME (and --push it), write it with --output \
         type=oci,dest=FILE (or type=local,dest=DIR for one directory per platform), or \
         build each platform with its own --platform"
    )]
    SeveralPlatforms {
        platforms: String,
        what: &'static str,
    },
    #[error("export the build cache to {location}")]
    Cache {
        location: String,
        #[source]
        source: crate::cache::CacheError,
    },
    #[error(transparent)]
    Archive(#[from] crate::archive::ArchiveError),
    #[error(transparent)]
    Load(#[from] super::load::LoadError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}
