// SPDX-License-Identifier: GPL-2.0-only
/*
 * sandbox: pid 1 of the user-backend fuzzer's pid namespace
 * (test/user/fuzz/run.ts). It runs its command as its only child and reaps
 * every task orphaned into the namespace meanwhile (the children of a
 * restored tree once it is killed), so that none keeps a pid a later
 * restore needs; it ends with the command's status, and the kernel kills
 * whatever is left in the namespace with it.
 *
 *   sandbox CMD ARGS...
 */
#include <errno.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	pid_t cmd, got;
	int status;

	if (argc < 2) {
		fprintf(stderr, "usage: sandbox CMD ARGS...\n");
		return 2;
	}
	cmd = fork();
	if (cmd < 0)
		return 125;
	if (cmd == 0) {
		execvp(argv[1], argv + 1);
		perror(argv[1]);
		_exit(127);
	}
	for (;;) {
		got = wait(&status);
		if (got == cmd)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		if (got < 0 && errno != EINTR)
			return 125;
	}
}
