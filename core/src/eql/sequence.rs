//! EQL sequences: the compiled query ([`EqlSequence`]) and the in-order
//! state machines that match it ([`SequenceMatcher`]).
//!
//! Each stage's condition is an ordinary single-event [`EqlQuery`] compiled
//! by the same compiler, so it can be evaluated on batches in parallel like
//! any rule. Matching the stages into sequences needs the events in order:
//! that is the job of [`SequenceMatcher`], which sees only the events some
//! stage (or `until`) selected, with their join key values.
//!
//! Semantics (Elasticsearch's EQL syntax reference, "Sequences" and "How
//! sequence queries handle matches"; see `docs/rule-semantics.md`):
//! - events are ordered by timestamp, ties broken by the caller's event id
//!   (capture order, then event index);
//! - per join key, each stage is a state holding at most one pending
//!   sequence: a newer sequence entering a state overwrites the older one;
//!   an event matching stage `i > 0` moves the sequence in state `i - 1` to
//!   state `i` (or completes it);
//! - an event moves a sequence by one stage at most;
//! - a join key must be non-null: an event whose key is null joins nothing,
//!   unless the key is written `?field`, where null is a value like any other;
//! - `maxspan` is measured from the first event's timestamp to the last's
//!   and is inclusive: a last event exactly `maxspan` after the first
//!   matches; `maxspan=0` is no limit;
//! - an `until` event drops every pending sequence of its key (an `until`
//!   event between two events of a sequence expires it); an event matching
//!   both `until` and a stage is applied as `until` first;
//! - `with runs=N` repeats a stage N times (1 to 100).
//!
//! Memory is bounded: per key at most one pending sequence per stage;
//! sequences older than `maxspan` are dropped as time advances (swept each
//! time the pending count doubles, from 4,096 on); and at most
//! [`SequenceSpec::max_pending`] pending sequences are kept in all: beyond
//! that the oldest are dropped and counted in [`SequenceOutput::dropped`].
//!
//! A sample query (`sample by ...`) is compiled into the same
//! [`EqlSequence`] (its filters are the stages, [`EqlSequence::kind`] tells
//! them apart) and its events are selected by the same
//! [`EqlSequence::stage_events`]; [`match_samples`] then builds one sample
//! per set of join key values (Elasticsearch's EQL reference, "Samples";
//! semantics in its docs and in `docs/rule-semantics.md`).

use std::collections::HashMap;

use super::ast::{JoinKind, SequenceQuery, Span};
use super::compile::{CompileError, CompileOptions, EqlQuery};
use super::parser::parse_sequence;
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use arrow_array::Array;
use arrow_schema::DataType;

use crate::capture::{Column, EventBatch, Projection};
use crate::view::ecs::{ecs_field, materialize, ECS_FIELDS};

/// Default bound on the sequences a rule keeps pending at once.
pub const DEFAULT_MAX_PENDING: usize = 100_000;

/// One stage of a compiled sequence.
#[derive(Debug, Clone)]
pub struct SequenceStage {
    /// The stage's condition, a single-event query.
    pub query: EqlQuery,
    /// The join keys: the sequence's, then the stage's.
    pub keys: Vec<KeyField>,
    /// How many times the stage repeats (`with runs=N`).
    pub runs: u32,
}

/// A compiled join key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyField {
    /// ECS field index; `None` for an unknown `?field` (always null).
    pub field: Option<usize>,
    /// Written `?field`: null joins with null.
    pub optional: bool,
}

/// A compiled sequence query.
#[derive(Debug, Clone)]
pub struct EqlSequence {
    source: String,
    ast: SequenceQuery,
    /// The stages, as written (`runs` not expanded).
    pub stages: Vec<SequenceStage>,
    /// The `until` stage.
    pub until: Option<SequenceStage>,
    /// `maxspan` in nanoseconds.
    pub maxspan: Option<i64>,
}

impl EqlSequence {
    /// Parses and compiles a sequence query; on failure returns every error
    /// found (a syntax error alone; otherwise the errors of every stage and
    /// join key), in source order.
    pub fn compile_all(src: &str, options: &CompileOptions) -> Result<EqlSequence, Vec<CompileError>> {
        let ast = parse_sequence(src).map_err(|e| vec![CompileError { message: e.message, span: e.span }])?;
        let mut errors = Vec::new();
        let key_indexes = |keys: &[super::ast::JoinKey], errors: &mut Vec<CompileError>| -> Vec<KeyField> {
            keys.iter()
                .filter_map(|k| match ecs_field(&k.name) {
                    Some((_, f)) if f.multi => {
                        errors.push(CompileError {
                            message: format!("'{}' is multi-valued: it cannot be a join key", k.name),
                            span: k.span,
                        });
                        None
                    }
                    Some((i, _)) => Some(KeyField { field: Some(i), optional: k.optional }),
                    None if k.optional => Some(KeyField { field: None, optional: true }),
                    None => {
                        errors.push(CompileError {
                            message: format!(
                                "unknown field '{}' as a join key (write '?{}' to treat it as null)",
                                k.name, k.name
                            ),
                            span: k.span,
                        });
                        None
                    }
                })
                .collect()
        };
        let shared = key_indexes(&ast.by, &mut errors);
        let compile_stage = |stage: &super::ast::Stage, errors: &mut Vec<CompileError>| {
            let text = src[stage.span.start..stage.span.end].to_string();
            let query = EqlQuery::compile_parsed(text, stage.query.clone(), options);
            let mut keys = shared.clone();
            keys.extend(key_indexes(&stage.by, errors));
            match query {
                Ok(query) => Some(SequenceStage { query, keys, runs: stage.runs }),
                Err(e) => {
                    errors.extend(e);
                    None
                }
            }
        };
        let stages: Vec<_> = ast.stages.iter().map(|s| compile_stage(s, &mut errors)).collect();
        let until = ast.until.as_ref().map(|s| compile_stage(s, &mut errors));
        if !errors.is_empty() {
            errors.sort_by_key(|e| e.span.start);
            return Err(errors);
        }
        Ok(EqlSequence {
            source: src.to_string(),
            maxspan: ast.maxspan.map(|(n, _)| n),
            stages: stages.into_iter().map(|s| s.expect("no errors")).collect(),
            until: until.map(|s| s.expect("no errors")),
            ast,
        })
    }

    /// A sequence or a sample.
    pub fn kind(&self) -> JoinKind {
        self.ast.kind
    }

    /// Matches `events` (from [`EqlSequence::stage_events`], in any order):
    /// a sequence through its state machines ([`SequenceMatcher`], at most
    /// `max_pending` pending sequences), a sample through
    /// [`match_samples`] (nothing pending, nothing dropped).
    pub fn match_events<Id: Clone + Ord>(
        &self,
        max_pending: usize,
        mut events: Vec<StageEvent<Id>>,
    ) -> SequenceOutput<Id> {
        events.sort_by(|a, b| (a.time, &a.id).cmp(&(b.time, &b.id)));
        let mut matcher = self.matcher(max_pending);
        for e in events {
            matcher.push(e);
        }
        matcher.finish()
    }

    /// A matcher fed the events of [`EqlSequence::stage_events`] one at a
    /// time in (time, id) order, as a replay reads them: a sequence's state
    /// machines (at most `max_pending` pending sequences) or a sample's
    /// candidates.
    pub fn matcher<Id: Clone + Ord>(&self, max_pending: usize) -> JoinMatcher<Id> {
        match self.kind() {
            JoinKind::Sequence => JoinMatcher::Sequence(SequenceMatcher::new(self.spec(max_pending))),
            JoinKind::Sample => JoinMatcher::Sample(SampleMatcher::new(self.stages.len())),
        }
    }

    /// The query text as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The parsed query.
    pub fn ast(&self) -> &SequenceQuery {
        &self.ast
    }

    /// The pipes after the stages (`| head N`, `| tail N`), applied to the
    /// matched sequences in the order they complete.
    pub fn pipes(&self) -> &[super::ast::Pipe] {
        &self.ast.pipes
    }

    /// Where the `sequence` (or `sample`) keyword is.
    pub fn span(&self) -> Span {
        self.ast.span
    }

    /// The capture columns needed to evaluate every stage and read the join keys.
    pub fn projection(&self) -> Projection {
        let mut p = Projection::default();
        p.insert(Column::Time);
        for stage in self.stages.iter().chain(self.until.iter()) {
            p = p.union(stage.query.projection());
            for k in stage.keys.iter().filter_map(|k| k.field) {
                for &c in ECS_FIELDS[k].columns {
                    p.insert(c);
                }
            }
        }
        p
    }

    /// Whether a stage or a join key reads process-model fields.
    pub fn needs_process(&self) -> bool {
        self.stages
            .iter()
            .chain(self.until.iter())
            .any(|s| s.query.needs_process() || s.keys.iter().any(|k| k.field.is_some_and(|f| ECS_FIELDS[f].process)))
    }

    /// The parallel half of matching: evaluates every stage (and `until`)
    /// on `batch` (which carries [`EqlSequence::projection`]) and returns the
    /// events some stage selected, with their timestamps and join key
    /// values, identified as (`capture`, event index). Events without a
    /// timestamp are skipped (they cannot be ordered).
    pub fn stage_events(&self, batch: &EventBatch, capture: usize) -> Vec<StageEvent<(usize, u64)>> {
        let Some(time) = batch.column(Column::Time) else { return Vec::new() };
        let time = time.as_primitive::<TimestampNanosecondType>();
        let stages = self.stages.iter().enumerate().map(|(i, s)| (StageRef::Stage(i), s));
        let fired: Vec<(StageRef, &SequenceStage, Vec<usize>)> = stages
            .chain(self.until.iter().map(|s| (StageRef::Until, s)))
            .map(|(which, stage)| {
                let rows = stage.query.evaluate(batch).set_indices().filter(|&r| time.is_valid(r)).collect();
                (which, stage, rows)
            })
            .filter(|(_, _, rows): &(_, _, Vec<usize>)| !rows.is_empty())
            .collect();
        let mut rows: Vec<u32> = fired.iter().flat_map(|(_, _, rows)| rows.iter().map(|&r| r as u32)).collect();
        rows.sort_unstable();
        rows.dedup();
        if rows.is_empty() {
            return Vec::new();
        }
        // The join keys are read only for the selected rows, each field once.
        let selected = batch.take(&rows);
        let mut keys: HashMap<usize, Vec<Option<String>>> = HashMap::new();
        for field in fired.iter().flat_map(|(_, stage, _)| stage.keys.iter().filter_map(|k| k.field)) {
            keys.entry(field).or_insert_with(|| key_strings(&materialize(field, &selected)));
        }
        let mut events: Vec<StageEvent<(usize, u64)>> = rows
            .iter()
            .map(|&r| StageEvent {
                time: time.value(r as usize),
                id: (capture, batch.event_index(r as usize)),
                matches: Vec::new(),
            })
            .collect();
        for (which, stage, fires) in &fired {
            for &row in fires {
                let at = rows.binary_search(&(row as u32)).expect("every selected row is among the rows");
                // Null in a required key: the event joins nothing.
                let values: JoinValues = stage
                    .keys
                    .iter()
                    .map(|k| match k.field.and_then(|f| keys[&f][at].as_ref()) {
                        Some(v) => Some(Some(v.clone())),
                        None if k.optional => Some(None),
                        None => None,
                    })
                    .collect();
                events[at].matches.push((*which, values));
            }
        }
        events
    }

    /// The matcher's parameters for this sequence, with `max_pending` as the bound.
    pub fn spec(&self, max_pending: usize) -> SequenceSpec {
        SequenceSpec { runs: self.stages.iter().map(|s| s.runs).collect(), maxspan: self.maxspan, max_pending }
    }
}

/// What the matcher needs to know about a sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceSpec {
    /// `runs` of each stage as written (at least two stages once expanded).
    pub runs: Vec<u32>,
    /// `maxspan` in nanoseconds.
    pub maxspan: Option<i64>,
    /// Most sequences kept pending at once, all keys together (at least 1).
    pub max_pending: usize,
}

/// Which part of a sequence an event matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StageRef {
    /// Stage `n` as written (0-based; `runs` not expanded).
    Stage(usize),
    /// The `until` stage.
    Until,
}

/// The join key values of an event for one stage (`None` inside for a null
/// `?field`); `None` when a required key is null or missing (the event then
/// joins nothing).
pub type JoinValues = Option<Vec<Option<String>>>;

/// An event some stage selected, for [`SequenceMatcher::run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageEvent<Id> {
    /// Its timestamp in nanoseconds.
    pub time: i64,
    /// Its identity; ties in `time` are broken by it (capture order, then event index).
    pub id: Id,
    /// Each stage it matched, with its join key values for that stage.
    pub matches: Vec<(StageRef, JoinValues)>,
}

/// One matched sequence: its events in order, each with the stage (as
/// written) it matched.
pub type Sequence<Id> = Vec<(Id, usize)>;

/// What [`SequenceMatcher::run`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceOutput<Id> {
    /// The sequences, in the order they completed.
    pub sequences: Vec<Sequence<Id>>,
    /// Pending sequences dropped because [`SequenceSpec::max_pending`] was reached.
    pub dropped: u64,
}

/// A pending sequence: its events so far and its first event's time.
#[derive(Debug, Clone)]
struct Partial<Id> {
    start: i64,
    events: Vec<(Id, usize)>,
}

/// The per-key state machines of one sequence.
#[derive(Debug)]
pub struct SequenceMatcher<Id> {
    spec: SequenceSpec,
    /// Stage as written of each expanded stage.
    expanded: Vec<usize>,
    /// Per key: per expanded stage `i`, the pending sequence that has
    /// matched stages `0..=i` (the last stage is never pending).
    pending: HashMap<Vec<Option<String>>, Vec<Option<Partial<Id>>>>,
    count: usize,
    /// With `maxspan`: the pending count beyond which sequences that can no
    /// longer complete are swept (twice the count left by the last sweep).
    sweep_at: usize,
    out: SequenceOutput<Id>,
}

/// Fewest pending sequences worth a sweep of the expired ones.
const MIN_SWEEP: usize = 4096;

impl<Id: Clone + Ord> SequenceMatcher<Id> {
    /// A matcher for `spec`.
    pub fn new(spec: SequenceSpec) -> Self {
        let expanded = spec.runs.iter().enumerate().flat_map(|(i, &n)| std::iter::repeat_n(i, n as usize)).collect();
        SequenceMatcher {
            spec,
            expanded,
            pending: HashMap::new(),
            count: 0,
            sweep_at: MIN_SWEEP,
            out: SequenceOutput { sequences: Vec::new(), dropped: 0 },
        }
    }

    /// Matches `events` (in any order: they are sorted by time, then id).
    pub fn run(spec: SequenceSpec, mut events: Vec<StageEvent<Id>>) -> SequenceOutput<Id> {
        events.sort_by(|a, b| (a.time, &a.id).cmp(&(b.time, &b.id)));
        let mut m = SequenceMatcher::new(spec);
        for e in events {
            m.push(e);
        }
        m.finish()
    }

    /// Feeds one event; events must come in (time, id) order.
    pub fn push(&mut self, event: StageEvent<Id>) {
        let mut matches = event.matches;
        // `until` first, then the stages from last to first, so that an event
        // moves a sequence by one stage at most.
        matches.sort_by_key(|(s, _)| match s {
            StageRef::Until => (0, 0),
            StageRef::Stage(n) => (1, usize::MAX - n),
        });
        for (stage, key) in matches {
            let Some(key) = key else { continue };
            let written = match stage {
                StageRef::Until => {
                    if let Some(states) = self.pending.remove(&key) {
                        self.count -= states.iter().flatten().count();
                    }
                    continue;
                }
                StageRef::Stage(n) => n,
            };
            let stages: Vec<usize> = (0..self.expanded.len()).rev().filter(|&i| self.expanded[i] == written).collect();
            for i in stages {
                self.advance(i, &key, event.time, &event.id, written);
            }
        }
        if self.count > self.spec.max_pending {
            self.shed(event.time);
        } else if self.count > self.sweep_at && self.spec.maxspan.is_some() {
            self.expire(event.time);
            self.sweep_at = (2 * self.count).max(MIN_SWEEP);
        }
    }

    /// Event `id` at `time` matches expanded stage `i` for `key`.
    fn advance(&mut self, i: usize, key: &[Option<String>], time: i64, id: &Id, written: usize) {
        let last = self.expanded.len() - 1;
        let partial = if i == 0 {
            Partial { start: time, events: vec![(id.clone(), written)] }
        } else {
            let Some(states) = self.pending.get_mut(key) else { return };
            let Some(mut partial) = states[i - 1].take() else { return };
            self.count -= 1;
            if self.spec.maxspan.is_some_and(|span| time - partial.start > span) {
                return;
            }
            partial.events.push((id.clone(), written));
            partial
        };
        if i == last {
            self.out.sequences.push(partial.events);
            return;
        }
        let states = self.pending.entry(key.to_vec()).or_insert_with(|| vec![None; last]);
        // A newer sequence overwrites the one pending in the same state.
        if states[i].replace(partial).is_none() {
            self.count += 1;
        }
    }

    /// Drops pending sequences that can no longer complete (older than
    /// `maxspan` at `now`), then, while still over the bound, the oldest,
    /// down to 90% of the bound so that shedding stays rare.
    fn shed(&mut self, now: i64) {
        self.expire(now);
        if self.count <= self.spec.max_pending {
            return;
        }
        let keep = self.spec.max_pending - self.spec.max_pending / 10;
        let mut starts: Vec<i64> = self.pending.values().flat_map(|s| s.iter().flatten()).map(|p| p.start).collect();
        starts.sort_unstable();
        let cut = starts[self.count - keep - 1];
        let mut excess = self.count - keep;
        // Strictly older than the cut first, then ties at the cut.
        for strictly in [true, false] {
            for states in self.pending.values_mut() {
                for s in states.iter_mut() {
                    let old = s.as_ref().is_some_and(|p| if strictly { p.start < cut } else { p.start == cut });
                    if excess > 0 && old {
                        *s = None;
                        excess -= 1;
                    }
                }
            }
        }
        self.pending.retain(|_, states| states.iter().any(Option::is_some));
        let before = self.count;
        self.count = self.pending.values().map(|s| s.iter().flatten().count()).sum();
        self.out.dropped += (before - self.count) as u64;
    }

    /// Drops the pending sequences older than `maxspan` at `now` (they can
    /// no longer complete: nothing a later event does changes). Events come
    /// in time order, so memory follows the sequences started within the
    /// last `maxspan`, not the length of the capture.
    fn expire(&mut self, now: i64) {
        if let Some(span) = self.spec.maxspan {
            for states in self.pending.values_mut() {
                for s in states.iter_mut() {
                    if s.as_ref().is_some_and(|p| now - p.start > span) {
                        *s = None;
                    }
                }
            }
        }
        self.pending.retain(|_, states| states.iter().any(Option::is_some));
        self.count = self.pending.values().map(|s| s.iter().flatten().count()).sum();
    }

    /// Sequences pending now.
    pub fn pending(&self) -> usize {
        self.count
    }

    /// The sequences matched so far and the count of dropped pending sequences.
    pub fn finish(self) -> SequenceOutput<Id> {
        self.out
    }
}

/// Builds the samples of a sample query of `filters` filters from the
/// events its filters selected (in any order).
///
/// One sample per set of join key values (Elasticsearch's
/// `max_samples_per_key` default of 1) that can give every filter its own
/// event: one event never fills two filters of a sample. Which events:
/// the candidates of each filter are taken in (time, id) order, and the
/// filters are filled in order, each with its earliest candidate not taken
/// by an earlier filter, backtracking when a later filter is left with
/// none (so filter 1 = {A, B} and filter 2 = {A} gives (B, A), not
/// nothing). Per key and filter only the first `filters` candidates are
/// kept: among them one is always free whatever the other filters took, so
/// the choice is the same as with all of them.
///
/// Each sample lists its events in (time, id) order with the filter (0-based)
/// each fills; samples come in the order of their events' (time, id). A
/// `StageRef::Until` match is ignored (a sample has no `until`).
pub fn match_samples<Id: Clone + Ord>(filters: usize, mut events: Vec<StageEvent<Id>>) -> SequenceOutput<Id> {
    events.sort_by(|a, b| (a.time, &a.id).cmp(&(b.time, &b.id)));
    let mut m = SampleMatcher::new(filters);
    for e in events {
        m.push(e);
    }
    m.finish()
}

/// The candidates of a sample query, fed events in (time, id) order; see
/// [`match_samples`] for the choice it makes at the end. It keeps, per set
/// of join key values, at most `filters` candidates per filter.
#[derive(Debug)]
pub struct SampleMatcher<Id> {
    filters: usize,
    /// Per key, in order of first appearance: its position in `candidates`.
    slot: HashMap<Vec<Option<String>>, usize>,
    /// Per key, per filter: the earliest candidates, as (time, id).
    candidates: Vec<Vec<Vec<(i64, Id)>>>,
}

impl<Id: Clone + Ord> SampleMatcher<Id> {
    /// A matcher for a sample of `filters` filters.
    pub fn new(filters: usize) -> Self {
        SampleMatcher { filters, slot: HashMap::new(), candidates: Vec::new() }
    }

    /// Feeds one event; events must come in (time, id) order.
    pub fn push(&mut self, event: StageEvent<Id>) {
        for (stage, key) in event.matches {
            let (StageRef::Stage(filter), Some(key)) = (stage, key) else { continue };
            if filter >= self.filters {
                continue;
            }
            let k = *self.slot.entry(key).or_insert_with(|| {
                self.candidates.push(vec![Vec::new(); self.filters]);
                self.candidates.len() - 1
            });
            let list = &mut self.candidates[k][filter];
            if list.len() < self.filters && list.last().is_none_or(|(_, id)| *id != event.id) {
                list.push((event.time, event.id.clone()));
            }
        }
    }

    /// The samples, in the order of their events' (time, id).
    pub fn finish(self) -> SequenceOutput<Id> {
        let mut samples: Vec<Vec<(&(i64, Id), usize)>> = self
            .candidates
            .iter()
            .filter_map(|lists| {
                let mut chosen = Vec::with_capacity(self.filters);
                fill(lists, &mut chosen).then(|| {
                    let mut sample: Vec<(&(i64, Id), usize)> =
                        chosen.into_iter().enumerate().map(|(f, at)| (at, f)).collect();
                    sample.sort();
                    sample
                })
            })
            .collect();
        samples.sort();
        let sequences = samples
            .into_iter()
            .map(|sample| sample.into_iter().map(|(at, filter)| (at.1.clone(), filter)).collect())
            .collect();
        SequenceOutput { sequences, dropped: 0 }
    }
}

/// A sequence's or a sample's matcher ([`EqlSequence::matcher`]).
#[derive(Debug)]
pub enum JoinMatcher<Id> {
    /// A sequence's state machines.
    Sequence(SequenceMatcher<Id>),
    /// A sample's candidates.
    Sample(SampleMatcher<Id>),
}

impl<Id: Clone + Ord> JoinMatcher<Id> {
    /// Feeds one event; events must come in (time, id) order.
    pub fn push(&mut self, event: StageEvent<Id>) {
        match self {
            JoinMatcher::Sequence(m) => m.push(event),
            JoinMatcher::Sample(m) => m.push(event),
        }
    }

    /// What was matched (and, for a sequence, how many pending sequences were dropped).
    pub fn finish(self) -> SequenceOutput<Id> {
        match self {
            JoinMatcher::Sequence(m) => m.finish(),
            JoinMatcher::Sample(m) => m.finish(),
        }
    }
}

/// Gives filter `chosen.len()` and every later one a candidate of its own
/// (the earliest that lets the rest be filled); false when none can.
fn fill<'a, T: PartialEq>(lists: &'a [Vec<T>], chosen: &mut Vec<&'a T>) -> bool {
    let filter = chosen.len();
    if filter == lists.len() {
        return true;
    }
    for at in &lists[filter] {
        if chosen.contains(&at) {
            continue;
        }
        chosen.push(at);
        if fill(lists, chosen) {
            return true;
        }
        chosen.pop();
    }
    false
}

/// The values of a single-valued ECS field as strings, `None` where null.
fn key_strings(array: &arrow_array::ArrayRef) -> Vec<Option<String>> {
    let strings = arrow_cast::cast(array, &DataType::Utf8).expect("single-valued ECS fields cast to strings");
    let strings = strings.as_string::<i32>();
    (0..strings.len()).map(|i| strings.is_valid(i).then(|| strings.value(i).to_string())).collect()
}
