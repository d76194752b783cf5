//! TLS 1.3 (RFC 8446): traffic keys from the key log's traffic secrets with
//! HKDF-Expand-Label (§7.1, §7.3), per-record nonces (§5.3) and the inner content type
//! (§5.2). No transcript hash is needed: the key log gives the traffic secrets.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use hkdf::Hkdf;

use super::{suite_params, Bulk, Cipher, DecryptError, PrfHash, RecordDecryptor};

/// HKDF-Expand-Label(secret, label, context, len) (RFC 8446 §7.1).
pub fn hkdf_expand_label(
    hash: PrfHash,
    secret: &[u8],
    label: &[u8],
    context: &[u8],
    len: usize,
) -> Result<Vec<u8>, DecryptError> {
    let mut info = Vec::with_capacity(4 + 6 + label.len() + context.len());
    info.extend_from_slice(&(len as u16).to_be_bytes());
    info.push((6 + label.len()) as u8);
    info.extend_from_slice(b"tls13 ");
    info.extend_from_slice(label);
    info.push(context.len() as u8);
    info.extend_from_slice(context);
    let mut out = vec![0u8; len];
    let bad = |_| DecryptError("traffic secret of the wrong length".into());
    match hash {
        PrfHash::Sha256 => Hkdf::<sha2::Sha256>::from_prk(secret)
            .map_err(bad)?
            .expand(&info, &mut out)
            .map_err(|_| DecryptError("hkdf output too long".into()))?,
        PrfHash::Sha384 => Hkdf::<sha2::Sha384>::from_prk(secret)
            .map_err(bad)?
            .expand(&info, &mut out)
            .map_err(|_| DecryptError("hkdf output too long".into()))?,
    }
    Ok(out)
}

/// One direction's decryptor for a TLS 1.3 traffic secret (handshake or application).
pub fn tls13_decryptor(suite: u16, secret: &[u8]) -> Result<RecordDecryptor, DecryptError> {
    let (bulk, hash) = suite_params(suite)
        .filter(|_| matches!(suite, 0x1301..=0x1303))
        .ok_or_else(|| {
            DecryptError(format!(
                "TLS 1.3 cipher suite {suite:#06x} is not supported"
            ))
        })?;
    let key_len = match bulk {
        Bulk::Aes128Gcm => 16,
        _ => 32,
    };
    let key = hkdf_expand_label(hash, secret, b"key", b"", key_len)?;
    let iv = hkdf_expand_label(hash, secret, b"iv", b"", 12)?;
    let inner = match bulk {
        Bulk::Aes128Gcm => Cipher::Aes128Gcm(
            Box::new(aes_gcm::Aes128Gcm::new_from_slice(&key).expect("16-byte key")),
            iv,
        ),
        Bulk::Aes256Gcm => Cipher::Aes256Gcm(
            Box::new(aes_gcm::Aes256Gcm::new_from_slice(&key).expect("32-byte key")),
            iv,
        ),
        _ => Cipher::ChaCha(
            Box::new(
                chacha20poly1305::ChaCha20Poly1305::new_from_slice(&key).expect("32-byte key"),
            ),
            iv,
        ),
    };
    Ok(RecordDecryptor::new(suite, inner, true))
}

/// Opens one TLS 1.3 record: AAD is the record header, the nonce the IV XOR the sequence
/// number; the plaintext ends with the real content type and zero padding.
pub(super) fn open(
    c: &Cipher,
    seq: u64,
    header: &[u8; 5],
    body: &[u8],
) -> Result<(u8, Vec<u8>), DecryptError> {
    let iv = match c {
        Cipher::Aes128Gcm(_, iv) | Cipher::Aes256Gcm(_, iv) | Cipher::ChaCha(_, iv) => iv,
        Cipher::Cbc { .. } => return Err(DecryptError("CBC is not a TLS 1.3 cipher".into())),
    };
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(iv);
    for (n, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
        *n ^= s;
    }
    let p = Payload {
        msg: body,
        aad: header,
    };
    let r = match c {
        Cipher::Aes128Gcm(k, _) => k.decrypt((&nonce).into(), p),
        Cipher::Aes256Gcm(k, _) => k.decrypt((&nonce).into(), p),
        Cipher::ChaCha(k, _) => k.decrypt((&nonce).into(), p),
        Cipher::Cbc { .. } => unreachable!(),
    };
    let mut plain = r.map_err(|_| DecryptError("AEAD authentication failed".into()))?;
    while plain.last() == Some(&0) {
        plain.pop();
    }
    let ctype = plain
        .pop()
        .ok_or_else(|| DecryptError("no inner content type".into()))?;
    Ok((ctype, plain))
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

    /// RFC 8448 §3 (simple 1-RTT handshake): the server handshake traffic secret and the
    /// write key and IV derived from it.
    #[test]
    fn rfc8448_server_handshake_keys() {
        let secret = unhex(
            "b6 7b 7d 69 0c c1 6c 4e 75 e5 42 13 cb 2d 37 b4 e9 c9 12 bc de d9 10 5d 42 be fd 59 d3 91 ad 38",
        );
        let key = hkdf_expand_label(PrfHash::Sha256, &secret, b"key", b"", 16).unwrap();
        let iv = hkdf_expand_label(PrfHash::Sha256, &secret, b"iv", b"", 12).unwrap();
        assert_eq!(
            key,
            unhex("3f ce 51 60 09 c2 17 27 d0 f2 e4 e8 6e e4 03 bc")
        );
        assert_eq!(iv, unhex("5d 31 3e b2 67 12 76 ee 13 00 0b 30"));
    }

    #[test]
    fn roundtrip_inner_content_type() {
        let secret = [3u8; 48];
        for suite in [0x1301, 0x1302, 0x1303] {
            let secret = &secret[..if suite == 0x1302 { 48 } else { 32 }];
            let mut dec = tls13_decryptor(suite, secret).unwrap();
            let mut plain = b"\x30\x03\x02\x01\x06".to_vec();
            plain.push(23);
            plain.extend_from_slice(&[0, 0, 0]);
            let len = plain.len() + 16;
            let header = [23u8, 3, 3, (len >> 8) as u8, len as u8];
            let nonce: [u8; 12] = match &dec.inner {
                Cipher::Aes128Gcm(_, iv) | Cipher::Aes256Gcm(_, iv) | Cipher::ChaCha(_, iv) => {
                    iv.as_slice().try_into().unwrap()
                }
                Cipher::Cbc { .. } => unreachable!(),
            };
            match &dec.inner {
                Cipher::Aes128Gcm(k, _) => k.encrypt_in_place((&nonce).into(), &header, &mut plain),
                Cipher::Aes256Gcm(k, _) => k.encrypt_in_place((&nonce).into(), &header, &mut plain),
                Cipher::ChaCha(k, _) => k.encrypt_in_place((&nonce).into(), &header, &mut plain),
                Cipher::Cbc { .. } => unreachable!(),
            }
            .unwrap();
            let mut rec = header.to_vec();
            rec.extend_from_slice(&plain);
            let (ct, p) = dec.decrypt(&rec).unwrap();
            assert_eq!(ct, 23);
            assert_eq!(p, b"\x30\x03\x02\x01\x06");
            assert!(dec.decrypt(&rec).is_err());
        }
        assert!(tls13_decryptor(0xC030, &secret).is_err());
    }
}
