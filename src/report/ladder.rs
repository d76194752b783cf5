//! Ladder diagrams: client on the left, server on the right, one arrow per event, phases
//! marked and the failing step highlighted. Text for terminals; the HTML report draws the
//! same rungs as SVG.

use std::io::{self, Write};

use crate::diagnose::Outcome;
use crate::flow::Dir;
use crate::pipeline::Diagnosed;
use crate::session::EventKind;

/// One step of a ladder.
#[derive(Debug, Clone, PartialEq)]
pub struct Rung {
    /// Wireshark frame number.
    pub frame: u64,
    /// Seconds since the connection's first frame.
    pub rel_s: f64,
    /// Sender (`None`: an event of no direction).
    pub from: Option<Dir>,
    /// What happened.
    pub label: String,
    /// Phase band: TCP, X.224, TLS, CredSSP, MCS, licensing, capabilities, RDP, network, close.
    pub band: &'static str,
    /// Whether this is the failing step.
    pub fail: bool,
}

fn band(kind: &EventKind, nla: bool) -> &'static str {
    use EventKind as K;
    match kind {
        K::Syn { .. }
        | K::SynAck { .. }
        | K::Established
        | K::Retransmission { .. }
        | K::ZeroWindow
        | K::Gap { .. } => "TCP",
        K::Fin | K::Rst => "close",
        K::Icmp { .. } => "network",
        K::X224Request { .. } | K::X224Confirm { .. } | K::X224Disconnect => "X.224",
        K::ClientHello
        | K::ServerHello { .. }
        | K::Certificate { .. }
        | K::Handshake { .. }
        | K::ChangeCipherSpec
        | K::EncryptedHandshake
        | K::Alert { .. } => "TLS",
        K::FirstAppData { .. } if nla => "CredSSP",
        K::FirstAppData { .. } => "TLS data",
        K::Unexpected { .. } | K::Malformed { .. } => "not RDP",
        K::CredsspRequest { .. } | K::EarlyUserAuth { .. } => "CredSSP",
        K::McsConnectInitial
        | K::McsConnectResponse { .. }
        | K::McsDomain { .. }
        | K::SecurityExchange
        | K::ClientInfo => "MCS",
        K::Licensing { .. } => "licensing",
        K::ShareControl { name } | K::InferredPdu { name, .. }
            if matches!(*name, "Demand Active" | "Confirm Active") =>
        {
            "capabilities"
        }
        _ => "RDP",
    }
}

/// The rungs of a connection's ladder, the failing step marked.
pub fn ladder(d: &Diagnosed) -> Vec<Rung> {
    let r = &d.record;
    let t0 = r.meta.first.ts;
    let nla = r
        .session
        .details
        .nego
        .selected
        .is_some_and(|p| p.uses_credssp());
    let mut rungs: Vec<Rung> = r
        .session
        .timeline
        .iter()
        .map(|e| Rung {
            frame: e.frame.number,
            rel_s: e.frame.ts.nanos_since(t0) as f64 / 1e9,
            from: e.dir,
            label: e.kind.to_string(),
            band: band(&e.kind, nla),
            fail: false,
        })
        .collect();
    let v = &d.verdict;
    if v.outcome != Outcome::Success {
        if let Some(key) = v.key_frame {
            match rungs.iter_mut().rev().find(|g| g.frame == key) {
                Some(g) => g.fail = true,
                None => {
                    // The decisive frame is evidence but no timeline event (e.g. a sequence jump).
                    if let Some(e) = v.evidence.iter().find(|e| e.frame == key) {
                        let from = if e.what.starts_with("client") {
                            Some(Dir::ToServer)
                        } else if e.what.starts_with("server") {
                            Some(Dir::ToClient)
                        } else {
                            None
                        };
                        let label = e
                            .what
                            .split_once(": ")
                            .map_or(e.what.as_str(), |(_, w)| w)
                            .to_string();
                        let at = rungs
                            .iter()
                            .position(|g| g.frame > key)
                            .unwrap_or(rungs.len());
                        let rel_s = rungs.get(at.saturating_sub(1)).map_or(0.0, |g| g.rel_s);
                        rungs.insert(
                            at,
                            Rung {
                                frame: key,
                                rel_s,
                                from,
                                label,
                                band: "TCP",
                                fail: true,
                            },
                        );
                    }
                }
            }
        }
    }
    rungs
}

/// Width of the arrow between the two columns.
const ARROW: usize = 58;

fn arrow(label: &str, from: Option<Dir>) -> String {
    let max = ARROW - 6;
    let label: String = if label.chars().count() > max {
        label
            .chars()
            .take(max - 1)
            .chain(std::iter::once('…'))
            .collect()
    } else {
        label.to_string()
    };
    let inner = format!(" {label} ");
    let n = inner.chars().count();
    let pad = ARROW.saturating_sub(n);
    let (l, r) = (pad / 2, pad - pad / 2);
    match from {
        Some(Dir::ToServer) => format!(
            "{}{inner}{}>",
            "-".repeat(l),
            "-".repeat(r.saturating_sub(1))
        ),
        Some(Dir::ToClient) => format!(
            "<{}{inner}{}",
            "-".repeat(l.saturating_sub(1)),
            "-".repeat(r)
        ),
        None => format!("{}{inner}{}", " ".repeat(l), " ".repeat(r)),
    }
}

/// Writes a connection's ladder as text. With `color`, the failing step is red (ANSI);
/// without, it is marked `x` in the margin either way.
pub fn write_ladder(out: &mut dyn Write, d: &Diagnosed, color: bool) -> io::Result<()> {
    let rungs = ladder(d);
    let (red, bold, reset) = if color {
        ("\x1b[31;1m", "\x1b[1m", "\x1b[0m")
    } else {
        ("", "", "")
    };
    writeln!(
        out,
        "     {:>7}  {:>9}  {bold}client{reset}{:>w$}{bold}server{reset}",
        "frame",
        "time",
        "",
        w = ARROW - 4
    )?;
    let mut band = "";
    for g in &rungs {
        if g.band != band {
            band = g.band;
            writeln!(
                out,
                "     {:>7}  {:>9}  ·{:-^w$}·",
                "",
                "",
                format!(" {band} "),
                w = ARROW
            )?;
        }
        let mark = if g.fail { "x" } else { " " };
        let (c0, c1) = if g.fail { (red, reset) } else { ("", "") };
        writeln!(
            out,
            "   {mark} {:>7}  +{:>7.3}s  |{c0}{}{c1}|",
            g.frame,
            g.rel_s,
            arrow(&g.label, g.from)
        )?;
    }
    let v = &d.verdict;
    if v.outcome != Outcome::Success {
        writeln!(out, "     {red}x {}: {}{reset}", v.cause, v.summary)?;
    }
    Ok(())
}

/// The rungs of an RDP-over-UDP transport (its notable datagrams), the decisive one marked.
pub fn udp_rungs(u: &crate::pipeline::UdpDiagnosed) -> Vec<Rung> {
    let t0 = u.meta.first.ts;
    let fail_at = (u.verdict.outcome != Outcome::Success)
        .then_some(u.verdict.key_frame)
        .flatten();
    u.session
        .timeline
        .iter()
        .map(|e| Rung {
            frame: e.frame.number,
            rel_s: e.frame.ts.nanos_since(t0) as f64 / 1e9,
            from: Some(e.dir),
            label: e.what.clone(),
            band: "UDP",
            fail: fail_at == Some(e.frame.number),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrows_point_and_fit() {
        let a = arrow("TCP SYN", Some(Dir::ToServer));
        assert!(a.ends_with('>') && a.chars().count() == ARROW);
        let b = arrow("TCP SYN+ACK", Some(Dir::ToClient));
        assert!(b.starts_with('<') && b.chars().count() == ARROW);
        let long = arrow(&"x".repeat(200), None);
        assert!(long.chars().count() <= ARROW + 1);
    }
}
