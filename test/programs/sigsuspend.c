/*
 * Waits for SIGUSR2 in sigsuspend(2) with an empty mask; with "blocked",
 * SIGUSR2 is blocked outside the call (the race-free way), otherwise not
 * (as a pause(2) loop). Prints "waiting" once it is in the call and "woke"
 * once the handler ran and the call returned; exits 0. Without "blocked",
 * a tracer that lets it go with the call entered again by hand, after the
 * signal came while it was stopped in it, leaves it asleep for good: the
 * handler runs first and returns into the call.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

static volatile sig_atomic_t got;

static void on_usr2(int sig)
{
	(void)sig;
	got = 1;
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	sigset_t block, empty;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr2;
	sigaction(SIGUSR2, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR2);
	if (argc > 1 && !strcmp(argv[1], "blocked"))
		sigprocmask(SIG_BLOCK, &block, NULL);
	sigemptyset(&empty);
	printf("waiting\n");
	fflush(stdout);
	while (!got)
		sigsuspend(&empty);
	printf("woke\n");
	return 0;
}
