//! TLS 1.0-1.2 (RFC 2246, RFC 4346, RFC 5246): the PRFs, the key block, and record
//! decryption for AEAD suites (explicit GCM nonce RFC 5288 §3, ChaCha20-Poly1305 nonce
//! RFC 7905 §2, TLS 1.2 only) and CBC-HMAC suites (MAC-then-encrypt; TLS 1.1/1.2 carry an
//! explicit IV per record, RFC 4346 §6.2.3.2; TLS 1.0 chains the IV from the previous
//! record's last ciphertext block, RFC 2246 §6.2.3.2).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use hmac::{Hmac, Mac};

use super::{suite_params, Bulk, Cipher, DecryptError, MacHash, PrfHash, RecordDecryptor};

fn hmac_once(hash: MacHash, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    macro_rules! run {
        ($h:ty) => {{
            let mut m = <Hmac<$h> as Mac>::new_from_slice(key).expect("hmac takes any key length");
            for p in parts {
                m.update(p);
            }
            m.finalize().into_bytes().to_vec()
        }};
    }
    match hash {
        MacHash::Sha1 => run!(sha1::Sha1),
        MacHash::Sha256 => run!(sha2::Sha256),
        MacHash::Sha384 => run!(sha2::Sha384),
    }
}

fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = <Hmac<md5::Md5> as Mac>::new_from_slice(key).expect("hmac takes any key length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

/// P_hash (RFC 5246 §5) with HMAC `h` (`None`: HMAC-MD5), `len` bytes.
fn p_hash(h: Option<MacHash>, secret: &[u8], label: &[u8], seed: &[u8], len: usize) -> Vec<u8> {
    let mac = |parts: &[&[u8]]| match h {
        Some(h) => hmac_once(h, secret, parts),
        None => hmac_md5(secret, parts),
    };
    let mut out = Vec::with_capacity(len + 48);
    let mut a = mac(&[label, seed]);
    while out.len() < len {
        out.extend_from_slice(&mac(&[&a, label, seed]));
        a = mac(&[&a]);
    }
    out.truncate(len);
    out
}

/// TLS 1.2 PRF (RFC 5246 §5): P_hash(secret, label + seed) truncated to `len`.
pub fn prf(hash: PrfHash, secret: &[u8], label: &[u8], seed: &[u8], len: usize) -> Vec<u8> {
    let h = match hash {
        PrfHash::Sha256 => MacHash::Sha256,
        PrfHash::Sha384 => MacHash::Sha384,
    };
    p_hash(Some(h), secret, label, seed, len)
}

/// TLS 1.0/1.1 PRF (RFC 2246 §5): P_MD5 over the first half of the secret XOR P_SHA-1 over
/// the second half (the halves share the middle byte when the length is odd).
pub fn prf_legacy(secret: &[u8], label: &[u8], seed: &[u8], len: usize) -> Vec<u8> {
    let half = secret.len().div_ceil(2);
    let s1 = secret.get(..half).unwrap_or_default();
    let s2 = secret.get(secret.len() - half..).unwrap_or_default();
    let mut out = p_hash(None, s1, label, seed, len);
    for (o, x) in out
        .iter_mut()
        .zip(p_hash(Some(MacHash::Sha1), s2, label, seed, len))
    {
        *o ^= x;
    }
    out
}

/// The PRF of a TLS version (0x0301-0x0303) and suite hash.
pub fn prf_for(
    version: u16,
    hash: PrfHash,
    secret: &[u8],
    label: &[u8],
    seed: &[u8],
    len: usize,
) -> Vec<u8> {
    if version < 0x0303 {
        prf_legacy(secret, label, seed, len)
    } else {
        prf(hash, secret, label, seed, len)
    }
}

/// Both directions' decryptors `[client->server, server->client]` of a TLS 1.0, 1.1 or 1.2
/// connection from its master secret (RFC 5246 §6.3 key block; TLS 1.0 adds the CBC IVs
/// to it, RFC 2246 §6.3). Other versions, suites outside [`suite_params`] and suites the
/// version does not allow (AEAD and SHA-256 MACs before TLS 1.2) are refused with the
/// reason.
pub fn tls12_decryptors(
    suite: u16,
    version: u16,
    master: &[u8],
    client_random: &[u8; 32],
    server_random: &[u8; 32],
) -> Result<[RecordDecryptor; 2], DecryptError> {
    if !(0x0301..=0x0303).contains(&version) {
        return Err(DecryptError(format!(
            "TLS version {version:#06x} is not decrypted (TLS 1.0 to 1.3 only)"
        )));
    }
    let (bulk, hash) = suite_params(suite)
        .filter(|_| !matches!(suite, 0x1301..=0x1303))
        .ok_or_else(|| DecryptError(format!("cipher suite {suite:#06x} is not supported")))?;
    let legacy = version < 0x0303;
    if legacy
        && !matches!(
            bulk,
            Bulk::AesCbc {
                mac: MacHash::Sha1,
                ..
            }
        )
    {
        return Err(DecryptError(format!(
            "cipher suite {suite:#06x} is not a TLS {} suite",
            if version == 0x0301 { "1.0" } else { "1.1" }
        )));
    }
    let (mac_len, key_len, iv_len) = match bulk {
        Bulk::Aes128Gcm => (0, 16, 4),
        Bulk::Aes256Gcm => (0, 32, 4),
        Bulk::ChaCha20Poly1305 => (0, 32, 12),
        // TLS 1.0: the first IV comes from the key block, then chains.
        Bulk::AesCbc { key_len, mac } => {
            (mac.size(), key_len, if version == 0x0301 { 16 } else { 0 })
        }
    };
    let mut seed = Vec::with_capacity(64);
    seed.extend_from_slice(server_random);
    seed.extend_from_slice(client_random);
    let kb = prf_for(
        version,
        hash,
        master,
        b"key expansion",
        &seed,
        2 * (mac_len + key_len + iv_len),
    );
    let (c_mac, rest) = kb.split_at(mac_len);
    let (s_mac, rest) = rest.split_at(mac_len);
    let (c_key, rest) = rest.split_at(key_len);
    let (s_key, rest) = rest.split_at(key_len);
    let (c_iv, s_iv) = rest.split_at(iv_len);
    let make = |key: &[u8], mac_key: &[u8], iv: &[u8]| -> Cipher {
        match bulk {
            Bulk::Aes128Gcm => Cipher::Aes128Gcm(
                Box::new(aes_gcm::Aes128Gcm::new_from_slice(key).expect("16-byte key")),
                iv.to_vec(),
            ),
            Bulk::Aes256Gcm => Cipher::Aes256Gcm(
                Box::new(aes_gcm::Aes256Gcm::new_from_slice(key).expect("32-byte key")),
                iv.to_vec(),
            ),
            Bulk::ChaCha20Poly1305 => Cipher::ChaCha(
                Box::new(
                    chacha20poly1305::ChaCha20Poly1305::new_from_slice(key).expect("32-byte key"),
                ),
                iv.to_vec(),
            ),
            Bulk::AesCbc { mac, .. } => Cipher::Cbc {
                key: key.to_vec(),
                mac_key: mac_key.to_vec(),
                mac,
                chain: <[u8; 16]>::try_from(iv).ok(),
                etm: false,
            },
        }
    };
    Ok([
        RecordDecryptor::new(suite, make(c_key, c_mac, c_iv), false),
        RecordDecryptor::new(suite, make(s_key, s_mac, s_iv), false),
    ])
}

fn aad(seq: u64, header: &[u8; 5], len: usize) -> [u8; 13] {
    let mut a = [0u8; 13];
    a[..8].copy_from_slice(&seq.to_be_bytes());
    a[8..11].copy_from_slice(&header[..3]);
    a[11..].copy_from_slice(&(len as u16).to_be_bytes());
    a
}

fn fail(what: &str) -> DecryptError {
    DecryptError(what.to_string())
}

/// Opens one TLS 1.0-1.2 record body; the content type is the record header's. Under TLS
/// 1.0 CBC the chained IV moves on to the record's last ciphertext block.
pub(super) fn open(
    c: &mut Cipher,
    seq: u64,
    header: &[u8; 5],
    body: &[u8],
) -> Result<(u8, Vec<u8>), DecryptError> {
    let ctype = header[0];
    let plain = match c {
        Cipher::Aes128Gcm(_, iv) | Cipher::Aes256Gcm(_, iv) => {
            if body.len() < 8 + 16 {
                return Err(fail("record too short for AES-GCM"));
            }
            let mut nonce = [0u8; 12];
            nonce[..4].copy_from_slice(iv);
            nonce[4..].copy_from_slice(&body[..8]);
            let msg = &body[8..];
            let a = aad(seq, header, msg.len() - 16);
            let p = Payload { msg, aad: &a };
            let r = match c {
                Cipher::Aes128Gcm(k, _) => k.decrypt((&nonce).into(), p),
                Cipher::Aes256Gcm(k, _) => k.decrypt((&nonce).into(), p),
                _ => unreachable!(),
            };
            r.map_err(|_| fail("AES-GCM authentication failed"))?
        }
        Cipher::ChaCha(k, iv) => {
            if body.len() < 16 {
                return Err(fail("record too short for ChaCha20-Poly1305"));
            }
            let mut nonce = [0u8; 12];
            nonce.copy_from_slice(iv);
            for (n, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
                *n ^= s;
            }
            let a = aad(seq, header, body.len() - 16);
            k.decrypt((&nonce).into(), Payload { msg: body, aad: &a })
                .map_err(|_| fail("ChaCha20-Poly1305 authentication failed"))?
        }
        Cipher::Cbc {
            key,
            mac_key,
            mac,
            chain,
            etm,
        } => {
            let mac_len = mac.size();
            // Encrypt-then-MAC (RFC 7366 §3): the MAC follows the ciphertext and covers it.
            let (body, tag) = if *etm {
                if body.len() < mac_len {
                    return Err(fail("record shorter than its MAC"));
                }
                let (ct, tag) = body.split_at(body.len() - mac_len);
                let a = aad(seq, header, ct.len());
                if hmac_once(*mac, mac_key, &[&a, ct]).as_slice() != tag {
                    return Err(fail("record MAC check failed (encrypt-then-MAC)"));
                }
                (ct, None)
            } else {
                (body, Some(mac_len))
            };
            // At least one block, plus the explicit IV (TLS 1.1 and later).
            let min = if chain.is_some() { 16 } else { 32 };
            if body.len() < min || body.len() % 16 != 0 {
                return Err(fail("record length is not a whole number of AES blocks"));
            }
            let (iv, ct) = match chain {
                Some(prev) => (prev.as_slice(), body),
                None => body.split_at(16),
            };
            let mut buf = ct.to_vec();
            cbc_decrypt(key, iv, &mut buf)?;
            if let Some(prev) = chain {
                prev.copy_from_slice(&body[body.len() - 16..]);
            }
            let in_mac = tag.unwrap_or(0);
            let pad = usize::from(*buf.last().unwrap_or(&0));
            if pad + 1 + in_mac > buf.len()
                || buf[buf.len() - 1 - pad..]
                    .iter()
                    .any(|b| usize::from(*b) != pad)
            {
                return Err(fail("bad CBC padding"));
            }
            buf.truncate(buf.len() - 1 - pad);
            let content_len = buf.len() - in_mac;
            if tag.is_some() {
                let a = aad(seq, header, content_len);
                let expect = hmac_once(*mac, mac_key, &[&a, &buf[..content_len]]);
                if expect.as_slice() != &buf[content_len..] {
                    return Err(fail("record MAC check failed"));
                }
            }
            buf.truncate(content_len);
            buf
        }
    };
    Ok((ctype, plain))
}

fn cbc_decrypt(key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<(), DecryptError> {
    use cbc::cipher::{block_padding::NoPadding, BlockDecryptMut, KeyIvInit};
    let r = match key.len() {
        16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(key, iv)
            .map_err(|_| fail("bad CBC key"))?
            .decrypt_padded_mut::<NoPadding>(buf)
            .map(|_| ()),
        _ => cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv)
            .map_err(|_| fail("bad CBC key"))?
            .decrypt_padded_mut::<NoPadding>(buf)
            .map(|_| ()),
    };
    r.map_err(|_| fail("CBC decryption failed"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes_gcm::aead::AeadInPlace;

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The TLS 1.2 PRF-SHA256 test vector published on the IETF TLS list
    /// (www.ietf.org/mail-archive/web/tls/current/msg03416.html).
    #[test]
    fn prf_sha256_vector() {
        let out = prf(
            PrfHash::Sha256,
            &unhex("9b be 43 6b a9 40 f0 17 b1 76 52 84 9a 71 db 35"),
            b"test label",
            &unhex("a0 ba 9f 93 6c da 31 18 27 a6 f7 96 ff d5 19 8c"),
            100,
        );
        assert_eq!(
            out[..32],
            unhex("e3 f2 29 ba 72 7b e1 7b 8d 12 26 20 55 7c d4 53 c2 aa b2 1d 07 c3 d4 95 32 9b 52 d4 e6 1e db 5a")[..]
        );
        assert_eq!(out.len(), 100);
    }

    /// Encrypts a record the way a TLS 1.2 peer does and checks that the decryptor of the
    /// other side opens it, for each kind of suite.
    #[test]
    fn roundtrip_each_bulk_cipher() {
        let master = [7u8; 48];
        let (cr, sr) = ([1u8; 32], [2u8; 32]);
        for suite in [0xC02F_u16, 0xC030, 0xCCA8, 0x002F, 0xC028] {
            let [mut cdec, _] = tls12_decryptors(suite, 0x0303, &master, &cr, &sr).unwrap();
            let plain = b"\x03\x00\x00\x0bhello".to_vec();
            let header_for = |len: usize| [23u8, 3, 3, (len >> 8) as u8, len as u8];
            let record = match &cdec.inner {
                Cipher::Aes128Gcm(_, iv) | Cipher::Aes256Gcm(_, iv) => {
                    let mut nonce = [0u8; 12];
                    nonce[..4].copy_from_slice(iv);
                    nonce[4..].copy_from_slice(&[9; 8]);
                    let a = aad(0, &header_for(plain.len()), plain.len());
                    let mut buf = plain.clone();
                    match &cdec.inner {
                        Cipher::Aes128Gcm(k, _) => {
                            k.encrypt_in_place((&nonce).into(), &a, &mut buf)
                        }
                        Cipher::Aes256Gcm(k, _) => {
                            k.encrypt_in_place((&nonce).into(), &a, &mut buf)
                        }
                        _ => unreachable!(),
                    }
                    .unwrap();
                    let mut body = vec![9u8; 8];
                    body.extend_from_slice(&buf);
                    body
                }
                Cipher::ChaCha(k, iv) => {
                    let a = aad(0, &header_for(plain.len()), plain.len());
                    let mut buf = plain.clone();
                    let nonce: [u8; 12] = iv.as_slice().try_into().unwrap();
                    k.encrypt_in_place((&nonce).into(), &a, &mut buf).unwrap();
                    buf
                }
                Cipher::Cbc {
                    key, mac_key, mac, ..
                } => {
                    use cbc::cipher::{block_padding::NoPadding, BlockEncryptMut, KeyIvInit};
                    let a = aad(0, &header_for(plain.len()), plain.len());
                    let mut buf = plain.clone();
                    buf.extend_from_slice(&hmac_once(*mac, mac_key, &[&a, &plain]));
                    let pad = 15 - buf.len() % 16;
                    buf.extend(std::iter::repeat(pad as u8).take(pad + 1));
                    let iv = [5u8; 16];
                    let n = buf.len();
                    match key.len() {
                        16 => cbc::Encryptor::<aes::Aes128>::new_from_slices(key, &iv)
                            .unwrap()
                            .encrypt_padded_mut::<NoPadding>(&mut buf, n)
                            .map(|_| ()),
                        _ => cbc::Encryptor::<aes::Aes256>::new_from_slices(key, &iv)
                            .unwrap()
                            .encrypt_padded_mut::<NoPadding>(&mut buf, n)
                            .map(|_| ()),
                    }
                    .unwrap();
                    let mut body = iv.to_vec();
                    body.extend_from_slice(&buf);
                    body
                }
            };
            let mut rec = header_for(record.len()).to_vec();
            rec.extend_from_slice(&record);
            let (ct, p) = cdec
                .decrypt(&rec)
                .unwrap_or_else(|e| panic!("{suite:#x}: {e}"));
            assert_eq!((ct, p), (23, plain.clone()), "{suite:#x}");
            assert_eq!(cdec.seq(), 1);
            // Same record again: wrong sequence number in the AAD / MAC.
            assert!(cdec.decrypt(&rec).is_err(), "{suite:#x}");
        }
        assert!(tls12_decryptors(0x0005, 0x0303, &master, &cr, &sr).is_err());
        assert!(tls12_decryptors(0xC030, 0x0301, &master, &cr, &sr).is_err());
        assert!(tls12_decryptors(0x003C, 0x0302, &master, &cr, &sr).is_err());
        assert!(tls12_decryptors(0x002F, 0x0300, &master, &cr, &sr).is_err());
    }

    /// Encrypts `plain` as a CBC-HMAC record with `iv` (sent explicitly when `explicit`).
    fn cbc_record(c: &Cipher, seq: u64, iv: [u8; 16], explicit: bool, plain: &[u8]) -> Vec<u8> {
        use cbc::cipher::{block_padding::NoPadding, BlockEncryptMut, KeyIvInit};
        let Cipher::Cbc {
            key, mac_key, mac, ..
        } = c
        else {
            unreachable!()
        };
        let header = [23u8, 3, 1, 0, plain.len() as u8];
        let a = aad(seq, &header, plain.len());
        let mut buf = plain.to_vec();
        buf.extend_from_slice(&hmac_once(*mac, mac_key, &[&a, plain]));
        let pad = 15 - buf.len() % 16;
        buf.extend(std::iter::repeat(pad as u8).take(pad + 1));
        let n = buf.len();
        cbc::Encryptor::<aes::Aes128>::new_from_slices(key, &iv)
            .unwrap()
            .encrypt_padded_mut::<NoPadding>(&mut buf, n)
            .unwrap();
        let mut body = if explicit { iv.to_vec() } else { Vec::new() };
        body.extend_from_slice(&buf);
        let mut rec = vec![23u8, 3, 1, (body.len() >> 8) as u8, body.len() as u8];
        rec.extend_from_slice(&body);
        rec
    }

    /// TLS 1.0: the first record uses the key block's IV, the next one the previous
    /// record's last ciphertext block; a skipped record passes its last block on, and a
    /// set-aside record decrypts later at its position.
    #[test]
    fn tls10_cbc_chains_the_iv() {
        let master = [7u8; 48];
        let (cr, sr) = ([1u8; 32], [2u8; 32]);
        let [mut dec, _] = tls12_decryptors(0x002F, 0x0301, &master, &cr, &sr).unwrap();
        assert!(dec.chained());
        let Cipher::Cbc {
            chain: Some(iv0), ..
        } = dec.inner
        else {
            unreachable!()
        };
        // The key block of TLS 1.0 AES-128-SHA: 2x20 MAC, 2x16 key, then the client IV.
        let kb = prf_legacy(&master, b"key expansion", &[sr, cr].concat(), 104);
        assert_eq!(iv0[..], kb[72..88]);
        let r1 = cbc_record(&dec.inner, 0, iv0, false, b"first record");
        let last = |r: &[u8]| -> [u8; 16] { r[r.len() - 16..].try_into().unwrap() };
        let r2 = cbc_record(&dec.inner, 1, last(&r1), false, b"second");
        let r3 = cbc_record(&dec.inner, 2, last(&r2), false, b"third");
        let r4 = cbc_record(&dec.inner, 3, last(&r3), false, b"fourth");
        assert_eq!(dec.decrypt(&r1).unwrap().1, b"first record");
        assert_eq!(dec.decrypt(&r2).unwrap().1, b"second");
        // r3 is passed over; r4 still opens. A skip without the last block breaks the chain.
        let pos3 = dec.position();
        dec.skip(&r3[r3.len().saturating_sub(40)..]).unwrap();
        let pos4 = dec.position();
        assert_eq!(dec.decrypt(&r4).unwrap().1, b"fourth");
        assert_eq!(dec.decrypt_at(pos3, &r3).unwrap().1, b"third");
        assert_eq!(dec.decrypt_at(pos4, &r4).unwrap().1, b"fourth");
        assert!(dec.decrypt_at(pos3, &r4).is_err());
        assert_eq!(dec.seq(), 4);
        assert!(dec.skip(&[0; 15]).is_err());
        assert_eq!(
            format!("{pos3:?}"),
            "RecordPosition { seq: 2, chained: true }"
        );
    }

    /// TLS 1.1: an explicit IV per record, the legacy PRF, no IV in the key block.
    #[test]
    fn tls11_cbc_explicit_iv() {
        let master = [9u8; 48];
        let (cr, sr) = ([3u8; 32], [4u8; 32]);
        let [_, mut dec] = tls12_decryptors(0x0035, 0x0302, &master, &cr, &sr).unwrap();
        assert!(!dec.chained());
        let kb = prf_legacy(&master, b"key expansion", &[sr, cr].concat(), 104);
        let Cipher::Cbc { key, mac_key, .. } = &dec.inner else {
            unreachable!()
        };
        assert_eq!((&key[..], &mac_key[..]), (&kb[72..104], &kb[20..40]));
        // AES-256: encrypt by hand.
        use cbc::cipher::{block_padding::NoPadding, BlockEncryptMut, KeyIvInit};
        let plain = b"\x03\x00\x00\x09\x02\xf0\x80\x21\x80";
        let header = [23u8, 3, 2, 0, plain.len() as u8];
        let mut buf = plain.to_vec();
        buf.extend_from_slice(&hmac_once(
            MacHash::Sha1,
            mac_key,
            &[&aad(0, &header, plain.len()), plain],
        ));
        let pad = 15 - buf.len() % 16;
        buf.extend(std::iter::repeat(pad as u8).take(pad + 1));
        let n = buf.len();
        let iv = [0x5a; 16];
        cbc::Encryptor::<aes::Aes256>::new_from_slices(key, &iv)
            .unwrap()
            .encrypt_padded_mut::<NoPadding>(&mut buf, n)
            .unwrap();
        let mut rec = vec![23u8, 3, 2, 0, (16 + buf.len()) as u8];
        rec.extend_from_slice(&iv);
        rec.extend_from_slice(&buf);
        assert_eq!(dec.decrypt(&rec).unwrap(), (23, plain.to_vec()));
    }

    /// The legacy PRF splits the secret in overlapping halves when its length is odd.
    #[test]
    fn legacy_prf_halves() {
        let a = prf_legacy(&[1, 2, 3], b"l", b"s", 40);
        let mut want = p_hash(None, &[1, 2], b"l", b"s", 40);
        for (w, x) in want
            .iter_mut()
            .zip(p_hash(Some(MacHash::Sha1), &[2, 3], b"l", b"s", 40))
        {
            *w ^= x;
        }
        assert_eq!(a, want);
        assert_eq!(
            prf_for(0x0301, PrfHash::Sha256, &[1, 2, 3], b"l", b"s", 40),
            a
        );
    }
}
