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
//! A mirror may carry a path prefix (`mirror:5000/dockerhub`): the repository is appended.
//! The containers `registries.conf` (v2 TOML: `$CONTAINERS_REGISTRIES_CONF`, else
//! `~/.config/containers/registries.conf`, else `/etc/containers/registries.conf`) is read too:
//! its `[[registry]]` `prefix`/`location`, `insecure` and `[[registry.mirror]]` entries.
//!
//! Loopback registries (`localhost`, `127.0.0.0/8`, `::1`) are insecure without configuration,
//! as docker treats them; `"insecure": false` in rbuild's file makes one verified (as podman
//! treats every registry). CA certificates are read from `certs.d/HOST/*.crt` under
//! `~/.config/rbuild`, `/etc/containers` and `/etc/docker`, as podman and docker do.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::RegistryError;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryEntry {
    /// Use http, or https without certificate verification; unset: only for loopback hosts.
    #[serde(default)]
    pub insecure: Option<bool>,
    /// Hosts (`host[:port]`, optionally with a path prefix) tried before this registry on pull.
    #[serde(default)]
    pub mirrors: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySettings {
    #[serde(default)]
    pub registries: BTreeMap<String, RegistryEntry>,
    /// From registries.conf: (prefix, mirror locations), longest prefix first.
    #[serde(skip)]
    pub conf_mirrors: Vec<(String, Vec<String>)>,
    /// From registries.conf: hosts marked insecure (registries and mirrors).
    #[serde(skip)]
    pub conf_insecure: Vec<String>,
}

/// The subset of containers registries.conf v2 that rbuild uses.
#[derive(Debug, Default, Deserialize)]
struct RegistriesConf {
    #[serde(default)]
    registry: Vec<ConfRegistry>,
}

#[derive(Debug, Default, Deserialize)]
struct ConfRegistry {
    prefix: Option<String>,
    location: Option<String>,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    mirror: Vec<ConfMirror>,
}

#[derive(Debug, Default, Deserialize)]
struct ConfMirror {
    location: String,
    #[serde(default)]
    insecure: bool,
}

fn host_of(location: &str) -> &str {
    location.split('/').next().unwrap_or(location)
}

fn registries_conf_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CONTAINERS_REGISTRIES_CONF").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let user = config_home().map(|c| c.join("containers/registries.conf"));
    user.filter(|p| p.exists())
        .or_else(|| Some(PathBuf::from("/etc/containers/registries.conf")))
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
        let mut settings = match Self::path() {
            Some(path) => Self::load_from(&path)?,
            None => RegistrySettings::default(),
        };
        if let Some(path) = registries_conf_path() {
            settings.add_registries_conf(&path)?;
        }
        Ok(settings)
    }

    /// Adds the mirrors and insecure registries of a registries.conf (v2) file, if it exists.
    pub fn add_registries_conf(&mut self, path: &Path) -> Result<(), RegistryError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(RegistryError::Io {
                    action: "read",
                    path: path.to_path_buf(),
                    source: e,
                })
            }
        };
        let conf: RegistriesConf = toml::from_str(&text).map_err(|e| RegistryError::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        for registry in conf.registry {
            let Some(prefix) = registry.prefix.or(registry.location.clone()) else {
                continue;
            };
            if registry.insecure {
                if let Some(location) = &registry.location {
                    self.conf_insecure.push(host_of(location).to_string());
                }
            }
            let mut mirrors = Vec::new();
            for mirror in registry.mirror {
                if mirror.insecure {
                    self.conf_insecure
                        .push(host_of(&mirror.location).to_string());
                }
                mirrors.push(mirror.location);
            }
            if !mirrors.is_empty() {
                self.conf_mirrors.push((prefix, mirrors));
            }
        }
        self.conf_mirrors
            .sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        Ok(())
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

    /// Is `registry` spoken to without certificate checks (or over plain http)? Loopback,
    /// configured insecure, or every registry under `--tls-verify=false`.
    pub fn is_insecure(&self, registry: &str) -> bool {
        if !super::command::options().tls_verify || self.conf_insecure.iter().any(|h| h == registry)
        {
            return true;
        }
        match self.registries.get(registry).and_then(|r| r.insecure) {
            Some(insecure) => insecure,
            None => is_loopback(registry),
        }
    }

    /// Where to try pulling `registry/repository` from before the registry itself:
    /// (host, repository) pairs, rbuild's settings first, then registries.conf.
    pub fn mirrors(&self, registry: &str, repository: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for mirror in self
            .registries
            .get(registry)
            .map(|r| r.mirrors.clone())
            .unwrap_or_default()
        {
            out.push(match mirror.split_once('/') {
                Some((host, path)) => (host.to_string(), format!("{path}/{repository}")),
                None => (mirror, repository.to_string()),
            });
        }
        let name = format!("{registry}/{repository}");
        let matching = self.conf_mirrors.iter().find(|(prefix, _)| {
            name == *prefix || name.starts_with(&format!("{prefix}/")) || registry == prefix
        });
        if let Some((prefix, mirrors)) = matching {
            // The part of the name after the prefix goes after the mirror's location.
            let rest = name
                .strip_prefix(prefix.as_str())
                .unwrap_or(&name)
                .trim_start_matches('/');
            for location in mirrors {
                let full = if rest.is_empty() {
                    location.clone()
                } else {
                    format!("{}/{rest}", location.trim_end_matches('/'))
                };
                if let Some((host, path)) = full.split_once('/') {
                    out.push((host.to_string(), path.to_string()));
                }
            }
        }
        out
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
                "reg.lan:5000": {"insecure": true},
                "localhost:5000": {"insecure": false}}}"#,
        )
        .unwrap();
        // An explicit false makes a loopback registry verified.
        assert!(!settings.is_insecure("localhost:5000"));
        assert!(settings.is_insecure("localhost:5001"));
        assert_eq!(
            settings.mirrors("docker.io", "library/busybox"),
            vec![
                ("m1:5000".to_string(), "library/busybox".to_string()),
                ("m2".to_string(), "library/busybox".to_string())
            ]
        );
        assert!(settings.mirrors("ghcr.io", "a/b").is_empty());
        assert!(settings.is_insecure("reg.lan:5000"));
        assert!(!settings.is_insecure("docker.io"));
    }

    #[test]
    fn registries_conf_mirrors_and_insecure_hosts() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("registries.conf");
        std::fs::write(
            &conf,
            r#"
unqualified-search-registries = ["docker.io"]

[[registry]]
location = "docker.io"
[[registry.mirror]]
location = "cache.lan:5000/hub"
insecure = true

[[registry]]
prefix = "quay.io/team"
location = "quay.io/team"
[[registry.mirror]]
location = "mirror.lan/quay-team"
"#,
        )
        .unwrap();
        let mut settings = RegistrySettings::default();
        settings.add_registries_conf(&conf).unwrap();
        assert_eq!(
            settings.mirrors("docker.io", "library/busybox"),
            vec![(
                "cache.lan:5000".to_string(),
                "hub/library/busybox".to_string()
            )]
        );
        assert_eq!(
            settings.mirrors("quay.io", "team/app"),
            vec![("mirror.lan".to_string(), "quay-team/app".to_string())]
        );
        assert!(settings.mirrors("quay.io", "other/app").is_empty());
        assert!(settings.is_insecure("cache.lan:5000"));
        assert!(!settings.is_insecure("mirror.lan"));
    }
}
