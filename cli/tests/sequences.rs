//! EQL sequence rules end to end: `replay` (table, NDJSON, JSON summary),
//! `diff` between two versions of a sequence rule, `test` and `gaps`, on a
//! capture written here. Every expectation is derived by hand in the
//! comments from Elasticsearch's sequence semantics (docs/rule-semantics.md).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use insta_cmd::get_cargo_bin;
use serde_json::{json, Value};

const T0: i64 = 1_763_649_000_000_000_000;
const SEC: i64 = 1_000_000_000;
const TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

fn event(t: i64, container: Option<&str>, fields: Value) -> Value {
    let mut e = json!({
        "time": T0 + t * SEC, "host": "node-a", "pid": 10 + t, "tid": 10 + t, "ppid": 1,
        "uid": 0, "gid": 0, "cgroup_id": 1, "container_id": container,
    });
    for (k, v) in fields.as_object().expect("object") {
        e[k] = v.clone();
    }
    e
}

/// `cat` opening the token read-only.
fn read_token(t: i64, container: Option<&str>) -> Value {
    event(
        t,
        container,
        json!({"kind": "open", "comm": "cat", "exe": "/usr/bin/cat", "path": TOKEN, "flags": 0, "result": 3}),
    )
}

fn exec(t: i64, container: Option<&str>, name: &str) -> Value {
    let exe = format!("/usr/bin/{name}");
    event(
        t,
        container,
        json!({"kind": "exec", "comm": name, "exe": exe, "path": exe, "args": [name, "https://kubernetes.default.svc"], "result": 0}),
    )
}

/// The capture, one event per line (event index = line number).
fn capture_events() -> Vec<Value> {
    vec![
        read_token(0, Some("c1")),    // 0: stage 1 for c1
        read_token(1, Some("c2")),    // 1: stage 1 for c2
        exec(2, Some("c1"), "curl"),  // 2: stage 2 for c1: completes [0, 2]
        read_token(3, None),          // 3: host: container.id null, joins nothing
        exec(4, None, "curl"),        // 4: ... nor this
        exec(40, Some("c2"), "curl"), // 5: 39 s after 1: beyond maxspan=30s; within 60s
        read_token(41, Some("c2")),   // 6: stage 1 for c2 (overwrites 1 in its state)
        exec(45, Some("c2"), "wget"), // 7: completes [6, 7]
        exec(46, Some("c1"), "curl"), // 8: c1 has nothing pending: nothing
    ]
}

fn rule(maxspan: &str) -> String {
    format!(
        r#"[rule]
name = "Token read then a download tool"
rule_id = "seq-token-then-tool"
severity = "high"
language = "eql"
query = '''
sequence by container.id with maxspan={maxspan}
  [file where event.action == "open" and file.path like "*/serviceaccount/token"]
  [process where event.action == "exec" and process.name in ("curl", "wget")]
'''
"#
    )
}

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let lines: String = capture_events().iter().map(|e| format!("{e}\n")).collect();
        std::fs::write(dir.path().join("node.ndjson"), lines).expect("write capture");
        std::fs::write(dir.path().join("seq-30s.toml"), rule("30s")).expect("write rule");
        std::fs::write(dir.path().join("seq-60s.toml"), rule("60s")).expect("write rule");
        Setup { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(get_cargo_bin("tokenscan")).current_dir(self.dir.path()).args(args).output().expect("runs")
    }

    /// `tokenscan replay -f ndjson` of one rule file over `captures`: the finding objects.
    fn replay(&self, rules: &str, captures: &[&str]) -> Vec<Value> {
        let mut args = vec!["replay", "--rules", rules];
        args.extend(captures);
        args.extend(["-f", "ndjson", "-q"]);
        let out = self.run(&args);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        ndjson(&out)
    }

    /// `tokenscan diff` of two rule files over `captures`: each change as
    /// (`added`/`removed`, capture file name, event index), in output order.
    fn diff(&self, baseline: &str, candidate: &str, captures: &[&str]) -> Vec<(String, String, u64)> {
        let mut args = vec!["diff", "--baseline", baseline, "--candidate", candidate];
        args.extend(captures);
        args.extend(["-f", "ndjson", "-q"]);
        let out = self.run(&args);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        ndjson(&out)
            .iter()
            .map(|v| {
                (
                    v["change"].as_str().expect("change").to_string(),
                    capture_name(v),
                    v["event_index"].as_u64().expect("index"),
                )
            })
            .collect()
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The file name of a finding's `capture`.
fn capture_name(v: &Value) -> String {
    let capture = v["capture"].as_str().expect("capture");
    Path::new(capture).file_name().expect("file").to_string_lossy().into_owned()
}

fn ndjson(out: &Output) -> Vec<Value> {
    stdout(out).lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect()
}

#[test]
fn replay_reports_every_event_of_each_sequence_with_its_place_and_stage() {
    let s = Setup::new();
    let rows: Vec<(u64, String)> = s
        .replay("seq-30s.toml", &["node.ndjson"])
        .iter()
        .map(|v| {
            assert_eq!(v["rule_id"], "seq-token-then-tool");
            (v["event_index"].as_u64().expect("index"), v["reason"].as_str().expect("reason").to_string())
        })
        .collect();
    let indexes: Vec<u64> = rows.iter().map(|(i, _)| *i).collect();
    assert_eq!(indexes, [0, 2, 6, 7]);
    let heads: Vec<&str> = rows.iter().map(|(_, r)| r.split_once(": ").expect("head: why").0).collect();
    assert_eq!(
        heads,
        [
            "sequence node.ndjson:0, event 1 of 2 (stage 1)",
            "sequence node.ndjson:0, event 2 of 2 (stage 2)",
            "sequence node.ndjson:6, event 1 of 2 (stage 1)",
            "sequence node.ndjson:6, event 2 of 2 (stage 2)",
        ]
    );
    // Why each stage matched is the stage's own reason.
    assert!(rows[0].1.contains(TOKEN), "{}", rows[0].1);
    assert!(rows[3].1.contains("wget"), "{}", rows[3].1);

    // The table counts findings and sequences; the JSON summary too.
    let table = s.run(&["replay", "--rules", "seq-30s.toml", "node.ndjson"]);
    let text = stdout(&table);
    assert!(text.contains("4 findings in 2 sequences"), "{text}");
    let json = s.run(&["replay", "--rules", "seq-30s.toml", "node.ndjson", "-f", "json", "-q"]);
    let doc: Value = serde_json::from_str(&stdout(&json)).expect("json");
    let r = &doc["summary"]["rules"][0];
    assert_eq!(
        (r["findings"].as_u64(), r["sequences"].as_u64(), r["sequences_dropped"].as_u64()),
        (Some(4), Some(2), Some(0))
    );
}

#[test]
fn a_sequence_rule_replays_beside_single_event_rules_without_changing_theirs() {
    let s = Setup::new();
    let builtin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/rules");
    let builtin = builtin.to_str().expect("utf-8 path");
    let rows = |args: &[&str]| -> Vec<(String, u64)> {
        let out = s.run(args);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        ndjson(&out)
            .iter()
            .map(|v| (v["rule_id"].as_str().unwrap().to_string(), v["event_index"].as_u64().unwrap()))
            .collect()
    };
    let alone = rows(&["replay", "--rules", builtin, "node.ndjson", "-f", "ndjson", "-q"]);
    let together =
        rows(&["replay", "--rules", builtin, "--rules", "seq-30s.toml", "node.ndjson", "-f", "ndjson", "-q"]);
    let seq: Vec<u64> = together.iter().filter(|(r, _)| r == "seq-token-then-tool").map(|(_, i)| *i).collect();
    assert_eq!(seq, [0, 2, 6, 7]);
    let others: Vec<(String, u64)> = together.into_iter().filter(|(r, _)| r != "seq-token-then-tool").collect();
    assert_eq!(others, alone);
}

#[test]
fn diff_of_a_wider_maxspan_adds_exactly_the_sequence_it_completes() {
    // With maxspan=60s, event 5 (c2's curl, 39 s after c2's read at 1)
    // completes [1, 5]; then 6 starts again and 7 completes [6, 7] as before.
    let s = Setup::new();
    let changes = s.diff("seq-30s.toml", "seq-60s.toml", &["node.ndjson"]);
    let want = [("added", 1), ("added", 5)];
    assert_eq!(changes, want.map(|(c, i)| (c.to_string(), "node.ndjson".to_string(), i)));
}

#[test]
fn a_suite_pins_the_events_of_a_sequence_rule() {
    let s = Setup::new();
    let suite = String::from("[suite]\nname = \"sequences\"\n\n[[case]]\nname = \"read then tool\"\ncapture = \"node.ndjson\"\nrules = [\"seq-30s.toml\"]\nrule = \"seq-token-then-tool\"\nfire = [0, 2, 6, 7]\nnot_fire = [1, 5]\ncount = 4\n");
    std::fs::write(s.path("tokenscan-test.toml"), &suite).expect("write suite");
    let out = s.run(&["test", "tokenscan-test.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    // The same case expecting event 5 fails, naming it.
    std::fs::write(
        s.path("tokenscan-test.toml"),
        suite.replace("not_fire = [1, 5]", "fire = [5]").replace("fire = [0, 2, 6, 7]\n", ""),
    )
    .expect("write");
    let out = s.run(&["test", "tokenscan-test.toml"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
}

#[test]
fn rules_list_describes_a_sequence_rules_stages() {
    let s = Setup::new();
    let out = s.run(&["rules", "list", "--rules", "seq-30s.toml", "-f", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = stdout(&out);
    assert!(text.contains("\"stages\"") && text.contains("maxspan_ns"), "{text}");
}

fn piped_rule(id: &str, query: &str) -> String {
    format!("[rule]\nname = \"piped\"\nrule_id = \"{id}\"\nseverity = \"low\"\nlanguage = \"eql\"\nquery = '''\n{query}\n'''\n")
}

/// Runs `replay -f ndjson` with one rule file written from `text`; returns the event indexes.
fn indexes(s: &Setup, text: &str, capture: &str) -> Vec<u64> {
    std::fs::write(s.path("piped.toml"), text).expect("write rule");
    let out = s.run(&["replay", "--rules", "piped.toml", capture, "-f", "ndjson", "-q"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    ndjson(&out).iter().map(|v| v["event_index"].as_u64().expect("index")).collect()
}

#[test]
fn head_and_tail_cut_the_matches_of_the_whole_stream_by_time() {
    let s = Setup::new();
    let reads = r#"file where event.action == "open" and file.path like "*/serviceaccount/token""#;
    // The token reads are events 0 (0 s), 1 (1 s), 3 (3 s) and 6 (41 s).
    assert_eq!(indexes(&s, &piped_rule("p", reads), "node.ndjson"), [0, 1, 3, 6]);
    assert_eq!(indexes(&s, &piped_rule("p", &format!("{reads} | head 2")), "node.ndjson"), [0, 1]);
    assert_eq!(indexes(&s, &piped_rule("p", &format!("{reads} | tail 2")), "node.ndjson"), [3, 6]);
    // Pipes apply in turn: the first three, then the last of those.
    assert_eq!(indexes(&s, &piped_rule("p", &format!("{reads} | head 3 | tail 1")), "node.ndjson"), [3]);
    // A count beyond the matches keeps them all.
    assert_eq!(indexes(&s, &piped_rule("p", &format!("{reads} | tail 100")), "node.ndjson"), [0, 1, 3, 6]);
    // Order is by timestamp, not by position: the same events written in
    // reverse (event i becomes 8 - i), the two earliest reads are events 8 and 7.
    let reversed: String = capture_events().iter().rev().map(|e| format!("{e}\n")).collect();
    std::fs::write(s.path("reversed.ndjson"), reversed).expect("write capture");
    assert_eq!(indexes(&s, &piped_rule("p", &format!("{reads} | head 2")), "reversed.ndjson"), [7, 8]);
}

#[test]
fn head_and_tail_on_a_sequence_keep_whole_sequences_in_completion_order() {
    let s = Setup::new();
    // Two sequences: [0, 2] completes at 2 s, [6, 7] at 45 s.
    let seq = rule("30s").replace("rule_id = \"seq-token-then-tool\"", "rule_id = \"s\"");
    let piped = |pipe: &str| {
        seq.replace(
            "process.name in (\"curl\", \"wget\")]\n",
            &format!("process.name in (\"curl\", \"wget\")]\n{pipe}\n"),
        )
    };
    assert_eq!(indexes(&s, &piped("| head 1"), "node.ndjson"), [0, 2]);
    assert_eq!(indexes(&s, &piped("| tail 1"), "node.ndjson"), [6, 7]);
    std::fs::write(s.path("piped.toml"), piped("| tail 1")).expect("write rule");
    let json = s.run(&["replay", "--rules", "piped.toml", "node.ndjson", "-f", "json", "-q"]);
    let doc: Value = serde_json::from_str(&stdout(&json)).expect("json");
    assert_eq!(doc["summary"]["rules"][0]["sequences"], 1);
}

/// The node half of a token theft, for the cross-platform test: two pods'
/// containers (rows 0 and 1) and four opens of the token. Times are
/// 2026-11-20T10:15:SS.
fn pod_node_events() -> Vec<Value> {
    let at = |s: &str| format!("2026-11-20T10:{s}Z");
    let container = |s: &str, id: &str, pod: &str| {
        json!({"time": at(s), "kind": "container", "host": "node-a", "pid": 1, "tid": 1, "ppid": 0,
               "uid": 0, "gid": 0, "comm": "runc", "cgroup_id": 7, "container_id": id,
               "pod_name": pod, "pod_namespace": "shop", "container_name": "app"})
    };
    let open = |s: &str, id: &str, pid: u32, flags: i32, tty: Option<&str>| {
        json!({"time": at(s), "kind": "open", "host": "node-a", "pid": pid, "tid": pid, "ppid": 1,
               "uid": 0, "gid": 0, "comm": "sh", "exe": "/bin/sh", "path": TOKEN, "flags": flags,
               "result": 3, "tty": tty, "cgroup_id": 7, "container_id": id})
    };
    vec![
        container("15:00.000", "c-web", "web-1"),          // 0
        container("15:00.000", "c-api", "api-7"),          // 1
        open("15:31.000", "c-web", 100, 2, Some("pts/0")), // 2: O_RDWR, interactive: stage 1 for web-1
        open("15:31.500", "c-api", 200, 2, None),          // 3: no tty: not interactive
        open("15:32.000", "c-api", 201, 0, Some("pts/1")), // 4: O_RDONLY: event.type "access"
        open("15:32.500", "c-api", 202, 2, Some("pts/1")), // 5: stage 1 for api-7
    ]
}

/// The API half, as kube-apiserver writes it with `--audit-log-path`.
fn audit_line(id: &str, stage: &str, pod: &str, at: &str) -> String {
    json!({"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": id,
           "stage": stage, "requestURI": "/api/v1/namespaces/shop/secrets", "verb": "list",
           "user": {"username": "system:serviceaccount:shop:default",
                    "extra": {"authentication.kubernetes.io/pod-name": [pod]}},
           "sourceIPs": ["10.244.1.17"], "userAgent": "curl/8.5.0",
           "objectRef": {"resource": "secrets", "namespace": "shop", "apiVersion": "v1"},
           "requestReceivedTimestamp": format!("2026-11-20T10:{at}Z"),
           "stageTimestamp": format!("2026-11-20T10:{at}Z")})
    .to_string()
}

/// The grammar and fields of detection-rules' cross-platform rule
/// "Service Account Token Access Followed by Kubernetes API Request",
/// written here: a write-intent open of the token by an interactive process
/// in a container, then an API response to a request made with that pod's
/// token, joined by pod name across the node capture and the audit log.
fn token_then_api_rule(maxspan: &str) -> String {
    format!(
        r#"[rule]
name = "Token read, then the API used with the pod's token"
rule_id = "token-then-api"
severity = "high"
language = "eql"
query = '''
sequence with maxspan={maxspan}
  [file where host.os.type == "linux" and event.type == "change" and event.action == "open" and
   file.path in ("/var/run/secrets/kubernetes.io/serviceaccount/token",
                 "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt") and
   process.interactive == true and container.id like "*"] by orchestrator.resource.name
  [any where data_stream.dataset == "kubernetes.audit_logs" and
   kubernetes.audit.stage in ("ResponseComplete", "ResponseStarted")]
   by `kubernetes.audit.user.extra.authentication.kubernetes.io/pod-name`
'''
"#
    )
}

#[test]
fn a_sequence_joins_a_node_capture_and_a_kubernetes_audit_log_by_pod_name() {
    let s = Setup::new();
    let node: String = pod_node_events().iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(s.path("pods.ndjson"), node).expect("write capture");
    let audit = [
        audit_line("a-1", "RequestReceived", "web-1", "15:33.100"), // 0: not a response stage
        audit_line("a-1", "ResponseComplete", "web-1", "15:33.104"), // 1: completes web-1's [2, 1]
        audit_line("b-2", "ResponseComplete", "db-0", "15:34.000"), // 2: db-0 read nothing
        audit_line("c-3", "ResponseComplete", "api-7", "16:40.000"), // 3: 67.5 s after api-7's read
    ]
    .join("\n");
    std::fs::write(s.path("audit.log"), audit + "\n").expect("write audit log");
    let out = s.run(&["import", "k8s-audit", "audit.log", "-o", "audit.parquet"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(s.path("60s.toml"), token_then_api_rule("60s")).expect("write rule");
    std::fs::write(s.path("90s.toml"), token_then_api_rule("90s")).expect("write rule");

    // Only web-1's theft is whole within 60 s: its read (node event 2) and
    // the response to its token (audit event 1), one sequence.
    let rows: Vec<(String, u64, String)> = s
        .replay("60s.toml", &["pods.ndjson", "audit.parquet"])
        .iter()
        .map(|v| {
            let head = v["reason"].as_str().expect("reason").split_once(": ").expect("head: why").0.to_string();
            (capture_name(v), v["event_index"].as_u64().expect("index"), head)
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("pods.ndjson".to_string(), 2, "sequence pods.ndjson:2, event 1 of 2 (stage 1)".to_string()),
            ("audit.parquet".to_string(), 1, "sequence pods.ndjson:2, event 2 of 2 (stage 2)".to_string()),
        ]
    );

    // The table shows the API half as the request made with web-1's token,
    // not as a process on a host; the summary lists no process for it.
    let table = stdout(&s.run(&["replay", "--rules", "60s.toml", "pods.ndjson", "audit.parquet"]));
    let audit_row = table.lines().find(|l| l.contains("audit.parquet#1")).expect("the audit event's row");
    assert!(audit_row.contains("token of web-1"), "{table}");
    assert!(
        audit_row.contains("list /api/v1/namespaces/shop/secrets by system:serviceaccount:shop:default"),
        "{table}"
    );
    let processes = table.split("  processes").nth(1).expect("processes block");
    assert!(!processes.contains("pid 0"), "{table}");

    // Widening maxspan to 90 s adds api-7's read (node 5) and its API use
    // (audit 3), 67.5 s apart, and nothing else.
    let mut changes = s.diff("60s.toml", "90s.toml", &["pods.ndjson", "audit.parquet"]);
    changes.sort();
    assert_eq!(
        changes,
        [("added".to_string(), "audit.parquet".to_string(), 3), ("added".to_string(), "pods.ndjson".to_string(), 5)]
    );
}

/// A sample rule over the capture of [`capture_events`]: a download tool
/// and a token read in the same container, in either order (Elasticsearch's
/// `sample`: no order, no time limit, one sample per container).
fn sample_rule(tools: &str) -> String {
    format!(
        r#"[rule]
name = "Download tool and token read in one container"
rule_id = "smp-tool-and-token"
severity = "medium"
language = "eql"
query = '''
sample by container.id
  [process where event.action == "exec" and process.name in ({tools})]
  [file where event.action == "open" and file.path like "*/serviceaccount/token"]
'''
"#
    )
}

#[test]
fn a_sample_rule_reports_one_sample_per_container_and_diffs_by_event() {
    // By hand, on capture_events(): filter 1 (curl or wget) is met by c1's 2
    // and 8 and by c2's 5 and 7; filter 2 (the token) by c1's 0 and c2's 1
    // and 6; 3 and 4 have no container (null key: no sample). Each filter
    // takes its container's earliest event: c1 = {0 (filter 2), 2 (filter 1)}
    // although the read came first, labelled by its earliest event 0;
    // c2 = {1 (filter 2), 5 (filter 1)}, 39 s apart (no time limit), labelled 1.
    let s = Setup::new();
    std::fs::write(s.path("smp-any.toml"), sample_rule(r#""curl", "wget""#)).expect("write rule");
    std::fs::write(s.path("smp-wget.toml"), sample_rule(r#""wget""#)).expect("write rule");
    let rows: Vec<(u64, String)> = s
        .replay("smp-any.toml", &["node.ndjson"])
        .iter()
        .map(|v| {
            assert_eq!(v["rule_id"], "smp-tool-and-token");
            (v["event_index"].as_u64().expect("index"), v["reason"].as_str().expect("reason").to_string())
        })
        .collect();
    let heads: Vec<(u64, &str)> = rows.iter().map(|(i, r)| (*i, r.split_once(": ").expect("head: why").0)).collect();
    assert_eq!(
        heads,
        [
            (0, "sample node.ndjson:0, event 1 of 2 (filter 2)"),
            (1, "sample node.ndjson:1, event 1 of 2 (filter 2)"),
            (2, "sample node.ndjson:0, event 2 of 2 (filter 1)"),
            (5, "sample node.ndjson:1, event 2 of 2 (filter 1)"),
        ]
    );
    // Why each event matched is its filter's own reason.
    assert!(rows[0].1.contains(TOKEN), "{}", rows[0].1);
    assert!(rows[2].1.contains("curl"), "{}", rows[2].1);

    // The table counts samples; the JSON summary has `samples`.
    let text = stdout(&s.run(&["replay", "--rules", "smp-any.toml", "node.ndjson"]));
    assert!(text.contains("4 findings in 2 samples"), "{text}");
    let json = s.run(&["replay", "--rules", "smp-any.toml", "node.ndjson", "-f", "json", "-q"]);
    let doc: Value = serde_json::from_str(&stdout(&json)).expect("json");
    let r = &doc["summary"]["rules"][0];
    assert_eq!((r["findings"].as_u64(), r["samples"].as_u64()), (Some(4), Some(2)));

    // With wget alone, c1 has no tool (no sample) and c2's tool is 7: its
    // sample is {1, 7}. Against the first rule: 0, 2 and 5 are removed, 7 is
    // added, and 1 is a finding of both.
    let changes = s.diff("smp-any.toml", "smp-wget.toml", &["node.ndjson"]);
    let want = [("removed", 0), ("removed", 2), ("removed", 5), ("added", 7)];
    assert_eq!(changes, want.map(|(c, i)| (c.to_string(), "node.ndjson".to_string(), i)));

    // `rules list` describes the sample's filters.
    let text = stdout(&s.run(&["rules", "list", "--rules", "smp-any.toml", "-f", "json"]));
    let list: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(list[0]["logic"]["sample"]["filters"].as_array().map(Vec::len), Some(2), "{text}");
}
