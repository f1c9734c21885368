//! Other tools reading what rbuild writes: umoci unpacks it, podman runs it, skopeo inspects it.
//! Each helper returns None (after a capability gate) where its tool is unavailable.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use super::{
    describe_command, describe_output, gate, is_root, require_command, require_root, run_ok,
};

/// podman flags this machine kind needs as root: cgroup v1 without systemd (runc, cgroupfs), and
/// rlimits runc may not raise.
pub const PODMAN_RUN_FLAGS: &[&str] = &[
    "--runtime",
    "runc",
    "--cgroup-manager",
    "cgroupfs",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
    "--network",
    "none",
];

/// An unpacked runtime bundle (removed on drop).
pub struct Bundle {
    dir: tempfile::TempDir,
}

impl Bundle {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The unpacked filesystem.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("bundle/rootfs")
    }

    /// The runtime spec umoci derived from the image config.
    pub fn runtime_spec(&self) -> Value {
        let bytes =
            fs::read(self.dir.path().join("bundle/config.json")).expect("read bundle config.json");
        serde_json::from_slice(&bytes).expect("bundle config.json is JSON")
    }
}

/// `umoci unpack` of an OCI layout dir or OCI archive (extracted to a layout first), at its first
/// tag. As root ownership is kept; otherwise umoci runs `--rootless`.
pub fn umoci_unpack(image: &Path) -> Option<Bundle> {
    umoci_unpack_tag(image, None)
}

/// `umoci unpack` at `tag` (an `org.opencontainers.image.ref.name`), or at the first tag.
pub fn umoci_unpack_tag(image: &Path, tag: Option<&str>) -> Option<Bundle> {
    if !require_command("umoci") {
        return None;
    }
    let dir = tempfile::Builder::new()
        .prefix("rbuild-umoci.")
        .tempdir_in("/var/tmp")
        .expect("temp dir for umoci");
    let layout = if image.is_dir() {
        image.to_path_buf()
    } else {
        let layout = dir.path().join("layout");
        fs::create_dir(&layout).expect("mkdir layout");
        let archive = fs::File::open(image).unwrap_or_else(|e| panic!("{}: {e}", image.display()));
        tar::Archive::new(archive)
            .unpack(&layout)
            .unwrap_or_else(|e| panic!("extract {}: {e}", image.display()));
        layout
    };
    let tag = match tag {
        Some(tag) => tag.to_string(),
        None => first_tag(&layout)
            .unwrap_or_else(|| panic!("{}: index.json has no tagged manifest", image.display())),
    };
    let mut command = Command::new("umoci");
    command.arg("unpack");
    if !is_root() {
        command.arg("--rootless");
    }
    command
        .arg("--image")
        .arg(format!("{}:{tag}", layout.display()))
        .arg(dir.path().join("bundle"));
    run_ok(&mut command);
    Some(Bundle { dir })
}

fn first_tag(layout: &Path) -> Option<String> {
    let index: Value = serde_json::from_slice(&fs::read(layout.join("index.json")).ok()?).ok()?;
    index["manifests"]
        .as_array()?
        .iter()
        .find_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .map(str::to_string)
}

/// `podman load -i ARCHIVE` then `podman run --rm FLAGS IMAGE ARGS...`, as root in a private
/// podman store that is removed afterwards. Returns the run's output (success or not).
pub fn podman_load_and_run(archive: &Path, args: &[&str]) -> Option<Output> {
    podman_load_and_run_with(archive, &[], args)
}

/// Like [`podman_load_and_run`] with extra `podman run` options (e.g. `--user`, `--entrypoint`).
pub fn podman_load_and_run_with(
    archive: &Path,
    run_options: &[&str],
    args: &[&str],
) -> Option<Output> {
    podman_run_in_private_store(
        |podman| {
            let mut load = podman();
            load.arg("load").arg("-i").arg(archive);
            let loaded = run_ok(&mut load);
            // "Loaded image: NAME" or "Loaded image(s): NAME,NAME".
            loaded
                .lines()
                .find_map(|line| line.split_once("Loaded image").map(|(_, rest)| rest))
                .and_then(|rest| rest.split_once(':').map(|(_, names)| names.trim()))
                .and_then(|names| names.split(',').next())
                .map(str::to_string)
                .unwrap_or_else(|| panic!("podman load printed no image name: {loaded}"))
        },
        run_options,
        args,
    )
}

/// `podman pull --tls-verify=false REFERENCE` (a loopback registry) then `podman run --rm
/// IMAGE ARGS...`, as root in a private podman store. Returns the run's output.
pub fn podman_pull_and_run(reference: &str, args: &[&str]) -> Option<Output> {
    podman_run_in_private_store(
        |podman| {
            let mut pull = podman();
            pull.args(["pull", "-q", "--tls-verify=false", reference]);
            run_ok(&mut pull);
            reference.to_string()
        },
        &[],
        args,
    )
}

/// Runs `get_image` (which puts an image in a fresh podman store and names it) then
/// `podman run --rm`; the store is removed afterwards.
fn podman_run_in_private_store(
    get_image: impl FnOnce(&dyn Fn() -> Command) -> String,
    run_options: &[&str],
    args: &[&str],
) -> Option<Output> {
    if !require_root() || !require_command("podman") || !require_command("runc") {
        return None;
    }
    let store = tempfile::Builder::new()
        .prefix("rbuild-podman.")
        .tempdir_in("/var/tmp")
        .expect("temp dir for podman");
    let podman = || {
        let mut command = Command::new("podman");
        command
            .arg("--root")
            .arg(store.path().join("root"))
            .arg("--runroot")
            .arg(store.path().join("run"))
            .stdin(Stdio::null());
        command
    };
    let image = get_image(&podman);
    let mut run = podman();
    run.arg("run")
        .arg("--rm")
        .args(PODMAN_RUN_FLAGS)
        .args(run_options)
        .arg(&image)
        .args(args);
    let output = run
        .output()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", describe_command(&run)));
    let mut remove = podman();
    remove
        .args(["rmi", "--all", "--force"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _ = remove.status();
    drop(store);
    Some(output)
}

/// `skopeo inspect REF` (e.g. `oci-archive:/path/x.tar`, `oci:/dir:tag`, `docker-archive:...`)
/// parsed; panics when skopeo cannot read the image.
pub fn skopeo_inspect(image_ref: &str) -> Option<Value> {
    skopeo_inspect_with(image_ref, &[])
}

/// `skopeo inspect OPTIONS REF`, e.g. `--config` or `--raw`.
pub fn skopeo_inspect_with(image_ref: &str, options: &[&str]) -> Option<Value> {
    if !require_command("skopeo") {
        return None;
    }
    let mut command = Command::new("skopeo");
    command.arg("inspect").args(options).arg(image_ref);
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("spawn skopeo: {e}"));
    assert!(
        output.status.success(),
        "{} failed:\n{}",
        describe_command(&command),
        describe_output(&output)
    );
    Some(
        serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("skopeo output is not JSON: {e}")),
    )
}

/// True when `gate` allowed it and the command exists: a shorthand for tests that need several.
pub fn require_commands(names: &[&str]) -> bool {
    names.iter().all(|name| {
        gate(
            &format!("command `{name}`"),
            super::find_command(name).is_some(),
        )
    })
}
