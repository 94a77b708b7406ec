// SPDX-License-Identifier: GPL-2.0-only
/*
 * kfullpipe: a tree whose pipes and FIFOs would block a restart that
 * wrote or opened them the way a program does.
 *
 *   kfullpipe DIR
 *
 * The parent makes a pipe of 1 MiB (F_SETPIPE_SZ) and fills it up to the
 * last byte, so that one more byte would block, and then makes:
 *   w  holds the write end of DIR/fifo1 (3000 bytes in it), made before
 *      r, so that a restart reopening its end first finds no reader;
 *   r  holds the read end of DIR/fifo1, blocking (no O_NONBLOCK);
 *   l  holds the only end of DIR/fifo2, for reading, blocking: its writer
 *      left 100 bytes and closed, so nobody could ever open the other end;
 *   o  holds the only end of DIR/fifo3, for writing: its reader left, 200
 *      bytes are in it that nobody reads.
 * Prints "ready" once all are set and waits for SIGUSR1, which it passes
 * on; then each checks what it holds: the parent reads the whole MiB
 * back, r reads the 3000 bytes and w's next message, l reads its 100
 * bytes and the end of file, o's FIFO gives a new reader its 200 bytes;
 * each descriptor still has its flags (blocking, its access mode).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "kcheck.h"

#define BIG (1 << 20)
#define INFLIGHT 3000
#define LEFT 100
#define ORPHAN 200

static unsigned char pattern(long i, int seed)
{
	return (unsigned char)(i * 131 + seed + (i >> 12));
}

static void fill(unsigned char *buf, long n, int seed)
{
	long i;

	for (i = 0; i < n; i++)
		buf[i] = pattern(i, seed);
}

/* Read exactly @n bytes of the pattern @seed from @fd */
static int read_pattern(int fd, long n, int seed)
{
	static unsigned char buf[65536];
	long got = 0, i;

	while (got < n) {
		ssize_t r = read(fd, buf, n - got < (long)sizeof(buf) ? n - got : (long)sizeof(buf));

		if (r <= 0)
			return 0;
		for (i = 0; i < r; i++)
			if (buf[i] != pattern(got + i, seed))
				return 0;
		got += r;
	}
	return 1;
}

static int blocking(int fd, int acc)
{
	int fl = fcntl(fd, F_GETFL);

	return fl >= 0 && !(fl & O_NONBLOCK) && (fl & O_ACCMODE) == acc;
}

static char fifo[3][4096];
static int sync_pipe[2];

/* A child: @body sets it up, says so, waits for the restart and checks */
static pid_t child(int (*body)(void))
{
	pid_t pid = fork();

	need(pid >= 0);
	if (pid == 0)
		exit(body());
	return pid;
}

static void ready_then_wait(void)
{
	wait_restart(0, sync_pipe);
}

static int writer(void)
{
	static unsigned char buf[INFLIGHT];
	int fd;

	fd = open(fifo[0], O_WRONLY);	/* waits for r */
	need(fd >= 0);
	fill(buf, INFLIGHT, 1);
	need(write(fd, buf, INFLIGHT) == INFLIGHT);
	ready_then_wait();
	check(blocking(fd, O_WRONLY), "w: its FIFO end is write-only and blocking");
	fill(buf, INFLIGHT, 2);
	check(write(fd, buf, INFLIGHT) == INFLIGHT, "w: writes its next message");
	return failures;
}

static int reader(void)
{
	int fd;

	fd = open(fifo[0], O_RDONLY);	/* waits for w */
	need(fd >= 0);
	ready_then_wait();
	check(blocking(fd, O_RDONLY), "r: its FIFO end is read-only and blocking");
	check(read_pattern(fd, INFLIGHT, 1), "r: reads the bytes w wrote before the checkpoint");
	check(read_pattern(fd, INFLIGHT, 2), "r: and w's message after it");
	return failures;
}

/* The one end @acc of FIFO @path, blocking, with @n bytes of pattern @seed left in it */
static int fifo_left(const char *path, long n, int seed, int acc)
{
	static unsigned char buf[ORPHAN];
	int rd = open(path, O_RDONLY | O_NONBLOCK), wr = open(path, O_WRONLY);

	need(rd >= 0 && wr >= 0 && n <= (long)sizeof(buf));
	fill(buf, n, seed);
	need(write(wr, buf, n) == n);
	close(acc == O_RDONLY ? wr : rd);
	if (acc == O_RDONLY)
		need(fcntl(rd, F_SETFL, 0) == 0);
	return acc == O_RDONLY ? rd : wr;
}

static int lone_reader(void)
{
	int fd = fifo_left(fifo[1], LEFT, 3, O_RDONLY);
	char c;

	ready_then_wait();
	check(blocking(fd, O_RDONLY), "l: its FIFO end is read-only and blocking");
	check(read_pattern(fd, LEFT, 3), "l: reads what its writer left");
	check(read(fd, &c, 1) == 0, "l: and then the end of file: nobody writes");
	return failures;
}

static int lone_writer(void)
{
	int fd = fifo_left(fifo[2], ORPHAN, 4, O_WRONLY), rd;

	ready_then_wait();
	check(blocking(fd, O_WRONLY), "o: its FIFO end is write-only and blocking");
	rd = open(fifo[2], O_RDONLY | O_NONBLOCK);
	check(rd >= 0 && read_pattern(rd, ORPHAN, 4), "o: a new reader gets the bytes nobody read");
	return failures;
}

int main(int argc, char **argv)
{
	static int (*const bodies[4])(void) = { writer, reader, lone_reader, lone_writer };
	unsigned char *buf;
	pid_t kids[4];
	int big[2], i, status, size;
	char c;

	if (argc != 2)
		return 2;
	setvbuf(stdout, NULL, _IONBF, 0);
	for (i = 0; i < 3; i++) {
		snprintf(fifo[i], sizeof(fifo[i]), "%s/fifo%d", argv[1], i + 1);
		unlink(fifo[i]);
		need(mkfifo(fifo[i], 0600) == 0);
	}
	need(pipe(sync_pipe) == 0 && pipe2(big, O_NONBLOCK) == 0);
	need(fcntl(big[1], F_SETPIPE_SZ, BIG) == BIG);
	buf = malloc(BIG);
	need(buf);
	fill(buf, BIG, 0);
	need(write(big[1], buf, BIG) == BIG);
	need(write(big[1], buf, 1) < 0 && errno == EAGAIN);	/* full */
	need(fcntl(big[0], F_SETFL, 0) == 0 && fcntl(big[1], F_SETFL, 0) == 0);
	/* w and r open fifo1 together; each child says when it is set */
	for (i = 0; i < 4; i++)
		kids[i] = child(bodies[i]);
	for (i = 0; i < 4; i++)
		need(read(sync_pipe[0], &c, 1) == 1);
	wait_restart(-1, sync_pipe);
	for (i = 0; i < 4; i++)
		kill(kids[i], SIGUSR1);
	size = fcntl(big[1], F_GETPIPE_SZ);
	check(size == BIG, "parent: the pipe has its size");
	check(blocking(big[0], O_RDONLY) && blocking(big[1], O_WRONLY),
	      "parent: its pipe ends are blocking");
	check(read_pattern(big[0], BIG, 0), "parent: reads the whole MiB back");
	for (i = 0; i < 4; i++)
		check(waitpid(kids[i], &status, 0) == kids[i] && WIFEXITED(status) &&
		      !WEXITSTATUS(status), "parent: a child ended well");
	return failures;
}
