//! `tokenscan import tracee|ecs|k8s-audit`: events recorded by another tool become a capture.

use std::io::BufWriter;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::{Args, Subcommand, ValueEnum};
use tokenscan_core::capture::{CaptureFormat, NdjsonWriter, ParquetCaptureWriter, WriterOptions};
use tokenscan_core::import::{CaptureSink, ContainerInit, ImportFormat, ImportOptions, ImportReport, Importer};
use tokenscan_core::output_file::refuse_inputs;

use crate::args::{write_new, CaptureOutputArgs};
use crate::render::messages;
use crate::EXIT_OK;

/// `tokenscan import`.
#[derive(Subcommand, Debug)]
pub enum ImportCommand {
    /// Import `tracee --output json` events (security_file_open, open/openat/openat2/creat,
    /// sched_process_exec, execve/execveat) into a capture.
    Tracee(TraceeImportArgs),
    /// Import Elastic ECS documents exported from logs-cloud_defend.file* / logs-cloud_defend.process*
    /// (file open and process exec events) into a capture.
    Ecs(ImportArgs),
    /// Import a Kubernetes API server audit log (JSON lines of audit.k8s.io/v1 Event, as
    /// kube-apiserver writes them with --audit-log-path) into a capture of k8s_audit events.
    #[command(name = "k8s-audit")]
    K8sAudit(ImportArgs),
}

/// The flags of every importer.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Input files, one JSON object per line, plain or gzip-compressed (`-` for stdin).
    /// Several files form one capture, in the order given.
    #[arg(required = true, value_name = "EVENTS")]
    pub inputs: Vec<PathBuf>,
    #[command(flatten)]
    pub output: CaptureOutputArgs,
    /// Fail (exit 2) on the first line that cannot be mapped to a capture row, instead of counting it.
    #[arg(long)]
    pub strict: bool,
    /// Rows per batch (memory use is bounded by this, not by the input size).
    #[arg(long, default_value_t = tokenscan_core::capture::DEFAULT_BATCH_SIZE, value_name = "N")]
    pub batch_size: usize,
    /// Number of unmapped lines to show on stderr.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub show: usize,
    /// No summary on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// `tokenscan import tracee`.
#[derive(Args, Debug)]
pub struct TraceeImportArgs {
    #[command(flatten)]
    pub common: ImportArgs,
    /// Events from a container whose entry point has not run yet (Tracee origin container-init):
    /// keep their container id, or import them as host events.
    #[arg(long, value_enum, default_value_t = ContainerInitArg::Keep)]
    pub container_init: ContainerInitArg,
    /// Take an exec's tty from sched_process_exec's stdin_path when it is a terminal (/dev/pts/N, /dev/ttyN).
    #[arg(long)]
    pub tty_from_stdin: bool,
}

/// What to do with Tracee's container-init events.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerInitArg {
    /// Keep their container id.
    Keep,
    /// Import them as host events.
    Host,
}

/// Runs `tokenscan import ...`.
pub fn run(cmd: ImportCommand) -> Result<u8> {
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
        ImportCommand::K8sAudit(a) => import(ImportFormat::K8sAudit, &a, options(&a)),
    }
}

fn options(a: &ImportArgs) -> ImportOptions {
    ImportOptions { batch_size: a.batch_size.max(1), strict: a.strict, max_examples: a.show, ..Default::default() }
}

fn is_stdin(p: &Path) -> bool {
    p.as_os_str() == "-"
}

fn import(format: ImportFormat, a: &ImportArgs, options: ImportOptions) -> Result<u8> {
    let to = a.output.format()?;
    let output = &a.output.output;
    if a.inputs.iter().filter(|p| is_stdin(p)).count() > 1 {
        bail!("-: standard input can be read only once");
    }
    for input in a.inputs.iter().filter(|p| !is_stdin(p)) {
        // Open errors name the file the same way the core does.
        std::fs::File::open(input).map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
        refuse_inputs(output, &[input], "input")?;
    }
    let report = write_new(output, a.output.force, |file| write_import(format, a, options, file, to))?;
    if !a.quiet {
        eprint!("{}", messages::import(format, &a.inputs, output, &report));
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
    let output = &a.output.output;
    let out = BufWriter::with_capacity(1 << 20, file);
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
            let mut w = ParquetCaptureWriter::new(out, output, WriterOptions { metadata, ..Default::default() })?;
            let report = run(&mut w)?;
            w.close()?;
            report
        }
        CaptureFormat::Ndjson => {
            let mut w = NdjsonWriter::new(out, output);
            let report = run(&mut w)?;
            w.finish()?;
            report
        }
    })
}
