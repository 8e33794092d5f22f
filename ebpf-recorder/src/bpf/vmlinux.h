/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * A hand-trimmed vmlinux.h for tokenscan-record.
 *
 * Instead of the multi-megabyte `bpftool btf dump file /sys/kernel/btf/vmlinux
 * format c` output, this header declares only the kernel types and the few
 * fields the recorder reads. Every kernel struct carries
 * preserve_access_index, so clang emits CO-RE relocations by *field name*;
 * libbpf resolves them against the running kernel's BTF at load time (it
 * descends into anonymous unions and structs by itself, so the flat layouts
 * below match kernels that nest these fields). Field order and offsets here
 * do not matter; names and kinds do. A field that a kernel lacks makes the
 * load fail with a CO-RE relocation error naming it, never a silent misread.
 *
 * The tracepoint context structs at the end are NOT relocated: they are the
 * fixed layouts of the syscalls tracepoints (ABI) and of raw tracepoints.
 *
 * Kernel surface used (checked on 5.8 .. 6.18):
 *   task_struct: pid tgid real_parent group_leader start_time start_boottime
 *     comm exit_code cred fs files signal mm
 *   signal_struct.{tty, live, pids[PIDTYPE_PGID], pids[PIDTYPE_SID]}
 *     -> tty_struct.name; pid.numbers[0].nr (the host pid namespace's number)
 *   cred.{uid,gid}
 *   files_struct.fdt -> fdtable.{max_fds,fd}
 *   file.{f_path,f_flags}; path.{mnt,dentry}; dentry.{d_parent,d_name}; qstr.{len,name}
 *   vfsmount.mnt_root; mount.{mnt_parent,mnt_mountpoint,mnt}
 *   fs_struct.{root,pwd}; mm_struct.{arg_start,arg_end,exe_file}
 *   linux_binprm.{file,filename}
 *   task_struct.cgroups -> css_set.dfl_cgrp -> cgroup.kn ->
 *     kernfs_node.{id, name, parent (before 6.15) or __parent (6.15 and later)}
 */
#ifndef __TOKENSCAN_VMLINUX_H__
#define __TOKENSCAN_VMLINUX_H__

typedef signed char __s8;
typedef unsigned char __u8;
typedef short int __s16;
typedef short unsigned int __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long int __s64;
typedef long long unsigned int __u64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;

typedef __s8 s8;
typedef __u8 u8;
typedef __s16 s16;
typedef __u16 u16;
typedef __s32 s32;
typedef __u32 u32;
typedef __s64 s64;
typedef __u64 u64;
typedef _Bool bool;
enum { false = 0, true = 1 };

/* UAPI constants (include/uapi/linux/bpf.h); stable by definition. */
enum bpf_map_type {
	BPF_MAP_TYPE_UNSPEC = 0,
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_RINGBUF = 27,
};
enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
	BPF_EXIST = 2,
};
enum {
	BPF_RB_NO_WAKEUP = 1,
	BPF_RB_FORCE_WAKEUP = 2,
};
enum {
	BPF_RB_AVAIL_DATA = 0,
	BPF_RB_RING_SIZE = 1,
};
/* Only named by a helper prototype in bpf_helper_defs.h. */
enum rc_proto { RC_PROTO_UNKNOWN = 0 };

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct qstr {
	u32 hash;
	u32 len;
	const unsigned char *name;
};

struct dentry {
	struct dentry *d_parent;
	struct qstr d_name;
};

struct vfsmount {
	struct dentry *mnt_root;
};

struct mount {
	struct mount *mnt_parent;
	struct dentry *mnt_mountpoint;
	struct vfsmount mnt;
};

struct path {
	struct vfsmount *mnt;
	struct dentry *dentry;
};

struct file {
	struct path f_path;
	unsigned int f_flags;
	unsigned int f_mode; /* fmode_t */
};

struct fdtable {
	unsigned int max_fds;
	struct file **fd;
};

struct files_struct {
	struct fdtable *fdt;
};

struct fs_struct {
	struct path root;
	struct path pwd;
};

struct tty_struct {
	char name[64];
};

typedef struct {
	int counter;
} atomic_t;

typedef struct {
	u32 val;
} kuid_t;

typedef struct {
	u32 val;
} kgid_t;

enum pid_type {
	PIDTYPE_PID = 0,
	PIDTYPE_TGID = 1,
	PIDTYPE_PGID = 2,
	PIDTYPE_SID = 3,
	PIDTYPE_MAX = 4,
};

struct pid_namespace;

struct upid {
	int nr;
	struct pid_namespace *ns;
};

/* numbers[level]: level 0 is the initial (host) pid namespace. A flexible
 * array in the kernel; index 0 always exists. */
struct pid {
	unsigned int level;
	struct upid numbers[1];
};

struct signal_struct {
	atomic_t live;
	struct pid *pids[PIDTYPE_MAX];
	struct tty_struct *tty;
};

struct cred {
	kuid_t uid;
	kgid_t gid;
};

struct mm_struct {
	unsigned long arg_start;
	unsigned long arg_end;
	struct file *exe_file;
};

struct kernfs_node {
	u64 id;
	struct kernfs_node *__parent;
	const char *name;
};

/* kernfs_node before 6.15 (the parent pointer was renamed when it became
 * RCU-protected); a CO-RE "flavor": libbpf matches it to `struct kernfs_node`. */
struct kernfs_node___pre_6_15 {
	struct kernfs_node *parent;
};

struct cgroup {
	struct kernfs_node *kn;
};

struct css_set {
	struct cgroup *dfl_cgrp;
};

struct task_struct {
	int pid;
	int tgid;
	struct task_struct *real_parent;
	struct task_struct *group_leader;
	u64 start_time;
	u64 start_boottime;
	char comm[16];
	int exit_code;
	const struct cred *cred;
	struct fs_struct *fs;
	struct files_struct *files;
	struct signal_struct *signal;
	struct mm_struct *mm;
	struct css_set *cgroups;
};

struct linux_binprm {
	struct file *file;
	const char *filename;
};

#pragma clang attribute pop

/* Fixed layouts (not relocated). */

/* tracepoint syscalls/sys_enter_*: 8 bytes of common fields, the syscall
 * number (int, padded to 8), then the six arguments as 8-byte words. */
struct syscall_enter_ctx {
	u64 common;
	s64 nr;
	u64 args[6];
};

/* tracepoint syscalls/sys_exit_*: common fields, syscall number, return value. */
struct syscall_exit_ctx {
	u64 common;
	s64 nr;
	s64 ret;
};

/* raw_tp programs receive the tracepoint's arguments as u64 words. */
struct bpf_raw_tracepoint_args {
	u64 args[0];
};

#endif /* __TOKENSCAN_VMLINUX_H__ */
