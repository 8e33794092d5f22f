//! `tokenscan._tokenscan`: the Python module over `tokenscan-core`.
//!
//! The package `tokenscan` (in `python/tokenscan/`) re-exports what is public
//! here. The layout follows pydantic-core: each Python-facing function or
//! method converts its arguments and makes one call into [`ops`] through
//! [`detach`], which releases the GIL and turns core errors into the Python
//! exceptions of [`errors`]. Arrow data crosses the boundary through the
//! Arrow PyCapsule interface ([`arrow_io`]), so no Python object is made per
//! event.

mod args;
mod arrow_io;
mod errors;
mod findings;
mod functions;
mod html;
mod importing;
mod ops;
mod rules;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use pyo3::prelude::*;

use crate::errors::Failure;

// The `#[pyo3(signature)]`s and `_tokenscan.pyi` write the default batch size
// as the literal 65_536: Python's `help()` and `inspect.signature` show a
// literal default, but only `...` for a Rust constant. This keeps them equal.
const _: () = assert!(tokenscan_core::capture::DEFAULT_BATCH_SIZE == 65_536);

/// Runs core work with the GIL released (other Python threads keep running)
/// and converts its failure into the Python exception.
pub(crate) fn detach<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> Result<T, Failure> + Send,
{
    py.detach(f).map_err(|e| e.into_py_err(py))
}

/// Batches and their schema as a `pyarrow.Table` (zero-copy).
pub(crate) fn table(py: Python<'_>, (batches, schema): (Vec<RecordBatch>, SchemaRef)) -> PyResult<Bound<'_, PyAny>> {
    arrow_io::to_pyarrow(py, batches, schema)
}

/// Replay Kubernetes service-account token-theft captures through Elastic
/// EQL rules and Tracee signatures; findings and captures as zero-copy Arrow.
/// Use the `tokenscan` package, which re-exports this module's public names.
#[pymodule]
mod _tokenscan {
    use pyo3::prelude::*;

    #[pymodule_export]
    use crate::findings::Findings;
    #[pymodule_export]
    use crate::functions::{ecs_view, hunt, process_tree, read_capture, replay, report, tracee_view};
    #[pymodule_export]
    use crate::importing::{export_ecs, export_tracee, import_ecs, import_k8s_audit, import_tracee};
    #[pymodule_export]
    use crate::rules::Rules;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        use crate::errors::{CaptureError, RuleError, TokenscanError, UnevaluableError};
        let py = m.py();
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        m.add("TokenscanError", py.get_type::<TokenscanError>())?;
        m.add("CaptureError", py.get_type::<CaptureError>())?;
        m.add("RuleError", py.get_type::<RuleError>())?;
        m.add("UnevaluableError", py.get_type::<UnevaluableError>())?;
        crate::errors::add_attribute_defaults(py)
    }
}
