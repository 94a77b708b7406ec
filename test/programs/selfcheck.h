/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What the test programs that check their own state after a restore
 * share: one line per check ("ok   …" or "BAD  …"), the count of bad
 * ones, and a way out for a set-up that failed.
 */
#ifndef SELFCHECK_H
#define SELFCHECK_H

#include <errno.h>
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

#endif
