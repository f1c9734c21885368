//! Registry settings: insecure registries (plain http, or TLS without verification), pull
//! mirrors, and extra CA certificates.
//!
//! The file is `$RBUILD_REGISTRIES_CONFIG`, else `$XDG_CONFIG_HOME/rbuild/registries.json`
//! (`~/.config/rbuild/registries.json`):
//!
//! ```json
//! { "registries": {
//!     "docker.io": { "mirrors": ["mirror.internal:5000"] },
//!     "registry.lan:5000": { "insecure": true } } }
//! ```
//!
//! Loopback registries (`localhost`, `127.0.0.0/8`, `::1`) are insecure without configuration,
//! as docker treats them. CA certificates are read from `certs.d/HOST/*.crt` under
//! `~/.config/rbuild`, `/etc/containers` and `/etc/docker`, as podman and docker do.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::RegistryError;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryEntry {
    /// Use http, or https without certificate verification.
    #[serde(default)]
    pub insecure: bool,
    /// Hosts (`host[:port]`, optionally with a path prefix) tried before this registry on pull.
    #[serde(default)]
    pub mirrors: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySettings {
    #[serde(default)]
    pub registries: BTreeMap<String, RegistryEntry>,
}

fn config_home() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
}

impl RegistrySettings {
    /// The settings file, when there is one.
    pub fn path() -> Option<PathBuf> {
        if let Some(path) = std::env::var_os("RBUILD_REGISTRIES_CONFIG").filter(|v| !v.is_empty()) {
            return Some(PathBuf::from(path));
        }
        config_home().map(|c| c.join("rbuild/registries.json"))
    }

    pub fn load() -> Result<RegistrySettings, RegistryError> {
        match Self::path() {
            Some(path) => Self::load_from(&path),
            None => Ok(RegistrySettings::default()),
        }
    }

    pub fn load_from(path: &Path) -> Result<RegistrySettings, RegistryError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| RegistryError::Config {
                path: path.to_path_buf(),
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RegistrySettings::default()),
            Err(e) => Err(RegistryError::Io {
                action: "read",
                path: path.to_path_buf(),
                source: e,
            }),
        }
    }

    pub fn is_insecure(&self, registry: &str) -> bool {
        is_loopback(registry) || self.registries.get(registry).is_some_and(|r| r.insecure)
    }

    /// Mirrors to try, in order, before `registry` itself.
    pub fn mirrors(&self, registry: &str) -> Vec<String> {
        self.registries
            .get(registry)
            .map(|r| r.mirrors.clone())
            .unwrap_or_default()
    }

    /// PEM files with CA certificates to trust for `registry`.
    pub fn ca_files(&self, registry: &str) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        if let Some(config) = config_home() {
            dirs.push(config.join("rbuild/certs.d"));
        }
        dirs.push(PathBuf::from("/etc/containers/certs.d"));
        dirs.push(PathBuf::from("/etc/docker/certs.d"));
        let mut files = Vec::new();
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(dir.join(registry)) else {
                continue;
            };
            let mut found: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "crt"))
                .collect();
            found.sort();
            files.extend(found);
        }
        files
    }
}

/// `localhost[:port]`, `127.x.y.z[:port]`, `[::1][:port]`.
pub fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        registry.split(':').next().unwrap_or("")
    };
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_are_insecure_by_default() {
        let settings = RegistrySettings::default();
        for host in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
        ] {
            assert!(settings.is_insecure(host), "{host}");
        }
        for host in [
            "docker.io",
            "ghcr.io",
            "10.0.0.1:5000",
            "localhost.example.com",
        ] {
            assert!(!settings.is_insecure(host), "{host}");
        }
    }

    #[test]
    fn settings_file_names_insecure_registries_and_mirrors() {
        let settings: RegistrySettings = serde_json::from_str(
            r#"{"registries": {"docker.io": {"mirrors": ["m1:5000", "m2"]},
                "reg.lan:5000": {"insecure": true}}}"#,
        )
        .unwrap();
        assert_eq!(settings.mirrors("docker.io"), vec!["m1:5000", "m2"]);
        assert!(settings.mirrors("ghcr.io").is_empty());
        assert!(settings.is_insecure("reg.lan:5000"));
        assert!(!settings.is_insecure("docker.io"));
    }
}
