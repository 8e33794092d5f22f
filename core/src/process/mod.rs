//! Processes rebuilt from a capture: the process table.
//!
//! A capture is a stream of events, each naming the process (thread-group
//! id `pid`) and thread (`tid`) that caused it. [`ProcessTable`] turns that
//! stream, fed in capture order one [`ProcessEvent`] at a time, into
//! *process entities*: one per process the capture shows, with a stable id,
//! its start and end, its image (name, executable, arguments, with the
//! images it had before each exec), working directory, credentials,
//! terminal, container and parent. For every event it answers
//! [`EventLinks`]: the event's process, its parent, its session leader,
//! its process-group leader and its entry leader, as the table stands *at
//! that event*.
//!
//! The table keeps state per process, never per event: memory grows with the
//! number of processes (plus a bounded list of warning examples), so a
//! capture of millions of events costs a few hash lookups per event. The
//! per-event answers are returned to the caller, which uses them right away
//! (reading [`ProcessTable::entity`] before the next push gives the values as
//! of that event) or keeps them.
//!
//! Capture format version 1 holds only `open` and `exec` events with `pid`,
//! `tid`, `ppid`, `uid`, `gid`, `comm`, `exe`, `args`, `tty` and the container
//! id; version 2 adds `fork`, `exit`, `process` (a /proc snapshot row) and
//! `container` rows and the columns `sid`, `pgid`, `start`, `parent_start`
//! and `cwd`. Whatever a capture does not hold stays `None` here: the table
//! never invents a start time, a session or a working directory. See
//! `docs/processes.md` for the rules (entity ids, leaders, what version 1
//! lacks) and the tests in `core/tests/process_table.rs` for worked
//! scenarios.
//!
//! Bad lineage (a parent cycle, pid reuse within the start-time tolerance, a
//! snapshot row after events of the same pid, time going backwards) never
//! panics or loops: the table gives the best answer it can and counts a
//! [`Warning`] of the matching [`WarningKind`].

mod context;
pub(crate) use context::is_runtime_init;
mod table;
mod tree;

use std::sync::Arc;

pub use context::{ContainerMeta, ContainerState, ProcessContext, ProcessContextBuilder};
pub(crate) use table::KnownSymbols;
pub use table::{ProcessTable, ProcessTableOptions};
pub use tree::{
    process_tree_batch, process_tree_schema, process_trees, ProcessTree, TreeFilter, TreeFinding, TreeNode,
};

/// What an event row is, as far as processes are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ProcessEventKind {
    /// A file open (`open`).
    Open,
    /// A process exec (`exec`): the process keeps its entity and gets a new image.
    Exec,
    /// A new task (`fork`): a new process when `tid == pid`, a new thread otherwise.
    Fork,
    /// A task ended (`exit`): the process ended when `tid == pid`.
    Exit,
    /// A /proc snapshot row (`process`) for a process older than the recording.
    Snapshot,
    /// Container metadata (`container`), or a Kubernetes audit event
    /// (`k8s_audit`): not about a process on the node; the table skips it.
    Container,
    /// A file operation (`create`, `delete`, `rename`, ...): an ordinary event of its process.
    FileOp,
    /// Any other event kind: handled as an ordinary event of its process.
    #[default]
    Other,
}

impl ProcessEventKind {
    /// The kind named by a capture's `kind` value (`open`, `exec`, `fork`,
    /// `exit`, `process`, `container`, `k8s_audit`, or a file operation); anything else is [`ProcessEventKind::Other`].
    pub fn from_capture_kind(kind: &str) -> ProcessEventKind {
        match kind {
            "open" => ProcessEventKind::Open,
            "exec" => ProcessEventKind::Exec,
            "fork" => ProcessEventKind::Fork,
            "exit" => ProcessEventKind::Exit,
            "process" => ProcessEventKind::Snapshot,
            "container" | "k8s_audit" => ProcessEventKind::Container,
            _ => match crate::capture::EventKind::parse(kind) {
                Some(crate::capture::EventKind::File(_)) => ProcessEventKind::FileOp,
                _ => ProcessEventKind::Other,
            },
        }
    }
}

impl From<crate::capture::EventKind> for ProcessEventKind {
    /// The process table's view of a capture row's kind.
    fn from(kind: crate::capture::EventKind) -> Self {
        use crate::capture::EventKind;
        match kind {
            EventKind::Open => ProcessEventKind::Open,
            EventKind::Exec => ProcessEventKind::Exec,
            EventKind::Fork => ProcessEventKind::Fork,
            EventKind::Exit => ProcessEventKind::Exit,
            EventKind::Process => ProcessEventKind::Snapshot,
            EventKind::Container | EventKind::K8sAudit => ProcessEventKind::Container,
            EventKind::File(_) => ProcessEventKind::FileOp,
        }
    }
}

/// One event as the process table needs it, borrowed from wherever the
/// event lives (an Arrow batch, an NDJSON line, a test's literal).
///
/// `None` always means "the capture does not say" (a version 1 capture has
/// no `sid`, `pgid`, `start`, `parent_start` or `cwd`). For the terminal and
/// the container, where "none" is itself an answer, the outer `Option` says
/// whether the capture holds the value and the inner one is the value:
/// `tty: Some(None)` is "no controlling terminal", `tty: None` is "unknown".
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEvent<'a> {
    /// The event index (position in its capture).
    pub index: u64,
    /// When the event happened, in nanoseconds since the Unix epoch (UTC).
    pub time: i64,
    /// The event's kind.
    pub kind: ProcessEventKind,
    /// Host name of the node.
    pub host: &'a str,
    /// Process id (thread-group id), host pid namespace.
    pub pid: u32,
    /// Thread id, host pid namespace.
    pub tid: u32,
    /// Parent's process id; `Some(0)` for a process without parent (init, kthreadd).
    pub ppid: Option<u32>,
    /// Session id (host pid namespace, like `pid`).
    pub sid: Option<u32>,
    /// Process-group id (host pid namespace, like `pid`).
    pub pgid: Option<u32>,
    /// Start time of the process (its thread-group leader), ns since the Unix epoch.
    pub start: Option<i64>,
    /// Start time of the parent process, ns since the Unix epoch.
    pub parent_start: Option<i64>,
    /// The kernel's task name (after the exec, for an exec).
    pub comm: Option<&'a str>,
    /// The process's executable (the file executed, for an exec).
    pub exe: Option<&'a str>,
    /// argv, for an exec or a snapshot row; `None` on other events.
    pub args: Option<&'a [&'a str]>,
    /// Working directory.
    pub cwd: Option<&'a str>,
    /// Effective user id.
    pub uid: Option<u32>,
    /// Effective group id.
    pub gid: Option<u32>,
    /// Controlling terminal: `Some(Some("pts/0"))`, `Some(None)` (none) or `None` (unknown).
    pub tty: Option<Option<&'a str>>,
    /// Container id: `Some(Some(id))`, `Some(None)` (the host) or `None` (unknown).
    pub container_id: Option<Option<&'a str>>,
}

/// A process entity's position in [`ProcessTable::entities`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityRef(pub(crate) u32);

impl EntityRef {
    /// The position in [`ProcessTable::entities`].
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// How the table first learned of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// A /proc snapshot row: the process is older than the recording.
    Snapshot,
    /// A `fork` row: the process was created during the recording.
    Fork,
    /// An ordinary event of its own (open, exec, exit, a thread's fork)
    /// without a snapshot row or fork before it: where it came from is
    /// unknown. Every process of a version 1 capture is one of these.
    Events,
    /// Only named by others (as a parent, session or group leader); no
    /// event of its own has been seen. Everything but its pid (and start,
    /// when a `parent_start` gave it) is unknown.
    Placeholder,
}

/// The image a process had before an exec (ECS `process.previous`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousImage {
    /// The executable before the exec, if known.
    pub executable: Option<String>,
    /// The arguments before the exec, if known.
    pub args: Option<Vec<String>>,
}

/// One process as the capture shows it.
///
/// Fields hold the latest value the table has seen: read them right after
/// pushing an event to get the values as of that event.
#[derive(Debug, Clone)]
pub struct Entity {
    /// Stable id within the capture (see `docs/processes.md`): `HOST:PID:START`
    /// with the start in ns since the epoch, `HOST:PID:-` when the start is
    /// unknown, and a `#N` suffix when that text was already taken.
    pub id: String,
    /// Host name.
    pub host: Arc<str>,
    /// Process id (host pid namespace).
    pub pid: u32,
    /// Start time (ns since the epoch), if known.
    pub start: Option<i64>,
    /// Exit time (ns since the epoch), when an `exit` row with `tid == pid` was seen.
    pub end: Option<i64>,
    /// Task name (`comm`).
    pub name: Option<String>,
    /// Executable.
    pub executable: Option<String>,
    /// Arguments of the current image (argv).
    pub args: Option<Vec<String>>,
    /// Working directory.
    pub cwd: Option<String>,
    /// Effective user id.
    pub uid: Option<u32>,
    /// Effective group id.
    pub gid: Option<u32>,
    /// Controlling terminal: `Some(Some(name))`, `Some(None)` (none), `None` (unknown).
    pub tty: Option<Option<String>>,
    /// Container id: `Some(Some(id))`, `Some(None)` (host), `None` (unknown).
    pub container_id: Option<Option<String>>,
    /// Parent's pid as last seen.
    pub ppid: Option<u32>,
    /// Session id as last seen.
    pub sid: Option<u32>,
    /// Process-group id as last seen.
    pub pgid: Option<u32>,
    /// The parent entity as last seen (after reparenting, the new parent).
    pub parent: Option<EntityRef>,
    /// Images before each exec, oldest first (bounded; see [`ProcessTableOptions::max_previous`]).
    pub previous: Vec<PreviousImage>,
    /// How the table first learned of the process.
    pub origin: Origin,
    /// Events of this process seen (snapshot rows excluded).
    pub events: u64,
    /// Whether any process was ever linked to this one as its child: only
    /// then can a change to its lineage change another's entry leader.
    pub(crate) has_children: bool,
}

impl Entity {
    /// Whether the process has a controlling terminal (ECS `interactive`);
    /// `None` when the capture does not say.
    pub fn interactive(&self) -> Option<bool> {
        self.tty.as_ref().map(|t| t.is_some())
    }

    /// The container id, when the process is known to run in a container.
    pub fn container(&self) -> Option<&str> {
        self.container_id.as_ref().and_then(|c| c.as_deref())
    }
}

/// What kind of entry an entry leader is (ECS `process.entry_leader.entry_meta.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EntryType {
    /// The process entered a container: the container's first process or a
    /// process a runtime exec put into it (`runc exec`, `kubectl exec`).
    Container,
}

impl EntryType {
    /// The ECS value (`container`).
    pub fn as_str(self) -> &'static str {
        match self {
            EntryType::Container => "container",
        }
    }
}

/// The processes one event relates to, as the table stood at that event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventLinks {
    /// The event's process (for a thread's event, the thread group's process).
    pub process: EntityRef,
    /// Whether the event came from a thread other than the group leader (`tid != pid`).
    pub thread: bool,
    /// The parent process, if `ppid` is known and not 0.
    pub parent: Option<EntityRef>,
    /// The process whose pid is the event's session id.
    pub session_leader: Option<EntityRef>,
    /// The process whose pid is the event's process-group id.
    pub group_leader: Option<EntityRef>,
    /// The entry leader (see `docs/processes.md`), when the lineage decides it.
    pub entry_leader: Option<EntityRef>,
    /// The entry leader's kind, when there is one and it is known.
    pub entry_type: Option<EntryType>,
}

impl EventLinks {
    /// Whether the session leader is the event's process (ECS `session_leader.same_as_process`).
    pub fn session_leader_same(&self) -> Option<bool> {
        self.session_leader.map(|l| l == self.process)
    }
    /// Whether the group leader is the event's process.
    pub fn group_leader_same(&self) -> Option<bool> {
        self.group_leader.map(|l| l == self.process)
    }
    /// Whether the entry leader is the event's process.
    pub fn entry_leader_same(&self) -> Option<bool> {
        self.entry_leader.map(|l| l == self.process)
    }
    /// Whether the parent is the event's process (never, since a cycle is refused).
    pub fn parent_same(&self) -> Option<bool> {
        self.parent.map(|l| l == self.process)
    }
}

/// A kind of inconsistency in a capture's lineage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WarningKind {
    /// A `ppid` would make a process its own ancestor; the link was not made.
    Cycle,
    /// An ancestor walk exceeded [`ProcessTableOptions::max_depth`]; it stopped there.
    TooDeep,
    /// A pid was reused by a process whose start is within the start
    /// tolerance of the previous one: events naming that start go to the newer one.
    PidReuseWithinTolerance,
    /// A new process took a pid whose previous process had no `exit` row.
    PidReusedWithoutExit,
    /// A snapshot row came after events of the same process (or of a later
    /// process with that pid); it only fills what the events left unknown.
    SnapshotAfterEvents,
    /// An event's time is earlier than the previous event's.
    TimeWentBackwards,
    /// An event's time is before its process's start.
    EventBeforeStart,
    /// An event of a process came after that process's exit.
    EventAfterExit,
    /// An event names a start older than the pid's current process, and no
    /// process with that start is known: it got an entity of its own.
    StaleStart,
}

impl WarningKind {
    /// All kinds, in the order of [`Warnings::counts`].
    pub const ALL: [WarningKind; 9] = [
        WarningKind::Cycle,
        WarningKind::TooDeep,
        WarningKind::PidReuseWithinTolerance,
        WarningKind::PidReusedWithoutExit,
        WarningKind::SnapshotAfterEvents,
        WarningKind::TimeWentBackwards,
        WarningKind::EventBeforeStart,
        WarningKind::EventAfterExit,
        WarningKind::StaleStart,
    ];

    /// A short snake_case name (`cycle`, `too_deep`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            WarningKind::Cycle => "cycle",
            WarningKind::TooDeep => "too_deep",
            WarningKind::PidReuseWithinTolerance => "pid_reuse_within_tolerance",
            WarningKind::PidReusedWithoutExit => "pid_reused_without_exit",
            WarningKind::SnapshotAfterEvents => "snapshot_after_events",
            WarningKind::TimeWentBackwards => "time_went_backwards",
            WarningKind::EventBeforeStart => "event_before_start",
            WarningKind::EventAfterExit => "event_after_exit",
            WarningKind::StaleStart => "stale_start",
        }
    }

    fn position(self) -> usize {
        WarningKind::ALL.iter().position(|k| *k == self).expect("every kind is in ALL")
    }
}

impl std::fmt::Display for WarningKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One warning, kept as an example (the first few of each capture).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// What went wrong.
    pub kind: WarningKind,
    /// The event index where it was noticed.
    pub event: u64,
    /// The pid concerned.
    pub pid: u32,
    /// One sentence for a person.
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "event {}: pid {}: {} ({})", self.event, self.pid, self.message, self.kind)
    }
}

/// Warning counts per kind plus the first few warnings in full.
#[derive(Debug, Clone, Default)]
pub struct Warnings {
    counts: [u64; WarningKind::ALL.len()],
    examples: Vec<Warning>,
    max_examples: usize,
}

impl Warnings {
    fn new(max_examples: usize) -> Self {
        Warnings { counts: Default::default(), examples: Vec::new(), max_examples }
    }

    pub(crate) fn add(&mut self, kind: WarningKind, event: u64, pid: u32, message: impl FnOnce() -> String) {
        self.counts[kind.position()] += 1;
        if self.examples.len() < self.max_examples {
            self.examples.push(Warning { kind, event, pid, message: message() });
        }
    }

    /// How many warnings of this kind were counted.
    pub fn count(&self, kind: WarningKind) -> u64 {
        self.counts[kind.position()]
    }

    /// All warnings counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The counts of the kinds that occurred, in [`WarningKind::ALL`] order.
    pub fn counts(&self) -> impl Iterator<Item = (WarningKind, u64)> + '_ {
        WarningKind::ALL.into_iter().zip(self.counts).filter(|(_, n)| *n > 0)
    }

    /// The first warnings, in the order they occurred (at most
    /// [`ProcessTableOptions::max_warning_examples`]).
    pub fn examples(&self) -> &[Warning] {
        &self.examples
    }
}

/// Counters of what the table saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessStats {
    /// Events pushed (container rows excluded).
    pub events: u64,
    /// Processes first met in a snapshot row.
    pub from_snapshot: u64,
    /// Processes first met in a fork row.
    pub from_fork: u64,
    /// Processes first met in an ordinary event (origin unknown).
    pub from_events: u64,
    /// Processes only ever named by others, never seen themselves.
    pub placeholders: u64,
    /// Events of threads other than the group leader (`tid != pid`), fork rows included.
    pub thread_events: u64,
    /// Fork rows that created a thread.
    pub thread_forks: u64,
    /// Exec events.
    pub execs: u64,
    /// Process exits (`exit` rows with `tid == pid`).
    pub exits: u64,
    /// Times a pid went to a new process while an older process with that pid was known.
    pub pid_reuses: u64,
    /// Times a process's parent changed.
    pub reparented: u64,
    /// Exec images dropped from `previous` because of its bound.
    pub previous_dropped: u64,
}
