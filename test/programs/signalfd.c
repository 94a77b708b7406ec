// SPDX-License-Identifier: GPL-2.0-only
/*
 * signalfd: blocked signals queued before the dump are read through a
 * non-blocking signalfd after it, with their values; a second, blocking
 * signalfd with another mask sees only its own signal.
 *
 *   signalfd STEPS
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct signalfd_siginfo si;
	sigset_t all, one, two;
	int sfd1, sfd2;
	long steps, step;

	close_range(3, ~0U, 0);
	if (argc != 2) {
		fprintf(stderr, "usage: signalfd STEPS\n");
		return 2;
	}
	steps = atol(argv[1]);
	sigemptyset(&all);
	sigaddset(&all, SIGUSR1);
	sigaddset(&all, SIGUSR2);
	sigaddset(&all, SIGRTMIN);
	sigprocmask(SIG_BLOCK, &all, NULL);
	sigemptyset(&one);
	sigaddset(&one, SIGUSR1);
	sigaddset(&one, SIGRTMIN);
	sigemptyset(&two);
	sigaddset(&two, SIGUSR2);
	sfd1 = signalfd(-1, &one, SFD_NONBLOCK);
	sfd2 = signalfd(-1, &two, 0);
	if (sfd1 < 0 || sfd2 < 0)
		return 1;
	if (sigqueue(getpid(), SIGUSR1, (union sigval){ .sival_int = 11 }) < 0 ||
	    sigqueue(getpid(), SIGRTMIN, (union sigval){ .sival_int = 21 }) < 0 ||
	    sigqueue(getpid(), SIGRTMIN, (union sigval){ .sival_int = 22 }) < 0)
		return 1;

	for (step = 0; step < steps; step++) {
		struct timespec ts = { 0, 20 * 1000000L };
		sigset_t pending;

		if (step % 10 == 0) {
			sigpending(&pending);
			dprintf(1, "step %ld pending usr1 %d rtmin %d usr2 %d\n", step, sigismember(&pending, SIGUSR1),
				sigismember(&pending, SIGRTMIN), sigismember(&pending, SIGUSR2));
		}
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	while (read(sfd1, &si, sizeof(si)) == sizeof(si))
		dprintf(1, "signalfd 1: signal %s value %d code %s pid-ok %d\n",
			si.ssi_signo == (unsigned)SIGUSR1 ? "USR1" : si.ssi_signo == (unsigned)SIGRTMIN ? "RTMIN" : "other",
			si.ssi_int, si.ssi_code == SI_QUEUE ? "SI_QUEUE" : "other", si.ssi_pid == (unsigned)getpid());
	dprintf(1, "signalfd 1 then %s, nonblocking %d\n", errno == EAGAIN ? "EAGAIN" : "?", (fcntl(sfd1, F_GETFL) & O_NONBLOCK) != 0);
	kill(getpid(), SIGUSR2);
	if (read(sfd2, &si, sizeof(si)) != sizeof(si))
		return 1;
	dprintf(1, "signalfd 2: signal %s code %s\n", si.ssi_signo == (unsigned)SIGUSR2 ? "USR2" : "other",
		si.ssi_code == SI_USER ? "SI_USER" : "other");
	dprintf(1, "pid %d\n", (int)getpid());
	return 0;
}
