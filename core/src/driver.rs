//! The driver: the one loop over captures.
//!
//! [`Driver::run`] opens the captures, decodes their row groups in parallel
//! on rayon's pool (a wave of one row group per thread at a time), evaluates
//! the compiled rules on every batch, counts the events a rule cannot
//! evaluate (or fails on the first under [`ReplayOptions::strict`]), skips
//! unreadable captures and segments under [`ReplayOptions::skip_unreadable`],
//! and reads the columns needed only for selected rows after the fact (late
//! materialization). What to do with the rows is up to a [`Consumer`]: it
//! names the columns it needs and which rows to keep, turns each [`Chunk`]
//! into a part on the driver's threads, and a [`PartSink`] receives the
//! parts in capture order. `replay`, `diff`, `test`, `gaps`, `convert`,
//! `inspect` and the Python views and hunts are all consumers (ripgrep's
//! searcher driving a sink is the model).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::TimestampNanosecondType;

use crate::capture::{Capture, Column, EventBatch, Projection};
use crate::eql::{EqlSequence, SequenceMatcher, SequenceOutput, StageEvent};
use crate::error::{Error, Result};
use crate::findings::{build_findings_at, findings_projection, Hit, RuleInfo};
use crate::process::{ProcessContext, ProcessContextBuilder};
use crate::replay::{ReplayOptions, ReplaySummary, RuleSummary, UnevaluableExample, Unreadable};
use crate::rules::Rule;

/// Some rows of one capture, as the driver hands them to a [`Consumer`]: the
/// rows a rule fired on and the rows the consumer asked to keep (all rows of
/// a batch with [`Consumer::keep_all`]), in event order.
#[derive(Debug)]
pub struct Chunk<'a> {
    /// The capture they come from.
    pub capture: &'a Path,
    /// The rows, with [`Consumer::columns`], [`Consumer::scan_columns`] and
    /// every column the rules read.
    pub rows: EventBatch,
    /// Event index of each row, when the rows are not consecutive events.
    indexes: Option<Vec<u64>>,
    /// What fired, in (row, rule) order; `row` is a row of [`Chunk::rows`],
    /// `rule` a position in the driver's rule list.
    pub hits: Vec<Hit>,
    /// Events a rule could not evaluate: (rule position, event index, why),
    /// by event then rule. They need not be among the rows.
    pub unevaluable: Vec<(usize, u64, String)>,
    /// The processes of the capture, when a rule or the consumer needs them
    /// (see [`Consumer::needs_process`]); look rows up by [`Chunk::event_index`].
    pub process: Option<Arc<ProcessContext>>,
}

impl Chunk<'_> {
    /// The event index (position in the capture) of row `row` of [`Chunk::rows`].
    pub fn event_index(&self, row: usize) -> u64 {
        match &self.indexes {
            Some(ix) => ix[row],
            None => self.rows.first_index() + row as u64,
        }
    }

    /// The row of [`Chunk::rows`] holding event `event_index`, if kept.
    pub fn row_of(&self, event_index: u64) -> Option<usize> {
        match &self.indexes {
            Some(ix) => ix.binary_search(&event_index).ok(),
            None => {
                let first = self.rows.first_index();
                (event_index >= first && event_index < first + self.rows.len() as u64)
                    .then(|| (event_index - first) as usize)
            }
        }
    }
}

/// What a command does with the rows the driver reads: the half that runs on
/// the driver's threads (so it is `Sync`), one unit of a capture at a time.
pub trait Consumer: Sync {
    /// What [`Consumer::part`] makes of a chunk, for the [`PartSink`].
    type Part: Send;

    /// Columns needed on the rows handed over (for Parquet captures, read
    /// only for those rows when they are few).
    fn columns(&self) -> Projection;

    /// Hand over every event (convert, views, hunts, inspect), one chunk per
    /// decoded batch, instead of the rows chosen by rules and [`Consumer::keep`].
    fn keep_all(&self) -> bool {
        false
    }

    /// Columns [`Consumer::keep`] looks at: decoded for every event.
    fn scan_columns(&self) -> Projection {
        Projection::default()
    }

    /// Rows of `batch` (which carries [`Consumer::scan_columns`] and what the
    /// rules read) to hand over besides those where a rule fired: pushed onto
    /// `rows` in any order.
    fn keep(&self, _capture: &Path, _batch: &EventBatch, _rows: &mut Vec<u32>) {}

    /// Whether the consumer reads the processes of a capture ([`Chunk::process`]):
    /// then the driver rebuilds them (a pass over the capture's lifecycle
    /// columns) before handing over its rows, as it does when a rule reads
    /// process-model fields.
    fn needs_process(&self) -> bool {
        false
    }

    /// Whether the consumer makes findings, whose triage columns the
    /// processes fill (unless [`ReplayOptions::context`] is off): then the
    /// driver holds a capture's parts until its rows are read and, if
    /// anything fired there, rebuilds the capture's processes and hands each
    /// part to [`Consumer::add_context`] before the sink gets it.
    fn wants_context(&self) -> bool {
        false
    }

    /// Fills a part's triage context from the capture's processes (see
    /// [`Consumer::wants_context`]).
    fn add_context(&self, part: Self::Part, _process: &ProcessContext) -> Result<Self::Part> {
        Ok(part)
    }

    /// Turns a chunk into a part (on one of the driver's threads).
    fn part(&self, chunk: Chunk<'_>) -> Result<Self::Part>;
}

/// The in-order half of a command: receives the parts in capture order.
pub trait PartSink<P> {
    /// One part, in capture order.
    fn part(&mut self, part: P) -> Result<()>;

    /// Events read so far, and in all when known (for a progress display).
    fn progress(&mut self, _events_done: u64, _events_total: Option<u64>) {}
}

impl<P, F: FnMut(P) -> Result<()>> PartSink<P> for F {
    fn part(&mut self, part: P) -> Result<()> {
        self(part)
    }
}

/// Runs compiled rules over captures and feeds a [`Consumer`].
#[derive(Debug, Clone, Copy)]
pub struct Driver<'r> {
    rules: &'r [Rule],
    options: &'r ReplayOptions,
}

/// What one unit produced besides its parts.
type UnitResult = Result<(ReplaySummary, Option<Error>)>;

impl<'r> Driver<'r> {
    /// A driver evaluating `rules` (none for commands that only read events).
    pub fn new(rules: &'r [Rule], options: &'r ReplayOptions) -> Self {
        Driver { rules, options }
    }

    /// A summary with one empty entry per rule.
    pub fn new_summary(&self) -> ReplaySummary {
        ReplaySummary {
            rules: self
                .rules
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

    /// What the rules read.
    fn rules_projection(&self) -> Projection {
        self.rules.iter().fold(Projection::default(), |p, r| p.union(r.projection()))
    }

    /// Reads `captures` in order through `consumer` into `sink`. Returns what
    /// was read: events, time range, captures, unreadable captures and, per
    /// rule, the unevaluable events (findings, containers and processes are
    /// left to the consumer).
    ///
    /// Every capture is opened (and its footer checked) before any work, so a
    /// bad file is reported at once. A capture that cannot be opened or
    /// decoded fails the run unless [`ReplayOptions::skip_unreadable`] is set:
    /// then the rest is read (every event decoded before the problem
    /// included), the problem is listed in [`ReplaySummary::unreadable`], and
    /// only a run in which no capture opens fails.
    pub fn run<P, C>(&self, captures: &[P], consumer: &C, sink: &mut dyn PartSink<C::Part>) -> Result<ReplaySummary>
    where
        P: AsRef<Path>,
        C: Consumer,
    {
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
        self.run_opened(&opened, consumer, sink, &mut summary)?;
        Ok(summary)
    }

    /// [`Driver::run`] on captures already opened, adding to `summary`.
    fn run_opened<C: Consumer>(
        &self,
        opened: &[Capture],
        consumer: &C,
        sink: &mut dyn PartSink<C::Part>,
        summary: &mut ReplaySummary,
    ) -> Result<()> {
        let total: Option<u64> = opened.iter().map(Capture::num_rows).sum();
        let threads = rayon::current_num_threads().max(1);
        sink.progress(0, total);
        let needs_process = consumer.needs_process() || self.rules.iter().any(Rule::needs_process);
        let needs_starts = !needs_process && self.rules.iter().any(Rule::needs_container_starts);
        // The findings' triage context: the processes are rebuilt only for a
        // capture where something fired, after its rows are read; its parts
        // wait for them (they hold only the rows that fired).
        let context_later =
            !needs_process && self.options.context && consumer.wants_context() && !self.rules.is_empty();
        for capture in opened {
            let path = capture.path();
            let before = summary.events;
            let hits = std::sync::atomic::AtomicU64::new(0);
            let mut held: Vec<C::Part> = Vec::new();
            let mut out = |p: C::Part, sink: &mut dyn PartSink<C::Part>| {
                if context_later {
                    held.push(p);
                    Ok(())
                } else {
                    sink.part(p)
                }
            };
            let process = if needs_process {
                Some(Arc::new(self.process_context(capture)?))
            } else if needs_starts {
                Some(Arc::new(self.container_starts(capture)?))
            } else {
                None
            };
            let process = process.as_ref();
            let units: Vec<usize> = (0..capture.units()).collect();
            let mut failures = Vec::new();
            for wave in units.chunks(threads) {
                if let [unit] = wave {
                    // One unit (an NDJSON capture, the last of a row-group wave):
                    // parts go to the sink as they come instead of piling up.
                    let (part, failure) =
                        self.unit(capture, process, *unit, consumer, &hits, &mut |p| out(p, &mut *sink))?;
                    summary.merge(part, self.options.max_examples);
                    failures.extend(failure);
                    sink.progress(summary.events, total);
                    continue;
                }
                let outputs: Vec<(UnitResult, Vec<C::Part>)> = wave
                    .par_iter()
                    .map(|&unit| {
                        let mut parts = Vec::new();
                        let r = self.unit(capture, process, unit, consumer, &hits, &mut |p| {
                            parts.push(p);
                            Ok(())
                        });
                        (r, parts)
                    })
                    .collect();
                for (output, parts) in outputs {
                    let (part, failure) = output?;
                    summary.merge(part, self.options.max_examples);
                    for p in parts {
                        out(p, &mut *sink)?;
                    }
                    failures.extend(failure);
                    sink.progress(summary.events, total);
                }
            }
            if context_later {
                let ctx = match hits.load(std::sync::atomic::Ordering::Relaxed) {
                    0 => None,
                    _ => Some(self.process_context(capture)?),
                };
                for p in held {
                    sink.part(match &ctx {
                        Some(ctx) => consumer.add_context(p, ctx)?,
                        None => p,
                    })?;
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
        Ok(())
    }

    /// The processes of `capture`: a pass in capture order over its
    /// lifecycle columns ([`ProcessContext::projection`]), through this
    /// driver's own reading (same parallel decoding, same handling of
    /// unreadable row groups), feeding the process table.
    pub fn process_context(&self, capture: &Capture) -> Result<ProcessContext> {
        self.build_context(capture, ProcessContextBuilder::default(), ProcessContext::projection())
    }

    /// Only when each container of `capture` started
    /// ([`ProcessContext::container_state`]): a light pass over `kind`,
    /// `container_id` and `comm`; the context has no processes.
    pub fn container_starts(&self, capture: &Capture) -> Result<ProcessContext> {
        self.build_context(capture, ProcessContextBuilder::starts_only(), ProcessContext::starts_projection())
    }

    fn build_context(
        &self,
        capture: &Capture,
        mut builder: ProcessContextBuilder,
        columns: Projection,
    ) -> Result<ProcessContext> {
        let reader = Driver::new(&[], self.options);
        let consumer = EachBatch { columns, map: |_: &Path, b: EventBatch| Ok(b), process: false };
        let mut sink = |b: EventBatch| {
            builder.push_batch(&b);
            Ok(())
        };
        reader.run_opened(std::slice::from_ref(capture), &consumer, &mut sink, &mut reader.new_summary())?;
        Ok(builder.finish())
    }

    /// Columns decoded for every event of `capture`, and those read afterwards
    /// for the selected rows only.
    fn projections<C: Consumer>(&self, capture: &Capture, consumer: &C) -> (Projection, Projection) {
        let mut early = self.rules_projection().union(consumer.scan_columns());
        early.insert(Column::Time);
        early.insert(Column::Kind);
        let wanted = consumer.columns();
        if consumer.keep_all() || !capture.reads_rows_selectively() {
            (early.union(wanted), Projection::default())
        } else {
            (early, wanted.difference(early))
        }
    }

    /// The decode floor for benchmarks: decodes exactly the columns a run of
    /// `consumer` decodes for every event, with the same parallelism and
    /// batch size, and does nothing else. Returns the number of events.
    pub fn decode_only<P: AsRef<Path>, C: Consumer>(&self, captures: &[P], consumer: &C) -> Result<u64> {
        let threads = rayon::current_num_threads().max(1);
        let mut events = 0;
        for path in captures {
            let capture = Capture::open(path.as_ref())?;
            let (early, _) = self.projections(&capture, consumer);
            let units: Vec<usize> = (0..capture.units()).collect();
            for wave in units.chunks(threads) {
                let counts: Vec<Result<u64>> = wave
                    .par_iter()
                    .map(|&unit| {
                        let mut n = 0;
                        for batch in capture.unit_batches(unit, early, self.options.batch_size)? {
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

    /// Evaluates every rule on one batch; returns the hits in (row, rule)
    /// order and the unevaluable rows as (rule, row, why), by rule.
    pub fn evaluate(&self, batch: &EventBatch) -> (Vec<Hit>, Vec<(usize, usize, String)>) {
        let mut hits = Vec::new();
        let mut bad = Vec::new();
        for (ri, rule) in self.rules.iter().enumerate() {
            let verdict = rule.evaluate(batch);
            for row in verdict.fires.set_indices() {
                hits.push(Hit { row, rule: ri, reason: rule.why(batch, row) });
            }
            bad.extend(verdict.unevaluable.into_iter().map(|(row, message)| (ri, row, message)));
        }
        hits.sort_by_key(|h| (h.row, h.rule));
        (hits, bad)
    }

    /// Counts (or, with `strict`, fails on) the events a rule could not
    /// evaluate; returns them as (rule, event index, why), by event then rule.
    fn count_unevaluable(
        &self,
        capture: &Path,
        batch: &EventBatch,
        bad: Vec<(usize, usize, String)>,
        summary: &mut ReplaySummary,
    ) -> Result<Vec<(usize, u64, String)>> {
        let mut out = Vec::with_capacity(bad.len());
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
                rs.examples.push(UnevaluableExample {
                    capture: capture.to_owned(),
                    event_index,
                    message: message.clone(),
                });
            }
            out.push((ri, event_index, message));
        }
        out.sort_by_key(|(ri, ix, _)| (*ix, *ri));
        Ok(out)
    }

    /// One batch of events that did not come from a capture file (Arrow data
    /// handed over by Python, ...), evaluated as [`Driver::run`] evaluates a
    /// capture's: its partial summary and the whole batch as one chunk.
    pub fn batch_chunk<'a>(&self, capture: &'a Path, batch: &EventBatch) -> Result<(ReplaySummary, Chunk<'a>)> {
        let mut part = self.new_summary();
        part.events += batch.len() as u64;
        update_time_range(&mut part.time_range, batch);
        let (hits, bad) = self.evaluate(batch);
        let unevaluable = self.count_unevaluable(capture, batch, bad, &mut part)?;
        let process = batch.process().cloned();
        Ok((part, Chunk { capture, rows: batch.clone(), indexes: None, hits, unevaluable, process }))
    }

    /// Reads one unit (row group) of a capture, sending its parts to `emit`;
    /// returns a partial summary. With [`ReplayOptions::skip_unreadable`], a
    /// decoding error ends the unit and is returned beside what was decoded
    /// before it.
    fn unit<C: Consumer>(
        &self,
        capture: &Capture,
        process: Option<&Arc<ProcessContext>>,
        unit: usize,
        consumer: &C,
        fired: &std::sync::atomic::AtomicU64,
        emit: &mut dyn FnMut(C::Part) -> Result<()>,
    ) -> UnitResult {
        let path = capture.path();
        let skip = self.options.skip_unreadable;
        let keep_all = consumer.keep_all();
        let mut part = self.new_summary();
        let mut failure = None;
        let (early, late) = self.projections(capture, consumer);
        // With late columns: the kept rows with the columns decoded so far,
        // their event indexes (increasing), the hits by position among those
        // rows, and the unevaluable events, sent as one chunk at the end.
        let mut kept: Vec<EventBatch> = Vec::new();
        let mut indexes: Vec<u64> = Vec::new();
        let mut hits: Vec<Hit> = Vec::new();
        let mut unevaluable = Vec::new();
        let mut extra = Vec::new();
        match capture.unit_batches(unit, early, self.options.batch_size) {
            Ok(batches) => {
                for batch in batches {
                    let batch = match batch {
                        Ok(batch) => batch.with_process(process.cloned()),
                        Err(e) if skip => {
                            failure = Some(e);
                            break;
                        }
                        Err(e) => return Err(e),
                    };
                    part.events += batch.len() as u64;
                    update_time_range(&mut part.time_range, &batch);
                    let (batch_hits, bad) =
                        if self.rules.is_empty() { Default::default() } else { self.evaluate(&batch) };
                    fired.fetch_add(batch_hits.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    let bad = self.count_unevaluable(path, &batch, bad, &mut part)?;
                    if keep_all {
                        let chunk = Chunk {
                            capture: path,
                            rows: batch,
                            indexes: None,
                            hits: batch_hits,
                            unevaluable: bad,
                            process: process.cloned(),
                        };
                        emit(consumer.part(chunk)?)?;
                        continue;
                    }
                    extra.clear();
                    consumer.keep(path, &batch, &mut extra);
                    if batch_hits.is_empty() && extra.is_empty() && bad.is_empty() {
                        continue;
                    }
                    let mut rows: Vec<u32> = batch_hits.iter().map(|h| h.row as u32).collect();
                    rows.extend_from_slice(&extra);
                    rows.sort_unstable();
                    rows.dedup();
                    let at = |h: Hit, base: usize| {
                        let at = rows.binary_search(&(h.row as u32)).expect("every hit's row is among the rows");
                        Hit { row: base + at, ..h }
                    };
                    let first = batch.first_index();
                    if late.is_empty() {
                        let hits = batch_hits.into_iter().map(|h| at(h, 0)).collect();
                        let indexes = rows.iter().map(|&r| first + u64::from(r)).collect();
                        let rows = batch.take(&rows);
                        let chunk = Chunk {
                            capture: path,
                            rows,
                            indexes: Some(indexes),
                            hits,
                            unevaluable: bad,
                            process: process.cloned(),
                        };
                        emit(consumer.part(chunk)?)?;
                        continue;
                    }
                    let base = indexes.len();
                    hits.extend(batch_hits.into_iter().map(|h| at(h, base)));
                    unevaluable.extend(bad);
                    if !rows.is_empty() {
                        indexes.extend(rows.iter().map(|&r| first + u64::from(r)));
                        kept.push(batch.take(&rows));
                    }
                }
            }
            Err(e) if skip => failure = Some(e),
            Err(e) => return Err(e),
        }
        if indexes.is_empty() && unevaluable.is_empty() {
            return Ok((part, failure));
        }
        let rows = if indexes.is_empty() {
            EventBatch::concat(&kept)
        } else {
            let unit_start: u64 = capture.unit_rows().map_or(0, |r| r[..unit].iter().sum());
            let offsets: Vec<u64> = indexes.iter().map(|i| i - unit_start).collect();
            match capture.read_unit_rows(unit, late, &offsets) {
                Ok(columns) => EventBatch::concat(&kept).with_columns(columns),
                // The rows of this row group are lost with it; the problem is reported.
                Err(e) if skip => {
                    failure.get_or_insert(e);
                    return Ok((part, failure));
                }
                Err(e) => return Err(e),
            }
        };
        emit(consumer.part(Chunk {
            capture: path,
            rows,
            indexes: Some(indexes),
            hits,
            unevaluable,
            process: process.cloned(),
        })?)?;
        Ok((part, failure))
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

/// A consumer of every event, without rules: `map` turns each decoded batch
/// (with `columns`, plus `time` and `kind`) into a part on the driver's
/// threads. For commands that read events rather than findings (`convert`,
/// `inspect`, exports, the Python views and hunts); see [`read_events`].
#[derive(Debug, Clone, Copy)]
pub struct EachBatch<F> {
    /// The columns `map` needs.
    pub columns: Projection,
    /// What to make of a batch of one capture.
    pub map: F,
    /// Whether the batches carry the capture's processes ([`EventBatch::process`]).
    pub process: bool,
}

impl<T, F> Consumer for EachBatch<F>
where
    T: Send,
    F: Fn(&Path, EventBatch) -> Result<T> + Sync,
{
    type Part = T;

    fn columns(&self) -> Projection {
        self.columns
    }

    fn keep_all(&self) -> bool {
        true
    }

    fn needs_process(&self) -> bool {
        self.process
    }

    fn part(&self, chunk: Chunk<'_>) -> Result<T> {
        (self.map)(chunk.capture, chunk.rows)
    }
}

/// Reads every event of `captures` (the `columns` asked for, plus `time` and
/// `kind`) through the [`Driver`] without rules: `map` runs on the driver's
/// threads, `sink` receives its results in capture order. Returns what was
/// read (events, time range, captures, unreadable captures under
/// [`ReplayOptions::skip_unreadable`]).
pub fn read_events<P, T, F>(
    captures: &[P],
    columns: Projection,
    options: &ReplayOptions,
    map: F,
    sink: &mut dyn PartSink<T>,
) -> Result<ReplaySummary>
where
    P: AsRef<Path>,
    T: Send,
    F: Fn(&Path, EventBatch) -> Result<T> + Sync,
{
    Driver::new(&[], options).run(captures, &EachBatch { columns, map, process: false }, sink)
}

/// [`read_events`] with the capture's processes attached to every batch
/// ([`EventBatch::process`]) when `process` is set: for views and hunts that
/// show or test process-model fields.
pub fn read_events_with_process<P, T, F>(
    captures: &[P],
    columns: Projection,
    process: bool,
    options: &ReplayOptions,
    map: F,
    sink: &mut dyn PartSink<T>,
) -> Result<ReplaySummary>
where
    P: AsRef<Path>,
    T: Send,
    F: Fn(&Path, EventBatch) -> Result<T> + Sync,
{
    Driver::new(&[], options).run(captures, &EachBatch { columns, map, process }, sink)
}

/// What [`match_sequence`] found.
#[derive(Debug)]
pub struct SequenceMatches {
    /// The sequences, each event named by (capture position, event index)
    /// with the stage it matched, and the count of dropped pending sequences.
    pub output: SequenceOutput<(usize, u64)>,
    /// The captures by position: those that had events, in the order read.
    pub captures: Vec<PathBuf>,
    /// What was read.
    pub summary: ReplaySummary,
}

/// Default bound on the events the stages of one sequence may select in a
/// run (each kept in memory with its join keys until matching).
pub const DEFAULT_MAX_STAGE_EVENTS: usize = 4_000_000;

/// Matches an EQL sequence over `captures`, read together as one stream:
/// the [`Driver`] reads every event (in parallel, as for any rule) and
/// evaluates each stage's condition per batch on its threads
/// ([`crate::eql::EqlSequence::stage_events`]); only the events some stage
/// selected, with their timestamps and join keys, reach the in-order half,
/// which sorts them by (timestamp, capture position in `captures`, event
/// index; captures are numbered in the order they are read, segments of a
/// directory included) and runs the per-key state machines ([`SequenceMatcher`]) with at
/// most `max_pending` pending sequences.
///
/// Memory grows with the number of stage-matching events, not with the
/// captures; more than `max_stage_events` of them is an error naming the
/// capture where the bound was reached (narrow the stage conditions), so a
/// broad stage such as `[any where true]` cannot exhaust memory.
pub fn match_sequence<P: AsRef<Path>>(
    captures: &[P],
    sequence: &EqlSequence,
    max_pending: usize,
    max_stage_events: usize,
    options: &ReplayOptions,
) -> Result<SequenceMatches> {
    let mut events = Vec::new();
    // Parts come in capture order: number the captures as they come.
    let mut read: Vec<PathBuf> = Vec::new();
    let summary = read_events_with_process(
        captures,
        sequence.projection(),
        sequence.needs_process(),
        options,
        |path, batch| Ok((path.to_owned(), sequence.stage_events(&batch, 0))),
        &mut |(path, part): (PathBuf, Vec<StageEvent<(usize, u64)>>)| {
            if read.last() != Some(&path) {
                read.push(path);
            }
            let position = read.len() - 1;
            events.extend(part.into_iter().map(|e| StageEvent { id: (position, e.id.1), ..e }));
            if events.len() > max_stage_events {
                return Err(Error::capture(
                    &read[position],
                    format!(
                        "more than {max_stage_events} events match the sequence's stages (the bound was reached in this \
                         capture): narrow the stage conditions"
                    ),
                ));
            }
            Ok(())
        },
    )?;
    Ok(SequenceMatches { output: SequenceMatcher::run(sequence.spec(max_pending), events), captures: read, summary })
}

/// Finding rows for matched sequences ([`match_sequence`]): one row per
/// event of each sequence, in capture and event order, with the rule's
/// identity, the event's columns and the triage columns as for any finding.
/// The `reason` names the sequence, the stage and why the stage matched:
/// `sequence 0:2, stage 1 of 2: <the stage's reason>`, where `0:2` is the
/// capture position and event index of the sequence's first event (an
/// event in several sequences has one row per sequence). The events are
/// read again through the driver, only the rows of sequence events being
/// materialized.
pub fn sequence_findings(
    matches: &SequenceMatches,
    sequence: &EqlSequence,
    rule: &RuleInfo<'_>,
    options: &ReplayOptions,
    sink: &mut dyn PartSink<RecordBatch>,
) -> Result<()> {
    let stages = sequence.stages.iter().map(|s| s.runs as usize).sum::<usize>();
    let mut events: HashMap<&Path, EventsOfSequences> = HashMap::new();
    for seq in &matches.output.sequences {
        let Some(&((c, ix), _)) = seq.first() else { continue };
        let label = format!("{c}:{ix}");
        for (k, &((capture, index), stage)) in seq.iter().enumerate() {
            let path = matches.captures[capture].as_path();
            events.entry(path).or_default().entry(index).or_default().push((label.clone(), k + 1, stage));
        }
    }
    if events.is_empty() {
        return Ok(());
    }
    let consumer = SequenceEvents { sequence, rule, stages, events };
    Driver::new(&[], options).run(&matches.captures, &consumer, sink)?;
    Ok(())
}

/// Per event index of a capture: (sequence label, position in the
/// sequence, stage as written), one entry per sequence the event is in.
type EventsOfSequences = BTreeMap<u64, Vec<(String, usize, usize)>>;

/// The consumer of [`sequence_findings`]: keeps the rows of sequence events.
struct SequenceEvents<'a> {
    sequence: &'a EqlSequence,
    rule: &'a RuleInfo<'a>,
    /// Expanded stage count.
    stages: usize,
    /// Per capture, per event index: (sequence label, position in the sequence, stage as written).
    events: HashMap<&'a Path, EventsOfSequences>,
}

impl Consumer for SequenceEvents<'_> {
    type Part = RecordBatch;

    fn columns(&self) -> Projection {
        findings_projection().union(self.sequence.projection())
    }

    fn needs_process(&self) -> bool {
        self.sequence.needs_process()
    }

    fn wants_context(&self) -> bool {
        true
    }

    fn keep(&self, capture: &Path, batch: &EventBatch, rows: &mut Vec<u32>) {
        let Some(events) = self.events.get(capture) else { return };
        let first = batch.first_index();
        for &ix in events.range(first..first + batch.len() as u64).map(|(ix, _)| ix) {
            rows.push((ix - first) as u32);
        }
    }

    fn part(&self, chunk: Chunk<'_>) -> Result<RecordBatch> {
        let events = &self.events[chunk.capture];
        let batch = chunk.rows.clone().with_process(chunk.process.clone());
        let mut hits = Vec::new();
        for row in 0..batch.len() {
            for (label, k, stage) in events.get(&chunk.event_index(row)).into_iter().flatten() {
                let why = self.sequence.stages[*stage].query.explain(&batch, row);
                let reason = format!("sequence {label}, stage {k} of {}: {why}", self.stages);
                hits.push(Hit { row, rule: 0, reason });
            }
        }
        let label = chunk.capture.display().to_string();
        let info = [RuleInfo { id: self.rule.id, name: self.rule.name, severity: self.rule.severity }];
        Ok(build_findings_at(&label, &batch, &hits, &info, chunk.process.as_deref(), |row| chunk.event_index(row)))
    }
}
