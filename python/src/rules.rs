//! `tokenscan.Rules`: a compiled rule set that remembers its source texts.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple, PyType};
use tokenscan_core::eql::{CompileOptions, DEFAULT_IGNORE_ABOVE};
use tokenscan_core::replay::ReplayOptions;
use tokenscan_core::rules::{builtin_sources, read_rule_files, RuleSet};

use crate::args::{ArrowData, Paths};
use crate::arrow_io::reader_from;
use crate::errors::Failure;
use crate::findings::Findings;
use crate::{detach, ops};

/// A set of detection rules: Elastic detection-rules TOML (EQL) and
/// tokenscan's TOML form of Tracee signatures, compiled once.
///
/// Make one with `Rules.default()` (the two built-in rules), `Rules.load(paths)`
/// (files, or directories of `*.toml`), `Rules.from_text(text)` or
/// `Rules.from_sources(pairs)`. A `Rules` keeps the rule texts it was
/// compiled from and pickles as them, so it can be shipped to Spark or Ray
/// workers; it holds no global state and can be used from several threads.
#[pyclass(module = "tokenscan", frozen)]
pub struct Rules {
    sources: Vec<(PathBuf, String)>,
    ignore_above: Option<usize>,
    set: RuleSet,
}

impl Rules {
    /// Compiles rule texts (GIL released).
    fn compile(py: Python<'_>, sources: Vec<(PathBuf, String)>, ignore_above: Option<usize>) -> PyResult<Rules> {
        detach(py, move || {
            let set = RuleSet::from_sources(&sources, &CompileOptions { ignore_above })?;
            Ok(Rules { sources, ignore_above, set })
        })
    }

    /// The compiled rule set.
    pub(crate) fn set(&self) -> &RuleSet {
        &self.set
    }
}

#[pymethods]
impl Rules {
    /// The built-in rules: Elastic's "Service Account Token or Certificate Read
    /// Detected via Defend for Containers" and Tracee's TRC-108.
    ///
    /// `ignore_above` is Elasticsearch's keyword `ignore_above` limit (longer
    /// values never match); `None` turns it off, like the CLI's `--no-ignore-above`.
    #[classmethod]
    #[pyo3(signature = (*, ignore_above=Some(DEFAULT_IGNORE_ABOVE)), text_signature = "($cls, *, ignore_above=1024)")]
    fn default(_cls: &Bound<'_, PyType>, py: Python<'_>, ignore_above: Option<usize>) -> PyResult<Rules> {
        let sources = builtin_sources().into_iter().map(|(p, t)| (p, t.to_string())).collect();
        Rules::compile(py, sources, ignore_above)
    }

    /// Loads rule files; a directory contributes its `*.toml` files, sorted by name
    /// (the CLI's `--rules`). Raises `RuleError` (with `file`, `line`, `column`)
    /// for a bad rule and `FileNotFoundError` for a missing file.
    #[classmethod]
    #[pyo3(
        signature = (paths, *, ignore_above=Some(DEFAULT_IGNORE_ABOVE)),
        text_signature = "($cls, paths, *, ignore_above=1024)"
    )]
    fn load(_cls: &Bound<'_, PyType>, py: Python<'_>, paths: Paths, ignore_above: Option<usize>) -> PyResult<Rules> {
        let sources = detach(py, move || Ok(read_rule_files(&paths.0)?))?;
        Rules::compile(py, sources, ignore_above)
    }

    /// Compiles one rule file's text; `name` stands for its path in messages and findings.
    #[classmethod]
    #[pyo3(
        signature = (text, name="<text>", *, ignore_above=Some(DEFAULT_IGNORE_ABOVE)),
        text_signature = "($cls, text, name='<text>', *, ignore_above=1024)"
    )]
    fn from_text(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        text: String,
        name: &str,
        ignore_above: Option<usize>,
    ) -> PyResult<Rules> {
        Rules::compile(py, vec![(PathBuf::from(name), text)], ignore_above)
    }

    /// Compiles rule file texts given as `(name, text)` pairs (what `sources` returns).
    #[classmethod]
    #[pyo3(
        signature = (sources, *, ignore_above=Some(DEFAULT_IGNORE_ABOVE)),
        text_signature = "($cls, sources, *, ignore_above=1024)"
    )]
    fn from_sources(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        sources: Vec<(PathBuf, String)>,
        ignore_above: Option<usize>,
    ) -> PyResult<Rules> {
        Rules::compile(py, sources, ignore_above)
    }

    /// Rebuilds a pickled rule set (positional arguments, for `__reduce__`).
    #[classmethod]
    fn _from_pickle(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        sources: Vec<(PathBuf, String)>,
        ignore_above: Option<usize>,
    ) -> PyResult<Rules> {
        Rules::compile(py, sources, ignore_above)
    }

    /// Pickles as the rule texts and options; unpickling compiles them again.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let me = slf.get();
        let restore = slf.get_type().getattr("_from_pickle")?;
        let sources: Vec<(String, String)> =
            me.sources.iter().map(|(p, t)| (p.display().to_string(), t.clone())).collect();
        PyTuple::new(py, [restore, (sources, me.ignore_above).into_pyobject(py)?.into_any()])
    }

    /// The rule file texts the set was compiled from, as `(name, text)` pairs.
    #[getter]
    fn sources(&self) -> Vec<(String, String)> {
        self.sources.iter().map(|(p, t)| (p.display().to_string(), t.clone())).collect()
    }

    /// Elasticsearch's keyword `ignore_above` limit the EQL rules were compiled with (`None`: off).
    #[getter]
    fn ignore_above(&self) -> Option<usize> {
        self.ignore_above
    }

    /// The rule ids, in order.
    #[getter]
    fn ids(&self) -> Vec<String> {
        self.set.rules().iter().map(|r| r.id.clone()).collect()
    }

    /// One dict per rule, as `tokenscan rules list --format json` shows it:
    /// `id`, `name`, `kind` (`eql` or `signature`), `severity`, `risk_score`, `threat`, `source`.
    fn describe<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        self.set
            .rules()
            .iter()
            .map(|r| {
                let d = PyDict::new(py);
                d.set_item("id", &r.id)?;
                d.set_item("name", &r.name)?;
                d.set_item("kind", r.kind())?;
                d.set_item("severity", &r.severity)?;
                d.set_item("risk_score", r.risk_score)?;
                d.set_item("threat", &r.threat)?;
                d.set_item("source", r.source.display().to_string())?;
                Ok(d)
            })
            .collect()
    }

    /// Evaluates the rules over Arrow data: anything with `__arrow_c_array__`
    /// (a pyarrow `RecordBatch`) or `__arrow_c_stream__` (a pyarrow `Table` or
    /// `RecordBatchReader`, a polars `DataFrame`, a DuckDB relation) whose columns
    /// are named as in a capture (other columns are ignored; types are
    /// normalized as for capture files). Events are numbered from `first_index`;
    /// `capture` labels them in findings and errors.
    ///
    /// This is the hook for distributed engines: call it per batch inside
    /// Spark's `mapInArrow` or Ray's `map_batches`. Raises `CaptureError` for
    /// unusable data and, with `strict=True`, `UnevaluableError`.
    #[pyo3(signature = (data, *, capture="<arrow>", strict=false, first_index=0))]
    fn evaluate(
        &self,
        py: Python<'_>,
        data: ArrowData,
        capture: &str,
        strict: bool,
        first_index: u64,
    ) -> PyResult<Findings> {
        let reader = reader_from(data.0)?;
        let capture = capture.to_string();
        let set = self.set.clone();
        let options = ReplayOptions { strict, ..Default::default() };
        detach(py, move || ops::evaluate(set, options, reader, &capture, first_index)).map(Findings::new)
    }

    /// Number of rules.
    fn __len__(&self) -> usize {
        self.set.rules().len()
    }

    fn __repr__(&self) -> String {
        format!("<tokenscan.Rules: {}>", self.ids().join(", "))
    }
}

/// The `rules` argument of `replay`: a `Rules`, or paths to load.
pub(crate) enum RulesArg {
    /// An already compiled set.
    Set(RuleSet),
    /// Rule files or directories.
    Paths(Vec<PathBuf>),
}

impl<'a, 'py> FromPyObject<'a, 'py> for RulesArg {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(rules) = obj.cast::<Rules>() {
            return Ok(RulesArg::Set(rules.get().set().clone()));
        }
        Ok(RulesArg::Paths(obj.extract::<Paths>()?.0))
    }
}

impl RulesArg {
    /// The rule set (`None`: the built-in rules); runs without the GIL.
    pub(crate) fn resolve(arg: Option<RulesArg>) -> Result<RuleSet, Failure> {
        let options = CompileOptions::default();
        Ok(match arg {
            None => RuleSet::builtin(&options)?,
            Some(RulesArg::Set(set)) => set,
            Some(RulesArg::Paths(paths)) => RuleSet::load(&paths, &options)?,
        })
    }
}
