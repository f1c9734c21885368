//! Foreign-architecture steps: QEMU user emulation registered in binfmt_misc. Since Linux 6.7
//! a user namespace can mount its own binfmt_misc instance; rbuild registers
//! `qemu-<arch>-static` there with flags F (the interpreter is opened now, so it works inside
//! any rootfs) and P (argv[0] kept: busybox applets need their name), and every process of
//! the namespace (steps and their children) runs foreign binaries under it. The host's
//! registrations are never touched.

// Paths here are kernel interfaces (/proc, /sys) and the step's own files: the boundary rule (clippy.toml) does not apply.
#![allow(clippy::disallowed_methods)]

use crate::error::SetupError;
use std::path::{Path, PathBuf};

/// QEMU's name for an OCI architecture (and variant), and the ELF magic/mask that select it
/// (from QEMU's scripts/qemu-binfmt-conf.sh).
struct QemuTarget {
    qemu: &'static str,
    magic: &'static str,
    mask: &'static str,
}

fn qemu_target(architecture: &str) -> Option<QemuTarget> {
    const MASK_64: &str =
        r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff";
    let (qemu, magic, mask) = match architecture {
        "arm64" => (
            "aarch64",
            r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00",
            MASK_64,
        ),
        "arm" => (
            "arm",
            r"\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x28\x00",
            MASK_64,
        ),
        "riscv64" => (
            "riscv64",
            r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xf3\x00",
            MASK_64,
        ),
        "ppc64le" => (
            "ppc64le",
            r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x15\x00",
            r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\x00",
        ),
        "s390x" => (
            "s390x",
            r"\x7fELF\x02\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x16",
            r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff",
        ),
        "amd64" => (
            "x86_64",
            r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00",
            r"\xff\xff\xff\xff\xff\xfe\xfe\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
        ),
        "386" => (
            "i386",
            r"\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x03\x00",
            r"\xff\xff\xff\xff\xff\xfe\xfe\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
        ),
        _ => return None,
    };
    Some(QemuTarget { qemu, magic, mask })
}

/// How steps of a platform run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emulation {
    /// The host runs these binaries itself.
    Native,
    /// QEMU registered in rbuild's own binfmt_misc instance.
    Sandboxed { interpreter: PathBuf },
    /// The host already has a binfmt_misc registration for it.
    HostRegistration { name: String },
}

impl std::fmt::Display for Emulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Emulation::Native => write!(f, "native"),
            Emulation::Sandboxed { interpreter } => {
                write!(f, "sandboxed binfmt_misc ({})", interpreter.display())
            }
            Emulation::HostRegistration { name } => {
                write!(f, "host binfmt_misc registration {name}")
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmulationError {
    #[error("no emulator is known for architecture {0}")]
    Unknown(String),
    #[error(
        "cannot run {architecture} steps: qemu-{qemu}-static was not found on PATH and the host has no \
         binfmt_misc registration for it; install it with `sudo apt-get install qemu-user-static`"
    )]
    NoQemu { architecture: String, qemu: String },
    #[error(
        "cannot run {architecture} steps in place (--isolation none): the host's binfmt_misc \
         registration {name} is missing, disabled or lacks flag F (fix binary), so QEMU cannot \
         be found from inside this container; register it on the host with flag F (Debian's \
         qemu-user-static does)"
    )]
    NotFixed { architecture: String, name: String },
    #[error(
        "cannot run {architecture} steps: this kernel does not let a user namespace mount its own \
         binfmt_misc (Linux >= 6.7 does: {detail}) and the host has no registration; register \
         QEMU on the host with `sudo apt-get install qemu-user-static binfmt-support`"
    )]
    NoSandbox {
        architecture: String,
        detail: String,
    },
    #[error("cannot register {interpreter} in binfmt_misc: {detail}")]
    Register {
        interpreter: PathBuf,
        detail: String,
    },
}

/// Architectures this machine runs natively (amd64 also runs 386 binaries).
pub fn is_native(architecture: &str, host: &str) -> bool {
    architecture == host
        || (host == "amd64" && architecture == "386")
        || (host == "arm64" && architecture == "arm")
}

/// Where `qemu-<arch>-static` is: in `$RBUILD_QEMU_PATH` (a configured list of dirs) when set,
/// else on PATH and in the usual bin dirs.
fn find_on_path(name: &str) -> Option<PathBuf> {
    if let Some(configured) = std::env::var_os("RBUILD_QEMU_PATH") {
        return std::env::split_paths(&configured)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn host_registration(qemu: &str) -> Option<String> {
    let name = format!("qemu-{qemu}");
    let status = std::fs::read_to_string(Path::new("/proc/sys/fs/binfmt_misc").join(&name)).ok()?;
    status
        .lines()
        .next()
        .is_some_and(|l| l.trim() == "enabled")
        .then_some(name)
}

/// For a step run in place (`--isolation none`, in a container that cannot mount): how
/// `architecture` runs, which can only be the host's registration, and only with flag F (the
/// kernel opened QEMU when it was registered; the container has no QEMU of its own). A notice
/// when the registration cannot be read here (binfmt_misc is not mounted in the container).
pub fn check_in_place(architecture: &str, host: &str) -> Result<Option<String>, EmulationError> {
    if is_native(architecture, host) {
        return Ok(None);
    }
    let target = qemu_target(architecture)
        .ok_or_else(|| EmulationError::Unknown(architecture.to_string()))?;
    let name = format!("qemu-{}", target.qemu);
    let path = Path::new("/proc/sys/fs/binfmt_misc").join(&name);
    match std::fs::read_to_string(&path) {
        Ok(status) => {
            let fixed = status
                .lines()
                .any(|l| l.starts_with("flags:") && l.contains('F'));
            let enabled = status.lines().next().is_some_and(|l| l.trim() == "enabled");
            if enabled && fixed {
                Ok(Some(format!(
                    "{architecture} steps run through the host's {name} (flag F)"
                )))
            } else {
                Err(EmulationError::NotFixed {
                    architecture: architecture.to_string(),
                    name,
                })
            }
        }
        Err(_) => Ok(Some(format!(
            "{architecture} steps need the host's binfmt_misc registration {name} with flag F \
             (fix binary), which cannot be read from this container; without it they fail to \
             start (on the host: apt-get install qemu-user-static registers it so)"
        ))),
    }
}

/// A private binfmt_misc instance of this process's user namespace, mounted once (in its own
/// mount namespace) at `mount_point`.
pub struct SandboxedBinfmt {
    mount_point: PathBuf,
}

impl SandboxedBinfmt {
    /// Mounts the instance; fails on kernels that do not allow it (detected by trying).
    pub fn mount(mount_point: &Path) -> Result<SandboxedBinfmt, SetupError> {
        std::fs::create_dir_all(mount_point)
            .map_err(|e| SetupError::os(format!("create {}", mount_point.display()), e))?;
        nix::mount::mount(
            Some("binfmt_misc"),
            mount_point,
            Some("binfmt_misc"),
            nix::mount::MsFlags::MS_NOSUID
                | nix::mount::MsFlags::MS_NODEV
                | nix::mount::MsFlags::MS_NOEXEC,
            None::<&str>,
        )
        .map_err(|e| SetupError::os("mount binfmt_misc", e))?;
        Ok(SandboxedBinfmt {
            mount_point: mount_point.to_path_buf(),
        })
    }

    /// Registers QEMU for `architecture` (idempotent).
    pub fn register(&self, architecture: &str, interpreter: &Path) -> Result<(), EmulationError> {
        let target = qemu_target(architecture)
            .ok_or_else(|| EmulationError::Unknown(architecture.to_string()))?;
        let name = format!("rbuild-qemu-{}", target.qemu);
        if self.mount_point.join(&name).exists() {
            return Ok(());
        }
        let line = format!(
            ":{name}:M::{}:{}:{}:FP",
            target.magic,
            target.mask,
            interpreter.display()
        );
        match std::fs::write(self.mount_point.join("register"), line) {
            Ok(()) => Ok(()),
            // Another platform's build in this process registered it first (EEXIST).
            Err(_) if self.mount_point.join(&name).exists() => Ok(()),
            Err(e) => Err(EmulationError::Register {
                interpreter: interpreter.to_path_buf(),
                detail: e.to_string(),
            }),
        }
    }
}

/// Chooses how `architecture` runs, in the order of the issue: native; the sandboxed
/// binfmt_misc with qemu-<arch>-static from PATH; a host registration; else an error naming
/// the fix. `sandbox` is why the sandboxed instance could not be mounted, when it could not.
pub fn choose(
    architecture: &str,
    host: &str,
    sandbox: Result<&SandboxedBinfmt, &SetupError>,
) -> Result<Emulation, EmulationError> {
    if is_native(architecture, host) {
        return Ok(Emulation::Native);
    }
    let target = qemu_target(architecture)
        .ok_or_else(|| EmulationError::Unknown(architecture.to_string()))?;
    let interpreter = find_on_path(&format!("qemu-{}-static", target.qemu));
    match (sandbox, &interpreter) {
        (Ok(binfmt), Some(interpreter)) => {
            binfmt.register(architecture, interpreter)?;
            return Ok(Emulation::Sandboxed {
                interpreter: interpreter.clone(),
            });
        }
        (Err(why), _) => {
            if let Some(name) = host_registration(target.qemu) {
                return Ok(Emulation::HostRegistration { name });
            }
            if interpreter.is_some() {
                let detail = match std::error::Error::source(why) {
                    Some(cause) => format!("{why}: {cause}"),
                    None => why.to_string(),
                };
                return Err(EmulationError::NoSandbox {
                    architecture: architecture.to_string(),
                    detail,
                });
            }
        }
        (Ok(_), None) => {
            if let Some(name) = host_registration(target.qemu) {
                return Ok(Emulation::HostRegistration { name });
            }
        }
    }
    Err(EmulationError::NoQemu {
        architecture: architecture.to_string(),
        qemu: target.qemu.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_and_known_targets() {
        assert!(is_native("amd64", "amd64"));
        assert!(is_native("386", "amd64"));
        assert!(!is_native("arm64", "amd64"));
        assert_eq!(qemu_target("arm64").map(|t| t.qemu), Some("aarch64"));
        assert_eq!(qemu_target("s390x").map(|t| t.qemu), Some("s390x"));
        assert!(qemu_target("mips").is_none());
        // Magic and mask are the same length, in \x escapes binfmt_misc decodes.
        for arch in [
            "arm64", "arm", "riscv64", "ppc64le", "s390x", "amd64", "386",
        ] {
            let t = qemu_target(arch).expect(arch);
            assert_eq!(
                t.magic.matches(r"\x").count() + 3,
                t.mask.matches(r"\x").count(),
                "{arch}"
            );
        }
        assert!(matches!(
            choose("arm64", "arm64", Err(&SetupError::Refused("n/a".into()))),
            Ok(Emulation::Native)
        ));
        assert!(matches!(
            choose("mips", "amd64", Err(&SetupError::Refused("n/a".into()))),
            Err(EmulationError::Unknown(_))
        ));
    }
}
