// SPDX-License-Identifier: GPL-2.0-only
/*
 * inotify: an inotify instance whose watch descriptors have a gap.
 *
 *   inotify DIR TICKS
 *
 * Watches DIR (IN_CREATE | IN_DELETE), DIR/gone (removed again: its
 * number stays unused), DIR/file (IN_MODIFY | IN_CLOSE_WRITE) and the
 * symlink DIR/link itself (IN_DONT_FOLLOW, IN_ATTRIB). Every 100 ms it
 * creates and removes DIR/tN, writes DIR/file, touches the link, then
 * reads its events and prints each (watch descriptor, mask, name), and
 * the watch list of its fdinfo (numbers and masks); then removes what it
 * made and prints its pid.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

static char dir[4096];

static const char *at(const char *name)
{
	static char buf[8192];

	snprintf(buf, sizeof(buf), "%s/%s", dir, name);
	return buf;
}

int main(int argc, char **argv)
{
	int in, i, ticks, wd[4];
	char buf[4096];

	close_range(3, ~0U, 0);
	if (argc != 3) {
		fprintf(stderr, "usage: inotify DIR TICKS\n");
		return 2;
	}
	snprintf(dir, sizeof(dir), "%s", argv[1]);
	ticks = atoi(argv[2]);
	close(open(at("file"), O_WRONLY | O_CREAT, 0644));
	close(open(at("gone"), O_WRONLY | O_CREAT, 0644));
	if (symlink("file", at("link")))
		return perror("symlink"), 1;
	in = inotify_init1(IN_CLOEXEC);
	wd[0] = inotify_add_watch(in, dir, IN_CREATE | IN_DELETE);
	wd[1] = inotify_add_watch(in, at("gone"), IN_ALL_EVENTS);
	wd[2] = inotify_add_watch(in, at("file"), IN_MODIFY | IN_CLOSE_WRITE);
	wd[3] = inotify_add_watch(in, at("link"), IN_ATTRIB | IN_DONT_FOLLOW | IN_EXCL_UNLINK);
	if (in < 0 || wd[0] < 0 || wd[1] < 0 || wd[2] < 0 || wd[3] < 0 || inotify_rm_watch(in, wd[1]))
		return perror("inotify"), 1;
	/* The IN_IGNORED of the removed watch. */
	if (read(in, buf, sizeof(buf)) <= 0)
		return perror("read"), 1;

	for (i = 0; i < ticks; i++) {
		char name[32], list[512] = "", line[256], path[64];
		struct timeval now[2] = { { 1000000 + i, 0 }, { 1000000 + i, 0 } };
		struct pollfd p = { in, POLLIN, 0 };
		int fd, seen = 0;
		FILE *f;

		snprintf(name, sizeof(name), "t%d", i);
		close(open(at(name), O_WRONLY | O_CREAT, 0644));
		unlink(at(name));
		fd = open(at("file"), O_WRONLY | O_APPEND);
		if (fd < 0 || write(fd, "x", 1) != 1)
			return perror("write"), 1;
		close(fd);
		lutimes(at("link"), now);
		printf("tick %d:", i);
		while (seen < 5 && poll(&p, 1, 1000) > 0) {
			ssize_t n = read(in, buf, sizeof(buf)), off;

			for (off = 0; n > 0 && off < n; seen++) {
				struct inotify_event *ev = (struct inotify_event *)(buf + off);

				printf(" [wd %d mask %x %s]", ev->wd, ev->mask, ev->len ? ev->name : "-");
				off += sizeof(*ev) + ev->len;
			}
		}
		snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", in);
		f = fopen(path, "r");
		while (f && fgets(line, sizeof(line), f)) {
			unsigned int w, m;

			if (sscanf(line, "inotify wd:%x ino:%*x sdev:%*x mask:%x", &w, &m) == 2)
				snprintf(list + strlen(list), sizeof(list) - strlen(list), " %d:%x", w, m);
		}
		if (f)
			fclose(f);
		printf(" | watches%s\n", list);
		fflush(stdout);
		usleep(100000);
	}
	unlink(at("file"));
	unlink(at("gone"));
	unlink(at("link"));
	printf("pid %d\n", getpid());
	return 0;
}
