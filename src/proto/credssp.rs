//! CredSSP TSRequest (MS-CSSP 2.2.1) and the Early User Authorization Result PDU
//! (MS-RDPBCGR 2.2.10.2), for when the TLS payload is visible (decrypted captures).
//!
//! ```text
//! TSRequest ::= SEQUENCE {
//!     version     [0] INTEGER,
//!     negoTokens  [1] NegoData OPTIONAL,   -- SEQUENCE OF SEQUENCE { negoToken [0] OCTET STRING }
//!     authInfo    [2] OCTET STRING OPTIONAL,
//!     pubKeyAuth  [3] OCTET STRING OPTIONAL,
//!     errorCode   [4] INTEGER OPTIONAL,
//!     clientNonce [5] OCTET STRING OPTIONAL }
//! ```
//!
//! DER lengths use at most 4 length bytes and are checked against the input; nothing is
//! allocated from a claimed length.

use nom::bytes::complete::take;
use nom::number::complete::u8 as take_u8;
use nom::IResult;
use serde::Serialize;

use super::{Framing, ParseError};

/// Largest TSRequest accepted (Kerberos tickets with big PACs stay well below this).
pub const MAX_TS_REQUEST_LEN: usize = 256 * 1024;

/// The kind of a negoToken (MS-CSSP 2.2.1.1 NegoData).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AuthToken {
    /// NTLM (MS-NLMP 2.2.1): "NTLMSSP\0" then MessageType 1 NEGOTIATE, 2 CHALLENGE, 3 AUTHENTICATE.
    Ntlm(u32),
    /// Kerberos (RFC 4121 GSS-API token with the Kerberos 5 OID).
    Kerberos,
    /// SPNEGO (RFC 4178) without a visible NTLM message.
    Spnego,
    /// Anything else.
    Unknown,
}

/// A TSRequest summary (MS-CSSP 2.2.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TsRequest {
    /// version (2 to 6).
    pub version: u32,
    /// The first negoToken, classified.
    pub nego_token: Option<AuthToken>,
    /// authInfo present (encrypted TSCredentials: the client sent its credentials).
    pub has_auth_info: bool,
    /// pubKeyAuth present.
    pub has_pub_key_auth: bool,
    /// errorCode (NTSTATUS or HRESULT, see [`super::codes::ntstatus_name`]), version ≥ 3.
    pub error_code: Option<u32>,
    /// clientNonce present (version ≥ 5).
    pub has_client_nonce: bool,
    /// Domain, user and workstation of an NTLM AUTHENTICATE message in the negoTokens.
    pub ntlm_identity: Option<NtlmIdentity>,
}

/// The names an NTLM AUTHENTICATE message carries in clear (MS-NLMP 2.2.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NtlmIdentity {
    /// DomainName.
    pub domain: String,
    /// UserName.
    pub user: String,
    /// Workstation.
    pub workstation: String,
}

/// NTLMSSP_NEGOTIATE_UNICODE (MS-NLMP 2.2.2.5).
const NTLM_UNICODE: u32 = 0x1;

/// Domain, user and workstation of an NTLM AUTHENTICATE message starting at "NTLMSSP\0"
/// (MS-NLMP 2.2.1.3: fields of (len u16, maxlen u16, offset u32) at offsets 28, 36, 44;
/// NegotiateFlags at 60). Offsets are relative to the message and checked against it.
pub fn parse_ntlm_authenticate(msg: &[u8]) -> Option<NtlmIdentity> {
    let u32_at = |o: usize| -> Option<u32> {
        Some(u32::from_le_bytes(
            msg.get(o..o.checked_add(4)?)?.try_into().ok()?,
        ))
    };
    if !msg.starts_with(NTLMSSP) || u32_at(8)? != 3 {
        return None;
    }
    let flags = u32_at(60).unwrap_or(NTLM_UNICODE);
    let field = |o: usize| -> Option<String> {
        let len = usize::from(u16::from_le_bytes(msg.get(o..o + 2)?.try_into().ok()?));
        let off = u32_at(o + 4)? as usize;
        let b = msg.get(off..off.checked_add(len)?)?;
        Some(if flags & NTLM_UNICODE != 0 {
            let units: Vec<u16> = b
                .chunks_exact(2)
                .filter_map(|c| Some(u16::from_le_bytes(c.try_into().ok()?)))
                .collect();
            String::from_utf16_lossy(&units)
        } else {
            String::from_utf8_lossy(b).into_owned()
        })
    };
    Some(NtlmIdentity {
        domain: field(28)?,
        user: field(36)?,
        workstation: field(44)?,
    })
}

/// DER length (X.690 §10.1): short form or long form with 1 to 4 length bytes.
fn der_length(i: &[u8]) -> IResult<&[u8], usize> {
    let (i, b0) = take_u8(i)?;
    if b0 < 0x80 {
        return Ok((i, usize::from(b0)));
    }
    let n = usize::from(b0 & 0x7F);
    if n == 0 || n > 4 {
        return Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::LengthValue,
        )));
    }
    let (i, bytes) = take(n)(i)?;
    Ok((
        i,
        bytes
            .iter()
            .fold(0usize, |acc, b| acc << 8 | usize::from(*b)),
    ))
}

/// One DER TLV with a single-byte tag.
fn der_tlv(i: &[u8]) -> IResult<&[u8], (u8, &[u8])> {
    let (i, tag) = take_u8(i)?;
    let (i, len) = der_length(i)?;
    let (i, value) = take(len)(i)?;
    Ok((i, (tag, value)))
}

/// The contents of a DER element with the expected tag.
fn expect(i: &[u8], tag: u8) -> Option<&[u8]> {
    match der_tlv(i) {
        Ok((_, (t, v))) if t == tag => Some(v),
        _ => None,
    }
}

/// An INTEGER of at most 32 significant bits as raw u32 bits (negative HRESULTs keep their bits).
fn der_u32(v: &[u8]) -> Option<u32> {
    let negative = v.first().is_some_and(|b| b & 0x80 != 0);
    let mut digits = v;
    while digits.len() > 4 && digits.first() == Some(&(if negative { 0xFF } else { 0 })) {
        digits = digits.get(1..)?;
    }
    if digits.is_empty() || digits.len() > 4 {
        return None;
    }
    let init = if negative { u32::MAX } else { 0 };
    Some(digits.iter().fold(init, |acc, b| acc << 8 | u32::from(*b)))
}

/// Frames one TSRequest (DER SEQUENCE `30 len`) at the head of `i` (MS-CSSP 2.2.1).
pub fn ts_request_frame(i: &[u8]) -> Framing {
    match i.first() {
        None => return Framing::NeedHeader,
        Some(0x30) => {}
        Some(_) => return Framing::Invalid,
    }
    let Some(rest) = i.get(1..) else {
        return Framing::NeedHeader;
    };
    match rest.first() {
        None => Framing::NeedHeader,
        Some(0x80) => Framing::Invalid,
        Some(b) if *b > 0x84 => Framing::Invalid,
        Some(_) => match der_length(rest) {
            Ok((after, len)) => {
                let header = i.len().saturating_sub(after.len());
                match header.checked_add(len) {
                    Some(total) if total <= MAX_TS_REQUEST_LEN => Framing::from_len(total, i.len()),
                    _ => Framing::Invalid,
                }
            }
            Err(_) => Framing::NeedHeader,
        },
    }
}

/// Parses one TSRequest (MS-CSSP 2.2.1); trailing bytes after the SEQUENCE are ignored.
pub fn parse_ts_request(i: &[u8]) -> Result<TsRequest, ParseError> {
    const WHAT: &str = "credssp tsrequest";
    let (_, (tag, mut body)) =
        der_tlv(i).map_err(|_| ParseError::new(WHAT, "truncated or bad der length"))?;
    if tag != 0x30 {
        return Err(ParseError::new(
            WHAT,
            format!("tag {tag:#04x} is not a sequence"),
        ));
    }
    if body.len() > MAX_TS_REQUEST_LEN {
        return Err(ParseError::new(
            WHAT,
            format!("length {} above maximum {MAX_TS_REQUEST_LEN}", body.len()),
        ));
    }
    let mut req = TsRequest {
        version: 0,
        nego_token: None,
        has_auth_info: false,
        has_pub_key_auth: false,
        error_code: None,
        has_client_nonce: false,
        ntlm_identity: None,
    };
    let mut saw_version = false;
    while !body.is_empty() {
        let (rest, (t, v)) = der_tlv(body).map_err(|_| ParseError::new(WHAT, "truncated field"))?;
        body = rest;
        match t {
            0xA0 => {
                req.version = expect(v, 0x02)
                    .and_then(der_u32)
                    .ok_or_else(|| ParseError::new(WHAT, "bad version integer"))?;
                saw_version = true;
            }
            0xA1 => {
                let token = first_nego_token(v);
                req.nego_token = token.map(classify_token);
                if let (Some(AuthToken::Ntlm(3)), Some(t)) = (req.nego_token, token) {
                    req.ntlm_identity = find(t, NTLMSSP)
                        .and_then(|p| t.get(p..))
                        .and_then(parse_ntlm_authenticate);
                }
            }
            0xA2 => req.has_auth_info = true,
            0xA3 => req.has_pub_key_auth = true,
            0xA4 => {
                req.error_code = Some(
                    expect(v, 0x02)
                        .and_then(der_u32)
                        .ok_or_else(|| ParseError::new(WHAT, "bad errorCode integer"))?,
                );
            }
            0xA5 => req.has_client_nonce = true,
            _ => {}
        }
    }
    if !saw_version {
        return Err(ParseError::new(WHAT, "no version field"));
    }
    Ok(req)
}

/// NegoData (MS-CSSP 2.2.1.1): SEQUENCE OF SEQUENCE { negoToken [0] OCTET STRING }: the first token.
fn first_nego_token(v: &[u8]) -> Option<&[u8]> {
    let items = expect(v, 0x30)?;
    let item = expect(items, 0x30)?;
    let token = expect(item, 0xA0)?;
    expect(token, 0x04)
}

/// "NTLMSSP\0" (MS-NLMP 2.2.1.1 Signature).
const NTLMSSP: &[u8] = b"NTLMSSP\0";
/// DER of OID 1.2.840.113554.1.2.2 (Kerberos 5, RFC 4121) and 1.2.840.48018.1.2.2 (MS Kerberos).
const KRB5_OIDS: [&[u8]; 2] = [
    &[
        0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x12, 0x01, 0x02, 0x02,
    ],
    &[
        0x06, 0x09, 0x2A, 0x86, 0x48, 0x82, 0xF7, 0x12, 0x01, 0x02, 0x02,
    ],
];
/// DER of OID 1.3.6.1.5.5.2 (SPNEGO, RFC 4178).
const SPNEGO_OID: &[u8] = &[0x06, 0x06, 0x2B, 0x06, 0x01, 0x05, 0x05, 0x02];

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Classifies a negoToken: NTLM signature anywhere (also inside SPNEGO) wins, then a GSS-API
/// token whose mechanism is Kerberos, then SPNEGO (OID or bare negTokenInit/negTokenResp).
fn classify_token(t: &[u8]) -> AuthToken {
    if let Some(p) = find(t, NTLMSSP) {
        let ty = p
            .checked_add(8)
            .and_then(|s| t.get(s..s.checked_add(4)?))
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes);
        return ty.map_or(AuthToken::Unknown, AuthToken::Ntlm);
    }
    // GSS-API InitialContextToken (RFC 2743 §3.1): 60 len, then the mechanism OID.
    if t.first() == Some(&0x60) {
        let mech = der_tlv(t).ok().map(|(_, (_, v))| v).unwrap_or_default();
        if KRB5_OIDS.iter().any(|o| mech.starts_with(o)) {
            return AuthToken::Kerberos;
        }
        if mech.starts_with(SPNEGO_OID) {
            if KRB5_OIDS.iter().any(|o| find(t, o).is_some()) {
                return AuthToken::Kerberos;
            }
            return AuthToken::Spnego;
        }
    }
    if matches!(t.first(), Some(0xA0 | 0xA1)) || find(t, SPNEGO_OID).is_some() {
        return AuthToken::Spnego;
    }
    // Raw Kerberos AP-REP / KRB-ERROR ([APPLICATION 15] 0x6f, [APPLICATION 30] 0x7e) or a krb5 OID.
    if matches!(t.first(), Some(0x6F | 0x7E)) || KRB5_OIDS.iter().any(|o| find(t, o).is_some()) {
        return AuthToken::Kerberos;
    }
    AuthToken::Unknown
}

/// Early User Authorization Result PDU (MS-RDPBCGR 2.2.10.2): exactly 4 bytes, little-endian.
pub fn parse_early_user_auth_result(i: &[u8]) -> Option<u32> {
    let b: [u8; 4] = i.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

/// authorizationResult name (MS-RDPBCGR 2.2.10.2): AUTHZ_SUCCESS 0, AUTHZ_ACCESS_DENIED 5.
pub fn early_user_auth_name(v: u32) -> &'static str {
    match v {
        0 => "AUTHZ_SUCCESS",
        5 => "AUTHZ_ACCESS_DENIED",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::codes;

    /// wireshark-rdp/rdp-nla-ntlm-rejected1.pcapng frame 12, TLS-decrypted with the embedded keys:
    /// client TSRequest v6 carrying the NTLM NEGOTIATE message.
    const NTLM_NEGOTIATE: [u8; 57] = [
        0x30, 0x37, // TSRequest SEQUENCE, 55 bytes
        0xa0, 0x03, 0x02, 0x01, 0x06, // version [0] INTEGER 6
        0xa1, 0x30, 0x30, 0x2e, 0x30, 0x2c, 0xa0, 0x2a, 0x04,
        0x28, // negoTokens [1] / SEQ OF / SEQ / [0] / OCTET STRING 40
        b'N', b'T', b'L', b'M', b'S', b'S', b'P', 0x00, // NTLM signature
        0x01, 0x00, 0x00, 0x00, // MessageType 1 NEGOTIATE
        0xb7, 0x82, 0x08, 0xe2, // NegotiateFlags
        0, 0, 0, 0, 0, 0, 0, 0, // DomainNameFields
        0, 0, 0, 0, 0, 0, 0, 0, // WorkstationFields
        0x0a, 0x00, 0x5d, 0x58, 0x00, 0x00, 0x00,
        0x0f, // Version 10.0.22621, NTLMSSP_REVISION_W2K3
    ];

    /// Same capture, frame 15: server TSRequest v6 with errorCode 0x80090302.
    const ERROR_CODE: [u8; 15] = [
        0x30, 0x0d, // TSRequest SEQUENCE, 13 bytes
        0xa0, 0x03, 0x02, 0x01, 0x06, // version 6
        0xa4, 0x06, 0x02, 0x04, 0x80, 0x09, 0x03, 0x02, // errorCode [4] INTEGER 0x80090302
    ];

    #[test]
    fn ntlm_negotiate_real() {
        assert_eq!(ts_request_frame(&NTLM_NEGOTIATE), Framing::Complete(57));
        let r = parse_ts_request(&NTLM_NEGOTIATE).unwrap();
        assert_eq!(r.version, 6);
        assert_eq!(r.nego_token, Some(AuthToken::Ntlm(1)));
        assert!(!r.has_auth_info && !r.has_pub_key_auth && !r.has_client_nonce);
        assert_eq!(r.error_code, None);
    }

    #[test]
    fn error_code_real() {
        let r = parse_ts_request(&ERROR_CODE).unwrap();
        assert_eq!(r.error_code, Some(0x8009_0302));
        assert_eq!(
            codes::ntstatus_name(0x8009_0302),
            Some("SEC_E_UNSUPPORTED_FUNCTION")
        );
        assert_eq!(r.nego_token, None);
    }

    #[test]
    fn one_byte_short() {
        assert_eq!(
            ts_request_frame(&NTLM_NEGOTIATE[..56]),
            Framing::NeedMore(57)
        );
        assert!(parse_ts_request(&NTLM_NEGOTIATE[..56]).is_err());
        assert!(parse_ts_request(&ERROR_CODE[..14]).is_err());
        assert_eq!(ts_request_frame(&[0x30]), Framing::NeedHeader);
        assert_eq!(ts_request_frame(&[0x30, 0x82, 0x01]), Framing::NeedHeader);
    }

    #[test]
    fn hand_built_authenticate_with_nonce() {
        // Built from the MS-CSSP 2.2.1 structure: version 6, negoTokens with an NTLM AUTHENTICATE
        // header (MS-NLMP 2.2.1.3), pubKeyAuth [3] and clientNonce [5] of 32 bytes.
        let mut token = NTLMSSP.to_vec();
        token.extend_from_slice(&[3, 0, 0, 0]);
        let mut nego = vec![0x30, 0x12, 0x30, 0x10, 0xa0, 0x0e, 0x04, 0x0c];
        nego.extend_from_slice(&token);
        let mut body = vec![0xa0, 0x03, 0x02, 0x01, 0x06, 0xa1, nego.len() as u8];
        body.extend_from_slice(&nego);
        body.extend_from_slice(&[0xa3, 0x04, 0x04, 0x02, 0xaa, 0xbb]);
        body.extend_from_slice(&[0xa5, 0x22, 0x04, 0x20]);
        body.extend_from_slice(&[0x55; 32]);
        let mut msg = vec![0x30, 0x81, body.len() as u8];
        msg.extend_from_slice(&body);
        assert_eq!(ts_request_frame(&msg), Framing::Complete(msg.len()));
        let r = parse_ts_request(&msg).unwrap();
        assert_eq!(r.nego_token, Some(AuthToken::Ntlm(3)));
        assert!(r.has_pub_key_auth && r.has_client_nonce && !r.has_auth_info);
    }

    #[test]
    fn token_classes_and_errors() {
        // GSS-API token with the Kerberos OID (RFC 4121 §4.1), then an AP-REQ tag.
        let mut krb = vec![0x60, 0x0d];
        krb.extend_from_slice(KRB5_OIDS[0]);
        krb.extend_from_slice(&[0x01, 0x00]);
        assert_eq!(classify_token(&krb), AuthToken::Kerberos);
        assert_eq!(
            classify_token(&[0xa1, 0x03, 0x0a, 0x01, 0x00]),
            AuthToken::Spnego
        );
        assert_eq!(classify_token(&[0x01, 0x02]), AuthToken::Unknown);
        // Positive small errorCode and sign-extended negative one.
        assert_eq!(der_u32(&[0x00, 0xc0, 0x00, 0x00, 0x6d]), Some(0xC000_006D));
        assert_eq!(der_u32(&[0xff]), Some(u32::MAX));
        assert_eq!(der_u32(&[1, 2, 3, 4, 5]), None);
        // Not a sequence, 5 length bytes, indefinite length.
        assert_eq!(ts_request_frame(&[0x16, 0x03]), Framing::Invalid);
        assert_eq!(
            ts_request_frame(&[0x30, 0x85, 0, 0, 0, 0, 1]),
            Framing::Invalid
        );
        assert_eq!(ts_request_frame(&[0x30, 0x80]), Framing::Invalid);
        assert_eq!(
            ts_request_frame(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
            Framing::Invalid
        );
        assert!(parse_ts_request(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x00]).is_err());
        assert!(parse_ts_request(&[0x30, 0x00]).is_err());
    }

    #[test]
    fn early_user_auth() {
        assert_eq!(parse_early_user_auth_result(&[5, 0, 0, 0]), Some(5));
        assert_eq!(early_user_auth_name(5), "AUTHZ_ACCESS_DENIED");
        assert_eq!(early_user_auth_name(0), "AUTHZ_SUCCESS");
        assert_eq!(parse_early_user_auth_result(&[0, 0, 0]), None);
        assert_eq!(parse_early_user_auth_result(&[0, 0, 0, 0, 0]), None);
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
                        &[0x30u8, 0x82][..],
                        &[0x30, 0x81, 0x80],
                        &[0x30, 0x84, 0, 0, 1, 0],
                        &[0x30, 0x10, 0xa0, 3, 2, 1, 6]
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
                framing_ok(ts_request_frame(&i), i.len(), MAX_TS_REQUEST_LEN)?;
                let _ = parse_ts_request(&i);
                let _ = parse_early_user_auth_result(&i);
            }
        }
    }
}
