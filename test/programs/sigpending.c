// SPDX-License-Identifier: GPL-2.0-only
/*
 * sigpending: blocked signals pending across the dump, for the process
 * (kill, sigqueue twice) and for the thread (tgkill, a queued real-time
 * signal), each delivered exactly once afterwards, with its siginfo.
 *
 *   sigpending STEPS
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t n_log;
static struct { int signo, code, value, pid_ok; } log_[16];

static void handler(int signo, siginfo_t *si, void *uc)
{
	(void)uc;
	if (n_log < 16)
		log_[n_log++] = (typeof(log_[0])){ signo, si->si_code, si->si_value.sival_int, si->si_pid == getpid() };
}

static const char *name(int signo)
{
	return signo == SIGUSR1 ? "USR1" : signo == SIGUSR2 ? "USR2" : signo == SIGRTMIN + 1 ? "RTMIN+1" :
		signo == SIGRTMIN + 2 ? "RTMIN+2" : "other";
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	sigset_t set, pending;
	siginfo_t si;
	long steps, step;
	int i, sigs[] = { SIGUSR1, SIGUSR2, SIGRTMIN + 1, SIGRTMIN + 2 };

	close_range(3, ~0U, 0);
	if (argc != 2) {
		fprintf(stderr, "usage: sigpending STEPS\n");
		return 2;
	}
	steps = atol(argv[1]);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = handler;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&set);
	for (i = 0; i < 4; i++) {
		sigaction(sigs[i], &sa, NULL);
		sigaddset(&set, sigs[i]);
	}
	sigprocmask(SIG_BLOCK, &set, NULL);
	kill(getpid(), SIGUSR1);
	kill(getpid(), SIGUSR1);	/* a standard signal is pending once */
	syscall(SYS_tgkill, getpid(), gettid(), SIGUSR2);
	sigqueue(getpid(), SIGRTMIN + 1, (union sigval){ .sival_int = 7 });
	sigqueue(getpid(), SIGRTMIN + 1, (union sigval){ .sival_int = 8 });
	memset(&si, 0, sizeof(si));
	si.si_signo = SIGRTMIN + 2;
	si.si_code = SI_QUEUE;
	si.si_pid = getpid();
	si.si_uid = getuid();
	si.si_value.sival_int = 9;
	if (syscall(SYS_rt_tgsigqueueinfo, getpid(), gettid(), SIGRTMIN + 2, &si) < 0)
		return 1;

	for (step = 0; step < steps; step++) {
		struct timespec ts = { 0, 20 * 1000000L };

		if (step % 10 == 0) {
			sigpending(&pending);
			dprintf(1, "step %ld pending", step);
			for (i = 0; i < 4; i++)
				dprintf(1, " %s %d", name(sigs[i]), sigismember(&pending, sigs[i]));
			dprintf(1, ", delivered %d\n", (int)n_log);
		}
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	for (i = 0; i < n_log; i++)
		dprintf(1, "delivered %s code %d value %d from self %d\n", name(log_[i].signo), log_[i].code,
			log_[i].signo >= SIGRTMIN ? log_[i].value : 0, log_[i].pid_ok);
	sigpending(&pending);
	dprintf(1, "%d delivered, still pending %d\n", (int)n_log, !sigisemptyset(&pending));
	dprintf(1, "pid %d\n", (int)getpid());
	return 0;
}
