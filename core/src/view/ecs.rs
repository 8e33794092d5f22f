//! The Elastic (ECS) view: how a capture event looks to an EQL rule written
//! for Defend for Containers. See `docs/rule-semantics.md`.

use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{Array, ArrayRef, BooleanArray, DictionaryArray, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow_buffer::{BooleanBuffer, NullBuffer};
use arrow_cast::cast;
use arrow_schema::{DataType, Field, Schema};

use super::ecs_visible as visible;
use crate::capture::{str_at, Column, EventBatch, EventKind, FileOp, Projection};
use crate::display::rfc3339;
use crate::kernels::{restrict, valid_bits};
use crate::process::{ContainerMeta, Entity, EntityRef, EventLinks, ProcessContext};

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
    /// Every event, node and Kubernetes audit events alike (`event.dataset`, `data_stream.dataset`).
    All,
    /// Every node event (process and file events); missing on Kubernetes audit events.
    Node,
    /// Only process (`exec`) events.
    Exec,
    /// Only file events: opens and file operations (`create`, `delete`, ...).
    Open,
    /// Only Kubernetes audit events (`k8s_audit`): the `kubernetes.audit.*` fields.
    Audit,
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
    /// Whether the value comes from the capture's process table
    /// ([`crate::process::ProcessContext`]), which the driver then builds.
    pub process: bool,
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
            process: false,
            build: $build,
        }
    };
}

/// A field read from the process table (and the columns listed).
macro_rules! pfield {
    ($name:expr, $ty:ident, $multi:literal, [$($c:ident),*], $build:expr, $doc:expr) => {
        EcsField {
            name: $name,
            ty: FieldType::$ty,
            multi: $multi,
            carriers: Carriers::Node,
            columns: &[$(Column::$c),*],
            doc: $doc,
            process: true,
            build: $build,
        }
    };
}

/// The same attribute of each of the four related processes.
macro_rules! leader_fields {
    ($who:ident, $prefix:literal, $what:literal) => {
        [
            pfield!(
                concat!($prefix, ".args"),
                Keyword,
                true,
                [],
                |b| rel_args(b, Who::$who),
                concat!("argv of ", $what, " (its latest exec)")
            ),
            pfield!(
                concat!($prefix, ".entity_id"),
                Keyword,
                false,
                [],
                |b| rel_str(b, Who::$who, |e| Some(e.id.clone())),
                concat!("entity id of ", $what)
            ),
            pfield!(
                concat!($prefix, ".executable"),
                Keyword,
                false,
                [],
                |b| rel_str(b, Who::$who, |e| e.executable.clone()),
                concat!("executable of ", $what)
            ),
            pfield!(
                concat!($prefix, ".name"),
                Keyword,
                false,
                [],
                |b| rel_str(b, Who::$who, |e| e.name.clone()),
                concat!("comm of ", $what)
            ),
            pfield!(concat!($prefix, ".pid"), Long, false, [], |b| rel_pid(b, Who::$who), concat!("pid of ", $what)),
            pfield!(
                concat!($prefix, ".start"),
                Keyword,
                false,
                [],
                |b| rel_str(b, Who::$who, |e| e.start.map(rfc3339)),
                concat!("start time of ", $what, " (RFC 3339 text, v2 captures)")
            ),
            pfield!(
                concat!($prefix, ".user.id"),
                Keyword,
                false,
                [],
                |b| rel_str(b, Who::$who, |e| e.uid.map(|u| u.to_string())),
                concat!("uid of ", $what, ", as a string")
            ),
            pfield!(
                concat!($prefix, ".group.id"),
                Keyword,
                false,
                [],
                |b| rel_str(b, Who::$who, |e| e.gid.map(|g| g.to_string())),
                concat!("gid of ", $what, ", as a string")
            ),
            pfield!(
                concat!($prefix, ".interactive"),
                Boolean,
                false,
                [],
                |b| rel_bool(b, Who::$who),
                concat!("whether ", $what, " has a controlling terminal")
            ),
            pfield!(
                concat!($prefix, ".working_directory"),
                Keyword,
                false,
                [],
                |b| rel_str(b, Who::$who, |e| e.cwd.clone()),
                concat!("working directory of ", $what, " (v2 captures)")
            ),
            pfield!(
                concat!($prefix, ".same_as_process"),
                Boolean,
                false,
                [],
                |b| rel_same(b, Who::$who),
                concat!("whether ", $what, " is the event's process")
            ),
        ]
    };
}

/// Every field the ECS view provides. Any other field in a query is an error
/// (or always missing, when written `?field`).
pub static ECS_FIELDS: std::sync::LazyLock<Vec<EcsField>> = std::sync::LazyLock::new(|| {
    let mut v: Vec<EcsField> = BASE_FIELDS.into_iter().collect();
    v.extend(PROCESS_FIELDS);
    // process.parent.pid is already in BASE_FIELDS (the ppid column, on every event).
    v.extend(
        leader_fields!(Parent, "process.parent", "the parent").into_iter().filter(|f| f.name != "process.parent.pid"),
    );
    v.extend(leader_fields!(Session, "process.session_leader", "the session leader"));
    v.extend(leader_fields!(Group, "process.group_leader", "the process-group leader"));
    v.extend(leader_fields!(Entry, "process.entry_leader", "the entry leader"));
    v.extend(AUDIT_FIELDS);
    v
});

/// A `kubernetes.audit.*` field: an `audit_*` column on Kubernetes audit events only.
macro_rules! afield {
    ($name:literal, $c:ident, $doc:literal) => {
        field!($name, Keyword, false, Audit, [$c], |b| of_kind(b, Column::$c, EventKind::K8sAudit), $doc)
    };
}

/// The fields of Kubernetes audit events, named as Elastic's Kubernetes
/// integration names them in `logs-kubernetes.audit_logs-*` (annotation keys
/// with `.` replaced by `_`, as its pipeline does). See docs/rule-semantics.md.
const AUDIT_FIELDS: [EcsField; 19] = [
    afield!("kubernetes.audit.auditID", AuditId, "audit_id"),
    afield!("kubernetes.audit.stage", AuditStage, "audit_stage"),
    afield!("kubernetes.audit.verb", AuditVerb, "audit_verb"),
    afield!("kubernetes.audit.requestURI", AuditRequestUri, "audit_request_uri"),
    afield!("kubernetes.audit.user.username", AuditUser, "audit_user"),
    field!(
        "kubernetes.audit.user.groups",
        Keyword,
        true,
        Audit,
        [AuditUserGroups],
        |b| of_kind(b, Column::AuditUserGroups, EventKind::K8sAudit),
        "audit_user_groups"
    ),
    afield!(
        "kubernetes.audit.user.extra.authentication.kubernetes.io/pod-name",
        AuditPodName,
        "audit_pod_name: the first value of the log's array (single-valued here, so it can be a sequence's join key)"
    ),
    field!(
        "kubernetes.audit.sourceIPs",
        Keyword,
        true,
        Audit,
        [AuditSourceIps],
        |b| of_kind(b, Column::AuditSourceIps, EventKind::K8sAudit),
        "audit_source_ips"
    ),
    afield!("kubernetes.audit.userAgent", AuditUserAgent, "audit_user_agent"),
    afield!("kubernetes.audit.objectRef.resource", AuditResource, "audit_resource"),
    afield!("kubernetes.audit.objectRef.subresource", AuditSubresource, "audit_subresource"),
    afield!("kubernetes.audit.objectRef.namespace", AuditNamespace, "audit_namespace"),
    afield!("kubernetes.audit.objectRef.name", AuditName, "audit_name"),
    afield!("kubernetes.audit.objectRef.apiGroup", AuditApiGroup, "audit_api_group"),
    afield!("kubernetes.audit.objectRef.apiVersion", AuditApiVersion, "audit_api_version"),
    field!(
        "kubernetes.audit.responseStatus.code",
        Long,
        false,
        Audit,
        [AuditResponseCode],
        audit_response_code,
        "audit_response_code"
    ),
    afield!("kubernetes.audit.annotations.authorization_k8s_io/decision", AuditDecision, "audit_decision"),
    afield!("kubernetes.audit.annotations.authorization_k8s_io/reason", AuditReason, "audit_reason"),
    field!(
        "kubernetes.audit.requestReceivedTimestamp",
        Keyword,
        false,
        Audit,
        [AuditRequestReceived],
        |b| audit_time(b, Column::AuditRequestReceived),
        "audit_request_received (RFC 3339 text)"
    ),
];

const BASE_FIELDS: [EcsField; 23] = [
    field!("host.os.type", Keyword, false, All, [], |b| dict(vec![0; b.len()], None, &["linux"]), "always \"linux\" (on audit events too: the host of the Elastic Agent that reads an audit log is a Linux control-plane node)"),
    field!("host.name", Keyword, false, Node, [Host], |b| col(b, Column::Host), "host"),
    field!("container.id", Keyword, false, Node, [ContainerId], |b| col(b, Column::ContainerId), "container_id (missing on the host)"),
    field!("event.category", Keyword, false, Node, [], |b| by_kind(b, ["process", "file"]), "\"process\" for exec, fork and end, \"file\" for open and the file operations"),
    field!("event.action", Keyword, false, Node, [], event_action, "\"exec\", \"fork\", \"end\" (a process exit), \"open\"; file operations: \"creation\" (create), \"modification\" (modify, chmod, chown), \"deletion\" (delete), \"rename\", \"link\" (link, symlink)"),
    field!("event.type", Keyword, false, Node, [Flags], event_type, "exec and fork: \"start\"; end: \"end\"; open: \"change\" when flags & O_ACCMODE is O_WRONLY or O_RDWR, else \"access\" (missing when flags is null); create, link, symlink: \"creation\"; modify, rename, chmod, chown: \"change\"; delete: \"deletion\""),
    field!("process.pid", Long, false, Node, [Pid], |b| long(b, Column::Pid), "pid"),
    field!("process.thread.id", Long, false, Node, [Tid], |b| long(b, Column::Tid), "tid"),
    field!("process.parent.pid", Long, false, Node, [Ppid], |b| long(b, Column::Ppid), "ppid"),
    field!("process.name", Keyword, false, Node, [Comm], |b| col(b, Column::Comm), "comm"),
    field!("process.executable", Keyword, false, Node, [Exe], |b| col(b, Column::Exe), "exe"),
    field!("process.interactive", Boolean, false, Node, [Tty], process_interactive, "tty is not null"),
    field!("process.args", Keyword, true, Exec, [Args], |b| of_kind(b, Column::Args, EventKind::Exec), "args (exec only)"),
    field!("process.args_count", Long, false, Exec, [Args], process_args_count, "number of args (exec only)"),
    field!("user.id", Keyword, false, Node, [Uid], |b| text(b, Column::Uid), "uid, as a string"),
    field!("group.id", Keyword, false, Node, [Gid], |b| text(b, Column::Gid), "gid, as a string"),
    field!("file.path", Keyword, false, Open, [Path], |b| of_files(b, Column::Path, |_| true), "path (file events only): the resolved path of an open; of a file operation, the file it made or changed (a rename's new path, a link's new name)"),
    field!("file.name", Keyword, false, Open, [Path], file_name, "last component of path (file events only)"),
    field!("file.extension", Keyword, false, Open, [Path], file_extension, "what follows the last `.` of file.name (file events only; missing without a dot, or when the only dot starts the name)"),
    field!("file.Ext.original.path", Keyword, false, Open, [OldPath], |b| of_files(b, Column::OldPath, |k| k == EventKind::File(FileOp::Rename)), "old_path of a rename: the path before (rename only)"),
    field!("file.target_path", Keyword, false, Open, [OldPath], |b| of_files(b, Column::OldPath, |k| matches!(k, EventKind::File(FileOp::Link | FileOp::Symlink))), "old_path of a link (the existing file) or symlink (the target as given)"),
    field!("event.dataset", Keyword, false, All, [], dataset, "\"cloud_defend.process\" for exec, fork and end, \"cloud_defend.file\" for open and the file operations, \"kubernetes.audit_logs\" for a Kubernetes audit event"),
    field!("data_stream.dataset", Keyword, false, All, [], dataset, "same as event.dataset"),
];

const PROCESS_FIELDS: [EcsField; 13] = [
    pfield!(
        "process.entity_id",
        Keyword,
        false,
        [],
        |b| rel_str(b, Who::Process, |e| Some(e.id.clone())),
        "the process table's entity id (`HOST:PID:START`, see docs/processes.md)"
    ),
    pfield!(
        "process.start",
        Keyword,
        false,
        [],
        |b| rel_str(b, Who::Process, |e| e.start.map(rfc3339)),
        "start time of the process (RFC 3339 text, v2 captures)"
    ),
    pfield!(
        "process.end",
        Keyword,
        false,
        [],
        |b| rel_str(b, Who::Process, |e| e.end.map(rfc3339)),
        "exit time of the process, when the capture has its exit (RFC 3339 text, v2 captures)"
    ),
    // The event's own `cwd`, as process.name is its `comm`: the directory at
    // the event, not the process's last one (a shell that later `cd`s).
    field!(
        "process.working_directory",
        Keyword,
        false,
        Node,
        [Cwd],
        |b| col(b, Column::Cwd),
        "cwd, the working directory at the event (v2 captures)"
    ),
    pfield!(
        "process.previous.args",
        Keyword,
        true,
        [],
        previous_args,
        "argv of every earlier image of the process, oldest first"
    ),
    pfield!(
        "process.previous.executable",
        Keyword,
        true,
        [],
        previous_executable,
        "executable of every earlier image of the process, oldest first"
    ),
    pfield!(
        "process.entry_leader.entry_meta.type",
        Keyword,
        false,
        [],
        entry_type,
        "\"container\" when the entry leader entered a container"
    ),
    pfield!(
        "container.image.name",
        Keyword,
        false,
        [ContainerId],
        |b| container_str(b, |m| m.image_name.clone()),
        "image name of the container (its metadata row, v2 captures)"
    ),
    pfield!(
        "container.image.tag",
        Keyword,
        false,
        [ContainerId],
        |b| container_str(b, |m| m.image_tag.clone()),
        "image tag of the container (v2 captures)"
    ),
    pfield!(
        "container.security_context.privileged",
        Boolean,
        false,
        [ContainerId],
        container_privileged,
        "whether the container's OCI spec makes it privileged (v2 captures)"
    ),
    pfield!(
        "orchestrator.namespace",
        Keyword,
        false,
        [ContainerId],
        |b| container_str(b, |m| m.pod_namespace.clone()),
        "Kubernetes namespace of the container's pod (v2 captures)"
    ),
    pfield!(
        "orchestrator.resource.name",
        Keyword,
        false,
        [ContainerId],
        |b| container_str(b, |m| m.pod_name.clone()),
        "name of the container's pod (v2 captures)"
    ),
    pfield!(
        "orchestrator.resource.type",
        Keyword,
        false,
        [ContainerId],
        |b| container_str(b, |m| m.pod_name.as_ref().map(|_| "pod".to_string())),
        "\"pod\" when the container's pod is known"
    ),
];

/// The field with this name, and its position in [`ECS_FIELDS`].
pub fn ecs_field(name: &str) -> Option<(usize, &'static EcsField)> {
    ECS_FIELDS.iter().enumerate().find(|(_, f)| f.name == name)
}

/// Columns needed to build every ECS field, plus those deciding visibility.
pub fn ecs_base_projection() -> Projection {
    [Column::Kind, Column::Result, Column::Path, Column::Pid, Column::Tid].into_iter().collect()
}

fn dict(keys: Vec<i32>, nulls: Option<NullBuffer>, values: &[&str]) -> ArrayRef {
    let keys = Int32Array::new(keys.into(), nulls);
    let values: ArrayRef = Arc::new(StringArray::from(values.to_vec()));
    Arc::new(DictionaryArray::<Int32Type>::try_new(keys, values).expect("keys index the values"))
}

fn col(batch: &EventBatch, c: Column) -> ArrayRef {
    batch.expect(c).clone()
}

/// A keyword that depends on the event kind only: `values[0]` for process
/// events (exec, fork, end), `values[1]` for file events (opens and file operations).
fn by_kind(batch: &EventBatch, values: [&str; 2]) -> ArrayRef {
    dict(batch.kinds().iter().map(|k| k.is_file() as i32).collect(), None, &values)
}

/// Column `c` on the file events whose kind `keep` accepts, missing elsewhere.
fn of_files(batch: &EventBatch, c: Column, keep: fn(EventKind) -> bool) -> ArrayRef {
    let kinds = batch.kinds();
    let valid = BooleanBuffer::collect_bool(batch.len(), |i| kinds[i].is_file() && keep(kinds[i]));
    restrict(batch.expect(c), NullBuffer::new(valid))
}

/// `event.dataset`: by event kind (see [`ECS_FIELDS`]).
fn dataset(batch: &EventBatch) -> ArrayRef {
    let keys = batch
        .kinds()
        .iter()
        .map(|k| match k {
            EventKind::Open | EventKind::File(_) => 1,
            EventKind::K8sAudit => 2,
            EventKind::Exec | EventKind::Fork | EventKind::Exit | EventKind::Process | EventKind::Container => 0,
        })
        .collect();
    dict(keys, None, &["cloud_defend.process", "cloud_defend.file", "kubernetes.audit_logs"])
}

/// `kubernetes.audit.responseStatus.code` as a `long`, on audit events only.
fn audit_response_code(batch: &EventBatch) -> ArrayRef {
    let codes = cast(batch.expect(Column::AuditResponseCode), &DataType::Int64).expect("i32 fits in i64");
    restrict(&codes, NullBuffer::new(batch.kind_mask(EventKind::K8sAudit)))
}

/// A timestamp column as RFC 3339 text, on audit events only.
fn audit_time(batch: &EventBatch, c: Column) -> ArrayRef {
    let t = batch.expect(c).as_primitive::<arrow_array::types::TimestampNanosecondType>();
    let kinds = batch.kinds();
    let v: StringArray = (0..batch.len())
        .map(|i| (kinds[i] == EventKind::K8sAudit && t.is_valid(i)).then(|| rfc3339(t.value(i))))
        .collect();
    Arc::new(v)
}

/// Column `c`, missing on events that are not of kind `kind`.
fn of_kind(batch: &EventBatch, c: Column, kind: EventKind) -> ArrayRef {
    restrict(batch.expect(c), NullBuffer::new(batch.kind_mask(kind)))
}

/// An unsigned id column as a `long`.
fn long(batch: &EventBatch, c: Column) -> ArrayRef {
    cast(batch.expect(c), &DataType::Int64).expect("u32 fits in i64")
}

/// An unsigned id column as a keyword (ECS keeps user and group ids as strings).
fn text(batch: &EventBatch, c: Column) -> ArrayRef {
    cast(batch.expect(c), &DataType::Utf8).expect("u32 casts to text")
}

fn event_action(batch: &EventBatch) -> ArrayRef {
    let keys = batch
        .kinds()
        .iter()
        .map(|k| match k {
            EventKind::Open => 1,
            EventKind::Fork => 2,
            EventKind::Exit => 3,
            // Not visible (process, container) or not carried (audit events: see `materialize`).
            EventKind::Exec | EventKind::Process | EventKind::Container | EventKind::K8sAudit => 0,
            EventKind::File(op) => match op {
                FileOp::Create => 4,
                FileOp::Modify | FileOp::Chmod | FileOp::Chown => 5,
                FileOp::Delete => 6,
                FileOp::Rename => 7,
                FileOp::Link | FileOp::Symlink => 8,
            },
        })
        .collect();
    dict(keys, None, &["exec", "open", "fork", "end", "creation", "modification", "deletion", "rename", "link"])
}

fn event_type(batch: &EventBatch) -> ArrayRef {
    let n = batch.len();
    let kinds = batch.kinds();
    let flags = batch.expect(Column::Flags).as_primitive::<Int32Type>();
    let keys: Vec<i32> = (0..n)
        .map(|i| match kinds[i] {
            EventKind::Exec | EventKind::Fork => 0,
            EventKind::Open => 2 - i32::from(crate::display::AccessMode::of(flags.value(i)).writes()),
            EventKind::Exit => 3,
            // Not visible to the rules (see `view::ecs_visible`), or not
            // carried (audit events: see `materialize`).
            EventKind::Process | EventKind::Container | EventKind::K8sAudit => 0,
            EventKind::File(op) => match op {
                FileOp::Create | FileOp::Link | FileOp::Symlink => 4,
                FileOp::Modify | FileOp::Rename | FileOp::Chmod | FileOp::Chown => 1,
                FileOp::Delete => 5,
            },
        })
        .collect();
    let not_open = !&batch.kind_mask(EventKind::Open);
    let valid = &not_open | &valid_bits(flags);
    dict(keys, Some(NullBuffer::new(valid)), &["start", "change", "access", "end", "creation", "deletion"])
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
            if !kinds[i].is_file() {
                return None;
            }
            str_at(path.as_ref(), i).map(|p| p.rsplit('/').next().unwrap_or(p).to_string())
        })
        .collect();
    Arc::new(names)
}

fn file_extension(batch: &EventBatch) -> ArrayRef {
    let kinds = batch.kinds();
    let path = batch.expect(Column::Path);
    let ext: StringArray = (0..batch.len())
        .map(|i| {
            if !kinds[i].is_file() {
                return None;
            }
            let p = str_at(path.as_ref(), i)?;
            let name = p.rsplit('/').next().unwrap_or(p);
            std::path::Path::new(name).extension().and_then(|e| e.to_str()).map(str::to_string)
        })
        .collect();
    Arc::new(ext)
}

/// Which process related to an event a field describes.
#[derive(Debug, Clone, Copy)]
enum Who {
    Process,
    Parent,
    Session,
    Group,
    Entry,
}

fn related(links: &EventLinks, who: Who) -> Option<EntityRef> {
    match who {
        Who::Process => Some(links.process),
        Who::Parent => links.parent,
        Who::Session => links.session_leader,
        Who::Group => links.group_leader,
        Who::Entry => links.entry_leader,
    }
}

/// For every row, `f` of the process context and the row's links (`None`
/// without a context or links).
fn per_row<T>(batch: &EventBatch, f: impl Fn(&ProcessContext, &EventLinks) -> Option<T>) -> Vec<Option<T>> {
    let Some(ctx) = batch.process() else { return (0..batch.len()).map(|_| None).collect() };
    (0..batch.len()).map(|i| ctx.links(batch.event_index(i)).and_then(|l| f(ctx, &l))).collect()
}

fn rel_str(batch: &EventBatch, who: Who, f: fn(&Entity) -> Option<String>) -> ArrayRef {
    let v = per_row(batch, |ctx, l| related(l, who).and_then(|r| f(ctx.entity(r))));
    Arc::new(StringArray::from(v))
}

fn rel_pid(batch: &EventBatch, who: Who) -> ArrayRef {
    let v = per_row(batch, |ctx, l| related(l, who).map(|r| i64::from(ctx.entity(r).pid)));
    Arc::new(Int64Array::from(v))
}

fn rel_bool(batch: &EventBatch, who: Who) -> ArrayRef {
    let v = per_row(batch, |ctx, l| related(l, who).and_then(|r| ctx.entity(r).interactive()));
    Arc::new(BooleanArray::from(v))
}

fn rel_same(batch: &EventBatch, who: Who) -> ArrayRef {
    let v = per_row(batch, |_, l| related(l, who).map(|r| r == l.process));
    Arc::new(BooleanArray::from(v))
}

fn string_lists(v: Vec<Option<Vec<String>>>) -> ArrayRef {
    let mut b = ListBuilder::new(StringBuilder::new());
    for row in v {
        match row {
            Some(items) => {
                for s in items {
                    b.values().append_value(s);
                }
                b.append(true);
            }
            None => b.append(false),
        }
    }
    Arc::new(b.finish())
}

fn rel_args(batch: &EventBatch, who: Who) -> ArrayRef {
    string_lists(per_row(batch, |ctx, l| related(l, who).and_then(|r| ctx.entity(r).args.clone())))
}

fn previous_args(batch: &EventBatch) -> ArrayRef {
    string_lists(per_row(batch, |ctx, l| {
        let prev = &ctx.entity(l.process).previous;
        let all: Vec<String> = prev.iter().flat_map(|p| p.args.iter().flatten().cloned()).collect();
        (!all.is_empty()).then_some(all)
    }))
}

fn previous_executable(batch: &EventBatch) -> ArrayRef {
    string_lists(per_row(batch, |ctx, l| {
        let prev = &ctx.entity(l.process).previous;
        let all: Vec<String> = prev.iter().filter_map(|p| p.executable.clone()).collect();
        (!all.is_empty()).then_some(all)
    }))
}

fn entry_type(batch: &EventBatch) -> ArrayRef {
    Arc::new(StringArray::from(per_row(batch, |_, l| l.entry_type.map(|t| t.as_str().to_string()))))
}

/// For every row, `f` of the metadata of the row's container.
fn per_container<T>(batch: &EventBatch, f: impl Fn(&ContainerMeta) -> Option<T>) -> Vec<Option<T>> {
    let ids = batch.expect(Column::ContainerId);
    let ctx = batch.process();
    (0..batch.len())
        .map(|i| {
            let id = str_at(ids.as_ref(), i)?;
            f(ctx?.container(id)?)
        })
        .collect()
}

fn container_str(batch: &EventBatch, f: fn(&ContainerMeta) -> Option<String>) -> ArrayRef {
    Arc::new(StringArray::from(per_container(batch, f)))
}

fn container_privileged(batch: &EventBatch) -> ArrayRef {
    Arc::new(BooleanArray::from(per_container(batch, |m| m.privileged)))
}

/// Builds the values of ECS field `idx` (see [`ECS_FIELDS`]) for every row of `batch`.
/// Missing values are nulls; keyword arrays are `List<Utf8>`. A node field
/// ([`Carriers::Node`], [`Carriers::Exec`], [`Carriers::Open`]) is missing
/// on Kubernetes audit events, whatever their node columns hold.
pub fn materialize(idx: usize, batch: &EventBatch) -> ArrayRef {
    let f = &ECS_FIELDS[idx];
    let values = (f.build)(batch);
    if matches!(f.carriers, Carriers::All | Carriers::Audit) || !batch.kinds().contains(&EventKind::K8sAudit) {
        return values;
    }
    restrict(&values, NullBuffer::new(!&super::audit_rows(batch)))
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
    let idx: arrow_array::UInt64Array = (0..batch.len()).map(|i| batch.event_index(i)).collect();
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
    arrow_select::filter::filter_record_batch(&rb, &vis).expect("mask has the batch's length")
}

#[cfg(test)]
mod tests {
    use super::ECS_FIELDS;

    /// docs/rule-semantics.md's field table lists exactly the view's fields, once each.
    #[test]
    fn the_documented_field_table_is_the_view() {
        let text = include_str!("../../../docs/rule-semantics.md");
        let table = text.split("| field | type | carried by | source |").nth(1).expect("the field table");
        let documented: Vec<&str> = table
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|l| l.split('|').nth(1).expect("a cell").trim().trim_matches('`'))
            .collect();
        let ours: Vec<&str> = ECS_FIELDS.iter().map(|f| f.name).collect();
        assert_eq!(documented, ours);
    }
}
