//! Selecting COPY sources inside the context root, honouring `.dockerignore`, and hashing them.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Stat};

use sha2::{Digest as _, Sha256};

use super::ignore::{clean_relative, IgnoreRules};
use super::pattern::{glob_match, has_wildcards};

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("build context {path} is not a directory")]
    NotADirectory { path: PathBuf },
    #[error("forbidden path outside the build context: {source_path}")]
    OutsideContext { source_path: String },
    #[error("\"/{source_path}\": not found in the build context{why}")]
    NotFound {
        source_path: String,
        why: &'static str,
    },
    #[error("{what} failed: {detail}")]
    Remote { what: String, detail: String },
    #[error("git source {url:?} is not allowed: {why}")]
    GitSourceRefused { url: String, why: String },
    #[error(
        "\"/{source_path}\" is a device node; device nodes cannot be copied from the build context"
    )]
    DeviceNode { source_path: String },
    #[error("cannot read the ignore file {path}")]
    Ignore {
        path: PathBuf,
        #[source]
        source: boundary::RootError,
    },
    #[error("cannot unpack the context archive into {path}")]
    Archive {
        path: PathBuf,
        #[source]
        source: boundary::ExtractError,
    },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ContextError + '_ {
    move |source| ContextError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    File {
        size: u64,
    },
    Dir,
    Symlink {
        target: String,
    },
    /// A named pipe, copied as one (as BuildKit does); never opened, which would block.
    Fifo,
}

/// One file, dir or symlink to copy.
#[derive(Debug, Clone)]
pub struct SourceEntry {
    /// Path relative to the selected source (empty for the source itself).
    pub rel: String,
    /// Where it is on the host, for messages and the digest cache; it is opened through
    /// [`SourceEntry::open`], never by this path.
    pub host_path: PathBuf,
    /// The tree's root, and the entry's real path below it (no symlink on the way).
    root: Arc<OwnedFd>,
    root_rel: String,
    pub kind: SourceKind,
    /// Permission bits (07777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub mtime_nsec: i64,
    /// (device, inode) of a regular file with other hard links: the files of one copy that
    /// share it are linked again at the destination, as BuildKit copies them.
    pub link_id: Option<(u64, u64)>,
    /// The `user.*` and `security.capability` xattrs COPY carries over (as BuildKit's copy
    /// does), part of the cache key.
    pub xattrs: boundary::layer::Xattrs,
    /// The walk's stat of it, for the digest cache.
    pub stamp: super::hashcache::FileStamp,
}

impl SourceEntry {
    /// Opens the entry's file for reading, beneath its tree's root with no symlink followed:
    /// a component swapped for a symlink since the walk makes this fail, never escape. A FIFO
    /// is never opened for reading (the open is non-blocking and checked).
    pub fn open(&self) -> std::io::Result<std::fs::File> {
        let fd = boundary::open_beneath(
            &*self.root,
            &self.root_rel,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK,
        )?;
        let stat = rfs::fstat(&fd)?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(std::io::Error::other(format!(
                "{} is no longer a regular file",
                self.host_path.display()
            )));
        }
        Ok(std::fs::File::from(fd))
    }
}

/// One source argument resolved: its base name, and its entries (itself first, then for a
/// dir every descendant not ignored, sorted).
#[derive(Debug, Clone)]
pub struct Selected {
    /// Base name of the source (what a file is called at a directory destination).
    pub name: String,
    /// Path of the source relative to the root (for --parents and --exclude).
    pub path: String,
    pub entries: Vec<SourceEntry>,
}

impl Selected {
    pub fn is_dir(&self) -> bool {
        self.entries
            .first()
            .is_some_and(|e| e.kind == SourceKind::Dir)
    }
}

#[derive(Debug, Clone)]
pub struct BuildContext {
    root: PathBuf,
    /// The root, open: every walk and open below starts from it.
    root_fd: Arc<OwnedFd>,
    ignore: IgnoreRules,
    /// The build's digest cache, whose remembered xattrs spare unchanged files a listxattr.
    known: Option<Arc<super::HashCache>>,
}

/// Opens a tree root (a path rbuild or the user chose) for walking.
fn open_tree_root(root: &Path) -> Result<Arc<OwnedFd>, ContextError> {
    boundary::open_root(root).map(Arc::new).map_err(io(root))
}

/// The entries of the directory `dir`, sorted by name, each with its stat (a symlink is
/// stat-ed itself, never followed).
fn list_dir(dir: impl AsFd, shown: &Path) -> Result<Vec<(String, Stat)>, ContextError> {
    let dir = dir.as_fd();
    let reader = rfs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io(shown)(e.into()))?;
    let mut names = Vec::new();
    for entry in rfs::Dir::new(reader).map_err(|e| io(shown)(e.into()))? {
        let entry = entry.map_err(|e| io(shown)(e.into()))?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(entry.file_name().to_owned());
        }
    }
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let stat = rfs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| io(&shown.join(name.to_string_lossy().as_ref()))(e.into()))?;
        out.push((name.to_string_lossy().into_owned(), stat));
    }
    Ok(out)
}

/// What a walk calls for each entry it keeps: its path below the root, its stat, and its
/// link target when it is a symlink.
/// `visit(path, stat, link target, (its dir, its name))`.
type WalkVisitor<'a> =
    dyn FnMut(&str, &Stat, Option<String>, (&OwnedFd, &str)) -> Result<(), ContextError> + 'a;

/// Opens the subdirectory `name` of `dir` without following a symlink.
fn open_subdir(dir: impl AsFd, name: &str) -> rustix::io::Result<OwnedFd> {
    rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn is_dir(stat: &Stat) -> bool {
    FileType::from_raw_mode(stat.st_mode) == FileType::Directory
}

impl BuildContext {
    /// Opens the context dir and reads its `.dockerignore`.
    pub fn open(root: &Path) -> Result<BuildContext, ContextError> {
        BuildContext::open_for(root, None)
    }

    /// Opens the context for a Dockerfile: `<Dockerfile>.dockerignore` beside it wins over the
    /// context's `.dockerignore`, as in BuildKit; without either, podman's `.containerignore`
    /// is read (with both, `.dockerignore` wins, as docker reads only it).
    pub fn open_for(root: &Path, dockerfile: Option<&Path>) -> Result<BuildContext, ContextError> {
        let root = root.canonicalize().map_err(io(root))?;
        if !root.is_dir() {
            return Err(ContextError::NotADirectory { path: root });
        }
        let specific = dockerfile.map(|d| {
            let mut name = d.as_os_str().to_os_string();
            name.push(".dockerignore");
            PathBuf::from(name)
        });
        // `<Dockerfile>.dockerignore` beside a Dockerfile the user named is a host path of
        // theirs; `.dockerignore` in the context is resolved inside the context. Neither is
        // read unless it is a regular file (a FIFO would block the build).
        const LIMIT: u64 = 16 << 20;
        let mut text = None;
        if let Some(path) = specific {
            match boundary::read_regular_file(&path, LIMIT) {
                Ok(bytes) => text = Some(bytes),
                Err(e) if e.is_not_found() => {}
                Err(source) => return Err(ContextError::Ignore { path, source }),
            }
        }
        for name in [".dockerignore", ".containerignore"] {
            if text.is_some() {
                break;
            }
            let path = root.join(name);
            let read = boundary::open_root(&root)
                .map_err(|source| boundary::RootError::Io {
                    action: "open",
                    path: root.display().to_string(),
                    source,
                })
                .and_then(|fd| boundary::read_in_root(&fd, name, LIMIT));
            match read {
                Ok(bytes) => text = Some(bytes),
                Err(e) if e.is_not_found() => {}
                Err(source) => return Err(ContextError::Ignore { path, source }),
            }
        }
        let ignore = text
            .map(|bytes| IgnoreRules::parse(&String::from_utf8_lossy(&bytes)))
            .unwrap_or_default();
        let root_fd = open_tree_root(&root)?;
        Ok(BuildContext {
            root,
            root_fd,
            ignore,
            known: None,
        })
    }

    /// Lets walks reuse what `cache` remembers of unchanged files (their xattrs).
    pub fn remember_with(&mut self, cache: Arc<super::HashCache>) {
        self.known = Some(cache);
    }

    /// Paths below `rel` that `.dockerignore` excludes (a whole excluded dir once, unless an
    /// exception may bring back something inside it), relative to `rel`.
    pub fn excluded_below(&self, rel: &str) -> Vec<String> {
        let mut excluded = Vec::new();
        if !self.ignore.is_empty() {
            if let Ok(start) = boundary::open_beneath(&*self.root_fd, rel, OFlags::DIRECTORY) {
                self.collect_excluded(&start, rel, rel, &mut excluded);
            }
        }
        excluded
    }

    fn collect_excluded(&self, dir: &OwnedFd, rel: &str, base: &str, out: &mut Vec<String>) {
        let Ok(entries) = list_dir(dir, &self.root.join(rel)) else {
            return;
        };
        for (name, stat) in entries {
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let below_base = path
                .strip_prefix(base)
                .map(|p| p.trim_start_matches('/'))
                .unwrap_or(&path)
                .to_string();
            let descend = |out: &mut Vec<String>| {
                if let Ok(sub) = open_subdir(dir, &name) {
                    self.collect_excluded(&sub, &path, base, out);
                }
            };
            if self.ignore.is_excluded(&path) {
                if is_dir(&stat) && self.ignore.may_reinclude_below(&path) {
                    descend(out);
                } else {
                    out.push(below_base);
                }
            } else if is_dir(&stat) {
                descend(out);
            }
        }
    }

    /// A stage's or image's filesystem as a COPY source: no `.dockerignore` applies.
    pub fn image_root(root: &Path) -> Result<BuildContext, ContextError> {
        Ok(BuildContext {
            root: root.to_path_buf(),
            root_fd: open_tree_root(root)?,
            ignore: IgnoreRules::default(),
            known: None,
        })
    }

    /// Resolves `rel` with every symlink followed inside the root (an absolute link target
    /// means the root's `/`, never the host's): the open object, and its real path below the
    /// root (no symlink on it).
    fn resolve_in_root(&self, rel: &str) -> Result<(OwnedFd, String), ContextError> {
        let fd = boundary::open_in_root(&*self.root_fd, rel, OFlags::PATH).map_err(|_| {
            ContextError::NotFound {
                source_path: rel.to_string(),
                why: "",
            }
        })?;
        // The kernel's name for what was opened (a magic link of our own fd, read, not
        // followed): where in the tree the source really is.
        let real = rfs::readlinkat(
            rfs::CWD,
            format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd)),
            Vec::new(),
        )
        .map_err(|e| io(&self.root.join(rel))(e.into()))?;
        let real = PathBuf::from(real.to_string_lossy().into_owned());
        let below = real
            .strip_prefix(&self.root)
            .map_err(|_| ContextError::OutsideContext {
                source_path: rel.to_string(),
            })?;
        Ok((fd, below.to_string_lossy().into_owned()))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn ignore_rules(&self) -> &IgnoreRules {
        &self.ignore
    }

    pub fn is_excluded(&self, rel: &str) -> bool {
        self.ignore.is_excluded(rel)
    }

    /// Resolves one COPY source argument to what it selects.
    pub fn select(&self, source: &str) -> Result<Vec<Selected>, ContextError> {
        // `..` stops at the root, as BuildKit cleans a source against the context's `/`:
        // `../f` is the context's `f` (conformance cases copy-026, add-020), never the host's.
        let rel = clean_relative(source);
        if has_wildcards(&rel) {
            // A COPY source is matched as Go's filepath.Match matches it: `**` is two `*`, one
            // path component, not any depth as in .dockerignore (conformance case
            // copy-010-doublestar).
            let mut pattern = String::with_capacity(rel.len());
            for c in rel.chars() {
                if !(c == '*' && pattern.ends_with('*')) {
                    pattern.push(c);
                }
            }
            let mut matches = Vec::new();
            self.walk_paths("", &mut |path| {
                if glob_match(&pattern, path) {
                    matches.push(path.to_string());
                }
            })?;
            // A wildcard may match nothing: BuildKit copies with AllowEmptyWildcard
            // (conformance cases copy-008-wildcard-nomatch, copy-012-wildcard-none-alone).
            // A match inside a matched dir is already copied with it.
            let mut selected = Vec::new();
            for path in &matches {
                let inside_other = matches
                    .iter()
                    .any(|m| m != path && path.starts_with(&format!("{m}/")));
                if !inside_other {
                    selected.push(self.select_path(path)?);
                }
            }
            return Ok(selected);
        }
        Ok(vec![self.select_path(&rel)?])
    }

    fn select_path(&self, rel: &str) -> Result<Selected, ContextError> {
        let excluded_itself = !rel.is_empty() && self.ignore.is_excluded(rel);
        let excluded = || ContextError::NotFound {
            source_path: rel.to_string(),
            why: " (excluded by .dockerignore)",
        };
        if excluded_itself && !self.ignore.may_reinclude_below(rel) {
            return Err(excluded());
        }
        // The top-level source is followed if it is a symlink, resolved inside the root.
        let (resolved, resolved_rel) = self.resolve_in_root(rel)?;
        // Ignore rules apply to what the source resolves to: with `.env` ignored, neither
        // `alias -> .env` nor `self -> .` (then `self/.env`) brings it in.
        if resolved_rel != rel && !resolved_rel.is_empty() && self.ignore.is_excluded(&resolved_rel)
        {
            return Err(ContextError::NotFound {
                source_path: rel.to_string(),
                why: " (it resolves to a path excluded by .dockerignore)",
            });
        }
        let name = rel.rsplit('/').next().unwrap_or("").to_string();
        let host = self.root.join(&resolved_rel);
        let stat = rfs::fstat(&resolved).map_err(|e| io(&host)(e.into()))?;
        if !copyable(rel, &stat)? {
            return Err(ContextError::NotFound {
                source_path: rel.to_string(),
                why: " (a socket cannot be copied)",
            });
        }
        let xattrs = kept_xattrs(&stat, || boundary::layer::kept_xattrs_of(resolved.as_fd()))
            .map_err(io(&host))?;
        let mut entries = vec![self.entry_for("", &resolved_rel, &stat, None, xattrs)];
        if is_dir(&stat) {
            let dir = rfs::openat(
                &resolved,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| io(&host)(e.into()))?;
            let base = resolved_rel;
            self.walk_from(&dir, &base, &mut |path, stat, link, (dir, name)| {
                if !copyable(path, stat)? {
                    return Ok(());
                }
                let inner = if base.is_empty() {
                    path
                } else {
                    path.strip_prefix(&format!("{base}/")).unwrap_or(path)
                };
                // An unchanged file's xattrs are remembered with its digest: no listxattr.
                let remembered = self
                    .known
                    .as_ref()
                    .and_then(|known| known.xattrs(&self.root.join(path), &file_stamp(stat)));
                let xattrs = match remembered {
                    Some(xattrs) => xattrs,
                    None => {
                        kept_xattrs(stat, || boundary::layer::kept_xattrs_at(dir.as_fd(), name))
                            .map_err(io(&self.root.join(path)))?
                    }
                };
                entries.push(self.entry_for(inner, path, stat, link, xattrs));
                Ok(())
            })?;
        }
        if excluded_itself && entries.len() < 2 {
            // An excluded dir exists only as the parent of something re-included.
            return Err(excluded());
        }
        Ok(Selected {
            name,
            path: rel.to_string(),
            entries,
        })
    }

    fn entry_for(
        &self,
        rel: &str,
        root_rel: &str,
        stat: &Stat,
        link: Option<String>,
        xattrs: boundary::layer::Xattrs,
    ) -> SourceEntry {
        let kind = match (link, FileType::from_raw_mode(stat.st_mode)) {
            (Some(target), _) => SourceKind::Symlink { target },
            (None, FileType::Directory) => SourceKind::Dir,
            (None, FileType::Fifo) => SourceKind::Fifo,
            (None, _) => SourceKind::File {
                size: u64::try_from(stat.st_size).unwrap_or(0),
            },
        };
        SourceEntry {
            rel: rel.to_string(),
            host_path: self.root.join(root_rel),
            root: self.root_fd.clone(),
            root_rel: root_rel.to_string(),
            kind,
            mode: stat.st_mode & 0o7777,
            uid: stat.st_uid,
            gid: stat.st_gid,
            mtime: stat.st_mtime,
            mtime_nsec: i64::try_from(stat.st_mtime_nsec).unwrap_or(0),
            link_id: (FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile
                && stat.st_nlink > 1)
                .then_some((stat.st_dev, stat.st_ino)),
            xattrs,
            stamp: file_stamp(stat),
        }
    }

    /// Calls `visit(rel_path)` for every non-ignored entry below `start`, sorted.
    fn walk_paths(&self, start: &str, visit: &mut dyn FnMut(&str)) -> Result<(), ContextError> {
        let dir = boundary::open_beneath(&*self.root_fd, start, OFlags::DIRECTORY)
            .map_err(|e| io(&self.root.join(start))(e.into()))?;
        self.walk_from(&dir, start, &mut |path, _, _, _| {
            visit(path);
            Ok(())
        })
    }

    /// Walks the directory `dir` (at `rel` below the root) by descriptor, never following a
    /// symlink, and calls `visit(path, stat, link target)` for every entry `.dockerignore`
    /// keeps, sorted; descends into excluded dirs only when an exception may reinclude
    /// something below.
    fn walk_from(
        &self,
        dir: &OwnedFd,
        rel: &str,
        visit: &mut WalkVisitor<'_>,
    ) -> Result<(), ContextError> {
        for (name, stat) in list_dir(dir, &self.root.join(rel))? {
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let excluded = self.ignore.is_excluded(&path);
            if !excluded {
                let link = if FileType::from_raw_mode(stat.st_mode) == FileType::Symlink {
                    let target = rfs::readlinkat(dir, name.as_str(), Vec::new())
                        .map_err(|e| io(&self.root.join(&path))(e.into()))?;
                    Some(target.to_string_lossy().into_owned())
                } else {
                    None
                };
                visit(&path, &stat, link, (dir, &name))?;
            }
            if is_dir(&stat) && !excluded {
                let sub =
                    open_subdir(dir, &name).map_err(|e| io(&self.root.join(&path))(e.into()))?;
                self.walk_from(&sub, &path, visit)?;
            } else if is_dir(&stat) && self.ignore.may_reinclude_below(&path) {
                // An excluded dir is still there as the parent of what an exception brings
                // back (`**` then `!dir/keep`), and only then: it is visited just before the
                // first entry below it, as BuildKit's context transfer sends it.
                let sub =
                    open_subdir(dir, &name).map_err(|e| io(&self.root.join(&path))(e.into()))?;
                let mut parent_sent = false;
                self.walk_from(&sub, &path, &mut |p, st, link, at| {
                    if !parent_sent {
                        parent_sent = true;
                        visit(&path, &stat, None, (dir, &name))?;
                    }
                    visit(p, st, link, at)
                })?;
            }
        }
        Ok(())
    }
}

/// The kept xattrs of a regular file or directory (`read`); other kinds carry none (Linux
/// allows no `user.*` xattr on a symlink or FIFO).
/// The stat fields that tell a file unchanged, for the digest cache.
fn file_stamp(stat: &Stat) -> super::hashcache::FileStamp {
    super::hashcache::FileStamp {
        dev: stat.st_dev,
        ino: stat.st_ino,
        size: u64::try_from(stat.st_size).unwrap_or(0),
        mtime_ns: i128::from(stat.st_mtime) * 1_000_000_000 + i128::from(stat.st_mtime_nsec),
        ctime_ns: i128::from(stat.st_ctime) * 1_000_000_000 + i128::from(stat.st_ctime_nsec),
    }
}

fn kept_xattrs(
    stat: &Stat,
    read: impl FnOnce() -> std::io::Result<boundary::layer::Xattrs>,
) -> std::io::Result<boundary::layer::Xattrs> {
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile | FileType::Directory => read(),
        _ => Ok(Vec::new()),
    }
}

/// Whether an entry can be copied: sockets are left out (as Docker's archiver leaves them
/// out), device nodes are refused (a rootless build cannot create them).
fn copyable(path: &str, stat: &Stat) -> Result<bool, ContextError> {
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::CharacterDevice | FileType::BlockDevice => Err(ContextError::DeviceNode {
            source_path: path.to_string(),
        }),
        FileType::Socket => Ok(false),
        _ => Ok(true),
    }
}

/// Content digest of selected sources for the cache key: path, type, mode, content, link
/// target; never mtime (a touched file must still hit).
pub fn hash_selection(selected: &[Selected]) -> Result<String, ContextError> {
    hash_selection_with(selected, &super::HashCache::default())
}

/// `hash_selection` with file digests from (and into) `cache`.
pub fn hash_selection_with(
    selected: &[Selected],
    cache: &super::HashCache,
) -> Result<String, ContextError> {
    let mut hasher = Sha256::new();
    for sel in selected {
        hasher.update(format!("source {}\0", sel.name).as_bytes());
        for entry in &sel.entries {
            hasher.update(
                format!(
                    "{}\0{:o}\0{}:{}\0",
                    entry.rel, entry.mode, entry.uid, entry.gid
                )
                .as_bytes(),
            );
            for (name, value) in &entry.xattrs {
                hasher.update(b"xattr\0");
                hasher.update(name);
                hasher.update(format!("\0{}\0", hex::encode(value)).as_bytes());
            }
            match &entry.kind {
                SourceKind::Dir => hasher.update(b"dir\0"),
                SourceKind::Fifo => hasher.update(b"fifo\0"),
                SourceKind::Symlink { target } => {
                    hasher.update(format!("link\0{target}\0").as_bytes())
                }
                SourceKind::File { size } => {
                    let digest = cache.digest(entry).map_err(io(&entry.host_path))?;
                    hasher.update(format!("file\0{size}\0{digest}\0").as_bytes());
                }
            }
        }
    }
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // fixtures the tests create
mod tests {
    use super::*;

    fn context(files: &[(&str, &str)], ignore: &str) -> (tempfile::TempDir, BuildContext) {
        let dir = tempfile::tempdir().expect("tempdir");
        for (path, content) in files {
            let full = dir.path().join(path);
            std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
            std::fs::write(&full, content).expect("write");
        }
        std::fs::write(dir.path().join(".dockerignore"), ignore).expect("write ignore");
        let ctx = BuildContext::open(dir.path()).expect("open");
        (dir, ctx)
    }

    fn names(selected: &[Selected]) -> Vec<String> {
        selected
            .iter()
            .flat_map(|s| {
                s.entries
                    .iter()
                    .map(move |e| format!("{}:{}", s.name, e.rel))
            })
            .collect()
    }

    /// Excluded dirs are there only as parents of what an exception re-includes
    /// (conformance case dockerignore-090-reinclude-under-all).
    #[test]
    fn excluded_dirs_exist_only_around_reincluded_files() {
        let (_dir, ctx) = context(
            &[
                ("dir/keep", "k"),
                ("dir/drop", "d"),
                ("other/drop", "d"),
                ("top", "t"),
            ],
            "**\n!**/keep\n",
        );
        assert_eq!(
            names(&ctx.select("dir").expect("dir")),
            ["dir:", "dir:keep"]
        );
        assert!(matches!(
            ctx.select("other"),
            Err(ContextError::NotFound { .. })
        ));
        assert_eq!(
            names(&ctx.select("*").expect("wildcard")),
            ["dir:", "dir:keep"]
        );
        assert_eq!(
            names(&ctx.select(".").expect("all")),
            [":", ":dir", ":dir/keep"]
        );
    }

    #[test]
    fn selects_files_dirs_and_wildcards_honouring_dockerignore() {
        let (_dir, ctx) = context(
            &[
                ("a.txt", "a"),
                ("b.txt", "b"),
                ("c.log", "c"),
                ("d/e.txt", "e"),
                ("d/skip.log", "s"),
            ],
            "*.log\nd/*.log\n",
        );
        assert_eq!(names(&ctx.select("a.txt").expect("file")), ["a.txt:"]);
        assert_eq!(
            names(&ctx.select("*.txt").expect("glob")),
            ["a.txt:", "b.txt:"]
        );
        assert_eq!(names(&ctx.select("d").expect("dir")), ["d:", "d:e.txt"]);
        assert_eq!(
            names(&ctx.select("./d/").expect("dir slash")),
            ["d:", "d:e.txt"]
        );
        assert!(matches!(
            ctx.select("c.log"),
            Err(ContextError::NotFound { .. })
        ));
        assert!(matches!(
            ctx.select("nope"),
            Err(ContextError::NotFound { .. })
        ));
        assert!(ctx.select("*.md").is_ok_and(|s| s.is_empty()));
        // `..` stops at the context's root: the context's file, never the host's.
        assert!(matches!(
            ctx.select("../etc/passwd"),
            Err(ContextError::NotFound { .. })
        ));
        assert_eq!(names(&ctx.select("../a.txt").expect("clamped")), ["a.txt:"]);
    }

    #[test]
    fn symlinks_resolve_inside_the_root_never_on_the_host() {
        let (dir, ctx) = context(&[("a", "inside")], "");
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("escape")).expect("symlink");
        std::os::unix::fs::symlink("/a", dir.path().join("absolute")).expect("symlink");
        std::os::unix::fs::symlink("../../../a", dir.path().join("climbing")).expect("symlink");
        assert!(
            matches!(ctx.select("escape"), Err(ContextError::NotFound { .. })),
            "/etc/passwd of the root, not the host"
        );
        for link in ["absolute", "climbing"] {
            let selected = ctx.select(link).expect("resolves inside");
            assert_eq!(
                std::fs::read_to_string(&selected[0].entries[0].host_path).expect("read"),
                "inside"
            );
        }
    }

    #[test]
    fn hash_ignores_mtime_but_not_content_or_mode() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, ctx) = context(&[("f", "one")], "");
        let h1 = hash_selection(&ctx.select("f").expect("sel")).expect("hash");
        let f = dir.path().join("f");
        let file = std::fs::File::options().write(true).open(&f).expect("open");
        file.set_modified(std::time::SystemTime::UNIX_EPOCH)
            .expect("touch");
        assert_eq!(
            hash_selection(&ctx.select("f").expect("sel")).expect("hash"),
            h1
        );
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let h2 = hash_selection(&ctx.select("f").expect("sel")).expect("hash");
        assert_ne!(h2, h1);
        std::fs::write(&f, "two").expect("write");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_ne!(
            hash_selection(&ctx.select("f").expect("sel")).expect("hash"),
            h1
        );
    }
}
