//! COPY from the build context into the mounted image: destination rules of BuildKit
//! (directory sources copy their contents, a trailing `/` or several sources mean a directory),
//! every write resolved inside the image's root.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;

use boundary::write::{self, EntryMeta};
use rustix::fs::{FileType, OFlags};

use super::rootfs::{mkdir_all_in_root, open_in_root, ImageFsError};
use crate::context::{Selected, SourceKind};

/// How files land: an owner for all (--chown, or root for context files) or None to keep the
/// source's (COPY --from a stage or image), and an optional --chmod.
#[derive(Debug, Clone)]
pub struct CopyAttrs {
    pub owner: Option<(u32, u32)>,
    pub chmod: Option<Chmod>,
    /// --parents: a directory source lands at `dest/<its name>`, not merged into dest.
    pub keep_dir_names: bool,
    /// `--isolation none`: where the copy may not write.
    pub stay_on: Option<StayOn>,
}

/// `--isolation none` copies onto the container's own root: never at or below one of its
/// mount points (volumes hold host data; told by the mount id of the directory a file goes
/// into, whatever symlinks led there) nor a path rbuild keeps.
#[derive(Debug, Clone)]
pub struct StayOn {
    mount_id: u64,
    kept: boundary::walk::Kept,
}

fn mount_id(fd: &OwnedFd) -> Option<u64> {
    rustix::fs::statx(
        fd,
        "",
        rustix::fs::AtFlags::EMPTY_PATH,
        rustix::fs::StatxFlags::MNT_ID,
    )
    .ok()
    .map(|st| st.stx_mnt_id)
}

impl StayOn {
    /// The rule for `root` (the container's root, open) and the `kept` paths.
    pub fn of_root(root: &OwnedFd, kept: boundary::walk::Kept) -> Option<StayOn> {
        Some(StayOn {
            mount_id: mount_id(root)?,
            kept,
        })
    }

    /// Refuses writing `target` into the directory `parent`.
    pub fn check(&self, parent: &OwnedFd, target: &str) -> Result<(), ImageFsError> {
        let relative = std::path::Path::new(target.trim_start_matches('/'));
        if self.kept.keeps(relative) || mount_id(parent) != Some(self.mount_id) {
            return Err(ImageFsError::Kept {
                path: target.to_string(),
            });
        }
        Ok(())
    }
}

/// A `--chmod` value BuildKit refuses, worded as it words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChmodError {
    #[error("invalid chmod parameter: '{0}'. it should be octal string and between 0 and 07777")]
    OutOfRange(String),
    #[error("invalid chmod parameter: '{0}'")]
    Invalid(String),
}

/// `--chmod`: octal (`0644`) or symbolic (`u+x,g-w,o=r`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chmod {
    Octal(u32),
    Symbolic(Vec<SymbolicClause>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolicClause {
    /// Bits of who (u: 0o4700 incl. setuid, g: 0o2070, o: 0o0007, a: all, sticky with t).
    who: u32,
    op: char,
    perms: String,
}

impl Chmod {
    pub fn parse(text: &str) -> Result<Chmod, ChmodError> {
        if let Ok(mode) = u32::from_str_radix(text, 8) {
            return if mode <= 0o7777 {
                Ok(Chmod::Octal(mode))
            } else {
                Err(ChmodError::OutOfRange(text.to_string()))
            };
        }
        let mut clauses = Vec::new();
        for clause in text.split(',') {
            let op_at = clause
                .find(['+', '-', '='])
                .ok_or_else(|| ChmodError::Invalid(text.to_string()))?;
            let (who_text, rest) = clause.split_at(op_at);
            let mut who = 0;
            for c in who_text.chars() {
                who |= match c {
                    'u' => 0o4700,
                    'g' => 0o2070,
                    'o' => 0o0007,
                    'a' => 0o6777,
                    _ => return Err(ChmodError::Invalid(text.to_string())),
                };
            }
            if who == 0 {
                who = 0o6777;
            }
            let op = rest.chars().next().unwrap_or('=');
            let perms = rest[1..].to_string();
            if !perms.chars().all(|c| "rwxXst".contains(c)) {
                return Err(ChmodError::Invalid(text.to_string()));
            }
            clauses.push(SymbolicClause { who, op, perms });
        }
        Ok(Chmod::Symbolic(clauses))
    }

    /// The mode a file (or dir) of `mode` gets.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let clauses = match self {
            Chmod::Octal(mode) => return *mode,
            Chmod::Symbolic(clauses) => clauses,
        };
        let mut mode = mode & 0o7777;
        for clause in clauses {
            let mut bits = 0;
            for p in clause.perms.chars() {
                bits |= match p {
                    'r' => 0o444,
                    'w' => 0o222,
                    'x' => 0o111,
                    'X' if is_dir || mode & 0o111 != 0 => 0o111,
                    's' => 0o6000,
                    't' => 0o1000,
                    _ => 0,
                };
            }
            let mask = clause.who
                | if clause.perms.contains('t') {
                    0o1000
                } else {
                    0
                };
            let bits = bits & mask;
            match clause.op {
                '+' => mode |= bits,
                '-' => mode &= !bits,
                _ => mode = (mode & !(clause.who & 0o777)) | bits,
            }
        }
        mode
    }
}

/// Joins an image path and a relative one, normalising `.` and `..` lexically (`..` at `/`
/// stays at `/`, as in a chroot).
pub fn join_image_path(base: &str, rel: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let full = if rel.starts_with('/') {
        rel.to_string()
    } else {
        format!("{base}/{rel}")
    };
    for part in full.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Where a file copied to `target` lands: through a symlink there, resolved inside the image
/// (as BuildKit resolves a copy's destination with fs.RootPath): `COPY f /link` with
/// `/link -> /target` writes `/target` (conformance case copy-051-overwrite-symlink).
fn through_links(root: &OwnedFd, target: String) -> String {
    let mut path = target;
    // As many hops as the kernel follows (ELOOP after 40).
    for _ in 0..40 {
        let (parent, name) = match path.rsplit_once('/') {
            Some((p, n)) => (if p.is_empty() { "/" } else { p }, n),
            None => ("/", path.as_str()),
        };
        let Ok(parent_fd) = open_in_root(root, parent, OFlags::DIRECTORY) else {
            return path;
        };
        match rustix::fs::readlinkat(&parent_fd, name, Vec::new()) {
            Ok(link) => path = join_image_path(parent, &link.to_string_lossy()),
            Err(_) => return path,
        }
    }
    path
}

/// Copies every selected source to `dest` (absolute, in the image). `dest_is_dir` is the
/// caller's reading of the trailing-slash and several-sources rules. Every entry is written
/// by the boundary's tree writer, relative to its parent opened inside the image.
pub fn copy_sources(
    root: &OwnedFd,
    selected: &[Selected],
    dest: &str,
    dest_is_dir: bool,
    attrs: CopyAttrs,
) -> Result<(), ImageFsError> {
    let dest_exists_as_dir = open_in_root(root, dest, OFlags::DIRECTORY).is_ok();
    let mut dir_times: Vec<(String, (i64, i64))> = Vec::new();
    for sel in selected {
        // Hard links among one source's files: the first one written, by (device, inode).
        // Per source, as BuildKit copies each source with its own copy (conformance case
        // copy-091-from-hardlinks: `COPY a c /pair/` does not link them).
        let mut linked: std::collections::HashMap<(u64, u64), String> = Default::default();
        let base = if sel.is_dir() && !attrs.keep_dir_names {
            dest.to_string()
        } else if dest_is_dir || dest_exists_as_dir || attrs.keep_dir_names {
            join_image_path(dest, &sel.name)
        } else {
            dest.to_string()
        };
        for entry in &sel.entries {
            let target = if entry.rel.is_empty() && matches!(entry.kind, SourceKind::File { .. }) {
                through_links(root, base.clone())
            } else if entry.rel.is_empty() {
                base.clone()
            } else {
                join_image_path(&base, &entry.rel)
            };
            let (parent, name) = match target.rsplit_once('/') {
                Some((p, n)) => (if p.is_empty() { "/" } else { p }, n),
                None => ("/", target.as_str()),
            };
            if name.is_empty() {
                // The destination is `/` itself: only its contents are copied.
                continue;
            }
            let is_dir = entry.kind == SourceKind::Dir;
            let meta = EntryMeta {
                owner: Some(attrs.owner.unwrap_or((entry.uid, entry.gid))),
                mode: attrs
                    .chmod
                    .as_ref()
                    .map_or(entry.mode, |c| c.apply(entry.mode, is_dir)),
                mtime: (entry.mtime, entry.mtime_nsec),
            };
            // Directories COPY has to create belong to the --chown owner (root without it),
            // as BuildKit creates them.
            let parent_fd = mkdir_all_in_root(root, parent, 0o755, attrs.owner.unwrap_or((0, 0)))?;
            if let Some(stay_on) = &attrs.stay_on {
                stay_on.check(&parent_fd, &target)?;
            }
            let name = OsStr::new(name);
            // A directory source's contents go into dest: dest itself is not the source dir.
            // An existing one is left as it is (`COPY tmp/ /tmp/` keeps /tmp's 1777 and
            // owner); a new one is 0755, owned by --chown's owner or root, as BuildKit
            // creates it (conformance cases copy-003, copy-006, copy-009).
            let copy_root = entry.rel.is_empty() && sel.is_dir() && !attrs.keep_dir_names;
            match &entry.kind {
                SourceKind::Dir if copy_root => {
                    // A directory's contents cannot go into a file: BuildKit fails there
                    // (conformance case fail-010-dir-onto-file), it does not replace it.
                    let exists =
                        rustix::fs::statat(&parent_fd, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                            .is_ok();
                    let is_dir = open_in_root(root, &target, OFlags::DIRECTORY).is_ok();
                    if exists && !is_dir {
                        return Err(ImageFsError::NotADirectory { path: target });
                    }
                    if !is_dir {
                        let fd = write::dir(&parent_fd, name, &target)?;
                        let created = EntryMeta {
                            owner: Some(attrs.owner.unwrap_or((0, 0))),
                            mode: 0o755,
                            mtime: meta.mtime,
                        };
                        write::set_owner_mode(&fd, &target, &created)?;
                    }
                }
                SourceKind::Dir => {
                    let fd = write::dir(&parent_fd, name, &target)?;
                    write::set_owner_mode(&fd, &target, &meta)?;
                    write::set_xattrs_at(&parent_fd, name, &target, &entry.xattrs)?;
                    dir_times.push((target.clone(), meta.mtime));
                }
                SourceKind::File { .. }
                    if entry.link_id.is_some_and(|id| linked.contains_key(&id)) =>
                {
                    let first = entry
                        .link_id
                        .and_then(|id| linked.get(&id))
                        .cloned()
                        .unwrap_or_default();
                    write::hard_link(
                        root,
                        std::path::Path::new(first.trim_start_matches('/')),
                        &parent_fd,
                        name,
                        &target,
                    )?;
                }
                SourceKind::File { .. } => {
                    if let Some(id) = entry.link_id {
                        linked.insert(id, target.clone());
                    }
                    let mut input = entry.open().map_err(|source| ImageFsError::Source {
                        action: "read",
                        path: entry.host_path.clone(),
                        source,
                    })?;
                    write::file(&parent_fd, name, &target, &mut input, &meta)?;
                    write::set_xattrs_at(&parent_fd, name, &target, &entry.xattrs)?;
                }
                SourceKind::Fifo => {
                    write::node(&parent_fd, name, &target, FileType::Fifo, 0, &meta)?;
                }
                SourceKind::Symlink { target: link } => {
                    write::symlink(&parent_fd, name, &target, OsStr::new(link), &meta)?;
                }
            }
        }
    }
    // Directory times last: writing their contents changed them.
    for (path, mtime) in dir_times.iter().rev() {
        if let Ok(fd) = open_in_root(root, path, OFlags::DIRECTORY) {
            let _ = rustix::fs::futimens(&fd, &write::timestamps(*mtime));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // fixtures the tests create
mod tests {
    use super::join_image_path;

    #[test]
    fn chmod_octal_and_symbolic() {
        use super::Chmod;
        let table = [
            ("0640", 0o755, false, 0o640),
            ("u+x", 0o644, false, 0o744),
            ("g-w,o=r", 0o666, false, 0o644),
            ("a+X", 0o644, false, 0o644),
            ("a+X", 0o644, true, 0o755),
            ("a+X", 0o744, false, 0o755),
            ("u=rwx,go=", 0o777, false, 0o700),
            ("+t", 0o755, true, 0o1755),
            ("u+s", 0o755, false, 0o4755),
        ];
        for (text, mode, is_dir, want) in table {
            let chmod = Chmod::parse(text).expect(text);
            assert_eq!(chmod.apply(mode, is_dir), want, "{text} on {mode:o}");
        }
        for bad in ["9999", "07778", "q+x", "u+z", "u"] {
            assert!(Chmod::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn image_paths_join_and_clamp_at_root() {
        assert_eq!(join_image_path("/app", "x"), "/app/x");
        assert_eq!(join_image_path("/app", "/abs"), "/abs");
        assert_eq!(join_image_path("/app", "../../x"), "/x");
        assert_eq!(join_image_path("/", "./a/./b/"), "/a/b");
        assert_eq!(join_image_path("/", ""), "/");
    }
}
