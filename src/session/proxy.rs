//! A SOCKS5 or HTTP CONNECT proxy handshake at the start of a stream: consumed in both
//! directions, recorded as the connection's proxy, then each direction starts over as RDP.

use super::details::ProxyDetails;
use super::stream::Mode;
use super::{EventKind, Session};
use crate::flow::{Dir, FrameRef};
use crate::proto::{http, socks, Framing};

/// Largest proxy message buffered.
const MAX_PROXY_MSG: usize = http::MAX_HEAD;

/// Which proxy protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Socks5,
    HttpConnect,
}

/// What a direction expects next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// SOCKS5 client greeting / server method selection.
    Hello,
    /// RFC 1929 username/password request / its status.
    UserPass,
    /// SOCKS5 request or reply, HTTP CONNECT request or response head.
    Connect,
    /// Done: the direction carries the tunnelled bytes.
    Done,
}

/// The handshake's state.
#[derive(Debug)]
pub struct ProxyState {
    kind: Kind,
    stage: [Stage; 2],
    buf: [Vec<u8>; 2],
}

fn is_socks5_greeting(data: &[u8]) -> bool {
    let (Some(&5), Some(&n)) = (data.first(), data.get(1)) else {
        return false;
    };
    let n = usize::from(n);
    let Some(methods) = data.get(2..2 + n) else {
        return false;
    };
    (1..=10).contains(&n)
        && methods.iter().all(|m| *m <= 0x09 || *m >= 0x80)
        && (data.len() == 2 + n || data.get(2 + n) == Some(&5))
}

impl Session {
    /// Whether a direction's first bytes begin (or continue) a proxy handshake; sets it up.
    pub(super) fn proxy_starts(&mut self, dir: Dir, data: &[u8], _frame: FrameRef) -> bool {
        let d = dir.index();
        if dir == Dir::ToClient {
            return self
                .proxy
                .as_ref()
                .is_some_and(|p| p.stage[d] != Stage::Done);
        }
        let kind = if is_socks5_greeting(data) && self.proxy.is_none() {
            Kind::Socks5
        } else if data.starts_with(b"CONNECT ")
            && self
                .proxy
                .as_ref()
                .map_or(true, |p| p.kind == Kind::HttpConnect)
        {
            Kind::HttpConnect
        } else {
            return false;
        };
        let stage = match kind {
            Kind::Socks5 => Stage::Hello,
            Kind::HttpConnect => Stage::Connect,
        };
        match self.proxy.as_mut() {
            // A second CONNECT on the same connection (after a 407, say).
            Some(p) => p.stage = [stage, stage],
            None => {
                self.proxy = Some(Box::new(ProxyState {
                    kind,
                    stage: [stage; 2],
                    buf: Default::default(),
                }));
                self.details.proxy = Some(ProxyDetails {
                    kind: match kind {
                        Kind::Socks5 => "socks5",
                        Kind::HttpConnect => "http_connect",
                    },
                    ..ProxyDetails::default()
                });
            }
        }
        true
    }

    /// Consumes proxy handshake bytes of a direction; returns how many of `data` were used.
    pub(super) fn proxy_bytes(&mut self, dir: Dir, data: &[u8], frame: FrameRef) -> usize {
        let d = dir.index();
        let Some(p) = self.proxy.as_mut() else {
            self.streams[d].mode = Mode::Ignore;
            return data.len();
        };
        let old = p.buf[d].len();
        let take = data.len().min(MAX_PROXY_MSG.saturating_sub(old));
        p.buf[d].extend_from_slice(data.get(..take).unwrap_or_default());
        let buf = &p.buf[d];
        let framing = match (p.kind, p.stage[d], dir) {
            (_, Stage::Done, _) => Framing::Invalid,
            (Kind::Socks5, Stage::Hello, Dir::ToServer) => socks::greeting_frame(buf),
            (Kind::Socks5, Stage::Hello, Dir::ToClient) => match buf.first() {
                Some(5) => Framing::from_len(2, buf.len()),
                Some(_) => Framing::Invalid,
                None => Framing::NeedHeader,
            },
            (Kind::Socks5, Stage::UserPass, Dir::ToServer) => socks::userpass_frame(buf),
            (Kind::Socks5, Stage::UserPass, Dir::ToClient) => Framing::from_len(2, buf.len()),
            (Kind::Socks5, Stage::Connect, _) => socks::request_frame(buf),
            (Kind::HttpConnect, _, _) => http::head_frame(buf),
        };
        match framing {
            Framing::Complete(n) => {
                let msg: Vec<u8> = p.buf[d].drain(..n).collect();
                // Bytes after the message are fed again in the direction's next mode.
                p.buf[d].clear();
                let used = n.saturating_sub(old);
                self.proxy_message(dir, &msg, frame);
                used
            }
            Framing::NeedHeader | Framing::NeedMore(_) if p.buf[d].len() < MAX_PROXY_MSG => take,
            _ => {
                let buf = std::mem::take(&mut p.buf[d]);
                self.unexpected(dir, &buf, frame, "a proxy handshake message");
                data.len()
            }
        }
    }

    fn proxy_event(&mut self, dir: Dir, frame: FrameRef, what: String) {
        self.push(frame, Some(dir), EventKind::Tunnel { what });
    }

    /// One complete handshake message.
    fn proxy_message(&mut self, dir: Dir, msg: &[u8], frame: FrameRef) {
        let d = dir.index();
        let Some(p) = self.proxy.as_mut() else {
            return;
        };
        let (kind, stage) = (p.kind, p.stage[d]);
        let mut next = stage;
        let mut failed = None;
        let mut what = String::new();
        match (kind, stage, dir) {
            (Kind::Socks5, Stage::Hello, Dir::ToServer) => {
                what = format!(
                    "SOCKS5 greeting ({} authentication methods)",
                    msg.len().saturating_sub(2)
                );
                // The request may follow without waiting (no authentication offered).
                next = Stage::Connect;
            }
            (Kind::Socks5, Stage::Hello, Dir::ToClient) => {
                let method = msg.get(1).copied().unwrap_or(0xff);
                what = format!("SOCKS5 method selection {method:#04x}");
                match method {
                    0x02 => {
                        next = Stage::UserPass;
                        p.stage[0] = Stage::UserPass;
                    }
                    0xff => failed = Some("no acceptable authentication methods".to_string()),
                    _ => next = Stage::Connect,
                }
            }
            (Kind::Socks5, Stage::UserPass, Dir::ToServer) => {
                what = "SOCKS5 username/password".into();
                next = Stage::Connect;
            }
            (Kind::Socks5, Stage::UserPass, Dir::ToClient) => {
                let ok = msg.get(1) == Some(&0);
                what = format!(
                    "SOCKS5 authentication {}",
                    if ok { "accepted" } else { "rejected" }
                );
                next = Stage::Connect;
                if !ok {
                    failed = Some("authentication rejected".to_string());
                }
            }
            (Kind::Socks5, Stage::Connect, Dir::ToServer) => {
                let (cmd, target) = socks::parse_request(msg).unwrap_or((0, String::new()));
                what = format!("SOCKS5 request (command {cmd}) to {target}");
                if let Some(pd) = self.details.proxy.as_mut() {
                    pd.target = Some(target);
                    pd.request_frame = Some(frame);
                }
                next = Stage::Done;
            }
            (Kind::Socks5, Stage::Connect, Dir::ToClient) => {
                let rep = msg.get(1).copied().unwrap_or(0xff);
                let name = socks::reply_name(rep);
                what = format!("SOCKS5 reply: {name} ({rep})");
                if rep == 0 {
                    self.proxy_reply(frame, name.to_string(), true);
                } else {
                    failed = Some(name.to_string());
                }
                next = Stage::Done;
            }
            (Kind::HttpConnect, _, Dir::ToServer) => {
                let req = http::parse_request(msg);
                let target = req.as_ref().map(|r| r.target.clone()).unwrap_or_default();
                what = format!("HTTP CONNECT {target}");
                if let Some(pd) = self.details.proxy.as_mut() {
                    pd.target = Some(target);
                    pd.request_frame.get_or_insert(frame);
                }
                next = Stage::Done;
            }
            (Kind::HttpConnect, _, Dir::ToClient) => {
                let resp = http::parse_response(msg);
                let (status, reason) = resp
                    .as_ref()
                    .map_or((0, String::new()), |r| (r.status, r.reason.clone()));
                what = format!("HTTP CONNECT response {status} {reason}");
                if (200..300).contains(&status) {
                    self.proxy_reply(frame, "succeeded".into(), true);
                    next = Stage::Done;
                } else {
                    let name = format!("HTTP {status} {reason}").trim_end().to_string();
                    self.proxy_reply(frame, name, false);
                    // The body (if announced) is skipped; a new CONNECT may follow.
                    let len = resp.and_then(|r| r.content_length()).unwrap_or(0);
                    self.streams[d].skip = usize::try_from(len).unwrap_or(usize::MAX);
                    next = Stage::Connect;
                }
            }
            (_, Stage::Done, _) => {}
        }
        if let Some(f) = failed {
            self.proxy_reply(frame, f, false);
            next = Stage::Done;
            self.proxy_event(dir, frame, what);
            if let Some(p) = self.proxy.as_mut() {
                p.stage[d] = next;
            }
            // Whatever follows from the proxy is not the tunnelled server.
            self.streams[d].mode = Mode::Ignore;
            return;
        }
        self.proxy_event(dir, frame, what);
        if let Some(p) = self.proxy.as_mut() {
            p.stage[d] = next;
        }
        if next == Stage::Done {
            self.streams[d].mode = Mode::Start;
        }
    }

    fn proxy_reply(&mut self, frame: FrameRef, reply: String, ok: bool) {
        if let Some(pd) = self.details.proxy.as_mut() {
            pd.reply = Some(reply);
            pd.succeeded = Some(ok);
            pd.reply_frame = Some(frame);
        }
    }
}
