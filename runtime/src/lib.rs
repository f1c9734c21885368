//! rbuild-runtime: the rootless sandbox for one build step. It enters a user namespace with
//! the caller's subordinate ids and runs one process over an overlay rootfs in fresh mount, pid,
//! ipc and uts namespaces. It knows nothing of Dockerfiles or images.

pub mod binfmt;
pub mod caps;
pub mod container;
pub mod error;
pub mod idmap;
pub mod init;
pub mod inplace;
pub mod mounts;
pub mod seccomp;
pub mod spec;
pub mod step;
pub mod ulimit;
pub mod user;
pub mod userns;

pub use error::{OsError, RuntimeError, SetupError};
pub use init::{step_init_main, STEP_INIT_ARG};
pub use spec::{
    EtcFiles, MountSource, MountStub, NetworkMode, RootfsSpec, Security, StepMount, StepSpec,
    TreeMount,
};
pub use step::{remove_stubs, run_step, OutputStream, StepOutcome};
pub use userns::{enter_identity_user_namespace, enter_user_namespace, IdMapping, UserNamespace};
