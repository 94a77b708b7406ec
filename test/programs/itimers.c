// SPDX-License-Identifier: GPL-2.0-only
/*
 * itimers: ITIMER_REAL every 50 ms counted until enough alarms came, and
 * ITIMER_VIRTUAL / ITIMER_PROF armed far away, still armed afterwards
 * with no more time gone than they could have.
 *
 *   itimers ALARMS
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static volatile sig_atomic_t alarms;

static void on_alarm(int signo)
{
	(void)signo;
	alarms++;
}

/* Whether a timer has between `lo` and `hi` seconds left (CPU timers may read a tick over what was set). */
static int in_range(const struct itimerval *t, long lo, long hi)
{
	long long us = t->it_value.tv_sec * 1000000LL + t->it_value.tv_usec;

	return us > lo * 1000000LL && us <= hi * 1000000LL + 100000;
}

int main(int argc, char **argv)
{
	struct itimerval real = { { 0, 50000 }, { 0, 50000 } }, virt = { { 0, 0 }, { 1000, 0 } },
			 prof = { { 500, 0 }, { 600, 0 } }, got;
	struct sigaction sa;
	sigset_t none;
	int target, milestone = 10;

	close_range(3, ~0U, 0);
	if (argc != 2) {
		fprintf(stderr, "usage: itimers ALARMS\n");
		return 2;
	}
	target = atoi(argv[1]);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	if (setitimer(ITIMER_VIRTUAL, &virt, NULL) < 0 || setitimer(ITIMER_PROF, &prof, NULL) < 0 ||
	    setitimer(ITIMER_REAL, &real, NULL) < 0)
		return 1;
	sigemptyset(&none);
	while (alarms < target) {
		sigsuspend(&none);
		if (alarms >= milestone) {
			dprintf(1, "alarms reached %d\n", milestone);
			milestone += 10;
		}
	}
	getitimer(ITIMER_REAL, &got);
	dprintf(1, "real: armed %d, every %ld.%06ld s\n", got.it_value.tv_sec || got.it_value.tv_usec,
		(long)got.it_interval.tv_sec, (long)got.it_interval.tv_usec);
	getitimer(ITIMER_VIRTUAL, &got);
	dprintf(1, "virtual: one-shot %d, left between 990 and 1000 s %d\n", !got.it_interval.tv_sec && !got.it_interval.tv_usec,
		in_range(&got, 990, 1000));
	getitimer(ITIMER_PROF, &got);
	dprintf(1, "prof: every %ld s, left between 590 and 600 s %d\n", (long)got.it_interval.tv_sec,
		in_range(&got, 590, 600));
	dprintf(1, "pid %d\n", (int)getpid());
	return 0;
}
