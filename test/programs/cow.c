// SPDX-License-Identifier: GPL-2.0-only
/*
 * cow: private memory a parent shares copy-on-write with its forked
 * children. The parent fills MIB MiB, then forks three children; each
 * writes a few pages of its own, the parent writes one page and one page
 * of a region nobody had touched. At every step each child checks, in
 * /proc/self/pagemap and its parent's, that a page neither wrote is
 * still the parent's very page (root only: the frame numbers). At the
 * end each child checksums what it sees, then writes that page and checks
 * it is its own copy now, and the parent that it kept its own contents.
 *
 *   cow MIB STEPS
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHILDREN 3
#define PAGE 4096UL

struct result {
	uint64_t sum, fresh;
	long not_shared, still_shared_after_write, parent_saw_write;
};

static uint8_t *area, *fresh;
static size_t pages;
static struct result *results;	/* MAP_SHARED: the children report here */

static uint64_t frame(pid_t pid, void *addr)
{
	char path[64];
	uint64_t e = 0;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	fd = open(path, O_RDONLY);
	if (fd < 0 || pread(fd, &e, 8, (uintptr_t)addr / PAGE * 8) != 8)
		e = 0;
	if (fd >= 0)
		close(fd);
	return (e >> 63) ? e & ((1ULL << 55) - 1) : 0;
}

static uint64_t checksum(const uint8_t *p, size_t len)
{
	uint64_t h = 1469598103934665603ULL;
	size_t i;

	for (i = 0; i < len; i += 64)
		h = (h ^ p[i]) * 1099511628211ULL;
	return h;
}

static void nap(void)
{
	struct timespec ts = { 0, 20 * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void child(int i, long steps)
{
	uint8_t *mine = area + (i * 8) * PAGE, *untouched = area + (100 + i) * PAGE;
	struct result *r = &results[i];
	long step;

	memset(mine, 0xc0 + i, 4 * PAGE);
	for (step = 0; step < steps; step++) {
		uint64_t f = frame(getpid(), untouched);

		if (!f || f != frame(getppid(), untouched))
			r->not_shared++;
		nap();
	}
	r->sum = checksum(area, pages * PAGE);
	r->fresh = checksum(fresh, 16 * PAGE);
	untouched[0] ^= 0xff;
	r->still_shared_after_write = frame(getpid(), untouched) == frame(getppid(), untouched);
	_exit(0);
}

int main(int argc, char **argv)
{
	long steps, step;
	size_t p;
	int i;

	close_range(3, ~0U, 0);
	if (argc != 3) {
		fprintf(stderr, "usage: cow MIB STEPS\n");
		return 2;
	}
	pages = atol(argv[1]) << 8;
	steps = atol(argv[2]);
	area = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	fresh = mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	results = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED || fresh == MAP_FAILED || results == MAP_FAILED)
		return perror("mmap"), 1;
	for (p = 0; p < pages; p++)
		memset(area + p * PAGE, (int)(p * 7 + 1), PAGE);
	for (i = 0; i < CHILDREN; i++) {
		pid_t pid = fork();

		if (pid < 0)
			return perror("fork"), 1;
		if (pid == 0)
			child(i, steps);
	}
	/* After the fork: the children keep the old page, and see no new one. */
	memset(area + 200 * PAGE, 0xee, PAGE);
	memset(fresh, 0x55, PAGE);
	for (step = 0; step < steps; step++) {
		if (step % 10 == 0)
			dprintf(1, "step %ld\n", step);
		nap();
	}
	for (i = 0; i < CHILDREN; i++)
		wait(NULL);
	for (i = 0; i < CHILDREN; i++) {
		struct result *r = &results[i];

		dprintf(1, "child %d: sum %016llx fresh %016llx, not shared at %ld steps, shared after its write %ld\n", i,
			(unsigned long long)r->sum, (unsigned long long)r->fresh, r->not_shared, r->still_shared_after_write);
	}
	dprintf(1, "parent: sum %016llx fresh %016llx, page 100 %02x\n", (unsigned long long)checksum(area, pages * PAGE),
		(unsigned long long)checksum(fresh, 16 * PAGE), area[100 * PAGE]);
	dprintf(1, "pid %d\n", (int)getpid());
	return 0;
}
