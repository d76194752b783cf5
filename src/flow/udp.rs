//! UDP flows of RDP (RDPEUDP): a table keyed by address and port pairs, oriented by the
//! client's SYN or the RDP port, expired by capture time. Per-flow state belongs to the
//! observer (the session stage).

use std::net::SocketAddr;

use super::{Dir, FrameRef};
use crate::capture::Timestamp;

/// Receives one UDP flow's datagrams.
pub trait DatagramObserver {
    /// One datagram.
    fn datagram(&mut self, dir: Dir, payload: &[u8], frame: FrameRef);
}

/// Who talks to whom in a UDP flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpMeta {
    /// The client.
    pub client: SocketAddr,
    /// The server.
    pub server: SocketAddr,
    /// Outermost VLAN id.
    pub vlan: Option<u16>,
    /// First frame.
    pub first: FrameRef,
}

/// A UDP flow leaving the table.
#[derive(Debug)]
pub struct FinishedUdp<O> {
    /// Endpoints.
    pub meta: UdpMeta,
    /// Last frame.
    pub last: FrameRef,
    /// Datagrams per direction.
    pub datagrams: [u64; 2],
    /// The observer.
    pub observer: O,
}

struct Flow<O> {
    meta: UdpMeta,
    last: FrameRef,
    datagrams: [u64; 2],
    observer: O,
}

/// The table of live UDP flows.
pub struct UdpTable<O> {
    flows: super::FlowMap<(SocketAddr, SocketAddr), Flow<O>>,
    idle_ns: i64,
}

fn key(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

impl<O: DatagramObserver> UdpTable<O> {
    /// A table expiring flows silent for `idle_ns`.
    pub fn new(idle_ns: i64) -> Self {
        UdpTable {
            flows: super::FlowMap::default(),
            idle_ns,
        }
    }

    /// Takes one datagram. `start` decides whether an unknown flow is tracked and who the
    /// client is: `Some(true)` the sender, `Some(false)` the receiver, `None` not tracked.
    #[allow(clippy::too_many_arguments)]
    pub fn datagram(
        &mut self,
        src: SocketAddr,
        dst: SocketAddr,
        vlan: Option<u16>,
        payload: &[u8],
        frame: FrameRef,
        start: &mut dyn FnMut(&[u8]) -> Option<bool>,
        new_observer: &mut dyn FnMut(&UdpMeta) -> O,
    ) {
        let k = key(src, dst);
        if let std::collections::hash_map::Entry::Vacant(slot) = self.flows.entry(k) {
            let Some(client_is_src) = start(payload) else {
                return;
            };
            let (client, server) = if client_is_src {
                (src, dst)
            } else {
                (dst, src)
            };
            let meta = UdpMeta {
                client,
                server,
                vlan,
                first: frame,
            };
            let observer = new_observer(&meta);
            slot.insert(Flow {
                meta,
                last: frame,
                datagrams: [0; 2],
                observer,
            });
        }
        if let Some(f) = self.flows.get_mut(&k) {
            let dir = if src == f.meta.client {
                Dir::ToServer
            } else {
                Dir::ToClient
            };
            f.last = frame;
            if let Some(n) = f.datagrams.get_mut(dir.index()) {
                *n += 1;
            }
            f.observer.datagram(dir, payload, frame);
        }
    }

    /// Finishes flows idle at `now`; the caller decides when (see [`super::SweepClock`]).
    pub fn sweep(&mut self, now: Timestamp, done: &mut dyn FnMut(FinishedUdp<O>)) {
        let idle = self.idle_ns;
        let expired: Vec<_> = self
            .flows
            .iter()
            .filter(|(_, f)| now.nanos_since(f.last.ts) > idle)
            .map(|(k, _)| *k)
            .collect();
        for k in expired {
            if let Some(f) = self.flows.remove(&k) {
                done(FinishedUdp {
                    meta: f.meta,
                    last: f.last,
                    datagrams: f.datagrams,
                    observer: f.observer,
                });
            }
        }
    }

    /// The smallest first frame of the live flows.
    pub fn min_live_first(&self) -> Option<u64> {
        self.flows.values().map(|f| f.meta.first.number).min()
    }

    /// The endpoints of every live flow, in no particular order.
    pub fn endpoints(&self) -> impl Iterator<Item = (SocketAddr, SocketAddr)> + '_ {
        self.flows.keys().copied()
    }

    /// Finishes every flow, in order of first frame.
    pub fn finish_all(&mut self, done: &mut dyn FnMut(FinishedUdp<O>)) {
        let mut all: Vec<Flow<O>> = self.flows.drain().map(|(_, f)| f).collect();
        all.sort_by_key(|f| f.meta.first.number);
        for f in all {
            done(FinishedUdp {
                meta: f.meta,
                last: f.last,
                datagrams: f.datagrams,
                observer: f.observer,
            });
        }
    }
}
