//! Writing a tree by descriptor: COPY into an image and the `type=local` output create every
//! entry through these functions, relative to a parent directory fd resolved inside the
//! destination (see [`crate::root`]). The final component is never followed: whatever is at
//! the name is replaced (a directory only by a directory), so a symlink planted in the
//! destination cannot redirect a write.

use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{self as rfs, AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid};
use rustix::io::Errno;

/// What a written entry gets: an owner (None keeps the writer's), permission bits, and its
/// modification time (seconds, nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryMeta {
    pub owner: Option<(u32, u32)>,
    pub mode: u32,
    pub mtime: (i64, i64),
}

/// Why an entry could not be written; `path` is the entry as the caller names it (a path in
/// the image, or in the output directory).
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {path}: it is a directory, and only a directory can replace one")]
    DirectoryInTheWay { path: String },
    #[error(
        "cannot give {path} to {uid}:{gid}: the id is not mapped in the user namespace (add a subordinate id range in /etc/subuid and /etc/subgid)"
    )]
    UnmappedId { path: String, uid: u32, gid: u32 },
}

fn io_err<'a>(action: &'static str, path: &'a str) -> impl FnOnce(Errno) -> WriteError + 'a {
    move |e| WriteError::Io {
        action,
        path: path.to_string(),
        source: e.into(),
    }
}

/// The timestamps for `mtime` (access time = modification time, as archives carry one).
pub fn timestamps((sec, nsec): (i64, i64)) -> Timestamps {
    let t = Timespec {
        tv_sec: sec,
        tv_nsec: nsec as _,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

fn chown_err(path: &str, (uid, gid): (u32, u32), e: Errno) -> WriteError {
    if e == Errno::INVAL {
        WriteError::UnmappedId {
            path: path.to_string(),
            uid,
            gid,
        }
    } else {
        io_err("set the owner of", path)(e)
    }
}

/// Makes room for a non-directory at `name`: removes a file, symlink or node there; a
/// directory there is an error.
fn clear_for_non_dir(parent: &OwnedFd, name: &OsStr, path: &str) -> Result<(), WriteError> {
    match rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
            Err(WriteError::DirectoryInTheWay {
                path: path.to_string(),
            })
        }
        Ok(_) => rfs::unlinkat(parent, name, AtFlags::empty()).map_err(io_err("replace", path)),
        Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(io_err("look at", path)(e)),
    }
}

/// Owner, then mode (chown clears set-id bits), of an open entry.
pub fn set_owner_mode(fd: &OwnedFd, path: &str, meta: &EntryMeta) -> Result<(), WriteError> {
    if let Some((uid, gid)) = meta.owner {
        rfs::fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
            .map_err(|e| chown_err(path, (uid, gid), e))?;
    }
    rfs::fchmod(fd, Mode::from_raw_mode(meta.mode)).map_err(io_err("set the mode of", path))
}

/// The directory `name` in `parent`, made when missing (a non-directory there is replaced),
/// kept when it exists; returns it open. Its owner, mode and time are the caller's to set
/// with [`finish_dir`] once its contents are written (writing them changes its mtime).
pub fn dir(parent: &OwnedFd, name: &OsStr, path: &str) -> Result<OwnedFd, WriteError> {
    match rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
        Ok(_) => {
            rfs::unlinkat(parent, name, AtFlags::empty()).map_err(io_err("replace", path))?;
            rfs::mkdirat(parent, name, Mode::from_raw_mode(0o755))
                .map_err(io_err("create directory", path))?;
        }
        Err(Errno::NOENT) => rfs::mkdirat(parent, name, Mode::from_raw_mode(0o755))
            .map_err(io_err("create directory", path))?,
        Err(e) => return Err(io_err("look at", path)(e)),
    }
    rfs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err("open", path))
}

/// Sets `xattrs` (from [`crate::layer::kept_xattrs_at`]: `user.*`, `security.capability`)
/// on the file or directory `name` in `parent`, written just before; last, since a chown
/// clears `security.capability`. The entry is opened without following a symlink.
pub fn set_xattrs_at(
    parent: &OwnedFd,
    name: &OsStr,
    path: &str,
    xattrs: &[(Vec<u8>, Vec<u8>)],
) -> Result<(), WriteError> {
    if xattrs.is_empty() {
        return Ok(());
    }
    let fd = rfs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err("open", path))?;
    for (key, value) in xattrs {
        use std::os::unix::ffi::OsStrExt;
        rfs::fsetxattr(&fd, OsStr::from_bytes(key), value, rfs::XattrFlags::empty())
            .map_err(io_err("set the extended attributes of", path))?;
    }
    Ok(())
}

/// Owner, mode and mtime of a directory whose contents are written.
pub fn finish_dir(fd: &OwnedFd, path: &str, meta: &EntryMeta) -> Result<(), WriteError> {
    set_owner_mode(fd, path, meta)?;
    rfs::futimens(fd, &timestamps(meta.mtime)).map_err(io_err("set the times of", path))
}

/// A regular file `name` in `parent` with the bytes of `contents`.
pub fn file(
    parent: &OwnedFd,
    name: &OsStr,
    path: &str,
    contents: &mut dyn Read,
    meta: &EntryMeta,
) -> Result<(), WriteError> {
    clear_for_non_dir(parent, name, path)?;
    let fd = rfs::openat(
        parent,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(io_err("create", path))?;
    let mut out = std::fs::File::from(fd);
    io::copy(contents, &mut out).map_err(|source| WriteError::Io {
        action: "write",
        path: path.to_string(),
        source,
    })?;
    let fd = OwnedFd::from(out);
    set_owner_mode(&fd, path, meta)?;
    rfs::futimens(&fd, &timestamps(meta.mtime)).map_err(io_err("set the times of", path))
}

/// A hard link `name` in `parent` to `existing`, a path beneath `root` written earlier (its
/// parent is opened with no symlink allowed, and linkat does not follow the last component).
pub fn hard_link(
    root: impl AsFd,
    existing: &std::path::Path,
    parent: &OwnedFd,
    name: &OsStr,
    path: &str,
) -> Result<(), WriteError> {
    clear_for_non_dir(parent, name, path)?;
    let existing_parent = existing.parent().unwrap_or(std::path::Path::new(""));
    let existing_name = existing.file_name().unwrap_or_default();
    let from = crate::root::open_beneath(root, existing_parent, OFlags::DIRECTORY)
        .map_err(io_err("open the link target of", path))?;
    rfs::linkat(&from, existing_name, parent, name, AtFlags::empty()).map_err(io_err("link", path))
}

/// Owner and mtime of `name` set by name, not following it (a symlink, or a node that must
/// not be opened).
fn set_owner_times_at(
    parent: &OwnedFd,
    name: &OsStr,
    path: &str,
    meta: &EntryMeta,
) -> Result<(), WriteError> {
    if let Some((uid, gid)) = meta.owner {
        rfs::chownat(
            parent,
            name,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| chown_err(path, (uid, gid), e))?;
    }
    rfs::utimensat(
        parent,
        name,
        &timestamps(meta.mtime),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(io_err("set the times of", path))
}

/// A symlink `name` in `parent` pointing to `target` (kept as written: it is resolved by
/// whoever follows it later, inside their own root).
pub fn symlink(
    parent: &OwnedFd,
    name: &OsStr,
    path: &str,
    target: &OsStr,
    meta: &EntryMeta,
) -> Result<(), WriteError> {
    clear_for_non_dir(parent, name, path)?;
    rfs::symlinkat(target, parent, name).map_err(io_err("create the symlink", path))?;
    set_owner_times_at(parent, name, path, meta)
}

/// A FIFO or device node `name` in `parent`. False when the kernel refuses a device node
/// (EPERM: an unprivileged user cannot make one); a FIFO is always made. Never opened.
pub fn node(
    parent: &OwnedFd,
    name: &OsStr,
    path: &str,
    kind: FileType,
    device: u64,
    meta: &EntryMeta,
) -> Result<bool, WriteError> {
    clear_for_non_dir(parent, name, path)?;
    match rfs::mknodat(parent, name, kind, Mode::from_raw_mode(0o600), device) {
        Ok(()) => {}
        Err(Errno::PERM) if kind != FileType::Fifo => return Ok(false),
        Err(e) => return Err(io_err("create", path)(e)),
    }
    set_owner_times_at(parent, name, path, meta)?;
    // after the owner: chown clears set-id bits; a node just made by us, not a symlink
    rfs::chmodat(
        parent,
        name,
        Mode::from_raw_mode(meta.mode),
        AtFlags::empty(),
    )
    .map_err(io_err("set the mode of", path))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root::open_root;
    use std::os::unix::fs::{symlink as make_symlink, MetadataExt};

    fn meta(mode: u32) -> EntryMeta {
        EntryMeta {
            owner: None,
            mode,
            mtime: (1_000_000, 0),
        }
    }

    #[test]
    fn writes_replace_planted_symlinks_instead_of_following_them() {
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("victim"), "host").expect("write");
        let tree = tempfile::tempdir().expect("tempdir");
        make_symlink(outside.path().join("victim"), tree.path().join("f")).expect("symlink");
        make_symlink(outside.path(), tree.path().join("d")).expect("symlink");
        let root = open_root(tree.path()).expect("root");
        file(&root, OsStr::new("f"), "/f", &mut &b"new"[..], &meta(0o640)).expect("file");
        let d = dir(&root, OsStr::new("d"), "/d").expect("dir");
        file(
            &d,
            OsStr::new("inside"),
            "/d/inside",
            &mut &b"x"[..],
            &meta(0o644),
        )
        .expect("file");
        finish_dir(&d, "/d", &meta(0o750)).expect("finish");
        assert_eq!(
            std::fs::read(outside.path().join("victim")).expect("read"),
            b"host"
        );
        assert!(!outside.path().join("inside").exists());
        let f = std::fs::symlink_metadata(tree.path().join("f")).expect("f");
        assert!(f.is_file());
        assert_eq!((f.mode() & 0o7777, f.mtime()), (0o640, 1_000_000));
        let d = std::fs::symlink_metadata(tree.path().join("d")).expect("d");
        assert!(d.is_dir());
        assert_eq!(d.mode() & 0o7777, 0o750);
    }

    #[test]
    fn only_a_directory_replaces_a_directory() {
        let tree = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(tree.path().join("d")).expect("mkdir");
        let root = open_root(tree.path()).expect("root");
        assert!(matches!(
            file(&root, OsStr::new("d"), "/d", &mut &b""[..], &meta(0o644)),
            Err(WriteError::DirectoryInTheWay { .. })
        ));
        assert!(node(
            &root,
            OsStr::new("p"),
            "/p",
            FileType::Fifo,
            0,
            &meta(0o600)
        )
        .expect("fifo"));
        symlink(
            &root,
            OsStr::new("p"),
            "/p",
            OsStr::new("target"),
            &meta(0o777),
        )
        .expect("link");
        assert_eq!(
            std::fs::read_link(tree.path().join("p")).expect("readlink"),
            std::path::Path::new("target")
        );
    }
}
