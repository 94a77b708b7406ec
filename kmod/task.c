// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: the task tree and the task.
 *
 * checkpoint_tree() freezes the target with a checkpoint hold (kernel
 * patch 0003), so nobody can thaw it while its state is copied, checks
 * that the caller may ptrace-attach to it, writes the image and thaws (or
 * kills) it.  restore_self() is restart(2) with RESTART_TASKSELF: the
 * calling task becomes the checkpointed one.  It keeps its credentials,
 * opens every file with them, and changes nothing until the whole image
 * has been read and checked.
 */

#include <linux/delay.h>
#include <linux/freezer.h>
#include <linux/pid.h>
#include <linux/ptrace.h>
#include <linux/rseq.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/fdtable.h>
#include <linux/fs_struct.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/ktime.h>

#include "ckpt.h"

#define CKPT_FREEZE_TIMEOUT_MS 5000

static int ckpt_wait_frozen(struct ckpt_ctx *ctx, struct task_struct *t)
{
	int waited;

	for (waited = 0; waited < CKPT_FREEZE_TIMEOUT_MS; waited++) {
		if (frozen(t))
			return 0;
		if (t->flags & PF_EXITING)
			return ckpt_err(ctx, -ESRCH, "pid %d is exiting",
					task_pid_vnr(t));
		if (fatal_signal_pending(current))
			return -EINTR;
		usleep_range(500, 1000);
	}
	return ckpt_err(ctx, -EBUSY, "pid %d did not freeze within %d ms",
			task_pid_vnr(t), CKPT_FREEZE_TIMEOUT_MS);
}

static int checkpoint_tree_obj(struct ckpt_ctx *ctx, struct task_struct *t)
{
	struct {
		struct ckpt_hdr_tree t;
		struct ckpt_pids p;
	} tree = {};

	tree.t.nr_tasks = 1;
	tree.p.pid = task_pid_vnr(t);
	tree.p.tgid = task_tgid_vnr(t);
	tree.p.ppid = 0;
	tree.p.pgid = task_pgrp_vnr(t);
	tree.p.sid = task_session_vnr(t);
	return ckpt_write_obj(ctx, &tree, CKPT_HDR_TREE, sizeof(tree));
}

static int checkpoint_task(struct ckpt_ctx *ctx, struct task_struct *t)
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

static int checkpoint_image(struct ckpt_ctx *ctx, struct task_struct *t)
{
	int ret;

	ret = checkpoint_header(ctx);
	if (!ret)
		ret = checkpoint_tree_obj(ctx, t);
	if (!ret)
		ret = checkpoint_task(ctx, t);
	if (!ret)
		ret = checkpoint_signal(ctx, t);	/* SIGNAL, SIGPENDING */
	if (!ret)
		ret = checkpoint_cred(ctx, t);
	if (!ret)
		ret = checkpoint_rlimits(ctx, t);
	if (!ret)
		ret = checkpoint_fs(ctx, t);
	if (!ret)
		ret = checkpoint_files(ctx, t);
	if (!ret)
		ret = checkpoint_mm(ctx, t);	/* MM, VMAs, CPU, FPU, pages */
	if (!ret)
		ret = checkpoint_tail(ctx);
	return ret;
}

static int checkpoint_may(struct ckpt_ctx *ctx, struct task_struct *t)
{
	pid_t pid = task_pid_vnr(t);

	if (t == current)
		return ckpt_err(ctx, -EINVAL, "a task cannot checkpoint itself");
	if (t->flags & PF_KTHREAD)
		return ckpt_err(ctx, -EPERM, "pid %d is a kernel thread", pid);
	if (!ptrace_may_access(t, PTRACE_MODE_ATTACH_REALCREDS))
		return ckpt_err(ctx, -EPERM, "no permission to ptrace pid %d", pid);
	if (get_nr_threads(t) != 1)
		return ckpt_err(ctx, -EBUSY, "pid %d has %d threads; only single-threaded processes are supported",
				pid, get_nr_threads(t));
	if (t->exit_state || (t->flags & PF_EXITING))
		return ckpt_err(ctx, -ESRCH, "pid %d is exiting", pid);
	/* a peek, made again once frozen: a frozen task cannot fork */
	if (!list_empty(&t->children))
		return ckpt_err(ctx, -EBUSY, "pid %d has child processes (or unreaped zombies); only a single process is supported",
				pid);
	return 0;
}

long checkpoint_tree(struct ckpt_ctx *ctx, pid_t pid)
{
	struct task_struct *t;
	ktime_t t0, t1;
	int ret;

	if (pid <= 0)
		return ckpt_err(ctx, -EINVAL, "bad pid %d", pid);
	{
		struct pid *p = find_get_pid(pid);

		t = get_pid_task(p, PIDTYPE_PID);
		put_pid(p);
	}
	if (!t)
		return ckpt_err(ctx, -ESRCH, "no process with pid %d", pid);
	ret = checkpoint_may(ctx, t);
	if (ret)
		goto out;

	t0 = ktime_get();
	ckpt_freeze_task(t);
	ret = ckpt_wait_frozen(ctx, t);
	t1 = ktime_get();
	/* frozen: whatever was true above stays true until we thaw */
	if (!ret)
		ret = checkpoint_may(ctx, t);
	if (!ret)
		ret = checkpoint_image(ctx, t);
	if (!ret && (ctx->flags & CHECKPOINT_KILL))
		send_sig(SIGKILL, t, 1);
	ckpt_thaw_task(t);
	ckpt_msg(ctx, "pid %d: froze in %lld us, frozen for %lld us\n", pid,
		 ktime_us_delta(t1, t0), ktime_us_delta(ktime_get(), t1));
out:
	put_task_struct(t);
	return ret;
}

static int restore_tree(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_tree *tree;
	struct ckpt_pids *pids;

	tree = ckpt_next(ctx, CKPT_HDR_TREE, sizeof(*tree));
	if (IS_ERR(tree))
		return PTR_ERR(tree);
	if (tree->nr_tasks != 1 ||
	    tree->h.len != sizeof(*tree) + sizeof(*pids))
		return ckpt_err(ctx, -EINVAL, "tree of %u tasks: only one task is supported",
				tree->nr_tasks);
	pids = (void *)(tree + 1);
	if (pids->pid != task_pid_vnr(current))
		ckpt_msg(ctx, "note: restarting pid %d as pid %d\n",
			 pids->pid, task_pid_vnr(current));
	return 0;
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

/* Read and check everything; opens files but changes nothing of current */
static int restore_prepare(struct ckpt_ctx *ctx)
{
	int ret;

	ret = ckpt_read_image(ctx);
	if (!ret)
		ret = restore_header(ctx);
	if (!ret)
		ret = restore_tree(ctx);
	if (!ret)
		ret = restore_task_obj(ctx);
	if (!ret)
		ret = restore_prepare_signal(ctx);	/* SIGNAL, SIGPENDING */
	if (!ret)
		ret = restore_prepare_cred(ctx);
	if (!ret)
		ret = restore_prepare_rlimits(ctx);
	if (!ret)
		ret = restore_prepare_fs(ctx);
	if (!ret)
		ret = restore_prepare_files(ctx);
	if (!ret)
		ret = restore_prepare_mm(ctx);	/* MM, VMAs, CPU, FPU, pages */
	if (!ret && ckpt_peek(ctx) != CKPT_HDR_TAIL)
		ret = ckpt_err(ctx, -EINVAL, "unexpected %s object before the trailer",
			       ckpt_type_name(ckpt_peek(ctx)));
	return ret;
}

long restore_self(struct ckpt_ctx *ctx)
{
	long ax = 0;
	int ret;

	if (current->flags & PF_KTHREAD || !current->mm)
		return -EINVAL;
	if (!thread_group_empty(current) || atomic_read(&current->mm->mm_users) != 1)
		return ckpt_err(ctx, -EBUSY, "the restarting task must be single-threaded and own its mm");
	if (current->fs->users != 1)
		return ckpt_err(ctx, -EBUSY, "the restarting task shares its fs_struct");
	if (refcount_read(&current->sighand->count) != 1)
		return ckpt_err(ctx, -EBUSY, "the restarting task shares its signal handlers");
	if (atomic_read(&current->files->count) != 1)
		return ckpt_err(ctx, -EBUSY, "the restarting task shares its file table");

	ret = restore_prepare(ctx);
	if (ret)
		return ret;

	/*
	 * Point of no return: from here on the task is taken apart.  A
	 * failure now cannot give the caller its old self back, so the task
	 * is killed instead of returning into a half-built address space.
	 */
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
		ret = restore_cpu(ctx, &ax);
	if (ret) {
		ckpt_msg(ctx, "restart failed after the task was changed (%d): killing it\n", ret);
		force_sig(SIGKILL);
		return ret;
	}

	/* last: the credentials may take away what the steps above needed */
	restore_cred(ctx);
	/* the mask first, so that requeued signals stay pending if blocked */
	restore_signal(ctx);
	task_lock(current);
	strscpy_pad(current->comm, ctx->task->comm, sizeof(current->comm));
	task_unlock(current);
	ckpt_msg(ctx, "restarted pid %d (%s)\n", ctx->task->pid, ctx->task->comm);
	return ax;
}
