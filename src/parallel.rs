//! One large capture split across cores. Each worker thread reads the whole capture (the
//! cheap part: reading and decoding headers) but keeps only the connections whose
//! symmetric endpoint hash falls in its share, so the expensive part (reassembly, protocol
//! parsing, diagnosis) is divided without copying frames between threads. Both directions
//! of a connection, and ICMP errors quoting it, land in the same share; results are merged
//! in frame order, so the output equals a single-threaded run.

use std::thread;

use crate::pipeline::{analyze_path, link_udp_to_tcp, AnalyzeConfig, FileAnalysis};

/// Analyses one capture with `workers` threads. Same result as
/// [`crate::pipeline::analyze_path`].
pub fn analyze_path_parallel(path: &str, config: &AnalyzeConfig, workers: usize) -> FileAnalysis {
    let workers = workers.clamp(1, 64) as u32;
    if workers == 1 {
        return analyze_path(path, config);
    }
    let parts: Vec<FileAnalysis> = thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|k| {
                let mut cfg = config.clone();
                cfg.share = Some((k, workers));
                s.spawn(move || analyze_path(path, &cfg))
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut merged: Option<FileAnalysis> = None;
    for part in parts {
        match merged.as_mut() {
            None => merged = Some(part),
            Some(m) => {
                m.connections.extend(part.connections);
                m.udp.extend(part.udp);
                m.stats.tcp_connections += part.stats.tcp_connections;
                m.stats.evicted += part.stats.evicted;
            }
        }
    }
    let Some(mut m) = merged else {
        return analyze_path(path, config);
    };
    m.connections.sort_by_key(|d| d.record.meta.first.number);
    m.udp.sort_by_key(|u| u.meta.first.number);
    // Links were made within each share; a UDP transport and its TCP session share hosts
    // but not ports, so link again across the merged lists.
    for d in &mut m.connections {
        d.verdict
            .notes
            .retain(|n| !n.starts_with("RDP over UDP was attempted"));
    }
    for u in &mut m.udp {
        u.verdict
            .notes
            .retain(|n| !n.starts_with("belongs to the TCP connection"));
    }
    link_udp_to_tcp(&mut m.connections, &mut m.udp);
    m
}
