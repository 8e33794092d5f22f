//! EQL semantics, as Elasticsearch evaluates them, pinned against tokenscan's engine.
//!
//! Source of truth: `/work/shared/notes/rules.md`, section "How Elasticsearch
//! evaluates EQL", plus the ECS view (`core/src/view/ecs.rs`). Every test feeds
//! hand-built NDJSON events through the public API
//! (`capture::events_from_ndjson` -> `EqlQuery::compile` -> `evaluate`) and
//! asserts the exact set of matching event indices, so each assertion checks
//! both the events that must match and those that must not. Each test notes
//! in a comment the naive implementation it would catch.

use serde_json::{json, Value};
use tokenscan_core::capture::{events_from_ndjson, EventBatch};
use tokenscan_core::eql::{line_col, CompileError, CompileOptions, EqlQuery};

// ============================================================================
// Helpers
// ============================================================================

const CONTAINER: &str = "d4556e77887e082d5e6a7fa2998c06ceee646c98f81eb1e724017a6a768c5dca";
const TOKEN: &str = "/run/secrets/kubernetes.io/serviceaccount/token";

/// Fields every event needs; the kind-specific helpers fill in the rest.
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
        "comm": "sh",
        "cgroup_id": 1,
    })
}

/// `event` with the keys of the JSON object `fields` set (a `null` value clears a nullable field).
fn with(mut event: Value, fields: Value) -> Value {
    let obj = event.as_object_mut().expect("events are JSON objects");
    for (k, v) in fields.as_object().expect("overrides are a JSON object") {
        obj.insert(k.clone(), v.clone());
    }
    event
}

/// A successful exec on the host, without a tty: `sh` (argv `["sh"]`), exe and path `/bin/sh`.
fn exec(fields: Value) -> Value {
    let e = with(base("exec"), json!({"exe": "/bin/sh", "path": "/bin/sh", "args": ["sh"], "result": 0}));
    with(e, fields)
}

/// A successful read-only open of `/etc/hosts` by `cat` on the host, without a tty.
fn open(fields: Value) -> Value {
    let e = with(
        base("open"),
        json!({"comm": "cat", "exe": "/usr/bin/cat", "path": "/etc/hosts", "flags": 0, "result": 3}),
    );
    with(e, fields)
}

/// An exec of a process named `comm` (argv `[comm]`).
fn named(comm: &str) -> Value {
    exec(json!({"comm": comm, "args": [comm]}))
}

/// An exec with the given argv (process name `sh`).
fn argv(args: Value) -> Value {
    exec(json!({ "args": args }))
}

/// The events as one batch, through the NDJSON reader.
fn batch(events: &[Value]) -> EventBatch {
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    let mut batches = events_from_ndjson(&text, "test", 1024).expect("test events are valid NDJSON");
    assert_eq!(batches.len(), 1, "expected one batch");
    batches.pop().expect("one batch")
}

fn compile_with(src: &str, options: &CompileOptions) -> EqlQuery {
    EqlQuery::compile(src, options).unwrap_or_else(|e| panic!("{src:?} does not compile: {}", e.message))
}

fn compile(src: &str) -> EqlQuery {
    compile_with(src, &CompileOptions::default())
}

/// Indices of the events that `src` matches, with the given options.
fn matches_with(src: &str, options: &CompileOptions, events: &[Value]) -> Vec<usize> {
    compile_with(src, options).evaluate(&batch(events)).set_indices().collect()
}

/// Indices of the events that `src` matches (default options: `ignore_above` 1024).
fn matches(src: &str, events: &[Value]) -> Vec<usize> {
    matches_with(src, &CompileOptions::default(), events)
}

/// Asserts, for each `(query, expected indices)`, that the query matches exactly those events.
fn check(events: &[Value], cases: &[(&str, &[usize])]) {
    for (src, expected) in cases {
        assert_eq!(matches(src, events), *expected, "query: {src}");
    }
}

fn compile_error(src: &str) -> CompileError {
    match EqlQuery::compile(src, &CompileOptions::default()) {
        Ok(_) => panic!("{src:?} compiled, expected an error"),
        Err(e) => e,
    }
}

/// The source text an error's span covers.
fn spanned<'a>(src: &'a str, e: &CompileError) -> &'a str {
    &src[e.span.start..e.span.end]
}

// ============================================================================
// 1. Case sensitivity: `==`, `in`, `like` exact; `like~`, `in~`, `:` fold case
// ============================================================================

#[test]
fn equality_in_and_like_are_case_sensitive() {
    // Catches an engine that lower-cases everything (Elasticsearch keyword
    // fields are not normalized): it would match "cat" and "Cat" too.
    let events = [named("cat"), named("CAT"), named("Cat")];
    check(
        &events,
        &[
            (r#"process where process.name == "CAT""#, &[1]),
            (r#"process where process.name in ("CAT", "dog")"#, &[1]),
            (r#"process where process.name like "C*""#, &[1, 2]),
            (r#"process where process.name like "cat""#, &[0]),
        ],
    );
}

#[test]
fn like_tilde_in_tilde_and_colon_are_case_insensitive() {
    // Catches `:` implemented as a case-insensitive "contains" or prefix test
    // ("cats" must not match `: "cat"`), and `in~` that only folds one side.
    let events = [named("cat"), named("CAT"), named("Cat"), named("cats"), named("dog")];
    check(
        &events,
        &[
            (r#"process where process.name like~ "C*T""#, &[0, 1, 2]),
            (r#"process where process.name in~ ("cAt", "x")"#, &[0, 1, 2]),
            (r#"process where process.name : "cAt""#, &[0, 1, 2]),
            (r#"process where process.name == "cAt""#, &[]),
        ],
    );
}

#[test]
fn colon_is_like_tilde_including_wildcards() {
    // Catches `:` implemented as case-insensitive equality without wildcards.
    let events = [named("cat"), named("CAT"), named("Cat"), named("cats"), named("dog")];
    check(
        &events,
        &[
            (r#"process where process.name : "C?T""#, &[0, 1, 2]),
            (r#"process where process.name : "*AT*""#, &[0, 1, 2, 3]),
            (r#"process where process.name : ("D*", "x")"#, &[4]),
        ],
    );
}

// ============================================================================
// 2. `like` wildcards: `*` any run (with `/`), `?` one char, no escape, no regex
// ============================================================================

#[test]
fn like_star_matches_any_run_including_slashes_and_nothing() {
    // Catches shell-glob semantics where `*` stops at `/`
    // ("/usr/local/bin/cat" must match "/usr/*cat"), and `*` as "one or more".
    let events = [
        exec(json!({"exe": "/usr/bin/cat"})),
        exec(json!({"exe": "/usr/local/bin/cat"})),
        exec(json!({"exe": "/usr/cat"})),
        exec(json!({"exe": "/bin/cat"})),
        exec(json!({"exe": "/usr/bin/cats"})),
    ];
    check(&events, &[(r#"process where process.executable like "/usr/*cat""#, &[0, 1, 2])]);
}

#[test]
fn like_question_mark_is_exactly_one_character() {
    // Catches `?` as "zero or one" (would match "ca"), and a byte-wise `?`
    // (would not match the two-byte "é" in "caé").
    let events = [named("cat"), named("ca"), named("cart"), named("caé")];
    check(&events, &[(r#"process where process.name like "ca?""#, &[0, 3])]);
}

#[test]
fn like_star_crosses_newlines() {
    // Catches a translation to a regex without dot-matches-newline.
    let events = [argv(json!(["sh", "-c", "echo a\nb"])), argv(json!(["sh", "-c", "echo a"]))];
    check(&events, &[(r#"process where process.args like "echo*b""#, &[0])]);
}

#[test]
fn like_has_no_escape_a_backslash_is_literal() {
    // The EQL string "a\\*" is the pattern `a\*`: a literal backslash, then a
    // wildcard. Catches an engine that treats `\*` as an escaped star (it
    // would match only "a*"), and one that passes the pattern to a regex
    // engine (`\b` would become a word boundary).
    let events = [named(r"a\b"), named(r"a\xyz"), named(r"a\"), named("a*"), named("ab")];
    check(
        &events,
        &[
            (r#"process where process.name like "a\\*""#, &[0, 1, 2]),
            (r#"process where process.name like "a\\b""#, &[0]),
        ],
    );
}

#[test]
fn like_treats_regex_metacharacters_literally() {
    // Catches patterns passed unescaped to a regex engine.
    let events = [
        named("a.c"),
        named("abc"),
        named("(x)"),
        named("x"),
        named("a+"),
        named("aa"),
        named("[ab]"),
        named("a"),
        named("^a$"),
    ];
    check(
        &events,
        &[
            (r#"process where process.name like "a.c""#, &[0]),
            (r#"process where process.name like "(x)""#, &[2]),
            (r#"process where process.name like "a+""#, &[4]),
            (r#"process where process.name like "[ab]""#, &[6]),
            (r#"process where process.name like "^a$""#, &[8]),
        ],
    );
}

// ============================================================================
// 3. `==`, `in` and `in~` never expand wildcards
// ============================================================================

#[test]
fn equality_and_in_never_expand_wildcards() {
    // Catches `==` / `in` / `in~` implemented through the `like` matcher.
    let events = [named("cat"), named("c*"), named("c?t"), named("C*")];
    check(
        &events,
        &[
            (r#"process where process.name == "c*""#, &[1]),
            (r#"process where process.name == "c?t""#, &[2]),
            (r#"process where process.name in ("c*", "zzz")"#, &[1]),
            (r#"process where process.name in~ ("C*")"#, &[1, 3]),
            (r#"process where process.name in~ ("C?T")"#, &[2]),
            // Contrast: `like` does expand them.
            (r#"process where process.name like "c*""#, &[0, 1, 2]),
        ],
    );
}

// ============================================================================
// 4. `field like "*"` means "the field exists"
// ============================================================================

#[test]
fn like_star_matches_empty_string_but_not_missing_value() {
    // Catches `like "*"` as "non-empty" (the empty container id must match)
    // and as "always true" (the host event has no container.id).
    let events = [
        exec(json!({"container_id": CONTAINER})),
        exec(json!({"container_id": ""})),
        exec(json!({})),
        open(json!({"container_id": CONTAINER})),
    ];
    check(&events, &[(r#"any where container.id like "*""#, &[0, 1, 3])]);
}

#[test]
fn like_star_is_false_for_fields_the_event_kind_does_not_carry() {
    // Catches an engine that reads the raw capture column: execs do carry a
    // `path` column (the binary) and opens may carry `args`, but in the ECS
    // view file.path exists only on opens and process.args only on execs.
    let events = [exec(json!({"path": "/bin/sh"})), open(json!({"path": "/etc/hosts", "args": ["cat"]}))];
    check(&events, &[(r#"any where file.path like "*""#, &[1]), (r#"any where process.args like "*""#, &[0])]);
}

#[test]
fn like_star_on_args_needs_at_least_one_element() {
    // Catches "the list is non-null" as the existence test: an empty argv has
    // no value. An argv of one empty string does have one.
    let events = [argv(json!(["sh"])), argv(json!([])), argv(json!([""])), exec(json!({"args": null}))];
    check(&events, &[(r#"process where process.args like "*""#, &[0, 2])]);
}

// ============================================================================
// 5. Multi-valued `process.args`: any element, each predicate on its own
// ============================================================================

#[test]
fn args_predicate_matches_if_any_element_matches() {
    // Catches comparing only argv[0], or the whole argv joined into one string.
    let events = [argv(json!(["cat", "/etc/passwd"])), argv(json!(["cat"])), argv(json!(["/etc/passwd"]))];
    check(
        &events,
        &[
            (r#"process where process.args == "/etc/passwd""#, &[0, 2]),
            (r#"process where process.args == "cat /etc/passwd""#, &[]),
            (r#"process where process.args like "/etc/*""#, &[0, 2]),
        ],
    );
}

#[test]
fn each_args_predicate_may_be_satisfied_by_a_different_element() {
    // Catches an engine that requires ONE element to satisfy the whole
    // conjunction: no single element of the busybox argv is both "cat" and
    // like "*token*", yet Elasticsearch matches it.
    let events = [
        argv(json!(["busybox", "cat", TOKEN])),
        argv(json!(["busybox", "sh", TOKEN])),
        argv(json!(["busybox", "cat", "/tmp/x"])),
        argv(json!(["cat"])),
    ];
    check(&events, &[(r#"process where process.args in ("cat") and process.args like "*token*""#, &[0])]);
}

// ============================================================================
// 6. `!=`, `not`, `not in`: true on missing; on arrays "no element"
// ============================================================================

#[test]
fn not_equal_and_not_are_true_when_the_field_is_missing() {
    // Catches three-valued (SQL NULL) logic, where `!=` / `not` on a missing
    // field would be unknown and so not match the host event.
    let events = [exec(json!({})), exec(json!({"container_id": "x"})), exec(json!({"container_id": "y"}))];
    check(
        &events,
        &[
            (r#"any where container.id != "x""#, &[0, 2]),
            (r#"any where not container.id == "x""#, &[0, 2]),
            (r#"any where not container.id like "*""#, &[0]),
        ],
    );
}

#[test]
fn not_equal_on_args_means_no_element_equals() {
    // Catches "some element differs": ["x", "y"] has an element != "x" but
    // must not match. The open (no process.args at all) does match.
    let events = [argv(json!(["x", "y"])), argv(json!(["y", "z"])), argv(json!(["x"])), open(json!({}))];
    check(&events, &[(r#"any where process.args != "x""#, &[1, 3])]);
}

#[test]
fn not_in_on_args_means_no_element_is_in_the_list() {
    // Catches "some element is not in the list".
    let events = [argv(json!(["x", "y"])), argv(json!(["y", "z"])), argv(json!(["q"])), open(json!({}))];
    check(&events, &[(r#"any where process.args not in ("x", "q")"#, &[1, 3])]);
}

// ============================================================================
// 7. A positive predicate on a missing field is false
// ============================================================================

#[test]
fn positive_predicates_on_missing_fields_are_false() {
    // Catches reading raw capture columns instead of the ECS view: the exec
    // has path "/bin/sh" in the capture, the open has argv ["cat"] in the
    // capture, but neither field exists on that event kind.
    let events = [exec(json!({"path": "/bin/sh"})), open(json!({"path": "/bin/sh", "args": ["cat"]}))];
    check(
        &events,
        &[
            (r#"any where file.path == "/bin/sh""#, &[1]),
            (r#"any where file.path in ("/bin/sh")"#, &[1]),
            (r#"any where process.args == "cat" or process.args == "sh""#, &[0]),
            (r#"any where process.args like "*""#, &[0]),
            (r#"any where process.args_count >= 1"#, &[0]),
        ],
    );
}

// ============================================================================
// 8. `ignore_above`: over-long keyword values are never matched
// ============================================================================

#[test]
fn values_longer_than_ignore_above_never_match_positive_predicates() {
    // Catches an engine without the limit (it would also match event 1).
    // Exactly 1024 characters is still indexed (catches an off-by-one `<`).
    let a1024 = "a".repeat(1024);
    let a1025 = "a".repeat(1025);
    let events = [named(&a1024), named(&a1025)];
    let queries = [
        format!(r#"process where process.name == "{a1024}""#),
        format!(r#"process where process.name in ("{a1024}", "{a1025}")"#),
        format!(r#"process where process.name in~ ("{a1024}", "{a1025}")"#),
        r#"process where process.name like "a*""#.to_string(),
        r#"process where process.name like~ "A*""#.to_string(),
        r#"process where process.name : "A*""#.to_string(),
        r#"process where process.name like "*""#.to_string(),
        r#"process where process.name regex "a+""#.to_string(),
        r#"process where process.name regex~ "A+""#.to_string(),
        r#"process where startsWith(process.name, "a")"#.to_string(),
        r#"process where endsWith~(process.name, "A")"#.to_string(),
        r#"process where stringContains(process.name, "aa")"#.to_string(),
        r#"process where length(process.name) > 1000"#.to_string(),
    ];
    for q in &queries {
        assert_eq!(matches(q, &events), [0], "query: {}", &q[..q.len().min(80)]);
    }
    assert_eq!(matches(&format!(r#"process where process.name == "{a1025}""#), &events), [] as [usize; 0]);
}

#[test]
fn not_equal_is_true_on_an_over_long_value() {
    // The over-long value is not indexed, so it is "not equal" even to
    // itself. Catches `!=` implemented as a plain string inequality.
    let a1025 = "a".repeat(1025);
    let events = [named(&a1025), named("cat")];
    check(
        &events,
        &[
            (&format!(r#"process where process.name != "{a1025}""#), &[0, 1]),
            (r#"process where process.name != "cat""#, &[0]),
        ],
    );
}

#[test]
fn ignore_above_applies_to_each_args_element() {
    // Catches applying the limit to the whole array (or to none of it): the
    // short "cat" stays searchable, the long sibling does not.
    let a1025 = "a".repeat(1025);
    let events = [argv(json!(["cat", a1025])), argv(json!([a1025]))];
    check(
        &events,
        &[
            (r#"process where process.args like "*""#, &[0]),
            (r#"process where process.args == "cat""#, &[0]),
            (r#"process where process.args like "a*""#, &[]),
            (&format!(r#"process where process.args == "{a1025}""#), &[]),
            (&format!(r#"process where process.args != "{a1025}""#), &[0, 1]),
        ],
    );
}

#[test]
fn ignore_above_none_disables_the_limit() {
    // Catches an `ignore_above` option that is ignored.
    let a1025 = "a".repeat(1025);
    let events = [named(&a1025), named("cat")];
    let unlimited = CompileOptions { ignore_above: None };
    let eq = format!(r#"process where process.name == "{a1025}""#);
    assert_eq!(matches_with(&eq, &unlimited, &events), [0]);
    assert_eq!(matches_with(r#"process where process.name like "a*""#, &unlimited, &events), [0]);
    assert_eq!(matches(&eq, &events), [] as [usize; 0]);
}

#[test]
fn ignore_above_counts_utf16_units_not_bytes_or_characters() {
    // 1024 'é' = 2048 bytes but 1024 UTF-16 units: indexed (catches a byte count).
    // 600 '😀' = 600 characters but 1200 UTF-16 units: not indexed (catches a
    // character count). 512 '😀' = exactly 1024 units: indexed.
    let e1024 = "é".repeat(1024);
    let e1025 = "é".repeat(1025);
    let smile600 = "😀".repeat(600);
    let smile512 = "😀".repeat(512);
    let events = [named(&e1024), named(&e1025), named(&smile600), named(&smile512)];
    check(
        &events,
        &[
            (r#"process where process.name like "*""#, &[0, 3]),
            (&format!(r#"process where process.name == "{e1024}""#), &[0]),
            (&format!(r#"process where process.name == "{smile600}""#), &[]),
            (&format!(r#"process where process.name in ("{smile512}", "{smile600}")"#), &[3]),
        ],
    );
}

// ============================================================================
// 9. Event categories and visibility
// ============================================================================

#[test]
fn any_matches_every_kind_and_named_categories_restrict() {
    // Catches `any where` restricted to one kind, and `file where` /
    // `process where` that ignore the category.
    let events = [exec(json!({"comm": "cat"})), open(json!({"comm": "cat"}))];
    check(
        &events,
        &[
            ("any where true", &[0, 1]),
            ("file where true", &[1]),
            ("process where true", &[0]),
            (r#"any where process.name == "cat""#, &[0, 1]),
            (r#"file where process.name == "cat""#, &[1]),
            (r#"process where process.name == "cat""#, &[0]),
            (r#"any where event.category == "file""#, &[1]),
            (r#"any where event.action == "exec""#, &[0]),
        ],
    );
}

#[test]
fn failed_opens_never_match_anything() {
    // Failed opens never reach Defend for Containers. Catches visibility
    // judged by a non-null path alone (event 1 failed but has a path) and
    // `result != 0` as the failure test (event 3 returned fd 0).
    let events = [
        open(json!({"path": null, "result": -2})),
        open(json!({"path": "/x", "result": -13})),
        open(json!({"path": "/x", "result": 3})),
        open(json!({"path": "/x", "result": 0})),
        exec(json!({})),
    ];
    check(
        &events,
        &[
            ("any where true", &[2, 3, 4]),
            (r#"any where not process.name == "nothing""#, &[2, 3, 4]),
            (r#"any where container.id == null"#, &[2, 3, 4]),
            (r#"file where file.path == "/x""#, &[2, 3]),
            (r#"file where not file.path like "*""#, &[]),
        ],
    );
}

#[test]
fn failed_execs_never_match_anything() {
    // A failed execve (e.g. ENOENT) ran nothing: no process event exists for it.
    // Catches treating every exec as visible.
    let events = [exec(json!({"result": -2})), exec(json!({"result": 0})), exec(json!({"result": null}))];
    check(&events, &[("any where true", &[1, 2]), (r#"process where process.name == "sh""#, &[1, 2])]);
}

// ============================================================================
// 10. Optional fields `?field` and unknown fields
// ============================================================================

#[test]
fn optional_unknown_field_is_always_missing() {
    // Catches `?field` that errors, or that treats the field as matching
    // anything; and `?` on a known field that stops reading it.
    let events = [exec(json!({"comm": "cat"})), open(json!({"comm": "head"}))];
    check(
        &events,
        &[
            (r#"any where ?foo.bar == "x""#, &[]),
            (r#"any where ?foo.bar like "*""#, &[]),
            (r#"any where not ?foo.bar == "x""#, &[0, 1]),
            (r#"any where ?foo.bar != "x""#, &[0, 1]),
            (r#"any where ?foo.bar == null"#, &[0, 1]),
            (r#"any where ?process.name == "cat""#, &[0]),
        ],
    );
}

#[test]
fn unknown_field_without_question_mark_is_an_error_at_the_field() {
    // Catches an unknown field silently treated as missing, and an error
    // span that points at the whole query or the wrong token.
    let src = "process where\n  process.name == \"cat\" and\n  foo.bar == \"x\"";
    let e = compile_error(src);
    assert!(e.message.contains("foo.bar"), "message: {}", e.message);
    assert_eq!(spanned(src, &e), "foo.bar");
    assert_eq!(line_col(src, e.span.start), (3, 3));
    // The same query with `?` compiles.
    assert!(EqlQuery::compile(&src.replace("foo.bar", "?foo.bar"), &CompileOptions::default()).is_ok());
}

// ============================================================================
// 11. Type errors at compile time
// ============================================================================

#[test]
fn comparing_a_long_field_with_a_string_is_an_error() {
    // Catches silent coercion of "5" to 5 (Elasticsearch rejects the query).
    let e = compile_error(r#"process where process.pid == "5""#);
    assert!(e.message.contains("process.pid"), "message: {}", e.message);
    assert!(EqlQuery::compile("process where process.pid == 5", &CompileOptions::default()).is_ok());
}

#[test]
fn comparing_user_id_with_a_number_is_an_error_suggesting_quotes() {
    // user.id is a keyword in ECS; catches an engine that types it as a number.
    let e = compile_error("any where user.id == 0");
    assert!(e.message.contains("user.id"), "message: {}", e.message);
    assert!(e.message.contains(r#""0""#), "message should suggest quoting: {}", e.message);
    assert!(EqlQuery::compile(r#"any where user.id == "0""#, &CompileOptions::default()).is_ok());
}

#[test]
fn like_with_a_number_pattern_is_an_error_naming_the_field() {
    // Catches stringifying the number into a pattern "5".
    let e = compile_error("process where process.name like 5");
    assert!(e.message.contains("process.name"), "message: {}", e.message);
    assert!(EqlQuery::compile(r#"process where process.name like "5""#, &CompileOptions::default()).is_ok());
}

#[test]
fn comparing_a_boolean_field_with_a_string_is_an_error() {
    // Catches coercing "true" to true.
    let e = compile_error(r#"process where process.interactive == "true""#);
    assert!(e.message.contains("process.interactive"), "message: {}", e.message);
    assert!(EqlQuery::compile("process where process.interactive == true", &CompileOptions::default()).is_ok());
}

// ============================================================================
// 12. String functions
// ============================================================================

#[test]
fn string_functions_are_case_sensitive_and_tilde_folds_case() {
    // Catches case-insensitive-by-default functions (the EQL of ES 7.10), and
    // `~` variants that fold only one side.
    let events = [named("cat"), named("CAT"), named("concat"), named("dog")];
    check(
        &events,
        &[
            (r#"process where startsWith(process.name, "ca")"#, &[0]),
            (r#"process where startsWith~(process.name, "CA")"#, &[0, 1]),
            (r#"process where endsWith(process.name, "at")"#, &[0, 2]),
            (r#"process where endsWith~(process.name, "AT")"#, &[0, 1, 2]),
            (r#"process where stringContains(process.name, "onca")"#, &[2]),
            (r#"process where stringContains(process.name, "A")"#, &[1]),
            (r#"process where stringContains~(process.name, "A")"#, &[0, 1, 2]),
        ],
    );
}

#[test]
fn string_functions_on_args_match_any_element() {
    // Catches applying the function to argv[0] only, or to the joined argv.
    let events = [argv(json!(["cat", TOKEN])), argv(json!(["cat", "/tmp/run/token.bak"])), argv(json!(["cat"]))];
    check(
        &events,
        &[
            (r#"process where startsWith(process.args, "/run/")"#, &[0]),
            (r#"process where endsWith(process.args, "token")"#, &[0]),
            (r#"process where stringContains(process.args, "token")"#, &[0, 1]),
            (r#"process where startsWith(process.args, "cat /")"#, &[]),
        ],
    );
}

#[test]
fn length_compares_the_string_length() {
    // Catches `length` of the whole event/argv or a constant.
    let events = [named("cat"), named("head"), named("")];
    check(
        &events,
        &[
            (r#"process where length(process.name) > 3"#, &[1]),
            (r#"process where length(process.name) == 3"#, &[0]),
            (r#"process where length(process.name) <= 3"#, &[0, 2]),
            (r#"process where length(process.name) != 3"#, &[1, 2]),
        ],
    );
}

#[test]
fn length_counts_utf16_units_like_elasticsearch() {
    // Elasticsearch's LengthFunctionProcessor returns `input.toString().length()`,
    // i.e. UTF-16 code units: length("😀") is 2. Catches a character count.
    let events = [named("😀"), named("ab")];
    check(
        &events,
        &[(r#"process where length(process.name) == 2"#, &[0, 1]), (r#"process where length(process.name) == 1"#, &[])],
    );
}

// ============================================================================
// 13. Numbers
// ============================================================================

#[test]
fn numeric_comparisons_on_pid() {
    // Catches string comparison of numbers ("100" < "42"), and a literal on
    // the left not being flipped (`100 > process.pid` read as `pid > 100`).
    let events =
        [exec(json!({"pid": 1})), exec(json!({"pid": 42})), exec(json!({"pid": 100})), exec(json!({"pid": 500}))];
    check(
        &events,
        &[
            ("process where process.pid == 42", &[1]),
            ("process where process.pid < 100", &[0, 1]),
            ("process where process.pid >= 100", &[2, 3]),
            ("process where process.pid != 42", &[0, 2, 3]),
            ("process where process.pid in (1, 42)", &[0, 1]),
            ("process where 42 == process.pid", &[1]),
            ("process where 100 > process.pid", &[0, 1]),
            ("process where 100 <= process.pid", &[2, 3]),
        ],
    );
}

#[test]
fn numeric_comparisons_on_args_count() {
    // Catches args_count read as a string, and args_count on opens (missing there).
    let events = [
        argv(json!(["a"])),
        argv(json!(["a", "b"])),
        argv(json!(["a", "b", "c"])),
        argv(json!([])),
        open(json!({"args": ["a", "b"]})),
    ];
    check(
        &events,
        &[
            ("any where process.args_count >= 2", &[1, 2]),
            ("any where process.args_count == 0", &[3]),
            ("any where process.args_count < 2", &[0, 3]),
            ("any where 2 <= process.args_count", &[1, 2]),
        ],
    );
}

// ============================================================================
// 14. Booleans
// ============================================================================

#[test]
fn process_interactive_follows_the_tty() {
    // Catches `process.interactive` read as missing when false (so
    // `== false` would match nothing), or as the tty name.
    let events = [
        exec(json!({"tty": "pts/0"})),
        exec(json!({"tty": null})),
        open(json!({"tty": "pts/1"})),
        open(json!({"tty": null})),
    ];
    check(
        &events,
        &[
            ("any where process.interactive == true", &[0, 2]),
            ("any where process.interactive == false", &[1, 3]),
            ("any where process.interactive", &[0, 2]),
            ("process where process.interactive", &[0]),
            ("any where not process.interactive", &[1, 3]),
            ("any where process.interactive != true", &[1, 3]),
        ],
    );
}

// ============================================================================
// 15. `regex` / `regex~`: anchored full-value match
// ============================================================================

#[test]
fn regex_matches_the_whole_value() {
    // Catches an unanchored regex search ("ca" would match "cat" and "scat").
    let events = [named("cat"), named("ca"), named("scat"), named("Cat")];
    check(
        &events,
        &[
            (r#"process where process.name regex "ca""#, &[1]),
            (r#"process where process.name regex "ca.*""#, &[0, 1]),
            (r#"process where process.name regex ".*ca.*""#, &[0, 1, 2]),
            (r#"process where process.name regex "c[a-z]t""#, &[0]),
            (r#"process where process.name regex~ "CA.*""#, &[0, 1, 3]),
            (r#"process where process.name regex ("x", "s.*")"#, &[2]),
        ],
    );
}

#[test]
fn regex_on_args_matches_any_element() {
    // Catches regex applied to argv[0] only.
    let events = [argv(json!(["cat", TOKEN])), argv(json!(["cat", "/run/secrets/x"]))];
    check(&events, &[(r#"process where process.args regex "/run/.*/token""#, &[0])]);
}

#[test]
fn regex_dot_matches_newline_like_lucene() {
    // Elasticsearch runs `regex` as a Lucene RegexpQuery, where `.` is any
    // character including '\n'. Catches a line-oriented regex engine.
    let events = [argv(json!(["sh", "-c", "a\nb"])), argv(json!(["sh", "-c", "ab"]))];
    check(&events, &[(r#"process where process.args regex "a.b""#, &[0])]);
}

// ============================================================================
// 16. `event.type` derivation
// ============================================================================

#[test]
fn event_type_follows_the_open_access_mode() {
    // Catches `flags == 1 || flags == 2` (misses O_LARGEFILE-tagged flags),
    // `flags & 3 != 0` (makes access mode 3 a change), and a default value
    // for null flags (event.type must then be missing).
    let events = [
        open(json!({"flags": 0})),     // 0  O_RDONLY
        open(json!({"flags": 1})),     // 1  O_WRONLY
        open(json!({"flags": 2})),     // 2  O_RDWR
        open(json!({"flags": 32769})), // 3  O_WRONLY|O_LARGEFILE
        open(json!({"flags": 32770})), // 4  O_RDWR|O_LARGEFILE
        open(json!({"flags": 32768})), // 5  O_RDONLY|O_LARGEFILE
        open(json!({"flags": 3})),     // 6  access mode 3
        open(json!({"flags": 32771})), // 7  access mode 3|O_LARGEFILE
        open(json!({"flags": 577})),   // 8  O_WRONLY|O_CREAT|O_TRUNC
        open(json!({"flags": null})),  // 9  unknown
        exec(json!({})),               // 10
    ];
    check(
        &events,
        &[
            (r#"any where event.type == "change""#, &[1, 2, 3, 4, 8]),
            (r#"any where event.type == "access""#, &[0, 5, 6, 7]),
            (r#"any where event.type == "start""#, &[10]),
            (r#"any where event.type like "*""#, &[0, 1, 2, 3, 4, 5, 6, 7, 8, 10]),
            (r#"any where event.type != "change""#, &[0, 5, 6, 7, 9, 10]),
            (r#"file where event.type == "start""#, &[]),
        ],
    );
}

// ============================================================================
// 17. `user.id` is the uid as a string
// ============================================================================

#[test]
fn user_id_and_group_id_are_decimal_strings() {
    // Catches a numeric user.id (which could not be compared with "0").
    let events = [
        exec(json!({"uid": 0, "gid": 0})),
        exec(json!({"uid": 1000, "gid": 1000})),
        exec(json!({"uid": 10, "gid": 5})),
    ];
    check(
        &events,
        &[
            (r#"any where user.id == "0""#, &[0]),
            (r#"any where user.id in ("1000", "7")"#, &[1]),
            (r#"any where user.id like "10*""#, &[1, 2]),
            (r#"any where group.id == "1000""#, &[1]),
        ],
    );
}

// ============================================================================
// 18. `null`
// ============================================================================

#[test]
fn null_comparisons_test_for_a_missing_value() {
    // Catches `== null` compared against the string "null", or always false.
    let events = [
        exec(json!({})),
        exec(json!({"container_id": CONTAINER})),
        open(json!({"container_id": CONTAINER})),
        open(json!({})),
    ];
    check(
        &events,
        &[
            ("any where container.id == null", &[0, 3]),
            ("any where container.id != null", &[1, 2]),
            ("any where file.path == null", &[0, 1]),
            ("any where file.path != null", &[2, 3]),
        ],
    );
}

// ============================================================================
// 19. Precedence: `not` > `and` > `or`
// ============================================================================

#[test]
fn and_binds_tighter_than_or() {
    // a = name cat, b = uid 0, c = pid 1. Catches left-to-right evaluation
    // without precedence, which reads `a or b and c` as `(a or b) and c`.
    let events = [
        exec(json!({"comm": "cat", "uid": 1000, "pid": 2})), // a only
        exec(json!({"comm": "sh", "uid": 0, "pid": 1})),     // b and c
        exec(json!({"comm": "sh", "uid": 0, "pid": 2})),     // b only
        exec(json!({"comm": "cat", "uid": 0, "pid": 1})),    // all
    ];
    check(
        &events,
        &[
            (r#"process where process.name == "cat" or user.id == "0" and process.pid == 1"#, &[0, 1, 3]),
            (r#"process where (process.name == "cat" or user.id == "0") and process.pid == 1"#, &[1, 3]),
        ],
    );
}

#[test]
fn not_binds_tighter_than_and() {
    // Catches `not a and b` read as `not (a and b)`.
    let events = [
        exec(json!({"comm": "cat", "uid": 0})),
        exec(json!({"comm": "sh", "uid": 0})),
        exec(json!({"comm": "sh", "uid": 1000})),
    ];
    check(
        &events,
        &[
            (r#"process where not process.name == "cat" and user.id == "0""#, &[1]),
            (r#"process where not (process.name == "cat" and user.id == "0")"#, &[1, 2]),
        ],
    );
}

// ============================================================================
// 20. `explain`
// ============================================================================

/// A query of two branches (an open of `/x`, or a reader exec whose argv
/// holds a token path) for the explanation tests.
const TWO_BRANCHES: &str = concat!(
    r#"any where container.id like "*" and ((event.action == "open" and file.path == "/x") or "#,
    r#"(event.action == "exec" and process.name in ("cat","head") and process.args like "*token*"))"#,
);

#[test]
fn explain_names_the_branch_and_the_matched_values() {
    // Catches reasons that report the first argv element instead of the one
    // that matched, or that describe a branch that did not hold.
    let src = TWO_BRANCHES;
    let events = [
        exec(json!({"comm": "cat", "args": ["cat", TOKEN], "container_id": CONTAINER})),
        open(json!({"path": "/x", "container_id": CONTAINER})),
        exec(json!({"comm": "cat", "args": ["cat", TOKEN]})),
    ];
    let q = compile(src);
    let b = batch(&events);
    assert_eq!(q.evaluate(&b).set_indices().collect::<Vec<_>>(), [0, 1]);

    let why = q.explain(&b, 0);
    assert!(why.starts_with("exec branch:"), "reason: {why}");
    assert!(why.contains(r#"(matched "cat")"#), "reason: {why}");
    assert!(why.contains(&format!(r#"(matched "{TOKEN}")"#)), "reason: {why}");
    assert!(!why.contains("file.path"), "reason: {why}");

    let why = q.explain(&b, 1);
    assert!(why.starts_with("open branch:"), "reason: {why}");
    assert!(why.contains(r#"file.path == "/x""#), "reason: {why}");
    assert!(!why.contains("process.args"), "reason: {why}");
}

#[test]
fn the_findings_of_a_batch_are_explained_together_each_by_its_own_row() {
    // The driver explains all of a batch's hits at once (`explain_rows`,
    // each `or` branch evaluated once over them). Catches reasons shifted
    // to a neighbour's row, or one row's branch or value given to another.
    let src = TWO_BRANCHES;
    let events = [
        exec(json!({"comm": "head", "args": ["head", "/a/token"], "container_id": CONTAINER})),
        open(json!({"path": "/y", "container_id": CONTAINER})),
        open(json!({"path": "/x", "container_id": CONTAINER})),
        exec(json!({"comm": "cat", "args": ["cat", "-n", "/b/token"], "container_id": CONTAINER})),
    ];
    let q = compile(src);
    let b = batch(&events);
    assert_eq!(q.evaluate(&b).set_indices().collect::<Vec<_>>(), [0, 2, 3]);
    let whys = q.explain_rows(&b, &[3, 0, 2]);
    assert_eq!(whys.len(), 3);
    assert!(whys[0].starts_with("exec branch:") && whys[0].contains(r#"(matched "cat")"#), "{}", whys[0]);
    assert!(whys[0].contains(r#"(matched "/b/token")"#), "{}", whys[0]);
    assert!(whys[1].starts_with("exec branch:") && whys[1].contains(r#"(matched "head")"#), "{}", whys[1]);
    assert!(whys[1].contains(r#"(matched "/a/token")"#), "{}", whys[1]);
    assert!(whys[2].starts_with("open branch:") && !whys[2].contains("process."), "{}", whys[2]);
    // One at a time says the same.
    for (k, row) in [3, 0, 2].into_iter().enumerate() {
        assert_eq!(q.explain(&b, row), whys[k]);
    }
}

// ============================================================================
// The seed rule
// ============================================================================

/// The query of `/work/shared/seeds/elastic-d4c-service-account-token-read.txt`, verbatim.
const SEED_QUERY: &str = r#"any where host.os.type == "linux" and process.interactive == true and container.id like "*" and (
  (event.category == "file" and event.type == "change" and event.action == "open" and
  file.path in (
    "/var/run/secrets/kubernetes.io/serviceaccount/token",
    "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
    "/run/secrets/kubernetes.io/serviceaccount/token",
    "/run/secrets/kubernetes.io/serviceaccount/ca.crt"
  )) or
  (event.category == "process" and event.type == "start" and event.action == "exec" and
  (
    process.name in ("cat", "head", "tail", "more", "less", "sed", "awk") or
    process.args in (
      "cat", "/bin/cat", "/usr/bin/cat", "/usr/local/bin/cat",
      "head", "/bin/head", "/usr/bin/head", "/usr/local/bin/head",
      "tail", "/bin/tail", "/usr/bin/tail", "/usr/local/bin/tail",
      "more", "/bin/more", "/usr/bin/more", "/usr/local/bin/more",
      "less", "/bin/less", "/usr/bin/less", "/usr/local/bin/less",
      "sed", "/bin/sed", "/usr/bin/sed", "/usr/local/bin/sed",
      "awk", "/bin/awk", "/usr/bin/awk", "/usr/local/bin/awk"
    )
  ) and process.args like (
    "*/run/secrets/kubernetes.io/serviceaccount/token*",
    "*/run/secrets/kubernetes.io/serviceaccount/ca.crt*"
  ))
)"#;

#[test]
fn seed_query_compiles_and_reads_exactly_its_fields() {
    let q = compile(SEED_QUERY);
    let mut names = q.field_names();
    let n = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), n, "field_names() has duplicates");
    let mut expected = vec![
        "host.os.type",
        "process.interactive",
        "container.id",
        "event.category",
        "event.type",
        "event.action",
        "file.path",
        "process.name",
        "process.args",
    ];
    expected.sort_unstable();
    assert_eq!(names, expected);
}

#[test]
fn seed_query_matches_interactive_container_reads_only() {
    // A smoke test of the whole rule: both branches, and the guards
    // (interactive, in a container, write intent for the file branch).
    let events = [
        // 0: `cat` of the token in an interactive container: exec branch.
        exec(json!({"comm": "cat", "args": ["cat", TOKEN], "tty": "pts/0", "container_id": CONTAINER})),
        // 1: the same without a tty.
        exec(json!({"comm": "cat", "args": ["cat", TOKEN], "container_id": CONTAINER})),
        // 2: the same on the host.
        exec(json!({"comm": "cat", "args": ["cat", TOKEN], "tty": "pts/0"})),
        // 3: busybox: the name is not in the list, but an argv element is.
        exec(json!({
            "comm": "busybox",
            "args": ["busybox", "cat", format!("/var{TOKEN}")],
            "tty": "pts/0",
            "container_id": CONTAINER,
        })),
        // 4: read-only open of the token: event.type access, no file-branch match.
        open(json!({"path": TOKEN, "flags": 32768, "tty": "pts/0", "container_id": CONTAINER})),
        // 5: read-write open of the token: event.type change.
        open(json!({"path": TOKEN, "flags": 32770, "tty": "pts/0", "container_id": CONTAINER})),
        // 6: `CAT` (case differs) of the token.
        exec(json!({"comm": "CAT", "args": ["CAT", TOKEN], "tty": "pts/0", "container_id": CONTAINER})),
    ];
    assert_eq!(matches(SEED_QUERY, &events), [0, 3, 5]);
}
