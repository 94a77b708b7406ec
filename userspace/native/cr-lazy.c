// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lazy: serve a restored task's memory on demand, through userfaultfd.
 *
 *   cr-lazy PAGES_FILE < RANGES
 *
 * fd 3 is a userfaultfd of the task's address space (its UFFDIO_API not
 * yet done).  RANGES, on stdin, is one line per item:
 *
 *   R START END              a range to register (missing pages fault to us)
 *   P ADDR NR_PAGES OFFSET   pages whose data is at OFFSET in PAGES_FILE
 *
 * Once every range is registered cr-lazy prints "ready" on stdout and
 * closes it; from then on the task may run.  A fault on a page of the
 * image is answered with a copy of the pages around it (UFFDIO_COPY), a
 * fault anywhere else in a range with the zero page; between faults the
 * remaining pages are copied in, in order, so that the task soon owns all
 * of its memory and cr-lazy exits.  A fork() of the task (its child gets
 * its own userfaultfd), mremap() (the pages move), MADV_DONTNEED or
 * munmap() (the image's pages there are no longer wanted) are followed.
 * cr-lazy also exits when every task it serves is gone.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096UL
#define CHUNK 64		/* pages copied per fault and per prefetch step */
#define MAX_UFFDS 64

struct run {
	uint64_t addr, nr, off;
	uint64_t done;		/* pages from the start already copied (or not wanted) */
};

/* One served address space: its userfaultfd and what it still lacks */
struct space {
	int fd;
	struct run *runs;
	size_t nr_runs;
	size_t next;		/* the first run not wholly done */
};

static struct space spaces[MAX_UFFDS];
static int nr_spaces;
static int pages_fd;
static char buf[CHUNK * PAGE];

static void die(const char *what)
{
	fprintf(stderr, "cr-lazy: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* Copy pages [from, from + n) of run @r into @s (those present already are skipped) */
static int copy_in(struct space *s, struct run *r, uint64_t from, uint64_t n)
{
	uint64_t at = from;

	if (pread(pages_fd, buf, n * PAGE, r->off + from * PAGE) != (ssize_t)(n * PAGE))
		die("reading the pages file");
	while (at < from + n) {
		struct uffdio_copy c = {
			.dst = r->addr + at * PAGE,
			.src = (uintptr_t)buf + (at - from) * PAGE,
			.len = (from + n - at) * PAGE,
		};

		if (!ioctl(s->fd, UFFDIO_COPY, &c))
			break;
		if (errno == EEXIST) {
			/* present already: skip what was copied and that page */
			at += (c.copy > 0 ? c.copy / PAGE : 0) + 1;
			continue;
		}
		if (errno == EAGAIN) {
			at += c.copy > 0 ? c.copy / PAGE : 0;
			continue;
		}
		return -1;	/* ESRCH: the task is gone; ENOENT: the range went */
	}
	return 0;
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

static void fault(struct space *s, uint64_t addr)
{
	struct run *r = run_of(s, addr & ~(PAGE - 1));

	if (!r) {
		struct uffdio_zeropage z = { .range = { .start = addr & ~(PAGE - 1), .len = PAGE } };

		if (ioctl(s->fd, UFFDIO_ZEROPAGE, &z) && errno != EEXIST && errno != EAGAIN)
			return;
		return;
	}
	uint64_t page = ((addr & ~(PAGE - 1)) - r->addr) / PAGE;
	uint64_t from = page - page % CHUNK;
	uint64_t n = from + CHUNK > r->nr ? r->nr - from : CHUNK;

	copy_in(s, r, from, n);
	if (from <= r->done && from + n > r->done)
		r->done = from + n;
}

/* The image's pages in [start, end) are not wanted any more (unmapped, dropped) */
static void forget(struct space *s, uint64_t start, uint64_t end)
{
	size_t i;

	for (i = 0; i < s->nr_runs; i++) {
		struct run *r = &s->runs[i];
		uint64_t rend = r->addr + r->nr * PAGE;

		if (end <= r->addr || start >= rend)
			continue;
		if (start <= r->addr + r->done * PAGE)
			r->done = end >= rend ? r->nr : (end - r->addr) / PAGE;
		/* a hole further in is rare: the pages there stay wanted and EEXIST keeps it right */
	}
}

/* mremap: the runs inside [from, from + len) are now at @to */
static void moved(struct space *s, uint64_t from, uint64_t to, uint64_t len)
{
	size_t i;

	for (i = 0; i < s->nr_runs; i++) {
		struct run *r = &s->runs[i];

		if (r->addr >= from && r->addr + r->nr * PAGE <= from + len)
			r->addr = r->addr - from + to;
		else if (r->addr < from + len && r->addr + r->nr * PAGE > from)
			r->done = r->nr;	/* split by the move: left to zero-fill, as a fresh mapping */
	}
}

static void add_space(int fd, const struct space *like)
{
	struct space *s;

	if (nr_spaces == MAX_UFFDS) {
		close(fd);
		return;
	}
	s = &spaces[nr_spaces++];
	s->fd = fd;
	s->nr_runs = like->nr_runs;
	s->next = like->next;
	s->runs = malloc(like->nr_runs * sizeof(*s->runs) + 1);
	if (!s->runs)
		die("malloc");
	memcpy(s->runs, like->runs, like->nr_runs * sizeof(*s->runs));
}

/* Handle what the task's memory did; false once it is gone */
static int handle_events(struct space *s)
{
	struct uffd_msg msg;

	for (;;) {
		ssize_t n = read(s->fd, &msg, sizeof(msg));

		if (n < 0 && errno == EAGAIN)
			return 1;
		if (n < 0 && errno == EINTR)
			continue;
		if (n != sizeof(msg))
			return 0;
		switch (msg.event) {
		case UFFD_EVENT_PAGEFAULT:
			fault(s, msg.arg.pagefault.address);
			break;
		case UFFD_EVENT_FORK:
			add_space(msg.arg.fork.ufd, s);
			break;
		case UFFD_EVENT_REMAP:
			moved(s, msg.arg.remap.from, msg.arg.remap.to, msg.arg.remap.len);
			break;
		case UFFD_EVENT_REMOVE:
		case UFFD_EVENT_UNMAP:
			forget(s, msg.arg.remove.start, msg.arg.remove.end);
			break;
		}
	}
}

/* Copy the next chunk nobody asked for yet; false when all is in */
static int prefetch(struct space *s)
{
	while (s->next < s->nr_runs) {
		struct run *r = &s->runs[s->next];

		if (r->done >= r->nr) {
			s->next++;
			continue;
		}
		uint64_t n = r->nr - r->done < CHUNK ? r->nr - r->done : CHUNK;

		if (copy_in(s, r, r->done, n))
			return -1;
		r->done += n;
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct uffdio_api api = {
		.api = UFFD_API,
		.features = UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP |
			    UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP,
	};
	struct space first = { .fd = 3 };
	size_t max_runs = 0;
	char line[256];

	if (argc != 2) {
		fprintf(stderr, "usage: cr-lazy PAGES_FILE < RANGES (userfaultfd on fd 3)\n");
		return 2;
	}
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	pages_fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (pages_fd < 0)
		die(argv[1]);
	if (ioctl(first.fd, UFFDIO_API, &api))
		die("UFFDIO_API");
	while (fgets(line, sizeof(line), stdin)) {
		unsigned long long a, b, c;

		if (sscanf(line, "R %llx %llx", &a, &b) == 2) {
			struct uffdio_register reg = { .range = { .start = a, .len = b - a },
						       .mode = UFFDIO_REGISTER_MODE_MISSING };

			if (ioctl(first.fd, UFFDIO_REGISTER, &reg))
				die("UFFDIO_REGISTER");
		} else if (sscanf(line, "P %llx %llu %llu", &a, &b, &c) == 3) {
			if (first.nr_runs == max_runs) {
				max_runs = max_runs ? 2 * max_runs : 64;
				first.runs = realloc(first.runs, max_runs * sizeof(*first.runs));
				if (!first.runs)
					die("realloc");
			}
			first.runs[first.nr_runs++] = (struct run){ .addr = a, .nr = b, .off = c };
		}
	}
	if (fcntl(first.fd, F_SETFL, O_NONBLOCK))
		die("fcntl");
	spaces[nr_spaces++] = first;
	printf("ready\n");
	fflush(stdout);
	fclose(stdout);

	while (nr_spaces) {
		struct pollfd pfd[MAX_UFFDS];
		int i, busy = 0;

		for (i = 0; i < nr_spaces; i++)
			pfd[i] = (struct pollfd){ .fd = spaces[i].fd, .events = POLLIN };
		/* nothing left to prefetch: only wait for faults (and for the task to go) */
		for (i = 0; i < nr_spaces; i++)
			busy |= spaces[i].next < spaces[i].nr_runs;
		if (!busy)
			break;
		poll(pfd, nr_spaces, 0);
		for (i = nr_spaces - 1; i >= 0; i--) {
			if (pfd[i].revents & (POLLERR | POLLHUP) || !handle_events(&spaces[i]) ||
			    prefetch(&spaces[i]) < 0)
				drop_space(&spaces[i]);
		}
	}
	return 0;
}
