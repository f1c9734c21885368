//! The values of `rbuild build`'s flags that need more than clap's parsing: annotations,
//! build args and labels, `SOURCE_DATE_EPOCH`, `--add-host`, `--ssh`, `--secret`,
//! `--platform` lists.

use std::collections::BTreeMap;

use anyhow::{bail, Context as _};

use rbuild::export::Annotations;
use rbuild::pipeline::SOURCE_DATE_EPOCH;

/// `--annotation [TYPE[PLATFORMS]:]KEY=VALUE`, as buildx: TYPE is `manifest` (default),
/// `manifest-descriptor`, `index` or `index-descriptor`; `[linux/amd64,linux/arm64]` after
/// `manifest` or `manifest-descriptor` limits it to those platforms' images.
pub(super) fn parse_annotations(values: &[String]) -> anyhow::Result<Annotations> {
    let mut annotations = Annotations::default();
    for value in values {
        let syntax =
            || anyhow::anyhow!("--annotation {value:?}: expected [TYPE[PLATFORMS]:]KEY=VALUE");
        let (key, val) = value.split_once('=').ok_or_else(syntax)?;
        let (kind, key) = match key.split_once(':') {
            Some((kind, k))
                if [
                    "manifest",
                    "manifest-descriptor",
                    "index",
                    "index-descriptor",
                ]
                .iter()
                .any(|t| kind == *t || kind.starts_with(&format!("{t}["))) =>
            {
                (kind, k)
            }
            _ => ("manifest", key),
        };
        if key.is_empty() {
            return Err(syntax());
        }
        let (kind, platforms) = match kind.split_once('[') {
            Some((kind, rest)) => {
                let list = rest.strip_suffix(']').ok_or_else(syntax)?;
                let platforms = list
                    .split(',')
                    .map(|p| {
                        rbuild::plan::Platform::parse(p.trim())
                            .map(|p| p.text())
                            .map_err(|e| anyhow::anyhow!("--annotation {value:?}: {e}"))
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                (kind, Some(platforms))
            }
            None => (kind, None),
        };
        let (key, val) = (key.to_string(), val.to_string());
        match (kind, platforms) {
            ("manifest", None) => {
                annotations.manifest.insert(key, val);
            }
            ("manifest-descriptor", None) => {
                annotations.manifest_descriptor.insert(key, val);
            }
            ("index", None) => {
                annotations.index.insert(key, val);
            }
            ("index-descriptor", None) => {
                annotations.index_descriptor.insert(key, val);
            }
            (kind @ ("manifest" | "manifest-descriptor"), Some(platforms)) => {
                let by_platform = if kind == "manifest" {
                    &mut annotations.platform_manifest
                } else {
                    &mut annotations.platform_manifest_descriptor
                };
                for platform in platforms {
                    by_platform
                        .entry(platform)
                        .or_default()
                        .insert(key.clone(), val.clone());
                }
            }
            (kind, Some(_)) => bail!(
                "--annotation {value:?}: {kind} annotations take no platform (only manifest and \
                 manifest-descriptor do)"
            ),
            _ => return Err(syntax()),
        }
    }
    Ok(annotations)
}

/// `SOURCE_DATE_EPOCH` from `--build-arg` (taken out of the build args), else the environment,
/// else 0 with `--reproducible`.
pub(super) fn source_date_epoch(
    build_args: &mut BTreeMap<String, String>,
    reproducible: bool,
) -> anyhow::Result<Option<i64>> {
    let value = build_args
        .remove(SOURCE_DATE_EPOCH)
        .or_else(|| std::env::var(SOURCE_DATE_EPOCH).ok())
        .filter(|v| !v.is_empty());
    match value {
        Some(v) => Ok(Some(v.parse().with_context(|| {
            format!("{SOURCE_DATE_EPOCH}={v}: expected seconds since 1970-01-01")
        })?)),
        None => Ok(reproducible.then_some(0)),
    }
}

pub(super) fn parse_key_values(
    flag: &str,
    values: &[String],
    from_env: bool,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for value in values {
        match value.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                map.insert(k.to_string(), v.to_string());
            }
            None if from_env && !value.is_empty() => {
                // `--build-arg K` takes K from the environment; unset means not given.
                if let Ok(v) = std::env::var(value) {
                    map.insert(value.clone(), v);
                }
            }
            _ => bail!("{flag} {value:?}: expected KEY=VALUE"),
        }
    }
    Ok(map)
}

/// `--add-host NAME:IP` or `NAME=IP` (docker's newer spelling, which IPv6 addresses read
/// better in); `host-gateway` is the host itself, whose network the steps share.
pub(super) fn parse_add_host(spec: &str) -> anyhow::Result<(String, String)> {
    let (host, ip) = spec
        .split_once('=')
        .or_else(|| spec.split_once(':'))
        .filter(|(host, ip)| !host.is_empty() && !ip.is_empty())
        .with_context(|| format!("--add-host {spec:?}: expected NAME:IP or NAME=IP"))?;
    let ip = if ip == "host-gateway" {
        "127.0.0.1"
    } else {
        ip
    };
    ip.parse::<std::net::IpAddr>()
        .with_context(|| format!("--add-host {spec:?}: {ip:?} is not an IP address"))?;
    Ok((host.to_string(), ip.to_string()))
}

/// The largest secret BuildKit's secret store accepts (500 KiB).
const MAX_SECRET_SIZE: u64 = 500 << 10;

/// Where one `--secret` value comes from.
#[derive(Debug, PartialEq, Eq)]
enum SecretSource {
    File(String),
    Env(String),
}

/// One `--secret` spec, read as buildx reads it: `id=ID,src=FILE` (a file), `id=ID,env=VAR`,
/// `type=env,id=ID,src=VAR` (for type=env the source names a variable), or a bare `id=ID`:
/// the variable ID when it is set, else the file ID.
fn secret_spec(spec: &str) -> anyhow::Result<(String, SecretSource)> {
    let mut id = None;
    let mut source = None;
    let mut env = None;
    let mut is_env = false;
    for part in spec.split(',') {
        match part.split_once('=') {
            Some(("id", v)) => id = Some(v.to_string()),
            Some(("src" | "source", v)) => source = Some(v.to_string()),
            Some(("env", v)) => env = Some(v.to_string()),
            Some(("type", "file")) => is_env = false,
            Some(("type", "env")) => is_env = true,
            Some(("type", other)) => {
                bail!("--secret {spec:?}: type={other} is not a secret type (file or env)")
            }
            _ => bail!("--secret {spec:?}: expected id=ID,src=FILE or id=ID,env=VAR"),
        }
    }
    let id = id.with_context(|| format!("--secret {spec:?}: missing id="))?;
    let from = match (env, source, is_env) {
        (Some(var), _, _) | (None, Some(var), true) => SecretSource::Env(var),
        (None, Some(file), false) => SecretSource::File(file),
        (None, None, _) if std::env::var_os(&id).is_some() => SecretSource::Env(id.clone()),
        (None, None, _) => SecretSource::File(id.clone()),
    };
    Ok((id, from))
}

/// Every `--secret`, read now: by id, its value.
pub(super) fn parse_secrets(specs: &[String]) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut secrets = BTreeMap::new();
    for spec in specs {
        let (id, from) = secret_spec(spec)?;
        let value = match from {
            SecretSource::Env(name) => std::env::var_os(&name)
                .with_context(|| {
                    format!("--secret id={id}: environment variable {name} is not set")
                })?
                .into_encoded_bytes(),
            SecretSource::File(name) => {
                let size = std::fs::metadata(&name)
                    .with_context(|| format!("--secret id={id}: cannot read {name}"))?
                    .len();
                if size > MAX_SECRET_SIZE {
                    bail!(
                        "--secret id={id}: {name} is {size} bytes; a secret holds at most 500 KiB"
                    );
                }
                std::fs::read(&name)
                    .with_context(|| format!("--secret id={id}: cannot read {name}"))?
            }
        };
        secrets.insert(id, value);
    }
    Ok(secrets)
}

/// `--platform a,b,...`: each platform once, in the order given (`local` is this host).
pub(super) fn parse_platforms(list: Option<&str>) -> anyhow::Result<Vec<rbuild::plan::Platform>> {
    let mut platforms: Vec<rbuild::plan::Platform> = Vec::new();
    for text in list.into_iter().flat_map(|l| l.split(',')) {
        let platform = rbuild::plan::Platform::parse(text.trim())
            .map_err(|e| anyhow::anyhow!("--platform: {e}"))?;
        if !platforms.contains(&platform) {
            platforms.push(platform);
        }
    }
    Ok(platforms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_sources_as_buildx_reads_them() {
        let spec = |s: &str| secret_spec(s).ok();
        let file = |id: &str, f: &str| Some((id.to_string(), SecretSource::File(f.into())));
        let env = |id: &str, v: &str| Some((id.to_string(), SecretSource::Env(v.into())));
        assert_eq!(spec("id=a,src=/f"), file("a", "/f"));
        assert_eq!(spec("id=a,type=file,source=/f"), file("a", "/f"));
        assert_eq!(spec("id=a,env=TOKEN"), env("a", "TOKEN"));
        assert_eq!(spec("id=a,type=env,src=TOKEN"), env("a", "TOKEN"));
        // A bare id: the variable when set (PATH is), else the file of that name.
        assert_eq!(spec("id=PATH"), env("PATH", "PATH"));
        assert_eq!(
            spec("id=rbuild-no-such-variable-x"),
            file("rbuild-no-such-variable-x", "rbuild-no-such-variable-x")
        );
        assert_eq!(spec("id=a,type=ftp"), None);
        assert_eq!(spec("src=/f"), None);
    }

    #[test]
    fn add_host_spellings() {
        let parsed = |s: &str| parse_add_host(s).ok();
        let pair = |h: &str, ip: &str| Some((h.to_string(), ip.to_string()));
        assert_eq!(parsed("db:10.0.0.5"), pair("db", "10.0.0.5"));
        assert_eq!(parsed("db=10.0.0.5"), pair("db", "10.0.0.5"));
        assert_eq!(parsed("v6:::1"), pair("v6", "::1"));
        assert_eq!(parsed("v6=fe80::1"), pair("v6", "fe80::1"));
        assert_eq!(parsed("gw=host-gateway"), pair("gw", "127.0.0.1"));
        assert_eq!(parsed("db"), None);
        assert_eq!(parsed("db=not-an-ip"), None);
    }

    #[test]
    fn annotations_by_target() {
        let parsed = parse_annotations(&[
            "a=1".to_string(),
            "manifest:b=2".to_string(),
            "index:c=3".to_string(),
            "manifest-descriptor:d=4".to_string(),
        ])
        .expect("valid");
        assert_eq!(parsed.manifest.len(), 2);
        assert_eq!(parsed.index.get("c").map(String::as_str), Some("3"));
        assert_eq!(
            parsed.manifest_descriptor.get("d").map(String::as_str),
            Some("4")
        );
        assert!(parse_annotations(&["novalue".to_string()]).is_err());
        let qualified = parse_annotations(&[
            "manifest[linux/arm64,linux/amd64]:e=5".to_string(),
            "manifest-descriptor[linux/arm/v7]:f=6".to_string(),
            "index-descriptor:g=7".to_string(),
            "org.opencontainers.image.url=https://x".to_string(),
        ])
        .expect("valid");
        assert_eq!(qualified.platform_manifest.len(), 2);
        assert_eq!(
            qualified.platform_manifest_descriptor["linux/arm/v7"]["f"],
            "6"
        );
        assert_eq!(qualified.index_descriptor["g"], "7");
        assert_eq!(
            qualified.manifest["org.opencontainers.image.url"], "https://x",
            "a key with a colon in its value is a plain manifest annotation"
        );
        assert!(parse_annotations(&["index[linux/amd64]:h=8".to_string()]).is_err());
        assert!(parse_annotations(&["manifest[linux/amd64:h=8".to_string()]).is_err());
    }

    #[test]
    fn source_date_epoch_from_build_arg_or_reproducible() {
        let mut args = BTreeMap::from([(SOURCE_DATE_EPOCH.to_string(), "42".to_string())]);
        assert_eq!(source_date_epoch(&mut args, false).ok(), Some(Some(42)));
        assert!(args.is_empty(), "taken out of the build args");
        let mut bad = BTreeMap::from([(SOURCE_DATE_EPOCH.to_string(), "soon".to_string())]);
        assert!(source_date_epoch(&mut bad, false).is_err());
        if std::env::var_os(SOURCE_DATE_EPOCH).is_none() {
            assert_eq!(
                source_date_epoch(&mut BTreeMap::new(), true).ok(),
                Some(Some(0))
            );
            assert_eq!(
                source_date_epoch(&mut BTreeMap::new(), false).ok(),
                Some(None)
            );
        }
    }
}
