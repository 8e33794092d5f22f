//! The processes already running when a recording starts, read from /proc,
//! so that processes older than the recording have lineage in the capture.
//!
//! For each `/proc/PID`: pid, ppid, session id, process group id, tty and
//! start time from `stat`; real uid and gid from `status`; comm; the
//! executable and working directory (`exe`, `cwd` links, made relative to
//! the process's root as the kernel side resolves paths); argv (`cmdline`);
//! the cgroup v2 path (`cgroup`) and its id (the directory's inode, which is
//! what BPF reports). Numbers are those of the reader's pid namespace: the
//! recorder runs in the host's.
//!
//! The start time is `stat` field 22, in clock ticks since boot
//! (`sysconf(_SC_CLK_TCK)`, 100 on Linux), from the same `start_boottime`
//! the kernel side reads: a snapshot row's start is the kernel's value cut to
//! the tick (10 ms). To match a kernel event's process to a snapshot row,
//! compare both cut to the tick: [`tick_floor`].
//!
//! A process that exits while it is being read is skipped and counted
//! (`vanished`), as is one whose pid was reused in between (its start time
//! changed). Links that cannot be read (kernel threads have no exe; another
//! user's process without CAP_SYS_PTRACE) leave that field empty.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::event::{Argv, Event, WalkedPath};
use tokenscan_core::capture::EventKind;

/// What `/proc/PID/stat` says (the fields the snapshot keeps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// Field 1.
    pub pid: u32,
    /// Field 2, without its parentheses.
    pub comm: Vec<u8>,
    /// Field 4.
    pub ppid: u32,
    /// Field 5.
    pub pgid: u32,
    /// Field 6.
    pub sid: u32,
    /// Field 7: the controlling terminal's device number (0: none).
    pub tty_nr: u32,
    /// Field 22: start time in clock ticks since boot.
    pub start_ticks: u64,
}

/// Parses `/proc/PID/stat`. The comm may hold spaces and parentheses: it
/// ends at the last `)`.
pub fn parse_stat(text: &[u8]) -> Result<Stat, String> {
    let open = text.iter().position(|&b| b == b'(').ok_or("no '(' before the comm")?;
    let close = text.iter().rposition(|&b| b == b')').ok_or("no ')' after the comm")?;
    if close < open {
        return Err("')' before '('".into());
    }
    let pid = std::str::from_utf8(&text[..open]).map_err(|_| "pid is not text")?.trim();
    let pid: u32 = pid.parse().map_err(|_| format!("pid {pid:?} is not a number"))?;
    let comm = text[open + 1..close].to_vec();
    let rest = std::str::from_utf8(&text[close + 1..]).map_err(|_| "fields after the comm are not text")?;
    // rest: field 3 (state) onwards.
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    let field =
        |n: usize| -> Result<&str, String> { fields.get(n - 3).copied().ok_or_else(|| format!("has no field {n}")) };
    let num = |n: usize| -> Result<u64, String> {
        let f = field(n)?;
        f.parse::<i64>().map(|v| v as u64).map_err(|_| format!("field {n} ({f:?}) is not a number"))
    };
    Ok(Stat {
        pid,
        comm,
        ppid: num(4)? as u32,
        pgid: num(5)? as u32,
        sid: num(6)? as u32,
        tty_nr: num(7)? as u32,
        start_ticks: num(22)?,
    })
}

/// The first (real) id of a `Uid:` or `Gid:` line of `/proc/PID/status`.
pub fn status_id(status: &str, key: &str) -> Option<u32> {
    status.lines().find_map(|l| l.strip_prefix(key)?.split_ascii_whitespace().next()?.parse().ok())
}

/// The cgroup v2 path (`0::/a/b`) of `/proc/PID/cgroup`, without its leading `/`.
pub fn cgroup_v2_path(cgroup: &str) -> Option<&str> {
    cgroup.lines().find_map(|l| l.strip_prefix("0::")).map(|p| p.trim_start_matches('/'))
}

/// The kernel's name of a terminal (`tty_struct.name`, as the kernel side
/// records it: `pts3`, `tty1`, `ttyS0`, `console`) from its device number;
/// None for 0 (no terminal) and devices without a known name.
pub fn tty_name(tty_nr: u32) -> Option<String> {
    if tty_nr == 0 {
        return None;
    }
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    match major {
        // Unix98 pty slaves: majors 136..143 (UNIX98_PTY_SLAVE_MAJOR and up).
        136..=143 => Some(format!("pts{}", (major - 136) * 256 + minor)),
        4 if minor < 64 => Some(format!("tty{minor}")),
        4 => Some(format!("ttyS{}", minor - 64)),
        5 if minor == 1 => Some("console".into()),
        _ => None,
    }
}

/// `link` made relative to `root` (both as the reader sees them): the kernel
/// side resolves paths relative to the task's root (chroot, pivot_root).
pub fn relative_to_root(link: &[u8], root: &[u8]) -> Vec<u8> {
    if root == b"/" || root.is_empty() {
        return link.to_vec();
    }
    match link.strip_prefix(root) {
        Some([]) => b"/".to_vec(),
        Some(rest) if rest.starts_with(b"/") => rest.to_vec(),
        _ => link.to_vec(),
    }
}

/// Nanoseconds per clock tick of /proc (`sysconf(_SC_CLK_TCK)`).
pub fn tick_ns() -> u64 {
    // SAFETY: sysconf has no memory arguments.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    1_000_000_000 / if hz > 0 { hz as u64 } else { 100 }
}

/// A start time (ns since boot) cut to the clock tick, as /proc shows it.
pub fn tick_floor(boot_ns: u64, tick_ns: u64) -> u64 {
    boot_ns - boot_ns % tick_ns.max(1)
}

/// One running process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// Thread group id.
    pub pid: u32,
    /// Parent's thread group id.
    pub ppid: u32,
    /// Session id.
    pub sid: u32,
    /// Process group id.
    pub pgid: u32,
    /// Start, nanoseconds since boot (CLOCK_BOOTTIME), to the clock tick.
    pub start_boot_ns: u64,
    /// comm.
    pub comm: Vec<u8>,
    /// Executable, escaped and relative to the process's root.
    pub exe: Option<String>,
    /// argv, NUL-separated as in `cmdline` (None: kernel thread or unreadable).
    pub args: Option<Vec<u8>>,
    /// Working directory, escaped and relative to the process's root.
    pub cwd: Option<String>,
    /// cgroup v2 path below the cgroup2 root.
    pub cgroup_path: Option<String>,
    /// cgroup v2 id (the directory's inode; 0 when it could not be found).
    pub cgroup_id: u64,
    /// Controlling terminal, kernel name (`pts3`).
    pub tty: Option<String>,
    /// Real uid.
    pub uid: u32,
    /// Real gid.
    pub gid: u32,
}

/// The processes running at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Processes in pid order.
    pub processes: Vec<Process>,
    /// Processes that exited (or whose pid was reused) while being read.
    pub vanished: u64,
    /// CLOCK_BOOTTIME when the reading started.
    pub taken_boot_ns: u64,
}

fn read_link(p: &Path) -> Option<Vec<u8>> {
    std::fs::read_link(p).ok().map(|l| l.as_os_str().as_bytes().to_vec())
}

/// Reads one process; None when it vanished while being read.
pub fn read_process(proc_root: &Path, pid: u32, cgroup_root: Option<&Path>, tick_ns: u64) -> Option<Process> {
    let dir = proc_root.join(pid.to_string());
    let stat = parse_stat(&std::fs::read(dir.join("stat")).ok()?).ok()?;
    let status = std::fs::read_to_string(dir.join("status")).ok()?;
    let root = read_link(&dir.join("root")).unwrap_or_else(|| b"/".to_vec());
    let resolved = |name: &str| {
        read_link(&dir.join(name)).map(|l| {
            let rel = relative_to_root(&l, &root);
            WalkedPath { bytes: &rel, complete: true }.to_text().into_owned()
        })
    };
    let exe = resolved("exe");
    let cwd = resolved("cwd");
    let args = std::fs::read(dir.join("cmdline")).ok().filter(|a| !a.is_empty());
    let cgroup_path =
        std::fs::read_to_string(dir.join("cgroup")).ok().and_then(|c| cgroup_v2_path(&c).map(String::from));
    let cgroup_id = match (cgroup_root, &cgroup_path) {
        (Some(r), Some(p)) => std::fs::metadata(r.join(p)).map(|m| m.ino()).unwrap_or(0),
        _ => 0,
    };
    // Still the same process? (Gone: stat unreadable; reused: another start.)
    let again = parse_stat(&std::fs::read(dir.join("stat")).ok()?).ok()?;
    if again.start_ticks != stat.start_ticks {
        return None;
    }
    Some(Process {
        pid: stat.pid,
        ppid: stat.ppid,
        sid: stat.sid,
        pgid: stat.pgid,
        start_boot_ns: stat.start_ticks.saturating_mul(tick_ns),
        comm: stat.comm,
        exe,
        args,
        cwd,
        cgroup_path,
        cgroup_id,
        tty: tty_name(stat.tty_nr),
        uid: status_id(&status, "Uid:").unwrap_or(u32::MAX),
        gid: status_id(&status, "Gid:").unwrap_or(u32::MAX),
    })
}

impl Snapshot {
    /// Reads every process of `proc_root` (normally `/proc`); cgroup ids are
    /// looked up under `cgroup_root` (the cgroup2 mount), when there is one.
    pub fn take(proc_root: &Path, cgroup_root: Option<&Path>) -> Snapshot {
        let taken_boot_ns = crate::system::boottime_ns();
        let tick = tick_ns();
        let mut pids: Vec<u32> = match std::fs::read_dir(proc_root) {
            Ok(rd) => rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect(),
            Err(_) => Vec::new(),
        };
        pids.sort_unstable();
        let mut snap = Snapshot { taken_boot_ns, ..Default::default() };
        for pid in pids {
            match read_process(proc_root, pid, cgroup_root, tick) {
                Some(p) => snap.processes.push(p),
                None => snap.vanished += 1,
            }
        }
        snap
    }

    /// The snapshot as `process` events, stamped with the time the reading
    /// started; `clock_offset_ns` converts CLOCK_BOOTTIME to Unix time.
    pub fn for_each_event(&self, clock_offset_ns: i64, sink: &mut dyn FnMut(&Event<'_>)) {
        let wall = |boot: u64| (boot as i64).saturating_add(clock_offset_ns);
        let starts: HashMap<u32, u64> = self.processes.iter().map(|p| (p.pid, p.start_boot_ns)).collect();
        for p in &self.processes {
            let e = Event {
                time_ns: wall(self.taken_boot_ns),
                boot_ns: self.taken_boot_ns,
                kind: EventKind::Process,
                pid: p.pid,
                tid: p.pid,
                ppid: p.ppid,
                uid: p.uid,
                gid: p.gid,
                comm: &p.comm,
                exe: p.exe.as_deref(),
                args: p.args.as_deref().map(|blob| Argv {
                    blob,
                    truncated: false,
                    total_bytes: u32::try_from(blob.len()).ok(),
                }),
                path: None,
                requested_path: None,
                flags: None,
                result: None,
                tty: p.tty.as_deref().map(str::as_bytes),
                cgroup_id: p.cgroup_id,
                cgroup_path: p.cgroup_path.clone().map(|c| (c, false)),
                sid: Some(p.sid),
                pgid: Some(p.pgid),
                process_start_ns: Some(wall(p.start_boot_ns)),
                parent_start_ns: starts.get(&p.ppid).filter(|_| p.ppid != 0).map(|&s| wall(s)),
                cwd: p.cwd.as_deref(),
                old_path: None,
                thread: false,
            };
            sink(&e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_by_position_with_a_hostile_comm() {
        // proc(5): pid (comm) state ppid pgrp session tty_nr tpgid flags minflt
        // cminflt majflt cmajflt utime stime cutime cstime priority nice
        // num_threads itrealvalue starttime ...
        let line = b"4242 (a) b (c) S 17 4240 4100 34817 4240 4194560 1 2 3 4 5 6 7 8 20 0 1 0 987654 1 2 3\n";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.pid, 4242);
        assert_eq!(s.comm, b"a) b (c");
        assert_eq!((s.ppid, s.pgid, s.sid), (17, 4240, 4100));
        assert_eq!(s.tty_nr, 34817);
        assert_eq!(s.start_ticks, 987654);
        assert!(parse_stat(b"12 (x) S 1 2").unwrap_err().contains("has no field 6"));
        assert!(parse_stat(b"garbage").is_err());
    }

    #[test]
    fn terminals_and_ids() {
        // 34817 = major 136, minor 1: /dev/pts/1.
        assert_eq!(tty_name(34817).as_deref(), Some("pts1"));
        // major 137, minor 2: pts 258.
        assert_eq!(tty_name((137 << 8) | 2).as_deref(), Some("pts258"));
        assert_eq!(tty_name((4 << 8) | 1).as_deref(), Some("tty1"));
        assert_eq!(tty_name((4 << 8) | 64).as_deref(), Some("ttyS0"));
        assert_eq!(tty_name(0), None);
        assert_eq!(status_id("Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t50\t1\t1\t1\n", "Uid:"), Some(1000));
        assert_eq!(status_id("Gid:\t50\t1\t1\t1\n", "Gid:"), Some(50));
        assert_eq!(cgroup_v2_path("1:name=systemd:/x\n0::/kubepods/pod1/abc\n"), Some("kubepods/pod1/abc"));
        assert_eq!(cgroup_v2_path("0::/\n"), Some(""));
        assert_eq!(relative_to_root(b"/srv/root/app", b"/srv/root"), b"/app");
        assert_eq!(relative_to_root(b"/srv/root", b"/srv/root"), b"/");
        assert_eq!(relative_to_root(b"/srv/rootx/a", b"/srv/root"), b"/srv/rootx/a");
        assert_eq!(relative_to_root(b"/app", b"/"), b"/app");
        assert_eq!(tick_floor(1_234_567_891, 10_000_000), 1_230_000_000);
    }

    /// The test process itself, read from the live /proc, against what the
    /// system calls and the kernel's own files say.
    #[test]
    fn snapshot_has_this_process() {
        let snap = Snapshot::take(Path::new("/proc"), None);
        let me = std::process::id();
        let p = snap.processes.iter().find(|p| p.pid == me).expect("this process is in the snapshot");
        // SAFETY: these calls have no memory arguments.
        let (ppid, sid, pgid, uid, gid) = unsafe {
            (libc::getppid() as u32, libc::getsid(0) as u32, libc::getpgrp() as u32, libc::getuid(), libc::getgid())
        };
        assert_eq!((p.ppid, p.sid, p.pgid, p.uid, p.gid), (ppid, sid, pgid, uid, gid));
        // Field 22 of /proc/self/stat, split by hand here.
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let ticks: u64 = after.split(' ').nth(19).unwrap().parse().unwrap();
        assert_eq!(p.start_boot_ns, ticks * tick_ns());
        assert!(p.start_boot_ns <= snap.taken_boot_ns);
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(p.cwd.as_deref(), Some(cwd.to_str().unwrap()));
        let exe = std::env::current_exe().unwrap();
        assert_eq!(p.exe.as_deref(), Some(exe.to_str().unwrap()));
        let argv0 = std::env::args().next().unwrap();
        assert!(p.args.as_deref().unwrap().starts_with(format!("{argv0}\0").as_bytes()));
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert_eq!(p.comm, comm.trim_end().as_bytes());
        // The parent started before us and its start is the parent start.
        let mut events = Vec::new();
        snap.for_each_event(1_000, &mut |e| {
            if e.pid == me {
                events.push((e.kind, e.process_start_ns, e.parent_start_ns, e.sid, e.cwd.map(String::from)));
            }
        });
        let parent = snap.processes.iter().find(|q| q.pid == ppid).expect("the parent is in the snapshot");
        assert_eq!(
            events,
            [(
                EventKind::Process,
                Some(ticks as i64 * tick_ns() as i64 + 1_000),
                Some(parent.start_boot_ns as i64 + 1_000),
                Some(sid),
                Some(cwd.to_str().unwrap().to_string())
            )]
        );
    }

    #[test]
    fn a_missing_process_is_not_read() {
        assert_eq!(read_process(Path::new("/proc"), u32::MAX - 1, None, 10_000_000), None);
        let empty = Snapshot::take(Path::new("/nonexistent-proc"), None);
        assert!(empty.processes.is_empty());
    }
}
