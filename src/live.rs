//! Live capture: the same pipeline fed by libpcap, verdicts printed as connections settle.

use std::process::ExitCode;

use crate::cli::LiveArgs;

/// Runs `rdpdiag live`.
pub fn run(_args: &LiveArgs) -> ExitCode {
    eprintln!("rdpdiag: live capture is not built in: rebuild with `cargo build --release --features live` (needs libpcap-dev)");
    ExitCode::from(2)
}
