//! `tokenscan tree`: the process tree of a pod, a container or a session,
//! each finding marked on its process with its rule and reason.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use tokenscan_core::capture::expand_paths;
use tokenscan_core::process::{process_trees, TreeFilter};
use tokenscan_core::replay::ReplayOptions;

use crate::args::RuleArgs;
use crate::render::tree;
use crate::EXIT_OK;

/// `tokenscan tree`.
#[derive(Args, Debug)]
pub struct TreeArgs {
    /// Capture files or directories.
    #[arg(required = true, value_name = "CAPTURE")]
    pub captures: Vec<PathBuf>,
    /// Only the processes of this pod (by name; needs a version 2 capture with container metadata).
    #[arg(long, value_name = "NAME", conflicts_with = "container")]
    pub pod: Option<String>,
    /// Only the processes of this container (full id, or a prefix of at least 12 characters).
    #[arg(long, value_name = "ID")]
    pub container: Option<String>,
    /// Only the session of this pid (its session id; without session ids, the pid and its descendants).
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    #[command(flatten)]
    pub rules: RuleArgs,
}

/// Runs `tokenscan tree`.
pub fn run(a: TreeArgs) -> Result<u8> {
    let rules = a.rules.load()?;
    let captures = expand_paths(&a.captures)?;
    let filter = TreeFilter { pod: a.pod, container: a.container, pid: a.pid };
    let trees = process_trees(&rules, &captures, &ReplayOptions::default(), &filter)?;
    print!("{}", tree::render(&trees));
    Ok(EXIT_OK)
}
