//! The state of an RDP-over-UDP transport (MS-RDPEUDP): SYN, SYN+ACK and the first ACK,
//! versions and mode, and the TLS (reliable) or DTLS (lossy) handshake carried inside.

use crate::flow::udp::DatagramObserver;
use crate::flow::{Dir, FrameRef};
use crate::proto::rdpeudp::{self, flags};
use crate::proto::tls;

/// Most timeline entries kept for a UDP transport.
pub const MAX_UDP_EVENTS: usize = 64;

/// One notable datagram.
#[derive(Debug, Clone, PartialEq)]
pub struct UdpEvent {
    /// The frame.
    pub frame: FrameRef,
    /// Sender.
    pub dir: Dir,
    /// What it shows.
    pub what: String,
}

/// What an RDP-over-UDP transport showed.
#[derive(Debug, Clone, Default)]
pub struct UdpSession {
    /// The client's SYNs.
    pub syn: Vec<FrameRef>,
    /// The server's SYN+ACKs.
    pub syn_ack: Vec<FrameRef>,
    /// RDPEUDP version from SYNEX (1, 2, 3 or 0x101 for RDPEUDP2), client's offer.
    pub client_version: Option<u16>,
    /// Version the server answered.
    pub server_version: Option<u16>,
    /// Lossy (SYNLOSSY: DTLS) rather than reliable (TLS).
    pub lossy: bool,
    /// Correlation id in hex.
    pub correlation_id: Option<String>,
    /// TLS/DTLS ClientHello.
    pub client_hello: Option<FrameRef>,
    /// ServerHello (or HelloVerifyRequest for DTLS).
    pub server_hello: Option<FrameRef>,
    /// DTLS HelloVerifyRequest.
    pub hello_verify: Option<FrameRef>,
    /// ChangeCipherSpec per direction.
    pub ccs: [Option<FrameRef>; 2],
    /// Application data records per direction.
    pub app_records: [u64; 2],
    /// Plaintext alerts: sender, frame, level, description.
    pub alerts: Vec<(Dir, FrameRef, u8, u8)>,
    /// An RDPEUDP FIN.
    pub fin: Option<(Dir, FrameRef)>,
    /// Datagrams that carried RDPEUDP data per direction.
    pub data: [u64; 2],
    /// Whether the flow looks like RDPEUDP at all (a SYN, or records found inside).
    pub is_rdpeudp: bool,
    /// Notable datagrams.
    pub timeline: Vec<UdpEvent>,
}

impl UdpSession {
    fn note(&mut self, dir: Dir, frame: FrameRef, what: String) {
        if self.timeline.len() < MAX_UDP_EVENTS {
            self.timeline.push(UdpEvent { frame, dir, what });
        }
    }
}

impl DatagramObserver for UdpSession {
    fn datagram(&mut self, dir: Dir, payload: &[u8], frame: FrameRef) {
        let Some(h) = rdpeudp::parse_fec_header(payload) else {
            return;
        };
        // After an RDPEUDP2 handshake (version 0x101) datagrams no longer start with the
        // FEC header: only look for records in them.
        let v2 = self.server_version == Some(0x101) && !self.syn_ack.is_empty();
        let syn_like = !v2
            && h.has(flags::SYN)
            && ((dir == Dir::ToServer && h.source_ack == u32::MAX && !h.has(flags::ACK))
                || (dir == Dir::ToClient && h.has(flags::ACK)));
        if syn_like {
            if let Some(s) = rdpeudp::parse_syn(payload) {
                self.is_rdpeudp = true;
                let ver = s
                    .version
                    .map_or(String::new(), |v| format!(", SYNEX version {v:#x}"));
                if dir == Dir::ToServer && !h.has(flags::ACK) {
                    self.syn.push(frame);
                    self.client_version = s.version.or(self.client_version);
                    self.lossy |= h.has(flags::SYNLOSSY);
                    if let Some(id) = s.correlation_id {
                        self.correlation_id
                            .get_or_insert_with(|| id.iter().map(|b| format!("{b:02x}")).collect());
                    }
                    let mode = if h.has(flags::SYNLOSSY) {
                        "lossy"
                    } else {
                        "reliable"
                    };
                    let n = self.syn.len();
                    self.note(
                        dir,
                        frame,
                        format!("RDPEUDP SYN #{n} ({mode}, MTU {}{ver})", s.up_mtu),
                    );
                } else if dir == Dir::ToClient && h.has(flags::ACK) {
                    self.syn_ack.push(frame);
                    self.server_version = s.version.or(self.server_version);
                    self.note(
                        dir,
                        frame,
                        format!("RDPEUDP SYN+ACK (MTU {}{ver})", s.down_mtu),
                    );
                }
            }
            return;
        }
        if h.has(flags::FIN) && self.fin.is_none() {
            self.fin = Some((dir, frame));
            self.note(dir, frame, "RDPEUDP FIN".into());
        }
        let Some(r) = rdpeudp::find_record(payload) else {
            if h.has(flags::DATA) {
                if let Some(n) = self.data.get_mut(dir.index()) {
                    *n += 1;
                }
            }
            return;
        };
        self.is_rdpeudp = true;
        if let Some(n) = self.data.get_mut(dir.index()) {
            *n += 1;
        }
        let proto = if r.dtls { "DTLS" } else { "TLS" };
        match (r.content_type, r.handshake_type) {
            (tls::content_type::HANDSHAKE, Some(1)) if self.client_hello.is_none() => {
                self.client_hello = Some(frame);
                self.note(dir, frame, format!("{proto} ClientHello inside RDPEUDP"));
            }
            (tls::content_type::HANDSHAKE, Some(2)) if self.server_hello.is_none() => {
                self.server_hello = Some(frame);
                self.note(dir, frame, format!("{proto} ServerHello inside RDPEUDP"));
            }
            (tls::content_type::HANDSHAKE, Some(3)) if self.hello_verify.is_none() => {
                self.hello_verify = Some(frame);
                self.note(dir, frame, "DTLS HelloVerifyRequest inside RDPEUDP".into());
            }
            (tls::content_type::CHANGE_CIPHER_SPEC, _) => {
                if let Some(c) = self.ccs.get_mut(dir.index()) {
                    if c.is_none() {
                        *c = Some(frame);
                        self.note(
                            dir,
                            frame,
                            format!("{proto} ChangeCipherSpec inside RDPEUDP"),
                        );
                    }
                }
            }
            (tls::content_type::ALERT, _) => {
                if let Some((level, desc)) = r.alert {
                    self.alerts.push((dir, frame, level, desc));
                    self.note(
                        dir,
                        frame,
                        format!(
                            "{proto} alert {} {} inside RDPEUDP",
                            tls::alert_level_name(level),
                            tls::alert_description_name(desc)
                        ),
                    );
                }
            }
            (tls::content_type::APPLICATION_DATA, _) => {
                if let Some(n) = self.app_records.get_mut(dir.index()) {
                    *n += 1;
                    if *n == 1 {
                        self.note(
                            dir,
                            frame,
                            format!("first {proto} application data inside RDPEUDP"),
                        );
                    }
                }
            }
            _ => {}
        }
    }
}
