//! `rdpdiag live` on the loopback interface with real traffic through the kernel: a small
//! RDP-refusing server and client written here with std::net, a connect to a closed port,
//! the streamed JSONL verdicts, and the `--write` pcapng read back with the file pipeline.
//!
//! Capturing needs root (or CAP_NET_RAW and CAP_NET_ADMIN); without it these tests say so
//! on stderr and pass without checking anything.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rdpdiag::pipeline::{analyze_path, AnalyzeConfig};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_rdpdiag");

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rdpdiag-it-live-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Printed past the test harness's output capture, so a skip is visible in CI logs.
fn skip(test: &str, why: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {why} (live capture needs root or CAP_NET_RAW+CAP_NET_ADMIN)"
    );
}

/// A running `rdpdiag live`, its stdout lines and its stderr so far.
struct Live {
    child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Live {
    /// Starts `rdpdiag live ARGS` and waits until it captures. `None` (after a visible
    /// skip message) when capturing is not permitted here.
    fn start(test: &str, args: &[&str]) -> Option<Live> {
        let mut child = Command::new(BIN)
            .arg("live")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let err_pipe = child.stderr.take().unwrap();
        let err_buf = Arc::clone(&stderr);
        thread::spawn(move || {
            for line in BufReader::new(err_pipe).lines() {
                let Ok(line) = line else { break };
                if line.contains("capturing on") {
                    let _ = ready_tx.send(());
                }
                let mut b = err_buf.lock().unwrap();
                b.push_str(&line);
                b.push('\n');
            }
        });
        let (tx, lines) = mpsc::channel();
        let out_pipe = child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(out_pipe).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if ready_rx.recv_timeout(Duration::from_millis(50)).is_ok() {
                return Some(Live {
                    child,
                    lines,
                    stderr,
                });
            }
            if let Some(status) = child.try_wait().unwrap() {
                thread::sleep(Duration::from_millis(100));
                let err = stderr.lock().unwrap().clone();
                if err.contains("no permission") {
                    skip(test, err.trim());
                    return None;
                }
                panic!("rdpdiag live exited early ({status}): {err}");
            }
            assert!(Instant::now() < deadline, "rdpdiag live did not start");
        }
    }

    /// Waits for JSON lines until `done` says enough (or the deadline passes).
    fn collect(&self, timeout: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut rows = Vec::new();
        while !done(&rows) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for verdicts; got {rows:?}; stderr: {}",
                self.stderr.lock().unwrap()
            );
            if let Ok(line) = self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                rows.push(serde_json::from_str(&line).unwrap());
            }
        }
        rows
    }

    /// Ctrl-C, then the exit code and the complete stderr.
    fn interrupt(mut self) -> (i32, String) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-INT", &pid]).status().unwrap();
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("rdpdiag live did not stop on SIGINT");
            }
            thread::sleep(Duration::from_millis(50));
        };
        thread::sleep(Duration::from_millis(200));
        let err = self.stderr.lock().unwrap().clone();
        (status.code().unwrap_or(-1), err)
    }
}

/// An X.224 Connection Request with a cookie and RDP_NEG_REQ (SSL|HYBRID), in TPKT.
fn connection_request() -> Vec<u8> {
    let cookie = b"Cookie: mstshash=livetest\r\n";
    let neg = [1u8, 0, 8, 0, 3, 0, 0, 0];
    let mut x224 = vec![(6 + cookie.len() + neg.len()) as u8, 0xe0, 0, 0, 0, 0, 0];
    x224.extend_from_slice(cookie);
    x224.extend_from_slice(&neg);
    let mut tpkt = vec![3, 0];
    tpkt.extend_from_slice(&((4 + x224.len()) as u16).to_be_bytes());
    tpkt.extend_from_slice(&x224);
    tpkt
}

/// An X.224 Connection Confirm carrying RDP_NEG_FAILURE HYBRID_REQUIRED_BY_SERVER (5).
const NEG_FAILURE_CC: [u8; 19] = [
    3, 0, 0, 19, 14, 0xd0, 0, 0, 0x12, 0x34, 0, 3, 0, 8, 0, 5, 0, 0, 0,
];

/// Accepts one connection, reads the request, refuses the negotiation and closes.
fn refusing_server(listener: TcpListener) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 512];
        let _ = s.read(&mut buf).unwrap();
        s.write_all(&NEG_FAILURE_CC).unwrap();
        s.shutdown(Shutdown::Both).unwrap();
    })
}

#[test]
fn live_streams_verdicts_and_writes_matching_pcapng() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let closed_port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let pcapng = tmp("live.pcapng");
    let filter = format!("tcp port {port} or tcp port {closed_port}");
    let (p1, p2) = (port.to_string(), closed_port.to_string());
    let Some(live) = Live::start(
        "live_streams_verdicts_and_writes_matching_pcapng",
        &[
            "-i",
            "lo",
            "--filter",
            &filter,
            "--port",
            &p1,
            "--port",
            &p2,
            "--format",
            "jsonl",
            "--idle-timeout",
            "30",
            "--write",
            pcapng.to_str().unwrap(),
        ],
    ) else {
        return;
    };

    // The RDP client refused with RDP_NEG_FAILURE.
    let server = refusing_server(listener);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(&connection_request()).unwrap();
    let mut cc = Vec::new();
    c.read_to_end(&mut cc).unwrap();
    assert_eq!(cc, NEG_FAILURE_CC);
    drop(c);
    server.join().unwrap();
    // A connect to a port nothing listens on.
    let refused = TcpStream::connect(("127.0.0.1", closed_port)).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);

    // Both verdicts stream while the capture goes on (closed connections linger 2 s).
    let rows = live.collect(Duration::from_secs(20), |rows| rows.len() >= 2);
    let (code, stderr) = live.interrupt();
    assert_eq!(code, 0, "stderr: {stderr}");
    assert!(
        stderr.contains("received") && stderr.contains("dropped"),
        "no libpcap summary: {stderr}"
    );

    let by_port = |p: u16| {
        rows.iter()
            .find(|r| r["server"] == format!("127.0.0.1:{p}"))
            .unwrap_or_else(|| panic!("no verdict for port {p}: {rows:?}"))
    };
    let neg = by_port(port);
    assert_eq!(neg["file"], "lo");
    assert_eq!(neg["event"], "closed");
    assert_eq!(neg["cause"], "neg_failure_hybrid_required_by_server");
    assert_eq!(neg["failure_code"], "HYBRID_REQUIRED_BY_SERVER");
    assert_eq!(neg["cookie"], "livetest");
    assert_eq!(neg["ended_by"], "server");
    let closed = by_port(closed_port);
    assert_eq!(closed["event"], "closed");
    assert_eq!(closed["cause"], "port_closed");
    assert_eq!(closed["end"], "rst");

    // The saved capture has the same frame numbers: the file pipeline finds the same
    // connections with the same first, last, key and evidence frames.
    let mut config = AnalyzeConfig::default();
    config.rdp_ports.extend([port, closed_port]);
    let file = analyze_path(pcapng.to_str().unwrap(), &config);
    assert!(file.problem().is_none(), "{:?}", file.problem());
    assert_eq!(file.connections.len(), 2);
    for live_row in [neg, closed] {
        let d = file
            .connections
            .iter()
            .find(|d| d.record.meta.client.to_string() == live_row["client"])
            .expect("connection in the written file");
        assert_eq!(d.verdict.cause, live_row["cause"]);
        assert_eq!(
            Some(d.record.meta.first.number),
            live_row["first_frame"].as_u64()
        );
        assert_eq!(
            d.record.tcp.last.map(|f| f.number),
            live_row["last_frame"].as_u64()
        );
        assert_eq!(d.verdict.key_frame, live_row["key_frame"].as_u64());
        let live_ev: Vec<u64> = live_row["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["frame"].as_u64().unwrap())
            .collect();
        let file_ev: Vec<u64> = d.verdict.evidence.iter().map(|e| e.frame).collect();
        assert_eq!(live_ev, file_ev);
    }
    // The Connection Confirm with the failure is the key frame, in both.
    let key = neg["key_frame"].as_u64().unwrap();
    assert!(neg["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["frame"] == key && e["what"].as_str().unwrap().contains("RDP_NEG_FAILURE")));
    let _ = std::fs::remove_file(&pcapng);
}

#[test]
fn live_duration_ends_on_a_quiet_interface_with_a_summary() {
    // A port nobody uses: no packets at all, yet the loop must not hang.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let started = Instant::now();
    let out = Command::new(BIN)
        .args(["live", "-i", "lo", "--filter"])
        .arg(format!("tcp port {port}"))
        .args(["--duration", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("no permission") {
        skip(
            "live_duration_ends_on_a_quiet_interface_with_a_summary",
            stderr.trim(),
        );
        return;
    }
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The streamed table's header, then the summary with libpcap's counts.
    assert!(stdout.starts_with("   # start (UTC)"), "{stdout}");
    assert!(
        stdout.contains("lo: 0 frames, 0 RDP connections") && stdout.contains("0 dropped"),
        "{stdout}"
    );
}

#[test]
fn live_bad_filter_is_a_usage_error() {
    // Checked before the device is opened: no capture permission needed.
    let out = Command::new(BIN)
        .args(["live", "-i", "lo", "--filter", "tcp port no-such-port-name"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains("bad capture filter"), "{stderr}");
}

#[test]
fn live_lists_interfaces_with_addresses() {
    let out = Command::new(BIN)
        .args(["live", "--list-interfaces"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.code() != Some(0) {
        skip(
            "live_lists_interfaces_with_addresses",
            String::from_utf8_lossy(&out.stderr).trim(),
        );
        return;
    }
    let lo = stdout
        .lines()
        .find(|l| l.starts_with("lo "))
        .unwrap_or_else(|| panic!("no lo in {stdout}"));
    assert!(lo.contains("loopback"), "{lo}");
    assert!(lo.contains("127.0.0.1/8"), "{lo}");
}
