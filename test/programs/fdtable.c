// SPDX-License-Identifier: GPL-2.0-only
/*
 * fdtable: a parent and a child created with clone(CLONE_FILES), not
 * threads, sharing one fd table.
 *
 *   fdtable TICKS
 *
 * Every 100 ms the parent opens /dev/null at a new descriptor and tells
 * the child which over a pipe; the child checks that the descriptor
 * exists in its table too and answers over another pipe.  After TICKS
 * the parent checks with kcmp(2) that the table is still one, ends the
 * child, and prints its pid.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/kcmp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int to_child[2], to_parent[2];

static int child(void *arg)
{
	int fd;

	(void)arg;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	while (read(to_child[0], &fd, sizeof(fd)) == sizeof(fd)) {
		int seen = fcntl(fd, F_GETFD) >= 0;

		if (write(to_parent[1], &seen, sizeof(seen)) != sizeof(seen))
			break;
	}
	return 0;
}

int main(int argc, char **argv)
{
	size_t sz = 64 << 10;
	char *stack = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int i, ticks, seen, status;
	pid_t pid;

	close_range(3, ~0U, 0);
	if (argc != 2 || stack == MAP_FAILED) {
		fprintf(stderr, "usage: fdtable TICKS\n");
		return 2;
	}
	ticks = atoi(argv[1]);
	if (pipe(to_child) || pipe(to_parent))
		return perror("pipe"), 1;
	pid = clone(child, stack + sz, CLONE_FILES | SIGCHLD, NULL);
	if (pid < 0)
		return perror("clone"), 1;
	for (i = 0; i < ticks; i++) {
		int fd = 100 + i;

		if (dup2(open("/dev/null", O_RDONLY | O_CLOEXEC), fd) < 0 ||
		    write(to_child[1], &fd, sizeof(fd)) != sizeof(fd) ||
		    read(to_parent[0], &seen, sizeof(seen)) != sizeof(seen))
			return perror("tick"), 1;
		printf("tick %d: the child %s fd %d\n", i, seen ? "sees" : "does NOT see", fd);
		fflush(stdout);
		usleep(100000);
	}
	printf("one table: %s\n", syscall(SYS_kcmp, getpid(), pid, KCMP_FILES, 0, 0) == 0 ? "yes" : "NO");
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	printf("pid %d\n", getpid());
	return 0;
}
