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

    #[error("cannot open layer dir {path}")]
    OpenLayerDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("layer dir {path} is not empty")]
    NotEmpty { path: PathBuf },

    #[error("cannot read the layer tar being extracted into {path}")]
    ReadTar {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("tar entry {path}: invalid header")]
    BadHeader {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("tar entry {path}: absolute names and names with .. components are refused")]
    UnsafePath { path: PathBuf },

    #[error("tar entry {path}: unsupported entry type {kind:?}")]
    UnsupportedEntry { path: PathBuf, kind: char },

    #[error("tar entry {path}: hard link target {target} is not an earlier entry of this layer")]
    HardlinkTarget { path: PathBuf, target: PathBuf },

    #[error("tar entry {path}: a 0/0 character device would become an overlay whiteout")]
    WhiteoutDevice { path: PathBuf },

    #[error("tar entry {path}: xattr {name} would become overlay metadata")]
    OverlayXattr { path: PathBuf, name: String },

    #[error("cannot extract tar entry {path}")]
    Extract {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "tar entry {path}: the layer needs uid {uid} / gid {gid}, which the user namespace does not map; add a subordinate id range for your user in /etc/subuid and /etc/subgid"
    )]
    UnmappedId { path: PathBuf, uid: u64, gid: u64 },
}
