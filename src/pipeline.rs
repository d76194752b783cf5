//! The pipeline wired end to end: frames -> decode -> flow -> session -> diagnose.
//!
//! [`Analyzer`] is a [`FrameSink`] usable by any frame source (files here, live capture
//! later); each finished RDP connection is diagnosed and handed to a callback at once, so
//! memory is bounded by live connections, not by the capture.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};

use crate::capture::{
    self, CaptureError, CaptureSummary, Frame, FrameSink, ReadAhead, ReadOptions, Timestamp,
};
use crate::decode::{self, Transport};
use crate::decrypt::{KeyStore, SharedKeys};
use crate::diagnose::{self, ConnectionRecord, Verdict};
use crate::flow::udp::{FinishedUdp, UdpMeta, UdpTable};
use crate::flow::{FinishedConnection, FlowConfig, FlowTable, FrameRef, SweepClock};
use crate::session::udp::UdpSession;
use crate::session::{Session, SessionConfig};

/// Settings of an analysis.
#[derive(Debug, Clone)]
pub struct AnalyzeConfig {
    /// TCP ports treated as RDP (3389 plus `--port`).
    pub rdp_ports: Vec<u16>,
    /// Connection-table settings.
    pub flow: FlowConfig,
    /// Threads for one large capture (or stdin), the result being the same: with two, one
    /// reads and frames the capture while the calling thread analyses it; with more, frames
    /// are also split across workers by connection ([`crate::parallel`]).
    pub workers: usize,
    /// TLS keys from `--keylog` files (pcapng Decryption Secrets Blocks add to a copy).
    pub keys: KeyStore,
    /// Files smaller than this are read and analysed by one thread whatever `workers` says
    /// ([`SPLIT_FILE_BYTES`]; tests lower it).
    pub split_min_bytes: u64,
    /// For tests of a split capture: move a bucket of connections between the two threads
    /// at every chunk (whenever one can move) instead of only to balance their work.
    pub split_churn: bool,
}

impl Default for AnalyzeConfig {
    fn default() -> Self {
        AnalyzeConfig {
            rdp_ports: vec![3389],
            flow: FlowConfig::default(),
            keys: KeyStore::default(),
            workers: 1,
            split_min_bytes: SPLIT_FILE_BYTES,
            split_churn: false,
        }
    }
}

/// One diagnosed connection with everything known about it.
#[derive(Debug, Clone)]
pub struct Diagnosed {
    /// The facts.
    pub record: ConnectionRecord,
    /// The verdict.
    pub verdict: Verdict,
}

/// Counters of one analysis run.
#[derive(Debug, Clone, Default)]
pub struct AnalyzeStats {
    /// Frames read.
    pub frames: u64,
    /// Frames that carried TCP, UDP or an ICMP error.
    pub decoded: u64,
    /// TCP connections tracked (RDP or not).
    pub tcp_connections: u64,
    /// Time of the first frame.
    pub first_ts: Option<Timestamp>,
    /// Time of the last frame.
    pub last_ts: Option<Timestamp>,
    /// Connections evicted because the connection table was full.
    pub evicted: u64,
}

/// Which of `n` shares a packet's connection belongs to: a symmetric hash of its endpoints
/// (for an ICMP error, of the endpoints it quotes), stable across threads.
pub fn share_of(pkt: &decode::Packet<'_>, n: u32) -> u32 {
    match &pkt.transport {
        Transport::Tcp(s) => share_of_endpoints((pkt.src, s.src_port), (pkt.dst, s.dst_port), n),
        Transport::Udp {
            src_port, dst_port, ..
        } => share_of_endpoints((pkt.src, *src_port), (pkt.dst, *dst_port), n),
        Transport::IcmpError(e) => share_of_endpoints(
            (e.quoted_src, e.quoted_src_port),
            (e.quoted_dst, e.quoted_dst_port),
            n,
        ),
    }
}

/// [`share_of`] from the two endpoints, in either order.
pub fn share_of_endpoints(a: (IpAddr, u16), b: (IpAddr, u16), n: u32) -> u32 {
    fn code((ip, port): (IpAddr, u16)) -> u64 {
        match ip {
            IpAddr::V4(v4) => (u64::from(u32::from(v4)) << 16) | u64::from(port),
            IpAddr::V6(v6) => {
                let x = u128::from(v6);
                ((x as u64) ^ ((x >> 64) as u64)).rotate_left(16) ^ u64::from(port)
            }
        }
    }
    let (x, y) = (code(a), code(b));
    let (lo, hi) = if x <= y { (x, y) } else { (y, x) };
    // splitmix64's finalizer over both codes.
    let mut z = lo.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ hi;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z % u64::from(n.max(1))) as u32
}

/// One diagnosed RDP-over-UDP transport.
#[derive(Debug, Clone)]
pub struct UdpDiagnosed {
    /// Endpoints and first frame.
    pub meta: UdpMeta,
    /// Last frame.
    pub last: FrameRef,
    /// Datagrams client to server and server to client.
    pub datagrams: [u64; 2],
    /// What the transport showed.
    pub session: UdpSession,
    /// The verdict.
    pub verdict: Verdict,
}

/// Idle time after which a UDP transport is finished.
const UDP_IDLE_NS: i64 = 120 * 1_000_000_000;

/// Frames in, diagnosed connections out.
pub struct Analyzer<F: FnMut(Diagnosed)> {
    config: AnalyzeConfig,
    table: FlowTable<Session>,
    udp: UdpTable<UdpSession>,
    /// Finished RDP-over-UDP transports, in the order they finished.
    pub udp_done: Vec<UdpDiagnosed>,
    on_done: F,
    /// Counters.
    pub stats: AnalyzeStats,
    /// TLS key-log lines found in the capture (pcapng Decryption Secrets Blocks).
    pub embedded_secrets: usize,
    /// The keys every session of this analysis decrypts with (`--keylog` plus secrets blocks).
    keys: SharedKeys,
    /// When the tables are swept; `None` when a dispatcher sweeps this analyzer (a worker
    /// of a split capture).
    clock: Option<SweepClock>,
}

impl<F: FnMut(Diagnosed)> Analyzer<F> {
    /// An analyzer calling `on_done` for every finished RDP connection.
    pub fn new(config: AnalyzeConfig, on_done: F) -> Self {
        let mut flow = config.flow.clone();
        flow.rdp_ports = config.rdp_ports.clone();
        Analyzer {
            table: FlowTable::new(flow),
            udp: UdpTable::new(UDP_IDLE_NS),
            udp_done: Vec::new(),
            keys: Arc::new(RwLock::new(config.keys.clone())),
            config,
            on_done,
            stats: AnalyzeStats::default(),
            embedded_secrets: 0,
            clock: Some(SweepClock::default()),
        }
    }

    /// An analyzer that never sweeps on its own: its caller replays the sweeps of the whole
    /// capture with [`Analyzer::sweep`] (a worker that sees only some connections).
    pub fn externally_swept(mut self) -> Self {
        self.clock = None;
        self
    }

    /// Sweeps the TCP and UDP tables at `now` (expiring closed and idle connections), as
    /// the sweep clock of a single analyzer does.
    pub fn sweep(&mut self, now: Timestamp) {
        let done = &mut self.udp_done;
        self.udp
            .sweep(now, &mut |f| Self::udp_finished(done, now, f));
        let on_done = &mut self.on_done;
        self.table
            .sweep(now, &mut |f| Self::finished(on_done, now, f));
    }

    /// Counts `ts` as seen in the capture (a worker learns the capture's time span from the
    /// frames it is not given).
    pub fn note_time(&mut self, ts: Timestamp) {
        self.stats.first_ts = Some(self.stats.first_ts.map_or(ts, |t| t.min(ts)));
        self.stats.last_ts = Some(self.stats.last_ts.map_or(ts, |t| t.max(ts)));
    }

    fn finished(on_done: &mut F, capture_end: Timestamp, f: FinishedConnection<Session>) {
        let session = f.observer.finish();
        if !session.is_rdp {
            return;
        }
        let record = ConnectionRecord {
            meta: f.meta,
            tcp: f.tcp,
            session,
            finish: f.reason,
            capture_end,
        };
        let verdict = diagnose::diagnose(&record);
        on_done(Diagnosed { record, verdict });
    }

    /// Expires connections idle at `now` (capture or wall-clock time), diagnosing them.
    /// Live capture calls this on a quiet interface so timeouts still fire.
    pub fn tick(&mut self, now: Timestamp) {
        let on_done = &mut self.on_done;
        self.table
            .sweep(now, &mut |f| Self::finished(on_done, now, f));
    }

    /// Diagnoses, once each, the open connections that have reached the RDP session
    /// since the last call (live mode prints them before they end).
    pub fn newly_established(&mut self, now: Timestamp) -> Vec<Diagnosed> {
        let mut out = Vec::new();
        self.table.for_each_open(&mut |meta, tcp, s| {
            if s.announced || !s.is_rdp() || !s.maybe_in_session() {
                return;
            }
            let record = ConnectionRecord {
                meta: *meta,
                tcp: tcp.clone(),
                session: s.snapshot(),
                finish: crate::flow::FinishReason::CaptureEnd,
                capture_end: now,
            };
            let verdict = diagnose::diagnose(&record);
            if verdict.phase == crate::diagnose::Phase::RdpSession {
                s.announced = true;
                out.push(Diagnosed { record, verdict });
            }
        });
        out.sort_by_key(|d| d.record.meta.first.number);
        out
    }

    fn udp_finished(
        done: &mut Vec<UdpDiagnosed>,
        capture_end: Timestamp,
        f: FinishedUdp<UdpSession>,
    ) {
        if !f.observer.is_rdpeudp {
            return;
        }
        let verdict = crate::diagnose::udp::diagnose_udp(&f.meta, f.last, &f.observer, capture_end);
        done.push(UdpDiagnosed {
            meta: f.meta,
            last: f.last,
            datagrams: f.datagrams,
            session: f.observer,
            verdict,
        });
    }

    /// The smallest first frame of the connections and UDP transports still open.
    pub fn min_live_first(&self) -> Option<u64> {
        [self.table.min_live_first(), self.udp.min_live_first()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Marks in `set` (bit `b % 64` of word `b / 64`) the buckets, of `buckets` by
    /// [`share_of_endpoints`], that hold a connection or UDP transport still open.
    pub fn live_buckets(&self, buckets: u32, set: &mut [u64]) {
        let n = buckets.clamp(1, (set.len() as u32).saturating_mul(64).max(1));
        for (a, b) in self.table.endpoints().chain(self.udp.endpoints()) {
            let i = share_of_endpoints((a.ip(), a.port()), (b.ip(), b.port()), n) as usize;
            if let Some(word) = set.get_mut(i / 64) {
                *word |= 1u64 << (i % 64);
            }
        }
    }

    /// Finishes every open connection (end of the capture).
    pub fn finish(&mut self) {
        {
            let end = self.stats.last_ts.unwrap_or_default();
            let done = &mut self.udp_done;
            self.udp
                .finish_all(&mut |f| Self::udp_finished(done, end, f));
        }
        let end = self.stats.last_ts.unwrap_or_default();
        let on_done = &mut self.on_done;
        self.table
            .finish_all(&mut |f| Self::finished(on_done, end, f));
        self.stats.tcp_connections = self.table.created;
        self.stats.evicted = self.table.evicted;
    }
}

impl<F: FnMut(Diagnosed)> FrameSink for Analyzer<F> {
    fn frame(&mut self, frame: &Frame<'_>) {
        self.analyze_frame(frame);
        if let Some(clock) = &mut self.clock {
            if clock.due(frame.ts) {
                self.sweep(frame.ts);
            }
        }
    }

    fn secrets(&mut self, secrets_type: u32, data: &[u8]) {
        self.secrets_block(secrets_type, data);
    }
}

impl<F: FnMut(Diagnosed)> Analyzer<F> {
    /// One frame through decode, the flow tables and the sessions.
    fn analyze_frame(&mut self, frame: &Frame<'_>) {
        let pkt = decode::decode(frame.linktype, frame.data);
        self.decoded_frame(frame.number, frame.ts, pkt.as_ref());
    }

    /// One frame already decoded (`None`: not decodable), as [`FrameSink::frame`] would
    /// analyse its bytes; a caller other than [`FrameSink::frame`] sweeps (an analyzer
    /// [`externally_swept`](Self::externally_swept)).
    pub fn decoded_frame(&mut self, number: u64, ts: Timestamp, pkt: Option<&decode::Packet<'_>>) {
        self.stats.frames += 1;
        self.stats.first_ts.get_or_insert(ts);
        self.stats.last_ts = Some(self.stats.last_ts.map_or(ts, |t| t.max(ts)));
        let Some(pkt) = pkt else {
            return;
        };
        self.stats.decoded += 1;
        let fref = FrameRef { number, ts };
        match &pkt.transport {
            Transport::Tcp(seg) => {
                let src = SocketAddr::new(pkt.src, seg.src_port);
                let dst = SocketAddr::new(pkt.dst, seg.dst_port);
                let ports = &self.config.rdp_ports;
                let keys = &self.keys;
                let mut new_session = |meta: &crate::flow::ConnMeta| {
                    let on_rdp_port = ports.contains(&meta.server.port());
                    let keys = Some(Arc::clone(keys));
                    let rdp_ports = ports.clone();
                    Session::new(
                        meta,
                        SessionConfig {
                            on_rdp_port,
                            keys,
                            rdp_ports,
                        },
                    )
                };
                // Connections finished early (closed, idle, port reuse) are diagnosed now,
                // against the current time as the capture's end so far.
                let now = ts;
                let on_done = &mut self.on_done;
                self.table
                    .tcp(src, dst, pkt.vlan, seg, fref, &mut new_session, &mut |f| {
                        Self::finished(on_done, now, f)
                    });
            }
            Transport::IcmpError(e) => self.table.icmp(e, pkt.src, fref),
            Transport::Udp {
                src_port,
                dst_port,
                payload,
            } => {
                let src = SocketAddr::new(pkt.src, *src_port);
                let dst = SocketAddr::new(pkt.dst, *dst_port);
                let ports = &self.config.rdp_ports;
                let mut start = |p: &[u8]| {
                    if crate::proto::rdpeudp::is_client_syn(p) || ports.contains(&dst.port()) {
                        Some(true)
                    } else if ports.contains(&src.port()) {
                        Some(false)
                    } else {
                        None
                    }
                };
                self.udp
                    .datagram(src, dst, pkt.vlan, payload, fref, &mut start, &mut |_| {
                        UdpSession::default()
                    });
            }
        }
    }

    /// Adds the keys of a pcapng Decryption Secrets Block.
    fn secrets_block(&mut self, secrets_type: u32, data: &[u8]) {
        self.embedded_secrets += data
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count();
        // Sessions hold the same store: keys arriving before a connection's records still apply.
        if let Ok(mut keys) = self.keys.write() {
            keys.add_secrets_block(secrets_type, data);
        }
    }
}

/// The result of analysing one capture.
#[derive(Debug)]
pub struct FileAnalysis {
    /// The path as given.
    pub path: String,
    /// Diagnosed RDP connections in order of their first frame.
    pub connections: Vec<Diagnosed>,
    /// Diagnosed RDP-over-UDP transports in order of their first frame.
    pub udp: Vec<UdpDiagnosed>,
    /// Reading statistics, with the error that stopped reading early, if any.
    pub capture: Option<CaptureSummary>,
    /// The error that prevented reading at all.
    pub error: Option<CaptureError>,
    /// Counters.
    pub stats: AnalyzeStats,
}

impl FileAnalysis {
    /// The error to report for this file, if any (unreadable, truncated or malformed).
    pub fn problem(&self) -> Option<&CaptureError> {
        self.error
            .as_ref()
            .or_else(|| self.capture.as_ref().and_then(|c| c.error.as_ref()))
    }
}

/// Analyses one capture file (or `-` for stdin) completely.
pub fn analyze_path(path: &str, config: &AnalyzeConfig) -> FileAnalysis {
    collect(path, |keep| stream_path(path, config, usize::MAX, keep))
}

/// Runs a streaming analysis of `path` and collects what it hands out.
pub(crate) fn collect(
    path: &str,
    run: impl FnOnce(&mut dyn FnMut(Finished) -> std::io::Result<()>) -> StreamRun,
) -> FileAnalysis {
    let mut connections = Vec::new();
    let mut udp = Vec::new();
    let mut keep = |item: Finished| {
        match item {
            Finished::Tcp(d) => connections.push(*d),
            Finished::Udp(u) => udp.push(*u),
        }
        Ok(())
    };
    let run = run(&mut keep);
    FileAnalysis {
        path: path.to_string(),
        connections,
        udp,
        capture: run.capture,
        error: run.error,
        stats: run.stats,
    }
}

/// A finished, diagnosed connection of either transport.
#[derive(Debug)]
pub enum Finished {
    /// A TCP connection.
    Tcp(Box<Diagnosed>),
    /// An RDP-over-UDP transport.
    Udp(Box<UdpDiagnosed>),
}

impl Finished {
    /// Its first frame.
    pub fn first_frame(&self) -> u64 {
        match self {
            Finished::Tcp(d) => d.record.meta.first.number,
            Finished::Udp(u) => u.meta.first.number,
        }
    }
}

/// What streaming a capture produced besides the connections.
#[derive(Debug)]
pub struct StreamRun {
    /// Reading statistics, with the error that stopped reading early, if any.
    pub capture: Option<CaptureSummary>,
    /// The error that prevented reading at all.
    pub error: Option<CaptureError>,
    /// Counters.
    pub stats: AnalyzeStats,
    /// Whether results were released before the end because more than `hold` were held.
    pub released_early: bool,
    /// Buckets of connections moved between the two threads of a split capture to balance
    /// their work ([`crate::parallel`]); 0 for one thread.
    pub rebalanced: u64,
}

/// Frames between checks of what can be released.
pub(crate) const RELEASE_CHECK_FRAMES: u64 = 4096;

/// Results held before release, keyed by first frame, and the logic that releases them in
/// first-frame order.
pub(crate) struct Holder<'e> {
    held: std::collections::BTreeMap<u64, Finished>,
    hold: usize,
    emit: &'e mut dyn FnMut(Finished) -> std::io::Result<()>,
    failed: Option<std::io::Error>,
    released_early: bool,
}

impl<'e> Holder<'e> {
    /// Holds at most about `hold` results before releasing early.
    pub(crate) fn new(
        hold: usize,
        emit: &'e mut dyn FnMut(Finished) -> std::io::Result<()>,
    ) -> Self {
        Holder {
            held: std::collections::BTreeMap::new(),
            hold,
            emit,
            failed: None,
            released_early: false,
        }
    }

    /// Keeps a finished result until it can be released in order.
    pub(crate) fn insert(&mut self, item: Finished) {
        self.held.insert(item.first_frame(), item);
    }

    /// Past the hold limit, releases the results of connections that started before
    /// `live` (the first frame of every connection still open).
    pub(crate) fn relieve(&mut self, live: u64) {
        if self.held.len() <= self.hold {
            return;
        }
        self.released_early = true;
        self.release_below(live);
        // A connection open since long ago would hold everything back: past twice
        // the limit, release the oldest results anyway (its own comes out later).
        if self.held.len() > self.hold.saturating_mul(2) {
            let cut = self.held.keys().nth(self.held.len() - self.hold).copied();
            self.release_below(cut.unwrap_or(u64::MAX));
        }
    }

    /// Whether results were released before the end.
    pub(crate) fn released_early(&self) -> bool {
        self.released_early
    }

    /// Releases, in first-frame order, every held result that started before `below`.
    pub(crate) fn release_below(&mut self, below: u64) {
        let keep = self.held.split_off(&below);
        let ready = std::mem::replace(&mut self.held, keep);
        if ready.is_empty() {
            return;
        }
        // Link the UDP transports being released to TCP connections still at hand.
        let mut tcp: Vec<Diagnosed> = Vec::new();
        let mut udp: Vec<UdpDiagnosed> = Vec::new();
        let mut order: Vec<(u64, bool)> = Vec::new();
        for (n, item) in ready {
            match item {
                Finished::Tcp(d) => {
                    order.push((n, true));
                    tcp.push(*d);
                }
                Finished::Udp(u) => {
                    order.push((n, false));
                    udp.push(*u);
                }
            }
        }
        link_udp_to_tcp(&mut tcp, &mut udp);
        let (mut tcp, mut udp) = (tcp.into_iter(), udp.into_iter());
        for (_, is_tcp) in order {
            let item = if is_tcp {
                tcp.next().map(|d| Finished::Tcp(Box::new(d)))
            } else {
                udp.next().map(|u| Finished::Udp(Box::new(u)))
            };
            if let (Some(item), None) = (item, &self.failed) {
                if let Err(e) = (self.emit)(item) {
                    self.failed = Some(e);
                }
            }
        }
    }
}

/// Analyses one capture and hands each diagnosed connection to `emit` in first-frame
/// order. At most about `hold` results are kept: past that, the results of connections that
/// started before every connection still open are released early (RDP-over-UDP transports
/// are then linked only to TCP connections released with them). `usize::MAX` holds all
/// until the end. An error from `emit` (a closed pipe) stops the output, not the reading.
pub fn stream_path(
    path: &str,
    config: &AnalyzeConfig,
    hold: usize,
    emit: &mut dyn FnMut(Finished) -> std::io::Result<()>,
) -> StreamRun {
    // Two threads or more: the capture is split by connection ([`crate::parallel`]).
    if config.workers >= 2 && worth_splitting(path, config.split_min_bytes) {
        return crate::parallel::stream_path_parallel(path, config, hold, emit);
    }
    let ahead = ReadAhead::Off;
    let pending: std::cell::RefCell<Vec<Diagnosed>> = std::cell::RefCell::new(Vec::new());
    let mut analyzer = Analyzer::new(config.clone(), |d| pending.borrow_mut().push(d));
    let mut holder = Holder::new(hold, emit);
    let mut sink = StreamSink {
        analyzer: &mut analyzer,
        pending: &pending,
        holder: &mut holder,
        frames: 0,
    };
    let (capture, error) = match capture::open_input(path)
        .and_then(|src| capture::read_capture_with(src, &mut sink, ReadOptions::ahead(ahead)))
    {
        Ok(summary) => (Some(summary), None),
        Err(e) => (None, Some(e)),
    };
    analyzer.finish();
    let stats = analyzer.stats.clone();
    let udp = std::mem::take(&mut analyzer.udp_done);
    drop(analyzer);
    for d in pending.take() {
        holder.insert(Finished::Tcp(Box::new(d)));
    }
    for u in udp {
        holder.insert(Finished::Udp(Box::new(u)));
    }
    holder.release_below(u64::MAX);
    StreamRun {
        capture,
        error,
        stats,
        released_early: holder.released_early(),
        rebalanced: 0,
    }
}

/// Files at least this big (and stdin) are split across threads when more than one is
/// allowed; smaller ones are not worth the threads.
pub const SPLIT_FILE_BYTES: u64 = 32 << 20;

/// Whether `path` is stdin or a file of at least `min_bytes`.
fn worth_splitting(path: &str, min_bytes: u64) -> bool {
    path == "-" || std::fs::metadata(path).is_ok_and(|m| m.len() >= min_bytes)
}

/// Feeds frames to the analyzer and moves finished results into the holder.
struct StreamSink<'a, 'e, F: FnMut(Diagnosed)> {
    analyzer: &'a mut Analyzer<F>,
    pending: &'a std::cell::RefCell<Vec<Diagnosed>>,
    holder: &'a mut Holder<'e>,
    frames: u64,
}

impl<F: FnMut(Diagnosed)> FrameSink for StreamSink<'_, '_, F> {
    fn frame(&mut self, frame: &Frame<'_>) {
        self.analyzer.frame(frame);
        self.frames += 1;
        if self.frames % RELEASE_CHECK_FRAMES != 0 {
            return;
        }
        for d in self.pending.borrow_mut().drain(..) {
            self.holder.insert(Finished::Tcp(Box::new(d)));
        }
        for u in self.analyzer.udp_done.drain(..) {
            self.holder.insert(Finished::Udp(Box::new(u)));
        }
        let live = self.analyzer.min_live_first().unwrap_or(u64::MAX);
        self.holder.relieve(live);
    }

    fn secrets(&mut self, secrets_type: u32, data: &[u8]) {
        self.analyzer.secrets(secrets_type, data);
    }
}

/// Ties each RDP-over-UDP transport to the TCP connection it belongs to (same client and
/// server hosts, started while that connection was open) and says so in both verdicts.
pub fn link_udp_to_tcp(tcp: &mut [Diagnosed], udp: &mut [UdpDiagnosed]) {
    for u in udp.iter_mut() {
        let t0 = u.meta.first.ts;
        let owner = tcp.iter_mut().rev().find(|d| {
            let m = &d.record.meta;
            let last = d.record.tcp.last.map_or(m.first.ts, |f| f.ts);
            m.client.ip() == u.meta.client.ip()
                && m.server.ip() == u.meta.server.ip()
                && m.first.ts <= t0
                && t0.nanos_since(last) <= 5_000_000_000
        });
        let Some(d) = owner else { continue };
        let ok = u.verdict.outcome == crate::diagnose::Outcome::Success;
        let what = if ok {
            "established: bulk data may run over UDP"
        } else {
            "not established: the session runs over TCP only"
        };
        d.verdict.notes.push(format!(
            "RDP over UDP was attempted from {} (frame {}) and {what} ({})",
            u.meta.client, u.meta.first.number, u.verdict.cause
        ));
        u.verdict.notes.push(format!(
            "belongs to the TCP connection {} -> {} (first frame {})",
            d.record.meta.client, d.record.meta.server, d.record.meta.first.number
        ));
    }
}
