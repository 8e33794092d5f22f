//! Arguments shared by several functions.

use std::path::PathBuf;

use pyo3::exceptions::PyTypeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use pyo3_arrow::input::AnyRecordBatch;

/// One path (`str` or `os.PathLike`) or an iterable of them, as a list.
pub(crate) struct Paths(pub Vec<PathBuf>);

impl<'a, 'py> FromPyObject<'a, 'py> for Paths {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(p) = obj.extract::<PathBuf>() {
            return Ok(Paths(vec![p]));
        }
        let wrong = || {
            let kind = obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
            PyTypeError::new_err(format!("expected a path (str or os.PathLike) or a list of paths, not {kind}"))
        };
        if obj.is_instance_of::<PyString>() || obj.is_instance_of::<PyBytes>() {
            return Err(wrong());
        }
        let iter = obj.try_iter().map_err(|_| wrong())?;
        let mut paths = Vec::new();
        for item in iter {
            let item = item?;
            let p = item.extract::<PathBuf>().map_err(|_| {
                let kind = item.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
                PyTypeError::new_err(format!("expected a list of paths (str or os.PathLike), but an item is {kind}"))
            })?;
            paths.push(p);
        }
        Ok(Paths(paths))
    }
}

/// Any Arrow data a caller hands over: an object with `__arrow_c_array__`
/// (one record batch) or `__arrow_c_stream__` (a stream of them).
pub(crate) struct ArrowData(pub AnyRecordBatch);

impl<'a, 'py> FromPyObject<'a, 'py> for ArrowData {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let py = obj.py();
        if !obj.hasattr(intern!(py, "__arrow_c_array__"))? && !obj.hasattr(intern!(py, "__arrow_c_stream__"))? {
            let kind = obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
            return Err(PyTypeError::new_err(format!(
                "expected Arrow data: an object with __arrow_c_array__ or __arrow_c_stream__ \
(a pyarrow Table, RecordBatch or RecordBatchReader, a polars DataFrame, a DuckDB relation), not {kind}"
            )));
        }
        Ok(ArrowData(obj.extract()?))
    }
}
