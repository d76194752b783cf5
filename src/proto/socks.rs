//! SOCKS5 (RFC 1928, RFC 1929) handshake messages, for RDP reached through a SOCKS proxy.

use super::Framing;

/// The name of a SOCKS5 reply code (REP).
pub fn reply_name(rep: u8) -> &'static str {
    match rep {
        0 => "succeeded",
        1 => "general failure",
        2 => "not allowed by ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unknown reply",
    }
}

/// Frames the client greeting `05 NMETHODS METHODS...`.
pub fn greeting_frame(b: &[u8]) -> Framing {
    match (b.first(), b.get(1)) {
        (None, _) => Framing::NeedHeader,
        (Some(5), None) => Framing::NeedHeader,
        (Some(5), Some(&n)) if n >= 1 => Framing::from_len(2 + usize::from(n), b.len()),
        _ => Framing::Invalid,
    }
}

/// Frames a request (`05 CMD 00 ATYP ADDR PORT`, client) or reply (`05 REP 00 ATYP ADDR
/// PORT`, server): both have the same layout.
pub fn request_frame(b: &[u8]) -> Framing {
    let (Some(&v), Some(&atyp)) = (b.first(), b.get(3)) else {
        return if b.first().is_some_and(|v| *v != 5) {
            Framing::Invalid
        } else {
            Framing::NeedHeader
        };
    };
    if v != 5 {
        return Framing::Invalid;
    }
    let addr = match atyp {
        1 => 4,
        4 => 16,
        3 => match b.get(4) {
            Some(&n) => 1 + usize::from(n),
            None => return Framing::NeedHeader,
        },
        _ => return Framing::Invalid,
    };
    Framing::from_len(4 + addr + 2, b.len())
}

/// Frames a username/password sub-negotiation (RFC 1929, `01 ULEN UNAME PLEN PASSWD`).
pub fn userpass_frame(b: &[u8]) -> Framing {
    let Some(&ulen) = b.get(1) else {
        return Framing::NeedHeader;
    };
    if b.first() != Some(&1) {
        return Framing::Invalid;
    }
    let at = 2 + usize::from(ulen);
    match b.get(at) {
        Some(&plen) => Framing::from_len(at + 1 + usize::from(plen), b.len()),
        None => Framing::NeedHeader,
    }
}

/// A complete request or reply: code (CMD or REP) and the address as `host:port`.
pub fn parse_request(b: &[u8]) -> Option<(u8, String)> {
    let Framing::Complete(n) = request_frame(b) else {
        return None;
    };
    let code = *b.get(1)?;
    let body = b.get(4..n)?;
    let (addr, port) = body.split_at(body.len().checked_sub(2)?);
    let port = u16::from_be_bytes(<[u8; 2]>::try_from(port).ok()?);
    let host = match b.get(3)? {
        1 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(addr).ok()?).to_string(),
        4 => format!(
            "[{}]",
            std::net::Ipv6Addr::from(<[u8; 16]>::try_from(addr).ok()?)
        ),
        _ => String::from_utf8_lossy(addr.get(1..)?).into_owned(),
    };
    Some((code, format!("{host}:{port}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arkime_socks5_rdp_handshake() {
        // arkime/socks5-rdp.pcap frames 4, 5, 6, 7.
        assert_eq!(greeting_frame(&[5, 1, 0]), Framing::Complete(3));
        assert_eq!(greeting_frame(&[3, 0, 0]), Framing::Invalid);
        let req = [5, 1, 0, 1, 10, 0, 0, 1, 0x0d, 0x3d];
        assert_eq!(request_frame(&req), Framing::Complete(10));
        assert_eq!(parse_request(&req), Some((1, "10.0.0.1:3389".into())));
        let rep = [5, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        assert_eq!(parse_request(&rep), Some((0, "0.0.0.0:0".into())));
        assert_eq!(reply_name(5), "connection refused");
        let dom = [5, 1, 0, 3, 2, b'h', b'x', 0x0d, 0x3d];
        assert_eq!(parse_request(&dom), Some((1, "hx:3389".into())));
        assert_eq!(request_frame(&[5, 1, 0]), Framing::NeedHeader);
        assert_eq!(userpass_frame(&[1, 1, b'u', 1, b'p']), Framing::Complete(5));
    }
}
