// SPDX-License-Identifier: GPL-2.0-only
/*
 * refuse: holds a kind of state the user backend must refuse to dump,
 * naming it, rather than lose on restore; prints "ready" and sleeps.
 *
 *   refuse seccomp|mqueue|threadcreds
 *
 * seccomp: a seccomp filter that allows everything; mqueue: an open POSIX
 * message queue at fd 3; threadcreds: a second thread that changed its
 * own uid (the raw syscall, which glibc would apply to every thread).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <mqueue.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static void *other_uid(void *arg)
{
	(void)arg;
	syscall(SYS_setresuid, 1000, 1000, 1000);
	for (;;)
		pause();
	return NULL;
}

int main(int argc, char **argv)
{
	close_range(3, ~0U, 0);
	if (argc != 2)
		return 2;
	if (!strcmp(argv[1], "seccomp")) {
		struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
		struct sock_fprog prog = { 1, &allow };

		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
			return perror("seccomp"), 1;
	} else if (!strcmp(argv[1], "mqueue")) {
		char name[64];

		snprintf(name, sizeof(name), "/cr-refuse-%d", getpid());
		if (mq_open(name, O_RDWR | O_CREAT, 0600, NULL) < 0)
			return perror("mq_open"), 1;
		mq_unlink(name);
	} else if (!strcmp(argv[1], "threadcreds")) {
		pthread_t t;

		if (pthread_create(&t, NULL, other_uid, NULL))
			return 1;
		usleep(100000);
	} else {
		return 2;
	}
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}
