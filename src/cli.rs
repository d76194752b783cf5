//! Command-line arguments (clap derive). Validated into [`crate::config`] types by `main`.

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Why did this Remote Desktop connection fail, and where exactly?
#[derive(Debug, Parser)]
#[command(name = "rdpdiag", version, about, propagate_version = true)]
pub struct Opts {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Analyse saved captures (pcap, pcapng, gzip/zstd compressed, `-` for stdin).
    Analyze(AnalyzeArgs),
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// A table for people.
    Table,
    /// One JSON object per connection and line.
    Jsonl,
}

/// Arguments of `rdpdiag analyze`.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Capture files; `-` reads standard input.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = FormatArg::Table)]
    pub format: FormatArg,
    /// Another TCP port to treat as RDP (repeatable; 3389 always is).
    #[arg(long = "port", value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub ports: Vec<u16>,
    /// Show each connection's evidence and timeline (table), or add the timeline (jsonl).
    #[arg(short, long)]
    pub verbose: bool,
    /// Replace user names (mstshash cookie, client computer name) by a placeholder.
    #[arg(long)]
    pub redact: bool,
    /// Table width in columns (default: the terminal's width, or 120).
    #[arg(long, value_name = "COLUMNS")]
    pub width: Option<u16>,
}
