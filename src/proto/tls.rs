//! TLS/SSL record layer and handshake messages (RFC 5246, RFC 8446), as seen after an X.224
//! Connection Confirm that selected an Enhanced RDP Security protocol (MS-RDPBCGR 5.4.5).
//!
//! ClientHello / ServerHello / extension decoding uses rusticata `tls-parser`, certificates use
//! `x509-parser`; callers only see the types of this module. SSLv2-format ClientHellos are not
//! recognised (the record header check rejects them).

use nom::number::complete::{be_u16, be_u24, be_u8};
use nom::IResult;
use serde::Serialize;
use tls_parser::{TlsCipherSuiteID, TlsExtension};

use super::{Framing, ParseError};

/// TLS record content types (RFC 8446 §5.1, RFC 6520 for heartbeat).
pub mod content_type {
    /// change_cipher_spec(20).
    pub const CHANGE_CIPHER_SPEC: u8 = 20;
    /// alert(21).
    pub const ALERT: u8 = 21;
    /// handshake(22).
    pub const HANDSHAKE: u8 = 22;
    /// application_data(23).
    pub const APPLICATION_DATA: u8 = 23;
    /// heartbeat(24) (RFC 6520).
    pub const HEARTBEAT: u8 = 24;
}

/// Size of a TLS record header (RFC 8446 §5.1 TLSPlaintext: type, legacy_record_version, length).
pub const RECORD_HEADER_LEN: usize = 5;
/// Largest record body accepted: 2^14 + 2048 (RFC 5246 §6.2.3 TLSCiphertext limit).
pub const MAX_RECORD_LEN: usize = (1 << 14) + 2048;
/// Size of a handshake message header (RFC 8446 §4: msg_type u8, length u24).
pub const HANDSHAKE_HEADER_LEN: usize = 4;
/// Largest handshake message accepted (256 KiB; certificate chains of real servers are far smaller).
pub const MAX_HANDSHAKE_LEN: usize = 256 * 1024;

/// Handshake message types (RFC 8446 §4, RFC 5246 §7.4).
pub mod handshake_type {
    /// client_hello(1).
    pub const CLIENT_HELLO: u8 = 1;
    /// server_hello(2).
    pub const SERVER_HELLO: u8 = 2;
    /// new_session_ticket(4).
    pub const NEW_SESSION_TICKET: u8 = 4;
    /// encrypted_extensions(8).
    pub const ENCRYPTED_EXTENSIONS: u8 = 8;
    /// certificate(11).
    pub const CERTIFICATE: u8 = 11;
    /// server_key_exchange(12).
    pub const SERVER_KEY_EXCHANGE: u8 = 12;
    /// certificate_request(13).
    pub const CERTIFICATE_REQUEST: u8 = 13;
    /// server_hello_done(14).
    pub const SERVER_HELLO_DONE: u8 = 14;
    /// certificate_verify(15).
    pub const CERTIFICATE_VERIFY: u8 = 15;
    /// client_key_exchange(16).
    pub const CLIENT_KEY_EXCHANGE: u8 = 16;
    /// finished(20).
    pub const FINISHED: u8 = 20;
}

/// The `random` of a HelloRetryRequest: SHA-256 of "HelloRetryRequest" (RFC 8446 §4.1.3).
pub const HELLO_RETRY_REQUEST_RANDOM: [u8; 32] = [
    0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
    0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
];

/// A TLS record header (RFC 8446 §5.1 TLSPlaintext / RFC 5246 §6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RecordHeader {
    /// ContentType (20..=24).
    pub content_type: u8,
    /// legacy_record_version (0x0300..0x0303 in practice).
    pub version: u16,
    /// Length of the record body that follows the header.
    pub len: u16,
}

/// Reads a TLS record header (RFC 8446 §5.1): `None` under 5 bytes, for a content type outside
/// 20..=24, a major version other than 3, or a length above [`MAX_RECORD_LEN`].
#[inline]
pub fn parse_record_header(i: &[u8]) -> Option<RecordHeader> {
    // Read once per record of every TLS connection: five fixed bytes, no parser combinators.
    let &[content_type, major, minor, len_hi, len_lo, ..] = i else {
        return None;
    };
    let h = RecordHeader {
        content_type,
        version: u16::from_be_bytes([major, minor]),
        len: u16::from_be_bytes([len_hi, len_lo]),
    };
    let plausible = (content_type::CHANGE_CIPHER_SPEC..=content_type::HEARTBEAT)
        .contains(&h.content_type)
        && h.version >> 8 == 3
        && usize::from(h.len) <= MAX_RECORD_LEN;
    plausible.then_some(h)
}

/// Frames one TLS record (RFC 8446 §5.1) at the head of `i`, header included.
pub fn tls_record_frame(i: &[u8]) -> Framing {
    if i.len() < RECORD_HEADER_LEN {
        return Framing::NeedHeader;
    }
    match parse_record_header(i) {
        Some(h) => Framing::from_len(
            RECORD_HEADER_LEN.saturating_add(usize::from(h.len)),
            i.len(),
        ),
        None => Framing::Invalid,
    }
}

/// Frames one handshake message (RFC 8446 §4 Handshake: msg_type u8, length u24) at the head of the
/// defragmented handshake byte stream; `Invalid` above [`MAX_HANDSHAKE_LEN`].
pub fn handshake_frame(i: &[u8]) -> Framing {
    match handshake_header(i) {
        Ok((_, (_, len))) if len > MAX_HANDSHAKE_LEN => Framing::Invalid,
        Ok((_, (_, len))) => Framing::from_len(HANDSHAKE_HEADER_LEN.saturating_add(len), i.len()),
        Err(_) => Framing::NeedHeader,
    }
}

fn handshake_header(i: &[u8]) -> IResult<&[u8], (u8, usize)> {
    let (i, t) = be_u8(i)?;
    let (i, len) = be_u24(i)?;
    Ok((i, (t, len as usize)))
}

/// A ClientHello summary (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientHello {
    /// legacy_version (client_version in TLS ≤ 1.2).
    pub legacy_version: u16,
    /// The supported_versions extension (RFC 8446 §4.2.1) without GREASE, else `[legacy_version]`.
    pub versions: Vec<u16>,
    /// Offered cipher suites without GREASE (RFC 8701) values.
    pub cipher_suites: Vec<u16>,
    /// First host_name of the server_name extension (RFC 6066 §3).
    pub sni: Option<String>,
    /// ALPN protocol names (RFC 7301).
    pub alpn: Vec<String>,
    /// The 32-byte random (keys are looked up by it in an NSS key log).
    #[serde(skip)]
    pub random: [u8; 32],
}

/// A ServerHello summary (RFC 8446 §4.1.3, RFC 5246 §7.4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerHello {
    /// legacy_version (server_version in TLS ≤ 1.2).
    pub legacy_version: u16,
    /// The selected supported_versions value if present (TLS 1.3), else `legacy_version`.
    pub version: u16,
    /// The chosen cipher suite.
    pub cipher_suite: u16,
    /// Whether this is a HelloRetryRequest (random = [`HELLO_RETRY_REQUEST_RANDOM`]).
    pub hello_retry_request: bool,
    /// The 32-byte random (the TLS 1.2 key block depends on it).
    #[serde(skip)]
    pub random: [u8; 32],
}

/// A summary of one X.509 certificate of a Certificate message (RFC 5246 §7.4.2, RFC 5280).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertSummary {
    /// Subject DN (RFC 4514 string), or "unparsable certificate (N bytes)".
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// notBefore, RFC 3339 UTC.
    pub not_before: String,
    /// notAfter, RFC 3339 UTC.
    pub not_after: String,
    /// Subject equals issuer.
    pub self_signed: bool,
    /// Serial number, lower-case hex.
    pub serial: String,
    /// Key type and size, e.g. "RSA 2048", "EC 256".
    pub key: String,
    /// Signature algorithm short name, e.g. "sha256WithRSAEncryption", or its dotted OID.
    pub signature_algorithm: String,
}

/// A decoded handshake message (RFC 8446 §4, RFC 5246 §7.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Handshake {
    /// client_hello(1).
    ClientHello(ClientHello),
    /// server_hello(2), including HelloRetryRequest.
    ServerHello(ServerHello),
    /// certificate(11): the chain, leaf first.
    Certificate(Vec<CertSummary>),
    /// certificate_request(13): the server asks for a client certificate.
    CertificateRequest,
    /// server_key_exchange(12).
    ServerKeyExchange,
    /// server_hello_done(14).
    ServerHelloDone,
    /// client_key_exchange(16).
    ClientKeyExchange,
    /// finished(20).
    Finished,
    /// new_session_ticket(4).
    NewSessionTicket,
    /// encrypted_extensions(8).
    EncryptedExtensions,
    /// certificate_verify(15).
    CertificateVerify,
    /// Any other message type.
    Other(u8),
}

/// Parses one complete handshake message including its 4-byte header (RFC 8446 §4).
///
/// Trailing bytes after the declared length are ignored.
pub fn parse_handshake(msg: &[u8]) -> Result<Handshake, ParseError> {
    parse_handshake_cached(msg, &mut CertCache::new(0))
}

/// [`parse_handshake`] with certificate summaries looked up in (and added to) `certs`: a
/// server's certificate is sent again on every connection, and parsing it is most of the
/// cost of a handshake.
pub fn parse_handshake_cached(msg: &[u8], certs: &mut CertCache) -> Result<Handshake, ParseError> {
    const WHAT: &str = "tls handshake";
    let (rest, (t, len)) = handshake_header(msg)
        .map_err(|_| ParseError::new(WHAT, format!("{} bytes, header needs 4", msg.len())))?;
    if len > MAX_HANDSHAKE_LEN {
        return Err(ParseError::new(
            WHAT,
            format!("length {len} above maximum {MAX_HANDSHAKE_LEN}"),
        ));
    }
    let body = rest.get(..len).ok_or_else(|| {
        ParseError::new(
            WHAT,
            format!("length {len} exceeds the {} bytes present", rest.len()),
        )
    })?;
    use handshake_type as ht;
    Ok(match t {
        ht::CLIENT_HELLO => Handshake::ClientHello(parse_client_hello(body)?),
        ht::SERVER_HELLO => Handshake::ServerHello(parse_server_hello(body)?),
        ht::CERTIFICATE => Handshake::Certificate(parse_certificate(body, certs)?),
        ht::CERTIFICATE_REQUEST => Handshake::CertificateRequest,
        ht::SERVER_KEY_EXCHANGE => Handshake::ServerKeyExchange,
        ht::SERVER_HELLO_DONE => Handshake::ServerHelloDone,
        ht::CLIENT_KEY_EXCHANGE => Handshake::ClientKeyExchange,
        ht::FINISHED => Handshake::Finished,
        ht::NEW_SESSION_TICKET => Handshake::NewSessionTicket,
        ht::ENCRYPTED_EXTENSIONS => Handshake::EncryptedExtensions,
        ht::CERTIFICATE_VERIFY => Handshake::CertificateVerify,
        other => Handshake::Other(other),
    })
}

/// GREASE values (RFC 8701 §2): 0x?A?A with equal bytes.
fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

/// ClientHello body (RFC 8446 §4.1.2) via tls-parser; a malformed extension block keeps what parsed.
fn parse_client_hello(body: &[u8]) -> Result<ClientHello, ParseError> {
    let (_, ch) = tls_parser::parse_tls_handshake_client_hello(body)
        .map_err(|_| ParseError::new("tls client hello", "malformed or truncated"))?;
    let legacy_version = ch.version.0;
    let cipher_suites = ch
        .ciphers
        .iter()
        .map(|c| c.0)
        .filter(|c| !is_grease(*c))
        .collect();
    let mut versions = Vec::new();
    let mut sni = None;
    let mut alpn = Vec::new();
    let exts = ch
        .ext
        .and_then(|e| tls_parser::parse_tls_client_hello_extensions(e).ok())
        .map(|(_, v)| v)
        .unwrap_or_default();
    for ext in exts {
        match ext {
            TlsExtension::SupportedVersions(v) => {
                versions.extend(v.iter().map(|x| x.0).filter(|x| !is_grease(*x)));
            }
            TlsExtension::SNI(names) if sni.is_none() => {
                sni = names
                    .iter()
                    .find(|(t, _)| t.0 == 0)
                    .map(|(_, n)| String::from_utf8_lossy(n).into_owned());
            }
            TlsExtension::ALPN(protos) => {
                alpn.extend(
                    protos
                        .iter()
                        .map(|p| String::from_utf8_lossy(p).into_owned()),
                );
            }
            _ => {}
        }
    }
    if versions.is_empty() {
        versions.push(legacy_version);
    }
    Ok(ClientHello {
        legacy_version,
        versions,
        cipher_suites,
        sni,
        alpn,
        random: ch.random.try_into().unwrap_or([0; 32]),
    })
}

/// ServerHello body (RFC 8446 §4.1.3) via tls-parser, with supported_versions and HRR detection.
fn parse_server_hello(body: &[u8]) -> Result<ServerHello, ParseError> {
    let (_, sh) = tls_parser::parse_tls_handshake_server_hello(body).map_err(|_| {
        ParseError::new(
            "tls server hello",
            "malformed, truncated or unknown version",
        )
    })?;
    let legacy_version = sh.version.0;
    let selected = sh
        .ext
        .and_then(|e| tls_parser::parse_tls_server_hello_extensions(e).ok())
        .map(|(_, v)| v)
        .unwrap_or_default()
        .into_iter()
        .find_map(|ext| match ext {
            TlsExtension::SupportedVersions(v) => v.first().map(|x| x.0),
            _ => None,
        });
    Ok(ServerHello {
        legacy_version,
        version: selected.unwrap_or(legacy_version),
        cipher_suite: sh.cipher.0,
        hello_retry_request: sh.random == HELLO_RETRY_REQUEST_RANDOM,
        random: sh.random.try_into().unwrap_or([0; 32]),
    })
}

/// Certificate body: TLS ≤ 1.2 list (RFC 5246 §7.4.2), else the TLS 1.3 form with a request
/// context and per-entry extensions (RFC 8446 §4.4.2).
fn parse_certificate(body: &[u8], certs: &mut CertCache) -> Result<Vec<CertSummary>, ParseError> {
    let ders = cert_list_tls12(body)
        .or_else(|_| cert_list_tls13(body))
        .map_err(|_| ParseError::new("tls certificate", "malformed or truncated certificate list"))?
        .1;
    Ok(ders.into_iter().map(|der| certs.summarize(der)).collect())
}

/// The summaries of the last few distinct certificates seen, keyed by their DER bytes, most
/// recently used first. Bounded: at most `capacity` entries of at most
/// [`CertCache::MAX_DER`] bytes each (larger certificates are summarised, not kept), so a
/// capture of many distinct certificates costs a parse each and no memory.
#[derive(Debug, Default)]
pub struct CertCache {
    entries: Vec<(Box<[u8]>, CertSummary)>,
    capacity: usize,
}

impl CertCache {
    /// Largest DER certificate kept (real server certificates are 0.7-2 KiB).
    pub const MAX_DER: usize = 8 * 1024;

    /// An empty cache of at most `capacity` certificates (0: nothing is kept).
    pub fn new(capacity: usize) -> Self {
        CertCache {
            entries: Vec::new(),
            capacity,
        }
    }

    /// Certificates held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no certificate is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The summary of `der` (RFC 5280 §4.1): from the cache if these exact bytes were seen,
    /// else parsed (and kept, evicting the least recently used).
    pub fn summarize(&mut self, der: &[u8]) -> CertSummary {
        if let Some(pos) = self.entries.iter().position(|(k, _)| **k == *der) {
            if let Some(hit) = self.entries.get_mut(..=pos) {
                hit.rotate_right(1);
            }
            if let Some((_, s)) = self.entries.first() {
                return s.clone();
            }
        }
        let s = summarize_cert(der);
        if self.capacity > 0 && der.len() <= Self::MAX_DER {
            self.entries.truncate(self.capacity - 1);
            self.entries.insert(0, (der.into(), s.clone()));
        }
        s
    }
}

/// Lower-case hex of `bytes`.
fn hex_lower(bytes: &[u8]) -> String {
    fn digit(n: u8) -> char {
        char::from(if n < 10 { b'0' + n } else { b'a' + (n - 10) })
    }
    let mut s = String::with_capacity(bytes.len().saturating_mul(2));
    for b in bytes {
        s.push(digit(b >> 4));
        s.push(digit(b & 0x0f));
    }
    s
}

fn cert_list_tls12(i: &[u8]) -> IResult<&[u8], Vec<&[u8]>> {
    let (rest, list) = nom::multi::length_data(be_u24)(i)?;
    let (_, certs) = nom::combinator::all_consuming(nom::multi::many0(nom::combinator::complete(
        nom::multi::length_data(be_u24),
    )))(list)?;
    Ok((rest, certs))
}

fn cert_list_tls13(i: &[u8]) -> IResult<&[u8], Vec<&[u8]>> {
    let (i, _context) = nom::multi::length_data(be_u8)(i)?;
    let (rest, list) = nom::multi::length_data(be_u24)(i)?;
    let entry = nom::sequence::terminated(
        nom::multi::length_data(be_u24),
        nom::multi::length_data(be_u16),
    );
    let (_, certs) =
        nom::combinator::all_consuming(nom::multi::many0(nom::combinator::complete(entry)))(list)?;
    Ok((rest, certs))
}

/// RFC 3339 UTC string of an X.509 time.
fn rfc3339(t: &x509_parser::time::ASN1Time) -> String {
    let d = t.to_datetime();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        d.year(),
        u8::from(d.month()),
        d.day(),
        d.hour(),
        d.minute(),
        d.second()
    )
}

/// Summarizes one DER certificate (RFC 5280 §4.1); unreadable ones get a placeholder subject.
fn summarize_cert(der: &[u8]) -> CertSummary {
    use x509_parser::public_key::PublicKey;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return CertSummary {
            subject: format!("unparsable certificate ({} bytes)", der.len()),
            issuer: String::new(),
            not_before: String::new(),
            not_after: String::new(),
            self_signed: false,
            serial: String::new(),
            key: String::new(),
            signature_algorithm: String::new(),
        };
    };
    let subject = cert.subject().to_string();
    let issuer = cert.issuer().to_string();
    let serial = hex_lower(cert.raw_serial());
    let key = match cert.public_key().parsed() {
        Ok(PublicKey::RSA(rsa)) => format!("RSA {}", rsa.key_size()),
        Ok(PublicKey::EC(ec)) if ec.key_size() > 0 => format!("EC {}", ec.key_size()),
        Ok(PublicKey::EC(_)) => "EC".to_string(),
        Ok(PublicKey::DSA(y)) => format!("DSA {}", y.len().saturating_mul(8)),
        Ok(_) | Err(_) => {
            let oid = &cert.public_key().algorithm.algorithm;
            x509_parser::objects::oid2sn(oid, x509_parser::objects::oid_registry())
                .map(str::to_string)
                .unwrap_or_else(|_| oid.to_id_string())
        }
    };
    let sig_oid = &cert.signature_algorithm.algorithm;
    let signature_algorithm =
        x509_parser::objects::oid2sn(sig_oid, x509_parser::objects::oid_registry())
            .map(str::to_string)
            .unwrap_or_else(|_| sig_oid.to_id_string());
    CertSummary {
        self_signed: subject == issuer,
        not_before: rfc3339(&cert.validity().not_before),
        not_after: rfc3339(&cert.validity().not_after),
        subject,
        issuer,
        serial,
        key,
        signature_algorithm,
    }
}

/// A plaintext alert (RFC 8446 §6, RFC 5246 §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Alert {
    /// AlertLevel: 1 warning, 2 fatal.
    pub level: u8,
    /// AlertDescription.
    pub description: u8,
}

/// Reads an alert record body (RFC 8446 §6): exactly 2 bytes, else `None` (an encrypted alert is longer).
pub fn parse_alert(payload: &[u8]) -> Option<Alert> {
    match payload {
        [level, description] => Some(Alert {
            level: *level,
            description: *description,
        }),
        _ => None,
    }
}

/// AlertLevel name (RFC 5246 §7.2): "warning", "fatal" or "unknown".
pub fn alert_level_name(l: u8) -> &'static str {
    match l {
        1 => "warning",
        2 => "fatal",
        _ => "unknown",
    }
}

/// AlertDescription name in snake_case (RFC 8446 §6, RFC 5246 §7.2, RFC 7301, RFC 7507), else "unknown".
pub fn alert_description_name(d: u8) -> &'static str {
    match d {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        21 => "decryption_failed",
        22 => "record_overflow",
        30 => "decompression_failure",
        40 => "handshake_failure",
        41 => "no_certificate",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        60 => "export_restriction",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        100 => "no_renegotiation",
        109 => "missing_extension",
        110 => "unsupported_extension",
        111 => "certificate_unobtainable",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        114 => "bad_certificate_hash_value",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => "unknown",
    }
}

/// Protocol version name (RFC 8446 §4.2.1, RFC 6347 §4.1 for DTLS): "TLS1.2", …, else "0x%04x".
pub fn version_name(v: u16) -> String {
    match v {
        0x0002 => "SSL2.0".to_string(),
        0x0300 => "SSL3.0".to_string(),
        0x0301 => "TLS1.0".to_string(),
        0x0302 => "TLS1.1".to_string(),
        0x0303 => "TLS1.2".to_string(),
        0x0304 => "TLS1.3".to_string(),
        0x0100 => "DTLS1.0(OpenSSL pre-0.9.8f)".to_string(),
        0xfeff => "DTLS1.0".to_string(),
        0xfefd => "DTLS1.2".to_string(),
        0xfefc => "DTLS1.3".to_string(),
        0x7f00..=0x7fff => format!("TLS1.3-draft{}", v & 0xff),
        _ => format!("0x{v:04x}"),
    }
}

/// IANA cipher suite name (RFC 8446 §B.4, IANA TLS registry) from tls-parser's table.
pub fn cipher_suite_name(id: u16) -> Option<&'static str> {
    TlsCipherSuiteID(id).get_ciphersuite().map(|c| c.name)
}

/// Handshake message type name (RFC 8446 §4, RFC 5246 §7.4), else "unknown".
pub fn handshake_type_name(t: u8) -> &'static str {
    match t {
        0 => "hello_request",
        1 => "client_hello",
        2 => "server_hello",
        3 => "hello_verify_request",
        4 => "new_session_ticket",
        5 => "end_of_early_data",
        8 => "encrypted_extensions",
        11 => "certificate",
        12 => "server_key_exchange",
        13 => "certificate_request",
        14 => "server_hello_done",
        15 => "certificate_verify",
        16 => "client_key_exchange",
        20 => "finished",
        22 => "certificate_status",
        24 => "key_update",
        254 => "message_hash",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        let s: Vec<u8> = s.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
        s.chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    /// zeek/rdp-to-ssl.pcap frame 8 (client → server, after X.224 CC): TLS 1.0 ClientHello record.
    const RDP_TO_SSL_CH: &str = "16030100740100007003014d570ec58a9b7d325ed908de8cb2b4de50ec88184a1f6ec723c1d5a344a6cc34000018002f00350005000ac013c014c009c00a00320038001300040100002f00000012001000000d3139322e3136382e312e313530000500050100000000000a0006000400170018000b00020100";

    /// zeek/rdp-to-ssl.pcap frame 9 (server → client): one record with ServerHello, Certificate
    /// (self-signed RDP certificate) and ServerHelloDone.
    const RDP_TO_SSL_SH: &str = "16030103560200004603014d570ec5dce926336048a81f74582427b8dbdd75b023967bc5b9e8f0d64a473f20bc330000feec8017719c03aaf0ab2544484d8ccfa3a8a343239161d750f089ca002f000b0003040003010002fe308202fa308201e2a003020102021016ed2aa0495f259d4f5d99edada570d1300d06092a864886f70d01010505003026312430220603550403131b57494e324b3852322e6177616b65636f64696e672e6174682e6378301e170d3131303231323231333733355a170d3231303231323030303030305a3026312430220603550403131b57494e324b3852322e6177616b65636f64696e672e6174682e637830820122300d06092a864886f70d01010105000382010f003082010a0282010100fb55c684d0ee3a06ddbbbe86b33ffa8494d047fe4e794e576e5f8a29819bf7b2f47bcd14d33818bd54ac62c9ad3ec9cde23d2838dd8d4062032597e04f15d3351901498fbd67ae1e23d019734ac54c29a85f889ce11b33f0dfb197cf497532b21cee9d85d81ee8d1eef5d444c78442506b7310704c33db5287fcc9f0d7f0fcb8bedf9e5542228092e876665d331f353c6e4e3abb5dd8d6aa59d23d7bdb06ba10ff4d6e575d9adbb3776ff5e0e1df4ec24fde665f88bee40e731a39a02036d607d127bdae1181aa5b7b99715bfdbbf55f4149da451d57e3a205311c75b673dd04e77bedc63a00bdb7837344f2fd3b2ae58db51963e02aa715aa42e3a3d5def1970203010001a3243022300b0603551d0f04040302043030130603551d25040c300a06082b06010505070301300d06092a864886f70d010105050003820101007c430c5abb0c7218c2bb3820a68af5995b588a445160ed4082238382ed517c69b9cadc358dc9d07921cdbdf34b3f8057c83523ff952ad201a8b6305065c46a5526d6d7a41834768d9d5c7399f4bc3fdfe31dbd1b7f1c7db02f50b448384b0ae83583aae53051cbc2616587ae857747f5d1ccec8983850e8beb252f25fa3535509fbd3672a3f6eee6b3e89936cc884485782fdcfdb9dd6b8e40e7586423de429ebaf5008da53755e6593b0fad9b0213fc8e49aee922b09c768e354de12a14a07e429e019ab8acd092a7c7858f43d88cd1308aa6f41a06348423e19289a536e1697557433fedc07576192259d1cd2875daf50238d25ac323742c40c7f1f1addf6c0e000000";

    /// nDPI/rdp_over_tls.pcap frame 6: TLS 1.2 ClientHello (ECDHE suites, no SNI).
    const RDP_OVER_TLS_CH: &str = "160303009c0100009803036712bcc57dd01b4bfc34fb063f251917660c0de590acf0e9f34d3d022d6ae07a000038c02cc02bc030c02f009f009ec024c023c028c027c00ac009c014c01300390033009d009c003d003c0035002f000a006a004000380032001301000037000a00080006001d00170018000b00020100000d001400120401050102010403050302030202060106030023000000170000ff01000100";

    /// nDPI/rdp_over_tls.pcap frame 7: ServerHello, Certificate, ServerKeyExchange, ServerHelloDone.
    const RDP_OVER_TLS_SH: &str = "16030304a80200005103036712bcc596918cb3c7b4ace5615767922df5d2cace5c34ca0474833be5a8bf78208c1200004ed7d0578f9cd1b56534008db5494868c8a79ae3f6c3d4a2867ab650c03000000900170000ff010001000b0002de0002db0002d8308202d4308201bca0030201020210157edba19e9c65b84cd2389899cacf29300d06092a864886f70d01010b050030133111300f06035504031308746f7073616c6f6e301e170d3234303732363036303334305a170d3235303132353036303334305a30133111300f06035504031308746f7073616c6f6e30820122300d06092a864886f70d01010105000382010f003082010a0282010100bdd07448157df03c5d86b6a244c6fd4f144cfc992863043182255d38b892d64aed06ad68876d1dff543428cf460d73c8cd77d0adb125a39960e3813de891bba111a994d5190c12e942dcde1ac79ac666eb1ca7abb92b5a198b4dba9ce677c6aeb53b31a84f42df37be0b19580ffe30fd8b191343960ad9636d96495225a158bbc775cd8e9754af12f3930e2b11748c6da49478eaa27b46406cb95fb9ccf062401f24203c5f3bc306548f5f693457bb987d13e03c7c475fe26cb21758b9941aad22efbebf59db8a7f6709ddb43956968755d239b652859f696597101ecc819b5bbfcf3a7e580c2232da51e939299870801ce5b74a72cf05531f5f4d992ed237550203010001a324302230130603551d25040c300a06082b06010505070301300b0603551d0f040403020430300d06092a864886f70d01010b05000382010100424bb6246b6b412ec8fdd67743f0c764bed19861d0a1c10e0c2e47a1ee7f6d6a36c4508095765dfcb27905fa09fc5fa49e5fa97791af03a4a9845378f5680641b081f3be37404c7763e5b344e130174277e0f6e90e0bc42d1dc39ada8e83dfac4d0ece6f17cead7f12ba03d1b0852cf6a560e5bacc3374fe9d6f7eceda5e1ebfb7eeabf7bf21370f81c35ba65b15658354c8173bf19dac12e628998053f0d05cd4d20179753dfb8a7d3845c6c7522a7f3726abce966ae14ceb6f2a4a6185b89fa498cbadeea382677b2b0a1425d59698c8ee6b270091614a2e4f1e545b782483a4d1e23f9c179cac4a3f860eb789728b806ebfcdc910562b9a371dbb14b92a930c0001690300186104c3ef5c9aba705d03011aa195103ca716fb7a08e3425eb12fbe1d3cf4ef38014598464172b83596f5927209072478818864c952194d75428963c8a342ad77ec9810474c7c4cc65dd09486152e3ae7bcc4df85d866f439d6b642845d613113babf04010100bc90d46ac61bbc36d1b2f420269ee78c709abb4122c28e06c2522f7be6cec71d4cdcd3fcfe0887c60b177d435dac7b455d9bb42aeb667c9f8b42fac3fa26b24a96d6d88837835494134ff3692e1308e510f50d8b2a60af999beb19bb02b48334084021cfcb9e10725ac4a1b671105ae7bd60071903d789f6248b03824c88c147b9bdb6f8ab0ad50f2d33a86c3924c137c265e380ab4ada5dbd923a7bea979e63cfcd636e9a002b3da5c867b90275ed6d2da2a121e41616ad9c59580c17eb13b028efa73a6ea19fefad7a9821d27cfa87019f86501741c53c7bf34b7a0b5dd540250ed18d73aff072f611d3841cde88a1f6dd4f550249ab607ec29826630b2e750e000000";

    /// nDPI/rdp_over_tls.pcap frame 14: the server's encrypted alert record (26-byte body).
    const RDP_OVER_TLS_ENC_ALERT: &str =
        "150303001a000000000000000299f4e360ad0c19737fb2efd30a4c1a59de4d";

    /// Splits a record into its header and body, checking the framing.
    fn record(bytes: &[u8]) -> (RecordHeader, &[u8]) {
        let Framing::Complete(n) = tls_record_frame(bytes) else {
            panic!("record not complete")
        };
        (
            parse_record_header(bytes).unwrap(),
            &bytes[RECORD_HEADER_LEN..n],
        )
    }

    /// Splits a handshake byte stream into messages with `handshake_frame` and parses each.
    fn messages(mut stream: &[u8]) -> Vec<Handshake> {
        let mut out = Vec::new();
        while !stream.is_empty() {
            let Framing::Complete(n) = handshake_frame(stream) else {
                panic!("handshake not complete")
            };
            out.push(parse_handshake(&stream[..n]).unwrap());
            stream = &stream[n..];
        }
        out
    }

    #[test]
    fn record_header_fields() {
        let b = hex(RDP_TO_SSL_CH);
        // 16: handshake; 03 01: TLS 1.0 record version; 00 74: 116-byte body.
        assert_eq!(
            parse_record_header(&b),
            Some(RecordHeader {
                content_type: content_type::HANDSHAKE,
                version: 0x0301,
                len: 0x74
            })
        );
        assert_eq!(tls_record_frame(&b), Framing::Complete(5 + 0x74));
    }

    #[test]
    fn record_one_byte_short() {
        let b = hex(RDP_TO_SSL_CH);
        assert_eq!(
            tls_record_frame(&b[..b.len() - 1]),
            Framing::NeedMore(b.len())
        );
        assert_eq!(tls_record_frame(&b[..4]), Framing::NeedHeader);
        // The handshake message itself, one byte short.
        let (_, body) = record(&b);
        assert_eq!(
            handshake_frame(&body[..body.len() - 1]),
            Framing::NeedMore(body.len())
        );
        assert!(parse_handshake(&body[..body.len() - 1]).is_err());
        assert_eq!(handshake_frame(&body[..3]), Framing::NeedHeader);
    }

    #[test]
    fn record_header_rejects_non_tls() {
        // TPKT header (03 00 00 13) is not a TLS record.
        assert_eq!(
            tls_record_frame(&[0x03, 0x00, 0x00, 0x13, 0x0e]),
            Framing::Invalid
        );
        // Wrong major version.
        assert_eq!(parse_record_header(&[0x16, 0x02, 0x00, 0x00, 0x10]), None);
        // Length above 2^14 + 2048.
        assert_eq!(parse_record_header(&[0x17, 0x03, 0x03, 0x48, 0x01]), None);
        assert_eq!(handshake_frame(&[0x0b, 0x04, 0x00, 0x01]), Framing::Invalid);
    }

    #[test]
    fn tls10_client_hello_rdp_to_ssl() {
        let b = hex(RDP_TO_SSL_CH);
        let (_, body) = record(&b);
        let Handshake::ClientHello(ch) = parse_handshake(body).unwrap() else {
            panic!("not a ClientHello")
        };
        // client_version 03 01.
        assert_eq!(ch.legacy_version, 0x0301);
        // No supported_versions extension.
        assert_eq!(ch.versions, vec![0x0301]);
        // 12 suites: 002f 0035 0005 000a c013 c014 c009 c00a 0032 0038 0013 0004.
        assert_eq!(
            ch.cipher_suites,
            vec![
                0x002f, 0x0035, 0x0005, 0x000a, 0xc013, 0xc014, 0xc009, 0xc00a, 0x0032, 0x0038,
                0x0013, 0x0004
            ]
        );
        // server_name: host_name "192.168.1.150" (the server IP typed in mstsc).
        assert_eq!(ch.sni.as_deref(), Some("192.168.1.150"));
        assert!(ch.alpn.is_empty());
    }

    #[test]
    fn tls10_server_flight_rdp_to_ssl() {
        let b = hex(RDP_TO_SSL_SH);
        let (h, body) = record(&b);
        assert_eq!(h.len, 0x356);
        let msgs = messages(body);
        assert_eq!(msgs.len(), 3);
        // ServerHello: 03 01, cipher 00 2f, no extensions.
        let Handshake::ServerHello(sh) = &msgs[0] else {
            panic!("not a ServerHello: {:?}", msgs[0]);
        };
        assert_eq!(
            msgs[0],
            Handshake::ServerHello(ServerHello {
                legacy_version: 0x0301,
                version: 0x0301,
                cipher_suite: 0x002f,
                hello_retry_request: false,
                random: sh.random,
            })
        );
        assert_eq!(
            cipher_suite_name(0x002f),
            Some("TLS_RSA_WITH_AES_128_CBC_SHA")
        );
        // Certificate: the server's self-signed RDP certificate.
        let Handshake::Certificate(certs) = &msgs[1] else {
            panic!("not a Certificate")
        };
        assert_eq!(certs.len(), 1);
        let c = &certs[0];
        assert_eq!(c.subject, "CN=WIN2K8R2.awakecoding.ath.cx");
        assert_eq!(c.issuer, c.subject);
        assert!(c.self_signed);
        assert_eq!(c.serial, "16ed2aa0495f259d4f5d99edada570d1");
        assert_eq!(c.not_before, "2011-02-12T21:37:35Z");
        assert_eq!(c.not_after, "2021-02-12T00:00:00Z");
        assert_eq!(c.key, "RSA 2048");
        assert_eq!(c.signature_algorithm, "sha1WithRSAEncryption");
        assert_eq!(msgs[2], Handshake::ServerHelloDone);
    }

    #[test]
    fn tls12_ecdhe_rdp_over_tls() {
        let b = hex(RDP_OVER_TLS_CH);
        let (_, body) = record(&b);
        let Handshake::ClientHello(ch) = parse_handshake(body).unwrap() else {
            panic!()
        };
        assert_eq!(ch.legacy_version, 0x0303);
        assert_eq!(ch.versions, vec![0x0303]);
        // 0x38 bytes of suites = 28 suites, first c02c, last 0013 (no GREASE here).
        assert_eq!(ch.cipher_suites.len(), 28);
        assert_eq!(ch.cipher_suites.first(), Some(&0xc02c));
        // No server_name: the client connected to an IP address.
        assert_eq!(ch.sni, None);

        let b = hex(RDP_OVER_TLS_SH);
        let (_, body) = record(&b);
        let msgs = messages(body);
        assert_eq!(msgs.len(), 4);
        let Handshake::ServerHello(sh) = &msgs[0] else {
            panic!()
        };
        // 03 03, cipher c0 30, extensions renegotiation_info + ec_point_formats + EMS.
        assert_eq!((sh.version, sh.cipher_suite), (0x0303, 0xc030));
        assert_eq!(
            cipher_suite_name(sh.cipher_suite),
            Some("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384")
        );
        let Handshake::Certificate(certs) = &msgs[1] else {
            panic!()
        };
        assert_eq!(certs[0].subject, "CN=topsalon");
        assert!(certs[0].self_signed);
        assert_eq!(certs[0].not_after, "2025-01-25T06:03:40Z");
        assert_eq!(certs[0].signature_algorithm, "sha256WithRSAEncryption");
        assert_eq!(msgs[2], Handshake::ServerKeyExchange);
        assert_eq!(msgs[3], Handshake::ServerHelloDone);
    }

    #[test]
    fn alerts() {
        // The encrypted alert of nDPI/rdp_over_tls.pcap frame 14 is not a plaintext alert.
        let b = hex(RDP_OVER_TLS_ENC_ALERT);
        let (h, body) = record(&b);
        assert_eq!(h.content_type, content_type::ALERT);
        assert_eq!(parse_alert(body), None);
        // Plaintext fatal handshake_failure (RFC 8446 §6: level 2, description 40).
        let a = parse_alert(&[0x02, 0x28]).unwrap();
        assert_eq!(
            (
                alert_level_name(a.level),
                alert_description_name(a.description)
            ),
            ("fatal", "handshake_failure")
        );
        assert_eq!(alert_description_name(0), "close_notify");
        assert_eq!(alert_description_name(48), "unknown_ca");
        assert_eq!(alert_description_name(200), "unknown");
        assert_eq!(parse_alert(&[0x02]), None);
    }

    #[test]
    fn unparsable_certificate_is_kept() {
        // Certificate message: list of one 3-byte "certificate".
        let msg = [0x0b, 0, 0, 9, 0, 0, 6, 0, 0, 3, 0x30, 0x01, 0x00];
        let Handshake::Certificate(c) = parse_handshake(&msg).unwrap() else {
            panic!()
        };
        assert_eq!(c[0].subject, "unparsable certificate (3 bytes)");
        // A list length that overruns the message is an error, not a panic.
        assert!(parse_handshake(&[0x0b, 0, 0, 3, 0, 0, 9]).is_err());
    }

    #[test]
    fn cert_cache_gives_the_parsed_summary_and_stays_bounded() {
        let b = hex(RDP_TO_SSL_SH);
        let (_, body) = record(&b);
        let Handshake::Certificate(uncached) = parse_handshake(&messages_raw(body)[1]).unwrap()
        else {
            panic!("not a Certificate")
        };
        let mut cache = CertCache::new(2);
        for _ in 0..3 {
            let got = parse_handshake_cached(&messages_raw(body)[1], &mut cache).unwrap();
            assert_eq!(got, Handshake::Certificate(uncached.clone()));
        }
        assert_eq!(cache.len(), 1);
        // Distinct (here unparsable) certificates evict the least recently used.
        for n in 0..5u8 {
            let der = [0x30, 0x01, n];
            assert_eq!(
                cache.summarize(&der).subject,
                "unparsable certificate (3 bytes)"
            );
            assert_eq!(cache.len(), 2);
        }
        // A certificate above MAX_DER is summarised but not kept.
        let big = vec![0x30; CertCache::MAX_DER + 1];
        let first = cache.summarize(&[0x30, 0x01, 4]);
        assert_eq!(
            cache.summarize(&big).subject,
            format!("unparsable certificate ({} bytes)", big.len())
        );
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.summarize(&[0x30, 0x01, 4]), first);
        // Capacity 0 keeps nothing.
        let mut none = CertCache::new(0);
        none.summarize(&[0x30, 0x01, 0]);
        assert!(none.is_empty());
    }

    #[test]
    fn serial_hex_keeps_leading_zeros() {
        assert_eq!(hex_lower(&[0x00, 0x0a, 0xff, 0x10]), "000aff10");
        assert_eq!(hex_lower(&[]), "");
    }

    /// Splits a handshake byte stream into its raw messages.
    fn messages_raw(mut stream: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Framing::Complete(n) = handshake_frame(stream) {
            out.push(stream[..n].to_vec());
            stream = &stream[n..];
        }
        out
    }

    /// TLS 1.3 ClientHello: no RDP capture in the corpus has one, so this was captured with
    /// `tcpdump -i lo` from `openssl s_client -tls1_3 -servername rdp13.test -alpn x224
    /// -groups X25519:P-256` (OpenSSL 3.0) against `openssl s_server -groups P-256` on 127.0.0.1.
    const TLS13_CH: &str = "16030100ea010000e60303e6e40004dc33ca19f9b67fbc6b14a401f01972bab517eee3f308e5edf2fb70ef201395b51ed4487783e40321e9c316a5d17b044e28257328db60dcd34536f051f2000813021303130100ff010000950000000f000d00000a72647031332e74657374000b000403000102000a00060004001d00170023000000100007000504783232340016000000170000000d001e001c040305030603080708080809080a080b080408050806040105010601002b0003020304002d00020101003300260024001d0020d04b4777cd6bca17e249f1115b2c4263289109b30265eda9ca4183528863be29";

    /// Same capture: the server's HelloRetryRequest (it wants a P-256 key share), without the CCS.
    const TLS13_HRR: &str = "1603030058020000540303cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c201395b51ed4487783e40321e9c316a5d17b044e28257328db60dcd34536f051f2130200000c002b00020304003300020017";

    /// Same capture: the real ServerHello after the second ClientHello (first record of the flight).
    const TLS13_SH: &str = "160303009b020000970303f1cfb927adcc97888f9275747ad5172b9298216a0c0061a25c9a086bef793be4201395b51ed4487783e40321e9c316a5d17b044e28257328db60dcd34536f051f2130200004f002b00020304003300450017004104eb948ea5f5a91d3cf77865fc8621638330264b5016c31c7c43e43fa512b6ce9af1892e897a6f54291811f6d306ad1e798ef863e7e15263b8b5168c744021ede5";

    #[test]
    fn tls13_client_hello_hrr_and_server_hello() {
        let b = hex(TLS13_CH);
        let (h, body) = record(&b);
        // Record version 03 01 as RFC 8446 §5.1 recommends for the first ClientHello.
        assert_eq!(h.version, 0x0301);
        let Handshake::ClientHello(ch) = parse_handshake(body).unwrap() else {
            panic!()
        };
        // legacy_version 03 03; supported_versions (002b) lists only 03 04.
        assert_eq!(ch.legacy_version, 0x0303);
        assert_eq!(ch.versions, vec![0x0304]);
        // TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256, TLS_AES_128_GCM_SHA256, SCSV.
        assert_eq!(ch.cipher_suites, vec![0x1302, 0x1303, 0x1301, 0x00ff]);
        assert_eq!(ch.sni.as_deref(), Some("rdp13.test"));
        assert_eq!(ch.alpn, vec!["x224".to_string()]);

        let b = hex(TLS13_HRR);
        let (_, body) = record(&b);
        // random = SHA-256("HelloRetryRequest"); supported_versions selects 03 04.
        assert_eq!(
            parse_handshake(body),
            Ok(Handshake::ServerHello(ServerHello {
                legacy_version: 0x0303,
                version: 0x0304,
                cipher_suite: 0x1302,
                hello_retry_request: true,
                random: HELLO_RETRY_REQUEST_RANDOM,
            }))
        );

        let b = hex(TLS13_SH);
        let (_, body) = record(&b);
        let Handshake::ServerHello(sh) = parse_handshake(body).unwrap() else {
            panic!()
        };
        assert_eq!(
            (sh.version, sh.cipher_suite, sh.hello_retry_request),
            (0x0304, 0x1302, false)
        );
        assert_eq!(version_name(sh.version), "TLS1.3");
    }

    #[test]
    fn names_and_grease() {
        assert_eq!(version_name(0x0303), "TLS1.2");
        assert_eq!(version_name(0x0304), "TLS1.3");
        assert_eq!(version_name(0xfefd), "DTLS1.2");
        assert_eq!(version_name(0x1234), "0x1234");
        assert!(is_grease(0x0a0a) && is_grease(0xfafa) && !is_grease(0x0a1a));
        assert_eq!(cipher_suite_name(0x1301), Some("TLS_AES_128_GCM_SHA256"));
        assert_eq!(
            parse_handshake(&[0xfe, 0, 0, 0]),
            Ok(Handshake::Other(0xfe))
        );
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
                        &[0x16u8, 3, 1][..],
                        &[0x15, 3, 3, 0, 2],
                        &[0x17, 3, 3, 0x48, 0x00],
                        &[1, 0, 1],
                        &[2, 0, 0, 0x46],
                        &[11, 0, 0x10]
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
                framing_ok(tls_record_frame(&i), i.len(), RECORD_HEADER_LEN + MAX_RECORD_LEN)?;
                framing_ok(handshake_frame(&i), i.len(), HANDSHAKE_HEADER_LEN + MAX_HANDSHAKE_LEN)?;
                let _ = parse_record_header(&i);
                let _ = parse_handshake(&i);
                let _ = parse_alert(&i);
            }
        }
    }
}
