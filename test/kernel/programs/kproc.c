// SPDX-License-Identifier: GPL-2.0-only
/*
 * kproc: process attributes and timers that the kernel backend must carry
 * across checkpoint/restart.
 *
 *   kproc
 *
 * Sets its name (PR_SET_NAME), parent-death signal, dumpable, child
 * subreaper, timer slack, no_new_privs, personality, SCHED_BATCH with nice
 * 7; marks mappings MADV_DONTFORK, MADV_DONTDUMP,
 * MADV_WIPEONFORK and mlocks one; arms the three interval timers and POSIX
 * timers with ids 0, 2, 3, 4, 5 (1 deleted) on several clocks and
 * notifications, one with an overrun count; forks a child that takes
 * SCHED_FIFO priority 2 with nice 5 and stops itself with SIGSTOP (and is
 * waited for); continued, the child checks its own scheduling.  Prints "ready", waits for
 * SIGUSR1, then checks all of it, lets the child go on, waits for timer 5
 * to fire, prints "ok ..." or "FAIL ..." lines and exits with the number
 * of failures.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define NAME "kproc-name"
#define SLACK 123456
#define PERS (ADDR_NO_RANDOMIZE | UNAME26)
#define SIG_T0 (SIGRTMIN + 1)
#define SIG_T2 (SIGRTMIN + 3)
#define SIG_T4 (SIGRTMIN + 4)
#define SIG_T5 (SIGRTMIN + 5)

static int failures;

static void check(int ok, const char *what)
{
	printf("%s %s\n", ok ? "ok" : "FAIL", what);
	failures += !ok;
}

static void on_usr1(int sig)
{
	(void)sig;
}

static int mktimer(clockid_t clock, int notify, int signo, int value)
{
	struct sigevent ev = { .sigev_notify = notify, .sigev_signo = signo };
	int id = -1;	/* the kernel's timer_t */

	ev.sigev_value.sival_int = value;
	if (notify & SIGEV_THREAD_ID)
		ev._sigev_un._tid = gettid();
	if (syscall(SYS_timer_create, clock, &ev, &id))
		perror("timer_create"), exit(100);
	return id;
}

static void arm(int id, time_t value_ms, time_t interval_ms)
{
	struct itimerspec its = {
		{ interval_ms / 1000, interval_ms % 1000 * 1000000 },
		{ value_ms / 1000, value_ms % 1000 * 1000000 },
	};

	if (syscall(SYS_timer_settime, id, 0, &its, NULL))
		perror("timer_settime"), exit(100);
}

static double secs(struct timespec t)
{
	return t.tv_sec + t.tv_nsec / 1e9;
}

static double tvsecs(struct timeval t)
{
	return t.tv_sec + t.tv_usec / 1e6;
}

/* The VmFlags line of the mapping at @addr in /proc/self/smaps */
static int has_vmflag(void *addr, const char *flag)
{
	char line[512], want[32];
	FILE *f = fopen("/proc/self/smaps", "r");
	int in = 0, found = 0;

	snprintf(want, sizeof(want), "%lx-", (unsigned long)addr);
	while (f && fgets(line, sizeof(line), f)) {
		if (strchr(line, '-') && strchr(line, '-') < strchr(line, ' '))
			in = !strncmp(line, want, strlen(want));
		else if (in && !strncmp(line, "VmFlags:", 8))
			found = strstr(line, flag) != NULL;
	}
	if (f)
		fclose(f);
	return found;
}

static char proc_state(pid_t pid)
{
	char path[64], buf[256], *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f || !fgets(buf, sizeof(buf), f))
		return '?';
	fclose(f);
	p = strrchr(buf, ')');
	return p ? p[2] : '?';
}

int main(void)
{
	struct sched_param sp = { .sched_priority = 0 };
	char exe[256] = "", exe2[256] = "", name[16];
	sigset_t block, wait_mask;
	struct itimerval it;
	struct itimerspec its;
	int t0, t1, t2, t3, t4, t5;
	siginfo_t si;
	int status, overrun;
	long v;
	void *dontfork, *dontdump, *wipe, *locked;
	pid_t child;

	setvbuf(stdout, NULL, _IONBF, 0);
	signal(SIGUSR1, on_usr1);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIG_T0);
	sigaddset(&block, SIG_T2);
	sigaddset(&block, SIG_T4);
	sigaddset(&block, SIG_T5);
	sigaddset(&block, SIGALRM);
	sigprocmask(SIG_BLOCK, &block, &wait_mask);

	child = fork();
	if (child == 0) {
		struct sched_param fifo = { .sched_priority = 2 };

		if (setpriority(PRIO_PROCESS, 0, 5) || sched_setscheduler(0, SCHED_FIFO, &fifo))
			_exit(100);
		raise(SIGSTOP);
		/* once continued */
		errno = 0;
		_exit(sched_getscheduler(0) == SCHED_FIFO && !sched_getparam(0, &fifo) &&
		      fifo.sched_priority == 2 && getpriority(PRIO_PROCESS, 0) == 5 && !errno ? 42 : 43);
	}
	if (waitpid(child, &status, WUNTRACED) != child || !WIFSTOPPED(status))
		return 100;

	if (readlink("/proc/self/exe", exe, sizeof(exe) - 1) < 0 ||
	    prctl(PR_SET_NAME, NAME) || prctl(PR_SET_PDEATHSIG, SIGUSR2) ||
	    prctl(PR_SET_DUMPABLE, 0) || prctl(PR_SET_CHILD_SUBREAPER, 1) ||
	    prctl(PR_SET_TIMERSLACK, SLACK) || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    personality(PERS) < 0 || setpriority(PRIO_PROCESS, 0, 7) ||
	    sched_setscheduler(0, SCHED_BATCH, &sp))
		return perror("set-up"), 100;

	dontfork = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	dontdump = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	wipe = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	locked = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (madvise(dontfork, PAGE, MADV_DONTFORK) || madvise(dontdump, PAGE, MADV_DONTDUMP) ||
	    madvise(wipe, 2 * PAGE, MADV_WIPEONFORK) || mlock(locked, PAGE))
		return perror("madvise"), 100;
	strcpy(wipe, "wiped in a child, kept here");

	it = (struct itimerval){ { 50, 0 }, { 100, 0 } };
	setitimer(ITIMER_REAL, &it, NULL);
	it = (struct itimerval){ { 0, 0 }, { 200, 0 } };
	setitimer(ITIMER_VIRTUAL, &it, NULL);
	it = (struct itimerval){ { 30, 0 }, { 300, 0 } };
	setitimer(ITIMER_PROF, &it, NULL);

	t0 = mktimer(CLOCK_MONOTONIC, SIGEV_SIGNAL, SIG_T0, 77);
	t1 = mktimer(CLOCK_MONOTONIC, SIGEV_SIGNAL, SIG_T0, 1);
	t2 = mktimer(CLOCK_REALTIME, SIGEV_THREAD_ID, SIG_T2, 99);
	t3 = mktimer(CLOCK_PROCESS_CPUTIME_ID, SIGEV_NONE, 0, 0);
	t4 = mktimer(CLOCK_MONOTONIC, SIGEV_SIGNAL, SIG_T4, 44);
	t5 = mktimer(CLOCK_BOOTTIME, SIGEV_THREAD_ID, SIG_T5, 555);
	syscall(SYS_timer_delete, t1);
	arm(t0, 500000, 250000);
	arm(t2, 1000000, 0);
	arm(t3, 100000, 0);
	/*
	 * A fast one, its signal blocked: it overruns until we take the
	 * signal, then fires once more and waits for us to take that one.
	 */
	arm(t4, 1, 1);
	usleep(50000);
	sigemptyset(&wait_mask);
	sigaddset(&wait_mask, SIG_T4);
	if (sigwaitinfo(&wait_mask, &si) != SIG_T4)
		return 100;
	overrun = syscall(SYS_timer_getoverrun, t4);
	arm(t5, 3000, 0);
	if (overrun <= 0)
		return 100;
	sigprocmask(SIG_BLOCK, NULL, &wait_mask);
	sigdelset(&wait_mask, SIGUSR1);
	printf("ready\n");

	sigsuspend(&wait_mask);		/* until SIGUSR1, after the restart */

	prctl(PR_GET_NAME, name);
	check(!strcmp(name, NAME), "PR_SET_NAME");
	check(readlink("/proc/self/exe", exe2, sizeof(exe2) - 1) > 0 && !strcmp(exe, exe2),
	      "/proc/self/exe");
	prctl(PR_GET_PDEATHSIG, &v);
	check(v == SIGUSR2, "parent-death signal");
	check(prctl(PR_GET_DUMPABLE) == 0, "dumpable");
	prctl(PR_GET_CHILD_SUBREAPER, &v);
	check(v == 1, "child subreaper");
	check(prctl(PR_GET_TIMERSLACK) == SLACK, "timer slack");
	check(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1, "no_new_privs");
	check(personality(0xffffffff) == PERS, "personality");
	check(sched_getscheduler(0) == SCHED_BATCH, "SCHED_BATCH");
	errno = 0;
	check(getpriority(PRIO_PROCESS, 0) == 7 && !errno, "nice 7");
	check(has_vmflag(dontfork, " dc"), "MADV_DONTFORK");
	check(has_vmflag(dontdump, " dd"), "MADV_DONTDUMP");
	check(has_vmflag(wipe, " wf") && !strcmp(wipe, "wiped in a child, kept here"),
	      "MADV_WIPEONFORK");
	check(has_vmflag(locked, " lo"), "mlock");

	/* CPU timers count in ticks: a little over their value */
	getitimer(ITIMER_REAL, &it);
	check(tvsecs(it.it_value) > 90 && tvsecs(it.it_value) <= 100 &&
	      it.it_interval.tv_sec == 50, "ITIMER_REAL");
	getitimer(ITIMER_VIRTUAL, &it);
	check(tvsecs(it.it_value) > 190 && tvsecs(it.it_value) <= 201 &&
	      !it.it_interval.tv_sec, "ITIMER_VIRTUAL");
	getitimer(ITIMER_PROF, &it);
	check(tvsecs(it.it_value) > 290 && tvsecs(it.it_value) <= 301 &&
	      it.it_interval.tv_sec == 30, "ITIMER_PROF");

	check(!syscall(SYS_timer_gettime, t0, &its) && secs(its.it_value) > 490 &&
	      secs(its.it_value) <= 500 && its.it_interval.tv_sec == 250, "timer 0: value, interval");
	check(syscall(SYS_timer_gettime, t1, &its) && errno == EINVAL, "timer 1 stays deleted");
	check(!syscall(SYS_timer_gettime, t2, &its) && secs(its.it_value) > 990 &&
	      secs(its.it_value) <= 1000 && !its.it_interval.tv_sec, "timer 2: value");
	check(!syscall(SYS_timer_gettime, t3, &its) && secs(its.it_value) > 90 &&
	      secs(its.it_value) <= 100, "timer 3: CPU clock, SIGEV_NONE");
	check(syscall(SYS_timer_getoverrun, t4) == overrun, "timer 4: overrun");

	check(proc_state(child) == 'T', "the child is still stopped");
	check(waitpid(child, &status, WUNTRACED | WNOHANG) == 0, "its stop is not reported twice");
	kill(child, SIGCONT);
	check(waitpid(child, &status, 0) == child && WIFEXITED(status) &&
	      WEXITSTATUS(status) == 42, "continued, it exits 42 (SCHED_FIFO 2, nice 5)");

	/* timer 5 fires (or fired) with its value, to this thread */
	sigemptyset(&wait_mask);
	sigaddset(&wait_mask, SIG_T5);
	check(sigwaitinfo(&wait_mask, &si) == SIG_T5 && si.si_code == SI_TIMER &&
	      si.si_value.sival_int == 555 && si.si_timerid == t5,
	      "timer 5 fires with its value");
	check(t0 == 0 && t2 == 2 && t3 == 3 && t4 == 4 && t5 == 5, "timer ids");
	return failures;
}
