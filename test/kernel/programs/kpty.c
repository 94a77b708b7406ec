// SPDX-License-Identifier: GPL-2.0-only
/*
 * kpty: terminals across checkpoint/restart.
 *
 *   kpty pty DIR
 *	A parent holds a pty's master; its child leads a session whose
 *	controlling terminal is the pty's slave (termios and window size
 *	set), and the grandchild, in a process group of its own, is the
 *	terminal's foreground job and talks through /dev/tty.  The parent
 *	and the grandchild play ping-pong through the pty.  After SIGUSR1
 *	(to the parent, after the restart) all three check the terminal and
 *	play again.
 *
 *   kpty job DIR
 *	Run as the foreground job of a shell on a terminal (kshell): sets
 *	the terminal's termios and window size, opens /dev/tty, prints
 *	"ready PID"; after SIGUSR1 (after a restart as a shell job, on
 *	another terminal) checks that it is that terminal's foreground job,
 *	with the settings it made.
 *
 * Each prints "ok ..." or "FAIL ..." lines; the exit status is the number
 * of failures.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "kcheck.h"


static void wait_usr1(sigset_t *old)
{
	sigset_t block;

	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_BLOCK, &block, old);
	signal(SIGUSR1, on_usr1);
}

/* The settings the test gives the terminal, and checks */
static void set_term(int fd)
{
	struct winsize ws = { 33, 111, 0, 0 };
	struct termios t;

	need(!tcgetattr(fd, &t));
	t.c_lflag &= ~ECHO;
	t.c_cc[VEOF] = 4;
	t.c_cc[VERASE] = 8;
	cfsetospeed(&t, B38400);
	need(!tcsetattr(fd, TCSANOW, &t) && !ioctl(fd, TIOCSWINSZ, &ws));
}

static int term_ok(int fd)
{
	struct winsize ws;
	struct termios t;

	return !tcgetattr(fd, &t) && !(t.c_lflag & ECHO) && (t.c_lflag & ICANON) &&
	       t.c_cc[VERASE] == 8 && cfgetospeed(&t) == B38400 && !ioctl(fd, TIOCGWINSZ, &ws) &&
	       ws.ws_row == 33 && ws.ws_col == 111;
}

static int read_line(int fd, char *buf, int max)
{
	int n = 0;

	while (n < max - 1 && read(fd, buf + n, 1) == 1 && buf[n] != '\n')
		n++;
	buf[n] = 0;
	return n;
}

/* The grandchild: the foreground job, through /dev/tty */
static void jobctl(int sid, int restarted)
{
	int tty = open("/dev/tty", O_RDWR);
	char line[64];

	need(tty >= 0);
	for (;;) {
		if (read_line(tty, line, sizeof(line)) < 0 || !strcmp(line, "quit"))
			break;
		if (!strcmp(line, "check")) {
			restarted = 1;
			check(isatty(tty) && tcgetpgrp(tty) == getpgrp() && getpgrp() == getpid(),
			      "the grandchild is the foreground job");
			check(getsid(0) == sid && tcgetsid(tty) == sid, "in its session, whose terminal it is");
			check(term_ok(tty), "termios and window size");
			continue;
		}
		if (dprintf(tty, "pong %s\n", line) < 0)
			break;
	}
	_exit(restarted ? failures : 100);
}

static void mode_pty(void)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY), status, n, up[2];
	char name[64], again[64], line[64];
	pid_t child;
	sigset_t old;
	struct termios mt;

	need(m >= 0 && !grantpt(m) && !unlockpt(m) && !ptsname_r(m, name, sizeof(name)));
	need(!tcgetattr(m, &mt));
	wait_usr1(&old);
	need(!pipe(up));
	child = fork();
	need(child >= 0);
	if (child == 0) {
		/* the session leader, the pty its terminal; its child the foreground job */
		int s, fg[2];
		pid_t job;
		char c;

		close(m);
		close(up[0]);
		need(setsid() > 0);
		s = open(name, O_RDWR);
		need(s >= 0);
		set_term(s);
		need(!pipe(fg));
		job = fork();
		need(job >= 0);
		if (job == 0) {
			close(fg[1]);
			need(!setpgid(0, 0) && read(fg[0], &c, 1) == 1);
			jobctl(getsid(0), 0);
		}
		need(!setpgid(job, job) && !tcsetpgrp(s, job) && write(fg[1], "g", 1) == 1);
		need(write(up[1], "u", 1) == 1);
		sigsuspend(&old);
		check(tcgetpgrp(s) == job && tcgetsid(s) == getpid(), "the session leader's terminal");
		waitpid(job, &status, 0);
		check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the grandchild ends well");
		_exit(failures);
	}
	close(up[1]);
	need(read(up[0], line, 1) == 1);	/* the terminal is set up */
	need(dprintf(m, "one\n") > 0 && read_line(m, line, sizeof(line)) > 0);
	need(!strncmp(line, "pong one", 8));
	printf("ready\n");
	sigsuspend(&old);

	kill(child, SIGUSR1);
	check(!ptsname_r(m, again, sizeof(again)) && !strcmp(name, again), "the pty has its index");
	{
		struct termios t;

		/* tcgetattr(3) on a master shows its slave's */
		check(!tcgetattr(m, &t) && !(t.c_lflag & ECHO) && t.c_iflag == mt.c_iflag,
		      "the slave's termios, through the master");
	}
	n = dprintf(m, "check\ntwo\n");
	check(n > 0 && read_line(m, line, sizeof(line)) > 0 && !strncmp(line, "pong two", 8),
	      "ping-pong through the pty again");
	need(dprintf(m, "quit\n") > 0);
	waitpid(child, &status, 0);
	check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child ends well");
}

static void mode_job(void)
{
	int tty = open("/dev/tty", O_RDWR), sid = getsid(0);
	char name[64];
	sigset_t old;

	need(tty >= 0 && isatty(0) && tcgetpgrp(0) == getpgrp());
	set_term(0);
	wait_usr1(&old);
	printf("ready %d\n", getpid());
	sigsuspend(&old);

	check(isatty(0) && isatty(1) && !ttyname_r(0, name, sizeof(name)) && !strncmp(name, "/dev/pts/", 9),
	      "stdio is the restarter's terminal");
	check(tcgetpgrp(0) == getpgrp(), "the foreground job of it");
	check(getsid(0) != sid && tcgetsid(0) == getsid(0), "in the restarter's session");
	check(term_ok(0), "with the termios and window size it had set");
	check(dprintf(tty, "through /dev/tty\n") > 0 && tcgetpgrp(tty) == getpgrp(), "/dev/tty is that terminal");
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc != 3)
		return 100;
	if (!strcmp(argv[1], "pty"))
		mode_pty();
	else if (!strcmp(argv[1], "job"))
		mode_job();
	else
		return 100;
	return failures;
}
