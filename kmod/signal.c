// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: signal handlers and the blocked mask.
 *
 * Pending signals are not saved yet: a signal queued to a frozen task is
 * lost across checkpoint/restart.
 */

#include <linux/sched/signal.h>
#include <linux/signal.h>
#include <linux/slab.h>
#include <linux/spinlock.h>

#include "ckpt.h"

int checkpoint_signal(struct ckpt_ctx *ctx, struct task_struct *t)
{
	struct sighand_struct *sighand;
	struct ckpt_hdr_signal *h;
	unsigned long flags;
	int i, ret;

	BUILD_BUG_ON(ARRAY_SIZE(h->action) != _NSIG);
	h = kzalloc(sizeof(*h), GFP_KERNEL);
	if (!h)
		return -ENOMEM;
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
		kfree(h);
		return ckpt_err(ctx, -ESRCH, "task is exiting");
	}
	h->blocked = t->blocked.sig[0];
	for (i = 0; i < _NSIG; i++) {
		struct k_sigaction *ka = &sighand->action[i];

		h->action[i].handler = (unsigned long)ka->sa.sa_handler;
		h->action[i].flags = ka->sa.sa_flags;
		h->action[i].restorer = (unsigned long)ka->sa.sa_restorer;
		h->action[i].mask = ka->sa.sa_mask.sig[0];
	}
	spin_unlock_irqrestore(&sighand->siglock, flags);
	rcu_read_unlock();
	ret = ckpt_write_obj(ctx, h, CKPT_HDR_SIGNAL, sizeof(*h));
	kfree(h);
	return ret;
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
	return 0;
}

void restore_signal(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_signal *h = ctx->signal;
	sigset_t blocked;
	int i;

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
}
