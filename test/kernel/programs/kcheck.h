/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What the kernel backend's self-checking test programs share: each check
 * prints "ok WHAT" or "FAIL WHAT", and the exit status is the number of
 * failures; a step of the set-up that fails ends the program with 100.
 */
#ifndef KCHECK_H
#define KCHECK_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

static int failures;

static inline void check(int ok, const char *what)
{
	printf("%s %s\n", ok ? "ok" : "FAIL", what);
	failures += !ok;
}

#define need(x) do { if (!(x)) { perror(#x); exit(100); } } while (0)

/* SIGUSR1, sent after the restart, only ends a wait */
static inline void on_usr1(int sig)
{
	(void)sig;
}

/*
 * Wait for the restart (SIGUSR1).  A program of one process passes @child
 * -1: it prints "ready".  Of a parent and its child, the child (@child 0)
 * says on @sync that it is ready, the parent (@child its pid) then prints
 * "ready" and, once restarted, passes SIGUSR1 on to the child.
 */
static inline void wait_restart(pid_t child, const int sync[2])
{
	sigset_t block, old;
	char c = 'r';

	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_BLOCK, &block, &old);
	signal(SIGUSR1, on_usr1);
	if (child) {
		if (child > 0)
			need(read(sync[0], &c, 1) == 1);
		printf("ready\n");
		fflush(stdout);
	} else {
		need(write(sync[1], &c, 1) == 1);
	}
	sigdelset(&old, SIGUSR1);
	sigsuspend(&old);
	if (child > 0)
		kill(child, SIGUSR1);
}

#endif /* KCHECK_H */
