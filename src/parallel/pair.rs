//! One capture file on two threads that both read it.
//!
//! When the capture is a file (not a stream), reading it need not be one thread's work:
//! chunk `c` is read, with a positioned read, by thread `c % 2`, which also frames it as soon
//! as the framing of chunk `c - 1` hands it the [`Baton`] (where the chunk's first record
//! starts; [`crate::capture::SplitFile`]). Each thread analyses the connections of half the
//! buckets: framing a chunk sorts its frames into two parts, one kept, one sent to the other
//! thread, and each thread analyses the parts of every chunk in chunk order, so a connection
//! sees its frames in capture order on one thread. A thread frames its next chunk whenever
//! the baton has come and it is at most [`FRAME_AHEAD`] chunks ahead of what it has analysed
//! (which bounds memory), and analyses otherwise; when neither can go on, it reads its next
//! chunk ahead or waits for the other thread. The sweep clock travels with the baton, so
//! sweeps and release checkpoints fall where a single analyser's do, and the calling thread
//! merges the results as [`super::stream_path_parallel`] does: the output is the same as one
//! thread's.

use std::collections::VecDeque;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread;

use super::{merge_stats, thread_cpu_ms, Releases, Report, Share, Work, BUCKETS, SPLIT_STATS_ENV};
use crate::capture::{Baton, ChunkRead, ChunkSink, FrameSlot, SplitFile, Timestamp};
use crate::decode;
use crate::flow::SweepClock;
use crate::pipeline::{
    share_of, share_of_endpoints, AnalyzeConfig, AnalyzeStats, Finished, Holder, StreamRun,
    RELEASE_CHECK_FRAMES,
};

/// Chunks a thread frames ahead of the chunk it analyses.
const FRAME_AHEAD: u64 = 4;

/// Work lists kept for reuse by each thread.
const SPARE_LISTS: usize = 16;

/// One thread's part of a chunk, or of a record read across a chunk's end.
struct Part {
    chunk: u64,
    /// The chunk's last part for this thread.
    last: bool,
    data: Arc<Vec<u8>>,
    work: Vec<Work>,
    /// Earliest and latest timestamps of the frames of this piece (both threads' frames).
    span: Option<(Timestamp, Timestamp)>,
}

/// From one thread to the other.
enum Msg {
    /// The baton for the receiver's next chunk, and the sweep clock as it stands there.
    Baton(Baton, SweepClock),
    /// Frames of the receiver's connections.
    Part(Part),
    /// A checkpoint reached by the spawned thread (to the calling thread).
    Progress(Report),
    /// The spawned thread is done: its last results, counters and CPU time, and the final
    /// baton if it holds it (the calling thread ended the reading).
    Done {
        items: Vec<Finished>,
        stats: AnalyzeStats,
        cpu_ms: Option<f64>,
        baton: Option<Baton>,
    },
}

/// Which thread analyses a bucket's connections.
fn owner(bucket: u32) -> usize {
    (bucket % 2) as usize
}

/// Sorts the frames of a chunk into the two threads' parts.
struct Splitter<'a> {
    chunk: u64,
    clock: &'a mut SweepClock,
    parts: [Vec<Part>; 2],
    spare: &'a mut Vec<Vec<Work>>,
}

impl Splitter<'_> {
    fn list(&mut self) -> Vec<Work> {
        self.spare.pop().unwrap_or_default()
    }
}

impl ChunkSink for Splitter<'_> {
    fn chunk(&mut self, data: &Arc<Vec<u8>>, frames: &[FrameSlot]) {
        let mut span: Option<(Timestamp, Timestamp)> = None;
        let mut work = [self.list(), self.list()];
        for slot in frames {
            span = Some(span.map_or((slot.ts, slot.ts), |(a, b)| {
                (a.min(slot.ts), b.max(slot.ts))
            }));
            let frame = slot.frame(data);
            // As the single-reader split places frames: endpoints at fixed offsets, the rest
            // (ICMP errors, odd headers) decoded.
            let bucket = match decode::tcp_udp_endpoints(frame.linktype, frame.data) {
                Some((src, sp, dst, dp)) => share_of_endpoints((src, sp), (dst, dp), BUCKETS),
                None => decode::decode(frame.linktype, frame.data)
                    .as_ref()
                    .map_or(0, |p| share_of(p, BUCKETS)),
            };
            if let Some(w) = work.get_mut(owner(bucket)) {
                w.push(Work::Frame(*slot));
            }
            if self.clock.due(slot.ts) {
                for w in &mut work {
                    w.push(Work::Sweep(slot.ts));
                }
            }
            if slot.number % RELEASE_CHECK_FRAMES == 0 {
                for w in &mut work {
                    w.push(Work::Checkpoint(slot.number));
                }
            }
        }
        for (parts, work) in self.parts.iter_mut().zip(work) {
            parts.push(Part {
                chunk: self.chunk,
                last: false,
                data: Arc::clone(data),
                work,
                span,
            });
        }
    }

    fn secrets(&mut self, secrets_type: u32, data: &[u8]) {
        let data = Arc::new(data.to_vec());
        for i in 0..2 {
            let mut work = self.list();
            work.push(Work::Secrets(secrets_type, Arc::clone(&data)));
            if let Some(parts) = self.parts.get_mut(i) {
                parts.push(Part {
                    chunk: self.chunk,
                    last: false,
                    data: Arc::default(),
                    work,
                    span: None,
                });
            }
        }
    }
}

/// One of the two threads.
struct Side<'a> {
    /// 0: the calling thread, 1: the spawned one; it frames the chunks `c` with
    /// `c % 2 == me`.
    me: u64,
    split: &'a SplitFile,
    to_other: Sender<Msg>,
    from_other: Receiver<Msg>,
    /// The baton for `next_frame`, once it has come.
    baton: Option<(Baton, SweepClock)>,
    next_frame: u64,
    /// The chunk being analysed.
    next_analyse: u64,
    /// The first chunk after the reading ended, once known.
    end: Option<u64>,
    /// The final baton, if it came to this thread.
    last_baton: Option<Baton>,
    /// Parts of this thread's own chunks, and those the other sent, in chunk order.
    mine: VecDeque<Part>,
    theirs: VecDeque<Part>,
    /// `next_frame` read ahead.
    read: Option<(u64, Vec<u8>, ChunkRead)>,
    /// Chunk buffers, reused once no part holds them.
    buffers: Vec<Arc<Vec<u8>>>,
    spare: Vec<Vec<Work>>,
    /// Times this thread waited for the other.
    waits: u64,
}

/// Where a thread's checkpoints go, and what it does with messages only the calling thread
/// gets.
trait Inbox {
    /// A checkpoint of this thread.
    fn own(&mut self, report: Report);
    /// A checkpoint of the spawned thread.
    fn progress(&mut self, report: Report);
    fn done(&mut self, items: Vec<Finished>, stats: AnalyzeStats, cpu_ms: Option<f64>);
}

impl Side<'_> {
    /// Frames, reads and analyses until every chunk is analysed (or the other thread is
    /// gone), handing checkpoints to `inbox`.
    fn run(&mut self, share: &mut Share<'_>, inbox: &mut dyn Inbox) {
        loop {
            while let Ok(msg) = self.from_other.try_recv() {
                self.take(msg, inbox);
            }
            if self.can_frame() {
                self.frame_next();
                continue;
            }
            if self.end.is_some_and(|end| self.next_analyse >= end) {
                return;
            }
            let own = self.next_analyse % 2 == self.me;
            let queue = if own {
                &mut self.mine
            } else {
                &mut self.theirs
            };
            if let Some(mut part) = queue.pop_front() {
                debug_assert_eq!(part.chunk, self.next_analyse, "parts out of order");
                share.run(&part.data, &part.work, part.span, &mut |r| inbox.own(r));
                if part.last {
                    self.next_analyse += 1;
                }
                part.work.clear();
                if self.spare.len() < SPARE_LISTS {
                    self.spare.push(part.work);
                }
                continue;
            }
            if self.read.is_none() && self.may_frame(self.next_frame) {
                let c = self.next_frame;
                let mut buf = self.buffer();
                let got = self.split.read(c, &mut buf);
                self.read = Some((c, buf, got));
                continue;
            }
            self.waits += 1;
            match self.from_other.recv() {
                Ok(msg) => self.take(msg, inbox),
                // The other thread is gone (it can only have panicked): stop here.
                Err(_) => return,
            }
        }
    }

    /// Whether chunk `c` is near enough to the analysis to be framed (and not past the end).
    fn may_frame(&self, c: u64) -> bool {
        c <= self.next_analyse + FRAME_AHEAD && self.end.map_or(true, |end| c < end)
    }

    fn can_frame(&self) -> bool {
        self.baton.is_some() && self.may_frame(self.next_frame)
    }

    fn take(&mut self, msg: Msg, inbox: &mut dyn Inbox) {
        match msg {
            Msg::Baton(baton, clock) => {
                if baton.ended() {
                    // The chunk before ours ended the reading.
                    self.end = Some(self.next_frame);
                    self.last_baton = Some(baton);
                } else {
                    self.baton = Some((baton, clock));
                }
            }
            Msg::Part(part) => self.theirs.push_back(part),
            Msg::Progress(r) => inbox.progress(r),
            Msg::Done {
                items,
                stats,
                cpu_ms,
                baton,
            } => {
                if baton.is_some() {
                    self.last_baton = baton;
                }
                inbox.done(items, stats, cpu_ms);
            }
        }
    }

    /// A buffer no part holds any more, or a new one.
    fn buffer(&mut self) -> Vec<u8> {
        if let Some(i) = self.buffers.iter().position(|b| Arc::strong_count(b) == 1) {
            let b = self.buffers.swap_remove(i);
            return Arc::try_unwrap(b).unwrap_or_default();
        }
        Vec::new()
    }

    /// Frames `next_frame` (reading it first unless it was read ahead), keeps this thread's
    /// parts, sends the other's and the baton on.
    fn frame_next(&mut self) {
        let Some((mut baton, mut clock)) = self.baton.take() else {
            return;
        };
        let c = self.next_frame;
        let (buf, got) = match self.read.take() {
            Some((at, buf, got)) if at == c => (buf, got),
            _ => {
                let mut buf = self.buffer();
                let got = self.split.read(c, &mut buf);
                (buf, got)
            }
        };
        let chunk = Arc::new(buf);
        let mut splitter = Splitter {
            chunk: c,
            clock: &mut clock,
            parts: [Vec::new(), Vec::new()],
            spare: &mut self.spare,
        };
        self.split.frame(c, &chunk, got, &mut baton, &mut splitter);
        let mut parts = splitter.parts;
        self.buffers.push(chunk);
        for (side, parts) in parts.iter_mut().enumerate() {
            match parts.last_mut() {
                Some(p) => p.last = true,
                None => parts.push(Part {
                    chunk: c,
                    last: true,
                    data: Arc::default(),
                    work: Vec::new(),
                    span: None,
                }),
            }
            for part in parts.drain(..) {
                if side as u64 == self.me {
                    self.mine.push_back(part);
                } else {
                    // A thread that is gone has nothing more to do with it.
                    let _ = self.to_other.send(Msg::Part(part));
                }
            }
        }
        self.next_frame += 2;
        if baton.ended() {
            self.end = Some(c + 1);
        }
        let _ = self.to_other.send(Msg::Baton(baton, clock));
    }
}

/// The calling thread's inbox: the spawned thread's checkpoints and its end.
struct Merge<'r, 'h, 'e> {
    releases: &'r mut Releases<'h, 'e>,
    done: Option<(Vec<Finished>, AnalyzeStats, Option<f64>)>,
}

impl Inbox for Merge<'_, '_, '_> {
    fn own(&mut self, report: Report) {
        self.releases.checkpoint(report);
    }
    fn progress(&mut self, report: Report) {
        self.releases.checkpoint(report);
    }
    fn done(&mut self, items: Vec<Finished>, stats: AnalyzeStats, cpu_ms: Option<f64>) {
        self.done = Some((items, stats, cpu_ms));
    }
}

/// The spawned thread sends its checkpoints to the calling thread, and gets no such messages.
struct Forward(Sender<Msg>);

impl Inbox for Forward {
    fn own(&mut self, report: Report) {
        // A calling thread that is gone wants nothing more.
        let _ = self.0.send(Msg::Progress(report));
    }
    fn progress(&mut self, _: Report) {}
    fn done(&mut self, _: Vec<Finished>, _: AnalyzeStats, _: Option<f64>) {}
}

/// Analyses the capture `split` reads with two threads that both read it, handing each
/// result to `emit` in first-frame order; the same results as one thread.
pub(super) fn stream_pair(
    split: &SplitFile,
    baton: Baton,
    config: &AnalyzeConfig,
    hold: usize,
    emit: &mut dyn FnMut(Finished) -> std::io::Result<()>,
) -> StreamRun {
    let mut side_config = config.clone();
    side_config.workers = 1;
    // The connection-table cap is shared out, so the memory bound stays the same.
    side_config.flow.max_connections = (config.flow.max_connections / 2).max(1);
    let (to_spawned, spawned_rx) = mpsc::channel::<Msg>();
    let (to_caller, caller_rx) = mpsc::channel::<Msg>();
    let mut holder = Holder::new(hold, emit);
    let mut releases = Releases {
        checkpoints: VecDeque::new(),
        analysers: 2,
        holder: &mut holder,
    };
    let side = |me: u64, to_other, from_other, baton| Side {
        me,
        split,
        to_other,
        from_other,
        baton,
        next_frame: me,
        next_analyse: 0,
        end: None,
        last_baton: None,
        mine: VecDeque::new(),
        theirs: VecDeque::new(),
        read: None,
        buffers: Vec::new(),
        spare: Vec::new(),
        waits: 0,
    };
    let mut caller = side(
        0,
        to_spawned,
        caller_rx,
        Some((baton, SweepClock::default())),
    );
    let spawned = side(1, to_caller, spawned_rx, None);
    let pending = std::cell::RefCell::new(Vec::new());
    let mut share = Share::new(side_config.clone(), &pending);
    let (summary, stats, spawned_cpu, waits) = thread::scope(|s| {
        s.spawn(move || {
            let mut spawned = spawned;
            let pending = std::cell::RefCell::new(Vec::new());
            let mut share = Share::new(side_config, &pending);
            let to_caller = spawned.to_other.clone();
            spawned.run(&mut share, &mut Forward(to_caller.clone()));
            let (items, stats) = share.finish();
            let _ = to_caller.send(Msg::Done {
                items,
                stats,
                cpu_ms: thread_cpu_ms(),
                baton: spawned.last_baton.take(),
            });
        });
        let mut merge = Merge {
            releases: &mut releases,
            done: None,
        };
        caller.run(&mut share, &mut merge);
        let (items, stats) = share.finish();
        let mut last = items;
        let mut total = AnalyzeStats::default();
        merge_stats(&mut total, &stats, true);
        while merge.done.is_none() {
            match caller.from_other.recv() {
                Ok(msg) => caller.take(msg, &mut merge),
                Err(_) => break,
            }
        }
        let mut spawned_cpu = None;
        if let Some((items, stats, cpu)) = merge.done.take() {
            last.extend(items);
            merge_stats(&mut total, &stats, false);
            spawned_cpu = cpu;
        }
        merge.releases.finish(last);
        let summary = caller.last_baton.take().map(Baton::into_summary);
        (summary, total, spawned_cpu, caller.waits)
    });
    if std::env::var_os(SPLIT_STATS_ENV).is_some() {
        let ms = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{v:.0}"));
        eprintln!(
            "rdpdiag: split (two readers): calling thread {} ms CPU, waited {waits} times; \
             other thread {} ms CPU",
            ms(thread_cpu_ms()),
            ms(spawned_cpu)
        );
    }
    StreamRun {
        capture: summary,
        error: None,
        stats,
        released_early: holder.released_early(),
        rebalanced: 0,
    }
}
