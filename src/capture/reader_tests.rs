//! The reader read every way (in buffers of any length, on the parsing thread or a read-ahead
//! one) gives the same frames, secrets, summary and error: synthetic captures built to cut
//! records, headers and secrets blocks at buffer ends, truncate them anywhere and fail reads.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::*;
use crate::capture::input_from_bytes;

/// What a read showed, in order: frames (number, time, link type, wire length, bytes) and
/// secrets blocks, then the summary (or the error that stopped it at once).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Event {
    Frame(u64, i64, i32, u32, Vec<u8>),
    Secrets(u32, Vec<u8>),
}

/// Records every event and keeps the chunks of the last frames for a while, like workers
/// that lag behind; checks when it lets them go that no kept chunk was overwritten meanwhile.
#[derive(Default)]
pub(super) struct Record {
    pub events: Vec<Event>,
    kept: std::collections::VecDeque<(Arc<Vec<u8>>, FrameSlot, usize)>,
}

/// Frames whose chunks [`Record`] keeps.
const KEPT_FRAMES: usize = 40;

impl Record {
    fn check_oldest(&mut self) {
        if let Some((chunk, slot, i)) = self.kept.pop_front() {
            let seen = match self.events.get(i) {
                Some(Event::Frame(_, _, _, _, data)) => &data[..],
                _ => &[],
            };
            assert!(
                slot.frame(&chunk).data == seen,
                "frame {} overwritten",
                slot.number
            );
        }
    }
}

impl ChunkSink for Record {
    fn chunk(&mut self, chunk: &Arc<Vec<u8>>, frames: &[FrameSlot]) {
        for s in frames {
            assert!(
                s.start <= s.end && s.end <= chunk.len(),
                "slot out of its chunk"
            );
            let f = s.frame(chunk);
            let ev = Event::Frame(f.number, f.ts.0, f.linktype.0, f.orig_len, f.data.to_vec());
            self.events.push(ev);
            self.kept
                .push_back((Arc::clone(chunk), *s, self.events.len() - 1));
            if self.kept.len() > KEPT_FRAMES {
                self.check_oldest();
            }
        }
    }
    fn secrets(&mut self, secrets_type: u32, data: &[u8]) {
        self.events
            .push(Event::Secrets(secrets_type, data.to_vec()));
    }
}

/// Reads `src` as `opts` say: the events and the outcome (summary or error) as text.
pub(super) fn read_with(src: InputSource, opts: ReadOptions) -> (Vec<Event>, String) {
    let mut rec = Record::default();
    let outcome = match read_capture_chunks_with(src, &mut rec, opts) {
        Ok(s) => format!("{s:?}"),
        Err(e) => format!("Err({e:?})"),
    };
    while !rec.kept.is_empty() {
        rec.check_oldest();
    }
    (rec.events, outcome)
}

fn read_bytes(bytes: &[u8], opts: ReadOptions) -> (Vec<Event>, String) {
    match input_from_bytes("t", bytes.to_vec()) {
        Ok(src) => read_with(src, opts),
        // A compressed stream too short to start decompressing.
        Err(e) => (Vec::new(), format!("Open({e:?})")),
    }
}

/// The ways of reading compared: tiny buffers (every record and header cut), small ones, the
/// default, each on the parsing thread and read ahead, and the whole input in one buffer.
pub(super) fn ways(len: usize) -> Vec<ReadOptions> {
    let mut out = Vec::new();
    let lens = if len <= 100_000 {
        [1, 7, 64, 1000, CHUNK_LEN, len.max(1)]
    } else {
        [
            1000,
            4096,
            65536,
            CHUNK_LEN,
            3 * CHUNK_LEN + 1,
            len.min(MAX_BLOCK_LEN),
        ]
    };
    for chunk_len in lens {
        for ahead in [ReadAhead::Off, ReadAhead::Bytes, ReadAhead::Frames] {
            out.push(ReadOptions { chunk_len, ahead });
        }
    }
    out
}

/// Every way gives what the default sequential read gives; that is returned.
fn same_every_way(bytes: &[u8]) -> (Vec<Event>, String) {
    same_ways(bytes, ways(bytes.len()))
}

/// These ways give what the default sequential read gives; that is returned.
fn same_ways(bytes: &[u8], ways: Vec<ReadOptions>) -> (Vec<Event>, String) {
    let want = read_bytes(bytes, ReadOptions::default());
    for opts in ways {
        let got = read_bytes(bytes, opts);
        assert!(got.1 == want.1, "{opts:?}: {} vs {}", got.1, want.1);
        assert!(got.0 == want.0, "{opts:?}: events differ");
    }
    want
}

/// Short buffers: 3, 64 and 1000 bytes on the calling thread, 64 and 1000 read (and framed)
/// ahead (the threads hand over the same buffers; tiny ones are slow to test that way).
fn short_ways() -> Vec<ReadOptions> {
    [
        (3, ReadAhead::Off),
        (64, ReadAhead::Off),
        (1000, ReadAhead::Off),
        (64, ReadAhead::Bytes),
        (1000, ReadAhead::Bytes),
        (64, ReadAhead::Frames),
        (1000, ReadAhead::Frames),
    ]
    .into_iter()
    .map(|(chunk_len, ahead)| ReadOptions { chunk_len, ahead })
    .collect()
}

/// Where to cut a capture whose records start at `starts`: at and around every record start
/// and inside its header, and every `stride` bytes.
fn cuts(starts: &[usize], len: usize, stride: usize) -> Vec<usize> {
    let mut out: Vec<usize> = (0..len).step_by(stride).collect();
    for &s in starts {
        for d in [
            0, 1, 2, 3, 4, 5, 7, 8, 9, 11, 12, 13, 15, 16, 17, 20, 24, 28, 32,
        ] {
            out.push(s + d);
        }
        out.push(s.saturating_sub(1));
    }
    out.push(len);
    out.retain(|c| *c <= len);
    out.sort_unstable();
    out.dedup();
    out
}

/// A classic pcap header (little-endian, microseconds, Ethernet).
pub(super) fn pcap_head() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&4u16.to_le_bytes());
    v.extend_from_slice(&[0; 8]);
    v.extend_from_slice(&65535u32.to_le_bytes());
    v.extend_from_slice(&1u32.to_le_bytes());
    v
}

/// A pcap record: timestamp, captured length `incl` (which may lie), wire length, data.
fn pcap_record(v: &mut Vec<u8>, ts: u32, incl: u32, data: &[u8]) {
    v.extend_from_slice(&ts.to_le_bytes());
    v.extend_from_slice(&(ts * 7 % 1_000_000).to_le_bytes());
    v.extend_from_slice(&incl.to_le_bytes());
    v.extend_from_slice(&(data.len() as u32 + 3).to_le_bytes());
    v.extend_from_slice(data);
}

/// A pcap of records of the given lengths, with their start offsets.
fn pcap_of(lens: &[usize]) -> (Vec<u8>, Vec<usize>) {
    let mut v = pcap_head();
    let mut starts = Vec::new();
    for (i, len) in lens.iter().enumerate() {
        starts.push(v.len());
        let data: Vec<u8> = (0..*len).map(|j| (i * 31 + j) as u8).collect();
        pcap_record(&mut v, i as u32, *len as u32, &data);
    }
    (v, starts)
}

/// A pcapng block of either byte order: type, body padded to 4, lengths at both ends.
fn ng_block(be: bool, kind: u32, body: &[u8]) -> Vec<u8> {
    let u32b = |x: u32| if be { x.to_be_bytes() } else { x.to_le_bytes() };
    let mut body = body.to_vec();
    while body.len() % 4 != 0 {
        body.push(0);
    }
    let len = (12 + body.len()) as u32;
    let mut b = u32b(kind).to_vec();
    b.extend_from_slice(&u32b(len));
    b.extend_from_slice(&body);
    b.extend_from_slice(&u32b(len));
    b
}

fn ng_shb(be: bool) -> Vec<u8> {
    let mut body = if be {
        0x1a2b_3c4du32.to_be_bytes().to_vec()
    } else {
        0x1a2b_3c4du32.to_le_bytes().to_vec()
    };
    body.extend_from_slice(&if be { [0, 1, 0, 0] } else { [1, 0, 0, 0] });
    body.extend_from_slice(&u64::MAX.to_le_bytes());
    ng_block(be, 0x0a0d_0d0a, &body)
}

/// An interface: link type, and `tsresol` option (1 byte) when given.
fn ng_idb(be: bool, linktype: u16, tsresol: Option<u8>) -> Vec<u8> {
    let u16b = |x: u16| if be { x.to_be_bytes() } else { x.to_le_bytes() };
    let mut body = u16b(linktype).to_vec();
    body.extend_from_slice(&[0, 0]);
    body.extend_from_slice(&if be {
        65535u32.to_be_bytes()
    } else {
        65535u32.to_le_bytes()
    });
    if let Some(r) = tsresol {
        body.extend_from_slice(&u16b(9));
        body.extend_from_slice(&u16b(1));
        body.extend_from_slice(&[r, 0, 0, 0]);
        body.extend_from_slice(&[0; 4]);
    }
    ng_block(be, 1, &body)
}

fn ng_epb(be: bool, if_id: u32, ts: u64, data: &[u8]) -> Vec<u8> {
    let u32b = |x: u32| if be { x.to_be_bytes() } else { x.to_le_bytes() };
    let mut body = u32b(if_id).to_vec();
    body.extend_from_slice(&u32b((ts >> 32) as u32));
    body.extend_from_slice(&u32b(ts as u32));
    body.extend_from_slice(&u32b(data.len() as u32));
    body.extend_from_slice(&u32b(data.len() as u32 + 10));
    body.extend_from_slice(data);
    ng_block(be, 6, &body)
}

fn ng_dsb(be: bool, data: &[u8]) -> Vec<u8> {
    let u32b = |x: u32| if be { x.to_be_bytes() } else { x.to_le_bytes() };
    let mut body = u32b(0x544c_534b).to_vec();
    body.extend_from_slice(&u32b(data.len() as u32));
    body.extend_from_slice(data);
    ng_block(be, 10, &body)
}

/// Two sections (little- then big-endian), interfaces of different link types and
/// timestamp resolutions, packets of many sizes, simple packets, secrets blocks between
/// packets and an unknown block.
fn multi_section_pcapng() -> Vec<u8> {
    pcapng_of(40, 20)
}

/// [`multi_section_pcapng`] with `first` packets in the first section and `second` in the
/// second.
fn pcapng_of(first: u64, second: u64) -> Vec<u8> {
    let mut v = ng_shb(false);
    v.extend(ng_idb(false, 1, None));
    v.extend(ng_idb(false, 101, Some(9)));
    for i in 0..first {
        let data: Vec<u8> = (0..(i * 37 % 300 + 1)).map(|j| (i + j) as u8).collect();
        v.extend(ng_epb(
            false,
            (i % 2) as u32,
            1_700_000_000_000_000 + i,
            &data,
        ));
        if i % 13 == 5 {
            v.extend(ng_dsb(
                false,
                format!("CLIENT_RANDOM {i:064x} {i:096x}\n").as_bytes(),
            ));
        }
    }
    v.extend(ng_block(false, 3, &[9, 0, 0, 0, 1, 2, 3, 4, 5])); // simple packet
    v.extend(ng_block(false, 0x0bad, &[0xee; 77])); // unknown
    v.extend(ng_shb(true));
    v.extend(ng_idb(true, 113, Some(6)));
    for i in 0..second {
        let data: Vec<u8> = (0..(i * 101 % 1500 + 14)).map(|j| (i ^ j) as u8).collect();
        v.extend(ng_epb(true, 0, 1_700_000_000_000_000 + i * 3, &data));
    }
    v.extend(ng_dsb(true, b"secrets at the very end"));
    v
}

#[test]
fn pcap_read_every_way_gives_the_same_frames() {
    let lens: Vec<usize> = (0..300).map(|i| i * 53 % 1600).collect();
    let (bytes, _) = pcap_of(&lens);
    let (events, outcome) = same_every_way(&bytes);
    assert_eq!(events.len(), 300);
    assert!(outcome.contains("error: None"), "{outcome}");
}

#[test]
fn pcapng_sections_interfaces_and_secrets_read_every_way_alike() {
    let bytes = multi_section_pcapng();
    let (events, outcome) = same_every_way(&bytes);
    assert!(outcome.contains("error: None"), "{outcome}");
    let frames = events
        .iter()
        .filter(|e| matches!(e, Event::Frame(..)))
        .count();
    assert_eq!(frames, 61);
    // Secrets keep their place among the frames; the second section's link type applies.
    assert!(
        matches!(events[6], Event::Secrets(0x544c_534b, _)),
        "{:?}",
        events[6]
    );
    assert!(matches!(events.last(), Some(Event::Secrets(..))));
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Frame(_, _, 113, _, _))));
    // Nanosecond interface: frame 2's fraction is 1_700_000_000_000_001 ns.
    assert!(events.contains(&Event::Frame(
        2,
        1_700_000_000_000_001,
        101,
        48,
        (0..38u64).map(|j| (1 + j) as u8).collect()
    )));
}

#[test]
fn truncated_anywhere_reads_the_same_every_way() {
    let (pcap, starts) = pcap_of(&[60, 0, 1514, 3, 700, 90]);
    // Around every record start and header field, with one-byte buffers too.
    for cut in cuts(&starts, pcap.len(), 7) {
        let mut ways = short_ways();
        ways.push(ReadOptions {
            chunk_len: 1,
            ahead: [ReadAhead::Off, ReadAhead::Bytes, ReadAhead::Frames][cut % 16 % 3],
        });
        same_ways(&pcap[..cut], ways);
    }
    // A pcapng (two sections, secrets) around every block start and header field.
    let ng = pcapng_of(14, 4);
    for cut in cuts(&block_starts(&ng), ng.len(), 17) {
        same_ways(&ng[..cut], short_ways());
    }
    // The truncated record is reported where it starts.
    for (i, &s) in starts.iter().enumerate().skip(1) {
        let (events, outcome) = read_bytes(&pcap[..s + 9], ReadOptions::ahead(ReadAhead::Bytes));
        assert_eq!(events.len(), i);
        assert!(
            outcome.contains(&format!("what: \"packet record\", offset: {s} }}")),
            "{outcome}"
        );
    }
}

/// Where each block of a little-endian pcapng starts (big-endian sections: lengths swapped).
fn block_starts(ng: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut be = false;
    while let Some(h) = ng.get(at..at + 12) {
        out.push(at);
        if h[..4] == [0x0a, 0x0d, 0x0d, 0x0a] {
            be = h[8..12] == [0x1a, 0x2b, 0x3c, 0x4d];
        }
        let len: [u8; 4] = h[4..8].try_into().unwrap_or_default();
        let len = if be {
            u32::from_be_bytes(len)
        } else {
            u32::from_le_bytes(len)
        };
        at += len.max(12) as usize;
    }
    out
}

/// A reader that fails after `ok` bytes (and keeps failing).
struct FailAfter {
    data: io::Cursor<Vec<u8>>,
    ok: usize,
}

impl Read for FailAfter {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let pos = self.data.position() as usize;
        if pos >= self.ok {
            return Err(io::Error::other("disk on fire"));
        }
        let n = buf.len().min(self.ok - pos);
        self.data.read(&mut buf[..n])
    }
}

fn failing_source(bytes: &[u8], ok: usize) -> InputSource {
    InputSource {
        name: "f".into(),
        reader: Box::new(FailAfter {
            data: io::Cursor::new(bytes.to_vec()),
            ok,
        }),
        compression: None,
        head: bytes.get(..4.min(ok)).unwrap_or(&[]).to_vec(),
    }
}

#[test]
fn a_read_error_delivers_every_complete_record_before_it_every_way() {
    let (bytes, starts) = pcap_of(&[100, 1400, 5, 2000, 64, 64, 900]);
    for ok in cuts(&starts, bytes.len(), 23) {
        let want = read_with(failing_source(&bytes, ok), ReadOptions::default());
        for chunk_len in [1, 7, 300, 4096] {
            let aheads = if chunk_len > 7 || ok % 8 == 0 {
                &[ReadAhead::Off, ReadAhead::Bytes, ReadAhead::Frames][..]
            } else {
                &[ReadAhead::Off]
            };
            for &ahead in aheads {
                let opts = ReadOptions { chunk_len, ahead };
                let got = read_with(failing_source(&bytes, ok), opts);
                assert!(got == want, "ok {ok}, {opts:?}: {} vs {}", got.1, want.1);
            }
        }
        if ok < 24 {
            assert!(want.1.contains("stream (read error)"), "{ok}: {}", want.1);
            continue;
        }
        // Every record complete before the failure, and the error where the next starts.
        let ends = starts.iter().skip(1).copied().chain([bytes.len()]);
        let complete = ends.filter(|end| *end <= ok).count();
        assert_eq!(want.0.len(), complete, "ok {ok}");
        let at = starts.get(complete).copied().unwrap_or(bytes.len());
        assert!(
            want.1.contains(&format!(
                "what: \"compressed stream or read\", offset: {at} }}"
            )),
            "ok {ok}: {}",
            want.1
        );
    }
}

#[test]
fn huge_record_lengths_are_malformed_wherever_the_stream_ends() {
    for incl in [u32::MAX, 0x8000_0000, 100 << 20, (64 << 20) - 15] {
        let (mut bytes, _) = pcap_of(&[60, 60]);
        let at = bytes.len();
        pcap_record(&mut bytes, 9, incl, &[0x45; 64]);
        for tail in [0, 5000] {
            let mut b = bytes.clone();
            b.extend(std::iter::repeat(0u8).take(tail));
            let (events, outcome) = same_every_way(&b);
            assert_eq!(events.len(), 2);
            assert!(
                outcome.contains("record larger than 64 MiB")
                    && outcome.contains(&format!("offset: {at} }}")),
                "{incl}: {outcome}"
            );
        }
    }
    // A pcapng block claiming 200 MiB.
    let mut ng = ng_shb(false);
    ng.extend(ng_idb(false, 1, None));
    let at = ng.len();
    ng.extend_from_slice(&[6, 0, 0, 0, 0, 0, 0, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0]);
    let (_, outcome) = same_every_way(&ng);
    assert!(outcome.contains(&format!("offset: {at} }}")), "{outcome}");
}

#[test]
fn a_record_larger_than_a_buffer_is_assembled_from_several() {
    // 3 MiB frames across 1 MiB buffers, and 5 kB frames across 1000-byte ones.
    let (bytes, _) = pcap_of(&[3 << 20, 10, 3 << 20]);
    let (events, outcome) = same_every_way(&bytes);
    assert_eq!(events.len(), 3);
    assert!(outcome.contains("error: None"), "{outcome}");
    let (bytes, _) = pcap_of(&[5000; 50]);
    same_every_way(&bytes);
}

#[test]
fn not_captures_and_short_headers_fail_the_same_every_way() {
    let (pcap, _) = pcap_of(&[10]);
    let ng = multi_section_pcapng();
    let inputs: [&[u8]; 7] = [
        b"",
        b"ab",
        b"GET / HTTP/1.1\r\n\r\n",
        &pcap[..3],
        &pcap[..20],
        &ng[..11],
        &ng[..27],
    ];
    for bytes in inputs {
        let (events, outcome) = same_every_way(bytes);
        assert!(events.is_empty());
        assert!(outcome.starts_with("Err("), "{outcome}");
    }
}

#[test]
fn compressed_input_reads_the_same_every_way_whole_and_truncated() {
    use std::io::Write;
    let (bytes, _) = pcap_of(&(0..200).map(|i| i * 29 % 900).collect::<Vec<_>>());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&bytes).expect("in memory");
    let gz = gz.finish().expect("in memory");
    let zst = zstd::encode_all(&bytes[..], 3).expect("in memory");
    for packed in [gz, zst] {
        let (events, _) = same_every_way(&packed);
        assert_eq!(events.len(), 200);
        for cut in (1..packed.len()).step_by(packed.len() / 12) {
            same_ways(&packed[..cut], short_ways());
        }
    }
}

/// An endless stream: a pcap header, then garbage. Says when it is dropped.
struct Endless {
    sent: usize,
    dropped: Arc<AtomicBool>,
}

impl Read for Endless {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let head = pcap_head();
        for b in buf.iter_mut() {
            *b = head.get(self.sent).copied().unwrap_or(0xff);
            self.sent += 1;
        }
        Ok(buf.len())
    }
}

impl Drop for Endless {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

#[test]
fn the_read_ahead_thread_stops_when_parsing_stops_early() {
    for ahead in [ReadAhead::Bytes, ReadAhead::Frames] {
        let dropped = Arc::new(AtomicBool::new(false));
        let src = InputSource {
            name: "endless".into(),
            reader: Box::new(Endless {
                sent: 0,
                dropped: Arc::clone(&dropped),
            }),
            compression: None,
            head: pcap_head()[..4].to_vec(),
        };
        // 0xffffffff-byte records: malformed at once, while the reader would go on for ever.
        let (events, outcome) = read_with(src, ReadOptions::ahead(ahead));
        assert!(events.is_empty());
        assert!(outcome.contains("record larger than 64 MiB"), "{outcome}");
        let t0 = std::time::Instant::now();
        while !dropped.load(Ordering::SeqCst) {
            assert!(
                t0.elapsed().as_secs() < 20,
                "{ahead:?}: the reader is still reading"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
