//! The one tar extractor: pulled and loaded layers, `ADD` archives, context tars, loads and
//! imported cache mounts all come through [`extract_tar`].
//!
//! Every entry is created relative to its parent's fd, and that parent is resolved inside the
//! destination (`RESOLVE_IN_ROOT`): a symlink in the archive that points to `/`, `..` or a host
//! path resolves to the destination itself, so `up -> ..` followed by `up/x` writes `x` in the
//! destination, and `abs -> /etc` followed by `abs/passwd` writes `etc/passwd` below it. The
//! final component is never followed: whatever an earlier entry left there is removed first.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{
    self as rfs, AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags,
};
use rustix::io::Errno;
use tar::EntryType;

use crate::layer::{is_overlay_xattr, keep_xattr, OPAQUE_MARKER, OPAQUE_XATTR, WHITEOUT_PREFIX};
use crate::root::{is_empty_dir, mkdir_all_in_root, open_dir_in_root, remove_all_at};
use crate::write;

/// What kind of archive is extracted, which decides how names and whiteouts are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An OCI/Docker layer, into an empty layer dir in the overlay upper-dir format:
    /// `.wh.NAME` becomes a 0/0 character device, `.wh..wh..opq` the opaque xattr. Absolute
    /// names and names with `..` are refused (a layer has no reason to hold them).
    Layer,
    /// Any other archive (ADD, a context tar, a load, a cache mount), into a directory that
    /// may hold files already: names are taken as written, a leading `/` is dropped and `..`
    /// stops at the destination (as `docker build` does for ADD).
    Plain,
}

/// Who owns the extracted files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// The uid/gid of each entry (an id the user namespace cannot map is an error).
    Archive,
    /// These ids for every entry (`ADD --chown`).
    Fixed(u32, u32),
    /// Whoever extracts (a context tar, a load: trees rbuild reads, in its private store).
    Extractor,
}

/// How to extract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtractOptions {
    pub format: Format,
    pub ownership: Ownership,
    /// Create device nodes and FIFOs; otherwise they are skipped (counted in the report).
    pub special_files: bool,
    /// Create symlinks and hard links; otherwise they are skipped (counted in the report).
    pub links: bool,
    /// Set `user.*` and `security.capability` xattrs from PAX records. Overlay xattrs are
    /// never set: they are stripped and reported.
    pub xattrs: bool,
}

impl ExtractOptions {
    /// A layer: everything kept, owners from the archive.
    pub const LAYER: ExtractOptions = ExtractOptions {
        format: Format::Layer,
        ownership: Ownership::Archive,
        special_files: true,
        links: true,
        xattrs: true,
    };
}

/// What [`extract_tar`] did beyond creating entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractReport {
    /// Tar entries read (global PAX headers not counted).
    pub entries: u64,
    /// Device nodes the kernel refused to create (EPERM in a user namespace), by entry name.
    pub skipped_devices: Vec<String>,
    /// Entries of kinds the options leave out (links, devices, FIFOs).
    pub skipped_entries: u64,
    /// Overlay xattrs found on entries and not applied, by xattr name, with how many entries
    /// carried each (rootless buildah and podman leave `user.overlay.origin` and `.impure`).
    pub stripped_xattrs: BTreeMap<String, u64>,
}

/// Why an archive could not be extracted. `entry` is the name as written in the archive.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("cannot read the archive")]
    Read(#[source] io::Error),
    #[error("the archive ends inside entry {entry}")]
    Truncated { entry: String },
    #[error("tar entry {entry}: invalid header")]
    BadHeader {
        entry: String,
        #[source]
        source: io::Error,
    },
    #[error("tar entry {entry}: absolute names and names with .. components are refused")]
    UnsafePath { entry: String },
    #[error("tar entry {entry}: unsupported entry type {kind:?}")]
    UnsupportedEntry { entry: String, kind: char },
    #[error(
        "tar entry {entry}: hard link target {target} is not an earlier entry of this archive"
    )]
    HardlinkTarget { entry: String, target: String },
    #[error("tar entry {entry}: a 0/0 character device would become an overlay whiteout")]
    WhiteoutDevice { entry: String },
    #[error(
        "tar entry {entry}: the archive needs uid {uid} / gid {gid}, which the user namespace does not map; add a subordinate id range for your user in /etc/subuid and /etc/subgid"
    )]
    UnmappedId { entry: String, uid: u64, gid: u64 },
    #[error("cannot extract tar entry {entry}")]
    Write {
        entry: String,
        #[source]
        source: io::Error,
    },
    #[error("the directory to extract a layer into is not empty")]
    NotEmpty,
}

const COPY_BUF: usize = 128 * 1024;

/// Extracts the uncompressed tar `tar` into the directory `dest` (an fd: the destination is
/// the root every name is resolved in).
pub fn extract_tar<R: Read>(
    tar: R,
    dest: impl AsFd,
    options: ExtractOptions,
) -> Result<ExtractReport, ExtractError> {
    let root = rfs::openat(
        dest,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ExtractError::Read(e.into()))?;
    if options.format == Format::Layer && !is_empty_dir(&root).map_err(ExtractError::Read)? {
        return Err(ExtractError::NotEmpty);
    }
    let mut extractor = Extractor {
        root,
        options,
        extracted: HashSet::new(),
        dir_times: BTreeMap::new(),
        report: ExtractReport::default(),
        buf: vec![0u8; COPY_BUF],
    };
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries().map_err(ExtractError::Read)? {
        let mut entry = entry.map_err(ExtractError::Read)?;
        extractor.entry(&mut entry)?;
    }
    extractor.apply_dir_times()?;
    Ok(extractor.report)
}

/// Splits a tar name into components by the format's rule; `None` when a layer name is
/// absolute or climbs with `..`.
fn components(raw: &[u8], format: Format) -> Option<Vec<&[u8]>> {
    if format == Format::Layer && raw.starts_with(b"/") {
        return None;
    }
    let mut out = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." if format == Format::Layer => return None,
            b".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    Some(out)
}

/// A numeric header field: an empty one (all NUL or spaces, as some archivers write) is 0,
/// as Go's archive/tar (and so BuildKit) reads it; anything else must parse.
fn numeric(field: &[u8], parsed: io::Result<u64>) -> io::Result<u64> {
    if field.iter().all(|&b| b == 0 || b == b' ') {
        return Ok(0);
    }
    parsed
}

fn join(comps: &[&[u8]]) -> Vec<u8> {
    comps.join(&b'/')
}

fn os(bytes: &[u8]) -> &OsStr {
    OsStr::from_bytes(bytes)
}

fn shown(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

/// Parses a PAX `mtime` value (`[-]sec[.frac]`) to whole seconds (rounded down).
fn parse_pax_mtime(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?;
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
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
enum Plan {
    /// `DIR/.wh..wh..opq` in a layer: mark the parent opaque.
    Opaque,
    /// `.wh.NAME` in a layer: a 0/0 character device `NAME`.
    Whiteout(Vec<u8>),
    /// Other `.wh..wh.*` names in a layer (aufs metadata): nothing.
    Skip,
    /// A kind the options leave out.
    LeftOut,
    File,
    Dir,
    Symlink(Vec<u8>),
    Hardlink(Vec<u8>),
    Device(FileType, u32, u32),
    Fifo,
}

/// The metadata of one entry, read from its header and PAX records.
struct Meta {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: i64,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

struct Extractor {
    root: OwnedFd,
    options: ExtractOptions,
    /// Names (normalised) of the non-directory entries extracted so far: hard link targets.
    extracted: HashSet<Vec<u8>>,
    /// Directory mtimes, applied last so that creating their contents does not change them.
    dir_times: BTreeMap<Vec<u8>, i64>,
    report: ExtractReport,
    buf: Vec<u8>,
}

fn write_err(full: &[u8]) -> impl FnOnce(io::Error) -> ExtractError + '_ {
    move |source| ExtractError::Write {
        entry: shown(full),
        source,
    }
}

fn errno_err(full: &[u8]) -> impl FnOnce(Errno) -> ExtractError + '_ {
    move |e| ExtractError::Write {
        entry: shown(full),
        source: e.into(),
    }
}

impl Extractor {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), ExtractError> {
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            return Ok(());
        }
        self.report.entries += 1;
        let raw = entry.path_bytes().into_owned();
        let meta = self.meta(entry, &raw)?;
        let format = self.options.format;
        let comps = components(&raw, format)
            .ok_or_else(|| ExtractError::UnsafePath { entry: shown(&raw) })?;
        let Some((&name, parent)) = comps.split_last() else {
            // the destination itself (`./`): its own metadata is the caller's
            if kind == EntryType::Directory || format == Format::Plain {
                return Ok(());
            }
            return Err(ExtractError::UnsafePath { entry: shown(&raw) });
        };
        let plan = self.plan(entry, &raw, name, format)?;
        let full = join(&comps);
        match plan {
            Plan::Skip => return Ok(()),
            Plan::LeftOut => {
                self.report.skipped_entries += 1;
                return Ok(());
            }
            _ => {}
        }
        let dir = self.open_dir(parent, true).map_err(write_err(&full))?;
        match plan {
            Plan::Skip | Plan::LeftOut => Ok(()),
            Plan::Opaque => rfs::fsetxattr(&dir, OPAQUE_XATTR, b"y", XattrFlags::empty())
                .map_err(errno_err(&full)),
            Plan::Whiteout(target) => {
                let mut target_full = join(parent);
                if !target_full.is_empty() {
                    target_full.push(b'/');
                }
                target_full.extend_from_slice(&target);
                let make = || -> io::Result<()> {
                    remove_all_at(&dir, os(&target))?;
                    rfs::mknodat(
                        &dir,
                        os(&target),
                        FileType::CharacterDevice,
                        Mode::empty(),
                        rfs::makedev(0, 0),
                    )?;
                    rfs::utimensat(
                        &dir,
                        os(&target),
                        &timestamps(meta.mtime),
                        AtFlags::SYMLINK_NOFOLLOW,
                    )?;
                    Ok(())
                };
                make().map_err(write_err(&target_full))?;
                self.extracted.remove(&target_full);
                self.dir_times.remove(&target_full);
                Ok(())
            }
            Plan::Dir => self.make_dir(&dir, name, full, &meta),
            Plan::File => self.make_file(&dir, name, full, &meta, entry),
            Plan::Symlink(target) => {
                self.replace(&dir, name, &full)?;
                let entry = self.entry_meta(&full, &meta)?;
                write::symlink(&dir, os(name), &shown(&full), os(&target), &entry)
                    .map_err(|e| self.write_err(&full, e))?;
                self.extracted.insert(full);
                Ok(())
            }
            Plan::Hardlink(target) => self.make_hardlink(&dir, name, full, &raw, &target),
            Plan::Device(ft, major, minor) => self.make_node(
                &dir,
                name,
                full,
                &raw,
                ft,
                rfs::makedev(major, minor),
                &meta,
            ),
            Plan::Fifo => self.make_node(&dir, name, full, &raw, FileType::Fifo, 0, &meta),
        }
    }

    /// Mode, owner, mtime and the xattrs to set; overlay xattrs are counted and dropped.
    fn meta<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        raw: &[u8],
    ) -> Result<Meta, ExtractError> {
        let bad_header = |source: io::Error| ExtractError::BadHeader {
            entry: shown(raw),
            source,
        };
        let mut xattrs = Vec::new();
        let mut pax_mtime = None;
        if let Some(exts) = entry.pax_extensions().map_err(bad_header)? {
            for ext in exts {
                let ext = ext.map_err(bad_header)?;
                let key = ext.key_bytes();
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    if is_overlay_xattr(name) {
                        *self.report.stripped_xattrs.entry(shown(name)).or_default() += 1;
                    } else if self.options.xattrs && keep_xattr(name) {
                        xattrs.push((name.to_vec(), ext.value_bytes().to_vec()));
                    }
                } else if key == b"mtime" {
                    pax_mtime = parse_pax_mtime(ext.value_bytes());
                }
            }
        }
        let header = entry.header();
        let old = header.as_old();
        let mtime = match pax_mtime {
            Some(t) => t,
            None => i64::try_from(numeric(&old.mtime, header.mtime()).map_err(bad_header)?)
                .unwrap_or(i64::MAX),
        };
        let mode = numeric(&old.mode, header.mode().map(u64::from)).map_err(bad_header)?;
        Ok(Meta {
            mode: (mode & 0o7777) as u32,
            uid: numeric(&old.uid, header.uid()).map_err(bad_header)?,
            gid: numeric(&old.gid, header.gid()).map_err(bad_header)?,
            mtime,
            xattrs,
        })
    }

    fn plan<R: Read>(
        &self,
        entry: &tar::Entry<'_, R>,
        raw: &[u8],
        name: &[u8],
        format: Format,
    ) -> Result<Plan, ExtractError> {
        let bad_header = |source: io::Error| ExtractError::BadHeader {
            entry: shown(raw),
            source,
        };
        let header = entry.header();
        let kind = header.entry_type();
        if format == Format::Layer {
            if name == OPAQUE_MARKER.as_bytes() {
                return Ok(Plan::Opaque);
            }
            if name.starts_with(b".wh..wh.") {
                return Ok(Plan::Skip);
            }
            if let Some(target) = name.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
                if target.is_empty() || target == b"." || target == b".." {
                    return Err(ExtractError::UnsafePath { entry: shown(raw) });
                }
                return Ok(Plan::Whiteout(target.to_vec()));
            }
        }
        let links = self.options.links;
        let special = self.options.special_files;
        let plan = match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => Plan::File,
            EntryType::Directory => Plan::Dir,
            EntryType::Symlink | EntryType::Link if !links => Plan::LeftOut,
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
                let refused = || ExtractError::HardlinkTarget {
                    entry: shown(raw),
                    target: shown(&target),
                };
                let norm = join(&components(&target, format).ok_or_else(refused)?);
                if !self.extracted.contains(&norm) {
                    return Err(refused());
                }
                Plan::Hardlink(norm)
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo if !special => Plan::LeftOut,
            EntryType::Char | EntryType::Block => {
                let major = header.device_major().map_err(bad_header)?.unwrap_or(0);
                let minor = header.device_minor().map_err(bad_header)?.unwrap_or(0);
                if kind == EntryType::Char && major == 0 && minor == 0 {
                    return Err(ExtractError::WhiteoutDevice { entry: shown(raw) });
                }
                let ft = if kind == EntryType::Char {
                    FileType::CharacterDevice
                } else {
                    FileType::BlockDevice
                };
                Plan::Device(ft, major, minor)
            }
            EntryType::Fifo => Plan::Fifo,
            other => {
                return Err(ExtractError::UnsupportedEntry {
                    entry: shown(raw),
                    kind: char::from(other.as_byte()),
                })
            }
        };
        Ok(plan)
    }

    fn make_dir(
        &mut self,
        dir: &OwnedFd,
        name: &[u8],
        full: Vec<u8>,
        meta: &Meta,
    ) -> Result<(), ExtractError> {
        let existing = rfs::statat(dir, os(name), AtFlags::SYMLINK_NOFOLLOW).ok();
        let is_dir =
            existing.is_some_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory);
        if !is_dir {
            if existing.is_some() {
                remove_all_at(dir, os(name)).map_err(write_err(&full))?;
            }
            rfs::mkdirat(dir, os(name), Mode::from_raw_mode(0o700)).map_err(errno_err(&full))?;
        }
        let fd = rfs::openat(
            dir,
            os(name),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno_err(&full))?;
        self.set_owner_mode_xattrs(&fd, &full, meta)?;
        self.extracted.remove(&full);
        self.dir_times.insert(full, meta.mtime);
        Ok(())
    }

    fn make_file<R: Read>(
        &mut self,
        dir: &OwnedFd,
        name: &[u8],
        full: Vec<u8>,
        meta: &Meta,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<(), ExtractError> {
        self.replace(dir, name, &full)?;
        let fd = rfs::openat(
            dir,
            os(name),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(errno_err(&full))?;
        let mut file = std::fs::File::from(fd);
        let expected = entry.size();
        let mut copied = 0u64;
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) if copied < expected => {
                    return Err(ExtractError::Truncated {
                        entry: shown(&full),
                    })
                }
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ExtractError::Read(e)),
            };
            file.write_all(&self.buf[..n]).map_err(write_err(&full))?;
            copied += n as u64;
        }
        let fd = OwnedFd::from(file);
        self.set_owner_mode_xattrs(&fd, &full, meta)?;
        rfs::futimens(&fd, &timestamps(meta.mtime)).map_err(errno_err(&full))?;
        self.extracted.insert(full);
        Ok(())
    }

    fn make_hardlink(
        &mut self,
        dir: &OwnedFd,
        name: &[u8],
        full: Vec<u8>,
        raw: &[u8],
        target: &[u8],
    ) -> Result<(), ExtractError> {
        let refused = || ExtractError::HardlinkTarget {
            entry: shown(raw),
            target: shown(target),
        };
        let target_comps = components(target, Format::Plain).unwrap_or_default();
        let Some((&tname, tparent)) = target_comps.split_last() else {
            return Err(refused());
        };
        let tdir = self.open_dir(tparent, false).map_err(write_err(&full))?;
        // the target must still be a plain entry: not a dir, not a whiteout
        let st =
            rfs::statat(&tdir, os(tname), AtFlags::SYMLINK_NOFOLLOW).map_err(errno_err(&full))?;
        let ft = FileType::from_raw_mode(st.st_mode);
        if ft == FileType::Directory || (ft == FileType::CharacterDevice && st.st_rdev == 0) {
            return Err(refused());
        }
        if full != target {
            self.replace(dir, name, &full)?;
            rfs::linkat(&tdir, os(tname), dir, os(name), AtFlags::empty())
                .map_err(errno_err(&full))?;
        }
        self.extracted.insert(full);
        Ok(())
    }

    /// A device node or FIFO (a device the kernel refuses is skipped and reported).
    #[allow(clippy::too_many_arguments)]
    fn make_node(
        &mut self,
        dir: &OwnedFd,
        name: &[u8],
        full: Vec<u8>,
        raw: &[u8],
        kind: FileType,
        device: u64,
        meta: &Meta,
    ) -> Result<(), ExtractError> {
        self.replace(dir, name, &full)?;
        let entry = self.entry_meta(&full, meta)?;
        let made = write::node(dir, os(name), &shown(&full), kind, device, &entry)
            .map_err(|e| self.write_err(&full, e))?;
        if made {
            self.extracted.insert(full);
        } else {
            self.report.skipped_devices.push(shown(raw));
        }
        Ok(())
    }

    /// What the tree writer gives an entry: its owner by the ownership rule, mode, mtime.
    fn entry_meta(&self, full: &[u8], meta: &Meta) -> Result<write::EntryMeta, ExtractError> {
        Ok(write::EntryMeta {
            owner: self.ids(full, meta)?.map(|(u, g)| (u.as_raw(), g.as_raw())),
            mode: meta.mode,
            mtime: (meta.mtime, 0),
        })
    }

    fn write_err(&self, full: &[u8], e: write::WriteError) -> ExtractError {
        match e {
            write::WriteError::UnmappedId { uid, gid, .. } => ExtractError::UnmappedId {
                entry: shown(full),
                uid: u64::from(uid),
                gid: u64::from(gid),
            },
            write::WriteError::Io { source, .. } => ExtractError::Write {
                entry: shown(full),
                source,
            },
            // `replace` cleared the name first: no directory can be in the way
            write::WriteError::DirectoryInTheWay { .. } => ExtractError::Write {
                entry: shown(full),
                source: io::ErrorKind::IsADirectory.into(),
            },
        }
    }

    /// Removes whatever an earlier entry (or the destination) has at `name`: a later entry
    /// replaces it, as tar and BuildKit do.
    fn replace(&mut self, dir: &OwnedFd, name: &[u8], full: &[u8]) -> Result<(), ExtractError> {
        remove_all_at(dir, os(name)).map_err(write_err(full))?;
        self.extracted.remove(full);
        self.dir_times.remove(full);
        Ok(())
    }

    /// Opens the directory made of `comps` inside the destination; with `create`, makes
    /// missing ones (mode 0755, like tar does for parents it has not seen), following dangling
    /// symlinks inside the destination.
    fn open_dir(&self, comps: &[&[u8]], create: bool) -> io::Result<OwnedFd> {
        let path = join(comps);
        match open_dir_in_root(&self.root, os(&path)) {
            Err(Errno::NOENT) if create => {}
            other => return other.map_err(io::Error::from),
        }
        mkdir_all_in_root(&self.root, os(&path), 0o755, None).map_err(io::Error::other)
    }

    /// The ids to give an entry, or none when the extractor keeps its own.
    fn ids(&self, full: &[u8], meta: &Meta) -> Result<Option<(Uid, Gid)>, ExtractError> {
        let (uid, gid) = match self.options.ownership {
            Ownership::Extractor => return Ok(None),
            Ownership::Fixed(u, g) => (u64::from(u), u64::from(g)),
            Ownership::Archive => (meta.uid, meta.gid),
        };
        let unmapped = || ExtractError::UnmappedId {
            entry: shown(full),
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
        Ok(Some((Uid::from_raw(u), Gid::from_raw(g))))
    }

    fn chown_err(&self, full: &[u8], ids: (Uid, Gid), e: Errno) -> ExtractError {
        if e == Errno::INVAL {
            ExtractError::UnmappedId {
                entry: shown(full),
                uid: u64::from(ids.0.as_raw()),
                gid: u64::from(ids.1.as_raw()),
            }
        } else {
            errno_err(full)(e)
        }
    }

    /// Owner, then mode (chown clears setuid), then xattrs (chown clears security.capability).
    fn set_owner_mode_xattrs(
        &self,
        fd: &OwnedFd,
        full: &[u8],
        meta: &Meta,
    ) -> Result<(), ExtractError> {
        if let Some((u, g)) = self.ids(full, meta)? {
            rfs::fchown(fd, Some(u), Some(g)).map_err(|e| self.chown_err(full, (u, g), e))?;
        }
        rfs::fchmod(fd, Mode::from_raw_mode(meta.mode)).map_err(errno_err(full))?;
        for (name, value) in &meta.xattrs {
            rfs::fsetxattr(fd, os(name), value, XattrFlags::empty()).map_err(errno_err(full))?;
        }
        Ok(())
    }

    /// Sets the recorded directory mtimes, now that nothing is created inside them any more.
    fn apply_dir_times(&mut self) -> Result<(), ExtractError> {
        let times = std::mem::take(&mut self.dir_times);
        for (path, mtime) in times.iter().rev() {
            let fd = match open_dir_in_root(self.root.as_fd(), os(path)) {
                Ok(fd) => fd,
                // replaced or removed by a later entry: its own metadata stands
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                Err(e) => return Err(errno_err(path)(e)),
            };
            rfs::futimens(&fd, &timestamps(*mtime)).map_err(errno_err(path))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root::open_root;

    /// A tar built entry by entry: (name, kind, link target or contents). Names are written
    /// raw, `..` and all, as a hostile archive would.
    fn tar_of(entries: &[(&str, EntryType, &str)]) -> Vec<u8> {
        let mut tar = test_support::tar::RawTar::new().mtime(1_000_000);
        for (name, kind, data) in entries {
            tar = match kind {
                EntryType::Symlink | EntryType::Link => tar.link(name, *kind, data),
                EntryType::Directory => tar.dir(name, 0o755),
                _ => {
                    let header = tar.header(name.as_bytes(), *kind, data.len() as u64);
                    tar.raw(header, data.as_bytes())
                }
            };
        }
        tar.finish()
    }

    fn plain() -> ExtractOptions {
        ExtractOptions {
            format: Format::Plain,
            ownership: Ownership::Extractor,
            special_files: false,
            links: true,
            xattrs: false,
        }
    }

    #[test]
    fn archive_symlinks_resolve_against_the_destination() {
        let outside = tempfile::tempdir().expect("tempdir");
        let image = tempfile::tempdir().expect("tempdir");
        let dest = image.path().join("dest");
        std::fs::create_dir_all(image.path().join("etc")).expect("mkdir");
        std::fs::create_dir(&dest).expect("mkdir");
        let tar = tar_of(&[
            ("up", EntryType::Symlink, ".."),
            ("up/x.txt", EntryType::Regular, "x"),
            ("abs", EntryType::Symlink, "/etc"),
            ("abs/passwd", EntryType::Regular, "p"),
            (
                "host",
                EntryType::Symlink,
                outside.path().to_str().expect("utf-8"),
            ),
            ("host/canary", EntryType::Regular, "c"),
            ("../../climb", EntryType::Regular, "k"),
        ]);
        let root = open_root(&dest).expect("root");
        extract_tar(&tar[..], &root, plain()).expect("extract");
        assert_eq!(std::fs::read(dest.join("x.txt")).expect("x"), b"x");
        assert_eq!(std::fs::read(dest.join("etc/passwd")).expect("p"), b"p");
        assert_eq!(std::fs::read(dest.join("climb")).expect("k"), b"k");
        assert!(!image.path().join("x.txt").exists());
        assert!(!image.path().join("etc/passwd").exists());
        assert!(std::fs::read_dir(outside.path())
            .expect("ls")
            .next()
            .is_none());
    }

    #[test]
    fn layers_refuse_names_that_climb_and_strip_overlay_xattrs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = open_root(dir.path()).expect("root");
        let climbing = tar_of(&[("../x", EntryType::Regular, "x")]);
        assert!(matches!(
            extract_tar(&climbing[..], &root, ExtractOptions::LAYER),
            Err(ExtractError::UnsafePath { .. })
        ));

        let mut builder = tar::Builder::new(Vec::new());
        builder
            .append_pax_extensions([
                ("SCHILY.xattr.user.overlay.origin", &b"\x00\xfb"[..]),
                ("SCHILY.xattr.user.overlay.impure", &b"y"[..]),
                ("SCHILY.xattr.user.kept", &b"1"[..]),
            ])
            .expect("pax");
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(EntryType::Directory);
        header.set_mode(0o755);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(0);
        header.set_cksum();
        builder
            .append_data(&mut header, "d/", &[][..])
            .expect("append");
        let tar = builder.into_inner().expect("tar");
        let fresh = tempfile::tempdir().expect("tempdir");
        let root = open_root(fresh.path()).expect("root");
        let report = extract_tar(&tar[..], &root, ExtractOptions::LAYER).expect("extract");
        assert_eq!(report.stripped_xattrs.get("user.overlay.origin"), Some(&1));
        assert_eq!(report.stripped_xattrs.get("user.overlay.impure"), Some(&1));
        let d = fresh.path().join("d");
        let mut list = vec![0u8; 4096];
        let n = rfs::listxattr(&d, &mut list[..]).expect("listxattr");
        let names: Vec<String> = list[..n]
            .split(|&b| b == 0)
            .filter(|n| !n.is_empty())
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect();
        assert!(
            !names.iter().any(|n| n.contains("overlay")),
            "overlay xattrs applied: {names:?}"
        );
    }

    #[test]
    fn left_out_kinds_are_counted_and_later_entries_replace_earlier_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("was-dir")).expect("mkdir");
        std::fs::write(dir.path().join("was-dir/f"), "").expect("write");
        let tar = tar_of(&[
            ("fifo", EntryType::Fifo, ""),
            ("link", EntryType::Symlink, "x"),
            ("was-dir", EntryType::Regular, "now a file"),
        ]);
        let root = open_root(dir.path()).expect("root");
        let options = ExtractOptions {
            links: false,
            ..plain()
        };
        let report = extract_tar(&tar[..], &root, options).expect("extract");
        assert_eq!(report.skipped_entries, 2);
        assert!(!dir.path().join("fifo").exists());
        assert!(std::fs::symlink_metadata(dir.path().join("link")).is_err());
        assert_eq!(
            std::fs::read(dir.path().join("was-dir")).expect("read"),
            b"now a file"
        );
    }

    #[test]
    fn empty_numeric_fields_read_as_zero_and_garbage_is_refused() {
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..1].copy_from_slice(b"f");
        header.set_entry_type(EntryType::Regular);
        header.set_mode(0o640);
        header.set_size(1);
        header.set_cksum();
        let mut bytes = header.as_bytes().to_vec();
        bytes.extend_from_slice(&[b'x'; 512]);
        bytes.extend_from_slice(&[0u8; 1024]);
        let dir = tempfile::tempdir().expect("tempdir");
        let root = open_root(dir.path()).expect("root");
        extract_tar(&bytes[..], &root, plain()).expect("empty uid, gid and mtime are 0");
        let meta = std::fs::metadata(dir.path().join("f")).expect("f");
        use std::os::unix::fs::MetadataExt;
        assert_eq!((meta.mode() & 0o7777, meta.mtime()), (0o640, 0));

        header.as_old_mut().uid.copy_from_slice(b"zz\0\0\0\0\0\0");
        header.set_cksum();
        let mut bytes = header.as_bytes().to_vec();
        bytes.extend_from_slice(&[b'x'; 512]);
        bytes.extend_from_slice(&[0u8; 1024]);
        let fresh = tempfile::tempdir().expect("tempdir");
        let root = open_root(fresh.path()).expect("root");
        assert!(matches!(
            extract_tar(&bytes[..], &root, plain()),
            Err(ExtractError::BadHeader { .. })
        ));
    }

    #[test]
    fn hard_links_only_reach_earlier_entries() {
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("secret"), "s").expect("write");
        let dir = tempfile::tempdir().expect("tempdir");
        let root = open_root(dir.path()).expect("root");
        let target = outside.path().join("secret");
        let tar = tar_of(&[("l", EntryType::Link, target.to_str().expect("utf-8"))]);
        assert!(matches!(
            extract_tar(&tar[..], &root, plain()),
            Err(ExtractError::HardlinkTarget { .. })
        ));
        let tar = tar_of(&[("a", EntryType::Regular, "a"), ("b", EntryType::Link, "a")]);
        extract_tar(&tar[..], &root, plain()).expect("extract");
        assert_eq!(std::fs::read(dir.path().join("b")).expect("b"), b"a");
    }
}
