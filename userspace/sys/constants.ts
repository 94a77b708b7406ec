/** Kernel ABI numbers for x86_64 that cr-lab passes to syscalls or reads from images. */

export const NR = {
  ioctl: 16, socket: 41, connect: 42, sendto: 44, shutdown: 48, bind: 49, listen: 50, getsockname: 51, getpeername: 52, socketpair: 53,
  setsockopt: 54, getsockopt: 55, accept4: 288, rt_sigqueueinfo: 129, clock_gettime: 228, epoll_ctl: 233, timerfd_create: 283,
  timerfd_settime: 286, timerfd_gettime: 287, signalfd4: 289, eventfd2: 290, epoll_create1: 291, rt_tgsigqueueinfo: 297,
  read: 0, write: 1, open: 2, close: 3, poll: 7, lseek: 8, mmap: 9, mprotect: 10, munmap: 11, brk: 12,
  rt_sigaction: 13, rt_sigprocmask: 14, madvise: 28, dup2: 33, getitimer: 36, setitimer: 38,
  getpid: 39, rt_sigsuspend: 130, tgkill: 234, fcntl: 72, flock: 73, inotify_add_watch: 254, inotify_rm_watch: 255, inotify_init1: 294, open_by_handle_at: 304, chdir: 80, fchdir: 81, umask: 95, setgroups: 116, setresuid: 117,
  setresgid: 119, sigaltstack: 131, personality: 135, prctl: 157, arch_prctl: 158,
  restart_syscall: 219, close_range: 436, clone3: 435, openat: 257, dup3: 292, kcmp: 312, rseq: 334, set_tid_address: 218, set_robust_list: 273, get_robust_list: 274, pidfd_open: 434, pidfd_getfd: 438, pipe2: 293,
  capset: 126, memfd_create: 319, timer_create: 222, timer_settime: 223, timer_gettime: 224, timer_delete: 226, ftruncate: 77, uname: 63, sethostname: 170, setdomainname: 171, setns: 308,
  recvmsg: 47, sched_setattr: 314, sched_getattr: 315, sched_setaffinity: 203, sched_getaffinity: 204, mlock2: 325, exit: 60, exit_group: 231, kill: 62, setsid: 112, setpgid: 109, unshare: 272, rt_sigtimedwait: 128,
  preadv: 295, userfaultfd: 323, prlimit64: 302,
  shmget: 29, shmat: 30, shmctl: 31, semget: 64, semctl: 66, shmdt: 67, msgget: 68, msgsnd: 69, msgrcv: 70, msgctl: 71,
} as const;

export const PTRACE = {
  CONT: 7, GETREGS: 12, SETREGS: 13, GETFPREGS: 14, SETFPREGS: 15, ATTACH: 16, DETACH: 17, SYSCALL: 24, SETOPTIONS: 0x4200,
  GETSIGINFO: 0x4202, GETREGSET: 0x4204, SETREGSET: 0x4205, SEIZE: 0x4206, INTERRUPT: 0x4207,
  LISTEN: 0x4208, PEEKSIGINFO: 0x4209, GETSIGMASK: 0x420a, SETSIGMASK: 0x420b, GET_RSEQ_CONFIGURATION: 0x420f,
  O_TRACESYSGOOD: 1, EVENT_STOP: 128,
} as const;

/** Note types for PTRACE_GETREGSET. */
export const NT_X86_XSTATE = 0x202;

export const PROT = { READ: 1, WRITE: 2, EXEC: 4 } as const;
export const MAP = {
  SHARED: 0x01, PRIVATE: 0x02, FIXED: 0x10, ANONYMOUS: 0x20, GROWSDOWN: 0x0100,
  NORESERVE: 0x4000, FIXED_NOREPLACE: 0x100000,
} as const;

export const O = {
  RDONLY: 0, WRONLY: 1, RDWR: 2, ACCMODE: 3, CREAT: 0o100, EXCL: 0o200, NOCTTY: 0o400,
  TRUNC: 0o1000, APPEND: 0o2000, NONBLOCK: 0o4000, DIRECTORY: 0o200000, CLOEXEC: 0o2000000,
  PATH: 0o10000000, ASYNC: 0o20000, DIRECT: 0o40000, LARGEFILE: 0o100000, NOATIME: 0o1000000, DSYNC: 0o10000, SYNC: 0o4010000,
} as const;

export const CLONE = { VM: 0x100, FS: 0x200, FILES: 0x400, SIGHAND: 0x800, THREAD: 0x10000, SYSVSEM: 0x40000, NEWUTS: 0x04000000, NEWIPC: 0x08000000, NEWPID: 0x20000000 } as const;

/** SysV IPC: flags and commands of shmget/shmat/msgrcv/semctl and the *ctl calls (64-bit layouts). */
export const IPC = { PRIVATE: 0, CREAT: 0o1000, EXCL: 0o2000, NOWAIT: 0o4000, RMID: 0, SET: 1, STAT: 2 } as const;
export const SHM = { RDONLY: 0o10000, EXEC: 0o100000, LOCK: 11, DEST: 0o1000, LOCKED: 0o2000 } as const;
export const MSG_COPY = 0o40000;
export const SEM = { GETALL: 13, SETALL: 17 } as const;

export const SIG = { KILL: 9, STOP: 19, CONT: 18, TRAP: 5 } as const;

/** prctl(PR_SET_MM, PR_SET_MM_MAP, ...) and friends. */
export const PR = {
  GET_TID_ADDRESS: 40, SET_PDEATHSIG: 1, GET_PDEATHSIG: 2, GET_DUMPABLE: 3, SET_DUMPABLE: 4, SET_TIMERSLACK: 29, GET_TIMERSLACK: 30,
  SET_CHILD_SUBREAPER: 36, GET_CHILD_SUBREAPER: 37, SET_NAME: 15, SET_MM: 35, SET_MM_MAP: 14, SET_MM_MAP_SIZE: 15,
  SET_KEEPCAPS: 8, CAPBSET_DROP: 24, GET_SECUREBITS: 27, SET_SECUREBITS: 28, SET_NO_NEW_PRIVS: 38, CAP_AMBIENT: 47,
  CAP_AMBIENT_RAISE: 2,
} as const;

/** securebits (linux/securebits.h) */
export const SECBIT_KEEP_CAPS = 1 << 4;
export const ARCH_MAP_VDSO_64 = 0x2003;

/** Return codes a syscall interrupted by a stop leaves in rax (never seen by userspace). */
export const ERESTART = { SYS: -512, NOINTR: -513, NOHAND: -514, RESTARTBLOCK: -516 } as const;
export const EINTR = -4;

export const PAGE_SIZE = 4096;

/** RLIMIT_* 0..15, in kernel order. */
export const RLIMIT_NAMES = [
  'CPU', 'FSIZE', 'DATA', 'STACK', 'CORE', 'RSS', 'NPROC', 'NOFILE', 'MEMLOCK', 'AS', 'LOCKS',
  'SIGPENDING', 'MSGQUEUE', 'NICE', 'RTPRIO', 'RTTIME',
] as const;
/** The descriptor limit: RLIMIT_NAMES' NOFILE. */
export const RLIMIT_NOFILE = 7;

/** userfaultfd(2): the write-protecting tracker of a pre-dump (backends/user/tracking.ts). */
export const UFFD = {
  API: 0xaa,
  /** _IOWR(0xAA, 0x3F, struct uffdio_api) */
  IOC_API: 0xc018aa3f,
  /** _IOWR(0xAA, 0x00, struct uffdio_register) */
  IOC_REGISTER: 0xc020aa00,
  REGISTER_MODE_WP: 2,
  FEATURE_WP_ASYNC: 1 << 15,
  /** userfaultfd(2) flag: faults from kernel mode are not handled (always allowed, where plain userfaultfd may need privilege). */
  USER_MODE_ONLY: 1,
} as const;
