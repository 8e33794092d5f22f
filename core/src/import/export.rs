//! Exporters: a capture written as `tracee --output json` lines or as Elastic
//! ECS documents (NDJSON), the inverse of the importers. They exist to prove
//! the importers right (a capture exported and imported back replays to the
//! same findings, except where a format cannot carry a column), and to hand
//! tokenscan captures to tools that read those formats.
//!
//! Each open and exec becomes one line, in capture order, so the event
//! indexes of a capture of opens and execs survive a round trip. Rows of the
//! kinds capture format version 2 added (`fork`, `exit`, `process`,
//! `container`) are skipped and counted ([`Exporter::skipped`]): neither
//! importer reads them back yet. What each format cannot carry is listed in
//! `docs/import.md`; in short:
//!
//! * Tracee: no `tty` and no `gid` (Tracee events have neither), and the
//!   `result` of a successful open becomes the LSM hook's verdict 0.
//! * ECS: no `requested_path`, `cgroup_id` or errno; `flags` only as
//!   `event.type` (`change` for write intent, `access` otherwise), and a
//!   terminal only as `process.interactive` plus `process.tty.char_device`.

use std::io::Write;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampNanosecondType, UInt32Type, UInt64Type};
use arrow_array::Array;

use super::{format_open_flags, tty_to_device, CaptureSink, ImportFormat, UNKNOWN_TTY};
use crate::capture::{str_at, unescape_to_bytes, Column, EventBatch, EventKind, Projection};
use crate::error::{Error, Result};
use crate::replay::ReplayOptions;

/// Which generation of Tracee argument type names to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TraceeStyle {
    /// C type names, as Tracee v0.23 and earlier write them: `const char*`,
    /// `int`, `const char**`.
    V023,
    /// Go type names, as Tracee v0.24 writes them: `string`, `int32`, `[]string`.
    #[default]
    V024,
}

/// How ECS documents spell field names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EcsLayout {
    /// Nested objects, as `_source` of a search hit usually looks: `{"process":{"pid":1}}`.
    #[default]
    Nested,
    /// Dotted keys in one flat object: `{"process.pid":1}`.
    Dotted,
}

/// How exports are written.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExportOptions {
    /// Tracee: type names of arguments.
    pub tracee_style: TraceeStyle,
    /// Tracee: write `flags` as names (`O_RDONLY|O_LARGEFILE`, as
    /// `--parse-arguments` does, type `string`) instead of an integer.
    pub tracee_flag_names: bool,
    /// ECS: nested objects or dotted keys.
    pub ecs_layout: EcsLayout,
}

/// Writes capture batches as foreign-format lines.
pub struct Exporter<W: Write> {
    out: W,
    label: PathBuf,
    format: ImportFormat,
    options: ExportOptions,
    line: String,
    events: u64,
    skipped: u64,
}

impl<W: Write> Exporter<W> {
    /// An exporter writing `format` lines to `out`; `label` names the output in errors.
    pub fn new(out: W, label: impl Into<PathBuf>, format: ImportFormat, options: ExportOptions) -> Self {
        Exporter { out, label: label.into(), format, options, line: String::with_capacity(1024), events: 0, skipped: 0 }
    }

    /// Writes every open and exec of a batch that carries every column
    /// (the other kinds are skipped and counted).
    pub fn write(&mut self, batch: &EventBatch) -> Result<()> {
        let cols = Cols::new(batch).map_err(|m| Error::Output { path: self.label.clone(), message: m })?;
        for row in 0..batch.len() {
            if !matches!(batch.kinds()[row], EventKind::Open | EventKind::Exec) {
                self.skipped += 1;
                continue;
            }
            self.line.clear();
            match self.format {
                ImportFormat::Tracee => tracee_line(&cols, row, &self.options, &mut self.line),
                ImportFormat::Ecs => ecs_line(&cols, row, self.options.ecs_layout, &mut self.line),
                ImportFormat::K8sAudit => {
                    return Err(Error::Output {
                        path: self.label.clone(),
                        message: "captures are exported as tracee or ecs lines, not as a Kubernetes audit log".into(),
                    })
                }
            }
            self.line.push('\n');
            self.out
                .write_all(self.line.as_bytes())
                .map_err(|e| Error::Output { path: self.label.clone(), message: e.to_string() })?;
            self.events += 1;
        }
        Ok(())
    }

    /// Events written so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Rows skipped so far: `fork`, `exit`, `process` and `container` rows.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Flushes and returns the sink.
    pub fn finish(mut self) -> Result<W> {
        self.out.flush().map_err(|e| Error::Output { path: self.label.clone(), message: e.to_string() })?;
        Ok(self.out)
    }
}

impl<W: Write> CaptureSink for Exporter<W> {
    fn write_batch(&mut self, batch: &EventBatch) -> Result<()> {
        self.write(batch)
    }
}

/// What [`export_capture`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExportCounts {
    /// Events written (opens and execs).
    pub events: u64,
    /// Rows skipped: `fork`, `exit`, `process` and `container` rows.
    pub skipped: u64,
}

/// Exports the capture file `capture` (Parquet or NDJSON) to `out` as
/// `format` lines; returns how many events were written and skipped.
pub fn export_capture<W: Write>(
    format: ImportFormat,
    capture: &Path,
    out: W,
    label: &Path,
    options: &ExportOptions,
) -> Result<ExportCounts> {
    let mut ex = Exporter::new(out, label, format, *options);
    let read = ReplayOptions::default();
    crate::driver::read_events(&[capture], Projection::all(), &read, |_, b| Ok(b), &mut |b: EventBatch| ex.write(&b))?;
    let counts = ExportCounts { events: ex.events(), skipped: ex.skipped() };
    ex.finish()?;
    Ok(counts)
}

/// Typed access to the columns of a batch.
struct Cols<'b> {
    batch: &'b EventBatch,
    time: &'b arrow_array::TimestampNanosecondArray,
    pid: &'b arrow_array::UInt32Array,
    tid: &'b arrow_array::UInt32Array,
    ppid: &'b arrow_array::UInt32Array,
    uid: &'b arrow_array::UInt32Array,
    gid: &'b arrow_array::UInt32Array,
    flags: &'b arrow_array::Int32Array,
    result: &'b arrow_array::Int64Array,
    cgroup: &'b arrow_array::UInt64Array,
    args: &'b arrow_array::ListArray,
}

impl<'b> Cols<'b> {
    fn new(batch: &'b EventBatch) -> std::result::Result<Self, String> {
        let col = |c: Column| batch.column(c).ok_or_else(|| format!("column `{c}` was not read"));
        for c in Column::ALL {
            col(c)?;
        }
        Ok(Cols {
            batch,
            time: col(Column::Time)?.as_primitive::<TimestampNanosecondType>(),
            pid: col(Column::Pid)?.as_primitive::<UInt32Type>(),
            tid: col(Column::Tid)?.as_primitive::<UInt32Type>(),
            ppid: col(Column::Ppid)?.as_primitive::<UInt32Type>(),
            uid: col(Column::Uid)?.as_primitive::<UInt32Type>(),
            gid: col(Column::Gid)?.as_primitive::<UInt32Type>(),
            flags: col(Column::Flags)?.as_primitive::<Int32Type>(),
            result: col(Column::Result)?.as_primitive::<Int64Type>(),
            cgroup: col(Column::CgroupId)?.as_primitive::<UInt64Type>(),
            args: col(Column::Args)?.as_list::<i32>(),
        })
    }
    fn kind(&self, row: usize) -> EventKind {
        self.batch.kinds()[row]
    }
    /// A column's text as stored (escapes included).
    fn raw(&self, c: Column, row: usize) -> Option<&'b str> {
        self.batch.str_value(c, row)
    }
    /// A kernel byte string (escaped in the capture) as the text a JSON tool
    /// would write: the original bytes, with invalid UTF-8 replaced by U+FFFD.
    fn text(&self, c: Column, row: usize) -> Option<String> {
        self.raw(c, row).map(decode)
    }
    fn args(&self, row: usize) -> Option<Vec<Option<String>>> {
        if self.args.is_null(row) {
            return None;
        }
        let items = self.args.value(row);
        Some((0..items.len()).map(|i| str_at(items.as_ref(), i).map(decode)).collect())
    }
    fn opt<T: arrow_array::types::ArrowPrimitiveType>(
        a: &arrow_array::PrimitiveArray<T>,
        row: usize,
    ) -> Option<T::Native> {
        a.is_valid(row).then(|| a.value(row))
    }
}

fn decode(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    String::from_utf8_lossy(&unescape_to_bytes(s)).into_owned()
}

/// Appends `s` as a JSON string.
fn push_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0..=0x1f => None,
            _ => continue,
        };
        out.push_str(&s[start..i]);
        match esc {
            Some(e) => out.push_str(e),
            None => out.push_str(&format!("\\u{b:04x}")),
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// A JSON object being written; in dotted mode nested objects become key prefixes.
struct Obj<'o> {
    out: &'o mut String,
    first: &'o mut bool,
    prefix: String,
    dotted: bool,
}

impl<'o> Obj<'o> {
    fn key(&mut self, k: &str) {
        if !*self.first {
            self.out.push(',');
        }
        *self.first = false;
        if self.dotted && !self.prefix.is_empty() {
            push_str(self.out, &format!("{}{k}", self.prefix));
        } else {
            push_str(self.out, k);
        }
        self.out.push(':');
    }
    fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        push_str(self.out, v);
    }
    fn opt_str(&mut self, k: &str, v: Option<&str>) {
        match v {
            Some(v) => self.str(k, v),
            None => self.raw(k, "null"),
        }
    }
    fn raw(&mut self, k: &str, v: &str) {
        self.key(k);
        self.out.push_str(v);
    }
    fn num(&mut self, k: &str, v: impl std::fmt::Display) {
        self.key(k);
        self.out.push_str(&v.to_string());
    }
    fn strs(&mut self, k: &str, items: &[Option<String>]) {
        self.key(k);
        self.out.push('[');
        for (i, s) in items.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            match s {
                Some(s) => push_str(self.out, s),
                None => self.out.push_str("null"),
            }
        }
        self.out.push(']');
    }
    /// A nested object `k`.
    fn obj(&mut self, k: &str, f: impl FnOnce(&mut Obj<'_>)) {
        if self.dotted {
            let prefix = format!("{}{k}.", self.prefix);
            let mut inner = Obj { out: &mut *self.out, first: &mut *self.first, prefix, dotted: true };
            f(&mut inner);
            return;
        }
        self.key(k);
        self.out.push('{');
        let mut first = true;
        let mut inner = Obj { out: &mut *self.out, first: &mut first, prefix: String::new(), dotted: false };
        f(&mut inner);
        self.out.push('}');
    }
}

fn object(out: &mut String, dotted: bool, f: impl FnOnce(&mut Obj<'_>)) {
    out.push('{');
    let mut first = true;
    let mut o = Obj { out, first: &mut first, prefix: String::new(), dotted };
    f(&mut o);
    out.push('}');
}

fn tracee_line(c: &Cols<'_>, row: usize, options: &ExportOptions, out: &mut String) {
    let v023 = options.tracee_style == TraceeStyle::V023;
    let (t_str, t_int, t_argv) =
        if v023 { ("const char*", "int", "const char**") } else { ("string", "int32", "[]string") };
    let kind = c.kind(row);
    let result = Cols::opt(c.result, row);
    let path = c.text(Column::Path, row);
    let container = c.raw(Column::ContainerId, row);
    let comm = c.text(Column::Comm, row).unwrap_or_default();
    // Which Tracee event this row is (see docs/import.md).
    let (event, return_value) = match kind {
        EventKind::Open if path.is_some() => ("security_file_open", result.map(|r| r.min(0))),
        EventKind::Open => ("openat", result),
        EventKind::Exec if result.is_some_and(|r| r < 0) => ("execve", result),
        EventKind::Exec => ("sched_process_exec", result),
        EventKind::Fork
        | EventKind::Exit
        | EventKind::Process
        | EventKind::Container
        | EventKind::K8sAudit
        | EventKind::File(_) => {
            unreachable!("Exporter::write skips rows that are not opens or execs")
        }
    };
    let flags = Cols::opt(c.flags, row);
    let flag_value = |out: &mut Obj<'_>| match flags {
        None => {
            out.str("type", t_int);
            out.raw("value", "null");
        }
        Some(f) if options.tracee_flag_names => {
            out.str("type", "string");
            out.str("value", &format_open_flags(f));
        }
        Some(f) => {
            out.str("type", t_int);
            out.num("value", f);
        }
    };
    object(out, false, |o| {
        o.num("timestamp", c.time.value(row));
        o.num("processId", c.pid.value(row));
        o.num("threadId", c.tid.value(row));
        o.num("parentProcessId", c.ppid.value(row));
        o.num("hostProcessId", c.pid.value(row));
        o.num("hostThreadId", c.tid.value(row));
        o.num("hostParentProcessId", c.ppid.value(row));
        o.num("userId", c.uid.value(row));
        o.num("cgroupId", c.cgroup.value(row));
        o.str("processName", &comm);
        o.obj("executable", |e| e.str("path", &c.text(Column::Exe, row).unwrap_or_default()));
        o.str("hostName", c.raw(Column::Host, row).unwrap_or_default());
        o.str("containerId", container.unwrap_or_default());
        o.obj("container", |k| {
            if let Some(id) = container {
                k.str("id", id);
            }
        });
        o.str("eventName", event);
        if let Some(r) = return_value {
            o.num("returnValue", r);
        }
        o.obj("contextFlags", |f| {
            f.raw("containerStarted", if container.is_some() { "true" } else { "false" });
            f.raw("isCompat", "false");
        });
        o.key("args");
        o.out.push('[');
        let mut n = 0;
        let mut arg = |o: &mut Obj<'_>, name: &str, body: &dyn Fn(&mut Obj<'_>)| push_arg(o, &mut n, name, body);
        let text = |v: Option<String>, ty: &'static str| {
            move |a: &mut Obj<'_>| {
                a.str("type", ty);
                a.opt_str("value", v.as_deref());
            }
        };
        match event {
            "security_file_open" => {
                arg(o, "pathname", &text(path.clone(), t_str));
                arg(o, "flags", &flag_value);
                arg(o, "syscall_pathname", &text(c.text(Column::RequestedPath, row), t_str));
            }
            "openat" => {
                arg(o, "pathname", &text(c.text(Column::RequestedPath, row), t_str));
                arg(o, "flags", &flag_value);
            }
            _ => {
                let argv = c.args(row);
                let argv_arg = |a: &mut Obj<'_>| {
                    a.str("type", if v023 && event == "execve" { "const char*const*" } else { t_argv });
                    match &argv {
                        Some(items) => a.strs("value", items),
                        None => a.raw("value", "null"),
                    }
                };
                if event == "sched_process_exec" {
                    arg(o, "cmdpath", &text(c.text(Column::RequestedPath, row), t_str));
                    arg(o, "pathname", &text(path.clone(), t_str));
                    arg(o, "argv", &argv_arg);
                } else {
                    arg(o, "pathname", &text(c.text(Column::RequestedPath, row), t_str));
                    arg(o, "argv", &argv_arg);
                }
            }
        }
        o.out.push(']');
    });
}

fn push_arg(o: &mut Obj<'_>, n: &mut usize, name: &str, body: &dyn Fn(&mut Obj<'_>)) {
    if *n > 0 {
        o.out.push(',');
    }
    *n += 1;
    object(o.out, false, |a| {
        a.str("name", name);
        body(a);
    });
}

/// RFC 3339 in UTC with nine fraction digits, as the NDJSON capture writes time.
fn format_time(ns: i64) -> String {
    crate::display::rfc3339(ns)
}

fn ecs_line(c: &Cols<'_>, row: usize, layout: EcsLayout, out: &mut String) {
    let kind = c.kind(row);
    let result = Cols::opt(c.result, row);
    let flags = Cols::opt(c.flags, row);
    let tty = c.raw(Column::Tty, row);
    let time = format_time(c.time.value(row));
    object(out, layout == EcsLayout::Dotted, |o| {
        o.str("@timestamp", &time);
        o.obj("event", |e| {
            e.str("kind", "event");
            match kind {
                EventKind::Open => {
                    e.raw("category", "[\"file\"]");
                    e.str("action", "open");
                    match flags.map(|f| crate::display::AccessMode::of(f).writes()) {
                        Some(true) => e.raw("type", "[\"change\"]"),
                        Some(false) => e.raw("type", "[\"access\"]"),
                        None => {}
                    }
                }
                EventKind::Exec => {
                    e.raw("category", "[\"process\"]");
                    e.str("action", "exec");
                    e.raw("type", "[\"start\"]");
                }
                EventKind::Fork
                | EventKind::Exit
                | EventKind::Process
                | EventKind::Container
                | EventKind::K8sAudit
                | EventKind::File(_) => {
                    unreachable!("Exporter::write skips rows that are not opens or execs")
                }
            }
            match result {
                Some(r) if r < 0 => e.str("outcome", "failure"),
                Some(_) => {}
                None => e.str("outcome", "unknown"),
            }
        });
        o.obj("host", |h| {
            h.str("name", c.raw(Column::Host, row).unwrap_or_default());
            h.obj("os", |os| os.str("type", "linux"));
        });
        if let Some(id) = c.raw(Column::ContainerId, row) {
            o.obj("container", |k| k.str("id", id));
        }
        o.obj("process", |p| {
            p.num("pid", c.pid.value(row));
            p.obj("thread", |t| t.num("id", c.tid.value(row)));
            p.obj("parent", |t| t.num("pid", c.ppid.value(row)));
            p.str("name", &c.text(Column::Comm, row).unwrap_or_default());
            if let Some(exe) = c.text(Column::Exe, row) {
                p.str("executable", &exe);
            }
            if kind == EventKind::Exec {
                if let Some(args) = c.args(row).filter(|a| !a.is_empty()) {
                    p.strs("args", &args);
                    p.num("args_count", args.len());
                }
            }
            p.raw("interactive", if tty.is_some() { "true" } else { "false" });
            if let Some((major, minor)) = tty.filter(|t| *t != UNKNOWN_TTY).and_then(tty_to_device) {
                p.obj("tty", |t| {
                    t.obj("char_device", |d| {
                        d.num("major", major);
                        d.num("minor", minor);
                    })
                });
            }
        });
        o.obj("user", |u| u.str("id", &c.uid.value(row).to_string()));
        o.obj("group", |g| g.str("id", &c.gid.value(row).to_string()));
        if kind == EventKind::Open {
            if let Some(path) = c.text(Column::Path, row) {
                let name = path.rsplit('/').next().unwrap_or(&path).to_string();
                o.obj("file", |f| {
                    f.str("path", &path);
                    f.str("name", &name);
                });
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        let mut s = String::new();
        push_str(&mut s, "a\"b\\c\nd\u{1}é");
        assert_eq!(s, r#""a\"b\\c\nd\u0001é""#);
        let back: String = serde_json::from_str(&s).unwrap();
        assert_eq!(back, "a\"b\\c\nd\u{1}é");
    }

    #[test]
    fn dotted_objects_flatten() {
        let mut s = String::new();
        object(&mut s, true, |o| {
            o.num("a", 1);
            o.obj("b", |b| {
                b.num("c", 2);
                b.obj("d", |d| d.str("e", "x"));
            });
            o.num("f", 3);
        });
        assert_eq!(s, r#"{"a":1,"b.c":2,"b.d.e":"x","f":3}"#);
        let mut n = String::new();
        object(&mut n, false, |o| {
            o.obj("b", |b| {
                b.num("c", 2);
                b.obj("d", |_| {});
            });
        });
        assert_eq!(n, r#"{"b":{"c":2,"d":{}}}"#);
    }
}
