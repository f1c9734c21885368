//! The socket a `RUN --mount=type=ssh` step sees: a listening socket of rbuild's own, with the
//! mount's `uid`, `gid` and `mode` (BuildKit's defaults 0, 0, 0600), each connection piped
//! to the agent. A bind of the agent's own socket could not honour those (a chmod would
//! change the user's socket), and an agent refuses peers of another uid than its own, which
//! a step running as `USER 1000` is.

// The socket lives in a store temp dir rbuild made: the boundary rule (clippy.toml) does not
// apply.
#![allow(clippy::disallowed_methods)]

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::SshError;

/// A forwarding socket, served until dropped.
pub struct SocketProxy {
    socket: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SocketProxy {
    /// Listens on `socket` (a path in a directory rbuild made), owned by `uid:gid` with `mode`,
    /// forwarding every connection to `agent`.
    pub fn start(
        socket: &Path,
        agent: &Path,
        uid: u32,
        gid: u32,
        mode: u32,
    ) -> Result<SocketProxy, SshError> {
        let failed = |action: &'static str| {
            move |source: std::io::Error| SshError::Io {
                action,
                path: socket.to_path_buf(),
                source,
            }
        };
        let listener = UnixListener::bind(socket).map_err(failed("create"))?;
        std::os::unix::fs::chown(socket, Some(uid), Some(gid)).map_err(failed("chown"))?;
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(mode))
            .map_err(failed("chmod"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let agent = agent.to_path_buf();
        let thread = std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let agent = agent.clone();
                std::thread::spawn(move || forward(client, &agent));
            }
        });
        Ok(SocketProxy {
            socket: socket.to_path_buf(),
            stop,
            thread: Some(thread),
        })
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

/// Pipes one client connection to a new connection to the agent, both ways, until either
/// side closes.
fn forward(client: UnixStream, agent: &Path) {
    let Ok(upstream) = UnixStream::connect(agent) else {
        return;
    };
    let (Ok(mut client_reader), Ok(mut upstream_writer)) =
        (client.try_clone(), upstream.try_clone())
    else {
        return;
    };
    let requests = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_reader, &mut upstream_writer);
        let _ = upstream_writer.shutdown(std::net::Shutdown::Write);
    });
    let (mut upstream_reader, mut client_writer) = (upstream, client);
    let _ = std::io::copy(&mut upstream_reader, &mut client_writer);
    let _ = client_writer.shutdown(std::net::Shutdown::Write);
    let _ = requests.join();
}

impl Drop for SocketProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = UnixStream::connect(&self.socket);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
