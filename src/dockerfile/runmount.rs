//! `RUN --mount=...` specs as BuildKit reads them: comma-separated `key=value` fields and
//! the defaults of each mount type.

/// A `--mount` value BuildKit would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountSpecError {
    #[error("unsupported mount type {0:?}")]
    Type(String),
    #[error("mount option {0} needs a value")]
    NoValue(String),
    #[error("invalid value for {key}: {value:?} (expected true or false)")]
    Bool { key: String, value: String },
    #[error("invalid size {0:?}")]
    Size(String),
    #[error("invalid sharing {0:?} (shared, private or locked)")]
    Sharing(String),
    #[error("invalid mode {0:?}")]
    Mode(String),
    #[error("invalid {0}")]
    Id(&'static str),
    #[error("unknown mount option {0:?}")]
    Unknown(String),
    #[error("a secret mount needs id= or target=")]
    SecretId,
    #[error("a cache mount needs target=")]
    CacheTarget,
    #[error("the mount needs target=")]
    Target,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountKind {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMount {
    pub kind: MountKind,
    pub target: String,
    /// Path in the source (context, stage or image); default its root.
    pub source: String,
    pub from: Option<String>,
    pub read_only: bool,
    pub id: String,
    pub sharing: Sharing,
    pub mode: Option<u32>,
    pub uid: u32,
    pub gid: u32,
    pub required: bool,
    /// tmpfs size in bytes (0: the kernel default).
    pub size: u64,
    /// secret: also (or only) exposed as this environment variable.
    pub env: Option<String>,
}

fn parse_bool(key: &str, value: Option<&str>) -> Result<bool, MountSpecError> {
    match value {
        None | Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(other) => Err(MountSpecError::Bool {
            key: key.to_string(),
            value: other.to_string(),
        }),
    }
}

/// `512m`, `1g`, `65536` -> bytes (tmpfs `size=`, `--shm-size`).
pub fn parse_size(text: &str) -> Result<u64, MountSpecError> {
    let lower = text.to_ascii_lowercase();
    let (digits, scale) = match lower.trim_end_matches('b').chars().last() {
        Some('k') => (&lower[..lower.trim_end_matches('b').len() - 1], 1u64 << 10),
        Some('m') => (&lower[..lower.trim_end_matches('b').len() - 1], 1 << 20),
        Some('g') => (&lower[..lower.trim_end_matches('b').len() - 1], 1 << 30),
        _ => (lower.trim_end_matches('b'), 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| MountSpecError::Size(text.to_string()))
}

/// Parses one `--mount` value.
pub fn parse_mount(spec: &str) -> Result<RunMount, MountSpecError> {
    let mut kind = MountKind::Bind;
    let mut fields: Vec<(String, Option<String>)> = Vec::new();
    for field in spec.split(',').filter(|f| !f.is_empty()) {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.to_string())),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        if key == "type" {
            kind = match value.as_deref() {
                Some("bind") => MountKind::Bind,
                Some("cache") => MountKind::Cache,
                Some("tmpfs") => MountKind::Tmpfs,
                Some("secret") => MountKind::Secret,
                Some("ssh") => MountKind::Ssh,
                other => return Err(MountSpecError::Type(other.unwrap_or("").to_string())),
            };
        } else {
            fields.push((key, value));
        }
    }
    let mut mount = RunMount {
        kind,
        target: String::new(),
        source: String::new(),
        from: None,
        read_only: matches!(kind, MountKind::Bind | MountKind::Secret | MountKind::Ssh),
        id: String::new(),
        sharing: Sharing::Shared,
        mode: None,
        uid: 0,
        gid: 0,
        required: false,
        size: 0,
        env: None,
    };
    for (key, value) in fields {
        let text = || {
            value
                .clone()
                .ok_or_else(|| MountSpecError::NoValue(key.clone()))
        };
        match key.as_str() {
            "target" | "dst" | "destination" => mount.target = text()?,
            "source" | "src" => mount.source = text()?,
            "from" => mount.from = Some(text()?),
            "readonly" | "ro" => mount.read_only = parse_bool(&key, value.as_deref())?,
            "readwrite" | "rw" => mount.read_only = !parse_bool(&key, value.as_deref())?,
            "id" => mount.id = text()?,
            "sharing" => {
                mount.sharing = match text()?.as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    other => return Err(MountSpecError::Sharing(other.to_string())),
                }
            }
            "mode" => {
                let t = text()?;
                mount.mode =
                    Some(u32::from_str_radix(&t, 8).map_err(|_| MountSpecError::Mode(t.clone()))?)
            }
            "uid" => mount.uid = text()?.parse().map_err(|_| MountSpecError::Id("uid"))?,
            "gid" => mount.gid = text()?.parse().map_err(|_| MountSpecError::Id("gid"))?,
            "required" => mount.required = parse_bool(&key, value.as_deref())?,
            "size" => mount.size = parse_size(&text()?)?,
            "env" => mount.env = Some(text()?),
            other => return Err(MountSpecError::Unknown(other.to_string())),
        }
    }
    match mount.kind {
        MountKind::Secret => {
            if mount.id.is_empty() {
                mount.id = mount.target.rsplit('/').next().unwrap_or("").to_string();
            }
            if mount.id.is_empty() {
                return Err(MountSpecError::SecretId);
            }
            if mount.target.is_empty() && mount.env.is_none() {
                mount.target = format!("/run/secrets/{}", mount.id);
            }
        }
        MountKind::Ssh => {
            if mount.id.is_empty() {
                mount.id = "default".into();
            }
            if mount.target.is_empty() {
                mount.target = "/run/buildkit/ssh_agent.0".into();
            }
        }
        MountKind::Cache => {
            if mount.target.is_empty() {
                return Err(MountSpecError::CacheTarget);
            }
            if mount.id.is_empty() {
                mount.id = mount.target.clone();
            }
        }
        MountKind::Bind | MountKind::Tmpfs => {
            if mount.target.is_empty() {
                return Err(MountSpecError::Target);
            }
        }
    }
    Ok(mount)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_parse_with_buildkit_defaults() {
        let bind = parse_mount("target=/src").expect("bind");
        assert_eq!(
            (bind.kind, bind.read_only, bind.source.as_str()),
            (MountKind::Bind, true, "")
        );
        let rw = parse_mount("type=bind,source=dir,target=/src,rw").expect("rw");
        assert!(!rw.read_only);
        assert_eq!(rw.source, "dir");
        let cache = parse_mount("type=cache,target=/root/.cache,sharing=locked,mode=0700,uid=1000")
            .expect("cache");
        assert_eq!(
            (cache.id.as_str(), cache.sharing, cache.mode, cache.uid),
            ("/root/.cache", Sharing::Locked, Some(0o700), 1000)
        );
        assert!(!cache.read_only);
        let secret = parse_mount("type=secret,id=token").expect("secret");
        assert_eq!(secret.target, "/run/secrets/token");
        assert!(!secret.required);
        let by_target =
            parse_mount("type=secret,target=/etc/key,required").expect("secret by target");
        assert_eq!((by_target.id.as_str(), by_target.required), ("key", true));
        let tmpfs = parse_mount("type=tmpfs,target=/t,size=64m").expect("tmpfs");
        assert_eq!(tmpfs.size, 64 << 20);
        let from = parse_mount("type=bind,from=builder,source=/out,target=/in").expect("from");
        assert_eq!(from.from.as_deref(), Some("builder"));
        for bad in [
            "type=nfs,target=/x",
            "type=cache",
            "target=/x,sharing=sometimes",
            "target=/x,bogus=1",
            "type=tmpfs,target=/t,size=lots",
            // would wrap around u64
            "type=tmpfs,target=/t,size=99999999999999999g",
        ] {
            assert!(parse_mount(bad).is_err(), "{bad}");
        }
    }
}
