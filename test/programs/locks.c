// SPDX-License-Identifier: GPL-2.0-only
/*
 * locks: file locks of every kind, held across a checkpoint.
 *
 *   locks DIR TICKS
 *
 * On DIR/data it takes POSIX write lock [0, 99] and POSIX read lock
 * [200, EOF] through one open file, OFD write lock [100, 149] through a
 * second and a shared flock lock through a third; on DIR/other an
 * exclusive flock lock. A child takes its own POSIX write lock
 * [150, 159]. Every 100 ms parent and child each probe the other's
 * locks with F_GETLK (who holds what, with the range) and a short-lived
 * child checks that the open files' locks still stop a new open file
 * (F_OFD_GETLK, flock LOCK_NB); one line per tick, then its pid. DIR/ready
 * appears once the locks are taken (lockprobe can look from outside).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static char data[4096], other[4096];

static int lock(int fd, int cmd, short type, off_t start, off_t len)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len };

	return fcntl(fd, cmd, &fl);
}

/* "WRITE by PID [start, len]" for what stops a write lock on [start, start] through fd. */
static void probe(char *out, size_t n, int fd, int cmd, off_t at)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = at, .l_len = 1 };

	if (fcntl(fd, cmd, &fl) < 0)
		snprintf(out, n, "error %s", strerror(errno));
	else if (fl.l_type == F_UNLCK)
		snprintf(out, n, "free");
	else
		snprintf(out, n, "%s by %d [%lld +%lld]", fl.l_type == F_WRLCK ? "WRITE" : "READ", (int)fl.l_pid,
			 (long long)fl.l_start, (long long)fl.l_len);
}

int main(int argc, char **argv)
{
	int a, b, c, d, i, ticks, ask[2], answer[2];
	char buf[4096];
	pid_t child;

	close_range(3, ~0U, 0);
	if (argc != 3) {
		fprintf(stderr, "usage: locks DIR TICKS\n");
		return 2;
	}
	ticks = atoi(argv[2]);
	snprintf(data, sizeof(data), "%s/data", argv[1]);
	snprintf(other, sizeof(other), "%s/other", argv[1]);
	memset(buf, 'z', sizeof(buf));
	a = open(data, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (a < 0 || write(a, buf, sizeof(buf)) != sizeof(buf))
		return perror(data), 1;
	b = open(data, O_RDWR);
	c = open(data, O_RDONLY);
	d = open(other, O_RDWR | O_CREAT, 0644);
	if (b < 0 || c < 0 || d < 0)
		return perror("open"), 1;
	if (lock(a, F_SETLK, F_WRLCK, 0, 100) || lock(a, F_SETLK, F_RDLCK, 200, 0) ||
	    lock(b, F_OFD_SETLK, F_WRLCK, 100, 50) || flock(c, LOCK_SH | LOCK_NB) || flock(d, LOCK_EX | LOCK_NB))
		return perror("lock"), 1;
	if (pipe(ask) || pipe(answer))
		return perror("pipe"), 1;

	child = fork();
	if (child == 0) {
		int e = open(data, O_RDWR);
		char c;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (e < 0 || lock(e, F_SETLK, F_WRLCK, 150, 10))
			_exit(1);
		if (write(answer[1], "!", 1) != 1)
			_exit(1);
		while (read(ask[0], &c, 1) == 1) {
			char what[3][128];

			probe(what[0], sizeof(what[0]), e, F_GETLK, 50);
			probe(what[1], sizeof(what[1]), e, F_GETLK, 300);
			probe(what[2], sizeof(what[2]), e, F_OFD_GETLK, 120);
			dprintf(answer[1], "the child sees %s | %s | %s\n", what[0], what[1], what[2]);
		}
		_exit(0);
	}
	if (read(answer[0], buf, 1) != 1)
		return perror("child"), 1;
	snprintf(buf, sizeof(buf), "%s/ready", argv[1]);
	close(open(buf, O_WRONLY | O_CREAT, 0644));

	for (i = 0; i < ticks; i++) {
		char mine[128], theirs[256], fresh[256];
		int n, sv[2];

		probe(mine, sizeof(mine), a, F_GETLK, 155);
		if (write(ask[1], "?", 1) != 1 || (n = read(answer[0], theirs, sizeof(theirs) - 1)) <= 0)
			return perror("ask"), 1;
		theirs[n - 1] = 0;
		/*
		 * New open files, in a process of their own: closing them here
		 * would drop our POSIX locks on the file.
		 */
		if (pipe(sv))
			return perror("pipe"), 1;
		if (fork() == 0) {
			int e = open(data, O_RDWR), o = open(other, O_RDONLY);
			struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 120, .l_len = 1 };
			const char *ofd, *fl_sh, *fl_ex, *fl_other;

			ofd = fcntl(e, F_OFD_GETLK, &fl) == 0 && fl.l_type == F_WRLCK && fl.l_pid == -1 && fl.l_start == 100 &&
			      fl.l_len == 50 ? "held" : "LOST";
			fl_ex = flock(e, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK ? "held" : "LOST";
			fl_sh = flock(e, LOCK_SH | LOCK_NB) == 0 ? "shared" : "NOT SHARED";
			fl_other = flock(o, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK ? "held" : "LOST";
			dprintf(sv[1], "OFD %s, flock %s and %s, other flock %s", ofd, fl_ex, fl_sh, fl_other);
			_exit(0);
		}
		close(sv[1]);
		n = read(sv[0], fresh, sizeof(fresh) - 1);
		fresh[n > 0 ? n : 0] = 0;
		close(sv[0]);
		wait(NULL);
		printf("tick %d: I see %s; %s; %s\n", i, mine, theirs, fresh);
		fflush(stdout);
		usleep(100000);
	}
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	unlink(data);
	unlink(other);
	unlink(buf);
	printf("pid %d\n", getpid());
	return 0;
}
