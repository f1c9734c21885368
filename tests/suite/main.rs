//! Integration tests: the real `rbuild` binary, run as an unprivileged user, checked with
//! independent readers (our own tar reader, skopeo, umoci, podman).

// Paths here are the test harness's own: it plants the trees and canaries it then checks: the boundary rule (clippy.toml) does not apply.
#![allow(clippy::disallowed_methods)]

mod support;

mod add;
mod cache;
mod ci_recipes;
mod cli;
mod config;
mod conformance;
mod containers;
mod copyflags;
mod df_args;
mod df_cmd;
mod df_dockerignore;
mod df_errors;
mod df_heredoc;
mod df_onbuild;
mod df_user;
mod df_workdir;
mod failures;
mod filesystem;
mod fixtures_test;
mod hostile;
mod interop;
mod layers;
mod multistage;
mod outputs;
mod platforms;
mod podman_compat;
mod registry;
mod registry_flags;
mod remote;
mod runmounts;
mod sandbox;
mod seccomp;
mod snapshotters;
mod ssh;
