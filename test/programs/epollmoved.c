// SPDX-License-Identifier: GPL-2.0-only
/*
 * epollmoved: epoll watches whose descriptor numbers no longer hold the
 * watched file. An epoll watch is on an open file and keyed by the number
 * it was added with; the numbers here were since moved, closed or reused.
 *
 *   epollmoved STEPS
 *
 * Watches: a pipe's read end added as fd 10, then moved to fd 20 (dup2,
 * close) and fd 10 reused by /dev/null; an edge-triggered eventfd added as
 * fd 11, then moved to 21 and fd 11 left closed; an EPOLLEXCLUSIVE
 * eventfd; a second pipe read end added as fd 12 and moved, and then
 * another eventfd added as fd 12 too (two watches with one number); a
 * second epoll watching the first. Every 20 ms it makes some of them
 * ready, prints what epoll_wait reports on both epolls, what
 * EPOLL_CTL_MOD says for the old and the new numbers, and the watch list
 * of its fdinfo (numbers, events, data); then its pid.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

static int ep, ep2;

static void add(int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };

	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
		perror("epoll_ctl");
		exit(1);
	}
}

static void move(int from, int to)
{
	if (dup2(from, to) != to || close(from)) {
		perror("move");
		exit(1);
	}
}

static const char *mod(int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0 };

	return epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) == 0 ? "ok" : strerrorname_np(errno);
}

static int by_text(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* The watch lines of our fdinfo without inode numbers, sorted (fdinfo's order is the kernel's). */
static void watches(char *out, size_t n)
{
	char path[64], line[256], list[16][64];
	int count = 0, i;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", ep);
	f = fopen(path, "r");
	while (f && count < 16 && fgets(line, sizeof(line), f)) {
		int tfd;
		unsigned int events;
		unsigned long long data;

		if (sscanf(line, "tfd: %d events: %x data: %llx", &tfd, &events, &data) == 3)
			snprintf(list[count++], sizeof(list[0]), " [%d %x %llx]", tfd, events, data);
	}
	if (f)
		fclose(f);
	qsort(list, count, sizeof(list[0]), by_text);
	out[0] = 0;
	for (i = 0; i < count; i++)
		strncat(out, list[i], n - strlen(out) - 1);
}

int main(int argc, char **argv)
{
	int p[2], q[2], x, y, step, steps;
	uint64_t one = 1;
	char list[1024];

	close_range(3, ~0U, 0);
	if (argc != 2) {
		fprintf(stderr, "usage: epollmoved STEPS\n");
		return 2;
	}
	steps = atoi(argv[1]);
	ep = epoll_create1(0);
	ep2 = epoll_create1(0);
	if (pipe(p) || pipe(q) || ep < 0 || ep2 < 0)
		return perror("setup"), 1;
	move(p[0], 10);
	add(10, EPOLLIN, 0x1);
	move(10, 20);
	move(open("/dev/null", O_RDONLY), 10);
	move(eventfd(0, EFD_NONBLOCK), 11);
	add(11, EPOLLIN | EPOLLET, 0x2);
	move(11, 21);
	x = eventfd(1, EFD_NONBLOCK);
	add(x, EPOLLIN | EPOLLEXCLUSIVE, 0x4);
	move(q[0], 12);
	add(12, EPOLLIN | EPOLLRDHUP, 0x8);
	move(12, 22);
	move(eventfd(0, EFD_NONBLOCK), 12);
	add(12, EPOLLIN | EPOLLONESHOT, 0x10);
	{
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0x100 };

		if (epoll_ctl(ep2, EPOLL_CTL_ADD, ep, &ev) < 0)
			return perror("nested"), 1;
	}
	y = 12;

	for (step = 0; step < steps; step++) {
		struct epoll_event evs[8];
		uint64_t seen = 0, seen2 = 0, v;
		int n, i;
		char c;

		if (step % 3 == 0 && write(p[1], "x", 1) != 1)
			return 1;
		if (step % 4 == 0 && write(21, &one, 8) != 8)
			return 1;
		if (step % 5 == 0 && write(q[1], "y", 1) != 1)
			return 1;
		if (step == steps / 2 && write(y, &one, 8) != 8)
			return 1;
		n = epoll_wait(ep2, evs, 8, 0);
		for (i = 0; i < n; i++)
			seen2 |= evs[i].data.u64;
		n = epoll_wait(ep, evs, 8, 0);
		for (i = 0; i < n; i++)
			seen |= evs[i].data.u64;
		if (step % 3 == 2 && read(20, &c, 1) != 1)
			return 1;
		if (step % 5 == 4 && read(22, &c, 1) != 1)
			return 1;
		/* Drained at once: an edge reported before a dump is not pending at it (restore would report it anew). */
		if (step % 4 == 0 && read(21, &v, 8) != 8)
			return 1;
		watches(list, sizeof(list));
		printf("step %d: ready %llx nested %llx | MOD 10 %s, 20 %s, 11 %s, 21 %s |%s\n", step, (unsigned long long)seen,
		       (unsigned long long)seen2, mod(10), mod(20), mod(11), mod(21), list);
		fflush(stdout);
		usleep(20000);
	}
	printf("pid %d\n", getpid());
	return 0;
}
