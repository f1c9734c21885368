//! The image config as Docker and OCI write it (`application/vnd.oci.image.config.v1+json`).
//! Our own type rather than oci-spec's: its maps are unordered and it lacks Healthcheck,
//! OnBuild and Shell. Unknown fields are kept, so a base image's config round-trips.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The PATH BuildKit gives a stage whose base image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    pub architecture: String,
    pub os: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default)]
    pub config: ContainerConfig,
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
    /// Where each Env key is, so that [`ImageConfig::set_env`] costs the same for the
    /// 100,000th `ENV` as for the first. Not part of the image.
    #[serde(skip)]
    env_index: EnvIndex,
}

/// Env key -> position in `config.env`, as of `len` entries (rebuilt when `env` was changed
/// without [`ImageConfig::set_env`], e.g. read from JSON).
#[derive(Debug, Clone, Default)]
struct EnvIndex {
    positions: std::collections::HashMap<String, usize>,
    len: usize,
}

/// The index is a cache of `env`: two configs are equal when their contents are.
impl PartialEq for EnvIndex {
    fn eq(&self, _: &EnvIndex) -> bool {
        true
    }
}

fn env_key(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(k, _)| k)
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// The runtime defaults of the image (`config` in the JSON), Docker's capitalised names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

impl ImageConfig {
    /// `os/arch[/variant]`, as `--platform` spells it.
    pub fn platform_text(&self) -> String {
        match self.variant.as_deref().filter(|v| !v.is_empty()) {
            Some(variant) => format!("{}/{}/{variant}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }

    /// The `platform` of an image index entry for this image (they must agree).
    pub fn oci_platform(&self) -> Result<oci_spec::image::Platform, oci_spec::OciSpecError> {
        let mut builder = oci_spec::image::PlatformBuilder::default()
            .os(oci_spec::image::Os::from(self.os.as_str()))
            .architecture(oci_spec::image::Arch::from(self.architecture.as_str()));
        if let Some(variant) = self.variant.as_deref().filter(|v| !v.is_empty()) {
            builder = builder.variant(variant.to_string());
        }
        builder.build()
    }

    /// The config of `FROM scratch` on this host's platform.
    pub fn scratch() -> ImageConfig {
        ImageConfig {
            architecture: host_architecture().to_string(),
            os: "linux".to_string(),
            rootfs: RootFs {
                kind: "layers".to_string(),
                diff_ids: Vec::new(),
            },
            ..ImageConfig::default()
        }
    }

    /// Value of `key` in the config's Env (last one wins, as in a shell).
    pub fn env_value(&self, key: &str) -> Option<&str> {
        self.config.env.iter().rev().find_map(|entry| {
            let (k, v) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
            (k == key).then_some(v)
        })
    }

    /// Sets `key=value` in Env, replacing an earlier entry in place.
    pub fn set_env(&mut self, key: &str, value: &str) {
        let entry = format!("{key}={value}");
        let env = &mut self.config.env;
        let index = &mut self.env_index;
        if index.len != env.len() {
            index.positions.clear();
            // The first of a repeated key is the one replaced, as a scan from the top finds.
            for (at, e) in env.iter().enumerate().rev() {
                index.positions.insert(env_key(e).to_string(), at);
            }
            index.len = env.len();
        }
        match index.positions.get(key) {
            Some(&at) if env.get(at).is_some_and(|e| env_key(e) == key) => env[at] = entry,
            _ => {
                index.positions.insert(key.to_string(), env.len());
                env.push(entry);
                index.len = env.len();
            }
        }
    }

    /// Canonical bytes: keys sorted at every level, no whitespace. The config digest (the image
    /// id) is the sha256 of exactly these bytes.
    pub fn to_canonical_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        canonical_json(self)
    }
}

/// Serializes with every object's keys sorted (serde_json's Map is a BTreeMap here).
pub fn canonical_json<T: Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let tree: Value = serde_json::to_value(value)?;
    serde_json::to_vec(&tree)
}

/// The OCI architecture name of the machine rbuild runs on.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_env_replaces_in_place_and_appends_new_keys() {
        let mut config: ImageConfig = serde_json::from_str(
            r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},
                "config":{"Env":["PATH=/bin","A=1","B","A=dup"]}}"#,
        )
        .expect("config");
        config.set_env("A", "2");
        config.set_env("C", "3");
        config.set_env("B", "x=y");
        config.set_env("PATH", "/usr/bin");
        config.set_env("C", "4");
        assert_eq!(
            config.config.env,
            ["PATH=/usr/bin", "A=2", "B=x=y", "A=dup", "C=4"]
        );
        // Changed behind its back (as a deserialized or hand-edited config is), the index
        // follows the new contents.
        config.config.env = vec!["C=1".into(), "D=2".into()];
        config.set_env("D", "5");
        config.set_env("A", "6");
        assert_eq!(config.config.env, ["C=1", "D=5", "A=6"]);
    }

    #[test]
    fn platform_of_a_config_as_text_and_as_an_index_entry() {
        let mut config = ImageConfig {
            os: "linux".into(),
            architecture: "arm".into(),
            variant: Some("v7".into()),
            ..ImageConfig::default()
        };
        assert_eq!(config.platform_text(), "linux/arm/v7");
        let entry = serde_json::to_value(config.oci_platform().expect("platform")).expect("json");
        assert_eq!(
            entry,
            serde_json::json!({"os": "linux", "architecture": "arm", "variant": "v7"})
        );
        config.variant = Some(String::new());
        assert_eq!(config.platform_text(), "linux/arm");
        let entry = serde_json::to_value(config.oci_platform().expect("platform")).expect("json");
        assert_eq!(
            entry,
            serde_json::json!({"os": "linux", "architecture": "arm"})
        );
    }

    #[test]
    fn canonical_json_sorts_keys_and_round_trips_unknown_fields() {
        let raw = r#"{"os":"linux","architecture":"amd64","zz":1,"config":{"Env":["A=1"],"Zed":true},"rootfs":{"type":"layers","diff_ids":[]}}"#;
        let config: ImageConfig = serde_json::from_str(raw).expect("parse");
        let bytes = config.to_canonical_json().expect("serialize");
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            r#"{"architecture":"amd64","config":{"Env":["A=1"],"Zed":true},"os":"linux","rootfs":{"diff_ids":[],"type":"layers"},"zz":1}"#
        );
    }

    #[test]
    fn env_is_replaced_in_place() {
        let mut config = ImageConfig::scratch();
        config.set_env("PATH", "/bin");
        config.set_env("A", "1");
        config.set_env("PATH", "/usr/bin");
        assert_eq!(config.config.env, vec!["PATH=/usr/bin", "A=1"]);
        assert_eq!(config.env_value("A"), Some("1"));
        assert_eq!(config.env_value("B"), None);
    }
}
