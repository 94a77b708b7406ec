// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab checkpoint/restart engine: registration, context, object hash.
 *
 * Loaded as a module, the engine registers itself behind checkpoint(2) and
 * restart(2) (kernel-patches/ 0001).  Each call gets a context that lives
 * for the call only; shared kernel objects (open files) go through the
 * object hash so that each is saved once and referenced by id.
 */

#include <linux/atomic.h>
#include <linux/cred.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>

#include "ckpt.h"

static atomic_t ckpt_id = ATOMIC_INIT(0);

s32 ckpt_obj_lookup(struct ckpt_ctx *ctx, const void *ptr)
{
	struct ckpt_objref *o;

	hash_for_each_possible(ctx->objhash, o, hash, (unsigned long)ptr)
		if (o->ptr == ptr)
			return o->objref;
	return 0;
}

/* Checkpoint: give @ptr the next id; returns it, or -ENOMEM */
s32 ckpt_obj_add(struct ckpt_ctx *ctx, const void *ptr, u32 type)
{
	struct ckpt_objref *o = kzalloc(sizeof(*o), GFP_KERNEL);

	if (!o)
		return -ENOMEM;
	o->ptr = ptr;
	o->type = type;
	o->objref = ++ctx->next_objref;
	hash_add(ctx->objhash, &o->hash, (unsigned long)ptr);
	return o->objref;
}

/* Restart: a new entry for @objref, which must not be defined yet */
static struct ckpt_objref *ckpt_obj_new(struct ckpt_ctx *ctx, s32 objref, u32 type)
{
	struct ckpt_objref *o;

	if (objref <= 0 || ckpt_obj_find_any(ctx, objref))
		return ERR_PTR(-EINVAL);
	o = kzalloc(sizeof(*o), GFP_KERNEL);
	if (!o)
		return ERR_PTR(-ENOMEM);
	o->objref = objref;
	o->type = type;
	hash_add(ctx->objhash, &o->hash, (unsigned long)objref);
	return o;
}

/* Restart: @objref now names @file; the hash owns the reference */
int ckpt_obj_add_file(struct ckpt_ctx *ctx, s32 objref, struct file *file)
{
	struct ckpt_objref *o = ckpt_obj_new(ctx, objref, CKPT_HDR_FILE);

	if (IS_ERR(o))
		return PTR_ERR(o);
	o->file = file;
	return 0;
}

/* Restart: @objref names bookkeeping of a kind, @priv (kfree()d with it), and no file yet */
int ckpt_obj_add_priv(struct ckpt_ctx *ctx, s32 objref, u32 type, void *priv)
{
	struct ckpt_objref *o = ckpt_obj_new(ctx, objref, type);

	if (IS_ERR(o))
		return PTR_ERR(o);
	o->priv = priv;
	return 0;
}

/* Restart: the entry of @objref, with a file or not */
struct ckpt_objref *ckpt_obj_find_any(struct ckpt_ctx *ctx, s32 objref)
{
	struct ckpt_objref *o;

	hash_for_each_possible(ctx->objhash, o, hash, (unsigned long)objref)
		if (o->objref == objref && !o->ptr)
			return o;
	return NULL;
}

/* Restart: the entry of @objref, if it was defined with a file */
struct ckpt_objref *ckpt_obj_find(struct ckpt_ctx *ctx, s32 objref)
{
	struct ckpt_objref *o = ckpt_obj_find_any(ctx, objref);

	return o && o->file ? o : NULL;
}

/* Restart: the entry of @objref if it names a rebuilt kernel object (ckpt_obj_add_kobj()) */
static struct ckpt_objref *ckpt_obj_find_kobj(struct ckpt_ctx *ctx, s32 objref)
{
	struct ckpt_objref *o;

	hash_for_each_possible(ctx->objhash, o, hash, (unsigned long)objref)
		if (o->objref == objref && o->ptr && o->type >= CKPT_OBJ_SHARED(0) &&
		    o->type < CKPT_OBJ_SHARED(CKPT_SHARE_NR))
			return o;
	return NULL;
}

/*
 * Restart: @objref names the kernel object @ptr (an mm, fd table, ...) of
 * kind @type, which a task of the group rebuilt.  No reference is held:
 * the tasks that use it live until the group is done, or all fail.
 */
int ckpt_obj_add_kobj(struct ckpt_ctx *ctx, s32 objref, u32 type, const void *ptr)
{
	struct ckpt_objref *o;

	if (ckpt_obj_find_kobj(ctx, objref))
		return -EINVAL;
	o = ckpt_obj_new(ctx, objref, type);
	if (IS_ERR(o))
		return PTR_ERR(o);
	o->ptr = ptr;
	return 0;
}

const void *ckpt_obj_kobj(struct ckpt_ctx *ctx, s32 objref, u32 type)
{
	struct ckpt_objref *o = ckpt_obj_find_kobj(ctx, objref);

	return o && o->type == type ? o->ptr : NULL;
}

/* Restart: whether some id of kind @type names @ptr */
bool ckpt_obj_kobj_known(struct ckpt_ctx *ctx, u32 type, const void *ptr)
{
	struct ckpt_objref *o;
	int bkt;

	hash_for_each(ctx->objhash, bkt, o, hash)
		if (o->type == type && o->ptr == ptr)
			return true;
	return false;
}

struct file *ckpt_obj_file(struct ckpt_ctx *ctx, s32 objref)
{
	struct ckpt_objref *o = ckpt_obj_find(ctx, objref);

	return o ? o->file : NULL;
}

/* Restart: @objref names the shared anonymous memory object @file; the hash owns it */
int ckpt_obj_add_shmem(struct ckpt_ctx *ctx, s32 objref, struct file *file)
{
	struct ckpt_objref *o = ckpt_obj_new(ctx, objref, CKPT_HDR_SHMEM);

	if (IS_ERR(o))
		return PTR_ERR(o);
	o->file = file;
	return 0;
}

struct file *ckpt_obj_shmem(struct ckpt_ctx *ctx, s32 objref)
{
	struct ckpt_objref *o = ckpt_obj_find(ctx, objref);

	return o && o->type == CKPT_HDR_SHMEM ? o->file : NULL;
}

/* Restart: whether an object of any kind has the id @objref */
bool ckpt_obj_taken(struct ckpt_ctx *ctx, s32 objref)
{
	return ckpt_obj_find_any(ctx, objref) || ckpt_obj_find_kobj(ctx, objref);
}

/* Restart: @objref names the pipe whose ends are @rd and @wr; the hash owns both */
int ckpt_obj_add_pipe(struct ckpt_ctx *ctx, s32 objref, struct file *rd, struct file *wr)
{
	int ret = ckpt_obj_add_file(ctx, objref, rd);
	struct ckpt_objref *o;

	if (ret)
		return ret;
	hash_for_each_possible(ctx->objhash, o, hash, (unsigned long)objref)
		if (o->objref == objref && o->file == rd)
			o->file2 = wr;
	return 0;
}

struct file *ckpt_obj_pipe_end(struct ckpt_ctx *ctx, s32 objref, bool write)
{
	struct ckpt_objref *o;

	hash_for_each_possible(ctx->objhash, o, hash, (unsigned long)objref)
		if (o->objref == objref && o->file2)
			return write ? o->file2 : o->file;
	return NULL;
}

static void ckpt_obj_free_all(struct ckpt_ctx *ctx)
{
	struct ckpt_objref *o;
	struct hlist_node *tmp;
	int bkt;

	hash_for_each_safe(ctx->objhash, bkt, tmp, o, hash) {
		hash_del(&o->hash);
		if (o->file)
			fput(o->file);
		if (o->file2)
			fput(o->file2);
		kfree(o->priv);
		kfree(o);
	}
}

static struct ckpt_ctx *ckpt_ctx_alloc(int fd, unsigned long flags, int logfd,
				       bool restart)
{
	struct ckpt_ctx *ctx;
	int ret = -EBADF;

	ctx = kzalloc(sizeof(*ctx), GFP_KERNEL);
	if (!ctx)
		return ERR_PTR(-ENOMEM);
	ctx->restart = restart;
	ctx->flags = flags;
	ctx->cred = get_current_cred();
	hash_init(ctx->objhash);
	INIT_LIST_HEAD(&ctx->objs);
	INIT_LIST_HEAD(&ctx->snaps);
	INIT_LIST_HEAD(&ctx->tracked);
	INIT_LIST_HEAD(&ctx->tcp_repair);

	if (logfd >= 0) {
		ctx->logfile = fget(logfd);
		if (!ctx->logfile || !(ctx->logfile->f_mode & FMODE_WRITE))
			goto err;
	} else if (logfd != -1) {
		goto err;
	}

	ctx->file = fget(fd);
	if (!ctx->file)
		goto err;
	if (!(ctx->file->f_mode & (restart ? FMODE_READ : FMODE_WRITE)))
		goto err;
	ctx->start_pos = ctx->file->f_pos;
	return ctx;
err:
	if (ctx->logfile)
		fput(ctx->logfile);
	if (ctx->file)
		fput(ctx->file);
	put_cred(ctx->cred);
	kfree(ctx);
	return ERR_PTR(ret);
}

/* Restart: forget what was parsed for one task (the image and objects stay) */
void ckpt_ctx_reset_task(struct ckpt_ctx *ctx)
{
	path_put(&ctx->cwd);
	memset(&ctx->cwd, 0, sizeof(ctx->cwd));
	kfree(ctx->fds);
	ctx->fds = NULL;
	ctx->nr_fds = 0;
	kfree(ctx->locks);
	ctx->locks = NULL;
	ctx->nr_locks = 0;
	ctx->ctty = NULL;
	if (ctx->fg_tty)
		fput(ctx->fg_tty);
	ctx->fg_tty = NULL;
	kvfree(ctx->vmas);
	ctx->vmas = NULL;
	ctx->nr_vmas = 0;
	if (ctx->new_cred)
		abort_creds(ctx->new_cred);
	ctx->new_cred = NULL;
	ctx->task = NULL;
	ctx->thread = NULL;
	ctx->fs = NULL;
	ctx->mm = NULL;
	ctx->cpu = NULL;
	ctx->fpu = NULL;
	ctx->sighand = NULL;
	ctx->signal = NULL;
	ctx->sigpending = NULL;
	ctx->rlimits = NULL;
	if (ctx->exe)
		fput(ctx->exe);
	ctx->exe = NULL;
	ctx->process = NULL;
	ctx->itimers = NULL;
	ctx->posix_timers_first = NULL;
	ctx->nr_posix_timers = 0;
	ctx->seccomp = NULL;
	ctx->sem_undo_first = NULL;
	ctx->nr_sem_undo = 0;
	ctx->pages_first = NULL;
	ctx->drops_first = NULL;
	ctx->nr_drops = 0;
	kvfree(ctx->extents.e);
	memset(&ctx->extents, 0, sizeof(ctx->extents));
	ctx->nr_pages = 0;
}

void ckpt_ctx_free(struct ckpt_ctx *ctx)
{
	ckpt_free_objs(&ctx->objs);
	ckpt_drop_snapshots(ctx);
	ckpt_chain_free(ctx);
	ckpt_obj_free_all(ctx);
	ckpt_ctx_reset_task(ctx);
	ckpt_ipc_free(ctx);
	if (ctx->logfile)
		fput(ctx->logfile);
	fput(ctx->file);
	put_cred(ctx->cred);
	kfree(ctx);
}

static long crengine_checkpoint(pid_t pid, int fd, unsigned long flags,
				int logfd)
{
	struct ckpt_ctx *ctx;
	long ret;

	ctx = ckpt_ctx_alloc(fd, flags, logfd, false);
	if (IS_ERR(ctx))
		return PTR_ERR(ctx);
	ret = checkpoint_tree(ctx, pid);
	if (!ret) {
		/* never 0: a task restarted from its own checkpoint returns 0 from it */
		ret = (atomic_inc_return(&ckpt_id) & INT_MAX) ?: 1;
		ckpt_msg(ctx, "checkpoint %ld of pid %d done: %llu objects, %llu bytes\n",
			 ret, pid, ctx->nr_objects + 1, ctx->bytes);
	}
	ckpt_ctx_free(ctx);
	return ret;
}

static long crengine_restart(pid_t pid, int fd, unsigned long flags,
			     int logfd)
{
	struct ckpt_ctx *ctx;
	long ret;

	/* no image: a task the restart cloned, coming back from its stub (spawn.c) */
	if (pid > 0 && fd == -1 && logfd == -1 && flags == RESTART_TASKSELF)
		return restore_continue(pid);
	/* no image: thaw the tree a RESTART_FROZEN restart left at @pid */
	if (flags == RESTART_FROZEN && fd == -1)
		return restore_thaw(pid);
	ctx = ckpt_ctx_alloc(fd, flags, logfd, true);
	if (IS_ERR(ctx))
		return PTR_ERR(ctx);
	/* restart(2) let through only RESTART_TASKSELF and RESTART_FROZEN */
	if (!(flags & RESTART_TASKSELF))
		ret = ckpt_err(ctx, -EINVAL,
			       "only self restart is supported: the root calls restart(root, fd, RESTART_TASKSELF, logfd)");
	else
		ret = restore_self(&ctx, pid);	/* may keep ctx for the tree */
	if (ctx)
		ckpt_ctx_free(ctx);
	return ret;
}

static const struct ckpt_engine_ops crengine_ops = {
	.owner = THIS_MODULE,
	.name = "crengine",
	.checkpoint = crengine_checkpoint,
	.restart = crengine_restart,
};

static int __init crengine_init(void)
{
	int ret = ckpt_register_engine(&crengine_ops);

	if (!ret)
		pr_info("crengine: checkpoint/restart engine registered (image version %d)\n",
			CKPT_IMAGE_VERSION);
	return ret;
}

static void __exit crengine_exit(void)
{
	ckpt_unregister_engine(&crengine_ops);
	ckpt_groups_exit();
	ckpt_thaw_all_held();
	ckpt_chain_exit();
}

module_init(crengine_init);
module_exit(crengine_exit);
MODULE_LICENSE("GPL");
MODULE_AUTHOR("cr-lab <cr-lab@localhost>");
MODULE_DESCRIPTION("cr-lab in-kernel checkpoint/restart engine");
