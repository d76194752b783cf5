//! In-order delivery of one TCP direction's bytes: out-of-order, retransmitted,
//! overlapping and missing segments, sequence wrap-around.
//!
//! Bytes are delivered as soon as they are contiguous (never held back until ACKed, which
//! would hide the last PDU before a failure). Out-of-order bytes are buffered up to a cap;
//! past it, or when the peer has acknowledged bytes the capture never showed, the hole is
//! declared a gap and delivery resumes after it. Overlapping copies that disagree
//! (retransmissions with different bytes) resolve to the first copy seen of each byte.

use std::collections::BTreeMap;

use super::FrameRef;

/// Default cap on buffered out-of-order bytes per direction.
pub const DEFAULT_MAX_BUFFERED: usize = 256 * 1024;

/// What the reassembler tells its consumer.
pub trait StreamSink {
    /// In-order bytes; `frame` is the frame that completed them.
    fn data(&mut self, bytes: &[u8], frame: FrameRef);
    /// `bytes` bytes are missing from the stream before the next delivered byte.
    fn gap(&mut self, bytes: u64, frame: FrameRef);
}

/// How a segment related to what was already delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    /// New bytes (delivered or buffered).
    New,
    /// Entirely before the delivery point: a retransmission or duplicate.
    Retransmission,
    /// Partly old, partly new.
    Overlap,
    /// Ahead of the delivery point: buffered.
    OutOfOrder,
    /// No payload.
    Empty,
}

#[derive(Debug)]
struct Pending {
    data: Vec<u8>,
    frame: FrameRef,
}

/// One direction's reassembly state.
#[derive(Debug)]
pub struct Reassembler {
    /// Next expected sequence number (`None` until the first segment or SYN).
    next_seq: Option<u32>,
    /// Stream offset of `next_seq` (bytes delivered plus gaps).
    next_offset: u64,
    /// Buffered future segments keyed by stream offset.
    pending: BTreeMap<u64, Pending>,
    pending_bytes: usize,
    max_buffered: usize,
    /// Bytes skipped as gaps.
    pub gap_bytes: u64,
    /// Whether bytes are still wanted (false: only sequence tracking, nothing buffered).
    pub wanted: bool,
}

impl Reassembler {
    /// A reassembler buffering at most `max_buffered` out-of-order bytes.
    pub fn new(max_buffered: usize) -> Self {
        Reassembler {
            next_seq: None,
            next_offset: 0,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            max_buffered,
            gap_bytes: 0,
            wanted: true,
        }
    }

    /// Sets the initial sequence number from a SYN (the first data byte is `isn + 1`).
    pub fn set_isn(&mut self, isn: u32) {
        if self.next_seq.is_none() {
            self.next_seq = Some(isn.wrapping_add(1));
        }
    }

    /// The next expected sequence number, if known.
    pub fn next_seq(&self) -> Option<u32> {
        self.next_seq
    }

    /// Bytes currently buffered out of order.
    pub fn buffered(&self) -> usize {
        self.pending_bytes
    }

    /// Signed distance from the delivery point to `seq`.
    fn delta(&self, next: u32, seq: u32) -> i64 {
        i64::from(seq.wrapping_sub(next) as i32)
    }

    /// Takes one segment's payload.
    pub fn segment(
        &mut self,
        seq: u32,
        payload: &[u8],
        frame: FrameRef,
        sink: &mut dyn StreamSink,
    ) -> SegmentKind {
        if payload.is_empty() {
            return SegmentKind::Empty;
        }
        // The common case: the next bytes in order, nothing buffered.
        if self.next_seq == Some(seq) && self.pending.is_empty() {
            self.deliver(payload, frame, sink);
            return SegmentKind::New;
        }
        let next = *self.next_seq.get_or_insert(seq);
        let delta = self.delta(next, seq);
        let len = payload.len() as i64;
        if delta + len <= 0 {
            return SegmentKind::Retransmission;
        }
        if delta <= 0 {
            let new = payload.get((-delta) as usize..).unwrap_or_default();
            if self.pending.is_empty() || !self.wanted {
                self.deliver(new, frame, sink);
            } else {
                // Bytes already buffered arrived first and win over this copy.
                self.buffer(self.next_offset, new, frame);
            }
            if !self.pending.is_empty() {
                self.drain(sink);
            }
            return if delta < 0 {
                SegmentKind::Overlap
            } else {
                SegmentKind::New
            };
        }
        // Future bytes: buffer unless unwanted or over the cap.
        let offset = self.next_offset + delta as u64;
        if self.wanted {
            self.buffer(offset, payload, frame);
        } else {
            // Nothing is buffered for unwanted streams: skip ahead at once.
            self.pending.clear();
            self.pending_bytes = 0;
            self.skip_to(offset, frame, sink);
            self.deliver(payload, frame, sink);
            return SegmentKind::OutOfOrder;
        }
        if self.pending_bytes > self.max_buffered {
            self.flush_gap(frame, sink);
        }
        SegmentKind::OutOfOrder
    }

    /// Buffers the bytes of `payload` (at stream `offset`) that no buffered segment holds
    /// yet: the first copy of a byte wins, and buffered segments never overlap.
    fn buffer(&mut self, offset: u64, payload: &[u8], frame: FrameRef) {
        let end = offset + payload.len() as u64;
        // Segments are disjoint, so only the last one starting before `offset` can cover it.
        let mut cur = self
            .pending
            .range(..offset)
            .next_back()
            .map_or(offset, |(&o, p)| offset.max(o + p.data.len() as u64));
        let mut pieces = Vec::new();
        for (&o, p) in self.pending.range(offset..end) {
            if o > cur {
                pieces.push((cur, o));
            }
            cur = cur.max(o + p.data.len() as u64);
        }
        if cur < end {
            pieces.push((cur, end));
        }
        for (start, stop) in pieces {
            let Some(bytes) = payload.get((start - offset) as usize..(stop - offset) as usize)
            else {
                continue;
            };
            self.pending_bytes += bytes.len();
            self.pending.insert(
                start,
                Pending {
                    data: bytes.to_vec(),
                    frame,
                },
            );
        }
    }

    /// Whether out-of-order bytes are buffered (an ACK can then declare a gap).
    #[inline]
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The peer acknowledged up to `ack`: bytes before it that were never seen are lost
    /// from the capture, so a hole before buffered data is declared a gap now.
    pub fn acked(&mut self, ack: u32, frame: FrameRef, sink: &mut dyn StreamSink) {
        let Some(next) = self.next_seq else { return };
        if self.delta(next, ack) > 0 && !self.pending.is_empty() {
            self.flush_gap(frame, sink);
        }
    }

    /// Declares the hole before the first buffered segment a gap and delivers what follows.
    pub fn flush_gap(&mut self, frame: FrameRef, sink: &mut dyn StreamSink) {
        while let Some((&offset, _)) = self.pending.first_key_value() {
            self.skip_to(offset, frame, sink);
            self.drain(sink);
        }
    }

    fn skip_to(&mut self, offset: u64, frame: FrameRef, sink: &mut dyn StreamSink) {
        if offset > self.next_offset {
            let missing = offset - self.next_offset;
            self.gap_bytes += missing;
            sink.gap(missing, frame);
            self.advance(missing);
        }
    }

    fn advance(&mut self, n: u64) {
        self.next_offset += n;
        if let Some(s) = self.next_seq.as_mut() {
            *s = s.wrapping_add(n as u32);
        }
    }

    fn deliver(&mut self, bytes: &[u8], frame: FrameRef, sink: &mut dyn StreamSink) {
        if bytes.is_empty() {
            return;
        }
        self.advance(bytes.len() as u64);
        if self.wanted {
            sink.data(bytes, frame);
        }
    }

    /// Delivers buffered segments that are now contiguous (trimming overlaps).
    fn drain(&mut self, sink: &mut dyn StreamSink) {
        while let Some(entry) = self.pending.first_entry() {
            let offset = *entry.key();
            if offset > self.next_offset {
                break;
            }
            let p = entry.remove();
            self.pending_bytes -= p.data.len();
            let skip = (self.next_offset - offset) as usize;
            if let Some(new) = p.data.get(skip..) {
                self.deliver(new, p.frame, sink);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Timestamp;
    use proptest::prelude::*;

    #[derive(Default)]
    struct Collect {
        bytes: Vec<u8>,
        gaps: u64,
    }
    impl StreamSink for Collect {
        fn data(&mut self, bytes: &[u8], _f: FrameRef) {
            self.bytes.extend_from_slice(bytes);
        }
        fn gap(&mut self, n: u64, _f: FrameRef) {
            self.gaps += n;
        }
    }
    fn f(n: u64) -> FrameRef {
        FrameRef {
            number: n,
            ts: Timestamp(0),
        }
    }

    #[test]
    fn out_of_order_retransmit_overlap_and_wrap() {
        let mut r = Reassembler::new(1024);
        let mut c = Collect::default();
        let isn = u32::MAX - 2; // first byte at u32::MAX - 1: wraps inside the stream
        r.set_isn(isn);
        let base = isn.wrapping_add(1);
        assert_eq!(
            r.segment(base.wrapping_add(4), b"efgh", f(2), &mut c),
            SegmentKind::OutOfOrder
        );
        assert_eq!(r.segment(base, b"abcd", f(3), &mut c), SegmentKind::New);
        assert_eq!(
            r.segment(base, b"abcd", f(4), &mut c),
            SegmentKind::Retransmission
        );
        assert_eq!(
            r.segment(base.wrapping_add(6), b"ghij", f(5), &mut c),
            SegmentKind::Overlap
        );
        assert_eq!(c.bytes, b"abcdefghij");
        assert_eq!(c.gaps, 0);
    }

    #[test]
    fn missing_bytes_become_a_gap_when_acked_or_over_cap() {
        let mut r = Reassembler::new(8);
        let mut c = Collect::default();
        r.segment(100, b"ab", f(1), &mut c);
        r.segment(105, b"xy", f(2), &mut c);
        r.acked(107, f(3), &mut c);
        assert_eq!(c.bytes, b"abxy");
        assert_eq!(c.gaps, 3);
        r.segment(117, b"0123456789", f(4), &mut c); // over the cap: gap of 10
        assert_eq!(c.gaps, 13);
        assert_eq!(c.bytes, b"abxy0123456789");
    }

    #[test]
    fn unwanted_stream_buffers_nothing() {
        let mut r = Reassembler::new(8);
        let mut c = Collect::default();
        r.wanted = false;
        r.segment(1, b"abc", f(1), &mut c);
        r.segment(10, b"def", f(2), &mut c);
        assert_eq!(r.buffered(), 0);
        assert!(c.bytes.is_empty());
    }

    /// One step of a model test: a segment (stream offset, bytes) or an ACK of an offset.
    #[derive(Debug, Clone)]
    enum Op {
        Seg(u64, Vec<u8>),
        Ack(u64),
    }

    /// Records every delivered byte and gap with the step that produced it.
    #[derive(Default)]
    struct Trace {
        step: usize,
        out: Vec<(Option<u8>, usize)>,
    }
    impl StreamSink for Trace {
        fn data(&mut self, bytes: &[u8], _f: FrameRef) {
            let step = self.step;
            self.out.extend(bytes.iter().map(|b| (Some(*b), step)));
        }
        fn gap(&mut self, n: u64, _f: FrameRef) {
            let step = self.step;
            self.out.extend((0..n).map(|_| (None, step)));
        }
    }

    /// A stream, cut into segments (some lost), plus duplicates and overlapping copies with
    /// conflicting bytes, all shuffled, with ACKs in between.
    fn ops() -> impl Strategy<Value = (u32, usize, Vec<Op>)> {
        (
            1usize..1500,
            prop::collection::vec((1usize..200, 0u8..10), 1..40),
            prop::collection::vec((0usize..1500, 1usize..300, any::<u8>(), 0u8..4), 0..12),
            prop::collection::vec((0usize..1600, 0usize..60), 0..6),
            prop_oneof![Just(u32::MAX), u32::MAX - 2000..=u32::MAX, any::<u32>()],
            prop_oneof![Just(usize::MAX), 16usize..2000],
            any::<u64>(),
        )
            .prop_flat_map(|(n, cuts, extra, acks, isn_hi, cap, seed)| {
                let stream: Vec<u8> = (0..n).map(|i| (i as u64 ^ seed) as u8).collect();
                let mut segs = Vec::new();
                let mut pos = 0;
                for (len, lost) in cuts.iter().cycle() {
                    if pos >= n {
                        break;
                    }
                    let end = (pos + len).min(n);
                    if *lost != 0 {
                        segs.push(Op::Seg(pos as u64, stream[pos..end].to_vec()));
                    }
                    pos = end;
                }
                for (start, len, xor, kind) in extra {
                    let start = start % n;
                    let end = (start + len).min(n);
                    let mut bytes = stream[start..end].to_vec();
                    if kind == 0 {
                        // A conflicting copy.
                        bytes.iter_mut().for_each(|b| *b ^= xor | 1);
                    }
                    segs.push(Op::Seg(start as u64, bytes));
                }
                segs.extend(acks.iter().map(|(at, _)| Op::Ack(*at as u64)));
                let isn = isn_hi.wrapping_sub(seed as u32 % 3000);
                (Just(isn), Just(cap), Just(segs).prop_shuffle())
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Against a naive model: each delivered byte is the first copy of that stream byte
        /// seen, a gap never covers a byte seen before it was declared, every byte up to the
        /// highest seen is delivered or a gap exactly once, and the cap holds.
        #[test]
        fn reassembler_matches_model((isn, cap, ops) in ops()) {
            let mut r = Reassembler::new(cap);
            r.set_isn(isn);
            let base = isn.wrapping_add(1);
            let mut t = Trace::default();
            // Model: the first copy of each stream byte and the step it arrived at.
            let mut first: Vec<Option<(u8, usize)>> = Vec::new();
            let mut high = 0u64;
            for (step, op) in ops.iter().enumerate() {
                t.step = step;
                match op {
                    Op::Seg(off, bytes) => {
                        let end = *off as usize + bytes.len();
                        if first.len() < end {
                            first.resize(end, None);
                        }
                        for (i, b) in bytes.iter().enumerate() {
                            first[*off as usize + i].get_or_insert((*b, step));
                        }
                        high = high.max(end as u64);
                        r.segment(base.wrapping_add(*off as u32), bytes, f(step as u64), &mut t);
                    }
                    Op::Ack(at) => r.acked(base.wrapping_add(*at as u32), f(step as u64), &mut t),
                }
                prop_assert!(r.buffered() <= cap);
            }
            t.step = ops.len();
            r.flush_gap(f(0), &mut t);
            prop_assert_eq!(r.buffered(), 0);
            prop_assert_eq!(t.out.len() as u64, high);
            let mut gaps = 0;
            for (pos, (got, step)) in t.out.iter().enumerate() {
                match (got, first[pos]) {
                    (Some(b), Some((want, _))) => prop_assert_eq!(*b, want, "byte {}", pos),
                    (Some(_), None) => prop_assert!(false, "byte {} delivered, never sent", pos),
                    (None, Some((_, seen))) => {
                        gaps += 1;
                        prop_assert!(seen >= *step, "byte {} seen at {} but a gap at {}", pos, seen, step);
                    }
                    (None, None) => gaps += 1,
                }
            }
            prop_assert_eq!(r.gap_bytes, gaps);
            if cap == usize::MAX && !ops.iter().any(|o| matches!(o, Op::Ack(_))) {
                // Nothing forces a gap early: only never-sent bytes are gaps.
                let never = first.iter().take(high as usize).filter(|b| b.is_none()).count();
                prop_assert_eq!(gaps, never as u64);
            }
            prop_assert_eq!(r.next_seq(), Some(base.wrapping_add(high as u32)));
        }
    }
}
