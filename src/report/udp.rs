//! The report of an RDP-over-UDP transport: the connection object with `transport: "udp"`.

use serde::Serialize;

use super::model::{endpoint, ConnectionReport};
use crate::pipeline::UdpDiagnosed;

/// RDPEUDP facts of a UDP transport.
#[derive(Debug, Clone, Serialize, Default)]
pub struct UdpReport {
    /// "reliable" (TLS) or "lossy" (DTLS).
    pub mode: &'static str,
    /// RDPEUDP version the client offered (SYNEX), e.g. "0x2"; "0x101" is RDPEUDP2.
    pub version_offered: Option<String>,
    /// Version the server answered.
    pub version: Option<String>,
    /// Correlation id (hex).
    pub correlation_id: Option<String>,
    /// Client SYNs and server SYN+ACKs.
    pub syn: usize,
    /// Server SYN+ACKs.
    pub syn_ack: usize,
    /// Encrypted records client / server.
    pub app_records: [u64; 2],
}

impl ConnectionReport {
    /// Builds the report of an RDP-over-UDP transport found in `file`.
    pub fn udp(file: &str, u: &UdpDiagnosed) -> Self {
        let v = &u.verdict;
        let s = &u.session;
        ConnectionReport {
            kind: "connection",
            file: file.to_string(),
            client: endpoint(&u.meta.client),
            server: endpoint(&u.meta.server),
            transport: "udp",
            vlan: u.meta.vlan,
            start: u.meta.first.ts.rfc3339(),
            duration_s: (u.last.ts.nanos_since(u.meta.first.ts) as f64 / 1e9 * 1e6).round() / 1e6,
            first_frame: u.meta.first.number,
            last_frame: u.last.number,
            packets: u.datagrams,
            phase: v.phase,
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
            rdpeudp: Some(UdpReport {
                mode: if s.lossy { "lossy" } else { "reliable" },
                version_offered: s.client_version.map(|x| format!("{x:#x}")),
                version: s.server_version.map(|x| format!("{x:#x}")),
                correlation_id: s.correlation_id.clone(),
                syn: s.syn.len(),
                syn_ack: s.syn_ack.len(),
                app_records: s.app_records,
            }),
            ..ConnectionReport::default()
        }
    }
}
