// SPDX-License-Identifier: GPL-2.0-only
/*
 * tcpsk: TCP sockets held across a dump, checked after it. A listener on
 * 127.0.0.1 (SO_REUSEADDR) accepts a connection from a child process; the
 * two keep streaming to each other through the whole run, the child
 * faster than the parent reads, so both queues are full whenever the dump
 * comes, and every byte is checked to arrive once, in order. In this
 * process an IPv6 connection on ::1 holds unread bytes both ways, with
 * TCP_NODELAY, keepalive settings and buffer sizes; a connection is half
 * closed, one end having written and shut down writing (FIN_WAIT2), the
 * other (CLOSE_WAIT) with all of it still to read and bytes of its own in
 * flight; a socket is bound but not listening, another not bound at all.
 * At the end the queues are read and checked, the states, options and
 * addresses compared, and the listener takes one more connection.
 *
 *   tcpsk STEPS
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "selfcheck.h"

/* The byte at position i of every stream. */
static unsigned char pat(uint64_t i, unsigned seed)
{
	return (unsigned char)(i * 7 + (i >> 13) + seed);
}

struct stream {
	uint64_t sent, got;
	int broken;
};

/* Write up to n more bytes of the pattern; returns how many went. */
static size_t send_some(int fd, struct stream *s, size_t n, unsigned seed)
{
	unsigned char buf[16384];
	size_t done = 0;

	while (done < n) {
		size_t k = n - done < sizeof(buf) ? n - done : sizeof(buf);
		ssize_t w;

		for (size_t i = 0; i < k; i++)
			buf[i] = pat(s->sent + i, seed);
		w = send(fd, buf, k, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0 && errno == EAGAIN)
			break;
		if (w < 0)
			die("send");
		s->sent += w;
		done += w;
	}
	return done;
}

/* Read up to n bytes (all there is with n == 0), checking each; returns -1 at end of file. */
static ssize_t recv_some(int fd, struct stream *s, size_t n, unsigned seed, int wait)
{
	unsigned char buf[16384];
	size_t done = 0;

	while (!n || done < n) {
		size_t k = n && n - done < sizeof(buf) ? n - done : sizeof(buf);
		ssize_t r = recv(fd, buf, k, wait ? 0 : MSG_DONTWAIT);

		if (r < 0 && errno == EAGAIN)
			break;
		if (r < 0)
			die("recv");
		if (!r)
			return -1;
		for (ssize_t i = 0; i < r; i++)
			s->broken |= buf[i] != pat(s->got + i, seed);
		s->got += r;
		done += r;
	}
	return done;
}

static void pause_ms(int ms)
{
	poll(NULL, 0, ms);
}

static struct sockaddr_in v4(uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	return a;
}

static uint16_t port_of(int fd)
{
	struct sockaddr_in6 a;
	socklen_t len = sizeof(a);

	getsockname(fd, (void *)&a, &len);
	return ntohs(a.sin6_port);
}

static int tcp_state(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) ? -1 : ti.tcpi_state;
}

static int getint(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);

	getsockopt(fd, level, name, &v, &len);
	return v;
}

/* The child: streams to the parent fast, takes what the parent sends, then says it is done. */
static void child(uint16_t port, long steps)
{
	struct sockaddr_in a = v4(port);
	struct stream out = { 0 }, in = { 0 };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || connect(fd, (void *)&a, sizeof(a)) < 0)
		die("child connect");
	for (long i = 0; i < steps; i++) {
		send_some(fd, &out, 65536, 1);
		recv_some(fd, &in, 0, 2, 0);
		pause_ms(10);
	}
	shutdown(fd, SHUT_WR);
	while (recv_some(fd, &in, 0, 2, 1) >= 0)
		;
	exit(in.broken || in.got < 1000 ? 1 : 0);
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = v4(0);
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct stream from_child = { 0 }, to_child = { 0 }, c6out = { 0 }, a6out = { 0 }, c6in = { 0 }, a6in = { 0 };
	struct stream haout = { 0 }, hcout = { 0 }, hain = { 0 }, hcin = { 0 };
	int L, L6, conn, c6, x6, hc, ha, bound, unbound, one = 1, status;
	uint16_t lport, bport;
	socklen_t len;
	long steps;
	pid_t kid;

	close_range(3, ~0U, 0);
	if (argc != 2) {
		fprintf(stderr, "usage: tcpsk STEPS\n");
		return 2;
	}
	steps = atol(argv[1]);

	L = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(L, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(L, (void *)&a, sizeof(a)) < 0 || listen(L, 5) < 0)
		die("listen");
	lport = port_of(L);
	kid = fork();
	if (!kid)
		child(lport, steps);
	conn = accept(L, NULL, NULL);
	if (conn < 0)
		die("accept");

	L6 = socket(AF_INET6, SOCK_STREAM, 0);
	setsockopt(L6, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(L6, (void *)&a6, sizeof(a6)) < 0 || listen(L6, 3) < 0)
		die("listen6");
	a6.sin6_port = htons(port_of(L6));
	c6 = socket(AF_INET6, SOCK_STREAM, 0);
	if (connect(c6, (void *)&a6, sizeof(a6)) < 0)
		die("connect6");
	x6 = accept(L6, NULL, NULL);
	setsockopt(c6, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(c6, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(c6, IPPROTO_TCP, TCP_KEEPIDLE, &(int){ 77 }, sizeof(int));
	setsockopt(c6, IPPROTO_TCP, TCP_KEEPINTVL, &(int){ 11 }, sizeof(int));
	setsockopt(c6, IPPROTO_TCP, TCP_KEEPCNT, &(int){ 4 }, sizeof(int));
	setsockopt(x6, SOL_SOCKET, SO_RCVBUF, &(int){ 100000 }, sizeof(int));
	setsockopt(x6, SOL_SOCKET, SO_SNDBUF, &(int){ 50000 }, sizeof(int));
	/* Unread both ways: x6's receive queue fills, the rest waits in c6's send queue. */
	while (send_some(c6, &c6out, 65536, 3))
		;
	send_some(x6, &a6out, 5000, 4);

	hc = socket(AF_INET, SOCK_STREAM, 0);
	a = v4(lport);
	if (connect(hc, (void *)&a, sizeof(a)) < 0 || (ha = accept(L, NULL, NULL)) < 0)
		die("half-closed connection");
	send_some(ha, &haout, 3000, 5);
	shutdown(ha, SHUT_WR);
	send_some(hc, &hcout, 2000, 6);
	for (int i = 0; i < 100 && (tcp_state(ha) != TCP_FIN_WAIT2 || tcp_state(hc) != TCP_CLOSE_WAIT); i++)
		pause_ms(5);

	bound = socket(AF_INET, SOCK_STREAM, 0);
	a = v4(0);
	if (bind(bound, (void *)&a, sizeof(a)) < 0)
		die("bind");
	bport = port_of(bound);
	unbound = socket(AF_INET6, SOCK_STREAM, 0);

	printf("built\n");
	fflush(stdout);
	for (long i = 0; i < steps; i++) {
		recv_some(conn, &from_child, 16384, 1, 0);
		send_some(conn, &to_child, 8192, 2);
		pause_ms(10);
		if (i % 10 == 0) {
			printf("step %ld\n", i);
			fflush(stdout);
		}
	}
	shutdown(conn, SHUT_WR);
	while (recv_some(conn, &from_child, 0, 1, 1) >= 0)
		;
	check(!from_child.broken && from_child.got > 65536, "stream from the child: every byte once, in order, to its end");
	if (waitpid(kid, &status, 0) != kid || !WIFEXITED(status) || WEXITSTATUS(status))
		check(0, "stream to the child (child status %d)", status);
	else
		check(1, "stream to the child: every byte once, in order, to its end");

	shutdown(c6, SHUT_WR);
	shutdown(x6, SHUT_WR);
	while (recv_some(x6, &c6in, 0, 3, 1) >= 0)
		;
	while (recv_some(c6, &a6in, 0, 4, 1) >= 0)
		;
	check(!c6in.broken && c6in.got == c6out.sent && !a6in.broken && a6in.got == a6out.sent && a6in.got == 5000,
	      "ipv6 connection: its queued bytes both ways");
	check(getint(c6, IPPROTO_TCP, TCP_NODELAY) == 1 && getint(c6, SOL_SOCKET, SO_KEEPALIVE) == 1 &&
		      getint(c6, IPPROTO_TCP, TCP_KEEPIDLE) == 77 && getint(c6, IPPROTO_TCP, TCP_KEEPINTVL) == 11 &&
		      getint(c6, IPPROTO_TCP, TCP_KEEPCNT) == 4,
	      "options: TCP_NODELAY, SO_KEEPALIVE, TCP_KEEPIDLE/INTVL/CNT");
	check(getint(x6, SOL_SOCKET, SO_RCVBUF) == 200000 && getint(x6, SOL_SOCKET, SO_SNDBUF) == 100000, "options: SO_RCVBUF, SO_SNDBUF (%d %d)",
	      getint(x6, SOL_SOCKET, SO_RCVBUF), getint(x6, SOL_SOCKET, SO_SNDBUF));
	check(getint(L, SOL_SOCKET, SO_REUSEADDR) == 1 && getint(L6, IPPROTO_IPV6, IPV6_V6ONLY) == 1 && port_of(L) == lport,
	      "listeners: same ports, SO_REUSEADDR, IPV6_V6ONLY");
	check(tcp_state(ha) == TCP_FIN_WAIT2 && tcp_state(hc) == TCP_CLOSE_WAIT, "half-closed: one end in FIN_WAIT2, the other in CLOSE_WAIT");
	while (recv_some(hc, &hcin, 0, 5, 1) >= 0)
		;
	recv_some(ha, &hain, 2000, 6, 1);
	check(!hcin.broken && hcin.got == 3000 && !hain.broken && hain.got == 2000, "half-closed: the bytes before the end of file, and those the other way");
	{
		char buf[8];

		shutdown(hc, SHUT_WR);
		check(read(ha, buf, sizeof(buf)) == 0 && tcp_state(ha) != TCP_FIN_WAIT2, "half-closed: the other end closes too");
	}
	check(port_of(bound) == bport && port_of(unbound) == 0 && getint(bound, SOL_SOCKET, SO_ACCEPTCONN) == 0,
	      "a socket bound but not listening, one not bound");
	{
		int c = socket(AF_INET, SOCK_STREAM, 0), s;
		char buf[8];

		a = v4(lport);
		if (connect(c, (void *)&a, sizeof(a)) < 0)
			die("connect again");
		s = accept(L, NULL, NULL);
		check(s >= 0 && write(c, "again", 5) == 5 && read(s, buf, sizeof(buf)) == 5 && !memcmp(buf, "again", 5),
		      "the listener takes a new connection");
		len = sizeof(a6);
		a6.sin6_port = 0;
		getsockname(x6, (void *)&a6, &len);
	}
	printf("%s\npid %d\n", bad ? "FAILED" : "all good", (int)getpid());
	return bad != 0;
}
