/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What the kernel backend's self-checking test programs share: each check
 * prints "ok WHAT" or "FAIL WHAT", and the exit status is the number of
 * failures; a step of the set-up that fails ends the program with 100.
 */
#ifndef KCHECK_H
#define KCHECK_H

#include <stdio.h>
#include <stdlib.h>

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

#endif /* KCHECK_H */
