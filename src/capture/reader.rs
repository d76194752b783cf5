//! Streaming pcap / pcapng reading, numbering frames like Wireshark.
//!
//! The stream is read in buffers of [`CHUNK_LEN`] bytes; every complete record in a buffer is
//! parsed with pcap-parser's slice parsers into [`FrameSlot`]s, and the buffer goes to a
//! [`ChunkSink`] as it is, behind an `Arc`, so worker threads can share it without copying
//! frames. A record cut by a buffer's end is assembled in a small buffer of its own (the tail
//! of one buffer and the head of the next, or of several for a record larger than a buffer,
//! up to [`MAX_BLOCK_LEN`]) and handed to the sink as a chunk of its own, in order. Buffers
//! that no sink holds any more are reused.
//!
//! The reading (`Read::read`, so also decompression) happens on the calling thread, or
//! ([`ReadAhead`]) on a thread of its own that fills buffers a few ahead of the parsing
//! ([`ReadAhead::Bytes`]), or that also parses them and sends the frames found
//! ([`ReadAhead::Frames`]). Every way hands the parser the same bytes and the sink the same
//! chunks, so what comes out is the same: frames, secrets and where they fall among the
//! frames, the summary and every error with its offset, whatever the buffer length. The
//! rules that make it so:
//! - a record is complete or not by its own bytes: one cut by a buffer's end is parsed once the
//!   parser has the bytes it asks for;
//! - a record (or block) longer than [`MAX_BLOCK_LEN`] is malformed, as soon as its header says
//!   so, even when the stream ends before it would;
//! - when reading fails (a corrupt compressed stream, an I/O error), every complete record read
//!   before is delivered and the error is reported where the first incomplete one starts.
//!
//! One exception to "whatever the buffer length": where a corrupt (not merely truncated)
//! compressed stream stops depends on the read sizes, as the decompressor drops what it
//! decoded in the call that fails. The same buffer length read every way still agrees.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::Arc;

use pcap_parser::nom;
use pcap_parser::nom::IResult;
use pcap_parser::pcap::{
    parse_pcap_frame, parse_pcap_frame_be, parse_pcap_frame_modified, parse_pcap_header,
    LegacyPcapBlock,
};
use pcap_parser::pcapng::{parse_block_be, parse_block_le, parse_sectionheaderblock, Block};
use pcap_parser::PcapError;

use super::{CaptureError, Frame, InputSource, LinkType, Timestamp};

/// Bytes read at a time (a chunk).
pub const CHUNK_LEN: usize = 1 << 20;
/// Largest capture record or block accepted (a bigger one is reported as malformed).
pub const MAX_BLOCK_LEN: usize = 64 << 20;
/// Spare buffers kept for reuse while sinks still hold others.
const MAX_POOLED: usize = 32;
/// Buffers the read-ahead thread fills before it waits for the parser.
const READ_AHEAD_BUFFERS: usize = 4;

/// Receives what a capture holds, one frame at a time, in file order.
pub trait FrameSink {
    /// One packet record (every record counts as a frame, decodable or not).
    fn frame(&mut self, frame: &Frame<'_>);
    /// A pcapng Decryption Secrets Block (type, data), e.g. an embedded TLS key log.
    fn secrets(&mut self, _secrets_type: u32, _data: &[u8]) {}
}

/// Where a frame lies in a chunk, with its record's metadata.
#[derive(Debug, Clone, Copy)]
pub struct FrameSlot {
    /// 1-based frame number.
    pub number: u64,
    /// Capture time.
    pub ts: Timestamp,
    /// Link type of the interface.
    pub linktype: LinkType,
    /// Start of the captured bytes in the chunk.
    pub start: usize,
    /// End (exclusive) of the captured bytes in the chunk.
    pub end: usize,
    /// Length on the wire.
    pub orig_len: u32,
}

impl FrameSlot {
    /// The frame, borrowing its bytes from `chunk` (the buffer the slot was made for).
    pub fn frame<'a>(&self, chunk: &'a [u8]) -> Frame<'a> {
        Frame {
            number: self.number,
            ts: self.ts,
            linktype: self.linktype,
            data: chunk.get(self.start..self.end).unwrap_or(&[]),
            orig_len: self.orig_len,
        }
    }
}

/// Receives what a capture holds a chunk at a time, in file order.
pub trait ChunkSink {
    /// The frames found in `chunk`, in order; the chunk may be kept (cloned) by the sink.
    fn chunk(&mut self, chunk: &Arc<Vec<u8>>, frames: &[FrameSlot]);
    /// A pcapng Decryption Secrets Block (type, data); frames before it came first.
    fn secrets(&mut self, _secrets_type: u32, _data: &[u8]) {}
}

/// Adapts a [`FrameSink`] to chunks.
struct PerFrame<'s>(&'s mut dyn FrameSink);

impl ChunkSink for PerFrame<'_> {
    fn chunk(&mut self, chunk: &Arc<Vec<u8>>, frames: &[FrameSlot]) {
        for slot in frames {
            self.0.frame(&slot.frame(chunk));
        }
    }
    fn secrets(&mut self, secrets_type: u32, data: &[u8]) {
        self.0.secrets(secrets_type, data);
    }
}

/// Which work on a capture another thread does ahead of the calling thread, which runs the
/// sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadAhead {
    /// None: the calling thread reads, parses and runs the sink.
    #[default]
    Off,
    /// Reading (and decompressing) into buffers, a few ahead; the calling thread parses them.
    Bytes,
    /// Reading and parsing: the calling thread gets the frames found, a few buffers ahead.
    Frames,
}

/// How a capture is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    /// Bytes read at a time: the length of the buffers handed to the sink (1 to
    /// [`MAX_BLOCK_LEN`]; [`CHUNK_LEN`] by default, smaller in tests).
    pub chunk_len: usize,
    /// What a thread of its own does ahead of the sink.
    pub ahead: ReadAhead,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions::ahead(ReadAhead::Off)
    }
}

impl ReadOptions {
    /// The default buffers, with `ahead` done on a thread of its own.
    pub fn ahead(ahead: ReadAhead) -> Self {
        ReadOptions {
            chunk_len: CHUNK_LEN,
            ahead,
        }
    }
}

/// What reading a capture produced besides the frames.
#[derive(Debug)]
pub struct CaptureSummary {
    /// "pcap" or "pcapng".
    pub format: &'static str,
    /// Compression of the input, if any.
    pub compression: Option<&'static str>,
    /// Number of frames delivered.
    pub frames: u64,
    /// Bytes of captured frame data delivered.
    pub frame_bytes: u64,
    /// Bytes of the (decompressed) capture consumed.
    pub stream_bytes: u64,
    /// Why reading stopped early, if it did; the frames before it were delivered.
    pub error: Option<CaptureError>,
}

/// One pcapng interface (or the legacy file header): link type and timestamp scale.
#[derive(Clone, Copy)]
struct Interface {
    linktype: LinkType,
    units_per_sec: u64,
    offset_secs: i64,
}

type LegacyParse = fn(&[u8]) -> IResult<&[u8], LegacyPcapBlock<'_>, PcapError<&[u8]>>;

/// The file format and the state its records are read with.
enum Format {
    Legacy {
        parse: LegacyParse,
        iface: Interface,
    },
    Ng {
        big_endian: bool,
        interfaces: Vec<Interface>,
    },
}

impl Format {
    fn record_name(&self) -> &'static str {
        match self {
            Format::Legacy { .. } => "packet record",
            Format::Ng { .. } => "pcapng block",
        }
    }
}

/// Reads every frame of `src` into `sink`. Fails only when the input is not a capture at
/// all; a capture that breaks off later yields `Ok` with `error` set.
pub fn read_capture(
    src: InputSource,
    sink: &mut dyn FrameSink,
) -> Result<CaptureSummary, CaptureError> {
    read_capture_with(src, sink, ReadOptions::default())
}

/// [`read_capture`] read as `opts` say (e.g. on a read-ahead thread); the same frames.
pub fn read_capture_with(
    src: InputSource,
    sink: &mut dyn FrameSink,
    opts: ReadOptions,
) -> Result<CaptureSummary, CaptureError> {
    read_capture_chunks_with(src, &mut PerFrame(sink), opts)
}

/// Like [`read_capture`], handing the sink whole chunks (for splitting across threads).
pub fn read_capture_chunks(
    src: InputSource,
    sink: &mut dyn ChunkSink,
) -> Result<CaptureSummary, CaptureError> {
    read_capture_chunks_with(src, sink, ReadOptions::default())
}

/// [`read_capture_chunks`] read as `opts` say; the same frames, in chunks of
/// `opts.chunk_len` bytes (and the records cut by their ends, each in a chunk of its own).
pub fn read_capture_chunks_with(
    src: InputSource,
    sink: &mut dyn ChunkSink,
    opts: ReadOptions,
) -> Result<CaptureSummary, CaptureError> {
    let InputSource {
        name,
        reader,
        compression,
        head: _,
    } = src;
    let chunk_len = opts.chunk_len.clamp(1, MAX_BLOCK_LEN);
    let input = Input {
        path: &name,
        compression,
    };
    let inline = |reader| InlineFeed {
        filler: Filler::new(reader, chunk_len),
        free: Vec::new(),
    };
    match opts.ahead {
        ReadAhead::Off => return parse_stream(&input, &mut inline(reader), sink),
        ReadAhead::Frames => return frames_ahead(&input, inline(reader), sink),
        ReadAhead::Bytes => {}
    }
    let (data_tx, data_rx) = mpsc::sync_channel(READ_AHEAD_BUFFERS);
    let (free_tx, free_rx) = mpsc::channel();
    // Not joined: once parsing stops (early, on a malformed record), the reader ends at its
    // next send, which may wait for a read of a pipe that is still open.
    let spawned = std::thread::Builder::new()
        .name("rdpdiag-read".into())
        .spawn(move || read_ahead(Filler::new(reader, chunk_len), &data_tx, &free_rx));
    if let Err(source) = spawned {
        return Err(CaptureError::Io { path: name, source });
    }
    let mut feed = AheadFeed {
        data: data_rx,
        free: free_tx,
    };
    parse_stream(&input, &mut feed, sink)
}

/// What the framing thread sends the calling thread, in order.
enum Framed {
    /// A chunk and the frames in it.
    Chunk(Arc<Vec<u8>>, Vec<FrameSlot>),
    /// A Decryption Secrets Block.
    Secrets(u32, Vec<u8>),
    /// Reading ended so.
    Done(Result<CaptureSummary, CaptureError>),
}

/// The framing thread's sink: forwards what it gets to the calling thread.
struct Forward {
    to: SyncSender<Framed>,
    /// Frame lists the calling thread is done with, for reuse.
    spare: Receiver<Vec<FrameSlot>>,
}

impl ChunkSink for Forward {
    fn chunk(&mut self, chunk: &Arc<Vec<u8>>, frames: &[FrameSlot]) {
        let mut list = self.spare.try_recv().unwrap_or_default();
        list.clear();
        list.extend_from_slice(frames);
        // A calling thread that is gone wants nothing more.
        let _ = self.to.send(Framed::Chunk(Arc::clone(chunk), list));
    }
    fn secrets(&mut self, secrets_type: u32, data: &[u8]) {
        let _ = self.to.send(Framed::Secrets(secrets_type, data.to_vec()));
    }
}

/// Reads and parses `feed` on a thread of its own, running `sink` on this one.
fn frames_ahead(
    input: &Input<'_>,
    mut feed: InlineFeed,
    sink: &mut dyn ChunkSink,
) -> Result<CaptureSummary, CaptureError> {
    let (to, from) = mpsc::sync_channel(READ_AHEAD_BUFFERS);
    let (spare_to, spare) = mpsc::channel();
    let path = input.path.to_string();
    let compression = input.compression;
    let spawned = std::thread::Builder::new()
        .name("rdpdiag-frame".into())
        .spawn(move || {
            let input = Input {
                path: &path,
                compression,
            };
            let mut forward = Forward { to, spare };
            let done = parse_stream(&input, &mut feed, &mut forward);
            let _ = forward.to.send(Framed::Done(done));
        });
    let thread = match spawned {
        Ok(t) => t,
        Err(source) => {
            return Err(CaptureError::Io {
                path: input.path.to_string(),
                source,
            })
        }
    };
    for framed in from {
        match framed {
            Framed::Chunk(chunk, frames) => {
                sink.chunk(&chunk, &frames);
                let _ = spare_to.send(frames);
            }
            Framed::Secrets(secrets_type, data) => sink.secrets(secrets_type, &data),
            Framed::Done(done) => {
                // It has nothing left to do but return.
                let _ = thread.join();
                return done;
            }
        }
    }
    // The thread ended without a word: it panicked.
    Err(CaptureError::Malformed {
        path: input.path.to_string(),
        what: "stream (framing thread failed)".into(),
        offset: 0,
    })
}

/// What one read of the stream gave.
enum Fetched {
    /// Bytes of the stream (a whole buffer's worth unless the stream ends or fails right
    /// after them).
    Data(Filled),
    /// The stream ended.
    End,
    /// Reading failed here (the error is not reported, only where it happened); the bytes
    /// before came as `Data`.
    Failed,
}

/// A buffer and where the stream's bytes lie in it: `buf[start..start + len]`.
struct Filled {
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl Filled {
    fn data(&self) -> &[u8] {
        self.buf
            .get(self.start..self.start + self.len)
            .unwrap_or(&[])
    }
}

/// Buffers are read into from an address that is a multiple of this: the kernel's copy from
/// the page cache runs at a third of its speed when the destination sits 16 bytes past a
/// page boundary (as a large `Vec` from malloc does) and the file offset on one.
const BUF_ALIGN: usize = 4096;

/// Fills buffers from a reader, one after the other, and remembers how the stream ended.
struct Filler {
    reader: Box<dyn Read + Send>,
    chunk_len: usize,
    ended: bool,
    failed: bool,
}

impl Filler {
    fn new(reader: Box<dyn Read + Send>, chunk_len: usize) -> Self {
        Filler {
            reader,
            chunk_len,
            ended: false,
            failed: false,
        }
    }

    /// The next bytes of the stream in `buf` (a spare buffer, or a new one), or how it ended.
    /// The bytes start at the first page boundary of the buffer.
    fn next(&mut self, buf: Option<Vec<u8>>) -> Fetched {
        if self.failed {
            self.failed = false;
            self.ended = true;
            return Fetched::Failed;
        }
        if self.ended {
            return Fetched::End;
        }
        let size = self.chunk_len + BUF_ALIGN - 1;
        let mut buf = buf
            .filter(|b| b.capacity() >= size)
            .unwrap_or_else(|| Vec::with_capacity(size));
        let start = (BUF_ALIGN - buf.as_ptr() as usize % BUF_ALIGN) % BUF_ALIGN;
        let (len, failed) = match buf.get_mut(start..start + self.chunk_len) {
            // A buffer filled before (a spare one): read over its bytes, a whole buffer at
            // a time.
            Some(space) => fill(&mut self.reader, space),
            // A new one (or one the stream ended in): the read appends to the vector, into
            // its spare capacity, which is not zeroed first; only the bytes before the page
            // boundary are.
            None => {
                buf.clear();
                buf.resize(start, 0);
                fill_spare(&mut self.reader, &mut buf, self.chunk_len)
            }
        };
        if failed {
            self.failed = true;
        } else if len < self.chunk_len {
            self.ended = true;
        }
        if len > 0 {
            return Fetched::Data(Filled { buf, start, len });
        }
        self.next(None)
    }
}

/// Reads into `buf` until it is full or the stream ends or fails; the bytes read, and whether
/// an error stopped it (the bytes before it are kept).
fn fill(reader: &mut dyn Read, buf: &mut [u8]) -> (usize, bool) {
    let mut filled = 0;
    while let Some(space) = buf.get_mut(filled..).filter(|s| !s.is_empty()) {
        match reader.read(space) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return (filled, true),
        }
    }
    (filled, false)
}

/// Like [`fill`], appending up to `want` bytes to `buf` (which has the capacity for them).
///
/// `read_to_end` through `take` reads into the vector's spare capacity without zeroing it
/// first where the reader supports it (`File`, `Cursor`, stdin and std's `BufReader` over
/// them do, through `read_buf`); other readers (decompressors) get std's default, which
/// zeroes the bytes it reads into once. It starts with small reads and doubles them, so a
/// spare buffer, already initialised, is read into by [`fill`] instead.
fn fill_spare(reader: &mut dyn Read, buf: &mut Vec<u8>, want: usize) -> (usize, bool) {
    let before = buf.len();
    // Retries on `Interrupted` and keeps what came before an error, as `fill` does.
    let failed = reader.take(want as u64).read_to_end(buf).is_err();
    (buf.len().saturating_sub(before), failed)
}

/// Where the parser gets its buffers from, and gives back those no sink holds any more.
trait Feed {
    fn next(&mut self) -> Fetched;
    fn give_back(&mut self, buf: Vec<u8>);
}

/// Reads on the parsing thread.
struct InlineFeed {
    filler: Filler,
    free: Vec<Vec<u8>>,
}

impl Feed for InlineFeed {
    fn next(&mut self) -> Fetched {
        let spare = self.free.pop();
        self.filler.next(spare)
    }
    fn give_back(&mut self, buf: Vec<u8>) {
        if self.free.len() < MAX_POOLED {
            self.free.push(buf);
        }
    }
}

/// Takes the buffers a read-ahead thread filled.
struct AheadFeed {
    data: Receiver<Fetched>,
    free: Sender<Vec<u8>>,
}

impl Feed for AheadFeed {
    fn next(&mut self) -> Fetched {
        match self.data.recv() {
            Ok(f) => f,
            // The reading thread is gone without saying how the stream ended.
            Err(_) => Fetched::Failed,
        }
    }
    fn give_back(&mut self, buf: Vec<u8>) {
        // A reader that has finished needs no more buffers.
        let _ = self.free.send(buf);
    }
}

/// The read-ahead thread: fills buffers (spare ones first) until the stream ends or fails,
/// or the parser stops listening.
fn read_ahead(mut filler: Filler, data: &SyncSender<Fetched>, free: &Receiver<Vec<u8>>) {
    loop {
        let fetched = filler.next(free.try_recv().ok());
        let last = !matches!(fetched, Fetched::Data(_));
        if data.send(fetched).is_err() || last {
            return;
        }
    }
}

/// The input's name and its compression.
struct Input<'a> {
    path: &'a str,
    compression: Option<&'static str>,
}

/// Why parsing a buffer stopped.
enum Stop {
    /// Every complete record was parsed; the next one needs this many bytes in all
    /// (`None`: unknown, at least one more).
    NeedMore(Option<usize>),
    /// An unreadable record: reading ends with this error.
    Failed(CaptureError),
}

/// The parsing side: the format state, the summary, and the record being assembled across
/// buffers.
struct Parser<'a> {
    path: &'a str,
    format: Format,
    summary: CaptureSummary,
    slots: Vec<FrameSlot>,
    /// The head of a record cut by a buffer's end (and the bytes after it taken so far).
    carry: Vec<u8>,
    /// How many bytes the carried record needs in all, if known.
    carry_need: Option<usize>,
    /// Buffers a sink still holds, given back once it lets go.
    held: VecDeque<Arc<Vec<u8>>>,
}

/// What taking bytes from a buffer into the carried record led to.
enum Carried {
    /// The record (and any after it in the carry) was parsed; the buffer goes on from here.
    Done(usize),
    /// The whole buffer went into the record, which needs more.
    NeedMore,
    /// Reading ends with this error.
    Failed(CaptureError),
}

/// Parses the stream `feed` gives into `sink`.
fn parse_stream(
    input: &Input<'_>,
    feed: &mut dyn Feed,
    sink: &mut dyn ChunkSink,
) -> Result<CaptureSummary, CaptureError> {
    let path = input.path;
    // The format, from as many bytes as it takes (one buffer, but for a large pcapng section
    // header or tiny buffers).
    let mut first: Option<Filled> = None;
    let mut ending: Option<Fetched> = None;
    let (format, header_len) = loop {
        match feed.next() {
            Fetched::Data(more) => {
                first = Some(match first.take() {
                    None => more,
                    Some(acc) => {
                        let mut buf = acc.data().to_vec();
                        buf.extend_from_slice(more.data());
                        feed.give_back(acc.buf);
                        feed.give_back(more.buf);
                        let len = buf.len();
                        Filled { buf, start: 0, len }
                    }
                });
            }
            other => ending = Some(other),
        }
        let data = first.as_ref().map_or(&[][..], Filled::data);
        let eof = matches!(ending, Some(Fetched::End));
        match detect_format(path, data, eof)? {
            Some(found) => break found,
            None if ending.is_none() && data.len() <= MAX_BLOCK_LEN => {}
            None if ending.is_none() => {
                return Err(CaptureError::Malformed {
                    path: path.to_string(),
                    what: format!("file header larger than {} MiB", MAX_BLOCK_LEN >> 20),
                    offset: 0,
                })
            }
            None => {
                return Err(CaptureError::Malformed {
                    path: path.to_string(),
                    what: "stream (read error)".into(),
                    offset: 0,
                })
            }
        }
    };
    let mut parser = Parser {
        path,
        summary: CaptureSummary {
            format: match format {
                Format::Legacy { .. } => "pcap",
                Format::Ng { .. } => "pcapng",
            },
            compression: input.compression,
            frames: 0,
            frame_bytes: 0,
            stream_bytes: 0,
            error: None,
        },
        format,
        slots: Vec::with_capacity(2048),
        carry: Vec::new(),
        carry_need: None,
        held: VecDeque::new(),
    };
    // Stream offset of the current buffer's first byte.
    let mut base: u64 = 0;
    // Where parsing starts in it: a pcapng file's section header is parsed again as the
    // first block.
    let mut skip = header_len;
    let mut next = first.map(Fetched::Data);
    loop {
        let fetched = match next.take().or_else(|| ending.take()) {
            Some(f) => f,
            None => feed.next(),
        };
        let Filled { buf, start, len } = match fetched {
            Fetched::Data(filled) => filled,
            Fetched::End => {
                if !parser.carry.is_empty() {
                    parser.summary.error = Some(CaptureError::Truncated {
                        path: path.to_string(),
                        what: parser.format.record_name(),
                        offset: parser.summary.stream_bytes,
                    });
                }
                break;
            }
            Fetched::Failed => {
                parser.summary.error = Some(read_error(path, parser.summary.stream_bytes));
                break;
            }
        };
        let end = start + len;
        if !parser.carry.is_empty() {
            match parser.take_into_carry(buf.get(start..end).unwrap_or(&[]), sink) {
                Carried::Done(at) => skip = at,
                Carried::NeedMore => {
                    base += len as u64;
                    feed.give_back(buf);
                    continue;
                }
                Carried::Failed(e) => {
                    parser.summary.error = Some(e);
                    break;
                }
            }
        }
        let shared = Arc::new(buf);
        let mut pos = start + skip;
        let stop = parse_records(
            &shared,
            end,
            &mut pos,
            &mut parser.format,
            &mut parser.summary,
            &mut parser.slots,
            sink,
            path,
            (base, start),
        );
        if !parser.slots.is_empty() {
            sink.chunk(&shared, &parser.slots);
            parser.slots.clear();
        }
        parser.summary.stream_bytes = base + (pos - start) as u64;
        let cut = match stop {
            Stop::Failed(e) => {
                parser.summary.error = Some(e);
                break;
            }
            Stop::NeedMore(need) => need,
        };
        if let Err(e) = parser.carry_over(shared.get(pos..end).unwrap_or(&[]), cut) {
            parser.summary.error = Some(e);
            break;
        }
        base += len as u64;
        skip = 0;
        parser.recycle(shared, feed);
    }
    Ok(parser.summary)
}

impl Parser<'_> {
    /// Starts assembling the record cut at the end of a buffer (`tail`, possibly empty),
    /// which needs `need` bytes in all if known.
    fn carry_over(&mut self, tail: &[u8], need: Option<usize>) -> Result<(), CaptureError> {
        self.carry.clear();
        self.carry.extend_from_slice(tail);
        self.carry_need = need;
        self.check_carry_size()
    }

    /// A record larger than [`MAX_BLOCK_LEN`] is malformed (wherever the stream ends).
    fn check_carry_size(&self) -> Result<(), CaptureError> {
        let need = self.carry_need.unwrap_or(0).max(self.carry.len());
        if need > MAX_BLOCK_LEN {
            return Err(CaptureError::Malformed {
                path: self.path.to_string(),
                what: format!("record larger than {} MiB", MAX_BLOCK_LEN >> 20),
                offset: self.summary.stream_bytes,
            });
        }
        Ok(())
    }

    /// Takes the bytes the carried record needs from the head of `data` (the next buffer)
    /// and parses it once it is complete.
    fn take_into_carry(&mut self, data: &[u8], sink: &mut dyn ChunkSink) -> Carried {
        let before = self.carry.len();
        let mut used = 0;
        loop {
            let want = match self.carry_need {
                Some(need) => need.saturating_sub(self.carry.len()).max(1),
                // Unknown: grow geometrically, so a record costs few parses.
                None => self.carry.len().max(64),
            };
            let rest = data.get(used..).unwrap_or(&[]);
            let take = want.min(rest.len());
            if take == 0 {
                return Carried::NeedMore;
            }
            self.carry
                .extend_from_slice(rest.get(..take).unwrap_or(&[]));
            used += take;
            let carry = Arc::new(std::mem::take(&mut self.carry));
            let mut pos = 0;
            let at = self.summary.stream_bytes;
            let stop = parse_records(
                &carry,
                carry.len(),
                &mut pos,
                &mut self.format,
                &mut self.summary,
                &mut self.slots,
                sink,
                self.path,
                (at, 0),
            );
            if !self.slots.is_empty() {
                sink.chunk(&carry, &self.slots);
                self.slots.clear();
            }
            // Reuse the carry's allocation unless a sink keeps it.
            let mut carry = Arc::try_unwrap(carry).unwrap_or_default();
            if pos > 0 {
                // The record is done (and any complete one after it): the buffer goes on
                // where the carry ends.
                self.summary.stream_bytes = at + pos as u64;
                carry.clear();
                self.carry = carry;
                self.carry_need = None;
                return match stop {
                    Stop::Failed(e) => Carried::Failed(e),
                    Stop::NeedMore(_) => Carried::Done(pos.saturating_sub(before)),
                };
            }
            self.carry = carry;
            match stop {
                Stop::Failed(e) => return Carried::Failed(e),
                Stop::NeedMore(need) => self.carry_need = need,
            }
            if let Err(e) = self.check_carry_size() {
                return Carried::Failed(e);
            }
        }
    }

    /// Gives `buf` back for reuse once no sink holds it, with any others let go since.
    fn recycle(&mut self, buf: Arc<Vec<u8>>, feed: &mut dyn Feed) {
        match Arc::try_unwrap(buf) {
            Ok(v) => feed.give_back(v),
            Err(kept) => {
                self.held.push_back(kept);
                if self.held.len() > MAX_POOLED {
                    self.held.pop_front();
                }
            }
        }
        if self.held.front().is_some_and(|b| Arc::strong_count(b) == 1) {
            let held = std::mem::take(&mut self.held);
            for b in held {
                match Arc::try_unwrap(b) {
                    Ok(v) => feed.give_back(v),
                    Err(kept) => self.held.push_back(kept),
                }
            }
        }
        // A large record's buffer is not kept for the small ones.
        if self.carry.capacity() > 4 * CHUNK_LEN {
            self.carry = Vec::new();
        }
    }
}

/// The format from the first bytes, and the length of a legacy file header (0 for pcapng,
/// whose section header is read as a block); `None` while more bytes could tell.
fn detect_format(
    path: &str,
    data: &[u8],
    eof: bool,
) -> Result<Option<(Format, usize)>, CaptureError> {
    if data.is_empty() {
        if !eof {
            return Ok(None);
        }
        return Err(CaptureError::NotACapture {
            path: path.to_string(),
            magic: "an empty file".into(),
        });
    }
    let incomplete = || {
        if eof {
            Err(CaptureError::Truncated {
                path: path.to_string(),
                what: "file header",
                offset: 0,
            })
        } else {
            Ok(None)
        }
    };
    let not_capture = || CaptureError::NotACapture {
        path: path.to_string(),
        magic: hex_head(data.get(..4).unwrap_or(data)),
    };
    if data.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
        return match parse_sectionheaderblock(data) {
            Ok((_, shb)) => Ok(Some((
                Format::Ng {
                    big_endian: shb.big_endian(),
                    interfaces: Vec::new(),
                },
                0,
            ))),
            Err(nom::Err::Incomplete(_)) => incomplete(),
            Err(_) => Err(not_capture()),
        };
    }
    match parse_pcap_header(data) {
        Ok((rest, h)) => {
            let parse: LegacyParse = if h.is_modified_format() {
                parse_pcap_frame_modified
            } else if h.is_bigendian() {
                parse_pcap_frame_be
            } else {
                parse_pcap_frame
            };
            let iface = Interface {
                linktype: LinkType(h.network.0),
                units_per_sec: if h.is_nanosecond_precision() {
                    1_000_000_000
                } else {
                    1_000_000
                },
                offset_secs: 0,
            };
            Ok(Some((
                Format::Legacy { parse, iface },
                data.len() - rest.len(),
            )))
        }
        // Too few bytes yet to tell a capture's magic from anything else.
        Err(nom::Err::Incomplete(_)) if data.len() < 4 && !eof => Ok(None),
        Err(nom::Err::Incomplete(_)) if is_capture_magic(data) => incomplete(),
        Err(_) => Err(not_capture()),
    }
}

/// Parses every complete record of `chunk[*pos..filled]`, adding frames to `slots` (and
/// handing secrets blocks to the sink, after the frames before them). `origin` is a stream
/// offset and the index in `chunk` of the byte there.
#[allow(clippy::too_many_arguments)]
fn parse_records(
    chunk: &Arc<Vec<u8>>,
    filled: usize,
    pos: &mut usize,
    format: &mut Format,
    summary: &mut CaptureSummary,
    slots: &mut Vec<FrameSlot>,
    sink: &mut dyn ChunkSink,
    path: &str,
    origin: (u64, usize),
) -> Stop {
    let all = chunk.get(..filled).unwrap_or(&[]);
    let malformed = |what: String, at: usize| {
        Stop::Failed(CaptureError::Malformed {
            path: path.to_string(),
            what,
            offset: origin.0 + at.saturating_sub(origin.1) as u64,
        })
    };
    loop {
        let data = all.get(*pos..).unwrap_or(&[]);
        if data.is_empty() {
            return Stop::NeedMore(None);
        }
        let need = |n: nom::Needed| match n {
            nom::Needed::Size(n) => Stop::NeedMore(Some(data.len().saturating_add(n.get()))),
            nom::Needed::Unknown => Stop::NeedMore(None),
        };
        let consumed = match format {
            Format::Legacy { parse, iface } => match parse(data) {
                Ok((rest, b)) => {
                    let nanos = i64::from(b.ts_sec)
                        .saturating_mul(1_000_000_000)
                        .saturating_add(scale_to_nanos(u64::from(b.ts_usec), iface.units_per_sec));
                    let frame = Captured::new(all, b.data, b.caplen, b.origlen);
                    push_slot(slots, summary, iface.linktype, Timestamp(nanos), frame);
                    data.len() - rest.len()
                }
                Err(nom::Err::Incomplete(n)) => return need(n),
                Err(_) => return malformed("pcap block".into(), *pos),
            },
            Format::Ng {
                big_endian,
                interfaces,
            } => {
                let parsed = if *big_endian {
                    parse_block_be(data)
                } else {
                    parse_block_le(data)
                };
                let (rest, block) = match parsed {
                    Ok(ok) => ok,
                    Err(nom::Err::Incomplete(n)) => return need(n),
                    Err(nom::Err::Error(PcapError::HeaderNotRecognized))
                    | Err(nom::Err::Failure(PcapError::HeaderNotRecognized)) => {
                        return malformed("block header".into(), *pos)
                    }
                    Err(_) => return malformed("pcapng block".into(), *pos),
                };
                let consumed = data.len() - rest.len();
                let fallback = Interface {
                    linktype: LinkType::ETHERNET,
                    units_per_sec: 1_000_000,
                    offset_secs: 0,
                };
                match block {
                    Block::SectionHeader(shb) => {
                        *big_endian = shb.big_endian();
                        interfaces.clear();
                    }
                    Block::InterfaceDescription(idb) => interfaces.push(Interface {
                        linktype: LinkType(idb.linktype.0),
                        units_per_sec: idb.ts_resolution().unwrap_or(1_000_000).max(1),
                        offset_secs: idb.ts_offset(),
                    }),
                    Block::EnhancedPacket(epb) => {
                        let iface = interfaces
                            .get(epb.if_id as usize)
                            .copied()
                            .unwrap_or(fallback);
                        let units = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                        let secs = (units / iface.units_per_sec) as i64;
                        let frac = scale_to_nanos(units % iface.units_per_sec, iface.units_per_sec);
                        let nanos = secs
                            .saturating_add(iface.offset_secs)
                            .saturating_mul(1_000_000_000)
                            .saturating_add(frac);
                        let frame = Captured::new(all, epb.data, epb.caplen, epb.origlen);
                        push_slot(slots, summary, iface.linktype, Timestamp(nanos), frame);
                    }
                    Block::SimplePacket(spb) => {
                        let iface = interfaces.first().copied().unwrap_or(fallback);
                        let frame = Captured::new(all, spb.data, spb.origlen, spb.origlen);
                        push_slot(slots, summary, iface.linktype, Timestamp(0), frame);
                    }
                    Block::DecryptionSecrets(dsb) => {
                        if !slots.is_empty() {
                            sink.chunk(chunk, slots);
                            slots.clear();
                        }
                        let len = (dsb.secrets_len as usize).min(dsb.data.len());
                        sink.secrets(dsb.secrets_type.0, dsb.data.get(..len).unwrap_or(&[]));
                    }
                    _ => {}
                }
                consumed
            }
        };
        *pos += consumed;
    }
}

/// Where `inner` (a subslice of `outer`) starts in `outer`.
fn offset_in(outer: &[u8], inner: &[u8]) -> usize {
    (inner.as_ptr() as usize)
        .saturating_sub(outer.as_ptr() as usize)
        .min(outer.len())
}

/// A record's captured bytes as a range of the chunk, and its length on the wire.
struct Captured {
    start: usize,
    end: usize,
    orig_len: u32,
}

impl Captured {
    /// `data` (a subslice of `chunk`) cut to the record's captured length `caplen`.
    fn new(chunk: &[u8], data: &[u8], caplen: u32, orig_len: u32) -> Self {
        let start = offset_in(chunk, data);
        Captured {
            start,
            end: start + (caplen as usize).min(data.len()),
            orig_len,
        }
    }
}

fn push_slot(
    slots: &mut Vec<FrameSlot>,
    summary: &mut CaptureSummary,
    linktype: LinkType,
    ts: Timestamp,
    frame: Captured,
) {
    summary.frames += 1;
    summary.frame_bytes += (frame.end - frame.start) as u64;
    slots.push(FrameSlot {
        number: summary.frames,
        ts,
        linktype,
        start: frame.start,
        end: frame.end,
        orig_len: frame.orig_len,
    });
}

fn read_error(path: &str, offset: u64) -> CaptureError {
    CaptureError::Truncated {
        path: path.to_string(),
        what: "compressed stream or read",
        offset,
    }
}

/// Converts `units` of a clock ticking `per_sec` times a second into nanoseconds.
fn scale_to_nanos(units: u64, per_sec: u64) -> i64 {
    let n = u128::from(units) * 1_000_000_000 / u128::from(per_sec.max(1));
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn is_capture_magic(head: &[u8]) -> bool {
    const MAGICS: [[u8; 4]; 5] = [
        [0xd4, 0xc3, 0xb2, 0xa1],
        [0xa1, 0xb2, 0xc3, 0xd4],
        [0x4d, 0x3c, 0xb2, 0xa1],
        [0xa1, 0xb2, 0x3c, 0x4d],
        [0x0a, 0x0d, 0x0d, 0x0a],
    ];
    MAGICS.iter().any(|m| head.starts_with(m))
}

fn hex_head(head: &[u8]) -> String {
    if head.is_empty() {
        return "nothing".into();
    }
    head.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
#[path = "reader_tests.rs"]
mod equivalence_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::input_from_bytes;

    /// A classic pcap with `n` Ethernet frames of `len` bytes each.
    fn pcap(n: usize, len: usize) -> Vec<u8> {
        let mut v = super::equivalence_tests::pcap_head();
        for i in 0..n {
            v.extend_from_slice(&(i as u32).to_le_bytes());
            v.extend_from_slice(&0u32.to_le_bytes());
            v.extend_from_slice(&(len as u32).to_le_bytes());
            v.extend_from_slice(&(len as u32).to_le_bytes());
            v.extend((0..len).map(|j| (i + j) as u8));
        }
        v
    }

    struct Collect(Vec<(u64, i64, Vec<u8>)>);
    impl FrameSink for Collect {
        fn frame(&mut self, f: &Frame<'_>) {
            self.0.push((f.number, f.ts.0, f.data.to_vec()));
        }
    }

    #[test]
    fn records_across_chunk_boundaries_arrive_whole_and_in_order() {
        // 3 000 frames of 1 000 bytes: ~3 MB, so records straddle several 1 MiB chunks.
        let bytes = pcap(3000, 1000);
        let mut sink = Collect(Vec::new());
        let src = input_from_bytes("t.pcap", bytes).unwrap();
        let s = read_capture(src, &mut sink).unwrap();
        assert!(s.error.is_none());
        assert_eq!(s.frames, 3000);
        for (i, (n, ts, data)) in sink.0.iter().enumerate() {
            assert_eq!(*n, i as u64 + 1);
            assert_eq!(*ts, i as i64 * 1_000_000_000);
            assert_eq!(data.len(), 1000);
            assert_eq!(data[0], i as u8);
            assert_eq!(data[999], (i + 999) as u8);
        }
    }

    #[test]
    fn a_record_larger_than_a_chunk_grows_the_buffer() {
        let bytes = pcap(3, 3 << 20);
        let mut sink = Collect(Vec::new());
        let s = read_capture(input_from_bytes("big.pcap", bytes).unwrap(), &mut sink).unwrap();
        assert!(s.error.is_none(), "{:?}", s.error);
        assert_eq!(sink.0.len(), 3);
        assert!(sink.0.iter().all(|f| f.2.len() == 3 << 20));
    }

    #[test]
    fn truncation_is_reported_at_the_record_start() {
        let mut bytes = pcap(2000, 1000);
        let full = bytes.len();
        bytes.truncate(full - 10);
        let mut sink = Collect(Vec::new());
        let s = read_capture(input_from_bytes("cut.pcap", bytes).unwrap(), &mut sink).unwrap();
        assert_eq!(sink.0.len(), 1999);
        match s.error {
            Some(CaptureError::Truncated { offset, what, .. }) => {
                assert_eq!(what, "packet record");
                assert_eq!(offset as usize, full - 1016);
            }
            other => panic!("{other:?}"),
        }
    }

    /// Keeps every chunk, like worker threads that have not caught up yet.
    struct Hoard(Vec<(Arc<Vec<u8>>, FrameSlot)>, Vec<Vec<u8>>);
    impl ChunkSink for Hoard {
        fn chunk(&mut self, chunk: &Arc<Vec<u8>>, frames: &[FrameSlot]) {
            for s in frames {
                self.0.push((Arc::clone(chunk), *s));
                self.1.push(s.frame(chunk).data.to_vec());
            }
        }
    }

    #[test]
    fn chunks_kept_by_the_sink_are_never_overwritten() {
        let bytes = pcap(5000, 700);
        let mut sink = Hoard(Vec::new(), Vec::new());
        read_capture_chunks(input_from_bytes("h.pcap", bytes).unwrap(), &mut sink).unwrap();
        assert_eq!(sink.1.len(), 5000);
        // Re-read every frame from the kept chunks after reading ended: same bytes.
        for (i, ((chunk, slot), seen)) in sink.0.iter().zip(&sink.1).enumerate() {
            assert_eq!(slot.number, i as u64 + 1);
            assert_eq!(slot.frame(chunk).data, &seen[..]);
            assert_eq!(seen[0], i as u8);
        }
    }
}
