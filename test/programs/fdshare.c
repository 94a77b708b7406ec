// SPDX-License-Identifier: GPL-2.0-only
/*
 * fdshare: descriptors that share an open file (dup: one offset for two
 * fds) and pipes with data in flight, one blocking and one not.
 *
 *   fdshare WORKDIR STEPS
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
	return h * 0xff51afd7ed558ccdULL;
}

int main(int argc, char **argv)
{
	int file, dup_file, p[2], q[2];
	uint64_t sum = 0, word;
	unsigned char buf[4096];
	long steps, step, i;
	ssize_t n;

	close_range(3, ~0U, 0);
	if (argc != 3 || chdir(argv[1]) < 0) {
		fprintf(stderr, "usage: fdshare WORKDIR STEPS\n");
		return 2;
	}
	steps = atol(argv[2]);
	file = open("input.dat", O_RDONLY);
	dup_file = dup(file);
	if (file < 0 || dup_file < 0 || pipe(p) < 0 || pipe2(q, O_NONBLOCK) < 0)
		return 1;
	for (i = 0; i < (long)sizeof(buf); i++)
		buf[i] = (unsigned char)(i * 7 + 3);
	if (write(p[1], buf, 3000) != 3000)	/* stays in flight across the dump */
		return 1;

	for (step = 0; step < steps; step++) {
		struct timespec ts = { 0, 5 * 1000000L };

		if (read(file, &word, 8) == 8)
			sum = mix(sum, word);
		if (read(dup_file, &word, 8) == 8)	/* same offset as file */
			sum = mix(sum, word);
		if (step % 50 == 0) {
			if (write(p[1], &sum, 8) != 8 || read(p[0], &word, 8) != 8)
				return 1;
			sum = mix(sum, word);
		}
		if (step % 10 == 0)
			dprintf(1, "step %ld sum %016llx\n", step, (unsigned long long)sum);
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	while ((n = read(p[0], buf, sizeof(buf))) > 0)
		for (i = 0; i < n; i++)
			sum = mix(sum, buf[i]);
	n = read(q[0], buf, 1);
	dprintf(1, "done sum %016llx offset %ld empty-nonblocking %d\n", (unsigned long long)sum,
		(long)lseek(file, 0, SEEK_CUR), n < 0 && errno == EAGAIN);
	dprintf(1, "pid %d\n", (int)getpid());
	return 0;
}
