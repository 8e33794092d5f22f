//! Rule regression commands: `diff`, `test`, `rules check` and `gaps`.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::UInt64Type;
use clap::Args;
use tokenscan_core::capture::expand_paths;
use tokenscan_core::diff::{changes_schema, diff, Baseline, DiffSummary, SavedFindings};
use tokenscan_core::replay::{ReplayOptions, RuleSummary, Unreadable};

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
    // As `replay` does: of several captures, a bad one is reported and the others are compared.
    let options = ReplayOptions { skip_unreadable: captures.len() > 1, ..Default::default() };
    let summary = diff(&baseline, &candidate, &captures, &options, &mut sink)?;
    let header = format!("baseline:  {baseline_label}\ncandidate: {candidate_label}\n");
    sink.finish(diff_json(&summary, &baseline_label, &candidate_label), "changes", |b| {
        format!("{header}{}", render_diff(b, &summary))
    })
    .with_context(|| format!("writing the diff to {}", label.display()))?;
    if !a.quiet && a.format != Format::Table {
        eprint!("{header}{}", diff_counts(&summary));
    }
    if !a.quiet {
        warn_unevaluable("candidate", &summary.candidate_unevaluable);
        warn_unevaluable("baseline", &summary.baseline_unevaluable);
    }
    fail_on_unreadable(&summary.unreadable, captures.len(), "compared")?;
    Ok(if a.fail_on_diff && summary.changed() { EXIT_FINDINGS } else { EXIT_OK })
}

/// Warns on stderr about events a rule of one side could not evaluate, as `replay` does.
fn warn_unevaluable(side: &str, rules: &[RuleSummary]) {
    for r in rules.iter().filter(|r| r.unevaluable > 0) {
        eprintln!(
            "tokenscan: warning: {side} rule {} could not evaluate {} event{}; for example:",
            r.rule_id,
            r.unevaluable,
            if r.unevaluable == 1 { "" } else { "s" }
        );
        for e in &r.examples {
            eprintln!("  {} event {}: {}", e.capture.display(), e.event_index, e.message);
        }
    }
}

/// Captures that could not be read completely are errors after the report, as in `replay`.
fn fail_on_unreadable(unreadable: &[Unreadable], captures: usize, verb: &str) -> Result<()> {
    if unreadable.is_empty() {
        return Ok(());
    }
    for u in unreadable {
        eprintln!("tokenscan: error: {} ({} events of it were {verb})", u.message, u.events_read);
    }
    anyhow::bail!(
        "{} of {captures} captures could not be read completely; the report covers the events that could",
        unreadable.len()
    )
}

/// Per-rule unevaluable counts and examples as JSON, as in the replay summary.
fn unevaluable_json(rules: &[RuleSummary]) -> serde_json::Value {
    rules
        .iter()
        .filter(|r| r.unevaluable > 0)
        .map(|r| {
            serde_json::json!({"rule_id": r.rule_id, "unevaluable": r.unevaluable,
            "unevaluable_examples": r.examples.iter().map(|e| serde_json::json!({
                "capture": e.capture.display().to_string(), "event_index": e.event_index, "message": e.message})).collect::<Vec<_>>()})
        })
        .collect()
}

/// The unreadable captures as JSON, as in the replay summary.
fn unreadable_json(unreadable: &[Unreadable]) -> serde_json::Value {
    unreadable
        .iter()
        .map(|u| serde_json::json!({"capture": u.capture.display().to_string(), "events_read": u.events_read, "message": u.message}))
        .collect()
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
    let mut v = serde_json::json!({
        "baseline": baseline,
        "candidate": candidate,
        "events": summary.events,
        "captures": summary.captures.iter().map(|(p, n)| serde_json::json!({"path": p.display().to_string(), "events": n})).collect::<Vec<_>>(),
        "changed": summary.changed(),
        "rules": summary.rules.iter().map(|r| serde_json::json!({
            "rule_id": r.rule_id, "rule_name": r.rule_name, "in_baseline": r.in_baseline, "in_candidate": r.in_candidate,
            "added": r.added, "removed": r.removed, "unchanged": r.unchanged})).collect::<Vec<_>>(),
        "unmatched_saved_captures": summary.unmatched_saved_captures,
    });
    // Only present when there is something to say (a clean diff's JSON is unchanged).
    if summary.unevaluable() > 0 {
        v["unevaluable"] = serde_json::json!({
            "candidate": unevaluable_json(&summary.candidate_unevaluable),
            "baseline": unevaluable_json(&summary.baseline_unevaluable),
        });
    }
    if !summary.unreadable.is_empty() {
        v["unreadable"] = unreadable_json(&summary.unreadable);
    }
    v
}

/// `tokenscan test`.
#[derive(Args, Debug)]
pub struct TestArgs {
    /// A suite directory (holding tokenscan-test.toml) or an expectations file.
    #[arg(default_value = ".")]
    suite: PathBuf,
    /// Also write JUnit XML to FILE, for CI systems.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Overwrite the --junit file if it exists.
    #[arg(long)]
    force: bool,
    /// Disable Elasticsearch's 1024-character `ignore_above` limit on keyword fields.
    #[arg(long)]
    no_ignore_above: bool,
}

/// Runs `tokenscan test`: exit 0 when every case passes, 1 otherwise.
pub fn run_test(a: TestArgs) -> Result<u8> {
    use std::io::Write as _;
    let suite = tokenscan_core::suite::Suite::load(&a.suite)?;
    let options = tokenscan_core::eql::CompileOptions {
        ignore_above: if a.no_ignore_above { None } else { Some(tokenscan_core::eql::DEFAULT_IGNORE_ABOVE) },
    };
    let results = suite.run_with(&options, &ReplayOptions::default())?;
    let failed = results.iter().filter(|r| !r.passed()).count();
    let mut out = String::new();
    let _ = writeln!(out, "Suite: {} ({})\n", suite.name, suite.path.display());
    let w = results.iter().map(|r| r.rule.len()).max().unwrap_or(4).max(4);
    let _ = writeln!(out, "  RESULT  FINDINGS  {:<w$}  CASE", "RULE");
    for r in &results {
        let verdict = if r.passed() { "pass" } else { "FAIL" };
        let _ = writeln!(out, "  {verdict:<6}  {:>8}  {:<w$}  {}", r.findings, r.rule, r.name);
        for f in &r.failures {
            let _ = writeln!(out, "          - {f}");
        }
    }
    let _ = writeln!(out, "\n{} cases: {} passed, {failed} failed", results.len(), results.len() - failed);
    print!("{out}");
    if let Some(path) = &a.junit {
        let mut f = crate::create_output(path, a.force)?;
        f.write_all(tokenscan_core::suite::junit_xml(&suite, &results).as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(if failed > 0 { EXIT_FINDINGS } else { EXIT_OK })
}

/// Runs `tokenscan rules check`.
pub fn run_check(paths: &[PathBuf], no_ignore_above: bool) -> Result<u8> {
    use tokenscan_core::lint::{check_file, lint_rule, Severity};
    use tokenscan_core::rules::{RuleSet, BUILTIN_RULES};
    let options = tokenscan_core::eql::CompileOptions {
        ignore_above: if no_ignore_above { None } else { Some(tokenscan_core::eql::DEFAULT_IGNORE_ABOVE) },
    };
    let mut diagnostics = Vec::new();
    let mut files = 0;
    if paths.is_empty() {
        let set = RuleSet::builtin(&options)?;
        for (rule, (_, text)) in set.rules().iter().zip(BUILTIN_RULES) {
            files += 1;
            diagnostics.extend(lint_rule(rule, text));
        }
    } else {
        for p in paths {
            let list = if p.is_dir() {
                let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                    .with_context(|| format!("{}: cannot list", p.display()))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| f.extension().is_some_and(|x| x == "toml") && f.is_file())
                    .collect();
                v.sort();
                v
            } else {
                vec![p.clone()]
            };
            for f in list {
                files += 1;
                diagnostics.extend(check_file(&f, &options));
            }
        }
    }
    for d in &diagnostics {
        println!("{d}");
    }
    let errors = diagnostics.iter().filter(|d| d.severity == Severity::Error).count();
    let warnings = diagnostics.len() - errors;
    eprintln!("tokenscan: checked {files} rule file(s): {errors} error(s), {warnings} warning(s)");
    Ok(if diagnostics.is_empty() { EXIT_OK } else { EXIT_FINDINGS })
}

/// `tokenscan gaps`.
#[derive(Args, Debug)]
pub struct GapsArgs {
    /// Capture files or directories.
    #[arg(required = true, value_name = "CAPTURE")]
    captures: Vec<PathBuf>,
    #[command(flatten)]
    rules: RuleArgs,
    /// Output format: table, json or ndjson.
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// Runs `tokenscan gaps`: credential-touching events no rule flagged, grouped by why.
pub fn run_gaps(a: GapsArgs) -> Result<u8> {
    use tokenscan_core::gaps::find_gaps;
    let rules = a.rules.load()?;
    let captures = expand_paths(&a.captures)?;
    // As `replay` does: of several captures, a bad one is reported and the others are searched.
    let options = ReplayOptions { skip_unreadable: captures.len() > 1, ..Default::default() };
    let (summary, gaps) = find_gaps(&rules, &captures, &options)?;
    let events = summary.events;
    let json = |g: &tokenscan_core::gaps::Gap| {
        serde_json::json!({
            "capture": g.capture.display().to_string(), "event_index": g.event_index, "gap": g.kind.code(),
            "explanation": g.kind.describe(), "kind": g.event_kind.as_str(), "comm": g.comm, "pid": g.pid,
            "container_id": g.container_id, "touched": g.touched,
            "why_not": g.why_not.iter().map(|(r, w)| serde_json::json!({"rule_id": r, "why_not": w})).collect::<Vec<_>>(),
        })
    };
    match a.format {
        Format::Json => {
            let mut doc = serde_json::json!({"events": events, "gaps": gaps.iter().map(json).collect::<Vec<_>>()});
            if summary.unevaluable() > 0 {
                doc["unevaluable"] = unevaluable_json(&summary.rules);
            }
            if !summary.unreadable.is_empty() {
                doc["unreadable"] = unreadable_json(&summary.unreadable);
            }
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Format::Ndjson => {
            for g in &gaps {
                println!("{}", json(g));
            }
        }
        Format::Table => {
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
                    let container =
                        g.container_id.as_deref().map_or("host".to_string(), |c| c.chars().take(12).collect());
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
            print!("{out}");
        }
        Format::Csv | Format::Parquet => anyhow::bail!("gaps supports --format table, json or ndjson"),
    }
    crate::output::warn_unevaluable(&summary);
    fail_on_unreadable(&summary.unreadable, captures.len(), "searched")?;
    Ok(EXIT_OK)
}
