//! The one place capture columns are built: a typed builder per column kind,
//! and [`CaptureBuilder`] (generated from the declaration in `schema.rs`),
//! which every producer of capture rows fills: the NDJSON reader, the
//! importers, `synth` and the eBPF recorder.
//!
//! A column's builder type fixes its Arrow type, its nullability and the
//! type of the value its `append` takes, so a producer cannot put a null into
//! a column that has none, nor a value of the wrong type.

use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, Int32Builder, Int64Builder, ListBuilder, StringBuilder, StringDictionaryBuilder,
    TimestampNanosecondBuilder, UInt32Builder, UInt64Builder,
};
use arrow_array::types::Int32Type;
use arrow_array::ArrayRef;
use arrow_schema::{DataType, Field, TimeUnit};

use super::EventKind;

/// How the builders of one batch are sized and how they encode strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuilderSizing {
    /// Rows to reserve room for.
    pub rows: usize,
    /// Bytes to reserve per string column (and for the items of a list column).
    pub string_bytes: usize,
    /// Build string columns dictionary-encoded (`Dictionary<Int32, Utf8>`)
    /// instead of plain `Utf8`. List items stay plain.
    pub dictionary: bool,
}

impl Default for BuilderSizing {
    /// Arrow's default sizes, plain strings.
    fn default() -> Self {
        BuilderSizing { rows: 1024, string_bytes: 1024, dictionary: false }
    }
}

/// What every column builder offers [`CaptureBuilder`](super::CaptureBuilder); the per-value
/// `append` methods are on each type, with the value type of its column.
pub trait ColumnBuilder: Sized {
    /// Whether the column may hold nulls.
    const NULLABLE: bool;
    /// The Arrow type as the capture-format documentation writes it.
    const TYPE_DOC: &'static str;
    /// The canonical Arrow type of the column.
    fn data_type() -> DataType;
    /// An empty builder sized by `sizing`; `hint` is the value bytes (and, for
    /// a list, items) a previous batch of this column held, 0 when unknown.
    fn with_sizing(sizing: &BuilderSizing, hint: (usize, usize)) -> Self;
    /// The value bytes and list items this builder holds now (for [`ColumnBuilder::with_sizing`]).
    fn hint(&self) -> (usize, usize) {
        (0, 0)
    }
    /// Rows appended so far.
    fn len(&self) -> usize;
    /// Whether no row was appended.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The rows so far as an array; the builder starts over.
    fn finish(&mut self) -> ArrayRef;
}

/// A nullable column builder: one null can be appended without naming a value type.
pub trait NullableColumn: ColumnBuilder {
    /// Appends a null.
    fn append_null(&mut self);
}

macro_rules! primitive_column {
    ($(#[$doc:meta])* $name:ident, $builder:ty, $native:ty, $arrow:expr, $type_doc:literal, required) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name($builder);
        impl $name {
            /// Appends one value.
            #[inline]
            pub fn append(&mut self, v: $native) {
                self.0.append_value(v);
            }
        }
        primitive_column!(@common $name, $builder, $arrow, $type_doc, false);
    };
    ($(#[$doc:meta])* $name:ident, $builder:ty, $native:ty, $arrow:expr, $type_doc:literal, nullable) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name($builder);
        impl $name {
            /// Appends one value or a null.
            #[inline]
            pub fn append(&mut self, v: Option<$native>) {
                self.0.append_option(v);
            }
        }
        impl NullableColumn for $name {
            #[inline]
            fn append_null(&mut self) {
                self.0.append_null();
            }
        }
        primitive_column!(@common $name, $builder, $arrow, $type_doc, true);
    };
    (@common $name:ident, $builder:ty, $arrow:expr, $type_doc:literal, $nullable:literal) => {
        impl ColumnBuilder for $name {
            const NULLABLE: bool = $nullable;
            const TYPE_DOC: &'static str = $type_doc;
            fn data_type() -> DataType {
                $arrow
            }
            fn with_sizing(sizing: &BuilderSizing, _hint: (usize, usize)) -> Self {
                $name(<$builder>::with_capacity(sizing.rows))
            }
            fn len(&self) -> usize {
                self.0.len()
            }
            fn finish(&mut self) -> ArrayRef {
                Arc::new(self.0.finish())
            }
        }
    };
}

primitive_column!(
    /// A required `UInt32` column.
    U32Column, UInt32Builder, u32, DataType::UInt32, "`UInt32`", required
);
primitive_column!(
    /// A required `UInt64` column.
    U64Column, UInt64Builder, u64, DataType::UInt64, "`UInt64`", required
);
primitive_column!(
    /// A nullable `Int32` column.
    OptI32Column, Int32Builder, i32, DataType::Int32, "`Int32`", nullable
);
primitive_column!(
    /// A nullable `Int64` column.
    OptI64Column, Int64Builder, i64, DataType::Int64, "`Int64`", nullable
);
primitive_column!(
    /// A nullable `UInt32` column.
    OptU32Column, UInt32Builder, u32, DataType::UInt32, "`UInt32`", nullable
);
primitive_column!(
    /// A nullable `Boolean` column.
    OptBoolColumn, BooleanBuilder, bool, DataType::Boolean, "`Boolean`", nullable
);

/// A required timestamp column: nanoseconds since the Unix epoch, UTC.
#[derive(Debug)]
pub struct TimeColumn(TimestampNanosecondBuilder);

impl TimeColumn {
    /// Appends nanoseconds since the Unix epoch.
    #[inline]
    pub fn append(&mut self, ns: i64) {
        self.0.append_value(ns);
    }
}

impl ColumnBuilder for TimeColumn {
    const NULLABLE: bool = false;
    const TYPE_DOC: &'static str = "`Timestamp(Nanosecond, \"UTC\")`";
    fn data_type() -> DataType {
        DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
    }
    fn with_sizing(sizing: &BuilderSizing, _hint: (usize, usize)) -> Self {
        TimeColumn(TimestampNanosecondBuilder::with_capacity(sizing.rows).with_timezone("UTC"))
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn finish(&mut self) -> ArrayRef {
        Arc::new(self.0.finish())
    }
}

/// A nullable timestamp column: nanoseconds since the Unix epoch, UTC.
#[derive(Debug)]
pub struct OptTimeColumn(TimestampNanosecondBuilder);

impl OptTimeColumn {
    /// Appends nanoseconds since the Unix epoch, or a null.
    #[inline]
    pub fn append(&mut self, ns: Option<i64>) {
        self.0.append_option(ns);
    }
}

impl NullableColumn for OptTimeColumn {
    #[inline]
    fn append_null(&mut self) {
        self.0.append_null();
    }
}

impl ColumnBuilder for OptTimeColumn {
    const NULLABLE: bool = true;
    const TYPE_DOC: &'static str = TimeColumn::TYPE_DOC;
    fn data_type() -> DataType {
        TimeColumn::data_type()
    }
    fn with_sizing(sizing: &BuilderSizing, _hint: (usize, usize)) -> Self {
        OptTimeColumn(TimestampNanosecondBuilder::with_capacity(sizing.rows).with_timezone("UTC"))
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn finish(&mut self) -> ArrayRef {
        Arc::new(self.0.finish())
    }
}

/// Plain or dictionary-encoded strings.
enum Strings {
    Plain(StringBuilder),
    Dictionary(StringDictionaryBuilder<Int32Type>),
}

impl std::fmt::Debug for Strings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Strings::Plain(b) => f.debug_tuple("Plain").field(b).finish(),
            Strings::Dictionary(b) => f.debug_tuple("Dictionary").field(&b.len()).finish(),
        }
    }
}

impl Strings {
    fn new(sizing: &BuilderSizing, bytes: usize) -> Self {
        if sizing.dictionary {
            Strings::Dictionary(StringDictionaryBuilder::new())
        } else {
            Strings::Plain(StringBuilder::with_capacity(sizing.rows, bytes))
        }
    }
    #[inline]
    fn append(&mut self, v: Option<&str>) {
        match self {
            Strings::Plain(b) => b.append_option(v),
            Strings::Dictionary(b) => b.append_option(v),
        }
    }
    fn hint(&self) -> (usize, usize) {
        match self {
            Strings::Plain(b) => (b.values_slice().len(), 0),
            Strings::Dictionary(_) => (0, 0),
        }
    }
    fn len(&self) -> usize {
        match self {
            Strings::Plain(b) => b.len(),
            Strings::Dictionary(b) => b.len(),
        }
    }
    fn finish(&mut self) -> ArrayRef {
        match self {
            Strings::Plain(b) => Arc::new(b.finish()),
            Strings::Dictionary(b) => Arc::new(b.finish()),
        }
    }
}

macro_rules! string_column {
    ($(#[$doc:meta])* $name:ident, $nullable:literal) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name(Strings);
        impl ColumnBuilder for $name {
            const NULLABLE: bool = $nullable;
            const TYPE_DOC: &'static str = "`Utf8`";
            fn data_type() -> DataType {
                DataType::Utf8
            }
            fn with_sizing(sizing: &BuilderSizing, hint: (usize, usize)) -> Self {
                let bytes = if hint.0 > 0 { hint.0 } else { sizing.string_bytes };
                $name(Strings::new(sizing, bytes))
            }
            fn hint(&self) -> (usize, usize) {
                self.0.hint()
            }
            fn len(&self) -> usize {
                self.0.len()
            }
            fn finish(&mut self) -> ArrayRef {
                self.0.finish()
            }
        }
    };
}

string_column!(
    /// A required string column.
    StrColumn,
    false
);
string_column!(
    /// A nullable string column.
    OptStrColumn,
    true
);

impl StrColumn {
    /// Appends one string.
    #[inline]
    pub fn append(&mut self, v: &str) {
        self.0.append(Some(v));
    }
}

impl OptStrColumn {
    /// Appends one string or a null.
    #[inline]
    pub fn append<S: AsRef<str>>(&mut self, v: Option<S>) {
        self.0.append(v.as_ref().map(|s| s.as_ref()));
    }
}

impl NullableColumn for OptStrColumn {
    #[inline]
    fn append_null(&mut self) {
        self.0.append(None);
    }
}

/// The required `kind` column (see [`EventKind`]), kept as [`EventKind`]s too
/// (every batch hands them out already validated).
#[derive(Debug)]
pub struct KindColumn {
    strings: Strings,
    kinds: Vec<EventKind>,
}

impl KindColumn {
    /// Appends one event kind.
    #[inline]
    pub fn append(&mut self, kind: EventKind) {
        self.strings.append(Some(kind.as_str()));
        self.kinds.push(kind);
    }

    /// The kinds appended so far; the builder's kinds start over.
    pub(crate) fn take_kinds(&mut self) -> Vec<EventKind> {
        std::mem::take(&mut self.kinds)
    }
}

impl ColumnBuilder for KindColumn {
    const NULLABLE: bool = false;
    const TYPE_DOC: &'static str = "`Utf8`";
    fn data_type() -> DataType {
        DataType::Utf8
    }
    fn with_sizing(sizing: &BuilderSizing, _hint: (usize, usize)) -> Self {
        // `open` and `exec` are four bytes each (the other kinds are rare).
        KindColumn { strings: Strings::new(sizing, sizing.rows * 4), kinds: Vec::with_capacity(sizing.rows) }
    }
    fn len(&self) -> usize {
        self.kinds.len()
    }
    fn finish(&mut self) -> ArrayRef {
        self.strings.finish()
    }
}

/// A nullable list-of-strings column (item field `item`, nullable items).
#[derive(Debug)]
pub struct OptStrListColumn(ListBuilder<StringBuilder>);

impl OptStrListColumn {
    /// Appends one list (its items, each a string or a null) or, for `None`, a null.
    #[inline]
    pub fn append<I, S>(&mut self, v: Option<I>)
    where
        I: IntoIterator<Item = Option<S>>,
        S: AsRef<str>,
    {
        match v {
            Some(items) => {
                for s in items {
                    self.0.values().append_option(s.as_ref().map(|s| s.as_ref()));
                }
                self.0.append(true);
            }
            None => self.0.append(false),
        }
    }
}

impl NullableColumn for OptStrListColumn {
    #[inline]
    fn append_null(&mut self) {
        self.0.append(false);
    }
}

impl ColumnBuilder for OptStrListColumn {
    const NULLABLE: bool = true;
    const TYPE_DOC: &'static str = "`List<Utf8>` (item field `item`, nullable)";
    fn data_type() -> DataType {
        DataType::List(Arc::new(Self::item_field()))
    }
    fn with_sizing(sizing: &BuilderSizing, hint: (usize, usize)) -> Self {
        let (bytes, items) = if hint.0 > 0 { hint } else { (sizing.string_bytes, sizing.rows) };
        OptStrListColumn(
            ListBuilder::with_capacity(StringBuilder::with_capacity(items, bytes), sizing.rows)
                .with_field(Self::item_field()),
        )
    }
    fn hint(&self) -> (usize, usize) {
        (self.0.values_ref().values_slice().len(), self.0.values_ref().len())
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn finish(&mut self) -> ArrayRef {
        Arc::new(self.0.finish())
    }
}

impl OptStrListColumn {
    fn item_field() -> Field {
        Field::new("item", DataType::Utf8, true)
    }
}
