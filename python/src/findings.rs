//! `tokenscan.Findings`: the result of a replay, as Arrow.

use chrono::DateTime;
use pyo3::exceptions::PyImportError;
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyDict, PyList};
use pyo3::IntoPyObjectExt;
use tokenscan_core::findings::findings_schema;
use tokenscan_core::replay::ReplaySummary;

use crate::arrow_io::{num_rows, stream_capsule, to_pyarrow};
use crate::html;
use crate::ops::FindingsData;

/// Findings of a replay (or of `Rules.evaluate`): one row per (event, rule)
/// that fired, in capture order, with the rule, the capture, the event's
/// index and fields, and the reason it fired.
///
/// A `Findings` is an Arrow stream (`__arrow_c_stream__`): `pyarrow.table(f)`,
/// `polars.DataFrame(f)` and DuckDB read it without copying. `len(f)` is the
/// number of findings; iterating yields one dict per finding (handy for small
/// results); `summary()` says what was read and found; in a notebook it shows
/// as a table.
#[pyclass(module = "tokenscan", frozen)]
pub struct Findings {
    data: FindingsData,
}

impl Findings {
    /// Wraps what a replay produced.
    pub(crate) fn new(data: FindingsData) -> Self {
        Findings { data }
    }
}

/// Imports an optional dependency, or says which extra installs it.
fn require<'py>(py: Python<'py>, module: &str) -> PyResult<Bound<'py, PyModule>> {
    py.import(module).map_err(|e| {
        PyImportError::new_err(format!(
            "this needs {module}, which is not installed: pip install 'tokenscan[{module}]' ({e})"
        ))
    })
}

#[pymethods]
impl Findings {
    /// Exports the findings through the Arrow PyCapsule stream interface (no copy).
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyCapsule>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        stream_capsule(py, &self.data.batches, &findings_schema(), requested_schema)
    }

    /// The findings as a `pyarrow.Table` (zero-copy).
    fn to_arrow<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_pyarrow(py, self.data.batches.clone(), findings_schema())
    }

    /// The findings as a `pandas.DataFrame` (needs pandas: `pip install 'tokenscan[pandas]'`).
    fn to_pandas<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        require(py, "pandas")?;
        self.to_arrow(py)?.call_method0("to_pandas")
    }

    /// The findings as a `polars.DataFrame` (needs polars: `pip install 'tokenscan[polars]'`).
    fn to_polars<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        require(py, "polars")?.getattr("from_arrow")?.call1((self.to_arrow(py)?,))
    }

    /// Number of findings.
    fn __len__(&self) -> usize {
        num_rows(&self.data.batches)
    }

    /// One dict per finding, column name to value (builds Python objects: for small results).
    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.to_arrow(py)?.call_method0("to_pylist")?.try_iter()?.into_any())
    }

    /// What the replay read and found, as in `tokenscan replay --format json`'s
    /// `summary` (times as timezone-aware datetimes).
    fn summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        summary_dict(py, &self.data.summary)
    }

    fn __repr__(&self) -> String {
        let s = &self.data.summary;
        let per_rule: Vec<String> = s.rules.iter().map(|r| format!("{}: {}", r.rule_id, r.findings)).collect();
        format!(
            "<tokenscan.Findings: {} findings in {} events from {} capture{} ({})>",
            s.findings(),
            s.events,
            s.captures.len(),
            if s.captures.len() == 1 { "" } else { "s" },
            per_rule.join(", ")
        )
    }

    /// The findings as HTML, for notebooks: summary, per-rule counts, first rows.
    fn _repr_html_(&self) -> String {
        html::render(&self.data.batches, &self.data.summary)
    }
}

/// A time in nanoseconds since the epoch as a timezone-aware (UTC) datetime (microseconds).
fn datetime(py: Python<'_>, ns: i64) -> PyResult<Bound<'_, PyAny>> {
    DateTime::from_timestamp_nanos(ns).into_bound_py_any(py)
}

/// The summary as the CLI's JSON summary: same keys, same nesting.
pub(crate) fn summary_dict<'py>(py: Python<'py>, s: &ReplaySummary) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("events", s.events)?;
    let captures = PyList::empty(py);
    for (path, events) in &s.captures {
        let c = PyDict::new(py);
        c.set_item("path", path.display().to_string())?;
        c.set_item("events", events)?;
        captures.append(c)?;
    }
    d.set_item("captures", captures)?;
    match s.time_range {
        Some((lo, hi)) => {
            let t = PyDict::new(py);
            t.set_item("first", datetime(py, lo)?)?;
            t.set_item("last", datetime(py, hi)?)?;
            d.set_item("time_range", t)?;
        }
        None => d.set_item("time_range", py.None())?,
    }
    d.set_item("findings", s.findings())?;
    let rules = PyList::empty(py);
    for r in &s.rules {
        let rd = PyDict::new(py);
        rd.set_item("rule_id", &r.rule_id)?;
        rd.set_item("rule_name", &r.rule_name)?;
        rd.set_item("severity", &r.severity)?;
        rd.set_item("findings", r.findings)?;
        rd.set_item("unevaluable", r.unevaluable)?;
        let examples = PyList::empty(py);
        for e in &r.examples {
            let ed = PyDict::new(py);
            ed.set_item("capture", e.capture.display().to_string())?;
            ed.set_item("event_index", e.event_index)?;
            ed.set_item("message", &e.message)?;
            examples.append(ed)?;
        }
        rd.set_item("unevaluable_examples", examples)?;
        rules.append(rd)?;
    }
    d.set_item("rules", rules)?;
    d.set_item("containers", s.containers.iter().collect::<Vec<_>>())?;
    let processes = PyList::empty(py);
    for (host, pid, comm) in &s.processes {
        let p = PyDict::new(py);
        p.set_item("host", host)?;
        p.set_item("pid", pid)?;
        p.set_item("comm", comm)?;
        processes.append(p)?;
    }
    d.set_item("processes", processes)?;
    Ok(d)
}
