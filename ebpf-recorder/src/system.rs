//! What the recorder needs from the machine: checks before loading, tracefs,
//! clocks, host identity, and dropping capabilities after attaching.

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use caps::CapSet;

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

/// Drops every capability of the calling thread (effective, permitted,
/// inheritable, ambient and the bounding set) and sets no_new_privs, so that
/// neither this process nor anything it could exec regains them. Call it
/// before starting other threads: capabilities are per thread.
///
/// The recorder needs none after attaching: the ring buffer and the
/// `.bss` counters are mmapped, the programs stay attached through the link
/// file descriptors it holds, and cgroupfs and its own output directory are
/// readable and writable for uid 0 through ordinary permissions.
pub fn drop_capabilities() -> Result<()> {
    let bounding = caps::read(None, CapSet::Bounding).context("cannot read the capability bounding set")?;
    for cap in bounding {
        caps::drop(None, CapSet::Bounding, cap).with_context(|| format!("cannot drop {cap} from the bounding set"))?;
    }
    for set in [CapSet::Ambient, CapSet::Inheritable, CapSet::Effective, CapSet::Permitted] {
        caps::clear(None, set).with_context(|| format!("cannot clear the {set:?} capability set"))?;
    }
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) has no memory arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error()).context("cannot set no_new_privs");
    }
    if !caps::read(None, CapSet::Effective).context("cannot read capabilities")?.is_empty() {
        bail!("capabilities are still effective after dropping them");
    }
    Ok(())
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
