//! Parsed facts of a connection, accumulated by the session state machine.

use serde::Serialize;

use crate::flow::{Dir, FrameRef};
use crate::proto::mcs::{ConnectInitial, ConnectResponse};
use crate::proto::nego::{FailureCode, Protocols};
use crate::proto::tls::{CertSummary, ClientHello, ServerHello};

/// Most TLS records kept in the record log.
pub const MAX_RECORD_LOG: usize = 48;

/// What the X.224 negotiation showed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NegotiationDetails {
    /// `Cookie: mstshash=` value (usually a user name).
    pub cookie: Option<String>,
    /// Routing token line (`Cookie: msts=...`, `tsv://...`).
    pub routing_token: Option<String>,
    /// requestedProtocols (`None` if no Connection Request seen).
    pub requested: Option<Protocols>,
    /// Whether the request carried RDP_NEG_REQ.
    pub has_neg_req: bool,
    /// RDP_NEG_REQ flag names.
    pub request_flags: Vec<&'static str>,
    /// Correlation id in hex.
    pub correlation_id: Option<String>,
    /// selectedProtocol of RDP_NEG_RSP.
    pub selected: Option<Protocols>,
    /// RDP_NEG_RSP flag names.
    pub response_flags: Vec<&'static str>,
    /// failureCode of RDP_NEG_FAILURE.
    pub failure: Option<FailureCode>,
    /// A Connection Confirm without negotiation data (legacy server).
    pub legacy_confirm: bool,
    /// Frame of the Connection Request.
    pub request_frame: Option<FrameRef>,
    /// Frame of the Connection Confirm.
    pub confirm_frame: Option<FrameRef>,
}

/// One TLS alert.
#[derive(Debug, Clone, Serialize)]
pub struct AlertRecord {
    /// Frame.
    pub frame: FrameRef,
    /// "client" or "server".
    pub from: &'static str,
    /// Level name, or "encrypted".
    pub level: String,
    /// Description name, or "encrypted".
    pub description: String,
    /// Description code (None when encrypted).
    pub code: Option<u8>,
}

/// A TLS record after the handshake's plaintext part: sizes and timing only.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RecordLog {
    /// Sender.
    pub dir: Dir,
    /// Frame completing it.
    pub frame: FrameRef,
    /// Content type.
    pub content_type: u8,
    /// Record length.
    pub len: u16,
}

/// What the TLS layer showed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TlsDetails {
    /// The ClientHello.
    pub client_hello: Option<ClientHello>,
    /// The ServerHello.
    pub server_hello: Option<ServerHello>,
    /// The server certificate chain (TLS 1.2 and earlier).
    pub certificates: Vec<CertSummary>,
    /// Alerts in order.
    pub alerts: Vec<AlertRecord>,
    /// ChangeCipherSpec per direction.
    #[serde(skip)]
    pub ccs: [Option<FrameRef>; 2],
    /// Frame of the ClientHello / ServerHello / Certificate / ServerHelloDone.
    #[serde(skip)]
    pub hello_frames: [Option<FrameRef>; 4],
    /// Application data records per direction.
    pub app_records: [u64; 2],
    /// Application data bytes per direction (record lengths).
    pub app_bytes: [u64; 2],
    /// First application data record per direction.
    #[serde(skip)]
    pub first_app: [Option<FrameRef>; 2],
    /// Last application data record per direction.
    #[serde(skip)]
    pub last_app: [Option<FrameRef>; 2],
    /// Length of the last application data record per direction.
    #[serde(skip)]
    pub last_app_len: [u16; 2],
    /// The first records after the plaintext handshake, in order.
    #[serde(skip)]
    pub record_log: Vec<RecordLog>,
}

impl TlsDetails {
    /// Whether the server chose TLS 1.3.
    pub fn is_tls13(&self) -> bool {
        self.server_hello
            .as_ref()
            .is_some_and(|s| s.version == 0x0304)
    }

    /// Largest encrypted record taken to be an alert rather than data (2 bytes of alert,
    /// TLS 1.3's content type and an AEAD tag or CBC padding and MAC).
    pub const ALERT_SIZED: u16 = 24;

    /// The client's TLS 1.3 application records after its encrypted Finished, in order.
    fn client_records_after_finished(&self) -> impl Iterator<Item = &RecordLog> {
        self.record_log
            .iter()
            .filter(|l| l.dir == Dir::ToClient.reverse() && l.content_type == 23)
            .skip(1)
    }

    /// Client application records that carry data: not TLS 1.3's encrypted Finished and not
    /// a TLS 1.3 alert-sized record.
    pub fn client_data_records(&self) -> u64 {
        if !self.is_tls13() {
            return self.app_records[0];
        }
        let alerts = self
            .client_records_after_finished()
            .filter(|l| l.len <= Self::ALERT_SIZED)
            .count() as u64;
        self.app_records[0].saturating_sub(1).saturating_sub(alerts)
    }

    /// Server application records that carry data: in TLS 1.3 the server's encrypted
    /// handshake flight (EncryptedExtensions .. Finished, sent before the client's Finished)
    /// travels as application data records and is not counted.
    pub fn server_data_records(&self) -> u64 {
        if !self.is_tls13() {
            return self.app_records[1];
        }
        let client_finished = self
            .record_log
            .iter()
            .find(|l| l.dir == Dir::ToServer && l.content_type == 23)
            .map_or(u64::MAX, |l| l.frame.number);
        let flight = self
            .record_log
            .iter()
            .filter(|l| {
                l.dir == Dir::ToClient && l.content_type == 23 && l.frame.number <= client_finished
            })
            .count() as u64;
        self.app_records[1].saturating_sub(flight)
    }

    /// An encrypted alert from the client after the handshake: a type-21 record (TLS 1.2
    /// and earlier) or, in TLS 1.3, an alert-sized record after the client's Finished.
    pub fn client_encrypted_alert(&self) -> Option<FrameRef> {
        if self.is_tls13() {
            return self
                .client_records_after_finished()
                .find(|l| l.len <= Self::ALERT_SIZED)
                .map(|l| l.frame);
        }
        // Encrypted, or decrypted with a key log: any client alert after its ChangeCipherSpec.
        self.alerts
            .iter()
            .find(|a| {
                a.from == "client"
                    && (a.code.is_none() || self.ccs[0].is_some_and(|c| a.frame.number > c.number))
            })
            .map(|a| a.frame)
    }

    /// Whether the handshake completed (both Finished sent).
    pub fn established(&self) -> bool {
        if self.is_tls13() {
            self.app_records[0] > 0 && self.app_records[1] > 0
        } else {
            self.ccs[0].is_some() && self.ccs[1].is_some()
        }
    }
}

/// What the MCS / RDP layers showed in clear (Standard RDP Security).
#[derive(Debug, Clone, Default, Serialize)]
pub struct McsDetails {
    /// MCS Connect Initial with the client's GCC blocks.
    pub connect_initial: Option<ConnectInitial>,
    /// MCS Connect Response with the server's GCC blocks.
    pub connect_response: Option<ConnectResponse>,
    /// Channel Join Confirms seen.
    pub channel_joins: u32,
    /// Client Info PDU seen.
    pub client_info: Option<FrameRef>,
    /// Security Exchange PDU seen.
    #[serde(skip)]
    pub security_exchange: Option<FrameRef>,
    /// Licensing PDUs seen.
    pub licensing_pdus: u32,
    /// Server Send Data PDUs after the Client Info PDU (the server went on with the session).
    pub server_pdus_after_info: u64,
    /// Licensing error alert (code, state transition).
    pub license_error: Option<(u32, u32)>,
    /// Set Error Info value in clear.
    pub set_error_info: Option<u32>,
    /// Disconnect Provider Ultimatum: sender, reason, frame.
    #[serde(skip)]
    pub disconnect: Option<(Dir, u8, FrameRef)>,
    /// X.224 Disconnect Request: sender and frame.
    #[serde(skip)]
    pub x224_disconnect: Option<(Dir, FrameRef)>,
    /// Fast-path PDUs per direction.
    pub fastpath_pdus: [u64; 2],
    /// Demand Active PDU (server).
    #[serde(skip)]
    pub demand_active: Option<FrameRef>,
    /// Confirm Active PDU (client).
    #[serde(skip)]
    pub confirm_active: Option<FrameRef>,
    /// Deactivate All PDU (server).
    #[serde(skip)]
    pub deactivate_all: Option<FrameRef>,
    /// Demand / Confirm Active were inferred from the place and size of encrypted Standard
    /// RDP Security PDUs rather than read.
    #[serde(skip)]
    pub capabilities_inferred: bool,
    /// First connection finalization PDU (Synchronize, Control, Font List, Font Map) after
    /// the capabilities exchange.
    #[serde(skip)]
    pub finalization: Option<FrameRef>,
    /// The server's Font Map PDU: the last of the connection sequence.
    pub font_map: Option<FrameRef>,
    /// The finalization PDU was inferred (an encrypted client PDU after Confirm Active).
    #[serde(skip)]
    pub finalization_inferred: bool,
    /// Server Redirection PDU: frame and target.
    #[serde(skip)]
    pub redirection: Option<(FrameRef, Option<String>)>,
    /// X.224 data PDUs per direction.
    pub slowpath_pdus: [u64; 2],
}

/// The CredSSP exchange, as seen decrypted (MS-CSSP).
#[derive(Debug, Clone, Default, Serialize)]
pub struct CredsspDetails {
    /// Highest TSRequest version seen.
    pub version: Option<u32>,
    /// Authentication package: "NTLM", "Kerberos", "SPNEGO".
    pub auth_package: Option<&'static str>,
    /// Domain, user and workstation of the NTLM AUTHENTICATE message.
    pub ntlm_identity: Option<crate::proto::credssp::NtlmIdentity>,
    /// errorCode of a TSRequest (normally the server's).
    pub error_code: Option<u32>,
    /// Sender and frame of the errorCode.
    #[serde(skip)]
    pub error_frame: Option<(Dir, FrameRef)>,
    /// Early User Authorization Result (HYBRID_EX).
    pub early_user_auth: Option<u32>,
    /// Its frame.
    #[serde(skip)]
    pub early_user_auth_frame: Option<FrameRef>,
    /// TSRequests per direction.
    pub requests: [u32; 2],
    /// Frame of the client's TSRequest with authInfo (credentials delegated).
    #[serde(skip)]
    pub credentials_frame: Option<FrameRef>,
}

/// What TLS decryption did for this connection.
#[derive(Debug, Clone, Default)]
pub struct DecryptDetails {
    /// Keys for this connection were found.
    pub keys_found: bool,
    /// Records decrypted per direction.
    pub records: [u64; 2],
    /// Records passed over without decryption per direction, once the session was running
    /// (the diagnosis does not need them; `--decrypt-all` decrypts them).
    pub passed_over: [u64; 2],
    /// Records that failed to decrypt.
    pub failures: u64,
    /// The first failure: sender, frame, why.
    pub first_failure: Option<(Dir, FrameRef, String)>,
    /// Why keys that were found could not be used (version, suite).
    pub unusable: Option<String>,
}

impl DecryptDetails {
    /// Whether any record was decrypted.
    pub fn decrypted(&self) -> bool {
        self.records[0] + self.records[1] > 0
    }
}

/// Everything parsed from one connection.
#[derive(Debug, Clone, Default)]
pub struct Details {
    /// X.224 negotiation.
    pub nego: NegotiationDetails,
    /// TLS.
    pub tls: TlsDetails,
    /// MCS and later RDP PDUs in clear or decrypted.
    pub mcs: McsDetails,
    /// CredSSP, decrypted.
    pub credssp: CredsspDetails,
    /// TLS decryption.
    pub decrypt: DecryptDetails,
    /// Bytes that did not look like RDP, per direction: (frame, first bytes, length).
    pub unexpected: [Option<(FrameRef, String, usize)>; 2],
    /// Whether the client's stream began with an X.224 Connection Request (content evidence).
    pub rdp_by_content: bool,
    /// An incomplete PDU left in a direction's buffer at the end: (frame, bytes held, bytes claimed).
    pub incomplete_pdu: [Option<(FrameRef, usize, usize)>; 2],
    /// Timeline events dropped because the timeline was full.
    pub dropped_events: u64,
    /// A SOCKS5 or HTTP CONNECT proxy handshake at the start of the stream.
    pub proxy: Option<ProxyDetails>,
    /// An RD Gateway (MS-TSGU) connection, seen decrypted.
    pub gateway: Option<Box<GatewayDetails>>,
}

/// A proxy handshake before the RDP bytes.
#[derive(Debug, Clone, Default)]
pub struct ProxyDetails {
    /// "socks5" or "http_connect".
    pub kind: &'static str,
    /// The CONNECT target, `host:port`.
    pub target: Option<String>,
    /// Frame of the client's CONNECT request.
    pub request_frame: Option<FrameRef>,
    /// The proxy's reply: "succeeded" or the failure's name (SOCKS5 REP name, HTTP status).
    pub reply: Option<String>,
    /// Whether the proxy connected the client.
    pub succeeded: Option<bool>,
    /// Frame of the reply.
    pub reply_frame: Option<FrameRef>,
}

impl ProxyDetails {
    /// The target's port.
    pub fn target_port(&self) -> Option<u16> {
        self.target.as_ref()?.rsplit_once(':')?.1.parse().ok()
    }
}

/// Most HTTP exchanges and gateway messages kept.
pub const MAX_GATEWAY_ITEMS: usize = 32;

/// One HTTP response of a gateway connection.
#[derive(Debug, Clone)]
pub struct HttpExchange {
    /// Frame of the response.
    pub frame: FrameRef,
    /// The request it answers (`METHOD target`), when seen.
    pub request: Option<String>,
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// WWW-Authenticate schemes offered.
    pub schemes: Vec<String>,
}

/// One MS-TSGU control packet.
#[derive(Debug, Clone, Copy)]
pub struct TsguMessage {
    /// Frame completing it.
    pub frame: FrameRef,
    /// Sender.
    pub dir: Dir,
    /// packetType.
    pub ptype: u16,
    /// Status or error code of a response.
    pub status: Option<u32>,
}

/// What an RD Gateway connection showed (decrypted).
#[derive(Debug, Clone, Default)]
pub struct GatewayDetails {
    /// An RDG request (`RDG_OUT_DATA`, `/remoteDesktopGateway/`) was seen.
    pub recognised: bool,
    /// Host header of the first request.
    pub host: Option<String>,
    /// Frame of the first RDG request.
    pub request_frame: Option<FrameRef>,
    /// HTTP responses in order.
    pub responses: Vec<HttpExchange>,
    /// Frame of the 101 Switching Protocols (WebSocket transport).
    pub websocket: Option<FrameRef>,
    /// Control packets in order (DATA and KEEPALIVE are only counted).
    pub messages: Vec<TsguMessage>,
    /// DATA packets per direction.
    pub data_packets: [u64; 2],
    /// The target server of the channel (CHANNEL_CREATE resource and port).
    pub target: Option<String>,
    /// The tunnelled RDP connection, once DATA flowed.
    pub inner: Option<Box<super::SessionRecord>>,
}

impl GatewayDetails {
    /// The first control packet answered with a non-zero status.
    pub fn failed_message(&self) -> Option<&TsguMessage> {
        use crate::proto::tsgu::ptype;
        self.messages.iter().find(|m| {
            matches!(
                m.ptype,
                ptype::HANDSHAKE_RESPONSE
                    | ptype::TUNNEL_RESPONSE
                    | ptype::TUNNEL_AUTH_RESPONSE
                    | ptype::CHANNEL_RESPONSE
            ) && m.status.is_some_and(|s| s != 0)
        })
    }
}
