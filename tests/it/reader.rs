//! The capture reader on real captures: read in buffers of any length, on the calling thread
//! or ahead on another (reading, or reading and framing), every capture (of testdata, its fuzz
//! regressions and the public corpus) gives the same frames, secrets, summary and error, whole
//! and truncated; and one large capture analysed by one, two, three or four threads gives the
//! same output.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rdpdiag::capture::{
    input_from_bytes, open_input, read_capture_chunks_with, ChunkSink, FrameSlot, InputSource,
    ReadAhead, ReadOptions, CHUNK_LEN,
};

/// Everything a read showed, in order, and how it ended (summary or error) as text.
#[derive(Default, PartialEq, Eq)]
struct Seen {
    /// (number, ns, link type, wire length, bytes) of each frame, or (0, type, .., data) of
    /// a secrets block.
    events: Vec<(u64, i64, i32, u32, Vec<u8>)>,
    outcome: String,
}

impl ChunkSink for Seen {
    fn chunk(&mut self, chunk: &Arc<Vec<u8>>, frames: &[FrameSlot]) {
        for s in frames {
            let f = s.frame(chunk);
            self.events
                .push((f.number, f.ts.0, f.linktype.0, f.orig_len, f.data.to_vec()));
        }
    }
    fn secrets(&mut self, secrets_type: u32, data: &[u8]) {
        self.events
            .push((0, i64::from(secrets_type), -1, 0, data.to_vec()));
    }
}

fn read(src: Result<InputSource, rdpdiag::capture::CaptureError>, opts: ReadOptions) -> Seen {
    let mut seen = Seen::default();
    seen.outcome = match src.and_then(|s| read_capture_chunks_with(s, &mut seen, opts)) {
        Ok(summary) => format!("{summary:?}"),
        Err(e) => format!("Err({e:?})"),
    };
    seen
}

fn opts(chunk_len: usize, ahead: ReadAhead) -> ReadOptions {
    ReadOptions { chunk_len, ahead }
}

/// testdata's captures and fuzz regressions, and the corpus's captures when it is at hand.
fn captures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = super::captures_under(&root.join("testdata"));
    if let Ok(rd) = std::fs::read_dir(root.join("testdata/fuzz-regressions")) {
        files.extend(
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().map_or(true, |e| e != "md")),
        );
    }
    match std::env::var_os("RDPDIAG_CORPUS") {
        Some(c) => files.extend(super::captures_under(Path::new(&c))),
        None => eprintln!("SKIPPED (corpus part): RDPDIAG_CORPUS is not set"),
    }
    files
}

#[test]
fn every_capture_reads_the_same_in_any_buffers_and_ahead() {
    let files = captures();
    assert!(files.len() > 50, "{}", files.len());
    let mut frames = 0;
    for f in &files {
        let path = f.to_string_lossy();
        // (Some corpus captures are cut short: the same error every way.)
        let want = read(open_input(&path), ReadOptions::default());
        frames += want.events.len();
        for ahead in [ReadAhead::Bytes, ReadAhead::Frames] {
            let got = read(open_input(&path), opts(CHUNK_LEN, ahead));
            assert!(
                got.outcome == want.outcome,
                "{path} {ahead:?}: {}",
                got.outcome
            );
            assert!(got.events == want.events, "{path} {ahead:?}: frames differ");
        }
        // A corrupt compressed stream (a fuzz regression) stops where the decompressor's read
        // sizes make it stop: other buffer lengths are compared with the default only for
        // plain files and for compressed ones that read to their end without error.
        let head = std::fs::read(f).unwrap_or_default();
        let compressed = head.starts_with(&[0x1f, 0x8b]) || head.starts_with(&[0x28, 0xb5]);
        let tiny = if want.events.len() < 5000 { 7 } else { 61 };
        for (len, ahead) in [
            (tiny, ReadAhead::Bytes),
            (100, ReadAhead::Frames),
            (1500, ReadAhead::Bytes),
            (4096, ReadAhead::Frames),
        ] {
            let here = read(open_input(&path), opts(len, ReadAhead::Off));
            let got = read(open_input(&path), opts(len, ahead));
            assert!(got == here, "{path} {len} {ahead:?}: {}", got.outcome);
            if !compressed || want.outcome.contains("error: None") {
                assert!(
                    here.outcome == want.outcome,
                    "{path} {len}: {}",
                    here.outcome
                );
                assert!(here.events == want.events, "{path} {len}: frames differ");
            }
        }
    }
    // testdata alone holds about 7,900 frames, the corpus adds far more.
    let corpus = std::env::var_os("RDPDIAG_CORPUS").is_some();
    assert!(frames > if corpus { 10_000 } else { 5_000 }, "{frames}");
}

#[test]
fn truncated_captures_read_the_same_in_any_buffers_and_ahead() {
    use std::io::Write;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in super::captures_under(&root.join("testdata")) {
        let path = f.to_string_lossy();
        let bytes = std::fs::read(&f).unwrap();
        // Plain, and gzipped (the read-ahead thread then decompresses).
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&bytes).unwrap();
        let gz = gz.finish().unwrap();
        for (kind, input) in [("plain", &bytes), ("gzip", &gz)] {
            let len = input.len();
            let mut cuts: Vec<usize> = (0..20).map(|i| len * i / 20 + i * 7 % 13).collect();
            cuts.extend([1, 3, 5, 23, 25, 31, 40, 60]);
            for cut in cuts.into_iter().filter(|c| *c < len) {
                let cut_bytes = &input[..cut];
                let src = || input_from_bytes("cut", cut_bytes.to_vec());
                let want = read(src(), ReadOptions::default());
                for o in [
                    opts(CHUNK_LEN, ReadAhead::Bytes),
                    opts(CHUNK_LEN, ReadAhead::Frames),
                    opts(13, ReadAhead::Off),
                    opts(200, ReadAhead::Bytes),
                    opts(200, ReadAhead::Frames),
                ] {
                    let got = read(src(), o);
                    assert!(
                        got == want,
                        "{path} {kind} cut {cut} {o:?}: {} vs {}",
                        got.outcome,
                        want.outcome
                    );
                }
            }
        }
    }
}

#[path = "../../benches/gen_capture.rs"]
#[allow(dead_code, clippy::all)]
mod gen;

/// A generated capture of many concurrent connections (the benchmark's generator), so that
/// results finish all along it (closed connections leave the table 50 ms after their last
/// packet) and span many chunks.
fn generated(mb: u64, seed: u64) -> (String, rdpdiag::pipeline::AnalyzeConfig) {
    use rdpdiag::pipeline::AnalyzeConfig;
    let path = std::env::temp_dir().join(format!(
        "rdpdiag-threads-{}-{mb}-{seed}.pcap",
        std::process::id()
    ));
    gen::generate(&path, mb, seed).unwrap();
    let config = AnalyzeConfig {
        flow: rdpdiag::flow::FlowConfig {
            closed_linger_ns: 50_000_000,
            ..Default::default()
        },
        // Split however small the file: this is what -j N does with a file of 32 MiB or more.
        split_min_bytes: 0,
        ..AnalyzeConfig::default()
    };
    (path.to_string_lossy().into_owned(), config)
}

#[test]
fn one_capture_by_one_to_four_threads_gives_the_same_output_collected_and_streamed() {
    use rdpdiag::pipeline::{analyze_path, stream_path, AnalyzeConfig, Finished};
    use rdpdiag::report::{write_jsonl, ConnectionReport, ReportOptions};
    let (path, base) = generated(12, 11);
    let opts = ReportOptions {
        redact: false,
        timeline: true,
    };
    let collected = |config: &AnalyzeConfig| {
        let a = analyze_path(&path, config);
        let mut out = Vec::new();
        write_jsonl(&mut out, &a, opts).unwrap();
        (
            String::from_utf8(out).unwrap(),
            a.stats,
            a.capture.map(|c| format!("{c:?}")),
        )
    };
    // Held one result at a time: released early, at checkpoints.
    let streamed = |config: &AnalyzeConfig| {
        let mut lines = Vec::new();
        let mut keep = |item: Finished| {
            let line = match item {
                Finished::Tcp(d) => ConnectionReport::new("x", &d, opts),
                Finished::Udp(_) => return Ok(()),
            };
            lines.push(serde_json::to_string(&line).unwrap());
            Ok(())
        };
        let run = stream_path(&path, config, 1, &mut keep);
        assert!(run.released_early);
        lines
    };
    let (want, stats, capture) = collected(&base);
    let want_streamed = streamed(&base);
    assert!(want.lines().count() > 100, "{}", want.lines().count());
    for workers in [2, 3, 4] {
        let config = AnalyzeConfig {
            workers,
            ..base.clone()
        };
        let (got, got_stats, got_capture) = collected(&config);
        assert!(got == want, "{workers} threads: collected output differs");
        assert_eq!(got_capture, capture, "{workers} threads");
        assert_eq!(got_stats.frames, stats.frames);
        assert_eq!(got_stats.decoded, stats.decoded);
        assert_eq!(got_stats.tcp_connections, stats.tcp_connections);
        assert_eq!(got_stats.last_ts, stats.last_ts);
        assert!(
            streamed(&config) == want_streamed,
            "{workers} threads: streamed output differs"
        );
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn stdin_by_one_to_three_threads_gives_the_same_output_and_errors() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let (path, _) = generated(3, 5);
    let raw = std::fs::read(&path).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    let gz = gz.finish().unwrap();
    let run = |jobs: &str, input: &[u8]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rdpdiag"))
            .args(["analyze", "--format", "jsonl", "-j", jobs, "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        let feeder = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap();
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    // Whole, and cut inside the compressed stream (a read error some way in).
    for (input, cut) in [(&gz[..], false), (&gz[..gz.len() * 2 / 3], true)] {
        let one = run("1", input);
        assert!(one.1.lines().count() > 20, "{}", one.1.lines().count());
        assert_eq!(one.0, Some(i32::from(cut)), "{}", one.2);
        assert_eq!(
            one.2
                .contains("-: truncated compressed stream or read at offset"),
            cut,
            "{}",
            one.2
        );
        for jobs in ["2", "3"] {
            assert!(run(jobs, input) == one, "-j {jobs} differs from -j 1");
        }
    }
    let _ = std::fs::remove_file(&path);
}
