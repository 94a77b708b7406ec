// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: freezing the tree for a checkpoint, and thawing it.
 *
 * Each task (every thread of every process) is frozen with a checkpoint
 * hold (kernel patch 0003), so nobody can thaw it while its state is
 * copied.  The root process freezes first, then level by level the
 * children of what is frozen, and the threads of each: a frozen task
 * cannot fork or clone, so when a pass finds no new task the tree is
 * complete.  A task counts as frozen once it is also off its CPU: only
 * then are its FPU registers and FS/GS base in memory.
 *
 * The hold does not make a task immune to SIGKILL or the OOM killer: a
 * fatal signal to any held task ends the checkpoint (a watchdog notices it
 * while the image is written, and interrupts a checkpointer blocked on a
 * full pipe), and thawing lets the task die.
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
#include <linux/timer.h>
#include <linux/wait.h>

#include "ckpt.h"

/* Whether @t has left the CPU it froze on (wait_task_inactive() is not exported) */
static bool ckpt_off_cpu(struct task_struct *t)
{
#ifdef CONFIG_SMP
	/* pairs with the release in finish_task(), after the state was saved */
	return !smp_load_acquire(&t->on_cpu);
#else
	return t != current;
#endif
}

/* A task of @tree that holds a freeze and was told to die, or NULL */
static struct task_struct *ckpt_tree_killed(struct ckpt_tree *tree)
{
	u32 i;

	for (i = 0; i < READ_ONCE(tree->nr); i++) {
		struct task_struct *t = tree->tasks[i];

		if (tree->holds[i] &&
		    (__fatal_signal_pending(t) || test_tsk_thread_flag(t, TIF_MEMDIE)))
			return t;
	}
	return NULL;
}

static int ckpt_killed_err(struct ckpt_ctx *ctx, struct task_struct *t)
{
	return ckpt_err(ctx, -EINTR, "pid %d was killed during the checkpoint", task_pid_vnr(t));
}

/* Each request is a hold of its own: ckpt_thaw_tree() drops them all */
static void ckpt_hold(struct ckpt_tree *tree, u32 i)
{
	ckpt_freeze_task(tree->tasks[i]);
	tree->holds[i]++;
}

#define CKPT_FREEZE_RETRY_MS	20

static int ckpt_wait_frozen(struct ckpt_ctx *ctx, struct ckpt_tree *tree, u32 i)
{
	unsigned long deadline = jiffies + msecs_to_jiffies(CKPT_FREEZE_TIMEOUT_MS);
	unsigned long retry = jiffies + msecs_to_jiffies(CKPT_FREEZE_RETRY_MS);
	struct task_struct *t = tree->tasks[i];

	for (;;) {
		struct task_struct *killed;

		if (frozen(t) && ckpt_off_cpu(t))
			return 0;
		if (t->flags & PF_EXITING)
			return ckpt_err(ctx, -ESRCH, "pid %d is exiting",
					task_pid_vnr(t));
		if (fatal_signal_pending(current))
			return -EINTR;
		killed = ckpt_tree_killed(tree);
		if (killed)
			return ckpt_killed_err(ctx, killed);
		if (time_after(jiffies, deadline))
			break;
		/*
		 * A request that found the task running sent it a fake signal;
		 * one that task lost (on its way through exec, say) leaves it
		 * asleep unfrozen.  Ask again, as the system freezer does.
		 */
		if (time_after(jiffies, retry) && !frozen(t) && tree->holds[i] < U16_MAX) {
			ckpt_hold(tree, i);
			retry = jiffies + msecs_to_jiffies(CKPT_FREEZE_RETRY_MS);
		}
		usleep_range(500, 1000);
	}
	return ckpt_err(ctx, -EBUSY, "pid %d did not freeze within %d ms (state %c%s)",
			task_pid_vnr(t), CKPT_FREEZE_TIMEOUT_MS, task_state_to_char(t),
			frozen(t) ? ", frozen but still on its CPU" : "");
}

/* On failure, the tasks asked to freeze so far have their holds counted, for the thaw */
int ckpt_freeze_tree(struct ckpt_ctx *ctx, struct ckpt_tree *tree)
{
	u32 frozen = 0, i;
	int ret;

	for (;;) {
		u32 before = tree->nr;

		/* ask them all first, so that they freeze in parallel; not the caller itself */
		for (i = frozen; i < tree->nr; i++)
			if (!tree->zombie[i] && tree->tasks[i] != current)
				ckpt_hold(tree, i);
		for (; frozen < tree->nr; frozen++) {
			if (tree->zombie[frozen] || tree->tasks[frozen] == current)
				continue;
			ret = ckpt_wait_frozen(ctx, tree, frozen);
			if (ret)
				return ret;
		}
		ret = ckpt_tree_grow(ctx, tree);
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

	for (i = 0; i < tree->nr; i++)
		for (; tree->holds[i]; tree->holds[i]--)
			ckpt_thaw_task(tree->tasks[i]);
}

/* Make @t's interruptible waits return, as a signal would, without one */
static void ckpt_interrupt(struct task_struct *t)
{
	struct wait_queue_entry w = { .private = t };

	set_tsk_thread_flag(t, TIF_NOTIFY_SIGNAL);
	if (!default_wake_function(&w, TASK_INTERRUPTIBLE, 0, NULL))
		kick_process(t);
}

#define CKPT_WATCHDOG_PERIOD	(HZ / 50)

static void ckpt_watchdog_fn(struct timer_list *timer)
{
	struct ckpt_tree *tree = from_timer(tree, timer, watchdog);

	if (!READ_ONCE(tree->killed))
		WRITE_ONCE(tree->killed, ckpt_tree_killed(tree));
	if (READ_ONCE(tree->killed))
		ckpt_interrupt(tree->checkpointer);
	else
		mod_timer(timer, jiffies + CKPT_WATCHDOG_PERIOD);
}

/* While the image is written: a fatal signal to a held task ends the checkpoint */
void ckpt_watchdog_start(struct ckpt_tree *tree)
{
	tree->checkpointer = current;
	timer_setup(&tree->watchdog, ckpt_watchdog_fn, 0);
	mod_timer(&tree->watchdog, jiffies + CKPT_WATCHDOG_PERIOD);
}

/* Stops the watchdog; the error to end the checkpoint with if it fired */
int ckpt_watchdog_stop(struct ckpt_ctx *ctx, struct ckpt_tree *tree)
{
	struct task_struct *killed;

	timer_delete_sync(&tree->watchdog);
	killed = READ_ONCE(tree->killed);
	/* TIF_NOTIFY_SIGNAL, if it was set, goes on the way back to user mode */
	return killed ? ckpt_killed_err(ctx, killed) : 0;
}

/* For long loops of the checkpoint: whether to stop */
bool ckpt_should_stop(struct ckpt_ctx *ctx)
{
	return fatal_signal_pending(current) || (ctx->tree && READ_ONCE(ctx->tree->killed));
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
