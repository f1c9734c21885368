//! Contexts that are not a local directory: a tar stream (`rbuild build - < ctx.tar`) and a
//! git repository (`https://host/repo.git#ref:subdir`, via the `git` binary), unpacked into a
//! temp dir that lives as long as the build.

// Paths here are a temp dir this module clones into; the clone is read through the context walker: the boundary rule (clippy.toml) does not apply.
#![allow(clippy::disallowed_methods)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::select::ContextError;

/// Is `spec` a git context, as buildx reads one?
pub fn is_git_url(spec: &str) -> bool {
    let base = spec.split('#').next().unwrap_or(spec);
    base.starts_with("git://")
        || base.starts_with("git@")
        || base.starts_with("ssh://")
        || ((base.starts_with("https://")
            || base.starts_with("http://")
            || base.starts_with("file://"))
            && base.ends_with(".git"))
}

/// `URL#ref:subdir` -> (URL, ref, subdir).
pub fn split_git_url(spec: &str) -> (String, Option<String>, Option<String>) {
    let (url, fragment) = spec.split_once('#').unwrap_or((spec, ""));
    let (reference, subdir) = fragment.split_once(':').unwrap_or((fragment, ""));
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    (url.to_string(), non_empty(reference), non_empty(subdir))
}

/// Transports a build may fetch a git source over (BuildKit's list). `file://` would copy any
/// repository of the host into the image, and `ext::` runs a host command.
const GIT_TRANSPORTS: [&str; 4] = ["https", "http", "ssh", "git"];

/// The git configuration every git process of a fetch reads. `protocol.allow=never` with an
/// exception per allowed transport also covers what the URL does not show: redirects,
/// submodules, `insteadOf` rewrites. The repository may belong to another user; we only
/// read from it, and safe.directory counts only in "protected" config, which this is.
fn git_config() -> String {
    let mut config = String::from("[safe]\n\tdirectory = *\n[protocol]\n\tallow = never\n");
    for transport in GIT_TRANSPORTS {
        config.push_str(&format!("[protocol \"{transport}\"]\n\tallow = always\n"));
    }
    config
}

/// Refuses what git would take as something else than a remote repository and a ref: other
/// transports, and any word that starts with `-` (git would read it as an option, such as
/// `--upload-pack=COMMAND`).
fn check_git_source(url: &str, reference: Option<&str>) -> Result<(), ContextError> {
    let refuse = |why: String| ContextError::GitSourceRefused {
        url: url.to_string(),
        why,
    };
    let allowed = GIT_TRANSPORTS.join(", ");
    match url.split_once("://") {
        Some((scheme, rest)) => {
            if !GIT_TRANSPORTS.contains(&scheme.to_ascii_lowercase().as_str()) {
                return Err(refuse(format!(
                    "{scheme}:// is not a build source (allowed: {allowed})"
                )));
            }
            if rest.starts_with('-') {
                return Err(refuse("the host may not start with '-'".into()));
            }
        }
        // scp-like `user@host:path`, which git fetches over ssh.
        None => {
            let scp_like = url
                .split_once(':')
                .is_some_and(|(host, _)| host.contains('@') && !host.contains('/'));
            if !scp_like || url.starts_with('-') || url.contains("::") {
                return Err(refuse(format!(
                    "only remote repositories can be fetched ({allowed}, or user@host:path)"
                )));
            }
        }
    }
    if let Some(reference) = reference {
        if reference.starts_with('-') || reference.chars().any(|c| c.is_control() || c == ' ') {
            return Err(refuse(format!("{reference:?} is not a git ref")));
        }
    }
    Ok(())
}

/// How git reaches a repository over ssh (`git@host:repo`, `ssh://`): with the build's
/// `--ssh default` agent only (never the user's $SSH_AUTH_SOCK behind the build's back), and
/// host keys checked against the user's `known_hosts`, failing closed (no key is ever added).
#[derive(Debug, Clone, Default)]
pub struct GitSsh {
    /// The agent socket of `--ssh default`.
    pub agent: Option<PathBuf>,
    /// `$HOME/.ssh/known_hosts`.
    pub known_hosts: Option<PathBuf>,
}

impl GitSsh {
    /// The user's known hosts, and `agent`.
    pub fn with_agent(agent: Option<PathBuf>) -> GitSsh {
        GitSsh {
            agent,
            known_hosts: std::env::var_os("HOME")
                .map(|home| PathBuf::from(home).join(".ssh/known_hosts")),
        }
    }

    /// `GIT_SSH_COMMAND`: no ssh config file, no prompt, strict host key checking.
    fn command(&self) -> String {
        let quote =
            |path: &Path| format!("'{}'", path.display().to_string().replace('\'', "'\\''"));
        let known = self
            .known_hosts
            .as_deref()
            .map(quote)
            .unwrap_or_else(|| "/dev/null".to_string());
        format!(
            "ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes \
             -o UserKnownHostsFile={known} -o GlobalKnownHostsFile=/etc/ssh/ssh_known_hosts"
        )
    }

    /// What to do about a failed ssh fetch, from git's message.
    fn hint(&self, stderr: &str) -> &'static str {
        if stderr.contains("Host key verification failed") {
            "\nthe host's key is not in ~/.ssh/known_hosts (rbuild checks it and never adds \
             one): add it after checking its fingerprint, e.g. ssh-keyscan HOST >> \
             ~/.ssh/known_hosts"
        } else if stderr.contains("Permission denied") && self.agent.is_none() {
            "\ngive rbuild a key or an agent for the build: --ssh default=KEYFILE or \
             --ssh default (your $SSH_AUTH_SOCK)"
        } else {
            ""
        }
    }
}

fn git(dir: &Path, config: &Path, ssh: &GitSsh, args: &[&str]) -> Result<(), ContextError> {
    let mut command = Command::new("git");
    command
        .args(args)
        .env("GIT_CONFIG_GLOBAL", config)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_SSH_COMMAND", ssh.command())
        .env_remove("GIT_SSH")
        .env_remove("SSH_ASKPASS");
    match &ssh.agent {
        Some(socket) => command.env("SSH_AUTH_SOCK", socket),
        None => command.env_remove("SSH_AUTH_SOCK"),
    };
    let output = command.output().map_err(|e| ContextError::Io {
        path: PathBuf::from("git"),
        source: e,
    })?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        Err(ContextError::Remote {
            what: format!("git {}", args.join(" ")),
            detail: format!("{stderr}{}", ssh.hint(&stderr)),
        })
    }
}

/// Fetches `spec` (one commit, shallow) into `dir`; returns the context dir (the subdir).
pub fn fetch_git(spec: &str, dir: &Path, ssh: &GitSsh) -> Result<PathBuf, ContextError> {
    fetch_git_keeping(spec, dir, false, ssh)
}

/// Like `fetch_git`; `keep_git_dir` keeps `.git` (ADD --keep-git-dir).
pub fn fetch_git_keeping(
    spec: &str,
    dir: &Path,
    keep_git_dir: bool,
    ssh: &GitSsh,
) -> Result<PathBuf, ContextError> {
    let (url, reference, subdir) = split_git_url(spec);
    check_git_source(&url, reference.as_deref())?;
    let config_dir =
        tempfile::tempdir_in(dir.parent().unwrap_or(dir)).map_err(|e| ContextError::Io {
            path: dir.to_path_buf(),
            source: e,
        })?;
    let config = config_dir.path().join("gitconfig");
    std::fs::write(&config, git_config()).map_err(|e| ContextError::Io {
        path: config.clone(),
        source: e,
    })?;
    git(dir, &config, ssh, &["init", "-q"])?;
    git(
        dir,
        &config,
        ssh,
        &["remote", "add", "--end-of-options", "origin", &url],
    )?;
    let wanted = reference.as_deref().unwrap_or("HEAD");
    git(
        dir,
        &config,
        ssh,
        &[
            "fetch",
            "-q",
            "--depth",
            "1",
            "--end-of-options",
            "origin",
            wanted,
        ],
    )?;
    git(dir, &config, ssh, &["checkout", "-q", "FETCH_HEAD"])?;
    if !keep_git_dir {
        let _ = std::fs::remove_dir_all(dir.join(".git"));
    }
    let context = match subdir {
        Some(sub) => dir.join(super::clean_relative(&sub)),
        None => dir.to_path_buf(),
    };
    if !context.is_dir() {
        return Err(ContextError::NotADirectory { path: context });
    }
    Ok(context)
}

/// Unpacks a context tar stream (plain or compressed) into `dir`, through the boundary's
/// extractor: names and symlinks resolve inside `dir`, devices and FIFOs are left out, files
/// belong to the user.
pub fn unpack_tar(input: impl Read + Send + 'static, dir: &Path) -> Result<(), ContextError> {
    let io = |source| ContextError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let (_, stream) = boundary::decompress::decompressing_reader(input).map_err(io)?;
    let root = boundary::open_root(dir).map_err(io)?;
    let options = boundary::ExtractOptions {
        format: boundary::Format::Plain,
        ownership: boundary::Ownership::Extractor,
        special_files: false,
        links: true,
        xattrs: false,
    };
    boundary::extract_tar(stream, &root, options).map_err(|source| ContextError::Archive {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_urls_are_recognised_and_split() {
        for url in [
            "https://github.com/a/b.git",
            "git@github.com:a/b.git",
            "git://host/x",
            "https://h/r.git#main:sub",
            "file:///srv/repo.git",
        ] {
            assert!(is_git_url(url), "{url}");
        }
        for not_git in [".", "/tmp/ctx", "https://example.com/ctx.tar.gz", "-"] {
            assert!(!is_git_url(not_git), "{not_git}");
        }
        assert_eq!(
            split_git_url("https://h/r.git#v1.2:docs/site"),
            (
                "https://h/r.git".to_string(),
                Some("v1.2".to_string()),
                Some("docs/site".to_string())
            )
        );
        assert_eq!(
            split_git_url("https://h/r.git"),
            ("https://h/r.git".to_string(), None, None)
        );
        assert_eq!(
            split_git_url("https://h/r.git#:sub"),
            ("https://h/r.git".to_string(), None, Some("sub".to_string()))
        );
    }

    #[test]
    fn git_sources_are_remote_repositories_and_refs_never_options() {
        for ok in [
            ("https://h/r.git", Some("v1.2")),
            ("http://127.0.0.1:8080/r.git", None),
            ("git://127.0.0.1:9418/repo", Some("main")),
            ("ssh://git@h/r.git", Some("0123abcd")),
            ("git@github.com:a/b.git", Some("refs/tags/v1")),
        ] {
            assert!(check_git_source(ok.0, ok.1).is_ok(), "{ok:?}");
        }
        for refused in [
            ("file:///srv/repo.git", None),
            ("FILE:///srv/repo.git", None),
            ("ext::sh -c touch% /tmp/pwned", None),
            ("/home/me/project/.git", None),
            ("fd::3", None),
            ("https://-oProxyCommand=x/r.git", None),
            ("-u@h:x", None),
            ("https://h/r.git", Some("--upload-pack=id>/tmp/pwned;false")),
            ("https://h/r.git", Some("-b")),
            ("https://h/r.git", Some("a b")),
        ] {
            assert!(
                matches!(
                    check_git_source(refused.0, refused.1),
                    Err(ContextError::GitSourceRefused { .. })
                ),
                "{refused:?}"
            );
        }
        let config = git_config();
        assert!(config.contains("[protocol]\n\tallow = never"));
        assert!(!config.contains("file"));
    }
}
