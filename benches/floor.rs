//! The floor of our stack: read a legacy pcap with pcap-parser's streaming reader and slice
//! every frame with etherparse, doing nothing else. Issue 7 measures rdpdiag against this
//! loop ("within about 3x of the bare read+slice loop"); `benches/compare.sh` runs it.
//!
//!     cargo run --release --example floor -- FILE.pcap
//!
//! Prints frames, TCP frames and payload bytes seen, so the work cannot be optimised away.

use std::fs::File;

use etherparse::{SlicedPacket, TransportSlice};
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{LegacyPcapReader, PcapBlockOwned, PcapError};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: floor FILE.pcap")?;
    let mut reader = LegacyPcapReader::new(1 << 20, File::open(&path)?)?;
    let (mut frames, mut tcp, mut payload) = (0u64, 0u64, 0u64);
    loop {
        match reader.next() {
            Ok((used, block)) => {
                if let PcapBlockOwned::Legacy(b) = block {
                    frames += 1;
                    if let Ok(p) = SlicedPacket::from_ethernet(b.data) {
                        if let Some(TransportSlice::Tcp(t)) = p.transport {
                            tcp += 1;
                            payload += t.payload().len() as u64;
                        }
                    }
                }
                reader.consume(used);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => {
                if let Err(e) = reader.refill() {
                    let msg = format!("{path}: {e:?}");
                    return Err(msg.into());
                }
            }
            Err(e) => {
                let msg = format!("{path}: {e:?}");
                return Err(msg.into());
            }
        }
    }
    println!("{frames} frames, {tcp} TCP, {payload} payload bytes");
    Ok(())
}
