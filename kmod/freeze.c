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
 */

#include <linux/delay.h>
#include <linux/freezer.h>
#include <linux/sched/signal.h>
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

		/* ask them all first, so that they freeze in parallel */
		for (i = frozen; i < tree->nr; i++)
			if (!tree->zombie[i])
				ckpt_hold(tree, i);
		for (; frozen < tree->nr; frozen++) {
			if (tree->zombie[frozen])
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
