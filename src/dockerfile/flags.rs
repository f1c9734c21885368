//! Typed views of an instruction's flags, read once from what the parser validated (names
//! known to the instruction, no duplicates), so that handlers never look flags up by name.

use super::ast::Flag;

/// A flag an instruction cannot take, worded as BuildKit words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    #[error("arg should start with -- : {0}")]
    NotAFlag(String),
    #[error("unknown flag: {0}")]
    Unknown(String),
    #[error("duplicate flag specified: {0}")]
    Duplicate(String),
    #[error("missing a value on flag: {0}")]
    MissingValue(String),
    #[error("expecting boolean value for flag {name}, not: {value}")]
    NotBoolean { name: String, value: String },
    #[error("--{name}={value}: expected true or false")]
    BadBool { name: String, value: String },
}

/// The one rule for a boolean flag, as BuildKit's: `--link` or `--link=true` is true,
/// `--link=false` is false (case-insensitive), anything else is an error naming the flag.
pub fn flag_bool(name: &str, value: Option<&str>) -> Result<bool, FlagError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("") | Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(_) => Err(FlagError::BadBool {
            name: name.to_string(),
            value: value.unwrap_or_default().to_string(),
        }),
    }
}

fn value_of(flags: &[Flag], name: &str) -> Option<String> {
    flags
        .iter()
        .find(|f| f.name == name)
        .map(|f| f.value.clone().unwrap_or_default())
}

fn bool_of(flags: &[Flag], name: &str) -> Result<Option<bool>, FlagError> {
    flags
        .iter()
        .find(|f| f.name == name)
        .map(|f| flag_bool(name, f.value.as_deref()))
        .transpose()
}

/// The flags of COPY and ADD (values unexpanded; the parser allows each instruction its own).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyFlags {
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub excludes: Vec<String>,
    /// ADD: extract archives (default true for ADD).
    pub unpack: Option<bool>,
    pub keep_git_dir: bool,
    pub checksum: Option<String>,
}

impl CopyFlags {
    pub fn read(flags: &[Flag]) -> Result<CopyFlags, FlagError> {
        Ok(CopyFlags {
            from: value_of(flags, "from"),
            chown: value_of(flags, "chown"),
            chmod: value_of(flags, "chmod"),
            link: bool_of(flags, "link")?.unwrap_or(false),
            parents: bool_of(flags, "parents")?.unwrap_or(false),
            excludes: flags
                .iter()
                .filter(|f| f.name == "exclude")
                .map(|f| f.value.clone().unwrap_or_default())
                .collect(),
            unpack: bool_of(flags, "unpack")?,
            keep_git_dir: bool_of(flags, "keep-git-dir")?.unwrap_or(false),
            checksum: value_of(flags, "checksum"),
        })
    }
}

/// A flag of RUN that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunFlagError {
    #[error("--mount={value}: {error}")]
    Mount {
        value: String,
        error: super::runmount::MountSpecError,
    },
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error("--security={0}: expected sandbox or insecure")]
    Security(String),
}

/// BuildKit's network modes, for `RUN --network` and `rbuild build --network`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Network {
    /// The host's network (rbuild has no other to give).
    #[default]
    Default,
    /// Only a loopback interface.
    None,
    Host,
}

/// A network mode BuildKit does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--network={0}: expected default, none or host")]
pub struct NetworkError(pub String);

impl std::str::FromStr for Network {
    type Err = NetworkError;

    fn from_str(text: &str) -> Result<Network, NetworkError> {
        match text {
            "default" => Ok(Network::Default),
            "none" => Ok(Network::None),
            "host" => Ok(Network::Host),
            other => Err(NetworkError(other.to_string())),
        }
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Network::Default => "default",
            Network::None => "none",
            Network::Host => "host",
        })
    }
}

/// `RUN --security`: the sandbox (default), or every capability and no seccomp filter
/// (allowed only with the build's `--allow security.insecure`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SecurityMode {
    #[default]
    Sandbox,
    Insecure,
}

/// The flags of RUN: its mounts, `--network`, `--security`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFlags {
    pub mounts: Vec<super::runmount::RunMount>,
    pub network: Option<Network>,
    pub security: Option<SecurityMode>,
}

impl RunFlags {
    pub fn read(flags: &[Flag]) -> Result<RunFlags, RunFlagError> {
        let mounts = flags
            .iter()
            .filter(|f| f.name == "mount")
            .map(|f| {
                let value = f.value.as_deref().unwrap_or_default();
                super::runmount::parse_mount(value).map_err(|error| RunFlagError::Mount {
                    value: value.to_string(),
                    error,
                })
            })
            .collect::<Result<_, _>>()?;
        let security = match value_of(flags, "security").as_deref() {
            None => None,
            Some("sandbox") => Some(SecurityMode::Sandbox),
            Some("insecure") => Some(SecurityMode::Insecure),
            Some(other) => return Err(RunFlagError::Security(other.to_string())),
        };
        Ok(RunFlags {
            mounts,
            network: value_of(flags, "network")
                .map(|v| v.parse::<Network>())
                .transpose()?,
            security,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(name: &str, value: Option<&str>) -> Flag {
        Flag {
            name: name.into(),
            value: value.map(str::to_string),
        }
    }

    #[test]
    fn one_boolean_rule() {
        for (value, want) in [
            (None, true),
            (Some(""), true),
            (Some("TRUE"), true),
            (Some("false"), false),
        ] {
            assert_eq!(flag_bool("link", value), Ok(want), "{value:?}");
        }
        let err = flag_bool("link", Some("yes")).expect_err("not a bool");
        assert_eq!(err.to_string(), "--link=yes: expected true or false");
    }

    #[test]
    fn copy_and_run_flags_are_read_once() {
        let copy = CopyFlags::read(&[
            flag("from", Some("build")),
            flag("link", None),
            flag("exclude", Some("*.md")),
            flag("exclude", Some("tmp/")),
            flag("unpack", Some("false")),
        ])
        .expect("flags");
        assert_eq!(copy.from.as_deref(), Some("build"));
        assert!(copy.link && !copy.parents && !copy.keep_git_dir);
        assert_eq!(copy.excludes, ["*.md", "tmp/"]);
        assert_eq!(copy.unpack, Some(false));
        assert!(CopyFlags::read(&[flag("parents", Some("maybe"))]).is_err());
        let run = RunFlags::read(&[
            flag("mount", Some("type=cache,target=/c")),
            flag("network", Some("none")),
            flag("mount", Some("type=tmpfs,target=/t")),
        ])
        .expect("flags");
        assert_eq!(run.mounts.len(), 2);
        assert_eq!(run.mounts[0].target, "/c");
        let bad = RunFlags::read(&[flag("mount", Some("type=nfs,target=/x"))]).expect_err("bad");
        assert_eq!(
            bad.to_string(),
            "--mount=type=nfs,target=/x: unsupported mount type \"nfs\""
        );
        assert_eq!(run.network, Some(Network::None));
        assert_eq!(run.security, None);
    }
}
