//! Rule regression commands: `diff`, `test`, `rules check` and `gaps`.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::UInt64Type;
use clap::Args;
use tokenscan_core::capture::expand_paths;
use tokenscan_core::diff::{changes_schema, diff, Baseline, DiffSummary, SavedFindings};
use tokenscan_core::replay::ReplayOptions;

use crate::output::{col, s, target, FindingsOutput};
use crate::{open_output, Format, RuleArgs, EXIT_FINDINGS, EXIT_OK};

/// `tokenscan diff`.
#[derive(Args, Debug)]
pub struct DiffArgs {
    /// Capture files or directories, replayed once for both rule sets.
    #[arg(required = true, value_name = "CAPTURE")]
    captures: Vec<PathBuf>,
    /// Baseline rule file or directory (repeatable): the rules as they are in production.
    #[arg(long, value_name = "PATH", required_unless_present = "against", conflicts_with = "against")]
    baseline: Vec<PathBuf>,
    /// Compare with findings saved by `tokenscan replay --format parquet -o FILE` instead of baseline rules.
    #[arg(long, value_name = "FINDINGS.parquet")]
    against: Option<PathBuf>,
    /// Candidate rule file or directory (repeatable); the built-in rules when omitted.
    #[arg(long, value_name = "PATH")]
    candidate: Vec<PathBuf>,
    /// Disable Elasticsearch's 1024-character `ignore_above` limit on keyword fields.
    #[arg(long)]
    no_ignore_above: bool,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Write the report to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Overwrite the -o file if it exists.
    #[arg(long)]
    force: bool,
    /// Exit with code 1 when any finding was added or removed.
    #[arg(long)]
    fail_on_diff: bool,
    /// No summary on stderr for machine formats.
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// Runs `tokenscan diff`.
pub fn run_diff(a: DiffArgs) -> Result<u8> {
    let rules_of = |paths: &[PathBuf]| RuleArgs { rules: paths.to_vec(), no_ignore_above: a.no_ignore_above }.load();
    let candidate = rules_of(&a.candidate)?;
    let (baseline, baseline_label) = match &a.against {
        Some(p) => (Baseline::Saved(SavedFindings::load(p)?), format!("saved findings {}", p.display())),
        None => (Baseline::Rules(rules_of(&a.baseline)?), describe_paths(&a.baseline)),
    };
    let candidate_label =
        if a.candidate.is_empty() { "built-in rules".to_string() } else { describe_paths(&a.candidate) };
    let captures = expand_paths(&a.captures)?;
    let mut inputs = captures.clone();
    inputs.extend(a.against.iter().cloned());
    let (out, label) = open_output(a.format, a.output.as_deref(), a.force, &inputs)?;
    let mut sink = FindingsOutput::new(a.format, out, label.clone(), changes_schema())?;
    let summary = diff(&baseline, &candidate, &captures, &ReplayOptions::default(), &mut sink)?;
    let header = format!("baseline:  {baseline_label}\ncandidate: {candidate_label}\n");
    sink.finish(diff_json(&summary, &baseline_label, &candidate_label), "changes", |b| {
        format!("{header}{}", render_diff(b, &summary))
    })
    .with_context(|| format!("writing the diff to {}", label.display()))?;
    if !a.quiet && a.format != Format::Table {
        eprint!("{header}{}", diff_counts(&summary));
    }
    Ok(if a.fail_on_diff && summary.changed() { EXIT_FINDINGS } else { EXIT_OK })
}

fn describe_paths(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

fn diff_counts(summary: &DiffSummary) -> String {
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

/// The human diff report: counts first, then each added and removed finding.
fn render_diff(batches: &[RecordBatch], summary: &DiffSummary) -> String {
    let mut out = diff_counts(summary);
    for (change, sign, now, then) in
        [("added", '+', "now fires:", "baseline:"), ("removed", '-', "fired before:", "candidate:")]
    {
        let mut lines = String::new();
        let mut n = 0;
        for b in batches {
            let idx = col(b, "event_index").as_primitive::<UInt64Type>();
            let pid = col(b, "pid").as_primitive::<arrow::datatypes::UInt32Type>();
            for i in 0..b.num_rows() {
                if s(b, "change", i).as_deref() != Some(change) {
                    continue;
                }
                n += 1;
                let cap = s(b, "capture", i).unwrap_or_default();
                let container = s(b, "container_id", i).map_or("host".to_string(), |c| c.chars().take(12).collect());
                let _ = writeln!(
                    lines,
                    "  {sign} {} {cap}#{}  {} {} {}  (container {container}, pid {})",
                    s(b, "rule_id", i).unwrap_or_default(),
                    idx.value(i),
                    s(b, "comm", i).unwrap_or_default(),
                    s(b, "kind", i).unwrap_or_default(),
                    target(b, i),
                    pid.value(i),
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

fn diff_json(summary: &DiffSummary, baseline: &str, candidate: &str) -> serde_json::Value {
    serde_json::json!({
        "baseline": baseline,
        "candidate": candidate,
        "events": summary.events,
        "captures": summary.captures.iter().map(|(p, n)| serde_json::json!({"path": p.display().to_string(), "events": n})).collect::<Vec<_>>(),
        "changed": summary.changed(),
        "rules": summary.rules.iter().map(|r| serde_json::json!({
            "rule_id": r.rule_id, "rule_name": r.rule_name, "in_baseline": r.in_baseline, "in_candidate": r.in_candidate,
            "added": r.added, "removed": r.removed, "unchanged": r.unchanged})).collect::<Vec<_>>(),
        "unmatched_saved_captures": summary.unmatched_saved_captures,
    })
}
