//! Stage 5: the per-connection state machine. It turns one connection's in-order bytes
//! and TCP events into an owned timeline of protocol events plus parsed details.
//!
//! Each direction is framed according to its mode (TPKT/fast-path before and outside
//! TLS, TLS records after a Connection Confirm that selects TLS). Only PDUs whose content
//! matters are buffered (bounded); bulk TLS application data and fast-path PDUs are
//! skipped by length, so memory stays flat on long sessions. An unexpected PDU is a
//! timeline event, not an error; a connection may start mid-stream or with TLS.

mod details;
mod events;
mod gateway;
mod handlers;
mod proxy;
mod stream;
mod tlsdec;
pub mod udp;

pub use details::{
    AlertRecord, CredsspDetails, DecryptDetails, Details, GatewayDetails, HttpExchange, McsDetails,
    NegotiationDetails, ProxyDetails, RecordLog, TlsDetails, TsguMessage,
};
pub use events::{hex_head, icmp_name, Event, EventKind, EventView};

use std::cell::Cell;

use crate::flow::{ConnMeta, ConnectionObserver, Dir, FrameRef, TcpEvent};
use stream::{DirStream, Mode};

/// Most regular events kept per connection (terminal events get [`MAX_TERMINAL_EVENTS`] more).
pub const MAX_EVENTS: usize = 192;
/// Extra room for terminal events (FIN, RST, alerts, disconnects) once the timeline is full.
pub const MAX_TERMINAL_EVENTS: usize = 64;

/// Session-stage settings.
#[derive(Debug, Clone, Default)]
pub struct SessionConfig {
    /// Whether the connection uses a configured RDP port (reported even without content).
    pub on_rdp_port: bool,
    /// TLS keys (key logs, pcapng secrets blocks), shared by the analysis' sessions.
    pub keys: Option<crate::decrypt::SharedKeys>,
    /// TCP ports treated as RDP (a proxy CONNECT to one of them is RDP); empty means 3389.
    pub rdp_ports: Vec<u16>,
}

/// One connection's protocol state and timeline.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    streams: [DirStream; 2],
    timeline: Vec<Event>,
    retransmit_run: [bool; 2],
    /// Boxed, like the record's: a connection's result is moved several times on its way out.
    details: Box<Details>,
    /// The capture showed the connection from its SYN.
    clean_start: bool,
    /// Fast-path PDUs may appear (connection set up, or joined mid-stream).
    fastpath_allowed: bool,
    /// Whether the established session was already announced (live mode).
    pub announced: bool,
    /// TLS decryption state per direction.
    crypt: [tlsdec::DirCrypt; 2],
    /// Decrypted bytes per direction.
    inner: [tlsdec::InnerStream; 2],
    /// The connection's endpoints (for a tunnelled session's record).
    meta: ConnMeta,
    /// Proxy handshake state (SOCKS5 / HTTP CONNECT).
    proxy: Option<Box<proxy::ProxyState>>,
    /// RD Gateway state: HTTP, WebSocket and MS-TSGU framing and the tunnelled session.
    gateway: Option<Box<gateway::GatewayState>>,
    /// Decrypted content showed this TLS connection is not an RD Gateway.
    not_gateway: bool,
    /// `wants_data`'s answer per direction while the state it depends on stays as it is
    /// (`None`: to be worked out). The table asks before every payload segment; the
    /// answer changes only when a PDU is handled, a TCP event or a gap arrives, each of
    /// which forgets it ([`Session::wants_changed`]).
    wants: [Cell<Option<bool>>; 2],
}

/// What the session stage hands to the diagnosis.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    /// Events in frame order.
    pub timeline: Vec<Event>,
    /// Parsed facts (boxed: about 2 KiB, and a finished connection's record is moved several
    /// times on its way to the output).
    pub details: Box<Details>,
    /// Whether this connection is RDP (by port or by content) and so reported.
    pub is_rdp: bool,
}

impl Session {
    /// A new session for the connection `meta`.
    pub fn new(meta: &ConnMeta, config: SessionConfig) -> Self {
        Session {
            clean_start: meta.saw_syn,
            fastpath_allowed: false,
            announced: false,
            config,
            streams: [DirStream::new(), DirStream::new()],
            timeline: Vec::new(),
            retransmit_run: [false; 2],
            details: Box::default(),
            crypt: Default::default(),
            inner: Default::default(),
            meta: *meta,
            proxy: None,
            gateway: None,
            not_gateway: false,
            wants: Default::default(),
        }
    }

    /// Forgets `wants_data`'s cached answers.
    #[inline]
    pub(super) fn wants_changed(&mut self) {
        self.wants = Default::default();
    }

    /// Whether payload of `dir` is still needed, and whether that answer lasts until the
    /// session's own state changes (not when it depends on the shared key store, which
    /// may fill up while the connection runs).
    fn work_out_wants(&self, dir: Dir) -> (bool, bool) {
        match self.streams[dir.index()].mode {
            Mode::Ignore => (false, true),
            Mode::Start | Mode::Proxy => (true, true),
            // Off an RDP port, a connection that did not open with an X.224 request is not
            // ours, unless it may be an RD Gateway that keys may reveal.
            _ if self.is_rdp() => (true, true),
            _ => (self.may_be_gateway(dir), self.config.keys.is_none()),
        }
    }

    fn is_rdp_port(&self, port: u16) -> bool {
        if self.config.rdp_ports.is_empty() {
            port == 3389
        } else {
            self.config.rdp_ports.contains(&port)
        }
    }

    /// Whether the connection is RDP: on an RDP port, or opened by an X.224 request.
    pub fn is_rdp(&self) -> bool {
        let d = &self.details;
        self.config.on_rdp_port
            || d.rdp_by_content
            || d.proxy
                .as_ref()
                .and_then(|p| p.target_port())
                .is_some_and(|p| self.is_rdp_port(p))
            || d.gateway.as_ref().is_some_and(|g| g.recognised)
    }

    /// Cheap test whether the session may have reached its data phase (a diagnosis of a
    /// [`Session::snapshot`] tells for sure).
    pub fn maybe_in_session(&self) -> bool {
        let d = &self.details;
        d.mcs.client_info.is_some()
            || d.mcs.fastpath_pdus.iter().any(|n| *n > 0)
            || d.tls.app_records[0] + d.tls.app_records[1] >= 16
    }

    /// The record as of now, leaving the session running.
    pub fn snapshot(&self) -> SessionRecord {
        let mut timeline = self.timeline.clone();
        timeline.sort_by_key(|e| e.frame.number);
        let mut details = self.details.clone();
        if let (Some(g), Some(inner)) = (details.gateway.as_mut(), self.gateway_inner()) {
            g.inner = Some(Box::new(inner.snapshot()));
        }
        SessionRecord {
            timeline,
            details,
            is_rdp: self.is_rdp(),
        }
    }

    /// Ends the session and yields its record.
    pub fn finish(mut self) -> SessionRecord {
        self.connection_closing();
        for dir in [Dir::ToServer, Dir::ToClient] {
            if let Some(held) = self.streams[dir.index()].held() {
                self.details.incomplete_pdu[dir.index()] = Some(held);
            }
        }
        self.timeline.sort_by_key(|e| e.frame.number);
        if let Some(inner) = self.take_gateway_inner() {
            if let Some(g) = self.details.gateway.as_mut() {
                g.inner = Some(Box::new(inner.finish()));
            }
        }
        let is_rdp = self.is_rdp();
        SessionRecord {
            timeline: self.timeline,
            details: self.details,
            is_rdp,
        }
    }

    fn push(&mut self, frame: FrameRef, dir: Option<Dir>, kind: EventKind) {
        let room = if kind.is_terminal() {
            MAX_EVENTS + MAX_TERMINAL_EVENTS
        } else {
            MAX_EVENTS
        };
        if self.timeline.len() < room {
            self.timeline.push(Event { frame, dir, kind });
        } else {
            self.details.dropped_events += 1;
        }
    }
}

impl ConnectionObserver for Session {
    fn tcp_event(&mut self, event: TcpEvent, dir: Dir, frame: FrameRef) {
        self.wants_changed();
        let kind = match event {
            TcpEvent::Syn { retransmit } => EventKind::Syn { retransmit },
            TcpEvent::SynAck { retransmit } => EventKind::SynAck { retransmit },
            TcpEvent::Established => EventKind::Established,
            TcpEvent::Fin | TcpEvent::Rst => {
                // Records set aside are decrypted before the close they precede.
                self.connection_closing();
                if event == TcpEvent::Fin {
                    EventKind::Fin
                } else {
                    EventKind::Rst
                }
            }
            TcpEvent::Retransmission { len } => {
                // Only the first retransmission of a run goes to the timeline.
                if std::mem::replace(&mut self.retransmit_run[dir.index()], true) {
                    return;
                }
                EventKind::Retransmission { len }
            }
            TcpEvent::ZeroWindow => EventKind::ZeroWindow,
            TcpEvent::Icmp { error, from } => EventKind::Icmp { error, from },
        };
        self.push(frame, Some(dir), kind);
    }

    #[inline]
    fn data(&mut self, dir: Dir, bytes: &[u8], frame: FrameRef) {
        let d = dir.index();
        self.retransmit_run[d] = false;
        // Bulk: the bytes fall inside a PDU skipped by length, before its last bytes (kept
        // for decryption): only the count moves.
        if self.streams[d].skip_within(bytes.len()) {
            return;
        }
        self.feed(dir, bytes, frame);
    }

    fn gap(&mut self, dir: Dir, bytes: u64, frame: FrameRef) {
        self.wants_changed();
        self.push(frame, Some(dir), EventKind::Gap { bytes });
        self.streams[dir.index()].gap(bytes);
        self.crypt_gap(dir);
    }

    #[inline]
    fn wants_data(&self, dir: Dir) -> bool {
        let cached = &self.wants[dir.index()];
        if let Some(wants) = cached.get() {
            // Debug builds (the tests, fuzzing) check the cache against the state.
            debug_assert_eq!(wants, self.work_out_wants(dir).0, "stale wants_data");
            return wants;
        }
        let (wants, lasting) = self.work_out_wants(dir);
        if lasting {
            cached.set(Some(wants));
        }
        wants
    }
}
