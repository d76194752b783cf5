//! Stage 1: frames from capture files (pcap, pcapng, gzip/zstd, stdin).
//!
//! Invariant: frame numbers are 1-based and count every packet record exactly as
//! Wireshark numbers frames, so evidence can be found there. Reading is streaming:
//! memory is bounded by the largest block, never by the file size.

mod input;
#[cfg(feature = "live")]
pub mod live;
mod reader;

pub use input::{input_from_bytes, open_input, InputSource};
pub use reader::{
    read_capture, read_capture_chunks, read_capture_chunks_with, read_capture_with, CaptureSummary,
    ChunkSink, FrameSink, FrameSlot, ReadAhead, ReadOptions, CHUNK_LEN, MAX_BLOCK_LEN,
};

use std::fmt;

/// Capture time in nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Seconds as a float (for durations and display).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// Nanoseconds from `earlier` to `self` (negative if `self` is earlier).
    pub fn nanos_since(self, earlier: Timestamp) -> i64 {
        self.0.saturating_sub(earlier.0)
    }

    /// RFC 3339 in UTC with microseconds, e.g. `2019-05-14T09:03:18.123456Z`.
    pub fn rfc3339(self) -> String {
        let (y, m, d, sod, micros) = self.civil();
        if !(0..=9999).contains(&y) {
            return self.rfc3339_formatted();
        }
        // Digits written in place: a report prints several timestamps per connection, and
        // `format!` made this a tenth of a batch's time.
        let mut b = *b"0000-00-00T00:00:00.000000Z";
        let fields: [(usize, usize, u64); 7] = [
            (0, 4, y.unsigned_abs()),
            (5, 2, u64::from(m)),
            (8, 2, u64::from(d)),
            (11, 2, sod.unsigned_abs() / 3600),
            (14, 2, sod.unsigned_abs() % 3600 / 60),
            (17, 2, sod.unsigned_abs() % 60),
            (20, 6, micros.unsigned_abs()),
        ];
        for (at, len, mut v) in fields {
            for digit in b.iter_mut().skip(at).take(len).rev() {
                *digit = b'0' + (v % 10) as u8;
                v /= 10;
            }
        }
        std::str::from_utf8(&b).map_or_else(|_| self.rfc3339_formatted(), str::to_owned)
    }

    /// [`Timestamp::rfc3339`] through `format!` (the reference; years outside 0..=9999 cannot
    /// occur in an `i64` of nanoseconds, but would still print).
    fn rfc3339_formatted(self) -> String {
        let (y, m, d, sod, micros) = self.civil();
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
            sod / 3600,
            (sod % 3600) / 60,
            sod % 60
        )
    }

    /// (year, month, day, second of the day, microseconds).
    fn civil(self) -> (i64, u32, u32, i64, i64) {
        let secs = self.0.div_euclid(1_000_000_000);
        let micros = self.0.rem_euclid(1_000_000_000) / 1000;
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        (y, m, d, sod, micros)
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

/// A link-layer type number (LINKTYPE_* of the pcap/pcapng specifications).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkType(pub i32);

impl LinkType {
    /// BSD loopback, host byte order family.
    pub const NULL: LinkType = LinkType(0);
    /// Ethernet.
    pub const ETHERNET: LinkType = LinkType(1);
    /// Raw IP (some systems use 12 or 14 for DLT_RAW).
    pub const RAW: LinkType = LinkType(101);
    /// OpenBSD loopback, network byte order family.
    pub const LOOP: LinkType = LinkType(108);
    /// Linux cooked capture v1.
    pub const LINUX_SLL: LinkType = LinkType(113);
    /// Raw IPv4.
    pub const IPV4: LinkType = LinkType(228);
    /// Raw IPv6.
    pub const IPV6: LinkType = LinkType(229);
    /// Linux cooked capture v2.
    pub const LINUX_SLL2: LinkType = LinkType(276);
}

/// One captured packet, borrowed from the reader's buffer.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// 1-based frame number, as Wireshark shows it.
    pub number: u64,
    /// Capture timestamp.
    pub ts: Timestamp,
    /// Link-layer type of the interface the frame was captured on.
    pub linktype: LinkType,
    /// Captured bytes (possibly shorter than the packet on the wire).
    pub data: &'a [u8],
    /// Length of the packet on the wire.
    pub orig_len: u32,
}

/// Why a capture could not be read (completely).
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a pcap or pcapng capture.
    #[error("{path}: not a pcap or pcapng capture (starts with {magic})")]
    NotACapture {
        /// The file.
        path: String,
        /// The first bytes in hex.
        magic: String,
    },
    /// The file ends inside a record or block.
    #[error("{path}: truncated {what} at offset {offset}")]
    Truncated {
        /// The file.
        path: String,
        /// What was being read ("packet record", "pcapng block").
        what: &'static str,
        /// Byte offset (in the decompressed stream) where the incomplete record starts.
        offset: u64,
    },
    /// A record or block is malformed.
    #[error("{path}: malformed {what} at offset {offset}")]
    Malformed {
        /// The file.
        path: String,
        /// What was being read.
        what: String,
        /// Byte offset (in the decompressed stream) of the bad record.
        offset: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::Timestamp;

    #[test]
    fn rfc3339_digits_in_place_equal_format() {
        // Nanoseconds over the whole i64 range (years 1677..2262) and every sub-second digit.
        let mut t: i64 = 1;
        for _ in 0..200_000 {
            t = t
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let ts = Timestamp(t);
            assert_eq!(ts.rfc3339(), ts.rfc3339_formatted(), "{t}");
        }
        for ns in [i64::MIN, i64::MAX, -1, 0, 1] {
            assert_eq!(Timestamp(ns).rfc3339(), Timestamp(ns).rfc3339_formatted());
        }
        assert_eq!(Timestamp(0).rfc3339(), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            Timestamp(1_557_824_598_123_456_789).rfc3339(),
            "2019-05-14T09:03:18.123456Z"
        );
        assert_eq!(Timestamp(-1).rfc3339(), "1969-12-31T23:59:59.999999Z");
    }
}
