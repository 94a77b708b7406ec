// SPDX-License-Identifier: GPL-2.0-only
/*
 * unixpair: socket pairs with data queued in both directions across the
 * dump — a stream pair that always holds 50 KB one way and 3000 bytes
 * the other, a non-blocking datagram pair and a seqpacket pair that each
 * always hold a few messages. Every byte read is hashed in order.
 *
 *   unixpair STEPS
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t mix(uint64_t h, const unsigned char *p, size_t n)
{
	while (n--)
		h = (h ^ *p++) * 0x100000001b3ULL;
	return h;
}

static unsigned char pattern[200000];

static int put(int fd, size_t off, size_t len)
{
	while (len) {
		ssize_t n = write(fd, pattern + off, len);

		if (n <= 0)
			return -1;
		off += n;
		len -= n;
	}
	return 0;
}

static int get(int fd, size_t len, uint64_t *h)
{
	unsigned char buf[4096];

	while (len) {
		ssize_t n = read(fd, buf, len < sizeof(buf) ? len : sizeof(buf));

		if (n <= 0)
			return -1;
		*h = mix(*h, buf, n);
		len -= n;
	}
	return 0;
}

/* Messages carry their own number and a size that depends on it. */
static int msg_send(int fd, long k)
{
	size_t len = 8 + (size_t)(k * 37 % 500);

	memcpy(pattern + 100000, &k, 8);
	return send(fd, pattern + 100000, len, 0) == (ssize_t)len ? 0 : -1;
}

static int msg_recv(int fd, uint64_t *h)
{
	unsigned char buf[1024];
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

	if (n < 8)
		return -1;
	*h = mix(*h, buf, n);
	return 0;
}

int main(int argc, char **argv)
{
	int s[2], d[2], q[2];
	uint64_t hs = 0, hd = 0, hq = 0;
	long steps, step, k;
	size_t i;

	close_range(3, ~0U, 0);
	if (argc != 2) {
		fprintf(stderr, "usage: unixpair STEPS\n");
		return 2;
	}
	steps = atol(argv[1]);
	for (i = 0; i < sizeof(pattern); i++)
		pattern[i] = (unsigned char)(i * 131 + (i >> 9));
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, s) < 0 || socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, d) < 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET, 0, q) < 0)
		return 1;
	if (put(s[0], 0, 50000) < 0 || put(s[1], 7, 3000) < 0)
		return 1;
	for (k = 0; k < 3; k++)
		if (msg_send(d[0], k) < 0 || msg_send(q[1], k + 1000) < 0)
			return 1;
	if (msg_send(d[1], 500) < 0)
		return 1;

	for (step = 0; step < steps; step++) {
		struct timespec ts = { 0, 20 * 1000000L };

		/* Keep each queue as full as it was: one in, one out (in chunks few enough for the send buffer). */
		if (put(s[0], (step * 1000) % 100000, 1000) < 0 || get(s[1], 1000, &hs) < 0)
			return 1;
		if (put(s[1], step % 3000, 100) < 0 || get(s[0], 100, &hs) < 0)
			return 1;
		if (msg_send(d[0], step + 3) < 0 || msg_recv(d[1], &hd) < 0)
			return 1;
		if (msg_send(d[1], step + 501) < 0 || msg_recv(d[0], &hd) < 0)
			return 1;
		if (msg_send(q[1], step + 1003) < 0 || msg_recv(q[0], &hq) < 0)
			return 1;
		if (step % 10 == 0)
			dprintf(1, "step %ld stream %016llx dgram %016llx seqpacket %016llx\n", step, (unsigned long long)hs,
				(unsigned long long)hd, (unsigned long long)hq);
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	if (get(s[1], 50000, &hs) < 0 || get(s[0], 3000, &hs) < 0)
		return 1;
	for (k = 0; k < 3; k++)
		if (msg_recv(d[1], &hd) < 0 || msg_recv(q[0], &hq) < 0)
			return 1;
	if (msg_recv(d[0], &hd) < 0)
		return 1;
	dprintf(1, "drained: stream %016llx dgram %016llx seqpacket %016llx, then %s\n", (unsigned long long)hs,
		(unsigned long long)hd, (unsigned long long)hq,
		recv(d[1], pattern, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN ? "empty" : "more");
	dprintf(1, "pid %d\n", (int)getpid());
	return 0;
}
