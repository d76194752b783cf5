//! Batch summaries and attempts, computed from connection reports as JSON values, so that
//! `rdpdiag summarize` can rebuild them from saved JSON Lines of many machines.
//!
//! An attempt ties together the connections one client made to one server in quick
//! succession: a negotiation failure and the downgraded retry, an NLA probe and the real
//! connection, a burst of failed authentications.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;

/// Connections of one client to one server less than this apart belong to one attempt.
pub const ATTEMPT_GAP_S: f64 = 60.0;
/// Rows kept in "top" lists.
pub const TOP: usize = 10;

/// The fields of a connection report the summary needs.
#[derive(Debug, Clone)]
struct Row {
    file: String,
    client_ip: String,
    server: String,
    start: String,
    start_s: f64,
    end_s: f64,
    outcome: String,
    cause: String,
    requested: Option<String>,
    udp: bool,
    routing_token: bool,
}

/// Seconds since the epoch of an RFC 3339 UTC time as rdpdiag writes it.
pub fn epoch_seconds(t: &str) -> Option<f64> {
    let (date, time) = t.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut tp = time.split(':');
    let (h, mi) = (
        tp.next()?.parse::<i64>().ok()?,
        tp.next()?.parse::<i64>().ok()?,
    );
    let s: f64 = tp.next()?.parse().ok()?;
    // Days from civil (H. Hinnant).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + mi * 60) as f64 + s)
}

fn client_ip(endpoint: &str) -> String {
    match endpoint.rsplit_once(':') {
        Some((ip, _)) => ip.to_string(),
        None => endpoint.to_string(),
    }
}

/// Counts by outcome.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Outcomes {
    /// Total.
    pub total: usize,
    /// Successes.
    pub success: usize,
    /// Failures.
    pub failure: usize,
    /// Incomplete.
    pub incomplete: usize,
}

impl Outcomes {
    fn add(&mut self, outcome: &str) {
        self.total += 1;
        match outcome {
            "success" => self.success += 1,
            "failure" => self.failure += 1,
            _ => self.incomplete += 1,
        }
    }
}

/// A count under a key.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Keyed {
    /// The key (cause, server, client, hour, file).
    pub key: String,
    /// Connections by outcome under this key.
    #[serde(flatten)]
    pub outcomes: Outcomes,
}

/// One attempt: connections of one client to one server close together in time.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Attempt {
    /// Client IP.
    pub client: String,
    /// Server ip:port.
    pub server: String,
    /// Start of the first connection.
    pub start: String,
    /// Number of connections.
    pub connections: usize,
    /// What kind of attempt: single, retry, downgrade_after_negotiation_failure,
    /// repeated_authentication_failures, retry_after_failure.
    pub kind: &'static str,
    /// Outcome of the last connection.
    pub final_outcome: String,
    /// Cause of the last connection.
    pub final_cause: String,
    /// RDP-over-UDP transports of the attempt that failed (the session ran over TCP only).
    pub udp_failed: usize,
}

/// A batch summary.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Summary {
    /// Always "summary" (tells it apart from connection objects in JSON Lines).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Files analysed.
    pub files: usize,
    /// Files that could not be read completely.
    pub files_with_errors: usize,
    /// Connections by outcome.
    pub connections: Outcomes,
    /// Attempts by final outcome.
    pub attempts: Outcomes,
    /// Attempts by kind.
    pub attempt_kinds: BTreeMap<String, usize>,
    /// Failed connections by cause, most frequent first.
    pub failures_by_cause: Vec<Keyed>,
    /// Connections by server, most failures first.
    pub by_server: Vec<Keyed>,
    /// Connections by client IP, most failures first.
    pub by_client: Vec<Keyed>,
    /// Connections by UTC hour (`YYYY-MM-DDTHH`), in time order.
    pub by_hour: Vec<Keyed>,
    /// Servers with the most failed connections.
    pub top_failing_servers: Vec<Keyed>,
    /// Per file: connections by outcome, and the read error if any.
    pub per_file: Vec<FileCount>,
    /// Attempts that ended in failure with more than one connection or a notable kind.
    pub notable_attempts: Vec<Attempt>,
    /// Connections evicted because the connection table was full (their verdicts say so).
    pub evicted_connections: u64,
}

/// Per-file counts.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FileCount {
    /// The file.
    pub file: String,
    /// Connections by outcome.
    #[serde(flatten)]
    pub outcomes: Outcomes,
    /// Why reading stopped early, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Accumulates connection reports and file results into a [`Summary`].
#[derive(Debug, Default)]
pub struct SummaryBuilder {
    rows: Vec<Row>,
    files: Vec<(String, Option<String>)>,
    evicted: u64,
}

impl SummaryBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts connections a file's analysis evicted because of the connection-table limit.
    pub fn add_evicted(&mut self, n: u64) {
        self.evicted += n;
    }

    /// Records that `file` was analysed (`error`: why reading stopped early).
    pub fn add_file(&mut self, file: &str, error: Option<String>) {
        self.files.push((file.to_string(), error));
    }

    /// Adds one connection report (a JSON object as written by `--format jsonl`); objects
    /// that are not connection reports (e.g. summaries) are ignored. Returns whether used.
    pub fn add_report(&mut self, v: &Value) -> bool {
        if v.get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t != "connection")
        {
            return false;
        }
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let (Some(file), Some(client), Some(server), Some(start), Some(outcome)) = (
            s("file"),
            s("client"),
            s("server"),
            s("start"),
            s("outcome"),
        ) else {
            return false;
        };
        let start_s = epoch_seconds(&start).unwrap_or(0.0);
        let dur = v.get("duration_s").and_then(Value::as_f64).unwrap_or(0.0);
        self.rows.push(Row {
            file,
            client_ip: client_ip(&client),
            server,
            start,
            start_s,
            end_s: start_s + dur,
            outcome,
            cause: s("cause").unwrap_or_default(),
            requested: s("requested_protocols"),
            udp: s("transport").as_deref() == Some("udp"),
            routing_token: s("routing_token").is_some(),
        });
        true
    }

    /// Builds the summary.
    pub fn build(mut self) -> Summary {
        let mut sum = Summary {
            kind: "summary",
            evicted_connections: self.evicted,
            ..Summary::default()
        };
        // Files: those given explicitly, plus any only seen in reports (summarize).
        let mut per_file: Vec<FileCount> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for (f, err) in &self.files {
            index.insert(f.clone(), per_file.len());
            per_file.push(FileCount {
                file: f.clone(),
                outcomes: Outcomes::default(),
                error: err.clone(),
            });
        }
        let mut by_cause: HashMap<String, Outcomes> = HashMap::new();
        let mut by_server: HashMap<String, Outcomes> = HashMap::new();
        let mut by_client: HashMap<String, Outcomes> = HashMap::new();
        let mut by_hour: BTreeMap<String, Outcomes> = BTreeMap::new();
        for r in &self.rows {
            let i = *index.entry(r.file.clone()).or_insert_with(|| {
                per_file.push(FileCount {
                    file: r.file.clone(),
                    outcomes: Outcomes::default(),
                    error: None,
                });
                per_file.len() - 1
            });
            per_file[i].outcomes.add(&r.outcome);
            sum.connections.add(&r.outcome);
            if r.outcome == "failure" {
                by_cause.entry(r.cause.clone()).or_default().add(&r.outcome);
            }
            by_server
                .entry(r.server.clone())
                .or_default()
                .add(&r.outcome);
            by_client
                .entry(r.client_ip.clone())
                .or_default()
                .add(&r.outcome);
            let hour = r.start.get(..13).unwrap_or(&r.start).to_string();
            by_hour.entry(hour).or_default().add(&r.outcome);
        }
        sum.files = per_file.len();
        sum.files_with_errors = per_file.iter().filter(|f| f.error.is_some()).count();
        sum.per_file = per_file;
        let ranked = |m: HashMap<String, Outcomes>| {
            let mut v: Vec<Keyed> = m
                .into_iter()
                .map(|(key, outcomes)| Keyed { key, outcomes })
                .collect();
            v.sort_by(|a, b| {
                b.outcomes
                    .failure
                    .cmp(&a.outcomes.failure)
                    .then(b.outcomes.total.cmp(&a.outcomes.total))
                    .then(a.key.cmp(&b.key))
            });
            v
        };
        sum.failures_by_cause = ranked(by_cause);
        sum.by_server = ranked(by_server);
        sum.by_client = ranked(by_client);
        sum.top_failing_servers = sum
            .by_server
            .iter()
            .filter(|k| k.outcomes.failure > 0)
            .take(TOP)
            .cloned()
            .collect();
        sum.by_hour = by_hour
            .into_iter()
            .map(|(key, outcomes)| Keyed { key, outcomes })
            .collect();
        // Attempts.
        self.rows.sort_by(|a, b| {
            (&a.client_ip, &a.server)
                .cmp(&(&b.client_ip, &b.server))
                .then(a.start_s.total_cmp(&b.start_s))
        });
        let mut attempts: Vec<Attempt> = Vec::new();
        let mut group: Vec<&Row> = Vec::new();
        let flush = |group: &mut Vec<&Row>, attempts: &mut Vec<Attempt>| {
            // UDP transports ride along with their TCP connection: the attempt's kind and
            // outcome are the TCP connections'.
            let tcp: Vec<&Row> = group.iter().copied().filter(|r| !r.udp).collect();
            let udp_failed = group
                .iter()
                .filter(|r| r.udp && r.outcome == "failure")
                .count();
            let basis: &Vec<&Row> = if tcp.is_empty() { &*group } else { &tcp };
            if let (Some(first), Some(last)) = (group.first(), basis.last()) {
                attempts.push(Attempt {
                    udp_failed,
                    client: first.client_ip.clone(),
                    server: first.server.clone(),
                    start: first.start.clone(),
                    connections: group.len(),
                    kind: attempt_kind(basis),
                    final_outcome: last.outcome.clone(),
                    final_cause: last.cause.clone(),
                });
            }
            group.clear();
        };
        let mut groups: Vec<Vec<&Row>> = Vec::new();
        for r in &self.rows {
            let same = group.last().is_some_and(|p| {
                p.client_ip == r.client_ip
                    && p.server == r.server
                    && r.start_s - p.end_s.max(p.start_s) <= ATTEMPT_GAP_S
            });
            if !same && !group.is_empty() {
                groups.push(std::mem::take(&mut group));
            }
            group.push(r);
        }
        if !group.is_empty() {
            groups.push(group);
        }
        // A redirection (RD Connection Broker) continues on another server: the same client's
        // next connection, soon after, carrying the routing token it was given.
        groups.sort_by(|a, b| a[0].start_s.total_cmp(&b[0].start_s));
        let mut used = vec![false; groups.len()];
        for i in 0..groups.len() {
            if used[i] {
                continue;
            }
            used[i] = true;
            let mut g = groups[i].clone();
            while let Some(last) = g.iter().rev().find(|r| !r.udp).copied() {
                if last.cause != "server_redirected" {
                    break;
                }
                let next = (0..groups.len()).find(|&j| {
                    !used[j]
                        && groups[j][0].client_ip == last.client_ip
                        && groups[j][0].routing_token
                        && groups[j][0].start_s >= last.start_s
                        && groups[j][0].start_s - last.end_s.max(last.start_s) <= ATTEMPT_GAP_S
                });
                let Some(j) = next else { break };
                used[j] = true;
                g.extend(groups[j].iter().copied());
            }
            flush(&mut g, &mut attempts);
        }
        attempts.sort_by(|a, b| a.start.cmp(&b.start).then(a.client.cmp(&b.client)));
        for a in &attempts {
            sum.attempts.add(&a.final_outcome);
            *sum.attempt_kinds.entry(a.kind.to_string()).or_default() += 1;
        }
        sum.notable_attempts = attempts
            .into_iter()
            .filter(|a| a.kind != "single")
            .take(100)
            .collect();
        sum
    }
}

fn attempt_kind(group: &[&Row]) -> &'static str {
    if group.len() == 1 {
        return "single";
    }
    // NLA failures, inferred or decrypted (nla_logon_failure, nla_account_locked_out ...).
    let auth_failures = group
        .iter()
        .filter(|r| r.cause.starts_with("nla_") && r.outcome == "failure")
        .count();
    if auth_failures >= 3 {
        return "repeated_authentication_failures";
    }
    if group.iter().any(|r| r.cause == "server_redirected")
        && group.iter().any(|r| r.server != group[0].server)
    {
        return "redirected";
    }
    let downgraded = group.windows(2).any(|w| {
        w[0].cause.starts_with("neg_failure_") || w[0].cause == "server_selected_unrequested_protocol"
    } && w[1].requested != w[0].requested);
    if downgraded {
        return "downgrade_after_negotiation_failure";
    }
    if group.iter().rev().skip(1).any(|r| r.outcome == "failure") {
        return "retry_after_failure";
    }
    "retry"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn epoch_seconds_matches_known_time() {
        // tshark: frame.time_epoch 1193369794.940913
        let t = epoch_seconds("2007-10-26T03:36:34.940913Z").unwrap();
        assert!((t - 1_193_369_794.940_913).abs() < 1e-6);
    }

    #[test]
    fn downgrade_retry_is_one_attempt() {
        let mut b = SummaryBuilder::new();
        let row = |port: u16, start: &str, outcome: &str, cause: &str, req: &str| {
            json!({"file": "f", "client": format!("10.0.0.1:{port}"), "server": "10.0.0.2:3389", "start": start,
                   "duration_s": 0.2, "outcome": outcome, "cause": cause, "requested_protocols": req})
        };
        assert!(b.add_report(&row(
            1311,
            "2007-10-26T03:36:34.9Z",
            "failure",
            "neg_failure_ssl_not_allowed_by_server",
            "SSL"
        )));
        assert!(b.add_report(&row(
            1312,
            "2007-10-26T03:36:37.5Z",
            "success",
            "session_closed_by_client",
            "RDP"
        )));
        assert!(!b.add_report(&json!({"type": "summary"})));
        let s = b.build();
        assert_eq!(s.connections.total, 2);
        assert_eq!(s.attempts.total, 1);
        assert_eq!(s.attempts.success, 1);
        assert_eq!(
            s.attempt_kinds.get("downgrade_after_negotiation_failure"),
            Some(&1)
        );
        assert_eq!(
            s.failures_by_cause[0].key,
            "neg_failure_ssl_not_allowed_by_server"
        );
        assert_eq!(s.by_hour[0].key, "2007-10-26T03");
    }

    #[test]
    fn redirection_and_authentication_bursts_are_attempts() {
        let mut b = SummaryBuilder::new();
        let row = |client: &str,
                   server: &str,
                   start: &str,
                   outcome: &str,
                   cause: &str,
                   token: Option<&str>| {
            json!({"file": "f", "client": client, "server": server, "start": start, "duration_s": 1.0,
                   "outcome": outcome, "cause": cause, "routing_token": token})
        };
        // Broker redirects 10.0.0.1 to host 10.0.0.9, which it reaches with the token.
        b.add_report(&row(
            "10.0.0.1:50000",
            "10.0.0.2:3389",
            "2024-01-01T10:00:00Z",
            "failure",
            "server_redirected",
            None,
        ));
        b.add_report(&row(
            "10.0.0.1:50001",
            "10.0.0.9:3389",
            "2024-01-01T10:00:02Z",
            "success",
            "session_closed_by_client",
            Some("Cookie: msts=1"),
        ));
        // Three failed NLA logons from 10.0.0.3 (decrypted and inferred causes).
        for (i, c) in [
            "nla_logon_failure",
            "nla_authentication_failed",
            "nla_account_locked_out",
        ]
        .iter()
        .enumerate()
        {
            b.add_report(&row(
                &format!("10.0.0.3:{}", 40000 + i),
                "10.0.0.2:3389",
                &format!("2024-01-01T11:00:0{i}Z"),
                "failure",
                c,
                None,
            ));
        }
        let s = b.build();
        assert_eq!(s.attempts.total, 2);
        assert_eq!(s.attempt_kinds.get("redirected"), Some(&1));
        assert_eq!(
            s.attempt_kinds.get("repeated_authentication_failures"),
            Some(&1)
        );
        assert_eq!((s.attempts.success, s.attempts.failure), (1, 1));
    }
}
