// SPDX-License-Identifier: GPL-2.0-only
/*
 * sharedtable: a parent and a child process created with clone(2)
 * sharing a table that only threads normally share, which the user
 * backend must refuse rather than restore as two copies.
 *
 *   sharedtable files|fs
 *
 * Prints "ready PARENT CHILD" and sleeps; the child dies with its parent.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

static int child(void *arg)
{
	(void)arg;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	for (;;)
		pause();
	return 0;
}

int main(int argc, char **argv)
{
	size_t sz = 64 << 10;
	char *stack = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int flag, pid;

	close_range(3, ~0U, 0);
	if (argc != 2 || stack == MAP_FAILED) {
		fprintf(stderr, "usage: sharedtable files|fs\n");
		return 2;
	}
	flag = strcmp(argv[1], "fs") ? CLONE_FILES : CLONE_FS;
	pid = clone(child, stack + sz, flag | SIGCHLD, NULL);
	if (pid < 0)
		return perror("clone"), 1;
	printf("ready %d %d\n", getpid(), pid);
	fflush(stdout);
	for (;;)
		pause();
}
