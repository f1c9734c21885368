//! Exporters: where a build's result goes. A [`BuildResult`] is an index (one image per
//! platform); each [`Exporter`] writes what it is given (an archive or layout, a directory,
//! a filesystem tar, names in the store, a registry push, `docker load`), says whether it
//! takes several platforms, and reports what it made. [`export`] names the result in the
//! store, runs the exporters in the order asked, exports the build cache once for every
//! platform, and writes `--iidfile`/`--metadata-file` from what the exporters made: every
//! output of one build describes the same manifest.

mod error;
pub mod load;
mod metadata;
mod outputs;
mod push;

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::archive::output::Output;
use crate::archive::{BaseImage, ExportOptions, ExportedImage, ExportedIndex, MediaTypes};
use crate::build::{BuildResult, ResultImage};
use crate::cache::CacheTo;
use crate::progress::Progress;
use crate::registry::Log;
use crate::store::Store;

pub use error::ExportError;
pub use load::Loader;

/// An image name as the user typed it (where a push goes: `busybox` is
/// docker.io/library/busybox) and as the store records it (`busybox:latest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageName {
    pub typed: String,
    pub tag: String,
}

impl ImageName {
    pub fn parse(typed: &str) -> Result<ImageName, crate::image::ReferenceError> {
        Ok(ImageName {
            typed: typed.to_string(),
            tag: crate::image::parse_tag(typed)?.to_string(),
        })
    }
}

/// `--annotation [TYPE:]KEY=VALUE` sorted by where they go.
#[derive(Debug, Clone, Default)]
pub struct Annotations {
    pub manifest: BTreeMap<String, String>,
    pub manifest_descriptor: BTreeMap<String, String>,
    pub index: BTreeMap<String, String>,
    /// `index-descriptor:`: on the image index's entry of a layout's index.json.
    pub index_descriptor: BTreeMap<String, String>,
    /// `manifest[os/arch]:` and `manifest-descriptor[os/arch]:`, by platform text.
    pub platform_manifest: BTreeMap<String, BTreeMap<String, String>>,
    pub platform_manifest_descriptor: BTreeMap<String, BTreeMap<String, String>>,
}

/// How every image of the result is written, whatever the output: names, media types,
/// annotations, timestamps.
#[derive(Debug, Clone, Default)]
pub struct ImageSettings {
    /// `-t`: the names of the result, in the store and in every output that names images.
    pub names: Vec<ImageName>,
    pub media_types: MediaTypes,
    pub annotations: Annotations,
    /// `--reproducible`: rewrite-timestamp for every output.
    pub reproducible: bool,
    /// `SOURCE_DATE_EPOCH`, when given.
    pub epoch: Option<i64>,
}

/// Where a build's result goes, as the user asked.
#[derive(Debug, Default)]
pub struct ExportRequest {
    pub settings: ImageSettings,
    /// `--output`, in the order given.
    pub outputs: Vec<Output>,
    /// `--push`: the `-t` names go to their registries.
    pub push: bool,
    /// `--load`: the loader, started before the build (see [`Loader`]).
    pub load: Option<Loader>,
    pub cache_to: Vec<CacheTo>,
    pub iidfile: Option<PathBuf>,
    pub metadata_file: Option<PathBuf>,
}

/// What one exporter made that names the result.
#[derive(Debug, Clone)]
pub enum Made {
    /// An archive or layout holding the image (one platform).
    Image(ExportedImage),
    /// An archive or layout holding the image index (several platforms).
    Index(ExportedIndex),
    /// A manifest or image index pushed to a registry, with the `type=image` output that
    /// pushed it (None: `--push`): the options it was written with.
    Pushed {
        pushed: ExportedIndex,
        output: Option<Output>,
    },
}

/// What one exporter did.
#[derive(Debug, Default)]
pub struct ExportReport {
    pub made: Option<Made>,
}

/// What an exporter is given besides the result.
pub struct ExportContext<'a> {
    pub store: &'a Store,
    pub settings: &'a ImageSettings,
    pub progress: &'a Progress,
    /// Where registry transfers are reported.
    pub log: Log<'a>,
}

impl ExportContext<'_> {
    /// How `image` (None: the index's entries, each with its own base) is written for
    /// `output` (None: `--push`, `--load`, the metadata file): the result's names and the
    /// output's, its compression, media types, annotations and timestamps.
    pub fn image_options(&self, output: Option<&Output>, base: Option<BaseImage>) -> ExportOptions {
        let settings = self.settings;
        let mut export = ExportOptions {
            tags: settings.names.iter().map(|n| n.tag.clone()).collect(),
            media_types: settings.media_types,
            manifest_annotations: settings.annotations.manifest.clone(),
            descriptor_annotations: settings.annotations.manifest_descriptor.clone(),
            index_annotations: settings.annotations.index.clone(),
            platform_manifest_annotations: settings.annotations.platform_manifest.clone(),
            platform_descriptor_annotations: settings
                .annotations
                .platform_manifest_descriptor
                .clone(),
            index_descriptor_annotations: settings.annotations.index_descriptor.clone(),
            base,
            ..ExportOptions::default()
        };
        let mut rewrite = settings.reproducible;
        if let Some(output) = output {
            for name in &output.names {
                if let Ok(tag) = crate::image::parse_tag(name) {
                    let tag = tag.to_string();
                    if !export.tags.contains(&tag) {
                        export.tags.push(tag);
                    }
                }
            }
            export
                .manifest_annotations
                .extend(output.annotations.clone());
            rewrite |= output.rewrite_timestamp;
            export.compression = output.compression;
            export.compression_level = output.compression_level;
            export.media_types = output.media_types.unwrap_or(settings.media_types);
        }
        export.rewrite_timestamp = if rewrite { settings.epoch } else { None };
        export
    }
}

/// One place a build's result goes.
pub trait Exporter {
    /// Where it goes, for messages.
    fn describe(&self) -> String;
    /// Why it cannot take the images of several platforms, if it cannot.
    fn single_platform_only(&self) -> Option<&'static str>;
    fn export(
        &mut self,
        cx: &ExportContext,
        result: &BuildResult,
    ) -> Result<ExportReport, ExportError>;
}

/// The exporters of a request, in the order they run: the outputs as given, then `--load`,
/// then `--push`.
fn exporters(request: &mut ExportRequest) -> Vec<Box<dyn Exporter>> {
    let mut exporters: Vec<Box<dyn Exporter>> = Vec::new();
    for output in &request.outputs {
        exporters.push(Box::new(outputs::OutputExporter::new(output.clone())));
    }
    if let Some(loader) = request.load.take() {
        exporters.push(Box::new(loader));
    }
    if request.push {
        let names = request.settings.names.iter().map(|n| n.typed.clone());
        exporters.push(Box::new(push::PushExporter::new(names.collect(), None)));
    }
    exporters
}

impl ExportRequest {
    /// The refusal, before anything is built, of what a build for `platforms` cannot export,
    /// and of a request that cannot be carried out at all.
    pub fn check(&self, platforms: &[crate::plan::Platform]) -> Result<(), ExportError> {
        if self.push && self.settings.names.is_empty() {
            return Err(ExportError::PushWithoutName);
        }
        if self.outputs.iter().filter(|o| o.to_stdout()).count() > 1 {
            return Err(ExportError::TwoOnStdout);
        }
        if platforms.len() < 2 {
            return Ok(());
        }
        let refused = self
            .outputs
            .iter()
            .find_map(|o| o.kind.single_platform_only())
            .or_else(|| self.load.as_ref().and_then(|l| l.single_platform_only()));
        match refused {
            Some(what) => Err(ExportError::SeveralPlatforms {
                platforms: platforms
                    .iter()
                    .map(|p| p.text())
                    .collect::<Vec<_>>()
                    .join(","),
                what,
            }),
            None => Ok(()),
        }
    }
}

/// Names `result` `tags` in the store: the image, or for several platforms the list of their
/// images (a plain tag reads the default one).
pub fn tag(store: &Store, result: &BuildResult, tags: &[String]) -> Result<(), ExportError> {
    if tags.is_empty() {
        return Ok(());
    }
    let default = &result.default_image().image_id;
    if result.is_index() {
        store.add_platform_list(&result.image_ids(), default, tags)?;
    } else {
        store.add_image(default, tags)?;
    }
    Ok(())
}

/// Exports `result` as `request` says; see the module doc.
pub fn export(
    store: &Store,
    result: &BuildResult,
    mut request: ExportRequest,
    progress: &Progress,
    log: Log,
) -> Result<(), ExportError> {
    let mut list = exporters(&mut request);
    let cx = ExportContext {
        store,
        settings: &request.settings,
        progress,
        log,
    };
    warn_about_timestamps(&cx, result, &request.outputs);
    let tags: Vec<String> = request
        .settings
        .names
        .iter()
        .map(|n| n.tag.clone())
        .collect();
    tag(store, result, &tags)?;
    if result.is_index() && request.outputs.is_empty() && tags.is_empty() {
        progress.notice(
            "warning: no -t and no --output: the images are in the store untagged; name \
             them with -t, or write them as one image index with --output type=oci,dest=FILE",
        );
    }
    let mut made = Vec::new();
    for exporter in &mut list {
        made.extend(exporter.export(&cx, result)?.made);
    }
    export_cache(store, result, &request.cache_to, progress)?;
    metadata::write_files(&cx, result, &made, &request)?;
    Ok(())
}

/// The warnings about timestamps a request cannot honour.
fn warn_about_timestamps(cx: &ExportContext, result: &BuildResult, outputs: &[Output]) {
    let rewrite_asked = outputs.iter().any(|o| o.rewrite_timestamp);
    if cx.settings.epoch.is_none() && rewrite_asked {
        cx.progress.notice(
            "warning: rewrite-timestamp=true does nothing without SOURCE_DATE_EPOCH \
             (--build-arg SOURCE_DATE_EPOCH=N, the environment, or --reproducible)",
        );
    }
    if result.images.iter().any(|i: &ResultImage| i.base.is_none())
        && cx.settings.epoch.is_some()
        && (cx.settings.reproducible || rewrite_asked)
    {
        cx.progress.notice(
            "warning: the base image was not found in the store: rewrite-timestamp rewrites \
             every layer, the base's too",
        );
    }
}

/// `--cache-to`: the records every platform used, exported once per destination.
fn export_cache(
    store: &Store,
    result: &BuildResult,
    cache_to: &[CacheTo],
    progress: &Progress,
) -> Result<(), ExportError> {
    for to in cache_to {
        let selected = result.cache.selected(to);
        let location = crate::cache::describe_location(&to.location);
        let written =
            crate::cache::export(store, to, selected, &result.cache.mounts).map_err(|source| {
                ExportError::Cache {
                    location: location.clone(),
                    source,
                }
            })?;
        progress.notice(&format!(
            "exported build cache to {location} ({} records, {written} new blobs)",
            selected.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
