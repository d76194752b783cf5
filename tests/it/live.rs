//! `rdpdiag live` on the loopback interface with real traffic through the kernel: small RDP
//! servers and clients written here with std::net (one refusing the negotiation, one replaying
//! a real Standard-RDP-Security session, one that never answers), a connect to a closed port,
//! the streamed JSONL verdicts, and the `--write` pcapng read back with the file pipeline.
//! `live_load` (ignored; run by hand in release) measures the packet rate held without drops.
//!
//! Capturing needs root (or CAP_NET_RAW and CAP_NET_ADMIN); without it these tests say so
//! on stderr and pass without checking anything. All traffic stays on 127.0.0.1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rdpdiag::capture::{open_input, read_capture, Frame, FrameSink};
use rdpdiag::decode::{decode, Transport};
use rdpdiag::pipeline::{analyze_path, AnalyzeConfig, Diagnosed};
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

    /// Ctrl-C, then the exit code, the complete stderr and the JSON lines not yet collected
    /// (the verdicts printed at the stop).
    fn interrupt(mut self) -> (i32, String, Vec<Value>) {
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
        let rest = self
            .lines
            .try_iter()
            .map(|l| serde_json::from_str(&l).unwrap())
            .collect();
        (status.code().unwrap_or(-1), err, rest)
    }
}

/// The file pipeline's verdict on the connection of `live_row` (same client address and
/// port) has the same cause, outcome, first, last and key frames and evidence frames.
fn assert_same_verdict(live_row: &Value, file: &[Diagnosed]) {
    let d = file
        .iter()
        .find(|d| d.record.meta.client.to_string() == live_row["client"])
        .unwrap_or_else(|| panic!("no connection in the written file for {live_row}"));
    assert_eq!(d.verdict.cause, live_row["cause"], "{live_row}");
    assert_eq!(
        serde_json::to_value(d.verdict.outcome).unwrap(),
        live_row["outcome"],
        "{live_row}"
    );
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
    assert_eq!(live_ev, file_ev, "{live_row}");
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
    let (code, stderr, _) = live.interrupt();
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
        assert_same_verdict(live_row, &file.connections);
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

/// The TCP payloads of a real Standard-RDP-Security session (suricata-verify RDP-003, a
/// Windows XP client and a server with 56-bit RC4), in order, each with its direction (true:
/// client to server): X.224 Connection Request without RDP_NEG_REQ and Connection Confirm
/// (frames 4, 6), MCS Connect Initial and Response (7, 8), Erect Domain, Attach User and the
/// channel joins (9-22), Security Exchange and Client Info (SEC_INFO_PKT, 23-24), the
/// server's licensing PDUs (SEC_LICENSE_PKT, 26-27), the encrypted capability and
/// finalization exchange up to the client's first fast-path input (29-38), then two server
/// fast-path output PDUs (105-106 one PDU in two segments, 111). Read from the capture with
/// rdpdiag's own reader and decoder, so no bytes are copied into this file.
fn rdp003_session() -> Vec<(bool, Vec<u8>)> {
    struct Payloads(Vec<(bool, Vec<u8>)>);
    impl FrameSink for Payloads {
        fn frame(&mut self, f: &Frame<'_>) {
            if !(4..=38).contains(&f.number) && ![105, 106, 111].contains(&f.number) {
                return;
            }
            let Some(p) = decode(f.linktype, f.data) else {
                return;
            };
            if let Transport::Tcp(seg) = p.transport {
                if !seg.payload.is_empty() {
                    self.0.push((seg.dst_port == 3389, seg.payload.to_vec()));
                }
            }
        }
    }
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/public/suricata-verify/RDP-003.pcap"
    );
    let mut sink = Payloads(Vec::new());
    read_capture(open_input(path).unwrap(), &mut sink).unwrap();
    let script = sink.0;
    assert_eq!(script.len(), 32, "RDP-003 payloads changed");
    // TPKT, X.224 CR (0xe0) with the cookie and no RDP_NEG_REQ (length 0x24 = TPKT+X.224+cookie).
    assert_eq!(&script[0].1[..6], &[3, 0, 0, 0x24, 0x1f, 0xe0]);
    assert!(script[0].1.ends_with(b"Cookie: mstshash=A70067\r\n"));
    // X.224 CC (0xd0) without RDP_NEG_RSP: standard RDP security.
    assert_eq!(
        script[1],
        (false, vec![3, 0, 0, 11, 6, 0xd0, 0, 0, 0x12, 0x34, 0])
    );
    script
}

/// Plays one side of `script`: writes this side's payloads, reads the peer's and checks them
/// byte for byte (so both sides step through it in order, as the real session did).
fn play(s: &mut TcpStream, script: &[(bool, Vec<u8>)], client: bool) {
    for (i, (to_server, bytes)) in script.iter().enumerate() {
        if *to_server == client {
            s.write_all(bytes).unwrap();
        } else {
            let mut got = vec![0u8; bytes.len()];
            s.read_exact(&mut got).unwrap();
            assert!(got == *bytes, "payload {i} differs");
        }
    }
}

#[test]
fn live_announces_an_established_session_then_its_close() {
    const TEST: &str = "live_announces_an_established_session_then_its_close";
    let script = rdp003_session();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let pcapng = tmp("session.pcapng");
    let (filter, p) = (format!("tcp port {port}"), port.to_string());
    let Some(live) = Live::start(
        TEST,
        &[
            "-i",
            "lo",
            "--filter",
            &filter,
            "--port",
            &p,
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

    let server_script = script.clone();
    let server = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        play(&mut s, &server_script, false);
        // Session up: the server waits for the client to leave, then closes its side.
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    });
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    play(&mut c, &script, true);

    // The session is announced while it runs (the live loop checks every 250 ms).
    let mut rows = live.collect(Duration::from_secs(15), |rows| {
        rows.iter().any(|r| r["event"] == "established")
    });
    assert_eq!(rows.len(), 1, "{rows:?}");
    let up = rows[0].clone();
    assert_eq!(up["server"], format!("127.0.0.1:{port}"));
    assert_eq!(up["phase"], "rdp_session");
    assert_eq!(up["outcome"], "success");
    assert_eq!(up["cookie"], "A70067");
    assert_eq!(up["requested_protocols"], "RDP");
    assert_eq!(up["mcs"]["client_name"], "ISD2-KM84178");
    assert_eq!(up["mcs"]["encryption_method"], "56BIT");

    // The client leaves with a FIN (first close), the server follows.
    c.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    drop(c);
    server.join().unwrap();

    rows.extend(live.collect(Duration::from_secs(15), |rows| !rows.is_empty()));
    let (code, stderr, rest) = live.interrupt();
    assert_eq!(code, 0, "stderr: {stderr}");
    assert!(rest.is_empty(), "{rest:?}");
    assert!(
        stderr.contains(
            "1 RDP connection: 1 success, 0 failure, 0 incomplete (1 announced established)"
        ),
        "{stderr}"
    );
    assert_eq!(rows.len(), 2, "{rows:?}");
    let end = &rows[1];
    assert_eq!(end["event"], "closed");
    assert_eq!(end["client"], up["client"]);
    assert_eq!(end["first_frame"], up["first_frame"]);
    assert_eq!(end["phase"], "rdp_session");
    assert_eq!(end["outcome"], "success");
    assert_eq!(end["cause"], "session_closed_by_client");
    assert_eq!(end["ended_by"], "client");
    assert_eq!(end["end"], "fin");
    let ev = end["evidence"].as_array().unwrap();
    for what in [
        "X.224 Connection Request (no RDP_NEG_REQ",
        "X.224 Connection Confirm (no RDP_NEG_RSP",
        "Client Info PDU",
        "client: TCP FIN",
    ] {
        assert!(
            ev.iter()
                .any(|e| e["what"].as_str().unwrap().contains(what)),
            "no {what:?} in {ev:?}"
        );
    }

    // The written capture gives the same verdict with the same frames.
    let mut config = AnalyzeConfig::default();
    config.rdp_ports.push(port);
    let file = analyze_path(pcapng.to_str().unwrap(), &config);
    assert!(file.problem().is_none(), "{:?}", file.problem());
    assert_eq!(file.connections.len(), 1);
    assert_same_verdict(end, &file.connections);
    let _ = std::fs::remove_file(&pcapng);
}

#[test]
fn live_reports_a_silent_server_when_the_idle_timeout_passes() {
    const TEST: &str = "live_reports_a_silent_server_when_the_idle_timeout_passes";
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let closed_port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let pcapng = tmp("silent.pcapng");
    let filter = format!("tcp port {port} or tcp port {closed_port}");
    let (p1, p2) = (port.to_string(), closed_port.to_string());
    let Some(live) = Live::start(
        TEST,
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
            "2",
            "--write",
            pcapng.to_str().unwrap(),
        ],
    ) else {
        return;
    };

    // The server accepts (the kernel completes the handshake and ACKs the request) and then
    // never answers; it holds the connection until the test is over.
    let (release, released) = mpsc::channel::<()>();
    let server = thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let _ = released.recv();
        drop(s);
    });
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(&connection_request()).unwrap();
    let sent = Instant::now();

    // The client keeps waiting, so the verdict comes from the idle timeout (2 s of silence,
    // seen by the 250 ms sweep against the wall clock), while the connection is still open.
    let mut rows = live.collect(Duration::from_secs(15), |rows| !rows.is_empty());
    let waited = sent.elapsed();
    assert!(waited >= Duration::from_secs(2), "verdict after {waited:?}");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let silent = rows[0].clone();
    assert_eq!(silent["server"], format!("127.0.0.1:{port}"));
    assert_eq!(silent["event"], "idle");
    assert_eq!(silent["phase"], "x224_request");
    assert_eq!(silent["outcome"], "failure");
    assert_eq!(silent["cause"], "server_silent_after_x224_request");
    assert_eq!(silent["end"], "timeout");
    assert_eq!(silent["ended_by"], "none");
    assert_eq!(silent["cookie"], "livetest");
    assert!(silent["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["what"]
            .as_str()
            .unwrap()
            .contains("X.224 Connection Request")));

    // A later packet in the written file (a refused connect), so that reading the file with
    // the same idle timeout sees the same silence and not a capture that just ended.
    let refused = TcpStream::connect(("127.0.0.1", closed_port)).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    rows.extend(live.collect(Duration::from_secs(15), |rows| !rows.is_empty()));
    // Stopped before the client gives up: its FIN would come after the verdict.
    let (code, stderr, rest) = live.interrupt();
    drop(c);
    release.send(()).unwrap();
    server.join().unwrap();
    assert_eq!(code, 0, "stderr: {stderr}");
    assert!(rest.is_empty(), "one verdict per connection: {rest:?}");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[1]["server"], format!("127.0.0.1:{closed_port}"));
    assert_eq!(rows[1]["cause"], "port_closed");

    let mut config = AnalyzeConfig::default();
    config.rdp_ports.extend([port, closed_port]);
    config.flow.idle_timeout_ns = 2_000_000_000;
    let file = analyze_path(pcapng.to_str().unwrap(), &config);
    assert!(file.problem().is_none(), "{:?}", file.problem());
    assert_eq!(file.connections.len(), 2);
    for row in &rows {
        assert_same_verdict(row, &file.connections);
    }
    let _ = std::fs::remove_file(&pcapng);
}

/// Load: for about 5 s, short RDP connections refused with RDP_NEG_FAILURE (one client
/// thread, at most 6,000 connections) and a bulk stream of 1,400-byte writes paced to
/// `RDPDIAG_LOAD_MBPS` MB/s (default 20; 0 for unpaced), at most 2 GB, all on one port of
/// 127.0.0.1, through `rdpdiag live` with a filter on that port. Prints the packet rate, the
/// payload rate and libpcap's drop count (a benchmark figure for the README, nothing timed
/// is asserted); without drops every refused connection must have its verdict. Run by hand:
/// `cargo test --release --features live --test it -- --ignored --nocapture live_load`.
#[test]
#[ignore = "load benchmark: run by hand in release"]
fn live_load() {
    const SECS: u64 = 5;
    const SHORT_THREADS: usize = 1;
    const SHORT_MAX: usize = 6_000; // per thread
    const BULK_MAX: u64 = 2 << 30;
    const CHUNK: usize = 1_400;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (filter, p) = (format!("tcp port {port}"), port.to_string());
    let Some(live) = Live::start(
        "live_load",
        &[
            "-i",
            "lo",
            "--filter",
            &filter,
            "--port",
            &p,
            "--format",
            "jsonl",
            "--idle-timeout",
            "30",
        ],
    ) else {
        return;
    };

    // One server thread per connection: an X.224 request is refused, anything else is
    // read and thrown away.
    let server = thread::spawn(move || {
        for s in listener.incoming() {
            let mut s = s.unwrap();
            thread::spawn(move || {
                let mut buf = vec![0u8; 64 << 10];
                let Ok(n) = s.read(&mut buf) else { return };
                if n > 0 && buf[0] == 3 {
                    let _ = s.write_all(&NEG_FAILURE_CC);
                    let _ = s.shutdown(Shutdown::Both);
                } else {
                    while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
                }
            });
        }
    });
    let _ = server;

    let mbps: u64 = std::env::var("RDPDIAG_LOAD_MBPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let started = Instant::now();
    let end = started + Duration::from_secs(SECS);
    let bulk = thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_nodelay(true).unwrap();
        let chunk = vec![0xa5u8; CHUNK];
        let mut sent = 0u64;
        while sent < BULK_MAX && Instant::now() < end {
            s.write_all(&chunk).unwrap();
            sent += CHUNK as u64;
            // Ahead of the pace: wait (in steps of at least 1 ms).
            if mbps > 0 {
                let due = Duration::from_secs_f64(sent as f64 / (mbps as f64 * 1e6));
                let ahead = due.saturating_sub(started.elapsed());
                if ahead >= Duration::from_millis(1) {
                    thread::sleep(ahead);
                }
            }
        }
        sent
    });
    let request = connection_request();
    let shorts: Vec<_> = (0..SHORT_THREADS)
        .map(|_| {
            let request = request.clone();
            thread::spawn(move || {
                let mut n = 0usize;
                while n < SHORT_MAX && Instant::now() < end {
                    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
                    c.write_all(&request).unwrap();
                    let mut cc = Vec::new();
                    c.read_to_end(&mut cc).unwrap();
                    assert_eq!(cc, NEG_FAILURE_CC);
                    n += 1;
                }
                n
            })
        })
        .collect();
    let bulk_bytes = bulk.join().unwrap();
    let short: usize = shorts.into_iter().map(|t| t.join().unwrap()).sum();
    let elapsed = started.elapsed().as_secs_f64();

    // Closed connections are printed 2 s after their last packet; with drops some may be
    // missing, so stop waiting after 5 s without a new verdict.
    let mut rows: Vec<Value> = Vec::new();
    while rows.len() < short + 1 {
        match live.lines.recv_timeout(Duration::from_secs(5)) {
            Ok(line) => rows.push(serde_json::from_str(&line).unwrap()),
            Err(_) => break,
        }
    }
    let (code, stderr, rest) = live.interrupt();
    assert_eq!(code, 0, "stderr: {stderr}");
    let number = |after: &str| -> u64 {
        let i = stderr
            .find(after)
            .unwrap_or_else(|| panic!("no {after:?} in {stderr}"));
        stderr[..i]
            .rsplit(|c: char| !c.is_ascii_digit())
            .find(|w| !w.is_empty())
            .unwrap()
            .parse()
            .unwrap()
    };
    let frames = number(" frames");
    let dropped = number(" dropped,") + number(" dropped by the interface");
    let refused = rows
        .iter()
        .chain(&rest)
        .filter(|r| r["cause"] == "neg_failure_hybrid_required_by_server")
        .count();
    let payload = bulk_bytes + (short * (request.len() + NEG_FAILURE_CC.len())) as u64;
    let _ = writeln!(
        std::io::stderr(),
        "live_load: {short} refused connections + {:.0} MB bulk in {elapsed:.1} s: \
         {frames} packets captured ({:.0} packets/s, {:.1} MB/s payload), {dropped} dropped, \
         {refused} verdicts",
        bulk_bytes as f64 / 1e6,
        frames as f64 / elapsed,
        payload as f64 / 1e6 / elapsed,
    );
    if dropped == 0 {
        assert_eq!(refused, short, "a refused connection without its verdict");
    }
}

/// The TCP payloads of testdata/own/keylog-tls-success.pcapng (xfreerdp 2.11 against xrdp,
/// TLS 1.3 without NLA) up to the server's first fast-path PDU (frames 4-51), and the key-log
/// lines of its Decryption Secrets Block.
fn keylog_tls_session() -> (Vec<(bool, Vec<u8>)>, Vec<u8>) {
    struct Payloads(Vec<(bool, Vec<u8>)>, Vec<u8>);
    impl FrameSink for Payloads {
        fn frame(&mut self, f: &Frame<'_>) {
            if f.number > 51 {
                return;
            }
            let Some(p) = decode(f.linktype, f.data) else {
                return;
            };
            if let Transport::Tcp(seg) = p.transport {
                if !seg.payload.is_empty() {
                    self.0.push((seg.dst_port == 3389, seg.payload.to_vec()));
                }
            }
        }
        fn secrets(&mut self, _secrets_type: u32, data: &[u8]) {
            self.1.extend_from_slice(data);
        }
    }
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/own/keylog-tls-success.pcapng"
    );
    let mut sink = Payloads(Vec::new(), Vec::new());
    read_capture(open_input(path).unwrap(), &mut sink).unwrap();
    assert!(
        sink.1.starts_with(b"SERVER_HANDSHAKE_TRAFFIC_SECRET") || sink.1.starts_with(b"CLIENT_")
    );
    (sink.0, sink.1)
}

/// Live decryption: the key log is empty when the capture starts and the "client" appends
/// its TLS 1.3 secrets only after the server's encrypted handshake flight has passed the
/// capture point (as OpenSSL's keylog callback does); rdpdiag re-reads the growing file and
/// its live verdict is read from the decrypted connection sequence. The --write file holds
/// the keys before the packets, so it decrypts on its own.
#[test]
fn live_decrypts_with_a_growing_key_log() {
    const TEST: &str = "live_decrypts_with_a_growing_key_log";
    let (script, keys) = keylog_tls_session();
    let keylog = tmp("keys.log");
    std::fs::write(&keylog, b"").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let pcapng = tmp("keylog-session.pcapng");
    let (filter, p) = (format!("tcp port {port}"), port.to_string());
    let Some(live) = Live::start(
        TEST,
        &[
            "-i",
            "lo",
            "--filter",
            &filter,
            "--port",
            &p,
            "--format",
            "jsonl",
            "--keylog",
            keylog.to_str().unwrap(),
            "--write",
            pcapng.to_str().unwrap(),
        ],
    ) else {
        let _ = std::fs::remove_file(&keylog);
        return;
    };

    let server_script = script.clone();
    let server = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        play(&mut s, &server_script, false);
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
    });
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut logged = false;
    for (i, (to_server, bytes)) in script.iter().enumerate() {
        if *to_server {
            c.write_all(bytes).unwrap();
        } else {
            let mut got = vec![0u8; bytes.len()];
            c.read_exact(&mut got).unwrap();
            assert!(got == *bytes, "payload {i} differs");
            // The ServerHello flight (with TLS 1.3's encrypted records) was received: the
            // client derives and logs its secrets now.
            if !logged && got.first() == Some(&0x16) {
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&keylog)
                    .unwrap();
                f.write_all(&keys).unwrap();
                logged = true;
            }
        }
    }
    assert!(logged);
    c.shutdown(Shutdown::Write).unwrap();
    drop(c);
    server.join().unwrap();

    let rows = live.collect(Duration::from_secs(15), |rows| {
        rows.iter().any(|r| r["event"] == "closed")
    });
    let (code, stderr, _) = live.interrupt();
    assert_eq!(code, 0, "stderr: {stderr}");
    let end = rows.iter().find(|r| r["event"] == "closed").unwrap();
    assert_eq!(end["decrypted"], true, "{end}");
    assert_eq!(end["phase"], "rdp_session");
    assert_eq!(end["phase_inferred"], false);
    assert_eq!(end["cause"], "session_closed_by_client");
    assert_eq!(end["mcs"]["client_name"], "vm", "{end}");
    let ev = end["evidence"].as_array().unwrap();
    assert!(
        ev.iter().any(|e| e["what"]
            .as_str()
            .unwrap()
            .contains("client: Client Info PDU")),
        "{ev:?}"
    );

    // The written capture carries the keys before the records: it decrypts without --keylog.
    let mut config = AnalyzeConfig::default();
    config.rdp_ports.push(port);
    let file = analyze_path(pcapng.to_str().unwrap(), &config);
    assert!(file.problem().is_none(), "{:?}", file.problem());
    assert_eq!(file.connections.len(), 1);
    assert!(file.connections[0]
        .record
        .session
        .details
        .decrypt
        .decrypted());
    assert_same_verdict(end, &file.connections);
    let _ = std::fs::remove_file(&pcapng);
    let _ = std::fs::remove_file(&keylog);
}
