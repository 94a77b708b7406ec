// SPDX-License-Identifier: GPL-2.0-only
/*
 * udpsk: UDP sockets held across a dump, checked after it. A server on
 * 127.0.0.1 has datagrams queued from a client connected to it and from
 * an unconnected sender, one of them empty; the client has one from the
 * server; an IPv6 socket on ::1 has two; a dual-stack socket on [::] has
 * one that came over IPv4; the server has SO_RCVBUF, SO_BROADCAST and
 * IP_TOS set. At the end every datagram is read and checked — its bytes,
 * its order, its sender — and the client is still connected.
 *
 *   udpsk STEPS
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "selfcheck.h"

static int udp(int family, const char *addr, int v6only)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6 };
	int fd = socket(family, SOCK_DGRAM, 0);

	if (fd < 0)
		die("socket");
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
	if (!addr)
		return fd;
	if (family == AF_INET ? inet_pton(AF_INET, addr, &a.sin_addr) != 1 || bind(fd, (void *)&a, sizeof(a)) < 0
			      : inet_pton(AF_INET6, addr, &a6.sin6_addr) != 1 || bind(fd, (void *)&a6, sizeof(a6)) < 0)
		die("bind");
	return fd;
}

static socklen_t name_of(int fd, struct sockaddr_storage *ss)
{
	socklen_t len = sizeof(*ss);

	getsockname(fd, (void *)ss, &len);
	return len;
}

/* Whether two socket addresses are the same port, and the same address (v4-mapped or not). */
static int same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	const struct sockaddr_in *a4 = (void *)a, *b4 = (void *)b;
	const struct sockaddr_in6 *a6 = (void *)a, *b6 = (void *)b;

	if (a->ss_family == AF_INET && b->ss_family == AF_INET)
		return a4->sin_port == b4->sin_port && a4->sin_addr.s_addr == b4->sin_addr.s_addr;
	if (a->ss_family == AF_INET6 && b->ss_family == AF_INET6)
		return a6->sin6_port == b6->sin6_port && !memcmp(&a6->sin6_addr, &b6->sin6_addr, 16);
	if (a->ss_family == AF_INET6)
		return same(b, a);
	return a4->sin_port == b6->sin6_port && IN6_IS_ADDR_V4MAPPED(&b6->sin6_addr) && !memcmp(&b6->sin6_addr.s6_addr[12], &a4->sin_addr, 4);
}

/* The next datagram: `want` bytes from `from`? */
static int next_is(int fd, const char *want, size_t n, const struct sockaddr_storage *from)
{
	struct sockaddr_storage got;
	socklen_t len = sizeof(got);
	char buf[256];
	ssize_t r = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, (void *)&got, &len);

	return r == (ssize_t)n && !memcmp(buf, want, n) && (!from || same(&got, from));
}

static void to(int fd, const char *data, size_t n, int dst)
{
	struct sockaddr_storage ss;
	socklen_t len = name_of(dst, &ss);

	if (sendto(fd, data, n, 0, (void *)&ss, len) != (ssize_t)n)
		die("sendto");
}

static int getint(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);

	getsockopt(fd, level, name, &v, &len);
	return v;
}

int main(int argc, char **argv)
{
	struct sockaddr_storage sa, ca, ua, u6a;
	int S, C, U, S6, U6, D6, one = 1;
	long steps;

	close_range(3, ~0U, 0);
	if (argc != 2) {
		fprintf(stderr, "usage: udpsk STEPS\n");
		return 2;
	}
	steps = atol(argv[1]);
	S = udp(AF_INET, "127.0.0.1", 0);
	setsockopt(S, SOL_SOCKET, SO_RCVBUF, &(int){ 90000 }, sizeof(int));
	setsockopt(S, SOL_SOCKET, SO_BROADCAST, &one, sizeof(one));
	setsockopt(S, IPPROTO_IP, IP_TOS, &(int){ 0x10 }, sizeof(int));
	C = udp(AF_INET, NULL, 0);
	name_of(S, &sa);
	if (connect(C, (void *)&sa, sizeof(struct sockaddr_in)) < 0)
		die("connect");
	U = udp(AF_INET, "127.0.0.1", 0);
	S6 = udp(AF_INET6, "::1", 1);
	U6 = udp(AF_INET6, "::1", 1);
	D6 = udp(AF_INET6, "::", 0);

	if (write(C, "from the client", 15) != 15)
		die("write");
	to(U, "from elsewhere", 14, S);
	if (write(C, "", 0) != 0)
		die("write empty");
	to(U, "again", 5, S);
	to(S, "to the client", 13, C);
	to(U6, "six", 3, S6);
	to(U6, "six again", 9, S6);
	{
		struct sockaddr_storage d;
		struct sockaddr_in v4 = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

		name_of(D6, &d);
		v4.sin_port = ((struct sockaddr_in6 *)&d)->sin6_port;
		if (sendto(U, "over ipv4", 9, 0, (void *)&v4, sizeof(v4)) != 9)
			die("sendto dual-stack");
	}
	name_of(C, &ca);
	name_of(U, &ua);
	name_of(U6, &u6a);

	built_then_step(steps);

	check(next_is(S, "from the client", 15, &ca) && next_is(S, "from elsewhere", 14, &ua) && next_is(S, "", 0, &ca) &&
		      next_is(S, "again", 5, &ua) && recv(S, &one, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN,
	      "server: four datagrams, one empty, in order, each with its sender");
	check(next_is(C, "to the client", 13, &sa), "client: the datagram from the server");
	check(write(C, "still connected", 15) == 15 && next_is(S, "still connected", 15, &ca), "client: still connected to the server");
	check(next_is(S6, "six", 3, &u6a) && next_is(S6, "six again", 9, &u6a), "ipv6: two datagrams with their sender");
	check(next_is(D6, "over ipv4", 9, &ua), "dual-stack socket: a datagram that came over IPv4");
	check(getint(S, SOL_SOCKET, SO_RCVBUF) == 180000 && getint(S, SOL_SOCKET, SO_BROADCAST) == 1 && getint(S, IPPROTO_IP, IP_TOS) == 0x10 &&
		      getint(S6, IPPROTO_IPV6, IPV6_V6ONLY) == 1 && getint(D6, IPPROTO_IPV6, IPV6_V6ONLY) == 0,
	      "options: SO_RCVBUF, SO_BROADCAST, IP_TOS, IPV6_V6ONLY");
	{
		struct sockaddr_storage now;

		name_of(S, &now);
		check(same(&now, &sa), "server: the same address and port");
	}
	printf("%s\npid %d\n", bad ? "FAILED" : "all good", (int)getpid());
	return bad != 0;
}
