//! The triage report (`tokenscan report`, `tokenscan.report`): what a
//! responder hands over after a replay, as one self-contained HTML file.
//!
//! [`report_data`] computes the report's data once, as one serializable
//! [`ReportData`] (the capture summary, findings per rule and per container,
//! a bucketed timeline per container, the process tree of each pod or session
//! with findings, and the blind spots of [`crate::gaps`]); [`render_html`] embeds it
//! as JSON in a page whose inline script builds the view with `textContent`
//! only. Every string from a capture stays data: the JSON is escaped so that
//! nothing in it can close its `<script>` element, and the page's content
//! security policy forbids every network request.
//!
//! The output is deterministic (no generation time; every list sorted or in
//! capture order) and its size bounded whatever the capture holds. Every
//! string from a capture is cut ([`MAX_NAME`] characters for ids and names,
//! [`MAX_STRING`] for paths, arguments' text and reasons, [`MAX_ARG`] per
//! argument), and every list a capture can make long has a count and a byte
//! budget, measured on the JSON as the page holds it (with its `\u003c`
//! escapes, so a string of `<` costs 6 bytes a character): the summary's
//! containers and processes ([`MAX_SUMMARY_LIST`], [`MAX_SUMMARY_BYTES`]
//! each), the findings table ([`MAX_FINDING_ROWS`], [`MAX_FINDING_BYTES`]),
//! the trees ([`MAX_TREE_NODES`], [`MAX_TREE_BYTES`]), the gap examples
//! ([`MAX_GAP_EXAMPLES`] per kind, [`MAX_GAP_BYTES`] in all); the timeline
//! has at most [`TIMELINE_ROWS`] rows of [`TIMELINE_BUCKETS`] counts and each
//! capture's metadata [`MAX_METADATA_ENTRIES`] entries. What is left out is
//! counted in the data. For one capture and the built-in rules the page is at
//! most [`MAX_REPORT_BYTES`]; `cli/tests/report.rs` checks it on a generated
//! capture that hits every limit with markup-heavy strings.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, TimestampNanosecondType, UInt32Type};
use arrow_array::Array;
use serde::Serialize;

use crate::capture::{Column, EventBatch, EventKind, Projection};
use crate::driver::{Chunk, Consumer, Driver};
use crate::error::Result;
use crate::gaps::find_gaps;
use crate::process::{process_trees, EntityRef, ProcessContext, ProcessTree, TreeFilter, TreeFinding, TreeNode};
use crate::replay::{ReplayOptions, ReplaySummary};
use crate::rules::{Rule, RuleSet, BUILTIN_RULES};

/// Buckets of the timeline: the page shows them 4 to a bar at its first zoom
/// level and one to a bar from zoom 4x on.
pub const TIMELINE_BUCKETS: usize = 480;
/// Containers the timeline shows on their own row (the busiest; the others share one row).
pub const TIMELINE_ROWS: usize = 40;
/// Process tree nodes the report holds (the rest are counted).
pub const MAX_TREE_NODES: usize = 500;
/// Arguments kept per process (each cut to [`MAX_ARG`] characters).
pub const MAX_NODE_ARGS: usize = 32;
/// Characters kept of one argument.
pub const MAX_ARG: usize = 256;
/// Findings kept per process (the rest are counted).
pub const MAX_NODE_FINDINGS: usize = 10;
/// Containers and processes listed in the summary (the rest are counted).
pub const MAX_SUMMARY_LIST: usize = 1000;
/// Examples kept per kind of gap.
pub const MAX_GAP_EXAMPLES: usize = 20;
/// Rows of the findings-per-container table (the rest are counted).
pub const MAX_FINDING_ROWS: usize = 1000;
/// Characters kept of any other string from a capture (the rest become `…`).
pub const MAX_STRING: usize = 1024;
/// Characters kept of an id or name from a capture: container ids, pod
/// namespaces and names, container names, hosts, process names (Kubernetes
/// names and DNS host names are at most 253 characters).
pub const MAX_NAME: usize = 256;
/// Escaped JSON bytes of each of the summary's two lists (containers, processes).
pub const MAX_SUMMARY_BYTES: usize = 512 << 10;
/// Escaped JSON bytes of the findings table's rows.
pub const MAX_FINDING_BYTES: usize = 1 << 20;
/// Escaped JSON bytes of all tree nodes.
pub const MAX_TREE_BYTES: usize = 4 << 20;
/// Escaped JSON bytes of all gap examples.
pub const MAX_GAP_BYTES: usize = 1 << 20;
/// Metadata entries kept per capture (keys and values cut to [`MAX_STRING`]).
pub const MAX_METADATA_ENTRIES: usize = 20;
/// The most bytes the page has for one capture and the built-in rules: the
/// budgets above, the timeline (at most 40 rows of 2 x 480 counts and two
/// names: under 1 MiB), the metadata of one capture (under 256 KiB) and the
/// page's markup and script, with room to spare. Each further capture adds
/// at most its metadata and paths; each further rule its row and examples.
pub const MAX_REPORT_BYTES: usize = 9 << 20;

/// Everything the report shows.
#[derive(Debug, Clone, Serialize)]
pub struct ReportData {
    /// The replay summary ([`crate::summary::summary_json`]).
    pub summary: serde_json::Value,
    /// Each capture's file metadata (recorder version and options, lost
    /// events...), without Arrow's own schema entry; empty for NDJSON.
    pub capture_metadata: Vec<CaptureMetadata>,
    /// The rules, with their findings.
    pub rules: Vec<ReportRule>,
    /// Findings per container and rule (the host is a container of id null).
    pub findings: Vec<ContainerFindings>,
    /// Finding rows left out by [`MAX_FINDING_ROWS`] or [`MAX_FINDING_BYTES`].
    pub findings_omitted: usize,
    /// Activity over time per container.
    pub timeline: Timeline,
    /// One tree per pod container or host session with findings, per
    /// capture: its processes with findings and their ancestors.
    pub trees: Vec<ReportTree>,
    /// Tree nodes left out by [`MAX_TREE_NODES`] or [`MAX_TREE_BYTES`].
    pub tree_nodes_omitted: usize,
    /// Credential touches no rule flagged, grouped by why.
    pub gaps: Vec<GapGroup>,
}

/// The file metadata of one capture.
#[derive(Debug, Clone, Serialize)]
pub struct CaptureMetadata {
    /// The capture.
    pub capture: String,
    /// Its key-value metadata (the first [`MAX_METADATA_ENTRIES`] entries, cut to [`MAX_STRING`]).
    pub metadata: BTreeMap<String, String>,
    /// Events the recorder lost (`tokenscan.lost_events`), when it says so.
    pub lost_events: Option<u64>,
}

/// One rule of the report.
#[derive(Debug, Clone, Serialize)]
pub struct ReportRule {
    /// Rule id.
    pub id: String,
    /// Rule name.
    pub name: String,
    /// Severity.
    pub severity: String,
    /// The rule's kind (`eql`, `signature`).
    pub kind: String,
    /// The version its file states ([`rule_version`]), if any.
    pub version: Option<String>,
    /// The file it was loaded from.
    pub source: String,
    /// SHA-256 of that file's text, lowercase hex ([`crate::rules::Rule::text_sha256`]).
    pub text_sha256: String,
    /// Its findings.
    pub findings: u64,
    /// Events it could not evaluate.
    pub unevaluable: u64,
}

/// The findings of one rule in one container.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ContainerFindings {
    /// Pod namespace, when the capture has container metadata.
    pub namespace: Option<String>,
    /// Pod name, when known.
    pub pod: Option<String>,
    /// Container name, when known.
    pub container_name: Option<String>,
    /// Container id (none: the host).
    pub container_id: Option<String>,
    /// Rule id.
    pub rule_id: String,
    /// The rule's severity.
    pub severity: String,
    /// Number of findings.
    pub findings: u64,
}

/// Events and findings per container over time, in equal buckets.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timeline {
    /// Start of the first bucket (ns since the epoch; 0 without events).
    pub start_ns: i64,
    /// Width of a bucket in nanoseconds (at least 1).
    pub bucket_ns: i64,
    /// One row per container, busiest first; the last may be `other`.
    pub rows: Vec<TimelineRow>,
}

/// One container's row of the timeline.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TimelineRow {
    /// What the row shows: `namespace/pod/container`, a short container id,
    /// `host`, or `other containers`.
    pub label: String,
    /// Container id (none for the host and for the shared row).
    pub container_id: Option<String>,
    /// Events per bucket.
    pub events: Vec<u64>,
    /// Findings per bucket.
    pub findings: Vec<u64>,
}

/// The process tree of one pod container or one session with findings.
///
/// A process with findings belongs to the group of its container (with its
/// pod, when the capture has container metadata) or, on the host, to the
/// host; within that, to the session of its first finding's event (the
/// process whose pid is that event's session id, when the capture has
/// session ids). The tree holds those processes and their ancestors, so an
/// ancestor (a container runtime's shim, a host shell) can appear in several
/// groups.
#[derive(Debug, Clone, Serialize)]
pub struct ReportTree {
    /// The capture.
    pub capture: String,
    /// `pod namespace/pod:container` for a container with pod metadata,
    /// `container <short id>` for one without, `host` for the host.
    pub scope: String,
    /// The container id (none: the host).
    pub container_id: Option<String>,
    /// The session leader, when the capture has session ids.
    pub session: Option<SessionLeader>,
    /// Findings on the group's processes.
    pub findings: usize,
    /// Its processes, depth first (depth as in the capture's whole forest).
    pub nodes: Vec<ReportNode>,
}

/// The leader of a session: the process whose pid is the session id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct SessionLeader {
    /// Process id (the session id).
    pub pid: u32,
    /// Process name, when the capture shows it.
    pub name: Option<String>,
}

/// One process of a tree.
#[derive(Debug, Clone, Serialize)]
pub struct ReportNode {
    /// Depth below the tree's roots.
    pub depth: usize,
    /// Process id.
    pub pid: u32,
    /// Process name.
    pub name: Option<String>,
    /// Argument vector.
    pub args: Option<Vec<String>>,
    /// Container id.
    pub container_id: Option<String>,
    /// `namespace/pod`, when known.
    pub pod: Option<String>,
    /// Whether it is the group's session leader.
    pub session_leader: bool,
    /// The findings on the process (the first [`MAX_NODE_FINDINGS`]).
    pub findings: Vec<NodeFinding>,
    /// Findings on the process left out.
    pub findings_omitted: usize,
    /// Arguments left out by [`MAX_NODE_ARGS`].
    pub args_omitted: usize,
}

/// One finding of a tree node.
#[derive(Debug, Clone, Serialize)]
pub struct NodeFinding {
    /// Event index in the capture.
    pub event_index: u64,
    /// Rule id.
    pub rule_id: String,
    /// Why it fired.
    pub reason: String,
}

/// The gaps of one kind.
#[derive(Debug, Clone, Serialize)]
pub struct GapGroup {
    /// Stable short name ([`crate::gaps::GapKind::code`]).
    pub code: String,
    /// Explanation.
    pub description: String,
    /// Number of events.
    pub count: usize,
    /// The first examples (at most [`MAX_GAP_EXAMPLES`], within [`MAX_GAP_BYTES`]
    /// for all kinds); `count` counts them all.
    pub examples: Vec<GapExample>,
}

/// One unflagged credential touch.
#[derive(Debug, Clone, Serialize)]
pub struct GapExample {
    /// Capture file.
    pub capture: String,
    /// Event index.
    pub event_index: u64,
    /// Process name.
    pub comm: String,
    /// Process id.
    pub pid: u32,
    /// Container id.
    pub container_id: Option<String>,
    /// What it touched.
    pub touched: String,
}

fn cut(s: &str) -> String {
    cut_to(s, MAX_STRING)
}

fn cut_name(s: &str) -> String {
    cut_to(s, MAX_NAME)
}

/// Bytes of `json` once escaped by [`script_json`].
fn escaped_len(json: &str) -> usize {
    json.chars().map(|c| if matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}') { 6 } else { c.len_utf8() }).sum()
}

/// Bytes of `item` in the page's JSON.
fn page_bytes<T: Serialize + ?Sized>(item: &T) -> usize {
    // Plain structs, string map keys and finite numbers only: serializing cannot fail.
    escaped_len(&serde_json::to_string(item).expect("report data serializes"))
}

/// Keeps the first items of `items` while there are at most `max_items` and
/// they take at most `max_bytes` of the page; returns how many were left out.
fn keep_within<T: Serialize>(items: &mut Vec<T>, max_items: usize, max_bytes: usize) -> usize {
    let mut bytes = 0;
    let keep = items
        .iter()
        .take(max_items)
        .take_while(|item| {
            bytes += page_bytes(*item) + 1;
            bytes <= max_bytes
        })
        .count();
    let omitted = items.len() - keep;
    items.truncate(keep);
    omitted
}

/// Cuts every string in `v` to [`MAX_STRING`] characters.
fn cut_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) if s.chars().nth(MAX_STRING).is_some() => *s = cut(s),
        serde_json::Value::Array(items) => items.iter_mut().for_each(cut_json),
        serde_json::Value::Object(map) => map.values_mut().for_each(cut_json),
        _ => {}
    }
}

fn cut_to(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// Per-chunk counts: (container, bucket) -> (events, findings), (container,
/// rule) -> findings, the processes with findings (what a replay's summary
/// counts, which the gaps pass leaves out) and the captures where a rule fired.
#[derive(Default)]
struct Counts {
    buckets: BTreeMap<(Option<String>, usize), (u64, u64)>,
    findings: BTreeMap<(Option<String>, usize), u64>,
    /// `(host, pid, comm)` of the processes with findings.
    processes: BTreeSet<(String, u32, String)>,
    /// Captures with at least one finding.
    hit_captures: BTreeSet<PathBuf>,
    /// `container` rows in event order: (id, pod namespace, pod name, container name).
    containers: Vec<(String, [Option<String>; 3])>,
}

struct TimelineConsumer {
    start: i64,
    bucket: i64,
}

impl TimelineConsumer {
    fn bucket_of(&self, t: Option<i64>) -> usize {
        let t = t.unwrap_or(self.start);
        ((t.saturating_sub(self.start)) / self.bucket).clamp(0, TIMELINE_BUCKETS as i64 - 1) as usize
    }
}

/// The container of each row as a small number, and the containers those
/// numbers stand for: from a dictionary column's keys without looking at the
/// strings, otherwise by comparing each row with the previous one (events of
/// one container come in runs) and hashing only when it changes.
fn container_slots(rows: &EventBatch) -> (Vec<u32>, Vec<Option<String>>) {
    let n = rows.len();
    let Some(col) = rows.column(Column::ContainerId) else { return (vec![0; n], vec![None]) };
    if let Some(dict) = col.as_dictionary_opt::<Int32Type>() {
        // Slot 0 is null; slot k + 1 is dictionary value k.
        let values = dict.values();
        let mut names = vec![None];
        names.extend((0..values.len()).map(|k| crate::capture::str_at(values.as_ref(), k).map(str::to_string)));
        let keys = dict.keys();
        let slots = (0..n).map(|r| if keys.is_valid(r) { keys.value(r) as u32 + 1 } else { 0 }).collect();
        return (slots, names);
    }
    let mut index: HashMap<Option<&str>, u32> = HashMap::new();
    let mut names = Vec::new();
    let mut slots = Vec::with_capacity(n);
    let mut last: Option<(Option<&str>, u32)> = None;
    for r in 0..n {
        let id = crate::capture::str_at(col.as_ref(), r);
        let slot = match last {
            Some((prev, slot)) if prev == id => slot,
            _ => *index.entry(id).or_insert_with(|| {
                names.push(id.map(str::to_string));
                names.len() as u32 - 1
            }),
        };
        last = Some((id, slot));
        slots.push(slot);
    }
    (slots, names)
}

impl Consumer for TimelineConsumer {
    type Part = Counts;

    fn columns(&self) -> Projection {
        [
            Column::Time,
            Column::ContainerId,
            Column::Host,
            Column::Pid,
            Column::Comm,
            Column::PodNamespace,
            Column::PodName,
            Column::ContainerName,
        ]
        .into_iter()
        .collect()
    }

    fn keep_all(&self) -> bool {
        true
    }

    fn part(&self, chunk: Chunk<'_>) -> Result<Counts> {
        let rows = &chunk.rows;
        let time = rows.expect(Column::Time).as_primitive::<TimestampNanosecondType>();
        let at = |row: usize| self.bucket_of(time.is_valid(row).then(|| time.value(row)));
        let (slots, names) = container_slots(rows);
        // (slot, bucket) -> (events, findings), in one flat vector.
        let mut grid = vec![(0u64, 0u64); names.len() * TIMELINE_BUCKETS];
        for (row, &slot) in slots.iter().enumerate() {
            grid[slot as usize * TIMELINE_BUCKETS + at(row)].0 += 1;
        }
        let mut c = Counts::default();
        for h in &chunk.hits {
            let slot = slots[h.row] as usize;
            grid[slot * TIMELINE_BUCKETS + at(h.row)].1 += 1;
            *c.findings.entry((names[slot].clone(), h.rule)).or_default() += 1;
            c.processes.insert((
                rows.str_value(Column::Host, h.row).unwrap_or("").to_string(),
                rows.expect(Column::Pid).as_primitive::<UInt32Type>().value(h.row),
                rows.str_value(Column::Comm, h.row).unwrap_or("").to_string(),
            ));
        }
        if !chunk.hits.is_empty() {
            c.hit_captures.insert(chunk.capture.to_owned());
        }
        for (row, _) in rows.kinds().iter().enumerate().filter(|(_, k)| **k == EventKind::Container) {
            let s = |c: Column| rows.str_value(c, row).map(str::to_string);
            if let Some(id) = s(Column::ContainerId) {
                c.containers.push((id, [s(Column::PodNamespace), s(Column::PodName), s(Column::ContainerName)]));
            }
        }
        for (i, &(e, f)) in grid.iter().enumerate().filter(|(_, v)| v.0 > 0 || v.1 > 0) {
            let v = c.buckets.entry((names[i / TIMELINE_BUCKETS].clone(), i % TIMELINE_BUCKETS)).or_default();
            v.0 += e;
            v.1 += f;
        }
        Ok(c)
    }
}

/// Computes the report of `captures` replayed through `rules`, and returns
/// it with the replay summary it holds (for the caller's messages about
/// unevaluable events and unreadable captures).
///
/// Three passes over the captures: the blind spots (with the replay
/// summary), the timeline (whose buckets span the summary's time range) and
/// the process trees of the processes with findings.
pub fn report_data<P: AsRef<Path>>(
    rules: &RuleSet,
    captures: &[P],
    options: &ReplayOptions,
) -> Result<(ReplaySummary, ReportData)> {
    let (summary, gaps) = find_gaps(rules, captures, options)?;
    let (lo, hi) = summary.time_range.unwrap_or((0, 0));
    let bucket = ((hi as i128 - lo as i128) / TIMELINE_BUCKETS as i128 + 1).min(i64::MAX as i128) as i64;
    let consumer = TimelineConsumer { start: lo, bucket };
    let mut counts = Counts::default();
    // Pod metadata per container id, merged as the process context merges it
    // (a later row's known values replace earlier ones).
    let mut pods: BTreeMap<String, [Option<String>; 3]> = BTreeMap::new();
    Driver::new(rules.rules(), options).run(captures, &consumer, &mut |part: Counts| {
        for (k, (e, f)) in part.buckets {
            let v = counts.buckets.entry(k).or_default();
            v.0 += e;
            v.1 += f;
        }
        for (k, n) in part.findings {
            *counts.findings.entry(k).or_default() += n;
        }
        counts.processes.extend(part.processes);
        counts.hit_captures.extend(part.hit_captures);
        for (id, row) in part.containers {
            let meta = pods.entry(id).or_default();
            for (have, new) in meta.iter_mut().zip(row) {
                if new.is_some() {
                    *have = new;
                }
            }
        }
        Ok(())
    })?;
    let mut summary = summary;
    for ((id, rule), n) in &counts.findings {
        summary.rules[*rule].findings += n;
        summary.containers.extend(id.clone());
    }
    summary.processes.extend(counts.processes.iter().cloned());
    let readable: Vec<&Path> =
        captures.iter().map(AsRef::as_ref).filter(|p| !summary.unreadable.iter().any(|u| u.capture == *p)).collect();
    // The processes are rebuilt only for captures where a rule fired.
    let with_findings: Vec<&Path> = readable.iter().copied().filter(|p| counts.hit_captures.contains(*p)).collect();
    let trees = process_trees(rules, &with_findings, options, &TreeFilter::default())?;
    let mut capture_metadata = Vec::new();
    for path in &readable {
        let capture = crate::capture::Capture::open(path)?;
        let metadata: BTreeMap<String, String> = capture
            .metadata()
            .iter()
            .filter(|(k, _)| !k.starts_with("ARROW:"))
            .take(MAX_METADATA_ENTRIES)
            .map(|(k, v)| (cut(k), cut(v)))
            .collect();
        let lost_events = capture.metadata().get("tokenscan.lost_events").and_then(|v| v.trim().parse().ok());
        capture_metadata.push(CaptureMetadata { capture: path.display().to_string(), metadata, lost_events });
    }

    // `namespace/pod:container` of a container with pod metadata.
    let pod_of = |id: &str| -> Option<String> {
        let [ns, pod, name] = pods.get(id)?;
        let pod = pod.as_deref()?;
        Some(format!("{}/{pod}:{}", ns.as_deref().unwrap_or("?"), name.as_deref().unwrap_or("?")))
    };
    let label = |id: &Option<String>| match id {
        None => "host".to_string(),
        Some(id) => pod_of(id).unwrap_or_else(|| crate::display::short_container_id(id)),
    };

    let rule_list = rules.rules();
    let report_rules = rule_list
        .iter()
        .map(|r| {
            let s = summary.rules.iter().find(|s| s.rule_id == r.id);
            ReportRule {
                id: r.id.clone(),
                name: r.name.clone(),
                severity: r.severity.clone(),
                kind: r.kind().to_string(),
                version: rule_version(r),
                source: r.source.display().to_string(),
                text_sha256: r.text_sha256.clone(),
                findings: s.map_or(0, |s| s.findings),
                unevaluable: s.map_or(0, |s| s.unevaluable),
            }
        })
        .collect();

    let mut findings: Vec<ContainerFindings> = counts
        .findings
        .iter()
        .map(|((id, rule), &n)| {
            let [ns, pod, name] = id.as_ref().and_then(|id| pods.get(id)).cloned().unwrap_or_default();
            ContainerFindings {
                namespace: ns.as_deref().map(cut_name),
                pod: pod.as_deref().map(cut_name),
                container_name: name.as_deref().map(cut_name),
                container_id: id.as_deref().map(cut_name),
                rule_id: rule_list[*rule].id.clone(),
                severity: rule_list[*rule].severity.clone(),
                findings: n,
            }
        })
        .collect();
    findings.sort();
    let findings_omitted = keep_within(&mut findings, MAX_FINDING_ROWS, MAX_FINDING_BYTES);

    // Timeline rows: busiest containers first (ties by id), the rest merged.
    let mut per: BTreeMap<Option<String>, TimelineRow> = BTreeMap::new();
    for ((id, b), (e, f)) in &counts.buckets {
        let row = per.entry(id.clone()).or_insert_with(|| TimelineRow {
            label: cut_name(&label(id)),
            container_id: id.as_deref().map(cut_name),
            events: vec![0; TIMELINE_BUCKETS],
            findings: vec![0; TIMELINE_BUCKETS],
        });
        row.events[*b] += e;
        row.findings[*b] += f;
    }
    let mut rows: Vec<TimelineRow> = per.into_values().collect();
    rows.sort_by(|a, b| {
        let total = |r: &TimelineRow| r.events.iter().sum::<u64>();
        total(b).cmp(&total(a)).then_with(|| a.container_id.cmp(&b.container_id))
    });
    if rows.len() > TIMELINE_ROWS {
        let rest = rows.split_off(TIMELINE_ROWS - 1);
        let mut other = TimelineRow {
            label: format!("{} other containers", rest.len()),
            container_id: None,
            events: vec![0; TIMELINE_BUCKETS],
            findings: vec![0; TIMELINE_BUCKETS],
        };
        for r in rest {
            for i in 0..TIMELINE_BUCKETS {
                other.events[i] += r.events[i];
                other.findings[i] += r.findings[i];
            }
        }
        rows.push(other);
    }
    let timeline = Timeline { start_ns: lo, bucket_ns: bucket, rows };

    let scope = |id: &Option<String>| match id {
        None => "host".to_string(),
        Some(id) => match pod_of(id) {
            Some(pod) => format!("pod {pod}"),
            None => format!("container {}", crate::display::short_container_id(id)),
        },
    };
    let (report_trees, tree_nodes_omitted) = group_trees(&trees, &scope);

    let mut groups: BTreeMap<crate::gaps::GapKind, GapGroup> = BTreeMap::new();
    for g in &gaps {
        let group = groups.entry(g.kind).or_insert_with(|| GapGroup {
            code: g.kind.code().to_string(),
            description: g.kind.describe().to_string(),
            count: 0,
            examples: Vec::new(),
        });
        group.count += 1;
        if group.examples.len() < MAX_GAP_EXAMPLES {
            group.examples.push(GapExample {
                capture: g.capture.display().to_string(),
                event_index: g.event_index,
                comm: cut_name(&g.comm),
                pid: g.pid,
                container_id: g.container_id.as_deref().map(cut_name),
                touched: cut(&g.touched),
            });
        }
    }

    let mut gaps: Vec<GapGroup> = groups.into_values().collect();
    let mut gap_bytes = 0;
    for g in &mut gaps {
        keep_within(&mut g.examples, MAX_GAP_EXAMPLES, MAX_GAP_BYTES.saturating_sub(gap_bytes));
        gap_bytes += page_bytes(&g.examples);
    }

    let mut summary_value = crate::summary::summary_json(&summary);
    for list in ["containers", "processes"] {
        if let Some(items) = summary_value[list].as_array_mut() {
            for item in items.iter_mut() {
                match item {
                    serde_json::Value::String(s) => *s = cut_name(s),
                    serde_json::Value::Object(o) => {
                        for key in ["host", "comm"] {
                            if let Some(serde_json::Value::String(s)) = o.get_mut(key) {
                                *s = cut_name(s);
                            }
                        }
                    }
                    _ => {}
                }
            }
            let omitted = keep_within(items, MAX_SUMMARY_LIST, MAX_SUMMARY_BYTES);
            if omitted > 0 {
                summary_value[format!("{list}_omitted")] = omitted.into();
            }
        }
    }
    cut_json(&mut summary_value);
    let data = ReportData {
        summary: summary_value,
        capture_metadata,
        rules: report_rules,
        findings,
        findings_omitted,
        timeline,
        trees: report_trees,
        tree_nodes_omitted,
        gaps,
    };
    Ok((summary, data))
}

/// A group of [`ReportTree`]: the container (none: the host) and the session leader.
type GroupKey = (Option<String>, Option<EntityRef>);

/// The tree of each pod container and session with findings (see
/// [`ReportTree`]), in capture order and, within a capture, in the order of
/// the group's first process in the capture's tree; at most
/// [`MAX_TREE_NODES`] nodes in all. Also returns the nodes left out.
/// `scope` names a container (none: the host).
fn group_trees(trees: &[ProcessTree], scope: &dyn Fn(&Option<String>) -> String) -> (Vec<ReportTree>, usize) {
    let mut out = Vec::new();
    let mut budget = MAX_TREE_NODES;
    let mut bytes = MAX_TREE_BYTES;
    let mut omitted = 0;
    for t in trees {
        let ctx = &t.context;
        let mut order: Vec<GroupKey> = Vec::new();
        let mut own: HashMap<EntityRef, GroupKey> = HashMap::new();
        let mut members: HashMap<GroupKey, HashSet<EntityRef>> = HashMap::new();
        for n in t.nodes.iter().filter(|n| !n.findings.is_empty()) {
            let container = ctx.entity(n.entity).container().map(str::to_string);
            let leader = ctx.links(n.findings[0].event_index).and_then(|l| l.session_leader);
            let key = (container, leader);
            if !members.contains_key(&key) {
                order.push(key.clone());
            }
            own.insert(n.entity, key.clone());
            // The process and its ancestors (bounded: lineage may hold a cycle).
            let set = members.entry(key).or_default();
            let mut cur = Some(n.entity);
            for _ in 0..=ctx.entities().len() {
                match cur {
                    Some(c) if set.insert(c) => cur = ctx.entity(c).parent,
                    _ => break,
                }
            }
        }
        for key in order {
            let set = &members[&key];
            let in_group: Vec<&TreeNode> = t.nodes.iter().filter(|n| set.contains(&n.entity)).collect();
            let findings = in_group.iter().filter(|n| own.get(&n.entity) == Some(&key)).map(|n| n.findings.len()).sum();
            let mut nodes: Vec<ReportNode> = in_group
                .iter()
                .take(budget)
                .map(|n| {
                    let mine = own.get(&n.entity) == Some(&key);
                    report_node(ctx, n, mine, key.1 == Some(n.entity))
                })
                .collect();
            omitted += in_group.len() - nodes.len() + keep_within(&mut nodes, budget, bytes);
            budget -= nodes.len();
            bytes = bytes.saturating_sub(page_bytes(&nodes));
            if nodes.is_empty() {
                continue;
            }
            let session = key.1.map(|r| {
                let e = ctx.entity(r);
                SessionLeader { pid: e.pid, name: e.name.as_deref().map(cut_name) }
            });
            out.push(ReportTree {
                capture: t.capture.display().to_string(),
                scope: cut_name(&scope(&key.0)),
                container_id: key.0.as_deref().map(cut_name),
                session,
                findings,
                nodes,
            });
        }
    }
    (out, omitted)
}

/// One process of a group's tree; `with_findings`: whether its findings
/// belong to this group (an ancestor from another group shows without them).
fn report_node(ctx: &ProcessContext, n: &TreeNode, with_findings: bool, session_leader: bool) -> ReportNode {
    let e = ctx.entity(n.entity);
    let m = e.container().and_then(|id| ctx.container(id));
    let findings: &[TreeFinding] = if with_findings { &n.findings } else { &[] };
    ReportNode {
        depth: n.depth,
        pid: e.pid,
        name: e.name.as_deref().map(cut_name),
        args: e.args.as_ref().map(|a| a.iter().take(MAX_NODE_ARGS).map(|s| cut_to(s, MAX_ARG)).collect()),
        args_omitted: e.args.as_ref().map_or(0, |a| a.len().saturating_sub(MAX_NODE_ARGS)),
        findings_omitted: findings.len().saturating_sub(MAX_NODE_FINDINGS),
        container_id: e.container().map(cut_name),
        pod: m.and_then(|m| {
            m.pod_name.as_ref().map(|p| cut_name(&format!("{}/{p}", m.pod_namespace.as_deref().unwrap_or("?"))))
        }),
        session_leader,
        findings: findings
            .iter()
            .take(MAX_NODE_FINDINGS)
            .map(|f| NodeFinding { event_index: f.event_index, rule_id: f.rule_id.clone(), reason: cut(&f.reason) })
            .collect(),
    }
}

/// The version a rule's file states: a signature's `version`, an Elastic
/// rule's `version` when the file has one, otherwise its `[metadata]`
/// `updated_date` (detection-rules keeps version numbers outside the rule
/// files). Read from the text the rule was loaded from (a built-in rule's,
/// or its file's when that still has the same SHA-256); `None` when the file
/// states none or has changed since.
pub fn rule_version(rule: &Rule) -> Option<String> {
    let text = match rule.source.strip_prefix("<builtin>") {
        Ok(name) => BUILTIN_RULES.iter().find(|(n, _)| Path::new(n) == name).map(|(_, t)| t.to_string())?,
        Err(_) => std::fs::read_to_string(&rule.source).ok()?,
    };
    use sha2::Digest;
    let hash: String = sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    if hash != rule.text_sha256 {
        return None;
    }
    let file: toml::Table = text.parse().ok()?;
    let at = |table: &str, key: &str| file.get(table)?.get(key).cloned();
    let v = at("signature", "version").or_else(|| at("rule", "version")).or_else(|| at("metadata", "updated_date"))?;
    Some(cut(&match v {
        toml::Value::String(s) => s,
        other => other.to_string(),
    }))
}

/// The report's data as JSON that is safe inside an HTML `<script>` element:
/// `<`, `>` and `&` (so no `</script>` or `<!--` can appear) and U+2028/U+2029
/// are written as `\u` escapes, which JSON reads back as the same characters.
pub fn script_json(data: &ReportData) -> String {
    // Plain structs, string map keys and finite numbers only: serializing cannot fail.
    let json = serde_json::to_string(data).expect("report data serializes");
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

const PAGE_HEAD: &str = include_str!("report/head.html");
const PAGE_SCRIPT: &str = include_str!("report/report.js");

/// The whole report: one self-contained HTML page (inline style and script,
/// a content security policy that allows no network request), the data as
/// JSON in `<script type="application/json" id="report-data">`.
pub fn render_html(data: &ReportData) -> String {
    let mut html = String::from(PAGE_HEAD);
    html.push_str("<script type=\"application/json\" id=\"report-data\">");
    html.push_str(&script_json(data));
    html.push_str("</script>\n<script>\n");
    html.push_str(PAGE_SCRIPT);
    html.push_str("</script>\n</body>\n</html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_cannot_close_the_script_element() {
        let mut data = ReportData {
            summary: serde_json::json!({"x": "</script><script>alert(1)</script>\u{2028}&"}),
            capture_metadata: Vec::new(),
            rules: Vec::new(),
            findings: Vec::new(),
            findings_omitted: 0,
            timeline: Timeline::default(),
            trees: Vec::new(),
            tree_nodes_omitted: 0,
            gaps: Vec::new(),
        };
        let json = script_json(&data);
        // HTML's script data state ends only at `</script`; `<!--` starts the escaped state.
        assert!(!json.contains('<') && !json.contains('>') && !json.contains('&'), "{json}");
        assert!(!json.contains('\u{2028}'), "{json}");
        let back: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(back["summary"]["x"], "</script><script>alert(1)</script>\u{2028}&");
        data.summary = serde_json::Value::Null;
        assert!(render_html(&data).contains("id=\"report-data\">{\"summary\":null"));
    }

    #[test]
    fn budgets_count_the_bytes_the_page_holds() {
        // The budgets measure the escaped JSON: the same length script_json writes.
        let mut data = ReportData {
            summary: serde_json::json!({"x": "<<>>&&\u{2028}\u{2029}é😀\"\\\n"}),
            capture_metadata: Vec::new(),
            rules: Vec::new(),
            findings: Vec::new(),
            findings_omitted: 0,
            timeline: Timeline::default(),
            trees: Vec::new(),
            tree_nodes_omitted: 0,
            gaps: Vec::new(),
        };
        assert_eq!(page_bytes(&data), script_json(&data).len());
        data.summary = serde_json::Value::Null;
        assert_eq!(page_bytes(&data), script_json(&data).len());
        // Items are kept while both limits hold: "<<" is `"\u003c\u003c"`, 14 bytes, plus a separator.
        let mut items = vec!["<<"; 10];
        assert_eq!(keep_within(&mut items, 100, 3 * 15), 7);
        assert_eq!(items.len(), 3);
        let mut items = vec!["<<"; 10];
        assert_eq!(keep_within(&mut items, 100, 3 * 15 - 1), 8);
        let mut items = vec!["<<"; 10];
        assert_eq!(keep_within(&mut items, 2, 1 << 20), 8);
    }

    #[test]
    fn long_strings_are_cut() {
        assert_eq!(cut("abc"), "abc");
        let long = "é".repeat(MAX_STRING + 5);
        assert_eq!(cut(&long).chars().count(), MAX_STRING + 1);
        assert_eq!(cut_to("abcdef", 4), "abcd…");
    }
}
