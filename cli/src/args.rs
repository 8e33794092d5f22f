//! Options several commands share, declared once and flattened into each
//! command's arguments (`#[command(flatten)]`), and the CLI side of the
//! output-file policy in `tokenscan_core::output_file`.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use tokenscan_core::capture::CaptureFormat;
use tokenscan_core::eql::{CompileOptions, DEFAULT_IGNORE_ABOVE};
use tokenscan_core::output_file::{self, OutputFile};
use tokenscan_core::rules::RuleSet;

/// `--no-ignore-above`: how queries are compiled.
#[derive(Args, Debug, Clone, Default)]
pub struct CompileArgs {
    /// Disable Elasticsearch's 1024-character `ignore_above` limit on keyword fields.
    #[arg(long)]
    pub no_ignore_above: bool,
}

impl CompileArgs {
    /// The compile options these flags ask for.
    pub fn options(&self) -> CompileOptions {
        CompileOptions { ignore_above: if self.no_ignore_above { None } else { Some(DEFAULT_IGNORE_ABOVE) } }
    }

    /// The rules in `paths` (files or directories), or the built-in set when there are none.
    pub fn load(&self, paths: &[PathBuf]) -> Result<RuleSet> {
        let options = self.options();
        Ok(if paths.is_empty() { RuleSet::builtin(&options)? } else { RuleSet::load(paths, &options)? })
    }
}

/// `--rules` and `--no-ignore-above`: which rules to run.
#[derive(Args, Debug, Clone)]
pub struct RuleArgs {
    /// Rule file or directory of rule files (*.toml); repeatable. Replaces the built-in rules.
    #[arg(long = "rules", short = 'r', value_name = "PATH")]
    pub rules: Vec<PathBuf>,
    #[command(flatten)]
    pub compile: CompileArgs,
}

impl RuleArgs {
    /// The rules named, or the built-in set when none are.
    pub fn load(&self) -> Result<RuleSet> {
        self.compile.load(&self.rules)
    }

    /// The rules named that load, and the problems of those that do not
    /// (`RuleSet::load_skipping`); the built-in set when none are named.
    pub fn load_skipping(&self) -> Result<(RuleSet, Vec<tokenscan_core::Error>)> {
        if self.rules.is_empty() {
            return Ok((self.load()?, Vec::new()));
        }
        Ok(RuleSet::load_skipping(&self.rules, &self.compile.options())?)
    }
}

/// Output formats for findings and other reports.
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

/// `-f/--format`.
#[derive(Args, Debug, Clone)]
pub struct FormatArgs {
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Output formats of the descriptive commands (`inspect`, `rules list`).
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    /// Aligned text for people.
    Table,
    /// One pretty-printed JSON document.
    Json,
}

/// `-o/--output` (stdout when absent) and `--force`.
#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Write the output to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Overwrite the -o file if it exists.
    #[arg(long)]
    pub force: bool,
}

/// The two forms of a capture, for `--to`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureFormatArg {
    /// Apache Parquet.
    Parquet,
    /// One JSON event per line.
    Ndjson,
}

/// `-o FILE`, `--to` and `--force` of the commands that write a capture.
#[derive(Args, Debug, Clone)]
pub struct CaptureOutputArgs {
    /// Output capture; the format follows its extension (.parquet, .ndjson, .jsonl) unless --to is given.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: PathBuf,
    /// Output format.
    #[arg(long, value_enum)]
    pub to: Option<CaptureFormatArg>,
    /// Overwrite the output file if it exists.
    #[arg(long)]
    pub force: bool,
}

impl CaptureOutputArgs {
    /// The format to write: `--to`, else the one the extension names.
    pub fn format(&self) -> Result<CaptureFormat> {
        match self.to {
            Some(CaptureFormatArg::Parquet) => Ok(CaptureFormat::Parquet),
            Some(CaptureFormatArg::Ndjson) => Ok(CaptureFormat::Ndjson),
            None => match output_file::capture_format_of(&self.output) {
                Some(f) => Ok(f),
                None => bail!(
                    "{}: cannot tell the output format from the extension; use .parquet, .ndjson or --to",
                    self.output.display()
                ),
            },
        }
    }
}

/// Creates `path` under the output-file policy, with the CLI's wording when it exists.
pub fn create_output(path: &Path, force: bool) -> Result<(OutputFile, File)> {
    OutputFile::create(path, force).map_err(|e| match e {
        tokenscan_core::Error::Io { error, .. } if error.kind() == std::io::ErrorKind::AlreadyExists => {
            anyhow::anyhow!("{}: already exists; pass --force to overwrite it", path.display())
        }
        tokenscan_core::Error::Io { error, .. } => anyhow::anyhow!("{}: cannot create: {error}", path.display()),
        e => e.into(),
    })
}

/// Runs `write` on a new file at `path` under the output-file policy: the file
/// is removed again if `write` fails.
pub fn write_new<T>(path: &Path, force: bool, write: impl FnOnce(File) -> Result<T>) -> Result<T> {
    let (guard, file) = create_output(path, force)?;
    let value = write(file)?;
    guard.keep()?;
    Ok(value)
}

/// Where a report goes: stdout, or `-o FILE` (never replacing a file without
/// `--force`, never one of `inputs`). Returns the writer, its name for
/// messages (`-` for stdout) and the guard that removes the file unless the
/// command keeps it.
pub fn open_destination<P: AsRef<Path>>(
    format: Format,
    args: &OutputArgs,
    inputs: &[P],
) -> Result<(Box<dyn Write + Send>, PathBuf, Keep)> {
    if format == Format::Parquet && args.output.is_none() {
        bail!("--format parquet needs -o FILE");
    }
    let Some(path) = &args.output else {
        return Ok((Box::new(std::io::BufWriter::new(std::io::stdout())), PathBuf::from("-"), Keep(None)));
    };
    output_file::refuse_inputs(path, inputs, "input")?;
    let (guard, file) = create_output(path, args.force)?;
    Ok((Box::new(std::io::BufWriter::new(file)), path.clone(), Keep(Some(guard))))
}

/// Removes an output file when dropped, unless [`Keep::keep`] was called (nothing to do for stdout).
pub struct Keep(Option<OutputFile>);

impl Keep {
    /// The output is complete: keep the file (moving it over the file it
    /// replaces, with `--force`). Fails only if that last rename fails.
    pub fn keep(self) -> Result<()> {
        match self.0 {
            Some(g) => Ok(g.keep()?),
            None => Ok(()),
        }
    }
}
