//! `--output`: an OCI or Docker archive or layout, a directory (`type=local`), a filesystem
//! tar (`type=tar`), or names in the store (`type=image`) pushed with `push=true` or
//! `type=registry`.

use super::push::PushExporter;
use super::{ExportContext, ExportError, ExportReport, Exporter, Made};
use crate::archive::output::{write_output, write_output_platforms, Output, OutputKind};
use crate::build::BuildResult;

pub struct OutputExporter {
    output: Output,
}

impl OutputExporter {
    pub fn new(output: Output) -> OutputExporter {
        OutputExporter { output }
    }

    /// `type=image`: the output's names in the store, and pushed when asked.
    fn names(
        &self,
        cx: &ExportContext,
        result: &BuildResult,
        push: bool,
    ) -> Result<ExportReport, ExportError> {
        for name in &self.output.names {
            let tag = crate::image::parse_tag(name).map_err(|source| ExportError::Name {
                what: "--output name=",
                name: name.clone(),
                source,
            })?;
            super::tag(cx.store, result, &[tag.to_string()])?;
        }
        if !push {
            return Ok(ExportReport::default());
        }
        PushExporter::new(self.output.names.clone(), Some(self.output.clone())).export(cx, result)
    }

    /// A file output of one image.
    fn write_image(
        &self,
        cx: &ExportContext,
        result: &BuildResult,
    ) -> Result<Option<Made>, ExportError> {
        let image = result.default_image();
        let options = cx.image_options(Some(&self.output), image.base.clone());
        let report = write_output(cx.store, &image.image_id, &self.output, &options)
            .map_err(|source| self.write_error(source))?;
        self.warn_skipped(cx, &report.skipped_devices);
        cx.progress
            .notice(&format!("exported to {}", self.output.describe_dest()));
        Ok(report.written.map(Made::Image))
    }

    /// A file output of several platforms' images.
    fn write_platforms(
        &self,
        cx: &ExportContext,
        result: &BuildResult,
    ) -> Result<Option<Made>, ExportError> {
        let options = cx.image_options(Some(&self.output), None);
        let platforms: Vec<String> = result.images.iter().map(|i| i.platform.text()).collect();
        let report = write_output_platforms(
            cx.store,
            &result.platform_images(),
            &platforms,
            &self.output,
            &options,
        )
        .map_err(|source| self.write_error(source))?;
        self.warn_skipped(cx, &report.skipped_devices);
        let dest = self.output.describe_dest();
        match &report.index {
            Some(index) => cx.progress.notice(&format!(
                "exported the image index {} to {dest}",
                index.digest
            )),
            None => cx.progress.notice(&format!("exported to {dest}")),
        }
        Ok(report.index.map(Made::Index))
    }

    fn write_error(&self, source: crate::archive::ArchiveError) -> ExportError {
        ExportError::Write {
            dest: self.output.describe_dest(),
            source,
        }
    }

    fn warn_skipped(&self, cx: &ExportContext, devices: &[String]) {
        if !devices.is_empty() {
            cx.progress.notice(&format!(
                "warning: device nodes not created (an unprivileged user cannot): {}",
                devices.join(" ")
            ));
        }
    }
}

impl Exporter for OutputExporter {
    fn describe(&self) -> String {
        self.output.describe_dest()
    }

    fn single_platform_only(&self) -> Option<&'static str> {
        self.output.kind.single_platform_only()
    }

    fn export(
        &mut self,
        cx: &ExportContext,
        result: &BuildResult,
    ) -> Result<ExportReport, ExportError> {
        let made = match &self.output.kind {
            OutputKind::Image { push } => {
                let report = self.names(cx, result, *push)?;
                cx.progress
                    .notice(&format!("exported to {}", self.output.describe_dest()));
                return Ok(report);
            }
            _ if result.is_index() => self.write_platforms(cx, result)?,
            _ => self.write_image(cx, result)?,
        };
        Ok(ExportReport { made })
    }
}
