//! The replay engine: captures in, findings out, through a [`FindingSink`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::RecordBatch;

use crate::capture::{Column, EventBatch, Projection, DEFAULT_BATCH_SIZE};
use crate::driver::{Chunk, Consumer, Driver, PartSink};
use crate::error::Result;
use crate::findings::{build_findings_at, findings_projection, Hit, RuleInfo};
use crate::process::ProcessContext;
use crate::rules::RuleSet;

/// Receives findings as the replay produces them, one batch per event batch
/// that had any, in capture order. The CLI printers, the Python module and the
/// tests each implement it.
pub trait FindingSink {
    /// Findings of one event batch (never empty), schema [`crate::findings::findings_schema`].
    fn findings(&mut self, batch: &RecordBatch) -> Result<()>;

    /// Events replayed so far, and in all when known (for a progress display).
    fn progress(&mut self, _events_done: u64, _events_total: Option<u64>) {}

    /// A function turning a findings batch into the bytes this sink writes
    /// for it, which the replay may run on its worker threads, in parallel,
    /// so that batches reach [`FindingSink::rendered`] in capture order with
    /// their bytes made. `None` (the default): every batch goes to
    /// [`FindingSink::findings`].
    fn renderer(&self) -> Option<Renderer> {
        None
    }

    /// A findings batch with the bytes [`FindingSink::renderer`] made of it,
    /// in capture order. The default ignores the bytes and calls
    /// [`FindingSink::findings`].
    fn rendered(&mut self, batch: &RecordBatch, bytes: Vec<u8>) -> Result<()> {
        drop(bytes);
        self.findings(batch)
    }
}

/// Renders a findings batch to bytes on any thread ([`FindingSink::renderer`]).
pub type Renderer = Arc<dyn Fn(&RecordBatch) -> Result<Vec<u8>> + Send + Sync>;

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
    /// Fill the findings' triage columns (pod, parent, session and entry
    /// leaders: [`crate::findings::FINDING_CONTEXT_COLUMNS`]) from the
    /// capture's processes. On by default; it costs a pass over the
    /// lifecycle columns of every capture with rules to replay. Off, those
    /// columns are null (rules that read process-model fields still get the
    /// processes they need).
    pub context: bool,
    /// Sequence rules: most partial sequences one rule keeps pending at
    /// once, all join keys together; beyond it the oldest are dropped and
    /// counted ([`RuleSummary::sequences_dropped`]).
    pub sequence_max_pending: usize,
    /// Stream rules: most events held at once, all rules together: events
    /// the stages of sequence rules and the filters of sample rules selected
    /// that wait to be matched in time order (with their join keys; see
    /// `docs/rule-semantics.md`, "Bounds"), and the matches of rules ending
    /// in pipes (kept to the end of the run); beyond it the replay fails
    /// naming the capture where the bound was reached.
    pub sequence_max_events: usize,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            batch_size: DEFAULT_BATCH_SIZE,
            strict: false,
            max_examples: 5,
            skip_unreadable: false,
            context: true,
            sequence_max_pending: crate::eql::DEFAULT_MAX_PENDING,
            sequence_max_events: crate::driver::DEFAULT_MAX_STAGE_EVENTS,
        }
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
    /// Whether the rule is an EQL sequence or sample (then `findings`
    /// counts the events of its sequences or samples, one finding each).
    pub is_sequence: bool,
    /// Whether the rule is an EQL sample (then `is_sequence` is true too,
    /// and `sequences` counts its samples).
    pub is_sample: bool,
    /// Sequence rules: sequences matched (each event of one is a finding);
    /// sample rules: samples found.
    pub sequences: u64,
    /// Sequence rules: partial sequences dropped because
    /// [`ReplayOptions::sequence_max_pending`] was reached (then some
    /// sequences may be missing).
    pub sequences_dropped: u64,
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
            mine.sequences += theirs.sequences;
            mine.sequences_dropped += theirs.sequences_dropped;
            let room = max_examples.saturating_sub(mine.examples.len());
            mine.examples.extend(theirs.examples.into_iter().take(room));
        }
        self.containers.extend(part.containers);
        self.processes.extend(part.processes);
        self.captures.extend(part.captures);
        self.unreadable.extend(part.unreadable);
    }

    /// Adds the findings, containers and processes of `part` (per-rule
    /// findings in the same rule order).
    fn add_findings(&mut self, mut part: ReplaySummary) {
        for (mine, theirs) in self.rules.iter_mut().zip(&part.rules) {
            mine.findings += theirs.findings;
        }
        // Merged in one pass over both sorted sets, not inserted one by one.
        self.containers.append(&mut part.containers);
        self.processes.append(&mut part.processes);
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
    /// and the unevaluable rows as (rule, row, why).
    pub fn evaluate_batch(&self, batch: &EventBatch) -> (Vec<Hit>, Vec<(usize, usize, String)>) {
        self.driver().evaluate(batch)
    }

    fn driver(&self) -> Driver<'_> {
        Driver::new(self.rules.rules(), &self.options)
    }

    /// Replays the captures in order, sending findings to `sink`.
    ///
    /// This is [`Driver::run`] with a consumer that turns the rows that fired
    /// into finding batches: every capture is opened (and its footer checked)
    /// before any work, so a bad file is reported at once. Row groups of a
    /// Parquet capture are decoded and evaluated in parallel, one per thread,
    /// each thread taking the next as soon as it is free; results are merged
    /// and sent in capture order, so output is deterministic and memory is
    /// bounded by threads x batch size. The columns only findings need are
    /// read for the rows that fired.
    ///
    /// A capture that cannot be opened or decoded fails the replay, unless
    /// [`ReplayOptions::skip_unreadable`] is set: then the rest is replayed
    /// (every event decoded before the problem included) and the problem is
    /// listed in [`ReplaySummary::unreadable`].
    pub fn replay<P: AsRef<Path>>(&self, captures: &[P], sink: &mut dyn FindingSink) -> Result<ReplaySummary> {
        let consumer = FindingsConsumer { rules: &self.rules, renderer: sink.renderer() };
        let mut out = FindingsOut { sink, totals: self.new_summary() };
        let mut summary = self.driver().run(captures, &consumer, &mut out)?;
        summary.add_findings(out.totals);
        Ok(summary)
    }

    /// The decode floor for benchmarks: reads and normalizes exactly the
    /// columns [`Replayer::replay`] decodes for every event (for Parquet, what
    /// the rules read plus `time` and `kind`; the columns only findings need
    /// are read for the rows that fire), with the same parallelism and batch
    /// size, and does nothing else. Returns the number of events.
    pub fn decode_only<P: AsRef<Path>>(&self, captures: &[P]) -> Result<u64> {
        self.driver().decode_only(captures, &FindingsConsumer { rules: &self.rules, renderer: None })
    }

    /// The capture columns [`Replayer::replay_batch`] needs: what the rules
    /// read plus what findings copy from the event.
    pub fn projection(&self) -> Projection {
        self.rules.projection().union(findings_projection())
    }

    /// An empty summary for this replayer's rules, to fill with [`Replayer::replay_batch`].
    pub fn new_summary(&self) -> ReplaySummary {
        self.driver().new_summary()
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

    /// Replays one batch of events from `capture` (which labels its findings
    /// and errors): evaluates every rule, adds to `summary` (events, time
    /// range, findings, unevaluable events; not `captures`) and sends the
    /// findings, if any, to `sink`. Use it for events that do not come from a
    /// capture file (captures go through [`Replayer::replay`]). The batch must
    /// carry [`Replayer::projection`].
    pub fn replay_batch(
        &self,
        capture: &Path,
        batch: &EventBatch,
        summary: &mut ReplaySummary,
        sink: &mut dyn FindingSink,
    ) -> Result<()> {
        let (part, chunk) = self.driver().batch_chunk(capture, batch)?;
        summary.merge(part, self.options.max_examples);
        let found = FindingsConsumer { rules: &self.rules, renderer: None }.part(chunk)?;
        summary.add_findings(found.totals);
        match found.batch {
            Some(b) => sink.findings(&b),
            None => Ok(()),
        }
    }
}

/// The replay's consumer: finding batches from the rows that fired.
struct FindingsConsumer<'a> {
    rules: &'a RuleSet,
    /// The sink's renderer, run on finished parts ([`Consumer::finish`]).
    renderer: Option<Renderer>,
}

/// The findings of one chunk and what they add to the summary.
struct FoundPart {
    batch: Option<RecordBatch>,
    /// The sink's bytes for `batch`, when it has a renderer.
    rendered: Option<Vec<u8>>,
    /// Findings per rule, containers and processes.
    totals: ReplaySummary,
}

impl Consumer for FindingsConsumer<'_> {
    type Part = FoundPart;

    fn columns(&self) -> Projection {
        self.rules.projection().union(findings_projection())
    }

    fn wants_context(&self) -> bool {
        true
    }

    fn add_context(&self, mut part: FoundPart, process: &ProcessContext) -> Result<FoundPart> {
        part.batch = part.batch.map(|b| crate::findings::fill_context(&b, process));
        Ok(part)
    }

    fn finish(&self, mut part: FoundPart) -> Result<FoundPart> {
        if let (Some(render), Some(batch)) = (&self.renderer, &part.batch) {
            part.rendered = Some(render(batch)?);
        }
        Ok(part)
    }

    fn context_events(&self, part: &FoundPart, events: &mut Vec<u64>) {
        if let Some(b) = &part.batch {
            crate::findings::context_events(b, events);
        }
    }

    fn part(&self, chunk: Chunk<'_>) -> Result<FoundPart> {
        let mut totals =
            ReplaySummary { rules: vec![RuleSummary::default(); self.rules.rules().len()], ..Default::default() };
        if chunk.hits.is_empty() {
            return Ok(FoundPart { batch: None, rendered: None, totals });
        }
        let batch = &chunk.rows;
        for h in &chunk.hits {
            totals.rules[h.rule].findings += 1;
            if let Some(c) = batch.str_value(Column::ContainerId, h.row) {
                totals.containers.insert(c.to_string());
            }
            if batch.kinds()[h.row] == crate::capture::EventKind::K8sAudit {
                // An API request: no process on a node made it.
                continue;
            }
            let pid = batch.expect(Column::Pid).as_primitive::<arrow_array::types::UInt32Type>().value(h.row);
            totals.processes.insert((
                batch.str_value(Column::Host, h.row).unwrap_or("").to_string(),
                pid,
                batch.str_value(Column::Comm, h.row).unwrap_or("").to_string(),
            ));
        }
        let infos: Vec<RuleInfo<'_>> =
            self.rules.rules().iter().map(|r| RuleInfo { id: &r.id, name: &r.name, severity: &r.severity }).collect();
        let label = chunk.capture.display().to_string();
        let findings = build_findings_at(&label, batch, &chunk.hits, &infos, chunk.process.as_deref(), |row| {
            chunk.event_index(row)
        });
        Ok(FoundPart { batch: Some(findings), rendered: None, totals })
    }
}

/// The replay's in-order half: sends finding batches on and adds up their totals.
struct FindingsOut<'s> {
    sink: &'s mut dyn FindingSink,
    totals: ReplaySummary,
}

impl PartSink<FoundPart> for FindingsOut<'_> {
    fn part(&mut self, part: FoundPart) -> Result<()> {
        self.totals.add_findings(part.totals);
        match (part.batch, part.rendered) {
            (Some(b), Some(bytes)) => self.sink.rendered(&b, bytes),
            (Some(b), None) => self.sink.findings(&b),
            (None, _) => Ok(()),
        }
    }

    fn progress(&mut self, events_done: u64, events_total: Option<u64>) {
        self.sink.progress(events_done, events_total);
    }
}
