//! `tokenscan`: replay recorded captures through Kubernetes service-account
//! token-theft detection rules. This binary is flag definitions and glue; the
//! work is done by `tokenscan-core`.
//!
//! - `commands/`: one module per command (its flags and its glue);
//! - `render/`: one module per output format (every printer);
//! - `args.rs`: the options several commands share, flattened into each.

mod args;
mod commands;
mod render;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use commands::{convert, decode_floor, diff, export, gaps, import, inspect, replay, report, rules, synth, test, tree};

/// Exit code: success (with or without findings, unless --fail-on-findings).
pub const EXIT_OK: u8 = 0;
/// Exit code: findings exist and --fail-on-findings was given.
pub const EXIT_FINDINGS: u8 = 1;
/// Exit code: an error (bad input, bad rules, bad flags, output failure).
pub const EXIT_ERROR: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "tokenscan",
    version = env!("TOKENSCAN_VERSION_LONG"),
    about = "Replay recorded captures through Kubernetes service-account token-theft detection rules",
    long_about = "Replay recorded captures (Parquet, or their NDJSON twin) through Elastic's EQL rule \
\"Service Account Token or Certificate Read Detected via Defend for Containers\" and Tracee's TRC-108, \
or through your own rule files.\n\nExit codes: 0 success, 1 findings present with --fail-on-findings, 2 error."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Replay captures through the rules and report findings.
    Replay(replay::ReplayArgs),
    /// Convert a capture between Parquet and NDJSON.
    Convert(convert::ConvertArgs),
    /// Compare a baseline and a candidate rule set on the same captures: findings added and removed.
    Diff(diff::DiffArgs),
    /// Run a rule test suite (captures + tokenscan-test.toml expectations); exit 1 on failure.
    Test(test::TestArgs),
    /// List events that touch service-account credentials but that no rule flagged, grouped by why.
    Gaps(gaps::GapsArgs),
    /// Write a deterministic synthetic capture (for benchmarks): a realistic mix of opens and execs with rare token reads.
    Synth(synth::SynthArgs),
    /// Benchmark helper: read the columns replay needs, in parallel, and do nothing else.
    #[command(hide = true)]
    DecodeFloor(decode_floor::DecodeFloorArgs),
    /// Turn events recorded by another tool (Tracee JSON, Elastic ECS) into a capture.
    #[command(subcommand)]
    Import(import::ImportCommand),
    /// Write a capture as Tracee JSON lines or Elastic ECS documents.
    #[command(subcommand)]
    Export(export::ExportCommand),
    /// Show a capture's schema, size, time range, hosts, containers and metadata.
    Inspect(inspect::InspectArgs),
    /// Work with rule files.
    #[command(subcommand)]
    Rules(rules::RulesCommand),
    /// Print the process tree of a pod, a container or a session, each finding marked with its rule and reason.
    Tree(tree::TreeArgs),
    /// Write a triage report: one self-contained HTML file with the summary, findings, timeline, trees and blind spots.
    Report(report::ReportArgs),
}

fn main() -> ExitCode {
    tokenscan_core::output_file::remove_partial_outputs_on_signals();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("tokenscan: error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Replay(a) => replay::run(a),
        Command::Convert(a) => convert::run(a),
        Command::Diff(a) => diff::run(a),
        Command::Test(a) => test::run(a),
        Command::Gaps(a) => gaps::run(a),
        Command::Synth(a) => synth::run(a),
        Command::DecodeFloor(a) => decode_floor::run(a),
        Command::Import(c) => import::run(c),
        Command::Export(c) => export::run(c),
        Command::Inspect(a) => inspect::run(a),
        Command::Rules(c) => rules::run(c),
        Command::Tree(a) => tree::run(a),
        Command::Report(a) => report::run(a),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::args::Format;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn replay_flags_parse() {
        let cli = Cli::try_parse_from([
            "tokenscan",
            "replay",
            "a.parquet",
            "dir",
            "--rules",
            "r.toml",
            "-r",
            "more/",
            "--format",
            "ndjson",
            "-o",
            "out.ndjson",
            "--force",
            "--strict",
            "--fail-on-findings",
            "--no-ignore-above",
        ])
        .expect("valid flags");
        let Command::Replay(a) = cli.command else { panic!("expected replay") };
        assert_eq!(a.captures, [PathBuf::from("a.parquet"), PathBuf::from("dir")]);
        assert_eq!(a.rules.rules, [PathBuf::from("r.toml"), PathBuf::from("more/")]);
        assert_eq!(a.format.format, Format::Ndjson);
        assert_eq!(a.output.output, Some(PathBuf::from("out.ndjson")));
        assert!(a.output.force && a.strict && a.fail_on_findings && a.rules.compile.no_ignore_above);
    }

    #[test]
    fn replay_needs_a_capture_and_a_known_format() {
        assert!(Cli::try_parse_from(["tokenscan", "replay"]).is_err());
        assert!(Cli::try_parse_from(["tokenscan", "replay", "x", "--format", "xml"]).is_err());
    }

    #[test]
    fn shared_flags_mean_the_same_in_every_command() {
        let cli = Cli::try_parse_from(["tokenscan", "rules", "check", "r.toml", "--no-ignore-above"]).expect("valid");
        let Command::Rules(rules::RulesCommand::Check { compile, .. }) = cli.command else { panic!("expected check") };
        assert_eq!(compile.options().ignore_above, None);
        let cli = Cli::try_parse_from(["tokenscan", "test", "suite"]).expect("valid");
        let Command::Test(a) = cli.command else { panic!("expected test") };
        assert_eq!(a.compile.options().ignore_above, Some(1024));
        let cli = Cli::try_parse_from(["tokenscan", "convert", "a.parquet", "-o", "b.JSONL"]).expect("valid");
        let Command::Convert(a) = cli.command else { panic!("expected convert") };
        assert_eq!(a.output.format().expect("from the extension"), tokenscan_core::capture::CaptureFormat::Ndjson);
        let cli = Cli::try_parse_from(["tokenscan", "import", "ecs", "e.json", "-o", "c.txt"]).expect("valid");
        let Command::Import(import::ImportCommand::Ecs(a)) = cli.command else { panic!("expected import") };
        assert!(a.output.format().is_err());
    }
}
