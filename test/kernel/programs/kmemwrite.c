// SPDX-License-Identifier: GPL-2.0-only
/*
 * kmemwrite: keep rewriting a large private anonymous region, generation
 * after generation, checking every page before writing it.
 *
 *   kmemwrite MIB GENERATIONS [DIRTY_PERCENT [step]]
 *
 * Page p of generation g holds g and p in its first two words and a mix of
 * both in its last.  Before writing generation g into page p the program
 * checks that the page holds generation g-1: memory that was saved at one
 * moment shows exactly one boundary (pages before p at g, the others at
 * g-1).  A checkpoint whose pages were saved over a time, while the
 * program ran on, would give pages of later generations, and the restored
 * program says "BAD" and exits 1.  With DIRTY_PERCENT only that share of
 * the pages (the first ones) is rewritten each generation.  With "step",
 * each generation waits for a SIGUSR2 (in sigsuspend(2), touching no
 * memory): a checkpoint of the program at rest finds its memory as it was
 * a moment before, and one that a SIGUSR2 races with sees it rewritten.
 * A generation of step mode also first writes a page never touched before
 * (page G-1 of a spare region) and maps a small region afresh in place
 * (munmap, mmap MAP_FIXED) with G in it, after checking both.
 *
 * Prints "ready PID" once the region is filled, "gen G ok" after each
 * generation (then rests a millisecond), "done" at the end: after GENERATIONS (0: no limit), or at
 * the end of the generation during which SIGUSR1 came.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define WORDS (4096 / 8)

static volatile sig_atomic_t stop, go;

static void on_usr1(int sig)
{
	(void)sig;
	stop = 1;
}

static void on_usr2(int sig)
{
	(void)sig;
	go = 1;
}

#define FRESH_PAGES 4096
#define REMAP_PAGES 4

/* Step mode's other memory at generation @g: checked, then changed; 0 if it was right */
static int step_extras(uint64_t g, volatile uint64_t *fresh, volatile uint64_t *remap)
{
	uint64_t k;

	for (k = 0; k + 1 < g && k < FRESH_PAGES; k++)
		if (fresh[k * WORDS] != k + 1)
			return printf("BAD fresh page %llu in generation %llu\n",
				      (unsigned long long)k, (unsigned long long)g);
	for (k = 0; k < REMAP_PAGES; k++)
		if (remap[k * WORDS] != g - 1)
			return printf("BAD remapped page %llu in generation %llu\n",
				      (unsigned long long)k, (unsigned long long)g);
	if (g <= FRESH_PAGES)
		fresh[(g - 1) * WORDS] = g;
	munmap((void *)remap, REMAP_PAGES * 4096);
	if (mmap((void *)remap, REMAP_PAGES * 4096, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != (void *)remap)
		return printf("BAD mmap\n");
	for (k = 0; k < REMAP_PAGES; k++)
		remap[k * WORDS] = g;
	return 0;
}

/* "step": wait for a SIGUSR2 (or SIGUSR1) */
static void wait_step(void)
{
	sigset_t both, old;

	sigemptyset(&both);
	sigaddset(&both, SIGUSR1);
	sigaddset(&both, SIGUSR2);
	sigprocmask(SIG_BLOCK, &both, &old);
	while (!stop && !go)
		sigsuspend(&old);
	go = 0;
	sigprocmask(SIG_SETMASK, &old, NULL);
}

static uint64_t tail_of(uint64_t gen, uint64_t page)
{
	return (gen * 0x9e3779b97f4a7c15ULL) ^ (page * 0xbf58476d1ce4e5b9ULL);
}

int main(int argc, char **argv)
{
	uint64_t pages, rewrite, gens, g, p;
	volatile uint64_t *mem, *fresh = NULL, *remap = NULL;
	int step = argc > 4 && !strcmp(argv[4], "step");

	if (argc < 3) {
		fprintf(stderr, "usage: kmemwrite MIB GENERATIONS [DIRTY_PERCENT]\n");
		return 2;
	}
	pages = strtoull(argv[1], NULL, 0) * 256;
	gens = strtoull(argv[2], NULL, 0);
	rewrite = argc > 3 ? pages * strtoull(argv[3], NULL, 0) / 100 : pages;
	mem = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	for (p = 0; p < pages; p++) {
		mem[p * WORDS] = 0;
		mem[p * WORDS + 1] = p;
		mem[p * WORDS + WORDS - 1] = tail_of(0, p);
	}
	if (step) {
		fresh = mmap(NULL, FRESH_PAGES * 4096, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		remap = mmap(NULL, REMAP_PAGES * 4096, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (fresh == MAP_FAILED || remap == MAP_FAILED) {
			perror("mmap");
			return 1;
		}
	}
	signal(SIGUSR1, on_usr1);
	signal(SIGUSR2, on_usr2);
	printf("ready %d\n", getpid());
	fflush(stdout);
	for (g = 1; !stop && (!gens || g <= gens); g++) {
		if (step && g > 1)
			wait_step();
		if (stop)
			break;
		if (step && step_extras(g, fresh, remap)) {
			fflush(stdout);
			return 1;
		}
		for (p = 0; p < pages; p++) {
			volatile uint64_t *w = mem + p * WORDS;
			uint64_t want = p < rewrite ? g - 1 : 0;

			if (w[0] != want || w[1] != p || w[WORDS - 1] != tail_of(want, p)) {
				printf("BAD page %llu in generation %llu: holds %llu, expected %llu\n",
				       (unsigned long long)p, (unsigned long long)g,
				       (unsigned long long)w[0], (unsigned long long)want);
				fflush(stdout);
				return 1;
			}
			if (p < rewrite) {
				w[0] = g;
				w[WORDS - 1] = tail_of(g, p);
			}
		}
		printf("gen %llu ok\n", (unsigned long long)g);
		fflush(stdout);
		usleep(1000);	/* a line per millisecond at most: the output is read as it grows */
	}
	printf("done\n");
	return 0;
}
