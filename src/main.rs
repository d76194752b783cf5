//! The rdpdiag binary: parse arguments, call the library, map the result to an exit code
//! (0 all input analysed, 1 some input unreadable or truncated, 2 usage error).

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;

use rdpdiag::batch::{self, Input, Shard};
use rdpdiag::cli::{AnalyzeArgs, Command, FormatArg, Opts, SummarizeArgs};
use rdpdiag::pipeline::AnalyzeConfig;
use rdpdiag::pipeline::Finished;
use rdpdiag::report::{
    self, ConnectionReport, HtmlWriter, ReportOptions, TableOptions, TableWriter,
};
use rdpdiag::summary::SummaryBuilder;

fn main() -> ExitCode {
    let opts = Opts::parse();
    let result = match opts.command {
        Command::Analyze(args) => analyze(&args),
        Command::Summarize(args) => summarize(&args),
        Command::Completions { shell } => {
            // Generated into memory: clap_complete panics on a write error (a closed pipe).
            let mut cmd = <Opts as clap::CommandFactory>::command();
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, "rdpdiag", &mut buf);
            io::stdout().write_all(&buf).map(|()| ExitCode::SUCCESS)
        }
        Command::Man => {
            let cmd = <Opts as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd)
                .render(&mut io::stdout())
                .map(|()| ExitCode::SUCCESS)
        }
        Command::Live(args) => return rdpdiag::live::run(&args),
    };
    match result {
        Ok(code) => code,
        // Output into a closed pipe (`| head`) ends quietly.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rdpdiag: {e}");
            ExitCode::from(1)
        }
    }
}

/// Results held for ordering before JSON Lines output starts releasing them early.
const STREAM_HOLD: usize = 1_000;

/// One file of a parallel batch, formatted on the thread that analysed it.
struct Rendered {
    path: String,
    problem: Option<String>,
    evicted: u64,
    /// The table or JSON Lines of the file (or the error formatting it).
    bytes: io::Result<Vec<u8>>,
    /// Its connection reports as JSON values, for the summary.
    summary_rows: Vec<serde_json::Value>,
    /// Its connections with their ladders, for the HTML report.
    html_rows: Vec<report::HtmlConnection>,
}

fn terminal_width() -> u16 {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(120)
}

fn usage_error(msg: &str) -> io::Result<ExitCode> {
    eprintln!("rdpdiag: {msg}");
    Ok(ExitCode::from(2))
}

fn analyze(args: &AnalyzeArgs) -> io::Result<ExitCode> {
    let mut config = AnalyzeConfig::default();
    for p in &args.ports {
        if !config.rdp_ports.contains(p) {
            config.rdp_ports.push(*p);
        }
    }
    for path in &args.keylogs {
        match std::fs::read(path) {
            // Only the count is reported: secrets never reach the output.
            Ok(text) => {
                if config.keys.add_key_log(&text) == 0 {
                    eprintln!("rdpdiag: warning: {path}: no usable key-log lines");
                }
            }
            Err(e) => return usage_error(&format!("cannot read the key log {path}: {e}")),
        }
    }
    for path in &args.rsa_keys {
        match std::fs::read(path) {
            // The error names the file and the problem, never key material.
            Ok(text) => {
                if let Err(e) = config.keys.add_rsa_keys(&text) {
                    return usage_error(&format!("cannot use the RSA key {path}: {e}"));
                }
            }
            Err(e) => return usage_error(&format!("cannot read the RSA key {path}: {e}")),
        }
    }
    config.keys.decrypt_all = args.decrypt_all;
    let shard = match args.shard.as_deref().map(Shard::parse).transpose() {
        Ok(s) => s,
        Err(e) => return usage_error(&e),
    };
    let mut names = args.paths.clone();
    if let Some(src) = &args.files_from {
        match batch::read_files_from(src) {
            Ok(more) => names.extend(more),
            Err(e) => {
                eprintln!("rdpdiag: cannot read the list of files {src}: {e}");
                return Ok(ExitCode::from(1));
            }
        }
    }
    let mut failed = false;
    let mut paths = Vec::new();
    for input in batch::expand_inputs(&names) {
        match input {
            Input::Path(p) => paths.push(p),
            Input::Missing(name, why) => {
                eprintln!("rdpdiag: {name}: {why}");
                failed = true;
            }
        }
    }
    if let Some(s) = shard {
        paths.retain(|p| s.contains(p));
    }
    let threads = args.jobs.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        usize::from,
    );
    // One large capture (or stdin) is split across the threads by connection.
    if paths.len() == 1 {
        config.workers = threads;
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(io::Error::other)?;

    let progress = (std::io::stderr().is_terminal() && paths.len() > 1).then(|| {
        let total: u64 = paths
            .iter()
            .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
            .sum();
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {msg} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let files_total = paths.len();
    let files_done = std::sync::atomic::AtomicUsize::new(0);
    let on_done = |p: &str| {
        if let Some(bar) = &progress {
            let n = files_done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            bar.set_message(format!("{n}/{files_total} files"));
            bar.inc(std::fs::metadata(p).map_or(0, |m| m.len()));
        }
    };

    let ropts = ReportOptions {
        redact: args.redact,
        timeline: args.verbose,
    };
    let width = args.width.unwrap_or_else(terminal_width);
    let color = args.color.enabled(io::stdout().is_terminal());
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut summary = (args.summary || args.html.is_some()).then(SummaryBuilder::new);
    // The HTML report is assembled as connections come (its parts spill to temporary files).
    let mut html = args.html.is_some().then(HtmlWriter::new);
    let plain = ReportOptions {
        redact: args.redact,
        timeline: false,
    };
    let topts = TableOptions {
        width,
        verbose: args.verbose,
        opts: ropts,
        color,
    };
    // Everything a connection's result goes to besides the table or JSON Lines. A failure to
    // write the HTML report's temporary files ends the report, not the output (said at the end).
    let mut html_error: Option<io::Error> = None;
    let side = |path: &str,
                item: report::Item<'_>,
                summary: &mut Option<SummaryBuilder>,
                html: &mut Option<HtmlWriter>,
                html_error: &mut Option<io::Error>| {
        if summary.is_none() && html.is_none() {
            return;
        }
        let r = match item {
            report::Item::Tcp(d) => ConnectionReport::new(path, d, plain),
            report::Item::Udp(u) => ConnectionReport::udp(path, u),
        };
        if let Some(b) = summary.as_mut() {
            if let Ok(v) = serde_json::to_value(&r) {
                b.add_report(&v);
            }
        }
        if let Some(h) = html.as_mut() {
            let rungs = match item {
                report::Item::Tcp(d) => report::ladder(d),
                report::Item::Udp(u) => report::udp_rungs(u),
            };
            if let Err(e) = h.add(&report::HtmlConnection { report: r, rungs }) {
                *html_error = Some(e);
                *html = None;
            }
        }
    };
    let mut first = true;
    // Captures analysed one at a time are printed as their connections finish (tables in
    // pages, JSON Lines line by line, the HTML report's parts spilled), so memory stays
    // bounded by the live connections on captures with very many connections.
    if paths.len() == 1 || threads == 1 {
        for path in &paths {
            if args.format == FormatArg::Table && !first {
                writeln!(out)?;
            }
            first = false;
            let mut table = (args.format == FormatArg::Table)
                .then(|| TableWriter::new(path, topts, report::TABLE_PAGE));
            let mut line = Vec::with_capacity(4096);
            let mut write = |item: Finished| -> io::Result<()> {
                side(
                    path,
                    report::Item::of(&item),
                    &mut summary,
                    &mut html,
                    &mut html_error,
                );
                match table.as_mut() {
                    Some(t) => t.push(&mut out, item),
                    None => {
                        let r = match &item {
                            Finished::Tcp(d) => ConnectionReport::new(path, d, ropts),
                            Finished::Udp(u) => ConnectionReport::udp(path, u),
                        };
                        line.clear();
                        serde_json::to_writer(&mut line, &r)?;
                        line.push(b'\n');
                        out.write_all(&line)
                    }
                }
            };
            let run = rdpdiag::pipeline::stream_path(path, &config, STREAM_HOLD, &mut write);
            on_done(path);
            let problem = run
                .error
                .as_ref()
                .or(run.capture.as_ref().and_then(|c| c.error.as_ref()))
                .map(ToString::to_string);
            if let Some(e) = &problem {
                failed = true;
                match &progress {
                    Some(bar) => bar.suspend(|| eprintln!("rdpdiag: {e}")),
                    None => eprintln!("rdpdiag: {e}"),
                }
            }
            if let Some(t) = table {
                t.finish(&mut out, run.stats.frames, problem.clone())?;
            }
            if let Some(b) = summary.as_mut() {
                b.add_file(path, problem);
                b.add_evicted(run.stats.evicted);
            }
            out.flush()?;
        }
    } else {
        // Each file is formatted on the thread that analysed it; this thread only writes.
        let (want_summary, want_html) = (summary.is_some(), html.is_some());
        let render = |analysis: rdpdiag::pipeline::FileAnalysis| -> Rendered {
            let mut bytes = Vec::new();
            let written = match args.format {
                FormatArg::Jsonl => report::append_jsonl(&mut bytes, &analysis, ropts),
                FormatArg::Table => {
                    report::write_table(&mut bytes, &analysis, width, args.verbose, ropts, color)
                }
            };
            let (mut summary_rows, mut html_rows) = (Vec::new(), Vec::new());
            if want_summary || want_html {
                for item in report::items(&analysis) {
                    let r = match item {
                        report::Item::Tcp(d) => ConnectionReport::new(&analysis.path, d, plain),
                        report::Item::Udp(u) => ConnectionReport::udp(&analysis.path, u),
                    };
                    if want_summary {
                        if let Ok(v) = serde_json::to_value(&r) {
                            summary_rows.push(v);
                        }
                    }
                    if want_html {
                        let rungs = match item {
                            report::Item::Tcp(d) => report::ladder(d),
                            report::Item::Udp(u) => report::udp_rungs(u),
                        };
                        html_rows.push(report::HtmlConnection { report: r, rungs });
                    }
                }
            }
            Rendered {
                problem: analysis.problem().map(ToString::to_string),
                path: analysis.path,
                evicted: analysis.stats.evicted,
                bytes: written.map(|()| bytes),
                summary_rows,
                html_rows,
            }
        };
        let mut emit = |file: Rendered| -> io::Result<()> {
            if let Some(e) = &file.problem {
                failed = true;
                match &progress {
                    Some(bar) => bar.suspend(|| eprintln!("rdpdiag: {e}")),
                    None => eprintln!("rdpdiag: {e}"),
                }
            }
            if args.format == FormatArg::Table && !first {
                writeln!(out)?;
            }
            out.write_all(&file.bytes?)?;
            first = false;
            if let Some(b) = summary.as_mut() {
                for v in &file.summary_rows {
                    b.add_report(v);
                }
            }
            if let Some(h) = html.as_mut() {
                for c in &file.html_rows {
                    if let Err(e) = h.add(c) {
                        html_error = Some(e);
                        html = None;
                        break;
                    }
                }
            }
            if let Some(b) = summary.as_mut() {
                b.add_file(&file.path, file.problem);
                b.add_evicted(file.evicted);
            }
            out.flush()
        };
        let window = threads.saturating_mul(4).max(1);
        batch::analyze_in_order(&pool, &paths, &config, window, &on_done, &render, &mut emit)?;
    }
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }
    if let Some(b) = summary {
        let s = b.build();
        if args.summary {
            match args.format {
                FormatArg::Jsonl => report::write_summary_json(&mut out, &s)?,
                FormatArg::Table => report::write_summary_table(&mut out, &s, width)?,
            }
            out.flush()?;
        }
        if let Some(path) = &args.html {
            let written = match (html, html_error) {
                (_, Some(e)) => Err(e),
                (None, None) => Ok(()),
                (Some(h), None) => std::fs::File::create(path).and_then(|f| {
                    let mut w = io::BufWriter::new(f);
                    h.finish(&mut w, "rdpdiag report", &s)?;
                    w.flush()
                }),
            };
            if let Err(e) = written {
                eprintln!("rdpdiag: cannot write {path}: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn summarize(args: &SummarizeArgs) -> io::Result<ExitCode> {
    let mut b = SummaryBuilder::new();
    let mut failed = false;
    for path in &args.reports {
        let reader: Box<dyn io::BufRead> = if path == "-" {
            Box::new(io::BufReader::new(io::stdin()))
        } else {
            match std::fs::File::open(path) {
                Ok(f) => Box::new(io::BufReader::new(f)),
                Err(e) => {
                    eprintln!("rdpdiag: cannot read {path}: {e}");
                    failed = true;
                    continue;
                }
            }
        };
        for (n, line) in io::BufRead::lines(reader).enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<serde_json::Value>(&line) {
                Ok(v) => {
                    b.add_report(&v);
                }
                Err(e) => {
                    eprintln!("rdpdiag: {path}: line {}: not JSON: {e}", n + 1);
                    failed = true;
                }
            }
        }
    }
    let s = b.build();
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    match args.format {
        FormatArg::Jsonl => report::write_summary_json(&mut out, &s)?,
        FormatArg::Table => {
            report::write_summary_table(&mut out, &s, args.width.unwrap_or_else(terminal_width))?
        }
    }
    out.flush()?;
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
