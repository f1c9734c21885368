//! `--push` and `type=image,push=true`: the result to a registry under each name, the same
//! manifest (annotations, compression) the other outputs write with OCI media types, so that
//! the digest `--metadata-file` reports is one the registry knows.

use super::{ExportContext, ExportError, ExportReport, Exporter, Made};
use crate::archive::output::Output;
use crate::archive::{manifest_annotations, ExportedIndex, MediaTypes};
use crate::build::{BuildResult, ResultImage};
use crate::registry::{IndexPushOptions, PushOptions};

pub struct PushExporter {
    /// The names as typed: `busybox` goes to docker.io/library/busybox.
    names: Vec<String>,
    /// The `type=image` output whose compression and annotations the push takes.
    output: Option<Output>,
}

impl PushExporter {
    pub fn new(names: Vec<String>, output: Option<Output>) -> PushExporter {
        PushExporter { names, output }
    }

    /// How `image` is pushed.
    fn image_options(
        &self,
        cx: &ExportContext,
        image: &ResultImage,
    ) -> Result<PushOptions, ExportError> {
        let mut export = cx.image_options(self.output.as_ref(), image.base.clone());
        export.media_types = MediaTypes::Oci;
        let config: serde_json::Value =
            serde_json::from_slice(&cx.store.read_blob(&image.image_id)?).map_err(|e| {
                crate::archive::ArchiveError::Invalid {
                    path: image.image_id.clone().into(),
                    message: format!("the image's config: {e}"),
                }
            })?;
        Ok(PushOptions {
            compression: self.output.as_ref().and_then(|o| o.compression),
            annotations: manifest_annotations(&export, &config)?,
        })
    }

    /// How an image index is pushed: each image as [`Self::image_options`] says, with the
    /// index annotations every output writes.
    fn index_options(
        &self,
        cx: &ExportContext,
        result: &BuildResult,
    ) -> Result<IndexPushOptions, ExportError> {
        let images = result
            .images
            .iter()
            .map(|image| self.image_options(cx, image))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(IndexPushOptions {
            images,
            descriptor_annotations: cx.settings.annotations.manifest_descriptor.clone(),
            platform_descriptor_annotations: cx
                .settings
                .annotations
                .platform_manifest_descriptor
                .clone(),
            index_annotations: cx.settings.annotations.index.clone(),
        })
    }
}

impl Exporter for PushExporter {
    fn describe(&self) -> String {
        self.names.join(", ")
    }

    fn single_platform_only(&self) -> Option<&'static str> {
        None
    }

    fn export(
        &mut self,
        cx: &ExportContext,
        result: &BuildResult,
    ) -> Result<ExportReport, ExportError> {
        let mut made = None;
        for dest in &self.names {
            let reference =
                crate::image::parse_reference(dest).map_err(|source| ExportError::Name {
                    what: "cannot push to",
                    name: dest.clone(),
                    source,
                })?;
            if reference.digest.is_some() {
                return Err(ExportError::PushToDigest { dest: dest.clone() });
            }
            let pushed = if result.is_index() {
                let options = self.index_options(cx, result)?;
                crate::registry::push_index(
                    cx.store,
                    &result.image_ids(),
                    &reference,
                    &options,
                    cx.log,
                )
            } else {
                let image = result.default_image();
                let options = self.image_options(cx, image)?;
                crate::registry::push_with(cx.store, &image.image_id, &reference, &options, cx.log)
            }
            .map_err(|source| ExportError::Push {
                reference: reference.to_string(),
                source,
            })?;
            made.get_or_insert(Made::Pushed {
                pushed: ExportedIndex {
                    digest: pushed.manifest_digest,
                    size: pushed.manifest_size,
                },
                output: self.output.clone(),
            });
        }
        Ok(ExportReport { made })
    }
}
