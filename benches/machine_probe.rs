//! What the machine gives two threads, apart from rdpdiag: whether a second busy thread slows
//! the first, whether two threads read a cached file faster than one, and what the first walk
//! over a chunk's record headers costs right after the chunk was read, a few chunks later, and
//! on the other core. `benches/README.md` ("Sixth session") explains why these three questions
//! decide how far one file can go on two threads.
//!
//!     cargo run --release --example machine_probe -- FILE.pcap [RUNS]
//!
//! FILE.pcap must be a classic pcap (the synthetic capture of `gen_capture` will do). Each
//! figure is the median of RUNS (default 7), in ms.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Bytes read at a time, as rdpdiag's reader does.
const CHUNK: usize = 1 << 20;
/// Buffers in the ring a reader fills ahead of a walker.
const SLOTS: usize = 12;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: machine_probe FILE.pcap [RUNS]")?;
    let runs: usize = args.next().map_or(Ok(7), |r| r.parse())?;
    let file = File::open(&path)?;
    let mut magic = [0u8; 4];
    file.read_exact_at(&mut magic, 0)?;
    if magic != [0xd4, 0xc3, 0xb2, 0xa1] && magic != [0x4d, 0x3c, 0xb2, 0xa1] {
        return Err(format!("{path}: not a little-endian classic pcap").into());
    }
    let bounds = chunk_bounds(&file)?;
    let bytes = bounds.last().copied().unwrap_or(0);
    println!(
        "{path}: {bytes} bytes in {} record-aligned chunks",
        bounds.len() - 1
    );

    println!("\n1. CPU-bound loop (xorshift), per thread; alone, then two at once");
    report("one thread", runs, || spin_threads(1));
    report("each of two threads", runs, || spin_threads(2));

    println!("\n2. Reading the cached file with positioned reads (wall)");
    report("one thread", runs, || read_threads(&file, &bounds, 1));
    report("two threads, alternate chunks", runs, || {
        read_threads(&file, &bounds, 2)
    });

    println!("\n3. Walking each chunk's record and packet headers (time in the walks)");
    for lag in [0, 2, 6] {
        report(
            &format!("same thread, {lag} chunks after its read"),
            runs,
            || walk_same_thread(&file, &bounds, lag),
        );
        report(
            &format!("other thread, {lag} chunks after its read"),
            runs,
            || walk_other_thread(&file, &bounds, lag),
        );
    }
    Ok(())
}

/// Prints the median of `runs` results of `probe`.
fn report(what: &str, runs: usize, mut probe: impl FnMut() -> f64) {
    let mut ms: Vec<f64> = (0..runs.max(1)).map(|_| probe()).collect();
    ms.sort_by(f64::total_cmp);
    let (min, med, max) = (ms[0], ms[ms.len() / 2], ms[ms.len() - 1]);
    println!("  {what:<44} median {med:7.1} ms  (min {min:.1}, max {max:.1})");
}

/// This thread's CPU time in ms (`/proc/thread-self/schedstat`, Linux).
fn thread_cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns / 1e6)
}

/// Offsets where chunks of at most [`CHUNK`] bytes start and end on record boundaries.
fn chunk_bounds(file: &File) -> std::io::Result<Vec<u64>> {
    let len = file.metadata()?.len();
    let (mut bounds, mut start, mut off) = (vec![24u64], 24u64, 24u64);
    let mut header = [0u8; 16];
    while off + 16 <= len {
        file.read_exact_at(&mut header, off)?;
        let incl = u32::from_le_bytes([header[8], header[9], header[10], header[11]]) as u64;
        let next = off + 16 + incl;
        if next > len || incl as usize > CHUNK {
            break;
        }
        if next - start > CHUNK as u64 {
            bounds.push(off);
            start = off;
        }
        off = next;
    }
    bounds.push(off);
    Ok(bounds)
}

/// A page-aligned buffer of [`CHUNK`] bytes (reads into unaligned ones are slow on some VMs).
struct Buffer {
    bytes: Vec<u8>,
    start: usize,
}

impl Buffer {
    fn new() -> Self {
        let bytes = vec![0u8; CHUNK + 4096];
        let start = (4096 - bytes.as_ptr() as usize % 4096) % 4096;
        Buffer { bytes, start }
    }

    fn fill(&mut self, file: &File, from: u64, to: u64) -> &[u8] {
        let n = (to - from) as usize;
        let buf = &mut self.bytes[self.start..self.start + n];
        // A short read leaves zeros, which the walk stops at.
        let _ = file.read_exact_at(buf, from);
        buf
    }
}

fn spin_threads(n: usize) -> f64 {
    let cpu = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..n {
            let cpu = &cpu;
            s.spawn(move || {
                let start = thread_cpu_ms();
                let (mut x, mut sum) = (t as u64 + 1, 0u64);
                for _ in 0..200_000_000u64 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    sum = sum.wrapping_add(x.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                }
                std::hint::black_box(sum);
                cpu.lock().unwrap().push(thread_cpu_ms() - start);
            });
        }
    });
    let cpu = cpu.into_inner().unwrap();
    cpu.iter().sum::<f64>() / cpu.len() as f64
}

fn read_threads(file: &File, bounds: &[u64], n: usize) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..n {
            s.spawn(move || {
                let mut buf = Buffer::new();
                for c in (t..bounds.len() - 1).step_by(n) {
                    std::hint::black_box(buf.fill(file, bounds[c], bounds[c + 1]));
                }
            });
        }
    });
    start.elapsed().as_secs_f64() * 1e3
}

/// Follows the record headers of a chunk and, for each packet, the IPv4 header length and
/// the TCP data offset to the payload's first byte: reads that depend on the bytes before
/// them, as decoding does.
fn walk(chunk: &[u8]) -> u64 {
    let (mut off, mut sum) = (0usize, 0u64);
    while let Some(h) = chunk.get(off..off + 16) {
        let incl = u32::from_le_bytes([h[8], h[9], h[10], h[11]]) as usize;
        if incl == 0 {
            break;
        }
        if let Some(p) = chunk.get(off + 16..off + 16 + incl) {
            let ihl = usize::from(p.get(14).copied().unwrap_or(0) & 15) * 4;
            let tcp = 14 + ihl;
            let doff = usize::from(p.get(tcp + 12).copied().unwrap_or(0) >> 4) * 4;
            sum += u64::from(p.get(tcp + 13).copied().unwrap_or(0));
            sum += u64::from(p.get(tcp + doff).copied().unwrap_or(0));
        }
        off += 16 + incl;
    }
    sum
}

fn walk_same_thread(file: &File, bounds: &[u64], lag: usize) -> f64 {
    let mut ring: Vec<Buffer> = (0..SLOTS).map(|_| Buffer::new()).collect();
    let chunks = bounds.len() - 1;
    let mut cpu = 0.0;
    for c in 0..chunks + lag {
        if c < chunks {
            ring[c % SLOTS].fill(file, bounds[c], bounds[c + 1]);
        }
        if let Some(w) = c.checked_sub(lag) {
            let buf = &ring[w % SLOTS];
            let n = (bounds[w + 1] - bounds[w]) as usize;
            let start = Instant::now();
            std::hint::black_box(walk(&buf.bytes[buf.start..buf.start + n]));
            cpu += start.elapsed().as_secs_f64() * 1e3;
        }
    }
    cpu
}

/// One thread reads chunks into a ring; the other walks chunk `c` once chunk `c + lag` is
/// read. Both poll (no sleeping), so the figure is the walk and not a wake-up.
fn walk_other_thread(file: &File, bounds: &[u64], lag: usize) -> f64 {
    let chunks = bounds.len() - 1;
    let ring: Vec<Mutex<Buffer>> = (0..SLOTS).map(|_| Mutex::new(Buffer::new())).collect();
    let (read, walked) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let mut cpu = 0.0;
    std::thread::scope(|s| {
        let walker = s.spawn(|| {
            let mut cpu = 0.0;
            for c in 0..chunks {
                while read.load(Ordering::Acquire) < (c + lag + 1).min(chunks) {
                    std::hint::spin_loop();
                }
                let buf = ring[c % SLOTS].lock().unwrap();
                let n = (bounds[c + 1] - bounds[c]) as usize;
                let start = Instant::now();
                std::hint::black_box(walk(&buf.bytes[buf.start..buf.start + n]));
                cpu += start.elapsed().as_secs_f64() * 1e3;
                drop(buf);
                walked.store(c + 1, Ordering::Release);
            }
            cpu
        });
        for c in 0..chunks {
            while c >= walked.load(Ordering::Acquire) + SLOTS - 1 {
                std::hint::spin_loop();
            }
            ring[c % SLOTS]
                .lock()
                .unwrap()
                .fill(file, bounds[c], bounds[c + 1]);
            read.store(c + 1, Ordering::Release);
        }
        cpu = walker.join().unwrap_or(f64::NAN);
    });
    cpu
}
