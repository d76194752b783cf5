//! Fast-path PDUs (MS-RDPBCGR 2.2.8.1.2 client input, 2.2.9.1.2 server output).
//!
//! A fast-path PDU replaces the TPKT header once the connection is active: byte 0 is
//! `fpInputHeader` / `fpOutputHeader` (action in bits 0-1, then numEvents or reserved bits 2-5,
//! flags bits 6-7), then `length1` and an optional `length2`. When the high bit of `length1` is
//! set the length is 15 bits over both bytes (PER-style). The length counts the whole PDU.

use nom::number::complete::u8 as take_u8;
use nom::IResult;
use serde::Serialize;

use super::Framing;

/// FASTPATH_INPUT_ACTION_FASTPATH / FASTPATH_OUTPUT_ACTION_FASTPATH (MS-RDPBCGR 2.2.8.1.2, 2.2.9.1.2).
pub const ACTION_FASTPATH: u8 = 0;
/// FASTPATH_*_ACTION_X224: the byte is the TPKT version (3), not a fast-path header.
pub const ACTION_X224: u8 = 3;
/// Largest length a fast-path header can express (15 bits, MS-RDPBCGR 2.2.9.1.2 length2).
pub const MAX_FASTPATH_LEN: usize = 0x7FFF;

/// Fast-path header flags (bits 6-7 of byte 0, MS-RDPBCGR 2.2.8.1.2 / 2.2.9.1.2).
pub mod flags {
    /// FASTPATH_INPUT_SECURE_CHECKSUM / FASTPATH_OUTPUT_SECURE_CHECKSUM: salted MAC signature.
    pub const SECURE_CHECKSUM: u8 = 0x1;
    /// FASTPATH_INPUT_ENCRYPTED / FASTPATH_OUTPUT_ENCRYPTED: payload encrypted with Standard RDP Security.
    pub const ENCRYPTED: u8 = 0x2;
}

/// A fast-path PDU header (MS-RDPBCGR 2.2.8.1.2 TS_FP_INPUT_PDU / 2.2.9.1.2 TS_FP_UPDATE_PDU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FastPathHeader {
    /// Bits 2-5 of byte 0: numEvents for client input (0 = a numEvents byte follows), reserved in output.
    pub num_events: u8,
    /// Bits 6-7 of byte 0: [`flags`].
    pub flags: u8,
    /// Total PDU length, header included.
    pub length: usize,
    /// Header size: 2 or 3 bytes.
    pub header_len: usize,
}

impl FastPathHeader {
    /// Whether the FASTPATH_*_ENCRYPTED flag is set.
    pub fn encrypted(&self) -> bool {
        self.flags & flags::ENCRYPTED != 0
    }
}

/// Whether `b` can start a fast-path PDU: action bits (0-1) are FASTPATH (0), MS-RDPBCGR 2.2.9.1.2.
pub fn is_fastpath_start(b: u8) -> bool {
    b & 0x03 == ACTION_FASTPATH
}

/// nom parser for the header; `Ok(None)` for a byte that is not a fast-path action.
fn header(i: &[u8]) -> IResult<&[u8], Option<FastPathHeader>> {
    let (i, b0) = take_u8(i)?;
    if !is_fastpath_start(b0) {
        return Ok((i, None));
    }
    let (i, l1) = take_u8(i)?;
    let (i, length, header_len) = if l1 & 0x80 != 0 {
        let (i, l2) = take_u8(i)?;
        (i, usize::from(l1 & 0x7F) << 8 | usize::from(l2), 3)
    } else {
        (i, usize::from(l1), 2)
    };
    Ok((
        i,
        Some(FastPathHeader {
            num_events: (b0 >> 2) & 0x0F,
            flags: b0 >> 6,
            length,
            header_len,
        }),
    ))
}

/// Reads a fast-path header (MS-RDPBCGR 2.2.9.1.2); `None` if short, not fast-path, or length < header.
pub fn parse_fastpath_header(i: &[u8]) -> Option<FastPathHeader> {
    match header(i) {
        Ok((_, Some(h))) if h.length >= h.header_len => Some(h),
        _ => None,
    }
}

/// Frames one fast-path PDU (MS-RDPBCGR 2.2.8.1.2 / 2.2.9.1.2) at the head of `i`.
///
/// `Invalid` when the action is not FASTPATH or the length is shorter than its own header.
pub fn fastpath_frame(i: &[u8]) -> Framing {
    match i.first() {
        None => return Framing::NeedHeader,
        Some(b) if !is_fastpath_start(*b) => return Framing::Invalid,
        Some(_) => {}
    }
    match header(i) {
        Ok((_, Some(h))) if h.length < h.header_len => Framing::Invalid,
        Ok((_, Some(h))) => Framing::from_len(h.length, i.len()),
        Ok((_, None)) => Framing::Invalid,
        Err(_) => Framing::NeedHeader,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// zeek/mapi.pcap frame 62 (server → client, whole segment, 21 bytes): fast-path output.
    const MAPI_62: [u8; 21] = [
        0x80, // fpOutputHeader: action 0, flags 2 = FASTPATH_OUTPUT_ENCRYPTED
        0x15, // length1: 21 (1-byte form)
        0xe8, 0x94, 0xb2, 0x06, 0xd3, 0x8a, 0x18, 0x3e, // dataSignature (8 bytes MAC)
        0x3b, 0x55, 0xae, 0x44, 0xb7, 0x40, 0x1e, 0x4c, 0x90, 0xaf, 0xde, // encrypted updates
    ];

    /// suricata-verify/RDP-003.pcap frame 139 (server → client, 153-byte segment): first 3 bytes.
    const RDP003_139_HEAD: [u8; 3] = [
        0xc0, // fpOutputHeader: action 0, flags 3 = SECURE_CHECKSUM | ENCRYPTED
        0x80, 0x99, // length1 high bit set: 15-bit length 0x0099 = 153
    ];

    /// suricata-verify/RDP-003.pcap frame 37 (client → server, 22 bytes): first 2 bytes.
    const RDP003_37_HEAD: [u8; 2] = [
        0x90, // fpInputHeader: action 0, numEvents 4, flags 2 = FASTPATH_INPUT_ENCRYPTED
        0x16, // length1: 22
    ];

    #[test]
    fn one_byte_length_output() {
        assert!(is_fastpath_start(MAPI_62[0]));
        assert_eq!(fastpath_frame(&MAPI_62), Framing::Complete(21));
        let h = parse_fastpath_header(&MAPI_62).unwrap();
        assert_eq!(
            (h.length, h.header_len, h.flags, h.num_events),
            (21, 2, flags::ENCRYPTED, 0)
        );
        assert!(h.encrypted());
    }

    #[test]
    fn one_byte_short() {
        assert_eq!(fastpath_frame(&MAPI_62[..20]), Framing::NeedMore(21));
        assert_eq!(fastpath_frame(&MAPI_62[..1]), Framing::NeedHeader);
        assert_eq!(fastpath_frame(&RDP003_139_HEAD[..2]), Framing::NeedHeader);
        assert_eq!(fastpath_frame(&[]), Framing::NeedHeader);
    }

    #[test]
    fn two_byte_length_output_and_input() {
        assert_eq!(fastpath_frame(&RDP003_139_HEAD), Framing::NeedMore(153));
        let h = parse_fastpath_header(&RDP003_139_HEAD).unwrap();
        assert_eq!((h.length, h.header_len, h.flags), (153, 3, 3));
        let h = parse_fastpath_header(&RDP003_37_HEAD).unwrap();
        assert_eq!((h.length, h.num_events, h.flags), (22, 4, flags::ENCRYPTED));
        // Maximum 15-bit length.
        assert_eq!(
            fastpath_frame(&[0x00, 0xff, 0xff]),
            Framing::NeedMore(MAX_FASTPATH_LEN)
        );
    }

    #[test]
    fn rejects_tpkt_tls_and_tiny_lengths() {
        // TPKT (03) and TLS application data (17) have action bits 3.
        assert_eq!(fastpath_frame(&[0x03, 0x00, 0x00, 0x0b]), Framing::Invalid);
        assert_eq!(fastpath_frame(&[0x17, 0x03, 0x03]), Framing::Invalid);
        assert!(!is_fastpath_start(0x03));
        // Lengths shorter than the header itself.
        assert_eq!(fastpath_frame(&[0x00, 0x01]), Framing::Invalid);
        assert_eq!(fastpath_frame(&[0x00, 0x80, 0x02]), Framing::Invalid);
        assert_eq!(parse_fastpath_header(&[0x00, 0x01]), None);
        // Smallest legal PDUs.
        assert_eq!(fastpath_frame(&[0x00, 0x02]), Framing::Complete(2));
        assert_eq!(fastpath_frame(&[0x00, 0x80, 0x03]), Framing::Complete(3));
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
                        &[0x00u8][..],
                        &[0x80, 0x80],
                        &[0x44, 0x7f],
                        &[0xc0, 0xff, 0xff]
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
                framing_ok(fastpath_frame(&i), i.len(), MAX_FASTPATH_LEN)?;
                if let Some(h) = parse_fastpath_header(&i) {
                    prop_assert!(h.header_len <= h.length && h.length <= MAX_FASTPATH_LEN);
                }
            }
        }
    }
}
