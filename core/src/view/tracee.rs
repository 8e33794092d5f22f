//! The Tracee view: a successful `open` is a `security_file_open` event with
//! arguments `pathname` (the resolved path), `flags` and `syscall_pathname`
//! (the requested path); an `exec` is a `sched_process_exec`. The origin is
//! `host` for an event without a container id; with one, `container` once
//! the container has started (its entry point ran) and `container-init`
//! before that, as far as the capture shows it (see
//! [`crate::process::ContainerState`]).
//!
//! [`TraceeView`] computes these fields once for a batch; the signature engine
//! evaluates them and [`tracee_record_batch`] shows them.

use std::sync::Arc;

use arrow_array::builder::BooleanBufferBuilder;
use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{Array, ArrayRef, BooleanArray, Int32Array, RecordBatch, StringArray, UInt64Array};
use arrow_buffer::{BooleanBuffer, NullBuffer};
use arrow_cast::cast;
use arrow_schema::{DataType, Field, Schema};

use super::visible;
use crate::capture::{Column, EventBatch, EventKind};
use crate::kernels::restrict;

/// Tracee's event name for an event kind. Only opens and execs reach the
/// view (see [`visible`]); a `process`, `container` or `k8s_audit` row,
/// which Tracee has no event for, is named by its capture kind.
pub fn event_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Open => "security_file_open",
        EventKind::Exec => "sched_process_exec",
        EventKind::Fork => "sched_process_fork",
        EventKind::Exit => "sched_process_exit",
        EventKind::Process | EventKind::Container | EventKind::K8sAudit | EventKind::File(_) => kind.as_str(),
    }
}

/// Where Tracee would say an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The task runs in a container that has started (its entry point ran).
    Container,
    /// The task runs in a container whose entry point has not run yet.
    ContainerInit,
    /// The task runs on the host.
    Host,
}

impl Origin {
    /// `container`, `container-init` or `host`.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Container => "container",
            Origin::ContainerInit => "container-init",
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
        &self.delivered() & &self.batch.kind_mask(EventKind::Open)
    }

    /// One bit per event: set where the origin is `container` (the event
    /// has a container id).
    pub fn in_container(&self) -> BooleanBuffer {
        match self.batch.expect(Column::ContainerId).logical_nulls() {
            Some(nulls) => nulls.inner().clone(),
            None => BooleanBuffer::new_set(self.batch.len()),
        }
    }

    /// One bit per event: set where the origin is `container` (a container
    /// that has started). Where the capture's `container_started` column
    /// says it (an import of Tracee's own `contextFlags.containerStarted`),
    /// that decides; elsewhere the capture's processes do (see
    /// [`EventBatch::process`]), and without them every container counts as started.
    pub fn in_started_container(&self) -> BooleanBuffer {
        let in_container = self.in_container();
        self.started_among(&in_container)
    }

    /// `rows` (container events) without those whose container was still
    /// starting: [`TraceeView::in_started_container`] judged only at the
    /// rows set, for callers that have already narrowed the batch down to
    /// a few candidates (the start-up look-up is per event).
    pub fn started_among(&self, rows: &BooleanBuffer) -> BooleanBuffer {
        let Some(starting) = self.starting() else { return rows.clone() };
        let mut kept = BooleanBufferBuilder::new(rows.len());
        kept.append_buffer(rows);
        for i in rows.set_indices() {
            if starting.at(i) {
                kept.set_bit(i, false);
            }
        }
        kept.finish()
    }

    /// What says whether a container event is in a container still
    /// starting; `None` when nothing can (no `container_started` values and
    /// no container seen starting): every container event is started.
    fn starting(&self) -> Option<Starting<'a>> {
        let said =
            self.batch.column(Column::ContainerStarted).map(|a| a.as_boolean()).filter(|a| a.null_count() < a.len());
        let ctx = self.batch.process().filter(|ctx| ctx.may_have_containers_starting());
        if said.is_none() && ctx.is_none() {
            return None;
        }
        Some(Starting {
            batch: self.batch,
            said,
            ctx,
            ids: self.batch.expect(Column::ContainerId),
            last: Default::default(),
        })
    }

    /// The origin of event `row`.
    pub fn origin(&self, row: usize) -> Origin {
        if !self.in_container().value(row) {
            Origin::Host
        } else if self.starting().is_some_and(|s| s.at(row)) {
            Origin::ContainerInit
        } else {
            Origin::Container
        }
    }

    /// `processName`: the kernel's comm.
    pub fn process_name(&self) -> &'a ArrayRef {
        self.batch.expect(Column::Comm)
    }

    /// `executable.path`: the process's executable (`exe`).
    pub fn executable_path(&self) -> &'a ArrayRef {
        self.batch.expect(Column::Exe)
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
        restrict(a, NullBuffer::new(self.batch.kind_mask(EventKind::Open)))
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
    let idx: UInt64Array = (0..batch.len()).map(|i| batch.event_index(i)).collect();
    let names: StringArray = kinds.iter().map(|k| Some(event_name(*k))).collect();
    let (in_container, started) = (view.in_container(), view.in_started_container());
    let origin: StringArray = in_container
        .iter()
        .zip(started.iter())
        .map(|(c, s)| {
            let origin = match (c, s) {
                (false, _) => Origin::Host,
                (true, true) => Origin::Container,
                (true, false) => Origin::ContainerInit,
            };
            Some(origin.as_str())
        })
        .collect();
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
    arrow_select::filter::filter_record_batch(&rb, &vis).expect("mask has the batch's length")
}

/// Whether the container events of a batch are in a container still
/// starting ([`TraceeView::in_started_container`]).
struct Starting<'a> {
    batch: &'a EventBatch,
    said: Option<&'a BooleanArray>,
    ctx: Option<&'a Arc<crate::process::ProcessContext>>,
    ids: &'a ArrayRef,
    /// The last container id looked up and from which event it started:
    /// consecutive events mostly share their container.
    last: std::cell::RefCell<Option<(&'a str, Option<u64>)>>,
}

impl<'a> Starting<'a> {
    /// For a container event `row`: whether its container was still starting.
    fn at(&self, row: usize) -> bool {
        if let Some(a) = self.said.filter(|a| a.is_valid(row)) {
            return !a.value(row);
        }
        // An exec, a snapshot row or an event from any process but the
        // runtime's init shows the entry point has run (ContainerState):
        // only the init's own events need the capture's start-up.
        if matches!(self.batch.kinds()[row], EventKind::Exec | EventKind::Process)
            || !self
                .batch
                .column(Column::Comm)
                .and_then(|c| crate::capture::str_at(c.as_ref(), row))
                .is_some_and(crate::process::is_runtime_init)
        {
            return false;
        }
        let (Some(ctx), Some(id)) = (self.ctx, crate::capture::str_at(self.ids.as_ref(), row)) else { return false };
        let mut last = self.last.borrow_mut();
        let at = match *last {
            Some((l, at)) if l == id => at,
            _ => {
                let at = ctx.container_started_at(id);
                *last = Some((id, at));
                at
            }
        };
        at.is_some_and(|at| self.batch.event_index(row) < at)
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int32Type, UInt64Type};
    use arrow_array::Array;

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use arrow_buffer::BooleanBuffer;

    use super::{tracee_record_batch, TraceeView};
    use crate::capture::events_from_ndjson;
    use crate::process::{ProcessContext, ProcessContextBuilder};
    use crate::rules::RuleSet;

    /// Both views of rows gathered from a batch (as the findings' rows are)
    /// number each row by its own event, not by its place among the rows.
    #[test]
    fn the_views_of_gathered_rows_keep_their_event_indexes() {
        let line = |comm: &str| {
            format!(
                r#"{{"time":1,"kind":"open","host":"n","pid":1,"tid":1,"ppid":1,"uid":0,"gid":0,"comm":"{comm}","exe":"/bin/cat","path":"/etc/hosts","flags":0,"result":3,"cgroup_id":1}}"#
            )
        };
        let lines: Vec<String> = ["a", "b", "c", "d", "e"].into_iter().map(line).collect();
        let batch = events_from_ndjson(&lines.join("\n"), "t.ndjson", 64).expect("events").remove(0);
        let gathered = batch.take(&[1, 4]);
        for shown in [tracee_record_batch(&gathered), crate::view::ecs::ecs_record_batch(&gathered)] {
            let index = shown.column_by_name("event_index").expect("event_index");
            assert_eq!(index.as_primitive::<UInt64Type>().values().to_vec(), [1, 4]);
        }
    }

    /// Only an event of the runtime's init can be in a container still
    /// starting, so the capture's start-up pass (a read of the whole
    /// capture, deferred by the driver) runs only when a rule asks about
    /// such an event, once, and gives the same answers as before.
    #[test]
    fn the_start_up_pass_runs_only_for_an_event_of_the_runtime_init() {
        let event = |kind: &str, comm: &str, container: &str| {
            format!(
                r#"{{"time":1,"kind":"{kind}","host":"n","pid":1,"tid":1,"ppid":1,"uid":0,"gid":0,"comm":"{comm}","path":"/t","flags":0,"result":3,"cgroup_id":1,"container_id":"{container}"}}"#
            )
        };
        // aaa is set up in the capture: its init opens (0), execs the entry
        // point (1), which opens (2). bbb was running: its workload opens (3).
        let lines = [
            event("open", "runc:[2:INIT]", "aaa"),
            event("exec", "app", "aaa"),
            event("open", "app", "aaa"),
            event("open", "web", "bbb"),
        ]
        .join("\n");
        let batch = events_from_ndjson(&lines, "c.ndjson", 100).unwrap().remove(0);
        let passes = Arc::new(AtomicUsize::new(0));
        let counted = passes.clone();
        let pass_batch = batch.clone();
        let later = ProcessContext::starts_later(Box::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            let mut b = ProcessContextBuilder::starts_only();
            b.push_batch(&pass_batch);
            Ok(b.finish())
        }));
        let batch = batch.with_process(Some(Arc::new(later)));
        let view = TraceeView::new(&batch);
        let rows = |set: &[usize]| BooleanBuffer::collect_bool(4, |i| set.contains(&i));
        let set = |b: BooleanBuffer| b.set_indices().collect::<Vec<_>>();
        // The workload's events and the exec: started, no pass.
        assert_eq!(set(view.started_among(&rows(&[1, 2, 3]))), [1, 2, 3]);
        assert_eq!(passes.load(Ordering::SeqCst), 0);
        // The init's open: starting, found by one pass.
        assert_eq!(set(view.started_among(&rows(&[0, 2, 3]))), [2, 3]);
        assert_eq!(set(view.in_started_container()), [1, 2, 3]);
        assert_eq!(passes.load(Ordering::SeqCst), 1);
    }

    /// What `tracee_view` shows is what TRC-108 evaluates: the rows shown as a
    /// container `security_file_open` of a non-allow-listed process with a
    /// read access mode and a token path are exactly the rows that fire.
    #[test]
    fn the_view_shown_is_the_view_trc_108_evaluates() {
        let token = "/var/run/secrets/kubernetes.io/serviceaccount/..data/token";
        let open = |comm: &str, extra: &str| {
            format!(
                r#"{{"time":1,"kind":"open","host":"n","pid":1,"tid":1,"ppid":1,"uid":0,"gid":0,"comm":"{comm}","path":"{token}",{extra},"cgroup_id":1}}"#
            )
        };
        let lines = [
            // 0: a container read of the token: shown, fires.
            open("cat", r#""flags":0,"result":3,"container_id":"c1""#),
            // 1: the same read on the host: shown with origin host, does not fire.
            open("cat", r#""flags":0,"result":3"#),
            // 2: a failed open: not shown, does not fire.
            open("cat", r#""flags":0,"result":-13,"container_id":"c1""#),
            // 3: an exec: shown as sched_process_exec without flags.
            r#"{"time":1,"kind":"exec","host":"n","pid":1,"tid":1,"ppid":1,"uid":0,"gid":0,"comm":"sh","exe":"/bin/sh","args":["sh"],"path":"/bin/sh","result":0,"cgroup_id":1,"container_id":"c1"}"#.to_string(),
            // 4: flags missing: shown without flags, cannot be evaluated.
            open("cat", r#""flags":null,"result":3,"container_id":"c1""#),
            // 5: an allow-listed process: shown, does not fire.
            open("kubectl", r#""flags":0,"result":3,"container_id":"c1""#),
            // 6: a write-only open (O_WRONLY): shown with flags 1, does not fire.
            open("cat", r#""flags":1,"result":3,"container_id":"c1""#),
        ];
        let batch = events_from_ndjson(&lines.join("\n"), "t.ndjson", 64).expect("events").remove(0);
        let shown = tracee_record_batch(&batch);
        let col = |name: &str| shown.column_by_name(name).expect(name).clone();
        let index: Vec<u64> = col("event_index").as_primitive::<UInt64Type>().values().to_vec();
        assert_eq!(index, [0, 1, 3, 4, 5, 6]);
        let names = col("eventName");
        let names: Vec<&str> = (0..names.len()).map(|i| names.as_string::<i32>().value(i)).collect();
        assert_eq!(
            names,
            [
                "security_file_open",
                "security_file_open",
                "sched_process_exec",
                "security_file_open",
                "security_file_open",
                "security_file_open"
            ]
        );
        let origin = col("origin");
        let origin: Vec<&str> = (0..origin.len()).map(|i| origin.as_string::<i32>().value(i)).collect();
        assert_eq!(origin, ["container", "host", "container", "container", "container", "container"]);
        let flags = col("args.flags");
        let flags = flags.as_primitive::<Int32Type>();
        let flags: Vec<Option<i32>> = (0..flags.len()).map(|i| flags.is_valid(i).then(|| flags.value(i))).collect();
        assert_eq!(flags, [Some(0), Some(0), None, None, Some(0), Some(1)]);

        let rules = RuleSet::builtin(&Default::default()).expect("built-in rules");
        let trc108 = rules.rules().iter().find(|r| r.id == "TRC-108").expect("TRC-108");
        let verdict = trc108.evaluate(&batch);
        assert_eq!(verdict.fires.set_indices().collect::<Vec<_>>(), [0]);
        assert_eq!(verdict.unevaluable.iter().map(|(row, _)| *row).collect::<Vec<_>>(), [4]);
    }
}
