//! X.224 (ISO 8073 class 0) TPDUs as used by RDP (MS-RDPBCGR 2.2.1.1, 2.2.1.2, 2.2.2.x).
//!
//! Input is the TPKT payload. The Connection Request may carry a cookie
//! (`Cookie: mstshash=`) or a routing token (`Cookie: msts=`, `tsv://`), then an
//! optional RDP_NEG_REQ and optional RDP_NEG_CORRELATION_INFO.

use super::nego::{self, NegReq, NegResult, Protocols};
use super::ParseError;

/// TPDU code of a Connection Request.
pub const CODE_CR: u8 = 0xE0;
/// TPDU code of a Connection Confirm.
pub const CODE_CC: u8 = 0xD0;
/// TPDU code of a Data TPDU.
pub const CODE_DT: u8 = 0xF0;
/// TPDU code of a Disconnect Request.
pub const CODE_DR: u8 = 0x80;
/// TPDU code of an Error TPDU.
pub const CODE_ER: u8 = 0x70;

/// Longest cookie / routing token line we accept (the spec puts no limit; real ones are short).
pub const MAX_COOKIE_LEN: usize = 1024;

/// What precedes RDP_NEG_REQ in a Connection Request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutingInfo<'a> {
    /// `Cookie: mstshash=IDENTIFIER` (usually a user name, truncated by mstsc).
    Cookie(&'a str),
    /// A routing token (`Cookie: msts=...` or `tsv://...`), whole line without CRLF.
    RoutingToken(&'a str),
    /// Any other text line ending in CRLF.
    Other(&'a str),
}

/// X.224 Connection Request (MS-RDPBCGR 2.2.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRequest<'a> {
    /// Cookie or routing token, if present.
    pub routing: Option<RoutingInfo<'a>>,
    /// RDP_NEG_REQ, absent for pre-Vista clients.
    pub neg_req: Option<NegReq>,
    /// The 16-byte correlation id of RDP_NEG_CORRELATION_INFO.
    pub correlation_id: Option<[u8; 16]>,
    /// Bytes left over after the known parts (a malformed or exotic request).
    pub trailing: usize,
}

impl ConnectionRequest<'_> {
    /// The requested protocols; a request without RDP_NEG_REQ means Standard RDP Security.
    pub fn requested(&self) -> Protocols {
        self.neg_req.map_or(Protocols(0), |n| n.requested)
    }
}

/// An X.224 TPDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tpdu<'a> {
    /// Connection Request (client to server).
    ConnectionRequest(ConnectionRequest<'a>),
    /// Connection Confirm, with its negotiation result when present.
    ConnectionConfirm(Option<NegResult>),
    /// Data TPDU with its user data (MCS PDUs).
    Data(&'a [u8]),
    /// Disconnect Request with its reason byte.
    DisconnectRequest(u8),
    /// Error TPDU.
    Error,
    /// Any other TPDU code.
    Other(u8),
}

/// Parses one X.224 TPDU from a TPKT payload.
pub fn parse_tpdu(i: &[u8]) -> Result<Tpdu<'_>, ParseError> {
    let ((), code) = match i {
        [_li, code, ..] => ((), *code & 0xF0),
        _ => return Err(ParseError::new("x224 tpdu", "shorter than 2 bytes")),
    };
    // The length indicator counts the header bytes after itself. RDP puts everything in the
    // header's variable part; a length indicator that disagrees with the TPKT length is
    // tolerated by reading to the end of the TPDU.
    match code {
        CODE_DT => {
            let data = i
                .get(3..)
                .ok_or_else(|| ParseError::new("x224 data", "shorter than 3 bytes"))?;
            Ok(Tpdu::Data(data))
        }
        CODE_CR | CODE_CC | CODE_DR => {
            let fixed = i.get(..7).ok_or_else(|| {
                ParseError::new(
                    "x224 tpdu",
                    format!("{} bytes, fixed header needs 7", i.len()),
                )
            })?;
            let var = i.get(7..).unwrap_or_default();
            match code {
                CODE_CR => Ok(Tpdu::ConnectionRequest(parse_cr_variable(var))),
                CODE_CC => Ok(Tpdu::ConnectionConfirm(nego::parse_neg_result(var))),
                _ => Ok(Tpdu::DisconnectRequest(fixed.get(6).copied().unwrap_or(0))),
            }
        }
        CODE_ER => Ok(Tpdu::Error),
        other => Ok(Tpdu::Other(other)),
    }
}

/// Splits the leading CRLF-terminated text line, if the input starts with one.
fn take_line(i: &[u8]) -> Option<(&str, &[u8])> {
    let window = i.get(..i.len().min(MAX_COOKIE_LEN + 2)).unwrap_or(i);
    let end = window.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(window.get(..end)?).ok()?;
    Some((line, i.get(end + 2..)?))
}

/// Parses the variable part of a Connection Request: routing info, RDP_NEG_REQ, correlation info.
fn parse_cr_variable(i: &[u8]) -> ConnectionRequest<'_> {
    let mut rest = i;
    let mut routing = None;
    if rest.first().is_some_and(|b| *b != nego::TYPE_RDP_NEG_REQ) {
        if let Some((line, after)) = take_line(rest) {
            routing = Some(classify_routing(line));
            rest = after;
        }
    }
    let mut neg_req = None;
    let mut correlation_id = None;
    if let Some((ty, flags, value)) = nego::parse_neg_struct(rest) {
        if ty == nego::TYPE_RDP_NEG_REQ {
            neg_req = Some(NegReq {
                flags,
                requested: Protocols(value),
            });
            rest = rest.get(8..).unwrap_or_default();
            correlation_id = parse_correlation_info(rest);
            if correlation_id.is_some() {
                rest = rest.get(36..).unwrap_or_default();
            }
        }
    }
    ConnectionRequest {
        routing,
        neg_req,
        correlation_id,
        trailing: rest.len(),
    }
}

/// RDP_NEG_CORRELATION_INFO (MS-RDPBCGR 2.2.1.1.2): type 6, flags, length 36, 16-byte id, 16 reserved.
fn parse_correlation_info(i: &[u8]) -> Option<[u8; 16]> {
    let b = i.get(..36)?;
    if b.first() != Some(&nego::TYPE_RDP_CORRELATION_INFO) || b.get(2..4) != Some(&[36, 0]) {
        return None;
    }
    b.get(4..20)?.try_into().ok()
}

fn classify_routing(line: &str) -> RoutingInfo<'_> {
    if let Some(v) = line.strip_prefix("Cookie: mstshash=") {
        RoutingInfo::Cookie(v)
    } else if line.starts_with("Cookie: msts=")
        || line.starts_with("tsv:")
        || line.starts_with("mth://")
        || line.starts_with("Cookie: ")
    {
        RoutingInfo::RoutingToken(line)
    } else {
        RoutingInfo::Other(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// X.224 CR of zeek/rdp-proprietary-encryption.pcap frame 4, TPKT header removed.
    fn cr_with_cookie() -> Vec<u8> {
        let mut v = vec![0x27, 0xe0, 0, 0, 0, 0, 0]; // LI 39, CR, dst-ref, src-ref, class 0
        v.extend_from_slice(b"Cookie: mstshash=FTBCO\\A70\r\n");
        v.extend_from_slice(&[0x01, 0x00, 0x08, 0x00, 0x01, 0x00, 0x00, 0x00]); // NEG_REQ SSL
        v[0] = (v.len() - 1) as u8;
        v
    }

    #[test]
    fn parses_cookie_and_neg_req() {
        let cr = cr_with_cookie();
        let Ok(Tpdu::ConnectionRequest(req)) = parse_tpdu(&cr) else {
            panic!("not a CR")
        };
        assert_eq!(req.routing, Some(RoutingInfo::Cookie("FTBCO\\A70")));
        assert_eq!(req.requested(), Protocols(1));
        assert_eq!(req.trailing, 0);
    }

    #[test]
    fn cr_one_byte_short_loses_only_neg_req() {
        let cr = cr_with_cookie();
        let Ok(Tpdu::ConnectionRequest(req)) = parse_tpdu(&cr[..cr.len() - 1]) else {
            panic!("not a CR")
        };
        assert_eq!(req.neg_req, None);
        assert!(req.routing.is_some());
    }

    #[test]
    fn routing_token_and_no_cookie() {
        let mut v = vec![0x00, 0xe0, 0, 0, 0, 0, 0];
        v.extend_from_slice(b"Cookie: msts=3640205228.15629.0000\r\n");
        v[0] = (v.len() - 1) as u8;
        let Ok(Tpdu::ConnectionRequest(req)) = parse_tpdu(&v) else {
            panic!()
        };
        assert!(matches!(req.routing, Some(RoutingInfo::RoutingToken(_))));
        // A CR with only RDP_NEG_REQ (zeek/rdp-no-cookie-mstshash.pcap).
        let v = [
            0x0e, 0xe0, 0, 0, 0, 0, 0, 0x01, 0x00, 0x08, 0x00, 0x0b, 0, 0, 0,
        ];
        let Ok(Tpdu::ConnectionRequest(req)) = parse_tpdu(&v) else {
            panic!()
        };
        assert_eq!(req.routing, None);
        assert_eq!(req.requested(), Protocols(0xb));
    }

    #[test]
    fn confirm_with_failure_and_legacy_confirm() {
        let cc = [
            0x0e, 0xd0, 0, 0, 0x12, 0x34, 0, 0x03, 0, 0x08, 0, 0x02, 0, 0, 0,
        ];
        assert_eq!(
            parse_tpdu(&cc),
            Ok(Tpdu::ConnectionConfirm(Some(NegResult::Failure(
                nego::FailureCode(2)
            ))))
        );
        assert_eq!(parse_tpdu(&cc[..7]), Ok(Tpdu::ConnectionConfirm(None)));
        assert!(parse_tpdu(&cc[..6]).is_err());
    }

    #[test]
    fn data_and_disconnect() {
        assert_eq!(
            parse_tpdu(&[0x02, 0xf0, 0x80, 0x7f, 0x65]),
            Ok(Tpdu::Data(&[0x7f, 0x65]))
        );
        assert_eq!(
            parse_tpdu(&[0x06, 0x80, 0, 0, 0, 0, 0]),
            Ok(Tpdu::DisconnectRequest(0))
        );
        assert!(parse_tpdu(&[0x02]).is_err());
    }

    /// Arbitrary bytes (and bytes opening like a real PDU): no panic, framing within bounds.
    mod arbitrary_bytes {
        use super::*;
        use proptest::prelude::*;

        fn bytes() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..400),
                (
                    prop::sample::select(vec![
                        &[0x0eu8, 0xe0][..],
                        &[0x0e, 0xd0],
                        &[0x02, 0xf0, 0x80],
                        &[0x06, 0x80],
                        &[0x0e, 0xe0, 0, 0, 0, 0, 0, b'C']
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
                let _ = parse_tpdu(&i);
            }
        }
    }
}
