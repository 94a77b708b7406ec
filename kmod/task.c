// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: one task, and the order of its parts.
 *
 * checkpoint_task() writes a task's part of the image: a ZOMBIE object
 * for a zombie, else the TASK object (tid, thread group, comm, the ids of
 * what it shares, whether it waits in vfork(2)) and then every kind
 * of state in the order restart reads it; an object the task shares is
 * written only with the first task that uses it (share.c).  At restart,
 * restore_prepare_task() reads and checks that part and opens its files
 * without changing anything of the restarting task, and
 * restore_rebuild_task() and restore_finish_task() make the task
 * what the image says, in two halves around the cloning of the tasks it
 * creates (spawn.c).
 */

#include <linux/completion.h>
#include <linux/pid.h>
#include <linux/ptrace.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/sched/task_stack.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "ckpt.h"

static int checkpoint_task_obj(struct ckpt_ctx *ctx, struct ckpt_tree *tree, u32 i)
{
	struct task_struct *t = tree->tasks[i];
	struct ckpt_hdr_task h = {};

	h.pid = task_pid_vnr(t);
	h.tgid = task_tgid_vnr(t);
	h.exit_signal = t->exit_signal;
	get_task_comm(h.comm, t);
	memcpy(h.share, tree->share[i], sizeof(h.share));
	if (tree->vfork_child[i]) {
		h.flags |= CKPT_TASK_VFORK_WAIT;
		h.vfork_child = tree->vfork_child[i];
	}
	return ckpt_write_obj(ctx, &h, CKPT_HDR_TASK, sizeof(h));
}

int checkpoint_task(struct ckpt_ctx *ctx, struct ckpt_tree *tree, u32 i)
{
	struct task_struct *t = tree->tasks[i];
	int ret;

	if (tree->zombie[i]) {
		struct ckpt_hdr_zombie z = {
			.pid = task_pid_vnr(t),
			.exit_code = READ_ONCE(t->exit_code),
		};

		get_task_comm(z.comm, t);
		return ckpt_write_obj(ctx, &z, CKPT_HDR_ZOMBIE, sizeof(z));
	}
	ctx->defines = tree->first[i];
	ret = checkpoint_task_obj(ctx, tree, i);
	if (!ret)
		ret = checkpoint_thread(ctx, t);
	if (!ret)
		ret = checkpoint_process(ctx, t);
	if (!ret && (ctx->defines & BIT(CKPT_SHARE_SIGNAL)))
		ret = checkpoint_timers(ctx, t);	/* ITIMERS, POSIX_TIMERs */
	if (!ret && (ctx->defines & BIT(CKPT_SHARE_SIGNAL)))
		ret = checkpoint_sem_undo(ctx, t);	/* the thread group's (CLONE_SYSVSEM) */
	if (!ret && (ctx->defines & BIT(CKPT_SHARE_SIGHAND)))
		ret = checkpoint_sighand(ctx, t);
	if (!ret)	/* SIGNAL, SIGPENDING */
		ret = checkpoint_signal(ctx, t, ctx->defines & BIT(CKPT_SHARE_SIGNAL));
	if (!ret)
		ret = checkpoint_cred(ctx, t);
	if (!ret)
		ret = checkpoint_seccomp(ctx, t);
	if (!ret && (ctx->defines & BIT(CKPT_SHARE_SIGNAL)))
		ret = checkpoint_rlimits(ctx, t);
	if (!ret && (ctx->defines & BIT(CKPT_SHARE_FS)))
		ret = checkpoint_fs(ctx, t);
	if (!ret && (ctx->defines & BIT(CKPT_SHARE_FILES)))
		ret = checkpoint_files(ctx, t);
	if (!ret && (ctx->defines & BIT(CKPT_SHARE_MM))) {
		int p = tree->cow_parent[i];

		/* MM, VMAs, SHMEM, pages; only how it differs from its parent's, if forked */
		ret = checkpoint_mm(ctx, t, p >= 0 ? tree->tasks[p]->mm : NULL,
				    p >= 0 ? tree->share[p][CKPT_SHARE_MM] : 0);
	}
	if (!ret)
		ret = checkpoint_cpu(ctx, t);	/* CPU, FPU */
	return ret;
}

static int restore_task_obj(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_task *h;

	h = ckpt_next(ctx, CKPT_HDR_TASK, sizeof(*h));
	if (IS_ERR(h))
		return PTR_ERR(h);
	if (h->h.len != sizeof(*h) || !memchr(h->comm, 0, sizeof(h->comm)) ||
	    (h->flags & ~CKPT_TASK_VFORK_WAIT) ||
	    !(h->flags & CKPT_TASK_VFORK_WAIT) != !h->vfork_child || h->vfork_child < 0)
		return ckpt_err(ctx, -EINVAL, "bad TASK object");
	ctx->task = h;
	return 0;
}

/* Read and check task @idx's part; opens files but changes nothing of current */
int restore_prepare_task(struct ckpt_ctx *ctx, struct ckpt_group *g, u32 idx)
{
	int ret;

	ctx->cur = g->parts[idx];
	ctx->pages_first = g->pages[idx];
	ret = restore_task_obj(ctx);
	if (!ret && (ctx->task->pid != g->pids[idx].pid || ctx->task->tgid != g->pids[idx].tgid))
		ret = ckpt_err(ctx, -EINVAL,
			       "TASK object %u is pid %d of %d, the tree says %d of %d",
			       idx, ctx->task->pid, ctx->task->tgid, g->pids[idx].pid,
			       g->pids[idx].tgid);
	if (!ret)
		ret = restore_prepare_share(ctx);
	if (!ret)
		ret = restore_prepare_thread(ctx);
	if (!ret)
		ret = restore_prepare_task_namespaces(ctx, idx);
	if (!ret)
		ret = restore_prepare_process(ctx);
	if (!ret && (ctx->defines & BIT(CKPT_SHARE_SIGNAL)))
		ret = restore_prepare_timers(ctx);	/* ITIMERS, POSIX_TIMERs */
	if (!ret && (ctx->defines & BIT(CKPT_SHARE_SIGNAL)))
		ret = restore_prepare_sem_undo(ctx);
	if (!ret)	/* SIGHAND, SIGNAL, SIGPENDING */
		ret = restore_prepare_signal(ctx);
	if (!ret)
		ret = restore_prepare_cred(ctx);
	if (!ret)
		ret = restore_prepare_seccomp(ctx);
	if (!ret && (ctx->defines & BIT(CKPT_SHARE_SIGNAL)))
		ret = restore_prepare_rlimits(ctx);
	if (!ret && (ctx->defines & BIT(CKPT_SHARE_FS)))
		ret = restore_prepare_fs(ctx);
	if (!ret && (ctx->defines & BIT(CKPT_SHARE_FILES)))
		ret = restore_prepare_files(ctx);
	if (!ret && (ctx->defines & BIT(CKPT_SHARE_MM)))
		ret = restore_prepare_mm(ctx);	/* MM, VMAs, SHMEM, DROPs, pages */
	/* PAGES objects (restore_tree() found whose they are) come after the VMAs */
	while (!ret && ckpt_peek(ctx) == CKPT_HDR_PAGES)
		ckpt_next(ctx, CKPT_HDR_PAGES, 0);
	if (!ret)
		ret = restore_prepare_cpu(ctx);	/* CPU, FPU */
	/* or, written after the thaw (CHECKPOINT_COW), after the part */
	while (!ret && ckpt_peek(ctx) == CKPT_HDR_PAGES)
		ckpt_next(ctx, CKPT_HDR_PAGES, 0);
	if (!ret && (idx + 1 < g->nr_tasks ? ctx->cur != g->parts[idx + 1] :
					     ckpt_peek(ctx) != CKPT_HDR_TAIL))
		ret = ckpt_err(ctx, -EINVAL, "unexpected %s object at the end of pid %d",
			       ckpt_type_name(ckpt_peek(ctx)), g->pids[idx].pid);
	return ret;
}

/*
 * A task that was in vfork(2): its child (cloned by then, and rebuilt
 * after it) will wake it when it execs or exits, as the kernel's own
 * vfork does; vfork(2) returns the child's pid.
 */
static int restore_vfork(struct ckpt_ctx *ctx, struct ckpt_member *m, long *ax)
{
	struct task_struct *child;

	child = get_pid_task(find_vpid(ctx->task->vfork_child), PIDTYPE_PID);
	if (!child || !same_thread_group(rcu_access_pointer(child->real_parent), current)) {
		if (child)
			put_task_struct(child);
		return ckpt_err(ctx, -EINVAL, "pid %d: vfork child %d is not its child",
				ctx->task->pid, ctx->task->vfork_child);
	}
	m->vfork = kmalloc(sizeof(*m->vfork), GFP_KERNEL);
	if (!m->vfork) {
		put_task_struct(child);
		return -ENOMEM;
	}
	init_completion(m->vfork);
	task_lock(child);
	child->vfork_done = m->vfork;
	task_unlock(child);
	m->vfork_task = child;
	*ax = ctx->task->vfork_child;
	return 0;
}

/* Undo restore_vfork(): the child must not complete what is freed */
void restore_vfork_abort(struct completion **vfork, struct task_struct **child)
{
	if (!*vfork)
		return;
	task_lock(*child);
	if ((*child)->vfork_done == *vfork)
		(*child)->vfork_done = NULL;
	task_unlock(*child);
	put_task_struct(*child);
	kfree(*vfork);
	*vfork = NULL;
	*child = NULL;
}

/* Once the tree runs: the vfork(2) wait, killable and freezable as the kernel's */
int restore_vfork_wait(struct completion **vfork, struct task_struct **child)
{
	if (!*vfork)
		return 0;
	if (wait_for_completion_state(*vfork, TASK_KILLABLE | TASK_FREEZABLE)) {
		restore_vfork_abort(vfork, child);
		return -EINTR;
	}
	put_task_struct(*child);
	kfree(*vfork);
	*vfork = NULL;
	*child = NULL;
	return 0;
}

/*
 * Point of no return (on failure the task is killed, never returned to),
 * first half: what the tasks it clones next inherit from it, the fd table,
 * cwd and address space (a fork(2) copy of @forked_mm's, if not 0), with
 * the stub mapped.
 */
int restore_rebuild_task(struct ckpt_ctx *ctx, s32 forked_mm)
{
	int ret;

	/* the root, first of all: its own namespaces, which the others use too */
	ret = restore_namespaces(ctx);
	if (!ret && (ctx->defines & BIT(CKPT_SHARE_FILES)))
		ret = restore_files(ctx);
	if (!ret && (ctx->defines & BIT(CKPT_SHARE_FS)))
		restore_fs(ctx);
	if (!ret && (ctx->defines & BIT(CKPT_SHARE_MM)))
		ret = restore_mm(ctx, forked_mm);
	if (!ret && !ckpt_stub_mapped(ctx))
		ret = ckpt_stub_map(ctx);
	return ret;
}

/*
 * Second half, once the tasks it creates are cloned (they start with the
 * restarter's credentials and limits): everything else, the credentials
 * last, since they may take away what the steps before needed.  A task
 * that waited in vfork(2) waits again (restore_vfork_wait()).
 */
int restore_finish_task(struct ckpt_ctx *ctx, struct ckpt_member *m, long *ax)
{
	int ret;

	/* the limits bind the restarted task only */
	if (ctx->defines & BIT(CKPT_SHARE_SIGNAL))
		restore_rlimits(ctx);
	restore_thread(ctx);
	ret = restore_cpu(ctx, ax);
	if (!ret && (ctx->task->flags & CKPT_TASK_VFORK_WAIT))
		ret = restore_vfork(ctx, m, ax);
	if (!ret)
		ret = restore_process(ctx);	/* exe, sched: with the restarter's rights */
	/* with the restarter's rights, as seccomp(2) from the restarter would */
	if (!ret)
		ret = restore_seccomp(ctx);
	if (!ret && (ctx->defines & BIT(CKPT_SHARE_SIGNAL)))
		ret = restore_sem_undo(ctx);
	if (!ret)
		ret = restore_share_done(ctx);
	if (ret)
		return ret;
	restore_cred(ctx);
	/* the mask first, so that requeued signals stay pending if blocked */
	restore_signal(ctx);
	/* after the signals, so that an early expiry is not flushed with them */
	if (ctx->defines & BIT(CKPT_SHARE_SIGNAL)) {
		ret = restore_timers(ctx);
		if (ret)
			return ret;
	}
	task_lock(current);
	strscpy_pad(current->comm, ctx->task->comm, sizeof(current->comm));
	task_unlock(current);
	restore_process_late(ctx);	/* pdeathsig, dumpable: a cred change resets them */
	/* out of restart(2) now: no system call to restart on the way back */
	current_pt_regs()->orig_ax = -1;
	return 0;
}
