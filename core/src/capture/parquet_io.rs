//! Parquet reading and writing of captures.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_cast::cast;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder, RowSelection,
    RowSelector,
};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, Encoding};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use super::normalize::{normalize, normalize_columns, ColumnMap};
use super::pages;
use super::{schema, Column, EventBatch, Piece, Projection};
use crate::error::{Error, Result};

/// A capture file as the `parquet` crate reads it: by position (`pread`),
/// sharing one descriptor.
///
/// The crate's own `ChunkReader` for `File` duplicates the descriptor, seeks
/// and closes the copy for every read it starts, twice per page (its header,
/// then its data), and reads 8 KiB for each header: on a 5M-event capture,
/// about 45,000 of a replay's 60,000 system calls and 60 MB copied for
/// nothing. Here a header is read through a small buffer and a page's data
/// with one `pread`.
#[derive(Clone)]
pub(crate) struct PositionalFile {
    file: Arc<File>,
    len: u64,
}

impl PositionalFile {
    pub(crate) fn new(file: File) -> Self {
        // As the crate's `File`: length 0 if it cannot be read (the footer,
        // read earlier, would then already have failed).
        let len = file.metadata().map_or(0, |m| m.len());
        PositionalFile { file: Arc::new(file), len }
    }
}

/// Bytes read ahead for a page header: real headers take tens of bytes, a
/// few hundred with statistics of long strings; a longer one is read on.
const HEADER_READ: usize = 1024;

/// A reader of [`PositionalFile`] from a position on.
pub(crate) struct PositionalRead {
    file: Arc<File>,
    at: u64,
}

impl std::io::Read for PositionalRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

impl parquet::file::reader::Length for PositionalFile {
    fn len(&self) -> u64 {
        self.len
    }
}

impl parquet::file::reader::ChunkReader for PositionalFile {
    type T = std::io::BufReader<PositionalRead>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(std::io::BufReader::with_capacity(HEADER_READ, PositionalRead { file: self.file.clone(), at: start }))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        use std::io::Read;
        let mut buffer = Vec::with_capacity(length);
        PositionalRead { file: self.file.clone(), at: start }.take(length as u64).read_to_end(&mut buffer)?;
        if buffer.len() != length {
            return Err(parquet::errors::ParquetError::EOF(format!(
                "Expected to read {length} bytes at byte {start}, read only {}",
                buffer.len()
            )));
        }
        Ok(buffer.into())
    }
}

fn parquet_error(path: &Path, what: &str, e: parquet::errors::ParquetError) -> Error {
    let detail = e.to_string();
    let hint = if detail.contains("EOF") || detail.contains("Corrupt footer") || detail.contains("out of range") {
        " (the file looks truncated or corrupt)"
    } else {
        ""
    };
    Error::capture(path, format!("{what}: {detail}{hint}"))
}

/// A Parquet capture's footer, parsed once and shared by every reader of the file.
#[derive(Debug, Clone)]
pub(crate) struct ParquetMeta {
    /// Reader metadata with tokenscan's type hints applied (dictionary-encoded
    /// string columns are read as `Dictionary(Int32, Utf8)`).
    reader_meta: ArrowReaderMetadata,
    /// The Arrow schema as the file declares it.
    pub(crate) file_schema: SchemaRef,
    /// Key-value metadata (without the embedded Arrow schema).
    pub(crate) metadata: BTreeMap<String, String>,
    /// Rows in the file.
    pub(crate) rows: u64,
    /// Rows per row group.
    pub(crate) row_group_rows: Vec<u64>,
    /// The earliest and latest `time` of each row group in nanoseconds, as
    /// the footer's statistics say (`None` where they do not say both
    /// exactly, or when the row group has no timestamp at all).
    pub(crate) row_group_time: Vec<Option<(i64, i64)>>,
    /// Column chunks whose page headers passed [`check_dictionaries`], by row
    /// group then leaf column: each is checked once, by the first reader.
    pages_checked: Arc<[AtomicBool]>,
}

/// Reads a Parquet file's footer: schema, key-value metadata, row counts.
pub(crate) fn read_footer(path: &Path) -> Result<ParquetMeta> {
    super::source::refuse_special(path, &std::fs::metadata(path).map_err(|e| Error::io(path, e))?)?;
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if let Some(bad) = pages::check_footer(&file, file_len).map_err(|e| Error::io(path, e))? {
        let why = match bad.short {
            true => "it ends inside a value, or a collection in it counts more elements than its bytes hold",
            false => "it holds a type code, number or nesting that Thrift's compact protocol does not allow",
        };
        return Err(Error::capture(
            path,
            format!(
                "cannot read the Parquet footer ({} bytes at byte {}): {why} (at byte {}; the file looks corrupt)",
                bad.len, bad.start, bad.at
            ),
        ));
    }
    // The Arrow schema embedded in the footer (`ARROW:schema`) is not decoded: the
    // Arrow IPC decoder panics on a malformed one, and the Parquet schema says all
    // tokenscan needs (found by fuzzing).
    let options = || ArrowReaderOptions::new().with_skip_arrow_metadata(true);
    let plain = ArrowReaderMetadata::load(&file, options())
        .map_err(|e| parquet_error(path, "cannot read the Parquet footer", e))?;
    let pq = plain.metadata().clone();
    let file_meta = pq.file_metadata();
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
    let mut row_group_rows = Vec::with_capacity(pq.num_row_groups());
    // The row counts must add up (without overflowing: the Parquet reader sums them as i64).
    let mut total: u64 = 0;
    for rg in pq.row_groups() {
        let n = u64::try_from(rg.num_rows())
            .map_err(|_| Error::capture(path, "a row group declares a negative row count"))?;
        total = total.checked_add(n).filter(|&t| t <= i64::MAX as u64).ok_or_else(|| {
            Error::capture(path, "the row counts in the Parquet footer overflow (the file looks corrupt)")
        })?;
        row_group_rows.push(n);
    }
    if total != rows {
        return Err(Error::capture(
            path,
            format!("the Parquet footer says the file holds {rows} events but its row groups hold {total} (the file looks corrupt)"),
        ));
    }
    // Every column chunk must lie inside the file: the Parquet reader asserts
    // (panics) on negative offsets and sizes, and would allocate a chunk's
    // declared size before finding out it is not there.
    for (r, rg) in pq.row_groups().iter().enumerate() {
        for c in rg.columns() {
            let start = c.dictionary_page_offset().unwrap_or(c.data_page_offset());
            let inside = |offset: i64| u64::try_from(offset).is_ok_and(|o| o < file_len);
            let end = u64::try_from(start)
                .ok()
                .zip(u64::try_from(c.compressed_size()).ok())
                .and_then(|(s, n)| s.checked_add(n));
            if !inside(start) || !inside(c.data_page_offset()) || end.is_none_or(|e| e > file_len) {
                return Err(Error::capture(
                    path,
                    format!(
                        "row group {r}, column `{}`: the Parquet footer places its data outside the file (the file looks truncated or corrupt)",
                        c.column_path().string()
                    ),
                ));
            }
        }
    }
    // Columns the format declares non-nullable must hold no null: the footer's
    // statistics say so for every row group without decoding anything (replay
    // decodes some columns only for the rows that fire, so it would not see a
    // null elsewhere). Files without statistics are checked as they are decoded.
    let descr = pq.file_metadata().schema_descr();
    let mut first_row = 0u64;
    for (r, rg) in pq.row_groups().iter().enumerate() {
        for (i, c) in rg.columns().iter().enumerate() {
            let leaf = descr.column(i);
            let parts = leaf.path().parts();
            let Some(col) = (parts.len() == 1).then(|| Column::from_name(&parts[0])).flatten() else { continue };
            let nulls = c.statistics().and_then(|st| st.null_count_opt()).unwrap_or(0);
            if !col.nullable() && nulls > 0 {
                return Err(Error::capture(
                    path,
                    format!(
                        "column `{col}` is null in {nulls} of events {first_row}..{} (row group {r}), but the format does not allow nulls there",
                        first_row + row_group_rows[r]
                    ),
                ));
            }
        }
        first_row += row_group_rows[r];
    }
    let file_schema = plain.schema().clone();
    let hinted = dictionary_hints(&pq, &file_schema);
    let reader_meta = match hinted {
        Some(hint) => ArrowReaderMetadata::try_new(pq.clone(), options().with_schema(hint)).unwrap_or(plain),
        None => plain,
    };
    let row_group_time = time_ranges(&pq, &file_schema);
    let chunks = pq.num_row_groups() * descr.num_columns();
    let pages_checked = (0..chunks).map(|_| AtomicBool::new(false)).collect();
    Ok(ParquetMeta { reader_meta, file_schema, metadata, rows, row_group_rows, row_group_time, pages_checked })
}

/// The earliest and latest `time` of each row group per the footer's
/// statistics, in nanoseconds (scaled from the file's own unit; an INT96 or
/// other physical type, or a row group without an exact minimum and
/// maximum, gives `None`).
fn time_ranges(pq: &parquet::file::metadata::ParquetMetaData, schema: &SchemaRef) -> Vec<Option<(i64, i64)>> {
    use arrow_schema::TimeUnit;
    use parquet::file::statistics::Statistics;
    let scale = match schema.field_with_name(Column::Time.name()).map(|f| f.data_type()) {
        Ok(DataType::Timestamp(TimeUnit::Second, _)) => Some(1_000_000_000),
        Ok(DataType::Timestamp(TimeUnit::Millisecond, _)) => Some(1_000_000),
        Ok(DataType::Timestamp(TimeUnit::Microsecond, _)) => Some(1_000),
        Ok(DataType::Timestamp(TimeUnit::Nanosecond, _)) => Some(1),
        _ => None,
    };
    let descr = pq.file_metadata().schema_descr();
    let leaf = (0..descr.num_columns()).find(|&i| {
        let column = descr.column(i);
        let parts = column.path().parts();
        parts.len() == 1 && parts[0] == Column::Time.name()
    });
    pq.row_groups()
        .iter()
        .map(|rg| {
            let (scale, leaf) = (scale?, leaf?);
            match rg.column(leaf).statistics()? {
                // A minimum or maximum that is not exact (truncated) is not a bound.
                Statistics::Int64(s) if s.min_is_exact() && s.max_is_exact() => {
                    Some((s.min_opt()?.saturating_mul(scale), s.max_opt()?.saturating_mul(scale)))
                }
                _ => None,
            }
        })
        .collect()
}

/// The file schema with every plain `Utf8` column of the capture format whose
/// pages are dictionary-encoded read as `Dictionary(Int32, Utf8)`, so string
/// predicates run once per distinct value, and likewise the elements of a
/// list of strings (`args`): `List(Dictionary(Int32, Utf8))`, which spares
/// copying every element's text (the driver turns the rows it hands to
/// consumers back into plain lists, [`EventBatch::with_plain_lists`]).
/// `None` when nothing changes.
fn dictionary_hints(pq: &parquet::file::metadata::ParquetMetaData, schema: &SchemaRef) -> Option<SchemaRef> {
    let first = pq.row_groups().first()?;
    let descr = pq.file_metadata().schema_descr();
    let mut changed = false;
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let column = Column::from_name(f.name());
            let is_capture_string = column.is_some_and(|c| c.is_string());
            let string_items = match f.data_type() {
                DataType::List(item) if *item.data_type() == DataType::Utf8 => Some(item),
                _ => None,
            };
            let is_string_list = column.is_some_and(|c| matches!(c.data_type(), DataType::List(_)));
            // A list's one leaf is NAME.list.ITEM (three-level lists, what every writer here makes).
            let depth = if string_items.is_some() { 3 } else { 1 };
            let leaf = (0..descr.num_columns()).find(|&i| {
                let column = descr.column(i);
                let parts = column.path().parts();
                parts.len() == depth && parts[0] == *f.name()
            });
            // Dictionary-encoded in the first row group and in none of them
            // fallen back to plain pages (a writer does so when a chunk's
            // dictionary grows too large): reading a plain page into a
            // dictionary array hashes every value, costlier than what the
            // dictionary saves.
            // A column whose every chunk is null (the footer's statistics
            // say so: a capture from a source without the field) is read
            // plain: its dictionary is empty, and the `parquet` crate builds
            // a dictionary array without one by hashing every row's null
            // into a new dictionary, per batch (5% of a replay with context
            // on a 5M-event capture with an empty `cwd`).
            let all_null = |i: usize| {
                pq.row_groups().iter().all(|rg| {
                    let c = rg.column(i);
                    c.statistics().and_then(|s| s.null_count_opt()) == Some(rg.num_rows() as u64)
                })
            };
            let dictionary = leaf.is_some_and(|i| {
                !(depth == 1 && all_null(i))
                    && first.column(i).dictionary_page_offset().is_some()
                    && pq.row_groups().iter().all(|rg| {
                        rg.column(i).page_encoding_stats_mask().is_none_or(|m| {
                            m.is_only(parquet::basic::Encoding::RLE_DICTIONARY)
                                || m.is_only(parquet::basic::Encoding::PLAIN_DICTIONARY)
                        })
                    })
            });
            let dictionary_type = || DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
            if is_capture_string && *f.data_type() == DataType::Utf8 && dictionary {
                changed = true;
                Field::new(f.name(), dictionary_type(), f.is_nullable()).with_metadata(f.metadata().clone())
            } else if let (Some(item), true, true) = (string_items, is_string_list, dictionary) {
                changed = true;
                let item = Field::new(item.name(), dictionary_type(), item.is_nullable())
                    .with_metadata(item.metadata().clone());
                Field::new(f.name(), DataType::List(Arc::new(item)), f.is_nullable())
                    .with_metadata(f.metadata().clone())
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    changed.then(|| Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())))
}

/// Batches of a Parquet capture (or of some of its row groups), normalized.
pub(crate) struct ParquetBatches {
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    projection: Projection,
    next_index: u64,
    /// The event indexes the footer declares for what is read (the file, or
    /// a row group), for messages.
    declared: std::ops::Range<u64>,
    /// Where reading must end (`declared.end`, or the end of a range of a
    /// row group's rows): a reader that ends elsewhere read a footer that lies.
    end: u64,
}

impl ParquetBatches {
    /// Reads the projected columns of a piece of the file (a row group, or a
    /// range of its rows), or of the whole file when `None`.
    pub(crate) fn open(
        path: &Path,
        meta: &ParquetMeta,
        map: &ColumnMap,
        projection: Projection,
        batch_size: usize,
        piece: Option<&Piece>,
    ) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let roots = map.file_indices(projection);
        match piece {
            Some(p) => check_dictionaries(path, &file, meta, [p.unit], &roots)?,
            None => check_dictionaries(path, &file, meta, 0..meta.row_group_rows.len(), &roots)?,
        }
        let builder =
            ParquetRecordBatchReaderBuilder::new_with_metadata(PositionalFile::new(file), meta.reader_meta.clone());
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        let mut builder = builder.with_projection(mask).with_batch_size(batch_size);
        let mut next_index = 0;
        let mut declared = 0..meta.rows;
        let mut end = None;
        if let Some(&Piece { unit: rg, ref rows }) = piece {
            builder = builder.with_row_groups(vec![rg]);
            next_index = meta.row_group_rows[..rg].iter().sum();
            declared = next_index..next_index + meta.row_group_rows[rg];
            if let Some(rows) = rows.clone().filter(|r| *r != (0..meta.row_group_rows[rg])) {
                if rows.start > rows.end || rows.end > meta.row_group_rows[rg] {
                    return Err(Error::capture(
                        path,
                        format!("internal: rows {rows:?} are not rows of row group {rg}"),
                    ));
                }
                // Reading stops after the last row selected; whole pages of a
                // flat column before the first are skipped undecompressed.
                let selectors =
                    vec![RowSelector::skip(rows.start as usize), RowSelector::select((rows.end - rows.start) as usize)];
                builder = builder.with_row_selection(RowSelection::from(selectors));
                end = Some(next_index + rows.end);
                next_index += rows.start;
            }
        }
        let reader = builder.build().map_err(|e| parquet_error(path, "cannot set up reading", e))?;
        let end = end.unwrap_or(declared.end);
        Ok(ParquetBatches { path: path.to_owned(), reader, projection, next_index, declared, end })
    }
}

/// Refuses, before the decoder allocates for it, a dictionary page that
/// declares more values than it holds (see [`pages`]), in the column chunks
/// of `row_groups` under the root columns `roots`. The chunks' bounds were
/// checked when the footer was read.
fn check_dictionaries(
    path: &Path,
    file: &File,
    meta: &ParquetMeta,
    row_groups: impl IntoIterator<Item = usize>,
    roots: &[usize],
) -> Result<()> {
    let pq = meta.reader_meta.metadata();
    let schema = pq.file_metadata().schema_descr();
    for r in row_groups {
        let Some(rg) = pq.row_groups().get(r) else { continue };
        for (i, c) in rg.columns().iter().enumerate() {
            let checked = meta.pages_checked.get(r * schema.num_columns() + i);
            if !roots.contains(&schema.get_column_root_idx(i)) || checked.is_some_and(|c| c.load(Ordering::Relaxed)) {
                continue;
            }
            let start = c.dictionary_page_offset().unwrap_or(c.data_page_offset());
            let (Ok(start), Ok(size)) = (u64::try_from(start), u64::try_from(c.compressed_size())) else { continue };
            let leaf = schema.column(i);
            let end = start.saturating_add(size);
            match pages::check_chunk(file, start, end, leaf.physical_type(), leaf.type_length()) {
                Ok(None) => {
                    if let Some(c) = checked {
                        c.store(true, Ordering::Relaxed);
                    }
                }
                Ok(Some(d)) => {
                    return Err(Error::capture(
                        path,
                        format!(
                            "row group {r}, column `{}`: the dictionary page at byte {} declares {} values but holds {} bytes (the file looks corrupt)",
                            c.column_path().string(),
                            d.offset,
                            d.values,
                            d.bytes
                        ),
                    ))
                }
                Err(e) => return Err(Error::io(path, e)),
            }
        }
    }
    Ok(())
}

/// Every row of a Parquet file that is not a capture (a findings file given
/// back to `diff`), read as the file declares it with the hardening a
/// capture's reading has: the footer's checks ([`read_footer`]), the
/// dictionary-page check, a decoder panic turned into an error. The
/// iterator ends after its first error.
pub(crate) fn record_batches(path: &Path) -> Result<impl Iterator<Item = Result<RecordBatch>>> {
    let meta = read_footer(path)?;
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let pq = meta.reader_meta.metadata();
    let roots: Vec<usize> = (0..pq.file_metadata().schema_descr().root_schema().get_fields().len()).collect();
    check_dictionaries(path, &file, &meta, 0..meta.row_group_rows.len(), &roots)?;
    let mut reader =
        ParquetRecordBatchReaderBuilder::new_with_metadata(PositionalFile::new(file), meta.reader_meta.clone())
            .build()
            .map_err(|e| parquet_error(path, "cannot set up reading", e))?;
    let (path, mut rows, mut failed) = (path.to_owned(), 0u64, false);
    Ok(std::iter::from_fn(move || {
        if failed {
            return None;
        }
        match next_batch(&mut reader)? {
            Ok(batch) => {
                rows += batch.num_rows() as u64;
                Some(Ok(batch))
            }
            Err(e) => {
                failed = true;
                let what = format!("cannot decode rows after row {rows}: {e} (the file looks truncated or corrupt)");
                Some(Err(Error::capture(&path, what)))
            }
        }
    }))
}

thread_local! {
    /// Set while this thread runs the Parquet decoder under `next_batch`.
    static DECODING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Installs, once per process, a panic hook that stays silent for a panic of
/// the Parquet decoder inside [`next_batch`] (which reports it as the
/// capture's error) and hands every other panic to the hook it replaces.
/// Without it, each corrupt page printed the decoder's assertion and a
/// backtrace before tokenscan's own message.
fn quiet_decoder_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !DECODING.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
}

/// `reader.next()`, with a panic of the Parquet decoder turned into an error:
/// it asserts on some corrupt pages (a bit width over 64, found by fuzzing).
fn next_batch(reader: &mut ParquetRecordBatchReader) -> Option<std::result::Result<RecordBatch, String>> {
    quiet_decoder_panics();
    DECODING.with(|d| d.set(true));
    let next = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reader.next()));
    DECODING.with(|d| d.set(false));
    match next {
        Ok(next) => next.map(|r| r.map_err(|e| e.to_string())),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Some(Err(format!("the Parquet decoder failed on corrupt data ({what})")))
        }
    }
}

impl Iterator for ParquetBatches {
    type Item = Result<EventBatch>;
    fn next(&mut self) -> Option<Self::Item> {
        let Some(batch) = next_batch(&mut self.reader) else {
            // The pages ran out before (or after) the rows the footer declares.
            if self.next_index != self.end {
                let error = Error::capture(
                    &self.path,
                    format!(
                        "the Parquet footer declares {} events here but the data holds {} (the file looks truncated or corrupt)",
                        self.declared.end - self.declared.start,
                        self.next_index - self.declared.start
                    ),
                );
                self.end = self.next_index;
                return Some(Err(error));
            }
            return None;
        };
        let batch = match batch {
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

/// Reads the projected columns of the given rows (offsets within `row_group`,
/// strictly increasing) and nothing else: late materialization of the
/// columns only findings need. Returns the canonical columns, one value per
/// requested row, in the order given.
pub(crate) fn read_rows(
    path: &Path,
    meta: &ParquetMeta,
    map: &ColumnMap,
    projection: Projection,
    row_group: usize,
    rows: &[u64],
) -> Result<[Option<ArrayRef>; Column::COUNT]> {
    let rg_start: u64 = meta.row_group_rows[..row_group].iter().sum();
    let rg_rows = meta.row_group_rows[row_group];
    let mut selectors = Vec::with_capacity(rows.len() * 2 + 1);
    let mut at = 0u64;
    for &r in rows {
        if r < at || r >= rg_rows {
            return Err(Error::capture(path, format!("internal: row {r} is not a new row of row group {row_group}")));
        }
        if r > at {
            selectors.push(RowSelector::skip((r - at) as usize));
        }
        selectors.push(RowSelector::select(1));
        at = r + 1;
    }
    if at < rg_rows {
        selectors.push(RowSelector::skip((rg_rows - at) as usize));
    }
    let first = rg_start + rows.first().copied().unwrap_or(0);
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let roots = map.file_indices(projection);
    check_dictionaries(path, &file, meta, [row_group], &roots)?;
    let file = PositionalFile::new(file);
    // Flat columns are picked out of their pages (`sparse`); the others, and
    // any the picking cannot read, through the crate's row selection.
    let pq = meta.reader_meta.metadata();
    let descr = pq.file_metadata().schema_descr();
    // Each root's name and, when picked, its values.
    let mut columns: Vec<(&str, Option<ArrayRef>)> = Vec::with_capacity(roots.len());
    let mut rest: Vec<usize> = Vec::new();
    for &root in &roots {
        let name = descr.root_schema().get_fields()[root].name();
        let target = meta.reader_meta.schema().field_with_name(name).ok().map(|f| f.data_type().clone());
        let leaf = flat_leaf(descr, root);
        let array =
            leaf.zip(target).and_then(|(leaf, t)| super::sparse::read_rows(&file, pq, row_group, leaf, &t, rows));
        if array.is_none() {
            rest.push(root);
        }
        columns.push((name, array));
    }
    let rest_batch = match rest.is_empty() {
        true => None,
        false => Some(read_rows_selected(path, meta, file, row_group, rest, selectors, rows.len(), rg_rows, first)?),
    };
    let mut fields = Vec::with_capacity(columns.len());
    let mut arrays = Vec::with_capacity(columns.len());
    for (name, array) in columns {
        let array = array.unwrap_or_else(|| {
            let batch = rest_batch.as_ref().expect("a column not picked is read by the crate");
            let (i, _) = batch.schema().column_with_name(name).expect("the crate reads the columns asked for");
            batch.column(i).clone()
        });
        fields.push(Field::new(name, array.data_type().clone(), true));
        arrays.push(array);
    }
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(rows.len()));
    let batch = RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), arrays, &options)
        .map_err(|e| Error::capture(path, format!("cannot assemble events: {e}")))?;
    // A null where the format allows none is named at its own event.
    for c in projection.columns() {
        if c.nullable() {
            continue;
        }
        if let Some((i, _)) = batch.schema().column_with_name(c.name()) {
            let a = batch.column(i);
            if let Some(pos) = (0..a.len()).find(|&k| a.is_null(k)) {
                return Err(Error::capture(
                    path,
                    format!(
                        "column `{c}` is null at event {}, but the format does not allow nulls there",
                        rg_start + rows[pos]
                    ),
                ));
            }
        }
    }
    normalize_columns(path, &batch, projection, first)
}

/// The leaf column of root column `root` when it is flat (its own one leaf).
fn flat_leaf(descr: &parquet::schema::types::SchemaDescriptor, root: usize) -> Option<usize> {
    let mut leaves = (0..descr.num_columns()).filter(|&i| descr.get_column_root_idx(i) == root);
    let leaf = leaves.next()?;
    (leaves.next().is_none() && descr.column(leaf).path().parts().len() == 1).then_some(leaf)
}

/// Some rows of some root columns of one row group through the crate's row
/// selection (`selectors`: the rows' selection over the whole row group).
#[allow(clippy::too_many_arguments)]
fn read_rows_selected(
    path: &Path,
    meta: &ParquetMeta,
    file: PositionalFile,
    row_group: usize,
    roots: Vec<usize>,
    selectors: Vec<RowSelector>,
    wanted: usize,
    rg_rows: u64,
    first: u64,
) -> Result<RecordBatch> {
    let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta.reader_meta.clone());
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let mut reader = builder
        .with_projection(mask)
        .with_row_groups(vec![row_group])
        .with_row_selection(RowSelection::from(selectors))
        .with_batch_size(wanted.max(1))
        .build()
        .map_err(|e| parquet_error(path, "cannot set up reading", e))?;
    let mut parts = Vec::new();
    while let Some(batch) = next_batch(&mut reader) {
        parts.push(batch.map_err(|e| {
            Error::capture(
                path,
                format!("cannot decode events after event {first}: {e} (the file looks truncated or corrupt)"),
            )
        })?);
    }
    let got: usize = parts.iter().map(RecordBatch::num_rows).sum();
    if got != wanted {
        return Err(Error::capture(
            path,
            format!(
                "the Parquet footer declares {rg_rows} events in row group {row_group} but the data holds fewer (the file looks truncated or corrupt)"
            ),
        ));
    }
    match parts.len() {
        1 => Ok(parts.pop().expect("one part")),
        _ => {
            let schema = parts.first().map(|b| b.schema()).unwrap_or_else(|| Arc::new(Schema::empty()));
            arrow_select::concat::concat_batches(&schema, &parts)
                .map_err(|e| Error::capture(path, format!("cannot assemble events: {e}")))
        }
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
            // LZ4_RAW decodes about 25% faster than zstd for ~20% larger files on
            // realistic captures (BENCHMARKS.md); replay speed wins.
            compression: Compression::LZ4_RAW,
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
            // Keep high-cardinality columns (paths) dictionary-encoded for the whole row group:
            // replay then judges each distinct path once (see BENCHMARKS.md).
            .set_dictionary_page_size_limit(16 << 20)
            // `time` grows with every event: a dictionary of it is as large as
            // the column and, at that page size limit, swallows whole row
            // groups. Differences bit-packed are a tenth of its size and
            // cheap to decode or skip when findings read it late.
            .set_column_dictionary_enabled(ColumnPath::from(Column::Time.name()), false)
            .set_column_encoding(ColumnPath::from(Column::Time.name()), Encoding::DELTA_BINARY_PACKED)
            .set_key_value_metadata(Some(kv))
            .build();
        let writer = ArrowWriter::try_new(sink, schema(), Some(props))
            .map_err(|e| Error::Output { path: path.clone(), message: e.to_string() })?;
        Ok(ParquetCaptureWriter { path, writer, rows: 0 })
    }

    /// Appends a batch that has every column of the format (dictionary-encoded strings are fine).
    pub fn write(&mut self, batch: &EventBatch) -> Result<()> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(Column::COUNT);
        for c in Column::ALL {
            let a = batch.column(c).ok_or_else(|| Error::Output {
                path: self.path.clone(),
                message: format!("cannot write a capture without column `{c}`"),
            })?;
            columns.push(plain(a)?);
        }
        let rb = RecordBatch::try_new(schema(), columns)
            .map_err(|e| Error::Output { path: self.path.clone(), message: e.to_string() })?;
        self.write_record_batch(&rb)
    }

    /// Appends an Arrow record batch built directly in the canonical schema
    /// ([`schema()`]: same column names, order and types, plain `Utf8`
    /// strings), as a producer such as the recorder does. Any other layout is
    /// an [`Error::Output`] naming the first column that differs.
    pub fn write_record_batch(&mut self, rb: &RecordBatch) -> Result<()> {
        let canonical = schema();
        let fields = rb.schema_ref().fields().clone();
        if fields.len() != canonical.fields().len() {
            return Err(Error::Output {
                path: self.path.clone(),
                message: format!("a capture batch needs {} columns, got {}", canonical.fields().len(), fields.len()),
            });
        }
        for (want, got) in canonical.fields().iter().zip(fields.iter()) {
            if want.name() != got.name() || want.data_type() != got.data_type() {
                return Err(Error::Output {
                    path: self.path.clone(),
                    message: format!(
                        "column `{}` of type {} where the capture format has `{}` of type {}",
                        got.name(),
                        got.data_type(),
                        want.name(),
                        want.data_type()
                    ),
                });
            }
        }
        self.writer.write(rb).map_err(|e| Error::Output { path: self.path.clone(), message: e.to_string() })?;
        self.rows += rb.num_rows() as u64;
        Ok(())
    }

    /// Adds a key-value pair to the file metadata written by [`ParquetCaptureWriter::close`],
    /// for values only known at the end (stop time, lost events).
    pub fn append_metadata(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.writer.append_key_value_metadata(KeyValue::new(key.into(), value.into()));
    }

    /// Bytes written to the sink so far plus the estimated encoded size of the
    /// row group in progress: what the file would about weigh if closed now.
    pub fn size_estimate(&self) -> u64 {
        (self.writer.bytes_written() + self.writer.in_progress_size()) as u64
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow_array::UInt64Array;

    use super::*;
    use crate::capture::{Capture, CaptureBuilder, EventKind, Projection};

    fn one_row_batch() -> RecordBatch {
        batch_at(&[1_700_000_000_000_000_000])
    }

    /// One exec event per time given.
    fn batch_at(times: &[i64]) -> RecordBatch {
        let mut b = CaptureBuilder::default();
        for &t in times {
            append_exec(&mut b, t);
        }
        let batch = b.finish_record_batch();
        assert_eq!(batch.schema(), schema());
        batch
    }

    fn append_exec(b: &mut CaptureBuilder, time: i64) {
        b.time.append(time);
        b.kind.append(EventKind::Exec);
        b.host.append("node-a");
        b.pid.append(10);
        b.tid.append(10);
        b.ppid.append(1);
        b.uid.append(0);
        b.gid.append(0);
        b.comm.append("cat");
        b.exe.append(Some("/usr/bin/cat"));
        b.args.append(Some(["cat", "/run/secrets/kubernetes.io/serviceaccount/token"].map(Some)));
        b.path.append(Some("/usr/bin/cat"));
        b.requested_path.append(Some("/bin/cat"));
        b.flags.append(None);
        b.result.append(Some(0));
        b.tty.append(Some("pts/0"));
        b.cgroup_id.append(42);
        b.container_id.append(None::<&str>);
        b.append_v2_nulls();
        b.append_v3_nulls();
    }

    #[test]
    fn time_is_written_as_bit_packed_differences_and_reads_back_exactly() {
        // 200,000 events a few microseconds apart, some out of order (a
        // recorder's per-CPU buffers interleave): differences fit in 13 bits
        // where a plain or dictionary-encoded `time` takes 8 bytes per event.
        let mut times = Vec::new();
        let mut t = 1_700_000_000_000_000_000i64;
        for i in 0..200_000i64 {
            t += (i * 7919) % 4096;
            times.push(if i % 1000 == 999 { t - 3000 } else { t });
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.parquet");
        let mut w = ParquetCaptureWriter::new(File::create(&path).unwrap(), &path, WriterOptions::default()).unwrap();
        w.write_record_batch(&batch_at(&times)).unwrap();
        w.close().unwrap();

        let reader = parquet::file::reader::SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
        use parquet::file::reader::FileReader;
        let chunk = reader.metadata().row_group(0).column(Column::Time.index());
        assert_eq!(chunk.column_path().string(), "time");
        assert!(
            chunk.encodings().any(|e| e == Encoding::DELTA_BINARY_PACKED),
            "{:?}",
            chunk.encodings().collect::<Vec<_>>()
        );
        assert_eq!(chunk.dictionary_page_offset(), None, "no dictionary page for `time`");
        assert!(
            chunk.uncompressed_size() < 2 * times.len() as i64,
            "{} bytes for {} events",
            chunk.uncompressed_size(),
            times.len()
        );

        let mut read = Vec::new();
        let options = crate::replay::ReplayOptions::default();
        let time = |_: &Path, b: EventBatch| {
            let a = arrow_array::cast::AsArray::as_primitive::<arrow_array::types::TimestampNanosecondType>(
                b.expect(Column::Time),
            )
            .clone();
            Ok(a.values().to_vec())
        };
        crate::driver::read_events(&[&path], Projection::all(), &options, time, &mut |t| {
            read.extend(t);
            Ok(())
        })
        .unwrap();
        assert_eq!(read, times);
    }

    #[test]
    fn the_positional_reader_reads_what_the_file_holds_and_says_when_it_ends() {
        use parquet::file::reader::{ChunkReader, Length};
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bytes");
        let content: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let file = PositionalFile::new(File::open(&path).unwrap());
        assert_eq!(file.len(), 5000);
        // A read from a position runs on past the header buffer's size.
        let mut all = Vec::new();
        file.get_read(100).unwrap().read_to_end(&mut all).unwrap();
        assert_eq!(all, content[100..]);
        // Two readers do not share a position.
        let (mut a, mut b) = (file.get_read(10).unwrap(), file.get_read(20).unwrap());
        let (mut x, mut y) = ([0u8; 4], [0u8; 4]);
        a.read_exact(&mut x).unwrap();
        b.read_exact(&mut y).unwrap();
        assert_eq!((&x[..], &y[..]), (&content[10..14], &content[20..24]));
        assert_eq!(file.get_bytes(4990, 10).unwrap().as_ref(), &content[4990..]);
        let short = file.get_bytes(4990, 11).unwrap_err().to_string();
        assert!(short.contains("EOF") && short.contains("read only 10"), "{short}");
    }

    #[test]
    fn an_all_null_string_column_is_read_plain_and_a_filled_one_as_a_dictionary() {
        // Written by the crate's defaults (dictionary pages, statistics),
        // as pyarrow writes: `container_id` is null in every event.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.parquet");
        let batch = batch_at(&[1, 2, 3]);
        let mut w = ArrowWriter::try_new(File::create(&path).unwrap(), batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let meta = read_footer(&path).unwrap();
        let read_as = |c: Column| meta.reader_meta.schema().field_with_name(c.name()).unwrap().data_type().clone();
        let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        assert_eq!(read_as(Column::Comm), dictionary);
        assert_eq!(read_as(Column::ContainerId), DataType::Utf8);
        // And the events read back as written.
        let capture = Capture::open(&path).unwrap();
        let options = crate::replay::ReplayOptions::default();
        let mut seen = Vec::new();
        let read = |_: &Path, b: EventBatch| {
            Ok((0..b.len())
                .map(|i| {
                    (b.str_value(Column::Comm, i).map(str::to_string), b.str_value(Column::ContainerId, i).is_none())
                })
                .collect::<Vec<_>>())
        };
        crate::driver::read_events(&[capture.path()], Projection::all(), &options, read, &mut |rows| {
            seen.extend(rows);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![(Some("cat".to_string()), true); 3]);
    }

    #[test]
    fn record_batches_and_late_metadata_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.parquet");
        let file = File::create(&path).unwrap();
        let options = WriterOptions { metadata: BTreeMap::from([("a".into(), "1".into())]), ..Default::default() };
        let mut w = ParquetCaptureWriter::new(file, &path, options).unwrap();
        w.write_record_batch(&one_row_batch()).unwrap();
        w.write_record_batch(&one_row_batch()).unwrap();
        assert_eq!(w.rows(), 2);
        assert!(w.size_estimate() > 0);
        w.append_metadata("tokenscan.lost_events", "0");
        w.close().unwrap();

        let capture = Capture::open(&path).unwrap();
        assert_eq!(capture.num_rows(), Some(2));
        assert_eq!(capture.metadata().get("a").map(String::as_str), Some("1"));
        assert_eq!(capture.metadata().get("tokenscan.lost_events").map(String::as_str), Some("0"));
        let mut tty = Vec::new();
        let options = crate::replay::ReplayOptions::default();
        let first_tty = |_: &Path, b: EventBatch| Ok(b.str_value(Column::Tty, 0).map(str::to_string));
        crate::driver::read_events(&[&path], Projection::all(), &options, first_tty, &mut |t| {
            tty.push(t);
            Ok(())
        })
        .unwrap();
        assert_eq!(tty, [Some("pts/0".to_string())]);
    }

    #[test]
    fn record_batch_in_another_layout_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.parquet");
        let mut w = ParquetCaptureWriter::new(File::create(&path).unwrap(), &path, WriterOptions::default()).unwrap();
        let rb = one_row_batch();
        let narrow = rb.project(&[0, 1]).unwrap();
        let e = w.write_record_batch(&narrow).unwrap_err().to_string();
        assert!(e.contains(&format!("needs {} columns, got 2", Column::COUNT)), "{e}");
        let mut columns = rb.columns().to_vec();
        columns[3] = Arc::new(UInt64Array::from(vec![10]));
        let mut fields: Vec<_> = schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields[3] = arrow_schema::Field::new("pid", DataType::UInt64, false);
        let wrong = RecordBatch::try_new(Arc::new(arrow_schema::Schema::new(fields)), columns).unwrap();
        let e = w.write_record_batch(&wrong).unwrap_err().to_string();
        assert!(e.contains("column `pid` of type UInt64"), "{e}");
    }
}
