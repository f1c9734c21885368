//! What one command's flags change about every registry it talks to: podman's `--authfile`,
//! `--creds`, `--tls-verify=false` (kaniko's `--skip-tls-verify`) and `--retry`. Set once by
//! the CLI before any registry is contacted; a library user that never sets them gets the
//! defaults (files searched as docker and podman do, TLS verified, 3 retries).

use std::path::PathBuf;
use std::sync::OnceLock;

use super::Credentials;

/// Retries of a request that failed in a way that may pass (a reset connection, 503), as
/// podman's `--retry` default.
pub const DEFAULT_RETRIES: u32 = 3;

#[derive(Debug, Clone)]
pub struct CommandOptions {
    /// `--authfile`: the one file credentials are read from and `login` writes.
    pub auth_file: Option<PathBuf>,
    /// `--creds`: used for every registry of this command, before any file.
    pub credentials: Option<Credentials>,
    /// `--tls-verify=false`: every registry of this command is insecure (https without
    /// certificate verification, or plain http).
    pub tls_verify: bool,
    /// `--retry N`: how many times a transient failure is retried.
    pub retries: u32,
}

impl Default for CommandOptions {
    fn default() -> Self {
        CommandOptions {
            auth_file: None,
            credentials: None,
            tls_verify: true,
            retries: DEFAULT_RETRIES,
        }
    }
}

static OPTIONS: OnceLock<CommandOptions> = OnceLock::new();

/// Makes `options` this process's registry options; the first call wins.
pub fn configure(options: CommandOptions) {
    let _ = OPTIONS.set(options);
}

/// This process's registry options.
pub fn options() -> &'static CommandOptions {
    OPTIONS.get_or_init(CommandOptions::default)
}
