//! Live capture: the same pipeline fed by libpcap, verdicts printed as connections settle.
//!
//! The read loop never blocks longer than libpcap's read timeout, so the idle sweep, the
//! announcement of newly established sessions, drop warnings and Ctrl-C are handled on a
//! quiet interface too. Finished connections are printed as soon as the analyzer hands them
//! over; nothing but the live connection table is kept.

use std::process::ExitCode;

use crate::cli::LiveArgs;

/// Runs `rdpdiag live`.
#[cfg(not(feature = "live"))]
pub fn run(_args: &LiveArgs) -> ExitCode {
    eprintln!("rdpdiag: live capture is not built in: rebuild with `cargo build --release --features live` (needs libpcap-dev)");
    ExitCode::from(2)
}

/// Runs `rdpdiag live`.
#[cfg(feature = "live")]
pub fn run(args: &LiveArgs) -> ExitCode {
    match imp::run(args) {
        Ok(code) => code,
        // Output into a closed pipe (`| head`) ends quietly.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rdpdiag: cannot write output: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(feature = "live")]
mod imp {
    use std::collections::VecDeque;
    use std::fs::File;
    use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
    use std::process::ExitCode;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc};
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    use crate::capture::live::{
        check_filter, default_filter, list_devices, LiveError, LiveSource, LiveStats, PcapngWriter,
        SNAPLEN,
    };
    use crate::capture::{Frame, FrameSink, LinkType, Timestamp};
    use crate::cli::{FormatArg, LiveArgs};
    use crate::diagnose::Outcome;
    use crate::flow::FinishReason;
    use crate::pipeline::{AnalyzeConfig, Analyzer, Diagnosed};
    use crate::report::{ConnectionReport, OutcomeCounts, ReportOptions, TableStream};

    /// How often the idle sweep, established announcements, drop check and key-log tail run.
    const TICK: Duration = Duration::from_millis(250);
    /// A closed connection is printed after this much silence (late retransmissions and
    /// the last ACKs still belong to it).
    const CLOSED_LINGER_NS: i64 = 2_000_000_000;
    /// pcapng secrets type of a TLS key log.
    const TLS_KEY_LOG: u32 = 0x544c_534b;
    /// With --keylog, how long frames wait before analysis so that the key-log lines a client
    /// writes while it connects are read first (a TLS 1.3 client logs the server's handshake
    /// secret only after the server's encrypted flight has passed the capture point).
    const KEY_WAIT: Duration = Duration::from_millis(500);
    /// Key-log re-reads while frames wait: at most this often (a stat and, when it grew, a read).
    const KEYLOG_POLL: Duration = Duration::from_millis(20);
    /// Most bytes of frames waiting for keys; past it the oldest go to analysis at once.
    const MAX_WAITING_BYTES: usize = 64 << 20;

    /// A captured frame held back until the key log has been re-read.
    struct HeldFrame {
        at: Instant,
        number: u64,
        ts: Timestamp,
        linktype: LinkType,
        data: Vec<u8>,
        orig_len: u32,
    }

    impl HeldFrame {
        fn frame(&self) -> Frame<'_> {
            Frame {
                number: self.number,
                ts: self.ts,
                linktype: self.linktype,
                data: &self.data,
                orig_len: self.orig_len,
            }
        }
    }

    /// Frames waiting for the key log (bounded by [`MAX_WAITING_BYTES`]).
    #[derive(Default)]
    struct KeyWait {
        q: VecDeque<HeldFrame>,
        bytes: usize,
    }

    impl KeyWait {
        fn push(&mut self, f: &Frame<'_>) {
            self.bytes = self.bytes.saturating_add(f.data.len());
            self.q.push_back(HeldFrame {
                at: Instant::now(),
                number: f.number,
                ts: f.ts,
                linktype: f.linktype,
                data: f.data.to_vec(),
                orig_len: f.orig_len,
            });
        }

        /// Whether the oldest frame has waited long enough (or the queue is too large).
        fn due(&self, all: bool) -> bool {
            self.q.front().is_some_and(|h| {
                all || h.at.elapsed() >= KEY_WAIT || self.bytes > MAX_WAITING_BYTES
            })
        }

        /// The oldest frame if it is due.
        fn pop_due(&mut self, all: bool) -> Option<HeldFrame> {
            if !self.due(all) {
                return None;
            }
            let h = self.q.pop_front()?;
            self.bytes = self.bytes.saturating_sub(h.data.len());
            Some(h)
        }
    }

    fn wall_now() -> Timestamp {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
    }

    fn terminal_width() -> u16 {
        std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(120)
    }

    fn list(out: &mut dyn Write) -> io::Result<ExitCode> {
        let devices = match list_devices() {
            Ok(d) => d,
            Err(e) => {
                eprintln!("rdpdiag: {e}");
                return Ok(ExitCode::from(1));
            }
        };
        if devices.is_empty() {
            eprintln!(
                "rdpdiag: libpcap found no capture devices (without capture permission some \
                 systems list none: run as root, or sudo setcap cap_net_raw,cap_net_admin=eip \
                 $(which rdpdiag))"
            );
            return Ok(ExitCode::from(1));
        }
        for d in devices {
            let mut line = format!("{:<16} {:<24}", d.name, d.flags.join(","));
            if !d.addresses.is_empty() {
                line.push(' ');
                line.push_str(&d.addresses.join(" "));
            }
            if let Some(desc) = &d.description {
                line.push_str(&format!("  ({desc})"));
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(ExitCode::SUCCESS)
    }

    /// Follows a growing TLS key-log file (the client appends to it during the run).
    struct KeyLogTail {
        path: String,
        pos: u64,
        partial: Vec<u8>,
        warned: bool,
    }

    impl KeyLogTail {
        /// Complete new lines since the last call (bounded per call).
        fn poll(&mut self) -> Vec<u8> {
            let mut f = match File::open(&self.path) {
                Ok(f) => f,
                Err(e) => {
                    if !self.warned {
                        eprintln!(
                            "rdpdiag: warning: key log {}: {e} (will keep looking)",
                            self.path
                        );
                        self.warned = true;
                    }
                    return Vec::new();
                }
            };
            let len = f.metadata().map_or(0, |m| m.len());
            if len < self.pos {
                // Truncated or replaced: start over.
                self.pos = 0;
                self.partial.clear();
            }
            if len == self.pos || f.seek(SeekFrom::Start(self.pos)).is_err() {
                return Vec::new();
            }
            let mut buf = Vec::new();
            let n = (&mut f)
                .take(1 << 20)
                .read_to_end(&mut buf)
                .unwrap_or_default();
            self.pos += n as u64;
            self.partial.extend_from_slice(&buf[..n.min(buf.len())]);
            match self.partial.iter().rposition(|b| *b == b'\n') {
                Some(end) => {
                    let rest = self.partial.split_off(end + 1);
                    std::mem::replace(&mut self.partial, rest)
                }
                None => {
                    if self.partial.len() > 1 << 16 {
                        // Not a key log: do not grow without bound.
                        self.partial.clear();
                    }
                    Vec::new()
                }
            }
        }
    }

    fn event_name(d: &Diagnosed) -> &'static str {
        match d.record.finish {
            FinishReason::Closed | FinishReason::PortReuse => "closed",
            FinishReason::Idle => "idle",
            FinishReason::Evicted { .. } => "evicted",
            FinishReason::CaptureEnd => "stopped",
        }
    }

    /// Prints verdicts as they come, table rows or JSON lines.
    struct Printer<'a> {
        out: &'a mut dyn Write,
        label: String,
        opts: ReportOptions,
        table: Option<TableStream>,
        counts: OutcomeCounts,
        connections: usize,
        established: usize,
    }

    impl Printer<'_> {
        fn print(&mut self, d: &Diagnosed, event: &'static str) -> io::Result<()> {
            let mut r = ConnectionReport::new(&self.label, d, self.opts);
            r.event = Some(event);
            if event == "established" {
                self.established += 1;
            } else {
                self.connections += 1;
                match d.verdict.outcome {
                    Outcome::Success => self.counts.success += 1,
                    Outcome::Failure => self.counts.failure += 1,
                    Outcome::Incomplete => self.counts.incomplete += 1,
                }
            }
            match &mut self.table {
                Some(t) => t.row(self.out, &r)?,
                None => {
                    serde_json::to_writer(&mut *self.out, &r)?;
                    self.out.write_all(b"\n")?;
                }
            }
            Ok(())
        }

        fn finished(&mut self, rx: &mpsc::Receiver<Diagnosed>) -> io::Result<()> {
            let mut any = false;
            for d in rx.try_iter() {
                self.print(&d, event_name(&d))?;
                any = true;
            }
            if any {
                self.out.flush()?;
            }
            Ok(())
        }
    }

    fn drops(s: &LiveStats) -> u64 {
        u64::from(s.dropped) + u64::from(s.if_dropped)
    }

    /// Saves a frame to the --write file; a write error stops saving (exit code 1).
    fn save_packet<W: Write>(
        writer: &mut Option<PcapngWriter<W>>,
        frame: &Frame<'_>,
        code: &mut ExitCode,
    ) {
        if let Some(w) = writer {
            if let Err(e) = w.packet(frame) {
                eprintln!("rdpdiag: cannot write the capture file: {e}; no longer saving packets");
                *writer = None;
                *code = ExitCode::from(1);
            }
        }
    }

    /// Reads new key-log lines into the analysis' key store and the --write file (as a
    /// Decryption Secrets Block before the packets they decrypt).
    fn read_keys<F: FnMut(Diagnosed), W: Write>(
        k: &mut KeyLogTail,
        analyzer: &mut Analyzer<F>,
        writer: &mut Option<PcapngWriter<W>>,
        code: &mut ExitCode,
    ) {
        let lines = k.poll();
        if lines.is_empty() {
            return;
        }
        analyzer.secrets(TLS_KEY_LOG, &lines);
        if let Some(w) = writer {
            if let Err(e) = w.tls_keys(&lines) {
                eprintln!("rdpdiag: cannot write the capture file: {e}; no longer saving packets");
                *writer = None;
                *code = ExitCode::from(1);
            }
        }
    }

    pub(super) fn run(args: &LiveArgs) -> io::Result<ExitCode> {
        let stdout = io::stdout();
        let mut out = BufWriter::new(stdout.lock());
        if args.list_interfaces {
            let code = list(&mut out)?;
            out.flush()?;
            return Ok(code);
        }
        let Some(interface) = args.interface.as_deref() else {
            eprintln!("rdpdiag: live needs an interface: -i IFACE (see --list-interfaces)");
            return Ok(ExitCode::from(2));
        };

        let mut config = AnalyzeConfig::default();
        for p in &args.ports {
            if !config.rdp_ports.contains(p) {
                config.rdp_ports.push(*p);
            }
        }
        let idle_secs = i64::try_from(args.idle_timeout.max(1)).unwrap_or(i64::MAX / 2);
        config.flow.idle_timeout_ns = idle_secs.saturating_mul(1_000_000_000);
        config.flow.closed_linger_ns = CLOSED_LINGER_NS.min(config.flow.idle_timeout_ns);

        let filter = args
            .filter
            .clone()
            .unwrap_or_else(|| default_filter(&args.ports));
        // Checked before opening the device, so a bad expression is named even without
        // capture permission; the device's own link type has the last word.
        let early = check_filter(&filter, LinkType::ETHERNET).err();
        let mut source = match LiveSource::open(interface, &filter) {
            Ok(s) => s,
            Err(e) => {
                let e = match (early, &e) {
                    (Some(fe), LiveError::Permission { .. } | LiveError::NoSuchDevice { .. }) => fe,
                    _ => e,
                };
                eprintln!("rdpdiag: {e}");
                return Ok(ExitCode::from(if e.is_usage() { 2 } else { 1 }));
            }
        };

        let mut writer = match &args.write {
            None => None,
            Some(path) => {
                let file = match File::create(path) {
                    Ok(f) => f,
                    Err(e) => {
                        eprintln!("rdpdiag: cannot create {path}: {e}");
                        return Ok(ExitCode::from(2));
                    }
                };
                let snaplen = SNAPLEN as u32;
                match PcapngWriter::new(
                    BufWriter::with_capacity(1 << 16, file),
                    interface,
                    source.linktype(),
                    snaplen,
                    source.nanos(),
                ) {
                    Ok(w) => Some(w),
                    Err(e) => {
                        eprintln!("rdpdiag: cannot write {path}: {e}");
                        return Ok(ExitCode::from(1));
                    }
                }
            }
        };
        let mut keylog = args.keylog.as_ref().map(|path| KeyLogTail {
            path: path.clone(),
            pos: 0,
            partial: Vec::new(),
            warned: false,
        });
        // With a key log, analysis runs KEY_WAIT behind the capture so that keys logged while
        // a connection's handshake is under way are in the store before its records.
        let mut waiting = keylog.as_ref().map(|_| KeyWait::default());
        let mut last_poll = Instant::now();

        let stop = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // A second Ctrl-C ends at once; the first stops the capture cleanly.
            let registered = signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone())
                .and_then(|_| signal_hook::flag::register(sig, stop.clone()));
            if let Err(e) = registered {
                eprintln!("rdpdiag: warning: cannot handle signal {sig}: {e}");
            }
        }

        let (tx, rx) = mpsc::channel::<Diagnosed>();
        let mut analyzer = Analyzer::new(config, move |d| {
            // The receiver lives until the end of `run`.
            let _ = tx.send(d);
        });
        let mut printer = Printer {
            out: &mut out,
            label: interface.to_string(),
            opts: ReportOptions {
                redact: args.redact,
                timeline: false,
            },
            table: (args.format == FormatArg::Table)
                .then(|| TableStream::new(args.width.unwrap_or_else(terminal_width))),
            counts: OutcomeCounts::default(),
            connections: 0,
            established: 0,
        };
        eprintln!(
            "rdpdiag: capturing on {interface} ({}), filter: {filter}; Ctrl-C to stop",
            match source.linktype() {
                LinkType::ETHERNET => "Ethernet".to_string(),
                LinkType::LINUX_SLL => "Linux cooked".to_string(),
                LinkType::LINUX_SLL2 => "Linux cooked v2".to_string(),
                other => format!("link type {}", other.0),
            }
        );
        if let Some(t) = &printer.table {
            t.header(printer.out)?;
            printer.out.flush()?;
        }

        let started = Instant::now();
        let deadline = args.duration.map(|s| started + Duration::from_secs(s));
        let mut last_tick = Instant::now();
        let mut reported_drops = 0u64;
        let mut code = ExitCode::SUCCESS;
        loop {
            if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            match source.next_frame() {
                Ok(Some(frame)) => match &mut waiting {
                    Some(q) => q.push(&frame),
                    None => {
                        save_packet(&mut writer, &frame, &mut code);
                        analyzer.frame(&frame);
                    }
                },
                Ok(None) => {}
                Err(e) => {
                    eprintln!("rdpdiag: {e}");
                    code = ExitCode::from(1);
                    break;
                }
            }
            if let (Some(q), Some(k)) = (&mut waiting, &mut keylog) {
                if q.due(false) && last_poll.elapsed() >= KEYLOG_POLL {
                    last_poll = Instant::now();
                    read_keys(k, &mut analyzer, &mut writer, &mut code);
                    while let Some(h) = q.pop_due(false) {
                        save_packet(&mut writer, &h.frame(), &mut code);
                        analyzer.frame(&h.frame());
                    }
                }
            }
            printer.finished(&rx)?;
            if last_tick.elapsed() < TICK {
                continue;
            }
            last_tick = Instant::now();
            let now = wall_now();
            analyzer.tick(now);
            printer.finished(&rx)?;
            for d in analyzer.newly_established(now) {
                printer.print(&d, "established")?;
                printer.out.flush()?;
            }
            if let Some(s) = source.stats() {
                let total = drops(&s);
                if total > reported_drops {
                    eprintln!(
                        "rdpdiag: warning: {} packets dropped ({} in all: {} by libpcap's buffer, \
                         {} by the interface); verdicts may lack evidence: narrow the --filter",
                        total - reported_drops,
                        total,
                        s.dropped,
                        s.if_dropped
                    );
                    reported_drops = total;
                }
            }
            if let Some(k) = &mut keylog {
                read_keys(k, &mut analyzer, &mut writer, &mut code);
            }
            if let Some(w) = &mut writer {
                if let Err(e) = w.flush() {
                    eprintln!(
                        "rdpdiag: cannot write the capture file: {e}; no longer saving packets"
                    );
                    writer = None;
                    code = ExitCode::from(1);
                }
            }
        }

        // Frames still waiting for keys: one last read of the key log, then all of them.
        if let (Some(q), Some(k)) = (&mut waiting, &mut keylog) {
            read_keys(k, &mut analyzer, &mut writer, &mut code);
            while let Some(h) = q.pop_due(true) {
                save_packet(&mut writer, &h.frame(), &mut code);
                analyzer.frame(&h.frame());
            }
        }
        // Every connection still open gets its verdict as of now.
        analyzer.tick(wall_now());
        analyzer.finish();
        printer.finished(&rx)?;
        if let Some(mut w) = writer {
            if let Err(e) = w.flush() {
                eprintln!("rdpdiag: cannot write the capture file: {e}");
                code = ExitCode::from(1);
            }
        }
        let stats = source.stats();
        let c = printer.counts;
        let mut summary = format!(
            "{interface}: {} frames, {} RDP connection{}: {} success, {} failure, {} incomplete",
            source.frames(),
            printer.connections,
            if printer.connections == 1 { "" } else { "s" },
            c.success,
            c.failure,
            c.incomplete
        );
        if printer.established > 0 {
            summary.push_str(&format!(" ({} announced established)", printer.established));
        }
        match stats {
            Some(s) => summary.push_str(&format!(
                "; libpcap: {} received, {} dropped, {} dropped by the interface",
                s.received, s.dropped, s.if_dropped
            )),
            None => summary.push_str("; libpcap statistics unavailable"),
        }
        if let Some(path) = &args.write {
            summary.push_str(&format!("; saved to {path}"));
        }
        if printer.table.is_some() {
            writeln!(printer.out)?;
            writeln!(printer.out, "{summary}")?;
        } else {
            eprintln!("rdpdiag: {summary}");
        }
        printer.out.flush()?;
        Ok(code)
    }
}
