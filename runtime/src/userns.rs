//! Entering the user namespace, once per process, before any thread exists.
//!
//! The process itself unshares; a helper child forked just before runs `newuidmap` and
//! `newgidmap` on it (they need a target pid outside their own namespace). Without subordinate
//! ranges or the helpers, a single-id map is written directly (setgroups must then be `deny`).

// Paths here are kernel interfaces (/proc, /sys) and the step's own files: the boundary rule (clippy.toml) does not apply.
#![allow(clippy::disallowed_methods)]

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sched::{unshare, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, getgid, getppid, getuid, ForkResult, Gid, Uid, User};

use crate::error::RuntimeError;
use crate::idmap::{build_id_map, map_args, mapped_len, read_subid_ranges, IdMapEntry};

/// How this process's ids are mapped after `enter_user_namespace`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdMapping {
    /// Root in the initial namespace: no user namespace was entered.
    HostRoot,
    /// Caller at 0 and the subordinate ranges at 1..: any image works.
    Subordinate {
        uid_map: Vec<IdMapEntry>,
        gid_map: Vec<IdMapEntry>,
    },
    /// Only the caller's own ids, as container root: images owned by other ids fail.
    Single { uid: u32, gid: u32 },
}

impl IdMapping {
    /// How many container uids are usable (0..n).
    pub fn mapped_uids(&self) -> u64 {
        match self {
            IdMapping::HostRoot => u64::from(u32::MAX),
            IdMapping::Subordinate { uid_map, .. } => mapped_len(uid_map),
            IdMapping::Single { .. } => 1,
        }
    }
}

/// The result of entering: the mapping, and a one-line notice for the user when a fallback
/// was taken.
#[derive(Debug, Clone)]
pub struct UserNamespace {
    pub mapping: IdMapping,
    pub notice: Option<String>,
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([
            PathBuf::from("/usr/bin"),
            PathBuf::from("/usr/sbin"),
            PathBuf::from("/bin"),
        ])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn thread_count() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|l| {
                l.strip_prefix("Threads:")
                    .and_then(|n| n.trim().parse().ok())
            })
        })
        .unwrap_or(1)
}

fn read_sysctl(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Why unshare(CLONE_NEWUSER) may have failed, as advice for the user.
pub fn userns_restriction_hint() -> String {
    if read_sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1")
    {
        return "; this system restricts unprivileged user namespaces through AppArmor \
                (kernel.apparmor_restrict_unprivileged_userns=1): run `sudo scripts/setup`, which \
                installs /etc/apparmor.d/rbuild allowing `userns` for rbuild"
            .to_string();
    }
    if read_sysctl("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return "; unprivileged user namespaces are disabled: run \
                `sudo sysctl -w kernel.unprivileged_userns_clone=1`"
            .to_string();
    }
    if read_sysctl("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return "; user namespaces are disabled: run `sudo sysctl -w user.max_user_namespaces=15000`"
            .to_string();
    }
    crate::container::way_out("user namespaces")
}

/// Enters a new user namespace where the caller is root, mapped as DESIGN.md says. Must run
/// while the process has a single thread. Root in the initial namespace is left as it is.
pub fn enter_user_namespace() -> Result<UserNamespace, RuntimeError> {
    let uid = getuid();
    let gid = getgid();
    if uid.is_root() {
        return Ok(UserNamespace {
            mapping: IdMapping::HostRoot,
            notice: None,
        });
    }
    if thread_count() > 1 {
        return Err(RuntimeError::Unshare {
            source: std::io::Error::other("the process already has threads"),
            hint: String::new(),
        });
    }
    let user_name = User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_default();
    let sub_uids = read_subid_ranges(Path::new("/etc/subuid"), &user_name, uid.as_raw());
    let sub_gids = read_subid_ranges(Path::new("/etc/subgid"), &user_name, uid.as_raw());
    let helpers = find_program("newuidmap").zip(find_program("newgidmap"));

    match helpers {
        Some((newuidmap, newgidmap)) if !sub_uids.is_empty() && !sub_gids.is_empty() => {
            let uid_map = build_id_map(uid.as_raw(), &sub_uids);
            let gid_map = build_id_map(gid.as_raw(), &sub_gids);
            unshare_with_helpers(&newuidmap, &newgidmap, &uid_map, &gid_map)?;
            become_root(true)?;
            Ok(UserNamespace {
                mapping: IdMapping::Subordinate { uid_map, gid_map },
                notice: None,
            })
        }
        _ => {
            let why = if sub_uids.is_empty() || sub_gids.is_empty() {
                format!("user {user_name} has no range in /etc/subuid or /etc/subgid")
            } else {
                "newuidmap/newgidmap are not installed (package uidmap)".to_string()
            };
            unshare_single(uid.as_raw(), gid.as_raw())?;
            become_root(false)?;
            Ok(UserNamespace {
                mapping: IdMapping::Single {
                    uid: uid.as_raw(),
                    gid: gid.as_raw(),
                },
                notice: Some(format!(
                    "{why}: using a single-id mapping, so images with files owned by other users \
                     will fail (fix: `sudo usermod --add-subuids 100000-165535 --add-subgids \
                     100000-165535 {user_name}`, or run scripts/setup)"
                )),
            })
        }
    }
}

fn unshare_newuser() -> Result<(), RuntimeError> {
    unshare(CloneFlags::CLONE_NEWUSER).map_err(|errno| RuntimeError::Unshare {
        source: std::io::Error::from(errno),
        hint: userns_restriction_hint(),
    })
}

/// Forks the map-writing helper, unshares, lets the helper map us, and waits for it.
/// Who writes the id maps of the unshared process, from outside its namespace.
enum MapWriter<'a> {
    /// newuidmap/newgidmap with the caller's subordinate ranges.
    Helpers {
        newuidmap: &'a Path,
        newgidmap: &'a Path,
        uid_map: &'a [IdMapEntry],
        gid_map: &'a [IdMapEntry],
    },
    /// Root writing an identity map itself (only a process outside the namespace may).
    Identity,
}

fn unshare_with_helpers(
    newuidmap: &Path,
    newgidmap: &Path,
    uid_map: &[IdMapEntry],
    gid_map: &[IdMapEntry],
) -> Result<(), RuntimeError> {
    unshare_with_writer(&MapWriter::Helpers {
        newuidmap,
        newgidmap,
        uid_map,
        gid_map,
    })
}

fn unshare_with_writer(writer: &MapWriter) -> Result<(), RuntimeError> {
    let (go_read, go_write) = nix::unistd::pipe().map_err(|e| RuntimeError::Channel(e.into()))?;
    let (result_read, result_write) =
        nix::unistd::pipe().map_err(|e| RuntimeError::Channel(e.into()))?;

    // SAFETY: the process is single-threaded (checked by the caller), so the child may run
    // arbitrary code, including spawning the helper programs.
    match unsafe { fork() }.map_err(|e| RuntimeError::Spawn(e.into()))? {
        ForkResult::Child => {
            drop(go_write);
            drop(result_read);
            let code = map_helper_child(go_read, result_write, writer);
            // SAFETY: leave without running the parent's atexit handlers or destructors.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(go_read);
            drop(result_write);
            let unshared = unshare_newuser();
            let mut go = std::fs::File::from(go_write);
            if unshared.is_ok() {
                let _ = go.write_all(b"1");
            }
            drop(go);
            let mut detail = String::new();
            let _ = std::fs::File::from(result_read).read_to_string(&mut detail);
            let status = waitpid(child, None).map_err(|e| RuntimeError::Channel(e.into()))?;
            unshared?;
            if !matches!(status, WaitStatus::Exited(_, 0)) {
                let (program, detail) = detail.split_once('\n').unwrap_or(("newuidmap", &detail));
                return Err(RuntimeError::IdMapHelper {
                    program: program.to_string(),
                    pid: nix::unistd::getpid().as_raw(),
                    detail: detail.trim().to_string(),
                });
            }
            Ok(())
        }
    }
}

fn map_helper_child(go_read: OwnedFd, result_write: OwnedFd, writer: &MapWriter) -> i32 {
    let mut go = [0u8; 1];
    let mut result = std::fs::File::from(result_write);
    if std::fs::File::from(go_read).read_exact(&mut go).is_err() {
        return 1; // the parent could not unshare; it reports why
    }
    let target = getppid().to_string();
    let (newuidmap, newgidmap, uid_map, gid_map) = match writer {
        MapWriter::Helpers {
            newuidmap,
            newgidmap,
            uid_map,
            gid_map,
        } => (*newuidmap, *newgidmap, *uid_map, *gid_map),
        MapWriter::Identity => {
            for map in ["uid_map", "gid_map"] {
                // Every id this process has, to itself: all of them in the initial namespace,
                // the container's ranges in a user-namespaced one.
                let own = std::fs::read_to_string(format!("/proc/self/{map}")).unwrap_or_default();
                let identity: String = own
                    .lines()
                    .filter_map(|line| {
                        let fields: Vec<&str> = line.split_whitespace().collect();
                        match fields.as_slice() {
                            [inside, _, count] => Some(format!("{inside} {inside} {count}\n")),
                            _ => None,
                        }
                    })
                    .collect();
                let identity = if identity.is_empty() {
                    "0 0 4294967295\n".to_string()
                } else {
                    identity
                };
                if let Err(e) = std::fs::write(format!("/proc/{target}/{map}"), identity) {
                    let _ = write!(result, "{map}\n{e}");
                    return 1;
                }
            }
            return 0;
        }
    };
    for (program, map) in [(newuidmap, uid_map), (newgidmap, gid_map)] {
        let outcome = Command::new(program)
            .arg(&target)
            .args(map_args(map))
            .output();
        let failure = match outcome {
            Ok(out) if out.status.success() => continue,
            Ok(out) => format!(
                "{}, {}",
                String::from_utf8_lossy(&out.stderr).trim(),
                out.status
            ),
            Err(e) => e.to_string(),
        };
        let _ = write!(result, "{}\n{}", program.display(), failure);
        return 1;
    }
    0
}

fn write_proc(path: &str, content: &str) -> Result<(), RuntimeError> {
    std::fs::write(path, content).map_err(|source| RuntimeError::WriteIdMap {
        path: PathBuf::from(path),
        source,
    })
}

/// For root: a user namespace mapping every id it has to itself, so that rbuild gets
/// binfmt_misc and mount namespaces of its own (foreign platforms) without touching the
/// host's, and mount namespaces at all in a container that gives root no CAP_SYS_ADMIN.
pub fn enter_identity_user_namespace() -> Result<(), RuntimeError> {
    unshare_with_writer(&MapWriter::Identity)
}

fn unshare_single(uid: u32, gid: u32) -> Result<(), RuntimeError> {
    unshare_newuser()?;
    write_proc("/proc/self/setgroups", "deny")?;
    write_proc("/proc/self/uid_map", &format!("0 {uid} 1\n"))?;
    write_proc("/proc/self/gid_map", &format!("0 {gid} 1\n"))?;
    Ok(())
}

fn become_root(setgroups_allowed: bool) -> Result<(), RuntimeError> {
    let root_gid = Gid::from_raw(0);
    let root_uid = Uid::from_raw(0);
    nix::unistd::setresgid(root_gid, root_gid, root_gid).map_err(with_hint)?;
    if setgroups_allowed {
        nix::unistd::setgroups(&[]).map_err(with_hint)?;
    }
    nix::unistd::setresuid(root_uid, root_uid, root_uid).map_err(with_hint)?;
    Ok(())
}

fn with_hint(errno: nix::Error) -> RuntimeError {
    let hint = userns_restriction_hint();
    if hint.is_empty() {
        RuntimeError::BecomeRoot(errno)
    } else {
        RuntimeError::Unshare {
            source: errno.into(),
            hint,
        }
    }
}
