// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tokenscan-record, kernel side: file opens, process execs, forks and exits,
 * recorded from tracepoints only (syscalls/sys_{enter,exit}_* and
 * raw_tp/sched_process_{exec,fork,exit}),
 * so it loads under kernel lockdown and on any 5.8+ kernel with BTF.
 *
 * See recorder.h for the record layout and docs/recorder.md for the design.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "recorder.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Variable-length data follows the header in a per-CPU scratch buffer. Each
 * segment is copied to `data[off & DATA_MASK]` and is at most ARGS_MAX_LEN
 * bytes, so the verifier can prove every copy stays inside `data`. The
 * largest record (an exec: path + req + args + tty) needs 16446 bytes; a
 * per-CPU map value may not exceed 32 KiB. */
#define DATA_MASK 0x3fff
#define DATA_SIZE (DATA_MASK + 1 + ARGS_MAX_LEN)
#define PATH_MASK (PATH_MAX_LEN - 1)
#define NAME_MAX_LEN 255
/* Shortest interval between two forced ring-buffer wake-ups. */
#define WAKEUP_GAP_NS 50000

#define O_WRONLY 01
#define O_CREAT 0100
#define O_TRUNC 01000
#define AT_FDCWD -100
/* include/linux/fs.h: the open created the file (the same bit since 4.19). */
#define FMODE_CREATED 0x100000

/* What was last sent as a thread's working directory (see put_cwd_if_needed). */
struct cwd_state {
	u64 dentry;     /* fs->pwd.dentry */
	u64 mnt;        /* fs->pwd.mnt */
	u64 start_time; /* the thread's start_time: tells a reused tid apart */
	u32 generation; /* exe_generation when sent */
	u32 tid;
};

struct scratch {
	struct record rec;
	u8 data[DATA_SIZE];
	/* Not sent: the cgroup id whose names this CPU last found sent (a
	 * one-entry cache in front of the cgroup_seen lookup). */
	u64 last_cgroup;
	/* Not sent: the cwd this CPU last found sent, likewise for cwd_seen. */
	struct cwd_state last_cwd;
};

/* Paths are built backwards, ending at buf[PATH_MAX_LEN]; the second half
 * is slack so that a name copied at any masked position stays in bounds.
 * The write position lives here rather than in a register so that the
 * verifier does not track its exact range from one loop iteration to the
 * next (which would keep it from pruning and blow its instruction budget). */
struct pathbuf {
	u8 buf[PATH_MAX_LEN * 2];
	u32 pos;
};

struct exe_state {
	u64 start_time;
	u32 generation;
	u32 _pad;
};

/* Set by user space before load. */
const volatile u32 self_tgid = 0;
const volatile u32 containers_only = 0;
const volatile u64 wakeup_bytes = 1 << 20;

/* Shared with user space through the mmapped .bss (no syscalls needed, so
 * this keeps working after the recorder has dropped its capabilities). */
struct counters counters = {};
/* Boot-clock time of the last forced ring-buffer wake-up. Shared by all CPUs
 * without synchronisation on purpose: a lost update costs one extra wake-up. */
u64 last_wakeup_ns = 0;
/* Bumped by user space to make the kernel resend every process's exe and
 * every thread's working directory. */
volatile u32 exe_generation = 0;
/* Cgroup ids user space has classified as not belonging to a container
 * (open addressing, see cgroup_slot); only used with containers_only. */
volatile u64 host_cgroups[HOST_CGROUP_SLOTS] = {};
/* Makes `struct record` part of the BTF, so the skeleton generates its Rust type. */
struct record _record_type = {};
/* Likewise for the rflags bits. */
enum record_flags _record_flags_type = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20); /* resized by user space before load */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct scratch);
} scratch_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct pathbuf);
} pathbuf_map SEC(".maps");

/* tgid -> (start time of its leader, exe generation) for which user space
 * has been sent the process's exe path. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, u32);
	__type(value, struct exe_state);
} exe_seen SEC(".maps");

/* Cgroup ids whose names have been sent to user space (see put_cgroup_if_needed). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, u64);
	__type(value, u8);
} cgroup_seen SEC(".maps");

/* tid -> the working directory last sent for that thread. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, u32);
	__type(value, struct cwd_state);
} cwd_seen SEC(".maps");

static __always_inline u32 cgroup_slot(u64 id)
{
	/* Fibonacci hashing to 12 bits; user space uses the same function. */
	return (u32)((id * 0x9E3779B97F4A7C15ULL) >> 52);
}

static __always_inline bool is_host_cgroup(u64 id)
{
	u32 h = cgroup_slot(id);

	for (int i = 0; i < HOST_CGROUP_PROBES; i++) {
		u64 v = host_cgroups[(h + i) & (HOST_CGROUP_SLOTS - 1)];

		if (v == id)
			return true;
		if (v == 0)
			return false;
	}
	return false;
}

static __always_inline bool skip_current(u64 pid_tgid)
{
	if ((u32)(pid_tgid >> 32) == self_tgid)
		return true;
	if (containers_only && is_host_cgroup(bpf_get_current_cgroup_id()))
		return true;
	return false;
}

static __always_inline struct scratch *get_scratch(void)
{
	u32 zero = 0;

	return bpf_map_lookup_elem(&scratch_map, &zero);
}

static __always_inline void init_record(struct record *r, enum record_kind kind, enum record_syscall sc, u64 pid_tgid)
{
	__builtin_memset(r, 0, sizeof(*r));
	r->ts_boot_ns = bpf_ktime_get_boot_ns();
	r->kind = kind;
	r->syscall = sc;
	r->pid = pid_tgid >> 32;
	r->tid = (u32)pid_tgid;
}

static __always_inline void fill_context(struct record *r, struct task_struct *task)
{
	u64 ug = bpf_get_current_uid_gid();

	r->uid = (u32)ug;
	r->gid = ug >> 32;
	r->ppid = BPF_CORE_READ(task, real_parent, tgid);
	r->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(r->comm, sizeof(r->comm));
}

/* The number of `pid` in the initial (host) pid namespace. */
static __always_inline u32 host_pid_nr(struct pid *pid)
{
	if (!pid)
		return 0;
	return BPF_CORE_READ(pid, numbers[0].nr);
}

/* The process context of `task`: session, process group, start times. */
static __always_inline void fill_process(struct record *r, struct task_struct *task)
{
	struct signal_struct *sig = BPF_CORE_READ(task, signal);

	r->start_boot_ns = BPF_CORE_READ(task, group_leader, start_boottime);
	r->parent_start_boot_ns = BPF_CORE_READ(task, real_parent, group_leader, start_boottime);
	if (sig) {
		r->sid = host_pid_nr(BPF_CORE_READ(sig, pids[PIDTYPE_SID]));
		r->pgid = host_pid_nr(BPF_CORE_READ(sig, pids[PIDTYPE_PGID]));
	}
	r->rflags |= RF_PROC;
}

static __always_inline int submit(struct scratch *s, u32 data_len)
{
	u64 len = data_len;

	/* Never true, but the verifier needs the bound, on this register. */
	barrier_var(len);
	if (len > DATA_SIZE)
		return 0;
	u64 size = sizeof(struct record) + len;
	u64 flags = BPF_RB_NO_WAKEUP;

	/* Wake the reader once `wakeup_bytes` are waiting, but at most once per
	 * WAKEUP_GAP_NS: each forced wake-up is an interrupt on this CPU, and
	 * while the reader is still draining, every record above the threshold
	 * would raise one. A reader that was woken drains all that is there, and
	 * one that missed a wake-up finds the data on its next poll. */
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes &&
	    s->rec.ts_boot_ns - last_wakeup_ns >= WAKEUP_GAP_NS) {
		last_wakeup_ns = s->rec.ts_boot_ns;
		flags = BPF_RB_FORCE_WAKEUP;
	}

	if (bpf_ringbuf_output(&events, s, size, flags))
		__sync_fetch_and_add(&counters.lost_records, 1);
	return 0;
}

/*
 * Writes the path (dentry, vfsmnt) as seen from `task`'s root into pb, backwards,
 * like the kernel's d_path(): walk d_parent up to the mount's root, then
 * continue from the mountpoint in the parent mount, until the task's root
 * (chroot, pivot_root) or the root of its mount namespace. Bounded to
 * PATH_MAX_COMPONENTS steps (each mount crossing is a step).
 * Returns the start offset in pb->buf (the path ends at PATH_MAX_LEN), with
 * bit 31 set when the walk stopped before reaching a root.
 *
 * A global function, so the verifier checks it once rather than at each of
 * its call sites (an open-exit program walks up to three paths: the file, the
 * exe and the working directory); hence the kernel pointers passed as
 * integers (they are only read through bpf_probe_read_kernel).
 */
__noinline u32 walk_path(struct pathbuf *pb, u64 dentry_ptr, u64 vfsmnt_ptr, u64 task_ptr)
{
	struct dentry *dentry = (void *)dentry_ptr;
	struct vfsmount *vfsmnt = (void *)vfsmnt_ptr;
	struct task_struct *task = (void *)task_ptr;

	if (!pb)
		return 1u << 31;
	struct dentry *root_dentry = BPF_CORE_READ(task, fs, root.dentry);
	struct vfsmount *root_mnt = BPF_CORE_READ(task, fs, root.mnt);
	u64 mnt_off = bpf_core_field_offset(struct mount, mnt);
	struct mount *mnt = (void *)vfsmnt - mnt_off;
	u32 incomplete = 1;

	pb->pos = PATH_MAX_LEN;
	for (int i = 0; i < PATH_MAX_COMPONENTS; i++) {
		if (dentry == root_dentry && vfsmnt == root_mnt) {
			incomplete = 0;
			break;
		}
		struct dentry *mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
		struct dentry *parent = BPF_CORE_READ(dentry, d_parent);

		if (dentry == mnt_root) {
			struct mount *mnt_parent = BPF_CORE_READ(mnt, mnt_parent);

			if (mnt_parent == mnt) {
				incomplete = 0; /* root of the mount namespace */
				break;
			}
			dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = mnt_parent;
			vfsmnt = (void *)mnt + mnt_off;
			continue;
		}

		u32 len = BPF_CORE_READ(dentry, d_name.len);
		const unsigned char *name = BPF_CORE_READ(dentry, d_name.name);
		u32 pos = pb->pos;

		if (len > NAME_MAX_LEN || pos > PATH_MAX_LEN || pos <= len + 1)
			break;
		pos -= len;
		bpf_probe_read_kernel(&pb->buf[pos & PATH_MASK], len, name);
		pos -= 1;
		pb->buf[pos & PATH_MASK] = '/';
		pb->pos = pos;
		/* A dentry that is its own parent without being a mount root is
		 * not reachable from any root (pipes and memfds reopened through
		 * /proc/self/fd, ...): keep its name, mark the path incomplete. */
		if (dentry == parent)
			break;
		dentry = parent;
	}
	u32 pos = pb->pos;

	if (pos > PATH_MAX_LEN)
		return 1u << 31;
	if (pos == PATH_MAX_LEN) {
		pos -= 1;
		pb->buf[pos & PATH_MASK] = '/';
	}
	return pos | (incomplete << 31);
}

/* Appends the path (dentry, mnt) at data[off]; returns the new offset and sets
 * *len. `trunc_flag` is the rflags bit to set when the walk was incomplete. */
static __always_inline u32 put_path(struct scratch *s, u32 off, struct dentry *dentry, struct vfsmount *mnt,
				    struct task_struct *task, u16 *len, u32 trunc_flag)
{
	u32 zero = 0;
	struct pathbuf *pb = bpf_map_lookup_elem(&pathbuf_map, &zero);

	if (!pb || !dentry || !mnt || off > DATA_MASK)
		return off;
	u32 res = walk_path(pb, (u64)dentry, (u64)mnt, (u64)task);
	u32 pos = res & 0x7fffffff;

	if (pos == 0 || pos >= PATH_MAX_LEN)
		return off;
	u32 n = PATH_MAX_LEN - pos;

	/* Clang knows off <= DATA_MASK from the check above and would drop the
	 * mask, but the verifier may not have kept that bound across the call. */
	barrier_var(off);
	bpf_probe_read_kernel(&s->data[off & DATA_MASK], n & PATH_MASK, &pb->buf[pos & PATH_MASK]);
	if (res >> 31) {
		s->rec.rflags |= trunc_flag;
		__sync_fetch_and_add(&counters.path_truncated, 1);
	}
	*len = n;
	return off + n;
}

/* Appends the path of `file` at data[off] (see put_path). */
static __always_inline u32 put_file_path(struct scratch *s, u32 off, struct file *file, struct task_struct *task,
					 u16 *len, u32 trunc_flag)
{
	if (!file)
		return off;
	return put_path(s, off, BPF_CORE_READ(file, f_path.dentry), BPF_CORE_READ(file, f_path.mnt), task, len,
			trunc_flag);
}

/*
 * Appends the task's working directory unless user space already has it for
 * this thread: cwd_seen remembers, per tid, the pwd (dentry and mount) last
 * sent, the thread's start time (a reused tid is another thread) and the exe
 * generation (user space bumps it to have everything resent). A rename of the
 * directory itself is not noticed (the dentry stays the same). The tid is
 * s->rec.tid; `task` is that thread.
 */
static __always_inline u32 put_cwd_if_needed(struct scratch *s, u32 off, struct task_struct *task)
{
	struct fs_struct *fs = BPF_CORE_READ(task, fs);

	if (!fs || off > DATA_MASK)
		return off;
	struct cwd_state cur = {
		.dentry = (u64)BPF_CORE_READ(fs, pwd.dentry),
		.mnt = (u64)BPF_CORE_READ(fs, pwd.mnt),
		.start_time = BPF_CORE_READ(task, start_time),
		.generation = exe_generation,
		.tid = s->rec.tid,
	};
	struct cwd_state *last = &s->last_cwd;

	if (last->tid == cur.tid && last->dentry == cur.dentry && last->mnt == cur.mnt &&
	    last->start_time == cur.start_time && last->generation == cur.generation)
		return off;
	u32 tid = cur.tid;
	struct cwd_state *st = bpf_map_lookup_elem(&cwd_seen, &tid);

	if (st && st->dentry == cur.dentry && st->mnt == cur.mnt && st->start_time == cur.start_time &&
	    st->generation == cur.generation) {
		s->last_cwd = cur;
		return off;
	}
	u16 len = 0;

	off = put_path(s, off, (struct dentry *)cur.dentry, (struct vfsmount *)cur.mnt, task, &len, RF_CWD_TRUNCATED);
	if (len) {
		s->rec.cwd_len = len;
		s->rec.rflags |= RF_CWD;
		bpf_map_update_elem(&cwd_seen, &tid, &cur, BPF_ANY);
		s->last_cwd = cur;
	}
	return off;
}

/* Appends the exe path unless user space already has it for this process. */
static __always_inline u32 put_exe_if_needed(struct scratch *s, u32 off, struct task_struct *task)
{
	u32 tgid = s->rec.pid;
	u64 start = BPF_CORE_READ(task, group_leader, start_time);
	u32 gen = exe_generation;
	struct exe_state *st = bpf_map_lookup_elem(&exe_seen, &tgid);

	if (st && st->start_time == start && st->generation == gen)
		return off;
	struct file *exe = BPF_CORE_READ(task, mm, exe_file);

	if (!exe)
		return off;
	u16 len = 0;

	off = put_file_path(s, off, exe, task, &len, RF_EXE_TRUNCATED);
	if (len) {
		s->rec.exe_len = len;
		s->rec.rflags |= RF_EXE;
		struct exe_state ns = { .start_time = start, .generation = gen };

		bpf_map_update_elem(&exe_seen, &tgid, &ns, BPF_ANY);
	}
	return off;
}

static __always_inline u32 put_tty(struct scratch *s, u32 off, struct task_struct *task)
{
	struct tty_struct *tty = BPF_CORE_READ(task, signal, tty);

	if (!tty || off > DATA_MASK)
		return off;
	long n = bpf_core_read_str(&s->data[off & DATA_MASK], TTY_NAME_LEN, &tty->name);

	if (n <= 1 || n > TTY_NAME_LEN)
		return off;
	s->rec.tty_len = n - 1;
	s->rec.rflags |= RF_TTY;
	return off + n - 1;
}

static __always_inline struct kernfs_node *kn_parent(struct kernfs_node *kn)
{
	struct kernfs_node___pre_6_15 *old = (void *)kn;

	if (bpf_core_field_exists(old->parent))
		return BPF_CORE_READ(old, parent);
	return BPF_CORE_READ(kn, __parent);
}

/*
 * Appends the names of the task's cgroup v2 directories, innermost first,
 * each NUL-terminated, the first time a record of this cgroup id is sent
 * (user space then knows the cgroup without looking it up in the cgroup
 * filesystem, where a short-lived container's cgroup may already be gone).
 * The root (which has no name) ends the walk.
 */
static __always_inline u32 put_cgroup_if_needed(struct scratch *s, u32 off, struct task_struct *task)
{
	u64 id = s->rec.cgroup_id;

	if (id == s->last_cgroup)
		return off;
	if (bpf_map_lookup_elem(&cgroup_seen, &id)) {
		s->last_cgroup = id;
		return off;
	}
	if (off > DATA_MASK)
		return off;
	struct kernfs_node *kn = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn);
	u32 start = off;
	bool complete = false;

	for (int i = 0; i < CGROUP_MAX_DEPTH + 1; i++) {
		if (!kn)
			break;
		struct kernfs_node *parent = kn_parent(kn);

		if (!parent) {
			complete = true;
			break;
		}
		if (i == CGROUP_MAX_DEPTH || off > DATA_MASK)
			break;
		long n = bpf_probe_read_kernel_str(&s->data[off & DATA_MASK], NAME_MAX_LEN + 1, BPF_CORE_READ(kn, name));

		if (n <= 0 || n > NAME_MAX_LEN + 1)
			break;
		off += n;
		kn = parent;
	}
	if (!kn && !complete)
		return start; /* no cgroup pointer: send nothing, try again next time */
	s->rec.cgroup_len = off - start;
	s->rec.rflags |= RF_CGROUP;
	if (!complete)
		s->rec.rflags |= RF_CGROUP_TRUNCATED;
	u8 one = 1;

	bpf_map_update_elem(&cgroup_seen, &id, &one, BPF_ANY);
	s->last_cgroup = id;
	return off;
}

/* Appends a user-space string (the requested path) at data[off]. */
static __always_inline u32 put_user_req(struct scratch *s, u32 off, const char *str)
{
	if (!str || off > DATA_MASK)
		return off;
	long n = bpf_probe_read_user_str(&s->data[off & DATA_MASK], PATH_MAX_LEN, str);

	if (n <= 0 || n > PATH_MAX_LEN)
		return off;
	s->rec.req_len = n - 1;
	s->rec.rflags |= RF_REQ;
	return off + n - 1;
}

static __always_inline struct file *fd_file(struct task_struct *task, s64 fd)
{
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	unsigned int max = BPF_CORE_READ(fdt, max_fds);
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = NULL;

	if (fd < 0 || fd >= max)
		return NULL;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
}

/* ---- opens ---- */

static __always_inline int on_open_enter(u32 sc, const char *filename, s32 flags)
{
	u64 id = bpf_get_current_pid_tgid();

	if (skip_current(id))
		return 0;
	struct scratch *s = get_scratch();

	if (!s)
		return 0;
	init_record(&s->rec, REC_OPEN_ENTER, sc, id);
	s->rec.flags = flags;
	s->rec.rflags = RF_REQ_FLAGS;
	return submit(s, put_user_req(s, 0, filename));
}

static __always_inline int on_open_exit(struct syscall_exit_ctx *ctx, u32 sc)
{
	u64 id = bpf_get_current_pid_tgid();

	if (skip_current(id))
		return 0;
	struct scratch *s = get_scratch();

	if (!s)
		return 0;
	struct task_struct *task = (void *)bpf_get_current_task();
	u32 off = 0;

	init_record(&s->rec, REC_OPEN_EXIT, sc, id);
	fill_context(&s->rec, task);
	fill_process(&s->rec, task);
	s->rec.ret = ctx->ret;
	if (ctx->ret >= 0) {
		struct file *f = fd_file(task, ctx->ret);

		if (f) {
			u16 len = 0;

			s->rec.flags = BPF_CORE_READ(f, f_flags);
			s->rec.rflags |= RF_FFLAGS;
			if (BPF_CORE_READ(f, f_mode) & FMODE_CREATED)
				s->rec.rflags |= RF_CREATED;
			off = put_file_path(s, off, f, task, &len, RF_PATH_TRUNCATED);
			if (len) {
				s->rec.path_len = len;
				s->rec.rflags |= RF_PATH;
			}
		}
	}
	off = put_exe_if_needed(s, off, task);
	off = put_tty(s, off, task);
	off = put_cgroup_if_needed(s, off, task);
	off = put_cwd_if_needed(s, off, task);
	return submit(s, off);
}

SEC("tp/syscalls/sys_enter_open")
int enter_open(struct syscall_enter_ctx *ctx)
{
	return on_open_enter(SC_OPEN, (const char *)ctx->args[0], (s32)ctx->args[1]);
}

SEC("tp/syscalls/sys_exit_open")
int exit_open(struct syscall_exit_ctx *ctx)
{
	return on_open_exit(ctx, SC_OPEN);
}

SEC("tp/syscalls/sys_enter_openat")
int enter_openat(struct syscall_enter_ctx *ctx)
{
	return on_open_enter(SC_OPENAT, (const char *)ctx->args[1], (s32)ctx->args[2]);
}

SEC("tp/syscalls/sys_exit_openat")
int exit_openat(struct syscall_exit_ctx *ctx)
{
	return on_open_exit(ctx, SC_OPENAT);
}

SEC("tp/syscalls/sys_enter_openat2")
int enter_openat2(struct syscall_enter_ctx *ctx)
{
	u64 how_flags = 0;

	/* struct open_how starts with `__u64 flags`. */
	bpf_probe_read_user(&how_flags, sizeof(how_flags), (void *)ctx->args[2]);
	return on_open_enter(SC_OPENAT2, (const char *)ctx->args[1], (s32)how_flags);
}

SEC("tp/syscalls/sys_exit_openat2")
int exit_openat2(struct syscall_exit_ctx *ctx)
{
	return on_open_exit(ctx, SC_OPENAT2);
}

SEC("tp/syscalls/sys_enter_creat")
int enter_creat(struct syscall_enter_ctx *ctx)
{
	return on_open_enter(SC_CREAT, (const char *)ctx->args[0], O_CREAT | O_WRONLY | O_TRUNC);
}

SEC("tp/syscalls/sys_exit_creat")
int exit_creat(struct syscall_exit_ctx *ctx)
{
	return on_open_exit(ctx, SC_CREAT);
}

SEC("tp/syscalls/sys_enter_open_by_handle_at")
int enter_open_by_handle_at(struct syscall_enter_ctx *ctx)
{
	return on_open_enter(SC_OPEN_BY_HANDLE_AT, NULL, (s32)ctx->args[2]);
}

SEC("tp/syscalls/sys_exit_open_by_handle_at")
int exit_open_by_handle_at(struct syscall_exit_ctx *ctx)
{
	return on_open_exit(ctx, SC_OPEN_BY_HANDLE_AT);
}

/* ---- file operations (unlink, rename, link, chmod, ...) ---- */

/* Appends the second path string of a file operation (as `args`). */
static __always_inline u32 put_user_second(struct scratch *s, u32 off, const char *str)
{
	if (!str || off > DATA_MASK)
		return off;
	long n = bpf_probe_read_user_str(&s->data[off & DATA_MASK], PATH_MAX_LEN, str);

	if (n <= 0 || n > PATH_MAX_LEN)
		return off;
	s->rec.args_len = n - 1;
	s->rec.rflags |= RF_ARGS;
	return off + n - 1;
}

/* Whether a path string given with directory fd `dfd` needs that directory
 * to be resolved: a real fd (not AT_FDCWD) and a relative (or empty) string. */
static __always_inline bool needs_dir(s64 dfd, const char *str)
{
	char c = 0;

	if ((s32)dfd == AT_FDCWD || (s32)dfd < 0)
		return false;
	if (str && bpf_probe_read_user(&c, 1, str) == 0 && c == '/')
		return false;
	return true;
}

/*
 * The entry record of a file operation (see recorder.h): `first` relative to
 * `dfd1` (or, with no string, the file of fd `dfd1`), `second` relative to
 * `dfd2`. Pass AT_FDCWD for a call without a directory fd.
 */
static __always_inline int on_fop_enter(u32 sc, s64 dfd1, const char *first, s64 dfd2, const char *second)
{
	u64 id = bpf_get_current_pid_tgid();

	if (skip_current(id))
		return 0;
	struct scratch *s = get_scratch();

	if (!s)
		return 0;
	struct task_struct *task = (void *)bpf_get_current_task();
	u32 off = 0;
	u16 len = 0;

	init_record(&s->rec, REC_FOP_ENTER, sc, id);
	if (needs_dir(dfd1, first)) {
		struct file *f = fd_file(task, dfd1);

		if (f) {
			off = put_file_path(s, off, f, task, &len, RF_PATH_TRUNCATED);
			if (len) {
				s->rec.path_len = len;
				s->rec.rflags |= RF_PATH;
			}
		}
	}
	off = put_user_req(s, off, first);
	if (second && needs_dir(dfd2, second)) {
		struct file *f = fd_file(task, dfd2);

		len = 0;
		if (f) {
			off = put_file_path(s, off, f, task, &len, RF_EXE_TRUNCATED);
			if (len) {
				s->rec.exe_len = len;
				s->rec.rflags |= RF_EXE;
			}
		}
	}
	off = put_user_second(s, off, second);
	return submit(s, off);
}

/* An exit record of `kind` that carries the result and the process context
 * only (a failed exec, a file operation). */
static __always_inline int on_context_exit(struct syscall_exit_ctx *ctx, enum record_kind kind, u32 sc)
{
	u64 id = bpf_get_current_pid_tgid();

	if (skip_current(id))
		return 0;
	struct scratch *s = get_scratch();

	if (!s)
		return 0;
	struct task_struct *task = (void *)bpf_get_current_task();
	u32 off = 0;

	init_record(&s->rec, kind, sc, id);
	fill_context(&s->rec, task);
	fill_process(&s->rec, task);
	s->rec.ret = ctx->ret;
	off = put_exe_if_needed(s, off, task);
	off = put_tty(s, off, task);
	off = put_cgroup_if_needed(s, off, task);
	off = put_cwd_if_needed(s, off, task);
	return submit(s, off);
}

static __always_inline int on_fop_exit(struct syscall_exit_ctx *ctx, u32 sc)
{
	return on_context_exit(ctx, REC_FOP_EXIT, sc);
}

#define ARG_STR(i) ((const char *)ctx->args[i])
#define NO_DIR ((s64)AT_FDCWD)

/* One syscall: its entry (naming what it acts on) and exit programs. */
#define FOP(name, SC, enter_body)                                 \
	SEC("tp/syscalls/sys_enter_" #name)                       \
	int enter_##name(struct syscall_enter_ctx *ctx)           \
	{                                                         \
		return enter_body;                                \
	}                                                         \
	SEC("tp/syscalls/sys_exit_" #name)                        \
	int exit_##name(struct syscall_exit_ctx *ctx)             \
	{                                                         \
		return on_fop_exit(ctx, SC);                      \
	}

FOP(unlink, SC_UNLINK, on_fop_enter(SC_UNLINK, NO_DIR, ARG_STR(0), NO_DIR, NULL))
FOP(unlinkat, SC_UNLINKAT, on_fop_enter(SC_UNLINKAT, ctx->args[0], ARG_STR(1), NO_DIR, NULL))
FOP(rmdir, SC_RMDIR, on_fop_enter(SC_RMDIR, NO_DIR, ARG_STR(0), NO_DIR, NULL))
FOP(rename, SC_RENAME, on_fop_enter(SC_RENAME, NO_DIR, ARG_STR(0), NO_DIR, ARG_STR(1)))
FOP(renameat, SC_RENAMEAT, on_fop_enter(SC_RENAMEAT, ctx->args[0], ARG_STR(1), ctx->args[2], ARG_STR(3)))
FOP(renameat2, SC_RENAMEAT2, on_fop_enter(SC_RENAMEAT2, ctx->args[0], ARG_STR(1), ctx->args[2], ARG_STR(3)))
FOP(link, SC_LINK, on_fop_enter(SC_LINK, NO_DIR, ARG_STR(0), NO_DIR, ARG_STR(1)))
FOP(linkat, SC_LINKAT, on_fop_enter(SC_LINKAT, ctx->args[0], ARG_STR(1), ctx->args[2], ARG_STR(3)))
/* symlink(target, linkpath): the target is stored as given, never resolved. */
FOP(symlink, SC_SYMLINK, on_fop_enter(SC_SYMLINK, NO_DIR, ARG_STR(0), NO_DIR, ARG_STR(1)))
FOP(symlinkat, SC_SYMLINKAT, on_fop_enter(SC_SYMLINKAT, NO_DIR, ARG_STR(0), ctx->args[1], ARG_STR(2)))
FOP(chmod, SC_CHMOD, on_fop_enter(SC_CHMOD, NO_DIR, ARG_STR(0), NO_DIR, NULL))
FOP(fchmod, SC_FCHMOD, on_fop_enter(SC_FCHMOD, ctx->args[0], NULL, NO_DIR, NULL))
FOP(fchmodat, SC_FCHMODAT, on_fop_enter(SC_FCHMODAT, ctx->args[0], ARG_STR(1), NO_DIR, NULL))
FOP(fchmodat2, SC_FCHMODAT2, on_fop_enter(SC_FCHMODAT2, ctx->args[0], ARG_STR(1), NO_DIR, NULL))
FOP(chown, SC_CHOWN, on_fop_enter(SC_CHOWN, NO_DIR, ARG_STR(0), NO_DIR, NULL))
FOP(lchown, SC_LCHOWN, on_fop_enter(SC_LCHOWN, NO_DIR, ARG_STR(0), NO_DIR, NULL))
FOP(fchown, SC_FCHOWN, on_fop_enter(SC_FCHOWN, ctx->args[0], NULL, NO_DIR, NULL))
FOP(fchownat, SC_FCHOWNAT, on_fop_enter(SC_FCHOWNAT, ctx->args[0], ARG_STR(1), NO_DIR, NULL))
FOP(truncate, SC_TRUNCATE, on_fop_enter(SC_TRUNCATE, NO_DIR, ARG_STR(0), NO_DIR, NULL))
FOP(ftruncate, SC_FTRUNCATE, on_fop_enter(SC_FTRUNCATE, ctx->args[0], NULL, NO_DIR, NULL))
FOP(mkdir, SC_MKDIR, on_fop_enter(SC_MKDIR, NO_DIR, ARG_STR(0), NO_DIR, NULL))
FOP(mkdirat, SC_MKDIRAT, on_fop_enter(SC_MKDIRAT, ctx->args[0], ARG_STR(1), NO_DIR, NULL))
FOP(mknod, SC_MKNOD, on_fop_enter(SC_MKNOD, NO_DIR, ARG_STR(0), NO_DIR, NULL))
FOP(mknodat, SC_MKNODAT, on_fop_enter(SC_MKNODAT, ctx->args[0], ARG_STR(1), NO_DIR, NULL))

/* ---- execs ---- */

static __always_inline int on_exec_enter(u32 sc, const char *filename, const char *const *argv)
{
	u64 id = bpf_get_current_pid_tgid();

	if (skip_current(id))
		return 0;
	struct scratch *s = get_scratch();

	if (!s)
		return 0;
	init_record(&s->rec, REC_EXEC_ENTER, sc, id);
	u32 start = put_user_req(s, 0, filename);
	u32 alen = 0;
	bool complete = false;

	for (int i = 0; i < ARGV_MAX_PTRS; i++) {
		const char *arg = NULL;

		if (bpf_probe_read_user(&arg, sizeof(arg), &argv[i]) || !arg) {
			complete = true;
			break;
		}
		if (alen >= ARGS_MAX_LEN)
			break;
		/* A no-op after the check above, but it gives the verifier the bound
		 * on this very register (clang may test a copy). */
		u64 used = alen & (ARGS_MAX_LEN - 1);
		u64 room = ARGS_MAX_LEN - used;
		long n = bpf_probe_read_user_str(&s->data[(start + used) & DATA_MASK], room, arg);

		if (n <= 0 || n > ARGS_MAX_LEN)
			break;
		if (n == room) {
			alen = ARGS_MAX_LEN; /* the string filled the space: cut */
			break;
		}
		alen += n;
	}
	if (!complete && alen < ARGS_MAX_LEN) {
		/* Stopped at the pointer limit or on an unreadable argument:
		 * complete only if the next pointer is NULL. */
		const char *arg = NULL;

		if (!bpf_probe_read_user(&arg, sizeof(arg), &argv[ARGV_MAX_PTRS]) && !arg)
			complete = true;
	}
	s->rec.args_len = alen;
	s->rec.rflags |= RF_ARGS;
	if (!complete)
		s->rec.rflags |= RF_ARGS_TRUNCATED;
	return submit(s, start + alen);
}

static __always_inline int on_exec_exit(struct syscall_exit_ctx *ctx, u32 sc)
{
	/* Successful execs are reported by sched_process_exec. */
	if (ctx->ret >= 0)
		return 0;
	return on_context_exit(ctx, REC_EXEC_EXIT, sc);
}

SEC("tp/syscalls/sys_enter_execve")
int enter_execve(struct syscall_enter_ctx *ctx)
{
	return on_exec_enter(SC_EXECVE, (const char *)ctx->args[0], (const char *const *)ctx->args[1]);
}

SEC("tp/syscalls/sys_exit_execve")
int exit_execve(struct syscall_exit_ctx *ctx)
{
	return on_exec_exit(ctx, SC_EXECVE);
}

SEC("tp/syscalls/sys_enter_execveat")
int enter_execveat(struct syscall_enter_ctx *ctx)
{
	return on_exec_enter(SC_EXECVEAT, (const char *)ctx->args[1], (const char *const *)ctx->args[2]);
}

SEC("tp/syscalls/sys_exit_execveat")
int exit_execveat(struct syscall_exit_ctx *ctx)
{
	return on_exec_exit(ctx, SC_EXECVEAT);
}

/* sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm):
 * the exec has succeeded and the new image is in place. */
SEC("raw_tp/sched_process_exec")
int handle_exec(struct bpf_raw_tracepoint_args *ctx)
{
	u64 id = bpf_get_current_pid_tgid();

	if (skip_current(id))
		return 0;
	struct scratch *s = get_scratch();

	if (!s)
		return 0;
	struct task_struct *task = (void *)bpf_get_current_task();
	struct linux_binprm *bprm = (void *)ctx->args[2];
	u32 off = 0;
	u16 len = 0;

	init_record(&s->rec, REC_EXEC, SC_SCHED_EXEC, id);
	fill_context(&s->rec, task);
	fill_process(&s->rec, task);
	s->rec.old_tid = (u32)ctx->args[1];

	/* path: the file the kernel executed (the interpreter for #! scripts). */
	off = put_file_path(s, off, BPF_CORE_READ(bprm, file), task, &len, RF_PATH_TRUNCATED);
	if (len) {
		s->rec.path_len = len;
		s->rec.rflags |= RF_PATH | RF_EXE_IS_PATH;
	}

	/* req: bprm->filename (user space prefers the string from exec entry). */
	const char *fname = BPF_CORE_READ(bprm, filename);
	long n = off > DATA_MASK ? 0 : bpf_probe_read_kernel_str(&s->data[off & DATA_MASK], PATH_MAX_LEN, fname);

	if (n > 0 && n <= PATH_MAX_LEN) {
		s->rec.req_len = n - 1;
		s->rec.rflags |= RF_REQ;
		off += n - 1;
	}

	/* args: the new image's argv area, NUL-separated. */
	struct mm_struct *mm = BPF_CORE_READ(task, mm);
	unsigned long arg_start = BPF_CORE_READ(mm, arg_start);
	unsigned long arg_end = BPF_CORE_READ(mm, arg_end);
	u64 total = arg_end > arg_start ? arg_end - arg_start : 0;
	u32 alen = total > ARGS_MAX_LEN ? ARGS_MAX_LEN : (u32)total;

	s->rec.args_total = total > 0xffffffff ? 0xffffffff : (u32)total;
	if (alen > 0 && alen <= ARGS_MAX_LEN && off <= DATA_MASK &&
	    bpf_probe_read_user(&s->data[off & DATA_MASK], alen, (void *)arg_start) == 0) {
		s->rec.args_len = alen;
		s->rec.rflags |= RF_ARGS;
		if (total > alen)
			s->rec.rflags |= RF_ARGS_TRUNCATED;
		off += alen;
	}

	if (len) {
		u32 tgid = s->rec.pid;
		struct exe_state ns = {
			.start_time = BPF_CORE_READ(task, group_leader, start_time),
			.generation = exe_generation,
		};

		bpf_map_update_elem(&exe_seen, &tgid, &ns, BPF_ANY);
	}
	off = put_tty(s, off, task);
	off = put_cgroup_if_needed(s, off, task);
	off = put_cwd_if_needed(s, off, task);
	return submit(s, off);
}

/* ---- forks and exits ---- */

/* sched_process_fork(struct task_struct *parent, struct task_struct *child):
 * runs in the parent after copy_process(), before the child first runs. The
 * record describes the child; its fs, mm, signal, cred and cgroups are set up. */
SEC("raw_tp/sched_process_fork")
int handle_fork(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *child = (void *)ctx->args[1];
	u64 id = bpf_get_current_pid_tgid();

	if ((u32)(id >> 32) == self_tgid || !child)
		return 0;
	u64 cgroup = BPF_CORE_READ(child, cgroups, dfl_cgrp, kn, id);

	if (containers_only && is_host_cgroup(cgroup))
		return 0;
	struct scratch *s = get_scratch();

	if (!s)
		return 0;
	u32 tgid = BPF_CORE_READ(child, tgid);
	u32 tid = BPF_CORE_READ(child, pid);
	u32 off = 0;

	init_record(&s->rec, REC_FORK, SC_SCHED_FORK, ((u64)tgid << 32) | tid);
	s->rec.uid = BPF_CORE_READ(child, cred, uid.val);
	s->rec.gid = BPF_CORE_READ(child, cred, gid.val);
	s->rec.ppid = BPF_CORE_READ(child, real_parent, tgid);
	s->rec.cgroup_id = cgroup;
	BPF_CORE_READ_STR_INTO(&s->rec.comm, child, comm);
	fill_process(&s->rec, child);
	if (tid != tgid)
		s->rec.rflags |= RF_THREAD;
	else
		off = put_exe_if_needed(s, off, child);
	off = put_tty(s, off, child);
	off = put_cgroup_if_needed(s, off, child);
	off = put_cwd_if_needed(s, off, child);
	return submit(s, off);
}

/* sched_process_exit(struct task_struct *p[, bool group_dead]): runs in the
 * exiting thread after signal->live was decremented (so live == 0 means the
 * process's last thread is leaving) and before its fs and files are released. */
SEC("raw_tp/sched_process_exit")
int handle_exit(struct bpf_raw_tracepoint_args *ctx)
{
	u64 id = bpf_get_current_pid_tgid();

	if (skip_current(id))
		return 0;
	struct scratch *s = get_scratch();

	if (!s)
		return 0;
	struct task_struct *task = (void *)bpf_get_current_task();
	u32 tid = (u32)id;
	u32 off = 0;

	init_record(&s->rec, REC_EXIT, SC_SCHED_EXIT, id);
	fill_context(&s->rec, task);
	fill_process(&s->rec, task);
	s->rec.ret = BPF_CORE_READ(task, exit_code);
	if (BPF_CORE_READ(task, signal, live.counter) == 0)
		s->rec.rflags |= RF_GROUP_DEAD;
	off = put_tty(s, off, task);
	off = put_cgroup_if_needed(s, off, task);
	/* The thread is gone: user space forgets its cwd, so must the kernel. */
	bpf_map_delete_elem(&cwd_seen, &tid);
	if (s->last_cwd.tid == tid)
		s->last_cwd.tid = 0;
	return submit(s, off);
}
