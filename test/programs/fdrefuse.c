// SPDX-License-Identifier: GPL-2.0-only
/*
 * fdrefuse: holds a descriptor the user backend must refuse to dump,
 * naming it, rather than restore it wrong; prints "ready" and sleeps.
 *
 *   fdrefuse DIR fanotify|lease|inotify-unread|pty-unread|linked-deleted
 *
 * fanotify: a fanotify group at fd 3; lease: a read lease on DIR/leased
 * at fd 3; inotify-unread: an inotify instance at fd 3 with an event
 * waiting; pty-unread: a pty master at fd 3 whose slave (fd 4) has
 * written bytes nobody read; linked-deleted: DIR/a open at fd 3, its name
 * removed while another (DIR/b) remains.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char a[4096], b[4096];
	int fd = -1;

	close_range(3, ~0U, 0);
	if (argc != 3)
		return 2;
	snprintf(a, sizeof(a), "%s/a", argv[1]);
	snprintf(b, sizeof(b), "%s/b", argv[1]);
	if (!strcmp(argv[2], "fanotify")) {
		fd = fanotify_init(FAN_CLASS_NOTIF, O_RDONLY);
	} else if (!strcmp(argv[2], "lease")) {
		fd = open(a, O_RDONLY | O_CREAT, 0644);
		if (fd < 0 || fcntl(fd, F_SETLEASE, F_RDLCK))
			return perror("lease"), 1;
	} else if (!strcmp(argv[2], "inotify-unread")) {
		fd = inotify_init1(0);
		if (fd < 0 || inotify_add_watch(fd, argv[1], IN_CREATE) < 0)
			return perror("inotify"), 1;
		close(open(a, O_WRONLY | O_CREAT, 0644));
	} else if (!strcmp(argv[2], "pty-unread")) {
		fd = posix_openpt(O_RDWR | O_NOCTTY);
		if (fd < 0 || unlockpt(fd) || open(ptsname(fd), O_RDWR | O_NOCTTY) != 4 || write(4, "unread", 6) != 6)
			return perror("pty"), 1;
	} else if (!strcmp(argv[2], "linked-deleted")) {
		fd = open(a, O_RDWR | O_CREAT, 0644);
		if (fd < 0 || link(a, b) || unlink(a))
			return perror("link"), 1;
	}
	if (fd != 3)
		return perror(argv[2]), 1;
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}
