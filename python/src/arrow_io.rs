//! Handing Arrow data across the boundary: out through the Arrow PyCapsule
//! stream interface (zero-copy: the consumer gets our buffers), in through
//! `__arrow_c_array__` / `__arrow_c_stream__`.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, RecordBatchReader, StringArray, StructArray};
use arrow_cast::cast;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use pyo3::prelude::*;
use pyo3::types::PyCapsule;
use pyo3_arrow::ffi::{to_stream_pycapsule, ArrayIterator};
use pyo3_arrow::input::AnyRecordBatch;
use pyo3_arrow::PyTable;

/// Exports batches (all of `schema`) as an `arrow_array_stream` PyCapsule,
/// casting to `requested_schema` when the consumer asks for one and the cast is possible.
pub(crate) fn stream_capsule<'py>(
    py: Python<'py>,
    batches: &[RecordBatch],
    schema: &SchemaRef,
    requested_schema: Option<Bound<'py, PyCapsule>>,
) -> PyResult<Bound<'py, PyCapsule>> {
    let arrays: Vec<ArrayRef> = batches.iter().map(|b| Arc::new(StructArray::from(b.clone())) as ArrayRef).collect();
    let field = Field::new_struct("", schema.fields().clone(), false).with_metadata(schema.metadata().clone());
    let reader = Box::new(ArrayIterator::new(arrays.into_iter().map(Ok), Arc::new(field)));
    Ok(to_stream_pycapsule(py, reader, requested_schema)?)
}

/// The batches as a `pyarrow.Table`, imported through the stream interface (no copy).
pub(crate) fn to_pyarrow(py: Python<'_>, batches: Vec<RecordBatch>, schema: SchemaRef) -> PyResult<Bound<'_, PyAny>> {
    PyTable::try_new(batches, schema)?.into_pyarrow(py)
}

/// Any Arrow object a caller hands over (`__arrow_c_array__`: one batch;
/// `__arrow_c_stream__`: a stream) as a reader; the data is not copied.
pub(crate) fn reader_from(data: AnyRecordBatch) -> PyResult<Box<dyn RecordBatchReader + Send>> {
    data.into_reader()
}

/// The columns with dictionary-encoded strings decoded to plain `Utf8`, so
/// batches from captures written by different tools share one schema.
/// Other columns (the usual case) are passed through untouched.
pub(crate) fn plain_columns(columns: Vec<ArrayRef>) -> Vec<ArrayRef> {
    columns
        .into_iter()
        .map(|a| match a.data_type() {
            DataType::Dictionary(_, value) => {
                cast(&a, value).expect("a dictionary of strings decodes to its value type")
            }
            _ => a,
        })
        .collect()
}

/// The batch with a leading `capture` column holding `label` on every row,
/// so events from several captures stay told apart (as in findings).
pub(crate) fn with_capture_column(label: &str, batch: &RecordBatch) -> RecordBatch {
    let schema = batch.schema();
    let mut fields = vec![Arc::new(Field::new("capture", DataType::Utf8, false))];
    fields.extend(schema.fields().iter().cloned());
    let mut columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from(vec![label; batch.num_rows()]))];
    columns.extend(batch.columns().iter().cloned());
    let schema = Schema::new_with_metadata(fields, schema.metadata().clone());
    RecordBatch::try_new(Arc::new(schema), columns).expect("a column of the batch's length")
}

/// Number of rows over all batches.
pub(crate) fn num_rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}
