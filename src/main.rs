//! The rdpdiag binary: parse arguments, call the library, map the result to an exit code
//! (0 all input analysed, 1 some input unreadable or truncated, 2 usage error).

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;

use rdpdiag::cli::{AnalyzeArgs, Command, FormatArg, Opts};
use rdpdiag::pipeline::{analyze_path, AnalyzeConfig};
use rdpdiag::report::{self, ReportOptions};

fn main() -> ExitCode {
    let opts = Opts::parse();
    let result = match opts.command {
        Command::Analyze(args) => analyze(&args),
        Command::Live(args) => return rdpdiag::live::run(&args),
    };
    match result {
        Ok(code) => code,
        // Output into a closed pipe (`| head`) ends quietly.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rdpdiag: cannot write output: {e}");
            ExitCode::from(1)
        }
    }
}

fn terminal_width() -> u16 {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(120)
}

fn analyze(args: &AnalyzeArgs) -> io::Result<ExitCode> {
    let mut config = AnalyzeConfig::default();
    for p in &args.ports {
        if !config.rdp_ports.contains(p) {
            config.rdp_ports.push(*p);
        }
    }
    let ropts = ReportOptions {
        redact: args.redact,
        timeline: args.verbose,
    };
    let width = args.width.unwrap_or_else(terminal_width);
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut failed = false;
    for (i, path) in args.paths.iter().enumerate() {
        let analysis = analyze_path(path, &config);
        if let Some(e) = analysis.problem() {
            failed = true;
            eprintln!("rdpdiag: {e}");
        }
        match args.format {
            FormatArg::Jsonl => report::write_jsonl(&mut out, &analysis, ropts)?,
            FormatArg::Table => {
                if i > 0 {
                    writeln!(out)?;
                }
                report::write_table(&mut out, &analysis, width, args.verbose, ropts)?
            }
        }
        out.flush()?;
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
