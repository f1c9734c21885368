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
    /// `tty` when standard error is a terminal, else `plain`.
    Auto,
    /// A line per event, the same on a terminal and in a CI log.
    Plain,
    /// Live display: step headers and durations, transfers with their rates.
    Tty,
}

impl ProgressFlag {
    /// The mode shown: `--quiet` wins; `auto` follows standard error.
    pub fn mode(self, quiet: bool) -> ProgressMode {
        match (quiet, self) {
            (true, _) => ProgressMode::Quiet,
            (false, ProgressFlag::Plain) => ProgressMode::Plain,
            (false, ProgressFlag::Tty) => ProgressMode::Tty,
            (false, ProgressFlag::Auto) if std::io::stderr().is_terminal() => ProgressMode::Tty,
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
