//! Registry credentials, found where docker and podman keep them: `$REGISTRY_AUTH_FILE`,
//! containers `auth.json`, then docker's `config.json` (`auths`, `credsStore`, `credHelpers`
//! through `docker-credential-*` programs). `login`/`logout` write the same files.
//! Secrets are never printed: `Credentials` has no Debug output of its fields.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;

use super::{io_err, RegistryError};

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials {{ username: {:?}, .. }}", self.username)
    }
}

impl Credentials {
    /// The value of a Basic Authorization header.
    pub fn basic_header(&self) -> String {
        let pair = format!("{}:{}", self.username, self.secret);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }
}

/// The key docker uses for a registry in config.json.
fn server_key(registry: &str) -> String {
    if registry == "docker.io" {
        "https://index.docker.io/v1/".to_string()
    } else {
        registry.to_string()
    }
}

/// Does a key of `auths` name `registry`? Keys may carry a scheme and a path.
fn key_matches(key: &str, registry: &str) -> bool {
    let host = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = host.split('/').next().unwrap_or(host);
    host == registry
        || (registry == "docker.io"
            && matches!(
                host,
                "index.docker.io" | "registry-1.docker.io" | "docker.io"
            ))
}

fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// `--authfile`, else `$REGISTRY_AUTH_FILE`.
fn chosen_auth_file() -> Option<PathBuf> {
    super::command::options().auth_file.clone().or_else(|| {
        std::env::var_os("REGISTRY_AUTH_FILE")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
}

/// Files searched for credentials, in order.
fn auth_files() -> Vec<PathBuf> {
    if let Some(file) = chosen_auth_file() {
        return vec![file];
    }
    let mut files = Vec::new();
    if let Some(run) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        files.push(PathBuf::from(run).join("containers/auth.json"));
    }
    if let Some(config) = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
    {
        files.push(config.join("containers/auth.json"));
    }
    files.extend(docker_config_path());
    files
}

fn read_config(path: &Path) -> Result<Option<serde_json::Value>, RegistryError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| RegistryError::Config {
                path: path.to_path_buf(),
                message: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RegistryError::Io {
            action: "read",
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

fn helper_for(config: &serde_json::Value, registry: &str) -> Option<String> {
    if let Some(helpers) = config["credHelpers"].as_object() {
        for (key, helper) in helpers {
            if key_matches(key, registry) {
                return helper.as_str().map(str::to_string);
            }
        }
    }
    config["credsStore"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Credentials for `registry`: this command's `--creds`, else any configured.
pub fn find(registry: &str) -> Result<Option<Credentials>, RegistryError> {
    if let Some(given) = &super::command::options().credentials {
        return Ok(Some(given.clone()));
    }
    for path in auth_files() {
        let Some(config) = read_config(&path)? else {
            continue;
        };
        if let Some(helper) = helper_for(&config, registry) {
            if let Some(found) = helper_get(&helper, registry)? {
                return Ok(Some(found));
            }
        }
        if let Some(auths) = config["auths"].as_object() {
            for (key, entry) in auths {
                if !key_matches(key, registry) {
                    continue;
                }
                if let Some(encoded) = entry["auth"].as_str().filter(|s| !s.is_empty()) {
                    return decode_auth(encoded, &path).map(Some);
                }
                if let (Some(username), Some(secret)) =
                    (entry["username"].as_str(), entry["password"].as_str())
                {
                    return Ok(Some(Credentials {
                        username: username.to_string(),
                        secret: secret.to_string(),
                    }));
                }
            }
        }
    }
    Ok(None)
}

fn decode_auth(encoded: &str, path: &Path) -> Result<Credentials, RegistryError> {
    let bad = || RegistryError::Config {
        path: path.to_path_buf(),
        message: "an \"auth\" value is not base64 of user:password".to_string(),
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (username, secret) = decoded.split_once(':').ok_or_else(bad)?;
    Ok(Credentials {
        username: username.to_string(),
        secret: secret.to_string(),
    })
}

fn run_helper(helper: &str, action: &str, input: &[u8]) -> Result<(bool, Vec<u8>), RegistryError> {
    let program = format!("docker-credential-{helper}");
    let err = |message: String| RegistryError::Helper {
        helper: program.clone(),
        message,
    };
    let mut child = Command::new(&program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(format!("cannot run it: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input)
            .map_err(|e| err(format!("cannot write to it: {e}")))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| err(format!("cannot read its answer: {e}")))?;
    Ok((output.status.success(), output.stdout))
}

fn helper_get(helper: &str, registry: &str) -> Result<Option<Credentials>, RegistryError> {
    let (ok, stdout) = run_helper(helper, "get", server_key(registry).as_bytes())?;
    if !ok {
        // "credentials not found in native keychain": not an error, just nothing stored.
        return Ok(None);
    }
    let answer: serde_json::Value =
        serde_json::from_slice(&stdout).map_err(|_| RegistryError::Helper {
            helper: format!("docker-credential-{helper}"),
            message: "its answer is not JSON".to_string(),
        })?;
    match (answer["Username"].as_str(), answer["Secret"].as_str()) {
        (Some(username), Some(secret)) if !secret.is_empty() => Ok(Some(Credentials {
            username: username.to_string(),
            secret: secret.to_string(),
        })),
        _ => Ok(None),
    }
}

/// The file `login`/`logout` change: `--authfile`, `$REGISTRY_AUTH_FILE`, else docker's
/// config.json.
pub fn login_file() -> Option<PathBuf> {
    chosen_auth_file().or_else(docker_config_path)
}

fn write_config(path: &Path, config: &serde_json::Value) -> Result<(), RegistryError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    let bytes = serde_json::to_vec_pretty(config).map_err(|e| RegistryError::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let temp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("auth"),
        std::process::id()
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .map_err(io_err("write", &temp))?;
    file.write_all(&bytes).map_err(io_err("write", &temp))?;
    file.sync_all().map_err(io_err("write", &temp))?;
    std::fs::rename(&temp, path).map_err(io_err("write", path))
}

/// Records credentials for `registry` (through the configured helper if there is one).
/// Returns the file (or helper) that now holds them.
pub fn login(registry: &str, credentials: &Credentials) -> Result<String, RegistryError> {
    let path = login_file().ok_or_else(|| RegistryError::Config {
        path: PathBuf::from("~/.docker/config.json"),
        message: "HOME is not set".to_string(),
    })?;
    let mut config = read_config(&path)?.unwrap_or_else(|| serde_json::json!({}));
    if let Some(helper) = helper_for(&config, registry) {
        let input = serde_json::json!({
            "ServerURL": server_key(registry),
            "Username": credentials.username,
            "Secret": credentials.secret,
        });
        let (ok, _) = run_helper(&helper, "store", input.to_string().as_bytes())?;
        if !ok {
            return Err(RegistryError::Helper {
                helper: format!("docker-credential-{helper}"),
                message: "it could not store the credentials".to_string(),
            });
        }
        return Ok(format!("docker-credential-{helper}"));
    }
    if !config.is_object() {
        config = serde_json::json!({});
    }
    if !config["auths"].is_object() {
        config["auths"] = serde_json::json!({});
    }
    let encoded = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", credentials.username, credentials.secret));
    config["auths"][server_key(registry)] = serde_json::json!({ "auth": encoded });
    write_config(&path, &config)?;
    Ok(path.display().to_string())
}

/// Forgets the credentials of `registry`; returns whether there were any.
pub fn logout(registry: &str) -> Result<bool, RegistryError> {
    let Some(path) = login_file() else {
        return Ok(false);
    };
    let Some(mut config) = read_config(&path)? else {
        return Ok(false);
    };
    let mut removed = false;
    if let Some(helper) = helper_for(&config, registry) {
        let (ok, _) = run_helper(&helper, "erase", server_key(registry).as_bytes())?;
        removed |= ok;
    }
    if let Some(auths) = config["auths"].as_object_mut() {
        let keys: Vec<String> = auths
            .keys()
            .filter(|k| key_matches(k, registry))
            .cloned()
            .collect();
        for key in keys {
            auths.remove(&key);
            removed = true;
        }
    }
    if removed {
        write_config(&path, &config)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_keys_match_as_docker_writes_them() {
        assert!(key_matches("https://index.docker.io/v1/", "docker.io"));
        assert!(key_matches("registry.lan:5000", "registry.lan:5000"));
        assert!(key_matches(
            "https://registry.lan:5000",
            "registry.lan:5000"
        ));
        assert!(!key_matches("registry.lan", "registry.lan:5000"));
        assert!(!key_matches("ghcr.io", "docker.io"));
    }

    #[test]
    fn auth_values_decode_and_never_show_in_debug() {
        let creds = decode_auth("dXNlcjpwYTpzcw==", Path::new("x")).unwrap();
        assert_eq!(creds.username, "user");
        assert_eq!(creds.secret, "pa:ss");
        assert!(!format!("{creds:?}").contains("pa:ss"));
        assert!(decode_auth("!!", Path::new("x")).is_err());
    }
}
