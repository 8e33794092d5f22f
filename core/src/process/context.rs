//! [`ProcessContext`]: the process table's answers for every event of one
//! capture, built in one pass before the rules run.

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, TimestampNanosecondType, UInt32Type};
use arrow_array::{Array, ArrayRef, Int32Array, PrimitiveArray, StringArray};
use arrow_schema::DataType;
use rustc_hash::FxHashMap;

use super::table::SHARED;
use super::{
    Entity, EntityRef, EntryType, EventLinks, KnownSymbols, ProcessEvent, ProcessEventKind, ProcessTable, Warnings,
};
use crate::capture::{str_at, Column, EventBatch, EventKind, Projection};
use crate::kernels::same_values;

/// What the container runtime said about one container (capture `container`
/// rows, format version 2). Every field is `None` when the capture does not say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerMeta {
    /// Kubernetes pod name.
    pub pod_name: Option<String>,
    /// Kubernetes namespace of the pod.
    pub pod_namespace: Option<String>,
    /// Kubernetes pod uid.
    pub pod_uid: Option<String>,
    /// Container name within the pod.
    pub container_name: Option<String>,
    /// Image reference as the runtime has it.
    pub image: Option<String>,
    /// Image name (without tag or digest).
    pub image_name: Option<String>,
    /// Image tag.
    pub image_tag: Option<String>,
    /// Whether the OCI spec makes the container privileged.
    pub privileged: Option<bool>,
}

const NONE: u32 = u32::MAX;
/// The low bit of an event's entry in [`ProcessContext`]'s `links`: a thread's event.
const THREAD: u32 = 1;
/// The most link sets an event can point at: the rest of a `u32` after the thread bit and `NONE`.
const MAX_SETS: usize = (u32::MAX >> 1) as usize;

/// The processes of an event, packed: entity positions (`NONE` for none).
/// Events of one process mostly share one such set (its parent and
/// leaders change rarely), so events keep a number of a set, not the set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Packed {
    process: u32,
    parent: u32,
    session: u32,
    group: u32,
    entry: u32,
    entry_container: bool,
}

fn pack(r: Option<EntityRef>) -> u32 {
    r.map_or(NONE, |r| r.0)
}

fn unpack(v: u32) -> Option<EntityRef> {
    (v != NONE).then_some(EntityRef(v))
}

/// The processes of one capture and, for every event, the processes it
/// relates to (its [`EventLinks`]) plus the container metadata by container
/// id: what the ECS view's process, leader, container and orchestrator
/// fields and the findings' triage columns read.
///
/// Memory: the table's entities (one per process), 4 bytes per event (the
/// number of the event's link set, with the thread flag) and 24 bytes per
/// distinct link set (a process's set changes when its parent, a leader or
/// its container does). The entities hold the *last* values the capture gave each process (its
/// latest image, directory, ids): a leader's `args` are those of its latest
/// exec, not necessarily those it had at the event (see
/// `docs/rule-semantics.md`).
pub struct ProcessContext {
    entities: Vec<Entity>,
    /// Per event: `set << 1 | thread`, `NONE` for a container row. Empty
    /// for a context built for some events only (`some_links`).
    links: Vec<u32>,
    /// For a context built for some events only
    /// ([`ProcessContextBuilder::for_events`]): their links, by event index.
    some_links: Option<Vec<(u64, u32)>>,
    /// Events the table took.
    events: u64,
    /// The distinct link sets, numbered as `links` says.
    sets: Vec<Packed>,
    containers: FxHashMap<String, ContainerMeta>,
    /// FxHash: the rules ask [`ProcessContext::container_state`] per event.
    starts: FxHashMap<String, u64>,
    /// For a context made by [`ProcessContext::starts_later`]: `starts`,
    /// computed at the first question.
    later: Option<Box<StartsLater>>,
    /// The arguments [`ProcessContextBuilder::finish_reading_args`] read
    /// back for some entities (the findings' parents), kept compactly.
    read_args: ArgStore,
    warnings: Warnings,
}

/// The container start-up of a capture, computed the first time a rule asks
/// (a pass over the capture), or never: only an event from the runtime's
/// init can be in a container still starting ([`ContainerState`]), and
/// most captures give a rule no such event to ask about.
struct StartsLater {
    compute: std::sync::Mutex<Option<StartsPass>>,
    done: std::sync::OnceLock<FxHashMap<String, u64>>,
    /// The pass's error, until the driver takes it.
    error: std::sync::Mutex<Option<crate::error::Error>>,
}

/// The pass [`StartsLater`] runs.
type StartsPass = Box<dyn FnOnce() -> crate::error::Result<ProcessContext> + Send>;

impl StartsLater {
    /// The starts, computing them on the first call (other threads asking
    /// meanwhile wait for the same pass); empty if the pass failed (its
    /// error kept for the driver).
    fn get(&self) -> &FxHashMap<String, u64> {
        self.done.get_or_init(|| {
            let pass = self.compute.lock().unwrap_or_else(|e| e.into_inner()).take();
            match pass.map(|pass| pass()) {
                Some(Ok(ctx)) => ctx.starts,
                Some(Err(e)) => {
                    *self.error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                    FxHashMap::default()
                }
                None => FxHashMap::default(),
            }
        })
    }
}

/// Whether a container's entry point had run at an event: Tracee's
/// `container` origin (started) versus `container-init`.
///
/// A capture says so only when it saw the container being set up: the first
/// event of the container (a `container` metadata row aside) came from the
/// runtime's init process (a comm starting with `runc:`). Then the container
/// is starting until its first `exec` or its first event from a process
/// that is no longer the runtime's (another comm means an exec happened),
/// and started from that event on. A container whose first event is anything
/// else (a snapshot row, an application process) was already running: it is
/// started from its first event. See `docs/rule-semantics.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    /// The container's entry point had not run yet (Tracee: `container-init`).
    Starting,
    /// The entry point had run, or the capture cannot tell that it had not.
    Started,
}

/// Where an event of a container stands in that container's start-up.
#[derive(Debug, Clone, Copy)]
enum StartTrack {
    /// First seen from the runtime's init; not started yet.
    Starting,
    /// Started at this event index.
    StartedAt(u64),
}

/// The runtime's init process names (runc's `runc:[0:PARENT]`,
/// `runc:[1:CHILD]`, `runc:[2:INIT]`; crun's children are named like it).
pub(crate) fn is_runtime_init(comm: &str) -> bool {
    comm.starts_with("runc:")
}

impl std::fmt::Debug for ProcessContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessContext")
            .field("entities", &self.entities.len())
            .field("events", &self.links.len())
            .field("link_sets", &self.sets.len())
            .field("containers", &self.containers.len())
            .finish()
    }
}

impl ProcessContext {
    /// The columns [`ProcessContextBuilder::push_batch`] reads.
    pub fn projection() -> Projection {
        use Column::*;
        [
            Time,
            Kind,
            Host,
            Pid,
            Tid,
            Ppid,
            Uid,
            Gid,
            Comm,
            Exe,
            Args,
            Tty,
            ContainerId,
            Sid,
            Pgid,
            Start,
            ParentStart,
            Cwd,
            PodName,
            PodNamespace,
            PodUid,
            ContainerName,
            Image,
            ImageName,
            ImageTag,
            Privileged,
        ]
        .into_iter()
        .collect()
    }

    /// [`ProcessContext::projection`] without `args`: what a builder
    /// [`ProcessContextBuilder::for_events`] with argument rows reads.
    pub fn projection_without_args() -> Projection {
        ProcessContext::projection().difference([Column::Args].into_iter().collect())
    }

    /// The columns [`ProcessContextBuilder::starts_only`] reads.
    pub fn starts_projection() -> Projection {
        [Column::Kind, Column::ContainerId, Column::Comm].into_iter().collect()
    }

    /// The links of event `event_index`, if the capture has that event and
    /// it is about a process.
    /// A context built for some events only
    /// ([`ProcessContextBuilder::for_events`]) answers only for those.
    pub fn links(&self, event_index: u64) -> Option<EventLinks> {
        let l = match &self.some_links {
            Some(some) => some[some.binary_search_by_key(&event_index, |&(i, _)| i).ok()?].1,
            None => *self.links.get(usize::try_from(event_index).ok()?)?,
        };
        let p = self.sets.get((l >> 1) as usize)?;
        Some(EventLinks {
            process: unpack(p.process)?,
            thread: l & THREAD != 0,
            parent: unpack(p.parent),
            session_leader: unpack(p.session),
            group_leader: unpack(p.group),
            entry_leader: unpack(p.entry),
            entry_type: p.entry_container.then_some(EntryType::Container),
        })
    }

    /// Every process entity, in the order the table met them.
    pub fn entities(&self) -> &[Entity] {
        &self.entities
    }

    /// One entity.
    pub fn entity(&self, r: EntityRef) -> &Entity {
        &self.entities[r.index()]
    }

    /// The metadata of a container, when the capture has any.
    pub fn container(&self, id: &str) -> Option<&ContainerMeta> {
        self.containers.get(id)
    }

    /// Whether container `id` had started (its entry point ran) at event
    /// `event_index` (see [`ContainerState`]). A container the capture never
    /// showed starting counts as started.
    pub fn container_state(&self, id: &str, event_index: u64) -> ContainerState {
        match self.container_started_at(id) {
            Some(at) if event_index < at => ContainerState::Starting,
            _ => ContainerState::Started,
        }
    }

    /// The event index from which container `id` counts as started, for a
    /// container the capture saw starting (`None`: started at every event).
    pub fn container_started_at(&self, id: &str) -> Option<u64> {
        self.starts().get(id).copied()
    }

    /// Whether the capture saw any container starting: without one, every
    /// container event is [`ContainerState::Started`].
    pub fn any_container_starting(&self) -> bool {
        !self.starts().is_empty()
    }

    /// [`ProcessContext::any_container_starting`] without running a pass
    /// [`ProcessContext::starts_later`] deferred: true while it has not run.
    pub(crate) fn may_have_containers_starting(&self) -> bool {
        match &self.later {
            Some(later) => later.done.get().is_none_or(|starts| !starts.is_empty()),
            None => !self.starts.is_empty(),
        }
    }

    fn starts(&self) -> &FxHashMap<String, u64> {
        match &self.later {
            Some(later) => later.get(),
            None => &self.starts,
        }
    }

    /// A context that knows only container start-up, and computes it with
    /// `pass` (e.g. [`crate::driver::Driver::container_starts`]) the first
    /// time it is asked, if ever; see [`ContainerState`] for why it rarely
    /// is. The driver reports a failed pass with
    /// [`ProcessContext::take_deferred_error`].
    pub(crate) fn starts_later(pass: StartsPass) -> ProcessContext {
        let mut ctx = ProcessContextBuilder::starts_only().finish();
        ctx.later = Some(Box::new(StartsLater {
            compute: std::sync::Mutex::new(Some(pass)),
            done: std::sync::OnceLock::new(),
            error: std::sync::Mutex::new(None),
        }));
        ctx
    }

    /// The error of the deferred start-up pass, if it ran and failed
    /// (taken: a second call returns `None`).
    pub(crate) fn take_deferred_error(&self) -> Option<crate::error::Error> {
        self.later.as_ref()?.error.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// The arguments of entity `e`: its [`Entity::args`], or for a context
    /// built for some events ([`ProcessContextBuilder::for_events`]) those
    /// read back for the findings' parents, which are kept outside the
    /// entities. `None` when unknown.
    pub fn args_of(&self, e: EntityRef) -> Option<Vec<&str>> {
        match &self.entity(e).args {
            Some(args) => Some(args.iter().map(String::as_str).collect()),
            None => self.read_args.get(e).map(Iterator::collect),
        }
    }

    /// The lineage warnings the table counted.
    pub fn warnings(&self) -> &Warnings {
        &self.warnings
    }

    /// How many events the process table took (container rows included).
    pub fn events(&self) -> u64 {
        self.events
    }
}

/// How many events ahead [`ProcessContextBuilder::push_batch`] asks the
/// table to load a process's records ([`ProcessTable::prefetch`]).
const PREFETCH_AHEAD: usize = 8;
/// How many events ahead it asks for the pid index's slot, which
/// [`ProcessTable::prefetch`] reads ([`ProcessTable::prefetch_slot`]).
const SLOT_AHEAD: usize = 12;

/// Builds a [`ProcessContext`] from a capture's batches, given in capture order.
#[derive(Debug)]
pub struct ProcessContextBuilder {
    table: ProcessTable,
    links: Vec<u32>,
    sets: Vec<Packed>,
    /// Per entity, the number of its latest link set (`NONE` before its first).
    last_set: Vec<u32>,
    containers: FxHashMap<String, ContainerMeta>,
    starts: FxHashMap<Box<str>, StartTrack>,
    /// The container of the latest event, when it had started: its later
    /// events need no look-up. Empty for none (a container id is never empty
    /// here: an empty one is looked up like any other and never kept).
    last_started: String,
    /// By the table's symbol of a container id: whether that container
    /// has started (then its events need no [`ProcessContextBuilder::track_start`]).
    started_symbols: Vec<bool>,
    starts_only: bool,
    /// The table's symbols of the dictionary values of `comm`, `exe`, `cwd`,
    /// `tty` and `container_id`, in that order, then its numbers of `host`'s.
    symbols: [SymbolCache; 6],
    /// For a builder of some events' links only: those events (sorted), the
    /// position of the next one, and the links found so far.
    wanted: Option<Wanted>,
    /// Events fed so far.
    events: u64,
    /// Whether a row repeating the previous one is counted as a repeat
    /// ([`ProcessTable::push_repeat`]); off only to test that it changes nothing.
    repeats: bool,
    /// Rows counted as repeats.
    repeated: u64,
}

/// The events a [`ProcessContextBuilder::for_events`] answers for.
#[derive(Debug, Default)]
struct Wanted {
    events: Vec<u64>,
    next: usize,
    links: Vec<(u64, u32)>,
}

impl Wanted {
    /// Whether event `index` is wanted; indexes must come in increasing order.
    fn take(&mut self, index: u64) -> bool {
        while self.events.get(self.next).is_some_and(|&w| w < index) {
            self.next += 1;
        }
        self.events.get(self.next) == Some(&index)
    }
}

impl Default for ProcessContextBuilder {
    fn default() -> Self {
        // The builder reads the table's entities only when it finishes.
        let mut table = ProcessTable::new(Default::default());
        table.defer_text();
        ProcessContextBuilder {
            table,
            links: Vec::new(),
            sets: Vec::new(),
            last_set: Vec::new(),
            containers: FxHashMap::default(),
            starts: FxHashMap::default(),
            last_started: String::new(),
            started_symbols: Vec::new(),
            starts_only: false,
            symbols: Default::default(),
            wanted: None,
            events: 0,
            repeats: true,
            repeated: 0,
        }
    }
}

impl ProcessContextBuilder {
    /// A builder that only follows containers' start-up
    /// ([`ProcessContext::container_state`]): fed batches carrying
    /// [`ProcessContext::starts_projection`], it makes a context without
    /// processes, links or container metadata.
    pub fn starts_only() -> Self {
        ProcessContextBuilder { starts_only: true, ..Default::default() }
    }

    /// A builder whose context answers [`ProcessContext::links`] only for
    /// the events `events` names (what findings' triage columns ask about):
    /// every event still goes through the table, in the same way, but the
    /// others cost no walk to their entry leader and no memory per event.
    ///
    /// With `arg_rows`, the table keeps the rows arguments come from
    /// instead of the strings, so the builder needs no `args` column
    /// ([`ProcessContext::projection_without_args`]), and
    /// [`ProcessContextBuilder::finish_reading_args`] reads from the capture
    /// the arguments of the wanted events' parents (the only ones the
    /// triage columns show); every other entity's `args` stay `None`. Such
    /// a context keeps no previous images (`Entity::previous` is empty): the
    /// triage columns do not show them.
    pub fn for_events(mut events: Vec<u64>, arg_rows: bool) -> Self {
        events.sort_unstable();
        events.dedup();
        let mut b =
            ProcessContextBuilder { wanted: Some(Wanted { events, ..Default::default() }), ..Default::default() };
        if arg_rows {
            b.table.keep_arg_rows();
        }
        // The triage columns show no previous images.
        b.table.keep_no_previous_images();
        b
    }

    /// The same builder, pushing every event in full, including rows that
    /// repeat the previous one: slower, the same context (for tests).
    #[doc(hidden)]
    pub fn without_repeats(mut self) -> Self {
        self.repeats = false;
        self
    }

    /// Rows so far that repeated the previous one and were counted as such.
    #[doc(hidden)]
    pub fn repeated(&self) -> u64 {
        self.repeated
    }

    /// Follows container start-up through one batch (see [`ContainerState`]).
    fn push_starts(&mut self, batch: &EventBatch) {
        let first = batch.first_index();
        let Some(ids) = batch.column(Column::ContainerId) else { return };
        let comms = batch.column(Column::Comm);
        let kinds = batch.kinds();
        // Without any runtime-init comm in the batch, every event starts its
        // container: only each container's first event here matters, found
        // by dictionary key without a look-up per event.
        let any_init = comms.is_some_and(|c| match c.data_type() {
            DataType::Dictionary(_, _) => {
                let v = c.as_dictionary::<Int32Type>().values().as_string::<i32>().clone();
                (0..v.len()).any(|k| v.is_valid(k) && is_runtime_init(v.value(k)))
            }
            _ => (0..c.len()).any(|i| str_at(c.as_ref(), i).is_some_and(is_runtime_init)),
        });
        if !any_init {
            if let DataType::Dictionary(_, _) = ids.data_type() {
                let d = ids.as_dictionary::<Int32Type>();
                let (keys, values) = (d.keys(), d.values().as_string::<i32>());
                let mut seen = vec![false; values.len()];
                for (i, kind) in kinds.iter().enumerate() {
                    if *kind == EventKind::Container || keys.is_null(i) {
                        continue;
                    }
                    let k = keys.value(i) as usize;
                    if std::mem::replace(&mut seen[k], true) || values.is_null(k) {
                        continue;
                    }
                    self.track_start(values.value(k), first + i as u64, *kind, None);
                }
                return;
            }
        }
        for (i, kind) in kinds.iter().enumerate() {
            if *kind == EventKind::Container {
                continue;
            }
            if let Some(id) = str_at(ids.as_ref(), i) {
                let comm = comms.and_then(|a| str_at(a.as_ref(), i));
                self.track_start(id, first + i as u64, *kind, comm);
            }
        }
    }

    /// Feeds one batch (carrying [`ProcessContext::projection`]; columns it
    /// lacks are "not said"). Batches must come in capture order, without gaps.
    pub fn push_batch(&mut self, batch: &EventBatch) {
        if self.starts_only {
            return self.push_starts(batch);
        }
        let first = batch.first_index();
        if self.wanted.is_none() && first as usize > self.links.len() {
            self.links.resize(first as usize, NONE);
        }
        self.events = self.events.max(first + batch.len() as u64);
        let time = batch.column(Column::Time).map(|t| t.as_primitive::<TimestampNanosecondType>());
        let u32s = |c: Column| batch.column(c).map(|a| a.as_primitive::<UInt32Type>());
        let (pid, tid, ppid, uid, gid) =
            (u32s(Column::Pid), u32s(Column::Tid), u32s(Column::Ppid), u32s(Column::Uid), u32s(Column::Gid));
        let (sid, pgid) = (u32s(Column::Sid), u32s(Column::Pgid));
        let at = |a: Option<&PrimitiveArray<UInt32Type>>, i: usize| a.and_then(|a| a.is_valid(i).then(|| a.value(i)));
        let stamps = |c: Column| batch.column(c).map(|a| a.as_primitive::<TimestampNanosecondType>());
        let (start, parent_start) = (stamps(Column::Start), stamps(Column::ParentStart));
        let ts = |a: Option<&PrimitiveArray<TimestampNanosecondType>>, i: usize| {
            a.and_then(|a| a.is_valid(i).then(|| a.value(i)))
        };
        let strs = |c: Column| Strs::new(batch.column(c).map(|a| a.as_ref()));
        let (host, comm, exe, cwd, tty, container) = (
            strs(Column::Host),
            strs(Column::Comm),
            strs(Column::Exe),
            strs(Column::Cwd),
            strs(Column::Tty),
            strs(Column::ContainerId),
        );
        let columns = [Column::Comm, Column::Exe, Column::Cwd, Column::Tty, Column::ContainerId, Column::Host];
        for (cache, c) in self.symbols.iter_mut().zip(columns) {
            cache.follow(batch.column(c));
        }
        let args = batch.column(Column::Args).map(|a| a.as_list::<i32>());
        let arg_values = args.map(|l| Strs::new(Some(l.values().as_ref())));
        // Whether row `i` says of its process exactly what row `i - 1` said
        // (the same in every column the table reads but the time, and no
        // arguments): then, for an ordinary event, the table may count it as
        // a repeat of the last one without looking anything up.
        let same_ids = |i: usize| {
            let u = |a: Option<&PrimitiveArray<UInt32Type>>| a.is_none_or(|a| at(Some(a), i) == at(Some(a), i - 1));
            let t = |a: Option<&PrimitiveArray<TimestampNanosecondType>>| {
                a.is_none_or(|a| ts(Some(a), i) == ts(Some(a), i - 1))
            };
            u(pid) && u(tid) && u(ppid) && u(uid) && u(gid) && u(sid) && u(pgid) && t(start) && t(parent_start)
        };
        let same_strings = |i: usize| {
            [&host, &comm, &exe, &cwd, &tty, &container].iter().all(|c| c.same(i, i - 1))
                && args.is_none_or(|l| l.is_null(i) && l.is_null(i - 1))
        };
        // One argument buffer for the whole batch, refilled per row.
        let mut row_args: Vec<&str> = Vec::new();
        for (i, kind) in batch.kinds().iter().enumerate() {
            // A repeat of the previous row, for an ordinary event: its
            // container was tracked by the previous row already (same id,
            // same comm, an ordinary kind both times: tracking it again
            // changes nothing), and the table counts it if it can.
            // (The pid first: on most rows that do not repeat, it differs.)
            if self.repeats
                && i > 0
                && pid.is_some_and(|p| p.value(i) == p.value(i - 1))
                && matches!(
                    ProcessEventKind::from(*kind),
                    ProcessEventKind::Open | ProcessEventKind::FileOp | ProcessEventKind::Other
                )
                && same_ids(i)
                && same_strings(i)
            {
                let index = first + i as u64;
                let want = self.wanted.as_mut().is_none_or(|w| w.take(index));
                if let Some(links) = self.table.push_repeat(time.map_or(0, |t| t.value(i)), index, want) {
                    self.repeated += 1;
                    self.keep_links(index, want, links);
                    continue;
                }
            }
            if let Some(p) = pid.filter(|p| i + SLOT_AHEAD < p.len()) {
                self.table.prefetch_slot(p.value(i + SLOT_AHEAD));
            }
            if let Some(p) = pid.filter(|p| i + PREFETCH_AHEAD < p.len()) {
                self.table.prefetch(p.value(i + PREFETCH_AHEAD));
            }
            if let Some(p) = pid.filter(|p| i + PREFETCH_AHEAD / 2 < p.len()) {
                self.table.prefetch_parent(p.value(i + PREFETCH_AHEAD / 2));
            }
            let has_args = args.filter(|l| l.is_valid(i)).map(|l| {
                row_args.clear();
                row_args.extend(list_row(l, arg_values.as_ref().expect("with args"), i));
            });
            // Each string read once: its text and, dictionary-encoded, its symbol.
            let table = &mut self.table;
            let [c_comm, c_exe, c_cwd, c_tty, c_container, c_host] = &mut self.symbols;
            let (host_s, host_k) = c_host.get(&host, i, |s| table.intern_host(s));
            let (comm_s, comm_k) = c_comm.get(&comm, i, |s| table.intern(s));
            let (exe_s, exe_k) = c_exe.get(&exe, i, |s| table.intern(s));
            let (cwd_s, cwd_k) = c_cwd.get(&cwd, i, |s| table.intern(s));
            let (tty_s, tty_k) = c_tty.get(&tty, i, |s| table.intern(s));
            let (container_s, container_k) = c_container.get(&container, i, |s| table.intern(s));
            let ev = ProcessEvent {
                index: first + i as u64,
                time: time.map_or(0, |t| t.value(i)),
                kind: ProcessEventKind::from(*kind),
                host: host_s.unwrap_or(""),
                pid: at(pid, i).unwrap_or(0),
                tid: at(tid, i).or(at(pid, i)).unwrap_or(0),
                ppid: at(ppid, i),
                sid: at(sid, i),
                pgid: at(pgid, i),
                start: ts(start, i),
                parent_start: ts(parent_start, i),
                comm: comm_s,
                exe: exe_s,
                args: has_args.map(|()| row_args.as_slice()),
                cwd: cwd_s,
                uid: at(uid, i),
                gid: at(gid, i),
                tty: tty.present().then_some(tty_s),
                container_id: container.present().then_some(container_s),
            };
            let known =
                KnownSymbols { comm: comm_k, exe: exe_k, cwd: cwd_k, tty: tty_k, container: container_k, host: host_k };
            if *kind == EventKind::Container {
                self.container_row(batch, i);
            } else if let Some(id) = container_s {
                // A container that has started stays started: known by its
                // symbol, its later events cost no look-up by text.
                let sym = known.container.filter(|&s| s != SHARED).map(|s| s as usize);
                if sym.is_none_or(|s| self.started_symbols.get(s) != Some(&true))
                    && self.track_start(id, first + i as u64, *kind, comm_s)
                {
                    if let Some(s) = sym {
                        if self.started_symbols.len() <= s {
                            self.started_symbols.resize(s + 1, false);
                        }
                        self.started_symbols[s] = true;
                    }
                }
            }
            let want = self.wanted.as_mut().is_none_or(|w| w.take(ev.index));
            let links = self.table.push_known(&ev, known, want);
            self.keep_links(ev.index, want, links);
        }
    }

    /// Keeps the table's answer for event `index` (`None`: a container
    /// row, or an event not wanted): in `links` for every event, or among
    /// the wanted events' links.
    fn keep_links(&mut self, index: u64, want: bool, links: Option<EventLinks>) {
        let link = match links {
            Some(l) => self.link_set(l),
            None => NONE,
        };
        match &mut self.wanted {
            None => self.links.push(link),
            Some(w) if want => w.links.push((index, link)),
            Some(_) => {}
        }
    }

    /// The entry of one event's links in `links`: the number of its
    /// process's latest set when nothing changed, else of a new set.
    fn link_set(&mut self, l: EventLinks) -> u32 {
        let set = Packed {
            process: l.process.0,
            parent: pack(l.parent),
            session: pack(l.session_leader),
            group: pack(l.group_leader),
            entry: pack(l.entry_leader),
            entry_container: l.entry_type.is_some(),
        };
        let me = l.process.index();
        if me >= self.last_set.len() {
            self.last_set.resize(me + 1, NONE);
        }
        let last = self.last_set[me];
        let n = if last != NONE && self.sets[last as usize] == set {
            last
        } else if self.sets.len() < MAX_SETS {
            self.sets.push(set);
            let n = (self.sets.len() - 1) as u32;
            self.last_set[me] = n;
            n
        } else {
            // Past 2^31 distinct sets (billions of events) an event gets no links.
            return NONE;
        };
        n << 1 | u32::from(l.thread)
    }

    /// Follows container `id`'s start-up through one of its events (not a
    /// `container` row), in capture order.
    /// Returns whether the container counts as started from this event on.
    fn track_start(&mut self, id: &str, index: u64, kind: EventKind, comm: Option<&str>) -> bool {
        if !id.is_empty() && self.last_started == id {
            return true;
        }
        // An exec, a snapshot row or any comm other than the runtime's init's
        // shows the entry point has run.
        let starter = matches!(kind, EventKind::Exec | EventKind::Process) || !comm.is_some_and(is_runtime_init);
        let started = match self.starts.get_mut(id) {
            None => {
                let track = if starter { StartTrack::StartedAt(index) } else { StartTrack::Starting };
                self.starts.insert(id.into(), track);
                starter
            }
            Some(t @ StartTrack::Starting) => {
                if starter {
                    *t = StartTrack::StartedAt(index);
                }
                starter
            }
            Some(StartTrack::StartedAt(_)) => true,
        };
        if started {
            self.last_started.clear();
            self.last_started.push_str(id);
        }
        started
    }

    /// Records a `container` row's metadata; a later row for the same
    /// container fills what earlier ones left unknown and overrides the rest.
    fn container_row(&mut self, batch: &EventBatch, i: usize) {
        let s = |c: Column| batch.column(c).and_then(|a| str_at(a.as_ref(), i)).map(str::to_string);
        let Some(id) = s(Column::ContainerId) else { return };
        let privileged = batch.column(Column::Privileged).and_then(|a| {
            let a = a.as_boolean();
            a.is_valid(i).then(|| a.value(i))
        });
        let row = ContainerMeta {
            pod_name: s(Column::PodName),
            pod_namespace: s(Column::PodNamespace),
            pod_uid: s(Column::PodUid),
            container_name: s(Column::ContainerName),
            image: s(Column::Image),
            image_name: s(Column::ImageName),
            image_tag: s(Column::ImageTag),
            privileged,
        };
        let meta = self.containers.entry(id).or_default();
        macro_rules! merge {
            ($($f:ident),*) => { $(if row.$f.is_some() { meta.$f = row.$f; })* };
        }
        merge!(pod_name, pod_namespace, pod_uid, container_name, image, image_name, image_tag, privileged);
    }

    /// [`ProcessContextBuilder::finish`], with the arguments of the wanted
    /// events' parents read from `capture` (the capture the batches came
    /// from) when the table kept argument rows
    /// ([`ProcessContextBuilder::for_events`]). They are kept outside the
    /// entities, compactly: read them with [`ProcessContext::args_of`].
    pub fn finish_reading_args(self, capture: &crate::capture::Capture) -> crate::error::Result<ProcessContext> {
        let Some(wanted) = &self.wanted else { return Ok(self.finish()) };
        let mut need: Vec<(EntityRef, &[u64])> = Vec::new();
        for &(_, l) in &wanted.links {
            let Some(set) = self.sets.get((l >> 1) as usize) else { continue };
            let Some(parent) = unpack(set.parent) else { continue };
            match self.table.arg_rows(parent) {
                Some(rows) => need.push((parent, rows)),
                None => return Ok(self.finish()),
            }
        }
        need.sort_unstable_by_key(|(r, _)| r.0);
        need.dedup_by_key(|(r, _)| r.0);
        // Each parent's first row, then, for those whose row had no
        // arguments, their next one: one row per parent at a time, so only
        // the arguments shown are ever held, never those of every candidate,
        // and each list is copied straight into one compact store.
        let mut store = ArgStore::default();
        let mut pending: Vec<(EntityRef, &[u64])> = need;
        while !pending.is_empty() {
            // Several parents may share a row (inherited arguments).
            let mut waiting: FxHashMap<u64, Vec<EntityRef>> = FxHashMap::default();
            for (r, rows) in &pending {
                if let Some(&row) = rows.first() {
                    waiting.entry(row).or_default().push(*r);
                }
            }
            let mut done: rustc_hash::FxHashSet<u32> = Default::default();
            read_args(capture, waiting.keys().copied().collect(), |row, args| {
                for &r in waiting.get(&row).into_iter().flatten() {
                    store.push(r, args.iter().copied());
                    done.insert(r.0);
                }
            })?;
            pending.retain_mut(|(r, rows)| {
                if done.contains(&r.0) {
                    return false;
                }
                *rows = rows.get(1..).unwrap_or_default();
                !rows.is_empty()
            });
        }
        let mut ctx = self.finish();
        ctx.read_args = store;
        Ok(ctx)
    }

    /// The finished context. A builder [`ProcessContextBuilder::for_events`]
    /// with argument rows leaves every entity's `args` `None` here; see
    /// [`ProcessContextBuilder::finish_reading_args`].
    pub fn finish(self) -> ProcessContext {
        let mut links = self.links;
        links.shrink_to_fit();
        let mut sets = self.sets;
        sets.shrink_to_fit();
        let entities = self.table.into_entities_keeping_warnings();
        ProcessContext {
            warnings: entities.1,
            entities: entities.0,
            links,
            some_links: self.wanted.map(|w| w.links),
            events: self.events,
            sets,
            containers: self.containers,
            starts: self
                .starts
                .into_iter()
                .map(|(id, t)| match t {
                    StartTrack::Starting => (id.into(), u64::MAX),
                    StartTrack::StartedAt(at) => (id.into(), at),
                })
                .collect(),
            later: None,
            read_args: ArgStore::default(),
        }
    }
}

/// Argument lists kept compactly: every argument's text in one buffer, an
/// end offset per argument, a range of arguments per entity. Thousands of
/// parents' lists of hundreds of arguments each would otherwise be a
/// `String` per argument (`long-argv` at 5M events: 111 MB as `Vec<String>`,
/// about 60 as text).
#[derive(Default)]
struct ArgStore {
    text: String,
    ends: Vec<usize>,
    lists: FxHashMap<u32, (usize, usize)>,
}

impl ArgStore {
    fn push<'a>(&mut self, e: EntityRef, args: impl Iterator<Item = &'a str>) {
        let first = self.ends.len();
        for a in args {
            self.text.push_str(a);
            self.ends.push(self.text.len());
        }
        self.lists.insert(e.0, (first, self.ends.len()));
    }

    fn get(&self, e: EntityRef) -> Option<impl Iterator<Item = &str>> {
        let &(first, end) = self.lists.get(&e.0)?;
        Some((first..end).map(move |k| {
            let start = if k == 0 { 0 } else { self.ends[k - 1] };
            &self.text[start..self.ends[k]]
        }))
    }
}

/// The non-null `args` of some events of a capture (`rows`: event indexes
/// in any order), read row-selectively unit by unit, each handed to `found`
/// with its event index.
fn read_args(
    capture: &crate::capture::Capture,
    mut rows: Vec<u64>,
    mut found: impl FnMut(u64, &[&str]),
) -> crate::error::Result<()> {
    rows.sort_unstable();
    rows.dedup();
    let Some(unit_rows) = capture.unit_rows() else { return Ok(()) };
    let projection: Projection = [Column::Args].into_iter().collect();
    let (mut start, mut at) = (0u64, 0usize);
    for (unit, &n) in unit_rows.iter().enumerate() {
        let end = start + n;
        let here = rows[at..].iter().take_while(|&&r| r < end).count();
        if here > 0 {
            let offsets: Vec<u64> = rows[at..at + here].iter().map(|r| r - start).collect();
            let columns = capture.read_unit_rows(unit, projection, &offsets)?;
            if let Some(list) = columns[Column::Args.index()].as_ref().map(|a| a.as_list::<i32>()) {
                let values = Strs::new(Some(list.values().as_ref()));
                let mut row_args: Vec<&str> = Vec::new();
                for (k, &row) in rows[at..at + here].iter().enumerate() {
                    if list.is_valid(k) {
                        row_args.clear();
                        row_args.extend(list_row(list, &values, k));
                        found(row, &row_args);
                    }
                }
            }
            at += here;
        }
        start = end;
    }
    Ok(())
}

/// The elements of row `row` of a list of strings whose values are
/// `values` (a null element reads as the empty string).
fn list_row<'a, 'v>(
    list: &arrow_array::ListArray,
    values: &'v Strs<'a>,
    row: usize,
) -> impl Iterator<Item = &'a str> + use<'a, 'v> {
    let offs = list.value_offsets();
    (offs[row]..offs[row + 1]).map(move |k| values.get(k as usize).unwrap_or(""))
}

/// A string column of a batch, resolved once for the whole batch (plain or
/// dictionary-encoded), read row by row without a type test per value.
enum Strs<'a> {
    Absent,
    Plain(&'a StringArray),
    Dict(&'a Int32Array, &'a StringArray),
    /// Another type: read through [`str_at`] (which says `None`).
    Other(&'a dyn Array),
}

impl<'a> Strs<'a> {
    fn new(a: Option<&'a dyn Array>) -> Self {
        let Some(a) = a else { return Strs::Absent };
        match a.data_type() {
            DataType::Utf8 => Strs::Plain(a.as_string::<i32>()),
            DataType::Dictionary(k, v) if **k == DataType::Int32 && **v == DataType::Utf8 => {
                let d = a.as_dictionary::<Int32Type>();
                Strs::Dict(d.keys(), d.values().as_string::<i32>())
            }
            _ => Strs::Other(a),
        }
    }

    /// Whether the batch carries the column.
    fn present(&self) -> bool {
        !matches!(self, Strs::Absent)
    }

    /// Whether rows `a` and `b` surely hold the same value (both null
    /// counts): for a dictionary, the same key (two keys of equal texts
    /// count as different, which only costs a look-up).
    fn same(&self, a: usize, b: usize) -> bool {
        match *self {
            Strs::Absent => true,
            Strs::Plain(s) => s.is_valid(a) == s.is_valid(b) && (s.is_null(a) || s.value(a) == s.value(b)),
            Strs::Dict(keys, _) => {
                keys.is_valid(a) == keys.is_valid(b) && (keys.is_null(a) || keys.value(a) == keys.value(b))
            }
            Strs::Other(_) => false,
        }
    }

    /// The string at `row` (`None` for null or absent), as [`str_at`] reads it.
    fn get(&self, row: usize) -> Option<&'a str> {
        match *self {
            Strs::Absent => None,
            Strs::Plain(a) => a.is_valid(row).then(|| a.value(row)),
            Strs::Dict(keys, values) => {
                if keys.is_null(row) {
                    return None;
                }
                let k = keys.value(row) as usize;
                values.is_valid(k).then(|| values.value(k))
            }
            Strs::Other(a) => str_at(a, row),
        }
    }
}

/// "Not interned yet" in a [`SymbolCache`].
const UNRESOLVED: u32 = u32::MAX;

/// The table's symbols ([`ProcessTable::intern`]) of one dictionary-encoded
/// column's values, kept while consecutive batches share the dictionary (a
/// Parquet column chunk's batches do): each distinct value is hashed once
/// per column chunk instead of once per event.
#[derive(Debug, Default)]
struct SymbolCache {
    values: Option<ArrayRef>,
    symbols: Vec<u32>,
}

impl SymbolCache {
    /// Follows a batch's column: keeps the symbols when it has the same
    /// dictionary as the batch before, else starts over.
    fn follow(&mut self, column: Option<&ArrayRef>) {
        let values = match column {
            Some(a) if matches!(Strs::new(Some(a.as_ref())), Strs::Dict(..)) => a.as_dictionary::<Int32Type>().values(),
            _ => {
                self.values = None;
                self.symbols.clear();
                return;
            }
        };
        if self.values.as_ref().is_some_and(|v| same_values(v, values)) {
            return;
        }
        self.values = Some(values.clone());
        self.symbols.clear();
        self.symbols.resize(values.len(), UNRESOLVED);
    }

    /// The value of `column` at `row` (the column [`follow`] was given)
    /// and, when it is dictionary-encoded and the row has a value, its
    /// number: `intern`'s answer for that dictionary value, asked once per
    /// value while the dictionary stays. One read of the row's key for both.
    ///
    /// [`follow`]: SymbolCache::follow
    #[inline]
    fn get<'a>(
        &mut self,
        column: &Strs<'a>,
        row: usize,
        intern: impl FnOnce(&str) -> u32,
    ) -> (Option<&'a str>, Option<u32>) {
        let Strs::Dict(keys, values) = *column else { return (column.get(row), None) };
        if keys.is_null(row) {
            return (None, None);
        }
        let k = keys.value(row) as usize;
        if values.is_null(k) {
            return (None, None);
        }
        let text = values.value(k);
        let symbol = self.symbols.get_mut(k).map(|s| {
            if *s == UNRESOLVED {
                *s = intern(text);
            }
            *s
        });
        (Some(text), symbol)
    }
}

#[cfg(test)]
mod tests {
    use super::ProcessContextBuilder;
    use crate::capture::{events_from_ndjson, Column, EventBatch};

    /// Events as a node makes them, deterministic for `seed`: bursts from
    /// a few processes, with the cases a shortcut for repeated rows could
    /// get wrong among them: threads, execs, forks, exits and pid reuse,
    /// a changed parent or session, a parent cycle (`ppid == pid`), time
    /// going backwards, containers starting (a `runc:[2:INIT]` comm),
    /// snapshot and container rows, a changed or missing tty, container or
    /// cwd.
    fn bursts(seed: u64, n: usize) -> String {
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let mut next = move |m: u64| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) % m
        };
        let comms = ["sh", "cat", "runc:[2:INIT]", "nginx", "kubectl"];
        let containers = ["", "c1", "c2"];
        let mut procs: Vec<(u64, u64, usize, usize, bool)> =
            (0..6u64).map(|k| (100 + k, 1, k as usize % 5, k as usize % 3, k % 2 == 0)).collect();
        let (mut cur, mut time, mut next_pid) = (0usize, 1_000_000u64, 200u64);
        let mut lines = Vec::new();
        for _ in 0..n {
            if next(8) == 0 {
                cur = next(procs.len() as u64) as usize;
            }
            let r = next(1000);
            let (mut pid, mut ppid, comm, container, tty) = procs[cur];
            let mut tid = pid;
            let kind = match r {
                0..=19 => "exec",
                20..=29 => "fork",
                30..=34 => "exit",
                35..=39 => "process",
                40..=44 => "container",
                45..=69 => "rename",
                _ => "open",
            };
            match next(100) {
                0 => tid = pid + 1000, // a thread
                1 => {
                    // names itself as its parent, for its next events too
                    ppid = pid;
                    procs[cur].1 = pid;
                }
                2 => {
                    ppid = 1 + next(3); // reparented
                    procs[cur].1 = ppid;
                }
                3 => time -= 10, // backwards
                4 => {
                    // pid reuse: the process ends, a new one takes its place
                    next_pid += 1;
                    pid = next_pid;
                    procs[cur].0 = pid;
                }
                _ => {}
            }
            if kind == "exec" {
                procs[cur].2 = next(comms.len() as u64) as usize;
            }
            // Equal times too: an event at its process's exit time is no
            // warning, the next one after it is.
            time += next(3);
            // Now and then one value differs from the process's usual one
            // (a comm renamed without exec keeps the executable).
            let exe = comms[comm];
            let comm = comms[if next(40) == 0 { next(comms.len() as u64) as usize } else { comm }];
            let container = match containers[if next(40) == 0 { next(3) as usize } else { container }] {
                "" => "null".to_string(),
                c => format!("\"{c}\""),
            };
            let tty = if tty != (next(40) == 0) { r#""pts/0""# } else { "null" };
            let cwd = if next(50) == 0 { "null" } else { r#""/""# };
            let sid = if next(60) == 0 { pid + 1 } else { pid };
            let uid = if next(50) == 0 { 1000 } else { 0 };
            lines.push(format!(
                r#"{{"time":{time},"kind":"{kind}","host":"n","pid":{pid},"tid":{tid},"ppid":{ppid},"uid":{uid},"gid":0,"comm":"{comm}","exe":"/bin/{exe}","path":"/etc/x","result":0,"cgroup_id":1,"container_id":{container},"tty":{tty},"cwd":{cwd},"sid":{sid},"pgid":{pid}}}"#
            ));
        }
        lines.join("\n")
    }

    /// The batch with its string columns dictionary-encoded, as a Parquet
    /// capture's are read.
    fn as_dictionaries(b: &EventBatch) -> EventBatch {
        use arrow_schema::DataType;
        let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        let columns = Column::ALL.map(|c| {
            b.column(c).map(|a| match a.data_type() {
                DataType::Utf8 => arrow_cast::cast(a, &dictionary).unwrap(),
                _ => a.clone(),
            })
        });
        EventBatch::new(columns, b.kinds().to_vec(), b.first_index())
    }

    /// Rows repeating the previous one are counted without looking them up
    /// again: the context is the same as when every row is pushed in full,
    /// for every event's links, the processes, the warnings and each event's
    /// container state, with plain and dictionary-encoded strings, for the
    /// whole context and for some events' links.
    #[test]
    fn rows_counted_as_repeats_give_the_context_every_row_pushed_in_full_gives() {
        let n = 6000;
        for seed in 0..4 {
            let text = bursts(seed, n);
            let plain = events_from_ndjson(&text, "c.ndjson", 700).unwrap();
            let dict: Vec<EventBatch> = plain.iter().map(as_dictionaries).collect();
            let wanted: Vec<u64> = (0..n as u64).filter(|i| i % 7 == 3).collect();
            for batches in [&plain, &dict] {
                // As many rows counted as repeats whether every event's
                // links are kept or some: which events are wanted decides
                // nothing about the process.
                let mut repeats = Vec::new();
                for some in [false, true] {
                    let new = || match some {
                        false => ProcessContextBuilder::default(),
                        true => ProcessContextBuilder::for_events(wanted.clone(), false),
                    };
                    let (mut fast, mut full) = (new(), new().without_repeats());
                    for b in batches.iter() {
                        fast.push_batch(b);
                        full.push_batch(b);
                    }
                    assert!(fast.repeated() > n as u64 / 10, "seed {seed}: {} repeats", fast.repeated());
                    repeats.push(fast.repeated());
                    assert_eq!(full.repeated(), 0);
                    let (fast, full) = (fast.finish(), full.finish());
                    assert_eq!(fast.events(), full.events());
                    assert_eq!(format!("{:?}", fast.entities()), format!("{:?}", full.entities()), "seed {seed}");
                    assert_eq!(format!("{:?}", fast.warnings()), format!("{:?}", full.warnings()), "seed {seed}");
                    for i in 0..n as u64 {
                        assert_eq!(fast.links(i), full.links(i), "seed {seed}, event {i}");
                        for c in ["c1", "c2"] {
                            assert_eq!(
                                fast.container_state(c, i),
                                full.container_state(c, i),
                                "seed {seed}, event {i}"
                            );
                        }
                    }
                }
                assert_eq!(repeats[0], repeats[1], "seed {seed}: repeats with every event's links and with some");
            }
        }
    }

    /// A context built for the findings' triage columns keeps no previous
    /// images (an exec-heavy capture would hold an executable per exec:
    /// 120 MB of a 5M-event default replay), yet names the same parent, with
    /// the same current image, as the whole context.
    #[test]
    fn a_context_for_findings_keeps_no_previous_images_but_the_same_parent() {
        let event = |kind: &str, pid: u32, ppid: u32, comm: &str| {
            format!(
                r#"{{"time":1,"kind":"{kind}","host":"n","pid":{pid},"tid":{pid},"ppid":{ppid},"uid":0,"gid":0,"comm":"{comm}","exe":"/bin/{comm}","path":"/bin/{comm}","result":0,"cgroup_id":1}}"#
            )
        };
        // pid 10 execs sh, then bash, then app; its child 11 opens a file (3).
        let lines = [
            event("exec", 10, 1, "sh"),
            event("exec", 10, 1, "bash"),
            event("exec", 10, 1, "app"),
            event("open", 11, 10, "cat"),
        ]
        .join("\n");
        let batch = events_from_ndjson(&lines, "c.ndjson", 100).unwrap().remove(0);
        let mut whole = ProcessContextBuilder::default();
        whole.push_batch(&batch);
        let whole = whole.finish();
        let mut some = ProcessContextBuilder::for_events(vec![3], false);
        some.push_batch(&batch);
        let some = some.finish();
        let (a, b) = (whole.links(3).unwrap().parent.unwrap(), some.links(3).unwrap().parent.unwrap());
        let (a, b) = (whole.entity(a), some.entity(b));
        assert_eq!(
            (a.id.as_str(), a.name.as_deref(), a.executable.as_deref()),
            ("n:10:-", Some("app"), Some("/bin/app"))
        );
        assert_eq!(
            (b.id.as_str(), b.name.as_deref(), b.executable.as_deref()),
            (a.id.as_str(), a.name.as_deref(), a.executable.as_deref())
        );
        assert_eq!(a.previous.len(), 2, "the whole context keeps the images before each exec");
        assert!(b.previous.is_empty(), "the findings' context keeps none: {:?}", b.previous);
    }
}
