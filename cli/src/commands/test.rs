//! `tokenscan test`: run a rule test suite; optionally write JUnit XML.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use tokenscan_core::suite::Suite;

use crate::args::{write_new, CompileArgs};
use crate::render::{junit, table};
use crate::{EXIT_FINDINGS, EXIT_OK};

/// `tokenscan test`.
#[derive(Args, Debug)]
pub struct TestArgs {
    /// A suite directory (holding tokenscan-test.toml) or an expectations file.
    #[arg(default_value = ".")]
    pub suite: PathBuf,
    /// Also write JUnit XML to FILE, for CI systems.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Overwrite the --junit file if it exists.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub compile: CompileArgs,
}

/// Runs `tokenscan test`: exit 0 when every case passes, 1 otherwise.
pub fn run(a: TestArgs) -> Result<u8> {
    let suite = Suite::load(&a.suite)?;
    let results = suite.run_with(&a.compile.options(), &tokenscan_core::replay::ReplayOptions::default())?;
    print!("{}", table::suite_results(&suite, &results));
    if let Some(path) = &a.junit {
        write_new(path, a.force, |mut f| {
            f.write_all(junit::suite(&suite, &results).as_bytes())
                .with_context(|| format!("writing {}", path.display()))
        })?;
    }
    Ok(if results.iter().any(|r| !r.passed()) { EXIT_FINDINGS } else { EXIT_OK })
}
