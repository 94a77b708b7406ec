// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: freezing the tree for a checkpoint, and thawing it.
 *
 * Each task is frozen with a checkpoint hold (kernel patch 0003), so
 * nobody can thaw it while its state is copied.  The root freezes first,
 * then level by level the children of what is frozen: a frozen task
 * cannot fork, so when a pass finds no new child the tree is complete.
 */

#include <linux/delay.h>
#include <linux/freezer.h>
#include <linux/sched/signal.h>

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
			if (tree->zombie[tree->frozen])
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
		if (!tree->zombie[i])
			ckpt_thaw_task(tree->tasks[i]);
}
