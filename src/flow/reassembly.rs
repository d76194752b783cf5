//! In-order delivery of one TCP direction's bytes: out-of-order, retransmitted,
//! overlapping and missing segments, sequence wrap-around.
//!
//! Bytes are delivered as soon as they are contiguous (never held back until ACKed, which
//! would hide the last PDU before a failure). Out-of-order bytes are buffered up to a cap;
//! past it, or when the peer has acknowledged bytes the capture never showed, the hole is
//! declared a gap and delivery resumes after it.

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
        let next = *self.next_seq.get_or_insert(seq);
        let delta = self.delta(next, seq);
        let len = payload.len() as i64;
        if delta + len <= 0 {
            return SegmentKind::Retransmission;
        }
        if delta <= 0 {
            let new = payload.get((-delta) as usize..).unwrap_or_default();
            self.deliver(new, frame, sink);
            self.drain(sink);
            return if delta < 0 {
                SegmentKind::Overlap
            } else {
                SegmentKind::New
            };
        }
        // Future bytes: buffer unless unwanted or over the cap.
        let offset = self.next_offset + delta as u64;
        if self.wanted && !self.pending.contains_key(&offset) {
            self.pending_bytes += payload.len();
            self.pending.insert(
                offset,
                Pending {
                    data: payload.to_vec(),
                    frame,
                },
            );
        } else if !self.wanted {
            // Nothing is buffered for unwanted streams: skip ahead at once.
            self.skip_to(offset, frame, sink);
            self.deliver(payload, frame, sink);
            return SegmentKind::OutOfOrder;
        }
        if self.pending_bytes > self.max_buffered {
            self.flush_gap(frame, sink);
        }
        SegmentKind::OutOfOrder
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
}
