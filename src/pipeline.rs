//! One build from request to outputs, as BuildKit splits it: the frontend reads and parses the
//! Dockerfile once, the request is checked before anything is built, the solver builds every
//! platform ([`build::build_platforms`]) into one [`BuildResult`], and the exporters write it
//! ([`export::export`]). The CLI maps flags to a [`BuildRequest`] and prints; a test can call
//! [`run`] with one.

use crate::build::{self, BuildError, BuildOptions, BuildResult, LoadedDockerfile};
use crate::export::{self, ExportError, ExportRequest};
use crate::plan::Platform;
use crate::progress::Progress;
use crate::registry::Log;
use crate::store::Store;

/// Build arg that carries `SOURCE_DATE_EPOCH` into a Dockerfile that declares it.
pub const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";

/// What to build and where it goes.
#[derive(Debug, Default)]
pub struct BuildRequest {
    pub options: BuildOptions,
    /// `--platform a,b`: each once; empty means the one of `options` (default: this host).
    pub platforms: Vec<Platform>,
    pub export: ExportRequest,
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Export(#[from] ExportError),
}

/// Builds and exports `request`; returns what was built.
pub fn run(
    store: &Store,
    mut request: BuildRequest,
    progress: &Progress,
    log: Log,
) -> Result<BuildResult, PipelineError> {
    request.export.check(&request.platforms)?;
    let loaded = match request.options.loaded.clone() {
        Some(loaded) => loaded,
        None => LoadedDockerfile::load(&request.options)?,
    };
    request.options.loaded = Some(loaded.clone());
    // A Dockerfile that declares `ARG SOURCE_DATE_EPOCH` sees the epoch, as with BuildKit;
    // otherwise it is no build arg (and no "not consumed" warning).
    if let Some(epoch) = request.options.source_date_epoch {
        if declares_arg(&loaded.parsed, SOURCE_DATE_EPOCH) {
            request
                .options
                .build_args
                .insert(SOURCE_DATE_EPOCH.to_string(), epoch.to_string());
        }
    }
    let result = build::build_platforms(store, &request.options, &request.platforms, progress)?;
    export::export(store, &result, request.export, progress, log)?;
    Ok(result)
}

/// True when an `ARG NAME` of the Dockerfile declares `name`.
fn declares_arg(dockerfile: &crate::dockerfile::Dockerfile, name: &str) -> bool {
    dockerfile.instructions.iter().any(|ins| {
        matches!(&ins.kind, crate::dockerfile::InstructionKind::Arg(decls)
            if decls.iter().any(|d| d.name == name))
    })
}
