// SPDX-License-Identifier: GPL-2.0-only
/*
 * kpidns: a chain of three processes (root -> child -> grandchild) that
 * checks its pids after a restart into a fresh pid namespace.
 *
 *   kpidns
 *
 * Each process records its pid and its parent's; the grandchild prints
 * "ready", and all wait for SIGUSR1, which the root passes down the
 * chain.  Then each checks that getpid() and (but for the root,
 * whose parent is whoever restarted it) getppid() are what they were,
 * and that kill(pid, 0) finds its parent and children by those pids;
 * the root prints "root's parent is pid N" and "ok ..." or "FAIL ..."
 * lines, and exits with the number of failures in the chain.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t go;

static void on_usr1(int sig)
{
	(void)sig;
	go = 1;
}

int main(void)
{
	pid_t pid[3], ppid[3], below = 0;
	int level, failures = 0, status;
	sigset_t none;
	char what[128];

	setvbuf(stdout, NULL, _IONBF, 0);
	signal(SIGUSR1, on_usr1);
	sigemptyset(&none);
	for (level = 0; level < 3; level++) {
		pid[level] = getpid();
		ppid[level] = getppid();
		if (level == 2)
			break;
		below = fork();
		if (below < 0)
			return 100;
		if (below)
			break;
	}
	if (level == 2)
		printf("ready\n");
	while (!go)
		sigsuspend(&none);
	if (below)
		kill(below, SIGUSR1);

	snprintf(what, sizeof(what), "level %d: pid %d", level, pid[level]);
	failures += getpid() != pid[level];
	printf("%s %s\n", getpid() == pid[level] ? "ok" : "FAIL", what);
	if (level) {
		snprintf(what, sizeof(what), "level %d: parent %d, found by its pid", level,
			 ppid[level]);
		failures += getppid() != ppid[level] || kill(ppid[level], 0);
		printf("%s %s\n", getppid() == ppid[level] && !kill(ppid[level], 0) ? "ok" : "FAIL",
		       what);
	} else {
		printf("root's parent is pid %d\n", getppid());
	}
	if (below) {
		failures += waitpid(below, &status, 0) != below || !WIFEXITED(status);
		failures += WIFEXITED(status) ? WEXITSTATUS(status) : 1;
	}
	return failures;
}
