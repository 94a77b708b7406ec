// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: inet sockets, TCP and UDP over IPv4 and IPv6.
 *
 * A socket is an INET object, defined once (keyed by its sock) and named
 * by the FILE of its socket file: family, protocol, state, addresses,
 * shutdown state, pending error, buffer sizes, and its options as
 * getsockopt(2) gives them, set again at restart with setsockopt(2) where
 * the new socket differs (so that restart needs no more rights than the
 * program needed to set them).
 *
 * TCP.  An unconnected socket is bound again and a listening one listens
 * again; a connection not accepted yet is refused, as its client could not
 * follow it.  An established connection is saved as TCP repair mode reads
 * it (CRIU's soccr does the same from userspace): sequence numbers, the
 * options the handshake agreed on (MSS, window scale, SACK, timestamps)
 * with the timestamp clock, the windows, and both queues as DATA objects,
 * the send queue from its first byte not acknowledged.  The two ends of a
 * connection inside the tree are read together with both sockets locked,
 * so that no segment between them is counted by one end and not by the
 * other, and written back to back.  A connection to a peer outside the
 * tree is saved only with CHECKPOINT_TCP_ESTABLISHED, which says that
 * userspace holds its packets back (the network lock); otherwise it is
 * refused.  Before the tasks are killed every connection goes into repair
 * mode, so that closing it sends neither FIN nor RST; a checkpoint that
 * leaves the tasks running, or fails, takes them out of it again.
 *
 * Restart rebuilds a connection in repair mode, which needs CAP_NET_ADMIN
 * as TCP_REPAIR does: bind, the sequence numbers, connect (which in repair
 * mode only sets the peer), the agreed options and the timestamp clock,
 * the receive queue, the windows.  Once every task of the tree is rebuilt
 * restore_inet_live() takes the connections out of repair mode (the kernel
 * sends a window probe, which the peer answers with where it is) and sends
 * their send queue again: the peer drops what it already had.
 *
 * UDP.  Bound or connected, with the datagrams queued to it, each with its
 * sender, destination and interface (IP_PKTINFO), TOS and TTL, arrival
 * time, mark and drop count; restart queues them again, oldest first, as
 * the stack would have queued them.
 *
 * Refused by name: other protocols (raw, ping, SCTP, MPTCP, UDP-Lite),
 * TCP in other states, urgent data not read yet, a listener with
 * connections not accepted yet, upper layer protocols (TLS), MD5 and AO
 * signatures, socket filters, multicast memberships, IP options, queued
 * errors, UDP data being corked, datagrams with IP options or IPv6
 * extension headers, and GRO-merged datagrams.
 */

#include <linux/cred.h>
#include <linux/file.h>
#include <linux/filter.h>
#include <linux/igmp.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/net.h>
#include <linux/skbuff.h>
#include <linux/slab.h>
#include <linux/socket.h>
#include <linux/sockptr.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <net/inet6_hashtables.h>
#include <net/inet_connection_sock.h>
#include <net/inet_hashtables.h>
#include <net/ip.h>
#include <net/ipv6.h>
#include <net/sock.h>
#include <net/sock_reuseport.h>
#include <net/tcp.h>
#include <net/udp.h>

#include "ckpt.h"

#define CKPT_DGRAMS_MAX		4096
#define CKPT_TCP_QUEUE_MAX	(64 << 20)

/* Where an option applies, and when restart sets it */
#define CKPT_OPT_TCP		BIT(0)
#define CKPT_OPT_UDP		BIT(1)
#define CKPT_OPT_INET6		BIT(2)	/* IPv6 sockets only */
#define CKPT_OPT_UNCONNECTED	BIT(3)	/* TCP: only before a connection exists */
#define CKPT_OPT_LIVE		BIT(4)	/* TCP: once the connection is live again */
#define CKPT_OPT_BOTH		(CKPT_OPT_TCP | CKPT_OPT_UDP)

struct ckpt_inet_opt {
	u16 level;
	u16 name;
	u8 len;			/* of its value: 4 for an int */
	u8 flags;		/* CKPT_OPT_* */
	const char *what;
};

#define CKPT_OPT(level, name, len, flags) { level, name, len, flags, #name }

/*
 * The options saved, in the order restart sets them: IP_TOS sets
 * SO_PRIORITY too, so the IP levels go first; SO_REUSEADDR and the buffer
 * sizes have their own flags.
 */
static const struct ckpt_inet_opt ckpt_inet_opts[] = {
	CKPT_OPT(SOL_IP, IP_TOS, 4, CKPT_OPT_BOTH),
	CKPT_OPT(SOL_IP, IP_TTL, 4, CKPT_OPT_BOTH),
	CKPT_OPT(SOL_IP, IP_PKTINFO, 4, CKPT_OPT_BOTH),
	CKPT_OPT(SOL_IP, IP_MTU_DISCOVER, 4, CKPT_OPT_BOTH),
	CKPT_OPT(SOL_IP, IP_RECVERR, 4, CKPT_OPT_BOTH),
	CKPT_OPT(SOL_IP, IP_RECVTTL, 4, CKPT_OPT_BOTH),
	CKPT_OPT(SOL_IP, IP_RECVTOS, 4, CKPT_OPT_BOTH),
	CKPT_OPT(SOL_IP, IP_FREEBIND, 4, CKPT_OPT_BOTH),
	CKPT_OPT(SOL_IP, IP_TRANSPARENT, 4, CKPT_OPT_BOTH),
	CKPT_OPT(SOL_IP, IP_BIND_ADDRESS_NO_PORT, 4, CKPT_OPT_BOTH),
	CKPT_OPT(SOL_IP, IP_RECVORIGDSTADDR, 4, CKPT_OPT_UDP),
	CKPT_OPT(SOL_IP, IP_MULTICAST_TTL, 4, CKPT_OPT_UDP),
	CKPT_OPT(SOL_IP, IP_MULTICAST_LOOP, 4, CKPT_OPT_UDP),
	CKPT_OPT(SOL_IPV6, IPV6_V6ONLY, 4, CKPT_OPT_BOTH | CKPT_OPT_INET6),
	CKPT_OPT(SOL_IPV6, IPV6_UNICAST_HOPS, 4, CKPT_OPT_BOTH | CKPT_OPT_INET6),
	CKPT_OPT(SOL_IPV6, IPV6_MTU_DISCOVER, 4, CKPT_OPT_BOTH | CKPT_OPT_INET6),
	CKPT_OPT(SOL_IPV6, IPV6_RECVERR, 4, CKPT_OPT_BOTH | CKPT_OPT_INET6),
	CKPT_OPT(SOL_IPV6, IPV6_RECVPKTINFO, 4, CKPT_OPT_BOTH | CKPT_OPT_INET6),
	CKPT_OPT(SOL_IPV6, IPV6_RECVHOPLIMIT, 4, CKPT_OPT_BOTH | CKPT_OPT_INET6),
	CKPT_OPT(SOL_IPV6, IPV6_RECVTCLASS, 4, CKPT_OPT_BOTH | CKPT_OPT_INET6),
	CKPT_OPT(SOL_IPV6, IPV6_TCLASS, 4, CKPT_OPT_BOTH | CKPT_OPT_INET6),
	CKPT_OPT(SOL_IPV6, IPV6_TRANSPARENT, 4, CKPT_OPT_BOTH | CKPT_OPT_INET6),
	CKPT_OPT(SOL_IPV6, IPV6_FREEBIND, 4, CKPT_OPT_BOTH | CKPT_OPT_INET6),
	CKPT_OPT(SOL_IPV6, IPV6_RECVORIGDSTADDR, 4, CKPT_OPT_UDP | CKPT_OPT_INET6),
	CKPT_OPT(SOL_IPV6, IPV6_MULTICAST_HOPS, 4, CKPT_OPT_UDP | CKPT_OPT_INET6),
	CKPT_OPT(SOL_IPV6, IPV6_MULTICAST_LOOP, 4, CKPT_OPT_UDP | CKPT_OPT_INET6),
	CKPT_OPT(SOL_TCP, TCP_NODELAY, 4, CKPT_OPT_TCP),
	CKPT_OPT(SOL_TCP, TCP_MAXSEG, 4, CKPT_OPT_TCP | CKPT_OPT_UNCONNECTED),
	CKPT_OPT(SOL_TCP, TCP_CORK, 4, CKPT_OPT_TCP | CKPT_OPT_LIVE),
	CKPT_OPT(SOL_TCP, TCP_KEEPIDLE, 4, CKPT_OPT_TCP),
	CKPT_OPT(SOL_TCP, TCP_KEEPINTVL, 4, CKPT_OPT_TCP),
	CKPT_OPT(SOL_TCP, TCP_KEEPCNT, 4, CKPT_OPT_TCP),
	CKPT_OPT(SOL_TCP, TCP_SYNCNT, 4, CKPT_OPT_TCP),
	CKPT_OPT(SOL_TCP, TCP_LINGER2, 4, CKPT_OPT_TCP),
	CKPT_OPT(SOL_TCP, TCP_DEFER_ACCEPT, 4, CKPT_OPT_TCP | CKPT_OPT_UNCONNECTED),
	CKPT_OPT(SOL_TCP, TCP_WINDOW_CLAMP, 4, CKPT_OPT_TCP | CKPT_OPT_UNCONNECTED),
	CKPT_OPT(SOL_TCP, TCP_CONGESTION, TCP_CA_NAME_MAX, CKPT_OPT_TCP),
	CKPT_OPT(SOL_TCP, TCP_THIN_LINEAR_TIMEOUTS, 4, CKPT_OPT_TCP),
	CKPT_OPT(SOL_TCP, TCP_USER_TIMEOUT, 4, CKPT_OPT_TCP),
	CKPT_OPT(SOL_TCP, TCP_FASTOPEN, 4, CKPT_OPT_TCP | CKPT_OPT_UNCONNECTED),
	CKPT_OPT(SOL_TCP, TCP_NOTSENT_LOWAT, 4, CKPT_OPT_TCP | CKPT_OPT_LIVE),
	CKPT_OPT(SOL_TCP, TCP_INQ, 4, CKPT_OPT_TCP),
	CKPT_OPT(SOL_UDP, UDP_CORK, 4, CKPT_OPT_UDP),
	CKPT_OPT(SOL_UDP, UDP_NO_CHECK6_TX, 4, CKPT_OPT_UDP | CKPT_OPT_INET6),
	CKPT_OPT(SOL_UDP, UDP_NO_CHECK6_RX, 4, CKPT_OPT_UDP | CKPT_OPT_INET6),
	CKPT_OPT(SOL_UDP, UDP_SEGMENT, 4, CKPT_OPT_UDP),
	CKPT_OPT(SOL_UDP, UDP_GRO, 4, CKPT_OPT_UDP),
	CKPT_OPT(SOL_SOCKET, SO_REUSEPORT, 4, CKPT_OPT_BOTH),
	CKPT_OPT(SOL_SOCKET, SO_KEEPALIVE, 4, CKPT_OPT_BOTH),
	CKPT_OPT(SOL_SOCKET, SO_BROADCAST, 4, CKPT_OPT_BOTH),
	CKPT_OPT(SOL_SOCKET, SO_DONTROUTE, 4, CKPT_OPT_BOTH),
	CKPT_OPT(SOL_SOCKET, SO_OOBINLINE, 4, CKPT_OPT_BOTH),
	CKPT_OPT(SOL_SOCKET, SO_PRIORITY, 4, CKPT_OPT_BOTH),
	CKPT_OPT(SOL_SOCKET, SO_LINGER, sizeof(struct linger), CKPT_OPT_BOTH),
	CKPT_OPT(SOL_SOCKET, SO_RCVLOWAT, 4, CKPT_OPT_BOTH),
	CKPT_OPT(SOL_SOCKET, SO_RCVTIMEO_NEW, sizeof(struct __kernel_sock_timeval),
		 CKPT_OPT_BOTH),
	CKPT_OPT(SOL_SOCKET, SO_SNDTIMEO_NEW, sizeof(struct __kernel_sock_timeval),
		 CKPT_OPT_BOTH),
	CKPT_OPT(SOL_SOCKET, SO_BINDTODEVICE, IFNAMSIZ, CKPT_OPT_BOTH),
	CKPT_OPT(SOL_SOCKET, SO_TIMESTAMP_OLD, 4, CKPT_OPT_BOTH),
	CKPT_OPT(SOL_SOCKET, SO_TIMESTAMP_NEW, 4, CKPT_OPT_BOTH),
	CKPT_OPT(SOL_SOCKET, SO_TIMESTAMPNS_OLD, 4, CKPT_OPT_BOTH),
	CKPT_OPT(SOL_SOCKET, SO_TIMESTAMPNS_NEW, 4, CKPT_OPT_BOTH),
	CKPT_OPT(SOL_SOCKET, SO_TIMESTAMPING_OLD, 4, CKPT_OPT_BOTH),
	CKPT_OPT(SOL_SOCKET, SO_MARK, 4, CKPT_OPT_BOTH),
	CKPT_OPT(SOL_SOCKET, SO_RCVMARK, 4, CKPT_OPT_BOTH),
	CKPT_OPT(SOL_SOCKET, SO_RXQ_OVFL, 4, CKPT_OPT_BOTH),
	CKPT_OPT(SOL_SOCKET, SO_PEEK_OFF, 4, CKPT_OPT_BOTH),
	CKPT_OPT(SOL_SOCKET, SO_BUSY_POLL, 4, CKPT_OPT_BOTH),
	CKPT_OPT(SOL_SOCKET, SO_ZEROCOPY, 4, CKPT_OPT_BOTH),
	CKPT_OPT(SOL_SOCKET, SO_TXTIME, sizeof(struct sock_txtime), CKPT_OPT_BOTH),
	CKPT_OPT(SOL_SOCKET, SO_MAX_PACING_RATE, sizeof(u64), CKPT_OPT_BOTH),
};

#define CKPT_NR_OPTS ARRAY_SIZE(ckpt_inet_opts)
#define CKPT_TCPOPT_ALL (CKPT_TCPOPT_SACK | CKPT_TCPOPT_WSCALE | CKPT_TCPOPT_TIMESTAMP)

/* Checkpoint: a connection put in repair mode, to let go at the end */
struct ckpt_tcp_held {
	struct list_head list;
	struct file *file;	/* referenced */
	bool reuse;		/* SO_REUSEADDR, which repair mode overrides */
};

/* Restart: a socket's bookkeeping in the objhash (priv), kfree()d with it */
struct ckpt_rinet {
	struct list_head list;		/* ctx->tcp_repair: established, in repair mode */
	struct ckpt_hdr_inet *h;
	struct socket *sock;		/* owned by its file, the objhash's */
	struct ckpt_obj *send_first;	/* the send queue's first DATA object */
	u32 nr_send;			/* and how many there are */
};

static bool ckpt_is_inet(struct sock *sk)
{
	return sk && (sk->sk_family == AF_INET || sk->sk_family == AF_INET6);
}

static bool ckpt_inet_match(struct file *file)
{
	struct socket *sock = ckpt_sock_of(file);
	struct sock *sk = sock ? sock->sk : NULL;

	return ckpt_is_inet(sk) &&
	       ((sk->sk_type == SOCK_STREAM && sk->sk_protocol == IPPROTO_TCP) ||
		(sk->sk_type == SOCK_DGRAM && sk->sk_protocol == IPPROTO_UDP));
}

/* What an inet socket is, for messages: "inet raw", "inet6 sctp", ... */
const char *ckpt_inet_kind(struct sock *sk)
{
	bool v6 = sk->sk_family == AF_INET6;

	if (sk->sk_type == SOCK_RAW)
		return v6 ? "inet6 raw" : "inet raw";
	switch (sk->sk_protocol) {
	case IPPROTO_TCP:
		return v6 ? "tcp6" : "tcp";
	case IPPROTO_UDP:
		return v6 ? "udp6" : "udp";
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		return v6 ? "inet6 ping" : "inet ping";
	case IPPROTO_SCTP:
		return v6 ? "inet6 sctp" : "inet sctp";
	case IPPROTO_MPTCP:
		return v6 ? "inet6 mptcp" : "inet mptcp";
	case IPPROTO_UDPLITE:
		return v6 ? "inet6 udplite" : "inet udplite";
	}
	return v6 ? "inet6" : "inet";
}

static const char *ckpt_tcp_state(int state)
{
	static const char * const names[] = {
		[TCP_SYN_SENT] = "SYN_SENT", [TCP_SYN_RECV] = "SYN_RECV",
		[TCP_FIN_WAIT1] = "FIN_WAIT1", [TCP_FIN_WAIT2] = "FIN_WAIT2",
		[TCP_TIME_WAIT] = "TIME_WAIT", [TCP_CLOSE_WAIT] = "CLOSE_WAIT",
		[TCP_LAST_ACK] = "LAST_ACK", [TCP_CLOSING] = "CLOSING",
	};

	return state < ARRAY_SIZE(names) && names[state] ? names[state] : "unknown";
}

static const char *ckpt_inet_proto(u32 family, u32 type)
{
	if (type == SOCK_STREAM)
		return family == AF_INET6 ? "tcp6" : "tcp";
	return family == AF_INET6 ? "udp6" : "udp";
}

/* "127.0.0.1:80" or "[::1]:80" */
static const char *ckpt_inet_ntop(u32 family, const struct ckpt_inet_addr *a, char *buf,
				  size_t len)
{
	if (family == AF_INET6)
		snprintf(buf, len, "[%pI6c]:%u", a->addr, a->port);
	else
		snprintf(buf, len, "%pI4:%u", a->addr, a->port);
	return buf;
}

#define CKPT_ADDRSTRLEN 56

/* The addresses of @sk, as getsockname(2) and getpeername(2) give them */
static void ckpt_inet_addrs(struct sock *sk, struct ckpt_hdr_inet *h)
{
	struct inet_sock *inet = inet_sk(sk);

	h->local.port = inet->inet_num;
	h->remote.port = ntohs(inet->inet_dport);
	if (sk->sk_family == AF_INET6) {
		memcpy(h->local.addr, &sk->sk_v6_rcv_saddr, 16);
		memcpy(h->remote.addr, &sk->sk_v6_daddr, 16);
		if (ipv6_addr_type(&sk->sk_v6_rcv_saddr) & IPV6_ADDR_LINKLOCAL)
			h->local.scope_id = sk->sk_bound_dev_if;
		if (ipv6_addr_type(&sk->sk_v6_daddr) & IPV6_ADDR_LINKLOCAL)
			h->remote.scope_id = sk->sk_bound_dev_if;
	} else {
		memcpy(h->local.addr, &inet->inet_rcv_saddr, 4);
		memcpy(h->remote.addr, &inet->inet_daddr, 4);
	}
}

/* The options of ckpt_inet_opts[] that apply to a socket so */
static bool ckpt_opt_applies(const struct ckpt_inet_opt *o, u32 family, u32 type, u32 state)
{
	if (!(o->flags & (type == SOCK_STREAM ? CKPT_OPT_TCP : CKPT_OPT_UDP)))
		return false;
	if ((o->flags & CKPT_OPT_INET6) && family != AF_INET6)
		return false;
	return !((o->flags & CKPT_OPT_UNCONNECTED) && state == CKPT_INET_ESTABLISHED);
}

/* getsockopt(2) of every option in @want, into a page of the caller's memory */
struct ckpt_optcall {
	struct socket *sock;
	const bool *want;
	int err[CKPT_NR_OPTS];
};

struct ckpt_optvals {
	u8 val[CKPT_NR_OPTS][16];
	int len[CKPT_NR_OPTS];
};

static long ckpt_getsockopts_user(void *priv, unsigned long uaddr)
{
	struct ckpt_optvals __user *u = (struct ckpt_optvals __user *)uaddr;
	struct ckpt_optcall *c = priv;
	unsigned int i;

	for (i = 0; i < CKPT_NR_OPTS; i++)
		if (c->want[i])
			c->err[i] = do_sock_getsockopt(c->sock, false, ckpt_inet_opts[i].level,
						       ckpt_inet_opts[i].name,
						       USER_SOCKPTR(u->val[i]),
						       USER_SOCKPTR(&u->len[i]));
	return 0;
}

static int ckpt_getsockopts(struct ckpt_ctx *ctx, struct socket *sock, const bool *want,
			    struct ckpt_optvals *v, struct ckpt_optcall *c)
{
	unsigned int i;
	long ret;

	BUILD_BUG_ON(sizeof(*v) > PAGE_SIZE);
	memset(v, 0, sizeof(*v));
	for (i = 0; i < CKPT_NR_OPTS; i++) {
		v->len[i] = ckpt_inet_opts[i].len;
		c->err[i] = -ENOPROTOOPT;
	}
	c->sock = sock;
	c->want = want;
	ret = ckpt_user_call(ctx, v, sizeof(*v), ckpt_getsockopts_user, c);
	return ret < 0 ? ret : 0;
}

/* Checkpoint: the options of @sock that it has, into @h's array @opts */
static int checkpoint_inet_opts(struct ckpt_ctx *ctx, struct socket *sock,
				struct ckpt_hdr_inet *h, struct ckpt_sockopt *opts)
{
	struct ckpt_optvals *v;
	struct ckpt_optcall *c;
	bool want[CKPT_NR_OPTS];
	unsigned int i;
	int ret;

	for (i = 0; i < CKPT_NR_OPTS; i++)
		want[i] = ckpt_opt_applies(&ckpt_inet_opts[i], h->family, h->type, h->state);
	v = kzalloc(sizeof(*v), GFP_KERNEL);
	c = kzalloc(sizeof(*c), GFP_KERNEL);
	ret = v && c ? ckpt_getsockopts(ctx, sock, want, v, c) : -ENOMEM;
	if (ret) {
		ckpt_err(ctx, ret, "%s socket: cannot read its options", ckpt_inet_kind(sock->sk));
		goto out;
	}
	for (i = 0; i < CKPT_NR_OPTS; i++) {
		struct ckpt_sockopt *o = &opts[h->nr_opts];

		/* an option this socket does not have (ENOPROTOOPT, EOPNOTSUPP) */
		if (!want[i] || c->err[i] || v->len[i] < 0 || v->len[i] > ckpt_inet_opts[i].len)
			continue;
		o->level = ckpt_inet_opts[i].level;
		o->name = ckpt_inet_opts[i].name;
		o->len = v->len[i];
		memcpy(o->val, v->val[i], o->len);
		h->nr_opts++;
	}
out:
	kfree(c);
	kfree(v);
	return ret;
}

/* What no INET object carries: refused, not dropped */
static int ckpt_inet_unsupported(struct ckpt_ctx *ctx, struct sock *sk)
{
	const char *kind = ckpt_inet_kind(sk);
	struct inet_sock *inet = inet_sk(sk);
	struct sock_reuseport *reuse;
	bool mc, prog;

	if (rcu_access_pointer(sk->sk_filter))
		return ckpt_err(ctx, -EOPNOTSUPP,
				"%s socket with a filter (SO_ATTACH_FILTER): not supported", kind);
	rcu_read_lock();
	reuse = rcu_dereference(sk->sk_reuseport_cb);
	prog = reuse && rcu_access_pointer(reuse->prog);
	mc = rcu_access_pointer(inet->mc_list) || rcu_access_pointer(inet->inet_opt);
#if IS_ENABLED(CONFIG_IPV6)
	if (sk->sk_family == AF_INET6)
		mc = mc || rcu_access_pointer(inet6_sk(sk)->ipv6_mc_list) ||
		     rcu_access_pointer(inet6_sk(sk)->opt);
#endif
	rcu_read_unlock();
	if (prog)
		return ckpt_err(ctx, -EOPNOTSUPP,
				"%s socket with a SO_REUSEPORT BPF program: not supported", kind);
	if (mc)
		return ckpt_err(ctx, -EOPNOTSUPP,
				"%s socket with multicast memberships or IP options: not supported",
				kind);
	if (!skb_queue_empty_lockless(&sk->sk_error_queue))
		return ckpt_err(ctx, -EOPNOTSUPP,
				"%s socket with an error queued (IP_RECVERR, SO_ZEROCOPY): not supported",
				kind);
	if (sk->sk_protocol == IPPROTO_TCP) {
		struct inet_connection_sock *icsk = inet_csk(sk);

		if (icsk->icsk_ulp_ops)
			return ckpt_err(ctx, -EOPNOTSUPP,
					"%s socket with the %s upper layer protocol: not supported",
					kind, icsk->icsk_ulp_ops->name);
		if (tcp_sk(sk)->repair)
			return ckpt_err(ctx, -EOPNOTSUPP,
					"%s socket already in repair mode: not supported", kind);
#ifdef CONFIG_TCP_MD5SIG
		if (rcu_access_pointer(tcp_sk(sk)->md5sig_info))
			return ckpt_err(ctx, -EOPNOTSUPP,
					"%s socket with TCP_MD5SIG keys: not supported", kind);
#endif
#ifdef CONFIG_TCP_AO
		if (rcu_access_pointer(tcp_sk(sk)->ao_info))
			return ckpt_err(ctx, -EOPNOTSUPP,
					"%s socket with TCP-AO keys: not supported", kind);
#endif
	}
	return 0;
}

/* The INET object of @sk without its TCP part: what every inet socket has */
static struct ckpt_hdr_inet *checkpoint_inet_hdr(struct ckpt_ctx *ctx, struct sock *sk,
						 u32 state)
{
	struct ckpt_hdr_inet *h;
	int ret;

	ret = ckpt_inet_unsupported(ctx, sk);
	if (ret)
		return ERR_PTR(ret);
	h = kvzalloc(sizeof(*h) + CKPT_INET_OPTS_MAX * sizeof(struct ckpt_sockopt), GFP_KERNEL);
	if (!h)
		return ERR_PTR(-ENOMEM);
	h->family = sk->sk_family;
	h->type = sk->sk_type;
	h->state = state;
	ckpt_inet_addrs(sk, h);
	if (sk->sk_userlocks & SOCK_BINDADDR_LOCK)
		h->flags |= CKPT_INET_BOUND_ADDR;
	if (sk->sk_userlocks & SOCK_BINDPORT_LOCK)
		h->flags |= CKPT_INET_BOUND_PORT;
	if (sk->sk_userlocks & SOCK_SNDBUF_LOCK)
		h->flags |= CKPT_INET_SNDBUF;
	if (sk->sk_userlocks & SOCK_RCVBUF_LOCK)
		h->flags |= CKPT_INET_RCVBUF;
	if (sk->sk_reuse == SK_CAN_REUSE)
		h->flags |= CKPT_INET_REUSEADDR;
	h->sndbuf = READ_ONCE(sk->sk_sndbuf);
	h->rcvbuf = READ_ONCE(sk->sk_rcvbuf);
	h->drops = atomic_read(&sk->sk_drops);
	h->shutdown = READ_ONCE(sk->sk_shutdown);
	h->err = READ_ONCE(sk->sk_err);
	ret = checkpoint_inet_opts(ctx, sk->sk_socket, h, (struct ckpt_sockopt *)(h + 1));
	if (ret) {
		kvfree(h);
		return ERR_PTR(ret);
	}
	return h;
}

static int ckpt_inet_write(struct ckpt_ctx *ctx, struct ckpt_hdr_inet *h)
{
	return ckpt_write_obj(ctx, h, CKPT_HDR_INET,
			      sizeof(*h) + h->nr_opts * sizeof(struct ckpt_sockopt));
}

/* ------------------------------------------------------------------ TCP */

static int ckpt_sock_setopt(struct socket *sock, int level, int name, const void *val,
			    unsigned int len)
{
	return do_sock_setsockopt(sock, false, level, name, KERNEL_SOCKPTR((void *)val), len);
}

static int ckpt_tcp_repair(struct socket *sock, int val)
{
	return ckpt_sock_setopt(sock, SOL_TCP, TCP_REPAIR, &val, sizeof(val));
}

/* Put a connection in repair mode until the checkpoint ends (see checkpoint_inet_done()) */
static int ckpt_tcp_hold(struct ckpt_ctx *ctx, struct sock *sk, const char *conn)
{
	struct socket *sock = sk->sk_socket;
	struct ckpt_tcp_held *held;
	int ret;

	if (!(ctx->flags & CHECKPOINT_KILL))
		return 0;
	held = kzalloc(sizeof(*held), GFP_KERNEL);
	if (!held)
		return -ENOMEM;
	held->reuse = sk->sk_reuse == SK_CAN_REUSE;
	ret = ckpt_tcp_repair(sock, TCP_REPAIR_ON);
	if (ret) {
		kfree(held);
		return ckpt_err(ctx, ret,
				"cannot put the %s into repair mode (TCP_REPAIR needs CAP_NET_ADMIN)",
				conn);
	}
	held->file = get_file(sock->file);
	list_add_tail(&held->list, &ctx->tcp_repair);
	return 0;
}

/*
 * The checkpoint is written: connections of tasks that are killed now stay
 * in repair mode and die silently; the others leave it, as they were.
 */
void checkpoint_inet_done(struct ckpt_ctx *ctx, bool killed)
{
	struct ckpt_tcp_held *held, *tmp;

	list_for_each_entry_safe(held, tmp, &ctx->tcp_repair, list) {
		struct socket *sock = sock_from_file(held->file);

		if (!killed) {
			int reuse = held->reuse;

			ckpt_tcp_repair(sock, TCP_REPAIR_OFF_NO_WP);
			ckpt_sock_setopt(sock, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof(reuse));
		}
		list_del(&held->list);
		fput(held->file);
		kfree(held);
	}
}

/* The socket at the other end of @sk's connection, if it is on this host (referenced) */
static struct sock *ckpt_tcp_peer(struct sock *sk)
{
	struct inet_hashinfo *hinfo = sock_net(sk)->ipv4.tcp_death_row.hashinfo;
	struct inet_sock *inet = inet_sk(sk);
	struct sock *peer;

	rcu_read_lock();
#if IS_ENABLED(CONFIG_IPV6)
	if (sk->sk_family == AF_INET6 && !ipv6_addr_v4mapped(&sk->sk_v6_daddr))
		peer = __inet6_lookup_established(sock_net(sk), hinfo, &sk->sk_v6_rcv_saddr,
						  inet->inet_sport, &sk->sk_v6_daddr,
						  ntohs(inet->inet_dport), 0, 0);
	else
#endif
		peer = __inet_lookup_established(sock_net(sk), hinfo, inet->inet_saddr,
						 inet->inet_sport, inet->inet_daddr,
						 ntohs(inet->inet_dport), 0, 0);
	rcu_read_unlock();
	if (peer && !sk_fullsock(peer)) {
		sock_gen_put(peer);
		peer = NULL;
	}
	return peer;
}

/* Copy what @skb holds from *@seq on to @buf + *@done, at most up to @len */
static int ckpt_tcp_copy_skb(struct sk_buff *skb, u32 *seq, char *buf, u32 len, u32 *done)
{
	u32 off = *seq - TCP_SKB_CB(skb)->seq, n;

	if (before(*seq, TCP_SKB_CB(skb)->seq) || off > skb->len)
		return -EAGAIN;
	n = min(skb->len - off, len - *done);
	if (n && skb_copy_bits(skb, off, buf + *done, n))
		return -EFAULT;
	*done += n;
	*seq += n;
	return 0;
}

/* Copy the bytes of @sk's receive queue from copied_seq on */
static int ckpt_tcp_copy_recvq(struct sock *sk, char *buf, u32 len)
{
	u32 seq = tcp_sk(sk)->copied_seq, done = 0;
	struct sk_buff *skb;
	int ret;

	skb_queue_walk(&sk->sk_receive_queue, skb) {
		ret = ckpt_tcp_copy_skb(skb, &seq, buf, len, &done);
		if (ret)
			return ret;
	}
	return done == len ? 0 : -EAGAIN;
}

/* Copy the bytes of @sk's send queue from snd_una on: sent, then not sent yet */
static int ckpt_tcp_copy_sendq(struct sock *sk, char *buf, u32 len)
{
	u32 seq = tcp_sk(sk)->snd_una, done = 0;
	struct sk_buff *skb;
	int ret;

	skb_rbtree_walk(skb, &sk->tcp_rtx_queue) {
		ret = ckpt_tcp_copy_skb(skb, &seq, buf, len, &done);
		if (ret)
			return ret;
	}
	skb_queue_walk(&sk->sk_write_queue, skb) {
		ret = ckpt_tcp_copy_skb(skb, &seq, buf, len, &done);
		if (ret)
			return ret;
	}
	return done == len ? 0 : -EAGAIN;
}

/* An established connection's repair state and queues; @sk is locked. *@data is kvmalloc()ed */
static int ckpt_tcp_read(struct sock *sk, struct ckpt_tcp_conn *c, char **data)
{
	struct tcp_sock *tp = tcp_sk(sk);
	char *buf;
	int ret;

	if (sk->sk_state != TCP_ESTABLISHED)
		return -EAGAIN;
	if (READ_ONCE(tp->urg_data) & (TCP_URG_VALID | TCP_URG_NOTYET))
		return -EPROTO;
	c->snd_una = tp->snd_una;
	c->snd_nxt = tp->snd_nxt;
	c->write_seq = tp->write_seq;
	c->rcv_nxt = tp->rcv_nxt;
	c->recv_len = tp->rcv_nxt - tp->copied_seq;
	c->send_len = tp->write_seq - tp->snd_una;
	if (c->recv_len > CKPT_TCP_QUEUE_MAX || c->send_len > CKPT_TCP_QUEUE_MAX)
		return -E2BIG;
	c->mss_clamp = tp->rx_opt.mss_clamp;
	c->user_mss = tp->rx_opt.user_mss;
	if (tp->rx_opt.sack_ok & TCP_SACK_SEEN)
		c->options |= CKPT_TCPOPT_SACK;
	if (tp->rx_opt.wscale_ok) {
		c->options |= CKPT_TCPOPT_WSCALE;
		c->snd_wscale = tp->rx_opt.snd_wscale;
		c->rcv_wscale = tp->rx_opt.rcv_wscale;
	}
	if (tp->rx_opt.tstamp_ok)
		c->options |= CKPT_TCPOPT_TIMESTAMP;
	/* as getsockopt(TCP_TIMESTAMP): the low bit says microseconds */
	c->tsval = tcp_clock_ts(tp->tcp_usec_ts) + READ_ONCE(tp->tsoffset);
	c->tsval = tp->tcp_usec_ts ? c->tsval | 1 : c->tsval & ~1;
	c->snd_wl1 = tp->snd_wl1;
	c->snd_wnd = tp->snd_wnd;
	c->max_window = tp->max_window;
	c->rcv_wnd = tp->rcv_wnd;
	c->rcv_wup = tp->rcv_wup;
	buf = kvmalloc(max(c->recv_len + c->send_len, 1U), GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	ret = ckpt_tcp_copy_recvq(sk, buf, c->recv_len);
	if (!ret)
		ret = ckpt_tcp_copy_sendq(sk, buf + c->recv_len, c->send_len);
	if (ret) {
		kvfree(buf);
		return ret;
	}
	*data = buf;
	return 0;
}

static int ckpt_tcp_read_err(struct ckpt_ctx *ctx, int err, const char *conn)
{
	switch (err) {
	case -EPROTO:
		return ckpt_err(ctx, -EOPNOTSUPP, "%s with urgent data not read yet: not supported",
				conn);
	case -E2BIG:
		return ckpt_err(ctx, err, "%s holds more than %d bytes queued: not supported",
				conn, CKPT_TCP_QUEUE_MAX);
	case -EAGAIN:
		return ckpt_err(ctx, err, "%s changed while it was saved", conn);
	}
	return ckpt_err(ctx, err, "cannot read the %s", conn);
}

/* The INET object of a connection, then its receive and send queues */
static int ckpt_tcp_write(struct ckpt_ctx *ctx, struct ckpt_hdr_inet *h, const char *data)
{
	u32 total = h->tcp.recv_len + h->tcp.send_len, off = 0;
	int ret = ckpt_inet_write(ctx, h);

	/* the two queues in separate DATA objects, never one across both */
	while (!ret && off < total) {
		u32 end = off < h->tcp.recv_len ? h->tcp.recv_len : total;
		u32 n = min_t(u32, end - off, CKPT_DATA_CHUNK);

		ret = checkpoint_data(ctx, h->objref, data + off, n, off);
		off += n;
	}
	return ret;
}

/* "tcp connection 127.0.0.1:5000 -> 127.0.0.1:40000" */
static void ckpt_tcp_name(struct ckpt_hdr_inet *h, char *buf, size_t len)
{
	char a[CKPT_ADDRSTRLEN], b[CKPT_ADDRSTRLEN];

	snprintf(buf, len, "%s connection %s -> %s", ckpt_inet_proto(h->family, h->type),
		 ckpt_inet_ntop(h->family, &h->local, a, sizeof(a)),
		 ckpt_inet_ntop(h->family, &h->remote, b, sizeof(b)));
}

/*
 * An established connection, and its peer if that is in the tree: both
 * read under both socket locks, so that their queues and sequence numbers
 * agree, then written back to back.
 */
static int checkpoint_tcp_established(struct ckpt_ctx *ctx, struct sock *sk,
				      struct ckpt_hdr_inet *h, s32 *objref)
{
	struct ckpt_hdr_inet *ph = NULL;
	char *data = NULL, *pdata = NULL;
	char conn[2 * CKPT_ADDRSTRLEN + 32];
	struct sock *peer;
	int ret;

	ckpt_tcp_name(h, conn, sizeof(conn));
	peer = ckpt_tcp_peer(sk);
	if (peer == sk) {
		ret = ckpt_err(ctx, -EOPNOTSUPP, "%s, connected to itself: not supported", conn);
		goto out;
	}
	if (peer && !ckpt_sock_in_tree(ctx, peer)) {
		sock_put(peer);
		peer = NULL;
	}
	if (!peer && !(ctx->flags & CHECKPOINT_TCP_ESTABLISHED)) {
		ret = ckpt_err(ctx, -EOPNOTSUPP,
			       "%s to a peer outside the tree is not saved without --tcp-established",
			       conn);
		goto out;
	}
	if (peer) {
		ph = checkpoint_inet_hdr(ctx, peer, CKPT_INET_ESTABLISHED);
		if (IS_ERR(ph)) {
			ret = PTR_ERR(ph);
			ph = NULL;
			goto out;
		}
		if (ckpt_obj_lookup(ctx, peer)) {
			ret = ckpt_err(ctx, -EAGAIN, "%s changed while it was saved", conn);
			goto out;
		}
	} else {
		h->flags |= CKPT_INET_OUTSIDE;
	}
	ret = ckpt_tcp_hold(ctx, sk, conn);
	if (!ret && peer)
		ret = ckpt_tcp_hold(ctx, peer, conn);
	if (ret)
		goto out;

	lock_sock(sk);
	if (peer)
		lock_sock_nested(peer, SINGLE_DEPTH_NESTING);
	ret = ckpt_tcp_read(sk, &h->tcp, &data);
	if (!ret && peer)
		ret = ckpt_tcp_read(peer, &ph->tcp, &pdata);
	if (peer)
		release_sock(peer);
	release_sock(sk);
	if (ret) {
		ret = ckpt_tcp_read_err(ctx, ret, conn);
		goto out;
	}

	ret = ckpt_obj_add(ctx, sk, CKPT_HDR_INET);
	if (ret < 0)
		goto out;
	h->objref = ret;
	*objref = ret;
	if (peer) {
		ret = ckpt_obj_add(ctx, peer, CKPT_HDR_INET);
		if (ret < 0)
			goto out;
		ph->objref = ret;
		ph->peer = h->objref;
		h->peer = ph->objref;
	}
	ret = ckpt_tcp_write(ctx, h, data);
	if (!ret && peer)
		ret = ckpt_tcp_write(ctx, ph, pdata);
out:
	kvfree(data);
	kvfree(pdata);
	kvfree(ph);
	if (peer)
		sock_put(peer);
	return ret;
}

static int checkpoint_tcp(struct ckpt_ctx *ctx, struct sock *sk, s32 *objref)
{
	char at[CKPT_ADDRSTRLEN];
	struct ckpt_hdr_inet *h;
	u32 state, queued;
	int ret;

	switch (READ_ONCE(sk->sk_state)) {
	case TCP_CLOSE:
		state = CKPT_INET_UNCONNECTED;
		break;
	case TCP_LISTEN:
		state = CKPT_INET_LISTEN;
		break;
	case TCP_ESTABLISHED:
		state = CKPT_INET_ESTABLISHED;
		break;
	default:
		return ckpt_err(ctx, -EOPNOTSUPP, "%s socket in state %s: not supported",
				ckpt_inet_kind(sk), ckpt_tcp_state(READ_ONCE(sk->sk_state)));
	}
	h = checkpoint_inet_hdr(ctx, sk, state);
	if (IS_ERR(h))
		return PTR_ERR(h);
	ckpt_inet_ntop(h->family, &h->local, at, sizeof(at));
	if (state == CKPT_INET_ESTABLISHED) {
		ret = checkpoint_tcp_established(ctx, sk, h, objref);
		goto out;
	}
	if (state == CKPT_INET_LISTEN) {
		queued = READ_ONCE(sk->sk_ack_backlog) + inet_csk_reqsk_queue_len(sk);
		h->backlog = READ_ONCE(sk->sk_max_ack_backlog);
		if (queued) {
			ret = ckpt_err(ctx, -EOPNOTSUPP,
				       "%s socket listening on %s with %u connection%s not accepted yet is not supported",
				       ckpt_inet_kind(sk), at, queued, queued > 1 ? "s" : "");
			goto out;
		}
	} else if (!skb_queue_empty_lockless(&sk->sk_receive_queue)) {
		/* its connection ended with bytes to read: they would be lost */
		ret = ckpt_err(ctx, -EOPNOTSUPP,
			       "%s socket whose connection ended with bytes not read yet: not supported",
			       ckpt_inet_kind(sk));
		goto out;
	}
	if (!h->local.port && !(h->flags & (CKPT_INET_BOUND_ADDR | CKPT_INET_BOUND_PORT)))
		memset(&h->local, 0, sizeof(h->local));
	memset(&h->remote, 0, sizeof(h->remote));
	ret = ckpt_obj_add(ctx, sk, CKPT_HDR_INET);
	if (ret < 0)
		goto out;
	h->objref = ret;
	*objref = ret;
	ret = ckpt_inet_write(ctx, h);
out:
	kvfree(h);
	return ret;
}

/* ------------------------------------------------------------------ UDP */

/* One queued datagram as a DGRAM object; false if the engine cannot queue it again */
static bool ckpt_dgram_fill(struct sk_buff *skb, struct ckpt_hdr_dgram *d)
{
	if (skb_is_gso(skb) || skb->len > CKPT_DGRAM_MAX)
		return false;
	d->len = skb->len;
	d->from.port = ntohs(udp_hdr(skb)->source);
	if (skb->protocol == htons(ETH_P_IP)) {
		const struct iphdr *iph = ip_hdr(skb);

		if (iph->ihl != 5)
			return false;
		d->family = AF_INET;
		memcpy(d->from.addr, &iph->saddr, 4);
		memcpy(d->to, &iph->daddr, 4);
		d->tos = iph->tos;
		d->ttl = iph->ttl;
		d->ifindex = PKTINFO_SKB_CB(skb)->ipi_ifindex;
		memcpy(d->spec_dst, &PKTINFO_SKB_CB(skb)->ipi_spec_dst, 4);
#if IS_ENABLED(CONFIG_IPV6)
	} else if (skb->protocol == htons(ETH_P_IPV6)) {
		const struct ipv6hdr *ip6h = ipv6_hdr(skb);

		if (ip6h->nexthdr != IPPROTO_UDP ||
		    skb_transport_offset(skb) - skb_network_offset(skb) != sizeof(*ip6h))
			return false;
		d->family = AF_INET6;
		memcpy(d->from.addr, &ip6h->saddr, 16);
		memcpy(d->to, &ip6h->daddr, 16);
		d->tos = ip6_tclass(ip6_flowinfo(ip6h));
		d->ttl = ip6h->hop_limit;
		d->flowlabel = ntohl(ip6_flowlabel(ip6h));
		d->ifindex = IP6CB(skb)->iif;
#endif
	} else {
		return false;
	}
	if (skb->tstamp_type == SKB_CLOCK_REALTIME)
		d->tstamp = ktime_to_ns(skb->tstamp);
	d->mark = skb->mark;
	d->dropcount = SOCK_SKB_CB(skb)->dropcount;
	return true;
}

/* References to the datagrams queued to @sk, oldest first; how many, or < 0 */
static int ckpt_udp_queue(struct sock *sk, struct sk_buff **skbs)
{
	struct sk_buff_head *queues[] = { &udp_sk(sk)->reader_queue, &sk->sk_receive_queue };
	struct sk_buff *skb;
	unsigned int i;
	int n = 0;

	/* as udp_recvmsg() takes them: the reader's queue first */
	spin_lock_bh(&queues[0]->lock);
	spin_lock(&queues[1]->lock);
	for (i = 0; i < ARRAY_SIZE(queues) && n >= 0; i++) {
		skb_queue_walk(queues[i], skb) {
			if (n == CKPT_DGRAMS_MAX) {
				n = -E2BIG;
				break;
			}
			skbs[n++] = skb_get(skb);
		}
	}
	spin_unlock(&queues[1]->lock);
	spin_unlock_bh(&queues[0]->lock);
	return n;
}

static int checkpoint_udp_dgrams(struct ckpt_ctx *ctx, struct ckpt_hdr_inet *h,
				 struct sk_buff **skbs, int n)
{
	struct ckpt_hdr_dgram *d;
	char *data;
	int i, ret = 0;

	d = kzalloc(sizeof(*d), GFP_KERNEL);
	data = kvmalloc(CKPT_DGRAM_MAX, GFP_KERNEL);
	if (!d || !data)
		ret = -ENOMEM;
	for (i = 0; i < n; i++) {
		if (!ret) {
			memset(d, 0, sizeof(*d));
			d->sock = h->objref;
			if (!ckpt_dgram_fill(skbs[i], d))
				ret = ckpt_err(ctx, -EOPNOTSUPP,
					       "%s socket: a datagram with IP options, IPv6 extension headers or merged by GRO is queued: not supported",
					       ckpt_inet_proto(h->family, h->type));
			else if (skb_copy_bits(skbs[i], 0, data, d->len))
				ret = -EFAULT;
			else
				ret = ckpt_write_obj_buf(ctx, d, CKPT_HDR_DGRAM, sizeof(*d), data,
							 d->len);
		}
		kfree_skb(skbs[i]);
	}
	kvfree(data);
	kfree(d);
	return ret;
}

static int checkpoint_udp(struct ckpt_ctx *ctx, struct sock *sk, s32 *objref)
{
	bool connected = READ_ONCE(sk->sk_state) == TCP_ESTABLISHED;
	struct ckpt_hdr_inet *h;
	struct sk_buff **skbs;
	char at[CKPT_ADDRSTRLEN];
	int n = 0, ret;

	h = checkpoint_inet_hdr(ctx, sk, connected ? CKPT_INET_CONNECTED : CKPT_INET_UNCONNECTED);
	if (IS_ERR(h))
		return PTR_ERR(h);
	if (!connected)
		memset(&h->remote, 0, sizeof(h->remote));
	skbs = kvcalloc(CKPT_DGRAMS_MAX, sizeof(*skbs), GFP_KERNEL);
	if (!skbs) {
		ret = -ENOMEM;
		goto out;
	}
	if (READ_ONCE(udp_sk(sk)->pending) || !skb_queue_empty_lockless(&sk->sk_write_queue)) {
		ret = ckpt_err(ctx, -EOPNOTSUPP,
			       "%s socket on %s with a datagram being written (UDP_CORK) is not supported",
			       ckpt_inet_kind(sk),
			       ckpt_inet_ntop(h->family, &h->local, at, sizeof(at)));
		goto out;
	}
	n = ckpt_udp_queue(sk, skbs);
	if (n < 0) {
		ret = ckpt_err(ctx, n, "%s socket: more than %d datagrams queued: not supported",
			       ckpt_inet_kind(sk), CKPT_DGRAMS_MAX);
		n = 0;
		goto out;
	}
	ret = ckpt_obj_add(ctx, sk, CKPT_HDR_INET);
	if (ret < 0)
		goto out;
	h->objref = ret;
	*objref = ret;
	h->nr_dgrams = n;
	ret = ckpt_inet_write(ctx, h);
	if (!ret) {
		ret = checkpoint_udp_dgrams(ctx, h, skbs, n);
		n = 0;
	}
out:
	while (n--)
		kfree_skb(skbs[n]);
	kvfree(skbs);
	kvfree(h);
	return ret;
}

static int checkpoint_inet_file(struct ckpt_ctx *ctx, struct file *file,
				struct ckpt_hdr_file *h)
{
	struct sock *sk = ckpt_sock_of(file)->sk;

	h->pos = 0;
	h->obj = ckpt_obj_lookup(ctx, sk);
	if (h->obj)
		return 0;
	return sk->sk_protocol == IPPROTO_TCP ? checkpoint_tcp(ctx, sk, &h->obj) :
						checkpoint_udp(ctx, sk, &h->obj);
}

/* -------------------------------------------------------------- restart */

/* The entry of ckpt_inet_opts[] an image's option is, if it may be set on @h's socket */
static const struct ckpt_inet_opt *ckpt_opt_find(const struct ckpt_hdr_inet *h,
						 const struct ckpt_sockopt *o)
{
	unsigned int i;

	for (i = 0; i < CKPT_NR_OPTS; i++) {
		const struct ckpt_inet_opt *d = &ckpt_inet_opts[i];

		if (d->level == o->level && d->name == o->name)
			return ckpt_opt_applies(d, h->family, h->type, h->state) &&
			       o->len <= d->len ? d : NULL;
	}
	return NULL;
}

static int restore_inet_check(struct ckpt_ctx *ctx, struct ckpt_hdr_inet *h)
{
	const struct ckpt_sockopt *opts = (const struct ckpt_sockopt *)(h + 1);
	bool tcp = h->type == SOCK_STREAM;
	const struct ckpt_tcp_conn *c = &h->tcp;
	u32 i;

	if (h->nr_opts > CKPT_INET_OPTS_MAX ||
	    h->h.len != sizeof(*h) + h->nr_opts * sizeof(struct ckpt_sockopt) ||
	    h->objref <= 0 || (h->family != AF_INET && h->family != AF_INET6) ||
	    (h->type != SOCK_STREAM && h->type != SOCK_DGRAM) ||
	    (h->flags & ~CKPT_INET_FLAGS) || (h->shutdown & ~SHUTDOWN_MASK) ||
	    h->err < 0 || h->err > MAX_ERRNO || h->peer < 0 || h->peer == h->objref ||
	    h->nr_dgrams > CKPT_DGRAMS_MAX || (h->nr_dgrams && (tcp || !h->local.port)))
		return -EINVAL;
	switch (h->state) {
	case CKPT_INET_UNCONNECTED:
	case CKPT_INET_LISTEN:
		if (h->remote.port || (h->state == CKPT_INET_LISTEN && (!tcp || !h->local.port)))
			return -EINVAL;
		break;
	case CKPT_INET_CONNECTED:
		if (tcp || !h->local.port || !h->remote.port)
			return -EINVAL;
		break;
	case CKPT_INET_ESTABLISHED:
		if (!tcp || !h->local.port || !h->remote.port ||
		    c->recv_len > CKPT_TCP_QUEUE_MAX || c->send_len > CKPT_TCP_QUEUE_MAX ||
		    c->send_len != c->write_seq - c->snd_una ||
		    c->mss_clamp < TCP_MIN_MSS || c->mss_clamp > U16_MAX || c->user_mss > U16_MAX ||
		    (c->options & ~CKPT_TCPOPT_ALL) ||
		    c->snd_wscale > TCP_MAX_WSCALE || c->rcv_wscale > TCP_MAX_WSCALE ||
		    !!(h->flags & CKPT_INET_OUTSIDE) == !!h->peer || (h->shutdown & SEND_SHUTDOWN))
			return -EINVAL;
		break;
	default:
		return -EINVAL;
	}
	if (h->state != CKPT_INET_ESTABLISHED &&
	    (h->peer || (h->flags & CKPT_INET_OUTSIDE) || memchr_inv(c, 0, sizeof(*c))))
		return -EINVAL;
	for (i = 0; i < h->nr_opts; i++)
		if (!ckpt_opt_find(h, &opts[i]))
			return -EINVAL;
	return 0;
}

static int ckpt_inet_sockaddr(u32 family, const struct ckpt_inet_addr *a,
			      struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(a->port);
		memcpy(&sin6->sin6_addr, a->addr, 16);
		sin6->sin6_scope_id = a->scope_id;
		return sizeof(*sin6);
	}
	((struct sockaddr_in *)ss)->sin_family = AF_INET;
	((struct sockaddr_in *)ss)->sin_port = htons(a->port);
	memcpy(&((struct sockaddr_in *)ss)->sin_addr, a->addr, 4);
	return sizeof(struct sockaddr_in);
}

/* What restart says about a socket: "tcp socket 127.0.0.1:80" */
static void ckpt_inet_rname(struct ckpt_hdr_inet *h, char *buf, size_t len)
{
	char at[CKPT_ADDRSTRLEN];

	if (h->state == CKPT_INET_ESTABLISHED)
		ckpt_tcp_name(h, buf, len);
	else
		snprintf(buf, len, "%s socket %s", ckpt_inet_proto(h->family, h->type),
			 ckpt_inet_ntop(h->family, &h->local, at, sizeof(at)));
}

#define ckpt_inet_fail(ctx, h, err, fmt, ...) ({				\
	char __name[2 * CKPT_ADDRSTRLEN + 32];					\
									\
	ckpt_inet_rname(h, __name, sizeof(__name));			\
	ckpt_err(ctx, err, "%s: " fmt, __name, ##__VA_ARGS__);		\
})

static int restore_inet_setopt(struct ckpt_ctx *ctx, struct socket *sock,
			       struct ckpt_hdr_inet *h, int level, int name, const char *what,
			       const void *val, unsigned int len)
{
	int ret = ckpt_sock_setopt(sock, level, name, val, len);

	if (ret)
		ckpt_inet_fail(ctx, h, ret, "cannot set %s again", what);
	return ret;
}

/* The image's options where the new socket differs; those marked @late or not */
static int restore_inet_opts(struct ckpt_ctx *ctx, struct socket *sock,
			     struct ckpt_hdr_inet *h, bool late)
{
	const struct ckpt_sockopt *opts = (const struct ckpt_sockopt *)(h + 1);
	bool want[CKPT_NR_OPTS] = {};
	struct ckpt_optvals *v;
	struct ckpt_optcall *c;
	int ret, pass;
	u32 i;

	for (i = 0; i < h->nr_opts; i++)
		want[ckpt_opt_find(h, &opts[i]) - ckpt_inet_opts] = true;
	v = kzalloc(sizeof(*v), GFP_KERNEL);
	c = kzalloc(sizeof(*c), GFP_KERNEL);
	ret = !v || !c ? -ENOMEM : 0;
	/*
	 * Twice: setting one option may change another (IP_TOS sets
	 * SO_PRIORITY).  Late ones are set as the image has them, without
	 * asking: the task's memory is its own by then.
	 */
	for (pass = 0; !ret && pass < (late ? 1 : 2); pass++) {
		if (!late)
			ret = ckpt_getsockopts(ctx, sock, want, v, c);
		for (i = 0; !ret && i < h->nr_opts; i++) {
			const struct ckpt_inet_opt *d = ckpt_opt_find(h, &opts[i]);
			unsigned int k = d - ckpt_inet_opts;
			bool live = h->state == CKPT_INET_ESTABLISHED && (d->flags & CKPT_OPT_LIVE);

			if (live != late)
				continue;
			if (!late && !c->err[k] && v->len[k] == opts[i].len &&
			    !memcmp(v->val[k], opts[i].val, opts[i].len))
				continue;
			ret = restore_inet_setopt(ctx, sock, h, d->level, d->name, d->what,
						  opts[i].val, opts[i].len);
		}
	}
	kfree(c);
	kfree(v);
	return ret;
}

/* SO_SNDBUF and SO_RCVBUF as the program set them; what the kernel tuned, as it was */
static int restore_inet_buffers(struct ckpt_ctx *ctx, struct socket *sock,
				struct ckpt_hdr_inet *h)
{
	struct sock *sk = sock->sk;
	int v, opt, ret = 0;

	if (h->flags & CKPT_INET_SNDBUF) {
		v = h->sndbuf / 2;
		opt = v > READ_ONCE(sysctl_wmem_max) ? SO_SNDBUFFORCE : SO_SNDBUF;
		ret = restore_inet_setopt(ctx, sock, h, SOL_SOCKET, opt, "SO_SNDBUF", &v,
					  sizeof(v));
	} else if (h->type == SOCK_STREAM) {
		/* as autotuning could have grown it, no further */
		v = min_t(int, h->sndbuf, READ_ONCE(sock_net(sk)->ipv4.sysctl_tcp_wmem[2]));
		if (v > READ_ONCE(sk->sk_sndbuf))
			WRITE_ONCE(sk->sk_sndbuf, v);
	}
	if (!ret && (h->flags & CKPT_INET_RCVBUF)) {
		v = h->rcvbuf / 2;
		opt = v > READ_ONCE(sysctl_rmem_max) ? SO_RCVBUFFORCE : SO_RCVBUF;
		ret = restore_inet_setopt(ctx, sock, h, SOL_SOCKET, opt, "SO_RCVBUF", &v,
					  sizeof(v));
	} else if (!ret && h->type == SOCK_STREAM) {
		v = min_t(int, h->rcvbuf, READ_ONCE(sock_net(sk)->ipv4.sysctl_tcp_rmem[2]));
		if (v > READ_ONCE(sk->sk_rcvbuf))
			WRITE_ONCE(sk->sk_rcvbuf, v);
	}
	return ret;
}

/* bind(2) gave the address and port, or did not (an autobound port): as it was */
static void restore_inet_userlocks(struct sock *sk, struct ckpt_hdr_inet *h)
{
	u8 locks = (h->flags & CKPT_INET_BOUND_ADDR ? SOCK_BINDADDR_LOCK : 0) |
		   (h->flags & CKPT_INET_BOUND_PORT ? SOCK_BINDPORT_LOCK : 0);

	lock_sock(sk);
	sk->sk_userlocks = (sk->sk_userlocks & ~(SOCK_BINDADDR_LOCK | SOCK_BINDPORT_LOCK)) |
			   locks;
	release_sock(sk);
}

static int restore_inet_bind(struct ckpt_ctx *ctx, struct socket *sock,
			     struct ckpt_hdr_inet *h)
{
	struct sockaddr_storage ss;
	int len = ckpt_inet_sockaddr(h->family, &h->local, &ss), ret;

	ret = kernel_bind(sock, (struct sockaddr *)&ss, len);
	if (ret)
		ckpt_inet_fail(ctx, h, ret, "cannot bind again");
	return ret;
}

/* Shutdown state and pending error, last */
static void restore_inet_last(struct sock *sk, struct ckpt_hdr_inet *h)
{
	lock_sock(sk);
	WRITE_ONCE(sk->sk_shutdown, sk->sk_shutdown | h->shutdown);
	release_sock(sk);
	WRITE_ONCE(sk->sk_err, h->err);
}

/* An unconnected or listening TCP socket, or a UDP one (then its datagrams) */
static int restore_inet_unconnected(struct ckpt_ctx *ctx, struct socket *sock,
				    struct ckpt_hdr_inet *h)
{
	bool bound = h->local.port || (h->flags & (CKPT_INET_BOUND_ADDR | CKPT_INET_BOUND_PORT));
	int one = 1, reuse = !!(h->flags & CKPT_INET_REUSEADDR), ret = 0;
	bool tcp = h->type == SOCK_STREAM;

	/* TCP: the port's connections in TIME_WAIT would keep it otherwise */
	if (reuse || (bound && tcp))
		ret = restore_inet_setopt(ctx, sock, h, SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR",
					  &one, sizeof(one));
	if (!ret && bound)
		ret = restore_inet_bind(ctx, sock, h);
	if (!ret && h->state == CKPT_INET_LISTEN) {
		ret = kernel_listen(sock, h->backlog);
		if (ret)
			ckpt_inet_fail(ctx, h, ret, "cannot listen again");
	}
	if (!ret && bound && tcp && !reuse)
		ret = restore_inet_setopt(ctx, sock, h, SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR",
					  &reuse, sizeof(reuse));
	if (!ret && bound)
		restore_inet_userlocks(sock->sk, h);
	return ret;
}

/* One datagram, queued to @sk as the stack would have queued it */
static int restore_dgram(struct ckpt_ctx *ctx, struct sock *sk, struct ckpt_hdr_inet *h)
{
	struct ckpt_hdr_dgram *d;
	struct sk_buff *skb;
	struct udphdr *uh;
	int ret;

	d = ckpt_next(ctx, CKPT_HDR_DGRAM, sizeof(*d));
	if (IS_ERR(d))
		return PTR_ERR(d);
	if (d->sock != h->objref || d->len > CKPT_DGRAM_MAX ||
	    d->h.len != sizeof(*d) + ALIGN(d->len, 8) ||
	    (d->family != AF_INET && d->family != AF_INET6) ||
	    (d->family == AF_INET6 && h->family != AF_INET6) || d->flowlabel > 0xfffff ||
	    d->tstamp < 0)
		return ckpt_err(ctx, -EINVAL, "bad DGRAM object");
	skb = alloc_skb(sizeof(struct ipv6hdr) + sizeof(*uh) + d->len, GFP_KERNEL);
	if (!skb)
		return -ENOMEM;
	skb_reset_network_header(skb);
	if (d->family == AF_INET) {
		struct iphdr *iph = skb_put_zero(skb, sizeof(*iph));

		iph->version = 4;
		iph->ihl = 5;
		iph->tos = d->tos;
		iph->ttl = d->ttl;
		iph->tot_len = htons(sizeof(*iph) + sizeof(*uh) + d->len);
		iph->protocol = IPPROTO_UDP;
		memcpy(&iph->saddr, d->from.addr, 4);
		memcpy(&iph->daddr, d->to, 4);
		skb->protocol = htons(ETH_P_IP);
		PKTINFO_SKB_CB(skb)->ipi_ifindex = d->ifindex;
		memcpy(&PKTINFO_SKB_CB(skb)->ipi_spec_dst, d->spec_dst, 4);
	} else {
		struct ipv6hdr *ip6h = skb_put_zero(skb, sizeof(*ip6h));

		ip6_flow_hdr(ip6h, d->tos, htonl(d->flowlabel));
		ip6h->payload_len = htons(sizeof(*uh) + d->len);
		ip6h->nexthdr = IPPROTO_UDP;
		ip6h->hop_limit = d->ttl;
		memcpy(&ip6h->saddr, d->from.addr, 16);
		memcpy(&ip6h->daddr, d->to, 16);
		skb->protocol = htons(ETH_P_IPV6);
		IP6CB(skb)->iif = d->ifindex;
	}
	skb_set_transport_header(skb, skb->len);
	uh = skb_put_zero(skb, sizeof(*uh));
	uh->source = htons(d->from.port);
	uh->dest = htons(h->local.port);
	uh->len = htons(sizeof(*uh) + d->len);
	skb_put_data(skb, d + 1, d->len);
	/* queued datagrams start at their payload, their checksum checked */
	__skb_pull(skb, skb_transport_offset(skb) + sizeof(*uh));
	skb->ip_summed = CHECKSUM_UNNECESSARY;
	skb->mark = d->mark;
	if (d->tstamp)
		skb->tstamp = ns_to_ktime(d->tstamp);
	/* each datagram counts the drops before it, as SO_RXQ_OVFL tells */
	atomic_set(&sk->sk_drops, d->dropcount);
	local_bh_disable();
	ret = __udp_enqueue_schedule_skb(sk, skb);
	local_bh_enable();
	if (ret) {
		kfree_skb(skb);
		return ckpt_inet_fail(ctx, h, ret, "cannot queue a datagram of %u bytes again",
				      d->len);
	}
	return 0;
}

static int restore_udp(struct ckpt_ctx *ctx, struct socket *sock, struct ckpt_hdr_inet *h)
{
	struct sockaddr_storage ss;
	int ret, len;
	u32 i;

	ret = restore_inet_unconnected(ctx, sock, h);
	for (i = 0; !ret && i < h->nr_dgrams; i++)
		ret = restore_dgram(ctx, sock->sk, h);
	if (ret)
		return ret;
	atomic_set(&sock->sk->sk_drops, h->drops);
	if (h->state != CKPT_INET_CONNECTED)
		return 0;
	len = ckpt_inet_sockaddr(h->family, &h->remote, &ss);
	ret = kernel_connect(sock, (struct sockaddr *)&ss, len, 0);
	if (ret)
		return ckpt_inet_fail(ctx, h, ret, "cannot connect again");
	return 0;
}

/* The receive queue, in repair mode, in pieces the kernel can allocate */
static int restore_tcp_recvq(struct ckpt_ctx *ctx, struct socket *sock,
			     struct ckpt_hdr_inet *h)
{
	u32 total = h->tcp.recv_len + h->tcp.send_len, off = 0;
	struct sock *sk = sock->sk;
	int rcvbuf = READ_ONCE(sk->sk_rcvbuf), ret = 0;
	struct ckpt_hdr_data *d;

	/* it all fit once: let the receive buffer not be what stops it now */
	WRITE_ONCE(sk->sk_rcvbuf, max_t(int, rcvbuf, min_t(u32, INT_MAX / 2, 2 * h->tcp.recv_len)));
	while (!ret && off < h->tcp.recv_len) {
		struct msghdr msg = {};
		struct kvec vec;
		int n;

		d = restore_next_data(ctx, h->objref, total);
		if (IS_ERR_OR_NULL(d) || d->offset != off || d->offset + d->len > h->tcp.recv_len) {
			ret = IS_ERR(d) ? PTR_ERR(d) :
			      ckpt_inet_fail(ctx, h, -EINVAL, "its receive queue is damaged");
			break;
		}
		for (n = 0; !ret && n < d->len; ) {
			vec.iov_base = (char *)(d + 1) + n;
			vec.iov_len = d->len - n;
			ret = kernel_sendmsg(sock, &msg, &vec, 1, vec.iov_len);
			if (ret > 0) {
				n += ret;
				ret = 0;
			} else {
				ckpt_inet_fail(ctx, h, ret ?: -EIO,
					       "cannot queue its received bytes again");
				ret = ret ?: -EIO;
			}
		}
		off += d->len;
	}
	WRITE_ONCE(sk->sk_rcvbuf, rcvbuf);
	return ret;
}

/* The send queue's DATA objects, checked now and sent once the connection is live */
static int restore_tcp_sendq(struct ckpt_ctx *ctx, struct ckpt_rinet *rs)
{
	struct ckpt_hdr_inet *h = rs->h;
	u32 total = h->tcp.recv_len + h->tcp.send_len, off = h->tcp.recv_len;
	struct ckpt_hdr_data *d;

	rs->send_first = ctx->cur;
	while (off < total) {
		d = restore_next_data(ctx, h->objref, total);
		if (IS_ERR(d))
			return PTR_ERR(d);
		if (!d || d->offset != off)
			return ckpt_inet_fail(ctx, h, -EINVAL, "its send queue is damaged");
		off += d->len;
		rs->nr_send++;
	}
	return 0;
}

static int restore_tcp_setint(struct ckpt_ctx *ctx, struct socket *sock,
			      struct ckpt_hdr_inet *h, int name, const char *what, int val)
{
	return restore_inet_setopt(ctx, sock, h, SOL_TCP, name, what, &val, sizeof(val));
}

/* TCP_REPAIR_OPTIONS: what the handshake agreed on */
static int restore_tcp_agreed(struct ckpt_ctx *ctx, struct socket *sock,
			      struct ckpt_hdr_inet *h)
{
	struct tcp_repair_opt opts[4];
	unsigned int n = 0;

	if (h->tcp.options & CKPT_TCPOPT_SACK)
		opts[n++] = (struct tcp_repair_opt){ TCPOPT_SACK_PERM, 0 };
	if (h->tcp.options & CKPT_TCPOPT_WSCALE)
		opts[n++] = (struct tcp_repair_opt){ TCPOPT_WINDOW,
						     h->tcp.snd_wscale | h->tcp.rcv_wscale << 16 };
	if (h->tcp.options & CKPT_TCPOPT_TIMESTAMP)
		opts[n++] = (struct tcp_repair_opt){ TCPOPT_TIMESTAMP, 0 };
	opts[n++] = (struct tcp_repair_opt){ TCPOPT_MSS, h->tcp.mss_clamp };
	return restore_inet_setopt(ctx, sock, h, SOL_TCP, TCP_REPAIR_OPTIONS,
				   "TCP_REPAIR_OPTIONS", opts, n * sizeof(opts[0]));
}

/* An established connection, rebuilt in repair mode; it goes live in restore_inet_live() */
static int restore_tcp_established(struct ckpt_ctx *ctx, struct ckpt_rinet *rs)
{
	struct ckpt_hdr_inet *h = rs->h;
	struct socket *sock = rs->sock;
	struct tcp_repair_window w = {
		.snd_wl1 = h->tcp.snd_wl1,
		.snd_wnd = h->tcp.snd_wnd,
		.max_window = h->tcp.max_window,
		.rcv_wnd = h->tcp.rcv_wnd,
		.rcv_wup = h->tcp.rcv_wup,
	};
	struct sockaddr_storage ss;
	int ret, len;

	ret = ckpt_tcp_repair(sock, TCP_REPAIR_ON);
	if (ret)
		return ckpt_inet_fail(ctx, h, ret,
				      "cannot rebuild it in repair mode (TCP_REPAIR needs CAP_NET_ADMIN)");
	/* until it goes live: a failed restart closes it without a word to the peer */
	list_add_tail(&rs->list, &ctx->tcp_repair);
	ret = restore_inet_bind(ctx, sock, h);
	if (!ret)
		ret = restore_tcp_setint(ctx, sock, h, TCP_REPAIR_QUEUE, "TCP_REPAIR_QUEUE",
					 TCP_RECV_QUEUE);
	if (!ret)
		ret = restore_tcp_setint(ctx, sock, h, TCP_QUEUE_SEQ, "TCP_QUEUE_SEQ",
					 h->tcp.rcv_nxt - h->tcp.recv_len);
	/* all of the send queue goes again once live: from its first byte not acknowledged */
	if (!ret)
		ret = restore_tcp_setint(ctx, sock, h, TCP_REPAIR_QUEUE, "TCP_REPAIR_QUEUE",
					 TCP_SEND_QUEUE);
	if (!ret)
		ret = restore_tcp_setint(ctx, sock, h, TCP_QUEUE_SEQ, "TCP_QUEUE_SEQ",
					 h->tcp.snd_una);
	/* connect() sizes segments from the MSS clamp: the agreed one, as a user MSS for now */
	if (!ret)
		ret = restore_tcp_setint(ctx, sock, h, TCP_MAXSEG, "TCP_MAXSEG",
					 min_t(u32, h->tcp.mss_clamp, MAX_TCP_WINDOW));
	if (!ret) {
		len = ckpt_inet_sockaddr(h->family, &h->remote, &ss);
		ret = kernel_connect(sock, (struct sockaddr *)&ss, len, 0);
		if (ret)
			ckpt_inet_fail(ctx, h, ret, "cannot connect again in repair mode");
	}
	if (ret)
		return ret;
	lock_sock(sock->sk);
	tcp_sk(sock->sk)->rx_opt.user_mss = h->tcp.user_mss;
	release_sock(sock->sk);
	ret = restore_tcp_agreed(ctx, sock, h);
	if (!ret && (h->tcp.options & CKPT_TCPOPT_TIMESTAMP))
		ret = restore_tcp_setint(ctx, sock, h, TCP_TIMESTAMP, "TCP_TIMESTAMP",
					 h->tcp.tsval);
	if (!ret)
		ret = restore_tcp_setint(ctx, sock, h, TCP_REPAIR_QUEUE, "TCP_REPAIR_QUEUE",
					 TCP_RECV_QUEUE);
	if (!ret)
		ret = restore_tcp_recvq(ctx, sock, h);
	if (!ret)
		ret = restore_inet_setopt(ctx, sock, h, SOL_TCP, TCP_REPAIR_WINDOW,
					  "TCP_REPAIR_WINDOW", &w, sizeof(w));
	if (!ret)
		ret = restore_tcp_setint(ctx, sock, h, TCP_REPAIR_QUEUE, "TCP_REPAIR_QUEUE",
					 TCP_NO_QUEUE);
	if (!ret)
		ret = restore_tcp_sendq(ctx, rs);
	if (!ret)
		restore_inet_userlocks(sock->sk, h);
	return ret;
}

int restore_inet_obj(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_inet *h;
	struct ckpt_rinet *rs;
	struct socket *sock;
	struct file *file;
	int ret;

	BUILD_BUG_ON(sizeof(*h) % 8 || sizeof(struct ckpt_hdr_dgram) % 8 ||
		     sizeof(struct ckpt_sockopt) % 8);
	h = ckpt_next(ctx, CKPT_HDR_INET, sizeof(*h));
	if (IS_ERR(h))
		return PTR_ERR(h);
	if (restore_inet_check(ctx, h))
		return ckpt_err(ctx, -EINVAL, "bad INET object");
	if (ckpt_obj_find_any(ctx, h->objref))
		return ckpt_err(ctx, -EINVAL, "socket %d defined twice", h->objref);
	rs = kzalloc(sizeof(*rs), GFP_KERNEL);
	if (!rs)
		return -ENOMEM;
	INIT_LIST_HEAD(&rs->list);
	rs->h = h;
	ret = sock_create(h->family, h->type, h->type == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP,
			  &sock);
	if (ret) {
		kfree(rs);
		return ckpt_inet_fail(ctx, h, ret, "cannot create the socket");
	}
	file = sock_alloc_file(sock, O_RDWR, NULL);
	if (IS_ERR(file)) {
		kfree(rs);
		return PTR_ERR(file);
	}
	rs->sock = sock;
	ret = ckpt_obj_add_file(ctx, h->objref, file);
	if (ret) {
		fput(file);
		kfree(rs);
		return ret;
	}
	ckpt_obj_find(ctx, h->objref)->priv = rs;

	ret = restore_inet_opts(ctx, sock, h, false);
	if (!ret)
		ret = restore_inet_buffers(ctx, sock, h);
	if (ret)
		return ret;
	if (h->state == CKPT_INET_ESTABLISHED)
		return restore_tcp_established(ctx, rs);
	ret = h->type == SOCK_DGRAM ? restore_udp(ctx, sock, h) :
				      restore_inet_unconnected(ctx, sock, h);
	if (!ret)
		restore_inet_last(sock->sk, h);
	return ret;
}

/* Send a live connection's send queue again, all of it */
static int restore_tcp_resend(struct ckpt_ctx *ctx, struct ckpt_rinet *rs)
{
	struct ckpt_obj *obj = rs->send_first;
	struct sock *sk = rs->sock->sk;
	int sndbuf = READ_ONCE(sk->sk_sndbuf), ret = 0;
	u32 i, want;

	/* it all fit once: let the send buffer not be what stops it now */
	want = min_t(u32, INT_MAX / 2, 2 * rs->h->tcp.send_len);
	WRITE_ONCE(sk->sk_sndbuf, max_t(int, sndbuf, want));
	for (i = 0; !ret && i < rs->nr_send; i++, obj = list_next_entry(obj, list)) {
		struct ckpt_hdr_data *d = (struct ckpt_hdr_data *)obj->h;
		u32 done = 0;

		while (!ret && done < d->len) {
			struct msghdr msg = { .msg_flags = MSG_DONTWAIT | MSG_NOSIGNAL };
			struct kvec vec = {
				.iov_base = (char *)(d + 1) + done,
				.iov_len = d->len - done,
			};

			ret = kernel_sendmsg(rs->sock, &msg, &vec, 1, vec.iov_len);
			if (ret > 0) {
				done += ret;
				ret = 0;
			} else {
				ret = ret ?: -EIO;
			}
		}
	}
	WRITE_ONCE(sk->sk_sndbuf, sndbuf);
	if (ret)
		ckpt_inet_fail(ctx, rs->h, ret, "cannot send its send queue again");
	return ret;
}

/*
 * The whole tree is rebuilt: the connections leave repair mode (each sends
 * a window probe) and send their send queue again, with the restarter's
 * rights.  A failure here kills the tree.
 */
int restore_inet_live(struct ckpt_ctx *ctx)
{
	const struct cred *old = override_creds(ctx->cred);
	struct ckpt_rinet *rs, *tmp;
	int ret = 0;

	list_for_each_entry_safe(rs, tmp, &ctx->tcp_repair, list) {
		struct ckpt_hdr_inet *h = rs->h;
		int reuse = !!(h->flags & CKPT_INET_REUSEADDR);

		list_del_init(&rs->list);
		if (ret)
			continue;
		ret = ckpt_tcp_repair(rs->sock, TCP_REPAIR_OFF);
		if (ret) {
			ckpt_inet_fail(ctx, h, ret, "cannot take it out of repair mode");
			continue;
		}
		/* leaving repair mode cleared SO_REUSEADDR */
		if (reuse)
			ret = restore_inet_setopt(ctx, rs->sock, h, SOL_SOCKET, SO_REUSEADDR,
						  "SO_REUSEADDR", &reuse, sizeof(reuse));
		if (!ret)
			ret = restore_tcp_resend(ctx, rs);
		if (!ret)
			ret = restore_inet_opts(ctx, rs->sock, h, true);
		if (!ret)
			restore_inet_last(rs->sock->sk, h);
	}
	revert_creds(old);
	return ret;
}

const struct ckpt_file_ops ckpt_inet_ops = {
	.kind = CKPT_FILE_INET,
	.name = "inet socket",
	.match = ckpt_inet_match,
	.checkpoint = checkpoint_inet_file,
	.restore = restore_state_file,
};
