//! The fuzz targets' bodies, shared by the libFuzzer targets (`cargo +nightly fuzz run`)
//! and the stable replay harness (`cargo run --example replay -- <target> <files or dirs>`).
//!
//! Every function must never panic, whatever `data` is; the checks here are the
//! invariants the parsers promise (framing never claims more than its maximum, a
//! complete PDU never extends past the input).

use rdpdiag::capture::{read_capture, read_capture_with, Frame, FrameSink, ReadAhead, ReadOptions};
use rdpdiag::flow::reassembly::{Reassembler, StreamSink};
use rdpdiag::flow::FrameRef;
use rdpdiag::pipeline::{AnalyzeConfig, Analyzer};
use rdpdiag::proto::{credssp, fastpath, mcs, nego, tls, tpkt, x224, Framing};

/// A target's body.
pub type Target = fn(&[u8]);

/// The targets by name.
pub const TARGETS: &[(&str, Target)] = &[
    ("tpkt_x224", tpkt_x224),
    ("nego", nego_target),
    ("mcs", mcs_target),
    ("tls", tls_target),
    ("credssp", credssp_target),
    ("fastpath", fastpath_target),
    ("capture", capture),
    ("reassembly", reassembly),
    ("pipeline", pipeline),
    ("decode", decode_target),
];

/// Checks a framing result against the input and the format's maximum PDU size.
fn check_framing(f: Framing, input: usize, max: usize) {
    match f {
        Framing::Complete(n) => {
            assert!(n <= input, "complete PDU of {n} bytes in {input}");
            assert!(n > 0 && n <= max, "complete PDU of {n} bytes (max {max})");
        }
        Framing::NeedMore(n) => {
            assert!(n > input, "needs {n} bytes but has {input}");
            assert!(n <= max, "claims {n} bytes (max {max})");
        }
        Framing::NeedHeader | Framing::Invalid => {}
    }
}

/// TPKT framing, then X.224 on the payload of a complete TPKT packet (and on the raw bytes).
pub fn tpkt_x224(data: &[u8]) {
    let f = tpkt::tpkt_frame(data);
    check_framing(f, data.len(), 0xFFFF);
    if let Some(p) = tpkt::tpkt_payload(data) {
        let _ = x224::parse_tpdu(p);
    }
    let _ = x224::parse_tpdu(data);
}

/// RDP_NEG_REQ/RSP/FAILURE structures.
pub fn nego_target(data: &[u8]) {
    let _ = nego::parse_neg_result(data);
    let _ = nego::parse_neg_struct(data);
}

/// MCS/GCC and the PDUs inside MCS Send Data.
pub fn mcs_target(data: &[u8]) {
    let _ = mcs::parse_mcs(data);
    let _ = mcs::security_flags(data);
    let _ = mcs::parse_share_control(data);
    let _ = mcs::parse_license_error(data);
}

/// TLS record and handshake framing and parsing, alerts.
pub fn tls_target(data: &[u8]) {
    check_framing(
        tls::tls_record_frame(data),
        data.len(),
        5 + tls::MAX_RECORD_LEN,
    );
    check_framing(
        tls::handshake_frame(data),
        data.len(),
        4 + tls::MAX_HANDSHAKE_LEN,
    );
    let _ = tls::parse_handshake(data);
    let _ = tls::parse_alert(data);
    if let Framing::Complete(n) = tls::tls_record_frame(data) {
        if let Some(body) = data.get(5..n) {
            let _ = tls::parse_handshake(body);
        }
    }
}

/// CredSSP TSRequest (DER).
pub fn credssp_target(data: &[u8]) {
    // DER lengths: a 1-byte tag, up to 5 length bytes, the body.
    check_framing(
        credssp::ts_request_frame(data),
        data.len(),
        credssp::MAX_TS_REQUEST_LEN,
    );
    let _ = credssp::parse_ts_request(data);
    let _ = credssp::parse_early_user_auth_result(data);
}

/// Fast-path framing.
pub fn fastpath_target(data: &[u8]) {
    check_framing(
        fastpath::fastpath_frame(data),
        data.len(),
        fastpath::MAX_FASTPATH_LEN,
    );
    let _ = fastpath::parse_fastpath_header(data);
}

struct Count(u64);
impl FrameSink for Count {
    fn frame(&mut self, frame: &Frame<'_>) {
        self.0 += 1;
        assert_eq!(frame.number, self.0, "frames numbered 1, 2, ...");
    }
}

/// Everything a read showed: per frame its number, time, link type, wire length and a hash
/// of its bytes, and per secrets block its place, type and hash; then the outcome.
#[derive(Default, PartialEq, Debug)]
struct Seen(Vec<(u64, i64, i32, u32, u64)>, String);
impl FrameSink for Seen {
    fn frame(&mut self, f: &Frame<'_>) {
        self.0
            .push((f.number, f.ts.0, f.linktype.0, f.orig_len, hash(f.data)));
    }
    fn secrets(&mut self, secrets_type: u32, data: &[u8]) {
        let at = self.0.len() as u64;
        self.0.push((at, -1, -1, secrets_type, hash(data)));
    }
}
fn hash(data: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut h);
    h.finish()
}
fn read_seen(data: &[u8], opts: ReadOptions) -> Seen {
    let mut seen = Seen::default();
    let src = rdpdiag::capture::input_from_bytes("fuzz", data.to_vec());
    seen.1 = match src.and_then(|s| read_capture_with(s, &mut seen, opts)) {
        Ok(summary) => format!("{summary:?}"),
        Err(e) => format!("{e:?}"),
    };
    seen
}

/// The capture reader (pcap, pcapng, gzip, zstd) over arbitrary bytes: frames numbered 1, 2,
/// ...; read ahead on another thread (read only, or read and framed, by the input length's
/// parity), the same frames, secrets, summary and error as read on this thread, in the
/// default buffers and in short ones (1 to 97 bytes, from the input's length); and in short
/// buffers the same as in the default ones, unless the input is compressed (a corrupt
/// compressed stream stops where the decompressor's read sizes make it stop).
pub fn capture(data: &[u8]) {
    let src = rdpdiag::capture::input_from_bytes("fuzz", data.to_vec());
    let mut sink = Count(0);
    let _ = src.and_then(|s| read_capture(s, &mut sink));
    let ahead = if data.len() % 2 == 0 {
        ReadAhead::Bytes
    } else {
        ReadAhead::Frames
    };
    let one_thread = read_seen(data, ReadOptions::default());
    let other = read_seen(data, ReadOptions::ahead(ahead));
    assert_eq!(other, one_thread, "read ahead ({ahead:?})");
    let chunk_len = 1 + data.len() % 97;
    let short = read_seen(data, ReadOptions { chunk_len, ahead });
    let short_here = ReadOptions {
        chunk_len,
        ahead: ReadAhead::Off,
    };
    assert_eq!(
        read_seen(data, short_here),
        short,
        "read ahead ({ahead:?}) in {chunk_len}-byte buffers"
    );
    let compressed = data.starts_with(&[0x1f, 0x8b]) || data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
    if !compressed {
        assert_eq!(short, one_thread, "{chunk_len}-byte buffers");
    }
}

#[derive(Default)]
struct Collect {
    delivered: u64,
    gaps: u64,
}
impl StreamSink for Collect {
    fn data(&mut self, bytes: &[u8], _f: FrameRef) {
        self.delivered += bytes.len() as u64;
    }
    fn gap(&mut self, n: u64, _f: FrameRef) {
        self.gaps += n;
    }
}

/// TCP reassembly: the input is a list of operations. Byte 0: cap selector, bytes 1..5: ISN;
/// then each op is `kind(1) seq(4) len(1)` followed by `len` payload bytes (kind & 3 == 3
/// is an ACK of `seq`, kind & 4 turns the stream unwanted).
pub fn reassembly(data: &[u8]) {
    let Some((&cap, rest)) = data.split_first() else {
        return;
    };
    let cap = 64usize << (cap % 12);
    let mut r = Reassembler::new(cap);
    let mut sink = Collect::default();
    let mut i = rest;
    if let Some(isn) = i.get(..4) {
        r.set_isn(u32::from_be_bytes([isn[0], isn[1], isn[2], isn[3]]));
        i = &i[4..];
    }
    let mut n = 0u64;
    while let Some(h) = i.get(..6) {
        let (kind, seq, len) = (
            h[0],
            u32::from_be_bytes([h[1], h[2], h[3], h[4]]),
            usize::from(h[5]),
        );
        i = &i[6..];
        n += 1;
        let frame = FrameRef {
            number: n,
            ts: rdpdiag::capture::Timestamp(n as i64),
        };
        if kind & 4 != 0 {
            r.wanted = false;
        }
        if kind & 3 == 3 {
            r.acked(seq, frame, &mut sink);
            continue;
        }
        let payload = i.get(..len).unwrap_or(i);
        i = &i[payload.len()..];
        r.segment(seq, payload, frame, &mut sink);
        assert!(
            r.buffered() <= cap,
            "buffered {} over cap {cap}",
            r.buffered()
        );
    }
    let frame = FrameRef {
        number: n + 1,
        ts: rdpdiag::capture::Timestamp(0),
    };
    r.flush_gap(frame, &mut sink);
    assert_eq!(r.buffered(), 0);
    assert_eq!(r.gap_bytes, sink.gaps);
}

/// The whole pipeline on a capture blob.
pub fn pipeline(data: &[u8]) {
    let Ok(src) = rdpdiag::capture::input_from_bytes("fuzz", data.to_vec()) else {
        return;
    };
    let mut n = 0usize;
    let mut analyzer = Analyzer::new(AnalyzeConfig::default(), |d| {
        n += 1;
        // Formatting must not panic either.
        let _ = format!("{d:?}");
    });
    let _ = read_capture(src, &mut analyzer);
    analyzer.finish();
    drop(analyzer);
    let _ = n;
}

/// One frame through the decoder: byte 0 picks the link type, the rest is the frame. The
/// fixed-offset IPv4/TCP reading must give what etherparse gives wherever it applies, and the
/// dispatch endpoints what the full decode gives.
pub fn decode_target(data: &[u8]) {
    use rdpdiag::capture::LinkType;
    use rdpdiag::decode::{decode, decode_network, ipv4_tcp, network_payload, tcp_udp_endpoints};
    let Some((&pick, frame)) = data.split_first() else {
        return;
    };
    let linktype = match pick % 5 {
        0 => LinkType::ETHERNET,
        1 => LinkType::RAW,
        2 => LinkType::LINUX_SLL,
        3 => LinkType::LINUX_SLL2,
        _ => LinkType::NULL,
    };
    let full = decode(linktype, frame);
    if let Some(net) = network_payload(linktype, frame) {
        if let Some(fast) = ipv4_tcp(net) {
            assert_eq!(Some(fast), decode_network(net));
        }
    }
    let endpoints = full.and_then(|p| p.endpoints());
    if let (Some(fast), Some(full)) = (tcp_udp_endpoints(linktype, frame), endpoints) {
        assert_eq!(fast, full);
    }
}
