// SPDX-License-Identifier: GPL-2.0-only
/*
 * unixempty: datagram and seqpacket socket pairs whose queues hold empty
 * messages among the others, some already peeked at: the one at the head
 * the way a reader asks for the size of the next message (MSG_PEEK |
 * MSG_TRUNC), one further on with SO_PEEK_OFF. A peek marks an empty
 * message, and a MSG_PEEK with SO_PEEK_OFF (how a dump walks a queue)
 * passes over a marked one. After the dump every message is read and
 * checked: its size, bytes and order.
 *
 *   each queue: ""*  "a"  ""*  ""  "bb"  ""        (* peeked at)
 *
 *   unixempty STEPS
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "selfcheck.h"

static const char *const queue[] = { "", "a", "", "", "bb", "" };
#define QUEUED (sizeof(queue) / sizeof(*queue))

static void fill(int fd)
{
	for (size_t i = 0; i < QUEUED; i++)
		if (send(fd, queue[i], strlen(queue[i]), 0) != (ssize_t)strlen(queue[i]))
			die("send");
}

/* The size of the next message, as a reader asks it: a peek (which marks an empty one). */
static ssize_t next_size(int fd)
{
	return recv(fd, NULL, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
}

/* A peek at byte offset `off` of the queue: past "a", it marks the first empty message there. */
static ssize_t peek_at(int fd, int off)
{
	char c;
	ssize_t n;

	if (setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off)) < 0)
		return -1;
	n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	off = -1;
	setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off));
	return n;
}

static void check_queue(const char *what, int fd)
{
	int ok = 1;
	char buf[16];

	for (size_t i = 0; i < QUEUED; i++) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

		ok &= n == (ssize_t)strlen(queue[i]) && !memcmp(buf, queue[i], n);
	}
	ok &= recv(fd, buf, sizeof(buf), MSG_DONTWAIT) < 0 && errno == EAGAIN;
	check(ok, "%s: all %zu messages, the empty ones among them, in order", what, QUEUED);
}

int main(int argc, char **argv)
{
	int d[2], q[2];
	long steps;

	close_range(3, ~0U, 0);
	if (argc != 2) {
		fprintf(stderr, "usage: unixempty STEPS\n");
		return 2;
	}
	steps = atol(argv[1]);
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, d) < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET, 0, q) < 0)
		die("socketpair");
	fill(d[1]);
	fill(q[1]);
	if (next_size(d[0]) != 0 || next_size(q[0]) != 0 || peek_at(d[0], 1) != 0 || peek_at(q[0], 1) != 0)
		die("peek");

	built_then_step(steps);

	check_queue("datagram pair", d[0]);
	check_queue("seqpacket pair", q[0]);
	printf("%s\npid %d\n", bad ? "FAILED" : "all good", (int)getpid());
	return bad != 0;
}
