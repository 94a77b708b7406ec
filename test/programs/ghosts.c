// SPDX-License-Identifier: GPL-2.0-only
/*
 * ghosts: open files with no name to reopen them by: a sealed memfd that
 * is also mapped shared, and a regular file unlinked while open.
 *
 *   ghosts DIR TICKS
 *
 * Every 100 ms it writes a word through the memfd mapping and reads it
 * back through the descriptor (they must still be one object), reads the
 * next line of the unlinked file at its offset, and prints both, its
 * seals, the memfd's name and the file's link count; then its pid.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MEMFD_SIZE (64 << 10)

int main(int argc, char **argv)
{
	char path[4096], name[256] = "", link[64], line[32];
	int mfd, ufd, i, ticks;
	uint64_t *map, word;
	struct stat st;

	close_range(3, ~0U, 0);
	if (argc != 3) {
		fprintf(stderr, "usage: ghosts DIR TICKS\n");
		return 2;
	}
	ticks = atoi(argv[2]);
	mfd = memfd_create("ghost-memfd", MFD_ALLOW_SEALING);
	if (mfd < 0 || ftruncate(mfd, MEMFD_SIZE))
		return perror("memfd"), 1;
	map = mmap(NULL, MEMFD_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	if (map == MAP_FAILED)
		return perror("mmap"), 1;
	for (i = 0; i < MEMFD_SIZE / 8; i++)
		map[i] = i * 0x9e3779b97f4a7c15ULL;
	if (fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW))
		return perror("seals"), 1;

	snprintf(path, sizeof(path), "%s/unlinked.txt", argv[1]);
	ufd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0640);
	if (ufd < 0)
		return perror(path), 1;
	for (i = 0; i < ticks + 10; i++)
		dprintf(ufd, "line %04d\n", i);
	lseek(ufd, 0, SEEK_SET);
	unlink(path);

	for (i = 0; i < ticks; i++) {
		map[i * 64] ^= i + 1;
		if (pread(mfd, &word, 8, i * 512) != 8 || word != map[i * 64])
			printf("memfd and its mapping differ at word %d\n", i * 64);
		snprintf(link, sizeof(link), "/proc/self/fd/%d", mfd);
		name[readlink(link, name, sizeof(name) - 1)] = 0;
		fstat(ufd, &st);
		memset(line, 0, sizeof(line));
		if (read(ufd, line, 10) != 10)
			printf("short read from the unlinked file\n");
		printf("tick %d word %016llx seals %x %s | %.9s nlink %ld size %lld\n", i, (unsigned long long)word,
		       fcntl(mfd, F_GET_SEALS), name, line, (long)st.st_nlink, (long long)st.st_size);
		fflush(stdout);
		usleep(100000);
	}
	printf("pid %d\n", getpid());
	return 0;
}
