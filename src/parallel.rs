//! One large capture split across cores, by connection.
//!
//! Every connection belongs to one of [`BUCKETS`] buckets (a symmetric hash of its endpoints,
//! [`share_of_endpoints`], so both directions of a connection, and ICMP errors quoting it,
//! fall in the same bucket), and every bucket to one analyser at a time. The calling thread
//! frames the capture and dispatches each frame to its bucket's analyser; chunks of the file
//! are shared with the workers behind an `Arc` (frames are never copied) and each analyser
//! runs its own [`Analyzer`].
//!
//! With two threads the calling thread reads the capture itself and also analyses the
//! buckets it keeps, on the bytes it has just read (still in its core's cache), while one
//! worker analyses the others. Which side does more work depends on the machine (how costly
//! the kernel's copy of the file is, how far the worker's bytes travel between cores), so
//! the split adapts: when the worker falls behind (chunks queue up) the dispatcher takes a
//! bucket back, when the worker waits it gets one more. A bucket moves only while its
//! connections are all finished on the side it leaves (the worker tells which buckets hold
//! open connections at every checkpoint), so a connection is analysed by one analyser from
//! its first frame to its last. With three threads or more, one reads the capture a few
//! chunks ahead ([`capture::ReadAhead::Bytes`]), the calling thread frames and dispatches,
//! and `workers - 2` workers share the buckets evenly.
//!
//! The dispatcher replays the sweep clock of a single analyser (which frames expire idle or
//! closed connections) in every analyser, and tells each the capture's time span, so
//! verdicts are those of a single-threaded run. Results are released at the same checkpoints
//! (every [`RELEASE_CHECK_FRAMES`] frames) and by the same rule as in [`stream_path`]: each
//! analyser reports what finished before a checkpoint and the first frame of its connections
//! still open, and the dispatcher acts on a checkpoint once every analyser has reported it,
//! so the output is the same whatever the thread count and however the buckets moved.
//!
//! [`stream_path`]: crate::pipeline::stream_path

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// Buckets the connections are dealt out in: enough that most hold no open connection at
/// any moment (hundreds are open at once, and closed ones linger), so that buckets can move.
pub const BUCKETS: u32 = 1024;

/// Words of a bucket set (a bit a bucket).
const SET_WORDS: usize = BUCKETS as usize / 64;

/// A set of buckets.
type BucketSet = [u64; SET_WORDS];

fn in_set(set: &BucketSet, b: usize) -> bool {
    set.get(b / 64).is_some_and(|w| w & (1u64 << (b % 64)) != 0)
}

/// Buckets the dispatcher keeps at the start with two threads (it also reads and frames).
const INLINE_START: usize = BUCKETS as usize / 4;

/// Buckets moved at most per chunk (the split converges in a few dozen chunks).
const MOVES_PER_CHUNK: usize = 8;

/// Waiting (ns) by the worker since the previous chunk past which it is given more buckets.
const WORKER_WAITED_NS: u64 = 20_000;

/// The owner of a bucket: a worker's index, or the dispatcher itself.
const INLINE: u8 = u8::MAX;

/// Set in the environment, a split capture ends with one line on stderr about how it was
/// shared: buckets moved and kept, how often each side waited for the other, and each
/// thread's CPU time where Linux tells it (for benchmarks; `benches/README.md`).
pub const SPLIT_STATS_ENV: &str = "RDPDIAG_SPLIT_STATS";

/// This thread's CPU time so far in milliseconds (Linux `/proc/thread-self/schedstat`).
fn thread_cpu_ms() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e6)
}

/// One unit of a worker's work, in capture order.
#[derive(Debug, Clone)]
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

/// A checkpoint reached by one analyser.
struct Report {
    /// The checkpoint (frames dispatched before it).
    checkpoint: u64,
    /// The results finished since the analyser's last checkpoint.
    items: Vec<Finished>,
    /// The first frame of the analyser's connections still open.
    live: u64,
    /// The buckets holding connections still open.
    busy: Box<BucketSet>,
}

/// From a worker to the reader.
enum FromWorker {
    /// A checkpoint reached.
    Progress { worker: usize, report: Report },
    /// The worker finished: its last results and counters.
    Done {
        items: Vec<Finished>,
        stats: AnalyzeStats,
        /// Its CPU time (ms) and time spent waiting for work, where known.
        cpu_ms: Option<f64>,
        idle_ms: f64,
    },
}

/// One analyser's state: its [`Analyzer`] and the results it has not reported yet.
struct Share<'p> {
    analyzer: Analyzer<Box<dyn FnMut(Diagnosed) + 'p>>,
    pending: &'p RefCell<Vec<Diagnosed>>,
}

impl<'p> Share<'p> {
    fn new(config: AnalyzeConfig, pending: &'p RefCell<Vec<Diagnosed>>) -> Self {
        let on_done: Box<dyn FnMut(Diagnosed) + 'p> =
            Box::new(move |d| pending.borrow_mut().push(d));
        Share {
            analyzer: Analyzer::new(config, on_done).externally_swept(),
            pending,
        }
    }

    /// The results finished since the last call.
    fn take(&mut self) -> Vec<Finished> {
        let mut items: Vec<Finished> = self
            .pending
            .borrow_mut()
            .drain(..)
            .map(|d| Finished::Tcp(Box::new(d)))
            .collect();
        items.extend(
            self.analyzer
                .udp_done
                .drain(..)
                .map(|u| Finished::Udp(Box::new(u))),
        );
        items
    }

    /// Runs this analyser's part of a chunk, handing each checkpoint's report to `report`.
    fn run(
        &mut self,
        data: &[u8],
        work: &[Work],
        span: Option<(Timestamp, Timestamp)>,
        report: &mut dyn FnMut(Report),
    ) {
        self.note_span(span);
        for w in work {
            match w {
                Work::Frame(slot) => {
                    let frame = slot.frame(data);
                    let packet = decode::decode(frame.linktype, frame.data);
                    self.analyzer
                        .decoded_frame(slot.number, slot.ts, packet.as_ref());
                }
                Work::Sweep(ts) => self.analyzer.sweep(*ts),
                Work::Checkpoint(frame) => report(self.checkpoint(*frame)),
            }
        }
    }

    /// Learns the capture's time span from a chunk's.
    fn note_span(&mut self, span: Option<(Timestamp, Timestamp)>) {
        if let Some((a, b)) = span {
            self.analyzer.note_time(a);
            self.analyzer.note_time(b);
        }
    }

    /// The report of the release checkpoint after frame `frame`.
    fn checkpoint(&mut self, frame: u64) -> Report {
        let mut busy = Box::new([0; SET_WORDS]);
        self.analyzer.live_buckets(BUCKETS, &mut busy[..]);
        Report {
            checkpoint: frame,
            live: self.analyzer.min_live_first().unwrap_or(u64::MAX),
            busy,
            items: self.take(),
        }
    }

    /// Finishes the open connections: the last results and the counters.
    fn finish(mut self) -> (Vec<Finished>, AnalyzeStats) {
        self.analyzer.finish();
        let stats = self.analyzer.stats.clone();
        (self.take(), stats)
    }
}

/// Analyses one capture with `config.workers` threads (at least two), handing each result to
/// `emit` in first-frame order; the same results as a single-threaded
/// [`crate::pipeline::stream_path`].
pub fn stream_path_parallel(
    path: &str,
    config: &AnalyzeConfig,
    hold: usize,
    emit: &mut dyn FnMut(Finished) -> std::io::Result<()>,
) -> StreamRun {
    // `config.workers` threads in all: with three or more, one reads ahead, this one frames
    // and dispatches, the rest analyse; with two, this one reads, dispatches and analyses
    // the buckets it keeps.
    let read_ahead = config.workers >= 3;
    let n = config
        .workers
        .saturating_sub(1 + usize::from(read_ahead))
        .clamp(1, 64);
    let inline = !read_ahead;
    let read = capture::ReadOptions::ahead(if read_ahead {
        capture::ReadAhead::Bytes
    } else {
        capture::ReadAhead::Off
    });
    let mut worker_config = config.clone();
    worker_config.workers = 1;
    // The connection-table cap is shared out, so the memory bound stays the same.
    let analysers = n + usize::from(inline);
    worker_config.flow.max_connections = (config.flow.max_connections / analysers).max(1);
    let (result_tx, result_rx) = mpsc::channel::<FromWorker>();
    // Work lists go back to the dispatcher once done: a new one for every chunk would be
    // fresh pages (they are past malloc's mmap threshold) and a page fault every 4 KiB.
    let (spare_tx, spare_rx) = mpsc::channel::<Vec<Work>>();
    let mut holder = Holder::new(hold, emit);
    let inline_pending = RefCell::new(Vec::new());
    thread::scope(|s| {
        let mut senders = Vec::with_capacity(n);
        let mut waited = Vec::with_capacity(n);
        for worker in 0..n {
            let (tx, rx) = mpsc::sync_channel::<ToWorker>(QUEUE_PER_WORKER);
            senders.push(tx);
            let idle = Arc::new(AtomicU64::new(0));
            waited.push((Arc::clone(&idle), 0));
            let cfg = worker_config.clone();
            let results = result_tx.clone();
            let spare = spare_tx.clone();
            s.spawn(move || run_worker(worker, cfg, rx, results, spare, &idle));
        }
        drop(result_tx);
        drop(spare_tx);
        let mut owner = vec![0u8; BUCKETS as usize];
        for (b, o) in owner.iter_mut().enumerate() {
            *o = if inline && b < INLINE_START {
                INLINE
            } else {
                (b % n) as u8
            };
        }
        let mut dispatch = Dispatch {
            senders,
            waited,
            per_worker: vec![Vec::new(); n],
            spare: spare_rx,
            inline: inline.then(|| Inline {
                share: Share::new(worker_config.clone(), &inline_pending),
                reports: Vec::new(),
            }),
            owner,
            last_sent: vec![0; BUCKETS as usize],
            reported: vec![None; n],
            moves: 0,
            chunks: 0,
            signals: [0; 2],
            churn: config.split_churn,
            clock: SweepClock::default(),
            checkpoints: std::collections::VecDeque::new(),
            frames: 0,
            analysers,
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
        let mut last_items = Vec::new();
        let mut first = true;
        if let Some(inl) = dispatch.inline.take() {
            let (items, st) = inl.share.finish();
            last_items.extend(items);
            merge_stats(&mut stats, &st, first);
            first = false;
        }
        let mut done = 0;
        let mut workers_cpu = Vec::new();
        while done < n {
            let Ok(msg) = result_rx.recv() else { break };
            match msg {
                FromWorker::Progress { worker, report } => dispatch.progress(worker, report),
                FromWorker::Done {
                    items,
                    stats: st,
                    cpu_ms,
                    idle_ms,
                } => {
                    workers_cpu.push((cpu_ms, idle_ms));
                    last_items.extend(items);
                    merge_stats(&mut stats, &st, first);
                    first = false;
                    done += 1;
                }
            }
        }
        for item in last_items {
            dispatch.holder.insert(item);
        }
        dispatch.holder.release_below(u64::MAX);
        if std::env::var_os(SPLIT_STATS_ENV).is_some() {
            let kept = dispatch.owner.iter().filter(|&&o| o == INLINE).count();
            let ms = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{v:.0}"));
            let workers: Vec<String> = workers_cpu
                .iter()
                .map(|(cpu, idle)| format!("{} ms CPU, {idle:.0} ms waiting", ms(*cpu)))
                .collect();
            eprintln!(
                "rdpdiag: split: {} bucket moves, the reading thread kept {kept} of {BUCKETS}; \
                 of {} chunks, the worker waited after {}, the reader for the worker at {}; \
                 reading thread {} ms CPU; workers: {}",
                dispatch.moves,
                dispatch.chunks,
                dispatch.signals[0],
                dispatch.signals[1],
                ms(thread_cpu_ms()),
                workers.join(", ")
            );
        }
        StreamRun {
            capture,
            error,
            stats,
            released_early: dispatch.holder.released_early(),
            rebalanced: dispatch.moves,
        }
    })
}

/// Adds an analyser's counters; the time span is the capture's (every analyser knows it).
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

/// The dispatcher's own analyser (two threads), and its reports of the current chunk.
struct Inline<'p> {
    share: Share<'p>,
    reports: Vec<Report>,
}

/// The reader's side: splits chunks into the analysers' parts.
struct Dispatch<'h, 'e, 'p> {
    senders: Vec<SyncSender<ToWorker>>,
    /// Each worker's time spent waiting for work (ns, the worker adds to it), and how much
    /// of it the dispatcher has seen.
    waited: Vec<(Arc<AtomicU64>, u64)>,
    per_worker: Vec<Vec<Work>>,
    /// Work lists the workers are done with.
    spare: Receiver<Vec<Work>>,
    /// The dispatcher's own analyser, with two threads.
    inline: Option<Inline<'p>>,
    /// Who analyses each bucket: a worker's index or [`INLINE`].
    owner: Vec<u8>,
    /// The number of the last frame of each bucket sent to a worker.
    last_sent: Vec<u64>,
    /// Each worker's latest checkpoint and the buckets it then held open connections in.
    reported: Vec<Option<(u64, Box<BucketSet>)>>,
    /// Buckets moved between the dispatcher and the worker.
    moves: u64,
    /// Chunks dispatched.
    chunks: u64,
    /// Chunks after which the worker had waited, and at which the dispatcher had to wait
    /// for room in its queue.
    signals: [u64; 2],
    /// Move buckets at every chunk ([`AnalyzeConfig::split_churn`]).
    churn: bool,
    /// The sweep clock, ticked as a single analyzer's is.
    clock: SweepClock,
    /// Checkpoints not yet reported by every analyser, oldest first.
    checkpoints: std::collections::VecDeque<Checkpoint>,
    /// Frames dispatched.
    frames: u64,
    /// Number of analysers, the dispatcher's own included (the senders are dropped before
    /// the last reports arrive).
    analysers: usize,
    results: &'h Receiver<FromWorker>,
    holder: &'h mut Holder<'e>,
}

/// A release checkpoint as the analysers report it.
struct Checkpoint {
    frame: u64,
    reported: usize,
    items: Vec<Finished>,
    live: u64,
}

impl Dispatch<'_, '_, '_> {
    /// Takes in a worker's report of a checkpoint.
    fn progress(&mut self, worker: usize, report: Report) {
        if let Some(r) = self.reported.get_mut(worker) {
            *r = Some((report.checkpoint, report.busy.clone()));
        }
        self.checkpoint(report);
    }

    /// Takes in an analyser's report of a checkpoint; once every analyser has reported the
    /// oldest checkpoint, releases as a single analyzer would have there.
    fn checkpoint(&mut self, report: Report) {
        let at = match self
            .checkpoints
            .iter()
            .position(|c| c.frame == report.checkpoint)
        {
            Some(i) => i,
            None => {
                self.checkpoints.push_back(Checkpoint {
                    frame: report.checkpoint,
                    reported: 0,
                    items: Vec::new(),
                    live: u64::MAX,
                });
                self.checkpoints.len() - 1
            }
        };
        if let Some(c) = self.checkpoints.get_mut(at) {
            c.reported += 1;
            c.items.extend(report.items);
            c.live = c.live.min(report.live);
        }
        let analysers = self.analysers;
        while self
            .checkpoints
            .front()
            .is_some_and(|c| c.reported >= analysers)
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
            if let FromWorker::Progress { worker, report } = msg {
                self.progress(worker, report);
            }
        }
    }

    /// With two threads, moves up to [`MOVES_PER_CHUNK`] buckets towards the side that
    /// waits: to the dispatcher when it had to wait for room in the worker's queue, to the
    /// worker when it had waited for this chunk. With `churn`, tries at every chunk, one way
    /// and the other in turn.
    fn rebalance(&mut self, dispatcher_waited: bool, worker_waited: bool) {
        let Some(inl) = &self.inline else { return };
        if self.senders.len() != 1 {
            return;
        }
        self.chunks += 1;
        self.signals[0] += u64::from(worker_waited);
        self.signals[1] += u64::from(dispatcher_waited);
        let (take, give) = if self.churn {
            (self.chunks % 2 == 0, self.chunks % 2 == 1)
        } else {
            (dispatcher_waited, worker_waited && !dispatcher_waited)
        };
        let (from, to, busy, since) = if take {
            // Only buckets the worker held no open connection in at its latest checkpoint,
            // and was sent no frame of since.
            let Some((checkpoint, busy)) = self.reported.first().and_then(Option::as_ref) else {
                return;
            };
            (0, INLINE, **busy, Some(*checkpoint))
        } else if give {
            let mut busy = [0; SET_WORDS];
            inl.share.analyzer.live_buckets(BUCKETS, &mut busy);
            (INLINE, 0, busy, None)
        } else {
            return;
        };
        // Churning moves every bucket it can, to put the move conditions to the test.
        let most = if self.churn {
            usize::MAX
        } else {
            MOVES_PER_CHUNK
        };
        let mut moved = 0;
        for b in 0..self.owner.len() {
            if moved == most {
                break;
            }
            let sent_since = since.is_some_and(|c| self.last_sent.get(b).is_some_and(|&s| s > c));
            if let Some(o) = self.owner.get_mut(b) {
                if *o == from && !in_set(&busy, b) && !sent_since {
                    *o = to;
                    moved += 1;
                }
            }
        }
        self.moves += moved as u64;
    }
}

impl ChunkSink for Dispatch<'_, '_, '_> {
    #[allow(clippy::indexing_slicing)] // buckets are < BUCKETS by construction
    fn chunk(&mut self, chunk: &Arc<Vec<u8>>, frames: &[FrameSlot]) {
        let mut span: Option<(Timestamp, Timestamp)> = None;
        for slot in frames {
            span = Some(span.map_or((slot.ts, slot.ts), |(a, b)| {
                (a.min(slot.ts), b.max(slot.ts))
            }));
        }
        if let Some(inl) = &mut self.inline {
            inl.share.note_span(span);
        }
        for slot in frames {
            self.frames += 1;
            let frame = slot.frame(chunk);
            // The bucket from the endpoints: most frames' read at fixed offsets, the rest
            // (ICMP errors: the connection quoted; IPv6 extension headers...) decoded. A
            // frame of the dispatcher's own is decoded and analysed here, a worker decodes
            // its frames itself (handing it decoded packets cost the dispatcher, the
            // critical path, more than it saved the worker).
            let fast = decode::tcp_udp_endpoints(frame.linktype, frame.data);
            let mut packet = None;
            let bucket = match fast {
                Some((src, sp, dst, dp)) => share_of_endpoints((src, sp), (dst, dp), BUCKETS),
                None => {
                    packet = decode::decode(frame.linktype, frame.data);
                    packet.as_ref().map_or(0, |p| share_of(p, BUCKETS))
                }
            } as usize
                % BUCKETS as usize;
            let owner = self.owner[bucket];
            match (owner, &mut self.inline) {
                // The dispatcher's own: analysed now, on bytes just read.
                (INLINE, Some(inl)) => {
                    if fast.is_some() {
                        packet = decode::decode(frame.linktype, frame.data);
                    }
                    inl.share
                        .analyzer
                        .decoded_frame(slot.number, slot.ts, packet.as_ref())
                }
                _ => {
                    if let Some(w) = self.per_worker.get_mut(usize::from(owner)) {
                        w.push(Work::Frame(*slot));
                    }
                    self.last_sent[bucket] = self.frames;
                }
            }
            if self.clock.due(slot.ts) {
                for w in &mut self.per_worker {
                    w.push(Work::Sweep(slot.ts));
                }
                if let Some(inl) = &mut self.inline {
                    inl.share.analyzer.sweep(slot.ts);
                }
            }
            if self.frames % RELEASE_CHECK_FRAMES == 0 {
                for w in &mut self.per_worker {
                    w.push(Work::Checkpoint(self.frames));
                }
                if let Some(inl) = &mut self.inline {
                    let report = inl.share.checkpoint(self.frames);
                    inl.reports.push(report);
                }
            }
        }
        // Whether the worker waited for this chunk, and whether it has more queued than it
        // can hold (the dispatcher then waits).
        let worker_waited = self.waited.first_mut().is_some_and(|(idle, seen)| {
            let now = idle.load(Ordering::Relaxed);
            let waited = now.saturating_sub(*seen) > WORKER_WAITED_NS;
            *seen = now;
            waited
        });
        let mut dispatcher_waited = false;
        for (tx, work) in self.senders.iter().zip(self.per_worker.iter_mut()) {
            let next = self
                .spare
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(work.capacity()));
            let work = std::mem::replace(work, next);
            let msg = ToWorker::Chunk {
                data: Arc::clone(chunk),
                work,
                span,
            };
            // A worker that died has nothing more to say; the others go on.
            if let Err(mpsc::TrySendError::Full(msg)) = tx.try_send(msg) {
                dispatcher_waited = true;
                let _ = tx.send(msg);
            }
        }
        if let Some(inl) = &mut self.inline {
            let reports = std::mem::take(&mut inl.reports);
            for r in reports {
                self.checkpoint(r);
            }
        }
        self.rebalance(dispatcher_waited, worker_waited);
        self.collect();
    }

    fn secrets(&mut self, secrets_type: u32, data: &[u8]) {
        for tx in &self.senders {
            let _ = tx.send(ToWorker::Secrets(secrets_type, data.to_vec()));
        }
        if let Some(inl) = &mut self.inline {
            inl.share.analyzer.secrets(secrets_type, data);
        }
    }
}

/// How long a worker waiting for work polls before it sleeps: waking a thread whose core
/// went idle can take longer than a chunk (on a VM, hundreds of microseconds), and the
/// chunks then arrive in bursts.
const SPIN_BEFORE_SLEEP: std::time::Duration = std::time::Duration::from_micros(200);

/// The next message, spinning for a while before blocking; `None` once the queue is closed.
fn next_work(rx: &Receiver<ToWorker>, since: std::time::Instant) -> Option<ToWorker> {
    loop {
        match rx.try_recv() {
            Ok(msg) => return Some(msg),
            Err(mpsc::TryRecvError::Disconnected) => return None,
            // Yielding, not spinning in place: on a busy machine the thread that would send
            // the next chunk may be waiting for this very core.
            Err(mpsc::TryRecvError::Empty) if since.elapsed() < SPIN_BEFORE_SLEEP => {
                std::thread::yield_now();
            }
            Err(mpsc::TryRecvError::Empty) => return rx.recv().ok(),
        }
    }
}

/// A worker: analyses its frames and reports results as they finish.
fn run_worker(
    worker: usize,
    config: AnalyzeConfig,
    rx: Receiver<ToWorker>,
    results: mpsc::Sender<FromWorker>,
    spare: mpsc::Sender<Vec<Work>>,
    waited_ns: &AtomicU64,
) {
    let pending = RefCell::new(Vec::new());
    let mut share = Share::new(config, &pending);
    let mut idle = std::time::Duration::ZERO;
    loop {
        let waiting = std::time::Instant::now();
        let Some(msg) = next_work(&rx, waiting) else {
            break;
        };
        let waited = waiting.elapsed();
        idle += waited;
        waited_ns.fetch_add(
            u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        match msg {
            ToWorker::Chunk {
                data,
                mut work,
                span,
            } => {
                share.run(&data, &work, span, &mut |report| {
                    let _ = results.send(FromWorker::Progress { worker, report });
                });
                work.clear();
                let _ = spare.send(work);
            }
            ToWorker::Secrets(t, d) => share.analyzer.secrets(t, &d),
        }
    }
    let (items, stats) = share.finish();
    let _ = results.send(FromWorker::Done {
        items,
        stats,
        cpu_ms: thread_cpu_ms(),
        idle_ms: idle.as_secs_f64() * 1e3,
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
