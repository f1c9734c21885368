//! sha256 digests of byte streams, computed while the bytes flow through.

use std::fmt;
use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256};

/// A sha256 digest and the number of bytes it covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Digest {
    /// Lower-case hex of the sha256.
    pub hex: String,
    /// Number of bytes hashed.
    pub size: u64,
}

impl Digest {
    /// The OCI form, `sha256:<hex>`.
    pub fn as_oci(&self) -> String {
        format!("sha256:{}", self.hex)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

/// A writer that hashes and counts everything written through it.
pub struct DigestWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> DigestWriter<W> {
    pub fn new(inner: W) -> Self {
        DigestWriter {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The inner writer and the digest of everything written (the inner writer is not flushed).
    pub fn finish(self) -> (W, Digest) {
        let hex = hex::encode(self.hasher.finalize());
        (
            self.inner,
            Digest {
                hex,
                size: self.size,
            },
        )
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts everything read through it.
pub struct DigestReader<R: Read> {
    inner: R,
    hasher: Sha256,
    size: u64,
}

impl<R: Read> DigestReader<R> {
    pub fn new(inner: R) -> Self {
        DigestReader {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    /// Bytes read so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The inner reader and the digest of everything read so far. Callers that need the digest
    /// of the whole stream must read it to its end first (for a tar: past the end-of-archive
    /// blocks, e.g. with `io::copy(&mut reader, &mut io::sink())`).
    pub fn finish(self) -> (R, Digest) {
        let hex = hex::encode(self.hasher.finalize());
        (
            self.inner,
            Digest {
                hex,
                size: self.size,
            },
        )
    }
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn writer_hashes_and_counts() {
        let mut w = DigestWriter::new(Vec::new());
        w.write_all(b"a").unwrap();
        w.write_all(b"bc").unwrap();
        assert_eq!(w.size(), 3);
        let (out, d) = w.finish();
        assert_eq!(out, b"abc");
        assert_eq!(d.hex, ABC);
        assert_eq!(d.size, 3);
        assert_eq!(d.as_oci(), format!("sha256:{ABC}"));
        assert_eq!(d.to_string(), d.as_oci());
    }

    #[test]
    fn reader_hashes_and_counts() {
        let mut r = DigestReader::new(&b"abc"[..]);
        let mut s = Vec::new();
        r.read_to_end(&mut s).unwrap();
        let (_, d) = r.finish();
        assert_eq!(s, b"abc");
        assert_eq!(
            d,
            Digest {
                hex: ABC.into(),
                size: 3
            }
        );
        let (_, d) = DigestWriter::new(io::sink()).finish();
        assert_eq!(d.hex, EMPTY);
        assert_eq!(d.size, 0);
    }
}
