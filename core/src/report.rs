//! The triage report (`tokenscan report`, `tokenscan.report`): what a
//! responder hands over after a replay, as one self-contained HTML file.
//!
//! [`report_data`] computes the report's data once, as one serializable
//! [`ReportData`] (the capture summary, findings per rule and per container,
//! a bucketed timeline per container, the process trees of the processes with
//! findings, and the blind spots of [`crate::gaps`]); [`render_html`] embeds it
//! as JSON in a page whose inline script builds the view with `textContent`
//! only. Every string from a capture stays data: the JSON is escaped so that
//! nothing in it can close its `<script>` element, and the page's content
//! security policy forbids every network request.
//!
//! The output is deterministic (no generation time; every list sorted or in
//! capture order) and bounded whatever the capture's size: at most
//! [`TIMELINE_BUCKETS`] buckets for at most [`TIMELINE_ROWS`] containers,
//! [`MAX_TREE_NODES`] tree nodes (each with at most [`MAX_NODE_ARGS`]
//! arguments of [`MAX_ARG`] characters and [`MAX_NODE_FINDINGS`] findings),
//! [`MAX_GAP_EXAMPLES`] examples per kind of gap, [`MAX_FINDING_ROWS`] rows of
//! findings, [`MAX_SUMMARY_LIST`] containers and processes in the summary,
//! and other strings cut to [`MAX_STRING`] characters. Worst case that is
//! about 10 MB (nearly all of it tree nodes whose every argument and reason
//! is at its limit); the fixtures' reports are about 25 KB.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use arrow::array::{Array, AsArray};
use arrow::datatypes::TimestampNanosecondType;
use serde::Serialize;

use crate::capture::{Column, Projection};
use crate::driver::{Chunk, Consumer, Driver};
use crate::error::Result;
use crate::gaps::find_gaps;
use crate::process::{process_trees, TreeFilter};
use crate::replay::{ReplayOptions, ReplaySummary};
use crate::rules::RuleSet;

/// Buckets of the timeline.
pub const TIMELINE_BUCKETS: usize = 120;
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
/// Characters kept of any string from a capture (the rest become `…`).
pub const MAX_STRING: usize = 1024;

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
    /// Finding rows left out by [`MAX_FINDING_ROWS`].
    pub findings_omitted: usize,
    /// Activity over time per container.
    pub timeline: Timeline,
    /// The processes with findings and their ancestors, per capture.
    pub trees: Vec<ReportTree>,
    /// Tree nodes left out by [`MAX_TREE_NODES`].
    pub tree_nodes_omitted: usize,
    /// Credential touches no rule flagged, grouped by why.
    pub gaps: Vec<GapGroup>,
}

/// The file metadata of one capture.
#[derive(Debug, Clone, Serialize)]
pub struct CaptureMetadata {
    /// The capture.
    pub capture: String,
    /// Its key-value metadata (the first [`MAX_GAP_EXAMPLES`] entries, values cut to [`MAX_STRING`]).
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
    /// The file it was loaded from.
    pub source: String,
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

/// The process tree of one capture.
#[derive(Debug, Clone, Serialize)]
pub struct ReportTree {
    /// The capture.
    pub capture: String,
    /// Its processes, depth first.
    pub nodes: Vec<ReportNode>,
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
    /// The first [`MAX_GAP_EXAMPLES`].
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

fn cut_to(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// Per-chunk counts: (container, bucket) -> (events, findings), (container,
/// rule) -> findings, and the processes with findings (what a replay's
/// summary counts, which the gaps pass leaves out).
#[derive(Default)]
struct Counts {
    buckets: BTreeMap<(Option<String>, usize), (u64, u64)>,
    findings: BTreeMap<(Option<String>, usize), u64>,
    /// `(host, pid, comm)` of the processes with findings.
    processes: BTreeSet<(String, u32, String)>,
}

struct TimelineConsumer {
    start: i64,
    bucket: i64,
}

impl Consumer for TimelineConsumer {
    type Part = Counts;

    fn columns(&self) -> Projection {
        [Column::Time, Column::ContainerId, Column::Host, Column::Pid, Column::Comm].into_iter().collect()
    }

    fn keep_all(&self) -> bool {
        true
    }

    fn part(&self, chunk: Chunk<'_>) -> Result<Counts> {
        let rows = &chunk.rows;
        let time = rows.expect(Column::Time).as_primitive::<TimestampNanosecondType>();
        let mut c = Counts::default();
        let bucket_of = |row: usize| {
            let t = if time.is_valid(row) { time.value(row) } else { self.start };
            (((t.saturating_sub(self.start)) / self.bucket).clamp(0, TIMELINE_BUCKETS as i64 - 1)) as usize
        };
        let container = |row: usize| rows.str_value(Column::ContainerId, row).map(str::to_string);
        for row in 0..rows.len() {
            c.buckets.entry((container(row), bucket_of(row))).or_default().0 += 1;
        }
        for h in &chunk.hits {
            c.buckets.entry((container(h.row), bucket_of(h.row))).or_default().1 += 1;
            *c.findings.entry((container(h.row), h.rule)).or_default() += 1;
            c.processes.insert((
                rows.str_value(Column::Host, h.row).unwrap_or("").to_string(),
                rows.expect(Column::Pid).as_primitive::<arrow::datatypes::UInt32Type>().value(h.row),
                rows.str_value(Column::Comm, h.row).unwrap_or("").to_string(),
            ));
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
    let trees = process_trees(rules, &readable, options, &TreeFilter::default())?;
    let mut capture_metadata = Vec::new();
    for path in &readable {
        let capture = crate::capture::Capture::open(path)?;
        let metadata: BTreeMap<String, String> = capture
            .metadata()
            .iter()
            .filter(|(k, _)| !k.starts_with("ARROW:"))
            .take(MAX_GAP_EXAMPLES)
            .map(|(k, v)| (cut(k), cut(v)))
            .collect();
        let lost_events = capture.metadata().get("tokenscan.lost_events").and_then(|v| v.trim().parse().ok());
        capture_metadata.push(CaptureMetadata { capture: path.display().to_string(), metadata, lost_events });
    }

    // Container metadata, from the first capture that has it.
    let meta = |id: &str| trees.iter().find_map(|t| t.context.container(id));
    let label = |id: &Option<String>| match id {
        None => "host".to_string(),
        Some(id) => match meta(id) {
            Some(m) if m.pod_name.is_some() => format!(
                "{}/{}/{}",
                m.pod_namespace.as_deref().unwrap_or("?"),
                m.pod_name.as_deref().unwrap_or("?"),
                m.container_name.as_deref().unwrap_or("?")
            ),
            _ => crate::display::short_container_id(id),
        },
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
                source: r.source.display().to_string(),
                findings: s.map_or(0, |s| s.findings),
                unevaluable: s.map_or(0, |s| s.unevaluable),
            }
        })
        .collect();

    let mut findings: Vec<ContainerFindings> = counts
        .findings
        .iter()
        .map(|((id, rule), &n)| {
            let m = id.as_deref().and_then(meta);
            ContainerFindings {
                namespace: m.and_then(|m| m.pod_namespace.as_deref()).map(cut),
                pod: m.and_then(|m| m.pod_name.as_deref()).map(cut),
                container_name: m.and_then(|m| m.container_name.as_deref()).map(cut),
                container_id: id.as_deref().map(cut),
                rule_id: rule_list[*rule].id.clone(),
                severity: rule_list[*rule].severity.clone(),
                findings: n,
            }
        })
        .collect();
    findings.sort();
    let findings_omitted = findings.len().saturating_sub(MAX_FINDING_ROWS);
    findings.truncate(MAX_FINDING_ROWS);

    // Timeline rows: busiest containers first (ties by id), the rest merged.
    let mut per: BTreeMap<Option<String>, TimelineRow> = BTreeMap::new();
    for ((id, b), (e, f)) in &counts.buckets {
        let row = per.entry(id.clone()).or_insert_with(|| TimelineRow {
            label: cut(&label(id)),
            container_id: id.as_deref().map(cut),
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

    let mut budget = MAX_TREE_NODES;
    let mut tree_nodes_omitted = 0;
    let report_trees = trees
        .iter()
        .map(|t| {
            let ctx = &t.context;
            let keep = t.nodes.len().min(budget);
            budget -= keep;
            tree_nodes_omitted += t.nodes.len() - keep;
            let nodes = t.nodes[..keep]
                .iter()
                .map(|n| {
                    let e = ctx.entity(n.entity);
                    let m = e.container().and_then(|id| ctx.container(id));
                    ReportNode {
                        depth: n.depth,
                        pid: e.pid,
                        name: e.name.as_deref().map(cut),
                        args: e
                            .args
                            .as_ref()
                            .map(|a| a.iter().take(MAX_NODE_ARGS).map(|s| cut_to(s, MAX_ARG)).collect()),
                        args_omitted: e.args.as_ref().map_or(0, |a| a.len().saturating_sub(MAX_NODE_ARGS)),
                        findings_omitted: n.findings.len().saturating_sub(MAX_NODE_FINDINGS),
                        container_id: e.container().map(cut),
                        pod: m.and_then(|m| {
                            m.pod_name
                                .as_ref()
                                .map(|p| cut(&format!("{}/{p}", m.pod_namespace.as_deref().unwrap_or("?"))))
                        }),
                        findings: n
                            .findings
                            .iter()
                            .take(MAX_NODE_FINDINGS)
                            .map(|f| NodeFinding {
                                event_index: f.event_index,
                                rule_id: f.rule_id.clone(),
                                reason: cut(&f.reason),
                            })
                            .collect(),
                    }
                })
                .collect();
            ReportTree { capture: t.capture.display().to_string(), nodes }
        })
        .filter(|t| !t.nodes.is_empty())
        .collect();

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
                comm: cut(&g.comm),
                pid: g.pid,
                container_id: g.container_id.as_deref().map(cut),
                touched: cut(&g.touched),
            });
        }
    }

    let mut summary_value = crate::summary::summary_json(&summary);
    for list in ["containers", "processes"] {
        if let Some(items) = summary_value[list].as_array_mut().filter(|a| a.len() > MAX_SUMMARY_LIST) {
            let omitted = items.len() - MAX_SUMMARY_LIST;
            items.truncate(MAX_SUMMARY_LIST);
            summary_value[format!("{list}_omitted")] = omitted.into();
        }
    }
    let data = ReportData {
        summary: summary_value,
        capture_metadata,
        rules: report_rules,
        findings,
        findings_omitted,
        timeline,
        trees: report_trees,
        tree_nodes_omitted,
        gaps: groups.into_values().collect(),
    };
    Ok((summary, data))
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
    fn long_strings_are_cut() {
        assert_eq!(cut("abc"), "abc");
        let long = "é".repeat(MAX_STRING + 5);
        assert_eq!(cut(&long).chars().count(), MAX_STRING + 1);
        assert_eq!(cut_to("abcdef", 4), "abcd…");
    }
}
