//! Layer dirs and layer tars: overlay upper dir -> OCI tar (whiteouts converted), OCI tar ->
//! layer dir (safely, inside the dir), compression and digests.

pub mod apply;
pub mod compress;
pub mod digest;
pub mod error;
pub mod layer_tar;

pub use apply::{apply_layer_tar, report_notice};

/// A reader decompressed by its magic bytes (gzip, zstd, bzip2, xz; plain passes through).
pub fn decompressing_reader<R: std::io::Read + Send + 'static>(
    reader: R,
) -> std::io::Result<Box<dyn std::io::Read + Send>> {
    boundary::decompress::decompressing_reader(reader).map(|(_, stream)| stream)
}
pub use compress::{gzip_stream, zstd_encoder, ParallelGzEncoder};
pub use digest::{Digest, DigestReader, DigestWriter};
pub use error::SnapshotError;
pub use layer_tar::{layer_diff_id, write_layer_tar, write_layer_tar_clamped};

#[cfg(test)]
mod tests;
