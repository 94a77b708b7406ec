// SPDX-License-Identifier: GPL-2.0-only
/*
 * ptyrun: run a command as the foreground job of a small interactive
 * session on a new pseudo-terminal, the way a terminal emulator and a
 * job-control shell would, and type lines at it.
 *
 *   ptyrun OUT COMMAND [ARG...]
 *
 * A session leader (the "shell") gets the pty's slave as its controlling
 * terminal, with echo off, and starts COMMAND in a process group of its
 * own, on the slave as stdin, stdout and stderr, as the terminal's
 * foreground job. ptyrun itself holds the master: every 100 ms it types
 * "line N" and appends everything the terminal shows to OUT, until the
 * job ends; it exits with the job's status.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static int shell(const char *slave, char **cmd)
{
	struct termios t;
	int fd, status;
	pid_t job;

	setsid();
	fd = open(slave, O_RDWR);
	if (fd < 0 || tcgetattr(fd, &t))
		return 125;
	t.c_lflag &= ~ECHO;
	tcsetattr(fd, TCSANOW, &t);
	job = fork();
	if (job == 0) {
		setpgid(0, 0);
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		close(fd);
		signal(SIGTTOU, SIG_DFL);
		execvp(cmd[0], cmd);
		_exit(127);
	}
	setpgid(job, job);
	signal(SIGTTOU, SIG_IGN);
	tcsetpgrp(fd, job);
	while (waitpid(job, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int main(int argc, char **argv)
{
	int master, out, status = 0, i = 0;
	pid_t leader;

	if (argc < 3) {
		fprintf(stderr, "usage: ptyrun OUT COMMAND [ARG...]\n");
		return 2;
	}
	out = open(argv[1], O_WRONLY | O_CREAT | O_APPEND, 0644);
	master = posix_openpt(O_RDWR | O_NOCTTY);
	if (out < 0 || master < 0 || grantpt(master) || unlockpt(master))
		return perror("ptyrun"), 1;
	leader = fork();
	if (leader == 0) {
		const char *slave = ptsname(master);

		close(master);
		_exit(shell(slave, argv + 2));
	}
	for (;;) {
		struct pollfd p = { master, POLLIN, 0 };
		char buf[4096];
		ssize_t n;

		if (poll(&p, 1, 100) > 0) {
			n = read(master, buf, sizeof(buf));
			if (n > 0 && write(out, buf, n) != n)
				return 1;
			if (n <= 0 && waitpid(leader, &status, WNOHANG) == leader)
				break;
			continue;
		}
		if (waitpid(leader, &status, WNOHANG) == leader)
			break;
		dprintf(master, "line %d\n", i++);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
