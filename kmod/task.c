// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: the task tree and the task.
 *
 * checkpoint_tree() freezes the target and every process below it with a
 * checkpoint hold (kernel patch 0003), so nobody can thaw them while their
 * state is copied, checks that the caller may ptrace-attach to each, writes
 * the image and thaws (or kills) them.  restore_self() is restart(2) with
 * RESTART_TASKSELF: the calling task becomes its checkpointed one, in a
 * restart group with the rest of the tree (see struct ckpt_group).  Each
 * task changes nothing until its part of the image has been read and
 * checked, and opens its files with the caller's credentials.
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

/* The tasks of one checkpoint: the root first, every parent before its children */
struct ckpt_tree {
	struct task_struct *tasks[CKPT_TASKS_MAX];
	u32 nr;
	u32 frozen;		/* the first frozen tasks hold a freeze, zombies excepted */
	bool zombie[CKPT_TASKS_MAX];
};

/* A zombie is saved as it is: it cannot freeze, and it only ends again */
static bool ckpt_zombie(struct task_struct *t)
{
	return READ_ONCE(t->exit_state) == EXIT_ZOMBIE;
}

static bool ckpt_in_tree(struct ckpt_tree *tree, struct task_struct *t)
{
	u32 i;

	for (i = 0; i < tree->nr; i++)
		if (tree->tasks[i] == t)
			return true;
	return false;
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
		if (i) {
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

static int checkpoint_image(struct ckpt_ctx *ctx, struct ckpt_tree *tree)
{
	u32 i;
	int ret;

	ret = checkpoint_header(ctx);
	if (!ret)
		ret = checkpoint_tree_obj(ctx, tree);
	for (i = 0; !ret && i < tree->nr; i++) {
		struct task_struct *t = tree->tasks[i];

		if (ckpt_zombie(t)) {
			struct ckpt_hdr_zombie z = {
				.pid = task_pid_vnr(t),
				.exit_code = READ_ONCE(t->exit_code),
			};

			ret = ckpt_write_obj(ctx, &z, CKPT_HDR_ZOMBIE, sizeof(z));
			continue;
		}
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
	}
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
	if (ckpt_zombie(t))
		return 0;
	if (t->exit_state)
		return ckpt_err(ctx, -ESRCH, "pid %d is exiting", pid);
	if (get_nr_threads(t) != 1)
		return ckpt_err(ctx, -EBUSY, "pid %d has %d threads; only single-threaded processes are supported",
				pid, get_nr_threads(t));
	if (t->flags & PF_EXITING)
		return ckpt_err(ctx, -ESRCH, "pid %d is exiting", pid);
	return 0;
}

/* Processes may share what clone(2) lets them share; the engine restores none of it */
static int checkpoint_may_tree(struct ckpt_ctx *ctx, struct ckpt_tree *tree)
{
	u32 i, j;

	for (i = 0; i < tree->nr; i++) {
		struct task_struct *a = tree->tasks[i];
		int ret = checkpoint_may(ctx, a);

		if (ret)
			return ret;
		for (j = 0; j < i && !tree->zombie[i]; j++) {
			struct task_struct *b = tree->tasks[j];
			const char *what = tree->zombie[j] ? NULL :
					   a->mm == b->mm ? "address space" :
					   a->files == b->files ? "fd table" :
					   a->fs == b->fs ? "fs_struct" : NULL;

			if (what)
				return ckpt_err(ctx, -EOPNOTSUPP, "pids %d and %d share one %s: not supported",
						task_pid_vnr(b), task_pid_vnr(a), what);
		}
	}
	return 0;
}

/*
 * Freeze the root, then level by level the children of what is frozen: a
 * frozen task cannot fork, so when a pass finds no new child the tree is
 * complete.  The task list is walked under RCU; tasklist_lock is not ours.
 */
static int checkpoint_freeze_tree(struct ckpt_ctx *ctx, struct ckpt_tree *tree)
{
	int ret;

	for (;;) {
		struct task_struct *p;
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
		rcu_read_lock();
		for_each_process(p) {
			if (ckpt_in_tree(tree, p) ||
			    !ckpt_in_tree(tree, rcu_dereference(p->real_parent)))
				continue;
			if (tree->nr == CKPT_TASKS_MAX) {
				rcu_read_unlock();
				return ckpt_err(ctx, -E2BIG, "more than %d processes in the tree",
						CKPT_TASKS_MAX);
			}
			get_task_struct(p);
			tree->zombie[tree->nr] = ckpt_zombie(p);
			tree->tasks[tree->nr++] = p;
		}
		rcu_read_unlock();
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

long checkpoint_tree(struct ckpt_ctx *ctx, pid_t pid)
{
	struct ckpt_tree *tree;
	struct task_struct *t;
	ktime_t t0, t1;
	u32 i;
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
	tree = kvzalloc(sizeof(*tree), GFP_KERNEL);
	if (!tree) {
		put_task_struct(t);
		return -ENOMEM;
	}
	tree->tasks[tree->nr++] = t;
	ret = ckpt_zombie(t) ? ckpt_err(ctx, -ESRCH, "pid %d is a zombie", pid) :
			       checkpoint_may(ctx, t);
	if (ret)
		goto out;

	t0 = ktime_get();
	ret = checkpoint_freeze_tree(ctx, tree);
	t1 = ktime_get();
	/* frozen: whatever is true now stays true until we thaw */
	if (!ret)
		ret = checkpoint_may_tree(ctx, tree);
	if (!ret)
		ret = checkpoint_image(ctx, tree);
	for (i = 0; !ret && (ctx->flags & CHECKPOINT_KILL) && i < tree->nr; i++)
		send_sig(SIGKILL, tree->tasks[i], 1);
	for (i = 0; i < tree->frozen; i++)
		if (!tree->zombie[i])
			ckpt_thaw_task(tree->tasks[i]);
	ckpt_msg(ctx, "pid %d: %u tasks froze in %lld us, frozen for %lld us\n", pid, tree->nr,
		 ktime_us_delta(t1, t0), ktime_us_delta(ktime_get(), t1));
out:
	for (i = 0; i < tree->nr; i++)
		put_task_struct(tree->tasks[i]);
	kvfree(tree);
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

/*
 * A restart group: the tasks of one image restarting together, each
 * calling restart(root, fd, RESTART_TASKSELF, logfd) from the place
 * userspace created it in (clone_with_pids).  The first to arrive reads
 * and checks the image once; then the tasks rebuild themselves one at a
 * time in tree order, so an open file defined in one task's part of the
 * image is there for the later ones, and none returns to userspace before
 * all are done.  If one fails, those already rebuilt are killed and the
 * others return the error unchanged: no half-restored tree ever runs.
 */
struct ckpt_group {
	struct list_head list;
	struct pid *root;	/* with the image, names the group */
	struct inode *image;
	refcount_t users;
	wait_queue_head_t wq;
	struct ckpt_ctx *ctx;	/* the image and its objects, shared */
	struct ckpt_pids *pids;	/* the tree, in image order */
	struct ckpt_obj **parts;	/* each task's TASK object */
	u32 nr_tasks;
	u32 done;		/* tasks rebuilt, in tree order */
	bool ready;		/* image read and checked */
	int error;
};

#define CKPT_RESTART_TIMEOUT	(60 * HZ)

static LIST_HEAD(ckpt_groups);
static DEFINE_MUTEX(ckpt_groups_lock);

static void ckpt_group_fail(struct ckpt_group *g, int err)
{
	if (!READ_ONCE(g->error))
		WRITE_ONCE(g->error, err ? err : -EINVAL);
	wake_up_all(&g->wq);
}

/* Wait for @cond or a failure of the group; a timeout fails the group */
#define ckpt_group_wait(g, cond) ({					\
	long __t = wait_event_killable_timeout((g)->wq,			\
				(cond) || READ_ONCE((g)->error),	\
				CKPT_RESTART_TIMEOUT);			\
	if (!__t)							\
		ckpt_group_fail(g, -ETIMEDOUT);				\
	else if (__t < 0)						\
		ckpt_group_fail(g, -EINTR);				\
	READ_ONCE((g)->error);						\
})

/* A zombie's part: never the root, the size it should be, the pid the tree says */
static bool restore_zombie_ok(struct ckpt_obj *obj, struct ckpt_pids *p, u32 n)
{
	struct ckpt_hdr_zombie *z = (struct ckpt_hdr_zombie *)obj->h;

	return n && obj->h->len == sizeof(*z) && z->pid == p[n].pid;
}

/* The tree: every pid once, the root first, each parent before its children */
static int restore_tree(struct ckpt_ctx *ctx, struct ckpt_group *g)
{
	struct ckpt_hdr_tree *tree;
	struct ckpt_obj *obj;
	struct ckpt_pids *p;
	u32 i, j, n = 0;

	tree = ckpt_next(ctx, CKPT_HDR_TREE, sizeof(*tree));
	if (IS_ERR(tree))
		return PTR_ERR(tree);
	if (!tree->nr_tasks || tree->nr_tasks > CKPT_TASKS_MAX ||
	    tree->h.len != sizeof(*tree) + tree->nr_tasks * sizeof(*p))
		return ckpt_err(ctx, -EINVAL, "bad TREE object (%u tasks)", tree->nr_tasks);
	p = (struct ckpt_pids *)(tree + 1);
	for (i = 0; i < tree->nr_tasks; i++) {
		bool parent = !i && !p[i].ppid;

		if (p[i].pid <= 0 || p[i].tgid != p[i].pid)
			return ckpt_err(ctx, -EINVAL, "TREE: bad pid %d", p[i].pid);
		for (j = 0; j < i; j++) {
			if (p[j].pid == p[i].pid)
				return ckpt_err(ctx, -EINVAL, "TREE: pid %d twice", p[i].pid);
			parent |= p[j].pid == p[i].ppid;
		}
		if (!parent)
			return ckpt_err(ctx, -EINVAL, "TREE: pid %d has no parent before it", p[i].pid);
	}
	g->parts = kcalloc(tree->nr_tasks, sizeof(*g->parts), GFP_KERNEL);
	if (!g->parts)
		return -ENOMEM;
	obj = ctx->cur;
	if (obj) {
		list_for_each_entry_from(obj, &ctx->objs, list) {
			if (obj->h->type != CKPT_HDR_TASK && obj->h->type != CKPT_HDR_ZOMBIE)
				continue;
			if (n == tree->nr_tasks)
				return ckpt_err(ctx, -EINVAL, "more TASK objects than the tree has tasks");
			if (obj->h->type == CKPT_HDR_ZOMBIE && !restore_zombie_ok(obj, p, n))
				return ckpt_err(ctx, -EINVAL, "bad ZOMBIE object for pid %d", p[n].pid);
			g->parts[n++] = obj;
		}
	}
	if (n != tree->nr_tasks)
		return ckpt_err(ctx, -EINVAL, "%u TASK objects for a tree of %u tasks",
				n, tree->nr_tasks);
	g->pids = p;
	g->nr_tasks = tree->nr_tasks;
	return 0;
}

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

/* Read and check this task's part; opens files but changes nothing of current */
static int restore_prepare(struct ckpt_ctx *ctx, struct ckpt_group *g, u32 idx)
{
	int ret;

	ctx->cur = g->parts[idx];
	ret = restore_task_obj(ctx);
	if (!ret && ctx->task->pid != g->pids[idx].pid)
		ret = ckpt_err(ctx, -EINVAL, "TASK object %u is pid %d, the tree says %d",
			       idx, ctx->task->pid, g->pids[idx].pid);
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
	if (!ret && (idx + 1 < g->nr_tasks ? ctx->cur != g->parts[idx + 1] :
					     ckpt_peek(ctx) != CKPT_HDR_TAIL))
		ret = ckpt_err(ctx, -EINVAL, "unexpected %s object at the end of pid %d",
			       ckpt_type_name(ckpt_peek(ctx)), g->pids[idx].pid);
	return ret;
}

/* Point of no return: on failure the task is killed, never returned to */
static int restore_commit(struct ckpt_ctx *ctx, long *ax)
{
	int ret;

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
	if (ret)
		return ret;
	/* last: the credentials may take away what the steps above needed */
	restore_cred(ctx);
	/* the mask first, so that requeued signals stay pending if blocked */
	restore_signal(ctx);
	task_lock(current);
	strscpy_pad(current->comm, ctx->task->comm, sizeof(current->comm));
	task_unlock(current);
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
		return ckpt_err(ctx, -EINVAL, "pid %d is not where the tree has it (parent %d, not %d)",
				pid, parent, g->pids[i].ppid);
	return i;
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
	if (!thread_group_empty(current) || atomic_read(&current->mm->mm_users) != 1)
		return ckpt_err(ctx, -EBUSY, "the restarting task must be single-threaded and own its mm");
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
	ret = restore_prepare(ctx, g, idx);
	if (ret) {
		ckpt_ctx_reset_task(ctx);
		ckpt_group_fail(g, ret);
		goto leave;
	}
	ret = restore_commit(ctx, &ax);
	if (ret) {
		ckpt_msg(ctx, "restart of pid %d failed after the task was changed (%d): killing the tree\n",
			 g->pids[idx].pid, ret);
		ckpt_ctx_reset_task(ctx);
		ckpt_group_fail(g, ret);
		force_sig(SIGKILL);
		goto leave;
	}
	ckpt_msg(ctx, "restarted pid %d (%s)\n", ctx->task->pid, ctx->task->comm);
	ckpt_ctx_reset_task(ctx);
	WRITE_ONCE(g->done, ckpt_next_live(g, idx + 1));
	wake_up_all(&g->wq);

	/* nobody runs until everybody is rebuilt */
	ret = ckpt_group_wait(g, READ_ONCE(g->done) == g->nr_tasks);
	if (ret)
		force_sig(SIGKILL);
leave:
	ckpt_group_leave(g);
	return ret ? ret : ax;
}
