// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-mktree: create a tree of placeholder tasks with chosen pids.
 *
 * This is the only part of cr-lab's restore path that forks: Node cannot
 * fork itself safely, and a task's pid can only be chosen at clone time.
 *
 *   cr-mktree PID:PPID [PID:PPID ...]
 *
 * The first argument is the root (its PPID is ignored); every other task
 * names a parent listed before it.  Each task is created with clone3()'s
 * set_tid, reports "ready PID" on fd 3 and then waits in pause() until the
 * restorer (which seizes it with ptrace) replaces its whole state.  A task
 * whose pid is taken reports "error PID: ..." instead and the tree exits.
 *
 * cr-mktree itself stays the parent of the root and, when the root ends,
 * exits with the root's status, so `cr restore` can report it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
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

#define STATUS_FD 3
#define MAX_TASKS 4096

struct task {
	pid_t pid;
	pid_t ppid;
};

static struct task tasks[MAX_TASKS];
static int nr_tasks;

static void report(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (len > 0 && write(STATUS_FD, buf, len) < 0)
		_exit(125);
}

static pid_t clone_with_pid(pid_t pid)
{
	struct clone_args args;
	pid_t set_tid = pid;

	memset(&args, 0, sizeof(args));
	args.exit_signal = SIGCHLD;
	args.set_tid = (uintptr_t)&set_tid;
	args.set_tid_size = 1;
	return syscall(SYS_clone3, &args, sizeof(args));
}

/* Runs in task @idx: create its children, then wait to be restored. */
static void __attribute__((noreturn)) become_task(int idx)
{
	int i;

	for (i = idx + 1; i < nr_tasks; i++) {
		pid_t child;

		if (tasks[i].ppid != tasks[idx].pid)
			continue;
		child = clone_with_pid(tasks[i].pid);
		if (child < 0) {
			report("error %d: %s\n", tasks[i].pid,
			       errno == EEXIST ? "pid is taken" : strerror(errno));
			_exit(125);
		}
		if (child == 0) {
			become_task(i);
		}
	}
	report("ready %d\n", tasks[idx].pid);
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	pid_t root;
	int i, status, devnull;

	if (argc < 2 || argc - 1 > MAX_TASKS) {
		fprintf(stderr, "usage: cr-mktree PID:PPID [PID:PPID ...]\n");
		return 2;
	}
	for (i = 1; i < argc; i++) {
		struct task *t = &tasks[nr_tasks++];

		if (sscanf(argv[i], "%d:%d", &t->pid, &t->ppid) != 2 || t->pid <= 0) {
			fprintf(stderr, "cr-mktree: bad task '%s'\n", argv[i]);
			return 2;
		}
	}

	root = clone_with_pid(tasks[0].pid);
	if (root < 0) {
		report("error %d: %s\n", tasks[0].pid,
		       errno == EEXIST ? "pid is taken" : strerror(errno));
		return 125;
	}
	if (root == 0) {
		/* A restored tree must not outlive a restorer that died early. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		become_task(0);
	}
	close(STATUS_FD);
	/*
	 * Only the restored tasks may hold on to our caller's stdio: a caller
	 * that reads it until EOF must not wait for us, the silent parent.
	 */
	devnull = open("/dev/null", O_RDWR);
	if (devnull >= 0) {
		dup2(devnull, 0);
		dup2(devnull, 1);
		dup2(devnull, 2);
		if (devnull > 2)
			close(devnull);
	}

	while (waitpid(root, &status, 0) < 0)
		if (errno != EINTR)
			return 125;
	if (WIFSIGNALED(status)) {
		signal(WTERMSIG(status), SIG_DFL);
		prctl(PR_SET_DUMPABLE, 0);	/* no core file of our own */
		kill(getpid(), WTERMSIG(status));
	}
	return WEXITSTATUS(status);
}
