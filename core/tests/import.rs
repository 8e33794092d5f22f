//! Importers and exporters (`tokenscan_core::import`):
//!
//! * the hand-checked foreign samples in `fixtures/import/` become exactly
//!   the rows in their `*.expected.ndjson` twins, and give the findings
//!   worked out by hand in `fixtures/import/EXPECTED.md`;
//! * every bundled fixture capture, exported to Tracee JSON and to ECS and
//!   imported back, has the same rows and the same findings, except for the
//!   columns each format cannot carry, which are listed and checked here one
//!   by one;
//! * no input makes an importer panic.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, TimestampNanosecondType, UInt32Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use serde_json::Value;
use tokenscan_core::capture::{str_at, Capture, EventBatch, NdjsonWriter, Projection};
use tokenscan_core::eql::CompileOptions;
use tokenscan_core::import::export::{EcsLayout, ExportOptions, Exporter, TraceeStyle};
use tokenscan_core::import::{
    import_ecs, import_tracee, CollectCapture, ContainerInit, ImportFormat, ImportOptions, ImportReport, Importer,
};
use tokenscan_core::replay::{CollectSink, ReplayOptions, ReplaySummary, Replayer};
use tokenscan_core::rules::RuleSet;

const FIXTURES: &[&str] = &["pod-session", "host-reads", "non-interactive", "tracee-trc108-unit", "edge-cases"];
const ELASTIC: &str = "66229f32-c460-410d-bc37-4b32322cd4bb";
const TRC108: &str = "TRC-108";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("core/ has a parent").to_owned()
}

fn fixture(rel: &str) -> PathBuf {
    root().join("fixtures").join(rel)
}

fn builtin() -> RuleSet {
    RuleSet::builtin(&CompileOptions::default()).expect("built-in rules compile")
}

fn rules_v5() -> RuleSet {
    RuleSet::load(&[fixture("rules/elastic-d4c-token-read-v5.toml")], &CompileOptions::default()).expect("v5 loads")
}

fn original(name: &str) -> Vec<EventBatch> {
    let c = Capture::open(fixture(&format!("{name}.parquet"))).expect("fixture opens");
    c.batches(Projection::all(), tokenscan_core::capture::DEFAULT_BATCH_SIZE)
        .expect("batches")
        .collect::<Result<_, _>>()
        .expect("fixture reads")
}

fn import(format: ImportFormat, bytes: &[u8], options: &ImportOptions) -> (Vec<EventBatch>, ImportReport) {
    let mut sink = CollectCapture::default();
    let report = match format {
        ImportFormat::Tracee => import_tracee(bytes, Path::new("in.json"), options, &mut sink),
        ImportFormat::Ecs => import_ecs(bytes, Path::new("in.ndjson"), options, &mut sink),
        ImportFormat::K8sAudit => unreachable!("core/tests/k8s_audit.rs tests audit logs"),
    }
    .expect("import succeeds");
    (sink.batches, report)
}

fn export(batches: &[EventBatch], format: ImportFormat, options: ExportOptions) -> Vec<u8> {
    let mut ex = Exporter::new(Vec::new(), "out", format, options);
    for b in batches {
        ex.write(b).expect("export");
    }
    ex.finish().expect("flush")
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

/// A finding reduced to what a round trip must keep.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Finding {
    rule: String,
    event: u64,
    time: i64,
    kind: String,
    host: String,
    pid: u32,
    tid: u32,
    ppid: u32,
    uid: u32,
    comm: String,
    exe: Option<String>,
    args: Option<Vec<Option<String>>>,
    path: Option<String>,
    requested_path: Option<String>,
    flags: Option<i32>,
    tty: Option<String>,
    container: Option<String>,
    reason: String,
}

fn findings_of(batches: &[RecordBatch]) -> Vec<Finding> {
    let mut out = Vec::new();
    for b in batches {
        let s = |name: &str, row: usize| str_at(b.column_by_name(name).expect(name).as_ref(), row).map(str::to_string);
        let u32s = |name: &str| b.column_by_name(name).expect(name).as_primitive::<UInt32Type>().clone();
        let (pid, tid, ppid, uid) = (u32s("pid"), u32s("tid"), u32s("ppid"), u32s("uid"));
        let idx = b.column_by_name("event_index").unwrap().as_primitive::<UInt64Type>().clone();
        let time = b.column_by_name("time").unwrap().as_primitive::<TimestampNanosecondType>().clone();
        let flags = b.column_by_name("flags").unwrap().as_primitive::<Int32Type>().clone();
        let args = b.column_by_name("args").unwrap().as_list::<i32>().clone();
        for row in 0..b.num_rows() {
            out.push(Finding {
                rule: s("rule_id", row).unwrap(),
                event: idx.value(row),
                time: time.value(row),
                kind: s("kind", row).unwrap(),
                host: s("host", row).unwrap(),
                pid: pid.value(row),
                tid: tid.value(row),
                ppid: ppid.value(row),
                uid: uid.value(row),
                comm: s("comm", row).unwrap(),
                exe: s("exe", row),
                args: args.is_valid(row).then(|| {
                    let v = args.value(row);
                    (0..v.len()).map(|i| str_at(v.as_ref(), i).map(str::to_string)).collect()
                }),
                path: s("path", row),
                requested_path: s("requested_path", row),
                flags: flags.is_valid(row).then(|| flags.value(row)),
                tty: s("tty", row),
                container: s("container_id", row),
                reason: s("reason", row).unwrap(),
            });
        }
    }
    out
}

fn replay(batches: &[EventBatch], rules: RuleSet) -> (Vec<Finding>, ReplaySummary) {
    let r = Replayer::new(rules, ReplayOptions::default());
    let mut summary = r.new_summary();
    let mut sink = CollectSink::default();
    for b in batches {
        r.replay_batch(Path::new("capture"), b, &mut summary, &mut sink).expect("replay");
    }
    (findings_of(&sink.batches), summary)
}

fn ids(findings: &[Finding], rule: &str) -> Vec<u64> {
    findings.iter().filter(|f| f.rule == rule).map(|f| f.event).collect()
}

fn unevaluable(summary: &ReplaySummary) -> Vec<(String, u64)> {
    summary.rules.iter().map(|r| (r.rule_id.clone(), r.unevaluable)).collect()
}

// --- the hand-checked samples -------------------------------------------------

fn import_fixture(rel: &str, format: ImportFormat, options: &ImportOptions) -> (Vec<EventBatch>, ImportReport) {
    let bytes = std::fs::read(fixture(rel)).expect("sample exists");
    import(format, &bytes, options)
}

fn expected_rows(rel: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(fixture(rel)).expect("expected rows exist");
    text.lines().map(|l| serde_json::from_str(l).expect("json")).collect()
}

fn unmapped(report: &ImportReport) -> Vec<(u64, String)> {
    report.examples.iter().map(|e| (e.line, e.reason.clone())).collect()
}

#[test]
fn tracee_v023_sample_gives_the_hand_checked_rows_and_findings() {
    let (batches, report) = import_fixture("import/tracee-v0.23.json", ImportFormat::Tracee, &ImportOptions::default());
    assert_eq!(rows(&batches), expected_rows("import/tracee-v0.23.expected.ndjson"));
    assert_eq!((report.lines, report.events, report.opens, report.execs, report.unmapped), (7, 6, 5, 1, 1));
    assert_eq!(
        unmapped(&report),
        [(4, "event sched_process_fork has no capture row (only file opens and execs do)".to_string())]
    );
    let (f, summary) = replay(&batches, builtin());
    assert_eq!(report.containers, 2, "web and kube-proxy: rows 0 and 6");
    assert_eq!(ids(&f, TRC108), [3], "cat's read of the token; kube-proxy (7) is allow-listed");
    assert_eq!(ids(&f, ELASTIC), Vec::<u64>::new(), "Tracee carries no tty: process.interactive is false");
    assert_eq!(unevaluable(&summary), [(ELASTIC.to_string(), 0), (TRC108.to_string(), 0)]);
    let (f, _) = replay(&batches, rules_v5());
    assert_eq!(ids(&f, ELASTIC), [1], "v5 drops process.interactive: the cat exec fires");
}

#[test]
fn tty_from_stdin_lets_the_elastic_rule_see_the_interactive_cat() {
    let options = ImportOptions { tty_from_stdin: true, ..Default::default() };
    let (batches, _) = import_fixture("import/tracee-v0.23.json", ImportFormat::Tracee, &options);
    let r = rows(&batches);
    assert_eq!(r[1]["tty"], "pts/0");
    assert!(r.iter().enumerate().all(|(i, row)| i == 1 || row["tty"].is_null()), "only the exec carries stdin_path");
    let (f, _) = replay(&batches, builtin());
    assert_eq!(ids(&f, ELASTIC), [1]);
    assert!(f[0].reason.starts_with("exec branch:"), "{}", f[0].reason);
}

#[test]
fn tracee_v024_sample_gives_the_hand_checked_rows_and_findings() {
    let (batches, report) = import_fixture("import/tracee-v0.24.json", ImportFormat::Tracee, &ImportOptions::default());
    assert_eq!(rows(&batches), expected_rows("import/tracee-v0.24.expected.ndjson"));
    assert_eq!((report.lines, report.events, report.opens, report.execs, report.unmapped), (8, 6, 4, 2, 2));
    assert_eq!(
        unmapped(&report),
        [
            (7, "invalid JSON: EOF while parsing a string (column 180)".to_string()),
            (8, "event net_packet_dns has no capture row (only file opens and execs do)".to_string()),
        ]
    );
    assert_eq!(report.unmapped_by_reason.get("invalid JSON"), Some(&1));
    assert_eq!(report.unmapped_by_reason.get("event net_packet_dns"), Some(&1));
    assert_eq!(report.notes.values().copied().collect::<Vec<_>>(), [1], "one container-init event");
    let (f, _) = replay(&batches, builtin());
    assert_eq!(report.containers, 3, "rows 0, 3 and 5");
    assert_eq!(
        ids(&f, TRC108),
        [2, 4],
        "head and the O_RDWR open; the init container's cp (6) is container-init, skipped as Tracee does"
    );
    assert_eq!(ids(&f, ELASTIC), Vec::<u64>::new());
    let (f, _) = replay(&batches, rules_v5());
    assert_eq!(ids(&f, ELASTIC), [1, 4, 7], "head exec, O_RDWR of a listed path, sed via execve argv");

    // As host events, container-init events are ignored by TRC-108 as Tracee ignores them.
    let options = ImportOptions { container_init: ContainerInit::Host, ..Default::default() };
    let (batches, report) = import_fixture("import/tracee-v0.24.json", ImportFormat::Tracee, &options);
    // The init container's id is dropped, and with it its `container` row.
    assert_eq!(report.containers, 2);
    assert_eq!(rows(&batches)[5]["comm"], "cp");
    assert!(rows(&batches)[5]["container_id"].is_null());
    assert_eq!(report.notes.len(), 1);
    let (f, _) = replay(&batches, builtin());
    assert_eq!(ids(&f, TRC108), [2, 4]);
}

#[test]
fn ecs_sample_gives_the_hand_checked_rows_and_findings() {
    let (batches, report) = import_fixture("import/ecs-d4c.ndjson", ImportFormat::Ecs, &ImportOptions::default());
    assert_eq!(rows(&batches), expected_rows("import/ecs-d4c.expected.ndjson"));
    assert_eq!((report.lines, report.events, report.opens, report.execs, report.unmapped), (9, 6, 2, 4, 3));
    assert_eq!(unmapped(&report).into_iter().map(|(l, _)| l).collect::<Vec<_>>(), [3, 6, 7], "fork, end, creation");
    let (f, _) = replay(&batches, builtin());
    assert_eq!((report.containers, report.processes), (1, 1), "row 0, and row 1 for cat's parent sh");
    assert_eq!(ids(&f, ELASTIC), [2, 3, 5], "cat exec, the write to the listed token path, head of ca.crt");
    assert_eq!(ids(&f, TRC108), Vec::<u64>::new(), "D4C file events are writes: never IsFileRead");
    assert_eq!(f[1].tty.as_deref(), Some("?"), "interactive without a known terminal");
}

// --- round trips -------------------------------------------------------------------

/// What a Tracee export cannot carry, applied to an original row.
fn through_tracee(mut r: Value) -> Value {
    let open = r["kind"] == "open";
    r["tty"] = Value::Null; // Tracee events have no terminal
    r["gid"] = 0.into(); // nor a group id
    let none_if_empty = |v: &mut Value| {
        if v.as_str() == Some("") {
            *v = Value::Null;
        }
    };
    none_if_empty(&mut r["exe"]);
    none_if_empty(&mut r["container_id"]);
    // The export says `contextFlags.containerStarted` true exactly when there is a container id.
    r["container_started"] = Value::Bool(!r["container_id"].is_null());
    if open {
        r["args"] = Value::Null;
        if !r["path"].is_null() {
            // security_file_open: returnValue is the LSM verdict, 0 for an allowed open.
            if let Some(res) = r["result"].as_i64() {
                r["result"] = res.min(0).into();
            }
            none_if_empty(&mut r["requested_path"]);
        }
    } else {
        r["flags"] = Value::Null;
        if r["result"].as_i64().is_some_and(|x| x < 0) {
            r["path"] = Value::Null; // a failed exec is an execve event: requested path only
        } else {
            none_if_empty(&mut r["path"]);
            none_if_empty(&mut r["requested_path"]);
            if r["exe"].is_null() {
                r["exe"] = r["path"].clone(); // sched_process_exec: the executed file
            }
        }
    }
    r
}

/// What an ECS export cannot carry, applied to an original row.
fn through_ecs(mut r: Value) -> Value {
    let open = r["kind"] == "open";
    r["requested_path"] = Value::Null;
    r["cgroup_id"] = 0.into();
    r["result"] = match r["result"].as_i64() {
        None => Value::Null,
        Some(x) if x < 0 => (-1).into(),
        Some(_) => 0.into(),
    };
    if let Some(t) = r["tty"].as_str() {
        if tokenscan_core::import::tty_to_device(t).is_none() {
            r["tty"] = "?".into();
        }
    }
    if open {
        r["args"] = Value::Null;
        r["flags"] = match r["flags"].as_i64() {
            None => Value::Null,
            Some(f) if matches!(f & 3, 1 | 2) => 1.into(),
            Some(_) => 0.into(),
        };
    } else {
        r["flags"] = Value::Null;
        r["path"] = r["exe"].clone();
        if r["args"].as_array().is_some_and(|a| a.is_empty()) {
            r["args"] = Value::Null;
        }
    }
    r
}

fn tracee_variants() -> Vec<ExportOptions> {
    vec![
        ExportOptions { tracee_style: TraceeStyle::V024, ..Default::default() },
        ExportOptions { tracee_style: TraceeStyle::V023, ..Default::default() },
        ExportOptions { tracee_style: TraceeStyle::V023, tracee_flag_names: true, ..Default::default() },
        ExportOptions { tracee_style: TraceeStyle::V024, tracee_flag_names: true, ..Default::default() },
    ]
}

#[test]
fn tracee_round_trip_keeps_every_row_but_tty_gid_and_open_fds() {
    for name in FIXTURES {
        let orig = original(name);
        let want: Vec<Value> = rows(&orig).into_iter().map(through_tracee).collect();
        for options in tracee_variants() {
            let bytes = export(&orig, ImportFormat::Tracee, options);
            let (back, report) = import(ImportFormat::Tracee, &bytes, &ImportOptions::default());
            assert_eq!(report.unmapped, 0, "{name} {options:?}: {:?}", report.examples);
            assert_eq!(rows(&back), want, "{name} {options:?}");
        }
    }
}

#[test]
fn ecs_round_trip_keeps_every_row_but_what_d4c_documents_lack() {
    for name in FIXTURES {
        let orig = original(name);
        let want: Vec<Value> = rows(&orig).into_iter().map(through_ecs).collect();
        for layout in [EcsLayout::Nested, EcsLayout::Dotted] {
            let bytes = export(&orig, ImportFormat::Ecs, ExportOptions { ecs_layout: layout, ..Default::default() });
            let (back, report) = import(ImportFormat::Ecs, &bytes, &ImportOptions::default());
            assert_eq!(report.unmapped, 0, "{name} {layout:?}: {:?}", report.examples);
            assert_eq!(rows(&back), want, "{name} {layout:?}");
        }
    }
}

/// Findings of one rule, without the columns a format cannot carry.
fn strip(findings: &[Finding], rule: &str, f: impl Fn(&mut Finding)) -> Vec<Finding> {
    findings
        .iter()
        .filter(|x| x.rule == rule)
        .cloned()
        .map(|mut x| {
            f(&mut x);
            x
        })
        .collect()
}

#[test]
fn tracee_round_trip_replays_to_the_same_trc108_findings() {
    for name in FIXTURES {
        let orig = original(name);
        let (before, before_summary) = replay(&orig, builtin());
        for options in tracee_variants() {
            let (back, _) =
                import(ImportFormat::Tracee, &export(&orig, ImportFormat::Tracee, options), &Default::default());
            let (after, after_summary) = replay(&back, builtin());
            // TRC-108 reads comm, path, flags and the container id, all carried: identical findings,
            // reasons included. Only the finding's copy of tty is gone.
            let no_tty = |f: &mut Finding| f.tty = None;
            assert_eq!(strip(&after, TRC108, no_tty), strip(&before, TRC108, no_tty), "{name} {options:?}");
            assert_eq!(after_summary.rules[1].unevaluable, before_summary.rules[1].unevaluable, "{name}");
            // The exception: the seed Elastic rule requires process.interactive, i.e. a tty,
            // which Tracee events do not have. Every Elastic finding of the fixtures needs it.
            assert_eq!(ids(&after, ELASTIC), Vec::<u64>::new(), "{name}");
        }
    }
}

#[test]
fn without_the_tty_clause_the_elastic_rule_survives_the_tracee_round_trip() {
    let mut total = 0;
    for name in FIXTURES {
        let orig = original(name);
        let (before, _) = replay(&orig, rules_v5());
        let (back, _) = import(
            ImportFormat::Tracee,
            &export(&orig, ImportFormat::Tracee, ExportOptions::default()),
            &Default::default(),
        );
        let (after, _) = replay(&back, rules_v5());
        let no_tty = |f: &mut Finding| f.tty = None;
        assert_eq!(strip(&after, ELASTIC, no_tty), strip(&before, ELASTIC, no_tty), "{name}");
        total += ids(&before, ELASTIC).len();
    }
    assert!(total >= 10, "the check is not vacuous: {total} v5 findings");
}

#[test]
fn ecs_round_trip_replays_to_the_same_elastic_findings() {
    for name in FIXTURES {
        let orig = original(name);
        let (before, _) = replay(&orig, builtin());
        for layout in [EcsLayout::Nested, EcsLayout::Dotted] {
            let bytes = export(&orig, ImportFormat::Ecs, ExportOptions { ecs_layout: layout, ..Default::default() });
            let (back, _) = import(ImportFormat::Ecs, &bytes, &Default::default());
            let (after, _) = replay(&back, builtin());
            // Everything the ECS view reads is carried; the finding's copies of
            // requested_path and the exact flags are not (see through_ecs).
            let lossy = |f: &mut Finding| {
                f.requested_path = None;
                f.flags = f.flags.map(|x| i32::from(matches!(x & 3, 1 | 2)));
                if f.kind == "exec" {
                    f.path = f.exe.clone();
                }
            };
            assert_eq!(strip(&after, ELASTIC, lossy), strip(&before, ELASTIC, lossy), "{name} {layout:?}");
        }
    }
}

#[test]
fn ecs_round_trip_changes_trc108_only_where_event_type_hides_the_access_mode() {
    // `event.type` says change (O_WRONLY or O_RDWR) or access (anything else), and the
    // import reads change as O_WRONLY and access as O_RDONLY. So an O_RDWR read of a
    // token is lost for TRC-108, and an open with access mode 3 (neither read nor
    // write) becomes a read. Nothing else may differ.
    let mut lost = BTreeSet::new();
    let mut gained = BTreeSet::new();
    for name in FIXTURES {
        let orig = original(name);
        let flags_of = rows(&orig).iter().map(|r| r["flags"].as_i64()).collect::<Vec<_>>();
        let (before, before_summary) = replay(&orig, builtin());
        let (back, _) =
            import(ImportFormat::Ecs, &export(&orig, ImportFormat::Ecs, ExportOptions::default()), &Default::default());
        let (after, after_summary) = replay(&back, builtin());
        let b: BTreeSet<u64> = ids(&before, TRC108).into_iter().collect();
        let a: BTreeSet<u64> = ids(&after, TRC108).into_iter().collect();
        for i in b.difference(&a) {
            assert_eq!(flags_of[*i as usize].map(|f| f & 3), Some(2), "{name} #{i} lost but was not O_RDWR");
            lost.insert(format!("{name}#{i}"));
        }
        for i in a.difference(&b) {
            assert_eq!(flags_of[*i as usize].map(|f| f & 3), Some(3), "{name} #{i} gained but was not mode 3");
            gained.insert(format!("{name}#{i}"));
        }
        assert_eq!(after_summary.rules[1].unevaluable, before_summary.rules[1].unevaluable, "{name}");
    }
    // Pinned, checked against fixtures/EXPECTED.md: the three O_RDWR reads of the token
    // (edge-cases #7, non-interactive #18 and #19) are lost, and acc3's open with access
    // mode 3 (edge-cases #6) becomes a read.
    assert_eq!(lost.into_iter().collect::<Vec<_>>(), LOST_THROUGH_ECS);
    assert_eq!(gained.into_iter().collect::<Vec<_>>(), GAINED_THROUGH_ECS);
}

const LOST_THROUGH_ECS: &[&str] = &["edge-cases#7", "non-interactive#18", "non-interactive#19"];
const GAINED_THROUGH_ECS: &[&str] = &["edge-cases#6"];

// --- streaming, gzip, errors, garbage -------------------------------------------

#[test]
fn gzip_input_and_small_batches_give_the_same_capture() {
    let text = std::fs::read(fixture("import/tracee-v0.24.json")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&text).unwrap();
    let gz = gz.finish().unwrap();
    let options = ImportOptions { batch_size: 2, ..Default::default() };
    let (batches, report) = import(ImportFormat::Tracee, &gz, &options);
    assert!(report.gzip);
    assert_eq!(report.bytes, text.len() as u64);
    // Nine rows (six events, three `container` rows), never more than two per batch.
    assert_eq!(batches.iter().map(EventBatch::len).collect::<Vec<_>>(), [2, 2, 2, 2, 1]);
    assert_eq!(batches.iter().map(EventBatch::first_index).collect::<Vec<_>>(), [0, 2, 4, 6, 8]);
    assert_eq!(rows(&batches), expected_rows("import/tracee-v0.24.expected.ndjson"));
}

#[test]
fn several_inputs_form_one_capture_and_name_their_lines() {
    let mut sink = CollectCapture::default();
    let mut imp = Importer::new(ImportFormat::Tracee, ImportOptions::default(), &mut sink);
    for rel in ["import/tracee-v0.23.json", "import/tracee-v0.24.json"] {
        let p = fixture(rel);
        imp.read(&p, std::fs::File::open(&p).unwrap()).unwrap();
    }
    let report = imp.finish().unwrap();
    assert_eq!(report.events, 12);
    let lines: Vec<String> = report.examples.iter().map(|e| e.to_string()).collect();
    assert!(
        lines[0].ends_with(
            "tracee-v0.23.json: line 4: event sched_process_fork has no capture row (only file opens and execs do)"
        ),
        "{lines:?}"
    );
    assert!(
        lines[1].ends_with("tracee-v0.24.json: line 7: invalid JSON: EOF while parsing a string (column 180)"),
        "{lines:?}"
    );
    assert_eq!(sink.batches.len(), 1);
    // v0.23 gives 8 rows (two of them `container` rows); v0.24's first row is its first container's.
    assert_eq!(rows(&sink.batches)[8]["kind"], "container");
    assert_eq!(rows(&sink.batches)[9]["comm"], "head");
}

#[test]
fn strict_stops_at_the_first_unmapped_line_with_file_and_line() {
    let bytes = std::fs::read(fixture("import/ecs-d4c.ndjson")).unwrap();
    let options = ImportOptions { strict: true, ..Default::default() };
    let mut sink = CollectCapture::default();
    let e = import_ecs(&bytes[..], Path::new("d4c.ndjson"), &options, &mut sink).unwrap_err().to_string();
    assert_eq!(
        e,
        "d4c.ndjson: line 3: event process/fork has no capture row (only file/open and process/exec do) \
         (--strict: every line must map)"
    );
}

#[test]
fn corrupt_gzip_is_an_error_naming_the_input() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&std::fs::read(fixture("import/tracee-v0.23.json")).unwrap()).unwrap();
    let mut gz = gz.finish().unwrap();
    let n = gz.len();
    gz.truncate(n / 2);
    let mut sink = CollectCapture::default();
    let e =
        import_tracee(&gz[..], Path::new("t.json.gz"), &ImportOptions::default(), &mut sink).unwrap_err().to_string();
    assert!(e.starts_with("t.json.gz: after line "), "{e}");
    assert!(e.contains("cannot decompress the gzip data"), "{e}");
}

#[test]
fn overlong_lines_are_counted_not_read() {
    let mut text = b"{\"eventName\":\"openat\",\"pad\":\"".to_vec();
    text.extend(std::iter::repeat_n(b'x', 5000));
    text.extend(b"\"}\n");
    text.extend(std::fs::read(fixture("import/tracee-v0.23.json")).unwrap());
    let options = ImportOptions { max_line_bytes: 4096, ..Default::default() };
    let (batches, report) = import(ImportFormat::Tracee, &text, &options);
    assert_eq!(report.examples[0].line, 1);
    assert_eq!(report.examples[0].reason, "the line is 5031 bytes long, over the limit of 4096 bytes");
    assert_eq!(rows(&batches).len(), 8, "6 events and 2 `container` rows");
}

/// SplitMix64, for deterministic garbage.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[test]
fn garbage_never_panics_and_every_line_is_accounted_for() {
    let mut lines: Vec<Vec<u8>> = vec![
        b"\x00\x01\x02\xff\xfe".to_vec(),
        b"not json at all".to_vec(),
        b"null".to_vec(),
        b"\"a string\"".to_vec(),
        b"123".to_vec(),
        b"{}".to_vec(),
        b"{\"args\":{}}".to_vec(),
        b"{\"eventName\":null}".to_vec(),
        b"{\"eventName\":\"security_file_open\",\"args\":[{\"name\":1}]}".to_vec(),
        b"{\"timestamp\":1e400}".to_vec(),
        b"{\"timestamp\":99999999999999999999999}".to_vec(),
        b"{\"event\":[\"a\"],\"process\":7,\"_source\":\"x\"}".to_vec(),
        b"{\"@timestamp\":\"\xff\"}".to_vec(),
        b"{\"event.category\":\"process\",\"event.action\":\"exec\",\"@timestamp\":\"9999999-01-01T00:00:00Z\"}"
            .to_vec(),
        b"{\"event.category\":\"process\",\"event.action\":\"exec\",\"@timestamp\":9223372036854775807}".to_vec(),
        "{\"a\":\"\u{10FFFF}\\ud800\"}".as_bytes().to_vec(),
    ];
    // Deep nesting: serde_json's recursion limit answers, not the stack.
    lines.push([&b"["[..].repeat(100_000)[..], &b"]"[..].repeat(100_000)[..]].concat());
    lines.push([&b"{\"process\":"[..].repeat(50_000)[..], b"1", &b"}"[..].repeat(50_000)[..]].concat());
    // Every prefix of real lines, and real lines with bytes flipped.
    let mut rng = Rng(42);
    for rel in [
        "import/tracee-v0.23.json",
        "import/tracee-v0.24.json",
        "import/ecs-d4c.ndjson",
        "import/tracee-process-model.json",
        "import/ecs-process-model.ndjson",
    ] {
        let text = std::fs::read(fixture(rel)).unwrap();
        for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            for cut in (0..line.len()).step_by(7) {
                lines.push(line[..cut].to_vec());
            }
            for _ in 0..200 {
                let mut l = line.to_vec();
                for _ in 0..1 + rng.next() % 4 {
                    let i = (rng.next() % l.len() as u64) as usize;
                    l[i] = match rng.next() % 4 {
                        0 => rng.next() as u8,
                        1 => b'"',
                        2 => b'{',
                        _ => b'1',
                    };
                }
                lines.push(l.into_iter().filter(|&b| b != b'\n').collect());
            }
        }
    }
    let input: Vec<u8> = lines.iter().flat_map(|l| l.iter().copied().chain([b'\n'])).collect();
    for format in [ImportFormat::Tracee, ImportFormat::Ecs] {
        let (batches, report) = import(format, &input, &ImportOptions::default());
        let blank = lines.iter().filter(|l| l.iter().all(u8::is_ascii_whitespace)).count() as u64;
        assert_eq!(report.lines, lines.len() as u64 - blank);
        assert_eq!(report.events + report.unmapped, report.lines, "{format:?}: every line is a row or counted");
        assert_eq!(
            batches.iter().map(|b| b.len() as u64).sum::<u64>(),
            report.events + report.containers + report.processes
        );
        // Whatever came through is a valid capture that replays, with its
        // processes and containers rebuilt from the context rows too.
        replay(&batches, builtin());
        fires(
            &batches,
            r#"any where process.parent.name == "sh" or process.session_leader.interactive == true or orchestrator.namespace == "shop""#,
        );
    }
}

// --- the process model (capture format v2) ------------------------------------------

/// Event indexes where a rule with `query` fires, replayed from a file so
/// that the driver rebuilds the processes and containers of the capture.
fn fires(batches: &[EventBatch], query: &str) -> Vec<u64> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imported.ndjson");
    let mut w = NdjsonWriter::new(Vec::new(), "imported");
    for b in batches {
        w.write(b).expect("ndjson");
    }
    std::fs::write(&path, w.finish().expect("flush")).unwrap();
    let rule = format!("[rule]\nname = \"t\"\nrule_id = \"t\"\nseverity = \"low\"\nquery = '''\n{query}\n'''\n");
    let rules = RuleSet::from_sources(&[("t.toml", rule)], &CompileOptions::default()).expect("the query compiles");
    let mut sink = CollectSink::default();
    Replayer::new(rules, ReplayOptions::default()).replay(&[&path], &mut sink).expect("replays");
    let mut out: Vec<u64> = sink
        .batches
        .iter()
        .flat_map(|b| {
            let ix = b.column_by_name("event_index").expect("event_index").as_primitive::<UInt64Type>();
            (0..ix.len()).map(|i| ix.value(i)).collect::<Vec<_>>()
        })
        .collect();
    out.sort();
    out
}

#[test]
fn tracee_process_model_sample_fills_start_container_rows_and_container_started() {
    let (batches, report) =
        import_fixture("import/tracee-process-model.json", ImportFormat::Tracee, &ImportOptions::default());
    // Rows worked out by hand in fixtures/import/EXPECTED.md.
    assert_eq!(rows(&batches), expected_rows("import/tracee-process-model.expected.ndjson"));
    assert_eq!(
        (report.lines, report.events, report.opens, report.execs, report.containers, report.processes, report.unmapped),
        (8, 6, 5, 1, 2, 0, 2)
    );
    assert_eq!(
        unmapped(&report),
        [
            (7, "`container.name` is 5; expected a string".to_string()),
            (8, "`threadStartTime` is -5; expected nanoseconds since the epoch (a non-negative integer)".to_string()),
        ]
    );
    assert_eq!(
        report.notes.get("`threadStartTime` since boot, not since the epoch (older Tracee): `start` left null"),
        Some(&1)
    );
    assert_eq!(report.notes.len(), 2, "{:?}: and the container-init event", report.notes);

    // The core reads the container rows: pod, namespace and image reach the ECS view.
    let pod = r#"any where orchestrator.resource.name == "api-5d8f7c9b4-k2x7q" and orchestrator.namespace == "shop""#;
    assert_eq!(fires(&batches, pod), [1, 2, 3, 5, 7]);
    assert_eq!(
        fires(
            &batches,
            r#"any where container.image.name == "registry.example:5000/shop/api" and container.image.tag == "2.3.1""#
        ),
        [1, 2, 3, 7]
    );
    assert_eq!(fires(&batches, r#"any where container.image.name == "busybox" and container.image.tag == null"#), [5]);
    // The thread's event (3) belongs to the process that started at .050.
    assert_eq!(fires(&batches, r#"any where process.start == "2026-12-01T04:40:00.050000000Z""#), [1, 2, 3]);
    let (f, _) = replay(&batches, builtin());
    assert_eq!(ids(&f, TRC108), [2], "python3 reads the token in a started container");
}

#[test]
fn ecs_process_model_sample_fills_leaders_pods_and_parent_rows() {
    let (batches, report) =
        import_fixture("import/ecs-process-model.ndjson", ImportFormat::Ecs, &ImportOptions::default());
    // Rows worked out by hand in fixtures/import/EXPECTED.md.
    assert_eq!(rows(&batches), expected_rows("import/ecs-process-model.expected.ndjson"));
    assert_eq!(
        (report.lines, report.events, report.opens, report.execs, report.containers, report.processes, report.unmapped),
        (8, 5, 1, 4, 1, 5, 3)
    );
    assert_eq!(
        unmapped(&report),
        [
            (6, "`process.session_leader.pid` is -7; expected a number from 0 to 4294967295".to_string()),
            (7, "`process.start` \"soon\" is not an RFC 3339 date".to_string()),
            (8, "`container.security_context.privileged` is \"maybe\"; expected true or false".to_string()),
        ]
    );
    // Parents known only from the documents: sh for cat (2), id (7) and the second cat (10);
    // containerd-shim for the shell itself (4); bash for crictl on the host (6).
    assert_eq!(fires(&batches, r#"any where process.parent.name == "sh""#), [2, 7, 10]);
    assert_eq!(fires(&batches, r#"any where process.parent.executable == "/usr/bin/containerd-shim-runc-v2""#), [4]);
    assert_eq!(fires(&batches, r#"any where process.parent.name == "bash" and container.id == null"#), [6]);
    assert_eq!(fires(&batches, r#"any where process.parent.args == "-c""#), [10]);
    // D4C's own selector conditions: an interactive session led by sh, a namespace, an image.
    assert_eq!(
        fires(
            &batches,
            r#"any where process.session_leader.interactive == true and process.session_leader.name == "sh""#
        ),
        [2, 4]
    );
    assert_eq!(fires(&batches, r#"any where process.session_leader.name == "containerd-shim""#), [10]);
    assert_eq!(
        fires(
            &batches,
            r#"any where orchestrator.namespace == "shop" and container.image.name == "registry.example:5000/shop/api" and container.image.tag == "2.3.1" and container.security_context.privileged == false"#
        ),
        [2, 4, 7, 10]
    );
    assert_eq!(fires(&batches, r#"any where process.working_directory == "/app""#), [2, 4]);
    assert_eq!(fires(&batches, r#"any where process.group_leader.pid == 8290"#), [10]);
    // The seed tuned to exclude a CI parent: only the token reads whose parent is not sh remain.
    assert_eq!(
        fires(&batches, r#"process where process.args like "*/token" and not process.parent.name in ("sh", "bash")"#),
        Vec::<u64>::new()
    );
}

#[test]
fn v1_style_events_import_as_before_without_context_rows() {
    // Every field tokenscan read before the process model, none of the new ones.
    let tracee = r#"{"timestamp":1796100000000000000,"hostProcessId":500,"hostThreadId":500,"hostParentProcessId":1,"userId":0,"processName":"cat","hostName":"h","containerId":"abc","eventName":"security_file_open","returnValue":0,"args":[{"name":"pathname","type":"string","value":"/t"},{"name":"flags","type":"int32","value":0}]}"#;
    let ecs = r#"{"@timestamp":"2026-12-01T05:00:00Z","event.category":"process","event.action":"exec","host.name":"h","container.id":"abc","process.pid":500,"process.parent.pid":1,"process.name":"cat","process.args":["cat","/t"]}"#;
    for (format, line) in [(ImportFormat::Tracee, tracee), (ImportFormat::Ecs, ecs)] {
        let (batches, report) = import(format, line.as_bytes(), &ImportOptions::default());
        let r = rows(&batches);
        assert_eq!(r.len(), 1, "{format:?}: one row, no container or process row");
        let keys: Vec<&str> = r[0].as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 18, "{format:?}: the version 1 keys only: {keys:?}");
        assert_eq!((report.containers, report.processes), (0, 0));
    }
}

#[test]
fn bad_process_model_values_name_line_and_field_and_never_panic() {
    let ctx = r#""timestamp":1796100000000000000,"hostProcessId":500,"userId":0,"processName":"cat","hostName":"h","containerId":"abc","eventName":"security_file_open","args":[]"#;
    let tracee = [
        (format!(r#"{{{ctx},"container":"abc"}}"#), "`container` is \"abc\"; expected an object"),
        (format!(r#"{{{ctx},"kubernetes":[1]}}"#), "`kubernetes` is [1]; expected an object"),
        (
            format!(r#"{{{ctx},"kubernetes":{{"podNamespace":{{}}}}}}"#),
            "`kubernetes.podNamespace` is {}; expected a string",
        ),
        (
            format!(r#"{{{ctx},"contextFlags":{{"containerStarted":"yes"}}}}"#),
            "`contextFlags.containerStarted` is \"yes\"; expected true or false",
        ),
        (format!(r#"{{{ctx},"threadStartTime":"1"}}"#), "`threadStartTime` is \"1\"; expected nanoseconds"),
        (format!(r#"{{{ctx},"threadStartTime":1e30}}"#), "`threadStartTime` is 1e30; expected nanoseconds"),
        (format!(r#"{{{ctx},"hostParentProcessId":-1}}"#), "`hostParentProcessId` is -1"),
    ];
    let doc = r#""@timestamp":1,"event.category":"process","event.action":"exec","host.name":"h","container.id":"abc","process.pid":5,"process.name":"sh""#;
    let ecs = [
        (format!(r#"{{{doc},"process.parent.pid":-2}}"#), "`process.parent.pid` is -2"),
        (format!(r#"{{{doc},"process.group_leader.pid":"x"}}"#), "`process.group_leader.pid` is \"x\""),
        (format!(r#"{{{doc},"process.entry_leader.pid":4294967296}}"#), "`process.entry_leader.pid` is 4294967296"),
        (format!(r#"{{{doc},"process.parent.pid":1,"process.parent.start":true}}"#), "`process.parent.start` is true"),
        (format!(r#"{{{doc},"process.parent.pid":1,"process.parent.args":[1]}}"#), "`process.parent.args` holds 1"),
        (
            format!(r#"{{{doc},"process.parent.pid":1,"process.parent.interactive":2}}"#),
            "`process.parent.interactive` is 2",
        ),
        (format!(r#"{{{doc},"process.working_directory":{{"a":1}}}}"#), "`process.working_directory` is an object"),
        (format!(r#"{{{doc},"orchestrator.namespace":7.5}}"#), "`orchestrator.namespace` is 7.5"),
        (format!(r#"{{{doc},"container.image.tag":[1,2]}}"#), "`container.image.tag` is an array"),
    ];
    let (good_tracee, good_ecs) = (format!("{{{ctx}}}"), format!("{{{doc}}}"));
    for (format, good, cases) in
        [(ImportFormat::Tracee, good_tracee, &tracee[..]), (ImportFormat::Ecs, good_ecs, &ecs[..])]
    {
        // A good line first, so that each bad one is line 2.
        for (line, needle) in cases {
            let input = format!("{good}\n{line}\n");
            let (batches, report) = import(format, input.as_bytes(), &ImportOptions::default());
            assert_eq!((report.events, report.unmapped), (1, 1), "{format:?} {line}");
            assert_eq!(report.examples[0].line, 2, "{format:?} {line}");
            assert!(report.examples[0].reason.contains(needle), "{format:?} {line}: {}", report.examples[0].reason);
            assert_eq!(rows(&batches).len(), 1);
        }
    }
}

#[test]
fn huge_metadata_strings_are_dropped_and_counted_the_event_kept() {
    let huge = "p".repeat(100_000);
    let tracee = format!(
        r#"{{"timestamp":1796100000000000000,"hostProcessId":500,"userId":0,"processName":"cat","hostName":"h","containerId":"abc","container":{{"name":"{huge}","image":"busybox:1"}},"kubernetes":{{"podName":"{huge}","podNamespace":"ns"}},"eventName":"security_file_open","args":[]}}"#
    );
    let ecs = format!(
        r#"{{"@timestamp":1,"event.category":"process","event.action":"exec","host.name":"h","container.id":"abc","process.pid":5,"process.name":"sh","container.name":"{huge}","orchestrator.namespace":"ns","orchestrator.resource.name":"{huge}","process.parent.pid":4,"process.parent.name":"{huge}"}}"#
    );
    for (format, line, dropped) in [(ImportFormat::Tracee, tracee, 2), (ImportFormat::Ecs, ecs, 3)] {
        let (batches, report) = import(format, line.as_bytes(), &ImportOptions::default());
        assert_eq!((report.events, report.unmapped), (1, 0), "{format:?}");
        assert_eq!(
            report.notes.get("metadata values longer than 4096 bytes dropped (their events kept)"),
            Some(&dropped),
            "{format:?}"
        );
        let r = rows(&batches);
        let container = r.iter().find(|row| row["kind"] == "container").expect("a container row");
        assert_eq!(container["pod_namespace"], "ns");
        assert!(container.get("pod_name").is_none() && container.get("container_name").is_none());
        // The parent has no name left: no process row, its pid stays in `ppid`.
        assert!(r.iter().all(|row| row["kind"] != "process"));
    }
}
