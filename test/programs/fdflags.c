// SPDX-License-Identifier: GPL-2.0-only
/*
 * fdflags: descriptors of every kind with file status flags set, and one
 * at a descriptor number far above the rest.
 *
 *   fdflags DIR TICKS [HIGHFD]
 *
 * A packet-mode pipe (O_DIRECT) with a non-blocking, O_ASYNC read end
 * (its SIGIO owner and signal set) and a second open file of the read end
 * reopened through /proc; a FIFO opened twice; regular files opened with
 * O_APPEND, O_DIRECT, O_NOATIME, O_SYNC, O_DSYNC; O_PATH descriptors of a
 * directory, of the FIFO and of a symlink (O_NOFOLLOW); /dev/null with
 * O_APPEND | O_NONBLOCK; non-blocking eventfd, timerfd, signalfd, epoll
 * and socket pair ends; and /dev/null at HIGHFD (default 1048575, after
 * raising RLIMIT_NOFILE to nr_open).
 *
 * It records what F_GETFL says of each, then every 100 ms checks that
 * F_GETFL still says the same, that the owner and signal are still set,
 * that the non-blocking pipe end still does not block, that the packet
 * pipe still keeps writes apart and that an O_APPEND write still lands at
 * the end; it prints one line per tick, removes what it created in DIR
 * and prints its pid.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define MAX_FDS 32

static struct {
	const char *what;
	int fd;
	int flags;
} fds[MAX_FDS];
static int nfds;
static const char *const names[] = { "fifo", "append", "direct", "noatime", "sync", "dsync", "link" };

static void keep(const char *what, int fd)
{
	if (fd < 0) {
		fprintf(stderr, "%s: %s\n", what, strerror(errno));
		exit(1);
	}
	fds[nfds].what = what;
	fds[nfds].fd = fd;
	fds[nfds].flags = fcntl(fd, F_GETFL);
	nfds++;
}

static int file(const char *dir, const char *name, int flags)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, "0123456789abcdef", 16) != 16 || close(fd))
		return -1;
	return open(path, flags);
}

int main(int argc, char **argv)
{
	char path[4096], buf[4096];
	int p[2], sv[2], i, ticks, high, ufd, fifo_rw;
	struct f_owner_ex owner = { F_OWNER_PID, 0 };
	struct rlimit lim;
	sigset_t mask;

	close_range(3, ~0U, 0);
	if (argc < 3) {
		fprintf(stderr, "usage: fdflags DIR TICKS [HIGHFD]\n");
		return 2;
	}
	ticks = atoi(argv[2]);
	high = argc > 3 ? atoi(argv[3]) : 1048575;
	signal(SIGIO, SIG_IGN);
	signal(SIGURG, SIG_IGN);

	if (pipe2(p, O_DIRECT) < 0)
		return perror("pipe2"), 1;
	fcntl(p[0], F_SETFL, O_NONBLOCK | O_ASYNC);
	owner.pid = getpid();
	fcntl(p[0], F_SETOWN_EX, &owner);
	fcntl(p[0], F_SETSIG, SIGURG);
	keep("packet pipe read end", p[0]);
	keep("packet pipe write end", p[1]);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", p[0]);
	keep("pipe read end reopened", open(path, O_RDONLY | O_NONBLOCK));

	snprintf(path, sizeof(path), "%s/fifo", argv[1]);
	if (mkfifo(path, 0600) < 0)
		return perror("mkfifo"), 1;
	fifo_rw = open(path, O_RDWR | O_APPEND);
	keep("fifo read-write", fifo_rw);
	keep("fifo read, non-blocking", open(path, O_RDONLY | O_NONBLOCK));
	keep("fifo O_PATH", open(path, O_PATH));

	ufd = file(argv[1], "append", O_WRONLY | O_APPEND);
	keep("O_APPEND file", ufd);
	keep("O_DIRECT file", file(argv[1], "direct", O_RDWR | O_DIRECT));
	keep("O_NOATIME file", file(argv[1], "noatime", O_RDONLY | O_NOATIME));
	keep("O_SYNC file", file(argv[1], "sync", O_WRONLY | O_SYNC));
	keep("O_DSYNC file", file(argv[1], "dsync", O_RDWR | O_DSYNC | O_NONBLOCK));
	keep("directory O_PATH", open(argv[1], O_PATH | O_DIRECTORY));
	snprintf(path, sizeof(path), "%s/link", argv[1]);
	if (symlink("append", path) < 0)
		return perror("symlink"), 1;
	keep("symlink O_PATH", open(path, O_PATH | O_NOFOLLOW));
	keep("/dev/null", open("/dev/null", O_WRONLY | O_APPEND | O_NONBLOCK));

	keep("eventfd", eventfd(3, EFD_NONBLOCK));
	keep("timerfd", timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK));
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR2);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	keep("signalfd", signalfd(-1, &mask, SFD_NONBLOCK));
	keep("epoll", epoll_create1(0));
	fcntl(fds[nfds - 1].fd, F_SETFL, O_NONBLOCK);
	fds[nfds - 1].flags = fcntl(fds[nfds - 1].fd, F_GETFL);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0)
		return perror("socketpair"), 1;
	keep("socket end", sv[0]);
	fcntl(sv[1], F_SETFL, 0);
	keep("socket end, blocking", sv[1]);

	/* Without CAP_SYS_RESOURCE the hard limit cannot go up: stay under it. */
	lim.rlim_cur = lim.rlim_max = high + 1;
	if (setrlimit(RLIMIT_NOFILE, &lim) < 0) {
		if (errno != EPERM || getrlimit(RLIMIT_NOFILE, &lim))
			return perror("setrlimit"), 1;
		high = lim.rlim_max - 1;
		lim.rlim_cur = lim.rlim_max;
		setrlimit(RLIMIT_NOFILE, &lim);
	}
	keep("high descriptor", dup2(open("/dev/null", O_RDONLY | O_NOATIME), high));

	for (i = 0; i < nfds; i++)
		printf("%s: fd %d F_GETFL 0%o\n", fds[i].what, fds[i].fd, fds[i].flags);
	fflush(stdout);

	for (i = 0; i < ticks; i++) {
		int j, bad = 0, sig = fcntl(p[0], F_GETSIG);
		struct stat st;
		ssize_t n;

		for (j = 0; j < nfds; j++) {
			int now = fcntl(fds[j].fd, F_GETFL);

			if (now != fds[j].flags) {
				printf("tick %d: %s (fd %d) has F_GETFL 0%o, not 0%o\n", i, fds[j].what, fds[j].fd, now, fds[j].flags);
				bad++;
			}
		}
		fcntl(p[0], F_GETOWN_EX, &owner);
		if (owner.type != F_OWNER_PID || owner.pid != getpid() || sig != SIGURG)
			printf("tick %d: owner %d/%d signal %d\n", i, owner.type, owner.pid, sig), bad++;
		n = read(p[0], buf, sizeof(buf));
		if (n >= 0 || errno != EAGAIN)
			printf("tick %d: empty non-blocking pipe read gave %zd (%s)\n", i, n, strerror(errno)), bad++;
		/* Packet mode: two writes are two reads. */
		if (write(p[1], "ab", 2) != 2 || write(p[1], "cde", 3) != 3 || read(p[0], buf, sizeof(buf)) != 2 ||
		    read(p[0], buf, sizeof(buf)) != 3)
			printf("tick %d: the pipe lost its packet mode\n", i), bad++;
		lseek(ufd, 0, SEEK_SET);
		if (write(ufd, "x", 1) != 1 || fstat(ufd, &st) || lseek(ufd, 0, SEEK_CUR) != st.st_size)
			printf("tick %d: an O_APPEND write did not land at the end\n", i), bad++;
		if (write(fifo_rw, "y", 1) != 1 || read(fifo_rw, buf, 1) != 1)
			printf("tick %d: the FIFO does not carry a byte\n", i), bad++;
		printf("tick %d: %d descriptors %s\n", i, nfds, bad ? "WRONG" : "as they were");
		fflush(stdout);
		usleep(100000);
	}
	for (i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++) {
		snprintf(path, sizeof(path), "%s/%s", argv[1], names[i]);
		unlink(path);
	}
	printf("pid %d\n", getpid());
	return 0;
}
