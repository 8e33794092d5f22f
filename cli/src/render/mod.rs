//! Every printer of the CLI, one file per output format: `table` (the human
//! reports), `json`, `ndjson`, `csv`, `parquet`, `junit`, and `messages` (what
//! goes to stderr: progress, warnings, summaries of file-writing commands).
//! Commands gather data; these modules decide how it looks.
//!
//! [`FindingsOutput`] is the sink that `replay` and `diff` stream their
//! batches into; it hands each batch to the chosen format's writer.

pub mod csv;
pub mod json;
pub mod junit;
pub mod messages;
pub mod ndjson;
pub mod parquet;
pub mod table;
pub mod tree;

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::SchemaRef;
pub use tokenscan_core::findings::{finding_place, finding_target as target};
use tokenscan_core::replay::{FindingSink, Renderer};

use crate::args::Format;

/// Streams record batches (findings, or diff changes) to the chosen format.
/// NDJSON, CSV and Parquet are written as the batches arrive; the table and
/// the JSON document are rendered at the end, in [`FindingsOutput::finish`].
pub struct FindingsOutput {
    format: Format,
    out: Box<dyn Write + Send>,
    path: PathBuf,
    collected: Vec<RecordBatch>,
    csv_started: bool,
    parquet: Option<::parquet::arrow::ArrowWriter<Box<dyn Write + Send>>>,
    progress: Option<indicatif::ProgressBar>,
}

impl FindingsOutput {
    /// A sink writing `format` to `out` (`path` names it in messages); `schema` is the batches' schema.
    pub fn new(format: Format, out: Box<dyn Write + Send>, path: PathBuf, schema: SchemaRef) -> Result<Self> {
        let mut me = FindingsOutput {
            format,
            out,
            path,
            collected: Vec::new(),
            csv_started: false,
            parquet: None,
            progress: None,
        };
        if format == Format::Parquet {
            let out = std::mem::replace(&mut me.out, Box::new(std::io::sink()));
            me.parquet = Some(parquet::writer(out, schema)?);
        }
        Ok(me)
    }

    /// Shows a progress bar on stderr while replaying, when stderr is a terminal.
    pub fn with_progress(mut self, enabled: bool) -> Self {
        self.progress = messages::progress_bar(enabled);
        self
    }

    /// Writes what was buffered and closes the output: `table` renders the
    /// human report; JSON is `{"summary": summary, json_key: [rows...]}`.
    pub fn finish(
        mut self,
        summary: impl FnOnce() -> serde_json::Value,
        json_key: &str,
        table: impl FnOnce(&[RecordBatch]) -> String,
    ) -> Result<()> {
        if let Some(bar) = self.progress.take() {
            bar.finish_and_clear();
        }
        match self.format {
            Format::Table => self.out.write_all(table(&self.collected).as_bytes())?,
            Format::Json => json::write_document(&mut self.out, summary(), json_key, &self.collected)?,
            Format::Parquet => {
                if let Some(w) = self.parquet.take() {
                    w.close()?;
                }
            }
            Format::Ndjson | Format::Csv => {}
        }
        self.out.flush().with_context(|| format!("flushing {}", self.path.display()))?;
        Ok(())
    }

    fn write_batch(&mut self, batch: &RecordBatch) -> tokenscan_core::Result<()> {
        let result = match self.format {
            Format::Table | Format::Json => {
                self.collected.push(batch.clone());
                Ok(())
            }
            Format::Ndjson => ndjson::write_batch(&mut self.out, batch).map_err(|e| e.to_string()),
            Format::Csv => {
                let header = !self.csv_started;
                self.csv_started = true;
                csv::write_batch(&mut self.out, batch, header).map_err(|e| e.to_string())
            }
            Format::Parquet => match self.parquet.as_mut() {
                Some(w) => w.write(batch).map_err(|e| e.to_string()),
                None => Ok(()),
            },
        };
        result.map_err(|message| output_error(&self.path, message))
    }
}

/// A failure to write the output at `path`.
fn output_error(path: &std::path::Path, message: impl ToString) -> tokenscan_core::Error {
    tokenscan_core::Error::Output { path: path.to_owned(), message: message.to_string() }
}

/// Room reserved per finding when rendering a batch on a replay thread: a
/// finding's NDJSON line is about 1.3 KB with its context (the bench's
/// captures), so most batches render without growing their buffer.
const BYTES_PER_FINDING: usize = 2048;

impl FindingSink for FindingsOutput {
    fn findings(&mut self, batch: &RecordBatch) -> tokenscan_core::Result<()> {
        self.write_batch(batch)
    }

    /// NDJSON and CSV rows are rendered on the replay's threads; the header
    /// of CSV, the formats rendered at the end and Parquet are not.
    fn renderer(&self) -> Option<Renderer> {
        type Write = fn(&mut Vec<u8>, &RecordBatch) -> Result<(), arrow_schema::ArrowError>;
        let write: Write = match self.format {
            Format::Ndjson => |out, batch| ndjson::write_batch(out, batch),
            Format::Csv => |out, batch| csv::write_batch(out, batch, false),
            Format::Table | Format::Json | Format::Parquet => return None,
        };
        let path = self.path.clone();
        Some(std::sync::Arc::new(move |batch: &RecordBatch| {
            let mut bytes = Vec::with_capacity(batch.num_rows() * BYTES_PER_FINDING);
            write(&mut bytes, batch).map_err(|e| output_error(&path, e))?;
            Ok(bytes)
        }))
    }

    fn rendered(&mut self, batch: &RecordBatch, bytes: Vec<u8>) -> tokenscan_core::Result<()> {
        if !matches!(self.format, Format::Ndjson | Format::Csv) {
            return self.write_batch(batch);
        }
        if self.format == Format::Csv && !self.csv_started {
            // The header, from the first batch's schema.
            self.write_batch(&batch.slice(0, 0))?;
        }
        self.out.write_all(&bytes).map_err(|e| output_error(&self.path, e))
    }

    fn progress(&mut self, done: u64, total: Option<u64>) {
        if let Some(bar) = &self.progress {
            if let Some(t) = total {
                bar.set_length(t);
            }
            bar.set_position(done);
        }
    }
}

impl tokenscan_core::diff::ChangeSink for FindingsOutput {
    fn changes(&mut self, batch: &RecordBatch) -> tokenscan_core::Result<()> {
        self.write_batch(batch)
    }
}

/// A column of a findings batch by name.
pub fn col<'a>(b: &'a RecordBatch, name: &str) -> &'a ArrayRef {
    b.column_by_name(name).unwrap_or_else(|| panic!("findings carry `{name}`"))
}

/// A string cell of a findings batch.
pub fn s(b: &RecordBatch, name: &str, i: usize) -> Option<String> {
    let a = col(b, name);
    a.is_valid(i).then(|| a.as_string::<i32>().value(i).to_string())
}
