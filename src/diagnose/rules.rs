//! The diagnosis rules, in order: the first rule that matches decides the cause.

mod decrypted;
mod gateway;

use super::causes;
use super::phase::furthest_phase;
use super::verdict::{Confidence, End, EndedBy, Evidence, Outcome, Phase, Verdict};
use super::ConnectionRecord;
use crate::flow::{Dir, FinishReason, FrameRef};
use crate::proto::codes;
use crate::proto::nego::Protocols;
use crate::proto::tls;
use crate::session::{icmp_name, Event, EventKind};

/// Silence after which an open connection counts as timed out rather than cut by the capture.
const TIMEOUT_SILENCE_NS: i64 = 10 * 1_000_000_000;
/// Silence after a lone SYN after which the client is taken to have given up.
const SYN_GIVE_UP_NS: i64 = 3 * 1_000_000_000;
/// A retransmitted segment at least this large may be an MTU black-hole victim.
const MTU_SUSPECT_LEN: u32 = 1000;
/// Largest encrypted record taken to be a CredSSP TSRequest carrying only an errorCode
/// (about 16 bytes of DER plus at most 32 bytes of TLS record overhead).
const CREDSSP_ERROR_MAX_RECORD: u16 = 48;
/// Largest encrypted record taken to be an MCS Disconnect Provider Ultimatum (9 bytes of
/// TPKT/X.224/MCS plus at most about 32 bytes of TLS record overhead).
const DISCONNECT_SIZED_RECORD: u16 = 41;

/// errorInfo values that mean the user ended the session on purpose.
const USER_ENDED: [u32; 5] = [0x0, 0x1, 0x2, 0xB, 0xC];

struct Ctx<'a> {
    r: &'a ConnectionRecord,
    phase: Phase,
    evidence: Vec<Evidence>,
    notes: Vec<String>,
    /// The frame that shows the decisive event (default: the last evidence frame).
    key: Option<u64>,
}

struct Decision {
    cause: &'static str,
    outcome: Outcome,
    ended_by: EndedBy,
    end: End,
    confidence: Confidence,
    summary: String,
}

fn side(dir: Dir) -> EndedBy {
    match dir {
        Dir::ToServer => EndedBy::Client,
        Dir::ToClient => EndedBy::Server,
    }
}

fn secs(ns: i64) -> String {
    let s = ns as f64 / 1e9;
    if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else {
        format!("{s:.1} s")
    }
}

impl<'a> Ctx<'a> {
    fn ev(&mut self, frame: FrameRef, what: impl Into<String>) {
        let what = what.into();
        if !self
            .evidence
            .iter()
            .any(|e| e.frame == frame.number && e.what == what)
        {
            self.evidence.push(Evidence {
                frame: frame.number,
                time: frame.ts.rfc3339(),
                what,
            });
        }
    }

    fn ev_event(&mut self, e: &Event) {
        let who = e
            .dir
            .map(|d| format!("{}: ", d.sender()))
            .unwrap_or_default();
        self.ev(e.frame, format!("{who}{}", e.kind));
    }

    fn find(&self, pred: impl Fn(&Event) -> bool) -> Option<&'a Event> {
        self.r.session.timeline.iter().find(|e| pred(e))
    }

    fn ev_first(&mut self, pred: impl Fn(&Event) -> bool) -> Option<&'a Event> {
        let e = self.find(pred)?;
        self.ev_event(e);
        Some(e)
    }

    /// The first FIN or RST: sender, frame and kind.
    fn first_close(&self) -> Option<(Dir, FrameRef, End)> {
        let t = &self.r.tcp;
        let mut best: Option<(Dir, FrameRef, End)> = None;
        for dir in [Dir::ToServer, Dir::ToClient] {
            for (f, end) in [
                (t.fin[dir.index()], End::Fin),
                (t.rst[dir.index()], End::Rst),
            ] {
                if let Some(f) = f {
                    if best.map_or(true, |(_, b, _)| f.number < b.number) {
                        best = Some((dir, f, end));
                    }
                }
            }
        }
        best
    }

    fn ev_close(&mut self) -> Option<(Dir, FrameRef, End)> {
        let c = self.first_close()?;
        let what = match c.2 {
            End::Rst => "TCP RST",
            _ => "TCP FIN",
        };
        self.ev(c.1, format!("{}: {what} (first close)", c.0.sender()));
        Some(c)
    }

    /// Who ended the connection and how: the first close as evidence, or a timeout or the
    /// capture's end when nothing closed it.
    fn ev_close_or_open(&mut self) -> (EndedBy, End) {
        match self.ev_close() {
            Some((d, _, end)) => (side(d), end),
            None => self.open_end(),
        }
    }

    /// How a silence ended: with the capture, or with the idle timeout (live capture and
    /// connections expired from the table).
    fn silence_end(&self) -> &'static str {
        if self.r.finish == FinishReason::Idle {
            "until the idle timeout"
        } else {
            "until the capture ended"
        }
    }

    fn last_frame(&self) -> FrameRef {
        self.r.tcp.last.unwrap_or(self.r.meta.first)
    }

    fn quiet_at_end(&self) -> i64 {
        self.r.capture_end.nanos_since(self.last_frame().ts)
    }

    /// Ending when no explicit close was seen: a timeout or the capture's end.
    fn open_end(&self) -> (EndedBy, End) {
        if self.r.finish == FinishReason::Idle || self.quiet_at_end() >= TIMEOUT_SILENCE_NS {
            (EndedBy::None, End::Timeout)
        } else {
            (EndedBy::None, End::CaptureEnd)
        }
    }

    fn decide(
        &self,
        cause: &'static str,
        outcome: Outcome,
        ended_by: EndedBy,
        end: End,
        confidence: Confidence,
        summary: String,
    ) -> Decision {
        Decision {
            cause,
            outcome,
            ended_by,
            end,
            confidence,
            summary,
        }
    }

    /// A generic decision from the first close: by client, by server, or still open.
    fn by_closer(
        &mut self,
        client_cause: &'static str,
        server_cause: &'static str,
        what: &str,
    ) -> Decision {
        match self.ev_close() {
            Some((dir, _, end)) => {
                let cause = if dir == Dir::ToServer {
                    client_cause
                } else {
                    server_cause
                };
                let summary = format!("the {} closed the connection {what}", dir.sender());
                self.decide(
                    cause,
                    Outcome::Failure,
                    side(dir),
                    end,
                    Confidence::Certain,
                    summary,
                )
            }
            None => self.open(what),
        }
    }

    /// No close seen: a timeout (silence) or the capture's end.
    fn open(&mut self, what: &str) -> Decision {
        let (by, end) = self.open_end();
        let last = self.last_frame();
        self.ev(last, "last packet of the connection");
        if end == End::Timeout {
            let s = format!(
                "the connection went silent {what} and stayed silent for {} {}",
                secs(self.quiet_at_end()),
                self.silence_end()
            );
            // Silence with data left unacknowledged is a stall; plain silence is unknown.
            let (cause, outcome) = if self.r.tcp.retransmissions.iter().any(|n| *n > 0) {
                ("stall_retransmissions", Outcome::Failure)
            } else {
                ("capture_ended", Outcome::Incomplete)
            };
            self.decide(cause, outcome, by, end, Confidence::Likely, s)
        } else {
            // The most common summary of a ring buffer's files (connections cut by the
            // file's end): concatenated, not formatted.
            let s = ["the capture ended ", what].concat();
            self.decide(
                "capture_ended",
                Outcome::Incomplete,
                by,
                end,
                Confidence::Certain,
                s,
            )
        }
    }
}

/// Diagnoses one connection.
pub fn diagnose(r: &ConnectionRecord) -> super::Verdict {
    let (phase, inferred) = furthest_phase(&r.meta, &r.tcp, &r.session);
    let mut cx = Ctx {
        r,
        phase,
        // Most verdicts cite two to four frames.
        evidence: Vec::with_capacity(4),
        notes: Vec::new(),
        key: None,
    };
    let d = decide(&mut cx);
    notes(&mut cx);
    let mut evidence = cx.evidence;
    evidence.sort_by_key(|e| e.frame);
    let key_frame = cx.key.or_else(|| evidence.last().map(|e| e.frame));
    let mut confidence = d.confidence;
    if r.tcp.gap_bytes.iter().any(|g| *g > 0) && confidence == Confidence::Certain {
        confidence = Confidence::Likely;
    }
    Verdict {
        phase,
        phase_inferred: inferred,
        outcome: d.outcome,
        ended_by: d.ended_by,
        end: d.end,
        cause: d.cause,
        summary: d.summary,
        remedy: causes::remedy(d.cause),
        confidence,
        evidence,
        key_frame,
        notes: cx.notes,
    }
}

fn notes(cx: &mut Ctx<'_>) {
    decrypted::notes(cx);
    let t = &cx.r.tcp;
    let det = &cx.r.session.details;
    for dir in [Dir::ToServer, Dir::ToClient] {
        let i = dir.index();
        if t.gap_bytes[i] > 0 {
            cx.notes.push(format!(
                "{} bytes from the {} are missing from the capture",
                t.gap_bytes[i],
                dir.sender()
            ));
        }
        if t.retransmissions[i] > 0 {
            let n = t.retransmissions[i];
            cx.notes.push(format!(
                "{n} retransmitted segment{} from the {}",
                if n == 1 { "" } else { "s" },
                dir.sender()
            ));
        }
        if t.zero_windows[i] > 0 {
            let n = t.zero_windows[i];
            cx.notes.push(format!(
                "the {} advertised a zero window {n} time{}",
                dir.sender(),
                if n == 1 { "" } else { "s" }
            ));
        }
        if let Some((f, held, claimed)) = det.incomplete_pdu[i] {
            cx.notes.push(format!(
                "the {} left an incomplete PDU: {held} of {claimed} bytes, from frame {}",
                dir.sender(),
                f.number
            ));
        }
    }
    if let Some(c) = det.tls.certificates.first() {
        let at = cx.r.meta.first.ts.rfc3339();
        // RFC 3339 UTC strings of the same shape compare in time order.
        if !c.not_after.is_empty() && c.not_after.as_str() < at.as_str() {
            cx.notes.push(format!(
                "the server certificate '{}' had expired ({}) at the time of the capture",
                c.subject, c.not_after
            ));
        } else if !c.not_before.is_empty() && c.not_before.as_str() > at.as_str() {
            cx.notes.push(format!("the server certificate '{}' was not yet valid (from {}) at the time of the capture", c.subject, c.not_before));
        }
    }
    if !cx.r.meta.saw_syn {
        cx.notes
            .push("the capture starts after the connection was opened (no SYN)".into());
    }
    if let FinishReason::Evicted { limit } = cx.r.finish {
        cx.notes.push(format!(
            "evicted from the connection table (limit {limit}): later packets of this connection were analysed as a new one"
        ));
    }
    if det.dropped_events > 0 {
        cx.notes.push(format!(
            "{} timeline events were not kept (limit reached)",
            det.dropped_events
        ));
    }
}

fn decide(cx: &mut Ctx<'_>) -> Decision {
    if let Some(d) = tcp_rules(cx) {
        return d;
    }
    if let Some(d) = mtu_and_stall(cx) {
        return d;
    }
    if let Some(d) = gateway::decide(cx) {
        return d;
    }
    if let Some(d) = non_rdp(cx) {
        return d;
    }
    if let Some(d) = negotiation(cx) {
        return d;
    }
    if let Some(d) = tls_rules(cx) {
        return d;
    }
    if let Some(d) = decrypted::decide(cx) {
        return d;
    }
    if cx.phase == Phase::RdpSession {
        return session(cx);
    }
    if let Some(d) = credssp(cx) {
        return d;
    }
    setup(cx)
}

/// The TCP handshake did not complete.
fn tcp_rules(cx: &mut Ctx<'_>) -> Option<Decision> {
    let r = cx.r;
    let t = &r.tcp;
    if cx.phase != Phase::TcpSyn {
        return None;
    }
    let server = r.meta.server;
    // ICMP errors that stop a connection (not "fragmentation needed").
    let stopping = t.icmp.iter().find(|(_, e, _)| {
        !((!e.v6 && e.icmp_type == 3 && e.code == 4) || (e.v6 && e.icmp_type == 2))
    });
    if t.syn_ack.is_empty() {
        if let Some(f) = t.syn.first() {
            cx.ev(*f, "client: TCP SYN");
        }
        if let Some(rst) = t.rst[1] {
            cx.ev(rst, "server: TCP RST (first close): connection refused");
            cx.key = Some(rst.number);
            let delay = t.syn.first().map_or(0, |s| rst.ts.nanos_since(s.ts));
            let summary = format!(
                "{server} refused the connection: its TCP stack answered the SYN with a RST after {}, so nothing listens on port {}",
                secs(delay),
                server.port()
            );
            return Some(cx.decide(
                "port_closed",
                Outcome::Failure,
                EndedBy::Server,
                End::Rst,
                Confidence::Certain,
                summary,
            ));
        }
        if let Some((f, e, from)) = stopping {
            let cause = match (e.v6, e.icmp_type, e.code) {
                (false, 3, 3) | (true, 1, 4) => "icmp_port_unreachable",
                (false, 3, 1) | (true, 1, 3) => "icmp_host_unreachable",
                (false, 3, 0) | (true, 1, 0) => "icmp_network_unreachable",
                (false, 3, 9 | 10 | 13) | (true, 1, 1) => "icmp_admin_prohibited",
                (false, 11, _) | (true, 3, _) => "icmp_time_exceeded",
                _ => "icmp_unreachable",
            };
            cx.ev(*f, format!("ICMP {} from {from}", icmp_name(e)));
            cx.key = Some(f.number);
            let by = if *from == server.ip() {
                EndedBy::Server
            } else {
                EndedBy::Network
            };
            let who = if by == EndedBy::Server {
                "the server host itself"
            } else {
                "a router or firewall on the path"
            };
            let summary = format!(
                "{from} ({who}) answered the client's SYN with ICMP {}",
                icmp_name(e)
            );
            return Some(cx.decide(
                cause,
                Outcome::Failure,
                by,
                End::Icmp,
                Confidence::Certain,
                summary,
            ));
        }
        if t.syn.is_empty() {
            return None;
        }
        for f in t.syn.iter().skip(1).take(4) {
            cx.ev(*f, "client: TCP SYN retransmitted");
        }
        let (first, last) = (t.syn[0], *t.syn.last().unwrap_or(&t.syn[0]));
        let quiet = r.capture_end.nanos_since(last.ts);
        let n = t.syn.len();
        let mut summary = format!(
            "{} SYN{} to {server} over {} got no answer",
            n,
            if n == 1 { "" } else { "s" },
            secs(last.ts.nanos_since(first.ts))
        );
        if n == 1 {
            summary.push_str(" (a single SYN that was never retried: typical of a port scan)");
        }
        let (outcome, by, end) = if quiet >= SYN_GIVE_UP_NS || n >= 3 {
            summary
                .push_str("; the client gave up: a firewall drops the packets or the host is down");
            (Outcome::Failure, EndedBy::Client, End::Timeout)
        } else {
            summary.push_str("; the capture ended while the client was still waiting");
            (Outcome::Incomplete, EndedBy::None, End::CaptureEnd)
        };
        let conf = if n == 1 {
            Confidence::Likely
        } else {
            Confidence::Certain
        };
        return Some(cx.decide("no_answer_to_syn", outcome, by, end, conf, summary));
    }
    // SYN+ACK seen, handshake not completed.
    if let Some(f) = t.syn.first() {
        cx.ev(*f, "client: TCP SYN");
    }
    cx.ev(t.syn_ack[0], "server: TCP SYN+ACK");
    for f in t.syn_ack.iter().skip(1).take(3) {
        cx.ev(*f, "server: TCP SYN+ACK retransmitted");
    }
    let (by, end) = match t.rst[0] {
        Some(f) => {
            cx.ev(f, "client: TCP RST instead of completing the handshake");
            (EndedBy::Client, End::Rst)
        }
        None if cx.quiet_at_end() >= SYN_GIVE_UP_NS || t.syn_ack.len() > 1 => {
            (EndedBy::Client, End::Timeout)
        }
        None => (EndedBy::None, End::CaptureEnd),
    };
    let summary = format!(
        "the server answered with SYN+ACK ({} times) but the client never completed the TCP handshake: a half-open port scan, or the client side drops the SYN+ACK",
        t.syn_ack.len()
    );
    let outcome = if end == End::CaptureEnd {
        Outcome::Incomplete
    } else {
        Outcome::Failure
    };
    Some(cx.decide(
        "handshake_not_completed",
        outcome,
        by,
        end,
        Confidence::Likely,
        summary,
    ))
}

/// Large segments retransmitted and never acknowledged (MTU black hole) or a general stall.
fn mtu_and_stall(cx: &mut Ctx<'_>) -> Option<Decision> {
    let r = cx.r;
    let t = &r.tcp;
    let close = cx.first_close();
    // A normal close by the client after the session is not a stall.
    if cx.phase == Phase::RdpSession && close.is_some_and(|(d, _, _)| d == Dir::ToServer) {
        return None;
    }
    for dir in [Dir::ToServer, Dir::ToClient] {
        let unseen = t.unseen_unacked(dir);
        if unseen == 0 {
            continue;
        }
        let sender = dir.sender();
        let receiver = dir.reverse().sender();
        if let Some(f) = t.seq_jump[dir.index()] {
            cx.ev(
                f,
                format!(
                    "{sender}: sequence number {unseen} bytes ahead of everything that arrived"
                ),
            );
            cx.key = Some(f.number);
        }
        let (by, end) = cx.ev_close_or_open();
        let (cause, what) = if unseen >= MTU_SUSPECT_LEN {
            ("mtu_black_hole", "large packets are lost on the path while small ones get through: a path MTU black hole")
        } else {
            ("stall_retransmissions", "packets are lost on the path")
        };
        let summary = format!(
            "during {} the {sender} sent {unseen} bytes that never reached the {receiver} (its sequence numbers moved past them, the {receiver} never acknowledged them) while its small packets did arrive: {what}",
            cx.phase.name()
        );
        return Some(cx.decide(
            cause,
            Outcome::Failure,
            by,
            end,
            Confidence::Likely,
            summary,
        ));
    }
    for dir in [Dir::ToServer, Dir::ToClient] {
        let unacked: Vec<_> = t
            .retransmits
            .iter()
            .filter(|x| x.dir == dir && !t.acked(dir, x.seq_end))
            .collect();
        if unacked.len() < 2 {
            continue;
        }
        let big = unacked.iter().filter(|x| x.len >= MTU_SUSPECT_LEN).count();
        let small_acked = t.highest_ack[dir.index()].is_some() && t.payload_bytes[dir.index()] > 0;
        let frag_icmp = t.icmp.iter().find(|(_, e, _)| {
            (!e.v6 && e.icmp_type == 3 && e.code == 4) || (e.v6 && e.icmp_type == 2)
        });
        let mtu = big == unacked.len() && small_acked;
        for x in unacked.iter().take(4) {
            cx.ev(
                x.frame,
                format!(
                    "{}: TCP retransmission of {} bytes, never acknowledged",
                    dir.sender(),
                    x.len
                ),
            );
        }
        if let Some((f, e, from)) = frag_icmp {
            cx.ev(
                *f,
                format!(
                    "ICMP {} from {from}, next-hop MTU {}",
                    icmp_name(e),
                    e.mtu.unwrap_or(0)
                ),
            );
        }
        let (by, end) = cx.ev_close_or_open();
        let sender = dir.sender();
        if mtu {
            let size = unacked.iter().map(|x| x.len).max().unwrap_or(0);
            let summary = format!(
                "the {sender}'s {size}-byte segments were retransmitted {} times and never acknowledged while its smaller segments got through during {}: a path MTU black hole",
                unacked.len(),
                cx.phase.name()
            );
            return Some(cx.decide(
                "mtu_black_hole",
                Outcome::Failure,
                by,
                end,
                Confidence::Likely,
                summary,
            ));
        }
        let summary = format!(
            "the connection stalled during {}: the {sender} retransmitted {} segments that were never acknowledged",
            cx.phase.name(),
            unacked.len()
        );
        return Some(cx.decide(
            "stall_retransmissions",
            Outcome::Failure,
            by,
            end,
            Confidence::Likely,
            summary,
        ));
    }
    None
}

/// Bytes that are not RDP, or no RDP request at all.
fn non_rdp(cx: &mut Ctx<'_>) -> Option<Decision> {
    let det = &cx.r.session.details;
    let has_request = det.nego.request_frame.is_some();
    if let Some((f, head, len)) = det.unexpected[1].clone() {
        if det.nego.confirm_frame.is_none() && det.tls.server_hello.is_none() {
            cx.ev_first(|e| matches!(e.kind, EventKind::X224Request { .. }));
            let spoke_first = !has_request && cx.r.tcp.payload_bytes[0] == 0;
            cx.ev(
                f,
                format!("server: {len} bytes that are not RDP (starting {head})"),
            );
            cx.key = Some(f.number);
            let (by, end) = cx.ev_close_or_open();
            let summary = if spoke_first {
                format!("the service on port {} spoke first ({len} bytes starting {head}): it is not an RDP server", cx.r.meta.server.port())
            } else {
                format!("the server answered the RDP request with {len} bytes that are not an X.224 Connection Confirm (starting {head}): another service listens on port {}", cx.r.meta.server.port())
            };
            return Some(cx.decide(
                "not_rdp_service",
                Outcome::Failure,
                by,
                end,
                Confidence::Certain,
                summary,
            ));
        }
    }
    if !has_request && det.nego.confirm_frame.is_none() && cx.phase == Phase::TcpEstablished {
        if let Some((f, head, len)) = det.unexpected[0].clone() {
            cx.ev(f, format!("client: {len} bytes that are not an X.224 Connection Request (starting {head})"));
            let (by, end) = cx.ev_close_or_open();
            let summary = format!(
                "the client sent {len} bytes that are not RDP (starting {head}) to the RDP port"
            );
            return Some(cx.decide(
                "not_rdp_client",
                Outcome::Failure,
                by,
                end,
                Confidence::Certain,
                summary,
            ));
        }
        if !cx.r.meta.saw_syn {
            let last = cx.last_frame();
            cx.ev(last, "last packet of the connection");
            let (by, end) = match cx.first_close() {
                Some((d, _, end)) => (side(d), end),
                None => cx.open_end(),
            };
            let summary = "the capture starts in the middle of this connection and shows nothing RDP can be judged by".to_string();
            return Some(cx.decide(
                "capture_started_mid_connection",
                Outcome::Incomplete,
                by,
                end,
                Confidence::Certain,
                summary,
            ));
        }
        if let Some(f) = cx.r.tcp.established {
            cx.ev(f, "client: TCP handshake completed");
        }
        let server_data = cx.r.tcp.payload_bytes[1] > 0;
        return Some(match cx.ev_close() {
            Some((Dir::ToClient, f, end)) if !server_data => {
                let delay = cx.r.tcp.established.map_or(0, |e| f.ts.nanos_since(e.ts));
                let summary = format!("the server accepted the TCP connection and closed it ({}) {} later, before any RDP exchange", if end == End::Rst { "RST" } else { "FIN" }, secs(delay));
                cx.decide(
                    "server_closed_after_accept",
                    Outcome::Failure,
                    EndedBy::Server,
                    end,
                    Confidence::Certain,
                    summary,
                )
            }
            Some((dir, _, end)) => {
                let summary =
                    "the client connected and closed without sending an RDP request".to_string();
                let cause = if dir == Dir::ToServer {
                    "client_closed_without_request"
                } else {
                    "connection_closed_by_server"
                };
                cx.decide(
                    cause,
                    Outcome::Failure,
                    side(dir),
                    end,
                    Confidence::Certain,
                    summary,
                )
            }
            None => cx.open("after the TCP handshake, before any RDP request"),
        });
    }
    // Request sent, no confirm.
    if has_request
        && det.nego.confirm_frame.is_none()
        && det.tls.server_hello.is_none()
        && cx.phase == Phase::X224Request
    {
        let req = cx.ev_first(|e| matches!(e.kind, EventKind::X224Request { .. }));
        if let Some((f, held, claimed)) = det.incomplete_pdu[1] {
            cx.ev(
                f,
                format!("server: {held} bytes claiming a {claimed}-byte PDU that never completed"),
            );
            let (by, end) = cx.ev_close_or_open();
            let summary = format!("the server answered the RDP request with {held} bytes that do not form an X.224 Connection Confirm: another service listens on port {}", cx.r.meta.server.port());
            return Some(cx.decide(
                "not_rdp_service",
                Outcome::Failure,
                by,
                end,
                Confidence::Likely,
                summary,
            ));
        }
        let req_ts = req.map(|e| e.frame.ts);
        return Some(match cx.ev_close() {
            Some((Dir::ToClient, f, end)) => {
                let delay = req_ts.map_or(0, |t| f.ts.nanos_since(t));
                let summary = format!("the server closed the connection ({}) {} after the X.224 Connection Request without confirming it", if end == End::Rst { "RST" } else { "FIN" }, secs(delay));
                cx.decide(
                    "server_closed_after_x224_request",
                    Outcome::Failure,
                    EndedBy::Server,
                    end,
                    Confidence::Certain,
                    summary,
                )
            }
            Some((_, f, end)) => {
                let wait = req_ts.map_or(0, |t| f.ts.nanos_since(t));
                let summary = format!("the server never answered the X.224 Connection Request; the client gave up after {}", secs(wait));
                cx.decide(
                    "server_silent_after_x224_request",
                    Outcome::Failure,
                    EndedBy::Client,
                    end,
                    Confidence::Certain,
                    summary,
                )
            }
            None => {
                let (by, end) = cx.open_end();
                let last = cx.last_frame();
                cx.ev(last, "last packet of the connection");
                if end == End::Timeout {
                    let wait = req_ts.map_or(0, |t| cx.r.capture_end.nanos_since(t));
                    let summary = format!(
                        "the server never answered the X.224 Connection Request ({} of silence {})",
                        secs(wait),
                        cx.silence_end()
                    );
                    cx.decide(
                        "server_silent_after_x224_request",
                        Outcome::Failure,
                        by,
                        end,
                        Confidence::Likely,
                        summary,
                    )
                } else {
                    cx.decide("capture_ended", Outcome::Incomplete, by, end, Confidence::Certain, "the capture ended while the client waited for the X.224 Connection Confirm".into())
                }
            }
        });
    }
    None
}

/// RDP_NEG_FAILURE, or a selected protocol the client never asked for.
fn negotiation(cx: &mut Ctx<'_>) -> Option<Decision> {
    let det = &cx.r.session.details;
    if let (Some(sel), Some(req), true) =
        (det.nego.selected, det.nego.requested, det.nego.has_neg_req)
    {
        let unrequested = if sel.is_standard_rdp() {
            !req.is_standard_rdp()
        } else {
            sel.0 & req.0 != sel.0
        };
        if unrequested && cx.phase == Phase::X224Confirm {
            cx.ev_first(|e| matches!(e.kind, EventKind::X224Request { .. }));
            let cc = cx.ev_first(|e| matches!(e.kind, EventKind::X224Confirm { .. }));
            cx.key = cc.map(|e| e.frame.number);
            let (by, end) = cx.ev_close_or_open();
            let summary = format!(
                "the client asked for {} but the server selected {}, which the client did not offer, and the connection went no further",
                req.names(),
                sel.names()
            );
            return Some(cx.decide(
                "server_selected_unrequested_protocol",
                Outcome::Failure,
                by,
                end,
                Confidence::Certain,
                summary,
            ));
        }
    }
    let code = det.nego.failure?;
    cx.ev_first(|e| matches!(e.kind, EventKind::X224Request { .. }));
    let cc = cx.ev_first(|e| matches!(e.kind, EventKind::X224Confirm { .. }));
    cx.key = cc.map(|e| e.frame.number);
    cx.ev_close();
    let cause = match code.0 {
        1 => "neg_failure_ssl_required_by_server",
        2 => "neg_failure_ssl_not_allowed_by_server",
        3 => "neg_failure_ssl_cert_not_on_server",
        4 => "neg_failure_inconsistent_flags",
        5 => "neg_failure_hybrid_required_by_server",
        6 => "neg_failure_ssl_with_user_auth_required_by_server",
        _ => "neg_failure_unknown",
    };
    let requested = det.nego.requested.unwrap_or(Protocols(0));
    let summary = format!(
        "the server refused the client's security protocols ({}) with RDP_NEG_FAILURE {code}: {}",
        requested.names(),
        causes::cause_info(cause).map_or("", |c| c.meaning)
    );
    Some(cx.decide(
        cause,
        Outcome::Failure,
        EndedBy::Server,
        End::NegFailure,
        Confidence::Certain,
        summary,
    ))
}

fn alert_cause(from: &str, code: u8, server_hello: bool) -> &'static str {
    match (from, code) {
        (_, 70) => "tls_version_mismatch",
        ("server", 40 | 71) if !server_hello => "tls_no_shared_cipher",
        ("client", 42..=46 | 48 | 49 | 116) => "certificate_rejected_by_client",
        ("server", _) => "tls_alert_from_server",
        _ => "tls_alert_from_client",
    }
}

/// The TLS handshake: alerts, aborts, rejected certificates.
fn tls_rules(cx: &mut Ctx<'_>) -> Option<Decision> {
    let det = &cx.r.session.details;
    let t = &det.tls;
    let uses_tls = det.nego.selected.is_some_and(Protocols::uses_tls) || t.client_hello.is_some();
    if !uses_tls || t.established() {
        // A fatal plaintext alert can still follow an established handshake in TLS 1.2
        // only as an encrypted record; nothing to do here.
        return None;
    }
    let alert = t.alerts.iter().find(|a| a.code.is_some_and(|c| c != 0));
    let ch = cx.ev_first(|e| e.kind == EventKind::ClientHello);
    let sh = cx.ev_first(|e| matches!(e.kind, EventKind::ServerHello { .. }));
    if let Some(a) = alert {
        let code = a.code.unwrap_or(0);
        let cause = alert_cause(a.from, code, t.server_hello.is_some());
        cx.ev_first(|e| matches!(e.kind, EventKind::Certificate { .. }));
        cx.ev(
            a.frame,
            format!(
                "{}: TLS alert {} {} ({code})",
                a.from, a.level, a.description
            ),
        );
        cx.key = Some(a.frame.number);
        cx.ev_close();
        let mut summary = format!(
            "the {} aborted the TLS handshake with a {} {} alert",
            a.from, a.level, a.description
        );
        if cause == "tls_version_mismatch" {
            if let Some(c) = &t.client_hello {
                let offered: Vec<String> =
                    c.versions.iter().map(|v| tls::version_name(*v)).collect();
                summary.push_str(&format!(
                    ": no common TLS version (the client offered {})",
                    offered.join(", ")
                ));
            }
        } else if cause == "tls_no_shared_cipher" {
            let n = t.client_hello.as_ref().map_or(0, |c| c.cipher_suites.len());
            summary.push_str(&format!(
                ": none of the client's {n} cipher suites is acceptable to the server"
            ));
        } else if cause == "certificate_rejected_by_client" {
            if let Some(c) = t.certificates.first() {
                summary.push_str(&format!(
                    ": it did not accept the server certificate '{}' issued by '{}'",
                    c.subject, c.issuer
                ));
            }
        }
        let by = if a.from == "client" {
            EndedBy::Client
        } else {
            EndedBy::Server
        };
        return Some(cx.decide(
            cause,
            Outcome::Failure,
            by,
            End::TlsAlert,
            Confidence::Certain,
            summary,
        ));
    }
    if det.nego.selected.is_some() && ch.is_none() {
        cx.ev_first(|e| matches!(e.kind, EventKind::X224Confirm { .. }));
        return Some(cx.by_closer(
            "connection_closed_by_client",
            "connection_closed_by_server",
            "after the X.224 Connection Confirm, before the TLS handshake started",
        ));
    }
    if sh.is_none() {
        return Some(match cx.ev_close() {
            Some((Dir::ToClient, f, end)) => {
                let delay = ch.map_or(0, |c| f.ts.nanos_since(c.frame.ts));
                let summary = format!("the server closed the connection {} after the TLS ClientHello without answering it: it could not start TLS (certificate, protocol version or cipher policy)", secs(delay));
                cx.decide(
                    "server_closed_after_client_hello",
                    Outcome::Failure,
                    EndedBy::Server,
                    end,
                    Confidence::Certain,
                    summary,
                )
            }
            Some((_, _, end)) => {
                let summary = "the client closed the connection during the TLS handshake, before the server answered its ClientHello".to_string();
                cx.decide(
                    "client_closed_during_tls_handshake",
                    Outcome::Failure,
                    EndedBy::Client,
                    end,
                    Confidence::Certain,
                    summary,
                )
            }
            None => cx.open("during the TLS handshake, waiting for the ServerHello"),
        });
    }
    let cert = cx
        .ev_first(|e| matches!(e.kind, EventKind::Certificate { .. }))
        .is_some();
    Some(match cx.ev_close() {
        Some((Dir::ToServer, _, end)) => {
            let client_ccs = t.ccs[0].is_some();
            if cert && !client_ccs {
                let mut summary = "the client closed the connection after receiving the server's certificate, without finishing the TLS handshake: it did not accept the certificate".to_string();
                if let Some(c) = t.certificates.first() {
                    summary.push_str(&format!(
                        " ('{}' issued by '{}', valid until {})",
                        c.subject, c.issuer, c.not_after
                    ));
                }
                cx.decide(
                    "certificate_rejected_by_client",
                    Outcome::Failure,
                    EndedBy::Client,
                    end,
                    Confidence::Likely,
                    summary,
                )
            } else {
                let summary =
                    "the client closed the connection during the TLS handshake".to_string();
                cx.decide(
                    "client_closed_during_tls_handshake",
                    Outcome::Failure,
                    EndedBy::Client,
                    end,
                    Confidence::Likely,
                    summary,
                )
            }
        }
        Some((_, _, end)) => {
            let summary = "the server closed the connection during the TLS handshake".to_string();
            cx.decide(
                "connection_closed_by_server",
                Outcome::Failure,
                EndedBy::Server,
                end,
                Confidence::Likely,
                summary,
            )
        }
        None => cx.open("during the TLS handshake"),
    })
}

/// After TLS with NLA: the CredSSP exchange, judged from record sizes and who closed.
fn credssp(cx: &mut Ctx<'_>) -> Option<Decision> {
    let det = &cx.r.session.details;
    let t = &det.tls;
    if !t.established() {
        return None;
    }
    let nla = det.nego.selected.is_some_and(Protocols::uses_credssp);
    let close = cx.first_close();
    if t.client_data_records() == 0 {
        // Nothing sent after the handshake.
        if let (Some(alert), Some((Dir::ToServer, _, end))) = (t.client_encrypted_alert(), close) {
            cx.ev_first(|e| matches!(e.kind, EventKind::Certificate { .. }));
            cx.ev(
                alert,
                "client: encrypted TLS alert right after the handshake",
            );
            cx.key = Some(alert.number);
            cx.ev_close();
            let mut summary = "the client completed the TLS handshake, then sent a TLS alert and closed without sending any data: it rejected the server's certificate after checking it".to_string();
            if let Some(c) = t.certificates.first() {
                summary.push_str(&format!(
                    " ('{}' issued by '{}', valid until {})",
                    c.subject, c.issuer, c.not_after
                ));
            }
            return Some(cx.decide(
                "certificate_rejected_by_client",
                Outcome::Failure,
                EndedBy::Client,
                end,
                Confidence::Likely,
                summary,
            ));
        }
        cx.ev_first(|e| e.kind == EventKind::ChangeCipherSpec && e.dir == Some(Dir::ToClient));
        cx.ev_first(|e| e.kind == EventKind::EncryptedHandshake && e.dir == Some(Dir::ToClient));
        return Some(match cx.ev_close() {
            Some((Dir::ToServer, f, end)) => {
                let after = t.ccs[1].map_or(0, |c| f.ts.nanos_since(c.ts));
                let summary = format!("the TLS handshake completed and the client closed the connection {} later without sending anything: a certificate check or probe, or the client did not trust the server", secs(after));
                cx.decide(
                    "client_closed_after_tls_handshake",
                    Outcome::Failure,
                    EndedBy::Client,
                    end,
                    Confidence::Likely,
                    summary,
                )
            }
            Some((_, _, end)) => {
                let summary =
                    "the server closed the connection right after the TLS handshake".to_string();
                cx.decide(
                    "connection_closed_by_server",
                    Outcome::Failure,
                    EndedBy::Server,
                    end,
                    Confidence::Certain,
                    summary,
                )
            }
            None => cx.open("right after the TLS handshake"),
        });
    }
    if !nla || cx.phase != Phase::Credssp {
        return None;
    }
    // Decrypted: judge from the CredSSP messages themselves (errors are handled by the
    // decrypted rules; this is an exchange that stopped without one).
    let requests: Vec<&Event> =
        cx.r.session
            .timeline
            .iter()
            .filter(|e| matches!(e.kind, EventKind::CredsspRequest { .. }))
            .collect();
    if !requests.is_empty() {
        for e in requests.iter().take(8) {
            cx.ev_event(e);
        }
        let last = requests.last().copied();
        let (by, end) = cx.ev_close_or_open();
        let last_what = last.map_or(String::new(), |e| {
            format!("{} (frame {})", e.kind, e.frame.number)
        });
        let last_from = last.and_then(|e| e.dir);
        return Some(match close {
            Some((Dir::ToClient, f, _)) => {
                cx.key = Some(f.number);
                let summary = format!(
                    "NLA failed: the server closed the connection after the client's {last_what} without sending a CredSSP error code: the credentials were refused"
                );
                cx.decide(
                    "nla_authentication_failed",
                    Outcome::Failure,
                    EndedBy::Server,
                    end,
                    Confidence::Likely,
                    summary,
                )
            }
            Some((Dir::ToServer, f, _)) => {
                cx.key = Some(f.number);
                let after = if last_from == Some(Dir::ToClient) {
                    "the server's"
                } else {
                    "its own"
                };
                let summary = format!("the client abandoned NLA after {after} {last_what}");
                cx.decide(
                    "credssp_aborted_by_client",
                    Outcome::Failure,
                    EndedBy::Client,
                    end,
                    Confidence::Likely,
                    summary,
                )
            }
            _ => {
                let summary = format!("the capture ended during NLA, after {last_what}");
                cx.decide(
                    "capture_ended",
                    Outcome::Incomplete,
                    by,
                    end,
                    Confidence::Certain,
                    summary,
                )
            }
        });
    }
    // Records after the handshake, in order.
    let log: Vec<_> = t
        .record_log
        .iter()
        .filter(|l| l.content_type == tls::content_type::APPLICATION_DATA)
        .collect();
    for l in log.iter().take(8) {
        cx.ev(
            l.frame,
            format!(
                "{}: TLS application data, {} bytes (CredSSP, encrypted)",
                l.dir.sender(),
                l.len
            ),
        );
    }
    let server_alert = t
        .alerts
        .iter()
        .find(|a| a.from == "server" && a.code.is_none());
    if let Some(a) = server_alert {
        cx.ev(a.frame, "server: encrypted TLS alert");
        cx.key = Some(a.frame.number);
        cx.ev_close();
        let summary = format!(
            "NLA failed: after the client's CredSSP messages ({} records) the server sent an encrypted TLS alert and the connection ended; typically wrong credentials or an account restriction",
            t.app_records[0]
        );
        return Some(cx.decide(
            "nla_authentication_failed",
            Outcome::Failure,
            EndedBy::Server,
            End::TlsAlert,
            Confidence::Likely,
            summary,
        ));
    }
    Some(match close {
        Some((Dir::ToClient, _, end)) => {
            cx.ev_close();
            let summary = format!(
                "the server closed the connection during NLA after {} CredSSP records from the client: authentication was refused",
                t.app_records[0]
            );
            cx.decide(
                "nla_authentication_failed",
                Outcome::Failure,
                EndedBy::Server,
                end,
                Confidence::Likely,
                summary,
            )
        }
        Some((Dir::ToServer, f, end)) => {
            cx.ev_close();
            // The server's last record before the client gave up: a CredSSP TSRequest that
            // carries only an errorCode (or a 4-byte Early User Authorization Result) is
            // tiny once encrypted, while a successful pubKeyAuth answer is not.
            let last_server = t.record_log.iter().rev().find(|l| {
                l.dir == Dir::ToClient
                    && l.content_type == tls::content_type::APPLICATION_DATA
                    && l.frame.number < f.number
            });
            let quick = last_server.is_some_and(|s| f.ts.nanos_since(s.frame.ts) < 1_000_000_000);
            match last_server {
                Some(s) if quick && s.len <= CREDSSP_ERROR_MAX_RECORD && t.app_records[0] >= 2 => {
                    cx.ev(s.frame, format!("server: {}-byte encrypted record, the size of a CredSSP error (errorCode) or an Early User Authorization denial", s.len));
                    cx.key = Some(s.frame.number);
                    let summary = format!(
                        "NLA failed: after the client's credentials the server answered with a {}-byte record, the size of a CredSSP error code, and the client closed {} later: wrong password, locked, expired or restricted account, or no right to log on through Remote Desktop",
                        s.len,
                        secs(f.ts.nanos_since(s.frame.ts))
                    );
                    cx.decide(
                        "nla_authentication_failed",
                        Outcome::Failure,
                        EndedBy::Server,
                        end,
                        Confidence::Likely,
                        summary,
                    )
                }
                _ => {
                    let summary = format!(
                        "the client abandoned NLA after {} CredSSP records of its own and {} of the server's (the server's last answer was not an error by its size)",
                        t.app_records[0], t.app_records[1]
                    );
                    cx.decide(
                        "credssp_aborted_by_client",
                        Outcome::Failure,
                        EndedBy::Client,
                        end,
                        Confidence::Possible,
                        summary,
                    )
                }
            }
        }
        _ => cx.open("during NLA (CredSSP)"),
    })
}

/// The last step of the connection sequence reached before the session: the first
/// licensing PDU, or the Demand / Confirm Active (read or inferred).
fn sequence_step<'a>(cx: &Ctx<'a>) -> Option<&'a Event> {
    match cx.phase {
        Phase::Licensing => cx.find(|e| matches!(e.kind, EventKind::Licensing { .. })),
        Phase::Capabilities => cx.r.session.timeline.iter().rev().find(|e| match &e.kind {
            EventKind::ShareControl { name } | EventKind::InferredPdu { name, .. } => {
                matches!(*name, "Demand Active" | "Confirm Active")
            }
            _ => false,
        }),
        _ => None,
    }
}

/// Connection sequence after negotiation, before the session (MCS, security, licensing,
/// capabilities).
fn setup(cx: &mut Ctx<'_>) -> Decision {
    let det = &cx.r.session.details;
    if let Some(cr) = &det.mcs.connect_response {
        if cr.result != 0 {
            cx.ev_first(|e| matches!(e.kind, EventKind::McsConnectResponse { .. }));
            cx.ev_close();
            let (by, end) = match cx.first_close() {
                Some((d, _, e)) => (side(d), e),
                None => cx.open_end(),
            };
            let summary = format!(
                "the server rejected the MCS Connect Initial with result {}",
                codes::mcs_result_name(cr.result)
            );
            return cx.decide(
                "mcs_connect_rejected",
                Outcome::Failure,
                by,
                end,
                Confidence::Certain,
                summary,
            );
        }
    }
    cx.ev_first(|e| matches!(e.kind, EventKind::X224Confirm { .. }));
    cx.ev_first(|e| e.kind == EventKind::McsConnectInitial);
    cx.ev_first(|e| matches!(e.kind, EventKind::McsConnectResponse { .. }));
    if cx.phase >= Phase::Licensing {
        cx.ev_first(|e| e.kind == EventKind::ClientInfo);
    }
    let dur = cx.last_frame().ts.nanos_since(cx.r.meta.first.ts);
    if let Some(d) = server_reported_error(cx, dur) {
        return d;
    }
    if let Some(ev) = sequence_step(cx) {
        cx.ev_event(ev);
    }
    if let Some((dir, reason, f)) = det.mcs.disconnect {
        cx.ev(
            f,
            format!(
                "{}: MCS Disconnect Provider Ultimatum ({})",
                dir.sender(),
                codes::mcs_reason_name(reason)
            ),
        );
        cx.ev_close();
        let cause = if dir == Dir::ToClient {
            "server_closed_during_setup"
        } else {
            "client_closed_during_setup"
        };
        let mut summary = format!(
            "the {} disconnected during the connection sequence ({}), before the session started",
            dir.sender(),
            cx.phase.name()
        );
        if dir == Dir::ToClient
            && !det.nego.has_neg_req
            && det.mcs.connect_response.is_none()
            && det.nego.request_frame.is_some()
        {
            summary.push_str(": the client's request carried no RDP_NEG_REQ (Standard RDP Security only) and the server gave up at the MCS Connect Initial, as servers that require TLS or NLA do with legacy requests");
        }
        if let (Dir::ToClient, Some(info)) = (dir, det.mcs.client_info) {
            if info.number < f.number && det.mcs.server_pdus_after_info == 0 {
                summary.push_str(&format!(", right after the client's Client Info PDU (frame {}): the server rejected the logon information in it (a decryption/MAC error, or the credentials)", info.number));
            }
        }
        return cx.decide(
            cause,
            Outcome::Failure,
            side(dir),
            End::McsDisconnect,
            Confidence::Certain,
            summary,
        );
    }
    let what = format!(
        "during the connection sequence ({}), before the session started",
        cx.phase.name()
    );
    let mut d = cx.by_closer(
        "client_closed_during_setup",
        "server_closed_during_setup",
        &what,
    );
    if det.tls.established() && cx.phase == Phase::McsConnect && d.confidence == Confidence::Certain
    {
        d.confidence = Confidence::Likely;
    }
    d
}

/// errorInfo values of licensing failures (MS-RDPBCGR 2.2.5.1.1 ERRINFO_LICENSE_*).
const LICENSE_ERROR_INFO: std::ops::RangeInclusive<u32> = 0x100..=0x10A;

/// A Set Error Info the server sent before disconnecting, or a licensing Error Alert other
/// than STATUS_VALID_CLIENT, in whichever phase it came: `dur` is how long the connection ran.
/// In the session, the user's own logoff or disconnect is a normal end; before it, any
/// non-zero errorInfo is the server's refusal.
fn server_reported_error(cx: &mut Ctx<'_>, dur: i64) -> Option<Decision> {
    let m = &cx.r.session.details.mcs;
    let in_session = cx.phase == Phase::RdpSession;
    let phase = cx.phase.name();
    if let Some(code) = m.set_error_info.filter(|c| in_session || *c != 0) {
        let sei = cx.ev_first(|e| matches!(e.kind, EventKind::SetErrorInfo { .. }));
        cx.key = sei.map(|e| e.frame.number);
        cx.ev_close();
        let name = codes::error_info_name(code).unwrap_or("unknown");
        let desc = codes::error_info_description(code).unwrap_or("");
        if in_session && USER_ENDED.contains(&code) {
            let summary = format!("the session ran {} and ended by the user's action: Set Error Info {name} ({code:#x})", secs(dur));
            return Some(cx.decide(
                "session_ended_normally",
                Outcome::Success,
                EndedBy::Client,
                End::McsDisconnect,
                Confidence::Certain,
                summary,
            ));
        }
        let (cause, when) = if LICENSE_ERROR_INFO.contains(&code) {
            ("licensing_failed", format!(" during {phase}"))
        } else if in_session {
            ("server_error_info", String::new())
        } else {
            (
                "server_error_info",
                format!(" during {phase}, before the session started"),
            )
        };
        let summary = format!(
            "the server sent Set Error Info {name} ({code:#x}){when} and disconnected: {desc}"
        );
        return Some(cx.decide(
            cause,
            Outcome::Failure,
            EndedBy::Server,
            End::McsDisconnect,
            Confidence::Certain,
            summary,
        ));
    }
    if let Some((code, state)) = m.license_error.filter(|(code, _)| *code != 7) {
        cx.ev_first(|e| matches!(e.kind, EventKind::Licensing { error: Some(_) }));
        cx.ev_close();
        let (by, end) = match cx.first_close() {
            Some((d, _, e)) => (side(d), e),
            None => cx.open_end(),
        };
        let summary = format!(
            "licensing failed: the server sent {} ({})",
            codes::license_error_name(code).unwrap_or("an unknown licensing error"),
            codes::license_state_name(state).unwrap_or("unknown transition")
        );
        return Some(cx.decide(
            "licensing_failed",
            Outcome::Failure,
            by,
            end,
            Confidence::Certain,
            summary,
        ));
    }
    None
}

/// The session was reached: how did it end?
fn session(cx: &mut Ctx<'_>) -> Decision {
    let det = &cx.r.session.details;
    let m = &det.mcs;
    cx.ev_first(|e| matches!(e.kind, EventKind::X224Request { .. }));
    cx.ev_first(|e| matches!(e.kind, EventKind::X224Confirm { .. }));
    if cx.ev_first(|e| e.kind == EventKind::ClientInfo).is_none() {
        cx.ev_first(|e| {
            matches!(e.kind, EventKind::FirstAppData { .. }) && e.dir == Some(Dir::ToClient)
        });
        cx.ev_first(|e| e.kind == EventKind::FastPath);
    }
    let dur = cx.last_frame().ts.nanos_since(cx.r.meta.first.ts);
    if let Some(d) = server_reported_error(cx, dur) {
        return d;
    }
    let dpum = m.disconnect;
    let dr = m.x224_disconnect;
    let close = cx.first_close();
    match (dpum, dr) {
        (Some((Dir::ToClient, reason, f)), _) => {
            cx.ev(
                f,
                format!(
                    "server: MCS Disconnect Provider Ultimatum ({})",
                    codes::mcs_reason_name(reason)
                ),
            );
            cx.key = Some(f.number);
            cx.ev_close();
            let summary = format!(
                "the session ran {} and the server ended it with an MCS Disconnect Provider Ultimatum; the reason (Set Error Info) is encrypted: a logoff, a time limit or an administrator's disconnect",
                secs(dur)
            );
            return cx.decide(
                "session_ended_by_server",
                Outcome::Incomplete,
                EndedBy::Server,
                End::McsDisconnect,
                Confidence::Likely,
                summary,
            );
        }
        (Some((Dir::ToServer, _, f)), _) | (None, Some((Dir::ToServer, f))) => {
            cx.ev(f, "client: RDP disconnect");
            cx.ev_close();
            let end = if dpum.is_some() {
                End::McsDisconnect
            } else {
                End::X224Disconnect
            };
            let summary = format!(
                "the session ran {} and the client disconnected it",
                secs(dur)
            );
            return cx.decide(
                "session_closed_by_client",
                Outcome::Success,
                EndedBy::Client,
                end,
                Confidence::Certain,
                summary,
            );
        }
        _ => {}
    }
    let inferred = if det.tls.established() && m.client_info.is_none() {
        " (inferred from the volume of encrypted data)"
    } else {
        ""
    };
    match close {
        Some((Dir::ToServer, _, end)) => {
            cx.ev_close();
            let summary = format!(
                "the session was established{inferred}, ran {} and the client closed it",
                secs(dur)
            );
            let conf = if inferred.is_empty() {
                Confidence::Certain
            } else {
                Confidence::Likely
            };
            cx.decide(
                "session_closed_by_client",
                Outcome::Success,
                EndedBy::Client,
                end,
                conf,
                summary,
            )
        }
        // Encrypted: a last small server record right before the server's close is the size
        // of an MCS Disconnect Provider Ultimatum (9 bytes in clear plus TLS overhead).
        Some((Dir::ToClient, f, end))
            if !inferred.is_empty()
                && det.tls.last_app[1].is_some_and(|l| {
                    l.number <= f.number && f.ts.nanos_since(l.ts) < 2_000_000_000
                })
                && det.tls.last_app_len[1] <= DISCONNECT_SIZED_RECORD =>
        {
            let rec = det.tls.last_app[1].unwrap_or(f);
            cx.ev(rec, format!("server: {}-byte encrypted record, the size of an MCS Disconnect Provider Ultimatum", det.tls.last_app_len[1]));
            cx.key = Some(rec.number);
            cx.ev_close();
            let summary = format!(
                "the session was established{inferred}, ran {} and the server ended it: its last record before closing has the size of an RDP disconnect; the reason (Set Error Info) is encrypted: a logoff, a time limit or an administrator's disconnect",
                secs(dur)
            );
            cx.decide(
                "session_ended_by_server",
                Outcome::Incomplete,
                EndedBy::Server,
                end,
                Confidence::Possible,
                summary,
            )
        }
        Some((_, f, end)) => {
            cx.ev_close();
            let summary = format!(
                "the session was established{inferred} and the server cut it with a TCP {} after {} without an RDP disconnect",
                if end == End::Rst { "RST" } else { "FIN" },
                secs(f.ts.nanos_since(cx.r.meta.first.ts))
            );
            cx.decide(
                "session_reset_by_server",
                Outcome::Failure,
                EndedBy::Server,
                end,
                Confidence::Likely,
                summary,
            )
        }
        None => {
            let (by, end) = cx.open_end();
            let last = cx.last_frame();
            cx.ev(last, "last packet of the connection");
            let summary = format!("the session was established{inferred} and still open when the capture ended ({} seen)", secs(dur));
            cx.decide(
                "session_in_progress",
                Outcome::Success,
                by,
                end,
                Confidence::Certain,
                summary,
            )
        }
    }
}
