//! Batches: directories, globs and --files-from; deterministic order whatever the thread
//! count; the summary; `summarize` from saved reports; shards that cover a batch exactly once.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_rdpdiag");

fn run(args: &[&str], envs: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
    )
}

fn connection_lines(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.contains("\"type\":\"connection\""))
        .map(str::to_string)
        .collect()
}

#[test]
fn directory_batch_is_deterministic_across_thread_counts() {
    let (c1, one) = run(
        &["analyze", "--format", "jsonl", "-j", "1", "testdata/public"],
        &[],
    );
    let (c2, two) = run(
        &["analyze", "--format", "jsonl", "-j", "2", "testdata/public"],
        &[],
    );
    assert_eq!((c1, c2), (0, 0));
    assert_eq!(one, two);
    let files: Vec<String> = connection_lines(&one)
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["file"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut sorted = files.clone();
    sorted.sort();
    assert_eq!(files, sorted, "files in input (sorted directory) order");
    assert!(files
        .iter()
        .any(|f| f.ends_with("EternalSafety/esteemedaudit-failed-XPSP2.pcap")));
}

#[test]
fn globs_and_files_from_select_the_same_files() {
    let (_, by_glob) = run(
        &[
            "analyze",
            "--format",
            "jsonl",
            "testdata/public/zeek/rdp-*.pcap",
        ],
        &[],
    );
    let list = std::env::temp_dir().join(format!("rdpdiag-list-{}", std::process::id()));
    let mut names: Vec<String> = std::fs::read_dir("testdata/public/zeek")
        .unwrap()
        .flatten()
        .map(|e| e.path().to_string_lossy().into_owned())
        .filter(|p| p.contains("/rdp-"))
        .collect();
    names.sort();
    std::fs::write(
        &list,
        format!("# zeek rdp captures\n{}\n", names.join("\n")),
    )
    .unwrap();
    let (_, by_list) = run(
        &[
            "analyze",
            "--format",
            "jsonl",
            "--files-from",
            list.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(by_glob, by_list);
    assert_eq!(connection_lines(&by_glob).len(), 6);
    let (code, _) = run(&["analyze", "testdata/public/zeek/nothing-*.pcap"], &[]);
    assert_eq!(code, 1, "a pattern matching nothing is reported");
}

#[test]
fn summary_counts_connections_and_attempts_and_summarize_rebuilds_it() {
    let (code, out) = run(
        &[
            "analyze",
            "--format",
            "jsonl",
            "--summary",
            "testdata/public",
        ],
        &[],
    );
    assert_eq!(code, 0);
    let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "summary");
    let n = connection_lines(&out).len() as u64;
    assert_eq!(last["connections"]["total"], n);
    assert_eq!(last["files"], 12);
    // zeek/rdp-proprietary-encryption: SSL refused, then the standard-security retry.
    let kinds = &last["attempt_kinds"];
    assert_eq!(kinds["downgrade_after_negotiation_failure"], 1);
    assert!(last["failures_by_cause"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["key"] == "nla_authentication_failed"));
    let saved = std::env::temp_dir().join(format!("rdpdiag-report-{}.jsonl", std::process::id()));
    std::fs::write(&saved, &out).unwrap();
    let (code, rebuilt) = run(
        &["summarize", "--format", "jsonl", saved.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0);
    let rebuilt: serde_json::Value = serde_json::from_str(rebuilt.trim()).unwrap();
    // Everything but per-file read errors (not in connection reports) is rebuilt exactly.
    for key in [
        "connections",
        "attempts",
        "attempt_kinds",
        "failures_by_cause",
        "by_server",
        "by_client",
        "by_hour",
    ] {
        assert_eq!(rebuilt[key], last[key], "{key}");
    }
    let (_, table) = run(&["summarize", saved.to_str().unwrap()], &[]);
    assert!(table.contains("== summary") && table.contains("failure cause"));
}

#[test]
fn shards_cover_the_batch_exactly_once() {
    let (_, all) = run(&["analyze", "--format", "jsonl", "testdata"], &[]);
    let mut union = Vec::new();
    for k in 0..3 {
        let (code, part) = run(
            &[
                "analyze",
                "--format",
                "jsonl",
                "--shard",
                &format!("{k}/3"),
                "testdata",
            ],
            &[],
        );
        assert_eq!(code, 0);
        union.extend(connection_lines(&part));
    }
    // The same shard from the Slurm environment.
    let (_, by_env) = run(
        &[
            "analyze", "--format", "jsonl", "--shard", "auto/3", "testdata",
        ],
        &[("SLURM_ARRAY_TASK_ID", "1")],
    );
    let (_, explicit) = run(
        &["analyze", "--format", "jsonl", "--shard", "1/3", "testdata"],
        &[],
    );
    assert_eq!(by_env, explicit);
    let mut all = connection_lines(&all);
    all.sort();
    union.sort();
    assert_eq!(union, all);
    assert_eq!(run(&["analyze", "--shard", "3/3", "testdata"], &[]).0, 2);
}

#[test]
fn one_capture_split_across_threads_gives_the_same_verdicts() {
    use rdpdiag::parallel::analyze_path_parallel;
    use rdpdiag::pipeline::{analyze_path, AnalyzeConfig};
    use rdpdiag::report::{write_jsonl, ReportOptions};
    let mut files: Vec<String> = super::captures_under(std::path::Path::new("testdata"))
        .into_iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    // RDP over UDP linked to its TCP session, when the corpus is at hand.
    if let Some(c) = std::env::var_os("RDPDIAG_CORPUS") {
        files.push(format!(
            "{}/PCAP-ATTACK/LM_rdp_sharprdp.pcapng",
            c.to_string_lossy()
        ));
    }
    let config = AnalyzeConfig::default();
    let opts = ReportOptions {
        redact: false,
        timeline: true,
    };
    for f in files {
        let (mut one, mut split) = (Vec::new(), Vec::new());
        write_jsonl(&mut one, &analyze_path(&f, &config), opts).unwrap();
        // Four threads: a reader ahead, the dispatcher and two workers; two threads: the
        // dispatcher analysing some connections itself, with buckets moved at every chunk.
        let churn = AnalyzeConfig {
            split_churn: true,
            ..config.clone()
        };
        for (workers, config) in [(4, &config), (2, &churn)] {
            split.clear();
            write_jsonl(
                &mut split,
                &analyze_path_parallel(&f, config, workers),
                opts,
            )
            .unwrap();
            assert_eq!(
                String::from_utf8_lossy(&split),
                String::from_utf8_lossy(&one),
                "{f}, {workers} threads"
            );
        }
    }
}

#[path = "../../benches/gen_capture.rs"]
#[allow(dead_code, clippy::all)]
mod gen;

#[test]
fn a_split_capture_gives_the_same_output_as_one_thread_collected_and_streamed() {
    use rdpdiag::parallel::stream_path_parallel;
    use rdpdiag::pipeline::{analyze_path, AnalyzeConfig, Finished};
    use rdpdiag::report::{ConnectionReport, ReportOptions};
    // Several chunks of many concurrent connections (the benchmark's generator, 20 MB).
    let path = std::env::temp_dir().join(format!("rdpdiag-split-{}.pcap", std::process::id()));
    gen::generate(&path, 20, 7).unwrap();
    let path = path.to_string_lossy().into_owned();
    let opts = ReportOptions::default();
    let line = |d: &rdpdiag::pipeline::Diagnosed| {
        serde_json::to_string(&ConnectionReport::new("x", d, opts)).unwrap()
    };
    // Closed connections leave the table 50 ms after their last packet (not 30 s), so that
    // results finish all along this 1.5 s capture.
    let base = AnalyzeConfig {
        flow: rdpdiag::flow::FlowConfig {
            closed_linger_ns: 50_000_000,
            ..Default::default()
        },
        ..AnalyzeConfig::default()
    };
    let collected = analyze_path(&path, &base);
    assert!(collected.connections.len() > 20);
    let want: Vec<String> = collected.connections.iter().map(line).collect();
    let mut one_thread_streamed = Vec::new();
    let mut keep = |item: Finished| {
        if let Finished::Tcp(d) = item {
            one_thread_streamed.push(line(&d));
        }
        Ok(())
    };
    let run = rdpdiag::pipeline::stream_path(&path, &base, 1, &mut keep);
    assert!(run.released_early);
    let mut sorted = one_thread_streamed.clone();
    sorted.sort();
    let mut sorted_want = want.clone();
    sorted_want.sort();
    assert!(sorted == sorted_want, "streaming lost or changed results");
    // Two threads: the dispatcher analyses some connections itself; with churn, buckets of
    // connections move between the threads at every chunk (whenever one can).
    for (workers, churn) in [(2, false), (2, true), (3, false), (4, false)] {
        let base = AnalyzeConfig {
            split_churn: churn,
            ..base.clone()
        };
        // Collected: the same results in the same order.
        let split = rdpdiag::parallel::analyze_path_parallel(&path, &base, workers);
        let lines: Vec<String> = split.connections.iter().map(line).collect();
        assert!(lines == want, "{workers} workers: collected results differ");
        assert_eq!(split.stats.frames, collected.stats.frames);
        assert_eq!(split.stats.decoded, collected.stats.decoded);
        assert_eq!(split.stats.tcp_connections, collected.stats.tcp_connections);
        assert_eq!(split.stats.last_ts, collected.stats.last_ts);
        // Streamed with a hold of one result: released early, at the same checkpoints and in
        // the same order as by one thread with the same hold.
        let config = AnalyzeConfig {
            workers,
            ..base.clone()
        };
        let mut got = Vec::new();
        let mut keep = |item: Finished| {
            if let Finished::Tcp(d) = item {
                got.push(line(&d));
            }
            Ok(())
        };
        let run = stream_path_parallel(&path, &config, 1, &mut keep);
        assert!(run.released_early, "results were all held to the end");
        if churn {
            assert!(run.rebalanced >= 4, "{} buckets moved", run.rebalanced);
        }
        if got != one_thread_streamed {
            let first = |l: &String| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["first_frame"].as_u64().unwrap()
            };
            let i = got
                .iter()
                .zip(&one_thread_streamed)
                .position(|(a, b)| a != b)
                .unwrap_or(got.len().min(one_thread_streamed.len()));
            panic!(
                "{workers} workers: streamed results differ at {i} of {}/{}: first frames {:?} vs {:?}",
                got.len(),
                one_thread_streamed.len(),
                got.iter().skip(i).take(5).map(first).collect::<Vec<_>>(),
                one_thread_streamed.iter().skip(i).take(5).map(first).collect::<Vec<_>>()
            );
        }
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn streamed_jsonl_equals_the_collected_analysis() {
    use rdpdiag::pipeline::{analyze_path, AnalyzeConfig};
    use rdpdiag::report::{write_jsonl, ReportOptions};
    for cap in super::captures_under(std::path::Path::new("testdata")) {
        let path = cap.to_string_lossy().into_owned();
        // One input: the binary streams its JSON Lines as connections finish.
        let (_, streamed) = run(&["analyze", "--format", "jsonl", &path], &[]);
        let mut collected = Vec::new();
        write_jsonl(
            &mut collected,
            &analyze_path(&path, &AnalyzeConfig::default()),
            ReportOptions::default(),
        )
        .unwrap();
        assert_eq!(streamed, String::from_utf8(collected).unwrap(), "{path}");
    }
}

#[test]
fn fixed_offset_decode_agrees_with_etherparse_on_every_frame() {
    use rdpdiag::capture::{open_input, read_capture, Frame, FrameSink};
    use rdpdiag::decode::{decode_network, ipv4_tcp, network_payload};
    #[derive(Default)]
    struct Check {
        fast: u64,
        frames: u64,
    }
    impl FrameSink for Check {
        fn frame(&mut self, f: &Frame<'_>) {
            self.frames += 1;
            let Some(net) = network_payload(f.linktype, f.data) else {
                return;
            };
            if let Some(fast) = ipv4_tcp(net) {
                assert_eq!(Some(fast), decode_network(net), "frame {}", f.number);
                self.fast += 1;
            }
        }
    }
    let mut files = super::captures_under(std::path::Path::new("testdata"));
    if let Some(c) = std::env::var_os("RDPDIAG_CORPUS") {
        files.extend(super::captures_under(std::path::Path::new(&c)));
    }
    let mut check = Check::default();
    for f in &files {
        if let Ok(src) = open_input(&f.to_string_lossy()) {
            let _ = read_capture(src, &mut check);
        }
    }
    // Most frames of the shipped captures are IPv4/TCP without IP options.
    assert!(
        check.fast * 2 > check.frames,
        "{} of {}",
        check.fast,
        check.frames
    );
}

/// Fewer files than threads: the pool's threads are shared out among the files (here 3 and
/// 2 of 5 threads, split from the first byte), and the output is the single thread's.
#[test]
fn fewer_files_than_threads_share_the_threads_and_print_the_same() {
    use rdpdiag::batch::analyze_in_order;
    use rdpdiag::pipeline::{analyze_path, AnalyzeConfig};
    use rdpdiag::report::{write_jsonl, ReportOptions};
    let files: Vec<String> = [
        "testdata/own/neg-hybrid-required.pcap",
        "testdata/public/nDPI/rdp_over_tls.pcap",
    ]
    .map(String::from)
    .to_vec();
    let opts = ReportOptions::default();
    let mut want = Vec::new();
    for f in &files {
        write_jsonl(&mut want, &analyze_path(f, &AnalyzeConfig::default()), opts).unwrap();
    }
    let config = AnalyzeConfig {
        split_min_bytes: 0,
        ..AnalyzeConfig::default()
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(5)
        .build()
        .unwrap();
    let done = std::sync::Mutex::new(Vec::new());
    let render = |a: rdpdiag::pipeline::FileAnalysis| {
        let mut out = Vec::new();
        write_jsonl(&mut out, &a, opts).unwrap();
        out
    };
    let mut got = Vec::new();
    analyze_in_order(
        &pool,
        &files,
        &config,
        8,
        &|p| done.lock().unwrap().push(p.to_string()),
        &render,
        &mut |bytes| {
            got.extend_from_slice(&bytes);
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(done.lock().unwrap().len(), 2);
    assert_eq!(rdpdiag::batch::thread_shares(files.len(), 5), vec![3, 2]);
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want)
    );
}

#[test]
fn fast_dispatch_endpoints_agree_with_the_full_decode_on_every_frame() {
    use rdpdiag::capture::{open_input, read_capture, Frame, FrameSink};
    use rdpdiag::decode::{decode, tcp_udp_endpoints};
    struct Check {
        fast: u64,
        full: u64,
    }
    impl FrameSink for Check {
        fn frame(&mut self, f: &Frame<'_>) {
            let fast = tcp_udp_endpoints(f.linktype, f.data);
            let full = decode(f.linktype, f.data).and_then(|p| p.endpoints());
            if let (Some(a), Some(b)) = (fast, full) {
                assert_eq!(a, b, "frame {}", f.number);
            }
            self.fast += u64::from(fast.is_some());
            self.full += u64::from(full.is_some());
        }
    }
    let mut files = super::captures_under(std::path::Path::new("testdata"));
    if let Some(c) = std::env::var_os("RDPDIAG_CORPUS") {
        files.extend(super::captures_under(std::path::Path::new(&c)));
    }
    let mut check = Check { fast: 0, full: 0 };
    for f in &files {
        if let Ok(src) = open_input(&f.to_string_lossy()) {
            let _ = read_capture(src, &mut check);
        }
    }
    // Nearly every TCP/UDP frame takes the fast path.
    let corpus = std::env::var_os("RDPDIAG_CORPUS").is_some();
    assert!(
        check.full > if corpus { 10_000 } else { 1_000 },
        "{}",
        check.full
    );
    assert!(
        check.fast * 100 >= check.full * 95,
        "{} of {}",
        check.fast,
        check.full
    );
}
