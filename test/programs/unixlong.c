// SPDX-License-Identifier: GPL-2.0-only
/*
 * unixlong: unix sockets whose names are as long as sun_path allows, or
 * whose socket files' paths are longer than it holds. In a directory 200
 * bytes deep it binds, relative to its working directory, a stream
 * listener (one connection accepted with bytes queued, two not accepted
 * yet, each of which writes a byte after the dump) and a datagram socket with two datagrams queued from a named
 * sender and a socket connected to it; in another directory, a listener
 * on a name of all 108 bytes of sun_path (no NUL), with one connection
 * not accepted yet. After the dump it checks every name, queue and
 * connection, its working directory, and that new connections still
 * reach both listeners.
 *
 *   unixlong STEPS
 */
#define _GNU_SOURCE
#include <ftw.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "selfcheck.h"

static char top[64], deep[512], full[sizeof(((struct sockaddr_un *)0)->sun_path)];

/* A sockaddr_un of `n` bytes of name (a name of all of sun_path has no NUL). */
static socklen_t addr(struct sockaddr_un *un, const char *name, size_t n)
{
	memset(un, 0, sizeof(*un));
	un->sun_family = AF_UNIX;
	memcpy(un->sun_path, name, n);
	return offsetof(struct sockaddr_un, sun_path) + n;
}

static int sock(int type, const char *name, size_t n)
{
	struct sockaddr_un un;
	int fd = socket(AF_UNIX, type, 0);

	if (fd < 0 || (name && bind(fd, (void *)&un, addr(&un, name, n)) < 0))
		die(name ? name : "socket");
	return fd;
}

static void to(int fd, const char *name, size_t n)
{
	struct sockaddr_un un;

	if (connect(fd, (void *)&un, addr(&un, name, n)) < 0)
		die("connect");
}

/* Is the socket bound to these `n` bytes of name? (The kernel counts a NUL after it, even past sun_path.) */
static int named(int fd, const char *name, size_t n)
{
	struct sockaddr_un un;
	socklen_t len = sizeof(un);

	return !getsockname(fd, (void *)&un, &len) && len == offsetof(struct sockaddr_un, sun_path) + n + 1 &&
	       !memcmp(un.sun_path, name, n);
}

static int next_is(int fd, const char *want)
{
	char buf[64];
	ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

	return r == (ssize_t)strlen(want) && !memcmp(buf, want, r);
}

/* The next datagram, and whether it came from `name` (relative). */
static int dgram_from(int fd, const char *want, const char *name)
{
	struct sockaddr_un from;
	socklen_t len = sizeof(from);
	char buf[64];
	ssize_t r = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, (void *)&from, &len);

	return r == (ssize_t)strlen(want) && !memcmp(buf, want, r) && !strcmp(from.sun_path, name);
}

/* Take the next connection off the listener: does it carry `tag` first? */
static int accepts(int l, char tag)
{
	char got = 0;
	int s = accept(l, NULL, NULL);
	int ok = s >= 0 && read(s, &got, 1) == 1 && got == tag;

	close(s);
	return ok;
}

static int rm(const char *p, const struct stat *st, int type, struct FTW *f)
{
	(void)st, (void)type, (void)f;
	return remove(p);
}

int main(int argc, char **argv)
{
	int L, A, C, P[2], D, S, T, F, FP, K;
	char cwd[sizeof(deep)], seg[48];
	long steps;

	close_range(3, ~0U, 0);
	if (argc != 2) {
		fprintf(stderr, "usage: unixlong STEPS\n");
		return 2;
	}
	steps = atol(argv[1]);
	snprintf(top, sizeof(top), "/tmp/cr-unixlong-XXXXXX");
	if (!mkdtemp(top))
		die("mkdtemp");
	/* 200 bytes of directories for the relative names; one whose name fills sun_path */
	strcpy(deep, top);
	memset(seg, 'd', sizeof(seg) - 1);
	seg[sizeof(seg) - 1] = 0;
	while (strlen(deep) < 200) {
		strcat(deep, "/");
		strcat(deep, seg);
		if (mkdir(deep, 0700) < 0)
			die("mkdir");
	}
	if (chdir(deep) < 0)
		die("chdir");
	{
		size_t n = snprintf(full, sizeof(full), "%s/f/", top);

		if (mkdir(full, 0700) < 0)
			die("mkdir f");
		memset(full + n, 'x', sizeof(full) - n);
	}

	L = sock(SOCK_STREAM, "l.sock", 6);
	if (listen(L, 8) < 0)
		die("listen");
	C = sock(SOCK_STREAM, NULL, 0);
	to(C, "l.sock", 6);
	A = accept(L, NULL, NULL);
	if (A < 0 || write(C, "queued to the accepted one", 26) != 26)
		die("accepted");
	for (int i = 0; i < 2; i++) {
		P[i] = sock(SOCK_STREAM, NULL, 0);
		to(P[i], "l.sock", 6);
	}
	D = sock(SOCK_DGRAM, "d.sock", 6);
	S = sock(SOCK_DGRAM, "s.sock", 6);
	T = sock(SOCK_DGRAM, NULL, 0);
	to(T, "d.sock", 6);
	for (int i = 0; i < 2; i++) {
		struct sockaddr_un un;

		if (sendto(S, i ? "second" : "first", i ? 6 : 5, 0, (void *)&un, addr(&un, "d.sock", 6)) < 0)
			die("sendto");
	}
	F = sock(SOCK_STREAM, full, sizeof(full));
	if (listen(F, 8) < 0)
		die("listen full");
	FP = sock(SOCK_STREAM, NULL, 0);
	to(FP, full, sizeof(full));

	built_then_step(steps);

	check(getcwd(cwd, sizeof(cwd)) && !strcmp(cwd, deep), "the working directory, 200 bytes deep");
	check(named(L, "l.sock", 6) && named(A, "l.sock", 6) && named(D, "d.sock", 6) && named(S, "s.sock", 6),
	      "relative names in a directory longer than sun_path");
	check(named(F, full, sizeof(full)), "a name of all of sun_path, without a NUL");
	check(next_is(A, "queued to the accepted one"), "the accepted connection's queue");
	check(write(P[0], "a", 1) == 1 && write(P[1], "b", 1) == 1 && accepts(L, 'a') && accepts(L, 'b'),
	      "two connections not accepted yet, in order");
	check(dgram_from(D, "first", "s.sock") && dgram_from(D, "second", "s.sock"), "two datagrams with their sender");
	check(write(T, "connected", 9) == 9 && next_is(D, "connected"), "a datagram socket still connected by a relative name");
	check(write(FP, "f", 1) == 1 && accepts(F, 'f'), "the full-length listener's connection not accepted yet");
	K = sock(SOCK_STREAM, NULL, 0);
	to(K, "l.sock", 6);
	check(write(K, "k", 1) == 1 && accepts(L, 'k'), "a new connection by the relative name");
	close(K);
	K = sock(SOCK_STREAM, NULL, 0);
	to(K, full, sizeof(full));
	check(write(K, "k", 1) == 1 && accepts(F, 'k'), "a new connection by the full-length name");
	if (chdir("/") < 0 || nftw(top, rm, 16, FTW_DEPTH | FTW_PHYS) < 0)
		printf("could not remove %s\n", top);
	printf("%s\npid %d\n", bad ? "FAILED" : "all good", (int)getpid());
	return bad != 0;
}
