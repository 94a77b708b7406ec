// SPDX-License-Identifier: GPL-2.0-only
/*
 * kself: a program that checkpoints itself.
 *
 *   kself DIR ITERS
 *
 * Computes a checksum over ITERS steps.  Half way it calls
 * checkpoint(0, fd, 0, logfd) on itself, writing DIR/kernel.img (and
 * DIR/kernel.log): the call returns the checkpoint's id, and kself prints
 * "checkpointed" and waits to be killed.  Restarted from that image, the
 * same call returns 0: kself prints "restarted", finishes and prints
 * "sum N", which is what a run without the checkpoint prints (ITERS
 * given as "-ITERS").
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NR_checkpoint 548

int main(int argc, char **argv)
{
	unsigned long long sum = 1469598103934665603ULL;
	char img[4096], log[4096];
	long i, iters;
	int fd, logfd;

	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc != 3)
		return 2;
	iters = atol(argv[2]);
	snprintf(img, sizeof(img), "%s/kernel.img", argv[1]);
	snprintf(log, sizeof(log), "%s/kernel.log", argv[1]);
	for (i = 0; i < labs(iters); i++) {
		sum = (sum ^ i) * 1099511628211ULL;
		if (i == iters / 2 && iters > 0) {
			long id;

			fd = open(img, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
			logfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
			if (fd < 0 || logfd < 0)
				return perror("open"), 100;
			id = syscall(NR_checkpoint, 0, fd, 0, logfd);
			if (id < 0)
				return perror("checkpoint"), 100;
			if (id > 0) {
				printf("checkpointed %ld\n", id);
				for (;;)
					pause();
			}
			close(fd);
			close(logfd);
			printf("restarted\n");
		}
	}
	printf("sum %llu\n", sum);
	return 0;
}
