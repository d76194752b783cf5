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
    /// MCS Connect Initial sent.
    McsConnect,
    /// The RDP session is running (Client Info, licensing or session data seen or inferred).
    RdpSession,
}

impl Phase {
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
