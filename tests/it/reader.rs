//! The capture reader on real captures: read in buffers of any length, on the parsing thread
//! or on a read-ahead thread, every capture (of testdata, its fuzz regressions and the public
//! corpus) gives the same frames, secrets, summary and error, whole and truncated.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rdpdiag::capture::{
    input_from_bytes, open_input, read_capture_chunks_with, ChunkSink, FrameSlot, InputSource,
    ReadOptions, CHUNK_LEN,
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

fn opts(chunk_len: usize, read_ahead: bool) -> ReadOptions {
    ReadOptions {
        chunk_len,
        read_ahead,
    }
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
fn every_capture_reads_the_same_in_any_buffers_and_read_ahead() {
    let files = captures();
    assert!(files.len() > 50, "{}", files.len());
    let mut frames = 0;
    for f in &files {
        let path = f.to_string_lossy();
        // (Some corpus captures are cut short: the same error every way.)
        let want = read(open_input(&path), ReadOptions::default());
        frames += want.events.len();
        let tiny = if want.events.len() < 5000 { 7 } else { 61 };
        for o in [
            opts(CHUNK_LEN, true),
            opts(tiny, false),
            opts(100, true),
            opts(1500, false),
            opts(4096, true),
        ] {
            let got = read(open_input(&path), o);
            assert!(got.outcome == want.outcome, "{path} {o:?}: {}", got.outcome);
            assert!(got.events == want.events, "{path} {o:?}: frames differ");
        }
    }
    assert!(frames > 10_000, "{frames}");
}

#[test]
fn truncated_captures_read_the_same_in_any_buffers_and_read_ahead() {
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
                for o in [opts(CHUNK_LEN, true), opts(13, false), opts(200, true)] {
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
