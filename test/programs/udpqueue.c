// SPDX-License-Identifier: GPL-2.0-only
/*
 * udpqueue: UDP queues with empty datagrams among the others, some of them
 * peeked at before the dump. A peek marks an empty datagram, and a
 * MSG_PEEK with SO_PEEK_OFF passes over a marked one: a dump that only
 * peeked would not see them, a restore that marked them all would hide
 * the others. After the dump each queue is read three ways — one peek at
 * the socket's own peek offset, a pass of peeks from offset 0, then every
 * datagram for real — and checked: bytes, sender, order, which were seen.
 *
 *   server (127.0.0.1), from A and B:  "one"A  ""B*  ""A  "two"B  ""A*  ""B*  "three"A  ""B
 *   client connected to the server:    ""S*  "x"S  ""S
 *   ipv6 socket (::1), from U6:        ""U*  "six"U  ""U
 *
 * (* peeked at before the dump.) The server's own SO_PEEK_OFF is left at
 * 3, past "one", where a peek passes over ""B to ""A.
 *
 *   udpqueue STEPS
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "selfcheck.h"

struct dgram {
	const char *data;
	int from;	/* the sender's descriptor */
	int peeked;	/* peeked at before the dump */
};

static int udp(int family, const char *addr)
{
	struct sockaddr_storage ss = { .ss_family = family };
	struct sockaddr_in *a = (void *)&ss;
	struct sockaddr_in6 *a6 = (void *)&ss;
	int fd = socket(family, SOCK_DGRAM, 0);

	if (fd < 0)
		die("socket");
	if (family == AF_INET ? inet_pton(AF_INET, addr, &a->sin_addr) != 1 : inet_pton(AF_INET6, addr, &a6->sin6_addr) != 1)
		die("inet_pton");
	if (bind(fd, (void *)&ss, family == AF_INET ? sizeof(*a) : sizeof(*a6)) < 0)
		die("bind");
	return fd;
}

static socklen_t name_of(int fd, struct sockaddr_storage *ss)
{
	socklen_t len = sizeof(*ss);

	if (getsockname(fd, (void *)ss, &len) < 0)
		die("getsockname");
	return len;
}

static void send_to(int from, const char *data, int dst)
{
	struct sockaddr_storage ss;
	socklen_t len = name_of(dst, &ss);

	if (sendto(from, data, strlen(data), 0, (void *)&ss, len) != (ssize_t)strlen(data))
		die("sendto");
}

static int set_peek_off(int fd, int off)
{
	return setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off));
}

/* One recv: is it `d`, bytes and sender? */
static int got(int fd, int flags, const struct dgram *d)
{
	struct sockaddr_storage from, want;
	socklen_t len = sizeof(from), wlen = name_of(d->from, &want);
	char buf[64];
	ssize_t n = recvfrom(fd, buf, sizeof(buf), flags | MSG_DONTWAIT, (void *)&from, &len);

	return n == (ssize_t)strlen(d->data) && !memcmp(buf, d->data, n) && len == wlen && !memcmp(&from, &want, len);
}

/* Peek at the datagram at byte offset `off` of the queue (marking it, when empty). */
static void peek_at(int fd, int off)
{
	char c;

	if (set_peek_off(fd, off) < 0 || recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) < 0)
		die("peek");
}

static int nothing_more(int fd, int flags)
{
	char c;

	return recv(fd, &c, 1, flags | MSG_DONTWAIT) < 0 && errno == EAGAIN;
}

/*
 * A pass of peeks from offset 0 sees the datagrams not yet peeked at (and
 * any with bytes); then every datagram is read, in order.
 */
static void check_queue(const char *what, int fd, const struct dgram *q, int n)
{
	int seen = 1, all = 1;

	set_peek_off(fd, 0);
	for (int i = 0; i < n; i++)
		if (!q[i].peeked || q[i].data[0])
			seen &= got(fd, MSG_PEEK, &q[i]);
	seen &= nothing_more(fd, MSG_PEEK);
	check(seen, "%s: a pass of peeks sees the datagrams not peeked at before, in order", what);
	set_peek_off(fd, -1);
	for (int i = 0; i < n; i++)
		all &= got(fd, 0, &q[i]);
	all &= nothing_more(fd, 0);
	check(all, "%s: all %d datagrams, the empty ones among them, in order, each with its sender", what, n);
}

int main(int argc, char **argv)
{
	int S, A, B, C, S6, U6, off = -1;
	socklen_t len = sizeof(off);
	struct sockaddr_storage sa;
	long steps;

	close_range(3, ~0U, 0);
	if (argc != 2) {
		fprintf(stderr, "usage: udpqueue STEPS\n");
		return 2;
	}
	steps = atol(argv[1]);
	S = udp(AF_INET, "127.0.0.1");
	A = udp(AF_INET, "127.0.0.1");
	B = udp(AF_INET, "127.0.0.1");
	C = udp(AF_INET, "127.0.0.1");
	S6 = udp(AF_INET6, "::1");
	U6 = udp(AF_INET6, "::1");
	name_of(S, &sa);
	if (connect(C, (void *)&sa, sizeof(struct sockaddr_in)) < 0)
		die("connect");

	const struct dgram server[] = {
		{ "one", A, 0 }, { "", B, 1 }, { "", A, 0 }, { "two", B, 0 }, { "", A, 1 }, { "", B, 1 }, { "three", A, 0 }, { "", B, 0 },
	};
	const struct dgram client[] = { { "", S, 1 }, { "x", S, 0 }, { "", S, 0 } };
	const struct dgram six[] = { { "", U6, 1 }, { "six", U6, 0 }, { "", U6, 0 } };

	for (size_t i = 0; i < sizeof(server) / sizeof(*server); i++)
		send_to(server[i].from, server[i].data, S);
	for (size_t i = 0; i < sizeof(client) / sizeof(*client); i++)
		send_to(S, client[i].data, C);
	for (size_t i = 0; i < sizeof(six) / sizeof(*six); i++)
		send_to(U6, six[i].data, S6);
	/* A peek at an offset takes the first datagram there not yet peeked at. */
	peek_at(S, 3);
	peek_at(S, 6);
	peek_at(S, 6);
	set_peek_off(S, 3); /* past "one": the server's own offset from now on */
	peek_at(C, 0);
	set_peek_off(C, -1);
	peek_at(S6, 0);
	set_peek_off(S6, -1);

	built_then_step(steps);

	getsockopt(S, SOL_SOCKET, SO_PEEK_OFF, &off, &len);
	check(off == 3, "server: its SO_PEEK_OFF is still 3 (%d)", off);
	{
		/* At offset 3, past "one": "" B was peeked at, so the peek takes "" A (and marks it). */
		struct dgram q[sizeof(server) / sizeof(*server)];

		memcpy(q, server, sizeof(q));
		check(got(S, MSG_PEEK, &q[2]), "server: a peek at its own offset passes over the empty datagram it saw, to the next");
		q[2].peeked = 1;
		check_queue("server", S, q, sizeof(q) / sizeof(*q));
	}
	check_queue("client", C, client, sizeof(client) / sizeof(*client));
	check_queue("ipv6", S6, six, sizeof(six) / sizeof(*six));
	send_to(S, "still connected", C);
	{
		const struct dgram d = { "still connected", S, 0 };

		check(got(C, 0, &d), "client: still connected to the server, and takes from it");
	}
	printf("%s\npid %d\n", bad ? "FAILED" : "all good", (int)getpid());
	return bad != 0;
}
