//! The process table on hand-written scenarios. Each test writes a small
//! capture as a list of events and derives, in its comments, the tree a
//! person would draw from them; the assertions check the table against that
//! drawing (see docs/processes.md for the rules the drawings follow).

use std::sync::mpsc;
use std::time::Duration;

use tokenscan_core::process::{
    EntityRef, EntryType, EventLinks, Origin, ProcessEvent, ProcessEventKind as K, ProcessTable, ProcessTableOptions,
    WarningKind,
};

const HOST: &str = "node1";
const C1: &str = "c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1";
/// 2026-12-04T00:00:00Z in ns.
const T0: i64 = 1_764_806_400_000_000_000;
const MS: i64 = 1_000_000;
const SEC: i64 = 1_000_000_000;

/// A version 2 event: every column the recorder writes, on the host, no terminal.
fn ev(index: u64, kind: K, pid: u32, ppid: u32) -> ProcessEvent<'static> {
    ProcessEvent {
        index,
        time: T0 + index as i64 * SEC,
        kind,
        host: HOST,
        pid,
        tid: pid,
        ppid: Some(ppid),
        uid: Some(0),
        gid: Some(0),
        tty: Some(None),
        container_id: Some(None),
        ..ProcessEvent::default()
    }
}

/// A version 1 event: open or exec, no session, group, start or cwd.
fn v1(index: u64, kind: K, pid: u32, ppid: u32, comm: &'static str) -> ProcessEvent<'static> {
    ProcessEvent {
        index,
        time: T0 + index as i64 * SEC,
        kind,
        host: HOST,
        pid,
        tid: pid,
        ppid: Some(ppid),
        uid: Some(0),
        gid: Some(0),
        comm: Some(comm),
        tty: Some(None),
        container_id: Some(Some(C1)),
        ..ProcessEvent::default()
    }
}

fn run(events: &[ProcessEvent<'_>]) -> (ProcessTable, Vec<EventLinks>) {
    let mut t = ProcessTable::default();
    let links = t.push_all(events).into_iter().map(|l| l.expect("not a container row")).collect();
    (t, links)
}

fn pid_of(t: &ProcessTable, r: Option<EntityRef>) -> Option<u32> {
    r.map(|r| t.entity(r).pid)
}

/// Runs `f` on its own thread and fails if it takes longer than `secs`.
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs)).expect("finished in time (no hang, no panic)")
}

/// A pod's container and a `kubectl exec` into it, recorded from before the pod started.
///
/// ```text
/// 1 systemd (snapshot, host)
/// └─ 500 containerd-shim (snapshot, host)
///    ├─ 600 runc init -> exec nginx           container C1   (the container's first process)
///    └─ 650 runc (exec helper, host)
///       └─ 700 runc init -> exec sh          container C1, pts/0, session 700
///          └─ 701 (fork of sh, no exec yet)   container C1
///               -> exec cat -> exec head      exec chain
/// ```
/// Entry leaders (topmost ancestor in the same container): nginx (600) for
/// itself; sh (700) for 700 and 701, because 700's parent runc (650) runs on
/// the host. Types: container. The session leader of 701 is 700 (sid 700),
/// its group leader 701 (pgid 701, set by the shell for its job).
#[test]
fn container_init_and_exec_session() {
    let snap = |i, pid, ppid, comm: &'static str, exe: &'static str, start| ProcessEvent {
        kind: K::Snapshot,
        start: Some(start),
        comm: Some(comm),
        exe: Some(exe),
        sid: Some(pid),
        pgid: Some(pid),
        cwd: Some("/"),
        ..ev(i, K::Snapshot, pid, ppid)
    };
    let in_c1 = |e: ProcessEvent<'static>| ProcessEvent { container_id: Some(Some(C1)), ..e };
    let sh_args: &'static [&'static str] = &["sh"];
    let cat_args: &'static [&'static str] = &["cat", "/run/secrets/kubernetes.io/serviceaccount/token"];
    let head_args: &'static [&'static str] = &["head", "-c", "10", "/run/secrets/kubernetes.io/serviceaccount/token"];
    let events = [
        snap(0, 1, 0, "systemd", "/usr/lib/systemd/systemd", T0 - 1000 * SEC),
        snap(1, 500, 1, "containerd-shim", "/usr/bin/containerd-shim-runc-v2", T0 - 100 * SEC),
        // 2: runc forks the container's init, which joins C1 and execs nginx.
        ProcessEvent {
            start: Some(T0 + 2 * SEC),
            parent_start: Some(T0 - 100 * SEC),
            comm: Some("runc:[2:INIT]"),
            exe: Some("/usr/bin/runc"),
            sid: Some(600),
            pgid: Some(600),
            ..in_c1(ev(2, K::Fork, 600, 500))
        },
        ProcessEvent {
            start: Some(T0 + 2 * SEC),
            comm: Some("nginx"),
            exe: Some("/usr/sbin/nginx"),
            args: Some(&["nginx", "-g", "daemon off;"]),
            sid: Some(600),
            pgid: Some(600),
            cwd: Some("/"),
            ..in_c1(ev(3, K::Exec, 600, 500))
        },
        // 4: `runc exec` (650, host) forks 700, which joins C1 and execs sh on pts/0.
        ProcessEvent {
            start: Some(T0 + 4 * SEC),
            comm: Some("runc"),
            exe: Some("/usr/bin/runc"),
            sid: Some(500),
            pgid: Some(500),
            ..ev(4, K::Fork, 650, 500)
        },
        ProcessEvent {
            start: Some(T0 + 5 * SEC),
            parent_start: Some(T0 + 4 * SEC),
            sid: Some(700),
            pgid: Some(700),
            ..in_c1(ev(5, K::Fork, 700, 650))
        },
        ProcessEvent {
            start: Some(T0 + 5 * SEC),
            comm: Some("sh"),
            exe: Some("/bin/sh"),
            args: Some(sh_args),
            sid: Some(700),
            pgid: Some(700),
            cwd: Some("/app"),
            tty: Some(Some("pts/0")),
            ..in_c1(ev(6, K::Exec, 700, 650))
        },
        // 7: sh forks 701 (no exec yet): it is still sh, in /app, on pts/0.
        ProcessEvent {
            start: Some(T0 + 7 * SEC),
            parent_start: Some(T0 + 5 * SEC),
            sid: Some(700),
            pgid: Some(701),
            tty: Some(Some("pts/0")),
            ..in_c1(ev(7, K::Fork, 701, 700))
        },
        ProcessEvent {
            start: Some(T0 + 7 * SEC),
            sid: Some(700),
            pgid: Some(701),
            comm: Some("sh"),
            tty: Some(Some("pts/0")),
            ..in_c1(ev(8, K::Open, 701, 700))
        },
        ProcessEvent {
            start: Some(T0 + 7 * SEC),
            sid: Some(700),
            pgid: Some(701),
            comm: Some("cat"),
            exe: Some("/bin/cat"),
            args: Some(cat_args),
            tty: Some(Some("pts/0")),
            ..in_c1(ev(9, K::Exec, 701, 700))
        },
        ProcessEvent {
            start: Some(T0 + 7 * SEC),
            sid: Some(700),
            pgid: Some(701),
            comm: Some("head"),
            exe: Some("/bin/head"),
            args: Some(head_args),
            tty: Some(Some("pts/0")),
            ..in_c1(ev(10, K::Exec, 701, 700))
        },
        ProcessEvent { start: Some(T0 + 2 * SEC), sid: Some(600), pgid: Some(600), ..in_c1(ev(11, K::Open, 600, 500)) },
    ];
    let mut t = ProcessTable::default();
    let mut links = Vec::new();
    let mut previous_at = Vec::new();
    let mut name_at = Vec::new();
    for e in &events {
        let l = t.push(e).unwrap();
        // Values as of the event, read before the next push.
        previous_at.push(t.entity(l.process).previous.clone());
        name_at.push(t.entity(l.process).name.clone());
        links.push(l);
    }

    // The container's first process: its own entry leader, of type container.
    assert_eq!(pid_of(&t, links[3].entry_leader), Some(600));
    assert_eq!(links[3].entry_type, Some(EntryType::Container));
    assert_eq!(links[3].entry_leader_same(), Some(true));
    assert_eq!(pid_of(&t, links[11].entry_leader), Some(600));
    assert_eq!(pid_of(&t, links[3].parent), Some(500));

    // The exec'd shell and its child: entry leader sh (700), not nginx.
    for i in [6, 7, 8, 9, 10] {
        assert_eq!(pid_of(&t, links[i].entry_leader), Some(700), "event {i}");
        assert_eq!(links[i].entry_type, Some(EntryType::Container), "event {i}");
    }
    assert_eq!(links[6].entry_leader_same(), Some(true));
    assert_eq!(links[9].entry_leader_same(), Some(false));
    let sh = t.entity(links[9].entry_leader.unwrap());
    assert_eq!(sh.name.as_deref(), Some("sh"));
    assert_eq!(sh.cwd.as_deref(), Some("/app"));
    assert_eq!(sh.interactive(), Some(true));

    // Fork without exec: 701 is a copy of sh (name, executable, args, cwd, terminal).
    assert_eq!(name_at[8].as_deref(), Some("sh"));
    let p701 = t.entity(links[8].process);
    assert_eq!(p701.origin, Origin::Fork);
    assert_eq!(p701.cwd.as_deref(), Some("/app"));
    assert_eq!(pid_of(&t, links[8].parent), Some(700));
    assert_eq!(t.entity(links[8].parent.unwrap()).name.as_deref(), Some("sh"));

    // Leaders of 701's events: session 700 (interactive), group 701 itself.
    assert_eq!(pid_of(&t, links[9].session_leader), Some(700));
    assert_eq!(links[9].session_leader_same(), Some(false));
    assert_eq!(t.entity(links[9].session_leader.unwrap()).interactive(), Some(true));
    assert_eq!(pid_of(&t, links[9].group_leader), Some(701));
    assert_eq!(links[9].group_leader_same(), Some(true));

    // Exec chain: before the first exec nothing; at cat the fork image (sh);
    // at head the fork image and cat, oldest first.
    assert!(previous_at[8].is_empty());
    assert_eq!(previous_at[9].len(), 1);
    assert_eq!(previous_at[9][0].executable.as_deref(), Some("/bin/sh"));
    assert_eq!(previous_at[9][0].args.as_deref(), Some(&["sh".to_string()][..]));
    assert_eq!(previous_at[10].len(), 2);
    assert_eq!(previous_at[10][1].executable.as_deref(), Some("/bin/cat"));
    assert_eq!(previous_at[10][1].args.as_ref().unwrap()[0], "cat");
    assert_eq!(t.entity(links[10].process).args.as_ref().unwrap()[0], "head");

    // Entity ids: HOST:PID:START; one entity per process (1, 500, 600, 650, 700, 701).
    assert_eq!(t.entity(links[9].process).id, format!("node1:701:{}", T0 + 7 * SEC));
    assert_eq!(t.entities().len(), 6);
    // One id per entity.
    let mut ids: Vec<&str> = t.entities().iter().map(|e| e.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6);
    // The runc helper on the host: entry leader is itself (child of the shim... up to
    // the child of init: 500), no entry type on the host.
    assert_eq!(pid_of(&t, links[4].entry_leader), Some(500));
    assert_eq!(links[4].entry_type, None);
    assert_eq!(t.stats().from_snapshot, 2);
    assert_eq!(t.stats().from_fork, 4);
    assert_eq!(t.stats().placeholders, 0);
    assert_eq!(t.warnings().total(), 0, "{:?}", t.warnings().examples());
}

/// A parent exits; its child's later events carry the subreaper as ppid.
///
/// ```text
/// 1 ── 100 shim (subreaper) ── 200 sh ── 300 sleep
/// after 200 exits:            1 ── 100 shim ── 300 sleep
/// ```
#[test]
fn reparenting_to_the_subreaper() {
    let s = |i: u64| Some(T0 + i as i64 * SEC);
    let events = [
        ProcessEvent { start: Some(T0 - SEC), ..ev(0, K::Snapshot, 100, 1) },
        ProcessEvent { start: s(1), ..ev(1, K::Fork, 200, 100) },
        ProcessEvent { start: s(2), parent_start: s(1), ..ev(2, K::Fork, 300, 200) },
        ProcessEvent { start: s(1), ..ev(3, K::Exit, 200, 100) },
        ProcessEvent { start: s(2), ..ev(4, K::Open, 300, 100) },
    ];
    let (t, l) = run(&events);
    assert_eq!(pid_of(&t, l[2].parent), Some(200));
    assert_eq!(t.entity(l[3].process).end, Some(T0 + 3 * SEC));
    assert_eq!(pid_of(&t, l[4].parent), Some(100));
    assert_eq!(l[4].process, l[2].process, "the same process before and after");
    assert_eq!(t.stats().reparented, 1);
    assert_eq!(t.stats().exits, 1);
    assert_eq!(t.warnings().total(), 0, "{:?}", t.warnings().examples());
}

/// Pid 700 is used twice: `a` forks, exits, then `b` gets the pid. A late
/// event naming `a`'s start still goes to `a`.
#[test]
fn pid_reuse_gives_a_new_entity() {
    let s1 = Some(T0);
    let s2 = Some(T0 + 5 * SEC);
    let events = [
        ProcessEvent { start: s1, comm: Some("a"), ..ev(0, K::Fork, 700, 1) },
        ProcessEvent { start: s1, ..ev(1, K::Exit, 700, 1) },
        ProcessEvent { start: s2, comm: Some("b"), ..ev(2, K::Fork, 700, 1) },
        ProcessEvent { start: s2, ..ev(3, K::Open, 700, 1) },
        ProcessEvent { start: s1, ..ev(4, K::Open, 700, 1) },
    ];
    let (t, l) = run(&events);
    let (a, b) = (l[0].process, l[2].process);
    assert_ne!(a, b);
    assert_eq!(t.entity(a).id, format!("node1:700:{T0}"));
    assert_eq!(t.entity(b).id, format!("node1:700:{}", T0 + 5 * SEC));
    assert_eq!(l[3].process, b);
    assert_eq!(l[4].process, a);
    assert_eq!(t.entity(b).name.as_deref(), Some("b"));
    assert_eq!(t.entity(a).end, Some(T0 + SEC));
    assert_eq!(t.entity(b).end, None);
    assert_eq!(t.current(HOST, 700), Some(b));
    assert_eq!(t.stats().pid_reuses, 1);
    assert_eq!(t.warnings().count(WarningKind::PidReusedWithoutExit), 0);
    // Event 4 comes after `a` exited: counted, still answered.
    assert_eq!(t.warnings().count(WarningKind::EventAfterExit), 1);
}

/// A thread (801) of process 800: its events belong to 800; its comm does
/// not rename the process; its exit does not end it.
#[test]
fn threads_belong_to_their_process() {
    let s = Some(T0);
    let events = [
        ProcessEvent { start: s, comm: Some("java"), ..ev(0, K::Fork, 800, 1) },
        ProcessEvent { start: s, tid: 801, comm: Some("java"), ..ev(1, K::Fork, 800, 1) },
        ProcessEvent { start: s, tid: 801, comm: Some("GC worker"), ..ev(2, K::Open, 800, 1) },
        ProcessEvent { start: s, tid: 801, ..ev(3, K::Exit, 800, 1) },
        ProcessEvent { start: s, comm: Some("java"), ..ev(4, K::Open, 800, 1) },
        // The leader exits first; thread 802 still opens a file, then exits.
        ProcessEvent { start: s, ..ev(5, K::Exit, 800, 1) },
        ProcessEvent { start: s, tid: 802, ..ev(6, K::Open, 800, 1) },
        ProcessEvent { start: s, tid: 802, ..ev(7, K::Exit, 800, 1) },
    ];
    let (t, l) = run(&events);
    assert_eq!(t.entities().iter().filter(|e| e.pid == 800).count(), 1);
    assert!(l.iter().all(|x| x.process == l[0].process));
    assert_eq!(l.iter().map(|x| x.thread).collect::<Vec<_>>(), [false, true, true, true, false, false, true, true]);
    let p = t.entity(l[0].process);
    assert_eq!(p.name.as_deref(), Some("java"));
    assert_eq!(p.end, Some(T0 + 5 * SEC), "the leader's exit, not a thread's");
    assert_eq!(t.stats().thread_forks, 1);
    assert_eq!(t.stats().thread_events, 5);
    assert_eq!(t.stats().exits, 1);
    assert_eq!(t.warnings().total(), 0, "{:?}", t.warnings().examples());
}

/// Processes older than the recording come from snapshot rows; /proc's start
/// (10 ms ticks) and the kernel's (ns) name the same process. A pid seen only
/// in events, and a parent never seen at all, are counted.
///
/// ```text
/// 1 (never described: placeholder)
/// └─ 50 bash (snapshot, pts/0, session 50)
/// 950 (never described: placeholder)
/// └─ 900 (first seen in an open: origin unknown)
/// ```
#[test]
fn snapshot_rows_and_unknown_processes() {
    let coarse = T0 - 60 * SEC; // what /proc gives (a multiple of 10 ms)
    let fine = coarse + 3_456_789; // what the kernel gives for the same process
    let events = [
        ProcessEvent {
            start: Some(coarse),
            comm: Some("bash"),
            sid: Some(50),
            pgid: Some(50),
            tty: Some(Some("pts/0")),
            ..ev(0, K::Snapshot, 50, 1)
        },
        ProcessEvent {
            start: Some(fine),
            sid: Some(50),
            pgid: Some(50),
            tty: Some(Some("pts/0")),
            ..ev(1, K::Open, 50, 1)
        },
        ProcessEvent { start: Some(T0), ..ev(2, K::Open, 900, 950) },
    ];
    let (t, l) = run(&events);
    assert_eq!(l[1].process, l[0].process);
    let bash = t.entity(l[1].process);
    assert_eq!(bash.origin, Origin::Snapshot);
    assert_eq!(bash.start, Some(coarse), "the first start met stays");
    assert_eq!(bash.name.as_deref(), Some("bash"));
    assert_eq!(l[1].session_leader_same(), Some(true));
    // On the host, the entry leader is the child of init.
    assert_eq!(l[1].entry_leader, Some(l[1].process));
    assert_eq!(l[1].entry_type, None);

    let p900 = t.entity(l[2].process);
    assert_eq!(p900.origin, Origin::Events);
    let p950 = t.entity(l[2].parent.unwrap());
    assert_eq!((p950.pid, p950.origin), (950, Origin::Placeholder));
    assert_eq!(p950.name, None);
    // 950's place is unknown, so 900's entry leader is not invented.
    assert_eq!(l[2].entry_leader, None);
    assert_eq!(t.stats().placeholders, 2, "pid 1 and 950");
    assert_eq!(t.stats().from_events, 1);
    assert_eq!(t.stats().from_snapshot, 1);
}

/// Version 1: opens and execs only, no start, session or working directory.
///
/// ```text
/// 5 (never described)
/// └─ 10 sh   (exec, container C1, pts/0)
///    └─ 11 cat (open)
/// ```
/// No starts: ids end in `-`; no sessions; the entry leader would need 5's
/// container, which the capture does not hold: missing.
#[test]
fn version_1_capture_leaves_unknowns_missing() {
    let sh_args: &'static [&'static str] = &["sh", "-c", "cat token"];
    let events = [
        ProcessEvent {
            exe: Some("/bin/sh"),
            args: Some(sh_args),
            tty: Some(Some("pts/0")),
            ..v1(0, K::Exec, 10, 5, "sh")
        },
        ProcessEvent { exe: Some("/bin/cat"), tty: Some(Some("pts/0")), ..v1(1, K::Open, 11, 10, "cat") },
    ];
    let (t, l) = run(&events);
    let sh = t.entity(l[0].process);
    assert_eq!(sh.id, "node1:10:-");
    assert_eq!(sh.start, None);
    assert_eq!(sh.cwd, None);
    assert!(sh.previous.is_empty(), "nothing before the first exec is known");
    assert_eq!(l[1].session_leader, None);
    assert_eq!(l[1].group_leader, None);
    assert_eq!(pid_of(&t, l[1].parent), Some(10));
    assert_eq!(t.entity(l[1].parent.unwrap()).args.as_ref().unwrap()[2], "cat token");
    assert_eq!(l[1].entry_leader, None);
    assert_eq!(l[1].entry_type, None);
    assert_eq!(t.entity(l[1].process).interactive(), Some(true));
    assert_eq!(t.warnings().total(), 0);
}

/// 20 names 21 as parent and 21 names 20: the second link would close a
/// cycle and is refused (counted each time); 22 names itself.
#[test]
fn parent_cycle_is_refused_and_counted() {
    let events = [ev(0, K::Open, 20, 21), ev(1, K::Open, 21, 20), ev(2, K::Open, 21, 20), ev(3, K::Open, 22, 22)];
    let (t, l) = within(10, move || run(&events));
    assert_eq!(pid_of(&t, l[0].parent), Some(21));
    assert_eq!(l[1].parent, None);
    assert_eq!(l[3].parent, None);
    assert_eq!(t.warnings().count(WarningKind::Cycle), 3);
    assert_eq!(t.warnings().examples()[0].event, 1);
    // Entry leaders stay answerable (no walk loops).
    assert_eq!(l[2].entry_leader, None);
}

/// Pid 30 ends and is reused 0.4 ms after its first start: start times
/// cannot tell the two apart, so later events go to the newer process and
/// the reuse is counted. Ids stay distinct even with equal starts.
#[test]
fn pid_reuse_within_a_millisecond() {
    let s1 = Some(T0);
    let s2 = Some(T0 + 400_000);
    let events = [
        ProcessEvent { start: s1, ..ev(0, K::Fork, 30, 1) },
        ProcessEvent { start: s1, ..ev(1, K::Exit, 30, 1) },
        ProcessEvent { start: s2, ..ev(2, K::Fork, 30, 1) },
        ProcessEvent { start: s2, ..ev(3, K::Open, 30, 1) },
        ProcessEvent { start: s2, ..ev(4, K::Exit, 30, 1) },
        ProcessEvent { start: s2, ..ev(5, K::Fork, 30, 1) },
    ];
    let (t, l) = run(&events);
    assert_ne!(l[0].process, l[2].process);
    assert_eq!(l[3].process, l[2].process);
    assert_ne!(l[5].process, l[2].process);
    assert_eq!(t.warnings().count(WarningKind::PidReuseWithinTolerance), 2);
    assert_eq!(t.entity(l[2].process).id, format!("node1:30:{}", T0 + 400_000));
    assert_eq!(t.entity(l[5].process).id, format!("node1:30:{}#2", T0 + 400_000));
}

/// A snapshot row after events of the same process: events are newer than
/// the snapshot, so it only fills in what they did not say.
#[test]
fn snapshot_after_events_only_fills_gaps() {
    let s = Some(T0 - 10 * SEC);
    let events = [
        ProcessEvent { start: s, comm: Some("x"), cwd: Some("/a"), uid: Some(1000), ..ev(0, K::Open, 40, 1) },
        ProcessEvent {
            start: s,
            comm: Some("y"),
            cwd: Some("/b"),
            exe: Some("/bin/y"),
            args: Some(&["y"]),
            uid: Some(0),
            ..ev(1, K::Snapshot, 40, 1)
        },
    ];
    let (t, l) = run(&events);
    assert_eq!(l[0].process, l[1].process);
    let p = t.entity(l[0].process);
    assert_eq!(p.name.as_deref(), Some("x"));
    assert_eq!(p.cwd.as_deref(), Some("/a"));
    assert_eq!(p.uid, Some(1000));
    assert_eq!(p.executable.as_deref(), Some("/bin/y"));
    assert_eq!(t.warnings().count(WarningKind::SnapshotAfterEvents), 1);
}

/// Times going backwards are counted; the answer is the same as in order.
#[test]
fn out_of_order_times_are_counted() {
    let events = [
        ProcessEvent { time: T0 + 10 * SEC, start: Some(T0), ..ev(0, K::Fork, 60, 1) },
        ProcessEvent { time: T0 + 5 * SEC, start: Some(T0), ..ev(1, K::Open, 60, 1) },
        ProcessEvent { time: T0 + 11 * SEC, start: Some(T0), ..ev(2, K::Open, 60, 1) },
    ];
    let (t, l) = run(&events);
    assert!(l.iter().all(|x| x.process == l[0].process));
    assert_eq!(t.warnings().count(WarningKind::TimeWentBackwards), 1);
    assert_eq!(t.warnings().count(WarningKind::EventBeforeStart), 0);
}

/// A chain deeper than the walk bound: links past it are refused with a
/// warning; nothing loops or overflows.
#[test]
fn deep_chains_are_bounded() {
    let (t, l) = within(20, || {
        let opts = ProcessTableOptions { max_depth: 8, ..ProcessTableOptions::default() };
        let mut t = ProcessTable::new(opts);
        let l: Vec<EventLinks> = (0..40u32)
            .map(|i| {
                t.push(&ProcessEvent { container_id: Some(Some(C1)), ..ev(i as u64, K::Open, 1000 + i, 999 + i) })
                    .unwrap()
            })
            .collect();
        (t, l)
    });
    assert!(t.warnings().count(WarningKind::TooDeep) > 0);
    assert!(t.warnings().examples().len() <= 32);
    assert_eq!(pid_of(&t, l[1].parent), Some(1000));
    assert_eq!(l[39].entry_leader, None);
}

/// Entry leaders are cached along each walk; a cached answer must never
/// lend a process an entry leader its own walk would not reach within the
/// depth bound, whatever order the events come in and however often the
/// caches are invalidated.
///
/// ```text
/// 100 (ppid 0) <- 101 <- 102 <- ... <- 119, all in container c1; max_depth 8
/// the walk from 100 + i ends at 100 in its step i (0-based): entry leader
/// 100 for i <= 7; none (a TooDeep warning) for i >= 8
/// 500 (ppid 0) <- 501 on the host; 500 then moves into c1: its lineage
/// changes while it has a child, which invalidates every cached answer
/// ```
#[test]
fn cached_entry_leaders_keep_the_depth_bound() {
    let opts = ProcessTableOptions { max_depth: 8, ..ProcessTableOptions::default() };
    let mut t = ProcessTable::new(opts);
    let mut index = 0u64;
    let mut push = |t: &mut ProcessTable, pid: u32, ppid: u32, container: Option<&'static str>| {
        index += 1;
        t.push(&ProcessEvent { container_id: Some(container), ..ev(index, K::Open, pid, ppid) }).unwrap()
    };
    let expect = |i: u32| (i <= 7).then_some(100);
    for i in 0..20 {
        let l = push(&mut t, 100 + i, if i == 0 { 0 } else { 99 + i }, Some(C1));
        assert_eq!(pid_of(&t, l.entry_leader), expect(i), "chain member {i} as it is forked");
    }
    push(&mut t, 500, 0, None);
    push(&mut t, 501, 500, None);
    let scrambled = [19, 3, 12, 7, 8, 0, 15, 1, 9, 6, 11, 2, 18, 5, 14, 4, 13, 10, 17, 16];
    for round in 0..3 {
        for &i in &scrambled {
            let l = push(&mut t, 100 + i, if i == 0 { 0 } else { 99 + i }, Some(C1));
            assert_eq!(pid_of(&t, l.entry_leader), expect(i), "chain member {i}, round {round}");
        }
        // Round 1 runs on caches invalidated by 500's move.
        push(&mut t, 500, 0, if round == 0 { Some(C1) } else { None });
    }
    assert!(t.warnings().count(WarningKind::TooDeep) > 0);
}

/// A session leader known only by its pid (it ended before the recording)
/// is not the process that later forks with that pid.
///
/// ```text
/// event 0: 10 opens a file in session 5 -> leader 5 (placeholder, no start)
/// event 1: a new process 5 is forked    -> a new entity, not the old leader
/// ```
#[test]
fn a_fork_does_not_take_over_a_leader_known_only_by_pid() {
    let events = [
        ProcessEvent { start: Some(T0 - SEC), sid: Some(5), ..ev(0, K::Open, 10, 1) },
        ProcessEvent { start: Some(T0 + SEC), sid: Some(5), ..ev(1, K::Fork, 5, 1) },
    ];
    let (t, l) = run(&events);
    let old_leader = l[0].session_leader.unwrap();
    assert_eq!(t.entity(old_leader).origin, Origin::Placeholder);
    assert_ne!(old_leader, l[1].process);
    assert_eq!(t.entity(l[1].process).origin, Origin::Fork);
    assert_eq!(l[1].session_leader, Some(l[1].process));
    assert_eq!(t.warnings().total(), 0, "{:?}", t.warnings().examples());
}

/// Container rows are not about processes.
#[test]
fn container_rows_are_skipped() {
    let mut t = ProcessTable::default();
    assert_eq!(t.push(&ev(0, K::Container, 0, 0)), None);
    assert_eq!(t.entities().len(), 0);
    assert_eq!(K::from_capture_kind("process"), K::Snapshot);
    assert_eq!(K::from_capture_kind("read"), K::Other);
}

/// Many events, few processes: the table stays the size of the processes.
#[test]
fn memory_follows_processes_not_events() {
    let t = within(120, || {
        let mut t = ProcessTable::default();
        let args: &'static [&'static str] = &["cat", "/etc/hostname"];
        for i in 0..400_000u64 {
            let pid = 2000 + (i % 100) as u32;
            let kind = if i % 10 == 0 { K::Exec } else { K::Open };
            let e = ProcessEvent {
                start: Some(T0 + pid as i64 * MS),
                comm: Some("cat"),
                exe: Some("/bin/cat"),
                args: (kind == K::Exec).then_some(args),
                cwd: Some("/"),
                sid: Some(2000),
                pgid: Some(pid),
                container_id: Some(Some(C1)),
                ..ev(i, kind, pid, 1999)
            };
            t.push(&e);
        }
        t
    });
    // 100 processes, their parent 1999 and 1999's parent... only named: 1999 (placeholder).
    assert_eq!(t.entities().len(), 101);
    assert_eq!(t.stats().events, 400_000);
    assert!(t.entities().iter().all(|e| e.previous.len() <= 16));
    assert!(t.stats().previous_dropped > 0);
}

mod random_lineage {
    //! Random, mostly inconsistent event streams over a handful of pids: the
    //! table must never panic or loop, and what it answers must hold together.

    use super::*;
    use proptest::prelude::*;

    const KINDS: [K; 6] = [K::Open, K::Exec, K::Fork, K::Exit, K::Snapshot, K::Container];

    #[derive(Debug, Clone)]
    struct Raw {
        kind: usize,
        pid: u32,
        thread: bool,
        ppid: u32,
        start: Option<u8>,
        parent_start: Option<u8>,
        back: bool,
        sid: Option<u32>,
        pgid: Option<u32>,
        container: Option<bool>,
    }

    fn raw() -> impl Strategy<Value = Raw> {
        (
            0..KINDS.len(),
            1..8u32,
            any::<bool>(),
            0..8u32,
            proptest::option::of(0..6u8),
            proptest::option::of(0..6u8),
            any::<bool>(),
            proptest::option::of(0..8u32),
            proptest::option::of(0..8u32),
            proptest::option::of(any::<bool>()),
        )
            .prop_map(|(kind, pid, thread, ppid, start, parent_start, back, sid, pgid, container)| Raw {
                kind,
                pid,
                thread,
                ppid,
                start,
                parent_start,
                back,
                sid,
                pgid,
                container,
            })
    }

    /// A target no walk meets.
    fn l_none() -> Option<EntityRef> {
        None
    }

    /// Whether `target` is `from` or one of its ancestors, failing on a cycle.
    fn ancestor_or_self(t: &ProcessTable, from: EntityRef, target: Option<EntityRef>) -> bool {
        let mut cur = Some(from);
        for _ in 0..=t.entities().len() {
            match cur {
                Some(c) if Some(c) == target => return true,
                Some(c) => cur = t.entity(c).parent,
                None => return false,
            }
        }
        panic!("the parent links of {} form a cycle", t.entity(from).id);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
        #[test]
        fn answers_hold_together(raws in proptest::collection::vec(raw(), 0..60)) {
            let args: &'static [&'static str] = &["x"];
            let mut t = ProcessTable::default();
            let mut pushed = 0u64;
            for (i, r) in raws.iter().enumerate() {
                // Starts 5 ms apart: neighbours are within the 10 ms tolerance, others not.
                let start = r.start.map(|s| T0 + i64::from(s) * 5 * MS);
                let e = ProcessEvent {
                    index: i as u64,
                    time: T0 + if r.back { -(i as i64) } else { i as i64 } * MS,
                    kind: KINDS[r.kind],
                    host: HOST,
                    pid: r.pid,
                    tid: if r.thread { r.pid + 100 } else { r.pid },
                    ppid: Some(r.ppid),
                    sid: r.sid,
                    pgid: r.pgid,
                    start,
                    parent_start: r.parent_start.map(|s| T0 + i64::from(s) * 5 * MS),
                    comm: Some("x"),
                    exe: Some("/x"),
                    args: Some(args),
                    tty: Some(None),
                    container_id: r.container.map(|c| c.then_some(C1)),
                    ..ProcessEvent::default()
                };
                let Some(l) = t.push(&e) else {
                    prop_assert_eq!(e.kind, K::Container);
                    continue;
                };
                pushed += 1;
                let p = t.entity(l.process);
                prop_assert_eq!(p.pid, r.pid);
                prop_assert_eq!(l.thread, r.thread);
                if let Some(par) = l.parent {
                    prop_assert_eq!(Some(t.entity(par).pid), p.ppid);
                    prop_assert_ne!(par, l.process);
                }
                if let Some(s) = l.session_leader {
                    prop_assert_eq!(Some(t.entity(s).pid), p.sid);
                }
                if let Some(g) = l.group_leader {
                    prop_assert_eq!(Some(t.entity(g).pid), p.pgid);
                }
                if let Some(entry) = l.entry_leader {
                    prop_assert!(ancestor_or_self(&t, l.process, Some(entry)));
                    prop_assert_eq!(t.entity(entry).container_id.clone(), p.container_id.clone());
                    // Topmost as of this event (no stale cached answer): the walk stops
                    // at the entry leader because its parent is init, in another known
                    // place, or absent with ppid 0 (docs/processes.md).
                    let el = t.entity(entry);
                    match el.parent {
                        Some(pp) => {
                            let pe = t.entity(pp);
                            prop_assert!(
                                pe.pid <= 1 || el.pid == 1 || (pe.container_id.is_some() && pe.container_id != el.container_id),
                                "entry leader {} of {} has parent {} in the same place", el.pid, p.pid, pe.pid
                            );
                        }
                        None => prop_assert!(el.ppid == Some(0) || el.pid == 1),
                    }
                }
                prop_assert_eq!(l.entry_type.is_some(), l.entry_leader.is_some() && p.container().is_some());
            }
            prop_assert_eq!(t.stats().events, pushed);
            // At most the process, its parent and two leaders per event.
            prop_assert!(t.entities().len() as u64 <= 4 * pushed);
            // No parent chain loops (ancestor_or_self panics on a cycle).
            for e in t.entities() {
                if let Some(p) = e.parent {
                    ancestor_or_self(&t, p, l_none());
                }
            }
            let mut ids: Vec<&str> = t.entities().iter().map(|e| e.id.as_str()).collect();
            ids.sort_unstable();
            let n = ids.len();
            ids.dedup();
            prop_assert_eq!(ids.len(), n, "entity ids are unique");
        }
    }
}

/// The same pid on two hosts names two processes, and a pid beyond Linux's
/// largest `pid_max` (2^22; a capture from elsewhere, or a hostile one) is
/// a process like any other, next to a small one on the same page number.
///
/// ```text
/// event 0: node1 pid 7 (parent 1)          -> process A
/// event 1: node2 pid 7 (parent 1)          -> process B, not A
/// event 2: node1 pid 4294967290 (parent 7) -> process C, child of A
/// event 3: node1 pid 7 again               -> A
/// ```
#[test]
fn pids_are_per_host_and_any_u32_is_a_pid() {
    let big = 4_294_967_290;
    let events = [
        ev(0, K::Open, 7, 1),
        ProcessEvent { host: "node2", ..ev(1, K::Open, 7, 1) },
        ev(2, K::Open, big, 7),
        ev(3, K::Open, 7, 1),
    ];
    let (t, l) = run(&events);
    assert_ne!(l[0].process, l[1].process);
    assert_eq!(l[3].process, l[0].process);
    assert_eq!(l[2].parent, Some(l[0].process));
    assert_eq!(t.entity(l[2].process).pid, big);
    assert_eq!(t.current("node2", 7), Some(l[1].process));
    assert_eq!(t.current(HOST, big), Some(l[2].process));
    assert_eq!(t.current(HOST, 8), None);
}
