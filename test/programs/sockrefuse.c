// SPDX-License-Identifier: GPL-2.0-only
/*
 * sockrefuse: holds at fd 3 a socket the user backend cannot save yet — a
 * listening TCP socket, a unix socket listening on a path, or one
 * connected to a path — and goes on computing.
 *
 *   sockrefuse inet|listen|connect PATH STEPS
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
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
	int fd = socket(strcmp(mode, "inet") ? AF_UNIX : AF_INET, SOCK_STREAM, 0);

	strncpy(un.sun_path, path, sizeof(un.sun_path) - 1);
	if (fd < 0)
		return -1;
	if (!strcmp(mode, "inet"))
		return bind(fd, (void *)&in, sizeof(in)) < 0 || listen(fd, 1) < 0 ? -1 : fd;
	if (!strcmp(mode, "listen"))
		return bind(fd, (void *)&un, sizeof(un)) < 0 || listen(fd, 1) < 0 ? -1 : fd;
	return connect(fd, (void *)&un, sizeof(un)) < 0 ? -1 : fd;
}

int main(int argc, char **argv)
{
	uint64_t h = 1;
	long steps, step;

	close_range(3, ~0U, 0);
	if (argc != 4) {
		fprintf(stderr, "usage: sockrefuse inet|listen|connect PATH STEPS\n");
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
