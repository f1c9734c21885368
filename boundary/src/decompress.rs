//! Compression told by content (magic bytes), never by a file name, and decoded as it streams.

use std::io::{self, BufReader, Read};

/// How a stream is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

/// Bytes [`sniff`] needs to tell every format apart.
pub const MAGIC_LEN: usize = 6;

/// The compression whose magic `head` starts with.
pub fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(b"BZh") {
        Compression::Bzip2
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Compression::Xz
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Reads until `buf` is full or the stream ends; returns how much was read.
pub fn read_up_to(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// `reader`, decompressed according to its first bytes (passed through when they are no known
/// magic). xz is decoded on a thread feeding a pipe, as its decoder only writes.
pub fn decompressing_reader<R: Read + Send + 'static>(
    mut reader: R,
) -> io::Result<(Compression, Box<dyn Read + Send>)> {
    let mut head = [0u8; MAGIC_LEN];
    let n = read_up_to(&mut reader, &mut head)?;
    let kind = sniff(&head[..n]);
    let whole = io::Cursor::new(head[..n].to_vec()).chain(reader);
    let stream: Box<dyn Read + Send> = match kind {
        Compression::None => Box::new(whole),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(whole)),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(whole)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(whole)?),
        Compression::Xz => {
            let (pipe_reader, mut pipe_writer) = io::pipe()?;
            std::thread::spawn(move || {
                let mut input = BufReader::new(whole);
                // a decoding error closes the pipe early: the tar reader then reports a
                // truncated archive
                let _ = lzma_rs::xz_decompress(&mut input, &mut pipe_writer);
            });
            Box::new(pipe_reader)
        }
    };
    Ok((kind, stream))
}

/// A tar header block: a name, and a checksum (bytes 148..156, octal) equal to the sum of the
/// block's bytes with the checksum field counted as spaces. Old v7 tars without the `ustar`
/// magic pass too.
pub fn is_tar_header(block: &[u8; 512]) -> bool {
    // An all-zero block ends an archive; a header may have an empty name (Go's tar reader,
    // which BuildKit's ADD asks, reads such a member; its extractor skips it).
    if block.iter().all(|&b| b == 0) {
        return false;
    }
    let field = String::from_utf8_lossy(&block[148..156]);
    let Ok(stored) = u32::from_str_radix(field.trim_matches(|c: char| c == '\0' || c == ' '), 8)
    else {
        return false;
    };
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    sum == stored
}

/// What `reader` holds if it is a tar archive (possibly compressed): its compression. `None`
/// for anything else, gzipped text included.
pub fn archive_compression<R: Read + Send + 'static>(reader: R) -> Option<Compression> {
    let (kind, mut stream) = decompressing_reader(reader).ok()?;
    let mut block = [0u8; 512];
    let n = read_up_to(&mut stream, &mut block).ok()?;
    (n == 512 && is_tar_header(&block)).then_some(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ustar header for `name` with a valid checksum.
    fn header(name: &[u8]) -> [u8; 512] {
        let mut block = [0u8; 512];
        block[..name.len()].copy_from_slice(name);
        block[100..107].copy_from_slice(b"0000755");
        block[156] = b'5';
        block[257..263].copy_from_slice(b"ustar\0");
        block[148..156].copy_from_slice(b"        ");
        let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
        block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        block
    }

    #[test]
    fn tar_headers_are_told_by_checksum_even_with_an_empty_name() {
        assert!(is_tar_header(&header(b"dir/")));
        // Go's tar reader (BuildKit's ADD) takes a member with an empty name: so does rbuild.
        assert!(is_tar_header(&header(b"")));
        // The end-of-archive block and a block with a wrong checksum are no header.
        assert!(!is_tar_header(&[0u8; 512]));
        let mut bad = header(b"x");
        bad[0] = b'y';
        assert!(!is_tar_header(&bad));
    }
}
