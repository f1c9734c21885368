//! ADD of local archives: a source file that is a tar (plain, gzip, bzip2, xz or zstd, told
//! by its content, not its name) is extracted into the destination directory. Every path is
//! resolved inside the image; `..` and absolute names stay below the destination.

use std::io::{BufReader, Read};
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags};

use super::copy::{join_image_path, set_owner_mode, timestamps};
use super::rootfs::mkdir_all_in_root;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    Tar,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

/// What `path` is, if it is an archive ADD extracts: its compression told by magic bytes,
/// and a tar inside (checked by the first header's checksum, so gzipped text is copied as it
/// is, and old v7 tars without the `ustar` magic are still archives).
pub fn archive_kind(path: &Path) -> Option<ArchiveKind> {
    let mut head = [0u8; 6];
    let mut file = std::fs::File::open(path).ok()?;
    let n = read_full(&mut file, &mut head);
    let head = &head[..n];
    let kind = if head.starts_with(&[0x1f, 0x8b]) {
        ArchiveKind::Gzip
    } else if head.starts_with(b"BZh") {
        ArchiveKind::Bzip2
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        ArchiveKind::Xz
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        ArchiveKind::Zstd
    } else {
        ArchiveKind::Tar
    };
    let mut stream = tar_stream(path, kind).ok()?;
    let mut block = [0u8; 512];
    (read_full(&mut stream, &mut block) == 512 && is_tar_header(&block)).then_some(kind)
}

fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => filled += n,
        }
    }
    filled
}

/// A tar header block: a name, and a checksum (bytes 148..156, octal) equal to the sum of the
/// block's bytes with the checksum field counted as spaces.
fn is_tar_header(block: &[u8; 512]) -> bool {
    if block[0] == 0 {
        return false;
    }
    let field = String::from_utf8_lossy(&block[148..156]);
    let Ok(stored) = u32::from_str_radix(field.trim_matches(|c: char| c == '\0' || c == ' '), 8)
    else {
        return false;
    };
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    sum == stored
}

/// The archive's tar stream, decompressed as it is read (xz through a pipe from a thread, as
/// its decoder only writes).
fn tar_stream(path: &Path, kind: ArchiveKind) -> std::io::Result<Box<dyn Read + Send>> {
    let file = std::fs::File::open(path)?;
    Ok(match kind {
        ArchiveKind::Tar => Box::new(file),
        ArchiveKind::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
        ArchiveKind::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(file)),
        ArchiveKind::Zstd => Box::new(zstd::stream::read::Decoder::new(file)?),
        ArchiveKind::Xz => {
            let (reader, mut writer) = std::io::pipe()?;
            std::thread::spawn(move || {
                let mut input = BufReader::new(file);
                let _ = lzma_rs::xz_decompress(&mut input, &mut writer);
            });
            Box::new(reader)
        }
    })
}

/// Tar entry names, cleaned: no leading `/` or `./`, `..` clamped at the destination (the
/// same lexical cleaning as context paths).
fn clean_entry_name(name: &str) -> String {
    crate::context::clean_relative(name)
}

/// Extracts the archive at `archive` into `dest` (a directory in the image). Owners come from
/// the archive unless `owner` is given (--chown).
pub fn extract_archive(
    root: &OwnedFd,
    archive: &Path,
    kind: ArchiveKind,
    dest: &str,
    owner: Option<(u32, u32)>,
) -> Result<(), String> {
    let stream =
        tar_stream(archive, kind).map_err(|e| format!("open {}: {e}", archive.display()))?;
    let mut tar = tar::Archive::new(stream);
    mkdir_all_in_root(root, dest, 0o755, (0, 0))?;
    let mut dir_times: Vec<(String, i64)> = Vec::new();
    let entries = tar
        .entries()
        .map_err(|e| format!("read {}: {e}", archive.display()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("read {}: {e}", archive.display()))?;
        let raw_name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = clean_entry_name(&raw_name);
        if name.is_empty() {
            continue;
        }
        let target = join_image_path(dest, &name);
        let header = entry.header();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let entry_owner = owner.unwrap_or((
            header.uid().unwrap_or(0) as u32,
            header.gid().unwrap_or(0) as u32,
        ));
        let mtime = header.mtime().unwrap_or(0) as i64;
        let kind = header.entry_type();
        let (parent, file_name) = target.rsplit_once('/').unwrap_or(("", target.as_str()));
        let parent = if parent.is_empty() { "/" } else { parent };
        let parent_fd = mkdir_all_in_root(root, parent, 0o755, (0, 0))?;
        let existing = rustix::fs::statat(&parent_fd, file_name, AtFlags::SYMLINK_NOFOLLOW).ok();
        let existing_is_dir = existing
            .as_ref()
            .is_some_and(|st| (st.st_mode & libc::S_IFMT) == libc::S_IFDIR);
        if kind.is_dir() {
            if existing.is_some() && !existing_is_dir {
                rustix::fs::unlinkat(&parent_fd, file_name, AtFlags::empty())
                    .map_err(|e| format!("replace {target}: {e}"))?;
            }
            if !existing_is_dir {
                rustix::fs::mkdirat(&parent_fd, file_name, Mode::from_raw_mode(0o755))
                    .map_err(|e| format!("mkdir {target}: {e}"))?;
            }
            let fd = rustix::fs::openat(
                &parent_fd,
                file_name,
                OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| format!("open {target}: {e}"))?;
            set_owner_mode(&fd, entry_owner, mode, &target)?;
            dir_times.push((target.clone(), mtime));
            continue;
        }
        if existing_is_dir {
            return Err(format!(
                "cannot extract {raw_name}: {target} is a directory"
            ));
        }
        if existing.is_some() {
            rustix::fs::unlinkat(&parent_fd, file_name, AtFlags::empty())
                .map_err(|e| format!("replace {target}: {e}"))?;
        }
        let times = timestamps(mtime, 0);
        if kind.is_symlink() {
            let link = entry
                .link_name()
                .ok()
                .flatten()
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default();
            rustix::fs::symlinkat(link.as_str(), &parent_fd, file_name)
                .map_err(|e| format!("symlink {target}: {e}"))?;
            rustix::fs::chownat(
                &parent_fd,
                file_name,
                Some(rustix::fs::Uid::from_raw(entry_owner.0)),
                Some(rustix::fs::Gid::from_raw(entry_owner.1)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| format!("chown {target}: {e}"))?;
            let _ = rustix::fs::utimensat(&parent_fd, file_name, &times, AtFlags::SYMLINK_NOFOLLOW);
        } else if kind.is_hard_link() {
            let link = entry
                .link_name()
                .ok()
                .flatten()
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default();
            let link_target = join_image_path(dest, &clean_entry_name(&link));
            let (link_parent, link_name) = link_target
                .rsplit_once('/')
                .unwrap_or(("", link_target.as_str()));
            let link_parent_fd = super::rootfs::open_in_root(
                root,
                if link_parent.is_empty() {
                    "/"
                } else {
                    link_parent
                },
                OFlags::DIRECTORY,
            )
            .map_err(|e| format!("hard link {target} -> {link}: {e}"))?;
            rustix::fs::linkat(
                &link_parent_fd,
                link_name,
                &parent_fd,
                file_name,
                AtFlags::empty(),
            )
            .map_err(|e| format!("hard link {target} -> {link}: {e}"))?;
        } else if kind.is_file() || kind == tar::EntryType::Continuous {
            let fd = rustix::fs::openat(
                &parent_fd,
                file_name,
                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
            .map_err(|e| format!("create {target}: {e}"))?;
            let mut out = std::fs::File::from(fd);
            std::io::copy(&mut entry, &mut out).map_err(|e| format!("write {target}: {e}"))?;
            let fd = OwnedFd::from(out);
            set_owner_mode(&fd, entry_owner, mode, &target)?;
            rustix::fs::futimens(&fd, &times).map_err(|e| format!("set times of {target}: {e}"))?;
        }
        // Devices, fifos and other special entries are skipped, as unprivileged BuildKit does.
    }
    for (path, mtime) in dir_times.iter().rev() {
        if let Ok(fd) = super::rootfs::open_in_root(root, path, OFlags::DIRECTORY) {
            let _ = rustix::fs::futimens(&fd, &timestamps(*mtime, 0));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_are_told_by_content() {
        use std::io::Write;
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).expect("write");
            path
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
            Some(ArchiveKind::Tar)
        );
        assert_eq!(
            archive_kind(&write("x", &gzip(&tar_bytes))),
            Some(ArchiveKind::Gzip)
        );
        assert_eq!(
            archive_kind(&write(
                "z",
                &zstd::encode_all(&tar_bytes[..], 3).expect("zstd")
            )),
            Some(ArchiveKind::Zstd)
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

    #[test]
    fn entry_names_stay_below_the_destination() {
        assert_eq!(clean_entry_name("./a/b"), "a/b");
        assert_eq!(clean_entry_name("/abs/x"), "abs/x");
        assert_eq!(clean_entry_name("../../etc/passwd"), "etc/passwd");
        assert_eq!(clean_entry_name("a/../../b"), "b");
    }
}
