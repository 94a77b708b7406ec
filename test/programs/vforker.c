// SPDX-License-Identifier: GPL-2.0-only
/*
 * vforker: a parent waiting in vfork() while its child, sharing its
 * memory, sleeps (raw system calls only, as a vfork child must) and then
 * exits; the parent then reaps it and says how it ended.
 *
 *   vforker MS
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct timespec ts;
	long ms;
	int status;
	pid_t child;

	close_range(3, ~0U, 0);
	if (argc != 2) {
		fprintf(stderr, "usage: vforker MS\n");
		return 2;
	}
	ms = atol(argv[1]);
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = ms % 1000 * 1000000L;
	dprintf(1, "ready\n");
	child = vfork();
	if (child == 0) {
		syscall(SYS_nanosleep, &ts, NULL);
		_exit(7);
	}
	waitpid(child, &status, 0);
	dprintf(1, "vfork child exited %d\n", WEXITSTATUS(status));
	return 0;
}
