//! The streaming table of live capture: one row per verdict as it comes, with fixed column
//! widths (nothing is buffered), each followed by its summary and remedy.

use std::io::{self, Write};

use super::ConnectionReport;
use crate::diagnose::Outcome;

/// Column widths: #, start (UTC), event, client -> server, phase, result, ended by, frame.
/// The cause comes last so a long one never shifts the other columns.
const W_NUM: usize = 4;
const W_TIME: usize = 12;
const W_EVENT: usize = 11;
const W_ENDPOINTS: usize = 45;
const W_PHASE: usize = 16;
const W_RESULT: usize = 6;
const W_ENDED: usize = 18;
const W_FRAME: usize = 7;
const INDENT: &str = "      ";

use super::table::{ended, outcome_name};

/// Writes `text` after `prefix`, word-wrapped to `width` columns, continuation lines
/// indented like the first.
fn wrapped(out: &mut dyn Write, prefix: &str, text: &str, width: usize) -> io::Result<()> {
    let room = width.saturating_sub(INDENT.len()).max(40);
    let mut line = String::from(prefix);
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > room {
            writeln!(out, "{INDENT}{line}")?;
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        writeln!(out, "{INDENT}{line}")?;
    }
    Ok(())
}

/// A table written row by row as verdicts arrive.
#[derive(Debug, Clone)]
pub struct TableStream {
    width: usize,
    rows: u64,
}

impl TableStream {
    /// A stream wrapping explanations to `width` columns.
    pub fn new(width: u16) -> Self {
        TableStream {
            width: usize::from(width),
            rows: 0,
        }
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Writes the header line.
    pub fn header(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(
            out,
            "{:>W_NUM$} {:<W_TIME$} {:<W_EVENT$} {:<W_ENDPOINTS$} {:<W_PHASE$} {:<W_RESULT$} {:<W_ENDED$} {:>W_FRAME$} cause",
            "#", "start (UTC)", "event", "client -> server", "phase", "result", "ended by", "frame"
        )
    }

    /// Writes one verdict: its row, then what happened and (unless it went well) what to do.
    pub fn row(&mut self, out: &mut dyn Write, r: &ConnectionReport) -> io::Result<()> {
        self.rows += 1;
        let time = r.start.get(11..23).unwrap_or(&r.start);
        let phase = format!(
            "{}{}",
            r.phase.name(),
            if r.phase_inferred { "*" } else { "" }
        );
        writeln!(
            out,
            "{:>W_NUM$} {:<W_TIME$} {:<W_EVENT$} {:<W_ENDPOINTS$} {:<W_PHASE$} {:<W_RESULT$} {:<W_ENDED$} {:>W_FRAME$} {}",
            self.rows,
            time,
            r.event.unwrap_or("-"),
            format!("{} -> {}", r.client, r.server),
            phase,
            outcome_name(r.outcome),
            ended(r.ended_by, r.end),
            r.key_frame.unwrap_or(r.last_frame),
            r.cause,
        )?;
        wrapped(out, "", &r.summary, self.width)?;
        if r.outcome != Outcome::Success && r.event != Some("established") {
            wrapped(out, "what to do:", r.remedy, self.width)?;
        }
        if let Some(n) = r.notes.first() {
            wrapped(out, "note:", n, self.width)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_keeps_words_and_indent() {
        let mut out = Vec::new();
        let text = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi";
        wrapped(&mut out, "what to do:", text, 50).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("      what to do: alpha beta"));
        for l in s.lines() {
            assert!(l.starts_with(INDENT));
            assert!(l.len() <= 50, "{l:?}");
        }
        let words: Vec<&str> = s.split_whitespace().collect();
        assert_eq!(words.len(), 3 + 14);
    }
}
