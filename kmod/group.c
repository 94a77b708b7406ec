// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: the restart group.
 *
 * restore_self() is restart(2) with RESTART_TASKSELF: the calling task
 * becomes its checkpointed one, in a group with the rest of the tree.
 * Each task calls restart(root, fd, RESTART_TASKSELF, logfd) from the
 * place userspace created it in (clone_with_pids).  The first to arrive
 * reads and checks the image once; then the tasks rebuild themselves one
 * at a time in tree order, so an open file defined in one task's part of
 * the image is there for the later ones, and none returns to userspace
 * before all are done.  If one fails, those already rebuilt are killed and
 * the others return the error unchanged: no half-restored tree ever runs.
 */

#include <linux/delay.h>
#include <linux/fdtable.h>
#include <linux/fs_struct.h>
#include <linux/mutex.h>
#include <linux/pid.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/slab.h>

#include "ckpt.h"

#define CKPT_RESTART_TIMEOUT	(60 * HZ)

static LIST_HEAD(ckpt_groups);
static DEFINE_MUTEX(ckpt_groups_lock);

static void ckpt_group_fail(struct ckpt_group *g, int err)
{
	if (!READ_ONCE(g->error))
		WRITE_ONCE(g->error, err ? err : -EINVAL);
	wake_up_all(&g->wq);
}

/* After a wait for the group: its error, failing it on a timeout (0) or a signal (< 0) */
static int ckpt_group_waited(struct ckpt_group *g, long left)
{
	if (!left)
		ckpt_group_fail(g, -ETIMEDOUT);
	else if (left < 0)
		ckpt_group_fail(g, -EINTR);
	return READ_ONCE(g->error);
}

/* Wait for @cond or a failure of the group */
#define ckpt_group_wait(g, cond) ({					\
	struct ckpt_group *__g = (g);					\
	ckpt_group_waited(__g, wait_event_killable_timeout(__g->wq,	\
				(cond) || READ_ONCE(__g->error),	\
				CKPT_RESTART_TIMEOUT));			\
})

/* The first task from @i on that restarts (zombies only end again, in userspace) */
static u32 ckpt_next_live(struct ckpt_group *g, u32 i)
{
	while (i < g->nr_tasks && g->parts[i]->h->type == CKPT_HDR_ZOMBIE)
		i++;
	return i;
}

/*
 * Userspace made this task's zombie children before it called restart;
 * wait until they are zombies, so their SIGCHLD is in before the signal
 * state is replaced (and dropped with what the placeholder had).
 */
static int ckpt_wait_zombie_children(struct ckpt_ctx *ctx, struct ckpt_group *g, u32 idx)
{
	u32 j;

	for (j = idx + 1; j < g->nr_tasks; j++) {
		struct task_struct *t;
		int waited = 0;

		if (g->pids[j].ppid != g->pids[idx].pid ||
		    g->parts[j]->h->type != CKPT_HDR_ZOMBIE)
			continue;
		{
			struct pid *p = find_get_pid(g->pids[j].pid);

			t = get_pid_task(p, PIDTYPE_PID);
			put_pid(p);
		}
		while (t && !ckpt_zombie(t) && waited++ < CKPT_FREEZE_TIMEOUT_MS)
			usleep_range(500, 1000);
		if (!t || !ckpt_zombie(t)) {
			if (t)
				put_task_struct(t);
			return ckpt_err(ctx, -ESRCH, "zombie %d was not recreated", g->pids[j].pid);
		}
		put_task_struct(t);
	}
	return 0;
}

/* Find or start the group of (@root, the image); takes over *@ctxp if it starts one */
static struct ckpt_group *ckpt_group_join(struct ckpt_ctx **ctxp, pid_t root_nr, bool *first)
{
	struct ckpt_ctx *ctx = *ctxp;
	struct inode *image = file_inode(ctx->file);
	struct ckpt_group *g;
	struct pid *root;

	root = root_nr ? find_get_pid(root_nr) : get_task_pid(current, PIDTYPE_PID);
	if (!root)
		return ERR_PTR(ckpt_err(ctx, -ESRCH, "no task %d to restart with", root_nr));
	*first = false;
	mutex_lock(&ckpt_groups_lock);
	list_for_each_entry(g, &ckpt_groups, list) {
		if (g->root == root && g->image == image) {
			refcount_inc(&g->users);
			mutex_unlock(&ckpt_groups_lock);
			put_pid(root);
			return g;
		}
	}
	g = kzalloc(sizeof(*g), GFP_KERNEL);
	if (g) {
		g->root = root;
		g->image = image;
		refcount_set(&g->users, 1);
		init_waitqueue_head(&g->wq);
		g->ctx = ctx;
		*ctxp = NULL;
		*first = true;
		list_add(&g->list, &ckpt_groups);
	}
	mutex_unlock(&ckpt_groups_lock);
	if (!g) {
		put_pid(root);
		return ERR_PTR(-ENOMEM);
	}
	return g;
}

static void ckpt_group_leave(struct ckpt_group *g)
{
	mutex_lock(&ckpt_groups_lock);
	if (!refcount_dec_and_test(&g->users)) {
		mutex_unlock(&ckpt_groups_lock);
		return;
	}
	list_del(&g->list);
	mutex_unlock(&ckpt_groups_lock);
	ckpt_ctx_free(g->ctx);
	kfree(g->parts);
	kfree(g->pages);
	put_pid(g->root);
	kfree(g);
}

/* Which task of the tree current is, checked against where it was created */
static int ckpt_group_index(struct ckpt_ctx *ctx, struct ckpt_group *g)
{
	pid_t pid = task_pid_vnr(current), parent;
	u32 i;

	for (i = 0; i < g->nr_tasks; i++)
		if (g->pids[i].pid == pid)
			break;
	if (i == g->nr_tasks)
		return ckpt_err(ctx, -ESRCH, "pid %d is not in the image's tree", pid);
	rcu_read_lock();
	parent = task_tgid_vnr(rcu_dereference(current->real_parent));
	rcu_read_unlock();
	if (i ? parent != g->pids[i].ppid : task_pid(current) != g->root)
		return ckpt_err(ctx, -EINVAL,
				"pid %d is not where the tree has it (parent %d, not %d)",
				pid, parent, g->pids[i].ppid);
	return i;
}

long restore_self(struct ckpt_ctx **ctxp, pid_t root)
{
	struct ckpt_ctx *ctx = *ctxp;
	unsigned long flags = ctx->flags;
	struct ckpt_group *g;
	bool first;
	long ax = 0;
	int ret, idx;

	if (current->flags & PF_KTHREAD || !current->mm)
		return -EINVAL;
	if (!thread_group_empty(current) || atomic_read(&current->mm->mm_users) != 1)
		return ckpt_err(ctx, -EBUSY,
				"the restarting task must be single-threaded and own its mm");
	if (current->fs->users != 1)
		return ckpt_err(ctx, -EBUSY, "the restarting task shares its fs_struct");
	if (refcount_read(&current->sighand->count) != 1)
		return ckpt_err(ctx, -EBUSY, "the restarting task shares its signal handlers");
	if (atomic_read(&current->files->count) != 1)
		return ckpt_err(ctx, -EBUSY, "the restarting task shares its file table");

	g = ckpt_group_join(ctxp, root, &first);
	if (IS_ERR(g))
		return PTR_ERR(g);
	ctx = g->ctx;
	if (first) {
		ret = ckpt_read_image(ctx);
		if (!ret)
			ret = restore_header(ctx);
		if (!ret)
			ret = restore_tree(ctx, g);
		if (!ret)
			ret = restore_chain(ctx);
		if (ret)
			ckpt_group_fail(g, ret);
		WRITE_ONCE(g->ready, true);
		wake_up_all(&g->wq);
	}
	ret = ckpt_group_wait(g, READ_ONCE(g->ready));
	if (ret)
		goto leave;
	idx = ckpt_group_index(ctx, g);
	if (idx < 0) {
		ret = idx;
		ckpt_group_fail(g, ret);
		goto leave;
	}
	if (g->parts[idx]->h->type != CKPT_HDR_TASK) {
		ret = ckpt_err(ctx, -EINVAL, "pid %d is a zombie in the image", g->pids[idx].pid);
		ckpt_group_fail(g, ret);
		goto leave;
	}
	ret = ckpt_group_wait(g, READ_ONCE(g->done) == idx);
	if (!ret)
		ret = ckpt_wait_zombie_children(ctx, g, idx);
	if (ret) {
		ckpt_group_fail(g, ret);
		goto leave;
	}

	/* our turn: the shared context is ours until we count ourselves done */
	ret = restore_prepare_task(ctx, g, idx) ?:
	      ckpt_fault(ctx, CKPT_FAULT_RESTORE_PREPARE, idx);
	if (ret) {
		ckpt_ctx_reset_task(ctx);
		ckpt_group_fail(g, ret);
		goto leave;
	}
	ret = restore_commit_task(ctx, &ax) ?:
	      ckpt_fault(ctx, CKPT_FAULT_RESTORE_MEMBER, idx);
	if (ret) {
		ckpt_msg(ctx,
			 "restart of pid %d failed after the task was changed (%d): killing the tree\n",
			 g->pids[idx].pid, ret);
		ckpt_ctx_reset_task(ctx);
		ckpt_group_fail(g, ret);
		force_sig(SIGKILL);
		goto leave;
	}
	ckpt_msg(ctx, "restarted pid %d (%s)\n", ctx->task->pid, ctx->task->comm);
	ckpt_ctx_reset_task(ctx);
	/* the last one rebuilt lets the tree's TCP connections go live */
	if (ckpt_next_live(g, idx + 1) == g->nr_tasks) {
		ret = restore_inet_live(ctx);
		if (ret) {
			ckpt_group_fail(g, ret);
			force_sig(SIGKILL);
			goto leave;
		}
	}
	WRITE_ONCE(g->done, ckpt_next_live(g, idx + 1));
	wake_up_all(&g->wq);

	/* nobody runs until everybody is rebuilt */
	ret = ckpt_group_wait(g, READ_ONCE(g->done) == g->nr_tasks) ?:
	      ckpt_fault(ctx, CKPT_FAULT_RESTORE_TREE, 0);
	if (!ret && (flags & RESTART_FROZEN))
		ret = ckpt_hold_restarted(g->root);
	if (ret)
		force_sig(SIGKILL);
leave:
	ckpt_group_leave(g);
	return ret ? ret : ax;
}
