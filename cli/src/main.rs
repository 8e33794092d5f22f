//! `tokenscan`: replay recorded captures through Kubernetes service-account
//! token-theft detection rules. This binary is flag definitions and glue; the
//! work is done by `tokenscan-core`.

mod import;
mod inspect;
mod output;
mod regress;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use tokenscan_core::capture::{
    expand_paths, Capture, EventBatch, NdjsonWriter, ParquetCaptureWriter, Projection, WriterOptions,
};
use tokenscan_core::driver::read_events;
use tokenscan_core::eql::CompileOptions;
use tokenscan_core::findings::findings_schema;
use tokenscan_core::replay::{ReplayOptions, Replayer};
use tokenscan_core::rules::RuleSet;

/// Exit code: success (with or without findings, unless --fail-on-findings).
pub const EXIT_OK: u8 = 0;
/// Exit code: findings exist and --fail-on-findings was given.
pub const EXIT_FINDINGS: u8 = 1;
/// Exit code: an error (bad input, bad rules, bad flags, output failure).
pub const EXIT_ERROR: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "tokenscan",
    version,
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
    Replay(ReplayArgs),
    /// Convert a capture between Parquet and NDJSON.
    Convert(ConvertArgs),
    /// Compare a baseline and a candidate rule set on the same captures: findings added and removed.
    Diff(regress::DiffArgs),
    /// Run a rule test suite (captures + tokenscan-test.toml expectations); exit 1 on failure.
    Test(regress::TestArgs),
    /// List events that touch service-account credentials but that no rule flagged, grouped by why.
    Gaps(regress::GapsArgs),
    /// Write a deterministic synthetic capture (for benchmarks): a realistic mix of opens and execs with rare token reads.
    Synth(SynthArgs),
    /// Benchmark helper: read the columns replay needs, in parallel, and do nothing else.
    #[command(hide = true)]
    DecodeFloor(DecodeFloorArgs),
    /// Turn events recorded by another tool (Tracee JSON, Elastic ECS) into a capture.
    #[command(subcommand)]
    Import(import::ImportCommand),
    /// Write a capture as Tracee JSON lines or Elastic ECS documents.
    #[command(subcommand)]
    Export(import::ExportCommand),
    /// Show a capture's schema, size, time range, hosts, containers and metadata.
    Inspect(InspectArgs),
    /// Work with rule files.
    #[command(subcommand)]
    Rules(RulesCommand),
}

#[derive(Args, Debug, Clone)]
pub struct RuleArgs {
    /// Rule file or directory of rule files (*.toml); repeatable. Replaces the built-in rules.
    #[arg(long = "rules", short = 'r', value_name = "PATH")]
    pub rules: Vec<PathBuf>,
    /// Disable Elasticsearch's 1024-character `ignore_above` limit on keyword fields.
    #[arg(long)]
    pub no_ignore_above: bool,
}

impl RuleArgs {
    /// The rules named, or the built-in set when none are.
    pub fn load(&self) -> Result<RuleSet> {
        let options = CompileOptions { ignore_above: if self.no_ignore_above { None } else { Some(1024) } };
        Ok(if self.rules.is_empty() { RuleSet::builtin(&options)? } else { RuleSet::load(&self.rules, &options)? })
    }
}

/// Output formats for findings.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human table grouped by rule, then a summary.
    Table,
    /// One JSON document: {"summary": ..., "findings": [...]}.
    Json,
    /// One JSON object per finding per line.
    Ndjson,
    /// CSV with a header; `args` as a JSON array.
    Csv,
    /// Parquet (needs -o).
    Parquet,
}

#[derive(Args, Debug)]
struct ReplayArgs {
    /// Capture files (Parquet or NDJSON) or directories of them.
    #[arg(required = true, value_name = "CAPTURE")]
    captures: Vec<PathBuf>,
    #[command(flatten)]
    rules: RuleArgs,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Write findings to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Overwrite the -o file if it exists.
    #[arg(long)]
    force: bool,
    /// Fail on the first event a rule cannot evaluate instead of counting it, and on the first
    /// of several captures that cannot be read instead of replaying the others (exit 2 either way).
    #[arg(long)]
    strict: bool,
    /// Exit with code 1 when there are findings (for scripts).
    #[arg(long)]
    fail_on_findings: bool,
    /// No summary or warnings on stderr.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Events per batch.
    #[arg(long, default_value_t = 65_536, value_name = "N")]
    batch_size: usize,
}

#[derive(Args, Debug)]
struct ConvertArgs {
    /// Input capture (Parquet or NDJSON).
    input: PathBuf,
    /// Output file; the format follows its extension (.parquet, .ndjson, .jsonl) unless --to is given.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: PathBuf,
    /// Output format.
    #[arg(long, value_enum)]
    to: Option<CaptureFormatArg>,
    /// Overwrite the output file if it exists.
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
struct DecodeFloorArgs {
    /// Capture files or directories.
    #[arg(required = true)]
    captures: Vec<PathBuf>,
    #[command(flatten)]
    rules: RuleArgs,
}

#[derive(Args, Debug)]
struct SynthArgs {
    /// Output Parquet file.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: PathBuf,
    /// Number of events.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// PRNG seed: the same seed gives the same capture.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Token-read episodes per million events.
    #[arg(long, default_value_t = 5.0)]
    token_reads_per_million: f64,
    /// Compression codec (the writer's default is the one chosen by measurement; see BENCHMARKS.md).
    #[arg(long, value_enum)]
    compression: Option<Codec>,
    /// Overwrite the output file if it exists.
    #[arg(long)]
    force: bool,
}

/// Parquet compression codecs offered for writing.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    Zstd,
    Lz4,
    Snappy,
    None,
}

impl Codec {
    fn parquet(self) -> parquet::basic::Compression {
        use parquet::basic::{Compression, ZstdLevel};
        match self {
            Codec::Zstd => Compression::ZSTD(ZstdLevel::default()),
            Codec::Lz4 => Compression::LZ4_RAW,
            Codec::Snappy => Compression::SNAPPY,
            Codec::None => Compression::UNCOMPRESSED,
        }
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum CaptureFormatArg {
    Parquet,
    Ndjson,
}

#[derive(Args, Debug)]
struct InspectArgs {
    /// Capture files or directories.
    #[arg(required = true)]
    captures: Vec<PathBuf>,
    /// Output format (table or json).
    #[arg(long, short = 'f', value_enum, default_value_t = InspectFormat::Table)]
    format: InspectFormat,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum InspectFormat {
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
enum RulesCommand {
    /// Lint rule files: syntax, unknown fields and functions, and conditions that can never be true
    /// (a field the branch's events never carry). Exit 0 when clean, 1 when anything was reported.
    Check {
        /// Rule files or directories (default: the built-in rules).
        paths: Vec<PathBuf>,
        /// Disable Elasticsearch's 1024-character `ignore_above` limit on keyword fields.
        #[arg(long)]
        no_ignore_above: bool,
    },
    /// List the loaded rules with id, kind, severity and source file.
    List {
        #[command(flatten)]
        rules: RuleArgs,
        /// Output format (table or json).
        #[arg(long, short = 'f', value_enum, default_value_t = InspectFormat::Table)]
        format: InspectFormat,
    },
}

fn main() -> ExitCode {
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
        Command::Replay(a) => replay(a),
        Command::Convert(a) => convert(a),
        Command::Diff(a) => regress::run_diff(a),
        Command::Test(a) => regress::run_test(a),
        Command::Gaps(a) => regress::run_gaps(a),
        Command::Synth(a) => synth(a),
        Command::DecodeFloor(a) => {
            let rules = a.rules.load()?;
            let events = Replayer::new(rules, ReplayOptions::default()).decode_only(&expand_paths(&a.captures)?)?;
            println!("{events}");
            Ok(EXIT_OK)
        }
        Command::Import(c) => import::run_import(c),
        Command::Export(c) => import::run_export(c),
        Command::Inspect(a) => inspect::inspect(&a.captures, a.format == InspectFormat::Json),
        Command::Rules(RulesCommand::Check { paths, no_ignore_above }) => regress::run_check(&paths, no_ignore_above),
        Command::Rules(RulesCommand::List { rules, format }) => {
            let set = rules.load()?;
            output::print_rules(&set, format == InspectFormat::Json)?;
            Ok(EXIT_OK)
        }
    }
}

/// Opens `path` for writing, refusing to replace an existing file unless `force`.
pub fn create_output(path: &Path, force: bool) -> Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!("{}: already exists; pass --force to overwrite it", path.display())
        } else {
            anyhow::anyhow!("{}: cannot create: {e}", path.display())
        }
    })
}

fn replay(a: ReplayArgs) -> Result<u8> {
    let rules = a.rules.load()?;
    let captures = expand_paths(&a.captures)?;
    if a.format == Format::Parquet && a.output.is_none() {
        bail!("--format parquet needs -o FILE");
    }
    if let Some(out) = &a.output {
        for c in &captures {
            if same_file(out, c) {
                bail!("{}: -o would overwrite the capture being read", out.display());
            }
        }
    }
    let options = ReplayOptions {
        batch_size: a.batch_size.max(1),
        strict: a.strict,
        // Of several captures (a directory of segments), a bad one is reported and the
        // others are replayed; a single capture that cannot be read is simply an error.
        skip_unreadable: !a.strict && captures.len() > 1,
        ..Default::default()
    };
    let replayer = Replayer::new(rules, options);
    let out: Box<dyn std::io::Write + Send> = match &a.output {
        Some(p) => Box::new(std::io::BufWriter::new(create_output(p, a.force)?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let label = a.output.clone().unwrap_or_else(|| PathBuf::from("-"));
    let multi = captures.len() > 1;
    let mut sink =
        output::FindingsOutput::new(a.format, out, label.clone(), findings_schema())?.with_progress(!a.quiet);
    let summary = replayer.replay(&captures, &mut sink)?;
    sink.finish(output::summary_json(&summary), "findings", |b| output::render_table(b, &summary, multi))
        .with_context(|| format!("writing findings to {}", label.display()))?;
    if !a.quiet {
        if a.format != Format::Table {
            eprint!("{}", output::summary_text(&summary, replayer.rules()));
        }
        output::warn_unevaluable(&summary);
    }
    // Unreadable captures are errors even with --quiet: the findings miss their events.
    if !summary.unreadable.is_empty() {
        for u in &summary.unreadable {
            eprintln!("tokenscan: error: {} ({} events of it were replayed)", u.message, u.events_read);
        }
        bail!(
            "{} of {} captures could not be read completely; the findings cover the events that could \
             (--strict stops at the first unreadable capture instead)",
            summary.unreadable.len(),
            captures.len()
        );
    }
    Ok(if a.fail_on_findings && summary.findings() > 0 { EXIT_FINDINGS } else { EXIT_OK })
}

/// Where machine or human output goes: `-o FILE` (never replacing a file
/// without `force`, never one of the inputs) or stdout. Returns the writer and its label.
pub fn open_output(
    format: Format,
    output: Option<&Path>,
    force: bool,
    inputs: &[PathBuf],
) -> Result<(Box<dyn std::io::Write + Send>, PathBuf)> {
    if format == Format::Parquet && output.is_none() {
        bail!("--format parquet needs -o FILE");
    }
    let Some(path) = output else {
        return Ok((Box::new(std::io::BufWriter::new(std::io::stdout())), PathBuf::from("-")));
    };
    if let Some(c) = inputs.iter().find(|c| same_file(path, c)) {
        bail!("{}: -o would overwrite the input {}", path.display(), c.display());
    }
    Ok((Box::new(std::io::BufWriter::new(create_output(path, force)?)), path.to_owned()))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

fn convert(a: ConvertArgs) -> Result<u8> {
    let to = match a.to {
        Some(t) => t,
        None => match a.output.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("parquet") => CaptureFormatArg::Parquet,
            Some("ndjson") | Some("jsonl") => CaptureFormatArg::Ndjson,
            _ => bail!(
                "{}: cannot tell the output format from the extension; use .parquet, .ndjson or --to",
                a.output.display()
            ),
        },
    };
    if same_file(&a.input, &a.output) {
        bail!("{}: input and output are the same file", a.output.display());
    }
    let capture = Capture::open(&a.input)?;
    let file = create_output(&a.output, a.force)?;
    let result = write_converted(&capture, file, &a.output, to);
    if result.is_err() {
        // Do not leave a half-written file behind that looks like a capture.
        let _ = std::fs::remove_file(&a.output);
    }
    let rows = result?;
    if std::io::stderr().is_terminal() {
        eprintln!("tokenscan: wrote {rows} events to {}", a.output.display());
    }
    Ok(EXIT_OK)
}

fn synth(a: SynthArgs) -> Result<u8> {
    use tokenscan_core::synth::{Synth, SynthOptions};
    let file = create_output(&a.output, a.force)?;
    let opts = SynthOptions {
        events: a.events,
        seed: a.seed,
        token_reads_per_million: a.token_reads_per_million,
        ..Default::default()
    };
    let mut metadata = std::collections::BTreeMap::new();
    metadata.insert("tokenscan.synth".to_string(), format!("events={} seed={}", a.events, a.seed));
    let mut w = ParquetCaptureWriter::new(
        std::io::BufWriter::new(file),
        &a.output,
        WriterOptions {
            metadata,
            compression: a.compression.map_or(WriterOptions::default().compression, Codec::parquet),
            ..Default::default()
        },
    )?;
    let mut gen = Synth::new(opts);
    while let Some(b) = gen.next_batch(65_536) {
        w.write(&b)?;
    }
    w.close()?;
    Ok(EXIT_OK)
}

fn write_converted(capture: &Capture, file: std::fs::File, out: &Path, to: CaptureFormatArg) -> Result<u64> {
    let read = |write: &mut dyn FnMut(EventBatch) -> tokenscan_core::Result<()>| {
        let keep = |_: &Path, b: EventBatch| Ok(b);
        read_events(&[capture.path()], Projection::all(), &ReplayOptions::default(), keep, &mut |b| write(b))
    };
    let summary = match to {
        CaptureFormatArg::Parquet => {
            let mut options = WriterOptions { metadata: capture.metadata().clone(), ..Default::default() };
            options.metadata.remove(tokenscan_core::capture::VERSION_KEY);
            options.metadata.insert("tokenscan.converted_from".into(), capture.path().display().to_string());
            let mut w = ParquetCaptureWriter::new(std::io::BufWriter::new(file), out, options)?;
            let summary = read(&mut |b| w.write(&b))?;
            w.close()?;
            summary
        }
        CaptureFormatArg::Ndjson => {
            let mut w = NdjsonWriter::new(std::io::BufWriter::new(file), out);
            let summary = read(&mut |b| w.write(&b))?;
            w.finish()?;
            summary
        }
    };
    Ok(summary.events)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(a.format, Format::Ndjson);
        assert!(a.force && a.strict && a.fail_on_findings && a.rules.no_ignore_above);
    }

    #[test]
    fn replay_needs_a_capture_and_a_known_format() {
        assert!(Cli::try_parse_from(["tokenscan", "replay"]).is_err());
        assert!(Cli::try_parse_from(["tokenscan", "replay", "x", "--format", "xml"]).is_err());
    }
}
