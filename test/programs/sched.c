// SPDX-License-Identifier: GPL-2.0-only
/*
 * sched: threads with a scheduling policy, priority and nice value each
 * (SCHED_BATCH nice 5, SCHED_IDLE, SCHED_FIFO 10 with SCHED_RESET_ON_FORK,
 * SCHED_RR 5, SCHED_OTHER nice -3), the second pinned to the first CPU and
 * the fourth to the last, each checking its own with sched_getattr and
 * sched_getaffinity at every step; the end says what each thread had.
 *
 *   sched STEPS
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NR_THREADS 5

/* linux/sched/types.h, which clashes with glibc's sched.h */
struct sched_attr {
	unsigned int size, sched_policy;
	unsigned long long sched_flags;
	int sched_nice;
	unsigned int sched_priority;
	unsigned long long sched_runtime, sched_deadline, sched_period;
	unsigned int sched_util_min, sched_util_max;
};

struct want {
	unsigned int policy;
	unsigned long long flags;
	int nice;
	unsigned int prio;
};

static const struct want wants[NR_THREADS] = {
	{ SCHED_BATCH, 0, 5, 0 },
	{ SCHED_IDLE, 0, 0, 0 },
	{ SCHED_FIFO, SCHED_FLAG_RESET_ON_FORK, 0, 10 },
	{ SCHED_RR, 0, 0, 5 },
	{ SCHED_OTHER, 0, -3, 0 },
};

static long steps;
static int bad[NR_THREADS];
static struct sched_attr seen[NR_THREADS];
/* What each thread may run on: its start's, or one CPU for threads 1 and 3. */
static cpu_set_t cpus[NR_THREADS];

static void pin(int i)
{
	long last = sysconf(_SC_NPROCESSORS_ONLN) - 1;

	if (sched_getaffinity(0, sizeof(cpus[i]), &cpus[i]) < 0)
		perror("sched_getaffinity"), exit(1);
	if (i != 1 && i != 3)
		return;
	CPU_ZERO(&cpus[i]);
	CPU_SET(i == 1 ? 0 : last, &cpus[i]);
	if (sched_setaffinity(0, sizeof(cpus[i]), &cpus[i]) < 0)
		perror("sched_setaffinity"), exit(1);
}

static int pinned(int i)
{
	cpu_set_t now;

	return sched_getaffinity(0, sizeof(now), &now) == 0 && CPU_EQUAL(&now, &cpus[i]);
}

static int get(struct sched_attr *a)
{
	memset(a, 0, sizeof(*a));
	return syscall(SYS_sched_getattr, 0, a, sizeof(*a), 0);
}

static int matches(int i, const struct sched_attr *a)
{
	const struct want *w = &wants[i];

	return a->sched_policy == w->policy && (a->sched_flags & SCHED_FLAG_RESET_ON_FORK) == w->flags &&
	       a->sched_priority == w->prio && (w->policy > SCHED_RR || w->policy == SCHED_OTHER ?
						a->sched_nice == w->nice : 1) &&
	       getpriority(PRIO_PROCESS, 0) == (w->policy == SCHED_FIFO || w->policy == SCHED_RR ? 0 : w->nice);
}

static void *run(void *arg)
{
	int i = (int)(long)arg;
	struct sched_attr a;
	long step;

	for (step = 0; step < steps; step++) {
		struct timespec ts = { 0, 20 * 1000000L };

		if (get(&a) < 0 || !matches(i, &a) || !pinned(i))
			bad[i]++;
		if (i == 0 && step % 10 == 0)
			dprintf(1, "step %ld\n", step);
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	get(&seen[i]);
	return NULL;
}

static void *start(void *arg)
{
	int i = (int)(long)arg;
	struct sched_attr a = { .size = sizeof(a), .sched_policy = wants[i].policy,
				.sched_flags = wants[i].flags, .sched_nice = wants[i].nice,
				.sched_priority = wants[i].prio };

	if (syscall(SYS_sched_setattr, 0, &a, 0) < 0) {
		perror("sched_setattr");
		exit(1);
	}
	pin(i);
	return run(arg);
}

int main(int argc, char **argv)
{
	static const char *names[] = { "other", "fifo", "rr", "batch", "iso", "idle" };
	pthread_t t[NR_THREADS];
	long i;

	close_range(3, ~0U, 0);
	if (argc != 2) {
		fprintf(stderr, "usage: sched STEPS\n");
		return 2;
	}
	steps = atol(argv[1]);
	for (i = 1; i < NR_THREADS; i++)
		if (pthread_create(&t[i], NULL, start, (void *)i))
			return 1;
	/* The main thread takes the first policy itself. */
	{
		struct sched_attr a = { .size = sizeof(a), .sched_policy = wants[0].policy, .sched_nice = wants[0].nice };

		if (syscall(SYS_sched_setattr, 0, &a, 0) < 0)
			return perror("sched_setattr"), 1;
	}
	pin(0);
	run((void *)0);
	for (i = 1; i < NR_THREADS; i++)
		pthread_join(t[i], NULL);
	for (i = 0; i < NR_THREADS; i++)
		dprintf(1, "thread %ld: %s%s priority %u nice %d, on %d CPUs, %d bad checks\n", i, names[seen[i].sched_policy],
			seen[i].sched_flags & SCHED_FLAG_RESET_ON_FORK ? "|reset_on_fork" : "",
			seen[i].sched_priority, seen[i].sched_nice, CPU_COUNT(&cpus[i]), bad[i]);
	dprintf(1, "pid %d\n", (int)getpid());
	return 0;
}
