// SPDX-License-Identifier: GPL-2.0-only
/*
 * removed: open files and a working directory whose names are gone.
 *
 *   removed DIR TICKS
 *
 * DIR/a/b/file is written, given owner 1234:5678 and mode 0604, opened a
 * second time through /proc/self/fd (a second open file of the same
 * inode), then unlinked, and a/b and a removed; DIR/d is opened as a
 * directory and removed; DIR/c becomes the working directory and is
 * removed, and a child forked after that inherits it.
 *
 * Every 100 ms it checks that the two opens of the file are still one
 * inode (a byte written through one shows through the other), prints the
 * file's next line at its offset, its owner, mode and link count, the
 * removed directory's and the working directory's link counts, whether
 * the child's working directory is still the same inode as its own, and
 * whether anything reappeared in DIR; then its pid.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
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
	int fd, fd2, dfd, ask[2], answer[2], i, ticks;
	char path[64], line[32];
	pid_t child;

	close_range(3, ~0U, 0);
	if (argc != 3) {
		fprintf(stderr, "usage: removed DIR TICKS\n");
		return 2;
	}
	snprintf(dir, sizeof(dir), "%s", argv[1]);
	ticks = atoi(argv[2]);
	if (mkdir(at("a"), 0755) || mkdir(at("a/b"), 0755) || mkdir(at("d"), 0750) || mkdir(at("c"), 0710))
		return perror("mkdir"), 1;
	fd = open(at("a/b/file"), O_RDWR | O_CREAT, 0600);
	if (fd < 0)
		return perror("open"), 1;
	for (i = 0; i < ticks + 10; i++)
		dprintf(fd, "line %04d\n", i);
	if (fchown(fd, 1234, 5678) || fchmod(fd, 0604) || lseek(fd, 0, SEEK_SET))
		return perror("fchown"), 1;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	fd2 = open(path, O_RDWR);
	dfd = open(at("d"), O_RDONLY | O_DIRECTORY);
	if (fd2 < 0 || dfd < 0 || unlink(at("a/b/file")) || rmdir(at("a/b")) || rmdir(at("a")) || rmdir(at("d")))
		return perror("remove"), 1;
	if (chdir(at("c")) || rmdir(at("c")))
		return perror("cwd"), 1;

	if (pipe(ask) || pipe(answer))
		return perror("pipe"), 1;
	child = fork();
	if (child == 0) {
		struct stat st;
		char c;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		while (read(ask[0], &c, 1) == 1) {
			ino_t ino = stat(".", &st) ? 0 : st.st_ino;

			if (write(answer[1], &ino, sizeof(ino)) != sizeof(ino))
				break;
		}
		_exit(0);
	}

	for (i = 0; i < ticks; i++) {
		struct stat st, st2, dst, cst;
		ino_t theirs = 0;
		char c = 'x', back = 0;

		memset(line, 0, sizeof(line));
		if (read(fd, line, 10) != 10)
			printf("short read\n");
		if (pwrite(fd, &c, 1, 4096 + i) != 1 || pread(fd2, &back, 1, 4096 + i) != 1 || back != c)
			printf("tick %d: the two opens are no longer one file\n", i);
		if (fstat(fd, &st) || fstat(fd2, &st2) || fstat(dfd, &dst) || stat(".", &cst))
			return perror("stat"), 1;
		if (write(ask[1], "?", 1) != 1 || read(answer[0], &theirs, sizeof(theirs)) != sizeof(theirs))
			return perror("child"), 1;
		printf("tick %d: %.9s owner %d:%d mode 0%o nlink %ld same inode %s | dir nlink %ld mode 0%o | cwd nlink %ld mode 0%o, the child's %s | %s\n",
		       i, line, (int)st.st_uid, (int)st.st_gid, st.st_mode & 07777, (long)st.st_nlink, st.st_ino == st2.st_ino ? "yes" : "NO",
		       (long)dst.st_nlink, dst.st_mode & 07777, (long)cst.st_nlink, cst.st_mode & 07777,
		       theirs == cst.st_ino ? "the same" : "ANOTHER",
		       access(at("a"), F_OK) == 0 || access(at("c"), F_OK) == 0 || access(at("d"), F_OK) == 0 ? "names came BACK" : "names gone");
		fflush(stdout);
		usleep(100000);
	}
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	printf("pid %d\n", getpid());
	return 0;
}
