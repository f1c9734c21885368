//! Layer compression.

use std::io::{self, Read, Write};

use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};

/// Gzip-compress everything `r` yields into `w` and return `w`. The gzip header is
/// deterministic (no mtime, no file name, OS byte fixed by flate2), so the same input and level
/// always give the same bytes. `level` is clamped to 0..=9.
pub fn gzip_stream<R: Read, W: Write>(mut r: R, w: W, level: u32) -> io::Result<W> {
    let mut enc: GzEncoder<W> = GzBuilder::new()
        .mtime(0)
        .write(w, Compression::new(level.min(9)));
    io::copy(&mut r, &mut enc)?;
    enc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::MultiGzDecoder;

    #[test]
    fn gzip_is_deterministic_and_round_trips() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let a = gzip_stream(&data[..], Vec::new(), 6).unwrap();
        let b = gzip_stream(&data[..], Vec::new(), 6).unwrap();
        assert_eq!(a, b);
        assert_eq!(&a[..2], &[0x1f, 0x8b]);
        // mtime field (bytes 4..8) is zero, no FNAME flag
        assert_eq!(&a[4..8], &[0, 0, 0, 0]);
        assert_eq!(a[3] & 0x08, 0);
        let mut back = Vec::new();
        MultiGzDecoder::new(&a[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        let fast = gzip_stream(&data[..], Vec::new(), 1).unwrap();
        let mut back = Vec::new();
        MultiGzDecoder::new(&fast[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
    }
}
