//! Rules for what only decryption shows: CredSSP error codes, the Early User Authorization
//! Result, Server Redirection, and a server-ended session whose reason is now visible.
//! Set Error Info and licensing errors, once decrypted, are judged by the session rules.

use super::{side, Ctx, Decision};
use crate::diagnose::verdict::{Confidence, End, EndedBy, Outcome, Phase};
use crate::flow::Dir;
use crate::proto::{codes, credssp};
use crate::session::EventKind;

/// The cause code of a CredSSP errorCode (NTSTATUS / SSPI HRESULT).
pub(super) fn credssp_cause(code: u32) -> &'static str {
    match code {
        // STATUS_LOGON_FAILURE, STATUS_WRONG_PASSWORD, STATUS_NO_SUCH_USER.
        0xC000_006D | 0xC000_006A | 0xC000_0064 => "nla_logon_failure",
        // STATUS_ACCOUNT_RESTRICTION, STATUS_INVALID_LOGON_HOURS, STATUS_INVALID_WORKSTATION.
        0xC000_006E..=0xC000_0070 => "nla_account_restricted",
        0xC000_0234 => "nla_account_locked_out",
        // STATUS_PASSWORD_EXPIRED, STATUS_PASSWORD_MUST_CHANGE.
        0xC000_0071 | 0xC000_0224 => "nla_password_expired",
        // STATUS_ACCOUNT_DISABLED, STATUS_ACCOUNT_EXPIRED.
        0xC000_0072 | 0xC000_0193 => "nla_account_disabled",
        0xC000_015B => "nla_logon_type_not_granted",
        // SEC_E_UNSUPPORTED_FUNCTION.
        0x8009_0302 => "nla_ntlm_rejected",
        _ => "nla_error",
    }
}

fn close_end(cx: &Ctx<'_>) -> End {
    match cx.first_close() {
        Some((_, _, e)) => e,
        None => cx.open_end().1,
    }
}

/// Decides from decrypted facts, when there are any.
pub(super) fn decide(cx: &mut Ctx<'_>) -> Option<Decision> {
    let det = &cx.r.session.details;
    if !det.decrypt.decrypted() {
        return None;
    }
    let c = &det.credssp;
    if let (Some(code), Some((dir, f))) = (c.error_code, c.error_frame) {
        cx.ev_first(|e| matches!(e.kind, EventKind::X224Confirm { .. }));
        if let Some(cred) = c.credentials_frame {
            cx.ev(
                cred,
                "client: CredSSP TSRequest with credentials (authInfo)",
            );
        } else {
            cx.ev_first(|e| {
                e.dir == Some(Dir::ToServer)
                    && matches!(
                        e.kind,
                        EventKind::CredsspRequest {
                            token: Some(credssp::AuthToken::Ntlm(3)),
                            ..
                        }
                    )
            });
        }
        cx.ev_first(|e| {
            matches!(
                e.kind,
                EventKind::CredsspRequest {
                    error_code: Some(_),
                    ..
                }
            )
        });
        cx.key = Some(f.number);
        cx.ev_close();
        let name = codes::ntstatus_name(code).unwrap_or("an unknown code");
        let cause = credssp_cause(code);
        let pkg = c.auth_package.unwrap_or("an unidentified package");
        let why = match cause {
            "nla_logon_failure" => "the user name or password is wrong",
            "nla_account_restricted" => "an account restriction forbids this logon (Protected Users group, logon hours, allowed workstations, or a blank password)",
            "nla_account_locked_out" => "the account is locked out",
            "nla_password_expired" => "the password has expired or must be changed",
            "nla_account_disabled" => "the account is disabled or expired",
            "nla_logon_type_not_granted" => "the user lacks the right to log on through Remote Desktop Services",
            "nla_ntlm_rejected" if pkg == "NTLM" => "the server refuses NTLM authentication (inbound NTLM restricted, or the account may only use Kerberos)",
            "nla_ntlm_rejected" => "the server does not support the requested function (a CredSSP version or NTLM policy mismatch)",
            _ => "authentication failed",
        };
        let summary = format!(
            "NLA failed: the {} sent CredSSP errorCode {name} ({code:#010x}) after {pkg} authentication: {why}",
            dir.sender()
        );
        return Some(cx.decide(
            cause,
            Outcome::Failure,
            side(dir),
            close_end(cx),
            Confidence::Certain,
            summary,
        ));
    }
    if let (Some(result), Some(f)) = (c.early_user_auth, c.early_user_auth_frame) {
        if result != 0 {
            cx.ev_first(|e| matches!(e.kind, EventKind::X224Confirm { .. }));
            if let Some(cred) = c.credentials_frame {
                cx.ev(
                    cred,
                    "client: CredSSP TSRequest with credentials (authInfo)",
                );
            }
            cx.ev(
                f,
                format!(
                    "server: Early User Authorization Result {} ({result:#x})",
                    credssp::early_user_auth_name(result)
                ),
            );
            cx.key = Some(f.number);
            cx.ev_close();
            let summary = format!(
                "the credentials were accepted but the server denied the user access with Early User Authorization Result {} ({result:#x}): the user may not log on through Remote Desktop",
                credssp::early_user_auth_name(result)
            );
            return Some(cx.decide(
                "authorization_denied",
                Outcome::Failure,
                EndedBy::Server,
                close_end(cx),
                Confidence::Certain,
                summary,
            ));
        }
    }
    let m = &det.mcs;
    if let Some((f, target)) = &m.redirection {
        cx.ev_first(|e| matches!(e.kind, EventKind::X224Confirm { .. }));
        cx.ev_first(|e| matches!(e.kind, EventKind::ServerRedirection { .. }));
        cx.key = Some(f.number);
        cx.ev_close();
        let to = target
            .as_deref()
            .unwrap_or("another server (no target named)");
        let summary = format!(
            "the server redirected the client to {to} (Server Redirection PDU); the outcome is on the connection to the target"
        );
        return Some(cx.decide(
            "server_redirected",
            Outcome::Incomplete,
            EndedBy::Server,
            close_end(cx),
            Confidence::Certain,
            summary,
        ));
    }
    // A server-ended session without Set Error Info: the reason is no longer "encrypted".
    if cx.phase == Phase::RdpSession && m.set_error_info.is_none() {
        let licensed = m.license_error.map_or(true, |(code, _)| code == 7);
        if let (Some((Dir::ToClient, reason, f)), true) = (m.disconnect, licensed) {
            cx.ev_first(|e| e.kind == EventKind::ClientInfo);
            if let Some(da) = m.deactivate_all.filter(|da| da.number <= f.number) {
                cx.ev(da, "server: Deactivate All PDU");
            }
            cx.ev(
                f,
                format!(
                    "server: MCS Disconnect Provider Ultimatum ({})",
                    codes::mcs_reason_name(reason)
                ),
            );
            cx.key = Some(f.number);
            cx.ev_close();
            let dur = cx.last_frame().ts.nanos_since(cx.r.meta.first.ts);
            let summary = format!(
                "the session ran {} and the server ended it with an MCS Disconnect Provider Ultimatum ({}) without a Set Error Info PDU (decrypted: no reason given)",
                super::secs(dur),
                codes::mcs_reason_name(reason)
            );
            return Some(cx.decide(
                "session_ended_by_server",
                Outcome::Incomplete,
                EndedBy::Server,
                End::McsDisconnect,
                Confidence::Certain,
                summary,
            ));
        }
    }
    None
}

/// Notes about decryption for the report (never any secret).
pub(super) fn notes(cx: &mut Ctx<'_>) {
    let d = &cx.r.session.details.decrypt;
    if let Some(why) = &d.unusable {
        cx.notes.push(format!(
            "keys for this connection were found but not used: {why}"
        ));
    }
    if let Some((dir, f, why)) = &d.first_failure {
        cx.notes.push(format!(
            "{} TLS record(s) could not be decrypted, the first from the {} in frame {}: {why}",
            d.failures,
            dir.sender(),
            f.number
        ));
    }
}
