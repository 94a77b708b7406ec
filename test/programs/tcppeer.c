// SPDX-License-Identifier: GPL-2.0-only
/*
 * tcppeer: a TCP connection to a peer outside the tree, kept streaming
 * both ways through the whole run: it connects to HOST PORT, sends a
 * known byte stream and checks every byte of the stream the peer sends
 * arrives once, in order; then it closes its side, reads to the end and
 * reports. The peer (the test) does the same with its own stream. With
 * "netlink" it also holds a netlink socket, which a dump refuses.
 *
 *   tcppeer HOST PORT STEPS [netlink]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The byte at position i of a stream; the peer's stream has seed 1, ours seed 0. */
static unsigned char pat(uint64_t i, unsigned seed)
{
	return (unsigned char)(i * 7 + (i >> 13) + seed);
}

int main(int argc, char **argv)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST }, *ai;
	uint64_t sent = 0, got = 0;
	unsigned char buf[16384];
	int fd, broken = 0;
	long steps;

	close_range(3, ~0U, 0);
	if (argc != 4 && argc != 5) {
		fprintf(stderr, "usage: tcppeer HOST PORT STEPS [netlink]\n");
		return 2;
	}
	steps = atol(argv[3]);
	if (getaddrinfo(argv[1], argv[2], &hints, &ai) || (fd = socket(ai->ai_family, SOCK_STREAM, 0)) < 0 ||
	    connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		printf("FAIL connect: %s\n", strerror(errno));
		return 1;
	}
	if (argc == 5 && socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE) < 0)
		return 1;
	printf("connected\n");
	fflush(stdout);
	for (long step = 0; step < steps; step++) {
		ssize_t n;

		for (size_t i = 0; i < 4096; i++)
			buf[i] = pat(sent + i, 0);
		n = send(fd, buf, 4096, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN)
			break;
		if (n > 0)
			sent += n;
		while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
			for (ssize_t i = 0; i < n; i++)
				broken |= buf[i] != pat(got + i, 1);
			got += n;
		}
		if (n == 0 || (n < 0 && errno != EAGAIN))
			break;
		if (step % 10 == 0) {
			printf("step %ld\n", step);
			fflush(stdout);
		}
		poll(NULL, 0, 10);
	}
	shutdown(fd, SHUT_WR);
	for (ssize_t n; (n = recv(fd, buf, sizeof(buf), 0)) > 0; got += n)
		for (ssize_t i = 0; i < n; i++)
			broken |= buf[i] != pat(got + i, 1);
	printf("%s: sent %llu, received %llu bytes %s\n", broken ? "BAD" : "ok", (unsigned long long)sent, (unsigned long long)got,
	       broken ? "out of order" : "in order");
	printf("pid %d\n", (int)getpid());
	return broken;
}
