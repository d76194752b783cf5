//! HTTP/1.x message heads (RFC 9112): the request or status line and the header fields,
//! as RD Gateway (MS-TSGU) and HTTP CONNECT proxies use them. Bounded: a head longer than
//! [`MAX_HEAD`] is not one.

use super::Framing;

/// Longest message head accepted (request/status line plus headers).
pub const MAX_HEAD: usize = 16 * 1024;
/// Most header fields kept.
pub const MAX_HEADERS: usize = 64;

/// Methods that start a request this crate cares to recognise.
const METHODS: [&str; 9] = [
    "RDG_OUT_DATA",
    "RDG_IN_DATA",
    "CONNECT",
    "GET",
    "POST",
    "PUT",
    "HEAD",
    "OPTIONS",
    "DELETE",
];

/// Frames a message head at the start of `b`: complete at the blank line ending the headers.
pub fn head_frame(b: &[u8]) -> Framing {
    let window = b.get(..b.len().min(MAX_HEAD)).unwrap_or(b);
    match window.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(p) => Framing::Complete(p + 4),
        None if b.len() >= MAX_HEAD => Framing::Invalid,
        None => Framing::NeedHeader,
    }
}

/// Whether `b` starts like an HTTP request of a known method (`METHOD SP`).
pub fn is_request_start(b: &[u8]) -> bool {
    METHODS.iter().any(|m| {
        b.starts_with(m.as_bytes()) && b.get(m.len()) == Some(&b' ')
            || (b.len() <= m.len() && m.as_bytes().starts_with(b) && !b.is_empty())
    })
}

/// Whether `b` starts like an HTTP response (`HTTP/1.`).
pub fn is_response_start(b: &[u8]) -> bool {
    let n = b.len().min(7);
    b.get(..n) == b"HTTP/1.".get(..n) && !b.is_empty()
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Method, e.g. `RDG_OUT_DATA`.
    pub method: String,
    /// Request target, e.g. `/remoteDesktopGateway/` or `host:3389`.
    pub target: String,
    /// Header fields in order (names as sent).
    pub headers: Vec<(String, String)>,
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Header fields in order.
    pub headers: Vec<(String, String)>,
}

fn lines(head: &[u8]) -> Option<(String, Vec<(String, String)>)> {
    let text = std::str::from_utf8(head).ok()?;
    let mut it = text.split("\r\n");
    let first = it.next()?.to_string();
    let mut headers = Vec::new();
    for l in it.take_while(|l| !l.is_empty()) {
        if headers.len() >= MAX_HEADERS {
            break;
        }
        let (k, v) = l.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    Some((first, headers))
}

/// Parses a request head (request line and headers).
pub fn parse_request(head: &[u8]) -> Option<Request> {
    let (first, headers) = lines(head)?;
    let mut parts = first.splitn(3, ' ');
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") || method.is_empty() {
        return None;
    }
    Some(Request {
        method,
        target,
        headers,
    })
}

/// Parses a response head (status line and headers).
pub fn parse_response(head: &[u8]) -> Option<Response> {
    let (first, headers) = lines(head)?;
    let mut parts = first.splitn(3, ' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    let reason = parts.next().unwrap_or("").trim().to_string();
    Some(Response {
        status,
        reason,
        headers,
    })
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

impl Request {
    /// The first header field called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// Whether this is an RD Gateway (MS-TSGU HTTP transport) request.
    pub fn is_rdg(&self) -> bool {
        self.method.starts_with("RDG_")
            || self
                .target
                .to_ascii_lowercase()
                .contains("/remotedesktopgateway/")
    }

    /// Whether the request asks for a WebSocket upgrade.
    pub fn wants_websocket(&self) -> bool {
        self.header("Upgrade")
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
    }

    /// The body length announced by Content-Length (0 when absent).
    pub fn content_length(&self) -> Option<u64> {
        self.header("Content-Length").and_then(|v| v.parse().ok())
    }
}

impl Response {
    /// The first header field called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The body length announced by Content-Length.
    pub fn content_length(&self) -> Option<u64> {
        self.header("Content-Length").and_then(|v| v.parse().ok())
    }

    /// Whether the body is chunked.
    pub fn chunked(&self) -> bool {
        self.header("Transfer-Encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    /// The authentication schemes offered by WWW-Authenticate fields (`Negotiate`, `NTLM`,
    /// `Basic`, ...), each once, in order; a scheme's token (e.g. an NTLM challenge) is dropped.
    pub fn auth_schemes(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (k, v) in &self.headers {
            if !k.eq_ignore_ascii_case("WWW-Authenticate") {
                continue;
            }
            let scheme = v.split([' ', ',']).next().unwrap_or("").trim();
            if !scheme.is_empty() && !out.iter().any(|s| s.eq_ignore_ascii_case(scheme)) {
                out.push(scheme.to_string());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // From rdp-rdg-no-kdc-proxy-ntlm-downgrade-failure.pcapng (decrypted), shortened.
    const RESP_401: &[u8] = b"HTTP/1.1 401 Unauthorized\r\nContent-Type: text/html\r\nServer: Microsoft-HTTPAPI/2.0\r\nWWW-Authenticate: Negotiate\r\nWWW-Authenticate: NTLM\r\nWWW-Authenticate: Basic realm=\"it-help-gw\"\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn frames_and_parses_a_request_head() {
        let req = b"RDG_OUT_DATA /remoteDesktopGateway/ HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nHost: gw\r\n\r\nXX";
        assert_eq!(head_frame(req), Framing::Complete(req.len() - 2));
        assert!(is_request_start(req));
        assert!(is_request_start(b"RDG_"));
        assert!(!is_request_start(b"\x16\x03\x01"));
        let r = parse_request(req).unwrap();
        assert_eq!(r.method, "RDG_OUT_DATA");
        assert!(r.is_rdg() && r.wants_websocket());
        assert_eq!(r.header("host"), Some("gw"));
        assert_eq!(
            head_frame(b"RDG_OUT_DATA / HTTP/1.1\r\n"),
            Framing::NeedHeader
        );
    }

    #[test]
    fn parses_a_401_with_schemes() {
        let r = parse_response(RESP_401).unwrap();
        assert_eq!(r.status, 401);
        assert_eq!(r.reason, "Unauthorized");
        assert_eq!(r.auth_schemes(), ["Negotiate", "NTLM", "Basic"]);
        assert_eq!(r.content_length(), Some(0));
        assert!(is_response_start(b"HTTP/1.1 200"));
        assert!(parse_response(b"HTTP/1.1 abc\r\n\r\n").is_none());
    }

    #[test]
    fn a_long_head_is_invalid() {
        let mut b = b"GET / HTTP/1.1\r\n".to_vec();
        b.resize(MAX_HEAD + 10, b'a');
        assert_eq!(head_frame(&b), Framing::Invalid);
    }
}
