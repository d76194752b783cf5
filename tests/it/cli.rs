//! The command line through the built binary: formats, exit codes, compressed and
//! misnamed input, stdin, truncated and non-capture files, closed pipes.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_rdpdiag");
const NEG_FAILURE: &str = "testdata/public/zeek/rdp-proprietary-encryption.pcap";

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rdpdiag-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn jsonl(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn jsonl_has_the_documented_keys() {
    let (code, out, _) = run(&["analyze", "--format", "jsonl", NEG_FAILURE]);
    assert_eq!(code, 0);
    let rows = jsonl(&out);
    assert_eq!(rows.len(), 2);
    for key in [
        "file",
        "client",
        "server",
        "transport",
        "start",
        "duration_s",
        "phase",
        "outcome",
        "ended_by",
        "end",
        "cause",
        "summary",
        "remedy",
        "evidence",
        "cookie",
        "requested_protocols",
        "selected_protocol",
        "failure_code",
        "tls",
    ] {
        assert!(rows[0].get(key).is_some(), "missing key {key}");
    }
    assert_eq!(rows[0]["client"], "172.21.128.16:1311");
    assert_eq!(rows[0]["failure_code"], "SSL_NOT_ALLOWED_BY_SERVER");
    assert_eq!(rows[0]["cookie"], "FTBCO\\A70");
    // tshark: frame.time_epoch 1193369794.940913
    assert_eq!(rows[0]["start"], "2007-10-26T03:36:34.940913Z");
    // The X.224 Connection Confirm carrying the failure is frame 5 in Wireshark.
    assert_eq!(rows[0]["key_frame"], 5);
    let ev = rows[0]["evidence"].as_array().unwrap();
    assert!(ev
        .iter()
        .any(|e| e["frame"] == 5 && e["what"].as_str().unwrap().contains("RDP_NEG_FAILURE")));
}

#[test]
fn redact_hides_user_names() {
    let (_, out, _) = run(&["analyze", "--format", "jsonl", "--redact", NEG_FAILURE]);
    assert!(!out.contains("FTBCO"));
    assert_eq!(jsonl(&out)[0]["cookie"], "<redacted>");
}

#[test]
fn table_lists_each_connection_and_a_file_summary() {
    let (code, out, _) = run(&["analyze", "--width", "100", NEG_FAILURE]);
    assert_eq!(code, 0);
    assert!(out.contains("neg_failure_ssl_not_allowed_by_server"));
    assert!(out.contains("2 RDP connections: 0 success, 1 failure, 1 incomplete"));
    assert!(out
        .lines()
        .all(|l| l.chars().count() <= 100 || !l.starts_with(['│', '┌', '└', '╞'])));
    let (_, verbose, _) = run(&["analyze", "-v", NEG_FAILURE]);
    assert!(verbose.contains("ladder:") && verbose.contains("X.224 Connection Request"));
}

#[test]
fn compressed_misnamed_and_stdin_inputs_give_the_same_verdicts() {
    let raw = std::fs::read(NEG_FAILURE).unwrap();
    let gz = tmp("capture.bin");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&raw).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    let zst = tmp("capture.txt");
    std::fs::write(&zst, zstd::encode_all(&raw[..], 1).unwrap()).unwrap();
    let (_, plain, _) = run(&["analyze", "--format", "jsonl", NEG_FAILURE]);
    let strip = |s: &str| {
        jsonl(s)
            .into_iter()
            .map(|mut v| {
                v["file"] = "".into();
                v
            })
            .collect::<Vec<_>>()
    };
    for p in [&gz, &zst] {
        let (code, out, err) = run(&["analyze", "--format", "jsonl", p.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(strip(&out), strip(&plain));
    }
    let mut child = Command::new(BIN)
        .args(["analyze", "--format", "jsonl", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&raw).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(strip(&String::from_utf8_lossy(&out.stdout)), strip(&plain));
}

#[test]
fn truncated_capture_is_reported_with_offset_and_still_analysed() {
    let raw = std::fs::read(NEG_FAILURE).unwrap();
    let cut = tmp("cut.pcap");
    std::fs::write(&cut, &raw[..raw.len() - 10]).unwrap();
    let (code, out, err) = run(&["analyze", "--format", "jsonl", cut.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cut.pcap: truncated packet record at offset"),
        "{err}"
    );
    assert_eq!(
        jsonl(&out).len(),
        2,
        "connections before the cut are still reported"
    );
}

#[test]
fn garbage_and_missing_files_fail_clearly_and_others_continue() {
    let junk = tmp("junk.pcap");
    std::fs::write(&junk, b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let (code, out, err) = run(&[
        "analyze",
        "--format",
        "jsonl",
        junk.to_str().unwrap(),
        "/nonexistent.pcap",
        NEG_FAILURE,
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("junk.pcap: not a pcap or pcapng capture (starts with 47 45 54 20)"),
        "{err}"
    );
    assert!(err.contains("cannot read /nonexistent.pcap"), "{err}");
    assert_eq!(jsonl(&out).len(), 2);
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(&["analyze"]).0, 2);
    assert_eq!(run(&["analyze", "--format", "xml", NEG_FAILURE]).0, 2);
    assert_eq!(run(&["analyze", "--port", "0", NEG_FAILURE]).0, 2);
}

#[test]
fn closed_pipe_ends_quietly() {
    let mut child = Command::new(BIN)
        .args(["analyze", "-v", NEG_FAILURE, NEG_FAILURE, NEG_FAILURE])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() || out.status.code() == Some(0),
        "{:?}",
        out.status
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn client_error_predicted_only_where_documented() {
    // nDPI/tcp_scan.pcapng: SYN answered by RST (frame 18): mstsc shows 0x204.
    let (_, out, _) = run(&[
        "analyze",
        "--format",
        "jsonl",
        "testdata/public/nDPI/tcp_scan.pcapng",
    ]);
    let rows = jsonl(&out);
    assert_eq!(rows[0]["cause"], "port_closed");
    assert_eq!(rows[0]["client_error"]["code"], "0x204");
    // A negotiation failure has no documented discReason: no guess.
    let (_, out, _) = run(&["analyze", "--format", "jsonl", NEG_FAILURE]);
    assert!(jsonl(&out)[0].get("client_error").is_none());
}

#[test]
fn version_completions_and_man_page() {
    let (code, out, _) = run(&["--version"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with(&format!("rdpdiag {}", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
    let (code, bash, _) = run(&["completions", "bash"]);
    assert_eq!(code, 0);
    assert!(bash.contains("_rdpdiag()") && bash.contains("--files-from"));
    let (code, man, _) = run(&["man"]);
    assert_eq!(code, 0);
    assert!(man.contains(".TH rdpdiag 1"));
    // --color always colours the failing step even when not a terminal; never does not.
    let cap = "testdata/own/tls-version-mismatch.pcap";
    let (_, always, _) = run(&["analyze", "-v", "--color", "always", cap]);
    assert!(always.contains("\x1b[31;1m"));
    let (_, never, _) = run(&["analyze", "-v", "--color", "never", cap]);
    assert!(!never.contains('\x1b'));
}
