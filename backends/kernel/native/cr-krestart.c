// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-krestart: restart one process from an in-kernel checkpoint image.
 *
 *   cr-krestart [--pid PID] IMAGE LOGFILE
 *
 * Creates the task with clone_with_pids(2) (pid PID, or any pid if PID is
 * 0 or absent); the task opens IMAGE and calls restart(0, fd,
 * RESTART_TASKSELF, logfd), which, when it succeeds, returns into the
 * checkpointed program instead of here.  The engine's log goes through a
 * pipe to this process, which appends it to LOGFILE and learns from it
 * whether the restart worked.  Like cr-mktree it then reports on fd 3
 * ("ready PID" or "error PID: why"), stays the parent of the restarted
 * task and exits with its status.
 *
 * The kernel backend (backends/kernel) decodes the image and passes the
 * pid; this program only does what Node cannot: fork with a chosen pid.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define NR_restart		549
#define NR_clone_with_pids	550
#define RESTART_TASKSELF	0x1
#define STATUS_FD		3

struct clone_pid_set {
	uint32_t num_pids;
	uint32_t reserved;
	uint64_t pids;
};

static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (len > 0 && write(STATUS_FD, buf, len) < 0)
		_exit(125);
}

int main(int argc, char **argv)
{
	struct clone_pid_set set = { 0 };
	const char *image, *logpath;
	char log[8192];
	size_t loglen = 0;
	int pipefd[2], logfile, status, i = 1;
	pid_t pid = 0, child;
	ssize_t n;

	if (argc > 2 && !strcmp(argv[1], "--pid")) {
		pid = atoi(argv[2]);
		i = 3;
	}
	if (argc - i != 2) {
		fprintf(stderr, "usage: cr-krestart [--pid PID] IMAGE LOGFILE\n");
		return 2;
	}
	image = argv[i];
	logpath = argv[i + 1];
	logfile = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (logfile < 0 || pipe2(pipefd, O_CLOEXEC) < 0) {
		report("error %d: %s: %s\n", pid, logpath, strerror(errno));
		return 125;
	}
	if (pid > 0) {
		set.num_pids = 1;
		set.pids = (uintptr_t)&pid;
	}
	child = syscall(NR_clone_with_pids, SIGCHLD, 0, NULL, NULL, &set);
	if (child < 0) {
		report("error %d: clone_with_pids: %s\n", pid,
		       errno == EBUSY ? "pid is taken" : strerror(errno));
		return 125;
	}
	if (child == 0) {
		int fd;
		long ret;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		fd = open(image, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			dprintf(pipefd[1], "cr-krestart: %s: %s\n", image, strerror(errno));
			_exit(125);
		}
		ret = syscall(NR_restart, 0, fd, RESTART_TASKSELF, pipefd[1]);
		/* only reached if restart failed before changing this task */
		dprintf(pipefd[1], "cr-krestart: restart: %s (%ld)\n", strerror(errno), ret);
		_exit(125);
	}
	close(pipefd[1]);
	while ((n = read(pipefd[0], log + loglen, sizeof(log) - 1 - loglen)) > 0 ||
	       (n < 0 && errno == EINTR)) {
		if (n > 0 && write(logfile, log + loglen, n) < 0)
			break;
		if (n > 0)
			loglen += n;
		if (loglen == sizeof(log) - 1)
			loglen = 0;	/* only the tail matters */
	}
	log[loglen] = 0;
	close(pipefd[0]);

	if (!strstr(log, "restarted pid")) {
		char *line, *last = NULL, *why = NULL, *save = NULL;

		waitpid(child, &status, 0);
		/* the engine's own error line says most; else the last line */
		for (line = strtok_r(log, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save)) {
			last = line;
			if (strstr(line, "error") && !why)
				why = line;
		}
		last = why ? why : last ? last : "";
		report("error %d: %s\n", pid, *last ? last : "restart failed");
		return 125;
	}
	report("ready %d\n", child);
	close(STATUS_FD);

	while (waitpid(child, &status, 0) < 0)
		if (errno != EINTR)
			return 125;
	if (WIFSIGNALED(status)) {
		signal(WTERMSIG(status), SIG_DFL);
		prctl(PR_SET_DUMPABLE, 0);
		kill(getpid(), WTERMSIG(status));
	}
	return WEXITSTATUS(status);
}
