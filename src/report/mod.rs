//! Stage 7: the only code that prints. A table for people (comfy-table), JSON Lines for
//! machines, and per-file summaries. Every writer takes a `Write`; table width is a
//! parameter, never taken from the terminal inside the library.

mod html;
mod ladder;
mod model;
mod stream;
mod summary;
mod table;
mod udp;

use std::io::{self, Write};

pub use html::{
    esc, ladder_svg, wireshark_filter, write_html, HtmlConnection, HtmlWriter, SPILL_BYTES,
};
pub use ladder::{ladder, udp_rungs, write_ladder, Rung};
pub use model::{endpoint, AlertReport, ConnectionReport, McsReport, ReportOptions, TlsReport};
pub use stream::TableStream;
pub use summary::{write_summary_json, write_summary_table};
pub use table::{write_table, FileTotals, TableOptions, TableWriter, TABLE_PAGE};
pub use udp::UdpReport;

use crate::diagnose::Outcome;
use crate::pipeline::FileAnalysis;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human-readable table.
    Table,
    /// One JSON object per line.
    Jsonl,
}

/// Counts of outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct OutcomeCounts {
    /// Successful connections.
    pub success: usize,
    /// Failed connections.
    pub failure: usize,
    /// Connections whose outcome the capture does not show.
    pub incomplete: usize,
}

impl OutcomeCounts {
    /// Counts the outcomes of a file's connections.
    pub fn of(f: &FileAnalysis) -> Self {
        let mut c = OutcomeCounts::default();
        let outcomes = f
            .connections
            .iter()
            .map(|d| d.verdict.outcome)
            .chain(f.udp.iter().map(|u| u.verdict.outcome));
        for o in outcomes {
            match o {
                Outcome::Success => c.success += 1,
                Outcome::Failure => c.failure += 1,
                Outcome::Incomplete => c.incomplete += 1,
            }
        }
        c
    }
}

/// One line summarising a file.
pub fn file_summary_line(f: &FileAnalysis) -> String {
    FileTotals::of(f).line(
        &f.path,
        f.stats.frames,
        f.problem().map(ToString::to_string),
    )
}

/// A file's TCP connections and UDP transports in order of their first frame.
#[derive(Clone, Copy)]
pub enum Item<'a> {
    /// A TCP connection.
    Tcp(&'a crate::pipeline::Diagnosed),
    /// An RDP-over-UDP transport.
    Udp(&'a crate::pipeline::UdpDiagnosed),
}

impl<'a> Item<'a> {
    /// The item of a finished connection.
    pub fn of(f: &'a crate::pipeline::Finished) -> Self {
        match f {
            crate::pipeline::Finished::Tcp(d) => Item::Tcp(d),
            crate::pipeline::Finished::Udp(u) => Item::Udp(u),
        }
    }
}

/// The items of a file in order of first frame.
pub fn items(f: &FileAnalysis) -> Vec<Item<'_>> {
    let mut v: Vec<(u64, Item<'_>)> = f
        .connections
        .iter()
        .map(|d| (d.record.meta.first.number, Item::Tcp(d)))
        .collect();
    v.extend(f.udp.iter().map(|u| (u.meta.first.number, Item::Udp(u))));
    v.sort_by_key(|(n, _)| *n);
    v.into_iter().map(|(_, i)| i).collect()
}

/// The reports of a file's connections (TCP and UDP) in order of first frame.
pub fn reports(f: &FileAnalysis, opts: ReportOptions) -> Vec<ConnectionReport> {
    items(f)
        .into_iter()
        .map(|i| report_of(f, i, opts))
        .collect()
}

/// The report of one item of `f`.
fn report_of(f: &FileAnalysis, item: Item<'_>, opts: ReportOptions) -> ConnectionReport {
    match item {
        Item::Tcp(d) => ConnectionReport::new(&f.path, d, opts),
        Item::Udp(u) => ConnectionReport::udp(&f.path, u),
    }
}

/// Writes one file's connections as JSON Lines.
pub fn write_jsonl(out: &mut dyn Write, f: &FileAnalysis, opts: ReportOptions) -> io::Result<()> {
    // Each line is built in a buffer of our own and written whole (a virtual call per token
    // through `dyn Write` otherwise); one report at a time.
    let mut line = Vec::with_capacity(4096);
    for item in items(f) {
        line.clear();
        serde_json::to_writer(&mut line, &report_of(f, item, opts))?;
        line.push(b'\n');
        out.write_all(&line)?;
    }
    Ok(())
}

/// [`write_jsonl`] appending to a vector (a batch formats each file in memory): the lines
/// are written in place, and room for all of them is made after the first, from its
/// length, rather than by doubling (each doubling copies what came before).
pub fn append_jsonl(out: &mut Vec<u8>, f: &FileAnalysis, opts: ReportOptions) -> io::Result<()> {
    let items = items(f);
    let count = items.len();
    for (i, item) in items.into_iter().enumerate() {
        let before = out.len();
        serde_json::to_writer(&mut *out, &report_of(f, item, opts))?;
        out.push(b'\n');
        if i == 0 {
            let line = out.len() - before;
            out.reserve((count - 1).saturating_mul(line + line / 4));
        }
    }
    Ok(())
}
