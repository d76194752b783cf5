//! RDSTLS (MS-RDPBCGR 2.2.17, 5.4.5.3): the authentication exchanged inside TLS when the
//! server selected PROTOCOL_RDSTLS (a client redirected with a password blob or an
//! auto-reconnect cookie): the server's Capabilities PDU, the client's Authentication
//! Request and the server's Authentication Response carrying a result code.
//!
//! Every field is little-endian. Secrets are never kept: of the password and the
//! auto-reconnect cookie only the lengths are returned.
//!
//! No capture of RDSTLS was available (FreeRDP 2.11, installed here, has no RDSTLS; the
//! corpus holds none), so these parsers are tested against the byte layouts of the
//! specification only and no verdict depends on them yet.

use nom::bytes::complete::take;
use nom::number::complete::{le_u16, le_u32};
use nom::IResult;

use super::{Framing, ParseError};

/// RDSTLS_VERSION_1, the only version (2.2.17.1).
pub const VERSION_1: u16 = 0x0001;

/// PduType values (2.2.17.1-2.2.17.4).
pub mod pdu_type {
    /// RDSTLS_TYPE_CAPABILITIES.
    pub const CAPABILITIES: u16 = 0x0001;
    /// RDSTLS_TYPE_AUTHREQ.
    pub const AUTH_REQUEST: u16 = 0x0002;
    /// RDSTLS_TYPE_AUTHRSP.
    pub const AUTH_RESPONSE: u16 = 0x0004;
}

/// DataType values (2.2.17.1-2.2.17.4).
pub mod data_type {
    /// RDSTLS_DATA_CAPABILITIES (Capabilities PDU).
    pub const CAPABILITIES: u16 = 0x0001;
    /// RDSTLS_DATA_PASSWORD_CREDS (Authentication Request with password credentials).
    pub const PASSWORD_CREDS: u16 = 0x0001;
    /// RDSTLS_DATA_AUTORECONNECT_COOKIE (Authentication Request with a cookie).
    pub const AUTORECONNECT_COOKIE: u16 = 0x0002;
    /// RDSTLS_DATA_RESULT_CODE (Authentication Response).
    pub const RESULT_CODE: u16 = 0x0001;
}

/// ResultCode values of the Authentication Response (2.2.17.4), with names.
pub const RESULT_CODES: [(u32, &str); 8] = [
    (0x0000_0000, "RDSTLS_RESULT_SUCCESS"),
    (0x0000_0005, "RDSTLS_RESULT_ACCESS_DENIED"),
    (0x0000_052E, "RDSTLS_RESULT_LOGON_FAILURE"),
    (0x0000_0530, "RDSTLS_RESULT_INVALID_LOGON_HOURS"),
    (0x0000_0532, "RDSTLS_RESULT_PASSWORD_EXPIRED"),
    (0x0000_0533, "RDSTLS_RESULT_ACCOUNT_DISABLED"),
    (0x0000_0773, "RDSTLS_RESULT_PASSWORD_MUST_CHANGE"),
    (0x0000_0775, "RDSTLS_RESULT_ACCOUNT_LOCKED_OUT"),
];

/// The name of an RDSTLS ResultCode.
pub fn result_name(code: u32) -> Option<&'static str> {
    RESULT_CODES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, n)| *n)
}

/// One RDSTLS PDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RdstlsPdu<'a> {
    /// RDSTLS_CapabilitiesPDU (2.2.17.1), from the server.
    Capabilities {
        /// SupportedVersions.
        supported_versions: u16,
    },
    /// RDSTLS_AuthenticationRequestPDUwithPasswordCredentials (2.2.17.2), from the client.
    AuthRequestPassword {
        /// RedirectionGuid (opaque).
        redirection_guid: &'a [u8],
        /// UserName (UTF-16LE, decoded).
        user_name: String,
        /// Domain (UTF-16LE, decoded).
        domain: String,
        /// PasswordLength (the encrypted password itself is never kept).
        password_len: u16,
    },
    /// RDSTLS_AuthenticationRequestPDUwithAutoReconnectCookie (2.2.17.3), from the client.
    AuthRequestCookie {
        /// SessionID.
        session_id: u32,
        /// AutoReconnectCookieLength (the cookie itself is never kept).
        cookie_len: u16,
    },
    /// RDSTLS_AuthenticationResponsePDU (2.2.17.4), from the server.
    AuthResponse {
        /// ResultCode (see [`result_name`]).
        result_code: u32,
    },
}

const WHAT: &str = "rdstls pdu";

fn err(why: &str) -> ParseError {
    ParseError {
        what: WHAT,
        why: why.to_string(),
    }
}

/// The common header: Version, PduType, DataType.
fn header(i: &[u8]) -> IResult<&[u8], (u16, u16, u16)> {
    let (i, v) = le_u16(i)?;
    let (i, t) = le_u16(i)?;
    let (i, d) = le_u16(i)?;
    Ok((i, (v, t, d)))
}

/// A 2-byte length followed by that many bytes.
fn blob(i: &[u8]) -> IResult<&[u8], &[u8]> {
    let (i, len) = le_u16(i)?;
    take(len)(i)
}

fn utf16(b: &[u8]) -> String {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| {
            u16::from_le_bytes([
                c.first().copied().unwrap_or(0),
                c.get(1).copied().unwrap_or(0),
            ])
        })
        .take_while(|u| *u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

/// Frames one RDSTLS PDU at the head of `i`: the PDUs carry no total length, so it is summed
/// from the type and the length fields (as FreeRDP's rdstls_parse_pdu does).
pub fn rdstls_frame(i: &[u8]) -> Framing {
    let Ok((rest, (version, ptype, dtype))) = header(i) else {
        return match i.get(..2) {
            Some([1, 0]) | None => Framing::NeedHeader,
            Some(_) => Framing::Invalid,
        };
    };
    if version != VERSION_1 {
        return Framing::Invalid;
    }
    let total = match (ptype, dtype) {
        (pdu_type::CAPABILITIES, data_type::CAPABILITIES) => 8,
        (pdu_type::AUTH_RESPONSE, data_type::RESULT_CODE) => 10,
        (pdu_type::AUTH_REQUEST, data_type::PASSWORD_CREDS) => {
            // Four length-prefixed fields: guid, user, domain, password.
            let mut at = rest;
            let mut total = 6usize;
            for _ in 0..4 {
                let Ok((after, len)) = le_u16::<_, ()>(at) else {
                    return Framing::NeedHeader;
                };
                total = total.saturating_add(2).saturating_add(usize::from(len));
                match after.get(usize::from(len)..) {
                    Some(next) => at = next,
                    // The last field's bytes need not be here yet to know the total.
                    None => at = &[],
                }
            }
            total
        }
        (pdu_type::AUTH_REQUEST, data_type::AUTORECONNECT_COOKIE) => {
            let Some(len) = rest.get(4..6) else {
                return Framing::NeedHeader;
            };
            let len = u16::from_le_bytes([
                len.first().copied().unwrap_or(0),
                len.get(1).copied().unwrap_or(0),
            ]);
            12usize.saturating_add(usize::from(len))
        }
        _ => return Framing::Invalid,
    };
    Framing::from_len(total, i.len())
}

/// Parses one complete RDSTLS PDU (2.2.17.1-2.2.17.4).
pub fn parse_rdstls(i: &[u8]) -> Result<RdstlsPdu<'_>, ParseError> {
    fn password(i: &[u8]) -> IResult<&[u8], RdstlsPdu<'_>> {
        let (i, redirection_guid) = blob(i)?;
        let (i, user) = blob(i)?;
        let (i, domain) = blob(i)?;
        let (i, pw) = blob(i)?;
        let password_len = u16::try_from(pw.len()).unwrap_or(u16::MAX);
        Ok((
            i,
            RdstlsPdu::AuthRequestPassword {
                redirection_guid,
                user_name: utf16(user),
                domain: utf16(domain),
                password_len,
            },
        ))
    }
    fn cookie(i: &[u8]) -> IResult<&[u8], RdstlsPdu<'_>> {
        let (i, session_id) = le_u32(i)?;
        let (i, c) = blob(i)?;
        let cookie_len = u16::try_from(c.len()).unwrap_or(u16::MAX);
        Ok((
            i,
            RdstlsPdu::AuthRequestCookie {
                session_id,
                cookie_len,
            },
        ))
    }
    let short = |_| err("truncated");
    let (rest, (version, ptype, dtype)) = header(i).map_err(short)?;
    if version != VERSION_1 {
        return Err(err("version is not RDSTLS_VERSION_1"));
    }
    let (rest, pdu) = match (ptype, dtype) {
        (pdu_type::CAPABILITIES, data_type::CAPABILITIES) => {
            let (r, v) = le_u16::<_, ()>(rest).map_err(|_| err("truncated"))?;
            (
                r,
                RdstlsPdu::Capabilities {
                    supported_versions: v,
                },
            )
        }
        (pdu_type::AUTH_REQUEST, data_type::PASSWORD_CREDS) => password(rest).map_err(short)?,
        (pdu_type::AUTH_REQUEST, data_type::AUTORECONNECT_COOKIE) => cookie(rest).map_err(short)?,
        (pdu_type::AUTH_RESPONSE, data_type::RESULT_CODE) => {
            let (r, c) = le_u32::<_, ()>(rest).map_err(|_| err("truncated"))?;
            (r, RdstlsPdu::AuthResponse { result_code: c })
        }
        _ => return Err(err("unknown pdu or data type")),
    };
    if !rest.is_empty() {
        return Err(err("bytes after the pdu"));
    }
    Ok(pdu)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Capabilities PDU (2.2.17.1): Version 1, PduType CAPABILITIES, DataType CAPABILITIES,
    /// SupportedVersions RDSTLS_VERSION_1.
    const CAPS: [u8; 8] = [0x01, 0x00, 0x01, 0x00, 0x01, 0x00, 0x01, 0x00];
    /// Authentication Response (2.2.17.4) with RDSTLS_RESULT_LOGON_FAILURE (0x52E).
    const RSP_LOGON_FAILURE: [u8; 10] = [
        0x01, 0x00, // Version
        0x04, 0x00, // PduType AUTHRSP
        0x01, 0x00, // DataType RESULT_CODE
        0x2E, 0x05, 0x00, 0x00, // ResultCode
    ];

    /// Authentication Request with password credentials (2.2.17.2): a 2-byte guid, user
    /// "bob", domain "D", a 4-byte password blob.
    fn auth_req() -> Vec<u8> {
        let mut b = vec![0x01, 0x00, 0x02, 0x00, 0x01, 0x00];
        b.extend([0x02, 0x00, 0xAA, 0xBB]); // RedirectionGuid
        b.extend([0x06, 0x00, b'b', 0, b'o', 0, b'b', 0]); // UserName
        b.extend([0x02, 0x00, b'D', 0]); // Domain
        b.extend([0x04, 0x00, 0xDE, 0xAD, 0xBE, 0xEF]); // Password (encrypted blob)
        b
    }

    #[test]
    fn capabilities() {
        assert_eq!(rdstls_frame(&CAPS), Framing::Complete(8));
        assert_eq!(
            parse_rdstls(&CAPS),
            Ok(RdstlsPdu::Capabilities {
                supported_versions: 1
            })
        );
        assert_eq!(rdstls_frame(&CAPS[..7]), Framing::NeedMore(8));
        assert!(parse_rdstls(&CAPS[..7]).is_err());
    }

    #[test]
    fn auth_response_names_the_result() {
        assert_eq!(rdstls_frame(&RSP_LOGON_FAILURE), Framing::Complete(10));
        let pdu = parse_rdstls(&RSP_LOGON_FAILURE).unwrap();
        assert_eq!(pdu, RdstlsPdu::AuthResponse { result_code: 0x52E });
        assert_eq!(result_name(0x52E), Some("RDSTLS_RESULT_LOGON_FAILURE"));
        assert_eq!(result_name(0x775), Some("RDSTLS_RESULT_ACCOUNT_LOCKED_OUT"));
        assert_eq!(result_name(0x1234), None);
        assert_eq!(rdstls_frame(&RSP_LOGON_FAILURE[..9]), Framing::NeedMore(10));
    }

    #[test]
    fn auth_request_keeps_no_password() {
        let b = auth_req();
        assert_eq!(rdstls_frame(&b), Framing::Complete(b.len()));
        match parse_rdstls(&b).unwrap() {
            RdstlsPdu::AuthRequestPassword {
                redirection_guid,
                user_name,
                domain,
                password_len,
            } => {
                assert_eq!(redirection_guid, &[0xAA, 0xBB]);
                assert_eq!(user_name, "bob");
                assert_eq!(domain, "D");
                assert_eq!(password_len, 4);
            }
            other => panic!("{other:?}"),
        }
        // One byte short: the total is known, more is needed.
        assert_eq!(rdstls_frame(&b[..b.len() - 1]), Framing::NeedMore(b.len()));
        assert!(parse_rdstls(&b[..b.len() - 1]).is_err());
        // Before the password length is in: need the header.
        assert_eq!(rdstls_frame(&b[..20]), Framing::NeedHeader);
    }

    #[test]
    fn auth_request_with_cookie() {
        let mut b = vec![0x01, 0x00, 0x02, 0x00, 0x02, 0x00];
        b.extend(7u32.to_le_bytes()); // SessionID
        b.extend([0x03, 0x00, 1, 2, 3]); // AutoReconnectCookie
        assert_eq!(rdstls_frame(&b), Framing::Complete(b.len()));
        assert_eq!(
            parse_rdstls(&b),
            Ok(RdstlsPdu::AuthRequestCookie {
                session_id: 7,
                cookie_len: 3
            })
        );
    }

    #[test]
    fn not_rdstls() {
        // A TPKT header, a TSRequest, another version, an unknown type.
        assert_eq!(rdstls_frame(&[0x03, 0x00, 0x00, 0x13]), Framing::Invalid);
        assert_eq!(rdstls_frame(&[0x30, 0x82]), Framing::Invalid);
        assert_eq!(
            rdstls_frame(&[0x02, 0x00, 0x01, 0x00, 0x01, 0x00, 1, 0]),
            Framing::Invalid
        );
        assert_eq!(
            rdstls_frame(&[0x01, 0x00, 0x08, 0x00, 0x01, 0x00, 1, 0]),
            Framing::Invalid
        );
        assert_eq!(rdstls_frame(&[0x01]), Framing::NeedHeader);
        assert!(parse_rdstls(&[0x01, 0x00, 0x08, 0x00, 0x01, 0x00]).is_err());
        // Trailing bytes are not one PDU.
        let mut b = CAPS.to_vec();
        b.push(0);
        assert!(parse_rdstls(&b).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut x: u32 = 0x1234_5678;
        for n in 0..2000usize {
            let mut b = vec![0x01, 0x00];
            for _ in 0..(n % 40) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                b.push(x as u8);
            }
            let _ = rdstls_frame(&b);
            let _ = parse_rdstls(&b);
        }
    }
}
