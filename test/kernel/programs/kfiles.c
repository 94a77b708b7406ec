// SPDX-License-Identifier: GPL-2.0-only
/*
 * kfiles: kinds of open file the kernel backend must carry across
 * checkpoint/restart, or refuse by name.
 *
 *   kfiles MODE DIR
 *
 * Each MODE builds its state in DIR, prints "ready", waits for SIGUSR1,
 * then checks that everything is as it was and still works; it prints
 * "ok ..." or "FAIL ..." lines and exits with the number of failures.
 *
 *   anon      eventfds (semaphore, non-blocking), timerfds (armed with an
 *             interval, disarmed, expired and unread), a signalfd, an epoll
 *             set (items whose descriptors were closed or moved among them,
 *             a nested epoll) and an inotify file with two watches
 *   memfd     a sealed memfd with a hole, a shared mapping and a mode
 *   unlinked  a file unlinked while open (twice open, owner, mode), and a
 *             working directory that was removed
 *   flags     status flags (O_APPEND, O_NONBLOCK on pipe ends), O_ASYNC with
 *             F_SETOWN and F_SETSIG, F_SETOWN_EX to a process group, a 1 MiB
 *             pipe holding 300 KiB and a FIFO of 256 KiB holding 100 KiB
 *   locks     a POSIX lock, a read lock, an OFD lock and a flock lock, held
 *             by the parent and tested by a child
 *
 * MODE "mix" holds one of each kind at once (the fuzz test's seed image),
 * prints "ready" and sleeps.  MODEs that must be refused print "ready" and
 * sleep: "raw" (a raw inet socket), "events" (inotify events not read yet),
 * "packet" (a packet-mode pipe), "lease" (a lease), "scm" (a descriptor in
 * flight on a unix socket), "timestamp" (SO_TIMESTAMP on a unix socket).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include "kcheck.h"

static char dir[1024];

static void path(char *buf, const char *name)
{
	snprintf(buf, PATH_MAX, "%s/%s", dir, name);
}

static void fill(unsigned char *p, size_t n, unsigned int seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(i * 31 + seed + (i >> 12));
}

static int same(const unsigned char *p, size_t n, unsigned int seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (unsigned char)(i * 31 + seed + (i >> 12)))
			return 0;
	return 1;
}

/* The value after KEY in /proc/self/fdinfo/FD */
static unsigned long long fdinfo(int fd, const char *key, int base)
{
	char p[64], line[256];
	unsigned long long v = ~0ULL;
	FILE *f;

	snprintf(p, sizeof(p), "/proc/self/fdinfo/%d", fd);
	f = fopen(p, "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)))
			v = strtoull(line + strlen(key), NULL, base);
	if (f)
		fclose(f);
	return v;
}

/* The data of every ready item, sorted, so two waits compare */
static int ready_items(int ep, uint64_t *data, int max)
{
	struct epoll_event ev[16];
	int n = epoll_wait(ep, ev, max < 16 ? max : 16, 0), i, j;

	for (i = 0; i < n; i++)
		data[i] = ev[i].data.u64 | ((uint64_t)ev[i].events << 32);
	for (i = 1; i < n; i++)
		for (j = i; j > 0 && data[j - 1] > data[j]; j--) {
			uint64_t t = data[j];

			data[j] = data[j - 1];
			data[j - 1] = t;
		}
	return n;
}

static void mode_anon(void)
{
	int sem = eventfd(42, EFD_SEMAPHORE), efd = eventfd(7, EFD_NONBLOCK);
	int tfd = timerfd_create(CLOCK_MONOTONIC, 0), toff = timerfd_create(CLOCK_REALTIME, 0);
	int texp = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	struct itimerspec its = { { 7, 0 }, { 1000, 0 } }, once = { { 0, 0 }, { 0, 1000000 } }, g;
	int ep = epoll_create1(0), inner = epoll_create1(0), in = inotify_init1(IN_NONBLOCK);
	int p1[2], p2[2], p3[2], sfd, kept, moved, w1, w2, n1, n2, i;
	struct epoll_event ev = { .events = EPOLLIN };
	uint64_t before[16], after[16], v;
	char f[PATH_MAX], buf[4096];
	struct signalfd_siginfo si;
	sigset_t mask;

	need(sem >= 0 && efd >= 0 && tfd >= 0 && toff >= 0 && texp >= 0 && ep >= 0 && in >= 0);
	need(!timerfd_settime(tfd, 0, &its, NULL) && !timerfd_settime(texp, 0, &once, NULL));
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR2);
	sigaddset(&mask, SIGRTMIN + 5);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	need(sfd >= 0 && !pipe(p1) && !pipe(p2) && !pipe(p3));
	need(write(p1[1], "x", 1) == 1 && write(p2[1], "y", 1) == 1 && write(p3[1], "z", 1) == 1);
	ev.data.u64 = 0x1111;
	need(!epoll_ctl(ep, EPOLL_CTL_ADD, p1[0], &ev));
	ev.data.u64 = 0x2222;
	need(!epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev));
	/* an item whose descriptor is closed: its file lives on in another one */
	kept = dup(p2[0]);
	ev.data.u64 = 0x3333;
	need(kept >= 0 && !epoll_ctl(ep, EPOLL_CTL_ADD, p2[0], &ev));
	close(p2[0]);
	/* an item whose descriptor moved */
	ev.data.u64 = 0x4444;
	need(!epoll_ctl(ep, EPOLL_CTL_ADD, p3[0], &ev));
	moved = dup2(p3[0], 60);
	close(p3[0]);
	ev.data.u64 = 0x5555;
	ev.events = EPOLLOUT;
	need(!epoll_ctl(inner, EPOLL_CTL_ADD, p1[1], &ev));
	ev.data.u64 = 0x6666;
	ev.events = EPOLLIN;
	need(!epoll_ctl(ep, EPOLL_CTL_ADD, inner, &ev));
	w1 = inotify_add_watch(in, dir, IN_CREATE | IN_DELETE);
	path(f, "watched");
	close(open(f, O_CREAT | O_WRONLY, 0600));
	w2 = inotify_add_watch(in, f, IN_MODIFY | IN_ONESHOT);
	inotify_rm_watch(in, inotify_add_watch(in, "/", IN_ACCESS));	/* wd 3 gone */
	need(w1 > 0 && w2 > 0);
	while (read(in, buf, sizeof(buf)) > 0)
		;
	usleep(20000);	/* the 1 ms timer expires and is not read */
	n1 = ready_items(ep, before, 16);
	wait_restart(-1, NULL);

	n2 = ready_items(ep, after, 16);
	check(n1 == 5 && n2 == n1 && !memcmp(before, after, n1 * sizeof(*before)),
	      "epoll reports the same events (closed and moved descriptors, nested epoll)");
	need(read(kept, buf, 1) == 1 && read(moved, buf, 1) == 1);
	n2 = ready_items(ep, after, 16);
	check(n2 == 3, "epoll follows the files behind closed and moved descriptors");
	check(read(sem, &v, 8) == 8 && v == 1 && fdinfo(sem, "eventfd-count:", 16) == 41,
	      "semaphore eventfd: count 42, reads one at a time");
	check(fdinfo(efd, "eventfd-count:", 16) == 7 && (fcntl(efd, F_GETFL) & O_NONBLOCK) &&
	      read(efd, &v, 8) == 8 && v == 7 && read(efd, &v, 8) < 0 && errno == EAGAIN,
	      "eventfd: count 7, non-blocking");
	timerfd_gettime(tfd, &g);
	check(g.it_interval.tv_sec == 7 && g.it_value.tv_sec <= 1000 && g.it_value.tv_sec > 900,
	      "timerfd: interval and time left");
	timerfd_gettime(toff, &g);
	check(!g.it_value.tv_sec && !g.it_value.tv_nsec && fdinfo(toff, "clockid:", 10) == CLOCK_REALTIME,
	      "disarmed timerfd on CLOCK_REALTIME");
	check(read(texp, &v, 8) == 8 && v == 1, "expired timerfd: one expiration unread");
	kill(getpid(), SIGUSR2);
	check(fdinfo(sfd, "sigmask:", 16) == (1ULL << (SIGUSR2 - 1) | 1ULL << (SIGRTMIN + 4)) &&
	      read(sfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo == SIGUSR2,
	      "signalfd: its mask, reads the signal");
	path(f, "made-after");
	close(open(f, O_CREAT | O_WRONLY, 0600));
	path(f, "watched");
	i = open(f, O_WRONLY);
	need(i >= 0 && write(i, "m", 1) == 1);
	close(i);
	n1 = read(in, buf, sizeof(buf));
	{
		struct inotify_event *e = (struct inotify_event *)buf;
		struct inotify_event *e2 = n1 > 0 ? (struct inotify_event *)(buf + sizeof(*e) + e->len) : NULL;

		check(n1 > 0 && e->wd == w1 && (e->mask & IN_CREATE) && !strcmp(e->name, "made-after"),
		      "inotify: the directory watch, with its descriptor");
		check(e2 && (char *)e2 < buf + n1 && e2->wd == w2 && (e2->mask & IN_MODIFY),
		      "inotify: the file watch, with its descriptor");
	}
	check(inotify_add_watch(in, "/", IN_ACCESS) > w2, "inotify: new watches get new descriptors");
}

#define MFD_SIZE (1 << 20)

static void mode_memfd(void)
{
	int fd = memfd_create("kfiles-memfd", MFD_ALLOW_SEALING | MFD_CLOEXEC), ro;
	static unsigned char buf[100 * 1024];
	char link[64], name[PATH_MAX] = "";
	unsigned char *map;
	struct stat st;
	ssize_t n;

	need(fd >= 0 && !ftruncate(fd, MFD_SIZE));
	fill(buf, sizeof(buf), 3);
	need(pwrite(fd, buf, sizeof(buf), 0) == sizeof(buf));
	need(pwrite(fd, buf, 4096, 512 * 1024) == 4096);	/* a hole before it */
	map = mmap(NULL, MFD_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	need(map != MAP_FAILED);
	map[MFD_SIZE - 1] = 0x5a;
	need(!fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) && !fchmod(fd, 0640));
	lseek(fd, 1234, SEEK_SET);
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ro = open(link, O_RDONLY);
	need(ro >= 0);
	wait_restart(-1, NULL);

	n = readlink(link, name, sizeof(name) - 1);
	check(n > 0 && !strcmp(name, "/memfd:kfiles-memfd (deleted)"), "memfd: its name");
	check(fcntl(fd, F_GET_SEALS) == (F_SEAL_SHRINK | F_SEAL_GROW), "memfd: its seals");
	check(!fstat(fd, &st) && st.st_size == MFD_SIZE && (st.st_mode & 07777) == 0640,
	      "memfd: size and mode");
	check(lseek(fd, 0, SEEK_CUR) == 1234 && lseek(ro, 0, SEEK_CUR) == 0, "memfd: offsets");
	memset(buf, 0, sizeof(buf));
	check(pread(ro, buf, sizeof(buf), 0) == sizeof(buf) && same(buf, sizeof(buf), 3) &&
	      pread(ro, buf, 4096, 512 * 1024) == 4096 && same(buf, 4096, 3) &&
	      pread(ro, buf, 16, 300 * 1024) == 16 && !buf[0] && !buf[15], "memfd: contents and hole");
	check(map[MFD_SIZE - 1] == 0x5a && same(map, sizeof(buf), 3), "memfd: the mapping");
	map[7] = 0x77;
	check(pread(fd, buf, 8, 0) == 8 && buf[7] == 0x77, "memfd: the mapping writes through to the file");
	check(ftruncate(fd, 4096) < 0 && errno == EPERM, "memfd: the seals hold");
	check((fcntl(ro, F_GETFL) & O_ACCMODE) == O_RDONLY && write(ro, "x", 1) < 0,
	      "memfd: a read-only descriptor of it");
}

static void mode_unlinked(void)
{
	static unsigned char buf[48 * 1024];
	char f[PATH_MAX], cwd[PATH_MAX], link[64], name[PATH_MAX] = "", expect[PATH_MAX + 16];
	struct stat st;
	int fd, ro;
	ssize_t n;

	path(f, "ghost");
	fd = open(f, O_CREAT | O_RDWR | O_APPEND | O_TRUNC, 0600);
	need(fd >= 0);
	fill(buf, sizeof(buf), 9);
	need(write(fd, buf, sizeof(buf)) == sizeof(buf) && !fchmod(fd, 0604) &&
	     !fchown(fd, 65534, 65534));
	ro = open(f, O_RDONLY);
	need(ro >= 0 && lseek(ro, 777, SEEK_SET) == 777 && !unlink(f));
	path(cwd, "cwd-gone");
	need(!mkdir(cwd, 0711) && !chmod(cwd, 0711) && !chdir(cwd) && !rmdir(cwd));
	wait_restart(-1, NULL);

	check(!fstat(fd, &st) && st.st_nlink == 0 && st.st_size == sizeof(buf) &&
	      (st.st_mode & 07777) == 0604 && st.st_uid == 65534 && st.st_gid == 65534,
	      "unlinked file: no link, size, mode, owner");
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	snprintf(expect, sizeof(expect), "%s (deleted)", f);
	n = readlink(link, name, sizeof(name) - 1);
	check(n > 0 && !strcmp(name, expect), "unlinked file: its old name");
	memset(buf, 0, sizeof(buf));
	check(pread(ro, buf, sizeof(buf), 0) == sizeof(buf) && same(buf, sizeof(buf), 9),
	      "unlinked file: contents");
	check(lseek(ro, 0, SEEK_CUR) == 777 && (fcntl(fd, F_GETFL) & O_APPEND), "unlinked file: offset, flags");
	check(write(fd, "tail", 4) == 4 && !fstat(ro, &st) && st.st_size == sizeof(buf) + 4,
	      "unlinked file: both descriptors open the same file");
	snprintf(expect, sizeof(expect), "%s (deleted)", cwd);
	n = readlink("/proc/self/cwd", name, sizeof(name) - 1);
	name[n > 0 ? n : 0] = 0;
	check(n > 0 && !strcmp(name, expect), "deleted working directory: its old name");
	check(!stat(".", &st) && S_ISDIR(st.st_mode) && st.st_nlink == 0 &&
	      (st.st_mode & 07777) == 0711, "deleted working directory: removed, its mode");
}

#define BIG_PIPE (1 << 20)
#define BIG_DATA (300 * 1024)

static void mode_flags(void)
{
	static unsigned char buf[BIG_DATA];
	char f[PATH_MAX];
	struct f_owner_ex own = { F_OWNER_PGRP, 0 }, got;
	int app, p[2], big[2], async[2], grp[2], fifo;
	sigset_t sigs;
	siginfo_t si;
	struct timespec zero = { 0, 0 };

	path(f, "append");
	app = open(f, O_CREAT | O_WRONLY | O_APPEND | O_TRUNC, 0600);
	need(app >= 0 && write(app, "0123456789", 10) == 10 && lseek(app, 3, SEEK_SET) == 3);
	need(!pipe2(p, O_NONBLOCK) && !pipe(big) && !pipe(async) && !pipe(grp));
	need(fcntl(big[1], F_SETPIPE_SZ, BIG_PIPE) >= BIG_PIPE);
	fill(buf, sizeof(buf), 5);
	need(write(big[1], buf, sizeof(buf)) == sizeof(buf));
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGRTMIN + 1);
	sigaddset(&sigs, SIGIO);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	need(!fcntl(async[0], F_SETOWN, getpid()) && !fcntl(async[0], F_SETSIG, SIGRTMIN + 1) &&
	     !fcntl(async[0], F_SETFL, O_ASYNC | O_NONBLOCK));
	/* a process group of its own, inside the tree */
	need(!setpgid(0, 0));
	own.pid = getpgrp();
	need(!fcntl(grp[0], F_SETOWN_EX, &own));
	path(f, "fifo");
	unlink(f);
	need(!mkfifo(f, 0600));
	fifo = open(f, O_RDWR);
	need(fifo >= 0 && fcntl(fifo, F_SETPIPE_SZ, 256 * 1024) >= 256 * 1024);
	need(write(fifo, buf, 100 * 1024) == 100 * 1024);
	wait_restart(-1, NULL);

	check((fcntl(app, F_GETFL) & (O_ACCMODE | O_APPEND | O_NONBLOCK)) == (O_WRONLY | O_APPEND) &&
	      lseek(app, 0, SEEK_CUR) == 3, "O_APPEND file: flags and offset");
	check((fcntl(p[0], F_GETFL) & O_NONBLOCK) && (fcntl(p[1], F_GETFL) & O_NONBLOCK) &&
	      read(p[0], f, 1) < 0 && errno == EAGAIN, "O_NONBLOCK on both pipe ends");
	check(fcntl(big[0], F_GETPIPE_SZ) == BIG_PIPE, "pipe size (F_SETPIPE_SZ)");
	memset(buf, 0, sizeof(buf));
	{
		size_t got_n = 0;
		ssize_t n;

		fcntl(big[0], F_SETFL, O_NONBLOCK);
		while (got_n < sizeof(buf) && (n = read(big[0], buf + got_n, sizeof(buf) - got_n)) > 0)
			got_n += n;
		check(got_n == sizeof(buf) && same(buf, sizeof(buf), 5) && read(big[0], f, 1) < 0,
		      "a pipe holding 300 KiB");
	}
	check(fcntl(fifo, F_GETPIPE_SZ) == 256 * 1024 && read(fifo, buf, sizeof(buf)) == 100 * 1024 &&
	      same(buf, 100 * 1024, 5), "a FIFO of 256 KiB holding 100 KiB");
	check(fcntl(async[0], F_GETOWN) == getpid() && fcntl(async[0], F_GETSIG) == SIGRTMIN + 1 &&
	      (fcntl(async[0], F_GETFL) & O_ASYNC), "F_SETOWN, F_SETSIG, O_ASYNC");
	need(write(async[1], "s", 1) == 1);
	check(sigtimedwait(&sigs, &si, &zero) == SIGRTMIN + 1 && si.si_fd == async[0],
	      "SIGIO comes as F_SETSIG's signal, for its descriptor");
	check(!fcntl(grp[0], F_GETOWN_EX, &got) && got.type == F_OWNER_PGRP && got.pid == getpgrp(),
	      "F_SETOWN_EX to the process group");
}

static void mode_locks(void)
{
	struct flock wr = { F_WRLCK, SEEK_SET, 0, 100, 0 }, rd = { F_RDLCK, SEEK_SET, 200, 100, 0 };
	struct flock ofd = { F_WRLCK, SEEK_SET, 500, 100, 0 };
	char f[PATH_MAX], g[PATH_MAX];
	int fd, fd2, gfd, ctl[2], res[2], status;
	pid_t child, parent = getpid();
	char c;

	path(f, "locked");
	path(g, "flocked");
	fd = open(f, O_CREAT | O_RDWR, 0600);
	fd2 = open(f, O_RDWR);
	gfd = open(g, O_CREAT | O_RDWR, 0600);
	need(fd >= 0 && fd2 >= 0 && gfd >= 0 && !ftruncate(fd, 4096));
	need(!fcntl(fd, F_SETLK, &wr) && !fcntl(fd, F_SETLK, &rd) && !fcntl(fd2, F_OFD_SETLK, &ofd));
	need(!flock(gfd, LOCK_SH) && !pipe(ctl) && !pipe(res));
	child = fork();
	need(child >= 0);
	if (child == 0) {
		/* the child tests the parent's locks through files of its own */
		int cf = open(f, O_RDWR), cg = open(g, O_RDWR), ok;

		close(ctl[1]);
		while (read(ctl[0], &c, 1) == 1) {
			struct flock t1 = { F_WRLCK, SEEK_SET, 50, 1, 0 }, t2 = { F_WRLCK, SEEK_SET, 250, 1, 0 };
			struct flock t3 = { F_RDLCK, SEEK_SET, 550, 1, 0 }, t4 = { F_RDLCK, SEEK_SET, 250, 1, 0 };
			struct flock t5 = { F_WRLCK, SEEK_SET, 150, 10, 0 };

			ok = !fcntl(cf, F_GETLK, &t1) && t1.l_type == F_WRLCK && t1.l_pid == parent &&
			     t1.l_start == 0 && t1.l_len == 100;
			ok = ok << 1 | (!fcntl(cf, F_GETLK, &t2) && t2.l_type == F_RDLCK && t2.l_pid == parent);
			ok = ok << 1 | (!fcntl(cf, F_OFD_GETLK, &t3) && t3.l_type == F_WRLCK && t3.l_pid == -1 &&
					t3.l_start == 500);
			ok = ok << 1 | (!fcntl(cf, F_GETLK, &t4) && t4.l_type == F_UNLCK);
			ok = ok << 1 | (!fcntl(cf, F_GETLK, &t5) && t5.l_type == F_UNLCK);
			ok = ok << 1 | (flock(cg, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK &&
					!flock(cg, LOCK_SH | LOCK_NB) && !flock(cg, LOCK_UN));
			c = ok;
			if (write(res[1], &c, 1) != 1)
				_exit(2);
		}
		_exit(0);
	}
	close(ctl[0]);
	close(res[1]);
	need(write(ctl[1], "?", 1) == 1 && read(res[0], &c, 1) == 1 && c == 0x3f);
	wait_restart(-1, NULL);

	need(write(ctl[1], "?", 1) == 1 && read(res[0], &c, 1) == 1);
	check(c & 0x20, "POSIX write lock: its range and its owner's pid");
	check(c & 0x10, "POSIX read lock");
	check(c & 0x08, "OFD lock");
	check((c & 0x04) && (c & 0x02), "nothing else is locked");
	check(c & 0x01, "flock lock");
	wr.l_type = F_UNLCK;
	check(!fcntl(fd, F_SETLK, &wr) && !fcntl(fd, F_GETLK, &rd) && rd.l_type == F_UNLCK,
	      "the restarted owner can unlock it");
	close(ctl[1]);
	waitpid(child, &status, 0);
	check(WIFEXITED(status) && !WEXITSTATUS(status), "the child ends well");
}

/* One of each kind, for a seed image: nothing is checked */
static void mode_mix(void)
{
	struct itimerspec its = { { 3, 0 }, { 100, 0 } };
	struct epoll_event ev = { .events = EPOLLIN };
	struct flock wr = { F_WRLCK, SEEK_SET, 0, 10, 0 };
	int sp[2], dg[2], p[2], ep, in, mfd, fd, m, l;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	char f[PATH_MAX], name[64];
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR2);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	need(eventfd(5, EFD_SEMAPHORE) >= 0 && signalfd(-1, &mask, 0) >= 0);
	fd = timerfd_create(CLOCK_MONOTONIC, 0);
	need(fd >= 0 && !timerfd_settime(fd, 0, &its, NULL));
	need(!socketpair(AF_UNIX, SOCK_STREAM, 0, sp) && write(sp[0], "queued", 6) == 6);
	need(!socketpair(AF_UNIX, SOCK_DGRAM, 0, dg) && send(dg[1], "msg", 3, 0) == 3);
	need(!pipe(p) && fcntl(p[1], F_SETPIPE_SZ, 1 << 17) > 0 && write(p[1], "pipe", 4) == 4);
	ep = epoll_create1(0);
	ev.data.u64 = 1;
	need(ep >= 0 && !epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) && !epoll_ctl(ep, EPOLL_CTL_ADD, sp[1], &ev));
	mfd = memfd_create("mix", MFD_ALLOW_SEALING);
	need(mfd >= 0 && write(mfd, "memfd", 5) == 5 && !fcntl(mfd, F_ADD_SEALS, F_SEAL_GROW));
	path(f, "mix-ghost");
	fd = open(f, O_CREAT | O_RDWR | O_TRUNC, 0600);
	need(fd >= 0 && write(fd, "ghost", 5) == 5 && !unlink(f) && !fcntl(fd, F_SETLK, &wr));
	need(!fcntl(fd, F_SETOWN, getpid()) && !flock(mfd, LOCK_SH));
	path(f, "mix-sock");
	unlink(f);
	memcpy(a.sun_path, f, strlen(f) + 1);
	l = socket(AF_UNIX, SOCK_STREAM, 0);
	need(l >= 0 && !bind(l, (struct sockaddr *)&a, sizeof(a)) && !listen(l, 2));
	m = posix_openpt(O_RDWR | O_NOCTTY);
	need(m >= 0 && !grantpt(m) && !unlockpt(m) && !ptsname_r(m, name, sizeof(name)));
	need(open(name, O_RDWR | O_NOCTTY) >= 0);
	/* last: nothing is made in the directory after this */
	in = inotify_init();
	need(in >= 0 && inotify_add_watch(in, dir, IN_CREATE) > 0);
	printf("ready\n");
	for (;;)
		pause();
}

static int mode_refused(const char *mode)
{
	char f[PATH_MAX];
	int fd = -1, p[2];

	if (!strcmp(mode, "raw")) {
		fd = socket(AF_INET, SOCK_RAW, IPPROTO_UDP);
	} else if (!strcmp(mode, "events")) {
		fd = inotify_init();
		if (fd >= 0 && inotify_add_watch(fd, dir, IN_CREATE) > 0) {
			path(f, "event");
			close(open(f, O_CREAT | O_WRONLY, 0600));
		}
	} else if (!strcmp(mode, "packet")) {
		fd = pipe2(p, O_DIRECT) ? -1 : p[0];
	} else if (!strcmp(mode, "lease")) {
		path(f, "leased");
		close(open(f, O_CREAT | O_WRONLY, 0600));
		fd = open(f, O_RDONLY);
		if (fd >= 0 && fcntl(fd, F_SETLEASE, F_RDLCK))
			fd = -1;
	} else if (!strcmp(mode, "scm")) {
		char c[CMSG_SPACE(sizeof(int))] = "";
		struct iovec io = { "x", 1 };
		struct msghdr m = { .msg_iov = &io, .msg_iovlen = 1, .msg_control = c,
				    .msg_controllen = sizeof(c) };
		struct cmsghdr *cm = CMSG_FIRSTHDR(&m);

		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &(int){ 0 }, sizeof(int));
		fd = socketpair(AF_UNIX, SOCK_STREAM, 0, p) || sendmsg(p[0], &m, 0) != 1 ? -1 : p[1];
	} else if (!strcmp(mode, "timestamp")) {
		int one = 1;

		fd = socketpair(AF_UNIX, SOCK_DGRAM, 0, p) ||
		     setsockopt(p[1], SOL_SOCKET, SO_TIMESTAMP, &one, sizeof(one)) ? -1 : p[1];
	} else {
		return 100;
	}
	need(fd >= 0);
	printf("ready\n");
	pause();
	return 0;
}

int main(int argc, char **argv)
{
	char real[PATH_MAX];

	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc != 3 || !realpath(argv[2], real) || strlen(real) >= sizeof(dir) - 64)
		return 100;
	strcpy(dir, real);
	if (!strcmp(argv[1], "anon"))
		mode_anon();
	else if (!strcmp(argv[1], "memfd"))
		mode_memfd();
	else if (!strcmp(argv[1], "unlinked"))
		mode_unlinked();
	else if (!strcmp(argv[1], "flags"))
		mode_flags();
	else if (!strcmp(argv[1], "locks"))
		mode_locks();
	else if (!strcmp(argv[1], "mix"))
		mode_mix();
	else
		return mode_refused(argv[1]);
	return failures;
}
