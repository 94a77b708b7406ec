// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: the restart group.
 *
 * restore_self() is restart(2) with RESTART_TASKSELF: the calling task
 * becomes its checkpointed one, in a group with the rest of the tree.
 * Each task (every thread too) calls restart(root, fd, RESTART_TASKSELF,
 * logfd) from the place userspace created it in (clone_with_pids).  The
 * first to arrive reads and checks the image once.  When every task of
 * the tree has arrived (so that none still runs the restarter's code in
 * an address space or fd table another is about to rebuild), they rebuild
 * themselves one at a time in tree order, so that an object one task's
 * part of the image defines is there for the later ones, and none returns
 * to userspace before all are done.  If one fails, those already rebuilt
 * are killed and the others return the error: no half-restored tree ever
 * runs.
 *
 * Only tasks of the root's own subtree, with the effective uid of the task
 * that started the group, may join it: anybody else calling restart(2)
 * with the same root and image gets EPERM and leaves the group alone.  The
 * group gives up when none of its members has got on for
 * restart_idle_timeout seconds (not after a total time: a large tree
 * takes as long as it takes), or at once when a member it waits for is
 * gone.  A signal to a member that is not rebuilt yet ends the restart
 * for all with EINTR; no member ever returns -ERESTARTSYS.
 */

#include <linux/cred.h>
#include <linux/delay.h>
#include <linux/fs.h>
#include <linux/moduleparam.h>
#include <linux/mutex.h>
#include <linux/pid.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/slab.h>

#include "ckpt.h"

static unsigned int restart_idle_timeout = 60;
module_param(restart_idle_timeout, uint, 0644);
MODULE_PARM_DESC(restart_idle_timeout,
		 "seconds a restart waits with no member getting on before it gives up");

static LIST_HEAD(ckpt_groups);
static DEFINE_MUTEX(ckpt_groups_lock);

/* What userspace sees: an interrupted wait is EINTR, never a restart code */
static int ckpt_user_errno(int err)
{
	switch (err) {
	case -ERESTARTSYS:
	case -ERESTARTNOINTR:
	case -ERESTARTNOHAND:
	case -ERESTART_RESTARTBLOCK:
		return -EINTR;
	}
	return err;
}

static void ckpt_group_fail(struct ckpt_group *g, int err)
{
	if (!READ_ONCE(g->error))
		WRITE_ONCE(g->error, err ? ckpt_user_errno(err) : -EINVAL);
	wake_up_all(&g->wq);
}

static void ckpt_group_progress(struct ckpt_group *g)
{
	WRITE_ONCE(g->progress, jiffies);
	wake_up_all(&g->wq);
}

/* A task the group waits for that no longer exists (it died before its restart) */
static pid_t ckpt_group_missing(struct ckpt_group *g)
{
	pid_t gone = 0;
	u32 i;

	rcu_read_lock();
	for (i = 0; i < g->nr_tasks && !gone; i++) {
		if (g->parts[i]->h->type != CKPT_HDR_TASK || READ_ONCE(g->joined[i]))
			continue;
		if (!pid_task(find_vpid(g->pids[i].pid), PIDTYPE_PID))
			gone = g->pids[i].pid;
	}
	rcu_read_unlock();
	return gone;
}

typedef bool (*ckpt_group_cond)(struct ckpt_group *g, u32 idx);

static bool ckpt_group_ready(struct ckpt_group *g, u32 idx)
{
	return READ_ONCE(g->ready);
}

/* Everybody is here, and the tasks before @idx are rebuilt */
static bool ckpt_group_turn(struct ckpt_group *g, u32 idx)
{
	return READ_ONCE(g->nr_joined) == g->nr_live && READ_ONCE(g->done) == idx;
}

static bool ckpt_group_done(struct ckpt_group *g, u32 idx)
{
	return READ_ONCE(g->done) == g->nr_tasks;
}

/*
 * Wait for @cond or a failure of the group.  A task not yet @rebuilt
 * gives up on any signal (EINTR for all); a rebuilt one only when killed,
 * since a signal to it is the restarted program's, to be delivered later.
 */
static int ckpt_group_wait(struct ckpt_ctx *ctx, struct ckpt_group *g, ckpt_group_cond cond,
			   u32 idx, bool rebuilt)
{
	for (;;) {
		pid_t gone = 0;
		long left;

		if (READ_ONCE(g->error))
			return READ_ONCE(g->error);
		if (cond(g, idx))
			return 0;
		if (rebuilt)
			left = wait_event_killable_timeout(g->wq,
							   cond(g, idx) || READ_ONCE(g->error), HZ);
		else
			left = wait_event_interruptible_timeout(g->wq,
								cond(g, idx) || READ_ONCE(g->error),
								HZ);
		if (left < 0) {
			ckpt_msg(ctx, "pid %d: interrupted by a signal: the restart ends\n",
				 task_pid_vnr(current));
			ckpt_group_fail(g, -EINTR);
		} else if (!left && time_after(jiffies, READ_ONCE(g->progress) +
					       (unsigned long)restart_idle_timeout * HZ)) {
			ckpt_err(ctx, -ETIMEDOUT, "no task of the restart got on for %u s",
				 restart_idle_timeout);
			ckpt_group_fail(g, -ETIMEDOUT);
		} else if (!left) {
			gone = ckpt_group_missing(g);
		}
		if (gone) {
			ckpt_err(ctx, -ESRCH, "pid %d is gone before it called restart", gone);
			ckpt_group_fail(g, -ESRCH);
		}
	}
}

/* Whether task @idx is the first of its thread group to restart */
static bool ckpt_first_of_group(struct ckpt_group *g, u32 idx)
{
	u32 j;

	for (j = 0; j < idx; j++)
		if (g->pids[j].tgid == g->pids[idx].tgid && g->parts[j]->h->type == CKPT_HDR_TASK)
			return false;
	return true;
}

/* The first task from @i on that restarts (zombies only end again, in userspace) */
static u32 ckpt_next_live(struct ckpt_group *g, u32 i)
{
	while (i < g->nr_tasks && g->parts[i]->h->type == CKPT_HDR_ZOMBIE)
		i++;
	return i;
}

/*
 * Before the first task of a thread group replaces its signal state: its
 * zombie children, and its leader if that exited, are zombies already
 * (userspace made them before), so that what their exit sent is in and
 * gets dropped with what else the placeholder had.
 */
static int ckpt_wait_zombies(struct ckpt_ctx *ctx, struct ckpt_group *g, u32 idx)
{
	pid_t tgid = g->pids[idx].tgid;
	u32 j;

	for (j = 0; j < g->nr_tasks; j++) {
		struct task_struct *t;
		int waited = 0;

		if (g->parts[j]->h->type != CKPT_HDR_ZOMBIE ||
		    (g->pids[j].ppid != tgid && g->pids[j].pid != tgid))
			continue;
		t = get_pid_task(find_vpid(g->pids[j].pid), PIDTYPE_PID);
		while (t && !ckpt_zombie(t) && waited++ < CKPT_FREEZE_TIMEOUT_MS &&
		       !signal_pending(current) && !READ_ONCE(g->error))
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

/* Whether current is the task of @root or in its subtree: made by the restarter */
static bool ckpt_in_subtree(struct pid *root)
{
	struct task_struct *t;
	bool found = false;

	rcu_read_lock();
	for (t = current->group_leader; !found; t = rcu_dereference(t->real_parent)->group_leader) {
		found = task_pid(t) == root;
		if (t == rcu_access_pointer(t->real_parent) || is_global_init(t))
			break;
	}
	rcu_read_unlock();
	return found;
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
	if (!ckpt_in_subtree(root)) {
		put_pid(root);
		return ERR_PTR(ckpt_err(ctx, -EPERM,
					"pid %d is not in the tree of pid %d it restarts",
					task_pid_vnr(current), root_nr));
	}
	*first = false;
	mutex_lock(&ckpt_groups_lock);
	list_for_each_entry(g, &ckpt_groups, list) {
		if (g->root != root || g->image != image)
			continue;
		if (!uid_eq(current_euid(), g->euid)) {
			mutex_unlock(&ckpt_groups_lock);
			put_pid(root);
			return ERR_PTR(ckpt_err(ctx, -EPERM,
						"the restart of pid %d is another user's",
						root_nr));
		}
		refcount_inc(&g->users);
		mutex_unlock(&ckpt_groups_lock);
		put_pid(root);
		return g;
	}
	g = kzalloc(sizeof(*g), GFP_KERNEL);
	if (g) {
		g->root = root;
		g->image = image;
		g->euid = current_euid();
		refcount_set(&g->users, 1);
		init_waitqueue_head(&g->wq);
		g->progress = jiffies;
		g->ctx = ctx;
		ctx->progress = &g->progress;
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
	kfree(g->joined);
	put_pid(g->root);
	kfree(g);
}

/* Which task of the tree current is, checked against where it was created */
static int ckpt_group_index(struct ckpt_ctx *ctx, struct ckpt_group *g)
{
	pid_t pid = task_pid_vnr(current), tgid = task_tgid_vnr(current), parent;
	struct ckpt_pids *p;
	u32 i;

	for (i = 0; i < g->nr_tasks; i++)
		if (g->pids[i].pid == pid)
			break;
	if (i == g->nr_tasks)
		return ckpt_err(ctx, -ESRCH, "pid %d is not in the image's tree", pid);
	p = &g->pids[i];
	rcu_read_lock();
	parent = task_tgid_vnr(rcu_dereference(current->real_parent));
	rcu_read_unlock();
	if (tgid != p->tgid)
		return ckpt_err(ctx, -EINVAL, "pid %d is in thread group %d, not %d",
				pid, tgid, p->tgid);
	/* the root's process is where the restarter put it; any other, under its parent */
	if (p->tgid == g->pids[0].pid ? task_tgid(current) != g->root : parent != p->ppid)
		return ckpt_err(ctx, -EINVAL,
				"pid %d is not where the tree has it (parent %d, not %d)",
				pid, parent, p->ppid);
	return i;
}

/* Count current in; the first task of the group to do its part reads the image */
static int ckpt_group_arrive(struct ckpt_ctx *ctx, struct ckpt_group *g, bool first)
{
	int ret, idx;

	if (first) {
		ret = ckpt_read_image(ctx);
		if (!ret)
			ret = restore_header(ctx);
		if (!ret)
			ret = restore_tree(ctx, g);
		if (!ret) {
			g->joined = kcalloc(g->nr_tasks, sizeof(*g->joined), GFP_KERNEL);
			ret = g->joined ? 0 : -ENOMEM;
			/* the root may be a leader that exited: its threads start */
			g->done = ckpt_next_live(g, 0);
		}
		if (ret)
			ckpt_group_fail(g, ret);
		WRITE_ONCE(g->ready, true);
		ckpt_group_progress(g);
	}
	ret = ckpt_group_wait(ctx, g, ckpt_group_ready, 0, false);
	if (ret)
		return ret;
	mutex_lock(&ckpt_groups_lock);
	idx = ckpt_group_index(ctx, g);
	if (idx >= 0 && g->parts[idx]->h->type != CKPT_HDR_TASK)
		idx = ckpt_err(ctx, -EINVAL, "pid %d is a zombie in the image", g->pids[idx].pid);
	else if (idx >= 0 && g->joined[idx])
		idx = ckpt_err(ctx, -EINVAL, "pid %d called restart twice", g->pids[idx].pid);
	if (idx >= 0) {
		g->joined[idx] = true;
		WRITE_ONCE(g->nr_joined, g->nr_joined + 1);
	}
	mutex_unlock(&ckpt_groups_lock);
	if (idx < 0) {
		ckpt_group_fail(g, idx);
		return idx;
	}
	ckpt_group_progress(g);
	return idx;
}

long restore_self(struct ckpt_ctx **ctxp, pid_t root)
{
	struct ckpt_ctx *ctx = *ctxp;
	struct ckpt_group *g;
	bool first;
	long ax = 0;
	int ret, idx;

	if (current->flags & PF_KTHREAD || !current->mm)
		return -EINVAL;
	g = ckpt_group_join(ctxp, root, &first);
	if (IS_ERR(g))
		return PTR_ERR(g);
	ctx = g->ctx;
	idx = ckpt_group_arrive(ctx, g, first);
	if (idx < 0) {
		ret = idx;
		goto leave;
	}
	ret = ckpt_group_wait(ctx, g, ckpt_group_turn, idx, false);
	if (!ret && ckpt_first_of_group(g, idx))
		ret = ckpt_wait_zombies(ctx, g, idx);
	if (ret) {
		ckpt_group_fail(g, ret);
		goto leave;
	}

	/* our turn: the shared context is ours until we count ourselves done */
	ret = restore_prepare_task(ctx, g, idx);
	if (ret) {
		ckpt_ctx_reset_task(ctx);
		ckpt_group_fail(g, ret);
		goto leave;
	}
	ret = restore_commit_task(ctx, &ax);
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
	WRITE_ONCE(g->done, ckpt_next_live(g, idx + 1));
	ckpt_group_progress(g);

	/* nobody runs until everybody is rebuilt */
	ret = ckpt_group_wait(ctx, g, ckpt_group_done, idx, true);
	if (ret)
		force_sig(SIGKILL);
leave:
	ckpt_group_leave(g);
	return ret ? ckpt_user_errno(ret) : ax;
}
