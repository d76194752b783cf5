//! The connection table: finds a packet's connection, orients it, updates TCP state and
//! feeds the reassemblers; expires connections by capture time.
//!
//! Per-direction arrays are `[_; 2]` indexed by `Dir::index()`, which is 0 or 1.
#![allow(clippy::indexing_slicing)]

use std::net::SocketAddr;

use super::reassembly::{Reassembler, SegmentKind, StreamSink, DEFAULT_MAX_BUFFERED};
use super::{
    ConnMeta, ConnectionObserver, Dir, FrameRef, Retransmit, TcpEvent, TcpStats,
    MAX_FRAMES_PER_KIND,
};
use crate::capture::Timestamp;
use crate::decode::{tcp_flags, IcmpError, TcpSegment};

/// Settings of the connection table.
#[derive(Debug, Clone)]
pub struct FlowConfig {
    /// Ports whose TCP connections are RDP candidates even without content evidence.
    pub rdp_ports: Vec<u16>,
    /// An open connection silent this long (capture time) is finished as idle.
    pub idle_timeout_ns: i64,
    /// A closed connection (RST, or FIN both ways) is finished after this much silence.
    pub closed_linger_ns: i64,
    /// Cap on buffered out-of-order bytes per direction.
    pub max_buffered_per_dir: usize,
    /// Cap on live connections: past it the oldest idle connections are evicted
    /// (those whose observer wants no more data first), finished as
    /// [`FinishReason::Evicted`] and counted in [`FlowTable::evicted`].
    pub max_connections: usize,
}

/// Default cap on live connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 20_000;

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            rdp_ports: vec![3389],
            idle_timeout_ns: 600 * 1_000_000_000,
            closed_linger_ns: 30 * 1_000_000_000,
            max_buffered_per_dir: DEFAULT_MAX_BUFFERED,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Why a connection left the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// Closed by RST or FIN in both directions, then quiet.
    Closed,
    /// Silent past the idle timeout.
    Idle,
    /// The capture ended.
    CaptureEnd,
    /// A new connection reused its addresses and ports.
    PortReuse,
    /// Evicted because the table held `limit` live connections
    /// ([`FlowConfig::max_connections`]).
    Evicted {
        /// The limit that was reached.
        limit: usize,
    },
}

/// A connection leaving the table, with everything known about it.
#[derive(Debug)]
pub struct FinishedConnection<O> {
    /// Who talks to whom.
    pub meta: ConnMeta,
    /// TCP metadata.
    pub tcp: TcpStats,
    /// The observer (session state).
    pub observer: O,
    /// Why it left.
    pub reason: FinishReason,
}

type Key = (SocketAddr, SocketAddr);

fn key(a: SocketAddr, b: SocketAddr) -> Key {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

struct Conn<O> {
    meta: ConnMeta,
    tcp: TcpStats,
    observer: O,
    streams: [Reassembler; 2],
    client_isn: Option<u32>,
    server_isn: Option<u32>,
    last_ts: Timestamp,
}

impl<O> Conn<O> {
    fn closed(&self) -> bool {
        self.tcp.rst.iter().any(Option::is_some)
            || self.tcp.fin.iter().all(Option::is_some)
            // An ICMP error answering the SYN ends the attempt as surely as a RST.
            || (!self.tcp.icmp.is_empty() && self.tcp.syn_ack.is_empty())
    }

    /// Whether the observer still wants the client's payload (false: the client's stream
    /// is not RDP, so the connection will not be reported).
    fn wants_data(&self) -> bool
    where
        O: ConnectionObserver,
    {
        self.observer.wants_data(Dir::ToServer)
    }

    fn finish(mut self, reason: FinishReason) -> FinishedConnection<O> {
        for (next, stream) in self.tcp.stream_next_seq.iter_mut().zip(&self.streams) {
            *next = stream.next_seq();
        }
        FinishedConnection {
            meta: self.meta,
            tcp: self.tcp,
            observer: self.observer,
            reason,
        }
    }
}

/// Adapts the observer to the reassembler's sink for one direction.
struct DirSink<'a, O> {
    observer: &'a mut O,
    dir: Dir,
    gaps: &'a mut u64,
}

impl<O: ConnectionObserver> StreamSink for DirSink<'_, O> {
    fn data(&mut self, bytes: &[u8], frame: FrameRef) {
        self.observer.data(self.dir, bytes, frame);
    }
    fn gap(&mut self, bytes: u64, frame: FrameRef) {
        *self.gaps += bytes;
        self.observer.gap(self.dir, bytes, frame);
    }
}

/// The live connections: boxed in slots, found by key through a hash map, or, for a packet
/// of the same connection as the one before (most packets: bursts of one connection's
/// segments), through the remembered slot of the last one without hashing.
struct Conns<O> {
    /// Boxed: a connection is a few KiB, and the slots' slack and growth then cost only a
    /// pointer each.
    slots: Vec<Option<Box<Conn<O>>>>,
    /// Empty slots, reused first (the slot count stays at the most connections live at once).
    free: Vec<usize>,
    /// The slot of each live connection.
    index: super::FlowMap<Key, usize>,
    /// The last packet found.
    last: Option<Last>,
}

/// The last packet found: its addresses, its connection's slot and its direction.
#[derive(Debug, Clone, Copy)]
struct Last {
    src: SocketAddr,
    dst: SocketAddr,
    slot: usize,
    dir: Dir,
}

/// A SYN without ACK: a client opening (or reopening) a connection.
fn is_client_syn(seg: &TcpSegment<'_>) -> bool {
    seg.has(tcp_flags::SYN) && !seg.has(tcp_flags::ACK)
}

/// The direction of a packet from `src` on a connection opened by `client`.
fn dir_from(src: SocketAddr, client: SocketAddr) -> Dir {
    if src == client {
        Dir::ToServer
    } else {
        Dir::ToClient
    }
}

impl<O> Conns<O> {
    fn new() -> Self {
        Conns {
            slots: Vec::new(),
            free: Vec::new(),
            index: super::FlowMap::default(),
            last: None,
        }
    }

    fn len(&self) -> usize {
        self.index.len()
    }

    /// The slot of the connection of a packet from `src` to `dst`, and the packet's
    /// direction on it.
    #[inline]
    fn find(&mut self, src: SocketAddr, dst: SocketAddr) -> Option<(usize, Dir)> {
        if let Some(l) = &self.last {
            if l.src == src && l.dst == dst {
                return Some((l.slot, l.dir));
            }
            if l.src == dst && l.dst == src {
                return Some((l.slot, l.dir.reverse()));
            }
        }
        self.find_by_key(src, dst)
    }

    /// [`Conns::find`] through the hash map.
    #[inline(never)]
    fn find_by_key(&mut self, src: SocketAddr, dst: SocketAddr) -> Option<(usize, Dir)> {
        let slot = *self.index.get(&key(src, dst))?;
        let dir = dir_from(src, self.slots.get(slot)?.as_ref()?.meta.client);
        self.last = Some(Last {
            src,
            dst,
            slot,
            dir,
        });
        Some((slot, dir))
    }

    fn get_mut(&mut self, i: usize) -> Option<&mut Conn<O>> {
        self.slots.get_mut(i)?.as_deref_mut()
    }

    /// The connection and direction that [`Conns::find`] found.
    fn found_mut(&mut self, found: Option<(usize, Dir)>) -> Option<(&mut Conn<O>, Dir)> {
        let (i, dir) = found?;
        Some((self.get_mut(i)?, dir))
    }

    /// Adds a connection under `k` (no connection may hold it) for a packet from `src` to
    /// `dst`; returns its slot and the packet's direction.
    fn insert(
        &mut self,
        k: Key,
        conn: Box<Conn<O>>,
        src: SocketAddr,
        dst: SocketAddr,
    ) -> (usize, Dir) {
        let dir = dir_from(src, conn.meta.client);
        let i = match self.free.pop() {
            Some(i) => {
                if let Some(slot) = self.slots.get_mut(i) {
                    *slot = Some(conn);
                }
                i
            }
            None => {
                self.slots.push(Some(conn));
                self.slots.len() - 1
            }
        };
        self.index.insert(k, i);
        self.last = Some(Last {
            src,
            dst,
            slot: i,
            dir,
        });
        (i, dir)
    }

    /// Takes the connection in slot `i` out of the table.
    fn remove(&mut self, i: usize) -> Option<Box<Conn<O>>> {
        let c = self.slots.get_mut(i)?.take()?;
        self.index.remove(&key(c.meta.client, c.meta.server));
        self.free.push(i);
        if self.last.is_some_and(|l| l.slot == i) {
            self.last = None;
        }
        Some(c)
    }

    /// The live connections with their slots.
    fn iter(&self) -> impl Iterator<Item = (usize, &Conn<O>)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some((i, c.as_deref()?)))
    }

    fn values_mut(&mut self) -> impl Iterator<Item = &mut Conn<O>> {
        self.slots.iter_mut().filter_map(|c| c.as_deref_mut())
    }

    /// Takes every connection out.
    fn drain(&mut self) -> Vec<Box<Conn<O>>> {
        self.index.clear();
        self.free.clear();
        self.last = None;
        self.slots.drain(..).flatten().collect()
    }
}

/// The table of live TCP connections.
pub struct FlowTable<O> {
    config: FlowConfig,
    conns: Conns<O>,
    /// Connections created so far.
    pub created: u64,
    /// Connections evicted because the table was full ([`FlowConfig::max_connections`]).
    pub evicted: u64,
}

impl<O: ConnectionObserver> FlowTable<O> {
    /// An empty table.
    pub fn new(config: FlowConfig) -> Self {
        FlowTable {
            config,
            conns: Conns::new(),
            created: 0,
            evicted: 0,
        }
    }

    /// Live connections.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether no connection is live.
    pub fn is_empty(&self) -> bool {
        self.conns.len() == 0
    }

    fn is_rdp_port(&self, port: u16) -> bool {
        self.config.rdp_ports.contains(&port)
    }

    /// Processes one TCP segment. `new_observer` builds the observer of a new connection;
    /// finished connections (port reuse) go to `done`.
    #[allow(clippy::too_many_arguments)]
    pub fn tcp(
        &mut self,
        src: SocketAddr,
        dst: SocketAddr,
        vlan: Option<u16>,
        seg: &TcpSegment<'_>,
        frame: FrameRef,
        new_observer: &mut dyn FnMut(&ConnMeta) -> O,
        done: &mut dyn FnMut(FinishedConnection<O>),
    ) {
        // Fast path, one lookup: a packet of a known connection (not a new SYN, which may
        // reuse its addresses).
        let found = self.conns.find(src, dst);
        if !is_client_syn(seg) {
            if let Some((c, dir)) = self.conns.found_mut(found) {
                Self::update(c, dir, seg, frame);
                return;
            }
        }
        self.tcp_other(src, dst, vlan, seg, frame, found, new_observer, done);
    }

    /// [`FlowTable::tcp`] for a SYN or a packet of no known connection: port reuse, a new
    /// connection, or nothing.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn tcp_other(
        &mut self,
        src: SocketAddr,
        dst: SocketAddr,
        vlan: Option<u16>,
        seg: &TcpSegment<'_>,
        frame: FrameRef,
        found: Option<(usize, Dir)>,
        new_observer: &mut dyn FnMut(&ConnMeta) -> O,
        done: &mut dyn FnMut(FinishedConnection<O>),
    ) {
        let is_syn = is_client_syn(seg);
        if let Some((c, dir)) = self.conns.found_mut(found) {
            let reuse = is_syn && {
                let same_attempt =
                    c.meta.client == src && c.client_isn.map_or(true, |i| i == seg.seq);
                !same_attempt || (c.closed() && c.client_isn != Some(seg.seq))
            };
            if !reuse {
                Self::update(c, dir, seg, frame);
                return;
            }
            if let Some(old) = found.and_then(|(i, _)| self.conns.remove(i)) {
                done(old.finish(FinishReason::PortReuse));
            }
        }
        // A lone ACK, FIN or RST of a connection not in the table (its start was not
        // captured, or it was already finished as idle) says nothing worth a verdict;
        // a SYN+ACK does (a half-open scan), and so does payload.
        let interesting = seg.has(tcp_flags::SYN) || !seg.payload.is_empty();
        if !interesting {
            return;
        }
        let client_is_src = self.orient(src, dst, seg);
        let (client, server) = if client_is_src {
            (src, dst)
        } else {
            (dst, src)
        };
        let meta = ConnMeta {
            client,
            server,
            vlan,
            first: frame,
            saw_syn: is_syn,
        };
        if self.conns.len() >= self.config.max_connections.max(1) {
            self.evict(done);
        }
        let observer = new_observer(&meta);
        let max = self.config.max_buffered_per_dir;
        self.created += 1;
        let conn = Box::new(Conn {
            meta,
            tcp: TcpStats::default(),
            observer,
            streams: [Reassembler::new(max), Reassembler::new(max)],
            client_isn: None,
            server_isn: None,
            last_ts: frame.ts,
        });
        let (i, dir) = self.conns.insert(key(src, dst), conn, src, dst);
        if let Some(c) = self.conns.get_mut(i) {
            Self::update(c, dir, seg, frame);
        }
    }

    /// Makes room for one more connection: evicts the connections whose client stream is
    /// no longer wanted (not RDP) and then the longest idle, in a batch of 1/64 of the limit so that the
    /// scan is paid once per many new connections, not once per connection.
    fn evict(&mut self, done: &mut dyn FnMut(FinishedConnection<O>)) {
        let limit = self.config.max_connections.max(1);
        let batch = (limit / 64).max(1);
        let n = (self.conns.len() + batch)
            .saturating_sub(limit)
            .min(self.conns.len());
        if n == 0 {
            return;
        }
        let mut order: Vec<(bool, Timestamp, u64, usize)> = self
            .conns
            .iter()
            .map(|(i, c)| (c.wants_data(), c.last_ts, c.meta.first.number, i))
            .collect();
        if n < order.len() {
            order.select_nth_unstable(n - 1);
            order.truncate(n);
        }
        // Diagnosed in order of first frame, like every other batch of finished connections.
        order.sort_unstable_by_key(|e| e.2);
        for (.., i) in order {
            if let Some(c) = self.conns.remove(i) {
                self.evicted += 1;
                done(c.finish(FinishReason::Evicted { limit }));
            }
        }
    }

    /// Decides whether the sender of a connection's first seen segment is the client.
    fn orient(&self, src: SocketAddr, dst: SocketAddr, seg: &TcpSegment<'_>) -> bool {
        if seg.has(tcp_flags::SYN) {
            return !seg.has(tcp_flags::ACK);
        }
        let (src_rdp, dst_rdp) = (self.is_rdp_port(src.port()), self.is_rdp_port(dst.port()));
        if dst_rdp != src_rdp {
            return dst_rdp;
        }
        // An X.224 Connection Request is sent by the client.
        if seg.payload.len() > 5 && seg.payload[0] == 3 && seg.payload[5] & 0xf0 == 0xe0 {
            return true;
        }
        // Otherwise the lower port is taken to be the server's.
        dst.port() <= src.port()
    }

    /// One segment of a known connection. The common segment (ACK, maybe payload, no
    /// SYN/FIN/RST, open window) runs straight through; the rest is out of line, in the
    /// same order of observer events.
    fn update(c: &mut Conn<O>, dir: Dir, seg: &TcpSegment<'_>, frame: FrameRef) {
        let d = dir.index();
        c.last_ts = frame.ts;
        c.tcp.last = Some(frame);
        c.tcp.packets[d] += 1;
        let syn = seg.has(tcp_flags::SYN);
        if syn {
            Self::syn(c, dir, seg, frame);
        }
        // SYN or RST: no stream bytes to account for.
        let streamless = seg.flags & (tcp_flags::SYN | tcp_flags::RST) != 0;
        if seg.has(tcp_flags::ACK) {
            let peer = dir.reverse().index();
            if !syn && dir == Dir::ToServer && c.tcp.established.is_none() {
                Self::maybe_established(c, seg, frame);
            }
            let newer =
                c.tcp.highest_ack[peer].map_or(true, |a| (seg.ack.wrapping_sub(a) as i32) > 0);
            if newer {
                c.tcp.highest_ack[peer] = Some(seg.ack);
            }
            // acked() does nothing unless bytes are buffered out of order.
            if !streamless && c.streams[peer].has_pending() {
                let stream = &mut c.streams[peer];
                let mut sink = DirSink {
                    observer: &mut c.observer,
                    dir: dir.reverse(),
                    gaps: &mut c.tcp.gap_bytes[peer],
                };
                stream.acked(seg.ack, frame, &mut sink);
            }
        }
        if !streamless {
            let end = seg.seq.wrapping_add(seg.payload.len() as u32);
            if c.tcp.seq_jump[d].is_none()
                && c.streams[d]
                    .next_seq()
                    .is_some_and(|n| (seg.seq.wrapping_sub(n) as i32) > 0)
            {
                c.tcp.seq_jump[d] = Some(frame);
            }
            let higher = c.tcp.highest_seq[d].map_or(true, |h| (end.wrapping_sub(h) as i32) > 0);
            if higher {
                c.tcp.highest_seq[d] = Some(end);
            }
            if seg.window == 0 {
                Self::zero_window(c, dir, frame);
            }
        }
        if !seg.payload.is_empty() && !syn {
            let len = seg.payload.len() as u32;
            c.tcp.payload_bytes[d] += u64::from(len);
            c.tcp.max_payload[d] = c.tcp.max_payload[d].max(len);
            c.tcp.last_data[d] = Some(frame);
            let wanted = c.observer.wants_data(dir);
            let stream = &mut c.streams[d];
            stream.wanted = wanted;
            let mut sink = DirSink {
                observer: &mut c.observer,
                dir,
                gaps: &mut c.tcp.gap_bytes[d],
            };
            let kind = stream.segment(seg.seq, seg.payload, frame, &mut sink);
            if kind == SegmentKind::Retransmission {
                Self::retransmission(c, dir, seg, frame);
            }
        }
        if seg.flags & (tcp_flags::FIN | tcp_flags::RST) != 0 {
            Self::fin_rst(c, dir, seg, frame);
        }
    }

    /// A SYN (the client's) or SYN+ACK (the server's): ISN and events.
    #[cold]
    #[inline(never)]
    fn syn(c: &mut Conn<O>, dir: Dir, seg: &TcpSegment<'_>, frame: FrameRef) {
        // The client's SYN or the server's SYN+ACK; anything else (a SYN from the server's
        // side, a SYN+ACK from the client's) is not part of this connection's handshake.
        let client = match (seg.has(tcp_flags::ACK), dir) {
            (false, Dir::ToServer) => true,
            (true, Dir::ToClient) => false,
            _ => return,
        };
        let (frames, isn) = if client {
            (&mut c.tcp.syn, &mut c.client_isn)
        } else {
            (&mut c.tcp.syn_ack, &mut c.server_isn)
        };
        let retransmit = !frames.is_empty();
        if frames.len() < MAX_FRAMES_PER_KIND {
            frames.push(frame);
        }
        *isn = Some(seg.seq);
        c.streams[dir.index()].set_isn(seg.seq);
        let event = if client {
            TcpEvent::Syn { retransmit }
        } else {
            TcpEvent::SynAck { retransmit }
        };
        c.observer.tcp_event(event, dir, frame);
    }

    /// The client's ACK of the server's SYN+ACK completes the handshake.
    #[cold]
    #[inline(never)]
    fn maybe_established(c: &mut Conn<O>, seg: &TcpSegment<'_>, frame: FrameRef) {
        if c.server_isn
            .is_some_and(|isn| seg.ack == isn.wrapping_add(1))
        {
            c.tcp.established = Some(frame);
            c.observer
                .tcp_event(TcpEvent::Established, Dir::ToServer, frame);
        }
    }

    /// A zero window advertised (not on a SYN or RST).
    #[cold]
    #[inline(never)]
    fn zero_window(c: &mut Conn<O>, dir: Dir, frame: FrameRef) {
        let d = dir.index();
        c.tcp.zero_windows[d] += 1;
        if c.tcp.zero_windows[d] == 1 {
            c.observer.tcp_event(TcpEvent::ZeroWindow, dir, frame);
        }
    }

    /// Payload entirely before the delivery point.
    #[cold]
    #[inline(never)]
    fn retransmission(c: &mut Conn<O>, dir: Dir, seg: &TcpSegment<'_>, frame: FrameRef) {
        let len = seg.payload.len() as u32;
        c.tcp.retransmissions[dir.index()] += 1;
        if c.tcp.retransmits.len() < 2 * MAX_FRAMES_PER_KIND {
            c.tcp.retransmits.push(Retransmit {
                dir,
                frame,
                seq_end: seg.seq.wrapping_add(len),
                len,
            });
        }
        c.observer
            .tcp_event(TcpEvent::Retransmission { len }, dir, frame);
    }

    /// FIN (the first of a direction) and RST, in that order.
    #[cold]
    #[inline(never)]
    fn fin_rst(c: &mut Conn<O>, dir: Dir, seg: &TcpSegment<'_>, frame: FrameRef) {
        let d = dir.index();
        if seg.has(tcp_flags::FIN) && c.tcp.fin[d].is_none() {
            c.tcp.fin[d] = Some(frame);
            c.observer.tcp_event(TcpEvent::Fin, dir, frame);
        }
        if seg.has(tcp_flags::RST) {
            if c.tcp.rst[d].is_none() {
                c.tcp.rst[d] = Some(frame);
            }
            c.observer.tcp_event(TcpEvent::Rst, dir, frame);
        }
    }

    /// Attaches an ICMP error to the connection it quotes, if that connection is live.
    pub fn icmp(&mut self, error: &IcmpError, from: std::net::IpAddr, frame: FrameRef) {
        if error.quoted_protocol != 6 {
            return;
        }
        let qs = SocketAddr::new(error.quoted_src, error.quoted_src_port);
        let qd = SocketAddr::new(error.quoted_dst, error.quoted_dst_port);
        let Some((i, dir)) = self.conns.find(qs, qd) else {
            return;
        };
        let Some(c) = self.conns.get_mut(i) else {
            return;
        };
        c.last_ts = frame.ts;
        c.tcp.last = Some(frame);
        if c.tcp.icmp.len() < MAX_FRAMES_PER_KIND {
            c.tcp.icmp.push((frame, *error, from));
        }
        c.observer.tcp_event(
            TcpEvent::Icmp {
                error: *error,
                from,
            },
            dir,
            frame,
        );
    }

    /// Finishes closed connections quiet for the linger time and open ones idle too long.
    /// The caller decides when (see [`super::SweepClock`]).
    pub fn sweep(&mut self, now: Timestamp, done: &mut dyn FnMut(FinishedConnection<O>)) {
        let (idle, linger) = (self.config.idle_timeout_ns, self.config.closed_linger_ns);
        let expired: Vec<(usize, FinishReason)> = self
            .conns
            .iter()
            .filter_map(|(i, c)| {
                let quiet = now.nanos_since(c.last_ts);
                if c.closed() && quiet > linger {
                    Some((i, FinishReason::Closed))
                } else if quiet > idle {
                    Some((i, FinishReason::Idle))
                } else {
                    None
                }
            })
            .collect();
        for (i, reason) in expired {
            if let Some(c) = self.conns.remove(i) {
                done(c.finish(reason));
            }
        }
    }

    /// Visits every live connection (for live reporting of connections still open).
    pub fn for_each_open(&mut self, f: &mut dyn FnMut(&ConnMeta, &TcpStats, &mut O)) {
        for c in self.conns.values_mut() {
            f(&c.meta, &c.tcp, &mut c.observer);
        }
    }

    /// The smallest first frame of the live connections (results of connections that
    /// started earlier can be released in frame order).
    pub fn min_live_first(&self) -> Option<u64> {
        self.conns.iter().map(|(_, c)| c.meta.first.number).min()
    }

    /// The endpoints of every live connection, in no particular order.
    pub fn endpoints(&self) -> impl Iterator<Item = (SocketAddr, SocketAddr)> + '_ {
        self.conns.index.keys().copied()
    }

    /// Finishes every connection at the end of the capture, in order of first frame.
    pub fn finish_all(&mut self, done: &mut dyn FnMut(FinishedConnection<O>)) {
        let mut all = self.conns.drain();
        all.sort_by_key(|c| c.meta.first.number);
        for mut c in all {
            let frame = c.tcp.last.unwrap_or(c.meta.first);
            for dir in [Dir::ToServer, Dir::ToClient] {
                let d = dir.index();
                let mut sink = DirSink {
                    observer: &mut c.observer,
                    dir,
                    gaps: &mut c.tcp.gap_bytes[d],
                };
                c.streams[d].flush_gap(frame, &mut sink);
            }
            done(c.finish(FinishReason::CaptureEnd));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Endpoints 0..12: four hosts, three ports each.
    fn ep(id: u8) -> SocketAddr {
        let host = 1 + id / 3;
        let port = [1000, 3389, 2000][usize::from(id % 3)];
        SocketAddr::from(([10, 0, 0, host], port))
    }

    fn id(a: SocketAddr) -> u8 {
        (0..12).find(|i| ep(*i) == a).unwrap()
    }

    /// Checks that every byte it is given was sent along its connection in that direction:
    /// each payload byte names its sender and receiver.
    struct Check {
        meta: ConnMeta,
        packets: u64,
    }

    impl ConnectionObserver for Check {
        fn tcp_event(&mut self, _: TcpEvent, _: Dir, _: FrameRef) {}
        fn data(&mut self, dir: Dir, bytes: &[u8], _: FrameRef) {
            let (from, to) = match dir {
                Dir::ToServer => (self.meta.client, self.meta.server),
                Dir::ToClient => (self.meta.server, self.meta.client),
            };
            let want = id(from) << 4 | id(to);
            for b in bytes {
                assert_eq!(
                    *b, want,
                    "byte of {:?} given to {:?} {:?}",
                    b, self.meta, dir
                );
            }
            self.packets += 1;
        }
        fn gap(&mut self, _: Dir, _: u64, _: FrameRef) {}
        fn wants_data(&self, _: Dir) -> bool {
            true
        }
    }

    impl<O> FlowTable<O> {
        /// The slots, the free list and the index agree.
        fn check(&self) {
            let live = self.conns.slots.iter().flatten().count();
            assert_eq!(live, self.conns.index.len());
            assert_eq!(live + self.conns.free.len(), self.conns.slots.len());
            for (k, i) in &self.conns.index {
                let c = self.conns.slots[*i].as_ref().unwrap();
                assert_eq!(key(c.meta.client, c.meta.server), *k);
            }
            if let Some(l) = self.conns.last {
                let c = self.conns.slots[l.slot].as_ref().unwrap();
                assert_eq!(key(l.src, l.dst), key(c.meta.client, c.meta.server));
                assert_eq!(l.dir, dir_from(l.src, c.meta.client));
            }
        }
    }

    /// One step: a segment (source, destination, flags, payload length) or time passing.
    fn steps() -> impl Strategy<Value = Vec<(u8, u8, u8, usize, bool)>> {
        let flags = prop::sample::select(vec![
            tcp_flags::ACK,
            tcp_flags::ACK,
            tcp_flags::ACK | tcp_flags::PSH,
            tcp_flags::SYN,
            tcp_flags::SYN | tcp_flags::ACK,
            tcp_flags::FIN | tcp_flags::ACK,
            tcp_flags::RST,
        ]);
        prop::collection::vec(
            (
                0u8..12,
                0u8..12,
                flags,
                0usize..4,
                prop::bool::weighted(0.05),
            ),
            1..300,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Bursts, interleaving, both directions, port reuse, sweeps and evictions: every
        /// byte reaches the connection it was sent on (the remembered last slot never
        /// stands for another connection), and the table's slots stay consistent.
        #[test]
        fn packets_reach_their_connection(steps in steps(), limit in 1usize..6) {
            let config = FlowConfig {
                max_connections: limit,
                idle_timeout_ns: 5_000,
                closed_linger_ns: 1_000,
                ..FlowConfig::default()
            };
            let mut table: FlowTable<Check> = FlowTable::new(config);
            let mut seq = std::collections::HashMap::new();
            let mut finished = 0u64;
            let mut ts = 0i64;
            let mut done = |f: FinishedConnection<Check>| finished += f.observer.packets;
            for (n, (s, d, flags, len, later)) in steps.into_iter().enumerate() {
                ts += if later { 10_000 } else { 1 };
                let frame = FrameRef { number: n as u64 + 1, ts: Timestamp(ts) };
                if later {
                    table.sweep(frame.ts, &mut done);
                    table.check();
                }
                let (src, dst) = (ep(s), ep(d));
                let next = seq.entry((s, d)).or_insert(1000u32 * u32::from(s));
                let payload = vec![s << 4 | d; len];
                let seg = TcpSegment {
                    src_port: src.port(),
                    dst_port: dst.port(),
                    seq: *next,
                    ack: 1,
                    flags,
                    window: 100,
                    payload: &payload,
                };
                if flags & tcp_flags::SYN != 0 {
                    *next = next.wrapping_add(1);
                } else {
                    *next = next.wrapping_add(len as u32);
                }
                table.tcp(src, dst, None, &seg, frame, &mut |m| Check { meta: *m, packets: 0 }, &mut done);
                table.check();
                prop_assert!(table.len() <= limit);
            }
            table.finish_all(&mut done);
            prop_assert!(table.is_empty());
            table.check();
        }
    }
}
