//! An sshd on loopback for git-over-ssh tests: its own host key, one authorized client key,
//! only the test user allowed. It runs as root (sshd must, to switch to the user), so tests
//! that use it need a root harness, as CI's.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::{find_command, gate, is_root, run_ok};

pub struct Sshd {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

/// Makes an ed25519 key pair at `path` (and `path.pub`) with `comment`; `passphrase` may be
/// empty.
pub fn keygen(path: &Path, comment: &str, passphrase: &str) {
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", passphrase, "-C", comment, "-f"])
            .arg(path),
    );
}

impl Sshd {
    /// Starts sshd letting `user` in with the public key `client_pub`; None (after the gate)
    /// without root or sshd.
    pub fn start(user: &str, client_pub: &Path) -> Option<Sshd> {
        let sshd = find_command("sshd").or_else(|| {
            Path::new("/usr/sbin/sshd")
                .exists()
                .then(|| PathBuf::from("/usr/sbin/sshd"))
        });
        if !gate(
            "sshd (openssh-server) and a root harness",
            sshd.is_some() && is_root(),
        ) {
            return None;
        }
        let sshd = sshd?;
        let dir = tempfile::Builder::new()
            .prefix("rbuild-sshd.")
            .tempdir_in("/var/tmp")
            .expect("sshd temp dir");
        let host_key = dir.path().join("host_key");
        keygen(&host_key, "rbuild-test-host", "");
        let authorized = dir.path().join("authorized_keys");
        std::fs::copy(client_pub, &authorized).expect("authorized_keys");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\n\
                 AuthorizedKeysFile {}\nStrictModes no\nUsePAM yes\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nAllowUsers {user}\n",
                host_key.display(),
                dir.path().join("pid").display(),
                authorized.display()
            ),
        )
        .expect("sshd_config");
        // sshd wants its privilege separation directory.
        std::fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        let log = std::fs::File::create(dir.path().join("log")).expect("sshd log");
        let child = Command::new(&sshd)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        let server = Sshd { child, port, dir };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(server);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("sshd did not start:\n{}", server.log());
    }

    /// The `known_hosts` line for this server.
    pub fn known_hosts_line(&self) -> String {
        let public =
            std::fs::read_to_string(self.dir.path().join("host_key.pub")).expect("host key");
        let mut parts = public.split_whitespace();
        let (kind, key) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        format!("[127.0.0.1]:{} {kind} {key}\n", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
