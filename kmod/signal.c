// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: signal handlers, the blocked mask, pending signals.
 *
 * Pending signals are saved with their siginfo, private and process-wide
 * queues alike, and queued again to the restarted task; a signal pending
 * without a queue entry (the kernel could not allocate one) comes back
 * with SI_KERNEL.  Timers are in timer.c.
 */

#include <linux/sched/signal.h>
#include <linux/signal.h>
#include <linux/slab.h>
#include <linux/spinlock.h>

#include "ckpt.h"

#define CKPT_SIGQUEUE_MAX	4096

struct ckpt_pending {
	struct ckpt_hdr_sigpending h;
	struct ckpt_sigqueue q[CKPT_SIGQUEUE_MAX];
};

/* Adds @pending's queue, then its signals that have no queue entry */
static int ckpt_collect_pending(struct ckpt_pending *p, struct sigpending *pending,
				bool shared)
{
	struct sigqueue *q;
	sigset_t queued;
	int sig;

	sigemptyset(&queued);
	list_for_each_entry(q, &pending->list, list) {
		if (p->h.nr == CKPT_SIGQUEUE_MAX)
			return -E2BIG;
		p->q[p->h.nr].shared = shared;
		memcpy(p->q[p->h.nr++].info, &q->info, sizeof(q->info));
		sigaddset(&queued, q->info.si_signo);
	}
	for (sig = 1; sig <= _NSIG; sig++) {
		kernel_siginfo_t info = {};

		if (!sigismember(&pending->signal, sig) || sigismember(&queued, sig))
			continue;
		if (p->h.nr == CKPT_SIGQUEUE_MAX)
			return -E2BIG;
		info.si_signo = sig;
		info.si_code = SI_KERNEL;
		p->q[p->h.nr].shared = shared;
		memcpy(p->q[p->h.nr++].info, &info, sizeof(info));
	}
	return 0;
}

int checkpoint_signal(struct ckpt_ctx *ctx, struct task_struct *t)
{
	struct sighand_struct *sighand;
	struct ckpt_pending *pend;
	struct ckpt_hdr_signal *h;
	unsigned long flags;
	int i, ret;

	BUILD_BUG_ON(ARRAY_SIZE(h->action) != _NSIG);
	BUILD_BUG_ON(sizeof(kernel_siginfo_t) != sizeof(pend->q[0].info));
	h = kzalloc(sizeof(*h), GFP_KERNEL);
	pend = kvzalloc(sizeof(*pend), GFP_KERNEL);
	if (!h || !pend) {
		ret = -ENOMEM;
		goto out;
	}
	/* lock_task_sighand() is not exported; this is what it does */
	rcu_read_lock();
	sighand = rcu_dereference(t->sighand);
	if (sighand) {
		spin_lock_irqsave(&sighand->siglock, flags);
		if (sighand != rcu_access_pointer(t->sighand)) {
			spin_unlock_irqrestore(&sighand->siglock, flags);
			sighand = NULL;
		}
	}
	if (!sighand) {
		rcu_read_unlock();
		ret = ckpt_err(ctx, -ESRCH, "task is exiting");
		goto out;
	}
	h->blocked = t->blocked.sig[0];
	for (i = 0; i < _NSIG; i++) {
		struct k_sigaction *ka = &sighand->action[i];

		h->action[i].handler = (unsigned long)ka->sa.sa_handler;
		h->action[i].flags = ka->sa.sa_flags;
		h->action[i].restorer = (unsigned long)ka->sa.sa_restorer;
		h->action[i].mask = ka->sa.sa_mask.sig[0];
	}
	ret = ckpt_collect_pending(pend, &t->pending, false);
	if (!ret)
		ret = ckpt_collect_pending(pend, &t->signal->shared_pending, true);
	spin_unlock_irqrestore(&sighand->siglock, flags);
	rcu_read_unlock();
	if (ret == -E2BIG)
		ret = ckpt_err(ctx, ret, "pid %d: more than %d pending signals",
			       task_pid_vnr(t), CKPT_SIGQUEUE_MAX);
	if (!ret)
		ret = ckpt_write_obj(ctx, h, CKPT_HDR_SIGNAL, sizeof(*h));
	if (!ret)
		ret = ckpt_write_obj(ctx, pend, CKPT_HDR_SIGPENDING,
				     sizeof(pend->h) + pend->h.nr * sizeof(pend->q[0]));
out:
	kvfree(pend);
	kfree(h);
	return ret;
}

static int restore_prepare_sigpending(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_sigpending *h;
	struct ckpt_sigqueue *q;
	u32 i;

	h = ckpt_next(ctx, CKPT_HDR_SIGPENDING, sizeof(*h));
	if (IS_ERR(h))
		return PTR_ERR(h);
	if (h->nr > CKPT_SIGQUEUE_MAX || h->h.len != sizeof(*h) + h->nr * sizeof(*q))
		return ckpt_err(ctx, -EINVAL, "bad SIGPENDING object");
	q = (struct ckpt_sigqueue *)(h + 1);
	for (i = 0; i < h->nr; i++) {
		kernel_siginfo_t *info = (kernel_siginfo_t *)q[i].info;

		if (!valid_signal(info->si_signo) || !info->si_signo ||
		    info->si_signo == SIGKILL || q[i].shared > 1)
			return ckpt_err(ctx, -EINVAL, "SIGPENDING: bad signal %d", info->si_signo);
	}
	ctx->sigpending = h;
	return 0;
}

int restore_prepare_signal(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_signal *h;
	int i;

	h = ckpt_next(ctx, CKPT_HDR_SIGNAL, sizeof(*h));
	if (IS_ERR(h))
		return PTR_ERR(h);
	if (h->h.len != sizeof(*h))
		return ckpt_err(ctx, -EINVAL, "bad SIGNAL object");
	for (i = 0; i < _NSIG; i++) {
		struct ckpt_sigaction *a = &h->action[i];
		bool special = a->handler == (unsigned long)SIG_DFL ||
			       a->handler == (unsigned long)SIG_IGN;

		if ((!special && a->handler >= TASK_SIZE_MAX) ||
		    a->restorer >= TASK_SIZE_MAX ||
		    ((i + 1 == SIGKILL || i + 1 == SIGSTOP) &&
		     a->handler != (unsigned long)SIG_DFL))
			return ckpt_err(ctx, -EINVAL, "bad handler for signal %d", i + 1);
	}
	ctx->signal = h;
	return restore_prepare_sigpending(ctx);
}

void restore_signal(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_signal *h = ctx->signal;
	struct ckpt_sigqueue *q;
	sigset_t blocked;
	bool fatal;
	u32 i;

	spin_lock_irq(&current->sighand->siglock);
	for (i = 0; i < _NSIG; i++) {
		struct k_sigaction *ka = &current->sighand->action[i];

		ka->sa.sa_handler = (__sighandler_t)(unsigned long)h->action[i].handler;
		ka->sa.sa_flags = h->action[i].flags & UAPI_SA_FLAGS;
		ka->sa.sa_restorer = (__sigrestore_t)(unsigned long)h->action[i].restorer;
		ka->sa.sa_mask.sig[0] = h->action[i].mask &
					~(sigmask(SIGKILL) | sigmask(SIGSTOP));
	}
	spin_unlock_irq(&current->sighand->siglock);

	blocked.sig[0] = h->blocked & ~(sigmask(SIGKILL) | sigmask(SIGSTOP));
	sigprocmask(SIG_SETMASK, &blocked, NULL);

	/*
	 * Queued again in their order, to the restarted task itself, which
	 * is what rt_tgsigqueueinfo(2) lets any task do to itself.  A
	 * process-wide signal comes back as the (only) thread's own.
	 */
	/* what the placeholder got (a SIGCHLD from a recreated zombie) is not the task's */
	fatal = fatal_signal_pending(current);
	flush_signals(current);
	if (fatal)
		force_sig(SIGKILL);	/* but a kill that came meanwhile still kills */
	q = (struct ckpt_sigqueue *)(ctx->sigpending + 1);
	for (i = 0; i < ctx->sigpending->nr; i++) {
		kernel_siginfo_t info;

		memcpy(&info, q[i].info, sizeof(info));
		send_sig_info(info.si_signo, &info, current);
	}
}
