//! Paths inside the image being built, resolved against its mounted root (see
//! `worker::MountedRootfs`): opened and created in-root, never through the host.

use std::os::fd::OwnedFd;

use rustix::fs::OFlags;

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
) -> Result<OwnedFd, String> {
    boundary::mkdir_all_in_root(root, path, mode, Some(owner)).map_err(|e| match e {
        boundary::RootError::Io { source, .. } if source.raw_os_error() == Some(libc::EINVAL) => {
            super::copy::chown_error(path, owner, rustix::io::Errno::INVAL)
        }
        boundary::RootError::NotADirectory { path } => {
            format!("{path} exists in the image and is not a directory")
        }
        e => crate::error_chain(&e),
    })
}
