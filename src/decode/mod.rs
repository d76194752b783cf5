//! Stage 2: a frame's bytes to a TCP segment, UDP datagram or ICMP error (etherparse).
//!
//! Pure function of (link type, bytes). Checksums are ignored (offload). The payload is
//! bounded by the IP length (never Ethernet padding); an IP total length of 0
//! (segmentation offload) falls back to the captured length.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod link;

use std::net::IpAddr;

use etherparse::{IpNumber, LaxIpSlice, TcpSlice, UdpSlice};

pub use link::{network_payload, NetworkPayload};

use crate::capture::LinkType;

/// TCP flag bits as on the wire.
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// A decoded IP packet carrying something rdpdiag looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<'a> {
    /// IP source.
    pub src: IpAddr,
    /// IP destination.
    pub dst: IpAddr,
    /// Outermost 802.1Q VLAN id, if tagged.
    pub vlan: Option<u16>,
    /// The transport part.
    pub transport: Transport<'a>,
}

impl Packet<'_> {
    /// The endpoints `(src, src_port, dst, dst_port)` of a TCP segment or UDP datagram;
    /// `None` for an ICMP error (whose endpoints are those it quotes).
    pub fn endpoints(&self) -> Option<(IpAddr, u16, IpAddr, u16)> {
        match &self.transport {
            Transport::Tcp(s) => Some((self.src, s.src_port, self.dst, s.dst_port)),
            Transport::Udp {
                src_port, dst_port, ..
            } => Some((self.src, *src_port, self.dst, *dst_port)),
            Transport::IcmpError(_) => None,
        }
    }
}

/// The transport layer of a [`Packet`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport<'a> {
    /// A TCP segment.
    Tcp(TcpSegment<'a>),
    /// A UDP datagram.
    Udp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
        /// Payload bounded by the UDP length.
        payload: &'a [u8],
    },
    /// An ICMP or ICMPv6 error quoting a packet.
    IcmpError(IcmpError),
}

/// The parts of a TCP segment that the flow stage needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number (meaningful when ACK is set).
    pub ack: u32,
    /// Flag bits, see [`tcp_flags`].
    pub flags: u8,
    /// Advertised window (unscaled).
    pub window: u16,
    /// Payload, bounded by the IP length.
    pub payload: &'a [u8],
}

impl TcpSegment<'_> {
    /// Whether all bits of `flag` are set.
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag == flag
    }
}

/// An ICMP/ICMPv6 error and the connection it quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpError {
    /// ICMPv6 rather than ICMPv4.
    pub v6: bool,
    /// ICMP type.
    pub icmp_type: u8,
    /// ICMP code.
    pub code: u8,
    /// Next-hop MTU of "fragmentation needed" / "packet too big".
    pub mtu: Option<u32>,
    /// The quoted packet's IP source.
    pub quoted_src: IpAddr,
    /// The quoted packet's IP destination.
    pub quoted_dst: IpAddr,
    /// The quoted packet's IP protocol (6 TCP, 17 UDP).
    pub quoted_protocol: u8,
    /// The quoted source port.
    pub quoted_src_port: u16,
    /// The quoted destination port.
    pub quoted_dst_port: u16,
    /// The quoted TCP sequence number, when the quote is TCP.
    pub quoted_seq: Option<u32>,
}

impl IcmpError {
    /// Whether this ICMP type is an error that ends or hinders a connection.
    fn is_error_type(v6: bool, t: u8) -> bool {
        if v6 {
            matches!(t, 1..=4)
        } else {
            matches!(t, 3 | 4 | 11 | 12)
        }
    }
}

/// Decodes one frame. `None` for anything that is not IPv4/IPv6 TCP, UDP or an ICMP error,
/// and for frames too short to read those headers.
///
/// The common case, an IPv4 header without options carrying a whole TCP header, is read at
/// its fixed offsets ([`ipv4_tcp`]); everything else goes through etherparse
/// ([`decode_network`]). Both give the same packet wherever the first applies (tested on every
/// frame of testdata and the public corpus); the fixed reads halve the cost of decoding.
pub fn decode(linktype: LinkType, data: &[u8]) -> Option<Packet<'_>> {
    let net = network_payload(linktype, data)?;
    ipv4_tcp(net).or_else(|| decode_network(net))
}

/// An IPv4 packet with a 20-byte header (no options), not fragmented, carrying TCP with a
/// complete header, read at fixed offsets; `None` for anything else. The bounds are
/// etherparse's lax ones: the payload ends at the IP total length, or at the end of the
/// captured bytes when the packet was cut short.
pub fn ipv4_tcp(net: NetworkPayload<'_>) -> Option<Packet<'_>> {
    let b = net.bytes;
    let header: &[u8; 20] = b.get(..20)?.try_into().ok()?;
    let [version_ihl, _, t0, t1, _, _, f0, f1, _, protocol, ..] = *header;
    let total = usize::from(u16::from_be_bytes([t0, t1]));
    let fragment = u16::from_be_bytes([f0, f1]) & 0x3fff;
    if version_ihl != 0x45 || protocol != 6 || fragment != 0 || total < 20 {
        return None;
    }
    let tcp = b.get(20..total.min(b.len()))?;
    let fixed: &[u8; 20] = tcp.get(..20)?.try_into().ok()?;
    let [sp0, sp1, dp0, dp1, s0, s1, s2, s3, a0, a1, a2, a3, offset, flags, w0, w1, ..] = *fixed;
    if offset >> 4 < 5 {
        return None;
    }
    let payload = tcp.get(usize::from(offset >> 4) * 4..)?;
    let [_, _, _, _, _, _, _, _, _, _, _, _, src @ .., _, _, _, _] = *header;
    let [.., dst0, dst1, dst2, dst3] = *header;
    Some(Packet {
        src: IpAddr::from(src),
        dst: IpAddr::from([dst0, dst1, dst2, dst3]),
        vlan: net.vlan,
        transport: Transport::Tcp(TcpSegment {
            src_port: u16::from_be_bytes([sp0, sp1]),
            dst_port: u16::from_be_bytes([dp0, dp1]),
            seq: u32::from_be_bytes([s0, s1, s2, s3]),
            ack: u32::from_be_bytes([a0, a1, a2, a3]),
            flags: flags & 0x1f,
            window: u16::from_be_bytes([w0, w1]),
            payload,
        }),
    })
}

/// Decodes the network layer with etherparse (any IPv4/IPv6 header, extension headers,
/// ICMP errors, UDP).
pub fn decode_network(net: NetworkPayload<'_>) -> Option<Packet<'_>> {
    let ip = LaxIpSlice::from_slice(net.bytes).ok()?.0;
    let payload = ip.payload();
    if payload.fragmented {
        return None;
    }
    let (src, dst) = (ip.source_addr(), ip.destination_addr());
    let transport = match payload.ip_number {
        IpNumber::TCP => {
            let tcp = TcpSlice::from_slice(payload.payload).ok()?;
            // FIN, SYN, RST, PSH, ACK are the low five bits of byte 13 of the header.
            let flags = tcp.slice().get(13).copied().unwrap_or(0) & 0x1f;
            Transport::Tcp(TcpSegment {
                src_port: tcp.source_port(),
                dst_port: tcp.destination_port(),
                seq: tcp.sequence_number(),
                ack: tcp.acknowledgment_number(),
                flags,
                window: tcp.window_size(),
                payload: tcp.payload(),
            })
        }
        IpNumber::UDP => {
            let udp = UdpSlice::from_slice_lax(payload.payload).ok()?;
            Transport::Udp {
                src_port: udp.source_port(),
                dst_port: udp.destination_port(),
                payload: udp.payload(),
            }
        }
        IpNumber::ICMP => Transport::IcmpError(icmp_error(false, payload.payload)?),
        IpNumber::IPV6_ICMP => Transport::IcmpError(icmp_error(true, payload.payload)?),
        _ => return None,
    };
    Some(Packet {
        src,
        dst,
        vlan: net.vlan,
        transport,
    })
}

fn icmp_error(v6: bool, icmp: &[u8]) -> Option<IcmpError> {
    let (&icmp_type, &code) = (icmp.first()?, icmp.get(1)?);
    if !IcmpError::is_error_type(v6, icmp_type) {
        return None;
    }
    let rest: [u8; 4] = icmp.get(4..8)?.try_into().ok()?;
    let mtu = match (v6, icmp_type, code) {
        (false, 3, 4) => Some(u32::from(u16::from_be_bytes([rest[2], rest[3]]))),
        (true, 2, _) => Some(u32::from_be_bytes(rest)),
        _ => None,
    };
    let quoted = LaxIpSlice::from_slice(icmp.get(8..)?).ok()?.0;
    let qp = quoted.payload();
    let q = qp.payload;
    let port = |at: usize| {
        let b: [u8; 2] = q.get(at..at + 2)?.try_into().ok()?;
        Some(u16::from_be_bytes(b))
    };
    let protocol = qp.ip_number.0;
    Some(IcmpError {
        v6,
        icmp_type,
        code,
        mtu,
        quoted_src: quoted.source_addr(),
        quoted_dst: quoted.destination_addr(),
        quoted_protocol: protocol,
        quoted_src_port: port(0)?,
        quoted_dst_port: port(2)?,
        quoted_seq: if protocol == 6 {
            q.get(4..8)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_be_bytes)
        } else {
            None
        },
    })
}

/// A TCP or UDP packet's endpoints `(src, src_port, dst, dst_port)` read straight from the
/// fixed header offsets, for dispatching frames to threads quickly; `None` for anything
/// else (ICMP, IPv6 extension headers, fragments, odd headers), which [`decode`] must
/// classify. Whenever this returns endpoints and [`decode`] finds a TCP segment or UDP
/// datagram, they are its [`Packet::endpoints`].
pub fn tcp_udp_endpoints(linktype: LinkType, data: &[u8]) -> Option<(IpAddr, u16, IpAddr, u16)> {
    let b = network_payload(linktype, data)?.bytes;
    let bytes4 = |at: usize| -> Option<[u8; 4]> { b.get(at..at.checked_add(4)?)?.try_into().ok() };
    let (src, dst, l4) = match b.first()? >> 4 {
        4 => {
            let ihl = usize::from(b.first()? & 0x0f) * 4;
            let frag = u16::from_be_bytes([*b.get(6)?, *b.get(7)?]);
            if ihl < 20 || frag & 0x3fff != 0 || !matches!(b.get(9)?, 6 | 17) {
                return None;
            }
            (IpAddr::from(bytes4(12)?), IpAddr::from(bytes4(16)?), ihl)
        }
        6 => {
            if !matches!(b.get(6)?, 6 | 17) {
                return None;
            }
            let addr = |at: usize| -> Option<IpAddr> {
                let a: [u8; 16] = b.get(at..at + 16)?.try_into().ok()?;
                Some(IpAddr::from(a))
            };
            (addr(8)?, addr(24)?, 40)
        }
        _ => return None,
    };
    let ports = bytes4(l4)?;
    Some((
        src,
        u16::from_be_bytes([ports[0], ports[1]]),
        dst,
        u16::from_be_bytes([ports[2], ports[3]]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An Ethernet/IPv4/TCP frame with payload, as a capture holds it.
    fn frame(ip_total: u16, tcp_offset: u8, payload: &[u8], captured_extra: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&[
            0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        f[16..18].copy_from_slice(&ip_total.to_be_bytes());
        f.extend_from_slice(&[0xc3, 0x50, 0x0d, 0x3d, 1, 2, 3, 4, 5, 6, 7, 8]);
        f.extend_from_slice(&[tcp_offset << 4, 0x18, 0x01, 0x00, 0, 0, 0, 0]);
        f.extend(std::iter::repeat(1u8).take(usize::from(tcp_offset.max(5) - 5) * 4));
        f.extend_from_slice(payload);
        f.extend_from_slice(captured_extra);
        f
    }

    fn both(data: &[u8]) -> (Option<Packet<'_>>, Option<Packet<'_>>) {
        let net = network_payload(LinkType::ETHERNET, data).unwrap();
        (ipv4_tcp(net), decode_network(net))
    }

    #[test]
    fn fixed_offsets_read_what_etherparse_reads() {
        let f = frame(40 + 3, 5, b"abc", &[0; 6]);
        let (fast, full) = both(&f);
        let fast = fast.unwrap();
        assert_eq!(Some(&fast), full.as_ref());
        let Transport::Tcp(seg) = fast.transport else {
            panic!("not tcp")
        };
        // Ethernet padding past the IP total length is not payload.
        assert_eq!(seg.payload, b"abc");
        assert_eq!((seg.src_port, seg.dst_port, seg.flags), (50000, 3389, 0x18));
    }

    #[test]
    fn odd_packets_are_left_to_etherparse() {
        // Total length 0 (segmentation offload): etherparse takes the captured length.
        let tso = frame(0, 5, b"abc", &[]);
        assert!(both(&tso).0.is_none());
        assert!(decode(LinkType::ETHERNET, &tso).is_some());
        // TCP options, cut-short packets: still the same packet both ways.
        for f in [frame(52 + 3, 8, b"abc", &[]), frame(200, 5, b"abc", &[])] {
            let (fast, full) = both(&f);
            assert!(fast.is_some());
            assert_eq!(fast, full);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]
        #[test]
        fn fixed_offsets_never_disagree(
            total in 0u16..120,
            offset in 0u8..16,
            payload in proptest::collection::vec(any::<u8>(), 0..40),
            cut in 0usize..120,
            flip in proptest::collection::vec((14usize..60, any::<u8>()), 0..3),
        ) {
            let mut f = frame(total, offset, &payload, &[0; 4]);
            for (at, v) in flip {
                if let Some(b) = f.get_mut(at) {
                    *b = v;
                }
            }
            f.truncate(cut.max(14));
            let Some(net) = network_payload(LinkType::ETHERNET, &f) else {
                return Ok(());
            };
            if let Some(fast) = ipv4_tcp(net) {
                prop_assert_eq!(Some(fast), decode_network(net));
            }
        }
    }
}
