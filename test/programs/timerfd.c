// SPDX-License-Identifier: GPL-2.0-only
/*
 * timerfd: a periodic timer read until it has ticked enough; a far-away
 * one-shot that must stay armed; a one-shot that expired unread; a fast
 * periodic timer never read until the end; a disarmed one.
 *
 *   timerfd TICKS
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static int arm(int fd, int flags, long value_ms, long interval_ms)
{
	struct itimerspec its = {
		.it_interval = { interval_ms / 1000, (interval_ms % 1000) * 1000000L },
		.it_value = { value_ms / 1000, (value_ms % 1000) * 1000000L },
	};

	return timerfd_settime(fd, flags, &its, NULL);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	int periodic, far, expired, fast, disarmed;
	uint64_t ticks, total = 0, milestone = 10, target;
	struct itimerspec its;
	struct timespec rt;
	double start, elapsed;

	close_range(3, ~0U, 0);
	if (argc != 2) {
		fprintf(stderr, "usage: timerfd TICKS\n");
		return 2;
	}
	target = strtoull(argv[1], NULL, 10);
	periodic = timerfd_create(CLOCK_MONOTONIC, 0);
	far = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK);
	expired = timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK);
	fast = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	disarmed = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	if (periodic < 0 || far < 0 || expired < 0 || fast < 0 || disarmed < 0)
		return 1;
	start = now();
	clock_gettime(CLOCK_REALTIME, &rt);
	rt.tv_sec += 1000;
	its = (struct itimerspec){ .it_value = rt };
	if (arm(periodic, 0, 50, 50) < 0 || timerfd_settime(far, TFD_TIMER_ABSTIME, &its, NULL) < 0 ||
	    arm(expired, 0, 10, 0) < 0 || arm(fast, 0, 20, 20) < 0)
		return 1;

	while (total < target) {
		if (read(periodic, &ticks, 8) != 8)
			return 1;
		total += ticks;
		if (total >= milestone) {
			dprintf(1, "periodic reached %llu ticks\n", (unsigned long long)milestone);
			milestone += 10;
		}
	}
	elapsed = now() - start;
	timerfd_gettime(periodic, &its);
	dprintf(1, "periodic done: at least %llu ticks, interval %ld.%09ld\n", (unsigned long long)target,
		(long)its.it_interval.tv_sec, its.it_interval.tv_nsec);
	timerfd_gettime(far, &its);
	dprintf(1, "far one-shot armed %d, within 1000 s %d, nonblocking %d\n", its.it_value.tv_sec || its.it_value.tv_nsec,
		its.it_value.tv_sec < 1000 && its.it_value.tv_sec > 900, (fcntl(far, F_GETFL) & O_NONBLOCK) != 0);
	if (read(expired, &ticks, 8) != 8)
		return 1;
	dprintf(1, "expired one-shot read %llu, then %s\n", (unsigned long long)ticks,
		read(expired, &ticks, 8) < 0 && errno == EAGAIN ? "EAGAIN" : "more");
	/* Its ticks cannot outrun the time that passed, and must cover the time the program ran. */
	ticks = 0;
	if (read(fast, &ticks, 8) != 8)
		return 1;
	dprintf(1, "unread periodic ticks consistent %d\n",
		ticks <= elapsed / 0.020 + 3 && ticks + 2 >= target * 50 / 20 - 2);
	timerfd_gettime(disarmed, &its);
	dprintf(1, "disarmed %d, read %s\n", !its.it_value.tv_sec && !its.it_value.tv_nsec,
		read(disarmed, &ticks, 8) < 0 && errno == EAGAIN ? "EAGAIN" : "ticks");
	dprintf(1, "pid %d\n", (int)getpid());
	return 0;
}
