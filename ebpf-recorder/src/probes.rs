//! Loading and attaching the eBPF programs, and talking to them afterwards.
//!
//! After [`Probes::load`] the recorder needs no further `bpf()` syscalls: the
//! ring buffer is consumed through its mmapped pages and the counters, the
//! exe generation and the host cgroup set live in the mmapped `.bss`. That is
//! what lets it drop every capability once attached.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

use anyhow::{anyhow, Context, Result};
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{Link, MapCore, OpenObject, PrintLevel, RingBuffer, RingBufferBuilder};

use crate::skel::{types, RecorderSkel, RecorderSkelBuilder};
use crate::system::Tracefs;

/// `HOST_CGROUP_SLOTS` of recorder.h.
const HOST_CGROUP_SLOTS: usize = 4096;
/// `HOST_CGROUP_PROBES` of recorder.h.
const HOST_CGROUP_PROBES: usize = 8;

/// How a program is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    /// A tracefs tracepoint (`tp/<category>/<name>`).
    Tracepoint,
    /// A raw tracepoint (`raw_tp/<name>`), which needs no tracefs.
    RawTracepoint,
}

/// One program and where it attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hook {
    /// Program name in recorder.bpf.c.
    pub program: &'static str,
    /// Tracepoint or raw tracepoint.
    pub kind: HookKind,
    /// Tracepoint category (empty for raw tracepoints).
    pub category: &'static str,
    /// Tracepoint name.
    pub name: &'static str,
    /// Whether recording is pointless without it.
    pub required: bool,
}

impl std::fmt::Display for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            HookKind::Tracepoint => write!(f, "tracepoint {}/{}", self.category, self.name),
            HookKind::RawTracepoint => write!(f, "raw_tracepoint {}", self.name),
        }
    }
}

const fn tp(program: &'static str, name: &'static str, required: bool) -> Hook {
    Hook { program, kind: HookKind::Tracepoint, category: "syscalls", name, required }
}

/// Every program of recorder.bpf.c. `open` and `creat` do not exist on
/// arm64 and are skipped where the kernel lacks them, as are the file
/// operations a kernel lacks (`unlink`, `rename`, ... on arm64, `fchmodat2`
/// before 6.6).
pub const HOOKS: [Hook; 65] = [
    tp("enter_open", "sys_enter_open", false),
    tp("exit_open", "sys_exit_open", false),
    tp("enter_openat", "sys_enter_openat", true),
    tp("exit_openat", "sys_exit_openat", true),
    tp("enter_openat2", "sys_enter_openat2", false),
    tp("exit_openat2", "sys_exit_openat2", false),
    tp("enter_creat", "sys_enter_creat", false),
    tp("exit_creat", "sys_exit_creat", false),
    tp("enter_open_by_handle_at", "sys_enter_open_by_handle_at", false),
    tp("exit_open_by_handle_at", "sys_exit_open_by_handle_at", false),
    tp("enter_execve", "sys_enter_execve", true),
    tp("exit_execve", "sys_exit_execve", true),
    tp("enter_execveat", "sys_enter_execveat", false),
    tp("exit_execveat", "sys_exit_execveat", false),
    Hook {
        program: "handle_exec",
        kind: HookKind::RawTracepoint,
        category: "",
        name: "sched_process_exec",
        required: true,
    },
    Hook {
        program: "handle_fork",
        kind: HookKind::RawTracepoint,
        category: "",
        name: "sched_process_fork",
        required: true,
    },
    Hook {
        program: "handle_exit",
        kind: HookKind::RawTracepoint,
        category: "",
        name: "sched_process_exit",
        required: true,
    },
    tp("enter_unlink", "sys_enter_unlink", false),
    tp("exit_unlink", "sys_exit_unlink", false),
    tp("enter_unlinkat", "sys_enter_unlinkat", false),
    tp("exit_unlinkat", "sys_exit_unlinkat", false),
    tp("enter_rmdir", "sys_enter_rmdir", false),
    tp("exit_rmdir", "sys_exit_rmdir", false),
    tp("enter_rename", "sys_enter_rename", false),
    tp("exit_rename", "sys_exit_rename", false),
    tp("enter_renameat", "sys_enter_renameat", false),
    tp("exit_renameat", "sys_exit_renameat", false),
    tp("enter_renameat2", "sys_enter_renameat2", false),
    tp("exit_renameat2", "sys_exit_renameat2", false),
    tp("enter_link", "sys_enter_link", false),
    tp("exit_link", "sys_exit_link", false),
    tp("enter_linkat", "sys_enter_linkat", false),
    tp("exit_linkat", "sys_exit_linkat", false),
    tp("enter_symlink", "sys_enter_symlink", false),
    tp("exit_symlink", "sys_exit_symlink", false),
    tp("enter_symlinkat", "sys_enter_symlinkat", false),
    tp("exit_symlinkat", "sys_exit_symlinkat", false),
    tp("enter_chmod", "sys_enter_chmod", false),
    tp("exit_chmod", "sys_exit_chmod", false),
    tp("enter_fchmod", "sys_enter_fchmod", false),
    tp("exit_fchmod", "sys_exit_fchmod", false),
    tp("enter_fchmodat", "sys_enter_fchmodat", false),
    tp("exit_fchmodat", "sys_exit_fchmodat", false),
    tp("enter_fchmodat2", "sys_enter_fchmodat2", false),
    tp("exit_fchmodat2", "sys_exit_fchmodat2", false),
    tp("enter_chown", "sys_enter_chown", false),
    tp("exit_chown", "sys_exit_chown", false),
    tp("enter_lchown", "sys_enter_lchown", false),
    tp("exit_lchown", "sys_exit_lchown", false),
    tp("enter_fchown", "sys_enter_fchown", false),
    tp("exit_fchown", "sys_exit_fchown", false),
    tp("enter_fchownat", "sys_enter_fchownat", false),
    tp("exit_fchownat", "sys_exit_fchownat", false),
    tp("enter_truncate", "sys_enter_truncate", false),
    tp("exit_truncate", "sys_exit_truncate", false),
    tp("enter_ftruncate", "sys_enter_ftruncate", false),
    tp("exit_ftruncate", "sys_exit_ftruncate", false),
    tp("enter_mkdir", "sys_enter_mkdir", false),
    tp("exit_mkdir", "sys_exit_mkdir", false),
    tp("enter_mkdirat", "sys_enter_mkdirat", false),
    tp("exit_mkdirat", "sys_exit_mkdirat", false),
    tp("enter_mknod", "sys_enter_mknod", false),
    tp("exit_mknod", "sys_exit_mknod", false),
    tp("enter_mknodat", "sys_enter_mknodat", false),
    tp("exit_mknodat", "sys_exit_mknodat", false),
];

/// Settings fixed at load time.
#[derive(Debug, Clone, Copy)]
pub struct ProbeOptions {
    /// The recorder's own pid, whose events the kernel drops.
    pub self_tgid: u32,
    /// Drop events of cgroups user space has classified as host cgroups.
    pub containers_only: bool,
    /// Ring buffer size (a power of two, multiple of the page size).
    pub ring_buffer_bytes: u32,
    /// Print libbpf's messages.
    pub verbose: bool,
}

/// Kernel-side counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Records dropped because the ring buffer was full.
    pub lost_records: u64,
    /// Path walks that stopped early.
    pub path_truncated: u64,
}

/// The libbpf messages of the current load, shown when it fails.
static LIBBPF_LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn quiet_print(level: PrintLevel, msg: String) {
    if matches!(level, PrintLevel::Warn) {
        let mut log = LIBBPF_LOG.lock().unwrap_or_else(|e| e.into_inner());
        if log.len() < 10_000 {
            log.push(msg);
        }
    }
}

fn verbose_print(_level: PrintLevel, msg: String) {
    eprint!("libbpf: {msg}");
}

/// The last lines libbpf warned about, for an error message.
fn libbpf_log_tail() -> String {
    let log = LIBBPF_LOG.lock().unwrap_or_else(|e| e.into_inner());
    let lines: Vec<&str> = log.iter().flat_map(|m| m.lines()).filter(|l| !l.trim().is_empty()).collect();
    let tail = &lines[lines.len().saturating_sub(3)..];
    if tail.is_empty() {
        String::new()
    } else {
        format!(" [libbpf: {}]", tail.join(" | "))
    }
}

/// Rounds a requested ring buffer size to what the kernel accepts.
pub fn ring_buffer_size(requested: u64) -> Result<u32> {
    let min = 1u64 << 20;
    let max = 1u64 << 30;
    let size = requested.clamp(min, max).next_power_of_two();
    u32::try_from(size).map_err(|_| anyhow!("ring buffer size {requested} is too large (at most 1G)"))
}

/// The loaded and attached programs.
pub struct Probes<'obj> {
    skel: RecorderSkel<'obj>,
    bss: *mut types::bss,
    links: RefCell<Vec<Link>>,
    attached: Vec<Hook>,
    skipped: Vec<Hook>,
}

impl<'obj> Probes<'obj> {
    /// Opens, configures, loads (verifier, CO-RE relocation against the
    /// running kernel's BTF) and attaches every program the kernel supports.
    pub fn load(object: &'obj mut MaybeUninit<OpenObject>, opts: &ProbeOptions, tracefs: &Tracefs) -> Result<Self> {
        if opts.verbose {
            libbpf_rs::set_print(Some((PrintLevel::Info, verbose_print)));
        } else {
            libbpf_rs::set_print(Some((PrintLevel::Warn, quiet_print)));
        }
        let builder = RecorderSkelBuilder::default();
        let mut open =
            builder.open(object).map_err(|e| anyhow!("cannot open the eBPF object: {e}{}", libbpf_log_tail()))?;

        let rodata = open.maps.rodata_data.as_deref_mut().ok_or_else(|| anyhow!("the eBPF object has no .rodata"))?;
        rodata.self_tgid = opts.self_tgid;
        rodata.containers_only = u32::from(opts.containers_only);
        rodata.wakeup_bytes = u64::from(opts.ring_buffer_bytes / 16);
        open.maps
            .events
            .set_max_entries(opts.ring_buffer_bytes)
            .map_err(|e| anyhow!("cannot size the ring buffer to {} bytes: {e}", opts.ring_buffer_bytes))?;

        let mut skipped = Vec::new();
        for mut prog in open.open_object_mut().progs_mut() {
            let name = prog.name().to_string_lossy().into_owned();
            let hook = HOOKS
                .iter()
                .find(|h| h.program == name)
                .ok_or_else(|| anyhow!("program {name} of recorder.bpf.c is missing from the hook table"))?;
            if hook.kind == HookKind::Tracepoint && !tracefs.has_event(hook.category, hook.name) {
                if hook.required {
                    return Err(anyhow!("this kernel has no {hook}, which the recorder needs"));
                }
                prog.set_autoload(false);
                skipped.push(*hook);
            }
        }

        let mut skel = open.load().map_err(|e| {
            anyhow!(
                "the kernel refused the eBPF programs: {e}{} (kernel lockdown, a missing CAP_BPF/CAP_PERFMON, \
                 or a kernel without the needed BTF fields; run with --verbose for the verifier log)",
                libbpf_log_tail()
            )
        })?;

        let bss = skel
            .maps
            .bss_data
            .take()
            .map(|b| b as *mut types::bss)
            .ok_or_else(|| anyhow!("the eBPF object's .bss is not mmapped"))?;

        let mut links = Vec::new();
        let mut attached = Vec::new();
        for prog in skel.object().progs_mut() {
            if !prog.autoload() {
                continue;
            }
            let name = prog.name().to_string_lossy().into_owned();
            let hook = *HOOKS.iter().find(|h| h.program == name).expect("checked above");
            let link =
                prog.attach().map_err(|e| anyhow!("cannot attach {name} to {hook}: {e}{}", libbpf_log_tail()))?;
            links.push(link);
            attached.push(hook);
        }
        Ok(Probes { skel, bss, links: RefCell::new(links), attached, skipped })
    }

    /// The hooks attached.
    pub fn attached(&self) -> &[Hook] {
        &self.attached
    }

    /// Hooks this kernel does not have.
    pub fn skipped(&self) -> &[Hook] {
        &self.skipped
    }

    fn atomic_u64(&self, f: impl FnOnce(*mut types::bss) -> *mut u64) -> &AtomicU64 {
        // SAFETY: `bss` points into the object's mmapped .bss, which lives as
        // long as `self.skel`; the field is 8-byte aligned and is only ever
        // accessed atomically (by the kernel and through this function).
        unsafe { AtomicU64::from_ptr(f(self.bss)) }
    }

    /// The kernel-side counters now.
    pub fn counters(&self) -> Counters {
        // SAFETY (pointer projection only): see atomic_u64.
        let lost = self.atomic_u64(|b| unsafe { &raw mut (*b).counters.lost_records });
        let trunc = self.atomic_u64(|b| unsafe { &raw mut (*b).counters.path_truncated });
        Counters { lost_records: lost.load(Ordering::Relaxed), path_truncated: trunc.load(Ordering::Relaxed) }
    }

    /// Makes the kernel resend every process's exe and every thread's
    /// working directory with its next record.
    pub fn bump_exe_generation(&self) {
        // SAFETY: as in atomic_u64, for the 4-byte aligned u32 field.
        let g = unsafe { AtomicU32::from_ptr(&raw mut (*self.bss).exe_generation) };
        g.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds a cgroup id to the in-kernel host set (with --containers-only the
    /// kernel then drops its events). Returns false when the set is full
    /// around that slot; such a cgroup's events keep reaching user space, which
    /// drops them itself.
    pub fn add_host_cgroup(&self, id: u64) -> bool {
        if id == 0 {
            return false;
        }
        let h = host_cgroup_slot(id);
        for i in 0..HOST_CGROUP_PROBES {
            let slot = (h + i) & (HOST_CGROUP_SLOTS - 1);
            // SAFETY: as in atomic_u64; slot < HOST_CGROUP_SLOTS.
            let cell = self.atomic_u64(|b| unsafe { &raw mut (*b).host_cgroups[slot] });
            match cell.compare_exchange(0, id, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(v) if v == id => return true,
                Err(_) => continue,
            }
        }
        false
    }

    /// A ring buffer consumer calling `callback` with each record's bytes.
    pub fn ring_buffer<'cb>(&'cb self, callback: impl FnMut(&[u8]) -> i32 + 'cb) -> Result<RingBuffer<'cb>> {
        let mut b = RingBufferBuilder::new();
        b.add(&self.skel.maps.events as &dyn MapCore, callback).context("cannot set up the ring buffer")?;
        b.build().context("cannot set up the ring buffer")
    }

    /// Detaches every program (events stop; what is in the ring buffer stays readable).
    pub fn detach(&self) {
        self.links.borrow_mut().clear();
    }
}

/// The slot of a cgroup id in the host set: `cgroup_slot()` of recorder.bpf.c.
pub fn host_cgroup_slot(id: u64) -> usize {
    (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_buffer_sizes_are_powers_of_two() {
        assert_eq!(ring_buffer_size(16 << 20).unwrap(), 16 << 20);
        assert_eq!(ring_buffer_size(3 << 20).unwrap(), 4 << 20);
        assert_eq!(ring_buffer_size(1).unwrap(), 1 << 20);
        assert_eq!(ring_buffer_size(u64::MAX).unwrap(), 1 << 30);
    }

    #[test]
    fn slots_fit_the_table() {
        for id in [1u64, 2, 4096, 123_456_789, u64::MAX] {
            assert!(host_cgroup_slot(id) < HOST_CGROUP_SLOTS);
        }
        assert_ne!(host_cgroup_slot(1), host_cgroup_slot(2));
    }

    #[test]
    fn hook_table_names_are_unique() {
        let mut names: Vec<_> = HOOKS.iter().map(|h| h.program).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), HOOKS.len());
        assert_eq!(HOOKS[2].to_string(), "tracepoint syscalls/sys_enter_openat");
        assert_eq!(HOOKS[14].to_string(), "raw_tracepoint sched_process_exec");
        assert_eq!(HOOKS[16].to_string(), "raw_tracepoint sched_process_exit");
    }
}
