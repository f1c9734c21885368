//! Flag values with a fixed set of choices, parsed by clap once (a bad value is refused with
//! the choices listed) and each meaning one thing wherever it is used.

use std::io::IsTerminal as _;

use clap::ValueEnum;

use rbuild::archive::MediaTypes;
use rbuild::progress::ProgressMode;

/// `--isolation`: where RUN steps run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IsolationFlag {
    /// The namespaced sandbox (today: the same as `namespaces`; never `none`).
    Auto,
    /// User, mount, pid, ipc and uts namespaces, seccomp, over overlayfs or a walked tree.
    Namespaces,
    /// kaniko's model, for a container made for the build: steps run as root directly on
    /// the container's own root, which is put back after the build.
    None,
}

/// `--progress`: how a command shows what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressFlag {
    /// `tty` when standard error is a terminal (and TERM is not `dumb`), else `plain`.
    Auto,
    /// A line per event, the same on a terminal and in a CI log.
    Plain,
    /// Live display: step headers and durations, transfers with their rates.
    Tty,
    /// One JSON object per event (step started, finished, cached, errored, log line,
    /// transfer, notice).
    Rawjson,
    /// Nothing but errors (and what the command prints on standard output).
    Quiet,
    /// The same as `quiet`.
    None,
}

impl ProgressFlag {
    /// The flag in force: `--progress` when given, else $RBUILD_PROGRESS, else
    /// $BUILDKIT_PROGRESS (as buildx reads it), else `auto`.
    pub fn resolve(given: Option<ProgressFlag>) -> anyhow::Result<ProgressFlag> {
        if let Some(flag) = given {
            return Ok(flag);
        }
        for var in ["RBUILD_PROGRESS", "BUILDKIT_PROGRESS"] {
            if let Some(value) = std::env::var(var).ok().filter(|v| !v.is_empty()) {
                return ProgressFlag::from_str(&value, true).map_err(|_| {
                    anyhow::anyhow!(
                        "${var}={value}: expected auto, plain, tty, rawjson, quiet or none"
                    )
                });
            }
        }
        Ok(ProgressFlag::Auto)
    }

    /// The mode shown: `--quiet` wins; `auto` follows standard error.
    pub fn mode(self, quiet: bool) -> ProgressMode {
        let terminal =
            std::io::stderr().is_terminal() && std::env::var("TERM").map_or(true, |t| t != "dumb");
        match (quiet, self) {
            (true, _) | (false, ProgressFlag::Quiet | ProgressFlag::None) => ProgressMode::Quiet,
            (false, ProgressFlag::Plain) => ProgressMode::Plain,
            (false, ProgressFlag::Tty) => ProgressMode::Tty,
            (false, ProgressFlag::Rawjson) => ProgressMode::RawJson,
            (false, ProgressFlag::Auto) if terminal => ProgressMode::Tty,
            (false, ProgressFlag::Auto) => ProgressMode::Plain,
        }
    }
}

/// `--format`: the media types of the written images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatFlag {
    Oci,
    Docker,
}

impl From<FormatFlag> for MediaTypes {
    fn from(flag: FormatFlag) -> MediaTypes {
        match flag {
            FormatFlag::Oci => MediaTypes::Oci,
            FormatFlag::Docker => MediaTypes::Docker,
        }
    }
}

/// `--pull[=POLICY]`: `--pull` alone is `always`, as in docker and buildx.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PullFlag {
    Always,
    Missing,
    Never,
    Newer,
}

impl From<PullFlag> for rbuild::build::PullPolicy {
    fn from(flag: PullFlag) -> rbuild::build::PullPolicy {
        use rbuild::build::PullPolicy;
        match flag {
            PullFlag::Always => PullPolicy::Always,
            PullFlag::Missing => PullPolicy::Missing,
            PullFlag::Never => PullPolicy::Never,
            PullFlag::Newer => PullPolicy::Newer,
        }
    }
}

/// `--call` (buildx): what the build command does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CallFlag {
    /// Build (the default).
    Build,
    /// Run the build checks only (as --check).
    Check,
    /// Print what the target takes: build args, secrets, ssh agents, with descriptions.
    Outline,
    /// Print the Dockerfile's targets with their descriptions.
    Targets,
}

/// `--allow`: the entitlements buildx knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Entitlement {
    /// RUN --security=insecure may run with every capability and no seccomp filter.
    #[value(name = "security.insecure")]
    SecurityInsecure,
    /// Accepted as buildx does (the host's network is the default already).
    #[value(name = "network.host")]
    NetworkHost,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_wins_and_explicit_modes_hold() {
        assert_eq!(ProgressFlag::Tty.mode(true), ProgressMode::Quiet);
        assert_eq!(ProgressFlag::Plain.mode(false), ProgressMode::Plain);
        assert_eq!(ProgressFlag::Tty.mode(false), ProgressMode::Tty);
        assert_eq!(
            Entitlement::from_str("security.insecure", false).ok(),
            Some(Entitlement::SecurityInsecure)
        );
        assert!(FormatFlag::from_str("oci-ish", false).is_err());
    }
}
