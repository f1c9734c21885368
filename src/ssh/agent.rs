//! `--ssh ID=KEYFILE[,KEYFILE...]`: an `ssh-agent` of rbuild's own for the build, its socket in
//! a fresh 0700 directory, the keys added with `ssh-add`. Stopped (and the directory removed)
//! when the build is done.

// Paths here are key files the user named and rbuild's own runtime dir: the boundary rule
// (clippy.toml) does not apply.
#![allow(clippy::disallowed_methods)]

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::SshError;

/// A running agent holding the keys of one `--ssh` id.
pub struct KeyAgent {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for KeyAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyAgent")
            .field("socket", &self.socket)
            .finish()
    }
}

impl KeyAgent {
    /// Starts an agent for `id` and adds `keys` to it.
    pub fn start(id: &str, keys: &[PathBuf]) -> Result<KeyAgent, SshError> {
        for key in keys {
            check_key(id, key)?;
        }
        let dir = super::private_dir()?;
        let socket = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(SshError::StartAgent)?;
        let mut agent = KeyAgent {
            child,
            socket,
            _dir: dir,
        };
        agent.wait_for_socket()?;
        for key in keys {
            agent.add(id, key)?;
        }
        Ok(agent)
    }

    /// The agent's socket, for `RUN --mount=type=ssh` and git over ssh.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn wait_for_socket(&mut self) -> Result<(), SshError> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.socket.exists() {
            let exited = self.child.try_wait().ok().flatten().is_some();
            if exited || Instant::now() > deadline {
                return Err(SshError::NoSocket(self.socket.clone()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    fn add(&self, id: &str, key: &Path) -> Result<(), SshError> {
        let protected = needs_passphrase(id, key)?;
        let on_terminal = std::io::stdin().is_terminal();
        if protected && !on_terminal {
            return Err(SshError::Passphrase {
                id: id.to_string(),
                path: key.to_path_buf(),
            });
        }
        let mut command = Command::new("ssh-add");
        command
            .arg("-q")
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.socket)
            // Never a graphical prompt; a passphrase is asked on the terminal only.
            .env("SSH_ASKPASS_REQUIRE", "never")
            .env_remove("DISPLAY")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .stdin(if protected {
                Stdio::inherit()
            } else {
                Stdio::null()
            });
        let output = command
            .spawn()
            .and_then(|child| child.wait_with_output())
            .map_err(SshError::StartAgent)?;
        if output.status.success() {
            Ok(())
        } else {
            Err(SshError::Add {
                id: id.to_string(),
                path: key.to_path_buf(),
                detail: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            })
        }
    }
}

impl Drop for KeyAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The key is a readable regular file.
fn check_key(id: &str, key: &Path) -> Result<(), SshError> {
    let meta = std::fs::metadata(key).map_err(|source| SshError::ReadKey {
        id: id.to_string(),
        path: key.to_path_buf(),
        source,
    })?;
    if !meta.is_file() {
        return Err(SshError::NotAKey {
            id: id.to_string(),
            path: key.to_path_buf(),
            detail: "not a regular file".into(),
        });
    }
    Ok(())
}

/// Does `key` need a passphrase? `ssh-keygen -y` with an empty one reads the public half only
/// if the key is not encrypted.
fn needs_passphrase(id: &str, key: &Path) -> Result<bool, SshError> {
    let output = Command::new("ssh-keygen")
        .args(["-y", "-P", "", "-f"])
        .arg(key)
        .stdin(Stdio::null())
        .output()
        .map_err(SshError::StartAgent)?;
    if output.status.success() {
        return Ok(false);
    }
    let detail = String::from_utf8_lossy(&output.stderr).trim().to_string();
    if detail.contains("passphrase") {
        return Ok(true);
    }
    Err(SshError::NotAKey {
        id: id.to_string(),
        path: key.to_path_buf(),
        detail,
    })
}
