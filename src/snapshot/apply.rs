//! OCI layer tar -> layer dir (overlay upper-dir format), every write kept inside the dir.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{
    self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps, XattrFlags,
    CWD,
};
use rustix::io::Errno;
use rustix::process::{Gid, Uid};
use tar::EntryType;

use super::error::SnapshotError;
use super::layer_tar::{
    is_overlay_xattr, keep_xattr, name_path, OPAQUE_MARKER, OPAQUE_XATTR, WHITEOUT_PREFIX,
};

/// What [`apply_layer_tar`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Tar entries processed (global PAX headers not counted).
    pub entries: u64,
    /// Device nodes the kernel refused to create (EPERM in a user namespace), by tar name.
    pub skipped_devices: Vec<String>,
}

const COPY_BUF: usize = 128 * 1024;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Wrap `r` in a gzip or zstd decoder when it starts with their magic; pass it through
/// otherwise.
pub fn decompressing_reader<R: Read + 'static>(mut r: R) -> io::Result<Box<dyn Read>> {
    let mut head = [0u8; 4];
    let mut n = 0;
    while n < head.len() {
        match r.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let head = head[..n].to_vec();
    let zstd = head.starts_with(&ZSTD_MAGIC);
    let gzip = head.starts_with(&GZIP_MAGIC);
    let whole = io::Cursor::new(head).chain(r);
    if zstd {
        return Ok(Box::new(zstd::stream::read::Decoder::new(whole)?));
    }
    if gzip {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(whole)))
    } else {
        Ok(Box::new(whole))
    }
}

/// Split a tar name into its components: `.` and empty components dropped, `None` for
/// absolute names and names with `..`.
fn components(raw: &[u8]) -> Option<Vec<&[u8]>> {
    if raw.starts_with(b"/") {
        return None;
    }
    let mut out = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

fn join(comps: &[&[u8]]) -> Vec<u8> {
    comps.join(&b'/')
}

fn os(bytes: &[u8]) -> &OsStr {
    OsStr::from_bytes(bytes)
}

/// Open the directory `path` (relative to `root`, resolved as if `root` were `/`).
fn open_dir_in_root(root: BorrowedFd<'_>, path: &[u8]) -> io::Result<OwnedFd> {
    let path: &[u8] = if path.is_empty() { b"." } else { path };
    let mut tries = 0;
    loop {
        match rfs::openat2(
            root,
            os(path),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) {
            Err(Errno::AGAIN) if tries < 64 => tries += 1,
            other => return other.map_err(io::Error::from),
        }
    }
}

/// Remove `name` in `dir`, recursively when it is a directory. A missing name is fine.
fn remove_all_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    match rfs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) | Err(Errno::PERM) => {}
        Err(e) => return Err(e.into()),
    }
    let sub = rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    for entry in rfs::Dir::read_from(&sub)? {
        let entry = entry?;
        let n = entry.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    for n in names {
        remove_all_at(sub.as_fd(), os(&n))?;
    }
    rfs::unlinkat(dir, name, AtFlags::REMOVEDIR)?;
    Ok(())
}

/// Parse a PAX `mtime` value (`[-]sec[.frac]`) to whole seconds (rounded down).
fn parse_pax_mtime(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?;
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    let secs: i64 = if int == "-" { 0 } else { int.parse().ok()? };
    let negative = int.starts_with('-');
    let has_frac = frac.bytes().any(|b| b != b'0');
    Some(if negative && has_frac { secs - 1 } else { secs })
}

fn timestamps(mtime: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// What a tar entry turns into.
enum Plan<'a> {
    /// `DIR/.wh..wh..opq`: mark the parent opaque.
    Opaque,
    /// `.wh.NAME`: a 0/0 character device `NAME`.
    Whiteout(&'a [u8]),
    /// Other `.wh..wh.*` names (aufs metadata): nothing.
    Ignore,
    File,
    Dir,
    Symlink(Vec<u8>),
    Hardlink(Vec<u8>),
    Device(FileType, u32, u32),
    Fifo,
}

struct Applier<'a> {
    root: OwnedFd,
    layer_dir: &'a Path,
    /// Tar names (normalised) of the non-directory entries extracted so far.
    extracted: HashSet<Vec<u8>>,
    /// Directory mtimes, applied last so that creating their contents does not change them.
    dir_times: BTreeMap<Vec<u8>, i64>,
    report: ApplyReport,
    buf: Vec<u8>,
}

/// Extract the uncompressed OCI/Docker layer tar `tar` into the empty directory `layer_dir`,
/// producing the overlay upper-dir format (whiteouts as 0/0 character devices, opaque dirs with
/// `user.overlay.opaque=y`).
///
/// Every path is resolved inside `layer_dir` (`openat2` with `RESOLVE_IN_ROOT`): a symlink in
/// the layer that points to `/` or `..` resolves to the layer dir itself. Absolute names and
/// names with `..` components are refused, as are hard links to anything but an earlier entry,
/// 0/0 character devices and `*.overlay.*` xattrs (they would turn into overlay metadata).
/// Device nodes the kernel refuses (EPERM) are skipped and listed in the report.
pub fn apply_layer_tar<R: Read>(tar: R, layer_dir: &Path) -> Result<ApplyReport, SnapshotError> {
    let open_err = |source: io::Error| SnapshotError::OpenLayerDir {
        path: layer_dir.to_path_buf(),
        source,
    };
    let root = rfs::openat(
        CWD,
        layer_dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| open_err(e.into()))?;
    {
        let dup = rfs::openat(
            &root,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| open_err(e.into()))?;
        for entry in rfs::Dir::new(dup).map_err(|e| open_err(e.into()))? {
            let entry = entry.map_err(|e| open_err(e.into()))?;
            let n = entry.file_name().to_bytes();
            if n != b"." && n != b".." {
                return Err(SnapshotError::NotEmpty {
                    path: layer_dir.to_path_buf(),
                });
            }
        }
    }

    let mut ap = Applier {
        root,
        layer_dir,
        extracted: HashSet::new(),
        dir_times: BTreeMap::new(),
        report: ApplyReport::default(),
        buf: vec![0u8; COPY_BUF],
    };
    let tar_err = |source: io::Error| SnapshotError::ReadTar {
        path: layer_dir.to_path_buf(),
        source,
    };
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries().map_err(tar_err)? {
        let mut entry = entry.map_err(tar_err)?;
        ap.apply_entry(&mut entry)?;
    }
    ap.apply_dir_times()?;
    Ok(ap.report)
}

impl Applier<'_> {
    fn extract_err(&self, name: &[u8]) -> impl FnOnce(io::Error) -> SnapshotError {
        let path = self.layer_dir.join(os(name));
        move |source| SnapshotError::Extract { path, source }
    }

    fn apply_entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), SnapshotError> {
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            return Ok(());
        }
        self.report.entries += 1;
        let raw = entry.path_bytes().into_owned();
        let shown = name_path(&raw);
        let bad_header = |source: io::Error| SnapshotError::BadHeader {
            path: shown.clone(),
            source,
        };

        // PAX records: xattrs and a precise mtime
        let mut xattrs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut pax_mtime = None;
        if let Some(exts) = entry.pax_extensions().map_err(bad_header)? {
            for ext in exts {
                let ext = ext.map_err(bad_header)?;
                let key = ext.key_bytes();
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    if is_overlay_xattr(name) {
                        return Err(SnapshotError::OverlayXattr {
                            path: shown.clone(),
                            name: String::from_utf8_lossy(name).into_owned(),
                        });
                    }
                    if keep_xattr(name) {
                        xattrs.push((name.to_vec(), ext.value_bytes().to_vec()));
                    }
                } else if key == b"mtime" {
                    pax_mtime = parse_pax_mtime(ext.value_bytes());
                }
            }
        }

        let comps = components(&raw).ok_or_else(|| SnapshotError::UnsafePath {
            path: shown.clone(),
        })?;
        let Some((&name, parent)) = comps.split_last() else {
            // the layer root itself (`./`): the layer dir's own metadata is the store's
            if kind == EntryType::Directory {
                return Ok(());
            }
            return Err(SnapshotError::UnsafePath { path: shown });
        };

        let header = entry.header();
        let mode = header.mode().map_err(bad_header)? & 0o7777;
        let uid = header.uid().map_err(bad_header)?;
        let gid = header.gid().map_err(bad_header)?;
        let mtime = match pax_mtime {
            Some(t) => t,
            None => i64::try_from(header.mtime().map_err(bad_header)?).unwrap_or(i64::MAX),
        };

        let plan = if name == OPAQUE_MARKER.as_bytes() {
            Plan::Opaque
        } else if name.starts_with(b".wh..wh.") {
            Plan::Ignore
        } else if let Some(target) = name.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            if target.is_empty() || target == b"." || target == b".." {
                return Err(SnapshotError::UnsafePath { path: shown });
            }
            Plan::Whiteout(target)
        } else {
            match kind {
                EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => Plan::File,
                EntryType::Directory => Plan::Dir,
                EntryType::Symlink => {
                    let target = entry
                        .link_name_bytes()
                        .ok_or_else(|| bad_header(io::Error::other("symlink without target")))?;
                    Plan::Symlink(target.into_owned())
                }
                EntryType::Link => {
                    let target = entry
                        .link_name_bytes()
                        .ok_or_else(|| bad_header(io::Error::other("hard link without target")))?;
                    let target_comps =
                        components(&target).ok_or_else(|| SnapshotError::HardlinkTarget {
                            path: shown.clone(),
                            target: name_path(&target),
                        })?;
                    let norm = join(&target_comps);
                    if !self.extracted.contains(&norm) {
                        return Err(SnapshotError::HardlinkTarget {
                            path: shown,
                            target: name_path(&target),
                        });
                    }
                    Plan::Hardlink(norm)
                }
                EntryType::Char | EntryType::Block => {
                    let major = header.device_major().map_err(bad_header)?.unwrap_or(0);
                    let minor = header.device_minor().map_err(bad_header)?.unwrap_or(0);
                    if kind == EntryType::Char {
                        if major == 0 && minor == 0 {
                            return Err(SnapshotError::WhiteoutDevice { path: shown });
                        }
                        Plan::Device(FileType::CharacterDevice, major, minor)
                    } else {
                        Plan::Device(FileType::BlockDevice, major, minor)
                    }
                }
                EntryType::Fifo => Plan::Fifo,
                other => {
                    return Err(SnapshotError::UnsupportedEntry {
                        path: shown,
                        kind: char::from(other.as_byte()),
                    })
                }
            }
        };

        let parent_path = join(parent);
        let full = join(&comps);
        let err = self.extract_err(&full);
        match plan {
            Plan::Ignore => Ok(()),
            Plan::Opaque => {
                let dir = self.open_dir(parent, true).map_err(err)?;
                rfs::fsetxattr(&dir, OPAQUE_XATTR, b"y", XattrFlags::empty())
                    .map_err(|e| self.extract_err(&full)(e.into()))
            }
            Plan::Whiteout(target) => {
                let dir = self.open_dir(parent, true).map_err(err)?;
                let target_full = if parent_path.is_empty() {
                    target.to_vec()
                } else {
                    [parent_path.as_slice(), b"/", target].concat()
                };
                let err = self.extract_err(&target_full);
                let r = (|| -> io::Result<()> {
                    remove_all_at(dir.as_fd(), os(target))?;
                    rfs::mknodat(
                        &dir,
                        os(target),
                        FileType::CharacterDevice,
                        Mode::empty(),
                        rfs::makedev(0, 0),
                    )?;
                    rfs::utimensat(
                        &dir,
                        os(target),
                        &timestamps(mtime),
                        AtFlags::SYMLINK_NOFOLLOW,
                    )?;
                    Ok(())
                })();
                r.map_err(err)?;
                self.extracted.remove(&target_full);
                self.dir_times.remove(&target_full);
                Ok(())
            }
            Plan::Dir => {
                let dir = self.open_dir(parent, true).map_err(err)?;
                let existing = rfs::statat(&dir, os(name), AtFlags::SYMLINK_NOFOLLOW).ok();
                let is_dir = existing
                    .is_some_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory);
                if !is_dir {
                    if existing.is_some() {
                        remove_all_at(dir.as_fd(), os(name)).map_err(self.extract_err(&full))?;
                    }
                    rfs::mkdirat(&dir, os(name), Mode::from_raw_mode(0o700))
                        .map_err(|e| self.extract_err(&full)(e.into()))?;
                }
                let fd = rfs::openat(
                    &dir,
                    os(name),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| self.extract_err(&full)(e.into()))?;
                self.set_owner_mode_xattrs(&fd, &full, uid, gid, mode, &xattrs)?;
                self.extracted.remove(&full);
                self.dir_times.insert(full, mtime);
                Ok(())
            }
            Plan::File => {
                let dir = self.open_dir(parent, true).map_err(err)?;
                self.replace(&dir, name, &full)?;
                let fd = rfs::openat(
                    &dir,
                    os(name),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| self.extract_err(&full)(e.into()))?;
                let mut file = std::fs::File::from(fd);
                let expected = entry.size();
                let mut copied = 0u64;
                loop {
                    let n = match entry.read(&mut self.buf) {
                        Ok(0) if copied < expected => {
                            return Err(SnapshotError::ReadTar {
                                path: self.layer_dir.to_path_buf(),
                                source: io::Error::new(
                                    io::ErrorKind::UnexpectedEof,
                                    format!(
                                        "the tar ends inside entry {}",
                                        String::from_utf8_lossy(&raw)
                                    ),
                                ),
                            })
                        }
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(source) => {
                            return Err(SnapshotError::ReadTar {
                                path: self.layer_dir.to_path_buf(),
                                source,
                            })
                        }
                    };
                    file.write_all(&self.buf[..n])
                        .map_err(self.extract_err(&full))?;
                    copied += n as u64;
                }
                let fd = OwnedFd::from(file);
                self.set_owner_mode_xattrs(&fd, &full, uid, gid, mode, &xattrs)?;
                rfs::futimens(&fd, &timestamps(mtime))
                    .map_err(|e| self.extract_err(&full)(e.into()))?;
                self.extracted.insert(full);
                Ok(())
            }
            Plan::Symlink(target) => {
                let dir = self.open_dir(parent, true).map_err(err)?;
                self.replace(&dir, name, &full)?;
                rfs::symlinkat(os(&target), &dir, os(name))
                    .map_err(|e| self.extract_err(&full)(e.into()))?;
                self.chown_at(&dir, name, &full, uid, gid)?;
                rfs::utimensat(
                    &dir,
                    os(name),
                    &timestamps(mtime),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| self.extract_err(&full)(e.into()))?;
                self.extracted.insert(full);
                Ok(())
            }
            Plan::Hardlink(target) => {
                let target_comps = components(&target).unwrap_or_default();
                let Some((&tname, tparent)) = target_comps.split_last() else {
                    return Err(SnapshotError::HardlinkTarget {
                        path: shown,
                        target: name_path(&target),
                    });
                };
                let tdir = self.open_dir(tparent, false).map_err(err)?;
                // the target must still be a plain entry: not a dir, not a whiteout
                let st = rfs::statat(&tdir, os(tname), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| self.extract_err(&full)(e.into()))?;
                let ft = FileType::from_raw_mode(st.st_mode);
                if ft == FileType::Directory || (ft == FileType::CharacterDevice && st.st_rdev == 0)
                {
                    return Err(SnapshotError::HardlinkTarget {
                        path: shown,
                        target: name_path(&target),
                    });
                }
                let dir = self
                    .open_dir(parent, true)
                    .map_err(self.extract_err(&full))?;
                if full != target {
                    self.replace(&dir, name, &full)?;
                    rfs::linkat(&tdir, os(tname), &dir, os(name), AtFlags::empty())
                        .map_err(|e| self.extract_err(&full)(e.into()))?;
                }
                self.extracted.insert(full);
                Ok(())
            }
            Plan::Device(ft, major, minor) => {
                let dir = self.open_dir(parent, true).map_err(err)?;
                self.replace(&dir, name, &full)?;
                match rfs::mknodat(
                    &dir,
                    os(name),
                    ft,
                    Mode::from_raw_mode(0o600),
                    rfs::makedev(major, minor),
                ) {
                    Ok(()) => {}
                    Err(Errno::PERM) => {
                        self.report
                            .skipped_devices
                            .push(String::from_utf8_lossy(&raw).into_owned());
                        return Ok(());
                    }
                    Err(e) => return Err(self.extract_err(&full)(e.into())),
                }
                self.finish_node(&dir, name, full, uid, gid, mode, mtime)
            }
            Plan::Fifo => {
                let dir = self.open_dir(parent, true).map_err(err)?;
                self.replace(&dir, name, &full)?;
                rfs::mknodat(
                    &dir,
                    os(name),
                    FileType::Fifo,
                    Mode::from_raw_mode(0o600),
                    0,
                )
                .map_err(|e| self.extract_err(&full)(e.into()))?;
                self.finish_node(&dir, name, full, uid, gid, mode, mtime)
            }
        }
    }

    /// Owner, mode and mtime of a device node or fifo just created as `name` in `dir`.
    #[allow(clippy::too_many_arguments)]
    fn finish_node(
        &mut self,
        dir: &OwnedFd,
        name: &[u8],
        full: Vec<u8>,
        uid: u64,
        gid: u64,
        mode: u32,
        mtime: i64,
    ) -> Result<(), SnapshotError> {
        self.chown_at(dir, name, &full, uid, gid)?;
        // a node just created by us, never a symlink: following is not a concern
        rfs::chmodat(dir, os(name), Mode::from_raw_mode(mode), AtFlags::empty())
            .map_err(|e| self.extract_err(&full)(e.into()))?;
        rfs::utimensat(dir, os(name), &timestamps(mtime), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| self.extract_err(&full)(e.into()))?;
        self.extracted.insert(full);
        Ok(())
    }

    /// Remove whatever an earlier entry left at `name` in `dir` (a later entry replaces it).
    fn replace(&mut self, dir: &OwnedFd, name: &[u8], full: &[u8]) -> Result<(), SnapshotError> {
        remove_all_at(dir.as_fd(), os(name)).map_err(self.extract_err(full))?;
        self.extracted.remove(full);
        self.dir_times.remove(full);
        Ok(())
    }

    /// Open the directory made of `comps` inside the layer; with `create`, make missing ones
    /// (mode 0755, like tar does for parents it has not seen).
    fn open_dir(&self, comps: &[&[u8]], create: bool) -> io::Result<OwnedFd> {
        let root = self.root.as_fd();
        match open_dir_in_root(root, &join(comps)) {
            Err(e) if create && e.raw_os_error() == Some(libc::ENOENT) => {}
            other => return other,
        }
        let mut cur = open_dir_in_root(root, b"")?;
        for i in 0..comps.len() {
            let prefix = join(&comps[..=i]);
            cur = match open_dir_in_root(root, &prefix) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    rfs::mkdirat(&cur, os(comps[i]), Mode::from_raw_mode(0o755))?;
                    let fd = open_dir_in_root(root, &prefix)?;
                    rfs::fchmod(&fd, Mode::from_raw_mode(0o755))?; // whatever the umask
                    fd
                }
                Err(e) => return Err(e),
            };
        }
        Ok(cur)
    }

    fn ids(&self, full: &[u8], uid: u64, gid: u64) -> Result<(Uid, Gid), SnapshotError> {
        let unmapped = || SnapshotError::UnmappedId {
            path: name_path(full),
            uid,
            gid,
        };
        let u = u32::try_from(uid)
            .ok()
            .filter(|&u| u != u32::MAX)
            .ok_or_else(unmapped)?;
        let g = u32::try_from(gid)
            .ok()
            .filter(|&g| g != u32::MAX)
            .ok_or_else(unmapped)?;
        Ok((Uid::from_raw(u), Gid::from_raw(g)))
    }

    fn chown_err(&self, full: &[u8], uid: u64, gid: u64, e: Errno) -> SnapshotError {
        if e == Errno::INVAL {
            SnapshotError::UnmappedId {
                path: name_path(full),
                uid,
                gid,
            }
        } else {
            self.extract_err(full)(e.into())
        }
    }

    fn chown_at(
        &self,
        dir: &OwnedFd,
        name: &[u8],
        full: &[u8],
        uid: u64,
        gid: u64,
    ) -> Result<(), SnapshotError> {
        let (u, g) = self.ids(full, uid, gid)?;
        rfs::chownat(dir, os(name), Some(u), Some(g), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| self.chown_err(full, uid, gid, e))
    }

    /// Owner, then mode (chown clears setuid), then xattrs (chown clears security.capability).
    fn set_owner_mode_xattrs(
        &self,
        fd: &OwnedFd,
        full: &[u8],
        uid: u64,
        gid: u64,
        mode: u32,
        xattrs: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<(), SnapshotError> {
        let (u, g) = self.ids(full, uid, gid)?;
        rfs::fchown(fd, Some(u), Some(g)).map_err(|e| self.chown_err(full, uid, gid, e))?;
        rfs::fchmod(fd, Mode::from_raw_mode(mode)).map_err(|e| self.extract_err(full)(e.into()))?;
        for (name, value) in xattrs {
            rfs::fsetxattr(fd, os(name), value, XattrFlags::empty())
                .map_err(|e| self.extract_err(full)(e.into()))?;
        }
        Ok(())
    }

    /// Set the recorded directory mtimes, now that nothing is created inside them any more.
    fn apply_dir_times(&mut self) -> Result<(), SnapshotError> {
        let times = std::mem::take(&mut self.dir_times);
        for (path, mtime) in times.iter().rev() {
            let fd = match open_dir_in_root(self.root.as_fd(), path) {
                Ok(fd) => fd,
                // replaced or removed by a later entry: its own metadata stands
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ELOOP)
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(self.extract_err(path)(e)),
            };
            rfs::futimens(&fd, &timestamps(*mtime))
                .map_err(|e| self.extract_err(path)(e.into()))?;
        }
        Ok(())
    }
}
