//! rdpdiag: why did this Remote Desktop connection fail, and where exactly?
//!
//! The module tree is the pipeline; data flows one way and a stage never imports a later one:
//!
//! ```text
//! capture -> decode -> flow -> proto -> session -> diagnose -> report
//! (frames)   (TCP/UDP/ICMP)  (reassembly) (parsers) (timeline) (verdict) (table/JSONL)
//! ```
#![forbid(unsafe_code)]

pub mod batch;
pub mod capture;
pub mod cli;
pub mod decode;
pub mod decrypt;
pub mod diagnose;
pub mod flow;
pub mod live;
pub mod parallel;
pub mod pipeline;
pub mod proto;
pub mod report;
pub mod session;
pub mod summary;
