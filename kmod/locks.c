// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: file locks, POSIX (fcntl F_SETLK), OFD (F_OFD_SETLK) and
 * flock(2), with their ranges, types and owners.
 *
 * An OFD or flock lock belongs to its open file: it is a LOCK object
 * after the file's FILE, and restart takes it again as soon as the file
 * is there.  A POSIX lock belongs to the process (its fd table): the LOCK
 * objects follow the task's FDs and restart takes them in the task itself
 * once its descriptors are installed, so they have the same owner and pid
 * as before.  Locks are taken without waiting: a lock somebody else took
 * meanwhile fails the restart, naming the file.  Leases are refused.
 */

#include <linux/fdtable.h>
#include <linux/file.h>
#include <linux/filelock.h>
#include <linux/fs.h>
#include <linux/slab.h>

#include "ckpt.h"

#define CKPT_LOCKS_MAX	4096

struct ckpt_lock {
	u32 kind;
	u32 type;
	loff_t start, end;
};

/* The locks on @file's inode that @owner holds (or @file, for OFD and flock) */
static int ckpt_collect_locks(struct ckpt_ctx *ctx, struct file *file, fl_owner_t owner,
			      struct ckpt_lock *locks, int max)
{
	struct file_lock_context *flctx = locks_inode_context(file_inode(file));
	struct file_lock *fl;
	struct file_lease *lease;
	bool leased = false;
	int n = 0;

	if (!flctx)
		return 0;
	spin_lock(&flctx->flc_lock);
	list_for_each_entry(fl, &flctx->flc_posix, c.flc_list) {
		bool ofd = fl->c.flc_flags & FL_OFDLCK;

		if (ofd ? owner || fl->c.flc_file != file : fl->c.flc_owner != owner || !owner)
			continue;
		if (n == max)
			break;
		locks[n].kind = ofd ? CKPT_LOCK_OFD : CKPT_LOCK_POSIX;
		locks[n].type = fl->c.flc_type;
		locks[n].start = fl->fl_start;
		locks[n++].end = fl->fl_end;
	}
	list_for_each_entry(fl, &flctx->flc_flock, c.flc_list) {
		if (owner || fl->c.flc_file != file || n == max)
			continue;
		locks[n].kind = CKPT_LOCK_FLOCK;
		locks[n].type = fl->c.flc_type;
		locks[n].start = 0;
		locks[n++].end = OFFSET_MAX;
	}
	list_for_each_entry(lease, &flctx->flc_lease, c.flc_list)
		leased |= !owner && lease->c.flc_file == file;
	spin_unlock(&flctx->flc_lock);
	if (leased)
		return ckpt_err(ctx, -EOPNOTSUPP, "%pD: a lease (F_SETLEASE) is not supported",
				file);
	if (n == max)
		return ckpt_err(ctx, -E2BIG, "%pD: more than %d locks", file, max - 1);
	return n;
}

static int checkpoint_locks(struct ckpt_ctx *ctx, struct file *file, fl_owner_t owner,
			    s32 objref)
{
	struct ckpt_lock *locks;
	int i, n, ret = 0;

	locks = kvcalloc(CKPT_LOCKS_MAX, sizeof(*locks), GFP_KERNEL);
	if (!locks)
		return -ENOMEM;
	n = ckpt_collect_locks(ctx, file, owner, locks, CKPT_LOCKS_MAX);
	/* a descriptor the restarter provides (objref 0) cannot carry locks of ours */
	if (n > 0 && !objref)
		ret = ckpt_err(ctx, -EOPNOTSUPP,
			       "%pD: a lock on the restarter's stdio is not supported", file);
	for (i = 0; i < n && !ret; i++) {
		struct ckpt_hdr_lock l = {
			.file = objref,
			.kind = locks[i].kind,
			.type = locks[i].type,
			.start = locks[i].start,
			.end = locks[i].end,
		};

		ret = ckpt_write_obj(ctx, &l, CKPT_HDR_LOCK, sizeof(l));
	}
	kvfree(locks);
	return n < 0 ? n : ret;
}

/* The OFD and flock locks of @file, after its FILE object */
int checkpoint_file_locks(struct ckpt_ctx *ctx, struct file *file, s32 objref)
{
	return checkpoint_locks(ctx, file, NULL, objref);
}

/* The POSIX locks @t's fd table holds, after its FDs: once per inode */
int checkpoint_posix_locks(struct ckpt_ctx *ctx, struct task_struct *t)
{
	struct inode **seen;
	unsigned int fd, nr = 0, i;
	fl_owner_t owner;
	int ret = 0;

	task_lock(t);
	owner = t->files;
	task_unlock(t);
	if (!owner)
		return 0;
	seen = kvcalloc(CKPT_FDS_MAX, sizeof(*seen), GFP_KERNEL);
	if (!seen)
		return -ENOMEM;
	for (fd = 0; !ret; fd++) {
		struct file *file;

		file = ckpt_task_next_file(t, &fd);
		if (!file)
			break;
		for (i = 0; i < nr && seen[i] != file_inode(file); i++)
			;
		if (i == nr && nr < CKPT_FDS_MAX) {
			s32 objref = ckpt_obj_lookup(ctx, file);

			seen[nr++] = file_inode(file);
			snprintf(ctx->where, sizeof(ctx->where), "pid %d fd %u",
				 task_pid_vnr(t), fd);
			ret = checkpoint_locks(ctx, file, owner, objref);
			ctx->where[0] = 0;
		}
		fput(file);
	}
	kvfree(seen);
	return ret;
}

static struct file_lock *ckpt_lock_of(struct ckpt_hdr_lock *l, struct file *file,
				      fl_owner_t owner, pid_t pid, unsigned int flags)
{
	struct file_lock *fl = locks_alloc_lock();

	if (!fl)
		return NULL;
	fl->c.flc_file = file;
	fl->c.flc_owner = owner;
	fl->c.flc_pid = pid;
	fl->c.flc_flags = flags;
	fl->c.flc_type = l->type;
	fl->fl_start = l->start;
	fl->fl_end = l->end;
	return fl;
}

static int ckpt_take_lock(struct ckpt_ctx *ctx, struct ckpt_hdr_lock *l, struct file *file)
{
	struct file_lock *fl;
	int ret;

	switch (l->kind) {
	case CKPT_LOCK_POSIX:
		fl = ckpt_lock_of(l, file, current->files, current->tgid, FL_POSIX);
		break;
	case CKPT_LOCK_OFD:
		fl = ckpt_lock_of(l, file, file, -1, FL_POSIX | FL_OFDLCK);
		break;
	default:
		fl = ckpt_lock_of(l, file, file, current->tgid, FL_FLOCK);
		break;
	}
	if (!fl)
		return -ENOMEM;
	if (l->kind == CKPT_LOCK_FLOCK)
		ret = locks_lock_inode_wait(file_inode(file), fl);
	else
		ret = vfs_lock_file(file, l->kind == CKPT_LOCK_OFD ? F_OFD_SETLK : F_SETLK, fl,
				    NULL);
	locks_free_lock(fl);
	if (ret)
		ckpt_err(ctx, ret, "cannot lock %pD again (%s %lld-%lld)", file,
			 l->type == F_WRLCK ? "write" : "read", l->start, l->end);
	return ret;
}

int restore_lock_obj(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_lock *l;
	struct file *file;
	struct ckpt_rlock *locks;

	l = ckpt_next(ctx, CKPT_HDR_LOCK, sizeof(*l));
	if (IS_ERR(l))
		return PTR_ERR(l);
	file = ckpt_obj_file(ctx, l->file);
	if (l->h.len != sizeof(*l) || !file || l->kind < CKPT_LOCK_POSIX ||
	    l->kind > CKPT_LOCK_FLOCK || (l->type != F_RDLCK && l->type != F_WRLCK) ||
	    l->start < 0 || l->end < l->start || l->pad)
		return ckpt_err(ctx, -EINVAL, "bad LOCK object");
	/* what fcntl(2) and flock(2) ask of the open file */
	if (l->kind != CKPT_LOCK_FLOCK &&
	    !(file->f_mode & (l->type == F_RDLCK ? FMODE_READ : FMODE_WRITE)))
		return ckpt_err(ctx, -EBADF, "LOCK on %pD: the file is not open for it", file);
	if (l->kind != CKPT_LOCK_POSIX)
		return ckpt_take_lock(ctx, l, file);
	if (ctx->nr_locks == CKPT_LOCKS_MAX)
		return ckpt_err(ctx, -E2BIG, "more than %d POSIX locks", CKPT_LOCKS_MAX);
	locks = krealloc_array(ctx->locks, ctx->nr_locks + 1, sizeof(*locks), GFP_KERNEL);
	if (!locks)
		return -ENOMEM;
	ctx->locks = locks;
	locks[ctx->nr_locks].l = l;
	locks[ctx->nr_locks++].file = file;
	return 0;
}

/* Restart, once the fd table is the image's: the task's POSIX locks */
int restore_posix_locks(struct ckpt_ctx *ctx)
{
	unsigned int i;
	int ret = 0;

	for (i = 0; !ret && i < ctx->nr_locks; i++)
		ret = ckpt_take_lock(ctx, ctx->locks[i].l, ctx->locks[i].file);
	return ret;
}
