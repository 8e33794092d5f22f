//! Findings: what the replay reports, as Arrow record batches.

use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, RecordBatch, StringArray, UInt32Array, UInt64Array};
use arrow_cast::cast;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use arrow_select::take::take;

use crate::capture::{str_at, Column, EventBatch, Projection};
use crate::process::{Entity, EventLinks, ProcessContext};

/// Capture columns copied into every finding.
pub const FINDING_EVENT_COLUMNS: [Column; 20] = [
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
    // What a Kubernetes audit event (`k8s_audit`) says in place of a process:
    // who made the request, with which pod's token, and what it asked.
    Column::AuditUser,
    Column::AuditPodName,
    Column::AuditVerb,
    Column::AuditRequestUri,
    Column::AuditResponseCode,
];

/// The columns findings need from the capture.
pub fn findings_projection() -> Projection {
    FINDING_EVENT_COLUMNS.into_iter().collect()
}

/// The triage columns after `reason`: who the event's process is, in which
/// pod, under which parent and session (`docs/processes.md`). Every one is
/// null where the capture does not say (a version 1 capture has no pods),
/// and all are null when the replay ran without the process model
/// ([`crate::replay::ReplayOptions::context`]).
pub const FINDING_CONTEXT_COLUMNS: [(&str, ContextType); 14] = [
    ("pod_name", ContextType::Text),
    ("pod_namespace", ContextType::Text),
    ("container_name", ContextType::Text),
    ("image", ContextType::Text),
    ("process_entity_id", ContextType::Text),
    ("parent_pid", ContextType::Pid),
    ("parent_name", ContextType::Text),
    ("parent_args", ContextType::TextList),
    ("session_leader_pid", ContextType::Pid),
    ("session_leader_name", ContextType::Text),
    ("session_leader_tty", ContextType::Text),
    ("entry_leader_pid", ContextType::Pid),
    ("entry_leader_name", ContextType::Text),
    ("entry_leader_type", ContextType::Text),
];

/// The Arrow type of a triage column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextType {
    /// Utf8.
    Text,
    /// UInt32.
    Pid,
    /// List of Utf8.
    TextList,
}

impl ContextType {
    fn data_type(self) -> DataType {
        match self {
            ContextType::Text => DataType::Utf8,
            ContextType::Pid => DataType::UInt32,
            ContextType::TextList => DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
        }
    }
}

/// The schema of finding batches: `rule_id`, `rule_name`, `severity`,
/// `capture`, `event_index`, then the event's columns
/// ([`FINDING_EVENT_COLUMNS`], canonical types), then `reason`, then the
/// triage columns ([`FINDING_CONTEXT_COLUMNS`]).
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
    for (name, t) in FINDING_CONTEXT_COLUMNS {
        fields.push(Field::new(name, t.data_type(), true));
    }
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

/// Builds the finding batch for `hits` (already in output order) of one
/// event batch; the triage columns come from the batch's processes
/// ([`EventBatch::process`]), when it carries them.
pub fn build_findings<'a>(capture: &str, batch: &EventBatch, hits: &[Hit], rules: &[RuleInfo<'a>]) -> RecordBatch {
    let first = batch.first_index();
    build_findings_at(capture, batch, hits, rules, batch.process().map(|p| p.as_ref()), |row| first + row as u64)
}

/// [`build_findings`] for a batch whose rows are not consecutive events (the
/// rows that fired, gathered from a whole row group): `event_index(row)` is
/// the event index of each of its rows; `process`, the capture's processes
/// for the triage columns.
pub(crate) fn build_findings_at<'a>(
    capture: &str,
    batch: &EventBatch,
    hits: &[Hit],
    rules: &[RuleInfo<'a>],
    process: Option<&ProcessContext>,
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
    let ids = batch.expect(Column::ContainerId);
    let triage: Vec<Triage<'_>> = hits
        .iter()
        .map(|h| match process {
            Some(ctx) => Triage::of(ctx, event_index(h.row), str_at(ids.as_ref(), h.row)),
            None => Triage::default(),
        })
        .collect();
    columns.extend(triage_columns(&triage));
    RecordBatch::try_new(schema, columns).expect("finding columns match the findings schema")
}

/// `batch` (findings, or any batch carrying their `event_index`,
/// `container_id` and [`FINDING_CONTEXT_COLUMNS`]) with its triage columns
/// filled from `process`, the processes of the findings' capture.
pub fn fill_context(batch: &RecordBatch, process: &ProcessContext) -> RecordBatch {
    let schema = batch.schema();
    let (Ok(ix), Ok(cid)) = (schema.index_of("event_index"), schema.index_of("container_id")) else {
        return batch.clone();
    };
    let ix = batch.column(ix).as_primitive::<arrow_array::types::UInt64Type>();
    let cid = batch.column(cid);
    let triage: Vec<Triage<'_>> =
        (0..batch.num_rows()).map(|i| Triage::of(process, ix.value(i), str_at(cid.as_ref(), i))).collect();
    let mut columns = batch.columns().to_vec();
    for ((name, _), column) in FINDING_CONTEXT_COLUMNS.iter().zip(triage_columns(&triage)) {
        if let Ok(at) = schema.index_of(name) {
            columns[at] = column;
        }
    }
    RecordBatch::try_new(schema, columns).expect("the triage columns keep their types")
}

/// Pushes onto `events` the `event_index` of every row of `batch` (findings,
/// or any batch [`fill_context`] fills): the events whose links the triage
/// columns ask for.
pub fn context_events(batch: &RecordBatch, events: &mut Vec<u64>) {
    if let Some(ix) = batch.column_by_name("event_index") {
        if let Some(ix) = ix.as_primitive_opt::<arrow_array::types::UInt64Type>() {
            events.extend(ix.iter().flatten());
        }
    }
}

/// What the process model says about one finding's event.
#[derive(Default)]
struct Triage<'c> {
    links: Option<EventLinks>,
    ctx: Option<&'c ProcessContext>,
    container: Option<&'c crate::process::ContainerMeta>,
}

impl<'c> Triage<'c> {
    fn of(ctx: &'c ProcessContext, event_index: u64, container_id: Option<&str>) -> Self {
        Triage { links: ctx.links(event_index), ctx: Some(ctx), container: container_id.and_then(|c| ctx.container(c)) }
    }

    fn entity(&self, pick: impl Fn(&EventLinks) -> Option<crate::process::EntityRef>) -> Option<&'c Entity> {
        let r = pick(self.links.as_ref()?)?;
        Some(self.ctx?.entity(r))
    }
}

/// The [`FINDING_CONTEXT_COLUMNS`] of some findings, in that order.
fn triage_columns(rows: &[Triage<'_>]) -> Vec<ArrayRef> {
    let text = |f: &dyn Fn(&Triage<'_>) -> Option<String>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<StringArray>())
    };
    let pid =
        |f: &dyn Fn(&Triage<'_>) -> Option<u32>| -> ArrayRef { Arc::new(rows.iter().map(f).collect::<UInt32Array>()) };
    let meta = |f: fn(&crate::process::ContainerMeta) -> &Option<String>| {
        move |t: &Triage<'_>| t.container.and_then(|m| f(m).clone())
    };
    let parent = |l: &EventLinks| l.parent;
    let session = |l: &EventLinks| l.session_leader;
    let entry = |l: &EventLinks| l.entry_leader;
    let mut parent_args = ListBuilder::new(StringBuilder::new());
    for t in rows {
        let args = t.links.as_ref().and_then(parent).zip(t.ctx).and_then(|(r, ctx)| ctx.args_of(r));
        match args {
            Some(args) => {
                for a in args {
                    parent_args.values().append_value(a);
                }
                parent_args.append(true);
            }
            None => parent_args.append(false),
        }
    }
    vec![
        text(&meta(|m| &m.pod_name)),
        text(&meta(|m| &m.pod_namespace)),
        text(&meta(|m| &m.container_name)),
        text(&meta(|m| &m.image)),
        text(&|t| t.entity(|l| Some(l.process)).map(|e| e.id.clone())),
        pid(&|t| t.entity(parent).map(|e| e.pid)),
        text(&|t| t.entity(parent).and_then(|e| e.name.clone())),
        Arc::new(parent_args.finish()),
        pid(&|t| t.entity(session).map(|e| e.pid)),
        text(&|t| t.entity(session).and_then(|e| e.name.clone())),
        text(&|t| t.entity(session).and_then(|e| e.tty.clone().flatten())),
        pid(&|t| t.entity(entry).map(|e| e.pid)),
        text(&|t| t.entity(entry).and_then(|e| e.name.clone())),
        text(&|t| t.links.as_ref().and_then(|l| l.entry_type).map(|e| e.as_str().to_string())),
    ]
}

/// A string cell of a findings batch: `None` when null, or when the batch
/// lacks the column (a projection of the findings).
fn cell<'a>(b: &'a RecordBatch, name: &str, row: usize) -> Option<&'a str> {
    b.column_by_name(name).and_then(|a| str_at(a.as_ref(), row))
}

/// An argv element as a shell would need it written.
fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-=:,+@%".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// What finding `row` of a findings batch is about, in one line, as the CLI
/// table and the notebook view show it: the argv (shell-quoted) for an exec,
/// the path and access mode for an open (`requested -> resolved` when they
/// differ), the request and its answer for a Kubernetes audit event
/// (`list /api/v1/namespaces/shop/secrets -> 403 by system:serviceaccount:shop:web`).
pub fn finding_target(b: &RecordBatch, row: usize) -> String {
    use arrow_array::Array;
    let int = |name: &str| {
        b.column_by_name(name)
            .map(|a| a.as_primitive::<arrow_array::types::Int32Type>())
            .filter(|a| a.is_valid(row))
            .map(|a| a.value(row))
    };
    match cell(b, "kind", row) {
        Some("k8s_audit") => {
            let mut t = format!(
                "{} {}",
                cell(b, "audit_verb", row).unwrap_or(""),
                cell(b, "audit_request_uri", row).unwrap_or("")
            );
            if let Some(code) = int("audit_response_code") {
                t.push_str(&format!(" -> {code}"));
            }
            if let Some(user) = cell(b, "audit_user", row) {
                t.push_str(&format!(" by {user}"));
            }
            t
        }
        Some("exec") => match b.column_by_name("args").map(|a| a.as_list::<i32>()).filter(|a| a.is_valid(row)) {
            Some(args) => {
                let v = args.value(row);
                let v = v.as_string::<i32>();
                (0..v.len()).filter(|&j| v.is_valid(j)).map(|j| shell_word(v.value(j))).collect::<Vec<_>>().join(" ")
            }
            None => cell(b, "exe", row).unwrap_or("").to_string(),
        },
        _ => {
            let path = cell(b, "path", row).unwrap_or("");
            let mode =
                int("flags").map(|f| format!(" [{}]", crate::display::AccessMode::of(f).word())).unwrap_or_default();
            match cell(b, "requested_path", row) {
                Some(req) if req != path => format!("{req} -> {path}{mode}"),
                _ => format!("{path}{mode}"),
            }
        }
    }
}

/// Where finding `row` of a findings batch ran, as the CLI table and the
/// notebook view show it: `namespace/pod` (with `:container` when the pod's
/// container is named), else the short container id, else `(host)`. A
/// Kubernetes audit event ran on the API server: its place is the pod whose
/// token made the request, `token of POD` (`(API)` without one).
pub fn finding_place(b: &RecordBatch, row: usize) -> String {
    if cell(b, "kind", row) == Some("k8s_audit") {
        return cell(b, "audit_pod_name", row).map_or("(API)".to_string(), |pod| format!("token of {pod}"));
    }
    match (cell(b, "pod_namespace", row), cell(b, "pod_name", row)) {
        (ns, Some(pod)) => {
            let mut label = ns.map_or(pod.to_string(), |ns| format!("{ns}/{pod}"));
            if let Some(c) = cell(b, "container_name", row) {
                label.push(':');
                label.push_str(c);
            }
            label
        }
        _ => cell(b, "container_id", row).map_or("(host)".to_string(), crate::display::short_container_id),
    }
}
