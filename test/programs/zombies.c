// SPDX-License-Identifier: GPL-2.0-only
/*
 * zombies: zombies of every shape under one parent. A child that exited
 * with a code and one killed by a signal, neither waited for; and a child
 * whose thread group leader exited (pthread_exit) while its two threads
 * run on, computing. At the end the parent reaps them all and says how
 * each ended; the threaded child checks it still has its threads and a
 * zombie leader.
 *
 *   zombies STEPS
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long steps;
static volatile unsigned long long sums[2];

static void nap(void)
{
	struct timespec ts = { 0, 20 * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static char leader_state(void)
{
	char buf[512], *p;
	FILE *f = fopen("/proc/self/stat", "r");

	if (!f || !fgets(buf, sizeof(buf), f))
		return '?';
	fclose(f);
	p = strrchr(buf, ')');
	return p ? p[2] : '?';
}

static int thread_count(void)
{
	char line[256];
	int n = -1;
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	if (f)
		fclose(f);
	return n;
}

static pthread_barrier_t done;
/* The parent writes a byte when its steps are done: the threaded child's line comes after its last. */
static int stepped[2];

static void *worker(void *arg)
{
	long i = (long)arg, step;
	int bad = 0;

	while (leader_state() != 'Z')	/* the leader is on its way out */
		nap();
	for (step = 0; step < steps; step++) {
		sums[i] = sums[i] * 31 + step + i;
		if (leader_state() != 'Z' || thread_count() != 3)
			bad++;
		nap();
	}
	pthread_barrier_wait(&done);
	if (i == 0) {
		char c;

		while (read(stepped[0], &c, 1) < 0 && errno == EINTR)
			;
		dprintf(1, "threaded child: sums %llx %llx, leader %c, %d threads, %d bad checks\n", sums[0], sums[1],
			leader_state(), thread_count(), bad);
		exit(4);
	}
	for (;;)
		pause();
}

static void threaded_child(void)
{
	pthread_t t[2];
	long i;

	pthread_barrier_init(&done, NULL, 2);
	for (i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, worker, (void *)i);
	pthread_exit(NULL);
}

int main(int argc, char **argv)
{
	pid_t kids[3];
	int i, status[3];
	long step;

	close_range(3, ~0U, 0);
	if (argc != 2) {
		fprintf(stderr, "usage: zombies STEPS\n");
		return 2;
	}
	steps = atol(argv[1]);
	if (pipe(stepped) < 0)
		return perror("pipe"), 1;
	kids[0] = fork();
	if (kids[0] == 0)
		_exit(42);
	kids[1] = fork();
	if (kids[1] == 0) {
		signal(SIGTERM, SIG_DFL);
		raise(SIGTERM);
		_exit(1);
	}
	kids[2] = fork();
	if (kids[2] == 0)
		threaded_child();
	for (step = 0; step < steps; step++) {
		if (step % 10 == 0)
			dprintf(1, "step %ld\n", step);
		nap();
	}
	if (write(stepped[1], "", 1) != 1)
		return perror("write"), 1;
	/* All reaped first: the threaded child's own line comes before the parent's. */
	for (i = 0; i < 3; i++)
		waitpid(kids[i], &status[i], 0);
	for (i = 0; i < 3; i++)
		dprintf(1, "child %d: %s %d\n", i, WIFEXITED(status[i]) ? "exited" : "killed by",
			WIFEXITED(status[i]) ? WEXITSTATUS(status[i]) : WTERMSIG(status[i]));
	dprintf(1, "pid %d\n", (int)getpid());
	return 0;
}
