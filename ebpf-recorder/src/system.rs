//! What the recorder needs from the machine: checks before loading, tracefs,
//! clocks, host identity, and dropping capabilities after attaching.

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use caps::{CapSet, Capability};

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

/// Fails unless the kernel has BTF (needed for CO-RE relocations).
pub fn require_btf() -> Result<()> {
    if !Path::new(BTF_PATH).exists() {
        bail!(
            "this kernel has no BTF ({BTF_PATH} is missing): tokenscan-record needs a kernel built with \
             CONFIG_DEBUG_INFO_BTF=y (most distributions since 2020; kernel 5.8 or later)"
        );
    }
    Ok(())
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
        bail!(
            "tracefs is not mounted and mounting it at {TRACEFS} failed ({e}); mount it and retry: \
             mount -t tracefs nodev {TRACEFS}"
        );
    }
    check_syscall_events(Tracefs::Mounted(PathBuf::from(TRACEFS)))
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
