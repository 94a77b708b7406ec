// SPDX-License-Identifier: GPL-2.0-only
/*
 * ksockets: unix sockets across checkpoint/restart.
 *
 *   ksockets MODE DIR
 *
 * Each MODE builds its sockets (a parent and a child process), prints
 * "ready", waits for SIGUSR1 (sent to the parent, which passes it on), then
 * checks what the sockets hold and that they still work; it prints "ok
 * ..." or "FAIL ..." lines and exits with the number of failures.
 *
 *   pairs    socket pairs, one end in each process: stream (data both ways,
 *            one side shut down for writing, options), datagram and
 *            seqpacket (message boundaries, SO_PASSCRED), and a stream
 *            socket whose peer was closed with data unread
 *   listen   a socket bound to DIR/sock (mode 0600) listening, with an
 *            accepted connection holding data both ways and three pending
 *            connections (one closed by its client), accepted after the
 *            restart in order; then a new connection, accepted again
 *   dgram    a datagram socket bound to DIR/dsock receiving from a bound
 *            and an unbound sender, and an abstract one receiving from a
 *            socket connected to it
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kcheck.h"

static char dir[1024];
static pid_t child;
static int sync_fds[2];	/* the child says it is ready */

static struct sockaddr_un addr_of(const char *name, socklen_t *len)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };

	if (name[0] == '@') {
		memcpy(a.sun_path + 1, name + 1, strlen(name) - 1);
		*len = offsetof(struct sockaddr_un, sun_path) + strlen(name);
	} else {
		char full[PATH_MAX];

		snprintf(full, sizeof(full), "%s/%s", dir, name);
		if (strlen(full) >= sizeof(a.sun_path))
			exit(100);
		memcpy(a.sun_path, full, strlen(full) + 1);
		*len = sizeof(a);
	}
	return a;
}

static int bound(int type, const char *name)
{
	socklen_t len;
	struct sockaddr_un a = addr_of(name, &len);
	int s = socket(AF_UNIX, type, 0);

	if (name[0] != '@')
		unlink(a.sun_path);
	need(s >= 0 && !bind(s, (struct sockaddr *)&a, len));
	return s;
}

static int connected(int type, const char *name)
{
	socklen_t len;
	struct sockaddr_un a = addr_of(name, &len);
	int s = socket(AF_UNIX, type, 0);

	need(s >= 0 && !connect(s, (struct sockaddr *)&a, len));
	return s;
}

static int read_all(int fd, char *buf, int max)
{
	int got = 0, n;

	while (got < max && (n = read(fd, buf + got, max - got)) > 0)
		got += n;
	return got;
}

static int ends(int status)
{
	return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}

static void mode_pairs(void)
{
	int st[2], dg[2], sq[2], dead[2], one = 1, buf = 24576, v, n;
	struct timeval tv = { 1, 500000 }, got;
	struct ucred peer, peer2;
	static char big[3000], b[4096];
	socklen_t len;

	need(!socketpair(AF_UNIX, SOCK_STREAM, 0, st) && !socketpair(AF_UNIX, SOCK_DGRAM, 0, dg) &&
	     !socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sq) && !socketpair(AF_UNIX, SOCK_STREAM, 0, dead));
	memset(big, 'b', sizeof(big));
	need(!setsockopt(st[0], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf)) &&
	     !setsockopt(st[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) &&
	     !setsockopt(dg[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)));
	need(write(st[0], "hello", 5) == 5 && write(st[0], big, sizeof(big)) == sizeof(big) &&
	     write(st[1], "seventeen bytes!!", 17) == 17 && !shutdown(st[0], SHUT_WR));
	need(send(dg[0], "one", 3, 0) == 3 && send(dg[0], "two!", 4, 0) == 4 &&
	     send(dg[0], big, 1000, 0) == 1000);
	need(send(sq[1], "first", 5, 0) == 5 && send(sq[1], "second!", 7, 0) == 7);
	need(write(dead[1], "last words", 10) == 10 && !close(dead[1]));
	len = sizeof(peer);
	need(!getsockopt(st[0], SOL_SOCKET, SO_PEERCRED, &peer, &len));
	len = sizeof(v);
	getsockopt(st[0], SOL_SOCKET, SO_SNDBUF, &buf, &len);
	child = fork();
	need(child >= 0);
	if (child == 0) {
		/* the child holds the other ends */
		close(st[0]);
		close(dg[0]);
		close(sq[0]);
		wait_restart(child, sync_fds);
		n = read_all(st[1], b, sizeof(b));
		check(n == 5 + (int)sizeof(big) && !memcmp(b, "hello", 5) && b[n - 1] == 'b',
		      "stream: the bytes in flight, then end of file (peer shut down)");
		len = sizeof(got);
		check(!getsockopt(st[1], SOL_SOCKET, SO_RCVTIMEO, &got, &len) && got.tv_sec == 1 &&
		      got.tv_usec == 500000, "SO_RCVTIMEO");
		{
			char cbuf[CMSG_SPACE(sizeof(struct ucred))];
			struct iovec io = { b, sizeof(b) };
			struct msghdr m = { .msg_iov = &io, .msg_iovlen = 1, .msg_control = cbuf,
					    .msg_controllen = sizeof(cbuf) };
			struct cmsghdr *c;
			int r1 = recvmsg(dg[1], &m, 0);

			c = CMSG_FIRSTHDR(&m);
			check(r1 == 3 && !memcmp(b, "one", 3) && c && c->cmsg_type == SCM_CREDENTIALS &&
			      ((struct ucred *)CMSG_DATA(c))->pid == getppid(),
			      "datagram: the first message, with its sender's credentials");
			check(recv(dg[1], b, sizeof(b), 0) == 4 && recv(dg[1], b, sizeof(b), MSG_DONTWAIT) == 1000 &&
			      recv(dg[1], b, sizeof(b), MSG_DONTWAIT) < 0, "datagram: message boundaries");
		}
		check(write(st[1], "x", 1) == 1, "stream: the other way is still open");
		_exit(failures);
	}
	close(st[1]);
	close(dg[1]);
	wait_restart(child, sync_fds);
	n = read_all(st[0], b, 17);
	check(n == 17 && !memcmp(b, "seventeen bytes!!", 17), "stream: bytes the child had sent");
	len = sizeof(peer2);
	check(!getsockopt(st[0], SOL_SOCKET, SO_PEERCRED, &peer2, &len) && peer2.pid == peer.pid &&
	      peer2.uid == peer.uid && peer2.gid == peer.gid, "SO_PEERCRED");
	len = sizeof(v);
	check(!getsockopt(st[0], SOL_SOCKET, SO_SNDBUF, &v, &len) && v == buf, "SO_SNDBUF");
	check(send(st[0], "z", 1, MSG_NOSIGNAL) < 0 && errno == EPIPE, "stream: still shut down for writing");
	check(recv(sq[0], b, sizeof(b), 0) == 5 && recv(sq[0], b, sizeof(b), 0) == 7 &&
	      !memcmp(b, "second!", 7), "seqpacket: messages and boundaries");
	check(read_all(dead[0], b, sizeof(b)) == 10 && !memcmp(b, "last words", 10),
	      "a peer that was closed: its last bytes, then end of file");
	check(read(st[0], b, 1) == 1 && b[0] == 'x', "stream: the child writes again");
	{
		int status;

		waitpid(child, &status, 0);
		failures += ends(status);
	}
}

static void mode_listen(void)
{
	int l = bound(SOCK_STREAM, "sock"), s0, c0, status;
	char b[256], sock[PATH_MAX];
	struct sockaddr_un a;
	socklen_t len;
	struct stat stt;

	snprintf(sock, sizeof(sock), "%s/sock", dir);
	need(!chmod(sock, 0600) && !listen(l, 5));
	child = fork();
	need(child >= 0);
	if (child == 0) {
		int c1, c2, gone, again;

		c0 = connected(SOCK_STREAM, "sock");
		need(write(c0, "to the server", 13) == 13);
		need(read(c0, b, 1) == 1);	/* accepted */
		c1 = connected(SOCK_STREAM, "sock");
		c2 = connected(SOCK_STREAM, "sock");
		gone = connected(SOCK_STREAM, "sock");
		need(write(c1, "c1", 2) == 2 && write(c2, "c2-data", 7) == 7 && !shutdown(c2, SHUT_WR));
		need(write(gone, "gone", 4) == 4 && !close(gone));
		wait_restart(child, sync_fds);
		len = sizeof(a);
		check(!getpeername(c0, (struct sockaddr *)&a, &len) && !strcmp(a.sun_path, sock),
		      "the client sees the server's name");
		check(read(c0, b, 6) == 6 && !memcmp(b, "to you", 6), "the client gets the server's bytes");
		check(write(c1, "!", 1) == 1 && read_all(c1, b, 2) == 2 && !memcmp(b, "ok", 2),
		      "a pending connection works once accepted");
		again = connected(SOCK_STREAM, "sock");
		check(write(again, "again", 5) == 5 && read_all(again, b, 2) == 2,
		      "a new connection after the restart");
		_exit(failures);
	}
	s0 = accept(l, NULL, NULL);
	need(s0 >= 0 && write(s0, "a", 1) == 1 && write(s0, "to you", 6) == 6);
	need(read(s0, b, 13) == 13);
	wait_restart(child, sync_fds);
	check(!stat(sock, &stt) && S_ISSOCK(stt.st_mode) && (stt.st_mode & 0777) == 0600,
	      "the socket file is there again, with its mode");
	len = sizeof(a);
	check(!getsockname(s0, (struct sockaddr *)&a, &len) && !strcmp(a.sun_path, sock),
	      "the accepted socket has its listener's name");
	{
		int p1 = accept(l, NULL, NULL), p2 = accept4(l, NULL, NULL, SOCK_NONBLOCK);
		int p3 = accept4(l, NULL, NULL, SOCK_NONBLOCK), n;

		/* "c1" was queued before the checkpoint, "!" comes after the restart */
		check(p1 >= 0 && read_all(p1, b, 3) == 3 && !memcmp(b, "c1!", 3) && write(p1, "ok", 2) == 2,
		      "the first pending connection, in order, with its bytes");
		n = p2 >= 0 ? read(p2, b, sizeof(b)) : -1;
		check(n == 7 && !memcmp(b, "c2-data", 7) && read(p2, b, 1) == 0,
		      "the second, with its bytes, shut down by its client");
		check(p3 >= 0 && read(p3, b, sizeof(b)) == 4 && !memcmp(b, "gone", 4) && read(p3, b, 1) == 0,
		      "the third, closed by its client, with its last bytes");
	}
	{
		int again = accept(l, NULL, NULL);

		check(again >= 0 && read_all(again, b, 5) == 5 && !memcmp(b, "again", 5) &&
		      write(again, "ok", 2) == 2, "the listening socket accepts again");
	}
	waitpid(child, &status, 0);
	failures += ends(status);
}

static void mode_dgram(void)
{
	int srv = bound(SOCK_DGRAM, "dsock"), named = bound(SOCK_DGRAM, "dclient");
	int anon = socket(AF_UNIX, SOCK_DGRAM, 0), abs, conn, status;
	char b[256], abstract[64], dclient[PATH_MAX];
	struct sockaddr_un a, to;
	socklen_t len, tolen;

	snprintf(abstract, sizeof(abstract), "@kdgram-%d", getpid());
	snprintf(dclient, sizeof(dclient), "%s/dclient", dir);
	abs = bound(SOCK_DGRAM, abstract);
	to = addr_of("dsock", &tolen);
	need(anon >= 0 && sendto(named, "from-named", 10, 0, (struct sockaddr *)&to, tolen) == 10);
	need(sendto(anon, "from-anon", 9, 0, (struct sockaddr *)&to, tolen) == 9);
	child = fork();
	need(child >= 0);
	if (child == 0) {
		conn = connected(SOCK_DGRAM, abstract);
		need(send(conn, "connected", 9, 0) == 9);
		wait_restart(child, sync_fds);
		check(send(conn, "still", 5, 0) == 5, "a connected datagram socket sends again");
		_exit(failures);
	}
	wait_restart(child, sync_fds);
	len = sizeof(a);
	check(recvfrom(srv, b, sizeof(b), 0, (struct sockaddr *)&a, &len) == 10 &&
	      !memcmp(b, "from-named", 10) && !strcmp(a.sun_path, dclient),
	      "a datagram from a bound sender, with its name");
	len = sizeof(a);
	check(recvfrom(srv, b, sizeof(b), MSG_DONTWAIT, (struct sockaddr *)&a, &len) == 9 &&
	      !memcmp(b, "from-anon", 9) && len == 0, "a datagram from an unbound sender, nameless");
	check(recv(abs, b, sizeof(b), 0) == 9 && !memcmp(b, "connected", 9),
	      "an abstract socket's datagram");
	waitpid(child, &status, 0);
	failures += ends(status);
	check(recv(abs, b, sizeof(b), MSG_DONTWAIT) == 5 && !memcmp(b, "still", 5),
	      "the abstract socket receives again");
	check(sendto(named, "x", 1, 0, (struct sockaddr *)&to, tolen) == 1 &&
	      recv(srv, b, 1, 0) == 1, "the bound socket receives again");
}

int main(int argc, char **argv)
{
	char real[PATH_MAX];

	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc != 3 || !realpath(argv[2], real) || strlen(real) >= sizeof(dir) - 64 || pipe(sync_fds))
		return 100;
	strcpy(dir, real);
	child = 1;	/* the parent until fork() says otherwise */
	if (!strcmp(argv[1], "pairs"))
		mode_pairs();
	else if (!strcmp(argv[1], "listen"))
		mode_listen();
	else if (!strcmp(argv[1], "dgram"))
		mode_dgram();
	else
		return 100;
	return failures;
}
