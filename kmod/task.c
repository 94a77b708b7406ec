// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: one task, and the order of its parts.
 *
 * checkpoint_task() writes a task's part of the image: a ZOMBIE object
 * for a zombie, else the TASK object (pid, comm, rseq) and then every
 * kind of state in the order restart reads it.  At restart,
 * restore_prepare_task() reads and checks that part and opens its files
 * without changing anything of the restarting task, and
 * restore_commit_task() is the point of no return that makes the task
 * what the image says.
 */

#include <linux/pid.h>
#include <linux/ptrace.h>
#include <linux/sched/task_stack.h>
#include <linux/rseq.h>
#include <linux/sched.h>
#include <linux/sched/task.h>
#include <linux/sched/task_stack.h>
#include <linux/string.h>

#include "ckpt.h"

static int checkpoint_task_obj(struct ckpt_ctx *ctx, struct task_struct *t)
{
	struct ckpt_hdr_task h = {};

	h.pid = task_pid_vnr(t);
	h.exit_signal = t->exit_signal;
	get_task_comm(h.comm, t);
#ifdef CONFIG_RSEQ
	h.rseq = (unsigned long)t->rseq;
	h.rseq_len = t->rseq_len;
	h.rseq_sig = t->rseq_sig;
#endif
	return ckpt_write_obj(ctx, &h, CKPT_HDR_TASK, sizeof(h));
}

int checkpoint_task(struct ckpt_ctx *ctx, struct task_struct *t)
{
	int ret;

	if (ckpt_zombie(t)) {
		struct ckpt_hdr_zombie z = {
			.pid = task_pid_vnr(t),
			.exit_code = READ_ONCE(t->exit_code),
		};

		return ckpt_write_obj(ctx, &z, CKPT_HDR_ZOMBIE, sizeof(z));
	}
	ret = checkpoint_task_obj(ctx, t);
	if (!ret)
		ret = checkpoint_process(ctx, t);
	if (!ret)
		ret = checkpoint_timers(ctx, t);	/* ITIMERS, POSIX_TIMERs */
	if (!ret)
		ret = checkpoint_sem_undo(ctx, t);
	if (!ret)
		ret = checkpoint_signal(ctx, t);	/* SIGNAL, SIGPENDING */
	if (!ret)
		ret = checkpoint_cred(ctx, t);
	if (!ret)
		ret = checkpoint_seccomp(ctx, t);
	if (!ret)
		ret = checkpoint_rlimits(ctx, t);
	if (!ret)
		ret = checkpoint_fs(ctx, t);
	if (!ret)
		ret = checkpoint_files(ctx, t);
	if (!ret)
		ret = checkpoint_mm(ctx, t);	/* MM, VMAs, CPU, FPU, pages */
	return ret;
}

static int restore_task_obj(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_task *h;

	h = ckpt_next(ctx, CKPT_HDR_TASK, sizeof(*h));
	if (IS_ERR(h))
		return PTR_ERR(h);
	if (h->h.len != sizeof(*h) || !memchr(h->comm, 0, sizeof(h->comm)))
		return ckpt_err(ctx, -EINVAL, "bad TASK object");
	if (h->rseq && (h->rseq >= TASK_SIZE_MAX || !IS_ALIGNED(h->rseq, 32) ||
			h->rseq_len < 32 || h->rseq_len > PAGE_SIZE))
		return ckpt_err(ctx, -EINVAL, "bad rseq registration in TASK object");
	if (h->rseq && !IS_ENABLED(CONFIG_RSEQ))
		ckpt_msg(ctx, "note: the task used rseq(2), which this kernel lacks\n");
	ctx->task = h;
	return 0;
}

/* Read and check task @idx's part; opens files but changes nothing of current */
int restore_prepare_task(struct ckpt_ctx *ctx, struct ckpt_group *g, u32 idx)
{
	int ret;

	ctx->cur = g->parts[idx];
	ctx->pages_first = g->pages[idx];
	ret = restore_task_obj(ctx);
	if (!ret && ctx->task->pid != g->pids[idx].pid)
		ret = ckpt_err(ctx, -EINVAL, "TASK object %u is pid %d, the tree says %d",
			       idx, ctx->task->pid, g->pids[idx].pid);
	if (!ret)
		ret = restore_prepare_task_namespaces(ctx, idx);
	if (!ret)
		ret = restore_prepare_process(ctx);
	if (!ret)
		ret = restore_prepare_timers(ctx);	/* ITIMERS, POSIX_TIMERs */
	if (!ret)
		ret = restore_prepare_sem_undo(ctx);
	if (!ret)
		ret = restore_prepare_signal(ctx);	/* SIGNAL, SIGPENDING */
	if (!ret)
		ret = restore_prepare_cred(ctx);
	if (!ret)
		ret = restore_prepare_seccomp(ctx);
	if (!ret)
		ret = restore_prepare_rlimits(ctx);
	if (!ret)
		ret = restore_prepare_fs(ctx);
	if (!ret)
		ret = restore_prepare_files(ctx);
	if (!ret)
		ret = restore_prepare_mm(ctx);	/* MM, VMAs, CPU, FPU, pages */
	/* PAGES objects (restore_tree() found whose they are) may follow a part */
	while (!ret && ckpt_peek(ctx) == CKPT_HDR_PAGES)
		ckpt_next(ctx, CKPT_HDR_PAGES, 0);
	if (!ret && (idx + 1 < g->nr_tasks ? ctx->cur != g->parts[idx + 1] :
					     ckpt_peek(ctx) != CKPT_HDR_TAIL))
		ret = ckpt_err(ctx, -EINVAL, "unexpected %s object at the end of pid %d",
			       ckpt_type_name(ckpt_peek(ctx)), g->pids[idx].pid);
	return ret;
}

/* Point of no return: on failure the task is killed, never returned to */
int restore_commit_task(struct ckpt_ctx *ctx, long *ax)
{
	int ret;

	/* the root, first of all: its own namespaces, which the others use too */
	ret = restore_namespaces(ctx);
	if (!ret)
		ret = restore_files(ctx);
	if (!ret) {
		restore_fs(ctx);
		ret = restore_mm(ctx);
	}
	/* after the address space: the limits bind the restarted task only */
	if (!ret)
		restore_rlimits(ctx);
#ifdef CONFIG_RSEQ
	/* the restarter's own registration points into memory that is gone */
	if (!ret) {
		current->rseq = (struct rseq __user *)(unsigned long)ctx->task->rseq;
		current->rseq_len = ctx->task->rseq_len;
		current->rseq_sig = ctx->task->rseq_sig;
		rseq_set_notify_resume(current);
	}
#endif
	if (!ret)
		ret = restore_cpu(ctx, ax);
	if (!ret)
		ret = restore_process(ctx);	/* exe, sched: with the restarter's rights */
	/* with the restarter's rights, as seccomp(2) from the restarter would */
	if (!ret)
		ret = restore_seccomp(ctx);
	if (!ret)
		ret = restore_sem_undo(ctx);
	if (ret)
		return ret;
	/* last: the credentials may take away what the steps above needed */
	restore_cred(ctx);
	/* the mask first, so that requeued signals stay pending if blocked */
	restore_signal(ctx);
	/* after the signals, so that an early expiry is not flushed with them */
	ret = restore_timers(ctx);
	if (ret)
		return ret;
	task_lock(current);
	strscpy_pad(current->comm, ctx->task->comm, sizeof(current->comm));
	task_unlock(current);
	restore_process_late(ctx);	/* pdeathsig, dumpable: a cred change resets them */
	/* out of restart(2) now: no system call to restart on the way back */
	current_pt_regs()->orig_ax = -1;
	return 0;
}
