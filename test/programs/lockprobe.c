// SPDX-License-Identifier: GPL-2.0-only
/*
 * lockprobe: look at the locks of `locks` from outside its tree.
 *
 *   lockprobe DIR
 *
 * Prints what F_GETLK and F_OFD_GETLK say stops a write lock at a few
 * offsets of DIR/data (type, holder pid, range), and whether flock
 * LOCK_NB can take DIR/data shared and exclusive and DIR/other shared.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static void probe(int fd, int cmd, const char *name, off_t at)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = at, .l_len = 1 };

	if (fcntl(fd, cmd, &fl) < 0)
		printf("%s %lld: error %s\n", name, (long long)at, strerror(errno));
	else if (fl.l_type == F_UNLCK)
		printf("%s %lld: free\n", name, (long long)at);
	else
		printf("%s %lld: %s lock of pid %d on [%lld +%lld]\n", name, (long long)at, fl.l_type == F_WRLCK ? "write" : "read",
		       (int)fl.l_pid, (long long)fl.l_start, (long long)fl.l_len);
}

static const char *try_flock(const char *path, int how)
{
	int fd = open(path, O_RDONLY);
	const char *what = fd < 0 ? "cannot open" : flock(fd, how | LOCK_NB) == 0 ? "taken" : errno == EWOULDBLOCK ? "held by another" : strerror(errno);

	if (fd >= 0)
		close(fd);
	return what;
}

int main(int argc, char **argv)
{
	char data[4096], other[4096];
	long at[] = { 0, 99, 100, 149, 150, 159, 160, 199, 200, 1 << 30 };
	unsigned int i;
	int fd;

	if (argc != 2)
		return 2;
	snprintf(data, sizeof(data), "%s/data", argv[1]);
	snprintf(other, sizeof(other), "%s/other", argv[1]);
	fd = open(data, O_RDWR);
	if (fd < 0)
		return perror(data), 1;
	for (i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		probe(fd, F_GETLK, "F_GETLK", at[i]);
		probe(fd, F_OFD_GETLK, "F_OFD_GETLK", at[i]);
	}
	printf("flock data shared: %s\n", try_flock(data, LOCK_SH));
	printf("flock data exclusive: %s\n", try_flock(data, LOCK_EX));
	printf("flock other shared: %s\n", try_flock(other, LOCK_SH));
	return 0;
}
