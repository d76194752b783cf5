//! RDP over UDP (MS-RDPEUDP 2.2): the FEC header, the SYN payload (initial sequence
//! number, MTUs), CORRELATION_ID and SYNEX, and locating TLS/DTLS records carried in
//! RDPEUDP datagrams.

/// uFlags bits of RDPUDP_FEC_HEADER (MS-RDPEUDP 2.2.2.1).
pub mod flags {
    /// RDPUDP_FLAG_SYN.
    pub const SYN: u16 = 0x0001;
    /// RDPUDP_FLAG_FIN.
    pub const FIN: u16 = 0x0002;
    /// RDPUDP_FLAG_ACK.
    pub const ACK: u16 = 0x0004;
    /// RDPUDP_FLAG_DATA.
    pub const DATA: u16 = 0x0008;
    /// RDPUDP_FLAG_FEC.
    pub const FEC: u16 = 0x0010;
    /// RDPUDP_FLAG_SYNLOSSY: lossy (DTLS) transport requested.
    pub const SYNLOSSY: u16 = 0x0200;
    /// RDPUDP_FLAG_CORRELATION_ID.
    pub const CORRELATION_ID: u16 = 0x0800;
    /// RDPUDP_FLAG_SYNEX.
    pub const SYNEX: u16 = 0x1000;
}

/// Size of RDPUDP_FEC_HEADER.
pub const FEC_HEADER_LEN: usize = 8;
/// RDPEUDP SYN datagrams are padded to between these sizes (MS-RDPEUDP 3.1.5.1.1).
pub const SYN_LEN: std::ops::RangeInclusive<usize> = 1132..=1232;

/// RDPUDP_FEC_HEADER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FecHeader {
    /// snSourceAck (0xFFFFFFFF in a client SYN).
    pub source_ack: u32,
    /// uReceiveWindowSize.
    pub receive_window: u16,
    /// uFlags.
    pub flags: u16,
}

impl FecHeader {
    /// Whether all bits of `f` are set.
    pub fn has(&self, f: u16) -> bool {
        self.flags & f == f
    }
}

fn be16(i: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(i.get(at..at + 2)?.try_into().ok()?))
}

fn be32(i: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(i.get(at..at + 4)?.try_into().ok()?))
}

/// Parses the FEC header at the start of a datagram.
pub fn parse_fec_header(i: &[u8]) -> Option<FecHeader> {
    Some(FecHeader {
        source_ack: be32(i, 0)?,
        receive_window: be16(i, 4)?,
        flags: be16(i, 6)?,
    })
}

/// What a SYN or SYN+ACK datagram carries (MS-RDPEUDP 2.2.2.5, 2.2.2.8, 2.2.2.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Syn {
    /// The FEC header.
    pub header: FecHeader,
    /// snInitialSequenceNumber.
    pub initial_seq: u32,
    /// uUpStreamMtu.
    pub up_mtu: u16,
    /// uDownStreamMtu.
    pub down_mtu: u16,
    /// RDPUDP_CORRELATION_ID_PAYLOAD.
    pub correlation_id: Option<[u8; 16]>,
    /// uUdpVer of RDPUDP_SYNDATAEX_PAYLOAD (1, 2, or 0x101 for RDPEUDP2).
    pub version: Option<u16>,
}

/// Parses a datagram carrying RDPUDP_FLAG_SYN.
pub fn parse_syn(i: &[u8]) -> Option<Syn> {
    let header = parse_fec_header(i)?;
    if !header.has(flags::SYN) {
        return None;
    }
    let (initial_seq, up_mtu, down_mtu) = (be32(i, 8)?, be16(i, 12)?, be16(i, 14)?);
    let mut at = 16;
    let mut correlation_id = None;
    if header.has(flags::CORRELATION_ID) {
        correlation_id = i.get(at..at + 16).and_then(|b| b.try_into().ok());
        at += 32;
    }
    let version = if header.has(flags::SYNEX) {
        be16(i, at + 2)
    } else {
        None
    };
    Some(Syn {
        header,
        initial_seq,
        up_mtu,
        down_mtu,
        correlation_id,
        version,
    })
}

/// Whether a UDP payload is a client's RDPEUDP SYN (the signature Zeek's DPD uses).
pub fn is_client_syn(i: &[u8]) -> bool {
    SYN_LEN.contains(&i.len())
        && parse_fec_header(i)
            .is_some_and(|h| h.source_ack == u32::MAX && h.has(flags::SYN) && !h.has(flags::ACK))
}

/// A TLS or DTLS record found inside an RDPEUDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CarriedRecord {
    /// Offset in the datagram.
    pub offset: usize,
    /// DTLS rather than TLS.
    pub dtls: bool,
    /// Record content type.
    pub content_type: u8,
    /// Handshake message type when the record is a handshake (first message only).
    pub handshake_type: Option<u8>,
    /// Alert level and description when the record is a plaintext alert.
    pub alert: Option<(u8, u8)>,
}

/// Finds the first TLS/DTLS record header in the first bytes of an RDPEUDP datagram (after
/// the FEC, ACK-vector and source-payload headers, whose sizes vary).
pub fn find_record(i: &[u8]) -> Option<CarriedRecord> {
    const SCAN: usize = 96;
    for off in FEC_HEADER_LEN..i.len().min(SCAN) {
        let (Some(&ct), Some(&maj), Some(&min)) = (i.get(off), i.get(off + 1), i.get(off + 2))
        else {
            break;
        };
        if !(20..=23).contains(&ct) {
            continue;
        }
        let (dtls, len_at, body_at) = match (maj, min) {
            (3, 0..=4) => (false, off + 3, off + 5),
            (0xfe, 0xfd | 0xff) => (true, off + 11, off + 13),
            _ => continue,
        };
        let Some(len) = be16(i, len_at) else { continue };
        if len == 0 || usize::from(len) > 16_384 + 2048 {
            continue;
        }
        let first = i.get(body_at).copied();
        let handshake_type = (ct == 22).then_some(first).flatten();
        let alert = if ct == 21 && len == 2 {
            Some((first?, i.get(body_at + 1).copied()?))
        } else {
            None
        };
        return Some(CarriedRecord {
            offset: off,
            dtls,
            content_type: ct,
            handshake_type,
            alert,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn client_syn_from_zeek_rdpeudp_handshake_success() {
        // zeek/rdpeudp-handshake-success.pcap frame 1 (first 64 bytes, padded to 1232).
        let mut d = hex("ffffffff004018010b127f1504d004d07855d064fbaf43f0b6e8f8aadfad00000000000000000000000000000000000000010003");
        d.resize(1232, 0);
        assert!(is_client_syn(&d));
        let s = parse_syn(&d).unwrap();
        assert_eq!(s.initial_seq, 0x0b12_7f15);
        assert_eq!((s.up_mtu, s.down_mtu), (1232, 1232));
        assert_eq!(s.version, Some(3));
        assert!(s.correlation_id.is_some());
        assert!(!is_client_syn(&d[..1100]));
    }

    #[test]
    fn server_syn_ack_and_tls_inside() {
        // Frame 2: SYN+ACK with SYNEX version 2.
        let mut d = hex("0b127f15004010050f94ea0b04d004d000010002");
        d.resize(1232, 0);
        let s = parse_syn(&d).unwrap();
        assert!(s.header.has(flags::ACK));
        assert_eq!(s.version, Some(2));
        // Frame 3: ACK|DATA with a TLS ClientHello after the source payload header.
        let d = hex("0f94ea0b0400000c000000000b127f160b127f1616030300b2010000ae0303");
        let r = find_record(&d).unwrap();
        assert_eq!(
            (r.offset, r.dtls, r.content_type, r.handshake_type),
            (20, false, 22, Some(1))
        );
        assert!(find_record(&d[..22]).is_none());
    }
}
