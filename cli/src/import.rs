//! `tokenscan import tracee|ecs` and `tokenscan export tracee|ecs`: flags and
//! glue over `tokenscan_core::import`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::{Args, Subcommand, ValueEnum};
use tokenscan_core::capture::{CaptureFormat, NdjsonWriter, ParquetCaptureWriter, WriterOptions, DEFAULT_BATCH_SIZE};
use tokenscan_core::import::export::{export_capture, EcsLayout, ExportOptions, TraceeStyle};
use tokenscan_core::import::{CaptureSink, ContainerInit, ImportFormat, ImportOptions, ImportReport, Importer};

use crate::{create_output, EXIT_OK};

#[derive(Subcommand, Debug)]
pub enum ImportCommand {
    /// Import `tracee --output json` events (security_file_open, open/openat/openat2/creat,
    /// sched_process_exec, execve/execveat) into a capture.
    Tracee(TraceeImportArgs),
    /// Import Elastic ECS documents exported from logs-cloud_defend.file* / logs-cloud_defend.process*
    /// (file open and process exec events) into a capture.
    Ecs(ImportArgs),
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Input files, one JSON object per line, plain or gzip-compressed (`-` for stdin).
    /// Several files form one capture, in the order given.
    #[arg(required = true, value_name = "EVENTS")]
    inputs: Vec<PathBuf>,
    /// Output capture; the format follows its extension (.parquet, .ndjson, .jsonl) unless --to is given.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: PathBuf,
    /// Output format.
    #[arg(long, value_enum)]
    to: Option<OutFormat>,
    /// Overwrite the output file if it exists.
    #[arg(long)]
    force: bool,
    /// Fail (exit 2) on the first line that cannot be mapped to a capture row, instead of counting it.
    #[arg(long)]
    strict: bool,
    /// Rows per batch (memory use is bounded by this, not by the input size).
    #[arg(long, default_value_t = DEFAULT_BATCH_SIZE, value_name = "N")]
    batch_size: usize,
    /// Number of unmapped lines to show on stderr.
    #[arg(long, default_value_t = 5, value_name = "N")]
    show: usize,
    /// No summary on stderr.
    #[arg(long, short = 'q')]
    quiet: bool,
}

#[derive(Args, Debug)]
pub struct TraceeImportArgs {
    #[command(flatten)]
    common: ImportArgs,
    /// Events from a container whose entry point has not run yet (Tracee origin container-init):
    /// keep their container id, or import them as host events.
    #[arg(long, value_enum, default_value_t = ContainerInitArg::Keep)]
    container_init: ContainerInitArg,
    /// Take an exec's tty from sched_process_exec's stdin_path when it is a terminal (/dev/pts/N, /dev/ttyN).
    #[arg(long)]
    tty_from_stdin: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum OutFormat {
    Parquet,
    Ndjson,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum ContainerInitArg {
    Keep,
    Host,
}

#[derive(Subcommand, Debug)]
pub enum ExportCommand {
    /// Write a capture as `tracee --output json` lines (one event per line, in capture order).
    Tracee(TraceeExportArgs),
    /// Write a capture as Elastic ECS documents, one per line (NDJSON), shaped like Defend for Containers events.
    Ecs(EcsExportArgs),
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Capture file (Parquet or NDJSON).
    #[arg(value_name = "CAPTURE")]
    capture: PathBuf,
    /// Output file (default: stdout).
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Overwrite the output file if it exists.
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
pub struct TraceeExportArgs {
    #[command(flatten)]
    common: ExportArgs,
    /// Argument type names: v0.23 (`const char*`, `int`) or v0.24 (`string`, `int32`).
    #[arg(long, value_enum, default_value_t = StyleArg::V024)]
    style: StyleArg,
    /// Write flags as names (`O_RDONLY|O_LARGEFILE`), as `tracee --parse-arguments` does.
    #[arg(long)]
    flag_names: bool,
}

#[derive(Args, Debug)]
pub struct EcsExportArgs {
    #[command(flatten)]
    common: ExportArgs,
    /// Nested objects or dotted keys.
    #[arg(long, value_enum, default_value_t = LayoutArg::Nested)]
    layout: LayoutArg,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum StyleArg {
    #[value(name = "v0.23")]
    V023,
    #[value(name = "v0.24")]
    V024,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum LayoutArg {
    Nested,
    Dotted,
}

pub fn run_import(cmd: ImportCommand) -> Result<u8> {
    match cmd {
        ImportCommand::Tracee(a) => {
            let mut options = options(&a.common);
            options.container_init = match a.container_init {
                ContainerInitArg::Keep => ContainerInit::Keep,
                ContainerInitArg::Host => ContainerInit::Host,
            };
            options.tty_from_stdin = a.tty_from_stdin;
            import(ImportFormat::Tracee, &a.common, options)
        }
        ImportCommand::Ecs(a) => import(ImportFormat::Ecs, &a, options(&a)),
    }
}

fn options(a: &ImportArgs) -> ImportOptions {
    ImportOptions { batch_size: a.batch_size.max(1), strict: a.strict, max_examples: a.show, ..Default::default() }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

fn is_stdin(p: &Path) -> bool {
    p.as_os_str() == "-"
}

fn import(format: ImportFormat, a: &ImportArgs, options: ImportOptions) -> Result<u8> {
    let to = match a.to {
        Some(OutFormat::Parquet) => CaptureFormat::Parquet,
        Some(OutFormat::Ndjson) => CaptureFormat::Ndjson,
        None => match a.output.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("parquet") => CaptureFormat::Parquet,
            Some("ndjson") | Some("jsonl") => CaptureFormat::Ndjson,
            _ => bail!(
                "{}: cannot tell the output format from the extension; use .parquet, .ndjson or --to",
                a.output.display()
            ),
        },
    };
    if a.inputs.iter().filter(|p| is_stdin(p)).count() > 1 {
        bail!("-: standard input can be read only once");
    }
    for input in &a.inputs {
        if !is_stdin(input) {
            // Open errors name the file the same way the core does.
            std::fs::File::open(input).map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
            if same_file(input, &a.output) {
                bail!("{}: -o would overwrite the input {}", a.output.display(), input.display());
            }
        }
    }
    let file = create_output(&a.output, a.force)?;
    let result = write_import(format, a, options, file, to);
    if result.is_err() {
        // Do not leave a half-written file behind that looks like a capture.
        let _ = std::fs::remove_file(&a.output);
    }
    let report = result?;
    if !a.quiet {
        eprint!("{}", summary(format, a, &report));
    }
    Ok(EXIT_OK)
}

fn write_import(
    format: ImportFormat,
    a: &ImportArgs,
    options: ImportOptions,
    file: std::fs::File,
    to: CaptureFormat,
) -> Result<ImportReport> {
    let out = std::io::BufWriter::with_capacity(1 << 20, file);
    let run = |sink: &mut dyn CaptureSink| -> tokenscan_core::Result<ImportReport> {
        let mut imp = Importer::new(format, options.clone(), sink);
        for input in &a.inputs {
            if is_stdin(input) {
                imp.read(input, std::io::stdin().lock())?;
            } else {
                let f = std::fs::File::open(input)
                    .map_err(|e| tokenscan_core::Error::Io { path: input.clone(), error: e })?;
                imp.read(input, f)?;
            }
        }
        imp.finish()
    };
    Ok(match to {
        CaptureFormat::Parquet => {
            let mut metadata = std::collections::BTreeMap::new();
            metadata.insert("tokenscan.imported_from".to_string(), format.as_str().to_string());
            metadata.insert(
                "tokenscan.import_inputs".to_string(),
                a.inputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join("\n"),
            );
            let mut w = ParquetCaptureWriter::new(out, &a.output, WriterOptions { metadata, ..Default::default() })?;
            let report = run(&mut w)?;
            w.close()?;
            report
        }
        CaptureFormat::Ndjson => {
            let mut w = NdjsonWriter::new(out, &a.output);
            let report = run(&mut w)?;
            w.finish()?;
            report
        }
    })
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The stderr summary of an import.
fn summary(format: ImportFormat, a: &ImportArgs, r: &ImportReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let inputs = a.inputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
    let _ = writeln!(
        s,
        "tokenscan: imported {} ({}, {}) from {} of {} {inputs}{} into {}",
        plural(r.events, "event", "events"),
        plural(r.opens, "open", "opens"),
        plural(r.execs, "exec", "execs"),
        plural(r.lines, "line", "lines"),
        format.as_str(),
        if r.gzip { " (gzip)" } else { "" },
        a.output.display()
    );
    if r.unmapped > 0 {
        let reasons: Vec<String> = r.unmapped_by_reason.iter().map(|(k, n)| format!("{n} {k}")).collect();
        let _ = writeln!(
            s,
            "tokenscan: {} could not be mapped to capture rows ({}){}",
            plural(r.unmapped, "line", "lines"),
            reasons.join(", "),
            if r.examples.is_empty() {
                String::new()
            } else if r.examples.len() as u64 == r.unmapped {
                ":".to_string()
            } else {
                format!("; the first {}:", r.examples.len())
            }
        );
        for e in &r.examples {
            let _ = writeln!(s, "  {e}");
        }
    }
    for (note, n) in &r.notes {
        let _ = writeln!(s, "tokenscan: note: {note}: {n}");
    }
    s
}

pub fn run_export(cmd: ExportCommand) -> Result<u8> {
    let (format, a, options) = match cmd {
        ExportCommand::Tracee(t) => (
            ImportFormat::Tracee,
            t.common,
            ExportOptions {
                tracee_style: match t.style {
                    StyleArg::V023 => TraceeStyle::V023,
                    StyleArg::V024 => TraceeStyle::V024,
                },
                tracee_flag_names: t.flag_names,
                ..Default::default()
            },
        ),
        ExportCommand::Ecs(e) => (
            ImportFormat::Ecs,
            e.common,
            ExportOptions {
                ecs_layout: match e.layout {
                    LayoutArg::Nested => EcsLayout::Nested,
                    LayoutArg::Dotted => EcsLayout::Dotted,
                },
                ..Default::default()
            },
        ),
    };
    let output = a.output.filter(|p| p.as_os_str() != "-");
    let Some(path) = output else {
        let out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
        export_capture(format, &a.capture, out, Path::new("-"), &options)?;
        return Ok(EXIT_OK);
    };
    if same_file(&a.capture, &path) {
        bail!("{}: input and output are the same file", path.display());
    }
    // Check the capture before creating the output, so a bad input leaves nothing behind.
    tokenscan_core::capture::Capture::open(&a.capture)?;
    let file = create_output(&path, a.force)?;
    let result = (|| -> Result<u64> {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let n = export_capture(format, &a.capture, &mut out, &path, &options)?;
        out.flush().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(n)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&path);
    }
    let n = result?;
    if std::io::stderr().is_terminal() {
        eprintln!("tokenscan: wrote {} to {}", plural(n, "event", "events"), path.display());
    }
    Ok(EXIT_OK)
}
