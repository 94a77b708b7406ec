/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * cr-lab engine image objects (version CKPT_IMAGE_VERSION).
 *
 * The header, tree and tail objects are in <uapi/linux/checkpoint.h>; these
 * are private to the engine.  Each starts with struct ckpt_hdr and has a
 * size that is a multiple of 8; variable parts (strings, arrays, page data)
 * follow the fixed part and are padded to 8 bytes.
 *
 * Stream of one task (a thread; a process is its threads, the leader first):
 *   TASK THREAD PROCESS [ITIMERS POSIX_TIMER*] [SIGHAND] SIGNAL SIGPENDING CRED
 *   [RLIMITS] [FS] [(PIPE | FILE | FD)*] [MM (FILE | SHMEM PAGES* | VMA)* PAGES* DROP?]
 *   CPU FPU
 * The parts in brackets describe an object the task shares with others
 * (signal_struct, sighand, fs_struct, fd table, mm): they appear with the
 * first task that uses the object, and later tasks name it by its id.
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
/* 40-59: threads and shared objects */
#define CKPT_HDR_THREAD		40
#define CKPT_HDR_SIGHAND	41
#define CKPT_HDR_SHMEM		42
#define CKPT_HDR_DROP		43

/* The kernel objects a task may share with others, each named by an id */
enum ckpt_share {
	CKPT_SHARE_MM,		/* the address space */
	CKPT_SHARE_FILES,	/* the fd table */
	CKPT_SHARE_FS,		/* cwd and umask */
	CKPT_SHARE_SIGHAND,	/* signal handlers */
	CKPT_SHARE_SIGNAL,	/* the thread group: rlimits, process-wide signals */
	CKPT_SHARE_NR
};

/* TASK flags */
#define CKPT_TASK_VFORK_WAIT	0x1	/* waits in vfork(2) for the child vfork_child */

/* Process-level state, timers, SysV IPC and namespaces: 80-99 */
#define CKPT_HDR_PROCESS	80
#define CKPT_HDR_ITIMERS	81
#define CKPT_HDR_POSIX_TIMER	82

struct ckpt_hdr_task {
	struct ckpt_hdr h;
	__s32 pid;		/* its tid */
	__s32 tgid;
	__u32 exit_signal;	/* what its parent gets when it ends */
	__u32 flags;		/* CKPT_TASK_* */
	char comm[16];
	__s32 share[CKPT_SHARE_NR];	/* enum ckpt_share: ids of what it uses */
	__s32 vfork_child;	/* CKPT_TASK_VFORK_WAIT: the child's pid */
	__u32 pad[2];
};

/* What is a thread's own: its registration with the C library and rseq */
struct ckpt_hdr_thread {
	struct ckpt_hdr h;
	__u64 set_child_tid;	/* as set by clone(2) */
	__u64 clear_child_tid;	/* set_tid_address(2) */
	__u64 robust_list;	/* set_robust_list(2), 0 if none */
	__u64 robust_list_len;
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

/*
 * A zombie of the tree, in place of its TASK ... part: it only ends again.
 * A thread-group leader that exited while its threads run on is one too;
 * its threads follow it.
 */
struct ckpt_hdr_zombie {
	struct ckpt_hdr h;
	__s32 pid;
	__u32 exit_code;	/* its wait status */
	char comm[16];
};

/* The handlers of signals 1.._NSIG, shared by the tasks of a sighand_struct */
struct ckpt_sigaction {
	__u64 handler;
	__u64 flags;
	__u64 restorer;
	__u64 mask;
};

struct ckpt_hdr_sighand {
	struct ckpt_hdr h;
	struct ckpt_sigaction action[64];
};

/*
 * A thread's own signal state: its blocked mask (the one it will have
 * back in user mode: not the temporary mask of sigsuspend(2), ppoll(2)
 * or sigtimedwait(2), which the restarted call sets again) and its
 * alternate signal stack.
 */
struct ckpt_hdr_signal {
	struct ckpt_hdr h;
	__u64 blocked;
	__u64 sas_ss_sp;
	__u64 sas_ss_size;
	__u32 sas_ss_flags;
	__u32 pad;
};

/*
 * Signals queued to the thread, oldest first, and (with the first thread
 * of its group) to the process; followed by nr entries.  info is the
 * kernel_siginfo as the kernel keeps it.
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
	__s32 parent_mm;	/* the mm its from_parent VMAs come from, 0 if none */
	__u32 pad;
	__u64 saved_auxv[CKPT_AUXV_WORDS];
};

enum ckpt_vma_kind {
	CKPT_VMA_ANON = 1,	/* private anonymous (heap, stack, malloc) */
	CKPT_VMA_SHANON,	/* shared anonymous: a mapping of the SHMEM object objref */
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
	__s32 objref;		/* the file or SHMEM object, 0 for private anonymous */
	__u32 growsdown;
	/*
	 * The same mapping as the parent process's, kept from the copy that
	 * fork(2) makes at restart: only the pages where the two differ are
	 * in the image (PAGES, and DROP for those the child does not have).
	 */
	__u32 from_parent;
	__u32 pad;
};

/* Page ranges of from_parent VMAs to drop from the fork's copy (they read as zeros, or the file) */
struct ckpt_drop_range {
	__u64 start;
	__u64 end;
};

struct ckpt_hdr_drop {
	struct ckpt_hdr h;
	__u32 nr;
	__u32 pad;
};

/*
 * Shared anonymous memory (MAP_SHARED | MAP_ANONYMOUS, kept across fork),
 * defined once and mapped by every VMA that names it; the PAGES objects
 * that follow hold its non-zero pages, at byte offsets in the object.
 */
struct ckpt_hdr_shmem {
	struct ckpt_hdr h;
	__s32 objref;
	__u32 pad;
	__u64 size;		/* bytes */
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

/* Page contents: nr addresses, then nr pages */
struct ckpt_hdr_pages {
	struct ckpt_hdr h;
	__u32 nr;
	__u32 pad;
};

#endif /* CRENGINE_CKPT_IMAGE_H */
