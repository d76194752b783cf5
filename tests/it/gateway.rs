//! RD Gateway (MS-TSGU over WebSocket, decrypted with the captures' embedded keys) and
//! SOCKS5 proxies, on real captures; frame numbers as tshark shows them.

use std::path::PathBuf;

use rdpdiag::pipeline::{analyze_path, AnalyzeConfig};
use rdpdiag::report::{ConnectionReport, ReportOptions};

fn corpus_file(rel: &str) -> Option<PathBuf> {
    match std::env::var_os("RDPDIAG_CORPUS") {
        Some(p) => Some(PathBuf::from(p).join(rel)),
        None => {
            eprintln!("SKIPPED: RDPDIAG_CORPUS is not set");
            None
        }
    }
}

fn reports(path: &str) -> Vec<ConnectionReport> {
    let a = analyze_path(path, &AnalyzeConfig::default());
    assert!(a.problem().is_none(), "{path}");
    a.connections
        .iter()
        .map(|d| ConnectionReport::new(path, d, ReportOptions::default()))
        .collect()
}

/// (capture, client port, frame of the 101, frame of the first close (client RST)).
const TUNNELS: [(&str, u16, u64, u64); 7] = [
    (
        "rdp-rdg-diff-creds-kerberos-password.pcapng",
        49895,
        17,
        805,
    ),
    (
        "rdp-rdg-diff-creds-kerberos-smartcard.pcapng",
        49909,
        18,
        1358,
    ),
    (
        "rdp-rdg-no-kdc-proxy-ntlm-downgrade-success.pcapng",
        49872,
        56,
        1030,
    ),
    (
        "rdp-rdg-same-creds-kerberos-password-success1.pcapng",
        49790,
        41,
        803,
    ),
    (
        "rdp-rdg-same-creds-kerberos-password-success2.pcapng",
        49879,
        17,
        799,
    ),
    (
        "rdp-rdg-same-creds-kerberos-smartcard-success1.pcapng",
        49812,
        38,
        1163,
    ),
    (
        "rdp-rdg-same-creds-kerberos-smartcard-success2.pcapng",
        49971,
        18,
        1083,
    ),
];

#[test]
fn rdg_tunnels_carry_an_inner_rdp_verdict() {
    for (file, port, ws_frame, rst) in TUNNELS {
        let Some(p) = corpus_file(&format!("wireshark-rdp/{file}")) else {
            return;
        };
        let reps = reports(&p.to_string_lossy());
        // Only the RDG connection is reported (not the KDC proxy or Kerberos traffic).
        assert_eq!(reps.len(), 1, "{file}");
        let r = &reps[0];
        assert_eq!(r.client, format!("10.10.0.131:{port}"), "{file}");
        assert_eq!(r.server, "10.10.0.7:443");
        let g = r.gateway.as_ref().expect("gateway object");
        assert!(g.websocket, "{file}");
        assert_eq!(g.http.last().unwrap().status, 101);
        assert_eq!(g.http.last().unwrap().frame, ws_frame, "{file}");
        assert_eq!(
            g.target.as_deref(),
            Some("IT-HELP-TEST.ad.it-help.ninja:3389")
        );
        let kinds: Vec<(&str, Option<&str>)> = g
            .messages
            .iter()
            .filter(|m| m.from == "server")
            .map(|m| (m.kind, m.status.as_deref()))
            .collect();
        let ok = Some("0x00000000");
        assert_eq!(
            kinds,
            [
                ("HANDSHAKE_RESPONSE", ok),
                ("TUNNEL_RESPONSE", ok),
                ("TUNNEL_AUTH_RESPONSE", ok),
                ("CHANNEL_RESPONSE", ok),
                ("CLOSE_CHANNEL_RESPONSE", ok),
            ],
            "{file}"
        );
        let inner = g.inner.as_ref().expect("inner report");
        assert_eq!(
            inner.requested_protocols.as_deref(),
            Some("SSL|HYBRID|HYBRID_EX")
        );
        assert_eq!(inner.selected_protocol.as_deref(), Some("HYBRID_EX"));
        let tls = inner.tls.as_ref().unwrap();
        assert!(tls.established && tls.app_records.iter().all(|n| *n > 100));
        // Past CredSSP (the inner TLS has no key: the session is inferred from volume).
        assert!(r.phase >= rdpdiag::diagnose::Phase::Credssp, "{file}");
        assert_eq!(r.phase, inner.phase);
        assert_eq!(r.cause, inner.cause);
        assert!(r
            .summary
            .starts_with("through the RD Gateway 10.10.0.7:443"));
        let close = r
            .evidence
            .iter()
            .find(|e| e.what.contains("(first close)"))
            .unwrap();
        assert_eq!(
            (close.frame, close.what.as_str()),
            (rst, "client: TCP RST (first close)")
        );
    }
}

#[test]
fn rdg_401_is_a_gateway_authentication_failure() {
    let Some(p) = corpus_file("wireshark-rdp/rdp-rdg-no-kdc-proxy-ntlm-downgrade-failure.pcapng")
    else {
        return;
    };
    let reps = reports(&p.to_string_lossy());
    assert_eq!(
        reps.len(),
        1,
        "the HTTP/2 KdcProxy connection is not a gateway"
    );
    let r = &reps[0];
    assert_eq!(r.client, "10.10.0.131:49779");
    assert_eq!(r.cause, "gateway_auth_failed");
    assert_eq!(r.ended_by, rdpdiag::diagnose::EndedBy::Server);
    assert_eq!(r.key_frame, Some(36));
    assert!(
        r.summary.contains("401 User Account Restricted"),
        "{}",
        r.summary
    );
    assert!(r.summary.contains("Negotiate"), "{}", r.summary);
    let g = r.gateway.as_ref().unwrap();
    let http: Vec<(u64, u16, &str)> = g
        .http
        .iter()
        .map(|h| (h.frame, h.status, h.reason.as_str()))
        .collect();
    assert_eq!(
        http,
        [
            (33, 401, "Unauthorized"),
            (36, 401, "User Account Restricted")
        ]
    );
    assert!(!g.websocket && g.inner.is_none() && g.messages.is_empty());
    let frames: Vec<u64> = r.evidence.iter().map(|e| e.frame).collect();
    assert_eq!(frames, [32, 33, 36, 37]);
}

#[test]
fn socks5_proxied_rdp_is_reported_with_its_proxy() {
    let p = "testdata/public/arkime/socks5-rdp.pcap";
    let reps = reports(p);
    assert_eq!(reps.len(), 1);
    let r = &reps[0];
    assert_eq!(
        (r.client.as_str(), r.server.as_str()),
        ("10.0.0.3:2276", "10.0.0.2:42356")
    );
    assert_eq!(r.phase.name(), "x224_confirm");
    assert_eq!(r.cookie.as_deref(), Some("XXX"));
    assert_eq!(r.selected_protocol.as_deref(), Some("RDP"));
    let proxy = r.proxy.as_ref().unwrap();
    assert_eq!(proxy.kind, "socks5");
    assert_eq!(proxy.target.as_deref(), Some("10.0.0.1:3389"));
    assert_eq!(proxy.reply.as_deref(), Some("succeeded"));
    assert_eq!(proxy.frame, Some(7));
}
