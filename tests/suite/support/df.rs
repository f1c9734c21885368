//! Helpers for the df_* suites, which mirror BuildKit's frontend/dockerfile tests: build one
//! Dockerfile with a context and read back the exported image's config.

use std::path::Path;

use serde_json::Value;

use super::{file, Content, OciImage, TestEnv};

/// Builds `dockerfile` with `entries` as the rest of the context; the exported image.
pub fn build_df(
    env: &TestEnv,
    name: &str,
    dockerfile: &str,
    entries: &[(&str, Content)],
    args: &[&str],
) -> OciImage {
    let ctx = df_context(env, dockerfile, entries);
    env.build_oci(name, args, &ctx).1
}

/// A context holding `dockerfile` as `Dockerfile` and `entries`.
pub fn df_context(
    env: &TestEnv,
    dockerfile: &str,
    entries: &[(&str, Content)],
) -> std::path::PathBuf {
    let mut all = vec![("Dockerfile", file(dockerfile))];
    all.extend(entries.iter().cloned());
    env.context(&all)
}

/// Builds `dockerfile`, expecting failure; its stderr.
pub fn build_df_err(
    env: &TestEnv,
    dockerfile: &str,
    entries: &[(&str, Content)],
    args: &[&str],
) -> String {
    let ctx = df_context(env, dockerfile, entries);
    let mut all: Vec<&str> = vec!["build"];
    all.extend(args);
    all.push(path_str(&ctx));
    env.rbuild_err(all)
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// The `created_by` of every history entry.
pub fn created_by(image: &OciImage) -> Vec<String> {
    image
        .history()
        .iter()
        .map(|h| h["created_by"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The value of `key` in the image config's Env, if set.
pub fn env_value(image: &OciImage, key: &str) -> Option<String> {
    let prefix = format!("{key}=");
    image.runtime_config()["Env"]
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .find_map(|e| e.strip_prefix(&prefix).map(str::to_string))
}

/// A config field, JSON null when absent.
pub fn config_field<'a>(image: &'a OciImage, key: &str) -> &'a Value {
    image.runtime_config().get(key).unwrap_or(&Value::Null)
}
