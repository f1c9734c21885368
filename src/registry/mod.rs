//! Pull and push over the distribution API: a blocking HTTP client (no async runtime, so no
//! thread exists before the user namespace is entered), auth, registry settings and mirrors.
//!
//! Design note (DESIGN.md names `oci-client`): its `pull()`/`push()` buffer whole layers and
//! its async API needs a tokio runtime; the distribution calls we need (manifest GET/PUT, blob
//! GET with Range, HEAD, upload with mount) are few, so they are written here over `ureq`.

// Paths here are the store's and the user's own (credentials, registries.conf, downloads into the store): the boundary rule (clippy.toml) does not apply.
#![allow(clippy::disallowed_methods)]

pub mod cache;
mod client;
mod command;
mod credentials;
mod pull;
mod push;
mod settings;

pub use client::Client;
pub use command::{configure, CommandOptions, DEFAULT_RETRIES};
pub use credentials::{login, logout, Credentials};
pub use pull::{pull, Platform, PullOptions, PulledImage};
pub use push::{push, push_index, push_with, IndexPushOptions, PushOptions, PushedImage};
pub use settings::RegistrySettings;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Reference(#[from] crate::image::ReferenceError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Archive(#[from] crate::archive::ArchiveError),
    #[error(transparent)]
    Manifest(#[from] crate::image::manifest::ManifestError),
    #[error("cannot reach {url}: {source}")]
    Http {
        url: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("{url}: the registry answered {status}{message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{registry} requires authentication: log in with `rbuild login {registry}`")]
    AuthRequired { registry: String },
    #[error("authentication to {registry} failed: wrong user name or password (`rbuild login {registry}`)")]
    Unauthorized { registry: String },
    #[error("access to {repository} on {registry} is denied")]
    Denied {
        registry: String,
        repository: String,
    },
    #[error("{reference}: not found in the registry")]
    NotFound { reference: String },
    #[error("{reference} has no image for platform {platform} (it has: {available})")]
    NoPlatform {
        reference: String,
        platform: String,
        available: String,
    },
    #[error("{what} should have digest {expected} but hashes to {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("credential helper {helper}: {message}")]
    Helper { helper: String, message: String },
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
}

pub(crate) fn io_err<'p>(
    action: &'static str,
    path: &'p std::path::Path,
) -> impl FnOnce(std::io::Error) -> RegistryError + 'p {
    move |source| RegistryError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Where progress goes (stderr in the CLI); called from download threads.
pub type Log<'a> = &'a dyn crate::progress::Reporter;

/// `sha256:0123456789ab` for progress lines.
pub(crate) fn short_digest(digest: &str) -> &str {
    let end = "sha256:".len() + 12;
    digest.get(..end).unwrap_or(digest)
}

pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "kB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
