//! `tokenscan report`: the triage report, one self-contained HTML file.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use tokenscan_core::capture::expand_paths;
use tokenscan_core::output_file;
use tokenscan_core::replay::ReplayOptions;
use tokenscan_core::report::{render_html, report_data};

use crate::args::{write_new, RuleArgs};
use crate::render::messages;
use crate::EXIT_OK;

/// `tokenscan report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Capture files or directories.
    #[arg(required = true, value_name = "CAPTURE")]
    pub captures: Vec<PathBuf>,
    /// The HTML file to write.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: PathBuf,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub rules: RuleArgs,
}

/// Runs `tokenscan report`.
pub fn run(a: ReportArgs) -> Result<u8> {
    let rules = a.rules.load()?;
    let captures = expand_paths(&a.captures)?;
    output_file::refuse_inputs(&a.output, &captures, "input")?;
    // As `replay` does: of several captures, a bad one is reported (in the
    // report too) and the others are read.
    let options = ReplayOptions { skip_unreadable: captures.len() > 1, ..Default::default() };
    let (summary, data) = report_data(&rules, &captures, &options)?;
    let html = render_html(&data);
    write_new(&a.output, a.force, |mut f| {
        f.write_all(html.as_bytes()).with_context(|| format!("{}: cannot write", a.output.display()))
    })?;
    eprintln!("wrote {} ({} bytes)", a.output.display(), html.len());
    eprint!("{}", messages::unevaluable(&summary));
    super::diff::fail_on_unreadable(&summary.unreadable, captures.len(), "reported")?;
    Ok(EXIT_OK)
}
