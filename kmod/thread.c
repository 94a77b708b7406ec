// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: threads.
 *
 * Every thread of every process is a task of the tree, saved with its tid
 * (the TREE object has it, with its thread group's tgid) and its own
 * state: registers and FPU (cpu.c), blocked mask, alternate stack and
 * pending signals (signal.c), credentials (cred.c), and the THREAD object
 * here: what it registered with the kernel for its C library, the
 * set_child_tid/clear_child_tid addresses (pthread_join() waits on the
 * latter), its robust futex list and its rseq area.  What the threads of
 * a process share is saved once (share.c).
 *
 * At restart the engine clones each thread with its tid from its rebuilt
 * leader (clone_with_pids(2) with CLONE_THREAD and the flags its TASK
 * object gives, spawn.c); the thread then rebuilds itself in its turn.  A
 * leader that had exited while its threads ran on is a ZOMBIE of the
 * tree: it clones its threads, then ends with its exit status, and stays
 * a zombie until the last thread ends.
 */

#include <uapi/linux/futex.h>
#include <linux/rseq.h>
#include <linux/sched.h>

#include "ckpt.h"

int checkpoint_thread(struct ckpt_ctx *ctx, struct task_struct *t)
{
	struct ckpt_hdr_thread h = {};

	h.set_child_tid = (unsigned long)t->set_child_tid;
	h.clear_child_tid = (unsigned long)t->clear_child_tid;
#ifdef CONFIG_FUTEX
	h.robust_list = (unsigned long)t->robust_list;
	h.robust_list_len = sizeof(struct robust_list_head);
#ifdef CONFIG_COMPAT
	if (t->compat_robust_list)
		return ckpt_err(ctx, -EOPNOTSUPP,
				"pid %d: a 32-bit robust futex list is not supported",
				task_pid_vnr(t));
#endif
#endif
#ifdef CONFIG_RSEQ
	h.rseq = (unsigned long)t->rseq;
	h.rseq_len = t->rseq_len;
	h.rseq_sig = t->rseq_sig;
#endif
	return ckpt_write_obj(ctx, &h, CKPT_HDR_THREAD, sizeof(h));
}

static bool ckpt_user_ptr_ok(u64 addr)
{
	return addr < TASK_SIZE_MAX;
}

int restore_prepare_thread(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_thread *h;

	h = ckpt_next(ctx, CKPT_HDR_THREAD, sizeof(*h));
	if (IS_ERR(h))
		return PTR_ERR(h);
	if (h->h.len != sizeof(*h) || !ckpt_user_ptr_ok(h->set_child_tid) ||
	    !ckpt_user_ptr_ok(h->clear_child_tid) || !ckpt_user_ptr_ok(h->robust_list) ||
	    (h->robust_list && h->robust_list_len != sizeof(struct robust_list_head)))
		return ckpt_err(ctx, -EINVAL, "bad THREAD object");
	if (h->rseq && (h->rseq >= TASK_SIZE_MAX || !IS_ALIGNED(h->rseq, 32) ||
			h->rseq_len < 32 || h->rseq_len > PAGE_SIZE))
		return ckpt_err(ctx, -EINVAL, "bad rseq registration in THREAD object");
	if (h->rseq && !IS_ENABLED(CONFIG_RSEQ))
		ckpt_msg(ctx, "note: the task used rseq(2), which this kernel lacks\n");
	if (h->robust_list && !IS_ENABLED(CONFIG_FUTEX))
		ckpt_msg(ctx, "note: the task used a robust futex list, which this kernel lacks\n");
	ctx->thread = h;
	return 0;
}

/*
 * While the stub runs in a rebuilt task, it has no registration of the
 * restarter's: the kernel would write rseq updates into what is now the
 * program's memory, and the robust list and clear_child_tid point there.
 */
void restore_thread_clear(void)
{
	current->clear_child_tid = NULL;
#ifdef CONFIG_FUTEX
	current->robust_list = NULL;
#endif
#ifdef CONFIG_RSEQ
	current->rseq = NULL;
	current->rseq_len = 0;
	current->rseq_sig = 0;
#endif
}

/* What set_tid_address(2), set_robust_list(2) and rseq(2) would set */
void restore_thread(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_thread *h = ctx->thread;

	current->set_child_tid = (int __user *)(unsigned long)h->set_child_tid;
	current->clear_child_tid = (int __user *)(unsigned long)h->clear_child_tid;
#ifdef CONFIG_FUTEX
	current->robust_list = (struct robust_list_head __user *)(unsigned long)h->robust_list;
#endif
#ifdef CONFIG_RSEQ
	/* the restarter's own registration points into memory that is gone */
	current->rseq = (struct rseq __user *)(unsigned long)h->rseq;
	current->rseq_len = h->rseq_len;
	current->rseq_sig = h->rseq_sig;
	rseq_set_notify_resume(current);
#endif
}
