//! Foreign platforms: before the first step, every architecture the build needs that this
//! machine does not run natively gets QEMU, through rbuild's own binfmt_misc instance (or a
//! host registration), and the build log says which way.

use std::sync::OnceLock;

use rbuild_runtime::binfmt::{self, Emulation, SandboxedBinfmt};
use rbuild_runtime::SetupError;

use super::BuildError;
use crate::plan::Platform;
use crate::progress::Progress;
use crate::store::Store;

/// The sandboxed instance, mounted once per process (its user namespace owns it).
static SANDBOX: OnceLock<Result<SandboxedBinfmt, SetupError>> = OnceLock::new();

fn sandbox(store: &Store) -> Result<&'static SandboxedBinfmt, &'static SetupError> {
    let mounted = SANDBOX.get_or_init(|| {
        let mount_point = store
            .root()
            .join("tmp")
            .join(format!("{}-binfmt", std::process::id()));
        SandboxedBinfmt::mount(&mount_point)
    });
    mounted.as_ref()
}

/// How `platform`'s binaries run here, registering QEMU when needed.
pub fn emulation_for(
    store: &Store,
    platform: &Platform,
) -> Result<Emulation, binfmt::EmulationError> {
    let host = crate::image::host_architecture();
    if binfmt::is_native(&platform.architecture, host) {
        return Ok(Emulation::Native);
    }
    binfmt::choose(&platform.architecture, host, sandbox(store))
}

/// Prepares every foreign platform in `platforms` and says how each runs.
pub fn prepare(
    store: &Store,
    platforms: &[Platform],
    progress: &Progress,
) -> Result<(), BuildError> {
    let mut seen: Vec<&str> = Vec::new();
    for platform in platforms {
        if seen.contains(&platform.architecture.as_str()) {
            continue;
        }
        seen.push(&platform.architecture);
        match emulation_for(store, platform)? {
            Emulation::Native => {}
            other => progress.notice(&format!(
                "emulation: {} steps run under {other}",
                platform.text()
            )),
        }
    }
    Ok(())
}

/// `--isolation none`: each foreign platform must run through the host's registration with
/// flag F (nothing can be mounted or registered from the container); says how, once each.
pub fn check_host_handlers(platforms: &[Platform], progress: &Progress) -> Result<(), BuildError> {
    let host = crate::image::host_architecture();
    let mut seen: Vec<&str> = Vec::new();
    for platform in platforms {
        if seen.contains(&platform.architecture.as_str()) {
            continue;
        }
        seen.push(&platform.architecture);
        if let Some(notice) = binfmt::check_in_place(&platform.architecture, host)? {
            progress.notice(&format!("emulation: {notice}"));
        }
    }
    Ok(())
}
