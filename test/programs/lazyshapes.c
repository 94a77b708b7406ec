// SPDX-License-Identifier: GPL-2.0-only
/*
 * lazyshapes: what a task restored with lazy pages may do to memory it has
 * not touched yet, each step checked against the pattern it wrote before
 * the dump (page p holds p and a mix of p in its words).
 *
 *   lazyshapes MIB
 *
 * Fills MIB MiB, prints "built", then waits for SIGUSR1, touching nothing.
 * On it: a forked child checks the whole region (its pages come from its
 * own userfaultfd); a read(2) into an untouched page from a pipe (a fault
 * in the kernel); the third quarter moves elsewhere with mremap and is
 * checked there; MADV_DONTNEED on the second quarter, which must read
 * back as zeros; then the rest is checked.  Prints "done" and a count of
 * bad checks.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "selfcheck.h"

#define PAGE 4096UL

static uint64_t word(size_t page, size_t i)
{
	return (page + 1) * 0x9e3779b97f4a7c15ULL ^ i;
}

/* Pages [from, to) of the pattern, found at @at: how many differ */
static size_t differing(const uint64_t *at, size_t from, size_t to)
{
	size_t p, i, n = 0;

	for (p = from; p < to; p++) {
		const uint64_t *w = at + (p - from) * (PAGE / 8);

		for (i = 0; i < PAGE / 8; i += 61)
			if (w[i] != word(p, i)) {
				n++;
				break;
			}
	}
	return n;
}

static volatile sig_atomic_t go;

static void on_usr1(int sig)
{
	(void)sig;
	go = 1;
}

int main(int argc, char **argv)
{
	size_t pages, q, p, i, zero = 0;
	uint64_t *mem, *moved, *spare;
	int status, fds[2];
	sigset_t mask, old;
	pid_t child;

	close_range(3, ~0U, 0);
	if (argc != 2) {
		fprintf(stderr, "usage: lazyshapes MIB\n");
		return 2;
	}
	pages = (size_t)atol(argv[1]) << 8;
	q = pages / 4;
	mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	spare = mmap(NULL, q * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED || spare == MAP_FAILED)
		die("mmap");
	for (p = 0; p < pages; p++)
		for (i = 0; i < PAGE / 8; i++)
			mem[p * (PAGE / 8) + i] = word(p, i);
	signal(SIGUSR1, on_usr1);
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	sigprocmask(SIG_BLOCK, &mask, &old);
	printf("built\n");
	fflush(stdout);
	while (!go)
		sigsuspend(&old);

	child = fork();
	if (child < 0)
		die("fork");
	if (!child)
		_exit(differing(mem, 0, pages) ? 1 : 0);
	waitpid(child, &status, 0);
	check(WIFEXITED(status) && !WEXITSTATUS(status), "a child forked after the restore finds every page");

	/* the last page of the first quarter, read into by the kernel */
	if (pipe(fds))
		die("pipe");
	if (write(fds[1], "lazy", 4) != 4 || read(fds[0], &mem[(q - 1) * (PAGE / 8) + 1], 4) != 4)
		die("pipe read");
	check(!memcmp(&mem[(q - 1) * (PAGE / 8) + 1], "lazy", 4) && mem[(q - 1) * (PAGE / 8)] == word(q - 1, 0),
	      "read(2) into an untouched page keeps the rest of it");
	mem[(q - 1) * (PAGE / 8) + 1] = word(q - 1, 1);

	/* onto a place of its own, reserved before the dump: MREMAP_FIXED replaces what is there */
	moved = mremap(mem + 2 * q * (PAGE / 8), q * PAGE, q * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, spare);
	if (moved == MAP_FAILED)
		die("mremap");
	check(!differing(moved, 2 * q, 3 * q), "the third quarter, moved by mremap, is intact");

	if (madvise(mem + q * (PAGE / 8), q * PAGE, MADV_DONTNEED))
		die("madvise");
	for (p = q; p < 2 * q; p++)
		zero += mem[p * (PAGE / 8)] == 0 && mem[p * (PAGE / 8) + PAGE / 8 - 1] == 0;
	check(zero == q, "the second quarter reads back as zeros after MADV_DONTNEED (%zu of %zu)", zero, q);

	check(!differing(mem, 0, q), "the first quarter is intact");
	check(!differing(mem + 3 * q * (PAGE / 8), 3 * q, pages), "the last quarter is intact");
	printf("done, %d bad\n", bad);
	return bad != 0;
}
