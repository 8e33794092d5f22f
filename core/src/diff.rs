//! Rule regression: replay captures through a baseline and a candidate rule
//! set in one pass and report which findings a change adds and removes, with
//! the reason each side fires or does not.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::capture::{EventBatch, Projection};
use crate::driver::{Chunk, Consumer, Driver};
use crate::error::{Error, Result};
use crate::findings::{build_findings_at, findings_projection, findings_schema, Hit, RuleInfo};
use crate::process::ProcessContext;
use crate::replay::{ReplayOptions, RuleSummary, Unreadable};
use crate::rules::{Rule, RuleSet};

/// A finding read back from a saved findings file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedFinding {
    /// Rule id.
    pub rule_id: String,
    /// Rule name.
    pub rule_name: String,
    /// Severity.
    pub severity: String,
    /// The reason it fired then.
    pub reason: String,
}

/// Findings saved by `tokenscan replay --format parquet`, keyed by capture and event index.
#[derive(Debug, Clone, Default)]
pub struct SavedFindings {
    /// The file they were read from.
    pub path: PathBuf,
    by_capture: HashMap<String, BTreeMap<u64, Vec<SavedFinding>>>,
}

impl SavedFindings {
    /// Reads a findings Parquet file (it needs `capture`, `event_index`, `rule_id`,
    /// `rule_name`, `severity` and `reason`).
    pub fn load(path: impl AsRef<Path>) -> Result<SavedFindings> {
        let path = path.as_ref();
        let reader = crate::capture::record_batches(path)?;
        let mut saved = SavedFindings { path: path.to_owned(), by_capture: HashMap::new() };
        for batch in reader {
            let batch = batch?;
            let text = |name: &str| -> Result<ArrayRef> {
                let a = batch
                    .column_by_name(name)
                    .ok_or_else(|| Error::capture(path, format!("findings file lacks column `{name}`")))?;
                arrow_cast::cast(a, &DataType::Utf8).map_err(|e| Error::capture(path, format!("column `{name}`: {e}")))
            };
            let (capture, rule_id, rule_name, severity, reason) =
                (text("capture")?, text("rule_id")?, text("rule_name")?, text("severity")?, text("reason")?);
            let index = batch
                .column_by_name("event_index")
                .ok_or_else(|| Error::capture(path, "findings file lacks column `event_index`"))?;
            let index = arrow_cast::cast(index, &DataType::UInt64)
                .map_err(|e| Error::capture(path, format!("column `event_index`: {e}")))?;
            let index = index.as_primitive::<UInt64Type>();
            let s = |a: &ArrayRef, i: usize| a.as_string::<i32>().value(i).to_string();
            for i in 0..batch.num_rows() {
                saved.by_capture.entry(s(&capture, i)).or_default().entry(index.value(i)).or_default().push(
                    SavedFinding {
                        rule_id: s(&rule_id, i),
                        rule_name: s(&rule_name, i),
                        severity: s(&severity, i),
                        reason: s(&reason, i),
                    },
                );
            }
        }
        Ok(saved)
    }

    /// Captures the saved findings name.
    pub fn captures(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.by_capture.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// Number of saved findings.
    pub fn len(&self) -> usize {
        self.by_capture.values().flat_map(|m| m.values()).map(Vec::len).sum()
    }

    /// Whether no finding was saved.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the candidate is compared with.
#[derive(Debug, Clone)]
pub enum Baseline {
    /// Another rule set, replayed in the same pass.
    Rules(RuleSet),
    /// Findings saved earlier.
    Saved(SavedFindings),
}

/// Per-rule counts of a diff.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleDiff {
    /// Rule id.
    pub rule_id: String,
    /// Rule name (candidate's, else baseline's).
    pub rule_name: String,
    /// Whether the rule exists in the baseline and in the candidate.
    pub in_baseline: bool,
    /// Whether the rule exists in the candidate.
    pub in_candidate: bool,
    /// Findings only the candidate has.
    pub added: u64,
    /// Findings only the baseline has.
    pub removed: u64,
    /// Findings both have.
    pub unchanged: u64,
}

/// What a diff found.
#[derive(Debug, Clone, Default)]
pub struct DiffSummary {
    /// Captures and their event counts.
    pub captures: Vec<(PathBuf, u64)>,
    /// Events read.
    pub events: u64,
    /// Per rule id: candidate rules first (in order), then baseline-only rules.
    pub rules: Vec<RuleDiff>,
    /// Saved findings whose capture was not replayed (their capture names).
    pub unmatched_saved_captures: Vec<String>,
    /// Per candidate rule (in order): the events it could not evaluate, with
    /// examples, as a replay counts them.
    pub candidate_unevaluable: Vec<RuleSummary>,
    /// The same for each baseline rule (empty against saved findings).
    pub baseline_unevaluable: Vec<RuleSummary>,
    /// Captures that could not be read completely (see [`ReplayOptions::skip_unreadable`]).
    pub unreadable: Vec<Unreadable>,
}

impl DiffSummary {
    /// Whether anything was added or removed.
    pub fn changed(&self) -> bool {
        self.rules.iter().any(|r| r.added > 0 || r.removed > 0) || !self.unmatched_saved_captures.is_empty()
    }

    /// Events either side could not evaluate, counted once per rule.
    pub fn unevaluable(&self) -> u64 {
        self.candidate_unevaluable.iter().chain(&self.baseline_unevaluable).map(|r| r.unevaluable).sum()
    }
}

/// Receives change batches (schema [`changes_schema`]), in capture order.
pub trait ChangeSink {
    /// One batch of added and removed findings.
    fn changes(&mut self, batch: &RecordBatch) -> Result<()>;
}

/// The schema of change batches: `change` (`added` or `removed`), then the
/// findings columns (with `reason` = why it fires on the side where it does),
/// then `other_side`: why the other side does not fire.
pub fn changes_schema() -> SchemaRef {
    let mut fields = vec![Field::new("change", DataType::Utf8, false)];
    fields.extend(findings_schema().fields().iter().map(|f| f.as_ref().clone()));
    fields.push(Field::new("other_side", DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

struct Change {
    row: usize,
    added: bool,
    rule_id: String,
    rule_name: String,
    severity: String,
    reason: String,
    other_side: String,
}

/// Compares `baseline` with `candidate` over `captures` in a single pass.
///
/// Both rule sets are evaluated by one [`Driver`] run (one rule list, the
/// candidate's rules first), so options, unreadable captures and unevaluable
/// events behave as in a replay: they are counted per side in
/// [`DiffSummary::candidate_unevaluable`] and [`DiffSummary::baseline_unevaluable`]
/// (an error under [`ReplayOptions::strict`]) and, with
/// [`ReplayOptions::skip_unreadable`], listed in [`DiffSummary::unreadable`].
pub fn diff<P: AsRef<Path>>(
    baseline: &Baseline,
    candidate: &RuleSet,
    captures: &[P],
    options: &ReplayOptions,
    sink: &mut dyn ChangeSink,
) -> Result<DiffSummary> {
    let mut rules: Vec<Rule> = candidate.rules().to_vec();
    if let Baseline::Rules(set) = baseline {
        rules.extend(set.rules().iter().cloned());
    }
    let mut order: Vec<RuleDiff> = Vec::new();
    let mut position: HashMap<String, usize> = HashMap::new();
    let mut note = |id: &str, name: &str, in_base: bool, in_cand: bool| {
        let at = *position.entry(id.to_string()).or_insert_with(|| {
            order.push(RuleDiff { rule_id: id.to_string(), rule_name: name.to_string(), ..Default::default() });
            order.len() - 1
        });
        order[at].in_baseline |= in_base;
        order[at].in_candidate |= in_cand;
    };
    for r in candidate.rules() {
        note(&r.id, &r.name, false, true);
    }
    match baseline {
        Baseline::Rules(set) => set.rules().iter().for_each(|r| note(&r.id, &r.name, true, false)),
        Baseline::Saved(saved) => {
            for m in saved.by_capture.values() {
                for f in m.values().flatten() {
                    note(&f.rule_id, &f.rule_name, true, false);
                }
            }
        }
    }
    let consumer = DiffConsumer {
        baseline,
        candidate,
        rules: &rules,
        position: &position,
        projection: rules.iter().fold(findings_projection(), |p, r| p.union(r.projection())),
    };
    let mut summary = DiffSummary::default();
    let mut sink_parts = |(batch, counts): (Option<RecordBatch>, Vec<[u64; 3]>)| -> Result<()> {
        for (r, [added, removed, unchanged]) in order.iter_mut().zip(counts) {
            r.added += added;
            r.removed += removed;
            r.unchanged += unchanged;
        }
        match batch {
            Some(b) => sink.changes(&b),
            None => Ok(()),
        }
    };
    let run = Driver::new(&rules, options).run(captures, &consumer, &mut sink_parts)?;
    summary.events = run.events;
    summary.captures = run.captures;
    summary.unreadable = run.unreadable;
    let mut per_rule = run.rules;
    summary.baseline_unevaluable = per_rule.split_off(candidate.rules().len());
    summary.candidate_unevaluable = per_rule;
    if let Baseline::Saved(saved) = baseline {
        let seen: Vec<String> = captures.iter().map(|p| p.as_ref().display().to_string()).collect();
        summary.unmatched_saved_captures =
            saved.captures().into_iter().filter(|c| !seen.iter().any(|s| s == c)).map(String::from).collect();
    }
    summary.rules = order;
    Ok(summary)
}

/// The diff's consumer: the rows either side fires on (and, against saved
/// findings, the rows they name) become changes.
struct DiffConsumer<'a> {
    baseline: &'a Baseline,
    candidate: &'a RuleSet,
    /// Candidate rules, then baseline rules (when the baseline is rules).
    rules: &'a [Rule],
    /// Rule id -> position in the summary's rule list.
    position: &'a HashMap<String, usize>,
    projection: Projection,
}

impl Consumer for DiffConsumer<'_> {
    /// The change batch, if any, and per summary rule (added, removed, unchanged).
    type Part = (Option<RecordBatch>, Vec<[u64; 3]>);

    fn columns(&self) -> Projection {
        self.projection
    }

    fn wants_context(&self) -> bool {
        true
    }

    fn add_context(&self, (batch, counts): Self::Part, process: &ProcessContext) -> Result<Self::Part> {
        Ok((batch.map(|b| crate::findings::fill_context(&b, process)), counts))
    }

    fn context_events(&self, (batch, _): &Self::Part, events: &mut Vec<u64>) {
        if let Some(b) = batch {
            crate::findings::context_events(b, events);
        }
    }

    fn keep(&self, capture: &Path, batch: &EventBatch, rows: &mut Vec<u32>) {
        let Baseline::Saved(saved) = self.baseline else { return };
        let lo = batch.first_index();
        let hi = lo + batch.len() as u64;
        if let Some(m) = saved.by_capture.get(&capture.display().to_string()) {
            rows.extend(m.range(lo..hi).map(|(idx, _)| (idx - lo) as u32));
        }
    }

    fn part(&self, chunk: Chunk<'_>) -> Result<Self::Part> {
        fn find<'r>(rules: &'r [Rule], id: &str) -> Option<&'r Rule> {
            rules.iter().find(|r| r.id == id)
        }
        let mut counts = vec![[0u64; 3]; self.position.len()];
        let ncand = self.candidate.rules().len();
        let label = chunk.capture.display().to_string();
        let batch = &chunk.rows;
        let (cand_rules, base_rules) = self.rules.split_at(ncand);
        let mut cand_map: HashMap<(usize, &str), &Hit> = HashMap::new();
        let mut base_hits: Vec<(usize, SavedFinding)> = Vec::new();
        for h in &chunk.hits {
            let r = &self.rules[h.rule];
            if h.rule < ncand {
                cand_map.insert((h.row, r.id.as_str()), h);
            } else {
                let f = SavedFinding {
                    rule_id: r.id.clone(),
                    rule_name: r.name.clone(),
                    severity: r.severity.clone(),
                    reason: h.reason.clone(),
                };
                base_hits.push((h.row, f));
            }
        }
        if let Baseline::Saved(saved) = self.baseline {
            if let Some(m) = saved.by_capture.get(&label) {
                for row in 0..batch.len() {
                    for f in m.get(&chunk.event_index(row)).into_iter().flatten() {
                        base_hits.push((row, f.clone()));
                    }
                }
            }
        }
        let mut changes = Vec::new();
        let mut base_keys = std::collections::HashSet::new();
        for (row, f) in &base_hits {
            base_keys.insert((*row, f.rule_id.as_str()));
            let at = self.position[&f.rule_id];
            if cand_map.contains_key(&(*row, f.rule_id.as_str())) {
                counts[at][2] += 1;
                continue;
            }
            counts[at][1] += 1;
            let other_side = match find(cand_rules, &f.rule_id) {
                Some(r) => r.why_not(batch, *row),
                None => format!("rule {} is not in the candidate rules", f.rule_id),
            };
            changes.push(Change {
                row: *row,
                added: false,
                rule_id: f.rule_id.clone(),
                rule_name: f.rule_name.clone(),
                severity: f.severity.clone(),
                reason: f.reason.clone(),
                other_side,
            });
        }
        for h in chunk.hits.iter().filter(|h| h.rule < ncand) {
            let r = &self.rules[h.rule];
            if base_keys.contains(&(h.row, r.id.as_str())) {
                continue;
            }
            counts[self.position[&r.id]][0] += 1;
            let other_side = match self.baseline {
                Baseline::Rules(_) => match find(base_rules, &r.id) {
                    Some(b) => b.why_not(batch, h.row),
                    None => format!("rule {} is not in the baseline rules", r.id),
                },
                Baseline::Saved(_) => "not among the saved baseline findings".to_string(),
            };
            changes.push(Change {
                row: h.row,
                added: true,
                rule_id: r.id.clone(),
                rule_name: r.name.clone(),
                severity: r.severity.clone(),
                reason: h.reason.clone(),
                other_side,
            });
        }
        if changes.is_empty() {
            return Ok((None, counts));
        }
        changes.sort_by(|a, b| (a.row, &a.rule_id, a.added).cmp(&(b.row, &b.rule_id, b.added)));
        Ok((Some(change_batch(&label, &chunk, &changes)), counts))
    }
}

fn change_batch(label: &str, chunk: &Chunk<'_>, changes: &[Change]) -> RecordBatch {
    let infos: Vec<RuleInfo<'_>> =
        changes.iter().map(|c| RuleInfo { id: &c.rule_id, name: &c.rule_name, severity: &c.severity }).collect();
    let hits: Vec<Hit> =
        changes.iter().enumerate().map(|(i, c)| Hit { row: c.row, rule: i, reason: c.reason.clone() }).collect();
    let findings =
        build_findings_at(label, &chunk.rows, &hits, &infos, chunk.process.as_deref(), |row| chunk.event_index(row));
    let mut columns: Vec<ArrayRef> = vec![Arc::new(
        changes.iter().map(|c| Some(if c.added { "added" } else { "removed" })).collect::<StringArray>(),
    )];
    columns.extend(findings.columns().iter().cloned());
    columns.push(Arc::new(changes.iter().map(|c| Some(c.other_side.as_str())).collect::<StringArray>()));
    RecordBatch::try_new(changes_schema(), columns).expect("change columns match the schema")
}

/// A sink that keeps every change batch.
#[derive(Debug, Default)]
pub struct CollectChanges {
    /// The batches received.
    pub batches: Vec<RecordBatch>,
}

impl ChangeSink for CollectChanges {
    fn changes(&mut self, batch: &RecordBatch) -> Result<()> {
        self.batches.push(batch.clone());
        Ok(())
    }
}
