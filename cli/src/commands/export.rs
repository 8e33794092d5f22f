//! `tokenscan export tracee|ecs`: a capture as Tracee JSON lines or Elastic ECS documents.

use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use tokenscan_core::capture::Capture;
use tokenscan_core::import::export::{export_capture, EcsLayout, ExportOptions, TraceeStyle};
use tokenscan_core::import::ImportFormat;
use tokenscan_core::output_file::refuse_inputs;

use crate::args::write_new;
use crate::render::messages;
use crate::EXIT_OK;

/// `tokenscan export`.
#[derive(Subcommand, Debug)]
pub enum ExportCommand {
    /// Write a capture as `tracee --output json` lines (one event per line, in capture order).
    Tracee(TraceeExportArgs),
    /// Write a capture as Elastic ECS documents, one per line (NDJSON), shaped like Defend for Containers events.
    Ecs(EcsExportArgs),
}

/// The flags of every exporter.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Capture file (Parquet or NDJSON).
    #[arg(value_name = "CAPTURE")]
    pub capture: PathBuf,
    /// Output file (default: stdout).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Overwrite the output file if it exists.
    #[arg(long)]
    pub force: bool,
}

/// `tokenscan export tracee`.
#[derive(Args, Debug)]
pub struct TraceeExportArgs {
    #[command(flatten)]
    pub common: ExportArgs,
    /// Argument type names: v0.23 (`const char*`, `int`) or v0.24 (`string`, `int32`).
    #[arg(long, value_enum, default_value_t = StyleArg::V024)]
    pub style: StyleArg,
    /// Write flags as names (`O_RDONLY|O_LARGEFILE`), as `tracee --parse-arguments` does.
    #[arg(long)]
    pub flag_names: bool,
}

/// `tokenscan export ecs`.
#[derive(Args, Debug)]
pub struct EcsExportArgs {
    #[command(flatten)]
    pub common: ExportArgs,
    /// Nested objects or dotted keys.
    #[arg(long, value_enum, default_value_t = LayoutArg::Nested)]
    pub layout: LayoutArg,
}

/// Tracee versions whose argument type names can be written.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum StyleArg {
    /// `const char*`, `int`.
    #[value(name = "v0.23")]
    V023,
    /// `string`, `int32`.
    #[value(name = "v0.24")]
    V024,
}

/// ECS document layouts.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutArg {
    /// Nested objects.
    Nested,
    /// Dotted keys.
    Dotted,
}

/// Runs `tokenscan export ...`.
pub fn run(cmd: ExportCommand) -> Result<u8> {
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
        let out = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
        let counts = export_capture(format, &a.capture, out, Path::new("-"), &options)?;
        note_skipped(counts.skipped);
        return Ok(EXIT_OK);
    };
    refuse_inputs(&path, &[&a.capture], "capture")?;
    // Check the capture before creating the output, so a bad input leaves nothing behind.
    Capture::open(&a.capture)?;
    let counts = write_new(&path, a.force, |file| {
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let counts = export_capture(format, &a.capture, &mut out, &path, &options)?;
        out.flush().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(counts)
    })?;
    if std::io::stderr().is_terminal() {
        eprint!("{}", messages::wrote(counts.events, &path));
    }
    note_skipped(counts.skipped);
    Ok(EXIT_OK)
}

/// Says on stderr how many rows the export formats cannot carry were left out.
fn note_skipped(skipped: u64) {
    if skipped > 0 {
        eprintln!(
            "tokenscan: note: skipped {skipped} fork, exit, process and container rows (capture format v2); \
             the export carries opens and execs only"
        );
    }
}
