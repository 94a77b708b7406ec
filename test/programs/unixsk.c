// SPDX-License-Identifier: GPL-2.0-only
/*
 * unixsk: unix sockets of every kind held across a dump, checked after it.
 * In a directory of its own it builds: a stream listener bound to a
 * relative path (mode 0640) with a connection accepted in this process,
 * one accepted from a child process and two still waiting in its accept
 * queue (the first bound to an abstract name); a seqpacket listener on an
 * abstract name with an accepted connection shut down for writing; a
 * datagram server on a path with datagrams queued from a named client
 * (connected to it) and from an unnamed one; a datagram socket whose file
 * was unlinked; a stream pair carrying a pipe, a file and a socket in
 * flight (SCM_RIGHTS) and a message with credentials; a stream socket
 * whose peer closed after writing; buffer sizes, a receive timeout and
 * SO_PASSCRED. Then it computes for STEPS steps, and at the end checks
 * every one of those and prints what it found.
 *
 *   unixsk STEPS
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "selfcheck.h"

/* An address: a path, or an abstract name when it starts with '@'. */
static socklen_t addr(struct sockaddr_un *un, const char *name)
{
	size_t n = strlen(name);

	memset(un, 0, sizeof(*un));
	un->sun_family = AF_UNIX;
	memcpy(un->sun_path, name, n);
	if (name[0] == '@') {
		un->sun_path[0] = 0;
		return offsetof(struct sockaddr_un, sun_path) + n;
	}
	return sizeof(*un);
}

static int sock(int type, const char *bindto)
{
	struct sockaddr_un un;
	int fd = socket(AF_UNIX, type, 0);

	if (fd < 0)
		die("socket");
	if (bindto && bind(fd, (void *)&un, addr(&un, bindto)) < 0)
		die(bindto);
	return fd;
}

static void connect_to(int fd, const char *name)
{
	struct sockaddr_un un;

	if (connect(fd, (void *)&un, addr(&un, name)) < 0)
		die(name);
}

/* A socket's own or its peer's name, "@..." for an abstract one, "-" for none. */
static const char *name_of(int fd, int peer, char *out)
{
	struct sockaddr_un un;
	socklen_t len = sizeof(un);

	if ((peer ? getpeername : getsockname)(fd, (void *)&un, &len) < 0)
		return strcpy(out, strerror(errno));
	if (len <= offsetof(struct sockaddr_un, sun_path))
		return strcpy(out, "-");
	if (!un.sun_path[0]) {
		out[0] = '@';
		memcpy(out + 1, un.sun_path + 1, len - offsetof(struct sockaddr_un, sun_path) - 1);
		out[len - offsetof(struct sockaddr_un, sun_path)] = 0;
		return out;
	}
	return strcpy(out, un.sun_path);
}

static int same_name(int fd, int peer, const char *want)
{
	char got[128];

	return !strcmp(name_of(fd, peer, got), want);
}

static void put(int fd, const void *p, size_t n)
{
	if (write(fd, p, n) != (ssize_t)n)
		die("write");
}

/* Read exactly n bytes (or up to EOF); returns how many. */
static size_t get(int fd, void *p, size_t n)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = read(fd, (char *)p + done, n - done);

		if (r < 0)
			die("read");
		if (!r)
			break;
		done += r;
	}
	return done;
}

static unsigned char pattern[8192];

static int pattern_ok(const unsigned char *p, size_t n, size_t off)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != pattern[(off + i) % sizeof(pattern)])
			return 0;
	return 1;
}

static void send_fd(int via, const char *data, int fd)
{
	char ctl[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { (void *)data, strlen(data) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	if (sendmsg(via, &m, 0) < 0)
		die("sendmsg SCM_RIGHTS");
}

/* One message: its bytes into buf, a descriptor in flight (or -1), the writer's pid (or 0). */
static ssize_t recv_msg(int fd, char *buf, size_t n, int *got_fd, pid_t *pid)
{
	char ctl[256];
	struct iovec iov = { buf, n };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl) };
	ssize_t r = recvmsg(fd, &m, MSG_DONTWAIT);

	*got_fd = -1;
	*pid = 0;
	if (r < 0)
		return r;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		if (c->cmsg_type == SCM_RIGHTS)
			memcpy(got_fd, CMSG_DATA(c), sizeof(int));
		if (c->cmsg_type == SCM_CREDENTIALS)
			*pid = ((struct ucred *)CMSG_DATA(c))->pid;
	}
	buf[r] = 0;
	return r;
}

static void child(int conn, long steps)
{
	char buf[64];

	for (long i = 0; i < steps; i++)
		usleep(20000);
	put(conn, "child asks", 10);
	exit(get(conn, buf, 11) == 11 && !memcmp(buf, "parent says", 11) ? 0 : 1);
}

int main(int argc, char **argv)
{
	char dir[] = "/tmp/cr-unixsk-XXXXXX", seqname[64], kname[64], c2name[64], path[128], gone[128], buf[8192];
	int L, c1, a1, c2, c3, a2, Q, q1c, q1a, S, K, U, D, r[2], o[2], x[2], p[2], file, one = 1, status;
	long steps;
	pid_t kid;

	close_range(3, ~0U, 0);
	if (argc != 2) {
		fprintf(stderr, "usage: unixsk STEPS\n");
		return 2;
	}
	steps = atol(argv[1]);
	for (size_t i = 0; i < sizeof(pattern); i++)
		pattern[i] = (unsigned char)(i * 131 + (i >> 7));
	if (!mkdtemp(dir) || chdir(dir) < 0)
		die("mkdtemp");
	snprintf(seqname, sizeof(seqname), "@unixsk-%d-seq", getpid());
	snprintf(kname, sizeof(kname), "@unixsk-%d-k", getpid());
	snprintf(c2name, sizeof(c2name), "@unixsk-%d-c2", getpid());

	/* A stream listener on a relative path, one connection accepted here, one from a child, two waiting. */
	L = sock(SOCK_STREAM, "listen.sock");
	if (chmod("listen.sock", 0640) < 0 || listen(L, 8) < 0)
		die("listen");
	c1 = sock(SOCK_STREAM, NULL);
	connect_to(c1, "listen.sock");
	a1 = accept(L, NULL, NULL);
	kid = fork();
	if (!kid) {
		int c4 = sock(SOCK_STREAM, NULL);

		connect_to(c4, "listen.sock");
		child(c4, steps);
	}
	a2 = accept(L, NULL, NULL);
	c2 = sock(SOCK_STREAM, c2name);
	connect_to(c2, "listen.sock");
	c3 = sock(SOCK_STREAM, NULL);
	connect_to(c3, "listen.sock");
	put(c1, pattern, 3000);
	put(a1, pattern + 100, 1000);
	if (setsockopt(c1, SOL_SOCKET, SO_SNDBUF, &(int){ 65536 }, sizeof(int)) < 0 ||
	    setsockopt(c1, SOL_SOCKET, SO_RCVBUF, &(int){ 32768 }, sizeof(int)) < 0 ||
	    setsockopt(c1, SOL_SOCKET, SO_RCVTIMEO, &(struct timeval){ 2, 500000 }, sizeof(struct timeval)) < 0)
		die("setsockopt");

	/* A seqpacket listener on an abstract name; the accepted end writes two records, then shuts down writing. */
	Q = sock(SOCK_SEQPACKET, seqname);
	if (listen(Q, 4) < 0)
		die("listen seqpacket");
	q1c = sock(SOCK_SEQPACKET, NULL);
	connect_to(q1c, seqname);
	q1a = accept(Q, NULL, NULL);
	put(q1a, "record one", 10);
	put(q1a, "record two!", 11);
	shutdown(q1a, SHUT_WR);
	put(q1c, "to the server", 13);

	/* Datagrams queued for a server on a path, from a named client connected to it and from an unnamed one. */
	snprintf(path, sizeof(path), "%s/dgram.sock", dir);
	S = sock(SOCK_DGRAM, path);
	setsockopt(S, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one));
	K = sock(SOCK_DGRAM, kname);
	connect_to(K, path);
	U = sock(SOCK_DGRAM, NULL);
	put(K, "k1", 2);
	for (int i = 0; i < 2; i++) {
		struct sockaddr_un un;

		if (sendto(U, i ? "u2" : "u1", 2, 0, (void *)&un, addr(&un, path)) < 0)
			die("sendto");
		put(K, i ? "k3" : "k2", 2);
	}
	{
		struct sockaddr_un un;

		if (sendto(S, "to k", 4, 0, (void *)&un, addr(&un, kname)) < 0)
			die("sendto k");
	}
	snprintf(gone, sizeof(gone), "%s/gone.sock", dir);
	D = sock(SOCK_DGRAM, gone);
	unlink(gone);

	/* Descriptors in flight: a pipe with data, a file at an offset, a socket with data; then credentials. */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, r) < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, x) < 0 || pipe(p) < 0)
		die("pairs");
	setsockopt(r[0], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one));
	put(p[1], "pipe data", 9);
	file = open("file.txt", O_RDWR | O_CREAT, 0600);
	put(file, "0123456789", 10);
	lseek(file, 5, SEEK_SET);
	put(x[1], "socket data", 11);
	send_fd(r[1], "P", p[0]);
	send_fd(r[1], "F", file);
	send_fd(r[1], "X", x[0]);
	close(p[0]);
	close(file);
	close(x[0]);
	put(r[1], "G", 1);

	/* A stream socket whose peer wrote, then closed. */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, o) < 0)
		die("socketpair");
	put(o[1], pattern + 7, 500);
	close(o[1]);

	printf("built\n");
	fflush(stdout);
	for (long i = 0; i < steps; i++) {
		usleep(20000);
		if (i % 10 == 0) {
			printf("step %ld\n", i);
			fflush(stdout);
		}
	}

	{
		struct stat st;
		struct timeval tv;
		int v;
		socklen_t len = sizeof(v);
		int w1 = accept(L, NULL, NULL), w2 = accept(L, NULL, NULL), fresh = sock(SOCK_STREAM, NULL), w3;

		check(same_name(L, 0, "listen.sock") && !stat("listen.sock", &st) && S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0640,
		      "listener: bound to listen.sock, its file of mode 0640");
		check(w1 >= 0 && same_name(w1, 1, c2name) && w2 >= 0 && same_name(w2, 1, "-"), "listener: the two waiting connections accepted in order");
		put(c3, "three", 5);
		check(get(w2, buf, 5) == 5 && !memcmp(buf, "three", 5), "listener: the last waiting connection carries data");
		connect_to(fresh, "listen.sock");
		w3 = accept(L, NULL, NULL);
		put(w3, "new", 3);
		check(get(fresh, buf, 3) == 3 && !memcmp(buf, "new", 3), "listener: takes a new connection");
		check(same_name(a1, 0, "listen.sock") && same_name(c1, 1, "listen.sock") && same_name(c1, 0, "-") && same_name(a1, 1, "-"),
		      "accepted connection: names on both ends");
		check(get(a1, buf, 3000) == 3000 && pattern_ok((void *)buf, 3000, 0) && get(c1, buf, 1000) == 1000 &&
			      pattern_ok((void *)buf, 1000, 100),
		      "accepted connection: queued bytes both ways");
		getsockopt(c1, SOL_SOCKET, SO_SNDBUF, &v, &len);
		check(v == 131072, "options: SO_SNDBUF %d", v);
		getsockopt(c1, SOL_SOCKET, SO_RCVBUF, &v, &len);
		check(v == 65536, "options: SO_RCVBUF %d", v);
		len = sizeof(tv);
		getsockopt(c1, SOL_SOCKET, SO_RCVTIMEO, &tv, &len);
		check(tv.tv_sec == 2 && tv.tv_usec == 500000, "options: SO_RCVTIMEO %ld.%06ld", (long)tv.tv_sec, (long)tv.tv_usec);
		put(a2, "parent says", 11);
		check(get(a2, buf, 10) == 10 && !memcmp(buf, "child asks", 10), "connection from the child: its message");

		check(same_name(q1a, 0, seqname) && read(q1c, buf, sizeof(buf)) == 10 && read(q1c, buf, sizeof(buf)) == 11 &&
			      read(q1c, buf, sizeof(buf)) == 0,
		      "seqpacket: abstract name, two records, then end of file");
		check(read(q1a, buf, sizeof(buf)) == 13 && send(q1a, "x", 1, MSG_NOSIGNAL) < 0 && errno == EPIPE && write(q1c, "back", 4) == 4 &&
			      read(q1a, buf, sizeof(buf)) == 4,
		      "seqpacket: shut down for writing one way only");

		{
			const char *want[] = { "k1", "u1", "k2", "u2", "k3" };
			int order = 1;

			for (int i = 0; i < 5; i++) {
				struct sockaddr_un from;
				socklen_t flen = sizeof(from);
				ssize_t n = recvfrom(S, buf, sizeof(buf), MSG_DONTWAIT, (void *)&from, &flen);
				int from_k = flen > offsetof(struct sockaddr_un, sun_path) && !from.sun_path[0] &&
					     !memcmp(from.sun_path + 1, kname + 1, strlen(kname) - 1);

				order &= n == 2 && !memcmp(buf, want[i], 2) && from_k == (want[i][0] == 'k');
			}
			check(order && recv(S, buf, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN, "datagrams: five, in order, each with its sender");
		}
		check(same_name(K, 1, path) && same_name(K, 0, kname) && recv(K, buf, sizeof(buf), MSG_DONTWAIT) == 4 &&
			      write(K, "k4", 2) == 2 && recv(S, buf, sizeof(buf), MSG_DONTWAIT) == 2,
		      "datagrams: the client still connected to the server");
		len = sizeof(v);
		getsockopt(S, SOL_SOCKET, SO_PASSCRED, &v, &len);
		check(v == 1, "options: SO_PASSCRED");
		check(same_name(D, 0, gone) && access(gone, F_OK) < 0, "datagram socket whose file was unlinked");

		{
			int fd;
			pid_t pid;

			check(recv_msg(r[0], buf, sizeof(buf), &fd, &pid) == 1 && buf[0] == 'P' && fd >= 0 && get(fd, buf, 9) == 9 &&
				      !memcmp(buf, "pipe data", 9) && pid == getpid(),
			      "in flight: a pipe with its data, and the writer's credentials");
			close(fd);
			check(recv_msg(r[0], buf, sizeof(buf), &fd, &pid) == 1 && buf[0] == 'F' && fd >= 0 && read(fd, buf, 5) == 5 &&
				      !memcmp(buf, "56789", 5),
			      "in flight: a file at its offset");
			close(fd);
			check(recv_msg(r[0], buf, sizeof(buf), &fd, &pid) == 1 && buf[0] == 'X' && fd >= 0 && get(fd, buf, 11) == 11 &&
				      !memcmp(buf, "socket data", 11) && write(fd, "!", 1) == 1 && read(x[1], buf, 1) == 1,
			      "in flight: a socket with its queue and its peer");
			close(fd);
			check(recv_msg(r[0], buf, sizeof(buf), &fd, &pid) == 1 && buf[0] == 'G' && fd < 0 && pid == getpid(),
			      "credentials of the last message");
		}
		check(get(o[0], buf, 600) == 500 && pattern_ok((void *)buf, 500, 7), "peer closed: its bytes, then end of file");
	}
	if (waitpid(kid, &status, 0) != kid || !WIFEXITED(status) || WEXITSTATUS(status))
		check(0, "child exited with status %d", status);
	unlink("listen.sock");
	unlink("dgram.sock");
	unlink("file.txt");
	chdir("/");
	rmdir(dir);
	printf("%s\npid %d\n", bad ? "FAILED" : "all good", (int)getpid());
	return bad != 0;
}
