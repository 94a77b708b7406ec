// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: signal handlers, the blocked mask, pending signals.
 *
 * The handlers are saved once per sighand_struct (SIGHAND), each thread's
 * blocked mask and alternate signal stack with the thread (SIGNAL).
 * Pending signals are saved with their siginfo, each thread's private
 * queue with the thread and the process-wide queue with the first thread
 * of its group, and queued again the same way; a signal pending without
 * a queue entry (the kernel could not allocate one) comes back with
 * SI_KERNEL.  Timers are in timer.c.
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

/* lock_task_sighand() is not exported; this is what it does */
static struct sighand_struct *ckpt_lock_sighand(struct task_struct *t, unsigned long *flags)
{
	struct sighand_struct *sighand;

	rcu_read_lock();
	for (;;) {
		sighand = rcu_dereference(t->sighand);
		if (!sighand)
			break;
		spin_lock_irqsave(&sighand->siglock, *flags);
		if (likely(sighand == rcu_access_pointer(t->sighand)))
			break;
		spin_unlock_irqrestore(&sighand->siglock, *flags);
	}
	rcu_read_unlock();
	return sighand;
}

/* The handlers, once per sighand_struct */
int checkpoint_sighand(struct ckpt_ctx *ctx, struct task_struct *t)
{
	struct sighand_struct *sighand;
	struct ckpt_hdr_sighand *h;
	unsigned long flags;
	int i, ret;

	BUILD_BUG_ON(ARRAY_SIZE(h->action) != _NSIG);
	h = kzalloc(sizeof(*h), GFP_KERNEL);
	if (!h)
		return -ENOMEM;
	sighand = ckpt_lock_sighand(t, &flags);
	if (!sighand) {
		kfree(h);
		return ckpt_err(ctx, -ESRCH, "pid %d is exiting", task_pid_vnr(t));
	}
	for (i = 0; i < _NSIG; i++) {
		struct k_sigaction *ka = &sighand->action[i];

		h->action[i].handler = (unsigned long)ka->sa.sa_handler;
		h->action[i].flags = ka->sa.sa_flags;
		h->action[i].restorer = (unsigned long)ka->sa.sa_restorer;
		h->action[i].mask = ka->sa.sa_mask.sig[0];
	}
	spin_unlock_irqrestore(&sighand->siglock, flags);
	ret = ckpt_write_obj(ctx, h, CKPT_HDR_SIGHAND, sizeof(*h));
	kfree(h);
	return ret;
}

/*
 * The mask @t runs with in user mode.  Inside sigsuspend(2), ppoll(2),
 * pselect(2) or epoll_pwait(2) the blocked mask is the call's temporary
 * one and the task's own waits in saved_sigmask; inside sigtimedwait(2),
 * in real_blocked.  The restarted call sets its temporary mask again.
 */
static u64 ckpt_user_blocked(struct task_struct *t)
{
	if (test_tsk_restore_sigmask(t))
		return t->saved_sigmask.sig[0];
	if (!sigisemptyset(&t->real_blocked))
		return t->real_blocked.sig[0];
	return t->blocked.sig[0];
}

/*
 * A thread's mask and alternate stack, its pending signals and, with
 * @group (the first thread of its thread group), the process-wide ones.
 */
int checkpoint_signal(struct ckpt_ctx *ctx, struct task_struct *t, bool group)
{
	struct sighand_struct *sighand;
	struct ckpt_pending *pend;
	struct ckpt_hdr_signal h = {};
	unsigned long flags;
	int ret = 0;

	BUILD_BUG_ON(sizeof(kernel_siginfo_t) != sizeof(pend->q[0].info));
	pend = kvzalloc(sizeof(*pend), GFP_KERNEL);
	if (!pend)
		return -ENOMEM;
	sighand = ckpt_lock_sighand(t, &flags);
	if (!sighand) {
		kvfree(pend);
		return ckpt_err(ctx, -ESRCH, "pid %d is exiting", task_pid_vnr(t));
	}
	h.blocked = ckpt_user_blocked(t);
	h.sas_ss_sp = t->sas_ss_sp;
	h.sas_ss_size = t->sas_ss_size;
	h.sas_ss_flags = t->sas_ss_flags;
	ret = ckpt_collect_pending(pend, &t->pending, false);
	if (!ret && group)
		ret = ckpt_collect_pending(pend, &t->signal->shared_pending, true);
	spin_unlock_irqrestore(&sighand->siglock, flags);
	if (ret == -E2BIG)
		ret = ckpt_err(ctx, ret, "pid %d: more than %d pending signals",
			       task_pid_vnr(t), CKPT_SIGQUEUE_MAX);
	if (!ret)
		ret = ckpt_write_obj(ctx, &h, CKPT_HDR_SIGNAL, sizeof(h));
	if (!ret)
		ret = ckpt_write_obj(ctx, pend, CKPT_HDR_SIGPENDING,
				     sizeof(pend->h) + pend->h.nr * sizeof(pend->q[0]));
	kvfree(pend);
	return ret;
}

static int restore_prepare_sigpending(struct ckpt_ctx *ctx, bool group)
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
		    info->si_signo == SIGKILL || q[i].shared > 1 || (q[i].shared && !group))
			return ckpt_err(ctx, -EINVAL, "SIGPENDING: bad signal %d", info->si_signo);
	}
	ctx->sigpending = h;
	return 0;
}

static int restore_prepare_sighand(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_sighand *h;
	int i;

	h = ckpt_next(ctx, CKPT_HDR_SIGHAND, sizeof(*h));
	if (IS_ERR(h))
		return PTR_ERR(h);
	if (h->h.len != sizeof(*h))
		return ckpt_err(ctx, -EINVAL, "bad SIGHAND object");
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
	ctx->sighand = h;
	return 0;
}

int restore_prepare_signal(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_signal *h;
	u32 mode;
	int ret;

	if (ctx->defines & BIT(CKPT_SHARE_SIGHAND)) {
		ret = restore_prepare_sighand(ctx);
		if (ret)
			return ret;
	}
	h = ckpt_next(ctx, CKPT_HDR_SIGNAL, sizeof(*h));
	if (IS_ERR(h))
		return PTR_ERR(h);
	mode = h->sas_ss_flags & ~SS_FLAG_BITS;
	if (h->h.len != sizeof(*h) ||
	    (mode != 0 && mode != SS_ONSTACK && mode != SS_DISABLE) ||
	    h->sas_ss_sp >= TASK_SIZE_MAX || h->sas_ss_size > TASK_SIZE_MAX - h->sas_ss_sp ||
	    (mode == SS_DISABLE && (h->sas_ss_sp || h->sas_ss_size)))
		return ckpt_err(ctx, -EINVAL, "bad SIGNAL object");
	ctx->signal = h;
	return restore_prepare_sigpending(ctx, ctx->defines & BIT(CKPT_SHARE_SIGNAL));
}

/*
 * Queue @info to the whole process: queued to current (which is what
 * rt_tgsigqueueinfo(2) lets a task do to itself), then moved to the
 * process-wide queue.  The private queue holds nothing else yet.
 */
static void restore_shared_signal(kernel_siginfo_t *info)
{
	struct sigpending *mine = &current->pending;
	struct sigpending *shared = &current->signal->shared_pending;
	int sig = info->si_signo;
	struct sigqueue *q, *n;

	send_sig_info(sig, info, current);
	spin_lock_irq(&current->sighand->siglock);
	list_for_each_entry_safe(q, n, &mine->list, list)
		if (q->info.si_signo == sig)
			list_move_tail(&q->list, &shared->list);
	if (sigismember(&mine->signal, sig)) {
		sigdelset(&mine->signal, sig);
		sigaddset(&shared->signal, sig);
	}
	recalc_sigpending();
	spin_unlock_irq(&current->sighand->siglock);
}

/* Drop what the placeholder thread got, but not what its thread group has */
static void restore_flush_private(void)
{
	kernel_siginfo_t info;
	enum pid_type type;
	sigset_t none;

	/* dequeue_signal() takes from the private queue, the shared one only once it is empty */
	sigemptyset(&none);
	spin_lock_irq(&current->sighand->siglock);
	while (!sigisemptyset(&current->pending.signal))
		if (!dequeue_signal(&none, &info, &type))
			break;
	spin_unlock_irq(&current->sighand->siglock);
}

void restore_signal(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_signal *h = ctx->signal;
	bool group = ctx->defines & BIT(CKPT_SHARE_SIGNAL);
	struct ckpt_sigqueue *q;
	sigset_t blocked;
	bool fatal;
	u32 i;

	spin_lock_irq(&current->sighand->siglock);
	for (i = 0; ctx->sighand && i < _NSIG; i++) {
		struct k_sigaction *ka = &current->sighand->action[i];
		struct ckpt_sigaction *a = &ctx->sighand->action[i];

		ka->sa.sa_handler = (__sighandler_t)(unsigned long)a->handler;
		ka->sa.sa_flags = a->flags & UAPI_SA_FLAGS;
		ka->sa.sa_restorer = (__sigrestore_t)(unsigned long)a->restorer;
		ka->sa.sa_mask.sig[0] = a->mask & ~(sigmask(SIGKILL) | sigmask(SIGSTOP));
	}
	/* what sigaltstack(2) sets, under the lock it takes */
	current->sas_ss_sp = h->sas_ss_sp;
	current->sas_ss_size = h->sas_ss_size;
	current->sas_ss_flags = h->sas_ss_flags;
	spin_unlock_irq(&current->sighand->siglock);

	blocked.sig[0] = h->blocked & ~(sigmask(SIGKILL) | sigmask(SIGSTOP));
	sigprocmask(SIG_SETMASK, &blocked, NULL);

	/*
	 * Queued again in their order, to the restarted thread itself (what
	 * rt_tgsigqueueinfo(2) lets any task do to itself), and the
	 * process-wide ones to its process.  What the placeholder got (a
	 * SIGCHLD from a recreated zombie) is not the task's.
	 */
	fatal = fatal_signal_pending(current);
	if (group)
		flush_signals(current);
	else
		restore_flush_private();
	if (fatal)
		force_sig(SIGKILL);	/* but a kill that came meanwhile still kills */
	q = (struct ckpt_sigqueue *)(ctx->sigpending + 1);
	for (i = 0; i < ctx->sigpending->nr; i++) {
		kernel_siginfo_t info;

		memcpy(&info, q[i].info, sizeof(info));
		if (q[i].shared)
			restore_shared_signal(&info);
	}
	for (i = 0; i < ctx->sigpending->nr; i++) {
		kernel_siginfo_t info;

		memcpy(&info, q[i].info, sizeof(info));
		if (!q[i].shared)
			send_sig_info(info.si_signo, &info, current);
	}
}
