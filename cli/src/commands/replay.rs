//! `tokenscan replay`: captures through the rules, findings out.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use tokenscan_core::capture::expand_paths;
use tokenscan_core::findings::findings_schema;
use tokenscan_core::replay::{ReplayOptions, Replayer};
use tokenscan_core::summary::summary_json;

use crate::args::{open_destination, Format, FormatArgs, OutputArgs, RuleArgs};
use crate::render::{messages, table, FindingsOutput};
use crate::{EXIT_FINDINGS, EXIT_OK};

/// `tokenscan replay`.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Capture files (Parquet or NDJSON) or directories of them.
    #[arg(required = true, value_name = "CAPTURE")]
    pub captures: Vec<PathBuf>,
    #[command(flatten)]
    pub rules: RuleArgs,
    #[command(flatten)]
    pub format: FormatArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Fail on the first event a rule cannot evaluate instead of counting it, and on the first
    /// of several captures that cannot be read instead of replaying the others (exit 2 either way).
    #[arg(long)]
    pub strict: bool,
    /// Stop before replaying when a rule file given with --rules cannot be loaded (implied by
    /// --strict). Without it, each such rule is reported (file:line:column and reason) and the
    /// others are replayed; the exit code is then 2.
    #[arg(long)]
    pub strict_rules: bool,
    /// Exit with code 1 when there are findings (for scripts).
    #[arg(long)]
    pub fail_on_findings: bool,
    /// No summary or warnings on stderr; a rule that cannot load is still named there, since the
    /// findings miss it.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Events per batch.
    #[arg(long, default_value_t = tokenscan_core::capture::DEFAULT_BATCH_SIZE, value_name = "N")]
    pub batch_size: usize,
    /// Leave the findings' pod, parent and session-leader columns empty, saving the pass over
    /// the capture's process lifecycle that fills them (rules that read process fields still get it).
    #[arg(long)]
    pub no_context: bool,
}

/// Runs `tokenscan replay`.
pub fn run(a: ReplayArgs) -> Result<u8> {
    let (rules, skipped) =
        if a.strict || a.strict_rules { (a.rules.load()?, Vec::new()) } else { a.rules.load_skipping()? };
    if rules.rules().is_empty() && skipped.len() == 1 {
        // A single rule file that cannot load: its error is the answer.
        let only = skipped.into_iter().next().expect("one problem");
        return Err(only.into());
    }
    // Rules that cannot load are named before any output, even with --quiet: the findings miss them.
    for problem in &skipped {
        eprintln!("warning: rule skipped: {problem}");
    }
    if rules.rules().is_empty() {
        bail!("none of the rules could be loaded ({} problems above)", skipped.len());
    }
    let captures = expand_paths(&a.captures)?;
    let format = a.format.format;
    let (out, label, file) = open_destination(format, &a.output, &captures)?;
    let options = ReplayOptions {
        batch_size: a.batch_size.max(1),
        strict: a.strict,
        // Of several captures (a directory of segments), a bad one is reported and the
        // others are replayed; a single capture that cannot be read is simply an error.
        skip_unreadable: !a.strict && captures.len() > 1,
        context: !a.no_context,
        ..Default::default()
    };
    let loaded = rules.rules().len();
    let replayer = Replayer::new(rules, options);
    let multi = captures.len() > 1;
    let mut sink = FindingsOutput::new(format, out, label.clone(), findings_schema())?.with_progress(!a.quiet);
    let summary = replayer.replay(&captures, &mut sink)?;
    sink.finish(|| summary_json(&summary), "findings", |b| table::findings(b, &summary, multi))
        .with_context(|| format!("writing findings to {}", label.display()))?;
    // The findings cover every event that could be read: keep them even if a capture could not be.
    file.keep()?;
    if !a.quiet {
        if format != Format::Table {
            eprint!("{}", table::summary(&summary));
        }
        eprint!("{}", messages::unevaluable(&summary));
    }
    // Unreadable captures are errors even with --quiet: the findings miss their events.
    if !summary.unreadable.is_empty() {
        eprint!("{}", messages::unreadable(&summary));
        bail!(
            "{} of {} captures could not be read completely; the findings cover the events that could \
             (--strict stops at the first unreadable capture instead)",
            summary.unreadable.len(),
            captures.len()
        );
    }
    if !skipped.is_empty() {
        let files: std::collections::BTreeSet<String> = skipped.iter().map(rule_file).collect();
        bail!(
            "{} rule {} could not be loaded ({} {}); the findings are those of the {} {} that could \
             (--strict-rules stops before replaying instead)",
            files.len(),
            if files.len() == 1 { "file" } else { "files" },
            skipped.len(),
            if skipped.len() == 1 { "problem" } else { "problems" },
            loaded,
            if loaded == 1 { "rule" } else { "rules" },
        );
    }
    Ok(if a.fail_on_findings && summary.findings() > 0 { EXIT_FINDINGS } else { EXIT_OK })
}

/// The rule file a loading problem is about.
fn rule_file(e: &tokenscan_core::Error) -> String {
    match e {
        tokenscan_core::Error::Rule { path, .. } => path.display().to_string(),
        other => other.to_string(),
    }
}
