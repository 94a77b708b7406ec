// SPDX-License-Identifier: GPL-2.0-only
/*
 * procself: a process that holds its own /proc files open across a dump
 * (/proc/self/status and /proc/self/task/TID/stat, as the kernel names
 * them /proc/PID/...), and reads them again after: they must still be
 * its own.
 *
 *   procself STEPS
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "selfcheck.h"

/* The value of a "Key:" line of a status text, as a number, or -1 */
static long field(const char *text, const char *key)
{
	const char *p = strstr(text, key);

	return p ? atol(p + strlen(key)) : -1;
}

int main(int argc, char **argv)
{
	char path[64], text[4096];
	int status, stat;
	ssize_t n;

	close_range(3, ~0U, 0);
	if (argc != 2) {
		fprintf(stderr, "usage: procself STEPS\n");
		return 2;
	}
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", gettid());
	status = open("/proc/self/status", O_RDONLY);
	stat = open(path, O_RDONLY);
	if (status < 0 || stat < 0)
		die("open");
	built_then_step(atol(argv[1]));
	n = pread(status, text, sizeof(text) - 1, 0);
	text[n > 0 ? n : 0] = '\0';
	check(field(text, "\nPid:") == getpid(), "/proc/self/status is this process's");
	check(strstr(text, "Name:\tprocself\n") != NULL, "and names it");
	n = pread(stat, text, sizeof(text) - 1, 0);
	text[n > 0 ? n : 0] = '\0';
	check(atol(text) == gettid(), "its thread's stat is this thread's");
	printf("%d bad\npid %d\n", bad, (int)getpid());
	return bad != 0;
}
