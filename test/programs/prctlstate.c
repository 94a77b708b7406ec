// SPDX-License-Identifier: GPL-2.0-only
/*
 * prctlstate: a task with prctl state of its own — a timer slack, the
 * child-subreaper flag, not dumpable, a parent-death signal and a
 * personality — checking all of it at every step; the end says what it
 * had and ends with its pid.
 *
 *   prctlstate STEPS
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#define SLACK 123456

static int state_ok(void)
{
	int subreaper = 0, pdeath = 0;

	prctl(PR_GET_CHILD_SUBREAPER, &subreaper);
	prctl(PR_GET_PDEATHSIG, &pdeath);
	return prctl(PR_GET_TIMERSLACK) == SLACK && subreaper == 1 && prctl(PR_GET_DUMPABLE) == 0 &&
	       pdeath == SIGURG && personality(0xffffffff) == ADDR_NO_RANDOMIZE;
}

int main(int argc, char **argv)
{
	long steps = argc > 1 ? atol(argv[1]) : 100, step, bad = 0;

	if (prctl(PR_SET_TIMERSLACK, SLACK) || prctl(PR_SET_CHILD_SUBREAPER, 1) ||
	    prctl(PR_SET_DUMPABLE, 0) || prctl(PR_SET_PDEATHSIG, SIGURG) ||
	    personality(ADDR_NO_RANDOMIZE) < 0) {
		perror("prctl");
		return 1;
	}
	for (step = 0; step < steps; step++) {
		struct timespec ts = { 0, 20 * 1000000L };

		bad += !state_ok();
		if (step % 10 == 0)
			dprintf(1, "step %ld\n", step);
		nanosleep(&ts, NULL);
	}
	dprintf(1, "timer slack %ld, subreaper, not dumpable, pdeathsig SIGURG, ADDR_NO_RANDOMIZE: %ld bad checks\n",
		(long)prctl(PR_GET_TIMERSLACK), bad);
	dprintf(1, "pid %d\n", (int)getpid());
	return 0;
}
