//! Stage between flow and session: TLS record decryption with keys from NSS key logs
//! (`--keylog`, pcapng Decryption Secrets Blocks).
//!
//! Only the RustCrypto primitives are used (AES-GCM, ChaCha20-Poly1305, AES-CBC, HMAC,
//! SHA-1/SHA-2, HKDF); this module adds the TLS key schedules (RFC 5246 PRF, RFC 8446
//! HKDF-Expand-Label) and record protection. Secrets never leave it: the key store and
//! the record decryptors print only counts and suite names.

mod rsa;
mod tls12;
mod tls13;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

pub use self::rsa::{
    parse_rsa_keys, rsa_key_exchange, rsa_master_secret, server_hello_has_extension, Transcript,
};
pub use tls12::{prf_for, prf_legacy, tls12_decryptors};
pub use tls13::{hkdf_expand_label, tls13_decryptor};

/// pcapng Decryption Secrets Block type of a TLS key log ("TLSK", pcapng spec §4.7).
pub const DSB_TLS_KEY_LOG: u32 = 0x544c_534b;

/// TLS 1.3 traffic secrets of one connection (from the key log, by client random).
#[derive(Clone, Default)]
pub struct Tls13Secrets {
    /// CLIENT_HANDSHAKE_TRAFFIC_SECRET.
    pub client_handshake: Option<Vec<u8>>,
    /// SERVER_HANDSHAKE_TRAFFIC_SECRET.
    pub server_handshake: Option<Vec<u8>>,
    /// CLIENT_TRAFFIC_SECRET_0.
    pub client_traffic: Option<Vec<u8>>,
    /// SERVER_TRAFFIC_SECRET_0.
    pub server_traffic: Option<Vec<u8>>,
}

/// Keys from NSS key logs, by client random.
#[derive(Clone, Default)]
pub struct KeyStore {
    tls12: HashMap<[u8; 32], Vec<u8>>,
    tls13: HashMap<[u8; 32], Tls13Secrets>,
    /// Servers' RSA private keys (`--rsa-key`), for TLS_RSA_* key exchange.
    rsa: Vec<::rsa::RsaPrivateKey>,
    /// Decrypt every record (`--decrypt-all`) rather than stopping at the running session.
    pub decrypt_all: bool,
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secrets themselves.
        f.debug_struct("KeyStore")
            .field("tls12_master_secrets", &self.tls12.len())
            .field("tls13_connections", &self.tls13.len())
            .field("rsa_keys", &self.rsa.len())
            .field("decrypt_all", &self.decrypt_all)
            .finish()
    }
}

/// A key store shared by the sessions of one analysis (secrets blocks may arrive mid-capture).
pub type SharedKeys = Arc<RwLock<KeyStore>>;

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl KeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether no key is known.
    pub fn is_empty(&self) -> bool {
        self.tls12.is_empty() && self.tls13.is_empty() && self.rsa.is_empty()
    }

    /// Connections with keys (TLS 1.2 master secrets plus TLS 1.3 client randoms).
    pub fn len(&self) -> usize {
        self.tls12.len() + self.tls13.len()
    }

    /// Adds the lines of an NSS key log; returns how many were usable. Comments, blank
    /// lines and labels other than CLIENT_RANDOM and the TLS 1.3 handshake/traffic secrets
    /// are ignored, as are malformed lines.
    pub fn add_key_log(&mut self, text: &[u8]) -> usize {
        let mut n = 0;
        for line in text.split(|b| *b == b'\n') {
            let Ok(line) = std::str::from_utf8(line) else {
                continue;
            };
            let mut parts = line.split_whitespace();
            let (Some(label), Some(cr), Some(secret), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let Some(cr) = unhex(cr).and_then(|v| <[u8; 32]>::try_from(v).ok()) else {
                continue;
            };
            let Some(secret) = unhex(secret).filter(|s| !s.is_empty() && s.len() <= 64) else {
                continue;
            };
            if label == "CLIENT_RANDOM" {
                if secret.len() == 48 {
                    self.tls12.insert(cr, secret);
                    n += 1;
                }
                continue;
            }
            let entry = self.tls13.entry(cr);
            let slot = match label {
                "CLIENT_HANDSHAKE_TRAFFIC_SECRET" => &mut entry.or_default().client_handshake,
                "SERVER_HANDSHAKE_TRAFFIC_SECRET" => &mut entry.or_default().server_handshake,
                "CLIENT_TRAFFIC_SECRET_0" => &mut entry.or_default().client_traffic,
                "SERVER_TRAFFIC_SECRET_0" => &mut entry.or_default().server_traffic,
                _ => continue,
            };
            *slot = Some(secret);
            n += 1;
        }
        n
    }

    /// Adds a pcapng Decryption Secrets Block; returns the usable lines (0 for other types).
    pub fn add_secrets_block(&mut self, secrets_type: u32, data: &[u8]) -> usize {
        if secrets_type == DSB_TLS_KEY_LOG {
            self.add_key_log(data)
        } else {
            0
        }
    }

    /// Adds the RSA private keys of a PEM (PKCS#1 or PKCS#8) or DER file; returns how many.
    /// The error says what is wrong with the file, never key material.
    pub fn add_rsa_keys(&mut self, text: &[u8]) -> Result<usize, String> {
        let keys = parse_rsa_keys(text)?;
        let n = keys.len();
        for k in keys {
            if !self.rsa.contains(&k) {
                self.rsa.push(k);
            }
        }
        Ok(n)
    }

    /// The servers' RSA private keys.
    pub fn rsa_keys(&self) -> &[::rsa::RsaPrivateKey] {
        &self.rsa
    }

    /// The TLS 1.2 (and earlier) master secret for a client random.
    pub fn master_secret(&self, client_random: &[u8; 32]) -> Option<&[u8]> {
        self.tls12.get(client_random).map(Vec::as_slice)
    }

    /// The TLS 1.3 secrets for a client random.
    pub fn tls13_secrets(&self, client_random: &[u8; 32]) -> Option<&Tls13Secrets> {
        self.tls13.get(client_random)
    }
}

/// Why a record could not be decrypted (no secret material in the message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecryptError(pub String);

impl fmt::Display for DecryptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The bulk cipher of a suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bulk {
    /// AES-128-GCM.
    Aes128Gcm,
    /// AES-256-GCM.
    Aes256Gcm,
    /// ChaCha20-Poly1305.
    ChaCha20Poly1305,
    /// AES-CBC with HMAC (key length 16 or 32).
    AesCbc {
        /// Key length.
        key_len: usize,
        /// HMAC hash.
        mac: MacHash,
    },
}

/// HMAC hashes of the CBC suites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacHash {
    /// HMAC-SHA1.
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA384.
    Sha384,
}

impl MacHash {
    /// MAC (and key) length.
    pub fn size(self) -> usize {
        match self {
            MacHash::Sha1 => 20,
            MacHash::Sha256 => 32,
            MacHash::Sha384 => 48,
        }
    }
}

/// PRF / HKDF hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrfHash {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
}

/// A cipher suite this module decrypts: bulk cipher and PRF hash.
pub fn suite_params(suite: u16) -> Option<(Bulk, PrfHash)> {
    use Bulk::*;
    use PrfHash::*;
    let cbc = |key_len, mac| AesCbc { key_len, mac };
    Some(match suite {
        // TLS 1.3 (RFC 8446 B.4).
        0x1301 => (Aes128Gcm, Sha256),
        0x1302 => (Aes256Gcm, Sha384),
        0x1303 => (ChaCha20Poly1305, Sha256),
        // AES-GCM (RFC 5288, RFC 5289).
        0x009C | 0x009E | 0xC02B | 0xC02F => (Aes128Gcm, Sha256),
        0x009D | 0x009F | 0xC02C | 0xC030 => (Aes256Gcm, Sha384),
        // ChaCha20-Poly1305 (RFC 7905).
        0xCCA8..=0xCCAA => (ChaCha20Poly1305, Sha256),
        // AES-CBC with HMAC-SHA1 (RFC 5246, RFC 4492).
        0x002F | 0x0033 | 0xC009 | 0xC013 => (cbc(16, MacHash::Sha1), Sha256),
        0x0035 | 0x0039 | 0xC00A | 0xC014 => (cbc(32, MacHash::Sha1), Sha256),
        // AES-CBC with HMAC-SHA256 / SHA384 (RFC 5246, RFC 5289).
        0x003C | 0x0067 | 0xC023 | 0xC027 => (cbc(16, MacHash::Sha256), Sha256),
        0x003D | 0x006B => (cbc(32, MacHash::Sha256), Sha256),
        0xC024 | 0xC028 => (cbc(32, MacHash::Sha384), Sha384),
        _ => return None,
    })
}

/// One direction's record protection.
pub struct RecordDecryptor {
    suite: u16,
    pub(crate) inner: Cipher,
    seq: u64,
    tls13: bool,
}

pub(crate) enum Cipher {
    Aes128Gcm(Box<aes_gcm::Aes128Gcm>, Vec<u8>),
    Aes256Gcm(Box<aes_gcm::Aes256Gcm>, Vec<u8>),
    ChaCha(Box<chacha20poly1305::ChaCha20Poly1305>, Vec<u8>),
    Cbc {
        key: Vec<u8>,
        mac_key: Vec<u8>,
        mac: MacHash,
        /// TLS 1.0: the IV of the next record (the previous record's last ciphertext block).
        chain: Option<[u8; 16]>,
        /// Encrypt-then-MAC was negotiated (RFC 7366).
        etm: bool,
    },
}

impl fmt::Debug for RecordDecryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordDecryptor")
            .field("suite", &format_args!("{:#06x}", self.suite))
            .field("seq", &self.seq)
            .finish()
    }
}

impl RecordDecryptor {
    pub(crate) fn new(suite: u16, inner: Cipher, tls13: bool) -> Self {
        RecordDecryptor {
            suite,
            inner,
            seq: 0,
            tls13,
        }
    }

    /// Records decrypted so far (the next sequence number).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Decrypts one whole record (5-byte header and body): the content type (the inner
    /// one under TLS 1.3) and the plaintext. The sequence number advances only on success.
    pub fn decrypt(&mut self, record: &[u8]) -> Result<(u8, Vec<u8>), DecryptError> {
        let header: [u8; 5] = record
            .get(..5)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| DecryptError("record shorter than its header".into()))?;
        let body = &record[5..];
        let out = if self.tls13 {
            tls13::open(&self.inner, self.seq, &header, body)
        } else {
            tls12::open(&mut self.inner, self.seq, &header, body)
        }?;
        self.seq += 1;
        Ok(out)
    }

    /// Switches a CBC suite to encrypt-then-MAC (the ServerHello carried the
    /// encrypt_then_mac extension, RFC 7366); AEAD suites ignore it.
    pub fn set_encrypt_then_mac(&mut self) {
        if let Cipher::Cbc { etm, .. } = &mut self.inner {
            *etm = true;
        }
    }

    /// Whether skipping a record needs its last ciphertext block (TLS 1.0 CBC IV chaining).
    pub fn chained(&self) -> bool {
        matches!(self.inner, Cipher::Cbc { chain: Some(_), .. })
    }

    /// Bytes of a record's end that [`RecordDecryptor::skip`] needs (the last ciphertext
    /// block, and the MAC after it under encrypt-then-MAC).
    pub const SKIP_TAIL: usize = 64;

    /// Passes over one record without decrypting it: the sequence number advances and,
    /// under TLS 1.0 CBC, the record's last ciphertext block becomes the next IV; `tail` is
    /// the record's last bytes (at least 16, plus the MAC under encrypt-then-MAC).
    pub fn skip(&mut self, tail: &[u8]) -> Result<(), DecryptError> {
        if let Cipher::Cbc {
            chain: Some(prev),
            etm,
            mac,
            ..
        } = &mut self.inner
        {
            let end = tail.len().saturating_sub(if *etm { mac.size() } else { 0 });
            let block = end
                .checked_sub(16)
                .and_then(|start| tail.get(start..end))
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .ok_or_else(|| DecryptError("skipped record lost the CBC chain".into()))?;
            *prev = block;
        }
        self.seq += 1;
        Ok(())
    }

    /// The state needed to decrypt the next record later, out of line (sequence number and
    /// chained IV); see [`RecordDecryptor::decrypt_at`].
    pub fn position(&self) -> RecordPosition {
        RecordPosition {
            seq: self.seq,
            chain: match &self.inner {
                Cipher::Cbc { chain, .. } => *chain,
                _ => None,
            },
        }
    }

    /// Decrypts a record that was set aside at `pos` (a record the stream skipped with
    /// [`RecordDecryptor::skip`]); the decryptor's own position is unchanged.
    pub fn decrypt_at(
        &mut self,
        pos: RecordPosition,
        record: &[u8],
    ) -> Result<(u8, Vec<u8>), DecryptError> {
        let header: [u8; 5] = record
            .get(..5)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| DecryptError("record shorter than its header".into()))?;
        let body = &record[5..];
        if self.tls13 {
            return tls13::open(&self.inner, pos.seq, &header, body);
        }
        let saved = match &mut self.inner {
            Cipher::Cbc { chain, .. } => std::mem::replace(chain, pos.chain),
            _ => None,
        };
        let r = tls12::open(&mut self.inner, pos.seq, &header, body);
        if let Cipher::Cbc { chain, .. } = &mut self.inner {
            *chain = saved;
        }
        r
    }
}

/// Where a record sits in its direction's protection: sequence number and, under TLS 1.0
/// CBC, the IV it was encrypted with (the first one comes from the key block: never printed).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RecordPosition {
    /// The record's sequence number.
    pub seq: u64,
    /// The chained IV (TLS 1.0 CBC).
    pub chain: Option<[u8; 16]>,
}

impl fmt::Debug for RecordPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordPosition")
            .field("seq", &self.seq)
            .field("chained", &self.chain.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_log_lines() {
        let cr = "aa".repeat(32);
        let text = format!(
            "# comment\nCLIENT_RANDOM {cr} {}\nCLIENT_RANDOM {cr} 00\nSERVER_HANDSHAKE_TRAFFIC_SECRET {} {}\r\nEXPORTER_SECRET {cr} 00\ngarbage\n",
            "11".repeat(48),
            "bb".repeat(32),
            "22".repeat(32)
        );
        let mut ks = KeyStore::new();
        assert_eq!(ks.add_key_log(text.as_bytes()), 2);
        assert_eq!(ks.master_secret(&[0xaa; 32]), Some(&[0x11; 48][..]));
        let s = ks.tls13_secrets(&[0xbb; 32]).unwrap();
        assert_eq!(s.server_handshake.as_deref(), Some(&[0x22; 32][..]));
        assert!(s.client_traffic.is_none());
        assert_eq!(ks.add_secrets_block(1, text.as_bytes()), 0);
        let dbg = format!("{ks:?}");
        assert!(!dbg.contains("11") && !dbg.contains("34"), "{dbg}");
    }
}
