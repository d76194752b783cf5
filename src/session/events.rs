//! The timeline: what happened on a connection, frame by frame.

use std::fmt;

use serde::Serialize;

use crate::decode::IcmpError;
use crate::flow::{Dir, FrameRef};
use crate::proto::codes;
use crate::proto::nego::{NegResult, Protocols};
use crate::proto::tls;

/// One timeline entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The frame that shows it (for a PDU spanning segments: the frame completing it).
    pub frame: FrameRef,
    /// Who sent it (`None` for events of no direction).
    pub dir: Option<Dir>,
    /// What happened.
    pub kind: EventKind,
}

/// What happened, in protocol terms.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// TCP SYN.
    Syn {
        /// Not the first one.
        retransmit: bool,
    },
    /// TCP SYN+ACK.
    SynAck {
        /// Not the first one.
        retransmit: bool,
    },
    /// The handshake-completing ACK.
    Established,
    /// TCP FIN.
    Fin,
    /// TCP RST.
    Rst,
    /// First retransmitted data segment of a run.
    Retransmission {
        /// Payload length.
        len: u32,
    },
    /// Zero window advertised.
    ZeroWindow,
    /// Bytes missing from the capture.
    Gap {
        /// How many.
        bytes: u64,
    },
    /// ICMP error quoting the connection.
    Icmp {
        /// The error.
        error: IcmpError,
        /// Its sender.
        from: std::net::IpAddr,
    },
    /// X.224 Connection Request.
    X224Request {
        /// requestedProtocols (PROTOCOL_RDP when no RDP_NEG_REQ).
        requested: Protocols,
        /// Whether RDP_NEG_REQ was present.
        has_neg_req: bool,
    },
    /// X.224 Connection Confirm.
    X224Confirm {
        /// RDP_NEG_RSP / RDP_NEG_FAILURE, `None` for a legacy confirm.
        neg: Option<NegResult>,
    },
    /// X.224 Disconnect Request.
    X224Disconnect,
    /// TLS ClientHello.
    ClientHello,
    /// TLS ServerHello (or HelloRetryRequest).
    ServerHello {
        /// Chosen version.
        version: u16,
        /// Chosen cipher suite.
        cipher: u16,
    },
    /// TLS Certificate.
    Certificate {
        /// Certificates in the chain.
        count: usize,
    },
    /// Another plaintext handshake message.
    Handshake {
        /// Handshake type.
        msg_type: u8,
    },
    /// TLS ChangeCipherSpec.
    ChangeCipherSpec,
    /// Encrypted handshake message (Finished).
    EncryptedHandshake,
    /// TLS alert.
    Alert {
        /// Level and description when in clear.
        alert: Option<tls::Alert>,
        /// Record length.
        len: u16,
    },
    /// First TLS application data record in this direction.
    FirstAppData {
        /// Record length.
        len: u16,
    },
    /// MCS Connect Initial.
    McsConnectInitial,
    /// MCS Connect Response.
    McsConnectResponse {
        /// MCS result.
        result: u8,
    },
    /// MCS Erect Domain / Attach User / Channel Join (first of each kind).
    McsDomain {
        /// Which PDU.
        name: &'static str,
    },
    /// Security Exchange PDU.
    SecurityExchange,
    /// Client Info PDU.
    ClientInfo,
    /// Licensing PDU (first per direction) or licensing error alert.
    Licensing {
        /// Error code and state transition of an error alert.
        error: Option<(u32, u32)>,
    },
    /// Set Error Info in clear.
    SetErrorInfo {
        /// errorInfo.
        code: u32,
    },
    /// MCS Disconnect Provider Ultimatum.
    McsDisconnect {
        /// Reason.
        reason: u8,
    },
    /// First fast-path PDU in this direction.
    FastPath,
    /// A decrypted CredSSP TSRequest.
    CredsspRequest {
        /// TSRequest version.
        version: u32,
        /// The negoToken, classified.
        token: Option<crate::proto::credssp::AuthToken>,
        /// errorCode.
        error_code: Option<u32>,
        /// authInfo present (the client's credentials).
        auth_info: bool,
    },
    /// Decrypted Early User Authorization Result (HYBRID_EX).
    EarlyUserAuth {
        /// authorizationResult.
        result: u32,
    },
    /// Decrypted Share Control PDU of interest (Demand/Confirm Active, Deactivate All).
    ShareControl {
        /// What.
        name: &'static str,
    },
    /// An encrypted Standard RDP Security PDU recognised by its place in the connection
    /// sequence and its size (Demand Active, Confirm Active, a finalization PDU).
    InferredPdu {
        /// What it is taken to be.
        name: &'static str,
        /// Its plaintext length (RC4 keeps lengths).
        len: usize,
    },
    /// Decrypted Server Redirection PDU.
    ServerRedirection {
        /// Target, when given.
        target: Option<String>,
    },
    /// A TLS record that could not be decrypted.
    DecryptFailed {
        /// Why.
        what: String,
    },
    /// Bytes that are not the expected protocol.
    Unexpected {
        /// Byte count seen.
        len: usize,
        /// First bytes in hex.
        head: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A PDU that failed to parse.
    Malformed {
        /// What and why.
        what: String,
    },
    /// A proxy handshake message or an RD Gateway HTTP/MS-TSGU message.
    Tunnel {
        /// What, in words.
        what: String,
    },
}

impl EventKind {
    /// Events that end or break a connection, always kept in a full timeline.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            EventKind::Fin
                | EventKind::Rst
                | EventKind::Icmp { .. }
                | EventKind::Alert { .. }
                | EventKind::X224Disconnect
                | EventKind::McsDisconnect { .. }
                | EventKind::SetErrorInfo { .. }
                | EventKind::Licensing { error: Some(_) }
                | EventKind::CredsspRequest {
                    error_code: Some(_),
                    ..
                }
                | EventKind::EarlyUserAuth { .. }
                | EventKind::ServerRedirection { .. }
        )
    }
}

/// Names an ICMP error type and code.
pub fn icmp_name(e: &IcmpError) -> String {
    let name = if e.v6 {
        match (e.icmp_type, e.code) {
            (1, 0) => "no route to destination",
            (1, 1) => "administratively prohibited",
            (1, 3) => "address unreachable",
            (1, 4) => "port unreachable",
            (1, 5) => "source address failed policy",
            (1, 6) => "reject route to destination",
            (1, _) => "destination unreachable",
            (2, _) => "packet too big",
            (3, _) => "time exceeded",
            _ => "parameter problem",
        }
    } else {
        match (e.icmp_type, e.code) {
            (3, 0) => "network unreachable",
            (3, 1) => "host unreachable",
            (3, 2) => "protocol unreachable",
            (3, 3) => "port unreachable",
            (3, 4) => "fragmentation needed",
            (3, 9) | (3, 10) | (3, 13) => "administratively prohibited",
            (3, _) => "destination unreachable",
            (11, _) => "time exceeded",
            (4, _) => "source quench",
            _ => "parameter problem",
        }
    };
    format!("{} (type {} code {})", name, e.icmp_type, e.code)
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use EventKind as K;
        match self {
            K::Syn { retransmit: false } => write!(f, "TCP SYN"),
            K::Syn { retransmit: true } => write!(f, "TCP SYN retransmitted"),
            K::SynAck { retransmit: false } => write!(f, "TCP SYN+ACK"),
            K::SynAck { retransmit: true } => write!(f, "TCP SYN+ACK retransmitted"),
            K::Established => write!(f, "TCP handshake completed"),
            K::Fin => write!(f, "TCP FIN"),
            K::Rst => write!(f, "TCP RST"),
            K::Retransmission { len } => write!(f, "TCP retransmission ({len} bytes)"),
            K::ZeroWindow => write!(f, "TCP zero window"),
            K::Gap { bytes } => write!(f, "{bytes} bytes missing from the capture"),
            K::Icmp { error, from } => write!(f, "ICMP {} from {from}", icmp_name(error)),
            K::X224Request {
                requested,
                has_neg_req: true,
            } => {
                write!(
                    f,
                    "X.224 Connection Request (requested {})",
                    requested.names()
                )
            }
            K::X224Request {
                has_neg_req: false, ..
            } => {
                write!(
                    f,
                    "X.224 Connection Request (no RDP_NEG_REQ: standard RDP security)"
                )
            }
            K::X224Confirm {
                neg: Some(NegResult::Response { selected, .. }),
            } => {
                write!(
                    f,
                    "X.224 Connection Confirm (selected {})",
                    selected.names()
                )
            }
            K::X224Confirm {
                neg: Some(NegResult::Failure(code)),
            } => {
                write!(f, "X.224 Connection Confirm with RDP_NEG_FAILURE {code}")
            }
            K::X224Confirm { neg: None } => {
                write!(f, "X.224 Connection Confirm (no RDP_NEG_RSP: legacy server, standard RDP security)")
            }
            K::X224Disconnect => write!(f, "X.224 Disconnect Request"),
            K::ClientHello => write!(f, "TLS ClientHello"),
            K::ServerHello { version, cipher } => write!(
                f,
                "TLS ServerHello ({}, {})",
                tls::version_name(*version),
                tls::cipher_suite_name(*cipher)
                    .map_or_else(|| format!("{cipher:#06x}"), str::to_string)
            ),
            K::Certificate { count } => write!(f, "TLS Certificate ({count} in chain)"),
            K::Handshake { msg_type } => write!(f, "TLS {}", tls::handshake_type_name(*msg_type)),
            K::ChangeCipherSpec => write!(f, "TLS ChangeCipherSpec"),
            K::EncryptedHandshake => write!(f, "TLS encrypted handshake message (Finished)"),
            K::Alert { alert: Some(a), .. } => write!(
                f,
                "TLS alert {} {} ({})",
                tls::alert_level_name(a.level),
                tls::alert_description_name(a.description),
                a.description
            ),
            K::Alert { alert: None, len } => write!(f, "TLS encrypted alert ({len} bytes)"),
            K::FirstAppData { len } => write!(f, "first TLS application data ({len} bytes)"),
            K::McsConnectInitial => write!(f, "MCS Connect Initial"),
            K::McsConnectResponse { result } => {
                write!(
                    f,
                    "MCS Connect Response ({})",
                    codes::mcs_result_name(*result)
                )
            }
            K::McsDomain { name } => write!(f, "MCS {name}"),
            K::SecurityExchange => write!(f, "Security Exchange PDU"),
            K::ClientInfo => write!(f, "Client Info PDU"),
            K::Licensing { error: None } => write!(f, "licensing PDU"),
            K::Licensing {
                error: Some((code, state)),
            } => write!(
                f,
                "licensing error alert {} ({})",
                codes::license_error_name(*code).unwrap_or("unknown"),
                codes::license_state_name(*state).unwrap_or("unknown")
            ),
            K::SetErrorInfo { code } => write!(
                f,
                "Set Error Info {} ({code:#x})",
                codes::error_info_name(*code).unwrap_or("unknown")
            ),
            K::McsDisconnect { reason } => {
                write!(
                    f,
                    "MCS Disconnect Provider Ultimatum ({})",
                    codes::mcs_reason_name(*reason)
                )
            }
            K::FastPath => write!(f, "first fast-path PDU"),
            K::CredsspRequest {
                version,
                token,
                error_code,
                auth_info,
            } => {
                write!(f, "CredSSP TSRequest v{version}")?;
                match token {
                    Some(crate::proto::credssp::AuthToken::Ntlm(t)) => write!(
                        f,
                        " NTLM {}",
                        match t {
                            1 => "NEGOTIATE",
                            2 => "CHALLENGE",
                            3 => "AUTHENTICATE",
                            _ => "message",
                        }
                    )?,
                    Some(crate::proto::credssp::AuthToken::Kerberos) => write!(f, " Kerberos")?,
                    Some(crate::proto::credssp::AuthToken::Spnego) => write!(f, " SPNEGO")?,
                    _ => {}
                }
                if *auth_info {
                    write!(f, " with credentials (authInfo)")?;
                }
                if let Some(c) = error_code {
                    write!(
                        f,
                        " errorCode {} ({c:#010x})",
                        codes::ntstatus_name(*c).unwrap_or("unknown")
                    )?;
                }
                Ok(())
            }
            K::EarlyUserAuth { result } => write!(
                f,
                "Early User Authorization Result {} ({result:#x})",
                crate::proto::credssp::early_user_auth_name(*result)
            ),
            K::ShareControl { name } => write!(f, "{name} PDU"),
            K::InferredPdu { name, len } => {
                write!(f, "{name} (encrypted, {len} bytes: inferred)")
            }
            K::ServerRedirection { target: Some(t) } => {
                write!(f, "Server Redirection PDU to {t}")
            }
            K::ServerRedirection { target: None } => write!(f, "Server Redirection PDU"),
            K::DecryptFailed { what } => write!(f, "TLS record not decrypted: {what}"),
            K::Unexpected {
                len,
                head,
                expected,
            } => {
                write!(f, "{len} bytes that are not {expected} (starting {head})")
            }
            K::Malformed { what } => write!(f, "malformed {what}"),
            K::Tunnel { what } => f.write_str(what),
        }
    }
}

/// First bytes of `b` in hex, at most 8.
pub fn hex_head(b: &[u8]) -> String {
    b.iter()
        .take(8)
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A serialisable view of an event for reports.
#[derive(Debug, Clone, Serialize)]
pub struct EventView {
    /// Wireshark frame number.
    pub frame: u64,
    /// RFC 3339 time.
    pub time: String,
    /// "client", "server" or "" when undirected.
    pub from: &'static str,
    /// Description.
    pub what: String,
}

impl From<&Event> for EventView {
    fn from(e: &Event) -> Self {
        EventView {
            frame: e.frame.number,
            time: e.frame.ts.rfc3339(),
            from: e.dir.map_or("", Dir::sender),
            what: e.kind.to_string(),
        }
    }
}
