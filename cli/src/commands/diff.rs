//! `tokenscan diff`: findings added and removed between a baseline and a candidate rule set.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use tokenscan_core::capture::expand_paths;
use tokenscan_core::diff::{changes_schema, diff, Baseline, SavedFindings};
use tokenscan_core::replay::{ReplayOptions, Unreadable};

use crate::args::{open_destination, CompileArgs, Format, FormatArgs, OutputArgs};
use crate::render::{json, messages, table, FindingsOutput};
use crate::{EXIT_FINDINGS, EXIT_OK};

/// `tokenscan diff`.
#[derive(Args, Debug)]
pub struct DiffArgs {
    /// Capture files or directories, replayed once for both rule sets.
    #[arg(required = true, value_name = "CAPTURE")]
    pub captures: Vec<PathBuf>,
    /// Baseline rule file or directory (repeatable): the rules as they are in production.
    #[arg(long, value_name = "PATH", required_unless_present = "against", conflicts_with = "against")]
    pub baseline: Vec<PathBuf>,
    /// Compare with findings saved by `tokenscan replay --format parquet -o FILE` instead of baseline rules.
    #[arg(long, value_name = "FINDINGS.parquet")]
    pub against: Option<PathBuf>,
    /// Candidate rule file or directory (repeatable); the built-in rules when omitted.
    #[arg(long, value_name = "PATH")]
    pub candidate: Vec<PathBuf>,
    #[command(flatten)]
    pub compile: CompileArgs,
    #[command(flatten)]
    pub format: FormatArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Exit with code 1 when any finding was added or removed.
    #[arg(long)]
    pub fail_on_diff: bool,
    /// No summary on stderr for machine formats.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Runs `tokenscan diff`.
pub fn run(a: DiffArgs) -> Result<u8> {
    let format = a.format.format;
    let candidate = a.compile.load(&a.candidate)?;
    let (baseline, baseline_label) = match &a.against {
        Some(p) => (Baseline::Saved(SavedFindings::load(p)?), format!("saved findings {}", p.display())),
        None => (Baseline::Rules(a.compile.load(&a.baseline)?), describe_paths(&a.baseline)),
    };
    let candidate_label =
        if a.candidate.is_empty() { "built-in rules".to_string() } else { describe_paths(&a.candidate) };
    let captures = expand_paths(&a.captures)?;
    let mut inputs = captures.clone();
    inputs.extend(a.against.iter().cloned());
    let (out, label, file) = open_destination(format, &a.output, &inputs)?;
    let mut sink = FindingsOutput::new(format, out, label.clone(), changes_schema())?;
    // As `replay` does: of several captures, a bad one is reported and the others are compared.
    let options = ReplayOptions { skip_unreadable: captures.len() > 1, ..Default::default() };
    let summary = diff(&baseline, &candidate, &captures, &options, &mut sink)?;
    let header = table::diff_header(&baseline_label, &candidate_label);
    sink.finish(
        || json::diff_summary(&summary, &baseline_label, &candidate_label),
        "changes",
        |b| format!("{header}{}", table::diff(b, &summary)),
    )
    .with_context(|| format!("writing the diff to {}", label.display()))?;
    file.keep()?;
    if !a.quiet && format != Format::Table {
        eprint!("{header}{}", table::diff_counts(&summary));
    }
    if !a.quiet {
        eprint!("{}", messages::unevaluable_side("candidate", &summary.candidate_unevaluable));
        eprint!("{}", messages::unevaluable_side("baseline", &summary.baseline_unevaluable));
    }
    fail_on_unreadable(&summary.unreadable, captures.len(), "compared")?;
    Ok(if a.fail_on_diff && summary.changed() { EXIT_FINDINGS } else { EXIT_OK })
}

fn describe_paths(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// Captures that could not be read completely are errors after the report, as in `replay`.
pub(crate) fn fail_on_unreadable(unreadable: &[Unreadable], captures: usize, verb: &str) -> Result<()> {
    if unreadable.is_empty() {
        return Ok(());
    }
    eprint!("{}", messages::unreadable_as(unreadable, verb));
    anyhow::bail!(
        "{} of {captures} captures could not be read completely; the report covers the events that could",
        unreadable.len()
    )
}
