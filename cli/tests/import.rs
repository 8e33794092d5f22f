//! End-to-end tests of `tokenscan import` and `tokenscan export`: what a user
//! sees on stderr, the exit code, and the capture that lands on disk.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use insta_cmd::get_cargo_bin;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("cli/ has a parent").to_owned()
}

fn tokenscan() -> Command {
    let mut c = Command::new(get_cargo_bin("tokenscan"));
    c.current_dir(root());
    c
}

fn run(args: &[&str]) -> Output {
    tokenscan().args(args).output().expect("tokenscan runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `(rule_id, event_index)` of every finding of a replay.
fn findings(capture: &Path, rules: &[&str]) -> Vec<(String, u64)> {
    let mut args = vec!["replay", s(capture), "-f", "ndjson", "-q"];
    for r in rules {
        args.extend(["-r", r]);
    }
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            (v["rule_id"].as_str().unwrap().to_string(), v["event_index"].as_u64().unwrap())
        })
        .collect()
}

#[test]
fn import_tracee_writes_a_capture_and_reports_what_it_could_not_map() {
    let dir = tmp();
    let out = dir.path().join("x.parquet");
    let o = run(&["import", "tracee", "fixtures/import/tracee-v0.24.json", "-o", s(&out)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stderr(&o).replace(s(&out), "OUT"),
        "tokenscan: imported 6 events (4 opens, 2 execs) from 8 lines of tracee fixtures/import/tracee-v0.24.json into OUT\n\
         tokenscan: 2 lines could not be mapped to capture rows (1 event net_packet_dns, 1 invalid JSON):\n  \
         fixtures/import/tracee-v0.24.json: line 7: invalid JSON: EOF while parsing a string (column 180)\n  \
         fixtures/import/tracee-v0.24.json: line 8: event net_packet_dns has no capture row (only file opens and execs do)\n\
         tokenscan: note: container-init events kept with their container id (origin container-init: TRC-108 skips them): 1\n"
    );
    assert_eq!(
        findings(&out, &[]),
        [("TRC-108".to_string(), 2), ("TRC-108".to_string(), 4)],
        "rows 0, 3 and 5 are the containers' rows; row 6 is container-init (fixtures/import/EXPECTED.md)"
    );
    let inspect = run(&["inspect", s(&out)]);
    assert!(stdout(&inspect).contains("tokenscan.imported_from"), "{}", stdout(&inspect));

    let host = dir.path().join("host.parquet");
    let o = run(&[
        "import",
        "tracee",
        "fixtures/import/tracee-v0.24.json",
        "-o",
        s(&host),
        "--container-init",
        "host",
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stderr(&o), "", "--quiet");
    assert_eq!(findings(&host, &[]), [("TRC-108".to_string(), 2), ("TRC-108".to_string(), 4)]);
}

#[test]
fn import_ecs_to_ndjson_gives_the_expected_rows() {
    let dir = tmp();
    let out = dir.path().join("x.ndjson");
    let o = run(&["import", "ecs", "fixtures/import/ecs-d4c.ndjson", "-o", s(&out), "--show", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "tokenscan: 3 lines could not be mapped to capture rows (1 event file/creation, 1 event process/end, \
             1 event process/fork); the first 1:\n  fixtures/import/ecs-d4c.ndjson: line 3: event process/fork"
        ),
        "{}",
        stderr(&o)
    );
    let got = std::fs::read_to_string(&out).unwrap();
    let want = std::fs::read_to_string(root().join("fixtures/import/ecs-d4c.expected.ndjson")).unwrap();
    assert_eq!(got, want);
    let elastic = "66229f32-c460-410d-bc37-4b32322cd4bb".to_string();
    assert_eq!(findings(&out, &[]), [(elastic.clone(), 2), (elastic.clone(), 3), (elastic, 5)]);
}

#[test]
fn strict_makes_an_unmapped_line_fatal_and_leaves_no_output() {
    let dir = tmp();
    let out = dir.path().join("x.parquet");
    let o = run(&["import", "tracee", "fixtures/import/tracee-v0.23.json", "-o", s(&out), "--strict"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "tokenscan: error: fixtures/import/tracee-v0.23.json: line 4: event sched_process_fork has no capture row \
         (only file opens and execs do) (--strict: every line must map)\n"
    );
    assert!(!out.exists(), "the partial output is removed");
}

#[test]
fn output_is_never_overwritten_without_force() {
    let dir = tmp();
    let out = dir.path().join("x.parquet");
    std::fs::write(&out, b"keep me").unwrap();
    let o = run(&["import", "ecs", "fixtures/import/ecs-d4c.ndjson", "-o", s(&out)]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o), format!("tokenscan: error: {}: already exists; pass --force to overwrite it\n", s(&out)));
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
    let o = run(&["import", "ecs", "fixtures/import/ecs-d4c.ndjson", "-o", s(&out), "--force", "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let events = dir.path().join("e.json");
    let o = run(&["export", "tracee", "fixtures/host-reads.parquet", "-o", s(&events)]);
    assert_eq!(o.status.code(), Some(0));
    let o = run(&["export", "tracee", "fixtures/host-reads.parquet", "-o", s(&events)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).ends_with("already exists; pass --force to overwrite it\n"));
}

#[test]
fn errors_are_one_line_naming_the_file() {
    let dir = tmp();
    let out = dir.path().join("x.parquet");
    let o = run(&["import", "tracee", "fixtures/import/nope.json", "-o", s(&out)]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o), "tokenscan: error: fixtures/import/nope.json: No such file or directory (os error 2)\n");
    assert!(!out.exists());

    let o = run(&["import", "tracee", "fixtures/import/tracee-v0.23.json", "-o", s(&dir.path().join("x.csv"))]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot tell the output format from the extension; use .parquet, .ndjson or --to"));

    let o = run(&["export", "ecs", "fixtures/import/tracee-v0.23.json"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).starts_with("tokenscan: error: fixtures/import/tracee-v0.23.json: "), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1);
}

#[test]
fn garbage_input_is_counted_not_fatal() {
    let dir = tmp();
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, b"\xff\xfe\x00binary\n{\"eventName\":\n[1,2,3]\n\n   \n{}\n").unwrap();
    let out = dir.path().join("x.ndjson");
    let o = run(&["import", "tracee", s(&junk), "-o", s(&out)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o).replace(s(&junk), "JUNK");
    assert!(err.contains("imported 0 events (0 opens, 0 execs) from 4 lines"), "{err}");
    assert!(err.contains("JUNK: line 1: not valid UTF-8 (byte 1 of the line)"), "{err}");
    assert!(err.contains("JUNK: line 2: invalid JSON: EOF while parsing"), "{err}");
    assert!(err.contains("JUNK: line 3: not a JSON object: not a Tracee event"), "{err}");
    assert!(err.contains("JUNK: line 6: no `eventName`: not a Tracee event"), "{err}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "", "an empty but valid NDJSON capture");
}

#[test]
fn gzip_from_stdin_gives_the_same_rows() {
    let dir = tmp();
    let gz = dir.path().join("events.json.gz");
    let src = std::fs::read(root().join("fixtures/import/tracee-v0.23.json")).unwrap();
    let gzip = Command::new("gzip").arg("-c").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn();
    let Ok(mut gzip) = gzip else {
        eprintln!("gzip is not installed; skipping");
        return;
    };
    use std::io::Write;
    gzip.stdin.take().unwrap().write_all(&src).unwrap();
    let compressed = gzip.wait_with_output().unwrap().stdout;
    std::fs::write(&gz, &compressed).unwrap();
    let out = dir.path().join("x.ndjson");
    let o = tokenscan()
        .args(["import", "tracee", "-", "-o", s(&out)])
        .stdin(std::fs::File::open(&gz).unwrap())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("from 7 lines of tracee - (gzip) into"), "{}", stderr(&o));
    let want = std::fs::read_to_string(root().join("fixtures/import/tracee-v0.23.expected.ndjson")).unwrap();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), want);
}

#[test]
fn export_and_import_back_through_the_cli() {
    let dir = tmp();
    let original = root().join("fixtures/pod-session.parquet");
    let before = findings(&original, &[]);
    let trc = |v: &[(String, u64)]| v.iter().filter(|(r, _)| r == "TRC-108").cloned().collect::<Vec<_>>();
    let elastic = |v: &[(String, u64)]| v.iter().filter(|(r, _)| r != "TRC-108").cloned().collect::<Vec<_>>();
    assert_eq!(before.len(), 14);

    for style in ["v0.23", "v0.24"] {
        let events = dir.path().join(format!("events-{style}.json"));
        let o = run(&["export", "tracee", s(&original), "-o", s(&events), "--style", style, "--flag-names"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let back = dir.path().join(format!("back-{style}.parquet"));
        let o = run(&["import", "tracee", s(&events), "-o", s(&back), "-q"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let after = findings(&back, &[]);
        assert_eq!(trc(&after), trc(&before), "{style}");
        assert_eq!(elastic(&after), [], "Tracee carries no tty");
    }

    let docs = dir.path().join("docs.ndjson");
    let o = run(&["export", "ecs", s(&original), "-o", s(&docs), "--layout", "dotted"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let back = dir.path().join("back-ecs.parquet");
    let o = run(&["import", "ecs", s(&docs), "-o", s(&back), "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let after = findings(&back, &[]);
    assert_eq!(elastic(&after), elastic(&before));
    assert_eq!(trc(&after), trc(&before), "pod-session has no O_RDWR token read");
}

#[test]
fn export_writes_to_stdout_by_default() {
    let o = run(&["export", "ecs", "fixtures/host-reads.parquet"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 22);
    for line in out.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("each line is JSON");
        assert_eq!(v["host"]["os"]["type"], "linux");
        assert!(v["container"].is_null(), "host-reads has no container");
    }
    let o = run(&["export", "tracee", "fixtures/host-reads.parquet", "-o", "-"]);
    assert_eq!(stdout(&o).lines().count(), 22);
}

#[test]
fn help_lists_the_subcommands() {
    let o = run(&["--help"]);
    let out = stdout(&o);
    assert!(out.contains("import") && out.contains("export"), "{out}");
    let o = run(&["import", "tracee", "--help"]);
    let out = stdout(&o);
    for flag in ["--strict", "--force", "--container-init", "--tty-from-stdin", "--to"] {
        assert!(out.contains(flag), "{flag}: {out}");
    }
}

#[test]
fn ecs_document_without_host_name_is_kept_with_a_note() {
    // Elasticsearch evaluates the rule on a document that has no `host.name`:
    // the interactive `cat` of the token (line 1 of the fixture) still gives a
    // finding after its `host` object is removed.
    let dir = tmp();
    let first = std::fs::read_to_string(root().join("fixtures/import/ecs-d4c.ndjson")).unwrap();
    let first = first.lines().next().unwrap();
    let host = r#""host":{"name":"node-a","hostname":"node-a","os":{"type":"linux","kernel":"6.8.0-45-generic"},"architecture":"x86_64","pid_ns_ino":"4026531836"},"#;
    assert!(first.contains(host));
    let input = dir.path().join("nohost.ndjson");
    std::fs::write(&input, first.replace(host, "") + "\n").unwrap();
    let out = dir.path().join("x.ndjson");
    let o = run(&["import", "ecs", s(&input), "-o", s(&out)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("imported 1 event (0 opens, 1 exec) from 1 line of ecs"), "{err}");
    assert!(!err.contains("could not be mapped"), "{err}");
    assert!(err.contains("tokenscan: note: documents without `host.name` kept with an empty host: 1\n"), "{err}");
    // The exec comes after the container's row and its parent's `process` row.
    let text = std::fs::read_to_string(&out).unwrap();
    let rows: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.iter().map(|r| r["kind"].as_str().unwrap()).collect::<Vec<_>>(), ["container", "process", "exec"]);
    assert!(rows.iter().all(|r| r["host"] == ""));
    assert_eq!(findings(&out, &[]), [("66229f32-c460-410d-bc37-4b32322cd4bb".to_string(), 2)]);
}

#[test]
fn pretty_printed_json_or_an_array_is_one_clear_error() {
    let dir = tmp();
    let first = std::fs::read_to_string(root().join("fixtures/import/ecs-d4c.ndjson")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    let pretty = dir.path().join("pretty.json");
    std::fs::write(&pretty, serde_json::to_string_pretty(&doc).unwrap() + "\n").unwrap();
    let array = dir.path().join("array.json");
    std::fs::write(&array, format!("\n[{doc}, {doc}]\n")).unwrap();
    let hint = "not one JSON object per line (NDJSON); convert it first, e.g. \
                `jq -c 'if type == \"array\" then .[] else . end' FILE > FILE.ndjson`\n";
    for (format, input, line, what) in [
        ("ecs", &pretty, 1, "a pretty-printed JSON document (one document spread over several lines)"),
        ("ecs", &array, 2, "a JSON array"),
        ("tracee", &array, 2, "a JSON array"),
    ] {
        let out = dir.path().join("x.ndjson");
        let o = run(&["import", format, s(input), "-o", s(&out)]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert_eq!(
            stderr(&o),
            format!("tokenscan: error: {}: line {line}: the input looks like {what}, {hint}", s(input))
        );
        assert!(!out.exists(), "no partial output");
    }
}

/// A Kubernetes audit log written by hand in kube-apiserver's format: a
/// request of pod `web-1`'s token (its two stages), a refused one of pod
/// `api-7`'s, a line that is not JSON and one of another API version.
const AUDIT_LOG: &str = concat!(
    r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"aa-1","stage":"RequestReceived","requestURI":"/api/v1/namespaces/shop/secrets","verb":"list","user":{"username":"system:serviceaccount:shop:web","groups":["system:serviceaccounts","system:authenticated"],"extra":{"authentication.kubernetes.io/pod-name":["web-1"]}},"sourceIPs":["10.244.1.17"],"userAgent":"curl/8.5.0","objectRef":{"resource":"secrets","namespace":"shop","apiVersion":"v1"},"requestReceivedTimestamp":"2026-11-20T10:15:33.100000Z","stageTimestamp":"2026-11-20T10:15:33.100000Z"}"#,
    "\n",
    r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"aa-1","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/shop/secrets","verb":"list","user":{"username":"system:serviceaccount:shop:web","groups":["system:serviceaccounts","system:authenticated"],"extra":{"authentication.kubernetes.io/pod-name":["web-1"]}},"sourceIPs":["10.244.1.17"],"userAgent":"curl/8.5.0","objectRef":{"resource":"secrets","namespace":"shop","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2026-11-20T10:15:33.100000Z","stageTimestamp":"2026-11-20T10:15:33.104000Z","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":""}}"#,
    "\n",
    "garbage\n",
    r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1beta1","auditID":"bb-2","stage":"ResponseComplete","requestURI":"/healthz","verb":"get","stageTimestamp":"2026-11-20T10:15:34.000000Z"}"#,
    "\n",
    r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"cc-3","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/shop/pods","verb":"create","user":{"username":"system:serviceaccount:shop:api","extra":{"authentication.kubernetes.io/pod-name":["api-7"]}},"sourceIPs":["10.244.2.9"],"objectRef":{"resource":"pods","namespace":"shop","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":403},"requestReceivedTimestamp":"2026-11-20T10:15:35.000000Z","stageTimestamp":"2026-11-20T10:15:35.001000Z","annotations":{"authorization.k8s.io/decision":"forbid","authorization.k8s.io/reason":""}}"#,
    "\n",
);

#[test]
fn import_k8s_audit_reports_bad_lines_and_replays_by_pod_name() {
    let dir = tmp();
    let log = dir.path().join("audit.log");
    std::fs::write(&log, AUDIT_LOG).unwrap();
    let out = dir.path().join("audit.parquet");
    let o = run(&["import", "k8s-audit", s(&log), "-o", s(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let l = s(&log);
    assert_eq!(
        stderr(&o),
        format!(
            "tokenscan: imported 3 events (3 audit events) from 5 lines of k8s-audit {l} into {}\n\
             tokenscan: 2 lines could not be mapped to capture rows (1 invalid JSON, 1 other apiVersion):\n  \
             {l}: line 3: invalid JSON: expected value (column 1)\n  \
             {l}: line 4: `apiVersion` is \"audit.k8s.io/v1beta1\"; only \"audit.k8s.io/v1\" is imported\n",
            s(&out)
        )
    );
    // A rule of our own: responses to requests made with web-1's token.
    let rule = dir.path().join("web-1.toml");
    std::fs::write(
        &rule,
        "[rule]\nname = \"web-1 API use\"\nrule_id = \"web-1-api\"\nseverity = \"low\"\nquery = '''\n\
         any where data_stream.dataset == \"kubernetes.audit_logs\" and \
         kubernetes.audit.stage in (\"ResponseComplete\", \"ResponseStarted\") and \
         `kubernetes.audit.user.extra.authentication.kubernetes.io/pod-name` == \"web-1\"\n'''\n",
    )
    .unwrap();
    assert_eq!(findings(&out, &[s(&rule)]), vec![("web-1-api".to_string(), 1)]);
    // --strict stops at line 3 and leaves no output.
    let strict = dir.path().join("strict.parquet");
    let o = run(&["import", "k8s-audit", s(&log), "-o", s(&strict), "--strict"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        format!(
            "tokenscan: error: {l}: line 3: invalid JSON: expected value (column 1) (--strict: every line must map)\n"
        )
    );
    assert!(!strict.exists());
}
