/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What the test programs that check their own state after a restore
 * share: one line per check ("ok   …" or "BAD  …"), the count of bad
 * ones, and a way out for a set-up that failed.
 */
#ifndef SELFCHECK_H
#define SELFCHECK_H

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int bad;

static void __attribute__((format(printf, 2, 3))) check(int ok, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf(ok ? "ok   " : "BAD  ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
	bad += !ok;
}

static void die(const char *what)
{
	printf("FAIL %s: %s\n", what, strerror(errno));
	exit(1);
}

/* "built", then `steps` naps of 20 ms, a "step N" line every ten: where the dump comes. */
static inline void built_then_step(long steps)
{
	printf("built\n");
	fflush(stdout);
	for (long i = 0; i < steps; i++) {
		poll(NULL, 0, 20);
		if (i % 10 == 0) {
			printf("step %ld\n", i);
			fflush(stdout);
		}
	}
}

#endif
