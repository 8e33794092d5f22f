//! The capture schema, declared once.
//!
//! [`capture_columns!`] below is the only list of the capture columns. From
//! it come [`Column`] (with [`Column::ALL`], [`Column::COUNT`],
//! [`Column::name`], [`Column::data_type`], [`Column::nullable`],
//! [`Column::doc`]), the canonical [`schema`](super::schema), the column
//! table of `docs/capture-format.md` (checked by a test against
//! [`Column::doc_table`]) and [`CaptureBuilder`], the one builder every
//! producer of capture rows fills.
//!
//! Adding a column is one line here (its name, builder type and doc line;
//! the builder type fixes the Arrow type and nullability, see
//! `builder.rs`), then a value from each producer: the NDJSON reader
//! (`ndjson.rs`), the importers (`import/`), `synth.rs` and the recorder
//! (`ebpf-recorder/src/event.rs`). [`CaptureBuilder::finish`] names a column
//! a producer forgot to fill.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};

use super::builder::{
    BuilderSizing, ColumnBuilder, KindColumn, NullableColumn, OptBoolColumn, OptI32Column, OptI64Column, OptStrColumn,
    OptStrListColumn, OptTimeColumn, OptU32Column, StrColumn, TimeColumn, U32Column, U64Column,
};
use super::{EventBatch, CAPTURE_VERSION, VERSION_KEY};

/// Generates [`Column`] and [`CaptureBuilder`] from one list of
/// `Variant field_name: BuilderType = "doc line";` (the field name is the
/// column's name in files), grouped by the format version that added them.
/// Columns added after version 1 must be nullable: a file without them
/// (version 1, or another tool's) reads them as all null.
macro_rules! capture_columns {
    (
        v1 { $($v1:ident $f1:ident : $b1:ty = $d1:literal;)* }
        v2 { $($v2:ident $f2:ident : $b2:ty = $d2:literal;)* }
        v3 { $($v3:ident $f3:ident : $b3:ty = $d3:literal;)* }
    ) => {
        capture_columns!(@gen $($v1 $f1: $b1 = 1, $d1;)* $($v2 $f2: $b2 = 2, $d2;)* $($v3 $f3: $b3 = 3, $d3;)*);

        impl CaptureBuilder {
            /// Appends a null to every column version 2 added (`sid` ...
            /// `old_path`): for a producer whose source has none of them.
            /// Columns added after version 1 are nullable, so this compiles.
            pub fn append_v2_nulls(&mut self) {
                $(NullableColumn::append_null(&mut self.$f2);)*
            }

            /// Appends a null to every column version 3 added (the `audit_*`
            /// columns): for every row that is not a Kubernetes audit event.
            pub fn append_v3_nulls(&mut self) {
                $(NullableColumn::append_null(&mut self.$f3);)*
            }
        }
    };
    (@gen $($variant:ident $field:ident : $builder:ty = $since:literal, $doc:literal;)*) => {
        /// The columns of the capture format (version 3), in their canonical order.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Column {
            $(#[doc = $doc] $variant,)*
        }

        impl Column {
            /// All columns in canonical order.
            pub const ALL: [Column; Column::COUNT] = [$(Column::$variant,)*];
            /// How many columns a capture has.
            pub const COUNT: usize = [$(stringify!($field),)*].len();

            /// The column's name in the file.
            pub fn name(self) -> &'static str {
                match self {
                    $(Column::$variant => stringify!($field),)*
                }
            }

            /// The Arrow type tokenscan writes (and every reader normalizes to).
            pub fn data_type(self) -> DataType {
                match self {
                    $(Column::$variant => <$builder as ColumnBuilder>::data_type(),)*
                }
            }

            /// Whether the column may hold nulls.
            pub fn nullable(self) -> bool {
                match self {
                    $(Column::$variant => <$builder as ColumnBuilder>::NULLABLE,)*
                }
            }

            /// The column's meaning, one line of Markdown (as in `docs/capture-format.md`).
            pub fn doc(self) -> &'static str {
                match self {
                    $(Column::$variant => $doc,)*
                }
            }

            /// The capture format version that added the column (1, 2 or 3).
            /// A file may lack a column added after version 1: it reads as all null.
            pub fn since(self) -> u8 {
                match self {
                    $(Column::$variant => $since,)*
                }
            }

            /// The Arrow type as `docs/capture-format.md` writes it.
            pub fn type_doc(self) -> &'static str {
                match self {
                    $(Column::$variant => <$builder as ColumnBuilder>::TYPE_DOC,)*
                }
            }
        }

        /// Builds capture rows column by column: the one place capture
        /// columns are created. Append one value to every column per row
        /// (each field's `append` takes the column's value type), then
        /// [`CaptureBuilder::finish`] into an [`EventBatch`] or
        /// [`CaptureBuilder::finish_record_batch`] into a `RecordBatch` of
        /// the canonical [`schema`](super::schema).
        #[derive(Debug)]
        #[allow(missing_docs)]
        pub struct CaptureBuilder {
            $(#[doc = $doc] pub $field: $builder,)*
        }

        impl CaptureBuilder {
            /// Builders sized by `sizing`.
            pub fn with_sizing(sizing: BuilderSizing) -> Self {
                CaptureBuilder { $($field: <$builder as ColumnBuilder>::with_sizing(&sizing, (0, 0)),)* }
            }

            /// Empty builders sized like the rows appended so far to `self`
            /// (string bytes per column), for `rows` rows: a producer that
            /// starts each batch this way fills it without regrowing buffers.
            pub fn sized_like(&self, sizing: BuilderSizing) -> Self {
                CaptureBuilder {
                    $($field: <$builder as ColumnBuilder>::with_sizing(&sizing, self.$field.hint()),)*
                }
            }

            /// The column arrays in canonical order; the builders start over.
            /// Panics, naming the column, when a producer did not fill every
            /// column of every row (a programming error).
            fn finish_arrays(&mut self) -> [ArrayRef; Column::COUNT] {
                let rows = self.len();
                $(
                    assert_eq!(
                        ColumnBuilder::len(&self.$field),
                        rows,
                        "capture column `{}` was not filled for every row",
                        stringify!($field)
                    );
                )*
                [$(ColumnBuilder::finish(&mut self.$field),)*]
            }
        }
    };
}

capture_columns! {
    v1 {
    Time time: TimeColumn = "When the event happened (for a `process` or `container` row: when the recorder wrote it).";
    Kind kind: KindColumn = "What the row is: `open` (open, openat, openat2, creat), `exec` (execve, execveat), `fork` (a new task: a process, or a thread when `tid` differs from `pid`), `exit` (a task ended), `process` (a /proc snapshot row of a process that was running when the recording started), `container` (metadata of a container), or a file operation: `create`, `modify`, `delete`, `rename`, `link`, `symlink`, `chmod`, `chown` (see Event kinds). Version 1 has only `open` and `exec`. Any other value is an error.";
    Host host: StrColumn = "Host name of the node that recorded the event.";
    Pid pid: U32Column = "Process id (thread-group id) in the host's pid namespace.";
    Tid tid: U32Column = "Thread id (host pid namespace).";
    Ppid ppid: U32Column = "Parent's process id (host pid namespace).";
    Uid uid: U32Column = "Effective user id.";
    Gid gid: U32Column = "Effective group id.";
    Comm comm: StrColumn = "The kernel's task name (at most 15 bytes). For an exec, the name after the exec.";
    Exe exe: OptStrColumn = "Absolute path of the process's executable. For an exec, the file just executed.";
    Args args: OptStrListColumn = "For an exec: argv, `argv[0]` first, exactly as the process passed it (so `cat`, not necessarily `/usr/bin/cat`); for a `process` row: the process's argv from /proc. Null for an open.";
    Path path: OptStrColumn = "For an open: absolute path of the file the kernel opened, with symlinks resolved, as the process's mount namespace sees it; null when the open failed. For an exec: absolute path of the executed file.";
    RequestedPath requested_path: OptStrColumn = "The path string exactly as the process passed it to the system call; may be relative.";
    Flags flags: OptI32Column = "For an open: the open(2) flags as the kernel saw them (access mode in the low two bits). Null for an exec.";
    Result result: OptI64Column = "System call result: a file descriptor (open) or 0 (exec) on success, `-errno` on failure. For an `exit`: the task's exit status as wait(2) reports it (exit code times 256, or the signal number).";
    Tty tty: OptStrColumn = "Name of the controlling terminal, e.g. `pts/0`; null when there is none.";
    CgroupId cgroup_id: U64Column = "cgroup v2 id of the task.";
    ContainerId container_id: OptStrColumn = "Container id parsed from the task's cgroup path (docker, containerd/CRI, CRI-O, podman/libpod, or a bare 64-hex directory name); null on the host. On a `container` row: the container the row describes.";
    }
    v2 {
    Sid sid: OptU32Column = "Session id (host pid namespace): the pid of the session leader. Null when not recorded.";
    Pgid pgid: OptU32Column = "Process-group id (host pid namespace): the pid of the process-group leader. Null when not recorded.";
    Start start: OptTimeColumn = "Start time of the process (its thread-group leader) as the kernel keeps it, as wall-clock time. Null when not recorded.";
    ParentStart parent_start: OptTimeColumn = "Start time of the parent process (`ppid`), as `start`. Null when not recorded.";
    Cwd cwd: OptStrColumn = "Working directory of the process, resolved as `path` is. Null when not recorded.";
    PodName pod_name: OptStrColumn = "On a `container` row: the pod's name. Null on other rows and when unknown.";
    PodNamespace pod_namespace: OptStrColumn = "On a `container` row: the pod's namespace. Null on other rows and when unknown.";
    PodUid pod_uid: OptStrColumn = "On a `container` row: the pod's uid. Null on other rows and when unknown.";
    ContainerName container_name: OptStrColumn = "On a `container` row: the container's name in its pod. Null on other rows and when unknown.";
    Image image: OptStrColumn = "On a `container` row: the image reference as the container runtime wrote it, e.g. `registry:5000/shop/web:1.4.2`. Null on other rows and when unknown.";
    ImageName image_name: OptStrColumn = "On a `container` row: the image reference without tag and digest, e.g. `registry:5000/shop/web`. Null on other rows and when unknown.";
    ImageTag image_tag: OptStrColumn = "On a `container` row: the image tag, e.g. `1.4.2`; null when the reference has none. Null on other rows.";
    Privileged privileged: OptBoolColumn = "On a `container` row: whether the container is privileged, as read from its OCI spec (see `docs/processes.md`). Null on other rows and when unknown.";
    ContainerStarted container_started: OptBoolColumn = "Whether the event's container had started (its entry point had run) when the event happened, as the source said it (Tracee's `contextFlags.containerStarted`). Null when the source did not say: the recorder, ECS imports, `container` rows and version 1 captures.";
    OldPath old_path: OptStrColumn = "For a `rename`: the file's path before (`path` is the path after); for a `link`: the existing file the new link (`path`) names; for a `symlink`: the link's target exactly as given (not resolved). Null on other rows and in captures written before file operations were recorded.";
    }
    v3 {
    AuditId audit_id: OptStrColumn = "On a `k8s_audit` row: the event's `auditID` (one per request; the stages of a request share it). Null on other rows.";
    AuditStage audit_stage: OptStrColumn = "On a `k8s_audit` row: `stage` (`RequestReceived`, `ResponseStarted`, `ResponseComplete` or `Panic`). Null on other rows.";
    AuditVerb audit_verb: OptStrColumn = "On a `k8s_audit` row: `verb`, e.g. `get`, `list`, `create` (for a non-resource request, the lower-case HTTP method). Null on other rows.";
    AuditRequestUri audit_request_uri: OptStrColumn = "On a `k8s_audit` row: `requestURI`, e.g. `/api/v1/namespaces/shop/secrets`. Null on other rows.";
    AuditUser audit_user: OptStrColumn = "On a `k8s_audit` row: `user.username`, e.g. `system:serviceaccount:shop:web`. Null on other rows.";
    AuditUserGroups audit_user_groups: OptStrListColumn = "On a `k8s_audit` row: `user.groups`. Null on other rows and when absent.";
    AuditPodName audit_pod_name: OptStrColumn = "On a `k8s_audit` row: the first value of `user.extra[\"authentication.kubernetes.io/pod-name\"]`, the pod whose service account token authenticated the request. Null on other rows and when absent.";
    AuditSourceIps audit_source_ips: OptStrListColumn = "On a `k8s_audit` row: `sourceIPs`, the client first, then any proxies. Null on other rows and when absent.";
    AuditUserAgent audit_user_agent: OptStrColumn = "On a `k8s_audit` row: `userAgent`, as the client sent it. Null on other rows and when absent.";
    AuditResource audit_resource: OptStrColumn = "On a `k8s_audit` row: `objectRef.resource`, e.g. `secrets`. Null on other rows and when absent.";
    AuditSubresource audit_subresource: OptStrColumn = "On a `k8s_audit` row: `objectRef.subresource`, e.g. `exec`. Null on other rows and when absent.";
    AuditNamespace audit_namespace: OptStrColumn = "On a `k8s_audit` row: `objectRef.namespace`. Null on other rows and when absent.";
    AuditName audit_name: OptStrColumn = "On a `k8s_audit` row: `objectRef.name`. Null on other rows and when absent.";
    AuditApiGroup audit_api_group: OptStrColumn = "On a `k8s_audit` row: `objectRef.apiGroup` (empty for the core group, as the log writes it). Null on other rows and when absent.";
    AuditApiVersion audit_api_version: OptStrColumn = "On a `k8s_audit` row: `objectRef.apiVersion`, e.g. `v1`. Null on other rows and when absent.";
    AuditResponseCode audit_response_code: OptI32Column = "On a `k8s_audit` row: `responseStatus.code`, the HTTP status, e.g. `403`. Null on other rows and when absent (a `RequestReceived` stage has none).";
    AuditDecision audit_decision: OptStrColumn = "On a `k8s_audit` row: the annotation `authorization.k8s.io/decision` (`allow` or `forbid`). Null on other rows and when absent.";
    AuditReason audit_reason: OptStrColumn = "On a `k8s_audit` row: the annotation `authorization.k8s.io/reason`, why the authorizer decided so. Null on other rows and when absent.";
    AuditRequestReceived audit_request_received: OptTimeColumn = "On a `k8s_audit` row: `requestReceivedTimestamp`, when the request reached the API server (`time` is the stage's `stageTimestamp`). Null on other rows and when absent.";
    }
}

// `Projection` keeps one bit per column.
const _: () = assert!(Column::COUNT <= 64);

impl Column {
    /// The column table of `docs/capture-format.md`, one Markdown row per column.
    pub fn doc_table() -> String {
        let mut t = String::from("| column | Arrow type as written | nullable | meaning |\n|---|---|---|---|\n");
        for c in Column::ALL {
            let nullable = if c.nullable() { "yes" } else { "no" };
            t.push_str(&format!("| `{}` | {} | {nullable} | {} |\n", c.name(), c.type_doc(), c.doc()));
        }
        t
    }
}

impl Default for CaptureBuilder {
    /// Arrow's default sizes, plain strings.
    fn default() -> Self {
        CaptureBuilder::with_sizing(BuilderSizing::default())
    }
}

/// What a producer knows about a container, as the columns of its
/// `container` row take it (`pod_name` ... `privileged`, each `None` when
/// the source did not say). The recorder (from the runtime's OCI spec) and
/// the importers (from the source's fields) fill their rows through
/// [`CaptureBuilder::append_container_meta`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContainerColumns<'a> {
    /// The pod's name.
    pub pod_name: Option<&'a str>,
    /// The pod's namespace.
    pub pod_namespace: Option<&'a str>,
    /// The pod's uid.
    pub pod_uid: Option<&'a str>,
    /// The container's name in its pod.
    pub container_name: Option<&'a str>,
    /// The image reference as the runtime wrote it.
    pub image: Option<&'a str>,
    /// The image reference without tag and digest.
    pub image_name: Option<&'a str>,
    /// The image tag.
    pub image_tag: Option<&'a str>,
    /// Whether the container is privileged.
    pub privileged: Option<bool>,
}

impl CaptureBuilder {
    /// Appends the container columns of one row (`pod_name` ...
    /// `privileged`): `meta`'s values on a `container` row (or on an
    /// imported event that carries them), all null on other rows (`None`).
    pub fn append_container_meta(&mut self, meta: Option<&ContainerColumns<'_>>) {
        let m = meta.copied().unwrap_or_default();
        self.pod_name.append(m.pod_name);
        self.pod_namespace.append(m.pod_namespace);
        self.pod_uid.append(m.pod_uid);
        self.container_name.append(m.container_name);
        self.image.append(m.image);
        self.image_name.append(m.image_name);
        self.image_tag.append(m.image_tag);
        self.privileged.append(m.privileged);
    }

    /// Builders for `rows` rows of plain strings of about `string_bytes` bytes per column.
    pub fn with_capacity(rows: usize, string_bytes: usize) -> Self {
        CaptureBuilder::with_sizing(BuilderSizing { rows, string_bytes, dictionary: false })
    }

    /// Rows appended since the last finish (counted by the `kind` column).
    pub fn len(&self) -> usize {
        ColumnBuilder::len(&self.kind)
    }

    /// Whether no row is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows so far as an event batch whose first row has event index
    /// `first_index`; the builders start over.
    pub fn finish(&mut self, first_index: u64) -> EventBatch {
        let arrays = self.finish_arrays();
        let kinds = self.kind.take_kinds();
        EventBatch::new(arrays.map(Some), kinds, first_index)
    }

    /// The rows so far as a record batch with every column in canonical
    /// order and the capture version in its schema metadata (the canonical
    /// [`schema`](super::schema) when strings are plain); the builders start over.
    pub fn finish_record_batch(&mut self) -> RecordBatch {
        let arrays = self.finish_arrays();
        self.kind.take_kinds();
        let fields: Vec<Field> = Column::ALL
            .iter()
            .zip(&arrays)
            .map(|(c, a)| Field::new(c.name(), a.data_type().clone(), c.nullable()))
            .collect();
        let metadata = [(VERSION_KEY.to_string(), CAPTURE_VERSION.to_string())].into_iter().collect();
        let schema = Arc::new(Schema::new_with_metadata(fields, metadata));
        RecordBatch::try_new(schema, arrays.to_vec()).expect("the builders follow the capture schema column by column")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The column table of the capture-format documentation is the declaration's.
    #[test]
    fn capture_format_doc_lists_the_declared_columns() {
        let doc = include_str!("../../../docs/capture-format.md");
        let table = Column::doc_table();
        assert!(
            doc.contains(&table),
            "docs/capture-format.md must hold this column table (from core/src/capture/schema.rs):\n{table}"
        );
        assert!(doc.contains(&format!("Every capture has these {} columns.", Column::COUNT)));
    }

    #[test]
    fn a_column_left_unfilled_is_named() {
        let mut b = CaptureBuilder::default();
        b.time.append(1);
        b.kind.append(super::super::EventKind::Open);
        let e = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| b.finish(0))).unwrap_err();
        let msg = e.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("capture column `host` was not filled"), "{msg}");
    }
}
