//! One capture file read and framed by two threads at once.
//!
//! Chunk `c` of the file is the bytes from `c * chunk_len` on; any thread can read it (a
//! positioned read, `pread`) without waiting for the chunks before it. Framing a chunk does
//! need what framing the chunks before it found: where the chunk's first record starts
//! (records run across chunk ends), the format's state (pcapng sections and interfaces) and
//! the frame count. That state is a [`Baton`], handed from the framer of one chunk to the
//! framer of the next; framing is quick next to reading and analysing, so threads that
//! frame alternate chunks share the reading and keep each other busy.
//!
//! A record cut by a chunk's end is read whole by the framer of that chunk (a second
//! positioned read, into a buffer of its own) and handed to the sink as a chunk of its own,
//! as the stream reader does; the next chunk's framing starts after it. What comes out —
//! frames, their numbers, secrets blocks, the summary and every error with its offset — is
//! what [`super::read_capture_chunks`] gives for the same file.

use std::fs::File;
use std::io;
use std::sync::Arc;

use super::reader::{detect_format, parse_records, Format, Stop, BUF_ALIGN};
use super::{CaptureError, CaptureSummary, ChunkSink, FrameSlot, MAX_BLOCK_LEN};

/// A capture file open for positioned reads by several threads.
pub struct SplitFile {
    file: File,
    path: String,
    chunk_len: usize,
}

/// What framing one chunk hands the framing of the next: where its first record starts, the
/// format's state and the summary so far.
pub struct Baton {
    /// Stream offset of the next record.
    pos: u64,
    format: Format,
    summary: CaptureSummary,
    /// Reading is over (the file ended or an error stopped it).
    ended: bool,
}

impl Baton {
    /// Whether reading is over: no chunk from here on has frames.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The summary of the whole read (once [`ended`](Self::ended)).
    pub fn into_summary(self) -> CaptureSummary {
        self.summary
    }

    fn fail(&mut self, e: CaptureError) {
        self.summary.error = Some(e);
        self.ended = true;
    }
}

/// Opens `path` to be read by several threads: `None` when it cannot be (stdin, a pipe, a
/// compressed file, a header the first chunk does not hold), or when it is not a capture at
/// all — the stream reader then reads it and says why.
pub fn open_split(path: &str, chunk_len: usize) -> Option<(SplitFile, Baton)> {
    if path == "-" {
        return None;
    }
    let file = File::open(path).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let chunk_len = chunk_len.clamp(1, MAX_BLOCK_LEN);
    let mut head = vec![0; chunk_len.max(1 << 16)];
    let got = read_full(&file, &mut head, 0).ok()?;
    head.truncate(got);
    let eof = got < chunk_len.max(1 << 16);
    let (format, header_len) = detect_format(path, &head, eof).ok()??;
    let summary = CaptureSummary {
        format: match format {
            Format::Legacy { .. } => "pcap",
            Format::Ng { .. } => "pcapng",
        },
        compression: None,
        frames: 0,
        frame_bytes: 0,
        stream_bytes: 0,
        error: None,
    };
    let split = SplitFile {
        file,
        path: path.to_string(),
        chunk_len,
    };
    let baton = Baton {
        pos: header_len as u64,
        format,
        summary,
        ended: false,
    };
    Some((split, baton))
}

/// Reads into `buf` from `offset` until it is full or the file ends: the bytes read.
fn read_full(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut filled = 0;
    while let Some(space) = buf.get_mut(filled..).filter(|s| !s.is_empty()) {
        match read_at(file, space, offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

/// The bytes of a chunk as read: `buf[start..start + len]` (`len` short of the chunk length
/// where the file ends), or the read's failure.
pub type ChunkRead = io::Result<(usize, usize)>;

impl SplitFile {
    /// The chunk length.
    pub fn chunk_len(&self) -> usize {
        self.chunk_len
    }

    /// Reads chunk `c` into `buf` (grown to hold a chunk at a page boundary the first time;
    /// the kernel's copy is slow to a destination that is not aligned).
    pub fn read(&self, c: u64, buf: &mut Vec<u8>) -> ChunkRead {
        let size = self.chunk_len + BUF_ALIGN - 1;
        if buf.len() < size {
            buf.resize(size, 0);
        }
        let start = (BUF_ALIGN - buf.as_ptr() as usize % BUF_ALIGN) % BUF_ALIGN;
        let offset = c.saturating_mul(self.chunk_len as u64);
        let space = buf
            .get_mut(start..start + self.chunk_len)
            .unwrap_or_default();
        let len = read_full(&self.file, space, offset)?;
        Ok((start, len))
    }

    /// Frames chunk `c` (read into `chunk` as `got` says) from where `baton` says its first
    /// record starts, handing frames and secrets to `sink` in order, and leaves in `baton`
    /// what framing chunk `c + 1` needs. Nothing happens once the baton says reading ended.
    pub fn frame(
        &self,
        c: u64,
        chunk: &Arc<Vec<u8>>,
        got: ChunkRead,
        baton: &mut Baton,
        sink: &mut dyn ChunkSink,
    ) {
        if baton.ended {
            return;
        }
        let base = c.saturating_mul(self.chunk_len as u64);
        let Ok((start, len)) = got else {
            baton.fail(read_failed(&self.path, baton.pos));
            return;
        };
        let end = base + len as u64;
        let short = len < self.chunk_len;
        if baton.pos >= end || baton.pos < base {
            // A record read whole by the chunk before covers this one, or the file ends.
            baton.summary.stream_bytes = baton.pos;
            baton.ended |= short;
            return;
        }
        let mut pos = start + (baton.pos - base) as usize;
        let mut slots = Vec::new();
        let stop = parse_records(
            chunk,
            start + len,
            &mut pos,
            &mut baton.format,
            &mut baton.summary,
            &mut slots,
            sink,
            &self.path,
            (base, start),
        );
        deliver(chunk, &mut slots, sink);
        baton.pos = base + (pos - start) as u64;
        baton.summary.stream_bytes = baton.pos;
        match stop {
            Stop::Failed(e) => baton.fail(e),
            Stop::NeedMore(_) if pos == start + len => baton.ended |= short,
            // A record whose header claims too much is malformed, wherever the file ends.
            Stop::NeedMore(Some(need)) if need > MAX_BLOCK_LEN => {
                let offset = baton.pos;
                baton.fail(self.too_large(offset));
            }
            Stop::NeedMore(_) if short => {
                let what = baton.format.record_name();
                let offset = baton.pos;
                baton.fail(self.truncated(what, offset));
            }
            Stop::NeedMore(need) => self.carry(need, baton, sink),
        }
    }

    /// Reads and frames the record at `baton.pos` that runs past the chunk's end (`need`:
    /// its length, if its header is complete in the chunk).
    fn carry(&self, mut need: Option<usize>, baton: &mut Baton, sink: &mut dyn ChunkSink) {
        let at = baton.pos;
        let mut buf: Vec<u8> = Vec::new();
        loop {
            // Unknown (a header cut short): grow geometrically until the header tells.
            let want = need.unwrap_or_else(|| (buf.len() * 2).max(64));
            if want > MAX_BLOCK_LEN {
                baton.fail(self.too_large(at));
                return;
            }
            buf.resize(want, 0);
            let got = match read_full(&self.file, &mut buf, at) {
                Ok(n) => n,
                Err(_) => {
                    baton.fail(read_failed(&self.path, at));
                    return;
                }
            };
            buf.truncate(got);
            let carried = Arc::new(std::mem::take(&mut buf));
            let mut pos = 0;
            let mut slots = Vec::new();
            let stop = parse_records(
                &carried,
                got,
                &mut pos,
                &mut baton.format,
                &mut baton.summary,
                &mut slots,
                sink,
                &self.path,
                (at, 0),
            );
            deliver(&carried, &mut slots, sink);
            if pos > 0 {
                // The record is framed (and any whole one after it); the next chunk's framer
                // goes on from its end.
                baton.pos = at + pos as u64;
                baton.summary.stream_bytes = baton.pos;
                if let Stop::Failed(e) = stop {
                    baton.fail(e);
                }
                return;
            }
            match stop {
                Stop::Failed(e) => {
                    baton.fail(e);
                    return;
                }
                Stop::NeedMore(n) => need = n,
            }
            if got < want {
                let what = baton.format.record_name();
                baton.fail(self.truncated(what, at));
                return;
            }
            buf = Arc::try_unwrap(carried).unwrap_or_default();
        }
    }

    fn too_large(&self, offset: u64) -> CaptureError {
        CaptureError::Malformed {
            path: self.path.clone(),
            what: format!("record larger than {} MiB", MAX_BLOCK_LEN >> 20),
            offset,
        }
    }

    fn truncated(&self, what: &'static str, offset: u64) -> CaptureError {
        CaptureError::Truncated {
            path: self.path.clone(),
            what,
            offset,
        }
    }
}

/// Hands the frames found in `chunk` to the sink.
fn deliver(chunk: &Arc<Vec<u8>>, slots: &mut Vec<FrameSlot>, sink: &mut dyn ChunkSink) {
    if !slots.is_empty() {
        sink.chunk(chunk, slots);
        slots.clear();
    }
}

/// A read that failed at `offset` (reported as the stream reader reports one).
fn read_failed(path: &str, offset: u64) -> CaptureError {
    CaptureError::Truncated {
        path: path.to_string(),
        what: "compressed stream or read",
        offset,
    }
}
