// SPDX-License-Identifier: GPL-2.0-only
/*
 * sockrefuse: holds at fd 3 a socket the user backend does not save — a
 * unix stream socket connected to a listener outside the tree, a netlink,
 * packet or raw socket, a TCP listener with a connection it has not
 * accepted, a UDP socket with a corked datagram half written — and goes
 * on computing.
 *
 *   sockrefuse connect|netlink|packet|raw|backlog|udpcork PATH STEPS
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <netinet/udp.h>
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
		fprintf(stderr, "usage: sockrefuse connect|netlink|packet|raw|backlog|udpcork PATH STEPS\n");
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
	dprintf(1, "pid %d\n", (int)getpid());
	return 0;
}
