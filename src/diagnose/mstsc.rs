//! What the Windows client (mstsc) most likely shows for a verdict: its disconnect reason
//! and, when the server's Set Error Info is known, the extended reason. Only mappings with a
//! documented basis are made; everything else is "unknown" rather than a guess.
//!
//! Sources: `IMsTscAxEvents::OnDisconnected` discReason table and `ExtendedDisconnectReasonCode`
//! (Microsoft Learn, termserv docs), whose extended values coincide with MS-RDPBCGR 2.2.5.1.1
//! errorInfo; the `SSL_ERR_*` family for CredSSP NTSTATUS codes as FreeRDP maps them
//! (`libfreerdp/core/nla.c`). See README "What the Windows client shows".

use serde::Serialize;

use crate::proto::codes;

/// The predicted client error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientError {
    /// Disconnect reason as mstsc prints it, e.g. "0x204".
    pub code: String,
    /// Its name in the discReason table.
    pub name: &'static str,
    /// Extended disconnect reason (the server's errorInfo), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extended: Option<String>,
}

fn err(code: u32, name: &'static str) -> ClientError {
    ClientError {
        code: format!("{code:#x}"),
        name,
        extended: None,
    }
}

/// The disconnect reason of a CredSSP error code (NTSTATUS), SSL_ERR_* family.
fn credssp_reason(status: u32) -> Option<ClientError> {
    Some(match status {
        0xC000_006D | 0xC000_006A => err(0x807, "SSL_ERR_LOGON_FAILURE"),
        0xC000_0064 => err(0xA07, "SSL_ERR_NO_SUCH_USER"),
        0xC000_0072 => err(0xB07, "SSL_ERR_ACCOUNT_DISABLED"),
        0xC000_006E => err(0xC07, "SSL_ERR_ACCOUNT_RESTRICTION"),
        0xC000_0234 => err(0xD07, "SSL_ERR_ACCOUNT_LOCKED_OUT"),
        0xC000_0193 => err(0xE07, "SSL_ERR_ACCOUNT_EXPIRED"),
        0xC000_0071 => err(0xF07, "SSL_ERR_PASSWORD_EXPIRED"),
        0xC000_0224 => err(0x1207, "SSL_ERR_PASSWORD_MUST_CHANGE"),
        _ => return None,
    })
}

/// Predicts what mstsc shows for a failed connection with `cause`; `credssp_error` is the
/// decrypted CredSSP errorCode and `error_info` the server's Set Error Info value, if known.
/// `None` for successes and for causes with no documented mapping.
pub fn client_error(
    cause: &str,
    credssp_error: Option<u32>,
    error_info: Option<u32>,
) -> Option<ClientError> {
    if let Some(e) = credssp_error.and_then(credssp_reason) {
        return Some(e);
    }
    let mut e = match cause {
        // The TCP connection could not be made.
        "no_answer_to_syn"
        | "port_closed"
        | "icmp_port_unreachable"
        | "icmp_host_unreachable"
        | "icmp_network_unreachable"
        | "icmp_admin_prohibited"
        | "icmp_unreachable"
        | "icmp_time_exceeded" => err(0x204, "Windows Sockets connect failed"),
        // The server closed an established connection, or disconnected with Set Error Info.
        "server_closed_after_accept"
        | "server_closed_after_x224_request"
        | "server_closed_after_client_hello"
        | "server_closed_during_setup"
        | "session_reset_by_server"
        | "server_error_info" => err(0x904, "Socket closed"),
        "licensing_failed" => err(0x808, "licensing failed"),
        _ => return None,
    };
    if let Some(code) = error_info.filter(|c| *c != 0) {
        e.extended = Some(format!(
            "{code:#x} {}",
            codes::error_info_name(code).unwrap_or("unknown")
        ));
    }
    Some(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_mappings_only() {
        assert_eq!(
            client_error("port_closed", None, None).unwrap().code,
            "0x204"
        );
        let e = client_error("server_error_info", None, Some(7)).unwrap();
        assert_eq!(
            (e.code.as_str(), e.extended.as_deref()),
            ("0x904", Some("0x7 ERRINFO_SERVER_DENIED_CONNECTION"))
        );
        assert_eq!(
            client_error("nla_account_restricted", Some(0xC000_006E), None)
                .unwrap()
                .code,
            "0xc07"
        );
        assert_eq!(
            client_error("neg_failure_hybrid_required_by_server", None, None),
            None
        );
        assert_eq!(client_error("session_closed_by_client", None, None), None);
    }
}
