//! The Tracee view: a successful `open` is a `security_file_open` event with
//! arguments `pathname` (the resolved path), `flags` and `syscall_pathname`
//! (the requested path); an `exec` is a `sched_process_exec`. The origin is
//! `container` when the event carries a container id, else `host`.
//!
//! [`TraceeView`] computes these fields once for a batch; the signature engine
//! evaluates them and [`tracee_record_batch`] shows them.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int32Array, RecordBatch, StringArray, UInt64Array};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Int32Type, Schema};

use super::visible;
use crate::capture::{Column, EventBatch, EventKind};
use crate::kernels::restrict;

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

/// The Tracee view of one batch of events. The batch must carry the columns
/// of the fields asked for: `kind`, `result` and `path` for which events
/// Tracee sees, `container_id` for the origin, `comm`, `flags`, ... for the
/// fields of the same name.
pub struct TraceeView<'a> {
    batch: &'a EventBatch,
}

impl<'a> TraceeView<'a> {
    /// The view of `batch`.
    pub fn new(batch: &'a EventBatch) -> Self {
        TraceeView { batch }
    }

    /// Which events Tracee would deliver at all (failed opens and failed
    /// execs never reach `security_file_open` / `sched_process_exec`).
    pub fn delivered(&self) -> BooleanBuffer {
        visible(self.batch)
    }

    /// Which events are `security_file_open` events: delivered opens.
    pub fn file_opens(&self) -> BooleanBuffer {
        let kinds = self.batch.kinds();
        &self.delivered() & &BooleanBuffer::collect_bool(self.batch.len(), |i| kinds[i] == EventKind::Open)
    }

    /// One bit per event: set where the origin is `container` (the event
    /// has a container id).
    pub fn in_container(&self) -> BooleanBuffer {
        match self.batch.expect(Column::ContainerId).logical_nulls() {
            Some(nulls) => nulls.inner().clone(),
            None => BooleanBuffer::new_set(self.batch.len()),
        }
    }

    /// The origin of event `row`.
    pub fn origin(&self, row: usize) -> Origin {
        let id = self.batch.expect(Column::ContainerId).slice(row, 1);
        if id.logical_nulls().is_none_or(|n| n.is_valid(0)) {
            Origin::Container
        } else {
            Origin::Host
        }
    }

    /// `processName`: the kernel's comm.
    pub fn process_name(&self) -> &'a ArrayRef {
        self.batch.expect(Column::Comm)
    }

    /// `args.pathname`: the resolved path (of the opened file, or of the executable).
    pub fn pathname(&self) -> &'a ArrayRef {
        self.batch.expect(Column::Path)
    }

    /// `args.flags` of `security_file_open` (missing on execs).
    pub fn flags(&self) -> Int32Array {
        self.open_only(self.batch.expect(Column::Flags)).as_primitive::<Int32Type>().clone()
    }

    /// `args.syscall_pathname` of `security_file_open`: the path as requested (missing on execs).
    pub fn syscall_pathname(&self) -> ArrayRef {
        self.open_only(self.batch.expect(Column::RequestedPath))
    }

    fn open_only(&self, a: &ArrayRef) -> ArrayRef {
        let kinds = self.batch.kinds();
        restrict(a, NullBuffer::new(BooleanBuffer::collect_bool(self.batch.len(), |i| kinds[i] == EventKind::Open)))
    }
}

/// The Tracee view of a batch as a record batch (visible events only), with
/// Tracee's field names: `eventName`, `origin`, `processName`, `processId`,
/// `threadId`, `parentProcessId`, `userId`, `hostName`, `containerId`,
/// `cgroupId`, `timestamp`, and the arguments as `args.pathname`,
/// `args.flags`, `args.syscall_pathname` (opens) and `args.argv`,
/// `args.pathname` (execs).
pub fn tracee_record_batch(batch: &EventBatch) -> RecordBatch {
    let view = TraceeView::new(batch);
    let vis = BooleanArray::new(view.delivered(), None);
    let kinds = batch.kinds();
    let to_utf8 = |a: &ArrayRef| match a.data_type() {
        DataType::Dictionary(_, _) => cast(a, &DataType::Utf8).expect("dictionary of strings casts to text"),
        _ => a.clone(),
    };
    let col = |c: Column| to_utf8(batch.expect(c));
    let idx: UInt64Array = (0..batch.len() as u64).map(|i| i + batch.first_index()).collect();
    let names: StringArray = kinds.iter().map(|k| Some(event_name(*k))).collect();
    let in_container = view.in_container();
    let origin: StringArray =
        in_container.iter().map(|c| Some(if c { Origin::Container } else { Origin::Host }.as_str())).collect();
    let fields: Vec<(&str, ArrayRef)> = vec![
        ("event_index", Arc::new(idx)),
        ("timestamp", batch.expect(Column::Time).clone()),
        ("eventName", Arc::new(names)),
        ("origin", Arc::new(origin)),
        ("processName", to_utf8(view.process_name())),
        ("processId", batch.expect(Column::Pid).clone()),
        ("threadId", batch.expect(Column::Tid).clone()),
        ("parentProcessId", batch.expect(Column::Ppid).clone()),
        ("userId", batch.expect(Column::Uid).clone()),
        ("hostName", col(Column::Host)),
        ("containerId", col(Column::ContainerId)),
        ("cgroupId", batch.expect(Column::CgroupId).clone()),
        ("args.pathname", to_utf8(view.pathname())),
        ("args.flags", Arc::new(view.flags())),
        ("args.syscall_pathname", to_utf8(&view.syscall_pathname())),
        ("args.argv", batch.expect(Column::Args).clone()),
    ];
    let schema =
        Schema::new(fields.iter().map(|(n, a)| Field::new(*n, a.data_type().clone(), true)).collect::<Vec<_>>());
    let rb = RecordBatch::try_new(Arc::new(schema), fields.into_iter().map(|(_, a)| a).collect())
        .expect("view columns share a length");
    arrow::compute::filter_record_batch(&rb, &vis).expect("mask has the batch's length")
}
