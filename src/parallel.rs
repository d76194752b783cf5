//! One large capture split across cores, by connection (three threads or more; with two,
//! [`stream_path`] has one thread read and frame while the other analyses).
//!
//! With `workers` >= 3 threads, one reads the capture (decompressing if need be) a few chunks
//! ahead ([`capture::ReadAhead::Bytes`]), the calling thread frames the chunks and hands the
//! frames to the `workers - 2` others (with two threads in all, when called directly: the
//! calling thread reads too, and one worker analyses), dispatching every frame, when there
//! are several workers, by a
//! symmetric hash of its connection's endpoints ([`share_of`]), so both
//! directions of a connection, and ICMP errors quoting it, meet in one worker. Chunks of the
//! file are shared with the workers behind an `Arc` (frames are never copied); each worker
//! runs its own [`Analyzer`] on its frames. The reader also replays the sweep clocks of a
//! single analyzer (which frames expire idle or closed connections) in every worker, and
//! tells each worker the capture's time span, so verdicts are those of a single-threaded run.
//! Results are released at the same checkpoints (every [`RELEASE_CHECK_FRAMES`] frames) and by
//! the same rule as in [`stream_path`]: each worker reports what finished before a checkpoint
//! and the first frame of its connections still open, and the reader acts on a checkpoint
//! once every worker has reported it, so the output is the same whatever the thread count.
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
const QUEUE_PER_WORKER: usize = 4;

/// One unit of a worker's work, in capture order.
#[derive(Debug, Clone, Copy)]
enum Work {
    /// A frame of one of its connections.
    Frame(FrameSlot),
    /// Sweep the tables at this time.
    Sweep(Timestamp),
    /// Report what finished so far: the release checkpoint after this frame number.
    Checkpoint(u64),
}

/// From the reader to a worker.
enum ToWorker {
    /// A chunk of the capture and this worker's part of it.
    Chunk {
        data: Arc<Vec<u8>>,
        work: Vec<Work>,
        /// Earliest and latest timestamps of every frame in the chunk.
        span: Option<(Timestamp, Timestamp)>,
    },
    /// A pcapng Decryption Secrets Block: every worker adds the keys.
    Secrets(u32, Vec<u8>),
}

/// From a worker to the reader.
enum FromWorker {
    /// A checkpoint reached: the results finished since the last one, and the first frame of
    /// the worker's connections still open.
    Progress {
        checkpoint: u64,
        items: Vec<Finished>,
        live: u64,
    },
    /// The worker finished: its last results and counters.
    Done {
        worker: usize,
        items: Vec<Finished>,
        stats: AnalyzeStats,
    },
}

/// Analyses one capture with `config.workers` threads (a reader ahead from three on, the
/// calling thread dispatching, and at least one worker), handing each result to `emit` in
/// first-frame order; the same results as a single-threaded
/// [`crate::pipeline::stream_path`].
pub fn stream_path_parallel(
    path: &str,
    config: &AnalyzeConfig,
    hold: usize,
    emit: &mut dyn FnMut(Finished) -> std::io::Result<()>,
) -> StreamRun {
    // `config.workers` threads in all: with three or more, one reads ahead, this one frames
    // and dispatches, the rest analyse; with two, this one also reads.
    let read_ahead = config.workers >= 3;
    let n = config
        .workers
        .saturating_sub(1 + usize::from(read_ahead))
        .clamp(1, 64);
    let read = capture::ReadOptions::ahead(if read_ahead {
        capture::ReadAhead::Bytes
    } else {
        capture::ReadAhead::Off
    });
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
            checkpoints: std::collections::VecDeque::new(),
            frames: 0,
            workers: n,
            results: &result_rx,
            holder: &mut holder,
        };
        let (capture, error) = match capture::open_input(path)
            .and_then(|src| capture::read_capture_chunks_with(src, &mut dispatch, read))
        {
            Ok(summary) => (Some(summary), None),
            Err(e) => (None, Some(e)),
        };
        // Closing the queues tells the workers to finish.
        dispatch.senders.clear();
        let mut stats = AnalyzeStats::default();
        let mut done = 0;
        let mut last_items = Vec::new();
        while done < n {
            let Ok(msg) = result_rx.recv() else { break };
            match msg {
                FromWorker::Progress {
                    checkpoint,
                    items,
                    live,
                } => dispatch.progress(checkpoint, items, live),
                FromWorker::Done {
                    worker,
                    items,
                    stats: st,
                } => {
                    last_items.extend(items);
                    merge_stats(&mut stats, &st, worker == 0);
                    done += 1;
                }
            }
        }
        for item in last_items {
            dispatch.holder.insert(item);
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
    /// Checkpoints not yet reported by every worker, oldest first.
    checkpoints: std::collections::VecDeque<Checkpoint>,
    /// Frames dispatched.
    frames: u64,
    /// Number of workers (the senders are dropped before the last reports arrive).
    workers: usize,
    results: &'h Receiver<FromWorker>,
    holder: &'h mut Holder<'e>,
}

/// A release checkpoint as the workers report it.
struct Checkpoint {
    frame: u64,
    reported: usize,
    items: Vec<Finished>,
    live: u64,
}

impl Dispatch<'_, '_> {
    /// Takes in a worker's report of a checkpoint; once every worker has reported the oldest
    /// checkpoint, releases as a single analyzer would have there.
    fn progress(&mut self, checkpoint: u64, items: Vec<Finished>, live: u64) {
        let at = match self.checkpoints.iter().position(|c| c.frame == checkpoint) {
            Some(i) => i,
            None => {
                self.checkpoints.push_back(Checkpoint {
                    frame: checkpoint,
                    reported: 0,
                    items: Vec::new(),
                    live: u64::MAX,
                });
                self.checkpoints.len() - 1
            }
        };
        if let Some(c) = self.checkpoints.get_mut(at) {
            c.reported += 1;
            c.items.extend(items);
            c.live = c.live.min(live);
        }
        let workers = self.workers;
        while self
            .checkpoints
            .front()
            .is_some_and(|c| c.reported >= workers)
        {
            let Some(c) = self.checkpoints.pop_front() else {
                break;
            };
            for item in c.items {
                self.holder.insert(item);
            }
            self.holder.relieve(c.live);
        }
    }

    /// Takes in whatever reports the workers have sent so far.
    fn collect(&mut self) {
        while let Ok(msg) = self.results.try_recv() {
            if let FromWorker::Progress {
                checkpoint,
                items,
                live,
            } = msg
            {
                self.progress(checkpoint, items, live);
            }
        }
    }
}

impl ChunkSink for Dispatch<'_, '_> {
    fn chunk(&mut self, chunk: &Arc<Vec<u8>>, frames: &[FrameSlot]) {
        let n = self.workers.max(1) as u32;
        let mut span: Option<(Timestamp, Timestamp)> = None;
        for slot in frames {
            span = Some(span.map_or((slot.ts, slot.ts), |(a, b)| {
                (a.min(slot.ts), b.max(slot.ts))
            }));
            let frame = slot.frame(chunk);
            // One worker takes everything; more share by connection: most frames by the
            // endpoints at fixed offsets, the rest (ICMP errors quoting a connection, IPv6
            // extension headers...) fully decoded.
            let worker = if n == 1 {
                0
            } else {
                match decode::tcp_udp_endpoints(frame.linktype, frame.data) {
                    Some((src, sp, dst, dp)) => share_of_endpoints((src, sp), (dst, dp), n),
                    None => decode::decode(frame.linktype, frame.data)
                        .map_or(0, |pkt| share_of(&pkt, n)),
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
            self.frames += 1;
            if self.frames % RELEASE_CHECK_FRAMES == 0 {
                for w in &mut self.per_worker {
                    w.push(Work::Checkpoint(self.frames));
                }
            }
        }
        for (tx, work) in self.senders.iter().zip(self.per_worker.iter_mut()) {
            let work = std::mem::replace(work, Vec::with_capacity(work.capacity()));
            let msg = ToWorker::Chunk {
                data: Arc::clone(chunk),
                work,
                span,
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
            ToWorker::Chunk { data, work, span } => {
                if let Some((a, b)) = span {
                    analyzer.note_time(a);
                    analyzer.note_time(b);
                }
                for w in &work {
                    match w {
                        Work::Frame(slot) => analyzer.frame(&slot.frame(&data)),
                        Work::Sweep(ts) => analyzer.sweep(*ts),
                        Work::Checkpoint(frame) => {
                            let live = analyzer.min_live_first().unwrap_or(u64::MAX);
                            let items = take(&mut analyzer);
                            let _ = results.send(FromWorker::Progress {
                                checkpoint: *frame,
                                items,
                                live,
                            });
                        }
                    }
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
    let cfg = AnalyzeConfig {
        workers,
        ..config.clone()
    };
    crate::pipeline::collect(path, |keep| {
        stream_path_parallel(path, &cfg, usize::MAX, keep)
    })
}
