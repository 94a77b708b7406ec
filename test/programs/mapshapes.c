// SPDX-License-Identifier: GPL-2.0-only
/*
 * mapshapes: mappings that do not start where their object does, and the
 * may-write bit of shared file mappings.
 *   - shared anonymous memory split by munmap, and a piece of another
 *     moved elsewhere by mremap (both map their object at an offset);
 *   - 1 GiB private and 1 GiB shared anonymous mappings, a page written
 *     every 64 MiB;
 *   - a file opened read-write and mapped shared read-only (mprotect can
 *     make it writable), and one opened read-only (it cannot);
 *   - a memfd with O_APPEND, reopened read-only, and mapped private with
 *     a page of its own.
 * Each step checks every mapping's contents; the end tries the mprotects,
 * the memfd's status flags and writes, and prints what it found.
 *
 *   mapshapes DIR STEPS
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define KB 1024UL
#define MB (1024 * KB)
#define GB (1024 * MB)
#define PAGE (4 * KB)

static uint8_t *split, *moved, *big_private, *big_shared, *rw_file, *ro_file, *memfd_private;
static int memfd, memfd_ro;

static int check(void)
{
	size_t i;
	int bad = 0;

	for (i = 0; i < 48 * KB; i++)
		bad += split[i] != (uint8_t)(i / PAGE + 16);
	for (i = 0; i < 16 * KB; i++)
		bad += moved[i] != (uint8_t)(i / PAGE + 0x40);
	for (i = 0; i < GB; i += 64 * MB) {
		bad += big_private[i] != (uint8_t)(i / (64 * MB) + 1) || big_private[i + 4096] != 0;
		bad += big_shared[i + 8192] != (uint8_t)(i / (64 * MB) + 2);
	}
	bad += memcmp(rw_file, "read-write file\n", 16) != 0;
	bad += memcmp(ro_file, "read-only file\n", 15) != 0;
	bad += memcmp(memfd_private, "private copy", 12) != 0 || memfd_private[PAGE] != 'M';
	return bad;
}

static int writable(uint8_t *p)
{
	return mprotect(p, PAGE, PROT_READ | PROT_WRITE) == 0 ? 1 : -errno;
}

int main(int argc, char **argv)
{
	char path[4096], buf[64];
	uint8_t *a, *b;
	long steps, step;
	size_t i;
	int fd;

	close_range(3, ~0U, 0);
	if (argc != 3) {
		fprintf(stderr, "usage: mapshapes DIR STEPS\n");
		return 2;
	}
	steps = atol(argv[2]);

	a = mmap(NULL, 64 * KB, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	for (i = 0; i < 64 * KB; i++)
		a[i] = i / PAGE + 12;
	munmap(a, 16 * KB);
	split = a + 16 * KB;
	b = mmap(NULL, 32 * KB, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	for (i = 0; i < 32 * KB; i++)
		b[i] = i / PAGE + 0x3c;
	moved = mremap(b + 16 * KB, 16 * KB, 16 * KB, MREMAP_MAYMOVE | MREMAP_FIXED, b + 16 * MB);
	big_private = mmap(NULL, GB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	big_shared = mmap(NULL, GB, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (split == MAP_FAILED || moved == MAP_FAILED || big_private == MAP_FAILED || big_shared == MAP_FAILED)
		return perror("mmap"), 1;
	for (i = 0; i < GB; i += 64 * MB) {
		big_private[i] = i / (64 * MB) + 1;
		big_shared[i + 8192] = i / (64 * MB) + 2;
	}

	snprintf(path, sizeof(path), "%s/rw.txt", argv[1]);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, "read-write file\n", 16) != 16 || ftruncate(fd, PAGE) < 0)
		return perror(path), 1;
	rw_file = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/ro.txt", argv[1]);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, "read-only file\n", 15) != 15)
		return perror(path), 1;
	close(fd);
	fd = open(path, O_RDONLY);
	ro_file = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (rw_file == MAP_FAILED || ro_file == MAP_FAILED)
		return perror("mmap file"), 1;

	memfd = memfd_create("shapes", 0);
	if (memfd < 0 || ftruncate(memfd, 2 * PAGE) < 0 || pwrite(memfd, "shared contents", 15, 0) != 15 ||
	    pwrite(memfd, "M", 1, PAGE) != 1)
		return perror("memfd"), 1;
	memfd_private = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, memfd, 0);
	if (memfd_private == MAP_FAILED)
		return perror("mmap memfd"), 1;
	memcpy(memfd_private, "private copy", 12);
	fcntl(memfd, F_SETFL, O_APPEND | O_NONBLOCK);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
	memfd_ro = open(path, O_RDONLY);
	if (memfd_ro < 0)
		return perror("reopen memfd"), 1;

	for (step = 0; step < steps; step++) {
		struct timespec ts = { 0, 20 * 1000000L };

		if (step % 10 == 0)
			printf("step %ld: %d bad\n", step, check());
		fflush(stdout);
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	printf("end: %d bad\n", check());
	printf("read-write file: mprotect writable %d\n", writable(rw_file));
	if (writable(rw_file) == 1)
		memcpy(rw_file, "READ", 4);
	printf("read-only file: mprotect writable %d\n", writable(ro_file));
	printf("memfd flags %o, reopened %o\n", fcntl(memfd, F_GETFL) & ~O_LARGEFILE, fcntl(memfd_ro, F_GETFL) & ~O_LARGEFILE);
	/* O_APPEND: at the end whatever the offset */
	lseek(memfd, 0, SEEK_SET);
	{
		ssize_t n = write(memfd, "tail", 4);

		printf("memfd append: %zd, size %ld\n", n, (long)lseek(memfd, 0, SEEK_END));
	}
	printf("read-only memfd write: %zd\n", write(memfd_ro, "x", 1));
	memset(buf, 0, sizeof(buf));
	printf("memfd shared contents: %.15s, private view: %.12s\n", pread(memfd_ro, buf, 15, 0) == 15 ? buf : "?", memfd_private);
	printf("pid %d\n", (int)getpid());
	return 0;
}
