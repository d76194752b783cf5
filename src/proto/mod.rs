//! Stage 4: pure protocol parsers over byte slices (nom 7, zero-copy, no I/O).
//!
//! Every parser here takes a complete PDU slice chosen by a framing function
//! ([`Framing`]) and never panics on hostile input: every length is checked
//! against the remaining input and a documented maximum before use.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod codes;
pub mod credssp;
pub mod fastpath;
pub mod http;
pub mod mcs;
pub mod nego;
pub mod rdpeudp;
pub mod rdstls;
pub mod socks;
pub mod tls;
pub mod tpkt;
pub mod tsgu;
pub mod websocket;
pub mod x224;

/// What a framing function says about the bytes at the head of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// The next PDU is complete and exactly this many bytes long (header included).
    Complete(usize),
    /// The PDU header says the PDU is this many bytes long in total, more bytes are needed.
    NeedMore(usize),
    /// Not enough bytes to read the header yet.
    NeedHeader,
    /// The bytes do not start a PDU of this kind.
    Invalid,
}

impl Framing {
    /// Frames a PDU whose total length `total` was read from a header, given `available` bytes.
    pub fn from_len(total: usize, available: usize) -> Framing {
        if available >= total {
            Framing::Complete(total)
        } else {
            Framing::NeedMore(total)
        }
    }
}

/// A parser failure: which structure and why, lower-case, one clause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {why}")]
pub struct ParseError {
    /// The structure being parsed (e.g. "x224 connection request").
    pub what: &'static str,
    /// What was wrong (e.g. "length 3 shorter than header").
    pub why: String,
}

impl ParseError {
    /// Builds an error for `what` with reason `why`.
    pub fn new(what: &'static str, why: impl Into<String>) -> Self {
        ParseError {
            what,
            why: why.into(),
        }
    }
}
