//! Batch summaries and attempts, computed from connection reports as JSON values, so that
//! `rdpdiag summarize` can rebuild them from saved JSON Lines of many machines.
//!
//! An attempt ties together the connections one client made to one server in quick
//! succession: a negotiation failure and the downgraded retry, an NLA probe and the real
//! connection, a burst of failed authentications.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use serde::Serialize;
use serde_json::Value;

/// Connections of one client to one server less than this apart belong to one attempt.
pub const ATTEMPT_GAP_S: f64 = 60.0;
/// Rows kept in "top" lists.
pub const TOP: usize = 10;

/// The fields of a connection report the summary needs, kept small: a summary of a
/// million connections holds a million rows. Strings repeated across rows (files, clients,
/// servers, outcomes, causes, protocols) are [`Names`] ids.
#[derive(Debug, Clone)]
struct Row {
    file: u32,
    client_ip: u32,
    server: u32,
    start: Box<str>,
    start_s: f64,
    end_s: f64,
    outcome: u32,
    cause: u32,
    requested: Option<u32>,
    udp: bool,
    routing_token: bool,
}

/// Strings stored once, named by an id.
#[derive(Debug, Default)]
struct Names {
    ids: HashMap<Rc<str>, u32>,
    list: Vec<Rc<str>>,
}

impl Names {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = u32::try_from(self.list.len()).unwrap_or(u32::MAX);
        let rc: Rc<str> = Rc::from(s);
        self.list.push(Rc::clone(&rc));
        self.ids.insert(rc, id);
        id
    }

    fn get(&self, id: u32) -> &str {
        self.list.get(id as usize).map_or("", |s| s)
    }
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
    names: Names,
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
        let s = |k: &str| v.get(k).and_then(Value::as_str);
        let (Some(file), Some(client), Some(server), Some(start), Some(outcome)) = (
            s("file"),
            s("client"),
            s("server"),
            s("start"),
            s("outcome"),
        ) else {
            return false;
        };
        let start_s = epoch_seconds(start).unwrap_or(0.0);
        let dur = v.get("duration_s").and_then(Value::as_f64).unwrap_or(0.0);
        let n = &mut self.names;
        let row = Row {
            file: n.id(file),
            client_ip: n.id(&client_ip(client)),
            server: n.id(server),
            start: start.into(),
            start_s,
            end_s: start_s + dur,
            outcome: n.id(outcome),
            cause: n.id(s("cause").unwrap_or_default()),
            requested: s("requested_protocols").map(|p| n.id(p)),
            udp: s("transport") == Some("udp"),
            routing_token: s("routing_token").is_some(),
        };
        self.rows.push(row);
        true
    }

    /// Builds the summary.
    pub fn build(self) -> Summary {
        let names = &self.names;
        let nm = |id: u32| names.get(id);
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
        // Counts by name id (cause, server, client).
        let mut by_cause: HashMap<u32, Outcomes> = HashMap::new();
        let mut by_server: HashMap<u32, Outcomes> = HashMap::new();
        let mut by_client: HashMap<u32, Outcomes> = HashMap::new();
        let mut by_hour: BTreeMap<String, Outcomes> = BTreeMap::new();
        let mut file_index: HashMap<u32, usize> = HashMap::new();
        for r in &self.rows {
            let outcome = nm(r.outcome);
            let i = *file_index.entry(r.file).or_insert_with(|| {
                *index.entry(nm(r.file).to_string()).or_insert_with(|| {
                    per_file.push(FileCount {
                        file: nm(r.file).to_string(),
                        outcomes: Outcomes::default(),
                        error: None,
                    });
                    per_file.len() - 1
                })
            });
            per_file[i].outcomes.add(outcome);
            sum.connections.add(outcome);
            if outcome == "failure" {
                by_cause.entry(r.cause).or_default().add(outcome);
            }
            by_server.entry(r.server).or_default().add(outcome);
            by_client.entry(r.client_ip).or_default().add(outcome);
            let hour = r.start.get(..13).unwrap_or(&r.start);
            match by_hour.get_mut(hour) {
                Some(o) => o.add(outcome),
                None => by_hour.entry(hour.to_string()).or_default().add(outcome),
            }
        }
        sum.files = per_file.len();
        sum.files_with_errors = per_file.iter().filter(|f| f.error.is_some()).count();
        sum.per_file = per_file;
        let ranked = |m: HashMap<u32, Outcomes>| {
            let mut v: Vec<Keyed> = m
                .into_iter()
                .map(|(key, outcomes)| Keyed {
                    key: nm(key).to_string(),
                    outcomes,
                })
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
        // Attempts: rows in order of client, server and start (a stable sort of indices).
        let rows = &self.rows;
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (&rows[a], &rows[b]);
            (nm(a.client_ip), nm(a.server))
                .cmp(&(nm(b.client_ip), nm(b.server)))
                .then(a.start_s.total_cmp(&b.start_s))
        });
        let sorted: Vec<&Row> = order.iter().map(|&i| &rows[i]).collect();
        drop(order);
        // Groups as ranges of `sorted`.
        let mut groups: Vec<(usize, usize)> = Vec::new();
        let mut begin = 0;
        for (k, r) in sorted.iter().enumerate() {
            let same = k
                .checked_sub(1)
                .and_then(|p| sorted.get(p))
                .is_some_and(|p| {
                    p.client_ip == r.client_ip
                        && p.server == r.server
                        && r.start_s - p.end_s.max(p.start_s) <= ATTEMPT_GAP_S
                });
            if !same && k > begin {
                groups.push((begin, k));
                begin = k;
            }
        }
        if sorted.len() > begin {
            groups.push((begin, sorted.len()));
        }
        let group = |g: (usize, usize)| &sorted[g.0..g.1];
        // A redirection (RD Connection Broker) continues on another server: the same client's
        // next connection, soon after, carrying the routing token it was given.
        groups.sort_by(|a, b| group(*a)[0].start_s.total_cmp(&group(*b)[0].start_s));
        // Only attempts other than single connections are listed; all are counted.
        let mut notable: Vec<NotableAttempt<'_>> = Vec::new();
        let mut used = vec![false; groups.len()];
        let mut g: Vec<&Row> = Vec::new();
        for i in 0..groups.len() {
            if used[i] {
                continue;
            }
            used[i] = true;
            g.clear();
            g.extend_from_slice(group(groups[i]));
            while let Some(last) = g.iter().rev().find(|r| !r.udp).copied() {
                if nm(last.cause) != "server_redirected" {
                    break;
                }
                let next = (0..groups.len()).find(|&j| {
                    let first = group(groups[j])[0];
                    !used[j]
                        && first.client_ip == last.client_ip
                        && first.routing_token
                        && first.start_s >= last.start_s
                        && first.start_s - last.end_s.max(last.start_s) <= ATTEMPT_GAP_S
                });
                let Some(j) = next else { break };
                used[j] = true;
                g.extend_from_slice(group(groups[j]));
            }
            // UDP transports ride along with their TCP connection: the attempt's kind and
            // outcome are the TCP connections'.
            let tcp: Vec<&Row> = g.iter().copied().filter(|r| !r.udp).collect();
            let basis: &[&Row] = if tcp.is_empty() { &g } else { &tcp };
            let (Some(first), Some(last)) = (g.first(), basis.last()) else {
                continue;
            };
            let kind = attempt_kind(basis, names);
            sum.attempts.add(nm(last.outcome));
            *sum.attempt_kinds.entry(kind.to_string()).or_default() += 1;
            if kind != "single" {
                notable.push(NotableAttempt {
                    first,
                    last,
                    kind,
                    connections: g.len(),
                    udp_failed: g
                        .iter()
                        .filter(|r| r.udp && nm(r.outcome) == "failure")
                        .count(),
                });
            }
        }
        notable.sort_by(|a, b| {
            a.first
                .start
                .cmp(&b.first.start)
                .then(nm(a.first.client_ip).cmp(nm(b.first.client_ip)))
        });
        sum.notable_attempts = notable
            .into_iter()
            .take(100)
            .map(|a| Attempt {
                udp_failed: a.udp_failed,
                client: nm(a.first.client_ip).to_string(),
                server: nm(a.first.server).to_string(),
                start: a.first.start.to_string(),
                connections: a.connections,
                kind: a.kind,
                final_outcome: nm(a.last.outcome).to_string(),
                final_cause: nm(a.last.cause).to_string(),
            })
            .collect();
        sum
    }
}

/// An attempt to list, before it is turned into an [`Attempt`].
struct NotableAttempt<'a> {
    first: &'a Row,
    last: &'a Row,
    kind: &'static str,
    connections: usize,
    udp_failed: usize,
}

fn attempt_kind(group: &[&Row], names: &Names) -> &'static str {
    if group.len() == 1 {
        return "single";
    }
    let nm = |id: u32| names.get(id);
    // NLA failures, inferred or decrypted (nla_logon_failure, nla_account_locked_out ...).
    let auth_failures = group
        .iter()
        .filter(|r| nm(r.cause).starts_with("nla_") && nm(r.outcome) == "failure")
        .count();
    if auth_failures >= 3 {
        return "repeated_authentication_failures";
    }
    if group.iter().any(|r| nm(r.cause) == "server_redirected")
        && group.iter().any(|r| r.server != group[0].server)
    {
        return "redirected";
    }
    let downgraded = group.windows(2).any(|w| {
        let cause = nm(w[0].cause);
        (cause.starts_with("neg_failure_") || cause == "server_selected_unrequested_protocol")
            && w[1].requested != w[0].requested
    });
    if downgraded {
        return "downgrade_after_negotiation_failure";
    }
    if group
        .iter()
        .rev()
        .skip(1)
        .any(|r| nm(r.outcome) == "failure")
    {
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
