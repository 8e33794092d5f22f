//! How raw capture events look to each rule's home system. Each view is
//! defined once, here, and used both by its rule engine and by display (the
//! Python module's `ecs_view` and `tracee_view`), so what an analyst sees is
//! exactly what the rules evaluate.
//!
//! * [`ecs`]: the Elastic Common Schema documents Defend for Containers would
//!   have produced, queried by EQL rules.
//! * [`tracee`]: the Tracee events (`security_file_open`, `sched_process_exec`)
//!   a Tracee signature would have received.

use arrow_array::cast::AsArray;
use arrow_array::Array;
use arrow_buffer::BooleanBuffer;

use crate::capture::{Column, EventBatch, EventKind};
use crate::kernels::valid_bits;

pub mod ecs;
pub mod tracee;

/// Which events of a batch enter the rule views at all: execs that did not
/// fail (`result` null or `>= 0`: a failed execve runs nothing), opens
/// that succeeded (`result >= 0`, or `result` null with a non-null `path`),
/// and every Kubernetes audit event (`k8s_audit`: only the ECS view gives
/// them fields, so no Tracee signature selects them).
/// Rows of the other kinds (`fork`, `exit`, `process` snapshots, `container`
/// metadata; see [`EventKind::is_rule_event`]) never do.
pub fn visible(batch: &EventBatch) -> BooleanBuffer {
    let kinds = batch.kinds();
    let n = batch.len();
    if !kinds.iter().all(|k| k.is_rule_event()) {
        let rule_events = BooleanBuffer::collect_bool(n, |i| kinds[i].is_rule_event());
        let node = &rule_events & &visible_opens_and_execs(batch);
        return &node | &audit_rows(batch);
    }
    visible_opens_and_execs(batch)
}

/// The batch's Kubernetes audit events (`k8s_audit` rows).
pub fn audit_rows(batch: &EventBatch) -> BooleanBuffer {
    let kinds = batch.kinds();
    BooleanBuffer::collect_bool(batch.len(), |i| kinds[i] == EventKind::K8sAudit)
}

/// Which events enter the ECS view: those of [`visible`], plus the `fork`
/// and `exit` rows of processes (not threads: `tid == pid`), which Defend for
/// Containers reports as process events with `event.action` `fork` and
/// `end`. Needs `pid` and `tid` when the batch has such rows.
pub fn ecs_visible(batch: &EventBatch) -> BooleanBuffer {
    let kinds = batch.kinds();
    let base = visible(batch);
    if !kinds.iter().any(|k| matches!(k, EventKind::Fork | EventKind::Exit)) {
        return base;
    }
    let (Some(pid), Some(tid)) = (batch.column(Column::Pid), batch.column(Column::Tid)) else { return base };
    let (pid, tid) =
        (pid.as_primitive::<arrow_array::types::UInt32Type>(), tid.as_primitive::<arrow_array::types::UInt32Type>());
    let lifecycle = BooleanBuffer::collect_bool(batch.len(), |i| {
        matches!(kinds[i], EventKind::Fork | EventKind::Exit) && pid.value(i) == tid.value(i)
    });
    &base | &lifecycle
}

/// [`visible`] for a batch of opens and execs only.
fn visible_opens_and_execs(batch: &EventBatch) -> BooleanBuffer {
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
    let r = r.as_primitive::<arrow_array::types::Int64Type>();
    let values = r.values();
    let succeeded = BooleanBuffer::collect_bool(n, |i| values[i] >= 0);
    match r.nulls() {
        None => succeeded,
        Some(nulls) => &(nulls.inner() & &succeeded) | &(&!nulls.inner() & &fallback),
    }
}
