//! WebSocket frames (RFC 6455 section 5.2), as the MS-TSGU WebSocket transport carries
//! its packets in binary frames. Client frames are masked.

use super::{Framing, ParseError};

/// Opcodes.
pub mod opcode {
    /// Continuation frame.
    pub const CONTINUATION: u8 = 0x0;
    /// Text frame.
    pub const TEXT: u8 = 0x1;
    /// Binary frame.
    pub const BINARY: u8 = 0x2;
    /// Close.
    pub const CLOSE: u8 = 0x8;
    /// Ping.
    pub const PING: u8 = 0x9;
    /// Pong.
    pub const PONG: u8 = 0xA;
}

/// A frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Final fragment.
    pub fin: bool,
    /// Opcode.
    pub opcode: u8,
    /// Masking key (client frames).
    pub mask: Option<[u8; 4]>,
    /// Header length in bytes.
    pub header_len: usize,
    /// Payload length.
    pub payload_len: u64,
}

/// Parses the frame header at the head of `b`: `Ok(None)` when more bytes are needed.
pub fn parse_header(b: &[u8]) -> Result<Option<FrameHeader>, ParseError> {
    let (Some(&b0), Some(&b1)) = (b.first(), b.get(1)) else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        // Reserved bits set: no extension is negotiated by MS-TSGU.
        return Err(ParseError::new("websocket frame", "reserved bits set"));
    }
    let opcode = b0 & 0x0f;
    if !matches!(opcode, 0..=2 | 8..=10) {
        return Err(ParseError::new(
            "websocket frame",
            format!("opcode {opcode}"),
        ));
    }
    let masked = b1 & 0x80 != 0;
    let (payload_len, mut n) = match b1 & 0x7f {
        126 => match b.get(2..4).and_then(|x| <[u8; 2]>::try_from(x).ok()) {
            Some(x) => (u64::from(u16::from_be_bytes(x)), 4),
            None => return Ok(None),
        },
        127 => match b.get(2..10).and_then(|x| <[u8; 8]>::try_from(x).ok()) {
            Some(x) => (u64::from_be_bytes(x), 10),
            None => return Ok(None),
        },
        l => (u64::from(l), 2),
    };
    let mask = if masked {
        let Some(k) = b.get(n..n + 4).and_then(|x| <[u8; 4]>::try_from(x).ok()) else {
            return Ok(None);
        };
        n += 4;
        Some(k)
    } else {
        None
    };
    Ok(Some(FrameHeader {
        fin: b0 & 0x80 != 0,
        opcode,
        mask,
        header_len: n,
        payload_len,
    }))
}

/// Frames one whole WebSocket frame at the head of `b`.
pub fn frame(b: &[u8]) -> Framing {
    match parse_header(b) {
        Err(_) => Framing::Invalid,
        Ok(None) => Framing::NeedHeader,
        Ok(Some(h)) => match usize::try_from(h.payload_len) {
            Ok(len) => Framing::from_len(h.header_len.saturating_add(len), b.len()),
            Err(_) => Framing::Invalid,
        },
    }
}

/// Unmasks `data` in place; `offset` is the position of `data[0]` in the frame's payload.
pub fn unmask(data: &mut [u8], key: [u8; 4], offset: usize) {
    for (b, k) in data.iter_mut().zip(key.iter().cycle().skip(offset % 4)) {
        *b ^= k;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_masked_client_frame_from_rdg_capture() {
        // rdp-rdg-same-creds-kerberos-password-success1.pcapng: the client's
        // HTTP_HANDSHAKE_REQUEST_PACKET in a masked binary frame.
        let f = [
            0x82, 0x8e, 0xfe, 0x5e, 0x76, 0x39, 0xff, 0x5e, 0x76, 0x39, 0xf0, 0x5e, 0x76, 0x39,
            0xff, 0x5e, 0x76, 0x39, 0xfe, 0x5e,
        ];
        let h = parse_header(&f).unwrap().unwrap();
        assert!(h.fin);
        assert_eq!(h.opcode, opcode::BINARY);
        assert_eq!(h.mask, Some([0xfe, 0x5e, 0x76, 0x39]));
        assert_eq!((h.header_len, h.payload_len), (6, 14));
        assert_eq!(frame(&f), Framing::Complete(20));
        let mut p = f[6..].to_vec();
        unmask(&mut p, h.mask.unwrap(), 0);
        assert_eq!(&p[..8], &[1, 0, 0, 0, 0x0e, 0, 0, 0]);
    }

    #[test]
    fn extended_lengths() {
        // Server frame with a 16-bit length (CHANNEL_RESPONSE of 0x751 bytes).
        let f = [0x82, 0x7e, 0x07, 0x51, 0x09, 0x00];
        let h = parse_header(&f).unwrap().unwrap();
        assert_eq!((h.header_len, h.payload_len, h.mask), (4, 0x751, None));
        assert_eq!(frame(&f), Framing::NeedMore(4 + 0x751));
        let f = [0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0];
        assert_eq!(parse_header(&f).unwrap().unwrap().payload_len, 65536);
        assert_eq!(parse_header(&[0x82]), Ok(None));
        assert!(parse_header(&[0xf2, 0]).is_err());
        assert_eq!(frame(&[0x83, 0]), Framing::Invalid);
    }
}
