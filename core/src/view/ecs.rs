//! The Elastic (ECS) view: how a capture event looks to an EQL rule written
//! for Defend for Containers. See `docs/rule-semantics.md`.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, DictionaryArray, Int32Array, Int64Array, RecordBatch, StringArray,
};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Int32Type, Schema};

use super::visible;
use crate::capture::{str_at, Column, EventBatch, EventKind, Projection};
use crate::kernels::{restrict, valid_bits};

/// The Elasticsearch type of an ECS field, as far as EQL cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// A `keyword` string (exact, case-sensitive, subject to `ignore_above`).
    Keyword,
    /// A `long` integer.
    Long,
    /// A `boolean`.
    Boolean,
}

impl std::fmt::Display for FieldType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FieldType::Keyword => "keyword",
            FieldType::Long => "long",
            FieldType::Boolean => "boolean",
        })
    }
}

/// Which events carry a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carriers {
    /// Every event.
    All,
    /// Only process (`exec`) events.
    Exec,
    /// Only file (`open`) events.
    Open,
}

/// One field of the ECS view.
#[derive(Debug)]
pub struct EcsField {
    /// The ECS name, e.g. `process.args`.
    pub name: &'static str,
    /// Its type.
    pub ty: FieldType,
    /// Whether it is multi-valued (an array).
    pub multi: bool,
    /// Which events carry it.
    pub carriers: Carriers,
    /// The capture columns it is derived from.
    pub columns: &'static [Column],
    /// Where the value comes from, for docs and `rules check`.
    pub doc: &'static str,
    /// Builds the field's values for every row of a batch (see [`EcsView`]).
    build: fn(&EventBatch) -> ArrayRef,
}

macro_rules! field {
    ($name:literal, $ty:ident, $multi:literal, $car:ident, [$($c:ident),*], $build:expr, $doc:literal) => {
        EcsField {
            name: $name,
            ty: FieldType::$ty,
            multi: $multi,
            carriers: Carriers::$car,
            columns: &[$(Column::$c),*],
            doc: $doc,
            build: $build,
        }
    };
}

/// Every field the ECS view provides. Any other field in a query is an error
/// (or always missing, when written `?field`).
pub static ECS_FIELDS: &[EcsField] = &[
    field!("host.os.type", Keyword, false, All, [], |b| dict(vec![0; b.len()], None, &["linux"]), "always \"linux\""),
    field!("host.name", Keyword, false, All, [Host], |b| col(b, Column::Host), "host"),
    field!("container.id", Keyword, false, All, [ContainerId], |b| col(b, Column::ContainerId), "container_id (missing on the host)"),
    field!("event.category", Keyword, false, All, [], |b| by_kind(b, ["process", "file"]), "\"process\" for exec, \"file\" for open"),
    field!("event.action", Keyword, false, All, [], |b| by_kind(b, ["exec", "open"]), "\"exec\" for exec, \"open\" for open"),
    field!("event.type", Keyword, false, All, [Flags], event_type, "exec: \"start\"; open: \"change\" when flags & O_ACCMODE is O_WRONLY or O_RDWR, else \"access\" (missing when flags is null)"),
    field!("process.pid", Long, false, All, [Pid], |b| long(b, Column::Pid), "pid"),
    field!("process.thread.id", Long, false, All, [Tid], |b| long(b, Column::Tid), "tid"),
    field!("process.parent.pid", Long, false, All, [Ppid], |b| long(b, Column::Ppid), "ppid"),
    field!("process.name", Keyword, false, All, [Comm], |b| col(b, Column::Comm), "comm"),
    field!("process.executable", Keyword, false, All, [Exe], |b| col(b, Column::Exe), "exe"),
    field!("process.interactive", Boolean, false, All, [Tty], process_interactive, "tty is not null"),
    field!("process.args", Keyword, true, Exec, [Args], |b| of_kind(b, Column::Args, EventKind::Exec), "args (exec only)"),
    field!("process.args_count", Long, false, Exec, [Args], process_args_count, "number of args (exec only)"),
    field!("user.id", Keyword, false, All, [Uid], |b| text(b, Column::Uid), "uid, as a string"),
    field!("group.id", Keyword, false, All, [Gid], |b| text(b, Column::Gid), "gid, as a string"),
    field!("file.path", Keyword, false, Open, [Path], |b| of_kind(b, Column::Path, EventKind::Open), "path, the resolved path (open only)"),
    field!("file.name", Keyword, false, Open, [Path], file_name, "last component of path (open only)"),
];

/// The field with this name, and its position in [`ECS_FIELDS`].
pub fn ecs_field(name: &str) -> Option<(usize, &'static EcsField)> {
    ECS_FIELDS.iter().enumerate().find(|(_, f)| f.name == name)
}

/// Columns needed to build every ECS field, plus those deciding visibility.
pub fn ecs_base_projection() -> Projection {
    [Column::Kind, Column::Result, Column::Path].into_iter().collect()
}

fn dict(keys: Vec<i32>, nulls: Option<NullBuffer>, values: &[&str]) -> ArrayRef {
    let keys = Int32Array::new(keys.into(), nulls);
    let values: ArrayRef = Arc::new(StringArray::from(values.to_vec()));
    Arc::new(DictionaryArray::<Int32Type>::try_new(keys, values).expect("keys index the values"))
}

fn col(batch: &EventBatch, c: Column) -> ArrayRef {
    batch.expect(c).clone()
}

/// A keyword that depends on the event kind only: `values[0]` for execs, `values[1]` for opens.
fn by_kind(batch: &EventBatch, values: [&str; 2]) -> ArrayRef {
    dict(batch.kinds().iter().map(|k| (*k == EventKind::Open) as i32).collect(), None, &values)
}

/// Column `c`, missing on events that are not of kind `kind`.
fn of_kind(batch: &EventBatch, c: Column, kind: EventKind) -> ArrayRef {
    let kinds = batch.kinds();
    restrict(batch.expect(c), NullBuffer::new(BooleanBuffer::collect_bool(batch.len(), |i| kinds[i] == kind)))
}

/// An unsigned id column as a `long`.
fn long(batch: &EventBatch, c: Column) -> ArrayRef {
    cast(batch.expect(c), &DataType::Int64).expect("u32 fits in i64")
}

/// An unsigned id column as a keyword (ECS keeps user and group ids as strings).
fn text(batch: &EventBatch, c: Column) -> ArrayRef {
    cast(batch.expect(c), &DataType::Utf8).expect("u32 casts to text")
}

fn event_type(batch: &EventBatch) -> ArrayRef {
    let n = batch.len();
    let kinds = batch.kinds();
    let flags = batch.expect(Column::Flags).as_primitive::<Int32Type>();
    let keys: Vec<i32> = (0..n)
        .map(|i| match kinds[i] {
            EventKind::Exec => 0,
            EventKind::Open => 2 - i32::from(crate::display::AccessMode::of(flags.value(i)).writes()),
            // Not visible to the rules (see `view::visible`); null below.
            EventKind::Fork | EventKind::Exit | EventKind::Process | EventKind::Container => 0,
        })
        .collect();
    let execs = BooleanBuffer::collect_bool(n, |i| kinds[i] == EventKind::Exec);
    let valid = &execs | &valid_bits(flags);
    dict(keys, Some(NullBuffer::new(valid)), &["start", "change", "access"])
}

fn process_interactive(batch: &EventBatch) -> ArrayRef {
    Arc::new(BooleanArray::new(valid_bits(batch.expect(Column::Tty).as_ref()), None))
}

fn process_args_count(batch: &EventBatch) -> ArrayRef {
    let kinds = batch.kinds();
    let list = batch.expect(Column::Args).as_list::<i32>();
    let counts: Int64Array = (0..batch.len())
        .map(|i| (kinds[i] == EventKind::Exec && list.is_valid(i)).then(|| list.value_length(i) as i64))
        .collect();
    Arc::new(counts)
}

fn file_name(batch: &EventBatch) -> ArrayRef {
    let kinds = batch.kinds();
    let path = batch.expect(Column::Path);
    let names: StringArray = (0..batch.len())
        .map(|i| {
            if kinds[i] != EventKind::Open {
                return None;
            }
            str_at(path.as_ref(), i).map(|p| p.rsplit('/').next().unwrap_or(p).to_string())
        })
        .collect();
    Arc::new(names)
}

/// Builds the values of ECS field `idx` (see [`ECS_FIELDS`]) for every row of `batch`.
/// Missing values are nulls; keyword arrays are `List<Utf8>`.
pub fn materialize(idx: usize, batch: &EventBatch) -> ArrayRef {
    (ECS_FIELDS[idx].build)(batch)
}

/// The ECS view of one batch, each field built on first use and then kept:
/// what the EQL engine evaluates and what [`ecs_record_batch`] shows.
pub struct EcsView<'a> {
    batch: &'a EventBatch,
    fields: Vec<Option<ArrayRef>>,
}

impl<'a> EcsView<'a> {
    /// The view of `batch`, with no field built yet.
    pub fn new(batch: &'a EventBatch) -> Self {
        EcsView { batch, fields: vec![None; ECS_FIELDS.len()] }
    }

    /// The batch the view shows.
    pub fn batch(&self) -> &'a EventBatch {
        self.batch
    }

    /// The values of field `idx` of [`ECS_FIELDS`], built on first use.
    pub fn get(&mut self, idx: usize) -> ArrayRef {
        self.fields[idx].get_or_insert_with(|| materialize(idx, self.batch)).clone()
    }
}

/// The ECS view of a batch as a record batch with every field (dotted names as
/// column names), restricted to the visible events. Used to show an analyst
/// exactly what an EQL rule saw.
pub fn ecs_record_batch(batch: &EventBatch) -> RecordBatch {
    let vis = BooleanArray::new(visible(batch), None);
    let mut fields = vec![Field::new("event_index", DataType::UInt64, false)];
    let idx: arrow::array::UInt64Array = (0..batch.len() as u64).map(|i| i + batch.first_index()).collect();
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(idx)];
    let mut view = EcsView::new(batch);
    for (i, f) in ECS_FIELDS.iter().enumerate() {
        let a = view.get(i);
        let a = match a.data_type() {
            DataType::Dictionary(_, _) => cast(&a, &DataType::Utf8).expect("dictionary of strings casts to text"),
            _ => a,
        };
        fields.push(Field::new(f.name, a.data_type().clone(), true));
        arrays.push(a);
    }
    let rb = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("view columns share a length");
    arrow::compute::filter_record_batch(&rb, &vis).expect("mask has the batch's length")
}
