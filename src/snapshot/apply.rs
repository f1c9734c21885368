//! OCI layer tar -> layer dir (overlay upper-dir format), through the boundary's extractor.

use std::io::Read;
use std::path::Path;

use boundary::{ExtractOptions, ExtractReport};

use super::error::SnapshotError;

/// Extracts the uncompressed OCI/Docker layer tar `tar` into the empty directory `layer_dir`,
/// producing the overlay upper-dir format (whiteouts as 0/0 character devices, opaque dirs with
/// `user.overlay.opaque=y`).
///
/// Every path is resolved inside `layer_dir`; absolute names and names with `..` are refused,
/// as are hard links to anything but an earlier entry and 0/0 character devices. Overlay
/// xattrs are stripped and counted in the report; device nodes the kernel refuses (EPERM) are
/// skipped and listed.
pub fn apply_layer_tar<R: Read>(tar: R, layer_dir: &Path) -> Result<ExtractReport, SnapshotError> {
    let fail = |source| SnapshotError::Extract {
        path: layer_dir.to_path_buf(),
        source,
    };
    let root = boundary::open_root(layer_dir).map_err(|e| fail(boundary::ExtractError::Read(e)))?;
    boundary::extract_tar(tar, &root, ExtractOptions::LAYER).map_err(fail)
}

/// A one-line notice for what extracting a layer neutralised or left out, if anything.
pub fn report_notice(report: &ExtractReport) -> Option<String> {
    let mut parts = Vec::new();
    if !report.stripped_xattrs.is_empty() {
        let names: Vec<String> = report
            .stripped_xattrs
            .iter()
            .map(|(name, count)| format!("{name} on {count}"))
            .collect();
        parts.push(format!(
            "overlay metadata left by the tool that built it stripped ({})",
            names.join(", ")
        ));
    }
    if !report.skipped_devices.is_empty() {
        parts.push(format!(
            "{} device node(s) skipped (creating them needs real root): {}",
            report.skipped_devices.len(),
            report.skipped_devices.join(", ")
        ));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}
