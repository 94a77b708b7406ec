// SPDX-License-Identifier: GPL-2.0-only
/*
 * epoll: an epoll instance at a lower descriptor than what it watches — a
 * pipe (level-triggered, both ends), an eventfd (edge-triggered) — and a
 * second one whose one-shot watch has fired and stays disabled until
 * re-armed.
 *
 *   epoll STEPS
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

static int add(int ep, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };

	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

/* The data of every ready watch, as one number per watch, summed in a stable order. */
static void report(const char *what, int ep, long step)
{
	struct epoll_event evs[8];
	uint64_t seen = 0;
	int n, i;

	n = epoll_wait(ep, evs, 8, 0);
	for (i = 0; i < n; i++)
		seen |= evs[i].data.u64;
	dprintf(1, "step %ld %s: %d ready, data %llx\n", step, what, n, (unsigned long long)seen);
}

int main(int argc, char **argv)
{
	int ep, ep2, p[2], efd, efd2;
	long steps, step;
	uint64_t v = 1;
	char c;

	close_range(3, ~0U, 0);
	if (argc != 2) {
		fprintf(stderr, "usage: epoll STEPS\n");
		return 2;
	}
	steps = atol(argv[1]);
	ep = epoll_create1(0);
	ep2 = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0 || ep2 < 0 || pipe(p) < 0 || (efd = eventfd(0, EFD_NONBLOCK)) < 0 || (efd2 = eventfd(0, 0)) < 0)
		return 1;
	if (add(ep, p[0], EPOLLIN, 0x100) < 0 || add(ep, p[1], EPOLLOUT, 0x20) < 0 ||
	    add(ep, efd, EPOLLIN | EPOLLET, 0x3) < 0 || add(ep2, efd2, EPOLLIN | EPOLLONESHOT, 0x4000) < 0)
		return 1;
	if (write(efd2, &v, 8) != 8)
		return 1;
	report("one-shot", ep2, -1);

	for (step = 0; step < steps; step++) {
		struct timespec ts = { 0, 20 * 1000000L };

		if (step % 7 == 0 && write(p[1], "x", 1) != 1)	/* the pipe stays readable a while */
			return 1;
		if (step % 7 == 3 && read(p[0], &c, 1) != 1)
			return 1;
		if (step % 5 == 0 && write(efd, &v, 8) != 8)	/* a new edge */
			return 1;
		report("main", ep, step);
		if (step % 5 == 0 && read(efd, &v, 8) != 8)
			return 1;
		v = 1;
		if (step % 10 == 0)
			report("one-shot", ep2, step);
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	{
		struct epoll_event ev = { .events = EPOLLIN | EPOLLONESHOT, .data.u64 = 0x5000 };

		if (epoll_ctl(ep2, EPOLL_CTL_MOD, efd2, &ev) < 0)
			return 1;
		report("re-armed one-shot", ep2, step);
	}
	dprintf(1, "pid %d\n", (int)getpid());
	return 0;
}
