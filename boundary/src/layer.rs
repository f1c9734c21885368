//! The names and xattrs that carry meaning in a layer: OCI whiteouts in a tar, overlayfs
//! metadata in a layer dir. Shared by the extractor (tar -> dir) and rbuild's layer writer
//! (dir -> tar) so both sides agree on what is metadata.

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

#[cfg(test)]
mod tests {
    use super::*;

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
