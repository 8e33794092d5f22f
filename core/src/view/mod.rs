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
///
/// Computed once per batch and shared by every rule that asks.
pub fn visible(batch: &EventBatch) -> BooleanBuffer {
    batch.visibility().rule.get_or_init(|| rule_visible(batch)).clone()
}

/// [`visible`], computed.
fn rule_visible(batch: &EventBatch) -> BooleanBuffer {
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
    batch.kind_mask(EventKind::K8sAudit)
}

/// Which events enter the ECS view: those of [`visible`], plus the `fork`
/// and `exit` rows of processes (not threads: `tid == pid`), which Defend for
/// Containers reports as process events with `event.action` `fork` and
/// `end`. Needs `pid` and `tid` when the batch has such rows.
///
/// Computed once per batch and shared by every rule that asks.
pub fn ecs_visible(batch: &EventBatch) -> BooleanBuffer {
    batch.visibility().ecs.get_or_init(|| ecs_visible_rows(batch)).clone()
}

/// [`ecs_visible`], computed.
fn ecs_visible_rows(batch: &EventBatch) -> BooleanBuffer {
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
    let n = batch.len();
    // Bitmaps combined word by word, not a test per row.
    let execs = batch.kind_mask(EventKind::Exec);
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array, StringArray, UInt32Array};

    use super::{ecs_visible, visible};
    use crate::capture::{Column, EventBatch, EventKind, Projection};

    fn bits(b: arrow_buffer::BooleanBuffer) -> Vec<bool> {
        b.iter().collect()
    }

    /// Rows: a successful exec, an open that failed (-2) on `/x`, a process's fork.
    fn batch(with_pids: bool) -> EventBatch {
        let mut columns: [Option<ArrayRef>; Column::COUNT] = std::array::from_fn(|_| None);
        columns[Column::Result.index()] = Some(Arc::new(Int64Array::from(vec![Some(0), Some(-2), None])));
        columns[Column::Path.index()] = Some(Arc::new(StringArray::from(vec![Some("/bin/cat"), Some("/x"), None])));
        if with_pids {
            columns[Column::Pid.index()] = Some(Arc::new(UInt32Array::from(vec![7, 8, 9])));
            columns[Column::Tid.index()] = Some(Arc::new(UInt32Array::from(vec![7, 8, 9])));
        }
        EventBatch::new(columns, vec![EventKind::Exec, EventKind::Open, EventKind::Fork], 0)
    }

    /// The masks are kept per batch; a batch whose columns change must not
    /// answer with the masks of the columns it had (a fork row would stay
    /// invisible to the ECS view once `pid`/`tid` arrive, a failed open would
    /// stay hidden once `result` is gone).
    #[test]
    fn the_kept_masks_follow_the_columns_a_batch_has() {
        let b = batch(false);
        assert_eq!(bits(ecs_visible(&b)), [true, false, false]);
        let mut pids: [Option<ArrayRef>; Column::COUNT] = std::array::from_fn(|_| None);
        pids[Column::Pid.index()] = batch(true).column(Column::Pid).cloned();
        pids[Column::Tid.index()] = batch(true).column(Column::Tid).cloned();
        let b = b.with_columns(pids);
        assert_eq!(bits(ecs_visible(&b)), [true, false, true], "a process fork is an ECS event");

        let b = batch(true);
        assert_eq!(bits(visible(&b)), [true, false, false]);
        let without_result: Projection = [Column::Path, Column::Pid, Column::Tid].into_iter().collect();
        let b = b.project(without_result);
        // Without `result`, an open is judged by its path (docs/rule-semantics.md).
        assert_eq!(bits(visible(&b)), [true, true, false]);
        // A clone holds the same rows and shares what was computed.
        assert_eq!(bits(visible(&b.clone())), [true, true, false]);
    }
}
