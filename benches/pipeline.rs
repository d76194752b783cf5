//! Throughput of rdpdiag's pipeline on a synthetic capture, in bytes of capture per second.
//!
//! `cargo bench --bench pipeline` (file size: env `RDPDIAG_BENCH_MB`, default 200; the
//! capture is generated into benches/data/ on first use by benches/gen_capture.rs, seed 1).
//!
//! Groups, each a superset of the previous one, so that their differences split the cost:
//! - `read_only`: pcap reading (`capture::open_input` + `capture::read_capture`), frames counted;
//! - `decode`: reading + `decode::decode` of every frame;
//! - `analyze`: the whole pipeline, `pipeline::analyze_path` (flow table, reassembly,
//!   session parsing, diagnosis; no report output).

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};

use rdpdiag::capture::{self, Frame, FrameSink};
use rdpdiag::decode::{self, Transport};
use rdpdiag::pipeline::{analyze_path, AnalyzeConfig};

#[path = "gen_capture.rs"]
#[allow(dead_code, clippy::all)]
mod gen;

/// The benchmark capture, generated if missing (or of another size).
fn bench_capture() -> (PathBuf, u64) {
    let mb: u64 = std::env::var("RDPDIAG_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/data");
    std::fs::create_dir_all(&dir).expect("create benches/data");
    // The default size keeps the name the README and compare.sh use.
    let path = if mb == 200 {
        dir.join("bench.pcap")
    } else {
        dir.join(format!("bench-{mb}mb.pcap"))
    };
    let wanted = mb * 1_000_000;
    let ok = std::fs::metadata(&path)
        .is_ok_and(|m| m.len() >= wanted && m.len() < wanted * 3 / 2 + 10_000_000);
    if !ok {
        eprintln!("generating {} ({mb} MB, seed 1)...", path.display());
        let s = gen::generate(&path, mb, 1).expect("generate benchmark capture");
        eprintln!("  {} frames, {:.1} MB", s.frames, s.bytes as f64 / 1e6);
    }
    let len = std::fs::metadata(&path).expect("capture exists").len();
    (path, len)
}

/// Counts frames and bytes (so the reading cannot be optimised away).
#[derive(Default)]
struct CountSink {
    frames: u64,
    bytes: u64,
}

impl FrameSink for CountSink {
    fn frame(&mut self, frame: &Frame<'_>) {
        self.frames += 1;
        self.bytes += frame.data.len() as u64;
    }
}

/// Reading + decoding; counts what decodes to TCP payload so the result is used.
#[derive(Default)]
struct DecodeSink {
    frames: u64,
    tcp: u64,
    tcp_payload: u64,
}

impl FrameSink for DecodeSink {
    fn frame(&mut self, frame: &Frame<'_>) {
        self.frames += 1;
        if let Some(p) = decode::decode(frame.linktype, frame.data) {
            if let Transport::Tcp(seg) = &p.transport {
                self.tcp += 1;
                self.tcp_payload += seg.payload.len() as u64;
            }
        }
    }
}

fn configure<'a>(
    c: &'a mut Criterion,
    name: &str,
    len: u64,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Bytes(len));
    g.sample_size(10);
    // Flat: every sample runs the same number of iterations (one pass over a big file is
    // already long), so 10 samples cost about 10 passes, not 55.
    g.sampling_mode(SamplingMode::Flat);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(8));
    g
}

fn benches(c: &mut Criterion) {
    let (path, len) = bench_capture();
    let p = path.to_str().expect("UTF-8 path").to_string();
    let id = BenchmarkId::from_parameter(format!("{}MB", len / 1_000_000));

    let mut g = configure(c, "read_only", len);
    g.bench_with_input(id.clone(), &p, |b, p| {
        b.iter(|| {
            let mut sink = CountSink::default();
            let src = capture::open_input(p).expect("open");
            capture::read_capture(src, &mut sink).expect("read");
            assert!(sink.frames > 0 && sink.bytes > 0);
            sink.frames
        })
    });
    g.finish();

    let mut g = configure(c, "decode", len);
    g.bench_with_input(id.clone(), &p, |b, p| {
        b.iter(|| {
            let mut sink = DecodeSink::default();
            let src = capture::open_input(p).expect("open");
            capture::read_capture(src, &mut sink).expect("read");
            assert!(sink.tcp > 0);
            (sink.frames, sink.tcp_payload)
        })
    });
    g.finish();

    let mut g = configure(c, "analyze", len);
    g.bench_with_input(id, &p, |b, p| {
        b.iter(|| {
            let a = analyze_path(p, &AnalyzeConfig::default());
            assert!(a.problem().is_none() && !a.connections.is_empty());
            a.connections.len()
        })
    });
    g.finish();
}

criterion_group!(pipeline, benches);
criterion_main!(pipeline);
