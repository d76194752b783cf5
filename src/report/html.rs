//! The self-contained HTML report: summary, strip chart, filterable connection list and a
//! ladder diagram (inline SVG) per connection, rendered lazily when a connection is opened.
//! No external assets: it works offline and as a ticket attachment, and prints to PDF.

use std::fmt::Write as _;
use std::io::{self, Write};

use super::ladder::Rung;
use super::ConnectionReport;
use crate::diagnose::Outcome;
use crate::flow::Dir;
use crate::summary::{Keyed, Summary};

/// One connection as the HTML report shows it.
#[derive(Debug, Clone)]
pub struct HtmlConnection {
    /// The report (verdict and details).
    pub report: ConnectionReport,
    /// Its ladder.
    pub rungs: Vec<Rung>,
}

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Success => "success",
        Outcome::Failure => "failure",
        Outcome::Incomplete => "incomplete",
    }
}

/// A Wireshark display filter isolating the connection.
pub fn wireshark_filter(transport: &str, client: &str, server: &str) -> String {
    let split = |e: &str| -> (String, String) {
        match e.rsplit_once(':') {
            Some((ip, port)) => (ip.trim_matches(['[', ']']).to_string(), port.to_string()),
            None => (e.to_string(), String::new()),
        }
    };
    let (cip, cport) = split(client);
    let (sip, sport) = split(server);
    let ip = if cip.contains(':') {
        "ipv6.addr"
    } else {
        "ip.addr"
    };
    let l4 = if transport == "udp" { "udp" } else { "tcp" };
    format!("{ip}=={cip} && {ip}=={sip} && {l4}.port=={cport} && {l4}.port=={sport}")
}

const BAND_COLORS: [(&str, &str); 12] = [
    ("TCP", "#eef2f7"),
    ("X.224", "#e8f3ea"),
    ("TLS", "#eaf0fb"),
    ("CredSSP", "#f6eefb"),
    ("TLS data", "#eef6fb"),
    ("MCS", "#f7f3e3"),
    ("licensing", "#f3f7e3"),
    ("capabilities", "#e8f5f2"),
    ("RDP", "#fbf5e6"),
    ("close", "#f3f3f3"),
    ("network", "#fdecea"),
    ("not RDP", "#fdecea"),
];

/// The ladder as an SVG element.
pub fn ladder_svg(rungs: &[Rung]) -> String {
    let (left, right, top, step) = (190.0_f64, 700.0_f64, 34.0_f64, 28.0_f64);
    let height = top + step * rungs.len() as f64 + 16.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg class="ladder" xmlns="http://www.w3.org/2000/svg" width="860" height="{height}" viewBox="0 0 860 {height}" role="img"><defs><marker id="ah" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#444"/></marker><marker id="ahf" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#c62828"/></marker></defs>"##
    );
    // Phase bands.
    let mut i = 0;
    while i < rungs.len() {
        let band = rungs[i].band;
        let mut j = i;
        while j < rungs.len() && rungs[j].band == band {
            j += 1;
        }
        let color = BAND_COLORS
            .iter()
            .find(|(b, _)| *b == band)
            .map_or("#f5f5f5", |(_, c)| c);
        let y = top + step * i as f64 - step / 2.0;
        let h = step * (j - i) as f64;
        let _ = write!(
            s,
            r##"<rect class="band" x="{left}" y="{y}" width="{}" height="{h}" fill="{color}"/><text x="{}" y="{}" font-size="11" fill="#777">{}</text>"##,
            right - left,
            right + 8.0,
            y + 14.0,
            esc(band)
        );
        i = j;
    }
    let _ = write!(
        s,
        r##"<text x="{left}" y="16" font-size="13" font-weight="bold" text-anchor="middle">client</text><text x="{right}" y="16" font-size="13" font-weight="bold" text-anchor="middle">server</text><line x1="{left}" y1="22" x2="{left}" y2="{height}" stroke="#555"/><line x1="{right}" y1="22" x2="{right}" y2="{height}" stroke="#555"/>"##
    );
    for (k, g) in rungs.iter().enumerate() {
        let y = top + step * k as f64;
        let (color, marker, cls) = if g.fail {
            ("#c62828", "url(#ahf)", "rung fail")
        } else {
            ("#444", "url(#ah)", "rung")
        };
        let _ = write!(s, r##"<g class="{cls}" data-frame="{}">"##, g.frame);
        let _ = write!(
            s,
            r##"<text x="8" y="{}" font-size="11" fill="#555">#{} +{:.3}s</text>"##,
            y + 4.0,
            g.frame,
            g.rel_s
        );
        match g.from {
            Some(d) => {
                let (x1, x2) = if d == Dir::ToServer {
                    (left, right)
                } else {
                    (right, left)
                };
                let _ = write!(
                    s,
                    r##"<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="{color}" stroke-width="{}" marker-end="{marker}"/>"##,
                    if g.fail { 2.5 } else { 1.2 }
                );
            }
            None => {
                let _ = write!(
                    s,
                    r##"<circle cx="{}" cy="{y}" r="3" fill="{color}"/>"##,
                    (left + right) / 2.0
                );
            }
        }
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" font-size="11" text-anchor="middle" fill="{color}">{}{}</text>"##,
            (left + right) / 2.0,
            y - 4.0,
            if g.fail { "✗ " } else { "" },
            esc(&g.label)
        );
        s.push_str("</g>");
    }
    s.push_str("</svg>");
    s
}

/// A strip chart of connection starts over time, coloured by outcome.
fn strip_chart(conns: &[HtmlConnection]) -> String {
    let times: Vec<(f64, Outcome)> = conns
        .iter()
        .filter_map(|c| {
            crate::summary::epoch_seconds(&c.report.start).map(|t| (t, c.report.outcome))
        })
        .collect();
    let (w, h) = (900.0_f64, 60.0_f64);
    let mut s = format!(
        r##"<svg class="strip" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{}" viewBox="0 0 {w} {}">"##,
        h + 18.0,
        h + 18.0
    );
    if let (Some(min), Some(max)) = (
        times.iter().map(|t| t.0).reduce(f64::min),
        times.iter().map(|t| t.0).reduce(f64::max),
    ) {
        let span = (max - min).max(1.0);
        for (t, o) in &times {
            let x = 4.0 + (t - min) / span * (w - 8.0);
            let (color, y0) = match o {
                Outcome::Success => ("#2e7d32", 4.0),
                Outcome::Failure => ("#c62828", 22.0),
                Outcome::Incomplete => ("#9e9e9e", 40.0),
            };
            let _ = write!(
                s,
                r##"<rect x="{x:.1}" y="{y0}" width="2" height="16" fill="{color}"/>"##
            );
        }
        let _ = write!(
            s,
            r##"<text x="4" y="{}" font-size="11" fill="#555">{}</text><text x="{}" y="{}" font-size="11" text-anchor="end" fill="#555">{}</text>"##,
            h + 14.0,
            esc(&conns
                .iter()
                .map(|c| c.report.start.clone())
                .min()
                .unwrap_or_default()),
            w - 4.0,
            h + 14.0,
            esc(&conns
                .iter()
                .map(|c| c.report.start.clone())
                .max()
                .unwrap_or_default())
        );
    }
    s.push_str("</svg>");
    s
}

fn keyed_table(title: &str, rows: &[Keyed], limit: usize) -> String {
    let mut s = format!(
        "<table class=\"small\"><tr><th>{}</th><th>connections</th><th>failures</th></tr>",
        esc(title)
    );
    for k in rows.iter().take(limit) {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&k.key),
            k.outcomes.total,
            k.outcomes.failure
        );
    }
    s.push_str("</table>");
    s
}

const CSS: &str = r##"
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:22px 0 8px}
.badges span{display:inline-block;padding:4px 10px;border-radius:12px;margin-right:8px;font-weight:600}
.success{background:#e8f5e9;color:#2e7d32}.failure{background:#ffebee;color:#c62828}.incomplete{background:#eceff1;color:#546e7a}
table{border-collapse:collapse;margin:6px 0} td,th{border-bottom:1px solid #e3e3e3;padding:4px 8px;text-align:left;vertical-align:top}
table.small{display:inline-table;margin-right:24px}
#conns tr.conn td{cursor:pointer} #conns tr.conn:hover{background:#fafafa}
.filters{margin:8px 0;display:flex;gap:8px;flex-wrap:wrap} .filters input,.filters select{padding:4px}
details{margin:4px 0 12px} details>summary{cursor:pointer;color:#333} .remedy{background:#fffde7;padding:6px 8px;border-left:3px solid #fbc02d}
code{background:#f4f4f4;padding:1px 4px} .mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
@media print{.filters{display:none} details{break-inside:avoid} tr.conn{break-inside:avoid}}
"##;

const JS: &str = r##"
(function(){
var errs=0;window.addEventListener('error',function(){errs++;document.body.dataset.errors=errs;});
function render(d){var slot=d.querySelector('.ladder-slot');if(slot&&!slot.firstChild){var t=document.getElementById('ladder-'+d.dataset.i);if(t)slot.innerHTML=t.textContent;}}
document.querySelectorAll('details.conn-detail').forEach(function(d){d.addEventListener('toggle',function(){if(d.open)render(d);});});
document.querySelectorAll('tr.conn').forEach(function(r){r.addEventListener('click',function(){var d=document.getElementById('d-'+r.dataset.i);d.open=!d.open;});});
var f={o:document.getElementById('f-outcome'),c:document.getElementById('f-cause'),s:document.getElementById('f-server'),l:document.getElementById('f-client'),q:document.getElementById('f-search')};
var page=PAGE,limit=page,more=document.getElementById('more');
function apply(){var o=f.o.value,c=f.c.value,s=f.s.value.toLowerCase(),l=f.l.value.toLowerCase(),q=f.q.value.toLowerCase(),n=0,m=0;
document.querySelectorAll('tr.conn').forEach(function(r){var ok=(!o||r.dataset.outcome===o)&&(!c||r.dataset.cause===c)&&(!s||r.dataset.server.toLowerCase().indexOf(s)>=0)&&(!l||r.dataset.client.toLowerCase().indexOf(l)>=0)&&(!q||r.dataset.text.indexOf(q)>=0);
if(ok)m++;var show=ok&&n<limit;if(show)n++;r.style.display=show?'':'none';document.getElementById('x-'+r.dataset.i).style.display=show?'':'none';});
document.getElementById('shown').textContent=n+(m>n?' of '+m:'');more.style.display=m>n?'':'none';}
Object.keys(f).forEach(function(k){f[k].addEventListener('input',function(){limit=page;apply();});});
more.addEventListener('click',function(){limit+=page;apply();});
function all(){limit=Infinity;apply();document.querySelectorAll('details.conn-detail').forEach(function(d){render(d);d.open=true;});}
window.addEventListener('beforeprint',all);
if(location.hash==='#all')all();
document.body.dataset.ready='1';
})();
"##;

/// Connections listed at first (and per "show more"): layout of tens of thousands of table
/// rows is what makes a large report slow to open.
const PAGE: usize = 500;

/// Writes the report.
pub fn write_html(
    out: &mut dyn Write,
    title: &str,
    conns: &[HtmlConnection],
    summary: &Summary,
) -> io::Result<()> {
    let mut h = String::new();
    let _ = write!(h, "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{}</title><style>{CSS}</style></head><body data-errors=\"0\">", esc(title));
    let c = &summary.connections;
    let a = &summary.attempts;
    let _ = write!(
        h,
        "<h1>{}</h1><p>{} file(s), {} RDP connection(s), {} attempt(s).</p><div class=\"badges\"><span class=\"success\">{} success</span><span class=\"failure\">{} failure</span><span class=\"incomplete\">{} incomplete</span></div><p>Attempts by final outcome: {} success, {} failure, {} incomplete.</p>",
        esc(title), summary.files, c.total, a.total, c.success, c.failure, c.incomplete, a.success, a.failure, a.incomplete
    );
    h.push_str("<h2>Connections over time</h2>");
    h.push_str(&strip_chart(conns));
    h.push_str("<p class=\"mono\">top row: success, middle: failure, bottom: incomplete</p><h2>Failures</h2>");
    h.push_str(&keyed_table("cause", &summary.failures_by_cause, 30));
    h.push_str(&keyed_table("server", &summary.top_failing_servers, 10));
    let mut clients: Vec<Keyed> = summary
        .by_client
        .iter()
        .filter(|k| k.outcomes.failure > 0)
        .cloned()
        .collect();
    clients.truncate(10);
    h.push_str(&keyed_table("client", &clients, 10));
    // Filters.
    let mut causes: Vec<&str> = conns.iter().map(|c| c.report.cause).collect();
    causes.sort_unstable();
    causes.dedup();
    h.push_str("<h2>Connections (<span id=\"shown\">");
    let first = if conns.len() > PAGE {
        format!("{PAGE} of {}", conns.len())
    } else {
        conns.len().to_string()
    };
    let _ = write!(h, "{first}</span> shown)</h2><div class=\"filters\"><select id=\"f-outcome\"><option value=\"\">any outcome</option><option>success</option><option>failure</option><option>incomplete</option></select><select id=\"f-cause\"><option value=\"\">any cause</option>");
    for cause in causes {
        let _ = write!(h, "<option>{}</option>", esc(cause));
    }
    h.push_str("</select><input id=\"f-server\" placeholder=\"server\"><input id=\"f-client\" placeholder=\"client\"><input id=\"f-search\" placeholder=\"search\" size=\"30\"></div>");
    h.push_str("<table id=\"conns\"><tr><th>#</th><th>start (UTC)</th><th>client → server</th><th>phase</th><th>outcome</th><th>cause</th><th>frame</th><th>file</th></tr>");
    let mut templates = String::new();
    for (i, hc) in conns.iter().enumerate() {
        let r = &hc.report;
        let outcome = outcome_name(r.outcome);
        let hide = if i >= PAGE {
            " style=\"display:none\""
        } else {
            ""
        };
        let text = format!(
            "{} {} {} {} {} {}",
            r.client,
            r.server,
            r.cause,
            r.summary,
            r.file,
            r.phase.name()
        )
        .to_lowercase();
        let _ = write!(
            h,
            "<tr class=\"conn\" data-i=\"{i}\"{hide} data-outcome=\"{outcome}\" data-cause=\"{}\" data-server=\"{}\" data-client=\"{}\" data-text=\"{}\"><td>{}</td><td>{}</td><td>{} → {}</td><td>{}{}</td><td><span class=\"{outcome}\">{outcome}</span></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(r.cause), esc(&r.server), esc(&r.client), esc(&text), i + 1, esc(&r.start), esc(&r.client), esc(&r.server), r.phase.name(), if r.phase_inferred { "*" } else { "" }, esc(r.cause), r.key_frame.map_or(String::new(), |f| f.to_string()), esc(&r.file)
        );
        let _ = write!(h, "<tr id=\"x-{i}\"{hide}><td></td><td colspan=\"7\"><details class=\"conn-detail\" id=\"d-{i}\" data-i=\"{i}\"><summary>{}</summary>", esc(&r.summary));
        if r.outcome != Outcome::Success {
            let _ = write!(
                h,
                "<p class=\"remedy\"><b>What to do:</b> {}</p>",
                esc(r.remedy)
            );
        }
        let _ = write!(h, "<p>Wireshark filter: <code>{}</code> — confidence: {}</p><div class=\"ladder-slot\"></div></details></td></tr>", esc(&wireshark_filter(r.transport, &r.client, &r.server)), r.confidence.name());
        // The ladder, the evidence and the notes are kept as text (not parsed into the page)
        // and rendered when the connection is opened or printed: large reports open quickly.
        // Their text is escaped, so "</script" cannot occur in it.
        let _ = write!(templates, "<script type=\"text/html\" id=\"ladder-{i}\">{}<table class=\"small mono\"><tr><th>frame</th><th>time</th><th>evidence</th></tr>", ladder_svg(&hc.rungs));
        for e in &r.evidence {
            let _ = write!(
                templates,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                e.frame,
                esc(&e.time),
                esc(&e.what)
            );
        }
        templates.push_str("</table>");
        for n in &r.notes {
            let _ = write!(templates, "<p class=\"mono\">note: {}</p>", esc(n));
        }
        templates.push_str("</script>");
    }
    h.push_str("</table>");
    let _ = write!(
        h,
        "<p><button id=\"more\"{}>show {PAGE} more</button></p>",
        if conns.len() > PAGE {
            ""
        } else {
            " style=\"display:none\""
        }
    );
    h.push_str(&templates);
    let _ = write!(
        h,
        "<p class=\"mono\">generated by rdpdiag {}</p><script>{}</script></body></html>",
        env!("CARGO_PKG_VERSION"),
        JS.replace("PAGE", &PAGE.to_string())
    );
    out.write_all(h.as_bytes())
}
