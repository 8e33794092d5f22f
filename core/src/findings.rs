//! Findings: what the replay reports, as Arrow record batches.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, UInt32Array, UInt64Array};
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::capture::{Column, EventBatch, Projection};

/// Capture columns copied into every finding.
pub const FINDING_EVENT_COLUMNS: [Column; 15] = [
    Column::Time,
    Column::Kind,
    Column::Host,
    Column::ContainerId,
    Column::Pid,
    Column::Tid,
    Column::Ppid,
    Column::Uid,
    Column::Comm,
    Column::Exe,
    Column::Args,
    Column::Path,
    Column::RequestedPath,
    Column::Flags,
    Column::Tty,
];

/// The columns findings need from the capture.
pub fn findings_projection() -> Projection {
    FINDING_EVENT_COLUMNS.into_iter().collect()
}

/// The schema of finding batches: `rule_id`, `rule_name`, `severity`,
/// `capture`, `event_index`, then the event's columns
/// ([`FINDING_EVENT_COLUMNS`], canonical types), then `reason`.
pub fn findings_schema() -> SchemaRef {
    let mut fields = vec![
        Field::new("rule_id", DataType::Utf8, false),
        Field::new("rule_name", DataType::Utf8, false),
        Field::new("severity", DataType::Utf8, false),
        Field::new("capture", DataType::Utf8, false),
        Field::new("event_index", DataType::UInt64, false),
    ];
    for c in FINDING_EVENT_COLUMNS {
        fields.push(Field::new(c.name(), c.data_type(), c.nullable()));
    }
    fields.push(Field::new("reason", DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

/// One matched event before it becomes a row.
#[derive(Debug, Clone)]
pub struct Hit {
    /// Row in the event batch.
    pub row: usize,
    /// Position of the rule in the rule set.
    pub rule: usize,
    /// Why it fired.
    pub reason: String,
}

/// Rule identity columns for findings.
pub struct RuleInfo<'a> {
    /// Rule id.
    pub id: &'a str,
    /// Rule name.
    pub name: &'a str,
    /// Severity.
    pub severity: &'a str,
}

/// Builds the finding batch for `hits` (already in output order) of one event batch.
pub fn build_findings<'a>(capture: &str, batch: &EventBatch, hits: &[Hit], rules: &[RuleInfo<'a>]) -> RecordBatch {
    let first = batch.first_index();
    build_findings_at(capture, batch, hits, rules, |row| first + row as u64)
}

/// [`build_findings`] for a batch whose rows are not consecutive events (the
/// rows that fired, gathered from a whole row group): `event_index(row)` is
/// the event index of each of its rows.
pub(crate) fn build_findings_at<'a>(
    capture: &str,
    batch: &EventBatch,
    hits: &[Hit],
    rules: &[RuleInfo<'a>],
    event_index: impl Fn(usize) -> u64,
) -> RecordBatch {
    let schema = findings_schema();
    let rows: UInt32Array = hits.iter().map(|h| h.row as u32).collect();
    let rule_col = |f: fn(&RuleInfo<'a>) -> &'a str| -> ArrayRef {
        Arc::new(hits.iter().map(|h| Some(f(&rules[h.rule]))).collect::<StringArray>())
    };
    let mut columns: Vec<ArrayRef> = vec![
        rule_col(|r| r.id),
        rule_col(|r| r.name),
        rule_col(|r| r.severity),
        Arc::new(StringArray::from(vec![capture; hits.len()])),
        Arc::new(hits.iter().map(|h| event_index(h.row)).collect::<UInt64Array>()),
    ];
    for c in FINDING_EVENT_COLUMNS {
        let a = batch.expect(c);
        let taken = take(a.as_ref(), &rows, None).expect("rows are in range");
        let taken = if taken.data_type() != &c.data_type() {
            cast(&taken, &c.data_type()).expect("canonical string columns cast to Utf8")
        } else {
            taken
        };
        columns.push(taken);
    }
    columns.push(Arc::new(hits.iter().map(|h| Some(h.reason.as_str())).collect::<StringArray>()));
    RecordBatch::try_new(schema, columns).expect("finding columns match the findings schema")
}
