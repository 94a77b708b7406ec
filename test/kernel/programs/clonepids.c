// SPDX-License-Identifier: GPL-2.0-only
/*
 * clonepids: check clone_with_pids(2)'s linux-cr semantics.  Prints one
 * line per check, "ok NAME" or "FAIL NAME: why"; exits 1 on any failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define NR_clone_with_pids 550

struct clone_pid_set {
	uint32_t num_pids;
	uint32_t reserved;
	uint64_t pids;
};

static int failed;

static long cwp(pid_t *pids, unsigned int n)
{
	struct clone_pid_set set = { .num_pids = n, .pids = (uintptr_t)pids };

	return syscall(NR_clone_with_pids, SIGCHLD, 0, NULL, NULL, &set);
}

static void check(const char *name, int ok, const char *why)
{
	printf(ok ? "ok %s\n" : "FAIL %s: %s\n", name, why);
	failed |= !ok;
}

static pid_t free_pid(void)
{
	pid_t p;

	for (p = 30000; p < 32000; p++)
		if (kill(p, 0) < 0 && errno == ESRCH)
			return p;
	return -1;
}

int main(void)
{
	pid_t want = free_pid(), got, self = getpid(), two[2];
	int status;

	got = cwp(&want, 1);
	if (got == 0)
		_exit(getpid() == want ? 0 : 1);
	check("chosen pid", got == want && waitpid(got, &status, 0) == got &&
	      WIFEXITED(status) && WEXITSTATUS(status) == 0, strerror(errno));

	check("taken pid gives EBUSY", cwp(&self, 1) < 0 && errno == EBUSY, strerror(errno));

	two[0] = free_pid();
	two[1] = two[0] + 1;
	check("more pids than levels gives EINVAL", cwp(two, 2) < 0 && errno == EINVAL,
	      strerror(errno));

	if (setresuid(65534, 65534, 65534) == 0) {
		want = free_pid();
		check("unprivileged gives EPERM", cwp(&want, 1) < 0 && errno == EPERM,
		      strerror(errno));
	}
	return failed;
}
