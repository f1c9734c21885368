//! Selecting COPY sources inside the context root, honouring `.dockerignore`, and hashing them.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

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
    #[error("no source files were specified: {pattern} matches nothing in the build context")]
    NoMatch { pattern: String },
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
    pub host_path: PathBuf,
    pub kind: SourceKind,
    /// Permission bits (07777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub mtime_nsec: i64,
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
    ignore: IgnoreRules,
}

impl BuildContext {
    /// Opens the context dir and reads its `.dockerignore`.
    pub fn open(root: &Path) -> Result<BuildContext, ContextError> {
        BuildContext::open_for(root, None)
    }

    /// Opens the context for a Dockerfile: `<Dockerfile>.dockerignore` beside it wins over the
    /// context's `.dockerignore`, as in BuildKit.
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
        if text.is_none() {
            let path = root.join(".dockerignore");
            let read = boundary::open_root(&root)
                .map_err(|source| boundary::RootError::Io {
                    action: "open",
                    path: root.display().to_string(),
                    source,
                })
                .and_then(|fd| boundary::read_in_root(&fd, ".dockerignore", LIMIT));
            match read {
                Ok(bytes) => text = Some(bytes),
                Err(e) if e.is_not_found() => {}
                Err(source) => return Err(ContextError::Ignore { path, source }),
            }
        }
        let ignore = text
            .map(|bytes| IgnoreRules::parse(&String::from_utf8_lossy(&bytes)))
            .unwrap_or_default();
        Ok(BuildContext { root, ignore })
    }

    /// Paths below `rel` that `.dockerignore` excludes (a whole excluded dir once, unless an
    /// exception may bring back something inside it), relative to `rel`.
    pub fn excluded_below(&self, rel: &str) -> Vec<String> {
        let mut excluded = Vec::new();
        if !self.ignore.is_empty() {
            let start = self.root.join(rel);
            self.collect_excluded(&start, rel, rel, &mut excluded);
        }
        excluded
    }

    // TODO(boundary, issue 10): the context walk still works from host paths (read_dir + symlink_metadata, which follow no final symlink); moving it onto dirfds is open work.
    #[allow(clippy::disallowed_methods)]
    fn collect_excluded(&self, dir: &Path, rel: &str, base: &str, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut names: Vec<_> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let full = dir.join(&name);
            let is_dir = std::fs::symlink_metadata(&full)
                .map(|m| m.is_dir())
                .unwrap_or(false);
            let below_base = path
                .strip_prefix(base)
                .map(|p| p.trim_start_matches('/'))
                .unwrap_or(&path)
                .to_string();
            if self.ignore.is_excluded(&path) {
                if is_dir && self.ignore.may_reinclude_below(&path) {
                    self.collect_excluded(&full, &path, base, out);
                } else {
                    out.push(below_base);
                }
            } else if is_dir {
                self.collect_excluded(&full, &path, base, out);
            }
        }
    }

    /// A stage's or image's filesystem as a COPY source: no `.dockerignore` applies.
    pub fn image_root(root: &Path) -> BuildContext {
        BuildContext {
            root: root.to_path_buf(),
            ignore: IgnoreRules::default(),
        }
    }

    /// Resolves `rel` with every symlink followed inside the root (an absolute link target
    /// means the root's `/`, never the host's), returning the host path it lands on.
    // Boundary: readlink of /proc/self/fd of an fd resolved by boundary::open_in_root.
    #[allow(clippy::disallowed_methods)]
    fn resolve_in_root(&self, rel: &str) -> Result<PathBuf, ContextError> {
        use rustix::fs::{Mode, OFlags};
        let root_fd = rustix::fs::open(
            &self.root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| ContextError::Io {
            path: self.root.clone(),
            source: e.into(),
        })?;
        let fd = boundary::open_in_root(&root_fd, rel, OFlags::PATH).map_err(|_| {
            ContextError::NotFound {
                source_path: rel.to_string(),
                why: "",
            }
        })?;
        let real = std::fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&fd)
        ))
        .map_err(|e| ContextError::Io {
            path: self.root.join(rel),
            source: e,
        })?;
        if !real.starts_with(&self.root) {
            return Err(ContextError::OutsideContext {
                source_path: rel.to_string(),
            });
        }
        Ok(real)
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
        if escapes_root(source) {
            return Err(ContextError::OutsideContext {
                source_path: source.to_string(),
            });
        }
        let rel = clean_relative(source);
        if has_wildcards(&rel) {
            let mut matches = Vec::new();
            self.walk_paths("", &mut |path, _| {
                if glob_match(&rel, path) {
                    matches.push(path.to_string());
                }
            })?;
            if matches.is_empty() {
                return Err(ContextError::NoMatch {
                    pattern: source.to_string(),
                });
            }
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

    // TODO(boundary, issue 10): see collect_excluded.
    #[allow(clippy::disallowed_methods)]
    fn select_path(&self, rel: &str) -> Result<Selected, ContextError> {
        if !rel.is_empty() && self.ignore.is_excluded(rel) {
            return Err(ContextError::NotFound {
                source_path: rel.to_string(),
                why: " (excluded by .dockerignore)",
            });
        }
        // The top-level source is followed if it is a symlink, resolved inside the root.
        let resolved = self.resolve_in_root(rel)?;
        // Ignore rules apply to what the source resolves to: with `.env` ignored, neither
        // `alias -> .env` nor `self -> .` (then `self/.env`) brings it in.
        let resolved_rel = resolved
            .strip_prefix(&self.root)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        if resolved_rel != rel && !resolved_rel.is_empty() && self.ignore.is_excluded(&resolved_rel)
        {
            return Err(ContextError::NotFound {
                source_path: rel.to_string(),
                why: " (it resolves to a path excluded by .dockerignore)",
            });
        }
        let name = rel.rsplit('/').next().unwrap_or("").to_string();
        let meta = std::fs::metadata(&resolved).map_err(io(&resolved))?;
        let mut entries = Vec::new();
        if !copyable(rel, &meta)? {
            return Err(ContextError::NotFound {
                source_path: rel.to_string(),
                why: " (a socket cannot be copied)",
            });
        }
        entries.push(entry_for("", &resolved, &meta, None));
        if meta.is_dir() {
            let base = resolved_rel;
            let mut found = Vec::new();
            self.walk_paths_from(&resolved, &base, &mut |path, full| {
                found.push((path.to_string(), full.to_path_buf()))
            })?;
            for (path, full) in found {
                let meta = std::fs::symlink_metadata(&full).map_err(io(&full))?;
                if !copyable(&path, &meta)? {
                    continue;
                }
                let link = if meta.file_type().is_symlink() {
                    Some(
                        std::fs::read_link(&full)
                            .map_err(io(&full))?
                            .to_string_lossy()
                            .into_owned(),
                    )
                } else {
                    None
                };
                let inner = path
                    .strip_prefix(&format!("{base}/"))
                    .unwrap_or(&path)
                    .to_string();
                let inner = if base.is_empty() { path.clone() } else { inner };
                entries.push(entry_for(&inner, &full, &meta, link));
            }
        }
        Ok(Selected {
            name,
            path: rel.to_string(),
            entries,
        })
    }

    /// Calls `visit(rel_path, host_path)` for every non-ignored entry below the root, sorted.
    fn walk_paths(
        &self,
        start: &str,
        visit: &mut dyn FnMut(&str, &Path),
    ) -> Result<(), ContextError> {
        let dir = self.root.join(start);
        self.walk_paths_from(&dir, start, visit)
    }

    // TODO(boundary, issue 10): see collect_excluded.
    #[allow(clippy::disallowed_methods)]
    fn walk_paths_from(
        &self,
        dir: &Path,
        rel: &str,
        visit: &mut dyn FnMut(&str, &Path),
    ) -> Result<(), ContextError> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io(dir))?;
        names.sort();
        for name in names {
            let name = name.to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let full = dir.join(&name);
            let is_dir = std::fs::symlink_metadata(&full)
                .map(|m| m.is_dir())
                .unwrap_or(false);
            let excluded = self.ignore.is_excluded(&path);
            if !excluded {
                visit(&path, &full);
            }
            if is_dir && (!excluded || self.ignore.may_reinclude_below(&path)) {
                self.walk_paths_from(&full, &path, visit)?;
            }
        }
        Ok(())
    }
}

/// Whether an entry can be copied: sockets are left out (as Docker's archiver leaves them
/// out), device nodes are refused (a rootless build cannot create them).
fn copyable(path: &str, meta: &std::fs::Metadata) -> Result<bool, ContextError> {
    use std::os::unix::fs::FileTypeExt;
    let kind = meta.file_type();
    if kind.is_char_device() || kind.is_block_device() {
        return Err(ContextError::DeviceNode {
            source_path: path.to_string(),
        });
    }
    Ok(!kind.is_socket())
}

fn entry_for(
    rel: &str,
    host: &Path,
    meta: &std::fs::Metadata,
    link: Option<String>,
) -> SourceEntry {
    let kind = match link {
        Some(target) => SourceKind::Symlink { target },
        None if meta.is_dir() => SourceKind::Dir,
        None if std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type()) => SourceKind::Fifo,
        None => SourceKind::File { size: meta.len() },
    };
    SourceEntry {
        rel: rel.to_string(),
        host_path: host.to_path_buf(),
        kind,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        mtime: meta.mtime(),
        mtime_nsec: meta.mtime_nsec(),
    }
}

/// True when `source` climbs above the context root (`../x`, `a/../../x`).
fn escapes_root(source: &str) -> bool {
    let mut depth: i64 = 0;
    for part in source.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
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
            match &entry.kind {
                SourceKind::Dir => hasher.update(b"dir\0"),
                SourceKind::Fifo => hasher.update(b"fifo\0"),
                SourceKind::Symlink { target } => {
                    hasher.update(format!("link\0{target}\0").as_bytes())
                }
                SourceKind::File { size } => {
                    let digest = cache
                        .digest(&entry.host_path)
                        .map_err(io(&entry.host_path))?;
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
        assert!(matches!(
            ctx.select("*.md"),
            Err(ContextError::NoMatch { .. })
        ));
        assert!(matches!(
            ctx.select("../etc/passwd"),
            Err(ContextError::OutsideContext { .. })
        ));
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
