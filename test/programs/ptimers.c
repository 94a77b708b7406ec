// SPDX-License-Identifier: GPL-2.0-only
/*
 * ptimers: POSIX timers keep their ids, clocks, notification and time.
 *
 *   ptimers FIRES
 *
 * Timer 0 (CLOCK_MONOTONIC) signals SIGRTMIN+1 with a value every 50 ms
 * and is counted until FIRES; timer 1 is deleted, leaving a gap; timer 2
 * (CLOCK_BOOTTIME, no notification) is armed 1000 s away with a 500 s
 * interval and must stay so.  Prints milestones, the timers' state, then
 * its pid.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t fires, bad_value;

static void on_timer(int signo, siginfo_t *si, void *uc)
{
	(void)signo;
	(void)uc;
	if (si->si_code != SI_TIMER || si->si_value.sival_ptr != (void *)0xfeed)
		bad_value = 1;
	fires++;
}

int main(int argc, char **argv)
{
	struct sigevent ev0 = { .sigev_notify = SIGEV_SIGNAL, .sigev_value.sival_ptr = (void *)0xfeed };
	struct sigevent none = { .sigev_notify = SIGEV_NONE };
	struct itimerspec every50ms = { { 0, 50000000 }, { 0, 50000000 } };
	struct itimerspec far = { { 500, 0 }, { 1000, 0 } }, got;
	struct sigaction sa = { .sa_sigaction = on_timer, .sa_flags = SA_SIGINFO | SA_RESTART };
	timer_t t0, t1, t2;
	int target, milestone = 10;
	sigset_t none_blocked;

	close_range(3, ~0U, 0);
	if (argc != 2) {
		fprintf(stderr, "usage: ptimers FIRES\n");
		return 2;
	}
	target = atoi(argv[1]);
	ev0.sigev_signo = SIGRTMIN + 1;
	sigaction(SIGRTMIN + 1, &sa, NULL);
	if (timer_create(CLOCK_MONOTONIC, &ev0, &t0) || timer_create(CLOCK_REALTIME, &none, &t1) ||
	    timer_delete(t1) || timer_create(CLOCK_BOOTTIME, &none, &t2) ||
	    timer_settime(t2, 0, &far, NULL) || timer_settime(t0, 0, &every50ms, NULL))
		return perror("timers"), 1;
	sigemptyset(&none_blocked);
	while (fires < target) {
		sigsuspend(&none_blocked);
		if (fires >= milestone) {
			printf("fires reached %d\n", milestone);
			fflush(stdout);
			milestone += 10;
		}
	}
	timer_gettime(t2, &got);
	printf("ids %ld %ld, value ok %d, far timer: every %lds, %s\n", (long)(intptr_t)t0, (long)(intptr_t)t2, !bad_value,
	       (long)got.it_interval.tv_sec,
	       got.it_value.tv_sec > 0 && got.it_value.tv_sec <= 1000 ? "armed, at most 1000 s left" : "WRONG");
	printf("pid %d\n", getpid());
	return 0;
}
