// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: the SysV IPC namespace of a tree.
 *
 * A tree whose root has an IPC namespace of its own (unshare -i) has the
 * SysV objects in it saved once, after the TREE object: an IPC_NS object
 * with the namespace's limits, then every shm segment (shm.c), message
 * queue (msg.c) and semaphore set (sem.c), each with its key, id, owner,
 * creator and mode.  Kernel patch 0013 lets the engine read what the
 * objects hold; the checkpointer needs the rights setns(2) into the
 * namespace would need.
 *
 * Restart recreates them in the root, in the fresh IPC namespace it was
 * created in (cr-mktree -n), before anything of the tree changes: the
 * limits and then, for each object, its id, through the namespace's own
 * sysctls (kernel/shm_next_id, ...: the object created next gets that
 * id, as CRIU does it), the object with the system call that made it,
 * its contents, and last its owner and mode; all of it replayed with the
 * restarter's rights.  The tasks then attach their segments and make
 * their SEM_UNDO adjustments again, each in its own turn.
 *
 * Objects of the checkpointer's own IPC namespace are not the tree's: a
 * task that has one of its segments attached, or SEM_UNDO adjustments
 * there, is refused by name; its other objects are not saved.
 */

#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/idr.h>
#include <linux/ipc.h>
#include <linux/ipc_namespace.h>
#include <linux/nsproxy.h>
#include <linux/sem.h>
#include <linux/shm.h>
#include <linux/slab.h>
#include <linux/uidgid.h>

#include "ckpt.h"

#define CKPT_IPC_MODE_MASK	(0777 | SHM_DEST | SHM_LOCKED)
#define CKPT_IPC_OBJS_MAX	4096	/* objects of all kinds in one namespace */

static const char * const ckpt_ipc_kind_names[] = {
	[IPC_SEM_IDS] = "semaphore set",
	[IPC_MSG_IDS] = "message queue",
	[IPC_SHM_IDS] = "shm segment",
};

const char *ckpt_ipc_kind(int kind)
{
	return ckpt_ipc_kind_names[kind];
}

/* The objects of one kind in @ns, with their keys, owners and modes */
int ckpt_ipc_collect(struct ipc_namespace *ns, int kind, struct ckpt_ipc_perm **out, u32 *nr)
{
	struct ipc_ids *ids = &ns->ids[kind];
	struct user_namespace *user_ns = current_user_ns();
	struct kern_ipc_perm *perm;
	struct ckpt_ipc_perm *p;
	int idx, ret = 0;

	*out = NULL;
	*nr = 0;
	/* no object comes or goes while the ids are held */
	down_read(&ids->rwsem);
	if (!ids->in_use)
		goto out;
	*out = kvcalloc(ids->in_use, sizeof(**out), GFP_KERNEL);
	if (!*out) {
		ret = -ENOMEM;
		goto out;
	}
	idr_for_each_entry(&ids->ipcs_idr, perm, idx) {
		if (*nr == ids->in_use)
			break;
		p = &(*out)[*nr];
		spin_lock(&perm->lock);
		if (!perm->deleted) {
			p->key = perm->key;
			p->id = perm->id;
			p->uid = from_kuid_munged(user_ns, perm->uid);
			p->gid = from_kgid_munged(user_ns, perm->gid);
			p->cuid = from_kuid_munged(user_ns, perm->cuid);
			p->cgid = from_kgid_munged(user_ns, perm->cgid);
			p->mode = perm->mode & CKPT_IPC_MODE_MASK;
			(*nr)++;
		}
		spin_unlock(&perm->lock);
	}
out:
	up_read(&ids->rwsem);
	return ret;
}

void ckpt_ipc_free(struct ckpt_ctx *ctx)
{
	struct ckpt_ipc *ipc = ctx->ipc;

	if (!ipc)
		return;
	if (ipc->ns)
		put_ipc_ns(ipc->ns);
	kvfree(ipc->sems);
	kvfree(ipc->objs);
	kfree(ipc);
	ctx->ipc = NULL;
}

/* The IPC namespace @ns the root of @tree has of its own: its limits and objects */
int checkpoint_ipc_ns(struct ckpt_ctx *ctx, struct ckpt_tree *tree, struct ipc_namespace *ns)
{
	struct ckpt_ipc_perm *shm = NULL, *msg = NULL, *sem = NULL;
	pid_t pid = task_pid_vnr(tree->tasks[0]);
	struct ckpt_hdr_ipc_ns h = {};
	int ret;

	if (!ns_capable(ns->user_ns, CAP_SYS_ADMIN))
		return ckpt_err(ctx, -EPERM,
				"no permission to checkpoint the IPC namespace of pid %d", pid);
	if (READ_ONCE(ns->mq_queues_count))
		return ckpt_err(ctx, -EOPNOTSUPP,
				"pid %d: the POSIX message queues of its IPC namespace are not supported",
				pid);
	ctx->ipc = kzalloc(sizeof(*ctx->ipc), GFP_KERNEL);
	if (!ctx->ipc)
		return -ENOMEM;
	ctx->ipc->ns = get_ipc_ns(ns);

	h.shmmax = ns->shm_ctlmax;
	h.shmall = ns->shm_ctlall;
	h.shmmni = ns->shm_ctlmni;
	h.shm_rmid_forced = ns->shm_rmid_forced;
	h.msgmax = ns->msg_ctlmax;
	h.msgmnb = ns->msg_ctlmnb;
	h.msgmni = ns->msg_ctlmni;
	memcpy(h.sem, ns->sem_ctls, sizeof(h.sem));
	ret = ckpt_ipc_collect(ns, IPC_SHM_IDS, &shm, &h.nr_shm);
	if (!ret)
		ret = ckpt_shm_keep(ctx, tree, shm, &h.nr_shm);
	if (!ret)
		ret = ckpt_ipc_collect(ns, IPC_MSG_IDS, &msg, &h.nr_msg);
	if (!ret)
		ret = ckpt_ipc_collect(ns, IPC_SEM_IDS, &sem, &h.nr_sem);
	if (!ret && h.nr_shm + h.nr_msg + h.nr_sem > CKPT_IPC_OBJS_MAX)
		ret = ckpt_err(ctx, -E2BIG,
			       "pid %d: more than %d SysV objects in its IPC namespace",
			       pid, CKPT_IPC_OBJS_MAX);
	if (!ret)
		ret = ckpt_write_obj(ctx, &h, CKPT_HDR_IPC_NS, sizeof(h));
	if (!ret)
		ret = checkpoint_shm_segments(ctx, shm, h.nr_shm);
	if (!ret)
		ret = checkpoint_msg_queues(ctx, msg, h.nr_msg);
	if (!ret)
		ret = checkpoint_sem_sets(ctx, sem, h.nr_sem);
	kvfree(shm);
	kvfree(msg);
	kvfree(sem);
	return ret;
}

static bool ckpt_ipc_perm_ok(const struct ckpt_ipc_perm *p, int kind)
{
	u32 mask = kind == IPC_SHM_IDS ? CKPT_IPC_MODE_MASK : 0777;

	return p->id >= 0 && !(p->mode & ~mask) && !p->pad;
}

/* The object of @kind with @id in the image, or NULL */
struct ckpt_ipc_obj *ckpt_ipc_find(struct ckpt_ctx *ctx, int kind, s32 id)
{
	struct ckpt_ipc *ipc = ctx->ipc;
	u32 i;

	for (i = 0; ipc && i < ipc->nr_objs; i++)
		if (ipc->objs[i].kind == kind && ipc->objs[i].perm->id == id)
			return &ipc->objs[i];
	return NULL;
}

/* Add an object of the image: its id, and its key if not IPC_PRIVATE, are unique */
int restore_prepare_ipc_obj(struct ckpt_ctx *ctx, int kind, struct ckpt_ipc_perm *perm,
			    struct ckpt_obj *obj, u32 nr, u64 size)
{
	struct ckpt_ipc *ipc = ctx->ipc;
	struct ckpt_ipc_obj *o;
	u32 i;

	if (!ckpt_ipc_perm_ok(perm, kind))
		return ckpt_err(ctx, -EINVAL, "bad SysV %s (id %d)", ckpt_ipc_kind(kind), perm->id);
	for (i = 0; i < ipc->nr_objs; i++) {
		o = &ipc->objs[i];
		if (o->kind == kind && (o->perm->id == perm->id ||
					(perm->key != IPC_PRIVATE && o->perm->key == perm->key)))
			return ckpt_err(ctx, -EINVAL, "SysV %s id %d or key %#x twice",
					ckpt_ipc_kind(kind), perm->id, perm->key);
	}
	if (ipc->nr_objs == ipc->max_objs)
		return ckpt_err(ctx, -EINVAL, "more SysV objects than the IPC_NS object says");
	o = &ipc->objs[ipc->nr_objs++];
	o->kind = kind;
	o->perm = perm;
	o->obj = obj;
	o->nr = nr;
	o->size = size;
	return 0;
}

/* The IPC_NS part after TREE, checked, once for the group */
int restore_prepare_ipc_ns(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_ipc_ns *h;
	struct ckpt_ipc *ipc;
	u64 max;
	int ret;

	if (ckpt_peek(ctx) != CKPT_HDR_IPC_NS)
		return 0;
	h = ckpt_next(ctx, CKPT_HDR_IPC_NS, sizeof(*h));
	if (IS_ERR(h))
		return PTR_ERR(h);
	max = (u64)h->nr_shm + h->nr_msg + h->nr_sem;
	/* the sysctls check the limits themselves when they are set */
	if (h->h.len != sizeof(*h) || h->nr_shm > h->shmmni || h->nr_msg > h->msgmni ||
	    h->nr_sem > h->sem[3] || max > CKPT_IPC_OBJS_MAX || h->shm_rmid_forced > 1 ||
	    h->msgmax > INT_MAX || h->msgmnb > INT_MAX || h->sem[0] > SEMMSL)
		return ckpt_err(ctx, -EINVAL, "bad IPC_NS object");
	ipc = kzalloc(sizeof(*ipc), GFP_KERNEL);
	if (!ipc)
		return -ENOMEM;
	ipc->objs = kvcalloc(max_t(u64, max, 1), sizeof(*ipc->objs), GFP_KERNEL);
	if (!ipc->objs) {
		kfree(ipc);
		return -ENOMEM;
	}
	ipc->max_objs = max;
	ipc->limits = h;
	ctx->ipc = ipc;

	ret = restore_prepare_shm_segments(ctx, h->nr_shm, h->shmmax);
	if (!ret)
		ret = restore_prepare_msg_queues(ctx, h->nr_msg, h->msgmax);
	if (!ret)
		ret = restore_prepare_sem_sets(ctx, h->nr_sem, h->sem[0]);
	return ret;
}

/* The root's IPC namespace is fresh: nothing of anybody else's in it */
int restore_prepare_ipc_fresh(struct ckpt_ctx *ctx, struct ipc_namespace *ns)
{
	int kind;

	for (kind = 0; kind < ARRAY_SIZE(ns->ids); kind++)
		if (READ_ONCE(ns->ids[kind].in_use))
			return ckpt_err(ctx, -EBUSY,
					"the IPC namespace to restart in already has a SysV %s",
					ckpt_ipc_kind(kind));
	if (READ_ONCE(ns->mq_queues_count))
		return ckpt_err(ctx, -EBUSY,
				"the IPC namespace to restart in already has POSIX message queues");
	return 0;
}

/* Write @value to /proc/sys/kernel/@name, the current IPC namespace's sysctl */
__printf(3, 4)
static int restore_ipc_sysctl(struct ckpt_ctx *ctx, const char *name, const char *fmt, ...)
{
	char path[64], value[64];
	struct file *file;
	va_list ap;
	ssize_t n;
	int len;

	snprintf(path, sizeof(path), "/proc/sys/kernel/%s", name);
	va_start(ap, fmt);
	len = vscnprintf(value, sizeof(value), fmt, ap);
	va_end(ap);
	file = filp_open(path, O_WRONLY, 0);
	if (IS_ERR(file))
		return ckpt_err(ctx, PTR_ERR(file), "cannot open %s", path);
	n = kernel_write(file, value, len, &file->f_pos);
	fput(file);
	if (n != len)
		return ckpt_err(ctx, n < 0 ? n : -EIO, "cannot set %s to %s", path, value);
	return 0;
}

static const char * const ckpt_ipc_next_id[] = {
	[IPC_SEM_IDS] = "sem_next_id",
	[IPC_MSG_IDS] = "msg_next_id",
	[IPC_SHM_IDS] = "shm_next_id",
};

/*
 * Create the object of @kind that @perm describes with its id: @create
 * is given the flags (mode 0600 for now: the contents go in before the
 * object gets its own mode) and returns the new id
 */
int restore_ipc_create(struct ckpt_ctx *ctx, int kind, struct ckpt_ipc_perm *perm,
		       long (*create)(struct ckpt_ctx *ctx, struct ckpt_ipc_obj *o, int flags),
		       struct ckpt_ipc_obj *o)
{
	long id;
	int ret;

	ret = restore_ipc_sysctl(ctx, ckpt_ipc_next_id[kind], "%d", perm->id);
	if (ret)
		return ret;
	id = create(ctx, o, 0600 | IPC_CREAT | IPC_EXCL);
	if (id < 0)
		return ckpt_err(ctx, id, "cannot create SysV %s %d (key %#x)",
				ckpt_ipc_kind(kind), perm->id, perm->key);
	if (id != perm->id)
		return ckpt_err(ctx, -EBUSY, "SysV %s %d came back as %ld",
				ckpt_ipc_kind(kind), perm->id, id);
	return 0;
}

/* The owner and mode of IPC_SET, into the ipc64_perm that starts every *id64_ds */
int restore_ipc64_perm(struct ckpt_ctx *ctx, struct ipc64_perm *p, struct ckpt_ipc_perm *perm)
{
	struct user_namespace *user_ns = current_user_ns();
	kuid_t uid = make_kuid(user_ns, perm->uid);
	kgid_t gid = make_kgid(user_ns, perm->gid);

	if (!uid_valid(uid) || !gid_valid(gid))
		return ckpt_err(ctx, -EINVAL, "SysV object %d: uid %u or gid %u does not map here",
				perm->id, perm->uid, perm->gid);
	p->uid = perm->uid;
	p->gid = perm->gid;
	p->mode = perm->mode & 0777;
	return 0;
}

/*
 * The creator: no system call sets it but the one that creates the
 * object, which records the caller's effective ids; so another creator
 * needs the rights setresuid(2) and setresgid(2) to it would.
 */
int restore_ipc_creator(struct ckpt_ctx *ctx, int kind, struct ckpt_ipc_perm *perm)
{
	struct ipc_namespace *ns = current->nsproxy->ipc_ns;
	struct user_namespace *user_ns = current_user_ns();
	struct ipc_ids *ids = &ns->ids[kind];
	kuid_t cuid = make_kuid(user_ns, perm->cuid);
	kgid_t cgid = make_kgid(user_ns, perm->cgid);
	struct kern_ipc_perm *p;
	int idx, ret = -ENOENT;

	if (!uid_valid(cuid) || !gid_valid(cgid))
		return ckpt_err(ctx, -EINVAL, "SysV object %d: creator %u:%u does not map here",
				perm->id, perm->cuid, perm->cgid);
	if ((!uid_eq(cuid, current_euid()) && !ns_capable(user_ns, CAP_SETUID)) ||
	    (!gid_eq(cgid, current_egid()) && !ns_capable(user_ns, CAP_SETGID)))
		return ckpt_err(ctx, -EPERM, "SysV %s %d: no permission to make %u:%u its creator",
				ckpt_ipc_kind(kind), perm->id, perm->cuid, perm->cgid);
	down_read(&ids->rwsem);
	idr_for_each_entry(&ids->ipcs_idr, p, idx) {
		if (p->id != perm->id)
			continue;
		spin_lock(&p->lock);
		p->cuid = cuid;
		p->cgid = cgid;
		spin_unlock(&p->lock);
		ret = 0;
		break;
	}
	up_read(&ids->rwsem);
	if (ret)
		return ckpt_err(ctx, ret, "SysV %s %d is gone", ckpt_ipc_kind(kind), perm->id);
	return 0;
}

/*
 * In the root: every SysV object of the namespace, in the image's order
 * (segments, queues, sets), each with its id, contents, owner and mode
 */
static int restore_ipc_objs(struct ckpt_ctx *ctx)
{
	struct ckpt_ipc *ipc = ctx->ipc;
	void __user *scratch = ckpt_scratch_map(ctx);
	int ret = 0;
	u32 i;

	if (IS_ERR(scratch))
		return PTR_ERR(scratch);
	for (i = 0; !ret && i < ipc->nr_objs; i++) {
		struct ckpt_ipc_obj *o = &ipc->objs[i];

		if (o->kind == IPC_SHM_IDS)
			ret = restore_shm_segment(ctx, o, scratch);
		else if (o->kind == IPC_MSG_IDS)
			ret = restore_msg_queue(ctx, o, scratch);
		else
			ret = restore_sem_set(ctx, o, scratch);
	}
	ckpt_scratch_unmap(scratch);
	return ret;
}

/* In the root, first of all: the limits, the objects, and shm_rmid_forced last */
int restore_ipc_ns(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_ipc_ns *h = ctx->ipc->limits;
	int ret;

	ret = restore_ipc_sysctl(ctx, "shmmax", "%llu", h->shmmax);
	if (!ret)
		ret = restore_ipc_sysctl(ctx, "shmall", "%llu", h->shmall);
	if (!ret)
		ret = restore_ipc_sysctl(ctx, "shmmni", "%u", h->shmmni);
	if (!ret)
		ret = restore_ipc_sysctl(ctx, "msgmax", "%u", h->msgmax);
	if (!ret)
		ret = restore_ipc_sysctl(ctx, "msgmnb", "%u", h->msgmnb);
	if (!ret)
		ret = restore_ipc_sysctl(ctx, "msgmni", "%u", h->msgmni);
	if (!ret)
		ret = restore_ipc_sysctl(ctx, "sem", "%u %u %u %u",
					 h->sem[0], h->sem[1], h->sem[2], h->sem[3]);
	if (!ret)
		ret = restore_ipc_objs(ctx);
	/* last: its 1 destroys at once a segment nobody holds, its creator gone */
	if (!ret)
		ret = restore_ipc_sysctl(ctx, "shm_rmid_forced", "%u", h->shm_rmid_forced);
	return ret;
}
