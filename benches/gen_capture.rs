//! Synthetic, reproducible benchmark capture for rdpdiag.
//!
//! `cargo run --release --example gen_capture -- OUT.pcap --size-mb N [--seed S]`
//!
//! Writes a classic pcap (Ethernet, microsecond timestamps) of about N MB (10^6 bytes):
//! many concurrent RDP connections from 10.x clients to a few servers on TCP 3389 (TCP
//! handshake, X.224 Connection Request/Confirm selecting HYBRID, a TLS 1.2 handshake with
//! real record framing and a real self-signed certificate, then bulk TLS application data
//! split over 1448-byte segments with proper seq/ack numbers, closed with FIN/ACK), about 5%
//! failed RDP connections (SYN never answered, SYN answered by RST, negotiation failure
//! HYBRID_REQUIRED_BY_SERVER), a few retransmitted segments, and about 20% background
//! traffic (HTTPS on 443, UDP DNS). The output depends only on (size, seed).
//!
//! The file is also included by `benches/pipeline.rs` (`#[path] mod gen`), which calls
//! [`generate`]; only std is used.
#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// xorshift64 seeded through splitmix64 (never zero).
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `per_mille`/1000.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.next_u64() % 1000 < per_mille
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let r = self.next_u64().to_le_bytes();
        let n = rest.len();
        rest.copy_from_slice(&r[..n]);
    }
}

/// A real self-signed RSA-2048 certificate (CN=rdp-srv.corp.example), DER, 803 bytes.
const CERT_HEX: &str = concat!(
    "3082031f30820207a0030201020214364571aee0c84380e1b72c4c5c0012fca13add40300d06092a864886f70d01010b",
    "0500301f311d301b06035504030c147264702d7372762e636f72702e6578616d706c65301e170d323631313234313633",
    "3532395a170d3336313132313136333532395a301f311d301b06035504030c147264702d7372762e636f72702e657861",
    "6d706c6530820122300d06092a864886f70d01010105000382010f003082010a0282010100a04cbef570e9de2d69ef86",
    "6ad7239fd74e39080af4da94b1b92da1888b93ef8c2f584bad9c04c826e54fda17373c05acbbe7befe2ecbce1a4f4e3d",
    "46123cfd08135333ccbdb6c69097cc06bfcaa8f81603279b9d2ffff0ed1e5ebcb541ac4c4c429f16a4ffb19e2588f083",
    "eb66ce0418ff2f1051f0b0c105ac991da7b72fea19b989417f181ac250d8f64fe37df7ebe43aae76fde07f772e0090e9",
    "5c7ab382ec20c1896d085611172d6c31b8193797c342b886f6ef3fa82dbba383367aaa3421853425922e6e41891a9818",
    "b2c38925f6ce82ebf19c5142de29eef50c26a86b8692483404859507fca14603ccc81e3e9eaebe90afa377faf21a4dca",
    "366c20c9ab0203010001a3533051301d0603551d0e0416041469404990a2c8dafb7f5151f84cf8855cfb42e8a4301f06",
    "03551d2304183016801469404990a2c8dafb7f5151f84cf8855cfb42e8a4300f0603551d130101ff040530030101ff30",
    "0d06092a864886f70d01010b0500038201010035fbf14a2d3ba57b1e5706acb2be932200fcd7b457dda1b50f19d3d7b6",
    "eb4f3e6b98f01212195a8159babfb38c6b23568d42ac7fb084e794d06f1a0a511d0144029fa6142e83bb63dc22303094",
    "9c8d3088ad10120aa4a67f686bcdfa9f368c124bcc930cae1721a10237e6068b236bb7f6463fd327bcdd4a4c4cac49bc",
    "f948dd792a794e4f6ecd001d20023b964ccb55b64e33b94b7c117a445227e023018af965913fbb8f97b118454b43605b",
    "c61177aba4d9625e5263a70300ff106a902e30adc2bd5e05c4a703ed36eb66a2dc1af3ed7c58b3453acd227699f689f9",
    "3f7ff0d61d155a39144b12f4476b8e14adc9262652364dae98e25561771aa81feade4a",);

fn cert_der() -> Vec<u8> {
    (0..CERT_HEX.len() / 2)
        .map(|i| u8::from_str_radix(&CERT_HEX[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// What [`generate`] wrote.
#[derive(Debug, Default, Clone)]
pub struct GenStats {
    /// Bytes of the file.
    pub bytes: u64,
    /// Packet records.
    pub frames: u64,
    /// Successful RDP connections.
    pub rdp_ok: u64,
    /// RDP connections whose SYN got no answer.
    pub rdp_no_answer: u64,
    /// RDP connections refused with RST.
    pub rdp_refused: u64,
    /// RDP connections failing negotiation (HYBRID_REQUIRED_BY_SERVER).
    pub rdp_neg_failure: u64,
    /// Background HTTPS connections.
    pub https: u64,
    /// DNS lookups (query + answer).
    pub dns: u64,
    /// Bytes of background (non-RDP) frames, record headers included.
    pub background_bytes: u64,
    /// Retransmitted data segments.
    pub retransmissions: u64,
    /// Capture duration in seconds.
    pub duration_s: f64,
}

const MSS: usize = 1448;
/// 2027-01-12 09:00:00 UTC in microseconds (after the certificate's notBefore).
const START_US: u64 = 1_799_744_400 * 1_000_000;
/// Connections with bulk data alive at once.
const CONCURRENCY: usize = 160;

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

fn csum_add(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        sum += u32::from(*b) << 8;
    }
    sum
}

fn csum_fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// One TCP connection's addressing and sequence state; index 0 = client to server.
struct Conn {
    mac: [[u8; 6]; 2],
    ip: [[u8; 4]; 2],
    port: [u16; 2],
    seq: [u32; 2],
    isn: [u32; 2],
    ip_id: [u16; 2],
    ttl: [u8; 2],
    window: [u16; 2],
}

impl Conn {
    fn new(rng: &mut Rng, client: [u8; 4], cport: u16, server: [u8; 4], sport: u16) -> Conn {
        let mac = |ip: [u8; 4]| [0x02, 0x00, ip[0], ip[1], ip[2], ip[3]];
        let isn = [rng.next_u64() as u32, rng.next_u64() as u32];
        Conn {
            mac: [mac(client), mac(server)],
            ip: [client, server],
            port: [cport, sport],
            seq: isn,
            isn,
            ip_id: [rng.next_u64() as u16, rng.next_u64() as u16],
            ttl: [128, 125],
            window: [0xfaf0, 0x2014],
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn put_eth_ip(
    buf: &mut Vec<u8>,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    id: u16,
    ttl: u8,
    proto: u8,
    l4_len: usize,
) {
    buf.clear();
    buf.extend_from_slice(&dst_mac);
    buf.extend_from_slice(&src_mac);
    buf.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + l4_len) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[4..6].copy_from_slice(&id.to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = ttl;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let c = csum_fold(csum_add(0, &ip));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    buf.extend_from_slice(&ip);
}

fn l4_checksum(buf: &mut [u8], src: [u8; 4], dst: [u8; 4], proto: u8, at: usize) {
    let l4 = &buf[34..];
    let mut sum = csum_add(0, &src);
    sum = csum_add(sum, &dst);
    sum += u32::from(proto) + l4.len() as u32;
    sum = csum_add(sum, l4);
    let c = csum_fold(sum);
    buf[34 + at..34 + at + 2].copy_from_slice(&c.to_be_bytes());
}

/// The output file and the global clock.
struct Out {
    w: BufWriter<File>,
    now: u64,
    bytes: u64,
    frames: u64,
    background: bool,
    background_bytes: u64,
}

impl Out {
    fn frame(&mut self, data: &[u8]) -> io::Result<()> {
        let ts = START_US + self.now;
        let mut hdr = [0u8; 16];
        hdr[0..4].copy_from_slice(&((ts / 1_000_000) as u32).to_le_bytes());
        hdr[4..8].copy_from_slice(&((ts % 1_000_000) as u32).to_le_bytes());
        hdr[8..12].copy_from_slice(&(data.len() as u32).to_le_bytes());
        hdr[12..16].copy_from_slice(&(data.len() as u32).to_le_bytes());
        self.w.write_all(&hdr)?;
        self.w.write_all(data)?;
        let n = 16 + data.len() as u64;
        self.bytes += n;
        self.frames += 1;
        if self.background {
            self.background_bytes += n;
        }
        // Wire time at 1 Gbit/s plus a microsecond.
        self.now += 1 + data.len() as u64 / 125;
        Ok(())
    }
}

/// Packet builder: scratch buffers, the RNG and the output.
struct Gen {
    rng: Rng,
    out: Out,
    buf: Vec<u8>,
    cert: Vec<u8>,
    retransmissions: u64,
}

impl Gen {
    /// A TCP segment from `dir` with the connection's current seq/ack (`ack` only with ACK).
    fn tcp_at(
        &mut self,
        c: &mut Conn,
        dir: usize,
        flags: u8,
        seq: u32,
        payload: &[u8],
    ) -> io::Result<()> {
        let (s, r) = (dir, 1 - dir);
        let opts: &[u8] = if flags & SYN != 0 {
            &[0x02, 0x04, 0x05, 0xb4, 0x01, 0x01, 0x04, 0x02] // MSS 1460, NOP, NOP, SACK permitted
        } else {
            &[]
        };
        let hlen = 20 + opts.len();
        let mut buf = std::mem::take(&mut self.buf);
        put_eth_ip(
            &mut buf,
            c.mac[s],
            c.mac[r],
            c.ip[s],
            c.ip[r],
            c.ip_id[s],
            c.ttl[s],
            6,
            hlen + payload.len(),
        );
        c.ip_id[s] = c.ip_id[s].wrapping_add(1);
        let ack = if flags & ACK != 0 { c.seq[r] } else { 0 };
        buf.extend_from_slice(&c.port[s].to_be_bytes());
        buf.extend_from_slice(&c.port[r].to_be_bytes());
        buf.extend_from_slice(&seq.to_be_bytes());
        buf.extend_from_slice(&ack.to_be_bytes());
        buf.push(((hlen / 4) as u8) << 4);
        buf.push(flags);
        let window = if flags & RST != 0 { 0 } else { c.window[s] };
        buf.extend_from_slice(&window.to_be_bytes());
        buf.extend_from_slice(&[0, 0, 0, 0]);
        buf.extend_from_slice(opts);
        buf.extend_from_slice(payload);
        l4_checksum(&mut buf, c.ip[s], c.ip[r], 6, 16);
        let res = self.out.frame(&buf);
        self.buf = buf;
        res
    }

    /// A TCP segment at the sender's next sequence number, advancing it.
    fn tcp(&mut self, c: &mut Conn, dir: usize, flags: u8, payload: &[u8]) -> io::Result<()> {
        let seq = c.seq[dir];
        self.tcp_at(c, dir, flags, seq, payload)?;
        let adv = payload.len() as u32 + u32::from(flags & (SYN | FIN) != 0);
        c.seq[dir] = seq.wrapping_add(adv);
        Ok(())
    }

    /// Bytes of one direction in MSS-sized segments, acknowledged by the receiver every
    /// second segment and at the end; now and then a segment is sent twice.
    fn stream(&mut self, c: &mut Conn, dir: usize, data: &[u8]) -> io::Result<()> {
        let n = data.len().div_ceil(MSS);
        for (i, seg) in data.chunks(MSS).enumerate() {
            let last = i + 1 == n;
            let flags = if last { ACK | PSH } else { ACK };
            let seq = c.seq[dir];
            self.tcp(c, dir, flags, seg)?;
            if seg.len() == MSS && self.rng.chance(3) {
                // Retransmission (the original "lost" after the capture point).
                self.out.now += self.rng.range(200, 3000);
                self.tcp_at(c, dir, flags, seq, seg)?;
                self.retransmissions += 1;
            }
            if i % 2 == 1 || last {
                self.out.now += self.rng.range(10, 120);
                self.tcp(c, 1 - dir, ACK, &[])?;
            }
        }
        Ok(())
    }

    fn random_vec(&mut self, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.rng.fill(&mut v);
        v
    }

    /// A TLS 1.2 application data record of `len` payload bytes.
    fn app_record(&mut self, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; 5 + len];
        v[0] = 23;
        v[1] = 3;
        v[2] = 3;
        v[3..5].copy_from_slice(&(len as u16).to_be_bytes());
        self.rng.fill(&mut v[5..]);
        v
    }
}

fn record(content_type: u8, version: u16, body: &[u8]) -> Vec<u8> {
    let mut v = vec![content_type];
    v.extend_from_slice(&version.to_be_bytes());
    v.extend_from_slice(&(body.len() as u16).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn handshake(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![msg_type];
    v.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    v.extend_from_slice(body);
    v
}

fn ext(v: &mut Vec<u8>, ty: u16, data: &[u8]) {
    v.extend_from_slice(&ty.to_be_bytes());
    v.extend_from_slice(&(data.len() as u16).to_be_bytes());
    v.extend_from_slice(data);
}

fn client_hello(rng: &mut Rng, sni: &str) -> Vec<u8> {
    let mut b = vec![3, 3];
    let mut random = [0u8; 32];
    rng.fill(&mut random);
    b.extend_from_slice(&random);
    b.push(0); // no session id
    let suites: [u16; 9] = [
        0xc030, 0xc02f, 0xc028, 0xc027, 0x009d, 0x009c, 0x003d, 0x003c, 0x0035,
    ];
    b.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        b.extend_from_slice(&s.to_be_bytes());
    }
    b.extend_from_slice(&[1, 0]); // null compression
    let mut e = Vec::new();
    let name = sni.as_bytes();
    let mut sni_ext = Vec::new();
    sni_ext.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
    sni_ext.push(0);
    sni_ext.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni_ext.extend_from_slice(name);
    ext(&mut e, 0x0000, &sni_ext);
    ext(&mut e, 0x000a, &[0, 6, 0, 0x1d, 0, 0x17, 0, 0x18]); // x25519, secp256r1, secp384r1
    ext(&mut e, 0x000b, &[1, 0]); // ec point formats: uncompressed
    ext(
        &mut e,
        0x000d,
        &[0, 8, 0x08, 0x04, 0x04, 0x01, 0x05, 0x01, 0x02, 0x01],
    ); // sig algs
    ext(&mut e, 0x0017, &[]); // extended master secret
    ext(&mut e, 0xff01, &[0]); // renegotiation info
    b.extend_from_slice(&(e.len() as u16).to_be_bytes());
    b.extend_from_slice(&e);
    record(22, 0x0301, &handshake(1, &b))
}

/// ServerHello (TLS_RSA_WITH_AES_256_GCM_SHA384) + Certificate + ServerHelloDone in one record.
fn server_flight(rng: &mut Rng, cert: &[u8]) -> Vec<u8> {
    let mut sh = vec![3, 3];
    let mut random = [0u8; 64];
    rng.fill(&mut random);
    sh.extend_from_slice(&random[..32]);
    sh.push(32);
    sh.extend_from_slice(&random[32..]);
    sh.extend_from_slice(&0x009du16.to_be_bytes());
    sh.push(0);
    let mut e = Vec::new();
    ext(&mut e, 0x0017, &[]);
    ext(&mut e, 0xff01, &[0]);
    sh.extend_from_slice(&(e.len() as u16).to_be_bytes());
    sh.extend_from_slice(&e);
    let mut certs = Vec::new();
    certs.extend_from_slice(&((cert.len() + 3) as u32).to_be_bytes()[1..]);
    certs.extend_from_slice(&(cert.len() as u32).to_be_bytes()[1..]);
    certs.extend_from_slice(cert);
    let mut body = handshake(2, &sh);
    body.extend_from_slice(&handshake(11, &certs));
    body.extend_from_slice(&handshake(14, &[]));
    record(22, 0x0303, &body)
}

/// ClientKeyExchange (RSA, 256-byte encrypted premaster) + ChangeCipherSpec + Finished.
fn client_finish(rng: &mut Rng) -> Vec<u8> {
    let mut cke = vec![1, 0];
    let mut pms = [0u8; 256];
    rng.fill(&mut pms);
    cke.extend_from_slice(&pms);
    let mut v = record(22, 0x0303, &handshake(16, &cke));
    v.extend_from_slice(&record(20, 0x0303, &[1]));
    let mut fin = [0u8; 40];
    rng.fill(&mut fin);
    v.extend_from_slice(&record(22, 0x0303, &fin));
    v
}

/// ChangeCipherSpec + Finished (encrypted).
fn server_finish(rng: &mut Rng) -> Vec<u8> {
    let mut v = record(20, 0x0303, &[1]);
    let mut fin = [0u8; 40];
    rng.fill(&mut fin);
    v.extend_from_slice(&record(22, 0x0303, &fin));
    v
}

/// X.224 Connection Request with an mstshash cookie and RDP_NEG_REQ(`requested`).
fn x224_request(user: &str, requested: u8) -> Vec<u8> {
    let cookie = format!("Cookie: mstshash={user}\r\n");
    let li = 6 + cookie.len() + 8;
    let total = 4 + 1 + li;
    let mut v = vec![3, 0];
    v.extend_from_slice(&(total as u16).to_be_bytes());
    v.extend_from_slice(&[li as u8, 0xe0, 0, 0, 0, 0, 0]);
    v.extend_from_slice(cookie.as_bytes());
    v.extend_from_slice(&[1, 0, 8, 0, requested, 0, 0, 0]);
    v
}

/// X.224 Connection Confirm with RDP_NEG_RSP (HYBRID) or RDP_NEG_FAILURE (HYBRID_REQUIRED).
fn x224_confirm(failure: bool) -> Vec<u8> {
    let mut v = vec![3, 0, 0, 0x13, 0x0e, 0xd0, 0, 0, 0x12, 0x34, 0];
    if failure {
        v.extend_from_slice(&[3, 0, 8, 0, 5, 0, 0, 0]);
    } else {
        v.extend_from_slice(&[2, 0x1f, 8, 0, 2, 0, 0, 0]);
    }
    v
}

fn dns_name(name: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for label in name.split('.') {
        v.push(label.len() as u8);
        v.extend_from_slice(label.as_bytes());
    }
    v.push(0);
    v
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Rdp,
    NoAnswer,
    Refused,
    NegFailure,
    Https,
    Dns,
}

struct Sess {
    kind: Kind,
    conn: Conn,
    state: u32,
    /// Data records left before closing.
    remaining: u32,
    /// Records sent in the data phase.
    sent: u32,
    name: String,
    rtt: u64,
    client_closes: bool,
}

/// States shared by the TCP kinds.
mod st {
    pub const SYN: u32 = 0;
    pub const SYN_ACK: u32 = 1;
    pub const ACK_REQUEST: u32 = 2;
    pub const CONFIRM: u32 = 3;
    pub const CLIENT_HELLO: u32 = 4;
    pub const SERVER_FLIGHT: u32 = 5;
    pub const CLIENT_FINISH: u32 = 6;
    pub const SERVER_FINISH: u32 = 7;
    pub const DATA: u32 = 8;
    pub const FIN1: u32 = 20;
    pub const FIN2: u32 = 21;
    pub const LAST_ACK: u32 = 22;
    pub const SYN_RETRY1: u32 = 30;
    pub const SYN_RETRY2: u32 = 31;
    pub const SYN_GAVE_UP: u32 = 32;
    pub const NEG_FIN: u32 = 40;
}

impl Gen {
    /// Performs the session's next action; the delay until its next one, or `None` when done.
    fn step(&mut self, s: &mut Sess, draining: bool) -> io::Result<Option<u64>> {
        self.out.background = matches!(s.kind, Kind::Https | Kind::Dns);
        let rtt = s.rtt;
        let c = &mut s.conn;
        let next = match (s.kind, s.state) {
            (Kind::Dns, 0) => {
                let mut q = Vec::new();
                q.extend_from_slice(&(self.rng.next_u64() as u16).to_be_bytes());
                q.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
                q.extend_from_slice(&dns_name(&s.name));
                q.extend_from_slice(&[0, 1, 0, 1]);
                self.udp(c, 0, &q)?;
                s.remaining = u32::from(u16::from_be_bytes([q[0], q[1]]));
                s.state = 1;
                Some(rtt)
            }
            (Kind::Dns, _) => {
                let id = (s.remaining as u16).to_be_bytes();
                let mut a = vec![id[0], id[1], 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
                a.extend_from_slice(&dns_name(&s.name));
                a.extend_from_slice(&[0, 1, 0, 1, 0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4]);
                a.extend_from_slice(&[93, 184, (self.rng.next_u64() % 250) as u8, 34]);
                self.udp(c, 1, &a)?;
                None
            }
            (_, st::SYN) => {
                self.tcp(c, 0, SYN, &[])?;
                s.state = match s.kind {
                    Kind::NoAnswer => st::SYN_RETRY1,
                    _ => st::SYN_ACK,
                };
                Some(if s.kind == Kind::NoAnswer {
                    1_000_000
                } else {
                    rtt
                })
            }
            (Kind::NoAnswer, st::SYN_RETRY1 | st::SYN_RETRY2) => {
                c.seq[0] = c.isn[0];
                self.tcp(c, 0, SYN, &[])?;
                s.state += 1;
                Some(if s.state == st::SYN_RETRY2 {
                    2_000_000
                } else {
                    4_000_000
                })
            }
            (Kind::NoAnswer, _) => None,
            (Kind::Refused, st::SYN_ACK) => {
                c.seq[1] = 0;
                self.tcp(c, 1, RST | ACK, &[])?;
                None
            }
            (_, st::SYN_ACK) => {
                self.tcp(c, 1, SYN | ACK, &[])?;
                s.state = st::ACK_REQUEST;
                Some(self.rng.range(30, 200))
            }
            (_, st::ACK_REQUEST) => {
                self.tcp(c, 0, ACK, &[])?;
                if s.kind == Kind::Https {
                    s.state = st::CLIENT_HELLO;
                    Some(self.rng.range(50, 500))
                } else {
                    self.out.now += self.rng.range(100, 2000);
                    let requested = if s.kind == Kind::NegFailure {
                        0x01
                    } else {
                        0x0b
                    };
                    let req = x224_request(&s.name, requested);
                    self.tcp(c, 0, ACK | PSH, &req)?;
                    s.state = st::CONFIRM;
                    Some(rtt)
                }
            }
            (_, st::CONFIRM) => {
                let cc = x224_confirm(s.kind == Kind::NegFailure);
                self.tcp(c, 1, ACK | PSH, &cc)?;
                if s.kind == Kind::NegFailure {
                    s.state = st::NEG_FIN;
                    Some(self.rng.range(200, 2000))
                } else {
                    s.state = st::CLIENT_HELLO;
                    Some(self.rng.range(500, 3000))
                }
            }
            (_, st::NEG_FIN) => {
                self.tcp(c, 1, FIN | ACK, &[])?;
                s.state = st::FIN2;
                s.client_closes = false;
                Some(rtt)
            }
            (_, st::CLIENT_HELLO) => {
                let sni = if s.kind == Kind::Https {
                    s.name.clone()
                } else {
                    format!("rdp-srv{}.corp.example", c.ip[1][3])
                };
                let ch = client_hello(&mut self.rng, &sni);
                self.stream(c, 0, &ch)?;
                s.state = st::SERVER_FLIGHT;
                Some(rtt + self.rng.range(500, 3000))
            }
            (_, st::SERVER_FLIGHT) => {
                let cert = std::mem::take(&mut self.cert);
                let flight = server_flight(&mut self.rng, &cert);
                self.cert = cert;
                self.stream(c, 1, &flight)?;
                s.state = st::CLIENT_FINISH;
                Some(self.rng.range(1000, 5000))
            }
            (_, st::CLIENT_FINISH) => {
                let f = client_finish(&mut self.rng);
                self.stream(c, 0, &f)?;
                s.state = st::SERVER_FINISH;
                Some(rtt + self.rng.range(500, 3000))
            }
            (_, st::SERVER_FINISH) => {
                let f = server_finish(&mut self.rng);
                self.stream(c, 1, &f)?;
                s.state = st::DATA;
                Some(self.rng.range(200, 2000))
            }
            (_, st::DATA) => {
                if s.remaining == 0 || (draining && s.sent >= 40) {
                    s.state = st::FIN1;
                    return self.step(s, draining);
                }
                s.remaining -= 1;
                s.sent += 1;
                // RDP: CredSSP-like exchange first (client, server alternating), then mostly
                // server graphics with client input; HTTPS: a request then responses.
                let (dir, len) = match (s.kind, s.sent) {
                    (Kind::Rdp, 1) => (0, self.rng.range(60, 120)),
                    (Kind::Rdp, 2) => (1, self.rng.range(200, 320)),
                    (Kind::Rdp, 3) => (0, self.rng.range(450, 700)),
                    (Kind::Rdp, 4) => (1, self.rng.range(300, 420)),
                    (Kind::Rdp, 5) => (0, self.rng.range(100, 200)),
                    (Kind::Https, 1) => (0, self.rng.range(300, 900)),
                    _ => {
                        let client = s.kind == Kind::Rdp && self.rng.chance(300);
                        if client {
                            (0, self.rng.range(100, 600))
                        } else if self.rng.chance(500) {
                            (1, self.rng.range(100, 1500))
                        } else {
                            (1, self.rng.range(1500, 16384))
                        }
                    }
                };
                let rec = self.app_record(len as usize);
                self.stream(c, dir, &rec)?;
                Some(if s.sent <= 5 {
                    rtt + self.rng.range(500, 5000)
                } else {
                    self.rng.range(3_000, 90_000)
                })
            }
            (_, st::FIN1) => {
                let closer = if s.client_closes { 0 } else { 1 };
                self.tcp(c, closer, FIN | ACK, &[])?;
                s.state = st::FIN2;
                Some(rtt)
            }
            (_, st::FIN2) => {
                let other = if s.client_closes { 1 } else { 0 };
                self.tcp(c, other, FIN | ACK, &[])?;
                s.state = st::LAST_ACK;
                Some(self.rng.range(20, 200))
            }
            (_, st::LAST_ACK) => {
                let closer = if s.client_closes { 0 } else { 1 };
                self.tcp(c, closer, ACK, &[])?;
                None
            }
            (k, state) => unreachable!("{k:?} in state {state}"),
        };
        Ok(next)
    }

    fn udp(&mut self, c: &mut Conn, dir: usize, payload: &[u8]) -> io::Result<()> {
        let (s, r) = (dir, 1 - dir);
        let mut buf = std::mem::take(&mut self.buf);
        put_eth_ip(
            &mut buf,
            c.mac[s],
            c.mac[r],
            c.ip[s],
            c.ip[r],
            c.ip_id[s],
            c.ttl[s],
            17,
            8 + payload.len(),
        );
        c.ip_id[s] = c.ip_id[s].wrapping_add(1);
        buf.extend_from_slice(&c.port[s].to_be_bytes());
        buf.extend_from_slice(&c.port[r].to_be_bytes());
        buf.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(payload);
        l4_checksum(&mut buf, c.ip[s], c.ip[r], 17, 6);
        let res = self.out.frame(&buf);
        self.buf = buf;
        res
    }
}

const HTTPS_SITES: [&str; 6] = [
    "www.example.com",
    "login.example.net",
    "cdn.example.org",
    "api.example.com",
    "updates.example.net",
    "mail.example.org",
];

#[derive(Default)]
struct Ids {
    port: u32,
    user: u64,
}

type Queue = BinaryHeap<Reverse<(u64, usize)>>;

fn insert(
    sessions: &mut Vec<Option<Sess>>,
    free: &mut Vec<usize>,
    queue: &mut Queue,
    at: u64,
    s: Sess,
) {
    let id = match free.pop() {
        Some(id) => {
            sessions[id] = Some(s);
            id
        }
        None => {
            sessions.push(Some(s));
            sessions.len() - 1
        }
    };
    queue.push(Reverse((at, id)));
}

/// A new connection: HTTPS while background traffic is below a fifth of the bytes, else
/// RDP with about 5.5% failures.
fn spawn(g: &mut Gen, stats: &mut GenStats, ids: &mut Ids, dns: bool) -> Sess {
    let background_low = g.out.background_bytes * 5 < g.out.bytes;
    let g_bytes = g.out.bytes;
    let rng = &mut g.rng;
    let kind = if dns {
        Kind::Dns
    } else if rng.chance(if g_bytes < 5_000_000 {
        200
    } else if background_low {
        700
    } else {
        30
    }) {
        Kind::Https
    } else {
        match rng.next_u64() % 1000 {
            0..=19 => Kind::NoAnswer,
            20..=39 => Kind::Refused,
            40..=54 => Kind::NegFailure,
            _ => Kind::Rdp,
        }
    };
    let client = [
        10,
        rng.range(1, 250) as u8,
        rng.range(0, 255) as u8,
        rng.range(2, 254) as u8,
    ];
    ids.port = ids.port.wrapping_add(1);
    let cport = 49152 + (ids.port % 16000) as u16;
    let (server, sport, name) = match kind {
        Kind::Dns => {
            let site = HTTPS_SITES[(rng.next_u64() % HTTPS_SITES.len() as u64) as usize];
            ([10, 0, 0, 53], 53, site.to_string())
        }
        Kind::Https => {
            let i = rng.next_u64() % HTTPS_SITES.len() as u64;
            (
                [203, 0, 113, 10 + i as u8],
                443,
                HTTPS_SITES[i as usize].to_string(),
            )
        }
        _ => {
            ids.user += 1;
            (
                [10, 0, 0, 10 + (rng.next_u64() % 4) as u8],
                3389,
                format!("user{}", ids.user),
            )
        }
    };
    match kind {
        Kind::Rdp => stats.rdp_ok += 1,
        Kind::NoAnswer => stats.rdp_no_answer += 1,
        Kind::Refused => stats.rdp_refused += 1,
        Kind::NegFailure => stats.rdp_neg_failure += 1,
        Kind::Https => stats.https += 1,
        Kind::Dns => stats.dns += 1,
    }
    let remaining = match kind {
        Kind::Rdp => rng.range(40, 400) as u32,
        Kind::Https => rng.range(4, 120) as u32,
        _ => 0,
    };
    let rtt = rng.range(400, 30_000);
    let client_closes = kind == Kind::Rdp || rng.chance(500);
    let conn = Conn::new(rng, client, cport, server, sport);
    Sess {
        kind,
        conn,
        state: 0,
        remaining,
        sent: 0,
        name,
        rtt,
        client_closes,
    }
}

/// Writes the capture. `size_mb` is in 10^6 bytes; the file ends slightly past it once the
/// open connections are closed.
pub fn generate(path: &Path, size_mb: u64, seed: u64) -> io::Result<GenStats> {
    let target = size_mb.max(1) * 1_000_000;
    let file = File::create(path)?;
    let mut out = Out {
        w: BufWriter::with_capacity(1 << 20, file),
        now: 0,
        bytes: 0,
        frames: 0,
        background: false,
        background_bytes: 0,
    };
    // Global header: microsecond pcap, snaplen 65535, Ethernet.
    let mut hdr = Vec::with_capacity(24);
    hdr.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    hdr.extend_from_slice(&2u16.to_le_bytes());
    hdr.extend_from_slice(&4u16.to_le_bytes());
    hdr.extend_from_slice(&[0; 8]);
    hdr.extend_from_slice(&65535u32.to_le_bytes());
    hdr.extend_from_slice(&1u32.to_le_bytes());
    out.w.write_all(&hdr)?;
    out.bytes = 24;
    let mut g = Gen {
        rng: Rng::new(seed),
        out,
        buf: Vec::with_capacity(2048),
        cert: cert_der(),
        retransmissions: 0,
    };
    let mut stats = GenStats::default();
    let mut sessions: Vec<Option<Sess>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut queue: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    let mut ids = Ids::default();

    for _ in 0..CONCURRENCY {
        let at = g.rng.range(0, 2_000_000);
        let s = spawn(&mut g, &mut stats, &mut ids, false);
        insert(&mut sessions, &mut free, &mut queue, at, s);
    }
    while let Some(Reverse((at, id))) = queue.pop() {
        g.out.now = g.out.now.max(at);
        let draining = g.out.bytes >= target;
        let mut s = sessions[id].take().expect("scheduled session exists");
        let next = g.step(&mut s, draining)?;
        match next {
            Some(delay) => {
                sessions[id] = Some(s);
                queue.push(Reverse((g.out.now + delay, id)));
            }
            None => {
                free.push(id);
                let kind = s.kind;
                if kind != Kind::Dns && g.out.bytes < target {
                    let at = g.out.now + g.rng.range(0, 300_000);
                    let s = spawn(&mut g, &mut stats, &mut ids, false);
                    insert(&mut sessions, &mut free, &mut queue, at, s);
                    if g.rng.chance(400) {
                        let at = g.out.now + g.rng.range(0, 300_000);
                        let s = spawn(&mut g, &mut stats, &mut ids, true);
                        insert(&mut sessions, &mut free, &mut queue, at, s);
                    }
                }
            }
        }
    }
    g.out.w.flush()?;
    stats.bytes = g.out.bytes;
    stats.frames = g.out.frames;
    stats.background_bytes = g.out.background_bytes;
    stats.retransmissions = g.retransmissions;
    stats.duration_s = g.out.now as f64 / 1e6;
    Ok(stats)
}

fn usage() -> ! {
    eprintln!("usage: gen_capture OUT.pcap --size-mb N [--seed S]");
    std::process::exit(2)
}

fn number(arg: Option<String>) -> u64 {
    match arg.and_then(|v| v.parse().ok()) {
        Some(n) => n,
        None => usage(),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut path = None;
    let mut size_mb = 100u64;
    let mut seed = 1u64;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--size-mb" => size_mb = number(args.next()),
            "--seed" => seed = number(args.next()),
            "-h" | "--help" => usage(),
            _ if path.is_none() => path = Some(a),
            _ => usage(),
        }
    }
    let Some(path) = path else { usage() };
    let t = std::time::Instant::now();
    match generate(Path::new(&path), size_mb, seed) {
        Ok(s) => eprintln!(
            "{path}: {:.1} MB, {} frames, {:.1} s of traffic in {:.1} s; RDP ok {} / no answer {} / refused {} / negotiation failure {}; HTTPS {}, DNS {}; background {:.1}%; {} retransmissions",
            s.bytes as f64 / 1e6,
            s.frames,
            s.duration_s,
            t.elapsed().as_secs_f64(),
            s.rdp_ok,
            s.rdp_no_answer,
            s.rdp_refused,
            s.rdp_neg_failure,
            s.https,
            s.dns,
            100.0 * s.background_bytes as f64 / s.bytes.max(1) as f64,
            s.retransmissions
        ),
        Err(e) => {
            eprintln!("gen_capture: {path}: {e}");
            std::process::exit(1)
        }
    }
}
