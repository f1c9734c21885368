//! A real registry on loopback (Debian's `docker-registry`), started by a test with its own
//! config and storage in a temp dir, optionally with htpasswd basic auth and TLS from a
//! self-signed certificate; killed on drop. Its request log tells what clients sent.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::run_ok;
use super::tools::require_commands;

pub struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`
    pub host: String,
}

#[derive(Default)]
pub struct RegistryOptions {
    /// htpasswd basic auth with this user and password.
    pub basic_auth: Option<(String, String)>,
    /// Serve https with a self-signed certificate for 127.0.0.1.
    pub tls: bool,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("find a free loopback port")
}

impl Registry {
    /// A plain http registry; None (after the gate) without docker-registry or skopeo.
    pub fn start() -> Option<Registry> {
        Self::start_with(RegistryOptions::default())
    }

    pub fn start_with(options: RegistryOptions) -> Option<Registry> {
        let mut needed = vec!["docker-registry", "skopeo"];
        if options.basic_auth.is_some() {
            needed.push("htpasswd");
        }
        if options.tls {
            needed.push("openssl");
        }
        if !require_commands(&needed) {
            return None;
        }
        let dir = tempfile::tempdir().expect("create the registry's temp dir");
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if options.tls {
            let cert = dir.path().join("cert.pem");
            let key = dir.path().join("key.pem");
            run_ok(Command::new("openssl").args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
                "-keyout",
                key.to_str().expect("utf-8"),
                "-out",
                cert.to_str().expect("utf-8"),
            ]));
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
        }
        if let Some((user, password)) = &options.basic_auth {
            let htpasswd = dir.path().join("htpasswd");
            run_ok(Command::new("htpasswd").args([
                "-Bbc",
                htpasswd.to_str().expect("utf-8"),
                user,
                password,
            ]));
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: rbuild-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write the registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("create log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let registry = Registry {
            child,
            dir,
            host: format!("127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not start:\n{}",
                registry.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(registry)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the registry logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Requests logged so far whose request line starts with `prefix` (e.g. `PUT /v2/app/`).
    pub fn requests(&self, prefix: &str) -> usize {
        self.log()
            .lines()
            .filter(|line| line.contains(&format!("\"{prefix}")))
            .count()
    }

    /// Copies the busybox fixture (OCI archive) to `REPO:TAG` in the registry with skopeo,
    /// an independent tool. `creds` are `user:password` for an auth registry.
    pub fn seed_busybox(&self, fixture: &Path, repo_tag: &str, creds: Option<&str>) {
        let mut command = Command::new("skopeo");
        command
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .args(creds.map(|c| format!("--dest-creds={c}")))
            .arg(format!("oci-archive:{}", fixture.display()))
            .arg(format!("docker://{}/{repo_tag}", self.host));
        run_ok(&mut command);
    }

    /// The CA certificate of a TLS registry.
    pub fn certificate(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
