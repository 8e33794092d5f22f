//! The values of a few rows of a flat Parquet column chunk, read without the
//! `parquet` crate's row selection ([`read_rows`]).
//!
//! A replay reads the columns only findings need (`time`, `pid`, `exe`, ...)
//! for the rows that fired, after the rules' pass: a few thousand rows of a
//! row group of a million, one every few hundred rows. Through the crate's
//! `RowSelection` every one of those rows costs a selector of its own, and
//! each selector a skip through every column's record reader, definition
//! levels and value decoder: on a 5M-event capture that was 18% of a
//! `--no-context` replay's CPU, more than reading the same columns whole.
//!
//! Here the crate still reads and decompresses the pages, up to the one
//! holding the last wanted row; the wanted values are then
//! picked out of each page directly: definition levels and dictionary keys
//! are walked run by run (a run of the RLE/bit-packed hybrid encoding is
//! skipped whole, a bit-packed value read at its own bit offset), PLAIN
//! values of fixed width indexed, PLAIN byte arrays walked by their lengths.
//!
//! Only what that covers is read here: a flat column (no repetition, at most
//! one definition level) of physical type INT32, INT64 or BYTE_ARRAY, its
//! pages PLAIN or dictionary-encoded, read as the Arrow type the crate would
//! give it with no conversion of values. Anything else, and any page these
//! walks cannot make sense of, returns `None`: the caller reads the column
//! through the crate, which then reports a damaged file as it always did.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Int32Array, Int64Array, StringArray};
use arrow_schema::{DataType, TimeUnit};
use parquet::basic::{Encoding, LogicalType, Type as PhysicalType};
use parquet::column::page::{Page, PageReader};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::serialized_reader::SerializedPageReader;

use super::parquet_io::PositionalFile;

/// The values of `rows` (offsets within row group `row_group`, strictly
/// increasing) of leaf column `leaf`, as an array of type `target` (the type
/// the crate's reader would produce for it), or `None` when this reader does
/// not cover the column or cannot make sense of its pages.
pub(crate) fn read_rows(
    file: &PositionalFile,
    meta: &ParquetMetaData,
    row_group: usize,
    leaf: usize,
    target: &DataType,
    rows: &[u64],
) -> Option<ArrayRef> {
    let rg = meta.row_groups().get(row_group)?;
    let chunk = rg.columns().get(leaf)?;
    let descr = chunk.column_descr();
    if descr.max_rep_level() != 0 || descr.max_def_level() > 1 {
        return None;
    }
    let width = value_kind(descr.physical_type(), descr.logical_type_ref(), target)?;
    let total_rows = usize::try_from(rg.num_rows()).ok()?;
    let mut pages = SerializedPageReader::new(Arc::new(file.clone()), chunk, total_rows, None).ok()?;
    let mut picked = Picked::new(width, rows.len());
    let mut dictionary: Option<Dictionary> = None;
    let mut page_start = 0u64;
    let mut next = 0usize;
    let optional = descr.max_def_level() == 1;
    // Pages are read up to the last wanted row. (Not skipped unread before
    // the first: the crate's look at a page's header without reading it,
    // `peek_next_page`, panics on some damaged headers.)
    while next < rows.len() {
        let page = pages.get_next_page().ok()??;
        // A data page's definition levels (None: a required column), values, encoding and rows.
        let (levels, values, encoding, n) = match &page {
            Page::DictionaryPage { buf, num_values, encoding, .. } => {
                if !matches!(encoding, Encoding::PLAIN | Encoding::PLAIN_DICTIONARY) {
                    return None;
                }
                dictionary = Some(Dictionary::new(buf.clone(), *num_values as usize, width)?);
                continue;
            }
            Page::DataPage { buf, num_values, encoding, def_level_encoding, .. } => {
                if optional && *def_level_encoding != Encoding::RLE {
                    return None;
                }
                // Version 1: the levels' byte length before them.
                let len = if optional { u32::from_le_bytes(buf.get(..4)?.try_into().ok()?) as usize } else { 0 };
                let levels = if optional { Some(buf.get(4..4 + len)?) } else { None };
                let values = buf.get(if optional { 4 + len } else { 0 }..)?;
                (levels, values, *encoding, *num_values as u64)
            }
            Page::DataPageV2 { buf, num_rows, encoding, def_levels_byte_len, rep_levels_byte_len, .. } => {
                if *rep_levels_byte_len != 0 {
                    return None;
                }
                let def_len = *def_levels_byte_len as usize;
                let levels = if optional { Some(buf.get(..def_len)?) } else { None };
                (levels, buf.get(def_len..)?, *encoding, *num_rows as u64)
            }
        };
        let wanted = wanted_in(rows, next, page_start + n);
        let data = DataPage { levels, values, encoding, rows: n as usize };
        data.pick(&rows[next..wanted], page_start, width, dictionary.as_ref(), &mut picked)?;
        next = wanted;
        page_start += n;
    }
    picked.into_array(target)
}

/// How the values of a column are stored, once its target type is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Width {
    /// 4-byte integers (INT32).
    Four,
    /// 8-byte integers (INT64).
    Eight,
    /// Byte arrays read as UTF-8 strings.
    Bytes,
}

/// The storage of a column of physical type `physical` and logical type
/// `logical` read as `target`, when the crate would read it with no change
/// to the values (bits reinterpreted at most).
fn value_kind(physical: PhysicalType, logical: Option<&LogicalType>, target: &DataType) -> Option<Width> {
    let int = |bits: i8, signed: bool| match logical {
        None => signed,
        Some(LogicalType::Integer(t)) => t.bit_width == bits && t.is_signed == signed,
        _ => false,
    };
    match (physical, target) {
        (PhysicalType::INT32, DataType::Int32) if int(32, true) => Some(Width::Four),
        (PhysicalType::INT32, DataType::UInt32) if int(32, false) => Some(Width::Four),
        (PhysicalType::INT64, DataType::Int64) if int(64, true) => Some(Width::Eight),
        (PhysicalType::INT64, DataType::UInt64) if int(64, false) => Some(Width::Eight),
        (PhysicalType::INT64, DataType::Timestamp(unit, _)) => {
            let stored = match logical {
                Some(LogicalType::Timestamp(t)) => t.unit,
                _ => return None,
            };
            let same = matches!(
                (unit, stored),
                (TimeUnit::Millisecond, parquet::basic::TimeUnit::MILLIS)
                    | (TimeUnit::Microsecond, parquet::basic::TimeUnit::MICROS)
                    | (TimeUnit::Nanosecond, parquet::basic::TimeUnit::NANOS)
            );
            same.then_some(Width::Eight)
        }
        (PhysicalType::BYTE_ARRAY, DataType::Utf8) => Some(Width::Bytes),
        (PhysicalType::BYTE_ARRAY, DataType::Dictionary(k, v)) if **k == DataType::Int32 && **v == DataType::Utf8 => {
            Some(Width::Bytes)
        }
        _ => None,
    }
}

/// The end of the wanted rows from `from` on that lie before `end`.
fn wanted_in(rows: &[u64], from: usize, end: u64) -> usize {
    from + rows[from..].partition_point(|&r| r < end)
}

/// The values picked so far, in row order (`None`: null).
enum Picked {
    Ints(Vec<Option<i64>>),
    Strings(Vec<Option<Vec<u8>>>),
}

impl Picked {
    fn new(width: Width, n: usize) -> Picked {
        match width {
            Width::Bytes => Picked::Strings(Vec::with_capacity(n)),
            _ => Picked::Ints(Vec::with_capacity(n)),
        }
    }

    fn push_null(&mut self) {
        match self {
            Picked::Ints(v) => v.push(None),
            Picked::Strings(v) => v.push(None),
        }
    }

    fn push(&mut self, value: Value<'_>) -> Option<()> {
        match (self, value) {
            (Picked::Ints(v), Value::Int(x)) => v.push(Some(x)),
            (Picked::Strings(v), Value::Bytes(b)) => v.push(Some(b.to_vec())),
            _ => return None,
        }
        Some(())
    }

    fn into_array(self, target: &DataType) -> Option<ArrayRef> {
        match self {
            Picked::Ints(v) => {
                let a: ArrayRef = match target {
                    DataType::Int32 | DataType::UInt32 => {
                        Arc::new(v.into_iter().map(|x| x.map(|x| x as i32)).collect::<Int32Array>())
                    }
                    _ => Arc::new(v.into_iter().collect::<Int64Array>()),
                };
                // The same bits as the type the crate gives (u32 as i32, a
                // timestamp as its i64), so only the type changes.
                let data = a.to_data().into_builder().data_type(target.clone()).build().ok()?;
                Some(arrow_array::make_array(data))
            }
            Picked::Strings(v) => {
                let strings: Vec<Option<&str>> = v
                    .iter()
                    .map(|b| b.as_deref().map(std::str::from_utf8).transpose())
                    .collect::<Result<_, _>>()
                    .ok()?;
                let a: ArrayRef = Arc::new(StringArray::from(strings));
                match target {
                    DataType::Utf8 => Some(a),
                    _ => arrow_cast::cast(&a, target).ok(),
                }
            }
        }
    }
}

/// One value of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value<'a> {
    Int(i64),
    Bytes(&'a [u8]),
}

/// A chunk's dictionary page, PLAIN-encoded.
struct Dictionary {
    buf: bytes::Bytes,
    /// Where each value starts (byte arrays: after its length), and its length.
    spans: Vec<(usize, usize)>,
}

impl Dictionary {
    fn new(buf: bytes::Bytes, n: usize, width: Width) -> Option<Dictionary> {
        let mut spans = Vec::with_capacity(n.min(buf.len()));
        let mut at = 0;
        for _ in 0..n {
            let (start, len) = plain_span(&buf, at, width)?;
            spans.push((start, len));
            at = start + len;
        }
        Some(Dictionary { buf, spans })
    }

    fn get(&self, key: u32, width: Width) -> Option<Value<'_>> {
        let &(start, len) = self.spans.get(key as usize)?;
        value_at(&self.buf[start..start + len], width)
    }
}

/// Where the PLAIN value at byte `at` of `buf` starts and how long it is.
fn plain_span(buf: &[u8], at: usize, width: Width) -> Option<(usize, usize)> {
    let (start, len) = match width {
        Width::Four => (at, 4),
        Width::Eight => (at, 8),
        Width::Bytes => (at + 4, u32::from_le_bytes(buf.get(at..at + 4)?.try_into().ok()?) as usize),
    };
    (start.checked_add(len)? <= buf.len()).then_some((start, len))
}

fn value_at(bytes: &[u8], width: Width) -> Option<Value<'_>> {
    Some(match width {
        Width::Four => Value::Int(i32::from_le_bytes(bytes.try_into().ok()?) as i64),
        Width::Eight => Value::Int(i64::from_le_bytes(bytes.try_into().ok()?)),
        Width::Bytes => Value::Bytes(bytes),
    })
}

/// One data page, decompressed: its definition levels (without v1's length
/// prefix; `None` for a required column) and its values.
struct DataPage<'a> {
    levels: Option<&'a [u8]>,
    values: &'a [u8],
    encoding: Encoding,
    rows: usize,
}

impl DataPage<'_> {
    /// Pushes the values of `rows` (offsets within the row group, all in this
    /// page, which starts at row `start`) onto `out`.
    fn pick(
        &self,
        rows: &[u64],
        start: u64,
        width: Width,
        dictionary: Option<&Dictionary>,
        out: &mut Picked,
    ) -> Option<()> {
        // Which of the page's values each wanted row holds (None: null).
        let mut slots: Vec<Option<usize>> = Vec::with_capacity(rows.len());
        match self.levels {
            None => slots.extend(rows.iter().map(|&r| Some((r - start) as usize))),
            Some(levels) => {
                let mut runs = Hybrid::new(levels, 1);
                let (mut run_start, mut values_before) = (0usize, 0usize);
                let mut run = runs.next_run()?;
                for &r in rows {
                    let r = (r - start) as usize;
                    if r >= self.rows {
                        return None;
                    }
                    while r >= run_start + run.count() {
                        values_before += run.ones(run.count())?;
                        run_start += run.count();
                        run = runs.next_run()?;
                    }
                    let k = r - run_start;
                    let defined = run.get(k)? == 1;
                    slots.push(defined.then(|| values_before + run.ones(k).unwrap_or(0)));
                }
            }
        }
        match self.encoding {
            Encoding::PLAIN => {
                let mut at = 0usize;
                let mut index = 0usize;
                for slot in slots {
                    let Some(k) = slot else {
                        out.push_null();
                        continue;
                    };
                    if width == Width::Bytes {
                        // Lengths walked from the last value picked.
                        while index < k {
                            let (s, len) = plain_span(self.values, at, width)?;
                            at = s + len;
                            index += 1;
                        }
                        let (s, len) = plain_span(self.values, at, width)?;
                        out.push(value_at(&self.values[s..s + len], width)?)?;
                    } else {
                        let w = if width == Width::Four { 4 } else { 8 };
                        let bytes = self.values.get(k.checked_mul(w)?..k.checked_mul(w)? + w)?;
                        out.push(value_at(bytes, width)?)?;
                    }
                }
            }
            Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY => {
                let dictionary = dictionary?;
                let (&bit_width, keys) = self.values.split_first()?;
                if bit_width > 32 {
                    return None;
                }
                let mut runs = Hybrid::new(keys, bit_width);
                let mut run_start = 0usize;
                let mut run: Option<Run<'_>> = None;
                for slot in slots {
                    let Some(k) = slot else {
                        out.push_null();
                        continue;
                    };
                    loop {
                        match &run {
                            Some(r) if k < run_start + r.count() => break,
                            Some(r) => {
                                run_start += r.count();
                                run = Some(runs.next_run()?);
                            }
                            None => run = Some(runs.next_run()?),
                        }
                    }
                    let key = run.as_ref()?.get(k - run_start)?;
                    out.push(dictionary.get(key, width)?)?;
                }
            }
            _ => return None,
        }
        Some(())
    }
}

/// The most values (or groups of 8) a run may claim: a page's value count
/// is a 32-bit number.
const MAX_RUN: u64 = u32::MAX as u64;

/// Parquet's RLE/bit-packed hybrid encoding, run by run.
struct Hybrid<'a> {
    buf: &'a [u8],
    at: usize,
    bit_width: u8,
}

/// One run of the hybrid encoding.
#[derive(Debug, Clone, Copy)]
enum Run<'a> {
    /// `count` times `value`.
    Repeated { count: usize, value: u32 },
    /// `count` values of `bit_width` bits each, packed from the lowest bit.
    Packed { count: usize, bytes: &'a [u8], bit_width: u8 },
}

impl<'a> Hybrid<'a> {
    fn new(buf: &'a [u8], bit_width: u8) -> Hybrid<'a> {
        Hybrid { buf, at: 0, bit_width }
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.at)?;
            self.at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    /// The next run that holds at least one value. A run claiming more
    /// values than a page can hold (its count is a 32-bit number) is
    /// refused, so that the walks' sums of counts cannot overflow.
    fn next_run(&mut self) -> Option<Run<'a>> {
        loop {
            let header = self.varint()?;
            if header >> 1 > MAX_RUN {
                return None;
            }
            let run = if header & 1 == 1 {
                let groups = (header >> 1) as usize;
                let len = groups.checked_mul(self.bit_width as usize)?;
                let bytes = self.buf.get(self.at..self.at.checked_add(len)?)?;
                self.at += len;
                Run::Packed { count: groups * 8, bytes, bit_width: self.bit_width }
            } else {
                let count = (header >> 1) as usize;
                let n = (self.bit_width as usize).div_ceil(8);
                let bytes = self.buf.get(self.at..self.at + n)?;
                self.at += n;
                let value = bytes.iter().rev().fold(0u32, |v, &b| (v << 8) | u32::from(b));
                Run::Repeated { count, value }
            };
            if run.count() > 0 {
                return Some(run);
            }
        }
    }
}

impl Run<'_> {
    fn count(&self) -> usize {
        match self {
            Run::Repeated { count, .. } | Run::Packed { count, .. } => *count,
        }
    }

    /// The run's `k`-th value.
    fn get(&self, k: usize) -> Option<u32> {
        match *self {
            Run::Repeated { value, .. } => Some(value),
            Run::Packed { bytes, bit_width, .. } => {
                if bit_width == 0 {
                    return Some(0);
                }
                let bit = k.checked_mul(bit_width as usize)?;
                let first = bit / 8;
                let mut word = [0u8; 8];
                let end = bytes.len().min(first + 8);
                word[..end.checked_sub(first)?].copy_from_slice(bytes.get(first..end)?);
                let v = u64::from_le_bytes(word) >> (bit % 8);
                Some((v & ((1u64 << bit_width) - 1)) as u32)
            }
        }
    }

    /// How many of the run's first `n` values are 1 (definition levels:
    /// values present).
    fn ones(&self, n: usize) -> Option<usize> {
        match *self {
            Run::Repeated { value, .. } => Some(if value == 1 { n } else { 0 }),
            Run::Packed { bytes, .. } => {
                let full = n / 8;
                let mut count: usize = bytes.get(..full)?.iter().map(|b| b.count_ones() as usize).sum();
                if n % 8 != 0 {
                    count += (bytes.get(full)? & ((1u8 << (n % 8)) - 1)).count_ones() as usize;
                }
                Some(count)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int32Type, TimestampNanosecondType, UInt32Type};
    use arrow_array::{RecordBatch, TimestampNanosecondArray, UInt32Array};
    use arrow_schema::{Field, Schema};
    use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
    use parquet::arrow::ArrowWriter;
    use parquet::basic::Compression;
    use parquet::file::properties::{WriterProperties, WriterVersion};
    use parquet::schema::types::ColumnPath;

    use super::*;

    const ROWS: usize = 5_000;

    /// The values written, row by row: a timestamp, a u32 with nulls, an
    /// i32, a string with nulls and many distinct values, a required string.
    fn value(row: usize) -> (i64, Option<u32>, i32, Option<String>, String) {
        let t = 1_700_000_000_000_000_000 + (row as i64) * 7_919;
        let u = (row % 7 != 3).then(|| (row as u32).wrapping_mul(2_654_435_761));
        let i = (row as i32 % 97) - 48;
        let s = (row % 5 != 0).then(|| format!("/proc/{}/exe-{}", row % 613, "x".repeat(row % 11)));
        let r = ["open", "exec", "exit"][row % 3].to_string();
        (t, u, i, s, r)
    }

    fn batch() -> RecordBatch {
        let rows: Vec<_> = (0..ROWS).map(value).collect();
        let schema = Schema::new(vec![
            Field::new("t", DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())), false),
            Field::new("u", DataType::UInt32, true),
            Field::new("i", DataType::Int32, false),
            Field::new("s", DataType::Utf8, true),
            Field::new("r", DataType::Utf8, false),
        ]);
        let t = TimestampNanosecondArray::from(rows.iter().map(|v| v.0).collect::<Vec<_>>()).with_timezone("UTC");
        let columns: Vec<ArrayRef> = vec![
            Arc::new(t),
            Arc::new(rows.iter().map(|v| v.1).collect::<UInt32Array>()),
            Arc::new(rows.iter().map(|v| v.2).collect::<Int32Array>()),
            Arc::new(rows.iter().map(|v| v.3.clone()).collect::<StringArray>()),
            Arc::new(rows.iter().map(|v| Some(v.4.clone())).collect::<StringArray>()),
        ];
        RecordBatch::try_new(Arc::new(schema), columns).unwrap()
    }

    /// Layouts a writer may choose: dictionary or plain pages, a dictionary
    /// that overflows into plain pages mid-chunk, version 1 and 2 data pages,
    /// several codecs; every one with small pages, so that a chunk has many.
    fn layouts() -> Vec<(&'static str, WriterProperties)> {
        let base = || {
            WriterProperties::builder()
                .set_data_page_size_limit(512)
                .set_write_batch_size(64)
                .set_max_row_group_row_count(Some(2_000))
        };
        vec![
            ("dictionary, v1, snappy", base().set_compression(Compression::SNAPPY).build()),
            ("plain, v1, uncompressed", base().set_dictionary_enabled(false).build()),
            ("dictionary overflowing into plain, lz4", {
                base().set_dictionary_page_size_limit(600).set_compression(Compression::LZ4_RAW).build()
            }),
            ("dictionary, v2 pages, snappy", {
                base().set_writer_version(WriterVersion::PARQUET_2_0).set_compression(Compression::SNAPPY).build()
            }),
            // (Version 2's own fallback is DELTA_*; PLAIN is asked for.)
            ("plain, v2 pages, uncompressed", {
                base()
                    .set_writer_version(WriterVersion::PARQUET_2_0)
                    .set_dictionary_enabled(false)
                    .set_encoding(Encoding::PLAIN)
                    .build()
            }),
        ]
    }

    fn write(dir: &std::path::Path, props: WriterProperties) -> std::path::PathBuf {
        let path = dir.join("layout.parquet");
        let b = batch();
        let mut w = ArrowWriter::try_new(File::create(&path).unwrap(), b.schema(), Some(props)).unwrap();
        w.write(&b).unwrap();
        w.close().unwrap();
        path
    }

    /// (metadata, file) of a file written by `write`.
    fn open(path: &std::path::Path) -> (ArrowReaderMetadata, PositionalFile) {
        let file = File::open(path).unwrap();
        let meta = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()).unwrap();
        (meta, PositionalFile::new(file))
    }

    /// Reads `rows` (offsets in the file) of every column, row group by row
    /// group, and checks them against the values written; returns how many
    /// columns were read here rather than left to the crate.
    fn check_rows(meta: &ArrowReaderMetadata, file: &PositionalFile, rows: &[usize], layout: &str) -> usize {
        let pq = meta.metadata();
        let mut own = 0;
        let mut start = 0usize;
        for (rg, group) in pq.row_groups().iter().enumerate() {
            let n = group.num_rows() as usize;
            let here: Vec<u64> =
                rows.iter().filter(|&&r| r >= start && r < start + n).map(|&r| (r - start) as u64).collect();
            for (leaf, field) in meta.schema().fields().iter().enumerate() {
                let Some(a) = read_rows(file, pq, rg, leaf, field.data_type(), &here) else { continue };
                own += 1;
                assert_eq!(a.data_type(), field.data_type(), "{layout}: column {}", field.name());
                assert_eq!(a.len(), here.len(), "{layout}: column {}", field.name());
                for (k, &r) in here.iter().enumerate() {
                    let (t, u, i, s, r_) = value(start + r as usize);
                    let at = format!("{layout}: column {} row {}", field.name(), start + r as usize);
                    match field.name().as_str() {
                        "t" => assert_eq!(a.as_primitive::<TimestampNanosecondType>().value(k), t, "{at}"),
                        "u" => assert_eq!(a.is_valid(k).then(|| a.as_primitive::<UInt32Type>().value(k)), u, "{at}"),
                        "i" => assert_eq!(a.as_primitive::<Int32Type>().value(k), i, "{at}"),
                        name => {
                            let text = arrow_cast::cast(&a, &DataType::Utf8).unwrap();
                            let text = text.as_string::<i32>();
                            let got = text.is_valid(k).then(|| text.value(k).to_string());
                            let want = if name == "s" { s } else { Some(r_) };
                            assert_eq!(got, want, "{at}");
                        }
                    }
                }
            }
            start += n;
        }
        own
    }

    /// Row sets: none, all, the first and last of each row group, single
    /// rows, every 37th, and pseudo-random ones of several densities.
    fn row_sets() -> Vec<Vec<usize>> {
        let mut sets = vec![
            vec![],
            (0..ROWS).collect(),
            vec![0, 1_999, 2_000, 3_999, 4_000, ROWS - 1],
            vec![ROWS - 1],
            vec![2_345],
            (0..ROWS).step_by(37).collect(),
        ];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for per_thousand in [2u64, 40, 500] {
            let mut set = Vec::new();
            for r in 0..ROWS {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if x % 1_000 < per_thousand {
                    set.push(r);
                }
            }
            sets.push(set);
        }
        sets
    }

    #[test]
    fn picked_rows_hold_the_values_written_whatever_the_page_layout() {
        let dir = tempfile::tempdir().unwrap();
        for (layout, props) in layouts() {
            let path = write(dir.path(), props);
            let (meta, file) = open(&path);
            for rows in row_sets() {
                let own = check_rows(&meta, &file, &rows, layout);
                // Every column of these layouts is one this reader covers.
                assert_eq!(own, 5 * meta.metadata().num_row_groups(), "{layout}: a column was left to the crate");
            }
        }
    }

    #[test]
    fn encodings_it_does_not_walk_are_left_to_the_crate() {
        let dir = tempfile::tempdir().unwrap();
        let props = WriterProperties::builder()
            .set_dictionary_enabled(false)
            .set_column_encoding(ColumnPath::from("t"), Encoding::DELTA_BINARY_PACKED)
            .set_column_encoding(ColumnPath::from("s"), Encoding::DELTA_BYTE_ARRAY)
            .build();
        let path = write(dir.path(), props);
        let (meta, file) = open(&path);
        let pq = meta.metadata();
        let fields = meta.schema().fields().clone();
        for (leaf, field) in fields.iter().enumerate() {
            let got = read_rows(&file, pq, 0, leaf, field.data_type(), &[0, 5, 900]);
            let delta = matches!(field.name().as_str(), "t" | "s");
            assert_eq!(got.is_none(), delta, "column {}", field.name());
        }
        // A type the crate would convert (a u32 column asked for as Int64) is left to it too.
        assert!(read_rows(&file, pq, 0, 1, &DataType::Int64, &[0]).is_none());
    }

    #[test]
    fn runs_claiming_more_values_than_a_page_holds_are_refused() {
        // Run headers in ULEB128: 2^62 values repeated (2^62 << 1), and
        // 2^62 groups packed ((2^62 << 1) | 1).
        let repeated = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01];
        let packed = [0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01];
        for header in [repeated, packed] {
            let mut bytes = header.to_vec();
            bytes.extend([0u8; 16]);
            assert!(Hybrid::new(&bytes, 0).next_run().is_none(), "{header:x?}");
            assert!(Hybrid::new(&bytes, 1).next_run().is_none(), "{header:x?}");
        }
        // The largest count a page can hold is still read: u32::MAX << 1, then the value 1.
        let fine = [0xfe, 0xff, 0xff, 0xff, 0x1f, 0x01];
        let run = Hybrid::new(&fine, 1).next_run().expect("a run of u32::MAX ones");
        assert_eq!((run.count(), run.get(7)), (u32::MAX as usize, Some(1)));
    }

    #[test]
    fn damaged_pages_give_no_answer_or_an_answer_never_a_panic_or_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let props = WriterProperties::builder().set_data_page_size_limit(512).set_write_batch_size(64).build();
        let path = write(dir.path(), props);
        let clean = std::fs::read(&path).unwrap();
        let (meta, _) = open(&path);
        let pq = meta.metadata().clone();
        let fields = meta.schema().fields().clone();
        let chunk = pq.row_group(0).column(3);
        let (start, len) = chunk.byte_range();
        let damaged = dir.path().join("damaged.parquet");
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..300 {
            let mut bytes = clean.clone();
            for _ in 0..4 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let at = start as usize + (x % len) as usize;
                bytes[at] ^= (x >> 32) as u8 | 1;
            }
            std::fs::write(&damaged, &bytes).unwrap();
            let file = PositionalFile::new(File::open(&damaged).unwrap());
            let rows: Vec<u64> = (0..ROWS as u64).step_by(53).collect();
            if let Some(a) = read_rows(&file, &pq, 0, 3, fields[3].data_type(), &rows) {
                assert_eq!(a.len(), rows.len());
            }
        }
    }
}
