//! `tokenscan gaps`: credential-touching events no rule flagged, grouped by why.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use tokenscan_core::capture::expand_paths;
use tokenscan_core::gaps::find_gaps;
use tokenscan_core::replay::ReplayOptions;

use crate::args::{Format, RuleArgs};
use crate::render::{json, messages, ndjson, table};
use crate::EXIT_OK;

/// `tokenscan gaps`.
#[derive(Args, Debug)]
pub struct GapsArgs {
    /// Capture files or directories.
    #[arg(required = true, value_name = "CAPTURE")]
    pub captures: Vec<PathBuf>,
    #[command(flatten)]
    pub rules: RuleArgs,
    /// Output format: table, json or ndjson.
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Runs `tokenscan gaps`.
pub fn run(a: GapsArgs) -> Result<u8> {
    let rules = a.rules.load()?;
    let captures = expand_paths(&a.captures)?;
    // As `replay` does: of several captures, a bad one is reported and the others are searched.
    let options = ReplayOptions { skip_unreadable: captures.len() > 1, ..Default::default() };
    let (summary, gaps) = find_gaps(&rules, &captures, &options)?;
    let events = summary.events;
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&json::gaps(&summary, &gaps))?),
        Format::Ndjson => ndjson::write_lines(&mut std::io::stdout().lock(), gaps.iter().map(json::gap))?,
        Format::Table => print!("{}", table::gaps(events, &gaps)),
        Format::Csv | Format::Parquet => anyhow::bail!("gaps supports --format table, json or ndjson"),
    }
    eprint!("{}", messages::unevaluable(&summary));
    super::diff::fail_on_unreadable(&summary.unreadable, captures.len(), "searched")?;
    Ok(EXIT_OK)
}
