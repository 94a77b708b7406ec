// SPDX-License-Identifier: GPL-2.0-only
/*
 * wl: the comparison harness's self-checking workload.
 *
 *   wl [--detach] WORKDIR MODULE=ARG [MODULE=ARG ...]
 *
 * --detach: fork, let the parent exit at once and run in a new session in
 * the child, so the workload is nobody's known child (a harness that is a
 * child subreaper adopts it and reaps it by pid; a ptrace-based dumper in
 * the same process can then wait for it without confusing anyone).
 *
 * Builds the state the modules describe (optionally in a tree of
 * processes), folds it into a 64-bit checksum and prints
 *
 *   READY <pid> <checksum>
 *
 * Then it waits for SIGUSR1 (a signal sent after restore survives c/r by
 * construction), folds the state again, this time reading it back the
 * destructive way where that is the only way (pipe data, eventfd counters,
 * pending signals), and prints
 *
 *   DONE <checksum>
 *
 * and exits 0. A restore that lost or changed anything gives a different
 * checksum; where a module can tell what went wrong it also prints
 * "BAD <why>" and the process exits 1. Output goes through write(2) only,
 * so nothing sits in a stdio buffer across a fork or a checkpoint.
 *
 * Modules (ARG is a count or a size):
 *   tree=N      N processes in a binary-heap shape (process i's parent is
 *               (i-1)/2); every process builds all other modules
 *   mem=MiB     private anonymous memory, every word a known pattern
 *   dirty=P     with mem, one process: SIGUSR2 rewrites P% of it with another
 *               pattern and prints DIRTIED <checksum>, the new one to expect
 *   threads=N   N extra threads, each with a stack buffer, TLS and its tid
 *   regfile=N   N regular files with content, offsets and flags
 *   pipe=N      N pipes with data in flight
 *   files=N     regfile=N/2 + pipe=N/4 (about N descriptors)
 *   shanon=KiB  shared anonymous memory
 *   fmap-priv=KiB  private writable file mapping, half its pages changed
 *   fmap-shared=KiB shared file mapping, written through the mapping
 *   brk=KiB     heap grown with sbrk and filled
 *   unlinked=KiB a file opened then unlinked, at an offset
 *   fifo=N      a named pipe opened O_RDWR with N bytes in flight
 *   socketpair=N a unix stream socket pair with N bytes queued
 *   eventfd=V   an eventfd holding counter V
 *   sigaction=1 a handler with flags and a mask for SIGUSR2
 *   sigpending=1 a blocked, pending real-time signal
 *   cwd=1       the working directory
 *   rlimit=1    a changed RLIMIT_CORE
 *   umask=1     a changed umask
 *   memfd=KiB   a sealed memfd, written through its fd and a shared mapping
 *   zombie=V    a child that exited with status V and was not reaped yet
 *   ptimer=1    an armed POSIX timer (CLOCK_MONOTONIC, no notification)
 *   itimer=1    an armed ITIMER_REAL with an interval
 *   caps=1      capabilities dropped from the effective, permitted and
 *               bounding sets
 *   sysvshm=KiB a SysV shared memory segment, attached and filled, in an
 *               IPC namespace of its own (a backend saves the objects of
 *               the tree's own namespace only)
 *   fdtable=1   a child process sharing the fd table (CLONE_FILES)
 *   cow=KiB     private memory a forked child still shares copy-on-write:
 *               a page neither wrote must stay one physical page (pagemap,
 *               as root), the one the child wrote its own
 *   sched=N     SCHED_BATCH with nice N, a personality and a timer slack
 *   prctl=1     a name, a parent-death signal, not dumpable, child
 *               subreaper, no_new_privs; /proc/self/exe unchanged
 *   madvise=KiB mappings marked MADV_DONTFORK, MADV_DONTDUMP, MADV_WIPEONFORK
 *   locks=1     a POSIX, an OFD and a flock lock on one file, each seen
 *               held (by this pid, with its range) from a child process
 *   pty=1       a pty pair: termios, window size, packet mode, a byte
 *               through it
 *   tcp-listen=N a TCP listener on 127.0.0.1 (SO_REUSEADDR, backlog N);
 *               afterwards it must take a new connection
 *   tcp-established=N a TCP connection over loopback to this process,
 *               N bytes queued each way (at most 4096)
 *   udp=N       a UDP socket on 127.0.0.1 with N datagrams queued (at most
 *               64) from a bound sender; afterwards they come in order,
 *               each from that sender, and a new one gets through
 *   unix-listen=N a unix stream listener on a path with N connections not
 *               accepted yet (at most 8) and one accepted with bytes queued
 *   epoll=N     an epoll set watching N pipes with data, one of them through
 *               a descriptor that was closed since
 *   timerfd=S   a timerfd armed for 1000 s with an interval of S s
 *   signalfd=1  a signalfd for a blocked real-time signal
 *   inotify=1   an inotify watch on the process's directory
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/kcmp.h>

/* ---- output and hashing ------------------------------------------------ */

static int my_idx;

static void say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	ssize_t w;
	do
		w = write(1, buf, n);
	while (w < 0 && errno == EINTR);
}

static int bad_count;
#define BAD(...)                                                   \
	do {                                                       \
		bad_count++;                                       \
		char _m[400];                                      \
		snprintf(_m, sizeof(_m), __VA_ARGS__);             \
		say("BAD p%d: %s", my_idx, _m);                    \
	} while (0)

static void die(const char *what)
{
	say("BAD p%d: setup failed: %s: %s", my_idx, what, strerror(errno));
	_exit(2);
}

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
	h *= 0xff51afd7ed558ccdULL;
	return h ^ (h >> 29);
}

static uint64_t mix_bytes(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, b + i, 8);
		h = mix(h, w);
	}
	for (; i < n; i++)
		h = mix(h, b[i]);
	return mix(h, n);
}

/* The pattern every module writes: a function of a seed and a position. */
static uint64_t pat(uint64_t seed, uint64_t i)
{
	uint64_t z = seed * 0x100000001b3ULL + i + 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void fill(void *p, size_t n, uint64_t seed)
{
	uint64_t *w = p;
	for (size_t i = 0; i < n / 8; i++)
		w[i] = pat(seed, i);
}

/* Checks bytes @from to @to of a filled region; returns their hash and reports the first bad word. */
static uint64_t check_fill_part(const char *what, const void *p, size_t from, size_t to, uint64_t seed)
{
	const uint64_t *w = p;
	size_t first_bad = (size_t)-1, nbad = 0;
	for (size_t i = from / 8; i < to / 8; i++)
		if (w[i] != pat(seed, i)) {
			if (first_bad == (size_t)-1)
				first_bad = i;
			nbad++;
		}
	if (nbad)
		BAD("%s: %zu of %zu words differ, first at byte %zu", what, nbad, (to - from) / 8, first_bad * 8);
	return mix_bytes(0, (const char *)p + from, to - from);
}

static uint64_t check_fill(const char *what, const void *p, size_t n, uint64_t seed)
{
	return check_fill_part(what, p, 0, n, seed);
}

static void xwrite(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("write");
		c += w;
		n -= w;
	}
}

static ssize_t xread(int fd, void *p, size_t n)
{
	char *c = p;
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, c + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			break;
		if (r <= 0)
			break;
		got += r;
	}
	return got;
}

static char workdir[PATH_MAX];

static void pathf(char *out, const char *fmt, ...)
{
	char rel[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	snprintf(out, PATH_MAX, "%s/p%d/%s", workdir, my_idx, rel);
}

/* A file of @n bytes behind @fd, mapped shared and filled with a pattern. */
static void *map_shared_filled(int fd, size_t n, uint64_t seed, const char *what)
{
	void *p;

	if (fd < 0 || ftruncate(fd, n))
		die(what);
	p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		die(what);
	fill(p, n, seed);
	return p;
}

/* ---- modules ------------------------------------------------------------ */

/* Each module builds its state once (setup) and folds it into a hash, either
 * without disturbing it (final == 0, before the checkpoint) or reading it
 * back for good (final == 1, after the restore). Both folds must agree. */
struct module {
	const char *name;
	void (*setup)(long arg);
	uint64_t (*fold)(int final);
	long arg;
	int on;
};

/* mem; with dirty=P, SIGUSR2 rewrites its first P% with another pattern */
static uint64_t *mem_p;
static size_t mem_n, mem_dirty_n;
static void mem_setup(long mib)
{
	mem_n = (size_t)mib << 20;
	mem_p = mmap(NULL, mem_n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem_p == MAP_FAILED)
		die("mmap mem");
	fill(mem_p, mem_n, 1000 + my_idx);
}
static uint64_t mem_fold(int final)
{
	(void)final;
	if (!mem_dirty_n)
		return check_fill("mem", mem_p, mem_n, 1000 + my_idx);
	return mix(check_fill("mem (rewritten)", mem_p, mem_dirty_n, 1500 + my_idx),
		   check_fill_part("mem", mem_p, mem_dirty_n, mem_n, 1000 + my_idx));
}

/* dirty */
static long dirty_percent;
static volatile sig_atomic_t got_usr2;
static void on_dirty(int sig) { (void)sig; got_usr2 = 1; }
static void dirty_setup(long percent)
{
	struct sigaction sa = { .sa_handler = on_dirty };

	dirty_percent = percent;
	sigaction(SIGUSR2, &sa, NULL);
}
static void dirty_mem(void)
{
	mem_dirty_n = (mem_n / 100 * dirty_percent) & ~(size_t)4095;
	fill(mem_p, mem_dirty_n, 1500 + my_idx);
}
static uint64_t dirty_fold(int final)
{
	(void)final;
	return 0;
}

/* shanon */
static uint64_t *sh_p;
static size_t sh_n;
static void shanon_setup(long kib)
{
	sh_n = (size_t)kib << 10;
	sh_p = mmap(NULL, sh_n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh_p == MAP_FAILED)
		die("mmap shanon");
	fill(sh_p, sh_n, 2000 + my_idx);
}
static uint64_t shanon_fold(int final)
{
	(void)final;
	return check_fill("shared anonymous memory", sh_p, sh_n, 2000 + my_idx);
}

/* fmap-priv: the file keeps pattern A, the mapping has half its pages rewritten */
static char *fmp_p;
static size_t fmp_n;
static int fmp_fd;
static void fmap_priv_setup(long kib)
{
	char path[PATH_MAX];
	fmp_n = (size_t)kib << 10;
	pathf(path, "fmap-priv");
	fmp_fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fmp_fd < 0)
		die("open fmap-priv");
	char *buf = malloc(fmp_n);
	fill(buf, fmp_n, 3000 + my_idx);
	xwrite(fmp_fd, buf, fmp_n);
	free(buf);
	fmp_p = mmap(NULL, fmp_n, PROT_READ | PROT_WRITE, MAP_PRIVATE, fmp_fd, 0);
	if (fmp_p == MAP_FAILED)
		die("mmap fmap-priv");
	for (size_t off = 0; off < fmp_n; off += 8192)
		fill(fmp_p + off, 4096, 3100 + my_idx + off);
}
static uint64_t fmap_priv_fold(int final)
{
	(void)final;
	uint64_t h = 0;
	char *buf = malloc(fmp_n);
	if (pread(fmp_fd, buf, fmp_n, 0) != (ssize_t)fmp_n)
		BAD("fmap-priv: short read of the file");
	h = check_fill("fmap-priv file", buf, fmp_n, 3000 + my_idx);
	for (size_t off = 0; off < fmp_n; off += 4096) {
		if ((off / 4096) % 2 == 0)
			h = mix(h, check_fill("fmap-priv changed page", fmp_p + off, 4096, 3100 + my_idx + off));
		else if (memcmp(fmp_p + off, buf + off, 4096)) {
			BAD("fmap-priv: untouched page at %zu differs from the file", off);
			h = mix(h, 1);
		}
	}
	free(buf);
	return h;
}

/* fmap-shared: writes through a shared mapping must reach the file */
static char *fms_p;
static size_t fms_n;
static int fms_fd;
static void fmap_shared_setup(long kib)
{
	char path[PATH_MAX];
	fms_n = (size_t)kib << 10;
	pathf(path, "fmap-shared");
	fms_fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	fms_p = map_shared_filled(fms_fd, fms_n, 4000 + my_idx, "fmap-shared");
}
static uint64_t fmap_shared_fold(int final)
{
	(void)final;
	uint64_t h = check_fill("fmap-shared mapping", fms_p, fms_n, 4000 + my_idx);
	char *buf = malloc(fms_n);
	if (pread(fms_fd, buf, fms_n, 0) != (ssize_t)fms_n || memcmp(buf, fms_p, fms_n)) {
		BAD("fmap-shared: the file and the mapping differ");
		h = mix(h, 1);
	}
	free(buf);
	return h;
}

/* brk */
static char *brk_start;
static size_t brk_n;
static void brk_setup(long kib)
{
	brk_n = (size_t)kib << 10;
	brk_start = sbrk(0);
	if (sbrk(brk_n) == (void *)-1)
		die("sbrk");
	fill(brk_start, brk_n, 5000 + my_idx);
}
static uint64_t brk_fold(int final)
{
	(void)final;
	char *end = sbrk(0);
	if ((size_t)(end - brk_start) < brk_n)
		BAD("brk: heap shrank from %zu to %zu bytes", brk_n, (size_t)(end - brk_start));
	return mix(check_fill("brk heap", brk_start, brk_n, 5000 + my_idx), (uint64_t)(uintptr_t)brk_start);
}

/* regfile */
struct rf {
	int fd;
	size_t size;
	off_t off;
	int append;
};
static struct rf *rfs;
static int nrf;
static void regfile_setup(long n)
{
	nrf = n;
	rfs = calloc(n ? n : 1, sizeof(*rfs));
	for (int i = 0; i < n; i++) {
		char path[PATH_MAX];
		pathf(path, "f%d", i);
		rfs[i].append = i % 3 == 2;
		rfs[i].fd = open(path, O_RDWR | O_CREAT | O_TRUNC | (rfs[i].append ? O_APPEND : 0), 0600);
		if (rfs[i].fd < 0)
			die("open regfile");
		rfs[i].size = 1024 + (i % 7) * 512;
		char *buf = malloc(rfs[i].size);
		fill(buf, rfs[i].size, 6000 + i * 64 + my_idx);
		xwrite(rfs[i].fd, buf, rfs[i].size);
		free(buf);
		rfs[i].off = (i * 131) % rfs[i].size;
		lseek(rfs[i].fd, rfs[i].off, SEEK_SET);
	}
}
static uint64_t regfile_fold(int final)
{
	(void)final;
	uint64_t h = 0;
	for (int i = 0; i < nrf; i++) {
		struct rf *f = &rfs[i];
		off_t off = lseek(f->fd, 0, SEEK_CUR);
		int fl = fcntl(f->fd, F_GETFL);
		if (off != f->off)
			BAD("regfile %d (fd %d): offset %lld, expected %lld", i, f->fd, (long long)off, (long long)f->off);
		if (fl < 0 || !!(fl & O_APPEND) != f->append || (fl & O_ACCMODE) != O_RDWR)
			BAD("regfile %d (fd %d): flags 0x%x", i, f->fd, fl);
		char *buf = malloc(f->size);
		if (pread(f->fd, buf, f->size, 0) != (ssize_t)f->size)
			BAD("regfile %d: short read", i);
		h = mix(h, check_fill("regfile content", buf, f->size, 6000 + i * 64 + my_idx));
		h = mix(mix(mix(h, f->fd), (uint64_t)off), (uint64_t)fl);
		free(buf);
	}
	return h;
}

/* Something holding bytes in flight: folded from FIONREAD and the expected
 * bytes before the checkpoint, from what read(2) returns afterwards. */
static uint64_t fold_queue(const char *what, int rfd, size_t want, uint64_t seed, int final)
{
	int avail = -1;
	if (ioctl(rfd, FIONREAD, &avail) < 0)
		avail = -1;
	if (avail != (int)want)
		BAD("%s (fd %d): %d bytes queued, expected %zu", what, rfd, avail, want);
	unsigned char buf[4096], exp[4096];
	fill(exp, sizeof(exp), seed);
	uint64_t h = mix(0, (uint64_t)avail);
	if (!final)
		return mix_bytes(h, exp, want);
	int fl = fcntl(rfd, F_GETFL);
	fcntl(rfd, F_SETFL, fl | O_NONBLOCK);
	ssize_t got = xread(rfd, buf, want);
	fcntl(rfd, F_SETFL, fl);
	if (got != (ssize_t)want || memcmp(buf, exp, want))
		BAD("%s (fd %d): read back %zd bytes, %s", what, rfd, got,
		    got == (ssize_t)want ? "content differs" : "short");
	return mix_bytes(h, buf, got < 0 ? 0 : got);
}

/* pipe */
static int (*pipes)[2];
static int npipes;
static size_t pipe_len(int i) { return 64 + (i * 37) % 1000; }
static void pipe_setup(long n)
{
	npipes = n;
	pipes = calloc(n ? n : 1, sizeof(*pipes));
	for (int i = 0; i < n; i++) {
		if (pipe(pipes[i]))
			die("pipe");
		unsigned char buf[4096];
		fill(buf, sizeof(buf), 7000 + i * 64 + my_idx);
		xwrite(pipes[i][1], buf, pipe_len(i));
	}
}
static uint64_t pipe_fold(int final)
{
	uint64_t h = 0;
	for (int i = 0; i < npipes; i++)
		h = mix(h, fold_queue("pipe", pipes[i][0], pipe_len(i), 7000 + i * 64 + my_idx, final));
	return h;
}

/* fifo */
static int fifo_fd;
static size_t fifo_n;
static void fifo_setup(long n)
{
	char path[PATH_MAX];
	fifo_n = n > 4096 ? 4096 : n;
	pathf(path, "fifo");
	unlink(path);
	if (mkfifo(path, 0600))
		die("mkfifo");
	fifo_fd = open(path, O_RDWR);
	if (fifo_fd < 0)
		die("open fifo");
	unsigned char buf[4096];
	fill(buf, sizeof(buf), 8000 + my_idx);
	xwrite(fifo_fd, buf, fifo_n);
}
static uint64_t fifo_fold(int final)
{
	return fold_queue("fifo", fifo_fd, fifo_n, 8000 + my_idx, final);
}

/* socketpair */
static int sp[2];
static size_t sp_n;
static void socketpair_setup(long n)
{
	sp_n = n > 4096 ? 4096 : n;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp))
		die("socketpair");
	unsigned char buf[4096];
	fill(buf, sizeof(buf), 9000 + my_idx);
	xwrite(sp[0], buf, sp_n);
}
static uint64_t socketpair_fold(int final)
{
	return fold_queue("socketpair", sp[1], sp_n, 9000 + my_idx, final);
}

/* sockets: the address and options of one, and a new connection through a listener */
static int sock_int(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);
	getsockopt(fd, level, name, &v, &len);
	return v;
}
static unsigned port_of(int fd)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	if (getsockname(fd, (void *)&a, &len))
		return 0;
	return ntohs(a.sin_port);
}
static struct sockaddr_in loopback(unsigned port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	return a;
}
/* Connect to the listener `l` at `addr` and accept: one byte each way must go through. */
static void try_connection(const char *what, int l, const void *addr, socklen_t len, int family)
{
	int c = socket(family, SOCK_STREAM, 0), a = -1;
	char x = 'x', y = 0;
	if (c < 0 || connect(c, addr, len) || (a = accept(l, NULL, NULL)) < 0 || write(c, &x, 1) != 1 || read(a, &y, 1) != 1 || y != x ||
	    write(a, &x, 1) != 1 || read(c, &y, 1) != 1)
		BAD("%s: no new connection through the listener (%s)", what, strerror(errno));
	close(c);
	close(a);
}

/* tcp-listen */
static int tl_fd;
static unsigned tl_port;
static void tcp_listen_setup(long backlog)
{
	struct sockaddr_in a = loopback(0);
	int one = 1;
	tl_fd = socket(AF_INET, SOCK_STREAM, 0);
	if (tl_fd < 0 || setsockopt(tl_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) || bind(tl_fd, (void *)&a, sizeof(a)) ||
	    listen(tl_fd, backlog))
		die("tcp listen");
	tl_port = port_of(tl_fd);
}
static uint64_t tcp_listen_fold(int final)
{
	int reuse = sock_int(tl_fd, SOL_SOCKET, SO_REUSEADDR), listening = sock_int(tl_fd, SOL_SOCKET, SO_ACCEPTCONN);
	if (port_of(tl_fd) != tl_port || reuse != 1 || listening != 1)
		BAD("tcp-listen: port %u (was %u), SO_REUSEADDR %d, listening %d", port_of(tl_fd), tl_port, reuse, listening);
	if (final) {
		struct sockaddr_in a = loopback(tl_port);
		try_connection("tcp-listen", tl_fd, &a, sizeof(a), AF_INET);
	}
	return mix(mix(mix(0, port_of(tl_fd) == tl_port), reuse), listening);
}

/* tcp-established: both ends in this process, bytes queued each way */
static int te_c, te_a;
static size_t te_n;
static void tcp_established_setup(long n)
{
	struct sockaddr_in a = loopback(0);
	socklen_t len = sizeof(a);
	unsigned char buf[4096];
	int l = socket(AF_INET, SOCK_STREAM, 0), avail = 0;
	te_n = n > 4096 ? 4096 : n;
	if (l < 0 || bind(l, (void *)&a, sizeof(a)) || listen(l, 1) || getsockname(l, (void *)&a, &len))
		die("tcp established listener");
	te_c = socket(AF_INET, SOCK_STREAM, 0);
	if (te_c < 0 || connect(te_c, (void *)&a, sizeof(a)) || (te_a = accept(l, NULL, NULL)) < 0)
		die("tcp established connect");
	close(l);
	fill(buf, sizeof(buf), 12000 + my_idx);
	xwrite(te_c, buf, te_n);
	fill(buf, sizeof(buf), 12100 + my_idx);
	xwrite(te_a, buf, te_n);
	/* loopback delivers at once; make sure before anyone looks */
	for (int i = 0; i < 1000 && (ioctl(te_a, FIONREAD, &avail) || avail != (int)te_n); i++)
		usleep(1000);
}
static uint64_t tcp_established_fold(int final)
{
	uint64_t h = fold_queue("tcp-established (accepted end)", te_a, te_n, 12000 + my_idx, final);
	h = mix(h, fold_queue("tcp-established (connecting end)", te_c, te_n, 12100 + my_idx, final));
	if (final) {
		char x = 'y', y = 0;
		if (write(te_c, &x, 1) != 1 || read(te_a, &y, 1) != 1 || y != x || write(te_a, &x, 1) != 1 || read(te_c, &y, 1) != 1)
			BAD("tcp-established: the connection no longer carries bytes (%s)", strerror(errno));
	}
	return h;
}

/* udp: datagrams queued to a bound socket keep their order, sizes and sender */
static int ud_r, ud_s, ud_n;
static unsigned ud_sport;
static size_t udp_len(int i) { return 64 + i * 13; }
static void udp_setup(long n)
{
	struct sockaddr_in a = loopback(0);
	unsigned char buf[4096];
	int avail = 0;
	ud_n = n > 64 ? 64 : n;
	ud_r = socket(AF_INET, SOCK_DGRAM, 0);
	ud_s = socket(AF_INET, SOCK_DGRAM, 0);
	if (ud_r < 0 || ud_s < 0 || bind(ud_r, (void *)&a, sizeof(a)) || bind(ud_s, (void *)&a, sizeof(a)))
		die("udp sockets");
	ud_sport = port_of(ud_s);
	a = loopback(port_of(ud_r));
	for (int i = 0; i < ud_n; i++) {
		fill(buf, sizeof(buf), 13000 + i * 64 + my_idx);
		if (sendto(ud_s, buf, udp_len(i), 0, (void *)&a, sizeof(a)) != (ssize_t)udp_len(i))
			die("udp sendto");
	}
	/* loopback delivers at once; make sure before anyone looks */
	for (int i = 0; i < 1000 && ud_n && (ioctl(ud_r, FIONREAD, &avail) || avail != (int)udp_len(0)); i++)
		usleep(1000);
}
static uint64_t udp_fold(int final)
{
	unsigned char buf[4096], exp[4096];
	uint64_t h = 0;
	int avail = -1;
	if (ud_n && (ioctl(ud_r, FIONREAD, &avail) || avail != (int)udp_len(0)))
		BAD("udp: the first datagram queued is %d bytes, expected %zu", avail, udp_len(0));
	for (int i = 0; i < ud_n; i++) {
		struct sockaddr_in from = { 0 };
		socklen_t len = sizeof(from);
		ssize_t got = udp_len(i);
		fill(exp, sizeof(exp), 13000 + i * 64 + my_idx);
		memcpy(buf, exp, udp_len(i));
		from.sin_port = htons(ud_sport);
		if (final) {
			got = recvfrom(ud_r, buf, sizeof(buf), MSG_DONTWAIT, (void *)&from, &len);
			if (got != (ssize_t)udp_len(i) || memcmp(buf, exp, got) || ntohs(from.sin_port) != ud_sport)
				BAD("udp: datagram %d: %zd bytes from port %u, expected %zu from %u", i, got, ntohs(from.sin_port), udp_len(i),
				    ud_sport);
		}
		h = mix(mix_bytes(mix(h, ntohs(from.sin_port) == ud_sport), buf, got < 0 ? 0 : got), got);
	}
	if (final) {
		struct sockaddr_in a = loopback(port_of(ud_r));
		char x = 'u', y = 0;
		if (recv(ud_r, &y, 1, MSG_DONTWAIT) != -1 || sendto(ud_s, &x, 1, 0, (void *)&a, sizeof(a)) != 1 || recv(ud_r, &y, 1, 0) != 1 || y != x)
			BAD("udp: the socket no longer receives just what is sent to it (%s)", strerror(errno));
	}
	return h;
}

/* unix-listen: connections not accepted yet keep their order */
static int ux_l, ux_a, ux_ac, ux_c[8], ux_nc;
static char ux_path[PATH_MAX];
/* The address of the socket file `path`: one longer than sun_path holds is refused, not cut short. */
static struct sockaddr_un unix_address(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(a.sun_path)) {
		say("BAD p%d: setup failed: unix socket %s: longer than the %zu bytes sun_path holds (use a shorter WORKDIR)", my_idx, path,
		    sizeof(a.sun_path) - 1);
		_exit(2);
	}
	memcpy(a.sun_path, path, strlen(path) + 1);
	return a;
}
static void unix_listen_setup(long n)
{
	struct sockaddr_un a;
	unsigned char buf[4096];
	ux_nc = n > 8 ? 8 : n;
	pathf(ux_path, "listen.sock");
	a = unix_address(ux_path);
	ux_l = socket(AF_UNIX, SOCK_STREAM, 0);
	if (ux_l < 0 || bind(ux_l, (void *)&a, sizeof(a)) || listen(ux_l, 8))
		die("unix listen");
	ux_ac = socket(AF_UNIX, SOCK_STREAM, 0);
	if (ux_ac < 0 || connect(ux_ac, (void *)&a, sizeof(a)) || (ux_a = accept(ux_l, NULL, NULL)) < 0)
		die("unix accept");
	fill(buf, sizeof(buf), 13000 + my_idx);
	xwrite(ux_ac, buf, 100);
	for (int i = 0; i < ux_nc; i++)
		if ((ux_c[i] = socket(AF_UNIX, SOCK_STREAM, 0)) < 0 || connect(ux_c[i], (void *)&a, sizeof(a)))
			die("unix connect");
}
static uint64_t unix_listen_fold(int final)
{
	struct sockaddr_un a;
	socklen_t len = sizeof(a);
	int named = !getsockname(ux_l, (void *)&a, &len) && !strcmp(a.sun_path, ux_path);
	if (!named)
		BAD("unix-listen: the listener is no longer bound to %s", ux_path);
	uint64_t h = mix(fold_queue("unix-listen (accepted)", ux_a, 100, 13000 + my_idx, final), named);
	if (final) {
		for (int i = 0; i < ux_nc; i++) {
			unsigned char k = i, got = 0xff;
			int s = -1;
			if (write(ux_c[i], &k, 1) != 1 || (s = accept(ux_l, NULL, NULL)) < 0 || read(s, &got, 1) != 1 || got != k)
				BAD("unix-listen: connection %d not accepted in its turn (got %d: %s)", i, got, strerror(errno));
			close(s);
		}
		struct sockaddr_un to = unix_address(ux_path);
		try_connection("unix-listen", ux_l, &to, sizeof(to), AF_UNIX);
	}
	return mix(h, ux_nc);
}

/* unlinked */
static int ul_fd;
static size_t ul_n;
static void unlinked_setup(long kib)
{
	char path[PATH_MAX];
	ul_n = (size_t)kib << 10;
	pathf(path, "unlinked");
	ul_fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (ul_fd < 0)
		die("open unlinked");
	char *buf = malloc(ul_n);
	fill(buf, ul_n, 10000 + my_idx);
	xwrite(ul_fd, buf, ul_n);
	free(buf);
	lseek(ul_fd, ul_n / 3, SEEK_SET);
	if (unlink(path))
		die("unlink");
}
static uint64_t unlinked_fold(int final)
{
	(void)final;
	struct stat st;
	if (fstat(ul_fd, &st) || st.st_nlink != 0 || (size_t)st.st_size != ul_n)
		BAD("unlinked: fd %d is no longer an unlinked file of %zu bytes", ul_fd, ul_n);
	off_t off = lseek(ul_fd, 0, SEEK_CUR);
	if (off != (off_t)(ul_n / 3))
		BAD("unlinked: offset %lld, expected %zu", (long long)off, ul_n / 3);
	char *buf = malloc(ul_n);
	if (pread(ul_fd, buf, ul_n, 0) != (ssize_t)ul_n)
		BAD("unlinked: short read");
	uint64_t h = mix(check_fill("unlinked file", buf, ul_n, 10000 + my_idx), (uint64_t)off);
	free(buf);
	return h;
}

/* eventfd: the counter is visible in fdinfo before, read(2) consumes it after */
static int ev_fd;
static long ev_val;
static void eventfd_setup(long v)
{
	ev_val = v;
	ev_fd = eventfd(v, 0);
	if (ev_fd < 0)
		die("eventfd");
}
static uint64_t eventfd_fold(int final)
{
	uint64_t val = (uint64_t)-1;
	if (!final) {
		char path[64], line[256];
		snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", ev_fd);
		FILE *f = fopen(path, "r");
		while (f && fgets(line, sizeof(line), f))
			if (sscanf(line, "eventfd-count: %lx", &val) == 1)
				break;
		if (f)
			fclose(f);
	} else {
		int fl = fcntl(ev_fd, F_GETFL);
		fcntl(ev_fd, F_SETFL, fl | O_NONBLOCK);
		if (read(ev_fd, &val, 8) != 8)
			val = (uint64_t)-1;
	}
	if (val != (uint64_t)ev_val)
		BAD("eventfd: counter %lld, expected %ld", (long long)val, ev_val);
	return mix(0, val);
}

/* sigaction */
static void on_usr2(int sig) { (void)sig; }
static void sigaction_setup(long arg)
{
	(void)arg;
	struct sigaction sa = { .sa_handler = on_usr2, .sa_flags = SA_RESTART | SA_NODEFER };
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGHUP);
	sigaddset(&sa.sa_mask, SIGWINCH);
	if (sigaction(SIGUSR2, &sa, NULL))
		die("sigaction");
}
static uint64_t sigaction_fold(int final)
{
	(void)final;
	struct sigaction sa;
	sigaction(SIGUSR2, NULL, &sa);
	int flags = sa.sa_flags & (SA_RESTART | SA_NODEFER | SA_SIGINFO | SA_ONSTACK | SA_RESETHAND);
	int m = sigismember(&sa.sa_mask, SIGHUP) * 2 + sigismember(&sa.sa_mask, SIGWINCH);
	if (sa.sa_handler != on_usr2 || flags != (SA_RESTART | SA_NODEFER) || m != 3)
		BAD("sigaction: SIGUSR2 handler %p flags 0x%x mask bits %d", (void *)sa.sa_handler, flags, m);
	return mix(mix(mix(0, (uint64_t)(uintptr_t)sa.sa_handler), flags), m);
}

/* sigpending: a private real-time signal queued with a value */
#define PENDSIG (SIGRTMIN + 3)
static void sigpending_setup(long arg)
{
	(void)arg;
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, PENDSIG);
	sigprocmask(SIG_BLOCK, &s, NULL);
	union sigval v = { .sival_int = 4242 };
	if (sigqueue(getpid(), PENDSIG, v))
		die("sigqueue");
}
static uint64_t sigpending_fold(int final)
{
	sigset_t s;
	sigpending(&s);
	int pend = sigismember(&s, PENDSIG);
	if (!pend)
		BAD("sigpending: signal %d is no longer pending", PENDSIG);
	uint64_t h = mix(0, pend);
	if (final && pend) {
		siginfo_t si;
		struct timespec zero = { 0, 0 };
		sigset_t w;
		sigemptyset(&w);
		sigaddset(&w, PENDSIG);
		int got = sigtimedwait(&w, &si, &zero);
		if (got != PENDSIG || si.si_value.sival_int != 4242)
			BAD("sigpending: got signal %d value %d", got, got == PENDSIG ? si.si_value.sival_int : -1);
	}
	return h;
}

/* cwd */
static char cwd_want[PATH_MAX];
static void cwd_setup(long arg)
{
	(void)arg;
	pathf(cwd_want, "cwd-here");
	if (mkdir(cwd_want, 0700) && errno != EEXIST)
		die("mkdir cwd");
	if (chdir(cwd_want))
		die("chdir");
}
static uint64_t cwd_fold(int final)
{
	(void)final;
	char now[PATH_MAX] = "";
	if (!getcwd(now, sizeof(now)) || strcmp(now, cwd_want))
		BAD("cwd: now \"%s\", expected \"%s\"", now, cwd_want);
	return mix_bytes(0, now, strlen(now));
}

/* rlimit */
static void rlimit_setup(long arg)
{
	(void)arg;
	struct rlimit r = { 4096 * 3, 4096 * 7 };
	if (setrlimit(RLIMIT_CORE, &r))
		die("setrlimit");
}
static uint64_t rlimit_fold(int final)
{
	(void)final;
	struct rlimit r;
	getrlimit(RLIMIT_CORE, &r);
	if (r.rlim_cur != 4096 * 3 || r.rlim_max != 4096 * 7)
		BAD("rlimit: RLIMIT_CORE %llu/%llu", (unsigned long long)r.rlim_cur, (unsigned long long)r.rlim_max);
	return mix(mix(0, r.rlim_cur), r.rlim_max);
}

/* umask */
static void umask_setup(long arg)
{
	(void)arg;
	umask(0027);
}
static uint64_t umask_fold(int final)
{
	(void)final;
	mode_t m = umask(0);
	umask(m);
	if (m != 0027)
		BAD("umask: %03o, expected 027", m);
	return mix(0, m);
}

/* memfd: a name, contents, seals, and a shared mapping that writes through */
static int mfd;
static char *mfd_p;
static size_t mfd_n;
#define MFD_SEALS (F_SEAL_SHRINK | F_SEAL_GROW)
static void memfd_setup(long kib)
{
	mfd_n = (size_t)(kib < 4 ? 4 : kib) << 10;
	mfd = memfd_create("wl-memfd", MFD_ALLOW_SEALING);
	mfd_p = map_shared_filled(mfd, mfd_n, 12000 + my_idx, "memfd");
	if (fcntl(mfd, F_ADD_SEALS, MFD_SEALS))
		die("F_ADD_SEALS");
	lseek(mfd, mfd_n / 2, SEEK_SET);
}
static uint64_t memfd_fold(int final)
{
	(void)final;
	char link[64], name[PATH_MAX] = "";
	snprintf(link, sizeof(link), "/proc/self/fd/%d", mfd);
	ssize_t n = readlink(link, name, sizeof(name) - 1);
	if (n < 0 || strncmp(name, "/memfd:wl-memfd", 15))
		BAD("memfd: fd %d is %s", mfd, n < 0 ? "gone" : name);
	int seals = fcntl(mfd, F_GET_SEALS);
	if (seals != MFD_SEALS)
		BAD("memfd: seals 0x%x, expected 0x%x", seals, MFD_SEALS);
	off_t off = lseek(mfd, 0, SEEK_CUR);
	if (off != (off_t)(mfd_n / 2))
		BAD("memfd: offset %lld, expected %zu", (long long)off, mfd_n / 2);
	/* the mapping and the fd must still be the same object */
	uint64_t word;
	mfd_p[0] ^= 1;
	if (pread(mfd, &word, 8, 0) != 8 || (word & 0xff) != (uint64_t)(unsigned char)mfd_p[0])
		BAD("memfd: the mapping no longer writes through to the fd");
	mfd_p[0] ^= 1;
	uint64_t h = mix(mix(check_fill("memfd", mfd_p, mfd_n, 12000 + my_idx), seals), (uint64_t)off);
	return h;
}

/* zombie: an exited child the process has not waited for */
static pid_t zpid;
static long zcode;
static void zombie_setup(long v)
{
	zcode = v & 0x7f;
	zpid = fork();
	if (zpid < 0)
		die("fork zombie");
	if (zpid == 0)
		_exit(zcode);
	siginfo_t si = { 0 };
	if (waitid(P_PID, zpid, &si, WEXITED | WNOWAIT))
		die("waitid zombie");
}
static uint64_t zombie_fold(int final)
{
	siginfo_t si = { 0 };
	int r = waitid(P_PID, zpid, &si, WEXITED | WNOHANG | (final ? 0 : WNOWAIT));
	if (r || si.si_pid != zpid || si.si_code != CLD_EXITED || si.si_status != zcode)
		BAD("zombie: child %d: waitid %d, pid %d code %d status %d, expected an exit with %ld",
		    zpid, r, si.si_pid, si.si_code, si.si_status, zcode);
	return mix(mix(0, zpid), si.si_status);
}

/* ptimer: an armed POSIX timer with an interval; it must stay armed */
static timer_t ptimer;
static const struct itimerspec ptimer_want = { { 500, 0 }, { 1000, 0 } };
static void ptimer_setup(long arg)
{
	(void)arg;
	struct sigevent ev = { .sigev_notify = SIGEV_NONE };
	if (timer_create(CLOCK_MONOTONIC, &ev, &ptimer) || timer_settime(ptimer, 0, &ptimer_want, NULL))
		die("timer_create");
}
static uint64_t ptimer_fold(int final)
{
	(void)final;
	struct itimerspec now;
	if (timer_gettime(ptimer, &now))
		BAD("ptimer: timer %ld: %s", (long)(intptr_t)ptimer, strerror(errno));
	else if (now.it_interval.tv_sec != ptimer_want.it_interval.tv_sec || now.it_value.tv_sec > ptimer_want.it_value.tv_sec ||
		 (now.it_value.tv_sec == 0 && now.it_value.tv_nsec == 0))
		BAD("ptimer: interval %lds, %lds left; expected 500s and at most 1000s, armed",
		    (long)now.it_interval.tv_sec, (long)now.it_value.tv_sec);
	return mix(mix(0, (uint64_t)(intptr_t)ptimer), ptimer_want.it_interval.tv_sec);
}

/* itimer: ITIMER_REAL armed far in the future, with an interval */
static void itimer_setup(long arg)
{
	(void)arg;
	struct itimerval it = { { 300, 0 }, { 900, 0 } };
	if (setitimer(ITIMER_REAL, &it, NULL))
		die("setitimer");
}
static uint64_t itimer_fold(int final)
{
	struct itimerval it;
	getitimer(ITIMER_REAL, &it);
	if (it.it_interval.tv_sec != 300 || it.it_value.tv_sec > 900 || (!it.it_value.tv_sec && !it.it_value.tv_usec))
		BAD("itimer: interval %lds, %lds left; expected 300s and at most 900s, armed",
		    (long)it.it_interval.tv_sec, (long)it.it_value.tv_sec);
	if (final) {
		struct itimerval off = { { 0, 0 }, { 0, 0 } };
		setitimer(ITIMER_REAL, &off, NULL);
	}
	return mix(0, it.it_interval.tv_sec);
}

/* sched: SCHED_BATCH with a nice value, a personality and a timer slack */
static int sched_nice;
static void sched_setup(long arg)
{
	struct sched_param sp = { 0 };
	sched_nice = (int)arg;
	if (setpriority(PRIO_PROCESS, 0, sched_nice) || sched_setscheduler(0, SCHED_BATCH, &sp) ||
	    personality(ADDR_NO_RANDOMIZE) < 0 || prctl(PR_SET_TIMERSLACK, 123456))
		die("sched");
}
static uint64_t sched_fold(int final)
{
	(void)final;
	errno = 0;
	int nice = getpriority(PRIO_PROCESS, 0);
	if (sched_getscheduler(0) != SCHED_BATCH || nice != sched_nice || errno)
		BAD("sched: policy %d nice %d; expected SCHED_BATCH nice %d", sched_getscheduler(0), nice, sched_nice);
	if (personality(0xffffffff) != ADDR_NO_RANDOMIZE || prctl(PR_GET_TIMERSLACK) != 123456)
		BAD("sched: personality %#x timer slack %d", personality(0xffffffff), prctl(PR_GET_TIMERSLACK));
	return mix(0, (uint64_t)sched_nice);
}

/* prctl: what prctl(2) sets on a process, and /proc/self/exe */
static char prctl_exe[PATH_MAX];
static void prctl_setup(long arg)
{
	(void)arg;
	if (readlink("/proc/self/exe", prctl_exe, sizeof(prctl_exe) - 1) < 0 || prctl(PR_SET_NAME, "wl-prctl") ||
	    prctl(PR_SET_PDEATHSIG, SIGURG) || prctl(PR_SET_DUMPABLE, 0) || prctl(PR_SET_CHILD_SUBREAPER, 1) ||
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		die("prctl");
}
static uint64_t prctl_fold(int final)
{
	(void)final;
	char name[16] = "", exe[PATH_MAX] = "";
	int pdeath = 0, subreaper = 0;
	prctl(PR_GET_NAME, name);
	prctl(PR_GET_PDEATHSIG, &pdeath);
	prctl(PR_GET_CHILD_SUBREAPER, &subreaper);
	if (strcmp(name, "wl-prctl") || pdeath != SIGURG || prctl(PR_GET_DUMPABLE) != 0 || !subreaper ||
	    prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		BAD("prctl: name %s pdeathsig %d dumpable %d subreaper %d no_new_privs %d", name, pdeath,
		    prctl(PR_GET_DUMPABLE), subreaper, prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
	if (readlink("/proc/self/exe", exe, sizeof(exe) - 1) < 0 || strcmp(exe, prctl_exe))
		BAD("prctl: /proc/self/exe is %s, was %s", exe, prctl_exe);
	return mix(0, (uint64_t)pdeath);
}

/* madvise: three mappings with madvise(2) flags, as smaps shows them */
static char *madv_map[3];
static size_t madv_len;
static const int madv_advice[3] = { MADV_DONTFORK, MADV_DONTDUMP, MADV_WIPEONFORK };
static const char *const madv_flag[3] = { " dc", " dd", " wf" };
static void madvise_setup(long arg)
{
	madv_len = (size_t)arg * 1024;
	for (int i = 0; i < 3; i++) {
		madv_map[i] = mmap(NULL, madv_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (madv_map[i] == MAP_FAILED || madvise(madv_map[i], madv_len, madv_advice[i]))
			die("madvise");
		memset(madv_map[i], 'a' + i, madv_len);
	}
}
static uint64_t madvise_fold(int final)
{
	(void)final;
	char line[512], want[32];
	uint64_t h = 0;
	for (int i = 0; i < 3; i++) {
		FILE *f = fopen("/proc/self/smaps", "r");
		int in = 0, found = 0;
		snprintf(want, sizeof(want), "%lx-", (unsigned long)madv_map[i]);
		while (f && fgets(line, sizeof(line), f)) {
			if (!strncmp(line, "VmFlags:", 8))
				found |= in && strstr(line, madv_flag[i]);
			else if (strchr(line, '-') && strchr(line, '-') < strchr(line, ' '))
				in = !strncmp(line, want, strlen(want));
		}
		if (f)
			fclose(f);
		if (!found)
			BAD("madvise: the mapping at %p lost its%s flag", (void *)madv_map[i], madv_flag[i]);
		h = mix(h, (uint64_t)madv_map[i][madv_len - 1]);
	}
	return h;
}

/* caps: a root process that gave up CAP_SYS_BOOT and CAP_SYS_TIME */
#define CAPS_GONE ((1u << CAP_SYS_BOOT) | (1u << CAP_SYS_TIME))
static struct __user_cap_data_struct caps_want[2];
static int caps_get(struct __user_cap_data_struct *d)
{
	struct __user_cap_header_struct hd = { _LINUX_CAPABILITY_VERSION_3, 0 };
	return syscall(SYS_capget, &hd, d);
}
static void caps_setup(long arg)
{
	(void)arg;
	struct __user_cap_header_struct hd = { _LINUX_CAPABILITY_VERSION_3, 0 };
	if (prctl(PR_CAPBSET_DROP, CAP_SYS_BOOT) || prctl(PR_CAPBSET_DROP, CAP_SYS_TIME) || caps_get(caps_want))
		die("caps (the probe needs root)");
	caps_want[0].effective &= ~CAPS_GONE;
	caps_want[0].permitted &= ~CAPS_GONE;
	if (syscall(SYS_capset, &hd, caps_want))
		die("capset");
}
static uint64_t caps_fold(int final)
{
	(void)final;
	struct __user_cap_data_struct d[2];
	if (caps_get(d) || memcmp(d, caps_want, sizeof(d)))
		BAD("caps: effective %08x permitted %08x, expected %08x %08x", d[0].effective, d[0].permitted,
		    caps_want[0].effective, caps_want[0].permitted);
	if (prctl(PR_CAPBSET_READ, CAP_SYS_BOOT) != 0 || prctl(PR_CAPBSET_READ, CAP_SYS_TIME) != 0 ||
	    prctl(PR_CAPBSET_READ, CAP_KILL) != 1)
		BAD("caps: the bounding set changed");
	return mix(mix(0, d[0].effective), d[0].permitted);
}

/* sysvshm: a private segment, attached and filled, in an IPC namespace of our own */
static int shm_id;
static char *shm_p;
static size_t shm_n;
static void sysvshm_setup(long kib)
{
	if (unshare(CLONE_NEWIPC))
		die("unshare(CLONE_NEWIPC)");
	shm_n = (size_t)(kib < 4 ? 4 : kib) << 10;
	shm_id = shmget(IPC_PRIVATE, shm_n, IPC_CREAT | 0600);
	if (shm_id < 0)
		die("shmget");
	shm_p = shmat(shm_id, NULL, 0);
	if (shm_p == (void *)-1)
		die("shmat");
	fill(shm_p, shm_n, 13000 + my_idx);
}
static uint64_t sysvshm_fold(int final)
{
	struct shmid_ds ds;
	if (shmctl(shm_id, IPC_STAT, &ds) || ds.shm_segsz != shm_n || ds.shm_nattch < 1)
		BAD("sysvshm: segment %d is gone or changed", shm_id);
	uint64_t h = mix(check_fill("sysvshm", shm_p, shm_n, 13000 + my_idx), shm_id);
	if (final)
		shmctl(shm_id, IPC_RMID, NULL);
	return h;
}

/* fdtable: a child created with CLONE_FILES; both must still share the table */
static pid_t fdt_pid;
static int fdt_child(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return 0;
}
static void fdtable_setup(long arg)
{
	(void)arg;
	size_t sz = 64 << 10;
	char *stack = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (stack == MAP_FAILED)
		die("mmap stack");
	fdt_pid = clone(fdt_child, stack + sz, CLONE_FILES | SIGCHLD, NULL);
	if (fdt_pid < 0)
		die("clone CLONE_FILES");
}
static uint64_t fdtable_fold(int final)
{
	long same = syscall(SYS_kcmp, getpid(), fdt_pid, KCMP_FILES, 0, 0);
	if (same != 0)
		BAD("fdtable: pid %d no longer shares the fd table (kcmp %ld)", fdt_pid, same);
	if (final) {
		int st;
		kill(fdt_pid, SIGKILL);
		waitpid(fdt_pid, &st, 0);
	}
	return mix(0, same);
}

/* cow: pages a forked child still shares with its parent, copy-on-write */
static char *cow_p;
static size_t cow_n;
static pid_t cow_pid;
/* The physical page behind an address of a task (0 unless present, and root). */
static uint64_t cow_frame(pid_t pid, const void *addr)
{
	char path[64];
	uint64_t e = 0;
	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	int fd = open(path, O_RDONLY);
	if (fd < 0 || pread(fd, &e, 8, (uintptr_t)addr / 4096 * 8) != 8)
		e = 0;
	if (fd >= 0)
		close(fd);
	return (e >> 63) ? e & ((1ULL << 55) - 1) : 0;
}
static void cow_setup(long kib)
{
	int sync[2];
	cow_n = (size_t)(kib < 16 ? 16 : kib) << 10;
	cow_p = mmap(NULL, cow_n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (cow_p == MAP_FAILED || pipe(sync))
		die("mmap cow");
	fill(cow_p, cow_n, 14000 + my_idx);
	cow_pid = fork();
	if (cow_pid < 0)
		die("fork cow");
	if (cow_pid == 0) {
		cow_p[0] ^= 0x5a;	/* its own copy of the first page */
		xwrite(sync[1], "", 1);
		for (;;)
			pause();
	}
	char c;
	if (xread(sync[0], &c, 1) != 1)
		die("cow child");
	close(sync[0]);
	close(sync[1]);
}
static uint64_t cow_fold(int final)
{
	uint64_t mine = cow_frame(getpid(), cow_p + 4096), theirs = cow_frame(cow_pid, cow_p + 4096);
	if (!mine || mine != theirs)
		BAD("cow: a page neither process wrote is no longer shared with child %d (frames %llx and %llx)", cow_pid,
		    (unsigned long long)mine, (unsigned long long)theirs);
	if (cow_frame(getpid(), cow_p) == cow_frame(cow_pid, cow_p))
		BAD("cow: the page child %d wrote is shared with it", cow_pid);
	uint64_t h = check_fill("cow", cow_p, cow_n, 14000 + my_idx);
	if (final) {
		kill(cow_pid, SIGKILL);
		waitpid(cow_pid, NULL, 0);
	}
	return h;
}

/* locks: POSIX, OFD and flock locks on one file, probed from a child */
static int lk_fd[3];
static void locks_setup(long arg)
{
	char path[PATH_MAX];
	(void)arg;
	pathf(path, "locked");
	for (int i = 0; i < 3; i++)
		if ((lk_fd[i] = open(path, O_RDWR | O_CREAT, 0644)) < 0)
			die("open locked");
	struct flock posix = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 100 };
	struct flock ofd = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 100, .l_len = 50 };
	if (fcntl(lk_fd[0], F_SETLK, &posix) || fcntl(lk_fd[1], F_OFD_SETLK, &ofd) || flock(lk_fd[2], LOCK_SH | LOCK_NB))
		die("lock");
}
static uint64_t locks_fold(int final)
{
	(void)final;
	/* A new process, with new open files: what it sees held, by whom. */
	int p[2];
	if (pipe(p))
		die("pipe");
	pid_t kid = fork();
	if (kid == 0) {
		char path[PATH_MAX];
		pathf(path, "locked");
		int fd = open(path, O_RDWR);
		struct flock a = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 50, .l_len = 1 };
		struct flock b = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 120, .l_len = 1 };
		long got[8] = { 0 };
		if (fd >= 0 && !fcntl(fd, F_GETLK, &a) && !fcntl(fd, F_OFD_GETLK, &b)) {
			got[0] = a.l_type, got[1] = a.l_pid, got[2] = a.l_start, got[3] = a.l_len;
			got[4] = b.l_type, got[5] = b.l_pid, got[6] = b.l_start;
			got[7] = flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
		}
		_exit(write(p[1], got, sizeof(got)) == sizeof(got) ? 0 : 1);
	}
	close(p[1]);
	long got[8];
	if (xread(p[0], got, sizeof(got)) != sizeof(got))
		die("read lock probe");
	close(p[0]);
	waitpid(kid, NULL, 0);
	if (got[0] != F_WRLCK || got[1] != getpid() || got[2] != 0 || got[3] != 100)
		BAD("locks: POSIX lock seen as type %ld pid %ld [%ld +%ld], not ours", got[0], got[1], got[2], got[3]);
	if (got[4] != F_WRLCK || got[5] != -1 || got[6] != 100)
		BAD("locks: OFD lock seen as type %ld pid %ld at %ld", got[4], got[5], got[6]);
	if (!got[7])
		BAD("locks: the shared flock lock is gone");
	uint64_t h = 0;
	for (int i = 0; i < 8; i++)
		h = mix(h, i == 1 ? 1 : (uint64_t)got[i]); /* the pid is checked, not folded */
	return h;
}

/* pty: a pseudo-terminal pair with termios, window size and packet mode */
static int pty_m, pty_s;
static void pty_setup(long arg)
{
	(void)arg;
	struct winsize ws = { .ws_row = 30, .ws_col = 100 };
	int one = 1;
	struct termios t;
	pty_m = posix_openpt(O_RDWR | O_NOCTTY);
	if (pty_m < 0 || unlockpt(pty_m) || (pty_s = open(ptsname(pty_m), O_RDWR | O_NOCTTY)) < 0)
		die("pty");
	if (tcgetattr(pty_s, &t))
		die("tcgetattr");
	t.c_lflag &= ~(ECHO | ICANON);
	t.c_cc[VINTR] = 7;
	if (tcsetattr(pty_s, TCSANOW, &t) || ioctl(pty_m, TIOCSWINSZ, &ws) || ioctl(pty_m, TIOCPKT, &one))
		die("pty state");
}
static uint64_t pty_fold(int final)
{
	(void)final;
	struct winsize ws;
	struct termios t;
	int pkt = 0;
	char buf[16];
	if (ioctl(pty_m, TIOCGWINSZ, &ws) || tcgetattr(pty_s, &t) || ioctl(pty_m, TIOCGPKT, &pkt))
		die("pty get");
	/* One byte through the pair: slave to master, a data packet. */
	xwrite(pty_s, "q", 1);
	ssize_t n = read(pty_m, buf, sizeof(buf));
	if (n != 2 || buf[0] != TIOCPKT_DATA || buf[1] != 'q')
		BAD("pty: a byte through the pair came back as %zd bytes", n);
	if (ws.ws_row != 30 || ws.ws_col != 100 || (t.c_lflag & (ECHO | ICANON)) || t.c_cc[VINTR] != 7 || !pkt)
		BAD("pty: %dx%d lflag %o VINTR %d packet %d", ws.ws_col, ws.ws_row, t.c_lflag, t.c_cc[VINTR], pkt);
	return mix(mix(mix(ws.ws_row, ws.ws_col), t.c_lflag & (ECHO | ICANON)), mix(t.c_cc[VINTR], pkt));
}

/* threads: each reports before the checkpoint and again after */
struct thr {
	pthread_t t;
	int idx;
	uint64_t before, after;
	pid_t tid;
};
static struct thr *thrs;
static int nthr;
static int thr_go[2];
static atomic_int thr_ready;
static __thread uint64_t tls_word;

static uint64_t thr_fold(struct thr *t, const uint64_t *stackbuf, size_t n)
{
	pid_t tid = syscall(SYS_gettid);
	if (tid != t->tid)
		BAD("thread %d: tid %d, was %d", t->idx, tid, t->tid);
	if (tls_word != pat(11000 + my_idx, t->idx))
		BAD("thread %d: TLS word changed", t->idx);
	uint64_t h = mix(mix(0, tid), tls_word);
	return mix(h, check_fill("thread stack", stackbuf, n, 11100 + t->idx * 64 + my_idx));
}

static void *thr_main(void *arg)
{
	struct thr *t = arg;
	uint64_t stackbuf[1024];
	t->tid = syscall(SYS_gettid);
	tls_word = pat(11000 + my_idx, t->idx);
	fill(stackbuf, sizeof(stackbuf), 11100 + t->idx * 64 + my_idx);
	t->before = thr_fold(t, stackbuf, sizeof(stackbuf));
	atomic_fetch_add(&thr_ready, 1);
	char c;
	while (read(thr_go[0], &c, 1) < 0 && errno == EINTR)
		;
	t->after = thr_fold(t, stackbuf, sizeof(stackbuf));
	return NULL;
}
static void threads_setup(long n)
{
	nthr = n;
	thrs = calloc(n ? n : 1, sizeof(*thrs));
	if (pipe(thr_go))
		die("pipe");
	for (int i = 0; i < n; i++) {
		thrs[i].idx = i;
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setstacksize(&a, 64 << 10);
		if ((errno = pthread_create(&thrs[i].t, &a, thr_main, &thrs[i])))
			die("pthread_create");
	}
	while (atomic_load(&thr_ready) < n)
		usleep(1000);
}
static uint64_t threads_fold(int final)
{
	uint64_t h = mix(0, nthr);
	if (final) {
		char go[256] = { 0 };
		for (int left = nthr; left > 0; left -= 256)
			xwrite(thr_go[1], go, left > 256 ? 256 : left);
		for (int i = 0; i < nthr; i++)
			pthread_join(thrs[i].t, NULL);
	}
	for (int i = 0; i < nthr; i++)
		h = mix(h, final ? thrs[i].after : thrs[i].before);
	return h;
}

/* epoll: level-triggered items report the same events before and after */
static int ep_fd;
static long ep_n;
static uint64_t epoll_ready(void)
{
	struct epoll_event ev[64];
	int n = epoll_wait(ep_fd, ev, 64, 0);
	uint64_t seen = 0;
	for (int i = 0; i < n; i++)
		if (ev[i].events & EPOLLIN)
			seen |= 1ULL << ev[i].data.u64;
	return seen;
}
static void epoll_setup(long n)
{
	ep_n = n < 1 ? 1 : n > 32 ? 32 : n;
	ep_fd = epoll_create1(0);
	if (ep_fd < 0)
		die("epoll_create1");
	for (long i = 0; i < ep_n; i++) {
		int p[2];
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = (uint64_t)i };
		if (pipe(p) || epoll_ctl(ep_fd, EPOLL_CTL_ADD, p[0], &ev))
			die("epoll pipe");
		xwrite(p[1], "e", 1);
		/* the first is watched through a descriptor closed since */
		if (i == 0 && (dup(p[0]) < 0 || close(p[0])))
			die("dup");
	}
}
static uint64_t epoll_fold(int final)
{
	(void)final;
	uint64_t want = (1ULL << ep_n) - 1, seen = epoll_ready();
	if (seen != want)
		BAD("epoll: items 0x%llx ready, expected 0x%llx", (unsigned long long)seen, (unsigned long long)want);
	return mix(0, seen);
}

/* timerfd */
static int tf_fd;
static long tf_interval;
static void timerfd_setup(long s)
{
	struct itimerspec its = { { s, 0 }, { 1000, 0 } };
	tf_interval = s;
	tf_fd = timerfd_create(CLOCK_MONOTONIC, 0);
	if (tf_fd < 0 || timerfd_settime(tf_fd, 0, &its, NULL))
		die("timerfd");
}
static uint64_t timerfd_fold(int final)
{
	(void)final;
	struct itimerspec g;
	if (timerfd_gettime(tf_fd, &g) || g.it_interval.tv_sec != tf_interval || g.it_value.tv_sec > 1000 ||
	    (!g.it_value.tv_sec && !g.it_value.tv_nsec))
		BAD("timerfd: interval %lld s, %lld s left", (long long)g.it_interval.tv_sec, (long long)g.it_value.tv_sec);
	return mix(0, (uint64_t)g.it_interval.tv_sec);
}

/* signalfd: reads a blocked real-time signal */
#define SFDSIG (SIGRTMIN + 6)
static int sf_fd;
static void signalfd_setup(long arg)
{
	(void)arg;
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SFDSIG);
	sigprocmask(SIG_BLOCK, &s, NULL);
	sf_fd = signalfd(-1, &s, SFD_NONBLOCK);
	if (sf_fd < 0)
		die("signalfd");
}
static uint64_t signalfd_fold(int final)
{
	struct signalfd_siginfo si;
	if (!final)
		return mix(0, SFDSIG);
	kill(getpid(), SFDSIG);
	if (read(sf_fd, &si, sizeof(si)) != sizeof(si) || (int)si.ssi_signo != SFDSIG)
		BAD("signalfd: does not read signal %d", SFDSIG);
	return mix(0, SFDSIG);
}

/* inotify: the watch keeps its descriptor */
static int in_fd, in_wd;
static char in_dir[PATH_MAX];
static void inotify_setup(long arg)
{
	(void)arg;
	pathf(in_dir, "watched");
	if (mkdir(in_dir, 0700) && errno != EEXIST)
		die("mkdir watched");
	in_fd = inotify_init1(IN_NONBLOCK);
	in_wd = in_fd < 0 ? -1 : inotify_add_watch(in_fd, in_dir, IN_CREATE);
	if (in_wd < 0)
		die("inotify");
}
static uint64_t inotify_fold(int final)
{
	char buf[4096], f[PATH_MAX];
	if (!final)
		return mix(0, (uint64_t)in_wd);
	snprintf(f, sizeof(f), "%s/new", in_dir);
	close(open(f, O_CREAT | O_WRONLY, 0600));
	struct inotify_event *e = (struct inotify_event *)buf;
	if (read(in_fd, buf, sizeof(buf)) <= 0 || e->wd != in_wd || !(e->mask & IN_CREATE))
		BAD("inotify: no IN_CREATE event for watch %d", in_wd);
	return mix(0, (uint64_t)in_wd);
}

static struct module modules[] = {
	{ "mem", mem_setup, mem_fold, 0, 0 },
	{ "cow", cow_setup, cow_fold, 0, 0 },
	{ "dirty", dirty_setup, dirty_fold, 0, 0 },
	{ "shanon", shanon_setup, shanon_fold, 0, 0 },
	{ "fmap-priv", fmap_priv_setup, fmap_priv_fold, 0, 0 },
	{ "fmap-shared", fmap_shared_setup, fmap_shared_fold, 0, 0 },
	{ "brk", brk_setup, brk_fold, 0, 0 },
	{ "regfile", regfile_setup, regfile_fold, 0, 0 },
	{ "pipe", pipe_setup, pipe_fold, 0, 0 },
	{ "fifo", fifo_setup, fifo_fold, 0, 0 },
	{ "socketpair", socketpair_setup, socketpair_fold, 0, 0 },
	{ "unlinked", unlinked_setup, unlinked_fold, 0, 0 },
	{ "eventfd", eventfd_setup, eventfd_fold, 0, 0 },
	{ "sigaction", sigaction_setup, sigaction_fold, 0, 0 },
	{ "sigpending", sigpending_setup, sigpending_fold, 0, 0 },
	{ "rlimit", rlimit_setup, rlimit_fold, 0, 0 },
	{ "umask", umask_setup, umask_fold, 0, 0 },
	{ "memfd", memfd_setup, memfd_fold, 0, 0 },
	{ "zombie", zombie_setup, zombie_fold, 0, 0 },
	{ "ptimer", ptimer_setup, ptimer_fold, 0, 0 },
	{ "itimer", itimer_setup, itimer_fold, 0, 0 },
	{ "sched", sched_setup, sched_fold, 0, 0 },
	{ "prctl", prctl_setup, prctl_fold, 0, 0 },
	{ "madvise", madvise_setup, madvise_fold, 0, 0 },
	{ "caps", caps_setup, caps_fold, 0, 0 },
	{ "sysvshm", sysvshm_setup, sysvshm_fold, 0, 0 },
	{ "fdtable", fdtable_setup, fdtable_fold, 0, 0 },
	{ "locks", locks_setup, locks_fold, 0, 0 },
	{ "pty", pty_setup, pty_fold, 0, 0 },
	{ "tcp-listen", tcp_listen_setup, tcp_listen_fold, 0, 0 },
	{ "tcp-established", tcp_established_setup, tcp_established_fold, 0, 0 },
	{ "udp", udp_setup, udp_fold, 0, 0 },
	{ "unix-listen", unix_listen_setup, unix_listen_fold, 0, 0 },
	{ "epoll", epoll_setup, epoll_fold, 0, 0 },
	{ "timerfd", timerfd_setup, timerfd_fold, 0, 0 },
	{ "signalfd", signalfd_setup, signalfd_fold, 0, 0 },
	{ "inotify", inotify_setup, inotify_fold, 0, 0 },
	/* threads last: they must see every other module's state built;
	 * cwd just before, so the others still create files by full path */
	{ "cwd", cwd_setup, cwd_fold, 0, 0 },
	{ "threads", threads_setup, threads_fold, 0, 0 },
};
#define NMOD (sizeof(modules) / sizeof(modules[0]))

static struct module *find_module(const char *name)
{
	for (size_t i = 0; i < NMOD; i++)
		if (!strcmp(modules[i].name, name))
			return &modules[i];
	return NULL;
}

static uint64_t fold_all(int final, pid_t pid0, pid_t ppid0)
{
	pid_t pid = getpid(), ppid = getppid();
	if (pid != pid0)
		BAD("pid %d, was %d", pid, pid0);
	if (my_idx && ppid != ppid0)
		BAD("parent pid %d, was %d", ppid, ppid0);
	uint64_t h = mix(mix(mix(0, my_idx), pid), my_idx ? ppid : 0);
	for (size_t i = 0; i < NMOD; i++)
		if (modules[i].on)
			h = mix(h, modules[i].fold(final));
	return h;
}

/* ---- the tree ----------------------------------------------------------- */

struct rec {
	int idx;
	int bad;
	uint64_t h;
};

static int res_pipe[2], go_pipe[2];
static pid_t kids[2];
static int nkids;
static volatile sig_atomic_t got_usr1;
static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }

/* Forks this process's children in the heap shape; returns in every process. */
static void grow_tree(int ntree)
{
	for (int k = 1; k <= 2; k++) {
		int c = 2 * my_idx + k;
		if (c >= ntree)
			break;
		pid_t p = fork();
		if (p < 0)
			die("fork");
		if (p == 0) {
			my_idx = c;
			nkids = 0;
			grow_tree(ntree);
			return;
		}
		kids[nkids++] = p;
	}
}

static int reap_kids(void)
{
	int ok = 1;
	for (int i = 0; i < nkids; i++) {
		int st;
		pid_t r;
		while ((r = waitpid(kids[i], &st, 0)) < 0 && errno == EINTR)
			;
		if (r != kids[i]) {
			BAD("waitpid(%d): %s", kids[i], strerror(errno));
			ok = 0;
		} else if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			BAD("child %d ended with status 0x%x", kids[i], st);
			ok = 0;
		}
	}
	return ok;
}

static void collect(int n, uint64_t *hs)
{
	for (int got = 0; got < n; got++) {
		struct rec r;
		if (xread(res_pipe[0], &r, sizeof(r)) != sizeof(r) || r.idx <= 0 || r.idx > n) {
			BAD("lost a report from the tree");
			return;
		}
		hs[r.idx] = r.h;
		bad_count += r.bad;
	}
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--detach")) {
		pid_t p = fork();
		if (p < 0) {
			perror("fork");
			return 2;
		}
		if (p > 0)
			_exit(0);
		setsid();
		argv++;
		argc--;
	}
	if (argc < 2) {
		fprintf(stderr, "usage: wl [--detach] WORKDIR MODULE=ARG...\n");
		return 2;
	}
	if (!realpath(argv[1], workdir)) {
		perror(argv[1]);
		return 2;
	}
	int ntree = 1;
	for (int i = 2; i < argc; i++) {
		char name[64];
		long arg;
		if (sscanf(argv[i], "%63[^=]=%ld", name, &arg) != 2) {
			fprintf(stderr, "wl: bad argument %s\n", argv[i]);
			return 2;
		}
		if (!strcmp(name, "tree")) {
			ntree = arg < 1 ? 1 : arg;
			continue;
		}
		if (!strcmp(name, "files")) {
			find_module("regfile")->on = 1, find_module("regfile")->arg = arg / 2;
			find_module("pipe")->on = 1, find_module("pipe")->arg = arg / 4;
			continue;
		}
		struct module *m = find_module(name);
		if (!m) {
			fprintf(stderr, "wl: unknown module %s\n", name);
			return 2;
		}
		m->on = 1;
		m->arg = arg;
	}

	struct rlimit nof;
	if (!getrlimit(RLIMIT_NOFILE, &nof)) {
		nof.rlim_cur = nof.rlim_max;
		setrlimit(RLIMIT_NOFILE, &nof);
	}
	/* SIGUSR1 only while waiting in sigsuspend, in every process */
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, NULL);
	struct sigaction sa = { .sa_handler = on_usr1 };
	sigaction(SIGUSR1, &sa, NULL);

	/* the tree talks through two pipes; a single process has none of its own */
	if (ntree > 1 && (pipe(res_pipe) || pipe(go_pipe)))
		die("pipe");
	grow_tree(ntree);

	char dir[PATH_MAX];
	pathf(dir, "");
	if (mkdir(dir, 0700) && errno != EEXIST)
		die("mkdir");
	pid_t pid0 = getpid(), ppid0 = getppid();
	for (size_t i = 0; i < NMOD; i++)
		if (modules[i].on)
			modules[i].setup(modules[i].arg);
	uint64_t before = fold_all(0, pid0, ppid0);

	if (my_idx) {
		struct rec r = { my_idx, bad_count, before };
		xwrite(res_pipe[1], &r, sizeof(r));
		char c;
		while (read(go_pipe[0], &c, 1) < 0 && errno == EINTR)
			;
		int b0 = bad_count;
		uint64_t after = fold_all(1, pid0, ppid0);
		int ok = reap_kids();
		r = (struct rec){ my_idx, bad_count - b0, after };
		xwrite(res_pipe[1], &r, sizeof(r));
		_exit(ok && bad_count == 0 ? 0 : 1);
	}

	uint64_t *hs = calloc(ntree, sizeof(*hs));
	hs[0] = before;
	collect(ntree - 1, hs);
	uint64_t h = 0;
	for (int i = 0; i < ntree; i++)
		h = mix(h, hs[i]);
	if (bad_count) {
		say("BAD setup did not check out; not ready");
		return 1;
	}
	say("READY %d %016llx", getpid(), (unsigned long long)h);

	/* wait with today's mask minus SIGUSR1: modules may have blocked more */
	sigset_t now;
	sigprocmask(SIG_BLOCK, NULL, &now);
	sigdelset(&now, SIGUSR1);
	while (!got_usr1) {
		sigsuspend(&now);
		if (got_usr2 && dirty_percent && !my_idx && ntree == 1) {
			got_usr2 = 0;
			dirty_mem();
			say("DIRTIED %016llx", (unsigned long long)mix(0, fold_all(0, pid0, ppid0)));
		}
	}

	char go[64] = { 0 };
	for (int left = ntree - 1; left > 0; left -= 64)
		xwrite(go_pipe[1], go, left > 64 ? 64 : left);
	hs[0] = fold_all(1, pid0, ppid0);
	collect(ntree - 1, hs);
	reap_kids();
	h = 0;
	for (int i = 0; i < ntree; i++)
		h = mix(h, hs[i]);
	say("DONE %016llx%s", (unsigned long long)h, bad_count ? " (with BAD lines)" : "");
	return bad_count ? 1 : 0;
}
