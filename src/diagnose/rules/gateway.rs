//! Rules for connections that reach RDP through something else: a SOCKS5 / HTTP CONNECT
//! proxy that refused, an RD Gateway (MS-TSGU) that failed at the HTTP or tunnel level, and
//! an RD Gateway tunnel whose inner RDP connection decides the verdict.

use super::{Ctx, Decision};
use crate::diagnose::verdict::{Confidence, End, EndedBy, Outcome};
use crate::diagnose::ConnectionRecord;
use crate::flow::Dir;
use crate::proto::tsgu;
use crate::session::GatewayDetails;

fn close_end(cx: &mut Ctx<'_>) -> End {
    match cx.ev_close() {
        Some((_, _, e)) => e,
        None => cx.open_end().1,
    }
}

/// Decides proxy refusals and RD Gateway connections.
pub(super) fn decide(cx: &mut Ctx<'_>) -> Option<Decision> {
    if let Some(d) = proxy(cx) {
        return Some(d);
    }
    let g = cx.r.session.details.gateway.as_deref()?;
    if !g.recognised {
        return None;
    }
    let gw = cx.r.meta.server.to_string();
    if let Some(f) = g.request_frame {
        cx.ev(f, "client: RD Gateway request (RDG_OUT_DATA)");
    }
    if let Some(m) = g.failed_message() {
        let status = m.status.unwrap_or(0);
        let name = tsgu::status_name(status).unwrap_or("unknown status");
        let what = format!(
            "server: RDG {} status {status:#010x} ({name})",
            tsgu::type_name(m.ptype)
        );
        cx.ev(m.frame, what);
        cx.key = Some(m.frame.number);
        let end = close_end(cx);
        let target = g
            .target
            .as_deref()
            .map_or(String::new(), |t| format!(" to {t}"));
        let summary = format!(
            "the RD Gateway {gw} refused the tunnel{target}: {} answered {name} ({status:#010x})",
            tsgu::type_name(m.ptype)
        );
        return Some(cx.decide(
            "gateway_tunnel_failed",
            Outcome::Failure,
            EndedBy::Server,
            end,
            Confidence::Certain,
            summary,
        ));
    }
    if let Some(inner) = g.inner.as_deref() {
        return Some(tunnelled(cx, g, inner.clone(), &gw));
    }
    if let Some(d) = http_failure(cx, g, &gw) {
        return Some(d);
    }
    Some(cx.by_closer(
        "connection_closed_by_client",
        "connection_closed_by_server",
        &format!("after the RD Gateway exchange with {gw}, before the tunnel carried RDP"),
    ))
}

/// A proxy that did not connect the client.
fn proxy(cx: &mut Ctx<'_>) -> Option<Decision> {
    let p = cx.r.session.details.proxy.as_ref()?;
    if p.succeeded != Some(false) {
        return None;
    }
    let kind = if p.kind.starts_with("socks") {
        "SOCKS5"
    } else {
        "HTTP CONNECT"
    };
    let target = p.target.clone().unwrap_or_else(|| "?".into());
    let reply = p.reply.clone().unwrap_or_default();
    if let Some(f) = p.request_frame {
        cx.ev(f, format!("client: {kind} request to {target}"));
    }
    if let Some(f) = p.reply_frame {
        cx.ev(f, format!("server: {kind} reply: {reply}"));
        cx.key = Some(f.number);
    }
    let end = close_end(cx);
    let summary = format!(
        "the {kind} proxy {} did not connect to {target}: {reply}",
        cx.r.meta.server
    );
    Some(cx.decide(
        "proxy_refused",
        Outcome::Failure,
        EndedBy::Server,
        end,
        Confidence::Certain,
        summary,
    ))
}

/// The gateway answered the RDG request with an HTTP error and no tunnel followed.
fn http_failure(cx: &mut Ctx<'_>, g: &GatewayDetails, gw: &str) -> Option<Decision> {
    if g.websocket.is_some() {
        return None;
    }
    let last = g.responses.last()?;
    if last.status < 400 {
        return None;
    }
    let mut schemes: Vec<String> = Vec::new();
    for r in &g.responses {
        if matches!(r.status, 401 | 407) {
            let what = format!("server: HTTP {} {}", r.status, r.reason);
            cx.ev(r.frame, what);
        }
        for s in &r.schemes {
            if !schemes.contains(s) {
                schemes.push(s.clone());
            }
        }
    }
    cx.ev(
        last.frame,
        format!("server: HTTP {} {}", last.status, last.reason),
    );
    cx.key = Some(last.frame.number);
    let end = close_end(cx);
    let status = format!("HTTP {} {}", last.status, last.reason);
    let (cause, summary) = match last.status {
        401 | 407 => {
            let offered = if schemes.is_empty() {
                String::new()
            } else {
                format!(" (schemes offered: {})", schemes.join(", "))
            };
            let tries = g
                .responses
                .iter()
                .filter(|r| matches!(r.status, 401 | 407))
                .count();
            (
                "gateway_auth_failed",
                format!("the RD Gateway {gw} did not authenticate the user: {tries} authentication round(s) ended in {status}{offered}; no tunnel was created"),
            )
        }
        403 => (
            "gateway_refused",
            format!("the RD Gateway {gw} refused the request: {status}"),
        ),
        500.. => (
            "gateway_error",
            format!("the RD Gateway {gw} failed with {status}"),
        ),
        _ => (
            "gateway_refused",
            format!("the RD Gateway {gw} rejected the request: {status}"),
        ),
    };
    Some(cx.decide(
        cause,
        Outcome::Failure,
        EndedBy::Server,
        end,
        Confidence::Certain,
        summary,
    ))
}

/// The tunnel carried RDP: the inner connection's verdict, with the outer TCP's closes.
fn tunnelled(
    cx: &mut Ctx<'_>,
    g: &GatewayDetails,
    inner: crate::session::SessionRecord,
    gw: &str,
) -> Decision {
    if let Some(f) = g.websocket {
        cx.ev(f, "server: HTTP 101 Switching Protocols (WebSocket)");
    }
    if let Some(m) = g
        .messages
        .iter()
        .find(|m| m.ptype == tsgu::ptype::CHANNEL_RESPONSE && m.dir == Dir::ToClient)
    {
        cx.ev(
            m.frame,
            "server: RDG CHANNEL_RESPONSE status 0 (tunnel open)",
        );
    }
    let rec = ConnectionRecord {
        meta: cx.r.meta,
        tcp: cx.r.tcp.clone(),
        session: inner,
        finish: cx.r.finish,
        capture_end: cx.r.capture_end,
    };
    let v = super::diagnose(&rec);
    for e in v.evidence {
        if !cx
            .evidence
            .iter()
            .any(|x| x.frame == e.frame && x.what == e.what)
        {
            cx.evidence.push(e);
        }
    }
    cx.ev_close();
    cx.key = v.key_frame.or(cx.key);
    let target = g
        .target
        .as_deref()
        .map_or(String::new(), |t| format!(" to {t}"));
    Decision {
        cause: v.cause,
        outcome: v.outcome,
        ended_by: v.ended_by,
        end: v.end,
        confidence: v.confidence,
        summary: format!("through the RD Gateway {gw}{target}: {}", v.summary),
    }
}
