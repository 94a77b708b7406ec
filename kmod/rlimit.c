// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: resource limits.
 *
 * Restart sets the image's limits as setrlimit(2) would let the caller,
 * with its checks: a soft limit above the hard one is invalid, a hard
 * limit above the caller's needs CAP_SYS_RESOURCE, RLIMIT_NOFILE may not
 * exceed fs.nr_open, and the LSMs have their say
 * (security_task_setrlimit()).  A finite RLIMIT_CPU is refused at
 * checkpoint time: its limit lives in a CPU timer the engine cannot re-arm.
 */

#include <linux/capability.h>
#include <linux/fs.h>
#include <linux/resource.h>
#include <linux/sched/signal.h>
#include <linux/security.h>

#include "ckpt.h"

static const char * const ckpt_rlimit_names[RLIM_NLIMITS] = {
	"CPU", "FSIZE", "DATA", "STACK", "CORE", "RSS", "NPROC", "NOFILE",
	"MEMLOCK", "AS", "LOCKS", "SIGPENDING", "MSGQUEUE", "NICE", "RTPRIO",
	"RTTIME",
};

int checkpoint_rlimits(struct ckpt_ctx *ctx, struct task_struct *t)
{
	struct ckpt_hdr_rlimits h = {};
	int i;

	BUILD_BUG_ON(ARRAY_SIZE(h.rlim) != RLIM_NLIMITS);
	h.nr = RLIM_NLIMITS;
	task_lock(t->group_leader);
	for (i = 0; i < RLIM_NLIMITS; i++) {
		h.rlim[i].cur = t->signal->rlim[i].rlim_cur;
		h.rlim[i].max = t->signal->rlim[i].rlim_max;
	}
	task_unlock(t->group_leader);
	if (h.rlim[RLIMIT_CPU].cur != RLIM_INFINITY)
		return ckpt_err(ctx, -EOPNOTSUPP,
				"pid %d: a finite RLIMIT_CPU (%llu s) is not supported",
				task_pid_vnr(t), h.rlim[RLIMIT_CPU].cur);
	return ckpt_write_obj(ctx, &h, CKPT_HDR_RLIMITS, sizeof(h));
}

int restore_prepare_rlimits(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_rlimits *h;
	int i;

	h = ckpt_next(ctx, CKPT_HDR_RLIMITS, sizeof(*h));
	if (IS_ERR(h))
		return PTR_ERR(h);
	if (h->h.len != sizeof(*h) || h->nr != RLIM_NLIMITS || h->pad)
		return ckpt_err(ctx, -EINVAL, "bad RLIMITS object");
	for (i = 0; i < RLIM_NLIMITS; i++) {
		struct ckpt_rlimit *r = &h->rlim[i];
		struct rlimit lim = { .rlim_cur = r->cur, .rlim_max = r->max };
		int ret;

		if (r->cur > r->max)
			return ckpt_err(ctx, -EINVAL, "RLIMIT_%s: soft limit above the hard one",
					ckpt_rlimit_names[i]);
		if (i == RLIMIT_NOFILE && r->max > READ_ONCE(sysctl_nr_open))
			return ckpt_err(ctx, -EPERM,
					"RLIMIT_NOFILE: the task's hard limit %llu is above fs.nr_open",
					r->max);
		if (r->max > rlimit_max(i) && !capable(CAP_SYS_RESOURCE))
			return ckpt_err(ctx, -EPERM,
					"RLIMIT_%s: the task's hard limit %llu is above the caller's",
					ckpt_rlimit_names[i], r->max);
		ret = security_task_setrlimit(current->group_leader, i, &lim);
		if (ret)
			return ckpt_err(ctx, ret,
					"RLIMIT_%s: an LSM refused it",
					ckpt_rlimit_names[i]);
	}
	if (h->rlim[RLIMIT_CPU].cur != RLIM_INFINITY)
		return ckpt_err(ctx, -EINVAL, "RLIMIT_CPU: a finite limit is not supported");
	ctx->rlimits = h;
	return 0;
}

void restore_rlimits(struct ckpt_ctx *ctx)
{
	struct rlimit *rlim = current->signal->rlim;
	int i;

	task_lock(current->group_leader);
	for (i = 0; i < RLIM_NLIMITS; i++) {
		/* the CPU limit stays as it is: its timer is not ours to arm */
		if (i == RLIMIT_CPU)
			continue;
		rlim[i].rlim_cur = ctx->rlimits->rlim[i].cur;
		rlim[i].rlim_max = ctx->rlimits->rlim[i].max;
	}
	task_unlock(current->group_leader);
}
