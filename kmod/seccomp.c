// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: seccomp filters.
 *
 * A filtered task is saved with the classic BPF program of each of its
 * filters, first installed first, as PTRACE_SECCOMP_GET_FILTER reads them
 * (kernel patch 0009: seccomp_checkpoint_filter(), which also needs
 * CAP_SYS_ADMIN).  Restart installs them again in the same order with
 * seccomp_restart_filter(), which applies seccomp(2)'s own checks with
 * the restarter's rights: no_new_privs (restored before, with the task's
 * other prctl state: process.c) or CAP_SYS_ADMIN, seccomp's program check, the limit
 * on the total length.  A task never comes back under fewer filters, nor
 * under one its restarter could not have installed.
 *
 * Refused by name: seccomp strict mode, and a filter whose user
 * notification listener is still open (the listener is a file in some
 * other task, which would wait forever).
 */

#include <linux/filter.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <linux/slab.h>

#include "ckpt.h"

/* Whatever the program lengths, seccomp refuses more than this per task */
#define CKPT_SECCOMP_INSNS_MAX	((1 << 18) / sizeof(struct sock_filter))
/* seccomp(2) counts 4 instructions for each filter on top of its length */
#define CKPT_SECCOMP_PENALTY	4

#ifdef CONFIG_SECCOMP_FILTER
/* Append filter @n of @t to the object in *@bufp (@len bytes so far) */
static int checkpoint_seccomp_filter(struct ckpt_ctx *ctx, struct task_struct *t,
				     unsigned long n, void **bufp, size_t *len)
{
	struct ckpt_seccomp_filter *f;
	struct sock_fprog_kern prog;
	unsigned int flags;
	size_t size;
	void *buf;
	long ret;

	ret = seccomp_checkpoint_filter(t, n, &prog, &flags);
	if (ret == -EACCES)
		return ckpt_err(ctx, -EPERM,
				"pid %d: reading its seccomp filters needs CAP_SYS_ADMIN (as PTRACE_SECCOMP_GET_FILTER does)",
				task_pid_vnr(t));
	if (ret == -EMEDIUMTYPE)
		return ckpt_err(ctx, -EOPNOTSUPP, "pid %d: an eBPF seccomp filter is not supported",
				task_pid_vnr(t));
	if (ret)
		return ret == -ENOENT ? ret :
		       ckpt_err(ctx, ret,
				"pid %d: cannot read seccomp filter %lu",
				task_pid_vnr(t), n);
	if (flags & SECCOMP_FILTER_FLAG_NEW_LISTENER) {
		ret = ckpt_err(ctx, -EOPNOTSUPP,
			       "pid %d: a seccomp filter with a user notification listener is not supported",
			       task_pid_vnr(t));
		goto out;
	}
	size = sizeof(*f) + prog.len * sizeof(struct sock_filter);
	buf = krealloc(*bufp, *len + size, GFP_KERNEL);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	f = buf + *len;
	f->flags = flags & SECCOMP_FILTER_FLAG_LOG;
	f->len = prog.len;
	memcpy(f + 1, prog.filter, prog.len * sizeof(struct sock_filter));
	*bufp = buf;
	*len += size;
out:
	kfree(prog.filter);
	return ret;
}
#endif

int checkpoint_seccomp(struct ckpt_ctx *ctx, struct task_struct *t)
{
	struct ckpt_hdr_seccomp *h;
	size_t len = sizeof(*h);
	int ret = 0;

	h = kzalloc(len, GFP_KERNEL);
	if (!h)
		return -ENOMEM;
#ifdef CONFIG_SECCOMP
	if (t->seccomp.mode == SECCOMP_MODE_STRICT)
		ret = ckpt_err(ctx, -EOPNOTSUPP, "pid %d: seccomp strict mode is not supported",
			       task_pid_vnr(t));
#endif
#ifdef CONFIG_SECCOMP_FILTER
	while (!ret && t->seccomp.mode == SECCOMP_MODE_FILTER) {
		void *buf = h;

		ret = checkpoint_seccomp_filter(ctx, t, h->nr_filters, &buf, &len);
		h = buf;
		if (ret == -ENOENT) {
			ret = 0;
			break;
		}
		if (!ret)
			h->nr_filters++;
	}
#endif
	/* a filter's header and instructions are 8 bytes each: no padding */
	BUILD_BUG_ON(sizeof(struct ckpt_seccomp_filter) % 8 || sizeof(struct sock_filter) != 8);
	if (!ret)
		ret = ckpt_write_obj(ctx, h, CKPT_HDR_SECCOMP, len);
	kfree(h);
	return ret;
}

/* Read and check the SECCOMP object; nothing is installed yet */
int restore_prepare_seccomp(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_seccomp *h;
	u32 i, off = sizeof(*h);
	u64 insns = 0;

	h = ckpt_next(ctx, CKPT_HDR_SECCOMP, sizeof(*h));
	if (IS_ERR(h))
		return PTR_ERR(h);
	if (h->pad || h->nr_filters > CKPT_SECCOMP_INSNS_MAX / (1 + CKPT_SECCOMP_PENALTY))
		return ckpt_err(ctx, -EINVAL, "bad SECCOMP object");
	for (i = 0; i < h->nr_filters; i++) {
		struct ckpt_seccomp_filter *f = (void *)h + off;

		if (h->h.len - off < sizeof(*f) || !f->len || f->len > BPF_MAXINSNS ||
		    (f->flags & ~SECCOMP_FILTER_FLAG_LOG) ||
		    h->h.len - off - sizeof(*f) < f->len * sizeof(struct sock_filter))
			return ckpt_err(ctx, -EINVAL, "SECCOMP object: bad filter %u", i);
		insns += f->len + CKPT_SECCOMP_PENALTY;
		off += sizeof(*f) + f->len * sizeof(struct sock_filter);
	}
	if (h->h.len != off)
		return ckpt_err(ctx, -EINVAL, "SECCOMP object: %u bytes for %u filters",
				h->h.len, h->nr_filters);
	if (insns > CKPT_SECCOMP_INSNS_MAX)
		return ckpt_err(ctx, -EINVAL,
				"SECCOMP object: %llu instructions in all, seccomp allows %zu",
				insns, CKPT_SECCOMP_INSNS_MAX);
#ifndef CONFIG_SECCOMP_FILTER
	if (h->nr_filters)
		return ckpt_err(ctx, -EOPNOTSUPP,
				"the task ran under seccomp filters, which this kernel lacks");
#endif
	ctx->seccomp = h;
	return 0;
}

#ifdef CONFIG_SECCOMP_FILTER
static int restore_seccomp_filters(struct ckpt_ctx *ctx, struct ckpt_hdr_seccomp *h)
{
	u32 i, off = sizeof(*h);

	for (i = 0; i < h->nr_filters; i++) {
		struct ckpt_seccomp_filter *f = (void *)h + off;
		struct sock_fprog_kern prog = {
			.len = f->len,
			.filter = (struct sock_filter *)(f + 1),
		};
		long ret = seccomp_restart_filter(f->flags, &prog);

		if (ret == -EACCES)
			return ckpt_err(ctx, -EPERM,
					"seccomp filter %u: installing it needs no_new_privs or CAP_SYS_ADMIN",
					i);
		if (ret)
			return ckpt_err(ctx, ret, "seccomp filter %u was refused", i);
		off += sizeof(*f) + f->len * sizeof(struct sock_filter);
	}
	return 0;
}
#else
static int restore_seccomp_filters(struct ckpt_ctx *ctx, struct ckpt_hdr_seccomp *h)
{
	return 0;	/* restore_prepare_seccomp() refused any */
}
#endif

/*
 * After the point of no return, after no_new_privs (restore_process()),
 * before the task takes its own credentials: seccomp(2)'s checks see the
 * restarter's rights.
 */
int restore_seccomp(struct ckpt_ctx *ctx)
{
	return restore_seccomp_filters(ctx, ctx->seccomp);
}
