//! The report of one connection: the stable JSON object (documented in README.md).

use std::net::SocketAddr;

use serde::Serialize;

use crate::diagnose::{Confidence, End, EndedBy, Evidence, Outcome, Phase};
use crate::pipeline::Diagnosed;
use crate::proto::{codes, tls};
use crate::session::EventView;

/// Options that change what a report shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReportOptions {
    /// Replace user names (cookie, client name) by a placeholder.
    pub redact: bool,
    /// Include the timeline.
    pub timeline: bool,
}

/// "ip:port", IPv6 as "[addr]:port".
pub fn endpoint(a: &SocketAddr) -> String {
    match a {
        // Digits pushed by hand: `Display` of an IPv4 endpoint costs ten times more, and a
        // batch prints two per connection.
        SocketAddr::V4(v) => {
            let mut s = String::with_capacity(21);
            for (i, octet) in v.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                push_decimal(&mut s, u32::from(octet));
            }
            s.push(':');
            push_decimal(&mut s, u32::from(v.port()));
            s
        }
        SocketAddr::V6(_) => a.to_string(),
    }
}

fn push_decimal(s: &mut String, mut v: u32) {
    let mut digits = [0u8; 10];
    let mut start = digits.len();
    for d in digits.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
        start -= 1;
        if v == 0 {
            break;
        }
    }
    s.push_str(std::str::from_utf8(digits.get(start..).unwrap_or_default()).unwrap_or_default());
}

/// TLS facts of a connection.
#[derive(Debug, Clone, Serialize, Default)]
pub struct TlsReport {
    /// Versions the client offered.
    pub versions_offered: Vec<String>,
    /// Version the server chose.
    pub version: Option<String>,
    /// Cipher suite the server chose.
    pub cipher: Option<String>,
    /// Number of cipher suites the client offered.
    pub ciphers_offered: usize,
    /// Server name indication.
    pub sni: Option<String>,
    /// Alerts: frame, sender, level, description.
    pub alerts: Vec<AlertReport>,
    /// Server certificate (leaf).
    pub certificate: Option<tls::CertSummary>,
    /// Whether the handshake completed.
    pub established: bool,
    /// Application data records and bytes sent by the client / server.
    pub app_records: [u64; 2],
    /// Application data bytes (record lengths) sent by the client / server.
    pub app_bytes: [u64; 2],
}

/// One TLS alert.
#[derive(Debug, Clone, Serialize)]
pub struct AlertReport {
    /// Frame.
    pub frame: u64,
    /// "client" or "server".
    pub from: &'static str,
    /// "fatal", "warning" or "encrypted".
    pub level: String,
    /// Description name or "encrypted".
    pub description: String,
}

/// MCS / GCC facts visible in clear.
#[derive(Debug, Clone, Serialize, Default)]
pub struct McsReport {
    /// Client computer name (CS_CORE).
    pub client_name: Option<String>,
    /// Client build (CS_CORE).
    pub client_build: Option<u32>,
    /// Requested desktop size.
    pub desktop: Option<String>,
    /// Static virtual channels requested.
    pub channels: Vec<String>,
    /// MCS Connect Response result.
    pub result: Option<String>,
    /// Server RDP version (SC_CORE).
    pub server_version: Option<String>,
    /// Encryption method (SC_SECURITY).
    pub encryption_method: Option<String>,
    /// Encryption level (SC_SECURITY).
    pub encryption_level: Option<String>,
    /// Set Error Info value in clear.
    pub error_info: Option<String>,
    /// Licensing error alert.
    pub license_error: Option<String>,
}

/// The JSON object of one connection.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ConnectionReport {
    /// Always "connection" (tells it apart from the batch summary object).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Capture file.
    pub file: String,
    /// Client "ip:port".
    pub client: String,
    /// Server "ip:port".
    pub server: String,
    /// "tcp".
    pub transport: &'static str,
    /// 802.1Q VLAN id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    /// RFC 3339 time of the first frame.
    pub start: String,
    /// Seconds from the first to the last frame.
    pub duration_s: f64,
    /// First and last frame numbers.
    pub first_frame: u64,
    /// Last frame number.
    pub last_frame: u64,
    /// Packets client to server and server to client.
    pub packets: [u64; 2],
    /// Payload bytes client to server and server to client.
    pub bytes: [u64; 2],
    /// Furthest phase.
    pub phase: Phase,
    /// Whether the phase was inferred from encrypted traffic.
    pub phase_inferred: bool,
    /// success / failure / incomplete.
    pub outcome: Outcome,
    /// client / server / network / none.
    pub ended_by: EndedBy,
    /// How it ended.
    pub end: End,
    /// Stable cause code.
    pub cause: &'static str,
    /// What happened.
    pub summary: String,
    /// What to do.
    pub remedy: &'static str,
    /// How sure.
    pub confidence: Confidence,
    /// Frames that prove it.
    pub evidence: Vec<Evidence>,
    /// The frame of the decisive event.
    pub key_frame: Option<u64>,
    /// Other observations.
    pub notes: Vec<String>,
    /// `Cookie: mstshash=` value.
    pub cookie: Option<String>,
    /// Routing token.
    pub routing_token: Option<String>,
    /// requestedProtocols names, e.g. "SSL|HYBRID|HYBRID_EX".
    pub requested_protocols: Option<String>,
    /// RDP_NEG_REQ flags.
    pub request_flags: Vec<&'static str>,
    /// selectedProtocol name.
    pub selected_protocol: Option<String>,
    /// RDP_NEG_FAILURE code name.
    pub failure_code: Option<String>,
    /// Correlation id (hex).
    pub correlation_id: Option<String>,
    /// TLS facts.
    pub tls: Option<TlsReport>,
    /// MCS facts.
    pub mcs: Option<McsReport>,
    /// Whether TLS records of the connection were decrypted (key log or embedded keys).
    pub decrypted: bool,
    /// The decrypted CredSSP exchange.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credssp: Option<CredsspReport>,
    /// The timeline (with `--verbose`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Vec<EventView>>,
    /// Live capture only: why this verdict was printed now: `established` (the session is
    /// up and the connection still open; its end follows later), `closed`, `idle` (silent
    /// past the idle timeout), `evicted` (the connection table was full) or `stopped`
    /// (still open when the capture stopped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<&'static str>,
    /// What the Windows client most likely shows (failures with a documented mapping only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_error: Option<crate::diagnose::mstsc::ClientError>,
    /// RDP over UDP only: what the RDPEUDP transport showed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rdpeudp: Option<super::udp::UdpReport>,
    /// A SOCKS5 or HTTP CONNECT proxy handshake before the RDP bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyReport>,
    /// An RD Gateway connection (decrypted): HTTP, MS-TSGU and the tunnelled connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayReport>,
}

/// A proxy handshake.
#[derive(Debug, Clone, Serialize)]
pub struct ProxyReport {
    /// "socks5" or "http_connect".
    pub kind: &'static str,
    /// The CONNECT target `host:port`.
    pub target: Option<String>,
    /// "succeeded" or the failure (SOCKS5 reply name, HTTP status).
    pub reply: Option<String>,
    /// Frame of the reply.
    pub frame: Option<u64>,
}

/// One HTTP response of a gateway connection.
#[derive(Debug, Clone, Serialize)]
pub struct HttpReport {
    /// Frame.
    pub frame: u64,
    /// The request answered, `METHOD target`.
    pub request: Option<String>,
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// WWW-Authenticate schemes offered.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub auth_schemes: Vec<String>,
}

/// One MS-TSGU control message.
#[derive(Debug, Clone, Serialize)]
pub struct TsguReport {
    /// Frame.
    pub frame: u64,
    /// "client" or "server".
    pub from: &'static str,
    /// Packet type name, e.g. TUNNEL_RESPONSE.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Status / error code in hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Its name (E_PROXY_...), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_name: Option<&'static str>,
}

/// An RD Gateway connection.
#[derive(Debug, Clone, Serialize)]
pub struct GatewayReport {
    /// The gateway "ip:port".
    pub endpoint: String,
    /// Host header of the RDG request.
    pub host: Option<String>,
    /// HTTP responses in order.
    pub http: Vec<HttpReport>,
    /// Whether the WebSocket transport was set up (101 Switching Protocols).
    pub websocket: bool,
    /// MS-TSGU control messages in order.
    pub messages: Vec<TsguReport>,
    /// DATA packets client to server and server to client.
    pub data_packets: [u64; 2],
    /// Target server of the channel, `name:port`.
    pub target: Option<String>,
    /// The tunnelled RDP connection's own report (endpoints are the gateway connection's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inner: Option<Box<ConnectionReport>>,
}

/// The decrypted CredSSP (NLA) exchange.
#[derive(Debug, Clone, Serialize)]
pub struct CredsspReport {
    /// Highest TSRequest version.
    pub version: Option<u32>,
    /// "NTLM", "Kerberos" or "SPNEGO".
    pub auth_package: Option<&'static str>,
    /// NTLM AUTHENTICATE user name (redactable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// NTLM AUTHENTICATE domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// NTLM AUTHENTICATE workstation (redactable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workstation: Option<String>,
    /// errorCode as hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Its NTSTATUS / HRESULT name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_name: Option<&'static str>,
    /// Early User Authorization Result name (HYBRID_EX).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub early_user_authorization: Option<&'static str>,
    /// Whether the client delegated its credentials (TSCredentials in authInfo).
    pub credentials_sent: bool,
}

const REDACTED: &str = "<redacted>";

impl ConnectionReport {
    /// Builds the report of `d` found in `file`.
    pub fn new(file: &str, d: &Diagnosed, opts: ReportOptions) -> Self {
        let r = &d.record;
        let v = &d.verdict;
        let det = &r.session.details;
        let n = &det.nego;
        let last = r.tcp.last.unwrap_or(r.meta.first);
        let t = &det.tls;
        let tls =
            (t.client_hello.is_some() || t.app_records.iter().any(|x| *x > 0)).then(|| TlsReport {
                versions_offered: t.client_hello.as_ref().map_or_else(Vec::new, |c| {
                    c.versions.iter().map(|v| tls::version_name(*v)).collect()
                }),
                version: t
                    .server_hello
                    .as_ref()
                    .map(|s| tls::version_name(s.version)),
                cipher: t.server_hello.as_ref().map(|s| {
                    tls::cipher_suite_name(s.cipher_suite)
                        .map_or_else(|| format!("{:#06x}", s.cipher_suite), str::to_string)
                }),
                ciphers_offered: t.client_hello.as_ref().map_or(0, |c| c.cipher_suites.len()),
                sni: t.client_hello.as_ref().and_then(|c| c.sni.clone()),
                alerts: t
                    .alerts
                    .iter()
                    .map(|a| AlertReport {
                        frame: a.frame.number,
                        from: a.from,
                        level: a.level.clone(),
                        description: a.description.clone(),
                    })
                    .collect(),
                certificate: t.certificates.first().cloned(),
                established: t.established(),
                app_records: t.app_records,
                app_bytes: t.app_bytes,
            });
        let m = &det.mcs;
        let mcs = (m.connect_initial.is_some() || m.connect_response.is_some()).then(|| {
            let core = m
                .connect_initial
                .as_ref()
                .and_then(|c| c.client_core.as_ref());
            let sec = m
                .connect_response
                .as_ref()
                .and_then(|c| c.server_security.as_ref());
            McsReport {
                client_name: core.map(|c| {
                    if opts.redact {
                        REDACTED.to_string()
                    } else {
                        c.client_name.clone()
                    }
                }),
                client_build: core.map(|c| c.client_build),
                desktop: core.map(|c| format!("{}x{}", c.desktop_width, c.desktop_height)),
                channels: m
                    .connect_initial
                    .as_ref()
                    .map_or_else(Vec::new, |c| c.channels.clone()),
                result: m
                    .connect_response
                    .as_ref()
                    .map(|c| codes::mcs_result_name(c.result).to_string()),
                server_version: m
                    .connect_response
                    .as_ref()
                    .and_then(|c| c.server_core.as_ref())
                    .map(|s| format!("{:#010x}", s.version)),
                encryption_method: sec.map(|s| codes::encryption_method_name(s.encryption_method)),
                encryption_level: sec
                    .map(|s| codes::encryption_level_name(s.encryption_level).to_string()),
                error_info: m.set_error_info.map(|c| {
                    format!(
                        "{} ({c:#x})",
                        codes::error_info_name(c).unwrap_or("unknown")
                    )
                }),
                license_error: m.license_error.map(|(c, _)| {
                    codes::license_error_name(c)
                        .unwrap_or("unknown")
                        .to_string()
                }),
            }
        });
        ConnectionReport {
            kind: "connection",
            file: file.to_string(),
            client: endpoint(&r.meta.client),
            server: endpoint(&r.meta.server),
            transport: "tcp",
            vlan: r.meta.vlan,
            start: r.meta.first.ts.rfc3339(),
            duration_s: (last.ts.nanos_since(r.meta.first.ts) as f64 / 1e9 * 1e6).round() / 1e6,
            first_frame: r.meta.first.number,
            last_frame: last.number,
            packets: r.tcp.packets,
            bytes: r.tcp.payload_bytes,
            phase: v.phase,
            phase_inferred: v.phase_inferred,
            outcome: v.outcome,
            ended_by: v.ended_by,
            end: v.end,
            cause: v.cause,
            summary: v.summary.clone(),
            remedy: v.remedy,
            confidence: v.confidence,
            evidence: v.evidence.clone(),
            key_frame: v.key_frame,
            notes: v.notes.clone(),
            cookie: n.cookie.as_ref().map(|c| {
                if opts.redact {
                    REDACTED.to_string()
                } else {
                    c.clone()
                }
            }),
            routing_token: n.routing_token.clone(),
            requested_protocols: n.requested.map(|p| p.names()),
            request_flags: n.request_flags.clone(),
            selected_protocol: n.selected.map(|p| p.names()),
            failure_code: n.failure.map(|f| f.to_string()),
            correlation_id: n.correlation_id.clone(),
            tls,
            mcs,
            decrypted: det.decrypt.decrypted(),
            credssp: credssp_report(&det.credssp, opts.redact),
            timeline: opts
                .timeline
                .then(|| r.session.timeline.iter().map(EventView::from).collect()),
            event: None,
            rdpeudp: None,
            client_error: (v.outcome != crate::diagnose::Outcome::Success)
                .then(|| {
                    crate::diagnose::mstsc::client_error(
                        v.cause,
                        det.credssp.error_code,
                        det.mcs.set_error_info,
                    )
                })
                .flatten(),
            proxy: det.proxy.as_ref().map(|p| ProxyReport {
                kind: p.kind,
                target: p.target.clone(),
                reply: p.reply.clone(),
                frame: p.reply_frame.map(|f| f.number),
            }),
            gateway: gateway_report(file, d, opts),
        }
    }
}

fn gateway_report(file: &str, d: &Diagnosed, opts: ReportOptions) -> Option<GatewayReport> {
    let r = &d.record;
    let g = r.session.details.gateway.as_deref()?;
    if !g.recognised {
        return None;
    }
    let inner = g.inner.as_deref().map(|s| {
        let record = crate::diagnose::ConnectionRecord {
            meta: r.meta,
            tcp: r.tcp.clone(),
            session: s.clone(),
            finish: r.finish,
            capture_end: r.capture_end,
        };
        let verdict = crate::diagnose::diagnose(&record);
        let mut rep = ConnectionReport::new(file, &Diagnosed { record, verdict }, opts);
        if let Some(t) = &g.target {
            rep.server = t.clone();
        }
        Box::new(rep)
    });
    Some(GatewayReport {
        endpoint: endpoint(&r.meta.server),
        host: g.host.clone(),
        http: g
            .responses
            .iter()
            .map(|h| HttpReport {
                frame: h.frame.number,
                request: h.request.clone(),
                status: h.status,
                reason: h.reason.clone(),
                auth_schemes: h.schemes.clone(),
            })
            .collect(),
        websocket: g.websocket.is_some(),
        messages: g
            .messages
            .iter()
            .map(|m| TsguReport {
                frame: m.frame.number,
                from: m.dir.sender(),
                kind: crate::proto::tsgu::type_name(m.ptype),
                status: m.status.map(|s| format!("{s:#010x}")),
                status_name: m.status.and_then(crate::proto::tsgu::status_name),
            })
            .collect(),
        data_packets: g.data_packets,
        target: g.target.clone(),
        inner,
    })
}

fn credssp_report(c: &crate::session::CredsspDetails, redact: bool) -> Option<CredsspReport> {
    if c.requests == [0, 0] && c.early_user_auth.is_none() {
        return None;
    }
    let hide = |s: &String| {
        if redact {
            REDACTED.to_string()
        } else {
            s.clone()
        }
    };
    let id = c.ntlm_identity.as_ref();
    Some(CredsspReport {
        version: c.version,
        auth_package: c.auth_package,
        user: id.map(|i| hide(&i.user)),
        domain: id.map(|i| i.domain.clone()),
        workstation: id.map(|i| hide(&i.workstation)),
        error_code: c.error_code.map(|e| format!("{e:#010x}")),
        error_name: c.error_code.and_then(codes::ntstatus_name),
        early_user_authorization: c
            .early_user_auth
            .map(crate::proto::credssp::early_user_auth_name),
        credentials_sent: c.credentials_frame.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::endpoint;
    use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

    #[test]
    fn endpoints_print_like_display() {
        let mut x: u64 = 7;
        for _ in 0..100_000 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let a = SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from((x >> 16) as u32),
                x as u16,
            ));
            assert_eq!(endpoint(&a), a.to_string());
        }
        for a in [
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "[fe80::1%2]:3389",
            "[::1]:3389",
        ] {
            let a: SocketAddr = a.parse().unwrap();
            assert_eq!(endpoint(&a), a.to_string());
        }
    }
}
