//! Link layers: Ethernet (802.1Q/QinQ), Linux cooked SLL/SLL2, raw IP, BSD NULL/LOOP.

use crate::capture::LinkType;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
/// At most this many stacked VLAN tags are skipped.
const MAX_VLAN_TAGS: usize = 4;

/// The network-layer bytes of a frame.
#[derive(Debug, Clone, Copy)]
pub struct NetworkPayload<'a> {
    /// Bytes starting at the IP header.
    pub bytes: &'a [u8],
    /// Outermost VLAN id, if the frame was tagged.
    pub vlan: Option<u16>,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s: [u8; 2] = b.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(u16::from_be_bytes(s))
}

/// Strips the link layer. `None` when the frame does not carry IPv4/IPv6.
pub fn network_payload(linktype: LinkType, data: &[u8]) -> Option<NetworkPayload<'_>> {
    let ip = |bytes| Some(NetworkPayload { bytes, vlan: None });
    match linktype {
        LinkType::ETHERNET => ethernet(data),
        LinkType::RAW | LinkType(12) | LinkType(14) | LinkType::IPV4 | LinkType::IPV6 => ip(data),
        LinkType::LINUX_SLL => ip_if_ethertype(be16(data, 14)?, data.get(16..)?),
        LinkType::LINUX_SLL2 => ip_if_ethertype(be16(data, 0)?, data.get(20..)?),
        LinkType::NULL | LinkType::LOOP => {
            let fam: [u8; 4] = data.get(..4)?.try_into().ok()?;
            // The family is host byte order for NULL; accept either order.
            let v = u32::from_le_bytes(fam);
            let family = if v > 0xffff { v.swap_bytes() } else { v };
            match family {
                2 | 24 | 28 | 30 => ip(data.get(4..)?),
                _ => None,
            }
        }
        _ => None,
    }
}

fn ip_if_ethertype(ethertype: u16, rest: &[u8]) -> Option<NetworkPayload<'_>> {
    match ethertype {
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => Some(NetworkPayload {
            bytes: rest,
            vlan: None,
        }),
        _ => None,
    }
}

fn ethernet(data: &[u8]) -> Option<NetworkPayload<'_>> {
    let mut ethertype = be16(data, 12)?;
    let mut at = 14usize;
    let mut vlan = None;
    for _ in 0..MAX_VLAN_TAGS {
        if !matches!(
            ethertype,
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD
        ) {
            break;
        }
        let tci = be16(data, at)?;
        vlan.get_or_insert(tci & 0x0fff);
        ethertype = be16(data, at + 2)?;
        at += 4;
    }
    match ethertype {
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => Some(NetworkPayload {
            bytes: data.get(at..)?,
            vlan,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qinq_tags_are_skipped_and_outer_vlan_kept() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[
            0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x00, 0xc8, 0x08, 0x00, 0x45,
        ]);
        let p = network_payload(LinkType::ETHERNET, &f).unwrap();
        assert_eq!(p.vlan, Some(100));
        assert_eq!(p.bytes, &[0x45]);
    }

    #[test]
    fn null_loopback_either_byte_order() {
        let le = [2, 0, 0, 0, 0x45];
        let be = [0, 0, 0, 30, 0x60];
        assert!(network_payload(LinkType::NULL, &le).is_some());
        assert!(network_payload(LinkType::NULL, &be).is_some());
        assert!(network_payload(LinkType::NULL, &[7, 0, 0, 0, 0]).is_none());
    }

    #[test]
    fn short_frames_are_none() {
        assert!(network_payload(LinkType::ETHERNET, &[0; 13]).is_none());
        assert!(network_payload(LinkType::LINUX_SLL2, &[0x08, 0x00]).is_none());
    }
}
