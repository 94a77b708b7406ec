// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: the restart group.
 *
 * restart(root, fd, RESTART_TASKSELF, logfd), called by the root of the
 * tree (userspace created it with clone_with_pids(2), its pid, session and
 * process group), starts a group: it reads and checks the image once, and
 * every task of the tree then rebuilds itself, one at a time in tree
 * order, each taking its turn once the tasks before it are done.  A task
 * is rebuilt in two halves around the cloning of the tasks it creates
 * (spawn.c): first its fd table, cwd and address space, then, once its
 * children and threads are cloned from it, its limits, registers,
 * credentials and signal state.  The others join the group by calling
 * restart(root, -1, RESTART_TASKSELF, -1) from the stub they were cloned
 * into.  None returns to its program before all are done; if one fails,
 * those already rebuilt are killed and the rest end with the error: no
 * half-restored tree ever runs.
 *
 * Only the root's own task starts a group, and only tasks the group
 * cloned join it: anybody else calling restart(2) with the same root gets
 * EPERM and leaves it alone.  The group gives up when none of its members
 * has got on for restart_idle_timeout seconds (a large tree takes as long
 * as it takes), or at once when a member is gone.  A signal to the root
 * before it is rebuilt ends the restart with EINTR (the others block
 * signals while they are rebuilt); no member ever returns -ERESTARTSYS.
 */

#include <linux/cred.h>
#include <linux/delay.h>
#include <linux/fdtable.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/fs_struct.h>
#include <linux/moduleparam.h>
#include <linux/mutex.h>
#include <linux/pid.h>
#include <linux/resource.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/workqueue.h>
#include <asm/unistd.h>

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

/* A member the group counts on whose task is gone (killed, say, in the stub) */
static pid_t ckpt_group_missing(struct ckpt_group *g)
{
	pid_t gone = 0;
	u32 i;

	mutex_lock(&g->lock);
	for (i = 0; i < g->nr_tasks && !gone; i++) {
		struct ckpt_member *m = &g->members[i];
		struct task_struct *t;

		if (!m->pid || m->state == CKPT_MEMBER_ENDED)
			continue;
		rcu_read_lock();
		t = pid_task(m->pid, PIDTYPE_PID);
		if (!t || (t->flags & PF_EXITING))
			gone = pid_vnr(m->pid);
		rcu_read_unlock();
	}
	mutex_unlock(&g->lock);
	return gone;
}

typedef bool (*ckpt_group_cond)(struct ckpt_group *g, u32 idx);

/* The tasks before @idx are rebuilt */
static bool ckpt_group_turn(struct ckpt_group *g, u32 idx)
{
	return READ_ONCE(g->done) == idx;
}

static bool ckpt_group_done(struct ckpt_group *g, u32 idx)
{
	return READ_ONCE(g->done) == g->nr_tasks;
}

/* Every terminal has its foreground group: nobody's first write finds it in the background */
static bool ckpt_group_foreground(struct ckpt_group *g, u32 idx)
{
	return !atomic_read(&g->fg_pending);
}

/*
 * Wait for @cond or a failure of the group.  Before it is rebuilt, the
 * root gives up on any signal (EINTR for all); every other wait ends only
 * when the task is killed: a signal to it is its program's, for later.
 */
static int ckpt_group_wait(struct ckpt_ctx *ctx, struct ckpt_group *g, ckpt_group_cond cond,
			   u32 idx, bool interruptible)
{
	for (;;) {
		pid_t gone = 0;
		long left;

		if (READ_ONCE(g->error))
			return READ_ONCE(g->error);
		if (cond(g, idx))
			return 0;
		if (interruptible)
			left = wait_event_interruptible_timeout(g->wq,
								cond(g, idx) || READ_ONCE(g->error),
								HZ);
		else
			left = wait_event_killable_timeout(g->wq,
							   cond(g, idx) || READ_ONCE(g->error), HZ);
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
			ckpt_err(ctx, -ESRCH, "pid %d is gone before the tree was rebuilt", gone);
			ckpt_group_fail(g, -ESRCH);
		}
	}
}

/* The first task from @i on that restarts (zombies only end again) */
static u32 ckpt_next_live(struct ckpt_group *g, u32 i)
{
	while (i < g->nr_tasks && g->parts[i]->h->type == CKPT_HDR_ZOMBIE)
		i++;
	return i;
}

bool ckpt_group_first_live(struct ckpt_group *g, u32 idx)
{
	u32 j;

	if (g->parts[idx]->h->type != CKPT_HDR_TASK)
		return false;
	for (j = 0; j < idx; j++)
		if (g->pids[j].tgid == g->pids[idx].tgid && g->parts[j]->h->type == CKPT_HDR_TASK)
			return false;
	return true;
}

/*
 * Before the first task of a thread group replaces its signal state: its
 * zombie children, and its leader if that exited, are zombies already, so
 * that what their exit sent is in and gets dropped with what else the
 * task had before.
 */
static int ckpt_wait_zombies(struct ckpt_ctx *ctx, struct ckpt_group *g, u32 idx)
{
	pid_t tgid = g->pids[idx].tgid;
	u32 j;

	for (j = 0; j < g->nr_tasks; j++) {
		unsigned long until = jiffies + msecs_to_jiffies(CKPT_FREEZE_TIMEOUT_MS);
		struct task_struct *t;

		if (g->parts[j]->h->type != CKPT_HDR_ZOMBIE ||
		    (g->pids[j].ppid != tgid && g->pids[j].pid != tgid))
			continue;
		t = get_pid_task(find_vpid(g->pids[j].pid), PIDTYPE_PID);
		/* it was cloned before us; its last steps are quick, but not timed */
		while (t && !ckpt_zombie(t) && time_before(jiffies, until) &&
		       !fatal_signal_pending(current) && !READ_ONCE(g->error))
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

static void ckpt_group_free(struct ckpt_group *g)
{
	u32 i;

	for (i = 0; g->members && i < g->nr_tasks; i++) {
		put_pid(g->members[i].pid);
		if (g->members[i].fg_tty)
			fput(g->members[i].fg_tty);
	}
	ckpt_ctx_free(g->ctx);
	kfree(g->parts);
	kfree(g->pages);
	kvfree(g->members);
	put_pid(g->root);
	kfree(g);
}

/*
 * The reaper: a member that died in the stub never comes back for its
 * reference; every second, fail the groups that lost one and let go of
 * what those hold.  It also frees every group whose last reference is
 * dropped: a task's last fput() of a file is done on its way back to user
 * mode, and a vfork(2) parent, often the last to leave, first waits for
 * its child, which the tree only lets go once the log pipe and the FIFO
 * ends the group holds are closed.  From a work item they close at once.
 */
static void ckpt_reap(struct work_struct *work);
static DECLARE_DELAYED_WORK(ckpt_reaper, ckpt_reap);
static LIST_HEAD(ckpt_dead_groups);

/* Drop a reference: each member holds one from its first call until it is done */
static void ckpt_group_put(struct ckpt_group *g)
{
	mutex_lock(&ckpt_groups_lock);
	if (refcount_dec_and_test(&g->users)) {
		list_move(&g->list, &ckpt_dead_groups);
		mod_delayed_work(system_wq, &ckpt_reaper, 0);
	}
	mutex_unlock(&ckpt_groups_lock);
}

/*
 * The members @creator cloned, or was cloning, that never came in: gone
 * with it, or never created.  Each holds a reference from its cloning
 * that nobody else would drop (the reaper knows no pid of theirs), and the
 * group would hold the log pipe open for good.  Called with g->lock held;
 * how many references the caller is to drop.
 */
static u32 ckpt_members_orphaned(struct ckpt_group *g, struct pid *creator)
{
	u32 i, n = 0;

	for (i = 0; i < g->nr_tasks; i++) {
		struct ckpt_member *m = &g->members[i];

		if (m->state != CKPT_MEMBER_CREATED || m->pid || m->creator != creator)
			continue;
		m->state = CKPT_MEMBER_ENDED;
		n++;
	}
	return n;
}

/* Member @idx is done with the group, for good; a failed one with what it cloned */
static void ckpt_member_end(struct ckpt_group *g, u32 idx, bool failed)
{
	struct ckpt_member *m = &g->members[idx];
	u32 drops;

	mutex_lock(&g->lock);
	drops = m->state != CKPT_MEMBER_ENDED;
	m->state = CKPT_MEMBER_ENDED;
	if (failed)
		drops += ckpt_members_orphaned(g, task_pid(current));
	mutex_unlock(&g->lock);
	while (drops--)
		ckpt_group_put(g);
}

static void ckpt_reap(struct work_struct *work)
{
	struct ckpt_group *g, *n;
	LIST_HEAD(dead);
	u32 i;

	mutex_lock(&ckpt_groups_lock);
	list_splice_init(&ckpt_dead_groups, &dead);
	list_for_each_entry_safe(g, n, &ckpt_groups, list) {
		mutex_lock(&g->lock);
		for (i = 0; i < g->nr_tasks; i++) {
			struct ckpt_member *m = &g->members[i];
			struct task_struct *t;
			u32 drops;
			bool gone;

			if (!m->pid || m->state == CKPT_MEMBER_ENDED || m->in_call)
				continue;
			/*
			 * Exiting is gone: an unreaped root keeps its pid, and
			 * cr-mktree reaps it only once the log pipe is closed
			 */
			rcu_read_lock();
			t = pid_task(m->pid, PIDTYPE_PID);
			gone = !t || (t->flags & PF_EXITING);
			rcu_read_unlock();
			if (!gone)
				continue;
			m->state = CKPT_MEMBER_ENDED;
			ckpt_group_fail(g, -ESRCH);
			/* its own reference, and those of what it cloned that never came in */
			drops = 1 + ckpt_members_orphaned(g, m->pid);
			if (refcount_sub_and_test(drops, &g->users))
				list_move(&g->list, &dead);
		}
		mutex_unlock(&g->lock);
	}
	if (!list_empty(&ckpt_groups))
		schedule_delayed_work(&ckpt_reaper, HZ);
	mutex_unlock(&ckpt_groups_lock);
	list_for_each_entry_safe(g, n, &dead, list)
		ckpt_group_free(g);
}

/* Module exit: the groups left are of tasks that will not come back to this engine */
void ckpt_groups_exit(void)
{
	struct ckpt_group *g, *n;

	cancel_delayed_work_sync(&ckpt_reaper);
	list_splice_init(&ckpt_dead_groups, &ckpt_groups);
	list_for_each_entry_safe(g, n, &ckpt_groups, list) {
		list_del(&g->list);
		ckpt_group_free(g);
	}
}

static struct ckpt_group *ckpt_group_find(struct pid *root)
{
	struct ckpt_group *g;

	list_for_each_entry(g, &ckpt_groups, list)
		if (g->root == root)
			return g;
	return NULL;
}

/* Start the group of the root, current; it takes over *@ctxp */
static struct ckpt_group *ckpt_group_start(struct ckpt_ctx **ctxp, pid_t root_nr)
{
	struct ckpt_ctx *ctx = *ctxp;
	struct pid *root = get_task_pid(current, PIDTYPE_PID);
	struct ckpt_group *g;

	if (root_nr && root_nr != task_pid_vnr(current)) {
		put_pid(root);
		return ERR_PTR(ckpt_err(ctx, -EPERM,
					"only the root of the tree restarts with the image: pid %d is not %d",
					task_pid_vnr(current), root_nr));
	}
	g = kzalloc(sizeof(*g), GFP_KERNEL);
	if (!g) {
		put_pid(root);
		return ERR_PTR(-ENOMEM);
	}
	g->root = root;
	g->euid = current_euid();
	refcount_set(&g->users, 1);
	init_waitqueue_head(&g->wq);
	mutex_init(&g->lock);
	g->progress = jiffies;
	g->ctx = ctx;
	ctx->progress = &g->progress;
	mutex_lock(&ckpt_groups_lock);
	if (ckpt_group_find(root)) {
		mutex_unlock(&ckpt_groups_lock);
		put_pid(root);
		kfree(g);
		return ERR_PTR(ckpt_err(ctx, -EBUSY, "pid %d is restarting already", root_nr));
	}
	*ctxp = NULL;
	list_add(&g->list, &ckpt_groups);
	schedule_delayed_work(&ckpt_reaper, HZ);
	mutex_unlock(&ckpt_groups_lock);
	return g;
}

/* The image, read and checked, and the members of the tree */
static int ckpt_group_read(struct ckpt_ctx *ctx, struct ckpt_group *g)
{
	int ret;

	ret = ckpt_read_image(ctx);
	if (!ret)
		ret = restore_header(ctx);
	if (!ret)
		ret = restore_tree(ctx, g);
	if (!ret)
		ret = restore_chain(ctx);
	if (ret)
		return ret;
	g->members = kvcalloc(g->nr_tasks, sizeof(*g->members), GFP_KERNEL);
	if (!g->members)
		return -ENOMEM;
	if (g->pids[0].pid != task_pid_vnr(current) || g->pids[0].tgid != task_tgid_vnr(current))
		return ckpt_err(ctx, -EINVAL, "the image's root is pid %d, not %d",
				g->pids[0].pid, task_pid_vnr(current));
	g->members[0].pid = get_task_pid(current, PIDTYPE_PID);
	g->members[0].state = CKPT_MEMBER_IN;
	/* a root that cr-mktree -p gave its pid in both namespaces: its tree too */
	g->outer_pids = g->members[0].pid->level &&
			g->members[0].pid->numbers[g->members[0].pid->level - 1].nr ==
			g->pids[0].pid;
	/* the root may be a leader that exited: its threads start */
	g->done = ckpt_next_live(g, 0);
	return 0;
}

/*
 * restart(root, -1, RESTART_TASKSELF, -1) from the stub: the group of
 * @root_nr, and which of its members current is.  A task the group cloned
 * comes in for the first time where its creator put it; any other caller
 * is turned away and changes nothing.
 */
static struct ckpt_group *ckpt_group_rejoin(pid_t root_nr, u32 *idx)
{
	struct pid *root = find_get_pid(root_nr);
	pid_t pid = task_pid_vnr(current);
	struct ckpt_group *g;
	u32 i;

	if (!root)
		return ERR_PTR(-ESRCH);
	mutex_lock(&ckpt_groups_lock);
	g = ckpt_group_find(root);
	put_pid(root);
	if (!g || !g->members)
		goto out;
	mutex_lock(&g->lock);
	for (i = 0; i < g->nr_tasks; i++) {
		struct ckpt_member *m = &g->members[i];

		if (g->pids[i].pid != pid || m->in_call)
			continue;
		if (m->state == CKPT_MEMBER_CREATED && task_tgid_vnr(current) == g->pids[i].tgid &&
		    m->creator == task_pid(g->pids[i].pid == g->pids[i].tgid ?
					   rcu_access_pointer(current->real_parent) :
					   current->group_leader)) {
			if (!m->pid)
				m->pid = get_task_pid(current, PIDTYPE_PID);
			m->state = CKPT_MEMBER_IN;
		} else if (m->state == CKPT_MEMBER_CREATED || m->state == CKPT_MEMBER_ENDED ||
			   m->pid != task_pid(current)) {
			break;
		}
		m->in_call = true;
		*idx = i;
		mutex_unlock(&g->lock);
		refcount_inc(&g->users);
		mutex_unlock(&ckpt_groups_lock);
		return g;
	}
	mutex_unlock(&g->lock);
out:
	mutex_unlock(&ckpt_groups_lock);
	return ERR_PTR(-EPERM);
}

/* The session and process group of a process the group cloned: one stub call each */
static long ckpt_member_setpgrp(struct ckpt_ctx *ctx, struct ckpt_group *g, u32 idx)
{
	struct ckpt_pids *p = &g->pids[idx];
	pid_t root = g->pids[0].pid;
	u32 j;

	if (p->sid == p->pid && task_session_vnr(current) != p->pid)
		return ckpt_stub_call(ctx, root, __NR_setsid, 0, 0, 0, 0, 0);
	if (task_pgrp_vnr(current) == p->pgid)
		return 0;
	if (p->pgid == p->pid)
		return ckpt_stub_call(ctx, root, __NR_setpgid, 0, 0, 0, 0, 0);
	/* a group whose leader the tree has made already (as cr-mktree does) */
	for (j = 0; j < idx; j++)
		if (g->pids[j].pid == p->pgid)
			return ckpt_stub_call(ctx, root, __NR_setpgid, 0, p->pgid, 0, 0, 0);
	return 0;
}

/* A zombie of the tree ends the way it ended: its exit code, or its signal (no core) */
static long ckpt_member_end_zombie(struct ckpt_ctx *ctx, struct ckpt_group *g, u32 idx)
{
	struct ckpt_hdr_zombie *z = (struct ckpt_hdr_zombie *)g->parts[idx]->h;
	pid_t root = g->pids[0].pid;
	int status = z->exit_code;

	task_lock(current);
	strscpy_pad(current->comm, z->comm, sizeof(current->comm));
	task_unlock(current);
	g->members[idx].last = true;
	/* a leader whose threads run on ends alone */
	if (idx + 1 < g->nr_tasks && g->pids[idx + 1].tgid == g->pids[idx].pid)
		return ckpt_stub_call(ctx, root, __NR_exit, (status >> 8) & 0xff, 0, 0, 0, 0);
	if (status & 0x7f) {
		int sig = status & 0x7f;
		sigset_t mask;

		if (!valid_signal(sig) || sig == SIGSTOP)
			return ckpt_err(ctx, -EINVAL, "zombie %d: bad wait status %#x",
					g->pids[idx].pid, status);

		kernel_sigaction(sig, SIG_DFL);
		sigemptyset(&mask);
		sigaddset(&mask, sig);
		sigprocmask(SIG_UNBLOCK, &mask, NULL);
		task_lock(current->group_leader);
		current->signal->rlim[RLIMIT_CORE].rlim_cur = 0;
		task_unlock(current->group_leader);
		return ckpt_stub_call(ctx, root, __NR_kill, task_tgid_vnr(current), sig, 0, 0, 0);
	}
	return ckpt_stub_call(ctx, root, __NR_exit_group, (status >> 8) & 0xff, 0, 0, 0, 0);
}

/* Block every signal a task can while the stub runs in it */
static void ckpt_block_signals(void)
{
	sigset_t all;

	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
}

/*
 * Clone the next task @idx creates, or 0 when none is left.  Checks what
 * the last clone returned.
 */
static long ckpt_member_spawn(struct ckpt_ctx *ctx, struct ckpt_group *g, u32 idx)
{
	struct ckpt_member *m = &g->members[idx];
	pid_t root = g->pids[0].pid;
	u64 flags;
	long ret;
	u32 j;

	if (m->cloning) {
		long got = ckpt_stub_result();
		struct ckpt_member *c = &g->members[m->next - 1];

		/* as cr-mktree: the pid outside the tree's pid namespace only where it is free */
		if (got == -EBUSY && g->outer_pids && !m->inner_only) {
			m->inner_only = true;
			return ckpt_stub_clone(ctx, root, ckpt_spawn_flags(g, idx, m->next - 1),
					       m->cloning, false);
		}
		m->inner_only = false;
		if (got != m->cloning) {
			ckpt_member_end(g, m->next - 1, false);
			return ckpt_err(ctx, got < 0 ? got : -EINVAL, "cannot create pid %d (%ld)",
					m->cloning, got);
		}
		/* so that the reaper sees it if it dies before it comes in */
		mutex_lock(&g->lock);
		if (!c->pid)
			c->pid = find_get_pid(got);
		mutex_unlock(&g->lock);
		m->cloning = 0;
		ckpt_group_progress(g);
	}
	for (j = m->next; j < g->nr_tasks; j++)
		if (ckpt_spawn_creates(g, idx, j))
			break;
	if (j == g->nr_tasks)
		return 0;
	m->next = j + 1;
	flags = ckpt_spawn_flags(g, idx, j);
	mutex_lock(&g->lock);
	g->members[j].state = CKPT_MEMBER_CREATED;
	g->members[j].creator = task_pid(current);
	g->members[j].forked_mm = flags & CLONE_VM ? 0 : ckpt_spawn_share(g, idx, CKPT_SHARE_MM);
	/* its reference, held from now: its creator may be gone when it comes in */
	refcount_inc(&g->users);
	mutex_unlock(&g->lock);
	m->cloning = g->pids[j].pid;
	ret = ckpt_stub_clone(ctx, root, flags, g->pids[j].pid, g->outer_pids);
	if (ret < 0) {
		m->cloning = 0;
		ckpt_member_end(g, j, false);
		return ckpt_err(ctx, ret, "pid %d: cannot set up the clone of pid %d in its stub",
				g->pids[idx].pid, g->pids[j].pid);
	}
	return ret;
}

/*
 * What member @idx does in this call, from where it left off: > 0 is a
 * system call to make in the stub (restart(2) returns it), 0 the end,
 * with *@ax what it returns to its program.
 */
static long ckpt_member_run(struct ckpt_ctx *ctx, struct ckpt_group *g, u32 idx, long *ax)
{
	struct ckpt_member *m = &g->members[idx];
	bool root = !idx;
	long ret;

	switch (m->state) {
	case CKPT_MEMBER_IN:
		if (m->step == CKPT_STEP_NONE) {
			/* before its first return to the stub: no signal, no rseq */
			ckpt_block_signals();
			restore_thread_clear();
			m->step = CKPT_STEP_PGRP;
		}
		if (m->step == CKPT_STEP_PGRP && !root &&
		    g->pids[idx].pid == g->pids[idx].tgid) {
			if (m->issued && ckpt_stub_result() < 0)
				return ckpt_err(ctx, ckpt_stub_result(),
						"pid %d: cannot take its session or process group",
						g->pids[idx].pid);
			ret = ckpt_member_setpgrp(ctx, g, idx);
			m->issued = ret > 0;
			if (ret)
				return ret;
		}
		m->issued = false;
		if (g->parts[idx]->h->type == CKPT_HDR_ZOMBIE) {
			/* before it ends, a leader makes its threads */
			if (root && !ctx->stub) {
				ret = ckpt_stub_map(ctx);
				if (ret)
					return ret;
			}
			ret = ckpt_member_spawn(ctx, g, idx);
			return ret ?: ckpt_member_end_zombie(ctx, g, idx);
		}
		ret = ckpt_group_wait(ctx, g, ckpt_group_turn, idx, root);
		if (ret)
			return ret;
		/* our turn: the shared context is ours until we count ourselves done */
		ret = restore_prepare_task(ctx, g, idx) ?:
		      ckpt_fault(ctx, CKPT_FAULT_RESTORE_PREPARE, idx);
		if (ret)
			return ret;
		m->rebuilt = true;	/* from here on, a failure kills */
		ret = restore_rebuild_task(ctx, m->forked_mm) ?:
		      ckpt_fault(ctx, CKPT_FAULT_RESTORE_MEMBER, idx);
		if (ret)
			return ret;
		/* the stub goes once all are done, by the task that rebuilt its mm */
		m->unmaps_stub = ctx->defines & BIT(CKPT_SHARE_MM);
		m->state = CKPT_MEMBER_SPAWNING;
		m->next = idx + 1;
		fallthrough;
	case CKPT_MEMBER_SPAWNING:
		ret = ckpt_member_spawn(ctx, g, idx);
		if (ret)
			return ret;
		if (ckpt_group_first_live(g, idx)) {
			ret = ckpt_wait_zombies(ctx, g, idx);
			if (ret)
				return ret;
		}
		ret = restore_finish_task(ctx, m, ax);
		if (ret)
			return ret;
		ckpt_msg(ctx, "restarted pid %d (%s)\n", ctx->task->pid, ctx->task->comm);
		m->fg_tty = ctx->fg_tty;
		m->fg_pgrp = ctx->fg_pgrp;
		if (m->fg_tty)
			atomic_inc(&g->fg_pending);
		ctx->fg_tty = NULL;
		ckpt_ctx_reset_task(ctx);
		m->state = CKPT_MEMBER_DONE;
		/* the last one rebuilt lets the tree's TCP connections go live */
		if (ckpt_next_live(g, idx + 1) == g->nr_tasks) {
			ret = restore_inet_live(ctx);
			if (ret)
				return ret;
		}
		WRITE_ONCE(g->done, ckpt_next_live(g, idx + 1));
		ckpt_group_progress(g);
		fallthrough;
	case CKPT_MEMBER_DONE:
		/* nobody runs until everybody is rebuilt */
		ret = ckpt_group_wait(ctx, g, ckpt_group_done, idx, false) ?:
		      ckpt_fault(ctx, CKPT_FAULT_RESTORE_TREE, 0);
		if (!ret && m->fg_tty) {
			ret = restore_tty_foreground(ctx, m->fg_tty, m->fg_pgrp);
			fput(m->fg_tty);
			m->fg_tty = NULL;
			atomic_dec(&g->fg_pending);
			ckpt_group_progress(g);
		}
		if (!ret)
			ret = ckpt_group_wait(ctx, g, ckpt_group_foreground, idx, false);
		if (ret)
			return ret;
		if (m->unmaps_stub)
			ckpt_stub_unmap(ctx);
		/* RESTART_FROZEN: held frozen before its first instruction, until `cr thaw` */
		return ctx->flags & RESTART_FROZEN ? ckpt_hold_restarted(g->root) : 0;
	}
	return -EINVAL;
}

/* A call of member @idx ends: back to the stub (> 0), to its program, or in failure */
static long ckpt_member_leave(struct ckpt_ctx *ctx, struct ckpt_group *g, u32 idx, long ret,
			      long ax)
{
	struct ckpt_member *m = &g->members[idx];
	bool last = ret <= 0 || m->last;
	struct completion *vfork;
	struct task_struct *vfork_child;

	if (ret < 0) {
		ckpt_group_fail(g, ret);
		/* the shared context was ours if it was our turn */
		if (READ_ONCE(g->done) == idx && m->state != CKPT_MEMBER_DONE)
			ckpt_ctx_reset_task(ctx);
		restore_vfork_abort(&m->vfork, &m->vfork_task);
		/* a task of the stub, or one changed already, has nothing to go back to */
		if (idx || m->rebuilt) {
			ckpt_msg(ctx, "pid %d: the restart failed (%ld): it ends\n",
				 task_pid_vnr(current), ret);
			force_sig(SIGKILL);
		}
	}
	vfork = m->vfork;
	vfork_child = m->vfork_task;
	mutex_lock(&g->lock);
	m->in_call = false;
	mutex_unlock(&g->lock);
	if (last)
		ckpt_member_end(g, idx, ret < 0);
	ckpt_group_put(g);
	if (ret < 0)
		return ckpt_user_errno(ret);
	/* out of the group, which may be gone: a vfork(2) waits for its child */
	if (!ret && restore_vfork_wait(&vfork, &vfork_child))
		return -EINTR;
	return ret > 0 ? ret : ax;
}

/* restart(2) with an image: the root of the tree starts the group */
long restore_self(struct ckpt_ctx **ctxp, pid_t root)
{
	struct ckpt_ctx *ctx = *ctxp;
	struct ckpt_group *g;
	long ret, ax = 0;

	if (current->flags & PF_KTHREAD || !current->mm)
		return -EINVAL;
	/* what the root rebuilds in place must be its own alone */
	if (!thread_group_empty(current) || atomic_read(&current->mm->mm_users) != 1 ||
	    current->fs->users != 1 || refcount_read(&current->sighand->count) != 1 ||
	    atomic_read(&current->files->count) != 1)
		return ckpt_err(ctx, -EBUSY,
				"the restarting task must be single-threaded and share nothing");
	g = ckpt_group_start(ctxp, root);
	if (IS_ERR(g))
		return PTR_ERR(g);
	refcount_inc(&g->users);	/* the root's own, until it is done */
	ctx = g->ctx;
	ret = ckpt_group_read(ctx, g);
	if (ret) {
		ckpt_group_fail(g, ret);
		ckpt_group_put(g);
		ckpt_group_put(g);
		return ckpt_user_errno(ret);
	}
	g->members[0].in_call = true;
	ret = ckpt_member_run(ctx, g, 0, &ax);
	return ckpt_member_leave(ctx, g, 0, ret, ax);
}

/* restart(root, -1, RESTART_TASKSELF, -1): a task of the group, from the stub */
long restore_continue(pid_t root)
{
	struct ckpt_group *g;
	long ret, ax = 0;
	u32 idx;

	g = ckpt_group_rejoin(root, &idx);
	if (IS_ERR(g))
		return PTR_ERR(g);
	ret = ckpt_member_run(g->ctx, g, idx, &ax);
	return ckpt_member_leave(g->ctx, g, idx, ret, ax);
}
