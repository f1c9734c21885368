//! Git sources for tests: repositories made on the spot and served over `git://` on loopback
//! by `git daemon --inetd` (one process per connection), since builds may not fetch `file://`.

use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::describe_output;

/// Runs git in `repo` with a fixed identity; panics with its output when it fails.
pub fn git_in(repo: &Path, args: &[&str]) {
    let output = Command::new("git")
        .args(["-c", "user.email=t@example.com", "-c", "user.name=t"])
        .args(args)
        .current_dir(repo)
        .output()
        .expect("run git");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        describe_output(&output)
    );
}

/// A `git://127.0.0.1:PORT/` server for the repositories below one directory, until dropped.
pub struct GitServer {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl GitServer {
    pub fn serve(base: &Path) -> GitServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let base: PathBuf = base.to_path_buf();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let socket = OwnedFd::from(stream);
                let Ok(input) = socket.try_clone() else {
                    continue;
                };
                let mut base_path = std::ffi::OsString::from("--base-path=");
                base_path.push(&base);
                let _ = Command::new("git")
                    .args(["daemon", "--inetd", "--export-all"])
                    .arg(&base_path)
                    .arg(&base)
                    .stdin(Stdio::from(input))
                    .stdout(Stdio::from(socket))
                    .stderr(Stdio::null())
                    .spawn();
            }
        });
        GitServer { port, stop }
    }

    /// The URL of the repository `name` (a dir below the served base).
    pub fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}
