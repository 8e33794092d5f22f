//! `import_tracee`, `import_ecs`, `import_k8s_audit`, `export_tracee`,
//! `export_ecs`: events
//! recorded by other tools become captures, and captures go back out. Each
//! is one call into `tokenscan_core::import` with the GIL released, under the
//! output-file policy the CLI applies too (`tokenscan_core::output_file`:
//! never replace an existing file unless `force=True`, never write over the
//! input, never leave a half-written output behind).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use tokenscan_core::capture::{Capture, CaptureFormat};
use tokenscan_core::import::export::{export_capture, EcsLayout, ExportOptions, TraceeStyle};
use tokenscan_core::import::{import_files, ContainerInit, ImportFormat, ImportOptions, ImportReport};
use tokenscan_core::output_file::{self, capture_format_named, capture_format_of, refuse_inputs};
use tokenscan_core::Error;

use crate::args::Paths;
use crate::detach;
use crate::errors::{value_error, Failure};

/// The capture format to write: `format` when given, else from the extension.
fn capture_format(output: &Path, format: Option<&str>) -> PyResult<CaptureFormat> {
    match format {
        Some(f) => capture_format_named(f)
            .ok_or_else(|| value_error(format!("format must be \"parquet\" or \"ndjson\", not {f:?}"))),
        None => capture_format_of(output).ok_or_else(|| {
            value_error(format!(
                "{}: cannot tell the capture format from the extension; use .parquet, .ndjson or format=",
                output.display()
            ))
        }),
    }
}

/// Runs `write` into a freshly created `output`; removes the file if it fails.
fn write_output<T>(
    output: &Path,
    force: bool,
    write: impl FnOnce(BufWriter<File>) -> Result<T, Failure>,
) -> Result<T, Failure> {
    output_file::write_new(output, force, |file| write(BufWriter::with_capacity(1 << 20, file)))
}

/// Everything an import needs, converted from Python while holding the GIL.
struct ImportJob {
    format: ImportFormat,
    inputs: Vec<PathBuf>,
    output: PathBuf,
    to: CaptureFormat,
    force: bool,
    options: ImportOptions,
}

impl ImportJob {
    /// Checks the inputs, then imports them into the output (GIL released by the caller).
    fn run(self) -> Result<ImportReport, Failure> {
        for input in &self.inputs {
            // A missing or unreadable input fails before the output is created.
            File::open(input).map_err(|e| Failure::Core(Error::Io { path: input.clone(), error: e }))?;
            refuse_inputs(&self.output, &[input], "input")?;
        }
        write_output(&self.output, self.force, |out| {
            Ok(import_files(self.format, &self.inputs, out, &self.output, self.to, &self.options)?)
        })
    }
}

/// The report as a dict (`tokenscan.ImportReport`).
fn report_dict<'py>(
    py: Python<'py>,
    format: ImportFormat,
    inputs: &[PathBuf],
    output: &Path,
    r: &ImportReport,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("format", format.as_str())?;
    d.set_item("inputs", inputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>())?;
    d.set_item("output", output.display().to_string())?;
    d.set_item("lines", r.lines)?;
    d.set_item("bytes", r.bytes)?;
    d.set_item("gzip", r.gzip)?;
    d.set_item("events", r.events)?;
    d.set_item("opens", r.opens)?;
    d.set_item("execs", r.execs)?;
    d.set_item("audits", r.audits)?;
    d.set_item("unmapped", r.unmapped)?;
    let by_reason = PyDict::new(py);
    for (reason, n) in &r.unmapped_by_reason {
        by_reason.set_item(reason, n)?;
    }
    d.set_item("unmapped_by_reason", by_reason)?;
    let examples = PyList::empty(py);
    for u in &r.examples {
        let e = PyDict::new(py);
        e.set_item("input", u.input.display().to_string())?;
        e.set_item("line", u.line)?;
        e.set_item("reason", &u.reason)?;
        examples.append(e)?;
    }
    d.set_item("unmapped_examples", examples)?;
    let notes = PyDict::new(py);
    for (note, n) in &r.notes {
        notes.set_item(note, n)?;
    }
    d.set_item("notes", notes)?;
    Ok(d)
}

#[allow(clippy::too_many_arguments)]
fn import<'py>(
    py: Python<'py>,
    format: ImportFormat,
    events: Paths,
    output: PathBuf,
    capture_format_name: Option<String>,
    strict: bool,
    force: bool,
    max_examples: usize,
    batch_size: usize,
    container_init: ContainerInit,
    tty_from_stdin: bool,
) -> PyResult<Bound<'py, PyDict>> {
    if events.0.is_empty() {
        return Err(value_error("no input files given"));
    }
    let to = capture_format(&output, capture_format_name.as_deref())?;
    let options = ImportOptions {
        batch_size: batch_size.max(1),
        strict,
        max_examples,
        container_init,
        tty_from_stdin,
        ..Default::default()
    };
    let job = ImportJob { format, inputs: events.0.clone(), output: output.clone(), to, force, options };
    let report = detach(py, move || job.run())?;
    report_dict(py, format, &events.0, &output, &report)
}

/// Imports `tracee --output json` events into a capture, as `tokenscan import
/// tracee` does, and returns what was read (a `tokenscan.ImportReport` dict).
///
/// `events` is a file (plain or gzip-compressed, detected by its content) or a
/// list of files, which form one capture in the order given; Tracee v0.23 and
/// v0.24 argument type names both load. `security_file_open` and the
/// open-family syscalls become `open` rows, `sched_process_exec` and
/// `execve`/`execveat` become `exec` rows. `output` is the capture to write;
/// its format follows the extension (`.parquet`, `.ndjson`, `.jsonl`) unless
/// `format` is `"parquet"` or `"ndjson"`. An existing `output` raises
/// `FileExistsError` unless `force=True`.
///
/// Lines that do not become rows (other events, broken JSON, unknown flag
/// names) are counted in `unmapped`, by reason in `unmapped_by_reason`, and the
/// first `max_examples` are in `unmapped_examples` with their line numbers;
/// with `strict=True` the first one raises `CaptureError` instead (and no
/// output is left behind). `container_init` says what to do with events of a
/// container whose entry point has not run yet: `"keep"` their container id
/// (TRC-108 then sees them as origin container) or import them as `"host"`
/// events. `tty_from_stdin=True` takes an exec's `tty` from
/// `sched_process_exec`'s `stdin_path` when it is a terminal. The work runs
/// without the GIL.
#[pyfunction]
#[pyo3(signature = (
    events, output, *, format=None, strict=false, force=false, container_init="keep",
    tty_from_stdin=false, max_examples=5, batch_size=65_536
))]
#[allow(clippy::too_many_arguments)]
pub fn import_tracee<'py>(
    py: Python<'py>,
    events: Paths,
    output: PathBuf,
    format: Option<String>,
    strict: bool,
    force: bool,
    container_init: &str,
    tty_from_stdin: bool,
    max_examples: usize,
    batch_size: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let container_init = match container_init {
        "keep" => ContainerInit::Keep,
        "host" => ContainerInit::Host,
        other => return Err(value_error(format!("container_init must be \"keep\" or \"host\", not {other:?}"))),
    };
    import(
        py,
        ImportFormat::Tracee,
        events,
        output,
        format,
        strict,
        force,
        max_examples,
        batch_size,
        container_init,
        tty_from_stdin,
    )
}

/// Imports Elastic ECS documents (one per line, as exported from Defend for
/// Containers' `logs-cloud_defend.file*` / `logs-cloud_defend.process*`) into
/// a capture, as `tokenscan import ecs` does, and returns what was read (a
/// `tokenscan.ImportReport` dict).
///
/// Documents may be nested, dotted or mixed, bare or wrapped in a search hit's
/// `_source`. File `open` and process `exec` events become rows; an
/// interactive process whose terminal is unknown gets the placeholder tty
/// `"?"`, so the ECS view still says `process.interactive == true`. `events`,
/// `output`, `format`, `strict`, `force` and `max_examples` work as in
/// `import_tracee`. The work runs without the GIL.
#[pyfunction]
#[pyo3(signature = (events, output, *, format=None, strict=false, force=false, max_examples=5, batch_size=65_536))]
#[allow(clippy::too_many_arguments)]
pub fn import_ecs<'py>(
    py: Python<'py>,
    events: Paths,
    output: PathBuf,
    format: Option<String>,
    strict: bool,
    force: bool,
    max_examples: usize,
    batch_size: usize,
) -> PyResult<Bound<'py, PyDict>> {
    import(
        py,
        ImportFormat::Ecs,
        events,
        output,
        format,
        strict,
        force,
        max_examples,
        batch_size,
        ContainerInit::Keep,
        false,
    )
}

/// Imports a Kubernetes API server audit log (`audit.k8s.io/v1` `Event`
/// objects, one per line, as kube-apiserver writes them with
/// `--audit-log-path`) into a capture of `k8s_audit` rows, as `tokenscan
/// import k8s-audit` does, and returns what was read (a
/// `tokenscan.ImportReport` dict; `audits` counts the rows).
///
/// Each event keeps its request's stage; `time` is the stage's
/// `stageTimestamp`. Rules see the rows through the `kubernetes.audit.*`
/// fields of Elastic's Kubernetes audit integration, with
/// `data_stream.dataset == "kubernetes.audit_logs"`, so a sequence can join a
/// node recording and the audit log by pod name. `events`, `output`,
/// `format`, `strict`, `force` and `max_examples` work as in `import_tracee`.
/// The work runs without the GIL.
#[pyfunction]
#[pyo3(signature = (events, output, *, format=None, strict=false, force=false, max_examples=5, batch_size=65_536))]
#[allow(clippy::too_many_arguments)]
pub fn import_k8s_audit<'py>(
    py: Python<'py>,
    events: Paths,
    output: PathBuf,
    format: Option<String>,
    strict: bool,
    force: bool,
    max_examples: usize,
    batch_size: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let keep = ContainerInit::Keep; // no containers in an audit log
    import(py, ImportFormat::K8sAudit, events, output, format, strict, force, max_examples, batch_size, keep, false)
}

/// Exports one capture file to `output`, with the I/O policy of the imports.
fn export(
    py: Python<'_>,
    format: ImportFormat,
    capture: PathBuf,
    output: PathBuf,
    force: bool,
    options: ExportOptions,
) -> PyResult<u64> {
    detach(py, move || {
        refuse_inputs(&output, &[&capture], "capture")?;
        // Check the capture before creating the output, so a bad input leaves nothing behind.
        Capture::open(&capture)?;
        write_output(&output, force, |mut out| {
            let n = export_capture(format, &capture, &mut out, &output, &options)?.events;
            out.flush().map_err(|e| Error::Output { path: output.clone(), message: e.to_string() })?;
            Ok(n)
        })
    })
}

/// Writes a capture as `tracee --output json` lines, one event per line in
/// capture order (so event indexes survive a round trip through
/// `import_tracee`), as `tokenscan export tracee` does; returns the number of
/// events written.
///
/// `style` picks the argument type names (`"v0.24"`: `string`, `int32`;
/// `"v0.23"`: `const char*`, `int`); `flag_names=True` writes flags as names
/// (`O_RDONLY|O_LARGEFILE`), as `tracee --parse-arguments` does. Tracee events
/// carry no terminal and no group id: those columns do not survive. An
/// existing `output` raises `FileExistsError` unless `force=True`.
#[pyfunction]
#[pyo3(signature = (capture, output, *, style="v0.24", flag_names=false, force=false))]
pub fn export_tracee(
    py: Python<'_>,
    capture: PathBuf,
    output: PathBuf,
    style: &str,
    flag_names: bool,
    force: bool,
) -> PyResult<u64> {
    let tracee_style = match style {
        "v0.24" => TraceeStyle::V024,
        "v0.23" => TraceeStyle::V023,
        other => return Err(value_error(format!("style must be \"v0.24\" or \"v0.23\", not {other:?}"))),
    };
    let options = ExportOptions { tracee_style, tracee_flag_names: flag_names, ..Default::default() };
    export(py, ImportFormat::Tracee, capture, output, force, options)
}

/// Writes a capture as Elastic ECS documents shaped like Defend for
/// Containers events, one per line in capture order, as `tokenscan export ecs`
/// does; returns the number of events written.
///
/// `layout` is `"nested"` (objects) or `"dotted"` (flat dotted keys). ECS has
/// no requested path, cgroup id or errno, and keeps only the write intent of
/// open flags. An existing `output` raises `FileExistsError` unless `force=True`.
#[pyfunction]
#[pyo3(signature = (capture, output, *, layout="nested", force=false))]
pub fn export_ecs(py: Python<'_>, capture: PathBuf, output: PathBuf, layout: &str, force: bool) -> PyResult<u64> {
    let ecs_layout = match layout {
        "nested" => EcsLayout::Nested,
        "dotted" => EcsLayout::Dotted,
        other => return Err(value_error(format!("layout must be \"nested\" or \"dotted\", not {other:?}"))),
    };
    export(py, ImportFormat::Ecs, capture, output, force, ExportOptions { ecs_layout, ..Default::default() })
}
