//! Verdicts for RDP-over-UDP transports (MS-RDPEUDP), in the same vocabulary as TCP:
//! `tcp_syn` means RDPEUDP SYNs without SYN+ACK, `tcp_established` SYN+ACK seen, the TLS
//! phases the (D)TLS handshake carried inside.

use super::causes;
use super::verdict::{Confidence, End, EndedBy, Evidence, Outcome, Phase, Verdict};
use crate::capture::Timestamp;
use crate::flow::udp::UdpMeta;
use crate::flow::{Dir, FrameRef};
use crate::session::udp::UdpSession;

/// Silence after the last SYN after which the client is taken to have given up.
const GIVE_UP_NS: i64 = 3_000_000_000;

fn ev(evidence: &mut Vec<Evidence>, f: FrameRef, what: impl Into<String>) {
    evidence.push(Evidence {
        frame: f.number,
        time: f.ts.rfc3339(),
        what: what.into(),
    });
}

/// Diagnoses one UDP transport.
pub fn diagnose_udp(
    meta: &UdpMeta,
    last: FrameRef,
    s: &UdpSession,
    capture_end: Timestamp,
) -> Verdict {
    let mut evidence = Vec::new();
    let mut notes = Vec::new();
    // RDPEUDP2 frames its payload differently, so records after the handshake are not always
    // found: data flowing both ways after the ServerHello shows the handshake completed.
    // Application data both ways after the hellos means the handshake completed.
    let established = s.server_hello.is_some() && s.app_records.iter().all(|n| *n > 0)
        || s.server_hello.is_some() && s.data.iter().all(|n| *n >= 8)
        || s.ccs.iter().all(Option::is_some)
        || ((s.syn.is_empty() || s.client_hello.is_some()) && s.app_records.iter().all(|n| *n > 0));
    let phase = if established {
        Phase::TlsEstablished
    } else if s.client_hello.is_some() || s.hello_verify.is_some() || s.server_hello.is_some() {
        Phase::TlsHandshake
    } else if !s.syn_ack.is_empty() || s.syn.is_empty() {
        Phase::TcpEstablished
    } else {
        Phase::TcpSyn
    };
    if s.syn.is_empty() {
        notes
            .push("the capture starts after this UDP transport was set up (no RDPEUDP SYN)".into());
    }
    let quiet = capture_end.nanos_since(last.ts);
    let mode = if s.lossy {
        "lossy (DTLS)"
    } else {
        "reliable (TLS)"
    };
    let (cause, outcome, ended_by, end, confidence, summary);
    if let Some((dir, f, level, desc)) = s.alerts.first() {
        ev(
            &mut evidence,
            *f,
            format!("{}: alert {level}/{desc}", dir.sender()),
        );
        cause = "udp_transport_failed";
        outcome = Outcome::Failure;
        ended_by = if *dir == Dir::ToServer {
            EndedBy::Client
        } else {
            EndedBy::Server
        };
        end = End::TlsAlert;
        confidence = Confidence::Certain;
        summary = format!(
            "the {} aborted the handshake inside the {mode} RDP-over-UDP transport with an alert",
            dir.sender()
        );
    } else if phase == Phase::TcpSyn {
        for f in s.syn.iter().take(4) {
            ev(&mut evidence, *f, "client: RDPEUDP SYN");
        }
        let n = s.syn.len();
        let gave_up = n >= 2 || quiet >= GIVE_UP_NS;
        cause = "udp_no_answer";
        outcome = if gave_up {
            Outcome::Failure
        } else {
            Outcome::Incomplete
        };
        ended_by = if gave_up {
            EndedBy::Client
        } else {
            EndedBy::None
        };
        end = if gave_up {
            End::Timeout
        } else {
            End::CaptureEnd
        };
        confidence = Confidence::Certain;
        summary = format!(
            "the client sent {n} RDPEUDP SYN{} ({mode}) to {} and the server never answered: RDP over UDP is blocked or disabled, so the session (if any) runs over TCP only",
            if n == 1 { "" } else { "s" },
            meta.server
        );
    } else if established {
        if let Some(f) = s.server_hello.or(s.syn_ack.first().copied()) {
            ev(&mut evidence, f, "server: handshake answer inside RDPEUDP");
        }
        ev(&mut evidence, last, "last datagram");
        cause = "udp_transport_established";
        outcome = Outcome::Success;
        ended_by = if s.fin.is_some() {
            EndedBy::Client
        } else {
            EndedBy::None
        };
        end = if quiet >= 10_000_000_000 {
            End::Timeout
        } else {
            End::CaptureEnd
        };
        confidence = Confidence::Certain;
        summary = format!(
            "the {mode} RDP-over-UDP transport was established ({} / {} encrypted records client/server)",
            s.app_records[0], s.app_records[1]
        );
    } else {
        if let Some(f) = s.syn_ack.first() {
            ev(&mut evidence, *f, "server: RDPEUDP SYN+ACK");
        }
        if let Some(f) = s.client_hello {
            ev(&mut evidence, f, "client: ClientHello inside RDPEUDP");
        }
        if let Some(f) = s.hello_verify {
            ev(&mut evidence, f, "server: DTLS HelloVerifyRequest");
        }
        ev(&mut evidence, last, "last datagram");
        let timed_out = quiet >= 10_000_000_000;
        cause = if timed_out {
            "udp_handshake_stalled"
        } else {
            "capture_ended"
        };
        outcome = if timed_out {
            Outcome::Failure
        } else {
            Outcome::Incomplete
        };
        ended_by = EndedBy::None;
        end = if timed_out {
            End::Timeout
        } else {
            End::CaptureEnd
        };
        confidence = Confidence::Likely;
        summary = if timed_out {
            format!(
                "the {mode} RDP-over-UDP transport was accepted but its handshake never completed"
            )
        } else {
            format!("the capture ended during the {mode} RDP-over-UDP handshake")
        };
    }
    if let Some(v) = s.client_version {
        notes.push(format!(
            "RDPEUDP version offered {v:#x}{}",
            s.server_version
                .map_or(String::new(), |sv| format!(", answered {sv:#x}"))
        ));
    }
    evidence.sort_by_key(|e| e.frame);
    let key_frame = evidence.last().map(|e| e.frame);
    Verdict {
        phase,
        phase_inferred: false,
        outcome,
        ended_by,
        end,
        cause,
        summary,
        remedy: causes::remedy(cause),
        confidence,
        evidence,
        key_frame,
        notes,
    }
}
