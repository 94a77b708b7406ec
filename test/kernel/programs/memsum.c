// SPDX-License-Identifier: GPL-2.0-only
/*
 * memsum: keep a checksum over memory of every kind while reading a file,
 * so that a checkpoint/restart in the middle shows in the output if any of
 * it is lost.
 *
 *   memsum DIR ITERATIONS [SLEEP_MS]
 *
 * DIR gets three files (input.dat, private.dat, shared.dat).  Each
 * iteration changes the heap (brk), a stack array, private and shared
 * anonymous mappings, a private (copy-on-write) and a shared file mapping,
 * a TLS variable and an FPU accumulator; reads 8 bytes of input.dat at the
 * file's current offset; prints one line with the checksum; and sleeps.
 * Output depends only on ITERATIONS: two runs print the same bytes.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define REGION 65536

static __thread uint64_t tls_counter = 7;

static uint64_t mix(uint64_t h, const void *p, size_t len)
{
	const uint64_t *w = p;
	size_t i;

	for (i = 0; i < len / 8; i++)
		h = (h ^ w[i]) * 0x100000001b3ULL;
	return h;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static int make_file(const char *dir, const char *name, int seed)
{
	char path[4096], buf[REGION];
	int fd, i;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		die(path);
	for (i = 0; i < REGION; i++)
		buf[i] = (char)(i * seed + seed);
	if (write(fd, buf, REGION) != REGION)
		die("write");
	return fd;
}

int main(int argc, char **argv)
{
	volatile uint64_t stack[2048];
	uint64_t *heap, *panon, *sanon, *pfile, *sfile;
	int iters, sleep_ms, in, pf, sf, devzero, devnull, i;
	struct timespec ts;
	double fpu = 1.0;

	if (argc < 3) {
		fprintf(stderr, "usage: memsum DIR ITERATIONS [SLEEP_MS]\n");
		return 2;
	}
	iters = atoi(argv[2]);
	sleep_ms = argc > 3 ? atoi(argv[3]) : 20;
	ts.tv_sec = sleep_ms / 1000;
	ts.tv_nsec = (sleep_ms % 1000) * 1000000L;

	in = make_file(argv[1], "input.dat", 3);
	pf = make_file(argv[1], "private.dat", 5);
	sf = make_file(argv[1], "shared.dat", 7);
	if (lseek(in, 100, SEEK_SET) != 100)
		die("lseek");
	devzero = open("/dev/zero", O_RDONLY);
	devnull = open("/dev/null", O_WRONLY);
	if (devzero < 0 || devnull < 0 || open("/dev/urandom", O_RDONLY) < 0)
		die("/dev");

	heap = sbrk(REGION);
	if (heap == (void *)-1)
		die("sbrk");
	memset(heap, 1, REGION);
	panon = mmap(NULL, 4 * REGION, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	sanon = mmap(NULL, REGION, PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pfile = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE, pf, 0);
	sfile = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_SHARED, sf, 0);
	if (panon == MAP_FAILED || sanon == MAP_FAILED || pfile == MAP_FAILED ||
	    sfile == MAP_FAILED)
		die("mmap");
	for (i = 0; i < 2048; i++)
		stack[i] = i;

	for (i = 0; i < iters; i++) {
		uint64_t h = 0xcbf29ce484222325ULL, word = 0, z = 1;
		size_t k = (size_t)(i * 977) % (REGION / 8);

		heap[k] += i;
		stack[k % 2048] ^= (uint64_t)i << 7;
		panon[(k * 3) % (4 * REGION / 8)] += i * 3;
		sanon[k] += i * 5;
		pfile[k] += i * 11;
		sfile[(k + 1) % (REGION / 8)] += i * 13;
		tls_counter = tls_counter * 31 + i;
		fpu = fpu * 1.0000001 + i / 3.0;
		if (read(in, &word, sizeof(word)) != sizeof(word)) {
			if (lseek(in, 0, SEEK_SET) != 0)
				die("lseek");
		}
		if (read(devzero, &z, sizeof(z)) != sizeof(z) || z)
			die("/dev/zero");
		if (write(devnull, &z, sizeof(z)) != sizeof(z))
			die("/dev/null");

		h = mix(h, heap, REGION);
		h = mix(h, (const void *)stack, sizeof(stack));
		h = mix(h, panon, 4 * REGION);
		h = mix(h, sanon, REGION);
		h = mix(h, pfile, REGION);
		h = mix(h, sfile, REGION);
		h = mix(h, &tls_counter, 8);
		h = mix(h, &word, 8);
		printf("iter %d sum %016llx fpu %.6f\n", i, (unsigned long long)h, fpu);
		fflush(stdout);
		if (sleep_ms)
			nanosleep(&ts, NULL);
	}
	printf("done %d\n", iters);
	return 0;
}
