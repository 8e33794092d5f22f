//! Events as the capture format defines them, and the Arrow batches they go into.

use std::borrow::Cow;

use arrow_array::RecordBatch;
use tokenscan_core::capture::{escape_bytes, CaptureBuilder, ContainerColumns, EventKind};

use crate::pods::PodMetadata;

/// The prefix of a `path` whose kernel-side walk stopped before reaching the
/// root (deeper than 64 components, longer than 4095 bytes, or a disconnected
/// dentry): what follows is the tail of the path. Real resolved paths always
/// start with `/`, so this cannot be mistaken for one.
pub const PATH_TRUNCATED_PREFIX: &str = "[tokenscan:path-truncated]";

/// The start of the extra last element of `args` when argv was longer than
/// what the recorder keeps (see [`Argv::marker`]).
pub const ARGV_TRUNCATED_PREFIX: &str = "[tokenscan:argv-truncated";

/// A path as the kernel side walked it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkedPath<'a> {
    /// The path bytes (the tail, when `complete` is false).
    pub bytes: &'a [u8],
    /// Whether the walk reached the task's root.
    pub complete: bool,
}

impl WalkedPath<'_> {
    /// The capture string: escaped, with [`PATH_TRUNCATED_PREFIX`] when incomplete.
    pub fn to_text(&self) -> Cow<'_, str> {
        let s = escape_bytes(self.bytes);
        if self.complete {
            s
        } else {
            Cow::Owned(format!("{PATH_TRUNCATED_PREFIX}{s}"))
        }
    }
}

/// argv as recorded: NUL-separated arguments, maybe cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argv<'a> {
    /// The arguments, each followed by a NUL (the last one may lack it when cut).
    pub blob: &'a [u8],
    /// Whether argv went on beyond `blob`.
    pub truncated: bool,
    /// argv's full size in bytes, when the kernel could tell (successful execs).
    pub total_bytes: Option<u32>,
}

impl<'a> Argv<'a> {
    /// The recorded arguments, escaped. A cut-short last argument is kept as recorded.
    pub fn args(&self) -> impl Iterator<Item = Cow<'a, str>> + 'a {
        let body = self.blob.strip_suffix(b"\0").unwrap_or(self.blob);
        let empty = self.blob.is_empty();
        body.split(|&b| b == 0).filter(move |_| !empty).map(escape_bytes)
    }

    /// The extra last element that marks a truncated argv, e.g.
    /// `[tokenscan:argv-truncated: 8192 of 10250 bytes recorded]`, or
    /// `[tokenscan:argv-truncated: 8192 bytes recorded, more not read]` when the
    /// full size is unknown (failed execs, whose argv is read pointer by pointer).
    pub fn marker(&self) -> Option<String> {
        if !self.truncated {
            return None;
        }
        let recorded = self.blob.len();
        Some(match self.total_bytes {
            Some(total) => format!("{ARGV_TRUNCATED_PREFIX}: {recorded} of {total} bytes recorded]"),
            None => format!("{ARGV_TRUNCATED_PREFIX}: {recorded} bytes recorded, more not read]"),
        })
    }
}

/// The controlling terminal's name as tools show it: the kernel calls the
/// pty slave `/dev/pts/3` "pts3"; every other tty name is already its `/dev` name.
pub fn tty_display_name(kernel_name: &[u8]) -> Cow<'_, str> {
    if let Some(n) = kernel_name.strip_prefix(b"pts") {
        if !n.is_empty() && n.iter().all(u8::is_ascii_digit) {
            return Cow::Owned(format!("pts/{}", String::from_utf8_lossy(n)));
        }
    }
    escape_bytes(kernel_name)
}

/// One event, borrowing from the kernel record and the recorder's caches.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    /// Nanoseconds since the Unix epoch, UTC.
    pub time_ns: i64,
    /// The kernel's timestamp (CLOCK_BOOTTIME nanoseconds), `time_ns` before conversion.
    pub boot_ns: u64,
    /// Open, exec, fork, exit or a /proc snapshot row (`process`); the
    /// recorder makes no `container` event (those rows come from
    /// [`crate::pods`], see [`BatchBuilder::push_container`]).
    pub kind: EventKind,
    /// Thread group id (host pid namespace).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Parent's thread group id.
    pub ppid: u32,
    /// Real uid.
    pub uid: u32,
    /// Real gid.
    pub gid: u32,
    /// comm (after the exec, for exec events).
    pub comm: &'a [u8],
    /// The process's executable, already escaped.
    pub exe: Option<&'a str>,
    /// argv (exec events).
    pub args: Option<Argv<'a>>,
    /// The opened or executed file, resolved in the kernel.
    pub path: Option<WalkedPath<'a>>,
    /// The path string the process passed.
    pub requested_path: Option<&'a [u8]>,
    /// Open flags.
    pub flags: Option<i32>,
    /// Syscall result (fd or -errno); 0 for a successful exec.
    pub result: Option<i64>,
    /// Controlling terminal, kernel name (see [`tty_display_name`]).
    pub tty: Option<&'a [u8]>,
    /// cgroup v2 id.
    pub cgroup_id: u64,
    /// The cgroup's path below the cgroup2 root and whether it was cut, when
    /// the kernel sent it with this event (the first of each cgroup id).
    pub cgroup_path: Option<(String, bool)>,
    /// Session id (host pid namespace); None when not known.
    pub sid: Option<u32>,
    /// Process group id (host pid namespace); None when not known.
    pub pgid: Option<u32>,
    /// When the process started (its thread group leader's `start_boottime`,
    /// converted to Unix time like `time_ns`), in nanoseconds. Together with
    /// `pid` it names one process for the whole recording. /proc snapshot rows
    /// only know it to the clock tick (see [`crate::snapshot`]).
    pub process_start_ns: Option<i64>,
    /// When the real parent process started (same clock); None when the
    /// parent is pid 0 or not known.
    pub parent_start_ns: Option<i64>,
    /// The thread's working directory, resolved relative to the task's root
    /// like `path` and escaped (with [`PATH_TRUNCATED_PREFIX`] when cut).
    pub cwd: Option<&'a str>,
    /// For a rename, link or symlink: the old path, the existing file or the
    /// link's target (see the capture column `old_path`), already escaped.
    pub old_path: Option<Cow<'a, str>>,
    /// Fork: the new task is a thread (CLONE_THREAD), not a new process.
    /// Exit: a thread ended and the process goes on (false: its last thread
    /// ended, the process is gone). False for other kinds.
    pub thread: bool,
}

/// The first process seen in a container, kept until its `container` row is
/// written (see [`BatchBuilder::push_container`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerProcess {
    /// Thread group id (host pid namespace).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Parent's thread group id.
    pub ppid: u32,
    /// uid.
    pub uid: u32,
    /// gid.
    pub gid: u32,
    /// comm, as the kernel has it.
    pub comm: Vec<u8>,
    /// cgroup v2 id.
    pub cgroup_id: u64,
}

impl ContainerProcess {
    /// The process of event `e`.
    pub fn of(e: &Event<'_>) -> Self {
        ContainerProcess {
            pid: e.pid,
            tid: e.tid,
            ppid: e.ppid,
            uid: e.uid,
            gid: e.gid,
            comm: e.comm.to_vec(),
            cgroup_id: e.cgroup_id,
        }
    }
}

/// Builds capture record batches ([`tokenscan_core::capture::schema`]) row by
/// row: fills the core's [`CaptureBuilder`] with recorded events.
pub struct BatchBuilder {
    host: String,
    columns: CaptureBuilder,
    capacity: usize,
}

impl BatchBuilder {
    /// A builder for events of `host`, sized for `capacity` rows per batch.
    pub fn new(host: impl Into<String>, capacity: usize) -> Self {
        BatchBuilder { host: host.into(), columns: CaptureBuilder::with_capacity(capacity, capacity * 16), capacity }
    }

    /// Rows appended since the last [`BatchBuilder::finish`].
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    /// Whether no row is pending.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// Whether the batch reached its capacity.
    pub fn is_full(&self) -> bool {
        self.len() >= self.capacity
    }

    /// Appends one event with its container id. [`Event::thread`] is not
    /// written: a fork or exit row is a thread's when `tid != pid`.
    pub fn push(&mut self, e: &Event<'_>, container_id: Option<&str>) {
        let b = &mut self.columns;
        b.time.append(e.time_ns);
        b.kind.append(e.kind);
        b.host.append(&self.host);
        b.pid.append(e.pid);
        b.tid.append(e.tid);
        b.ppid.append(e.ppid);
        b.uid.append(e.uid);
        b.gid.append(e.gid);
        b.comm.append(&escape_bytes(e.comm));
        b.exe.append(e.exe);
        b.args.append(e.args.as_ref().map(|argv| argv.args().chain(argv.marker().map(Cow::Owned)).map(Some)));
        b.path.append(e.path.as_ref().map(|p| p.to_text()));
        b.requested_path.append(e.requested_path.map(escape_bytes));
        b.flags.append(e.flags);
        b.result.append(e.result);
        b.tty.append(e.tty.map(tty_display_name));
        b.cgroup_id.append(e.cgroup_id);
        b.container_id.append(container_id);
        b.sid.append(e.sid);
        b.pgid.append(e.pgid);
        b.start.append(e.process_start_ns);
        b.parent_start.append(e.parent_start_ns);
        b.cwd.append(e.cwd);
        b.append_container_meta(None);
        b.container_started.append(None);
        b.old_path.append(e.old_path.as_deref());
        b.append_v3_nulls();
    }

    /// Appends the `container` row of `meta`, at `time_ns` (when it was
    /// read), with the context of `first`, the container's process that led
    /// to the lookup: its ids, credentials, name and cgroup, nothing else.
    pub fn push_container(&mut self, time_ns: i64, first: &ContainerProcess, meta: &PodMetadata) {
        let b = &mut self.columns;
        b.time.append(time_ns);
        b.kind.append(EventKind::Container);
        b.host.append(&self.host);
        b.pid.append(first.pid);
        b.tid.append(first.tid);
        b.ppid.append(first.ppid);
        b.uid.append(first.uid);
        b.gid.append(first.gid);
        b.comm.append(&escape_bytes(&first.comm));
        b.exe.append(None::<&str>);
        b.args.append(None::<[Option<&str>; 0]>);
        b.path.append(None::<&str>);
        b.requested_path.append(None::<&str>);
        b.flags.append(None);
        b.result.append(None);
        b.tty.append(None::<&str>);
        b.cgroup_id.append(first.cgroup_id);
        b.container_id.append(Some(&meta.container_id));
        b.sid.append(None);
        b.pgid.append(None);
        b.start.append(None);
        b.parent_start.append(None);
        b.cwd.append(None::<&str>);
        b.append_container_meta(Some(&ContainerColumns {
            pod_name: meta.pod_name.as_deref(),
            pod_namespace: meta.pod_namespace.as_deref(),
            pod_uid: meta.pod_uid.as_deref(),
            container_name: meta.container_name.as_deref(),
            image: meta.image.as_deref(),
            image_name: meta.image_name.as_deref(),
            image_tag: meta.image_tag.as_deref(),
            privileged: meta.privileged,
        }));
        b.container_started.append(None);
        b.old_path.append(None::<&str>);
        b.append_v3_nulls();
    }

    /// The rows appended so far as a record batch; the builder starts over.
    pub fn finish(&mut self) -> RecordBatch {
        self.columns.finish_record_batch()
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int64Type, TimestampNanosecondType};
    use arrow_array::Array;

    use tokenscan_core::capture::schema;

    use super::*;

    fn argv(blob: &[u8], truncated: bool, total: Option<u32>) -> Vec<String> {
        let a = Argv { blob, truncated, total_bytes: total };
        let mut v: Vec<String> = a.args().map(|c| c.into_owned()).collect();
        v.extend(a.marker());
        v
    }

    #[test]
    fn argv_splitting_and_marking() {
        assert_eq!(argv(b"cat\0/run/x\0", false, Some(11)), ["cat", "/run/x"]);
        assert_eq!(argv(b"", false, Some(0)), Vec::<String>::new());
        assert_eq!(argv(b"\0", false, None), [""]);
        assert_eq!(argv(b"a\0\0b\0", false, None), ["a", "", "b"]);
        assert_eq!(argv(b"\xff\0a\\b\0", false, None), ["\\xff", "a\\\\b"]);
        assert_eq!(
            argv(b"python3\0-c\0prin", true, Some(9000)),
            ["python3", "-c", "prin", "[tokenscan:argv-truncated: 15 of 9000 bytes recorded]"]
        );
        assert_eq!(argv(b"x\0", true, None), ["x", "[tokenscan:argv-truncated: 2 bytes recorded, more not read]"]);
    }

    #[test]
    fn paths_and_ttys() {
        assert_eq!(WalkedPath { bytes: b"/run/x", complete: true }.to_text(), "/run/x");
        assert_eq!(WalkedPath { bytes: b"/c/d", complete: false }.to_text(), "[tokenscan:path-truncated]/c/d");
        assert_eq!(WalkedPath { bytes: b"/tmp/\xfe", complete: true }.to_text(), "/tmp/\\xfe");
        assert_eq!(tty_display_name(b"pts0"), "pts/0");
        assert_eq!(tty_display_name(b"pts12"), "pts/12");
        assert_eq!(tty_display_name(b"tty1"), "tty1");
        assert_eq!(tty_display_name(b"ttyS0"), "ttyS0");
        assert_eq!(tty_display_name(b"ptsx"), "ptsx");
    }

    #[test]
    fn builds_a_canonical_batch() {
        let mut b = BatchBuilder::new("node-a", 4);
        let exec = Event {
            time_ns: 1_000,
            boot_ns: 10,
            kind: EventKind::Exec,
            pid: 10,
            tid: 10,
            ppid: 1,
            uid: 0,
            gid: 0,
            comm: b"cat",
            exe: Some("/usr/bin/cat"),
            args: Some(Argv { blob: b"cat\0token\0", truncated: false, total_bytes: Some(10) }),
            path: Some(WalkedPath { bytes: b"/usr/bin/cat", complete: true }),
            requested_path: Some(b"/bin/cat"),
            flags: None,
            result: Some(0),
            tty: Some(b"pts1"),
            cgroup_id: 77,
            cgroup_path: None,
            sid: Some(5),
            pgid: Some(10),
            process_start_ns: Some(900),
            parent_start_ns: Some(1),
            cwd: Some("/root"),
            old_path: None,
            thread: false,
        };
        let open = Event {
            kind: EventKind::Open,
            args: None,
            path: None,
            requested_path: Some(b"token"),
            flags: Some(32768),
            result: Some(-2),
            tty: None,
            ..exec.clone()
        };
        b.push(&exec, Some("abc"));
        b.push(&open, None);
        assert_eq!(b.len(), 2);
        let rb = b.finish();
        assert!(b.is_empty());
        assert_eq!(rb.schema(), schema());
        assert_eq!(rb.num_rows(), 2);
        assert_eq!(rb.column(0).as_primitive::<TimestampNanosecondType>().value(1), 1_000);
        assert_eq!(rb.column(1).as_string::<i32>().value(1), "open");
        assert_eq!(rb.column(2).as_string::<i32>().value(0), "node-a");
        let args = rb.column(10).as_list::<i32>();
        assert_eq!(args.value(0).as_string::<i32>().iter().flatten().collect::<Vec<_>>(), ["cat", "token"]);
        assert!(args.is_null(1));
        assert!(rb.column(11).is_null(1));
        assert_eq!(rb.column(14).as_primitive::<Int64Type>().value(1), -2);
        assert_eq!(rb.column(15).as_string::<i32>().value(0), "pts/1");
        assert!(rb.column(15).is_null(1));
        assert_eq!(rb.column(17).as_string::<i32>().value(0), "abc");
        assert!(rb.column(17).is_null(1));
    }

    fn col<'a>(rb: &'a RecordBatch, name: &str) -> &'a arrow_array::ArrayRef {
        rb.column_by_name(name).unwrap_or_else(|| panic!("column {name}"))
    }

    #[test]
    fn writes_process_context_and_container_rows() {
        use arrow_array::types::UInt32Type;
        let mut b = BatchBuilder::new("node-a", 4);
        let fork = Event {
            time_ns: 2_000,
            boot_ns: 20,
            kind: EventKind::Fork,
            pid: 10,
            tid: 11,
            ppid: 1,
            uid: 0,
            gid: 0,
            comm: b"sh",
            exe: Some("/bin/sh"),
            args: None,
            path: None,
            requested_path: None,
            flags: None,
            result: None,
            tty: None,
            cgroup_id: 77,
            cgroup_path: None,
            sid: Some(5),
            pgid: Some(10),
            process_start_ns: Some(1_500),
            parent_start_ns: Some(3),
            cwd: Some("/srv"),
            old_path: None,
            thread: true,
        };
        let exit = Event { kind: EventKind::Exit, tid: 10, result: Some(3 << 8), thread: false, ..fork.clone() };
        b.push(&fork, Some("abc"));
        b.push(&exit, Some("abc"));
        let meta = PodMetadata {
            container_id: "abc".into(),
            pod_name: Some("web-0".into()),
            pod_namespace: Some("shop".into()),
            pod_uid: None,
            container_name: Some("web".into()),
            image: Some("nginx:1.27".into()),
            image_name: Some("nginx".into()),
            image_tag: Some("1.27".into()),
            privileged: Some(false),
            source: crate::pods::MetadataSource::Containerd,
        };
        b.push_container(3_000, &ContainerProcess::of(&fork), &meta);
        let rb = b.finish();
        assert_eq!(rb.schema(), schema());
        let kinds: Vec<&str> = (0..3).map(|i| col(&rb, "kind").as_string::<i32>().value(i)).collect();
        assert_eq!(kinds, ["fork", "exit", "container"]);
        let tids: Vec<u32> = (0..3).map(|i| col(&rb, "tid").as_primitive::<UInt32Type>().value(i)).collect();
        assert_eq!(tids, [11, 10, 11], "a thread's fork has tid != pid; the container row keeps the first process");
        assert_eq!(col(&rb, "result").as_primitive::<Int64Type>().value(1), 768, "wait status of exit(3)");
        for (name, want) in [("sid", 5), ("pgid", 10)] {
            let c = col(&rb, name).as_primitive::<UInt32Type>();
            assert_eq!((c.value(0), c.value(1), c.is_null(2)), (want, want, true), "{name}");
        }
        let start = col(&rb, "start").as_primitive::<TimestampNanosecondType>();
        assert_eq!((start.value(0), start.is_null(2)), (1_500, true));
        assert_eq!(col(&rb, "parent_start").as_primitive::<TimestampNanosecondType>().value(1), 3);
        assert_eq!(col(&rb, "cwd").as_string::<i32>().value(1), "/srv");
        assert!(col(&rb, "cwd").is_null(2));
        for (name, want) in [
            ("pod_name", Some("web-0")),
            ("pod_namespace", Some("shop")),
            ("pod_uid", None),
            ("container_name", Some("web")),
            ("image", Some("nginx:1.27")),
            ("image_name", Some("nginx")),
            ("image_tag", Some("1.27")),
            ("container_id", Some("abc")),
        ] {
            let c = col(&rb, name).as_string::<i32>();
            assert_eq!(c.is_valid(2).then(|| c.value(2)), want, "{name}");
            if name != "container_id" {
                assert!(c.is_null(0) && c.is_null(1), "{name} only on the container row");
            }
        }
        let privileged = col(&rb, "privileged").as_boolean();
        assert_eq!((privileged.is_valid(2), privileged.value(2), privileged.is_null(0)), (true, false, true));
        assert_eq!(col(&rb, "time").as_primitive::<TimestampNanosecondType>().value(2), 3_000);
    }
}
