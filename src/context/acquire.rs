//! Where a build's context comes from: a local directory as it is; a git URL fetched (one
//! shallow commit); an http(s) tarball downloaded and unpacked; `-`, standard input: a tar
//! (plain or gzip) is the context, anything else is a Dockerfile with an empty context.

// The scratch dirs here are store temp dirs rbuild makes; archives are unpacked by
// boundary::extract_tar (through remote::unpack_tar): the boundary rule does not apply.
#![allow(clippy::disallowed_methods)]

use std::io::Read;
use std::path::PathBuf;

use super::{http, remote, ContextError};
use crate::store::Store;

/// A context that could not be had.
#[derive(Debug, thiserror::Error)]
pub enum AcquireError {
    #[error("-f - and a context from stdin cannot both read stdin")]
    StdinTwice,
    #[error("cannot read the context from stdin")]
    ReadStdin(#[source] std::io::Error),
    #[error("stdin is neither a tar nor a Dockerfile")]
    NotTarNorDockerfile,
    #[error("cannot unpack the context from {what}")]
    Unpack {
        what: String,
        #[source]
        source: ContextError,
    },
    #[error("cannot fetch the context {spec}")]
    Fetch {
        spec: String,
        #[source]
        source: ContextError,
    },
    #[error("build context {0} is not a directory")]
    NotADirectory(String),
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// The context's directory, and what keeps it there.
pub struct AcquiredContext {
    pub dir: PathBuf,
    /// Set when stdin held a Dockerfile rather than a context.
    pub dockerfile_text: Option<String>,
    /// A tree rbuild was given (stdin tar, git, URL) rather than the user's own directory.
    pub untrusted: bool,
    _temp: Option<tempfile::TempDir>,
}

impl AcquiredContext {
    pub(super) fn given(
        temp: tempfile::TempDir,
        dir: PathBuf,
        dockerfile_text: Option<String>,
    ) -> Self {
        AcquiredContext {
            dir,
            dockerfile_text,
            untrusted: true,
            _temp: Some(temp),
        }
    }
}

/// The context `spec` names (see the module doc); `stdin_dockerfile` says stdin is the
/// Dockerfile's already (`-f -`).
/// `keep_git_dir` (BUILDKIT_CONTEXT_KEEP_GIT_DIR) keeps a git context's `.git`.
pub fn acquire(
    store: &Store,
    spec: &str,
    stdin_dockerfile: bool,
    ssh: &remote::GitSsh,
    keep_git_dir: bool,
) -> Result<AcquiredContext, AcquireError> {
    if spec == "-" {
        if stdin_dockerfile {
            return Err(AcquireError::StdinTwice);
        }
        return from_stdin(store);
    }
    if remote::is_git_url(spec) {
        let temp = store.temp_dir("git")?;
        let dir =
            remote::fetch_git_keeping(spec, temp.path(), keep_git_dir, ssh).map_err(|source| {
                AcquireError::Fetch {
                    spec: spec.to_string(),
                    source,
                }
            })?;
        return Ok(AcquiredContext::given(temp, dir, None));
    }
    if spec.starts_with("http://") || spec.starts_with("https://") {
        return from_url(store, spec);
    }
    let dir = PathBuf::from(spec);
    if !dir.is_dir() {
        return Err(AcquireError::NotADirectory(spec.to_string()));
    }
    Ok(AcquiredContext {
        dir,
        dockerfile_text: None,
        untrusted: false,
        _temp: None,
    })
}

fn from_stdin(store: &Store) -> Result<AcquiredContext, AcquireError> {
    let temp = store.temp_dir("context")?;
    let mut head = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut head)
        .map_err(AcquireError::ReadStdin)?;
    let is_tar =
        head.starts_with(&[0x1f, 0x8b]) || (head.len() > 262 && &head[257..262] == b"ustar");
    if is_tar {
        remote::unpack_tar(std::io::Cursor::new(head), temp.path()).map_err(|source| {
            AcquireError::Unpack {
                what: "stdin".into(),
                source,
            }
        })?;
        let dir = temp.path().to_path_buf();
        return Ok(AcquiredContext::given(temp, dir, None));
    }
    let text = String::from_utf8(head).map_err(|_| AcquireError::NotTarNorDockerfile)?;
    let dir = temp.path().to_path_buf();
    Ok(AcquiredContext::given(temp, dir, Some(text)))
}

/// A tarball URL: downloaded, then unpacked (plain or gzip) as the context.
fn from_url(store: &Store, spec: &str) -> Result<AcquiredContext, AcquireError> {
    let temp = store.temp_dir("url-context")?;
    let downloads = temp.path().join("download");
    let dir = temp.path().join("context");
    for made in [&downloads, &dir] {
        std::fs::create_dir_all(made).map_err(|source| AcquireError::Io {
            action: "create",
            path: made.clone(),
            source,
        })?;
    }
    let download =
        http::download(spec, &downloads, None).map_err(|source| AcquireError::Fetch {
            spec: spec.to_string(),
            source,
        })?;
    let file = std::fs::File::open(&download.path).map_err(|source| AcquireError::Io {
        action: "read",
        path: download.path.clone(),
        source,
    })?;
    remote::unpack_tar(file, &dir).map_err(|source| AcquireError::Unpack {
        what: spec.to_string(),
        source,
    })?;
    Ok(AcquiredContext::given(temp, dir, None))
}

/// Moves a finished download to `path` (a named context's `context` file): mode 0600 and
/// the mtime of its Last-Modified, as BuildKit's http source leaves it.
pub(super) fn place_download(
    download: &http::Download,
    path: &std::path::Path,
) -> Result<(), AcquireError> {
    use std::os::unix::fs::PermissionsExt as _;
    let failed = |action: &'static str| {
        move |source: std::io::Error| AcquireError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    std::fs::rename(&download.path, path).map_err(failed("create"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(failed("set the mode of"))?;
    if let Some(modified) = download.modified {
        let time = std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(u64::try_from(modified).unwrap_or(0));
        std::fs::File::options()
            .write(true)
            .open(path)
            .and_then(|file| file.set_modified(time))
            .map_err(failed("set the mtime of"))?;
    }
    Ok(())
}
