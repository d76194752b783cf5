//! Streaming pcap / pcapng reading with pcap-parser, numbering frames like Wireshark.

use pcap_parser::pcapng::Block;
use pcap_parser::{create_reader, PcapBlockOwned, PcapError};

use super::{CaptureError, Frame, InputSource, LinkType, Timestamp};

/// Initial read buffer; grown for larger blocks up to [`MAX_BLOCK_LEN`].
const INITIAL_BUFFER: usize = 1 << 20;
/// Largest capture record or block accepted (a bigger one is reported as malformed).
pub const MAX_BLOCK_LEN: usize = 64 << 20;

/// Receives what a capture holds, in file order.
pub trait FrameSink {
    /// One packet record (every record counts as a frame, decodable or not).
    fn frame(&mut self, frame: &Frame<'_>);
    /// A pcapng Decryption Secrets Block (type, data), e.g. an embedded TLS key log.
    fn secrets(&mut self, _secrets_type: u32, _data: &[u8]) {}
}

/// What reading a capture produced besides the frames.
#[derive(Debug)]
pub struct CaptureSummary {
    /// "pcap" or "pcapng".
    pub format: &'static str,
    /// Compression of the input, if any.
    pub compression: Option<&'static str>,
    /// Number of frames delivered.
    pub frames: u64,
    /// Bytes of captured frame data delivered.
    pub frame_bytes: u64,
    /// Bytes of the (decompressed) capture consumed.
    pub stream_bytes: u64,
    /// Why reading stopped early, if it did; the frames before it were delivered.
    pub error: Option<CaptureError>,
}

/// One pcapng interface: link type and timestamp scale.
#[derive(Clone, Copy)]
struct Interface {
    linktype: LinkType,
    units_per_sec: u64,
    offset_secs: i64,
}

/// Reads every frame of `src` into `sink`. Fails only when the input is not a capture at
/// all; a capture that breaks off later yields `Ok` with `error` set.
pub fn read_capture(
    src: InputSource,
    sink: &mut dyn FrameSink,
) -> Result<CaptureSummary, CaptureError> {
    let path = src.name.clone();
    let mut reader = match create_reader(INITIAL_BUFFER, src.reader) {
        Ok(r) => r,
        Err(PcapError::Eof) => {
            return Err(CaptureError::NotACapture {
                path,
                magic: "an empty file".into(),
            })
        }
        Err(PcapError::ReadError) => {
            return Err(CaptureError::Malformed {
                path,
                what: "stream (read error)".into(),
                offset: 0,
            })
        }
        Err(PcapError::Incomplete(_)) if is_capture_magic(&src.head) => {
            return Err(CaptureError::Truncated {
                path,
                what: "file header",
                offset: 0,
            })
        }
        Err(_) => {
            return Err(CaptureError::NotACapture {
                path,
                magic: hex_head(&src.head),
            })
        }
    };
    let mut summary = CaptureSummary {
        format: if src.head.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
            "pcapng"
        } else {
            "pcap"
        },
        compression: src.compression,
        frames: 0,
        frame_bytes: 0,
        stream_bytes: 0,
        error: None,
    };
    let mut legacy = Interface {
        linktype: LinkType::ETHERNET,
        units_per_sec: 1_000_000,
        offset_secs: 0,
    };
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut buffer_len = INITIAL_BUFFER;
    loop {
        match reader.next() {
            Ok((consumed, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        legacy.linktype = LinkType(h.network.0);
                        legacy.units_per_sec = if h.is_nanosecond_precision() {
                            1_000_000_000
                        } else {
                            1_000_000
                        };
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let nanos = i64::from(b.ts_sec)
                            .saturating_mul(1_000_000_000)
                            .saturating_add(scale_to_nanos(
                                u64::from(b.ts_usec),
                                legacy.units_per_sec,
                            ));
                        let caplen = (b.caplen as usize).min(b.data.len());
                        deliver(
                            sink,
                            &mut summary,
                            legacy.linktype,
                            Timestamp(nanos),
                            &b.data[..caplen],
                            b.origlen,
                        );
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => interfaces.clear(),
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        interfaces.push(Interface {
                            linktype: LinkType(idb.linktype.0),
                            units_per_sec: idb.ts_resolution().unwrap_or(1_000_000).max(1),
                            offset_secs: idb.ts_offset(),
                        })
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let iface = interfaces
                            .get(epb.if_id as usize)
                            .copied()
                            .unwrap_or(legacy);
                        let units = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                        let secs = (units / iface.units_per_sec) as i64;
                        let frac = scale_to_nanos(units % iface.units_per_sec, iface.units_per_sec);
                        let nanos = secs
                            .saturating_add(iface.offset_secs)
                            .saturating_mul(1_000_000_000)
                            .saturating_add(frac);
                        let caplen = (epb.caplen as usize).min(epb.data.len());
                        deliver(
                            sink,
                            &mut summary,
                            iface.linktype,
                            Timestamp(nanos),
                            &epb.data[..caplen],
                            epb.origlen,
                        );
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        let iface = interfaces.first().copied().unwrap_or(legacy);
                        let caplen = (spb.origlen as usize).min(spb.data.len());
                        deliver(
                            sink,
                            &mut summary,
                            iface.linktype,
                            Timestamp(0),
                            &spb.data[..caplen],
                            spb.origlen,
                        );
                    }
                    PcapBlockOwned::NG(Block::DecryptionSecrets(dsb)) => {
                        let len = (dsb.secrets_len as usize).min(dsb.data.len());
                        sink.secrets(dsb.secrets_type.0, &dsb.data[..len]);
                    }
                    PcapBlockOwned::NG(_) => {}
                }
                // No shift here: refill() moves only the unread tail when more data is needed.
                reader.consume_noshift(consumed);
                summary.stream_bytes += consumed as u64;
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => {
                if reader.reader_exhausted() {
                    if !reader.data().is_empty() {
                        summary.error = Some(CaptureError::Truncated {
                            path: path.clone(),
                            what: if summary.format == "pcapng" {
                                "pcapng block"
                            } else {
                                "packet record"
                            },
                            offset: summary.stream_bytes,
                        });
                    }
                    break;
                }
                if reader.refill().is_err() {
                    summary.error = Some(read_error(&path, summary.stream_bytes));
                    break;
                }
            }
            Err(PcapError::BufferTooSmall) => {
                if buffer_len >= MAX_BLOCK_LEN || !reader.grow(buffer_len * 2) {
                    summary.error = Some(CaptureError::Malformed {
                        path: path.clone(),
                        what: format!("record larger than {} MiB", MAX_BLOCK_LEN >> 20),
                        offset: summary.stream_bytes,
                    });
                    break;
                }
                buffer_len *= 2;
                if reader.refill().is_err() {
                    summary.error = Some(read_error(&path, summary.stream_bytes));
                    break;
                }
            }
            Err(PcapError::ReadError) => {
                summary.error = Some(read_error(&path, summary.stream_bytes));
                break;
            }
            Err(e) => {
                if e == PcapError::UnexpectedEof {
                    summary.error = Some(CaptureError::Truncated {
                        path: path.clone(),
                        what: if summary.format == "pcapng" {
                            "pcapng block"
                        } else {
                            "packet record"
                        },
                        offset: summary.stream_bytes,
                    });
                    break;
                }
                let what = match e {
                    PcapError::HeaderNotRecognized => "block header".to_string(),
                    _ => format!("{} block", summary.format),
                };
                summary.error = Some(CaptureError::Malformed {
                    path: path.clone(),
                    what,
                    offset: summary.stream_bytes,
                });
                break;
            }
        }
    }
    Ok(summary)
}

fn deliver(
    sink: &mut dyn FrameSink,
    summary: &mut CaptureSummary,
    linktype: LinkType,
    ts: Timestamp,
    data: &[u8],
    orig_len: u32,
) {
    summary.frames += 1;
    summary.frame_bytes += data.len() as u64;
    sink.frame(&Frame {
        number: summary.frames,
        ts,
        linktype,
        data,
        orig_len,
    });
}

fn read_error(path: &str, offset: u64) -> CaptureError {
    CaptureError::Truncated {
        path: path.to_string(),
        what: "compressed stream or read",
        offset,
    }
}

/// Converts `units` of a clock ticking `per_sec` times a second into nanoseconds.
fn scale_to_nanos(units: u64, per_sec: u64) -> i64 {
    let n = u128::from(units) * 1_000_000_000 / u128::from(per_sec.max(1));
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn is_capture_magic(head: &[u8]) -> bool {
    const MAGICS: [[u8; 4]; 5] = [
        [0xd4, 0xc3, 0xb2, 0xa1],
        [0xa1, 0xb2, 0xc3, 0xd4],
        [0x4d, 0x3c, 0xb2, 0xa1],
        [0xa1, 0xb2, 0x3c, 0x4d],
        [0x0a, 0x0d, 0x0d, 0x0a],
    ];
    MAGICS.iter().any(|m| head.starts_with(m))
}

fn hex_head(head: &[u8]) -> String {
    if head.is_empty() {
        return "nothing".into();
    }
    head.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}
