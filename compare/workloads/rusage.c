// SPDX-License-Identifier: GPL-2.0-only
/*
 * rusage: run a command and report what wait4(2) says about it.
 *
 *   rusage OUTFILE CMD [ARG...]
 *
 * Writes one line to OUTFILE:
 *   wall_us=<n> maxrss_kb=<n> utime_us=<n> stime_us=<n> status=<exit|sig>:<n> start_us=<n> end_us=<n>
 * wall time is CLOCK_MONOTONIC from just before fork to wait4's return;
 * start_us and end_us are those two CLOCK_MONOTONIC times themselves (what
 * the command says of its own timings, e.g. `cr` with CR_TIMINGS, is
 * placed against them);
 * maxrss is ru_maxrss of the command, which covers the largest single
 * process among it and the descendants it waited for (not their sum).
 * Exits with the command's exit code (128+signal if it was killed).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: rusage OUTFILE CMD [ARG...]\n");
		return 2;
	}
	long long t0 = now_us();
	pid_t p = fork();
	if (p < 0) {
		perror("fork");
		return 2;
	}
	if (p == 0) {
		execvp(argv[2], argv + 2);
		fprintf(stderr, "rusage: exec %s: %s\n", argv[2], strerror(errno));
		_exit(127);
	}
	int st;
	struct rusage ru;
	pid_t r;
	while ((r = wait4(p, &st, 0, &ru)) < 0 && errno == EINTR)
		;
	long long t1 = now_us();
	if (r < 0) {
		perror("wait4");
		return 2;
	}
	FILE *f = fopen(argv[1], "w");
	if (!f) {
		perror(argv[1]);
		return 2;
	}
	fprintf(f, "wall_us=%lld maxrss_kb=%ld utime_us=%lld stime_us=%lld status=%s:%d start_us=%lld end_us=%lld\n", t1 - t0, ru.ru_maxrss,
		ru.ru_utime.tv_sec * 1000000LL + ru.ru_utime.tv_usec, ru.ru_stime.tv_sec * 1000000LL + ru.ru_stime.tv_usec,
		WIFEXITED(st) ? "exit" : "sig", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), t0, t1);
	fclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
