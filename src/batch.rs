//! Batches: expanding paths (files, directories, globs, `--files-from`), sharding a batch
//! over an array job, and analysing many captures in parallel with output in input order.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::{self, BufRead};
use std::path::Path;

use crate::pipeline::{analyze_path, AnalyzeConfig, FileAnalysis};

/// Files at least this large are split across threads when there are fewer files than threads.
pub use crate::pipeline::SPLIT_FILE_BYTES;

/// Capture file name endings picked up when walking a directory.
const CAPTURE_SUFFIXES: [&str; 11] = [
    ".pcap",
    ".pcapng",
    ".cap",
    ".dmp",
    ".pcap.gz",
    ".pcapng.gz",
    ".pcap.zst",
    ".pcapng.zst",
    ".gz",
    ".zst",
    ".ntar",
];

/// Whether a file found in a directory looks like a capture (by name; contents decide later).
fn looks_like_capture(p: &Path) -> bool {
    let name = p
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    CAPTURE_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// One input named by the user, expanded; errors are kept in input order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A capture path (or `-`).
    Path(String),
    /// A name that expanded to nothing or could not be read.
    Missing(String, String),
}

/// Expands files, directories (recursively, sorted) and glob patterns, keeping order and
/// dropping repeats.
pub fn expand_inputs(args: &[String]) -> Vec<Input> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut push = |out: &mut Vec<Input>, p: String| {
        if seen.insert(p.clone()) {
            out.push(Input::Path(p));
        }
    };
    for arg in args {
        let path = Path::new(arg);
        if arg == "-" || path.is_file() {
            push(&mut out, arg.clone());
        } else if path.is_dir() {
            let mut files = Vec::new();
            walk(path, &mut files);
            files.sort();
            if files.is_empty() {
                out.push(Input::Missing(
                    arg.clone(),
                    "no capture files in the directory".into(),
                ));
            }
            for f in files {
                push(&mut out, f);
            }
        } else if arg.contains(['*', '?', '[']) {
            let mut matched: Vec<String> = match glob::glob(arg) {
                Ok(paths) => paths
                    .flatten()
                    .filter(|p| p.is_file())
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect(),
                Err(e) => {
                    out.push(Input::Missing(arg.clone(), format!("bad pattern: {e}")));
                    continue;
                }
            };
            matched.sort();
            if matched.is_empty() {
                out.push(Input::Missing(
                    arg.clone(),
                    "the pattern matches no file".into(),
                ));
            }
            for f in matched {
                push(&mut out, f);
            }
        } else {
            // Let the reader report it (no such file, permission...).
            push(&mut out, arg.clone());
        }
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else if looks_like_capture(&p) {
            out.push(p.to_string_lossy().into_owned());
        }
    }
}

/// Reads paths from a file (one per line; `-` reads standard input); blank lines and
/// lines starting with `#` are skipped.
pub fn read_files_from(source: &str) -> io::Result<Vec<String>> {
    let reader: Box<dyn BufRead> = if source == "-" {
        Box::new(io::BufReader::new(io::stdin()))
    } else {
        Box::new(io::BufReader::new(std::fs::File::open(source)?))
    };
    let mut out = Vec::new();
    for line in reader.lines() {
        let line = line?;
        let t = line.trim();
        if !t.is_empty() && !t.starts_with('#') {
            out.push(t.to_string());
        }
    }
    Ok(out)
}

/// A shard of an array job: this is shard `index` (0-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0-based index.
    pub index: u32,
    /// Number of shards.
    pub count: u32,
}

impl Shard {
    /// Parses `K/N` (0 <= K < N). `K` may be `auto`: SLURM_ARRAY_TASK_ID or
    /// JOB_COMPLETION_INDEX (Kubernetes Indexed Job) gives the index.
    pub fn parse(s: &str) -> Result<Shard, String> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("shard '{s}' is not K/N"))?;
        let count: u32 = n
            .parse()
            .map_err(|_| format!("shard count '{n}' is not a number"))?;
        let index: u32 = if k == "auto" {
            let var = ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"]
                .iter()
                .find_map(|v| std::env::var(v).ok())
                .ok_or("shard index 'auto' needs SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX")?;
            var.parse()
                .map_err(|_| format!("shard index '{var}' from the environment is not a number"))?
        } else {
            k.parse()
                .map_err(|_| format!("shard index '{k}' is not a number"))?
        };
        if count == 0 || index >= count {
            return Err(format!("shard {index}/{count}: need 0 <= K < N"));
        }
        Ok(Shard { index, count })
    }

    /// Whether `path` belongs to this shard (stable: by a hash of the path string).
    pub fn contains(&self, path: &str) -> bool {
        // FNV-1a: stable across Rust versions and platforms, unlike DefaultHasher.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in path.as_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        (h % u64::from(self.count)) as u32 == self.index
    }
}

/// Symmetric hash of a connection's endpoints (either direction gives the same value).
pub fn connection_hash<T: Hash + Ord>(a: T, b: T) -> u64 {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut h = DefaultHasher::new();
    lo.hash(&mut h);
    hi.hash(&mut h);
    h.finish()
}

/// The threads each of `files` files gets when there are fewer files than `threads`
/// (empty otherwise: each file then runs on one thread of the pool): `threads` shared out
/// as evenly as can be, the first files taking one more.
pub fn thread_shares(files: usize, threads: usize) -> Vec<usize> {
    if files == 0 || files >= threads {
        return Vec::new();
    }
    let (each, extra) = (threads / files, threads % files);
    (0..files).map(|i| each + usize::from(i < extra)).collect()
}

/// Analyses `paths` in parallel and `render`s each file's analysis on the same worker thread
/// (formatting output is work too), then calls `emit` with each rendering strictly in input
/// order as soon as it and every file before it are done. The calling thread only emits while
/// the pool goes on with the next files; at most `window` files are in flight or waiting to
/// be emitted, so memory stays bounded on long batches.
pub fn analyze_in_order<R: Send>(
    pool: &rayon::ThreadPool,
    paths: &[String],
    config: &AnalyzeConfig,
    window: usize,
    on_done: &(dyn Fn(&str) + Sync),
    render: &(dyn Fn(FileAnalysis) -> R + Sync),
    emit: &mut dyn FnMut(R) -> io::Result<()>,
) -> io::Result<()> {
    // Fewer files than threads: all of them run at once, and the threads are shared out
    // among them (a large file is split across its share) rather than each file taking
    // them all, which oversubscribed the cores.
    let shares: Vec<AnalyzeConfig> = thread_shares(paths.len(), pool.current_num_threads())
        .into_iter()
        .map(|workers| AnalyzeConfig {
            workers,
            ..config.clone()
        })
        .collect();
    let window = window.max(1);
    let (tx, rx) = std::sync::mpsc::channel::<(usize, R)>();
    pool.in_place_scope(|scope| {
        let mut waiting: std::collections::BTreeMap<usize, R> = Default::default();
        let (mut dispatched, mut emitted) = (0usize, 0usize);
        let mut failed: Option<io::Error> = None;
        while emitted < paths.len() {
            while dispatched < paths.len() && dispatched - emitted < window {
                let (i, tx) = (dispatched, tx.clone());
                if let Some(p) = paths.get(i) {
                    let config = shares.get(i).unwrap_or(config);
                    scope.spawn(move |_| {
                        let a = analyze_path(p, config);
                        on_done(p);
                        let _ = tx.send((i, render(a)));
                    });
                }
                dispatched += 1;
            }
            let Ok((i, a)) = rx.recv() else { break };
            waiting.insert(i, a);
            while let Some(a) = waiting.remove(&emitted) {
                emitted += 1;
                if let Err(e) = emit(a) {
                    failed = Some(e);
                    break;
                }
            }
            // After a write error (a closed pipe) nothing more is started; the analyses
            // under way finish and are dropped.
            if failed.is_some() {
                break;
            }
        }
        failed.map_or(Ok(()), Err)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_inputs() {
        let paths: Vec<String> = (0..200)
            .map(|i| format!("/data/capture-{i}.pcap"))
            .collect();
        let shards: Vec<Shard> = (0..3)
            .map(|k| Shard::parse(&format!("{k}/3")).unwrap())
            .collect();
        for p in &paths {
            assert_eq!(shards.iter().filter(|s| s.contains(p)).count(), 1);
        }
        assert!(shards
            .iter()
            .all(|s| paths.iter().filter(|p| s.contains(p)).count() > 40));
        assert!(
            Shard::parse("3/3").is_err()
                && Shard::parse("x").is_err()
                && Shard::parse("1/0").is_err()
        );
    }

    #[test]
    fn fewer_files_than_threads_share_the_threads_out() {
        assert_eq!(thread_shares(2, 4), vec![2, 2]);
        assert_eq!(thread_shares(3, 4), vec![2, 1, 1]);
        assert_eq!(thread_shares(2, 7), vec![4, 3]);
        for threads in 1..20 {
            for files in 0..25 {
                let shares = thread_shares(files, threads);
                if files == 0 || files >= threads {
                    assert!(shares.is_empty());
                } else {
                    assert_eq!(shares.len(), files);
                    assert_eq!(shares.iter().sum::<usize>(), threads);
                    assert!(shares.iter().all(|&w| w >= 1));
                    assert!(shares.iter().max().unwrap() - shares.iter().min().unwrap() <= 1);
                }
            }
        }
    }

    #[test]
    fn symmetric_hash() {
        assert_eq!(
            connection_hash(("10.0.0.1", 1), ("10.0.0.2", 3389)),
            connection_hash(("10.0.0.2", 3389), ("10.0.0.1", 1))
        );
    }
}
