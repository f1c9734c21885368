//! Docker's default capability set for RUN steps, applied with the `caps` crate.

use caps::{CapSet, Capability, CapsHashSet};

/// The capabilities `docker run` (and BuildKit's RUN) grants by default.
pub const DEFAULT_CAPABILITIES: [Capability; 14] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

pub fn default_set() -> CapsHashSet {
    DEFAULT_CAPABILITIES.iter().copied().collect()
}

/// Drops every capability outside the default set from the bounding set, so that neither this
/// process nor anything it execs (setuid binaries included) can regain them.
pub fn limit_bounding_set() -> Result<(), caps::errors::CapsError> {
    let keep = default_set();
    let bounding = caps::read(None, CapSet::Bounding)?;
    for cap in bounding.difference(&keep) {
        caps::drop(None, CapSet::Bounding, *cap)?;
    }
    Ok(())
}

/// For a step running as uid 0: the default set is permitted, effective and inheritable.
pub fn set_root_capabilities() -> Result<(), caps::errors::CapsError> {
    let keep = default_set();
    caps::set(None, CapSet::Effective, &keep)?;
    caps::set(None, CapSet::Permitted, &keep)?;
    caps::set(None, CapSet::Inheritable, &keep)?;
    Ok(())
}

/// For `--security=insecure` as uid 0: every capability the user namespace grants.
pub fn set_all_capabilities() -> Result<(), caps::errors::CapsError> {
    let all = caps::all();
    let bounding = caps::read(None, CapSet::Bounding)?;
    let keep: CapsHashSet = all.intersection(&bounding).copied().collect();
    caps::set(None, CapSet::Effective, &keep)?;
    caps::set(None, CapSet::Permitted, &keep)?;
    caps::set(None, CapSet::Inheritable, &keep)?;
    Ok(())
}

/// True when this process may mount (CAP_SYS_ADMIN in its user namespace): root in a
/// container usually may not, and must first make a user namespace of its own.
pub fn can_mount() -> bool {
    caps::has_cap(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_SYS_ADMIN,
    )
    .unwrap_or(false)
}
