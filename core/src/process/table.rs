//! The [`ProcessTable`] itself: identity, lineage and leaders.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

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

/// A fast hasher for the table's small integer keys (pids, host numbers,
/// starts): a multiply-rotate mix per word. The keys come from the capture,
/// but a collision only costs time, and an attacker who can write the
/// capture can already make it as large as they like.
#[derive(Default, Clone, Copy)]
struct IntHasher(u64);

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type IntMap<K, V> = HashMap<K, V, BuildHasherDefault<IntHasher>>;

/// Processes rebuilt from a capture's events, fed in capture order (see the
/// [module documentation](super)).
#[derive(Debug, Clone)]
pub struct ProcessTable {
    opts: ProcessTableOptions,
    entities: Vec<Entity>,
    hosts: Vec<Arc<str>>,
    host_ids: HashMap<Arc<str>, u32>,
    /// The process a (host, pid) names now: the newest one met.
    current: IntMap<(u32, u32), u32>,
    /// Processes with a known start, by (host, pid, start).
    by_start: IntMap<(u32, u32, i64), u32>,
    /// How many entities took each id text, for the `#N` suffix.
    id_uses: HashMap<String, u32>,
    /// Bumped whenever a parent link or a container changes: entry-leader
    /// answers cached before that are stale.
    epoch: u64,
    last_time: Option<i64>,
    warnings: Warnings,
    stats: ProcessStats,
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

fn set_str(slot: &mut Option<String>, value: Option<&str>, merge: Merge) -> bool {
    set(slot, value, merge, |a, b| a == b, str::to_string)
}

fn set_u32(slot: &mut Option<u32>, value: Option<u32>, merge: Merge) -> bool {
    set(slot, value, merge, |a, b| a == b, |v| v)
}

/// For the terminal and the container: the outer `Option` is "known", the inner the value.
fn set_opt_str(slot: &mut Option<Option<String>>, value: Option<Option<&str>>, merge: Merge) -> bool {
    set(slot, value, merge, |a, b| a.as_deref() == *b, |v| v.map(str::to_string))
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
            hosts: Vec::new(),
            host_ids: HashMap::new(),
            current: IntMap::default(),
            by_start: IntMap::default(),
            id_uses: HashMap::new(),
            epoch: 0,
            last_time: None,
            warnings: Warnings::new(opts.max_warning_examples),
            stats: ProcessStats::default(),
        }
    }

    /// Every process entity, in the order the table met them.
    pub fn entities(&self) -> &[Entity] {
        &self.entities
    }

    /// One entity.
    pub fn entity(&self, r: EntityRef) -> &Entity {
        &self.entities[r.index()]
    }

    /// The process a pid names now on a host (the newest one met), if any.
    pub fn current(&self, host: &str, pid: u32) -> Option<EntityRef> {
        let h = *self.host_ids.get(host)?;
        self.current.get(&(h, pid)).map(|&i| EntityRef(i))
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
        if ev.kind == ProcessEventKind::Container {
            return None;
        }
        self.stats.events += 1;
        match self.last_time {
            Some(last) if ev.time < last => {
                self.warnings.add(WarningKind::TimeWentBackwards, ev.index, ev.pid, || {
                    format!("time {} is earlier than the previous event's {last}", ev.time)
                });
            }
            _ => self.last_time = Some(ev.time),
        }
        let host = self.intern_host(ev.host);
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
            ProcessEventKind::Exec => self.exec(me, ev),
            ProcessEventKind::Fork if thread => self.stats.thread_forks += 1,
            _ => {}
        }
        let merge = if ev.kind == ProcessEventKind::Snapshot && self.entities[me as usize].events > 0 {
            Merge::FillMissing
        } else {
            Merge::Replace
        };
        self.observe(me, host, ev, merge);
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
        Some(self.links(me, host, thread, ev.index))
    }

    fn intern_host(&mut self, host: &str) -> u32 {
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
            entry_cache: None,
            has_children: false,
        });
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
            self.current.insert((host, pid), i);
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
        let Some(&cur) = self.current.get(&(host, pid)) else {
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
        let before = self.current.get(&(host, ev.pid)).copied();
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
        if let Some(&cur) = self.current.get(&(host, ev.pid)) {
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

    fn exec(&mut self, me: u32, ev: &ProcessEvent<'_>) {
        self.stats.execs += 1;
        let max = self.opts.max_previous;
        let e = &mut self.entities[me as usize];
        if e.executable.is_some() || e.args.is_some() {
            e.previous.push(PreviousImage { executable: e.executable.take(), args: e.args.take() });
            if e.previous.len() > max {
                let drop = e.previous.len() - max;
                e.previous.drain(..drop);
                self.stats.previous_dropped += drop as u64;
            }
        }
        // The new image: what the exec row does not say is unknown, not the old value.
        e.executable = ev.exe.map(str::to_string);
        e.args = ev.args.map(|a| a.iter().map(|s| s.to_string()).collect());
        e.name = ev.comm.map(str::to_string);
    }

    /// Takes the event's values into its process.
    fn observe(&mut self, me: u32, host: u32, ev: &ProcessEvent<'_>, merge: Merge) {
        let thread = ev.tid != ev.pid;
        let mut lineage_changed = false;
        {
            let e = &mut self.entities[me as usize];
            let image = matches!(ev.kind, ProcessEventKind::Snapshot | ProcessEventKind::Fork) && !thread;
            if ev.kind != ProcessEventKind::Exec {
                // A thread's comm is its own; only the leader's (or a snapshot's) names the process.
                if !thread {
                    set_str(&mut e.name, ev.comm, merge);
                }
                // The executable changes only by exec; other events fill it in.
                let exe_merge = if image { merge } else { Merge::FillMissing };
                set_str(&mut e.executable, ev.exe, exe_merge);
                if image {
                    set_args(&mut e.args, ev.args, merge);
                }
            }
            set_str(&mut e.cwd, ev.cwd, merge);
            set_u32(&mut e.uid, ev.uid, merge);
            set_u32(&mut e.gid, ev.gid, merge);
            set_opt_str(&mut e.tty, ev.tty, merge);
            set_u32(&mut e.sid, ev.sid, merge);
            set_u32(&mut e.pgid, ev.pgid, merge);
            lineage_changed |= set_opt_str(&mut e.container_id, ev.container_id, merge);
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
            self.entities[me as usize].entry_cache = None;
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
            match self.entities[cur as usize].parent {
                Some(p) => cur = p.0,
                None => return Some(false),
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
        fill(&mut e.name, &p.name);
        fill(&mut e.executable, &p.executable);
        fill(&mut e.args, &p.args);
        fill(&mut e.cwd, &p.cwd);
        fill(&mut e.uid, &p.uid);
        fill(&mut e.gid, &p.gid);
        fill(&mut e.tty, &p.tty);
        if e.container_id.is_none() && p.container_id.is_some() {
            e.container_id.clone_from(&p.container_id);
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

    fn links(&mut self, me: u32, host: u32, thread: bool, index: u64) -> EventLinks {
        let e = &self.entities[me as usize];
        let (parent, sid, pgid) = (e.parent, e.sid, e.pgid);
        let session_leader = self.leader(host, me, sid, index);
        let group_leader = self.leader(host, me, pgid, index);
        let entry_leader = self.entry_leader(me, index);
        let entry_type = match entry_leader {
            Some(_) if self.entities[me as usize].container().is_some() => Some(EntryType::Container),
            _ => None,
        };
        EventLinks { process: EntityRef(me), thread, parent, session_leader, group_leader, entry_leader, entry_type }
    }

    /// The entry leader of `me` (see `docs/processes.md`): the topmost
    /// ancestor in the same container (or, on the host, the topmost
    /// ancestor below init), when every step of the way is known.
    fn entry_leader(&mut self, me: u32, index: u64) -> Option<EntityRef> {
        if let Some((epoch, answer)) = self.entities[me as usize].entry_cache {
            if epoch == self.epoch {
                return answer;
            }
        }
        let answer = self.walk_entry(me, index);
        self.entities[me as usize].entry_cache = Some((self.epoch, answer));
        answer
    }

    fn walk_entry(&mut self, me: u32, index: u64) -> Option<EntityRef> {
        let e = &self.entities[me as usize];
        let place = e.container_id.as_ref()?;
        if e.pid == 1 {
            return Some(EntityRef(me));
        }
        let mut cur = me;
        for _ in 0..self.opts.max_depth {
            let c = &self.entities[cur as usize];
            let Some(p) = c.parent else {
                // Without a parent link, only a known root (ppid 0) ends the walk.
                return (c.ppid == Some(0)).then_some(EntityRef(cur));
            };
            let p = &self.entities[p.index()];
            if p.pid <= 1 {
                // The host's init (or the idle task) is never in a container.
                return Some(EntityRef(cur));
            }
            match &p.container_id {
                None => return None,
                Some(pc) if pc == place => cur = c.parent.expect("checked above").0,
                Some(_) => return Some(EntityRef(cur)),
            }
        }
        let max = self.opts.max_depth;
        let pid = self.entities[me as usize].pid;
        self.warnings.add(WarningKind::TooDeep, index, pid, || {
            format!("the entry-leader walk went deeper than {max} ancestors; no entry leader")
        });
        None
    }
}

/// Takes `theirs` where `mine` is not known.
fn fill<T: Clone>(mine: &mut Option<T>, theirs: &Option<T>) {
    if mine.is_none() {
        mine.clone_from(theirs);
    }
}
