//! `--build-context NAME=VALUE`: another context a Dockerfile names in FROM, COPY --from and
//! RUN --mount from=: a directory, `docker-image://REF`, or `oci-layout://PATH[:TAG]` (the
//! layout's image loaded into the store).

use std::path::{Path, PathBuf};

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
    #[error("--build-context {name}: no image in {path}")]
    NoImage { name: String, path: String },
    #[error(
        "--build-context {name}={value}: not a directory (use docker-image:// or oci-layout:// \
         for images)"
    )]
    NotADirectory { name: String, value: String },
}

/// The context `spec` (`NAME=VALUE`) names, with its name.
pub fn named_context(
    store: &Store,
    spec: &str,
) -> Result<(String, NamedContext), NamedContextError> {
    let (name, value) = spec
        .split_once('=')
        .ok_or_else(|| NamedContextError::Syntax(spec.to_string()))?;
    let context = if let Some(reference) = value.strip_prefix("docker-image://") {
        NamedContext::Image(reference.to_string())
    } else if let Some(layout) = value.strip_prefix("oci-layout://") {
        let path = layout
            .rsplit_once(':')
            .filter(|(_, tag)| !tag.contains('/'))
            .map_or(layout, |(p, _)| p);
        let loaded = crate::archive::load(store, Path::new(path)).map_err(|source| {
            NamedContextError::Load {
                name: name.to_string(),
                path: path.to_string(),
                source: Box::new(source),
            }
        })?;
        let image = loaded.first().ok_or_else(|| NamedContextError::NoImage {
            name: name.to_string(),
            path: path.to_string(),
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
    Ok((name.to_string(), context))
}
