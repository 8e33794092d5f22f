//! Blind spots: events that touch service-account credentials but that no
//! loaded rule flagged, grouped by why. Only opens and execs count: rows of
//! the other kinds (`fork`, `exit`, `process` snapshots, `container`
//! metadata) are not events a rule could see, even when a snapshot's argv
//! names a token path.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::Array;

use crate::capture::{str_at, Column, EventBatch, EventKind, Projection};
use crate::driver::{Chunk, Consumer, Driver};
use crate::error::Result;
use crate::replay::{ReplayOptions, ReplaySummary};
use crate::rules::RuleSet;

/// Substrings (compared lower-cased) that mark a path or argument as
/// touching service-account credentials: the in-pod mount and kubelet's
/// projected volume on the node.
pub const CREDENTIAL_MARKERS: &[&str] =
    &["secrets/kubernetes.io/serviceaccount", "kubernetes.io~projected/kube-api-access-"];

/// Why no rule flagged an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GapKind {
    /// The open failed, so it never reached either rule's view.
    FailedOpen,
    /// The event happened on the host; both rules look at containers only.
    HostOrigin,
    /// A signature allow-lists the process name.
    AllowListed,
    /// A rule could not evaluate the event (e.g. null flags).
    Unevaluable,
    /// An open whose path matches none of the rules' path patterns.
    PathOutsidePatterns,
    /// A read-only open: Defend for Containers logs none, so the Elastic file branch cannot see it.
    ReadOnlyOpen,
    /// Any other open.
    OtherOpen,
    /// An exec the Elastic exec branch does not match (no tty, reader not listed, argv without the path).
    ExecNotMatched,
}

impl GapKind {
    /// A one-line explanation for reports.
    pub fn describe(self) -> &'static str {
        match self {
            GapKind::FailedOpen => "failed open: never reaches either rule's view",
            GapKind::HostOrigin => "host origin: both rules only look at containers",
            GapKind::AllowListed => "allow-listed process",
            GapKind::Unevaluable => "a rule could not evaluate the event",
            GapKind::PathOutsidePatterns => "path outside every rule's path pattern",
            GapKind::ReadOnlyOpen => {
                "read-only open: invisible to the Elastic file branch (Defend for Containers logs write intent only)"
            }
            GapKind::OtherOpen => "open not flagged for another reason (see each rule's why-not)",
            GapKind::ExecNotMatched => "exec not matched by the Elastic exec branch",
        }
    }
    /// A stable short name for machine output.
    pub fn code(self) -> &'static str {
        match self {
            GapKind::FailedOpen => "failed_open",
            GapKind::HostOrigin => "host_origin",
            GapKind::AllowListed => "allow_listed",
            GapKind::Unevaluable => "unevaluable",
            GapKind::PathOutsidePatterns => "path_outside_patterns",
            GapKind::ReadOnlyOpen => "read_only_open",
            GapKind::OtherOpen => "other_open",
            GapKind::ExecNotMatched => "exec_not_matched",
        }
    }
}

/// One unflagged credential-touching event.
#[derive(Debug, Clone)]
pub struct Gap {
    /// Capture file.
    pub capture: PathBuf,
    /// Event index.
    pub event_index: u64,
    /// Why it went unflagged.
    pub kind: GapKind,
    /// `open` or `exec`.
    pub event_kind: EventKind,
    /// Process name.
    pub comm: String,
    /// Process id.
    pub pid: u32,
    /// Container id, if any.
    pub container_id: Option<String>,
    /// The credential-touching value (path, requested path or argument).
    pub touched: String,
    /// For each rule: `(rule_id, why it did not fire)`.
    pub why_not: Vec<(String, String)>,
}

fn touches(s: &str) -> bool {
    let l = s.to_lowercase();
    CREDENTIAL_MARKERS.iter().any(|m| l.contains(m))
}

fn touched_value(batch: &EventBatch, row: usize) -> Option<String> {
    for c in [Column::Path, Column::RequestedPath] {
        if let Some(s) = batch.str_value(c, row).filter(|s| touches(s)) {
            return Some(s.to_string());
        }
    }
    let args = batch.column(Column::Args)?.as_list::<i32>();
    if args.is_valid(row) {
        let v = args.value(row);
        return (0..v.len()).filter_map(|j| str_at(v.as_ref(), j)).find(|s| touches(s)).map(str::to_string);
    }
    None
}

/// Lists the credential-touching events of `captures` that no rule of `rules` flagged.
///
/// The captures are read by the [`Driver`], as a replay reads them: the
/// returned summary counts the events read and, per rule, the events it could
/// not evaluate (an error under [`ReplayOptions::strict`]), and lists the
/// captures that could not be read completely (with
/// [`ReplayOptions::skip_unreadable`]; otherwise they are errors).
pub fn find_gaps<P: AsRef<Path>>(
    rules: &RuleSet,
    captures: &[P],
    options: &ReplayOptions,
) -> Result<(ReplaySummary, Vec<Gap>)> {
    let consumer = GapConsumer { rules };
    let mut gaps = Vec::new();
    let summary = Driver::new(rules.rules(), options).run(captures, &consumer, &mut |part: Vec<Gap>| {
        gaps.extend(part);
        Ok(())
    })?;
    Ok((summary, gaps))
}

/// The consumer of `gaps`: keeps the credential-touching rows and lists those no rule fired on.
struct GapConsumer<'a> {
    rules: &'a RuleSet,
}

impl Consumer for GapConsumer<'_> {
    type Part = Vec<Gap>;

    fn columns(&self) -> Projection {
        self.rules
            .projection()
            .union(crate::findings::findings_projection())
            .union([Column::Result, Column::Args, Column::Path, Column::RequestedPath].into_iter().collect())
    }

    fn scan_columns(&self) -> Projection {
        [Column::Args, Column::Path, Column::RequestedPath].into_iter().collect()
    }

    fn keep(&self, _capture: &Path, batch: &EventBatch, rows: &mut Vec<u32>) {
        let kinds = batch.kinds();
        rows.extend(
            (0..batch.len())
                .filter(|&row| kinds[row].is_rule_event() && touched_value(batch, row).is_some())
                .map(|row| row as u32),
        );
    }

    fn part(&self, chunk: Chunk<'_>) -> Result<Vec<Gap>> {
        let batch = &chunk.rows;
        let flagged: HashSet<usize> = chunk.hits.iter().map(|h| h.row).collect();
        let unevaluable: HashSet<u64> = chunk.unevaluable.iter().map(|(_, ix, _)| *ix).collect();
        let mut gaps = Vec::new();
        for row in 0..batch.len() {
            if flagged.contains(&row) {
                continue;
            }
            if !batch.kinds()[row].is_rule_event() {
                continue;
            }
            let Some(touched) = touched_value(batch, row) else { continue };
            let event_index = chunk.event_index(row);
            let why_not: Vec<(String, String)> =
                self.rules.rules().iter().map(|r| (r.id.clone(), r.why_not(batch, row))).collect();
            let kind = classify(self.rules, batch, row, unevaluable.contains(&event_index));
            gaps.push(Gap {
                capture: chunk.capture.to_owned(),
                event_index,
                kind,
                event_kind: batch.kinds()[row],
                comm: batch.str_value(Column::Comm, row).unwrap_or("").to_string(),
                pid: batch.expect(Column::Pid).as_primitive::<arrow_array::types::UInt32Type>().value(row),
                container_id: batch.str_value(Column::ContainerId, row).map(str::to_string),
                touched,
                why_not,
            });
        }
        Ok(gaps)
    }
}

fn classify(rules: &RuleSet, batch: &EventBatch, row: usize, unevaluable: bool) -> GapKind {
    let kind = batch.kinds()[row];
    let result = batch.expect(Column::Result).as_primitive::<Int64Type>();
    if kind == EventKind::Open && result.is_valid(row) && result.value(row) < 0 {
        return GapKind::FailedOpen;
    }
    if batch.expect(Column::ContainerId).is_null(row) {
        return GapKind::HostOrigin;
    }
    if kind == EventKind::Exec {
        return GapKind::ExecNotMatched;
    }
    let comm = batch.str_value(Column::Comm, row).unwrap_or("");
    if rules.rules().iter().any(|r| r.logic.allow_lists(comm)) {
        return GapKind::AllowListed;
    }
    if unevaluable {
        return GapKind::Unevaluable;
    }
    let path = batch.str_value(Column::Path, row).unwrap_or("");
    let path_verdicts: Vec<bool> = rules.rules().iter().filter_map(|r| r.logic.path_pattern_matches(path)).collect();
    if !path_verdicts.is_empty() && !path_verdicts.contains(&true) {
        return GapKind::PathOutsidePatterns;
    }
    let flags = batch.expect(Column::Flags).as_primitive::<Int32Type>();
    if flags.is_valid(row) && crate::display::AccessMode::of(flags.value(row)) == crate::display::AccessMode::ReadOnly {
        return GapKind::ReadOnlyOpen;
    }
    GapKind::OtherOpen
}
