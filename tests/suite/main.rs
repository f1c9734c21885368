//! Integration tests: the real `rbuild` binary, run as an unprivileged user, checked with
//! independent readers (our own tar reader, skopeo, umoci, podman).

mod support;

mod add;
mod cache;
mod cli;
mod config;
mod copyflags;
mod failures;
mod filesystem;
mod fixtures_test;
mod interop;
mod layers;
mod multistage;
mod outputs;
mod runmounts;
mod sandbox;
