//! The Elastic (ECS) view: how a capture event looks to an EQL rule written
//! for Defend for Containers. See `docs/rule-semantics.md`.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, DictionaryArray, Int32Array, Int64Array, RecordBatch, StringArray,
};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Int32Type, Schema};

use crate::capture::{valid_bits, Column, EventBatch, EventKind, Projection};

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
}

macro_rules! field {
    ($name:literal, $ty:ident, $multi:literal, $car:ident, [$($c:ident),*], $doc:literal) => {
        EcsField { name: $name, ty: FieldType::$ty, multi: $multi, carriers: Carriers::$car, columns: &[$(Column::$c),*], doc: $doc }
    };
}

/// Every field the ECS view provides. Any other field in a query is an error
/// (or always missing, when written `?field`).
pub static ECS_FIELDS: &[EcsField] = &[
    field!("host.os.type", Keyword, false, All, [], "always \"linux\""),
    field!("host.name", Keyword, false, All, [Host], "host"),
    field!("container.id", Keyword, false, All, [ContainerId], "container_id (missing on the host)"),
    field!("event.category", Keyword, false, All, [], "\"process\" for exec, \"file\" for open"),
    field!("event.action", Keyword, false, All, [], "\"exec\" for exec, \"open\" for open"),
    field!("event.type", Keyword, false, All, [Flags], "exec: \"start\"; open: \"change\" when flags & O_ACCMODE is O_WRONLY or O_RDWR, else \"access\" (missing when flags is null)"),
    field!("process.pid", Long, false, All, [Pid], "pid"),
    field!("process.thread.id", Long, false, All, [Tid], "tid"),
    field!("process.parent.pid", Long, false, All, [Ppid], "ppid"),
    field!("process.name", Keyword, false, All, [Comm], "comm"),
    field!("process.executable", Keyword, false, All, [Exe], "exe"),
    field!("process.interactive", Boolean, false, All, [Tty], "tty is not null"),
    field!("process.args", Keyword, true, Exec, [Args], "args (exec only)"),
    field!("process.args_count", Long, false, Exec, [Args], "number of args (exec only)"),
    field!("user.id", Keyword, false, All, [Uid], "uid, as a string"),
    field!("group.id", Keyword, false, All, [Gid], "gid, as a string"),
    field!("file.path", Keyword, false, Open, [Path], "path, the resolved path (open only)"),
    field!("file.name", Keyword, false, Open, [Path], "last component of path (open only)"),
];

/// The field with this name, and its position in [`ECS_FIELDS`].
pub fn ecs_field(name: &str) -> Option<(usize, &'static EcsField)> {
    ECS_FIELDS.iter().enumerate().find(|(_, f)| f.name == name)
}

/// Columns needed to build every ECS field, plus those deciding visibility.
pub fn ecs_base_projection() -> Projection {
    [Column::Kind, Column::Result, Column::Path].into_iter().collect()
}

/// Which events of a batch enter the rule views at all: execs that did not
/// fail (`result` null or `>= 0`: a failed execve runs nothing), and opens
/// that succeeded (`result >= 0`, or `result` null with a non-null `path`).
pub fn visible(batch: &EventBatch) -> BooleanBuffer {
    let kinds = batch.kinds();
    let n = batch.len();
    // Bitmaps combined word by word, not a test per row.
    let execs = BooleanBuffer::collect_bool(n, |i| kinds[i] == EventKind::Exec);
    let has_path = match batch.column(Column::Path) {
        Some(p) => valid_bits(p.as_ref()),
        None => BooleanBuffer::new_unset(n),
    };
    // Without a result: an exec, or an open with a path.
    let fallback = &execs | &has_path;
    let Some(r) = batch.column(Column::Result) else { return fallback };
    let r = r.as_primitive::<arrow::datatypes::Int64Type>();
    let values = r.values();
    let succeeded = BooleanBuffer::collect_bool(n, |i| values[i] >= 0);
    match r.nulls() {
        None => succeeded,
        Some(nulls) => &(nulls.inner() & &succeeded) | &(&!nulls.inner() & &fallback),
    }
}

fn dict(keys: Vec<i32>, nulls: Option<NullBuffer>, values: &[&str]) -> ArrayRef {
    let keys = Int32Array::new(keys.into(), nulls);
    let values: ArrayRef = Arc::new(StringArray::from(values.to_vec()));
    Arc::new(DictionaryArray::<Int32Type>::try_new(keys, values).expect("keys index the values"))
}

fn kind_mask(batch: &EventBatch, want: EventKind) -> NullBuffer {
    NullBuffer::new(BooleanBuffer::collect_bool(batch.len(), |i| batch.kinds()[i] == want))
}

fn restrict(a: &ArrayRef, keep: NullBuffer) -> ArrayRef {
    let nulls = NullBuffer::union(a.logical_nulls().as_ref(), Some(&keep));
    let data = a.to_data().into_builder().nulls(nulls).build().expect("same length, fewer valid slots");
    arrow::array::make_array(data)
}

/// Builds the values of ECS field `idx` (see [`ECS_FIELDS`]) for every row of `batch`.
/// Missing values are nulls; keyword arrays are `List<Utf8>`.
pub fn materialize(idx: usize, batch: &EventBatch) -> ArrayRef {
    let f = &ECS_FIELDS[idx];
    let n = batch.len();
    let kinds = batch.kinds();
    let col = |c: Column| batch.expect(c).clone();
    match f.name {
        "host.os.type" => dict(vec![0; n], None, &["linux"]),
        "host.name" => col(Column::Host),
        "container.id" => col(Column::ContainerId),
        "event.category" => {
            dict(kinds.iter().map(|k| (*k == EventKind::Open) as i32).collect(), None, &["process", "file"])
        }
        "event.action" => dict(kinds.iter().map(|k| (*k == EventKind::Open) as i32).collect(), None, &["exec", "open"]),
        "event.type" => {
            let flags = batch.expect(Column::Flags).as_primitive::<Int32Type>();
            let keys: Vec<i32> = (0..n)
                .map(|i| match kinds[i] {
                    EventKind::Exec => 0,
                    EventKind::Open => 2 - i32::from(crate::display::AccessMode::of(flags.value(i)).writes()),
                })
                .collect();
            let execs = BooleanBuffer::collect_bool(n, |i| kinds[i] == EventKind::Exec);
            let valid = &execs | &valid_bits(flags);
            dict(keys, Some(NullBuffer::new(valid)), &["start", "change", "access"])
        }
        "process.pid" | "process.thread.id" | "process.parent.pid" => {
            cast(&col(f.columns[0]), &DataType::Int64).expect("u32 fits in i64")
        }
        "process.name" => col(Column::Comm),
        "process.executable" => col(Column::Exe),
        "process.interactive" => {
            let tty = col(Column::Tty);
            Arc::new(BooleanArray::new(valid_bits(tty.as_ref()), None))
        }
        "process.args" => restrict(&col(Column::Args), kind_mask(batch, EventKind::Exec)),
        "process.args_count" => {
            let args = col(Column::Args);
            let list = args.as_list::<i32>();
            let counts: Int64Array = (0..n)
                .map(|i| (kinds[i] == EventKind::Exec && list.is_valid(i)).then(|| list.value_length(i) as i64))
                .collect();
            Arc::new(counts)
        }
        "user.id" | "group.id" => cast(&col(f.columns[0]), &DataType::Utf8).expect("u32 casts to text"),
        "file.path" => restrict(&col(Column::Path), kind_mask(batch, EventKind::Open)),
        "file.name" => {
            let path = col(Column::Path);
            let names: StringArray = (0..n)
                .map(|i| {
                    if kinds[i] != EventKind::Open {
                        return None;
                    }
                    crate::capture::str_at(path.as_ref(), i).map(|p| p.rsplit('/').next().unwrap_or(p).to_string())
                })
                .collect();
            Arc::new(names)
        }
        other => unreachable!("ECS field {other} has no materializer"),
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
    for (i, f) in ECS_FIELDS.iter().enumerate() {
        let a = materialize(i, batch);
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
