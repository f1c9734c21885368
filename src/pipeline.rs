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

#[cfg(test)]
mod tests {
    // Fixtures: a context and outputs in the test's own temp dir.
    #![allow(clippy::disallowed_methods)]

    use super::*;
    use crate::archive::output::parse_output;
    use crate::export::{ExportRequest, ImageName, ImageSettings};
    use crate::progress::ProgressMode;

    /// A build is a request struct: the Dockerfile read from its context, the image named in
    /// the store, written as an OCI layout, and named by --iidfile and --metadata-file, with no
    /// CLI involved (a Dockerfile of config-only instructions needs no sandbox).
    #[test]
    fn a_build_request_runs_from_dockerfile_to_outputs() {
        let dir = tempfile::tempdir().expect("temp dir");
        let context = dir.path().join("context");
        std::fs::create_dir(&context).expect("context");
        std::fs::write(
            context.join("Dockerfile"),
            "FROM scratch\nARG V\nLABEL v=$V\nCMD [\"/app\"]\n",
        )
        .expect("Dockerfile");
        let store = Store::open(&dir.path().join("store")).expect("store");
        let layout = dir.path().join("layout");
        let (iid, metadata) = (dir.path().join("iid"), dir.path().join("meta.json"));
        let request = BuildRequest {
            options: BuildOptions {
                context_dir: context,
                build_args: [("V".to_string(), "42".to_string())].into(),
                ..BuildOptions::default()
            },
            platforms: Vec::new(),
            export: ExportRequest {
                settings: ImageSettings {
                    names: vec![ImageName::parse("app:1").expect("name")],
                    ..ImageSettings::default()
                },
                outputs: vec![parse_output(&format!(
                    "type=oci,dest={},tar=false",
                    layout.display()
                ))
                .expect("output")],
                iidfile: Some(iid.clone()),
                metadata_file: Some(metadata.clone()),
                ..ExportRequest::default()
            },
        };
        let quiet = |_: &str| {};
        let result = run(&store, request, &Progress::new(ProgressMode::Quiet), &quiet)
            .unwrap_or_else(|e| panic!("{}", crate::error_chain(&e)));

        let image_id = &result.default_image().image_id;
        assert_eq!(store.resolve_image("app:1").ok().as_ref(), Some(image_id));
        let config: serde_json::Value =
            serde_json::from_slice(&store.read_blob(image_id).expect("config")).expect("json");
        assert_eq!(config["config"]["Labels"]["v"], "42");
        assert_eq!(config["config"]["Cmd"][0], "/app");
        assert_eq!(std::fs::read_to_string(&iid).expect("iid"), *image_id);
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index"))
                .expect("json");
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&metadata).expect("metadata")).expect("json");
        assert_eq!(
            meta["containerimage.digest"],
            index["manifests"][0]["digest"]
        );
        assert_eq!(meta["containerimage.config.digest"], image_id.as_str());
        assert_eq!(
            index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
            "app:1"
        );
    }
}
