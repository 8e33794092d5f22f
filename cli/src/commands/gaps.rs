//! `tokenscan gaps`: credential-touching events no rule flagged, grouped by why.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use tokenscan_core::capture::expand_paths;
use tokenscan_core::gaps::find_gaps;
use tokenscan_core::replay::ReplayOptions;

use crate::args::{Format, RuleArgs};
use crate::render::{json, ndjson, table};
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
    let (events, gaps) = find_gaps(&rules, &captures, &ReplayOptions::default())?;
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&json::gaps(events, &gaps))?),
        Format::Ndjson => ndjson::write_lines(&mut std::io::stdout().lock(), gaps.iter().map(json::gap))?,
        Format::Table => print!("{}", table::gaps(events, &gaps)),
        Format::Csv | Format::Parquet => anyhow::bail!("gaps supports --format table, json or ndjson"),
    }
    Ok(EXIT_OK)
}
