// SPDX-License-Identifier: GPL-2.0-only
/*
 * kshare: processes that share what clone(2) lets them share, and memory
 * a fork left shared, which the kernel backend must share again after
 * checkpoint/restart.
 *
 *   kshare
 *
 * The parent fills 64 MiB of private memory and maps one page of shared
 * anonymous memory, then makes:
 *   a  fork(2): it reads the 64 MiB (still shared copy-on-write with the
 *      parent), writes 16 pages of its own, never touches 8 pages the
 *      parent fills after the fork, and writes to the shared page;
 *   vm a clone(CLONE_VM) process, sharing the parent's memory;
 *   f  a clone(CLONE_FILES) process, sharing its fd table;
 *   s  a clone(CLONE_FS) process, sharing its cwd;
 *   h  a clone(CLONE_VM | CLONE_SIGHAND) process, sharing its handlers;
 * and last vfork(2)s a child that waits.  The vfork child prints "ready"
 * and a's pid; SIGUSR1 to a wakes it, a wakes the vfork child, which exits
 * with status 7; the parent comes out of vfork(2) with its pid.  Then each
 * process checks what it shares: a write by one is seen by the other, a
 * file opened or a cwd or handler changed by the parent is the child's
 * too, and a's memory is still shared with its parent page for page (the
 * system's anonymous memory in use grows by the 64 MiB when a writes them).  Prints "ok ..." or "FAIL ..." lines; the parent exits
 * with the number of failures.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define BIG (64 << 20)
#define PAGE 4096
#define OWN 16		/* pages a writes after the fork */
#define LATE 8		/* pages the parent fills after the fork */

static char *big, *late;
static volatile int *shared;	/* the shared anonymous page */
static volatile int vm_value;	/* CLONE_VM: the parent writes, vm reads */
static int failures;
static int go[5][2];		/* the parent wakes child i */
static int wake_vfork[2];

static void check(int ok, const char *what)
{
	printf("%s %s\n", ok ? "ok" : "FAIL", what);
	failures += !ok;
}

static void wait_go(int i)
{
	char c;

	if (read(go[i][0], &c, 1) != 1)
		_exit(100);
}

static void send_go(int i)
{
	if (write(go[i][1], "g", 1) != 1)
		_exit(100);
}

static int filled(const char *p, int pages, char v)
{
	int i;

	for (i = 0; i < pages * PAGE; i++)
		if (p[i] != v)
			return 0;
	return 1;
}

/* The system's anonymous memory in use (kB): pages a fork shares count once */
static long anon_kb(void)
{
	FILE *f, *refresh = fopen("/proc/sys/vm/stat_refresh", "w");
	char line[256];
	long kb = -1;

	/* fold the per-CPU counts in first (root only) */
	if (refresh) {
		fputs("1\n", refresh);
		fclose(refresh);
	}
	f = fopen("/proc/meminfo", "r");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "AnonPages: %ld", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

static int child_a(void)
{
	long before, after;
	sigset_t set;
	int sig, i;
	long sum = 0;

	for (i = 0; i < BIG; i += PAGE)
		sum += big[i];
	memset(big, 'a', OWN * PAGE);	/* its own copies of the first pages */
	shared[1] = 1;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	send_go(0);		/* tell the parent a is set */
	sigwait(&set, &sig);
	if (write(wake_vfork[1], "w", 1) != 1)
		return 100;
	wait_go(0);

	check(filled(big, OWN, 'a') && filled(big + OWN * PAGE, 1, 'p') &&
	      filled(big + BIG - PAGE, 1, 'p'), "a: its own pages and its parent's");
	/*
	 * Writing the pages it shares with its parent makes copies of them:
	 * the system's anonymous memory grows by as much only if they were
	 * still shared, not if a had copies of its own already.
	 */
	before = anon_kb();
	memset(big + OWN * PAGE, 'b', BIG - OWN * PAGE);
	after = anon_kb();
	printf("a: the anonymous memory in use went from %ld to %ld kB\n", before, after);
	check(before > 0 && after - before > (BIG - OWN * PAGE) / 1024 / 2,
	      "a: its memory was still shared with its parent's: writing it makes copies");
	check(filled(late, LATE, 0), "a: the pages its parent filled after the fork are not its");
	check(shared[0] == 2, "a: sees the parent's write to the shared page");
	shared[1] = 3;
	(void)sum;
	return failures;
}

static char stacks[4][1 << 16];

static int child_vm(void *arg)
{
	(void)arg;
	wait_go(1);
	check(vm_value == 5, "vm: sees the parent's write to their one address space");
	vm_value = 6;
	return 0;	/* its failures are the parent's: they share them */
}

static int child_f(void *arg)
{
	int fd;

	(void)arg;
	wait_go(2);
	fd = shared[2];
	check(fcntl(fd, F_GETFD) >= 0, "f: has the fd the parent opened in their one table");
	return failures;
}

static int child_s(void *arg)
{
	char cwd[256];

	(void)arg;
	wait_go(3);
	check(getcwd(cwd, sizeof(cwd)) && !strcmp(cwd, "/tmp"),
	      "s: in the cwd the parent changed to");
	return failures;
}

static void on_usr2(int sig)
{
	(void)sig;
}

static int child_h(void *arg)
{
	struct sigaction sa;

	(void)arg;
	wait_go(4);
	sigaction(SIGUSR2, NULL, &sa);
	check(sa.sa_handler == on_usr2, "h: has the handler the parent set in their one table");
	return 0;	/* its failures are the parent's: they share them */
}

int main(void)
{
	static int (*const fns[4])(void *) = { child_vm, child_f, child_s, child_h };
	static const int flags[4] = { CLONE_VM, CLONE_FILES, CLONE_FS, CLONE_VM | CLONE_SIGHAND };
	pid_t a, kids[4], v;
	char ready[64], c;
	int i, status;

	setvbuf(stdout, NULL, _IONBF, 0);
	big = mmap(NULL, BIG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	late = mmap(NULL, LATE * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	shared = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (big == MAP_FAILED || late == MAP_FAILED || shared == MAP_FAILED)
		return 100;
	memset(big, 'p', BIG);
	for (i = 0; i < 5; i++)
		if (pipe(go[i]))
			return 100;
	if (pipe(wake_vfork))
		return 100;
	a = fork();
	if (a == 0)
		_exit(child_a());
	wait_go(0);
	memset(late, 'p', LATE * PAGE);
	for (i = 0; i < 4; i++) {
		kids[i] = clone(fns[i], stacks[i] + sizeof(stacks[i]), flags[i] | SIGCHLD, NULL);
		if (kids[i] < 0)
			return 100;
	}
	snprintf(ready, sizeof(ready), "ready %d\n", a);
	v = vfork();
	if (v == 0) {
		/* shares our memory and stack until it exits: raw system calls only */
		shared[3] = getpid();
		if (write(1, ready, strlen(ready)) < 0 || read(wake_vfork[0], &c, 1) != 1)
			_exit(100);
		_exit(7);
	}
	check(v == shared[3], "parent: vfork returned the child's pid");
	check(waitpid(v, &status, 0) == v && WIFEXITED(status) && WEXITSTATUS(status) == 7,
	      "parent: the vfork child exited with 7");

	shared[0] = 2;
	send_go(0);
	vm_value = 5;
	send_go(1);
	shared[2] = open("/dev/null", O_RDONLY);
	send_go(2);
	if (chdir("/tmp"))
		return 100;
	send_go(3);
	signal(SIGUSR2, on_usr2);
	send_go(4);
	for (i = 0; i < 4; i++)
		check(waitpid(kids[i], &status, __WALL) == kids[i] && WIFEXITED(status) &&
		      !WEXITSTATUS(status), "parent: a sharing child ended well");
	check(vm_value == 6, "parent: sees vm's write to their one address space");
	check(waitpid(a, &status, 0) == a && WIFEXITED(status) && !WEXITSTATUS(status),
	      "parent: a ended well");
	check(shared[1] == 3, "parent: sees a's write to the shared page");
	check(filled(big, 1, 'p') && filled(late, LATE, 'p'), "parent: its own memory");
	return failures;
}
