//! The EQL engine on queries written in the style of Elastic's
//! detection-rules for Defend for Containers (`fixtures/detection-rules/
//! grammar.toml`, written for tokenscan: the real pack stays upstream and is
//! run by `scripts/detection-rules-pack.sh`).
//!
//! A query without `error` must compile and then evaluate on every fixture
//! capture, each hit with a non-empty reason. A query with `error` must fail
//! with a message containing it and a span starting at `at`; as a rule file,
//! the error names the file and a line:column in it; with `count`, that many
//! errors are reported for the query. No query may panic.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use tokenscan_core::capture::Capture;
use tokenscan_core::eql::{CompileOptions, EqlQuery};
use tokenscan_core::lint::{check_file, Severity};
use tokenscan_core::rules::RuleSet;

#[derive(Deserialize)]
struct Corpus {
    query: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    name: String,
    query: String,
    error: Option<String>,
    at: Option<String>,
    count: Option<usize>,
    /// A sequence: not a single-event query (the `error`), but as a rule
    /// file it loads as a sequence rule.
    #[serde(default)]
    sequence_rule: bool,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("core/ has a parent").to_owned()
}

fn corpus() -> Vec<Entry> {
    let path = root().join("fixtures/detection-rules/grammar.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    toml::from_str::<Corpus>(&text).expect("grammar.toml parses").query
}

fn rule_file(id: usize, query: &str) -> String {
    format!(
        "[rule]\nname = \"n\"\nrule_id = \"r{id}\"\nseverity = \"low\"\nlanguage = \"eql\"\nquery = '''\n{query}'''\n"
    )
}

#[test]
fn every_query_compiles_and_runs_or_fails_where_it_says() {
    let corpus = corpus();
    assert!(corpus.len() >= 18, "the corpus holds {} queries", corpus.len());
    let captures: Vec<Capture> = ["pod-session", "host-reads", "non-interactive", "tracee-trc108-unit", "edge-cases"]
        .iter()
        .map(|n| Capture::open(root().join(format!("fixtures/{n}.parquet"))).expect("fixture opens"))
        .collect();
    let mut problems = Vec::new();
    for (k, e) in corpus.iter().enumerate() {
        let label = &e.name;
        let outcome = std::panic::catch_unwind(|| EqlQuery::compile_all(&e.query, &CompileOptions::default()));
        let Ok(compiled) = outcome else {
            problems.push(format!("{label}: compile panicked"));
            continue;
        };
        match (&e.error, compiled) {
            (None, Ok(q)) => {
                for c in &captures {
                    for b in c.batches(q.projection(), 4096).expect("batches") {
                        let b = b.expect("fixture decodes");
                        for row in q.evaluate(&b).set_indices() {
                            assert!(!q.explain(&b, row).is_empty(), "{label}: empty reason");
                        }
                    }
                }
            }
            (None, Err(errors)) => problems.push(format!("{label}: does not compile: {}", errors[0].message)),
            (Some(_), Ok(_)) => problems.push(format!("{label}: compiled, expected an error")),
            (Some(want), Err(errors)) => {
                let first = &errors[0];
                let pointed = e.query.get(first.span.start..first.span.end).unwrap_or("");
                if !first.message.contains(want.as_str()) {
                    problems.push(format!("{label}: error {:?} does not say {want:?}", first.message));
                }
                if let Some(at) = &e.at {
                    if !pointed.starts_with(at.as_str()) {
                        problems.push(format!("{label}: error points at {pointed:?}, not at {at:?}"));
                    }
                }
                if errors.len() != e.count.unwrap_or(1) {
                    problems.push(format!("{label}: {} errors, expected {}", errors.len(), e.count.unwrap_or(1)));
                }
                let text = rule_file(k, &e.query);
                let loaded =
                    RuleSet::from_sources(&[(Path::new("rule.toml"), text.as_str())], &CompileOptions::default());
                if e.sequence_rule {
                    match loaded {
                        Ok(set) if set.rules()[0].sequence().is_some() => {}
                        _ => problems.push(format!("{label}: does not load as a sequence rule")),
                    }
                    continue;
                }
                let err = loaded.expect_err("a rule with a bad query does not load").to_string();
                if !(err.starts_with("rule.toml:") && err.contains(": in `query`: ")) {
                    problems.push(format!("{label}: rule file error {err:?}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}

/// `rules check` reports every error of every file, each at its line and column.
#[test]
fn rules_check_reports_every_error_of_a_file() {
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("two.toml");
    // Line 7 holds the query's first line: `process.nmae` at column 15, `user.nmae` at 39, and
    // on line 8 an unknown function at column 3.
    let query = "process where process.nmae == \"a\" and user.nmae == \"b\" or\n  wildcard(process.name, \"x\")\n";
    std::fs::write(&path, rule_file(1, query)).expect("write");
    let found: Vec<String> = check_file(&path, &CompileOptions::default())
        .iter()
        .map(|d| {
            assert_eq!(d.severity, Severity::Error);
            let p = d.position.expect("a position");
            format!("{}:{} {}", p.line, p.column, d.message.split(':').take(2).collect::<Vec<_>>().join(":"))
        })
        .collect();
    assert_eq!(
        found,
        vec![
            "7:15 in `query`: unknown field `process.nmae`",
            "7:39 in `query`: unknown field `user.nmae`",
            "8:3 in `query`: unknown function `wildcard`",
        ]
    );
}

/// `RuleSet::load_skipping` keeps the rules that load and reports the others.
#[test]
fn a_rule_directory_loads_around_bad_files() {
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::write(tmp.path().join("a-good.toml"), rule_file(1, "process where process.name == \"cat\"\n")).unwrap();
    std::fs::write(tmp.path().join("b-bad.toml"), rule_file(2, "process where process.nmae == \"cat\"\n")).unwrap();
    std::fs::write(tmp.path().join("c-toml.toml"), "[rule\n").unwrap();
    std::fs::write(tmp.path().join("d-dup.toml"), rule_file(1, "process where true\n")).unwrap();
    std::fs::write(tmp.path().join("e-good.toml"), rule_file(5, "file where file.name == \"token\"\n")).unwrap();
    let (set, problems) =
        RuleSet::load_skipping(&[tmp.path()], &CompileOptions::default()).expect("the directory reads");
    let ids: Vec<&str> = set.rules().iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["r1", "r5"]);
    let shown: Vec<String> =
        problems.iter().map(|p| p.to_string().replace(&format!("{}/", tmp.path().display()), "")).collect();
    let expected = [
        "b-bad.toml:7:15: in `query`: unknown field `process.nmae`",
        "c-toml.toml:1:",
        "d-dup.toml: rule id r1 is already defined by",
    ];
    assert_eq!(shown.len(), expected.len(), "{shown:?}");
    for (s, want) in shown.iter().zip(expected) {
        assert!(s.starts_with(want), "{s:?} should start with {want:?}");
    }
    // Loading the same directory strictly stops at the first bad file.
    let err = RuleSet::load(&[tmp.path()], &CompileOptions::default()).expect_err("strict load fails").to_string();
    assert!(err.contains("b-bad.toml:7:15"), "{err}");
}
