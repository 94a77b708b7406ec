// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: the task tree.
 *
 * checkpoint_tree() is checkpoint(2): it finds the target and every
 * process below it, freezes them (freeze.c), checks that the caller may
 * ptrace-attach to each and that they share nothing the engine cannot
 * restore, writes the image (the TREE object first, so that userspace can
 * create the tasks before restart) and thaws (or kills) them.  At restart,
 * restore_tree() checks the TREE object and finds each task's part.
 */

#include <linux/pid.h>
#include <linux/ptrace.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/ktime.h>

#include "ckpt.h"

bool ckpt_in_tree(struct ckpt_tree *tree, struct task_struct *t)
{
	u32 i;

	for (i = 0; i < tree->nr; i++)
		if (tree->tasks[i] == t)
			return true;
	return false;
}

/* Add @t (referenced) to @tree, unless it is in it */
static int ckpt_tree_add(struct ckpt_tree *tree, struct task_struct *t)
{
	if (ckpt_in_tree(tree, t))
		return 0;
	if (tree->nr == CKPT_TASKS_MAX)
		return -E2BIG;
	get_task_struct(t);
	tree->zombie[tree->nr] = ckpt_zombie(t);
	tree->tasks[tree->nr++] = t;
	return 0;
}

/*
 * Add the threads of the processes in @tree and the children of its tasks
 * (with their threads) that are not in it yet.  The task list is walked
 * under RCU; tasklist_lock is not ours.
 */
int ckpt_tree_grow(struct ckpt_ctx *ctx, struct ckpt_tree *tree)
{
	struct task_struct *p, *t;
	int ret = 0;

	rcu_read_lock();
	for_each_process(p) {
		if (!ckpt_in_tree(tree, p) &&
		    !ckpt_in_tree(tree, rcu_dereference(p->real_parent)))
			continue;
		for_each_thread(p, t) {
			/* a thread that is exiting will not freeze; it is gone soon */
			if (t != p && (t->flags & PF_EXITING))
				continue;
			ret = ckpt_tree_add(tree, t);
			if (ret)
				goto out;
		}
	}
out:
	rcu_read_unlock();
	if (ret)
		return ckpt_err(ctx, ret, "more than %d tasks (threads included) in the tree",
				CKPT_TASKS_MAX);
	return 0;
}

/*
 * The order of the image: processes as they were found (every parent
 * before its children), each leader followed by its threads.
 */
static int ckpt_tree_order(struct ckpt_tree *tree)
{
	struct task_struct **order;
	bool *zombie;
	u32 i, j, n = 0;

	order = kvcalloc(tree->nr, sizeof(*order), GFP_KERNEL);
	zombie = kvcalloc(tree->nr, sizeof(*zombie), GFP_KERNEL);
	if (!order || !zombie) {
		kvfree(order);
		kvfree(zombie);
		return -ENOMEM;
	}
	for (i = 0; i < tree->nr; i++) {
		if (!thread_group_leader(tree->tasks[i]))
			continue;
		for (j = i; j < tree->nr; j++) {
			if (j != i && tree->tasks[j]->group_leader != tree->tasks[i])
				continue;
			if (j != i && thread_group_leader(tree->tasks[j]))
				continue;
			zombie[n] = tree->zombie[j];
			order[n++] = tree->tasks[j];
		}
	}
	if (!WARN_ON_ONCE(n != tree->nr)) {
		memcpy(tree->tasks, order, n * sizeof(*order));
		memcpy(tree->zombie, zombie, n * sizeof(*zombie));
	}
	kvfree(order);
	kvfree(zombie);
	return n == tree->nr ? 0 : -EINVAL;
}

/*
 * A parent waiting in vfork(2) for a child of the tree: at restart it
 * waits again, and gets the child's pid when the child execs or exits.
 */
static void ckpt_tree_vforks(struct ckpt_tree *tree)
{
	u32 i, j;

	for (i = 0; i < tree->nr; i++) {
		struct task_struct *c = tree->tasks[i], *parent;
		bool waited;

		if (tree->zombie[i])
			continue;
		task_lock(c);
		waited = c->vfork_done;
		task_unlock(c);
		if (!waited)
			continue;
		rcu_read_lock();
		parent = rcu_dereference(c->real_parent);
		rcu_read_unlock();
		for (j = 0; j < i; j++)
			if (tree->tasks[j] == parent)
				tree->vfork_child[j] = task_pid_vnr(c);
	}
}

static int checkpoint_tree_obj(struct ckpt_ctx *ctx, struct ckpt_tree *tree)
{
	struct ckpt_hdr_tree *h;
	struct ckpt_pids *p;
	size_t len = sizeof(*h) + tree->nr * sizeof(*p);
	u32 i;
	int ret;

	h = kzalloc(len, GFP_KERNEL);
	if (!h)
		return -ENOMEM;
	h->nr_tasks = tree->nr;
	p = (struct ckpt_pids *)(h + 1);
	for (i = 0; i < tree->nr; i++) {
		struct task_struct *t = tree->tasks[i];

		p[i].pid = task_pid_vnr(t);
		p[i].tgid = task_tgid_vnr(t);
		/* the root's parent is not in the tree; nor is that of its threads */
		if (p[i].tgid != p[0].pid) {
			rcu_read_lock();
			p[i].ppid = task_tgid_vnr(rcu_dereference(t->real_parent));
			rcu_read_unlock();
		}
		p[i].pgid = task_pgrp_vnr(t);
		p[i].sid = task_session_vnr(t);
	}
	ret = ckpt_write_obj(ctx, h, CKPT_HDR_TREE, len);
	kfree(h);
	return ret;
}

static int checkpoint_image(struct ckpt_ctx *ctx, struct ckpt_tree *tree)
{
	u32 i;
	int ret;

	ret = checkpoint_header(ctx);
	if (!ret)
		ret = checkpoint_tree_obj(ctx, tree);
	if (!ret)
		ret = checkpoint_namespaces(ctx, tree);	/* the root's own, once */
	/* after the namespaces' checks, which name what is wrong more precisely */
	if (!ret)
		ret = ckpt_share_leaks(ctx, tree);
	if (!ret)
		ret = checkpoint_chain(ctx, tree);
	for (i = 0; !ret && i < tree->nr; i++)
		ret = checkpoint_task(ctx, tree, i);
	return ret;
}

static void checkpoint_kill(struct ckpt_tree *tree)
{
	u32 i;

	for (i = 0; i < tree->nr; i++)
		send_sig(SIGKILL, tree->tasks[i], 1);
}

int checkpoint_may(struct ckpt_ctx *ctx, struct task_struct *t)
{
	pid_t pid = task_pid_vnr(t);

	/* only as the root: a task cannot freeze itself, nor be frozen for its own call */
	if (t == current && !ctx->self)
		return ckpt_err(ctx, -EINVAL,
				"pid %d is in the tree it checkpoints: only checkpoint(0, ...) checkpoints the caller",
				pid);
	if (t->flags & PF_KTHREAD)
		return ckpt_err(ctx, -EPERM, "pid %d is a kernel thread", pid);
	if (!ptrace_may_access(t, PTRACE_MODE_ATTACH_REALCREDS))
		return ckpt_err(ctx, -EPERM, "no permission to ptrace pid %d", pid);
	if (ckpt_zombie(t))
		return 0;
	if (t->exit_state || (t->flags & PF_EXITING))
		return ckpt_err(ctx, -ESRCH, "pid %d is exiting", pid);
	return 0;
}

/*
 * Once frozen: every task may be checkpointed and what they share can be
 * shared again (that nothing is shared outside the tree: checkpoint_image())
 */
static int checkpoint_may_tree(struct ckpt_ctx *ctx, struct ckpt_tree *tree)
{
	u32 i, j;
	int ret;

	ret = ckpt_tree_order(tree);
	for (i = 0; !ret && i < tree->nr; i++)
		ret = checkpoint_may(ctx, tree->tasks[i]);
	/* the threads of a process share theirs; processes may not */
	for (i = 0; !ret && i < tree->nr; i++)
		for (j = 0; !ret && j < i; j++)
			if (!tree->zombie[i] && !tree->zombie[j] &&
			    !same_thread_group(tree->tasks[i], tree->tasks[j]))
				ret = checkpoint_may_sem_undo(ctx, tree->tasks[i], tree->tasks[j]);
	if (!ret)
		ckpt_tree_vforks(tree);
	if (!ret)
		ret = ckpt_share_tree(ctx, tree);
	return ret;
}

long checkpoint_tree(struct ckpt_ctx *ctx, pid_t pid)
{
	bool cow = ctx->flags & CHECKPOINT_COW;
	bool kill = ctx->flags & CHECKPOINT_KILL;
	struct ckpt_tree *tree;
	struct task_struct *t;
	ktime_t t0, t1, t2;
	u32 i;
	int ret;

	if (pid < 0)
		return ckpt_err(ctx, -EINVAL, "bad pid %d", pid);
	if (!pid || pid == task_pid_vnr(current)) {
		/* self-checkpoint: the caller, in this call, is as still as a frozen task */
		ctx->self = true;
		t = get_task_struct(current->group_leader);
		pid = task_pid_vnr(t);
	} else {
		struct pid *p = find_get_pid(pid);

		t = get_pid_task(p, PIDTYPE_PID);
		put_pid(p);
	}
	if (!t)
		return ckpt_err(ctx, -ESRCH, "no process with pid %d", pid);
	tree = kvzalloc(sizeof(*tree), GFP_KERNEL);
	if (!tree) {
		put_task_struct(t);
		return -ENOMEM;
	}
	if (!thread_group_leader(t)) {
		ret = ckpt_err(ctx, -EINVAL, "pid %d is a thread: checkpoint its process, %d",
			       pid, task_tgid_vnr(t));
		goto out;
	}
	tree->tasks[tree->nr++] = t;
	tree->zombie[0] = ckpt_zombie(t);
	ret = tree->zombie[0] && thread_group_empty(t) ?
	      ckpt_err(ctx, -ESRCH, "pid %d is a zombie", pid) : checkpoint_may(ctx, t);
	if (ret)
		goto out;

	ctx->tree = tree;
	/* copy-on-write: the root's pages are shared while it still runs */
	if (cow) {
		ret = checkpoint_pages_early(ctx, t);
		if (ret)
			goto out;
	}
	t0 = ktime_get();
	ret = ckpt_freeze_tree(ctx, tree);
	t1 = ktime_get();
	/* frozen: whatever is true now stays true until we thaw */
	if (!ret)
		ret = ckpt_fault(ctx, CKPT_FAULT_DUMP_FROZEN, 0);
	if (!ret)
		ret = checkpoint_may_tree(ctx, tree);
	if (!ret) {
		int killed;

		ckpt_watchdog_start(tree);
		ret = checkpoint_image(ctx, tree);
		killed = ckpt_watchdog_stop(ctx, tree);
		ret = killed ?: ret;
	}
	if (!ret && !cow)
		ret = checkpoint_tail(ctx);
	if (!ret && !cow && kill)
		checkpoint_kill(tree);
	/* not to be killed now: its TCP connections leave repair mode before it runs */
	if (ret || !kill)
		checkpoint_inet_done(ctx, false);
	t2 = ktime_get();
	ckpt_thaw_tree(tree);
	/* copy-on-write: the tasks run again before their pages are written */
	if (!ret && cow)
		ret = ckpt_write_snapshots(ctx);
	if (!ret && cow)
		ret = checkpoint_tail(ctx);
	if (!ret && cow && kill)
		checkpoint_kill(tree);
	/* killed, its TCP connections die in repair mode, silently; else they leave it */
	checkpoint_inet_done(ctx, !ret && kill);
	ckpt_chain_done(ctx, !ret);
	ckpt_msg(ctx, "pid %d: %u tasks froze in %lld us, frozen for %lld us, done in %lld us\n",
		 pid, tree->nr, ktime_us_delta(t1, t0), ktime_us_delta(t2, t1),
		 ktime_us_delta(ktime_get(), t1));
out:
	ctx->tree = NULL;
	for (i = 0; i < tree->nr; i++)
		put_task_struct(tree->tasks[i]);
	kvfree(tree);
	/* a checkpoint cut short by a signal is not restarted: its image is written */
	if (ret == -ERESTARTSYS || ret == -ERESTARTNOINTR || ret == -ERESTARTNOHAND)
		return -EINTR;
	return ret;
}

/*
 * A zombie's part: the size it should be, the pid the tree says, and a
 * process (a thread exits without a trace); the root only if it is a
 * leader whose threads run on.
 */
static bool restore_zombie_ok(struct ckpt_obj *obj, struct ckpt_hdr_tree *tree, u32 n)
{
	struct ckpt_hdr_zombie *z = (struct ckpt_hdr_zombie *)obj->h;
	struct ckpt_pids *p = (struct ckpt_pids *)(tree + 1);

	return obj->h->len == sizeof(*z) && z->pid == p[n].pid && p[n].tgid == p[n].pid &&
	       (n || (tree->nr_tasks > 1 && p[1].tgid == p[0].pid));
}

/* Entry @i of the tree is sound given those before it */
static int restore_tree_entry(struct ckpt_ctx *ctx, struct ckpt_pids *p, u32 i)
{
	u32 j;

	if (p[i].pid <= 0 || p[i].tgid <= 0)
		return ckpt_err(ctx, -EINVAL, "TREE: bad pid %d", p[i].pid);
	for (j = 0; j < i; j++)
		if (p[j].pid == p[i].pid)
			return ckpt_err(ctx, -EINVAL, "TREE: pid %d twice", p[i].pid);
	if (p[i].tgid != p[i].pid) {
		/* a thread: right after its leader and its other threads, where they are */
		if (!i || p[i - 1].tgid != p[i].tgid)
			return ckpt_err(ctx, -EINVAL,
					"TREE: thread %d is not with its thread group %d",
					p[i].pid, p[i].tgid);
		for (j = i; p[j].pid != p[j].tgid; j--)
			;
		if (p[j].pid != p[i].tgid || p[j].ppid != p[i].ppid ||
		    p[j].pgid != p[i].pgid || p[j].sid != p[i].sid)
			return ckpt_err(ctx, -EINVAL, "TREE: thread %d differs from its leader %d",
					p[i].pid, p[i].tgid);
		return 0;
	}
	if (!i)
		return p[i].ppid ? ckpt_err(ctx, -EINVAL, "TREE: the root has a parent") : 0;
	for (j = 0; j < i; j++)
		if (p[j].pid == p[i].ppid && p[j].tgid == p[j].pid)
			return 0;
	return ckpt_err(ctx, -EINVAL, "TREE: pid %d has no parent before it", p[i].pid);
}

/* Which of the first @n parts a PAGES object belongs to: a live task's (@n if none) */
static u32 restore_pages_owner(struct ckpt_obj *obj, struct ckpt_pids *p,
			       struct ckpt_obj **parts, u32 n)
{
	s32 pid = ((struct ckpt_hdr_pages *)obj->h)->pid;
	u32 i;

	for (i = 0; i < n; i++)
		if (p[i].pid == pid && parts[i]->h->type == CKPT_HDR_TASK)
			return i;
	return n;
}

/*
 * The tree: every pid once, the root first, each parent before its
 * children, each leader followed by its threads; each task's part, and its
 * PAGES objects after it.
 */
int restore_tree(struct ckpt_ctx *ctx, struct ckpt_group *g)
{
	struct ckpt_obj **last, *obj;
	struct ckpt_hdr_tree *tree;
	struct ckpt_pids *p;
	u32 i, n = 0;
	int ret;

	tree = ckpt_next(ctx, CKPT_HDR_TREE, sizeof(*tree));
	if (IS_ERR(tree))
		return PTR_ERR(tree);
	if (!tree->nr_tasks || tree->nr_tasks > CKPT_TASKS_MAX ||
	    tree->h.len != sizeof(*tree) + tree->nr_tasks * sizeof(*p))
		return ckpt_err(ctx, -EINVAL, "bad TREE object (%u tasks)", tree->nr_tasks);
	p = (struct ckpt_pids *)(tree + 1);
	for (i = 0; i < tree->nr_tasks; i++) {
		ret = restore_tree_entry(ctx, p, i);
		if (ret)
			return ret;
	}
	ret = restore_prepare_namespaces(ctx);	/* the root's own, before the tasks */
	if (ret)
		return ret;
	g->parts = kcalloc(tree->nr_tasks, sizeof(*g->parts), GFP_KERNEL);
	g->pages = kcalloc(tree->nr_tasks, sizeof(*g->pages), GFP_KERNEL);
	last = kcalloc(tree->nr_tasks, sizeof(*last), GFP_KERNEL);
	if (!g->parts || !g->pages || !last) {
		kfree(last);
		return -ENOMEM;
	}
	obj = ctx->cur;
	if (obj) {
		list_for_each_entry_from(obj, &ctx->objs, list) {
			if (obj->h->type == CKPT_HDR_PAGES) {
				i = restore_pages_owner(obj, p, g->parts, n);
				if (i == n) {
					kfree(last);
					return ckpt_err(ctx, -EINVAL,
							"PAGES object %llu: its task is not before it",
							obj->index);
				}
				if (last[i])
					last[i]->next_pages = obj;
				else
					g->pages[i] = obj;
				last[i] = obj;
				continue;
			}
			if (obj->h->type != CKPT_HDR_TASK && obj->h->type != CKPT_HDR_ZOMBIE)
				continue;
			if (n == tree->nr_tasks) {
				kfree(last);
				return ckpt_err(ctx, -EINVAL,
						"more TASK objects than the tree has tasks");
			}
			if (obj->h->type == CKPT_HDR_ZOMBIE && !restore_zombie_ok(obj, tree, n)) {
				kfree(last);
				return ckpt_err(ctx, -EINVAL,
						"bad ZOMBIE object for pid %d", p[n].pid);
			}
			g->parts[n++] = obj;
		}
	}
	kfree(last);
	if (n != tree->nr_tasks)
		return ckpt_err(ctx, -EINVAL, "%u TASK objects for a tree of %u tasks",
				n, tree->nr_tasks);
	g->pids = p;
	g->nr_tasks = tree->nr_tasks;
	return 0;
}
