//! The EQL engine against real rules: the queries of Elastic's public
//! detection-rules repository stored in `fixtures/detection-rules/`.
//!
//! An independent, deliberately simple scanner decides what each query needs
//! (a sequence, a function, a field outside the ECS view). The fields it
//! accepts come from the field table documented in `docs/rule-semantics.md`,
//! read by this test, never from the library's own table. A query that needs
//! nothing unsupported must compile, and then evaluate on every fixture
//! capture; any other query must fail with an error whose message names the
//! unsupported construct and whose span points at it in the query text. No
//! query may panic. `cargo test --test detection_rules -- --nocapture` prints
//! the counts per category.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tokenscan_core::capture::Capture;
use tokenscan_core::eql::{CompileOptions, EqlQuery};
use tokenscan_core::rules::RuleSet;

#[derive(Deserialize)]
struct Corpus {
    query: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    file: String,
    commit: String,
    rule_id: String,
    query: String,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("core/ has a parent").to_owned()
}

fn corpus() -> Vec<Entry> {
    let path = root().join("fixtures/detection-rules/queries.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    toml::from_str::<Corpus>(&text).expect("queries.toml parses").query
}

/// Something a query needs that tokenscan does not support.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Unsupported {
    /// `sequence`, `sample` or `join`.
    QueryKind(String),
    /// A function other than startsWith, endsWith, stringContains and length.
    Function(String),
    /// A field outside the ECS view, not written `?name`.
    Field(String),
    /// A pipe.
    Pipe,
}

impl Unsupported {
    fn category(&self) -> &'static str {
        match self {
            Unsupported::QueryKind(_) => "sequence/sample/join",
            Unsupported::Function(_) => "unsupported function",
            Unsupported::Field(_) => "field outside the ECS view",
            Unsupported::Pipe => "pipe",
        }
    }
    /// The text the error message must name.
    fn name(&self) -> &str {
        match self {
            Unsupported::QueryKind(s) | Unsupported::Function(s) | Unsupported::Field(s) => s,
            Unsupported::Pipe => "|",
        }
    }
}

/// The query with comments and string literals blanked out (same length, so
/// byte offsets still match the original).
fn code_only(q: &str) -> String {
    let b = q.as_bytes();
    let mut out = q.as_bytes().to_vec();
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for x in &mut out[from..to] {
            if *x != b'\n' {
                *x = b' ';
            }
        }
    };
    while i < b.len() {
        let rest = &q[i..];
        let end = if rest.starts_with("//") {
            i + rest.find('\n').unwrap_or(rest.len())
        } else if rest.starts_with("/*") {
            i + rest.find("*/").map_or(rest.len(), |n| n + 2)
        } else if let Some(body) = rest.strip_prefix("\"\"\"") {
            i + 3 + body.find("\"\"\"").map_or(body.len(), |n| n + 3)
        } else if rest.starts_with('"') {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            (j + 1).min(b.len())
        } else {
            i += 1;
            continue;
        };
        blank(&mut out, i, end);
        i = end;
    }
    String::from_utf8(out).expect("only ASCII bytes were replaced")
}

/// The ECS fields `docs/rule-semantics.md` documents: the first column of
/// the table whose header is `| field | type | carried by | source |`.
fn documented_fields() -> Vec<String> {
    let path = root().join("docs/rule-semantics.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let table = text.split("| field | type | carried by | source |").nth(1).expect("the ECS field table");
    let fields: Vec<String> = table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.split('|').nth(1).expect("a cell").trim().trim_matches('`').to_string())
        .collect();
    assert!(fields.len() >= 10 && fields.iter().all(|f| f.contains('.')), "{fields:?}");
    fields
}

const KEYWORDS: &[&str] =
    &["and", "or", "not", "in", "like", "regex", "where", "true", "false", "null", "any", "with", "by"];
const FUNCTIONS: &[&str] = &["startswith", "endswith", "stringcontains", "length"];

/// What the query needs that tokenscan does not support, in source order.
fn unsupported(query: &str, fields: &[String]) -> Vec<Unsupported> {
    let code = code_only(query);
    let mut found = Vec::new();
    let first = code.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
    if ["sequence", "sample", "join"].contains(&first.as_str()) {
        found.push(Unsupported::QueryKind(first));
    }
    if code.contains('|') {
        found.push(Unsupported::Pipe);
    }
    let bytes = code.as_bytes();
    let word_byte = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'@';
    let mut i = 0;
    while i < bytes.len() {
        if !(bytes[i].is_ascii_alphabetic() || bytes[i] == b'_' || bytes[i] == b'@')
            || (i > 0 && word_byte(bytes[i - 1]))
        {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && word_byte(bytes[i]) {
            i += 1;
        }
        let word = &code[start..i];
        let optional = start > 0 && bytes[start - 1] == b'?';
        // Elasticsearch allows whitespace between a function's name and its '('.
        let after = code[i..].strip_prefix('~').unwrap_or(&code[i..]).trim_start();
        let call = after.starts_with('(') && !word.contains('.');
        if call && !KEYWORDS.contains(&word.to_ascii_lowercase().as_str()) {
            if !FUNCTIONS.contains(&word.to_ascii_lowercase().as_str()) {
                found.push(Unsupported::Function(word.to_string()));
            }
        } else if word.contains('.') && !optional && !fields.iter().any(|f| f == word) {
            found.push(Unsupported::Field(word.to_string()));
        }
    }
    found
}

#[test]
fn the_scanner_sees_what_queries_need() {
    let fields = documented_fields();
    let unsupported = |q: &str| unsupported(q, &fields);
    assert_eq!(unsupported(r#"process where process.name == "a.b" // c.d"#), vec![]);
    assert_eq!(unsupported("process where ?x.y == 1 and length(process.name) > 1"), vec![]);
    // The spacing four detection-rules production rules use, which Elasticsearch accepts.
    let spaced = r#"process where stringContains (process.name, "x") and length (process.args) > 1"#;
    assert_eq!(unsupported(spaced), vec![]);
    assert!(EqlQuery::compile(spaced, &CompileOptions::default()).is_ok());
    assert_eq!(unsupported("any where cidrMatch (x, 1)"), vec![Unsupported::Function("cidrMatch".into())]);
    assert_eq!(
        unsupported("sequence [process where cidrMatch(destination.ip, \"10/8\")] | head 1"),
        vec![
            Unsupported::QueryKind("sequence".into()),
            Unsupported::Pipe,
            Unsupported::Function("cidrMatch".into()),
            Unsupported::Field("destination.ip".into()),
        ]
    );
    assert_eq!(code_only("a \"x\\\"y\" b /* c */ d"), "a        b         d");
}

#[test]
fn every_supported_query_compiles_and_every_other_names_what_it_lacks() {
    let corpus = corpus();
    assert_eq!(corpus.len(), 39, "the corpus holds {} queries", corpus.len());
    let captures: Vec<Capture> = ["pod-session", "host-reads", "non-interactive", "tracee-trc108-unit", "edge-cases"]
        .iter()
        .map(|n| Capture::open(root().join(format!("fixtures/{n}.parquet"))).expect("fixture opens"))
        .collect();
    let fields = documented_fields();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    for e in &corpus {
        let label = format!("{} ({}, rule_id {})", e.file, &e.commit[..8], e.rule_id);
        let needs = unsupported(&e.query, &fields);
        let outcome = std::panic::catch_unwind(|| EqlQuery::compile(&e.query, &CompileOptions::default()));
        let compiled = match outcome {
            Ok(c) => c,
            Err(_) => {
                problems.push(format!("{label}: compile panicked"));
                continue;
            }
        };
        match (needs.first(), compiled) {
            (None, Ok(q)) => {
                *counts.entry("supported: compiles").or_default() += 1;
                for c in &captures {
                    for b in c.batches(q.projection(), 4096).expect("batches") {
                        let b = b.expect("fixture decodes");
                        for row in q.evaluate(&b).set_indices() {
                            assert!(!q.explain(&b, row).is_empty(), "{label}: empty reason");
                        }
                    }
                }
            }
            (None, Err(err)) => {
                problems.push(format!("{label}: uses only supported constructs but fails: {}", err.message))
            }
            (Some(_), Ok(_)) => problems.push(format!("{label}: needs {needs:?} but compiled")),
            (Some(first), Err(err)) => {
                *counts.entry(first.category()).or_default() += 1;
                let pointed = e.query.get(err.span.start..err.span.end).unwrap_or("");
                let named = needs.iter().find(|n| err.message.contains(n.name()));
                match named {
                    None => problems.push(format!("{label}: error {:?} names none of {needs:?}", err.message)),
                    Some(Unsupported::Pipe) => {}
                    Some(n) if !pointed.starts_with(n.name()) && !pointed.ends_with(n.name()) => problems
                        .push(format!("{label}: error {:?} points at {pointed:?}, not at {}", err.message, n.name())),
                    Some(_) => {}
                }
                let message_ok = err.message.starts_with("unsupported") || err.message.starts_with("unknown field");
                if !message_ok {
                    problems.push(format!("{label}: error {:?} does not say unsupported/unknown", err.message));
                }
                // The same query in a rule file: the error names the file and a line:column in it.
                let text = format!(
                    "[rule]\nname = \"n\"\nrule_id = \"{}\"\nseverity = \"low\"\nlanguage = \"eql\"\nquery = '''\n{}'''\n",
                    e.rule_id, e.query
                );
                let err = RuleSet::from_sources(&[(Path::new("rule.toml"), text.as_str())], &CompileOptions::default())
                    .expect_err("a rule with an unsupported query does not load")
                    .to_string();
                assert!(err.starts_with("rule.toml:") && err.contains(": in `query`: "), "{label}: {err}");
            }
        }
    }
    println!("detection-rules corpus: {} queries", corpus.len());
    for (category, n) in &counts {
        println!("  {n:3}  {category}");
    }
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
    // The figures docs/robustness.md states: 33 of the 39 compile, 6 do not
    // (25 before the process-table fields of issue 15: parents, leaders,
    // `container.security_context.privileged`, `file.extension`).
    assert_eq!(
        counts,
        BTreeMap::from([("supported: compiles", 33), ("field outside the ECS view", 2), ("sequence/sample/join", 4),]),
    );
}
