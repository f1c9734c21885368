//! The names and xattrs that carry meaning in a layer: OCI whiteouts in a tar, overlayfs
//! metadata in a layer dir. Shared by the extractor (tar -> dir) and rbuild's layer writer
//! (dir -> tar) so both sides agree on what is metadata.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs as rfs;
use rustix::io::Errno;

/// Prefix of whiteout names in a layer tar.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// Name of the opaque-dir marker in a layer tar.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// The xattr overlayfs (mounted with `userxattr`) reads to find opaque directories.
pub const OPAQUE_XATTR: &str = "user.overlay.opaque";
/// The same marker when overlayfs runs without `userxattr` (real root).
pub const OPAQUE_XATTR_TRUSTED: &str = "trusted.overlay.opaque";

/// True for xattrs overlayfs interprets (`trusted.overlay.*`, `user.overlay.*`, ...).
pub fn is_overlay_xattr(name: &[u8]) -> bool {
    let mut parts = name.splitn(3, |&b| b == b'.');
    let _namespace = parts.next();
    parts.next() == Some(b"overlay".as_slice()) && parts.next().is_some()
}

/// The xattrs a layer carries: `user.*` (minus overlay's) and `security.capability`.
pub fn keep_xattr(name: &[u8]) -> bool {
    (name.starts_with(b"user.") && !is_overlay_xattr(name)) || name == b"security.capability"
}

/// xattrs as (name, value) pairs, sorted by name.
pub type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// The kept xattrs (`keep_xattr`) of the entry `name` in `dir`, without following it if it is
/// a symlink: `name` is one component, reached through the directory's descriptor
/// (`/proc/self/fd/N/name`), so nothing in the tree can redirect the read. A file system
/// without xattrs has none.
pub fn kept_xattrs_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<Xattrs> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let path = format!("/proc/self/fd/{}/{name}", dir.as_raw_fd());
    read_kept(&path, false)
}

/// The kept xattrs of the file or directory `fd` itself (an `O_PATH` descriptor will do).
pub fn kept_xattrs_of(fd: BorrowedFd<'_>) -> io::Result<Xattrs> {
    read_kept(&format!("/proc/self/fd/{}", fd.as_raw_fd()), true)
}

fn read_kept(path: &str, follow: bool) -> io::Result<Xattrs> {
    let unsupported = |e: &Errno| matches!(*e, Errno::NOTSUP | Errno::NODATA);
    let size = if follow {
        rfs::listxattr_query(path)
    } else {
        rfs::llistxattr_query(path)
    };
    let size = match size {
        Ok(0) => return Ok(Vec::new()),
        Ok(n) => n,
        Err(e) if unsupported(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut names = vec![0u8; size];
    let len = if follow {
        rfs::listxattr(path, &mut names[..])?
    } else {
        rfs::llistxattr(path, &mut names[..])?
    };
    names.truncate(len);
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if !keep_xattr(name) {
            continue;
        }
        let name_os = std::ffi::OsStr::from_bytes(name);
        let size = if follow {
            rfs::getxattr_query(path, name_os)
        } else {
            rfs::lgetxattr_query(path, name_os)
        };
        let size = match size {
            Ok(n) => n,
            Err(e) if unsupported(&e) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut value = vec![0u8; size];
        let len = if follow {
            rfs::getxattr(path, name_os, &mut value[..])?
        } else {
            rfs::lgetxattr(path, name_os, &mut value[..])?
        };
        value.truncate(len);
        out.push((name.to_vec(), value));
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn kept_xattrs_are_read_by_descriptor() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("f");
        std::fs::write(&file, "x").expect("write");
        if rfs::setxattr(&file, "user.note", b"hi", rfs::XattrFlags::empty()).is_err() {
            // The test machine's temp dir takes no user xattrs: nothing to read back.
            return;
        }
        rfs::setxattr(&file, "user.overlay.origin", b"o", rfs::XattrFlags::empty())
            .expect("second xattr");
        let root = rfs::open(dir.path(), rfs::OFlags::PATH, rfs::Mode::empty()).expect("open");
        let want = vec![(b"user.note".to_vec(), b"hi".to_vec())];
        assert_eq!(kept_xattrs_at(root.as_fd(), "f").expect("read"), want);
        let fd = rfs::open(&file, rfs::OFlags::PATH, rfs::Mode::empty()).expect("open file");
        assert_eq!(kept_xattrs_of(fd.as_fd()).expect("read"), want);
        assert!(kept_xattrs_at(root.as_fd(), "../f").is_err());
    }

    #[test]
    fn overlay_xattrs_are_told_apart() {
        for name in [
            "user.overlay.origin",
            "trusted.overlay.opaque",
            "user.overlay.impure",
        ] {
            assert!(is_overlay_xattr(name.as_bytes()), "{name}");
            assert!(!keep_xattr(name.as_bytes()), "{name}");
        }
        for name in ["user.mime", "security.capability"] {
            assert!(keep_xattr(name.as_bytes()), "{name}");
        }
        assert!(!keep_xattr(b"trusted.x"));
        assert!(!is_overlay_xattr(b"user.overlay"));
    }
}
