//! The Python exception hierarchy and the one conversion from core errors.
//!
//! ```text
//! TokenscanError                 every error tokenscan itself detects
//! ├── CaptureError               unusable capture or Arrow data (.path)
//! ├── RuleError                  unusable rule file or query (.file, .line, .column)
//! └── UnevaluableError           strict mode: a rule cannot evaluate an event
//! OSError (FileNotFoundError, PermissionError, ...)   the operating system said no (.filename, .errno)
//! ```
//!
//! I/O errors are Python's own `OSError` subclasses, not `TokenscanError`s:
//! `except FileNotFoundError` works as it does around `open()`, and the file
//! is in `.filename`. The messages are the CLI's, without its `tokenscan: error:` prefix.

use pyo3::exceptions::{PyException, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::IntoPyObjectExt;
use tokenscan_core::Error;

pyo3::create_exception!(
    tokenscan,
    TokenscanError,
    PyException,
    "Base class of the errors tokenscan detects (not raised itself for I/O: those are OSError)."
);
pyo3::create_exception!(
    tokenscan,
    CaptureError,
    TokenscanError,
    "A capture file (or Arrow data given to Rules.evaluate) is unusable: not Parquet or NDJSON, \
truncated, corrupt, of another format version, missing a column or holding a bad value. \
`path` is the file (or the label of the data)."
);
pyo3::create_exception!(
    tokenscan,
    RuleError,
    TokenscanError,
    "A rule file or an EQL query is unusable. `file` is the rule file (`<builtin>/NAME` for a \
built-in rule, `<query>` for a query given to hunt); `line` and `column` (1-based) say where, \
or are None when the problem has no place."
);
pyo3::create_exception!(
    tokenscan,
    UnevaluableError,
    TokenscanError,
    "With strict=True: a rule cannot evaluate an event (for example a successful open with null \
flags, which TRC-108 needs). `capture`, `event_index` and `rule_id` name it."
);

/// Sets the attributes every instance of our exception classes carries as
/// class-level defaults, so they exist (as `None`) even on an instance built by hand.
pub(crate) fn add_attribute_defaults(py: Python<'_>) -> PyResult<()> {
    let none = py.None();
    py.get_type::<CaptureError>().setattr("path", &none)?;
    for attr in ["file", "line", "column"] {
        py.get_type::<RuleError>().setattr(attr, &none)?;
    }
    for attr in ["capture", "event_index", "rule_id"] {
        py.get_type::<UnevaluableError>().setattr(attr, &none)?;
    }
    Ok(())
}

/// A failure inside a call: the core's error, or an Arrow error from data a
/// caller handed over (which may wrap the Python exception its producer raised).
pub(crate) enum Failure {
    /// The core said no.
    Core(Error),
    /// Reading the caller's Arrow data failed.
    Arrow(arrow_schema::ArrowError),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Core(e)
    }
}

impl From<arrow_schema::ArrowError> for Failure {
    fn from(e: arrow_schema::ArrowError) -> Self {
        Failure::Arrow(e)
    }
}

impl Failure {
    /// The Python exception for this failure.
    pub(crate) fn into_py_err(self, py: Python<'_>) -> PyErr {
        match self {
            Failure::Core(e) => core_error(py, e),
            Failure::Arrow(e) => pyo3_arrow::error::PyArrowError::from(e).into(),
        }
    }
}

/// Sets attributes on a freshly made exception (a failure to set one is not
/// worth hiding the error for).
fn with_attrs<'py>(
    py: Python<'py>,
    err: PyErr,
    attrs: impl IntoIterator<Item = (&'static str, PyResult<Bound<'py, PyAny>>)>,
) -> PyErr {
    let value = err.value(py);
    for (name, v) in attrs {
        if let Ok(v) = v {
            let _ = value.setattr(name, v);
        }
    }
    err
}

/// Converts a core error into its Python exception (the one place this is decided).
pub(crate) fn core_error(py: Python<'_>, e: Error) -> PyErr {
    let message = e.to_string();
    match e {
        Error::Io { path, error } => os_error(&path, &error, &message),
        Error::Capture { path, .. } => {
            with_attrs(py, CaptureError::new_err(message), [("path", path.display().to_string().into_bound_py_any(py))])
        }
        Error::Rule { path, position, .. } => with_attrs(
            py,
            RuleError::new_err(message),
            [
                ("file", path.display().to_string().into_bound_py_any(py)),
                ("line", position.map(|p| p.line).into_bound_py_any(py)),
                ("column", position.map(|p| p.column).into_bound_py_any(py)),
            ],
        ),
        Error::Unevaluable { capture, event_index, rule_id, .. } => with_attrs(
            py,
            UnevaluableError::new_err(message),
            [
                ("capture", capture.display().to_string().into_bound_py_any(py)),
                ("event_index", event_index.into_bound_py_any(py)),
                ("rule_id", rule_id.into_bound_py_any(py)),
            ],
        ),
        // Output errors (writing an import's capture or an export failed, or
        // the output would replace the input), and any variant a newer core
        // adds, are tokenscan errors with their message.
        _ => TokenscanError::new_err(message),
    }
}

/// `OSError(errno, strerror, filename)`, which Python turns into the matching
/// subclass (`FileNotFoundError` for ENOENT, `PermissionError` for EACCES...).
fn os_error(path: &std::path::Path, error: &std::io::Error, message: &str) -> PyErr {
    match error.raw_os_error() {
        Some(errno) => {
            let text = error.to_string();
            let suffix = format!(" (os error {errno})");
            let strerror = text.strip_suffix(&suffix).unwrap_or(&text).to_string();
            PyOSError::new_err((errno, strerror, path.display().to_string()))
        }
        None => PyOSError::new_err(message.to_string()),
    }
}

/// A `ValueError` for a bad argument.
pub(crate) fn value_error(message: impl Into<String>) -> PyErr {
    PyValueError::new_err(message.into())
}
