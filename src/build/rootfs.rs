//! A writable view of the image being built, for the steps that change files without a
//! container (COPY, WORKDIR): an overlay of the current layers mounted in rbuild's own mount
//! namespace, whose upper dir becomes the new layer. Also the work dirs of RUN steps.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use rbuild_runtime::RootfsSpec;
use rustix::fs::{Mode, OFlags};

use super::error::{io_error, BuildError};
use crate::store::Store;

/// upper/, work/, merged/ in one temp dir of the store (so the upper dir can be renamed into
/// layers/ without a copy).
pub struct StepDirs {
    pub temp: tempfile::TempDir,
    pub rootfs: RootfsSpec,
}

impl StepDirs {
    /// `layers` are diff_ids bottom first, as in the config.
    // Boundary: dirs rbuild makes in its own store temp dir.
    #[allow(clippy::disallowed_methods)]
    pub fn new(store: &Store, layers: &[String], purpose: &str) -> Result<StepDirs, BuildError> {
        let temp = store.temp_dir(purpose)?;
        let mut lower_dirs: Vec<PathBuf> = layers
            .iter()
            .rev()
            .map(|d| store.layer_dir(d))
            .collect::<Result<_, _>>()?;
        if lower_dirs.is_empty() {
            // overlay needs a lower layer; FROM scratch has none.
            let empty = temp.path().join("empty");
            std::fs::create_dir(&empty).map_err(io_error("create empty lower dir"))?;
            lower_dirs.push(empty);
        }
        let rootfs = RootfsSpec {
            lower_dirs,
            upper_dir: temp.path().join("upper"),
            work_dir: temp.path().join("work"),
            merged_dir: temp.path().join("merged"),
        };
        for dir in [&rootfs.upper_dir, &rootfs.work_dir, &rootfs.merged_dir] {
            std::fs::create_dir(dir).map_err(io_error(format!("create {}", dir.display())))?;
        }
        // The upper dir's root becomes the image's / when committed: root-owned, 0755.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&rootfs.upper_dir, std::fs::Permissions::from_mode(0o755))
            .map_err(io_error("chmod upper dir"))?;
        Ok(StepDirs { temp, rootfs })
    }
}

impl StepDirs {
    /// A read-only view of `layers` (another stage, an image) for COPY --from and RUN mounts.
    // Boundary: dirs rbuild makes in its own store temp dir.
    #[allow(clippy::disallowed_methods)]
    pub fn read_only(
        store: &Store,
        layers: &[String],
        purpose: &str,
    ) -> Result<StepDirs, BuildError> {
        let temp = store.temp_dir(purpose)?;
        let mut lower_dirs: Vec<PathBuf> = layers
            .iter()
            .rev()
            .map(|d| store.layer_dir(d))
            .collect::<Result<_, _>>()?;
        // Without an upper dir overlay wants two lowers at least.
        let empty = temp.path().join("empty");
        std::fs::create_dir(&empty).map_err(io_error("create empty lower dir"))?;
        lower_dirs.push(empty);
        let merged_dir = temp.path().join("merged");
        std::fs::create_dir(&merged_dir).map_err(io_error("create merged dir"))?;
        let rootfs = RootfsSpec {
            lower_dirs,
            upper_dir: PathBuf::new(),
            work_dir: PathBuf::new(),
            merged_dir,
        };
        Ok(StepDirs { temp, rootfs })
    }
}

/// The overlay mounted at `merged`, unmounted on drop (also on error paths).
pub struct MountedRootfs {
    merged: PathBuf,
    root: Option<OwnedFd>,
}

impl MountedRootfs {
    pub fn mount(rootfs: &RootfsSpec) -> Result<MountedRootfs, BuildError> {
        rbuild_runtime::mounts::mount_overlay(rootfs)?;
        let mut mounted = MountedRootfs {
            merged: rootfs.merged_dir.clone(),
            root: None,
        };
        let root = rustix::fs::open(
            &rootfs.merged_dir,
            OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| BuildError::Io {
            action: "open merged rootfs".into(),
            source: e.into(),
        })?;
        mounted.root = Some(root);
        Ok(mounted)
    }

    /// A dirfd of the image's `/`: every path below is resolved against it, never the host.
    pub fn root_fd(&self) -> &OwnedFd {
        self.root
            .as_ref()
            .expect("root fd is set right after mounting")
    }

    /// Reads a small file of the image (e.g. /etc/passwd), empty when missing.
    pub fn read_image_file(&self, path: &str) -> String {
        let Ok(fd) = open_in_root(self.root_fd(), path, OFlags::RDONLY) else {
            return String::new();
        };
        std::io::read_to_string(std::fs::File::from(fd)).unwrap_or_default()
    }
}

impl Drop for MountedRootfs {
    fn drop(&mut self) {
        self.root = None;
        let _ = nix::mount::umount2(&self.merged, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Opens `path` (absolute, in image terms) inside `root`: symlinks resolve against the image's
/// root, `..` cannot climb out, /proc magic links are refused.
pub fn open_in_root(root: &OwnedFd, path: &str, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    boundary::open_in_root(root, path, flags)
}

/// `mkdir -p` inside the image; created dirs get `mode` and `owner`. Returns a dirfd of `path`.
/// A dangling symlink on the way is followed inside the image and its target made there.
pub fn mkdir_all_in_root(
    root: &OwnedFd,
    path: &str,
    mode: u32,
    owner: (u32, u32),
) -> Result<OwnedFd, String> {
    boundary::mkdir_all_in_root(root, path, mode, Some(owner)).map_err(|e| match e {
        boundary::RootError::Io { source, .. } if source.raw_os_error() == Some(libc::EINVAL) => {
            super::copy::chown_error(path, owner, rustix::io::Errno::INVAL)
        }
        boundary::RootError::NotADirectory { path } => {
            format!("{path} exists in the image and is not a directory")
        }
        e => crate::error_chain(&e),
    })
}
