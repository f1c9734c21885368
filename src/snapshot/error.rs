//! Errors of the snapshot module.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while converting layer dirs and layer tars.
///
/// `path` is a file system path for errors about the layer dir, and the entry name as written in
/// the tar for errors about a tar entry.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{path} changed while it was being archived")]
    Changed { path: PathBuf },

    #[error("cannot write the tar entry for {path}")]
    WriteTar {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "{path}: a step may not create a file named .wh.* (in a layer tar that name means a deletion)"
    )]
    WhiteoutName { path: PathBuf },

    #[error("cannot extract a layer into {path}")]
    Extract {
        path: PathBuf,
        #[source]
        source: boundary::ExtractError,
    },
}
