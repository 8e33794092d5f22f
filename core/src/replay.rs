//! The replay engine: captures in, findings out, through a [`FindingSink`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::TimestampNanosecondType;

use crate::capture::{Capture, Column, EventBatch, Projection, DEFAULT_BATCH_SIZE};
use crate::error::{Error, Result};
use crate::findings::{build_findings_at, findings_projection, Hit, RuleInfo};
use crate::rules::RuleSet;

/// Receives findings as the replay produces them, one batch per event batch
/// that had any, in capture order. The CLI printers, the Python module and the
/// tests each implement it.
pub trait FindingSink {
    /// Findings of one event batch (never empty), schema [`crate::findings::findings_schema`].
    fn findings(&mut self, batch: &RecordBatch) -> Result<()>;

    /// Events replayed so far, and in all when known (for a progress display).
    fn progress(&mut self, _events_done: u64, _events_total: Option<u64>) {}
}

/// Collects every finding batch in memory.
#[derive(Debug, Default)]
pub struct CollectSink {
    /// The batches received.
    pub batches: Vec<RecordBatch>,
}

impl FindingSink for CollectSink {
    fn findings(&mut self, batch: &RecordBatch) -> Result<()> {
        self.batches.push(batch.clone());
        Ok(())
    }
}

/// Replay settings.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Events per batch.
    pub batch_size: usize,
    /// Stop at the first event a rule cannot evaluate instead of counting it.
    pub strict: bool,
    /// How many example events to keep per rule for unevaluable reports.
    pub max_examples: usize,
    /// When some of several captures cannot be opened, or stop decoding part
    /// way, replay everything else and list the problems in
    /// [`ReplaySummary::unreadable`] instead of failing. A replay in which no
    /// capture opens still fails. Off by default; the CLI turns it on unless
    /// `--strict`.
    pub skip_unreadable: bool,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions { batch_size: DEFAULT_BATCH_SIZE, strict: false, max_examples: 5, skip_unreadable: false }
    }
}

/// A capture (or part of one) that could not be read, with
/// [`ReplayOptions::skip_unreadable`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// The capture file.
    pub capture: PathBuf,
    /// Events of it that were read and replayed before the problem (0 when it did not open).
    pub events_read: u64,
    /// The error, naming the file.
    pub message: String,
}

/// An event a rule could not evaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnevaluableExample {
    /// The capture file.
    pub capture: PathBuf,
    /// The event's index.
    pub event_index: u64,
    /// Why.
    pub message: String,
}

/// Per-rule results of a replay.
#[derive(Debug, Clone, Default)]
pub struct RuleSummary {
    /// Rule id.
    pub rule_id: String,
    /// Rule name.
    pub rule_name: String,
    /// Severity.
    pub severity: String,
    /// Number of findings.
    pub findings: u64,
    /// Events the rule could not evaluate.
    pub unevaluable: u64,
    /// The first few of them.
    pub examples: Vec<UnevaluableExample>,
}

/// What a replay read and found.
#[derive(Debug, Clone, Default)]
pub struct ReplaySummary {
    /// Each capture with its number of events.
    pub captures: Vec<(PathBuf, u64)>,
    /// Events read in all.
    pub events: u64,
    /// Earliest and latest event time read (ns since the epoch, UTC).
    pub time_range: Option<(i64, i64)>,
    /// Per rule, in rule-set order.
    pub rules: Vec<RuleSummary>,
    /// Container ids with findings (sorted).
    pub containers: BTreeSet<String>,
    /// `(host, pid, comm)` of processes with findings (sorted).
    pub processes: BTreeSet<(String, u32, String)>,
    /// Captures that could not be read completely (see [`ReplayOptions::skip_unreadable`]).
    pub unreadable: Vec<Unreadable>,
}

impl ReplaySummary {
    /// Adds the results of a later part of the same replay (per-rule counts in
    /// the same rule order), keeping at most `max_examples` examples per rule.
    pub fn merge(&mut self, part: ReplaySummary, max_examples: usize) {
        self.events += part.events;
        self.time_range = match (self.time_range, part.time_range) {
            (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
            (x, None) | (None, x) => x,
        };
        for (mine, theirs) in self.rules.iter_mut().zip(part.rules) {
            mine.findings += theirs.findings;
            mine.unevaluable += theirs.unevaluable;
            let room = max_examples.saturating_sub(mine.examples.len());
            mine.examples.extend(theirs.examples.into_iter().take(room));
        }
        self.containers.extend(part.containers);
        self.processes.extend(part.processes);
        self.captures.extend(part.captures);
        self.unreadable.extend(part.unreadable);
    }

    /// Total findings.
    pub fn findings(&self) -> u64 {
        self.rules.iter().map(|r| r.findings).sum()
    }
    /// Total unevaluable events.
    pub fn unevaluable(&self) -> u64 {
        self.rules.iter().map(|r| r.unevaluable).sum()
    }
}

/// Replays captures through a rule set.
#[derive(Debug, Clone)]
pub struct Replayer {
    rules: RuleSet,
    options: ReplayOptions,
}

impl Replayer {
    /// A replayer for `rules`.
    pub fn new(rules: RuleSet, options: ReplayOptions) -> Self {
        Replayer { rules, options }
    }

    /// The rule set.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Evaluates every rule on one batch; returns the hits in (row, rule) order
    /// and the unevaluable rows per rule.
    pub fn evaluate_batch(&self, batch: &EventBatch) -> (Vec<Hit>, Vec<(usize, usize, String)>) {
        let mut hits = Vec::new();
        let mut bad = Vec::new();
        for (ri, rule) in self.rules.rules().iter().enumerate() {
            let verdict = rule.evaluate(batch);
            for row in verdict.fires.set_indices() {
                hits.push(Hit { row, rule: ri, reason: rule.why(batch, row) });
            }
            bad.extend(verdict.unevaluable.into_iter().map(|(row, message)| (ri, row, message)));
        }
        hits.sort_by_key(|h| (h.row, h.rule));
        (hits, bad)
    }

    /// Replays the captures in order, sending findings to `sink`.
    ///
    /// Every capture is opened (and its footer checked) before any work, so a
    /// bad file is reported at once. Row groups of a Parquet capture are
    /// decoded and evaluated in parallel on rayon's pool, a wave of one row
    /// group per thread at a time; results are merged and sent in capture
    /// order, so output is deterministic and memory is bounded by threads x
    /// batch size.
    ///
    /// A capture that cannot be opened or decoded fails the replay, unless
    /// [`ReplayOptions::skip_unreadable`] is set: then the rest is replayed
    /// (every event decoded before the problem included) and the problem is
    /// listed in [`ReplaySummary::unreadable`].
    pub fn replay<P: AsRef<Path>>(&self, captures: &[P], sink: &mut dyn FindingSink) -> Result<ReplaySummary> {
        let mut summary = self.new_summary();
        let skip = self.options.skip_unreadable;
        let mut opened: Vec<Capture> = Vec::new();
        let mut first_error = None;
        for p in captures {
            match Capture::open(p.as_ref()) {
                Ok(c) => opened.push(c),
                Err(e) if skip => {
                    summary.unreadable.push(Unreadable {
                        capture: p.as_ref().to_owned(),
                        events_read: 0,
                        message: e.to_string(),
                    });
                    first_error.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        if let (true, Some(e)) = (opened.is_empty(), first_error) {
            return Err(e);
        }
        let total: Option<u64> = opened.iter().map(Capture::num_rows).sum();
        let threads = rayon::current_num_threads().max(1);
        sink.progress(0, total);
        for capture in &opened {
            let path = capture.path();
            let before = summary.events;
            let units: Vec<usize> = (0..capture.units()).collect();
            let mut failures = Vec::new();
            for wave in units.chunks(threads) {
                let outputs: Vec<Result<(ReplaySummary, CollectSink, Option<Error>)>> =
                    wave.par_iter().map(|&unit| self.replay_unit(capture, unit)).collect();
                for output in outputs {
                    let (part, collected, failure) = output?;
                    summary.merge(part, self.options.max_examples);
                    for b in &collected.batches {
                        sink.findings(b)?;
                    }
                    failures.extend(failure);
                    sink.progress(summary.events, total);
                }
            }
            let events_read = summary.events - before;
            summary.captures.push((path.to_owned(), events_read));
            if let Some(first) = failures.first() {
                let more = match failures.len() {
                    1 => String::new(),
                    n => format!(" (and {} more row groups could not be decoded)", n - 1),
                };
                summary.unreadable.push(Unreadable {
                    capture: path.to_owned(),
                    events_read,
                    message: format!("{first}{more}"),
                });
            }
        }
        Ok(summary)
    }

    /// The decode floor for benchmarks: reads and normalizes exactly the
    /// columns [`Replayer::replay`] decodes for every event (for Parquet, what
    /// the rules read plus `time` and `kind`; the columns only findings need
    /// are read for the rows that fire), with the same parallelism and batch
    /// size, and does nothing else. Returns the number of events.
    pub fn decode_only<P: AsRef<Path>>(&self, captures: &[P]) -> Result<u64> {
        let threads = rayon::current_num_threads().max(1);
        let mut events = 0;
        for path in captures {
            let capture = Capture::open(path.as_ref())?;
            let projection = self.unit_projection(&capture);
            let units: Vec<usize> = (0..capture.units()).collect();
            for wave in units.chunks(threads) {
                let counts: Vec<Result<u64>> = wave
                    .par_iter()
                    .map(|&unit| {
                        let mut n = 0;
                        for batch in capture.unit_batches(unit, projection, self.options.batch_size)? {
                            n += batch?.len() as u64;
                        }
                        Ok(n)
                    })
                    .collect();
                for c in counts {
                    events += c?;
                }
            }
        }
        Ok(events)
    }

    /// The capture columns [`Replayer::replay_batch`] needs: what the rules
    /// read plus what findings copy from the event.
    pub fn projection(&self) -> Projection {
        self.rules.projection().union(findings_projection())
    }

    /// An empty summary for this replayer's rules, to fill with [`Replayer::replay_batch`].
    pub fn new_summary(&self) -> ReplaySummary {
        ReplaySummary {
            rules: self
                .rules
                .rules()
                .iter()
                .map(|r| RuleSummary {
                    rule_id: r.id.clone(),
                    rule_name: r.name.clone(),
                    severity: r.severity.clone(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    /// Columns decoded for every event of a capture whose rows can be read
    /// selectively (Parquet): what the rules read, plus `time` (the summary's
    /// time range) and `kind`. The other columns of [`Replayer::projection`]
    /// are read afterwards, only for the rows that fired (late materialization).
    pub fn eval_projection(&self) -> Projection {
        let mut p = self.rules.projection();
        p.insert(Column::Time);
        p.insert(Column::Kind);
        p
    }

    /// What [`Replayer::replay`] decodes for every event of `capture`.
    fn unit_projection(&self, capture: &Capture) -> Projection {
        if capture.reads_rows_selectively() {
            self.eval_projection()
        } else {
            self.projection()
        }
    }

    /// Replays one unit (row group) of a capture into a partial summary and
    /// its finding batches. With [`ReplayOptions::skip_unreadable`], a
    /// decoding error ends the unit and is returned beside what was decoded
    /// before it.
    fn replay_unit(&self, capture: &Capture, unit: usize) -> Result<(ReplaySummary, CollectSink, Option<Error>)> {
        let path = capture.path();
        let skip = self.options.skip_unreadable;
        let mut part = self.new_summary();
        let mut collected = CollectSink::default();
        let mut failure = None;
        let early = self.unit_projection(capture);
        let late = self.projection().difference(early);
        // The rows that fired, with the columns decoded so far; their event
        // indexes (increasing); the hits, by position among those rows.
        let mut fired: Vec<EventBatch> = Vec::new();
        let mut indexes: Vec<u64> = Vec::new();
        let mut hits: Vec<Hit> = Vec::new();
        match capture.unit_batches(unit, early, self.options.batch_size) {
            Ok(batches) => {
                for batch in batches {
                    let batch = match batch {
                        Ok(batch) => batch,
                        Err(e) if skip => {
                            failure = Some(e);
                            break;
                        }
                        Err(e) => return Err(e),
                    };
                    if late.is_empty() {
                        self.replay_batch(path, &batch, &mut part, &mut collected)?;
                        continue;
                    }
                    part.events += batch.len() as u64;
                    update_time_range(&mut part.time_range, &batch);
                    let (batch_hits, bad) = self.evaluate_batch(&batch);
                    self.count_unevaluable(path, &batch, bad, &mut part)?;
                    if batch_hits.is_empty() {
                        continue;
                    }
                    let mut rows: Vec<u32> = batch_hits.iter().map(|h| h.row as u32).collect();
                    rows.dedup();
                    let base = indexes.len();
                    for h in batch_hits {
                        let at = rows.binary_search(&(h.row as u32)).expect("every hit's row is among the rows");
                        hits.push(Hit { row: base + at, ..h });
                    }
                    indexes.extend(rows.iter().map(|&r| batch.first_index() + u64::from(r)));
                    fired.push(batch.take(&rows));
                }
            }
            Err(e) if skip => failure = Some(e),
            Err(e) => return Err(e),
        }
        if hits.is_empty() {
            return Ok((part, collected, failure));
        }
        let unit_start: u64 = capture.unit_rows().map_or(0, |r| r[..unit].iter().sum());
        let offsets: Vec<u64> = indexes.iter().map(|i| i - unit_start).collect();
        match capture.read_unit_rows(unit, late, &offsets) {
            Ok(extra) => {
                let gathered = EventBatch::concat(&fired).with_columns(extra);
                self.emit(path, &gathered, &hits, |row| indexes[row], &mut part, &mut collected)?;
            }
            // The findings of this row group are lost with it; the problem is reported.
            Err(e) if skip => {
                failure.get_or_insert(e);
            }
            Err(e) => return Err(e),
        }
        Ok((part, collected, failure))
    }

    /// Replays one batch of events from `capture` (which labels its findings
    /// and errors): evaluates every rule, adds to `summary` (events, time
    /// range, findings, unevaluable events; not `captures`) and sends the
    /// findings, if any, to `sink`. [`Replayer::replay`] is this over every
    /// batch of every capture; call it directly for events that do not come
    /// from a capture file. The batch must carry [`Replayer::projection`].
    pub fn replay_batch(
        &self,
        capture: &Path,
        batch: &EventBatch,
        summary: &mut ReplaySummary,
        sink: &mut dyn FindingSink,
    ) -> Result<()> {
        summary.events += batch.len() as u64;
        update_time_range(&mut summary.time_range, batch);
        let (hits, bad) = self.evaluate_batch(batch);
        self.count_unevaluable(capture, batch, bad, summary)?;
        if hits.is_empty() {
            return Ok(());
        }
        let first = batch.first_index();
        self.emit(capture, batch, &hits, |row| first + row as u64, summary, sink)
    }

    /// Counts (or, with `strict`, fails on) the events a rule could not evaluate.
    fn count_unevaluable(
        &self,
        capture: &Path,
        batch: &EventBatch,
        bad: Vec<(usize, usize, String)>,
        summary: &mut ReplaySummary,
    ) -> Result<()> {
        for (ri, row, message) in bad {
            let event_index = batch.first_index() + row as u64;
            let rs = &mut summary.rules[ri];
            if self.options.strict {
                return Err(Error::Unevaluable {
                    capture: capture.to_owned(),
                    event_index,
                    rule_id: rs.rule_id.clone(),
                    message,
                });
            }
            rs.unevaluable += 1;
            if rs.examples.len() < self.options.max_examples {
                rs.examples.push(UnevaluableExample { capture: capture.to_owned(), event_index, message });
            }
        }
        Ok(())
    }

    /// Adds `hits` (rows of `batch`, which carries [`Replayer::projection`]) to
    /// the summary and sends them to `sink` as one finding batch.
    fn emit(
        &self,
        capture: &Path,
        batch: &EventBatch,
        hits: &[Hit],
        event_index: impl Fn(usize) -> u64,
        summary: &mut ReplaySummary,
        sink: &mut dyn FindingSink,
    ) -> Result<()> {
        for h in hits {
            summary.rules[h.rule].findings += 1;
            if let Some(c) = batch.str_value(Column::ContainerId, h.row) {
                summary.containers.insert(c.to_string());
            }
            let pid = batch.expect(Column::Pid).as_primitive::<arrow::datatypes::UInt32Type>().value(h.row);
            summary.processes.insert((
                batch.str_value(Column::Host, h.row).unwrap_or("").to_string(),
                pid,
                batch.str_value(Column::Comm, h.row).unwrap_or("").to_string(),
            ));
        }
        let infos: Vec<RuleInfo<'_>> =
            self.rules.rules().iter().map(|r| RuleInfo { id: &r.id, name: &r.name, severity: &r.severity }).collect();
        let findings = build_findings_at(&capture.display().to_string(), batch, hits, &infos, event_index);
        sink.findings(&findings)
    }
}

fn update_time_range(range: &mut Option<(i64, i64)>, batch: &EventBatch) {
    let Some(t) = batch.column(Column::Time) else { return };
    let t = t.as_primitive::<TimestampNanosecondType>();
    let (Some(lo), Some(hi)) = (arrow::compute::min(t), arrow::compute::max(t)) else { return };
    *range = Some(match *range {
        None => (lo, hi),
        Some((a, b)) => (a.min(lo), b.max(hi)),
    });
}
