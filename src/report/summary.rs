//! Printing a batch summary: tables for people, one JSON object for machines.

use std::io::{self, Write};

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};

use crate::summary::{Keyed, Summary};

fn keyed_table(title: &str, rows: &[Keyed], width: u16, limit: usize) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(width)
        .set_header(vec![
            title,
            "connections",
            "success",
            "failure",
            "incomplete",
        ]);
    for k in rows.iter().take(limit) {
        let o = &k.outcomes;
        t.add_row(vec![
            k.key.clone(),
            o.total.to_string(),
            o.success.to_string(),
            o.failure.to_string(),
            o.incomplete.to_string(),
        ]);
    }
    t
}

/// Writes the summary as tables.
pub fn write_summary_table(out: &mut dyn Write, s: &Summary, width: u16) -> io::Result<()> {
    writeln!(out)?;
    writeln!(
        out,
        "== summary: {} files ({} with read errors)",
        s.files, s.files_with_errors
    )?;
    let c = &s.connections;
    writeln!(
        out,
        "connections: {} ({} success, {} failure, {} incomplete)",
        c.total, c.success, c.failure, c.incomplete
    )?;
    let a = &s.attempts;
    writeln!(
        out,
        "attempts:    {} ({} success, {} failure, {} incomplete) by final outcome",
        a.total, a.success, a.failure, a.incomplete
    )?;
    if s.evicted_connections > 0 {
        writeln!(
            out,
            "evicted by the connection-table limit: {} connections (see their notes)",
            s.evicted_connections
        )?;
    }
    let kinds: Vec<String> = s
        .attempt_kinds
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    writeln!(out, "attempt kinds: {}", kinds.join(", "))?;
    if !s.failures_by_cause.is_empty() {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(width)
            .set_header(vec!["failure cause", "connections"]);
        for k in &s.failures_by_cause {
            t.add_row(vec![k.key.clone(), k.outcomes.total.to_string()]);
        }
        writeln!(out, "{t}")?;
    }
    if !s.top_failing_servers.is_empty() {
        writeln!(
            out,
            "{}",
            keyed_table("top failing servers", &s.top_failing_servers, width, 10)
        )?;
    }
    writeln!(out, "{}", keyed_table("client", &s.by_client, width, 20))?;
    writeln!(out, "{}", keyed_table("hour (UTC)", &s.by_hour, width, 48))?;
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(width)
        .set_header(vec![
            "file",
            "connections",
            "success",
            "failure",
            "incomplete",
            "error",
        ]);
    for f in &s.per_file {
        let o = &f.outcomes;
        t.add_row(vec![
            f.file.clone(),
            o.total.to_string(),
            o.success.to_string(),
            o.failure.to_string(),
            o.incomplete.to_string(),
            f.error.clone().unwrap_or_default(),
        ]);
    }
    writeln!(out, "{t}")?;
    if !s.notable_attempts.is_empty() {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(width)
            .set_header(vec![
                "attempt start",
                "client -> server",
                "connections",
                "kind",
                "final",
            ]);
        for a in s.notable_attempts.iter().take(20) {
            t.add_row(vec![
                a.start.clone(),
                format!("{} -> {}", a.client, a.server),
                a.connections.to_string(),
                a.kind.to_string(),
                format!("{} ({})", a.final_outcome, a.final_cause),
            ]);
        }
        writeln!(out, "{t}")?;
    }
    Ok(())
}

/// Writes the summary as one JSON line with `"type": "summary"`.
pub fn write_summary_json(out: &mut dyn Write, s: &Summary) -> io::Result<()> {
    serde_json::to_writer(&mut *out, s)?;
    out.write_all(b"\n")
}
