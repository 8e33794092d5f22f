//! JSON documents: the findings (or changes) with their summary, the diff
//! summary, gaps, what `inspect` found and the rule list. Times are RFC 3339.

use std::io::Write;

use anyhow::Result;
use arrow_array::RecordBatch;
use serde_json::{json, Value};
use tokenscan_core::diff::DiffSummary;
use tokenscan_core::display::rfc3339;
use tokenscan_core::gaps::Gap;
use tokenscan_core::replay::{ReplaySummary, RuleSummary, Unreadable};
use tokenscan_core::rules::RuleSet;

use crate::commands::inspect::CaptureStats;

/// Writes `{"summary": summary, key: [one object per row]}`, pretty-printed, and a newline.
pub fn write_document(out: &mut dyn Write, summary: Value, key: &str, batches: &[RecordBatch]) -> Result<()> {
    let mut rows = Vec::new();
    {
        let mut w = arrow_json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow_json::writer::JsonArray>(&mut rows);
        for b in batches {
            w.write(b)?;
        }
        w.finish()?;
    }
    let rows: Value = if rows.is_empty() { json!([]) } else { serde_json::from_slice(&rows)? };
    let mut doc = serde_json::Map::new();
    doc.insert("summary".into(), summary);
    doc.insert(key.into(), rows);
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// The summary of `tokenscan diff`.
pub fn diff_summary(summary: &DiffSummary, baseline: &str, candidate: &str) -> Value {
    let mut v = json!({
        "baseline": baseline,
        "candidate": candidate,
        "events": summary.events,
        "captures": summary.captures.iter().map(|(p, n)| json!({"path": p.display().to_string(), "events": n})).collect::<Vec<_>>(),
        "changed": summary.changed(),
        "rules": summary.rules.iter().map(|r| json!({
            "rule_id": r.rule_id, "rule_name": r.rule_name, "in_baseline": r.in_baseline, "in_candidate": r.in_candidate,
            "added": r.added, "removed": r.removed, "unchanged": r.unchanged})).collect::<Vec<_>>(),
        "unmatched_saved_captures": summary.unmatched_saved_captures,
    });
    // Only present when there is something to say (a clean diff's JSON is unchanged).
    if summary.unevaluable() > 0 {
        v["unevaluable"] = json!({
            "candidate": unevaluable(&summary.candidate_unevaluable),
            "baseline": unevaluable(&summary.baseline_unevaluable),
        });
    }
    if !summary.unreadable.is_empty() {
        v["unreadable"] = unreadable(&summary.unreadable);
    }
    v
}

/// Per-rule unevaluable counts and examples, as in the replay summary (rules with none left out).
pub fn unevaluable(rules: &[RuleSummary]) -> Value {
    rules
        .iter()
        .filter(|r| r.unevaluable > 0)
        .map(|r| {
            json!({"rule_id": r.rule_id, "unevaluable": r.unevaluable,
            "unevaluable_examples": r.examples.iter().map(|e| json!({
                "capture": e.capture.display().to_string(), "event_index": e.event_index, "message": e.message})).collect::<Vec<_>>()})
        })
        .collect()
}

/// The captures that could not be read completely, as in the replay summary.
pub fn unreadable(unreadable: &[Unreadable]) -> Value {
    unreadable
        .iter()
        .map(
            |u| json!({"capture": u.capture.display().to_string(), "events_read": u.events_read, "message": u.message}),
        )
        .collect()
}

/// One gap (also one NDJSON line of `gaps --format ndjson`).
pub fn gap(g: &Gap) -> Value {
    json!({
        "capture": g.capture.display().to_string(), "event_index": g.event_index, "gap": g.kind.code(),
        "explanation": g.kind.describe(), "kind": g.event_kind.as_str(), "comm": g.comm, "pid": g.pid,
        "container_id": g.container_id, "touched": g.touched,
        "why_not": g.why_not.iter().map(|(r, w)| json!({"rule_id": r, "why_not": w})).collect::<Vec<_>>(),
    })
}

/// The document of `gaps --format json`.
pub fn gaps(summary: &ReplaySummary, gaps: &[Gap]) -> Value {
    let mut doc = json!({"events": summary.events, "gaps": gaps.iter().map(gap).collect::<Vec<_>>()});
    if summary.unevaluable() > 0 {
        doc["unevaluable"] = unevaluable(&summary.rules);
    }
    if !summary.unreadable.is_empty() {
        doc["unreadable"] = unreadable(&summary.unreadable);
    }
    doc
}

/// What `inspect --format json` says about one capture.
pub fn capture_stats(st: &CaptureStats) -> Value {
    json!({
        "path": st.path.display().to_string(),
        "format": st.format,
        "events": st.events,
        "time_range": st.time.map(|(a, b)| json!({"first": rfc3339(a), "last": rfc3339(b)})),
        "kinds": st.kinds,
        "failed_opens": st.failed_opens,
        "hosts": st.hosts,
        "containers": st.containers,
        "host_events": st.host_events,
        "metadata": st.metadata,
        "schema": st.schema.iter().map(|(n, t)| json!({"name": n, "type": t})).collect::<Vec<_>>(),
    })
}

/// The rule list of `rules list --format json`.
pub fn rules(set: &RuleSet) -> Value {
    set.rules()
        .iter()
        .map(|r| {
            let logic = r.describe();
            json!({"id": r.id, "name": r.name, "kind": r.kind(), "severity": r.severity,
                "risk_score": r.risk_score, "threat": r.threat, "source": r.source.display().to_string(), "logic": logic})
        })
        .collect()
}
