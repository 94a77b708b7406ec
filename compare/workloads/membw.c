// SPDX-License-Identifier: GPL-2.0-only
/*
 * membw: the physical limit the c/r numbers are compared against.
 *
 *   membw DIR MIB
 *
 * Fills MIB MiB of memory, then measures the best of three runs of:
 * memcpy between two buffers, write(2) of the buffer into a new file in DIR
 * (1 MiB per call; DIR should be the tmpfs the images go to) and read(2)
 * back. Prints one JSON line with MB/s (10^6 bytes per second).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: membw DIR MIB\n");
		return 2;
	}
	size_t n = (size_t)atol(argv[2]) << 20, chunk = 1 << 20;
	char *a = malloc(n), *b = malloc(n), path[4096];
	if (!a || !b)
		return 1;
	for (size_t i = 0; i < n; i++)
		a[i] = (char)(i * 131 + (i >> 12));
	memset(b, 1, n);
	snprintf(path, sizeof(path), "%s/membw.%d", argv[1], getpid());
	double best_cp = 1e9, best_w = 1e9, best_r = 1e9;
	for (int rep = 0; rep < 3; rep++) {
		double t = now();
		memcpy(b, a, n);
		t = now() - t;
		if (t < best_cp)
			best_cp = t;
		int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (fd < 0) {
			perror(path);
			return 1;
		}
		t = now();
		for (size_t off = 0; off < n; off += chunk)
			if (write(fd, a + off, chunk) != (ssize_t)chunk) {
				perror("write");
				return 1;
			}
		t = now() - t;
		if (t < best_w)
			best_w = t;
		t = now();
		for (size_t off = 0; off < n; off += chunk)
			if (pread(fd, b + off, chunk, off) != (ssize_t)chunk) {
				perror("read");
				return 1;
			}
		t = now() - t;
		if (t < best_r)
			best_r = t;
		close(fd);
		unlink(path);
	}
	if (memcmp(a, b, n))
		return 1;
	printf("{\"mib\":%zu,\"memcpyMBps\":%.1f,\"tmpfsWriteMBps\":%.1f,\"tmpfsReadMBps\":%.1f}\n", n >> 20,
	       n / best_cp / 1e6, n / best_w / 1e6, n / best_r / 1e6);
	return 0;
}
