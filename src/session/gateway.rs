//! RD Gateway (MS-TSGU HTTP transport) inside a decrypted TLS connection: HTTP request and
//! response heads, then WebSocket frames (or, for the legacy HTTP transport, the raw packet
//! stream), then MS-TSGU packets whose DATA payloads feed a nested [`Session`] for the
//! tunnelled RDP connection. Every buffer is bounded; the nested session has the same
//! bounds as any other and never nests further (it runs as an RDP-port session).

use super::details::{HttpExchange, TsguMessage, MAX_GATEWAY_ITEMS};
use super::stream::Mode;
use super::{EventKind, Session, SessionConfig};
use crate::flow::{ConnMeta, ConnectionObserver, Dir, FrameRef};
use crate::proto::{http, tsgu, websocket, Framing};

/// Largest WebSocket frame buffered whole.
const MAX_WS_FRAME: usize = 128 * 1024;
/// Most bytes buffered per direction while looking for a complete HTTP head or frame.
const MAX_BUF: usize = MAX_WS_FRAME + 16;

/// How a direction's decrypted bytes are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Stage {
    /// HTTP message heads (bodies skipped by Content-Length).
    #[default]
    Http,
    /// WebSocket frames carrying MS-TSGU packets.
    WebSocket,
    /// MS-TSGU packets directly (legacy HTTP transport bodies).
    Raw,
    /// Not followed any more.
    Ignore,
}

/// Per-connection gateway state.
#[derive(Debug, Default)]
pub struct GatewayState {
    stage: [Stage; 2],
    buf: [Vec<u8>; 2],
    /// HTTP body bytes still to skip.
    body: [u64; 2],
    /// WebSocket payload bytes not yet framed as MS-TSGU packets.
    tsgu: [Vec<u8>; 2],
    /// The last request seen (for the response that answers it).
    last_request: Option<String>,
    /// The tunnelled RDP connection.
    inner: Option<Box<Session>>,
}

impl Session {
    /// Whether a TLS connection off the RDP ports may still turn out to be an RD Gateway:
    /// keys are at hand and the first decrypted request has not been seen yet.
    pub(super) fn may_be_gateway(&self, dir: Dir) -> bool {
        !self.config.on_rdp_port
            && !self.not_gateway
            && self.streams[dir.index()].mode == Mode::Tls
            && self.details.nego.request_frame.is_none()
            && self.details.proxy.is_none()
            && self.keep_records_up_to(dir.index()).is_some()
    }

    /// The running tunnelled session.
    pub(super) fn gateway_inner(&self) -> Option<&Session> {
        self.gateway.as_ref()?.inner.as_deref()
    }

    /// Takes the tunnelled session out (at the end).
    pub(super) fn take_gateway_inner(&mut self) -> Option<Session> {
        self.gateway.as_mut()?.inner.take().map(|b| *b)
    }

    /// Decrypted application data may be an RD Gateway's: takes it and returns `true`, or
    /// `false` to leave it to the RDP path.
    pub(super) fn gateway_data(&mut self, dir: Dir, plain: &[u8], frame: FrameRef) -> bool {
        if self.gateway.is_none() {
            if self.config.on_rdp_port
                || self.not_gateway
                || self.details.nego.request_frame.is_some()
                || self.details.proxy.is_some()
            {
                return false;
            }
            if dir != Dir::ToServer || !http::is_request_start(plain) {
                self.not_gateway = true;
                return false;
            }
            self.gateway = Some(Box::default());
            self.details.gateway = Some(Box::default());
        }
        let d = dir.index();
        if let Some(g) = self.gateway.as_mut() {
            if g.stage[d] == Stage::Ignore {
                return true;
            }
            if g.buf[d].len() + plain.len() > MAX_BUF + MAX_BUF {
                g.stage[d] = Stage::Ignore;
                g.buf[d] = Vec::new();
                return true;
            }
            g.buf[d].extend_from_slice(plain);
        }
        self.gateway_process(dir, frame);
        true
    }

    fn gw_event(&mut self, dir: Dir, frame: FrameRef, what: String) {
        self.push(frame, Some(dir), EventKind::Tunnel { what });
    }

    fn gw_stop(&mut self, dir: Dir, frame: FrameRef, what: &str) {
        let d = dir.index();
        if let Some(g) = self.gateway.as_mut() {
            let head = super::hex_head(&g.buf[d]);
            g.stage[d] = Stage::Ignore;
            g.buf[d] = Vec::new();
            g.tsgu[d] = Vec::new();
            self.push(
                frame,
                Some(dir),
                EventKind::Malformed {
                    what: format!("RD Gateway {what} (starting {head})"),
                },
            );
        }
    }

    fn gateway_process(&mut self, dir: Dir, frame: FrameRef) {
        let d = dir.index();
        loop {
            let Some(g) = self.gateway.as_mut() else {
                return;
            };
            if g.body[d] > 0 {
                let n = g.body[d].min(g.buf[d].len() as u64);
                g.buf[d].drain(..n as usize);
                g.body[d] -= n;
            }
            if g.buf[d].is_empty() {
                return;
            }
            match g.stage[d] {
                Stage::Ignore => {
                    g.buf[d] = Vec::new();
                    return;
                }
                Stage::Http => match http::head_frame(&g.buf[d]) {
                    Framing::Complete(n) => {
                        let head: Vec<u8> = g.buf[d].drain(..n).collect();
                        self.http_head(dir, &head, frame);
                    }
                    Framing::Invalid => return self.gw_stop(dir, frame, "HTTP head too long"),
                    _ => return,
                },
                Stage::WebSocket => match websocket::frame(&g.buf[d]) {
                    Framing::Complete(n) => {
                        let mut f: Vec<u8> = g.buf[d].drain(..n).collect();
                        let Ok(Some(h)) = websocket::parse_header(&f) else {
                            return self.gw_stop(dir, frame, "WebSocket frame");
                        };
                        let payload = f.get_mut(h.header_len..).unwrap_or_default();
                        if let Some(k) = h.mask {
                            websocket::unmask(payload, k, 0);
                        }
                        match h.opcode {
                            websocket::opcode::BINARY | websocket::opcode::CONTINUATION => {
                                let p = payload.to_vec();
                                self.tsgu_bytes(dir, &p, frame);
                            }
                            websocket::opcode::CLOSE => {
                                self.gw_event(dir, frame, "WebSocket close".into());
                            }
                            _ => {}
                        }
                    }
                    Framing::NeedMore(total) if total > MAX_WS_FRAME => {
                        return self.gw_stop(dir, frame, "WebSocket frame over the size limit");
                    }
                    Framing::Invalid => return self.gw_stop(dir, frame, "WebSocket framing"),
                    _ => return,
                },
                Stage::Raw => {
                    let b = std::mem::take(&mut g.buf[d]);
                    self.tsgu_bytes(dir, &b, frame);
                    return;
                }
            }
        }
    }

    /// One complete HTTP request or response head.
    fn http_head(&mut self, dir: Dir, head: &[u8], frame: FrameRef) {
        let d = dir.index();
        if dir == Dir::ToServer {
            let Some(req) = http::parse_request(head) else {
                return self.gw_stop(dir, frame, "HTTP request");
            };
            let rdg = req.is_rdg();
            let line = format!("{} {}", req.method, req.target);
            let (Some(g), Some(gd)) = (self.gateway.as_mut(), self.details.gateway.as_mut()) else {
                return;
            };
            if !rdg && !gd.recognised {
                // An ordinary HTTPS request: not ours.
                self.not_gateway = true;
                g.stage = [Stage::Ignore; 2];
                g.buf = Default::default();
                return;
            }
            if rdg && !gd.recognised {
                gd.recognised = true;
                gd.request_frame = Some(frame);
                gd.host = req.header("Host").map(str::to_string);
            }
            g.last_request = Some(line.clone());
            g.body[d] = req.content_length().unwrap_or(0);
            if req.method == "RDG_IN_DATA" && !req.wants_websocket() {
                // Legacy HTTP transport: the request body is the client's packet stream.
                g.body[d] = 0;
                g.stage[d] = Stage::Raw;
            }
            self.gw_event(dir, frame, format!("HTTP {line}"));
            return;
        }
        let Some(resp) = http::parse_response(head) else {
            return self.gw_stop(dir, frame, "HTTP response");
        };
        let (Some(g), Some(gd)) = (self.gateway.as_mut(), self.details.gateway.as_mut()) else {
            return;
        };
        let schemes = resp.auth_schemes();
        if gd.responses.len() < MAX_GATEWAY_ITEMS {
            gd.responses.push(HttpExchange {
                frame,
                request: g.last_request.clone(),
                status: resp.status,
                reason: resp.reason.clone(),
                schemes: schemes.clone(),
            });
        }
        let out_data = g
            .last_request
            .as_deref()
            .is_some_and(|r| r.starts_with("RDG_OUT_DATA"));
        if resp.status == 101 {
            gd.websocket.get_or_insert(frame);
            g.stage = [Stage::WebSocket; 2];
        } else if resp.status == 200 && out_data {
            g.stage[d] = Stage::Raw;
        } else if resp.chunked() {
            g.stage[d] = Stage::Ignore;
        } else {
            g.body[d] = resp.content_length().unwrap_or(0);
        }
        let mut what = format!("HTTP {} {}", resp.status, resp.reason);
        if !schemes.is_empty() {
            what.push_str(&format!(" (offers {})", schemes.join(", ")));
        }
        self.gw_event(dir, frame, what);
    }

    /// WebSocket payload (or raw body) bytes: MS-TSGU packets.
    fn tsgu_bytes(&mut self, dir: Dir, bytes: &[u8], frame: FrameRef) {
        let d = dir.index();
        if let Some(g) = self.gateway.as_mut() {
            g.tsgu[d].extend_from_slice(bytes);
        }
        loop {
            let Some(g) = self.gateway.as_mut() else {
                return;
            };
            match tsgu::packet_frame(&g.tsgu[d]) {
                Framing::Complete(n) => {
                    let pkt: Vec<u8> = g.tsgu[d].drain(..n).collect();
                    self.tsgu_packet(dir, &pkt, frame);
                }
                Framing::Invalid => return self.gw_stop(dir, frame, "MS-TSGU packet framing"),
                _ => return,
            }
        }
    }

    fn tsgu_packet(&mut self, dir: Dir, pkt: &[u8], frame: FrameRef) {
        let Some(p) = tsgu::parse_packet(pkt) else {
            return self.gw_stop(dir, frame, "MS-TSGU packet");
        };
        if let Some(data) = p.data {
            if let Some(gd) = self.details.gateway.as_mut() {
                gd.data_packets[dir.index()] += 1;
            }
            self.inner_session(frame).data(dir, data, frame);
            return;
        }
        if p.ptype == tsgu::ptype::KEEPALIVE {
            return;
        }
        let Some(gd) = self.details.gateway.as_mut() else {
            return;
        };
        if p.ptype == tsgu::ptype::CHANNEL_CREATE {
            gd.target = tsgu::channel_target(pkt).or(gd.target.take());
        }
        if gd.messages.len() < MAX_GATEWAY_ITEMS {
            gd.messages.push(TsguMessage {
                frame,
                dir,
                ptype: p.ptype,
                status: p.status,
            });
        }
        let mut what = format!("RDG {}", tsgu::type_name(p.ptype));
        if let Some(s) = p.status {
            what.push_str(&format!(" status {s:#010x}"));
            if let Some(n) = tsgu::status_name(s).filter(|_| s != 0) {
                what.push_str(&format!(" ({n})"));
            }
        }
        if p.ptype == tsgu::ptype::CHANNEL_CREATE {
            if let Some(t) = &gd.target {
                what.push_str(&format!(" to {t}"));
            }
        }
        self.gw_event(dir, frame, what);
    }

    /// The tunnelled session, created with the first DATA packet.
    fn inner_session(&mut self, frame: FrameRef) -> &mut Session {
        let meta = ConnMeta {
            first: frame,
            saw_syn: true,
            ..self.meta
        };
        let config = SessionConfig {
            on_rdp_port: true,
            keys: self.config.keys.clone(),
            rdp_ports: self.config.rdp_ports.clone(),
        };
        let g = self.gateway.get_or_insert_with(Box::default);
        g.inner
            .get_or_insert_with(|| Box::new(Session::new(&meta, config)))
    }
}
