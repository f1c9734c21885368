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
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&layer_tar(&[TarEntry::file("inner.txt", "inside\n")]))
        .expect("gzip");
    let real_tar = gz.finish().expect("gzip");
    let plain_url = server.put("notes.txt", b"remote notes\n");
    let archive_url = server.put("bundle.tar.gz", &archive);
    let real_tar_url = server.put("real.tar.gz", &real_tar);
    let checksum = format!("sha256:{}", sha256_hex(b"remote notes\n"));
    let ctx = env.context(&[(
        "Dockerfile",
        file(format!(
            "FROM busybox:latest\nADD {plain_url} /downloads/\nADD --checksum={checksum} {plain_url} /checked.txt\nADD {archive_url} /archives/\nADD --unpack {real_tar_url} /unpacked/\nADD --unpack=true {real_tar_url} /unpacked-too/\n"
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
    // A bare boolean flag is true, as `--unpack=true` (BuildKit's one rule for booleans).
    assert_eq!(tree.text("unpacked/inner.txt"), "inside\n");
    assert_eq!(tree.text("unpacked-too/inner.txt"), "inside\n");

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

/// buildx's `--build-context` sources beyond a dir and an image: a git repository (at a tag,
/// a subdir), an http(s) URL (one file named `context`, mode 0600, BuildKit's llb.HTTP), and
/// a directory as the base of `FROM` (its files, `.dockerignore` applied, as the first layer
/// over an empty config); a context named like a stage replaces that stage (which is not built).
#[test]
fn named_contexts_from_git_a_url_and_a_directory_as_base() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let Some(server) = HttpServer::start() else {
        return;
    };
    if !require_command("git") {
        return;
    }
    let repo = env.path("repo");
    std::fs::create_dir_all(repo.join("docs")).expect("mkdir");
    std::fs::write(repo.join("docs/readme.txt"), "tagged\n").expect("write");
    let git = |args: &[&str]| crate::support::git::git_in(&repo, args);
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "one"]);
    git(&["tag", "v1"]);
    std::fs::write(repo.join("docs/readme.txt"), "head\n").expect("write");
    git(&["commit", "-qam", "two"]);
    let git_server = crate::support::git::GitServer::serve(&env.path(""));
    let page = server.put("notes.txt", b"served over http\n");

    let rootfs = env.write_tree(
        "rootfs",
        &[
            ("etc/app.conf", file("conf\n")),
            ("bin/tool", executable("#!/bin/sh\n")),
            ("secret.key", file("never in the image\n")),
            (".dockerignore", file("secret.key\n")),
        ],
    );
    let ctx = env.context(&[(
        "Dockerfile",
        file(
            "FROM busybox:latest AS tools\nRUN exit 3\n\
             FROM rootfs\n\
             COPY --from=tools /bin/tool /bin/tool-again\n\
             COPY --from=repo /readme.txt /from-git.txt\n\
             COPY --from=page /context /from-url\n",
        ),
    )]);
    let dir = rootfs.display().to_string();
    let (_, image) = env.build_oci(
        "named-remote",
        &[
            "--build-context",
            &format!("rootfs={dir}"),
            "--build-context",
            &format!("tools={dir}"),
            "--build-context",
            &format!("repo={}#v1:docs", git_server.url("repo")),
            "--build-context",
            &format!("page={page}"),
        ],
        &ctx,
    );
    let tree = image.tree();
    assert_eq!(tree.text("etc/app.conf"), "conf\n");
    assert_eq!(tree.node("etc/app.conf").owner(), (0, 0));
    assert_eq!(tree.node("bin/tool").mode & 0o777, 0o755);
    assert!(
        !tree.contains("secret.key"),
        "the dir's .dockerignore applies"
    );
    assert_eq!(
        tree.text(".dockerignore"),
        "secret.key\n",
        "as COPY . / copies it"
    );
    assert_eq!(
        tree.text("bin/tool-again"),
        "#!/bin/sh\n",
        "the stage is the dir"
    );
    assert_eq!(
        tree.text("from-git.txt"),
        "tagged\n",
        "the tag, in the subdir"
    );
    assert_eq!(tree.text("from-url"), "served over http\n");
    assert_eq!(tree.node("from-url").mode & 0o777, 0o600);
    // The dir is one layer over nothing; each COPY one more.
    assert_eq!(image.layer_count(), 4);
    assert!(!tree.contains("bin/busybox"), "FROM rootfs is not an image");
}
