//! Per-direction framing: turns a direction's in-order bytes into complete PDUs
//! (TPKT, fast-path or TLS records), buffering only what will be parsed and skipping
//! the bodies of the rest by length.

use super::{EventKind, Session};
use crate::flow::{Dir, FrameRef};
use crate::proto::{fastpath, tls, tpkt, Framing};

/// Largest PDU buffered for parsing (TPKT's own maximum is 65535).
pub const MAX_BUFFERED_PDU: usize = 65_535 + 5;

/// How a direction's bytes are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Nothing seen yet: the first bytes decide.
    Start,
    /// TPKT (X.224/MCS) and, once the connection is set up, fast-path PDUs.
    Rdp,
    /// TLS records.
    Tls,
    /// A SOCKS5 or HTTP CONNECT proxy handshake before the RDP bytes.
    Proxy,
    /// Alignment lost after a gap: wait for bytes that frame in the given mode.
    Resync(Resumable),
    /// Not RDP or not parseable any more: bytes are no longer looked at.
    Ignore,
}

/// Modes that can be resumed after a gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resumable {
    /// Resume TPKT/fast-path framing.
    Rdp,
    /// Resume TLS record framing.
    Tls,
}

/// A PDU whose body is being skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skipped {
    /// A TLS record of this content type and length.
    TlsRecord(u8, u16),
    /// A fast-path PDU.
    FastPath,
}

/// One direction's framing state.
#[derive(Debug)]
pub struct DirStream {
    pub mode: Mode,
    buf: Vec<u8>,
    buf_frame: Option<FrameRef>,
    pub(super) skip: usize,
    skipped: Option<Skipped>,
    /// Defragmented TLS handshake bytes not yet parsed.
    pub hs_buf: Vec<u8>,
    /// Bytes seen in this direction.
    pub seen: u64,
    /// The last bytes of the PDU being skipped (a TLS 1.0 CBC record's last block is the
    /// next record's IV).
    skip_tail: Vec<u8>,
}

impl DirStream {
    pub fn new() -> Self {
        DirStream {
            mode: Mode::Start,
            buf: Vec::new(),
            buf_frame: None,
            skip: 0,
            skipped: None,
            hs_buf: Vec::new(),
            seen: 0,
            skip_tail: Vec::new(),
        }
    }

    /// An incomplete PDU held at the end: (frame of its first bytes, bytes held, bytes claimed).
    pub fn held(&self) -> Option<(FrameRef, usize, usize)> {
        let frame = self.buf_frame?;
        if self.buf.is_empty() {
            return None;
        }
        let claimed = match frame_for(self.mode, &self.buf, true) {
            Framing::NeedMore(total) => total,
            _ => self.buf.len(),
        };
        Some((frame, self.buf.len(), claimed))
    }

    /// Takes `n` bytes that lie inside the PDU being skipped and end before its last
    /// [`RecordDecryptor::SKIP_TAIL`](crate::decrypt::RecordDecryptor::SKIP_TAIL) bytes
    /// (`false`, and nothing taken, otherwise): what [`Session::feed`] would do with them,
    /// without its framing loop.
    #[inline]
    pub(super) fn skip_within(&mut self, n: usize) -> bool {
        let within = self
            .skip
            .checked_sub(n)
            .is_some_and(|left| left >= crate::decrypt::RecordDecryptor::SKIP_TAIL);
        if within {
            self.skip -= n;
            self.seen += n as u64;
        }
        within
    }

    /// `bytes` were lost before the next delivered byte.
    pub fn gap(&mut self, bytes: u64) {
        if self.buf.is_empty() && self.skip as u64 >= bytes {
            self.skip -= bytes as usize;
            return;
        }
        self.buf.clear();
        self.hs_buf.clear();
        self.skip = 0;
        self.skipped = None;
        self.mode = match self.mode {
            Mode::Rdp => Mode::Resync(Resumable::Rdp),
            Mode::Tls => Mode::Resync(Resumable::Tls),
            Mode::Proxy => Mode::Ignore,
            other => other,
        };
    }
}

/// Frames the head of `b` in `mode`; `fastpath_ok` allows fast-path PDUs in RDP mode.
pub(super) fn frame_for(mode: Mode, b: &[u8], fastpath_ok: bool) -> Framing {
    match mode {
        Mode::Rdp | Mode::Resync(Resumable::Rdp) => match b.first() {
            Some(&tpkt::TPKT_VERSION) => tpkt::tpkt_frame(b),
            Some(&x) if fastpath_ok && fastpath::is_fastpath_start(x) => {
                fastpath::fastpath_frame(b)
            }
            Some(_) => Framing::Invalid,
            None => Framing::NeedHeader,
        },
        // After a TLS failure xrdp sends a cleartext TPKT (MCS Disconnect Provider Ultimatum).
        Mode::Tls if b.first() == Some(&tpkt::TPKT_VERSION) => tpkt::tpkt_frame(b),
        Mode::Tls | Mode::Resync(Resumable::Tls) => tls::tls_record_frame(b),
        Mode::Start | Mode::Ignore | Mode::Proxy => Framing::Invalid,
    }
}

/// Keeps the last bytes of a skipped PDU in `tail` (what a skipped TLS 1.0 CBC record
/// hands on: its last ciphertext block, before the MAC under encrypt-then-MAC).
fn push_tail(tail: &mut Vec<u8>, bytes: &[u8]) {
    const KEEP: usize = crate::decrypt::RecordDecryptor::SKIP_TAIL;
    let take = bytes.len().min(KEEP);
    tail.extend_from_slice(bytes.get(bytes.len() - take..).unwrap_or_default());
    let excess = tail.len().saturating_sub(KEEP);
    tail.drain(..excess);
}

/// Whether the PDU starting at `head` (a complete header) can be skipped rather than parsed;
/// encrypted records up to `keep` bytes are kept whole for decryption.
fn skippable(mode: Mode, head: &[u8], ccs_seen: bool, keep: Option<usize>) -> Option<Skipped> {
    match mode {
        Mode::Tls => {
            let h = tls::parse_record_header(head)?;
            if keep.is_some_and(|max| usize::from(h.len) <= max) {
                return None;
            }
            let skip = match h.content_type {
                tls::content_type::APPLICATION_DATA | tls::content_type::HEARTBEAT => true,
                tls::content_type::HANDSHAKE => ccs_seen,
                tls::content_type::ALERT => h.len != 2,
                _ => false,
            };
            skip.then_some(Skipped::TlsRecord(h.content_type, h.len))
        }
        Mode::Rdp => (head.first() != Some(&tpkt::TPKT_VERSION)).then_some(Skipped::FastPath),
        _ => None,
    }
}

impl Session {
    fn fastpath_ok(&self) -> bool {
        self.fastpath_allowed
    }

    /// Feeds one direction's in-order bytes.
    #[inline(never)]
    pub(super) fn feed(&mut self, dir: Dir, mut data: &[u8], frame: FrameRef) {
        let d = dir.index();
        self.streams[d].seen += data.len() as u64;
        while !data.is_empty() {
            let s = &mut self.streams[d];
            if s.skip > 0 {
                let n = s.skip.min(data.len());
                s.skip -= n;
                // Only the record's last bytes are kept: earlier ones would be pushed out.
                if s.skip < crate::decrypt::RecordDecryptor::SKIP_TAIL {
                    push_tail(&mut s.skip_tail, &data[..n]);
                }
                data = &data[n..];
                if s.skip == 0 {
                    if let Some(sk) = s.skipped.take() {
                        let mut tail = std::mem::take(&mut self.streams[d].skip_tail);
                        self.skipped_pdu(dir, sk, &tail, frame);
                        // The buffer is reused for the next skipped PDU (no allocation each).
                        tail.clear();
                        let s = &mut self.streams[d];
                        if s.skip_tail.is_empty() {
                            s.skip_tail = tail;
                        }
                    }
                }
                continue;
            }
            if self.tls_bulk_record(dir, &mut data, frame) {
                continue;
            }
            // Anything below may change what wants_data answers.
            self.wants_changed();
            let s = &mut self.streams[d];
            match s.mode {
                Mode::Ignore => return,
                Mode::Start => {
                    self.start(dir, data, frame);
                    continue;
                }
                Mode::Proxy => {
                    let n = self.proxy_bytes(dir, data, frame);
                    data = data.get(n..).unwrap_or_default();
                    continue;
                }
                Mode::Resync(r) => {
                    let fp = self.fastpath_ok();
                    let s = &mut self.streams[d];
                    if frame_for(s.mode, data, fp) == Framing::Invalid {
                        return;
                    }
                    s.mode = match r {
                        Resumable::Rdp => Mode::Rdp,
                        Resumable::Tls => Mode::Tls,
                    };
                    continue;
                }
                Mode::Rdp | Mode::Tls => {}
            }
            let fp = self.fastpath_ok();
            let ccs = self.details.tls.ccs[d].is_some();
            let keep = if self.streams[d].mode == Mode::Tls {
                self.keep_records_up_to(d)
            } else {
                None
            };
            let s = &mut self.streams[d];
            if s.buf.is_empty() {
                match frame_for(s.mode, data, fp) {
                    Framing::Complete(n) => {
                        let (pdu, rest) = data.split_at(n);
                        data = rest;
                        self.pdu(dir, pdu, frame);
                    }
                    Framing::NeedMore(total) => {
                        if let Some(sk) = skippable(s.mode, data, ccs, keep) {
                            s.skip = total - data.len();
                            s.skipped = Some(sk);
                            s.skip_tail.clear();
                            if s.skip < crate::decrypt::RecordDecryptor::SKIP_TAIL {
                                push_tail(&mut s.skip_tail, data);
                            }
                            data = &[];
                        } else if total > MAX_BUFFERED_PDU {
                            self.malformed(dir, frame, format!("pdu claiming {total} bytes"));
                            return;
                        } else {
                            s.buf.extend_from_slice(data);
                            s.buf_frame = Some(frame);
                            data = &[];
                        }
                    }
                    Framing::NeedHeader => {
                        s.buf.extend_from_slice(data);
                        s.buf_frame = Some(frame);
                        data = &[];
                    }
                    Framing::Invalid => {
                        let expected = if s.mode == Mode::Tls {
                            "a TLS record"
                        } else {
                            "a TPKT or fast-path PDU"
                        };
                        self.unexpected(dir, data, frame, expected);
                        return;
                    }
                }
            } else {
                let need = match frame_for(s.mode, &s.buf, fp) {
                    Framing::NeedHeader => 1,
                    Framing::NeedMore(total) => total - s.buf.len(),
                    _ => 0,
                };
                let n = need.min(data.len());
                s.buf.extend_from_slice(&data[..n]);
                data = &data[n..];
                match frame_for(s.mode, &s.buf, fp) {
                    Framing::Complete(total) => {
                        let mut buf = std::mem::take(&mut s.buf);
                        self.pdu(dir, &buf[..total], frame);
                        buf.clear();
                        let s = &mut self.streams[d];
                        if s.buf.is_empty() {
                            s.buf = buf;
                        }
                        s.buf_frame = None;
                    }
                    Framing::NeedMore(total) => {
                        if let Some(sk) = skippable(s.mode, &s.buf, ccs, keep) {
                            s.skip = total - s.buf.len();
                            s.skipped = Some(sk);
                            s.skip_tail.clear();
                            push_tail(&mut s.skip_tail, &s.buf);
                            s.buf.clear();
                            s.buf_frame = None;
                        } else if total > MAX_BUFFERED_PDU {
                            self.malformed(dir, frame, format!("pdu claiming {total} bytes"));
                            return;
                        }
                    }
                    Framing::NeedHeader => {}
                    Framing::Invalid => {
                        let buf = std::mem::take(&mut s.buf);
                        let expected = if s.mode == Mode::Tls {
                            "a TLS record"
                        } else {
                            "a TPKT or fast-path PDU"
                        };
                        self.unexpected(dir, &buf, frame, expected);
                        return;
                    }
                }
            }
        }
    }

    /// The bulk of a TLS session: an application data record at the head of `data` while
    /// nothing is buffered and decryption is out of play (no keys, or given up for good) is
    /// counted from its header alone, or its body skipped by length when it runs past
    /// `data`. Exactly what the general path does with such a record (`tls_record` finds
    /// nothing to decrypt, `skippable` skips it, `record_passed_over` ignores it); `false`
    /// leaves anything else to the general path.
    #[inline]
    fn tls_bulk_record(&mut self, dir: Dir, data: &mut &[u8], frame: FrameRef) -> bool {
        let d = dir.index();
        let s = &mut self.streams[d];
        if s.mode != Mode::Tls || !s.buf.is_empty() || !self.crypt[d].given_up {
            return false;
        }
        let Some(h) = tls::parse_record_header(data)
            .filter(|h| h.content_type == tls::content_type::APPLICATION_DATA)
        else {
            return false;
        };
        let total = tls::RECORD_HEADER_LEN + usize::from(h.len);
        match data.get(total..) {
            Some(rest) => {
                *data = rest;
                self.tls_record_meta(dir, h.content_type, h.len, frame);
            }
            None => {
                s.skip = total - data.len();
                s.skipped = Some(Skipped::TlsRecord(h.content_type, h.len));
                s.skip_tail.clear();
                *data = &[];
            }
        }
        true
    }

    /// Decides a direction's mode from its first bytes.
    fn start(&mut self, dir: Dir, data: &[u8], frame: FrameRef) {
        let d = dir.index();
        let first = data.first().copied().unwrap_or(0);
        let tls_like = matches!(first, 0x14..=0x17) && data.get(1) == Some(&3);
        let mode = if self.proxy_starts(dir, data, frame) {
            Mode::Proxy
        } else if first == tpkt::TPKT_VERSION {
            if dir == Dir::ToServer && data.get(5).is_some_and(|b| b & 0xf0 == 0xe0) {
                self.details.rdp_by_content = true;
            }
            Mode::Rdp
        } else if tls_like {
            Mode::Tls
        } else if !self.clean_start && fastpath::is_fastpath_start(first) {
            self.fastpath_allowed = true;
            Mode::Rdp
        } else {
            let expected = if dir == Dir::ToServer {
                "an X.224 Connection Request"
            } else if self.streams[0].seen == 0 {
                "an RDP server reply (the server spoke first)"
            } else {
                "an X.224 Connection Confirm"
            };
            self.unexpected(dir, data, frame, expected);
            return;
        };
        self.streams[d].mode = mode;
    }

    /// Records bytes that are not the expected protocol and stops looking at the direction.
    pub(super) fn unexpected(
        &mut self,
        dir: Dir,
        data: &[u8],
        frame: FrameRef,
        expected: &'static str,
    ) {
        let d = dir.index();
        let head = super::hex_head(data);
        if self.details.unexpected[d].is_none() {
            self.details.unexpected[d] = Some((frame, head.clone(), data.len()));
        }
        self.push(
            frame,
            Some(dir),
            EventKind::Unexpected {
                len: data.len(),
                head,
                expected,
            },
        );
        self.streams[d].mode = Mode::Ignore;
        self.streams[d].buf = Vec::new();
    }

    /// Records a PDU that failed to parse and stops looking at the direction.
    pub(super) fn malformed(&mut self, dir: Dir, frame: FrameRef, what: String) {
        self.push(frame, Some(dir), EventKind::Malformed { what });
        let s = &mut self.streams[dir.index()];
        s.mode = Mode::Ignore;
        s.buf = Vec::new();
    }

    /// One complete PDU in the direction's current mode.
    fn pdu(&mut self, dir: Dir, pdu: &[u8], frame: FrameRef) {
        match self.streams[dir.index()].mode {
            Mode::Tls if pdu.first() == Some(&tpkt::TPKT_VERSION) => self.tpkt_pdu(dir, pdu, frame),
            Mode::Tls => self.tls_record(dir, pdu, frame),
            Mode::Rdp if pdu.first() == Some(&tpkt::TPKT_VERSION) => self.tpkt_pdu(dir, pdu, frame),
            Mode::Rdp => self.skipped_pdu(dir, Skipped::FastPath, &[], frame),
            _ => {}
        }
    }

    /// A PDU whose body was not needed, completed in `frame`.
    fn skipped_pdu(&mut self, dir: Dir, sk: Skipped, tail: &[u8], frame: FrameRef) {
        // Counting a skipped PDU leaves wants_data's answer as it is; giving decryption up
        // (record_passed_over) does not, and says so.
        match sk {
            Skipped::FastPath => self.fastpath_pdu(dir, frame),
            Skipped::TlsRecord(ctype, len) => {
                self.record_passed_over(dir, ctype, tail);
                self.tls_record_meta(dir, ctype, len, frame)
            }
        }
    }
}
