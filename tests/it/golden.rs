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

/// The phase, whether it was inferred, the cause and whether keys decrypted it, per capture.
fn verdicts(path: &str) -> Vec<(String, bool, String, String)> {
    let mut config = AnalyzeConfig::default();
    config.rdp_ports.push(13389);
    let a = analyze_path(path, &config);
    assert!(a.problem().is_none(), "{path}: {:?}", a.problem());
    a.connections
        .iter()
        .map(|d| {
            let v = &d.verdict;
            (
                v.phase.name().to_string(),
                v.phase_inferred,
                v.cause.to_string(),
                v.summary.clone(),
            )
        })
        .collect()
}

/// The connection sequence after Client Info, phase by phase (MS-RDPBCGR 1.3.1.1), on real
/// captures: own xrdp captures cut after the licensing PDUs (frame 40, License Error Alert
/// STATUS_VALID_CLIENT) and after the Confirm Active (frame 44), decrypted (embedded keys)
/// or RC4/FIPS-encrypted Standard RDP Security, whose Demand / Confirm Active are placed
/// by order and size (phase_inferred).
#[test]
fn licensing_and_capabilities_phases() {
    let cases = [
        (
            "testdata/own/trimmed-std-security-licensing.pcap",
            "licensing",
            false,
        ),
        (
            "testdata/own/trimmed-std-security-capabilities.pcap",
            "capabilities",
            true,
        ),
        (
            "testdata/own/trimmed-keylog-tls-licensing.pcapng",
            "licensing",
            false,
        ),
        (
            "testdata/own/trimmed-keylog-tls-capabilities.pcapng",
            "capabilities",
            false,
        ),
        // Whole connections: the finalization PDUs start the session.
        (
            "testdata/own/rdp-std-security-success.pcap",
            "rdp_session",
            false,
        ),
        (
            "testdata/own/keylog-tls-success.pcapng",
            "rdp_session",
            false,
        ),
        (
            "testdata/own/keylog-nla-success.pcapng",
            "rdp_session",
            false,
        ),
        // Server PDUs after Client Info are licensing, Demand Active (359 bytes) and the
        // client's Confirm Active (492) and Synchronize (22): inferred session (trimmed at 30
        // packets, expected.tsv says rdp_session/data).
        ("testdata/public/nDPI/rdp3.pcap", "rdp_session", true),
    ];
    for (path, phase, inferred) in cases {
        let v = verdicts(path);
        assert_eq!(v.len(), 1, "{path}");
        assert_eq!(
            (v[0].0.as_str(), v[0].1),
            (phase, inferred),
            "{path}: {v:?}"
        );
        if phase != "rdp_session" {
            assert_eq!(v[0].2, "capture_ended", "{path}");
            assert!(v[0].3.contains(&format!("({phase})")), "{path}: {}", v[0].3);
        }
    }
    // The server's MAC-error disconnect right after Client Info is before licensing.
    let v = verdicts("testdata/own/rdp-std-security-mac-error.pcap");
    assert_eq!(v[0].0, "mcs_connect");
    assert_eq!(v[0].2, "server_closed_during_setup");
}
