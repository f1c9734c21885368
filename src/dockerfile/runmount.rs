//! `RUN --mount=...` specs as BuildKit reads them: comma-separated `key=value` fields and
//! the defaults of each mount type.
//!
//! Values may name variables (`target=$DIR`, `id=$CACHE`): the parser checks what it can
//! and keeps the spec; the build expands every value with the stage's ARG/ENV values and
//! reads the spec again (`RunMount::expanded`). Only `from=` cannot use a variable, as in
//! BuildKit: the stage graph is fixed before any value is known.

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
    #[error("from={0}: from= does not expand variables; name the stage with an alias (FROM ... AS name)")]
    FromVariable(String),
    #[error("{0}")]
    Expand(String),
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
    /// The spec as written, read again once its variables are known.
    pub spec: String,
    /// True when some value names a variable: the fields above are then only what the
    /// parser could check, and the build must use `expanded`.
    pub deferred: bool,
}

impl RunMount {
    /// The mount with every value expanded by `expand` (a word with the stage's ARG/ENV
    /// values substituted), checked as at parse time.
    pub fn expanded(
        &self,
        expand: &dyn Fn(&str) -> Result<String, String>,
    ) -> Result<RunMount, MountSpecError> {
        if !self.deferred {
            return Ok(self.clone());
        }
        parse_with(&self.spec, Some(expand))
    }
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

/// Parses one `--mount` value as written; values naming a variable are checked only once
/// expanded (`RunMount::expanded`).
pub fn parse_mount(spec: &str) -> Result<RunMount, MountSpecError> {
    parse_with(spec, None)
}

type Expander<'a> = Option<&'a dyn Fn(&str) -> Result<String, String>>;

fn parse_with(spec: &str, expand: Expander<'_>) -> Result<RunMount, MountSpecError> {
    let mut kind = MountKind::Bind;
    let mut fields: Vec<(String, Option<String>)> = Vec::new();
    let mut deferred = false;
    for field in spec.split(',').filter(|f| !f.is_empty()) {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.to_string())),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let names_variable = value
            .as_deref()
            .and_then(|v| v.find('$'))
            .is_some_and(|at| Some(at + 1) != value.as_deref().map(str::len));
        if key == "from" && names_variable {
            return Err(MountSpecError::FromVariable(value.unwrap_or_default()));
        }
        let value = match (value, expand) {
            (Some(v), Some(expand)) if names_variable => {
                Some(expand(&v).map_err(MountSpecError::Expand)?)
            }
            (Some(_), None) if names_variable => {
                // Known only at build time: checked then.
                deferred = true;
                continue;
            }
            (value, _) => value,
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
        spec: spec.to_string(),
        deferred,
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
    if deferred {
        // The defaults and the checks below need every value.
        return Ok(mount);
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
        let deferred = parse_mount("type=cache,id=$ID,target=${DIR},uid=$U").expect("deferred");
        assert!(deferred.deferred);
        let values = |word: &str| {
            Ok(match word {
                "$ID" => "one".to_string(),
                "${DIR}" => "/c".to_string(),
                _ => "1000".to_string(),
            })
        };
        let cache = deferred.expanded(&values).expect("expanded");
        assert_eq!(
            (cache.id.as_str(), cache.target.as_str(), cache.uid),
            ("one", "/c", 1000)
        );
        // A value that is no number once expanded is refused then.
        let bad_uid = parse_mount("type=cache,target=/c,uid=$U").expect("deferred");
        assert!(bad_uid.expanded(&|_| Ok("me".to_string())).is_err());
        // A trailing `$` is no variable; from= takes none.
        assert!(!parse_mount("target=/a$").expect("literal").deferred);
        assert_eq!(
            parse_mount("from=$STAGE,target=/s").expect_err("from variable"),
            MountSpecError::FromVariable("$STAGE".into())
        );
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
