//! Golden tests: each capture in testdata/ has its JSONL verdicts checked in under
//! testdata/golden/. `UPDATE_GOLDEN=1 cargo test` rewrites them (review the diff!).

use std::path::Path;

use rdpdiag::pipeline::{analyze_path, AnalyzeConfig};
use rdpdiag::report::{write_jsonl, ReportOptions};

fn golden_path(capture: &Path) -> std::path::PathBuf {
    let rel = capture.strip_prefix("testdata").unwrap_or(capture);
    Path::new("testdata/golden").join(format!("{}.jsonl", rel.display()))
}

#[test]
fn shipped_captures_match_their_golden_verdicts() {
    let mut config = AnalyzeConfig::default();
    // The own captures include RDP on 13389; the public SOCKS5 one uses 42356.
    config.rdp_ports.push(13389);
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut checked = 0;
    let mut mismatched = Vec::new();
    for dir in ["testdata/public", "testdata/own"] {
        for cap in super::captures_under(Path::new(dir)) {
            let path = cap.to_string_lossy().to_string();
            let analysis = analyze_path(&path, &config);
            let mut out = Vec::new();
            write_jsonl(
                &mut out,
                &analysis,
                ReportOptions {
                    redact: false,
                    timeline: true,
                },
            )
            .unwrap();
            let golden = golden_path(&cap);
            if update {
                std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
                std::fs::write(&golden, &out).unwrap();
            }
            let want = std::fs::read(&golden).unwrap_or_default();
            if want != out {
                mismatched.push(format!("{} (golden {})", path, golden.display()));
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 10,
        "expected the shipped captures, found {checked}"
    );
    assert!(
        mismatched.is_empty(),
        "verdicts differ from golden files (UPDATE_GOLDEN=1 to accept):\n{}",
        mismatched.join("\n")
    );
}
