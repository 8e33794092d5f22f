//! Importers: events recorded by other tools become tokenscan captures, and
//! exporters that write a capture back in those tools' formats.
//!
//! * [`ImportFormat::Tracee`]: `tracee --output json` lines (Tracee v0.23-era
//!   and v0.24-era argument type names alike). `security_file_open` and the
//!   open-family syscall events become `open` rows, `sched_process_exec` and
//!   `execve`/`execveat` become `exec` rows.
//! * [`ImportFormat::Ecs`]: Elastic Common Schema documents as exported from
//!   Defend for Containers' `logs-cloud_defend.file*` and
//!   `logs-cloud_defend.process*` indices, nested, dotted or mixed, bare or
//!   wrapped in a search hit's `_source`. File `open` and process `exec`
//!   events become rows.
//! * [`ImportFormat::K8sAudit`]: the JSON lines kube-apiserver writes with
//!   `--audit-log-path` (`audit.k8s.io/v1` `Event`s). Each event becomes a
//!   `k8s_audit` row, shown by the ECS view with the field names of Elastic's
//!   Kubernetes audit integration (`kubernetes.audit.*`).
//!
//! Importing is the inverse of the rule views (`crate::view`): a row is
//! built so that the view of it shows what the foreign event said. What a
//! format cannot carry, and what is done instead, is documented in
//! `docs/import.md` and on each mapping function.
//!
//! Input is read line by line, plain or gzip-compressed (detected by its
//! magic bytes), and rows go to a [`CaptureSink`] in batches, so memory is
//! bounded whatever the size of the input. A line that cannot become a row
//! is never dropped silently: it is counted in the [`ImportReport`] (with
//! the first few line numbers and reasons), or, with
//! [`ImportOptions::strict`], it ends the import with an error.
//!
//! ```no_run
//! use tokenscan_core::capture::{CaptureFormat, ParquetCaptureWriter, WriterOptions};
//! use tokenscan_core::import::{import_tracee, ImportOptions};
//! let input = std::fs::File::open("events.json")?;
//! let out = std::fs::File::create("capture.parquet")?;
//! let mut writer = ParquetCaptureWriter::new(out, "capture.parquet", WriterOptions::default())?;
//! let report = import_tracee(input, "events.json".as_ref(), &ImportOptions::default(), &mut writer)?;
//! writer.close()?;
//! println!("{} events, {} lines not mapped", report.events, report.unmapped);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod ecs;
pub mod export;
mod flags;
mod k8s_audit;
mod lines;
mod tracee;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub use ecs::{tty_from_device, tty_to_device, UNKNOWN_TTY};
pub use flags::{format_open_flags, open_flag_value, parse_open_flags, OPEN_FLAGS};

use crate::capture::{
    BuilderSizing, CaptureBuilder, CaptureFormat, ContainerColumns, EventBatch, EventKind, NdjsonWriter,
    ParquetCaptureWriter, WriterOptions, DEFAULT_BATCH_SIZE,
};
use crate::error::{Error, Result};

/// The foreign formats tokenscan imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImportFormat {
    /// `tracee --output json`: one event object per line.
    Tracee,
    /// Elastic Common Schema documents, one per line (NDJSON), as Defend for
    /// Containers writes them to `logs-cloud_defend.*`.
    Ecs,
    /// Kubernetes API server audit events (`audit.k8s.io/v1` `Event`), one
    /// per line, as kube-apiserver writes them with `--audit-log-path`.
    K8sAudit,
}

impl ImportFormat {
    /// `tracee`, `ecs` or `k8s-audit`.
    pub fn as_str(self) -> &'static str {
        match self {
            ImportFormat::Tracee => "tracee",
            ImportFormat::Ecs => "ecs",
            ImportFormat::K8sAudit => "k8s-audit",
        }
    }
}

/// What to do with Tracee events from a container whose entry point has not
/// run yet (Tracee's origin `container-init`: `contextFlags.containerStarted`
/// false while the event has a container id). A capture has no origin
/// column; tokenscan's Tracee view calls every event with a container id
/// `container`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContainerInit {
    /// Keep the container id (the default). The Elastic view is right (D4C
    /// knows no such origin), but TRC-108, which selects origin `container`
    /// only, sees these events where Tracee would not have. They are counted
    /// in [`ImportReport::notes`].
    #[default]
    Keep,
    /// Drop the container id, so that the event looks like a host event:
    /// TRC-108 then ignores it as Tracee would, but the Elastic rule's
    /// `container.id like "*"` no longer holds either.
    Host,
}

/// How an import runs.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Rows per batch handed to the sink (and the bound on rows held in memory).
    pub batch_size: usize,
    /// End the import at the first line that cannot be mapped, instead of counting it.
    pub strict: bool,
    /// How many unmapped lines to keep as examples in the report.
    pub max_examples: usize,
    /// Tracee only: what to do with `container-init` events.
    pub container_init: ContainerInit,
    /// Tracee only: take an exec's `tty` from the `stdin_path` argument of
    /// `sched_process_exec` when it names a terminal (`/dev/pts/N`,
    /// `/dev/ttyN`, `/dev/console`). Off by default: standard input on a
    /// terminal suggests, but does not prove, a controlling terminal.
    pub tty_from_stdin: bool,
    /// Lines longer than this many bytes are not parsed; they count as unmapped.
    pub max_line_bytes: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            batch_size: DEFAULT_BATCH_SIZE,
            strict: false,
            max_examples: 5,
            container_init: ContainerInit::Keep,
            tty_from_stdin: false,
            max_line_bytes: 64 << 20,
        }
    }
}

/// The [`ImportReport::notes`] entry counting ECS documents imported without
/// a `host.name` (their `host` column is empty).
const MISSING_HOST_NOTE: &str = "documents without `host.name` kept with an empty host";

/// A line that did not become a capture row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmapped {
    /// The input it came from, as given.
    pub input: PathBuf,
    /// 1-based physical line number (in the decompressed text).
    pub line: u64,
    /// Why, in one sentence.
    pub reason: String,
}

impl std::fmt::Display for Unmapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: line {}: {}", self.input.display(), self.line, self.reason)
    }
}

/// What an import read and wrote.
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    /// Non-blank lines read.
    pub lines: u64,
    /// Bytes of JSON text read (after decompression), newlines included.
    pub bytes: u64,
    /// Whether any input was gzip-compressed.
    pub gzip: bool,
    /// Event rows written (`open`, `exec` and `k8s_audit`: what the rules see).
    pub events: u64,
    /// Of which `open` rows.
    pub opens: u64,
    /// Of which `exec` rows.
    pub execs: u64,
    /// Of which `k8s_audit` rows (Kubernetes audit events).
    pub audits: u64,
    /// `container` rows written: what the source said about a container
    /// (pod, namespace, name, image), one row the first time a container id
    /// comes with metadata and another when its metadata changes.
    pub containers: u64,
    /// `process` rows written for processes the source names only as a parent
    /// or leader of an event's process (ECS: `process.parent`,
    /// `process.session_leader`, `process.group_leader`,
    /// `process.entry_leader`), one per process (see `docs/import.md`).
    pub processes: u64,
    /// Lines that could not be mapped.
    pub unmapped: u64,
    /// Unmapped lines by kind of reason, e.g. `event sched_process_fork` or
    /// `invalid JSON`.
    pub unmapped_by_reason: BTreeMap<String, u64>,
    /// The first [`ImportOptions::max_examples`] unmapped lines.
    pub examples: Vec<Unmapped>,
    /// Facts about rows that were written but that the user should know,
    /// with counts, e.g. `container-init events kept with their container id`.
    pub notes: BTreeMap<String, u64>,
}

impl ImportReport {
    fn note(&mut self, what: &str) {
        *self.notes.entry(what.to_string()).or_default() += 1;
    }
}

/// Receives the capture rows an import produces, batch by batch, in input order.
pub trait CaptureSink {
    /// Takes one batch (every column present, canonical types).
    fn write_batch(&mut self, batch: &EventBatch) -> Result<()>;
}

impl<W: Write + Send> CaptureSink for ParquetCaptureWriter<W> {
    fn write_batch(&mut self, batch: &EventBatch) -> Result<()> {
        self.write(batch)
    }
}

impl<W: Write> CaptureSink for NdjsonWriter<W> {
    fn write_batch(&mut self, batch: &EventBatch) -> Result<()> {
        self.write(batch)
    }
}

/// Keeps every batch in memory (tests, notebooks, the Python module).
#[derive(Debug, Default)]
pub struct CollectCapture {
    /// The batches received.
    pub batches: Vec<EventBatch>,
}

impl CaptureSink for CollectCapture {
    fn write_batch(&mut self, batch: &EventBatch) -> Result<()> {
        self.batches.push(batch.clone());
        Ok(())
    }
}

/// One capture row, borrowing its strings from the input line where it can.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row<'a> {
    pub time: i64,
    pub kind: EventKind,
    pub host: Cow<'a, str>,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: Cow<'a, str>,
    pub exe: Option<Cow<'a, str>>,
    pub args: Option<Vec<Option<Cow<'a, str>>>>,
    pub path: Option<Cow<'a, str>>,
    pub requested_path: Option<Cow<'a, str>>,
    pub flags: Option<i32>,
    pub result: Option<i64>,
    pub tty: Option<Cow<'a, str>>,
    pub cgroup_id: u64,
    pub container_id: Option<Cow<'a, str>>,
    pub sid: Option<u32>,
    pub pgid: Option<u32>,
    pub start: Option<i64>,
    pub parent_start: Option<i64>,
    pub cwd: Option<Cow<'a, str>>,
    pub container_started: Option<bool>,
}

/// What a source said about the container of an event: the values of a
/// `container` row (each `None` when the source did not say).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ContainerMeta<'a> {
    pub pod_name: Option<Cow<'a, str>>,
    pub pod_namespace: Option<Cow<'a, str>>,
    pub pod_uid: Option<Cow<'a, str>>,
    pub container_name: Option<Cow<'a, str>>,
    pub image: Option<Cow<'a, str>>,
    pub image_name: Option<Cow<'a, str>>,
    pub image_tag: Option<Cow<'a, str>>,
    pub privileged: Option<bool>,
}

impl ContainerMeta<'_> {
    /// The values as the capture builder takes them.
    fn columns(&self) -> ContainerColumns<'_> {
        ContainerColumns {
            pod_name: self.pod_name.as_deref(),
            pod_namespace: self.pod_namespace.as_deref(),
            pod_uid: self.pod_uid.as_deref(),
            container_name: self.container_name.as_deref(),
            image: self.image.as_deref(),
            image_name: self.image_name.as_deref(),
            image_tag: self.image_tag.as_deref(),
            privileged: self.privileged,
        }
    }

    /// Whether the source said nothing beyond the container id.
    pub(crate) fn is_empty(&self) -> bool {
        *self == ContainerMeta::default()
    }

    /// Takes what `new` says (a later word overrides an earlier one, as the
    /// core reads `container` rows); `true` when that changed anything.
    fn merge(&mut self, new: &ContainerMeta<'_>) -> bool {
        let mut changed = false;
        macro_rules! take {
            ($($f:ident),*) => {$(
                if let Some(v) = new.$f.as_deref() {
                    if self.$f.as_deref() != Some(v) {
                        self.$f = Some(Cow::Owned(v.to_string()));
                        changed = true;
                    }
                }
            )*};
        }
        take!(pod_name, pod_namespace, pod_uid, container_name, image, image_name, image_tag);
        if new.privileged.is_some() && self.privileged != new.privileged {
            self.privileged = new.privileged;
            changed = true;
        }
        changed
    }
}

/// What one input line becomes: its event row, with the rows that describe
/// its context and go before it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Mapped<'a> {
    /// The `open` or `exec` row.
    pub row: Row<'a>,
    pub facts: RowFacts,
    /// Metadata of `row.container_id`, when the source gave any.
    pub container: Option<ContainerMeta<'a>>,
    /// `process` rows for the processes the event names only as its parent
    /// or leaders (ECS); written once per process.
    pub processes: Vec<Row<'a>>,
    /// The `audit_*` columns of a `k8s_audit` row.
    pub audit: Option<Box<AuditValues<'a>>>,
}

impl<'a> Mapped<'a> {
    /// A row and its facts, with no context rows.
    pub(crate) fn row(row: Row<'a>, facts: RowFacts) -> Self {
        Mapped { row, facts, container: None, processes: Vec::new(), audit: None }
    }
}

/// The values of the `audit_*` columns of one `k8s_audit` row (see
/// `capture/schema.rs`); `None` is a null.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AuditValues<'a> {
    pub id: Cow<'a, str>,
    pub stage: Cow<'a, str>,
    pub verb: Cow<'a, str>,
    pub request_uri: Cow<'a, str>,
    pub user: Option<Cow<'a, str>>,
    pub user_groups: Option<Vec<Cow<'a, str>>>,
    pub pod_name: Option<Cow<'a, str>>,
    pub source_ips: Option<Vec<Cow<'a, str>>>,
    pub user_agent: Option<Cow<'a, str>>,
    pub resource: Option<Cow<'a, str>>,
    pub subresource: Option<Cow<'a, str>>,
    pub namespace: Option<Cow<'a, str>>,
    pub name: Option<Cow<'a, str>>,
    pub api_group: Option<Cow<'a, str>>,
    pub api_version: Option<Cow<'a, str>>,
    pub response_code: Option<i32>,
    pub decision: Option<Cow<'a, str>>,
    pub reason: Option<Cow<'a, str>>,
    pub request_received: Option<i64>,
}

/// Metadata strings (pod, container and image names, leaders' names) longer
/// than this are dropped, and counted in the report's notes: Kubernetes names
/// are at most 253 bytes, and no real image reference comes close.
pub(crate) const MAX_META_BYTES: usize = 4096;

/// The [`ImportReport::notes`] entry counting dropped over-long metadata values.
const LONG_META_NOTE: &str = "metadata values longer than 4096 bytes dropped (their events kept)";

/// A metadata string as a column value: `None` for an empty string (the
/// sources write "" for "not known") and, counted in `facts`, for one longer
/// than [`MAX_META_BYTES`].
pub(crate) fn meta_text<'a>(s: Option<Cow<'a, str>>, facts: &mut RowFacts) -> Option<Cow<'a, str>> {
    let s = s.filter(|s| !s.is_empty())?;
    if s.len() > MAX_META_BYTES {
        facts.long_meta += 1;
        return None;
    }
    Some(s)
}

/// Splits an image reference into name and tag: the digest (`@sha256:...`)
/// is dropped; the tag is what follows the last `:` after the last `/` (a
/// `:` before it belongs to a registry port, as in `registry:5000/app`).
/// The recorder's pod resolver and the Tracee importer both split this way.
pub fn split_image(reference: &str) -> (&str, Option<&str>) {
    let without_digest = reference.split_once('@').map_or(reference, |(r, _)| r);
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    match without_digest[last_slash..].rfind(':') {
        Some(i) => {
            let at = last_slash + i;
            let tag = &without_digest[at + 1..];
            (&without_digest[..at], (!tag.is_empty()).then_some(tag))
        }
        None => (without_digest, None),
    }
}

/// Why a line did not become a row: a short class (for counting) and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Skip {
    pub class: Cow<'static, str>,
    pub message: String,
}

impl Skip {
    pub(crate) fn new(class: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Skip { class: class.into(), message: message.into() }
    }
    /// A line that should have mapped but has a missing or bad value.
    pub(crate) fn bad(message: impl Into<String>) -> Self {
        Skip::new("unusable event", message)
    }
}

/// Extra facts a format mapper reports with a row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RowFacts {
    /// Tracee said the container had not started (origin `container-init`).
    pub container_init: bool,
    /// ECS: the document had no `host.name`; the row's host is empty.
    pub missing_host: bool,
    /// Metadata values dropped for being longer than [`MAX_META_BYTES`].
    pub long_meta: u32,
    /// Tracee: a `threadStartTime` that is not a wall-clock time (older
    /// Tracee wrote time since boot), left out of `start`.
    pub boot_start_time: bool,
}

/// Kernel byte strings are stored with tokenscan's escape (`\` becomes `\\`;
/// JSON text is always valid UTF-8, so that is the only change).
pub(crate) fn escape_text(s: Cow<'_, str>) -> Cow<'_, str> {
    if !s.contains('\\') {
        return s;
    }
    Cow::Owned(s.replace('\\', "\\\\"))
}

/// Appends one row to the capture columns; `meta` fills the columns of a
/// `container` row and `audit` those of a `k8s_audit` row (null on every
/// other row).
fn push_row(b: &mut CaptureBuilder, r: &Row<'_>, meta: Option<&ContainerMeta<'_>>, audit: Option<&AuditValues<'_>>) {
    b.time.append(r.time);
    b.kind.append(r.kind);
    b.host.append(&r.host);
    b.pid.append(r.pid);
    b.tid.append(r.tid);
    b.ppid.append(r.ppid);
    b.uid.append(r.uid);
    b.gid.append(r.gid);
    b.comm.append(&r.comm);
    b.exe.append(r.exe.as_deref());
    b.args.append(r.args.as_ref().map(|a| a.iter().map(|s| s.as_deref())));
    b.path.append(r.path.as_deref());
    b.requested_path.append(r.requested_path.as_deref());
    b.flags.append(r.flags);
    b.result.append(r.result);
    b.tty.append(r.tty.as_deref());
    b.cgroup_id.append(r.cgroup_id);
    b.container_id.append(r.container_id.as_deref());
    b.sid.append(r.sid);
    b.pgid.append(r.pgid);
    b.start.append(r.start);
    b.parent_start.append(r.parent_start);
    b.cwd.append(r.cwd.as_deref());
    b.append_container_meta(meta.map(ContainerMeta::columns).as_ref());
    b.container_started.append(r.container_started);
    b.old_path.append(None::<&str>);
    let Some(a) = audit else {
        b.append_v3_nulls();
        return;
    };
    let list =
        |v: &Option<Vec<Cow<'_, str>>>| v.as_ref().map(|v| v.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>());
    b.audit_id.append(Some(&a.id));
    b.audit_stage.append(Some(&a.stage));
    b.audit_verb.append(Some(&a.verb));
    b.audit_request_uri.append(Some(&a.request_uri));
    b.audit_user.append(a.user.as_deref());
    b.audit_user_groups.append(list(&a.user_groups));
    b.audit_pod_name.append(a.pod_name.as_deref());
    b.audit_source_ips.append(list(&a.source_ips));
    b.audit_user_agent.append(a.user_agent.as_deref());
    b.audit_resource.append(a.resource.as_deref());
    b.audit_subresource.append(a.subresource.as_deref());
    b.audit_namespace.append(a.namespace.as_deref());
    b.audit_name.append(a.name.as_deref());
    b.audit_api_group.append(a.api_group.as_deref());
    b.audit_api_version.append(a.api_version.as_deref());
    b.audit_response_code.append(a.response_code);
    b.audit_decision.append(a.decision.as_deref());
    b.audit_reason.append(a.reason.as_deref());
    b.audit_request_received.append(a.request_received);
}

/// Appends the `container` row of container `id`, as the recorder writes
/// one: the context of the event that named it (time, host, ids, name,
/// cgroup) and the metadata, nothing else.
fn push_container(b: &mut CaptureBuilder, event: &Row<'_>, id: &str, meta: &ContainerMeta<'_>) {
    let row = Row {
        kind: EventKind::Container,
        exe: None,
        args: None,
        path: None,
        requested_path: None,
        flags: None,
        result: None,
        tty: None,
        container_id: Some(Cow::Borrowed(id)),
        sid: None,
        pgid: None,
        start: None,
        parent_start: None,
        cwd: None,
        container_started: None,
        ..event.clone()
    };
    push_row(b, &row, Some(meta), None);
}

/// At most this many processes are remembered to write each one's row
/// once, and this many containers with their metadata; past it the memory
/// starts over, and a row may be written again (harmless: a later
/// `container` row holds all that is known, a later `process` row only fills
/// what is unknown).
const MAX_REMEMBERED: usize = 1 << 20;
const MAX_CONTAINERS: usize = 1 << 16;

/// A process as the import remembers it: host, pid and start (`None`: not said).
fn process_key(host: &str, pid: u32, start: Option<i64>) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (host, pid, start).hash(&mut h);
    h.finish()
}

/// A streaming import into a [`CaptureSink`]: feed it one or more inputs with
/// [`Importer::read`], then call [`Importer::finish`]. Rows of all inputs
/// form one capture, in input order.
pub struct Importer<'s> {
    format: ImportFormat,
    options: ImportOptions,
    sink: &'s mut dyn CaptureSink,
    rows: CaptureBuilder,
    written: u64,
    report: ImportReport,
    /// Container id -> what its `container` rows said so far.
    containers: HashMap<String, ContainerMeta<'static>>,
    /// [`process_key`]s of the processes that had a row of their own.
    processes: HashSet<u64>,
}

impl<'s> Importer<'s> {
    /// An import of `format` writing to `sink`.
    pub fn new(format: ImportFormat, options: ImportOptions, sink: &'s mut dyn CaptureSink) -> Self {
        // The first batch starts small; later ones are sized like the one before.
        let sizing = BuilderSizing { rows: options.batch_size.clamp(1, 1024), string_bytes: 0, dictionary: false };
        let rows = CaptureBuilder::with_sizing(sizing);
        Importer {
            format,
            options,
            sink,
            rows,
            written: 0,
            report: ImportReport::default(),
            containers: HashMap::new(),
            processes: HashSet::new(),
        }
    }

    /// Reads one input to its end. `input` names it in errors and in the
    /// report. Fails on an I/O error (including corrupt gzip data), on a sink
    /// error, and, with [`ImportOptions::strict`], on the first unmapped line;
    /// rows already handed to the sink stay there.
    pub fn read(&mut self, input: &Path, reader: impl Read) -> Result<()> {
        let mut lines = LineReader::new(reader, self.options.max_line_bytes).map_err(|e| Error::io(input, e))?;
        self.report.gzip |= lines.gzip();
        let mut scratch = Vec::new();
        let mut line_no = 0u64;
        let mut seen_content = false;
        let bytes_before = self.report.bytes;
        loop {
            self.report.bytes = bytes_before + lines.bytes();
            let gzip = lines.gzip();
            let line = match lines.next_line(&mut scratch) {
                Ok(Some(l)) => l,
                Ok(None) => break,
                Err(e) => {
                    let msg = if gzip {
                        format!("after line {line_no}: cannot decompress the gzip data: {e}")
                    } else {
                        format!("after line {line_no}: {e}")
                    };
                    return Err(Error::capture(input, msg));
                }
            };
            line_no += 1;
            let outcome = match line {
                lines::Line::TooLong(n) => Err(Skip::new(
                    "line too long",
                    format!("the line is {n} bytes long, over the limit of {} bytes", self.options.max_line_bytes),
                )),
                lines::Line::Text(mut text) => {
                    if line_no == 1 {
                        text = text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text);
                    }
                    if text.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    if !seen_content {
                        seen_content = true;
                        if let Some(msg) = not_json_lines(text, line_no) {
                            return Err(Error::capture(input, msg));
                        }
                    }
                    // One validation of the whole line (fast on ASCII) lets serde_json
                    // skip validating each string.
                    match std::str::from_utf8(text) {
                        Err(e) => Err(Skip::new(
                            "not UTF-8",
                            format!("not valid UTF-8 (byte {} of the line)", e.valid_up_to() + 1),
                        )),
                        Ok(text) => match self.format {
                            ImportFormat::Tracee => tracee::map_line(text, &self.options),
                            ImportFormat::Ecs => ecs::map_line(text),
                            ImportFormat::K8sAudit => k8s_audit::map_line(text),
                        },
                    }
                }
            };
            self.report.lines += 1;
            match outcome {
                Ok(Mapped { mut row, facts, container, processes, audit }) => {
                    if facts.container_init && row.container_id.is_some() {
                        match self.options.container_init {
                            ContainerInit::Keep => {
                                self.report.note("container-init events kept with their container id (origin container-init: TRC-108 skips them)")
                            }
                            ContainerInit::Host => {
                                row.container_id = None;
                                self.report.note("container-init events imported as host events (container id dropped)")
                            }
                        }
                    }
                    if facts.missing_host {
                        self.report.note(MISSING_HOST_NOTE);
                    }
                    for _ in 0..facts.long_meta {
                        self.report.note(LONG_META_NOTE);
                    }
                    if facts.boot_start_time {
                        self.report.note(
                            "`threadStartTime` since boot, not since the epoch (older Tracee): `start` left null",
                        );
                    }
                    self.push_context(&row, container, &processes)?;
                    match row.kind {
                        EventKind::Open => self.report.opens += 1,
                        EventKind::Exec => self.report.execs += 1,
                        EventKind::K8sAudit => self.report.audits += 1,
                        // The mappers make opens, execs and audit events only.
                        EventKind::Fork
                        | EventKind::Exit
                        | EventKind::Process
                        | EventKind::Container
                        | EventKind::File(_) => {}
                    }
                    self.report.events += 1;
                    push_row(&mut self.rows, &row, None, audit.as_deref());
                    self.flush_if_full()?;
                }
                Err(skip) => {
                    if self.options.strict {
                        return Err(Error::capture(
                            input,
                            format!("line {line_no}: {} (--strict: every line must map)", skip.message),
                        ));
                    }
                    self.report.unmapped += 1;
                    // Classes name event types, which a hostile input could vary without end.
                    let reasons = &mut self.report.unmapped_by_reason;
                    let class = if reasons.len() >= 64 && !reasons.contains_key(skip.class.as_ref()) {
                        "other reasons".to_string()
                    } else {
                        skip.class.into_owned()
                    };
                    *reasons.entry(class).or_default() += 1;
                    if self.report.examples.len() < self.options.max_examples {
                        self.report.examples.push(Unmapped {
                            input: input.to_owned(),
                            line: line_no,
                            reason: skip.message,
                        });
                    }
                }
            }
        }
        self.report.bytes = bytes_before + lines.bytes();
        Ok(())
    }

    /// Writes the rows that describe an event's context, before the event:
    /// its container's metadata (when new or changed) and the processes it
    /// names that had no row yet. Then remembers the event's own process.
    fn push_context(
        &mut self,
        row: &Row<'_>,
        container: Option<ContainerMeta<'_>>,
        processes: &[Row<'_>],
    ) -> Result<()> {
        if let (Some(id), Some(meta)) = (row.container_id.as_deref(), container) {
            if !self.containers.contains_key(id) && self.containers.len() >= MAX_CONTAINERS {
                self.containers.clear();
            }
            let known = self.containers.entry(id.to_string()).or_default();
            // A row only when the event says something new about the container:
            // the row holds all that is known of it, so the latest row is complete.
            if known.merge(&meta) {
                push_container(&mut self.rows, row, id, known);
                self.report.containers += 1;
                self.flush_if_full()?;
            }
        }
        for p in processes {
            let seen = |k| self.processes.contains(&k);
            if seen(process_key(&p.host, p.pid, p.start)) || seen(process_key(&p.host, p.pid, None)) {
                continue;
            }
            self.remember(process_key(&p.host, p.pid, p.start));
            push_row(&mut self.rows, p, None, None);
            self.report.processes += 1;
            self.flush_if_full()?;
        }
        self.remember(process_key(&row.host, row.pid, row.start));
        if row.start.is_some() {
            self.remember(process_key(&row.host, row.pid, None));
        }
        Ok(())
    }

    /// Hands the rows to the sink once a batch is full.
    fn flush_if_full(&mut self) -> Result<()> {
        if self.rows.len() >= self.options.batch_size.max(1) {
            self.flush()?;
        }
        Ok(())
    }

    fn remember(&mut self, key: u64) {
        if self.processes.len() >= MAX_REMEMBERED {
            self.processes.clear();
        }
        self.processes.insert(key);
    }

    fn flush(&mut self) -> Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        // The next batch's builders are sized like this one's, so it fills them without regrowing.
        let sizing = BuilderSizing { rows: self.options.batch_size.max(1), string_bytes: 0, dictionary: false };
        let next = self.rows.sized_like(sizing);
        let batch = std::mem::replace(&mut self.rows, next).finish(self.written);
        self.written += batch.len() as u64;
        self.sink.write_batch(&batch)
    }

    /// The report so far.
    pub fn report(&self) -> &ImportReport {
        &self.report
    }

    /// Hands the last rows to the sink and returns the report.
    pub fn finish(mut self) -> Result<ImportReport> {
        self.flush()?;
        Ok(self.report)
    }
}

use lines::LineReader;

/// Imports `tracee --output json` lines from `reader` (plain or gzip) into
/// `sink`; `input` names the input in errors and in the report.
pub fn import_tracee(
    reader: impl Read,
    input: &Path,
    options: &ImportOptions,
    sink: &mut dyn CaptureSink,
) -> Result<ImportReport> {
    import_reader(ImportFormat::Tracee, reader, input, options, sink)
}

/// Imports lines of `format` from `reader` (plain or gzip) into `sink`;
/// `input` names the input in errors and in the report.
pub fn import_reader(
    format: ImportFormat,
    reader: impl Read,
    input: &Path,
    options: &ImportOptions,
    sink: &mut dyn CaptureSink,
) -> Result<ImportReport> {
    let mut imp = Importer::new(format, options.clone(), sink);
    imp.read(input, reader)?;
    imp.finish()
}

/// Imports Elastic ECS documents (one per line, plain or gzip) from `reader`
/// into `sink`; `input` names the input in errors and in the report.
pub fn import_ecs(
    reader: impl Read,
    input: &Path,
    options: &ImportOptions,
    sink: &mut dyn CaptureSink,
) -> Result<ImportReport> {
    import_reader(ImportFormat::Ecs, reader, input, options, sink)
}

/// Imports Kubernetes audit log lines (`audit.k8s.io/v1` `Event`s, plain or
/// gzip) from `reader` into `sink`; `input` names the input in errors and in
/// the report.
pub fn import_k8s_audit(
    reader: impl Read,
    input: &Path,
    options: &ImportOptions,
    sink: &mut dyn CaptureSink,
) -> Result<ImportReport> {
    import_reader(ImportFormat::K8sAudit, reader, input, options, sink)
}

/// Imports the files `inputs` (in order, as one capture) and writes the
/// capture to `out` as Parquet or NDJSON; `out_label` names the output in
/// errors. The caller decides where `out` points (and whether an existing
/// file may be replaced). A Parquet output gets the key-value metadata
/// `tokenscan.imported_from` (`tracee`, `ecs` or `k8s-audit`) and `tokenscan.import_inputs`.
pub fn import_files<P: AsRef<Path>, W: Write + Send>(
    format: ImportFormat,
    inputs: &[P],
    out: W,
    out_label: &Path,
    to: CaptureFormat,
    options: &ImportOptions,
) -> Result<ImportReport> {
    let names: Vec<String> = inputs.iter().map(|p| p.as_ref().display().to_string()).collect();
    let run = |sink: &mut dyn CaptureSink| -> Result<ImportReport> {
        let mut imp = Importer::new(format, options.clone(), sink);
        for p in inputs {
            let p = p.as_ref();
            let f = std::fs::File::open(p).map_err(|e| Error::io(p, e))?;
            imp.read(p, f)?;
        }
        imp.finish()
    };
    match to {
        CaptureFormat::Parquet => {
            let mut metadata = BTreeMap::new();
            metadata.insert("tokenscan.imported_from".to_string(), format.as_str().to_string());
            metadata.insert("tokenscan.import_inputs".to_string(), names.join("\n"));
            let mut w = ParquetCaptureWriter::new(out, out_label, WriterOptions { metadata, ..Default::default() })?;
            let report = run(&mut w)?;
            w.close()?;
            Ok(report)
        }
        CaptureFormat::Ndjson => {
            let mut w = NdjsonWriter::new(out, out_label);
            let report = run(&mut w)?;
            w.finish()?;
            Ok(report)
        }
    }
}

/// Imports `tracee --output json` files into a Parquet or NDJSON capture
/// written to `out` (see [`import_files`]).
pub fn import_tracee_files<P: AsRef<Path>, W: Write + Send>(
    inputs: &[P],
    out: W,
    out_label: &Path,
    to: CaptureFormat,
    options: &ImportOptions,
) -> Result<ImportReport> {
    import_files(ImportFormat::Tracee, inputs, out, out_label, to, options)
}

/// Imports Elastic ECS NDJSON files into a Parquet or NDJSON capture written
/// to `out` (see [`import_files`]).
pub fn import_ecs_files<P: AsRef<Path>, W: Write + Send>(
    inputs: &[P],
    out: W,
    out_label: &Path,
    to: CaptureFormat,
    options: &ImportOptions,
) -> Result<ImportReport> {
    import_files(ImportFormat::Ecs, inputs, out, out_label, to, options)
}

/// Parses a JSON string value held in a raw slice of JSON, borrowing it when
/// it has no escapes. `None` when the value is not a string.
pub(crate) fn raw_str(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.starts_with('"') {
        return None;
    }
    if let Ok(s) = serde_json::from_str::<&str>(raw) {
        return Some(Cow::Borrowed(s));
    }
    serde_json::from_str::<String>(raw).ok().map(Cow::Owned)
}

/// serde_json's message without its "at line 1 column N" (the line is ours): `msg (column N)`.
/// The error for an input whose first non-blank line shows it is not one
/// JSON object per line: a lone `{` (a pretty-printed document, as
/// Elastic's sample files are) or a `[` (a JSON array). Every line of such a
/// file would fail on its own, so the import stops and says how to convert it.
fn not_json_lines(first: &[u8], line_no: u64) -> Option<String> {
    let trimmed = first.trim_ascii();
    let what = if trimmed == b"{" {
        "a pretty-printed JSON document (one document spread over several lines)"
    } else if trimmed.starts_with(b"[") {
        "a JSON array"
    } else {
        return None;
    };
    Some(format!(
        "line {line_no}: the input looks like {what}, not one JSON object per line (NDJSON); \
         convert it first, e.g. `jq -c 'if type == \"array\" then .[] else . end' FILE > FILE.ndjson`"
    ))
}

/// Parses a line that should be one JSON object into `T`; `what` names the
/// expected kind of object in messages ("a Tracee event"). Text that is not
/// JSON is `invalid JSON`; JSON of another shape (an array, a value of the
/// wrong type) is an unusable event.
pub(crate) fn parse_object<'a, T: serde::Deserialize<'a>>(line: &'a str, what: &str) -> std::result::Result<T, Skip> {
    if !line.trim_start().starts_with('{') {
        // serde would take an array for a struct's fields in order: say what it is instead.
        return Err(match serde_json::from_str::<serde::de::IgnoredAny>(line) {
            Ok(_) => Skip::bad(format!("not a JSON object: not {what}")),
            Err(e) => Skip::new("invalid JSON", format!("invalid JSON: {}", json_error(&e))),
        });
    }
    serde_json::from_str(line).map_err(|e| {
        if e.is_data() {
            Skip::bad(format!("not {what}: {}", json_error(&e)))
        } else {
            Skip::new("invalid JSON", format!("invalid JSON: {}", json_error(&e)))
        }
    })
}

pub(crate) fn json_error(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    match msg.rfind(" at line ") {
        Some(i) => format!("{} (column {})", &msg[..i], e.column()),
        None => msg,
    }
}
