//! Integration tests: the real `rbuild` binary, run as an unprivileged user, checked with
//! independent readers (our own tar reader, skopeo, umoci, podman).

mod support;

mod cli;
mod config;
mod failures;
mod filesystem;
mod fixtures_test;
mod interop;
mod layers;
mod registry;
mod sandbox;
