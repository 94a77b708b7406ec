// SPDX-License-Identifier: GPL-2.0-only
/*
 * kinet: TCP and UDP sockets across checkpoint/restart.
 *
 *   kinet MODE [PORT]
 *
 * Each MODE builds its sockets, prints "ready", waits for SIGUSR1 (sent to
 * the parent, which passes it on to its child), then checks what the
 * sockets hold and that they still work; it prints "ok ..." or "FAIL ..."
 * lines and exits with the number of failures.
 *
 *   listen       TCP listeners on 127.0.0.1 (SO_REUSEADDR, TCP_NODELAY) and
 *                [::1] (IPV6_V6ONLY), and a TCP socket bound but not
 *                listening: same ports after the restart, and they accept
 *                connections again (the bound one once it listens)
 *   established  two connections between a parent and its child: over
 *                127.0.0.1 with 256 KiB from the parent the child has not
 *                read (most of it still in the parent's send queue, the
 *                child's receive buffer being small) and 3000 bytes the
 *                other way, and over [::1] with a few bytes each way and
 *                keepalive options; the bytes arrive in order after the
 *                restart, the connections carry more, and close cleanly
 *   udp          UDP sockets on 127.0.0.1 and [::1] with datagrams queued
 *                from a bound, a connected and an unbound sender
 *                (IP_PKTINFO on): they come in order, each with its sender
 *                and destination; the connected one sends again
 *   outside      a TCP connection to 127.0.0.1:PORT (a peer outside the
 *                tree): it sends "ping-before\n" and has "pong-before\n"
 *                unread at the checkpoint; after the restart it reads what
 *                the peer sent meanwhile ("while-down\n"), sends
 *                "ping-after\n", reads "pong-after\n" and closes
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kcheck.h"

static pid_t child;
static int sync_fds[2];	/* the child says it is ready */

/* The parent's verdict includes its child's */
static int finish(void)
{
	int status;

	if (child > 0) {
		need(waitpid(child, &status, 0) == child);
		check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child's checks passed");
	}
	return failures;
}

static int port_of(int fd)
{
	struct sockaddr_in6 a;
	socklen_t len = sizeof(a);

	if (getsockname(fd, (struct sockaddr *)&a, &len))
		return -1;
	return ntohs(a.sin6_port);	/* sin_port is at the same offset */
}

static int peer_port_of(int fd)
{
	struct sockaddr_in6 a;
	socklen_t len = sizeof(a);

	if (getpeername(fd, (struct sockaddr *)&a, &len))
		return -1;
	return ntohs(a.sin6_port);
}

static int intopt(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, level, name, &v, &len))
		return -1;
	return v;
}

static void setint(int fd, int level, int name, int v)
{
	need(!setsockopt(fd, level, name, &v, sizeof(v)));
}

static socklen_t loopback(int family, int port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		a->sin6_port = htons(port);
		return sizeof(*a);
	}
	struct sockaddr_in *a = (struct sockaddr_in *)ss;

	a->sin_family = AF_INET;
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a->sin_port = htons(port);
	return sizeof(*a);
}

static int tcp_socket(int family)
{
	int fd = socket(family, SOCK_STREAM, 0);

	need(fd >= 0);
	return fd;
}

static void bind_loopback(int fd, int family, int port)
{
	struct sockaddr_storage ss;
	socklen_t len = loopback(family, port, &ss);

	need(!bind(fd, (struct sockaddr *)&ss, len));
}

static int connect_to(int family, int port)
{
	struct sockaddr_storage ss;
	socklen_t len = loopback(family, port, &ss);
	int fd = tcp_socket(family);

	need(!connect(fd, (struct sockaddr *)&ss, len));
	return fd;
}

/* Read exactly @len bytes (the peer may be slow to retransmit: no time limit) */
static int read_all(int fd, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, (char *)buf + done, len - done);

		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			return -1;
		}
		done += n;
	}
	return 0;
}

static int write_all(int fd, const void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write(fd, (const char *)buf + done, len - done);

		if (n <= 0)
			return -1;
		done += n;
	}
	return 0;
}

static unsigned char pattern(size_t i, unsigned int seed)
{
	return (unsigned char)(i * 131 + seed + i / 251);
}

static void fill(unsigned char *buf, size_t len, unsigned int seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = pattern(i, seed);
}

static int matches(const unsigned char *buf, size_t len, unsigned int seed)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i] != pattern(i, seed))
			return 0;
	return 1;
}

/* Wait until @fd has @len bytes to read */
static void wait_queued(int fd, int len)
{
	int n = 0;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		need(ioctl(fd, FIONREAD, &n) == 0);
		if (n >= len)
			return;
		need(poll(&p, 1, -1) >= 0);
		usleep(1000);
	}
}

/* A connection made to @l accepts, and carries a few bytes */
static int accepts(int l, int family)
{
	int c = connect_to(family, port_of(l)), a = accept(l, NULL, NULL);
	char buf[8] = "";
	int ok;

	ok = a >= 0 && write(c, "hello", 5) == 5 && read_all(a, buf, 5) == 0 &&
	     !memcmp(buf, "hello", 5);
	close(c);
	if (a >= 0)
		close(a);
	return ok;
}

/* ------------------------------------------------------------ listen */

static int mode_listen(void)
{
	int l4 = tcp_socket(AF_INET), l6 = tcp_socket(AF_INET6), b = tcp_socket(AF_INET);
	int p4, p6, pb;

	setint(l4, SOL_SOCKET, SO_REUSEADDR, 1);
	setint(l4, IPPROTO_TCP, TCP_NODELAY, 1);
	bind_loopback(l4, AF_INET, 0);
	need(!listen(l4, 7));
	setint(l6, IPPROTO_IPV6, IPV6_V6ONLY, 1);
	bind_loopback(l6, AF_INET6, 0);
	need(!listen(l6, 3));
	bind_loopback(b, AF_INET, 0);
	p4 = port_of(l4);
	p6 = port_of(l6);
	pb = port_of(b);

	child = -1;
	wait_restart(child, sync_fds);

	check(port_of(l4) == p4 && port_of(l6) == p6, "the listeners keep their ports");
	check(intopt(l4, SOL_SOCKET, SO_ACCEPTCONN) == 1 && intopt(l6, SOL_SOCKET, SO_ACCEPTCONN) == 1,
	      "they are listening");
	check(intopt(l4, SOL_SOCKET, SO_REUSEADDR) == 1 && intopt(l4, IPPROTO_TCP, TCP_NODELAY) == 1,
	      "SO_REUSEADDR and TCP_NODELAY are kept");
	check(intopt(l6, IPPROTO_IPV6, IPV6_V6ONLY) == 1, "IPV6_V6ONLY is kept");
	check(accepts(l4, AF_INET) && accepts(l4, AF_INET), "the IPv4 listener accepts again, twice");
	check(accepts(l6, AF_INET6), "the IPv6 listener accepts again");
	check(port_of(b) == pb && intopt(b, SOL_SOCKET, SO_ACCEPTCONN) == 0,
	      "the bound socket keeps its port and does not listen");
	check(!listen(b, 1) && accepts(b, AF_INET), "the bound socket listens and accepts");
	return finish();
}

/* ------------------------------------------------------- established */

#define BIG	(256 << 10)	/* parent to child over IPv4 */
#define BACK	3000		/* child to parent over IPv4 */

static int mode_established(void)
{
	static unsigned char buf[BIG];
	int l4 = tcp_socket(AF_INET), l6 = tcp_socket(AF_INET6), c4, c6, a4, a6;
	int flags;

	bind_loopback(l4, AF_INET, 0);
	need(!listen(l4, 2));
	bind_loopback(l6, AF_INET6, 0);
	need(!listen(l6, 2));
	need(!pipe(sync_fds));
	c4 = tcp_socket(AF_INET);
	setint(c4, SOL_SOCKET, SO_RCVBUF, 8192);
	{
		struct sockaddr_storage ss;
		socklen_t len = loopback(AF_INET, port_of(l4), &ss);

		need(!connect(c4, (struct sockaddr *)&ss, len));
	}
	c6 = connect_to(AF_INET6, port_of(l6));
	a4 = accept(l4, NULL, NULL);
	a6 = accept(l6, NULL, NULL);
	need(a4 >= 0 && a6 >= 0);
	close(l4);
	close(l6);

	child = fork();
	need(child >= 0);
	if (!child) {
		/* the connecting ends */
		close(a4);
		close(a6);
		fill(buf, BACK, 7);
		need(write_all(c4, buf, BACK) == 0);
		need(write_all(c6, "child-v6", 8) == 0);
		setint(c6, SOL_SOCKET, SO_KEEPALIVE, 1);
		setint(c6, IPPROTO_TCP, TCP_KEEPIDLE, 33);
		setint(c6, IPPROTO_TCP, TCP_NODELAY, 1);
		wait_queued(c6, 9);
		wait_restart(child, sync_fds);

		check(intopt(c6, SOL_SOCKET, SO_KEEPALIVE) == 1 &&
		      intopt(c6, IPPROTO_TCP, TCP_KEEPIDLE) == 33 &&
		      intopt(c6, IPPROTO_TCP, TCP_NODELAY) == 1,
		      "child: keepalive, TCP_KEEPIDLE and TCP_NODELAY are kept");
		memset(buf, 0, BIG);
		check(read_all(c4, buf, BIG) == 0 && matches(buf, BIG, 3),
		      "child: the 256 KiB queued to it arrive whole and in order");
		memset(buf, 0, 16);
		check(read_all(c6, buf, 9) == 0 && !memcmp(buf, "parent-v6", 9),
		      "child: the bytes queued on the IPv6 connection arrive");
		check(write_all(c4, "after", 5) == 0 && read_all(c4, buf, 5) == 0 &&
		      !memcmp(buf, "again", 5), "child: the IPv4 connection carries more both ways");
		check(write_all(c6, "six", 3) == 0 && read_all(c6, buf, 3) == 0 &&
		      !memcmp(buf, "xis", 3), "child: the IPv6 connection carries more both ways");
		close(c4);
		check(read(c6, buf, 1) == 0, "child: the parent's close arrives as end of file");
		close(c6);
		exit(failures);
	}
	close(c4);
	close(c6);
	/* queue it all: most stays in our send queue, the child's receive buffer being small */
	setint(a4, SOL_SOCKET, SO_SNDBUF, 2 * BIG);
	flags = fcntl(a4, F_GETFL);
	need(fcntl(a4, F_SETFL, flags | O_NONBLOCK) == 0);
	fill(buf, BIG, 3);
	need(write_all(a4, buf, BIG) == 0);
	need(fcntl(a4, F_SETFL, flags) == 0);
	need(write_all(a6, "parent-v6", 9) == 0);
	wait_queued(a4, BACK);
	wait_queued(a6, 8);
	wait_restart(child, sync_fds);

	memset(buf, 0, BACK);
	check(read_all(a4, buf, BACK) == 0 && matches(buf, BACK, 7),
	      "the 3000 bytes queued to the parent arrive in order");
	check(read_all(a6, buf, 8) == 0 && !memcmp(buf, "child-v6", 8),
	      "the bytes queued to the parent over IPv6 arrive");
	check(read_all(a4, buf, 5) == 0 && !memcmp(buf, "after", 5) && write_all(a4, "again", 5) == 0,
	      "the IPv4 connection carries more both ways");
	check(read_all(a6, buf, 3) == 0 && !memcmp(buf, "six", 3) && write_all(a6, "xis", 3) == 0,
	      "the IPv6 connection carries more both ways");
	check(read(a4, buf, 1) == 0, "the child's close arrives as end of file");
	close(a4);
	close(a6);
	return finish();
}

/* --------------------------------------------------------------- udp */

static int udp_socket(int family, int port)
{
	int fd = socket(family, SOCK_DGRAM, 0);

	need(fd >= 0);
	if (port >= 0)
		bind_loopback(fd, family, port);
	return fd;
}

static void send_to(int fd, int family, int port, const char *msg)
{
	struct sockaddr_storage ss;
	socklen_t len = loopback(family, port, &ss);

	need(sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&ss, len) == (ssize_t)strlen(msg));
}

/* The next datagram on @fd is @msg from port @from, sent to 127.0.0.1 (IP_PKTINFO) */
static int next_dgram(int fd, const char *msg, int from, int pktinfo)
{
	char buf[64] = "", cbuf[256];
	struct sockaddr_storage ss;
	struct iovec iov = { buf, sizeof(buf) - 1 };
	struct msghdr m = {
		.msg_name = &ss, .msg_namelen = sizeof(ss), .msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	ssize_t n = recvmsg(fd, &m, MSG_DONTWAIT);
	int port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), dst = !pktinfo;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;

			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			dst = pi.ipi_addr.s_addr == htonl(INADDR_LOOPBACK) && pi.ipi_ifindex > 0;
		}
	}
	if (n != (ssize_t)strlen(msg) || memcmp(buf, msg, n) || port != from || !dst) {
		printf("  got %zd \"%s\" from port %d (wanted \"%s\" from %d), destination %s\n",
		       n, buf, port, msg, from, dst ? "ok" : "missing");
		return 0;
	}
	return 1;
}

static int mode_udp(void)
{
	int r = udp_socket(AF_INET, 0), s1 = udp_socket(AF_INET, 0), s2 = udp_socket(AF_INET, 0);
	int s3 = udp_socket(AF_INET, -1), r6 = udp_socket(AF_INET6, 0), s6 = udp_socket(AF_INET6, 0);
	int rp, r6p, p1, p2, p3, p6;
	struct sockaddr_storage ss;
	socklen_t len;

	setint(r, IPPROTO_IP, IP_PKTINFO, 1);
	setint(r, SOL_SOCKET, SO_RCVBUF, 65536);
	rp = port_of(r);
	r6p = port_of(r6);
	len = loopback(AF_INET, rp, &ss);
	need(!connect(s2, (struct sockaddr *)&ss, len));
	send_to(s1, AF_INET, rp, "one");
	need(send(s2, "two", 3, 0) == 3);
	send_to(s3, AF_INET, rp, "three");
	send_to(s6, AF_INET6, r6p, "six");
	send_to(s6, AF_INET6, r6p, "seven");
	p1 = port_of(s1);
	p2 = port_of(s2);
	p3 = port_of(s3);
	p6 = port_of(s6);
	wait_queued(r, 3);
	wait_queued(r6, 3);

	child = -1;
	wait_restart(child, sync_fds);

	check(port_of(r) == rp && port_of(r6) == r6p && port_of(s1) == p1 && port_of(s3) == p3,
	      "the sockets keep their ports");
	check(peer_port_of(s2) == rp && port_of(s2) == p2, "the connected one stays connected");
	check(intopt(r, IPPROTO_IP, IP_PKTINFO) == 1, "IP_PKTINFO is kept");
	check(intopt(r, SOL_SOCKET, SO_RCVBUF) == 2 * 65536, "SO_RCVBUF is kept");
	check(next_dgram(r, "one", p1, 1), "the first datagram comes first, from the bound sender");
	check(next_dgram(r, "two", p2, 1), "then the connected sender's");
	check(next_dgram(r, "three", p3, 1), "then the autobound sender's");
	check(next_dgram(r6, "six", p6, 0) && next_dgram(r6, "seven", p6, 0),
	      "the IPv6 socket's two datagrams come in order");
	check(recv(r, (char[8]){ 0 }, 8, MSG_DONTWAIT) < 0 && errno == EAGAIN, "nothing more is queued");
	check(send(s2, "again", 5, 0) == 5 && next_dgram(r, "again", p2, 1),
	      "the connected sender sends again");
	send_to(s6, AF_INET6, r6p, "eight");
	wait_queued(r6, 5);
	check(next_dgram(r6, "eight", p6, 0), "the IPv6 socket receives again");
	return finish();
}

/* ----------------------------------------------------------- outside */

static int mode_outside(int port)
{
	int c = connect_to(AF_INET, port);
	char buf[64] = "";

	need(write_all(c, "ping-before\n", 12) == 0);
	wait_queued(c, 12);

	child = -1;
	wait_restart(child, sync_fds);

	check(read_all(c, buf, 23) == 0 && !memcmp(buf, "pong-before\nwhile-down\n", 23),
	      "what the peer sent before and during the checkpoint arrives in order");
	memset(buf, 0, sizeof(buf));
	check(write_all(c, "ping-after\n", 11) == 0 && read_all(c, buf, 11) == 0 &&
	      !memcmp(buf, "pong-after\n", 11), "the connection carries more both ways");
	close(c);
	return finish();
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2)
		return 100;
	if (!strcmp(argv[1], "listen"))
		return mode_listen();
	if (!strcmp(argv[1], "established"))
		return mode_established();
	if (!strcmp(argv[1], "udp"))
		return mode_udp();
	if (!strcmp(argv[1], "outside") && argc > 2)
		return mode_outside(atoi(argv[2]));
	return 100;
}
