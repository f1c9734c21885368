//! `--ulimit TYPE=SOFT[:HARD]`: resource limits a step's command starts with, by docker's
//! names. Set in the step process before exec; raising a hard limit above rbuild's own needs
//! privileges a rootless build does not have, and fails with the step's setup error.

use nix::sys::resource::{setrlimit, Resource};
use serde::{Deserialize, Serialize};

use crate::error::SetupError;

/// Docker's ulimit names, and the resource each is.
const RESOURCES: [(&str, Resource); 15] = [
    ("core", Resource::RLIMIT_CORE),
    ("cpu", Resource::RLIMIT_CPU),
    ("data", Resource::RLIMIT_DATA),
    ("fsize", Resource::RLIMIT_FSIZE),
    ("locks", Resource::RLIMIT_LOCKS),
    ("memlock", Resource::RLIMIT_MEMLOCK),
    ("msgqueue", Resource::RLIMIT_MSGQUEUE),
    ("nice", Resource::RLIMIT_NICE),
    ("nofile", Resource::RLIMIT_NOFILE),
    ("nproc", Resource::RLIMIT_NPROC),
    ("rss", Resource::RLIMIT_RSS),
    ("rtprio", Resource::RLIMIT_RTPRIO),
    ("rttime", Resource::RLIMIT_RTTIME),
    ("sigpending", Resource::RLIMIT_SIGPENDING),
    ("stack", Resource::RLIMIT_STACK),
];

/// One limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

/// A `--ulimit` value rbuild cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UlimitError {
    #[error("--ulimit {0:?}: expected TYPE=SOFT[:HARD], e.g. nofile=1024:2048")]
    Syntax(String),
    #[error("--ulimit {spec:?}: unknown type {name:?} (known: {known})")]
    Unknown {
        spec: String,
        name: String,
        known: String,
    },
    #[error("--ulimit {0:?}: the soft limit is above the hard one")]
    SoftAboveHard(String),
}

fn resource(name: &str) -> Option<Resource> {
    RESOURCES.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
}

impl Ulimit {
    /// Parses `TYPE=SOFT[:HARD]` (HARD defaults to SOFT; `-1` or `unlimited` is no limit).
    pub fn parse(spec: &str) -> Result<Ulimit, UlimitError> {
        let syntax = || UlimitError::Syntax(spec.to_string());
        let (name, values) = spec.split_once('=').ok_or_else(syntax)?;
        if resource(name).is_none() {
            return Err(UlimitError::Unknown {
                spec: spec.to_string(),
                name: name.to_string(),
                known: RESOURCES.map(|(n, _)| n).join(", "),
            });
        }
        let number = |v: &str| match v {
            "-1" | "unlimited" => Ok(u64::MAX),
            v => v.parse::<u64>().map_err(|_| syntax()),
        };
        let (soft, hard) = match values.split_once(':') {
            Some((soft, hard)) => (number(soft)?, number(hard)?),
            None => (number(values)?, number(values)?),
        };
        if soft > hard {
            return Err(UlimitError::SoftAboveHard(spec.to_string()));
        }
        Ok(Ulimit {
            name: name.to_string(),
            soft,
            hard,
        })
    }

    /// As the build's history and keys show it.
    pub fn text(&self) -> String {
        let shown = |v: u64| {
            if v == u64::MAX {
                "-1".to_string()
            } else {
                v.to_string()
            }
        };
        format!("{}={}:{}", self.name, shown(self.soft), shown(self.hard))
    }
}

/// Sets every limit in this process (the step's, before exec).
pub fn apply(limits: &[Ulimit]) -> Result<(), SetupError> {
    for limit in limits {
        let Some(resource) = resource(&limit.name) else {
            continue; // refused when parsed
        };
        setrlimit(resource, limit.soft, limit.hard).map_err(|e| {
            SetupError::os(
                format!(
                    "set --ulimit {} (a hard limit above rbuild's own needs privileges)",
                    limit.text()
                ),
                e,
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulimits_parse_as_docker_writes_them() {
        assert_eq!(
            Ulimit::parse("nofile=1024:2048"),
            Ok(Ulimit {
                name: "nofile".into(),
                soft: 1024,
                hard: 2048
            })
        );
        assert_eq!(
            Ulimit::parse("nproc=512").map(|u| (u.soft, u.hard)),
            Ok((512, 512))
        );
        assert_eq!(
            Ulimit::parse("core=-1").map(|u| u.hard),
            Ok(u64::MAX),
            "-1 is unlimited"
        );
        assert!(matches!(
            Ulimit::parse("files=1"),
            Err(UlimitError::Unknown { .. })
        ));
        assert!(matches!(
            Ulimit::parse("nofile=10:5"),
            Err(UlimitError::SoftAboveHard(_))
        ));
        assert!(matches!(
            Ulimit::parse("nofile"),
            Err(UlimitError::Syntax(_))
        ));
    }
}
