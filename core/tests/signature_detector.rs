//! TRC-108's detector generation (aquasecurity/tracee
//! detectors/k8s_service_account_token.go, 2025-12) next to the signature
//! generation (the seed): allow-list by the executable's file name instead of
//! the comm, and a missing argument means no finding instead of an error.
//! Expectations are worked out by hand from the two Go sources' logic.

use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::Array;

use tokenscan_core::eql::CompileOptions;
use tokenscan_core::replay::{CollectSink, ReplayOptions, ReplaySummary, Replayer};
use tokenscan_core::rules::RuleSet;

const TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

fn open(ms: u32, comm: &str, exe: &str, flags: &str) -> String {
    format!(
        "{{\"time\":\"2026-11-20T10:15:00.{ms:03}000000Z\",\"kind\":\"open\",\"host\":\"n\",\"pid\":{p},\"tid\":{p},\"ppid\":1,\"uid\":0,\"gid\":0,\"comm\":\"{comm}\",\"exe\":\"{exe}\",\"args\":null,\"path\":\"{TOKEN}\",\"requested_path\":\"{TOKEN}\",\"flags\":{flags},\"result\":3,\"tty\":null,\"cgroup_id\":1,\"container_id\":\"31177b9213d8aa\"}}\n",
        p = 100 + ms
    )
}

fn capture() -> String {
    [
        // 0: kube-controller-manager: the kernel truncates its comm to 15 bytes,
        // "kube-controller", which the comm allow-list names; its executable's
        // file name "kube-controller-manager" is not in the list.
        open(0, "kube-controller", "/usr/local/bin/kube-controller-manager", "0"),
        // 1: kubectl, allow-listed either way.
        open(1, "kubectl", "/usr/bin/kubectl", "0"),
        // 2: kubectl under another comm (prctl PR_SET_NAME): only the executable says kubectl.
        open(2, "worker", "/usr/bin/kubectl", "0"),
        // 3: a read without flags: the signature errors, the detector stays silent.
        open(3, "cat", "/bin/cat", "null"),
        // 4: an ordinary read by cat: both fire.
        open(4, "cat", "/bin/cat", "0"),
    ]
    .concat()
}

fn replay(rule: &Path, capture: &Path) -> (Vec<u64>, ReplaySummary) {
    replay_with(rule, capture, ReplayOptions::default())
}

/// Event indexes where `rule` fires on `capture` replayed with `options`, and the summary.
fn replay_with(rule: &Path, capture: &Path, options: ReplayOptions) -> (Vec<u64>, ReplaySummary) {
    let rules = RuleSet::load(&[rule], &CompileOptions::default()).unwrap();
    let mut sink = CollectSink::default();
    let summary = Replayer::new(rules, options).replay(&[capture], &mut sink).unwrap();
    let mut out = Vec::new();
    for b in &sink.batches {
        let ix = b.column(b.schema().index_of("event_index").unwrap()).as_primitive::<UInt64Type>();
        out.extend(ix.values().iter().copied());
    }
    (out, summary)
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

#[test]
fn the_detector_allow_lists_by_executable_name_and_ignores_missing_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.ndjson");
    std::fs::write(&path, capture()).unwrap();
    let (seed, seed_summary) = replay(&root().join("core/rules/tracee-trc-108-k8s-service-account-token.toml"), &path);
    let (detector, det_summary) = replay(&root().join("fixtures/rules/tracee-trc-108-detector.toml"), &path);
    // Seed: 0 and 1 allow-listed by comm, 2 fires (comm "worker"), 3 cannot be evaluated, 4 fires.
    assert_eq!(seed, vec![2, 4]);
    assert_eq!(seed_summary.rules[0].unevaluable, 1);
    // Detector: 0 fires (kube-controller-manager), 1 and 2 allow-listed (kubectl), 3 silent, 4 fires.
    assert_eq!(detector, vec![0, 4]);
    assert_eq!(det_summary.rules[0].unevaluable, 0);
}

/// An open of the token by `pid`/`comm` in container `container`, or an exec of
/// `comm` when `exec`.
fn in_container(ms: u32, kind: &str, pid: u32, comm: &str, container: &str) -> String {
    let path = if kind == "open" { TOKEN.to_string() } else { format!("/bin/{comm}") };
    let flags = if kind == "open" { "0" } else { "null" };
    format!(
        "{{\"time\":\"2026-11-20T10:15:00.{ms:03}000000Z\",\"kind\":\"{kind}\",\"host\":\"n\",\"pid\":{pid},\"tid\":{pid},\"ppid\":1,\"uid\":0,\"gid\":0,\"comm\":\"{comm}\",\"exe\":\"/bin/{comm}\",\"args\":null,\"path\":\"{path}\",\"requested_path\":\"{path}\",\"flags\":{flags},\"result\":3,\"tty\":null,\"cgroup_id\":1,\"container_id\":\"{container}\"}}\n"
    )
}

#[test]
fn container_origin_means_the_container_has_started() {
    // Tracee's `container` origin (both generations select it) starts when the
    // container's entry point runs; before, events are `container-init`
    // (shared/notes/rules.md). Container aaa is set up during the recording:
    // runc's init (comm "runc:[2:INIT]") opens the token before it execs the
    // entry point (0), then execs `app` (1), which opens the token (2).
    // Container bbb was running before the recording: its first event is the
    // workload's own (3): started. Container ccc's init opens the token (4)
    // and never execs: it never started.
    let capture = [
        in_container(0, "open", 70, "runc:[2:INIT]", "aaa"),
        in_container(1, "exec", 70, "app", "aaa"),
        in_container(2, "open", 70, "app", "aaa"),
        in_container(3, "open", 80, "web", "bbb"),
        in_container(4, "open", 90, "runc:[2:INIT]", "ccc"),
        // What the source said (an import of Tracee's contextFlags.containerStarted)
        // decides over the lifecycle: 5 is said not started, 6 said started.
        in_container(5, "open", 80, "web", "bbb").replace("}\n", ",\"container_started\":false}\n"),
        in_container(6, "open", 90, "runc:[2:INIT]", "ccc").replace("}\n", ",\"container_started\":true}\n"),
    ]
    .concat();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.ndjson");
    std::fs::write(&path, capture).unwrap();
    for rule in
        ["core/rules/tracee-trc-108-k8s-service-account-token.toml", "fixtures/rules/tracee-trc-108-detector.toml"]
    {
        let (fired, _) = replay(&root().join(rule), &path);
        assert_eq!(fired, vec![2, 3, 6], "{rule}");
        // Without the findings' context the driver follows only container start-up (a light pass).
        let options = ReplayOptions { context: false, ..ReplayOptions::default() };
        let (light, _) = replay_with(&root().join(rule), &path, options);
        assert_eq!(light, vec![2, 3, 6], "{rule}, starts only");
    }
    // The Tracee view names the origins.
    let mut views = Vec::new();
    tokenscan_core::driver::read_events_with_process(
        &[&path],
        tokenscan_core::capture::Projection::all(),
        true,
        &ReplayOptions::default(),
        |_, b| Ok(tokenscan_core::view::tracee::tracee_record_batch(&b)),
        &mut |v| {
            views.push(v);
            Ok(())
        },
    )
    .unwrap();
    let mut origins = Vec::new();
    for v in &views {
        let origin = v.column(v.schema().index_of("origin").unwrap()).as_string::<i32>();
        origins.extend((0..origin.len()).map(|i| origin.value(i).to_string()));
    }
    assert_eq!(
        origins,
        ["container-init", "container", "container", "container", "container-init", "container-init", "container"]
    );
}

#[test]
fn a_missing_argument_counts_only_where_the_origin_selects_the_event() {
    // Tracee's signature sees an event only once its selector (event and
    // origin) took it; only then can a missing argument make it return an
    // error (the seed counts the event as unevaluable). Container aaa's
    // runtime init opens the token with flags missing (0): container-init,
    // never selected, not counted. After the entry point's exec (1), the
    // workload's open with flags missing (2) is selected: counted. Its open
    // with flags (3) fires.
    let no_flags = |ms, comm| in_container(ms, "open", 70, comm, "aaa").replace("\"flags\":0", "\"flags\":null");
    let capture = [
        no_flags(0, "runc:[2:INIT]"),
        in_container(1, "exec", 70, "app", "aaa"),
        no_flags(2, "app"),
        in_container(3, "open", 70, "app", "aaa"),
    ]
    .concat();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.ndjson");
    std::fs::write(&path, capture).unwrap();
    let rule = root().join("core/rules/tracee-trc-108-k8s-service-account-token.toml");
    for context in [true, false] {
        let (fired, summary) = replay_with(&rule, &path, ReplayOptions { context, ..ReplayOptions::default() });
        assert_eq!(fired, vec![3], "context {context}");
        assert_eq!(summary.rules[0].unevaluable, 1, "context {context}");
        assert_eq!(
            summary.rules[0].examples.iter().map(|e| e.event_index).collect::<Vec<_>>(),
            [2],
            "context {context}"
        );
    }
}

#[test]
fn container_start_up_is_followed_across_parquet_batches() {
    // Batch [0, 3): only x's workload (no runtime-init comm: the per-container
    // fast path). Batch [3, 6): runc's init for a `runc exec` into x (x stays
    // started), then y being set up: its init opens the token (4) before the
    // entry point's exec (5). Batch [6, 9): y's workload opens it (6), and x's
    // exec'd process does (7).
    let capture = [
        in_container(0, "open", 80, "web", "x"),
        in_container(1, "open", 80, "web", "x"),
        in_container(2, "open", 81, "web", "x"),
        in_container(3, "open", 90, "runc:[2:INIT]", "x"),
        in_container(4, "open", 70, "runc:[2:INIT]", "y"),
        in_container(5, "exec", 70, "app", "y"),
        in_container(6, "open", 70, "app", "y"),
        in_container(7, "open", 90, "cat", "x"),
        in_container(8, "open", 71, "app", "y"),
    ]
    .concat();
    let dir = tempfile::tempdir().unwrap();
    let nd = dir.path().join("c.ndjson");
    std::fs::write(&nd, capture).unwrap();
    let mut batches = Vec::new();
    let three = ReplayOptions { batch_size: 3, ..ReplayOptions::default() };
    tokenscan_core::driver::read_events(
        &[&nd],
        tokenscan_core::capture::Projection::all(),
        &three,
        |_, b| Ok(b),
        &mut |b| {
            batches.push(b);
            Ok(())
        },
    )
    .unwrap();
    let pq = dir.path().join("c.parquet");
    // Row groups of three, so the first one's comm dictionary holds no runtime-init name.
    let options = tokenscan_core::capture::WriterOptions { row_group_rows: 3, ..Default::default() };
    let mut w =
        tokenscan_core::capture::ParquetCaptureWriter::new(std::fs::File::create(&pq).unwrap(), &pq, options).unwrap();
    for b in &batches {
        w.write(b).unwrap();
    }
    w.close().unwrap();
    let rule = root().join("core/rules/tracee-trc-108-k8s-service-account-token.toml");
    for context in [true, false] {
        let options = ReplayOptions { batch_size: 3, context, ..ReplayOptions::default() };
        let (fired, _) = replay_with(&rule, &pq, options);
        assert_eq!(fired, vec![0, 1, 2, 3, 6, 7, 8], "context {context}");
    }
    // The whole process context (what a rule reading process fields gets)
    // follows start-up the same way from dictionary-encoded batches: x is
    // started throughout, y is `container-init` at its init's open (4) and
    // started from its entry point's exec (5) on.
    let mut origins = Vec::new();
    tokenscan_core::driver::read_events_with_process(
        &[&pq],
        tokenscan_core::capture::Projection::all(),
        true,
        &three,
        |_, b| Ok(tokenscan_core::view::tracee::tracee_record_batch(&b)),
        &mut |v: arrow_array::RecordBatch| {
            let origin = v.column(v.schema().index_of("origin").unwrap()).as_string::<i32>();
            origins.extend((0..origin.len()).map(|i| origin.value(i).to_string()));
            Ok(())
        },
    )
    .unwrap();
    let c = "container";
    assert_eq!(origins, [c, c, c, c, "container-init", c, c, c, c]);
}
