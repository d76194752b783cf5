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
