//! Capture format version 3: the contract between the recorder, the core and users.
//!
//! A capture is a Parquet file with one row per event (see `docs/capture-format.md`),
//! or its human-readable NDJSON twin. Readers accept the logically equal Arrow
//! types other tools write and hand out [`EventBatch`]es whose columns always
//! have the canonical types of [`Column::data_type`] (strings may stay
//! dictionary-encoded), so everything downstream deals with one layout.

mod builder;
mod escape;
mod ndjson;
mod normalize;
mod pages;
mod parquet_io;
mod schema;
mod source;
mod sparse;

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

pub use builder::{
    BuilderSizing, ColumnBuilder, KindColumn, NullableColumn, OptBoolColumn, OptI32Column, OptI64Column, OptStrColumn,
    OptStrListColumn, OptTimeColumn, OptU32Column, StrColumn, TimeColumn, U32Column, U64Column,
};
pub use escape::{escape_bytes, unescape_to_bytes};
pub use ndjson::{events_from_ndjson, NdjsonWriter, NDJSON_EXTENSIONS};
pub(crate) use parquet_io::record_batches;
pub use parquet_io::{ParquetCaptureWriter, WriterOptions};
pub use schema::{CaptureBuilder, Column, ContainerColumns};
pub use source::{expand_paths, Capture, CaptureFormat, EventBatches, Piece};

/// The metadata key that carries the capture format version.
pub const VERSION_KEY: &str = "tokenscan.capture_version";
/// The capture format version this build writes.
pub const CAPTURE_VERSION: &str = "3";
/// The capture format versions this build reads.
pub const READABLE_VERSIONS: &[&str] = &["1", "2", "3"];
/// Events per batch when the caller does not choose (readers, importers,
/// `synth`, the CLI and the Python module).
pub const DEFAULT_BATCH_SIZE: usize = 65_536;

impl Column {
    /// Position in [`Column::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The column with this name.
    pub fn from_name(name: &str) -> Option<Column> {
        Column::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Whether the column holds strings (possibly dictionary-encoded).
    pub fn is_string(self) -> bool {
        self.data_type() == DataType::Utf8
    }
}

impl std::fmt::Display for Column {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The canonical Arrow schema of a capture (the version this build writes), with the version in its metadata.
pub fn schema() -> SchemaRef {
    let fields: Vec<Field> = Column::ALL.iter().map(|c| Field::new(c.name(), c.data_type(), c.nullable())).collect();
    let metadata = [(VERSION_KEY.to_string(), CAPTURE_VERSION.to_string())].into_iter().collect();
    Arc::new(Schema::new_with_metadata(fields, metadata))
}

/// The kind of an event (a capture row).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A file open (open, openat, openat2, creat).
    Open,
    /// A process exec (execve, execveat).
    Exec,
    /// A new task (version 2): a new process, or a new thread when `tid != pid`.
    Fork,
    /// A task ended (version 2): the process when `tid == pid`, else a thread.
    Exit,
    /// A /proc snapshot row (version 2, kind `process`): a process that was
    /// running when the recording started.
    Process,
    /// Container metadata (version 2): pod, container name and image of `container_id`.
    Container,
    /// A Kubernetes API server audit event (version 3, kind `k8s_audit`): an
    /// `audit.k8s.io/v1` `Event` imported from an audit log, its values in
    /// the `audit_*` columns. Not about a process on a node.
    K8sAudit,
    /// A file operation other than an open (version 2, kinds `create`,
    /// `modify`, `delete`, `rename`, `link`, `symlink`, `chmod`, `chown`).
    File(FileOp),
}

/// What a [`EventKind::File`] row did to a file. Each operation is a capture
/// kind of its own (its name in files is [`FileOp::as_str`]), so a reader
/// validates it as it validates every kind, and no extra column is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileOp {
    /// The file was created: an open that created it (O_CREAT, the kernel's
    /// `FMODE_CREATED`), mknod, mkdir.
    Create,
    /// An existing file's content may change: a write-intent open of a file
    /// that existed, truncate, ftruncate.
    Modify,
    /// A name was removed: unlink, unlinkat, rmdir.
    Delete,
    /// A file was renamed: `old_path` is its name before, `path` after.
    Rename,
    /// A hard link was made: `path` is the new name, `old_path` the existing file.
    Link,
    /// A symbolic link was made: `path` is the link, `old_path` its target as given.
    Symlink,
    /// A file's mode changed: chmod, fchmod, fchmodat.
    Chmod,
    /// A file's owner changed: chown, fchown, lchown, fchownat.
    Chown,
}

impl FileOp {
    /// Every operation, in the order of the documentation.
    pub const ALL: [FileOp; 8] = [
        FileOp::Create,
        FileOp::Modify,
        FileOp::Delete,
        FileOp::Rename,
        FileOp::Link,
        FileOp::Symlink,
        FileOp::Chmod,
        FileOp::Chown,
    ];

    /// The operation's kind name in captures.
    pub fn as_str(self) -> &'static str {
        match self {
            FileOp::Create => "create",
            FileOp::Modify => "modify",
            FileOp::Delete => "delete",
            FileOp::Rename => "rename",
            FileOp::Link => "link",
            FileOp::Symlink => "symlink",
            FileOp::Chmod => "chmod",
            FileOp::Chown => "chown",
        }
    }
}

impl EventKind {
    /// Kinds with a cached mask in a batch ([`EventBatch::kind_mask`]).
    const MASK_SLOTS: usize = 7;

    /// This kind's slot among a batch's cached masks (file operations have none).
    fn mask_slot(self) -> Option<usize> {
        Some(match self {
            EventKind::Open => 0,
            EventKind::Exec => 1,
            EventKind::Fork => 2,
            EventKind::Exit => 3,
            EventKind::Process => 4,
            EventKind::Container => 5,
            EventKind::K8sAudit => 6,
            EventKind::File(_) => return None,
        })
    }

    /// Every kind, in the order of the documentation.
    pub const ALL: [EventKind; 15] = [
        EventKind::Open,
        EventKind::Exec,
        EventKind::Fork,
        EventKind::Exit,
        EventKind::Process,
        EventKind::Container,
        EventKind::K8sAudit,
        EventKind::File(FileOp::Create),
        EventKind::File(FileOp::Modify),
        EventKind::File(FileOp::Delete),
        EventKind::File(FileOp::Rename),
        EventKind::File(FileOp::Link),
        EventKind::File(FileOp::Symlink),
        EventKind::File(FileOp::Chmod),
        EventKind::File(FileOp::Chown),
    ];

    /// The kind name in captures: `open`, `exec`, `fork`, `exit`, `process`,
    /// `container`, `k8s_audit`, or a file operation (see [`FileOp::as_str`]).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Open => "open",
            EventKind::Exec => "exec",
            EventKind::Fork => "fork",
            EventKind::Exit => "exit",
            EventKind::Process => "process",
            EventKind::Container => "container",
            EventKind::K8sAudit => "k8s_audit",
            EventKind::File(op) => op.as_str(),
        }
    }
    /// Parses a kind's name (see [`EventKind::as_str`]).
    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
    /// Whether the node rule views show events of this kind: opens, execs and
    /// file operations. The other node kinds carry lineage and metadata, which
    /// no built-in rule matches on. Audit events (`k8s_audit`) are not node
    /// events: only the ECS view shows them (see `view::visible`).
    pub fn is_rule_event(self) -> bool {
        matches!(self, EventKind::Open | EventKind::Exec | EventKind::File(_))
    }
    /// Whether the event is about a file: an open or a file operation.
    pub fn is_file(self) -> bool {
        matches!(self, EventKind::Open | EventKind::File(_))
    }
    /// `"open", "exec", ...`: the kinds for error messages.
    pub(crate) fn expected() -> String {
        EventKind::ALL.map(|k| format!("{:?}", k.as_str())).join(", ")
    }
}

/// A set of columns, used to read only what the rules and findings need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Projection(u64);

impl Projection {
    /// Every column.
    pub fn all() -> Self {
        Column::ALL.into_iter().collect()
    }
    /// Adds a column.
    pub fn insert(&mut self, c: Column) {
        self.0 |= 1 << c.index();
    }
    /// Whether the column is in the set.
    pub fn contains(self, c: Column) -> bool {
        self.0 & (1 << c.index()) != 0
    }
    /// The union of two sets.
    pub fn union(self, other: Projection) -> Projection {
        Projection(self.0 | other.0)
    }
    /// The columns of `self` that are not in `other`.
    pub fn difference(self, other: Projection) -> Projection {
        Projection(self.0 & !other.0)
    }
    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The columns in canonical order.
    pub fn columns(self) -> impl Iterator<Item = Column> {
        Column::ALL.into_iter().filter(move |c| self.contains(*c))
    }
}

impl FromIterator<Column> for Projection {
    fn from_iter<I: IntoIterator<Item = Column>>(iter: I) -> Self {
        let mut p = Projection::default();
        for c in iter {
            p.insert(c);
        }
        p
    }
}

/// A batch of events from one capture, with canonical column types.
///
/// Only the projected columns are present. The `kind` column is always read
/// and already validated, available as [`EventBatch::kinds`].
#[derive(Debug, Clone)]
pub struct EventBatch {
    columns: [Option<ArrayRef>; Column::COUNT],
    kinds: Arc<[EventKind]>,
    first_index: u64,
    /// The event index of every row, when the rows are not consecutive
    /// events (a batch made by `take`).
    indexes: Option<Arc<[u64]>>,
    len: usize,
    process: Option<Arc<crate::process::ProcessContext>>,
    /// [`crate::view::visible`] and [`crate::view::ecs_visible`] of these
    /// rows, computed by the first rule that asks and shared by the others
    /// (and by clones, which hold the same rows and columns).
    visibility: Arc<Visibility>,
}

/// The visibility masks of one batch, each computed once (see [`EventBatch`]).
#[derive(Debug, Default)]
pub(crate) struct Visibility {
    pub(crate) rule: std::sync::OnceLock<arrow_buffer::BooleanBuffer>,
    pub(crate) ecs: std::sync::OnceLock<arrow_buffer::BooleanBuffer>,
    /// [`EventBatch::kind_mask`] of each kind but the file operations, by
    /// [`EventKind::mask_slot`].
    kinds: [std::sync::OnceLock<arrow_buffer::BooleanBuffer>; EventKind::MASK_SLOTS],
}

impl EventBatch {
    /// Builds a batch from canonical columns (as produced by the readers).
    pub(crate) fn new(columns: [Option<ArrayRef>; Column::COUNT], kinds: Vec<EventKind>, first_index: u64) -> Self {
        let len = kinds.len();
        EventBatch {
            columns,
            kinds: kinds.into(),
            first_index,
            indexes: None,
            len,
            process: None,
            visibility: Arc::default(),
        }
    }

    /// Builds a batch from Arrow data that did not come from a capture file
    /// (a table handed over by Python, Spark, DuckDB...): the columns are found
    /// by their capture-format names (others are ignored), the projected ones
    /// (plus `kind`) must be present, and they are normalized to the canonical
    /// types exactly as a capture file's are. `label` names the data in errors;
    /// `first_index` is the event index of the first row.
    pub fn from_record_batch(
        label: &std::path::Path,
        batch: &RecordBatch,
        projection: Projection,
        first_index: u64,
    ) -> crate::Result<EventBatch> {
        let mut projection = projection;
        projection.insert(Column::Kind);
        normalize::check_projected(label, batch.schema_ref(), projection)?;
        normalize::normalize(label, batch, projection, first_index)
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether the batch holds no event.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Event index (position in the capture) of the batch's first row.
    pub fn first_index(&self) -> u64 {
        self.first_index
    }
    /// Event index (position in the capture) of row `row`: `first_index() + row`,
    /// except in a batch of chosen rows (made by `take`), which keeps each row's own.
    pub fn event_index(&self, row: usize) -> u64 {
        match &self.indexes {
            Some(ix) => ix[row],
            None => self.first_index + row as u64,
        }
    }
    /// The kind of every event.
    pub fn kinds(&self) -> &[EventKind] {
        &self.kinds
    }
    /// A column, if it was projected.
    pub fn column(&self, c: Column) -> Option<&ArrayRef> {
        self.columns[c.index()].as_ref()
    }
    /// A column that must have been projected (a programming error otherwise).
    pub(crate) fn expect(&self, c: Column) -> &ArrayRef {
        self.columns[c.index()].as_ref().unwrap_or_else(|| panic!("column `{c}` was not in the projection"))
    }
    /// The batch's visibility masks (see [`Visibility`]).
    pub(crate) fn visibility(&self) -> &Visibility {
        &self.visibility
    }

    /// One bit per row: set where the event is of kind `kind`. Computed once
    /// per batch and kind (the views of both rule engines ask for the same
    /// ones: opens, execs) and shared by clones.
    pub fn kind_mask(&self, kind: EventKind) -> arrow_buffer::BooleanBuffer {
        let kinds = &self.kinds;
        let compute = || {
            // Compared with a constant, a kind is one byte compare; with a
            // value only known at run time, the derived `==` is a match.
            macro_rules! with_constant {
                ($($k:ident),*) => {
                    match kind {
                        $(EventKind::$k => {
                            arrow_buffer::BooleanBuffer::collect_bool(kinds.len(), |i| kinds[i] == EventKind::$k)
                        })*
                        EventKind::File(_) => arrow_buffer::BooleanBuffer::collect_bool(kinds.len(), |i| kinds[i] == kind),
                    }
                };
            }
            with_constant!(Open, Exec, Fork, Exit, Process, Container, K8sAudit)
        };
        match kind.mask_slot() {
            Some(slot) => self.visibility.kinds[slot].get_or_init(compute).clone(),
            None => compute(),
        }
    }
    /// The processes of the batch's capture, when the driver built them
    /// (only for rules and consumers that read process-model fields).
    /// Row `i`'s links are `process.links(event_index(i))`.
    pub fn process(&self) -> Option<&Arc<crate::process::ProcessContext>> {
        self.process.as_ref()
    }

    /// This batch with the processes of its capture attached.
    pub fn with_process(mut self, process: Option<Arc<crate::process::ProcessContext>>) -> EventBatch {
        self.process = process;
        self
    }

    /// The projection this batch carries.
    pub fn projection(&self) -> Projection {
        Column::ALL.into_iter().filter(|c| self.columns[c.index()].is_some()).collect()
    }

    /// The batch as an Arrow record batch with the projected columns in canonical order.
    /// Dictionary-encoded string columns stay dictionary-encoded.
    pub fn to_record_batch(&self) -> RecordBatch {
        let mut fields = Vec::new();
        let mut arrays = Vec::new();
        for c in Column::ALL {
            if let Some(a) = &self.columns[c.index()] {
                fields.push(Field::new(c.name(), a.data_type().clone(), c.nullable()));
                arrays.push(a.clone());
            }
        }
        let schema = Arc::new(Schema::new(fields));
        let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(self.len));
        RecordBatch::try_new_with_options(schema, arrays, &options)
            .expect("canonical columns always form a valid batch")
    }

    /// Rows `offset..offset+len` as a new batch (zero-copy).
    pub fn slice(&self, offset: usize, len: usize) -> EventBatch {
        let columns = self.columns.clone().map(|c| c.map(|a| a.slice(offset, len)));
        EventBatch {
            columns,
            kinds: self.kinds[offset..offset + len].into(),
            first_index: self.first_index + offset as u64,
            indexes: self.indexes.as_ref().map(|ix| ix[offset..offset + len].into()),
            len,
            process: self.process.clone(),
            visibility: Arc::default(),
        }
    }

    /// The given rows (in the order given) as a new batch; dictionary columns
    /// keep sharing their dictionary. Each row keeps its event index
    /// ([`EventBatch::event_index`]) and so its process links.
    pub(crate) fn take(&self, rows: &[u32]) -> EventBatch {
        self.take_columns(rows, Projection::all())
    }

    /// [`EventBatch::take`] of the columns in `projection` only (of those
    /// this batch has); the others are absent from the result.
    pub(crate) fn take_columns(&self, rows: &[u32], projection: Projection) -> EventBatch {
        let idx = arrow_array::UInt32Array::from(rows.to_vec());
        let mut columns: [Option<ArrayRef>; Column::COUNT] = std::array::from_fn(|_| None);
        for c in projection.columns() {
            columns[c.index()] = self.columns[c.index()]
                .as_ref()
                .map(|a| arrow_select::take::take(a.as_ref(), &idx, None).expect("rows are within the batch"));
        }
        let kinds: Vec<EventKind> = rows.iter().map(|&r| self.kinds[r as usize]).collect();
        let indexes: Arc<[u64]> = rows.iter().map(|&r| self.event_index(r as usize)).collect();
        EventBatch {
            len: kinds.len(),
            columns,
            kinds: kinds.into(),
            first_index: indexes.first().copied().unwrap_or(self.first_index),
            indexes: Some(indexes),
            process: self.process.clone(),
            visibility: Arc::default(),
        }
    }

    /// The batches one after another (columns each of them has; kinds
    /// concatenated); each row keeps its event index.
    pub(crate) fn concat(parts: &[EventBatch]) -> EventBatch {
        let Some(first) = parts.first() else {
            return EventBatch::new(std::array::from_fn(|_| None), Vec::new(), 0);
        };
        if parts.len() == 1 {
            return first.clone();
        }
        let mut columns: [Option<ArrayRef>; Column::COUNT] = std::array::from_fn(|_| None);
        for c in Column::ALL {
            let arrays: Option<Vec<&dyn Array>> = parts.iter().map(|p| p.column(c).map(|a| a.as_ref())).collect();
            if let Some(arrays) = arrays {
                // Dictionary columns of different batches may carry different dictionaries:
                // concat merges them; a plain column stays plain.
                columns[c.index()] =
                    Some(arrow_select::concat::concat(&arrays).expect("parts share canonical column types"));
            }
        }
        let kinds: Vec<EventKind> = parts.iter().flat_map(|p| p.kinds.iter().copied()).collect();
        let mut batch = EventBatch::new(columns, kinds, first.first_index);
        batch.indexes = Some(parts.iter().flat_map(|p| (0..p.len).map(|i| p.event_index(i))).collect());
        batch.process = first.process.clone();
        batch
    }

    /// This batch with its lists of strings in the canonical type
    /// (`List(Utf8)`): the readers leave a list's dictionary-encoded
    /// elements as `List(Dictionary(Int32, Utf8))` for the rules, which read
    /// both (`str_at`, `kernels::any_str`); the driver calls this on the rows
    /// it hands to consumers, so that findings, views, converted captures and
    /// exports see one type.
    pub(crate) fn with_plain_lists(mut self) -> EventBatch {
        for c in self.columns.iter_mut().flatten() {
            if let DataType::List(item) = c.data_type() {
                if crate::capture::normalize::is_dictionary_of_text(item.data_type()) {
                    let plain = DataType::List(Arc::new(arrow_schema::Field::new("item", DataType::Utf8, true)));
                    *c = arrow_cast::cast(c.as_ref(), &plain)
                        .expect("a list of dictionary strings casts to a list of strings");
                }
            }
        }
        self
    }

    /// This batch with only the columns of `projection` (among those it has).
    pub(crate) fn project(mut self, projection: Projection) -> EventBatch {
        for c in Column::ALL {
            if !projection.contains(c) {
                self.columns[c.index()] = None;
            }
        }
        // Without `result`, `path`, `pid` or `tid` the masks may differ.
        self.visibility = Arc::default();
        self
    }

    /// This batch with the columns it lacks taken from `extra` (one value per row).
    pub(crate) fn with_columns(mut self, extra: [Option<ArrayRef>; Column::COUNT]) -> EventBatch {
        for (mine, theirs) in self.columns.iter_mut().zip(extra) {
            if mine.is_none() {
                if let Some(a) = theirs {
                    debug_assert_eq!(a.len(), self.len);
                    *mine = Some(a);
                }
            }
        }
        // With `pid` and `tid` now present, `ecs_visible` may differ.
        self.visibility = Arc::default();
        self
    }

    /// The string in a string column at `row` (`None` for null or unprojected).
    pub fn str_value(&self, c: Column, row: usize) -> Option<&str> {
        let a = self.column(c)?;
        str_at(a.as_ref(), row)
    }
}

/// The string at `row` of a Utf8 or `Dictionary<Int32, Utf8>` array.
pub fn str_at(a: &dyn Array, row: usize) -> Option<&str> {
    if a.is_null(row) {
        return None;
    }
    match a.data_type() {
        DataType::Utf8 => Some(a.as_string::<i32>().value(row)),
        DataType::Dictionary(_, _) => {
            let d = a.as_dictionary::<Int32Type>();
            let k = d.keys().value(row) as usize;
            let v = d.values().as_string::<i32>();
            if v.is_null(k) {
                None
            } else {
                Some(v.value(k))
            }
        }
        _ => None,
    }
}
