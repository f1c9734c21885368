//! One registry repository over HTTP: scheme choice (https, or http for insecure registries),
//! the auth handshake (anonymous or credentialed bearer tokens, basic), and retries of
//! transient failures. The Authorization value is kept private and never formatted.

use std::sync::Mutex;
use std::time::Duration;

use ureq::http::Response;
use ureq::Body;

use super::credentials::{self, Credentials};
use super::{RegistryError, RegistrySettings};

/// The wait before retry `attempt` of a request that failed transiently (connection errors,
/// 429, 5xx): 1 s, 2 s, 4 s, then 8 s each.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500 << attempt.min(4))
}

/// What a request sends as its body; files are reopened on every attempt.
pub enum RequestBody<'a> {
    Empty,
    Bytes(&'a [u8], &'a str),
    /// A blob file of the given size, reporting upload progress under a name.
    File(&'a std::path::Path, u64, Option<(&'a str, super::Log<'a>)>),
}

/// Counts bytes read for upload progress.
struct Counted<'a, R> {
    inner: R,
    done: u64,
    total: u64,
    report: Option<(&'a str, super::Log<'a>)>,
}

impl<R: std::io::Read> std::io::Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if let Some((name, log)) = self.report {
            log.transfer(name, self.done, self.total);
        }
        Ok(n)
    }
}

pub struct Client {
    agent: ureq::Agent,
    registry: String,
    repository: String,
    base: String,
    credentials: Option<Credentials>,
    /// Token scopes requested: this repository's access plus mount sources.
    scopes: Vec<String>,
    authorization: Mutex<Option<String>>,
}

fn agent(insecure: bool, ca_pems: &[Vec<u8>]) -> ureq::Agent {
    let mut tls = ureq::tls::TlsConfig::builder();
    if insecure {
        tls = tls.disable_verification(true);
    } else if !ca_pems.is_empty() {
        let certs: Vec<ureq::tls::Certificate<'static>> = ca_pems
            .iter()
            .flat_map(|pem| ureq::tls::parse_pem(pem))
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert),
                _ => None,
            })
            .collect();
        tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
    }
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(tls.build())
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(120)))
        .timeout_per_read(Some(Duration::from_secs(120)))
        .max_redirects(10)
        .user_agent(concat!("rbuild/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

fn is_transient(error: &ureq::Error) -> bool {
    matches!(
        error,
        ureq::Error::Io(_) | ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed
    )
}

fn transient_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// The challenge of a WWW-Authenticate header: scheme and its parameters.
pub(crate) fn parse_challenge(header: &str) -> (String, Vec<(String, String)>) {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        params.push((key.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    (scheme.to_ascii_lowercase(), params)
}

fn status_message(response: Response<Body>) -> String {
    let mut response = response;
    let body = response
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .read_to_string()
        .unwrap_or_default();
    let messages: Vec<String> = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["errors"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|e| {
            let code = e["code"].as_str().unwrap_or("");
            let message = e["message"].as_str().unwrap_or("");
            (!(code.is_empty() && message.is_empty()))
                .then(|| format!("{} ({})", message, code.to_ascii_lowercase()))
        })
        .collect();
    if messages.is_empty() {
        String::new()
    } else {
        format!(": {}", messages.join("; "))
    }
}

impl Client {
    /// Connects to `registry` for `repository` with the given access (`pull` or `pull,push`)
    /// and extra pull scopes (mount sources). Pings `/v2/` to pick the scheme and, when the
    /// registry asks for it, authenticates before any parallel request starts.
    pub fn connect(
        settings: &RegistrySettings,
        registry: &str,
        repository: &str,
        access: &str,
        extra_pull: &[String],
    ) -> Result<Client, RegistryError> {
        let credentials = credentials::find(registry)?;
        Self::connect_with(
            settings,
            registry,
            repository,
            access,
            extra_pull,
            credentials,
        )
    }

    pub fn connect_with(
        settings: &RegistrySettings,
        registry: &str,
        repository: &str,
        access: &str,
        extra_pull: &[String],
        credentials: Option<Credentials>,
    ) -> Result<Client, RegistryError> {
        let insecure = settings.is_insecure(registry);
        let ca_pems: Vec<Vec<u8>> = settings
            .ca_files(registry)
            .iter()
            .filter_map(|p| std::fs::read(p).ok())
            .collect();
        // Docker Hub's API lives on registry-1.docker.io.
        let host = if registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            registry
        };
        let mut scopes = Vec::new();
        if !repository.is_empty() {
            scopes.push(format!("repository:{repository}:{access}"));
        }
        for source in extra_pull {
            scopes.push(format!("repository:{source}:pull"));
        }
        let mut client = Client {
            agent: agent(insecure, &ca_pems),
            registry: registry.to_string(),
            repository: repository.to_string(),
            base: format!("https://{host}"),
            credentials,
            scopes,
            authorization: Mutex::new(None),
        };
        let ping = match client.send_once("GET", &client.url("/v2/"), &[], &RequestBody::Empty) {
            Err(RegistryError::Http { .. }) if insecure => {
                // An insecure registry may speak plain http only (a TLS handshake with it
                // fails in one of several ways).
                client.base = format!("http://{host}");
                client.send_once("GET", &client.url("/v2/"), &[], &RequestBody::Empty)?
            }
            other => other?,
        };
        if ping.status().as_u16() == 401 {
            client.authenticate(&ping)?;
        }
        Ok(client)
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `/v2/REPO/SUFFIX` as a URL.
    pub fn repo_url(&self, suffix: &str) -> String {
        self.url(&format!("/v2/{}/{suffix}", self.repository))
    }

    /// Resolves a Location header against the registry's base URL.
    pub fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else if location.starts_with('/') {
            self.url(location)
        } else {
            self.url(&format!("/{location}"))
        }
    }

    fn send_once(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        body: &RequestBody,
    ) -> Result<Response<Body>, RegistryError> {
        let http_err = |e: ureq::Error| RegistryError::Http {
            url: url.to_string(),
            source: Box::new(e),
        };
        let authorization = self
            .authorization
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default();
        let mut builder = ureq::http::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        // Credentials go to the registry only: a Location pointing elsewhere (a storage
        // backend) gets none.
        let same_origin = url
            .strip_prefix(self.base.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        if let Some(value) = authorization.filter(|_| same_origin) {
            builder = builder.header("authorization", value);
        }
        let result = match body {
            RequestBody::Empty => {
                let request = builder
                    .body(())
                    .map_err(|e| http_err(ureq::Error::Http(e)))?;
                self.agent.run(request)
            }
            RequestBody::Bytes(bytes, content_type) => {
                let request = builder
                    .header("content-type", *content_type)
                    .body(bytes.to_vec())
                    .map_err(|e| http_err(ureq::Error::Http(e)))?;
                self.agent.run(request)
            }
            RequestBody::File(path, size, report) => {
                let file = std::fs::File::open(path).map_err(super::io_err("read", path))?;
                let mut reader = Counted {
                    inner: std::io::BufReader::with_capacity(256 * 1024, file),
                    done: 0,
                    total: *size,
                    report: *report,
                };
                let request = builder
                    .header("content-type", "application/octet-stream")
                    .header("content-length", size.to_string())
                    .body(ureq::SendBody::from_reader(&mut reader))
                    .map_err(|e| http_err(ureq::Error::Http(e)))?;
                self.agent.run(request)
            }
        };
        result.map_err(http_err)
    }

    /// Sends a request, authenticating on a 401 and retrying transient failures. Statuses
    /// other than 401 are returned to the caller.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        body: &RequestBody,
    ) -> Result<Response<Body>, RegistryError> {
        let mut authenticated = false;
        let mut attempt = 0;
        let retries = super::command::options().retries;
        loop {
            attempt += 1;
            match self.send_once(method, url, headers, body) {
                Err(RegistryError::Http { source, .. })
                    if is_transient(&source) && attempt <= retries =>
                {
                    std::thread::sleep(backoff(attempt));
                }
                Err(e) => return Err(e),
                Ok(response) if response.status().as_u16() == 401 => {
                    if authenticated {
                        return Err(self.unauthorized());
                    }
                    self.authenticate(&response)?;
                    authenticated = true;
                    attempt -= 1;
                }
                Ok(response) if response.status().as_u16() == 403 => {
                    return Err(RegistryError::Denied {
                        registry: self.registry.clone(),
                        repository: self.repository.clone(),
                    })
                }
                Ok(response)
                    if transient_status(response.status().as_u16()) && attempt <= retries =>
                {
                    std::thread::sleep(backoff(attempt));
                }
                Ok(response) => return Ok(response),
            }
        }
    }

    /// Sends and expects one of `ok` statuses; anything else becomes an error with the
    /// registry's message.
    /// PUTs a manifest or index (`media_type`) under `reference` (a tag or digest) of this
    /// repository.
    pub fn put_manifest(
        &self,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<(), RegistryError> {
        self.expect(
            "PUT",
            &self.repo_url(&format!("manifests/{reference}")),
            &[],
            &RequestBody::Bytes(bytes, media_type),
            &[200, 201],
        )?;
        Ok(())
    }

    pub fn expect(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        body: &RequestBody,
        ok: &[u16],
    ) -> Result<Response<Body>, RegistryError> {
        let response = self.send(method, url, headers, body)?;
        let status = response.status().as_u16();
        if ok.contains(&status) {
            Ok(response)
        } else {
            Err(RegistryError::Status {
                url: url.to_string(),
                status,
                message: status_message(response),
            })
        }
    }

    fn unauthorized(&self) -> RegistryError {
        if self.credentials.is_some() {
            RegistryError::Unauthorized {
                registry: self.registry.clone(),
            }
        } else {
            RegistryError::AuthRequired {
                registry: self.registry.clone(),
            }
        }
    }

    /// Answers a 401 challenge: basic credentials, or a bearer token from the realm.
    fn authenticate(&self, response: &Response<Body>) -> Result<(), RegistryError> {
        let challenge = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let (scheme, params) = parse_challenge(challenge);
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let header = match scheme.as_str() {
            "basic" => match &self.credentials {
                Some(credentials) => credentials.basic_header(),
                None => return Err(self.unauthorized()),
            },
            "bearer" => {
                let realm = param("realm").ok_or_else(|| RegistryError::Invalid {
                    what: format!("the auth challenge of {}", self.registry),
                    message: "a bearer challenge without a realm".to_string(),
                })?;
                let mut query: Vec<(String, String)> = Vec::new();
                if let Some(service) = param("service") {
                    query.push(("service".into(), service));
                }
                for scope in &self.scopes {
                    query.push(("scope".into(), scope.clone()));
                }
                if let Some(scope) = param("scope") {
                    if !self.scopes.contains(&scope) {
                        query.push(("scope".into(), scope));
                    }
                }
                format!("Bearer {}", self.fetch_token(&realm, &query)?)
            }
            _ => return Err(self.unauthorized()),
        };
        if let Ok(mut authorization) = self.authorization.lock() {
            *authorization = Some(header);
        }
        Ok(())
    }

    fn fetch_token(
        &self,
        realm: &str,
        query: &[(String, String)],
    ) -> Result<String, RegistryError> {
        let mut request = self.agent.get(realm);
        for (key, value) in query {
            request = request.query(key, value);
        }
        if let Some(credentials) = &self.credentials {
            request = request.header("authorization", credentials.basic_header());
        }
        let mut response = request.call().map_err(|e| RegistryError::Http {
            url: realm.to_string(),
            source: Box::new(e),
        })?;
        let status = response.status().as_u16();
        if status == 401 || status == 403 {
            return Err(self.unauthorized());
        }
        if status != 200 {
            return Err(RegistryError::Status {
                url: realm.to_string(),
                status,
                message: status_message(response),
            });
        }
        let bad = |message: String| RegistryError::Invalid {
            what: format!("the token service {realm}"),
            message,
        };
        let bytes = response
            .body_mut()
            .with_config()
            .limit(1024 * 1024)
            .read_to_vec()
            .map_err(|e| bad(e.to_string()))?;
        let answer: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        answer["token"]
            .as_str()
            .or_else(|| answer["access_token"].as_str())
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .ok_or_else(|| bad("its answer has no token".to_string()))
    }

    /// Checks credentials against the registry (`rbuild login`).
    pub fn check_login(
        settings: &RegistrySettings,
        registry: &str,
        credentials: Credentials,
    ) -> Result<(), RegistryError> {
        let client = Self::connect_with(settings, registry, "", "", &[], Some(credentials))?;
        client.expect("GET", &client.url("/v2/"), &[], &RequestBody::Empty, &[200])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse_with_quoted_commas() {
        let (scheme, params) = parse_challenge(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(scheme, "bearer");
        assert_eq!(
            params,
            vec![
                ("realm".into(), "https://auth.example.com/token".into()),
                ("service".into(), "registry.example.com".into()),
                ("scope".into(), "repository:a/b:pull,push".into()),
            ]
        );
        let (scheme, params) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(scheme, "basic");
        assert_eq!(params, vec![("realm".into(), "Registry Realm".into())]);
    }
}
