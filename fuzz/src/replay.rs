//! Stable-toolchain replay of the fuzz targets: runs a target's body over files (corpus
//! entries, crash inputs) without libFuzzer, e.g. on a machine without nightly.
//!
//! `cargo run --release --example replay -- <target|all> <file or directory>...`
//! With `all`, each directory argument `corpus/<target>` is replayed through its own target.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn files(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        entries.sort();
        for e in entries {
            files(&e, out);
        }
    } else {
        out.push(p.to_path_buf());
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((target, paths)) = args.split_first() else {
        eprintln!("usage: replay <target|all> <file or dir>...");
        return ExitCode::from(2);
    };
    let mut runs = 0;
    for p in paths {
        let name = if target == "all" {
            Path::new(p)
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string()
        } else {
            target.clone()
        };
        let Some((_, f)) = rdpdiag_fuzz::TARGETS.iter().find(|(n, _)| *n == name) else {
            eprintln!("unknown target {name}");
            return ExitCode::from(2);
        };
        let mut list = Vec::new();
        files(Path::new(p), &mut list);
        for file in list {
            let Ok(data) = std::fs::read(&file) else {
                continue;
            };
            f(&data);
            runs += 1;
        }
    }
    println!("replayed {runs} inputs without a panic");
    ExitCode::SUCCESS
}
