//! Parquet output of findings and diff changes (zstd-compressed).

use std::io::Write;

use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

/// A Parquet writer of batches of `schema` into `out`; close it to write the footer.
pub fn writer(
    out: Box<dyn Write + Send>,
    schema: SchemaRef,
) -> parquet::errors::Result<ArrowWriter<Box<dyn Write + Send>>> {
    let props = WriterProperties::builder().set_compression(Compression::ZSTD(Default::default())).build();
    ArrowWriter::try_new(out, schema, Some(props))
}
