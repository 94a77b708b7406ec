// SPDX-License-Identifier: GPL-2.0-only
/*
 * kshell: run a command as the foreground job of an interactive shell on
 * a terminal of its own, as a user at a terminal would.
 *
 *   kshell CMD ARGS...
 *
 * kshell opens a pty and copies what its master shows to stdout; a child,
 * the "shell", leads a new session with the pty's slave as its
 * controlling terminal and stdio, and runs CMD in a process group of its
 * own as the terminal's foreground job.  kshell ends when the shell does,
 * with the job's status.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY), status;
	char name[64], buf[4096];
	pid_t shell;
	ssize_t n;

	if (argc < 2 || m < 0 || grantpt(m) || unlockpt(m) || ptsname_r(m, name, sizeof(name)))
		return 100;
	shell = fork();
	if (shell < 0)
		return 100;
	if (shell == 0) {
		pid_t job;
		int s;

		close(m);
		if (setsid() < 0 || (s = open(name, O_RDWR)) < 0)
			_exit(100);
		dup2(s, 0);
		dup2(s, 1);
		dup2(s, 2);
		if (s > 2)
			close(s);
		job = fork();
		if (job == 0) {
			sigset_t ttou;

			/* a new process group, made the foreground job, as a shell does */
			sigemptyset(&ttou);
			sigaddset(&ttou, SIGTTOU);
			sigprocmask(SIG_BLOCK, &ttou, NULL);
			if (setpgid(0, 0) || tcsetpgrp(0, getpid()))
				_exit(100);
			sigprocmask(SIG_UNBLOCK, &ttou, NULL);
			execvp(argv[1], argv + 1);
			_exit(127);
		}
		if (job < 0 || waitpid(job, &status, 0) < 0)
			_exit(100);
		_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	}
	while ((n = read(m, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
		if (n > 0 && write(1, buf, n) != n)
			break;
	if (waitpid(shell, &status, 0) < 0)
		return 100;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}
