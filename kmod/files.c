// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: open files, the file descriptor table, cwd and umask.
 *
 * Every open file is a FILE object, defined once and referenced by id from
 * FD and VMA objects.  What a kind of file holds beyond its flags and
 * position (a pipe's bytes, a socket's peer and queue, an eventfd's
 * counter, ...) is in objects of its own that the FILE names, written and
 * read by that kind's ckpt_file_ops, one C file per kind.  Files with a
 * path are reopened by path with the restarting task's credentials, so
 * restart can never open something its caller could not; the others are
 * made anew.
 *
 * This file holds what every kind shares: the table of kinds, status
 * flags (O_NONBLOCK, O_APPEND, O_ASYNC, ...), the owner F_SETOWN and
 * F_SETSIG set, file contents as DATA objects, and the kinds that are
 * only a path: regular files, directories (also as O_PATH descriptors)
 * and the stateless character devices /dev/null, /dev/zero, /dev/full,
 * /dev/random and /dev/urandom.  A descriptor 0-2 that is the caller's
 * plumbing (a pipe, or a socket to a process outside the tree) is
 * recorded as "inherit": the restarted task keeps what the restarter has
 * there.  Anything else is refused by name at checkpoint.
 */

#include <linux/fdtable.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/fs_struct.h>
#include <linux/kdev_t.h>
#include <linux/magic.h>
#include <linux/mount.h>
#include <linux/namei.h>
#include <linux/pid.h>
#include <linux/rcupdate.h>
#include <linux/sched/signal.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "ckpt.h"

static bool ckpt_chr_ok(dev_t dev)
{
	if (MAJOR(dev) != 1)
		return false;
	switch (MINOR(dev)) {
	case 3:	/* null */
	case 5:	/* zero */
	case 7:	/* full */
	case 8:	/* random */
	case 9:	/* urandom */
		return true;
	}
	return false;
}

/* A file that is only its path: reopening the path gives the same thing */
static bool ckpt_has_path(struct file *file)
{
	return !d_unlinked(file->f_path.dentry) &&
	       !(file->f_path.mnt->mnt_flags & MNT_INTERNAL);
}

static bool ckpt_reg_match(struct file *file)
{
	umode_t mode = file_inode(file)->i_mode;

	/* an O_PATH descriptor of anything with a path is its path */
	if (file->f_mode & FMODE_PATH)
		return ckpt_has_path(file) && (S_ISREG(mode) || S_ISLNK(mode) ||
					       S_ISSOCK(mode) || S_ISFIFO(mode) ||
					       S_ISCHR(mode) || S_ISBLK(mode));
	return S_ISREG(mode) && ckpt_has_path(file);
}

static bool ckpt_dir_match(struct file *file)
{
	return S_ISDIR(file_inode(file)->i_mode) && ckpt_has_path(file);
}

static bool ckpt_chr_match(struct file *file)
{
	struct inode *inode = file_inode(file);

	return S_ISCHR(inode->i_mode) && ckpt_chr_ok(inode->i_rdev) && ckpt_has_path(file);
}

static int checkpoint_path_file(struct ckpt_ctx *ctx, struct file *file,
				struct ckpt_hdr_file *h)
{
	if (S_ISCHR(file_inode(file)->i_mode) && !(file->f_mode & FMODE_PATH)) {
		h->rdev = new_encode_dev(file_inode(file)->i_rdev);
		h->pos = 0;
	}
	return 0;
}

/*
 * Restart opens what an image names without waiting: a FIFO (put where a
 * file was, or named by a hostile image) would wait for its other end, a
 * file under a lease for its holder, and the member's turn with it.  The
 * file's own status flags are set once it is open.
 */
struct file *ckpt_open_path(const char *path, int flags)
{
	return filp_open(path, flags | O_NONBLOCK, 0);
}

#define CKPT_OPEN_FLAGS (O_ACCMODE | O_APPEND | O_NONBLOCK | O_DSYNC | __O_SYNC | \
			 O_NOATIME | O_DIRECT | O_LARGEFILE | O_DIRECTORY | O_PATH | \
			 O_NOFOLLOW)

/* Reopen a file that is its path, and put it where it was */
static struct file *restore_path_file(struct ckpt_ctx *ctx, struct ckpt_hdr_file *h,
				      const char *path)
{
	struct file *file;
	struct inode *inode;
	int ret = -EINVAL;

	if (path[0] != '/')
		return ERR_PTR(ckpt_err(ctx, -EINVAL, "FILE %d: bad path", h->objref));
	/* an O_PATH descriptor of a symlink names the link itself */
	file = ckpt_open_path(path, (h->f_flags & CKPT_OPEN_FLAGS) |
			      (h->f_flags & O_PATH ? O_NOFOLLOW : 0));
	if (IS_ERR(file) && PTR_ERR(file) == -ELOOP && (h->f_flags & O_PATH))
		file = ckpt_open_path(path, h->f_flags & CKPT_OPEN_FLAGS);
	if (IS_ERR(file))
		return ERR_PTR(ckpt_err(ctx, PTR_ERR(file), "cannot reopen %s", path));
	inode = file_inode(file);
	if ((h->kind == CKPT_FILE_REG && !ckpt_reg_match(file)) ||
	    (h->kind == CKPT_FILE_DIR && !ckpt_dir_match(file)) ||
	    (h->kind == CKPT_FILE_CHR && (!ckpt_chr_match(file) ||
					  new_encode_dev(inode->i_rdev) != h->rdev))) {
		ckpt_err(ctx, ret, "%s is no longer the kind of file it was", path);
		goto err;
	}
	if (h->kind != CKPT_FILE_CHR && h->pos && !(file->f_mode & FMODE_PATH)) {
		loff_t pos = vfs_llseek(file, h->pos, SEEK_SET);

		if (pos != h->pos) {
			ret = pos < 0 ? pos : -EINVAL;
			ckpt_err(ctx, ret, "cannot seek %s to %lld", path, h->pos);
			goto err;
		}
	}
	return file;
err:
	fput(file);
	return ERR_PTR(ret);
}

static const struct ckpt_file_ops ckpt_reg_ops = {
	.kind = CKPT_FILE_REG,
	.name = "file",
	.match = ckpt_reg_match,
	.checkpoint = checkpoint_path_file,
	.restore = restore_path_file,
};

static const struct ckpt_file_ops ckpt_dir_ops = {
	.kind = CKPT_FILE_DIR,
	.name = "directory",
	.match = ckpt_dir_match,
	.checkpoint = checkpoint_path_file,
	.restore = restore_path_file,
};

static const struct ckpt_file_ops ckpt_chr_ops = {
	.kind = CKPT_FILE_CHR,
	.name = "character device",
	.match = ckpt_chr_match,
	.checkpoint = checkpoint_path_file,
	.restore = restore_path_file,
};

/* Every kind of file the engine saves; the first that matches a file is its kind */
static const struct ckpt_file_ops *const ckpt_file_kinds[] = {
	&ckpt_reg_ops, &ckpt_dir_ops, &ckpt_chr_ops, &ckpt_unlinked_ops, &ckpt_memfd_ops,
	&ckpt_pipe_ops, &ckpt_fifo_ops, &ckpt_unix_ops, &ckpt_inet_ops, &ckpt_eventfd_ops,
	&ckpt_timerfd_ops, &ckpt_signalfd_ops, &ckpt_epoll_ops, &ckpt_inotify_ops,
	&ckpt_tty_ops, &ckpt_ctty_ops,
};

/* The objects FILEs name, and who reads them at restart */
static const struct ckpt_obj_ops ckpt_state_objs[] = {
	{ CKPT_HDR_PIPE, restore_pipe_obj },
	{ CKPT_HDR_SOCKET, restore_socket_obj },
	{ CKPT_HDR_INET, restore_inet_obj },
	{ CKPT_HDR_TTY, restore_tty_obj },
	{ CKPT_HDR_MEMFD, restore_memfd_obj },
	{ CKPT_HDR_GHOST, restore_ghost_obj },
	{ CKPT_HDR_EVENTFD, restore_eventfd_obj },
	{ CKPT_HDR_TIMERFD, restore_timerfd_obj },
	{ CKPT_HDR_SIGNALFD, restore_signalfd_obj },
	{ CKPT_HDR_EPOLL, restore_epoll_obj },
	{ CKPT_HDR_INOTIFY, restore_inotify_obj },
	{ CKPT_HDR_FILE, restore_file_obj },
	{ CKPT_HDR_LOCK, restore_lock_obj },
};

static const struct ckpt_file_ops *ckpt_file_ops_kind(u32 kind);

/* Restart: a kind whose FILE is the file its state object made: that file */
struct file *restore_state_file(struct ckpt_ctx *ctx, struct ckpt_hdr_file *h,
				const char *path)
{
	const struct ckpt_file_ops *ops = ckpt_file_ops_kind(h->kind);
	struct file *file = ckpt_obj_file(ctx, h->obj);

	if (!file || !ops->match(file))
		return ERR_PTR(ckpt_err(ctx, -EINVAL, "FILE %d: unknown %s %d", h->objref,
					ops->name, h->obj));
	return get_file(file);
}

static const struct ckpt_file_ops *ckpt_file_ops_of(struct file *file)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(ckpt_file_kinds); i++)
		if (ckpt_file_kinds[i]->match(file))
			return ckpt_file_kinds[i];
	return NULL;
}

static const struct ckpt_file_ops *ckpt_file_ops_kind(u32 kind)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(ckpt_file_kinds); i++)
		if (ckpt_file_kinds[i]->kind == kind)
			return ckpt_file_kinds[i];
	return NULL;
}

/* What an unsupported file is, for the message that refuses it */
static int ckpt_refuse_file(struct ckpt_ctx *ctx, struct file *file)
{
	struct inode *inode = file_inode(file);
	char *buf = __getname(), *name;
	int ret;

	if (S_ISSOCK(inode->i_mode) && !(file->f_mode & FMODE_PATH)) {
		ret = ckpt_err(ctx, -EOPNOTSUPP, "%s socket: not supported",
			       ckpt_socket_family(file));
		goto out;
	}
	name = buf ? d_path(&file->f_path, buf, PATH_MAX) : ERR_PTR(-ENOMEM);
	if (IS_ERR(name))
		name = "a file without a path";
	if (S_ISCHR(inode->i_mode) || S_ISBLK(inode->i_mode))
		ret = ckpt_err(ctx, -EOPNOTSUPP, "%s (%s device %u:%u): not supported", name,
			       S_ISCHR(inode->i_mode) ? "character" : "block",
			       MAJOR(inode->i_rdev), MINOR(inode->i_rdev));
	else
		ret = ckpt_err(ctx, -EOPNOTSUPP, "%s: not supported", name);
out:
	if (buf)
		__putname(buf);
	return ret;
}

/* The next open file of @t from descriptor *@fd on (referenced), or NULL */
struct file *ckpt_task_next_file(struct task_struct *t, unsigned int *fd)
{
	struct file *file;

	rcu_read_lock();
	file = task_lookup_next_fdget_rcu(t, fd);
	rcu_read_unlock();
	return file;
}

/* Whether a file for which @match says yes is open in a task of the tree */
bool ckpt_tree_has_file(struct ckpt_ctx *ctx, bool (*match)(struct file *, const void *),
			const void *arg)
{
	struct ckpt_tree *tree = ctx->tree;
	bool found = false;
	u32 i;

	for (i = 0; tree && !found && i < tree->nr; i++) {
		unsigned int fd;

		if (tree->zombie[i])
			continue;
		for (fd = 0; !found; fd++) {
			struct file *file;

			file = ckpt_task_next_file(tree->tasks[i], &fd);
			if (!file)
				break;
			found = match(file, arg);
			fput(file);
		}
	}
	return found;
}

/* The task of the tree with pid @pid (in the checkpointer's namespace), or NULL */
struct task_struct *ckpt_tree_task(struct ckpt_ctx *ctx, pid_t pid)
{
	u32 i;

	for (i = 0; ctx->tree && i < ctx->tree->nr; i++)
		if (task_pid_vnr(ctx->tree->tasks[i]) == pid)
			return ctx->tree->tasks[i];
	return NULL;
}

/* The text /proc/PID/fdinfo shows for @file beyond pos and flags, or NULL */
char *ckpt_fdinfo(struct file *file, size_t size)
{
	struct seq_file *m;
	char *buf;

	if (!file->f_op->show_fdinfo)
		return NULL;
	m = kzalloc(sizeof(*m), GFP_KERNEL);
	buf = kvzalloc(size, GFP_KERNEL);
	if (!m || !buf)
		goto err;
	m->buf = buf;
	m->size = size - 1;
	file->f_op->show_fdinfo(m, file);
	if (seq_has_overflowed(m))
		goto err;
	kfree(m);
	return buf;
err:
	kvfree(buf);
	kfree(m);
	return NULL;
}

/* The line of fdinfo @text that starts with @key, for sscanf() */
const char *ckpt_fdinfo_line(const char *text, const char *key)
{
	const char *p = text;

	while ((p = strstr(p, key))) {
		if (p == text || p[-1] == '\n')
			return p;
		p++;
	}
	return NULL;
}

/* A file the anonymous inode file system made, named @name ("[eventfd]") */
bool ckpt_anon_is(struct file *file, const char *name)
{
	return file->f_path.mnt->mnt_sb->s_magic == ANON_INODE_FS_MAGIC &&
	       !(file->f_mode & FMODE_PATH) &&
	       !strcmp(file->f_path.dentry->d_name.name, name);
}

/* Restart: the file a constructor installed at @fd, taken out of the fd table */
struct file *ckpt_take_fd(int fd)
{
	struct file *file;

	if (fd < 0)
		return ERR_PTR(fd);
	file = fget(fd);
	close_fd(fd);
	return file ? file : ERR_PTR(-EBADF);
}

/*
 * Call @fn(@priv, address) with @arg (@len bytes, in and out) in a scratch
 * page of the calling task's memory: a tty's ioctls take only user pointers.
 */
long ckpt_user_call(struct ckpt_ctx *ctx, void *arg, size_t len,
		    long (*fn)(void *priv, unsigned long uaddr), void *priv)
{
	void __user *scratch;
	long ret;

	if (!current->mm || len > PAGE_SIZE)
		return -EINVAL;
	scratch = ckpt_scratch_map(ctx);
	if (IS_ERR(scratch))
		return PTR_ERR(scratch);
	ret = ckpt_stage(scratch, 0, arg, len) ? fn(priv, (unsigned long)scratch) : -EFAULT;
	if (ret >= 0 && copy_from_user(arg, scratch, len))
		ret = -EFAULT;
	ckpt_scratch_unmap(scratch);
	return ret;
}

struct ckpt_ioctl {
	struct file *file;
	unsigned int cmd;
};

static long ckpt_do_ioctl(void *priv, unsigned long uaddr)
{
	struct ckpt_ioctl *io = priv;

	return io->file->f_op->unlocked_ioctl(io->file, io->cmd, uaddr);
}

/* ioctl(2) on @file from the calling task, @arg in and out */
long ckpt_user_ioctl(struct ckpt_ctx *ctx, struct file *file, unsigned int cmd, void *arg,
		     size_t len)
{
	struct ckpt_ioctl io = { .file = file, .cmd = cmd };

	if (!file->f_op->unlocked_ioctl)
		return -ENOTTY;
	return ckpt_user_call(ctx, arg, len, ckpt_do_ioctl, &io);
}

/*
 * Write the state object @obj (@type, @len bytes) of the kernel object @key
 * once, as the one @h's FILE names.  Every state object starts with its id.
 */
int checkpoint_state_obj(struct ckpt_ctx *ctx, const void *key, void *obj, u32 type, u32 len,
			 struct ckpt_hdr_file *h)
{
	s32 objref = ckpt_obj_add(ctx, key, type);

	if (objref < 0)
		return objref;
	*(s32 *)(obj + sizeof(struct ckpt_hdr)) = objref;
	h->obj = objref;
	h->pos = 0;
	return ckpt_write_obj(ctx, obj, type, len);
}

/* One DATA object: @len bytes of @objref's contents at @offset */
int checkpoint_data(struct ckpt_ctx *ctx, s32 objref, const void *buf, u32 len, u64 offset)
{
	struct ckpt_hdr_data h = {
		.objref = objref,
		.len = len,
		.offset = offset,
	};

	return ckpt_write_obj_buf(ctx, &h, CKPT_HDR_DATA, sizeof(h), buf, len);
}

/*
 * The first @size bytes of @file as DATA objects, holes left out.  Read
 * through a file of our own, so that @file's position does not move.
 */
int checkpoint_file_data(struct ckpt_ctx *ctx, s32 objref, struct file *file, u64 size)
{
	struct file *f;
	loff_t pos = 0;
	char *buf;
	int ret = 0;

	f = dentry_open(&file->f_path, O_RDONLY | O_LARGEFILE, current_cred());
	if (IS_ERR(f))
		return ckpt_err(ctx, PTR_ERR(f), "cannot read %pD", file);
	buf = kvmalloc(CKPT_DATA_CHUNK, GFP_KERNEL);
	if (!buf) {
		fput(f);
		return -ENOMEM;
	}
	while (!ret && pos < size) {
		loff_t data = vfs_llseek(f, pos, SEEK_DATA), hole;

		if (data == -ENXIO || (data >= 0 && data >= size))
			break;
		hole = data < 0 ? data : vfs_llseek(f, data, SEEK_HOLE);
		if (hole < 0) {
			ret = ckpt_err(ctx, hole, "cannot find the data in %pD", file);
			break;
		}
		hole = min_t(loff_t, hole, size);
		for (pos = data; !ret && pos < hole;) {
			loff_t at = pos;
			ssize_t n = kernel_read(f, buf, min_t(loff_t, CKPT_DATA_CHUNK, hole - pos),
						&pos);

			if (n <= 0) {
				ret = ckpt_err(ctx, n ? n : -EIO, "cannot read %pD", file);
				break;
			}
			ret = checkpoint_data(ctx, objref, buf, n, at);
		}
	}
	kvfree(buf);
	fput(f);
	return ret;
}

/*
 * Restart: the next DATA object if it is @objref's (NULL if the next object
 * is something else), checked to lie within @limit bytes.
 */
struct ckpt_hdr_data *restore_next_data(struct ckpt_ctx *ctx, s32 objref, u64 limit)
{
	struct ckpt_hdr_data *d;

	if (ckpt_peek(ctx) != CKPT_HDR_DATA)
		return NULL;
	d = ckpt_next(ctx, CKPT_HDR_DATA, sizeof(*d));
	if (IS_ERR(d))
		return d;
	if (d->objref != objref || !d->len || d->len > CKPT_DATA_CHUNK ||
	    d->h.len != sizeof(*d) + ALIGN(d->len, 8) ||
	    d->offset > limit || d->len > limit - d->offset) {
		ckpt_err(ctx, -EINVAL, "bad DATA object for %d", objref);
		return ERR_PTR(-EINVAL);
	}
	return d;
}

/* Restart: write the DATA objects of @objref into @file, @size bytes long */
int restore_file_data(struct ckpt_ctx *ctx, s32 objref, struct file *file, u64 size)
{
	struct ckpt_hdr_data *d;
	int ret;

	ret = vfs_truncate(&file->f_path, size);
	if (ret)
		return ckpt_err(ctx, ret, "cannot size %pD to %llu bytes", file, size);
	while ((d = restore_next_data(ctx, objref, size))) {
		loff_t pos;
		ssize_t n;

		if (IS_ERR(d))
			return PTR_ERR(d);
		pos = d->offset;
		n = kernel_write(file, d + 1, d->len, &pos);
		if (n != d->len)
			return ckpt_err(ctx, n < 0 ? n : -EIO, "cannot refill %pD", file);
	}
	return 0;
}

#define CKPT_SETFL_FLAGS (O_APPEND | O_NONBLOCK | O_NDELAY | O_DIRECT | O_NOATIME)

/* Restart: the status flags F_SETFL sets (but O_ASYNC, which needs the descriptor) */
void ckpt_set_status_flags(struct file *file, u32 flags)
{
	spin_lock(&file->f_lock);
	file->f_flags = (file->f_flags & ~CKPT_SETFL_FLAGS) | (flags & CKPT_SETFL_FLAGS);
	spin_unlock(&file->f_lock);
}

/* Restart: give what @path names the owner it had; the file system checks the caller may */
int ckpt_chown(struct ckpt_ctx *ctx, const struct path *path, u32 uid, u32 gid)
{
	struct inode *inode = d_inode(path->dentry);
	struct iattr ia = {
		.ia_valid = ATTR_UID | ATTR_GID,
		.ia_uid = make_kuid(current_user_ns(), uid),
		.ia_gid = make_kgid(current_user_ns(), gid),
	};
	int ret;

	if (!uid_valid(ia.ia_uid) || !gid_valid(ia.ia_gid))
		return ckpt_err(ctx, -EINVAL, "owner %u:%u does not exist here", uid, gid);
	if (uid_eq(inode->i_uid, ia.ia_uid) && gid_eq(inode->i_gid, ia.ia_gid))
		return 0;
	ret = mnt_want_write(path->mnt);
	if (ret)
		return ret;
	inode_lock(inode);
	ret = notify_change(mnt_idmap(path->mnt), path->dentry, &ia, NULL);
	inode_unlock(inode);
	mnt_drop_write(path->mnt);
	if (ret)
		ckpt_err(ctx, ret, "cannot give %pd the owner %u:%u", path->dentry, uid, gid);
	return ret;
}

/*
 * Restart: unlink (or rmdir) what @path names, as unlink(2) would for the
 * caller.  The dentry stays positive, as an open file's or a working
 * directory's does: d_delete() leaves the inode to a dentry someone else
 * still holds.
 */
int ckpt_unlink(struct ckpt_ctx *ctx, const struct path *path)
{
	struct dentry *parent = dget_parent(path->dentry);
	struct dentry *held = dget(path->dentry);
	struct inode *dir = d_inode(parent);
	int ret;

	ret = mnt_want_write(path->mnt);
	if (ret)
		goto out;
	inode_lock_nested(dir, I_MUTEX_PARENT);
	if (path->dentry->d_parent != parent || d_unhashed(path->dentry))
		ret = -ENOENT;
	else if (d_is_dir(path->dentry))
		ret = vfs_rmdir(mnt_idmap(path->mnt), dir, path->dentry);
	else
		ret = vfs_unlink(mnt_idmap(path->mnt), dir, path->dentry, NULL);
	inode_unlock(dir);
	mnt_drop_write(path->mnt);
out:
	dput(held);
	dput(parent);
	if (ret)
		ckpt_err(ctx, ret, "cannot remove %pd again", path->dentry);
	return ret;
}

/* The target of F_SETOWN, which must be a task or a process group of the tree */
static int checkpoint_file_owner(struct ckpt_ctx *ctx, struct file *file,
				 struct ckpt_hdr_file *h)
{
	struct fown_struct *fown = file_f_owner(file);
	struct user_namespace *ns = current_user_ns();
	enum pid_type type = PIDTYPE_PID;
	struct pid *pid = NULL;
	bool in_tree = false;
	u32 i;

	if (!fown)
		return 0;
	read_lock_irq(&fown->lock);
	if (fown->pid) {
		pid = get_pid(fown->pid);
		type = fown->pid_type;
		h->owner_uid = from_kuid_munged(ns, fown->uid);
		h->owner_euid = from_kuid_munged(ns, fown->euid);
	}
	h->signum = fown->signum;
	read_unlock_irq(&fown->lock);
	if (!pid)
		return 0;
	h->owner = pid_vnr(pid);
	h->owner_type = type == PIDTYPE_PGID ? CKPT_OWNER_PGRP :
			type == PIDTYPE_TGID ? CKPT_OWNER_PID : CKPT_OWNER_TID;
	for (i = 0; ctx->tree && i < ctx->tree->nr && !in_tree; i++) {
		struct task_struct *t = ctx->tree->tasks[i];

		in_tree = type == PIDTYPE_PGID ? task_pgrp(t) == pid :
			  type == PIDTYPE_TGID ? task_tgid(t) == pid : task_pid(t) == pid;
	}
	put_pid(pid);
	if (!in_tree || !h->owner)
		return ckpt_err(ctx, -EOPNOTSUPP,
				"%pD: F_SETOWN names %s %d, which is outside the tree",
				file, type == PIDTYPE_PGID ? "process group" : "pid", h->owner);
	return 0;
}

static int restore_file_owner(struct ckpt_ctx *ctx, struct file *file,
			      struct ckpt_hdr_file *h)
{
	kuid_t uid = make_kuid(current_user_ns(), h->owner_uid);
	kuid_t euid = make_kuid(current_user_ns(), h->owner_euid);
	struct fown_struct *fown;
	struct pid *pid = NULL;
	int ret;

	if (h->owner) {
		if (!uid_valid(uid) || !uid_valid(euid) ||
		    !ckpt_uid_ok(current_cred(), uid) || !ckpt_uid_ok(current_cred(), euid))
			return ckpt_err(ctx, -EPERM,
					"FILE %d: F_SETOWN by uid %u is not ours to give",
					h->objref, h->owner_uid);
		pid = find_get_pid(h->owner);
		if (!pid)
			return ckpt_err(ctx, -ESRCH,
					"FILE %d: F_SETOWN names %d, which is not there",
					h->objref, h->owner);
	}
	ret = file_f_owner_allocate(file);
	if (ret)
		goto out;
	if (pid)
		__f_setown(file, pid, h->owner_type == CKPT_OWNER_PGRP ? PIDTYPE_PGID :
			   h->owner_type == CKPT_OWNER_PID ? PIDTYPE_TGID : PIDTYPE_PID, 1);
	fown = file_f_owner(file);
	write_lock_irq(&fown->lock);
	if (pid) {
		fown->uid = uid;
		fown->euid = euid;
	}
	fown->signum = h->signum;
	write_unlock_irq(&fown->lock);
out:
	put_pid(pid);
	return ret;
}

/* Save @file once; *@objref is its id in the image */
int checkpoint_file_obj(struct ckpt_ctx *ctx, struct file *file, s32 *objref)
{
	const struct ckpt_file_ops *ops;
	struct ckpt_hdr_file h = {};
	char *buf, *path;
	int ret;

	*objref = ckpt_obj_lookup(ctx, file);
	if (*objref)
		return 0;
	ops = ckpt_file_ops_of(file);
	if (!ops)
		return ckpt_refuse_file(ctx, file);

	buf = __getname();
	if (!buf)
		return -ENOMEM;
	path = d_path(&file->f_path, buf, PATH_MAX);
	if (IS_ERR(path)) {
		ret = ckpt_err(ctx, PTR_ERR(path), "no path for %pD", file);
		goto out;
	}
	h.kind = ops->kind;
	h.f_flags = file->f_flags;
	h.pos = file->f_pos;
	ret = checkpoint_file_owner(ctx, file, &h);
	if (!ret)
		ret = ops->checkpoint(ctx, file, &h);
	if (ret)
		goto out;
	ret = ckpt_obj_add(ctx, file, CKPT_HDR_FILE);
	if (ret < 0)
		goto out;
	*objref = ret;
	h.objref = ret;
	h.path_len = strlen(path) + 1;
	ret = ckpt_write_obj_str(ctx, &h, CKPT_HDR_FILE, sizeof(h), path);
	if (!ret)
		ret = checkpoint_file_locks(ctx, file, *objref);
out:
	__putname(buf);
	return ret;
}

/* Descriptors 0-2 on the caller's plumbing: the restarter's are used */
bool ckpt_fd_inherited(struct ckpt_ctx *ctx, struct file *file, unsigned int fd)
{
	return fd <= 2 && (ckpt_is_pipe(file) || ckpt_unix_outside(ctx, file));
}

int checkpoint_files(struct ckpt_ctx *ctx, struct task_struct *t)
{
	unsigned int fd, n = 0;
	int ret;

	ret = checkpoint_ctty(ctx, t);
	for (fd = 0; !ret; fd++) {
		struct ckpt_hdr_fd h = {};
		struct file *file;

		file = ckpt_task_next_file(t, &fd);
		if (!file)
			break;
		if (++n > CKPT_FDS_MAX) {
			fput(file);
			return ckpt_err(ctx, -EMFILE, "more than %d open files", CKPT_FDS_MAX);
		}

		task_lock(t);
		rcu_read_lock();
		h.cloexec = t->files ? close_on_exec(fd, t->files) : 0;
		rcu_read_unlock();
		task_unlock(t);
		h.fd = fd;

		snprintf(ctx->where, sizeof(ctx->where), "pid %d fd %u", task_pid_vnr(t), fd);
		if (ckpt_fd_inherited(ctx, file, fd)) {
			h.kind = CKPT_FD_INHERIT;
		} else {
			h.kind = CKPT_FD_FILE;
			ret = checkpoint_file_obj(ctx, file, &h.objref);
		}
		ctx->where[0] = 0;
		fput(file);
		if (!ret)
			ret = ckpt_write_obj(ctx, &h, CKPT_HDR_FD, sizeof(h));
	}
	if (!ret)
		ret = checkpoint_posix_locks(ctx, t);
	return ret;
}

int checkpoint_fs(struct ckpt_ctx *ctx, struct task_struct *t)
{
	struct ckpt_hdr_fs h = {};
	struct path pwd;
	char *buf, *path;
	int ret;

	task_lock(t);
	if (!t->fs) {
		task_unlock(t);
		return ckpt_err(ctx, -ESRCH, "task has no fs_struct");
	}
	get_fs_pwd(t->fs, &pwd);
	h.umask = t->fs->umask;
	task_unlock(t);

	buf = __getname();
	if (!buf) {
		path_put(&pwd);
		return -ENOMEM;
	}
	ret = 0;
	if (d_unlinked(pwd.dentry)) {
		struct dentry *parent = dget_parent(pwd.dentry);

		if (d_unlinked(parent))
			ret = ckpt_err(ctx, -EOPNOTSUPP,
				       "the working directory was deleted with its parent");
		dput(parent);
		path = ckpt_deleted_path(&pwd, buf);
		h.cwd_deleted = 1;
		h.cwd_mode = d_inode(pwd.dentry)->i_mode & 07777;
		h.cwd_uid = from_kuid_munged(current_user_ns(), d_inode(pwd.dentry)->i_uid);
		h.cwd_gid = from_kgid_munged(current_user_ns(), d_inode(pwd.dentry)->i_gid);
	} else {
		path = d_path(&pwd, buf, PATH_MAX);
	}
	if (!ret && IS_ERR(path))
		ret = ckpt_err(ctx, PTR_ERR(path), "no path for the working directory");
	if (!ret) {
		h.path_len = strlen(path) + 1;
		ret = ckpt_write_obj_str(ctx, &h, CKPT_HDR_FS, sizeof(h), path);
	}
	__putname(buf);
	path_put(&pwd);
	return ret;
}

int restore_prepare_fs(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_fs *h;
	const char *path;
	int ret;

	h = ckpt_next(ctx, CKPT_HDR_FS, sizeof(*h));
	if (IS_ERR(h))
		return PTR_ERR(h);
	path = ckpt_str(ctx, h, sizeof(*h), h->path_len);
	if (!path)
		return -EINVAL;
	if (path[0] != '/' || h->cwd_deleted > 1 || (h->cwd_mode & ~07777))
		return ckpt_err(ctx, -EINVAL, "bad FS object");
	if (h->cwd_deleted)
		ret = restore_deleted_cwd(ctx, path, h->cwd_mode, h->cwd_uid, h->cwd_gid,
					  &ctx->cwd);
	else
		ret = kern_path(path, LOOKUP_FOLLOW | LOOKUP_DIRECTORY, &ctx->cwd);
	if (ret)
		return ckpt_err(ctx, ret, "working directory %s: lookup failed", path);
	ret = path_permission(&ctx->cwd, MAY_EXEC | MAY_CHDIR);
	if (ret)
		return ckpt_err(ctx, ret, "working directory %s: no permission", path);
	ctx->fs = h;
	return 0;
}

/* Reopen or remake the file a FILE object describes and give it its id */
int restore_file_obj(struct ckpt_ctx *ctx)
{
	const struct ckpt_file_ops *ops;
	struct ckpt_hdr_file *h;
	struct ckpt_objref *o;
	struct file *file;
	const char *path;
	int ret;

	h = ckpt_next(ctx, CKPT_HDR_FILE, sizeof(*h));
	if (IS_ERR(h))
		return PTR_ERR(h);
	path = ckpt_str(ctx, h, sizeof(*h), h->path_len);
	if (!path)
		return -EINVAL;
	ops = ckpt_file_ops_kind(h->kind);
	if (!ops || h->objref <= 0 || h->pos < 0 || (h->f_flags & O_ACCMODE) == O_ACCMODE ||
	    h->owner < 0 || h->owner_type > CKPT_OWNER_PGRP ||
	    (h->owner && !h->owner_type) || h->signum > _NSIG)
		return ckpt_err(ctx, -EINVAL, "bad FILE object for %s", path);
	if (ckpt_obj_file(ctx, h->objref))
		return ckpt_err(ctx, -EINVAL, "file id %d defined twice", h->objref);
	file = ops->restore(ctx, h, path);
	if (IS_ERR(file))
		return PTR_ERR(file);
	if (!(file->f_mode & FMODE_PATH))
		ckpt_set_status_flags(file, h->f_flags);
	ret = h->owner || h->signum ? restore_file_owner(ctx, file, h) : 0;
	if (!ret)
		ret = ckpt_obj_add_file(ctx, h->objref, file);
	if (ret) {
		fput(file);
		return ret;
	}
	o = ckpt_obj_find(ctx, h->objref);
	o->f_flags = h->f_flags;
	return 0;
}

bool ckpt_is_file_part(u32 type)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(ckpt_state_objs); i++)
		if (ckpt_state_objs[i].type == type)
			return true;
	return false;
}

/* Restart: every FILE and object of a file's state from here on */
int restore_file_objs(struct ckpt_ctx *ctx)
{
	for (;;) {
		u32 type = ckpt_peek(ctx);
		unsigned int i;
		int ret;

		for (i = 0; i < ARRAY_SIZE(ckpt_state_objs); i++)
			if (ckpt_state_objs[i].type == type)
				break;
		if (i == ARRAY_SIZE(ckpt_state_objs))
			return 0;
		ret = ckpt_state_objs[i].restore(ctx);
		if (ret)
			return ret;
	}
}

int restore_prepare_files(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_fd *h;
	int last = -1, ret;

	ctx->fds = kcalloc(CKPT_FDS_MAX, sizeof(*ctx->fds), GFP_KERNEL_ACCOUNT);
	if (!ctx->fds)
		return -ENOMEM;

	for (;;) {
		struct ckpt_rfd *r;

		ret = restore_file_objs(ctx);
		if (ret)
			return ret;
		if (ckpt_peek(ctx) == CKPT_HDR_CTTY) {
			ret = restore_prepare_ctty(ctx);
			if (ret)
				return ret;
			continue;
		}
		if (ckpt_peek(ctx) != CKPT_HDR_FD)
			return 0;
		h = ckpt_next(ctx, CKPT_HDR_FD, sizeof(*h));
		if (IS_ERR(h))
			return PTR_ERR(h);
		if (h->h.len != sizeof(*h) || h->fd <= last || h->cloexec > 1 ||
		    h->fd >= rlimit(RLIMIT_NOFILE) || ctx->nr_fds >= CKPT_FDS_MAX)
			return ckpt_err(ctx, -EINVAL, "bad FD object (fd %d)", h->fd);
		r = &ctx->fds[ctx->nr_fds];
		r->fd = h;
		if (h->kind == CKPT_FD_FILE) {
			r->file = ckpt_obj_file(ctx, h->objref);
			if (!r->file)
				return ckpt_err(ctx, -EINVAL, "fd %d: unknown file id %d",
						h->fd, h->objref);
		} else if (h->kind != CKPT_FD_INHERIT || h->fd > 2 || h->objref) {
			return ckpt_err(ctx, -EINVAL, "fd %d: bad kind %u", h->fd, h->kind);
		}
		last = h->fd;
		ctx->nr_fds++;
	}
}

/* O_ASYNC needs the descriptor: SIGIO says which one is ready */
static int restore_fasync(struct ckpt_ctx *ctx, struct ckpt_rfd *r)
{
	struct ckpt_objref *o = ckpt_obj_find(ctx, r->fd->objref);
	struct file *file = r->file;
	int ret;

	if (!o || !(o->f_flags & FASYNC) || (file->f_flags & FASYNC))
		return 0;
	if (!file->f_op->fasync)
		return ckpt_err(ctx, -EINVAL, "fd %d: O_ASYNC on a file without it", r->fd->fd);
	ret = file->f_op->fasync(r->fd->fd, file, 1);
	if (ret < 0)
		return ckpt_err(ctx, ret, "fd %d: cannot set O_ASYNC", r->fd->fd);
	spin_lock(&file->f_lock);
	file->f_flags |= FASYNC;
	spin_unlock(&file->f_lock);
	return 0;
}

/* Make the descriptor table the image's: close the rest, install the saved */
int restore_files(struct ckpt_ctx *ctx)
{
	struct files_struct *files = current->files;
	unsigned int fd, max, i = 0;
	int ret;

	rcu_read_lock();
	max = files_fdtable(files)->max_fds;
	rcu_read_unlock();
	for (fd = 0; fd < max; fd++) {
		while (i < ctx->nr_fds && ctx->fds[i].fd->fd < fd)
			i++;
		if (i < ctx->nr_fds && ctx->fds[i].fd->fd == fd)
			continue;
		close_fd(fd);
	}
	for (i = 0; i < ctx->nr_fds; i++) {
		struct ckpt_rfd *r = &ctx->fds[i];

		if (!r->file)
			continue;
		/* as a file received from elsewhere: the LSMs have their say */
		ret = receive_fd_replace(r->fd->fd, r->file, r->fd->cloexec ? O_CLOEXEC : 0);
		if (ret < 0)
			return ckpt_err(ctx, ret, "cannot install fd %d", r->fd->fd);
		ret = restore_fasync(ctx, r);
		if (ret)
			return ret;
	}
	/* POSIX locks belong to the fd table: taken once it holds the files */
	return restore_posix_locks(ctx);
}

void restore_fs(struct ckpt_ctx *ctx)
{
	set_fs_pwd(current->fs, &ctx->cwd);
	xchg(&current->fs->umask, ctx->fs->umask & 0777);
}
