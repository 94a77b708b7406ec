// SPDX-License-Identifier: GPL-2.0-only
/*
 * kpipes: a parent and a child talking through pipes, with bytes in
 * flight in one of them at any checkpoint.
 *
 *   kpipes ITERATIONS SLEEP_MS DIR
 *
 * Before forking, the parent fills pipe C with 3000 bytes of a pattern
 * that only the child reads, at the very end, and the FIFO DIR/fifo
 * (opened for reading and writing) with 100 bytes the child also reads.  Each iteration the parent
 * sends a number down pipe A, the child answers with a function of it up
 * pipe B, and the parent prints both; the parent sends the next number
 * before it reads the answer, so a byte is often in flight.  The child
 * checks the pattern, the parent reaps the child and prints its status.
 * Two runs print the same.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PATTERN 3000

int main(int argc, char **argv)
{
	int a[2], b[2], c[2], iters, sleep_ms, i, status, fifo;
	char path[4096];
	unsigned char buf[PATTERN];
	uint32_t v, answer;
	pid_t child;

	if (argc != 4 || pipe(a) || pipe(b) || pipe(c))
		return 2;
	snprintf(path, sizeof(path), "%s/fifo", argv[3]);
	unlink(path);
	if (mkfifo(path, 0600))
		return 2;
	fifo = open(path, O_RDWR);
	iters = atoi(argv[1]);
	sleep_ms = atoi(argv[2]);
	for (i = 0; i < PATTERN; i++)
		buf[i] = (unsigned char)(i * 7 + 3);
	if (write(c[1], buf, PATTERN) != PATTERN || fifo < 0 || write(fifo, buf, 100) != 100)
		return 2;
	child = fork();
	if (child < 0)
		return 2;
	if (child == 0) {
		ssize_t got = 0, n;

		close(a[1]);
		close(b[0]);
		close(c[1]);
		while (read(a[0], &v, sizeof(v)) == sizeof(v)) {
			answer = v * 2654435761u;
			if (write(b[1], &answer, sizeof(answer)) != sizeof(answer))
				return 3;
		}
		while ((n = read(c[0], buf + got, PATTERN - got)) > 0)
			got += n;
		for (i = 0; i < got; i++)
			if (buf[i] != (unsigned char)(i * 7 + 3))
				return 4;
		if (got != PATTERN || read(fifo, buf, PATTERN) != 100)
			return 5;
		for (i = 0; i < 100; i++)
			if (buf[i] != (unsigned char)(i * 7 + 3))
				return 6;
		return 0;
	}
	close(a[0]);
	close(b[1]);
	close(c[0]);
	close(c[1]);
	v = 1;
	if (write(a[1], &v, sizeof(v)) != sizeof(v))
		return 2;
	for (i = 1; i <= iters; i++) {
		uint32_t next = i + 1;

		if (i < iters && write(a[1], &next, sizeof(next)) != sizeof(next))
			return 2;
		if (read(b[0], &answer, sizeof(answer)) != sizeof(answer))
			return 2;
		printf("iter %d: sent %d, got %08x\n", i, i, answer);
		fflush(stdout);
		usleep(sleep_ms * 1000);
	}
	close(a[1]);
	waitpid(child, &status, 0);
	printf("child ended with status %d\n", status);
	return 0;
}
