//! What the recorder needs from the machine: the preflight checks before
//! loading (each error names what is missing and how to grant it, on a node
//! and in a pod), tracefs, clocks, host identity, and dropping capabilities
//! after attaching.

use std::ffi::{CStr, CString};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use caps::{CapSet, Capability, CapsHashSet};

/// Where the kernel publishes its BTF.
pub const BTF_PATH: &str = "/sys/kernel/btf/vmlinux";
/// Where tracefs is mounted on current systems (libbpf looks here first).
pub const TRACEFS: &str = "/sys/kernel/tracing";
/// Where older systems have it.
pub const TRACEFS_DEBUGFS: &str = "/sys/kernel/debug/tracing";

/// Fails unless the effective uid is 0.
pub fn require_root() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("tokenscan-record must run as root: it loads eBPF programs into the kernel (try sudo)");
    }
    Ok(())
}

/// Fails unless the kernel has BTF (needed for CO-RE relocations), telling
/// apart a kernel without BTF from a container without the host's `/sys`.
pub fn require_btf() -> Result<()> {
    if Path::new(BTF_PATH).exists() {
        return Ok(());
    }
    if !Path::new("/sys/kernel").is_dir() {
        bail!(
            "{BTF_PATH} is missing because /sys is not mounted here: the recorder needs the kernel's BTF; in a pod \
             mount the host's /sys/kernel/btf read-only (hostPath /sys/kernel/btf at /sys/kernel/btf, as \
             deploy/tokenscan-recorder.yaml does), in a container bind-mount it read-only"
        );
    }
    bail!(
        "this kernel has no BTF ({BTF_PATH} is missing): tokenscan-record needs a kernel built with \
         CONFIG_DEBUG_INFO_BTF=y (most distributions since 2020; kernel 5.8 or later)"
    );
}

/// The inode number of the kernel's initial PID namespace
/// (`PROC_PID_INIT_INO` in the kernel's `include/linux/proc_ns.h`, fixed since 3.8).
pub const INIT_PID_NS_INO: u64 = 0xEFFF_FFFC;

/// Fails unless this process is in the host's PID namespace, which here
/// means the kernel's initial one: the eBPF programs see process ids as the
/// initial namespace numbers them, and the recorder must find itself (to
/// skip its own events) and the processes it records under the same ids in
/// `/proc`. A `hostPID` pod on a node that is itself a container (kind, a
/// node in Docker) shares that container's namespace, not the initial one,
/// and is refused too.
pub fn require_host_pid_namespace() -> Result<()> {
    let ino = std::fs::metadata("/proc/self/ns/pid").map(|m| m.ino()).map_err(|e| {
        anyhow::anyhow!(
            "cannot read /proc/self/ns/pid ({e}): the recorder needs /proc of the host's PID namespace; in a \
             pod set hostPID: true, in a container mount proc with the host's PID namespace shared"
        )
    })?;
    host_pid_namespace_verdict(ino)
}

/// The verdict of [`require_host_pid_namespace`] for the inode of `/proc/self/ns/pid`.
pub fn host_pid_namespace_verdict(ino: u64) -> Result<()> {
    if ino == INIT_PID_NS_INO {
        return Ok(());
    }
    bail!(
        "tokenscan-record is not in the host's PID namespace (its /proc/self/ns/pid is pid:[{ino}], the host's \
         is pid:[{INIT_PID_NS_INO}]): the kernel reports process ids as the host numbers them, so the recorder \
         could not recognize its own events nor read the recorded processes in /proc; in a pod set \
         hostPID: true (deploy/tokenscan-recorder.yaml does), with docker use --pid=host, with runc remove the \
         pid namespace from config.json; on a node that is itself a container (kind) run it on the real host"
    );
}

/// The inode number of the kernel's initial UTS namespace (`PROC_UTS_INIT_INO`).
pub const INIT_UTS_NS_INO: u64 = 0xEFFF_FFFE;

/// A warning when this process has its own UTS namespace (a pod without
/// `hostNetwork`): its host name `uts_host` is then the pod's, not the node's.
pub fn uts_warning(uts_host: &str) -> Option<String> {
    let ino = std::fs::metadata("/proc/self/ns/uts").ok()?.ino();
    uts_verdict(ino, uts_host)
}

/// The verdict of [`uts_warning`] for the inode of `/proc/self/ns/uts`.
pub fn uts_verdict(ino: u64, uts_host: &str) -> Option<String> {
    (ino != INIT_UTS_NS_INO).then(|| {
        format!(
            "this process has its own UTS namespace, so its host name {uts_host:?} is probably a pod's or a \
             container's, not the node's; events are recorded with it; give the node's name with --hostname \
             (deploy/tokenscan-recorder.yaml passes spec.nodeName)"
        )
    })
}

/// The capabilities the recorder needs, judged from its effective set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapCheck {
    /// Missing and required: the programs cannot be loaded or attached without them.
    pub missing: Vec<(Capability, &'static str)>,
    /// Missing and useful: recording works, with less process information.
    pub degraded: Vec<(Capability, &'static str)>,
}

/// What the recorder uses each capability for.
const WHY_BPF: &str = "it loads the eBPF programs and creates their maps";
const WHY_PERFMON: &str = "it attaches the programs to tracepoints and lets them read kernel memory";
const WHY_SYS_ADMIN_OLD: &str = "this kernel has no CAP_BPF and CAP_PERFMON (before 5.8): loading and attaching \
                                 eBPF programs needs CAP_SYS_ADMIN";
const WHY_SYS_PTRACE: &str = "it reads the executable and working directory of running processes with more \
                              capabilities than the recorder (most node daemons) from /proc, and a container's \
                              files through /proc/PID/root for pod metadata";

/// Which capabilities are missing from `effective`, on a kernel whose
/// highest capability number is `last_cap` (`/proc/sys/kernel/cap_last_cap`).
/// CAP_SYS_ADMIN covers CAP_BPF and CAP_PERFMON (the kernel accepts either);
/// kernels before 5.8 have neither and need it.
pub fn judge_capabilities(effective: &CapsHashSet, last_cap: u8) -> CapCheck {
    let has = |c: Capability| effective.contains(&c);
    let admin = has(Capability::CAP_SYS_ADMIN);
    let mut check = CapCheck::default();
    if last_cap < Capability::CAP_BPF.index() {
        if !admin {
            check.missing.push((Capability::CAP_SYS_ADMIN, WHY_SYS_ADMIN_OLD));
        }
    } else if !admin {
        if !has(Capability::CAP_BPF) {
            check.missing.push((Capability::CAP_BPF, WHY_BPF));
        }
        if !has(Capability::CAP_PERFMON) {
            check.missing.push((Capability::CAP_PERFMON, WHY_PERFMON));
        }
    }
    if !has(Capability::CAP_SYS_PTRACE) {
        check.degraded.push((Capability::CAP_SYS_PTRACE, WHY_SYS_PTRACE));
    }
    check
}

impl CapCheck {
    /// The error for missing required capabilities, naming each, what it is
    /// for and how to grant it.
    pub fn error(&self) -> Option<String> {
        if self.missing.is_empty() {
            return None;
        }
        let what: Vec<String> = self.missing.iter().map(|(c, why)| format!("{c} ({why})")).collect();
        let short: Vec<String> = self.missing.iter().map(|(c, _)| c.to_string()).collect();
        let k8s: Vec<String> = short.iter().map(|c| format!("\"{}\"", c.trim_start_matches("CAP_"))).collect();
        Some(format!(
            "missing capabilities: {}; grant {}: in a pod add {} to securityContext.capabilities.add \
             (deploy/tokenscan-recorder.yaml grants BPF, PERFMON and SYS_PTRACE), with docker --cap-add, or run \
             it as root on the node",
            what.join(", "),
            short.join(" and "),
            k8s.join(", ")
        ))
    }

    /// The warnings for missing useful capabilities.
    pub fn warnings(&self) -> Vec<String> {
        self.degraded
            .iter()
            .map(|(c, why)| {
                format!(
                    "no {c}: recording goes on with less process information ({c}: {why}); add {} to the \
                     pod's capabilities to get it",
                    c.to_string().trim_start_matches("CAP_")
                )
            })
            .collect()
    }
}

/// Checks the effective capabilities: an error for missing required ones,
/// warnings (returned) for missing useful ones.
pub fn check_capabilities() -> Result<Vec<String>> {
    let effective = caps::read(None, CapSet::Effective).context("cannot read the effective capabilities")?;
    let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u8>().ok())
        .unwrap_or(Capability::CAP_BPF.index());
    let check = judge_capabilities(&effective, last_cap);
    if let Some(e) = check.error() {
        bail!("{e}");
    }
    Ok(check.warnings())
}

/// Fails unless a file can be created in `dir` (the directory the capture
/// goes to; the nearest existing ancestor when it does not exist yet).
pub fn require_writable_dir(dir: &Path) -> Result<()> {
    let mut d = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    while !d.exists() {
        match d.parent() {
            Some(p) if !p.as_os_str().is_empty() => d = p,
            _ => {
                d = Path::new(".");
                break;
            }
        }
    }
    let probe = d.join(format!(".tokenscan-record-write-check-{}", std::process::id()));
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => bail!(
            "cannot write the capture: creating a file in {} failed ({e}); write it to a writable directory: in \
             a pod a hostPath volume mounted read-write (deploy/tokenscan-recorder.yaml mounts the node's \
             /var/lib/tokenscan at /out), in a container a read-write bind mount",
            d.display()
        ),
    }
}

/// Warnings about the cgroup2 mount `root` (from `/proc/mounts`): missing,
/// or a container's own subtree (a cgroup namespace) rather than the host's
/// whole hierarchy. Either way container ids come from the kernel's cgroup
/// names, and lookups of the others find nothing.
pub fn cgroup_warning(root: Option<&Path>) -> Option<String> {
    const GRANT: &str = "in a pod mount the host's /sys/fs/cgroup read-only (hostPath /sys/fs/cgroup, as \
                         deploy/tokenscan-recorder.yaml does)";
    match root {
        None => Some(format!(
            "no cgroup2 mount here (/proc/mounts lists none): container ids only from the kernel's cgroup names; \
             {GRANT}"
        )),
        // The root cgroup has no cgroup.events; every other cgroup has one.
        Some(r) if r.join("cgroup.events").exists() => Some(format!(
            "the cgroup2 mount at {} is a cgroup namespace's subtree, not the host's hierarchy: cgroups outside it \
             cannot be looked up; {GRANT}",
            r.display()
        )),
        Some(_) => None,
    }
}

/// A warning when none of the container runtimes' state directories (under
/// `root`, normally `/`) is here: pod names, namespaces and images then
/// cannot be read (only the hostname fallback through /proc/PID/root works).
pub fn runtime_state_warning(root: &Path) -> Option<String> {
    let dirs: Vec<&str> =
        std::iter::once(crate::pods::CONTAINERD_TASK_DIR).chain(crate::pods::CRIO_STORAGE_DIRS).collect();
    if dirs.iter().any(|d| root.join(d).is_dir()) {
        return None;
    }
    let listed: Vec<String> = dirs.iter().map(|d| format!("/{d}")).collect();
    Some(format!(
        "no container runtime state directory here ({}): pod metadata (names, namespaces, images) will be \
         missing; in a pod mount the host's /run/containerd (containerd) or /run/containers and \
         /var/lib/containers (CRI-O) read-only",
        listed.join(", ")
    ))
}

/// How tracefs was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tracefs {
    /// It was already mounted here.
    Found(PathBuf),
    /// The recorder mounted it here.
    Mounted(PathBuf),
}

impl Tracefs {
    /// The tracefs root.
    pub fn path(&self) -> &Path {
        match self {
            Tracefs::Found(p) | Tracefs::Mounted(p) => p,
        }
    }

    /// Whether `events/<category>/<name>` exists.
    pub fn has_event(&self, category: &str, name: &str) -> bool {
        self.path().join("events").join(category).join(name).is_dir()
    }
}

/// Finds tracefs (libbpf resolves `tp/` programs' tracepoint ids through it),
/// mounting it at `/sys/kernel/tracing` when it is not mounted anywhere.
pub fn ensure_tracefs() -> Result<Tracefs> {
    for p in [TRACEFS, TRACEFS_DEBUGFS] {
        if Path::new(p).join("events").is_dir() {
            return check_syscall_events(Tracefs::Found(PathBuf::from(p)));
        }
    }
    let target = CString::new(TRACEFS).expect("no NUL in a constant");
    // SAFETY: all pointers are valid NUL-terminated strings; data may be NULL.
    let rc = unsafe { libc::mount(c"nodev".as_ptr(), target.as_ptr(), c"tracefs".as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        bail!("{}", tracefs_error(&e));
    }
    check_syscall_events(Tracefs::Mounted(PathBuf::from(TRACEFS)))
}

/// The message when tracefs is missing and cannot be mounted.
fn tracefs_error(e: &std::io::Error) -> String {
    let why = if e.raw_os_error() == Some(libc::EPERM) { " (mounting needs CAP_SYS_ADMIN)" } else { "" };
    format!(
        "tracefs is not mounted at {TRACEFS} or {TRACEFS_DEBUGFS} and mounting it at {TRACEFS} failed: {e}{why}; \
         libbpf needs it to attach to tracepoints; in a pod mount the host's tracefs read-only (hostPath \
         {TRACEFS} at {TRACEFS}, as deploy/tokenscan-recorder.yaml does; on the node it must be mounted: \
         mount -t tracefs nodev {TRACEFS}); on the node itself, as root: mount -t tracefs nodev {TRACEFS}"
    )
}

fn check_syscall_events(t: Tracefs) -> Result<Tracefs> {
    if !t.has_event("syscalls", "sys_enter_openat") {
        bail!(
            "this kernel has no syscall tracepoints ({}/events/syscalls/sys_enter_openat is missing): \
             it needs CONFIG_FTRACE_SYSCALLS=y",
            t.path().display()
        );
    }
    Ok(t)
}

/// What [`drop_capabilities`] achieved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapDrop {
    /// Capabilities left in the bounding set because the kernel refused to
    /// drop them (`PR_CAPBSET_DROP` fails with EPERM without `CAP_SETPCAP`),
    /// in capability number order. Empty when every one was dropped.
    pub bounding_kept: Vec<Capability>,
}

impl CapDrop {
    /// The one warning to print when the bounding set could not be emptied:
    /// what stayed, why, and why recording is still safe.
    pub fn warning(&self) -> Option<String> {
        if self.bounding_kept.is_empty() {
            return None;
        }
        let names: Vec<String> = self.bounding_kept.iter().map(|c| c.to_string()).collect();
        Some(format!(
            "the capability bounding set keeps {} (shrinking it needs CAP_SETPCAP, which this process does not \
             have: PR_CAPBSET_DROP failed with EPERM); recording goes on: the effective, permitted, inheritable \
             and ambient sets are empty and no_new_privs is set, so neither this process nor anything it \
             could run can use them",
            names.join(", ")
        ))
    }
}

/// Judges the outcome of `PR_CAPBSET_DROP` for each capability of the
/// bounding set (`Err` holds the errno): EPERM (no `CAP_SETPCAP`) keeps the
/// capability and is not an error; EINVAL means the kernel does not know the
/// capability, so there is nothing to drop; any other errno is an error.
/// Returns the capabilities kept, in capability number order.
pub fn judge_bounding_drops(results: &[(Capability, std::result::Result<(), i32>)]) -> Result<Vec<Capability>> {
    let mut kept: Vec<Capability> = Vec::new();
    for (cap, r) in results {
        match r {
            Ok(()) | Err(libc::EINVAL) => {}
            Err(libc::EPERM) => kept.push(*cap),
            Err(errno) => bail!(
                "cannot drop {cap} from the bounding set: PR_CAPBSET_DROP failed: {}",
                std::io::Error::from_raw_os_error(*errno)
            ),
        }
    }
    kept.sort_by_key(|c| c.index());
    Ok(kept)
}

/// Drops every capability of the calling thread (effective, permitted,
/// inheritable, ambient and, as far as allowed, the bounding set) and sets
/// no_new_privs, so that neither this process nor anything it could exec
/// regains them. Call it before starting other threads: capabilities are per
/// thread.
///
/// Shrinking the bounding set needs `CAP_SETPCAP`, which a least-privilege
/// pod does not grant: what cannot be dropped from it is reported in the
/// returned [`CapDrop`], not an error. It is harmless: with empty permitted
/// and inheritable sets and no_new_privs, an exec cannot add bounding-set
/// capabilities to the permitted set (the kernel clips them to the old
/// permitted set), and the recorder never execs.
///
/// The recorder needs none after attaching: the ring buffer and the
/// `.bss` counters are mmapped, the programs stay attached through the link
/// file descriptors it holds, and cgroupfs and its own output directory are
/// readable and writable for uid 0 through ordinary permissions.
pub fn drop_capabilities() -> Result<CapDrop> {
    let bounding = caps::read(None, CapSet::Bounding).context("cannot read the capability bounding set")?;
    let results: Vec<(Capability, std::result::Result<(), i32>)> = bounding
        .into_iter()
        .map(|cap| {
            // SAFETY: prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) has no memory arguments.
            let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap.index()), 0, 0, 0) };
            let r = if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)) };
            (cap, r)
        })
        .collect();
    let bounding_kept = judge_bounding_drops(&results)?;
    for set in [CapSet::Ambient, CapSet::Inheritable, CapSet::Effective, CapSet::Permitted] {
        caps::clear(None, set).with_context(|| format!("cannot clear the {set:?} capability set"))?;
    }
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) has no memory arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error()).context("cannot set no_new_privs");
    }
    for set in [CapSet::Effective, CapSet::Permitted] {
        if !caps::read(None, set).context("cannot read capabilities")?.is_empty() {
            bail!("the {set:?} capability set is not empty after clearing it");
        }
    }
    Ok(CapDrop { bounding_kept })
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid, writable timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

/// CLOCK_BOOTTIME now, in nanoseconds (the clock of `bpf_ktime_get_boot_ns`).
pub fn boottime_ns() -> u64 {
    clock_ns(libc::CLOCK_BOOTTIME) as u64
}

/// Unix time minus CLOCK_BOOTTIME, in nanoseconds: added to the kernel's
/// stamps it gives wall-clock event times. Of a few samples, the one whose
/// two CLOCK_BOOTTIME reads were closest together is kept.
pub fn clock_offset_ns() -> i64 {
    let mut samples: Vec<(i128, i128)> = (0..7)
        .map(|_| {
            let b0 = clock_ns(libc::CLOCK_BOOTTIME);
            let r = clock_ns(libc::CLOCK_REALTIME);
            let b1 = clock_ns(libc::CLOCK_BOOTTIME);
            (b1 - b0, r - (b0 + b1) / 2)
        })
        .collect();
    samples.sort();
    samples[0].1 as i64
}

/// The node's host name and kernel release (uname).
pub fn host_identity() -> (String, String) {
    // SAFETY: utsname is plain data; uname fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: u is a valid, writable utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return ("unknown".into(), "unknown".into());
    }
    let field = |f: &[libc::c_char]| {
        // SAFETY: uname NUL-terminates each field within its array.
        unsafe { CStr::from_ptr(f.as_ptr()) }.to_string_lossy().into_owned()
    };
    (field(&u.nodename), field(&u.release))
}

/// Resident set size of this process, in bytes (from /proc/self/statm).
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no memory arguments.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * page.max(1) as u64)
}

/// CPU time (user + system) this process has used, in nanoseconds.
pub fn cpu_time_ns() -> u64 {
    clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounding_set_eperm_keeps_the_capability_and_is_not_an_error() {
        use Capability::*;
        // Without CAP_SETPCAP the kernel refuses every drop with EPERM.
        let refused = [(CAP_PERFMON, Err(libc::EPERM)), (CAP_BPF, Err(libc::EPERM)), (CAP_CHOWN, Err(libc::EPERM))];
        let kept = judge_bounding_drops(&refused).unwrap();
        assert_eq!(kept, vec![CAP_CHOWN, CAP_PERFMON, CAP_BPF], "all kept, in capability number order");
        let w = CapDrop { bounding_kept: kept }.warning().unwrap();
        assert!(w.contains("keeps CAP_CHOWN, CAP_PERFMON, CAP_BPF"), "{w}");
        assert!(w.contains("needs CAP_SETPCAP") && w.contains("EPERM") && w.contains("recording goes on"), "{w}");
        // With CAP_SETPCAP every drop succeeds: nothing kept, no warning.
        let done = [(CAP_BPF, Ok(())), (CAP_SETPCAP, Ok(()))];
        let kept = judge_bounding_drops(&done).unwrap();
        assert!(kept.is_empty());
        assert_eq!(CapDrop { bounding_kept: kept }.warning(), None);
        // A capability the kernel does not know (EINVAL) has nothing to drop.
        assert!(judge_bounding_drops(&[(CAP_CHECKPOINT_RESTORE, Err(libc::EINVAL))]).unwrap().is_empty());
    }

    #[test]
    fn host_pid_namespace_is_the_initial_one() {
        // 4026531836 is the initial PID namespace's inode (`ls -l /proc/1/ns/pid` on a host says pid:[4026531836]).
        assert!(host_pid_namespace_verdict(4_026_531_836).is_ok());
        let e = host_pid_namespace_verdict(4_026_532_201).unwrap_err().to_string();
        assert!(e.starts_with("tokenscan-record is not in the host's PID namespace (its /proc/self/ns/pid is pid:[4026532201], the host's is pid:[4026531836])"), "{e}");
        assert!(e.contains("set hostPID: true") && e.contains("--pid=host"), "{e}");
    }

    #[test]
    fn a_pod_host_name_is_flagged() {
        // 4026531838 is the initial UTS namespace's inode.
        assert_eq!(uts_verdict(4_026_531_838, "node-7"), None);
        let w = uts_verdict(4_026_532_300, "tokenscan-recorder").unwrap();
        assert!(w.contains("host name \"tokenscan-recorder\" is probably a pod's") && w.contains("--hostname"), "{w}");
    }

    #[test]
    fn capabilities_needed_are_bpf_and_perfmon_or_sys_admin() {
        use Capability::*;
        let set = |c: &[Capability]| c.iter().copied().collect::<CapsHashSet>();
        // The manifest's set, on a 6.x kernel (cap_last_cap 40): nothing missing.
        assert_eq!(judge_capabilities(&set(&[CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE]), 40), CapCheck::default());
        // One removed: named, with what it is for and how to grant it.
        let c = judge_capabilities(&set(&[CAP_BPF, CAP_SYS_PTRACE]), 40);
        let e = c.error().unwrap();
        assert!(e.starts_with("missing capabilities: CAP_PERFMON (it attaches the programs to tracepoints"), "{e}");
        assert!(e.contains("grant CAP_PERFMON: in a pod add \"PERFMON\" to securityContext.capabilities.add"), "{e}");
        let e = judge_capabilities(&set(&[]), 40).error().unwrap();
        assert!(e.starts_with("missing capabilities: CAP_BPF (it loads"), "{e}");
        assert!(e.contains("grant CAP_BPF and CAP_PERFMON: in a pod add \"BPF\", \"PERFMON\""), "{e}");
        // CAP_SYS_ADMIN stands in for both (the kernel's bpf_capable/perfmon_capable accept it).
        assert!(judge_capabilities(&set(&[CAP_SYS_ADMIN, CAP_SYS_PTRACE]), 40).error().is_none());
        // Kernels before 5.8 (cap_last_cap 37) have no CAP_BPF: CAP_SYS_ADMIN is needed.
        let e = judge_capabilities(&set(&[CAP_SYS_PTRACE]), 37).error().unwrap();
        assert!(
            e.starts_with("missing capabilities: CAP_SYS_ADMIN (this kernel has no CAP_BPF and CAP_PERFMON"),
            "{e}"
        );
        // No CAP_SYS_PTRACE: a warning, not an error.
        let c = judge_capabilities(&set(&[CAP_BPF, CAP_PERFMON]), 40);
        assert!(c.error().is_none());
        let w = c.warnings();
        assert_eq!(w.len(), 1);
        assert!(
            w[0].starts_with("no CAP_SYS_PTRACE: recording goes on with less process information")
                && w[0].contains("add SYS_PTRACE"),
            "{w:?}"
        );
    }

    #[test]
    fn output_directory_must_be_writable() {
        let tmp = tempfile::tempdir().unwrap();
        require_writable_dir(tmp.path()).unwrap();
        require_writable_dir(&tmp.path().join("not/yet")).unwrap();
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0, "the probe file is removed");
        // procfs refuses new files even to root.
        let e = require_writable_dir(Path::new("/proc/self")).unwrap_err().to_string();
        assert!(e.starts_with("cannot write the capture: creating a file in /proc/self failed"), "{e}");
        assert!(e.contains("hostPath volume mounted read-write"), "{e}");
    }

    #[test]
    fn cgroup_and_runtime_warnings() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(cgroup_warning(None).unwrap().starts_with("no cgroup2 mount here"));
        assert_eq!(cgroup_warning(Some(tmp.path())), None, "a root cgroup has no cgroup.events");
        std::fs::write(tmp.path().join("cgroup.events"), "populated 1\n").unwrap();
        assert!(cgroup_warning(Some(tmp.path())).unwrap().contains("is a cgroup namespace's subtree"));

        let w = runtime_state_warning(tmp.path()).unwrap();
        assert!(w.starts_with("no container runtime state directory here (/run/containerd/io.containerd.runtime.v2.task, /run/containers/storage/overlay-containers, /var/lib/containers/storage/overlay-containers)"), "{w}");
        std::fs::create_dir_all(tmp.path().join("run/containerd/io.containerd.runtime.v2.task")).unwrap();
        assert_eq!(runtime_state_warning(tmp.path()), None);
    }

    #[test]
    fn tracefs_message_says_how_to_grant_it() {
        let e = tracefs_error(&std::io::Error::from_raw_os_error(libc::EPERM));
        assert!(e.starts_with("tracefs is not mounted at /sys/kernel/tracing or /sys/kernel/debug/tracing and mounting it at /sys/kernel/tracing failed: Operation not permitted (os error 1) (mounting needs CAP_SYS_ADMIN)"), "{e}");
        assert!(e.contains("hostPath /sys/kernel/tracing at /sys/kernel/tracing"), "{e}");
    }

    #[test]
    fn bounding_set_other_errors_end_the_recording() {
        let e = judge_bounding_drops(&[(Capability::CAP_BPF, Ok(())), (Capability::CAP_SYS_ADMIN, Err(libc::EFAULT))])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cannot drop CAP_SYS_ADMIN from the bounding set: PR_CAPBSET_DROP failed: Bad address"),
            "{e}"
        );
    }

    #[test]
    fn clocks_and_identity() {
        let off = clock_offset_ns();
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap();
        let est = boottime_ns() as i64 + off;
        assert!((now - est).abs() < 1_000_000_000, "offset {off} puts now at {est}, not {now}");
        let (host, release) = host_identity();
        assert!(!host.is_empty() && !release.is_empty());
        assert!(rss_bytes().unwrap() > 0);
        assert!(cpu_time_ns() > 0);
    }
}
