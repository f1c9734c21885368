//! Content-addressed blobs: configs and compressed layer blobs, verified where cheap.

use std::io::Read;
use std::path::PathBuf;

use sha2::{Digest as _, Sha256};

use super::{digest_hex, io_err, write_atomic, Store, StoreError};

impl Store {
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, StoreError> {
        Ok(self.root.join("blobs/sha256").join(digest_hex(digest)?))
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.exists())
    }

    /// Stores small bytes (configs, manifests) and returns their digest.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<String, StoreError> {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
        let path = self.blob_path(&digest)?;
        if !path.exists() {
            write_atomic(&path, bytes)?;
        }
        Ok(digest)
    }

    /// Every blob in the store (digests).
    pub fn list_blobs(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.root.join("blobs/sha256");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir)
            .map_err(io_err("list", &dir))?
            .flatten()
        {
            // write_atomic's temp files (`.tmpXXXX`) are not blobs
            if let Some(name) = entry.file_name().to_str().filter(|n| !n.starts_with('.')) {
                out.push(format!("sha256:{name}"));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Streams the blob through sha256: true when its bytes match its name.
    pub fn verify_blob(&self, digest: &str) -> Result<bool, StoreError> {
        let path = self.blob_path(digest)?;
        let mut file = std::fs::File::open(&path).map_err(io_err("open", &path))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = file.read(&mut buf).map_err(io_err("read", &path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(format!("sha256:{}", hex::encode(hasher.finalize())) == digest)
    }

    /// Deletes a blob. Callers make sure nothing needs it (or that it is corrupt anyway).
    pub fn remove_blob(&self, digest: &str) -> Result<(), StoreError> {
        let path = self.blob_path(digest)?;
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err("remove", &path)(e)),
            _ => Ok(()),
        }
    }

    /// Reads a small blob whole and checks its digest.
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest)?;
        let mut bytes = Vec::new();
        std::fs::File::open(&path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => StoreError::MissingBlob {
                    digest: digest.to_string(),
                },
                _ => StoreError::Io {
                    action: "open",
                    path: path.clone(),
                    source: e,
                },
            })?
            .read_to_end(&mut bytes)
            .map_err(io_err("read", &path))?;
        let actual = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        if actual != digest {
            return Err(StoreError::BadBlob {
                digest: digest.to_string(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Moves a finished temp file (whose digest the caller computed while writing it) into
    /// blobs/ under that digest.
    pub fn adopt_blob(
        &self,
        temp: tempfile::TempPath,
        digest: &str,
    ) -> Result<PathBuf, StoreError> {
        let path = self.blob_path(digest)?;
        if path.exists() {
            return Ok(path);
        }
        temp.persist(&path).map_err(|e| StoreError::Io {
            action: "store blob",
            path: path.clone(),
            source: e.error,
        })?;
        Ok(path)
    }

    /// A temp file on the store's filesystem for a blob being written. Its name carries our
    /// pid, so that the temp file of a killed `save` or pull is reclaimed like a temp dir.
    pub fn blob_temp_file(&self) -> Result<tempfile::NamedTempFile, StoreError> {
        let dir = self.root.join("tmp");
        tempfile::Builder::new()
            .prefix(&format!("{}-blob-", std::process::id()))
            .tempfile_in(&dir)
            .map_err(io_err("create temp file in", &dir))
    }
}
