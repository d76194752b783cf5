//! Decrypted TLS: per-direction record decryption with keys from the shared key store, and
//! the inner framing of the plaintext (CredSSP TSRequests, the Early User Authorization
//! Result, then TPKT/fast-path exactly like the clear Standard RDP Security path).

use std::collections::VecDeque;

use super::stream::{frame_for, Mode, MAX_BUFFERED_PDU};
use super::{EventKind, Session};
use crate::decrypt::{
    rsa_master_secret, server_hello_has_extension, tls12_decryptors, tls13_decryptor,
    RecordDecryptor, RecordPosition, Transcript,
};
use crate::flow::{Dir, FrameRef};
use crate::proto::credssp::{self, AuthToken};
use crate::proto::nego::Protocols;
use crate::proto::tls::{content_type, RecordHeader};
use crate::proto::{tpkt, Framing};

/// Once the session runs, records up to this many bytes are set aside (they may be the
/// Set Error Info, Deactivate All or Disconnect Provider Ultimatum of the end), larger ones
/// are passed over undecrypted.
pub const SMALL_RECORD: usize = 1024;

/// Records set aside per direction (the oldest is passed over when one more comes).
pub const SET_ASIDE_RECORDS: usize = 8;

/// An encrypted record kept to be decrypted when the connection closes.
#[derive(Debug)]
struct SetAside {
    pos: RecordPosition,
    record: Vec<u8>,
    frame: FrameRef,
    /// The record header's content type and length.
    outer: u8,
    len: u16,
}

/// One direction's decryption state.
#[derive(Debug, Default)]
pub struct DirCrypt {
    /// Small records set aside once the session runs, oldest first.
    set_aside: VecDeque<SetAside>,
    dec: Option<RecordDecryptor>,
    /// No keys, unusable keys or a failure: records are no longer kept or decrypted.
    pub given_up: bool,
    /// TLS 1.3: the application traffic secret is in use.
    tls13_app: bool,
    /// TLS 1.3: this direction's Finished was decrypted; switch secrets after the record.
    pub switch_pending: bool,
    /// RSA key exchange (client direction only): the handshake up to the ClientKeyExchange.
    transcript: Option<Box<Transcript>>,
    /// RSA key exchange (client direction only): the master secret, once derived.
    rsa_master: Option<Vec<u8>>,
    /// Client direction only: the ServerHello negotiated encrypt-then-MAC (RFC 7366).
    encrypt_then_mac: bool,
    /// Client direction only: a FIN or RST was seen; every record is decrypted from now on.
    closing: bool,
    /// Records of this direction were passed over or set aside: the next decrypted one
    /// starts the PDU stream again.
    resync: bool,
}

/// How the decrypted bytes of a direction are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InnerMode {
    /// Nothing decrypted yet.
    #[default]
    Start,
    /// CredSSP TSRequests (and, from the server under HYBRID_EX, the 4-byte result).
    CredSsp,
    /// TPKT and fast-path PDUs.
    Rdp,
    /// Not followed any more.
    Ignore,
}

/// One direction's decrypted byte stream.
#[derive(Debug, Default)]
pub struct InnerStream {
    mode: InnerMode,
    buf: Vec<u8>,
}

impl Session {
    /// Up to which length this direction's encrypted records must be kept whole to be
    /// decrypted (`None`: none are).
    pub(super) fn keep_records_up_to(&self, d: usize) -> Option<usize> {
        let keys = !self.crypt[d].given_up
            && self
                .config
                .keys
                .as_ref()
                .is_some_and(|k| k.read().is_ok_and(|k| !k.is_empty()));
        if !keys {
            None
        } else if self.settled() {
            Some(SMALL_RECORD)
        } else {
            Some(crate::proto::tls::MAX_RECORD_LEN)
        }
    }

    /// Whether the diagnosis is settled as far as decryption goes: the connection sequence
    /// is over (the server sent its Font Map and its first fast-path output, or both sides
    /// exchange fast-path PDUs), nothing has closed yet, and `--decrypt-all` was not given.
    /// Not for RD Gateway connections.
    fn settled(&self) -> bool {
        let m = &self.details.mcs;
        !self.crypt[0].closing
            && self.gateway.is_none()
            && ((m.font_map.is_some() && m.fastpath_pdus[Dir::ToClient.index()] > 0)
                || m.fastpath_pdus.iter().all(|n| *n > 0))
            && !self
                .config
                .keys
                .as_ref()
                .is_some_and(|k| k.read().is_ok_and(|k| k.decrypt_all))
    }

    /// A protected record the stream skipped by length (its last bytes in `tail`): the
    /// direction's sequence number (and TLS 1.0 CBC IV) moves past it.
    pub(super) fn record_passed_over(&mut self, dir: Dir, ctype: u8, tail: &[u8]) {
        let d = dir.index();
        if self.crypt[d].given_up || !self.protected(dir, ctype) {
            return;
        }
        let Some(dec) = self.crypt[d].dec.as_mut() else {
            return;
        };
        if dec.skip(tail).is_err() {
            self.crypt[d].dec = None;
            self.crypt[d].given_up = true;
            self.wants_changed();
            return;
        }
        self.details.decrypt.passed_over[d] += 1;
        self.crypt[d].resync = true;
    }

    /// A FIN or RST, or the end: the records set aside are decrypted, and every record
    /// after this one is.
    pub(super) fn connection_closing(&mut self) {
        self.crypt[0].closing = true;
        self.decrypt_set_aside();
    }

    /// Starts the direction's decrypted PDU stream again at this record's plaintext after
    /// records were passed over; `false` when the record does not begin with a PDU (its
    /// content is then left alone).
    fn resync_inner(&mut self, d: usize, ctype: u8, plain: &[u8]) -> bool {
        if ctype != content_type::APPLICATION_DATA {
            return true;
        }
        let fp = self.fastpath_allowed;
        let inner = &mut self.inner[d];
        if !matches!(inner.mode, InnerMode::Rdp | InnerMode::Ignore) {
            return true;
        }
        inner.buf.clear();
        if frame_for(Mode::Rdp, plain, fp) == Framing::Invalid {
            return false;
        }
        inner.mode = InnerMode::Rdp;
        true
    }

    /// Decrypts the records set aside in both directions.
    fn decrypt_set_aside(&mut self) {
        for dir in [Dir::ToServer, Dir::ToClient] {
            let d = dir.index();
            while let Some(r) = self.crypt[d].set_aside.pop_front() {
                let Some(dec) = self.crypt[d].dec.as_mut() else {
                    self.crypt[d].set_aside.clear();
                    break;
                };
                let (ctype, plain) = match dec.decrypt_at(r.pos, &r.record) {
                    Ok(x) => x,
                    Err(e) => {
                        let what = format!("{e} (record {} from the {})", r.pos.seq, dir.sender());
                        let dd = &mut self.details.decrypt;
                        dd.failures += 1;
                        dd.first_failure
                            .get_or_insert_with(|| (dir, r.frame, what.clone()));
                        self.push(r.frame, Some(dir), EventKind::DecryptFailed { what });
                        continue;
                    }
                };
                self.details.decrypt.records[d] += 1;
                // Records in between were passed over: each one starts the PDU stream again.
                if !self.resync_inner(d, ctype, &plain) {
                    continue;
                }
                self.decrypted_content(dir, ctype, r.outer, r.len, &plain, r.frame);
            }
        }
    }

    /// Keeps the clear handshake message at the head of the direction's handshake buffer
    /// (`n` bytes) for an RSA key exchange, when RSA private keys are given.
    pub(super) fn handshake_transcript(&mut self, d: usize, n: usize) {
        if let Some(sh) = self.streams[d]
            .hs_buf
            .get(..n)
            .filter(|m| m.first() == Some(&2))
        {
            self.crypt[0].encrypt_then_mac = server_hello_has_extension(sh, 22);
        }
        let t = &self.crypt[0].transcript;
        if t.as_ref().is_some_and(|t| t.done) {
            return;
        }
        if t.is_none() {
            let has_rsa = self
                .config
                .keys
                .as_ref()
                .is_some_and(|k| k.read().is_ok_and(|k| !k.rsa_keys().is_empty()));
            if !has_rsa {
                return;
            }
        }
        let Some(msg) = self.streams[d].hs_buf.get(..n) else {
            return;
        };
        self.crypt[0]
            .transcript
            .get_or_insert_with(Default::default)
            .add(msg);
    }

    /// The direction lost bytes: its record sequence and inner framing are lost with them.
    pub(super) fn crypt_gap(&mut self, dir: Dir) {
        let d = dir.index();
        // What was set aside before the gap can still be decrypted.
        if !self.crypt[d].set_aside.is_empty() {
            self.decrypt_set_aside();
        }
        if self.crypt[d].dec.is_some() {
            self.crypt[d].dec = None;
            self.crypt[d].given_up = true;
            self.inner[d].mode = InnerMode::Ignore;
            self.inner[d].buf = Vec::new();
        }
    }

    /// Whether a record of this type is protected (after ChangeCipherSpec in TLS 1.2; every
    /// application-data record after the ServerHello in TLS 1.3).
    fn protected(&self, dir: Dir, ctype: u8) -> bool {
        let t = &self.details.tls;
        if t.is_tls13() {
            ctype == content_type::APPLICATION_DATA
        } else {
            t.ccs[dir.index()].is_some()
                && matches!(
                    ctype,
                    content_type::ALERT | content_type::HANDSHAKE | content_type::APPLICATION_DATA
                )
        }
    }

    /// Builds the direction's decryptor from the key store; `false` when there is no usable key.
    fn setup_keys(&mut self, dir: Dir) -> bool {
        let d = dir.index();
        let Some(keys) = self.config.keys.clone() else {
            return false;
        };
        let Ok(keys) = keys.read() else {
            return false;
        };
        let t = &self.details.tls;
        let (Some(ch), Some(sh)) = (&t.client_hello, &t.server_hello) else {
            return false;
        };
        let made = if sh.version == 0x0304 {
            let Some(s) = keys.tls13_secrets(&ch.random) else {
                return false;
            };
            let secret = match (dir, self.crypt[d].tls13_app) {
                (Dir::ToServer, false) => &s.client_handshake,
                (Dir::ToClient, false) => &s.server_handshake,
                (Dir::ToServer, true) => &s.client_traffic,
                (Dir::ToClient, true) => &s.server_traffic,
            };
            let Some(secret) = secret else {
                self.details.decrypt.keys_found = true;
                self.details.decrypt.unusable.get_or_insert_with(|| {
                    format!(
                        "the key log lacks the {} {} traffic secret",
                        dir.sender(),
                        if self.crypt[d].tls13_app {
                            "application"
                        } else {
                            "handshake"
                        }
                    )
                });
                return false;
            };
            tls13_decryptor(sh.cipher_suite, secret)
        } else {
            let master = match keys.master_secret(&ch.random) {
                Some(m) => m.to_vec(),
                None if keys.rsa_keys().is_empty() => return false,
                None => match &self.crypt[0].rsa_master {
                    Some(m) => m.clone(),
                    None => {
                        let t = self.crypt[0].transcript.take().unwrap_or_default();
                        let r = rsa_master_secret(
                            keys.rsa_keys(),
                            &t,
                            sh.version,
                            sh.cipher_suite,
                            &ch.random,
                            &sh.random,
                        );
                        self.details.decrypt.keys_found = true;
                        match r {
                            Ok(m) => {
                                self.crypt[0].transcript = None;
                                self.crypt[0].rsa_master = Some(m.clone());
                                m
                            }
                            Err(e) => {
                                self.details.decrypt.unusable.get_or_insert(e.0);
                                return false;
                            }
                        }
                    }
                },
            };
            let etm = self.crypt[0].encrypt_then_mac;
            tls12_decryptors(sh.cipher_suite, sh.version, &master, &ch.random, &sh.random).map(
                |[c, s]| {
                    let mut dec = if dir == Dir::ToServer { c } else { s };
                    if etm {
                        dec.set_encrypt_then_mac();
                    }
                    dec
                },
            )
        };
        self.details.decrypt.keys_found = true;
        match made {
            Ok(dec) => {
                self.crypt[d].dec = Some(dec);
                true
            }
            Err(e) => {
                self.details.decrypt.unusable.get_or_insert(e.0);
                false
            }
        }
    }

    /// Decrypts a protected record when keys allow; `false` leaves it to the
    /// encrypted-record path (sizes and timing only).
    pub(super) fn decrypt_record(
        &mut self,
        dir: Dir,
        rec: &[u8],
        h: RecordHeader,
        frame: FrameRef,
    ) -> bool {
        let d = dir.index();
        if self.crypt[d].given_up || !self.protected(dir, h.content_type) {
            return false;
        }
        if self.crypt[d].dec.is_none() && !self.setup_keys(dir) {
            self.crypt[d].given_up = true;
            return false;
        }
        let settled = self.settled();
        let Some(dec) = self.crypt[d].dec.as_mut() else {
            return false;
        };
        // The session runs: pass over bulk records, set small ones aside (TLS 1.2 alerts,
        // visible by their outer type, are decrypted at once).
        if settled && h.content_type != content_type::ALERT {
            let tail = rec
                .get(rec.len().saturating_sub(RecordDecryptor::SKIP_TAIL)..)
                .unwrap_or_default();
            let pos = dec.position();
            self.crypt[d].resync = true;
            let Some(dec) = self.crypt[d].dec.as_mut() else {
                return false;
            };
            if dec.skip(tail).is_err() {
                self.crypt[d].dec = None;
                self.crypt[d].given_up = true;
                return false;
            }
            if usize::from(h.len) > SMALL_RECORD {
                self.details.decrypt.passed_over[d] += 1;
                return false;
            }
            let c = &mut self.crypt[d];
            if c.set_aside.len() >= SET_ASIDE_RECORDS {
                c.set_aside.pop_front();
                self.details.decrypt.passed_over[d] += 1;
            }
            self.crypt[d].set_aside.push_back(SetAside {
                pos,
                record: rec.to_vec(),
                frame,
                outer: h.content_type,
                len: h.len,
            });
            self.tls_record_meta(dir, h.content_type, h.len, frame);
            return true;
        }
        let (ctype, plain) = match dec.decrypt(rec) {
            Ok(x) => x,
            Err(e) => {
                let what = format!("{e} (record {} from the {})", dec.seq(), dir.sender());
                let dd = &mut self.details.decrypt;
                dd.failures += 1;
                dd.first_failure
                    .get_or_insert_with(|| (dir, frame, what.clone()));
                self.crypt[d].dec = None;
                self.crypt[d].given_up = true;
                self.push(frame, Some(dir), EventKind::DecryptFailed { what });
                return false;
            }
        };
        self.details.decrypt.records[d] += 1;
        if h.content_type == content_type::ALERT {
            self.alert_record(dir, &plain, h.len, frame);
        } else {
            self.tls_record_meta(dir, h.content_type, h.len, frame);
        }
        if std::mem::take(&mut self.crypt[d].resync) && !self.resync_inner(d, ctype, &plain) {
            return true;
        }
        self.decrypted_content(dir, ctype, h.content_type, h.len, &plain, frame);
        true
    }

    /// The content of a decrypted record (`outer` is the record header's type; its
    /// metadata has been counted already).
    fn decrypted_content(
        &mut self,
        dir: Dir,
        ctype: u8,
        outer: u8,
        len: u16,
        plain: &[u8],
        frame: FrameRef,
    ) {
        let d = dir.index();
        match ctype {
            content_type::APPLICATION_DATA => self.inner_data(dir, plain, frame),
            content_type::HANDSHAKE if self.details.tls.is_tls13() => {
                self.handshake_bytes(dir, plain, frame);
                if std::mem::take(&mut self.crypt[d].switch_pending) {
                    self.crypt[d].tls13_app = true;
                    self.crypt[d].dec = None;
                }
            }
            content_type::ALERT if outer != content_type::ALERT => {
                self.alert_record(dir, plain, len, frame)
            }
            _ => {}
        }
    }

    /// Decrypted application data of a direction.
    fn inner_data(&mut self, dir: Dir, plain: &[u8], frame: FrameRef) {
        let d = dir.index();
        if self.inner[d].mode == InnerMode::Start && self.gateway_data(dir, plain, frame) {
            return;
        }
        let selected = self.details.nego.selected;
        let inner = &mut self.inner[d];
        if inner.mode == InnerMode::Start {
            inner.mode = match selected {
                Some(p) if p.uses_credssp() => InnerMode::CredSsp,
                Some(_) => InnerMode::Rdp,
                None if plain.first() == Some(&0x30) => InnerMode::CredSsp,
                None => InnerMode::Rdp,
            };
        }
        if inner.mode == InnerMode::Ignore {
            return;
        }
        // The Early User Authorization Result travels alone in its record (MS-RDPBCGR 5.4.2.1).
        let hybrid_ex = selected.is_some_and(|p| p.0 & Protocols::HYBRID_EX != 0);
        if dir == Dir::ToClient
            && hybrid_ex
            && inner.mode == InnerMode::CredSsp
            && inner.buf.is_empty()
            && plain.len() == 4
            && plain[0] != 0x30
        {
            inner.mode = InnerMode::Rdp;
            if let Some(result) = credssp::parse_early_user_auth_result(plain) {
                let c = &mut self.details.credssp;
                c.early_user_auth.get_or_insert(result);
                c.early_user_auth_frame.get_or_insert(frame);
                self.push(frame, Some(dir), EventKind::EarlyUserAuth { result });
            }
            return;
        }
        inner.buf.extend_from_slice(plain);
        loop {
            let fp = self.fastpath_allowed;
            let inner = &mut self.inner[d];
            let Some(&first) = inner.buf.first() else {
                return;
            };
            match inner.mode {
                InnerMode::CredSsp if first != 0x30 => inner.mode = InnerMode::Rdp,
                InnerMode::CredSsp => match credssp::ts_request_frame(&inner.buf) {
                    Framing::Complete(n) => {
                        let pdu: Vec<u8> = inner.buf.drain(..n).collect();
                        self.ts_request(dir, &pdu, frame);
                    }
                    Framing::NeedMore(_) | Framing::NeedHeader => return,
                    Framing::Invalid => {
                        return self.inner_broken(dir, frame, "CredSSP TSRequest framing");
                    }
                },
                InnerMode::Rdp => match frame_for(Mode::Rdp, &inner.buf, fp) {
                    Framing::Complete(n) => {
                        let pdu: Vec<u8> = inner.buf.drain(..n).collect();
                        if first == tpkt::TPKT_VERSION {
                            self.tpkt_pdu(dir, &pdu, frame);
                        } else {
                            self.fastpath_pdu(dir, frame);
                        }
                    }
                    Framing::NeedMore(total) if total > MAX_BUFFERED_PDU => {
                        return self.inner_broken(dir, frame, "decrypted PDU over the size limit");
                    }
                    Framing::NeedMore(_) | Framing::NeedHeader => return,
                    Framing::Invalid => {
                        return self.inner_broken(
                            dir,
                            frame,
                            "decrypted bytes that are not a TPKT or fast-path PDU",
                        );
                    }
                },
                InnerMode::Start | InnerMode::Ignore => return,
            }
        }
    }

    fn inner_broken(&mut self, dir: Dir, frame: FrameRef, what: &str) {
        let inner = &mut self.inner[dir.index()];
        let head = super::hex_head(&inner.buf);
        inner.mode = InnerMode::Ignore;
        inner.buf = Vec::new();
        self.push(
            frame,
            Some(dir),
            EventKind::Malformed {
                what: format!("{what} (starting {head})"),
            },
        );
    }

    /// One decrypted TSRequest.
    fn ts_request(&mut self, dir: Dir, pdu: &[u8], frame: FrameRef) {
        let r = match credssp::parse_ts_request(pdu) {
            Ok(r) => r,
            Err(e) => {
                let what = e.to_string();
                self.push(frame, Some(dir), EventKind::Malformed { what });
                return;
            }
        };
        let c = &mut self.details.credssp;
        c.requests[dir.index()] += 1;
        c.version = Some(c.version.map_or(r.version, |v| v.max(r.version)));
        let pkg = match r.nego_token {
            Some(AuthToken::Ntlm(_)) => Some("NTLM"),
            Some(AuthToken::Kerberos) => Some("Kerberos"),
            Some(AuthToken::Spnego) => Some("SPNEGO"),
            _ => None,
        };
        if pkg.is_some() && matches!(c.auth_package, None | Some("SPNEGO")) {
            c.auth_package = pkg;
        }
        if let Some(id) = r.ntlm_identity.clone() {
            c.ntlm_identity.get_or_insert(id);
        }
        if let Some(code) = r.error_code {
            if c.error_code.is_none() {
                c.error_code = Some(code);
                c.error_frame = Some((dir, frame));
            }
        }
        if r.has_auth_info && dir == Dir::ToServer {
            c.credentials_frame.get_or_insert(frame);
        }
        let kind = EventKind::CredsspRequest {
            version: r.version,
            token: r.nego_token,
            error_code: r.error_code,
            auth_info: r.has_auth_info,
        };
        self.push(frame, Some(dir), kind);
    }
}
