//! One large capture split across cores.
//!
//! The calling thread reads the capture (decompressing if need be) and dispatches every frame
//! to a worker by a symmetric hash of its connection's endpoints ([`share_of`]), so both
//! directions of a connection, and ICMP errors quoting it, meet in one worker. Chunks of the
//! file are shared with the workers behind an `Arc` (frames are never copied); each worker
//! runs its own [`Analyzer`] on its frames. The reader also replays the sweep clocks of a
//! single analyzer (which frames expire idle or closed connections) in every worker, and
//! tells each worker the capture's time span, so verdicts are those of a single-threaded run;
//! results are merged in first-frame order, streaming as [`stream_path`] does.
//!
//! [`stream_path`]: crate::pipeline::stream_path

use std::cell::RefCell;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::thread;

use crate::capture::{self, ChunkSink, FrameSink, FrameSlot, Timestamp};
use crate::decode;
use crate::flow::SweepClock;
use crate::pipeline::{
    share_of, share_of_endpoints, AnalyzeConfig, AnalyzeStats, Analyzer, Diagnosed, Finished,
    Holder, StreamRun, RELEASE_CHECK_FRAMES,
};

/// Chunks queued per worker before the reader waits (bounds memory: ~1 MiB each).
const QUEUE_PER_WORKER: usize = 8;

/// One unit of a worker's work, in capture order.
#[derive(Debug, Clone, Copy)]
enum Work {
    /// A frame of one of its connections.
    Frame(FrameSlot),
    /// Sweep the tables at this time.
    Sweep(Timestamp),
}

/// From the reader to a worker.
enum ToWorker {
    /// A chunk of the capture and this worker's part of it.
    Chunk {
        data: Arc<Vec<u8>>,
        work: Vec<Work>,
        /// Earliest and latest timestamps of every frame in the chunk.
        span: Option<(Timestamp, Timestamp)>,
        /// The number of the chunk's last frame (all frames up to it have been dispatched).
        last_frame: u64,
    },
    /// A pcapng Decryption Secrets Block: every worker adds the keys.
    Secrets(u32, Vec<u8>),
}

/// From a worker to the reader.
enum FromWorker {
    /// Results so far, and the first frame of any connection the worker may still report.
    Progress {
        worker: usize,
        items: Vec<Finished>,
        bound: u64,
    },
    /// The worker finished: its last results and counters.
    Done {
        worker: usize,
        items: Vec<Finished>,
        stats: AnalyzeStats,
    },
}

/// Analyses one capture with `config.workers` threads, handing each result to `emit` in
/// first-frame order; the same results as a single-threaded
/// [`crate::pipeline::stream_path`].
pub fn stream_path_parallel(
    path: &str,
    config: &AnalyzeConfig,
    hold: usize,
    emit: &mut dyn FnMut(Finished) -> std::io::Result<()>,
) -> StreamRun {
    let n = config.workers.clamp(1, 64);
    let mut worker_config = config.clone();
    worker_config.workers = 1;
    // The connection-table cap is shared out, so the memory bound stays the same.
    worker_config.flow.max_connections = (config.flow.max_connections / n).max(1);
    let (result_tx, result_rx) = mpsc::channel::<FromWorker>();
    let mut holder = Holder::new(hold, emit);
    thread::scope(|s| {
        let mut senders = Vec::with_capacity(n);
        for worker in 0..n {
            let (tx, rx) = mpsc::sync_channel::<ToWorker>(QUEUE_PER_WORKER);
            senders.push(tx);
            let cfg = worker_config.clone();
            let results = result_tx.clone();
            s.spawn(move || run_worker(worker, cfg, rx, results));
        }
        drop(result_tx);
        let mut dispatch = Dispatch {
            senders,
            per_worker: vec![Vec::new(); n],
            clock: SweepClock::default(),
            bounds: vec![0; n],
            results: &result_rx,
            holder: &mut holder,
        };
        let (capture, error) = match capture::open_input(path)
            .and_then(|src| capture::read_capture_chunks(src, &mut dispatch))
        {
            Ok(summary) => (Some(summary), None),
            Err(e) => (None, Some(e)),
        };
        // Closing the queues tells the workers to finish.
        dispatch.senders.clear();
        let mut stats = AnalyzeStats::default();
        let mut done = 0;
        while done < n {
            let Ok(msg) = result_rx.recv() else { break };
            match msg {
                FromWorker::Progress {
                    worker,
                    items,
                    bound,
                } => dispatch.progress(worker, items, bound),
                FromWorker::Done {
                    worker,
                    items,
                    stats: st,
                } => {
                    // A finished worker holds nothing back.
                    dispatch.progress(worker, items, u64::MAX);
                    merge_stats(&mut stats, &st, worker == 0);
                    done += 1;
                }
            }
        }
        dispatch.holder.release_below(u64::MAX);
        StreamRun {
            capture,
            error,
            stats,
            released_early: dispatch.holder.released_early(),
        }
    })
}

/// Adds a worker's counters; the time span is the capture's (every worker knows it).
fn merge_stats(total: &mut AnalyzeStats, part: &AnalyzeStats, first: bool) {
    total.frames += part.frames;
    total.decoded += part.decoded;
    total.tcp_connections += part.tcp_connections;
    total.evicted += part.evicted;
    if first {
        total.first_ts = part.first_ts;
        total.last_ts = part.last_ts;
    }
}

/// The reader's side: splits chunks into the workers' parts.
struct Dispatch<'h, 'e> {
    senders: Vec<SyncSender<ToWorker>>,
    per_worker: Vec<Vec<Work>>,
    /// The sweep clock, ticked as a single analyzer's is.
    clock: SweepClock,
    /// Per worker, the first frame of any result it may still send.
    bounds: Vec<u64>,
    results: &'h Receiver<FromWorker>,
    holder: &'h mut Holder<'e>,
}

impl Dispatch<'_, '_> {
    /// Takes in a worker's results and bound, releasing what is safe to release.
    fn progress(&mut self, worker: usize, items: Vec<Finished>, bound: u64) {
        for item in items {
            self.holder.insert(item);
        }
        if let Some(b) = self.bounds.get_mut(worker) {
            *b = bound;
        }
        let live = self.bounds.iter().copied().min().unwrap_or(0);
        self.holder.relieve(live);
    }

    /// Takes in whatever results the workers have sent so far.
    fn collect(&mut self) {
        while let Ok(msg) = self.results.try_recv() {
            if let FromWorker::Progress {
                worker,
                items,
                bound,
            } = msg
            {
                self.progress(worker, items, bound);
            }
        }
    }
}

impl ChunkSink for Dispatch<'_, '_> {
    fn chunk(&mut self, chunk: &Arc<Vec<u8>>, frames: &[FrameSlot]) {
        let n = self.senders.len().max(1) as u32;
        let mut span: Option<(Timestamp, Timestamp)> = None;
        for slot in frames {
            span = Some(span.map_or((slot.ts, slot.ts), |(a, b)| {
                (a.min(slot.ts), b.max(slot.ts))
            }));
            let frame = slot.frame(chunk);
            // Most frames: endpoints at fixed offsets; the rest (ICMP errors quoting a
            // connection, IPv6 extension headers...) fully decoded.
            let worker = match decode::tcp_udp_endpoints(frame.linktype, frame.data) {
                Some((src, sp, dst, dp)) => share_of_endpoints((src, sp), (dst, dp), n),
                None => {
                    decode::decode(frame.linktype, frame.data).map_or(0, |pkt| share_of(&pkt, n))
                }
            };
            if let Some(w) = self.per_worker.get_mut(worker as usize) {
                w.push(Work::Frame(*slot));
            }
            if self.clock.due(slot.ts) {
                for w in &mut self.per_worker {
                    w.push(Work::Sweep(slot.ts));
                }
            }
        }
        let last_frame = frames.last().map_or(0, |f| f.number);
        for (tx, work) in self.senders.iter().zip(self.per_worker.iter_mut()) {
            let work = std::mem::replace(work, Vec::with_capacity(work.capacity()));
            let msg = ToWorker::Chunk {
                data: Arc::clone(chunk),
                work,
                span,
                last_frame,
            };
            // A worker that died has nothing more to say; the others go on.
            let _ = tx.send(msg);
        }
        self.collect();
    }

    fn secrets(&mut self, secrets_type: u32, data: &[u8]) {
        for tx in &self.senders {
            let _ = tx.send(ToWorker::Secrets(secrets_type, data.to_vec()));
        }
    }
}

/// A worker: analyses its frames and reports results as they finish.
fn run_worker(
    worker: usize,
    config: AnalyzeConfig,
    rx: Receiver<ToWorker>,
    results: mpsc::Sender<FromWorker>,
) {
    let pending: RefCell<Vec<Diagnosed>> = RefCell::new(Vec::new());
    let mut analyzer = Analyzer::new(config, |d| pending.borrow_mut().push(d)).externally_swept();
    let (mut since_report, mut chunks_since_report) = (0u64, 0u32);
    let take = |analyzer: &mut Analyzer<_>| -> Vec<Finished> {
        let mut items: Vec<Finished> = pending
            .borrow_mut()
            .drain(..)
            .map(|d| Finished::Tcp(Box::new(d)))
            .collect();
        items.extend(
            analyzer
                .udp_done
                .drain(..)
                .map(|u| Finished::Udp(Box::new(u))),
        );
        items
    };
    for msg in rx {
        match msg {
            ToWorker::Chunk {
                data,
                work,
                span,
                last_frame,
            } => {
                for w in &work {
                    match w {
                        Work::Frame(slot) => analyzer.frame(&slot.frame(&data)),
                        Work::Sweep(ts) => analyzer.sweep(*ts),
                    }
                }
                if let Some((a, b)) = span {
                    analyzer.note_time(a);
                    analyzer.note_time(b);
                }
                since_report += work.len() as u64;
                chunks_since_report += 1;
                // Also report when given little: the reader releases nothing past the
                // oldest bound of all workers.
                if since_report >= RELEASE_CHECK_FRAMES || chunks_since_report >= 2 {
                    (since_report, chunks_since_report) = (0, 0);
                    let bound = analyzer
                        .min_live_first()
                        .unwrap_or(u64::MAX)
                        .min(last_frame.saturating_add(1));
                    let items = take(&mut analyzer);
                    let _ = results.send(FromWorker::Progress {
                        worker,
                        items,
                        bound,
                    });
                }
            }
            ToWorker::Secrets(t, d) => analyzer.secrets(t, &d),
        }
    }
    analyzer.finish();
    let stats = analyzer.stats.clone();
    let items = take(&mut analyzer);
    let _ = results.send(FromWorker::Done {
        worker,
        items,
        stats,
    });
}

/// Analyses one capture split across `workers` threads whatever its size, collecting the
/// results: the same as [`crate::pipeline::analyze_path`].
pub fn analyze_path_parallel(
    path: &str,
    config: &AnalyzeConfig,
    workers: usize,
) -> crate::pipeline::FileAnalysis {
    let mut cfg = config.clone();
    cfg.workers = workers;
    let (mut connections, mut udp) = (Vec::new(), Vec::new());
    let mut keep = |item: Finished| {
        match item {
            Finished::Tcp(d) => connections.push(*d),
            Finished::Udp(u) => udp.push(*u),
        }
        Ok(())
    };
    let run = stream_path_parallel(path, &cfg, usize::MAX, &mut keep);
    crate::pipeline::FileAnalysis {
        path: path.to_string(),
        connections,
        udp,
        capture: run.capture,
        error: run.error,
        stats: run.stats,
    }
}
