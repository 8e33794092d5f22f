//! The NDJSON twin of the capture format: one event per line, same field names.
//!
//! Blank lines and lines whose first non-blank character is `#` are comments
//! and are not events. `time` is an RFC 3339 string or integer nanoseconds
//! since the Unix epoch. Nullable fields may be omitted. Unknown keys are an
//! error (they are almost always typos in a hand-written capture).

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampNanosecondType, UInt32Type, UInt64Type};
use arrow_array::Array;
use arrow_schema::DataType;
use serde::Deserialize;

use super::{str_at, CaptureBuilder, Column, EventBatch, EventKind, Projection};
use crate::error::{Error, Result};

/// File extensions read as NDJSON.
pub const NDJSON_EXTENSIONS: &[&str] = &["ndjson", "jsonl"];

#[derive(Deserialize)]
#[serde(untagged)]
enum TimeValue {
    Nanos(i64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    time: TimeValue,
    kind: String,
    host: String,
    pid: u32,
    tid: u32,
    ppid: u32,
    uid: u32,
    gid: u32,
    comm: String,
    #[serde(default)]
    exe: Option<String>,
    #[serde(default)]
    args: Option<Vec<Option<String>>>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    requested_path: Option<String>,
    #[serde(default)]
    flags: Option<i32>,
    #[serde(default)]
    result: Option<i64>,
    #[serde(default)]
    tty: Option<String>,
    cgroup_id: u64,
    #[serde(default)]
    container_id: Option<String>,
    // Version 2: all optional.
    #[serde(default)]
    sid: Option<u32>,
    #[serde(default)]
    pgid: Option<u32>,
    #[serde(default)]
    start: Option<TimeValue>,
    #[serde(default)]
    parent_start: Option<TimeValue>,
    #[serde(default)]
    cwd: Option<String>,
    #[serde(default)]
    pod_name: Option<String>,
    #[serde(default)]
    pod_namespace: Option<String>,
    #[serde(default)]
    pod_uid: Option<String>,
    #[serde(default)]
    container_name: Option<String>,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    image_name: Option<String>,
    #[serde(default)]
    image_tag: Option<String>,
    #[serde(default)]
    privileged: Option<bool>,
    #[serde(default)]
    container_started: Option<bool>,
    // Version 3 (Kubernetes audit events): all optional.
    #[serde(default)]
    audit_id: Option<String>,
    #[serde(default)]
    audit_stage: Option<String>,
    #[serde(default)]
    audit_verb: Option<String>,
    #[serde(default)]
    audit_request_uri: Option<String>,
    #[serde(default)]
    audit_user: Option<String>,
    #[serde(default)]
    audit_user_groups: Option<Vec<Option<String>>>,
    #[serde(default)]
    audit_pod_name: Option<String>,
    #[serde(default)]
    audit_source_ips: Option<Vec<Option<String>>>,
    #[serde(default)]
    audit_user_agent: Option<String>,
    #[serde(default)]
    audit_resource: Option<String>,
    #[serde(default)]
    audit_subresource: Option<String>,
    #[serde(default)]
    audit_namespace: Option<String>,
    #[serde(default)]
    audit_name: Option<String>,
    #[serde(default)]
    audit_api_group: Option<String>,
    #[serde(default)]
    audit_api_version: Option<String>,
    #[serde(default)]
    audit_response_code: Option<i32>,
    #[serde(default)]
    audit_decision: Option<String>,
    #[serde(default)]
    audit_reason: Option<String>,
    #[serde(default)]
    audit_request_received: Option<TimeValue>,
    #[serde(default)]
    old_path: Option<String>,
}

/// One line's values that need checking beyond their JSON type.
struct Parsed {
    kind: EventKind,
    time: i64,
    start: Option<i64>,
    parent_start: Option<i64>,
    audit_request_received: Option<i64>,
}

/// Parses an RFC 3339 timestamp into nanoseconds since the epoch.
pub(crate) fn parse_time(s: &str) -> std::result::Result<i64, String> {
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .map_err(|e| format!("`time` {s:?} is not an RFC 3339 timestamp ({e})"))?;
    t.timestamp_nanos_opt().ok_or_else(|| format!("`time` {s:?} is outside the representable range"))
}

/// Formats nanoseconds since the epoch as RFC 3339 UTC with nine fraction digits.
pub(crate) fn format_time(ns: i64) -> String {
    crate::display::rfc3339(ns)
}

/// Appends one parsed line to the capture columns.
fn push(b: &mut CaptureBuilder, l: Line, p: Parsed) {
    b.time.append(p.time);
    b.kind.append(p.kind);
    b.host.append(&l.host);
    b.pid.append(l.pid);
    b.tid.append(l.tid);
    b.ppid.append(l.ppid);
    b.uid.append(l.uid);
    b.gid.append(l.gid);
    b.comm.append(&l.comm);
    b.exe.append(l.exe);
    b.args.append(l.args);
    b.path.append(l.path);
    b.requested_path.append(l.requested_path);
    b.flags.append(l.flags);
    b.result.append(l.result);
    b.tty.append(l.tty);
    b.cgroup_id.append(l.cgroup_id);
    b.container_id.append(l.container_id);
    b.sid.append(l.sid);
    b.pgid.append(l.pgid);
    b.start.append(p.start);
    b.parent_start.append(p.parent_start);
    b.cwd.append(l.cwd);
    b.pod_name.append(l.pod_name);
    b.pod_namespace.append(l.pod_namespace);
    b.pod_uid.append(l.pod_uid);
    b.container_name.append(l.container_name);
    b.image.append(l.image);
    b.image_name.append(l.image_name);
    b.image_tag.append(l.image_tag);
    b.privileged.append(l.privileged);
    b.container_started.append(l.container_started);
    b.audit_id.append(l.audit_id);
    b.audit_stage.append(l.audit_stage);
    b.audit_verb.append(l.audit_verb);
    b.audit_request_uri.append(l.audit_request_uri);
    b.audit_user.append(l.audit_user);
    b.audit_user_groups.append(l.audit_user_groups);
    b.audit_pod_name.append(l.audit_pod_name);
    b.audit_source_ips.append(l.audit_source_ips);
    b.audit_user_agent.append(l.audit_user_agent);
    b.audit_resource.append(l.audit_resource);
    b.audit_subresource.append(l.audit_subresource);
    b.audit_namespace.append(l.audit_namespace);
    b.audit_name.append(l.audit_name);
    b.audit_api_group.append(l.audit_api_group);
    b.audit_api_version.append(l.audit_api_version);
    b.audit_response_code.append(l.audit_response_code);
    b.audit_decision.append(l.audit_decision);
    b.audit_reason.append(l.audit_reason);
    b.audit_request_received.append(p.audit_request_received);
    b.old_path.append(l.old_path);
}

/// Nanoseconds of a `time`-like value; `key` names it in errors.
fn time_value(key: &str, v: &TimeValue) -> std::result::Result<i64, String> {
    match v {
        TimeValue::Nanos(n) => Ok(*n),
        TimeValue::Text(s) => parse_time(s).map_err(|e| e.replacen("`time`", &format!("`{key}`"), 1)),
    }
}

/// Batches of an NDJSON capture.
pub(crate) struct NdjsonBatches {
    path: PathBuf,
    lines: std::io::Lines<Box<dyn BufRead + Send>>,
    line_no: usize,
    next_index: u64,
    projection: Projection,
    batch_size: usize,
    done: bool,
    /// An error met after some events of a batch: the batch is handed out
    /// first (so a reader that goes on keeps those events), the error next.
    pending: Option<Error>,
}

impl NdjsonBatches {
    pub(crate) fn open(path: &Path, projection: Projection, batch_size: usize) -> Result<Self> {
        let f = File::open(path).map_err(|e| Error::io(path, e))?;
        Ok(Self::from_reader(Box::new(BufReader::new(f)), path, projection, batch_size))
    }

    pub(crate) fn from_reader(
        reader: Box<dyn BufRead + Send>,
        path: &Path,
        projection: Projection,
        batch_size: usize,
    ) -> Self {
        NdjsonBatches {
            path: path.to_owned(),
            lines: reader.lines(),
            line_no: 0,
            next_index: 0,
            projection,
            batch_size,
            done: false,
            pending: None,
        }
    }

    fn parse_line(&self, text: &str) -> Result<(Line, Parsed)> {
        let at = |msg: String| Error::capture(&self.path, format!("line {}: {msg}", self.line_no));
        let line: Line = serde_json::from_str(text).map_err(|e| {
            let msg = e.to_string();
            // serde_json appends "at line 1 column N"; the line is ours, keep the column.
            let msg = match msg.rfind(" at line 1 column ") {
                Some(i) => format!("{} (column {})", &msg[..i], &msg[i + " at line 1 column ".len()..]),
                None => msg,
            };
            at(msg)
        })?;
        let kind = EventKind::parse(&line.kind)
            .ok_or_else(|| at(format!("`kind` is {:?}; expected one of {}", line.kind, EventKind::expected())))?;
        let time = time_value("time", &line.time).map_err(at)?;
        let start = line.start.as_ref().map(|v| time_value("start", v)).transpose().map_err(at)?;
        let parent_start = line.parent_start.as_ref().map(|v| time_value("parent_start", v)).transpose().map_err(at)?;
        let audit_request_received = line
            .audit_request_received
            .as_ref()
            .map(|v| time_value("audit_request_received", v))
            .transpose()
            .map_err(at)?;
        Ok((line, Parsed { kind, time, start, parent_start, audit_request_received }))
    }
}

impl Iterator for NdjsonBatches {
    type Item = Result<EventBatch>;
    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.pending.take() {
            return Some(Err(e));
        }
        if self.done {
            return None;
        }
        let mut b = CaptureBuilder::default();
        let first = self.next_index;
        while b.len() < self.batch_size {
            let Some(line) = self.lines.next() else {
                self.done = true;
                break;
            };
            self.line_no += 1;
            let line = match line {
                Ok(l) => l,
                Err(e) => {
                    self.done = true;
                    let msg = if e.kind() == std::io::ErrorKind::InvalidData {
                        format!("line {}: not valid UTF-8", self.line_no)
                    } else {
                        format!("line {}: {e}", self.line_no)
                    };
                    self.pending = Some(Error::capture(&self.path, msg));
                    break;
                }
            };
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            match self.parse_line(t) {
                Ok((l, p)) => push(&mut b, l, p),
                Err(e) => {
                    self.done = true;
                    self.pending = Some(e);
                    break;
                }
            }
        }
        if b.is_empty() {
            return self.pending.take().map(Err);
        }
        self.next_index += b.len() as u64;
        Some(Ok(b.finish(first).project(self.projection)))
    }
}

/// Parses NDJSON capture text held in memory (every column), in batches of
/// at most `batch_size` events; `name` labels errors. Handy for tests and for
/// captures typed into a notebook.
pub fn events_from_ndjson(text: &str, name: &str, batch_size: usize) -> Result<Vec<EventBatch>> {
    let reader: Box<dyn BufRead + Send> = Box::new(std::io::Cursor::new(text.to_owned().into_bytes()));
    NdjsonBatches::from_reader(reader, Path::new(name), Projection::all(), batch_size.max(1)).collect()
}

/// Writes events as NDJSON lines, one object per event with the fields in
/// format order: every version 1 key (nulls written out), and the keys
/// version 2 added only where not null, so version 1 data writes exactly as
/// it always did.
pub struct NdjsonWriter<W: Write> {
    out: W,
    path: PathBuf,
}

impl<W: Write> NdjsonWriter<W> {
    /// Starts writing to `out`; `path` is only used in error messages.
    pub fn new(out: W, path: impl Into<PathBuf>) -> Self {
        NdjsonWriter { out, path: path.into() }
    }

    /// Writes every row of a batch that carries all columns.
    pub fn write(&mut self, batch: &EventBatch) -> Result<()> {
        let mut line = String::with_capacity(512);
        for row in 0..batch.len() {
            line.clear();
            event_json(batch, row, &mut line).map_err(|m| Error::Output { path: self.path.clone(), message: m })?;
            line.push('\n');
            self.out
                .write_all(line.as_bytes())
                .map_err(|e| Error::Output { path: self.path.clone(), message: e.to_string() })?;
        }
        Ok(())
    }

    /// Flushes and returns the sink.
    pub fn finish(mut self) -> Result<W> {
        self.out.flush().map_err(|e| Error::Output { path: self.path.clone(), message: e.to_string() })?;
        Ok(self.out)
    }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("strings always serialize")
}

/// Appends the JSON object of one event to `out`.
fn event_json(batch: &EventBatch, row: usize, out: &mut String) -> std::result::Result<(), String> {
    use std::fmt::Write as _;
    out.push('{');
    for (i, c) in Column::ALL.into_iter().enumerate() {
        let a = batch.column(c).ok_or_else(|| format!("column `{c}` was not read"))?;
        if a.is_null(row) && c.since() > 1 {
            continue;
        }
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "\"{}\":", c.name());
        if a.is_null(row) {
            out.push_str("null");
            continue;
        }
        // By type, so that a new column needs nothing here.
        match a.data_type() {
            DataType::Timestamp(_, _) => {
                out.push_str(&json_str(&format_time(a.as_primitive::<TimestampNanosecondType>().value(row))))
            }
            DataType::UInt32 => {
                let _ = write!(out, "{}", a.as_primitive::<UInt32Type>().value(row));
            }
            DataType::Int32 => {
                let _ = write!(out, "{}", a.as_primitive::<Int32Type>().value(row));
            }
            DataType::Int64 => {
                let _ = write!(out, "{}", a.as_primitive::<Int64Type>().value(row));
            }
            DataType::UInt64 => {
                let _ = write!(out, "{}", a.as_primitive::<UInt64Type>().value(row));
            }
            DataType::Boolean => {
                let _ = write!(out, "{}", a.as_boolean().value(row));
            }
            DataType::List(_) => {
                let list = a.as_list::<i32>().value(row);
                out.push('[');
                for j in 0..list.len() {
                    if j > 0 {
                        out.push(',');
                    }
                    match str_at(list.as_ref(), j) {
                        Some(s) => out.push_str(&json_str(s)),
                        None => out.push_str("null"),
                    }
                }
                out.push(']');
            }
            _ => match str_at(a.as_ref(), row) {
                Some(s) => out.push_str(&json_str(s)),
                None => out.push_str("null"),
            },
        }
    }
    out.push('}');
    Ok(())
}
