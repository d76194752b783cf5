//! Command-line arguments (clap derive). Validated into [`crate::config`] types by `main`.

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Why did this Remote Desktop connection fail, and where exactly?
#[derive(Debug, Parser)]
#[command(name = "rdpdiag", version = env!("RDPDIAG_VERSION"), about, propagate_version = true)]
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
    /// Print shell completions (bash, zsh, fish, elvish, powershell) to standard output.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to standard output.
    Man,
    /// Rebuild a batch summary from saved `--format jsonl` reports (merge many machines' runs).
    Summarize(SummarizeArgs),
    /// Capture live from an interface and print each connection's verdict as it settles
    /// (needs the `live` cargo feature and libpcap).
    Live(LiveArgs),
}

/// Arguments of `rdpdiag live`.
#[derive(Debug, Args)]
pub struct LiveArgs {
    /// Interface to capture on (e.g. eth0, lo, any).
    #[arg(
        short = 'i',
        long = "interface",
        value_name = "IFACE",
        required_unless_present = "list_interfaces"
    )]
    pub interface: Option<String>,
    /// List capture devices with their addresses and exit.
    #[arg(long)]
    pub list_interfaces: bool,
    /// BPF capture filter replacing the default (RDP ports over TCP and UDP, ICMP errors).
    #[arg(long, value_name = "BPF")]
    pub filter: Option<String>,
    /// Another port to treat as RDP (repeatable; 3389 always is).
    #[arg(long = "port", value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub ports: Vec<u16>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = FormatArg::Table)]
    pub format: FormatArg,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,
    /// Give an open connection its verdict after this many seconds of silence.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub idle_timeout: u64,
    /// Also save the captured packets to this pcapng file (frame numbers in verdicts match it).
    #[arg(long, value_name = "FILE.pcapng")]
    pub write: Option<String>,
    /// TLS key log (NSS format) for decryption.
    #[arg(long, value_name = "FILE")]
    pub keylog: Option<String>,
    /// Replace user names (mstshash cookie, client computer name) by a placeholder.
    #[arg(long)]
    pub redact: bool,
    /// Table width in columns (default: $COLUMNS or 120).
    #[arg(long, value_name = "COLUMNS")]
    pub width: Option<u16>,
}

/// When to colour the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorArg {
    /// When standard output is a terminal and NO_COLOR is not set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl ColorArg {
    /// Whether to colour output going to `is_terminal` output.
    pub fn enabled(self, is_terminal: bool) -> bool {
        match self {
            ColorArg::Always => true,
            ColorArg::Never => false,
            ColorArg::Auto => is_terminal && std::env::var_os("NO_COLOR").is_none(),
        }
    }
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// A table for people.
    Table,
    /// One JSON object per connection and line.
    Jsonl,
}

/// Arguments of `rdpdiag summarize`.
#[derive(Debug, Args)]
pub struct SummarizeArgs {
    /// JSON Lines reports written by `rdpdiag analyze --format jsonl`; `-` reads stdin.
    #[arg(required = true, value_name = "REPORT.jsonl")]
    pub reports: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = FormatArg::Table)]
    pub format: FormatArg,
    /// Table width in columns (default: $COLUMNS or 120).
    #[arg(long, value_name = "COLUMNS")]
    pub width: Option<u16>,
}

/// Arguments of `rdpdiag analyze`.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Capture files, directories (searched recursively) and glob patterns; `-` reads stdin.
    #[arg(value_name = "PATH", required_unless_present = "files_from")]
    pub paths: Vec<String>,
    /// Read more paths from FILE, one per line (`-`: standard input).
    #[arg(long, value_name = "FILE")]
    pub files_from: Option<String>,
    /// Threads (default: all cores): files analysed in parallel; one large capture (32 MiB or
    /// more, or stdin) given alone is split by connection: with 2, one thread reads it and
    /// analyses a share that adapts to keep the other busy; with N >= 3, one reads, one
    /// frames and dispatches, N-2 analyse.
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// After the connections, print a summary: failures by cause, server, client, hour, file,
    /// and attempts (jsonl: one object with "type": "summary").
    #[arg(long)]
    pub summary: bool,
    /// Also write a self-contained HTML report (summary, strip chart, ladder per connection).
    #[arg(long, value_name = "REPORT.html")]
    pub html: Option<String>,
    /// Process only shard K of N of the inputs (stable by path), for array jobs; K may be
    /// `auto` to take it from SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
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
    /// TLS key log (NSS format: CLIENT_RANDOM, *_TRAFFIC_SECRET lines) to decrypt TLS and
    /// NLA with (repeatable; keys embedded in pcapng files are used as well).
    #[arg(long = "keylog", value_name = "FILE")]
    pub keylogs: Vec<String>,
    /// A TLS server's RSA private key (PEM, PKCS#1 or PKCS#8; repeatable) to decrypt
    /// connections with RSA key exchange (TLS_RSA_* suites) without a key log.
    #[arg(long = "rsa-key", value_name = "FILE")]
    pub rsa_keys: Vec<String>,
    /// Decrypt every TLS record; by default decryption stops once the session is running
    /// (only small records near the end are still decrypted).
    #[arg(long)]
    pub decrypt_all: bool,
    /// Colour the failing step of ladders: auto (a terminal without NO_COLOR), always, never.
    #[arg(long, value_enum, default_value_t = ColorArg::Auto)]
    pub color: ColorArg,
}
