// SPDX-License-Identifier: GPL-2.0-only
/*
 * threadsigs: signals pending for threads other than the first, each
 * blocked in its thread: SIGUSR1 for thread 1, SIGUSR2 for thread 2, two
 * queued SIGRTMIN+1 with values for thread 3, and SIGUSR2 for the main
 * thread. Every thread checks its pending set at each step; at the end
 * each takes its own signals, and the output says who got what.
 *
 *   threadsigs STEPS
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NR_THREADS 4

static long steps;
static pid_t tids[NR_THREADS];
static __thread int me;
static int got[NR_THREADS][8], n_got[NR_THREADS], bad[NR_THREADS];
static pthread_barrier_t ready;
static sigset_t wanted[NR_THREADS];

static void handler(int signo, siginfo_t *si, void *uc)
{
	(void)uc;
	if (n_got[me] < 8)
		got[me][n_got[me]++] = signo * 1000 + (signo >= SIGRTMIN ? si->si_value.sival_int : 0);
}

static sigset_t block_ours(void)
{
	sigset_t all;

	sigemptyset(&all);
	sigaddset(&all, SIGUSR1);
	sigaddset(&all, SIGUSR2);
	sigaddset(&all, SIGRTMIN + 1);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	return all;
}

/* Check this thread's pending set at every step, then take its signals. */
static void watch(sigset_t all)
{
	sigset_t pending;
	long step;
	int s;

	for (step = 0; step < steps; step++) {
		struct timespec ts = { 0, 20 * 1000000L };

		sigpending(&pending);
		for (s = 1; s < SIGRTMIN + 2; s++)
			if (sigismember(&all, s) && sigismember(&pending, s) != sigismember(&wanted[me], s))
				bad[me]++;
		if (me == 0 && step % 10 == 0)
			dprintf(1, "step %ld\n", step);
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	pthread_sigmask(SIG_UNBLOCK, &all, NULL);
}

static void *run(void *arg)
{
	sigset_t all;

	me = (int)(long)arg;
	tids[me] = gettid();
	all = block_ours();
	pthread_barrier_wait(&ready);
	pthread_barrier_wait(&ready);	/* the signals are sent */
	watch(all);
	return NULL;
}

static void queue(int i, int signo, int value)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	si.si_signo = signo;
	si.si_code = SI_QUEUE;
	si.si_pid = getpid();
	si.si_uid = getuid();
	si.si_value.sival_int = value;
	if (syscall(SYS_rt_tgsigqueueinfo, getpid(), tids[i], signo, &si) < 0)
		exit(1);
	sigaddset(&wanted[i], signo);
}

static void send_to(int i, int signo)
{
	syscall(SYS_tgkill, getpid(), tids[i], signo);
	sigaddset(&wanted[i], signo);
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	pthread_t t[NR_THREADS];
	sigset_t all;
	long i;
	int j;

	close_range(3, ~0U, 0);
	if (argc != 2) {
		fprintf(stderr, "usage: threadsigs STEPS\n");
		return 2;
	}
	steps = atol(argv[1]);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = handler;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(SIGRTMIN + 1, &sa, NULL);
	for (i = 0; i < NR_THREADS; i++)
		sigemptyset(&wanted[i]);
	pthread_barrier_init(&ready, NULL, NR_THREADS);
	for (i = 1; i < NR_THREADS; i++)
		if (pthread_create(&t[i], NULL, run, (void *)i))
			return 1;
	me = 0;
	tids[0] = gettid();
	all = block_ours();
	pthread_barrier_wait(&ready);
	send_to(1, SIGUSR1);
	send_to(2, SIGUSR2);
	queue(3, SIGRTMIN + 1, 42);
	queue(3, SIGRTMIN + 1, 43);
	send_to(0, SIGUSR2);
	pthread_barrier_wait(&ready);
	watch(all);
	for (i = 1; i < NR_THREADS; i++)
		pthread_join(t[i], NULL);
	for (i = 0; i < NR_THREADS; i++) {
		dprintf(1, "thread %ld: %d bad checks, got", i, bad[i]);
		for (j = 0; j < n_got[i]; j++)
			dprintf(1, " %d", got[i][j]);
		dprintf(1, "\n");
	}
	dprintf(1, "pid %d\n", (int)getpid());
	return 0;
}
