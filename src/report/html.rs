//! The self-contained HTML report: summary, strip chart, filterable connection list and a
//! ladder diagram (inline SVG) per connection, rendered lazily when a connection is opened.
//! No external assets: it works offline and as a ticket attachment, and prints to PDF.

use std::fmt::Write as _;
use std::io::{self, Read, Write};

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

/// Bytes a part of the report keeps in memory before it moves to a temporary file.
pub const SPILL_BYTES: usize = 4 << 20;

/// One part of the page being assembled: in memory while small, then in a temporary file
/// (removed when dropped), so a report of a million connections does not live in memory.
#[derive(Debug)]
struct Spill {
    limit: usize,
    mem: Vec<u8>,
    file: Option<(io::BufWriter<std::fs::File>, std::path::PathBuf)>,
}

impl Spill {
    fn new(limit: usize) -> Self {
        Spill {
            limit,
            mem: Vec::new(),
            file: None,
        }
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Some((f, _)) = &mut self.file {
            return f.write_all(bytes);
        }
        self.mem.extend_from_slice(bytes);
        if self.mem.len() > self.limit {
            let (f, path) = temp_file()?;
            let mut f = io::BufWriter::new(f);
            f.write_all(&self.mem)?;
            self.mem = Vec::new();
            self.file = Some((f, path));
        }
        Ok(())
    }

    /// Whether it moved to a file.
    fn spilled(&self) -> bool {
        self.file.is_some()
    }

    /// Reads everything written back, in order.
    fn reader(&mut self) -> io::Result<Box<dyn io::Read + '_>> {
        match &mut self.file {
            None => Ok(Box::new(&self.mem[..])),
            Some((w, _)) => {
                w.flush()?;
                let f = w.get_mut();
                io::Seek::seek(f, io::SeekFrom::Start(0))?;
                Ok(Box::new(io::BufReader::new(f)))
            }
        }
    }

    /// Copies everything written to `out`.
    fn copy_to(&mut self, out: &mut dyn Write) -> io::Result<()> {
        let mut r = self.reader()?;
        io::copy(&mut r, out)?;
        Ok(())
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        if let Some((_, path)) = self.file.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A new, empty temporary file only this process can have opened (`create_new`).
fn temp_file() -> io::Result<(std::fs::File, std::path::PathBuf)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut last = None;
    for _ in 0..16 {
        let path = dir.join(format!(
            "rdpdiag-html-{}-{}-{nanos:x}.tmp",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => return Ok((f, path)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot create a temporary file in {}: {e}", dir.display()),
                ))
            }
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("cannot create a temporary file")))
}

/// The HTML report assembled as connections arrive: the connection rows, their ladders and
/// the strip chart's points go to [`Spill`]s; the summary, the chart and the filters are
/// written at the end, and the parts are copied into the page. Memory holds the distinct
/// causes and a few counters, not the connections.
#[derive(Debug)]
pub struct HtmlWriter {
    rows: Spill,
    templates: Spill,
    /// Strip chart points: start (f64, little endian) and outcome (1 byte).
    points: Spill,
    n: usize,
    causes: std::collections::BTreeSet<&'static str>,
    first_start: Option<String>,
    last_start: Option<String>,
    span: Option<(f64, f64)>,
}

impl Default for HtmlWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl HtmlWriter {
    /// A report whose parts move to temporary files past [`SPILL_BYTES`] each.
    pub fn new() -> Self {
        Self::with_spill_limit(SPILL_BYTES)
    }

    /// A report whose parts move to temporary files past `limit` bytes each.
    pub fn with_spill_limit(limit: usize) -> Self {
        HtmlWriter {
            rows: Spill::new(limit),
            templates: Spill::new(limit),
            points: Spill::new(limit),
            n: 0,
            causes: std::collections::BTreeSet::new(),
            first_start: None,
            last_start: None,
            span: None,
        }
    }

    /// Connections added so far.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether none was added.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Whether any part moved to a temporary file.
    pub fn spilled(&self) -> bool {
        self.rows.spilled() || self.templates.spilled() || self.points.spilled()
    }

    /// Adds the next connection.
    pub fn add(&mut self, hc: &HtmlConnection) -> io::Result<()> {
        let i = self.n;
        self.n += 1;
        let r = &hc.report;
        self.causes.insert(r.cause);
        if self.first_start.as_ref().map_or(true, |s| r.start < *s) {
            self.first_start = Some(r.start.clone());
        }
        if self.last_start.as_ref().map_or(true, |s| r.start > *s) {
            self.last_start = Some(r.start.clone());
        }
        if let Some(t) = crate::summary::epoch_seconds(&r.start) {
            self.span = Some(self.span.map_or((t, t), |(a, b)| (a.min(t), b.max(t))));
            let mut p = [0u8; 9];
            p[..8].copy_from_slice(&t.to_le_bytes());
            p[8] = match r.outcome {
                Outcome::Success => 0,
                Outcome::Failure => 1,
                Outcome::Incomplete => 2,
            };
            self.points.write(&p)?;
        }
        let mut h = String::new();
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
        self.rows.write(h.as_bytes())?;
        // The ladder, the evidence and the notes are kept as text (not parsed into the page)
        // and rendered when the connection is opened or printed: large reports open quickly.
        // Their text is escaped, so "</script" cannot occur in it.
        let mut t = String::new();
        let _ = write!(t, "<script type=\"text/html\" id=\"ladder-{i}\">{}<table class=\"small mono\"><tr><th>frame</th><th>time</th><th>evidence</th></tr>", ladder_svg(&hc.rungs));
        for e in &r.evidence {
            let _ = write!(
                t,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                e.frame,
                esc(&e.time),
                esc(&e.what)
            );
        }
        t.push_str("</table>");
        for n in &r.notes {
            let _ = write!(t, "<p class=\"mono\">note: {}</p>", esc(n));
        }
        t.push_str("</script>");
        self.templates.write(t.as_bytes())
    }

    /// A strip chart of connection starts over time, coloured by outcome.
    fn strip_chart(&mut self, out: &mut dyn Write) -> io::Result<()> {
        let (w, h) = (900.0_f64, 60.0_f64);
        write!(
            out,
            r##"<svg class="strip" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{}" viewBox="0 0 {w} {}">"##,
            h + 18.0,
            h + 18.0
        )?;
        if let Some((min, max)) = self.span {
            let span = (max - min).max(1.0);
            let mut r = self.points.reader()?;
            let mut p = [0u8; 9];
            let mut s = String::new();
            loop {
                match r.read_exact(&mut p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(e),
                }
                let mut t = [0u8; 8];
                t.copy_from_slice(&p[..8]);
                let t = f64::from_le_bytes(t);
                let x = 4.0 + (t - min) / span * (w - 8.0);
                let (color, y0) = match p[8] {
                    0 => ("#2e7d32", 4.0),
                    1 => ("#c62828", 22.0),
                    _ => ("#9e9e9e", 40.0),
                };
                s.clear();
                let _ = write!(
                    s,
                    r##"<rect x="{x:.1}" y="{y0}" width="2" height="16" fill="{color}"/>"##
                );
                out.write_all(s.as_bytes())?;
            }
            drop(r);
            write!(
                out,
                r##"<text x="4" y="{}" font-size="11" fill="#555">{}</text><text x="{}" y="{}" font-size="11" text-anchor="end" fill="#555">{}</text>"##,
                h + 14.0,
                esc(self.first_start.as_deref().unwrap_or_default()),
                w - 4.0,
                h + 14.0,
                esc(self.last_start.as_deref().unwrap_or_default())
            )?;
        }
        out.write_all(b"</svg>")
    }

    /// Writes the page: the summary, the chart and the filters, then the parts gathered.
    pub fn finish(mut self, out: &mut dyn Write, title: &str, summary: &Summary) -> io::Result<()> {
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
        out.write_all(h.as_bytes())?;
        self.strip_chart(out)?;
        let mut h = String::new();
        h.push_str("<p class=\"mono\">top row: success, middle: failure, bottom: incomplete</p><h2>Failures</h2>");
        h.push_str(&keyed_table("cause", &summary.failures_by_cause, 30));
        h.push_str(&keyed_table("server", &summary.top_failing_servers, 10));
        let clients: Vec<Keyed> = summary
            .by_client
            .iter()
            .filter(|k| k.outcomes.failure > 0)
            .take(10)
            .cloned()
            .collect();
        h.push_str(&keyed_table("client", &clients, 10));
        // Filters.
        h.push_str("<h2>Connections (<span id=\"shown\">");
        let first = if self.n > PAGE {
            format!("{PAGE} of {}", self.n)
        } else {
            self.n.to_string()
        };
        let _ = write!(h, "{first}</span> shown)</h2><div class=\"filters\"><select id=\"f-outcome\"><option value=\"\">any outcome</option><option>success</option><option>failure</option><option>incomplete</option></select><select id=\"f-cause\"><option value=\"\">any cause</option>");
        for cause in &self.causes {
            let _ = write!(h, "<option>{}</option>", esc(cause));
        }
        h.push_str("</select><input id=\"f-server\" placeholder=\"server\"><input id=\"f-client\" placeholder=\"client\"><input id=\"f-search\" placeholder=\"search\" size=\"30\"></div>");
        h.push_str("<table id=\"conns\"><tr><th>#</th><th>start (UTC)</th><th>client → server</th><th>phase</th><th>outcome</th><th>cause</th><th>frame</th><th>file</th></tr>");
        out.write_all(h.as_bytes())?;
        self.rows.copy_to(out)?;
        let mut h = String::new();
        h.push_str("</table>");
        let _ = write!(
            h,
            "<p><button id=\"more\"{}>show {PAGE} more</button></p>",
            if self.n > PAGE {
                ""
            } else {
                " style=\"display:none\""
            }
        );
        out.write_all(h.as_bytes())?;
        self.templates.copy_to(out)?;
        write!(
            out,
            "<p class=\"mono\">generated by rdpdiag {}</p><script>{}</script></body></html>",
            env!("CARGO_PKG_VERSION"),
            JS.replace("PAGE", &PAGE.to_string())
        )
    }
}

/// Writes the report of `conns` (see [`HtmlWriter`] for reports built as connections
/// arrive).
pub fn write_html(
    out: &mut dyn Write,
    title: &str,
    conns: &[HtmlConnection],
    summary: &Summary,
) -> io::Result<()> {
    let mut w = HtmlWriter::new();
    for c in conns {
        w.add(c)?;
    }
    w.finish(out, title, summary)
}
