//! The public corpus (../shared/corpus/public, pointed to by RDPDIAG_CORPUS): every capture
//! is analysed without error, and each TCP connection of expected.tsv gets the phase tshark
//! showed and first-close evidence (side, kind and frame number) that tshark agrees with.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rdpdiag::capture::CaptureError;
use rdpdiag::pipeline::{analyze_path, AnalyzeConfig, FileAnalysis};
use rdpdiag::report::{ConnectionReport, ReportOptions};

fn corpus() -> Option<PathBuf> {
    match std::env::var_os("RDPDIAG_CORPUS") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            eprintln!("SKIPPED: RDPDIAG_CORPUS is not set (point it at ../shared/corpus/public; .ci/run does)");
            None
        }
    }
}

const PHASES: [&str; 11] = [
    "tcp_syn",
    "tcp_established",
    "x224_request",
    "x224_confirm",
    "tls_handshake",
    "tls_established",
    "credssp",
    "mcs_connect",
    "licensing",
    "capabilities",
    "rdp_session",
];

/// Connections of expected.tsv that are out of this analyser's scope for now, with why.
const OUT_OF_SCOPE: [(&str, &str); 0] = [];

/// Splits a Markdown table row on unescaped pipes.
fn md_cells(line: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cur.push('|');
                chars.next();
            }
            '|' => cells.push(std::mem::take(&mut cur).trim().to_string()),
            _ => cur.push(c),
        }
    }
    cells
}

/// A FIN or RST of MANIFEST: kind ("FIN"/"RST"), side, frame.
type Close = (String, String, u64);

/// MANIFEST's per-connection "FIN / RST (side@frame)" column: (file, client) -> closes.
fn manifest_closes(dir: &Path) -> HashMap<(String, String), Vec<Close>> {
    let text = std::fs::read_to_string(dir.join("MANIFEST.md")).unwrap();
    let mut map = HashMap::new();
    for line in text.lines().filter(|l| l.starts_with("| ")) {
        let c = md_cells(line);
        // | file | # | transport | client → server | ... | FIN / RST | ...
        if c.len() < 17 || !c[3].starts_with("tcp") || !c[4].contains('→') {
            continue;
        }
        let client = c[4].split('→').next().unwrap().trim().to_string();
        let mut closes = Vec::new();
        for part in c[15].split(';') {
            let part = part.trim();
            let Some((kind, rest)) = part.split_once(' ') else {
                continue;
            };
            for item in rest.split(',') {
                if let Some((side, frame)) = item.trim().split_once('@') {
                    if let Ok(f) = frame.parse() {
                        closes.push((kind.to_string(), side.to_string(), f));
                    }
                }
            }
        }
        map.insert((c[1].clone(), client), closes);
    }
    map
}

fn analyse(
    dir: &Path,
    file: &str,
    cache: &mut HashMap<String, FileAnalysis>,
) -> Vec<ConnectionReport> {
    let a = cache.entry(file.to_string()).or_insert_with(|| {
        analyze_path(&dir.join(file).to_string_lossy(), &AnalyzeConfig::default())
    });
    let mut v: Vec<ConnectionReport> = a
        .connections
        .iter()
        .map(|d| ConnectionReport::new(file, d, ReportOptions::default()))
        .collect();
    v.extend(a.udp.iter().map(|u| ConnectionReport::udp(file, u)));
    v
}

#[test]
fn every_corpus_capture_is_analysed() {
    let Some(dir) = corpus() else { return };
    let files = super::captures_under(&dir);
    assert!(files.len() >= 49, "corpus has {} captures", files.len());
    for f in files {
        let a = analyze_path(&f.to_string_lossy(), &AnalyzeConfig::default());
        match a.problem() {
            None => {}
            // tshark agrees: "appears to have been cut short in the middle of a packet".
            Some(CaptureError::Truncated { offset, .. })
                if f.ends_with("Intro_Traffic_Analysis/rdp.pcap") && *offset == 1_194_407 =>
            {
                assert_eq!(
                    a.stats.frames, 5967,
                    "frames before the cut, as capinfos counts"
                );
            }
            Some(e) => panic!("{}: {e}", f.display()),
        }
    }
}

#[test]
fn expected_tsv_phases_and_closes_agree() {
    let Some(dir) = corpus() else { return };
    let tsv = std::fs::read_to_string(dir.join("expected.tsv")).unwrap();
    let closes = manifest_closes(&dir);
    let mut cache = HashMap::new();
    let mut lines = tsv.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (fc, cc, sc, tc, pc, ec, hc) = (
        col("file"),
        col("client"),
        col("server"),
        col("transport"),
        col("phase"),
        col("ended_by"),
        col("end_how"),
    );
    let mut checked = 0;
    let mut failures = Vec::new();
    for line in lines {
        let row: Vec<&str> = line.split('\t').collect();
        // RD Gateway rows: the gateway connection (a TCP connection with a `gateway` object);
        // the phase is the tunnelled RDP connection's, the first close the outer TCP's.
        let gateway_row = row[tc] == "tcp/rdg-websocket";
        let transport = if gateway_row { "tcp" } else { row[tc] };
        if let Some((_, why)) = OUT_OF_SCOPE.iter().find(|(f, _)| *f == row[fc]) {
            eprintln!("not checked: {} {}: {why}", row[fc], row[cc]);
            continue;
        }
        let reports = analyse(&dir, row[fc], &mut cache);
        let Some(r) = reports
            .iter()
            .find(|r| r.client == row[cc] && r.server == row[sc] && r.transport == transport)
        else {
            failures.push(format!("{} {}: connection not reported", row[fc], row[cc]));
            continue;
        };
        checked += 1;
        if gateway_row && r.gateway.is_none() {
            failures.push(format!(
                "{} {}: not recognised as an RD Gateway connection",
                row[fc], row[cc]
            ));
        }
        let want = match row[pc] {
            // No tunnel, so no inner phase: the gateway's own failure is the verdict.
            "?" if gateway_row => {
                if !r.cause.starts_with("gateway_") {
                    failures.push(format!(
                        "{} {}: cause {}, expected a gateway failure",
                        row[fc], row[cc], r.cause
                    ));
                }
                r.phase.name()
            }
            "negotiation_failure" => "x224_confirm",
            "closed" | "rdp_session/data" => "rdp_session",
            p => p,
        };
        let got = r.phase.name();
        let ok = got == want
            || (want == "credssp"
                && PHASES.iter().position(|p| *p == got)
                    >= PHASES.iter().position(|p| *p == "credssp"));
        if !ok {
            failures.push(format!(
                "{} {}: phase {got}, tshark shows {want}",
                row[fc], row[cc]
            ));
        }
        // The first FIN/RST as evidence, matching tshark's side, kind and frame number.
        let first_close = r.evidence.iter().find(|e| e.what.contains("(first close)"));
        let expected_close = closes
            .get(&(row[fc].to_string(), row[cc].to_string()))
            .and_then(|c| c.iter().min_by_key(|x| x.2).cloned());
        match (row[ec], first_close, expected_close) {
            ("none", None, _) => {}
            ("none", Some(e), _) => failures.push(format!(
                "{} {}: close at frame {} but tshark shows none",
                row[fc], row[cc], e.frame
            )),
            (side, Some(e), Some((kind, _, frame))) => {
                let good = e.what.starts_with(side)
                    && e.what.contains(&format!("TCP {kind}"))
                    && e.frame == frame;
                if !good || row[hc] != kind.to_lowercase() {
                    failures.push(format!(
                        "{} {}: first close '{}' at {}, tshark: {side} {kind} at {frame}",
                        row[fc], row[cc], e.what, e.frame
                    ));
                }
            }
            // MANIFEST gives RD Gateway rows' closes without frame numbers (tests/it/gateway.rs
            // checks those against tshark): side and kind only.
            (side, Some(e), None) if gateway_row => {
                let kind = row[hc].to_uppercase();
                if !e.what.starts_with(side) || !e.what.contains(&format!("TCP {kind}")) {
                    failures.push(format!(
                        "{} {}: first close '{}', tshark: {side} {kind}",
                        row[fc], row[cc], e.what
                    ));
                }
            }
            (side, got, want) => failures.push(format!(
                "{} {}: first close {got:?}, expected {side} {want:?}",
                row[fc], row[cc]
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked >= 58, "only {checked} connections checked");
}
