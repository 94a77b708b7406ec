// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: freezing the tree for a checkpoint, and thawing it.
 *
 * Each task is frozen with a checkpoint hold (kernel patch 0003), so
 * nobody can thaw it while its state is copied.  The root freezes first,
 * then level by level the children of what is frozen: a frozen task
 * cannot fork, so when a pass finds no new child the tree is complete.
 * A task that checkpoints itself is not frozen: it is in checkpoint(2).
 *
 * restart(2) with RESTART_FROZEN leaves each restarted task held frozen
 * the same way, on its way back to user mode, until restart(ROOT, -1,
 * RESTART_FROZEN, -1) thaws the tree restarted at ROOT (`cr thaw`).
 */

#include <linux/delay.h>
#include <linux/freezer.h>
#include <linux/mutex.h>
#include <linux/pid.h>
#include <linux/ptrace.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/slab.h>

#include "ckpt.h"

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

/* On failure, the tasks frozen so far stay counted in tree->frozen, for the thaw */
int ckpt_freeze_tree(struct ckpt_ctx *ctx, struct ckpt_tree *tree)
{
	int ret;

	for (;;) {
		u32 before = tree->nr;

		for (; tree->frozen < tree->nr; tree->frozen++) {
			if (tree->zombie[tree->frozen] || tree->tasks[tree->frozen] == current)
				continue;
			ckpt_freeze_task(tree->tasks[tree->frozen]);
			ret = ckpt_wait_frozen(ctx, tree->tasks[tree->frozen]);
			if (ret) {
				tree->frozen++;
				return ret;
			}
		}
		ret = ckpt_tree_add_children(ctx, tree);
		if (ret)
			return ret;
		if (tree->nr == before)
			return 0;
		/* checked before freezing: a zombie never freezes */
		for (; before < tree->nr; before++) {
			ret = checkpoint_may(ctx, tree->tasks[before]);
			if (ret)
				return ret;
		}
	}
}

void ckpt_thaw_tree(struct ckpt_tree *tree)
{
	u32 i;

	for (i = 0; i < tree->frozen; i++)
		if (!tree->zombie[i] && tree->tasks[i] != current)
			ckpt_thaw_task(tree->tasks[i]);
}

/* A task that a RESTART_FROZEN restart left held, until its tree is thawed */
struct ckpt_held {
	struct list_head list;
	struct pid *root;	/* the root of its restarted tree */
	struct task_struct *task;
};

static LIST_HEAD(ckpt_held_tasks);
static DEFINE_MUTEX(ckpt_held_lock);

/* current, restarted under @root: it freezes before it runs a user instruction */
int ckpt_hold_restarted(struct pid *root)
{
	struct ckpt_held *h = kzalloc(sizeof(*h), GFP_KERNEL);

	if (!h)
		return -ENOMEM;
	h->root = get_pid(root);
	h->task = get_task_struct(current);
	mutex_lock(&ckpt_held_lock);
	list_add_tail(&h->list, &ckpt_held_tasks);
	mutex_unlock(&ckpt_held_lock);
	ckpt_freeze_task(current);
	return 0;
}

static void ckpt_release(struct ckpt_held *h)
{
	list_del(&h->list);
	ckpt_thaw_task(h->task);
	put_task_struct(h->task);
	put_pid(h->root);
	kfree(h);
}

/* Thaw the tree restarted frozen at @root_nr: the caller may ptrace each task */
long restore_thaw(pid_t root_nr)
{
	struct pid *root = find_get_pid(root_nr);
	struct ckpt_held *h, *tmp;
	long ret = -ESRCH;

	if (!root)
		return -ESRCH;
	mutex_lock(&ckpt_held_lock);
	list_for_each_entry(h, &ckpt_held_tasks, list) {
		if (h->root != root)
			continue;
		if (!ptrace_may_access(h->task, PTRACE_MODE_ATTACH_REALCREDS)) {
			ret = -EPERM;
			goto out;
		}
		ret = 0;
	}
	list_for_each_entry_safe(h, tmp, &ckpt_held_tasks, list)
		if (!ret && h->root == root)
			ckpt_release(h);
out:
	mutex_unlock(&ckpt_held_lock);
	put_pid(root);
	return ret;
}

/* Module unload: nobody would be left to thaw them */
void ckpt_thaw_all_held(void)
{
	struct ckpt_held *h, *tmp;

	mutex_lock(&ckpt_held_lock);
	list_for_each_entry_safe(h, tmp, &ckpt_held_tasks, list)
		ckpt_release(h);
	mutex_unlock(&ckpt_held_lock);
}
