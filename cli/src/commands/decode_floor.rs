//! `tokenscan decode-floor` (hidden): a benchmark helper that reads the
//! columns replay needs, in parallel, and does nothing else.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use tokenscan_core::capture::expand_paths;
use tokenscan_core::replay::{ReplayOptions, Replayer};

use crate::args::RuleArgs;
use crate::EXIT_OK;

/// `tokenscan decode-floor`.
#[derive(Args, Debug)]
pub struct DecodeFloorArgs {
    /// Capture files or directories.
    #[arg(required = true)]
    pub captures: Vec<PathBuf>,
    #[command(flatten)]
    pub rules: RuleArgs,
}

/// Runs `tokenscan decode-floor`: prints the number of events decoded.
pub fn run(a: DecodeFloorArgs) -> Result<u8> {
    let rules = a.rules.load()?;
    let events = Replayer::new(rules, ReplayOptions::default()).decode_only(&expand_paths(&a.captures)?)?;
    println!("{events}");
    Ok(EXIT_OK)
}
