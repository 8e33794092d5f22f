//! The human reports on stdout: the findings grouped by rule and the replay
//! summary, the diff report, test-suite results, gaps, what `inspect` found,
//! the rule list and `rules check`'s diagnostics.

use std::fmt::Write as _;

use arrow_array::cast::AsArray;
use arrow_array::types::{TimestampNanosecondType, UInt32Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use tokenscan_core::diff::DiffSummary;
use tokenscan_core::display::{human_time, short_container_id};
use tokenscan_core::gaps::Gap;
use tokenscan_core::lint::Diagnostic;
use tokenscan_core::replay::ReplaySummary;
use tokenscan_core::rules::RuleSet;
use tokenscan_core::suite::{CaseResult, Suite};

use super::messages::plural;

use super::{col, finding_place, s, target};
use crate::commands::inspect::CaptureStats;

/// The report of a replay: findings grouped by rule, then the summary.
/// `multi` (several captures) names each event's capture.
pub fn findings(batches: &[RecordBatch], summary: &ReplaySummary, multi: bool) -> String {
    let mut out = String::new();
    for rule in &summary.rules {
        let _ = writeln!(out, "{}", rule.rule_name);
        let in_sequences = match (rule.is_sample, rule.is_sequence) {
            (true, _) => format!(" in {}", plural(rule.sequences, "sample", "samples")),
            (false, true) => format!(" in {}", plural(rule.sequences, "sequence", "sequences")),
            (false, false) => String::new(),
        };
        let _ = writeln!(
            out,
            "rule {} | severity {} | {} finding{}{in_sequences}",
            rule.rule_id,
            rule.severity,
            rule.findings,
            if rule.findings == 1 { "" } else { "s" }
        );
        let mut rows: Vec<[String; 7]> = Vec::new();
        let mut reasons = Vec::new();
        for b in batches {
            let ids = col(b, "rule_id").as_string::<i32>();
            let idx = col(b, "event_index").as_primitive::<UInt64Type>();
            let time = col(b, "time").as_primitive::<TimestampNanosecondType>();
            let pid = col(b, "pid").as_primitive::<UInt32Type>();
            for i in 0..b.num_rows() {
                if ids.value(i) != rule.rule_id {
                    continue;
                }
                let event = if multi {
                    let cap = s(b, "capture", i).unwrap_or_default();
                    let name =
                        std::path::Path::new(&cap).file_name().map_or(cap.clone(), |n| n.to_string_lossy().into());
                    format!("{name}#{}", idx.value(i))
                } else {
                    idx.value(i).to_string()
                };
                let audit = s(b, "kind", i).as_deref() == Some("k8s_audit");
                let container = finding_place(b, i);
                rows.push([
                    event,
                    human_time(time.value(i)),
                    container,
                    if audit { "-".to_string() } else { pid.value(i).to_string() },
                    s(b, "comm", i).unwrap_or_default(),
                    s(b, "kind", i).unwrap_or_default(),
                    target(b, i),
                ]);
                reasons.push((s(b, "reason", i).unwrap_or_default(), lineage(b, i)));
            }
        }
        if rows.is_empty() {
            let _ = writeln!(out, "  (no findings)\n");
            continue;
        }
        let header = ["EVENT", "TIME (UTC)", "POD", "PID", "COMM", "KIND", "TARGET"].map(String::from);
        let mut widths = header.clone().map(|h| h.chars().count());
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |r: &[String; 7]| {
            let mut l = String::from(" ");
            for (k, (c, w)) in r.iter().zip(widths).enumerate() {
                if k + 1 == r.len() {
                    let _ = write!(l, " {c}");
                } else {
                    let _ = write!(l, " {c:<w$}");
                }
            }
            l
        };
        let _ = writeln!(out);
        let _ = writeln!(out, "{}", line(&header));
        for (r, (why, lineage)) in rows.iter().zip(&reasons) {
            let _ = writeln!(out, "{}", line(r));
            if !lineage.is_empty() {
                let _ = writeln!(out, "  {:w$}   from: {lineage}", "", w = widths[0]);
            }
            let _ = writeln!(out, "  {:w$}   why: {why}", "", w = widths[0]);
        }
        let _ = writeln!(out);
    }
    out.push_str(&self::summary(summary));
    out
}

/// A finding's lineage in one line: parent, session leader (with its
/// terminal) and entry leader, as far as the capture knows them.
fn lineage(b: &RecordBatch, i: usize) -> String {
    let pid = |name: &str| {
        let a = col(b, name).as_primitive::<UInt32Type>();
        a.is_valid(i).then(|| a.value(i))
    };
    let who = |pid: Option<u32>, name: Option<String>| match (pid, name) {
        (Some(p), Some(n)) => Some(format!("{p} {n}")),
        (Some(p), None) => Some(p.to_string()),
        _ => None,
    };
    let mut parts = Vec::new();
    if let Some(p) = who(pid("parent_pid"), s(b, "parent_name", i)) {
        parts.push(format!("parent {p}"));
    }
    if let Some(mut p) = who(pid("session_leader_pid"), s(b, "session_leader_name", i)) {
        if let Some(tty) = s(b, "session_leader_tty", i) {
            let _ = write!(p, " on {tty}");
        }
        parts.push(format!("session {p}"));
    }
    if let Some(mut p) = who(pid("entry_leader_pid"), s(b, "entry_leader_name", i)) {
        if let Some(t) = s(b, "entry_leader_type", i) {
            let _ = write!(p, " ({t})");
        }
        parts.push(format!("entry {p}"));
    }
    parts.join(" · ")
}

/// The summary block of a replay (after the table, or on stderr when findings go elsewhere).
pub fn summary(summary: &ReplaySummary) -> String {
    let mut out = String::from("Summary\n");
    for (path, events) in &summary.captures {
        let _ = writeln!(out, "  capture      {} ({events} events)", path.display());
    }
    let _ = writeln!(out, "  events read  {}", summary.events);
    if let Some((lo, hi)) = summary.time_range {
        let _ = writeln!(out, "  time range   {} .. {} UTC", human_time(lo), human_time(hi));
    }
    let _ = writeln!(out, "  findings     {}", summary.findings());
    for r in &summary.rules {
        let sequences = match (r.is_sample, r.is_sequence) {
            (true, _) => format!(" ({})", plural(r.sequences, "sample", "samples")),
            (false, true) => format!(" ({})", plural(r.sequences, "sequence", "sequences")),
            (false, false) => String::new(),
        };
        let _ = writeln!(out, "    {:>5}  {}  {}{sequences}", r.findings, r.rule_id, r.rule_name);
    }
    let _ = writeln!(out, "  containers   {}", summary.containers.len());
    for c in &summary.containers {
        let _ = writeln!(out, "    {c}");
    }
    let _ = writeln!(out, "  processes    {}", summary.processes.len());
    for (host, pid, comm) in &summary.processes {
        let _ = writeln!(out, "    {host} pid {pid} {comm}");
    }
    if summary.unevaluable() > 0 {
        let _ = writeln!(out, "  unevaluable  {} (see warnings on stderr)", summary.unevaluable());
    }
    out
}

/// Which rule sets a diff compares.
pub fn diff_header(baseline: &str, candidate: &str) -> String {
    format!("baseline:  {baseline}\ncandidate: {candidate}\n")
}

/// The counts of a diff, per rule (the first part of the report; on stderr for machine formats).
pub fn diff_counts(summary: &DiffSummary) -> String {
    let mut out = String::new();
    let events = summary.events;
    let _ = writeln!(out, "{} capture(s), {events} events\n", summary.captures.len());
    let w = summary.rules.iter().map(|r| r.rule_id.len()).max().unwrap_or(4).max(4);
    let _ = writeln!(out, "  {:<w$}  {:>5}  {:>7}  {:>9}  NAME", "RULE", "ADDED", "REMOVED", "UNCHANGED");
    for r in &summary.rules {
        let presence = match (r.in_baseline, r.in_candidate) {
            (true, false) => " (only in baseline)",
            (false, true) => " (only in candidate)",
            _ => "",
        };
        let _ = writeln!(
            out,
            "  {:<w$}  {:>5}  {:>7}  {:>9}  {}{presence}",
            r.rule_id, r.added, r.removed, r.unchanged, r.rule_name
        );
    }
    for c in &summary.unmatched_saved_captures {
        let _ = writeln!(out, "  warning: saved findings name capture {c}, which was not replayed");
    }
    out
}

/// The diff report: counts first, then each added and removed finding with both sides' reasons.
pub fn diff(batches: &[RecordBatch], summary: &DiffSummary) -> String {
    let mut out = diff_counts(summary);
    for (change, sign, now, then) in
        [("added", '+', "now fires:", "baseline:"), ("removed", '-', "fired before:", "candidate:")]
    {
        let mut lines = String::new();
        let mut n = 0;
        for b in batches {
            let idx = col(b, "event_index").as_primitive::<UInt64Type>();
            let pid = col(b, "pid").as_primitive::<UInt32Type>();
            for i in 0..b.num_rows() {
                if s(b, "change", i).as_deref() != Some(change) {
                    continue;
                }
                n += 1;
                let cap = s(b, "capture", i).unwrap_or_default();
                let place = if s(b, "kind", i).as_deref() == Some("k8s_audit") {
                    finding_place(b, i)
                } else {
                    let container = s(b, "container_id", i).map_or("host".to_string(), |c| short_container_id(&c));
                    format!("container {container}, pid {}", pid.value(i))
                };
                let _ = writeln!(
                    lines,
                    "  {sign} {} {cap}#{}  {} {} {}  ({place})",
                    s(b, "rule_id", i).unwrap_or_default(),
                    idx.value(i),
                    s(b, "comm", i).unwrap_or_default(),
                    s(b, "kind", i).unwrap_or_default(),
                    target(b, i),
                );
                let _ = writeln!(lines, "      {now:<13} {}", s(b, "reason", i).unwrap_or_default());
                let _ = writeln!(lines, "      {then:<13} {}", s(b, "other_side", i).unwrap_or_default());
            }
        }
        let title = if change == "added" { "Added" } else { "Removed" };
        let _ = writeln!(out, "\n{title} ({n})");
        out.push_str(&lines);
    }
    out
}

/// The results of a rule test suite, one line per case with its failures.
pub fn suite_results(suite: &Suite, results: &[CaseResult]) -> String {
    let failed = results.iter().filter(|r| !r.passed()).count();
    let mut out = String::new();
    let _ = writeln!(out, "Suite: {} ({})\n", suite.name, suite.path.display());
    let w = results.iter().map(|r| r.rule.len()).max().unwrap_or(4).max(4);
    let _ = writeln!(out, "  RESULT  FINDINGS  {:<w$}  CASE", "RULE");
    for r in results {
        let verdict = if r.passed() { "pass" } else { "FAIL" };
        let _ = writeln!(out, "  {verdict:<6}  {:>8}  {:<w$}  {}", r.findings, r.rule, r.name);
        for f in &r.failures {
            let _ = writeln!(out, "          - {f}");
        }
    }
    let _ = writeln!(out, "\n{} cases: {} passed, {failed} failed", results.len(), results.len() - failed);
    out
}

/// Gaps grouped by why no rule fired, each with every rule's reason.
pub fn gaps(events: u64, gaps: &[Gap]) -> String {
    let mut kinds: Vec<_> = gaps.iter().map(|g| g.kind).collect();
    kinds.sort();
    kinds.dedup();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} event(s) touch service-account credentials without any finding ({events} events read)\n",
        gaps.len()
    );
    for k in kinds {
        let group: Vec<_> = gaps.iter().filter(|g| g.kind == k).collect();
        let _ = writeln!(out, "{} ({})", k.describe(), group.len());
        for g in group {
            let container = g.container_id.as_deref().map_or("host".to_string(), short_container_id);
            let _ = writeln!(
                out,
                "  {}#{}  {} {} pid {} ({container})  {}",
                g.capture.display(),
                g.event_index,
                g.comm,
                g.event_kind.as_str(),
                g.pid,
                g.touched
            );
            for (rule, why) in &g.why_not {
                let _ = writeln!(out, "      {rule}: {why}");
            }
        }
        out.push('\n');
    }
    out
}

/// What `inspect` found in one capture, followed by a blank line.
pub fn capture_stats(st: &CaptureStats) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "{}", st.path.display());
    let _ = writeln!(text, "  format       {}", st.format);
    let _ = writeln!(text, "  events       {}", st.events);
    if let Some((a, b)) = st.time {
        let _ = writeln!(text, "  time range   {} .. {} UTC", human_time(a), human_time(b));
    }
    let kinds: Vec<String> = st.kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let _ = writeln!(text, "  kinds        {} ({} failed opens)", kinds.join(", "), st.failed_opens);
    let hosts: Vec<String> = st.hosts.iter().map(|(h, n)| format!("{h} ({n})")).collect();
    let _ = writeln!(text, "  hosts        {}", hosts.join(", "));
    let _ = writeln!(text, "  containers   {} ({} events outside any container)", st.containers.len(), st.host_events);
    for (c, n) in &st.containers {
        let _ = writeln!(text, "    {c}  {n} events");
    }
    if !st.metadata.is_empty() {
        let _ = writeln!(text, "  metadata");
        for (k, v) in &st.metadata {
            let _ = writeln!(text, "    {k} = {v}");
        }
    }
    let _ = writeln!(text, "  schema");
    for (n, t) in &st.schema {
        let _ = writeln!(text, "    {n:<15} {t}");
    }
    text.push('\n');
    text
}

/// The rule list: id, kind, severity, name and source file.
pub fn rules(set: &RuleSet) -> String {
    let rows: Vec<[String; 5]> = set
        .rules()
        .iter()
        .map(|r| [r.id.clone(), r.kind().into(), r.severity.clone(), r.name.clone(), r.source.display().to_string()])
        .collect();
    let header = ["ID", "KIND", "SEVERITY", "NAME", "SOURCE"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = r.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

/// `rules check`'s diagnostics, one per line.
pub fn diagnostics(diagnostics: &[Diagnostic]) -> String {
    diagnostics.iter().map(|d| format!("{d}\n")).collect()
}
