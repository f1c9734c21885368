//! Tar archives for tests: [`TarEntry`] lists written by [`layer_tar`] (valid GNU headers,
//! long names allowed), and [`RawTar`] for headers written byte for byte (names with `..`,
//! absolute paths, links anywhere), as a hostile archive would have them.

use ::tar::{EntryType, Header};

const FIXED_MTIME: u64 = 1_700_000_000;

/// What a tar entry is.
#[derive(Clone, Debug)]
pub enum EntryKind {
    File(Vec<u8>),
    Dir,
    Symlink(String),
    Hardlink(String),
    CharDev(u32, u32),
    BlockDev(u32, u32),
    Fifo,
}

/// One raw tar entry, written exactly as given (paths are not normalized or deduplicated).
#[derive(Clone, Debug)]
pub struct TarEntry {
    pub path: String,
    pub kind: EntryKind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    /// Written as PAX `SCHILY.xattr.NAME` records.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

impl TarEntry {
    fn new(path: &str, kind: EntryKind, mode: u32) -> TarEntry {
        TarEntry {
            path: path.to_string(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: FIXED_MTIME,
            xattrs: Vec::new(),
        }
    }

    /// A regular file, mode 0644.
    pub fn file(path: &str, bytes: impl AsRef<[u8]>) -> TarEntry {
        TarEntry::new(path, EntryKind::File(bytes.as_ref().to_vec()), 0o644)
    }

    /// A directory, mode 0755 (written as `path/`).
    pub fn dir(path: &str) -> TarEntry {
        let path = format!("{}/", path.trim_end_matches('/'));
        TarEntry::new(&path, EntryKind::Dir, 0o755)
    }

    pub fn symlink(path: &str, target: &str) -> TarEntry {
        TarEntry::new(path, EntryKind::Symlink(target.to_string()), 0o777)
    }

    pub fn hardlink(path: &str, target: &str) -> TarEntry {
        TarEntry::new(path, EntryKind::Hardlink(target.to_string()), 0o644)
    }

    pub fn char_dev(path: &str, major: u32, minor: u32) -> TarEntry {
        TarEntry::new(path, EntryKind::CharDev(major, minor), 0o666)
    }

    pub fn block_dev(path: &str, major: u32, minor: u32) -> TarEntry {
        TarEntry::new(path, EntryKind::BlockDev(major, minor), 0o660)
    }

    pub fn fifo(path: &str) -> TarEntry {
        TarEntry::new(path, EntryKind::Fifo, 0o644)
    }

    /// The whiteout that deletes `path` from lower layers (`DIR/.wh.NAME`).
    pub fn whiteout(path: &str) -> TarEntry {
        let path = path.trim_end_matches('/');
        let whiteout = match path.rsplit_once('/') {
            Some((parent, name)) => format!("{parent}/.wh.{name}"),
            None => format!(".wh.{path}"),
        };
        TarEntry::file(&whiteout, b"")
    }

    /// The marker that hides `dir`'s lower contents (`DIR/.wh..wh..opq`).
    pub fn opaque(dir: &str) -> TarEntry {
        let dir = dir.trim_end_matches('/');
        let marker = if dir.is_empty() {
            ".wh..wh..opq".to_string()
        } else {
            format!("{dir}/.wh..wh..opq")
        };
        TarEntry::file(&marker, b"")
    }

    pub fn mode(mut self, mode: u32) -> TarEntry {
        self.mode = mode;
        self
    }

    pub fn owner(mut self, uid: u64, gid: u64) -> TarEntry {
        self.uid = uid;
        self.gid = gid;
        self
    }

    pub fn mtime(mut self, mtime: u64) -> TarEntry {
        self.mtime = mtime;
        self
    }

    pub fn xattr(mut self, name: &str, value: impl AsRef<[u8]>) -> TarEntry {
        self.xattrs
            .push((name.to_string(), value.as_ref().to_vec()));
        self
    }
}

/// A tar stream of `entries` in order (GNU headers, long names allowed).
pub fn layer_tar(entries: &[TarEntry]) -> Vec<u8> {
    let mut builder = ::tar::Builder::new(Vec::new());
    for entry in entries {
        if !entry.xattrs.is_empty() {
            let records: Vec<(String, Vec<u8>)> = entry
                .xattrs
                .iter()
                .map(|(name, value)| (format!("SCHILY.xattr.{name}"), value.clone()))
                .collect();
            builder
                .append_pax_extensions(
                    records
                        .iter()
                        .map(|(key, value)| (key.as_str(), value.as_slice())),
                )
                .expect("append pax records");
        }
        let mut header = ::tar::Header::new_gnu();
        header.set_mode(entry.mode);
        header.set_uid(entry.uid);
        header.set_gid(entry.gid);
        header.set_mtime(entry.mtime);
        header.set_size(0);
        let result = match &entry.kind {
            EntryKind::File(bytes) => {
                header.set_entry_type(::tar::EntryType::Regular);
                header.set_size(bytes.len() as u64);
                builder.append_data(&mut header, &entry.path, bytes.as_slice())
            }
            EntryKind::Dir => {
                header.set_entry_type(::tar::EntryType::Directory);
                builder.append_data(&mut header, &entry.path, std::io::empty())
            }
            EntryKind::Symlink(target) | EntryKind::Hardlink(target) => {
                let entry_type = if matches!(entry.kind, EntryKind::Symlink(_)) {
                    ::tar::EntryType::Symlink
                } else {
                    ::tar::EntryType::Link
                };
                header.set_entry_type(entry_type);
                builder.append_link(&mut header, &entry.path, target)
            }
            EntryKind::CharDev(major, minor) | EntryKind::BlockDev(major, minor) => {
                let entry_type = if matches!(entry.kind, EntryKind::CharDev(..)) {
                    ::tar::EntryType::Char
                } else {
                    ::tar::EntryType::Block
                };
                header.set_entry_type(entry_type);
                header.set_device_major(*major).expect("device major");
                header.set_device_minor(*minor).expect("device minor");
                builder.append_data(&mut header, &entry.path, std::io::empty())
            }
            EntryKind::Fifo => {
                header.set_entry_type(::tar::EntryType::Fifo);
                builder.append_data(&mut header, &entry.path, std::io::empty())
            }
        };
        result.unwrap_or_else(|e| panic!("tar entry `{}`: {e}", entry.path));
    }
    builder.into_inner().expect("finish the tar")
}

/// A ustar header for `name` (at most 100 bytes, copied as is), owned by 0:0, mode 0644.
pub fn raw_header(name: &[u8], kind: EntryType, size: u64, mtime: u64) -> Header {
    let mut h = Header::new_ustar();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime);
    h
}

/// A tar written header by header, names and link targets copied in as bytes: nothing is
/// validated or normalised.
pub struct RawTar {
    builder: ::tar::Builder<Vec<u8>>,
    mtime: u64,
}

impl Default for RawTar {
    fn default() -> Self {
        RawTar::new()
    }
}

impl RawTar {
    pub fn new() -> RawTar {
        RawTar {
            builder: ::tar::Builder::new(Vec::new()),
            mtime: FIXED_MTIME,
        }
    }

    /// The mtime of the entries added after this.
    pub fn mtime(mut self, mtime: u64) -> RawTar {
        self.mtime = mtime;
        self
    }

    /// A header of this archive's mtime (see [`raw_header`]).
    pub fn header(&self, name: &[u8], kind: EntryType, size: u64) -> Header {
        raw_header(name, kind, size, self.mtime)
    }

    /// Appends `header` (its checksum set) and `data`.
    pub fn raw(mut self, mut header: Header, data: &[u8]) -> RawTar {
        header.set_cksum();
        self.builder
            .append(&header, data)
            .expect("append a raw tar entry");
        self
    }

    pub fn file(self, name: &str, data: &[u8]) -> RawTar {
        let h = self.header(name.as_bytes(), EntryType::Regular, data.len() as u64);
        self.raw(h, data)
    }

    pub fn dir(self, name: &str, mode: u32) -> RawTar {
        let mut h = self.header(name.as_bytes(), EntryType::Directory, 0);
        h.set_mode(mode);
        self.raw(h, b"")
    }

    /// A symlink or hard link (`kind`) named `name` pointing at `target`.
    pub fn link(self, name: &str, kind: EntryType, target: &str) -> RawTar {
        let mut h = self.header(name.as_bytes(), kind, 0);
        h.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
        self.raw(h, b"")
    }

    /// PAX extension records for the next entry.
    pub fn pax(mut self, records: &[(&str, &[u8])]) -> RawTar {
        self.builder
            .append_pax_extensions(records.iter().copied())
            .expect("append pax records");
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.builder.into_inner().expect("finish the tar")
    }
}
