//! The pipeline wired end to end: frames -> decode -> flow -> session -> diagnose.
//!
//! [`Analyzer`] is a [`FrameSink`] usable by any frame source (files here, live capture
//! later); each finished RDP connection is diagnosed and handed to a callback at once, so
//! memory is bounded by live connections, not by the capture.

use std::net::SocketAddr;

use crate::capture::{self, CaptureError, CaptureSummary, Frame, FrameSink, Timestamp};
use crate::decode::{self, Transport};
use crate::diagnose::{self, ConnectionRecord, Verdict};
use crate::flow::{FinishedConnection, FlowConfig, FlowTable, FrameRef};
use crate::session::{Session, SessionConfig};

/// Settings of an analysis.
#[derive(Debug, Clone)]
pub struct AnalyzeConfig {
    /// TCP ports treated as RDP (3389 plus `--port`).
    pub rdp_ports: Vec<u16>,
    /// Connection-table settings.
    pub flow: FlowConfig,
}

impl Default for AnalyzeConfig {
    fn default() -> Self {
        AnalyzeConfig {
            rdp_ports: vec![3389],
            flow: FlowConfig::default(),
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
}

/// Frames in, diagnosed connections out.
pub struct Analyzer<F: FnMut(Diagnosed)> {
    config: AnalyzeConfig,
    table: FlowTable<Session>,
    on_done: F,
    /// Counters.
    pub stats: AnalyzeStats,
    /// TLS key-log lines found in the capture (pcapng Decryption Secrets Blocks).
    pub embedded_secrets: usize,
}

impl<F: FnMut(Diagnosed)> Analyzer<F> {
    /// An analyzer calling `on_done` for every finished RDP connection.
    pub fn new(config: AnalyzeConfig, on_done: F) -> Self {
        let mut flow = config.flow.clone();
        flow.rdp_ports = config.rdp_ports.clone();
        Analyzer {
            table: FlowTable::new(flow),
            config,
            on_done,
            stats: AnalyzeStats::default(),
            embedded_secrets: 0,
        }
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

    /// Finishes every open connection (end of the capture).
    pub fn finish(&mut self) {
        let end = self.stats.last_ts.unwrap_or_default();
        let on_done = &mut self.on_done;
        self.table
            .finish_all(&mut |f| Self::finished(on_done, end, f));
        self.stats.tcp_connections = self.table.created;
    }
}

impl<F: FnMut(Diagnosed)> FrameSink for Analyzer<F> {
    fn frame(&mut self, frame: &Frame<'_>) {
        self.stats.frames += 1;
        self.stats.first_ts.get_or_insert(frame.ts);
        self.stats.last_ts = Some(self.stats.last_ts.map_or(frame.ts, |t| t.max(frame.ts)));
        let Some(pkt) = decode::decode(frame.linktype, frame.data) else {
            return;
        };
        self.stats.decoded += 1;
        let fref = FrameRef {
            number: frame.number,
            ts: frame.ts,
        };
        match &pkt.transport {
            Transport::Tcp(seg) => {
                let src = SocketAddr::new(pkt.src, seg.src_port);
                let dst = SocketAddr::new(pkt.dst, seg.dst_port);
                let ports = &self.config.rdp_ports;
                let mut new_session = |meta: &crate::flow::ConnMeta| {
                    let on_rdp_port = ports.contains(&meta.server.port());
                    Session::new(meta, SessionConfig { on_rdp_port })
                };
                // Connections finished early (closed, idle, port reuse) are diagnosed now,
                // against the current time as the capture's end so far.
                let now = frame.ts;
                let on_done = &mut self.on_done;
                self.table
                    .tcp(src, dst, pkt.vlan, seg, fref, &mut new_session, &mut |f| {
                        Self::finished(on_done, now, f)
                    });
            }
            Transport::IcmpError(e) => self.table.icmp(e, pkt.src, fref),
            Transport::Udp { .. } => {}
        }
    }

    fn secrets(&mut self, _secrets_type: u32, data: &[u8]) {
        self.embedded_secrets += data
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count();
    }
}

/// The result of analysing one capture.
#[derive(Debug)]
pub struct FileAnalysis {
    /// The path as given.
    pub path: String,
    /// Diagnosed RDP connections in order of their first frame.
    pub connections: Vec<Diagnosed>,
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
    let mut connections = Vec::new();
    let mut analyzer = Analyzer::new(config.clone(), |d| connections.push(d));
    let (capture, error) =
        match capture::open_input(path).and_then(|src| capture::read_capture(src, &mut analyzer)) {
            Ok(summary) => (Some(summary), None),
            Err(e) => (None, Some(e)),
        };
    analyzer.finish();
    let stats = analyzer.stats.clone();
    drop(analyzer);
    connections.sort_by_key(|d| d.record.meta.first.number);
    FileAnalysis {
        path: path.to_string(),
        connections,
        capture,
        error,
        stats,
    }
}
