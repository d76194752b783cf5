//! The human-readable table, followed by each connection's explanation.

use std::io::{self, Write};

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table};

use super::{ConnectionReport, ReportOptions};
use crate::diagnose::{End, EndedBy, Outcome};
use crate::pipeline::{FileAnalysis, Finished};

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

/// Rows per table: a file's connections are printed in tables of at most this many rows,
/// each followed by its connections' explanations, so a file is printed as its connections
/// finish and memory holds one page, not the whole file.
pub const TABLE_PAGE: usize = 1000;

/// What the table of a file is printed with.
#[derive(Debug, Clone, Copy)]
pub struct TableOptions {
    /// Width in columns.
    pub width: u16,
    /// Evidence frames and ladders of every connection.
    pub verbose: bool,
    /// Report options (redaction).
    pub opts: ReportOptions,
    /// ANSI colours for the failing step of ladders.
    pub color: bool,
}

/// Writes `f` as tables of `width` columns (pages of [`TABLE_PAGE`] rows), each followed by
/// one explanation per connection, then the file's summary line. `verbose` adds the evidence
/// frames and the ladder of every connection (`color`: ANSI colours for the failing step).
pub fn write_table(
    out: &mut dyn Write,
    f: &FileAnalysis,
    width: u16,
    verbose: bool,
    opts: ReportOptions,
    color: bool,
) -> io::Result<()> {
    let t = TableOptions {
        width,
        verbose,
        opts,
        color,
    };
    let items = super::items(f);
    for (k, page) in items.chunks(TABLE_PAGE).enumerate() {
        write_page(out, &f.path, page, k * TABLE_PAGE, t)?;
    }
    writeln!(out)?;
    let totals = FileTotals::of(f);
    writeln!(
        out,
        "{}",
        totals.line(
            &f.path,
            f.stats.frames,
            f.problem().map(ToString::to_string)
        )
    )
}

/// Connections of one file by transport and outcome, counted as they are printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileTotals {
    /// TCP connections.
    pub tcp: usize,
    /// RDP-over-UDP transports.
    pub udp: usize,
    /// Both by outcome.
    pub outcomes: super::OutcomeCounts,
}

impl FileTotals {
    /// Counts one connection.
    pub fn add(&mut self, udp: bool, outcome: Outcome) {
        if udp {
            self.udp += 1;
        } else {
            self.tcp += 1;
        }
        match outcome {
            Outcome::Success => self.outcomes.success += 1,
            Outcome::Failure => self.outcomes.failure += 1,
            Outcome::Incomplete => self.outcomes.incomplete += 1,
        }
    }

    /// The totals of an analysed file.
    pub fn of(f: &FileAnalysis) -> Self {
        FileTotals {
            tcp: f.connections.len(),
            udp: f.udp.len(),
            outcomes: super::OutcomeCounts::of(f),
        }
    }

    /// The line summarising the file (`problem`: why reading stopped early).
    pub fn line(&self, path: &str, frames: u64, problem: Option<String>) -> String {
        let c = &self.outcomes;
        let n = self.tcp + self.udp;
        let udp = if self.udp == 0 {
            String::new()
        } else {
            format!(" ({} over UDP)", self.udp)
        };
        let mut s = format!(
            "{path}: {frames} frames, {n} RDP connection{}{udp}: {} success, {} failure, {} incomplete",
            if n == 1 { "" } else { "s" },
            c.success,
            c.failure,
            c.incomplete
        );
        if let Some(e) = problem {
            s.push_str(&format!(" (read stopped early: {e})"));
        }
        s
    }
}

/// A file's table printed page by page as its connections finish (in first-frame order):
/// memory holds at most one page of results.
#[derive(Debug)]
pub struct TableWriter {
    path: String,
    options: TableOptions,
    page_rows: usize,
    page: Vec<Finished>,
    written: usize,
    totals: FileTotals,
}

impl TableWriter {
    /// A writer for the file `path` printing pages of `page_rows` rows ([`TABLE_PAGE`]).
    pub fn new(path: &str, options: TableOptions, page_rows: usize) -> Self {
        TableWriter {
            path: path.to_string(),
            options,
            page_rows: page_rows.max(1),
            page: Vec::new(),
            written: 0,
            totals: FileTotals::default(),
        }
    }

    /// Adds the next connection; prints a page when it is full.
    pub fn push(&mut self, out: &mut dyn Write, item: Finished) -> io::Result<()> {
        match &item {
            Finished::Tcp(d) => self.totals.add(false, d.verdict.outcome),
            Finished::Udp(u) => self.totals.add(true, u.verdict.outcome),
        }
        self.page.push(item);
        if self.page.len() >= self.page_rows {
            self.flush_page(out)?;
        }
        Ok(())
    }

    fn flush_page(&mut self, out: &mut dyn Write) -> io::Result<()> {
        let page = std::mem::take(&mut self.page);
        if page.is_empty() {
            return Ok(());
        }
        let items: Vec<super::Item<'_>> = page.iter().map(super::Item::of).collect();
        write_page(out, &self.path, &items, self.written, self.options)?;
        self.written += items.len();
        Ok(())
    }

    /// Prints what is left and the file's summary line (`frames` read, `problem`: why
    /// reading stopped early).
    pub fn finish(
        mut self,
        out: &mut dyn Write,
        frames: u64,
        problem: Option<String>,
    ) -> io::Result<()> {
        self.flush_page(out)?;
        writeln!(out)?;
        writeln!(out, "{}", self.totals.line(&self.path, frames, problem))
    }
}

/// Writes one page: the table of `items` (numbered from `first + 1`), then their
/// explanations. Pages after the first start with a blank line.
fn write_page(
    out: &mut dyn Write,
    path: &str,
    items: &[super::Item<'_>],
    first: usize,
    t: TableOptions,
) -> io::Result<()> {
    let reports: Vec<ConnectionReport> = items
        .iter()
        .map(|i| match i {
            super::Item::Tcp(d) => ConnectionReport::new(path, d, t.opts),
            super::Item::Udp(u) => ConnectionReport::udp(path, u),
        })
        .collect();
    if reports.is_empty() {
        return Ok(());
    }
    if first > 0 {
        writeln!(out)?;
    }
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(t.width)
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
            Cell::new(first + i + 1).set_alignment(CellAlignment::Right),
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
    for (i, (r, item)) in reports.iter().zip(items).enumerate() {
        writeln!(out)?;
        writeln!(
            out,
            "#{} {} -> {}  [{}, {}]",
            first + i + 1,
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
        if t.verbose {
            writeln!(out, "   evidence:")?;
            for e in &r.evidence {
                writeln!(out, "     frame {:>7}  {}  {}", e.frame, e.time, e.what)?;
            }
            for n in &r.notes {
                writeln!(out, "   note: {n}")?;
            }
            match item {
                super::Item::Tcp(d) => {
                    writeln!(out, "   ladder:")?;
                    super::write_ladder(out, d, t.color)?;
                }
                super::Item::Udp(u) => {
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
            }
        } else if let Some(n) = r.notes.first() {
            writeln!(out, "   note: {n}")?;
        }
    }
    Ok(())
}
