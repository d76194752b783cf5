//! Cost of TLS decryption in rdpdiag's pipeline, on the real key-logged captures of
//! testdata/own (xrdp / freerdp-shadow-cli against xfreerdp: TLS 1.0 to 1.3, AES-CBC,
//! AES-GCM, RSA key exchange), in bytes of capture per second.
//!
//! `cargo bench --bench decrypt`
//!
//! Each iteration analyses every capture of the set `RDPDIAG_BENCH_REPEAT` times (default
//! 20) to get some volume, in three ways:
//! - `no_keys`: the embedded key logs withheld (what rdpdiag does without keys);
//! - `keys_settled`: with the keys (embedded, plus the RSA test key for the plain RSA
//!   captures), decryption stopping once the session runs (the default);
//! - `keys_decrypt_all`: with the keys and `--decrypt-all`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use rdpdiag::capture::{open_input, read_capture, Frame, FrameSink};
use rdpdiag::decrypt::KeyStore;
use rdpdiag::pipeline::{AnalyzeConfig, Analyzer, Diagnosed};

/// The key-logged captures (keys embedded as pcapng Decryption Secrets Blocks) and the
/// plain RSA key-exchange pcaps.
fn captures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/own");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("testdata/own")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("keylog-") && n.ends_with(".pcapng"))
        })
        .collect();
    v.push(root.join("keylog/keylog-tls11-rsa.pcap"));
    v.push(root.join("keylog/keylog-tls12-rsa.pcap"));
    v.sort();
    v
}

/// Passes frames on, and the secrets blocks only when `keys`.
struct Sink<F: FnMut(Diagnosed)> {
    inner: Analyzer<F>,
    keys: bool,
}

impl<F: FnMut(Diagnosed)> FrameSink for Sink<F> {
    fn frame(&mut self, frame: &Frame<'_>) {
        self.inner.frame(frame);
    }
    fn secrets(&mut self, t: u32, data: &[u8]) {
        if self.keys {
            self.inner.secrets(t, data);
        }
    }
}

/// Analyses one capture; returns the records decrypted and passed over.
fn analyse(path: &Path, keys: Option<&KeyStore>) -> (u64, u64) {
    let config = AnalyzeConfig {
        keys: keys.cloned().unwrap_or_default(),
        ..AnalyzeConfig::default()
    };
    let (mut dec, mut over) = (0, 0);
    {
        let inner = Analyzer::new(config, |d| {
            let x = &d.record.session.details.decrypt;
            dec += x.records.iter().sum::<u64>();
            over += x.passed_over.iter().sum::<u64>();
        });
        let mut sink = Sink {
            inner,
            keys: keys.is_some(),
        };
        let src = open_input(path.to_str().expect("utf-8 path")).expect("capture");
        read_capture(src, &mut sink).expect("readable capture");
        sink.inner.finish();
    }
    (dec, over)
}

fn bench(c: &mut Criterion) {
    let files = captures();
    let repeat: u64 = std::env::var("RDPDIAG_BENCH_REPEAT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let bytes: u64 = files
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    let rsa = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/own/keylog/rsa-kex-server.key"),
    )
    .expect("test RSA key");
    let mut settled = KeyStore::new();
    settled.add_rsa_keys(&rsa).expect("test RSA key");
    let mut all = settled.clone();
    all.decrypt_all = true;
    for (name, keys) in [("keys_settled", &settled), ("keys_decrypt_all", &all)] {
        let (d, o) = files
            .iter()
            .map(|f| analyse(f, Some(keys)))
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        eprintln!(
            "{name}: {} captures, {bytes} bytes: {d} records decrypted, {o} passed over",
            files.len()
        );
    }
    let mut g = c.benchmark_group("decrypt");
    g.throughput(Throughput::Bytes(bytes * repeat));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    for (name, keys) in [
        ("no_keys", None),
        ("keys_settled", Some(&settled)),
        ("keys_decrypt_all", Some(&all)),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                for _ in 0..repeat {
                    for f in &files {
                        std::hint::black_box(analyse(f, keys));
                    }
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
