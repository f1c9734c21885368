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
    #[error("step setup failed")]
    Setup(#[from] SetupError),
    #[error("invalid step spec: {0}")]
    Spec(#[source] serde_json::Error),
}

/// An OS error as it crosses the step pipe: its errno, and the kernel's text for it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, thiserror::Error)]
#[error("{text}")]
pub struct OsError {
    pub errno: i32,
    pub text: String,
}

impl From<nix::Error> for OsError {
    fn from(e: nix::Error) -> OsError {
        OsError {
            errno: e as i32,
            text: e.desc().to_string(),
        }
    }
}

impl From<rustix::io::Errno> for OsError {
    fn from(e: rustix::io::Errno) -> OsError {
        std::io::Error::from(e).into()
    }
}

impl From<std::io::Error> for OsError {
    fn from(e: std::io::Error) -> OsError {
        OsError {
            errno: e.raw_os_error().unwrap_or(0),
            text: e.to_string(),
        }
    }
}

impl From<caps::errors::CapsError> for OsError {
    fn from(e: caps::errors::CapsError) -> OsError {
        OsError {
            errno: 0,
            text: e.to_string(),
        }
    }
}

/// Why a step's sandbox could not be set up. Made in the step process and sent to rbuild
/// whole (it is serialisable), so the cause keeps its errno and says itself once.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, thiserror::Error)]
pub enum SetupError {
    /// A system call failed: what was being done (with its path), and the OS error.
    #[error("cannot {what}")]
    Os {
        what: String,
        #[source]
        source: OsError,
    },
    /// Something rbuild refuses or cannot find, with what to do about it.
    #[error("{0}")]
    Refused(String),
}

impl SetupError {
    /// `SetupError::Os` for `what` ("mount overlay on /x"), from any OS error.
    pub fn os(what: impl Into<String>, source: impl Into<OsError>) -> SetupError {
        SetupError::Os {
            what: what.into(),
            source: source.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_setup_error_crosses_the_pipe_with_its_errno_and_says_its_cause_once() {
        let error = SetupError::os("mount overlay on /merged", nix::Error::EPERM);
        let line = serde_json::to_string(&error).expect("serialise");
        let back: SetupError = serde_json::from_str(&line).expect("parse");
        assert_eq!(back, error);
        let SetupError::Os { source, .. } = &back else {
            panic!("{back:?}");
        };
        assert_eq!(source.errno, libc::EPERM);
        assert_eq!(back.to_string(), "cannot mount overlay on /merged");
        let cause = std::error::Error::source(&back)
            .expect("a cause")
            .to_string();
        assert!(
            !back.to_string().contains(&cause),
            "said twice: {back} / {cause}"
        );
    }
}
