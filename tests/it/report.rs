//! Pictures: golden terminal ladders, and the HTML report checked in a real headless
//! Chromium (skipped with a message when no Chromium is installed; .ci/run installs it).

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_rdpdiag");

const LADDERS: [&str; 5] = [
    "testdata/own/tls-version-mismatch.pcap",
    "testdata/own/mtu-blackhole.pcap",
    "testdata/public/zeek/rdp-proprietary-encryption.pcap",
    "testdata/public/nDPI/rdp_over_tls.pcap",
    "testdata/own/neg-hybrid-required.pcap",
];

#[test]
fn terminal_ladders_match_golden_text() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    for cap in LADDERS {
        let out = Command::new(BIN)
            .args(["analyze", "-v", "--width", "100", cap])
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            !text.contains('\x1b'),
            "no colour codes when not a terminal"
        );
        let name = Path::new(cap).file_name().unwrap().to_string_lossy();
        let golden = Path::new("testdata/golden/ladder").join(format!("{name}.txt"));
        if update {
            std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
            std::fs::write(&golden, &text).unwrap();
        }
        assert_eq!(
            text,
            std::fs::read_to_string(&golden).unwrap_or_default(),
            "ladder of {cap} differs from {}",
            golden.display()
        );
    }
}

fn html_report(inputs: &[&str], name: &str) -> (std::path::PathBuf, Vec<serde_json::Value>) {
    let dir = std::env::temp_dir().join(format!("rdpdiag-html-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let html = dir.join(name);
    let mut args = vec![
        "analyze",
        "--format",
        "jsonl",
        "--port",
        "13389",
        "--html",
        html.to_str().unwrap(),
    ];
    args.extend_from_slice(inputs);
    let out = Command::new(BIN).args(&args).output().unwrap();
    let rows = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .collect();
    (html, rows)
}

#[test]
fn html_report_has_one_ladder_per_connection_with_the_failing_step_marked() {
    let (html, rows) = html_report(&["testdata/own", "testdata/public"], "all.html");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!doctype html>"));
    assert!(
        !page.contains("http://")
            || page
                .matches("http://")
                .all(|_| page.contains("xmlns=\"http://www.w3.org/2000/svg\"")),
        "no external assets"
    );
    assert!(
        !page.contains("<link") && !page.contains("src=\""),
        "self-contained"
    );
    assert_eq!(
        page.matches("<script type=\"text/html\" id=\"ladder-")
            .count(),
        rows.len()
    );
    for (i, r) in rows.iter().enumerate() {
        let start = page
            .find(&format!("<script type=\"text/html\" id=\"ladder-{i}\">"))
            .unwrap();
        let svg = &page[start..start + page[start..].find("</script>").unwrap()];
        let failing = r["outcome"] != "success";
        assert_eq!(
            svg.contains("class=\"rung fail\""),
            failing && r["key_frame"].is_u64(),
            "connection {i} ({})",
            r["cause"]
        );
        if let Some(k) = r["key_frame"].as_u64().filter(|_| failing) {
            assert!(
                svg.contains(&format!("class=\"rung fail\" data-frame=\"{k}\"")),
                "failing rung at the key frame {k}"
            );
        }
    }
}

fn chromium() -> Option<&'static str> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

fn headless(args: &[&str]) -> std::process::Output {
    let profile = std::env::temp_dir().join(format!(
        "rdpdiag-chromium-{}-{}",
        std::process::id(),
        args.len()
    ));
    let mut cmd = Command::new(chromium().unwrap());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--virtual-time-budget=3000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args);
    cmd.output().unwrap()
}

#[test]
fn html_report_renders_in_chromium_without_errors() {
    if chromium().is_none() {
        eprintln!("SKIPPED: no Chromium installed (apt-get install chromium; .ci/run does)");
        return;
    }
    let (html, rows) = html_report(
        &[
            "testdata/own/tls-version-mismatch.pcap",
            "testdata/public/zeek/rdp-proprietary-encryption.pcap",
        ],
        "few.html",
    );
    let url = format!("file://{}#all", html.display());
    let out = headless(&["--dump-dom", &url]);
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("data-ready=\"1\""),
        "the script ran: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dom.contains("data-errors=\"0\""), "no script errors");
    // Every ladder was rendered into its slot by the page's script (#all opens them all).
    assert_eq!(
        dom.matches("<div class=\"ladder-slot\"><svg class=\"ladder\"")
            .count(),
        rows.len()
    );
    // The TLS version mismatch: the failing rung is the server's protocol_version alert (frame 9).
    assert_eq!(rows[0]["cause"], "tls_version_mismatch");
    assert_eq!(rows[0]["key_frame"], 9);
    assert!(dom.contains("class=\"rung fail\" data-frame=\"9\""));
    assert!(dom.contains("✗ TLS alert fatal protocol_version (70)"));
    // A screenshot of it (look at target/ladder.png when changing the report).
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ladder.png");
    let out = headless(&[
        "--window-size=1100,1600",
        &format!("--screenshot={}", shot.display()),
        &url,
    ]);
    assert!(
        out.status.success() && shot.exists() && std::fs::metadata(&shot).unwrap().len() > 10_000
    );
}

/// The analyses of the shipped captures (RDP on 3389 and 13389).
fn shipped() -> Vec<rdpdiag::pipeline::FileAnalysis> {
    let mut config = rdpdiag::pipeline::AnalyzeConfig::default();
    config.rdp_ports.push(13389);
    ["testdata/own", "testdata/public"]
        .iter()
        .flat_map(|d| super::captures_under(Path::new(d)))
        .map(|p| rdpdiag::pipeline::analyze_path(&p.to_string_lossy(), &config))
        .collect()
}

/// The HTML report built as connections arrive, its parts moved to temporary files, is the
/// page built from the connections held in memory, byte for byte.
#[test]
fn html_report_spilled_to_temporary_files_is_the_same_page() {
    use rdpdiag::report::{self, HtmlConnection, HtmlWriter, ReportOptions};
    let opts = ReportOptions {
        redact: false,
        timeline: false,
    };
    let mut conns = Vec::new();
    let mut b = rdpdiag::summary::SummaryBuilder::new();
    for a in shipped() {
        b.add_file(&a.path, a.problem().map(ToString::to_string));
        for item in report::items(&a) {
            let (r, rungs) = match item {
                report::Item::Tcp(d) => (
                    report::ConnectionReport::new(&a.path, d, opts),
                    report::ladder(d),
                ),
                report::Item::Udp(u) => (
                    report::ConnectionReport::udp(&a.path, u),
                    report::udp_rungs(u),
                ),
            };
            b.add_report(&serde_json::to_value(&r).unwrap());
            conns.push(HtmlConnection { report: r, rungs });
        }
    }
    let summary = b.build();
    assert!(conns.len() >= 60, "{} connections", conns.len());
    let mut in_memory = Vec::new();
    report::write_html(&mut in_memory, "t", &conns, &summary).unwrap();
    let mut w = HtmlWriter::with_spill_limit(1024);
    for c in &conns {
        w.add(c).unwrap();
    }
    assert!(w.spilled());
    assert_eq!(w.len(), conns.len());
    let mut spilled = Vec::new();
    w.finish(&mut spilled, "t", &summary).unwrap();
    assert!(in_memory.len() > 100_000);
    assert!(
        in_memory == spilled,
        "spilled page differs from the page built in memory"
    );
    // Every connection has its row and its ladder; the strip chart one mark each.
    let page = String::from_utf8(spilled).unwrap();
    assert_eq!(page.matches("<tr class=\"conn\"").count(), conns.len());
    assert_eq!(
        page.matches("<script type=\"text/html\"").count(),
        conns.len()
    );
    assert_eq!(page.matches("height=\"16\" fill=").count(), conns.len());
}

/// A file's table printed in pages: each page a table with its header and the explanations
/// of its rows, numbered on across pages; the explanations and the closing line are those of
/// the single table.
#[test]
fn table_pages_number_on_and_keep_every_explanation() {
    use rdpdiag::pipeline::Finished;
    use rdpdiag::report::{write_table, ReportOptions, TableOptions, TableWriter};
    let opts = ReportOptions {
        redact: false,
        timeline: false,
    };
    let t = TableOptions {
        width: 100,
        verbose: true,
        opts,
        color: false,
    };
    let explanations = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !l.starts_with(['┌', '│', '╞', '├', '└', '╭', '┆']))
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    };
    let mut checked = 0;
    for a in shipped() {
        let n = a.connections.len() + a.udp.len();
        if n < 2 {
            continue;
        }
        // Pages of 2 (the last one short) where there are enough rows, else of 1.
        let page = if n >= 3 { 2 } else { 1 };
        let mut one = Vec::new();
        write_table(&mut one, &a, 100, true, opts, false).unwrap();
        let one = String::from_utf8(one).unwrap();
        let mut paged = Vec::new();
        let mut w = TableWriter::new(&a.path, t, page);
        let problem = a.problem().map(ToString::to_string);
        let frames = a.stats.frames;
        let mut items: Vec<Finished> = a
            .connections
            .into_iter()
            .map(|d| Finished::Tcp(Box::new(d)))
            .chain(a.udp.into_iter().map(|u| Finished::Udp(Box::new(u))))
            .collect();
        items.sort_by_key(Finished::first_frame);
        for item in items {
            w.push(&mut paged, item).unwrap();
        }
        w.finish(&mut paged, frames, problem).unwrap();
        let paged = String::from_utf8(paged).unwrap();
        assert_eq!(
            paged
                .lines()
                .filter(|l| l.starts_with("│ #") && l.contains("start (UTC)"))
                .count(),
            n.div_ceil(page),
            "{paged}"
        );
        let rows: Vec<usize> = paged
            .lines()
            .filter_map(|l| l.strip_prefix('│'))
            .filter_map(|l| l.split('┆').next()?.trim().parse().ok())
            .collect();
        assert_eq!(rows, (1..=n).collect::<Vec<_>>());
        // Same explanations, ladders and closing line; the inferred-phase footnote may
        // appear once per page.
        let foot = "* phase inferred from the sizes of encrypted records";
        let strip =
            |v: Vec<String>| -> Vec<String> { v.into_iter().filter(|l| l != foot).collect() };
        assert_eq!(strip(explanations(&paged)), strip(explanations(&one)));
        assert_eq!(paged.lines().last(), one.lines().last());
        checked += 1;
    }
    assert!(
        checked >= 5,
        "captures with 2 or more connections: {checked}"
    );
}

/// README's causes table is the user's reference: one row per cause code, with the meaning
/// the tool prints (src/diagnose/causes.rs is the single source).
#[test]
fn readme_causes_table_matches_the_cause_codes() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let table: Vec<&str> = readme
        .lines()
        .skip_while(|l| *l != "| cause | meaning |")
        .skip(2)
        .take_while(|l| l.starts_with("| `"))
        .collect();
    let codes: Vec<&str> = rdpdiag::diagnose::causes::CAUSES
        .iter()
        .map(|c| c.code)
        .collect();
    for c in rdpdiag::diagnose::causes::CAUSES {
        let row = format!("| `{}` | {} |", c.code, c.meaning);
        assert!(
            table.contains(&row.as_str()),
            "README lacks or words differently: {row}"
        );
    }
    for row in &table {
        let code = row.split('`').nth(1).unwrap_or_default();
        assert!(
            codes.contains(&code),
            "README lists an unknown cause: {row}"
        );
    }
}

/// The JSON Lines writer (`report::write_json`, faster string escaping) writes every report
/// of every shipped capture, and of the corpus when it is at hand, byte for byte as
/// serde_json does: plain, redacted, and with the timeline; a batch's lines appended in
/// memory (`append_jsonl`) are the streamed ones.
#[test]
fn appended_json_lines_are_the_streamed_ones_on_real_captures() {
    use rdpdiag::pipeline::{analyze_path, AnalyzeConfig};
    use rdpdiag::report::{append_jsonl, reports, write_jsonl, ReportOptions};
    let mut caps = super::captures_under(Path::new("testdata"));
    match std::env::var_os("RDPDIAG_CORPUS") {
        Some(c) => caps.extend(super::captures_under(Path::new(&c))),
        None => eprintln!("SKIPPED (corpus part): RDPDIAG_CORPUS is not set"),
    }
    let mut config = AnalyzeConfig::default();
    config.rdp_ports.push(13389);
    let mut checked = 0;
    for cap in caps {
        let analysis = analyze_path(&cap.to_string_lossy(), &config);
        for (redact, timeline) in [(false, false), (true, false), (false, true)] {
            let opts = ReportOptions { redact, timeline };
            // The batch's in-memory lines are the streamed ones, a report a line.
            let (mut streamed, mut appended) = (Vec::new(), b"before\n".to_vec());
            write_jsonl(&mut streamed, &analysis, opts).unwrap();
            append_jsonl(&mut appended, &analysis, opts).unwrap();
            assert!(appended[7..] == streamed[..], "{}", cap.display());
            let mut want = Vec::new();
            for r in reports(&analysis, opts) {
                want.extend(serde_json::to_vec(&r).unwrap());
                want.push(b'\n');
                checked += 1;
            }
            assert!(streamed == want, "{}", cap.display());
        }
    }
    assert!(checked > 100, "{checked} reports");
}
