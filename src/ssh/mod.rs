//! SSH for builds: an agent of rbuild's own for `--ssh ID=KEYFILE` ([`KeyAgent`]), and the
//! socket a `RUN --mount=type=ssh` step connects to ([`SocketProxy`]), owned and moded as the
//! mount says, forwarding to the agent. Keys stay in the agent's memory: nothing of them
//! reaches the store, a layer, a cache key or a log.

// Paths here are sockets and key files the user named, and rbuild's own private dirs: the
// boundary rule (clippy.toml) does not apply.
#![allow(clippy::disallowed_methods)]

mod agent;
mod proxy;

pub use agent::KeyAgent;
pub use proxy::SocketProxy;

use std::collections::BTreeMap;
use std::os::unix::fs::FileTypeExt as _;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("--ssh {id}: cannot read the key {}", path.display())]
    ReadKey {
        id: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "--ssh {id}: the key {} is protected by a passphrase and there is no terminal to ask \
         it on: add it to an ssh-agent (ssh-add {}) and give the agent, --ssh {id}=$SSH_AUTH_SOCK",
        path.display(), path.display()
    )]
    Passphrase { id: String, path: PathBuf },
    #[error("--ssh {id}: {} is not a private key ({detail})", path.display())]
    NotAKey {
        id: String,
        path: PathBuf,
        detail: String,
    },
    #[error("--ssh {id}: ssh-add {} failed: {detail}", path.display())]
    Add {
        id: String,
        path: PathBuf,
        detail: String,
    },
    #[error("cannot start ssh-agent for --ssh key files (Debian/Ubuntu: apt-get install openssh-client)")]
    StartAgent(#[source] std::io::Error),
    #[error("ssh-agent did not create its socket {}", .0.display())]
    NoSocket(PathBuf),
    #[error("--ssh {0}: SSH_AUTH_SOCK is not set; give an agent socket or key files as {0}=PATH")]
    NoAgent(String),
    #[error("--ssh {0:?}: expected ID, ID=SOCKET or ID=KEYFILE[,KEYFILE...]")]
    Syntax(String),
    #[error("cannot {action} the ssh socket {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A fresh directory for a socket, mode 0700 (only the user reaches what is in it), in the
/// user's runtime dir (tmpfs, private), else the temp dir: short paths, as a socket's must be
/// (108 bytes).
pub fn private_dir() -> Result<tempfile::TempDir, SshError> {
    let parent = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    tempfile::Builder::new()
        .prefix("rbuild-ssh-")
        .tempdir_in(&parent)
        .map_err(|source| SshError::Io {
            action: "create a directory for",
            path: parent,
            source,
        })
}

/// The agents of a build's `--ssh` flags: socket per id (the user's agent, or one rbuild
/// started for key files), and the agents rbuild runs, stopped on drop.
#[derive(Debug, Default)]
pub struct BuildAgents {
    pub sockets: BTreeMap<String, PathBuf>,
    _started: Vec<KeyAgent>,
}

/// What one `--ssh` spec names.
#[derive(Debug, PartialEq, Eq)]
enum Spec {
    /// `ID` alone: $SSH_AUTH_SOCK, the whole agent of the user.
    UserAgent,
    /// `ID=PATH` of a socket.
    Socket(PathBuf),
    /// `ID=KEY[,KEY...]`.
    Keys(Vec<PathBuf>),
}

/// `~/x` as `$HOME/x` (a shell leaves `--ssh default=~/.ssh/id` unexpanded).
fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

fn parse_spec(spec: &str) -> Result<(String, Spec), SshError> {
    let Some((id, paths)) = spec.split_once('=') else {
        return Ok((spec.to_string(), Spec::UserAgent));
    };
    let paths: Vec<PathBuf> = paths
        .split(',')
        .filter(|p| !p.is_empty())
        .map(expand_home)
        .collect();
    if id.is_empty() || paths.is_empty() {
        return Err(SshError::Syntax(spec.to_string()));
    }
    let is_socket =
        |path: &PathBuf| std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket());
    Ok(match paths.as_slice() {
        [socket] if is_socket(socket) => (id.to_string(), Spec::Socket(socket.clone())),
        _ => (id.to_string(), Spec::Keys(paths)),
    })
}

impl BuildAgents {
    /// `--ssh default` (`$SSH_AUTH_SOCK`, forwarding the whole agent), `--ssh ID=SOCKET`, or
    /// `--ssh ID=KEYFILE[,KEYFILE...]` (an agent of rbuild's own holding just those keys).
    pub fn start(specs: &[String]) -> Result<BuildAgents, SshError> {
        let mut agents = BuildAgents::default();
        for spec in specs {
            let (id, what) = parse_spec(spec)?;
            let socket = match what {
                Spec::UserAgent => std::env::var_os("SSH_AUTH_SOCK")
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
                    .ok_or_else(|| SshError::NoAgent(id.clone()))?,
                Spec::Socket(socket) => socket,
                Spec::Keys(keys) => {
                    let agent = KeyAgent::start(&id, &keys)?;
                    let socket = agent.socket().to_path_buf();
                    agents._started.push(agent);
                    socket
                }
            };
            agents.sockets.insert(id, socket);
        }
        Ok(agents)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_specs_name_an_agent_a_socket_or_keys() {
        assert_eq!(
            parse_spec("default").ok(),
            Some(("default".to_string(), Spec::UserAgent))
        );
        let home = std::env::var("HOME").unwrap_or_default();
        assert_eq!(
            parse_spec("git=~/.ssh/a,/keys/b").ok(),
            Some((
                "git".to_string(),
                Spec::Keys(vec![
                    PathBuf::from(format!("{home}/.ssh/a")),
                    PathBuf::from("/keys/b")
                ])
            ))
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("s");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
        assert_eq!(
            parse_spec(&format!("default={}", socket.display())).ok(),
            Some(("default".to_string(), Spec::Socket(socket.clone())))
        );
        assert!(parse_spec("=x").is_err());
        assert!(parse_spec("id=").is_err());
    }
}
