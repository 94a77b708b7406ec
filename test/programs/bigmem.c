// SPDX-License-Identifier: GPL-2.0-only
/*
 * bigmem: fills MIB of anonymous memory with a pattern, then keeps
 * rewriting and re-summing it, printing a running checksum.
 *
 *   bigmem MIB STEPS
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static uint64_t next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

int main(int argc, char **argv)
{
	size_t words, i;
	uint64_t *mem, seed = 88172645463325252ULL, sum;
	long steps, step;

	/* Descriptors leaked by whoever started us are not part of the test. */
	close_range(3, ~0U, 0);
	if (argc != 3) {
		fprintf(stderr, "usage: bigmem MIB STEPS\n");
		return 2;
	}
	words = (size_t)atol(argv[1]) << 17;
	steps = atol(argv[2]);
	mem = mmap(NULL, words * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	for (i = 0; i < words; i++)
		mem[i] = next(&seed);
	dprintf(1, "filled %zu MiB\n", words >> 17);

	for (step = 0; step < steps; step++) {
		struct timespec ts = { 0, 20 * 1000000L };

		for (i = 0; i < 4096; i++)
			mem[next(&seed) % words] ^= seed;
		sum = 0;
		for (i = step % 512; i < words; i += 512)
			sum = sum * 31 + mem[i];
		dprintf(1, "step %ld sum %016llx\n", step, (unsigned long long)sum);
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	sum = 0;
	for (i = 0; i < words; i++)
		sum = sum * 31 + mem[i];
	dprintf(1, "done sum %016llx\n", (unsigned long long)sum);
	dprintf(1, "pid %d\n", (int)getpid());
	return 0;
}
