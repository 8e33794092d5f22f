//! File operations (capture kinds `create`, `modify`, `delete`, `rename`,
//! `link`, `symlink`, `chmod`, `chown`) as Defend for Containers rules see
//! them, and the linter on rules over them.
//!
//! Expected values come from the rule text of D4C's file rules (which
//! `event.action` / `event.type` pairs they test: `creation`, `deletion`,
//! `rename`, `open`; `creation`, `deletion`, `change`), ECS's `event.type`
//! allowed values and the choices written down in docs/rule-semantics.md
//! ("File operations"), derived by hand for each hand-written event below.

use serde_json::{json, Value};
use tokenscan_core::capture::{events_from_ndjson, EventBatch, EventKind, FileOp};
use tokenscan_core::eql::{CompileOptions, EqlQuery};
use tokenscan_core::lint::{check_file, Severity};

fn base(kind: &str) -> Value {
    json!({
        "time": 1_763_649_000_000_000_000_i64,
        "kind": kind,
        "host": "node-a",
        "pid": 100,
        "tid": 100,
        "ppid": 1,
        "uid": 0,
        "gid": 0,
        "comm": "busybox",
        "exe": "/bin/busybox",
        "cgroup_id": 1,
        "container_id": "d4556e77887e082d5e6a7fa2998c06ceee646c98f81eb1e724017a6a768c5dca",
    })
}

/// A successful file operation `kind` on `path` (with `old_path` when given).
fn fop(kind: &str, path: &str, old_path: Option<&str>) -> Value {
    let mut e = base(kind);
    let o = e.as_object_mut().expect("an object");
    o.insert("path".into(), json!(path));
    o.insert("requested_path".into(), json!(path));
    o.insert("result".into(), json!(0));
    if let Some(old) = old_path {
        o.insert("old_path".into(), json!(old));
    }
    e
}

/// The events a download-run-delete session makes, one of each kind, then
/// an open, an exec and a failed unlink. Indices:
/// 0 create /tmp/payload.sh, 1 modify /tmp/payload.sh, 2 rename
/// /tmp/payload.sh -> /tmp/run.sh, 3 link /tmp/hard -> /tmp/run.sh,
/// 4 symlink /tmp/soft -> run.sh, 5 chmod /tmp/run.sh, 6 chown /tmp/run.sh,
/// 7 delete /root/.bash_history, 8 write open of /etc/hosts, 9 exec of
/// /tmp/run.sh, 10 delete of /tmp/gone that failed (ENOENT).
fn session() -> Vec<Value> {
    let mut open = base("open");
    let o = open.as_object_mut().expect("an object");
    o.insert("path".into(), json!("/etc/hosts"));
    o.insert("flags".into(), json!(1));
    o.insert("result".into(), json!(3));
    let mut exec = base("exec");
    let o = exec.as_object_mut().expect("an object");
    o.insert("path".into(), json!("/tmp/run.sh"));
    o.insert("args".into(), json!(["/tmp/run.sh"]));
    o.insert("result".into(), json!(0));
    let mut failed = fop("delete", "/tmp/gone", None);
    failed.as_object_mut().expect("an object").insert("result".into(), json!(-2));
    vec![
        fop("create", "/tmp/payload.sh", None),
        fop("modify", "/tmp/payload.sh", None),
        fop("rename", "/tmp/run.sh", Some("/tmp/payload.sh")),
        fop("link", "/tmp/hard", Some("/tmp/run.sh")),
        fop("symlink", "/tmp/soft", Some("run.sh")),
        fop("chmod", "/tmp/run.sh", None),
        fop("chown", "/tmp/run.sh", None),
        fop("delete", "/root/.bash_history", None),
        open,
        exec,
        failed,
    ]
}

fn batch(events: &[Value]) -> EventBatch {
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    let mut batches = events_from_ndjson(&text, "test", 1024).expect("test events are valid NDJSON");
    batches.pop().expect("one batch")
}

fn matches(src: &str, events: &[Value]) -> Vec<usize> {
    let q = EqlQuery::compile(src, &CompileOptions::default())
        .unwrap_or_else(|e| panic!("{src:?} does not compile: {}", e.message));
    q.evaluate(&batch(events)).set_indices().collect()
}

fn check(cases: &[(&str, &[usize])]) {
    let events = session();
    for (src, expected) in cases {
        assert_eq!(matches(src, &events), *expected, "query: {src}");
    }
}

#[test]
fn every_file_operation_is_a_capture_kind_of_its_own() {
    let b = batch(&session());
    let kinds: Vec<&str> = b.kinds().iter().map(|k| k.as_str()).collect();
    assert_eq!(
        kinds,
        ["create", "modify", "rename", "link", "symlink", "chmod", "chown", "delete", "open", "exec", "delete"]
    );
    assert_eq!(b.kinds()[2], EventKind::File(FileOp::Rename));
}

#[test]
fn event_action_follows_defend_for_containers() {
    check(&[
        (r#"file where event.action == "creation""#, &[0]),
        (r#"file where event.action == "modification""#, &[1, 5, 6]),
        (r#"file where event.action == "rename""#, &[2]),
        (r#"file where event.action == "link""#, &[3, 4]),
        // The failed unlink (10) is not an event D4C would see.
        (r#"file where event.action == "deletion""#, &[7]),
        (r#"file where event.action == "open""#, &[8]),
        (r#"any where event.action in ("creation", "rename", "open")"#, &[0, 2, 8]),
    ]);
}

#[test]
fn event_type_follows_ecs() {
    check(&[
        (r#"any where event.type == "creation""#, &[0, 3, 4]),
        (r#"any where event.type == "change""#, &[1, 2, 5, 6, 8]),
        (r#"any where event.type == "deletion""#, &[7]),
        (r#"any where event.type == "start""#, &[9]),
        // Every file event, and only those, is in the file category and dataset.
        (r#"any where event.category == "file""#, &[0, 1, 2, 3, 4, 5, 6, 7, 8]),
        (r#"any where event.dataset == "cloud_defend.file""#, &[0, 1, 2, 3, 4, 5, 6, 7, 8]),
        (r#"file where event.type != "deletion" and file.path like "/tmp/*""#, &[0, 1, 2, 3, 4, 5, 6]),
    ]);
}

#[test]
fn file_fields_of_file_operations() {
    check(&[
        // file.path is the new name of a rename or link; the exec's path is not a file.path.
        (r#"any where file.path == "/tmp/run.sh""#, &[2, 5, 6]),
        (r#"any where file.name == ".bash_history""#, &[7]),
        (r#"any where file.extension == "sh""#, &[0, 1, 2, 5, 6]),
        // The old path only where it is one: rename -> original path, links -> target.
        (r#"any where file.Ext.original.path == "/tmp/payload.sh""#, &[2]),
        (r#"any where file.Ext.original.path like "*""#, &[2]),
        (r#"any where file.target_path like "*""#, &[3, 4]),
        (r#"any where file.target_path == "run.sh""#, &[4]),
        // File operations carry no argv.
        (r#"any where process.args like "*""#, &[9]),
    ]);
}

#[test]
fn a_capture_without_old_path_still_reads_and_an_unknown_kind_is_named() {
    // A version 2 line of before file operations: no old_path key at all.
    let mut old = base("open");
    let o = old.as_object_mut().expect("an object");
    o.insert("path".into(), json!("/etc/hosts"));
    o.insert("flags".into(), json!(0));
    o.insert("result".into(), json!(3));
    assert_eq!(matches(r#"file where event.action == "open""#, &[old]), [0]);

    let mut bad = fop("delete", "/tmp/x", None);
    bad.as_object_mut().expect("an object").insert("kind".into(), json!("unlink"));
    let err = events_from_ndjson(&format!("{bad}\n"), "bad.ndjson", 1024).expect_err("an unknown kind is an error");
    let msg = err.to_string();
    assert!(msg.contains("bad.ndjson") && msg.contains("\"unlink\"") && msg.contains("\"delete\""), "{msg}");
}

fn rule_file(dir: &std::path::Path, name: &str, query: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    let text = format!(
        "[rule]\nname = \"{name}\"\nrule_id = \"{name}\"\nseverity = \"low\"\nlanguage = \"eql\"\nquery = '''\n{query}\n'''\n"
    );
    std::fs::write(&path, text).expect("temp file");
    path
}

#[test]
fn rules_over_file_operations_lint_clean_and_impossible_ones_do_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clean = [
        r#"file where event.action == "creation" and file.path like ("/tmp/*", "/dev/shm/*")"#,
        r#"any where event.category == "file" and event.type == "deletion" and file.name in (".bash_history", ".zsh_history")"#,
        r#"file where event.type in ("change", "creation") and event.action in ("creation", "rename", "open") and file.extension == "so""#,
        r#"file where event.action == "rename" and file.Ext.original.path like "/etc/*""#,
        r#"file where event.action == "link" and file.target_path == "/etc/shadow""#,
        r#"file where event.action == "modification" and file.path == "/etc/ld.so.preload""#,
    ];
    for (i, q) in clean.iter().enumerate() {
        let path = rule_file(dir.path(), &format!("clean{i}.toml"), q);
        let diags = check_file(&path, &CompileOptions::default());
        assert!(diags.is_empty(), "{q}: {diags:?}");
    }
    let never = [
        // A process event is never a deletion.
        r#"process where event.action == "deletion""#,
        r#"any where event.type == "start" and event.type == "creation""#,
        // File operations carry no argv.
        r#"file where event.action == "creation" and process.args == "curl""#,
    ];
    for (i, q) in never.iter().enumerate() {
        let path = rule_file(dir.path(), &format!("never{i}.toml"), q);
        let diags = check_file(&path, &CompileOptions::default());
        assert!(diags.iter().any(|d| d.severity == Severity::Warning && d.message.contains("never")), "{q}: {diags:?}");
    }
}
