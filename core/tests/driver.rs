//! `diff`, `gaps` and `test` read captures through the same driver as
//! `replay`: options, unevaluable events and unreadable segments behave the
//! same in each. Expected values come from the capture text below and the
//! rules' text (TRC-108 needs the open flags; the Elastic rule looks at execs).

use std::path::{Path, PathBuf};

use tokenscan_core::capture::{events_from_ndjson, expand_paths, ParquetCaptureWriter, WriterOptions};
use tokenscan_core::diff::{diff, Baseline, CollectChanges};
use tokenscan_core::eql::CompileOptions;
use tokenscan_core::gaps::{find_gaps, GapKind};
use tokenscan_core::replay::{CollectSink, ReplayOptions, Replayer};
use tokenscan_core::rules::RuleSet;
use tokenscan_core::suite::Suite;

const TOKEN: &str = "/run/secrets/kubernetes.io/serviceaccount/token";
const CONTAINER: &str = "d4556e77887e082d5e6a7fa2998c06ceee646c98f81eb1e724017a6a768c5dca";
const TRC108: &str = "TRC-108";

fn line(kind: &str, comm: &str, extra: &str) -> String {
    format!(
        r#"{{"time":1,"kind":"{kind}","host":"h","pid":1,"tid":1,"ppid":1,"uid":0,"gid":0,"comm":"{comm}","cgroup_id":1{extra}}}"#
    )
}

/// `n` harmless opens, then an interactive `cat` of the token in a container
/// (an exec and an open: each built-in rule fires once).
fn capture_text(n: usize) -> String {
    let mut s: String =
        (0..n).map(|i| line("open", "ls", &format!(r#","path":"/etc/f{i}","flags":0,"result":3"#)) + "\n").collect();
    let c = format!(r#","tty":"pts/0","container_id":"{CONTAINER}""#);
    s +=
        &line("exec", "cat", &format!(r#","exe":"/bin/cat","args":["cat","{TOKEN}"],"path":"/bin/cat","result":0{c}"#));
    s += "\n";
    s += &line("open", "cat", &format!(r#","exe":"/bin/cat","path":"{TOKEN}","flags":0,"result":3{c}"#));
    s + "\n"
}

/// Two harmless opens, then an open of the token in a container whose flags
/// are unknown (null): TRC-108 cannot tell whether it reads, so event 2 is
/// unevaluable for it; no rule fires.
fn unevaluable_text() -> String {
    let mut s: String =
        (0..2).map(|i| line("open", "ls", &format!(r#","path":"/etc/f{i}","flags":0,"result":3"#)) + "\n").collect();
    s +=
        &line("open", "cat", &format!(r#","exe":"/bin/cat","path":"{TOKEN}","result":3,"container_id":"{CONTAINER}""#));
    s + "\n"
}

fn write_parquet(path: &Path, ndjson: &str) {
    write_parquet_with(path, ndjson, WriterOptions::default());
}

fn write_parquet_with(path: &Path, ndjson: &str, options: WriterOptions) {
    let file = std::fs::File::create(path).expect("create capture");
    let mut w = ParquetCaptureWriter::new(file, path, options).expect("writer");
    for b in events_from_ndjson(ndjson, "events", 4096).expect("valid events") {
        w.write(&b).expect("write");
    }
    w.close().expect("close");
}

/// A directory with a good Parquet segment (12 events), a truncated one and a
/// good NDJSON one (7 events).
fn segments(dir: &Path) -> Vec<PathBuf> {
    let good = dir.join("seg-1.parquet");
    write_parquet(&good, &capture_text(10));
    let bytes = std::fs::read(&good).expect("read");
    std::fs::write(dir.join("seg-2.parquet"), &bytes[..bytes.len() / 2]).expect("write");
    std::fs::write(dir.join("seg-3.ndjson"), capture_text(5)).expect("write");
    expand_paths(&[dir]).expect("three segments")
}

fn builtin() -> RuleSet {
    RuleSet::builtin(&CompileOptions::default()).expect("built-in rules")
}

fn skipping() -> ReplayOptions {
    ReplayOptions { skip_unreadable: true, ..Default::default() }
}

fn strict() -> ReplayOptions {
    ReplayOptions { strict: true, ..Default::default() }
}

fn unevaluable_capture(dir: &Path) -> PathBuf {
    let p = dir.join("unknown-flags.ndjson");
    std::fs::write(&p, unevaluable_text()).expect("write");
    p
}

#[test]
fn replay_counts_the_unknown_flags_open_as_unevaluable() {
    // The reference the other commands must agree with.
    let dir = tempfile::tempdir().expect("tmp");
    let p = unevaluable_capture(dir.path());
    let s =
        Replayer::new(builtin(), ReplayOptions::default()).replay(&[&p], &mut CollectSink::default()).expect("replays");
    let trc = s.rules.iter().find(|r| r.rule_id == TRC108).expect("TRC-108 loaded");
    assert_eq!((s.events, s.findings(), trc.unevaluable), (3, 0, 1));
    assert_eq!(trc.examples[0].event_index, 2);
}

#[test]
fn diff_counts_unevaluable_events_per_side_and_fails_on_them_under_strict() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = unevaluable_capture(dir.path());
    let baseline = Baseline::Rules(builtin());
    let summary =
        diff(&baseline, &builtin(), &[&p], &ReplayOptions::default(), &mut CollectChanges::default()).expect("diffs");
    assert_eq!(summary.events, 3);
    for side in [&summary.candidate_unevaluable, &summary.baseline_unevaluable] {
        let trc = side.iter().find(|r| r.rule_id == TRC108).expect("TRC-108 on each side");
        assert_eq!(trc.unevaluable, 1);
        assert_eq!(trc.examples[0].event_index, 2);
    }
    assert_eq!(summary.unevaluable(), 2, "once per side");
    let error = diff(&baseline, &builtin(), &[&p], &strict(), &mut CollectChanges::default())
        .map(|_| ())
        .expect_err("strict stops at the unevaluable event")
        .to_string();
    assert!(error.contains("unknown-flags.ndjson") && error.contains(TRC108), "{error}");
}

#[test]
fn diff_skips_a_corrupt_segment_as_replay_does() {
    let dir = tempfile::tempdir().expect("tmp");
    let paths = segments(dir.path());
    let mut changes = CollectChanges::default();
    let summary =
        diff(&Baseline::Rules(builtin()), &builtin(), &paths, &skipping(), &mut changes).expect("the good segments");
    assert_eq!(summary.events, 12 + 7);
    assert_eq!(summary.unreadable.len(), 1);
    assert_eq!(summary.unreadable[0].capture, paths[1]);
    assert!(summary.unreadable[0].message.contains("seg-2.parquet"), "{:?}", summary.unreadable);
    // Same rules on both sides: each token read is an unchanged finding of each rule.
    assert!(summary.rules.iter().all(|r| (r.added, r.removed, r.unchanged) == (0, 0, 2)), "{:?}", summary.rules);
    let error = diff(&Baseline::Rules(builtin()), &builtin(), &paths, &ReplayOptions::default(), &mut changes)
        .map(|_| ())
        .expect_err("without skipping the bad segment fails");
    assert!(error.to_string().contains("seg-2.parquet"), "{error}");
}

#[test]
fn gaps_count_unevaluable_events_and_fail_on_them_under_strict() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = unevaluable_capture(dir.path());
    let (summary, gaps) = find_gaps(&builtin(), &[&p], &ReplayOptions::default()).expect("gaps");
    assert_eq!(summary.events, 3);
    let trc = summary.rules.iter().find(|r| r.rule_id == TRC108).expect("TRC-108");
    assert_eq!(trc.unevaluable, 1);
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!((gaps[0].event_index, gaps[0].kind), (2, GapKind::Unevaluable));
    let error = find_gaps(&builtin(), &[&p], &strict()).map(|_| ()).expect_err("strict").to_string();
    assert!(error.contains("unknown-flags.ndjson") && error.contains(TRC108), "{error}");
}

#[test]
fn gaps_skip_a_corrupt_segment_as_replay_does() {
    let dir = tempfile::tempdir().expect("tmp");
    let paths = segments(dir.path());
    let (summary, gaps) = find_gaps(&builtin(), &paths, &skipping()).expect("the good segments");
    assert_eq!(summary.events, 12 + 7);
    assert_eq!(summary.unreadable.len(), 1);
    assert_eq!(summary.unreadable[0].capture, paths[1]);
    // Every credential-touching event of the good segments was flagged.
    assert!(gaps.is_empty(), "{gaps:?}");
    let error = find_gaps(&builtin(), &paths, &ReplayOptions::default()).map(|_| ()).expect_err("no skipping");
    assert!(error.to_string().contains("seg-2.parquet"), "{error}");
}

fn suite(dir: &Path, capture: &str, text: &str) -> Suite {
    std::fs::write(dir.join(capture), text).expect("write capture");
    let toml = format!(
        "[suite]\nname = \"driver\"\n\n[[case]]\nname = \"trc\"\ncapture = \"{capture}\"\nrule = \"{TRC108}\"\nunevaluable = [2]\n"
    );
    std::fs::write(dir.join("tokenscan-test.toml"), toml).expect("write suite");
    Suite::load(dir).expect("suite loads")
}

#[test]
fn test_fails_on_unevaluable_events_under_strict() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = suite(dir.path(), "unknown-flags.ndjson", &unevaluable_text());
    let results = s.run_with(&CompileOptions::default(), &ReplayOptions::default()).expect("runs");
    assert!(results[0].passed(), "event 2 is the one unevaluable event: {:?}", results[0].failures);
    let error = s.run_with(&CompileOptions::default(), &strict()).map(|_| ()).expect_err("strict").to_string();
    assert!(error.contains("unknown-flags.ndjson") && error.contains(TRC108), "{error}");
}

#[test]
fn test_reports_a_capture_that_breaks_part_way_as_replay_does() {
    let dir = tempfile::tempdir().expect("tmp");
    // Events 0-1 are harmless, 2 is the unknown-flags open, line 4 is not JSON.
    let text = unevaluable_text() + "{\"time\": oops}\n" + &capture_text(1);
    let s = suite(dir.path(), "broken.ndjson", &text);
    let results = s.run_with(&CompileOptions::default(), &skipping()).expect("the events before the break are tested");
    let failures = &results[0].failures;
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].contains("could not be read completely") && failures[0].contains("broken.ndjson: line 4"),
        "{failures:?}"
    );
    assert!(failures[0].contains("3 events"), "{failures:?}");
    let error = s.run_with(&CompileOptions::default(), &ReplayOptions::default()).map(|_| ()).expect_err("no skipping");
    assert!(error.to_string().contains("broken.ndjson: line 4"), "{error}");
}

/// A sink whose renderer writes `rule_id event_index` lines and notes the
/// threads it ran on; `rendered` checks each batch's bytes and keeps them.
struct Rendering {
    out: Vec<u8>,
    threads: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<std::thread::ThreadId>>>,
}

fn render_lines(batch: &arrow_array::RecordBatch) -> Vec<u8> {
    use arrow_array::cast::AsArray;
    let rule = batch.column_by_name("rule_id").expect("rule_id").as_string::<i32>();
    let index = batch.column_by_name("event_index").expect("event_index");
    let index = index.as_primitive::<arrow_array::types::UInt64Type>();
    (0..batch.num_rows()).map(|i| format!("{} {}\n", rule.value(i), index.value(i))).collect::<String>().into_bytes()
}

impl tokenscan_core::replay::FindingSink for Rendering {
    fn findings(&mut self, _batch: &arrow_array::RecordBatch) -> tokenscan_core::Result<()> {
        panic!("every batch comes rendered when the sink has a renderer");
    }

    fn renderer(&self) -> Option<tokenscan_core::replay::Renderer> {
        let threads = self.threads.clone();
        Some(std::sync::Arc::new(move |batch: &arrow_array::RecordBatch| {
            threads.lock().expect("lock").insert(std::thread::current().id());
            Ok(render_lines(batch))
        }))
    }

    fn rendered(&mut self, batch: &arrow_array::RecordBatch, bytes: Vec<u8>) -> tokenscan_core::Result<()> {
        assert_eq!(bytes, render_lines(batch), "the bytes belong to the batch they come with");
        self.out.extend(bytes);
        Ok(())
    }
}

#[test]
fn findings_rendered_on_the_threads_arrive_in_capture_order() {
    // 40 row groups of 50 events, each ending in an interactive `cat` of the token (an exec
    // and an open); the findings are rendered on the replay's threads and must reach the
    // sink in capture order, with and without the triage context, exactly as the findings
    // a plain sink receives.
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("many-groups.parquet");
    let text: String = (0..40).map(|_| capture_text(48)).collect();
    write_parquet_with(&path, &text, WriterOptions { row_group_rows: 50, ..Default::default() });
    for context in [false, true] {
        let replayer = Replayer::new(builtin(), ReplayOptions { context, ..Default::default() });
        let mut plain = CollectSink::default();
        replayer.replay(&[&path], &mut plain).expect("replay");
        let expected: Vec<u8> = plain.batches.iter().flat_map(render_lines).collect();
        // By hand: each group's exec (event 50k + 48) and open (50k + 49) fire.
        let lines = String::from_utf8(expected.clone()).expect("utf-8");
        assert_eq!(lines.lines().filter(|l| l.ends_with(" 48")).count(), 1, "{lines}");
        let indexes: Vec<u64> = lines.lines().map(|l| l.rsplit(' ').next().unwrap().parse().unwrap()).collect();
        assert!(indexes.windows(2).all(|w| w[0] <= w[1]), "capture order: {indexes:?}");
        assert_eq!(indexes.iter().filter(|&&i| i % 50 >= 48).count(), indexes.len());
        let mut sink = Rendering { out: Vec::new(), threads: Default::default() };
        replayer.replay(&[&path], &mut sink).expect("replay");
        assert_eq!(String::from_utf8(sink.out).expect("utf-8"), lines, "context {context}");
        if rayon::current_num_threads() > 1 {
            let threads = sink.threads.lock().expect("lock");
            assert!(threads.len() > 1 || !threads.contains(&std::thread::current().id()), "{threads:?}");
        }
    }
}
