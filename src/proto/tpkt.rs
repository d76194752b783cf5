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

    /// Arbitrary bytes (and bytes opening like a real PDU): no panic, framing within bounds.
    mod arbitrary_bytes {
        use super::*;
        use crate::proto::Framing;
        use proptest::prelude::*;
        /// The framing contract: a complete PDU fits in the input, a claimed length is above
        /// it, and neither exceeds `max`.
        fn framing_ok(f: Framing, input: usize, max: usize) -> Result<(), TestCaseError> {
            match f {
                Framing::Complete(n) => {
                    prop_assert!(n > 0 && n <= input && n <= max, "{:?} of {}", f, input)
                }
                Framing::NeedMore(n) => prop_assert!(n > input && n <= max, "{:?} of {}", f, input),
                Framing::NeedHeader | Framing::Invalid => {}
            }
            Ok(())
        }

        fn bytes() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..400),
                (
                    prop::sample::select(vec![
                        &[3u8, 0][..],
                        &[3, 0, 0, 7],
                        &[3, 0, 0xff, 0xff],
                        &[3]
                    ]),
                    prop::collection::vec(any::<u8>(), 0..400)
                )
                    .prop_map(|(head, mut v)| {
                        let mut h: Vec<u8> = head.to_vec();
                        h.append(&mut v);
                        h
                    }),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1024))]
            #[test]
            fn no_panic_and_bounded(i in bytes()) {
                framing_ok(tpkt_frame(&i), i.len(), 0xFFFF)?;
                if let Framing::Complete(n) = tpkt_frame(&i) {
                    prop_assert!(n >= TPKT_HEADER_LEN + 3);
                }
                if let Some(p) = tpkt_payload(&i) {
                    prop_assert!(p.len() + TPKT_HEADER_LEN <= i.len());
                }
            }
        }
    }
}
