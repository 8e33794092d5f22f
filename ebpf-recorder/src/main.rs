//! `tokenscan-record`: flags in, one recording session, a summary out.
//!
//! Exit codes: 0 the capture is complete; 1 it was written but kernel
//! records were lost (the summary says how many); 2 an error (one line on
//! stderr).

use clap::Parser;
use tokenscan_record::cli::Args;
use tokenscan_record::run;

fn main() {
    let args = Args::parse();
    match run::record(&args) {
        Ok(summary) => {
            let _ = run::print_summary(&summary, &mut std::io::stderr());
            std::process::exit(if summary.lost() > 0 { 1 } else { 0 });
        }
        Err(e) => {
            eprintln!("tokenscan-record: error: {e:#}");
            std::process::exit(2);
        }
    }
}
