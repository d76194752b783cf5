//! MS-TSGU HTTP transport packets (section 2.2.10): the RD Gateway's control messages and
//! the DATA packets that carry the tunnelled RDP bytes.
//!
//! Every packet starts with `HTTP_PACKET_HEADER`: packetType (u16 LE), reserved (u16),
//! packetLength (u32 LE, header included).

use super::Framing;

/// Size of HTTP_PACKET_HEADER.
pub const HEADER_LEN: usize = 8;
/// Largest packet accepted (DATA packets carry at most 64 KiB of payload).
pub const MAX_PACKET: usize = 70 * 1024;

/// Packet types (MS-TSGU 2.2.5.3.3).
pub mod ptype {
    /// HTTP_HANDSHAKE_REQUEST_PACKET.
    pub const HANDSHAKE_REQUEST: u16 = 0x1;
    /// HTTP_HANDSHAKE_RESPONSE_PACKET.
    pub const HANDSHAKE_RESPONSE: u16 = 0x2;
    /// HTTP_EXTENDED_AUTH_PACKET.
    pub const EXTENDED_AUTH: u16 = 0x3;
    /// HTTP_TUNNEL_PACKET.
    pub const TUNNEL_CREATE: u16 = 0x4;
    /// HTTP_TUNNEL_RESPONSE.
    pub const TUNNEL_RESPONSE: u16 = 0x5;
    /// HTTP_TUNNEL_AUTH_PACKET.
    pub const TUNNEL_AUTH: u16 = 0x6;
    /// HTTP_TUNNEL_AUTH_RESPONSE.
    pub const TUNNEL_AUTH_RESPONSE: u16 = 0x7;
    /// HTTP_CHANNEL_PACKET.
    pub const CHANNEL_CREATE: u16 = 0x8;
    /// HTTP_CHANNEL_RESPONSE.
    pub const CHANNEL_RESPONSE: u16 = 0x9;
    /// HTTP_DATA_PACKET.
    pub const DATA: u16 = 0xA;
    /// HTTP_SERVICE_MESSAGE_PACKET.
    pub const SERVICE_MESSAGE: u16 = 0xB;
    /// HTTP_REAUTH_MESSAGE_PACKET.
    pub const REAUTH: u16 = 0xC;
    /// HTTP_KEEPALIVE_PACKET.
    pub const KEEPALIVE: u16 = 0xD;
    /// HTTP_CLOSE_PACKET (close channel).
    pub const CLOSE_CHANNEL: u16 = 0x10;
    /// HTTP_CLOSE_PACKET (close channel response).
    pub const CLOSE_CHANNEL_RESPONSE: u16 = 0x11;
}

/// The name of a packet type.
pub fn type_name(t: u16) -> &'static str {
    match t {
        ptype::HANDSHAKE_REQUEST => "HANDSHAKE_REQUEST",
        ptype::HANDSHAKE_RESPONSE => "HANDSHAKE_RESPONSE",
        ptype::EXTENDED_AUTH => "EXTENDED_AUTH",
        ptype::TUNNEL_CREATE => "TUNNEL_CREATE",
        ptype::TUNNEL_RESPONSE => "TUNNEL_RESPONSE",
        ptype::TUNNEL_AUTH => "TUNNEL_AUTH",
        ptype::TUNNEL_AUTH_RESPONSE => "TUNNEL_AUTH_RESPONSE",
        ptype::CHANNEL_CREATE => "CHANNEL_CREATE",
        ptype::CHANNEL_RESPONSE => "CHANNEL_RESPONSE",
        ptype::DATA => "DATA",
        ptype::SERVICE_MESSAGE => "SERVICE_MESSAGE",
        ptype::REAUTH => "REAUTH",
        ptype::KEEPALIVE => "KEEPALIVE",
        ptype::CLOSE_CHANNEL => "CLOSE_CHANNEL",
        ptype::CLOSE_CHANNEL_RESPONSE => "CLOSE_CHANNEL_RESPONSE",
        _ => "UNKNOWN",
    }
}

/// The name of a gateway status/error code (MS-TSGU 2.2.6), both as HRESULT and as the bare
/// Win32 code some gateways send.
pub fn status_name(code: u32) -> Option<&'static str> {
    Some(match code {
        0 => "S_OK",
        0x0000_0005 | 0x8007_0005 => "ERROR_ACCESS_DENIED",
        0x0000_04CA => "ERROR_GRACEFUL_DISCONNECT",
        0x0000_04D4 => "E_PROXY_CONNECTIONABORTED",
        0x0000_59D8 | 0x8007_59D8 => "E_PROXY_INTERNALERROR",
        0x0000_59DA | 0x8007_59DA => "E_PROXY_RAP_ACCESSDENIED",
        0x0000_59DB | 0x8007_59DB => "E_PROXY_NAP_ACCESSDENIED",
        0x0000_59DD | 0x8007_59DD => "E_PROXY_TS_CONNECTFAILED",
        0x0000_59DF | 0x8007_59DF => "E_PROXY_ALREADYDISCONNECTED",
        0x0000_59E6 | 0x8007_59E6 => "E_PROXY_MAXCONNECTIONSREACHED",
        0x0000_59E8 | 0x8007_59E8 => "E_PROXY_NOTSUPPORTED",
        0x0000_59E9 | 0x8007_59E9 => "E_PROXY_CAPABILITYMISMATCH",
        0x0000_59ED | 0x8007_59ED => "E_PROXY_QUARANTINE_ACCESSDENIED",
        0x0000_59EE | 0x8007_59EE => "E_PROXY_NOCERTAVAILABLE",
        0x0000_59F6 | 0x8007_59F6 => "E_PROXY_SESSIONTIMEOUT",
        0x0000_59F7 | 0x8007_59F7 => "E_PROXY_COOKIE_BADPACKET",
        0x0000_59F8 | 0x8007_59F8 => "E_PROXY_COOKIE_AUTHENTICATION_ACCESS_DENIED",
        0x0000_59F9 | 0x8007_59F9 => "E_PROXY_UNSUPPORTED_AUTHENTICATION_METHOD",
        0x0000_59FA | 0x8007_59FA => "E_PROXY_REAUTH_AUTHN_FAILED",
        0x8009_030C => "SEC_E_LOGON_DENIED",
        _ => return None,
    })
}

/// Frames one packet at the head of `b` by its packetLength.
pub fn packet_frame(b: &[u8]) -> Framing {
    let Some(len) = b
        .get(4..8)
        .and_then(|x| <[u8; 4]>::try_from(x).ok())
        .map(u32::from_le_bytes)
    else {
        return Framing::NeedHeader;
    };
    let Ok(len) = usize::try_from(len) else {
        return Framing::Invalid;
    };
    let t = b.first().copied().unwrap_or(0);
    if !(HEADER_LEN..=MAX_PACKET).contains(&len) || b.get(1) != Some(&0) || t == 0 || t > 0x11 {
        return Framing::Invalid;
    }
    Framing::from_len(len, b.len())
}

/// One parsed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// packetType.
    pub ptype: u16,
    /// The status or error code of a response or close packet.
    pub status: Option<u32>,
    /// The payload of a DATA packet (the tunnelled bytes).
    pub data: Option<&'a [u8]>,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .and_then(|x| <[u8; 4]>::try_from(x).ok())
        .map(u32::from_le_bytes)
}

/// Parses a complete packet.
pub fn parse_packet(b: &[u8]) -> Option<Packet<'_>> {
    let ptype = u16::from_le_bytes(<[u8; 2]>::try_from(b.get(..2)?).ok()?);
    let len = usize::try_from(u32_at(b, 4)?).ok()?;
    let body = b.get(HEADER_LEN..len)?;
    let status = match ptype {
        // errorCode first.
        ptype::HANDSHAKE_RESPONSE
        | ptype::TUNNEL_AUTH_RESPONSE
        | ptype::CHANNEL_RESPONSE
        | ptype::CLOSE_CHANNEL
        | ptype::CLOSE_CHANNEL_RESPONSE => u32_at(body, 0),
        // serverVersion (u16), then statusCode.
        ptype::TUNNEL_RESPONSE => u32_at(body, 2),
        _ => None,
    };
    let data = if ptype == ptype::DATA {
        let n = usize::from(u16::from_le_bytes(
            <[u8; 2]>::try_from(body.get(..2)?).ok()?,
        ));
        Some(body.get(2..2 + n)?)
    } else {
        None
    };
    Some(Packet {
        ptype,
        status,
        data,
    })
}

/// The first resource (target server) and port of a complete HTTP_CHANNEL_PACKET, as
/// `server:port`: numResources (u8), numAltResources (u8), port (u16), protocol (u16), then
/// the resource names as HTTP_UNICODE_STRING (cbLen u16 + UTF-16LE).
pub fn channel_target(b: &[u8]) -> Option<String> {
    let body = b.get(HEADER_LEN..)?;
    if *body.first()? == 0 {
        return None;
    }
    let port = u16::from_le_bytes(<[u8; 2]>::try_from(body.get(2..4)?).ok()?);
    let n = usize::from(u16::from_le_bytes(
        <[u8; 2]>::try_from(body.get(6..8)?).ok()?,
    ));
    let name: Vec<u16> = body
        .get(8..8 + n)?
        .chunks_exact(2)
        .map(|c| {
            u16::from_le_bytes([
                c.first().copied().unwrap_or(0),
                c.get(1).copied().unwrap_or(0),
            ])
        })
        .take_while(|c| *c != 0)
        .collect();
    Some(format!("{}:{port}", String::from_utf16_lossy(&name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Server packets of rdp-rdg-same-creds-kerberos-password-success1.pcapng (decrypted).
    const HANDSHAKE_RESPONSE: [u8; 18] = [
        0x02, 0, 0, 0, 0x12, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0, 0, 0x07, 0,
    ];
    const TUNNEL_RESPONSE: [u8; 26] = [
        0x05, 0, 0, 0, 0x1a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x03, 0, 0, 0, 0x04, 0, 0, 0, 0x3f, 0, 0, 0,
    ];
    // A DATA packet carrying the inner X.224 Connection Confirm.
    const DATA_CC: [u8; 29] = [
        0x0a, 0, 0, 0, 0x1d, 0, 0, 0, 0x13, 0, 0x03, 0x00, 0x00, 0x13, 0x0e, 0xd0, 0x00, 0x00,
        0x12, 0x34, 0x00, 0x02, 0x1f, 0x08, 0x00, 0x08, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn parses_responses_and_data() {
        assert_eq!(packet_frame(&HANDSHAKE_RESPONSE), Framing::Complete(18));
        let p = parse_packet(&HANDSHAKE_RESPONSE).unwrap();
        assert_eq!((p.ptype, p.status), (ptype::HANDSHAKE_RESPONSE, Some(0)));
        let p = parse_packet(&TUNNEL_RESPONSE).unwrap();
        assert_eq!((p.ptype, p.status), (ptype::TUNNEL_RESPONSE, Some(0)));
        let p = parse_packet(&DATA_CC).unwrap();
        assert_eq!(p.ptype, ptype::DATA);
        assert_eq!(p.data.unwrap().len(), 0x13);
        assert_eq!(p.data.unwrap()[..2], [3, 0]);
        assert_eq!(type_name(p.ptype), "DATA");
    }

    #[test]
    fn framing_rejects_garbage() {
        assert_eq!(packet_frame(&DATA_CC[..5]), Framing::NeedHeader);
        assert_eq!(packet_frame(&DATA_CC[..12]), Framing::NeedMore(29));
        assert_eq!(packet_frame(b"HTTP/1.1 200"), Framing::Invalid);
        assert_eq!(packet_frame(&[0x0a, 0, 0, 0, 4, 0, 0, 0]), Framing::Invalid);
        assert!(parse_packet(&DATA_CC[..20]).is_none());
        assert_eq!(status_name(0x8007_59DA), Some("E_PROXY_RAP_ACCESSDENIED"));
    }
}
