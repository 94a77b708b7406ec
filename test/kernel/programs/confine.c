// SPDX-License-Identifier: GPL-2.0-only
/*
 * confine: state that confines a task, or that restart must not take from
 * the image as it is, checked by the task itself after restart.
 *
 *   confine MODE
 *
 * Every mode prints "ready" once its state is set up, waits for SIGUSR1,
 * checks itself, prints one "ok ..." or "FAIL ..." line per check and
 * exits with the number of failures.
 *
 *   seccomp  no_new_privs and two seccomp filters: getpriority(2) fails
 *            with errno 42 (first filter), getpgid(2) with 43 (second);
 *            afterwards /proc/self/status says NoNewPrivs 1, Seccomp 2,
 *            Seccomp_filters 2, and both calls still fail that way
 *   nnp      no_new_privs only: NoNewPrivs 1, Seccomp 0
 *   auxv     checks that /proc/self/auxv is whole pairs ending with its
 *            AT_NULL pair, within the kernel's saved_auxv (52 words)
 *   wait     nothing: for tests that change the image, not the task
 *   hwpoison poisons one of three anonymous pages (MADV_HWPOISON, needs
 *            root): a checkpoint cannot read it and must fail
 *   mseal    seals a mapping (mseal(2)), which the engine refuses
 *
 * The last two never check anything: they only wait to be refused.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define AUXV_WORDS 52	/* AT_VECTOR_SIZE on x86_64 */
#define NR_mseal 462	/* x86_64, since Linux 6.10 */

static int failures;
static volatile sig_atomic_t go;

static void check(int ok, const char *what)
{
	printf("%s %s\n", ok ? "ok" : "FAIL", what);
	failures += !ok;
}

static void on_usr1(int sig)
{
	(void)sig;
	go = 1;
}

static void on_sigbus(int sig)
{
	(void)sig;
}

/* The value of "Name:" in /proc/self/status, or -1 */
static long status_field(const char *name)
{
	char line[256];
	size_t len = strlen(name);
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, name, len) && line[len] == ':')
			v = strtol(line + len + 1, NULL, 10);
	fclose(f);
	return v;
}

/* A filter that fails system call @nr with @err and allows every other */
static void install_filter(int nr, int err)
{
	struct sock_filter insns[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | err),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(insns) / sizeof(insns[0]), .filter = insns };

	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog)) {
		perror("seccomp");
		exit(2);
	}
}

/* errno of system call @nr, -1 if it succeeded */
static int errno_of(long nr, long a, long b)
{
	return syscall(nr, a, b) < 0 ? errno : -1;
}

static void check_filters(void)
{
	check(status_field("NoNewPrivs") == 1, "NoNewPrivs 1");
	check(status_field("Seccomp") == 2, "Seccomp 2 (filter mode)");
	check(status_field("Seccomp_filters") == 2, "Seccomp_filters 2");
	check(errno_of(SYS_getpriority, PRIO_PROCESS, 0) == 42, "getpriority fails with 42 (first filter)");
	check(errno_of(SYS_getpgid, 0, 0) == 43, "getpgid fails with 43 (second filter)");
	check(errno_of(SYS_getppid, 0, 0) == -1, "getppid is allowed");
}

static void check_auxv(void)
{
	unsigned long auxv[AUXV_WORDS + 2];
	ssize_t n;
	FILE *f = fopen("/proc/self/auxv", "r");

	if (!f) {
		check(0, "/proc/self/auxv opens");
		return;
	}
	n = fread(auxv, 1, sizeof(auxv), f);
	fclose(f);
	printf("auxv: %zd bytes\n", n);
	check(n > 0 && n % (2 * sizeof(long)) == 0, "auxv is whole pairs");
	check(n > 0 && n <= AUXV_WORDS * (ssize_t)sizeof(long), "auxv within saved_auxv");
	check(n >= 16 && auxv[n / sizeof(long) - 2] == 0 && auxv[n / sizeof(long) - 1] == 0,
	      "auxv ends with its AT_NULL pair");
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	sigset_t usr1, old;

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGUSR1, on_usr1);
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, &old);

	if (!strcmp(mode, "seccomp") || !strcmp(mode, "nnp")) {
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) {
			perror("PR_SET_NO_NEW_PRIVS");
			return 2;
		}
		if (!strcmp(mode, "seccomp")) {
			install_filter(SYS_getpriority, 42);
			install_filter(SYS_getpgid, 43);
		}
	} else if (!strcmp(mode, "hwpoison")) {
		long page = sysconf(_SC_PAGESIZE);
		char *p = mmap(NULL, 3 * page, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		/* the kernel tells the poisoner at once, with a SIGBUS */
		signal(SIGBUS, on_sigbus);
		if (p == MAP_FAILED)
			return 2;
		memset(p, 0x5a, 3 * page);
		if (madvise(p + page, page, MADV_HWPOISON)) {
			perror("MADV_HWPOISON");
			return 2;
		}
	} else if (!strcmp(mode, "mseal")) {
		long page = sysconf(_SC_PAGESIZE);
		void *p = mmap(NULL, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED || syscall(NR_mseal, p, page, 0)) {
			perror("mseal");
			return 2;
		}
	} else if (strcmp(mode, "auxv") && strcmp(mode, "wait")) {
		fprintf(stderr, "usage: confine seccomp|nnp|auxv|wait|hwpoison|mseal\n");
		return 2;
	}

	printf("ready\n");
	while (!go)
		sigsuspend(&old);

	if (!strcmp(mode, "seccomp")) {
		check_filters();
	} else if (!strcmp(mode, "nnp")) {
		check(status_field("NoNewPrivs") == 1, "NoNewPrivs 1");
		check(status_field("Seccomp") == 0, "Seccomp 0");
	} else if (!strcmp(mode, "auxv")) {
		check_auxv();
	}
	return failures;
}
