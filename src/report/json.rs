//! Compact JSON of any `Serialize` value, byte for byte what `serde_json::to_writer` writes,
//! for the JSON Lines of connection reports.
//!
//! serde_json escapes strings a byte at a time through a table, which made string escaping
//! the largest single cost of a batch of small captures (a report is ~1.2 kB, mostly
//! strings). Here strings are scanned 8 bytes at a time for the bytes JSON escapes (control
//! characters, `"` and `\`) and copied in runs; numbers use `itoa` like serde_json, and
//! floats are written by serde_json itself. Anything this writer does not handle the same
//! way (serde_json's private tokens, map keys other than strings, chars and integers) makes
//! it give up, and the value is written by serde_json instead, so the output never differs.

use std::fmt::{self, Display};
use std::io;

use serde::ser::{self, Serialize};

/// Appends the compact JSON of `value` to `out`, exactly as `serde_json::to_writer` would.
pub fn write_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> io::Result<()> {
    let len = out.len();
    if value.serialize(&mut Json { out }).is_ok() {
        return Ok(());
    }
    // Unsupported here (or an error of the value's own): serde_json decides.
    out.truncate(len);
    serde_json::to_writer(out, value).map_err(io::Error::from)
}

/// Why the fast writer gave up.
#[derive(Debug)]
struct Unsupported(String);

impl Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unsupported {}

impl ser::Error for Unsupported {
    fn custom<T: Display>(msg: T) -> Self {
        Unsupported(msg.to_string())
    }
}

fn unsupported<T>(what: &str) -> Result<T, Unsupported> {
    Err(Unsupported(what.to_string()))
}

/// serde_json gives these struct names a meaning of their own (raw values, arbitrary
/// precision numbers).
fn is_private(name: &str) -> bool {
    name.starts_with("$serde_json::private::")
}

struct Json<'o> {
    out: &'o mut Vec<u8>,
}

/// Index of the first byte of `s` that JSON escapes.
fn first_escaped(s: &[u8]) -> Option<usize> {
    let word = |at: usize| {
        s.get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map(u64::from_le_bytes)
    };
    if s.len() < 8 {
        return s.iter().position(|&b| b < 0x20 || b == b'"' || b == b'\\');
    }
    let mut at = 0;
    while let Some(x) = word(at) {
        let hit = escapes(x);
        if hit != 0 {
            return Some(at + (hit.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    if at == s.len() {
        return None;
    }
    // The last 8 bytes, overlapping those checked (read whole: copying the tail into a
    // padded word stalls the load that follows), without the checked ones.
    let start = s.len() - 8;
    let hit = escapes(word(start)?) & (u64::MAX << ((at - start) * 8));
    (hit != 0).then(|| start + (hit.trailing_zeros() / 8) as usize)
}

/// The high bit of the first of 8 bytes (little-endian) that JSON escapes (control
/// characters, `"` and `\`) is set, and none below it; 0 if none is.
fn escapes(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte below `n` (n <= 0x80) is set: exact for the lowest such
    // byte (a borrow only runs upwards, from a byte that is itself below `n`).
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGH;
    // Bytes below 0x20 (only ASCII ones can be: UTF-8 sequences use bytes of 0x80 and up).
    below(x, 0x20)
        | below(x ^ (ONES * u64::from(b'"')), 1)
        | below(x ^ (ONES * u64::from(b'\\')), 1)
}

/// Appends `s` as a JSON string, escaped as serde_json escapes it.
fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(s.len() + 2);
    out.push(b'"');
    let mut rest = s.as_bytes();
    while let Some(i) = first_escaped(rest) {
        let (run, tail) = rest.split_at(i);
        out.extend_from_slice(run);
        let Some((&b, tail)) = tail.split_first() else {
            break;
        };
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
        }
        rest = tail;
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

fn write_int<I: itoa::Integer>(out: &mut Vec<u8>, v: I) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Floats exactly as serde_json writes them (shortest round trip; `null` if not finite).
fn write_float<F: Serialize>(out: &mut Vec<u8>, v: F) -> Result<(), Unsupported> {
    serde_json::to_writer(out, &v).map_err(|e| Unsupported(e.to_string()))
}

/// An array or object being written.
struct Compound<'a, 'o> {
    ser: &'a mut Json<'o>,
    first: bool,
    /// What closes it: `]`, `}`, or `]}` / `}}` for a variant.
    close: &'static [u8],
}

impl Compound<'_, '_> {
    fn comma(&mut self) {
        if self.first {
            self.first = false;
        } else {
            self.ser.out.push(b',');
        }
    }

    fn key(&mut self, key: &str) {
        self.comma();
        write_str(self.ser.out, key);
        self.ser.out.push(b':');
    }

    fn end(self) {
        self.ser.out.extend_from_slice(self.close);
    }
}

impl<'a, 'o> Json<'o> {
    fn open(&'a mut self, open: &[u8], close: &'static [u8]) -> Compound<'a, 'o> {
        self.out.extend_from_slice(open);
        Compound {
            ser: self,
            first: true,
            close,
        }
    }

    /// `{"variant":` then `open`.
    fn open_variant(
        &'a mut self,
        variant: &str,
        open: &[u8],
        close: &'static [u8],
    ) -> Compound<'a, 'o> {
        self.out.push(b'{');
        write_str(self.out, variant);
        self.out.push(b':');
        self.open(open, close)
    }
}

impl<'a, 'o> ser::Serializer for &'a mut Json<'o> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = Compound<'a, 'o>;
    type SerializeTuple = Compound<'a, 'o>;
    type SerializeTupleStruct = Compound<'a, 'o>;
    type SerializeTupleVariant = Compound<'a, 'o>;
    type SerializeMap = Compound<'a, 'o>;
    type SerializeStruct = Compound<'a, 'o>;
    type SerializeStructVariant = Compound<'a, 'o>;

    fn serialize_bool(self, v: bool) -> Result<(), Unsupported> {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Unsupported> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_i16(self, v: i16) -> Result<(), Unsupported> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_i32(self, v: i32) -> Result<(), Unsupported> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_i64(self, v: i64) -> Result<(), Unsupported> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> Result<(), Unsupported> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), Unsupported> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_u16(self, v: u16) -> Result<(), Unsupported> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_u32(self, v: u32) -> Result<(), Unsupported> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_u64(self, v: u64) -> Result<(), Unsupported> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> Result<(), Unsupported> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Result<(), Unsupported> {
        write_float(self.out, v)
    }
    fn serialize_f64(self, v: f64) -> Result<(), Unsupported> {
        write_float(self.out, v)
    }
    fn serialize_char(self, v: char) -> Result<(), Unsupported> {
        write_str(self.out, v.encode_utf8(&mut [0u8; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Unsupported> {
        write_str(self.out, v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Unsupported> {
        let mut seq = self.open(b"[", b"]");
        for b in v {
            seq.comma();
            write_int(seq.ser.out, *b);
        }
        seq.end();
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Unsupported> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Unsupported> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Unsupported> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Unsupported> {
        self.serialize_none()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Unsupported> {
        write_str(self.out, variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        if is_private(name) {
            return unsupported(name);
        }
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        self.out.push(b'{');
        write_str(self.out, variant);
        self.out.push(b':');
        value.serialize(&mut *self)?;
        self.out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'a, 'o>, Unsupported> {
        Ok(self.open(b"[", b"]"))
    }
    fn serialize_tuple(self, _len: usize) -> Result<Compound<'a, 'o>, Unsupported> {
        Ok(self.open(b"[", b"]"))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Compound<'a, 'o>, Unsupported> {
        Ok(self.open(b"[", b"]"))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a, 'o>, Unsupported> {
        Ok(self.open_variant(variant, b"[", b"]}"))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'a, 'o>, Unsupported> {
        Ok(self.open(b"{", b"}"))
    }
    fn serialize_struct(
        self,
        name: &'static str,
        _len: usize,
    ) -> Result<Compound<'a, 'o>, Unsupported> {
        if is_private(name) {
            return unsupported(name);
        }
        Ok(self.open(b"{", b"}"))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a, 'o>, Unsupported> {
        Ok(self.open_variant(variant, b"{", b"}}"))
    }
}

impl ser::SerializeSeq for Compound<'_, '_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        self.comma();
        value.serialize(&mut *self.ser)
    }
    fn end(self) -> Result<(), Unsupported> {
        Compound::end(self);
        Ok(())
    }
}

impl ser::SerializeTuple for Compound<'_, '_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<(), Unsupported> {
        Compound::end(self);
        Ok(())
    }
}

impl ser::SerializeTupleStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<(), Unsupported> {
        Compound::end(self);
        Ok(())
    }
}

impl ser::SerializeTupleVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<(), Unsupported> {
        Compound::end(self);
        Ok(())
    }
}

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Unsupported> {
        self.comma();
        key.serialize(MapKey { out: self.ser.out })?;
        self.ser.out.push(b':');
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        value.serialize(&mut *self.ser)
    }
    fn end(self) -> Result<(), Unsupported> {
        Compound::end(self);
        Ok(())
    }
}

impl ser::SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        self.key(key);
        value.serialize(&mut *self.ser)
    }
    fn end(self) -> Result<(), Unsupported> {
        Compound::end(self);
        Ok(())
    }
}

impl ser::SerializeStructVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        ser::SerializeStruct::serialize_field(self, key, value)
    }
    fn end(self) -> Result<(), Unsupported> {
        Compound::end(self);
        Ok(())
    }
}

/// An object key: strings and chars as themselves, integers quoted (as serde_json does);
/// anything else is left to serde_json.
struct MapKey<'o> {
    out: &'o mut Vec<u8>,
}

impl MapKey<'_> {
    fn quoted_int<I: itoa::Integer>(self, v: I) -> Result<(), Unsupported> {
        self.out.push(b'"');
        write_int(self.out, v);
        self.out.push(b'"');
        Ok(())
    }
}

/// Serializer methods of `MapKey` that give up.
macro_rules! key_unsupported {
    ($($f:ident($($t:ty),*) -> $ok:ty;)*) => {$(
        fn $f(self, $(_: $t),*) -> Result<$ok, Unsupported> {
            unsupported("map key")
        }
    )*};
}

impl ser::Serializer for MapKey<'_> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = ser::Impossible<(), Unsupported>;
    type SerializeTuple = ser::Impossible<(), Unsupported>;
    type SerializeTupleStruct = ser::Impossible<(), Unsupported>;
    type SerializeTupleVariant = ser::Impossible<(), Unsupported>;
    type SerializeMap = ser::Impossible<(), Unsupported>;
    type SerializeStruct = ser::Impossible<(), Unsupported>;
    type SerializeStructVariant = ser::Impossible<(), Unsupported>;

    fn serialize_str(self, v: &str) -> Result<(), Unsupported> {
        write_str(self.out, v);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), Unsupported> {
        write_str(self.out, v.encode_utf8(&mut [0u8; 4]));
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Unsupported> {
        write_str(self.out, variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        if is_private(name) {
            return unsupported(name);
        }
        value.serialize(self)
    }
    fn serialize_i8(self, v: i8) -> Result<(), Unsupported> {
        self.quoted_int(v)
    }
    fn serialize_i16(self, v: i16) -> Result<(), Unsupported> {
        self.quoted_int(v)
    }
    fn serialize_i32(self, v: i32) -> Result<(), Unsupported> {
        self.quoted_int(v)
    }
    fn serialize_i64(self, v: i64) -> Result<(), Unsupported> {
        self.quoted_int(v)
    }
    fn serialize_i128(self, v: i128) -> Result<(), Unsupported> {
        self.quoted_int(v)
    }
    fn serialize_u8(self, v: u8) -> Result<(), Unsupported> {
        self.quoted_int(v)
    }
    fn serialize_u16(self, v: u16) -> Result<(), Unsupported> {
        self.quoted_int(v)
    }
    fn serialize_u32(self, v: u32) -> Result<(), Unsupported> {
        self.quoted_int(v)
    }
    fn serialize_u64(self, v: u64) -> Result<(), Unsupported> {
        self.quoted_int(v)
    }
    fn serialize_u128(self, v: u128) -> Result<(), Unsupported> {
        self.quoted_int(v)
    }

    key_unsupported! {
        serialize_bool(bool) -> ();
        serialize_f32(f32) -> ();
        serialize_f64(f64) -> ();
        serialize_bytes(&[u8]) -> ();
        serialize_none() -> ();
        serialize_unit() -> ();
        serialize_unit_struct(&'static str) -> ();
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct(&'static str, usize) -> Self::SerializeStruct;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<(), Unsupported> {
        unsupported("map key")
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), Unsupported> {
        unsupported("map key")
    }
}

#[cfg(test)]
mod tests {
    use super::write_json;
    use serde::Serialize;
    use std::collections::BTreeMap;

    fn same<T: Serialize + ?Sized>(v: &T) {
        let mut ours = b"prefix ".to_vec();
        write_json(&mut ours, v).unwrap();
        let theirs = serde_json::to_vec(v).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&ours[7..]),
            String::from_utf8_lossy(&theirs)
        );
        assert_eq!(&ours[..7], b"prefix ");
    }

    #[test]
    fn strings_escape_like_serde_json() {
        // Every ASCII byte, alone and at every position of 8-byte words and their tails.
        for b in 0u8..128 {
            let c = char::from(b);
            for pre in 0..19 {
                let s: String = "x".repeat(pre) + &c.to_string() + "yz\u{e9}";
                same(&s);
            }
        }
        for s in [
            "",
            "\"",
            "\\\\\"\"",
            "a\u{0}b\u{1f}c\u{7f}d",
            "caf\u{e9} \u{1f600} \u{2028}\u{2029} \u{ffff}",
            "tab\there\nnewline\r\u{8}\u{c}",
            "CN=rdp-srv.corp.example, O=\"Quoted\\Org\"",
        ] {
            same(s);
        }
        // Pseudo-random strings of control characters, quotes, backslashes and UTF-8.
        let alphabet: Vec<char> = "ab\"\\\u{0}\u{1}\n\u{1f} \u{e9}\u{20ac}\u{10348}~"
            .chars()
            .collect();
        let mut x: u64 = 1;
        for len in 0..300 {
            let s: String = (0..len)
                .map(|_| {
                    x = x
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    alphabet[(x >> 33) as usize % alphabet.len()]
                })
                .collect();
            same(&s);
        }
    }

    #[derive(Serialize)]
    struct Unit;

    #[derive(Serialize)]
    struct Newtype(u8);

    #[derive(Serialize)]
    struct Pair(i8, &'static str);

    #[derive(Serialize)]
    #[serde(rename_all = "snake_case")]
    enum E {
        Plain,
        New(u16),
        Tuple(u8, u8),
        Struct { a: u32, b: Option<bool> },
    }

    #[derive(Serialize)]
    struct All {
        #[serde(rename = "type")]
        kind: &'static str,
        b: [bool; 2],
        ints: (i8, i16, i32, i64, i128, u8, u16, u32, u64, u128),
        mins: (i64, i128, u64, u128),
        floats: Vec<f64>,
        f32s: Vec<f32>,
        c: char,
        none: Option<String>,
        some: Option<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
        unit: (),
        unit_struct: Unit,
        newtype: Newtype,
        pair: Pair,
        variants: Vec<E>,
        empty: Vec<u8>,
        empty_map: BTreeMap<String, u8>,
        map: BTreeMap<&'static str, Vec<u8>>,
        int_keys: BTreeMap<i32, &'static str>,
        char_keys: BTreeMap<char, u8>,
        #[serde(with = "serde_bytes_like")]
        bytes: Vec<u8>,
        nested: Vec<Vec<Option<E>>>,
        value: serde_json::Value,
    }

    /// Serializes through `serialize_bytes`.
    mod serde_bytes_like {
        pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(v)
        }
    }

    #[test]
    fn every_kind_of_value_is_written_like_serde_json() {
        let all = All {
            kind: "connection",
            b: [true, false],
            ints: (-8, -16, -32, -64, -128, 8, 16, 32, 64, 128),
            mins: (i64::MIN, i128::MIN, u64::MAX, u128::MAX),
            floats: vec![
                0.0,
                -0.0,
                0.210519,
                1e-7,
                1e21,
                123456.789,
                f64::MAX,
                f64::MIN_POSITIVE,
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
            ],
            f32s: vec![0.1, f32::NAN, 3.5],
            c: '"',
            none: None,
            some: Some("x"),
            skipped: None,
            unit: (),
            unit_struct: Unit,
            newtype: Newtype(7),
            pair: Pair(-1, "p"),
            variants: vec![
                E::Plain,
                E::New(3389),
                E::Tuple(1, 2),
                E::Struct { a: 1, b: None },
                E::Struct {
                    a: 2,
                    b: Some(true),
                },
            ],
            empty: vec![],
            empty_map: BTreeMap::new(),
            map: [("a\"b", vec![1, 2]), ("", vec![])].into_iter().collect(),
            int_keys: [(-3, "minus"), (10, "ten")].into_iter().collect(),
            char_keys: [('\n', 1), ('k', 2)].into_iter().collect(),
            bytes: vec![0, 255, 16],
            nested: vec![vec![], vec![None, Some(E::Plain)]],
            value: serde_json::json!({"k": [1, -2, 2.5, null, "s\u{1}"], "t": true}),
        };
        same(&all);
    }

    #[test]
    fn keys_it_does_not_write_are_left_to_serde_json() {
        // serde_json writes bool keys quoted; errors (here: a sequence as key) stay errors.
        let bools: BTreeMap<bool, u8> = [(false, 0), (true, 1)].into_iter().collect();
        same(&bools);
        let mut out = Vec::new();
        let seq_keys: BTreeMap<Vec<u8>, u8> = [(vec![1], 1)].into_iter().collect();
        assert!(write_json(&mut out, &seq_keys).is_err());
        assert!(serde_json::to_vec(&seq_keys).is_err());
    }
}
