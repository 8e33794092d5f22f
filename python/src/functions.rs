//! The module-level functions: `replay`, `read_capture`, `ecs_view`,
//! `tracee_view`, `hunt`, `process_tree`, `report`. Each converts its arguments, then makes one call
//! into [`crate::ops`] with the GIL released.

use std::path::PathBuf;

use pyo3::prelude::*;
use tokenscan_core::eql::{CompileOptions, DEFAULT_IGNORE_ABOVE};
use tokenscan_core::replay::ReplayOptions;

use crate::args::Paths;
use crate::errors::value_error;
use crate::findings::Findings;
use crate::ops::{self, View};
use crate::rules::RulesArg;
use crate::{detach, table};

/// Replays captures through detection rules, as `tokenscan replay` does, and
/// returns the findings.
///
/// `captures` is a capture file (Parquet or NDJSON), a directory of them
/// (replayed in name order) or a list of either. `rules` is a `Rules`, a rule
/// file or directory, or a list of them; `None` means the built-in rules.
/// `strict=True` raises `UnevaluableError` at the first event a rule cannot
/// evaluate instead of counting it in the summary. The work runs without the GIL.
#[pyfunction]
#[pyo3(signature = (captures, rules=None, *, strict=false, batch_size=65_536))]
pub fn replay(
    py: Python<'_>,
    captures: Paths,
    rules: Option<RulesArg>,
    strict: bool,
    batch_size: usize,
) -> PyResult<Findings> {
    let options = ReplayOptions { strict, batch_size: batch_size.max(1), ..Default::default() };
    detach(py, move || ops::replay(&captures.0, RulesArg::resolve(rules)?, options)).map(Findings::new)
}

/// A capture's raw events as a `pyarrow.Table` (handed over without copying),
/// with the capture format's column types; the file's metadata is on the schema.
///
/// `columns` picks columns (in that order); `None` reads them all.
#[pyfunction]
#[pyo3(signature = (path, columns=None))]
pub fn read_capture<'py>(py: Python<'py>, path: PathBuf, columns: Option<Vec<String>>) -> PyResult<Bound<'py, PyAny>> {
    let columns = columns.map(|c| ops::columns_by_name(&c)).transpose().map_err(value_error)?;
    table(py, detach(py, move || ops::read_capture(&path, columns))?)
}

/// The events as the EQL rules see them: one row per event that enters the
/// Elastic view (every exec, successful opens, and in a version 2 capture the
/// forks and ends of processes), with the ECS fields (`process.name`,
/// `process.args`, `file.path`, `event.type`, `process.parent.name`...) as
/// columns, after `capture` and `event_index`. Parent, leader and pod fields
/// come from the processes rebuilt from the capture.
#[pyfunction]
pub fn ecs_view<'py>(py: Python<'py>, captures: Paths) -> PyResult<Bound<'py, PyAny>> {
    table(py, detach(py, move || ops::view(&captures.0, View::Ecs))?)
}

/// The events as Tracee signatures see them: `security_file_open` and
/// `sched_process_exec` events with Tracee's field names (`processName`,
/// `args.pathname`, `args.flags`...), after `capture` and `event_index`.
#[pyfunction]
pub fn tracee_view<'py>(py: Python<'py>, captures: Paths) -> PyResult<Bound<'py, PyAny>> {
    table(py, detach(py, move || ops::view(&captures.0, View::Tracee))?)
}

/// Runs an ad-hoc EQL query (for example `process where process.name == "curl"`)
/// over captures with the rules' EQL engine, and returns the matching events:
/// `capture`, `event_index` and every capture column. A bad query raises
/// `RuleError` with `file` `"<query>"` and the line and column.
#[pyfunction]
#[pyo3(
    signature = (captures, query, *, ignore_above=Some(DEFAULT_IGNORE_ABOVE)),
    text_signature = "(captures, query, *, ignore_above=1024)"
)]
pub fn hunt<'py>(
    py: Python<'py>,
    captures: Paths,
    query: String,
    ignore_above: Option<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    table(
        py,
        detach(py, move || ops::hunt(&captures.0, &ops::compile_query(&query, &CompileOptions { ignore_above })?))?,
    )
}

/// The process tree of a pod, a container or a session, as `tokenscan tree`
/// prints it: a `pyarrow.Table` with one row per process, depth first
/// (`capture`, `entity_id`, `pid`, `parent_entity_id`, `depth`, `name`,
/// `executable`, `args`, `tty`, `container_id`, `pod_name`, `pod_namespace`,
/// `image`, `start`, `end`), and the findings of `rules` (default: the
/// built-in ones) on each process as lists: `rule_ids`, `reasons`,
/// `event_indexes`.
///
/// `pod` keeps the processes of the pod with that name (captures of format
/// version 2), `container` those of a container (full id or a prefix of at
/// least 12 characters), `pid` those of that pid's session (without session
/// ids: the pid and its descendants). With none of them: the processes with
/// findings and their ancestors.
#[pyfunction]
#[pyo3(signature = (captures, rules=None, *, pod=None, container=None, pid=None))]
pub fn process_tree<'py>(
    py: Python<'py>,
    captures: Paths,
    rules: Option<RulesArg>,
    pod: Option<String>,
    container: Option<String>,
    pid: Option<u32>,
) -> PyResult<Bound<'py, PyAny>> {
    let filter = tokenscan_core::process::TreeFilter { pod, container, pid };
    table(py, detach(py, move || ops::process_tree(&captures.0, RulesArg::resolve(rules)?, filter))?)
}

/// Writes the triage report of `captures` to `path`, as `tokenscan report`:
/// one self-contained HTML file (summary, findings per rule with each rule's
/// version and the SHA-256 of its text, findings per pod, timeline, the
/// process tree of each pod container and session with findings, blind
/// spots) that opens offline in any browser; the same bytes as the CLI's, at
/// most 9 MiB for one capture and the built-in rules.
///
/// `rules` as for `replay`. An existing `path` is replaced only with
/// `force=True`, and `path` is never one of the captures. Of several
/// captures, one that cannot be read completely is named in the report's
/// summary and the others are reported. The work runs without the GIL.
#[pyfunction]
#[pyo3(signature = (captures, path, rules=None, *, force=false))]
pub fn report(py: Python<'_>, captures: Paths, path: PathBuf, rules: Option<RulesArg>, force: bool) -> PyResult<()> {
    use std::io::Write as _;
    use tokenscan_core::{capture::expand_paths, output_file, report};
    detach(py, move || {
        let rules = RulesArg::resolve(rules)?;
        let captures = expand_paths(&captures.0)?;
        output_file::refuse_inputs(&path, &captures, "input")?;
        let options = ReplayOptions { skip_unreadable: captures.len() > 1, ..Default::default() };
        let (_, data) = report::report_data(&rules, &captures, &options)?;
        let html = report::render_html(&data);
        output_file::write_new(&path, force, |mut f| {
            f.write_all(html.as_bytes()).map_err(|error| tokenscan_core::Error::Io { path: path.clone(), error }.into())
        })
    })
}
