/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * cr-lab engine image objects (version CKPT_IMAGE_VERSION).
 *
 * The header, tree and tail objects are in <uapi/linux/checkpoint.h>; these
 * are private to the engine.  Each starts with struct ckpt_hdr and has a
 * size that is a multiple of 8; variable parts (strings, arrays, page data)
 * follow the fixed part and are padded to 8 bytes.
 *
 * The stream: HEADER TREE [CHAIN], then the part of each task (or a
 * ZOMBIE), then TAIL.  The part of one task:
 *   TASK PROCESS ITIMERS POSIX_TIMER* SIGNAL SIGPENDING CRED RLIMITS FS
 *   (PIPE | FILE | FD)* MM (FILE | VMA)* CPU FPU
 * PAGES objects name their task and may follow its part anywhere before
 * TAIL: a copy-on-write checkpoint writes them after the tasks run again.
 */
#ifndef CRENGINE_CKPT_IMAGE_H
#define CRENGINE_CKPT_IMAGE_H

#include <linux/types.h>

/* Engine objects, numbered in the gap the uapi list leaves below ERROR */
#define CKPT_HDR_SIGPENDING	32
#define CKPT_HDR_CRED		33
#define CKPT_HDR_RLIMITS	34
#define CKPT_HDR_PIPE		35
#define CKPT_HDR_ZOMBIE		36
#define CKPT_HDR_CHAIN		120

/* Process-level state, timers, SysV IPC and namespaces: 80-99 */
#define CKPT_HDR_PROCESS	80
#define CKPT_HDR_ITIMERS	81
#define CKPT_HDR_POSIX_TIMER	82

struct ckpt_hdr_task {
	struct ckpt_hdr h;
	__s32 pid;
	__u32 exit_signal;
	char comm[16];
	__u64 rseq;		/* rseq(2) registration, 0 if none */
	__u32 rseq_len;
	__u32 rseq_sig;
};

enum ckpt_process_flags {
	CKPT_PROC_SUBREAPER	= 1 << 0,	/* PR_SET_CHILD_SUBREAPER */
	CKPT_PROC_NO_NEW_PRIVS	= 1 << 1,	/* PR_SET_NO_NEW_PRIVS */
	CKPT_PROC_STOPPED	= 1 << 2,	/* in a job-control stop */
	CKPT_PROC_RESET_ON_FORK	= 1 << 3,	/* SCHED_RESET_ON_FORK */
};

/*
 * What prctl(2), personality(2) and sched_setattr(2) set, the executable
 * and a job-control stop; then the path of /proc/self/exe, NUL-terminated
 */
struct ckpt_hdr_process {
	struct ckpt_hdr h;
	__u32 personality;
	__u32 pdeath_signal;
	__u32 dumpable;		/* SUID_DUMP_* */
	__u32 flags;		/* enum ckpt_process_flags */
	__u64 timer_slack_ns;
	__u64 default_timer_slack_ns;
	__u32 policy;		/* SCHED_* */
	__u32 rt_priority;
	__s32 nice;
	__u32 stop_signal;	/* CKPT_PROC_STOPPED: the signal that stopped it */
	__u32 stop_code;	/* its wait status code, 0 once the parent waited for it */
	__u32 exe_len;		/* including the NUL; 0 if no executable */
	__u64 dl_runtime, dl_deadline, dl_period;	/* SCHED_DEADLINE */
};

/* One interval timer (setitimer(2)) or POSIX timer value: what is left and the period */
struct ckpt_timer_value {
	__u64 value_ns;		/* 0: disarmed */
	__u64 interval_ns;
};

/* ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF */
struct ckpt_hdr_itimers {
	struct ckpt_hdr h;
	struct ckpt_timer_value it[3];
};

/* One POSIX timer (timer_create(2)), recreated with its id */
struct ckpt_hdr_posix_timer {
	struct ckpt_hdr h;
	__s32 id;
	__s32 clock;		/* CLOCK_* */
	__u32 notify;		/* SIGEV_* as given to timer_create */
	__u32 signo;
	__u64 sigval;		/* sigev_value */
	__s32 tid;		/* SIGEV_THREAD_ID: the thread, 0 otherwise */
	__u32 pad;
	struct ckpt_timer_value v;
	__s64 overrun;		/* what timer_getoverrun(2) returns */
};

/* A zombie of the tree, in place of its TASK ... part: it only ends again */
struct ckpt_hdr_zombie {
	struct ckpt_hdr h;
	__s32 pid;
	__u32 exit_code;	/* its wait status */
};

/* blocked mask and handlers of signals 1.._NSIG */
struct ckpt_sigaction {
	__u64 handler;
	__u64 flags;
	__u64 restorer;
	__u64 mask;
};

struct ckpt_hdr_signal {
	struct ckpt_hdr h;
	__u64 blocked;
	struct ckpt_sigaction action[64];
};

/*
 * Signals queued to the task, private and process-wide, oldest first;
 * followed by nr entries.  info is the kernel_siginfo as the kernel keeps it.
 */
struct ckpt_sigqueue {
	__u32 shared;		/* queued to the process, not the thread */
	__u32 pad;
	__u8 info[48];		/* struct kernel_siginfo */
};

struct ckpt_hdr_sigpending {
	struct ckpt_hdr h;
	__u32 nr;
	__u32 pad;
};

#define CKPT_NGROUPS_MAX	1024

/* Credentials, as ids in the checkpointer's user namespace; then groups[] */
struct ckpt_hdr_cred {
	struct ckpt_hdr h;
	__u32 uid, euid, suid, fsuid;
	__u32 gid, egid, sgid, fsgid;
	__u64 cap_inheritable, cap_permitted, cap_effective;
	__u64 cap_bset, cap_ambient;
	__u32 securebits;
	__u32 ngroups;		/* at most CKPT_NGROUPS_MAX */
};

/* Resource limits, RLIM_NLIMITS of them */
struct ckpt_rlimit {
	__u64 cur;
	__u64 max;
};

struct ckpt_hdr_rlimits {
	struct ckpt_hdr h;
	__u32 nr;		/* RLIM_NLIMITS of the checkpointing kernel */
	__u32 pad;
	struct ckpt_rlimit rlim[16];
};

/* cwd and umask; followed by the cwd path, NUL-terminated */
struct ckpt_hdr_fs {
	struct ckpt_hdr h;
	__u32 umask;
	__u32 path_len;		/* including the NUL */
};

enum ckpt_file_kind {
	CKPT_FILE_REG = 1,	/* regular file, reopened by path */
	CKPT_FILE_DIR,		/* directory, reopened by path */
	CKPT_FILE_CHR,		/* /dev/{null,zero,random,urandom} */
	CKPT_FILE_PIPE,		/* an end of the pipe a PIPE object defines */
	CKPT_FILE_FIFO,		/* a named pipe, reopened by path; its PIPE holds the data */
};

/*
 * A pipe or the pipe of a FIFO, before the first FILE that is one of its
 * ends; then its data (and, for a FIFO, nothing else: the FILE has the path)
 */
struct ckpt_hdr_pipe {
	struct ckpt_hdr h;
	__s32 objref;
	__u32 nr_bytes;		/* in flight, at most CKPT_PIPE_DATA_MAX */
};

#define CKPT_PIPE_DATA_MAX	65536	/* what a pipe of the default size holds */

/* An open file, defined once and referenced by objref; then its path */
struct ckpt_hdr_file {
	struct ckpt_hdr h;
	__s32 objref;
	__u32 kind;		/* enum ckpt_file_kind */
	__u32 f_flags;
	__u32 rdev;		/* CKPT_FILE_CHR: the device number */
	__s64 pos;
	__u32 path_len;		/* including the NUL */
	__s32 pipe;		/* CKPT_FILE_PIPE, _FIFO: the PIPE object's id */
};

enum ckpt_fd_kind {
	CKPT_FD_FILE = 1,	/* the file defined by objref */
	CKPT_FD_INHERIT,	/* stdio of a type we do not save: keep the restarter's */
};

struct ckpt_hdr_fd {
	struct ckpt_hdr h;
	__s32 fd;
	__s32 objref;
	__u32 kind;		/* enum ckpt_fd_kind */
	__u32 cloexec;
};

#define CKPT_AUXV_WORDS 64

struct ckpt_hdr_mm {
	struct ckpt_hdr h;
	__u64 start_code, end_code, start_data, end_data;
	__u64 start_brk, brk, start_stack;
	__u64 arg_start, arg_end, env_start, env_end;
	__u64 vdso;		/* vDSO text, 0 if none */
	__u64 vvar;		/* start of the vDSO data pages */
	__u32 nr_vmas;
	__u32 nr_auxv;		/* words used in saved_auxv */
	__u64 saved_auxv[CKPT_AUXV_WORDS];
};

enum ckpt_vma_kind {
	CKPT_VMA_ANON = 1,	/* private anonymous (heap, stack, malloc) */
	CKPT_VMA_SHANON,	/* shared anonymous (shmem) */
	CKPT_VMA_FILE,		/* private file mapping */
	CKPT_VMA_SHFILE,	/* shared file mapping: contents live in the file */
};

struct ckpt_hdr_vma {
	struct ckpt_hdr h;
	__u64 start;
	__u64 end;
	__u64 pgoff;
	__u64 vm_flags;		/* restored: madvise(2) and mlock(2) flags */
	__u32 kind;		/* enum ckpt_vma_kind */
	__u32 prot;		/* PROT_* */
	__s32 objref;		/* the file, 0 for anonymous kinds */
	__u32 growsdown;
};

/* General registers, in the layout of struct user_regs_struct */
struct ckpt_hdr_cpu {
	struct ckpt_hdr h;
	__u64 r15, r14, r13, r12, bp, bx, r11, r10, r9, r8;
	__u64 ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
	__u64 fs_base, gs_base, ds, es, fs, gs;
};

/* FPU state in the format of the ptrace regset @note (NT_X86_XSTATE or NT_PRFPREG) */
struct ckpt_hdr_fpu {
	struct ckpt_hdr h;
	__u32 note;
	__u32 size;
};

/*
 * Where the image stands in a chain of checkpoints, right after TREE
 * (CHECKPOINT_TRACK and CHECKPOINT_INCREMENTAL); then the parent's path.
 */
struct ckpt_hdr_chain {
	struct ckpt_hdr h;
	__u64 id;		/* this image's, random */
	__u64 parent_id;	/* the image CKPT_RUN_PARENT pages are in, 0 if none */
	__u32 tracking;		/* the tasks' written pages are tracked from this image on */
	__u32 path_len;		/* the parent's path, NUL included; 0 if none */
};

#define CKPT_CHAIN_MAX		64	/* images in a chain */

/* Pages at consecutive addresses */
struct ckpt_page_run {
	__u64 addr;
	__u32 nr;
	__u32 flags;		/* CKPT_RUN_* */
};

#define CKPT_RUN_PARENT		0x1	/* unchanged: the data is in the parent image */

/*
 * Page contents of one task: nr_runs runs, zeros up to data_off, then the
 * data of each run without CKPT_RUN_PARENT, in order; h.len counts it
 * all.  data_off makes the data start page-aligned in the image file, so
 * that restart can map it.  The trailer's checksum covers the first
 * data_off bytes, not the data.
 */
struct ckpt_hdr_pages {
	struct ckpt_hdr h;
	__s32 pid;
	__u32 nr_runs;
	__u64 nr_pages;		/* pages of data */
	__u64 data_off;
};

#endif /* CRENGINE_CKPT_IMAGE_H */
