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
    /// Bearer tokens from this issuer (`auth: token`).
    pub token: Option<(String, PathBuf)>,
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
        if let Some((realm, certificate)) = &options.token {
            config.push_str(&format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {TOKEN_SERVICE}\n    \
                 issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                certificate.display()
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

/// A small bearer-token issuer (Python with python3-jwt) on loopback, as Docker Hub's auth
/// service: anonymous requests get pull access, `user:password` gets what it asks for, wrong
/// credentials get 401. Every token it issues is logged so tests can grep for leaks.
pub struct TokenIssuer {
    child: Child,
    dir: tempfile::TempDir,
    pub realm: String,
}

pub const TOKEN_SERVICE: &str = "rbuild-test-registry";
pub const TOKEN_ISSUER: &str = "rbuild-test-issuer";

const ISSUER_PY: &str = r#"
import base64, json, sys, time, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, parse_qs
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization

port, key_path, cert_path, user, password, log_path = sys.argv[1:7]
key = open(key_path, 'rb').read()
cert = x509.load_pem_x509_certificate(open(cert_path, 'rb').read())
x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass
    def do_GET(self):
        query = parse_qs(urlparse(self.path).query)
        authorized = False
        header = self.headers.get('Authorization', '')
        if header.startswith('Basic '):
            given = base64.b64decode(header[6:]).decode()
            if given != user + ':' + password:
                self.send_response(401)
                self.end_headers()
                return
            authorized = True
        access = []
        for scope in query.get('scope', []):
            for part in scope.split(' '):
                kind, name, actions = part.split(':')[0], ':'.join(part.split(':')[1:-1]), part.split(':')[-1]
                granted = actions.split(',') if authorized else [a for a in actions.split(',') if a == 'pull']
                access.append({'type': kind, 'name': name, 'actions': granted})
        now = int(time.time())
        claims = {'iss': sys.argv[7], 'sub': user if authorized else '', 'aud': query.get('service', [''])[0],
                  'exp': now + 600, 'nbf': now - 10, 'iat': now, 'jti': str(uuid.uuid4()), 'access': access}
        token = jwt.encode(claims, key, algorithm='RS256', headers={'x5c': [x5c]})
        with open(log_path, 'a') as log:
            log.write(token + '\n')
        body = json.dumps({'token': token, 'access_token': token}).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

ThreadingHTTPServer(('127.0.0.1', int(port)), Handler).serve_forever()
"#;

impl TokenIssuer {
    /// None (after the gate) without /usr/bin/python3 with jwt and cryptography, or openssl.
    pub fn start(user: &str, password: &str) -> Option<TokenIssuer> {
        if !require_commands(&["openssl"]) {
            return None;
        }
        let python = Path::new("/usr/bin/python3");
        let has_modules = Command::new(python)
            .args(["-c", "import jwt, cryptography"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !super::gate(
            "/usr/bin/python3 with python3-jwt and python3-cryptography",
            has_modules,
        ) {
            return None;
        }
        let dir = tempfile::tempdir().expect("create the issuer's temp dir");
        let key = dir.path().join("token-key.pem");
        let cert = dir.path().join("token-cert.pem");
        run_ok(Command::new("openssl").args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=rbuild-test-issuer",
            "-keyout",
            key.to_str().expect("utf-8"),
            "-out",
            cert.to_str().expect("utf-8"),
        ]));
        let script = dir.path().join("issuer.py");
        std::fs::write(&script, ISSUER_PY).expect("write the issuer");
        let port = free_port();
        let child = Command::new(python)
            .arg(&script)
            .arg(port.to_string())
            .arg(&key)
            .arg(&cert)
            .arg(user)
            .arg(password)
            .arg(dir.path().join("tokens.log"))
            .arg(TOKEN_ISSUER)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the token issuer");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the token issuer did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(TokenIssuer {
            child,
            dir,
            realm: format!("http://127.0.0.1:{port}/token"),
        })
    }

    /// The certificate whose key signs the tokens (the registry's rootcertbundle).
    pub fn certificate(&self) -> PathBuf {
        self.dir.path().join("token-cert.pem")
    }

    /// Every token issued so far.
    pub fn tokens(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("tokens.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for TokenIssuer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A throttling pull proxy (Python) in front of a registry: blob GETs trickle out in 64 KiB
/// chunks, and each one is logged as `PATH RANGE STATUS BYTES_SENT`, so a test can interrupt a
/// pull half-way and check that the next one asks for the rest only.
pub struct ThrottlingProxy {
    child: Child,
    dir: tempfile::TempDir,
    pub host: String,
}

const PROXY_PY: &str = r#"
import http.client, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, upstream, log_path, failures = int(sys.argv[1]), sys.argv[2], sys.argv[3], [int(sys.argv[4])]
tamper = sys.argv[5] == 'tamper'


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def log_message(self, *args):
        pass
    def forward(self, method):
        if method == 'GET' and '/blobs/sha256:' in self.path and failures[0] > 0:
            # A transient failure: the client should retry.
            failures[0] -= 1
            self.send_response(503)
            self.send_header('Content-Length', '0')
            self.end_headers()
            with open(log_path, 'a') as log:
                log.write('%s %s 503 0\n' % (self.path, self.headers.get('Range', '-')))
            return
        conn = http.client.HTTPConnection(upstream)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ('host', 'connection')}
        conn.request(method, self.path, headers=headers)
        resp = conn.getresponse()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() in ('connection', 'transfer-encoding'):
                continue
            if tamper and k.lower() == 'docker-content-digest' and '/manifests/sha256:' not in self.path:
                # A manifest by tag whose bytes are not the ones the registry names.
                v = 'sha256:' + '0' * 64
            self.send_header(k, v)
        self.end_headers()
        blob = method == 'GET' and '/blobs/sha256:' in self.path
        sent = 0
        while True:
            chunk = resp.read(65536)
            if not chunk:
                break
            self.wfile.write(chunk)
            self.wfile.flush()
            sent += len(chunk)
            if blob:
                with open(log_path + '.progress', 'w') as progress:
                    progress.write(str(sent))
                time.sleep(0.02)
        if blob:
            with open(log_path, 'a') as log:
                log.write('%s %s %d %d\n' % (self.path, self.headers.get('Range', '-'), resp.status, sent))
    def do_GET(self):
        self.forward('GET')
    def do_HEAD(self):
        self.forward('HEAD')

ThreadingHTTPServer(('127.0.0.1', port), Handler).serve_forever()
"#;

impl ThrottlingProxy {
    pub fn start(upstream: &str) -> Option<ThrottlingProxy> {
        Self::start_failing(upstream, 0)
    }

    /// Like `start`, but the first `failures` blob GETs are answered 503.
    pub fn start_failing(upstream: &str, failures: u32) -> Option<ThrottlingProxy> {
        Self::launch(upstream, failures, false)
    }

    /// Like `start`, but manifests fetched by tag carry a `Docker-Content-Digest` that is not
    /// the digest of their bytes, as if they were swapped on the way.
    pub fn start_tampering(upstream: &str) -> Option<ThrottlingProxy> {
        Self::launch(upstream, 0, true)
    }

    fn launch(upstream: &str, failures: u32, tamper: bool) -> Option<ThrottlingProxy> {
        let python = Path::new("/usr/bin/python3");
        if !super::gate("/usr/bin/python3", python.exists()) {
            return None;
        }
        let dir = tempfile::tempdir().expect("create the proxy's temp dir");
        let script = dir.path().join("proxy.py");
        std::fs::write(&script, PROXY_PY).expect("write the proxy");
        let port = free_port();
        let child = Command::new(python)
            .arg(&script)
            .arg(port.to_string())
            .arg(upstream)
            .arg(dir.path().join("blobs.log"))
            .arg(failures.to_string())
            .arg(if tamper { "tamper" } else { "honest" })
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the proxy");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the proxy did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(ThrottlingProxy {
            child,
            dir,
            host: format!("127.0.0.1:{port}"),
        })
    }

    /// Completed blob GETs: (path, Range header or `-`, status, bytes sent).
    pub fn blob_requests(&self) -> Vec<(String, String, u16, u64)> {
        std::fs::read_to_string(self.dir.path().join("blobs.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let parts: Vec<&str> = line.split(' ').collect();
                match parts.as_slice() {
                    [path, range, status, sent] => Some((
                        path.to_string(),
                        range.to_string(),
                        status.parse().ok()?,
                        sent.parse().ok()?,
                    )),
                    _ => None,
                }
            })
            .collect()
    }
}

impl Drop for ThrottlingProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
