//! What rbuild fetches over http: `ADD https://...` (with `--checksum`) and a tarball URL as
//! the build context, from a server on loopback (reference.md "ADD", "Remote contexts").

use std::io::Write;
use std::process::{Child, Command, Stdio};

use crate::support::*;

/// `python3 -m http.server` serving a temp dir on 127.0.0.1; killed on drop.
struct HttpServer {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl HttpServer {
    fn start() -> Option<HttpServer> {
        if !require_command("python3") {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("rbuild-http.")
            .tempdir_in("/var/tmp")
            .expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3 http.server");
        let mut server = HttpServer { child, dir, port };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(server);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = server.child.kill();
        let _ = server.child.wait();
        panic!("python3 http.server did not start on port {port}");
    }

    fn put(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).expect("write served file");
        let touch = Command::new("touch")
            .args(["-d", "2021-06-01 12:00:00 UTC"])
            .arg(&path)
            .status()
            .expect("touch");
        assert!(touch.success());
        format!("http://127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn add_downloads_urls_with_checksum_mode_and_mtime() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let Some(server) = HttpServer::start() else {
        return;
    };
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"not extracted").expect("gzip");
    let archive = gz.finish().expect("gzip");
    let plain_url = server.put("notes.txt", b"remote notes\n");
    let archive_url = server.put("bundle.tar.gz", &archive);
    let checksum = format!("sha256:{}", sha256_hex(b"remote notes\n"));
    let ctx = env.context(&[(
        "Dockerfile",
        file(format!(
            "FROM busybox:latest\nADD {plain_url} /downloads/\nADD --checksum={checksum} {plain_url} /checked.txt\nADD {archive_url} /archives/\n"
        )),
    )]);
    let (_, image) = env.build_oci("add-url", &[], &ctx);
    let tree = image.tree();
    assert_eq!(tree.text("downloads/notes.txt"), "remote notes\n");
    assert_eq!(
        tree.node("downloads/notes.txt").mode,
        0o600,
        "downloads get mode 0600"
    );
    assert_eq!(
        tree.node("downloads/notes.txt").mtime,
        1_622_548_800,
        "mtime from Last-Modified"
    );
    assert_eq!(tree.text("checked.txt"), "remote notes\n");
    assert_eq!(
        tree.bytes("archives/bundle.tar.gz"),
        archive.as_slice(),
        "remote archives are not extracted"
    );

    let bad = env.context(&[(
        "Dockerfile",
        file(format!(
            "FROM busybox:latest\nADD --checksum=sha256:{} {plain_url} /x\n",
            "0".repeat(64)
        )),
    )]);
    let stderr = env.rbuild_err(["build", bad.to_str().expect("utf-8")]);
    assert!(
        stderr.contains("checksum") && stderr.contains("Dockerfile:2:"),
        "{stderr}"
    );
    let missing = env.context(&[(
        "Dockerfile",
        file(format!(
            "FROM busybox:latest\nADD http://127.0.0.1:{}/nope /x\n",
            server.port
        )),
    )]);
    let stderr = env.rbuild_err(["build", missing.to_str().expect("utf-8")]);
    assert!(stderr.contains("404"), "{stderr}");
}

#[test]
fn tarball_url_as_build_context() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let Some(server) = HttpServer::start() else {
        return;
    };
    let mut builder = tar::Builder::new(Vec::new());
    for (name, content) in [
        (
            "Dockerfile",
            "FROM busybox:latest\nCOPY data.txt /data.txt\n",
        ),
        ("data.txt", "from a url\n"),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, name, content.as_bytes())
            .expect("append");
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&builder.into_inner().expect("tar"))
        .expect("gzip");
    let url = server.put("context.tar.gz", &gz.finish().expect("gzip"));
    let out = env.path("url-context.tar");
    env.rbuild_ok([
        "build",
        "-o",
        &format!("type=oci,dest={}", out.display()),
        &url,
    ]);
    assert_eq!(OciImage::open(&out).tree().text("data.txt"), "from a url\n");
}
