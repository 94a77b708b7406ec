// SPDX-License-Identifier: GPL-2.0-only
/*
 * eventfd: counters carried across a dump — a plain one that keeps a
 * running count, a semaphore one read down one at a time, one over 32
 * bits, and an empty non-blocking one.
 *
 *   eventfd STEPS
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int counter, sem, big, empty;
	uint64_t v, total = 0;
	long steps, step;
	int sem_reads = 0;

	close_range(3, ~0U, 0);
	if (argc != 2) {
		fprintf(stderr, "usage: eventfd STEPS\n");
		return 2;
	}
	steps = atol(argv[1]);
	counter = eventfd(0, 0);
	sem = eventfd(10, EFD_SEMAPHORE | EFD_NONBLOCK);
	big = eventfd(0, 0);
	empty = eventfd(0, EFD_NONBLOCK);
	if (counter < 0 || sem < 0 || big < 0 || empty < 0)
		return 1;
	v = 0x123456789abULL;
	if (write(big, &v, 8) != 8)
		return 1;

	for (step = 0; step < steps; step++) {
		struct timespec ts = { 0, 20 * 1000000L };

		v = (uint64_t)step + 1;
		if (write(counter, &v, 8) != 8)
			return 1;
		if (step % 20 == 19) {	/* the count builds up across the dump */
			if (read(counter, &v, 8) != 8)
				return 1;
			total += v;
			dprintf(1, "step %ld counter read %llu total %llu\n", step, (unsigned long long)v, (unsigned long long)total);
		}
		if (step % 30 == 0) {
			if (read(sem, &v, 8) != 8 || v != 1)
				return 1;
			sem_reads++;
			dprintf(1, "step %ld semaphore read %d\n", step, sem_reads);
		}
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	v = 1000;	/* so that the last read never blocks */
	if (write(counter, &v, 8) != 8 || read(counter, &v, 8) != 8)
		return 1;
	total += v;
	dprintf(1, "counter total %llu\n", (unsigned long long)total);
	while (read(sem, &v, 8) == 8)
		sem_reads++;
	dprintf(1, "semaphore reads %d then %s, nonblocking %d\n", sem_reads, errno == EAGAIN ? "EAGAIN" : "?",
		(fcntl(sem, F_GETFL) & O_NONBLOCK) != 0);
	if (read(big, &v, 8) != 8)
		return 1;
	dprintf(1, "big %llx\n", (unsigned long long)v);
	dprintf(1, "empty %s, nonblocking %d\n", read(empty, &v, 8) < 0 && errno == EAGAIN ? "EAGAIN" : "readable",
		(fcntl(empty, F_GETFL) & O_NONBLOCK) != 0);
	dprintf(1, "pid %d\n", (int)getpid());
	return 0;
}
