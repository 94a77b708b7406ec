// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-pages: put a restored task's private pages in through userfaultfd.
 *
 *   cr-pages [-l] PID PAGES_FILE... < RANGES
 *
 * fd 3 is a userfaultfd of task PID's address space (its UFFDIO_API not
 * yet done).  RANGES, on stdin, is one line per item:
 *
 *   R START END                    a fresh mapping to fill (registered)
 *   P ADDR NR_PAGES FILE OFFSET    pages whose data is at OFFSET in the
 *                                  FILE-th PAGES_FILE (from 0)
 *
 * UFFDIO_COPY allocates each page and fills it with its data in one step,
 * where populating a mapping and then reading into it zeroes every page
 * first; and it can be done from here, by several threads at once.
 *
 * Without -l every page is copied in now, by one thread per CPU, the
 * ranges are unregistered and cr-pages exits: the task is stopped all the
 * while.  With -l (lazy) cr-pages exits once the ranges are registered,
 * leaving a server behind, and the task may run: a fault on a page of the
 * image is answered with a copy of the pages around it, a fault elsewhere
 * in a range with the zero page, and between faults the remaining pages
 * are copied in, in order, so that the task soon owns all of its memory
 * and the server exits.  A fork() of the task (its child gets its own
 * userfaultfd, and lacks what the parent lacks), mremap() (the pages
 * move), MADV_DONTNEED or munmap() (the image's pages there are no longer
 * wanted) are followed.  If a page cannot be served the server kills
 * task PID rather than let it run on a zero page.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define CHUNK 64		/* pages per read and copy: the buffer stays in the cache */
#define MAX_FILES 128
#define MAX_THREADS 8
#define STUCK_MS 1000	/* a page with no mapping so long, and no event about it, is given up */

struct run {
	uint64_t addr, nr, off;
	int file;
};

struct range {
	uint64_t start, end;
};

/* One served address space: its userfaultfd and the pages it still lacks */
struct space {
	int fd;
	struct run *runs;
	size_t nr_runs;
	uint64_t stuck_since;	/* ms: since when its next page has had no mapping */
};

static int files[MAX_FILES];
static int nr_files;
static pid_t task;

static void die(const char *what)
{
	fprintf(stderr, "cr-pages: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* Serving: the task must not run on memory it was not given */
static void fail(const char *what)
{
	kill(task, SIGKILL);
	die(what);
}

static void *grow(void *p, size_t nr, size_t *max, size_t size)
{
	if (nr < *max)
		return p;
	*max = *max ? 2 * *max : 64;
	p = realloc(p, *max * size);
	if (!p)
		die("realloc");
	return p;
}

/* copy_in(): the task (or its address space) is gone */
#define GONE -1
/* Why copy_in() last stopped short: EAGAIN or ENOENT */
static int stopped;

/*
 * Copy @n pages of run @r from page @from on into the space of @fd.  Returns
 * the pages dealt with from @from on (copied, or present already): all @n,
 * or fewer where it had to stop: EAGAIN (the address space is changing: its
 * event is to be read first) or ENOENT (nothing is mapped there now: an
 * event on its way says what became of it).
 */
static int64_t copy_in(int fd, const struct run *r, uint64_t from, uint64_t n, char *buf)
{
	uint64_t at = from, step = n;

	if (pread(files[r->file], buf, n * PAGE, r->off + from * PAGE) != (ssize_t)(n * PAGE))
		fail("reading the pages file");
	while (at < from + n) {
		struct uffdio_copy c = {
			.dst = r->addr + at * PAGE,
			.src = (uintptr_t)buf + (at - from) * PAGE,
			.len = (from + n - at < step ? from + n - at : step) * PAGE,
		};

		if (!ioctl(fd, UFFDIO_COPY, &c)) {
			at += c.len / PAGE;
			continue;
		}
		at += c.copy > 0 ? c.copy / PAGE : 0;
		if (errno == EEXIST) {
			at++;	/* present already (the task wrote it, or a fault raced us) */
		} else if (errno == ENOENT && step > 1) {
			/* the pages may lie in two mappings now (mprotect split one) */
			step = 1;
		} else if (errno == EAGAIN || errno == ENOENT) {
			stopped = errno;
			return at - from;
		} else if (errno == ESRCH) {
			return GONE;
		} else {
			fail("UFFDIO_COPY");
		}
	}
	return n;
}

/* The eager fill: threads take chunks of the runs in turn */
static struct run *all;
static size_t nr_all;
static atomic_size_t next_chunk;
static int eager_fd;

static void *fill(void *unused)
{
	static char bufs[MAX_THREADS][CHUNK * PAGE];
	static atomic_int nr_threads;
	char *buf = bufs[atomic_fetch_add(&nr_threads, 1)];
	size_t run = 0;
	uint64_t base = 0;	/* chunks in the runs before @run */

	(void)unused;
	for (;;) {
		size_t chunk = atomic_fetch_add(&next_chunk, 1);

		while (run < nr_all && chunk >= base + (all[run].nr + CHUNK - 1) / CHUNK)
			base += (all[run++].nr + CHUNK - 1) / CHUNK;
		if (run == nr_all)
			return NULL;
		uint64_t from = (chunk - base) * CHUNK;
		uint64_t n = all[run].nr - from < CHUNK ? all[run].nr - from : CHUNK;

		if (copy_in(eager_fd, &all[run], from, n, buf) != (int64_t)n)
			die("copying pages in");
	}
}

static void fill_all(int fd, struct run *runs, size_t nr_runs)
{
	pthread_t threads[MAX_THREADS];
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int i, nr = cpus < 1 ? 1 : cpus > MAX_THREADS ? MAX_THREADS : cpus;

	all = runs;
	nr_all = nr_runs;
	eager_fd = fd;
	for (i = 1; i < nr; i++)
		if (pthread_create(&threads[i], NULL, fill, NULL))
			die("pthread_create");
	fill(NULL);
	for (i = 1; i < nr; i++)
		pthread_join(threads[i], NULL);
}

/* The lazy server */
static struct space *spaces;
static size_t nr_spaces, max_spaces;
static char buf[CHUNK * PAGE];

/* Cut the run that straddles @at, if any, in two at @at (the runs stay in order) */
static void split(struct space *s, uint64_t at)
{
	size_t i;

	for (i = 0; i < s->nr_runs; i++) {
		struct run *r = &s->runs[i];

		if (at > r->addr && at < r->addr + r->nr * PAGE) {
			struct run tail = { .addr = at, .nr = r->nr - (at - r->addr) / PAGE,
					    .off = r->off + (at - r->addr), .file = r->file };

			r->nr -= tail.nr;
			s->runs = realloc(s->runs, (s->nr_runs + 1) * sizeof(*s->runs));
			if (!s->runs)
				die("realloc");
			memmove(&s->runs[i + 2], &s->runs[i + 1],
				(s->nr_runs++ - i - 1) * sizeof(*s->runs));
			s->runs[i + 1] = tail;
			return;
		}
	}
}

/* Pages [start, end) are no longer wanted: cut them out of the runs */
static void take(struct space *s, uint64_t start, uint64_t end)
{
	size_t i, kept = 0;

	split(s, start);
	split(s, end);
	for (i = 0; i < s->nr_runs; i++)
		if (s->runs[i].addr < start || s->runs[i].addr >= end)
			s->runs[kept++] = s->runs[i];
	s->nr_runs = kept;
}

static struct run *run_of(struct space *s, uint64_t addr)
{
	size_t i;

	for (i = 0; i < s->nr_runs; i++)
		if (addr >= s->runs[i].addr && addr < s->runs[i].addr + s->runs[i].nr * PAGE)
			return &s->runs[i];
	return NULL;
}

static void drop_space(struct space *s)
{
	close(s->fd);
	free(s->runs);
	*s = spaces[--nr_spaces];
}

/* Returns false once the space is gone */
static int fault(struct space *s, uint64_t addr)
{
	uint64_t page = addr & ~(PAGE - 1);
	struct uffdio_range wake = { .start = page, .len = PAGE };
	struct run *r = run_of(s, page);
	int64_t done;

	if (!r) {
		struct uffdio_zeropage z = { .range = wake };

		if (!ioctl(s->fd, UFFDIO_ZEROPAGE, &z) || errno == EAGAIN)
			return 1;	/* EAGAIN: the fault comes again after the event */
		if (errno == ENOENT || errno == ESRCH)
			return errno != ESRCH;
		if (errno != EEXIST)
			fail("UFFDIO_ZEROPAGE");
		return !ioctl(s->fd, UFFDIO_WAKE, &wake) || errno != ESRCH;
	}
	uint64_t at = (page - r->addr) / PAGE;
	uint64_t from = at - at % CHUNK;
	uint64_t n = from + CHUNK > r->nr ? r->nr - from : CHUNK;
	uint64_t start = r->addr + from * PAGE;

	done = copy_in(s->fd, r, from, n, buf);
	if (done == GONE)
		return 0;
	take(s, start, start + done * PAGE);
	/* a page present already was not copied by us, and its faulting thread waits */
	return !ioctl(s->fd, UFFDIO_WAKE, &wake) || errno != ESRCH;
}

/* mremap: what lay in [from, from + len) is now at @to */
static void moved(struct space *s, uint64_t from, uint64_t to, uint64_t len)
{
	size_t i;

	split(s, from);
	split(s, from + len);
	for (i = 0; i < s->nr_runs; i++)
		if (s->runs[i].addr >= from && s->runs[i].addr < from + len)
			s->runs[i].addr = s->runs[i].addr - from + to;
}

/* A forked child's address space: it lacks what @parent lacks */
static void add_space(int fd, size_t parent)
{
	struct space *s;

	/* poll() reports a blocking userfaultfd as an error */
	if (fcntl(fd, F_SETFL, O_NONBLOCK))
		fail("fcntl");
	spaces = grow(spaces, nr_spaces, &max_spaces, sizeof(*spaces));
	s = &spaces[nr_spaces++];
	s->fd = fd;
	s->nr_runs = spaces[parent].nr_runs;
	s->stuck_since = 0;
	s->runs = malloc(s->nr_runs * sizeof(*s->runs) + 1);
	if (!s->runs)
		die("malloc");
	memcpy(s->runs, spaces[parent].runs, s->nr_runs * sizeof(*s->runs));
}

/* Handle what the memory of space @i did; false once it is gone */
static int handle_events(size_t i)
{
	struct uffd_msg msg;

	for (;;) {
		/* spaces[] moves when a fork adds one */
		struct space *s = &spaces[i];
		ssize_t n = read(s->fd, &msg, sizeof(msg));

		if (n < 0 && errno == EAGAIN)
			return 1;
		if (n < 0 && errno == EINTR)
			continue;
		/* a fork event we cannot take (no descriptor left) stays queued */
		if (n != sizeof(msg))
			fail("reading the userfaultfd");
		switch (msg.event) {
		case UFFD_EVENT_PAGEFAULT:
			if (!fault(s, msg.arg.pagefault.address))
				return 0;
			break;
		case UFFD_EVENT_FORK:
			add_space(msg.arg.fork.ufd, i);
			break;
		case UFFD_EVENT_REMAP:
			moved(s, msg.arg.remap.from, msg.arg.remap.to, msg.arg.remap.len);
			break;
		case UFFD_EVENT_REMOVE:
		case UFFD_EVENT_UNMAP:
			take(s, msg.arg.remove.start, msg.arg.remove.end);
			break;
		}
	}
}

static uint64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000ULL + t.tv_nsec / 1000000;
}

/* Copy in the next chunk nobody asked for yet; false once the space is gone */
static int prefetch(struct space *s)
{
	struct run *r;
	uint64_t n, addr;
	int64_t done;

	if (!s->nr_runs)
		return 1;
	r = &s->runs[0];
	addr = r->addr;
	n = r->nr < CHUNK ? r->nr : CHUNK;
	done = copy_in(s->fd, r, 0, n, buf);
	if (done == GONE)
		return 0;
	if (!done && stopped == ENOENT) {
		/* nothing mapped there: wait for the event that says why, but not for ever */
		if (!s->stuck_since)
			s->stuck_since = now_ms();
		else if (now_ms() - s->stuck_since > STUCK_MS)
			done = 1;
	}
	if (done)
		s->stuck_since = 0;
	take(s, addr, addr + done * PAGE);
	return 1;
}

static void serve(void)
{
	struct pollfd *pfd = NULL;
	size_t max_pfd = 0;

	while (nr_spaces) {
		size_t i, nr = nr_spaces;
		int busy = 0;

		for (i = 0; i < nr; i++) {
			pfd = grow(pfd, i, &max_pfd, sizeof(*pfd));
			pfd[i] = (struct pollfd){ .fd = spaces[i].fd, .events = POLLIN };
			busy |= spaces[i].nr_runs > 0;
		}
		/* every page is in: the registrations go with the userfaultfds */
		if (!busy)
			return;
		poll(pfd, nr, 0);
		/* from the last: dropping a space moves the last one into its place */
		for (i = nr; i-- > 0; )
			if (pfd[i].revents & (POLLERR | POLLHUP) || !handle_events(i) ||
			    !prefetch(&spaces[i]))
				drop_space(&spaces[i]);
	}
}

/* Leave the server running on its own, with nothing of the caller's open */
static void detach_server(void)
{
	pid_t pid = fork();
	int null;

	if (pid < 0)
		die("fork");
	if (pid)
		_exit(0);
	setsid();
	null = open("/dev/null", O_RDWR);
	if (null < 0)
		die("/dev/null");
	dup2(null, 0);
	dup2(null, 1);
	dup2(null, 2);
	if (null > 2)
		close(null);
}

int main(int argc, char **argv)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct space first = { .fd = 3 };
	struct range *ranges = NULL;
	struct rlimit nofile;
	size_t nr_ranges = 0, max_ranges = 0, max_runs = 0, i;
	int lazy = argc > 1 && !strcmp(argv[1], "-l");
	char line[256];

	if (argc < 3 + lazy || argc - 2 - lazy > MAX_FILES) {
		fprintf(stderr,
			"usage: cr-pages [-l] PID PAGES_FILE... < RANGES (userfaultfd on fd 3)\n");
		return 2;
	}
	task = atoi(argv[1 + lazy]);
	for (i = 2 + lazy; i < (size_t)argc; i++) {
		files[nr_files] = open(argv[i], O_RDONLY | O_CLOEXEC);
		if (files[nr_files++] < 0)
			die(argv[i]);
	}
	if (lazy)
		api.features = UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP |
			       UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP;
	if (ioctl(first.fd, UFFDIO_API, &api))
		die("UFFDIO_API");
	while (fgets(line, sizeof(line), stdin)) {
		unsigned long long a, b, c;
		int f;

		if (sscanf(line, "R %llx %llx", &a, &b) == 2) {
			struct uffdio_register reg = { .range = { .start = a, .len = b - a },
						       .mode = UFFDIO_REGISTER_MODE_MISSING };

			if (ioctl(first.fd, UFFDIO_REGISTER, &reg))
				die("UFFDIO_REGISTER");
			ranges = grow(ranges, nr_ranges, &max_ranges, sizeof(*ranges));
			ranges[nr_ranges++] = (struct range){ a, b };
		} else if (sscanf(line, "P %llx %llu %d %llu", &a, &b, &f, &c) == 4 &&
			   f >= 0 && f < nr_files) {
			first.runs = grow(first.runs, first.nr_runs, &max_runs,
					  sizeof(*first.runs));
			first.runs[first.nr_runs++] =
				(struct run){ .addr = a, .nr = b, .off = c, .file = f };
		} else {
			fprintf(stderr, "cr-pages: bad line: %s", line);
			return 2;
		}
	}
	if (!lazy) {
		fill_all(first.fd, first.runs, first.nr_runs);
		for (i = 0; i < nr_ranges; i++) {
			struct uffdio_range r = { .start = ranges[i].start,
						  .len = ranges[i].end - ranges[i].start };

			if (ioctl(first.fd, UFFDIO_UNREGISTER, &r))
				die("UFFDIO_UNREGISTER");
		}
		return 0;
	}
	if (fcntl(first.fd, F_SETFL, O_NONBLOCK))
		die("fcntl");
	/* a descriptor for each child the task forks while it is served */
	if (!getrlimit(RLIMIT_NOFILE, &nofile)) {
		nofile.rlim_cur = nofile.rlim_max;
		setrlimit(RLIMIT_NOFILE, &nofile);
	}
	detach_server();
	spaces = grow(spaces, 0, &max_spaces, sizeof(*spaces));
	spaces[nr_spaces++] = first;
	serve();
	return 0;
}
