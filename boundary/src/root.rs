//! Paths resolved inside a root held as a directory fd.
//!
//! Every function takes the root (or a parent already resolved inside it) as an fd and a path
//! in the tree's own terms. `..` stops at the root, absolute symlinks resolve against it, and
//! `/proc/self/fd`-style magic links are refused, so nothing a tree contains can name a file
//! outside it. The kernel does the resolution (`openat2`), in one call, which is also what
//! keeps a 10,000-file copy fast: callers open a parent once and work relative to it.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, Gid, Mode, OFlags, ResolveFlags, Uid, CWD};
use rustix::io::Errno;

/// A failed operation inside a tree, named by the path in the tree's terms.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path} exists and is not a directory")]
    NotADirectory { path: String },
    #[error("{path} is not a regular file")]
    NotAFile { path: String },
}

impl RootError {
    /// True when the path does not exist (as opposed to existing and being unreadable).
    pub fn is_not_found(&self) -> bool {
        matches!(self, RootError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

impl RootError {
    fn io<'a>(action: &'static str, path: &'a str) -> impl FnOnce(Errno) -> RootError + 'a {
        move |e| RootError::Io {
            action,
            path: path.to_string(),
            source: e.into(),
        }
    }
}

/// `openat2` answers EAGAIN when a rename elsewhere raced the lookup; it is safe to retry.
const RETRIES: usize = 64;

fn openat2_retrying(
    dir: impl AsFd,
    path: &OsStr,
    flags: OFlags,
    resolve: ResolveFlags,
) -> rustix::io::Result<OwnedFd> {
    let dir = dir.as_fd();
    let path: &OsStr = if path.is_empty() {
        OsStr::new(".")
    } else {
        path
    };
    let mut tries = 0;
    loop {
        match rfs::openat2(dir, path, flags | OFlags::CLOEXEC, Mode::empty(), resolve) {
            Err(Errno::AGAIN) if tries < RETRIES => tries += 1,
            other => return other,
        }
    }
}

/// Opens the directory `path` of the host as the root of a tree. The path is rbuild's own (a
/// layer dir, a temp dir, the context directory the user named), never one from inside a tree.
pub fn open_root(path: &Path) -> io::Result<OwnedFd> {
    Ok(rfs::openat(
        CWD,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens `path` inside `root` as if `root` were `/`: symlinks (relative or absolute) and `..`
/// resolve within it, magic links are refused. The final component is followed too; add
/// `OFlags::NOFOLLOW` to refuse a final symlink.
pub fn open_in_root(
    root: impl AsFd,
    path: impl AsRef<OsStr>,
    flags: OFlags,
) -> rustix::io::Result<OwnedFd> {
    openat2_retrying(
        root,
        strip_leading_slashes(path.as_ref()),
        flags,
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
}

/// Opens the directory `path` inside `root` (see [`open_in_root`]).
pub fn open_dir_in_root(root: impl AsFd, path: impl AsRef<OsStr>) -> rustix::io::Result<OwnedFd> {
    open_in_root(root, path, OFlags::RDONLY | OFlags::DIRECTORY)
}

/// Opens `path` strictly beneath `dir` without following any symlink on the way: for trees
/// rbuild writes itself (an output directory, a step's upper dir) where a symlink on the path
/// can only be something planted.
pub fn open_beneath(
    dir: impl AsFd,
    path: impl AsRef<OsStr>,
    flags: OFlags,
) -> rustix::io::Result<OwnedFd> {
    openat2_retrying(
        dir,
        path.as_ref(),
        flags,
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
}

fn strip_leading_slashes(path: &OsStr) -> &OsStr {
    let bytes = path.as_bytes();
    let start = bytes.iter().take_while(|&&b| b == b'/').count();
    OsStr::from_bytes(&bytes[start..])
}

/// `mkdir -p path` inside `root`; the directories it creates get `mode` and, when given,
/// `owner`. Returns a dirfd of `path`. A dangling symlink on the way is followed inside the
/// root and its target created there (as BuildKit does for `COPY f /y/` when `/y -> /nowhere`).
/// A component that exists as something other than a directory is an error naming it.
pub fn mkdir_all_in_root(
    root: impl AsFd,
    path: impl AsRef<OsStr>,
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<OwnedFd, RootError> {
    mkdir_all_hops(root.as_fd(), path.as_ref().as_bytes(), mode, owner, 0)
}

/// Symlinks followed while creating one path before giving up (the kernel's own limit).
const MAX_LINK_HOPS: usize = 40;

fn mkdir_all_hops(
    root: std::os::fd::BorrowedFd<'_>,
    path: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
    hops: usize,
) -> Result<OwnedFd, RootError> {
    if let Ok(fd) = open_dir_in_root(root, OsStr::from_bytes(path)) {
        return Ok(fd);
    }
    let shown = |p: &[u8]| String::from_utf8_lossy(p).into_owned();
    let mut dir = open_dir_in_root(root, "").map_err(RootError::io("open", "/"))?;
    let mut so_far: Vec<u8> = Vec::new();
    for component in path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
    {
        let parent = so_far.clone();
        so_far.push(b'/');
        so_far.extend_from_slice(component);
        let here = OsStr::from_bytes(&so_far);
        let name = OsStr::from_bytes(component);
        let io_err = |action: &'static str, e: Errno| RootError::Io {
            action,
            path: shown(&so_far),
            source: e.into(),
        };
        match open_dir_in_root(root, here) {
            Ok(fd) => dir = fd,
            Err(Errno::NOENT) => {
                match rfs::mkdirat(&dir, name, Mode::from_raw_mode(mode)) {
                    Ok(()) => {}
                    Err(Errno::EXIST) => {
                        // a dangling symlink: create its target, inside the root
                        let target = rfs::readlinkat(&dir, name, Vec::new()).map_err(|_| {
                            RootError::NotADirectory {
                                path: shown(&so_far),
                            }
                        })?;
                        if hops >= MAX_LINK_HOPS {
                            return Err(io_err("resolve", Errno::LOOP));
                        }
                        let target = target.as_bytes();
                        let next = if target.starts_with(b"/") {
                            target.to_vec()
                        } else {
                            [parent.as_slice(), b"/", target].concat()
                        };
                        mkdir_all_hops(root, &next, mode, owner, hops + 1)?;
                        dir = open_dir_in_root(root, here).map_err(|e| io_err("open", e))?;
                        continue;
                    }
                    Err(e) => return Err(io_err("create directory", e)),
                }
                let fd = open_dir_in_root(root, here).map_err(|e| io_err("open", e))?;
                if let Some((uid, gid)) = owner {
                    rfs::fchown(&fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
                        .map_err(|e| io_err("set the owner of", e))?;
                }
                rfs::fchmod(&fd, Mode::from_raw_mode(mode))
                    .map_err(|e| io_err("set the mode of", e))?;
                dir = fd;
            }
            Err(Errno::NOTDIR) => {
                return Err(RootError::NotADirectory {
                    path: shown(&so_far),
                })
            }
            Err(e) => return Err(io_err("open", e)),
        }
    }
    Ok(dir)
}

/// Reads the regular file `path` inside `root`, at most `limit` bytes (a longer file is cut
/// there). A FIFO, device, socket or directory is refused without being read, so nothing
/// blocks: the open is non-blocking and the type is checked on the open descriptor.
pub fn read_in_root(root: impl AsFd, path: &str, limit: u64) -> Result<Vec<u8>, RootError> {
    let fd = open_in_root(root, path, OFlags::RDONLY | OFlags::NONBLOCK)
        .map_err(RootError::io("open", path))?;
    read_regular(fd, path, limit)
}

/// Reads the regular file at the host path `path` (one the user named, e.g. `-f FILE`), with
/// the same refusal of anything that is not a regular file.
pub fn read_regular_file(path: &Path, limit: u64) -> Result<Vec<u8>, RootError> {
    let shown = path.display().to_string();
    let fd = rfs::openat(
        CWD,
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(RootError::io("open", &shown))?;
    read_regular(fd, &shown, limit)
}

fn read_regular(fd: OwnedFd, path: &str, limit: u64) -> Result<Vec<u8>, RootError> {
    use std::io::Read;
    let stat = rfs::fstat(&fd).map_err(RootError::io("stat", path))?;
    if rfs::FileType::from_raw_mode(stat.st_mode) != rfs::FileType::RegularFile {
        return Err(RootError::NotAFile {
            path: path.to_string(),
        });
    }
    let mut out = Vec::new();
    std::fs::File::from(fd)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|source| RootError::Io {
            action: "read",
            path: path.to_string(),
            source,
        })?;
    Ok(out)
}

/// Removes `name` in `dir`, recursively when it is a directory, never following a symlink. A
/// missing name is not an error.
pub fn remove_all_at(dir: impl AsFd, name: &OsStr) -> io::Result<()> {
    let dir = dir.as_fd();
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
        remove_all_at(&sub, OsStr::from_bytes(&n))?;
    }
    rfs::unlinkat(dir, name, AtFlags::REMOVEDIR)?;
    Ok(())
}

/// True when the directory `dir` has no entries.
pub fn is_empty_dir(dir: impl AsFd) -> io::Result<bool> {
    let dup = rfs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for entry in rfs::Dir::new(dup)? {
        let n = entry?.file_name().to_bytes().to_vec();
        if n != b"." && n != b".." {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("secret"), "host").expect("write");
        let tree = tempfile::tempdir().expect("tempdir");
        std::fs::write(tree.path().join("secret"), "tree").expect("write");
        symlink(outside.path().join("secret"), tree.path().join("abs")).expect("symlink");
        symlink("../../../../secret", tree.path().join("up")).expect("symlink");
        symlink("/", tree.path().join("hostroot")).expect("symlink");
        let root = open_root(tree.path()).expect("root");
        // an absolute target is taken in the tree's terms: it does not exist there
        assert_eq!(
            open_in_root(&root, "abs", OFlags::RDONLY).err(),
            Some(Errno::NOENT)
        );
        assert_eq!(read_in_root(&root, "/up", 100).expect("read"), b"tree");
        assert_eq!(
            read_in_root(&root, "hostroot/secret", 100).expect("read"),
            b"tree"
        );
        assert_eq!(
            open_in_root(&root, "/proc/self/root/etc/passwd", OFlags::RDONLY).err(),
            Some(Errno::NOENT)
        );
    }

    #[test]
    fn only_regular_files_are_read_and_fifos_never_block() {
        let tree = tempfile::tempdir().expect("tempdir");
        let fifo = tree.path().join("fifo");
        rfs::mknodat(
            CWD,
            &fifo,
            rfs::FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .expect("mkfifo");
        std::fs::create_dir(tree.path().join("dir")).expect("mkdir");
        let root = open_root(tree.path()).expect("root");
        for name in ["fifo", "dir"] {
            assert!(
                matches!(
                    read_in_root(&root, name, 10),
                    Err(RootError::NotAFile { .. })
                ),
                "{name}"
            );
        }
        assert!(matches!(
            read_regular_file(&fifo, 10),
            Err(RootError::NotAFile { .. })
        ));
        assert!(read_in_root(&root, "missing", 10)
            .err()
            .is_some_and(|e| e.is_not_found()));
    }

    #[test]
    fn beneath_refuses_every_symlink() {
        let tree = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(tree.path().join("d")).expect("mkdir");
        symlink("d", tree.path().join("link")).expect("symlink");
        let root = open_root(tree.path()).expect("root");
        assert!(open_beneath(&root, "d", OFlags::DIRECTORY).is_ok());
        assert_eq!(
            open_beneath(&root, "link", OFlags::DIRECTORY).err(),
            Some(Errno::LOOP)
        );
        assert_eq!(
            open_beneath(&root, "../", OFlags::DIRECTORY).err(),
            Some(Errno::XDEV)
        );
    }

    #[test]
    fn mkdir_all_follows_dangling_links_inside_the_root() {
        let outside = tempfile::tempdir().expect("tempdir");
        let tree = tempfile::tempdir().expect("tempdir");
        let target = outside.path().join("made");
        symlink(&target, tree.path().join("y")).expect("symlink");
        std::fs::write(tree.path().join("file"), "").expect("write");
        let root = open_root(tree.path()).expect("root");
        mkdir_all_in_root(&root, "/y/w", 0o755, None).expect("mkdir");
        assert!(!target.exists(), "nothing is created outside the root");
        let inside = tree
            .path()
            .join(target.strip_prefix("/").expect("absolute"))
            .join("w");
        assert!(inside.is_dir(), "{} exists", inside.display());
        assert!(matches!(
            mkdir_all_in_root(&root, "/file/sub", 0o755, None),
            Err(RootError::NotADirectory { .. })
        ));
    }

    #[test]
    fn remove_all_does_not_follow_links() {
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("keep"), "").expect("write");
        let tree = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(tree.path().join("d")).expect("mkdir");
        symlink(outside.path(), tree.path().join("d/link")).expect("symlink");
        let root = open_root(tree.path()).expect("root");
        remove_all_at(&root, OsStr::new("d")).expect("remove");
        assert!(!tree.path().join("d").exists());
        assert!(outside.path().join("keep").exists());
        assert!(is_empty_dir(&root).expect("read"));
    }
}
