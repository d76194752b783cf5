//! TPKT framing (RFC 1006 / T.123 section 8), the outer layer of RDP over TCP.
//!
//! `03 00 LL LL`: version 3, reserved, big-endian length including the 4-byte header.

use super::Framing;

/// Size of the TPKT header.
pub const TPKT_HEADER_LEN: usize = 4;
/// TPKT version byte.
pub const TPKT_VERSION: u8 = 3;

/// Frames one TPKT packet at the head of `i`.
///
/// A length below 7 (header plus the shortest X.224 TPDU) is `Invalid`.
pub fn tpkt_frame(i: &[u8]) -> Framing {
    match i {
        [] => Framing::NeedHeader,
        [v, ..] if *v != TPKT_VERSION => Framing::Invalid,
        [_] | [_, _] | [_, _, _] => Framing::NeedHeader,
        [_, _, hi, lo, ..] => {
            let total = usize::from(u16::from_be_bytes([*hi, *lo]));
            if total < TPKT_HEADER_LEN + 3 {
                Framing::Invalid
            } else {
                Framing::from_len(total, i.len())
            }
        }
    }
}

/// The payload of a complete TPKT packet (the X.224 TPDU), or `None` if `pdu` is not one.
pub fn tpkt_payload(pdu: &[u8]) -> Option<&[u8]> {
    match tpkt_frame(pdu) {
        Framing::Complete(n) => pdu.get(TPKT_HEADER_LEN..n),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // X.224 Connection Request from zeek/rdp-proprietary-encryption.pcap frame 4 (first bytes).
    const CR_HEAD: [u8; 4] = [0x03, 0x00, 0x00, 0x2c];

    #[test]
    fn frames_complete_packet() {
        let mut pdu = CR_HEAD.to_vec();
        pdu.resize(0x2c, 0);
        assert_eq!(tpkt_frame(&pdu), Framing::Complete(0x2c));
        assert_eq!(tpkt_payload(&pdu).map(<[u8]>::len), Some(0x2c - 4));
    }

    #[test]
    fn one_byte_short_needs_more() {
        let mut pdu = CR_HEAD.to_vec();
        pdu.resize(0x2b, 0);
        assert_eq!(tpkt_frame(&pdu), Framing::NeedMore(0x2c));
        assert_eq!(tpkt_frame(&pdu[..3]), Framing::NeedHeader);
    }

    #[test]
    fn rejects_wrong_version_and_tiny_length() {
        assert_eq!(tpkt_frame(&[0x16, 0x03, 0x01, 0x00]), Framing::Invalid);
        assert_eq!(tpkt_frame(&[0x03, 0x00, 0x00, 0x04]), Framing::Invalid);
    }
}
