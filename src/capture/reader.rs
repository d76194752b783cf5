//! Streaming pcap / pcapng reading, numbering frames like Wireshark.
//!
//! The reader owns its buffers: a chunk of the stream is read into a buffer, every complete
//! record in it is parsed with pcap-parser's slice parsers into [`FrameSlot`]s, and the chunk
//! goes to a [`ChunkSink`] behind an `Arc`, so worker threads can share it without copying
//! frames. A record cut by the chunk's end is carried over to the next buffer; buffers that
//! no worker holds any more are reused.

use std::io::Read;
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

/// Bytes read at a time (a chunk); grown for larger blocks up to [`MAX_BLOCK_LEN`].
const CHUNK_LEN: usize = 1 << 20;
/// Largest capture record or block accepted (a bigger one is reported as malformed).
pub const MAX_BLOCK_LEN: usize = 64 << 20;
/// Spare buffers kept for reuse while workers still hold others.
const MAX_POOLED: usize = 32;

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
    read_capture_chunks(src, &mut PerFrame(sink))
}

/// Why parsing a buffer stopped.
enum Stop {
    /// Every complete record was parsed; the next one needs this many bytes in all
    /// (`None`: unknown, at least one more).
    NeedMore(Option<usize>),
    /// An unreadable record: reading ends with this error.
    Failed(CaptureError),
}

/// Like [`read_capture`], handing the sink whole chunks (for splitting across threads).
pub fn read_capture_chunks(
    src: InputSource,
    sink: &mut dyn ChunkSink,
) -> Result<CaptureSummary, CaptureError> {
    let path = src.name.clone();
    let mut reader = src.reader;
    let mut buf = vec![0u8; CHUNK_LEN];
    let mut filled = match fill(&mut reader, &mut buf, 0) {
        Ok(n) => n,
        Err(_) => {
            return Err(CaptureError::Malformed {
                path,
                what: "stream (read error)".into(),
                offset: 0,
            })
        }
    };
    let mut eof = filled < buf.len();
    let head = buf.get(..filled).unwrap_or(&[]);
    let (mut format, header_len) = detect_format(&path, head, &src.head)?;
    let mut summary = CaptureSummary {
        format: match format {
            Format::Legacy { .. } => "pcap",
            Format::Ng { .. } => "pcapng",
        },
        compression: src.compression,
        frames: 0,
        frame_bytes: 0,
        stream_bytes: 0,
        error: None,
    };
    // A pcapng file's section header is parsed again as the first block.
    let mut pos = header_len;
    let mut base: u64 = 0;
    let mut slots: Vec<FrameSlot> = Vec::with_capacity(2048);
    let mut pool: Vec<Arc<Vec<u8>>> = Vec::new();
    loop {
        let shared = Arc::new(buf);
        let stop = parse_records(
            &shared,
            filled,
            &mut pos,
            &mut format,
            &mut summary,
            &mut slots,
            sink,
            &path,
            base,
        );
        if !slots.is_empty() {
            sink.chunk(&shared, &slots);
            slots.clear();
        }
        summary.stream_bytes = base + pos as u64;
        let needed = match stop {
            Stop::Failed(e) => {
                summary.error = Some(e);
                break;
            }
            Stop::NeedMore(n) => n,
        };
        let left = filled - pos;
        if eof {
            if left > 0 {
                summary.error = Some(CaptureError::Truncated {
                    path: path.clone(),
                    what: format.record_name(),
                    offset: summary.stream_bytes,
                });
            }
            break;
        }
        let want = match needed {
            Some(n) => n,
            // Size unknown: at least a byte more than what is at hand.
            None if left >= CHUNK_LEN => left.saturating_mul(2),
            None => CHUNK_LEN,
        };
        if want > MAX_BLOCK_LEN {
            summary.error = Some(CaptureError::Malformed {
                path: path.clone(),
                what: format!("record larger than {} MiB", MAX_BLOCK_LEN >> 20),
                offset: summary.stream_bytes,
            });
            break;
        }
        let cap = want.max(CHUNK_LEN);
        // The next buffer: this one again when no sink kept it, else a free one.
        buf = match Arc::try_unwrap(shared) {
            Ok(mut v) => {
                v.copy_within(pos..filled, 0);
                v
            }
            Err(shared) => {
                let mut v = take_free(&mut pool, cap);
                if let (Some(dst), Some(src)) = (v.get_mut(..left), shared.get(pos..filled)) {
                    dst.copy_from_slice(src);
                }
                pool.push(shared);
                if pool.len() > MAX_POOLED {
                    pool.remove(0);
                }
                v
            }
        };
        if buf.len() < cap {
            buf.resize(cap, 0);
        }
        base += pos as u64;
        pos = 0;
        filled = match fill(&mut reader, &mut buf, left) {
            Ok(n) => n,
            Err(_) => {
                summary.error = Some(read_error(&path, summary.stream_bytes));
                break;
            }
        };
        eof = filled < buf.len();
    }
    Ok(summary)
}

/// A buffer of at least `cap` bytes that no sink holds any more, or a new one.
fn take_free(pool: &mut Vec<Arc<Vec<u8>>>, cap: usize) -> Vec<u8> {
    if let Some(i) = pool
        .iter()
        .position(|b| Arc::strong_count(b) == 1 && b.len() >= cap)
    {
        if let Ok(v) = Arc::try_unwrap(pool.swap_remove(i)) {
            return v;
        }
    }
    vec![0u8; cap]
}

/// Reads into `buf[from..]` until it is full or the stream ends; returns the bytes held.
fn fill(reader: &mut dyn Read, buf: &mut [u8], from: usize) -> std::io::Result<usize> {
    let mut filled = from;
    while let Some(space) = buf.get_mut(filled..).filter(|s| !s.is_empty()) {
        match reader.read(space) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The format from the first bytes, and the length of a legacy file header (0 for pcapng,
/// whose section header is read as a block).
fn detect_format(path: &str, data: &[u8], head: &[u8]) -> Result<(Format, usize), CaptureError> {
    if data.is_empty() {
        return Err(CaptureError::NotACapture {
            path: path.to_string(),
            magic: "an empty file".into(),
        });
    }
    let truncated = || CaptureError::Truncated {
        path: path.to_string(),
        what: "file header",
        offset: 0,
    };
    let not_capture = || CaptureError::NotACapture {
        path: path.to_string(),
        magic: hex_head(head),
    };
    if data.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
        return match parse_sectionheaderblock(data) {
            Ok((_, shb)) => Ok((
                Format::Ng {
                    big_endian: shb.big_endian(),
                    interfaces: Vec::new(),
                },
                0,
            )),
            Err(nom::Err::Incomplete(_)) => Err(truncated()),
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
            Ok((Format::Legacy { parse, iface }, data.len() - rest.len()))
        }
        Err(nom::Err::Incomplete(_)) if is_capture_magic(head) => Err(truncated()),
        Err(_) => Err(not_capture()),
    }
}

/// Parses every complete record of `chunk[*pos..filled]`, adding frames to `slots` (and
/// handing secrets blocks to the sink, after the frames before them).
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
    base: u64,
) -> Stop {
    let all = chunk.get(..filled).unwrap_or(&[]);
    let malformed = |what: String, at: usize| {
        Stop::Failed(CaptureError::Malformed {
            path: path.to_string(),
            what,
            offset: base + at as u64,
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
        match format {
            Format::Legacy { parse, iface } => match parse(data) {
                Ok((rest, b)) => {
                    let nanos = i64::from(b.ts_sec)
                        .saturating_mul(1_000_000_000)
                        .saturating_add(scale_to_nanos(u64::from(b.ts_usec), iface.units_per_sec));
                    let frame = Captured::new(all, b.data, b.caplen, b.origlen);
                    push_slot(slots, summary, iface.linktype, Timestamp(nanos), frame);
                    *pos += data.len() - rest.len();
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
                *pos += consumed;
            }
        }
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
mod tests {
    use super::*;
    use crate::capture::input_from_bytes;

    /// A classic pcap with `n` Ethernet frames of `len` bytes each.
    fn pcap(n: usize, len: usize) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        v.extend_from_slice(&2u16.to_le_bytes());
        v.extend_from_slice(&4u16.to_le_bytes());
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&65535u32.to_le_bytes());
        v.extend_from_slice(&1u32.to_le_bytes());
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
