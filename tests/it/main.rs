//! The one integration test binary: golden outputs of the shipped captures, the public
//! corpus against its expected.tsv, and the command line through the built binary.

mod batch;
mod cli;
mod corpus;
mod decrypt;
mod gateway;
mod golden;
mod hostile;
mod keylog;
#[cfg(feature = "live")]
mod live;
mod reader;
mod report;

use std::path::{Path, PathBuf};

/// Every capture under `dir` (recursively), sorted.
pub fn captures_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Some(name) = p.file_name().and_then(|n| n.to_str()) {
                if [".pcap", ".pcapng", ".pcap.gz", ".pcap.zst", ".cap"]
                    .iter()
                    .any(|x| name.ends_with(x))
                {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out
}
