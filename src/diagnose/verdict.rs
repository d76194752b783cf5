//! The stable vocabulary of a verdict (documented in README.md: scripts depend on it).

use serde::Serialize;

/// The furthest phase a connection reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// A SYN was seen; the TCP handshake never completed.
    #[default]
    TcpSyn,
    /// TCP connected; no X.224 request.
    TcpEstablished,
    /// X.224 Connection Request sent; no confirm.
    X224Request,
    /// X.224 Connection Confirm received (including a negotiation failure).
    X224Confirm,
    /// TLS ClientHello sent; handshake not finished.
    TlsHandshake,
    /// TLS handshake finished.
    TlsEstablished,
    /// CredSSP (NLA) exchange under way.
    Credssp,
    /// MCS Connect Initial sent: basic settings, channel connection, security commencement,
    /// Client Info and connect-time auto-detection (MS-RDPBCGR 1.3.1.1 phases 2-6).
    McsConnect,
    /// Licensing PDUs exchanged after Client Info (MS-RDPBCGR 1.3.1.1 phase 7, 2.2.1.12).
    Licensing,
    /// Capabilities exchange: the server's Demand Active PDU seen or inferred
    /// (MS-RDPBCGR 1.3.1.1 phase 9, 2.2.1.13).
    Capabilities,
    /// The RDP session: connection finalization begun (Synchronize, Control, Font List / Font
    /// Map, MS-RDPBCGR 1.3.1.1 phase 10) or session data seen or inferred.
    RdpSession,
}

impl Phase {
    /// Every phase, in connection order.
    pub const ALL: [Phase; 11] = [
        Phase::TcpSyn,
        Phase::TcpEstablished,
        Phase::X224Request,
        Phase::X224Confirm,
        Phase::TlsHandshake,
        Phase::TlsEstablished,
        Phase::Credssp,
        Phase::McsConnect,
        Phase::Licensing,
        Phase::Capabilities,
        Phase::RdpSession,
    ];

    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Phase::TcpSyn => "tcp_syn",
            Phase::TcpEstablished => "tcp_established",
            Phase::X224Request => "x224_request",
            Phase::X224Confirm => "x224_confirm",
            Phase::TlsHandshake => "tls_handshake",
            Phase::TlsEstablished => "tls_established",
            Phase::Credssp => "credssp",
            Phase::McsConnect => "mcs_connect",
            Phase::Licensing => "licensing",
            Phase::Capabilities => "capabilities",
            Phase::RdpSession => "rdp_session",
        }
    }
}

/// How the connection turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Session established and closed by the client or still running.
    Success,
    /// Every other end.
    Failure,
    /// The capture does not show enough to tell.
    #[default]
    Incomplete,
}

/// The side whose decision ended the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EndedBy {
    /// The client.
    Client,
    /// The server.
    Server,
    /// A router or firewall on the path (ICMP error).
    Network,
    /// Nobody: still open when the capture ended.
    #[default]
    None,
}

/// How the connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum End {
    /// TCP reset.
    Rst,
    /// TCP FIN.
    Fin,
    /// ICMP error.
    Icmp,
    /// RDP_NEG_FAILURE.
    NegFailure,
    /// TLS alert.
    TlsAlert,
    /// X.224 Disconnect Request.
    X224Disconnect,
    /// MCS Disconnect Provider Ultimatum.
    McsDisconnect,
    /// Silence until the capture ended, or retries gave up.
    Timeout,
    /// Still open when the capture ended.
    #[default]
    CaptureEnd,
}

/// How sure the diagnosis is: `certain` (the packets show it), `likely` (a typical pattern
/// of what is visible), `possible` (inferred from sizes and timing of encrypted records; a
/// key log would confirm it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// Inferred from sizes and timing of encrypted traffic.
    #[default]
    Possible,
    /// Inferred from a typical pattern.
    Likely,
    /// Shown by the packets themselves.
    Certain,
}

impl Confidence {
    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Confidence::Possible => "possible",
            Confidence::Likely => "likely",
            Confidence::Certain => "certain",
        }
    }
}

/// One frame backing a verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    /// Wireshark frame number.
    pub frame: u64,
    /// RFC 3339 time of the frame.
    pub time: String,
    /// What it shows.
    pub what: String,
}

/// The diagnosis of one connection.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// Furthest phase reached.
    pub phase: Phase,
    /// Whether `phase` was inferred from encrypted traffic rather than seen.
    pub phase_inferred: bool,
    /// Success, failure or incomplete.
    pub outcome: Outcome,
    /// Who decided the end.
    pub ended_by: EndedBy,
    /// How it ended.
    pub end: End,
    /// Stable snake_case cause code.
    pub cause: &'static str,
    /// One sentence saying what happened.
    pub summary: String,
    /// What an administrator can do about it.
    pub remedy: &'static str,
    /// How sure the diagnosis is.
    pub confidence: Confidence,
    /// The frames that show it.
    pub evidence: Vec<Evidence>,
    /// The frame of the decisive event (the one to open first in Wireshark).
    pub key_frame: Option<u64>,
    /// Other observations (capture loss, retransmissions, limits hit).
    pub notes: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Phases are listed in connection order, and every one is in README.md's phase table.
    #[test]
    fn phases_in_order_and_documented() {
        assert!(Phase::ALL.windows(2).all(|w| w[0] < w[1]));
        let readme = include_str!("../../README.md");
        for p in Phase::ALL {
            assert!(
                readme.contains(&format!("| `{}` |", p.name())),
                "phase {} missing from README.md's phase table",
                p.name()
            );
        }
    }
}
