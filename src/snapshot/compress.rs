//! Layer compression: gzip on every core, with the same bytes whatever the number of cores.
//!
//! A layer's gzip blob is its identity in a registry: the same layer compressed on a 2-core CI
//! runner and on a 64-core workstation must give the same digest. So the stream is cut into
//! fixed blocks of [`BLOCK`] input bytes, whatever the thread count; each block is deflated on
//! its own with the 32 KiB of input before it as the dictionary (the window it would have had in
//! one long stream) and ends with a sync flush, which leaves it byte-aligned, so the blocks'
//! outputs concatenate into one deflate stream. An empty final block closes it. The output of a
//! block depends only on its input and the input before it: how many workers compressed it, and
//! in which order they finished, cannot show in the bytes. This is pigz's scheme; the result is
//! one gzip member (not several concatenated ones, which some readers stop after the first of).
//!
//! Memory is bounded: at most `2 × workers` blocks are in flight, whatever the layer's size.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc;
use std::thread::JoinHandle;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// Input bytes per block: large enough that the per-block flush costs nothing measurable
/// (< 0.01 %), small enough to keep every core busy on a layer of a few megabytes.
pub const BLOCK: usize = 128 * 1024;
/// Deflate's window: each block sees this much of the input before it.
const WINDOW: usize = 32 * 1024;
/// A fixed header: no name, no mtime, OS "unknown" (255), so the bytes depend on the data only.
/// XFL (byte 8) says which level was used, as gzip(1) writes it.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
/// An empty fixed-Huffman block with BFINAL set: the end of the deflate stream.
const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

struct Job {
    index: u64,
    /// Up to [`WINDOW`] bytes of input before this block.
    dictionary: Vec<u8>,
    data: Vec<u8>,
}

struct Done {
    index: u64,
    deflated: io::Result<Vec<u8>>,
}

/// The workers, started when the second block arrives (a small layer never starts any).
struct Pool {
    jobs: Option<mpsc::SyncSender<Job>>,
    done: mpsc::Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
}

/// A zstd encoder on `threads` of zstd's own workers (0: one per core). zstd's output is the
/// same for any number of workers >= 1 (but differs from its single-threaded mode, which is
/// never used), so the count follows the machine and the digests do not.
pub fn zstd_encoder<W: Write>(
    w: W,
    level: i32,
    threads: usize,
) -> io::Result<zstd::stream::write::Encoder<'static, W>> {
    let mut encoder = zstd::stream::write::Encoder::new(w, level)?;
    encoder.multithread(worker_count(threads) as u32)?;
    Ok(encoder)
}

fn worker_count(threads: usize) -> usize {
    if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    }
}

/// Gzip-compresses everything `r` yields into `w` on every core and returns `w`. The same
/// input and level always give the same bytes. `level` is clamped to 0..=9.
pub fn gzip_stream<R: io::Read, W: Write>(mut r: R, w: W, level: u32) -> io::Result<W> {
    let mut enc = ParallelGzEncoder::new(w, level, 0);
    io::copy(&mut r, &mut enc)?;
    enc.finish()
}

/// A streaming gzip encoder that compresses blocks in parallel. Write the data, then call
/// [`ParallelGzEncoder::finish`] to get the inner writer back.
pub struct ParallelGzEncoder<W: Write> {
    inner: W,
    level: u32,
    threads: usize,
    crc: Crc,
    block: Vec<u8>,
    /// The last [`WINDOW`] bytes of the block before `block`.
    window: Vec<u8>,
    pool: Option<Pool>,
    /// Index of the next block to hand out, and of the next to write.
    next_index: u64,
    next_written: u64,
    /// Blocks finished out of order, waiting for the ones before them.
    ready: BTreeMap<u64, Vec<u8>>,
}

impl<W: Write> ParallelGzEncoder<W> {
    /// `threads` 0 means one per available core. `level` is clamped to 0..=9.
    pub fn new(inner: W, level: u32, threads: usize) -> ParallelGzEncoder<W> {
        let threads = worker_count(threads);
        ParallelGzEncoder {
            inner,
            level: level.min(9),
            threads,
            crc: Crc::new(),
            block: Vec::with_capacity(BLOCK),
            window: Vec::new(),
            pool: None,
            next_index: 0,
            next_written: 0,
            ready: BTreeMap::new(),
        }
    }

    /// Hands the full block out (to a worker, or compresses it here with one thread) and writes
    /// whatever is finished in order.
    fn submit_block(&mut self) -> io::Result<()> {
        if self.next_index == 0 {
            self.inner.write_all(&header(self.level))?;
        }
        let data = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK));
        let dictionary = std::mem::take(&mut self.window);
        self.window = data[data.len().saturating_sub(WINDOW)..].to_vec();
        let job = Job {
            index: self.next_index,
            dictionary,
            data,
        };
        self.next_index += 1;
        if self.threads <= 1 {
            let deflated = deflate_block(self.level, &job.dictionary, &job.data)?;
            self.next_written += 1;
            return self.inner.write_all(&deflated);
        }
        let level = self.level;
        let threads = self.threads;
        let pool = self.pool.get_or_insert_with(|| Pool::start(level, threads));
        let Some(jobs) = pool.jobs.as_ref() else {
            return Err(io::Error::other("gzip workers stopped"));
        };
        jobs.send(job)
            .map_err(|_| io::Error::other("gzip workers stopped"))?;
        // Keep at most 2 × threads blocks in flight: wait for the oldest beyond that.
        while self.next_index - self.next_written > 2 * self.threads as u64 {
            self.wait_one()?;
        }
        self.write_ready()
    }

    /// Waits for one block to come back from the workers.
    fn wait_one(&mut self) -> io::Result<()> {
        let Some(pool) = self.pool.as_ref() else {
            return Ok(());
        };
        let done = pool
            .done
            .recv()
            .map_err(|_| io::Error::other("gzip workers stopped"))?;
        self.ready.insert(done.index, done.deflated?);
        self.write_ready()
    }

    /// Writes the finished blocks that come next, in order.
    fn write_ready(&mut self) -> io::Result<()> {
        if let Some(pool) = self.pool.as_ref() {
            while let Ok(done) = pool.done.try_recv() {
                self.ready.insert(done.index, done.deflated?);
            }
        }
        while let Some(deflated) = self.ready.remove(&self.next_written) {
            self.inner.write_all(&deflated)?;
            self.next_written += 1;
        }
        Ok(())
    }

    /// Compresses what is left, writes the gzip trailer and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.block.is_empty() || self.next_index == 0 {
            self.submit_block()?;
        }
        while self.next_written < self.next_index {
            self.wait_one()?;
        }
        drop(self.pool.take());
        self.inner.write_all(&FINAL_BLOCK)?;
        self.inner.write_all(&self.crc.sum().to_le_bytes())?;
        // ISIZE is the input length modulo 2^32 (RFC 1952).
        self.inner.write_all(&(self.crc.amount()).to_le_bytes())?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for ParallelGzEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(BLOCK - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        self.crc.update(&buf[..n]);
        if self.block.len() == BLOCK {
            self.submit_block()?;
        }
        Ok(n)
    }

    /// Blocks are only cut at [`BLOCK`] boundaries (that is what keeps the bytes stable), so a
    /// flush cannot push a partial block out; it flushes what is already compressed.
    fn flush(&mut self) -> io::Result<()> {
        self.write_ready()?;
        self.inner.flush()
    }
}

/// A dropped encoder (finished or not) leaves no thread behind.
impl Drop for Pool {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Pool {
    fn start(level: u32, threads: usize) -> Pool {
        let (jobs_tx, jobs_rx) = mpsc::sync_channel::<Job>(threads);
        let jobs_rx = std::sync::Arc::new(std::sync::Mutex::new(jobs_rx));
        let (done_tx, done_rx) = mpsc::channel();
        let workers = (0..threads)
            .map(|_| {
                let jobs = std::sync::Arc::clone(&jobs_rx);
                let done = done_tx.clone();
                std::thread::spawn(move || loop {
                    // The lock is held only to take the next job, not while compressing.
                    let job = match jobs.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    let deflated = deflate_block(level, &job.dictionary, &job.data);
                    if done
                        .send(Done {
                            index: job.index,
                            deflated,
                        })
                        .is_err()
                    {
                        return;
                    }
                })
            })
            .collect();
        Pool {
            jobs: Some(jobs_tx),
            done: done_rx,
            workers,
        }
    }

    fn stop(&mut self) {
        // Closing the job channel ends the workers' loops.
        self.jobs = None;
        // Drain so no worker blocks on a full channel (the results channel is unbounded, but
        // a dropped encoder must not leave threads behind either way).
        while self.done.try_recv().is_ok() {}
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

fn header(level: u32) -> [u8; 10] {
    let mut header = HEADER;
    header[8] = match level {
        9 => 2,
        0 | 1 => 4,
        _ => 0,
    };
    header
}

/// One block as raw deflate, primed with the input before it, ending in a sync flush.
fn deflate_block(level: u32, dictionary: &[u8], data: &[u8]) -> io::Result<Vec<u8>> {
    let mut compress = Compress::new(Compression::new(level), false);
    if !dictionary.is_empty() {
        compress
            .set_dictionary(dictionary)
            .map_err(io::Error::other)?;
    }
    // Deflate never grows data by more than a few bytes per 16 KiB stored block, plus the
    // flush marker; the loop below grows the buffer anyway if that estimate is short.
    let mut out = Vec::with_capacity(data.len() + data.len() / 64 + 64);
    let mut consumed = 0usize;
    loop {
        let before_in = compress.total_in();
        let status = compress
            .compress_vec(&data[consumed..], &mut out, FlushCompress::Sync)
            .map_err(io::Error::other)?;
        consumed += (compress.total_in() - before_in) as usize;
        // Done when all input is in and the flush fitted (spare room left in the buffer).
        if consumed == data.len() && out.len() < out.capacity() {
            break;
        }
        if status == Status::BufError || out.len() == out.capacity() {
            out.reserve(out.capacity().max(4096));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::io::Read;

    /// Compressible but not trivial: text-like with repeats far apart.
    fn sample(len: usize) -> Vec<u8> {
        let mut state = 0x9e37_79b9_u32;
        (0..len)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                if i % 3 == 0 {
                    b"layer "[i % 6]
                } else {
                    b'a' + (state % 7) as u8
                }
            })
            .collect()
    }

    fn encode(data: &[u8], level: u32, threads: usize, chunk: usize) -> Vec<u8> {
        let mut enc = ParallelGzEncoder::new(Vec::new(), level, threads);
        for piece in data.chunks(chunk.max(1)) {
            enc.write_all(piece).unwrap();
        }
        enc.finish().unwrap()
    }

    /// A single-member decoder: it stops after one member, so trailing bytes stay unread.
    fn decode_single_member(gz: &[u8]) -> Vec<u8> {
        let mut decoder = GzDecoder::new(gz);
        let mut back = Vec::new();
        decoder.read_to_end(&mut back).unwrap();
        let mut rest = Vec::new();
        decoder.into_inner().read_to_end(&mut rest).unwrap();
        assert!(
            rest.is_empty(),
            "{} bytes after the first member",
            rest.len()
        );
        back
    }

    #[test]
    fn bytes_do_not_depend_on_threads_or_write_sizes() {
        let data = sample(5 * BLOCK + 12_345);
        let one = encode(&data, 6, 1, 1 << 20);
        for (threads, chunk) in [(2, 7_777), (3, BLOCK), (8, 100_000), (2, 1)] {
            if chunk == 1 {
                // Byte-by-byte writes on a smaller input keep the test fast.
                let small = &data[..BLOCK + 5];
                assert_eq!(encode(small, 6, 1, 4096), encode(small, 6, threads, chunk));
                continue;
            }
            assert_eq!(one, encode(&data, 6, threads, chunk), "threads {threads}");
        }
        assert_eq!(decode_single_member(&one), data);
    }

    #[test]
    fn empty_tiny_and_exact_block_inputs_round_trip() {
        for len in [0, 1, WINDOW, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK] {
            let data = sample(len);
            for level in [0, 1, 6, 9] {
                let gz = encode(&data, level, 2, 50_000);
                assert_eq!(&gz[..3], &[0x1f, 0x8b, 8]);
                assert_eq!(decode_single_member(&gz), data, "len {len} level {level}");
                let isize = u32::from_le_bytes(gz[gz.len() - 4..].try_into().unwrap());
                assert_eq!(isize as usize, len);
            }
        }
    }

    #[test]
    fn zstd_bytes_do_not_depend_on_workers() {
        // Several of zstd's jobs (each a few MiB at level 3) so the workers really split it.
        let data = sample(24 << 20);
        let encode_zstd = |threads| {
            let mut enc = zstd_encoder(Vec::new(), 3, threads).unwrap();
            enc.write_all(&data).unwrap();
            enc.finish().unwrap()
        };
        let one = encode_zstd(1);
        assert_eq!(one, encode_zstd(2));
        assert_eq!(one, encode_zstd(5));
        assert_eq!(zstd::decode_all(&one[..]).unwrap(), data);
    }

    #[test]
    fn the_window_carries_across_blocks() {
        // The same random 64 KiB twice: the second copy straddles a block boundary and is
        // found only through the dictionary; without it the output would be about twice as big.
        let mut state = 1u64;
        let chunk: Vec<u8> = (0..64 * 1024)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                (state >> 56) as u8
            })
            .collect();
        let mut data = vec![b'x'; BLOCK - 20_000];
        data.extend_from_slice(&chunk[..30_000]);
        data.extend_from_slice(&chunk[..30_000]);
        let gz = encode(&data, 6, 2, 4096);
        assert_eq!(decode_single_member(&gz), data);
        assert!(gz.len() < 40_000, "{} bytes: the window was lost", gz.len());
    }
}
