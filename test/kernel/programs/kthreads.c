// SPDX-License-Identifier: GPL-2.0-only
/*
 * kthreads: a process of five threads, each with state of its own that the
 * kernel backend must bring back across checkpoint/restart.
 *
 *   kthreads MODE
 *
 * MODE "threads": the main thread and four others.  Each thread has its
 * own TLS value, blocked mask, FPU rounding mode and CPU affinity; the
 * first also has an alternate signal stack and a real-time signal queued
 * to it alone (pthread_sigqueue), the process a real-time signal queued
 * to it as a whole (sigqueue); the second sleeps in sigsuspend(2) with a
 * temporary mask; the third holds a robust mutex it dies holding.  The
 * main thread prints "ready" and the threads' tids, then waits in
 * sigwait() for SIGUSR1.  Then every thread checks itself: tid, TLS,
 * mask, rounding mode, affinity, pending signals (its own and the
 * process's, each delivered once, to the right thread), and that rseq
 * still tells the CPU it runs on after moving it; the second is woken
 * from sigsuspend and checks its mask is its own again; the main thread
 * joins them all (pthread_join() needs clear_child_tid), takes the dead
 * thread's robust mutex (EOWNERDEAD needs the robust list) and counts
 * its threads.
 * Prints "ok ..." or "FAIL ..." lines and exits with the number of
 * failures.
 *
 * MODE "zombie-leader": the main thread starts two threads and exits
 * alone (the leader is a zombie while they run); they print "ready", wait
 * for SIGUSR1, check that the leader is still a zombie, that they are two
 * with their tids and TLS, and the last one ends the process with exit
 * status 3.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fenv.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <time.h>
#include <dirent.h>
#include <unistd.h>

#define NTHREADS 4
#define OWNSIG (SIGRTMIN + 3)	/* queued to thread 1 alone */
#define PROCSIG (SIGRTMIN + 2)	/* queued to the process */
#define WAKESIG (SIGRTMIN + 5)	/* wakes thread 2 from sigsuspend */

static __thread long tls_value;
static pthread_barrier_t ready, go, checked;
static pthread_mutex_t robust;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t tids[NTHREADS + 1];
static pthread_t threads[NTHREADS];
static volatile sig_atomic_t woken;
static int failures, ncpus;

static void check(int ok, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&out_lock);
	printf("%s ", ok ? "ok" : "FAIL");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	failures += !ok;
	pthread_mutex_unlock(&out_lock);
}

static pid_t gettid_(void)
{
	return syscall(SYS_gettid);
}

static int nr_tasks(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)))
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

static void on_wake(int sig)
{
	(void)sig;
	woken = 1;
}

/* Take @sig, pending and blocked, without waiting; its value, or -1 */
static int take(int sig)
{
	struct timespec now = { 0, 0 };
	sigset_t set;
	siginfo_t si;

	sigemptyset(&set);
	sigaddset(&set, sig);
	return sigtimedwait(&set, &si, &now) == sig ? si.si_value.sival_int : -1;
}

static const int roundings[] = { FE_TONEAREST, FE_UPWARD, FE_DOWNWARD, FE_TOWARDZERO, FE_UPWARD };

/* Thread @i's own mask: block the test's signals and, to tell them apart, SIGRTMIN+10+i */
static void own_mask(int i, sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGUSR1);
	sigaddset(set, OWNSIG);
	sigaddset(set, PROCSIG);
	sigaddset(set, WAKESIG);
	sigaddset(set, SIGRTMIN + 10 + i);
}

static int same_mask(int i)
{
	sigset_t want, have;
	int s;

	own_mask(i, &want);
	pthread_sigmask(SIG_SETMASK, NULL, &have);
	for (s = 1; s < SIGRTMAX; s++)
		if (sigismember(&want, s) != sigismember(&have, s))
			return 0;
	return 1;
}

/* rseq's cpu_id follows the thread to another CPU: the kernel knows its registration */
static void check_rseq(int i)
{
	struct rseq *rs;
	cpu_set_t cpus;
	int cpu = i % ncpus;

	if (ncpus < 2 || !__rseq_size)
		return;
	CPU_ZERO(&cpus);
	CPU_SET(cpu, &cpus);
	sched_setaffinity(0, sizeof(cpus), &cpus);
	rs = (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
	check(rs->cpu_id == (unsigned int)cpu, "thread %d: rseq says cpu %d after the move", i,
	      (int)rs->cpu_id == cpu ? cpu : -1);
}

/* Thread i runs on CPU i + 1 alone (modulo the CPUs there are) */
static void pin(int i)
{
	cpu_set_t cpus;

	if (ncpus < 2)
		return;
	CPU_ZERO(&cpus);
	CPU_SET((i + 1) % ncpus, &cpus);
	sched_setaffinity(0, sizeof(cpus), &cpus);
}

static int pinned(int i)
{
	cpu_set_t cpus;

	if (ncpus < 2)
		return 1;
	return !sched_getaffinity(0, sizeof(cpus), &cpus) && CPU_COUNT(&cpus) == 1 &&
	       CPU_ISSET((i + 1) % ncpus, &cpus);
}

/* The part every thread checks the same way */
static void check_common(int i)
{
	check(gettid_() == tids[i], "thread %d: same tid", i);
	check(tls_value == 1000 + i, "thread %d: TLS value", i);
	check(same_mask(i), "thread %d: blocked mask is its own", i);
	check(fegetround() == roundings[i], "thread %d: FPU rounding mode", i);
	check(pinned(i), "thread %d: on CPU %d alone", i, (i + 1) % (ncpus ? ncpus : 1));
	check_rseq(i);
}

static void *thread_main(void *arg)
{
	int i = (int)(intptr_t)arg;
	static char altstack[1 << 16];
	sigset_t mask, pend;
	stack_t ss;

	tids[i] = gettid_();
	tls_value = 1000 + i;
	own_mask(i, &mask);
	pthread_sigmask(SIG_SETMASK, &mask, NULL);
	fesetround(roundings[i]);
	pin(i);
	if (i == 1) {
		ss.ss_sp = altstack;
		ss.ss_size = sizeof(altstack);
		ss.ss_flags = 0;
		sigaltstack(&ss, NULL);
	}
	if (i == 3)
		pthread_mutex_lock(&robust);
	pthread_barrier_wait(&ready);
	if (i == 2) {
		/* sleeps with a temporary mask that lets WAKESIG in */
		sigset_t tmp = mask;

		sigdelset(&tmp, WAKESIG);
		while (!woken)
			sigsuspend(&tmp);
		check(same_mask(i), "thread 2: out of sigsuspend with its own mask");
	}
	pthread_barrier_wait(&go);

	check_common(i);
	sigpending(&pend);
	check(sigismember(&pend, PROCSIG), "thread %d: the process's signal is pending", i);
	check(sigismember(&pend, OWNSIG) == (i == 1), "thread %d: %s own signal pending", i,
	      i == 1 ? "its" : "no");
	pthread_barrier_wait(&checked);
	if (i == 1) {
		check(sigaltstack(NULL, &ss) == 0 && ss.ss_sp == altstack &&
		      ss.ss_size == sizeof(altstack), "thread 1: its alternate signal stack");
		check(take(OWNSIG) == 77, "thread 1: its own signal, with its value");
	}
	if (i == 3)
		pthread_exit(NULL);	/* dies holding the robust mutex */
	return NULL;
}

static int threads_mode(void)
{
	pthread_mutexattr_t ma;
	struct timespec until;
	sigset_t mask, pend;
	int i, sig, r;

	ncpus = sysconf(_SC_NPROCESSORS_ONLN);
	signal(WAKESIG, on_wake);
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&robust, &ma);
	pthread_barrier_init(&ready, NULL, NTHREADS + 1);
	pthread_barrier_init(&go, NULL, NTHREADS + 1);
	pthread_barrier_init(&checked, NULL, NTHREADS + 1);
	tids[0] = gettid_();
	tls_value = 1000;
	own_mask(0, &mask);
	pthread_sigmask(SIG_SETMASK, &mask, NULL);
	fesetround(roundings[0]);
	pin(0);
	for (i = 1; i <= NTHREADS; i++)
		if (pthread_create(&threads[i - 1], NULL, thread_main, (void *)(intptr_t)i))
			return 100;
	pthread_barrier_wait(&ready);
	pthread_sigqueue(threads[0], OWNSIG, (union sigval){ .sival_int = 77 });
	sigqueue(getpid(), PROCSIG, (union sigval){ .sival_int = 88 });
	printf("ready");
	for (i = 0; i <= NTHREADS; i++)
		printf(" %d", tids[i]);
	printf("\n");

	sigemptyset(&pend);
	sigaddset(&pend, SIGUSR1);
	sigwait(&pend, &sig);
	pthread_kill(threads[1], WAKESIG);
	pthread_barrier_wait(&go);

	check_common(0);
	check(nr_tasks() == NTHREADS + 1, "main: %d threads", NTHREADS + 1);
	sigpending(&pend);
	check(sigismember(&pend, PROCSIG) && !sigismember(&pend, OWNSIG),
	      "main: the process's signal pending, not thread 1's");
	pthread_barrier_wait(&checked);
	for (i = 0; i < NTHREADS; i++)
		check(pthread_join(threads[i], NULL) == 0, "main: joined thread %d", i + 1);
	check(take(PROCSIG) == 88, "main: the process's signal, with its value");
	check(take(PROCSIG) < 0, "main: the process's signal is gone once taken");
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	r = pthread_mutex_timedlock(&robust, &until);
	check(r == EOWNERDEAD, "main: the dead thread's robust mutex (%s)",
	      r == EOWNERDEAD ? "EOWNERDEAD" : strerror(r));
	return failures;
}

static pid_t leader;

static void *zthread_main(void *arg)
{
	int i = (int)(intptr_t)arg, sig;
	char path[64], buf[4096];
	sigset_t set;
	FILE *f;

	tids[i] = gettid_();
	tls_value = 1000 + i;
	pthread_barrier_wait(&ready);
	if (i == 1) {
		/* the leader is gone: wait until it is a zombie, then say so */
		snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", leader, leader);
		for (;;) {
			char *p;

			f = fopen(path, "r");
			if (!f || !fgets(buf, sizeof(buf), f))
				return NULL;
			fclose(f);
			p = strrchr(buf, ')');
			if (p && p[2] == 'Z')
				break;
			usleep(1000);
		}
		printf("ready %d %d %d\n", leader, tids[1], tids[2]);
	}
	pthread_barrier_wait(&go);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	if (i == 1)
		sigwait(&set, &sig);
	pthread_barrier_wait(&ready);

	check(gettid_() == tids[i], "thread %d: same tid", i);
	check(tls_value == 1000 + i, "thread %d: TLS value", i);
	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", leader, leader);
	f = fopen(path, "r");
	check(f && fgets(buf, sizeof(buf), f) && strrchr(buf, ')')[2] == 'Z',
	      "thread %d: the leader is a zombie", i);
	if (f)
		fclose(f);
	pthread_barrier_wait(&go);
	if (i == 1) {
		check(nr_tasks() == 3, "thread 1: the leader and two threads");
		fflush(stdout);
		exit(3 + failures);
	}
	for (;;)
		pause();
}

static int zombie_leader_mode(void)
{
	pthread_t t;
	sigset_t set;
	int i;

	leader = getpid();
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_barrier_init(&ready, NULL, 2);
	pthread_barrier_init(&go, NULL, 2);
	for (i = 1; i <= 2; i++)
		if (pthread_create(&t, NULL, zthread_main, (void *)(intptr_t)i))
			return 100;
	pthread_exit(NULL);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc < 2)
		return 100;
	if (!strcmp(argv[1], "threads"))
		return threads_mode();
	if (!strcmp(argv[1], "zombie-leader"))
		return zombie_leader_mode();
	return 100;
}
