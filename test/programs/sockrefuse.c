// SPDX-License-Identifier: GPL-2.0-only
/*
 * sockrefuse: holds at fd 3 a socket the user backend does not save — a
 * unix stream socket connected to a listener outside the tree, a netlink,
 * packet or raw socket, a TCP listener with a connection it has not
 * accepted, a UDP socket with a corked datagram half written, one with
 * an error pending (the ICMP port unreachable of what it sent), one
 * connected with a datagram from another still queued — and goes on
 * computing; at the end it says what the UDP socket still holds.
 *
 *   sockrefuse connect|netlink|packet|raw|backlog|udpcork|udperror|udpforeign PATH STEPS
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* The socket for MODE at the lowest free descriptor, or -1. */
static int open_socket(const char *mode, const char *path)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(in);
	int fd, one = 1;

	if (!strcmp(mode, "netlink"))
		return socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
	if (!strcmp(mode, "packet"))
		return socket(AF_PACKET, SOCK_DGRAM, htons(0x0800));
	if (!strcmp(mode, "raw"))
		return socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
	if (!strcmp(mode, "backlog")) {
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (bind(fd, (void *)&in, sizeof(in)) < 0 || listen(fd, 1) < 0 || getsockname(fd, (void *)&in, &len) < 0 ||
		    connect(socket(AF_INET, SOCK_STREAM, 0), (void *)&in, sizeof(in)) < 0)
			return -1;
		return fd;
	}
	if (!strcmp(mode, "udpcork")) {
		fd = socket(AF_INET, SOCK_DGRAM, 0);
		setsockopt(fd, IPPROTO_UDP, UDP_CORK, &one, sizeof(one));
		return connect(fd, (void *)&in, sizeof(in)) < 0 || send(fd, "half", 4, 0) != 4 ? -1 : fd;
	}
	if (!strcmp(mode, "udperror")) {
		/* A port nobody has: bound, named, closed again. */
		int gone = socket(AF_INET, SOCK_DGRAM, 0);
		struct pollfd p = { .events = POLLERR };

		if (bind(gone, (void *)&in, sizeof(in)) < 0 || getsockname(gone, (void *)&in, &len) < 0)
			return -1;
		close(gone);
		fd = socket(AF_INET, SOCK_DGRAM, 0);
		if (connect(fd, (void *)&in, sizeof(in)) < 0 || send(fd, "x", 1, 0) != 1)
			return -1;
		p.fd = fd;
		return poll(&p, 1, 5000) == 1 ? fd : -1;
	}
	if (!strcmp(mode, "udpforeign")) {
		struct sockaddr_in at = in;
		int other, peer;

		fd = socket(AF_INET, SOCK_DGRAM, 0);
		other = socket(AF_INET, SOCK_DGRAM, 0);
		peer = socket(AF_INET, SOCK_DGRAM, 0);
		if (bind(fd, (void *)&at, sizeof(at)) < 0 || getsockname(fd, (void *)&at, &len) < 0 ||
		    sendto(other, "early", 5, 0, (void *)&at, sizeof(at)) != 5 || bind(peer, (void *)&in, sizeof(in)) < 0 ||
		    getsockname(peer, (void *)&in, &len) < 0 || connect(fd, (void *)&in, sizeof(in)) < 0)
			return -1;
		return fd;
	}
	strncpy(un.sun_path, path, sizeof(un.sun_path) - 1);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	return fd < 0 || connect(fd, (void *)&un, sizeof(un)) < 0 ? -1 : fd;
}

int main(int argc, char **argv)
{
	uint64_t h = 1;
	long steps, step;

	close_range(3, ~0U, 0);
	if (argc != 4) {
		fprintf(stderr, "usage: sockrefuse connect|netlink|packet|raw|backlog|udpcork|udperror|udpforeign PATH STEPS\n");
		return 2;
	}
	steps = atol(argv[3]);
	if (open_socket(argv[1], argv[2]) != 3)
		return 1;

	for (step = 0; step < steps; step++) {
		struct timespec ts = { 0, 10 * 1000000L };

		h = h * 6364136223846793005ULL + (uint64_t)step;
		if (step % 10 == 0)
			dprintf(1, "step %ld h %016llx\n", step, (unsigned long long)h);
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	if (!strncmp(argv[1], "udp", 3)) {
		char buf[16];
		ssize_t n = recv(3, buf, sizeof(buf), MSG_DONTWAIT);

		dprintf(1, "udp socket: %s %.*s\n", n < 0 ? strerror(errno) : "queued", (int)(n < 0 ? 0 : n), buf);
	}
	dprintf(1, "pid %d\n", (int)getpid());
	return 0;
}
