//! RSA key exchange (RFC 5246 §7.4.7.1, RFC 2246 §7.4.7.1): the server's private key
//! (`--rsa-key`, PEM PKCS#1 or PKCS#8) decrypts the PKCS#1 v1.5 EncryptedPreMasterSecret
//! of the ClientKeyExchange; the master secret follows with the version's PRF (or the
//! extended master secret of RFC 7627 §4 over the handshake transcript). Only TLS_RSA_*
//! suites can be opened this way: (EC)DHE needs a key log.
//!
//! The RSA arithmetic is RustCrypto's `rsa` crate. Keys and secrets never leave this
//! module in printable form: errors name the key file and what failed, never key bytes.

use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Encrypt, RsaPrivateKey};
use sha1::Digest;

use super::{prf_for, suite_params, DecryptError, PrfHash};

/// Most RSA keys read from one file.
const MAX_KEYS_PER_FILE: usize = 64;

/// The private keys of a PEM text (several blocks may follow each other, with text such as
/// PKCS#12 "Bag Attributes" around them), or of one DER PKCS#8 / PKCS#1 key.
pub fn parse_rsa_keys(text: &[u8]) -> Result<Vec<RsaPrivateKey>, String> {
    let Ok(s) = std::str::from_utf8(text) else {
        return der_key(text).map(|k| vec![k]);
    };
    if !s.contains("-----BEGIN") {
        return der_key(text).map(|k| vec![k]);
    }
    let mut keys = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("-----BEGIN ") {
        let block = &rest[start..];
        let Some(label_end) = block[11..].find("-----") else {
            break;
        };
        let label = &block[11..11 + label_end];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = block.find(&end_marker) else {
            return Err(format!("PEM block {label} has no END line"));
        };
        let pem = &block[..end + end_marker.len()];
        rest = &block[end + end_marker.len()..];
        let key = match label {
            "RSA PRIVATE KEY" => RsaPrivateKey::from_pkcs1_pem(pem)
                .map_err(|e| format!("bad PKCS#1 RSA private key: {e}"))?,
            "PRIVATE KEY" => RsaPrivateKey::from_pkcs8_pem(pem)
                .map_err(|e| format!("bad PKCS#8 private key (not RSA?): {e}"))?,
            "ENCRYPTED PRIVATE KEY" => {
                return Err("encrypted private keys are not supported: decrypt it first (openssl pkey -in KEY -out PLAIN)".into())
            }
            _ => continue,
        };
        keys.push(key);
        if keys.len() > MAX_KEYS_PER_FILE {
            return Err(format!("more than {MAX_KEYS_PER_FILE} keys"));
        }
    }
    if keys.is_empty() {
        return Err("no RSA PRIVATE KEY or PRIVATE KEY block".into());
    }
    Ok(keys)
}

fn der_key(der: &[u8]) -> Result<RsaPrivateKey, String> {
    RsaPrivateKey::from_pkcs8_der(der)
        .or_else(|_| RsaPrivateKey::from_pkcs1_der(der))
        .map_err(|_| "neither PEM nor a DER PKCS#8 / PKCS#1 RSA private key".into())
}

/// Whether a TLS 1.0-1.2 suite uses RSA key transport (TLS_RSA_WITH_*), the only kind an
/// RSA private key can open.
pub fn rsa_key_exchange(suite: u16) -> bool {
    matches!(
        suite,
        0x002F | 0x0035 | 0x003C | 0x003D | 0x009C | 0x009D | 0x000A
    )
}

/// The EncryptedPreMasterSecret of a whole ClientKeyExchange message (4-byte handshake
/// header included): a 2-byte length then the RSA ciphertext (TLS 1.0 and later).
pub fn encrypted_premaster(cke: &[u8]) -> Option<&[u8]> {
    let body = cke.get(4..)?;
    let len = usize::from(u16::from_be_bytes([*body.first()?, *body.get(1)?]));
    body.get(2..2 + len).filter(|c| !c.is_empty())
}

/// Whether a whole ServerHello message (header included) carries the
/// extended_master_secret extension (type 23, RFC 7627 §5.1).
pub fn server_hello_has_ems(sh: &[u8]) -> bool {
    server_hello_has_extension(sh, 23)
}

/// Whether a whole ServerHello message (header included) carries extension `ext`.
pub fn server_hello_has_extension(sh: &[u8], ext: u16) -> bool {
    fn exts(sh: &[u8], ext: u16) -> Option<bool> {
        // header 4, version 2, random 32, session id.
        let sid_len = usize::from(*sh.get(38)?);
        let mut i = 39 + sid_len + 3; // cipher suite 2, compression 1
        let total = usize::from(u16::from_be_bytes([*sh.get(i)?, *sh.get(i + 1)?]));
        i += 2;
        let end = (i + total).min(sh.len());
        while i + 4 <= end {
            let t = u16::from_be_bytes([*sh.get(i)?, *sh.get(i + 1)?]);
            let l = usize::from(u16::from_be_bytes([*sh.get(i + 2)?, *sh.get(i + 3)?]));
            if t == ext {
                return Some(true);
            }
            i += 4 + l;
        }
        Some(false)
    }
    exts(sh, ext).unwrap_or(false)
}

/// The RSA modulus (big-endian, no leading zero) of the leaf certificate of a whole
/// Certificate message (header included).
pub fn leaf_modulus(cert_msg: &[u8]) -> Option<Vec<u8>> {
    let body = cert_msg.get(4..)?;
    let len = |b: &[u8], at: usize| -> Option<usize> {
        Some(
            usize::from(*b.get(at)?) << 16
                | usize::from(*b.get(at + 1)?) << 8
                | usize::from(*b.get(at + 2)?),
        )
    };
    let first = len(body, 3)?;
    let der = body.get(6..6 + first)?;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    match cert.public_key().parsed().ok()? {
        x509_parser::public_key::PublicKey::RSA(k) => {
            let m = k.modulus;
            let skip = m.iter().take_while(|b| **b == 0).count();
            Some(m.get(skip..)?.to_vec())
        }
        _ => None,
    }
}

/// The handshake messages of a connection up to its ClientKeyExchange, kept to find the
/// certificate, the EncryptedPreMasterSecret and (extended master secret) the session hash.
#[derive(Debug, Default, Clone)]
pub struct Transcript {
    /// The messages, whole, in order.
    pub bytes: Vec<u8>,
    /// The ServerHello carried extended_master_secret.
    pub ems: bool,
    /// The leaf certificate's RSA modulus.
    pub modulus: Option<Vec<u8>>,
    /// The EncryptedPreMasterSecret, once the ClientKeyExchange arrived.
    pub encrypted_premaster: Option<Vec<u8>>,
    /// The ClientKeyExchange was seen: the transcript is complete.
    pub done: bool,
}

/// Largest transcript kept (certificate chains included).
pub const MAX_TRANSCRIPT: usize = 256 * 1024;

impl Transcript {
    /// Adds one whole handshake message (before ChangeCipherSpec).
    pub fn add(&mut self, msg: &[u8]) {
        if self.done {
            return;
        }
        match msg.first() {
            Some(2) => self.ems = server_hello_has_ems(msg),
            Some(11) if self.modulus.is_none() => self.modulus = leaf_modulus(msg),
            Some(16) => {
                self.encrypted_premaster = encrypted_premaster(msg).map(<[u8]>::to_vec);
                self.done = true;
            }
            _ => {}
        }
        if self.bytes.len() + msg.len() <= MAX_TRANSCRIPT {
            self.bytes.extend_from_slice(msg);
        } else {
            // Too long to hash: an extended master secret cannot be derived.
            self.bytes.clear();
            self.ems = false;
            self.done = true;
        }
    }

    /// The session hash of RFC 7627 §3: MD5 || SHA-1 before TLS 1.2, else the PRF hash.
    fn session_hash(&self, version: u16, hash: PrfHash) -> Vec<u8> {
        if version < 0x0303 {
            let mut h = md5::Md5::digest(&self.bytes).to_vec();
            h.extend_from_slice(&sha1::Sha1::digest(&self.bytes));
            h
        } else {
            match hash {
                PrfHash::Sha256 => sha2::Sha256::digest(&self.bytes).to_vec(),
                PrfHash::Sha384 => sha2::Sha384::digest(&self.bytes).to_vec(),
            }
        }
    }
}

/// The master secret of an RSA key exchange from the server's private keys: the key whose
/// modulus is the certificate's (every key when the certificate is unknown) decrypts the
/// pre-master secret. The error says why none could (no secret material in it).
pub fn rsa_master_secret(
    keys: &[RsaPrivateKey],
    t: &Transcript,
    version: u16,
    suite: u16,
    client_random: &[u8; 32],
    server_random: &[u8; 32],
) -> Result<Vec<u8>, DecryptError> {
    if !rsa_key_exchange(suite) {
        return Err(DecryptError(format!(
            "cipher suite {suite:#06x} does not use RSA key exchange (an RSA private key cannot decrypt it; a key log can)"
        )));
    }
    let Some(epms) = &t.encrypted_premaster else {
        return Err(DecryptError(
            "the capture does not show the ClientKeyExchange (RSA key exchange)".into(),
        ));
    };
    let candidates: Vec<&RsaPrivateKey> = match &t.modulus {
        Some(m) => keys.iter().filter(|k| k.n().to_bytes_be() == *m).collect(),
        None => keys.iter().collect(),
    };
    if candidates.is_empty() {
        return Err(DecryptError(if keys.len() == 1 {
            "the RSA private key does not match the server's certificate".into()
        } else {
            format!(
                "none of the {} RSA private keys matches the server's certificate",
                keys.len()
            )
        }));
    }
    let pms = candidates
        .iter()
        .find_map(|k| {
            k.decrypt(Pkcs1v15Encrypt, epms)
                .ok()
                .filter(|p| p.len() == 48)
        })
        .ok_or_else(|| {
            DecryptError("the RSA private key does not decrypt the pre-master secret".into())
        })?;
    let hash = suite_params(suite).map_or(PrfHash::Sha256, |(_, h)| h);
    Ok(if t.ems {
        let sh = t.session_hash(version, hash);
        prf_for(version, hash, &pms, b"extended master secret", &sh, 48)
    } else {
        let mut seed = Vec::with_capacity(64);
        seed.extend_from_slice(client_random);
        seed.extend_from_slice(server_random);
        prf_for(version, hash, &pms, b"master secret", &seed, 48)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::EncodePrivateKey;
    use rsa::RsaPublicKey;

    /// Two throw-away 1024-bit test keys (`openssl genrsa -traditional 1024`).
    const KEY_A: &str = "-----BEGIN RSA PRIVATE KEY-----\n\
MIICXAIBAAKBgQDINTo+8bpLIRvrCQpmCzLU914JVoTnNt38d4J0BoAm4EQRqFmh\n\
YA67ff23bihl1SlEe955BTYacLBcG4HrwQJD4s6DRF0ddLBHmKrRhdv7DvFyEw3M\n\
abzWI1O/PHG3TkA137wNCejejsAMUQmqvKVdDENL8ZFslM0nijeLYBd/+QIDAQAB\n\
AoGAbnCuSLqfwYHqHKVIDzJuP/yU6yHG/qTNn89tLwPG/asI4ZS0nMiYV+UQaHdj\n\
4YjM0vJhrvCo/7zaDHVAHgTCciaNUMlgAlwTEJP6GeDgzYNG9xbE4zWRp+YiZT9w\n\
hE67E+5B2EhF37ZpDqDHicFooFNtbbk272l8tceL4jNjSYECQQDjKZ3O9Vn1VDep\n\
hJgEB/PtFYDJ9pdRagq1VKCM2TyRyhWMU3tk4sVthP/nu85Tcqo+MlPSP/lirAl8\n\
z1zsNavdAkEA4Z+h8QJkEgs/L9MFe0tmcd+bpa9MP1ITfVUXFPUwP0Ua/cUWliNU\n\
WuUEwCk/UInevIVRzvS1wZgHwkcV7bJgzQJAZk+fGNBeZOU6cKocgWxHi5dsuwnK\n\
G0wEaKkl6moJIqx+ygXrhIOyYeJOE8P9aI4zaPHn2MEhhDRxzXnjoyuFLQJBAOBG\n\
JtqEbubEyT2HvKYvcBj3lidfFiLHOlpWT8hkZV4vGkJxPB9n5P0pM8yz85ziP0cU\n\
Gxrmgxl6PxQuRyztKG0CQHxnjGnQcUbkr7sN9Zp86Y54dRNkCNyn2nBusOj7VVwW\n\
Lczsbzi6jrk3q1c12bWA0K91wgT6bFpiFpfKqyOo3lA=\n\
-----END RSA PRIVATE KEY-----";
    const KEY_B: &str = "-----BEGIN RSA PRIVATE KEY-----\n\
MIICXQIBAAKBgQDKODHFv7MiYDOhdCkr/imDI+MsepEsw/ssHPADIQwrazxrDwvl\n\
sh5H8lVrpzwPUfQF3xmpf62A5eODOG1Q/lKntQvRpPC7gFb5EdkZa9diAnv1JLcw\n\
Cct9fJ+KGgZWUixhdJZhhz9RMU6Xe7jn1eTX4fXOMdbJfRXIj1qG04zRxwIDAQAB\n\
AoGBAMexQoVzTyStN49CtL262aelMttjliVMy6a+VM3iPrBJz3oxe6AyivClgHE0\n\
znyag42gySi26tGVM10LxffrjhZJcggxESe/YK//vGwOkJutz2NnKGgK56ckklVP\n\
9/K8u+y0pDpCu9ot63c4fIp24JqG/Ma0WN6vhzNqtU5WRA6RAkEA63X8ocRaKU3h\n\
eSl1/T7X7rM5M2IcEaHpsQ1VpQ7TC50Eu6cEKRBV0UgW7RRiFRlxrHGPuZnawq2J\n\
30Fw9Q6mMwJBANvb50Zt8ABZq7F6b6Qe5yrRQ/2AJmW7/5vYOlFklRTFnKCQj4mH\n\
XuQ9UpXLnbf0FMvJGMiyczNMpY7kQgYCCh0CQQC2A7Xvwt5DkZ2bUK6RvlOjhM3R\n\
56R1COmiYQF0n5oLHyz6dmgj6im8pvJ6AEi1sL6LpBmLSuCtnwK2H1tXRCS7AkAd\n\
9S7kV+KWCaHtgwNnV5akLPOYvTd+MUm5EJORt6TgubSH5GrKkJmLfBeetan+ANI8\n\
mmA4KKit2snMWKnua6S5AkAyEZYMEshYXKESajOASkOSgPKI93pvEOvPKImEFpIJ\n\
RjhFEMQp0FPfg+EJxSCSa+Ypz8P4AFdUNyHEippDbd13\n\
-----END RSA PRIVATE KEY-----";

    fn test_key() -> RsaPrivateKey {
        RsaPrivateKey::from_pkcs1_pem(KEY_A).unwrap()
    }

    #[test]
    fn pem_pkcs1_pkcs8_der_and_garbage() {
        let k = test_key();
        let p1 = k.to_pkcs1_pem(Default::default()).unwrap();
        let p8 = k.to_pkcs8_pem(Default::default()).unwrap();
        let text = format!(
            "Bag Attributes\n    localKeyID: 01\n{}\nsome text\n{}",
            p8.as_str(),
            p1.as_str()
        );
        let keys = parse_rsa_keys(text.as_bytes()).unwrap();
        assert_eq!(keys.len(), 2);
        assert!(keys.iter().all(|x| x == &k));
        let der = k.to_pkcs8_der().unwrap();
        assert_eq!(parse_rsa_keys(der.as_bytes()).unwrap(), vec![k.clone()]);
        assert!(parse_rsa_keys(b"hello").is_err());
        assert!(
            parse_rsa_keys(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
                .is_err()
        );
        let enc =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert!(parse_rsa_keys(enc.as_bytes())
            .unwrap_err()
            .contains("encrypted"));
        let e = parse_rsa_keys(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
            .unwrap_err();
        assert!(e.starts_with("bad PKCS#8"), "{e}");
    }

    /// A pre-master secret encrypted to the key decrypts to the master secret the PRF gives;
    /// a key with another modulus is reported as not matching the certificate.
    #[test]
    fn master_secret_from_the_encrypted_premaster() {
        let k = test_key();
        let pms = [0x03u8, 0x01]
            .iter()
            .copied()
            .chain([0x42; 46])
            .collect::<Vec<_>>();
        let epms = RsaPublicKey::from(&k)
            .encrypt(&mut rsa::rand_core::OsRng, Pkcs1v15Encrypt, &pms)
            .unwrap();
        let mut cke = vec![16, 0, 0, (2 + epms.len()) as u8, 0, epms.len() as u8];
        cke[2] = ((2 + epms.len()) >> 8) as u8;
        cke[3] = (2 + epms.len()) as u8;
        cke[4] = (epms.len() >> 8) as u8;
        cke[5] = epms.len() as u8;
        cke.extend_from_slice(&epms);
        let mut t = Transcript::default();
        t.add(&cke);
        assert!(t.done);
        let (cr, sr) = ([1u8; 32], [2u8; 32]);
        let m = rsa_master_secret(std::slice::from_ref(&k), &t, 0x0301, 0x002F, &cr, &sr).unwrap();
        let want = prf_for(
            0x0301,
            PrfHash::Sha256,
            &pms,
            b"master secret",
            &[cr, sr].concat(),
            48,
        );
        assert_eq!(m, want);
        // TLS 1.2 uses the SHA-256 PRF.
        let m12 =
            rsa_master_secret(std::slice::from_ref(&k), &t, 0x0303, 0x009C, &cr, &sr).unwrap();
        assert_ne!(m12, m);
        // Extended master secret: the session hash of the transcript.
        t.ems = true;
        let e = rsa_master_secret(std::slice::from_ref(&k), &t, 0x0303, 0x009C, &cr, &sr).unwrap();
        let sh = sha2::Sha256::digest(&cke).to_vec();
        assert_eq!(
            e,
            prf_for(
                0x0303,
                PrfHash::Sha256,
                &pms,
                b"extended master secret",
                &sh,
                48
            )
        );
        // Not RSA key exchange; another key; a modulus that is not the key's.
        assert!(rsa_master_secret(std::slice::from_ref(&k), &t, 0x0303, 0xC02F, &cr, &sr).is_err());
        let other = RsaPrivateKey::from_pkcs1_pem(KEY_B).unwrap();
        let err = rsa_master_secret(&[other], &t, 0x0303, 0x009C, &cr, &sr).unwrap_err();
        assert!(err.0.contains("does not decrypt"), "{err}");
        t.modulus = Some(vec![1, 2, 3]);
        let err =
            rsa_master_secret(std::slice::from_ref(&k), &t, 0x0303, 0x009C, &cr, &sr).unwrap_err();
        assert!(err.0.contains("does not match"), "{err}");
        let err = rsa_master_secret(&[k.clone(), k], &t, 0x0303, 0x009C, &cr, &sr).unwrap_err();
        assert!(err.0.contains("none of the 2"), "{err}");
    }

    #[test]
    fn server_hello_extension_scan() {
        // header, version, random, sid len 0, suite, compression, ext len 8: 0xff01 (len 1),
        // 0x0017 (len 0).
        let mut sh = vec![2, 0, 0, 0, 3, 3];
        sh.extend_from_slice(&[0; 32]);
        sh.extend_from_slice(&[0, 0x00, 0x2f, 0, 0, 9, 0xff, 1, 0, 1, 0, 0, 0x17, 0, 0]);
        assert!(server_hello_has_ems(&sh));
        let n = sh.len();
        sh[n - 4] = 0x18;
        assert!(!server_hello_has_ems(&sh));
        assert!(!server_hello_has_ems(&sh[..40]));
        assert_eq!(encrypted_premaster(&[16, 0, 0, 2, 0, 0]), None);
        assert_eq!(encrypted_premaster(&[16, 0, 0, 3, 0, 1, 9]), Some(&[9][..]));
        assert_eq!(encrypted_premaster(&[16, 0, 0, 3, 0, 2, 9]), None);
    }
}
