// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: SysV semaphore sets and SEM_UNDO adjustments.
 *
 * A set of the tree's own IPC namespace is saved as a SEM object (key,
 * id, owner, creator, mode) with the value of each semaphore.  What a
 * task's semop(2) calls with SEM_UNDO will undo when it exits is the
 * task's own: a SEM_UNDO object per set it has adjustments for, after
 * its POSIX timers.  Both are read through kernel patch 0013.  Processes
 * that share their adjustments (CLONE_SYSVSEM), and adjustments in the
 * checkpointer's own IPC namespace, are refused by name.
 *
 * Restart creates each set with semget(2) and its id, sets its values
 * (semctl(SETALL)) and its owner and mode, in the root before any task
 * is rebuilt.  Each task then makes its adjustments again with semop(2):
 * for each semaphore, one operation with SEM_UNDO that leaves the
 * adjustment and one without that takes its effect on the value back,
 * in the order that keeps the value within 0..SEMVMX; a SETALL after
 * them would clear them.
 */

#include <linux/cred.h>
#include <linux/ipc.h>
#include <linux/ipc_namespace.h>
#include <linux/nsproxy.h>
#include <linux/sem.h>
#include <linux/slab.h>
#include <linux/syscalls.h>

#include "ckpt.h"

/* The values of set @id: @nsems of them, or an ERR_PTR */
static int *ckpt_sem_values(struct ckpt_ctx *ctx, struct ipc_namespace *ns, s32 id, int *nsems)
{
	int *values = NULL;
	int n = sem_checkpoint_values(ns, id, NULL, 0);

	while (n > 0) {
		values = kvcalloc(n, sizeof(*values), GFP_KERNEL);
		if (!values)
			return ERR_PTR(-ENOMEM);
		*nsems = sem_checkpoint_values(ns, id, values, n);
		if (*nsems == n)
			return values;
		kvfree(values);
		n = *nsems;
	}
	return ERR_PTR(ckpt_err(ctx, n ?: -EIDRM,
				"SysV semaphore set %d went away during the checkpoint", id));
}

int checkpoint_sem_sets(struct ckpt_ctx *ctx, struct ckpt_ipc_perm *perm, u32 nr)
{
	struct ckpt_ipc *ipc = ctx->ipc;
	int ret = 0;
	u32 i;

	ipc->sems = kvcalloc(max_t(u32, nr, 1), sizeof(*ipc->sems), GFP_KERNEL);
	if (!ipc->sems)
		return -ENOMEM;
	for (i = 0; !ret && i < nr; i++) {
		struct ckpt_hdr_sem h = { .perm = perm[i] };
		int nsems, j, *values;
		u16 *v16;

		values = ckpt_sem_values(ctx, ipc->ns, perm[i].id, &nsems);
		if (IS_ERR(values))
			return PTR_ERR(values);
		/* as semctl(GETALL) gives them: 0..SEMVMX */
		v16 = (u16 *)values;
		for (j = 0; j < nsems; j++)
			v16[j] = values[j];
		h.nsems = nsems;
		ipc->sems[ipc->nr_sems].id = perm[i].id;
		ipc->sems[ipc->nr_sems++].nsems = nsems;
		ret = ckpt_write_obj_buf(ctx, &h, CKPT_HDR_SEM, sizeof(h), v16,
					 nsems * sizeof(u16));
		kvfree(values);
	}
	return ret;
}

/* In the checkpointer's IPC namespace: refused if @t has adjustments on any set there */
static int checkpoint_host_sem_undo(struct ckpt_ctx *ctx, struct task_struct *t)
{
	struct ipc_namespace *ns = current->nsproxy->ipc_ns;
	struct ckpt_ipc_perm *perm;
	u32 i, nr;
	int ret;

	ret = ckpt_ipc_collect(ns, IPC_SEM_IDS, &perm, &nr);
	for (i = 0; !ret && i < nr; i++)
		if (sem_checkpoint_undo(t, ns, perm[i].id, NULL, 0) > 0)
			ret = ckpt_err(ctx, -EOPNOTSUPP,
				       "pid %d: SEM_UNDO adjustments on SysV semaphore set %d of the checkpointer's IPC namespace are not supported",
				       task_pid_vnr(t), perm[i].id);
	kvfree(perm);
	return ret;
}

/* The SEM_UNDO adjustments of @t, a process of the tree */
int checkpoint_sem_undo(struct ckpt_ctx *ctx, struct task_struct *t)
{
	struct ckpt_ipc *ipc = ctx->ipc;
	struct ckpt_hdr_sem_undo h = {};
	s16 *adj;
	u32 i;
	int n, ret = 0;

	if (!t->sysvsem.undo_list)
		return 0;
	if (!ipc)
		return checkpoint_host_sem_undo(ctx, t);
	for (i = 0; !ret && i < ipc->nr_sems; i++) {
		h.id = ipc->sems[i].id;
		h.nsems = ipc->sems[i].nsems;
		adj = kvcalloc(h.nsems, sizeof(*adj), GFP_KERNEL);
		if (!adj)
			return -ENOMEM;
		n = sem_checkpoint_undo(t, ipc->ns, h.id, adj, h.nsems);
		if (n < 0 || n > h.nsems)
			ret = ckpt_err(ctx, n < 0 ? n : -EAGAIN,
				       "SysV semaphore set %d changed during the checkpoint", h.id);
		else if (n && memchr_inv(adj, 0, h.nsems * sizeof(*adj)))
			ret = ckpt_write_obj_buf(ctx, &h, CKPT_HDR_SEM_UNDO, sizeof(h), adj,
						 h.nsems * sizeof(*adj));
		kvfree(adj);
	}
	return ret;
}

/* Processes of the tree do not share their adjustments (CLONE_SYSVSEM) */
int checkpoint_may_sem_undo(struct ckpt_ctx *ctx, struct task_struct *a, struct task_struct *b)
{
	if (!a->sysvsem.undo_list || a->sysvsem.undo_list != b->sysvsem.undo_list)
		return 0;
	return ckpt_err(ctx, -EOPNOTSUPP,
			"pids %d and %d share their SEM_UNDO adjustments (CLONE_SYSVSEM): not supported",
			task_pid_vnr(b), task_pid_vnr(a));
}

/* After the queues: @nr sets, each with its values */
int restore_prepare_sem_sets(struct ckpt_ctx *ctx, u32 nr, u32 semmsl)
{
	u32 i, j;

	for (i = 0; i < nr; i++) {
		struct ckpt_obj *obj = ctx->cur;
		struct ckpt_hdr_sem *h;
		u16 *values;
		int ret;

		h = ckpt_next(ctx, CKPT_HDR_SEM, sizeof(*h));
		if (IS_ERR(h))
			return PTR_ERR(h);
		values = (u16 *)(h + 1);
		if (!h->nsems || h->nsems > semmsl || h->pad ||
		    h->h.len != sizeof(*h) + ALIGN(h->nsems * sizeof(u16), 8))
			return ckpt_err(ctx, -EINVAL, "bad SEM object (id %d)", h->perm.id);
		for (j = 0; j < h->nsems; j++)
			if (values[j] > SEMVMX)
				return ckpt_err(ctx, -EINVAL, "SysV semaphore set %d: bad value %u",
						h->perm.id, values[j]);
		ret = restore_prepare_ipc_obj(ctx, IPC_SEM_IDS, &h->perm, obj, 0, h->nsems);
		if (ret)
			return ret;
	}
	return 0;
}

static long restore_semget(struct ckpt_ctx *ctx, struct ckpt_ipc_obj *o, int flags)
{
	return ckpt_syscall(__NR_semget, o->perm->key, o->size, flags);
}

int restore_sem_set(struct ckpt_ctx *ctx, struct ckpt_ipc_obj *o, void __user *scratch)
{
	struct ckpt_hdr_sem *h = (struct ckpt_hdr_sem *)o->obj->h;
	struct semid64_ds ds = {};
	void __user *uarg;
	long ret;

	ret = restore_ipc_create(ctx, IPC_SEM_IDS, o->perm, restore_semget, o);
	if (ret)
		return ret;
	uarg = ckpt_stage(scratch, 0, h + 1, h->nsems * sizeof(u16));
	ret = uarg ? ckpt_syscall(__NR_semctl, o->perm->id, 0, SETALL, (unsigned long)uarg) :
		     -EFAULT;
	if (ret)
		return ckpt_err(ctx, ret, "cannot set the values of SysV semaphore set %d",
				o->perm->id);
	ret = restore_ipc64_perm(ctx, &ds.sem_perm, o->perm);
	if (ret)
		return ret;
	uarg = ckpt_stage(scratch, 0, &ds, sizeof(ds));
	ret = uarg ? ckpt_syscall(__NR_semctl, o->perm->id, 0, IPC_SET, (unsigned long)uarg) :
		     -EFAULT;
	if (ret)
		return ckpt_err(ctx, ret, "cannot give SysV semaphore set %d its owner and mode",
				o->perm->id);
	return restore_ipc_creator(ctx, IPC_SEM_IDS, o->perm);
}

/*
 * Whether adjustment @adj of a semaphore at @value can be made again:
 * its two operations must keep the value within 0..SEMVMX one way round
 */
static bool ckpt_sem_adj_ok(int value, int adj)
{
	return value - abs(adj) >= 0 || value + abs(adj) <= SEMVMX;
}

/* The SEM_UNDO objects after the POSIX timers, checked against their sets */
int restore_prepare_sem_undo(struct ckpt_ctx *ctx)
{
	ctx->sem_undo_first = ctx->cur;
	ctx->nr_sem_undo = 0;
	while (ckpt_peek(ctx) == CKPT_HDR_SEM_UNDO) {
		struct ckpt_hdr_sem_undo *h = ckpt_next(ctx, CKPT_HDR_SEM_UNDO, sizeof(*h));
		struct ckpt_ipc_obj *o;
		s16 *adj;
		u16 *values;
		u32 i;

		if (IS_ERR(h))
			return PTR_ERR(h);
		o = ckpt_ipc_find(ctx, IPC_SEM_IDS, h->id);
		if (!o || h->nsems != o->size ||
		    h->h.len != sizeof(*h) + ALIGN(h->nsems * sizeof(s16), 8))
			return ckpt_err(ctx, -EINVAL, "bad SEM_UNDO object (set %d)", h->id);
		adj = (s16 *)(h + 1);
		values = (u16 *)((struct ckpt_hdr_sem *)o->obj->h + 1);
		for (i = 0; i < h->nsems; i++)
			if (abs(adj[i]) > SEMAEM || !ckpt_sem_adj_ok(values[i], adj[i]))
				return ckpt_err(ctx, -EINVAL,
						"SEM_UNDO adjustment %d of semaphore %u of set %d cannot be made again",
						adj[i], i, h->id);
		ctx->nr_sem_undo++;
	}
	return 0;
}

/* One semop(2) of one operation on semaphore @num of set @id */
static long restore_semop(s32 id, u16 num, s16 op, s16 flags, void __user *scratch)
{
	struct sembuf sop = { .sem_num = num, .sem_op = op, .sem_flg = flags | IPC_NOWAIT };
	void __user *usop = ckpt_stage(scratch, 0, &sop, sizeof(sop));

	return usop ? ckpt_syscall(__NR_semop, id, (unsigned long)usop, 1) : -EFAULT;
}

/*
 * Adjustment @adj is what the undo adds back: an operation of -@adj with
 * SEM_UNDO leaves it, one of @adj without takes the value back; the one
 * that lowers the value first if the value allows, so it stays in range
 */
static long restore_sem_adj(s32 id, u16 num, int value, s16 adj, void __user *scratch)
{
	bool lower_first = value - abs(adj) >= 0;
	bool undo_lowers = adj > 0;
	long ret;

	if (lower_first == undo_lowers) {
		ret = restore_semop(id, num, -adj, SEM_UNDO, scratch);
		return ret ?: restore_semop(id, num, adj, 0, scratch);
	}
	ret = restore_semop(id, num, adj, 0, scratch);
	return ret ?: restore_semop(id, num, -adj, SEM_UNDO, scratch);
}

/* The task's adjustments, made again with the restarter's rights */
int restore_sem_undo(struct ckpt_ctx *ctx)
{
	struct ckpt_obj *obj = ctx->sem_undo_first;
	void __user *scratch;
	long ret = 0;
	u32 n, i;

	if (!ctx->nr_sem_undo)
		return 0;
	scratch = ckpt_scratch_map(ctx);
	if (IS_ERR(scratch))
		return PTR_ERR(scratch);
	for (n = 0; !ret && n < ctx->nr_sem_undo; n++, obj = list_next_entry(obj, list)) {
		struct ckpt_hdr_sem_undo *h = (struct ckpt_hdr_sem_undo *)obj->h;
		struct ckpt_ipc_obj *o = ckpt_ipc_find(ctx, IPC_SEM_IDS, h->id);
		u16 *values = (u16 *)((struct ckpt_hdr_sem *)o->obj->h + 1);
		s16 *adj = (s16 *)(h + 1);

		for (i = 0; !ret && i < h->nsems; i++)
			if (adj[i])
				ret = restore_sem_adj(h->id, i, values[i], adj[i], scratch);
		if (ret)
			ret = ckpt_err(ctx, ret, "cannot make the SEM_UNDO adjustments on set %d",
				       h->id);
	}
	ckpt_scratch_unmap(scratch);
	return ret;
}
