//! Schema checking and type normalization: the many logically equal Arrow
//! types other tools write become the canonical types of [`Column::data_type`].

use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{new_null_array, Array, ArrayRef, RecordBatch};
use arrow_cast::display::FormatOptions;
use arrow_cast::{cast_with_options, CastOptions};
use arrow_schema::{DataType, Field, Schema};

use super::{Column, EventBatch, EventKind, Projection};
use crate::error::{Error, Result};

/// Where each capture column sits in a file's schema (`None`: a column
/// added after version 1 that the file lacks, read as all null).
#[derive(Debug, Clone)]
pub(crate) struct ColumnMap {
    indices: [Option<usize>; Column::COUNT],
}

/// Whether a file may lack column `c`: columns added after version 1 read as all null.
pub(crate) fn may_be_absent(c: Column) -> bool {
    c.since() > 1
}

impl ColumnMap {
    /// Checks that every column of version 1 is present, and every column
    /// present has a usable type.
    pub(crate) fn check(path: &Path, schema: &Schema) -> Result<ColumnMap> {
        let missing: Vec<&str> = Column::ALL
            .iter()
            .filter(|c| !may_be_absent(**c) && schema.column_with_name(c.name()).is_none())
            .map(|c| c.name())
            .collect();
        if !missing.is_empty() {
            let (noun, verb) = if missing.len() == 1 { ("column", "is") } else { ("columns", "are") };
            return Err(Error::capture(
                path,
                format!(
                    "required {noun} `{}` {verb} missing; capture format v1 needs {}",
                    missing.join("`, `"),
                    Column::ALL.iter().filter(|c| !may_be_absent(**c)).map(|c| c.name()).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let mut indices = [None; Column::COUNT];
        for c in Column::ALL {
            let Some((i, field)) = schema.column_with_name(c.name()) else { continue };
            if !type_usable(c, field.data_type()) {
                return Err(Error::capture(
                    path,
                    format!(
                        "column `{c}` has type {}, which cannot hold {}; expected {}",
                        field.data_type(),
                        describe(c),
                        c.data_type()
                    ),
                ));
            }
            indices[c.index()] = Some(i);
        }
        Ok(ColumnMap { indices })
    }

    /// The file-schema index of a column, `None` when the file lacks it.
    pub(crate) fn index(&self, c: Column) -> Option<usize> {
        self.indices[c.index()]
    }

    /// File-schema indices of the projected columns the file has, sorted.
    pub(crate) fn file_indices(&self, projection: Projection) -> Vec<usize> {
        let mut v: Vec<usize> = projection.columns().filter_map(|c| self.index(c)).collect();
        v.sort_unstable();
        v
    }
}

// By canonical type, so that a new column of the declaration needs nothing here.
fn describe(c: Column) -> &'static str {
    match c.data_type() {
        DataType::Timestamp(_, _) => "a timestamp",
        DataType::List(_) => "a list of strings",
        DataType::Utf8 => "a string",
        DataType::Boolean => "a boolean",
        _ => "an integer",
    }
}

/// `Dictionary(Int32, Utf8)`, the dictionary type the readers produce.
pub(crate) fn is_dictionary_of_text(t: &DataType) -> bool {
    matches!(t, DataType::Dictionary(k, v) if **k == DataType::Int32 && **v == DataType::Utf8)
}

fn is_list(c: Column) -> bool {
    matches!(c.data_type(), DataType::List(_))
}

fn is_string_type(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(k, v) => k.is_dictionary_key_type() && is_string_type(v),
        _ => false,
    }
}

fn type_usable(c: Column, t: &DataType) -> bool {
    if *t == DataType::Null {
        return c.nullable();
    }
    match c.data_type() {
        DataType::Timestamp(_, _) => matches!(t, DataType::Timestamp(_, _)),
        DataType::List(_) => match t {
            DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) | DataType::LargeListView(f) => {
                is_string_type(f.data_type()) || *f.data_type() == DataType::Null
            }
            _ => false,
        },
        DataType::Utf8 => is_string_type(t),
        DataType::Boolean => *t == DataType::Boolean,
        _ => t.is_integer(),
    }
}

/// Checks that `schema` has every projected column with a usable type (other
/// columns may be absent or extra), with the same messages as [`ColumnMap::check`].
pub(crate) fn check_projected(path: &Path, schema: &Schema, projection: Projection) -> Result<()> {
    let missing: Vec<&str> = projection
        .columns()
        .filter(|c| !may_be_absent(*c) && schema.column_with_name(c.name()).is_none())
        .map(|c| c.name())
        .collect();
    if !missing.is_empty() {
        let (noun, verb) = if missing.len() == 1 { ("column", "is") } else { ("columns", "are") };
        return Err(Error::capture(
            path,
            format!(
                "required {noun} `{}` {verb} missing; these events need {}",
                missing.join("`, `"),
                projection.columns().filter(|c| !may_be_absent(*c)).map(|c| c.name()).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    for c in projection.columns() {
        let Some((_, field)) = schema.column_with_name(c.name()) else { continue };
        if !type_usable(c, field.data_type()) {
            return Err(Error::capture(
                path,
                format!(
                    "column `{c}` has type {}, which cannot hold {}; expected {}",
                    field.data_type(),
                    describe(c),
                    c.data_type()
                ),
            ));
        }
    }
    Ok(())
}

/// Turns one file batch (already projected, columns named as in the format)
/// into a canonical [`EventBatch`]. `first_index` is the event index of its first row.
pub(crate) fn normalize(
    path: &Path,
    batch: &RecordBatch,
    projection: Projection,
    first_index: u64,
) -> Result<EventBatch> {
    let columns = normalize_columns(path, batch, projection, first_index)?;
    let kind_col =
        columns[Column::Kind.index()].as_ref().ok_or_else(|| Error::capture(path, "column `kind` was not read"))?;
    let kinds = parse_kinds(path, kind_col.as_ref(), first_index)?;
    Ok(EventBatch::new(columns, kinds, first_index))
}

/// The projected columns of `batch` in canonical types (no `kind` parsing),
/// as [`normalize`] converts them.
pub(crate) fn normalize_columns(
    path: &Path,
    batch: &RecordBatch,
    projection: Projection,
    first_index: u64,
) -> Result<[Option<ArrayRef>; Column::COUNT]> {
    let mut columns: [Option<ArrayRef>; Column::COUNT] = std::array::from_fn(|_| None);
    let schema = batch.schema();
    for c in projection.columns() {
        let array = match schema.column_with_name(c.name()) {
            Some((i, _)) => normalize_column(path, c, batch.column(i), first_index)?,
            // A column the format added after version 1: missing, never invented.
            None if may_be_absent(c) => new_null_array(&c.data_type(), batch.num_rows()),
            None => return Err(Error::capture(path, format!("required column `{c}` is missing"))),
        };
        columns[c.index()] = Some(array);
    }
    Ok(columns)
}

fn first_null(a: &dyn Array) -> Option<usize> {
    (0..a.len()).find(|&i| a.is_null(i))
}

fn normalize_column(path: &Path, c: Column, a: &ArrayRef, first_index: u64) -> Result<ArrayRef> {
    if !c.nullable() && a.null_count() > 0 {
        let row = first_null(a.as_ref()).unwrap_or(0);
        return Err(Error::capture(
            path,
            format!(
                "column `{c}` is null at event {}, but the format does not allow nulls there",
                first_index + row as u64
            ),
        ));
    }
    if *a.data_type() == DataType::Null {
        return Ok(new_null_array(&c.data_type(), a.len()));
    }
    let target = match (c, a.data_type()) {
        (c, DataType::Dictionary(_, _)) if c.is_string() => {
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
        }
        (c, DataType::List(f)) if is_list(c) && *f.data_type() == DataType::Utf8 && f.name() == "item" => {
            return Ok(a.clone());
        }
        // Dictionary-encoded elements stay so for the rules (see
        // `EventBatch::with_plain_lists`).
        (c, DataType::List(f)) if is_list(c) && is_dictionary_of_text(f.data_type()) => return Ok(a.clone()),
        (c, _) if is_list(c) => DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        (c, _) => c.data_type(),
    };
    if *a.data_type() == target {
        return Ok(a.clone());
    }
    let options = CastOptions { safe: false, format_options: FormatOptions::default() };
    cast_with_options(a, &target, &options)
        .map_err(|e| Error::capture(path, format!("column `{c}`: cannot convert {} to {target}: {e}", a.data_type())))
}

fn parse_kinds(path: &Path, a: &dyn Array, first_index: u64) -> Result<Vec<EventKind>> {
    let bad = |row: usize, v: &str| {
        Error::capture(
            path,
            format!(
                "column `kind` holds {v:?} at event {}; expected one of {}",
                first_index + row as u64,
                EventKind::expected()
            ),
        )
    };
    match a.data_type() {
        DataType::Utf8 => {
            let s = a.as_string::<i32>();
            (0..s.len()).map(|i| EventKind::parse(s.value(i)).ok_or_else(|| bad(i, s.value(i)))).collect()
        }
        DataType::Dictionary(_, _) => {
            let d = a.as_dictionary::<Int32Type>();
            let values = d.values().as_string::<i32>();
            let parsed: Vec<Option<EventKind>> = (0..values.len()).map(|i| EventKind::parse(values.value(i))).collect();
            // One look-up per row into a vector sized once; the first key
            // that names no kind is the error.
            let keys = d.keys().values();
            let mut kinds = Vec::with_capacity(keys.len());
            for (row, &k) in keys.iter().enumerate() {
                match parsed.get(k as usize) {
                    Some(Some(kind)) => kinds.push(*kind),
                    Some(None) => return Err(bad(row, values.value(k as usize))),
                    None => {
                        return Err(bad(
                            row,
                            &format!("dictionary key {k} (the dictionary has {} values)", values.len()),
                        ))
                    }
                }
            }
            Ok(kinds)
        }
        other => Err(Error::capture(path, format!("column `kind` has type {other} after normalization"))),
    }
}
