//! Stage 3: the connection table, TCP reassembly and TCP event bookkeeping.
//!
//! The table owns every buffer. It hands its per-connection observer (the session
//! stage) contiguous in-order bytes per direction together with the frame that completed
//! them; SYN/FIN/RST, retransmissions, gaps, zero windows and ICMP errors are events,
//! not silence. Memory is bounded: out-of-order bytes are capped per direction, closed
//! and idle connections are expired by capture time, and a connection whose observer no
//! longer wants payload is only tracked by sequence numbers.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod hash;
pub mod reassembly;
mod table;
pub mod udp;

use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

pub use hash::{FlowHashBuilder, FlowMap};
pub use table::{FinishReason, FinishedConnection, FlowConfig, FlowTable};

use crate::capture::Timestamp;
use crate::decode::IcmpError;

/// A frame as evidence: its Wireshark number and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct FrameRef {
    /// Wireshark frame number.
    pub number: u64,
    /// Capture time.
    #[serde(skip)]
    pub ts: Timestamp,
}

/// Direction of a packet within a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dir {
    /// Client to server.
    ToServer,
    /// Server to client.
    ToClient,
}

impl Dir {
    /// 0 for client-to-server, 1 for server-to-client (for per-direction arrays).
    pub fn index(self) -> usize {
        match self {
            Dir::ToServer => 0,
            Dir::ToClient => 1,
        }
    }

    /// The other direction.
    pub fn reverse(self) -> Dir {
        match self {
            Dir::ToServer => Dir::ToClient,
            Dir::ToClient => Dir::ToServer,
        }
    }

    /// The side that sends in this direction: "client" or "server".
    pub fn sender(self) -> &'static str {
        match self {
            Dir::ToServer => "client",
            Dir::ToClient => "server",
        }
    }
}

/// TCP-level events handed to the observer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TcpEvent {
    /// A SYN (`retransmit`: not the first one).
    Syn {
        /// Whether an earlier SYN was seen.
        retransmit: bool,
    },
    /// A SYN+ACK.
    SynAck {
        /// Whether an earlier SYN+ACK was seen.
        retransmit: bool,
    },
    /// The client's ACK completing the three-way handshake.
    Established,
    /// A FIN.
    Fin,
    /// A RST.
    Rst,
    /// A data segment already delivered (retransmission or duplicate) of `len` bytes.
    Retransmission {
        /// Payload length.
        len: u32,
    },
    /// A zero receive window advertised.
    ZeroWindow,
    /// An ICMP error quoting this connection, sent by `from`.
    Icmp {
        /// The error.
        error: IcmpError,
        /// The ICMP sender (a router, a firewall or the peer itself).
        from: IpAddr,
    },
}

/// Receives one connection's events and bytes (implemented by the session stage).
pub trait ConnectionObserver {
    /// A TCP-level event.
    fn tcp_event(&mut self, event: TcpEvent, dir: Dir, frame: FrameRef);
    /// In-order bytes of one direction.
    fn data(&mut self, dir: Dir, bytes: &[u8], frame: FrameRef);
    /// Bytes missing from one direction (capture loss).
    fn gap(&mut self, dir: Dir, bytes: u64, frame: FrameRef);
    /// Whether payload of `dir` is still needed; when false the table stops buffering it.
    fn wants_data(&self, dir: Dir) -> bool;
}

/// Who talks to whom, fixed when the connection is first seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnMeta {
    /// The connecting side.
    pub client: SocketAddr,
    /// The listening side.
    pub server: SocketAddr,
    /// Outermost VLAN id, if tagged.
    pub vlan: Option<u16>,
    /// The first frame of the connection.
    pub first: FrameRef,
    /// Whether the client's SYN was seen (false: the capture started mid-connection).
    pub saw_syn: bool,
}

/// When to sweep the tables for expired connections: at the first frame more than a second
/// of capture time after the last sweep. The pipeline ticks it on every frame (whatever it
/// carries), so a capture split across threads replays the same sweeps in every worker.
#[derive(Debug, Clone, Copy)]
pub struct SweepClock {
    last: Timestamp,
}

impl Default for SweepClock {
    fn default() -> Self {
        SweepClock {
            last: Timestamp(i64::MIN),
        }
    }
}

impl SweepClock {
    /// Whether a sweep is due at `now` (and if so, it counts as done).
    pub fn due(&mut self, now: Timestamp) -> bool {
        if now.nanos_since(self.last) > 1_000_000_000 {
            self.last = now;
            true
        } else {
            false
        }
    }
}

/// Most evidence frames kept per kind.
pub const MAX_FRAMES_PER_KIND: usize = 16;

/// A retransmitted data segment, kept for stall and MTU diagnosis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Retransmit {
    /// Sender direction.
    pub dir: Dir,
    /// The retransmitting frame.
    pub frame: FrameRef,
    /// Sequence number just past the segment.
    #[serde(skip)]
    pub seq_end: u32,
    /// Payload length.
    pub len: u32,
}

/// TCP metadata of a connection, for the diagnosis.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TcpStats {
    /// The client's SYNs.
    pub syn: Vec<FrameRef>,
    /// The server's SYN+ACKs.
    pub syn_ack: Vec<FrameRef>,
    /// The client's handshake-completing ACK.
    pub established: Option<FrameRef>,
    /// First FIN per direction.
    pub fin: [Option<FrameRef>; 2],
    /// First RST per direction.
    pub rst: [Option<FrameRef>; 2],
    /// Packets per direction.
    pub packets: [u64; 2],
    /// Payload bytes per direction (retransmissions included).
    pub payload_bytes: [u64; 2],
    /// Largest payload per direction.
    pub max_payload: [u32; 2],
    /// Last frame that carried payload, per direction.
    pub last_data: [Option<FrameRef>; 2],
    /// Retransmitted data segments per direction.
    pub retransmissions: [u32; 2],
    /// The first retransmissions (at most [`MAX_FRAMES_PER_KIND`] * 2).
    pub retransmits: Vec<Retransmit>,
    /// Highest acknowledgement received for each direction's data (relative to nothing:
    /// raw sequence numbers), `None` if never acknowledged.
    #[serde(skip)]
    pub highest_ack: [Option<u32>; 2],
    /// Highest sequence number reached by any segment per direction (seq + payload),
    /// including bytes the capture never showed.
    #[serde(skip)]
    pub highest_seq: [Option<u32>; 2],
    /// Next sequence number the reassembler expected per direction when the connection
    /// finished (bytes seen up to there).
    #[serde(skip)]
    pub stream_next_seq: [Option<u32>; 2],
    /// First segment per direction whose sequence number was ahead of the bytes seen.
    pub seq_jump: [Option<FrameRef>; 2],
    /// Zero-window advertisements per direction.
    pub zero_windows: [u32; 2],
    /// Bytes missing from the capture per direction.
    pub gap_bytes: [u64; 2],
    /// ICMP errors quoting the connection: frame, error, sender.
    #[serde(skip)]
    pub icmp: Vec<(FrameRef, IcmpError, IpAddr)>,
    /// Last frame of the connection.
    pub last: Option<FrameRef>,
}

impl TcpStats {
    /// Bytes the sender of `dir` sent (its sequence numbers advanced past them) that the
    /// capture never showed and the receiver never acknowledged: lost before the capture
    /// point, so they never reached the receiver if the capture runs at the receiver.
    pub fn unseen_unacked(&self, dir: Dir) -> u32 {
        let i = dir.index();
        let (Some(Some(high)), Some(Some(next))) =
            (self.highest_seq.get(i), self.stream_next_seq.get(i))
        else {
            return 0;
        };
        let missing = high.wrapping_sub(*next) as i32;
        if missing <= 0 || self.acked(dir, next.wrapping_add(1)) {
            return 0;
        }
        missing as u32
    }

    /// Whether `seq_end` of `dir`'s data was acknowledged by the peer.
    pub fn acked(&self, dir: Dir, seq_end: u32) -> bool {
        self.highest_ack
            .get(dir.index())
            .copied()
            .flatten()
            .is_some_and(|a| (a.wrapping_sub(seq_end) as i32) >= 0)
    }
}
