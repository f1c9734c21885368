//! What the caller asks the runtime to run: one process over an overlay rootfs. Serialized as
//! JSON from the build process to the step-init process it spawns.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetworkMode {
    /// Share the caller's network namespace (Docker's default for RUN).
    Host,
    /// A fresh network namespace with loopback only.
    None,
}

/// How confined a step is (`RUN --security=`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Security {
    /// Docker's default capabilities and seccomp filter: what every RUN step gets.
    #[default]
    Sandbox,
    /// Every capability of the build's user namespace and no seccomp filter
    /// (`RUN --security=insecure`, which the user must allow with `--allow security.insecure`).
    Insecure,
}

/// The overlay the step runs on. All dirs must sit on one filesystem with the upper dir. An
/// empty `upper_dir` makes a read-only view (overlay then needs at least two lower dirs).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RootfsSpec {
    /// Lower layer dirs, topmost first. At least one (an empty dir for `FROM scratch`).
    pub lower_dirs: Vec<PathBuf>,
    /// Receives every change the step makes: it becomes the new layer.
    pub upper_dir: PathBuf,
    /// Overlay's scratch dir, same filesystem as `upper_dir`, empty.
    pub work_dir: PathBuf,
    /// Where the merged tree is mounted (an empty dir).
    pub merged_dir: PathBuf,
    /// No overlay: `merged_dir` is the tree itself (a walk snapshotter's working tree, where
    /// overlayfs cannot be mounted); the step runs on it in place and changes it.
    #[serde(default)]
    pub plain: bool,
}

impl RootfsSpec {
    pub fn is_read_only(&self) -> bool {
        self.upper_dir.as_os_str().is_empty()
    }
}

/// Files bind-mounted over the image's own (never committed to a layer).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EtcFiles {
    pub hosts: PathBuf,
    pub resolv_conf: PathBuf,
    pub hostname: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepSpec {
    pub rootfs: RootfsSpec,
    /// argv; `args[0]` is looked up in the step's PATH when it has no `/`.
    pub args: Vec<String>,
    /// `KEY=value` entries, in order.
    pub env: Vec<String>,
    /// Working directory inside the rootfs; created when missing.
    pub cwd: String,
    /// Dockerfile `USER` value, resolved inside the rootfs (empty = root).
    pub user: String,
    pub hostname: String,
    pub etc_files: EtcFiles,
    pub network: NetworkMode,
    /// Extra mounts (RUN --mount), in order; their mount points never reach the layer.
    #[serde(default)]
    pub mounts: Vec<StepMount>,
    #[serde(default)]
    pub security: Security,
    /// `--shm-size`: bytes of the step's /dev/shm (None: 64 MiB, as docker).
    #[serde(default)]
    pub shm_size: Option<u64>,
    /// `--ulimit`: resource limits the command starts with.
    #[serde(default)]
    pub ulimits: Vec<crate::ulimit::Ulimit>,
}

/// One RUN --mount, resolved by the caller to host paths.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepMount {
    /// Absolute path inside the rootfs.
    pub target: String,
    pub source: MountSource,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MountSource {
    /// A host file or dir that rbuild made itself (cache-mount dir, secret file, agent
    /// socket, heredoc script): trusted, mounted by path.
    Host { path: PathBuf, read_only: bool },
    /// A path inside an untrusted tree (the context, a named context, another stage or
    /// image), resolved by the step process inside that tree's root.
    InTree(TreeMount),
    /// A fresh tmpfs; `size` in bytes, 0 for the kernel default.
    Tmpfs { size: u64 },
}

/// A bind mount whose source lies inside a tree that the build was given. The step process
/// resolves `path` with every component inside the tree's root (a symlink planted in the tree
/// cannot lead to the host), keeps the result open and mounts that very object: nothing can
/// swap it between resolution and mount.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TreeMount {
    /// The tree: one dir, or several layer dirs (topmost first) seen through a read-only
    /// overlay. Host paths of rbuild's own (the context root, store layer dirs).
    pub layers: Vec<PathBuf>,
    /// An empty dir where the step process mounts that overlay (unused for one dir).
    pub staging_dir: PathBuf,
    /// Path inside the tree, relative ("" = the tree's root).
    pub path: String,
    /// None: read-only. Some(dir): an empty dir that takes the writes (an overlay's upper
    /// and work dirs for a directory, a copy for a file); the caller discards it.
    pub scratch_dir: Option<PathBuf>,
    /// What the tree is, for messages ("the build context", "stage builder").
    pub describe: String,
}

/// A path the sandbox had to create in the rootfs so it could mount something there. It lands
/// in the upper dir and must be removed before the upper dir is committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountStub {
    /// Path inside the rootfs, absolute.
    pub path: String,
    pub is_dir: bool,
}

/// Messages from the step-init process to the caller over the report pipe (JSON lines).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum StepReport {
    /// Mount points the sandbox created (sent before exec).
    Stubs(Vec<MountStub>),
    /// Set-up failed before the command could start.
    SetupFailed(crate::error::SetupError),
    /// A notice for the user (e.g. a fallback taken).
    Notice(String),
}
