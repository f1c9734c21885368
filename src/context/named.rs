//! `--build-context NAME=VALUE`: another context a Dockerfile names in FROM, COPY --from and
//! RUN --mount from=: a directory, `docker-image://REF`, `oci-layout://PATH[:TAG][@DIGEST]`
//! (the layout's image loaded into the store), a git repository (`git@`, `git://`, `ssh://`,
//! `https://....git`, with `#REF:SUBDIR`), or any other http(s) URL: one downloaded file
//! named `context` (mode 0600), as BuildKit's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::acquire::{AcquireError, AcquiredContext};
use super::{http, remote};
use crate::plan::NamedContext;
use crate::store::Store;

/// A `--build-context` that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum NamedContextError {
    #[error("--build-context {0:?}: expected NAME=VALUE")]
    Syntax(String),
    #[error("--build-context {name}: cannot load {path}")]
    Load {
        name: String,
        path: String,
        #[source]
        source: Box<crate::archive::ArchiveError>,
    },
    #[error("--build-context {name}: no image{which} in {path}")]
    NoImage {
        name: String,
        path: String,
        /// ` tagged TAG` or ` with digest D`, when one was asked for.
        which: String,
    },
    #[error(
        "--build-context {name}={value}: not a directory (use docker-image:// or oci-layout:// \
         for images)"
    )]
    NotADirectory { name: String, value: String },
    #[error("--build-context {name}: cannot fetch {value}")]
    Fetch {
        name: String,
        value: String,
        #[source]
        source: Box<AcquireError>,
    },
}

/// The named contexts of a build, and the fetched trees (git, http) they point into, kept
/// until the build is done.
#[derive(Default)]
pub struct NamedContexts {
    pub contexts: BTreeMap<String, NamedContext>,
    _fetched: Vec<AcquiredContext>,
}

/// Every `--build-context` spec, checked and fetched.
pub fn named_contexts(
    store: &Store,
    specs: &[String],
    ssh: &remote::GitSsh,
) -> Result<NamedContexts, NamedContextError> {
    let mut named = NamedContexts::default();
    for spec in specs {
        let (name, context, fetched) = named_context(store, spec, ssh)?;
        named.contexts.insert(name, context);
        named._fetched.extend(fetched);
    }
    Ok(named)
}

/// A git repository or a downloaded file, as the tree of a named context.
fn fetch(
    store: &Store,
    name: &str,
    value: &str,
    ssh: &remote::GitSsh,
) -> Result<AcquiredContext, NamedContextError> {
    let failed = |source: AcquireError| NamedContextError::Fetch {
        name: name.to_string(),
        value: value.to_string(),
        source: Box::new(source),
    };
    if remote::is_git_url(value) {
        return super::acquire::acquire(store, value, false, ssh, false).map_err(failed);
    }
    let temp = store
        .temp_dir("named-context")
        .map_err(|e| failed(e.into()))?;
    let dir = temp.path().to_path_buf();
    let download = http::download(value, &dir, None).map_err(|source| {
        failed(AcquireError::Fetch {
            spec: value.to_string(),
            source,
        })
    })?;
    let file = dir.join("context");
    super::acquire::place_download(&download, &file).map_err(failed)?;
    Ok(AcquiredContext::given(temp, dir, None))
}

/// `PATH[:TAG][@sha256:DIGEST]` of an `oci-layout://` context, as buildx writes it.
fn layout_parts(layout: &str) -> (&str, Option<&str>, Option<&str>) {
    let (rest, digest) = match layout.rsplit_once('@') {
        Some((rest, digest)) if digest.starts_with("sha256:") => (rest, Some(digest)),
        _ => (layout, None),
    };
    match rest.rsplit_once(':') {
        Some((path, tag)) if !tag.is_empty() && !tag.contains('/') => (path, Some(tag), digest),
        _ => (rest, None, digest),
    }
}

/// The context `spec` (`NAME=VALUE`) names, with its name and the tree fetched for it.
fn named_context(
    store: &Store,
    spec: &str,
    ssh: &remote::GitSsh,
) -> Result<(String, NamedContext, Option<AcquiredContext>), NamedContextError> {
    let (name, value) = spec
        .split_once('=')
        .ok_or_else(|| NamedContextError::Syntax(spec.to_string()))?;
    let is_url = ["git@", "git://", "ssh://", "http://", "https://"]
        .iter()
        .any(|prefix| value.starts_with(prefix));
    if is_url {
        let fetched = fetch(store, name, value, ssh)?;
        let context = NamedContext::Dir(fetched.dir.clone());
        return Ok((name.to_string(), context, Some(fetched)));
    }
    let context = if let Some(reference) = value.strip_prefix("docker-image://") {
        NamedContext::Image(reference.to_string())
    } else if let Some(layout) = value.strip_prefix("oci-layout://") {
        let (path, tag, digest) = layout_parts(layout);
        let loaded = crate::archive::load(store, Path::new(path)).map_err(|source| {
            NamedContextError::Load {
                name: name.to_string(),
                path: path.to_string(),
                source: Box::new(source),
            }
        })?;
        // The entry named by digest, else by tag (its ref.name as written, or as a name),
        // else the first.
        let image = loaded.iter().find(|image| match (digest, tag) {
            (Some(digest), _) => {
                image.descriptor_digest.as_deref() == Some(digest)
                    || store.image_manifest(&image.image_id).as_deref() == Some(digest)
            }
            (None, Some(tag)) => {
                image.ref_name.as_deref() == Some(tag)
                    || image
                        .ref_name
                        .as_deref()
                        .and_then(|r| r.rsplit_once(':'))
                        .is_some_and(|(_, t)| t == tag)
            }
            (None, None) => true,
        });
        let image = image.ok_or_else(|| NamedContextError::NoImage {
            name: name.to_string(),
            path: path.to_string(),
            which: match (digest, tag) {
                (Some(d), _) => format!(" with digest {d}"),
                (None, Some(t)) => format!(" tagged {t}"),
                (None, None) => String::new(),
            },
        })?;
        NamedContext::Image(image.image_id.clone())
    } else {
        let dir = PathBuf::from(value);
        if !dir.is_dir() {
            return Err(NamedContextError::NotADirectory {
                name: name.to_string(),
                value: value.to_string(),
            });
        }
        NamedContext::Dir(dir)
    };
    Ok((name.to_string(), context, None))
}

#[cfg(test)]
mod tests {
    use super::layout_parts;

    #[test]
    fn layout_references_keep_their_tag_and_digest() {
        let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(layout_parts("/l"), ("/l", None, None));
        assert_eq!(layout_parts("/l:v2"), ("/l", Some("v2"), None));
        assert_eq!(
            layout_parts(&format!("/l:v2@{digest}")),
            ("/l", Some("v2"), Some(digest))
        );
        assert_eq!(
            layout_parts(&format!("/l@{digest}")),
            ("/l", None, Some(digest))
        );
        assert_eq!(layout_parts("./dir/x:y/z"), ("./dir/x:y/z", None, None));
    }
}
