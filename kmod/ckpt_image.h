/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * cr-lab engine image objects (version CKPT_IMAGE_VERSION).
 *
 * The header, tree and tail objects are in <uapi/linux/checkpoint.h>; these
 * are private to the engine.  Each starts with struct ckpt_hdr and has a
 * size that is a multiple of 8; variable parts (strings, arrays, page data)
 * follow the fixed part and are padded to 8 bytes.
 *
 * The stream: HEADER TREE, the namespaces the tree's root had of its own,
 * [CHAIN], then the part of each task (or a ZOMBIE), then TAIL.  The
 * namespaces:
 *   [UTS_NS] [IPC_NS (SHM DATA*)* (MSG_QUEUE MSG*)* SEM*]
 *
 * The part of one task (a thread; a process is its threads, the leader
 * first):
 *   TASK THREAD PROCESS [ITIMERS POSIX_TIMER* SEM_UNDO*] [SIGHAND] SIGNAL
 *   SIGPENDING CRED SECCOMP [RLIMITS] [FS] [CTTY?] [(state | FILE | FD)* LOCK*]
 *   [MM (state | FILE | SHMEM DATA* | VMA)* DROP*] CPU FPU
 * The parts in brackets describe an object the task shares with others
 * (signal_struct, sighand, fs_struct, fd table, mm): they appear with the
 * first task that uses the object, and later tasks name it by its id.
 * "state" is whatever a FILE names with its obj field, written once
 * before the first FILE that needs it: PIPE, SOCKET (with its SKBs), TTY,
 * MEMFD or GHOST (with DATA), EVENTFD, TIMERFD, SIGNALFD, EPOLL, INOTIFY,
 * INET (a TCP connection with its queues as DATA, a UDP socket with its
 * DGRAMs; the two ends of a connection inside the tree back to back).
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

/* what confines a task (seccomp.c): 100-119 */
#define CKPT_HDR_SECCOMP	100

/* incremental checkpoints (chain.c): 120-125 */
#define CKPT_HDR_CHAIN		120

/* Kinds of file and their state: 60-79 */
#define CKPT_HDR_DATA		60	/* contents of a pipe, memfd or unlinked file */
#define CKPT_HDR_SOCKET		61	/* a unix socket */
#define CKPT_HDR_SKB		62	/* a message or bytes queued to a unix socket */
#define CKPT_HDR_EVENTFD	63
#define CKPT_HDR_TIMERFD	64
#define CKPT_HDR_SIGNALFD	65
#define CKPT_HDR_EPOLL		66	/* an epoll file and its interest list */
#define CKPT_HDR_INOTIFY	67	/* an inotify file; its watches follow */
#define CKPT_HDR_INOTIFY_WATCH	68
#define CKPT_HDR_MEMFD		69
#define CKPT_HDR_GHOST		70	/* a regular file unlinked while open */
#define CKPT_HDR_LOCK		71	/* a POSIX, OFD or flock lock */
#define CKPT_HDR_TTY		72	/* a pseudo-terminal pair, or the restarter's terminal */
#define CKPT_HDR_CTTY		73	/* a session leader's controlling terminal */
/* Process-level state, timers, SysV IPC and namespaces: 80-99 */
#define CKPT_HDR_PROCESS	80
#define CKPT_HDR_ITIMERS	81
#define CKPT_HDR_POSIX_TIMER	82
#define CKPT_HDR_UTS_NS		83
#define CKPT_HDR_IPC_NS		84
#define CKPT_HDR_SHM		85
#define CKPT_HDR_MSG_QUEUE	86
#define CKPT_HDR_MSG		87
#define CKPT_HDR_SEM		88
#define CKPT_HDR_SEM_UNDO	89

/* Inet sockets: 140-159 */
#define CKPT_HDR_INET		140	/* a TCP or UDP socket, IPv4 or IPv6 */
#define CKPT_HDR_DGRAM		141	/* a datagram queued to a UDP socket */

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

/* CPUs a saved affinity can name */
#define CKPT_CPUS_MAX		1024

/*
 * What prctl(2), personality(2), sched_setattr(2) and sched_setaffinity(2)
 * set, the executable and a job-control stop; then the path of
 * /proc/self/exe, NUL-terminated
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
	__u64 cpus[CKPT_CPUS_MAX / 64];	/* the CPU affinity, CPU n at bit n % 64 of word n / 64 */
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

/* The names of a UTS namespace of the root's own (sethostname(2), setdomainname(2)) */
struct ckpt_hdr_uts_ns {
	struct ckpt_hdr h;
	char nodename[65];	/* NUL-terminated */
	char domainname[65];
	__u8 pad[6];
};

/*
 * An IPC namespace of the root's own: its limits (the kernel/shm*, msg*,
 * sem sysctls), and how many objects of each kind follow
 */
struct ckpt_hdr_ipc_ns {
	struct ckpt_hdr h;
	__u64 shmmax;
	__u64 shmall;
	__u32 shmmni;
	__u32 shm_rmid_forced;
	__u32 msgmax;
	__u32 msgmnb;
	__u32 msgmni;
	__u32 sem[4];		/* SEMMSL, SEMMNS, SEMOPM, SEMMNI */
	__u32 nr_shm;
	__u32 nr_msg;
	__u32 nr_sem;
};

/* Key, id, owner, creator and mode of a SysV object; ids in the checkpointer's user namespace */
struct ckpt_ipc_perm {
	__s32 key;
	__s32 id;
	__u32 uid, gid;
	__u32 cuid, cgid;
	__u32 mode;		/* permission bits, SHM_DEST, SHM_LOCKED */
	__u32 pad;
};

/* A SysV shm segment; then PAGES objects with its non-zero pages, by byte offset */
struct ckpt_hdr_shm {
	struct ckpt_hdr h;
	struct ckpt_ipc_perm perm;
	__u64 size;		/* bytes, as shmget(2) was given */
};

/* A SysV message queue; then nr_msgs MSG objects, in queue order */
struct ckpt_hdr_msg_queue {
	struct ckpt_hdr h;
	struct ckpt_ipc_perm perm;
	__u64 qbytes;		/* msg_qbytes */
	__u32 nr_msgs;
	__u32 pad;
};

/* One queued message: its type, then its size bytes */
struct ckpt_hdr_msg {
	struct ckpt_hdr h;
	__s64 mtype;
	__u64 size;
};

/* A SysV semaphore set: then nsems values (u16) */
struct ckpt_hdr_sem {
	struct ckpt_hdr h;
	struct ckpt_ipc_perm perm;
	__u32 nsems;
	__u32 pad;
};

/* What the task's SEM_UNDO operations on set id will undo: nsems adjustments (s16) */
struct ckpt_hdr_sem_undo {
	struct ckpt_hdr h;
	__s32 id;
	__u32 nsems;
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

/* A task's seccomp filters, first installed first; then the filters */
struct ckpt_hdr_seccomp {
	struct ckpt_hdr h;
	__u32 nr_filters;
	__u32 pad;
};

/* One filter: its flags (SECCOMP_FILTER_FLAG_LOG), then len struct sock_filter */
struct ckpt_seccomp_filter {
	__u32 flags;
	__u32 len;
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

/*
 * cwd and umask; followed by the cwd path, NUL-terminated.  A working
 * directory that was removed is made again at its path and removed again.
 */
struct ckpt_hdr_fs {
	struct ckpt_hdr h;
	__u32 umask;
	__u32 path_len;		/* including the NUL */
	__u32 cwd_deleted;	/* 1: the path names where it was */
	__u32 cwd_mode;		/* a deleted one's mode and owner */
	__u32 cwd_uid, cwd_gid;
};

enum ckpt_file_kind {
	CKPT_FILE_REG = 1,	/* regular file, reopened by path */
	CKPT_FILE_DIR,		/* directory, reopened by path */
	CKPT_FILE_CHR,		/* /dev/{null,zero,full,random,urandom} */
	CKPT_FILE_PIPE,		/* an end of the pipe a PIPE object defines */
	CKPT_FILE_FIFO,		/* a named pipe, reopened by path; its PIPE holds the data */
	CKPT_FILE_SOCKET,	/* the file of the unix socket a SOCKET object defines */
	CKPT_FILE_EVENTFD,	/* EVENTFD object */
	CKPT_FILE_TIMERFD,	/* TIMERFD object */
	CKPT_FILE_SIGNALFD,	/* SIGNALFD object */
	CKPT_FILE_EPOLL,	/* EPOLL object */
	CKPT_FILE_INOTIFY,	/* INOTIFY object */
	CKPT_FILE_MEMFD,	/* an open file of the memfd a MEMFD object defines */
	CKPT_FILE_GHOST,	/* an open file of the unlinked file a GHOST object defines */
	CKPT_FILE_TTY,		/* a side of the terminal a TTY object defines */
	CKPT_FILE_CTTY,		/* /dev/tty: the task's controlling terminal */
	CKPT_FILE_INET,		/* the file of the TCP or UDP socket an INET object defines */
	CKPT_FILE_KINDS
};

/*
 * A pipe or the pipe of a FIFO, before the first FILE that is one of its
 * ends; then nr_bytes of data in DATA objects.
 */
struct ckpt_hdr_pipe {
	struct ckpt_hdr h;
	__s32 objref;
	__u32 nr_bytes;		/* in flight, at most size */
	__u32 size;		/* F_GETPIPE_SZ */
	__u32 fifo;		/* 1: a FIFO's; its FILE has the path */
};

/* Contents of the object @objref (a pipe, memfd or unlinked file), in pieces */
struct ckpt_hdr_data {
	struct ckpt_hdr h;
	__s32 objref;
	__u32 len;		/* bytes that follow, at most CKPT_DATA_CHUNK */
	__u64 offset;		/* where they go in a file; in a pipe, the next bytes */
};

#define CKPT_DATA_CHUNK		(256 * 1024)
#define CKPT_PIPE_SIZE_MAX	(64 << 20)

/* F_SETOWN's target, as fcntl(F_SETOWN_EX) names it */
enum ckpt_owner_type {
	CKPT_OWNER_TID = 1,	/* F_OWNER_TID */
	CKPT_OWNER_PID,		/* F_OWNER_PID: the process */
	CKPT_OWNER_PGRP,	/* F_OWNER_PGRP */
};

/* An open file, defined once and referenced by objref; then its path */
struct ckpt_hdr_file {
	struct ckpt_hdr h;
	__s32 objref;
	__u32 kind;		/* enum ckpt_file_kind */
	__u32 f_flags;		/* open flags and status flags (O_NONBLOCK, O_APPEND, ...) */
	__u32 rdev;		/* CKPT_FILE_CHR: the device number */
	__s64 pos;
	__u32 path_len;		/* including the NUL */
	__s32 obj;		/* the object that holds its state (PIPE, SOCKET, ...), or 0 */
	__s32 owner;		/* F_SETOWN: who gets SIGIO/SIGURG (a pid or a pgid), or 0 */
	__u32 owner_type;	/* enum ckpt_owner_type */
	__u32 owner_uid;	/* ... and the uid and euid that set it */
	__u32 owner_euid;
	__u32 signum;		/* F_SETSIG */
	__u32 pad;
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

/*
 * A unix socket: its own state, and how it is connected.  Queued data
 * follows as SKB objects, oldest first.  A listening socket's pending
 * connections are the SOCKETs after it whose listener is its objref.
 */
enum ckpt_sock_state {
	CKPT_SOCK_UNCONNECTED = 1,	/* socket(2), maybe bound */
	CKPT_SOCK_LISTEN,
	CKPT_SOCK_CONNECTED,		/* to peer, or to a peer that was closed (peer 0) */
	CKPT_SOCK_PENDING,		/* connected to listener, not accepted yet */
};

struct ckpt_sockaddr {
	__u32 len;		/* of name, 0: none; sizeof(sa_family_t) + path */
	__u32 bound;		/* 1: bound to it by bind(2), not inherited by accept(2) */
	__u8 name[112];		/* struct sockaddr_un, sun_path[0] 0 for abstract */
};

struct ckpt_hdr_socket {
	struct ckpt_hdr h;
	__s32 objref;
	__u32 type;		/* SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET */
	__u32 state;		/* enum ckpt_sock_state */
	__s32 peer;		/* the peer's SOCKET objref; 0 if none or closed */
	__s32 listener;		/* CKPT_SOCK_PENDING: the listening SOCKET */
	__u32 shutdown;		/* SEND_SHUTDOWN | RCV_SHUTDOWN */
	__u32 backlog;		/* listen(2) backlog */
	__s32 err;		/* pending socket error (SO_ERROR), positive */
	__u32 nr_skbs;		/* SKB objects that follow */
	struct ckpt_sockaddr addr;
	struct ckpt_sockaddr peer_addr;	/* a datagram peer outside the tree, by name */
	__u32 bound_mode;	/* the socket file's mode and owner, if bound to a path */
	__u32 bound_uid, bound_gid;
	__u32 flags;		/* CKPT_SO_* */
	__u32 sndbuf, rcvbuf;	/* sk_sndbuf and sk_rcvbuf, if set by the program */
	__s32 peek_off;
	__s32 rcvlowat;
	__u32 priority;
	__u32 mark;
	__u32 pad;
	__u64 rcvtimeo_us;	/* 0: none */
	__u64 sndtimeo_us;
	__s32 peer_pid;		/* SO_PEERCRED */
	__u32 peer_uid, peer_gid;
	__u32 path_len;		/* then the socket file's path, "" if not bound to one */
};

#define CKPT_SO_PASSCRED	0x1
#define CKPT_SO_PASSSEC		0x2
#define CKPT_SO_PASSPIDFD	0x4
#define CKPT_SO_SNDBUF		0x8	/* sndbuf was set */
#define CKPT_SO_RCVBUF		0x10
#define CKPT_SO_PEERCRED	0x20	/* peer_* are valid */
#define CKPT_SO_CLOSED		0x40	/* a pending connection whose client was closed */

/* One skb of a socket's receive queue (its unread part); then its bytes */
struct ckpt_hdr_skb {
	struct ckpt_hdr h;
	__s32 sock;		/* the receiving SOCKET */
	__s32 sender;		/* the sending SOCKET if saved, else 0 */
	__u32 len;
	__s32 pid;		/* SCM_CREDENTIALS of the sender */
	__u32 uid, gid;
	struct ckpt_sockaddr from;	/* the sender's address, as recvfrom(2) gives it */
};

#define CKPT_SKB_MAX		(256 * 1024)

struct ckpt_hdr_eventfd {
	struct ckpt_hdr h;
	__s32 objref;
	__u32 flags;		/* EFD_SEMAPHORE */
	__u64 count;
};

struct ckpt_hdr_timerfd {
	struct ckpt_hdr h;
	__s32 objref;
	__s32 clockid;
	__u32 settime_flags;	/* TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET */
	__u32 pad;
	__u64 ticks;		/* expirations not read yet */
	__u64 value_ns;		/* time to the next expiry (relative), 0: disarmed */
	__u64 interval_ns;
	__s64 expiry_real_ns;	/* ABSTIME on CLOCK_REALTIME: when it expires */
};

struct ckpt_hdr_signalfd {
	struct ckpt_hdr h;
	__s32 objref;
	__u32 pad;
	__u64 sigmask;		/* signals it reads */
};

/* One item of an epoll interest list: the file and descriptor it was added as */
struct ckpt_epoll_item {
	__s32 tfd;
	__s32 file;		/* FILE objref */
	__u32 events;
	__u32 pad;
	__u64 data;
};

struct ckpt_hdr_epoll {
	struct ckpt_hdr h;
	__s32 objref;
	__u32 nr_items;		/* then nr_items struct ckpt_epoll_item */
};

#define CKPT_EPOLL_ITEMS_MAX	8192

struct ckpt_hdr_inotify {
	struct ckpt_hdr h;
	__s32 objref;
	__u32 nr_watches;	/* INOTIFY_WATCH objects that follow */
};

/* A watch; then the path of what it watches */
struct ckpt_hdr_inotify_watch {
	struct ckpt_hdr h;
	__s32 wd;
	__u32 mask;		/* as inotify_add_watch(2) took it */
	__u32 path_len;
	__u32 pad;
};

#define CKPT_INOTIFY_WATCHES_MAX 8192

/* A memfd: then its name, then DATA */
struct ckpt_hdr_memfd {
	struct ckpt_hdr h;
	__s32 objref;
	__u32 seals;		/* F_SEAL_* */
	__u64 size;
	__u32 mode;		/* permission bits (MFD_NOEXEC_SEAL clears x) */
	__u32 uid, gid;
	__u32 name_len;		/* including the NUL, the name without "memfd:" */
};

/* A regular file that was unlinked while open: then its old path, then DATA */
struct ckpt_hdr_ghost {
	struct ckpt_hdr h;
	__s32 objref;
	__u32 mode;
	__u32 uid, gid;
	__u64 size;
	__u32 path_len;
	__u32 pad;
};

#define CKPT_GHOST_SIZE_MAX	(256 << 20)

enum ckpt_lock_kind {
	CKPT_LOCK_POSIX = 1,	/* fcntl(F_SETLK), owned by the process */
	CKPT_LOCK_OFD,		/* fcntl(F_OFD_SETLK), owned by the open file */
	CKPT_LOCK_FLOCK,	/* flock(2), owned by the open file */
};

struct ckpt_hdr_lock {
	struct ckpt_hdr h;
	__s32 file;		/* FILE objref */
	__u32 kind;		/* enum ckpt_lock_kind */
	__u32 type;		/* F_RDLCK, F_WRLCK */
	__u32 pad;
	__s64 start;
	__s64 end;		/* inclusive; OFFSET_MAX: to the end */
};

/* struct termios2's fields */
struct ckpt_termios {
	__u32 c_iflag, c_oflag, c_cflag, c_lflag;
	__u8 c_line;
	__u8 c_cc[19];
	__u32 c_ispeed, c_ospeed;
};

enum ckpt_tty_kind {
	CKPT_TTY_PTY = 1,	/* a pseudo-terminal pair, both ends in the tree */
	CKPT_TTY_INHERIT,	/* the shell's terminal: the restarter's, with these settings */
};

struct ckpt_hdr_tty {
	struct ckpt_hdr h;
	__s32 objref;
	__u32 kind;		/* enum ckpt_tty_kind */
	__u32 index;		/* /dev/pts/<index> */
	__u32 locked;		/* TIOCSPTLCK */
	__u32 packet;		/* TIOCPKT */
	__u32 pad;
	__u16 ws_row, ws_col, ws_xpixel, ws_ypixel;
	struct ckpt_termios termios;	/* the terminal's (a pty's slave's) */
	__u32 pad2;
};

/* A task's controlling terminal; for a session leader, its foreground process group */
struct ckpt_hdr_ctty {
	struct ckpt_hdr h;
	__s32 tty;		/* TTY objref */
	__s32 pgrp;
	__u32 leader;		/* 1: the task leads the session the terminal controls */
	__u32 pad;
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
	CKPT_VMA_SYSVSHM,	/* SysV shm attachment: objref is the segment's id, pgoff in it */
};

struct ckpt_hdr_vma {
	struct ckpt_hdr h;
	__u64 start;
	__u64 end;
	__u64 pgoff;
	__u64 vm_flags;		/* restored: madvise(2) and mlock(2) flags */
	__u32 kind;		/* enum ckpt_vma_kind */
	__u32 prot;		/* PROT_* */
	__s32 objref;		/* FILE or SHMEM object, 0 for private anonymous; SYSVSHM: shm id */
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
 * defined once and mapped by every VMA that names it; the DATA objects
 * that follow hold its contents, holes left out.
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

/*
 * An inet socket: TCP or UDP over IPv4 or IPv6.  Its options follow as
 * nr_opts struct ckpt_sockopt, each as getsockopt(2) gave it; then, for an
 * established TCP connection, its receive queue and its send queue (from
 * its first byte not acknowledged) as DATA objects, the receive queue's
 * bytes at offsets 0..recv_len, the send queue's after them; for a UDP
 * socket, nr_dgrams DGRAM objects, oldest first.
 */
enum ckpt_inet_state {
	CKPT_INET_UNCONNECTED = 1,	/* bound or not; TCP: maybe its connection ended */
	CKPT_INET_LISTEN,		/* TCP */
	CKPT_INET_CONNECTED,		/* UDP: connect(2)ed to remote */
	CKPT_INET_ESTABLISHED,		/* TCP: a connection, rebuilt in repair mode */
};

struct ckpt_inet_addr {
	__u8 addr[16];		/* network order; IPv4 in the first 4 bytes */
	__u16 port;		/* host order */
	__u16 pad;
	__u32 scope_id;		/* IPv6 link-local */
	__u32 pad2[2];
};

/* One option: @len bytes of @val at (@level, @name), as getsockopt(2) gives them */
struct ckpt_sockopt {
	__u32 level;
	__u32 name;
	__u32 len;
	__u32 pad;
	__u8 val[16];
};

#define CKPT_INET_OPTS_MAX	96

/* What TCP repair mode reads of an established connection */
struct ckpt_tcp_conn {
	__u32 snd_una;		/* the send queue's first byte */
	__u32 snd_nxt;		/* after the last byte sent */
	__u32 write_seq;	/* after the send queue's last byte */
	__u32 rcv_nxt;		/* after the receive queue's last byte */
	__u32 recv_len;		/* bytes in the receive queue */
	__u32 send_len;		/* bytes in the send queue: write_seq - snd_una */
	__u32 mss_clamp;	/* the MSS the handshake agreed on */
	__u32 user_mss;		/* TCP_MAXSEG as set by the program, 0 if not */
	__u32 options;		/* CKPT_TCPOPT_* the handshake agreed on */
	__u32 snd_wscale;
	__u32 rcv_wscale;
	__u32 tsval;		/* TCP_TIMESTAMP: the connection's timestamp clock */
	__u32 snd_wl1;		/* TCP_REPAIR_WINDOW */
	__u32 snd_wnd;
	__u32 max_window;
	__u32 rcv_wnd;
	__u32 rcv_wup;
	__u32 pad;
};

#define CKPT_TCPOPT_SACK	0x1
#define CKPT_TCPOPT_WSCALE	0x2
#define CKPT_TCPOPT_TIMESTAMP	0x4

struct ckpt_hdr_inet {
	struct ckpt_hdr h;
	__s32 objref;
	__u32 family;		/* AF_INET, AF_INET6 */
	__u32 type;		/* SOCK_STREAM: TCP, SOCK_DGRAM: UDP */
	__u32 state;		/* enum ckpt_inet_state */
	__u32 flags;		/* CKPT_INET_* */
	__s32 peer;		/* ESTABLISHED: its peer's INET object, 0 if outside the tree */
	__u32 backlog;		/* LISTEN: listen(2)'s, as the kernel clamped it */
	__u32 shutdown;		/* RCV_SHUTDOWN | SEND_SHUTDOWN */
	__s32 err;		/* pending error (SO_ERROR), positive */
	__u32 sndbuf, rcvbuf;	/* sk_sndbuf, sk_rcvbuf */
	__u32 drops;		/* sk_drops (SO_RXQ_OVFL) */
	__u32 nr_dgrams;	/* UDP: DGRAM objects that follow */
	__u32 nr_opts;		/* struct ckpt_sockopt that follow */
	struct ckpt_inet_addr local;	/* getsockname(2) */
	struct ckpt_inet_addr remote;	/* getpeername(2) */
	struct ckpt_tcp_conn tcp;	/* ESTABLISHED */
};

#define CKPT_INET_BOUND_ADDR	0x1	/* bind(2) gave it its address (SOCK_BINDADDR_LOCK) */
#define CKPT_INET_BOUND_PORT	0x2	/* ... and its port (SOCK_BINDPORT_LOCK) */
#define CKPT_INET_SNDBUF	0x4	/* SO_SNDBUF set by the program */
#define CKPT_INET_RCVBUF	0x8	/* SO_RCVBUF set by the program */
#define CKPT_INET_REUSEADDR	0x10	/* SO_REUSEADDR */
#define CKPT_INET_OUTSIDE	0x20	/* ESTABLISHED to a peer outside the tree */
#define CKPT_INET_FLAGS		0x3f

/* One datagram queued to a UDP socket; then its payload */
struct ckpt_hdr_dgram {
	struct ckpt_hdr h;
	__s32 sock;		/* the INET object it is queued to */
	__u32 len;		/* payload bytes */
	__u32 family;		/* of the packet: an IPv6 socket receives IPv4 ones too */
	__u32 ifindex;		/* where it came in (IP_PKTINFO, IPV6_PKTINFO) */
	struct ckpt_inet_addr from;	/* its sender */
	__u8 to[16];		/* its destination address */
	__u8 spec_dst[4];	/* IPv4: IP_PKTINFO's ipi_spec_dst */
	__u32 flowlabel;	/* IPv6 */
	__u8 tos;		/* TOS or traffic class */
	__u8 ttl;		/* TTL or hop limit */
	__u16 pad;
	__u32 mark;		/* SO_RCVMARK */
	__u32 dropcount;	/* SO_RXQ_OVFL */
	__u32 pad2;
	__s64 tstamp;		/* arrival, ns of CLOCK_REALTIME (SO_TIMESTAMP); 0 if none */
};

#define CKPT_DGRAM_MAX		65535

#endif /* CRENGINE_CKPT_IMAGE_H */
