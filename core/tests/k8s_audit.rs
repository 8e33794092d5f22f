//! `tokenscan import k8s-audit`: Kubernetes API server audit logs become
//! captures of `k8s_audit` events, which EQL rules see through the ECS view
//! with the field names of Elastic's Kubernetes audit integration.
//!
//! The audit log below is written by hand in the format kube-apiserver
//! writes with `--audit-log-path` (one `audit.k8s.io/v1` `Event` per line):
//! two pods' service accounts (`web-1` of `shop:web`, `api-7` of
//! `shop:api`), a kubelet, forbidden requests, and three lines that must not
//! become rows. Every expected value is derived by hand from these lines;
//! the captures are generated from them in each test (nothing binary is
//! committed).

use std::io::Write;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use serde_json::{json, Value};
use tokenscan_core::capture::{CaptureFormat, EventBatch, NdjsonWriter};
use tokenscan_core::eql::{CompileOptions, EqlSequence, StageRef};
use tokenscan_core::import::{import_files, import_k8s_audit, CollectCapture, ImportFormat, ImportOptions};
use tokenscan_core::replay::{CollectSink, ReplayOptions, Replayer};
use tokenscan_core::rules::RuleSet;

/// Line 1: `web-1`'s token, `get` of its own pod, first stage (no response, no authorization yet).
const L1: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"5d1e0c8a-0001","stage":"RequestReceived","requestURI":"/api/v1/namespaces/shop/pods/web-1","verb":"get","user":{"username":"system:serviceaccount:shop:web","uid":"0b9e4a51-1c1f-4e0e-9a51-7d4f0c6a2b11","groups":["system:serviceaccounts","system:serviceaccounts:shop","system:authenticated"],"extra":{"authentication.kubernetes.io/credential-id":["JTI=6c1c3a52-0f6b-4d55-9a53-1b6f1e1c2d3e"],"authentication.kubernetes.io/node-name":["node-a"],"authentication.kubernetes.io/pod-name":["web-1"],"authentication.kubernetes.io/pod-uid":["7f3c2d1e-5b4a-4c3d-8e2f-1a0b9c8d7e6f"]}},"sourceIPs":["10.244.1.17"],"userAgent":"curl/8.5.0","objectRef":{"resource":"pods","namespace":"shop","name":"web-1","apiVersion":"v1"},"requestReceivedTimestamp":"2026-11-20T10:15:33.100000Z","stageTimestamp":"2026-11-20T10:15:33.100000Z"}"#;
/// Line 2: the same request, completed and allowed.
const L2: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"5d1e0c8a-0001","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/shop/pods/web-1","verb":"get","user":{"username":"system:serviceaccount:shop:web","uid":"0b9e4a51-1c1f-4e0e-9a51-7d4f0c6a2b11","groups":["system:serviceaccounts","system:serviceaccounts:shop","system:authenticated"],"extra":{"authentication.kubernetes.io/credential-id":["JTI=6c1c3a52-0f6b-4d55-9a53-1b6f1e1c2d3e"],"authentication.kubernetes.io/node-name":["node-a"],"authentication.kubernetes.io/pod-name":["web-1"],"authentication.kubernetes.io/pod-uid":["7f3c2d1e-5b4a-4c3d-8e2f-1a0b9c8d7e6f"]}},"sourceIPs":["10.244.1.17"],"userAgent":"curl/8.5.0","objectRef":{"resource":"pods","namespace":"shop","name":"web-1","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2026-11-20T10:15:33.100000Z","stageTimestamp":"2026-11-20T10:15:33.104512Z","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC: allowed by RoleBinding \"web-read/shop\" of Role \"pod-reader\" to ServiceAccount \"web/shop\""}}"#;
/// Line 3: `api-7`'s token lists secrets and is refused.
const L3: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"9a7b6c5d-0002","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/shop/secrets?limit=500","verb":"list","user":{"username":"system:serviceaccount:shop:api","uid":"4c3b2a19-8d7e-4f6a-b5c4-d3e2f1a0b9c8","groups":["system:serviceaccounts","system:serviceaccounts:shop","system:authenticated"],"extra":{"authentication.kubernetes.io/pod-name":["api-7"],"authentication.kubernetes.io/pod-uid":["e1d2c3b4-a5f6-4e7d-8c9b-0a1f2e3d4c5b"]}},"sourceIPs":["10.244.2.9"],"userAgent":"kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46","objectRef":{"resource":"secrets","namespace":"shop","apiVersion":"v1"},"responseStatus":{"metadata":{},"status":"Failure","message":"secrets is forbidden","reason":"Forbidden","code":403},"requestReceivedTimestamp":"2026-11-20T10:15:34.000000Z","stageTimestamp":"2026-11-20T10:15:34.002000Z","annotations":{"authorization.k8s.io/decision":"forbid","authorization.k8s.io/reason":""}}"#;
/// Line 4: not JSON.
const L4: &str = "I1120 10:15:34.500000 apiserver audit backend restarted {";
/// Line 5: the older API version, otherwise a good event.
const L5: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1beta1","level":"Metadata","auditID":"1111","stage":"ResponseComplete","requestURI":"/healthz","verb":"get","user":{"username":"system:anonymous"},"sourceIPs":["10.0.0.1"],"stageTimestamp":"2026-11-20T10:15:34.600000Z"}"#;
/// Line 6: no `stage`.
const L6: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"2222","requestURI":"/version","verb":"get","user":{"username":"system:anonymous"},"sourceIPs":["10.0.0.1"],"stageTimestamp":"2026-11-20T10:15:34.700000Z"}"#;
/// Line 8 (line 7 is blank): the kubelet's watch of nodes, a user without pod extras.
const L8: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"3c4d5e6f-0003","stage":"ResponseStarted","requestURI":"/api/v1/nodes?allowWatchBookmarks=true&watch=true","verb":"watch","user":{"username":"system:node:node-a","groups":["system:nodes","system:authenticated"]},"sourceIPs":["192.168.49.2"],"userAgent":"kubelet/v1.31.2 (linux/amd64) kubernetes/5864a46","objectRef":{"resource":"nodes","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2026-11-20T10:15:34.990000Z","stageTimestamp":"2026-11-20T10:15:35.000000Z","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":""}}"#;
/// Line 9: `web-1`'s token tries to exec into a pod of kube-system and is refused.
const L9: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"7e8f9a0b-0004","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/kube-system/pods/coredns-5d78c9869d-x2x7q/exec?command=sh&stdin=true&tty=true","verb":"create","user":{"username":"system:serviceaccount:shop:web","uid":"0b9e4a51-1c1f-4e0e-9a51-7d4f0c6a2b11","groups":["system:serviceaccounts","system:serviceaccounts:shop","system:authenticated"],"extra":{"authentication.kubernetes.io/pod-name":["web-1"],"authentication.kubernetes.io/pod-uid":["7f3c2d1e-5b4a-4c3d-8e2f-1a0b9c8d7e6f"]}},"sourceIPs":["10.244.1.17"],"userAgent":"curl/8.5.0","objectRef":{"resource":"pods","namespace":"kube-system","name":"coredns-5d78c9869d-x2x7q","apiVersion":"v1","subresource":"exec"},"responseStatus":{"metadata":{},"code":403},"requestReceivedTimestamp":"2026-11-20T10:15:36.008000Z","stageTimestamp":"2026-11-20T10:15:36.010000Z","annotations":{"authorization.k8s.io/decision":"forbid","authorization.k8s.io/reason":""}}"#;

/// The whole log: lines 1 to 9, line 7 blank.
fn audit_log() -> String {
    [L1, L2, L3, L4, L5, L6, "", L8, L9].join("\n") + "\n"
}

fn import(bytes: &[u8], options: &ImportOptions) -> (Vec<EventBatch>, tokenscan_core::import::ImportReport) {
    let mut sink = CollectCapture::default();
    let report = import_k8s_audit(bytes, Path::new("audit.log"), options, &mut sink).expect("import succeeds");
    (sink.batches, report)
}

/// Every row as the JSON object the NDJSON capture writer gives it.
fn rows(batches: &[EventBatch]) -> Vec<Value> {
    let mut w = NdjsonWriter::new(Vec::new(), "rows");
    for b in batches {
        w.write(b).expect("ndjson");
    }
    let text = String::from_utf8(w.finish().expect("flush")).expect("utf-8");
    text.lines().map(|l| serde_json::from_str(l).expect("json")).collect()
}

/// A row's node columns: not about a node, so empty, zero or null.
fn audit_row(audit: Value) -> Value {
    let mut row = json!({
        "kind": "k8s_audit", "host": "", "pid": 0, "tid": 0, "ppid": 0, "uid": 0, "gid": 0, "comm": "",
        "exe": null, "args": null, "path": null, "requested_path": null, "flags": null, "result": null,
        "tty": null, "cgroup_id": 0, "container_id": null,
    });
    row.as_object_mut().unwrap().extend(audit.as_object().unwrap().clone());
    row
}

const WEB_GROUPS: [&str; 3] = ["system:serviceaccounts", "system:serviceaccounts:shop", "system:authenticated"];

/// The five rows the log must give, derived by hand from its lines: `time`
/// is `stageTimestamp`, the pod is the first value of the pod-name extra, the
/// two authorization annotations are kept, `objectRef.apiGroup` is absent
/// from every line (the core group), so null.
fn expected_rows() -> Vec<Value> {
    vec![
        audit_row(json!({
            "time": "2026-11-20T10:15:33.100000000Z", "audit_id": "5d1e0c8a-0001", "audit_stage": "RequestReceived",
            "audit_verb": "get", "audit_request_uri": "/api/v1/namespaces/shop/pods/web-1",
            "audit_user": "system:serviceaccount:shop:web", "audit_user_groups": WEB_GROUPS, "audit_pod_name": "web-1",
            "audit_source_ips": ["10.244.1.17"], "audit_user_agent": "curl/8.5.0", "audit_resource": "pods",
            "audit_namespace": "shop", "audit_name": "web-1", "audit_api_version": "v1",
            "audit_request_received": "2026-11-20T10:15:33.100000000Z",
        })),
        audit_row(json!({
            "time": "2026-11-20T10:15:33.104512000Z", "audit_id": "5d1e0c8a-0001", "audit_stage": "ResponseComplete",
            "audit_verb": "get", "audit_request_uri": "/api/v1/namespaces/shop/pods/web-1",
            "audit_user": "system:serviceaccount:shop:web", "audit_user_groups": WEB_GROUPS, "audit_pod_name": "web-1",
            "audit_source_ips": ["10.244.1.17"], "audit_user_agent": "curl/8.5.0", "audit_resource": "pods",
            "audit_namespace": "shop", "audit_name": "web-1", "audit_api_version": "v1", "audit_response_code": 200,
            "audit_decision": "allow",
            "audit_reason": "RBAC: allowed by RoleBinding \"web-read/shop\" of Role \"pod-reader\" to ServiceAccount \"web/shop\"",
            "audit_request_received": "2026-11-20T10:15:33.100000000Z",
        })),
        audit_row(json!({
            "time": "2026-11-20T10:15:34.002000000Z", "audit_id": "9a7b6c5d-0002", "audit_stage": "ResponseComplete",
            "audit_verb": "list", "audit_request_uri": "/api/v1/namespaces/shop/secrets?limit=500",
            "audit_user": "system:serviceaccount:shop:api", "audit_user_groups": WEB_GROUPS, "audit_pod_name": "api-7",
            "audit_source_ips": ["10.244.2.9"], "audit_user_agent": "kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46",
            "audit_resource": "secrets", "audit_namespace": "shop", "audit_api_version": "v1",
            "audit_response_code": 403, "audit_decision": "forbid", "audit_reason": "",
            "audit_request_received": "2026-11-20T10:15:34.000000000Z",
        })),
        audit_row(json!({
            "time": "2026-11-20T10:15:35.000000000Z", "audit_id": "3c4d5e6f-0003", "audit_stage": "ResponseStarted",
            "audit_verb": "watch", "audit_request_uri": "/api/v1/nodes?allowWatchBookmarks=true&watch=true",
            "audit_user": "system:node:node-a", "audit_user_groups": ["system:nodes", "system:authenticated"],
            "audit_source_ips": ["192.168.49.2"], "audit_user_agent": "kubelet/v1.31.2 (linux/amd64) kubernetes/5864a46",
            "audit_resource": "nodes", "audit_api_version": "v1", "audit_response_code": 200,
            "audit_decision": "allow", "audit_reason": "",
            "audit_request_received": "2026-11-20T10:15:34.990000000Z",
        })),
        audit_row(json!({
            "time": "2026-11-20T10:15:36.010000000Z", "audit_id": "7e8f9a0b-0004", "audit_stage": "ResponseComplete",
            "audit_verb": "create",
            "audit_request_uri": "/api/v1/namespaces/kube-system/pods/coredns-5d78c9869d-x2x7q/exec?command=sh&stdin=true&tty=true",
            "audit_user": "system:serviceaccount:shop:web", "audit_user_groups": WEB_GROUPS, "audit_pod_name": "web-1",
            "audit_source_ips": ["10.244.1.17"], "audit_user_agent": "curl/8.5.0", "audit_resource": "pods",
            "audit_subresource": "exec", "audit_namespace": "kube-system", "audit_name": "coredns-5d78c9869d-x2x7q",
            "audit_api_version": "v1", "audit_response_code": 403, "audit_decision": "forbid", "audit_reason": "",
            "audit_request_received": "2026-11-20T10:15:36.008000000Z",
        })),
    ]
}

#[test]
fn an_audit_log_imports_to_the_hand_derived_rows() {
    let (batches, report) = import(audit_log().as_bytes(), &ImportOptions::default());
    let got = rows(&batches);
    let want = expected_rows();
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "row {i}");
    }
    assert_eq!((report.lines, report.events, report.audits), (8, 5, 5));
    assert_eq!((report.opens, report.execs, report.containers, report.processes), (0, 0, 0, 0));
}

#[test]
fn gzip_input_gives_the_same_rows() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(audit_log().as_bytes()).unwrap();
    let (batches, report) = import(&gz.finish().unwrap(), &ImportOptions::default());
    assert!(report.gzip);
    assert_eq!(rows(&batches), expected_rows());
}

#[test]
fn bad_lines_are_counted_and_shown_with_their_line_numbers() {
    let (_, report) = import(audit_log().as_bytes(), &ImportOptions::default());
    assert_eq!(report.unmapped, 3);
    let by_reason: Vec<(&str, u64)> = report.unmapped_by_reason.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(by_reason, vec![("invalid JSON", 1), ("missing field", 1), ("other apiVersion", 1)]);
    let shown: Vec<(u64, &str)> = report.examples.iter().map(|u| (u.line, u.reason.as_str())).collect();
    assert_eq!(shown.len(), 3);
    assert_eq!(shown[0].0, 4);
    assert!(shown[0].1.starts_with("invalid JSON: "), "{}", shown[0].1);
    assert_eq!(shown[1], (5, "`apiVersion` is \"audit.k8s.io/v1beta1\"; only \"audit.k8s.io/v1\" is imported"));
    assert_eq!(shown[2], (6, "audit event without `stage`"));
    assert_eq!(report.examples[1].to_string(), format!("audit.log: line 5: {}", shown[1].1));
}

#[test]
fn strict_fails_on_the_first_bad_line() {
    let options = ImportOptions { strict: true, ..ImportOptions::default() };
    let mut sink = CollectCapture::default();
    let e = import_k8s_audit(audit_log().as_bytes(), Path::new("audit.log"), &options, &mut sink).unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("audit.log: line 4: invalid JSON: "), "{msg}");
    assert!(msg.ends_with("(--strict: every line must map)"), "{msg}");
    // Without the bad lines, --strict imports everything.
    let good = [L1, L2, L3, L8, L9].join("\n");
    let (batches, report) = import(good.as_bytes(), &options);
    assert_eq!((rows(&batches).len(), report.unmapped), (5, 0));
}

/// Writes the log to a file and imports it to a capture of format `to` there.
fn capture(dir: &Path, to: CaptureFormat) -> PathBuf {
    let log = dir.join("audit.log");
    std::fs::write(&log, audit_log()).unwrap();
    let out = dir.join(match to {
        CaptureFormat::Parquet => "audit.parquet",
        CaptureFormat::Ndjson => "audit.ndjson",
    });
    let file = std::fs::File::create(&out).unwrap();
    import_files(ImportFormat::K8sAudit, &[&log], file, &out, to, &ImportOptions::default()).expect("import");
    out
}

/// The event indexes where a rule of `query`, loaded from a rule file, fires on `capture`.
fn fires(capture: &Path, query: &str) -> Vec<u64> {
    let rule = format!(
        "[rule]\nname = \"audit test\"\nrule_id = \"audit-test\"\nseverity = \"low\"\nlanguage = \"eql\"\nquery = '''\n{query}\n'''\n"
    );
    let dir = capture.parent().unwrap();
    let path = dir.join("rule.toml");
    std::fs::write(&path, rule).unwrap();
    let rules = RuleSet::load(&[&path], &CompileOptions::default()).expect("the rule loads");
    let mut sink = CollectSink::default();
    Replayer::new(rules, ReplayOptions::default()).replay(&[capture], &mut sink).expect("replay");
    let mut out = Vec::new();
    for b in &sink.batches {
        let ix = b.column(b.schema().index_of("event_index").unwrap()).as_primitive::<UInt64Type>();
        out.extend((0..ix.len()).map(|i| ix.value(i)));
    }
    out
}

const POD_WEB_1: &str = "any where data_stream.dataset == \"kubernetes.audit_logs\" and \
     `kubernetes.audit.user.extra.authentication.kubernetes.io/pod-name` == \"web-1\"";

#[test]
fn single_event_eql_selects_the_expected_audit_events() {
    let dir = tempfile::tempdir().unwrap();
    for to in [CaptureFormat::Parquet, CaptureFormat::Ndjson] {
        let c = capture(dir.path(), to);
        // Rows 0, 1 and 4 were authenticated by web-1's token.
        assert_eq!(fires(&c, POD_WEB_1), vec![0, 1, 4], "{to:?}");
        // The audit half of the cross-platform rules: a response stage.
        let responses =
            format!("{POD_WEB_1} and kubernetes.audit.stage in (\"ResponseComplete\", \"ResponseStarted\")");
        assert_eq!(fires(&c, &responses), vec![1, 4]);
        // Forbidden requests, by the renamed annotation key.
        let forbid = "any where `kubernetes.audit.annotations.authorization_k8s_io/decision` == \"forbid\"";
        assert_eq!(fires(&c, forbid), vec![2, 4]);
        assert_eq!(fires(&c, "any where kubernetes.audit.responseStatus.code >= 400"), vec![2, 4]);
        assert_eq!(fires(&c, "any where kubernetes.audit.objectRef.subresource == \"exec\""), vec![4]);
        assert_eq!(fires(&c, "any where kubernetes.audit.user.groups == \"system:nodes\""), vec![3]);
        assert_eq!(fires(&c, "any where kubernetes.audit.verb in (\"list\", \"watch\")"), vec![2, 3]);
        assert_eq!(
            fires(&c, "any where kubernetes.audit.requestReceivedTimestamp == \"2026-11-20T10:15:34.990000000Z\""),
            vec![3]
        );
        // Every audit event is visible to `any where`, none to the node categories.
        assert_eq!(fires(&c, "any where true"), vec![0, 1, 2, 3, 4]);
        assert_eq!(fires(&c, "file where true"), Vec::<u64>::new());
        assert_eq!(fires(&c, "process where true"), Vec::<u64>::new());
        // Node fields are missing on audit events, whatever the node columns hold.
        // (`host` is "", which `like "*"` would match if the field were not missing.)
        assert_eq!(fires(&c, "any where host.name like \"*\""), Vec::<u64>::new());
        // Except `host.os.type`: Elastic Agent's host, a Linux control-plane node, adds it to audit events.
        assert_eq!(fires(&c, "any where host.os.type == \"linux\" and kubernetes.audit.verb == \"get\""), vec![0, 1]);
        assert_eq!(fires(&c, "any where process.pid == 0"), Vec::<u64>::new());
        assert_eq!(fires(&c, "any where event.dataset == \"cloud_defend.process\""), Vec::<u64>::new());
    }
}

/// A sequence of our own with the shape of the cross-platform rules: a node
/// stage joined by pod name to an audit stage joined by the pod-name extra.
const JOIN: &str = "sequence with maxspan=30s
  [file where file.path == \"/var/run/secrets/kubernetes.io/serviceaccount/token\"] by orchestrator.resource.name
  [any where data_stream.dataset == \"kubernetes.audit_logs\" and kubernetes.audit.verb != \"watch\"]
    by `kubernetes.audit.user.extra.authentication.kubernetes.io/pod-name`";

#[test]
fn the_pod_name_joins_a_sequence_stage() {
    // Multi-valued fields are refused as join keys: the pod name must be single-valued.
    let seq = EqlSequence::compile_all(JOIN, &CompileOptions::default()).expect("the sequence compiles");
    let (batches, _) = import(audit_log().as_bytes(), &ImportOptions::default());
    let mut got = Vec::new();
    for b in &batches {
        for e in seq.stage_events(b, 0) {
            for (stage, key) in e.matches {
                got.push((e.id.1, e.time, stage, key));
            }
        }
    }
    // Stage 1 (the audit stage) selects every event but the kubelet's watch
    // (row 3); its key is the pod name.
    let key = |p: &str| Some(vec![Some(p.to_string())]);
    let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp_nanos_opt().unwrap();
    assert_eq!(
        got,
        vec![
            (0, t("2026-11-20T10:15:33.100Z"), StageRef::Stage(1), key("web-1")),
            (1, t("2026-11-20T10:15:33.104512Z"), StageRef::Stage(1), key("web-1")),
            (2, t("2026-11-20T10:15:34.002Z"), StageRef::Stage(1), key("api-7")),
            (4, t("2026-11-20T10:15:36.010Z"), StageRef::Stage(1), key("web-1")),
        ]
    );
}

/// `rules check`'s messages for a rule file holding `query`.
fn check(query: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rule.toml");
    let rule = format!("[rule]\nname = \"t\"\nrule_id = \"t\"\nseverity = \"low\"\nquery = '''\n{query}\n'''\n");
    std::fs::write(&path, rule).unwrap();
    tokenscan_core::lint::check_file(&path, &CompileOptions::default()).into_iter().map(|d| d.message).collect()
}

#[test]
fn rules_check_knows_which_events_carry_the_audit_fields() {
    // The audit stage of the cross-platform rules lints clean.
    let audit_stage = "any where data_stream.dataset == \"kubernetes.audit_logs\" and \
        kubernetes.audit.stage in (\"ResponseComplete\", \"ResponseStarted\") and \
        `kubernetes.audit.annotations.authorization_k8s_io/decision` == \"forbid\"";
    assert_eq!(check(audit_stage), Vec::<String>::new());
    // An audit field under a node category can never be true.
    let wrong = check("file where kubernetes.audit.verb == \"get\"");
    assert_eq!(wrong.len(), 1, "{wrong:?}");
    assert!(wrong[0].contains("`kubernetes.audit.verb` is only set on Kubernetes audit events"), "{}", wrong[0]);
    // So is a node field on audit events only.
    let node = check("any where data_stream.dataset == \"kubernetes.audit_logs\" and process.name == \"curl\"");
    assert_eq!(node.len(), 1, "{node:?}");
    assert!(node[0].contains("`process.name` is only set on node (process and file) events"), "{}", node[0]);
}
