// SPDX-License-Identifier: GPL-2.0-only
/*
 * pidns: a tree with pid namespaces of its own.
 *   root ── A  (clone CLONE_NEWPID: pid 1 of namespace 1)
 *   │       └── B  (pid 2 there)
 *   │           └── C  (clone CLONE_NEWPID: pid 1 of namespace 2, nested)
 *   ├── E  (after unshare(CLONE_NEWPID): pid 1 of namespace 3)
 *   └── F  (pid 2 of namespace 3)
 * Every task checks getpid() and getppid() against what they were at each
 * step; at the end the root forks one more child, G, which must land in
 * namespace 3 too, and prints what each task saw.
 *
 *   pidns STEPS
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { A, B, C, E, F, G, NR_TASKS };
static const char names[] = "ABCEFG";

struct seen {
	int pid, ppid, bad, depth;
};

static struct seen *seen;	/* MAP_SHARED: every task reports here */
static long steps;

static void nap(void)
{
	struct timespec ts = { 0, 20 * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* How many pid namespaces deep the task is, from /proc/self/status NSpid. */
static int depth(void)
{
	char line[256];
	int n = 0;
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "NSpid:", 6))
			continue;
		for (char *p = strtok(line + 6, " \t\n"); p; p = strtok(NULL, " \t\n"))
			n++;
	}
	if (f)
		fclose(f);
	return n;
}

static void watch(int k, long steps)
{
	struct seen *s = &seen[k];
	long step;

	s->pid = getpid();
	s->ppid = getppid();
	s->depth = depth();
	for (step = 0; step < steps; step++) {
		if (getpid() != s->pid || getppid() != s->ppid)
			s->bad++;
		if (k == A && step % 10 == 0)
			dprintf(1, "step %ld\n", step);
		nap();
	}
}

static pid_t fork_ns(int newns)
{
	return syscall(SYS_clone, (newns ? CLONE_NEWPID : 0) | SIGCHLD, 0, 0, 0, 0);
}

static void run(int k)
{
	pid_t kid = -1;

	if (k == A && (kid = fork()) == 0) {
		run(B);
		_exit(0);
	}
	if (k == B && (kid = fork_ns(1)) == 0) {
		watch(C, steps);
		_exit(0);
	}
	watch(k, steps);
	if (kid > 0)
		waitpid(kid, NULL, 0);
}

int main(int argc, char **argv)
{
	pid_t a, e, f, g;
	int k;

	close_range(3, ~0U, 0);
	if (argc != 2) {
		fprintf(stderr, "usage: pidns STEPS\n");
		return 2;
	}
	steps = atol(argv[1]);
	seen = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	a = fork_ns(1);
	if (a == 0) {
		run(A);
		_exit(0);
	}
	if (unshare(CLONE_NEWPID) < 0)
		return perror("unshare"), 1;
	/* E, the init, outlives the others of its namespace: its end would kill them. */
	e = fork();
	if (e == 0) {
		watch(E, steps + 25);
		_exit(0);
	}
	f = fork();
	if (f == 0) {
		watch(F, steps);
		_exit(0);
	}
	waitpid(f, NULL, 0);
	/* One more child after all: it goes where the root's children go. */
	g = fork();
	if (g == 0) {
		seen[G].pid = getpid();
		seen[G].ppid = getppid();
		seen[G].depth = depth();
		_exit(0);
	}
	waitpid(g, NULL, 0);
	waitpid(e, NULL, 0);
	waitpid(a, NULL, 0);
	for (k = 0; k < NR_TASKS; k++)
		dprintf(1, "%c: pid %d ppid %d, %d pid namespaces deep, %d bad checks\n", names[k], seen[k].pid,
			seen[k].ppid, seen[k].depth, seen[k].bad);
	dprintf(1, "pid %d\n", (int)getpid());
	return 0;
}
