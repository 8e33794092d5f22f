//! The [`ProcessTable`] itself: identity, lineage and leaders.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::{
    Entity, EntityRef, EntryType, EventLinks, Origin, PreviousImage, ProcessEvent, ProcessEventKind, ProcessStats,
    WarningKind, Warnings,
};

/// Tunables of a [`ProcessTable`]; the defaults suit real captures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessTableOptions {
    /// Two start times of the same pid at most this far apart (ns) name the
    /// same process. /proc gives start times in clock ticks (10 ms at the
    /// usual USER_HZ of 100) while the kernel's own are in ns, so a snapshot
    /// row and the same process's later events differ by up to one tick.
    pub start_tolerance_ns: i64,
    /// Ancestor walks stop after this many steps (a [`WarningKind::TooDeep`]).
    pub max_depth: usize,
    /// At most this many previous images are kept per process (the most recent ones).
    pub max_previous: usize,
    /// At most this many warnings are kept in full (all are counted).
    pub max_warning_examples: usize,
}

impl Default for ProcessTableOptions {
    fn default() -> Self {
        ProcessTableOptions {
            start_tolerance_ns: 10_000_000,
            max_depth: 4096,
            max_previous: 16,
            max_warning_examples: 32,
        }
    }
}

/// The table's hash maps: FxHash (rustc-hash), a multiply-rotate per word,
/// several times cheaper than the standard library's SipHash for its small
/// integer keys (pids, host numbers, starts) and short strings (names,
/// paths). The keys come from the capture and FxHash does not resist
/// chosen collisions, but a collision only costs time, and whoever writes
/// the capture can already make it as large as they like.
type FxMap<K, V> = FxHashMap<K, V>;

/// "Not known" in [`Hot`]'s string fields and in the parent links.
const UNKNOWN: u32 = u32::MAX;
/// "Known to be none" in [`Hot`]'s terminal and container fields (no
/// terminal, the host).
const NOTHING: u32 = u32::MAX - 1;

/// The few values of an entity that every event compares or every walk
/// reads, kept apart from [`Entity`] in one small record per process: strings
/// as numbers from the table's [`Interner`] (equal numbers, equal text), so
/// an event that changes nothing costs no string comparison, and the walks
/// up the parents touch a few bytes per step instead of a whole `Entity`.
/// [`Entity`] keeps the text for readers; both change together, unless the
/// table defers the text ([`ProcessTable::defer_text`]).
#[derive(Debug, Clone, Copy)]
struct Hot {
    pid: u32,
    /// `comm`, executable, working directory: a symbol or [`UNKNOWN`].
    name: u32,
    exe: u32,
    cwd: u32,
    /// Terminal and container: a symbol, [`NOTHING`] or [`UNKNOWN`].
    tty: u32,
    container: u32,
    /// The cached entry leader ([`ProcessTable::entry_leader`]): valid
    /// while `entry_epoch` is the table's epoch; [`NO_ENTRY`] for "none".
    entry: u32,
    /// The step of the walk from this process that found `entry` (0: the
    /// first); [`TOO_DEEP`] when that walk hit the depth bound.
    entry_step: u32,
    entry_epoch: u64,
}

/// A cached entry-leader answer of "no entry leader".
const NO_ENTRY: u32 = u32::MAX;
/// An `entry_step` for a walk that went deeper than the bound.
const TOO_DEEP: u32 = u32::MAX;
/// An `entry_epoch` no epoch reaches: nothing cached.
const NO_EPOCH: u64 = u64::MAX;
/// The most rows a process's argument candidates hold ([`ArgRows`]).
const MAX_ARG_ROWS: usize = 32;

/// Where a process's arguments come from when the table keeps event rows
/// instead of strings ([`ProcessTable::keep_arg_rows`]): the rows whose
/// `args` the table would have taken, by priority; the process's arguments
/// are those of the first row whose `args` are not null (none when every
/// one is null). An exec starts the list over with its own row; a snapshot
/// or fork row puts its row first (its arguments replace the old ones when
/// it has any) or, when it only fills what is unknown, last; a fork appends
/// its parent's list (taken when the child's own rows say nothing). At most
/// [`MAX_ARG_ROWS`] rows are kept (the lowest-priority ones go first).
pub(crate) type ArgRows = Vec<u64>;

/// Strings the table has met, numbered: interning an event's strings makes
/// comparing them with an entity's a comparison of numbers. Grows with the
/// distinct names, paths, terminals and container ids of a capture (not
/// with its events); arguments are not interned.
#[derive(Debug, Clone, Default)]
struct Interner {
    ids: FxMap<Arc<str>, u32>,
    /// The text of each number below [`SHARED`], by number.
    texts: Vec<Arc<str>>,
}

impl Interner {
    fn get(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        // Two numbers are reserved ([`UNKNOWN`], [`NOTHING`]); past them,
        // strings share the last number and compare as text (see `set_sym`).
        let id = (self.ids.len() as u32).min(SHARED);
        let text: Arc<str> = s.into();
        if id != SHARED {
            self.texts.push(text.clone());
        }
        self.ids.insert(text, id);
        id
    }

    /// The text of symbol `sym` when the symbol alone names it (not
    /// [`UNKNOWN`], [`NOTHING`] or [`SHARED`]).
    fn text(&self, sym: u32) -> Option<&str> {
        (sym < SHARED).then(|| self.texts.get(sym as usize).map(|t| &**t)).flatten()
    }

    /// A string field's value from its symbol, in a table that defers text
    /// ([`ProcessTable::defer_text`]): the interned text for a symbol that
    /// names one, `None` for [`UNKNOWN`], and `slot` itself (kept up to date
    /// for it) for [`SHARED`].
    fn resolve(&self, sym: u32, slot: Option<String>) -> Option<String> {
        match sym {
            UNKNOWN => None,
            SHARED => slot,
            _ => self.text(sym).map(str::to_string),
        }
    }

    /// [`Interner::resolve`] for the terminal and the container, where
    /// [`NOTHING`] is "none".
    fn resolve_opt(&self, sym: u32, slot: Option<Option<String>>) -> Option<Option<String>> {
        match sym {
            NOTHING => Some(None),
            UNKNOWN => None,
            SHARED => slot,
            _ => Some(self.text(sym).map(str::to_string)),
        }
    }
}

/// The process of an event a repeat of which [`ProcessTable::push_repeat`]
/// may count without looking anything up.
#[derive(Debug, Clone, Copy)]
struct Repeatable {
    me: u32,
    host: u32,
    thread: bool,
}

/// The symbols ([`ProcessTable::intern`]) of an event's strings that its
/// caller already has, so the table does not hash them again: `Some` only
/// for a string the event carries, and then exactly that string's symbol.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KnownSymbols {
    pub(crate) comm: Option<u32>,
    pub(crate) exe: Option<u32>,
    pub(crate) cwd: Option<u32>,
    pub(crate) tty: Option<u32>,
    pub(crate) container: Option<u32>,
    /// The host's number ([`ProcessTable::intern_host`]), not a string symbol.
    pub(crate) host: Option<u32>,
}

/// The last number [`Interner::get`] hands out, shared by every string
/// interned after 2^32 - 3 others: equal numbers there do not mean equal text.
pub(crate) const SHARED: u32 = NOTHING - 1;

/// Pids per page of a [`PidIndex`].
const PID_PAGE: usize = 4096;
/// Pids below this are indexed by page (Linux's largest `pid_max` is 2^22).
const PAGED_PIDS: u32 = 1 << 22;

/// The process each (host, pid) names now, as entity positions: for the
/// pids Linux hands out, an array per host in pages of [`PID_PAGE`] pids,
/// made when a pid of the page is first met (a look-up per event is an
/// index, not a hash and a probe, and the pages of a host's live pids stay
/// in the cache); other pids in a hash map.
#[derive(Debug, Clone, Default)]
struct PidIndex {
    /// Per host, per page: the entity position of each pid, [`UNKNOWN`] for none.
    pages: Vec<Vec<Option<Box<[u32]>>>>,
    other: FxMap<(u32, u32), u32>,
}

impl PidIndex {
    #[inline]
    fn get(&self, host: u32, pid: u32) -> Option<u32> {
        if pid >= PAGED_PIDS {
            return self.other.get(&(host, pid)).copied();
        }
        let page = self.pages.get(host as usize)?.get(pid as usize / PID_PAGE)?.as_ref()?;
        Some(page[pid as usize % PID_PAGE]).filter(|&i| i != UNKNOWN)
    }

    /// Where `pid`'s entry of a page is, without reading it (pids off the
    /// pages: `None`).
    #[inline]
    fn slot(&self, host: u32, pid: u32) -> Option<&u32> {
        if pid >= PAGED_PIDS {
            return None;
        }
        let page = self.pages.get(host as usize)?.get(pid as usize / PID_PAGE)?.as_ref()?;
        page.get(pid as usize % PID_PAGE)
    }

    fn insert(&mut self, host: u32, pid: u32, i: u32) {
        if pid >= PAGED_PIDS {
            self.other.insert((host, pid), i);
            return;
        }
        if self.pages.len() <= host as usize {
            self.pages.resize(host as usize + 1, Vec::new());
        }
        let pages = &mut self.pages[host as usize];
        let p = pid as usize / PID_PAGE;
        if pages.len() <= p {
            pages.resize(p + 1, None);
        }
        pages[p].get_or_insert_with(|| vec![UNKNOWN; PID_PAGE].into_boxed_slice())[pid as usize % PID_PAGE] = i;
    }
}

/// Processes rebuilt from a capture's events, fed in capture order (see the
/// [module documentation](super)).
#[derive(Debug, Clone)]
pub struct ProcessTable {
    opts: ProcessTableOptions,
    entities: Vec<Entity>,
    /// One [`Hot`] per entity, same positions.
    hot: Vec<Hot>,
    /// Each entity's parent's position, or [`UNKNOWN`]: apart from [`Hot`]
    /// so that the walk up a new parent's ancestors (the cycle check of
    /// every re-link) reads 4 bytes a step from an array that stays in the
    /// cache (1 MiB for 250,000 processes) rather than a [`Hot`] record each.
    parents: Vec<u32>,
    strings: Interner,
    hosts: Vec<Arc<str>>,
    host_ids: FxMap<Arc<str>, u32>,
    /// The process a (host, pid) names now: the newest one met.
    current: PidIndex,
    /// Processes with a known start, by (host, pid, start).
    by_start: FxMap<(u32, u32, i64), u32>,
    /// How many entities took each id text, for the `#N` suffix.
    id_uses: FxMap<String, u32>,
    /// Bumped whenever a parent link or a container changes: entry-leader
    /// answers cached before that are stale.
    epoch: u64,
    last_time: Option<i64>,
    /// The process of the last event pushed, when that event was an
    /// ordinary one (an open, a file operation) that changed nothing a
    /// repeat of it could change again (see [`ProcessTable::push_repeat`]).
    last_plain: Option<Repeatable>,
    warnings: Warnings,
    stats: ProcessStats,
    /// Per entity, its argument rows, when the table keeps rows instead of
    /// strings (`None`: it keeps strings in [`Entity::args`]).
    arg_rows: Option<Vec<ArgRows>>,
    /// The entry-leader walk's path, kept to reuse its allocation.
    walk_path: Vec<u32>,
    /// See [`ProcessTable::defer_text`].
    defer_text: bool,
}

impl Default for ProcessTable {
    fn default() -> Self {
        ProcessTable::new(ProcessTableOptions::default())
    }
}

/// How an event's values meet an entity's: a snapshot row that comes after
/// events of its process only fills what they left unknown.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Merge {
    Replace,
    FillMissing,
}

/// Stores `value` in `slot` as `merge` says; returns whether `slot` changed.
/// Compares before copying, so an unchanged string costs no allocation.
fn set<T, V>(
    slot: &mut Option<T>,
    value: Option<V>,
    merge: Merge,
    same: impl Fn(&T, &V) -> bool,
    own: impl Fn(V) -> T,
) -> bool {
    let Some(v) = value else { return false };
    match slot {
        Some(old) if merge == Merge::FillMissing || same(old, &v) => false,
        _ => {
            *slot = Some(own(v));
            true
        }
    }
}

fn set_u32(slot: &mut Option<u32>, value: Option<u32>, merge: Merge) -> bool {
    set(slot, value, merge, |a, b| a == b, |v| v)
}

/// Overwrites `slot` with `v`, reusing its allocation.
fn put(slot: &mut Option<String>, v: &str) {
    match slot {
        Some(old) => {
            old.clear();
            old.push_str(v);
        }
        None => *slot = Some(v.to_string()),
    }
}

/// `set` for a string kept both as a symbol (`sym`, in [`Hot`]) and as text
/// (in [`Entity`]): `symbol` interns the event's text, called only when it
/// may change the slot; `same_text` compares the texts, needed only for the
/// [`SHARED`] overflow number (other equal symbols are equal text).
/// Returns whether it changed: then `sym` holds the new symbol and the
/// caller stores the event's text.
fn set_sym(sym: &mut u32, merge: Merge, symbol: impl FnOnce() -> u32, same_text: impl FnOnce() -> bool) -> bool {
    if *sym != UNKNOWN && merge == Merge::FillMissing {
        return false;
    }
    let s = symbol();
    if *sym == s && (s != SHARED || same_text()) {
        return false;
    }
    *sym = s;
    true
}

/// Whether a field whose symbol is now `sym` stores its text at the event:
/// always, unless the table defers text ([`ProcessTable::defer_text`]);
/// then only for the [`SHARED`] number, which cannot name its text.
fn stores_text(defer: bool, sym: u32) -> bool {
    !defer || sym == SHARED
}

/// [`set_sym`] for a plain string field (name, executable, directory);
/// `known` is the text's symbol when the caller already has it. With
/// `defer` ([`ProcessTable::defer_text`]) the text is stored only for the
/// [`SHARED`] number; other symbols name their text themselves.
fn set_text(
    sym: &mut u32,
    slot: &mut Option<String>,
    (value, known): (Option<&str>, Option<u32>),
    merge: Merge,
    strings: &mut Interner,
    defer: bool,
) -> bool {
    let Some(v) = value else { return false };
    let changed = set_sym(sym, merge, || known.unwrap_or_else(|| strings.get(v)), || slot.as_deref() == Some(v));
    if changed && stores_text(defer, *sym) {
        put(slot, v);
    }
    changed
}

/// [`set_sym`] for the terminal and the container: the outer `Option` is
/// "known", the inner the value ([`NOTHING`] for none).
fn set_opt_text(
    sym: &mut u32,
    slot: &mut Option<Option<String>>,
    (value, known): (Option<Option<&str>>, Option<u32>),
    merge: Merge,
    strings: &mut Interner,
    defer: bool,
) -> bool {
    let Some(v) = value else { return false };
    let same = || slot.as_ref().and_then(|o| o.as_deref()) == v;
    let changed = set_sym(sym, merge, || v.map_or(NOTHING, |v| known.unwrap_or_else(|| strings.get(v))), same);
    if changed && stores_text(defer, *sym) {
        match (&mut *slot, v) {
            (Some(inner), Some(v)) => put(inner, v),
            (slot, v) => *slot = Some(v.map(str::to_string)),
        }
    }
    changed
}

fn set_args(slot: &mut Option<Vec<String>>, value: Option<&[&str]>, merge: Merge) -> bool {
    set(
        slot,
        value,
        merge,
        |a, b| a.iter().map(String::as_str).eq(b.iter().copied()),
        |v| v.iter().map(|s| s.to_string()).collect(),
    )
}

impl ProcessTable {
    /// An empty table.
    pub fn new(opts: ProcessTableOptions) -> Self {
        ProcessTable {
            opts,
            entities: Vec::new(),
            hot: Vec::new(),
            parents: Vec::new(),
            strings: Interner::default(),
            hosts: Vec::new(),
            host_ids: FxMap::default(),
            current: PidIndex::default(),
            by_start: FxMap::default(),
            id_uses: FxMap::default(),
            epoch: 0,
            last_time: None,
            last_plain: None,
            warnings: Warnings::new(opts.max_warning_examples),
            stats: ProcessStats::default(),
            arg_rows: None,
            walk_path: Vec::new(),
            defer_text: false,
        }
    }

    /// Makes the table keep an entity's name, executable, directory,
    /// terminal and container id as symbols only while it takes events,
    /// and write their text once, when it gives up its entities
    /// ([`ProcessTable::into_entities_keeping_warnings`]): an event that
    /// changes a process's name then costs no copy of the text (nor an
    /// allocation and a free when a terminal or container comes or goes).
    /// Until then [`ProcessTable::entities`] shows those fields stale: for
    /// a caller that reads entities only at the end. Call before the first
    /// push.
    pub(crate) fn defer_text(&mut self) {
        self.defer_text = true;
    }

    /// Makes the table keep, for each process, the rows its arguments come
    /// from ([`ArgRows`]) instead of the strings: [`Entity::args`] and the
    /// previous images' arguments stay `None`, events need no `args`, and
    /// the caller reads the arguments it needs from the capture afterwards
    /// ([`ProcessTable::arg_rows`]). Memory then no longer grows with the
    /// capture's argument lists. Call before the first push.
    pub(crate) fn keep_arg_rows(&mut self) {
        self.arg_rows = Some(Vec::new());
    }

    /// Keeps no previous images (`Entity::previous` stays empty): for a
    /// caller that never shows them (the findings' triage columns), whose
    /// exec-heavy captures would otherwise hold an executable per exec.
    /// Call before the first push.
    pub(crate) fn keep_no_previous_images(&mut self) {
        self.opts.max_previous = 0;
    }

    /// The rows entity `r`'s arguments come from, when the table keeps rows
    /// ([`ProcessTable::keep_arg_rows`]).
    pub(crate) fn arg_rows(&self, r: EntityRef) -> Option<&[u64]> {
        Some(self.arg_rows.as_ref()?.get(r.index())?.as_slice())
    }

    /// Every process entity, in the order the table met them.
    pub fn entities(&self) -> &[Entity] {
        &self.entities
    }

    /// The entities and the warnings, given up by the table (no copy of
    /// the entities; a table that defers text writes it now).
    pub(crate) fn into_entities_keeping_warnings(mut self) -> (Vec<Entity>, Warnings) {
        if self.defer_text {
            let strings = &self.strings;
            for (e, h) in self.entities.iter_mut().zip(&self.hot) {
                e.name = strings.resolve(h.name, e.name.take());
                e.executable = strings.resolve(h.exe, e.executable.take());
                e.cwd = strings.resolve(h.cwd, e.cwd.take());
                e.tty = strings.resolve_opt(h.tty, e.tty.take());
                e.container_id = strings.resolve_opt(h.container, e.container_id.take());
            }
        }
        (self.entities, self.warnings)
    }

    /// One entity.
    pub fn entity(&self, r: EntityRef) -> &Entity {
        &self.entities[r.index()]
    }

    /// The process a pid names now on a host (the newest one met), if any.
    pub fn current(&self, host: &str, pid: u32) -> Option<EntityRef> {
        let h = *self.host_ids.get(host)?;
        self.current.get(h, pid).map(EntityRef)
    }

    /// The entity with this id text.
    pub fn find_id(&self, id: &str) -> Option<EntityRef> {
        self.entities.iter().position(|e| e.id == id).map(|i| EntityRef(i as u32))
    }

    /// Warnings counted so far.
    pub fn warnings(&self) -> &Warnings {
        &self.warnings
    }

    /// Counters so far.
    pub fn stats(&self) -> ProcessStats {
        self.stats
    }

    /// Pushes every event of a slice in order and returns their links
    /// (`None` for container rows). Convenient for tests and small captures;
    /// a large capture should push event by event and use each answer at once.
    pub fn push_all(&mut self, events: &[ProcessEvent<'_>]) -> Vec<Option<EventLinks>> {
        events.iter().map(|e| self.push(e)).collect()
    }

    /// Takes one event, in capture order, and returns the processes it
    /// relates to as of that event. Container rows are skipped (`None`).
    pub fn push(&mut self, ev: &ProcessEvent<'_>) -> Option<EventLinks> {
        self.push_known(ev, KnownSymbols::default(), true)
    }

    /// Asks the CPU to start loading what a coming event of `pid` (on the
    /// host of the latest event) will read: the table's records of that
    /// pid's process. A capture's events name processes in any order, and
    /// a process table of tens of thousands of processes does not fit the
    /// cache: issued some events ahead, the loads overlap instead of each
    /// event waiting for its own. Only a hint; it changes nothing.
    #[inline]
    pub(crate) fn prefetch(&self, pid: u32) {
        let Some(i) = self.current_on_last_host(pid) else { return };
        if let Some(h) = self.hot.get(i as usize) {
            prefetch_read(h as *const Hot as *const u8);
        }
        self.prefetch_entity(i);
    }

    /// The first step of [`ProcessTable::prefetch`], issued further ahead:
    /// the slot of `pid` in the pid index, which `prefetch` must read to know
    /// the process (a read that waits for memory when the index is larger
    /// than the cache, as with tens of thousands of pids spread over the
    /// kernel's pid range).
    #[inline]
    pub(crate) fn prefetch_slot(&self, pid: u32) {
        let Some(host) = self.hosts.len().checked_sub(1) else { return };
        if let Some(slot) = self.current.slot(host as u32, pid) {
            prefetch_read(slot as *const u32 as *const u8);
        }
    }

    /// [`ProcessTable::prefetch`] for the parent of `pid`'s process (its
    /// parent link must be loaded by then: issue it later than `prefetch`).
    #[inline]
    pub(crate) fn prefetch_parent(&self, pid: u32) {
        let Some(i) = self.current_on_last_host(pid) else { return };
        if let Some(&parent) = self.parents.get(i as usize) {
            self.prefetch_entity(parent);
        }
    }

    /// The current process of `pid` on the host of the latest event.
    #[inline]
    fn current_on_last_host(&self, pid: u32) -> Option<u32> {
        let host = self.hosts.len().checked_sub(1)?;
        self.current.get(host as u32, pid)
    }

    /// Prefetches the cache lines of entity `i` that hold what a push reads
    /// of it ([`PUSH_READS`]; `UNKNOWN` and other positions past the end:
    /// nothing).
    #[inline]
    fn prefetch_entity(&self, i: u32) {
        if let Some(e) = self.entities.get(i as usize) {
            let e = e as *const Entity as *const u8;
            for (lo, hi) in PUSH_READS {
                // Every line that holds a byte of [lo, hi), whatever the
                // entity's alignment: one address per 64 bytes, and the last.
                let mut at = lo;
                while at < hi {
                    prefetch_read(e.wrapping_add(at));
                    at += 64;
                }
                prefetch_read(e.wrapping_add(hi - 1));
            }
        }
    }

    /// The symbol of a string, for [`KnownSymbols`].
    pub(crate) fn intern(&mut self, s: &str) -> u32 {
        self.strings.get(s)
    }

    /// [`ProcessTable::push`] with some of the event's strings already
    /// interned; without `want`, the table takes the event in the same way
    /// but answers `None` and saves the walk to its entry leader.
    pub(crate) fn push_known(&mut self, ev: &ProcessEvent<'_>, known: KnownSymbols, want: bool) -> Option<EventLinks> {
        self.last_plain = None;
        if ev.kind == ProcessEventKind::Container {
            return None;
        }
        let ordinary = matches!(ev.kind, ProcessEventKind::Open | ProcessEventKind::FileOp | ProcessEventKind::Other);
        let warned = ordinary.then(|| self.warnings.total());
        let (me, host) = self.push_event(ev, known);
        let thread = ev.tid != ev.pid;
        if warned.is_some_and(|w| self.warnings.total() == w) && self.entities[me as usize].end.is_none() {
            self.last_plain = Some(Repeatable { me, host, thread });
        }
        self.links(me, host, thread, ev.index, want)
    }

    /// The event just like the last one pushed (same process columns, an
    /// ordinary kind, `time` not earlier), without looking its values up
    /// again: `None` when the last event does not allow it (it was a fork,
    /// an exec, an exit, a snapshot or a container row, it raised a warning,
    /// its process has ended), and then the caller pushes the event in full.
    ///
    /// Pushed in full, such an event would find its process by the same
    /// pid and start, set the values it already has, and raise no warning
    /// (its time is not earlier than the last event's, which raised none);
    /// only the counts and the time move. `push_known` on the same event gives
    /// the same links (a test compares the two on bursts of events).
    pub(crate) fn push_repeat(&mut self, time: i64, index: u64, want: bool) -> Option<Option<EventLinks>> {
        let r = self.last_plain?;
        if self.last_time.is_some_and(|last| time < last) {
            return None;
        }
        self.last_time = Some(time);
        self.stats.events += 1;
        if r.thread {
            self.stats.thread_events += 1;
        }
        self.entities[r.me as usize].events += 1;
        Some(self.links(r.me, r.host, r.thread, index, want))
    }

    /// Takes in an event other than a container row; returns its process
    /// and the table's number of its host.
    fn push_event(&mut self, ev: &ProcessEvent<'_>, known: KnownSymbols) -> (u32, u32) {
        self.stats.events += 1;
        match self.last_time {
            Some(last) if ev.time < last => {
                self.warnings.add(WarningKind::TimeWentBackwards, ev.index, ev.pid, || {
                    format!("time {} is earlier than the previous event's {last}", ev.time)
                });
            }
            _ => self.last_time = Some(ev.time),
        }
        let host = match known.host {
            Some(h) => h,
            None => self.intern_host(ev.host),
        };
        let thread = ev.tid != ev.pid;
        if thread {
            self.stats.thread_events += 1;
        }
        let me = match ev.kind {
            ProcessEventKind::Snapshot => self.snapshot(host, ev),
            ProcessEventKind::Fork if !thread => self.fork(host, ev),
            _ => self.own_event(host, ev),
        };
        if ev.kind != ProcessEventKind::Snapshot {
            self.entities[me as usize].events += 1;
        }
        match ev.kind {
            ProcessEventKind::Exec => self.exec(me, ev, known),
            ProcessEventKind::Fork if thread => self.stats.thread_forks += 1,
            _ => {}
        }
        let merge = if ev.kind == ProcessEventKind::Snapshot && self.entities[me as usize].events > 0 {
            Merge::FillMissing
        } else {
            Merge::Replace
        };
        self.observe(me, host, ev, merge, known);
        if ev.kind == ProcessEventKind::Fork && !thread {
            self.inherit(me);
        }
        if ev.kind == ProcessEventKind::Exit && !thread {
            self.stats.exits += 1;
            self.entities[me as usize].end = Some(ev.time);
        }
        if let Some(start) = self.entities[me as usize].start {
            if ev.kind != ProcessEventKind::Snapshot && ev.time < start - self.opts.start_tolerance_ns {
                self.warnings.add(WarningKind::EventBeforeStart, ev.index, ev.pid, || {
                    format!("the event's time {} is before the process's start {start}", ev.time)
                });
            }
        }
        (me, host)
    }

    /// The table's number of a host (also for [`KnownSymbols::host`]).
    pub(crate) fn intern_host(&mut self, host: &str) -> u32 {
        // Captures rarely mix hosts: the last one answers without hashing.
        if let Some(last) = self.hosts.last() {
            if **last == *host {
                return self.hosts.len() as u32 - 1;
            }
        }
        if let Some(&h) = self.host_ids.get(host) {
            return h;
        }
        let h = self.hosts.len() as u32;
        let name: Arc<str> = Arc::from(host);
        self.hosts.push(name.clone());
        self.host_ids.insert(name, h);
        h
    }

    fn same_start(&self, a: Option<i64>, b: Option<i64>) -> bool {
        match (a, b) {
            (Some(a), Some(b)) => (a - b).abs() <= self.opts.start_tolerance_ns,
            _ => true,
        }
    }

    /// A new entity; it becomes the pid's current process when `current`.
    fn create(&mut self, host: u32, pid: u32, start: Option<i64>, origin: Origin, current: bool) -> u32 {
        let base = match start {
            Some(s) => format!("{}:{pid}:{s}", self.hosts[host as usize]),
            None => format!("{}:{pid}:-", self.hosts[host as usize]),
        };
        let uses = self.id_uses.entry(base.clone()).or_insert(0);
        *uses += 1;
        let id = if *uses == 1 { base } else { format!("{base}#{}", *uses) };
        let i = self.entities.len() as u32;
        self.entities.push(Entity {
            id,
            host: self.hosts[host as usize].clone(),
            pid,
            start,
            end: None,
            name: None,
            executable: None,
            args: None,
            cwd: None,
            uid: None,
            gid: None,
            tty: None,
            container_id: None,
            ppid: None,
            sid: None,
            pgid: None,
            parent: None,
            previous: Vec::new(),
            origin,
            events: 0,
            has_children: false,
        });
        self.parents.push(UNKNOWN);
        self.hot.push(Hot {
            pid,
            name: UNKNOWN,
            exe: UNKNOWN,
            cwd: UNKNOWN,
            tty: UNKNOWN,
            container: UNKNOWN,
            entry: NO_ENTRY,
            entry_step: TOO_DEEP,
            entry_epoch: NO_EPOCH,
        });
        if let Some(rows) = &mut self.arg_rows {
            rows.push(ArgRows::new());
        }
        match origin {
            Origin::Snapshot => self.stats.from_snapshot += 1,
            Origin::Fork => self.stats.from_fork += 1,
            Origin::Events => self.stats.from_events += 1,
            Origin::Placeholder => self.stats.placeholders += 1,
        }
        if let Some(s) = start {
            self.by_start.entry((host, pid, s)).or_insert(i);
        }
        if current {
            self.current.insert(host, pid, i);
        }
        i
    }

    /// A placeholder met again, now with something of its own to say.
    fn upgrade(&mut self, i: u32, origin: Origin, start: Option<i64>) {
        let e = &mut self.entities[i as usize];
        if e.origin == Origin::Placeholder {
            e.origin = origin;
            self.stats.placeholders -= 1;
            match origin {
                Origin::Snapshot => self.stats.from_snapshot += 1,
                Origin::Fork => self.stats.from_fork += 1,
                Origin::Events => self.stats.from_events += 1,
                Origin::Placeholder => {}
            }
        }
        if e.start.is_none() {
            if let Some(s) = start {
                e.start = Some(s);
                let key = (self.host_ids[&e.host], e.pid, s);
                self.by_start.entry(key).or_insert(i);
            }
        }
    }

    /// The process named by (host, pid, start), created as `origin` when no
    /// known process fits. `index` names the event for warnings.
    fn lookup(&mut self, host: u32, pid: u32, start: Option<i64>, origin: Origin, index: u64) -> u32 {
        let Some(cur) = self.current.get(host, pid) else {
            return self.create(host, pid, start, origin, true);
        };
        let cur_start = self.entities[cur as usize].start;
        if self.same_start(cur_start, start) {
            let placeholder = self.entities[cur as usize].origin == Origin::Placeholder;
            if origin != Origin::Placeholder && (placeholder || (cur_start.is_none() && start.is_some())) {
                self.upgrade(cur, origin, start);
            }
            return cur;
        }
        let start = start.expect("different starts are both known");
        if let Some(&old) = self.by_start.get(&(host, pid, start)) {
            return old;
        }
        if start > cur_start.expect("different starts are both known") {
            // A newer process with this pid whose fork the capture does not hold.
            self.stats.pid_reuses += 1;
            if self.entities[cur as usize].end.is_none() && origin != Origin::Placeholder {
                self.warnings.add(WarningKind::PidReusedWithoutExit, index, pid, || {
                    format!("a process started at {start} took the pid; the previous one has no exit row")
                });
            }
            self.create(host, pid, Some(start), origin, true)
        } else {
            self.warnings.add(WarningKind::StaleStart, index, pid, || {
                format!("start {start} is older than the pid's current process and names no known process")
            });
            self.create(host, pid, Some(start), origin, false)
        }
    }

    fn snapshot(&mut self, host: u32, ev: &ProcessEvent<'_>) -> u32 {
        let before = self.current.get(host, ev.pid);
        let i = self.lookup(host, ev.pid, ev.start, Origin::Snapshot, ev.index);
        let seen = before.is_some_and(|b| self.entities[b as usize].events > 0);
        if seen {
            self.warnings.add(WarningKind::SnapshotAfterEvents, ev.index, ev.pid, || {
                "a snapshot row comes after events of this pid; it only fills what they left unknown".to_string()
            });
        }
        i
    }

    fn fork(&mut self, host: u32, ev: &ProcessEvent<'_>) -> u32 {
        if let Some(cur) = self.current.get(host, ev.pid) {
            let e = &self.entities[cur as usize];
            let placeholder = e.origin == Origin::Placeholder;
            if placeholder && e.start.is_some() && self.same_start(e.start, ev.start) {
                // Named (with this start) as a parent before its own fork row.
                self.upgrade(cur, Origin::Fork, ev.start);
                return cur;
            }
            // A fork always makes a new process: the pid was reused. A
            // placeholder without start (a session or group leader known only
            // by its pid) is an older process that had this pid.
            self.stats.pid_reuses += 1;
            if e.end.is_none() && !placeholder {
                let start = e.start;
                self.warnings.add(WarningKind::PidReusedWithoutExit, ev.index, ev.pid, || {
                    format!("a fork reuses the pid of a process (start {start:?}) that has no exit row")
                });
            }
            if let (Some(a), Some(b)) = (e.start, ev.start) {
                if (a - b).abs() <= self.opts.start_tolerance_ns {
                    self.warnings.add(WarningKind::PidReuseWithinTolerance, ev.index, ev.pid, || {
                        format!(
                            "the pid was reused within {} ns of the previous process's start ({a} vs {b}); \
                             events naming either start go to the newer process",
                            self.opts.start_tolerance_ns
                        )
                    });
                }
            }
        }
        self.create(host, ev.pid, ev.start, Origin::Fork, true)
    }

    fn own_event(&mut self, host: u32, ev: &ProcessEvent<'_>) -> u32 {
        let i = self.lookup(host, ev.pid, ev.start, Origin::Events, ev.index);
        // Other threads may outlive the leader's exit (and exit after it): only
        // the process's own (leader) events after its exit are suspicious.
        if let Some(end) = self.entities[i as usize].end.filter(|_| ev.tid == ev.pid) {
            if ev.time > end || ev.kind == ProcessEventKind::Exit {
                let tid = ev.tid;
                self.warnings.add(WarningKind::EventAfterExit, ev.index, ev.pid, || {
                    format!("an event of thread {tid} at {} comes after the process exited at {end}", ev.time)
                });
            }
        }
        i
    }

    fn exec(&mut self, me: u32, ev: &ProcessEvent<'_>, known: KnownSymbols) {
        self.stats.execs += 1;
        let max = self.opts.max_previous;
        let e = &mut self.entities[me as usize];
        let h = &mut self.hot[me as usize];
        let had_rows = self.arg_rows.as_mut().map(|rows| std::mem::replace(&mut rows[me as usize], vec![ev.index]));
        if max > 0 && (h.exe != UNKNOWN || e.args.is_some() || had_rows.is_some_and(|r| !r.is_empty())) {
            let executable = match self.defer_text {
                true => self.strings.resolve(h.exe, e.executable.take()),
                false => e.executable.take(),
            };
            e.previous.push(PreviousImage { executable, args: e.args.take() });
            if e.previous.len() > max {
                let drop = e.previous.len() - max;
                e.previous.drain(..drop);
                self.stats.previous_dropped += drop as u64;
            }
        }
        // The new image: what the exec row does not say is unknown, not the old value.
        h.exe = ev.exe.map_or(UNKNOWN, |s| known.exe.unwrap_or_else(|| self.strings.get(s)));
        h.name = ev.comm.map_or(UNKNOWN, |s| known.comm.unwrap_or_else(|| self.strings.get(s)));
        e.args = ev.args.map(|a| a.iter().map(|s| s.to_string()).collect());
        if stores_text(self.defer_text, h.exe) {
            e.executable = ev.exe.map(str::to_string);
        }
        if stores_text(self.defer_text, h.name) {
            e.name = ev.comm.map(str::to_string);
        }
    }

    /// Takes the event's values into its process.
    fn observe(&mut self, me: u32, host: u32, ev: &ProcessEvent<'_>, merge: Merge, known: KnownSymbols) {
        let thread = ev.tid != ev.pid;
        let mut lineage_changed = false;
        {
            let e = &mut self.entities[me as usize];
            let h = &mut self.hot[me as usize];
            let strings = &mut self.strings;
            let defer = self.defer_text;
            let image = matches!(ev.kind, ProcessEventKind::Snapshot | ProcessEventKind::Fork) && !thread;
            if ev.kind != ProcessEventKind::Exec {
                // A thread's comm is its own; only the leader's (or a snapshot's) names the process.
                if !thread {
                    set_text(&mut h.name, &mut e.name, (ev.comm, known.comm), merge, strings, defer);
                }
                // The executable changes only by exec; other events fill it in.
                let exe_merge = if image { merge } else { Merge::FillMissing };
                set_text(&mut h.exe, &mut e.executable, (ev.exe, known.exe), exe_merge, strings, defer);
                if image {
                    match &mut self.arg_rows {
                        Some(rows) => {
                            let rows = &mut rows[me as usize];
                            match merge {
                                Merge::Replace => rows.insert(0, ev.index),
                                Merge::FillMissing => rows.push(ev.index),
                            }
                            rows.truncate(MAX_ARG_ROWS);
                        }
                        None => {
                            set_args(&mut e.args, ev.args, merge);
                        }
                    }
                }
            }
            set_text(&mut h.cwd, &mut e.cwd, (ev.cwd, known.cwd), merge, strings, defer);
            set_u32(&mut e.uid, ev.uid, merge);
            set_u32(&mut e.gid, ev.gid, merge);
            set_opt_text(&mut h.tty, &mut e.tty, (ev.tty, known.tty), merge, strings, defer);
            set_u32(&mut e.sid, ev.sid, merge);
            set_u32(&mut e.pgid, ev.pgid, merge);
            lineage_changed |= set_opt_text(
                &mut h.container,
                &mut e.container_id,
                (ev.container_id, known.container),
                merge,
                strings,
                defer,
            );
        }
        if let Some(ppid) = ev.ppid {
            let e = &self.entities[me as usize];
            if merge == Merge::Replace || e.ppid.is_none() {
                lineage_changed |= self.set_parent(me, host, ppid, ev.parent_start, ev.index);
            }
        }
        if lineage_changed {
            self.lineage_changed(me);
        }
    }

    /// After `me`'s parent or container changed: every cached entry leader
    /// may be stale when `me` has descendants; otherwise only its own is.
    fn lineage_changed(&mut self, me: u32) {
        if self.entities[me as usize].has_children {
            self.epoch += 1;
        } else {
            self.hot[me as usize].entry_epoch = NO_EPOCH;
        }
    }

    /// Links `me` to the process `ppid` names; refuses a link that would make
    /// a cycle. Returns whether the link changed.
    fn set_parent(&mut self, me: u32, host: u32, ppid: u32, parent_start: Option<i64>, index: u64) -> bool {
        let e = &self.entities[me as usize];
        let pid = e.pid;
        if ppid == 0 {
            let changed = e.parent.is_some();
            let e = &mut self.entities[me as usize];
            e.ppid = Some(0);
            e.parent = None;
            self.parents[me as usize] = UNKNOWN;
            return changed;
        }
        if let Some(p) = e.parent {
            let p = &self.entities[p.index()];
            if e.ppid == Some(ppid) && self.same_start(p.start, parent_start) {
                return false;
            }
        }
        if ppid == pid {
            self.warnings.add(WarningKind::Cycle, index, pid, || format!("process {pid} names itself as its parent"));
            return false;
        }
        let par = self.lookup(host, ppid, parent_start, Origin::Placeholder, index);
        if par == me {
            return false;
        }
        // Only a process with children can be its new parent's ancestor: a
        // fresh fork skips the walk up the parent's ancestors.
        let check = if self.entities[me as usize].has_children { self.ancestors_contain(par, me) } else { Some(false) };
        match check {
            Some(false) => {}
            Some(true) => {
                self.warnings.add(WarningKind::Cycle, index, pid, || {
                    format!("parent {ppid} descends from process {pid}; the link was not made")
                });
                return false;
            }
            None => {
                let max = self.opts.max_depth;
                self.warnings.add(WarningKind::TooDeep, index, pid, || {
                    format!("the ancestors of parent {ppid} go deeper than {max}; the link was not made")
                });
                return false;
            }
        }
        let e = &mut self.entities[me as usize];
        if e.parent.is_some_and(|old| old.0 != par) {
            self.stats.reparented += 1;
        }
        e.ppid = Some(ppid);
        e.parent = Some(EntityRef(par));
        self.parents[me as usize] = par;
        self.entities[par as usize].has_children = true;
        true
    }

    /// Whether `target` is `from` or one of its ancestors; `None` when the
    /// walk hits the depth bound.
    fn ancestors_contain(&self, from: u32, target: u32) -> Option<bool> {
        let mut cur = from;
        for _ in 0..=self.opts.max_depth {
            if cur == target {
                return Some(true);
            }
            match self.parents[cur as usize] {
                UNKNOWN => return Some(false),
                p => cur = p,
            }
        }
        None
    }

    /// A forked process starts with its parent's image, directory,
    /// credentials, terminal and container where its own row is silent.
    fn inherit(&mut self, me: u32) {
        let Some(parent) = self.entities[me as usize].parent else { return };
        let (me, parent) = (me as usize, parent.index());
        // A process is never its own parent here; if it were, there is nothing to take.
        let (e, p) = match me.cmp(&parent) {
            std::cmp::Ordering::Equal => return,
            std::cmp::Ordering::Less => {
                let (low, high) = self.entities.split_at_mut(parent);
                (&mut low[me], &high[0])
            }
            std::cmp::Ordering::Greater => {
                let (low, high) = self.entities.split_at_mut(me);
                (&mut high[0], &low[parent])
            }
        };
        let ph = self.hot[parent];
        let h = &mut self.hot[me];
        fill_sym(&mut h.name, ph.name, &mut e.name, &p.name);
        fill_sym(&mut h.exe, ph.exe, &mut e.executable, &p.executable);
        fill(&mut e.args, &p.args);
        if let Some(rows) = &mut self.arg_rows {
            if rows[me].len() < MAX_ARG_ROWS {
                let theirs: ArgRows = rows[parent].iter().take(MAX_ARG_ROWS - rows[me].len()).copied().collect();
                rows[me].extend(theirs);
            }
        }
        fill_sym(&mut h.cwd, ph.cwd, &mut e.cwd, &p.cwd);
        fill(&mut e.uid, &p.uid);
        fill(&mut e.gid, &p.gid);
        fill_sym(&mut h.tty, ph.tty, &mut e.tty, &p.tty);
        if fill_sym(&mut h.container, ph.container, &mut e.container_id, &p.container_id) {
            self.lineage_changed(me as u32);
        }
    }

    /// The process a session or group id names: the pid's current process,
    /// or a placeholder for it.
    fn leader(&mut self, host: u32, me: u32, id: Option<u32>, index: u64) -> Option<EntityRef> {
        let id = id?;
        if id == 0 {
            return None;
        }
        if id == self.entities[me as usize].pid {
            return Some(EntityRef(me));
        }
        Some(EntityRef(self.lookup(host, id, None, Origin::Placeholder, index)))
    }

    /// The event's links (`None` without `want`). The leaders are looked up
    /// either way: a look-up may make a placeholder the capture's later
    /// events refer to.
    fn links(&mut self, me: u32, host: u32, thread: bool, index: u64, want: bool) -> Option<EventLinks> {
        let e = &self.entities[me as usize];
        let (parent, sid, pgid) = (e.parent, e.sid, e.pgid);
        let session_leader = self.leader(host, me, sid, index);
        let group_leader = self.leader(host, me, pgid, index);
        if !want {
            return None;
        }
        let entry_leader = self.entry_leader(me, index);
        let entry_type = match entry_leader {
            Some(_) if !matches!(self.hot[me as usize].container, UNKNOWN | NOTHING) => Some(EntryType::Container),
            _ => None,
        };
        Some(EventLinks {
            process: EntityRef(me),
            thread,
            parent,
            session_leader,
            group_leader,
            entry_leader,
            entry_type,
        })
    }

    /// The entry leader of `me` (see `docs/processes.md`): the topmost
    /// ancestor in the same container (or, on the host, the topmost
    /// ancestor below init), when every step of the way is known and the
    /// walk there takes at most [`ProcessTableOptions::max_depth`] steps.
    ///
    /// Answers are cached per process until a lineage changes (the epoch):
    /// a walk caches its answer for every process it passed (they share it,
    /// each with its own number of steps) and stops at a process whose
    /// answer is cached, so a capture's events cost a step each between
    /// changes however deep the tree, with the answers (depth bound
    /// included) of a walk without cache.
    fn entry_leader(&mut self, me: u32, index: u64) -> Option<EntityRef> {
        let h = &self.hot[me as usize];
        if h.entry_epoch == self.epoch {
            return (h.entry != NO_ENTRY).then_some(EntityRef(h.entry));
        }
        let mut path = std::mem::take(&mut self.walk_path);
        path.clear();
        let epoch = self.epoch;
        match self.walk_entry(me, &mut path) {
            Some((answer, step)) => {
                let entry = answer.map_or(NO_ENTRY, |r| r.0);
                // `path[t]` is `t` steps above `me`: its walk ends `t` steps sooner.
                for (t, &n) in path.iter().enumerate() {
                    let h = &mut self.hot[n as usize];
                    (h.entry_epoch, h.entry, h.entry_step) = (epoch, entry, step.saturating_sub(t as u32));
                }
                self.walk_path = path;
                answer
            }
            None => {
                let h = &mut self.hot[me as usize];
                (h.entry_epoch, h.entry, h.entry_step) = (epoch, NO_ENTRY, TOO_DEEP);
                self.walk_path = path;
                let max = self.opts.max_depth;
                let pid = self.entities[me as usize].pid;
                self.warnings.add(WarningKind::TooDeep, index, pid, || {
                    format!("the entry-leader walk went deeper than {max} ancestors; no entry leader")
                });
                None
            }
        }
    }

    /// Walks up from `me` for [`ProcessTable::entry_leader`], pushing onto
    /// `path` the processes it passes whose answer is the walk's. Returns
    /// the answer and the step (0: the first) that found it, or `None`
    /// when the walk goes past the depth bound.
    fn walk_entry(&self, me: u32, path: &mut Vec<u32>) -> Option<(Option<EntityRef>, u32)> {
        let e = &self.hot[me as usize];
        let place = e.container;
        path.push(me);
        if place == UNKNOWN {
            return Some((None, 0));
        }
        if e.pid == 1 {
            return Some((Some(EntityRef(me)), 0));
        }
        let max = u32::try_from(self.opts.max_depth).unwrap_or(u32::MAX - 1);
        let mut cur = me;
        for step in 0..max {
            let parent = self.parents[cur as usize];
            if parent == UNKNOWN {
                // Without a parent link, only a known root (ppid 0) ends the walk.
                return Some(((self.entities[cur as usize].ppid == Some(0)).then_some(EntityRef(cur)), step));
            }
            let p = &self.hot[parent as usize];
            if p.pid <= 1 {
                // The host's init (or the idle task) is never in a container.
                return Some((Some(EntityRef(cur)), step));
            }
            let same = p.container == place
                && (place != SHARED
                    || self.entities[parent as usize].container_id == self.entities[me as usize].container_id);
            match p.container {
                UNKNOWN => return Some((None, step)),
                _ if same => {
                    // The parent is in the same place: its walk is the rest
                    // of this one, so its cached answer is this walk's, found
                    // `step + 1` steps later than the parent found it.
                    if p.entry_epoch == self.epoch {
                        let end = (step + 1).saturating_add(p.entry_step);
                        return (end < max).then_some(((p.entry != NO_ENTRY).then_some(EntityRef(p.entry)), end));
                    }
                    cur = parent;
                    path.push(cur);
                }
                _ => return Some((Some(EntityRef(cur)), step)),
            }
        }
        None
    }
}

/// The byte ranges of an [`Entity`] that a push reads or writes for every
/// event (its own process's: start and end, ids, parent link, counters,
/// origin; its parent's start), wherever the compiler laid the fields out:
/// the text fields between them are not touched per event (the context's
/// table defers them), so two spans instead of the whole record.
const PUSH_READS: [(usize, usize); 2] = {
    use std::mem::{offset_of, size_of};
    const fn span(fields: &[(usize, usize)]) -> (usize, usize) {
        let (mut lo, mut hi, mut k) = (usize::MAX, 0, 0);
        while k < fields.len() {
            let (at, len) = fields[k];
            if at < lo {
                lo = at;
            }
            if at + len > hi {
                hi = at + len;
            }
            k += 1;
        }
        (lo, hi)
    }
    [
        span(&[
            (offset_of!(Entity, start), size_of::<Option<i64>>()),
            (offset_of!(Entity, end), size_of::<Option<i64>>()),
        ]),
        span(&[
            (offset_of!(Entity, pid), size_of::<u32>()),
            (offset_of!(Entity, uid), size_of::<Option<u32>>()),
            (offset_of!(Entity, gid), size_of::<Option<u32>>()),
            (offset_of!(Entity, ppid), size_of::<Option<u32>>()),
            (offset_of!(Entity, sid), size_of::<Option<u32>>()),
            (offset_of!(Entity, pgid), size_of::<Option<u32>>()),
            (offset_of!(Entity, parent), size_of::<Option<EntityRef>>()),
            (offset_of!(Entity, origin), size_of::<Origin>()),
            (offset_of!(Entity, events), size_of::<u64>()),
            (offset_of!(Entity, has_children), size_of::<bool>()),
        ]),
    ]
};

/// A hint to load the cache line at `p` (x86-64 only; elsewhere nothing).
#[inline(always)]
fn prefetch_read(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and reads nothing the program sees,
    // whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Takes `theirs` where `mine` is not known.
fn fill<T: Clone>(mine: &mut Option<T>, theirs: &Option<T>) {
    if mine.is_none() {
        mine.clone_from(theirs);
    }
}

/// [`fill`] for a value kept as a symbol and as text; returns whether it took theirs.
fn fill_sym<T: Clone>(sym: &mut u32, their_sym: u32, mine: &mut Option<T>, theirs: &Option<T>) -> bool {
    if *sym != UNKNOWN || their_sym == UNKNOWN {
        return false;
    }
    *sym = their_sym;
    mine.clone_from(theirs);
    true
}
