//! TLS decryption on real captures (../shared/corpus/public/wireshark-rdp, pointed to by
//! RDPDIAG_CORPUS): the keys embedded in pcapng Decryption Secrets Blocks, the same keys
//! given as a key log, and no keys at all. Frame numbers are Wireshark's, checked with
//! `tshark -r F -d tcp.port==3389,tls -Y credssp` (and `-O rdp` for Set Error Info).

use std::path::PathBuf;

use rdpdiag::capture::{open_input, read_capture, Frame, FrameSink};
use rdpdiag::decrypt::KeyStore;
use rdpdiag::pipeline::{analyze_path, AnalyzeConfig, Analyzer, Diagnosed};
use rdpdiag::report::{ConnectionReport, ReportOptions};

fn corpus() -> Option<PathBuf> {
    match std::env::var_os("RDPDIAG_CORPUS") {
        Some(p) => Some(PathBuf::from(p).join("wireshark-rdp")),
        None => {
            eprintln!("SKIPPED: RDPDIAG_CORPUS is not set (point it at ../shared/corpus/public; .ci/run does)");
            None
        }
    }
}

/// (file, cause, key frame, frames that must be evidence, CredSSP errorCode name).
type Case = (
    &'static str,
    &'static str,
    u64,
    &'static [u64],
    Option<&'static str>,
);

/// The first RDP connection of each capture, decrypted with its embedded keys.
const CASES: [Case; 12] = [
    // Server TSRequest errorCode SEC_E_UNSUPPORTED_FUNCTION (frame 15) after NTLM AUTHENTICATE (14).
    (
        "rdp-nla-ntlm-rejected1.pcapng",
        "nla_ntlm_rejected",
        15,
        &[14, 15, 16],
        Some("SEC_E_UNSUPPORTED_FUNCTION"),
    ),
    // STATUS_ACCOUNT_RESTRICTION (frame 19): the user is in Protected Users.
    (
        "rdp-nla-ntlm-rejected2.pcapng",
        "nla_account_restricted",
        19,
        &[18, 19, 20],
        Some("STATUS_ACCOUNT_RESTRICTION"),
    ),
    // Set Error Info 0xb (frame 1167), then the disconnect.
    (
        "rdp-nla-kerberos-auth1.pcapng",
        "session_ended_normally",
        1167,
        &[1167],
        None,
    ),
    (
        "rdp-nla-kerberos-auth2.pcapng",
        "session_ended_normally",
        1111,
        &[1111],
        None,
    ),
    // Set Error Info 0xc LOGOFF_BY_USER (frame 2067).
    (
        "rdp-credential-guard-accepted1.pcapng",
        "session_ended_normally",
        2067,
        &[2067],
        None,
    ),
    // An ERRINFO_NONE at frame 921 is ignored; 0xb at 1980 is the real one.
    (
        "rdp-nla-smartcard-auth1.pcapng",
        "session_ended_normally",
        1980,
        &[1980],
        None,
    ),
    (
        "rdp-nla-smartcard-auth2.pcapng",
        "session_ended_normally",
        1702,
        &[1702],
        None,
    ),
    // TLS without NLA: Client Info (31) and Set Error Info 0xb (1772) under Enhanced Security.
    (
        "rdp-no-nla-accepted1.pcapng",
        "session_ended_normally",
        1772,
        &[31, 1772],
        None,
    ),
    (
        "rdp-no-nla-smartcard-auth1.pcapng",
        "session_ended_normally",
        2231,
        &[2231],
        None,
    ),
    (
        "rdp-restricted-admin-accepted1.pcapng",
        "session_ended_normally",
        1175,
        &[1175],
        None,
    ),
    (
        "rdp-restricted-admin-rejected1.pcapng",
        "session_ended_normally",
        211,
        &[211],
        None,
    ),
    // FreeRDP with NTLM: the server's Disconnect Provider Ultimatum (1203), no Set Error Info.
    (
        "history-a0b410f/freerdp-test.pcapng",
        "session_ended_by_server",
        1203,
        &[41, 1203],
        None,
    ),
];

fn report(d: &Diagnosed, file: &str, redact: bool) -> serde_json::Value {
    let opts = ReportOptions {
        redact,
        ..ReportOptions::default()
    };
    serde_json::to_value(ConnectionReport::new(file, d, opts)).unwrap()
}

fn first_rdp(path: &std::path::Path, config: &AnalyzeConfig) -> Diagnosed {
    let fa = analyze_path(path.to_str().unwrap(), config);
    assert!(
        fa.problem().is_none(),
        "{}: {:?}",
        path.display(),
        fa.problem()
    );
    fa.connections
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{}: no RDP connection", path.display()))
}

#[test]
fn embedded_keys_give_the_decrypted_verdicts() {
    let Some(dir) = corpus() else { return };
    for (file, cause, key, frames, error) in CASES {
        let d = first_rdp(&dir.join(file), &AnalyzeConfig::default());
        let j = report(&d, file, false);
        assert_eq!(j["decrypted"], true, "{file}");
        assert_eq!(j["phase_inferred"], false, "{file}");
        assert_eq!(j["cause"], cause, "{file}: {}", j["summary"]);
        assert_eq!(j["key_frame"], key, "{file}: {}", j["evidence"]);
        let ev: Vec<u64> = j["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["frame"].as_u64().unwrap())
            .collect();
        for f in frames {
            assert!(ev.contains(f), "{file}: frame {f} not in evidence {ev:?}");
        }
        assert_eq!(
            j["credssp"]["error_name"].as_str(),
            error,
            "{file}: {}",
            j["credssp"]
        );
        // STATUS_ACCOUNT_RESTRICTION is what mstsc reports as SSL_ERR_ACCOUNT_RESTRICTION.
        if error == Some("STATUS_ACCOUNT_RESTRICTION") {
            assert_eq!(j["client_error"]["code"], "0xc07", "{file}");
        }
        assert!(
            j["notes"].as_array().unwrap().is_empty()
                || !j["notes"].to_string().contains("not be decrypted"),
            "{file}: {}",
            j["notes"]
        );
    }
}

#[test]
fn credssp_object_names_package_and_user_and_redacts() {
    let Some(dir) = corpus() else { return };
    let file = "rdp-nla-ntlm-rejected1.pcapng";
    let d = first_rdp(&dir.join(file), &AnalyzeConfig::default());
    let j = report(&d, file, false);
    let c = &j["credssp"];
    assert_eq!(c["version"], 6);
    assert_eq!(c["auth_package"], "NTLM");
    assert_eq!(c["user"], "Administrator");
    assert_eq!(c["domain"], "IT-HELP");
    assert_eq!(c["error_code"], "0x80090302");
    let r = report(&d, file, true);
    assert_eq!(r["credssp"]["user"], "<redacted>");
    assert!(!r.to_string().contains("Administrator"));

    let file = "rdp-nla-kerberos-auth1.pcapng";
    let d = first_rdp(&dir.join(file), &AnalyzeConfig::default());
    let c = &report(&d, file, false)["credssp"];
    assert_eq!(c["auth_package"], "Kerberos");
    assert_eq!(c["early_user_authorization"], "AUTHZ_SUCCESS");
    assert_eq!(c["credentials_sent"], true);
}

/// Passes frames on but hides the capture's secrets blocks, or collects them.
struct Strip<'a, S: FrameSink> {
    inner: S,
    collected: &'a mut Vec<u8>,
}

impl<S: FrameSink> FrameSink for Strip<'_, S> {
    fn frame(&mut self, frame: &Frame<'_>) {
        self.inner.frame(frame);
    }
    fn secrets(&mut self, _t: u32, data: &[u8]) {
        self.collected.extend_from_slice(data);
        self.collected.push(b'\n');
    }
}

struct Nothing;
impl FrameSink for Nothing {
    fn frame(&mut self, _frame: &Frame<'_>) {}
}

/// Analyses `path` without its embedded secrets, with `keys` as if from `--keylog`.
fn analyse_stripped(path: &std::path::Path, keys: KeyStore) -> Vec<Diagnosed> {
    let mut out = Vec::new();
    let mut sink_secrets = Vec::new();
    {
        let config = AnalyzeConfig {
            keys,
            ..AnalyzeConfig::default()
        };
        let analyzer = Analyzer::new(config, |d| out.push(d));
        let mut strip = Strip {
            inner: analyzer,
            collected: &mut sink_secrets,
        };
        let src = open_input(path.to_str().unwrap()).unwrap();
        read_capture(src, &mut strip).unwrap();
        strip.inner.finish();
    }
    out.sort_by_key(|d| d.record.meta.first.number);
    out
}

#[test]
fn key_log_and_no_keys_agree_with_embedded_keys() {
    let Some(dir) = corpus() else { return };
    for file in [
        "rdp-nla-ntlm-rejected1.pcapng",
        "rdp-nla-ntlm-rejected2.pcapng",
        "rdp-no-nla-accepted1.pcapng",
    ] {
        let path = dir.join(file);
        let mut log = Vec::new();
        let src = open_input(path.to_str().unwrap()).unwrap();
        read_capture(
            src,
            &mut Strip {
                inner: Nothing,
                collected: &mut log,
            },
        )
        .unwrap();
        let mut keys = KeyStore::new();
        assert!(keys.add_key_log(&log) > 0, "{file}: no embedded keys");
        let embedded = report(&first_rdp(&path, &AnalyzeConfig::default()), file, false);
        let with_log = report(&analyse_stripped(&path, keys)[0], file, false);
        assert_eq!(with_log["decrypted"], true, "{file}");
        for k in ["cause", "key_frame", "credssp", "evidence"] {
            assert_eq!(with_log[k], embedded[k], "{file}: {k}");
        }
        let without = report(&analyse_stripped(&path, KeyStore::new())[0], file, false);
        assert_eq!(without["decrypted"], false, "{file}");
        assert!(without.get("credssp").is_none(), "{file}");
        // The inferred verdict does not contradict the decrypted one.
        let inferred = without["cause"].as_str().unwrap();
        let decrypted = embedded["cause"].as_str().unwrap();
        let compatible = match decrypted {
            c if c.starts_with("nla_") => inferred == "nla_authentication_failed",
            _ => inferred.starts_with("session_"),
        };
        assert!(compatible, "{file}: {inferred} without keys vs {decrypted}");
    }
}

#[test]
fn secrets_never_reach_the_output() {
    let Some(dir) = corpus() else { return };
    let path = dir.join("rdp-nla-ntlm-rejected1.pcapng");
    let mut log = Vec::new();
    let src = open_input(path.to_str().unwrap()).unwrap();
    read_capture(
        src,
        &mut Strip {
            inner: Nothing,
            collected: &mut log,
        },
    )
    .unwrap();
    let text = String::from_utf8(log).unwrap();
    let secret = text
        .lines()
        .find_map(|l| l.strip_prefix("CLIENT_RANDOM "))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("a CLIENT_RANDOM line")
        .to_string();
    let tmp = std::env::temp_dir().join(format!("rdpdiag-keylog-{}.txt", std::process::id()));
    std::fs::write(&tmp, &text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rdpdiag"))
        .args(["analyze", "--format", "jsonl", "-v", "--keylog"])
        .arg(&tmp)
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_file(&tmp).ok();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = [out.stdout, out.stderr].concat();
    let all = String::from_utf8_lossy(&all).to_lowercase();
    assert!(all.contains("nla_ntlm_rejected"), "{all}");
    assert!(!all.contains(&secret.to_lowercase()));
    assert!(!all.contains(&secret[..16].to_lowercase()));
}

/// ../shared/corpus/public/Intro_Traffic_Analysis: rdp.pcap (TLS 1.0,
/// TLS_RSA_WITH_AES_128_CBC_SHA, no extended master secret) and the server's private.key
/// (PKCS#8 PEM after PKCS#12 "Bag Attributes"). Redistribution terms unknown: used in
/// place. The capture ends in a truncated record (the analysis reports it and goes on).
fn intro_capture() -> Option<(PathBuf, PathBuf)> {
    let dir = corpus()?.parent()?.join("Intro_Traffic_Analysis");
    Some((dir.join("rdp.pcap"), dir.join("private.key")))
}

fn analyse_with_rsa(pcap: &std::path::Path, key_file: Option<&[u8]>) -> serde_json::Value {
    analyse_with_rsa_all(pcap, key_file, false)
}

fn analyse_with_rsa_all(
    pcap: &std::path::Path,
    key_file: Option<&[u8]>,
    decrypt_all: bool,
) -> serde_json::Value {
    let mut config = AnalyzeConfig::default();
    config.keys.decrypt_all = decrypt_all;
    if let Some(text) = key_file {
        assert_eq!(config.keys.add_rsa_keys(text), Ok(1));
    }
    let fa = analyze_path(pcap.to_str().unwrap(), &config);
    assert_eq!(fa.connections.len(), 1);
    let opts = ReportOptions {
        timeline: true,
        ..ReportOptions::default()
    };
    serde_json::to_value(ConnectionReport::new("rdp.pcap", &fa.connections[0], opts)).unwrap()
}

fn timeline_has(j: &serde_json::Value, frame: u64, text: &str) -> bool {
    j["timeline"].as_array().is_some_and(|t| {
        t.iter()
            .any(|e| e["frame"] == frame && e["what"].as_str().is_some_and(|w| w.contains(text)))
    })
}

/// TLS 1.0 with RSA key exchange, decrypted with the server's RSA private key. What it
/// shows was checked with `tshark -o 'uat:rsa_keys:"private.key",""' -d tcp.port==3389,tls`:
/// ClientData 14 (clientName doskop, build 2600, channels cliprdr rdpsnd snddbg rdpdr),
/// ServerData 15, ClientInfo 40, licensing Error Alert 41 (Valid Client, No Transition),
/// Demand Active 43, Deactivate All 131, the client's X.224 DR TPDU 5962.
#[test]
fn rsa_private_key_decrypts_tls10_rsa_key_exchange() {
    let Some((pcap, key)) = intro_capture() else {
        return;
    };
    let key = std::fs::read(key).unwrap();
    let j = analyse_with_rsa(&pcap, Some(&key));
    assert_eq!(j["decrypted"], true, "{}", j["notes"]);
    assert_eq!(j["tls"]["version"], "TLS1.0");
    assert_eq!(j["tls"]["cipher"], "TLS_RSA_WITH_AES_128_CBC_SHA");
    assert_eq!(j["phase"], "rdp_session");
    assert_eq!(j["phase_inferred"], false);
    assert_eq!(j["cause"], "session_closed_by_client", "{}", j["summary"]);
    assert_eq!(j["ended_by"], "client");
    let m = &j["mcs"];
    assert_eq!(m["client_name"], "doskop");
    assert_eq!(m["client_build"], 2600);
    assert_eq!(
        m["channels"],
        serde_json::json!(["cliprdr", "rdpsnd", "snddbg", "rdpdr"])
    );
    assert_eq!(m["license_error"], "STATUS_VALID_CLIENT");
    let ev = j["evidence"].to_string();
    assert!(
        ev.contains("\"frame\":40") && ev.contains("Client Info PDU"),
        "{ev}"
    );
    assert!(ev.contains("\"frame\":5962"), "{ev}");
    for (frame, what) in [
        (14, "MCS Connect Initial"),
        (15, "MCS Connect Response"),
        (41, "STATUS_VALID_CLIENT"),
        (43, "Demand Active"),
    ] {
        assert!(timeline_has(&j, frame, what), "frame {frame}: {what}");
    }
    // The Deactivate All of frame 131 comes mid-session, after the Font Map and the server's
    // first fast-path output: by default such records are passed over (the diagnosis is
    // settled), with --decrypt-all they are read.
    assert!(!timeline_has(&j, 131, "Deactivate All"));
    let all = analyse_with_rsa_all(&pcap, Some(&key), true);
    assert!(timeline_has(&all, 131, "Deactivate All"));
    // Frame 312 is clipboard data on static virtual channel 1007 (tshark), not a Security
    // Exchange PDU, whatever its first bytes look like.
    assert!(!all["timeline"].to_string().contains("Security Exchange"));
    assert_eq!(all["cause"], j["cause"]);
    assert!(
        !j["notes"].to_string().contains("not used"),
        "{}",
        j["notes"]
    );
    // Without the key the same verdict, inferred.
    let n = analyse_with_rsa(&pcap, None);
    assert_eq!(n["decrypted"], false);
    assert_eq!(n["phase_inferred"], true);
    for k in ["cause", "outcome", "ended_by", "key_frame", "phase"] {
        assert_eq!(n[k], j[k], "{k}");
    }
}

/// Another server's key: reported in the notes, not fatal, the verdict inferred as without keys.
#[test]
fn unmatched_rsa_key_is_reported_not_fatal() {
    let Some((pcap, _)) = intro_capture() else {
        return;
    };
    let other = std::path::Path::new("testdata/own/keylog/rsa-kex-server.key");
    let j = analyse_with_rsa(&pcap, Some(&std::fs::read(other).unwrap()));
    assert_eq!(j["decrypted"], false);
    assert_eq!(j["cause"], "session_closed_by_client");
    let notes = j["notes"].to_string();
    assert!(
        notes.contains("RSA private key does not match the server's certificate"),
        "{notes}"
    );
}

/// `--rsa-key` through the CLI: no byte of the key reaches the output; a file that is not a
/// key is a usage error naming the file.
#[test]
fn rsa_key_never_reaches_the_output() {
    let Some((pcap, key)) = intro_capture() else {
        return;
    };
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rdpdiag"))
        .args(["analyze", "--format", "jsonl", "-v", "--rsa-key"])
        .arg(&key)
        .arg(&pcap)
        .output()
        .unwrap();
    // Exit 1: the capture's last record is truncated (reported, the rest analysed).
    assert_eq!(out.status.code(), Some(1));
    let all = String::from_utf8_lossy(&[out.stdout, out.stderr].concat()).to_string();
    assert!(all.contains("\"decrypted\":true"), "{all}");
    let pem = std::fs::read_to_string(&key).unwrap();
    for line in pem.lines().filter(|l| l.len() >= 40 && !l.contains(' ')) {
        assert!(!all.contains(&line[..24]), "key bytes in the output");
    }
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_rdpdiag"))
        .args(["analyze", "--rsa-key", "Cargo.toml"])
        .arg(&pcap)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("cannot use the RSA key Cargo.toml"), "{err}");
}
