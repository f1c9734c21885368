//! Layer dir (overlay upper-dir format) -> OCI layer tar.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use tar::{EntryType, Header};
use walkdir::WalkDir;

use super::digest::{Digest, DigestWriter};
use super::error::SnapshotError;

use boundary::layer::keep_xattr;
pub use boundary::layer::{OPAQUE_MARKER, OPAQUE_XATTR, OPAQUE_XATTR_TRUSTED, WHITEOUT_PREFIX};

const BLOCK: usize = 512;
const COPY_BUF: usize = 128 * 1024;
/// Largest value of an 8-byte octal header field (mode, uid, gid, devmajor, devminor).
const MAX_OCTAL_8: u64 = 0o7777777;
/// Largest value of a 12-byte octal header field (size, mtime).
const MAX_OCTAL_12: u64 = 0o77777777777;

/// Extended attributes as (name, value) pairs, sorted by name.
pub(super) type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// Everything that goes into one tar header.
struct EntryMeta<'a> {
    name: &'a [u8],
    kind: EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: i64,
    size: u64,
    link: Option<&'a [u8]>,
    dev: (u32, u32),
    xattrs: &'a [(Vec<u8>, Vec<u8>)],
}

impl<'a> EntryMeta<'a> {
    /// An empty regular file with mode 0 and owner 0:0 (whiteouts and opaque markers).
    fn marker(name: &'a [u8], mtime: i64) -> Self {
        EntryMeta {
            name,
            kind: EntryType::Regular,
            mode: 0,
            uid: 0,
            gid: 0,
            mtime,
            size: 0,
            link: None,
            dev: (0, 0),
            xattrs: &[],
        }
    }
}

/// Split `name` into a ustar (prefix, name) pair, if it fits.
fn split_ustar(name: &[u8]) -> Option<(&[u8], &[u8])> {
    if name.len() <= 100 {
        return Some((&[], name));
    }
    if name.len() > 155 + 1 + 100 {
        return None;
    }
    name.iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'/')
        .map(|(i, _)| i)
        .find(|&i| i > 0 && i <= 155 && name.len() - i - 1 <= 100 && name.len() - i - 1 > 0)
        .map(|i| (&name[..i], &name[i + 1..]))
}

fn copy_field(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// One PAX record: `"<len> <key>=<value>\n"`, where len counts the whole record.
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = 3 + key.len() + value.len(); // ' ', '=', '\n'
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn padding(len: u64) -> usize {
    let rem = (len % BLOCK as u64) as usize;
    if rem == 0 {
        0
    } else {
        BLOCK - rem
    }
}

/// Write the header block(s) of one entry: a PAX extension header when needed, then ustar.
fn write_header<W: Write>(out: &mut W, e: &EntryMeta<'_>) -> io::Result<()> {
    let mut pax: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut h = Header::new_ustar();

    {
        let ustar = h
            .as_ustar_mut()
            .ok_or_else(|| io::Error::other("ustar header expected"))?;
        match split_ustar(e.name) {
            Some((prefix, name)) => {
                copy_field(&mut ustar.prefix, prefix);
                copy_field(&mut ustar.name, name);
            }
            None => {
                pax.push((b"path".to_vec(), e.name.to_vec()));
                copy_field(&mut ustar.name, e.name);
            }
        }
        if let Some(link) = e.link {
            if link.len() > 100 {
                pax.push((b"linkpath".to_vec(), link.to_vec()));
            }
            copy_field(&mut ustar.linkname, link);
        }
    }
    h.set_mode(e.mode & 0o7777);
    if e.uid > MAX_OCTAL_8 {
        pax.push((b"uid".to_vec(), e.uid.to_string().into_bytes()));
        h.set_uid(0);
    } else {
        h.set_uid(e.uid);
    }
    if e.gid > MAX_OCTAL_8 {
        pax.push((b"gid".to_vec(), e.gid.to_string().into_bytes()));
        h.set_gid(0);
    } else {
        h.set_gid(e.gid);
    }
    if e.size > MAX_OCTAL_12 {
        pax.push((b"size".to_vec(), e.size.to_string().into_bytes()));
        h.set_size(0);
    } else {
        h.set_size(e.size);
    }
    match u64::try_from(e.mtime) {
        Ok(t) if t <= MAX_OCTAL_12 => h.set_mtime(t),
        _ => {
            pax.push((b"mtime".to_vec(), e.mtime.to_string().into_bytes()));
            h.set_mtime(0);
        }
    }
    h.set_entry_type(e.kind);
    h.set_device_major(e.dev.0)?;
    h.set_device_minor(e.dev.1)?;
    for (name, value) in e.xattrs {
        let mut key = b"SCHILY.xattr.".to_vec();
        key.extend_from_slice(name);
        pax.push((key, value.clone()));
    }

    if !pax.is_empty() {
        pax.sort();
        let mut data = Vec::new();
        for (k, v) in &pax {
            pax_record(&mut data, k, v);
        }
        let base = e
            .name
            .strip_suffix(b"/")
            .unwrap_or(e.name)
            .rsplit(|&b| b == b'/')
            .next()
            .unwrap_or_default();
        let mut xname = b"PaxHeaders.0/".to_vec();
        xname.extend_from_slice(base);
        let mut xh = Header::new_ustar();
        if let Some(ustar) = xh.as_ustar_mut() {
            copy_field(&mut ustar.name, &xname);
        }
        xh.set_mode(0o644);
        xh.set_uid(0);
        xh.set_gid(0);
        xh.set_mtime(0);
        xh.set_size(data.len() as u64);
        xh.set_entry_type(EntryType::XHeader);
        xh.set_device_major(0)?;
        xh.set_device_minor(0)?;
        xh.set_cksum();
        out.write_all(xh.as_bytes())?;
        out.write_all(&data)?;
        out.write_all(&[0; BLOCK][..padding(data.len() as u64)])?;
    }
    h.set_cksum();
    out.write_all(h.as_bytes())
}

fn read_err(path: &Path) -> impl FnOnce(io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Read {
        path: path.to_path_buf(),
        source,
    }
}

fn write_err(path: &Path) -> impl FnOnce(io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::WriteTar {
        path: path.to_path_buf(),
        source,
    }
}

fn unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOTSUP) | Some(libc::ENODATA) | Some(libc::EPERM)
    )
}

/// The kept xattrs of `path` (not following symlinks), sorted by name.
fn read_xattrs(path: &Path) -> Result<Xattrs, SnapshotError> {
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if unsupported(&e) => return Ok(Vec::new()),
        Err(e) => return Err(read_err(path)(e)),
    };
    let mut out = Vec::new();
    for name in names {
        let bytes = name.as_bytes();
        if !keep_xattr(bytes) {
            continue;
        }
        match xattr::get(path, &name) {
            Ok(Some(value)) => out.push((bytes.to_vec(), value)),
            Ok(None) => {}
            Err(e) if unsupported(&e) => {}
            Err(e) => return Err(read_err(path)(e)),
        }
    }
    out.sort();
    Ok(out)
}

/// Whether the directory at `path` is an overlay opaque dir.
fn is_opaque(path: &Path) -> Result<bool, SnapshotError> {
    for name in [OPAQUE_XATTR, OPAQUE_XATTR_TRUSTED] {
        match xattr::get(path, name) {
            Ok(Some(v)) if v == b"y" => return Ok(true),
            Ok(_) => {}
            Err(e) if unsupported(&e) => {}
            Err(e) => return Err(read_err(path)(e)),
        }
    }
    Ok(false)
}

/// Stream exactly `size` bytes of the regular file at `path` into `out`, then pad the block.
// Boundary: opens a layer dir's entry with O_NOFOLLOW, found by a walk that follows no symlink.
#[allow(clippy::disallowed_methods)]
fn write_file_data<W: Write>(
    out: &mut W,
    path: &Path,
    size: u64,
    buf: &mut [u8],
) -> Result<(), SnapshotError> {
    let mut file: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(read_err(path))?;
    let mut left = size;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match file.read(&mut buf[..want]) {
            Ok(0) => {
                return Err(SnapshotError::Changed {
                    path: path.to_path_buf(),
                })
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(path)(e)),
        };
        out.write_all(&buf[..n]).map_err(write_err(path))?;
        left -= n as u64;
    }
    out.write_all(&[0; BLOCK][..padding(size)])
        .map_err(write_err(path))
}

fn join_name(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parent.len() + 1 + name.len());
    if !parent.is_empty() {
        out.extend_from_slice(parent);
        out.push(b'/');
    }
    out.extend_from_slice(name);
    out
}

/// Stream `layer_dir` (overlay upper-dir format) into `out` as an uncompressed OCI layer tar and
/// return `out`.
///
/// Entries come in one depth-first walk, siblings sorted by name bytes (so a directory always
/// precedes its contents and the bytes never depend on readdir order). Whiteouts (0/0 character
/// devices) become `.wh.NAME`, opaque dirs get `DIR/.wh..wh..opq` right after their entry;
/// whiteouts below an opaque dir are dropped (the opaque marker already hides everything of the
/// lower layers there). File contents are streamed, never buffered.
pub fn write_layer_tar<W: Write>(layer_dir: &Path, out: W) -> Result<W, SnapshotError> {
    write_layer_tar_clamped(layer_dir, out, None)
}

/// [`write_layer_tar`] with every mtime newer than `clamp_mtime` set to it (BuildKit's
/// `rewrite-timestamp` with `SOURCE_DATE_EPOCH`): files a build just made then carry no trace
/// of when it ran.
// Boundary: walks a layer dir rbuild made without following symlinks.
#[allow(clippy::disallowed_methods)]
pub fn write_layer_tar_clamped<W: Write>(
    layer_dir: &Path,
    out: W,
    clamp_mtime: Option<i64>,
) -> Result<W, SnapshotError> {
    let mut writer = LayerTarWriter {
        out,
        clamp_mtime,
        buf: vec![0u8; COPY_BUF],
        opaque: Vec::new(),
        links: HashMap::new(),
    };
    let root_meta = fs::symlink_metadata(layer_dir).map_err(read_err(layer_dir))?;
    if is_opaque(layer_dir)? {
        let marker = EntryMeta::marker(OPAQUE_MARKER.as_bytes(), writer.mtime_of(&root_meta));
        write_header(&mut writer.out, &marker).map_err(write_err(layer_dir))?;
        writer.opaque.push(0);
    }
    let walker = WalkDir::new(layer_dir)
        .min_depth(1)
        .follow_links(false)
        .sort_by(|a, b| a.file_name().as_bytes().cmp(b.file_name().as_bytes()));
    for item in walker {
        let item = item.map_err(|e| SnapshotError::Read {
            path: e.path().unwrap_or(layer_dir).to_path_buf(),
            source: e.into(),
        })?;
        writer.entry(layer_dir, &item)?;
    }
    let mut out = writer.out;
    out.write_all(&[0; 2 * BLOCK])
        .map_err(write_err(layer_dir))?;
    Ok(out)
}

/// The state of one layer tar being written: where it goes, the copy buffer, the opaque dirs
/// on the current walk path, and the first name of each hard-linked inode.
struct LayerTarWriter<W> {
    out: W,
    clamp_mtime: Option<i64>,
    buf: Vec<u8>,
    /// Depths of the opaque dirs on the current walk path (0 = the layer root).
    opaque: Vec<usize>,
    links: HashMap<(u64, u64), Vec<u8>>,
}

impl<W: Write> LayerTarWriter<W> {
    fn mtime_of(&self, meta: &fs::Metadata) -> i64 {
        self.clamp_mtime
            .map_or(meta.mtime(), |c| meta.mtime().min(c))
    }

    /// One walked entry: a whiteout marker, a hard link to an earlier name, or the entry.
    fn entry(&mut self, layer_dir: &Path, item: &walkdir::DirEntry) -> Result<(), SnapshotError> {
        let depth = item.depth();
        while self.opaque.last().is_some_and(|&d| d >= depth) {
            self.opaque.pop();
        }
        let path = item.path();
        let rel = path
            .strip_prefix(layer_dir)
            .map_err(|_| SnapshotError::Read {
                path: path.to_path_buf(),
                source: io::Error::other("walked path is outside the layer dir"),
            })?
            .as_os_str()
            .as_bytes();
        let file_name = item.file_name().as_bytes();
        let meta = item.metadata().map_err(|e| SnapshotError::Read {
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        let ft = meta.file_type();

        // whiteouts first: they are hard links of one another in an upper dir
        if ft.is_char_device() && meta.rdev() == 0 {
            if self.opaque.is_empty() {
                let parent_rel = &rel[..rel.len() - file_name.len()];
                let parent_rel = parent_rel.strip_suffix(b"/").unwrap_or(parent_rel);
                let mut wh = WHITEOUT_PREFIX.as_bytes().to_vec();
                wh.extend_from_slice(file_name);
                let name = join_name(parent_rel, &wh);
                let mtime = self.mtime_of(&meta);
                write_header(&mut self.out, &EntryMeta::marker(&name, mtime))
                    .map_err(write_err(path))?;
            }
            return Ok(());
        }
        if file_name.starts_with(WHITEOUT_PREFIX.as_bytes()) {
            return Err(SnapshotError::WhiteoutName {
                path: path.to_path_buf(),
            });
        }
        if ft.is_socket() {
            return Ok(()); // sockets cannot be archived (docker and buildkit skip them too)
        }
        let base = EntryMeta {
            name: rel,
            kind: EntryType::Regular,
            mode: meta.mode() & 0o7777,
            uid: u64::from(meta.uid()),
            gid: u64::from(meta.gid()),
            mtime: self.mtime_of(&meta),
            size: 0,
            link: None,
            dev: (0, 0),
            xattrs: &[],
        };
        if !ft.is_dir() && meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&key) {
                let e = EntryMeta {
                    kind: EntryType::Link,
                    link: Some(first),
                    ..base
                };
                return write_header(&mut self.out, &e).map_err(write_err(path));
            }
            self.links.insert(key, rel.to_vec());
        }
        self.node(path, &meta, base, depth)
    }

    /// A directory (and its opaque marker), symlink, file (its content streamed), FIFO or
    /// device.
    // Boundary: read_link only reads a link's own target in a layer dir rbuild walks.
    #[allow(clippy::disallowed_methods)]
    fn node(
        &mut self,
        path: &Path,
        meta: &fs::Metadata,
        base: EntryMeta,
        depth: usize,
    ) -> Result<(), SnapshotError> {
        let ft = meta.file_type();
        let rel = base.name;
        let xattrs = read_xattrs(path)?;
        let mut e = EntryMeta {
            xattrs: &xattrs,
            ..base
        };
        if ft.is_dir() {
            let mut name = rel.to_vec();
            name.push(b'/');
            let dir = EntryMeta {
                name: &name,
                kind: EntryType::Directory,
                ..e
            };
            write_header(&mut self.out, &dir).map_err(write_err(path))?;
            if is_opaque(path)? {
                let marker = join_name(rel, OPAQUE_MARKER.as_bytes());
                let mtime = self.mtime_of(meta);
                write_header(&mut self.out, &EntryMeta::marker(&marker, mtime))
                    .map_err(write_err(path))?;
                self.opaque.push(depth);
            }
        } else if ft.is_symlink() {
            let target = fs::read_link(path).map_err(read_err(path))?;
            let link = EntryMeta {
                kind: EntryType::Symlink,
                link: Some(target.as_os_str().as_bytes()),
                ..e
            };
            write_header(&mut self.out, &link).map_err(write_err(path))?;
        } else if ft.is_file() {
            e.size = meta.len();
            write_header(&mut self.out, &e).map_err(write_err(path))?;
            write_file_data(&mut self.out, path, e.size, &mut self.buf)?;
        } else if ft.is_fifo() {
            e.kind = EntryType::Fifo;
            write_header(&mut self.out, &e).map_err(write_err(path))?;
        } else if ft.is_char_device() || ft.is_block_device() {
            e.kind = if ft.is_char_device() {
                EntryType::Char
            } else {
                EntryType::Block
            };
            let rdev = meta.rdev();
            e.dev = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
            write_header(&mut self.out, &e).map_err(write_err(path))?;
        }
        Ok(())
    }
}

/// The diff_id of `layer_dir`: the digest of the tar [`write_layer_tar`] writes.
pub fn layer_diff_id(layer_dir: &Path) -> Result<Digest, SnapshotError> {
    let w = write_layer_tar(layer_dir, DigestWriter::new(io::sink()))?;
    Ok(w.finish().1)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // fixtures the tests create
pub(super) mod tests_support {
    pub fn split_ustar_for_test(name: &[u8]) -> Option<(&[u8], &[u8])> {
        super::split_ustar(name)
    }

    pub fn pax_record_for_test(key: &[u8], value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        super::pax_record(&mut out, key, value);
        out
    }
}
