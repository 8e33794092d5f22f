//! The Tracee view: a successful `open` is a `security_file_open` event with
//! arguments `pathname` (the resolved path), `flags` and `syscall_pathname`
//! (the requested path); an `exec` is a `sched_process_exec`. The origin is
//! `container` when the event carries a container id, else `host`.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray, UInt64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema};

use crate::capture::{Column, EventBatch, EventKind, Projection};
use crate::view::ecs::visible;

/// Tracee's event name for an event kind.
pub fn event_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Open => "security_file_open",
        EventKind::Exec => "sched_process_exec",
    }
}

/// Where Tracee would say an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The task runs in a container (it has a container id).
    Container,
    /// The task runs on the host.
    Host,
}

impl Origin {
    /// `container` or `host`.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Container => "container",
            Origin::Host => "host",
        }
    }
}

/// Columns the Tracee view is built from.
pub fn tracee_projection() -> Projection {
    [
        Column::Kind,
        Column::Result,
        Column::Comm,
        Column::Path,
        Column::RequestedPath,
        Column::Flags,
        Column::ContainerId,
        Column::Pid,
        Column::Tid,
        Column::Ppid,
        Column::Uid,
        Column::Host,
        Column::CgroupId,
        Column::Args,
        Column::Exe,
        Column::Time,
    ]
    .into_iter()
    .collect()
}

/// The Tracee view of a batch as a record batch (visible events only), with
/// Tracee's field names: `eventName`, `origin`, `processName`, `processId`,
/// `threadId`, `parentProcessId`, `userId`, `hostName`, `containerId`,
/// `cgroupId`, `timestamp`, and the arguments as `args.pathname`,
/// `args.flags`, `args.syscall_pathname` (opens) and `args.argv`,
/// `args.pathname` (execs).
pub fn tracee_record_batch(batch: &EventBatch) -> RecordBatch {
    let vis = BooleanArray::new(visible(batch), None);
    let kinds = batch.kinds();
    let to_utf8 = |a: &ArrayRef| match a.data_type() {
        DataType::Dictionary(_, _) => cast(a, &DataType::Utf8).expect("dictionary of strings casts to text"),
        _ => a.clone(),
    };
    let col = |c: Column| to_utf8(batch.expect(c));
    let idx: UInt64Array = (0..batch.len() as u64).map(|i| i + batch.first_index()).collect();
    let names: StringArray = kinds.iter().map(|k| Some(event_name(*k))).collect();
    let container = col(Column::ContainerId);
    let origin: StringArray =
        (0..batch.len()).map(|i| Some(if container.is_valid(i) { "container" } else { "host" })).collect();
    let open_only = |a: ArrayRef| -> ArrayRef {
        let keep: BooleanArray = kinds.iter().map(|k| Some(*k == EventKind::Open)).collect();
        arrow::compute::nullif(&a, &arrow::compute::not(&keep).expect("not of a plain mask")).expect("same length")
    };
    let fields: Vec<(&str, ArrayRef)> = vec![
        ("event_index", Arc::new(idx)),
        ("timestamp", batch.expect(Column::Time).clone()),
        ("eventName", Arc::new(names)),
        ("origin", Arc::new(origin)),
        ("processName", col(Column::Comm)),
        ("processId", batch.expect(Column::Pid).clone()),
        ("threadId", batch.expect(Column::Tid).clone()),
        ("parentProcessId", batch.expect(Column::Ppid).clone()),
        ("userId", batch.expect(Column::Uid).clone()),
        ("hostName", col(Column::Host)),
        ("containerId", container.clone()),
        ("cgroupId", batch.expect(Column::CgroupId).clone()),
        ("args.pathname", col(Column::Path)),
        ("args.flags", open_only(batch.expect(Column::Flags).clone())),
        ("args.syscall_pathname", open_only(col(Column::RequestedPath))),
        ("args.argv", batch.expect(Column::Args).clone()),
    ];
    let schema =
        Schema::new(fields.iter().map(|(n, a)| Field::new(*n, a.data_type().clone(), true)).collect::<Vec<_>>());
    let rb = RecordBatch::try_new(Arc::new(schema), fields.into_iter().map(|(_, a)| a).collect())
        .expect("view columns share a length");
    arrow::compute::filter_record_batch(&rb, &vis).expect("mask has the batch's length")
}
