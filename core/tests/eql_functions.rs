//! Elasticsearch's EQL functions, each checked against the examples of the
//! EQL function reference (elasticsearch `docs/reference/query-languages/eql/
//! eql-function-ref.md`): the "returns ..." comment of every example is the
//! expected value, read by hand, never taken from tokenscan's output.
//!
//! A function's value is observed through conditions on one hand-built
//! event: `f(...) == v` holds exactly when `f` returns `v`, and a null result
//! makes both `f(...) == v` and `f(...) != v` false (null is not true). Where
//! the reference uses a field (`process.args_count = 4`), the event carries
//! that value in a field of tokenscan's ECS view.

use serde_json::{json, Value};
use tokenscan_core::capture::{events_from_ndjson, EventBatch};
use tokenscan_core::eql::{CompileOptions, EqlQuery};

fn exec(fields: Value) -> Value {
    let mut e = json!({
        "time": 1_763_649_000_000_000_000_i64, "kind": "exec", "host": "node-a", "pid": 4, "tid": 4,
        "ppid": 2, "uid": 0, "gid": 0, "comm": "regsvr32.exe", "cgroup_id": 1, "exe": "/bin/regsvr32.exe",
        "path": "/bin/regsvr32.exe", "args": ["regsvr32.exe", "/s", "a", "b"], "result": 0,
    });
    for (k, v) in fields.as_object().expect("object") {
        e[k] = v.clone();
    }
    e
}

fn batch(events: &[Value]) -> EventBatch {
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    events_from_ndjson(&text, "test", 1024).expect("valid NDJSON").pop().expect("one batch")
}

/// Indices of `events` that `process where <cond>` matches.
fn matching(cond: &str, events: &[Value]) -> Vec<usize> {
    let src = format!("process where {cond}");
    let q = EqlQuery::compile(&src, &CompileOptions::default())
        .unwrap_or_else(|e| panic!("{src:?} does not compile: {}", e.message));
    q.evaluate(&batch(events)).set_indices().collect()
}

/// Whether `cond` holds on the event (process.name "regsvr32.exe", 4 args, pid 4, parent pid 2,
/// unless `fields` says otherwise).
fn holds_on(fields: Value, cond: &str) -> bool {
    !matching(cond, &[exec(fields)]).is_empty()
}

fn holds(cond: &str) -> bool {
    holds_on(json!({}), cond)
}

/// Asserts that `expr` evaluates to `value` (a literal in EQL syntax): `expr == value` holds.
#[track_caller]
fn returns(expr: &str, value: &str) {
    assert!(holds(&format!("{expr} == {value}")), "{expr} should return {value}");
}

/// Asserts that `expr` is null: neither `expr == probe` nor `expr != probe` holds.
#[track_caller]
fn is_null(expr: &str, probe: &str) {
    assert!(!holds(&format!("{expr} == {probe}")), "{expr} should be null, but == {probe} holds");
    assert!(!holds(&format!("{expr} != {probe}")), "{expr} should be null, but != {probe} holds");
}

#[test]
fn add_sums_integers_and_floats_and_propagates_null() {
    returns("add(4, 5)", "9");
    returns("add(4, 0.5)", "4.5");
    returns("add(0.5, 0.25)", "0.75");
    returns("add(4, -2)", "2");
    returns("add(-2, -2)", "-4");
    // process.args_count = 4; process.parent.pid = 2 stands for the reference's process.parent.args_count.
    returns("add(process.args_count, 5)", "9");
    returns("add(process.args_count, 0.5)", "4.5");
    returns("add(process.args_count, process.parent.pid)", "6");
    is_null("add(null, 4)", "4");
    is_null("add(4, null)", "4");
    is_null("add(null, process.args_count)", "4");
}

#[test]
fn subtract_multiply_divide_and_modulo() {
    returns("subtract(10, 2)", "8");
    returns("subtract(10.5, 0.5)", "10");
    // The reference prints -8 and 8 for these two; by hand, -2 - 4 is -6 and -2 - -4 is 2.
    returns("subtract(-2, 4)", "-6");
    returns("subtract(-2, -4)", "2");
    returns("subtract(15, multiply(process.args_count, 2))", "7");
    is_null("subtract(null, 2)", "2");
    returns("multiply(2, 2)", "4");
    returns("multiply(0.5, 2)", "1");
    returns("multiply(0.25, 2)", "0.5");
    returns("multiply(-2, -2)", "4");
    returns("multiply(process.args_count, process.parent.pid)", "8");
    is_null("multiply(2, null)", "2");
    // Two integers divide as integers, rounding down; a float operand keeps the fraction.
    returns("divide(4, 2)", "2");
    returns("divide(4, 3)", "1");
    assert!(holds("divide(4, 3.0) > 1.33 and divide(4, 3.0) < 1.34"));
    returns("divide(4, 0.5)", "8");
    returns("divide(0.5, 4)", "0.125");
    returns("divide(-4, -2)", "2");
    returns("divide(process.args_count, 3)", "1");
    returns("divide(12, process.args_count)", "3");
    is_null("divide(null, 4)", "4");
    is_null("divide(process.args_count, null)", "4");
    // The reference's warning: with integers, divide(4, args_count) == 1 also holds for 3 arguments.
    assert_eq!(
        matching(
            "divide(4, process.args_count) == 1",
            &[exec(json!({"args": ["a", "b", "c"]})), exec(json!({"args": ["a", "b"]}))]
        ),
        vec![0]
    );
    assert_eq!(
        matching("divide(4.0, process.args_count) == 1", &[exec(json!({"args": ["a", "b", "c"]}))]),
        Vec::<usize>::new()
    );
    returns("modulo(10, 6)", "4");
    returns("modulo(10, 5)", "0");
    returns("modulo(10, 0.5)", "0");
    returns("modulo(10, -6)", "4");
    returns("modulo(-10, -6)", "-4");
    returns("modulo(106, add(process.args_count, 6))", "6");
    is_null("modulo(null, 5)", "0");
    is_null("modulo(7, null)", "0");
}

#[test]
fn between_extracts_the_text_between_two_delimiters() {
    // file.path = "C:\\Windows\\System32\\cmd.exe", carried here by process.executable.
    let f = json!({"exe": r"C:\Windows\System32\cmd.exe", "path": r"C:\Windows\System32\cmd.exe"});
    let on = |c: &str| holds_on(f.clone(), c);
    assert!(on(r#"between(process.executable, "System32\\", ".exe") == "cmd""#));
    assert!(on(r#"between(process.executable, "system32\\", ".exe") == """#));
    assert!(on(r#"between(process.executable, "workspace\\", ".exe") == """#));
    assert!(on(r#"between~(process.executable, "system32\\", ".exe") == "cmd""#));
    assert!(on(r#"between(process.executable, "\\", "\\", false) == "Windows""#));
    assert!(on(r#"between(process.executable, "\\", "\\", true) == "Windows\\System32""#));
    assert!(on(r#"between(process.executable, "\\", "\\") == "Windows""#));
    assert!(holds(r#"between("", "System32\\", ".exe") == """#));
    assert!(holds(r#"between("", "", "") == """#));
    is_null(r#"between(null, "System32\\", ".exe")"#, r#""""#);
}

#[test]
fn cidr_match_tests_addresses_against_blocks() {
    // source.address = "192.168.152.12", carried here by process.name.
    let f = json!({"comm": "192.168.152.12", "args": ["192.168.152.12"]});
    let on = |c: &str| holds_on(f.clone(), c);
    assert!(on(r#"cidrMatch(process.name, "192.168.0.0/16")"#));
    assert!(on(r#"cidrMatch(process.name, "192.168.0.0/16", "10.0.0.0/8")"#));
    assert!(!on(r#"cidrMatch(process.name, "10.0.0.0/8")"#));
    assert!(!on(r#"cidrMatch(process.name, "10.0.0.0/8", "10.128.0.0/9")"#));
    // null: neither true nor, under `not`, ... the predicate simply does not hold.
    assert!(!holds(r#"cidrMatch(null, "10.0.0.0/8")"#));
    assert!(!on(r#"cidrMatch(process.name, null)"#));
    assert!(on(r#"cidrMatch(process.name, "192.168.152.12")"#));
    let v6 = json!({"comm": "fe80::1", "args": ["x"]});
    assert!(holds_on(v6.clone(), r#"cidrMatch(process.name, "fe80::/10")"#));
    assert!(!holds_on(v6, r#"cidrMatch(process.name, "192.168.0.0/16")"#));
}

#[test]
fn concat_and_string_render_values() {
    returns(r#"concat("process is ", "regsvr32.exe")"#, r#""process is regsvr32.exe""#);
    returns(r#"concat("regsvr32.exe", " ", 42)"#, r#""regsvr32.exe 42""#);
    returns(r#"concat("regsvr32.exe", " ", 42.5)"#, r#""regsvr32.exe 42.5""#);
    returns(r#"concat("regsvr32.exe", " ", true)"#, r#""regsvr32.exe true""#);
    returns(r#"concat("regsvr32.exe")"#, r#""regsvr32.exe""#);
    returns(r#"concat(process.name, " ", 42)"#, r#""regsvr32.exe 42""#);
    returns(r#"concat("process is ", process.name)"#, r#""process is regsvr32.exe""#);
    returns("concat(process.name)", r#""regsvr32.exe""#);
    returns(r#"concat(process.name, " ", process.args_count)"#, r#""regsvr32.exe 4""#);
    is_null(r#"concat(null, "regsvr32.exe")"#, r#""regsvr32.exe""#);
    is_null("concat(process.name, null)", r#""regsvr32.exe""#);
    is_null("concat(null)", r#""""#);
    returns("string(42)", r#""42""#);
    returns("string(42.5)", r#""42.5""#);
    returns(r#"string("regsvr32.exe")"#, r#""regsvr32.exe""#);
    returns("string(true)", r#""true""#);
    returns("string(process.pid)", r#""4""#);
    is_null("string(null)", r#""""#);
}

#[test]
fn starts_with_and_ends_with_take_fields_on_either_side() {
    assert!(holds(r#"startsWith("regsvr32.exe", "regsvr32")"#));
    assert!(!holds(r#"startsWith("regsvr32.exe", "Regsvr32")"#));
    assert!(!holds(r#"startsWith("regsvr32.exe", "explorer")"#));
    assert!(holds(r#"startsWith("", "")"#));
    assert!(holds(r#"startsWith~("regsvr32.exe", "Regsvr32")"#));
    assert!(holds(r#"startsWith(process.name, "regsvr32")"#));
    assert!(!holds(r#"startsWith(process.name, "explorer")"#));
    let short = json!({"comm": "regsvr32"});
    assert!(holds_on(short.clone(), r#"startsWith("regsvr32.exe", process.name)"#));
    assert!(!holds_on(short, r#"startsWith("explorer.exe", process.name)"#));
    assert!(!holds(r#"startsWith("regsvr32.exe", null)"#));
    assert!(!holds(r#"startsWith(null, "regsvr32")"#));
    assert!(!holds("startsWith(null, null)"));

    assert!(holds(r#"endsWith("regsvr32.exe", ".exe")"#));
    assert!(!holds(r#"endsWith("regsvr32.exe", ".EXE")"#));
    assert!(holds(r#"endsWith~("regsvr32.exe", ".EXE")"#));
    assert!(holds(r#"endsWith("", "")"#));
    assert!(!holds(r#"endsWith("", null)"#));
    // file.name = "regsvr32.exe" (process.name here); file.extension = ".exe" (the suffix of another field).
    assert!(holds(r#"endsWith(process.name, ".exe")"#));
    assert!(!holds(r#"endsWith("ntdll.dll", process.name)"#));
    // Two fields: the path ends with the name.
    assert!(holds("endsWith(process.executable, process.name)"));
    assert!(!holds_on(json!({"exe": "/bin/sh"}), "endsWith(process.executable, process.name)"));
}

#[test]
fn string_contains_is_false_for_an_empty_substring() {
    // process.command_line = "start regsvr32.exe", carried by process.executable.
    let f = json!({"exe": "start regsvr32.exe"});
    let on = |c: &str| holds_on(f.clone(), c);
    assert!(on(r#"stringContains(process.executable, "regsvr32")"#));
    assert!(!on(r#"stringContains(process.executable, "Regsvr32")"#));
    assert!(on(r#"stringContains(process.executable, "start ")"#));
    assert!(!on(r#"stringContains(process.executable, "explorer")"#));
    assert!(on(r#"stringContains~(process.executable, "Regsvr32")"#));
    assert!(on("stringContains(process.executable, process.name)"));
    assert!(!holds(r#"stringContains("", "")"#));
    assert!(!on(r#"stringContains(process.executable, "")"#));
    assert!(!holds(r#"stringContains(null, "regsvr32")"#));
    assert!(!on("stringContains(process.executable, null)"));
}

#[test]
fn index_of_counts_from_zero_and_from_a_start() {
    // url.domain = "subdomain.example.com", carried by process.name.
    let f = json!({"comm": "subdomain.example.com"});
    let on = |c: &str| holds_on(f.clone(), c);
    assert!(on(r#"indexOf(process.name, "d") == 3"#));
    assert!(!on(r#"indexOf(process.name, "D") >= 0"#));
    // The reference prints 4 for this one, but "d" is at 3 in "subdomain" whatever the case.
    assert!(on(r#"indexOf~(process.name, "D") == 3"#));
    assert!(on(r#"indexOf(process.name, ".") == 9"#));
    assert!(on(r#"indexOf(process.name, ".", 9) == 9"#));
    assert!(on(r#"indexOf(process.name, ".", 10) == 17"#));
    assert!(on(r#"indexOf(process.name, ".", -6) == 9"#));
    assert!(holds(r#"indexOf("", "") == 0"#));
    assert!(on(r#"indexOf(process.name, "") == 0"#));
    assert!(on(r#"indexOf(process.name, "", 9) == 9"#));
    assert!(on(r#"indexOf(process.name, "", 10) == 10"#));
    assert!(on(r#"indexOf(process.name, "", -6) == 0"#));
    for null in [
        r#"indexOf(process.name, "z")"#,
        r#"indexOf(process.name, "z", 9)"#,
        r#"indexOf(process.name, ".", 30)"#,
        r#"indexOf(null, ".", 9)"#,
        "indexOf(process.name, null, 9)",
        r#"indexOf(process.name, ".", null)"#,
    ] {
        assert!(!on(&format!("{null} == 0")) && !on(&format!("{null} != 0")), "{null} should be null");
    }
}

#[test]
fn length_number_and_substring() {
    returns(r#"length("explorer.exe")"#, "12");
    returns(r#"length("start explorer.exe")"#, "18");
    returns(r#"length("")"#, "0");
    is_null("length(null)", "0");
    returns("length(process.name)", "12");
    returns(r#"number("1337")"#, "1337");
    returns(r#"number("42.5")"#, "42.5");
    returns(r#"number("deadbeef", 16)"#, "3735928559");
    returns(r#"number("0xdeadbeef")"#, "3735928559");
    returns(r#"number("0xdeadbeef", 16)"#, "3735928559");
    returns(r#"number("+1337")"#, "1337");
    returns(r#"number("-1337")"#, "-1337");
    returns(r#"number("  1337  ")"#, "1337");
    returns("number(string(process.pid))", "4");
    is_null("number(null)", "0");
    is_null("number(null, 16)", "0");
    returns(r#"number("0xdeadbeef", null)"#, "3735928559");
    returns(r#"number("1337", null)"#, "1337");
    returns(r#"substring("start regsvr32.exe", 6)"#, r#""regsvr32.exe""#);
    returns(r#"substring("start regsvr32.exe", 0, 5)"#, r#""start""#);
    returns(r#"substring("start regsvr32.exe", 6, 14)"#, r#""regsvr32""#);
    returns(r#"substring("start regsvr32.exe", -4)"#, r#"".exe""#);
    returns(r#"substring("start regsvr32.exe", -4, -1)"#, r#"".ex""#);
    returns(r#"substring("start", 9)"#, r#""""#);
    returns(r#"substring("start", 3, 1)"#, r#""""#);
    returns("substring(process.name, 0, 8)", r#""regsvr32""#);
}

#[test]
fn function_predicates_on_a_missing_field_are_false_but_not_inverts_them() {
    // Every function returns null on a null argument, and null is not true; `not` is the
    // complement of the events the predicate matches, as for fields.
    let events = [exec(json!({})), exec(json!({"args": null}))];
    assert_eq!(matching("length(process.args) > 0", &events), vec![0]);
    assert_eq!(matching("length(process.args) != 3", &events), vec![0]);
    assert_eq!(matching("not length(process.args) == 3", &events), vec![0, 1]);
    assert_eq!(matching(r#"substring(process.args, 0, 1) == "/""#, &events), vec![0]);
    assert_eq!(matching(r#"not substring(process.args, 0, 1) == "/""#, &events), vec![1]);
}

#[test]
fn functions_on_arrays_hold_when_some_element_makes_them_true() {
    let events = [exec(json!({"args": ["cat", "/run/secrets/token"]})), exec(json!({"args": ["cat", "/etc/hosts"]}))];
    assert_eq!(matching(r#"substring(process.args, 0, 5) == "/run/""#, &events), vec![0]);
    assert_eq!(matching(r#"indexOf(process.args, "token") == 13"#, &events), vec![0]);
    assert_eq!(matching(r#"concat(process.name, ":", process.args) == "regsvr32.exe:/etc/hosts""#, &events), vec![1]);
}

#[test]
fn comparisons_between_two_fields_and_in_with_functions() {
    let events = [exec(json!({"pid": 7, "ppid": 7})), exec(json!({"pid": 7, "ppid": 8}))];
    assert_eq!(matching("process.pid == process.parent.pid", &events), vec![0]);
    assert_eq!(matching("process.pid < process.parent.pid", &events), vec![1]);
    assert_eq!(matching(r#"substring(process.name, 0, 3) in ("abc", "reg")"#, &events), vec![0, 1]);
    assert_eq!(matching(r#"substring(process.name, 0, 3) not in ("abc", "reg")"#, &events), Vec::<usize>::new());
    assert_eq!(matching(r#"substring(process.name, 0, 3) in~ ("REG")"#, &events), vec![0, 1]);
    assert_eq!(matching("process.pid in (1, process.parent.pid)", &events), vec![0]);
    // Patterns apply to a function's value as to a field's.
    assert_eq!(matching(r#"concat(process.name, "/", process.parent.pid) like "regsvr*/8""#, &events), vec![1]);
    assert_eq!(matching(r#"substring(process.name, 0, 3) : "REG""#, &events), vec![0, 1]);
    assert_eq!(matching(r#"string(process.parent.pid) regex "[0-7]""#, &events), vec![0]);
}

#[test]
fn function_names_are_case_insensitive_and_may_be_followed_by_space_or_comments() {
    assert!(holds(r#"STARTSWITH (process.name, "regsvr")"#));
    assert!(holds(r#"stringContains /* c */ (process.name, "svr")"#));
    assert!(holds("add(\n  process.pid, // four\n  1) == 5"));
}

#[test]
fn type_and_arity_errors_name_the_argument() {
    let err = |src: &str| match EqlQuery::compile(&format!("process where {src}"), &CompileOptions::default()) {
        Ok(_) => panic!("{src} compiled"),
        Err(e) => e.message,
    };
    assert_eq!(err(r#"add("a", 1) == 2"#), "argument 1 of add() must be a number, not a string");
    assert_eq!(err("add(1) == 2"), "add() takes 2 arguments, got 1");
    assert_eq!(err(r#"between("a", "b") == "c""#), "between() takes 3 to 4 arguments, got 2");
    assert_eq!(err("cidrMatch(process.name)"), "cidrMatch() takes at least 2 arguments, got 1");
    assert_eq!(err(r#"cidrMatch(process.name, "10.0.0.0/99")"#), "`10.0.0.0/99` is not an IP address or CIDR block");
    assert_eq!(
        err("cidrMatch(process.name, process.name)"),
        "argument 2 of cidrMatch() must be a literal, as in Elasticsearch"
    );
    assert_eq!(
        err(r#"number("10", process.pid) == 1"#),
        "argument 2 of number() must be a literal, as in Elasticsearch"
    );
    assert_eq!(err("divide(process.pid, 0) == 1"), "divide() by zero");
    assert_eq!(
        err(r#"length~(process.name) == 1"#),
        "`length~` does not exist: only between, endsWith, indexOf, startsWith and stringContains have a case-insensitive `~` form"
    );
    assert_eq!(
        err("length(process.name)"),
        "length() gives a number, not a condition; compare it, e.g. `length(...) == ...`"
    );
    assert_eq!(
        err(r#"length(process.name) == "3""#),
        r#"cannot compare a number with a string using == in `length(process.name) == "3"`"#
    );
    assert!(err("wildcard(process.name, \"a*\")")
        .starts_with("unknown function `wildcard`: Elasticsearch's EQL has add, between,"));
}

#[test]
fn arithmetic_operators_are_the_functions_with_the_usual_precedence() {
    // Elasticsearch's grammar: `*`, `/`, `%` bind tighter than `+`, `-`, which bind tighter than
    // comparisons; each operator is the function of the same meaning.
    returns("2 + 3 * 4", "14");
    returns("(2 + 3) * 4", "20");
    returns("10 - 4 - 3", "3");
    returns("7 / 2", "3");
    returns("7 / 2.0", "3.5");
    returns("10 % 6", "4");
    returns("-10 % -6", "-4");
    returns("process.pid + 1", "5");
    returns("process.args_count * 2 - process.parent.pid", "6");
    returns("-process.pid", "-4");
    returns("process.pid - -1", "5");
    returns("length(process.name) + 1", "13");
    assert!(holds("process.pid * 2 > process.parent.pid + 5"));
    assert!(!holds("process.pid * 2 > process.parent.pid + 6"));
    is_null("process.pid + null", "4");
}
