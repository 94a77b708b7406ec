// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: unix sockets (stream, datagram, seqpacket).
 *
 * A socket is a SOCKET object, defined once (keyed by its sock) and named
 * by the FILE of its socket file: its type, state, address, shutdown
 * state, pending error, options and SO_PEERCRED, then its receive queue
 * as SKB objects, oldest first, each with its bytes, its sender's address
 * and credentials.  The queue is walked, not read, so a checkpoint that
 * leaves the tasks running changes nothing.  A connected pair is written
 * back to back, and restart makes it with socketpair; an accepted socket
 * gets the name it inherited from its listener; a socket bound to a path
 * is bound to it again, with its mode and owner, after the stale socket
 * file there is removed; a listening socket listens again, and its
 * pending connections follow it as the SOCKETs of their clients, which
 * restart connects to it again, so accept(2) finds them in order.  Queued
 * data is sent again by the sockets it came from (a socket whose peer was
 * closed gets it from a stand-in that is closed afterwards) and given its
 * sender's credentials back; the shutdown state, pending error and
 * SO_PEERCRED are set last.
 *
 * Refused by name: sockets of other families, descriptors in flight
 * (SCM_RIGHTS), out-of-band data, and connections to sockets outside the
 * tree (but a datagram socket connected to a bound socket outside the
 * tree, such as /dev/log, which is connected to it by name again).
 */

#include <linux/file.h>
#include <linux/fs.h>
#include <linux/fs_struct.h>
#include <linux/namei.h>
#include <linux/net.h>
#include <linux/pid.h>
#include <linux/skbuff.h>
#include <linux/slab.h>
#include <linux/socket.h>
#include <linux/un.h>
#include <net/af_unix.h>
#include <net/sock.h>
#include <net/tcp_states.h>

#include "ckpt.h"

#define CKPT_SKBS_MAX		4096

/* Restart: what a socket needs until it and its peer are complete */
struct ckpt_rsock {
	struct ckpt_hdr_socket *h;	/* NULL: made as a peer, its SOCKET not read yet */
	struct socket *sock;		/* owned by its file, the objhash's */
	bool done;			/* its SKBs are in */
};

struct socket *ckpt_sock_of(struct file *file)
{
	return file->f_mode & FMODE_PATH ? NULL : sock_from_file(file);
}

static bool ckpt_unix_match(struct file *file)
{
	struct socket *sock = ckpt_sock_of(file);

	return sock && sock->sk && sock->sk->sk_family == AF_UNIX;
}

const char *ckpt_socket_family(struct file *file)
{
	struct socket *sock = ckpt_sock_of(file);

	switch (sock && sock->sk ? sock->sk->sk_family : AF_UNSPEC) {
	case AF_UNIX:
		return "unix";
	case AF_INET:
	case AF_INET6:
		return ckpt_inet_kind(sock->sk);
	case AF_NETLINK:
		return "netlink";
	case AF_PACKET:
		return "packet";
	case AF_VSOCK:
		return "vsock";
	case AF_ALG:
		return "alg";
	case AF_KEY:
		return "key";
	case AF_BLUETOOTH:
		return "bluetooth";
	}
	return "an unknown family's";
}

static bool ckpt_file_is_sock(struct file *file, const void *sk)
{
	struct socket *sock = ckpt_sock_of(file);

	return sock && sock->sk == sk;
}

/* A peer that was closed (its sock lives on until we let it go) */
static bool ckpt_sock_closed(struct sock *sk)
{
	return sock_flag(sk, SOCK_DEAD);
}

/* A connection not accepted yet: a sock of its own, without a socket */
static bool ckpt_sock_embryo(struct sock *sk)
{
	return !ckpt_sock_closed(sk) && !READ_ONCE(sk->sk_socket);
}

bool ckpt_sock_in_tree(struct ckpt_ctx *ctx, struct sock *sk)
{
	return ckpt_tree_has_file(ctx, ckpt_file_is_sock, sk);
}

/* A socket connected to one that lives outside the tree: the caller's plumbing */
bool ckpt_unix_outside(struct ckpt_ctx *ctx, struct file *file)
{
	struct sock *peer;
	bool outside;

	if (!ckpt_unix_match(file))
		return false;
	peer = unix_peer_get(ckpt_sock_of(file)->sk);
	if (!peer)
		return false;
	outside = !ckpt_sock_closed(peer) && !ckpt_sock_embryo(peer) &&
		  !ckpt_sock_in_tree(ctx, peer);
	sock_put(peer);
	return outside;
}

static void ckpt_sock_addr(struct sock *sk, struct ckpt_sockaddr *a)
{
	/* pairs with the release that publishes a bound socket's address */
	struct unix_address *addr = smp_load_acquire(&unix_sk(sk)->addr);

	if (!addr)
		return;
	a->len = min_t(u32, addr->len, sizeof(a->name));
	memcpy(a->name, addr->name, a->len);
}

/* Its address, whether bind(2) gave it (1), and the path of its socket file */
static int checkpoint_sock_addr(struct ckpt_ctx *ctx, struct sock *sk,
				struct ckpt_hdr_socket *h, char *buf, char **path)
{
	struct unix_sock *u = unix_sk(sk);
	struct user_namespace *ns = current_user_ns();
	struct path back;

	*path = "";
	ckpt_sock_addr(sk, &h->addr);
	if (!h->addr.len)
		return 0;
	if (sk->sk_hash > UNIX_HASH_MOD) {
		h->addr.bound = 1;	/* abstract */
		return 0;
	}
	if (hlist_unhashed(&sk->sk_bind_node) || !u->path.dentry)
		return 0;		/* inherited from its listener by accept(2) */
	h->addr.bound = 2;		/* bound to a path that no longer leads to it */
	if (d_unlinked(u->path.dentry))
		return 0;
	*path = d_path(&u->path, buf, PATH_MAX);
	if (IS_ERR(*path))
		return ckpt_err(ctx, PTR_ERR(*path), "unix socket: no path for its socket file");
	if (strlen(*path) >= sizeof_field(struct sockaddr_un, sun_path))
		return ckpt_err(ctx, -ENAMETOOLONG, "unix socket %s: its path is too long", *path);
	if (!kern_path(*path, 0, &back)) {
		if (back.dentry == u->path.dentry)
			h->addr.bound = 1;
		path_put(&back);
	}
	if (h->addr.bound != 1) {
		*path = "";
		return 0;
	}
	h->bound_mode = d_inode(u->path.dentry)->i_mode & 07777;
	h->bound_uid = from_kuid_munged(ns, d_inode(u->path.dentry)->i_uid);
	h->bound_gid = from_kgid_munged(ns, d_inode(u->path.dentry)->i_gid);
	return 0;
}

static u64 ckpt_timeo_us(long timeo)
{
	return timeo == MAX_SCHEDULE_TIMEOUT ? 0 : (u64)timeo * (USEC_PER_SEC / HZ);
}

/* Options the engine does not carry: refused, not dropped */
static int ckpt_sock_unsupported(struct ckpt_ctx *ctx, struct sock *sk)
{
	static const struct { int flag; const char *opt; } flags[] = {
		{ SOCK_RCVTSTAMP, "SO_TIMESTAMP" },
		{ SOCK_RCVTSTAMPNS, "SO_TIMESTAMPNS" },
		{ SOCK_TIMESTAMPING_RX_SOFTWARE, "SO_TIMESTAMPING" },
		{ SOCK_RXQ_OVFL, "SO_RXQ_OVFL" },
		{ SOCK_RCVMARK, "SO_RCVMARK" },
		{ SOCK_SELECT_ERR_QUEUE, "SO_SELECT_ERR_QUEUE" },
		{ SOCK_FILTER_LOCKED, "SO_LOCK_FILTER" },
	};
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(flags); i++)
		if (sock_flag(sk, flags[i].flag))
			return ckpt_err(ctx, -EOPNOTSUPP, "unix socket option %s: not supported",
					flags[i].opt);
	if (rcu_access_pointer(sk->sk_filter))
		return ckpt_err(ctx, -EOPNOTSUPP,
				"unix socket with a filter (SO_ATTACH_FILTER): not supported");
	return 0;
}

static void checkpoint_sock_opts(struct sock *sk, struct ckpt_hdr_socket *h)
{
	struct user_namespace *ns = current_user_ns();
	struct socket *sock = sk->sk_socket;

	if (sock && test_bit(SOCK_PASSCRED, &sock->flags))
		h->flags |= CKPT_SO_PASSCRED;
	if (sock && test_bit(SOCK_PASSSEC, &sock->flags))
		h->flags |= CKPT_SO_PASSSEC;
	if (sock && test_bit(SOCK_PASSPIDFD, &sock->flags))
		h->flags |= CKPT_SO_PASSPIDFD;
	if (sk->sk_userlocks & SOCK_SNDBUF_LOCK) {
		h->flags |= CKPT_SO_SNDBUF;
		h->sndbuf = READ_ONCE(sk->sk_sndbuf);
	}
	if (sk->sk_userlocks & SOCK_RCVBUF_LOCK) {
		h->flags |= CKPT_SO_RCVBUF;
		h->rcvbuf = READ_ONCE(sk->sk_rcvbuf);
	}
	h->peek_off = READ_ONCE(sk->sk_peek_off);
	h->rcvlowat = READ_ONCE(sk->sk_rcvlowat);
	h->priority = READ_ONCE(sk->sk_priority);
	h->mark = READ_ONCE(sk->sk_mark);
	h->rcvtimeo_us = ckpt_timeo_us(READ_ONCE(sk->sk_rcvtimeo));
	h->sndtimeo_us = ckpt_timeo_us(READ_ONCE(sk->sk_sndtimeo));
	spin_lock(&sk->sk_peer_lock);
	if (sk->sk_peer_cred) {
		h->flags |= CKPT_SO_PEERCRED;
		h->peer_pid = pid_vnr(sk->sk_peer_pid);
		h->peer_uid = from_kuid_munged(ns, sk->sk_peer_cred->euid);
		h->peer_gid = from_kgid_munged(ns, sk->sk_peer_cred->egid);
	}
	spin_unlock(&sk->sk_peer_lock);
	h->err = READ_ONCE(sk->sk_err);
	h->shutdown = READ_ONCE(sk->sk_shutdown);
}

/* References to the skbs queued to @sk, oldest first; the number, or < 0 */
static int ckpt_sock_queue(struct ckpt_ctx *ctx, struct sock *sk, struct sk_buff **skbs)
{
	struct sk_buff *skb;
	int n = 0;

	spin_lock(&sk->sk_receive_queue.lock);
	skb_queue_walk(&sk->sk_receive_queue, skb) {
		if (n == CKPT_SKBS_MAX || UNIXCB(skb).fp) {
			n = n == CKPT_SKBS_MAX ? -E2BIG : -EOPNOTSUPP;
			break;
		}
		skbs[n++] = skb_get(skb);
	}
	spin_unlock(&sk->sk_receive_queue.lock);
	if (n == -EOPNOTSUPP)
		return ckpt_err(ctx, n,
				"unix socket has descriptors in flight (SCM_RIGHTS): not supported");
	if (n < 0)
		return ckpt_err(ctx, n, "unix socket: more than %d messages queued", CKPT_SKBS_MAX);
	return n;
}

/* The SKB objects of what is queued to @sk (an embryo's, for a pending client) */
static int checkpoint_sock_skbs(struct ckpt_ctx *ctx, struct sock *sk, s32 objref,
				struct sk_buff **skbs, int n)
{
	struct user_namespace *ns = current_user_ns();
	char *data;
	int i, ret = 0;

	data = kvmalloc(CKPT_SKB_MAX, GFP_KERNEL);
	if (!data)
		ret = -ENOMEM;
	for (i = 0; i < n; i++) {
		struct sk_buff *skb = skbs[i];
		struct ckpt_hdr_skb s = { .sock = objref };
		u32 off = sk->sk_type == SOCK_STREAM ? UNIXCB(skb).consumed : 0;

		if (ret)
			goto next;
		if (skb->len - off > CKPT_SKB_MAX) {
			ret = ckpt_err(ctx, -E2BIG,
				       "unix socket: a message of %u bytes is too large",
				       skb->len - off);
			goto next;
		}
		s.len = skb->len - off;
		ret = skb_copy_bits(skb, off, data, s.len);
		if (ret)
			goto next;
		if (skb->sk) {
			s.sender = ckpt_obj_lookup(ctx, skb->sk);
			ckpt_sock_addr(skb->sk, &s.from);
		}
		/* (u32)-1: no credentials (stream bytes sent without them) */
		s.pid = pid_vnr(UNIXCB(skb).pid);
		s.uid = from_kuid(ns, UNIXCB(skb).uid);
		s.gid = from_kgid(ns, UNIXCB(skb).gid);
		ret = ckpt_write_obj_buf(ctx, &s, CKPT_HDR_SKB, sizeof(s), data, s.len);
next:
		kfree_skb(skb);
	}
	kvfree(data);
	return ret;
}

/* Write the SOCKET object @h of @sk (@queue_sk's queue as its SKBs) */
static int ckpt_write_sock(struct ckpt_ctx *ctx, struct sock *sk, struct sock *queue_sk,
			   struct ckpt_hdr_socket *h)
{
	struct sk_buff **skbs;
	char *buf, *path;
	int n, ret;

	buf = __getname();
	skbs = kvcalloc(CKPT_SKBS_MAX, sizeof(*skbs), GFP_KERNEL);
	if (!buf || !skbs) {
		ret = -ENOMEM;
		goto out;
	}
	if (unix_sk(sk)->oob_skb || (queue_sk && unix_sk(queue_sk)->oob_skb)) {
		ret = ckpt_err(ctx, -EOPNOTSUPP, "unix socket has out-of-band data: not supported");
		goto out;
	}
	ret = ckpt_sock_unsupported(ctx, sk);
	if (!ret && !(h->flags & CKPT_SO_CLOSED))
		ret = checkpoint_sock_addr(ctx, sk, h, buf, &path);
	if (h->flags & CKPT_SO_CLOSED) {
		path = "";
		ckpt_sock_addr(sk, &h->addr);
	}
	if (ret)
		goto out;
	checkpoint_sock_opts(sk, h);
	n = queue_sk ? ckpt_sock_queue(ctx, queue_sk, skbs) : 0;
	if (n < 0) {
		ret = n;
		goto out;
	}
	h->nr_skbs = n;
	h->path_len = strlen(path) + 1;
	ret = ckpt_write_obj_str(ctx, h, CKPT_HDR_SOCKET, sizeof(*h), path);
	if (!ret)
		ret = checkpoint_sock_skbs(ctx, queue_sk, h->objref, skbs, n);
	else
		while (n--)
			kfree_skb(skbs[n]);
out:
	kvfree(skbs);
	if (buf)
		__putname(buf);
	return ret;
}

static int checkpoint_unix_sock(struct ckpt_ctx *ctx, struct sock *sk, s32 *objref);

/* A listening socket, then each pending connection as its client's SOCKET */
static int checkpoint_listener(struct ckpt_ctx *ctx, struct sock *sk,
			       struct ckpt_hdr_socket *h)
{
	struct sock **embryos;
	struct sk_buff *skb;
	int i, n = 0, ret;

	h->state = CKPT_SOCK_LISTEN;
	h->backlog = READ_ONCE(sk->sk_max_ack_backlog);
	ret = ckpt_write_sock(ctx, sk, NULL, h);
	if (ret)
		return ret;
	embryos = kvcalloc(CKPT_SKBS_MAX, sizeof(*embryos), GFP_KERNEL);
	if (!embryos)
		return -ENOMEM;
	spin_lock(&sk->sk_receive_queue.lock);
	skb_queue_walk(&sk->sk_receive_queue, skb) {
		if (n == CKPT_SKBS_MAX)
			break;
		sock_hold(skb->sk);
		embryos[n++] = skb->sk;
	}
	spin_unlock(&sk->sk_receive_queue.lock);
	for (i = 0; i < n; i++) {
		struct sock *e = embryos[i], *client = ret ? NULL : unix_peer_get(e);
		struct ckpt_hdr_socket *c;

		if (ret || !client)
			goto next;
		if (!ckpt_sock_closed(client) && !ckpt_sock_in_tree(ctx, client)) {
			ret = ckpt_err(ctx, -EOPNOTSUPP,
				       "unix socket: a pending connection from a socket outside the tree: not supported");
			goto next;
		}
		c = kzalloc(sizeof(*c), GFP_KERNEL);
		ret = c ? ckpt_obj_add(ctx, ckpt_sock_closed(client) ? e : client,
				       CKPT_HDR_SOCKET) : -ENOMEM;
		if (ret > 0) {
			c->objref = ret;
			c->type = sk->sk_type;
			c->state = CKPT_SOCK_PENDING;
			c->listener = h->objref;
			if (ckpt_sock_closed(client))
				c->flags |= CKPT_SO_CLOSED;
			ret = ckpt_write_sock(ctx, client, e, c);
		}
		kfree(c);
next:
		if (client)
			sock_put(client);
		sock_put(e);
	}
	kvfree(embryos);
	return ret;
}

/*
 * Save @sk once, as what it is: unconnected, listening, connected (a
 * connected pair back to back), or a client whose connection is pending.
 */
static int checkpoint_unix_sock(struct ckpt_ctx *ctx, struct sock *sk, s32 *objref)
{
	struct ckpt_hdr_socket *h, *ph = NULL;
	struct sock *peer = NULL;
	int ret;

	*objref = ckpt_obj_lookup(ctx, sk);
	if (*objref)
		return 0;
	h = kzalloc(sizeof(*h), GFP_KERNEL);
	if (!h)
		return -ENOMEM;
	h->type = sk->sk_type;
	h->state = CKPT_SOCK_UNCONNECTED;
	if (READ_ONCE(sk->sk_state) != TCP_LISTEN)
		peer = unix_peer_get(sk);
	if (peer && ckpt_sock_embryo(peer)) {
		/* pending: saved with its listener's queue */
		struct sock *listener = unix_sk(peer)->listener;

		ret = listener && ckpt_sock_in_tree(ctx, listener) ?
			checkpoint_unix_sock(ctx, listener, objref) :
			ckpt_err(ctx, -EOPNOTSUPP,
				 "unix socket: connection pending to a socket outside the tree: not supported");
		if (!ret)
			*objref = ckpt_obj_lookup(ctx, sk);
		if (!ret && !*objref)
			ret = ckpt_err(ctx, -EAGAIN, "unix socket changed while it was saved");
		goto out;
	}
	if (peer && !ckpt_sock_closed(peer) && !ckpt_sock_in_tree(ctx, peer)) {
		/* a datagram socket may be connected by name to one outside the tree */
		ckpt_sock_addr(peer, &h->peer_addr);
		if (sk->sk_type != SOCK_DGRAM || !h->peer_addr.len ||
		    (peer->sk_hash <= UNIX_HASH_MOD && hlist_unhashed(&peer->sk_bind_node))) {
			ret = ckpt_err(ctx, -EOPNOTSUPP,
				       "unix socket connected to a socket outside the tree: not supported");
			goto out;
		}
		h->state = CKPT_SOCK_CONNECTED;
		sock_put(peer);
		peer = NULL;
	} else if (peer && ckpt_sock_closed(peer)) {
		if (sk->sk_type == SOCK_DGRAM) {
			ret = ckpt_err(ctx, -EOPNOTSUPP,
				       "datagram socket connected to a closed socket: not supported");
			goto out;
		}
		h->state = CKPT_SOCK_CONNECTED;	/* to a peer that was closed */
		sock_put(peer);
		peer = NULL;
	} else if (peer) {
		h->state = CKPT_SOCK_CONNECTED;
		/* a datagram socket connected to one that is not connected back: that one first */
		if (unix_sk(peer)->peer != sk) {
			ret = checkpoint_unix_sock(ctx, peer, &h->peer);
			if (ret)
				goto out;
			sock_put(peer);
			peer = NULL;
		}
	}
	if (READ_ONCE(sk->sk_state) == TCP_LISTEN) {
		ret = ckpt_obj_add(ctx, sk, CKPT_HDR_SOCKET);
		if (ret < 0)
			goto out;
		h->objref = ret;
		*objref = ret;
		ret = checkpoint_listener(ctx, sk, h);
		goto out;
	}
	ret = ckpt_obj_add(ctx, sk, CKPT_HDR_SOCKET);
	if (ret < 0)
		goto out;
	h->objref = ret;
	*objref = ret;
	if (peer) {
		/* a connected pair: both ends, back to back */
		ph = kzalloc(sizeof(*ph), GFP_KERNEL);
		ret = ph ? ckpt_obj_add(ctx, peer, CKPT_HDR_SOCKET) : -ENOMEM;
		if (ret < 0)
			goto out;
		ph->objref = ret;
		ph->type = peer->sk_type;
		ph->state = CKPT_SOCK_CONNECTED;
		ph->peer = h->objref;
		h->peer = ph->objref;
	}
	ret = ckpt_write_sock(ctx, sk, sk, h);
	if (!ret && ph)
		ret = ckpt_write_sock(ctx, peer, peer, ph);
out:
	if (peer)
		sock_put(peer);
	kfree(ph);
	kfree(h);
	return ret;
}

static int checkpoint_unix_file(struct ckpt_ctx *ctx, struct file *file,
				struct ckpt_hdr_file *h)
{
	h->pos = 0;
	return checkpoint_unix_sock(ctx, ckpt_sock_of(file)->sk, &h->obj);
}

static int ckpt_setsockopt(struct ckpt_ctx *ctx, struct socket *sock, s32 objref, int opt,
			   const void *val, unsigned int len)
{
	int ret = sock_setsockopt(sock, SOL_SOCKET, opt, KERNEL_SOCKPTR((void *)val), len);

	if (ret)
		ckpt_err(ctx, ret, "SOCKET %d: cannot set option %d again", objref, opt);
	return ret;
}

/* Options, with the checks setsockopt(2) makes for the caller */
static int restore_sock_opts(struct ckpt_ctx *ctx, struct socket *sock,
			     struct ckpt_hdr_socket *h)
{
	static const struct { u32 flag; int opt; } flags[] = {
		{ CKPT_SO_PASSCRED, SO_PASSCRED },
		{ CKPT_SO_PASSSEC, SO_PASSSEC },
		{ CKPT_SO_PASSPIDFD, SO_PASSPIDFD },
	};
	struct sock *sk = sock->sk;
	int one = 1, v, ret = 0;
	unsigned int i;

	for (i = 0; !ret && i < ARRAY_SIZE(flags); i++)
		if (h->flags & flags[i].flag)
			ret = ckpt_setsockopt(ctx, sock, h->objref, flags[i].opt, &one,
					      sizeof(one));
	if (!ret && (h->flags & CKPT_SO_SNDBUF)) {
		v = h->sndbuf / 2;
		ret = ckpt_setsockopt(ctx, sock, h->objref, v > READ_ONCE(sysctl_wmem_max) ?
				      SO_SNDBUFFORCE : SO_SNDBUF, &v, sizeof(v));
	}
	if (!ret && (h->flags & CKPT_SO_RCVBUF)) {
		v = h->rcvbuf / 2;
		ret = ckpt_setsockopt(ctx, sock, h->objref, v > READ_ONCE(sysctl_rmem_max) ?
				      SO_RCVBUFFORCE : SO_RCVBUF, &v, sizeof(v));
	}
	if (!ret && h->peek_off != READ_ONCE(sk->sk_peek_off))
		ret = ckpt_setsockopt(ctx, sock, h->objref, SO_PEEK_OFF, &h->peek_off, sizeof(int));
	if (!ret && h->rcvlowat != READ_ONCE(sk->sk_rcvlowat))
		ret = ckpt_setsockopt(ctx, sock, h->objref, SO_RCVLOWAT, &h->rcvlowat, sizeof(int));
	if (!ret && h->priority != READ_ONCE(sk->sk_priority))
		ret = ckpt_setsockopt(ctx, sock, h->objref, SO_PRIORITY, &h->priority, sizeof(int));
	if (!ret && h->mark != READ_ONCE(sk->sk_mark))
		ret = ckpt_setsockopt(ctx, sock, h->objref, SO_MARK, &h->mark, sizeof(u32));
	if (!ret && h->rcvtimeo_us) {
		struct __kernel_sock_timeval tv = {
			.tv_sec = h->rcvtimeo_us / USEC_PER_SEC,
			.tv_usec = h->rcvtimeo_us % USEC_PER_SEC,
		};

		ret = ckpt_setsockopt(ctx, sock, h->objref, SO_RCVTIMEO_NEW, &tv, sizeof(tv));
	}
	if (!ret && h->sndtimeo_us) {
		struct __kernel_sock_timeval tv = {
			.tv_sec = h->sndtimeo_us / USEC_PER_SEC,
			.tv_usec = h->sndtimeo_us % USEC_PER_SEC,
		};

		ret = ckpt_setsockopt(ctx, sock, h->objref, SO_SNDTIMEO_NEW, &tv, sizeof(tv));
	}
	return ret;
}

/* The name @a, given to @sock without binding it (accept(2) names a socket so) */
static int ckpt_sock_name(struct socket *sock, const struct ckpt_sockaddr *a)
{
	struct unix_sock *u = unix_sk(sock->sk);
	struct unix_address *addr, *old;

	addr = kmalloc(sizeof(*addr) + a->len, GFP_KERNEL);
	if (!addr)
		return -ENOMEM;
	refcount_set(&addr->refcnt, 1);
	addr->len = a->len;
	memcpy(addr->name, a->name, a->len);
	unix_state_lock(sock->sk);
	old = u->addr;
	/* readers (getsockname(2), the sender's name on datagrams) load it with acquire */
	smp_store_release(&u->addr, addr);
	unix_state_unlock(sock->sk);
	if (old && refcount_dec_and_test(&old->refcnt))
		kfree(old);
	return 0;
}

/* Bind to the socket file's path again, with its mode and owner, and its own name */
static int restore_sock_bind(struct ckpt_ctx *ctx, struct socket *sock,
			     struct ckpt_hdr_socket *h, const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct path old;
	int ret, umask;

	if (h->addr.name[2] == 0)	/* abstract */
		return kernel_bind(sock, (struct sockaddr *)h->addr.name, h->addr.len);
	if (path[0] != '/' || strlen(path) >= sizeof(sun.sun_path))
		return ckpt_err(ctx, -EINVAL, "SOCKET %d: bad path", h->objref);
	/* the socket file the checkpointed task left behind is in the way */
	if (!kern_path(path, 0, &old)) {
		ret = S_ISSOCK(d_inode(old.dentry)->i_mode) ? ckpt_unlink(ctx, &old) :
			ckpt_err(ctx, -EEXIST, "unix socket %s: something else is there now",
				 path);
		path_put(&old);
		if (ret)
			return ret;
	}
	strscpy(sun.sun_path, path, sizeof(sun.sun_path));
	umask = xchg(&current->fs->umask, ~h->bound_mode & 0777);
	ret = kernel_bind(sock, (struct sockaddr *)&sun, sizeof(sun));
	xchg(&current->fs->umask, umask);
	if (ret)
		return ckpt_err(ctx, ret, "cannot bind a unix socket to %s again", path);
	ret = ckpt_chown(ctx, &unix_sk(sock->sk)->path, h->bound_uid, h->bound_gid);
	/* bound by a relative name: getsockname(2) gives that one */
	if (!ret && (h->addr.len != offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1 ||
		     strcmp(((struct sockaddr_un *)h->addr.name)->sun_path, path)))
		ret = ckpt_sock_name(sock, &h->addr);
	return ret;
}

static int ckpt_new_sock(struct ckpt_ctx *ctx, u32 type, struct socket **sock)
{
	int ret = sock_create(AF_UNIX, type, 0, sock);

	if (ret)
		ckpt_err(ctx, ret, "cannot create a unix socket");
	return ret;
}

/* A socket and its file, in the objhash as @objref with its bookkeeping */
static struct ckpt_rsock *ckpt_new_rsock(struct ckpt_ctx *ctx, s32 objref, u32 type)
{
	struct ckpt_rsock *rs;
	struct socket *sock;
	struct file *file;
	int ret;

	rs = kzalloc(sizeof(*rs), GFP_KERNEL);
	if (!rs)
		return ERR_PTR(-ENOMEM);
	ret = ckpt_new_sock(ctx, type, &sock);
	if (ret)
		goto err;
	file = sock_alloc_file(sock, O_RDWR, NULL);
	if (IS_ERR(file)) {
		ret = PTR_ERR(file);
		goto err;
	}
	rs->sock = sock;
	ret = ckpt_obj_add_file(ctx, objref, file);
	if (ret) {
		fput(file);
		goto err;
	}
	ckpt_obj_find(ctx, objref)->priv = rs;
	return rs;
err:
	kfree(rs);
	return ERR_PTR(ret);
}

static struct ckpt_rsock *ckpt_rsock(struct ckpt_ctx *ctx, s32 objref)
{
	struct ckpt_objref *o = objref > 0 ? ckpt_obj_find(ctx, objref) : NULL;

	return o && o->type == CKPT_HDR_FILE && o->priv && ckpt_unix_match(o->file) ?
		o->priv : NULL;
}

/* The skbs queued to @rcv from the one after @tail on carry the saved sender's credentials */
static int ckpt_skbs_set_creds(struct ckpt_ctx *ctx, struct sock *rcv, struct sk_buff *tail,
			       struct ckpt_hdr_skb *s)
{
	kuid_t uid = s->uid == (u32)-1 ? INVALID_UID : make_kuid(current_user_ns(), s->uid);
	kgid_t gid = s->gid == (u32)-1 ? INVALID_GID : make_kgid(current_user_ns(), s->gid);
	struct pid *pid = s->pid > 0 ? find_get_pid(s->pid) : NULL;
	struct sk_buff *skb;

	if ((s->uid != (u32)-1 && (!uid_valid(uid) || !ckpt_uid_ok(current_cred(), uid))) ||
	    (s->gid != (u32)-1 && (!gid_valid(gid) || !ckpt_gid_ok(current_cred(), gid)))) {
		put_pid(pid);
		return ckpt_err(ctx, -EPERM, "SKB from uid %u gid %u: not ours to give",
				s->uid, s->gid);
	}
	spin_lock(&rcv->sk_receive_queue.lock);
	skb = tail ? tail->next : rcv->sk_receive_queue.next;
	for (; skb != (struct sk_buff *)&rcv->sk_receive_queue; skb = skb->next) {
		put_pid(UNIXCB(skb).pid);
		UNIXCB(skb).pid = get_pid(pid);
		UNIXCB(skb).uid = uid;
		UNIXCB(skb).gid = gid;
	}
	spin_unlock(&rcv->sk_receive_queue.lock);
	put_pid(pid);
	return 0;
}

/* Send @s's bytes from @from (to @rcv, named @to if not connected to it) */
static int ckpt_sock_send(struct ckpt_ctx *ctx, struct socket *from, struct sock *rcv,
			  struct ckpt_sockaddr *to, struct ckpt_hdr_skb *s)
{
	struct kvec vec = { .iov_base = s + 1, .iov_len = s->len };
	struct msghdr msg = { .msg_flags = MSG_DONTWAIT };
	struct sock *sk = from->sk;
	struct sk_buff *tail;
	int sndbuf, ret;

	if (to) {
		msg.msg_name = to->name;
		msg.msg_namelen = to->len;
	}
	spin_lock(&rcv->sk_receive_queue.lock);
	tail = skb_peek_tail(&rcv->sk_receive_queue);
	spin_unlock(&rcv->sk_receive_queue.lock);
	/* it all fit once: let the sender's buffer not be what stops it now */
	sndbuf = READ_ONCE(sk->sk_sndbuf);
	WRITE_ONCE(sk->sk_sndbuf, INT_MAX / 2);
	ret = kernel_sendmsg(from, &msg, &vec, 1, s->len);
	WRITE_ONCE(sk->sk_sndbuf, sndbuf);
	if (ret != s->len)
		return ckpt_err(ctx, ret < 0 ? ret : -EIO, "SOCKET %d: cannot queue %u bytes again",
				s->sock, s->len);
	return ckpt_skbs_set_creds(ctx, rcv, tail, s);
}

/* The socket @from's messages to @rs come from, or a stand-in named like the sender */
static int restore_sock_skb(struct ckpt_ctx *ctx, struct ckpt_rsock *rs, struct socket *from)
{
	struct ckpt_hdr_socket *h = rs->h;
	struct socket *tmp = NULL;
	struct ckpt_hdr_skb *s;
	struct sock *rcv;
	int ret;

	s = ckpt_next(ctx, CKPT_HDR_SKB, sizeof(*s));
	if (IS_ERR(s))
		return PTR_ERR(s);
	if (s->sock != h->objref || !s->len || s->len > CKPT_SKB_MAX ||
	    s->h.len != sizeof(*s) + ALIGN(s->len, 8) ||
	    s->from.len > sizeof(struct sockaddr_un))
		return ckpt_err(ctx, -EINVAL, "bad SKB object");
	if (h->state == CKPT_SOCK_PENDING) {
		/* a pending connection's bytes went from its client to the embryo */
		struct sock *e = unix_peer_get(rs->sock->sk);

		if (!e)
			return ckpt_err(ctx, -ENOTCONN, "SOCKET %d: not connected", h->objref);
		ret = ckpt_sock_send(ctx, rs->sock, e, NULL, s);
		sock_put(e);
		return ret;
	}
	rcv = rs->sock->sk;
	if (from)
		return ckpt_sock_send(ctx, from, rcv, NULL, s);
	/* a datagram from another socket: a stand-in with its name sends it */
	if (h->type != SOCK_DGRAM || h->addr.bound != 1)
		return ckpt_err(ctx, -EINVAL, "SOCKET %d: a message from nowhere", h->objref);
	ret = ckpt_new_sock(ctx, SOCK_DGRAM, &tmp);
	if (!ret && s->from.len)
		ret = ckpt_sock_name(tmp, &s->from);
	if (!ret)
		ret = ckpt_sock_send(ctx, tmp, rcv, &h->addr, s);
	if (tmp)
		sock_release(tmp);
	return ret;
}

/* Shutdown state, pending error and SO_PEERCRED, once the bytes are in */
static int restore_sock_last(struct ckpt_ctx *ctx, struct socket *sock,
			     struct ckpt_hdr_socket *h)
{
	struct sock *sk = sock->sk;
	const struct cred *old;
	struct pid *pid = NULL;
	struct cred *cred;

	unix_state_lock(sk);
	WRITE_ONCE(sk->sk_shutdown, h->shutdown);
	unix_state_unlock(sk);
	WRITE_ONCE(sk->sk_err, h->err);
	if (!(h->flags & CKPT_SO_PEERCRED))
		return 0;
	cred = prepare_creds();
	if (!cred)
		return -ENOMEM;
	cred->euid = make_kuid(current_user_ns(), h->peer_uid);
	cred->egid = make_kgid(current_user_ns(), h->peer_gid);
	cred->uid = cred->euid;
	cred->suid = cred->euid;
	cred->fsuid = cred->euid;
	cred->gid = cred->egid;
	cred->sgid = cred->egid;
	cred->fsgid = cred->egid;
	if (!uid_valid(cred->euid) || !gid_valid(cred->egid) ||
	    !ckpt_uid_ok(current_cred(), cred->euid) || !ckpt_gid_ok(current_cred(), cred->egid)) {
		abort_creds(cred);
		return ckpt_err(ctx, -EPERM, "SO_PEERCRED %u:%u is not ours to give",
				h->peer_uid, h->peer_gid);
	}
	if (h->peer_pid > 0)
		pid = find_get_pid(h->peer_pid);
	spin_lock(&sk->sk_peer_lock);
	swap(sk->sk_peer_pid, pid);
	old = sk->sk_peer_cred;
	sk->sk_peer_cred = cred;
	spin_unlock(&sk->sk_peer_lock);
	put_pid(pid);
	put_cred(old);
	return 0;
}

/* This socket's bytes are in: when its peer's are too, set the state of both */
static int restore_sock_done(struct ckpt_ctx *ctx, struct ckpt_rsock *rs)
{
	struct ckpt_rsock *peer = rs->h->peer ? ckpt_rsock(ctx, rs->h->peer) : NULL;
	struct ckpt_hdr_socket *h = rs->h;
	bool pair = peer && (!peer->h || peer->h->peer == h->objref);
	int ret = 0;

	rs->done = true;
	if (h->type == SOCK_DGRAM && h->state == CKPT_SOCK_CONNECTED && !pair) {
		/* connected to one that is not connected back: by its name */
		struct ckpt_sockaddr *to = peer ? &peer->h->addr : &h->peer_addr;

		if (peer && peer->h->addr.bound != 1)
			return ckpt_err(ctx, -EINVAL, "SOCKET %d: its peer has no name", h->objref);
		ret = kernel_connect(rs->sock, (struct sockaddr *)to->name, to->len, O_NONBLOCK);
		if (ret)
			return ckpt_err(ctx, ret, "SOCKET %d: cannot connect again", h->objref);
		return restore_sock_last(ctx, rs->sock, h);
	}
	if (h->state == CKPT_SOCK_PENDING && (h->shutdown & SHUTDOWN_MASK)) {
		/* the embryo sees its client's shutdown from the other side */
		struct sock *e = unix_peer_get(rs->sock->sk);

		if (e) {
			unix_state_lock(e);
			WRITE_ONCE(e->sk_shutdown,
				   (h->shutdown & SEND_SHUTDOWN ? RCV_SHUTDOWN : 0) |
				   (h->shutdown & RCV_SHUTDOWN ? SEND_SHUTDOWN : 0));
			unix_state_unlock(e);
			sock_put(e);
		}
	}
	/* a pair: the state of both once both have their bytes (the second's from the first) */
	if (pair) {
		if (!peer->done)
			return 0;
		ret = restore_sock_last(ctx, peer->sock, peer->h);
	}
	if (!ret)
		ret = restore_sock_last(ctx, rs->sock, h);
	return ret;
}

static int restore_sock_check(struct ckpt_ctx *ctx, struct ckpt_hdr_socket *h,
			      const char *path)
{
	struct ckpt_rsock *l;

	if (h->objref <= 0 ||
	    (h->type != SOCK_STREAM && h->type != SOCK_DGRAM && h->type != SOCK_SEQPACKET) ||
	    h->state < CKPT_SOCK_UNCONNECTED || h->state > CKPT_SOCK_PENDING ||
	    (h->shutdown & ~SHUTDOWN_MASK) || h->err < 0 || h->err > MAX_ERRNO ||
	    h->addr.len > sizeof(struct sockaddr_un) || h->addr.bound > 2 ||
	    h->peer_addr.len > sizeof(struct sockaddr_un) || h->nr_skbs > CKPT_SKBS_MAX ||
	    (h->addr.len && h->addr.len < offsetof(struct sockaddr_un, sun_path) + 1) ||
	    (h->addr.len && ((struct sockaddr_un *)h->addr.name)->sun_family != AF_UNIX) ||
	    (h->addr.bound == 1 && h->addr.name[2] && !path[0]) || h->peer < 0 ||
	    (h->peer && h->state != CKPT_SOCK_CONNECTED) || h->peer == h->objref ||
	    (h->state == CKPT_SOCK_LISTEN && (h->type == SOCK_DGRAM || h->nr_skbs)) ||
	    ((h->flags & CKPT_SO_CLOSED) && h->state != CKPT_SOCK_PENDING))
		return ckpt_err(ctx, -EINVAL, "bad SOCKET object");
	if (h->state != CKPT_SOCK_PENDING)
		return h->listener ? ckpt_err(ctx, -EINVAL, "bad SOCKET object") : 0;
	l = ckpt_rsock(ctx, h->listener);
	if (!l || !l->h || l->h->state != CKPT_SOCK_LISTEN || l->h->type != h->type ||
	    l->h->addr.bound != 1)
		return ckpt_err(ctx, -EINVAL, "SOCKET %d: bad listener %d", h->objref,
				h->listener);
	return 0;
}

int restore_socket_obj(struct ckpt_ctx *ctx)
{
	struct socket *from = NULL, *tmp = NULL;
	struct ckpt_hdr_socket *h;
	struct ckpt_rsock *rs, *peer = NULL;
	const char *path;
	u32 i;
	int ret;

	h = ckpt_next(ctx, CKPT_HDR_SOCKET, sizeof(*h));
	if (IS_ERR(h))
		return PTR_ERR(h);
	path = ckpt_str(ctx, h, sizeof(*h), h->path_len);
	if (!path)
		return -EINVAL;
	ret = restore_sock_check(ctx, h, path);
	if (ret)
		return ret;
	/* the second of a pair was made with the first */
	rs = ckpt_rsock(ctx, h->objref);
	if (rs && (rs->h || rs->sock->type != h->type))
		return ckpt_err(ctx, -EINVAL, "socket %d defined twice", h->objref);
	if (!rs && ckpt_obj_find_any(ctx, h->objref))
		return ckpt_err(ctx, -EINVAL, "socket %d defined twice", h->objref);
	if (!rs) {
		rs = ckpt_new_rsock(ctx, h->objref, h->type);
		if (IS_ERR(rs))
			return PTR_ERR(rs);
	}
	rs->h = h;
	if (h->addr.bound == 1)
		ret = restore_sock_bind(ctx, rs->sock, h, path);
	else if (h->addr.len)
		ret = ckpt_sock_name(rs->sock, &h->addr);
	if (!ret)
		ret = restore_sock_opts(ctx, rs->sock, h);
	if (ret)
		return ret;

	if (h->state == CKPT_SOCK_LISTEN) {
		ret = kernel_listen(rs->sock, h->backlog);
		if (ret)
			return ckpt_err(ctx, ret, "SOCKET %d: cannot listen again", h->objref);
	} else if (h->state == CKPT_SOCK_PENDING) {
		struct ckpt_sockaddr *to = &ckpt_rsock(ctx, h->listener)->h->addr;

		ret = kernel_connect(rs->sock, (struct sockaddr *)to->name, to->len, O_NONBLOCK);
		if (ret)
			return ckpt_err(ctx, ret, "SOCKET %d: cannot connect to its listener again",
					h->objref);
	} else if (h->state == CKPT_SOCK_CONNECTED && h->peer) {
		peer = ckpt_rsock(ctx, h->peer);
		if (!peer && ckpt_obj_find_any(ctx, h->peer))
			return ckpt_err(ctx, -EINVAL, "SOCKET %d: bad peer %d", h->objref, h->peer);
		if (!peer) {
			/* the first of a pair: make its peer and pair them */
			peer = ckpt_new_rsock(ctx, h->peer, h->type);
			if (IS_ERR(peer))
				return PTR_ERR(peer);
			ret = rs->sock->ops->socketpair(rs->sock, peer->sock);
			if (ret)
				return ckpt_err(ctx, ret, "SOCKET %d: cannot pair it again",
						h->objref);
		}
		if (!peer->h || peer->h->peer == h->objref)
			from = peer->sock;
	} else if (h->state == CKPT_SOCK_CONNECTED && h->type != SOCK_DGRAM) {
		/* its peer was closed: a stand-in sends what it had sent, then goes */
		ret = ckpt_new_sock(ctx, h->type, &tmp);
		if (!ret)
			ret = rs->sock->ops->socketpair(rs->sock, tmp);
		if (ret) {
			if (tmp)
				sock_release(tmp);
			return ckpt_err(ctx, ret, "SOCKET %d: cannot make its peer", h->objref);
		}
		from = tmp;
	}
	for (i = 0; !ret && i < h->nr_skbs; i++)
		ret = restore_sock_skb(ctx, rs, from);
	if (tmp)
		sock_release(tmp);
	if (!ret && (h->flags & CKPT_SO_CLOSED)) {
		/* the client of this pending connection had closed it */
		struct ckpt_objref *o = ckpt_obj_find(ctx, h->objref);

		fput(o->file);
		o->file = NULL;
		kfree(o->priv);
		o->priv = NULL;
		return 0;
	}
	return ret ? ret : restore_sock_done(ctx, rs);
}

const struct ckpt_file_ops ckpt_unix_ops = {
	.kind = CKPT_FILE_SOCKET,
	.name = "unix socket",
	.match = ckpt_unix_match,
	.checkpoint = checkpoint_unix_file,
	.restore = restore_state_file,
};
