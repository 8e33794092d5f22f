//! Opening captures: format detection, schema checks, batch iteration.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use arrow_schema::SchemaRef;

use super::ndjson::NdjsonBatches;
use super::normalize::ColumnMap;
use super::parquet_io::{ParquetBatches, ParquetMeta};
use super::{Column, EventBatch, Projection, READABLE_VERSIONS, VERSION_KEY};
use crate::error::{Error, Result};

/// The on-disk form of a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureFormat {
    /// Apache Parquet (the primary form).
    Parquet,
    /// Newline-delimited JSON, one event per line (the human-readable twin).
    Ndjson,
}

impl CaptureFormat {
    /// Detects the format from the file's first bytes, falling back to its extension.
    fn detect(path: &Path) -> Result<CaptureFormat> {
        let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut head = [0u8; 4];
        let mut n = 0;
        while n < 4 {
            match f.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(path, e)),
            }
        }
        if n == 4 && &head == b"PAR1" {
            return Ok(CaptureFormat::Parquet);
        }
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        if super::NDJSON_EXTENSIONS.contains(&ext.as_str()) {
            return Ok(CaptureFormat::Ndjson);
        }
        let first = head[..n].iter().find(|b| !b.is_ascii_whitespace());
        if first == Some(&b'{') {
            return Ok(CaptureFormat::Ndjson);
        }
        if n == 0 {
            return Err(Error::capture(path, "the file is empty: not a Parquet or NDJSON capture"));
        }
        Err(Error::capture(
            path,
            "not a Parquet file (no PAR1 magic bytes at the start) and not NDJSON; is this a capture?",
        ))
    }
}

/// An opened capture file whose schema has been checked.
#[derive(Debug)]
pub struct Capture {
    path: PathBuf,
    format: CaptureFormat,
    metadata: BTreeMap<String, String>,
    num_rows: Option<u64>,
    file_schema: Option<SchemaRef>,
    map: Option<ColumnMap>,
    parquet: Option<ParquetMeta>,
}

impl Capture {
    /// Opens a capture, detects its format and checks its schema.
    ///
    /// Fails with a message naming the file (and the column) when the file is
    /// missing, not a capture, corrupt, of an unsupported version, or lacks a
    /// required column.
    pub fn open(path: impl AsRef<Path>) -> Result<Capture> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            return Err(Error::capture(path, "is a directory; use expand_paths() to list its captures"));
        }
        refuse_special(path, &meta)?;
        match CaptureFormat::detect(path)? {
            CaptureFormat::Parquet => {
                let meta = super::parquet_io::read_footer(path)?;
                check_version(path, &meta.metadata)?;
                let map = ColumnMap::check(path, &meta.file_schema)?;
                Ok(Capture {
                    path: path.to_owned(),
                    format: CaptureFormat::Parquet,
                    metadata: meta.metadata.clone(),
                    num_rows: Some(meta.rows),
                    file_schema: Some(meta.file_schema.clone()),
                    map: Some(map),
                    parquet: Some(meta),
                })
            }
            CaptureFormat::Ndjson => Ok(Capture {
                path: path.to_owned(),
                format: CaptureFormat::Ndjson,
                metadata: BTreeMap::new(),
                num_rows: None,
                file_schema: None,
                map: None,
                parquet: None,
            }),
        }
    }

    /// The path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Parquet or NDJSON.
    pub fn format(&self) -> CaptureFormat {
        self.format
    }
    /// File key-value metadata (empty for NDJSON).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }
    /// Number of events, when the file says so without being read (Parquet).
    pub fn num_rows(&self) -> Option<u64> {
        self.num_rows
    }
    /// The file's own Arrow schema (Parquet only), before normalization.
    pub fn file_schema(&self) -> Option<&SchemaRef> {
        self.file_schema.as_ref()
    }

    /// Iterates over the events in batches of at most `batch_size` rows,
    /// reading only the projected columns (`kind` is always read). Commands
    /// read captures through [`crate::driver`] instead (in parallel, with the
    /// same options and error handling everywhere); this serial reader is for
    /// tests and tools. Lists of strings (`args`) come as plain
    /// `List(Utf8)`, whatever the file's encoding.
    pub fn batches(&self, projection: Projection, batch_size: usize) -> Result<EventBatches> {
        let batches = self.read(projection, batch_size, None)?;
        Ok(EventBatches { inner: Box::new(batches.map(|b| b.map(EventBatch::with_plain_lists))) })
    }

    /// Units of independent work: the row groups of a Parquet capture (1 for NDJSON).
    /// Replay decodes and evaluates units in parallel.
    pub fn units(&self) -> usize {
        self.parquet.as_ref().map_or(1, |m| m.row_group_rows.len())
    }

    /// Events in each unit, when known without reading (Parquet).
    pub fn unit_rows(&self) -> Option<&[u64]> {
        self.parquet.as_ref().map(|m| m.row_group_rows.as_slice())
    }

    /// The earliest and latest timestamp (nanoseconds) of each unit, as the
    /// file's statistics say without reading it; `None` for a unit they say
    /// nothing exact about, and for an NDJSON capture. A unit's events may
    /// come in any order; none is outside its range. Replay trusts them (as
    /// Parquet readers trust statistics to skip row groups): to order the
    /// stage events of sequences, and for the summary's time range without
    /// decoding `time` for every event.
    pub fn unit_time_ranges(&self) -> Option<&[Option<(i64, i64)>]> {
        self.parquet.as_ref().map(|m| m.row_group_time.as_slice())
    }

    /// Like [`Capture::batches`], for one unit (see [`Capture::units`]); event
    /// indexes stay relative to the whole capture. Only the driver
    /// ([`crate::driver`]) and the fuzz targets read units. Unlike
    /// [`Capture::batches`], the elements of a list of strings stay
    /// dictionary-encoded where the file stores them so
    /// (`List(Dictionary(Int32, Utf8))`, for the rules); the driver hands
    /// consumers plain lists.
    pub fn unit_batches(&self, unit: usize, projection: Projection, batch_size: usize) -> Result<EventBatches> {
        self.piece_batches(&Piece { unit, rows: None }, projection, batch_size)
    }

    /// Like [`Capture::unit_batches`], for one piece of a unit (see
    /// [`Capture::pieces`]).
    pub fn piece_batches(&self, piece: &Piece, projection: Projection, batch_size: usize) -> Result<EventBatches> {
        match self.format {
            CaptureFormat::Parquet => self.read(projection, batch_size, Some(piece)),
            CaptureFormat::Ndjson => self.read(projection, batch_size, None),
        }
    }

    /// The pieces of work replay hands to `threads` threads, in capture
    /// order: the units ([`Capture::units`]), with the last `units % threads`
    /// of them each cut into `threads` ranges of rows, so that the threads
    /// finish together instead of one reading the last unit alone while the
    /// others wait (pyarrow's 1 Mi-row groups make a capture of 5 million
    /// events five units: on two threads the fifth ran alone). The reader
    /// of a later range skips the pages of a flat column before it without
    /// decompressing them. An NDJSON capture is one piece.
    pub fn pieces(&self, threads: usize) -> Vec<Piece> {
        let whole = |unit| Piece { unit, rows: None };
        let Some(rows) = self.unit_rows() else { return vec![whole(0)] };
        let threads = threads.max(1) as u64;
        let cut_from = rows.len() - rows.len() % threads as usize;
        let mut pieces: Vec<Piece> = (0..cut_from).map(whole).collect();
        for (unit, &n) in rows.iter().enumerate().skip(cut_from) {
            if n < threads * MIN_PIECE_ROWS {
                pieces.push(whole(unit));
                continue;
            }
            let bounds: Vec<u64> = (0..=threads).map(|k| n * k / threads).collect();
            pieces.extend(bounds.windows(2).map(|w| Piece { unit, rows: Some(w[0]..w[1]) }));
        }
        pieces
    }

    /// Whether `Capture::read_unit_rows` can read single rows of a unit without
    /// reading the rest (Parquet, by row selection); NDJSON cannot.
    pub fn reads_rows_selectively(&self) -> bool {
        self.format == CaptureFormat::Parquet
    }

    /// The projected columns of some rows of a Parquet unit: `rows` are
    /// offsets within the unit, strictly increasing. The replay reads the
    /// columns only findings need this way, for the rows that fired.
    pub(crate) fn read_unit_rows(
        &self,
        unit: usize,
        projection: Projection,
        rows: &[u64],
    ) -> Result<[Option<arrow_array::ArrayRef>; Column::COUNT]> {
        let (Some(map), Some(meta)) = (self.map.as_ref(), self.parquet.as_ref()) else {
            return Err(Error::capture(&self.path, "internal: rows can only be read selectively from Parquet"));
        };
        super::parquet_io::read_rows(&self.path, meta, map, projection, unit, rows)
    }

    fn read(&self, projection: Projection, batch_size: usize, piece: Option<&Piece>) -> Result<EventBatches> {
        let mut projection = projection;
        projection.insert(Column::Kind);
        let batch_size = batch_size.max(1);
        let inner: Box<dyn Iterator<Item = Result<EventBatch>> + Send> = match self.format {
            CaptureFormat::Parquet => {
                let map = self.map.as_ref().expect("parquet captures carry a column map");
                let meta = self.parquet.as_ref().expect("parquet captures carry their footer");
                Box::new(ParquetBatches::open(&self.path, meta, map, projection, batch_size, piece)?)
            }
            CaptureFormat::Ndjson => Box::new(NdjsonBatches::open(&self.path, projection, batch_size)?),
        };
        Ok(EventBatches { inner })
    }
}

fn check_version(path: &Path, metadata: &BTreeMap<String, String>) -> Result<()> {
    match metadata.get(VERSION_KEY) {
        None => Ok(()),
        Some(v) if READABLE_VERSIONS.contains(&v.as_str()) => Ok(()),
        Some(v) => Err(Error::capture(
            path,
            format!(
                "capture format version {v:?} is not supported by this tokenscan (it reads versions {} and {})",
                READABLE_VERSIONS[..READABLE_VERSIONS.len() - 1].join(", "),
                READABLE_VERSIONS[READABLE_VERSIONS.len() - 1]
            ),
        )),
    }
}

/// Units smaller than this many rows per thread are not cut into pieces.
const MIN_PIECE_ROWS: u64 = 16 * 1024;

/// Work for one thread of the replay: a unit of a capture, whole or a range
/// of its rows ([`Capture::pieces`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// The unit ([`Capture::units`]).
    pub unit: usize,
    /// Rows of the unit, as offsets within it; `None` for all of them.
    pub rows: Option<std::ops::Range<u64>>,
}

/// An iterator over a capture's event batches.
pub struct EventBatches {
    inner: Box<dyn Iterator<Item = Result<EventBatch>> + Send>,
}

impl Iterator for EventBatches {
    type Item = Result<EventBatch>;
    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next()
    }
}

/// Expands the user's capture arguments: a file stays itself; a directory
/// becomes its `*.parquet`, `*.ndjson` and `*.jsonl` files (not recursive),
/// sorted by name so segments replay in order.
pub fn expand_paths<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let p = p.as_ref();
        let meta = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
        if !meta.is_dir() {
            out.push(p.to_owned());
            continue;
        }
        let mut files = Vec::new();
        for entry in std::fs::read_dir(p).map_err(|e| Error::io(p, e))? {
            let entry = entry.map_err(|e| Error::io(p, e))?;
            let path = entry.path();
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
            if path.is_file() && (ext == "parquet" || super::NDJSON_EXTENSIONS.contains(&ext.as_str())) {
                files.push(path);
            }
        }
        if files.is_empty() {
            return Err(Error::capture(p, "directory holds no capture files (*.parquet, *.ndjson, *.jsonl)"));
        }
        files.sort();
        out.extend(files);
    }
    Ok(out)
}

/// Refuses a path that is not a regular file, before it is opened: a
/// capture (or a findings file) is opened several times and read by
/// position. A named pipe (`<(zcat capture.ndjson.gz)`) gave its bytes to
/// the format check, and the next open waited for a writer forever; with no
/// writer at all, the first open did.
pub(crate) fn refuse_special(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    match meta.is_file() {
        true => Ok(()),
        false => Err(Error::capture(
            path,
            "is not a regular file (a pipe or a device): tokenscan reads its input more than once and by position; save it to a file first",
        )),
    }
}
