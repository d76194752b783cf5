//! The furthest phase a connection reached, seen or inferred from encrypted traffic.

use super::verdict::Phase;
use crate::flow::{ConnMeta, TcpStats};
use crate::session::SessionRecord;

/// Server-to-client TLS application bytes above which an encrypted connection is taken to
/// have reached the session (CredSSP and the connection sequence are far smaller).
pub const SESSION_BYTES_S2C: u64 = 16 * 1024;
/// Application data records (both directions) needed as well.
pub const SESSION_RECORDS: u64 = 16;
/// Client records that alone show the connection got past CredSSP into the session
/// (with [`SESSION_SERVER_RECORDS`] from the server), even when bulk data moved to UDP.
pub const SESSION_CLIENT_RECORDS: u64 = 10;
/// Client records CredSSP takes at most (NTLM: negotiate, authenticate, credentials).
pub const CREDSSP_MAX_CLIENT: u64 = 5;
/// Server records CredSSP takes at most (challenge, public key, Early User Authorization).
pub const CREDSSP_MAX_SERVER: u64 = 5;
/// Server records needed with [`SESSION_CLIENT_RECORDS`].
pub const SESSION_SERVER_RECORDS: u64 = 10;

/// The furthest phase and whether it was inferred rather than seen.
pub fn furthest_phase(meta: &ConnMeta, tcp: &TcpStats, s: &SessionRecord) -> (Phase, bool) {
    // Through an RD Gateway: the tunnelled RDP connection's phase.
    if let Some(inner) = s.details.gateway.as_ref().and_then(|g| g.inner.as_deref()) {
        return furthest_phase(meta, tcp, inner);
    }
    let d = &s.details;
    let t = &d.tls;
    let m = &d.mcs;
    // The connection sequence after Client Info (MS-RDPBCGR 1.3.1.1), seen in clear
    // (Standard RDP Security), decrypted, or placed by order and size when RC4-encrypted:
    // licensing, then the capabilities exchange (Demand / Confirm Active), then the
    // connection finalization, which starts the session; fast-path PDUs are session data.
    if m.fastpath_pdus.iter().any(|n| *n > 0) {
        return (Phase::RdpSession, false);
    }
    if m.finalization.is_some() {
        return (Phase::RdpSession, m.finalization_inferred);
    }
    let app_total = t.app_records[0] + t.app_records[1];
    let tls_started = t.client_hello.is_some() || app_total > 0;
    let tls_up =
        t.established() || (t.client_hello.is_none() && t.app_records.iter().all(|n| *n > 0));
    // CredSSP takes a handful of records each way; the connection sequence after it
    // (MCS, channel joins, Client Info, licensing, capabilities) takes many more.
    let many_records = t.client_data_records() >= SESSION_CLIENT_RECORDS
        && t.server_data_records() >= SESSION_SERVER_RECORDS;
    // With every application record decrypted the sequence above is exact: no inference.
    let all_decrypted = d.decrypt.failures == 0
        && d.decrypt.decrypted()
        && (0..2).all(|i| d.decrypt.records.get(i) >= t.app_records.get(i));
    if tls_up
        && !all_decrypted
        && ((t.app_bytes[1] >= SESSION_BYTES_S2C && app_total >= SESSION_RECORDS) || many_records)
    {
        return (Phase::RdpSession, true);
    }
    if m.demand_active.is_some() || m.confirm_active.is_some() {
        return (Phase::Capabilities, m.capabilities_inferred);
    }
    if m.licensing_pdus > 0 {
        return (Phase::Licensing, false);
    }
    if m.connect_initial.is_some() || m.connect_response.is_some() {
        return (Phase::McsConnect, false);
    }
    let selected = d.nego.selected;
    if tls_up && t.client_data_records() > 0 {
        match selected {
            // More records than CredSSP needs (three or four each way, plus the Early User
            // Authorization Result): the connection sequence has begun.
            Some(p)
                if p.uses_credssp()
                    && (t.client_data_records() > CREDSSP_MAX_CLIENT
                        || t.server_data_records() > CREDSSP_MAX_SERVER) =>
            {
                return (Phase::McsConnect, true)
            }
            Some(p) if p.uses_credssp() => return (Phase::Credssp, false),
            // TLS without NLA: the client's first application data is the MCS Connect Initial.
            Some(_) => return (Phase::McsConnect, true),
            None => {}
        }
    }
    if tls_up {
        return (Phase::TlsEstablished, false);
    }
    if tls_started {
        return (Phase::TlsHandshake, false);
    }
    if d.nego.confirm_frame.is_some() {
        return (Phase::X224Confirm, false);
    }
    if d.nego.request_frame.is_some() {
        return (Phase::X224Request, false);
    }
    let both_ways = tcp.packets[0] > 0 && tcp.packets[1] > 0;
    if tcp.established.is_some()
        || (!meta.saw_syn && both_ways)
        || (!tcp.syn_ack.is_empty() && tcp.payload_bytes[0] > 0)
    {
        return (Phase::TcpEstablished, false);
    }
    (Phase::TcpSyn, false)
}
