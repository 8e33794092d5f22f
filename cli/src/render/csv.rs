//! CSV: one row per finding or change, with a header; lists (`args`) as JSON arrays.

use std::io::Write;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow_schema::ArrowError;
use arrow_schema::{DataType, Field, Schema};

/// Writes `batch` as CSV rows, preceded by the header when `header`.
pub fn write_batch(out: &mut dyn Write, batch: &RecordBatch, header: bool) -> Result<(), ArrowError> {
    let b = lists_as_json(batch);
    let mut w = arrow_csv::WriterBuilder::new().with_header(header).build(out);
    w.write(&b)
}

/// List columns (`args`) as JSON-array string columns, for CSV (which has no lists).
fn lists_as_json(batch: &RecordBatch) -> RecordBatch {
    let schema = batch.schema();
    let mut fields = Vec::new();
    let mut cols: Vec<ArrayRef> = Vec::new();
    for (f, c) in schema.fields().iter().zip(batch.columns()) {
        if let DataType::List(_) = f.data_type() {
            let list = c.as_list::<i32>();
            let text: StringArray = (0..list.len())
                .map(|i| {
                    list.is_valid(i).then(|| {
                        let v = list.value(i);
                        let s = v.as_string::<i32>();
                        serde_json::to_string(&(0..s.len()).map(|j| s.value(j)).collect::<Vec<_>>())
                            .expect("strings serialize")
                    })
                })
                .collect();
            fields.push(Field::new(f.name(), DataType::Utf8, true));
            cols.push(Arc::new(text));
        } else {
            fields.push(f.as_ref().clone());
            cols.push(c.clone());
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).expect("same columns, args as text")
}
