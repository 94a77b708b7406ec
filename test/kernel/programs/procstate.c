// SPDX-License-Identifier: GPL-2.0-only
/*
 * procstate: per-process state the kernel backend must carry across
 * checkpoint/restart, or refuse to checkpoint.
 *
 *   procstate MODE
 *
 * MODE "state": sets RLIMIT_CORE, queues a blocked real-time signal with a
 * value, gives up CAP_SYS_BOOT (effective, permitted, bounding) and, with
 * a second argument UID, becomes that user.  Prints "ready", waits for
 * SIGUSR1, then checks that all of it is as it was and that the pending
 * signal is delivered once; prints "ok ..." or "FAIL ..." lines and exits
 * with the number of failures.
 *
 * MODEs that must be refused: "cputimer" (a POSIX timer on its parent's
 * CPU clock), "memfd" (an open memfd), "sysvshm" (an attached SysV shared
 * memory segment of the checkpointer's IPC namespace), "semundo" (SEM_UNDO
 * adjustments there), "netns" (a network namespace of its own).  They
 * print "ready" and sleep.
 */
#define _GNU_SOURCE
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define PENDSIG (SIGRTMIN + 2)

static int failures;

static void check(int ok, const char *what)
{
	printf("%s %s\n", ok ? "ok" : "FAIL", what);
	failures += !ok;
}

static void caps(struct __user_cap_data_struct d[2], int set)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };

	if (syscall(set ? SYS_capset : SYS_capget, &h, d))
		perror(set ? "capset" : "capget"), exit(100);
}

static void on_usr1(int sig)
{
	(void)sig;
}

int main(int argc, char **argv)
{
	struct __user_cap_data_struct before[2], after[2];
	struct rlimit core = { 12345, 67890 }, r;
	sigset_t block, wait_mask, pend;
	union sigval val = { .sival_int = 4242 };
	uid_t uid0;
	siginfo_t si;

	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc < 2)
		return 100;
	if (!strcmp(argv[1], "cputimer")) {
		struct sigevent ev = { .sigev_notify = SIGEV_NONE };
		clockid_t clock;
		timer_t id;

		if (clock_getcpuclockid(getppid(), &clock) || timer_create(clock, &ev, &id))
			return 100;
	} else if (!strcmp(argv[1], "sysvshm")) {
		int id = shmget(IPC_PRIVATE, 65536, IPC_CREAT | 0600);

		if (id < 0 || shmat(id, NULL, 0) == (void *)-1)
			return 100;
		shmctl(id, IPC_RMID, NULL);	/* gone once detached */
	} else if (!strcmp(argv[1], "semundo")) {
		int id = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
		struct sembuf up = { 0, 1, SEM_UNDO };

		if (id < 0 || semop(id, &up, 1))
			return 100;
		semctl(id, 0, IPC_RMID);	/* its undo goes with it */
		id = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
		if (id < 0 || semop(id, &up, 1))
			return 100;
	} else if (!strcmp(argv[1], "netns")) {
		if (unshare(CLONE_NEWNET))
			return 100;
	}
	if (strcmp(argv[1], "state")) {
		printf("ready\n");
		pause();
		return 0;
	}

	signal(SIGUSR1, on_usr1);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, PENDSIG);
	sigprocmask(SIG_BLOCK, &block, &wait_mask);
	sigaddset(&wait_mask, PENDSIG);
	if (setrlimit(RLIMIT_CORE, &core) || sigqueue(getpid(), PENDSIG, val) ||
	    prctl(PR_CAPBSET_DROP, CAP_SYS_BOOT))
		return 100;
	caps(before, 0);
	before[0].effective &= ~(1u << CAP_SYS_BOOT);
	before[0].permitted &= ~(1u << CAP_SYS_BOOT);
	caps(before, 1);
	if (argc > 2 && setresuid(atoi(argv[2]), atoi(argv[2]), atoi(argv[2])))
		return 100;
	caps(before, 0);
	uid0 = getuid();
	printf("ready\n");

	sigsuspend(&wait_mask);		/* until SIGUSR1 */

	getrlimit(RLIMIT_CORE, &r);
	check(r.rlim_cur == core.rlim_cur && r.rlim_max == core.rlim_max, "RLIMIT_CORE");
	check(getuid() == uid0 && geteuid() == uid0, "uid");
	caps(after, 0);
	check(!memcmp(before, after, sizeof(before)), "capabilities");
	check(prctl(PR_CAPBSET_READ, CAP_SYS_BOOT) == 0, "bounding set");
	sigpending(&pend);
	check(sigismember(&pend, PENDSIG), "signal still pending");
	sigemptyset(&block);
	sigaddset(&block, PENDSIG);
	check(sigwaitinfo(&block, &si) == PENDSIG && si.si_value.sival_int == 4242 &&
	      si.si_pid == getpid(), "pending signal delivered with its value");
	sigpending(&pend);
	check(!sigismember(&pend, PENDSIG), "delivered once");
	return failures;
}
