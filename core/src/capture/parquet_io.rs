//! Parquet reading and writing of captures.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, SchemaRef};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use super::normalize::{normalize, ColumnMap};
use super::{schema, Column, EventBatch, Projection};
use crate::error::{Error, Result};

fn parquet_error(path: &Path, what: &str, e: parquet::errors::ParquetError) -> Error {
    let detail = e.to_string();
    let hint = if detail.contains("EOF") || detail.contains("Corrupt footer") || detail.contains("out of range") {
        " (the file looks truncated or corrupt)"
    } else {
        ""
    };
    Error::capture(path, format!("{what}: {detail}{hint}"))
}

fn open_builder(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| parquet_error(path, "cannot read the Parquet footer", e))
}

/// Reads a Parquet file's Arrow schema, key-value metadata and row count.
pub(crate) fn read_footer(path: &Path) -> Result<(SchemaRef, BTreeMap<String, String>, u64)> {
    let builder = open_builder(path)?;
    let file_meta = builder.metadata().file_metadata();
    let metadata = file_meta
        .key_value_metadata()
        .map(|kvs| {
            kvs.iter()
                .filter(|kv| kv.key != "ARROW:schema")
                .map(|kv| (kv.key.clone(), kv.value.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let rows = u64::try_from(file_meta.num_rows())
        .map_err(|_| Error::capture(path, "the Parquet footer declares a negative row count"))?;
    Ok((builder.schema().clone(), metadata, rows))
}

/// Batches of a Parquet capture, normalized.
pub(crate) struct ParquetBatches {
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    projection: Projection,
    next_index: u64,
}

impl ParquetBatches {
    pub(crate) fn open(path: &Path, map: &ColumnMap, projection: Projection, batch_size: usize) -> Result<Self> {
        let builder = open_builder(path)?;
        let mask = ProjectionMask::roots(builder.parquet_schema(), map.file_indices(projection));
        let reader = builder
            .with_projection(mask)
            .with_batch_size(batch_size)
            .build()
            .map_err(|e| parquet_error(path, "cannot set up reading", e))?;
        Ok(ParquetBatches { path: path.to_owned(), reader, projection, next_index: 0 })
    }
}

impl Iterator for ParquetBatches {
    type Item = Result<EventBatch>;
    fn next(&mut self) -> Option<Self::Item> {
        let batch = match self.reader.next()? {
            Ok(b) => b,
            Err(e) => {
                return Some(Err(Error::capture(
                    &self.path,
                    format!(
                        "cannot decode events after event {}: {e} (the file looks truncated or corrupt)",
                        self.next_index
                    ),
                )))
            }
        };
        let first = self.next_index;
        self.next_index += batch.num_rows() as u64;
        Some(normalize(&self.path, &batch, self.projection, first))
    }
}

/// How the Parquet writer lays out a capture.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Rows per row group.
    pub row_group_rows: usize,
    /// Compression codec.
    pub compression: Compression,
    /// Extra key-value metadata (recorder version, kernel, start/stop time, lost events...).
    pub metadata: BTreeMap<String, String>,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            row_group_rows: 1 << 20,
            compression: Compression::ZSTD(ZstdLevel::try_new(3).expect("3 is a valid zstd level")),
            metadata: BTreeMap::new(),
        }
    }
}

/// Writes events to a Parquet capture in the canonical schema.
///
/// Always call [`ParquetCaptureWriter::close`]: it writes the footer, without
/// which the file is not readable.
pub struct ParquetCaptureWriter<W: Write + Send> {
    path: PathBuf,
    writer: ArrowWriter<W>,
    rows: u64,
}

impl<W: Write + Send> ParquetCaptureWriter<W> {
    /// Starts a capture on `sink`; `path` is only used in error messages.
    pub fn new(sink: W, path: impl Into<PathBuf>, options: WriterOptions) -> Result<Self> {
        let path = path.into();
        let mut kv: Vec<KeyValue> = options.metadata.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())).collect();
        kv.push(KeyValue::new(super::VERSION_KEY.to_string(), super::CAPTURE_VERSION.to_string()));
        let props = WriterProperties::builder()
            .set_compression(options.compression)
            .set_max_row_group_row_count(Some(options.row_group_rows.max(1)))
            .set_dictionary_enabled(true)
            .set_key_value_metadata(Some(kv))
            .build();
        let writer = ArrowWriter::try_new(sink, schema(), Some(props))
            .map_err(|e| Error::Output { path: path.clone(), message: e.to_string() })?;
        Ok(ParquetCaptureWriter { path, writer, rows: 0 })
    }

    /// Appends a batch that has every column of the format (dictionary-encoded strings are fine).
    pub fn write(&mut self, batch: &EventBatch) -> Result<()> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(18);
        for c in Column::ALL {
            let a = batch.column(c).ok_or_else(|| Error::Output {
                path: self.path.clone(),
                message: format!("cannot write a capture without column `{c}`"),
            })?;
            columns.push(plain(a)?);
        }
        let rb = RecordBatch::try_new(schema(), columns)
            .map_err(|e| Error::Output { path: self.path.clone(), message: e.to_string() })?;
        self.writer.write(&rb).map_err(|e| Error::Output { path: self.path.clone(), message: e.to_string() })?;
        self.rows += batch.len() as u64;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Flushes the last row group and writes the footer; returns the sink.
    pub fn close(self) -> Result<W> {
        let path = self.path;
        self.writer.into_inner().map_err(|e| Error::Output { path, message: e.to_string() })
    }
}

fn plain(a: &ArrayRef) -> Result<ArrayRef> {
    if let DataType::Dictionary(_, _) = a.data_type() {
        return cast(a, &DataType::Utf8).map_err(|e| Error::Output { path: PathBuf::new(), message: e.to_string() });
    }
    Ok(Arc::clone(a))
}
