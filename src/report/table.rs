//! The human-readable table, followed by each connection's explanation.

use std::io::{self, Write};

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table};

use super::{file_summary_line, ConnectionReport, ReportOptions};
use crate::diagnose::{End, EndedBy, Outcome};
use crate::pipeline::FileAnalysis;

/// "client rst", "server neg_failure", "- capture_end": who ended a connection and how.
pub(super) fn ended(by: EndedBy, end: End) -> String {
    let by = match by {
        EndedBy::Client => "client",
        EndedBy::Server => "server",
        EndedBy::Network => "network",
        EndedBy::None => "-",
    };
    let end = serde_json::to_value(end)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    format!("{by} {end}")
}

/// The short outcome marker of the tables.
pub(super) fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Success => "ok",
        Outcome::Failure => "FAIL",
        Outcome::Incomplete => "?",
    }
}

/// Writes `f` as a table of `width` columns, then one explanation per connection.
/// `verbose` adds the evidence frames and the ladder of every connection (`color`: ANSI
/// colours for the failing step).
pub fn write_table(
    out: &mut dyn Write,
    f: &FileAnalysis,
    width: u16,
    verbose: bool,
    opts: ReportOptions,
    color: bool,
) -> io::Result<()> {
    let items = super::items(f);
    let reports: Vec<ConnectionReport> = super::reports(f, opts);
    if !reports.is_empty() {
        let mut table = Table::new();
        table
            .load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(width)
            .set_header(vec![
                "#",
                "start (UTC)",
                "client -> server",
                "phase",
                "result",
                "cause",
                "ended by",
                "frame",
            ]);
        for (i, r) in reports.iter().enumerate() {
            let start = r.start.get(..23).unwrap_or(&r.start).replace('T', " ");
            let key = r.key_frame.unwrap_or(r.last_frame);
            table.add_row(vec![
                Cell::new(i + 1).set_alignment(CellAlignment::Right),
                Cell::new(start),
                Cell::new(if r.transport == "udp" {
                    format!("{} -> {} (udp)", r.client, r.server)
                } else {
                    format!("{} -> {}", r.client, r.server)
                }),
                Cell::new(format!(
                    "{}{}",
                    r.phase.name(),
                    if r.phase_inferred { "*" } else { "" }
                )),
                Cell::new(outcome_name(r.outcome)),
                Cell::new(r.cause),
                Cell::new(ended(r.ended_by, r.end)),
                Cell::new(key).set_alignment(CellAlignment::Right),
            ]);
        }
        writeln!(out, "{table}")?;
        if reports.iter().any(|r| r.phase_inferred) {
            writeln!(out, "* phase inferred from the sizes of encrypted records")?;
        }
    }
    for (i, r) in reports.iter().enumerate() {
        writeln!(out)?;
        writeln!(
            out,
            "#{} {} -> {}  [{}, {}]",
            i + 1,
            r.client,
            r.server,
            r.cause,
            r.confidence.name()
        )?;
        writeln!(out, "   {}", r.summary)?;
        if let Some(e) = &r.client_error {
            let ext = e
                .extended
                .as_ref()
                .map_or(String::new(), |x| format!(", extended code {x}"));
            writeln!(
                out,
                "   the Windows client most likely shows: {} ({}){ext}",
                e.code, e.name
            )?;
        }
        if r.outcome != Outcome::Success {
            writeln!(out, "   what to do: {}", r.remedy)?;
        }
        if verbose {
            writeln!(out, "   evidence:")?;
            for e in &r.evidence {
                writeln!(out, "     frame {:>7}  {}  {}", e.frame, e.time, e.what)?;
            }
            for n in &r.notes {
                writeln!(out, "   note: {n}")?;
            }
            match items.get(i) {
                Some(super::Item::Tcp(d)) => {
                    writeln!(out, "   ladder:")?;
                    super::write_ladder(out, d, color)?;
                }
                Some(super::Item::Udp(u)) => {
                    writeln!(out, "   datagrams:")?;
                    for e in &u.session.timeline {
                        let rel = e.frame.ts.nanos_since(u.meta.first.ts) as f64 / 1e9;
                        let arrow = if e.dir == crate::flow::Dir::ToServer {
                            "C->S"
                        } else {
                            "S->C"
                        };
                        writeln!(
                            out,
                            "     frame {:>7}  +{rel:>9.3}s  {arrow}  {}",
                            e.frame.number, e.what
                        )?;
                    }
                }
                None => {}
            }
        } else if let Some(n) = r.notes.first() {
            writeln!(out, "   note: {n}")?;
        }
    }
    writeln!(out)?;
    writeln!(out, "{}", file_summary_line(f))
}
