// SPDX-License-Identifier: GPL-2.0-only
/*
 * memstress: keeps folding memory of every kind into a checksum, so that a
 * restore that lost or moved anything prints a different line than an
 * undisturbed run.
 *
 *   memstress WORKDIR STEPS
 *
 * Touches: private and shared anonymous mappings, private and shared file
 * mappings, a read-only and a PROT_NONE mapping, brk heap (and grows it),
 * stack, data, bss, TLS, FPU state, a file read at a moving offset, a
 * signal handler it invokes itself, a blocked signal, an rlimit, its cwd.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define PRIV_ANON_SIZE (4 << 20)
#define SHARED_ANON_SIZE (1 << 20)
#define FILE_MAP_SIZE (64 << 10)

static uint64_t data_words[512] = { 1, 2, 3 };
static uint64_t bss_words[4096];
static __thread uint64_t tls_word = 7;
static volatile sig_atomic_t usr1_count;

struct heap_node {
	struct heap_node *next;
	uint64_t value;
};

static void on_usr1(int sig)
{
	(void)sig;
	usr1_count++;
}

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
	return h * 0xff51afd7ed558ccdULL;
}

static uint64_t fold(uint64_t h, const void *mem, size_t len)
{
	const uint64_t *w = mem;
	size_t i;

	for (i = 0; i < len / 8; i += 61)
		h = mix(h, w[i]);
	return h;
}

static void *map_file(const char *name, int flags)
{
	int fd = open(name, O_RDWR | O_CREAT, 0644);
	void *p;

	if (fd < 0 || ftruncate(fd, FILE_MAP_SIZE) < 0) {
		perror(name);
		exit(1);
	}
	p = mmap(NULL, FILE_MAP_SIZE, PROT_READ | PROT_WRITE, flags, fd, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	close(fd);
	return p;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { 0, ms * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int main(int argc, char **argv)
{
	uint64_t stack_words[2048];
	struct heap_node *heap = NULL;
	uint64_t *priv_anon, *shared_anon, *priv_file, *shared_file, *ro;
	uint64_t *heap_block, sum = 0, input;
	struct rlimit rl = { 200, 4096 };
	double fp = 1.0;
	long steps, step;
	sigset_t set;
	int input_fd;

	/* Descriptors leaked by whoever started us are not part of the test. */
	close_range(3, ~0U, 0);
	if (argc != 3 || chdir(argv[1]) < 0) {
		fprintf(stderr, "usage: memstress WORKDIR STEPS\n");
		return 2;
	}
	steps = atol(argv[2]);

	priv_anon = mmap(NULL, PRIV_ANON_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	shared_anon = mmap(NULL, SHARED_ANON_SIZE, PROT_READ | PROT_WRITE,
			   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ro = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (priv_anon == MAP_FAILED || shared_anon == MAP_FAILED || ro == MAP_FAILED)
		return 1;
	for (step = 0; step < 1024; step++)
		ro[step] = mix(step, 42);
	mprotect(ro, 8192, PROT_READ);
	if (mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED)
		return 1;
	priv_file = map_file("private.map", MAP_PRIVATE);
	shared_file = map_file("shared.map", MAP_SHARED);
	heap_block = malloc(64 << 10);	/* below the mmap threshold: brk heap */
	memset(heap_block, 0x5a, 64 << 10);
	memset(stack_words, 0, sizeof(stack_words));

	input_fd = open("input.dat", O_RDONLY);
	if (input_fd < 0) {
		perror("input.dat");
		return 1;
	}
	signal(SIGUSR1, on_usr1);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, NULL);
	setrlimit(RLIMIT_NOFILE, &rl);

	for (step = 0; step < steps; step++) {
		uint64_t v = mix(sum, step);
		struct heap_node *node;

		if (read(input_fd, &input, sizeof(input)) != sizeof(input)) {
			lseek(input_fd, 0, SEEK_SET);
			input = 0;
		}
		v = mix(v, input);
		priv_anon[(v >> 3) % (PRIV_ANON_SIZE / 8)] ^= v;
		shared_anon[(v >> 5) % (SHARED_ANON_SIZE / 8)] += v;
		priv_file[(v >> 7) % (FILE_MAP_SIZE / 8)] ^= v;
		shared_file[(v >> 9) % (FILE_MAP_SIZE / 8)] += v;
		heap_block[(v >> 11) % ((64 << 10) / 8)] ^= v;
		stack_words[(v >> 13) % 2048] += v;
		data_words[(v >> 15) % 512] ^= v;
		bss_words[(v >> 17) % 4096] += v;
		tls_word = mix(tls_word, v);
		fp = fp * 1.000001 + (double)(v & 0xff) / 256.0;
		if (step % 25 == 0) {
			node = malloc(sizeof(*node) + 200);	/* grows brk */
			node->value = v;
			node->next = heap;
			heap = node;
		}
		if (step % 50 == 0)
			kill(getpid(), SIGUSR1);

		sum = fold(sum, priv_anon, PRIV_ANON_SIZE);
		sum = fold(sum, shared_anon, SHARED_ANON_SIZE);
		sum = fold(sum, priv_file, FILE_MAP_SIZE);
		sum = fold(sum, shared_file, FILE_MAP_SIZE);
		sum = fold(sum, ro, 8192);
		sum = fold(sum, heap_block, 64 << 10);
		sum = fold(sum, stack_words, sizeof(stack_words));
		sum = fold(sum, data_words, sizeof(data_words));
		sum = fold(sum, bss_words, sizeof(bss_words));
		sum = mix(sum, tls_word);
		sum = mix(sum, (uint64_t)(fp * 1e6));
		for (node = heap; node; node = node->next)
			sum = mix(sum, node->value);

		if (step % 10 == 0)
			dprintf(1, "step %ld sum %016llx\n", step, (unsigned long long)sum);
		sleep_ms(5);
	}

	getrlimit(RLIMIT_NOFILE, &rl);
	sigprocmask(SIG_BLOCK, NULL, &set);
	dprintf(1, "done sum %016llx usr1=%d nofile=%ld usr2_blocked=%d pos=%ld\n",
		(unsigned long long)sum, (int)usr1_count, (long)rl.rlim_cur,
		sigismember(&set, SIGUSR2), (long)lseek(input_fd, 0, SEEK_CUR));
	/* Apart from the rest: an undisturbed run has another pid. */
	dprintf(1, "pid %d\n", (int)getpid());
	return 0;
}
