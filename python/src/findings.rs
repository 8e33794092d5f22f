//! `tokenscan.Findings`: the result of a replay, as Arrow.

use chrono::DateTime;
use pyo3::exceptions::PyImportError;
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyDict, PyList};
use pyo3::IntoPyObjectExt;
use serde_json::Value;
use tokenscan_core::findings::findings_schema;
use tokenscan_core::replay::ReplaySummary;
use tokenscan_core::summary::summary_json;

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

/// The summary as the CLI's JSON summary (`tokenscan_core::summary`, built
/// once for both), with the time range as timezone-aware datetimes.
pub(crate) fn summary_dict<'py>(py: Python<'py>, s: &ReplaySummary) -> PyResult<Bound<'py, PyDict>> {
    let d = json_to_py(py, &summary_json(s))?.cast_into::<PyDict>()?;
    if let Some((lo, hi)) = s.time_range {
        let t = PyDict::new(py);
        t.set_item("first", datetime(py, lo)?)?;
        t.set_item("last", datetime(py, hi)?)?;
        d.set_item("time_range", t)?;
    }
    Ok(d)
}

/// A JSON value as the Python object `json.loads` would give.
fn json_to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    match v {
        Value::Null => Ok(py.None().into_bound(py)),
        Value::Bool(b) => b.into_bound_py_any(py),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => u.into_bound_py_any(py),
            (None, Some(i)) => i.into_bound_py_any(py),
            _ => n.as_f64().unwrap_or(f64::NAN).into_bound_py_any(py),
        },
        Value::String(s) => s.into_bound_py_any(py),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_py(py, item)?)?;
            }
            Ok(list.into_any())
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, item) in map {
                dict.set_item(k, json_to_py(py, item)?)?;
            }
            Ok(dict.into_any())
        }
    }
}
