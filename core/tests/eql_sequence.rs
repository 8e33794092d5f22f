//! EQL sequences: parsing (with the bounds on hostile rules) and the
//! matching semantics of Elasticsearch, pinned with hand-derived
//! expectations.
//!
//! Sources: Elasticsearch's EQL syntax reference (sequence, `by`, `with
//! maxspan`, time units ms/s/m/h/d, `until`, `with runs`), the rule that null
//! join keys never join, and the matching rules listed in
//! `core/src/eql/sequence.rs` (module docs). Expected sequences are worked
//! out by hand in the comments; none come from running the code.

use arrow_array::cast::AsArray;
use serde_json::{json, Value};
use tokenscan_core::capture::{events_from_ndjson, EventBatch};
use tokenscan_core::eql::{
    parse_sequence, CompileOptions, EqlSequence, SequenceMatcher, SequenceOutput, SequenceSpec, StageEvent, StageRef,
};

// ============================================================================
// Parsing
// ============================================================================

fn parse_error(src: &str) -> String {
    match parse_sequence(src) {
        Ok(q) => panic!("{src:?} parsed as {q:?}, expected an error"),
        Err(e) => e.message,
    }
}

fn compile_errors(src: &str) -> Vec<String> {
    match EqlSequence::compile_all(src, &CompileOptions::default()) {
        Ok(_) => panic!("{src:?} compiled, expected an error"),
        Err(e) => e.into_iter().map(|e| e.message).collect(),
    }
}

#[test]
fn parses_keys_maxspan_stages_runs_and_until() {
    let src = r#"sequence by container.id with maxspan=5m
        [file where file.path like "/tmp/*"] by file.path
        [process where event.action == "exec"] by process.executable with runs=2
        until [process where event.action == "end"] by process.executable"#;
    let q = parse_sequence(src).expect("parses");
    let names = |keys: &[tokenscan_core::eql::ast::JoinKey]| keys.iter().map(|k| k.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&q.by), ["container.id"]);
    // 5 minutes = 300 s = 300e9 ns.
    assert_eq!(q.maxspan.map(|(n, _)| n), Some(300_000_000_000));
    assert_eq!(q.stages.len(), 2);
    assert_eq!(names(&q.stages[0].by), ["file.path"]);
    assert_eq!((q.stages[0].runs, q.stages[1].runs), (1, 2));
    assert_eq!(q.stages[1].query.to_string(), r#"process where event.action == "exec""#);
    let until = q.until.expect("until stage");
    assert_eq!(names(&until.by), ["process.executable"]);
    // The stage span runs from '[' to ']'.
    assert_eq!(&src[q.stages[0].span.start..q.stages[0].span.end], r#"[file where file.path like "/tmp/*"]"#);
}

#[test]
fn options_in_either_order_and_every_time_unit() {
    let q = parse_sequence("sequence with maxspan=30s by host.name [any where true] [any where true]").unwrap();
    assert_eq!(q.maxspan.unwrap().0, 30_000_000_000);
    assert_eq!(q.by.len(), 1);
    for (unit, ns) in [
        ("ms", 1_000_000i64),
        ("s", 1_000_000_000),
        ("m", 60_000_000_000),
        ("h", 3_600_000_000_000),
        ("d", 86_400_000_000_000),
    ] {
        let src = format!("sequence with maxspan=2{unit} [any where true] [any where true]");
        assert_eq!(parse_sequence(&src).unwrap().maxspan.unwrap().0, 2 * ns, "{src}");
    }
    // Keywords of the header are case-insensitive, as EQL's are.
    assert!(parse_sequence("SEQUENCE BY host.name WITH maxspan=1s [any where true] [any where true]").is_ok());
}

#[test]
fn runs_after_stage_keys_optional_keys_and_maxspan_zero() {
    // ES's own shape: `[...] by dll.path with runs=3`.
    let q = parse_sequence(
        "sequence [process where true] by process.executable [file where true] by file.path with runs=3",
    )
    .unwrap();
    assert_eq!((q.stages[1].by[0].name.as_str(), q.stages[1].runs), ("file.path", 3));
    // `?field` marks a join key whose nulls join.
    let q = parse_sequence("sequence by process.pid, ?process.entity_id [any where true] [any where true]").unwrap();
    assert_eq!(q.by.iter().map(|k| k.optional).collect::<Vec<_>>(), [false, true]);
    // An unknown `?field` compiles (always null); an unknown plain one does not.
    assert!(EqlSequence::compile_all(
        "sequence by ?no.such [any where true] [any where true]",
        &CompileOptions::default()
    )
    .is_ok());
    // maxspan=0 is no limit, as in Elasticsearch.
    assert_eq!(parse_sequence("sequence with maxspan=0s [any where true] [any where true]").unwrap().maxspan, None);
}

#[test]
fn one_stage_is_not_a_sequence_but_runs_count() {
    assert_eq!(parse_error("sequence [any where true]"), "a sequence needs at least two stages (counting 'runs')");
    let q = parse_sequence("sequence [any where true] with runs=2").unwrap();
    assert_eq!(q.stages[0].runs, 2);
}

#[test]
fn hostile_sequences_get_clear_errors() {
    let two = "[any where true] [any where true]";
    let cases: Vec<(String, &str)> = vec![
        (
            "sequence [any where true] with runs=0 [any where true]".into(),
            "'runs' must be a whole number from 1 to 100",
        ),
        (
            "sequence [any where true] with runs=101 [any where true]".into(),
            "'runs' must be a whole number from 1 to 100",
        ),
        (
            "sequence [any where true] with runs=99999999999999999999999 [any where true]".into(),
            "'runs' value out of range",
        ),
        (
            "sequence [any where true] with runs=60 [any where true] with runs=5".into(),
            "a sequence may have at most 64 stages (counting 'runs'); this one has 65",
        ),
        (format!("sequence with maxspan=5 {two}"), "maxspan needs a time unit: ms, s, m, h or d (e.g. 'maxspan=30s')"),
        (format!("sequence with maxspan=5y {two}"), "unknown time unit 'y' in maxspan: use ms, s, m, h or d"),
        // 200,000 days is about 548 years: more nanoseconds than an i64 holds.
        (format!("sequence with maxspan=200000d {two}"), "maxspan too large (at most about 292 years)"),
        (format!("sequence with span=5s {two}"), "unknown sequence option 'span': only 'maxspan' is supported here"),
        (
            "sequence [any where true] with maxspan=5s [any where true]".into(),
            "unknown stage option 'maxspan': only 'runs' is supported on a stage",
        ),
        (
            "sequence [sequence [any where true] [any where true]] [any where true]".into(),
            "a sequence cannot be nested inside a sequence stage",
        ),
        (
            "sequence [any where true [any where true]".into(),
            "unexpected '[': expected 'and', 'or' or ']' to close the stage opened at 1:10",
        ),
        (format!("sequence {two} until [any where true] with runs=2"), "the 'until' stage cannot have 'runs'"),
        (
            "sequence [any where true] by host.name [any where true]".into(),
            "this stage has 0 join key(s) of its own but the first stage has 1: every stage needs as many",
        ),
        (format!("sequence {two} | count"), "unsupported pipe 'count': Elasticsearch's EQL has only 'head' and 'tail'"),
        (format!("sequence {two} | head 0"), "a pipe's count must be at least 1"),
        (format!("sequence {two} | tail"), "expected a count after 'tail'"),
        (
            format!("sequence {two} | head 2 ["),
            "unexpected '[': expected '[' to open a stage, 'until' or the end of the query",
        ),
        (
            "sequence with maxspan=1h [any where true] ![any where true]".into(),
            "unsupported: missing-event stages ('![ ... ]') are not supported",
        ),
    ];
    for (src, want) in cases {
        let got = parse_error(&src);
        assert!(got.starts_with(want), "{src}: got {got:?}, want {want:?}");
    }
    // A maxspan of years that fits is accepted: state still expires with it
    // and the pending bound keeps memory finite (see the matcher tests).
    assert!(parse_sequence(&format!("sequence with maxspan=36500d {two}")).is_ok());
    // Deep nesting inside a stage hits the single-event parser's limit.
    let deep = format!("sequence [any where {}true{}] [any where true]", "(".repeat(300), ")".repeat(300));
    assert!(parse_error(&deep).starts_with("expression nested too deeply"));
}

#[test]
fn stages_and_keys_are_type_checked_with_every_error() {
    let errors = compile_errors(
        "sequence by no.such.key [process where nope == 1] by process.args [file where file.path == \"/x\"] by file.path",
    );
    assert_eq!(
        errors,
        [
            "unknown field 'no.such.key' as a join key (write '?no.such.key' to treat it as null)",
            // from the single-event compiler, whatever its exact wording:
            errors[1].as_str(),
            "'process.args' is multi-valued: it cannot be a join key",
        ]
    );
    assert!(errors[1].contains("nope"), "{errors:?}");
}

fn rule_text(id: &str, query: &str) -> String {
    format!("[rule]\nname = \"seq\"\nrule_id = \"{id}\"\nseverity = \"low\"\nlanguage = \"eql\"\nquery = '''\n{query}\n'''\n")
}

#[test]
fn a_sequence_rule_loads_and_a_broken_one_is_reported_where_it_breaks() {
    let ok = rule_text("s-1", "sequence [process where true] [file where true]");
    let rule = tokenscan_core::rules::parse_rule(std::path::Path::new("seq.toml"), &ok, &CompileOptions::default())
        .expect("a sequence rule loads");
    assert_eq!(rule.kind(), "eql");
    assert_eq!(rule.sequence().map(|s| s.stages.len()), Some(2));
    // A broken sequence reports its error where it is.
    let bad = rule_text("s-1", "sequence [process where true] with runs=0 [file where true]");
    let msg = tokenscan_core::rules::parse_rule(std::path::Path::new("seq.toml"), &bad, &CompileOptions::default())
        .expect_err("refused")
        .to_string();
    assert!(msg.contains("seq.toml:7:41") && msg.contains("'runs' must be"), "{msg}");
}

// ============================================================================
// Matching: the state machines alone
// ============================================================================

/// Stage 0, 1, ... or until ("U"), with a join key (`None`: null key).
fn ev(time: i64, id: u64, stages: &[&str], key: Option<&str>) -> StageEvent<u64> {
    let key = key.map(|k| vec![Some(k.to_string())]);
    let matches = stages
        .iter()
        .map(|s| {
            let r = if *s == "U" { StageRef::Until } else { StageRef::Stage(s.parse().unwrap()) };
            (r, key.clone())
        })
        .collect();
    StageEvent { time, id, matches }
}

fn spec(runs: &[u32], maxspan: Option<i64>) -> SequenceSpec {
    SequenceSpec { runs: runs.to_vec(), maxspan, max_pending: 1000 }
}

/// The matched sequences as lists of event ids.
fn ids(out: &SequenceOutput<u64>) -> Vec<Vec<u64>> {
    out.sequences.iter().map(|s| s.iter().map(|(id, _)| *id).collect()).collect()
}

fn run(spec: SequenceSpec, events: Vec<StageEvent<u64>>) -> Vec<Vec<u64>> {
    ids(&SequenceMatcher::run(spec, events))
}

#[test]
fn stages_join_on_equal_keys_only() {
    // A(x) B(y) B(x): only the B with A's key completes it.
    let events = vec![ev(0, 1, &["0"], Some("x")), ev(1, 2, &["1"], Some("y")), ev(2, 3, &["1"], Some("x"))];
    assert_eq!(run(spec(&[1, 1], None), events), [vec![1, 3]]);
}

#[test]
fn null_keys_never_join() {
    let events = vec![ev(0, 1, &["0"], None), ev(1, 2, &["1"], None)];
    assert_eq!(run(spec(&[1, 1], None), events), Vec::<Vec<u64>>::new());
}

#[test]
fn maxspan_is_inclusive_from_first_to_last_event() {
    // maxspan 10: a last event 10 after the first matches, 11 after does not.
    let at = |t| vec![ev(0, 1, &["0"], Some("k")), ev(t, 2, &["1"], Some("k"))];
    assert_eq!(run(spec(&[1, 1], Some(10)), at(10)), [vec![1, 2]]);
    assert_eq!(run(spec(&[1, 1], Some(10)), at(11)), Vec::<Vec<u64>>::new());
    // Three stages: measured from the first event, not between neighbours:
    // 0, 6, 12 has gaps of 6 but spans 12 > 10.
    let three = vec![ev(0, 1, &["0"], Some("k")), ev(6, 2, &["1"], Some("k")), ev(12, 3, &["2"], Some("k"))];
    assert_eq!(run(spec(&[1, 1, 1], Some(10)), three), Vec::<Vec<u64>>::new());
}

#[test]
fn until_drops_the_partial_sequences_of_its_key_only() {
    let events = vec![
        ev(0, 1, &["0"], Some("x")),
        ev(0, 2, &["0"], Some("y")),
        ev(1, 3, &["U"], Some("x")),
        ev(2, 4, &["1"], Some("x")),
        ev(2, 5, &["1"], Some("y")),
    ];
    // x's partial [1] is dropped by 3; y's [2] completes with 5.
    assert_eq!(run(spec(&[1, 1], None), events), [vec![2, 5]]);
}

#[test]
fn runs_repeat_a_stage() {
    // [A] with runs=2 [B]: A1 A2 B -> one sequence of three events.
    let events = vec![ev(0, 1, &["0"], Some("k")), ev(1, 2, &["0"], Some("k")), ev(2, 3, &["1"], Some("k"))];
    assert_eq!(run(spec(&[2, 1], None), events), [vec![1, 2, 3]]);
    // A single A is not enough.
    let events = vec![ev(0, 1, &["0"], Some("k")), ev(2, 3, &["1"], Some("k"))];
    assert_eq!(run(spec(&[2, 1], None), events), Vec::<Vec<u64>>::new());
}

#[test]
fn an_event_advances_a_sequence_by_one_stage_at_most() {
    // Every event matches both stages. E1 alone is not a sequence; E2
    // completes [E1, E2] and starts a new one that E3 completes.
    let events =
        vec![ev(0, 1, &["0", "1"], Some("k")), ev(1, 2, &["0", "1"], Some("k")), ev(2, 3, &["0", "1"], Some("k"))];
    assert_eq!(run(spec(&[1, 1], None), events), [vec![1, 2], vec![2, 3]]);
}

#[test]
fn the_newest_partial_sequence_advances_and_older_ones_are_dropped() {
    // A1 A2 B1 B2: B1 takes the newest waiting A (A2); A1 is dropped with it,
    // so B2 finds nothing.
    let events = vec![
        ev(0, 1, &["0"], Some("k")),
        ev(5, 2, &["0"], Some("k")),
        ev(6, 3, &["1"], Some("k")),
        ev(7, 4, &["1"], Some("k")),
    ];
    assert_eq!(run(spec(&[1, 1], None), events), [vec![2, 3]]);
}

#[test]
fn elasticsearch_state_machine_example() {
    // The example of ES's "How sequence queries handle matches": by
    // user.name, [attrib] [bash] [cat]; events 1..11 in time order.
    // Walking it by hand: root: 1 (A), 2 (A, overwrites 1), 4 (B: [2,4]),
    // 5 (B: nothing in A), 7 (A: [7]), 9 (C: [2,4,9] complete), 11 (C:
    // nothing in B). elkbee: 3 (B: nothing), 6 (A), 8 (B: [6,8]),
    // 10 (C: [6,8,10] complete).
    let (root, elk) = (Some("root"), Some("elkbee"));
    let events = vec![
        ev(1, 1, &["0"], root),
        ev(2, 2, &["0"], root),
        ev(3, 3, &["1"], elk),
        ev(4, 4, &["1"], root),
        ev(5, 5, &["1"], root),
        ev(6, 6, &["0"], elk),
        ev(7, 7, &["0"], root),
        ev(8, 8, &["1"], elk),
        ev(9, 9, &["2"], root),
        ev(10, 10, &["2"], elk),
        ev(11, 11, &["2"], root),
    ];
    assert_eq!(run(spec(&[1, 1, 1], None), events), [vec![2, 4, 9], vec![6, 8, 10]]);
}

#[test]
fn until_between_expires_until_after_does_not() {
    // ES's `until` example, by ID: "A, B" and "A, B, C" match, "A, C, B" does not.
    let events = vec![
        ev(0, 1, &["0"], Some("1")),
        ev(1, 2, &["1"], Some("1")),
        ev(0, 3, &["0"], Some("2")),
        ev(1, 4, &["1"], Some("2")),
        ev(2, 5, &["U"], Some("2")),
        ev(0, 6, &["0"], Some("3")),
        ev(1, 7, &["U"], Some("3")),
        ev(2, 8, &["1"], Some("3")),
    ];
    assert_eq!(run(spec(&[1, 1], None), events), [vec![1, 2], vec![3, 4]]);
}

#[test]
fn optional_keys_join_null_with_null() {
    // `?field`: a null value is a value. Same events as `null_keys_never_join`,
    // but the stage events carry [null] instead of no key at all.
    let null = |time, id, stage: &str| StageEvent {
        time,
        id,
        matches: vec![(StageRef::Stage(stage.parse().unwrap()), Some(vec![None]))],
    };
    let events = vec![null(0, 1, "0"), ev(1, 2, &["1"], Some("x")), null(2, 3, "1")];
    assert_eq!(run(spec(&[1, 1], None), events), [vec![1, 3]]);
}

#[test]
fn input_order_does_not_matter_and_ties_go_by_id() {
    // Given shuffled, sorted by time: A(t=0) B(t=5) -> [A, B].
    let events = vec![ev(5, 2, &["1"], Some("k")), ev(0, 1, &["0"], Some("k"))];
    assert_eq!(run(spec(&[1, 1], None), events), [vec![1, 2]]);
    // Equal times: the id (capture order, event index) decides. A before B
    // matches; B before A does not.
    let a_first = vec![ev(3, 2, &["1"], Some("k")), ev(3, 1, &["0"], Some("k"))];
    assert_eq!(run(spec(&[1, 1], None), a_first), [vec![1, 2]]);
    let b_first = vec![ev(3, 1, &["1"], Some("k")), ev(3, 2, &["0"], Some("k"))];
    assert_eq!(run(spec(&[1, 1], None), b_first), Vec::<Vec<u64>>::new());
    // Ids are (capture, event index): time orders first, so an event of the
    // second capture can come before one of the first.
    let across = |time, capture, index, stage: &str| StageEvent {
        time,
        id: (capture, index),
        matches: vec![(StageRef::Stage(stage.parse().unwrap()), Some(vec![Some("k".to_string())]))],
    };
    let out = SequenceMatcher::run(spec(&[1, 1], None), vec![across(5, 0, 9, "1"), across(0, 1, 0, "0")]);
    assert_eq!(out.sequences, [vec![((1, 0), 0), ((0, 9), 1)]]);
}

#[test]
fn pending_state_is_bounded_and_drops_are_counted() {
    // 25 first-stage events, each its own key, bound 10 (shed to 9 when
    // exceeded). Counts after each event: 1..10, then 11 -> 9 (2 dropped),
    // 10, 11 -> 9 (2 more), ... : events 11, 13, ..., 25 each shed 2, that
    // is 8 times: 16 dropped, and the 9 newest (17..=25) remain.
    let mut m = SequenceMatcher::new(SequenceSpec { runs: vec![1, 1], maxspan: None, max_pending: 10 });
    for i in 1..=25u64 {
        m.push(ev(i as i64, i, &["0"], Some(&format!("k{i}"))));
    }
    assert_eq!(m.pending(), 9);
    m.push(ev(100, 100, &["1"], Some("k1")));
    m.push(ev(101, 101, &["1"], Some("k17")));
    let out = m.finish();
    assert_eq!(out.dropped, 16);
    assert_eq!(ids(&out), [vec![17, 101]]);
}

#[test]
fn expired_state_goes_first_and_is_not_counted_as_dropped() {
    // Bound 2, maxspan 10: at t=20, the partials started at 0 and 1 can no
    // longer complete; shedding removes them and drops nothing live.
    let mut m = SequenceMatcher::new(SequenceSpec { runs: vec![1, 1], maxspan: Some(10), max_pending: 2 });
    m.push(ev(0, 1, &["0"], Some("a")));
    m.push(ev(1, 2, &["0"], Some("b")));
    m.push(ev(20, 3, &["0"], Some("c")));
    assert_eq!(m.pending(), 1);
    m.push(ev(21, 4, &["1"], Some("c")));
    let out = m.finish();
    assert_eq!((ids(&out), out.dropped), (vec![vec![3, 4]], 0));
}

#[test]
fn state_older_than_maxspan_is_swept_as_time_advances() {
    // 20,000 keys each start a sequence, one per second, maxspan 1 s, and a
    // bound far above: only the partials of the last second can complete,
    // so the pending state must stay near the sweep threshold (4,096, swept
    // again each time the count doubles), not grow to 20,000.
    let mut m = SequenceMatcher::new(SequenceSpec { runs: vec![1, 1], maxspan: Some(SEC), max_pending: 1_000_000 });
    let mut most = 0;
    for i in 0..20_000u64 {
        m.push(ev(i as i64 * SEC, i, &["0"], Some(&format!("k{i}"))));
        most = most.max(m.pending());
    }
    assert!(most <= 2 * 4096 + 1, "{most} sequences pending at once");
    // Sweeping drops only what could not complete: the last key's sequence
    // (started at 19,999 s) completes 1 s later, inclusive; nothing is
    // counted as dropped.
    m.push(ev(20_000 * SEC, 20_000, &["1"], Some("k19999")));
    let out = m.finish();
    assert_eq!((ids(&out), out.dropped), (vec![vec![19_999, 20_000]], 0));
}

// ============================================================================
// End to end on events: a D4C-like "written in /tmp, then executed" sequence
// ============================================================================

/// A file written in /tmp, then executed, in the same container within a minute.
const WRITTEN_THEN_EXECUTED: &str = r#"sequence by container.id with maxspan=1m
    [file where event.type == "change" and file.path like "/tmp/*"] by file.path
    [process where event.action == "exec"] by process.executable"#;

const T0: i64 = 1_763_649_000_000_000_000;
const SEC: i64 = 1_000_000_000;

fn event(kind: &str, t: i64, container: Option<&str>, fields: Value) -> Value {
    let mut e = json!({
        "time": T0 + t, "kind": kind, "host": "node-a", "pid": 10, "tid": 10, "ppid": 1,
        "uid": 0, "gid": 0, "comm": "sh", "cgroup_id": 1, "container_id": container,
    });
    for (k, v) in fields.as_object().unwrap() {
        e[k] = v.clone();
    }
    e
}

/// A write-intent open (O_WRONLY|O_CREAT) of `path`.
fn write(t: i64, container: Option<&str>, path: &str) -> Value {
    event(
        "open",
        t,
        container,
        json!({"comm": "curl", "exe": "/usr/bin/curl", "path": path, "flags": 0o101, "result": 3}),
    )
}

fn exec(t: i64, container: Option<&str>, exe: &str) -> Value {
    event("exec", t, container, json!({"exe": exe, "path": exe, "args": [exe], "result": 0}))
}

fn batch(events: &[Value]) -> EventBatch {
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    let mut batches = events_from_ndjson(&text, "test", 1024).expect("valid NDJSON");
    assert_eq!(batches.len(), 1);
    batches.pop().unwrap()
}

#[test]
fn file_written_in_tmp_then_executed_by_the_same_container() {
    let seq = EqlSequence::compile_all(WRITTEN_THEN_EXECUTED, &CompileOptions::default()).expect("compiles");
    let events = [
        write(0, Some("c1"), "/tmp/x"),        // 0: stage 0, key (c1, /tmp/x)
        exec(5 * SEC, Some("c1"), "/tmp/x"),   // 1: stage 1, completes [0, 1]
        write(6 * SEC, Some("c1"), "/tmp/y"),  // 2: stage 0, key (c1, /tmp/y)
        exec(7 * SEC, Some("c1"), "/tmp/z"),   // 3: other file: no
        exec(8 * SEC, Some("c2"), "/tmp/y"),   // 4: other container: no
        write(9 * SEC, None, "/tmp/h"),        // 5: host: null container.id
        exec(10 * SEC, None, "/tmp/h"),        // 6: ... never joins
        exec(67 * SEC, Some("c1"), "/tmp/y"),  // 7: 61 s after 2: beyond maxspan
        write(70 * SEC, Some("c1"), "/etc/x"), // 8: not in /tmp
        exec(71 * SEC, Some("c1"), "/etc/x"),  // 9: no partial to complete
    ];
    let stage_events = seq.stage_events(&batch(&events), 0);
    let out = SequenceMatcher::run(seq.spec(100), stage_events);
    let got: Vec<Vec<(u64, usize)>> =
        out.sequences.iter().map(|s| s.iter().map(|&((_, ix), stage)| (ix, stage)).collect()).collect();
    assert_eq!(got, [vec![(0, 0), (1, 1)]]);
    assert_eq!(out.dropped, 0);
}

// ============================================================================
// Through the driver: several captures are one stream, ordered by time
// ============================================================================

fn ndjson(events: &[Value]) -> String {
    events.iter().map(|e| format!("{e}\n")).collect()
}

/// A finding as (capture file name, event index, rule id, reason).
type Row = (String, u64, String, String);

/// Replays `captures` through the rule files `rules` (in a fresh replayer);
/// returns the findings as (capture file name, event index, rule id,
/// reason with the directory `dir` left out) and the summary.
fn replay(
    dir: &std::path::Path,
    rules: &[std::path::PathBuf],
    captures: &[&std::path::Path],
    options: tokenscan_core::replay::ReplayOptions,
) -> tokenscan_core::error::Result<(Vec<Row>, tokenscan_core::replay::ReplaySummary)> {
    use tokenscan_core::replay::{CollectSink, Replayer};
    let rules = tokenscan_core::rules::RuleSet::load(rules, &CompileOptions::default())?;
    let mut sink = CollectSink::default();
    let summary = Replayer::new(rules, options).replay(captures, &mut sink)?;
    let prefix = format!("{}/", dir.display());
    let mut rows = Vec::new();
    for b in &sink.batches {
        let col = |n: &str| b.column_by_name(n).unwrap().clone();
        let (capture, index, reason, id) = (col("capture"), col("event_index"), col("reason"), col("rule_id"));
        for i in 0..b.num_rows() {
            let name = std::path::Path::new(capture.as_string::<i32>().value(i)).file_name().unwrap();
            rows.push((
                name.to_string_lossy().into_owned(),
                index.as_primitive::<arrow_array::types::UInt64Type>().value(i),
                id.as_string::<i32>().value(i).to_string(),
                reason.as_string::<i32>().value(i).replace(&prefix, ""),
            ));
        }
    }
    Ok((rows, summary))
}

#[test]
fn captures_replayed_together_are_one_stream_ordered_by_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("a.ndjson"), dir.path().join("b.ndjson"));
    // Capture a: event 0 is the exec of /tmp/y at 10 s, event 1 the write of
    // /tmp/y at 2 s (out of order in the file), event 2 the write of /tmp/x at 0 s.
    std::fs::write(
        &a,
        ndjson(&[
            exec(10 * SEC, Some("c1"), "/tmp/y"),
            write(2 * SEC, Some("c1"), "/tmp/y"),
            write(0, Some("c1"), "/tmp/x"),
        ]),
    )
    .unwrap();
    // Capture b: event 0 is the exec of /tmp/x at 5 s.
    std::fs::write(&b, ndjson(&[exec(5 * SEC, Some("c1"), "/tmp/x")])).unwrap();
    let rule = dir.path().join("seq.toml");
    std::fs::write(&rule, rule_text("seq-1", WRITTEN_THEN_EXECUTED)).unwrap();
    let options = tokenscan_core::replay::ReplayOptions::default();
    let (rows, summary) = replay(dir.path(), std::slice::from_ref(&rule), &[&a, &b], options.clone()).expect("replays");
    assert_eq!(summary.events, 4);
    // By time: a:2 (0 s, write x), a:1 (2 s, write y), b:0 (5 s, exec x) completes
    // [a:2, b:0]; a:0 (10 s, exec y) completes [a:1, a:0].
    assert_eq!((summary.rules[0].sequences, summary.rules[0].findings, summary.rules[0].sequences_dropped), (2, 4, 0));
    // Findings: one row per event of each sequence, in capture and event
    // order, the reason naming the sequence (its first event, capture:index),
    // the event's place in it and why its stage matched.
    let heads: Vec<(&str, u64, &str, &str, &str)> = rows
        .iter()
        .map(|(c, i, id, r)| {
            let (head, why) = r.split_once("): ").expect("reason has a head");
            (c.as_str(), *i, id.as_str(), head, why)
        })
        .collect();
    assert!(heads[1].4.contains(r#"(matched "/tmp/y")"#), "{heads:?}");
    assert!(heads[2].4.contains(r#"(matched "/tmp/x")"#), "{heads:?}");
    let heads: Vec<_> = heads.iter().map(|&(c, i, id, h, _)| (c, i, id, h)).collect();
    assert_eq!(
        heads,
        [
            ("a.ndjson", 0, "seq-1", "sequence a.ndjson:1, event 2 of 2 (stage 2"),
            ("a.ndjson", 1, "seq-1", "sequence a.ndjson:1, event 1 of 2 (stage 1"),
            ("a.ndjson", 2, "seq-1", "sequence a.ndjson:2, event 1 of 2 (stage 1"),
            ("b.ndjson", 0, "seq-1", "sequence a.ndjson:2, event 2 of 2 (stage 2"),
        ]
    );
    // Capture a alone has 3 stage events: a bound of 2 stops the run there, by name.
    let bounded = tokenscan_core::replay::ReplayOptions { sequence_max_events: 2, ..options };
    let err = replay(dir.path(), &[rule], &[&a, &b], bounded).expect_err("bounded");
    let msg = err.to_string();
    assert!(msg.contains("a.ndjson: more than 2 events match the stages of the sequence rules"), "{msg}");
}

/// `events` written as a Parquet capture with row groups of `rows` events.
fn parquet(path: &std::path::Path, events: &[Value], rows: usize) {
    use tokenscan_core::capture::{ParquetCaptureWriter, WriterOptions};
    let file = std::fs::File::create(path).expect("create");
    let options = WriterOptions { row_group_rows: rows, ..Default::default() };
    let mut w = ParquetCaptureWriter::new(file, path, options).expect("writer");
    for b in events_from_ndjson(&ndjson(events), "test", 1024).expect("valid NDJSON") {
        w.write(&b).expect("writes");
    }
    w.close().expect("closes");
}

#[test]
fn a_capture_in_time_order_streams_in_bounded_memory() {
    // 20 files written in /tmp and each executed 1 s later, in time order:
    // 40 stage events, 20 sequences. In row groups of 4, the row-group
    // statistics say no later event is earlier, so at most a row group's
    // events wait to be ordered: a bound of 8 held events is enough. The
    // same events as NDJSON (no statistics) must all wait to the end.
    let dir = tempfile::tempdir().expect("tempdir");
    let events: Vec<Value> = (0..20)
        .flat_map(|i| {
            let path = format!("/tmp/f{i}");
            [write(10 * i * SEC, Some("c1"), &path), exec(10 * i * SEC + SEC, Some("c1"), &path)]
        })
        .collect();
    let (pq, nd) = (dir.path().join("node.parquet"), dir.path().join("node.ndjson"));
    parquet(&pq, &events, 4);
    std::fs::write(&nd, ndjson(&events)).unwrap();
    let rule = dir.path().join("seq.toml");
    std::fs::write(&rule, rule_text("seq-1", WRITTEN_THEN_EXECUTED)).unwrap();
    let bounded = tokenscan_core::replay::ReplayOptions { sequence_max_events: 8, ..Default::default() };
    let (rows, summary) = replay(dir.path(), std::slice::from_ref(&rule), &[&pq], bounded.clone()).expect("replays");
    assert_eq!((summary.rules[0].sequences, rows.len()), (20, 40));
    // Each sequence is a write at event 2i and its exec at event 2i+1.
    for (i, (_, index, _, reason)) in rows.iter().enumerate() {
        let first = i as u64 / 2 * 2;
        assert!(reason.starts_with(&format!("sequence node.parquet:{first}, event {} of 2", i % 2 + 1)), "{reason}");
        assert_eq!(*index, i as u64);
    }
    let err = replay(dir.path(), std::slice::from_ref(&rule), &[&nd], bounded).expect_err("NDJSON holds all");
    assert!(err.to_string().contains("node.ndjson: more than 8 events match the stages"), "{err}");
}

#[test]
fn events_out_of_order_across_row_groups_wait_for_the_earlier_ones() {
    // Row group 0: the write of /tmp/x at 0 s (event 0), the exec of /tmp/y
    // at 10 s (event 1); row group 1: the write of /tmp/y at 2 s (event 2),
    // the exec of /tmp/x at 5 s (event 3). In time order: write x, write y,
    // exec x (completes [0, 3]), exec y (completes [2, 1]). Releasing event
    // 1 before row group 1 is read would lose the /tmp/y sequence: its
    // statistics (earliest 2 s) hold it back.
    let dir = tempfile::tempdir().expect("tempdir");
    let events = [
        write(0, Some("c1"), "/tmp/x"),
        exec(10 * SEC, Some("c1"), "/tmp/y"),
        write(2 * SEC, Some("c1"), "/tmp/y"),
        exec(5 * SEC, Some("c1"), "/tmp/x"),
    ];
    let pq = dir.path().join("node.parquet");
    parquet(&pq, &events, 2);
    assert_eq!(tokenscan_core::capture::Capture::open(&pq).unwrap().units(), 2);
    let rule = dir.path().join("seq.toml");
    std::fs::write(&rule, rule_text("seq-1", WRITTEN_THEN_EXECUTED)).unwrap();
    let options = tokenscan_core::replay::ReplayOptions { batch_size: 1, ..Default::default() };
    let (rows, summary) = replay(dir.path(), &[rule], &[&pq], options).expect("replays");
    assert_eq!(summary.rules[0].sequences, 2);
    let heads: Vec<(u64, &str)> =
        rows.iter().map(|(_, i, _, r)| (*i, r.split_once(" (stage").expect("head").0)).collect();
    assert_eq!(
        heads,
        [
            (0, "sequence node.parquet:0, event 1 of 2"),
            (1, "sequence node.parquet:2, event 2 of 2"),
            (2, "sequence node.parquet:2, event 1 of 2"),
            (3, "sequence node.parquet:0, event 2 of 2"),
        ]
    );
}

// ============================================================================
// Samples: `sample by ... [filter] [filter] ...`
//
// Sources: Elasticsearch's EQL syntax reference, "Samples" (events in any
// order, join keys with `by`, no `with maxspan`, `with runs` nor `until`)
// and its EQL search page, "Sample chronologically unordered events" (at
// least one join key, up to five filters, one event per filter, one sample
// per set of join key values by default). Which event fills each filter is
// our documented choice (docs/rule-semantics.md, "Samples"): per filter the
// earliest by (time, id) that no earlier filter of the sample took,
// backtracking when a later filter would be left with none.
// ============================================================================

use tokenscan_core::eql::{line_col, match_samples, JoinKind};

/// The parse error of `src` and the 1-based line and column it points at.
fn error_at(src: &str) -> (String, (usize, usize)) {
    match parse_sequence(src) {
        Ok(q) => panic!("{src:?} parsed as {q:?}, expected an error"),
        Err(e) => (e.message, line_col(src, e.span.start)),
    }
}

#[test]
fn a_sample_parses_with_shared_and_per_filter_keys() {
    let src = r#"sample by host.name
        [file where file.path like "/tmp/*"] by user.name
        [process where event.action == "exec"] by user.name"#;
    let q = parse_sequence(src).expect("parses");
    assert_eq!(q.kind, JoinKind::Sample);
    assert_eq!(q.by.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(), ["host.name"]);
    assert_eq!(q.stages.len(), 2);
    assert_eq!(q.stages[1].by[0].name, "user.name");
    assert_eq!((q.stages[0].runs, q.stages[1].runs, q.maxspan.is_none(), q.until.is_none()), (1, 1, true, true));
    // Keys only after the filters, keys only after `sample`, five filters, and
    // the keyword in any case, are all samples.
    let two = "[any where true] [any where true]";
    assert!(parse_sequence("sample [any where true] by host.name [any where true] by host.name").is_ok());
    assert!(parse_sequence(&format!("SAMPLE BY host.name {two}")).is_ok());
    let five = format!("sample by host.name {two} {two} [any where true]");
    assert_eq!(parse_sequence(&five).expect("five filters").stages.len(), 5);
    // A sample loads as a rule matched over the stream, like a sequence.
    assert!(tokenscan_core::eql::is_sequence(&format!("sample by host.name {two}")));
}

#[test]
fn what_elasticsearch_refuses_in_a_sample_is_an_error_where_it_is() {
    // Each position counted by hand (columns from 1; the header is line 1).
    let cases: &[(&str, &str, (usize, usize))] = &[
        // "sample by host.name " is 20 characters: `with` at column 21.
        (
            "sample by host.name with maxspan=5s [any where true] [any where true]",
            "'with maxspan' is not supported in a sample",
            (1, 21),
        ),
        ("sample with maxspan=5s by host.name [any where true] [any where true]", "'with maxspan'", (1, 8)),
        // Line 2 is "  [any where true] with runs=2": `with` after 2 + 16 + 1 characters.
        (
            "sample by host.name\n  [any where true] with runs=2\n  [any where true]",
            "'with runs' is not supported in a sample",
            (2, 20),
        ),
        (
            "sample by host.name [any where true] [any where true]\nuntil [any where true]",
            "'until' is not supported in a sample",
            (2, 1),
        ),
        // 20 + 17 + 17 = 54 characters before the `|`.
        (
            "sample by host.name [any where true] [any where true] | head 1",
            "pipes ('| head N', '| tail N') are not supported after a sample",
            (1, 55),
        ),
        // Counts and keys: the whole query, from `sample`.
        ("sample by host.name [any where true]", "a sample needs at least two filters", (1, 1)),
        (
            "sample by host.name [any where true] [any where true] [any where true] [any where true] \
             [any where true] [any where true]",
            "a sample may have at most 5 filters; this one has 6",
            (1, 1),
        ),
        ("sample [any where true] [any where true]", "a sample needs at least one join key", (1, 1)),
        // "sample " (7) + "[any where true] by host.name " (30): the second filter at column 38.
        (
            "sample [any where true] by host.name [any where true]",
            "this filter has 0 join key(s) of its own but the first filter has 1: every filter needs as many",
            (1, 38),
        ),
        // "sample by host.name [" is 21 characters: the inner `sample` at column 22.
        (
            "sample by host.name [sample by x [any where true]] [any where true]",
            "a sample cannot be nested inside a sample filter",
            (1, 22),
        ),
    ];
    for (src, want, at) in cases {
        let (got, pos) = error_at(src);
        assert!(got.starts_with(want), "{src}: got {got:?}, want {want:?}");
        assert_eq!(pos, *at, "{src}: {got}");
    }
    // Join keys are checked as a sequence's are.
    assert_eq!(
        compile_errors("sample by process.args [any where true] [any where true]"),
        ["'process.args' is multi-valued: it cannot be a join key"]
    );
    // In a rule file the position is the file's: the query starts on line 7,
    // so the `until` of its second line is at 8:1.
    let bad = rule_text("s-1", "sample by host.name [process where true] [file where true]\nuntil [any where true]");
    let msg = tokenscan_core::rules::parse_rule(std::path::Path::new("smp.toml"), &bad, &CompileOptions::default())
        .expect_err("refused")
        .to_string();
    assert!(msg.contains("smp.toml:8:1") && msg.contains("'until' is not supported in a sample"), "{msg}");
}

#[test]
fn a_sample_rule_loads_as_a_stream_rule_and_describes_its_filters() {
    use tokenscan_core::engine::CompiledRule as _;
    let ok = rule_text("smp-1", "sample by host.name [process where true] [file where true]");
    let rule = tokenscan_core::rules::parse_rule(std::path::Path::new("smp.toml"), &ok, &CompileOptions::default())
        .expect("a sample rule loads");
    let sample = rule.sequence().expect("matched over the stream, as a sequence");
    assert_eq!((sample.kind(), sample.stages.len()), (JoinKind::Sample, 2));
    let logic = sample.describe();
    // Each filter as written, brackets included (as a sequence's stages).
    assert_eq!(logic["sample"]["filters"][0]["query"], "[process where true]");
    assert_eq!(logic["sample"]["filters"][1]["query"], "[file where true]");
    assert!(logic.get("sequence").is_none(), "{logic}");
}

#[test]
fn rules_check_lints_each_filter_of_a_sample_as_a_sequence_s_stages() {
    use tokenscan_core::lint::{check_file, Severity};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("smp.toml");
    // Line 8 (the query's second line): `file.path` under a process filter can
    // never be true; it starts after `  [process where event.action == "exec" and `,
    // 44 characters, so at column 45.
    let query = "sample by container.id\n  [process where event.action == \"exec\" and file.path == \"/x\"]\n  [file where event.action == \"open\"]";
    std::fs::write(&path, rule_text("smp-1", query)).expect("write");
    let found: Vec<(Severity, (usize, usize), String)> = check_file(&path, &CompileOptions::default())
        .into_iter()
        .map(|d| (d.severity, d.position.map(|p| (p.line, p.column)).expect("a position"), d.message))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].0, found[0].1), (Severity::Warning, (8, 45)));
    assert!(found[0].2.contains("can never be true"), "{found:?}");
}

/// The samples as lists of (event id, filter number from 1), each in time order.
fn samples(filters: usize, events: Vec<StageEvent<u64>>) -> Vec<Vec<(u64, usize)>> {
    let out = match_samples(filters, events);
    assert_eq!(out.dropped, 0);
    out.sequences.iter().map(|s| s.iter().map(|&(id, f)| (id, f + 1)).collect()).collect()
}

#[test]
fn a_sample_takes_its_events_in_any_order() {
    // Filter 2's event (t=0) comes before filter 1's (t=10): a sequence would
    // not match, a sample does; its events are listed in time order.
    let events = vec![ev(10, 1, &["0"], Some("k")), ev(0, 2, &["1"], Some("k"))];
    assert_eq!(samples(2, events.clone()), [vec![(2, 2), (1, 1)]]);
    assert_eq!(run(spec(&[1, 1], None), events.clone()), Vec::<Vec<u64>>::new());
    // The order the events are given in does not matter.
    let mut reversed = events;
    reversed.reverse();
    assert_eq!(samples(2, reversed), [vec![(2, 2), (1, 1)]]);
}

#[test]
fn each_filter_gets_the_earliest_event_with_ties_by_id() {
    // Filter 1: id 1 at t=5, id 2 at t=1, id 4 at t=1; filter 2: id 3 at t=3.
    // Filter 1 takes the earliest, t=1, and of ids 2 and 4 the smaller, 2.
    let events = vec![
        ev(5, 1, &["0"], Some("k")),
        ev(1, 4, &["0"], Some("k")),
        ev(1, 2, &["0"], Some("k")),
        ev(3, 3, &["1"], Some("k")),
    ];
    assert_eq!(samples(2, events), [vec![(2, 1), (3, 2)]]);
}

#[test]
fn one_event_never_fills_two_filters() {
    // Event 1 matches both filters: alone, it is not a sample of two events.
    assert_eq!(samples(2, vec![ev(0, 1, &["0", "1"], Some("k"))]), Vec::<Vec<(u64, usize)>>::new());
    // Add event 2 (t=1), filter 1 only. Filter 1 = {1, 2}, filter 2 = {1}.
    // Filter 1 first tries 1, which leaves filter 2 nothing; so filter 1
    // takes 2 and filter 2 takes 1 (a greedy "earliest free" without going
    // back would find no sample here).
    let events = vec![ev(0, 1, &["0", "1"], Some("k")), ev(1, 2, &["0"], Some("k"))];
    assert_eq!(samples(2, events), [vec![(1, 2), (2, 1)]]);
    // Three filters: 1 = {1, 2}, 2 = {1}, 3 = {2, 3} (ids in time order).
    // Filter 1 = 1 leaves filter 2 nothing; filter 1 = 2, filter 2 = 1,
    // then filter 3 cannot take 2 (filter 1's) and takes 3.
    let events = vec![ev(0, 1, &["0", "1"], Some("k")), ev(1, 2, &["0", "2"], Some("k")), ev(2, 3, &["2"], Some("k"))];
    assert_eq!(samples(3, events), [vec![(1, 2), (2, 1), (3, 3)]]);
}

#[test]
fn one_sample_per_set_of_key_values() {
    // x: three events per filter, still one sample (the earliest of each);
    // y: filter 1 only, no sample; z: one of each. Samples come in the order
    // of their events: z's (t=0, t=1) before x's (t=2, ...).
    let events = vec![
        ev(2, 1, &["0"], Some("x")),
        ev(3, 2, &["0"], Some("x")),
        ev(4, 3, &["0"], Some("x")),
        ev(5, 4, &["1"], Some("x")),
        ev(6, 5, &["1"], Some("x")),
        ev(7, 6, &["1"], Some("x")),
        ev(0, 7, &["0"], Some("y")),
        ev(1, 8, &["1"], Some("z")),
        ev(0, 9, &["0"], Some("z")),
    ];
    assert_eq!(samples(2, events), [vec![(9, 1), (8, 2)], vec![(1, 1), (4, 2)]]);
}

#[test]
fn null_keys_join_nothing_unless_optional() {
    // A required key that is null: the event joins no sample.
    let events = vec![ev(0, 1, &["0"], None), ev(1, 2, &["1"], None)];
    assert_eq!(samples(2, events), Vec::<Vec<(u64, usize)>>::new());
    // `?field`: null is a value, and joins null (not "x").
    let null =
        |time, id, filter: usize| StageEvent { time, id, matches: vec![(StageRef::Stage(filter), Some(vec![None]))] };
    let events = vec![null(0, 1, 0), ev(1, 2, &["1"], Some("x")), null(2, 3, 1)];
    assert_eq!(samples(2, events), [vec![(1, 1), (3, 2)]]);
}

#[test]
fn five_filters_need_five_distinct_events() {
    // One event per filter, in reverse time order: one sample of five.
    let events: Vec<_> = (0..5u64).map(|f| ev(10 - f as i64, f + 1, &[&f.to_string()], Some("k"))).collect();
    assert_eq!(samples(5, events.clone()), [vec![(5, 5), (4, 4), (3, 3), (2, 2), (1, 1)]]);
    // Four of the five filters met: no sample.
    assert_eq!(samples(5, events[..4].to_vec()), Vec::<Vec<(u64, usize)>>::new());
    // Five events that each match every filter fill the five filters, in
    // time order: event 1 the first filter, ..., event 5 the fifth.
    let all = ["0", "1", "2", "3", "4"];
    let events: Vec<_> = (1..=5u64).map(|id| ev(id as i64, id, &all, Some("k"))).collect();
    assert_eq!(samples(5, events), [vec![(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)]]);
}

/// A file written in /tmp and the same file executed, in one container, in either order.
const WRITTEN_AND_EXECUTED: &str = r#"sample by container.id
    [file where event.type == "change" and file.path like "/tmp/*"] by file.path
    [process where event.action == "exec"] by process.executable"#;

#[test]
fn a_sample_over_events_joins_by_container_and_path_in_any_order() {
    let smp = EqlSequence::compile_all(WRITTEN_AND_EXECUTED, &CompileOptions::default()).expect("compiles");
    let events = [
        exec(0, Some("c1"), "/tmp/x"),         // 0: filter 2, key (c1, /tmp/x)
        write(5 * SEC, Some("c1"), "/tmp/x"),  // 1: filter 1, (c1, /tmp/x): sample [0, 1]
        write(6 * SEC, Some("c1"), "/tmp/x"),  // 2: same key: that key has its sample
        write(7 * SEC, Some("c2"), "/tmp/y"),  // 3: filter 1, (c2, /tmp/y)
        exec(8 * SEC, Some("c1"), "/tmp/y"),   // 4: other container: not 3's
        write(9 * SEC, None, "/tmp/h"),        // 5: host: null container.id
        exec(10 * SEC, None, "/tmp/h"),        // 6: ... never joins
        exec(900 * SEC, Some("c2"), "/tmp/y"), // 7: 893 s after 3: no time limit: sample [3, 7]
    ];
    let found = smp.stage_events(&batch(&events), 0);
    let out = smp.match_events(100, found);
    let got: Vec<Vec<(u64, usize)>> =
        out.sequences.iter().map(|s| s.iter().map(|&((_, ix), filter)| (ix, filter + 1)).collect()).collect();
    assert_eq!(got, [vec![(0, 2), (1, 1)], vec![(3, 1), (7, 2)]]);
}

#[test]
fn a_sample_rule_through_the_driver_names_each_event_s_sample_and_filter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("a.ndjson"), dir.path().join("b.ndjson"));
    // Capture a: 0 = exec of /tmp/x at 9 s, 1 = write of /tmp/y at 1 s.
    // Capture b: 0 = write of /tmp/x at 3 s, 1 = exec of /tmp/y at 0 s.
    std::fs::write(&a, ndjson(&[exec(9 * SEC, Some("c1"), "/tmp/x"), write(SEC, Some("c1"), "/tmp/y")])).unwrap();
    std::fs::write(&b, ndjson(&[write(3 * SEC, Some("c1"), "/tmp/x"), exec(0, Some("c1"), "/tmp/y")])).unwrap();
    let rule = dir.path().join("smp.toml");
    std::fs::write(&rule, rule_text("smp-1", WRITTEN_AND_EXECUTED)).unwrap();
    let options = tokenscan_core::replay::ReplayOptions::default();
    let (rows, summary) = replay(dir.path(), &[rule], &[&a, &b], options).expect("replays");
    // Two samples: /tmp/y = {b:1 (0 s, filter 2), a:1 (1 s, filter 1)},
    // labelled by its earliest event b:1; /tmp/x = {b:0 (3 s, filter 1),
    // a:0 (9 s, filter 2)}, labelled b:0.
    let s = &summary.rules[0];
    assert_eq!((s.is_sample, s.is_sequence, s.sequences, s.findings), (true, true, 2, 4));
    let heads: Vec<(&str, u64, &str)> =
        rows.iter().map(|(c, i, _, r)| (c.as_str(), *i, r.split_once("): ").expect("a head").0)).collect();
    assert_eq!(
        heads,
        [
            ("a.ndjson", 0, "sample b.ndjson:0, event 2 of 2 (filter 2"),
            ("a.ndjson", 1, "sample b.ndjson:1, event 2 of 2 (filter 1"),
            ("b.ndjson", 0, "sample b.ndjson:0, event 1 of 2 (filter 1"),
            ("b.ndjson", 1, "sample b.ndjson:1, event 1 of 2 (filter 2"),
        ]
    );
    // The reason goes on with why the event matched its filter.
    assert!(rows[1].3.contains(r#""/tmp/y""#), "{rows:?}");
    let json = tokenscan_core::summary::summary_json(&summary);
    assert_eq!(json["rules"][0]["samples"], 2);
    assert!(json["rules"][0].get("sequences").is_none(), "{json}");
    // A sample's filter events are held until the end like a sequence's
    // stage events, within the same bound: capture a holds 2, so a bound of
    // 1 stops the run there, naming it.
    let bounded = tokenscan_core::replay::ReplayOptions { sequence_max_events: 1, ..Default::default() };
    let err = replay(dir.path(), &[dir.path().join("smp.toml")], &[&a, &b], bounded).expect_err("bounded");
    let msg = err.to_string();
    assert!(
        msg.contains("a.ndjson: more than 1 events match") && msg.contains("the filters of the sample rules"),
        "{msg}"
    );
}

#[test]
fn a_sample_rule_is_refused_one_batch_at_a_time_by_name() {
    use tokenscan_core::replay::{CollectSink, ReplayOptions, Replayer};
    // A sample needs the whole stream (its events may be in any batch):
    // evaluation of a lone batch refuses it, naming the rule and what it is.
    let text = rule_text("smp-1", WRITTEN_AND_EXECUTED);
    let rules = tokenscan_core::rules::RuleSet::from_sources(
        &[(std::path::Path::new("smp.toml"), text.as_str())],
        &CompileOptions::default(),
    )
    .expect("loads");
    let replayer = Replayer::new(rules, ReplayOptions::default());
    let mut summary = replayer.new_summary();
    let b = batch(&[write(0, Some("c1"), "/tmp/x"), exec(SEC, Some("c1"), "/tmp/x")]);
    let err = replayer
        .replay_batch(std::path::Path::new("arrow"), &b, &mut summary, &mut CollectSink::default())
        .expect_err("refused");
    let msg = err.to_string();
    assert!(msg.contains("rule smp-1 is an EQL sample: samples are matched over whole captures"), "{msg}");
}
