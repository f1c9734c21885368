//! ADD of local archives: a source file that is a tar (plain, gzip, bzip2, xz or zstd, told
//! by its content, not its name) is extracted into the destination directory. Every path is
//! resolved inside the image; `..` and absolute names stay below the destination.

use std::os::fd::OwnedFd;

use boundary::decompress::Compression;
use boundary::{ExtractOptions, Format, Ownership};

use super::rootfs::ImageFsError;
use crate::context::SourceEntry;

/// What `entry` is, if it is an archive ADD extracts: its compression told by magic bytes,
/// and a tar inside (checked by the first header's checksum, so gzipped text is copied as it
/// is, and old v7 tars without the `ustar` magic are still archives).
pub fn archive_kind(entry: &SourceEntry) -> Option<Compression> {
    boundary::decompress::archive_compression(entry.open().ok()?)
}

/// Extracts the archive `entry` into `dest` (a directory in the image, created when
/// missing). The destination is the root every name and symlink of the archive resolves in,
/// as BuildKit does: `up -> ..` then `up/x` writes `dest/x`, `abs -> /etc` then `abs/passwd`
/// writes `dest/etc/passwd`. Owners come from the archive unless `owner` is given (--chown);
/// devices and FIFOs are skipped, as unprivileged BuildKit does.
pub fn extract_archive(
    root: &OwnedFd,
    entry: &SourceEntry,
    dest: &str,
    owner: Option<(u32, u32)>,
) -> Result<(), ImageFsError> {
    let archive = &entry.host_path;
    let source_error = |action| {
        move |source| ImageFsError::Source {
            action,
            path: archive.clone(),
            source,
        }
    };
    let file = entry.open().map_err(source_error("open"))?;
    let (_, stream) =
        boundary::decompress::decompressing_reader(file).map_err(source_error("read"))?;
    // The destination ADD creates belongs to --chown's owner, as BuildKit's unpack makes it
    // (copy.MkdirAll with the chowner; conformance case add-009-tar-chown).
    let dest_fd = super::rootfs::mkdir_all_in_root(root, dest, 0o755, owner.unwrap_or((0, 0)))?;
    let options = ExtractOptions {
        format: Format::Plain,
        ownership: match owner {
            Some((uid, gid)) => Ownership::Fixed(uid, gid),
            None => Ownership::Archive,
        },
        special_files: false,
        links: true,
        // An archive's `user.*` and `security.capability` xattrs are kept, as BuildKit's
        // unpacking keeps them.
        xattrs: true,
    };
    boundary::extract_tar(stream, &dest_fd, options).map_err(|source| ImageFsError::Extract {
        archive: archive.clone(),
        dest: dest.to_string(),
        source,
    })?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // fixtures the tests create
mod tests {
    use super::*;

    #[test]
    fn archives_are_told_by_content() {
        use std::io::Write;
        let dir = tempfile::tempdir().expect("tempdir");
        // written into a context, then selected as COPY/ADD would select it
        let write = |name: &str, bytes: &[u8]| {
            std::fs::write(dir.path().join(name), bytes).expect("write");
            let context = crate::context::BuildContext::open(dir.path()).expect("context");
            context.select(name).expect("select")[0].entries[0].clone()
        };
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(2);
        header.set_cksum();
        builder
            .append_data(&mut header, "f", &b"hi"[..])
            .expect("append");
        let tar_bytes = builder.into_inner().expect("tar");
        let gzip = |bytes: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(bytes).expect("gzip");
            e.finish().expect("gzip")
        };
        assert_eq!(
            archive_kind(&write("plain.bin", &tar_bytes)),
            Some(Compression::None)
        );
        assert_eq!(
            archive_kind(&write("x", &gzip(&tar_bytes))),
            Some(Compression::Gzip)
        );
        assert_eq!(
            archive_kind(&write(
                "z",
                &zstd::encode_all(&tar_bytes[..], 3).expect("zstd")
            )),
            Some(Compression::Zstd)
        );
        assert_eq!(
            archive_kind(&write("notes.txt.gz", &gzip(b"plain text, not a tar"))),
            None,
            "gzipped text is a file"
        );
        assert_eq!(
            archive_kind(&write("named.tar.gz", b"just text")),
            None,
            "names do not count"
        );
        assert_eq!(archive_kind(&write("empty", b"")), None);
    }
}
