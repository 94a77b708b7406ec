// SPDX-License-Identifier: GPL-2.0-only
/*
 * tree: a 3-level tree of multithreaded processes passing a token around
 * a ring of pipes (root -> child -> grandchild -> root). Every process
 * hands the token to its two worker threads (each keeps a hash in TLS)
 * and mixes their answers in; the grandchild also adds it to memory
 * shared by all three (MAP_SHARED|MAP_ANONYMOUS before fork). The root
 * keeps a zombie child it reaps only at the end.
 *
 *   tree STEPS
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct worker {
	int in[2], out[2];
	pthread_t thread;
};

static __thread uint64_t tls_hash;
static struct worker workers[2];
static volatile uint64_t *shared;

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
	return h * 0xff51afd7ed558ccdULL;
}

static void xread(int fd, void *buf, size_t len)
{
	if (read(fd, buf, len) != (ssize_t)len)
		exit(3);
}

static void xwrite(int fd, const void *buf, size_t len)
{
	if (write(fd, buf, len) != (ssize_t)len)
		exit(3);
}

static void *work(void *arg)
{
	struct worker *w = arg;
	uint64_t token;

	tls_hash = (uint64_t)(w - workers) + 1;
	for (;;) {
		xread(w->in[0], &token, 8);
		tls_hash = mix(tls_hash, token);
		xwrite(w->out[1], &tls_hash, 8);
	}
	return NULL;
}

static void start_workers(void)
{
	int i;

	for (i = 0; i < 2; i++) {
		if (pipe(workers[i].in) < 0 || pipe(workers[i].out) < 0)
			exit(2);
		pthread_create(&workers[i].thread, NULL, work, &workers[i]);
	}
}

/* One process's share of a step: its threads' hashes mixed into the token. */
static uint64_t pass(uint64_t token)
{
	uint64_t h0, h1;

	xwrite(workers[0].in[1], &token, 8);
	xwrite(workers[1].in[1], &token, 8);
	xread(workers[0].out[0], &h0, 8);
	xread(workers[1].out[0], &h1, 8);
	return mix(token, h0 ^ (h1 << 1));
}

/* Child and grandchild: take the token from `in`, pass it on to `out`. */
static void relay(int in, int out, int last, long steps)
{
	uint64_t token;
	long i;

	start_workers();
	for (i = 0; i < steps; i++) {
		xread(in, &token, 8);
		token = pass(token);
		if (last)
			*shared += token;
		xwrite(out, &token, 8);
	}
	exit(0);
}

int main(int argc, char **argv)
{
	int down[2], middle[2], up[2], status;
	pid_t zombie, child;
	uint64_t token = 1;
	long steps, i;

	close_range(3, ~0U, 0);
	if (argc != 2) {
		fprintf(stderr, "usage: tree STEPS\n");
		return 2;
	}
	steps = atol(argv[1]);
	setpgid(0, 0);
	shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shared == MAP_FAILED || pipe(down) < 0 || pipe(middle) < 0 || pipe(up) < 0)
		return 2;
	zombie = fork();
	if (zombie == 0)
		_exit(7);
	child = fork();
	if (child == 0) {
		if (fork() == 0)
			relay(middle[0], up[1], 1, steps);
		relay(down[0], middle[1], 0, steps);
	}
	start_workers();
	for (i = 0; i < steps; i++) {
		struct timespec ts = { 0, 5 * 1000000L };

		token = pass(token);
		xwrite(down[1], &token, 8);
		xread(up[0], &token, 8);
		if (i % 10 == 0)
			dprintf(1, "step %ld token %016llx shared %016llx\n", i,
				(unsigned long long)token, (unsigned long long)*shared);
		nanosleep(&ts, NULL);
	}
	waitpid(child, &status, 0);
	dprintf(1, "child exit %d\n", WEXITSTATUS(status));
	waitpid(zombie, &status, 0);
	dprintf(1, "zombie exit %d\n", WEXITSTATUS(status));
	dprintf(1, "pid %d\n", (int)getpid());
	return 0;
}
