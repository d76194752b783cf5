//! Stage 7: the only code that prints. A table for people (comfy-table), JSON Lines for
//! machines, and per-file summaries. Every writer takes a `Write`; table width is a
//! parameter, never taken from the terminal inside the library.

mod html;
mod ladder;
mod model;
mod stream;
mod summary;
mod table;

use std::io::{self, Write};

pub use html::{esc, ladder_svg, wireshark_filter, write_html, HtmlConnection};
pub use ladder::{ladder, write_ladder, Rung};
pub use model::{endpoint, AlertReport, ConnectionReport, McsReport, ReportOptions, TlsReport};
pub use stream::TableStream;
pub use summary::{write_summary_json, write_summary_table};
pub use table::write_table;

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
        for d in &f.connections {
            match d.verdict.outcome {
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
    let c = OutcomeCounts::of(f);
    let mut s = format!(
        "{}: {} frames, {} RDP connection{}: {} success, {} failure, {} incomplete",
        f.path,
        f.stats.frames,
        f.connections.len(),
        if f.connections.len() == 1 { "" } else { "s" },
        c.success,
        c.failure,
        c.incomplete
    );
    if let Some(e) = f.problem() {
        s.push_str(&format!(" (read stopped early: {e})"));
    }
    s
}

/// Writes one file's connections as JSON Lines.
pub fn write_jsonl(out: &mut dyn Write, f: &FileAnalysis, opts: ReportOptions) -> io::Result<()> {
    for d in &f.connections {
        let r = ConnectionReport::new(&f.path, d, opts);
        serde_json::to_writer(&mut *out, &r)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
