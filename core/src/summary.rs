//! The replay summary as users see it: the `summary` object of `tokenscan
//! replay --format json` and the dict of the Python module's
//! `Findings.summary()`, built here once.

use serde_json::{json, Value};

use crate::display::rfc3339;
use crate::replay::ReplaySummary;

/// The replay summary as a JSON object: `events`, `captures` (`path`,
/// `events`), `time_range` (`first`, `last`: RFC 3339, or null), `findings`,
/// `rules` (counts and unevaluable examples per rule; for a sequence rule
/// also `sequences` and `sequences_dropped`, for a sample rule `samples`), `containers`,
/// `processes` (`host`, `pid`, `comm`), and `unreadable` only when a capture
/// could not be read completely.
pub fn summary_json(summary: &ReplaySummary) -> Value {
    let mut v = json!({
        "events": summary.events,
        "captures": summary.captures.iter().map(|(p, n)| json!({"path": p.display().to_string(), "events": n})).collect::<Vec<_>>(),
        "time_range": summary.time_range.map(|(lo, hi)| json!({"first": rfc3339(lo), "last": rfc3339(hi)})),
        "findings": summary.findings(),
        "rules": summary.rules.iter().map(|r| {
            let mut rule = json!({
                "rule_id": r.rule_id, "rule_name": r.rule_name, "severity": r.severity,
                "findings": r.findings, "unevaluable": r.unevaluable,
                "unevaluable_examples": r.examples.iter().map(|e| json!({
                    "capture": e.capture.display().to_string(), "event_index": e.event_index, "message": e.message})).collect::<Vec<_>>(),
            });
            if r.is_sample {
                rule["samples"] = json!(r.sequences);
            } else if r.is_sequence {
                rule["sequences"] = json!(r.sequences);
                rule["sequences_dropped"] = json!(r.sequences_dropped);
            }
            rule
        }).collect::<Vec<_>>(),
        "containers": summary.containers,
        "processes": summary.processes.iter().map(|(h, p, c)| json!({"host": h, "pid": p, "comm": c})).collect::<Vec<_>>(),
    });
    // Only present when something could not be read (a clean replay's summary has no such key).
    if !summary.unreadable.is_empty() {
        v["unreadable"] = summary
            .unreadable
            .iter()
            .map(|u| json!({"capture": u.capture.display().to_string(), "events_read": u.events_read, "message": u.message}))
            .collect();
    }
    v
}
