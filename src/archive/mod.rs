//! Image archives: writing OCI and Docker archives from the store (`save`, `--output`), and
//! loading OCI layouts, OCI archives and Docker archives into it (`load`).

mod import;
mod load;
pub mod output;
mod rootfs;
mod save;

pub use import::{import_image, import_layer, import_layer_blob, LoadedImage};
pub use load::load;
pub use rootfs::{export_local, export_tar, LocalReport};
pub(crate) use save::each_layer;
pub use save::{
    describe, describe_platforms, gzip_blob, layer_blob, layer_blob_with, manifest_annotations,
    output_temp_file, save, save_platforms, save_with, ArchiveDest, ArchiveFormat, BaseImage,
    Compression, ExportOptions, ExportedImage, ExportedIndex, MediaTypes, PlatformImage,
    ANNOTATION_BASE_DIGEST, ANNOTATION_BASE_NAME, ANNOTATION_CREATED,
};

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
    #[error(transparent)]
    Manifest(#[from] crate::image::manifest::ManifestError),
    /// The layers could not be mounted as one view.
    #[error(transparent)]
    Setup(#[from] rbuild_runtime::SetupError),
    /// An entry of a `type=local` output could not be written.
    #[error(transparent)]
    Write(#[from] boundary::write::WriteError),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The image's filesystem could not be mounted as one view.
    #[error(transparent)]
    Worker(#[from] crate::worker::WorkerError),
    #[error("manifest annotations need OCI media types: use --format oci")]
    AnnotationsNeedOci,
    #[error("{path}: {message}")]
    Invalid {
        path: std::path::PathBuf,
        message: String,
    },
}

pub(crate) fn io_err<'p>(
    action: &'static str,
    path: &'p std::path::Path,
) -> impl FnOnce(std::io::Error) -> ArchiveError + 'p {
    move |source| ArchiveError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}
