//! The step's seccomp filter: a RUN step may make the syscalls `docker run` allows a container
//! with Docker's default capabilities (no CAP_SYS_ADMIN), and gets the answer Docker's default
//! profile gives for the others: EPERM, or ENOSYS for `clone3` so that libcs fall back to
//! `clone`, whose namespace flags are refused.
//!
//! The filter is written as the list of what Docker's default profile refuses such a
//! container (the profile allows everything else it knows of), checked syscall by syscall
//! against `docker run` on the same machine by `tests/suite/seccomp.rs`. It covers the compat
//! ABIs a step can use (x86 and x32 on amd64, arm on arm64) through libseccomp.
//!
//! It is installed without `NO_NEW_PRIVS` (Docker sets none: `su` and `sudo` in a step keep
//! working), which the kernel allows because the process still holds CAP_SYS_ADMIN in the
//! build's user namespace at that point; the capabilities are dropped right after.

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};

/// Why the filter could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp: {what}")]
    Filter {
        what: String,
        #[source]
        source: libseccomp::error::SeccompError,
    },
}

/// Syscalls Docker's default profile refuses (EPERM) to a container without CAP_SYS_ADMIN,
/// CAP_SYS_MODULE, CAP_SYS_TIME, CAP_SYS_BOOT, CAP_SYS_PACCT, CAP_SYS_RAWIO, CAP_SYS_NICE,
/// CAP_SYSLOG, CAP_SYS_PTRACE (for kcmp) or CAP_DAC_READ_SEARCH: key management, mounts and
/// namespaces, kernel modules, clocks, reboot and swap, accounting, raw I/O, NUMA policy,
/// kernel logs, handle-based opens, and syscalls that are obsolete or a known attack surface.
/// Names that do not exist on an architecture are skipped for it by libseccomp.
const REFUSED: &[&str] = &[
    // keys: the kernel keyring is not namespaced
    "add_key",
    "keyctl",
    "request_key",
    // mounts and namespaces (CAP_SYS_ADMIN)
    "mount",
    "mount_setattr",
    "umount",
    "umount2",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "pivot_root",
    "unshare",
    "setns",
    "sethostname",
    "setdomainname",
    "quotactl",
    "quotactl_fd",
    "fanotify_init",
    "lookup_dcookie",
    "perf_event_open",
    "bpf",
    "vhangup",
    "nfsservctl",
    // handle-based opens (CAP_DAC_READ_SEARCH)
    "name_to_handle_at",
    "open_by_handle_at",
    // kernel modules (CAP_SYS_MODULE)
    "create_module",
    "init_module",
    "finit_module",
    "delete_module",
    "get_kernel_syms",
    "query_module",
    // clocks (CAP_SYS_TIME)
    "settimeofday",
    "stime",
    "clock_settime",
    "clock_settime64",
    "clock_adjtime",
    "clock_adjtime64",
    // reboot, kexec, swap, accounting (CAP_SYS_BOOT, CAP_SYS_PACCT, CAP_SYS_ADMIN)
    "reboot",
    "kexec_load",
    "kexec_file_load",
    "swapon",
    "swapoff",
    "acct",
    // raw I/O (CAP_SYS_RAWIO)
    "iopl",
    "ioperm",
    // NUMA policy of other processes (CAP_SYS_NICE)
    "mbind",
    "set_mempolicy",
    "migrate_pages",
    "move_pages",
    // kernel log (CAP_SYSLOG), process comparison (CAP_SYS_PTRACE)
    "syslog",
    "kcmp",
    // obsolete or attack surface
    "_sysctl",
    "uselib",
    "ustat",
    "sysfs",
    "vm86",
    "vm86old",
    "userfaultfd",
];

/// `clone` flags that make namespaces: refused as `unshare` is.
const NAMESPACE_FLAGS: [u64; 7] = [
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWCGROUP as u64,
];

/// The compat ABIs a step on this machine can use besides the native one.
fn compat_arches() -> &'static [ScmpArch] {
    if cfg!(target_arch = "x86_64") {
        &[ScmpArch::X86, ScmpArch::X32]
    } else if cfg!(target_arch = "aarch64") {
        &[ScmpArch::Arm]
    } else {
        &[]
    }
}

fn filter_err(
    what: impl Into<String>,
) -> impl FnOnce(libseccomp::error::SeccompError) -> SeccompError {
    let what = what.into();
    move |source| SeccompError::Filter { what, source }
}

/// Builds the default filter (not loaded).
pub fn default_filter() -> Result<ScmpFilterContext, SeccompError> {
    let mut filter =
        ScmpFilterContext::new(ScmpAction::Allow).map_err(filter_err("create the filter"))?;
    for arch in compat_arches() {
        filter
            .add_arch(*arch)
            .map_err(filter_err(format!("add architecture {arch:?}")))?;
    }
    // Docker sets no NO_NEW_PRIVS: setuid binaries (su, sudo) keep working in a step.
    filter
        .set_ctl_nnp(false)
        .map_err(filter_err("leave no_new_privs unset"))?;
    let eperm = ScmpAction::Errno(libc::EPERM);
    for name in REFUSED {
        // a name this libseccomp does not know exists on no architecture it filters
        let Ok(syscall) = ScmpSyscall::from_name(name) else {
            continue;
        };
        filter
            .add_rule(eperm, syscall)
            .map_err(filter_err(format!("refuse {name}")))?;
    }
    let clone = ScmpSyscall::from_name("clone").map_err(filter_err("look up clone"))?;
    for flag in NAMESPACE_FLAGS {
        filter
            .add_rule_conditional(
                eperm,
                clone,
                &[ScmpArgCompare::new(
                    0,
                    ScmpCompareOp::MaskedEqual(flag),
                    flag,
                )],
            )
            .map_err(filter_err("refuse clone with namespace flags"))?;
    }
    // clone3 passes its flags in memory a filter cannot read: ENOSYS makes libcs use clone.
    if let Ok(clone3) = ScmpSyscall::from_name("clone3") {
        filter
            .add_rule(ScmpAction::Errno(libc::ENOSYS), clone3)
            .map_err(filter_err("answer clone3 with ENOSYS"))?;
    }
    Ok(filter)
}

/// Installs the default filter on the calling thread's process. Must run while the process
/// still holds CAP_SYS_ADMIN in its user namespace (no NO_NEW_PRIVS is set).
pub fn install_default_filter() -> Result<(), SeccompError> {
    default_filter()?
        .load()
        .map_err(filter_err("load the filter"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_builds_for_every_architecture_it_covers() {
        let filter = default_filter().expect("filter");
        for arch in compat_arches() {
            assert!(filter.is_arch_present(*arch).expect("query"), "{arch:?}");
        }
        for name in ["keyctl", "mount", "unshare", "clone3"] {
            assert!(ScmpSyscall::from_name(name).is_ok(), "{name} is known");
        }
    }
}
