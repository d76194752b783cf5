//! The cause codes and their remedies: one table, the single source for code, README and
//! reports. Codes are stable: scripts match on them.

/// A cause code with its generic one-line meaning and the remedy an administrator can act on.
pub struct CauseInfo {
    /// snake_case code.
    pub code: &'static str,
    /// What the cause means in general.
    pub meaning: &'static str,
    /// What to do.
    pub remedy: &'static str,
}

macro_rules! causes {
    ($($code:literal => $meaning:literal, $remedy:literal;)*) => {
        /// Every cause rdpdiag can report.
        pub const CAUSES: &[CauseInfo] = &[$(CauseInfo { code: $code, meaning: $meaning, remedy: $remedy }),*];
    };
}

causes! {
    "no_answer_to_syn" => "the server never answered the TCP SYN",
    "Check that the server is up and reachable, that TCP 3389 (or the configured port) is allowed by every firewall on the path and on the host (Windows Defender Firewall rule 'Remote Desktop - User Mode (TCP-In)'), and that the address and port are right; test with 'Test-NetConnection HOST -Port 3389' or 'psping HOST:3389'.";
    "port_closed" => "the server host refused the connection (RST to the SYN): nothing listens on the port",
    "Enable Remote Desktop on the server (fDenyTSConnections=0), check that the TermService service runs and listens ('netstat -ano | findstr 3389', 'qwinsta' shows rdp-tcp Listen), and that the client uses the port the listener is configured for (PortNumber under ...\\WinStations\\RDP-Tcp).";
    "icmp_port_unreachable" => "an ICMP port-unreachable came back for the connection: a host or firewall rejected it",
    "A firewall rejects TCP 3389 with ICMP (e.g. an iptables REJECT rule) or nothing listens: allow the port on the firewall named by the ICMP sender, or start the RDP listener.";
    "icmp_host_unreachable" => "a router reported the server host unreachable",
    "The server is down or not reachable from the router that sent the ICMP error: check the host, its ARP/neighbour entry and the route towards it.";
    "icmp_network_unreachable" => "a router has no route to the server's network",
    "Fix routing (VPN, static routes, default gateway) between the client and the server's network; the ICMP sender is the router without a route.";
    "icmp_admin_prohibited" => "a firewall explicitly prohibited the connection (ICMP administratively prohibited)",
    "A firewall or ACL on the path blocks RDP: allow TCP 3389 from the client's address on the device that sent the ICMP error.";
    "icmp_unreachable" => "an ICMP destination-unreachable error ended the connection",
    "Check routing and firewalls at the device that sent the ICMP error for traffic to the server's RDP port.";
    "icmp_time_exceeded" => "the packets looped or exceeded their hop limit (ICMP time exceeded)",
    "Look for a routing loop between the client and the server near the router that sent the ICMP error.";
    "handshake_not_completed" => "the server answered the SYN but the client never completed the TCP handshake",
    "Usually a half-open port scan. If a real client was connecting, a firewall on the client's side drops the server's SYN+ACK: check asymmetric routing and stateful firewalls on the return path.";
    "client_closed_without_request" => "the client connected and closed without sending an RDP request",
    "Typical of port checks and load-balancer health probes; nothing to fix unless a real client was expected here.";
    "not_rdp_client" => "the client did not speak RDP: its first bytes are not an X.224 Connection Request",
    "Another protocol or a scanner was sent to the RDP port; nothing to fix on the RDP server unless the client is yours, in which case point it at the right service.";
    "server_closed_after_accept" => "the server accepted the TCP connection and closed it before any RDP exchange",
    "Something other than a healthy RDP listener owns the port, or the host drops connections at once (connection limit, IP restriction, crashing service): check the service on the port and the server's event logs (TerminalServices-RemoteConnectionManager).";
    "not_rdp_service" => "the server answered with bytes that are not RDP: another service listens on the port",
    "Another program owns the port (see 'netstat -ano' on the server) or the client targets the wrong port: move the other service or point the client at the RDP listener's port.";
    "server_closed_after_x224_request" => "the server closed the connection on receiving the X.224 Connection Request",
    "The RDP listener rejected the request before negotiating: check the listener's security layer and certificate configuration, the connection limits and IP restrictions, and the server's RemoteDesktopServices event logs; an RD Gateway/load balancer in front may also drop unknown cookies or routing tokens.";
    "server_silent_after_x224_request" => "the server never answered the X.224 Connection Request",
    "The listener accepted the TCP connection but RDP did not respond: the Remote Desktop Services service may be hung (restart TermService), or a middlebox swallows the request; check the server's event logs.";
    "neg_failure_ssl_required_by_server" => "the server requires TLS (or CredSSP) but the client asked for Standard RDP Security only",
    "Let the client negotiate TLS/NLA (mstsc does by default; FreeRDP: /sec:tls or /sec:nla), or, if the server is meant to allow legacy clients, set its security layer to Negotiate.";
    "neg_failure_ssl_not_allowed_by_server" => "the server allows only Standard RDP Security but the client asked for TLS/NLA only",
    "Set the server's security layer to Negotiate or SSL (GPO 'Require use of specific security layer for remote (RDP) connections', or xrdp security_layer=negotiate), or allow the client to fall back to RDP security (FreeRDP: /sec:rdp).";
    "neg_failure_ssl_cert_not_on_server" => "the server has no certificate for TLS",
    "Give the RDP listener a valid certificate (delete the broken self-signed one in 'Remote Desktop' certificate store and restart TermService, or fix SSLCertificateSHA1Hash), and check MachineKeys permissions.";
    "neg_failure_inconsistent_flags" => "the server found the client's negotiation flags inconsistent",
    "Update the client; if a proxy or gateway rewrites the X.224 request, check its configuration.";
    "neg_failure_hybrid_required_by_server" => "the server requires Network Level Authentication (CredSSP) but the client did not offer it",
    "Use a client with NLA enabled (mstsc: 'enablecredsspsupport:i:1'; FreeRDP: /sec:nla), or disable 'Require user authentication for remote connections by using Network Level Authentication' on the server.";
    "neg_failure_ssl_with_user_auth_required_by_server" => "the server requires TLS with client certificate authentication",
    "Configure the client with a certificate for authentication, or relax the server's security layer requirement.";
    "server_selected_unrequested_protocol" => "the server selected a security protocol the client had not offered, and the client gave up",
    "Align the security layer: a server set to Standard RDP Security only (xrdp security_layer=rdp, or the 'RDP' security layer policy) picks it even when the client offers only TLS/NLA; set the server to Negotiate/TLS or let the client use RDP security (FreeRDP: /sec:rdp).";
    "neg_failure_unknown" => "the server refused the negotiation with an unknown failure code",
    "Check the server's RDP security settings and event logs; the failure code is in the evidence.";
    "tls_version_mismatch" => "client and server have no TLS version in common",
    "Enable a common TLS version: on old servers install TLS 1.1/1.2 support for RDP (Windows 2008 R2: KB3080079) or re-enable TLS 1.0 under SCHANNEL\\Protocols; on the client allow the server's version (FreeRDP: /tls-seclevel:0 for old versions).";
    "tls_no_shared_cipher" => "client and server have no TLS cipher suite in common",
    "Align cipher suites: check the 'SSL Cipher Suite Order' policy and SCHANNEL cipher registry keys on the server, and the client's cipher list (FreeRDP /tls-ciphers); very old servers only offer RSA/CBC suites.";
    "certificate_rejected_by_client" => "the client rejected the server's certificate",
    "Give the server a certificate the clients trust (issued by the domain CA, name matching what users type), or have the user accept it; check expiry and the subject/issuer shown in the certificate details.";
    "tls_alert_from_server" => "the server aborted the TLS handshake with an alert",
    "See the alert description: check the server's SCHANNEL configuration (protocols, ciphers, certificate and its private key) and the System event log for SCHANNEL errors.";
    "tls_alert_from_client" => "the client aborted the TLS handshake with an alert",
    "See the alert description: the client did not accept the server's TLS parameters or certificate.";
    "server_closed_after_client_hello" => "the server closed the connection on receiving the TLS ClientHello",
    "The server could not start TLS: typically its certificate or private key is missing or unreadable (MachineKeys permissions, expired or corrupt self-signed certificate) or no TLS version/cipher matches; check SCHANNEL events and the RDP certificate.";
    "client_closed_during_tls_handshake" => "the client gave up during the TLS handshake",
    "The client did not accept the server's TLS parameters or certificate; compare the offered and chosen versions and ciphers in the details.";
    "client_closed_after_tls_handshake" => "the client closed right after the TLS handshake without sending anything",
    "Typical of certificate checks and scanners; for a real client, the server's certificate was not trusted (name mismatch, unknown CA, expired) or its NLA/CredSSP settings do not match.";
    "nla_authentication_failed" => "NLA (CredSSP) authentication failed: the server ended the connection after the client's credentials",
    "Check the user name and password, whether the account is locked, disabled or expired, or must change its password, and that the user may log on through Remote Desktop Services; the server's Security log (event 4625) names the reason. Decrypting with a key log shows the CredSSP error code.";
    "nla_logon_failure" => "NLA failed with STATUS_LOGON_FAILURE (or a wrong password / unknown user): the credentials were wrong",
    "Check the user name (with its domain: DOMAIN\\user or user@domain) and the password; saved credentials in the client (Credential Manager, .rdp file) are often stale. The server's Security log event 4625 shows the sub-status.";
    "nla_account_restricted" => "NLA failed with STATUS_ACCOUNT_RESTRICTION (or invalid logon hours / workstation): an account restriction forbids the logon",
    "The account may not log on this way: members of Protected Users cannot use NTLM (use Kerberos: connect by host name with a reachable domain controller), logon hours or 'Log On To' workstations restrict it, or the password is blank (blank passwords are refused over the network). Check the account in Active Directory.";
    "nla_account_locked_out" => "NLA failed with STATUS_ACCOUNT_LOCKED_OUT: the account is locked",
    "Unlock the account (Active Directory Users and Computers, or 'Unlock-ADAccount'), wait for the lockout duration, and find what keeps sending the wrong password (event 4740 on the domain controller).";
    "nla_password_expired" => "NLA failed with STATUS_PASSWORD_EXPIRED or STATUS_PASSWORD_MUST_CHANGE: the password must be changed",
    "Change the password another way (Ctrl+Alt+Del on a domain machine, a password-change portal, or an administrator reset); NLA cannot change it. Alternatively allow the change at logon by disabling NLA for that host.";
    "nla_account_disabled" => "NLA failed with STATUS_ACCOUNT_DISABLED or STATUS_ACCOUNT_EXPIRED: the account is disabled or expired",
    "Enable the account or extend its expiry date in Active Directory (or 'lusrmgr.msc' for a local account).";
    "nla_logon_type_not_granted" => "NLA failed with STATUS_LOGON_TYPE_NOT_GRANTED: the user lacks the Remote Desktop logon right",
    "Add the user to the Remote Desktop Users group on the server and check the 'Allow log on through Remote Desktop Services' and 'Deny log on through Remote Desktop Services' user rights (secpol.msc or Group Policy).";
    "nla_ntlm_rejected" => "NLA failed with SEC_E_UNSUPPORTED_FUNCTION: the server refused the authentication package (typically inbound NTLM restricted) or the CredSSP version",
    "The server (or its domain policy 'Network security: Restrict NTLM') refuses NTLM: let the client use Kerberos (connect by the server's DNS name, with a domain controller or KDC proxy reachable) or allow NTLM for this server. If Kerberos was used, check the CredSSP 'encryption oracle remediation' policy on both sides.";
    "nla_error" => "NLA failed: the server sent a CredSSP error code",
    "Look the code up (it is an NTSTATUS or SSPI error) and check the server's Security and System logs at the time of the connection.";
    "authorization_denied" => "the credentials were accepted but the server denied access in the Early User Authorization Result (HYBRID_EX)",
    "The user authenticated but may not use Remote Desktop on this server: add the user to Remote Desktop Users, check the 'Allow log on through Remote Desktop Services' right and any RD Session Host connection restrictions.";
    "server_redirected" => "the server redirected the client to another server (Server Redirection PDU, e.g. an RD Connection Broker)",
    "Normal for a farm behind a connection broker: follow the client's next connection to the target. If that one fails, check that the target is reachable from the client and its name resolves.";
    "credssp_aborted_by_client" => "the client abandoned the NLA (CredSSP) exchange",
    "The client stopped NLA before authenticating: a credentials prompt that was cancelled, a CredSSP 'encryption oracle remediation' policy mismatch between patched and unpatched machines, or an untrusted server identity. Check the client-side message and the AllowEncryptionOracle policy on both sides.";
    "mcs_connect_rejected" => "the server rejected the MCS Connect Initial",
    "The server refused the client's settings (channels, resolution, encryption method): check client and server encryption levels (FIPS) and the server's event logs.";
    "server_closed_during_setup" => "the server closed the connection during the RDP connection sequence (phase `mcs_connect`, `licensing` or `capabilities`)",
    "The server ended the connection before the session started: check licensing (RD Licensing server reachable, CALs), the user's right to log on through Remote Desktop Services, session limits and the server's RemoteDesktopServices event logs.";
    "client_closed_during_setup" => "the client closed the connection during the RDP connection sequence (phase `mcs_connect`, `licensing` or `capabilities`)",
    "The client gave up before the session started: see the client's error message; decryption with a key log shows the last PDU exchanged.";
    "licensing_failed" => "RDP licensing failed: a License Error Alert other than STATUS_VALID_CLIENT, or Set Error Info ERRINFO_LICENSE_* (no license server, no CAL), normally in phase `licensing`",
    "Make sure an RD Licensing server is configured and reachable with available CALs (0x101/0x102), or that the deployment is within its grace period.";
    "server_error_info" => "the server reported an error (Set Error Info) and disconnected, in the session or in the phase of the connection sequence it reached",
    "See the errorInfo code in the summary: it is the 'extended error code' the client shows.";
    "session_ended_normally" => "the session ended by the user's own logoff or disconnect",
    "Nothing to fix.";
    "session_ended_by_server" => "the server ended the established session",
    "The reason is in the server's Set Error Info PDU, encrypted here: a user logoff, an idle or session time limit, or an administrator's disconnect. Check session time-limit policies and the server's event logs, or decrypt with a key log.";
    "session_closed_by_client" => "the session was established and the client closed it",
    "Nothing to fix: the client ended an established session.";
    "session_reset_by_server" => "the server cut the established session abruptly",
    "The server (or a middlebox impersonating it) reset or closed the session without an RDP disconnect: look for crashes or restarts of TermService, idle-session timeouts on firewalls/NAT, or network devices resetting long connections.";
    "session_in_progress" => "the session was running when the capture ended",
    "Nothing to fix.";
    "mtu_black_hole" => "large packets were retransmitted and never acknowledged while small ones got through: a path MTU black hole",
    "Somewhere on the path a link with a smaller MTU drops full-size packets and ICMP 'fragmentation needed' does not come back (blocked): allow ICMP type 3 code 4 / ICMPv6 packet-too-big, enable MSS clamping on the VPN or tunnel, or lower the MTU on the server or client interface.";
    "stall_retransmissions" => "the connection stalled: data was retransmitted without being acknowledged",
    "Packets stopped getting through in one direction: check for a firewall or NAT state that expired, link loss, or a peer that stopped responding; the retransmitting side and the evidence frames show where.";
    "udp_no_answer" => "RDP over UDP: the server never answered the client's RDPEUDP SYN",
    "Allow UDP 3389 (or the listener's port) through every firewall and the server's 'Remote Desktop - User Mode (UDP-In)' rule, and check the 'Select RDP transport protocols' and 'Turn off UDP on client' policies. Sessions still work over TCP, but feel slower on lossy or long links.";
    "udp_transport_failed" => "RDP over UDP: the handshake inside the UDP transport was aborted with an alert",
    "Check the server's TLS/DTLS configuration (protocol versions and ciphers also apply to the UDP transport); the session falls back to TCP.";
    "udp_handshake_stalled" => "RDP over UDP: the transport was accepted but its TLS/DTLS handshake never completed",
    "Something on the path drops part of the UDP traffic (large datagrams, fragments): check firewalls and the path MTU for UDP 3389; the session falls back to TCP.";
    "udp_transport_established" => "RDP over UDP was established",
    "Nothing to fix.";
    "proxy_refused" => "the SOCKS5 or HTTP CONNECT proxy in front of the server did not connect the client (its reply is named in the summary)",
    "Check the proxy: its rules must allow CONNECT to the RDP server and port, the server must be reachable from the proxy (host/network unreachable, connection refused mean the proxy could not reach it), and the client's proxy credentials must be valid; the proxy's own log names the rule or error.";
    "gateway_auth_failed" => "the RD Gateway rejected the user's authentication (HTTP 401) and no tunnel was created",
    "Check the user's credentials for the gateway (the summary lists the schemes the gateway offered: Negotiate/Kerberos needs a reachable KDC or a KDC proxy, NTLM must not be blocked), that the account is not locked, restricted (Protected Users cannot use NTLM) or expired, and the gateway's Connection Authorization Policy (RD CAP); the gateway's TerminalServices-Gateway event log names the reason.";
    "gateway_refused" => "the RD Gateway refused the request (HTTP 403 or another 4xx)",
    "The gateway does not allow this client or request: check the RD CAP/RD RAP policies, device redirection and client version requirements, and IIS request filtering on the gateway.";
    "gateway_error" => "the RD Gateway failed with an HTTP server error (5xx)",
    "The gateway service is unhealthy or overloaded: check the Remote Desktop Gateway service and IIS on the gateway, its event logs, and any load balancer or reverse proxy in front of it.";
    "gateway_tunnel_failed" => "the RD Gateway answered a tunnel, authorization or channel request with an error status (MS-TSGU)",
    "The summary names the status: E_PROXY_RAP_ACCESSDENIED means the resource authorization policy (RD RAP) does not allow the user to reach that computer, E_PROXY_NAP_ACCESSDENIED / E_PROXY_CAPABILITYMISMATCH a client policy or version mismatch, E_PROXY_TS_CONNECTFAILED that the gateway could not reach the target server on 3389 (check name, DNS and firewall from the gateway), E_PROXY_MAXCONNECTIONSREACHED the gateway's connection limit.";
    "capture_started_mid_connection" => "the capture started after the connection was set up and shows too little to judge",
    "Capture from before the client connects to see the whole connection sequence.";
    "capture_ended" => "the capture ended before the connection showed an outcome",
    "Capture for longer, until the client shows its error or the session starts.";
    "connection_closed_by_client" => "the client closed the connection",
    "The client ended the connection at this phase; its own error message says why.";
    "connection_closed_by_server" => "the server closed the connection",
    "The server ended the connection at this phase: check its RemoteDesktopServices and SCHANNEL event logs.";
}

/// The table entry for `code`.
pub fn cause_info(code: &str) -> Option<&'static CauseInfo> {
    CAUSES.iter().find(|c| c.code == code)
}

/// The remedy for `code` (empty for an unknown code).
pub fn remedy(code: &str) -> &'static str {
    cause_info(code).map_or("", |c| c.remedy)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every snake_case literal with an underscore in the rules is a cause code in the table,
    /// and every cause code is documented in README.md.
    #[test]
    fn causes_used_by_rules_are_in_the_table_and_the_readme() {
        let rules = [
            include_str!("rules.rs"),
            include_str!("rules/decrypted.rs"),
            include_str!("rules/gateway.rs"),
        ]
        .concat();
        let readme = include_str!("../../README.md");
        let mut used = 0;
        for lit in rules.split('"').skip(1).step_by(2) {
            let snake = lit.contains('_')
                && lit
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if snake {
                assert!(
                    cause_info(lit).is_some(),
                    "cause {lit} used by the rules but not in CAUSES"
                );
                used += 1;
            }
        }
        assert!(used > 30);
        for c in CAUSES {
            assert!(
                readme.contains(&format!("`{}`", c.code)),
                "cause {} missing from README.md",
                c.code
            );
            assert!(!c.remedy.is_empty() && !c.meaning.is_empty());
        }
    }
}
