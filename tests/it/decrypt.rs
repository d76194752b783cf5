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
