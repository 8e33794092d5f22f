//! The driver: the one loop over captures.
//!
//! [`Driver::run`] opens the captures, decodes their row groups in parallel
//! (one row group per thread, the next taken as soon as a thread is free,
//! results handed on in capture order: `in_order`), evaluates
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

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use arrow_array::Array;

use crate::capture::{Capture, Column, EventBatch, Piece, Projection};
use crate::eql::{EqlSequence, JoinKind, StageEvent};
use crate::error::{Error, Result};
use crate::findings::Hit;
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
    /// [`Consumer::wants_context`]). The processes answer only for the
    /// events [`Consumer::context_events`] named.
    fn add_context(&self, part: Self::Part, _process: &ProcessContext) -> Result<Self::Part> {
        Ok(part)
    }

    /// Pushes onto `events` the event indexes whose links
    /// [`Consumer::add_context`] will ask the processes for (a part's
    /// findings): the driver rebuilds the processes only when there are
    /// some, and keeps links for those events only.
    fn context_events(&self, _part: &Self::Part, _events: &mut Vec<u64>) {}

    /// Turns a chunk into a part (on one of the driver's threads).
    fn part(&self, chunk: Chunk<'_>) -> Result<Self::Part>;

    /// Last work on a part once it is final (after [`Consumer::add_context`]
    /// when context is added), on the driver's threads when there are
    /// several, before the part goes to the sink in order: the replay
    /// renders its findings for the sink here. The default keeps the part.
    fn finish(&self, part: Self::Part) -> Result<Self::Part> {
        Ok(part)
    }
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

/// What the reading of each unit of a capture shares: the capture, its
/// processes (when needed) and the matched sequences' events in it.
type CaptureState<'a> = (&'a Capture, Option<&'a Arc<ProcessContext>>, Option<&'a BTreeMap<u64, Vec<StreamHit>>>);

/// What one unit produced besides its parts.
type UnitResult = Result<(ReplaySummary, Option<Error>)>;

/// Parts of whole batches a unit holds waiting to be emitted before its
/// thread waits for the sink to take them ([`in_order_streamed`]).
const HELD_BATCHES: usize = 1;

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
                    is_sequence: r.sequence().is_some(),
                    is_sample: r.sequence().is_some_and(|s| s.kind() == JoinKind::Sample),
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
        let sequences = self.match_sequences(&opened, &mut summary)?;
        self.run_opened(&opened, consumer, sink, &mut summary, &sequences)?;
        Ok(summary)
    }

    /// The half of the stream rules ([`Rule::needs_stream`]) that needs the
    /// whole stream: sequences
    /// ([`CompiledRule::sequence`](crate::engine::CompiledRule::sequence))
    /// and queries ending in pipes
    /// ([`CompiledRule::pipes`](crate::engine::CompiledRule::pipes)). One
    /// pass over `captures` (in parallel, as for any rule) evaluates every
    /// stage of every sequence rule, and every piped rule, per batch; only
    /// the events some stage or piped rule selected are kept, with their
    /// timestamps (and join keys). A sequence or sample rule's events go,
    /// in (timestamp, capture position, event index) order, through its
    /// matcher ([`EqlSequence::matcher`]: a sequence's per-key state
    /// machines, whose sequences, in the order they complete, are cut by its
    /// pipes; a sample's candidates per key set) as soon as no event still
    /// to be read can come before them: [`Horizon`], from the captures'
    /// row-group statistics, says when; until then they wait in an
    /// [`OrderBuffer`]. On a capture in time order only about a row group's
    /// events wait, and a sequence's state expires with its `maxspan`, so
    /// memory does not grow with the capture. A piped rule's matches are
    /// kept to the end and cut by its pipes. Returns, per capture and event index,
    /// the rules the event is a finding of (and the sequences it is in), and
    /// sets each sequence rule's counts in `summary`. Nothing to do (and no
    /// pass) without stream rules.
    ///
    /// When they read process-model fields, the pass rebuilds each
    /// capture's processes; for a single capture they are kept
    /// ([`Sequences::context`]) so that the usual pass does not rebuild them.
    fn match_sequences(&self, captures: &[Capture], summary: &mut ReplaySummary) -> Result<Sequences> {
        let rules: Vec<(usize, &EqlSequence)> =
            self.rules.iter().enumerate().filter_map(|(i, r)| r.sequence().map(|s| (i, s))).collect();
        let piped: Vec<(usize, &Rule)> =
            self.rules.iter().enumerate().filter(|(_, r)| r.sequence().is_none() && !r.pipes().is_empty()).collect();
        if rules.is_empty() && piped.is_empty() {
            return Ok(Sequences::default());
        }
        let keep_context = captures.len() == 1;
        let mut context: Option<(PathBuf, Arc<ProcessContext>)> = None;
        let columns = rules.iter().fold(Projection::default(), |p, (_, s)| p.union(s.projection()));
        let columns = piped.iter().fold(columns, |p, (_, r)| p.union(r.projection()));
        let process = rules.iter().any(|(_, s)| s.needs_process()) || piped.iter().any(|(_, r)| r.needs_process());
        let max_events = self.options.sequence_max_events;
        let max_pending = self.options.sequence_max_pending;
        let mut matchers: Vec<_> = rules.iter().map(|(_, s)| s.matcher::<(usize, u64)>(max_pending)).collect();
        let mut waiting: Vec<OrderBuffer> = rules.iter().map(|_| OrderBuffer::default()).collect();
        let mut matches: Vec<Vec<(i64, (usize, u64))>> = vec![Vec::new(); piped.len()];
        let horizon = Horizon::new(captures);
        let mut held_piped = 0usize;
        // Parts come in capture order: number the captures as they come.
        let mut read: Vec<PathBuf> = Vec::new();
        let mut at_capture = 0usize;
        let stage_events = |path: &Path, batch: EventBatch| {
            let parts = rules.iter().map(|(_, s)| s.stage_events(&batch, 0)).collect::<Vec<_>>();
            let found = piped.iter().map(|(_, r)| timed_matches(r, &batch)).collect::<Vec<_>>();
            let next = batch.first_index() + batch.len() as u64;
            Ok((path.to_owned(), next, parts, found, batch.process().cloned().filter(|_| keep_context)))
        };
        read_events_with_process(
            captures.iter().map(Capture::path).collect::<Vec<_>>().as_slice(),
            columns,
            process,
            self.options,
            stage_events,
            &mut |(path, next, parts, found, process): StageParts| {
                if context.is_none() {
                    context = process.map(|p| (path.clone(), p));
                }
                if read.last() != Some(&path) {
                    at_capture = horizon.position(&path, at_capture.min(captures.len()));
                    read.push(path);
                }
                let position = read.len() - 1;
                for (waiting, part) in waiting.iter_mut().zip(parts) {
                    waiting.extend(part.into_iter().map(|e| StageEvent { id: (position, e.id.1), ..e }));
                }
                for (mine, part) in matches.iter_mut().zip(found) {
                    held_piped += part.len();
                    mine.extend(part.into_iter().map(|(time, index)| (time, (position, index))));
                }
                // Everything up to the earliest time still to come is in order.
                let until = horizon.earliest_after(at_capture, next);
                for (waiting, matcher) in waiting.iter_mut().zip(&mut matchers) {
                    waiting.release(until, |e| matcher.push(e));
                }
                let held = held_piped + waiting.iter().map(OrderBuffer::len).sum::<usize>();
                if held > max_events {
                    return Err(Error::capture(
                        &read[position],
                        format!(
                            "more than {max_events} events match the stages of the sequence rules, the filters \
                             of the sample rules or the rules ending in pipes and are held at once (the bound was \
                             reached in this capture): narrow their conditions"
                        ),
                    ));
                }
                Ok(())
            },
        )?;
        for (waiting, matcher) in waiting.iter_mut().zip(&mut matchers) {
            waiting.release(i64::MAX, |e| matcher.push(e));
        }
        let mut hits = SequenceHits::new();
        let mut add = |capture: usize, index: u64, at: StreamHit| {
            hits.entry(read[capture].clone()).or_default().entry(index).or_default().push(at);
        };
        for ((rule, sequence), matcher) in rules.into_iter().zip(matchers) {
            let output = matcher.finish();
            let sequences = sequence.pipes().iter().fold(output.sequences, |s, pipe| pipe.apply(s));
            summary.rules[rule].sequences += sequences.len() as u64;
            summary.rules[rule].sequences_dropped += output.dropped;
            for seq in sequences {
                let Some(&((c, ix), _)) = seq.first() else { continue };
                let label: Arc<str> = format!("{}:{ix}", read[c].display()).into();
                let of = seq.len();
                for (k, ((capture, index), stage)) in seq.into_iter().enumerate() {
                    let place = SequencePlace { label: label.clone(), position: k + 1, of, stage };
                    add(capture, index, StreamHit { rule, sequence: Some(place) });
                }
            }
        }
        for ((rule, r), mut found) in piped.into_iter().zip(matches) {
            found.sort_unstable();
            for (_, (capture, index)) in r.pipes().iter().fold(found, |m, pipe| pipe.apply(m)) {
                add(capture, index, StreamHit { rule, sequence: None });
            }
        }
        Ok(Sequences { hits, context })
    }

    /// Adds to `hits` the events of `batch` that stream rules decided
    /// ([`Driver::match_sequences`]; `decided`: the capture's, by event
    /// index): one hit per (event, rule). A piped rule's reason is its usual
    /// one; a sequence rule's names every sequence of that rule the event is
    /// in, the event's place and why its stage matched. Keeps `hits` in
    /// (row, rule) order.
    fn add_sequence_hits(&self, decided: &BTreeMap<u64, Vec<StreamHit>>, batch: &EventBatch, hits: &mut Vec<Hit>) {
        let first = batch.first_index();
        let before = hits.len();
        for (&ix, events) in decided.range(first..first + batch.len() as u64) {
            let row = (ix - first) as usize;
            let mut by_rule: BTreeMap<usize, Vec<String>> = BTreeMap::new();
            for e in events {
                let rule = &self.rules[e.rule];
                let reason = match (&e.sequence, rule.sequence()) {
                    (Some(place), Some(sequence)) => {
                        let why = sequence.stages[place.stage].query.explain(batch, row);
                        let kind = sequence.kind();
                        format!(
                            "{} {}, event {} of {} ({} {}): {why}",
                            kind.as_str(),
                            place.label,
                            place.position,
                            place.of,
                            kind.part(),
                            place.stage + 1
                        )
                    }
                    _ => rule.why(batch, row),
                };
                by_rule.entry(e.rule).or_default().push(reason);
            }
            hits.extend(by_rule.into_iter().map(|(rule, reasons)| Hit { row, rule, reason: reasons.join("; ") }));
        }
        if hits.len() > before {
            hits.sort_by_key(|h| (h.row, h.rule));
        }
    }

    /// [`Driver::run`] on captures already opened, adding to `summary`.
    fn run_opened<C: Consumer>(
        &self,
        opened: &[Capture],
        consumer: &C,
        sink: &mut dyn PartSink<C::Part>,
        summary: &mut ReplaySummary,
        sequences: &Sequences,
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
            let mut held: Vec<C::Part> = Vec::new();
            // A part is final when it leaves its unit, unless context is added later.
            let finish = |p: C::Part| if context_later { Ok(p) } else { consumer.finish(p) };
            let mut out = |p: C::Part, sink: &mut dyn PartSink<C::Part>| {
                if context_later {
                    held.push(p);
                    Ok(())
                } else {
                    sink.part(p)
                }
            };
            let process = if needs_process {
                match &sequences.context {
                    // Built by the sequences' pass over this capture: the same processes.
                    Some((p, ctx)) if p == path => Some(ctx.clone()),
                    _ => Some(Arc::new(self.process_context(capture)?)),
                }
            } else if needs_starts {
                Some(Arc::new(self.container_starts_later(capture)))
            } else {
                None
            };
            let process = process.as_ref();
            let state: CaptureState<'_> = (capture, process, sequences.hits.get(path));
            let pieces = capture.pieces(threads);
            // The unreadable row groups: one error each, whatever the pieces.
            let mut failures = Vec::new();
            let mut failed_units = Vec::new();
            let mut failed = |piece: &Piece, failure: Option<Error>| {
                let Some(e) = failure else { return };
                if failed_units.last() != Some(&piece.unit) {
                    failed_units.push(piece.unit);
                    failures.push(e);
                }
            };
            if pieces.len() <= 1 || threads <= 1 {
                // One piece (an NDJSON capture) or one thread: parts go to the
                // sink as they come instead of piling up.
                for piece in &pieces {
                    let (part, failure) = self.unit(state, piece, consumer, &mut |p| out(finish(p)?, &mut *sink))?;
                    summary.merge(part, self.options.max_examples);
                    failed(piece, failure);
                    sink.progress(summary.events, total);
                }
            } else {
                let work = |k: usize, send: &mut dyn FnMut(C::Part) -> Result<()>| {
                    self.unit(state, &pieces[k], consumer, &mut |p| send(finish(p)?))
                };
                // Parts that are whole batches (`convert`, `export`, the
                // process pass) wait one at a time per unit; findings are
                // not held back.
                let hold = consumer.keep_all().then_some(HELD_BATCHES);
                let mut next = pieces.iter();
                in_order_streamed(pieces.len(), threads, hold, work, |e: Emitted<C::Part, UnitResult>| match e {
                    Emitted::Part(p) => out(p, &mut *sink),
                    Emitted::End(output) => {
                        let (part, failure) = output?;
                        summary.merge(part, self.options.max_examples);
                        failed(next.next().expect("one result per piece"), failure);
                        sink.progress(summary.events, total);
                        Ok(())
                    }
                })?;
            }
            // `time` not decoded: a unit read in pieces adds its statistics'
            // range once all of them were read (see `unit` for a whole one).
            if !self.projections(capture, consumer).0.contains(Column::Time) {
                let ranges = capture.unit_time_ranges().unwrap_or_default();
                let mut cut: Vec<usize> = pieces.iter().filter(|p| p.rows.is_some()).map(|p| p.unit).collect();
                cut.dedup();
                for unit in cut.into_iter().filter(|u| !failed_units.contains(u)) {
                    if let Some(Some(range)) = ranges.get(unit).copied() {
                        widen_time_range(&mut summary.time_range, range);
                    }
                }
            }
            if let Some(e) = process.and_then(|p| p.take_deferred_error()) {
                return Err(e);
            }
            if context_later {
                let mut wanted = Vec::new();
                for p in &held {
                    consumer.context_events(p, &mut wanted);
                }
                release_freed_memory();
                let ctx = match wanted.is_empty() {
                    true => None,
                    false => Some(self.context_for(capture, wanted)?),
                };
                // Context filled and parts finished on the threads, in order.
                let slots: Vec<std::sync::Mutex<Option<C::Part>>> =
                    held.into_iter().map(|p| std::sync::Mutex::new(Some(p))).collect();
                let work = |k: usize| {
                    let p = slots[k].lock().unwrap_or_else(|e| e.into_inner()).take().expect("each part once");
                    let p = match &ctx {
                        Some(ctx) => consumer.add_context(p, ctx)?,
                        None => p,
                    };
                    consumer.finish(p)
                };
                in_order(slots.len(), threads, work, |p| sink.part(p?))?;
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
        Ok(self.build_context(capture, ProcessContextBuilder::default(), ProcessContext::projection(), 1)?.finish())
    }

    /// The processes of `capture` as the triage columns of findings at
    /// `events` need them ([`ProcessContextBuilder::for_events`]): the same
    /// pass, but links kept for those events only and, from a Parquet
    /// capture, arguments read afterwards for the few processes shown
    /// instead of decoded and kept for every exec.
    pub fn context_for(&self, capture: &Capture, events: Vec<u64>) -> Result<ProcessContext> {
        let rows = capture.reads_rows_selectively();
        let columns = if rows { ProcessContext::projection_without_args() } else { ProcessContext::projection() };
        self.build_context(capture, ProcessContextBuilder::for_events(events, rows), columns, 1)?
            .finish_reading_args(capture)
    }

    /// Only when each container of `capture` started
    /// ([`ProcessContext::container_state`]): a light pass over `kind`,
    /// `container_id` and `comm`; the context has no processes.
    pub fn container_starts(&self, capture: &Capture) -> Result<ProcessContext> {
        Ok(self
            .build_context(capture, ProcessContextBuilder::starts_only(), ProcessContext::starts_projection(), 2)?
            .finish())
    }

    /// [`Driver::container_starts`], run only if a rule asks about an event
    /// whose answer depends on it ([`ProcessContext::starts_later`]).
    fn container_starts_later(&self, capture: &Capture) -> ProcessContext {
        let (path, options) = (capture.path().to_owned(), self.options.clone());
        ProcessContext::starts_later(Box::new(move || {
            let capture = Capture::open(&path)?;
            Driver::new(&[], &options).container_starts(&capture)
        }))
    }

    fn build_context(
        &self,
        capture: &Capture,
        mut builder: ProcessContextBuilder,
        columns: Projection,
        reading_threads: usize,
    ) -> Result<ProcessContextBuilder> {
        let reader = Driver::new(&[], self.options);
        let consumer = EachBatch { columns, map: |_: &Path, b: EventBatch| Ok(b), process: false };
        let none = Sequences::default();
        // One row group at a time, on a reading thread of its own: a wave of
        // row groups on every thread would hold all their decoded lifecycle
        // columns at once (most of the pass's peak memory), and the builder,
        // in capture order, cannot use a second thread anyway. The batches
        // reach the builder, on this thread, through a channel of two: the
        // second core decodes the next batch while the table takes this one.
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(reading_threads)
            .build()
            .map_err(|e| Error::capture(capture.path(), format!("cannot start a reading thread: {e}")))?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<EventBatch>(2);
        std::thread::scope(|scope| {
            let reading = scope.spawn(|| {
                let mut sink = move |b: EventBatch| {
                    // The builder only stops taking batches when it panicked.
                    tx.send(b).map_err(|_| Error::capture(capture.path(), "the process table stopped"))
                };
                one.install(|| {
                    reader.run_opened(
                        std::slice::from_ref(capture),
                        &consumer,
                        &mut sink,
                        &mut reader.new_summary(),
                        &none,
                    )
                })
            });
            for b in rx {
                builder.push_batch(&b);
            }
            match reading.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })?;
        Ok(builder)
    }

    /// Columns decoded for every event of `capture`, and those read afterwards
    /// for the selected rows only.
    fn projections<C: Consumer>(&self, capture: &Capture, consumer: &C) -> (Projection, Projection) {
        let mut early = self.rules_projection().union(consumer.scan_columns());
        // The summary's time range: from the row groups' statistics when
        // they give every unit's, otherwise from every event's `time`.
        if capture.unit_time_ranges().is_none_or(|r| r.iter().any(Option::is_none)) {
            early.insert(Column::Time);
        }
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
            let pieces = capture.pieces(threads);
            let work = |k: usize| -> Result<u64> {
                let mut n = 0;
                for batch in capture.piece_batches(&pieces[k], early, self.options.batch_size)? {
                    n += batch?.len() as u64;
                }
                Ok(n)
            };
            in_order(pieces.len(), threads, work, |c| {
                events += c?;
                Ok(())
            })?;
        }
        Ok(events)
    }

    /// Evaluates every rule on one batch; returns the hits in (row, rule)
    /// order and the unevaluable rows as (rule, row, why), by rule.
    pub fn evaluate(&self, batch: &EventBatch) -> (Vec<Hit>, Vec<(usize, usize, String)>) {
        let mut hits = Vec::new();
        let mut bad = Vec::new();
        for (ri, rule) in self.rules.iter().enumerate() {
            if rule.needs_stream() {
                // Decided over the whole stream (`match_sequences`), not per batch.
                continue;
            }
            let verdict = rule.evaluate(batch);
            let rows: Vec<usize> = verdict.fires.set_indices().collect();
            if !rows.is_empty() {
                let reasons = rule.why_rows(batch, &rows);
                hits.extend(rows.into_iter().zip(reasons).map(|(row, reason)| Hit { row, rule: ri, reason }));
            }
            bad.extend(verdict.unevaluable.into_iter().map(|(row, message)| (ri, row, message)));
        }
        hits.sort_by_key(|h| (h.row, h.rule));
        (hits, bad)
    }

    /// An error naming the first stream rule ([`Rule::needs_stream`]), for
    /// evaluations that see one batch at a time (Arrow data handed over by
    /// Python, Spark and Ray batches): a sequence or a pipe needs the whole
    /// stream in order.
    pub fn refuse_sequences(&self, capture: &Path) -> Result<()> {
        let Some(rule) = self.rules.iter().find(|r| r.needs_stream()) else { return Ok(()) };
        let what = match rule.sequence() {
            Some(s) if s.kind() == JoinKind::Sample => "is an EQL sample: samples are matched".to_string(),
            Some(_) => "is an EQL sequence: sequences are matched".to_string(),
            None => {
                let pipes: Vec<String> = rule.pipes().iter().map(|p| p.to_string()).collect();
                format!("ends in `{}`: pipes are applied", pipes.join(" "))
            }
        };
        Err(Error::rule(
            &rule.source,
            None,
            format!(
                "rule {} {what} over whole captures in order and cannot be evaluated one batch at a time (on {}); \
                 replay the capture files instead",
                rule.id,
                capture.display()
            ),
        ))
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
    ///
    /// Sequence rules cannot be evaluated on one batch (a sequence spans
    /// events of the whole stream): a rule set holding one is an error.
    pub fn batch_chunk<'a>(&self, capture: &'a Path, batch: &EventBatch) -> Result<(ReplaySummary, Chunk<'a>)> {
        self.refuse_sequences(capture)?;
        let mut part = self.new_summary();
        part.events += batch.len() as u64;
        update_time_range(&mut part.time_range, batch);
        let (hits, bad) = self.evaluate(batch);
        let unevaluable = self.count_unevaluable(capture, batch, bad, &mut part)?;
        let process = batch.process().cloned();
        Ok((part, Chunk { capture, rows: batch.clone(), indexes: None, hits, unevaluable, process }))
    }

    /// Reads one piece of a capture (a unit, a row group, or a range of its
    /// rows: [`Capture::pieces`]), sending its parts to `emit`; returns a
    /// partial summary. With [`ReplayOptions::skip_unreadable`], a decoding
    /// error ends the piece and is returned beside what was decoded before it.
    fn unit<C: Consumer>(
        &self,
        (capture, process, sequences): CaptureState<'_>,
        piece: &Piece,
        consumer: &C,
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
        let unit = piece.unit;
        match capture.piece_batches(piece, early, self.options.batch_size) {
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
                    let (mut batch_hits, bad) =
                        if self.rules.is_empty() { Default::default() } else { self.evaluate(&batch) };
                    if let Some(sequences) = sequences {
                        self.add_sequence_hits(sequences, &batch, &mut batch_hits);
                    }
                    let bad = self.count_unevaluable(path, &batch, bad, &mut part)?;
                    if keep_all {
                        let chunk = Chunk {
                            capture: path,
                            rows: batch.with_plain_lists(),
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
                        let rows = batch.take(&rows).with_plain_lists();
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
                        kept.push(batch.take(&rows).with_plain_lists());
                    }
                }
            }
            Err(e) if skip => failure = Some(e),
            Err(e) => return Err(e),
        }
        // `time` not decoded: the unit's range is its statistics' (of a unit
        // read whole; an unreadable one adds nothing; a unit read in pieces
        // adds it in `run_opened` once every piece was read).
        if !early.contains(Column::Time) && failure.is_none() && piece.rows.is_none() {
            if let Some(Some(range)) = capture.unit_time_ranges().and_then(|r| r.get(unit).copied()) {
                widen_time_range(&mut part.time_range, range);
            }
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
                Ok(columns) => EventBatch::concat(&kept).with_columns(columns).with_plain_lists(),
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

/// Widens `range` to take in `first..=last`.
fn widen_time_range(range: &mut Option<(i64, i64)>, (first, last): (i64, i64)) {
    *range = Some(range.map_or((first, last), |(a, b)| (a.min(first), b.max(last))));
}

fn update_time_range(range: &mut Option<(i64, i64)>, batch: &EventBatch) {
    let Some(t) = batch.column(Column::Time) else { return };
    let t = t.as_primitive::<TimestampNanosecondType>();
    // The least and greatest timestamp: over the plain values when none is
    // null (always, for a capture's `time`), else over the non-null ones.
    let bounds = if t.null_count() == 0 {
        t.values().iter().min().zip(t.values().iter().max()).map(|(&lo, &hi)| (lo, hi))
    } else {
        t.iter().flatten().fold(None, |acc, v| Some(acc.map_or((v, v), |(lo, hi): (i64, i64)| (lo.min(v), hi.max(v)))))
    };
    if let Some(bounds) = bounds {
        widen_time_range(range, bounds);
    }
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

/// Default bound on the events the stream rules hold at once
/// ([`ReplayOptions::sequence_max_events`]).
pub const DEFAULT_MAX_STAGE_EVENTS: usize = 4_000_000;

/// One batch's stage events per sequence rule and (timestamp, event index)
/// of the matches of each piped rule, with its capture, the event index
/// after the batch (and the capture's processes, when they are to be kept).
type StageParts = (PathBuf, u64, Vec<Vec<StageEvent<(usize, u64)>>>, Vec<Vec<(i64, u64)>>, Option<Arc<ProcessContext>>);

/// The earliest timestamp an event not yet read can have, from the
/// captures' row-group statistics ([`Capture::unit_time_ranges`]): the
/// captures are read in order, each in event order, so after event index
/// `next` of capture `c` come the rest of `c`'s row groups and every later
/// capture. A row group without statistics (and an NDJSON capture) could
/// hold any time: nothing before it is released.
struct Horizon {
    /// Per capture: its path, and per row group its end (event index) and
    /// the earliest time of it and every later row group of the capture.
    captures: Vec<(PathBuf, Vec<(u64, i64)>)>,
    /// Per capture: the earliest time of every later capture.
    later: Vec<i64>,
}

impl Horizon {
    fn new(captures: &[Capture]) -> Horizon {
        let captures: Vec<(PathBuf, Vec<(u64, i64)>)> = captures
            .iter()
            .map(|c| {
                let units = match (c.unit_rows(), c.unit_time_ranges()) {
                    (Some(rows), Some(times)) => {
                        let mut end = 0u64;
                        let mut units: Vec<(u64, i64)> = rows
                            .iter()
                            .zip(times)
                            .map(|(&n, t)| {
                                end += n;
                                (end, t.map_or(i64::MIN, |(earliest, _)| earliest))
                            })
                            .collect();
                        for i in (0..units.len().saturating_sub(1)).rev() {
                            units[i].1 = units[i].1.min(units[i + 1].1);
                        }
                        units
                    }
                    // Unknown until read to the end.
                    _ => vec![(u64::MAX, i64::MIN)],
                };
                (c.path().to_owned(), units)
            })
            .collect();
        let mut later = vec![i64::MAX; captures.len()];
        for i in (0..captures.len().saturating_sub(1)).rev() {
            let next = captures[i + 1].1.first().map_or(i64::MAX, |u| u.1);
            later[i] = later[i + 1].min(next);
        }
        Horizon { captures, later }
    }

    /// The position of the capture named `path`, the one at `from` or a
    /// later one; past the end when none is (then nothing is released
    /// before the end of the run).
    fn position(&self, path: &Path, from: usize) -> usize {
        (from..self.captures.len()).find(|&i| self.captures[i].0 == path).unwrap_or(usize::MAX)
    }

    /// The earliest time of the events after event index `next` of capture `capture`.
    fn earliest_after(&self, capture: usize, next: u64) -> i64 {
        let Some((_, units)) = self.captures.get(capture) else { return i64::MIN };
        let rest = units.iter().find(|(end, _)| *end > next).map_or(i64::MAX, |u| u.1);
        rest.min(self.later[capture])
    }
}

/// Stage events waiting to be matched in (time, id) order.
#[derive(Default)]
struct OrderBuffer(std::collections::BinaryHeap<std::cmp::Reverse<Ordered>>);

/// A stage event ordered by (time, id).
struct Ordered(StageEvent<(usize, u64)>);

impl PartialEq for Ordered {
    fn eq(&self, other: &Self) -> bool {
        (self.0.time, self.0.id) == (other.0.time, other.0.id)
    }
}
impl Eq for Ordered {}
impl PartialOrd for Ordered {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ordered {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.0.time, self.0.id).cmp(&(other.0.time, other.0.id))
    }
}

impl OrderBuffer {
    fn extend(&mut self, events: impl Iterator<Item = StageEvent<(usize, u64)>>) {
        self.0.extend(events.map(|e| std::cmp::Reverse(Ordered(e))));
    }

    /// Hands over, in order, every event at or before `until` (an event
    /// still to come at `until` has a later id: capture position, then
    /// event index).
    fn release(&mut self, until: i64, mut to: impl FnMut(StageEvent<(usize, u64)>)) {
        while self.0.peek().is_some_and(|e| e.0 .0.time <= until) {
            to(self.0.pop().expect("peeked").0 .0);
        }
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// The events of `batch` where `rule` fires, as (timestamp, event index);
/// an event without a timestamp is ordered before every other.
fn timed_matches(rule: &Rule, batch: &EventBatch) -> Vec<(i64, u64)> {
    let fires = rule.evaluate(batch).fires;
    let time = batch.column(Column::Time).map(|t| t.as_primitive::<TimestampNanosecondType>());
    fires
        .set_indices()
        .map(|row| {
            let t = time.filter(|t| t.is_valid(row)).map_or(i64::MIN, |t| t.value(row));
            (t, batch.first_index() + row as u64)
        })
        .collect()
}

/// What [`Driver::match_sequences`] found, for the usual pass.
#[derive(Debug, Default)]
struct Sequences {
    /// Per capture, per event index: the matched sequences the event is in.
    hits: SequenceHits,
    /// The processes of the one capture read, when the stages needed them.
    context: Option<(PathBuf, Arc<ProcessContext>)>,
}

/// Per capture, per event index: the matched sequences the event is in.
type SequenceHits = HashMap<PathBuf, BTreeMap<u64, Vec<StreamHit>>>;

/// An event a stream rule ([`Rule::needs_stream`]) reports.
#[derive(Debug, Clone)]
struct StreamHit {
    /// Position of the rule in the driver's rule list.
    rule: usize,
    /// For a sequence rule, the event's place in one of its sequences.
    sequence: Option<SequencePlace>,
}

/// An event's place in one matched sequence.
#[derive(Debug, Clone)]
struct SequencePlace {
    /// The sequence: `capture:event_index` of its first event.
    label: Arc<str>,
    /// 1-based position of the event in the sequence.
    position: usize,
    /// Events in the sequence.
    of: usize,
    /// The stage it matched, as written (0-based).
    stage: usize,
}

/// Hands the memory the decoding threads freed back to the system before
/// the process table is built (glibc keeps each thread's freed chunks in
/// its own arena; the table and the held findings then grow on top of
/// them): long-argv at 5M, default replay, 283 -> 252 MiB peak.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Runs `work` on units `0..n` on `threads` threads of its own and hands the
/// results to `emit` in unit order. A thread takes the next unit as soon as
/// it is free (no waves: the last units do not wait for the slowest of a
/// wave), but never more than `threads + 1` units past the next one to
/// emit, so that the results held for ordering stay bounded. The threads
/// are not rayon's: the caller may itself be on a rayon thread (the Python
/// module runs in a pool of its own) and waits here for units in order.
///
/// An error from `emit` stops the threads after their current unit; a panic
/// in `work` is resumed here.
fn in_order<T: Send>(
    n: usize,
    threads: usize,
    work: impl Fn(usize) -> T + Sync,
    mut emit: impl FnMut(T) -> Result<()>,
) -> Result<()> {
    let work = |unit: usize, _: &mut dyn FnMut(std::convert::Infallible) -> Result<()>| work(unit);
    in_order_streamed(n, threads, None, work, |e| match e {
        Emitted::Part(never) => match never {},
        Emitted::End(t) => emit(t),
    })
}

/// What [`in_order_streamed`] hands on: a part of a unit, or its end.
enum Emitted<P, T> {
    Part(P),
    End(T),
}

/// [`in_order`] for units that produce their results a part at a time:
/// `work` hands each part to the callback it is given as it comes, and
/// `emit` receives them in unit order, the parts of the next unit to emit
/// while it still runs, then the unit's end (what `work` returned). With
/// `hold`, a unit keeps at most that many parts waiting to be emitted, and
/// its thread waits before making more (for the next unit, until `emit`
/// takes them; for a later one, until its turn comes): a unit's parts are
/// then never all in memory at once, whether the threads decode faster than
/// `emit` writes or a unit waits for an earlier one. For `convert` a part is
/// a batch of every column and a unit a whole row group: `long-argv` (2M
/// events) took 0.9 GB holding whole units. When the work is stopped (an
/// emit failed), the callback returns an error, for the unit to end early.
fn in_order_streamed<P: Send, T: Send>(
    n: usize,
    threads: usize,
    hold: Option<usize>,
    work: impl Fn(usize, &mut dyn FnMut(P) -> Result<()>) -> T + Sync,
    mut emit: impl FnMut(Emitted<P, T>) -> Result<()>,
) -> Result<()> {
    use std::collections::VecDeque;
    use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
    use std::sync::{Condvar, Mutex};
    if threads <= 1 || n <= 1 {
        for unit in 0..n {
            let end = work(unit, &mut |p| emit(Emitted::Part(p)));
            emit(Emitted::End(end))?;
        }
        return Ok(());
    }
    /// A unit's parts not yet emitted, and its end once it has one.
    struct Slot<P, T> {
        parts: VecDeque<P>,
        end: Option<std::thread::Result<T>>,
    }
    /// Which unit is taken next, how many were emitted, whether to stop,
    /// and what the units taken and not yet emitted produced.
    struct Gate<P, T> {
        next: usize,
        emitted: usize,
        stop: bool,
        slots: BTreeMap<usize, Slot<P, T>>,
    }
    let gate = Mutex::new(Gate { next: 0, emitted: 0, stop: false, slots: BTreeMap::new() });
    let turn = Condvar::new();
    let lock = || gate.lock().unwrap_or_else(|e| e.into_inner());
    let wait = |g| turn.wait(g).unwrap_or_else(|e| e.into_inner());
    let window = threads + 1;
    let stopped = || Error::capture("", "internal: stopped after an earlier error");
    std::thread::scope(|scope| {
        for _ in 0..threads.min(n) {
            let (lock, wait, turn, work) = (&lock, &wait, &turn, &work);
            scope.spawn(move || loop {
                let unit = {
                    let mut g = lock();
                    loop {
                        if g.stop || g.next >= n {
                            return;
                        }
                        if g.next < g.emitted + window {
                            break;
                        }
                        g = wait(g);
                    }
                    let unit = g.next;
                    g.next += 1;
                    g.slots.insert(unit, Slot { parts: VecDeque::new(), end: None });
                    unit
                };
                let mut send = |p: P| {
                    let mut g = lock();
                    loop {
                        if g.stop {
                            return Err(stopped());
                        }
                        let full = hold.is_some_and(|h| g.slots.get(&unit).is_some_and(|s| s.parts.len() >= h));
                        if !full {
                            break;
                        }
                        g = wait(g);
                    }
                    if let Some(slot) = g.slots.get_mut(&unit) {
                        slot.parts.push_back(p);
                    }
                    turn.notify_all();
                    Ok(())
                };
                let end = catch_unwind(AssertUnwindSafe(|| work(unit, &mut send)));
                let panicked = end.is_err();
                let mut g = lock();
                if let Some(slot) = g.slots.get_mut(&unit) {
                    slot.end = Some(end);
                }
                turn.notify_all();
                if panicked {
                    return;
                }
            });
        }
        let stop = || {
            lock().stop = true;
            turn.notify_all();
        };
        for expected in 0..n {
            loop {
                let mut g = lock();
                let Some(slot) = g.slots.get_mut(&expected) else {
                    g = wait(g);
                    drop(g);
                    continue;
                };
                if let Some(p) = slot.parts.pop_front() {
                    drop(g);
                    turn.notify_all();
                    if let Err(e) = emit(Emitted::Part(p)) {
                        stop();
                        return Err(e);
                    }
                    continue;
                }
                let Some(end) = slot.end.take() else {
                    drop(wait(g));
                    continue;
                };
                g.slots.remove(&expected);
                drop(g);
                let emitted = match end {
                    Ok(t) => emit(Emitted::End(t)),
                    Err(panic) => {
                        stop();
                        resume_unwind(panic)
                    }
                };
                if let Err(e) = emitted {
                    stop();
                    return Err(e);
                }
                lock().emitted += 1;
                turn.notify_all();
                break;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    use super::{in_order, in_order_streamed, Emitted};
    use crate::error::Error;

    /// Units finish in any order (here the earlier the slower); their
    /// results reach `emit` in unit order, each once.
    #[test]
    fn results_are_emitted_in_unit_order_whatever_order_units_finish_in() {
        let mut seen = Vec::new();
        let work = |u: usize| {
            std::thread::sleep(Duration::from_millis(((12 - u) % 4) as u64 * 3));
            u * 10
        };
        in_order(12, 3, work, |r| {
            seen.push(r);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, (0..12).map(|u| u * 10).collect::<Vec<_>>());
    }

    /// A unit is taken only while fewer than threads + 1 units are ahead of
    /// the next one to emit: results waiting for a slow unit stay bounded
    /// (for `convert` a unit's parts are a whole row group).
    #[test]
    fn at_most_threads_plus_one_units_run_ahead_of_the_next_emitted() {
        let emitted = AtomicUsize::new(0);
        let ahead = Mutex::new(Vec::new());
        let work = |u: usize| {
            ahead.lock().unwrap().push(u - emitted.load(Ordering::SeqCst).min(u));
            // Unit 0 is slow: every other thread runs into the window.
            std::thread::sleep(Duration::from_millis(if u == 0 { 60 } else { 1 }));
        };
        in_order(20, 2, work, |()| {
            emitted.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
        let ahead = ahead.into_inner().unwrap();
        assert_eq!(ahead.len(), 20);
        assert!(ahead.iter().all(|&a| a <= 2), "units taken this far ahead of the next emitted: {ahead:?}");
    }

    /// An error from `emit` is returned and stops the work: no unit beyond
    /// the window is started.
    #[test]
    fn an_emit_error_stops_the_units_not_yet_started() {
        let started = std::sync::Arc::new(AtomicUsize::new(0));
        let counted = started.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        // On its own thread: a driver that does not stop the units waits
        // for them forever, which must fail the test, not hang it.
        std::thread::spawn(move || {
            let work = |_u: usize| {
                counted.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(2));
            };
            let mut n = 0;
            let r = in_order(100, 2, work, |()| {
                n += 1;
                if n == 3 {
                    return Err(Error::capture("x.parquet", "the sink failed"));
                }
                Ok(())
            });
            let _ = tx.send(r);
        });
        let r = rx.recv_timeout(Duration::from_secs(20)).expect("in_order returns after an emit error");
        assert!(r.unwrap_err().to_string().contains("the sink failed"));
        let started = started.load(Ordering::SeqCst);
        assert!(started <= 3 + 3, "{started} units started after the third failed to emit");
    }

    /// With `hold`, parts wait a few at a time, however much faster the
    /// units make them than `emit` takes them: at most `hold` queued for
    /// each unit taken (up to threads + 1 of them) plus one in each
    /// thread's hand. Without it, a whole unit's parts piled up (`convert`
    /// of a 1 Mi-row group). They still arrive in unit order, each once.
    #[test]
    fn streamed_parts_wait_a_few_at_a_time_and_arrive_in_order() {
        let made = AtomicUsize::new(0);
        let mut taken = 0;
        let mut most = 0;
        let mut seen = Vec::new();
        let mut ends = Vec::new();
        let work = |u: usize, send: &mut dyn FnMut((usize, usize)) -> crate::error::Result<()>| {
            for i in 0..40 {
                made.fetch_add(1, Ordering::SeqCst);
                send((u, i)).unwrap();
            }
            u
        };
        let (threads, hold) = (2, 1);
        in_order_streamed(6, threads, Some(hold), work, |e| {
            match e {
                Emitted::Part(p) => {
                    taken += 1;
                    most = most.max(made.load(Ordering::SeqCst) - taken);
                    seen.push(p);
                    std::thread::sleep(Duration::from_micros(200));
                }
                Emitted::End(u) => ends.push(u),
            }
            Ok(())
        })
        .unwrap();
        let expected: Vec<(usize, usize)> = (0..6).flat_map(|u| (0..40).map(move |i| (u, i))).collect();
        assert_eq!(seen, expected);
        assert_eq!(ends, (0..6).collect::<Vec<_>>());
        let bound = (threads + 1) * hold + threads;
        assert!(most <= bound, "{most} parts made and not yet emitted at once (bound {bound})");
    }

    /// A panic in a unit is resumed on the caller's thread, not lost in a
    /// worker (which would leave the caller waiting).
    #[test]
    #[should_panic(expected = "unit 5 broke")]
    fn a_panicking_unit_panics_the_caller() {
        let _ = in_order(10, 2, |u| assert!(u != 5, "unit {u} broke"), |()| Ok(()));
    }
}
