//! The step's filesystem: the overlay rootfs, /proc, /dev, /sys, the /etc bind mounts and
//! pivot_root. Runs in the step's pid-1 process, in its own mount namespace.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use rustix::fs::{Mode, OFlags};

use crate::error::SetupError;
use crate::spec::{MountStub, RootfsSpec, TreeMount};

/// Longest option string passed to mount(2): the kernel copies one 4 KiB page.
const MOUNT_DATA_LIMIT: usize = 4000;

/// Stops mount events propagating between this (new) mount namespace and its parent, so
/// nothing mounted here shows on the host and host mounts do not appear mid-step.
pub fn make_mounts_private() -> Result<(), SetupError> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| SetupError::os("make mounts private", e))
}

/// Option string for a legacy overlay mount, or None when it cannot be expressed that way
/// (too long for the page, or a path holds a separator the option syntax cannot escape).
pub fn overlay_options(rootfs: &RootfsSpec) -> Option<String> {
    let as_text = |p: &Path| p.to_str().map(str::to_string);
    let mut lowers = Vec::with_capacity(rootfs.lower_dirs.len());
    for dir in &rootfs.lower_dirs {
        lowers.push(as_text(dir)?);
    }
    let upper = as_text(&rootfs.upper_dir)?;
    let work = as_text(&rootfs.work_dir)?;
    let bad = |s: &String| s.contains([',', ':', '\\']);
    if lowers.iter().any(bad) || bad(&upper) || bad(&work) {
        return None;
    }
    let options = if rootfs.is_read_only() {
        format!("userxattr,lowerdir={}", lowers.join(":"))
    } else {
        format!(
            "userxattr,lowerdir={},upperdir={upper},workdir={work}",
            lowers.join(":")
        )
    };
    (options.len() <= MOUNT_DATA_LIMIT).then_some(options)
}

/// Mounts the overlay at `rootfs.merged_dir`: through mount(2) when the options fit one page,
/// else through the new mount API adding one lower layer per `lowerdir+` call (kernel >= 6.8),
/// which has no length limit.
pub fn mount_overlay(rootfs: &RootfsSpec) -> Result<(), SetupError> {
    if let Some(options) = overlay_options(rootfs) {
        return mount(
            Some("overlay"),
            &rootfs.merged_dir,
            Some("overlay"),
            MsFlags::empty(),
            Some(options.as_str()),
        )
        .map_err(|e| {
            SetupError::os(
                format!("mount overlay on {}", rootfs.merged_dir.display()),
                e,
            )
        });
    }
    use rustix::mount::{
        fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
        FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags,
    };
    let step =
        |what: &str, e: rustix::io::Errno| SetupError::os(format!("mount overlay ({what})"), e);
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(|e| step("fsopen", e))?;
    fsconfig_set_string(&fs, "source", "overlay").map_err(|e| step("source", e))?;
    fsconfig_set_flag(&fs, "userxattr").map_err(|e| step("userxattr", e))?;
    for lower in &rootfs.lower_dirs {
        fsconfig_set_string(&fs, "lowerdir+", lower).map_err(|e| {
            SetupError::os(
                format!(
                    "mount overlay (lowerdir+ {}; stacks of {} layers need kernel >= 6.8)",
                    lower.display(),
                    rootfs.lower_dirs.len()
                ),
                e,
            )
        })?;
    }
    if !rootfs.is_read_only() {
        fsconfig_set_string(&fs, "upperdir", &rootfs.upper_dir).map_err(|e| step("upperdir", e))?;
        fsconfig_set_string(&fs, "workdir", &rootfs.work_dir).map_err(|e| step("workdir", e))?;
    }
    fsconfig_create(&fs).map_err(|e| step("create", e))?;
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
        .map_err(|e| step("fsmount", e))?;
    move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        &rootfs.merged_dir,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| step("move_mount", e))
}

/// Opens `path` inside `root` without ever leaving it (symlinks in the image resolve against
/// the image's root), creating it (and missing parents) when absent. Created paths are
/// recorded as stubs so the caller can remove them from the upper dir.
pub fn ensure_in_root(
    root: &OwnedFd,
    merged: &Path,
    path: &str,
    is_dir: bool,
    stubs: &mut Vec<MountStub>,
) -> Result<std::path::PathBuf, SetupError> {
    // No symlink may be followed: the mount calls below use the plain path, which the host
    // would resolve, so a symlink in the image could otherwise send a mount outside it.
    let refuse = |e: rustix::io::Errno, p: &str| {
        if e == rustix::io::Errno::LOOP || e == rustix::io::Errno::XDEV {
            SetupError::Refused(format!(
                "{p} is a symlink in the image; rbuild cannot mount over it"
            ))
        } else {
            SetupError::os(format!("open mount point {p}"), e)
        }
    };
    let rel = |p: &str| p.trim_start_matches('/').to_string();
    let open_path = |p: &str| boundary::open_beneath(root, rel(p), OFlags::PATH);
    match open_path(path) {
        Ok(_) => return Ok(merged.join(rel(path))),
        Err(rustix::io::Errno::NOENT) => {}
        Err(e) => return Err(refuse(e, path)),
    }
    let mut current = String::new();
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    for (i, component) in components.iter().enumerate() {
        current.push('/');
        current.push_str(component);
        match open_path(&current) {
            Ok(_) => continue,
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(refuse(e, &current)),
        }
        let last = i + 1 == components.len();
        let parent = match current.rsplit_once('/') {
            Some(("", _)) | None => "/".to_string(),
            Some((p, _)) => p.to_string(),
        };
        let parent_fd = boundary::open_beneath(root, rel(&parent), OFlags::DIRECTORY)
            .map_err(|e| SetupError::os(format!("open {parent} in the rootfs"), e))?;
        if last && !is_dir {
            rustix::fs::openat(
                &parent_fd,
                *component,
                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                Mode::from_raw_mode(0o644),
            )
            .map_err(|e| SetupError::os(format!("create mount point {current}"), e))?;
        } else {
            rustix::fs::mkdirat(&parent_fd, *component, Mode::from_raw_mode(0o755))
                .map_err(|e| SetupError::os(format!("create mount point {current}"), e))?;
        }
        stubs.push(MountStub {
            path: current.clone(),
            is_dir: !last || is_dir,
        });
    }
    open_path(path).map_err(|e| refuse(e, path))?;
    Ok(merged.join(rel(path)))
}

/// Mounts a path of an untrusted tree at `target_path` in the rootfs. The path is resolved
/// with every component inside the tree's root (`RESOLVE_IN_ROOT`: `..` and absolute symlinks
/// stop at the tree's root, so `/leak -> /home/me/.ssh/id_ed25519` names the tree's own file),
/// and the open descriptor, not a path, is what gets mounted. Writes of an `rw` mount land in
/// the scratch dir: an overlay over a directory, a private copy of a file.
// Boundary: scratch dirs rbuild made; the source itself is resolved by boundary::open_in_root.
#[allow(clippy::disallowed_methods)]
pub fn mount_from_tree(
    root: &OwnedFd,
    merged: &Path,
    target_path: &str,
    tree: &TreeMount,
    stubs: &mut Vec<MountStub>,
) -> Result<(), SetupError> {
    let tree_root = open_tree_root(tree)?;
    let source =
        boundary::open_in_root(&tree_root, &tree.path, OFlags::PATH).map_err(|e| match e {
            rustix::io::Errno::NOENT => SetupError::Refused(format!(
                "mount source {:?} not found in {}",
                tree.path, tree.describe
            )),
            e => SetupError::os(
                format!("open mount source {:?} in {}", tree.path, tree.describe),
                e,
            ),
        })?;
    let kind = rustix::fs::FileType::from_raw_mode(
        rustix::fs::fstat(&source)
            .map_err(|e| SetupError::os(format!("stat mount source {:?}", tree.path), e))?
            .st_mode,
    );
    let is_dir = kind == rustix::fs::FileType::Directory;
    let target = ensure_in_root(root, merged, target_path, is_dir, stubs)?;
    let source_path = std::path::PathBuf::from(fd_path(&source));
    match &tree.scratch_dir {
        Some(scratch) if is_dir => {
            let (upper, work) = (scratch.join("upper"), scratch.join("work"));
            for dir in [&upper, &work] {
                std::fs::create_dir(dir).map_err(|e| {
                    SetupError::os(format!("create scratch dir {}", dir.display()), e)
                })?;
            }
            mount_overlay(&RootfsSpec {
                lower_dirs: vec![source_path],
                upper_dir: upper,
                work_dir: work,
                merged_dir: target,
                plain: false,
            })
        }
        Some(scratch) if kind == rustix::fs::FileType::RegularFile => {
            let copy = copy_file_for_writes(&source, scratch)?;
            bind(&copy, &target, target_path, false)
        }
        // Read-only; a special file has no content to write to, so `rw` changes nothing.
        _ => {
            bind(&source_path, &target, target_path, true)?;
            remount_readonly(&target)
        }
    }
}

/// The tree's root, open: its one dir, or a read-only overlay of its layer dirs mounted at
/// the staging dir (which vanishes from the step's view with the old root).
fn open_tree_root(tree: &TreeMount) -> Result<OwnedFd, SetupError> {
    let dir = match tree.layers.as_slice() {
        [] => {
            return Err(SetupError::Refused(format!(
                "{} has no layers to mount",
                tree.describe
            )))
        }
        [one] => one,
        layers => {
            mount_overlay(&RootfsSpec {
                lower_dirs: layers.to_vec(),
                upper_dir: Default::default(),
                work_dir: Default::default(),
                merged_dir: tree.staging_dir.clone(),
                plain: false,
            })?;
            &tree.staging_dir
        }
    };
    rustix::fs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SetupError::os(format!("open {} ({})", tree.describe, dir.display()), e))
}

/// A private copy of a regular file for an `rw` bind mount, so that the step's writes never
/// reach the original (a context file such as `.git/config`).
// Boundary: the source is reopened through its fd (/proc/self/fd), the copy goes into rbuild's scratch dir.
#[allow(clippy::disallowed_methods)]
fn copy_file_for_writes(
    source: &OwnedFd,
    scratch: &Path,
) -> Result<std::path::PathBuf, SetupError> {
    use std::os::unix::fs::PermissionsExt;
    let stat = rustix::fs::fstat(source).map_err(|e| SetupError::os("stat mount source", e))?;
    // Reopened through the descriptor: the very file resolved in the tree, never a FIFO
    // (checked by the caller), so the read cannot block.
    let mut original = std::fs::File::open(fd_path(source))
        .map_err(|e| SetupError::os("open mount source for a copy", e))?;
    let copy = scratch.join("file");
    let mut file = std::fs::File::create_new(&copy)
        .map_err(|e| SetupError::os(format!("create {}", copy.display()), e))?;
    std::io::copy(&mut original, &mut file)
        .map_err(|e| SetupError::os("copy the mount source", e))?;
    file.set_permissions(std::fs::Permissions::from_mode(stat.st_mode & 0o7777))
        .map_err(|e| SetupError::os(format!("chmod {}", copy.display()), e))?;
    rustix::fs::fchown(
        &file,
        Some(rustix::fs::Uid::from_raw(stat.st_uid)),
        Some(rustix::fs::Gid::from_raw(stat.st_gid)),
    )
    .map_err(|e| SetupError::os(format!("chown {}", copy.display()), e))?;
    Ok(copy)
}

/// The path through which mount(2) reaches an O_PATH fd's file.
pub fn fd_path(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn mount_err(what: &str, target: &str, e: nix::Error) -> SetupError {
    SetupError::os(format!("mount {what} on {target}"), e)
}

/// Bind-mounts host `source` onto `target` (a path checked by `ensure_in_root`).
pub fn bind(source: &Path, target: &Path, label: &str, recursive: bool) -> Result<(), SetupError> {
    let mut flags = MsFlags::MS_BIND;
    if recursive {
        flags |= MsFlags::MS_REC;
    }
    mount(Some(source), target, None::<&str>, flags, None::<&str>)
        .map_err(|e| mount_err(&source.display().to_string(), label, e))
}

/// Remounts a bind mount read-only, keeping the flags the kernel locks in a user namespace
/// (nosuid, nodev, noexec of the source), else the remount fails with EPERM.
pub fn remount_readonly(target: &Path) -> Result<(), SetupError> {
    let label = target.display().to_string();
    let locked = nix::sys::statvfs::statvfs(target)
        .map_err(|e| SetupError::os(format!("statvfs {label}"), e))?;
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    use nix::sys::statvfs::FsFlags;
    for (have, keep) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if locked.flags().contains(have) {
            flags |= keep;
        }
    }
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
        .map_err(|e| mount_err("read-only remount", &label, e))
}

/// /dev: a fresh tmpfs holding bind mounts of the host's harmless devices, /dev/shm, /dev/pts
/// and the usual symlinks. `dev` is the resolved mount point inside the rootfs.
pub fn setup_dev(
    dev: &Path,
    shm_size: Option<u64>,
    notices: &mut Vec<String>,
) -> Result<(), SetupError> {
    mount(
        Some("tmpfs"),
        dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )
    .map_err(|e| mount_err("tmpfs", "/dev", e))?;
    // Opened after the mount: this is the new tmpfs, not the directory it covers.
    let dev_dir = rustix::fs::openat(
        rustix::fs::CWD,
        dev,
        OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SetupError::os("open /dev tmpfs", e))?;
    for name in ["null", "zero", "full", "random", "urandom", "tty"] {
        let file = rustix::fs::openat(
            &dev_dir,
            name,
            OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o666),
        )
        .map_err(|e| SetupError::os(format!("create /dev/{name}"), e))?;
        let host = format!("/dev/{name}");
        let target = dev.join(name);
        drop(file);
        if let Err(e) = mount(
            Some(host.as_str()),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        ) {
            if name == "tty" {
                // No controlling terminal is needed for a build; keep going without it.
                let _ = rustix::fs::unlinkat(&dev_dir, name, rustix::fs::AtFlags::empty());
                continue;
            }
            return Err(mount_err(&host, &format!("/dev/{name}"), e));
        }
    }
    for (dir, mode) in [("shm", 0o1777), ("pts", 0o755), ("mqueue", 0o755)] {
        rustix::fs::mkdirat(&dev_dir, dir, Mode::from_raw_mode(mode))
            .map_err(|e| SetupError::os(format!("create /dev/{dir}"), e))?;
    }
    let shm = dev.join("shm");
    mount(
        Some("shm"),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(format!("mode=1777,size={}", shm_size.unwrap_or(64 << 20)).as_str()),
    )
    .map_err(|e| mount_err("tmpfs", "/dev/shm", e))?;
    let pts = dev.join("pts");
    let pts_flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    let with_gid = mount(
        Some("devpts"),
        &pts,
        Some("devpts"),
        pts_flags,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    );
    if with_gid.is_err()
        && mount(
            Some("devpts"),
            &pts,
            Some("devpts"),
            pts_flags,
            Some("newinstance,ptmxmode=0666,mode=0620"),
        )
        .is_err()
    {
        notices.push("devpts could not be mounted: /dev/pts is empty in this step".to_string());
    }
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("core", "/proc/kcore"),
    ] {
        rustix::fs::symlinkat(target, &dev_dir, link)
            .map_err(|e| SetupError::os(format!("create /dev/{link}"), e))?;
    }
    Ok(())
}

/// Makes `new_root` the process's root without a temporary dir: the old root is stacked on
/// the new one by `pivot_root(".", ".")`, then detached.
pub fn pivot_into(new_root: &Path) -> Result<(), SetupError> {
    let new_root_fd =
        rustix::fs::open(new_root, OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| SetupError::os(format!("open new root {}", new_root.display()), e))?;
    rustix::process::fchdir(new_root_fd.as_fd())
        .map_err(|e| SetupError::os("fchdir new root", e))?;
    nix::unistd::pivot_root(".", ".").map_err(|e| SetupError::os("pivot_root", e))?;
    // The old root now sits on top of "."; stop propagation before detaching it.
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| mount_err("slave", "old root", e))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| SetupError::os("detach old root", e))?;
    std::env::set_current_dir("/").map_err(|e| SetupError::os("chdir /", e))
}

/// Brings the loopback interface up in a fresh network namespace.
pub fn loopback_up() -> Result<(), SetupError> {
    // SAFETY: plain socket/ioctl calls on a zeroed ifreq whose name we fill in.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return Err(SetupError::os(
                "open a socket",
                std::io::Error::last_os_error(),
            ));
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        let mut result = libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req);
        if result == 0 {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            result = libc::ioctl(sock, libc::SIOCSIFFLAGS, &req);
        }
        let err = std::io::Error::last_os_error();
        libc::close(sock);
        if result != 0 {
            return Err(SetupError::os("bring up lo", err));
        }
    }
    Ok(())
}

/// Resolves `name` against PATH entries of the step's environment, as execvp would.
// Boundary: runs inside the step's own root after pivot_root.
#[allow(clippy::disallowed_methods)]
pub fn find_executable(name: &str, path_var: Option<&str>) -> Option<CString> {
    if name.contains('/') {
        return CString::new(name).ok();
    }
    let path_var =
        path_var.unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path_var
        .split(':')
        .filter(|d| !d.is_empty())
        .find_map(|dir| {
            let candidate = format!("{dir}/{name}");
            let c = CString::new(candidate).ok()?;
            // SAFETY: access(2) on a valid NUL-terminated path.
            let executable = unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0;
            let is_file = std::fs::metadata(dir.to_string() + "/" + name)
                .map(|m| m.is_file())
                .unwrap_or(false);
            (executable && is_file).then_some(c)
        })
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // fixtures the tests create
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn rootfs(lowers: Vec<String>) -> RootfsSpec {
        RootfsSpec {
            lower_dirs: lowers.into_iter().map(PathBuf::from).collect(),
            upper_dir: "/s/tmp/1/upper".into(),
            work_dir: "/s/tmp/1/work".into(),
            merged_dir: "/s/tmp/1/merged".into(),
            plain: false,
        }
    }

    #[test]
    fn overlay_options_list_lowers_top_first_with_userxattr() {
        let opts = overlay_options(&rootfs(vec!["/s/l/b".into(), "/s/l/a".into()]));
        assert_eq!(
            opts.as_deref(),
            Some("userxattr,lowerdir=/s/l/b:/s/l/a,upperdir=/s/tmp/1/upper,workdir=/s/tmp/1/work")
        );
    }

    #[test]
    fn overlay_options_refuse_what_mount_data_cannot_carry() {
        let many: Vec<String> = (0..130)
            .map(|i| format!("/store/layers/{i:064}/diff"))
            .collect();
        assert_eq!(overlay_options(&rootfs(many)), None);
        assert_eq!(overlay_options(&rootfs(vec!["/a,b".into()])), None);
        assert_eq!(overlay_options(&rootfs(vec!["/a:b".into()])), None);
    }

    #[test]
    fn executables_are_found_on_the_given_path() {
        assert_eq!(find_executable("/x/y", None).as_deref(), Some(c"/x/y"));
        assert_eq!(
            find_executable("sh", Some("/nonexistent:/bin")).as_deref(),
            Some(c"/bin/sh")
        );
        assert_eq!(find_executable("no-such-program-here", Some("/bin")), None);
    }
}
