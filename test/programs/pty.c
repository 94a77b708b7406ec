// SPDX-License-Identifier: GPL-2.0-only
/*
 * pty: a program that runs a session on a pseudo-terminal of its own,
 * like script(1) or a terminal emulator.
 *
 *   pty TICKS
 *
 * The parent holds the master, in packet mode, with a window size; a
 * second pty stays locked. A child starts a session with the slave as its
 * controlling terminal (no echo, a changed VINTR) and a grandchild in a
 * process group of its own, made the foreground, opens /dev/tty. Every
 * 100 ms the parent writes a line to the master; the grandchild reads it
 * through /dev/tty, checks its terminal (foreground group, session,
 * termios, window size) and answers; the parent reads the answer (a line,
 * in as many packets as it comes in) and prints it with what it sees of
 * its ptys (number, window size, packet mode, lock). Then its pid.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static int ready[2];

static void grandchild(pid_t sid)
{
	char line[128];
	int tty = open("/dev/tty", O_RDWR);

	close(ready[0]);
	if (tty < 0)
		_exit(1);
	for (;;) {
		struct termios t;
		struct winsize ws;
		ssize_t n = read(tty, line, sizeof(line) - 1);

		if (n <= 0)
			_exit(0);
		line[n - 1] = 0;
		tcgetattr(tty, &t);
		ioctl(tty, TIOCGWINSZ, &ws);
		dprintf(tty, "%s: fg %s, session %s, echo %s, VINTR %d, %dx%d\n", line,
			tcgetpgrp(tty) == getpgrp() ? "mine" : "NOT MINE", getsid(0) == sid ? "ok" : "WRONG",
			t.c_lflag & ECHO ? "on" : "off", t.c_cc[VINTR], ws.ws_col, ws.ws_row);
	}
}

static void child(const char *slave)
{
	struct termios t;
	pid_t gc;
	int fd;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	setsid();
	fd = open(slave, O_RDWR);	/* a session leader's first terminal: its controlling terminal */
	if (fd < 0 || tcgetattr(fd, &t))
		_exit(1);
	t.c_lflag &= ~ECHO;
	t.c_cc[VINTR] = 7;
	tcsetattr(fd, TCSANOW, &t);
	gc = fork();
	if (gc == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		setpgid(0, 0);
		grandchild(getsid(0));
	}
	setpgid(gc, gc);
	signal(SIGTTOU, SIG_IGN);
	tcsetpgrp(fd, gc);
	close(fd);
	if (write(ready[1], "!", 1) != 1)
		_exit(1);
	close(ready[1]);
	while (waitpid(gc, NULL, 0) < 0 && errno == EINTR)
		;
	_exit(0);
}

int main(int argc, char **argv)
{
	struct winsize ws = { .ws_row = 37, .ws_col = 111 };
	int master, locked, one = 1, i, ticks, index, lock;
	char buf[512], pkt_buf[512];
	pid_t kid;

	close_range(3, ~0U, 0);
	if (argc != 2) {
		fprintf(stderr, "usage: pty TICKS\n");
		return 2;
	}
	ticks = atoi(argv[1]);
	master = posix_openpt(O_RDWR | O_NOCTTY);
	locked = posix_openpt(O_RDWR | O_NOCTTY);
	if (master < 0 || locked < 0 || unlockpt(master) || ioctl(master, TIOCSWINSZ, &ws) || ioctl(master, TIOCPKT, &one))
		return perror("pty"), 1;
	ioctl(master, TIOCGPTN, &index);
	if (pipe(ready))
		return perror("pipe"), 1;
	kid = fork();
	if (kid == 0)
		child(ptsname(master));
	close(ready[1]);
	if (read(ready[0], buf, 1) != 1)
		return perror("child"), 1;
	close(ready[0]);

	for (i = 0; i < ticks; i++) {
		int now, pkt = -1;
		size_t len = 0;
		ssize_t n;

		if (dprintf(master, "tick %d\n", i) < 0)
			return perror("write"), 1;
		/*
		 * The answer may come in several data packets: with ONLCR the
		 * slave's write reaches the master as the text, then "\r\n".
		 */
		while (!memchr(buf, '\n', len)) {
			n = read(master, pkt_buf, sizeof(pkt_buf));
			if (n <= 0)
				return perror("read"), 1;
			if (pkt_buf[0] != TIOCPKT_DATA)
				continue;	/* a status packet (flow control) */
			if (len + n - 1 >= sizeof(buf))
				return fprintf(stderr, "answer too long\n"), 1;
			memcpy(buf + len, pkt_buf + 1, n - 1);
			len += n - 1;
		}
		buf[strcspn(buf, "\r\n")] = 0;
		ioctl(master, TIOCGPTN, &now);
		ioctl(master, TIOCGWINSZ, &ws);
		ioctl(master, TIOCGPKT, &pkt);
		ioctl(locked, TIOCGPTLCK, &lock);
		printf("%s | pty %s, %dx%d, packet %s, the other %s\n", buf, now == index ? "the same" : "ANOTHER", ws.ws_col,
		       ws.ws_row, pkt ? "on" : "OFF", lock ? "locked" : "UNLOCKED");
		fflush(stdout);
		usleep(100000);
	}
	kill(kid, SIGKILL);
	waitpid(kid, NULL, 0);
	printf("pid %d\n", getpid());
	return 0;
}
