//! Turning kernel records into capture events.
//!
//! An open arrives as two records, an exec as two or three (see
//! `src/bpf/recorder.h`); the [`Assembler`] joins them by thread id. The
//! ring buffer is one queue in commit order, so a thread's entry record is
//! always consumed before its exit record. A record the ring buffer dropped
//! leaves its partner unpaired: an exit without entry still becomes an event
//! (without `requested_path`), an entry without exit is discarded when the
//! thread's next entry arrives; both are counted.
//!
//! The kernel sends a process's executable path only with its first record
//! (and at every exec); the assembler keeps it per process and fills `exe`
//! of later events from there. Likewise a thread's working directory, sent
//! when it changed for that thread, is kept per thread and fills `cwd`.
//! Fork and exit records become events of their own; an exit makes the
//! assembler forget the thread's cwd (and, for the process's last thread,
//! the process's exe), as the kernel does.

use std::collections::HashMap;

use crate::event::{Argv, Event, WalkedPath, PATH_TRUNCATED_PREFIX};
use crate::record::{Flags, Kind, Record, Syscall};
use tokenscan_core::capture::{unescape_to_bytes, EventKind, FileOp};

/// `O_LARGEFILE` as the kernel of this architecture stores it in `f_flags`
/// (its user-space value is 0 on 64-bit, so `libc` cannot be used).
#[cfg(target_arch = "x86_64")]
const O_LARGEFILE: i32 = 0o100000;
#[cfg(target_arch = "aarch64")]
const O_LARGEFILE: i32 = 0o400000;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const O_LARGEFILE: i32 = 0;

const O_CREAT: i32 = 0o100;
const O_EXCL: i32 = 0o200;
const O_NOCTTY: i32 = 0o400;
const O_TRUNC: i32 = 0o1000;
const O_CLOEXEC: i32 = 0o2000000;

/// Processes whose exe is cached before the cache is reset (and the kernel asked to resend).
const EXE_CACHE_MAX: usize = 262_144;
/// Threads whose cwd is cached before the cache is reset (and the kernel asked to resend).
const CWD_CACHE_MAX: usize = 262_144;
/// Unpaired entries kept before the oldest are dropped.
const PENDING_MAX: usize = 262_144;

/// The flags of a failed open, stored the way the kernel would have stored
/// them in the file's `f_flags` had it succeeded: `O_LARGEFILE` added (the
/// kernel forces it on 64-bit), `O_CLOEXEC` (a descriptor flag, never kept in
/// `f_flags`) and the open-time-only bits `O_CREAT`, `O_EXCL`, `O_NOCTTY`,
/// `O_TRUNC` removed. Successful opens carry `f_flags` itself.
pub fn f_flags_of_request(flags: i32) -> i32 {
    (flags | O_LARGEFILE) & !(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_CLOEXEC)
}

/// What the assembler saw, for the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AssemblerStats {
    /// Records decoded.
    pub records: u64,
    /// Records that could not be decoded.
    pub bad_records: u64,
    /// Open events produced.
    pub opens: u64,
    /// Exec events produced (successful and failed).
    pub execs: u64,
    /// Exec events with argv cut short (marked in `args`).
    pub argv_truncated: u64,
    /// Events whose path walk was incomplete (marked in `path`).
    pub path_truncated: u64,
    /// Exit records without their entry record (entry lost).
    pub exits_without_entry: u64,
    /// Entry records never followed by their exit (exit lost).
    pub entries_without_exit: u64,
    /// Events whose process's exe was not known (its record was lost).
    pub exe_unknown: u64,
    /// Fork events (new processes and threads).
    pub forks: u64,
    /// Exit events (threads and processes).
    pub exits: u64,
    /// Events whose thread's working directory was not known (its record was lost).
    pub cwd_unknown: u64,
    /// File operation events (create, modify, delete, rename, link,
    /// symlink, chmod, chown), those derived from opens included.
    pub file_ops: u64,
}

#[derive(Default, Clone, Copy)]
struct ProcessContext {
    sid: Option<u32>,
    pgid: Option<u32>,
    start: Option<i64>,
    parent_start: Option<i64>,
}

struct PendingOpen {
    flags: Option<i32>,
    req: Option<Box<[u8]>>,
}

/// The entry of a file operation: its path strings and the directories
/// they are relative to (see `REC_FOP_ENTER` in recorder.h).
struct PendingFop {
    first: Option<Box<[u8]>>,
    dir1: Option<(Box<[u8]>, bool)>,
    second: Option<Box<[u8]>>,
    dir2: Option<(Box<[u8]>, bool)>,
}

struct PendingExec {
    req: Option<Box<[u8]>>,
    args: Option<Box<[u8]>>,
    args_truncated: bool,
}

/// Joins records into events (see the module docs).
pub struct Assembler {
    clock_offset_ns: i64,
    pending_open: HashMap<u32, PendingOpen>,
    pending_exec: HashMap<u32, PendingExec>,
    pending_fop: HashMap<u32, PendingFop>,
    exe: HashMap<u32, Box<str>>,
    cwd: HashMap<u32, Box<str>>,
    want_exe_resend: bool,
    stats: AssemblerStats,
}

impl Assembler {
    /// `clock_offset_ns` turns the kernel's CLOCK_BOOTTIME stamps into Unix time.
    pub fn new(clock_offset_ns: i64) -> Self {
        Assembler {
            clock_offset_ns,
            pending_open: HashMap::new(),
            pending_exec: HashMap::new(),
            pending_fop: HashMap::new(),
            exe: HashMap::new(),
            cwd: HashMap::new(),
            want_exe_resend: false,
            stats: AssemblerStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> AssemblerStats {
        self.stats
    }

    /// Remembers the exe and working directory of a process that was running
    /// before the recording (from the /proc snapshot), for events whose
    /// records do not carry them (an exit, or after a lost record).
    pub fn seed_process(&mut self, pid: u32, exe: Option<&str>, cwd: Option<&str>) {
        if let Some(x) = exe {
            self.cache_exe(pid, x.to_owned());
        }
        if let Some(c) = cwd {
            self.cache_cwd(pid, c.to_owned());
        }
    }

    /// Converts a kernel CLOCK_BOOTTIME stamp to Unix time (nanoseconds).
    pub fn wall_ns(&self, boot_ns: u64) -> i64 {
        (boot_ns as i64).saturating_add(self.clock_offset_ns)
    }

    /// Whether the kernel should be asked to resend exe paths and working
    /// directories (one was missing, or a cache was reset); clears the request.
    pub fn take_exe_resend_request(&mut self) -> bool {
        std::mem::take(&mut self.want_exe_resend)
    }

    /// Decodes one ring buffer record and hands the events it completes to `sink`.
    pub fn handle(&mut self, data: &[u8], sink: &mut dyn FnMut(&Event<'_>)) {
        let rec = match Record::parse(data) {
            Ok(r) => r,
            Err(_) => {
                self.stats.bad_records += 1;
                return;
            }
        };
        self.stats.records += 1;
        let h = &rec.hdr;
        match h.kind {
            Kind::REC_OPEN_ENTER => {
                let flags = rec.has(Flags::RF_REQ_FLAGS).then_some(h.flags);
                let p = PendingOpen { flags, req: rec.req.map(Box::from) };
                self.insert_pending_open(h.tid, p);
            }
            Kind::REC_EXEC_ENTER => {
                let p = PendingExec {
                    req: rec.req.map(Box::from),
                    args: rec.args.map(Box::from),
                    args_truncated: rec.has(Flags::RF_ARGS_TRUNCATED),
                };
                if self.pending_exec.len() >= PENDING_MAX {
                    self.stats.entries_without_exit += self.pending_exec.len() as u64;
                    self.pending_exec.clear();
                }
                if self.pending_exec.insert(h.tid, p).is_some() {
                    self.stats.entries_without_exit += 1;
                }
            }
            Kind::REC_FOP_ENTER => {
                let dir = |seg: Option<&[u8]>, bit: Flags| seg.map(|b| (Box::from(b), !rec.has(bit)));
                let p = PendingFop {
                    first: rec.req.map(Box::from),
                    dir1: dir(rec.path, Flags::RF_PATH_TRUNCATED),
                    second: rec.args.map(Box::from),
                    dir2: dir(rec.exe, Flags::RF_EXE_TRUNCATED),
                };
                if self.pending_fop.len() >= PENDING_MAX {
                    self.stats.entries_without_exit += self.pending_fop.len() as u64;
                    self.pending_fop.clear();
                }
                if self.pending_fop.insert(h.tid, p).is_some() {
                    self.stats.entries_without_exit += 1;
                }
            }
            Kind::REC_FOP_EXIT => self.fop_exit(&rec, sink),
            Kind::REC_OPEN_EXIT => self.open_exit(&rec, sink),
            Kind::REC_EXEC => self.exec(&rec, sink),
            Kind::REC_EXEC_EXIT => self.exec_failed(&rec, sink),
            Kind::REC_FORK => self.fork(&rec, sink),
            Kind::REC_EXIT => self.exit(&rec, sink),
            _ => self.stats.bad_records += 1,
        }
    }

    fn insert_pending_open(&mut self, tid: u32, p: PendingOpen) {
        if self.pending_open.len() >= PENDING_MAX {
            self.stats.entries_without_exit += self.pending_open.len() as u64;
            self.pending_open.clear();
        }
        if self.pending_open.insert(tid, p).is_some() {
            self.stats.entries_without_exit += 1;
        }
    }

    fn time(&self, rec: &Record<'_>) -> i64 {
        self.wall_ns(rec.hdr.ts_boot_ns)
    }

    /// Stores the exe a record carries; counts it (and asks for a resend)
    /// when the process's exe is not known and `expected`.
    fn note_exe(&mut self, rec: &Record<'_>, expected: bool) {
        let pid = rec.hdr.pid;
        if let Some(bytes) = rec.exe {
            let text = WalkedPath { bytes, complete: !rec.has(Flags::RF_EXE_TRUNCATED) }.to_text().into_owned();
            self.cache_exe(pid, text);
        } else if expected && !self.exe.contains_key(&pid) {
            self.stats.exe_unknown += 1;
            self.want_exe_resend = true;
        }
    }

    /// Stores the cwd a record carries; counts it (and asks for a resend)
    /// when the thread's cwd is not known and `expected`.
    fn note_cwd(&mut self, rec: &Record<'_>, expected: bool) {
        let tid = rec.hdr.tid;
        if let Some(bytes) = rec.cwd {
            let text = WalkedPath { bytes, complete: !rec.has(Flags::RF_CWD_TRUNCATED) }.to_text().into_owned();
            self.cache_cwd(tid, text);
        } else if expected && !self.cwd.contains_key(&tid) {
            self.stats.cwd_unknown += 1;
            self.want_exe_resend = true;
        }
    }

    fn cache_cwd(&mut self, tid: u32, text: String) {
        if self.cwd.len() >= CWD_CACHE_MAX && !self.cwd.contains_key(&tid) {
            self.cwd.clear();
            self.want_exe_resend = true;
        }
        self.cwd.insert(tid, text.into_boxed_str());
    }

    /// Session, process group and start times of a record's process.
    fn process_context(&self, rec: &Record<'_>) -> ProcessContext {
        let h = &rec.hdr;
        if !rec.has(Flags::RF_PROC) {
            return ProcessContext::default();
        }
        ProcessContext {
            sid: Some(h.sid),
            pgid: Some(h.pgid),
            start: (h.start_boot_ns != 0).then(|| self.wall_ns(h.start_boot_ns)),
            parent_start: (h.ppid != 0 && h.parent_start_boot_ns != 0).then(|| self.wall_ns(h.parent_start_boot_ns)),
        }
    }

    fn cache_exe(&mut self, pid: u32, text: String) {
        if self.exe.len() >= EXE_CACHE_MAX && !self.exe.contains_key(&pid) {
            self.exe.clear();
            self.want_exe_resend = true;
        }
        self.exe.insert(pid, text.into_boxed_str());
    }

    fn walked_path<'r>(&mut self, rec: &Record<'r>) -> Option<WalkedPath<'r>> {
        let p = rec.path.map(|bytes| WalkedPath { bytes, complete: !rec.has(Flags::RF_PATH_TRUNCATED) });
        if p.is_some_and(|p| !p.complete) {
            self.stats.path_truncated += 1;
        }
        p
    }

    /// The event `rec` describes, with what every kind shares filled in
    /// (time, ids, comm, the process's known exe, tty, cgroup, process
    /// context, cwd) and the rest empty; each kind sets its own fields on top.
    fn event<'e>(&'e self, rec: &'e Record<'_>, kind: EventKind) -> Event<'e> {
        let h = &rec.hdr;
        let pc = self.process_context(rec);
        Event {
            time_ns: self.time(rec),
            boot_ns: h.ts_boot_ns,
            kind,
            pid: h.pid,
            tid: h.tid,
            ppid: h.ppid,
            uid: h.uid,
            gid: h.gid,
            comm: rec.comm(),
            exe: self.exe.get(&h.pid).map(|s| &**s),
            args: None,
            path: None,
            requested_path: None,
            flags: None,
            result: None,
            tty: rec.tty,
            cgroup_id: h.cgroup_id,
            cgroup_path: rec.cgroup_path(),
            sid: pc.sid,
            pgid: pc.pgid,
            process_start_ns: pc.start,
            parent_start_ns: pc.parent_start,
            cwd: self.cwd.get(&h.tid).map(|s| &**s),
            old_path: None,
            thread: false,
        }
    }

    fn open_exit(&mut self, rec: &Record<'_>, sink: &mut dyn FnMut(&Event<'_>)) {
        let h = &rec.hdr;
        let pending = self.pending_open.remove(&h.tid);
        if pending.is_none() {
            self.stats.exits_without_entry += 1;
        }
        let flags = if rec.has(Flags::RF_FFLAGS) {
            Some(h.flags)
        } else {
            pending.as_ref().and_then(|p| p.flags).map(f_flags_of_request)
        };
        let path = self.walked_path(rec);
        self.stats.opens += 1;
        self.note_exe(rec, true);
        self.note_cwd(rec, true);
        // A successful open that created the file is also a `create`; one
        // that may write an existing file (write access mode) a `modify`.
        let op = if h.ret < 0 {
            None
        } else if rec.has(Flags::RF_CREATED) {
            Some(FileOp::Create)
        } else if flags.is_some_and(|f| matches!(f & 3, 1 | 2)) {
            Some(FileOp::Modify)
        } else {
            None
        };
        if op.is_some() {
            self.stats.file_ops += 1;
        }
        let e = Event {
            path,
            requested_path: pending.as_ref().and_then(|p| p.req.as_deref()),
            flags,
            result: Some(h.ret),
            ..self.event(rec, EventKind::Open)
        };
        sink(&e);
        if let Some(op) = op {
            sink(&Event { kind: EventKind::File(op), ..e });
        }
    }

    /// A file operation: the entry's path strings joined with their
    /// directories (a directory fd's, else the thread's working directory).
    fn fop_exit(&mut self, rec: &Record<'_>, sink: &mut dyn FnMut(&Event<'_>)) {
        let h = &rec.hdr;
        let Some(op) = fop_of(h.syscall) else {
            self.stats.bad_records += 1;
            return;
        };
        let pending = self.pending_fop.remove(&h.tid);
        if pending.is_none() {
            self.stats.exits_without_entry += 1;
        }
        self.note_exe(rec, true);
        self.note_cwd(rec, true);
        self.stats.file_ops += 1;
        let cwd = self.cwd.get(&h.tid).map(|c| cwd_bytes(c));
        let cwd = cwd.as_ref().map(|(b, complete)| (&b[..], *complete));
        let join = |s: Option<&[u8]>, dir: Option<&(Box<[u8]>, bool)>| -> Option<(Vec<u8>, bool)> {
            join_path(s, dir.map(|(b, c)| (&b[..], *c)).or(cwd))
        };
        let p = pending.as_ref();
        let first = p.and_then(|p| p.first.as_deref());
        let second = p.and_then(|p| p.second.as_deref());
        let (target, requested, old) = match op {
            // The new name is the file the event is about; the old one goes to `old_path`.
            FileOp::Rename | FileOp::Link => (
                join(second, p.and_then(|p| p.dir2.as_ref())),
                second,
                join(first, p.and_then(|p| p.dir1.as_ref())).map(|(b, c)| walked_text(&b, c)),
            ),
            // A symlink's target is kept as given: it is resolved when the link is followed.
            FileOp::Symlink => (
                join(second, p.and_then(|p| p.dir2.as_ref())),
                second,
                first.map(|t| tokenscan_core::capture::escape_bytes(t).into_owned()),
            ),
            _ => (join(first, p.and_then(|p| p.dir1.as_ref())), first, None),
        };
        let path = target.as_ref().map(|(b, complete)| WalkedPath { bytes: b, complete: *complete });
        if path.is_some_and(|p| !p.complete) {
            self.stats.path_truncated += 1;
        }
        let e = Event {
            path,
            requested_path: requested,
            result: Some(h.ret),
            old_path: old.map(Into::into),
            ..self.event(rec, EventKind::File(op))
        };
        sink(&e);
    }

    fn exec(&mut self, rec: &Record<'_>, sink: &mut dyn FnMut(&Event<'_>)) {
        let h = &rec.hdr;
        // The entry was made by the thread that called execve (old_tid); it
        // may not be the one that leaves it.
        let pending = self.pending_exec.remove(&h.old_tid);
        if pending.is_none() {
            self.stats.exits_without_entry += 1;
        }
        if h.old_tid != h.tid {
            self.pending_exec.remove(&h.tid);
        }
        let path = self.walked_path(rec);
        if let Some(p) = path {
            self.cache_exe(h.pid, p.to_text().into_owned());
        } else {
            self.exe.remove(&h.pid);
        }
        let args = rec.args.map(|blob| Argv {
            blob,
            truncated: rec.has(Flags::RF_ARGS_TRUNCATED),
            total_bytes: Some(h.args_total),
        });
        if args.is_some_and(|a| a.truncated) {
            self.stats.argv_truncated += 1;
        }
        self.stats.execs += 1;
        // The string the caller passed, else the kernel's copy (bprm->filename).
        let requested_path = pending.as_ref().and_then(|p| p.req.as_deref()).or(rec.req);
        self.note_cwd(rec, true);
        let e = Event { args, path, requested_path, result: Some(0), ..self.event(rec, EventKind::Exec) };
        sink(&e);
    }

    fn exec_failed(&mut self, rec: &Record<'_>, sink: &mut dyn FnMut(&Event<'_>)) {
        let h = &rec.hdr;
        let pending = self.pending_exec.remove(&h.tid);
        if pending.is_none() {
            self.stats.exits_without_entry += 1;
        }
        let args = pending
            .as_ref()
            .and_then(|p| p.args.as_deref().map(|blob| Argv { blob, truncated: p.args_truncated, total_bytes: None }));
        if args.is_some_and(|a| a.truncated) {
            self.stats.argv_truncated += 1;
        }
        self.stats.execs += 1;
        self.note_exe(rec, true);
        self.note_cwd(rec, true);
        let e = Event {
            args,
            requested_path: pending.as_ref().and_then(|p| p.req.as_deref()),
            result: Some(h.ret),
            ..self.event(rec, EventKind::Exec)
        };
        sink(&e);
    }

    /// A new process or thread; the record describes the child.
    fn fork(&mut self, rec: &Record<'_>, sink: &mut dyn FnMut(&Event<'_>)) {
        let thread = rec.has(Flags::RF_THREAD);
        // A new process's record carries its exe; a thread's process is known.
        self.note_exe(rec, true);
        self.note_cwd(rec, true);
        self.stats.forks += 1;
        let e = Event { thread, ..self.event(rec, EventKind::Fork) };
        sink(&e);
    }

    /// A thread ending; with RF_GROUP_DEAD, the process's last one. `result`
    /// is the kernel's exit_code (wait status). Nothing is asked again of
    /// the kernel for it: the thread is gone.
    fn exit(&mut self, rec: &Record<'_>, sink: &mut dyn FnMut(&Event<'_>)) {
        let h = &rec.hdr;
        let process_ends = rec.has(Flags::RF_GROUP_DEAD);
        self.note_exe(rec, false);
        self.note_cwd(rec, false);
        self.stats.exits += 1;
        {
            let e = Event { result: Some(h.ret), thread: !process_ends, ..self.event(rec, EventKind::Exit) };
            sink(&e);
        }
        self.cwd.remove(&h.tid);
        if process_ends {
            self.exe.remove(&h.pid);
        }
    }
}

/// The operation a file-operation syscall performs.
fn fop_of(sc: Syscall) -> Option<FileOp> {
    Some(match sc {
        Syscall::SC_UNLINK | Syscall::SC_UNLINKAT | Syscall::SC_RMDIR => FileOp::Delete,
        Syscall::SC_RENAME | Syscall::SC_RENAMEAT | Syscall::SC_RENAMEAT2 => FileOp::Rename,
        Syscall::SC_LINK | Syscall::SC_LINKAT => FileOp::Link,
        Syscall::SC_SYMLINK | Syscall::SC_SYMLINKAT => FileOp::Symlink,
        Syscall::SC_CHMOD | Syscall::SC_FCHMOD | Syscall::SC_FCHMODAT | Syscall::SC_FCHMODAT2 => FileOp::Chmod,
        Syscall::SC_CHOWN | Syscall::SC_LCHOWN | Syscall::SC_FCHOWN | Syscall::SC_FCHOWNAT => FileOp::Chown,
        Syscall::SC_TRUNCATE | Syscall::SC_FTRUNCATE => FileOp::Modify,
        Syscall::SC_MKDIR | Syscall::SC_MKDIRAT | Syscall::SC_MKNOD | Syscall::SC_MKNODAT => FileOp::Create,
        _ => return None,
    })
}

/// A cached working directory (capture text) back as raw bytes, and whether it is complete.
fn cwd_bytes(text: &str) -> (Vec<u8>, bool) {
    match text.strip_prefix(PATH_TRUNCATED_PREFIX) {
        Some(tail) => (unescape_to_bytes(tail), false),
        None => (unescape_to_bytes(text), true),
    }
}

/// The capture text of a joined path.
fn walked_text(bytes: &[u8], complete: bool) -> String {
    WalkedPath { bytes, complete }.to_text().into_owned()
}

/// The path a file operation names: `s` itself when absolute, else `s`
/// after directory `dir` (`None` when it is relative and the directory is
/// unknown). With no string (fchmod, fchown, ftruncate) the path is `dir`,
/// the file of the descriptor. The join is lexical: empty and `.`
/// components are dropped, `..` is kept (a component may be a symlink), and
/// symlinks are not resolved: after an unlink or a rename there is nothing
/// left to resolve the old name to. The bool says whether the directory was
/// complete.
pub fn join_path(s: Option<&[u8]>, dir: Option<(&[u8], bool)>) -> Option<(Vec<u8>, bool)> {
    let (base, complete): (&[u8], bool) = match s {
        Some(s) if s.starts_with(b"/") => (b"", true),
        _ => dir?,
    };
    let mut out: Vec<u8> = Vec::with_capacity(base.len() + s.map_or(0, <[u8]>::len) + 1);
    // A truncated directory is a tail: keep its leading component as is.
    if !complete && !base.starts_with(b"/") {
        out.extend_from_slice(base.strip_suffix(b"/").unwrap_or(base));
    } else {
        for part in base.split(|&b| b == b'/').filter(|p| !p.is_empty() && *p != b".") {
            out.push(b'/');
            out.extend_from_slice(part);
        }
    }
    for part in s.unwrap_or_default().split(|&b| b == b'/').filter(|p| !p.is_empty() && *p != b".") {
        out.push(b'/');
        out.extend_from_slice(part);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    Some((out, complete))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_operation_paths_are_joined_lexically() {
        let j = |s: Option<&str>, dir: Option<(&str, bool)>| {
            join_path(s.map(str::as_bytes), dir.map(|(d, c)| (d.as_bytes(), c)))
                .map(|(b, c)| (String::from_utf8(b).unwrap(), c))
        };
        let cwd = Some(("/tmp", true));
        assert_eq!(j(Some("/etc/passwd"), cwd), Some(("/etc/passwd".into(), true)));
        assert_eq!(j(Some("x"), cwd), Some(("/tmp/x".into(), true)));
        // `.` and repeated slashes go, `..` stays (a component may be a symlink).
        assert_eq!(j(Some("./a//b/."), cwd), Some(("/tmp/a/b".into(), true)));
        assert_eq!(j(Some("../x"), cwd), Some(("/tmp/../x".into(), true)));
        assert_eq!(j(Some("x"), Some(("/", true))), Some(("/x".into(), true)));
        // No string: the descriptor's own file (fchmod, fchown, ftruncate).
        assert_eq!(j(None, Some(("/var/log/app.log", true))), Some(("/var/log/app.log".into(), true)));
        // A relative name without a known directory has no path.
        assert_eq!(j(Some("x"), None), None);
        // A directory whose walk was cut keeps its tail and says so.
        assert_eq!(j(Some("x"), Some(("deep/dir", false))), Some(("deep/dir/x".into(), false)));
    }
    use crate::record::{encode, RawHeader, Syscall};

    /// An owned copy of an event, for assertions.
    #[derive(Debug, Clone, PartialEq)]
    struct Row {
        kind: &'static str,
        pid: u32,
        tid: u32,
        comm: String,
        exe: Option<String>,
        args: Option<Vec<String>>,
        path: Option<String>,
        requested_path: Option<String>,
        flags: Option<i32>,
        result: Option<i64>,
        tty: Option<String>,
        time_ns: i64,
    }

    fn run(records: &[Vec<u8>]) -> (Vec<Row>, Assembler) {
        let mut a = Assembler::new(1_000_000);
        let mut rows = Vec::new();
        for r in records {
            a.handle(r, &mut |e: &Event<'_>| {
                rows.push(Row {
                    kind: e.kind.as_str(),
                    pid: e.pid,
                    tid: e.tid,
                    comm: String::from_utf8_lossy(e.comm).into_owned(),
                    exe: e.exe.map(str::to_owned),
                    args: e.args.map(|a| {
                        let mut v: Vec<String> = a.args().map(|c| c.into_owned()).collect();
                        v.extend(a.marker());
                        v
                    }),
                    path: e.path.map(|p| p.to_text().into_owned()),
                    requested_path: e.requested_path.map(|b| String::from_utf8_lossy(b).into_owned()),
                    flags: e.flags,
                    result: e.result,
                    tty: e.tty.map(|t| crate::event::tty_display_name(t).into_owned()),
                    time_ns: e.time_ns,
                })
            });
        }
        (rows, a)
    }

    fn comm(s: &str) -> [i8; 16] {
        let mut c = [0i8; 16];
        for (i, b) in s.bytes().take(15).enumerate() {
            c[i] = b as i8;
        }
        c
    }

    fn hdr(kind: Kind, pid: u32, tid: u32, name: &str) -> RawHeader {
        RawHeader { kind, pid, tid, ts_boot_ns: 5, comm: comm(name), ..Default::default() }
    }

    fn open_enter(tid: u32, req: &[u8], flags: i32) -> Vec<u8> {
        let mut h = hdr(Kind::REC_OPEN_ENTER, tid, tid, "");
        h.syscall = Syscall::SC_OPENAT;
        h.flags = flags;
        h.rflags = Flags::RF_REQ_FLAGS.0 | Flags::RF_REQ.0;
        h.req_len = req.len() as u16;
        encode(&h, &[req])
    }

    fn open_exit(pid: u32, ret: i64, path: Option<&[u8]>, exe: Option<&[u8]>, tty: Option<&[u8]>) -> Vec<u8> {
        let mut h = hdr(Kind::REC_OPEN_EXIT, pid, pid, "cat");
        h.ret = ret;
        let mut parts: Vec<&[u8]> = Vec::new();
        if let Some(p) = path {
            h.rflags |= Flags::RF_PATH.0 | Flags::RF_FFLAGS.0;
            h.flags = 0o100000;
            h.path_len = p.len() as u16;
            parts.push(p);
        }
        if let Some(x) = exe {
            h.rflags |= Flags::RF_EXE.0;
            h.exe_len = x.len() as u16;
            parts.push(x);
        }
        if let Some(t) = tty {
            h.rflags |= Flags::RF_TTY.0;
            h.tty_len = t.len() as u16;
            parts.push(t);
        }
        encode(&h, &parts)
    }

    const TOKEN: &[u8] = b"/run/secrets/kubernetes.io/serviceaccount/..2026_11_22_10_00_00.1/token";

    #[test]
    fn an_open_joins_entry_and_exit() {
        let (rows, a) = run(&[
            open_enter(7, b"/var/run/secrets/kubernetes.io/serviceaccount/token", 0),
            open_exit(7, 3, Some(TOKEN), Some(b"/usr/bin/cat"), Some(b"pts0")),
        ]);
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(r.kind, "open");
        assert_eq!(r.path.as_deref(), Some(std::str::from_utf8(TOKEN).unwrap()));
        assert_eq!(r.requested_path.as_deref(), Some("/var/run/secrets/kubernetes.io/serviceaccount/token"));
        assert_eq!(r.flags, Some(0o100000));
        assert_eq!(r.result, Some(3));
        assert_eq!(r.exe.as_deref(), Some("/usr/bin/cat"));
        assert_eq!(r.tty.as_deref(), Some("pts/0"));
        assert_eq!(r.time_ns, 1_000_005);
        assert_eq!(a.stats().opens, 1);
        assert_eq!(a.stats().exits_without_entry, 0);
    }

    #[test]
    fn failed_opens_keep_the_request_and_normalized_flags() {
        // O_WRONLY|O_CREAT|O_TRUNC requested, ENOENT.
        let (rows, _) =
            run(&[open_enter(8, b"/nope/file", 0o1101), open_exit(8, -2, None, Some(b"/usr/bin/tee"), None)]);
        let r = &rows[0];
        assert_eq!(r.path, None);
        assert_eq!(r.requested_path.as_deref(), Some("/nope/file"));
        assert_eq!(r.flags, Some(O_LARGEFILE | 1));
        assert_eq!(r.result, Some(-2));
    }

    #[test]
    fn exe_is_remembered_per_process_and_missing_exe_asks_for_a_resend() {
        let (rows, mut a) = run(&[
            open_exit(9, 3, Some(b"/etc/hosts"), Some(b"/usr/bin/cat"), None),
            open_exit(9, 4, Some(b"/etc/passwd"), None, None),
            open_exit(10, 3, Some(b"/etc/group"), None, None),
        ]);
        assert_eq!(rows[1].exe.as_deref(), Some("/usr/bin/cat"));
        assert_eq!(rows[2].exe, None);
        assert_eq!(a.stats().exe_unknown, 1);
        assert_eq!(a.stats().exits_without_entry, 3);
        assert!(a.take_exe_resend_request());
        assert!(!a.take_exe_resend_request());
    }

    #[test]
    fn lost_exit_is_counted_when_the_next_entry_arrives() {
        let (rows, a) = run(&[open_enter(7, b"/a", 0), open_enter(7, b"/b", 0), open_exit(7, -2, None, None, None)]);
        assert_eq!(rows[0].requested_path.as_deref(), Some("/b"));
        assert_eq!(a.stats().entries_without_exit, 1);
    }

    fn exec_enter(tid: u32, req: &[u8], args: &[u8], truncated: bool) -> Vec<u8> {
        let mut h = hdr(Kind::REC_EXEC_ENTER, tid, tid, "sh");
        h.rflags = Flags::RF_REQ.0 | Flags::RF_ARGS.0 | if truncated { Flags::RF_ARGS_TRUNCATED.0 } else { 0 };
        h.req_len = req.len() as u16;
        h.args_len = args.len() as u16;
        encode(&h, &[req, args])
    }

    #[test]
    fn a_successful_exec_uses_the_new_image() {
        let mut h = hdr(Kind::REC_EXEC, 20, 20, "cat");
        h.old_tid = 21; // a non-leader thread called execve
        h.rflags = Flags::RF_PATH.0 | Flags::RF_EXE_IS_PATH.0 | Flags::RF_REQ.0 | Flags::RF_ARGS.0 | Flags::RF_TTY.0;
        let (path, req, args, tty) = (&b"/usr/bin/cat"[..], &b"/bin/cat"[..], &b"cat\0/run/x\0"[..], &b"pts2"[..]);
        h.path_len = path.len() as u16;
        h.req_len = req.len() as u16;
        h.args_len = args.len() as u16;
        h.args_total = args.len() as u32;
        h.tty_len = tty.len() as u16;
        let exec = encode(&h, &[path, req, args, tty]);
        let (rows, a) = run(&[
            exec_enter(21, b"cat", b"cat\0/run/x\0", false),
            exec,
            open_exit(20, 3, Some(b"/run/x"), None, None),
        ]);
        let r = &rows[0];
        assert_eq!(r.kind, "exec");
        assert_eq!((r.pid, r.tid), (20, 20));
        assert_eq!(r.comm, "cat");
        assert_eq!(r.requested_path.as_deref(), Some("cat"), "the string passed wins over bprm->filename");
        assert_eq!(r.path.as_deref(), Some("/usr/bin/cat"));
        assert_eq!(r.exe.as_deref(), Some("/usr/bin/cat"));
        assert_eq!(r.args.as_deref(), Some(&["cat".to_string(), "/run/x".to_string()][..]));
        assert_eq!(r.result, Some(0));
        assert_eq!(r.flags, None);
        assert_eq!(r.tty.as_deref(), Some("pts/2"));
        // The open after the exec gets the new exe.
        assert_eq!(rows[1].exe.as_deref(), Some("/usr/bin/cat"));
        assert_eq!(a.stats().execs, 1);
        assert_eq!(a.stats().exits_without_entry, 1, "only the open had no entry");
    }

    #[test]
    fn a_truncated_exec_argv_is_marked() {
        let mut h = hdr(Kind::REC_EXEC, 30, 30, "python3");
        h.old_tid = 30;
        h.rflags = Flags::RF_ARGS.0 | Flags::RF_ARGS_TRUNCATED.0;
        let args = &b"python3\0-c\0print(1"[..];
        h.args_len = args.len() as u16;
        h.args_total = 9_000;
        let (rows, a) = run(&[encode(&h, &[args])]);
        assert_eq!(
            rows[0].args.as_deref().unwrap(),
            ["python3", "-c", "print(1", "[tokenscan:argv-truncated: 18 of 9000 bytes recorded]"]
        );
        assert_eq!(a.stats().argv_truncated, 1);
    }

    #[test]
    fn a_failed_exec_keeps_what_was_passed() {
        let mut h = hdr(Kind::REC_EXEC_EXIT, 40, 40, "sh");
        h.ret = -2;
        h.rflags = Flags::RF_EXE.0;
        h.exe_len = 13;
        let exit = encode(&h, &[b"/usr/bin/dash"]);
        let (rows, _) = run(&[exec_enter(40, b"/usr/local/bin/nope", b"nope\0-x\0", true), exit]);
        let r = &rows[0];
        assert_eq!(r.kind, "exec");
        assert_eq!(r.result, Some(-2));
        assert_eq!(r.path, None);
        assert_eq!(r.requested_path.as_deref(), Some("/usr/local/bin/nope"));
        assert_eq!(r.exe.as_deref(), Some("/usr/bin/dash"));
        assert_eq!(
            r.args.as_deref().unwrap(),
            ["nope", "-x", "[tokenscan:argv-truncated: 8 bytes recorded, more not read]"]
        );
    }

    #[test]
    fn truncated_paths_are_marked_and_counted() {
        let mut h = hdr(Kind::REC_OPEN_EXIT, 50, 50, "cat");
        h.ret = 3;
        h.rflags = Flags::RF_PATH.0 | Flags::RF_PATH_TRUNCATED.0;
        h.path_len = 4;
        let (rows, a) = run(&[encode(&h, &[b"/d/e"])]);
        assert_eq!(rows[0].path.as_deref(), Some("[tokenscan:path-truncated]/d/e"));
        assert_eq!(a.stats().path_truncated, 1);
    }

    /// A record with the process context (RF_PROC) and, optionally, a cwd.
    fn with_proc<'a>(mut h: RawHeader, cwd: Option<&'a [u8]>, mut parts: Vec<&'a [u8]>) -> Vec<u8> {
        h.rflags |= Flags::RF_PROC.0;
        h.sid = 100;
        h.pgid = 200;
        h.start_boot_ns = 3_000;
        h.parent_start_boot_ns = 2_000;
        if let Some(c) = cwd {
            h.rflags |= Flags::RF_CWD.0;
            h.cwd_len = c.len() as u16;
            parts.push(c);
        }
        encode(&h, &parts)
    }

    #[test]
    fn fork_exit_and_the_process_context() {
        let mut a = Assembler::new(1_000_000);
        let mut got = Vec::new();
        let mut push = |a: &mut Assembler, rec: Vec<u8>| {
            a.handle(&rec, &mut |e: &Event<'_>| {
                got.push((
                    e.kind,
                    e.pid,
                    e.tid,
                    e.ppid,
                    e.thread,
                    e.exe.map(String::from),
                    e.cwd.map(String::from),
                    e.sid,
                    e.pgid,
                    e.process_start_ns,
                    e.parent_start_ns,
                    e.result,
                ))
            });
        };
        // A new process 60 (child of 50): exe and cwd come with the fork.
        let mut f = hdr(Kind::REC_FORK, 60, 60, "sh");
        f.ppid = 50;
        f.rflags = Flags::RF_EXE.0;
        f.exe_len = 7;
        push(&mut a, with_proc(f, Some(b"/srv"), vec![b"/bin/sh"]));
        // Its thread 61: no exe (known for the process), its own cwd.
        let mut t = hdr(Kind::REC_FORK, 60, 61, "sh");
        t.ppid = 50;
        t.rflags = Flags::RF_THREAD.0;
        push(&mut a, with_proc(t, Some(b"/tmp"), vec![]));
        // An open of the thread: cwd from the cache.
        let mut o = hdr(Kind::REC_OPEN_EXIT, 60, 61, "sh");
        o.ret = 3;
        push(&mut a, with_proc(o, None, vec![]));
        // The thread exits, then the process (its last thread) with status 3 << 8.
        let mut x = hdr(Kind::REC_EXIT, 60, 61, "sh");
        x.ppid = 50;
        x.ret = 0;
        push(&mut a, with_proc(x, None, vec![]));
        let mut x = hdr(Kind::REC_EXIT, 60, 60, "sh");
        x.ppid = 50;
        x.ret = 3 << 8;
        x.rflags = Flags::RF_GROUP_DEAD.0;
        push(&mut a, with_proc(x, None, vec![]));
        // The cwd of a thread that exited is forgotten: a later record without
        // one has no cwd (and asks for a resend).
        let o2 = hdr(Kind::REC_OPEN_EXIT, 60, 61, "sh");
        push(&mut a, with_proc(o2, None, vec![]));

        let (start, parent) = (Some(1_003_000), Some(1_002_000));
        let e = |k, tid, thread, exe: Option<&str>, cwd: Option<&str>, result| {
            (
                k,
                60,
                tid,
                50,
                thread,
                exe.map(String::from),
                cwd.map(String::from),
                Some(100),
                Some(200),
                start,
                parent,
                result,
            )
        };
        let sh = Some("/bin/sh");
        assert_eq!(got[0], e(EventKind::Fork, 60, false, sh, Some("/srv"), None));
        assert_eq!(got[1], e(EventKind::Fork, 61, true, sh, Some("/tmp"), None));
        assert_eq!(got[2].6.as_deref(), Some("/tmp"));
        assert_eq!(got[3], e(EventKind::Exit, 61, true, sh, Some("/tmp"), Some(0)));
        assert_eq!(got[4], e(EventKind::Exit, 60, false, sh, Some("/srv"), Some(3 << 8)));
        assert_eq!(got[5].5, None, "the exe of an ended process is forgotten");
        assert_eq!(got[5].6, None);
        let st = a.stats();
        assert_eq!((st.forks, st.exits, st.cwd_unknown), (2, 2, 1));
        assert!(a.take_exe_resend_request());
    }

    #[test]
    fn without_the_process_context_nothing_is_invented() {
        let (rows, _) = run(&[open_exit(70, 3, Some(b"/etc/hosts"), Some(b"/usr/bin/cat"), None)]);
        assert_eq!(rows.len(), 1);
        let mut a = Assembler::new(0);
        let mut ctx = None;
        a.handle(&open_exit(70, 3, None, None, None), &mut |e: &Event<'_>| {
            ctx = Some((e.sid, e.pgid, e.process_start_ns, e.parent_start_ns, e.cwd.is_none()))
        });
        assert_eq!(ctx, Some((None, None, None, None, true)));
        // pid 1's parent is pid 0: no parent start.
        let mut h = hdr(Kind::REC_OPEN_EXIT, 1, 1, "init");
        h.ppid = 0;
        let mut parent = Some(Some(0));
        a.handle(&with_proc(h, Some(b"/"), vec![]), &mut |e: &Event<'_>| parent = Some(e.parent_start_ns));
        assert_eq!(parent, Some(None));
    }

    #[test]
    fn garbage_records_are_counted_not_fatal() {
        let (rows, a) = run(&[vec![1, 2, 3]]);
        assert!(rows.is_empty());
        assert_eq!(a.stats().bad_records, 1);
    }

    #[test]
    fn request_flags_normalization() {
        assert_eq!(f_flags_of_request(0), O_LARGEFILE);
        assert_eq!(f_flags_of_request(0o2 | 0o100 | 0o200), O_LARGEFILE | 0o2);
        assert_eq!(f_flags_of_request(O_CLOEXEC | 0o2000 | 0o200000), O_LARGEFILE | 0o2000 | 0o200000);
    }
}
