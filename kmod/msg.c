// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: SysV message queues.
 *
 * A queue of the tree's own IPC namespace is saved as a MSG_QUEUE object
 * (key, id, owner, creator, mode, msg_qbytes) followed by one MSG object
 * per queued message, in queue order, with its type and text, as kernel
 * patch 0013 copies them without receiving them.  A message too large
 * for one image object is refused by name.
 *
 * Restart creates each queue with msgget(2) and its id, makes room with
 * msgctl(IPC_SET) (a msg_qbytes above msgmnb needs CAP_SYS_RESOURCE, as
 * for a running program), sends the messages again in order with
 * msgsnd(2), and then gives it its owner and mode: in the root, before
 * any task is rebuilt, with the restarter's rights.
 */

#include <linux/cred.h>
#include <linux/ipc.h>
#include <linux/ipc_namespace.h>
#include <linux/msg.h>
#include <linux/slab.h>
#include <linux/syscalls.h>

#include "ckpt.h"

#define CKPT_MSG_MAX	(CKPT_OBJ_MAX - sizeof(struct ckpt_hdr_msg))

/* The messages of queue @id: a buffer of struct msg_checkpoint records, or an ERR_PTR */
static void *ckpt_msg_copy(struct ckpt_ctx *ctx, s32 id, ssize_t *len, unsigned long *qbytes)
{
	ssize_t need = msg_checkpoint_queue(ctx->ipc->ns, id, NULL, 0, qbytes);
	void *buf;

	/* a process outside the tree may send meanwhile: try again with more room */
	while (need >= 0) {
		buf = kvzalloc(max_t(ssize_t, need, 1), GFP_KERNEL);
		if (!buf)
			return ERR_PTR(-ENOMEM);
		*len = msg_checkpoint_queue(ctx->ipc->ns, id, buf, need, qbytes);
		if (*len >= 0 && *len <= need)
			return buf;
		kvfree(buf);
		need = *len;
	}
	return ERR_PTR(ckpt_err(ctx, need, "SysV message queue %d went away during the checkpoint",
				id));
}

static int checkpoint_msg_queue(struct ckpt_ctx *ctx, struct ckpt_ipc_perm *perm)
{
	struct ckpt_hdr_msg_queue h = { .perm = *perm };
	unsigned long qbytes = 0;
	void *buf, *p, *end;
	ssize_t len;
	int ret;

	buf = ckpt_msg_copy(ctx, perm->id, &len, &qbytes);
	if (IS_ERR(buf))
		return PTR_ERR(buf);
	end = buf + len;
	for (p = buf; p < end; h.nr_msgs++)
		p += sizeof(struct msg_checkpoint) + ALIGN(((struct msg_checkpoint *)p)->size, 8);
	h.qbytes = qbytes;
	ret = ckpt_write_obj(ctx, &h, CKPT_HDR_MSG_QUEUE, sizeof(h));
	for (p = buf; !ret && p < end;) {
		struct msg_checkpoint *m = p;
		struct ckpt_hdr_msg mh = { .mtype = m->mtype, .size = m->size };

		if (m->size > CKPT_MSG_MAX) {
			ret = ckpt_err(ctx, -E2BIG,
				       "SysV message queue %d: a message of %zu bytes is more than the %zu supported",
				       perm->id, m->size, CKPT_MSG_MAX);
			break;
		}
		ret = ckpt_write_obj_buf(ctx, &mh, CKPT_HDR_MSG, sizeof(mh), m + 1, m->size);
		p += sizeof(*m) + ALIGN(m->size, 8);
	}
	kvfree(buf);
	return ret;
}

int checkpoint_msg_queues(struct ckpt_ctx *ctx, struct ckpt_ipc_perm *perm, u32 nr)
{
	u32 i;
	int ret = 0;

	for (i = 0; !ret && i < nr; i++)
		ret = checkpoint_msg_queue(ctx, &perm[i]);
	return ret;
}

/* After the segments: @nr queues, each with the MSG objects that follow it */
int restore_prepare_msg_queues(struct ckpt_ctx *ctx, u32 nr, u32 msgmax)
{
	u32 i, j;

	for (i = 0; i < nr; i++) {
		struct ckpt_obj *obj = ctx->cur;
		struct ckpt_hdr_msg_queue *h;
		u64 bytes = 0;
		int ret;

		h = ckpt_next(ctx, CKPT_HDR_MSG_QUEUE, sizeof(*h));
		if (IS_ERR(h))
			return PTR_ERR(h);
		if (h->h.len != sizeof(*h) || h->qbytes > INT_MAX || h->pad ||
		    h->nr_msgs > h->qbytes)
			return ckpt_err(ctx, -EINVAL, "bad MSG_QUEUE object (id %d)", h->perm.id);
		for (j = 0; j < h->nr_msgs; j++) {
			struct ckpt_hdr_msg *m = ckpt_next(ctx, CKPT_HDR_MSG, sizeof(*m));

			if (IS_ERR(m))
				return PTR_ERR(m);
			if (m->mtype <= 0 || m->size > msgmax ||
			    m->h.len != sizeof(*m) + ALIGN(m->size, 8))
				return ckpt_err(ctx, -EINVAL, "bad MSG object in queue %d",
						h->perm.id);
			bytes += m->size;
		}
		if (bytes > h->qbytes)
			return ckpt_err(ctx, -EINVAL,
					"SysV message queue %d holds more than its %llu bytes",
					h->perm.id, h->qbytes);
		ret = restore_prepare_ipc_obj(ctx, IPC_MSG_IDS, &h->perm, obj, h->nr_msgs, 0);
		if (ret)
			return ret;
	}
	return 0;
}

static long restore_msgget(struct ckpt_ctx *ctx, struct ckpt_ipc_obj *o, int flags)
{
	return ckpt_syscall(__NR_msgget, o->perm->key, flags);
}

/* msgctl(IPC_SET): the owner and mode of @perm, and room for @qbytes */
static int restore_msg_set(struct ckpt_ctx *ctx, struct ckpt_ipc_perm *perm, u64 qbytes,
			   void __user *scratch)
{
	struct msqid64_ds ds = { .msg_qbytes = qbytes };
	void __user *uds;
	long ret;

	ret = restore_ipc64_perm(ctx, &ds.msg_perm, perm);
	if (ret)
		return ret;
	uds = ckpt_stage(scratch, 0, &ds, sizeof(ds));
	ret = uds ? ckpt_syscall(__NR_msgctl, perm->id, IPC_SET, (unsigned long)uds) : -EFAULT;
	if (ret)
		return ckpt_err(ctx, ret, "cannot set SysV message queue %d (%llu bytes)",
				perm->id, qbytes);
	return 0;
}

int restore_msg_queue(struct ckpt_ctx *ctx, struct ckpt_ipc_obj *o, void __user *scratch)
{
	struct ckpt_hdr_msg_queue *h = (struct ckpt_hdr_msg_queue *)o->obj->h;
	struct ckpt_ipc_perm mine = *o->perm;
	struct ckpt_obj *obj = o->obj;
	long ret;
	u32 i;

	ret = restore_ipc_create(ctx, IPC_MSG_IDS, o->perm, restore_msgget, o);
	if (ret)
		return ret;
	/* room for the messages first, still ours to write to */
	mine.uid = from_kuid_munged(current_user_ns(), current_euid());
	mine.gid = from_kgid_munged(current_user_ns(), current_egid());
	mine.mode = 0600;
	ret = restore_msg_set(ctx, &mine, h->qbytes, scratch);
	for (i = 0; !ret && i < o->nr; i++) {
		struct ckpt_hdr_msg *m;
		void __user *umsg;

		obj = list_next_entry(obj, list);
		m = (struct ckpt_hdr_msg *)obj->h;
		/* struct msgbuf: the type, then the text */
		umsg = ckpt_stage(scratch, 0, &m->mtype, sizeof(m->mtype));
		if (!ckpt_stage(scratch, sizeof(m->mtype), m + 1, m->size))
			umsg = NULL;
		ret = umsg ? ckpt_syscall(__NR_msgsnd, o->perm->id, (unsigned long)umsg, m->size,
					  IPC_NOWAIT) : -EFAULT;
		if (ret)
			return ckpt_err(ctx, ret, "cannot queue message %u of SysV queue %d again",
					i, o->perm->id);
	}
	if (!ret)
		ret = restore_msg_set(ctx, o->perm, h->qbytes, scratch);
	return ret ? ret : restore_ipc_creator(ctx, IPC_MSG_IDS, o->perm);
}
