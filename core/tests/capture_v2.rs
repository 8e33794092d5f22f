//! Capture format version 2: version 1 files still read (their version 2
//! columns null, their findings unchanged), the new kinds round-trip through
//! Parquet cell for cell, and they never reach a rule.
//!
//! Expected values come from the fixtures' hand-derived verdicts
//! (`fixtures/EXPECTED.md`), from the capture text written below, and from
//! the rules' text: the Elastic seed's exec branch fires on an interactive
//! `cat` of the token in a container, TRC-108 on a read of the token in a
//! container.

use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{Array, RecordBatch};
use tokenscan_core::capture::{
    str_at, Capture, Column, EventKind, NdjsonWriter, ParquetCaptureWriter, Projection, WriterOptions, VERSION_KEY,
};
use tokenscan_core::eql::CompileOptions;
use tokenscan_core::replay::{CollectSink, ReplayOptions, Replayer};
use tokenscan_core::rules::RuleSet;

const ELASTIC: &str = "66229f32-c460-410d-bc37-4b32322cd4bb";
const TRC108: &str = "TRC-108";
const V2_COLUMNS: [&str; 14] = [
    "sid",
    "pgid",
    "start",
    "parent_start",
    "cwd",
    "pod_name",
    "pod_namespace",
    "pod_uid",
    "container_name",
    "image",
    "image_name",
    "image_tag",
    "privileged",
    "container_started",
];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures").join(name)
}

fn builtin() -> RuleSet {
    RuleSet::builtin(&CompileOptions::default()).expect("built-in rules")
}

/// `(rule_id, event_index)` of every finding, sorted.
fn findings(rules: RuleSet, capture: &Path) -> Vec<(String, u64)> {
    let mut sink = CollectSink::default();
    Replayer::new(rules, ReplayOptions::default()).replay(&[capture], &mut sink).expect("replays");
    let mut out = Vec::new();
    for b in &sink.batches {
        let ids = b.column_by_name("rule_id").expect("rule_id");
        let idx = b.column_by_name("event_index").expect("event_index").as_primitive::<UInt64Type>();
        for row in 0..b.num_rows() {
            out.push((str_at(ids.as_ref(), row).expect("an id").to_string(), idx.value(row)));
        }
    }
    out.sort();
    out
}

fn of(rule: &str, indexes: &[u64]) -> Vec<(String, u64)> {
    indexes.iter().map(|i| (rule.to_string(), *i)).collect()
}

/// Every row of a capture, every column, as one record batch.
fn read_all(path: &Path) -> RecordBatch {
    let capture = Capture::open(path).expect("opens");
    let parts: Vec<RecordBatch> =
        capture.batches(Projection::all(), 4096).expect("reads").map(|b| b.expect("batch").to_record_batch()).collect();
    arrow_select::concat::concat_batches(&parts[0].schema(), &parts).expect("same schema")
}

/// `pod-session` as `fixtures/EXPECTED.md` derives it by hand.
fn pod_session_findings() -> Vec<(String, u64)> {
    let mut want = of(ELASTIC, &[30, 33, 36, 42, 72, 73, 77]);
    want.extend(of(TRC108, &[32, 35, 44, 53, 60, 76, 82]));
    want.sort();
    want
}

fn assert_v2_columns_null(batch: &RecordBatch, what: &str) {
    assert_eq!(batch.num_rows(), 83, "{what}: pod-session has 83 events");
    for name in V2_COLUMNS {
        let c = batch.column_by_name(name).unwrap_or_else(|| panic!("{what}: column `{name}` is read"));
        assert_eq!(c.null_count(), c.len(), "{what}: `{name}` is missing, never invented");
    }
}

#[test]
fn a_version_1_parquet_file_reads_with_null_v2_columns_and_the_same_findings() {
    let path = fixture("pod-session.parquet");
    let capture = Capture::open(&path).expect("a v1 file opens");
    assert_eq!(capture.metadata().get(VERSION_KEY).map(String::as_str), Some("1"));
    let schema = capture.file_schema().expect("parquet has a schema");
    assert!(schema.column_with_name("sid").is_none(), "the fixture is a version 1 file");
    assert_v2_columns_null(&read_all(&path), "v1 parquet");
    assert_eq!(findings(builtin(), &path), pod_session_findings());
}

#[test]
fn a_version_1_ndjson_file_reads_with_null_v2_columns_and_the_same_findings() {
    let path = fixture("pod-session.ndjson");
    assert_v2_columns_null(&read_all(&path), "v1 ndjson");
    assert_eq!(findings(builtin(), &path), pod_session_findings());
}

const TOKEN: &str = "/run/secrets/kubernetes.io/serviceaccount/token";
const CONTAINER: &str = "48c9dfca9bda9dfa36f83121c6185b99f99f5280628b35a906477e79d29c31ad";

/// A version 2 capture in the NDJSON writer's canonical form (keys in
/// column order, version 1 nulls written, version 2 nulls left out). Rows
/// 0-4 are lineage and metadata built to look like token reads; row 5 is an
/// interactive `cat` of the token in the container, row 6 its read.
fn v2_text() -> String {
    let ctx = format!(r#""tty":"pts/0","cgroup_id":11873,"container_id":"{CONTAINER}""#);
    let start = r#""start":"2026-11-20T10:15:30.000000000Z","parent_start":"2026-11-20T10:00:00.000000000Z""#;
    let proc_ = r#""sid":51001,"pgid":51040"#;
    [
        // A /proc snapshot of a `cat` already reading the token when the recording started.
        format!(
            r#"{{"time":"2026-11-20T10:15:31.000000000Z","kind":"process","host":"node-a","pid":51040,"tid":51040,"ppid":51001,"uid":0,"gid":0,"comm":"cat","exe":"/usr/bin/cat","args":["cat","{TOKEN}"],"path":null,"requested_path":null,"flags":null,"result":null,{ctx},{proc_},{start},"cwd":"/root"}}"#
        ),
        // The container's metadata.
        format!(
            r#"{{"time":"2026-11-20T10:15:31.100000000Z","kind":"container","host":"node-a","pid":51040,"tid":51040,"ppid":51001,"uid":0,"gid":0,"comm":"cat","exe":null,"args":null,"path":null,"requested_path":null,"flags":null,"result":null,"tty":null,"cgroup_id":11873,"container_id":"{CONTAINER}","pod_name":"web-0","pod_namespace":"shop","pod_uid":"0b7c3b9e-1f0e-4c53-9a43-6a1d8f2e9c11","container_name":"web","image":"registry:5000/shop/web:1.4.2","image_name":"registry:5000/shop/web","image_tag":"1.4.2","privileged":false}}"#
        ),
        // A fork and a thread's fork, with open-like columns set: still not opens.
        format!(
            r#"{{"time":"2026-11-20T10:15:32.000000000Z","kind":"fork","host":"node-a","pid":51050,"tid":51050,"ppid":51040,"uid":0,"gid":0,"comm":"cat","exe":"/usr/bin/cat","args":null,"path":"{TOKEN}","requested_path":"{TOKEN}","flags":0,"result":3,{ctx},{proc_},"start":"2026-11-20T10:15:32.000000000Z","parent_start":"2026-11-20T10:15:30.000000000Z","cwd":"/root"}}"#
        ),
        format!(
            r#"{{"time":"2026-11-20T10:15:32.100000000Z","kind":"fork","host":"node-a","pid":51050,"tid":51051,"ppid":51040,"uid":0,"gid":0,"comm":"cat","exe":"/usr/bin/cat","args":null,"path":null,"requested_path":null,"flags":null,"result":null,{ctx},{proc_},"start":"2026-11-20T10:15:32.000000000Z","cwd":"/root"}}"#
        ),
        // An exit (status 256: exit code 1) with exec-like columns set: still not an exec.
        format!(
            r#"{{"time":"2026-11-20T10:15:32.200000000Z","kind":"exit","host":"node-a","pid":51050,"tid":51050,"ppid":51040,"uid":0,"gid":0,"comm":"cat","exe":"/usr/bin/cat","args":["cat","{TOKEN}"],"path":"/usr/bin/cat","requested_path":null,"flags":null,"result":256,{ctx},{proc_},"start":"2026-11-20T10:15:32.000000000Z","cwd":"/root"}}"#
        ),
        format!(
            r#"{{"time":"2026-11-20T10:15:33.000000000Z","kind":"exec","host":"node-a","pid":51060,"tid":51060,"ppid":51040,"uid":0,"gid":0,"comm":"cat","exe":"/usr/bin/cat","args":["cat","{TOKEN}"],"path":"/usr/bin/cat","requested_path":"/usr/bin/cat","flags":null,"result":0,{ctx},{proc_},"cwd":"/root"}}"#
        ),
        format!(
            r#"{{"time":"2026-11-20T10:15:33.100000000Z","kind":"open","host":"node-a","pid":51060,"tid":51060,"ppid":51040,"uid":0,"gid":0,"comm":"cat","exe":"/usr/bin/cat","args":null,"path":"{TOKEN}","requested_path":"{TOKEN}","flags":32768,"result":3,{ctx}}}"#
        ),
    ]
    .map(|l| l + "\n")
    .concat()
}

fn ndjson_of(path: &Path) -> String {
    let capture = Capture::open(path).expect("opens");
    let mut w = NdjsonWriter::new(Vec::new(), "out.ndjson");
    for b in capture.batches(Projection::all(), 3).expect("reads") {
        w.write(&b.expect("batch")).expect("writes");
    }
    String::from_utf8(w.finish().expect("flushes")).expect("utf-8")
}

/// What `tokenscan convert` does: every column read, written to Parquet.
fn to_parquet(input: &Path, output: &Path) {
    let capture = Capture::open(input).expect("opens");
    let file = std::fs::File::create(output).expect("create");
    let mut w = ParquetCaptureWriter::new(file, output, WriterOptions::default()).expect("writer");
    for b in capture.batches(Projection::all(), 3).expect("reads") {
        w.write(&b.expect("batch")).expect("writes");
    }
    w.close().expect("closes");
}

#[test]
fn a_version_2_capture_round_trips_through_parquet_cell_for_cell() {
    let dir = tempfile::tempdir().expect("tmp");
    let ndjson = dir.path().join("v2.ndjson");
    std::fs::write(&ndjson, v2_text()).expect("write");
    let parquet = dir.path().join("v2.parquet");
    to_parquet(&ndjson, &parquet);

    let capture = Capture::open(&parquet).expect("opens");
    // Written by this build: version 3; a node capture holds no audit column values.
    assert_eq!(capture.metadata().get(VERSION_KEY).map(String::as_str), Some("3"));
    assert_eq!(capture.num_rows(), Some(7));
    // The text is already canonical: written back from NDJSON and from Parquet, it is unchanged.
    assert_eq!(ndjson_of(&ndjson), v2_text());
    assert_eq!(ndjson_of(&parquet), v2_text());

    let b = read_all(&parquet);
    let kinds: Vec<&str> = (0..7).map(|r| str_at(b.column_by_name("kind").unwrap().as_ref(), r).unwrap()).collect();
    assert_eq!(kinds, ["process", "container", "fork", "fork", "exit", "exec", "open"]);
    let privileged = b.column_by_name("privileged").unwrap().as_boolean();
    assert_eq!((privileged.is_valid(1), privileged.value(1), privileged.is_null(0)), (true, false, true));
    let start = b.column_by_name("start").unwrap();
    assert_eq!(start.data_type(), &Column::Start.data_type());
    // 2026-11-20T10:15:30Z = 1_795_169_730 s since the epoch.
    assert_eq!(start.as_primitive::<arrow_array::types::TimestampNanosecondType>().value(0), 1_795_169_730_000_000_000);
}

#[test]
fn the_new_kinds_reach_only_the_ecs_view_as_process_events() {
    let dir = tempfile::tempdir().expect("tmp");
    let ndjson = dir.path().join("v2.ndjson");
    std::fs::write(&ndjson, v2_text()).expect("write");
    let parquet = dir.path().join("v2.parquet");
    to_parquet(&ndjson, &parquet);
    // The built-in rules fire only on the exec (5) and the open (6): rows 0-4
    // carry the same context but are lineage and metadata. The ECS view also
    // shows a process's fork (2) and exit (4) as D4C process events
    // (`event.action` fork and end), never the snapshot (0), the container
    // row (1) or a thread's fork (3).
    let mut want = vec![(ELASTIC.to_string(), 5), (TRC108.to_string(), 6)];
    want.sort();
    let any = "[rule]\nname = \"any\"\nrule_id = \"ANY\"\nseverity = \"low\"\nlanguage = \"eql\"\nquery = \"any where true\"\n";
    for path in [&ndjson, &parquet] {
        assert_eq!(findings(builtin(), path), want, "{}", path.display());
        let rules = RuleSet::from_sources(&[(Path::new("any.toml"), any)], &CompileOptions::default()).expect("rule");
        assert_eq!(findings(rules, path), of("ANY", &[2, 4, 5, 6]), "{}", path.display());
    }
}

#[test]
fn an_unknown_kind_is_an_error_naming_file_and_line() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("bad.ndjson");
    let mut text = v2_text();
    text.push_str("# a comment\n");
    text.push_str(
        r#"{"time":1,"kind":"clone","host":"h","pid":1,"tid":1,"ppid":0,"uid":0,"gid":0,"comm":"x","cgroup_id":1}"#,
    );
    std::fs::write(&path, text).expect("write");
    let e = Capture::open(&path)
        .expect("opens")
        .batches(Projection::all(), 4096)
        .expect("reads")
        .find_map(Result::err)
        .expect("the bad line is an error")
        .to_string();
    assert!(e.contains("bad.ndjson"), "{e}");
    assert!(e.contains("line 9: `kind` is \"clone\"; expected one of \"open\", \"exec\", \"fork\", \"exit\", \"process\", \"container\", \"k8s_audit\""), "{e}");
}

#[test]
fn every_kind_names_itself() {
    for k in EventKind::ALL {
        assert_eq!(EventKind::parse(k.as_str()), Some(k));
    }
    let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "open",
            "exec",
            "fork",
            "exit",
            "process",
            "container",
            "k8s_audit",
            "create",
            "modify",
            "delete",
            "rename",
            "link",
            "symlink",
            "chmod",
            "chown"
        ]
    );
    // The process table reads the kinds by name (docs/processes.md) and by value alike.
    use tokenscan_core::process::ProcessEventKind;
    for k in EventKind::ALL {
        assert_eq!(ProcessEventKind::from(k), ProcessEventKind::from_capture_kind(k.as_str()), "{k:?}");
        assert_ne!(ProcessEventKind::from(k), ProcessEventKind::Other, "{k:?}");
    }
}

#[test]
fn export_writes_the_opens_and_execs_and_counts_the_rest() {
    use tokenscan_core::import::export::{export_capture, ExportCounts, ExportOptions};
    use tokenscan_core::import::ImportFormat;
    let dir = tempfile::tempdir().expect("tmp");
    let ndjson = dir.path().join("v2.ndjson");
    std::fs::write(&ndjson, v2_text()).expect("write");
    for format in [ImportFormat::Tracee, ImportFormat::Ecs] {
        let mut out = Vec::new();
        let counts =
            export_capture(format, &ndjson, &mut out, Path::new("out"), &ExportOptions::default()).expect("exports");
        // Rows 0-4 are process, container, two forks and an exit; 5 and 6 the exec and the open.
        assert_eq!(counts, ExportCounts { events: 2, skipped: 5 }, "{format:?}");
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 2, "{format:?}");
    }
}
