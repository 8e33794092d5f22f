//! NDJSON: one JSON object per line (findings, diff changes, gaps).

use std::io::Write;

use arrow_array::RecordBatch;
use arrow_schema::ArrowError;

/// Writes each row of `batch` as one JSON object per line, nulls included.
pub fn write_batch(out: &mut dyn Write, batch: &RecordBatch) -> Result<(), ArrowError> {
    let mut w =
        arrow_json::WriterBuilder::new().with_explicit_nulls(true).build::<_, arrow_json::writer::LineDelimited>(out);
    w.write(batch)?;
    w.finish()
}

/// Writes each value on its own line.
pub fn write_lines(out: &mut dyn Write, values: impl IntoIterator<Item = serde_json::Value>) -> std::io::Result<()> {
    for v in values {
        writeln!(out, "{v}")?;
    }
    Ok(())
}
