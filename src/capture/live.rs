//! Frames from a live interface (libpcap), and a pcapng writer that saves them with the
//! same frame numbers.
//!
//! Invariant: [`LiveSource::next_frame`] numbers every packet libpcap delivers, 1-based and in
//! order, so a [`PcapngWriter`] fed every frame produces a file whose Wireshark frame numbers
//! are the ones in the verdicts. Reads never block longer than the read timeout.

use std::fmt;
use std::io::{self, Write};
use std::net::IpAddr;

use pcap::{Active, Capture, Device, Linktype, Precision};

use super::{Frame, LinkType, Timestamp};

/// How many bytes of each packet are kept (enough for RDP handshakes and TLS records).
pub const SNAPLEN: i32 = 65_535;

/// libpcap's read timeout (milliseconds): how long the kernel may batch packets.
pub const READ_TIMEOUT_MS: i32 = 100;

/// How long [`LiveSource::next_frame`] sleeps when no packet is waiting. The handle is
/// non-blocking: libpcap 1.10 on Linux keeps polling inside `pcap_next_ex` past its read
/// timeout (and past signals), so a blocking read would hang on a quiet interface.
/// Short, because in immediate mode libpcap's ring has one snaplen-sized slot per packet
/// (on `lo`, MTU 64 KiB: about 512 slots in [`BUFFER_SIZE`]): with 10 ms the ring overflowed
/// above about 6,000 packets/s.
pub const IDLE_WAIT: std::time::Duration = std::time::Duration::from_millis(1);

/// Kernel buffer size requested (bytes); bigger buffers drop less under bursts.
const BUFFER_SIZE: i32 = 32 << 20;

/// ICMP and ICMPv6 errors (destination unreachable, source quench, time exceeded,
/// parameter problem; ICMPv6 unreachable, packet too big, time exceeded, parameter problem).
/// The ICMPv6 type is read at the fixed offset after the IPv6 header.
const ICMP_ERRORS: &str = "(icmp and (icmp[icmptype] == icmp-unreach or icmp[icmptype] == icmp-sourcequench or icmp[icmptype] == icmp-timxceed or icmp[icmptype] == icmp-paramprob)) or (icmp6 and ip6[40] >= 1 and ip6[40] <= 4)";

/// The default capture filter: the RDP ports (3389 plus `extra_ports`) over TCP and UDP,
/// and ICMP/ICMPv6 errors (which quote the connection they are about).
pub fn default_filter(extra_ports: &[u16]) -> String {
    let mut ports = vec![3389u16];
    for p in extra_ports {
        if !ports.contains(p) {
            ports.push(*p);
        }
    }
    let ports = ports
        .iter()
        .map(|p| format!("port {p}"))
        .collect::<Vec<_>>()
        .join(" or ");
    format!("((tcp or udp) and ({ports})) or {ICMP_ERRORS}")
}

/// Why live capture could not start or go on.
#[derive(Debug)]
pub enum LiveError {
    /// No permission to capture (not root, no CAP_NET_RAW / CAP_NET_ADMIN).
    Permission {
        /// The interface.
        interface: String,
        /// libpcap's message.
        message: String,
    },
    /// The interface does not exist.
    NoSuchDevice {
        /// The interface.
        interface: String,
        /// libpcap's message.
        message: String,
    },
    /// The BPF filter does not compile.
    Filter {
        /// The expression.
        filter: String,
        /// libpcap's message.
        message: String,
    },
    /// Anything else libpcap reported.
    Pcap {
        /// What was being done.
        context: String,
        /// libpcap's message.
        message: String,
    },
}

impl LiveError {
    /// Whether this is the user's mistake (bad interface name or filter): exit code 2.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            LiveError::NoSuchDevice { .. } | LiveError::Filter { .. }
        )
    }
}

impl fmt::Display for LiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LiveError::Permission { interface, message } => write!(
                f,
                "no permission to capture on {interface} ({message}): run as root, or give the \
                 binary the capture capabilities: sudo setcap cap_net_raw,cap_net_admin=eip \
                 $(which rdpdiag)"
            ),
            LiveError::NoSuchDevice { interface, message } => write!(
                f,
                "no capture device {interface} ({message}); `rdpdiag live --list-interfaces` \
                 lists them"
            ),
            LiveError::Filter { filter, message } => {
                write!(f, "bad capture filter {filter:?}: {message}")
            }
            LiveError::Pcap { context, message } => write!(f, "{context}: {message}"),
        }
    }
}

impl std::error::Error for LiveError {}

fn message(e: &pcap::Error) -> String {
    match e {
        pcap::Error::PcapError(s) => s.clone(),
        other => other.to_string(),
    }
}

fn classify(interface: &str, e: &pcap::Error, context: &str) -> LiveError {
    let msg = message(e);
    let lower = msg.to_ascii_lowercase();
    if lower.contains("permission") || lower.contains("not permitted") {
        LiveError::Permission {
            interface: interface.to_string(),
            message: msg,
        }
    } else if lower.contains("no such device") || lower.contains("doesn't exist") {
        LiveError::NoSuchDevice {
            interface: interface.to_string(),
            message: msg,
        }
    } else {
        LiveError::Pcap {
            context: format!("{context} {interface}"),
            message: msg,
        }
    }
}

/// Checks that `filter` compiles for `linktype` without opening any device (so a bad
/// expression is reported even without capture permission).
pub fn check_filter(filter: &str, linktype: LinkType) -> Result<(), LiveError> {
    let bad = |e: pcap::Error| LiveError::Filter {
        filter: filter.to_string(),
        message: message(&e),
    };
    let dead = Capture::dead(Linktype(linktype.0)).map_err(bad)?;
    dead.compile(filter, true).map(|_| ()).map_err(bad)
}

/// One capture device with its addresses.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    /// Name to pass to `-i`.
    pub name: String,
    /// Description, if libpcap has one.
    pub description: Option<String>,
    /// Addresses as "ip/prefix".
    pub addresses: Vec<String>,
    /// Flags: "loopback", "up", "running", "wireless".
    pub flags: Vec<&'static str>,
}

fn prefix_len(mask: &IpAddr) -> u32 {
    match mask {
        IpAddr::V4(m) => u32::from(*m).count_ones(),
        IpAddr::V6(m) => u128::from(*m).count_ones(),
    }
}

/// The capture devices libpcap knows, with their addresses.
pub fn list_devices() -> Result<Vec<DeviceInfo>, LiveError> {
    let devices = Device::list().map_err(|e| LiveError::Pcap {
        context: "cannot list capture devices".into(),
        message: message(&e),
    })?;
    Ok(devices
        .into_iter()
        .map(|d| {
            let mut flags = Vec::new();
            if d.flags.is_loopback() {
                flags.push("loopback");
            }
            if d.flags.is_up() {
                flags.push("up");
            }
            if d.flags.is_running() {
                flags.push("running");
            }
            if d.flags.is_wireless() {
                flags.push("wireless");
            }
            DeviceInfo {
                addresses: d
                    .addresses
                    .iter()
                    .map(|a| match &a.netmask {
                        Some(m) if m.is_ipv4() == a.addr.is_ipv4() => {
                            format!("{}/{}", a.addr, prefix_len(m))
                        }
                        _ => a.addr.to_string(),
                    })
                    .collect(),
                name: d.name,
                description: d.desc,
                flags,
            }
        })
        .collect())
}

/// libpcap's counters since the capture started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveStats {
    /// Packets received by the filter.
    pub received: u32,
    /// Packets dropped because the buffer was full (rdpdiag too slow).
    pub dropped: u32,
    /// Packets dropped by the interface or its driver.
    pub if_dropped: u32,
}

/// A live capture on one interface.
pub struct LiveSource {
    cap: Capture<Active>,
    interface: String,
    linktype: LinkType,
    nanos: bool,
    next_number: u64,
}

impl LiveSource {
    /// Opens `interface` (promiscuous, immediate mode, non-blocking) and applies `filter`.
    pub fn open(interface: &str, filter: &str) -> Result<LiveSource, LiveError> {
        let inactive = |precision| {
            Capture::from_device(interface)
                .map(|c| {
                    c.promisc(true)
                        .snaplen(SNAPLEN)
                        .buffer_size(BUFFER_SIZE)
                        .immediate_mode(true)
                        .timeout(READ_TIMEOUT_MS)
                        .precision(precision)
                })
                .map_err(|e| classify(interface, &e, "cannot open"))
        };
        // Nanosecond timestamps where the platform has them, microseconds otherwise.
        let (cap, nanos) = match inactive(Precision::Nano)?.open() {
            Ok(c) => (c, true),
            Err(e) => {
                let first = classify(interface, &e, "cannot capture on");
                if !matches!(first, LiveError::Pcap { .. }) {
                    return Err(first);
                }
                let c = inactive(Precision::Micro)?
                    .open()
                    .map_err(|e| classify(interface, &e, "cannot capture on"))?;
                (c, false)
            }
        };
        let mut cap = cap
            .setnonblock()
            .map_err(|e| classify(interface, &e, "cannot set non-blocking mode on"))?;
        cap.filter(filter, true).map_err(|e| LiveError::Filter {
            filter: filter.to_string(),
            message: message(&e),
        })?;
        let linktype = LinkType(cap.get_datalink().0);
        Ok(LiveSource {
            cap,
            interface: interface.to_string(),
            linktype,
            nanos,
            next_number: 1,
        })
    }

    /// The interface's link-layer type.
    pub fn linktype(&self) -> LinkType {
        self.linktype
    }

    /// Whether timestamps have nanosecond resolution (else microseconds).
    pub fn nanos(&self) -> bool {
        self.nanos
    }

    /// Packets delivered so far.
    pub fn frames(&self) -> u64 {
        self.next_number - 1
    }

    /// The next packet, or `None` after waiting [`IDLE_WAIT`] when none has arrived (so the
    /// caller's loop runs at least every few milliseconds).
    // tv_sec and tv_usec are not i64 on every platform.
    #[allow(clippy::useless_conversion)]
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, LiveError> {
        let nanos = self.nanos;
        match self.cap.next_packet() {
            Ok(p) => {
                let sec = i64::from(p.header.ts.tv_sec);
                let frac = i64::from(p.header.ts.tv_usec);
                let ns = sec.saturating_mul(1_000_000_000).saturating_add(if nanos {
                    frac
                } else {
                    frac * 1000
                });
                let number = self.next_number;
                self.next_number += 1;
                Ok(Some(Frame {
                    number,
                    ts: Timestamp(ns),
                    linktype: self.linktype,
                    data: p.data,
                    orig_len: p.header.len,
                }))
            }
            Err(pcap::Error::TimeoutExpired | pcap::Error::NoMorePackets) => {
                std::thread::sleep(IDLE_WAIT);
                Ok(None)
            }
            Err(e) => Err(classify(&self.interface, &e, "capture failed on")),
        }
    }

    /// libpcap's received and dropped counts so far.
    pub fn stats(&mut self) -> Option<LiveStats> {
        self.cap.stats().ok().map(|s| LiveStats {
            received: s.received,
            dropped: s.dropped,
            if_dropped: s.if_dropped,
        })
    }
}

/// Writes frames as pcapng (one section, one interface), so Wireshark numbers them as
/// they were numbered live. TLS key-log lines can be embedded (Decryption Secrets Block).
pub struct PcapngWriter<W: Write> {
    out: W,
    nanos: bool,
}

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 0x0000_0001;
const EPB: u32 = 0x0000_0006;
const DSB: u32 = 0x0000_000A;
/// Secrets type of a TLS key log (NSS format).
const TLS_KEY_LOG: u32 = 0x544c_534b;

fn padded(len: usize) -> usize {
    (len + 3) & !3
}

fn option(buf: &mut Vec<u8>, code: u16, value: &[u8]) {
    let len = value.len().min(usize::from(u16::MAX) & !3);
    buf.extend_from_slice(&code.to_le_bytes());
    buf.extend_from_slice(&(len as u16).to_le_bytes());
    buf.extend_from_slice(&value[..len]);
    buf.resize(buf.len() + padded(len) - len, 0);
}

impl<W: Write> PcapngWriter<W> {
    /// Writes the section header and the interface description; `nanos` chooses
    /// nanosecond (else microsecond) timestamps.
    pub fn new(
        mut out: W,
        interface: &str,
        linktype: LinkType,
        snaplen: u32,
        nanos: bool,
    ) -> io::Result<Self> {
        let mut body = Vec::new();
        body.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
        body.extend_from_slice(&1u16.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&(-1i64).to_le_bytes());
        let app = format!("rdpdiag {} (live)", env!("CARGO_PKG_VERSION"));
        option(&mut body, 4, app.as_bytes()); // shb_userappl
        option(&mut body, 0, &[]);
        Self::block(&mut out, SHB, &body)?;

        let mut body = Vec::new();
        body.extend_from_slice(&(linktype.0 as u16).to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&snaplen.to_le_bytes());
        option(&mut body, 2, interface.as_bytes()); // if_name
        option(&mut body, 9, &[if nanos { 9 } else { 6 }]); // if_tsresol
        option(&mut body, 0, &[]);
        Self::block(&mut out, IDB, &body)?;
        Ok(PcapngWriter { out, nanos })
    }

    fn block(out: &mut W, kind: u32, body: &[u8]) -> io::Result<()> {
        let total = (12 + padded(body.len())) as u32;
        out.write_all(&kind.to_le_bytes())?;
        out.write_all(&total.to_le_bytes())?;
        out.write_all(body)?;
        out.write_all(&[0u8; 3][..padded(body.len()) - body.len()])?;
        out.write_all(&total.to_le_bytes())
    }

    /// Appends one packet.
    pub fn packet(&mut self, frame: &Frame<'_>) -> io::Result<()> {
        let units = if self.nanos {
            frame.ts.0
        } else {
            frame.ts.0.div_euclid(1000)
        } as u64;
        let caplen = frame.data.len() as u32;
        let total = (12 + 20 + padded(frame.data.len())) as u32;
        let out = &mut self.out;
        out.write_all(&EPB.to_le_bytes())?;
        out.write_all(&total.to_le_bytes())?;
        out.write_all(&0u32.to_le_bytes())?; // interface 0
        out.write_all(&((units >> 32) as u32).to_le_bytes())?;
        out.write_all(&(units as u32).to_le_bytes())?;
        out.write_all(&caplen.to_le_bytes())?;
        out.write_all(&frame.orig_len.to_le_bytes())?;
        out.write_all(frame.data)?;
        out.write_all(&[0u8; 3][..padded(frame.data.len()) - frame.data.len()])?;
        out.write_all(&total.to_le_bytes())
    }

    /// Appends TLS key-log lines (NSS format) as a Decryption Secrets Block, so Wireshark
    /// decrypts the sessions in the file.
    pub fn tls_keys(&mut self, lines: &[u8]) -> io::Result<()> {
        let mut body = Vec::with_capacity(8 + lines.len());
        body.extend_from_slice(&TLS_KEY_LOG.to_le_bytes());
        body.extend_from_slice(&(lines.len() as u32).to_le_bytes());
        body.extend_from_slice(lines);
        Self::block(&mut self.out, DSB, &body)
    }

    /// Flushes buffered blocks to the file (the file is readable up to here).
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{open_input, read_capture, FrameSink};

    #[test]
    fn default_filter_compiles_for_common_link_types() {
        let f = default_filter(&[13389, 3389]);
        assert!(f.contains("port 3389 or port 13389"));
        assert_eq!(f.matches("port 3389").count(), 1);
        for lt in [
            LinkType::ETHERNET,
            LinkType::LINUX_SLL,
            LinkType::LINUX_SLL2,
        ] {
            check_filter(&f, lt).unwrap();
        }
    }

    #[test]
    fn bad_filter_is_a_filter_error() {
        let e = check_filter("tcp port nonsense-port", LinkType::ETHERNET).unwrap_err();
        assert!(e.is_usage());
        assert!(e.to_string().contains("bad capture filter"), "{e}");
    }

    struct Collect(Vec<(u64, i64, Vec<u8>, u32)>, usize);
    impl FrameSink for Collect {
        fn frame(&mut self, f: &Frame<'_>) {
            self.0.push((f.number, f.ts.0, f.data.to_vec(), f.orig_len));
        }
        fn secrets(&mut self, _t: u32, data: &[u8]) {
            self.1 += data.len();
        }
    }

    #[test]
    fn pcapng_writer_round_trips_through_the_reader() {
        for nanos in [true, false] {
            let mut buf = Vec::new();
            let mut w =
                PcapngWriter::new(&mut buf, "lo", LinkType::ETHERNET, 65535, nanos).unwrap();
            let frames: Vec<(i64, Vec<u8>)> = vec![
                (1_700_000_000_123_456_789, vec![1, 2, 3, 4, 5]),
                (1_700_000_001_000_001_000, vec![9; 64]),
                (1_700_000_002_000_000_000, vec![7; 3]),
            ];
            for (i, (ts, data)) in frames.iter().enumerate() {
                w.packet(&Frame {
                    number: i as u64 + 1,
                    ts: Timestamp(*ts),
                    linktype: LinkType::ETHERNET,
                    data,
                    orig_len: data.len() as u32 + 10,
                })
                .unwrap();
                if i == 0 {
                    w.tls_keys(b"CLIENT_RANDOM 00 11\n").unwrap();
                }
            }
            w.flush().unwrap();
            let mut sink = Collect(Vec::new(), 0);
            let path = std::env::temp_dir().join(format!(
                "rdpdiag-pcapng-writer-{}-{nanos}.pcapng",
                std::process::id()
            ));
            std::fs::write(&path, &buf).unwrap();
            let src = open_input(path.to_str().unwrap()).unwrap();
            read_capture(src, &mut sink).unwrap();
            std::fs::remove_file(&path).unwrap();
            assert_eq!(sink.0.len(), 3);
            assert_eq!(sink.1, 20);
            for (i, (number, ts, data, orig)) in sink.0.iter().enumerate() {
                assert_eq!(*number, i as u64 + 1);
                let want = if nanos {
                    frames[i].0
                } else {
                    frames[i].0 / 1000 * 1000
                };
                assert_eq!(*ts, want);
                assert_eq!(data, &frames[i].1);
                assert_eq!(*orig, frames[i].1.len() as u32 + 10);
            }
        }
    }
}
