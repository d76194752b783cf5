//! Stage 6: pure rules from a connection's timeline and TCP metadata to a verdict:
//! phase reached, who ended it and how, the likely cause with its remedy, and the
//! frames that prove it. Nothing here reads packets; every rule is testable on its own.

pub mod causes;
pub mod mstsc;
mod phase;
mod rules;
pub mod udp;
pub mod verdict;

pub use phase::furthest_phase;
pub use verdict::{Confidence, End, EndedBy, Evidence, Outcome, Phase, Verdict};

use crate::capture::Timestamp;
use crate::flow::{ConnMeta, FinishReason, TcpStats};
use crate::session::SessionRecord;

/// Everything known about one finished connection.
#[derive(Debug, Clone)]
pub struct ConnectionRecord {
    /// Endpoints and first frame.
    pub meta: ConnMeta,
    /// TCP metadata.
    pub tcp: TcpStats,
    /// Timeline and parsed details.
    pub session: SessionRecord,
    /// Why the connection left the connection table.
    pub finish: FinishReason,
    /// Time of the capture's last frame.
    pub capture_end: Timestamp,
}

/// Diagnoses one connection.
pub fn diagnose(rec: &ConnectionRecord) -> Verdict {
    rules::diagnose(rec)
}
