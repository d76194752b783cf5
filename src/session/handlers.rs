//! What each complete PDU means for the session: X.224, MCS, fast-path and TLS records.

use super::details::{AlertRecord, RecordLog, MAX_RECORD_LOG};
use super::stream::Mode;
use super::{EventKind, Session};
use crate::flow::{Dir, FrameRef};
use crate::proto::mcs::{self, McsPdu};
use crate::proto::nego::{self, NegResult};
use crate::proto::tls::{self, content_type, Handshake};
use crate::proto::x224::{self, RoutingInfo, Tpdu};
use crate::proto::{tpkt, Framing};

/// Security header flags of PDUs that carry no Share Control header (encrypted data,
/// auto-detect, multitransport, heartbeat).
const NOT_SHARE_CONTROL: u16 = mcs::sec_flags::SEC_ENCRYPT
    | mcs::sec_flags::SEC_TRANSPORT_REQ
    | mcs::sec_flags::SEC_TRANSPORT_RSP
    | mcs::sec_flags::SEC_AUTODETECT_REQ
    | mcs::sec_flags::SEC_AUTODETECT_RSP
    | mcs::sec_flags::SEC_HEARTBEAT;

/// encryptionMethod FIPS_ENCRYPTION_FLAG (MS-RDPBCGR 2.2.1.4.3).
const ENCRYPTION_METHOD_FIPS: u32 = 0x10;
/// Smallest plaintext taken for a Demand or Confirm Active PDU: a Share Control header, the
/// share id, source descriptor and the mandatory capability sets (General alone is 24
/// bytes, Bitmap 28, Order 88) are well above it, while Set Error Info (22 bytes) and the
/// finalization PDUs (22-26 bytes) are below.
const CAPABILITIES_MIN_LEN: usize = 100;

/// Certificates kept per thread: a server sends the same certificate on every connection.
const CERT_CACHE_ENTRIES: usize = 16;

thread_local! {
    /// The summaries of the certificates this thread saw last (each analysing thread its
    /// own, so parallel workers share nothing; bounded by [`CERT_CACHE_ENTRIES`]).
    static CERTS: std::cell::RefCell<tls::CertCache> =
        std::cell::RefCell::new(tls::CertCache::new(CERT_CACHE_ENTRIES));
}

impl Session {
    /// A complete TPKT packet.
    pub(super) fn tpkt_pdu(&mut self, dir: Dir, pdu: &[u8], frame: FrameRef) {
        let Some(payload) = tpkt::tpkt_payload(pdu) else {
            return;
        };
        match x224::parse_tpdu(payload) {
            Ok(Tpdu::ConnectionRequest(cr)) if dir == Dir::ToServer => {
                self.details.rdp_by_content = true;
                let n = &mut self.details.nego;
                match cr.routing {
                    Some(RoutingInfo::Cookie(c)) => n.cookie = Some(c.to_string()),
                    Some(RoutingInfo::RoutingToken(t)) | Some(RoutingInfo::Other(t)) => {
                        n.routing_token = Some(t.to_string())
                    }
                    None => {}
                }
                n.requested = Some(cr.requested());
                n.has_neg_req = cr.neg_req.is_some();
                n.request_flags = cr
                    .neg_req
                    .map(|r| nego::req_flags::names(r.flags))
                    .unwrap_or_default();
                n.correlation_id = cr
                    .correlation_id
                    .map(|id| id.iter().map(|b| format!("{b:02x}")).collect());
                n.request_frame.get_or_insert(frame);
                let kind = EventKind::X224Request {
                    requested: cr.requested(),
                    has_neg_req: cr.neg_req.is_some(),
                };
                self.push(frame, Some(dir), kind);
            }
            Ok(Tpdu::ConnectionConfirm(neg)) if dir == Dir::ToClient => {
                let n = &mut self.details.nego;
                n.confirm_frame.get_or_insert(frame);
                match neg {
                    Some(NegResult::Response { flags, selected }) => {
                        n.selected = Some(selected);
                        n.response_flags = nego::rsp_flags::names(flags);
                        if selected.uses_tls() {
                            for s in &mut self.streams {
                                if matches!(s.mode, Mode::Rdp | Mode::Start) {
                                    s.mode = Mode::Tls;
                                }
                            }
                        }
                    }
                    Some(NegResult::Failure(code)) => n.failure = Some(code),
                    None => n.legacy_confirm = true,
                }
                self.push(frame, Some(dir), EventKind::X224Confirm { neg });
            }
            Ok(Tpdu::Data(user_data)) => self.mcs_pdu(dir, user_data, frame),
            Ok(Tpdu::DisconnectRequest(_)) => {
                self.details.mcs.x224_disconnect.get_or_insert((dir, frame));
                self.push(frame, Some(dir), EventKind::X224Disconnect);
            }
            Ok(other) => {
                let what = format!("x224 tpdu {other:?} from the {}", dir.sender());
                self.push(frame, Some(dir), EventKind::Malformed { what });
            }
            Err(e) => self.push(
                frame,
                Some(dir),
                EventKind::Malformed {
                    what: e.to_string(),
                },
            ),
        }
    }

    fn push_first(&mut self, frame: FrameRef, dir: Dir, name: &'static str) {
        let seen = self
            .timeline
            .iter()
            .any(|e| e.dir == Some(dir) && e.kind == EventKind::McsDomain { name });
        if !seen {
            self.push(frame, Some(dir), EventKind::McsDomain { name });
        }
    }

    /// The user data of an X.224 Data TPDU (MCS).
    fn mcs_pdu(&mut self, dir: Dir, user_data: &[u8], frame: FrameRef) {
        self.details.mcs.slowpath_pdus[dir.index()] += 1;
        let pdu = match mcs::parse_mcs(user_data) {
            Ok(p) => p,
            Err(e) => {
                if self.details.mcs.connect_response.is_none() {
                    self.push(
                        frame,
                        Some(dir),
                        EventKind::Malformed {
                            what: e.to_string(),
                        },
                    );
                }
                return;
            }
        };
        match pdu {
            McsPdu::ConnectInitial(ci) => {
                self.details.mcs.connect_initial = Some(ci);
                self.push(frame, Some(dir), EventKind::McsConnectInitial);
            }
            McsPdu::ConnectResponse(cr) => {
                let result = cr.result;
                self.details.mcs.connect_response = Some(cr);
                self.fastpath_allowed = true;
                self.push(frame, Some(dir), EventKind::McsConnectResponse { result });
            }
            McsPdu::ErectDomainRequest => self.push_first(frame, dir, "Erect Domain Request"),
            McsPdu::AttachUserRequest => self.push_first(frame, dir, "Attach User Request"),
            McsPdu::AttachUserConfirm { .. } => self.push_first(frame, dir, "Attach User Confirm"),
            McsPdu::ChannelJoinRequest { .. } => {
                self.push_first(frame, dir, "Channel Join Request")
            }
            McsPdu::ChannelJoinConfirm { .. } => {
                self.details.mcs.channel_joins += 1;
                self.push_first(frame, dir, "Channel Join Confirm");
            }
            McsPdu::DisconnectProviderUltimatum { reason } => {
                self.details
                    .mcs
                    .disconnect
                    .get_or_insert((dir, reason, frame));
                self.push(frame, Some(dir), EventKind::McsDisconnect { reason });
            }
            McsPdu::SendDataRequest {
                user_data,
                channel_id,
                ..
            }
            | McsPdu::SendDataIndication {
                user_data,
                channel_id,
                ..
            } => self.send_data(dir, channel_id, user_data, frame),
            McsPdu::Other(_) => {}
        }
    }

    /// MCS Send Data user data. Under Standard RDP Security every PDU has a security header
    /// whose flags tell Security Exchange, Client Info and licensing apart; under Enhanced RDP
    /// Security (TLS, decrypted) only Client Info, licensing, auto-detect and multitransport
    /// PDUs have one, the rest start with a bare Share Control header. Static virtual
    /// channel data (clipboard, sound, drives...) carries none of the connection sequence
    /// and is not read as if it did.
    fn send_data(&mut self, dir: Dir, channel_id: u16, user_data: &[u8], frame: FrameRef) {
        let enhanced = self.details.nego.selected.is_some_and(|p| p.uses_tls());
        if dir == Dir::ToClient && self.details.mcs.client_info.is_some() {
            self.details.mcs.server_pdus_after_info += 1;
        }
        let virtual_channel = self.details.mcs.connect_response.as_ref().is_some_and(|r| {
            r.channel_ids.contains(&channel_id) && r.io_channel != Some(channel_id)
        });
        if virtual_channel {
            return;
        }
        if enhanced && mcs::is_share_control(user_data) {
            self.share_control(dir, user_data, frame);
            return;
        }
        let Some(flags) = mcs::security_flags(user_data) else {
            return;
        };
        let m = &mut self.details.mcs;
        if flags & mcs::sec_flags::SEC_EXCHANGE_PKT != 0 {
            if m.security_exchange.is_none() {
                m.security_exchange = Some(frame);
                self.push(frame, Some(dir), EventKind::SecurityExchange);
            }
        } else if flags & mcs::sec_flags::SEC_INFO_PKT != 0 {
            if m.client_info.is_none() {
                m.client_info = Some(frame);
                self.push(frame, Some(dir), EventKind::ClientInfo);
            }
        } else if flags & mcs::sec_flags::SEC_LICENSE_PKT != 0 {
            m.licensing_pdus += 1;
            let error = mcs::parse_license_error(user_data);
            if let Some(e) = error {
                m.license_error.get_or_insert(e);
            }
            if m.licensing_pdus == 1 || error.is_some() {
                self.push(frame, Some(dir), EventKind::Licensing { error });
            }
        } else if flags & NOT_SHARE_CONTROL == 0 && !enhanced {
            if let Some(sc) = user_data.get(4..) {
                self.share_control(dir, sc, frame);
            }
        } else if flags & (NOT_SHARE_CONTROL | mcs::sec_flags::SEC_REDIRECTION_PKT)
            == mcs::sec_flags::SEC_ENCRYPT
            && !enhanced
        {
            self.encrypted_pdu(dir, user_data, frame);
        }
    }

    /// An encrypted Standard RDP Security PDU after Client Info, placed in the connection
    /// sequence by its order and size (RC4 keeps lengths; MS-RDPBCGR 1.3.1.1): the server's
    /// first capability-set-sized PDU is its Demand Active, the client's next one its Confirm
    /// Active, and whatever the client sends after that its connection finalization
    /// (Synchronize, 22 bytes; Control and Font List, 26 bytes each), sent without waiting.
    fn encrypted_pdu(&mut self, dir: Dir, user_data: &[u8], frame: FrameRef) {
        let m = &mut self.details.mcs;
        if m.client_info.is_none() {
            return;
        }
        let fips = m
            .connect_response
            .as_ref()
            .and_then(|c| c.server_security.as_ref())
            .is_some_and(|s| s.encryption_method == ENCRYPTION_METHOD_FIPS);
        let Some(len) = mcs::encrypted_plaintext_len(user_data, fips) else {
            return;
        };
        let name = match dir {
            Dir::ToClient if m.demand_active.is_none() && len >= CAPABILITIES_MIN_LEN => {
                m.demand_active = Some(frame);
                m.capabilities_inferred = true;
                "Demand Active"
            }
            Dir::ToServer
                if m.demand_active.is_some()
                    && m.confirm_active.is_none()
                    && len >= CAPABILITIES_MIN_LEN =>
            {
                m.confirm_active = Some(frame);
                m.capabilities_inferred = true;
                "Confirm Active"
            }
            Dir::ToServer if m.confirm_active.is_some() && m.finalization.is_none() => {
                m.finalization = Some(frame);
                m.finalization_inferred = true;
                match len {
                    22 => "Synchronize",
                    26 => "Control or Font List",
                    _ => "finalization or session data",
                }
            }
            _ => return,
        };
        self.push(frame, Some(dir), EventKind::InferredPdu { name, len });
    }

    /// A clear or decrypted Share Control PDU: Demand/Confirm Active, Deactivate All,
    /// Server Redirection, and the Set Error Info data PDU.
    fn share_control(&mut self, dir: Dir, pdu: &[u8], frame: FrameRef) {
        let Some(sc) = mcs::parse_share_control(pdu) else {
            return;
        };
        let m = &mut self.details.mcs;
        let first = |slot: &mut Option<FrameRef>| slot.replace(slot.unwrap_or(frame)).is_none();
        match sc.pdu_type {
            mcs::pdu_type::DEMAND_ACTIVE if dir == Dir::ToClient => {
                if first(&mut m.demand_active) {
                    let name = "Demand Active";
                    self.push(frame, Some(dir), EventKind::ShareControl { name });
                }
            }
            mcs::pdu_type::CONFIRM_ACTIVE if dir == Dir::ToServer => {
                if first(&mut m.confirm_active) {
                    let name = "Confirm Active";
                    self.push(frame, Some(dir), EventKind::ShareControl { name });
                }
            }
            mcs::pdu_type::DEACTIVATE_ALL if dir == Dir::ToClient => {
                if first(&mut m.deactivate_all) {
                    let name = "Deactivate All";
                    self.push(frame, Some(dir), EventKind::ShareControl { name });
                }
            }
            mcs::pdu_type::SERVER_REDIRECT if dir == Dir::ToClient => {
                let target = mcs::parse_redirection(pdu).filter(|_| m.redirection.is_none());
                if let Some(target) = target {
                    m.redirection = Some((frame, target.clone()));
                    self.push(frame, Some(dir), EventKind::ServerRedirection { target });
                }
            }
            mcs::pdu_type::DATA
                if sc.pdu_type2.and_then(mcs::finalization::name).is_some()
                    && (m.demand_active.is_some() || m.confirm_active.is_some()) =>
            {
                let name = sc
                    .pdu_type2
                    .and_then(mcs::finalization::name)
                    .unwrap_or("finalization");
                m.finalization.get_or_insert(frame);
                if dir == Dir::ToClient && sc.pdu_type2 == Some(mcs::finalization::FONTMAP) {
                    m.font_map.get_or_insert(frame);
                }
                let seen = self
                    .timeline
                    .iter()
                    .any(|e| e.dir == Some(dir) && e.kind == EventKind::ShareControl { name });
                if !seen {
                    self.push(frame, Some(dir), EventKind::ShareControl { name });
                }
            }
            _ => {
                let enhanced = self.details.nego.selected.is_some_and(|p| p.uses_tls());
                let m = &mut self.details.mcs;
                // Windows sends ERRINFO_NONE during sessions ("SHOULD be ignored"): under
                // Enhanced RDP Security it is skipped, so the real code before the disconnect
                // is the one reported.
                let code = sc.error_info.filter(|c| *c != 0 || !enhanced);
                if let (Some(code), Dir::ToClient) = (code, dir) {
                    // ERRINFO_NONE "SHOULD be ignored": a later real code replaces it.
                    if m.set_error_info.map_or(true, |c| c == 0) {
                        m.set_error_info = Some(code);
                    }
                    self.push(frame, Some(dir), EventKind::SetErrorInfo { code });
                }
            }
        }
    }

    /// A fast-path PDU (its body is never needed).
    pub(super) fn fastpath_pdu(&mut self, dir: Dir, frame: FrameRef) {
        let n = &mut self.details.mcs.fastpath_pdus[dir.index()];
        *n += 1;
        if *n == 1 {
            self.push(frame, Some(dir), EventKind::FastPath);
        }
    }

    /// A complete TLS record.
    pub(super) fn tls_record(&mut self, dir: Dir, rec: &[u8], frame: FrameRef) {
        let Some(h) = tls::parse_record_header(rec) else {
            return;
        };
        if self.decrypt_record(dir, rec, h, frame) {
            return;
        }
        let body = rec.get(tls::RECORD_HEADER_LEN..).unwrap_or_default();
        let d = dir.index();
        match h.content_type {
            content_type::HANDSHAKE if self.details.tls.ccs[d].is_none() => {
                self.handshake_bytes(dir, body, frame)
            }
            content_type::CHANGE_CIPHER_SPEC => {
                if self.details.tls.ccs[d].is_none() {
                    self.details.tls.ccs[d] = Some(frame);
                    self.push(frame, Some(dir), EventKind::ChangeCipherSpec);
                }
            }
            content_type::ALERT if body.len() == 2 => self.alert_record(dir, body, h.len, frame),
            _ => self.tls_record_meta(dir, h.content_type, h.len, frame),
        }
    }

    /// A clear (or decrypted) alert record of `len` bytes on the wire.
    pub(super) fn alert_record(&mut self, dir: Dir, body: &[u8], len: u16, frame: FrameRef) {
        let alert = tls::parse_alert(body);
        if let Some(a) = alert {
            self.details.tls.alerts.push(AlertRecord {
                frame,
                from: dir.sender(),
                level: tls::alert_level_name(a.level).to_string(),
                description: tls::alert_description_name(a.description).to_string(),
                code: Some(a.description),
            });
        }
        self.push(frame, Some(dir), EventKind::Alert { alert, len });
    }

    /// A TLS record known only by type and length (encrypted or skipped).
    pub(super) fn tls_record_meta(&mut self, dir: Dir, ctype: u8, len: u16, frame: FrameRef) {
        let d = dir.index();
        let t = &mut self.details.tls;
        if t.record_log.len() < MAX_RECORD_LOG {
            t.record_log.push(RecordLog {
                dir,
                frame,
                content_type: ctype,
                len,
            });
        }
        match ctype {
            content_type::APPLICATION_DATA => {
                t.app_records[d] += 1;
                t.app_bytes[d] += u64::from(len);
                t.last_app[d] = Some(frame);
                t.last_app_len[d] = len;
                if t.first_app[d].is_none() {
                    t.first_app[d] = Some(frame);
                    self.push(frame, Some(dir), EventKind::FirstAppData { len });
                }
            }
            content_type::HANDSHAKE => {
                let first = !self
                    .timeline
                    .iter()
                    .any(|e| e.dir == Some(dir) && e.kind == EventKind::EncryptedHandshake);
                if first {
                    self.push(frame, Some(dir), EventKind::EncryptedHandshake);
                }
            }
            content_type::ALERT => {
                t.alerts.push(AlertRecord {
                    frame,
                    from: dir.sender(),
                    level: "encrypted".into(),
                    description: "encrypted".into(),
                    code: None,
                });
                self.push(frame, Some(dir), EventKind::Alert { alert: None, len });
            }
            _ => {}
        }
    }

    /// Plaintext handshake bytes: defragmented across records, parsed message by message.
    pub(super) fn handshake_bytes(&mut self, dir: Dir, body: &[u8], frame: FrameRef) {
        let d = dir.index();
        let hs = &mut self.streams[d].hs_buf;
        if hs.len() + body.len() > tls::MAX_HANDSHAKE_LEN {
            hs.clear();
            self.malformed(
                dir,
                frame,
                "tls handshake message over the size limit".into(),
            );
            return;
        }
        hs.extend_from_slice(body);
        loop {
            let hs = &self.streams[d].hs_buf;
            let n = match tls::handshake_frame(hs) {
                Framing::Complete(n) => n,
                Framing::NeedMore(_) | Framing::NeedHeader => return,
                Framing::Invalid => {
                    self.malformed(dir, frame, "tls handshake header".into());
                    return;
                }
            };
            let parsed = CERTS.with(|c| tls::parse_handshake_cached(&hs[..n], &mut c.borrow_mut()));
            let msg_type = hs.first().copied().unwrap_or(0);
            self.handshake_transcript(d, n);
            self.streams[d].hs_buf.drain(..n);
            match parsed {
                Ok(msg) => self.handshake(dir, msg, msg_type, frame),
                Err(e) => self.push(
                    frame,
                    Some(dir),
                    EventKind::Malformed {
                        what: e.to_string(),
                    },
                ),
            }
        }
    }

    fn handshake(&mut self, dir: Dir, msg: Handshake, msg_type: u8, frame: FrameRef) {
        let t = &mut self.details.tls;
        let kind = match msg {
            Handshake::ClientHello(ch) => {
                t.client_hello.get_or_insert(ch);
                t.hello_frames[0].get_or_insert(frame);
                EventKind::ClientHello
            }
            Handshake::ServerHello(sh) => {
                let kind = EventKind::ServerHello {
                    version: sh.version,
                    cipher: sh.cipher_suite,
                };
                t.server_hello = Some(sh);
                t.hello_frames[1].get_or_insert(frame);
                kind
            }
            Handshake::Certificate(chain) => {
                let count = chain.len();
                if t.certificates.is_empty() {
                    t.certificates = chain;
                }
                t.hello_frames[2].get_or_insert(frame);
                EventKind::Certificate { count }
            }
            Handshake::Finished if t.is_tls13() => {
                self.crypt[dir.index()].switch_pending = true;
                EventKind::Handshake { msg_type }
            }
            Handshake::ServerHelloDone => {
                t.hello_frames[3].get_or_insert(frame);
                EventKind::Handshake { msg_type }
            }
            _ => EventKind::Handshake { msg_type },
        };
        self.push(frame, Some(dir), kind);
    }
}
