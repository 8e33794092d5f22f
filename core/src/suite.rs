//! Rule test suites: captures plus an expectations file saying which events
//! each rule must and must not report. See `docs/rule-tests.md`.
//!
//! ```toml
//! [suite]
//! name = "seed rules"
//! unexpected = "fail"          # default for cases: findings not listed fail the case
//!
//! [[case]]
//! name = "pod session: TRC-108"
//! capture = "pod-session.parquet"        # relative to this file
//! rule = "TRC-108"
//! fire = [32, 35]                         # these event indexes must fire
//! not_fire = [60]                         # these must not
//! fire_where = [{ comm = "python3" }]     # each table must match at least one finding
//! not_fire_where = [{ comm = "kube-proxy" }]
//! count = 7                               # or min_count / max_count
//! unevaluable = []                        # exact events the rule cannot evaluate
//! rules = ["rules/other.toml"]            # optional: rule files for this case (default: [suite] rules, else built-in)
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, TimestampNanosecondType, UInt32Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use serde::Deserialize;

use crate::capture::{EventBatch, Projection};
use crate::driver::{Chunk, Consumer, Driver};
use crate::eql::{line_col, CompileOptions};
use crate::error::{Error, Position, Result};
use crate::findings::{build_findings_at, findings_projection, findings_schema, RuleInfo};
use crate::replay::ReplayOptions;
use crate::rules::RuleSet;

/// What happens to findings a case does not list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Unexpected {
    /// A finding not in `fire` and matching no `fire_where` fails the case.
    #[default]
    Fail,
    /// Findings not listed are fine.
    Allow,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    #[serde(default)]
    suite: SuiteHeader,
    #[serde(rename = "case", default)]
    cases: Vec<toml::Spanned<CaseSpec>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SuiteHeader {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    rules: Option<Vec<String>>,
    #[serde(default)]
    unexpected: Unexpected,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct CaseSpec {
    name: String,
    capture: String,
    rule: String,
    #[serde(default)]
    rules: Option<Vec<String>>,
    #[serde(default)]
    fire: Vec<u64>,
    #[serde(default)]
    not_fire: Vec<u64>,
    #[serde(default)]
    fire_where: Vec<toml::Table>,
    #[serde(default)]
    not_fire_where: Vec<toml::Table>,
    #[serde(default)]
    count: Option<u64>,
    #[serde(default)]
    min_count: Option<u64>,
    #[serde(default)]
    max_count: Option<u64>,
    #[serde(default)]
    unexpected: Option<Unexpected>,
    #[serde(default)]
    unevaluable: Option<Vec<u64>>,
}

/// One case of a suite, resolved.
#[derive(Debug, Clone)]
pub struct Case {
    /// Case name.
    pub name: String,
    /// Capture path (resolved against the suite file's directory).
    pub capture: PathBuf,
    /// Rule id under test.
    pub rule: String,
    /// Rule files (empty = built-in rules).
    pub rules: Vec<PathBuf>,
    /// Where the case starts in the suite file.
    pub position: Position,
    spec: CaseSpec,
    unexpected: Unexpected,
}

/// A loaded suite.
#[derive(Debug, Clone)]
pub struct Suite {
    /// Suite name (defaults to the file name).
    pub name: String,
    /// The expectations file.
    pub path: PathBuf,
    /// The cases, in file order.
    pub cases: Vec<Case>,
}

/// The outcome of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// Case name.
    pub name: String,
    /// Rule id.
    pub rule: String,
    /// Capture path.
    pub capture: PathBuf,
    /// Findings of the rule on the capture.
    pub findings: u64,
    /// Every failed expectation, explained; empty when the case passes.
    pub failures: Vec<String>,
}

impl CaseResult {
    /// Whether every expectation held.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// The name of the expectations file `tokenscan test DIR` looks for.
pub const SUITE_FILE: &str = "tokenscan-test.toml";

impl Suite {
    /// Loads `path`, or `path/tokenscan-test.toml` when `path` is a directory.
    pub fn load(path: impl AsRef<Path>) -> Result<Suite> {
        let mut path = path.as_ref().to_owned();
        if path.is_dir() {
            path = path.join(SUITE_FILE);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let at = |offset: usize| {
            let (line, column) = line_col(&text, offset);
            Position { line, column }
        };
        let file: SuiteFile = toml::from_str(&text)
            .map_err(|e| Error::rule(&path, e.span().map(|s| at(s.start)), e.message().trim().to_string()))?;
        let dir = path.parent().map(Path::to_owned).unwrap_or_default();
        let resolve = |p: &str| dir.join(p);
        let columns: Vec<String> = findings_schema().fields().iter().map(|f| f.name().clone()).collect();
        let mut cases = Vec::new();
        for spanned in file.cases {
            let position = at(spanned.span().start);
            let spec = spanned.into_inner();
            for t in spec.fire_where.iter().chain(&spec.not_fire_where) {
                if let Some(k) = t.keys().find(|k| !columns.contains(k)) {
                    return Err(Error::rule(
                        &path,
                        Some(position),
                        format!("case {:?}: `{k}` is not a finding field (fields: {})", spec.name, columns.join(", ")),
                    ));
                }
            }
            let rules = spec.rules.clone().or_else(|| file.suite.rules.clone()).unwrap_or_default();
            cases.push(Case {
                name: spec.name.clone(),
                capture: resolve(&spec.capture),
                rule: spec.rule.clone(),
                rules: rules.iter().map(|r| resolve(r)).collect(),
                position,
                unexpected: spec.unexpected.unwrap_or(file.suite.unexpected),
                spec,
            });
        }
        if cases.is_empty() {
            return Err(Error::rule(&path, None, "the suite has no [[case]]"));
        }
        let name = file
            .suite
            .name
            .unwrap_or_else(|| path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        Ok(Suite { name, path, cases })
    }

    /// Runs every case with the default [`ReplayOptions`]; see [`Suite::run_with`].
    pub fn run(&self, options: &CompileOptions) -> Result<Vec<CaseResult>> {
        self.run_with(options, &ReplayOptions::default())
    }

    /// Runs every case; captures are replayed once per distinct rule set, as
    /// `tokenscan replay` replays them with `replay`: under
    /// [`ReplayOptions::strict`] an event a rule cannot evaluate is an error;
    /// with [`ReplayOptions::skip_unreadable`] a capture that breaks part way
    /// fails its cases (naming the problem) instead of the whole run.
    pub fn run_with(&self, options: &CompileOptions, replay: &ReplayOptions) -> Result<Vec<CaseResult>> {
        let mut groups: BTreeMap<(Vec<PathBuf>, PathBuf), Vec<usize>> = BTreeMap::new();
        for (i, c) in self.cases.iter().enumerate() {
            groups.entry((c.rules.clone(), c.capture.clone())).or_default().push(i);
        }
        let mut results: Vec<Option<CaseResult>> = vec![None; self.cases.len()];
        for ((rules, capture), members) in groups {
            let set = if rules.is_empty() { RuleSet::builtin(options)? } else { RuleSet::load(&rules, options)? };
            for &i in &members {
                let c = &self.cases[i];
                if !set.rules().iter().any(|r| r.id == c.rule) {
                    return Err(Error::rule(
                        &self.path,
                        Some(c.position),
                        format!("case {:?}: rule {} is not among the loaded rules", c.name, c.rule),
                    ));
                }
            }
            let cases: Vec<&Case> = members.iter().map(|&i| &self.cases[i]).collect();
            let run = replay_for(&set, &capture, &cases, replay)?;
            for &i in &members {
                results[i] = Some(judge(&self.cases[i], &run));
            }
        }
        Ok(results.into_iter().map(|r| r.expect("every case is in a group")).collect())
    }
}

/// A finding's reason and its fields as JSON, by event index.
type FindingsByIndex = BTreeMap<u64, (String, serde_json::Map<String, serde_json::Value>)>;

/// What one replay of a capture produced, as the cases need it.
#[derive(Default)]
struct Run {
    /// Per rule id: event index -> (reason, finding fields as JSON).
    findings: HashMap<String, FindingsByIndex>,
    /// Per rule id: why events of interest did not fire.
    misses: HashMap<String, HashMap<u64, String>>,
    /// Per rule id: unevaluable event indexes.
    unevaluable: HashMap<String, BTreeSet<u64>>,
    /// Events in the capture.
    events: u64,
    /// Why the capture could not be read completely, if it could not.
    unreadable: Option<String>,
}

/// Replays `capture` through `set` with the [`Driver`], as `tokenscan replay`
/// would with `options`, keeping the findings and, for the events the cases
/// name, why the rule did not fire.
fn replay_for(set: &RuleSet, capture: &Path, cases: &[&Case], options: &ReplayOptions) -> Result<Run> {
    let rules = set.rules();
    let mut interest: HashMap<usize, BTreeSet<u64>> = HashMap::new();
    for c in cases {
        if let Some(ri) = rules.iter().position(|r| r.id == c.rule) {
            interest.entry(ri).or_default().extend(c.spec.fire.iter().chain(&c.spec.not_fire));
        }
    }
    let all: BTreeSet<u64> = interest.values().flatten().copied().collect();
    let consumer = SuiteConsumer { set, interest: &interest, all: &all };
    let mut run = Run::default();
    let summary = Driver::new(rules, options).run(&[capture], &consumer, &mut |part: Run| {
        for (rule, found) in part.findings {
            run.findings.entry(rule).or_default().extend(found);
        }
        for (rule, misses) in part.misses {
            run.misses.entry(rule).or_default().extend(misses);
        }
        for (rule, bad) in part.unevaluable {
            run.unevaluable.entry(rule).or_default().extend(bad);
        }
        Ok(())
    })?;
    run.events = summary.events;
    run.unreadable = summary.unreadable.first().map(|u| {
        format!(
            "the capture could not be read completely ({} events of it were replayed): {}",
            u.events_read, u.message
        )
    });
    Ok(run)
}

/// The consumer of `test`: findings as JSON fields, and why-not for the events of interest.
struct SuiteConsumer<'a> {
    set: &'a RuleSet,
    /// Per rule position: the events its cases name.
    interest: &'a HashMap<usize, BTreeSet<u64>>,
    /// Every event some case names.
    all: &'a BTreeSet<u64>,
}

impl Consumer for SuiteConsumer<'_> {
    type Part = Run;

    fn columns(&self) -> Projection {
        self.set.projection().union(findings_projection())
    }

    fn keep(&self, _capture: &Path, batch: &EventBatch, rows: &mut Vec<u32>) {
        let lo = batch.first_index();
        let hi = lo + batch.len() as u64;
        rows.extend(self.all.range(lo..hi).map(|idx| (idx - lo) as u32));
    }

    fn part(&self, chunk: Chunk<'_>) -> Result<Run> {
        let rules = self.set.rules();
        let infos: Vec<RuleInfo<'_>> =
            rules.iter().map(|r| RuleInfo { id: &r.id, name: &r.name, severity: &r.severity }).collect();
        let mut run = Run::default();
        for (ri, idx, _) in &chunk.unevaluable {
            run.unevaluable.entry(rules[*ri].id.clone()).or_default().insert(*idx);
        }
        let label = chunk.capture.display().to_string();
        let found = build_findings_at(&label, &chunk.rows, &chunk.hits, &infos, chunk.process.as_deref(), |row| {
            chunk.event_index(row)
        });
        for (k, h) in chunk.hits.iter().enumerate() {
            let fields = row_json(&found, k);
            run.findings
                .entry(rules[h.rule].id.clone())
                .or_default()
                .insert(chunk.event_index(h.row), (h.reason.clone(), fields));
        }
        for (&ri, indexes) in self.interest {
            let rule = &rules[ri];
            for row in 0..chunk.rows.len() {
                let idx = chunk.event_index(row);
                if !indexes.contains(&idx) {
                    continue;
                }
                let fired = chunk.hits.iter().any(|h| h.row == row && h.rule == ri);
                if !fired {
                    run.misses.entry(rule.id.clone()).or_default().insert(idx, rule.why_not(&chunk.rows, row));
                }
            }
        }
        Ok(run)
    }
}

/// One finding row as a JSON object keyed by findings column.
fn row_json(b: &RecordBatch, i: usize) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::Value;
    let mut m = serde_json::Map::new();
    for (f, a) in b.schema().fields().iter().zip(b.columns()) {
        let v = if a.is_null(i) {
            Value::Null
        } else {
            match a.data_type() {
                DataType::Utf8 => Value::from(a.as_string::<i32>().value(i)),
                DataType::UInt32 => Value::from(a.as_primitive::<UInt32Type>().value(i)),
                DataType::UInt64 => Value::from(a.as_primitive::<UInt64Type>().value(i)),
                DataType::Int32 => Value::from(a.as_primitive::<Int32Type>().value(i)),
                DataType::Timestamp(_, _) => Value::from(a.as_primitive::<TimestampNanosecondType>().value(i)),
                DataType::List(_) => {
                    let l = a.as_list::<i32>().value(i);
                    let s = l.as_string::<i32>();
                    Value::Array((0..s.len()).map(|j| Value::from(s.value(j))).collect())
                }
                _ => Value::Null,
            }
        };
        m.insert(f.name().clone(), v);
    }
    m
}

fn toml_matches(want: &toml::Value, got: &serde_json::Value) -> bool {
    match (want, got) {
        (toml::Value::String(w), serde_json::Value::String(g)) => w == g,
        (toml::Value::Integer(w), serde_json::Value::Number(g)) => g.as_i64() == Some(*w),
        (toml::Value::Boolean(w), serde_json::Value::Bool(g)) => w == g,
        (toml::Value::Array(w), serde_json::Value::Array(g)) => {
            w.len() == g.len() && w.iter().zip(g).all(|(a, b)| toml_matches(a, b))
        }
        _ => false,
    }
}

fn table_matches(t: &toml::Table, fields: &serde_json::Map<String, serde_json::Value>) -> bool {
    t.iter().all(|(k, v)| fields.get(k).is_some_and(|g| toml_matches(v, g)))
}

fn show_table(t: &toml::Table) -> String {
    let parts: Vec<String> = t.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    format!("{{ {} }}", parts.join(", "))
}

fn judge(c: &Case, run: &Run) -> CaseResult {
    let empty = BTreeMap::new();
    let found = run.findings.get(&c.rule).unwrap_or(&empty);
    let mut failures: Vec<String> = run.unreadable.iter().cloned().collect();
    let miss =
        |idx: u64| run.misses.get(&c.rule).and_then(|m| m.get(&idx)).cloned().unwrap_or_else(|| "not evaluated".into());
    for &idx in &c.spec.fire {
        if idx >= run.events {
            failures.push(format!("event {idx} must fire, but the capture has only {} events", run.events));
        } else if !found.contains_key(&idx) {
            failures.push(format!("event {idx} must fire but does not: {}", miss(idx)));
        }
    }
    for &idx in &c.spec.not_fire {
        if let Some((reason, _)) = found.get(&idx) {
            failures.push(format!("event {idx} must not fire but does: {reason}"));
        }
    }
    for t in &c.spec.fire_where {
        if !found.values().any(|(_, f)| table_matches(t, f)) {
            failures.push(format!("no finding matches {}", show_table(t)));
        }
    }
    for t in &c.spec.not_fire_where {
        for (idx, (reason, f)) in found {
            if table_matches(t, f) {
                failures.push(format!("event {idx} matches {} but must not fire: {reason}", show_table(t)));
            }
        }
    }
    let n = found.len() as u64;
    if let Some(want) = c.spec.count {
        if n != want {
            failures.push(format!("expected exactly {want} findings, got {n}"));
        }
    }
    if let Some(min) = c.spec.min_count.filter(|m| n < *m) {
        failures.push(format!("expected at least {min} findings, got {n}"));
    }
    if let Some(max) = c.spec.max_count.filter(|m| n > *m) {
        failures.push(format!("expected at most {max} findings, got {n}"));
    }
    let lists_expected = !c.spec.fire.is_empty() || !c.spec.fire_where.is_empty();
    if c.unexpected == Unexpected::Fail && lists_expected {
        for (idx, (reason, f)) in found {
            let expected = c.spec.fire.contains(idx) || c.spec.fire_where.iter().any(|t| table_matches(t, f));
            if !expected {
                failures.push(format!("unexpected finding at event {idx}: {reason}"));
            }
        }
    }
    if let Some(want) = &c.spec.unevaluable {
        let got: Vec<u64> = run.unevaluable.get(&c.rule).map(|s| s.iter().copied().collect()).unwrap_or_default();
        let mut want = want.clone();
        want.sort_unstable();
        if got != want {
            failures.push(format!("expected unevaluable events {want:?}, got {got:?}"));
        }
    }
    CaseResult { name: c.name.clone(), rule: c.rule.clone(), capture: c.capture.clone(), findings: n, failures }
}
