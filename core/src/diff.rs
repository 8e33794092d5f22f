//! Rule regression: replay captures through a baseline and a candidate rule
//! set in one pass and report which findings a change adds and removes, with
//! the reason each side fires or does not.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt64Type};

use crate::capture::{Capture, EventBatch};
use crate::error::{Error, Result};
use crate::findings::{build_findings, findings_projection, findings_schema, Hit, RuleInfo};
use crate::replay::{ReplayOptions, Replayer};
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
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.build())
            .map_err(|e| Error::capture(path, format!("not a readable findings Parquet file: {e}")))?;
        let mut saved = SavedFindings { path: path.to_owned(), by_capture: HashMap::new() };
        for batch in reader {
            let batch = batch.map_err(|e| Error::capture(path, format!("cannot decode findings: {e}")))?;
            let text = |name: &str| -> Result<ArrayRef> {
                let a = batch
                    .column_by_name(name)
                    .ok_or_else(|| Error::capture(path, format!("findings file lacks column `{name}`")))?;
                arrow::compute::cast(a, &DataType::Utf8)
                    .map_err(|e| Error::capture(path, format!("column `{name}`: {e}")))
            };
            let (capture, rule_id, rule_name, severity, reason) =
                (text("capture")?, text("rule_id")?, text("rule_name")?, text("severity")?, text("reason")?);
            let index = batch
                .column_by_name("event_index")
                .ok_or_else(|| Error::capture(path, "findings file lacks column `event_index`"))?;
            let index = arrow::compute::cast(index, &DataType::UInt64)
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
}

impl DiffSummary {
    /// Whether anything was added or removed.
    pub fn changed(&self) -> bool {
        self.rules.iter().any(|r| r.added > 0 || r.removed > 0) || !self.unmatched_saved_captures.is_empty()
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
pub fn diff<P: AsRef<Path>>(
    baseline: &Baseline,
    candidate: &RuleSet,
    captures: &[P],
    options: &ReplayOptions,
    sink: &mut dyn ChangeSink,
) -> Result<DiffSummary> {
    let cand = Replayer::new(candidate.clone(), options.clone());
    let base = match baseline {
        Baseline::Rules(r) => Some(Replayer::new(r.clone(), options.clone())),
        Baseline::Saved(_) => None,
    };
    let mut projection = candidate.projection().union(findings_projection());
    if let Baseline::Rules(r) = baseline {
        projection = projection.union(r.projection());
    }
    let mut summary = DiffSummary::default();
    let mut counts: BTreeMap<String, RuleDiff> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut note = |id: &str, name: &str, in_base: bool, in_cand: bool| {
        let e = counts.entry(id.to_string()).or_insert_with(|| {
            order.push(id.to_string());
            RuleDiff { rule_id: id.to_string(), rule_name: name.to_string(), ..Default::default() }
        });
        e.in_baseline |= in_base;
        e.in_candidate |= in_cand;
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
    let find = |set: &RuleSet, id: &str| -> Option<Rule> { set.rules().iter().find(|r| r.id == id).cloned() };
    let mut seen_captures = Vec::new();
    for path in captures {
        let path = path.as_ref();
        let label = path.display().to_string();
        seen_captures.push(label.clone());
        let capture = Capture::open(path)?;
        let mut events = 0u64;
        for batch in capture.batches(projection, options.batch_size)? {
            let batch = batch?;
            events += batch.len() as u64;
            let (cand_hits, _) = cand.evaluate_batch(&batch);
            let cand_rules = cand.rules().rules();
            let mut cand_map: BTreeMap<(usize, &str), &Hit> = BTreeMap::new();
            for h in &cand_hits {
                cand_map.insert((h.row, cand_rules[h.rule].id.as_str()), h);
            }
            let base_hits: Vec<(usize, SavedFinding)> = match (&base, baseline) {
                (Some(b), _) => {
                    let rules = b.rules().rules();
                    b.evaluate_batch(&batch)
                        .0
                        .into_iter()
                        .map(|h| {
                            let r = &rules[h.rule];
                            (
                                h.row,
                                SavedFinding {
                                    rule_id: r.id.clone(),
                                    rule_name: r.name.clone(),
                                    severity: r.severity.clone(),
                                    reason: h.reason,
                                },
                            )
                        })
                        .collect()
                }
                (None, Baseline::Saved(saved)) => {
                    let lo = batch.first_index();
                    let hi = lo + batch.len() as u64;
                    saved
                        .by_capture
                        .get(&label)
                        .map(|m| {
                            m.range(lo..hi)
                                .flat_map(|(idx, fs)| fs.iter().map(move |f| ((idx - lo) as usize, f.clone())))
                                .collect()
                        })
                        .unwrap_or_default()
                }
                (None, Baseline::Rules(_)) => unreachable!("a rules baseline always has a replayer"),
            };
            let mut changes = Vec::new();
            let mut base_keys = std::collections::HashSet::new();
            for (row, f) in &base_hits {
                base_keys.insert((*row, f.rule_id.as_str()));
                let entry = counts.get_mut(&f.rule_id).expect("noted above");
                if cand_map.contains_key(&(*row, f.rule_id.as_str())) {
                    entry.unchanged += 1;
                    continue;
                }
                entry.removed += 1;
                let other_side = match find(candidate, &f.rule_id) {
                    Some(r) => r.why_not(&batch, *row),
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
            for h in &cand_hits {
                let r = &cand_rules[h.rule];
                if base_keys.contains(&(h.row, r.id.as_str())) {
                    continue;
                }
                counts.get_mut(&r.id).expect("noted above").added += 1;
                let other_side = match baseline {
                    Baseline::Rules(set) => match find(set, &r.id) {
                        Some(b) => b.why_not(&batch, h.row),
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
                continue;
            }
            changes.sort_by(|a, b| (a.row, &a.rule_id, a.added).cmp(&(b.row, &b.rule_id, b.added)));
            sink.changes(&change_batch(&label, &batch, &changes))?;
        }
        summary.events += events;
        summary.captures.push((path.to_owned(), events));
    }
    if let Baseline::Saved(saved) = baseline {
        summary.unmatched_saved_captures =
            saved.captures().into_iter().filter(|c| !seen_captures.iter().any(|s| s == c)).map(String::from).collect();
    }
    summary.rules = order.into_iter().map(|id| counts.remove(&id).expect("noted")).collect();
    Ok(summary)
}

fn change_batch(label: &str, batch: &EventBatch, changes: &[Change]) -> RecordBatch {
    let infos: Vec<RuleInfo<'_>> =
        changes.iter().map(|c| RuleInfo { id: &c.rule_id, name: &c.rule_name, severity: &c.severity }).collect();
    let hits: Vec<Hit> =
        changes.iter().enumerate().map(|(i, c)| Hit { row: c.row, rule: i, reason: c.reason.clone() }).collect();
    let findings = build_findings(label, batch, &hits, &infos);
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
