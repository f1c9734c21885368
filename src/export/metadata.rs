//! `--iidfile` and `--metadata-file`, written from what the exporters made: a pushed image is
//! described as pushed, else as the first output wrote it, else as an OCI archive would hold
//! it. For one platform the iidfile names the image (its config digest, as `docker build`);
//! for several, the image index (as buildx).

// The files written are paths the user named on the command line, not trees a build was
// given: the boundary rule (clippy.toml) does not apply.
#![allow(clippy::disallowed_methods)]

use serde_json::json;

use super::{ExportContext, ExportError, ExportRequest, Made};
use crate::archive::{describe, describe_platforms, ExportedImage, ExportedIndex, MediaTypes};
use crate::build::BuildResult;

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

pub fn write_files(
    cx: &ExportContext,
    result: &BuildResult,
    made: &[Made],
    request: &ExportRequest,
) -> Result<(), ExportError> {
    if request.iidfile.is_none() && request.metadata_file.is_none() {
        return Ok(());
    }
    let names: Vec<&str> = cx.settings.names.iter().map(|n| n.tag.as_str()).collect();
    let (iid, metadata) = if result.is_index() {
        let index = described_index(cx, result, made)?;
        let metadata = json!({
            "containerimage.digest": index.digest,
            "containerimage.descriptor": {
                "mediaType": OCI_INDEX,
                "digest": index.digest,
                "size": index.size,
            },
            "image.name": names.join(","),
        });
        (index.digest, metadata)
    } else {
        let image = described_image(cx, result, made)?;
        let metadata = json!({
            "containerimage.config.digest": image.config_digest,
            "containerimage.digest": image.manifest_digest,
            "containerimage.descriptor": {
                "mediaType": image.manifest_media_type,
                "digest": image.manifest_digest,
                "size": image.manifest_size,
            },
            "image.name": names.join(","),
        });
        (result.default_image().image_id.clone(), metadata)
    };
    if let Some(path) = &request.iidfile {
        write(path, iid.as_bytes())?;
    }
    if let Some(path) = &request.metadata_file {
        let text = serde_json::to_string_pretty(&metadata).unwrap_or_default();
        write(path, (text + "\n").as_bytes())?;
    }
    Ok(())
}

fn write(path: &std::path::Path, bytes: &[u8]) -> Result<(), ExportError> {
    std::fs::write(path, bytes).map_err(|source| ExportError::WriteFile {
        path: path.to_path_buf(),
        source,
    })
}

/// The one image's manifest, as pushed or as first written.
fn described_image(
    cx: &ExportContext,
    result: &BuildResult,
    made: &[Made],
) -> Result<ExportedImage, ExportError> {
    let image = result.default_image();
    let pushed = made.iter().find_map(|m| match m {
        Made::Pushed { pushed, output } => Some((pushed, output)),
        _ => None,
    });
    let written = made.iter().find_map(|m| match m {
        Made::Image(written) => Some(written),
        _ => None,
    });
    let described = match (written, pushed) {
        (Some(written), None) => return Ok(written.clone()),
        (_, Some((_, output))) => {
            let mut options = cx.image_options(output.as_ref(), image.base.clone());
            options.media_types = MediaTypes::Oci;
            describe(cx.store, &image.image_id, &options)
        }
        (None, None) => describe(
            cx.store,
            &image.image_id,
            &cx.image_options(None, image.base.clone()),
        ),
    }
    .map_err(ExportError::Describe)?;
    if let Some((pushed, _)) = pushed.filter(|(p, _)| p.digest != described.manifest_digest) {
        return Err(ExportError::PushedIsNotDescribed {
            pushed: pushed.digest.clone(),
            described: described.manifest_digest,
        });
    }
    Ok(described)
}

/// The image index, as pushed or as first written.
fn described_index(
    cx: &ExportContext,
    result: &BuildResult,
    made: &[Made],
) -> Result<ExportedIndex, ExportError> {
    let describe_as = |output: Option<&crate::archive::output::Output>, oci: bool| {
        let mut options = cx.image_options(output, None);
        if oci {
            options.media_types = MediaTypes::Oci;
        }
        describe_platforms(cx.store, &result.platform_images(), &options)
            .map_err(ExportError::Describe)
    };
    let pushed = made.iter().find_map(|m| match m {
        Made::Pushed { pushed, output } => Some((pushed, output)),
        _ => None,
    });
    if let Some((pushed, output)) = pushed {
        let described = describe_as(output.as_ref(), true)?;
        if described.digest != pushed.digest {
            return Err(ExportError::PushedIsNotDescribed {
                pushed: pushed.digest.clone(),
                described: described.digest,
            });
        }
        return Ok(described);
    }
    match made.iter().find_map(|m| match m {
        Made::Index(written) => Some(written),
        _ => None,
    }) {
        Some(written) => Ok(written.clone()),
        None => describe_as(None, false),
    }
}
