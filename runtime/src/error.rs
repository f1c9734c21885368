//! Errors of the runtime crate: entering the user namespace and setting up a step's sandbox.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot create a user namespace: {source}{hint}")]
    Unshare {
        #[source]
        source: std::io::Error,
        /// What to do about it (AppArmor restriction, disabled sysctl), empty when unknown.
        hint: String,
    },
    #[error("{program} failed to write the id map for pid {pid}: {detail}")]
    IdMapHelper {
        program: String,
        pid: i32,
        detail: String,
    },
    #[error("cannot write {path}: {source}")]
    WriteIdMap {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot switch to root inside the user namespace: {0}")]
    BecomeRoot(#[source] nix::Error),
    #[error("unable to find user {user}: no matching entries in passwd file")]
    UnknownUser { user: String },
    #[error("unable to find group {group}: no matching entries in group file")]
    UnknownGroup { group: String },
    #[error("cannot start the step process: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("cannot talk to the step process: {0}")]
    Channel(#[source] std::io::Error),
    #[error("step setup failed: {0}")]
    Setup(String),
    #[error("invalid step spec: {0}")]
    Spec(#[source] serde_json::Error),
}
