//! Opening an input: a path or `-` for stdin, transparently gunzipped or zstd-decompressed.
//!
//! The format is detected from the magic bytes, never from the file name.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};

use super::CaptureError;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// An opened, decompressed byte stream and the name to report it by.
pub struct InputSource {
    /// The path as given (`-` reads stdin).
    pub name: String,
    /// The decompressed bytes.
    pub reader: Box<dyn Read + Send>,
    /// Compression that was detected ("gzip", "zstd"), if any.
    pub compression: Option<&'static str>,
    /// The first bytes of the decompressed stream (up to 4), for format detection and errors.
    pub head: Vec<u8>,
}

/// Opens `path` (or stdin for `-`) and wraps it in a decompressor when its magic says so.
pub fn open_input(path: &str) -> Result<InputSource, CaptureError> {
    let io_err = |source| CaptureError::Io {
        path: path.to_string(),
        source,
    };
    let raw: Box<dyn Read + Send> = if path == "-" {
        Box::new(io::stdin())
    } else {
        Box::new(File::open(path).map_err(io_err)?)
    };
    from_reader(path, raw)
}

/// An input over bytes already in memory (tests, fuzzing), decompressed like a file.
pub fn input_from_bytes(name: &str, bytes: Vec<u8>) -> Result<InputSource, CaptureError> {
    from_reader(name, Box::new(io::Cursor::new(bytes)))
}

fn from_reader(path: &str, raw: Box<dyn Read + Send>) -> Result<InputSource, CaptureError> {
    let io_err = |source| CaptureError::Io {
        path: path.to_string(),
        source,
    };
    let mut buffered = BufReader::with_capacity(1 << 16, raw);
    let head = fill_at_least(&mut buffered, 4).map_err(io_err)?;
    let (reader, compression): (Box<dyn Read + Send>, _) = if head.starts_with(&GZIP_MAGIC) {
        (
            Box::new(flate2::read::MultiGzDecoder::new(buffered)),
            Some("gzip"),
        )
    } else if head.starts_with(&ZSTD_MAGIC) {
        let dec = zstd::stream::read::Decoder::with_buffer(buffered).map_err(io_err)?;
        (Box::new(dec), Some("zstd"))
    } else {
        // Uncompressed: the buffered reader as it is. std's `BufReader` over a `File` (or a
        // `Cursor`, stdin) reads into a vector's spare capacity without zeroing it first
        // (the capture reader's buffers are filled so), which a wrapper of our own that
        // only implements `read` would prevent.
        return Ok(InputSource {
            name: path.to_string(),
            reader: Box::new(buffered),
            compression: None,
            head,
        });
    };
    let mut reader = BufReader::with_capacity(1 << 16, reader);
    let head = fill_at_least(&mut reader, 4).map_err(io_err)?;
    Ok(InputSource {
        name: path.to_string(),
        reader: Box::new(FullReader(reader)),
        compression,
        head,
    })
}

/// Makes sure at least `n` bytes are buffered (unless the stream is shorter) and returns them.
fn fill_at_least<R: Read>(r: &mut BufReader<R>, n: usize) -> io::Result<Vec<u8>> {
    let buf = r.fill_buf()?;
    Ok(buf.get(..n).unwrap_or(buf).to_vec())
}

/// A reader whose `read` fills the whole buffer unless the stream ends, so that
/// capture readers that read once (pcap-parser's header detection) see complete headers
/// even from pipes and decompressors.
pub(crate) struct FullReader<R>(pub R);

impl<R: Read> Read for FullReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.0.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if filled > 0 => {
                    let _ = e;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(filled)
    }
}
