// SPDX-License-Identifier: GPL-2.0-only
/*
 * ktree: three processes in a chain (p0 -> p1 -> p2) sharing one open
 * file description, each checking its pid and parent as it computes, and
 * a child of p0 that exited with status 7 at once and stays a zombie
 * until p0 reaps it at the end.
 *
 *   ktree DIR ITERATIONS SLEEP_MS
 *
 * Each process writes DIR/pN.txt, one line per iteration: a checksum that
 * depends only on the iteration, whether its pid and (but for p0, whose
 * parent is whoever restores it) its parent pid are still the ones it
 * started with, and reads one byte of DIR/shared.dat through
 * the descriptor all three share.  At the end each child says whether its
 * descriptor is still the same open file as its parent's (kcmp), each
 * parent reaps its child, and p0 checks the shared offset counted every
 * read.  Two runs write the same files.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/kcmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int iters, sleep_ms, idx = 0, shared, out, i, status;
	pid_t child = -1, zombie, mypid, myppid;
	char path[4096], buf[4096] = { 0 };
	uint64_t sum = 1469598103934665603ULL;

	if (argc != 4)
		return 2;
	iters = atoi(argv[2]);
	sleep_ms = atoi(argv[3]);
	snprintf(path, sizeof(path), "%s/shared.dat", argv[1]);
	shared = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (shared < 0 || write(shared, buf, sizeof(buf)) != sizeof(buf) || lseek(shared, 0, SEEK_SET))
		return 2;
	zombie = fork();
	if (zombie < 0)
		return 2;
	if (zombie == 0)
		_exit(7);
	while (idx < 2) {
		child = fork();
		if (child < 0)
			return 2;
		if (child > 0)
			break;
		idx++;
		child = -1;
	}
	mypid = getpid();
	myppid = getppid();
	snprintf(path, sizeof(path), "%s/p%d.txt", argv[1], idx);
	out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	for (i = 0; i < iters; i++) {
		char c;

		sum = (sum ^ (uint64_t)(i * (idx + 1))) * 1099511628211ULL;
		if (read(shared, &c, 1) != 1)
			dprintf(out, "short read\n");
		dprintf(out, "iter %d sum %016llx pid %s ppid %s\n", i, (unsigned long long)sum,
			getpid() == mypid ? "same" : "CHANGED",
			!idx ? "-" : getppid() == myppid ? "same" : "CHANGED");
		usleep(sleep_ms * 1000);
	}
	if (idx)
		dprintf(out, "same open file as the parent's: %s\n",
			syscall(SYS_kcmp, getppid(), getpid(), KCMP_FILE, shared, shared) == 0 ? "yes" : "NO");
	if (child > 0) {
		waitpid(child, &status, 0);
		dprintf(out, "child ended with status %d\n", status);
	}
	if (!idx && waitpid(zombie, &status, 0) == zombie)
		dprintf(out, "zombie ended with status 0x%x\n", status);
	if (!idx)
		dprintf(out, "shared offset %s\n", lseek(shared, 0, SEEK_CUR) == 3 * iters ? "counted every read" : "WRONG");
	return 0;
}
