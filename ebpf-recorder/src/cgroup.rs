//! Container ids from cgroup ids.
//!
//! The kernel side records each task's cgroup v2 id (`bpf_get_current_cgroup_id`),
//! which is the inode number of the cgroup's directory in the cgroup2
//! filesystem, and with the first record of each id the cgroup's directory
//! names, which user space hands to [`CgroupResolver::learn`]: that answer
//! needs no lookup and holds even for a cgroup removed a moment later. For
//! ids without a usable name (the record that carried it was lost, or the
//! kernel cut it above any container level), [`CgroupResolver`] finds the
//! cgroup2 mount in `/proc/mounts` and walks it to map ids to paths. Either
//! way it takes the container id from the path the way Tracee does: the
//! innermost component named `docker-<id>.scope`, `crio-<id>.scope`,
//! `cri-containerd-<id>.scope`, `libpod-<id>.scope` or a bare `<id>`, where
//! `<id>` is 64 lowercase hex digits.
//!
//! Results are cached. An id not in the cache triggers a rescan when the
//! event is newer than the last scan (the cgroup was created after it); an id
//! still missing from a scan that started after its event belongs to a cgroup
//! that is already gone: [`Resolution::Gone`], for good. Its events are kept
//! without a container id (never dropped as a host's, even with
//! `--containers-only`), and the summary counts them.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Prefixes of container scopes, as container runtimes name them under systemd.
pub const CONTAINER_PREFIXES: [&str; 4] = ["docker-", "crio-", "cri-containerd-", "libpod-"];

/// Directories visited per scan at most (a guard against pathological trees).
const MAX_SCAN_DIRS: usize = 200_000;

/// Scans of one unknown id after which it is given up on.
const MAX_SCANS_PER_ID: u32 = 3;

/// Where the cgroup2 filesystem is mounted, from the text of `/proc/mounts`.
/// Prefers `/sys/fs/cgroup` (unified hierarchy) over other mounts such as the
/// hybrid layout's `/sys/fs/cgroup/unified`.
pub fn find_cgroup2_mount(proc_mounts: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = Vec::new();
    for line in proc_mounts.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (_src, target, fstype) = match (fields.next(), fields.next(), fields.next()) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
            _ => continue,
        };
        if fstype == "cgroup2" {
            found.push(PathBuf::from(unescape_mount_field(target)));
        }
    }
    found.iter().find(|p| p.as_path() == Path::new("/sys/fs/cgroup")).cloned().or_else(|| found.into_iter().next())
}

/// `/proc/mounts` escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape_mount_field(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') as u32 * 64 + (b[i + 2] - b'0') as u32 * 8 + (b[i + 3] - b'0') as u32;
            if let Ok(v) = u8::try_from(v) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_container_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// The container id named by one cgroup directory name, if any.
pub fn container_id_from_name(name: &str) -> Option<&str> {
    let stem = name.strip_suffix(".scope").unwrap_or(name);
    for p in CONTAINER_PREFIXES {
        if let Some(id) = stem.strip_prefix(p) {
            if is_container_hex(id) {
                return Some(id);
            }
        }
    }
    if is_container_hex(stem) {
        return Some(stem);
    }
    None
}

/// The container id of a cgroup path: its innermost component that names one.
pub fn container_id_from_path(path: &str) -> Option<&str> {
    path.rsplit('/').find_map(container_id_from_name)
}

/// What a cgroup id resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The cgroup belongs to this container.
    Container(Arc<str>),
    /// The cgroup exists (or existed) and is not a container's.
    Host,
    /// Not found yet; may resolve on a later event.
    Pending,
    /// The cgroup was already gone when it was looked up: whether it was a
    /// container's is unknown. Its events are kept (also with
    /// `--containers-only`), without a container id.
    Gone,
}

/// Counters for the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResolverStats {
    /// Walks of the cgroup2 tree.
    pub scans: u64,
    /// Distinct cgroup ids seen in events.
    pub ids_seen: u64,
    /// Ids that were never found in the tree (cgroup gone before a scan).
    pub unresolved: u64,
    /// Ids whose path came from the kernel with their first event.
    pub from_kernel: u64,
}

/// Maps cgroup ids to container ids (see the module docs).
#[derive(Debug)]
pub struct CgroupResolver {
    root: Option<PathBuf>,
    /// Everything the last scans saw: id -> container id (None: host cgroup).
    tree: HashMap<u64, Option<Arc<str>>>,
    /// Final answers for ids events have asked about.
    answers: HashMap<u64, Option<Arc<str>>>,
    /// Ids of cgroups that were gone before a scan could find them.
    gone: HashSet<u64>,
    /// Unknown ids and how many scans have missed them.
    misses: HashMap<u64, u32>,
    /// When (boot clock ns) the last scan started.
    last_scan_ns: Option<u64>,
    stats: ResolverStats,
}

impl CgroupResolver {
    /// A resolver over the cgroup2 tree at `root` (None: no cgroup2 mount, nothing resolves).
    pub fn new(root: Option<PathBuf>) -> Self {
        CgroupResolver {
            root,
            tree: HashMap::new(),
            answers: HashMap::new(),
            gone: HashSet::new(),
            misses: HashMap::new(),
            last_scan_ns: None,
            stats: ResolverStats::default(),
        }
    }

    /// The cgroup2 mount in use.
    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// Counters so far.
    pub fn stats(&self) -> ResolverStats {
        self.stats
    }

    /// Records what the kernel said cgroup `id` is: its `path` below the
    /// cgroup2 root, cut to its innermost levels when `truncated`. A path
    /// that names a container is final; an untruncated one that does not is a
    /// host cgroup; a truncated one without a container level says nothing
    /// (a container level could be above the cut), so `id` is looked up as
    /// before. An id already answered keeps its answer.
    pub fn learn(&mut self, id: u64, path: &str, truncated: bool) {
        if self.answers.contains_key(&id) {
            return;
        }
        let answer = match container_id_from_path(path) {
            Some(c) => Some(Arc::<str>::from(c)),
            None if !truncated => None,
            None => return,
        };
        self.stats.from_kernel += 1;
        if self.gone.remove(&id) {
            // Already counted as seen, by an event that asked before the
            // names arrived (the record that carried them first was lost).
            self.stats.unresolved -= 1;
        } else {
            self.stats.ids_seen += 1;
        }
        self.misses.remove(&id);
        self.answers.insert(id, answer);
    }

    /// Resolves `id` for an event that happened at `event_ns`; `now_ns` is the
    /// current time on the same clock (CLOCK_BOOTTIME).
    pub fn resolve(&mut self, id: u64, event_ns: u64, now_ns: impl FnOnce() -> u64) -> Resolution {
        if let Some(a) = self.answers.get(&id) {
            return to_resolution(a);
        }
        if self.gone.contains(&id) {
            return Resolution::Gone;
        }
        if self.root.is_none() {
            self.answers.insert(id, None);
            self.stats.ids_seen += 1;
            return Resolution::Host;
        }
        if let Some(a) = self.tree.get(&id).cloned() {
            self.stats.ids_seen += 1;
            let r = to_resolution(&a);
            self.answers.insert(id, a);
            return r;
        }
        // Not in the tree as last scanned. Rescan unless that scan already
        // started after the event (then the cgroup is gone).
        let stale = self.last_scan_ns.is_none_or(|t| t <= event_ns);
        let misses = self.misses.entry(id).or_insert(0);
        if stale && *misses < MAX_SCANS_PER_ID {
            *misses += 1;
            self.scan(now_ns());
            if let Some(a) = self.tree.get(&id).cloned() {
                self.misses.remove(&id);
                self.stats.ids_seen += 1;
                let r = to_resolution(&a);
                self.answers.insert(id, a);
                return r;
            }
            if self.last_scan_ns.is_some_and(|t| t <= event_ns) {
                return Resolution::Pending;
            }
        }
        // The last scan started after the event and did not find the cgroup.
        self.misses.remove(&id);
        self.stats.ids_seen += 1;
        self.stats.unresolved += 1;
        self.gone.insert(id);
        Resolution::Gone
    }

    /// Walks the whole tree again (new cgroups are added, nothing is forgotten:
    /// cgroup ids are never reused).
    fn scan(&mut self, now_ns: u64) {
        let Some(root) = self.root.clone() else { return };
        self.last_scan_ns = Some(now_ns);
        self.stats.scans += 1;
        let mut stack: Vec<(PathBuf, String)> = vec![(root, String::new())];
        let mut visited = 0usize;
        while let Some((dir, rel)) = stack.pop() {
            visited += 1;
            if visited > MAX_SCAN_DIRS {
                break;
            }
            let Ok(meta) = std::fs::metadata(&dir) else { continue };
            let id = meta.ino();
            self.tree.entry(id).or_insert_with(|| container_id_from_path(&rel).map(Arc::<str>::from));
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let child_rel = if rel.is_empty() { name } else { format!("{rel}/{name}") };
                    stack.push((entry.path(), child_rel));
                }
            }
        }
    }
}

fn to_resolution(a: &Option<Arc<str>>) -> Resolution {
    match a {
        Some(c) => Resolution::Container(c.clone()),
        None => Resolution::Host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "48c9dfca9bda9dfa36f83121c6185b99f99f5280628b35a906477e79d29c31ad";

    #[test]
    fn finds_the_cgroup2_mount() {
        let hybrid = "cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0\n\
                      cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n";
        assert_eq!(find_cgroup2_mount(hybrid), Some(PathBuf::from("/sys/fs/cgroup/unified")));
        let unified = "cgroup2 /run/other cgroup2 rw 0 0\ncgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n";
        assert_eq!(find_cgroup2_mount(unified), Some(PathBuf::from("/sys/fs/cgroup")));
        assert_eq!(find_cgroup2_mount("cgroup2 /mnt/with\\040space cgroup2 rw 0 0"), Some("/mnt/with space".into()));
        assert_eq!(find_cgroup2_mount("tmpfs /tmp tmpfs rw 0 0\n"), None);
    }

    #[test]
    fn container_id_patterns() {
        for name in [
            format!("docker-{HEX}.scope"),
            format!("crio-{HEX}.scope"),
            format!("cri-containerd-{HEX}.scope"),
            format!("libpod-{HEX}.scope"),
            HEX.to_string(),
        ] {
            assert_eq!(container_id_from_name(&name), Some(HEX), "{name}");
        }
        for name in [
            format!("crio-conmon-{HEX}.scope"),
            format!("docker-{}.scope", &HEX[..63]),
            HEX.to_uppercase(),
            "kubepods.slice".to_string(),
            "init.scope".to_string(),
        ] {
            assert_eq!(container_id_from_name(&name), None, "{name}");
        }
        let nested = format!("kubepods.slice/kubepods-pod1.slice/cri-containerd-{HEX}.scope/init.scope");
        assert_eq!(container_id_from_path(&nested), Some(HEX));
        assert_eq!(container_id_from_path(&format!("kubepods/besteffort/podabc/{HEX}")), Some(HEX));
        assert_eq!(container_id_from_path("system.slice/containerd.service"), None);
        assert_eq!(container_id_from_path(""), None);
    }

    #[test]
    fn resolves_from_a_tree_and_rescans_for_new_cgroups() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("system.slice/ssh.service")).unwrap();
        let mut r = CgroupResolver::new(Some(root.to_owned()));
        let ino = |p: &str| std::fs::metadata(root.join(p)).unwrap().ino();

        assert_eq!(r.resolve(ino("system.slice/ssh.service"), 10, || 20), Resolution::Host);
        assert_eq!(r.stats().scans, 1);

        // A container cgroup created after the first scan, with an event after it.
        let pod = format!("kubepods.slice/cri-containerd-{HEX}.scope");
        std::fs::create_dir_all(root.join(&pod)).unwrap();
        assert_eq!(r.resolve(ino(&pod), 30, || 40), Resolution::Container(HEX.into()));
        assert_eq!(r.stats().scans, 2);
        // Cached: no more scans.
        assert_eq!(r.resolve(ino(&pod), 50, || 60), Resolution::Container(HEX.into()));
        assert_eq!(r.stats().scans, 2);

        // An id that no scan finds, for an event older than the last scan: gone, no rescan.
        assert_eq!(r.resolve(999_999_999, 35, || 70), Resolution::Gone);
        assert_eq!(r.stats().scans, 2);
        assert_eq!(r.stats().unresolved, 1);
        // Cached as gone: no rescan, not counted twice, never taken for a host cgroup.
        assert_eq!(r.resolve(999_999_999, 80, || 90), Resolution::Gone);
        assert_eq!(r.stats().scans, 2);
        assert_eq!(r.stats().unresolved, 1);

        // An unknown id from an event newer than the last scan: rescan, then pending.
        assert_eq!(r.resolve(888_888_888, 100, || 100), Resolution::Pending);
        assert_eq!(r.stats().scans, 3);
    }

    #[test]
    fn names_from_the_kernel_answer_without_a_scan() {
        // A tree without these cgroups: they are gone (or were never visible).
        let dir = tempfile::tempdir().unwrap();
        let mut r = CgroupResolver::new(Some(dir.path().to_owned()));
        let pod = format!("kubepods.slice/kubepods-besteffort.slice/cri-containerd-{HEX}.scope");
        r.learn(11, &pod, false);
        r.learn(12, "system.slice/ssh.service", false);
        r.learn(13, "", false); // the root cgroup
        assert_eq!(r.resolve(11, 5, || 6), Resolution::Container(HEX.into()));
        assert_eq!(r.resolve(12, 5, || 6), Resolution::Host);
        assert_eq!(r.resolve(13, 5, || 6), Resolution::Host);
        assert_eq!(r.stats(), ResolverStats { scans: 0, ids_seen: 3, unresolved: 0, from_kernel: 3 });

        // Cut by the kernel above a container level: still a container.
        r.learn(14, &format!("cri-containerd-{HEX}.scope/a/b"), true);
        assert_eq!(r.resolve(14, 5, || 6), Resolution::Container(HEX.into()));
        // Cut without a container level: no verdict, so it is looked up (and
        // not found here: gone, never a host's).
        r.learn(15, "a/b/c", true);
        assert_eq!(r.resolve(15, 5, || 6), Resolution::Gone);
        assert_eq!(r.stats().scans, 1);

        // Names that arrive after the id was given up on replace "gone".
        assert_eq!(r.resolve(16, 5, || 6), Resolution::Gone);
        assert_eq!(r.stats().unresolved, 2);
        r.learn(16, &pod, false);
        assert_eq!(r.resolve(16, 7, || 8), Resolution::Container(HEX.into()));
        assert_eq!(r.stats().unresolved, 1);
        // A known answer is not changed by later names.
        r.learn(12, &pod, false);
        assert_eq!(r.resolve(12, 9, || 10), Resolution::Host);
    }

    #[test]
    fn without_a_cgroup2_mount_nothing_is_a_container() {
        let mut r = CgroupResolver::new(None);
        assert_eq!(r.resolve(1234, 1, || 2), Resolution::Host);
        assert_eq!(r.stats().scans, 0);
    }
}
