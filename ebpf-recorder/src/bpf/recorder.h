/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What the kernel side of tokenscan-record sends to user space.
 *
 * Every ring buffer record is a `struct record` header followed by up to seven
 * variable-length byte strings, in this order and without terminating NULs:
 * path, req, exe, args, tty, cgroup, cwd (their lengths are in the header). User space
 * decodes the header with the skeleton's generated `types::record`, so this
 * file is the single definition of the layout.
 *
 * An open is two records joined in user space by thread id: REC_OPEN_ENTER
 * (the requested path string and flags, read when the syscall starts, so a
 * racing thread cannot rewrite them afterwards) and REC_OPEN_EXIT (the result
 * and, on success, the path of the file the kernel opened). An exec is
 * REC_EXEC_ENTER (file name and argv as passed) and then either REC_EXEC
 * (sched_process_exec: the new image's argv, executed file, comm) or
 * REC_EXEC_EXIT with a negative result.
 *
 * REC_FORK (sched_process_fork) describes the NEW task: pid = its thread
 * group id, tid = its thread id, ppid = its real parent's thread group id;
 * RF_THREAD when it is a thread of an existing process (CLONE_THREAD). It
 * carries the child's exe (new processes) and working directory.
 * REC_EXIT (sched_process_exit) is sent by every exiting thread; RF_GROUP_DEAD
 * marks the process's last thread (the process ends); `ret` holds the task's
 * exit_code (wait status: exit status << 8 | terminating signal).
 *
 * A file operation other than an open (unlink, rename, link, chmod, ...) is
 * REC_FOP_ENTER and REC_FOP_EXIT, joined by thread id like an open. The
 * entry record holds what the call names, read when the syscall starts:
 * `req` the first path string (the file; for rename and link the old name,
 * for symlink the target), `args` the second path string (the new name of a
 * rename or link, the link path of a symlink), `path` the directory the
 * first string is relative to when the call gives a directory fd (or, for
 * fchmod/fchown/ftruncate, the file of the fd), `exe` the directory of the
 * second string likewise; a string relative to AT_FDCWD is joined with the
 * thread's working directory in user space. The exit record holds the
 * result and the process context.
 * REC_OPEN_EXIT sets RF_CREATED when the open created the file (the kernel's
 * FMODE_CREATED in f_mode).
 *
 * Every record except the entry records carries the process context: session
 * id, process group id, the start time of the process (its thread group
 * leader's start_boottime) and of its real parent, and (when it changed for
 * this thread, or was never sent) the working directory.
 */
#ifndef __TOKENSCAN_RECORDER_H__
#define __TOKENSCAN_RECORDER_H__

#define TASK_COMM_LEN 16
/* Longest path the kernel accepts, including its NUL. */
#define PATH_MAX_LEN 4096
/* argv bytes recorded per exec (NUL separators included); more is marked truncated. */
#define ARGS_MAX_LEN 8192
/* argv pointers followed at exec entry (failed execs only keep these). */
#define ARGV_MAX_PTRS 128
/* tty_struct.name is char[64]. */
#define TTY_NAME_LEN 64
/* Path components (and mount crossings) walked per path before giving up. */
#define PATH_MAX_COMPONENTS 64
/* cgroup levels (below the root) named in a record's cgroup segment. */
#define CGROUP_MAX_DEPTH 16
/* Slots of the user-space-filled host cgroup set (a power of two). */
#define HOST_CGROUP_SLOTS 4096
/* Linear-probing distance in the host cgroup set. */
#define HOST_CGROUP_PROBES 8

/* record.kind */
enum record_kind {
	REC_OPEN_ENTER = 1,
	REC_OPEN_EXIT = 2,
	REC_EXEC_ENTER = 3,
	REC_EXEC = 4,
	REC_EXEC_EXIT = 5,
	REC_FORK = 6,
	REC_EXIT = 7,
	REC_FOP_ENTER = 8,
	REC_FOP_EXIT = 9,
};

/* record.syscall */
enum record_syscall {
	SC_OPEN = 1,
	SC_OPENAT = 2,
	SC_OPENAT2 = 3,
	SC_CREAT = 4,
	SC_OPEN_BY_HANDLE_AT = 5,
	SC_EXECVE = 6,
	SC_EXECVEAT = 7,
	SC_SCHED_EXEC = 8,
	SC_SCHED_FORK = 9,
	SC_SCHED_EXIT = 10,
	/* File operations (REC_FOP_*). */
	SC_UNLINK = 11,
	SC_UNLINKAT = 12,
	SC_RMDIR = 13,
	SC_RENAME = 14,
	SC_RENAMEAT = 15,
	SC_RENAMEAT2 = 16,
	SC_LINK = 17,
	SC_LINKAT = 18,
	SC_SYMLINK = 19,
	SC_SYMLINKAT = 20,
	SC_CHMOD = 21,
	SC_FCHMOD = 22,
	SC_FCHMODAT = 23,
	SC_FCHMODAT2 = 24,
	SC_CHOWN = 25,
	SC_LCHOWN = 26,
	SC_FCHOWN = 27,
	SC_FCHOWNAT = 28,
	SC_TRUNCATE = 29,
	SC_FTRUNCATE = 30,
	SC_MKDIR = 31,
	SC_MKDIRAT = 32,
	SC_MKNOD = 33,
	SC_MKNODAT = 34,
};

/* record.rflags */
enum record_flags {
	/* `path` is present (the opened or executed file was resolved). */
	RF_PATH = 1 << 0,
	/* The path walk stopped early (too deep or too long); `path` holds the tail. */
	RF_PATH_TRUNCATED = 1 << 1,
	/* `req` is present (the requested path string was readable). */
	RF_REQ = 1 << 2,
	/* `exe` is present. */
	RF_EXE = 1 << 3,
	/* The exe is the same as `path` (exec records), so `exe` is not repeated. */
	RF_EXE_IS_PATH = 1 << 4,
	/* `args` is present. */
	RF_ARGS = 1 << 5,
	/* argv was longer than what `args` holds. */
	RF_ARGS_TRUNCATED = 1 << 6,
	/* The task has a controlling terminal; its name is in `tty`. */
	RF_TTY = 1 << 7,
	/* `flags` holds the opened file's f_flags (else: requested flags, or none). */
	RF_FFLAGS = 1 << 8,
	/* `flags` holds the requested open flags (enter records). */
	RF_REQ_FLAGS = 1 << 9,
	/* The exe path walk stopped early; `exe` holds the tail. */
	RF_EXE_TRUNCATED = 1 << 10,
	/* `cgroup` is present: the names of the task's cgroup v2 directories,
	 * innermost first, each followed by a NUL (sent once per cgroup id, so
	 * that user space knows the cgroup even if it is removed before it
	 * could look the id up). */
	RF_CGROUP = 1 << 11,
	/* The cgroup is nested deeper than CGROUP_MAX_DEPTH: `cgroup` holds its
	 * innermost levels only. */
	RF_CGROUP_TRUNCATED = 1 << 12,
	/* `cwd` is present: the thread's working directory (fs->pwd), resolved
	 * like `path`. Sent when this thread's pwd differs from what was last
	 * sent for it (see cwd_seen), so user space keeps it per thread. */
	RF_CWD = 1 << 13,
	/* The cwd walk stopped early; `cwd` holds the tail. */
	RF_CWD_TRUNCATED = 1 << 14,
	/* REC_FORK: the new task is a thread (CLONE_THREAD), not a process. */
	RF_THREAD = 1 << 15,
	/* REC_EXIT: the last thread of the process exited (signal->live == 0). */
	RF_GROUP_DEAD = 1 << 16,
	/* The process context (sid, pgid, start times) is filled in. */
	RF_PROC = 1 << 17,
	/* REC_OPEN_EXIT: the open created the file (FMODE_CREATED). */
	RF_CREATED = 1 << 18,
};

struct record {
	u64 ts_boot_ns;    /* bpf_ktime_get_boot_ns() */
	u64 cgroup_id;     /* cgroup v2 id of the task */
	s64 ret;           /* syscall return value (exit records); exit_code (REC_EXIT) */
	u64 start_boot_ns; /* the process's start: group_leader->start_boottime (RF_PROC) */
	u64 parent_start_boot_ns; /* the real parent process's start, likewise (RF_PROC) */
	enum record_kind kind;
	enum record_syscall syscall;
	u32 pid;           /* thread group id (host pid namespace) */
	u32 tid;           /* thread id */
	u32 ppid;          /* real parent's thread group id */
	u32 old_tid;       /* REC_EXEC: the tid that called execve (de_thread may change it) */
	u32 uid;           /* real uid (init user namespace) */
	u32 gid;           /* real gid */
	s32 flags;         /* open flags, see RF_FFLAGS / RF_REQ_FLAGS */
	u32 rflags;        /* enum record_flags */
	u32 args_total;    /* REC_EXEC: bytes of argv in the new image */
	u32 sid;           /* session id (host pid namespace; RF_PROC) */
	u32 pgid;          /* process group id (host pid namespace; RF_PROC) */
	u16 path_len;
	u16 req_len;
	u16 exe_len;
	u16 args_len;
	u16 tty_len;
	u16 cgroup_len;
	u16 cwd_len;
	char comm[TASK_COMM_LEN];
};

/* Counters the kernel side keeps in .bss for user space (read via mmap). */
struct counters {
	u64 lost_records;     /* ring buffer full: record dropped */
	u64 path_truncated;   /* path walks that hit a limit */
};

#endif /* __TOKENSCAN_RECORDER_H__ */
