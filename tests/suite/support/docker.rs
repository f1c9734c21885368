//! A private `dockerd` (Debian's docker.io) as an oracle: its own data root, exec root and
//! socket under a temp dir, no iptables, no bridge; stopped and removed on drop. Root only.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{describe_output, find_command, require_command, require_root};

pub struct Dockerd {
    dir: tempfile::TempDir,
    daemon: Child,
    cli: PathBuf,
}

impl Dockerd {
    /// Starts the daemon and waits for its socket; `None` (skipped loudly, or a failure on
    /// CI) when not root or dockerd is missing.
    pub fn start() -> Option<Dockerd> {
        if !require_root() || !require_command("dockerd") {
            return None;
        }
        // Debian's CLI matches Debian's daemon; another `docker` earlier in PATH may not.
        let cli = [Path::new("/usr/bin/docker").to_path_buf()]
            .into_iter()
            .find(|p| p.exists())
            .or_else(|| find_command("docker"))?;
        let dir = tempfile::Builder::new()
            .prefix("rbuild-dockerd.")
            .tempdir_in("/var/tmp")
            .expect("dockerd dir");
        let log = std::fs::File::create(dir.path().join("log")).expect("dockerd log");
        let daemon = Command::new(find_command("dockerd").expect("dockerd"))
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .arg("--pidfile")
            .arg(dir.path().join("pid"))
            .arg("-H")
            .arg(format!("unix://{}", dir.path().join("sock").display()))
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--exec-opt",
                "native.cgroupdriver=cgroupfs",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start dockerd: {e}"));
        let dockerd = Dockerd { dir, daemon, cli };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ping = dockerd
                .command(&["version"])
                .output()
                .expect("docker version");
            if ping.status.success() {
                return Some(dockerd);
            }
            assert!(
                Instant::now() < deadline,
                "dockerd did not come up:\n{}\n{}",
                describe_output(&ping),
                std::fs::read_to_string(dockerd.dir.path().join("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.cli);
        command
            .arg("-H")
            .arg(format!("unix://{}", self.dir.path().join("sock").display()))
            .args(args)
            .stdin(Stdio::null());
        command
    }

    /// Runs the CLI and panics unless it succeeds.
    pub fn run_ok(&self, args: &[&str]) -> Output {
        let output = self.command(args).output().expect("run docker");
        assert!(
            output.status.success(),
            "docker {args:?} failed:\n{}",
            describe_output(&output)
        );
        output
    }

    /// An image made from the filesystem tar at `tar`.
    pub fn import_tar(&self, tar: &Path, tag: &str) {
        self.run_ok(&["import", tar.to_str().expect("utf-8"), tag]);
    }

    /// An image holding one executable file at `/NAME`, imported from a tar.
    pub fn import_file(&self, file: &Path, name: &str, tag: &str) {
        let tar = self.dir.path().join("import.tar");
        let status = Command::new("tar")
            .arg("-cf")
            .arg(&tar)
            .arg("-C")
            .arg(file.parent().expect("parent"))
            .arg(format!("--transform=s|.*|{name}|"))
            .arg(file.file_name().expect("name"))
            .status()
            .expect("tar");
        assert!(status.success());
        self.run_ok(&["import", tar.to_str().expect("utf-8"), tag]);
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // SIGTERM: dockerd stops its containers and unmounts on it
        if let Ok(pid) = i32::try_from(self.daemon.id()) {
            // SAFETY: kill(2) on the daemon this struct spawned and has not reaped yet.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.daemon.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        // whatever overlay mounts the daemon left under its data root
        let _ = Command::new("umount")
            .arg("-R")
            .arg("-l")
            .arg(self.dir.path().join("data"))
            .stderr(Stdio::null())
            .status();
    }
}
