//! Paths inside the image being built, resolved against its mounted root (see
//! `worker::MountedRootfs`): opened and created in-root, never through the host.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use rustix::fs::OFlags;

/// A write into the image being built that failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageFsError {
    #[error(
        "chown {path} to {uid}:{gid}: the id is not mapped in the user namespace (add a \
         subordinate id range in /etc/subuid and /etc/subgid)"
    )]
    Unmapped { path: String, uid: u32, gid: u32 },
    #[error("{path} exists in the image and is not a directory")]
    NotADirectory { path: String },
    #[error(
        "{path}: --isolation none never writes at or below a mount point of the container \
         (a volume holds the host's data) or a path the build uses; the destination is, or \
         resolves to, one: pick another"
    )]
    Kept { path: String },
    #[error(transparent)]
    Root(boundary::RootError),
    /// A source file (context, archive) could not be read.
    #[error("{action} {}", path.display())]
    Source {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Write(#[from] boundary::write::WriteError),
    #[error("extract {} into {dest}", archive.display())]
    Extract {
        archive: PathBuf,
        dest: String,
        #[source]
        source: boundary::ExtractError,
    },
}

/// Opens `path` (absolute, in image terms) inside `root`: symlinks resolve against the image's
/// root, `..` cannot climb out, /proc magic links are refused.
pub fn open_in_root(root: &OwnedFd, path: &str, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    boundary::open_in_root(root, path, flags)
}

/// `mkdir -p` inside the image; created dirs get `mode` and `owner`. Returns a dirfd of `path`.
/// A dangling symlink on the way is followed inside the image and its target made there.
pub fn mkdir_all_in_root(
    root: &OwnedFd,
    path: &str,
    mode: u32,
    owner: (u32, u32),
) -> Result<OwnedFd, ImageFsError> {
    boundary::mkdir_all_in_root(root, path, mode, Some(owner)).map_err(|e| match e {
        // EINVAL from fchown: the owner has no id in rbuild's user namespace.
        boundary::RootError::Io { source, .. } if source.raw_os_error() == Some(libc::EINVAL) => {
            ImageFsError::Unmapped {
                path: path.to_string(),
                uid: owner.0,
                gid: owner.1,
            }
        }
        boundary::RootError::NotADirectory { path } => ImageFsError::NotADirectory { path },
        e => ImageFsError::Root(e),
    })
}
