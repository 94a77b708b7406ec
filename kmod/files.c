// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: open files, the file descriptor table, cwd and umask.
 *
 * Files are saved by path and reopened by path at restart, with the
 * restarting task's credentials, so restart can never open something its
 * caller could not.  Supported: regular files and directories (with their
 * position and open flags) and the stateless character devices /dev/null,
 * /dev/zero, /dev/random and /dev/urandom.  A descriptor 0-2 of another type
 * (a terminal, a pipe to the shell) is recorded as "inherit": the restarted
 * task keeps what the restarter has there.  Anything else fails the
 * checkpoint with a message saying which descriptor.
 */

#include <linux/fdtable.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/fs_struct.h>
#include <linux/kdev_t.h>
#include <linux/namei.h>
#include <linux/rcupdate.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>

#include "ckpt.h"

static bool ckpt_chr_ok(dev_t dev)
{
	if (MAJOR(dev) != 1)
		return false;
	switch (MINOR(dev)) {
	case 3:	/* null */
	case 5:	/* zero */
	case 8:	/* random */
	case 9:	/* urandom */
		return true;
	}
	return false;
}

static u32 ckpt_file_kind(struct file *file)
{
	struct inode *inode = file_inode(file);

	if (file->f_mode & FMODE_PATH)
		return 0;
	if (S_ISREG(inode->i_mode))
		return CKPT_FILE_REG;
	if (S_ISDIR(inode->i_mode))
		return CKPT_FILE_DIR;
	if (S_ISCHR(inode->i_mode) && ckpt_chr_ok(inode->i_rdev))
		return CKPT_FILE_CHR;
	if (ckpt_is_pipe(file))
		return CKPT_FILE_PIPE;
	if (S_ISFIFO(inode->i_mode))
		return CKPT_FILE_FIFO;
	return 0;
}

/* Save @file once; *@objref is its id in the image */
int checkpoint_file_obj(struct ckpt_ctx *ctx, struct file *file, s32 *objref)
{
	struct ckpt_hdr_file h = {};
	char *buf, *path;
	int ret;

	*objref = ckpt_obj_lookup(ctx, file);
	if (*objref)
		return 0;

	h.kind = ckpt_file_kind(file);
	if (!h.kind)
		return ckpt_err(ctx, -EOPNOTSUPP, "file of mode %o is not supported",
				file_inode(file)->i_mode);
	/* a pipe has no path to reopen; a deleted or internal file neither */
	if (h.kind != CKPT_FILE_PIPE && d_unlinked(file->f_path.dentry))
		return ckpt_err(ctx, -EOPNOTSUPP, "deleted file %pD is not supported", file);
	if (h.kind != CKPT_FILE_PIPE && (file->f_path.mnt->mnt_flags & MNT_INTERNAL))
		return ckpt_err(ctx, -EOPNOTSUPP, "%pD (memfd, SysV shm or another file without a path) is not supported",
				file);

	buf = __getname();
	if (!buf)
		return -ENOMEM;
	if (h.kind == CKPT_FILE_PIPE) {
		ret = checkpoint_pipe(ctx, file, &h.pipe);
		if (ret)
			goto out;
		snprintf(buf, PATH_MAX, "pipe:[%lu]", file_inode(file)->i_ino);
		path = buf;
	} else {
		path = d_path(&file->f_path, buf, PATH_MAX);
		if (IS_ERR(path)) {
			ret = ckpt_err(ctx, PTR_ERR(path), "no path for %pD", file);
			goto out;
		}
		h.pos = file->f_pos;
		/* a FIFO's bytes in flight live in its pipe, saved once */
		if (h.kind == CKPT_FILE_FIFO) {
			ret = checkpoint_pipe(ctx, file, &h.pipe);
			if (ret)
				goto out;
			h.pos = 0;
		}
	}
	ret = ckpt_obj_add(ctx, file, CKPT_HDR_FILE);
	if (ret < 0)
		goto out;
	*objref = ret;
	h.objref = ret;
	h.f_flags = file->f_flags;
	if (h.kind == CKPT_FILE_CHR)
		h.rdev = new_encode_dev(file_inode(file)->i_rdev);
	h.path_len = strlen(path) + 1;
	ret = ckpt_write_obj_str(ctx, &h, CKPT_HDR_FILE, sizeof(h), path);
out:
	__putname(buf);
	return ret;
}

/* stdio on a pipe or of a kind not saved is the caller's plumbing: the restarter's is used */
bool ckpt_fd_inherited(struct file *file, unsigned int fd)
{
	return fd <= 2 && (!ckpt_file_kind(file) || ckpt_is_pipe(file));
}

int checkpoint_files(struct ckpt_ctx *ctx, struct task_struct *t)
{
	unsigned int fd, n = 0;
	int ret = 0;

	for (fd = 0; !ret; fd++) {
		struct ckpt_hdr_fd h = {};
		struct file *file;

		rcu_read_lock();
		file = task_lookup_next_fdget_rcu(t, &fd);
		rcu_read_unlock();
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

		if (ckpt_fd_inherited(file, fd)) {
			h.kind = CKPT_FD_INHERIT;
		} else if (ckpt_file_kind(file)) {
			h.kind = CKPT_FD_FILE;
			ret = checkpoint_file_obj(ctx, file, &h.objref);
		} else {
			ret = ckpt_err(ctx, -EOPNOTSUPP, "fd %u: %pD (mode %o) is not supported",
				       fd, file, file_inode(file)->i_mode);
		}
		fput(file);
		if (!ret)
			ret = ckpt_write_obj(ctx, &h, CKPT_HDR_FD, sizeof(h));
	}
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
	path = d_path(&pwd, buf, PATH_MAX);
	if (IS_ERR(path)) {
		ret = ckpt_err(ctx, PTR_ERR(path), "no path for the working directory");
	} else if (d_unlinked(pwd.dentry)) {
		ret = ckpt_err(ctx, -EOPNOTSUPP, "the working directory was deleted");
	} else {
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
	if (h->h.len != sizeof(*h) + ALIGN(h->path_len, 8) || path[0] != '/')
		return ckpt_err(ctx, -EINVAL, "bad FS object");
	ret = kern_path(path, LOOKUP_FOLLOW | LOOKUP_DIRECTORY, &ctx->cwd);
	if (ret)
		return ckpt_err(ctx, ret, "working directory %s: lookup failed", path);
	ret = path_permission(&ctx->cwd, MAY_EXEC | MAY_CHDIR);
	if (ret)
		return ckpt_err(ctx, ret, "working directory %s: no permission", path);
	ctx->fs = h;
	return 0;
}

#define CKPT_OPEN_FLAGS (O_ACCMODE | O_APPEND | O_NONBLOCK | O_DSYNC | __O_SYNC | \
			 O_NOATIME | O_DIRECT | O_LARGEFILE | O_DIRECTORY)

/* A pipe end: the end of the (already restored) pipe its access mode says */
static int restore_pipe_end(struct ckpt_ctx *ctx, struct ckpt_hdr_file *h)
{
	unsigned int acc = h->f_flags & O_ACCMODE;
	struct file *end;
	int ret;

	if (acc == O_RDWR)
		return ckpt_err(ctx, -EINVAL, "FILE %d: a pipe end is read or write only", h->objref);
	end = ckpt_obj_pipe_end(ctx, h->pipe, acc == O_WRONLY);
	if (!end)
		return ckpt_err(ctx, -EINVAL, "FILE %d: unknown pipe %d", h->objref, h->pipe);
	spin_lock(&end->f_lock);
	end->f_flags = (end->f_flags & ~O_NONBLOCK) | (h->f_flags & O_NONBLOCK);
	spin_unlock(&end->f_lock);
	get_file(end);
	ret = ckpt_obj_add_file(ctx, h->objref, end);
	if (ret)
		fput(end);
	return ret;
}

/* A FIFO end: reopened by path, once its pipe holds the saved bytes */
static int restore_fifo_end(struct ckpt_ctx *ctx, struct ckpt_hdr_file *h, const char *path)
{
	struct file *known = ckpt_obj_pipe_end(ctx, h->pipe, false);
	struct file *file;
	int ret;

	if (!known)
		return ckpt_err(ctx, -EINVAL, "FILE %d: unknown pipe %d", h->objref, h->pipe);
	if (ckpt_is_pipe(known)) {
		struct file *both = filp_open(path, O_RDWR | O_NONBLOCK, 0);

		if (IS_ERR(both))
			return ckpt_err(ctx, PTR_ERR(both), "cannot reopen %s", path);
		ret = S_ISFIFO(file_inode(both)->i_mode) ? restore_fifo_data(ctx, h->pipe, both) :
			ckpt_err(ctx, -EINVAL, "%s is no longer a FIFO", path);
		fput(both);
		if (ret)
			return ret;
	}
	file = filp_open(path, (h->f_flags & CKPT_OPEN_FLAGS) | O_NONBLOCK, 0);
	if (IS_ERR(file))
		return ckpt_err(ctx, PTR_ERR(file), "cannot reopen %s", path);
	if (!(h->f_flags & O_NONBLOCK)) {
		spin_lock(&file->f_lock);
		file->f_flags &= ~O_NONBLOCK;
		spin_unlock(&file->f_lock);
	}
	ret = ckpt_obj_add_file(ctx, h->objref, file);
	if (ret)
		fput(file);
	return ret;
}

/* Reopen the file a FILE object describes and give it its id */
int restore_file_obj(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_file *h;
	struct inode *inode;
	struct file *file;
	const char *path;
	int ret;

	h = ckpt_next(ctx, CKPT_HDR_FILE, sizeof(*h));
	if (IS_ERR(h))
		return PTR_ERR(h);
	path = ckpt_str(ctx, h, sizeof(*h), h->path_len);
	if (!path)
		return -EINVAL;
	if (h->h.len != sizeof(*h) + ALIGN(h->path_len, 8) ||
	    (path[0] != '/' && h->kind != CKPT_FILE_PIPE) ||
	    h->objref <= 0 || h->pos < 0 || (h->f_flags & O_ACCMODE) == O_ACCMODE ||
	    h->kind < CKPT_FILE_REG || h->kind > CKPT_FILE_FIFO)
		return ckpt_err(ctx, -EINVAL, "bad FILE object for %s", path);
	if (ckpt_obj_file(ctx, h->objref))
		return ckpt_err(ctx, -EINVAL, "file id %d defined twice", h->objref);
	if (h->kind == CKPT_FILE_PIPE)
		return restore_pipe_end(ctx, h);
	if (h->kind == CKPT_FILE_FIFO)
		return restore_fifo_end(ctx, h, path);

	file = filp_open(path, h->f_flags & CKPT_OPEN_FLAGS, 0);
	if (IS_ERR(file))
		return ckpt_err(ctx, PTR_ERR(file), "cannot reopen %s", path);
	inode = file_inode(file);
	ret = -EINVAL;
	if (ckpt_file_kind(file) != h->kind ||
	    (h->kind == CKPT_FILE_CHR && new_encode_dev(inode->i_rdev) != h->rdev)) {
		ckpt_err(ctx, ret, "%s is no longer the kind of file it was", path);
		goto err;
	}
	if (h->kind != CKPT_FILE_CHR && h->pos) {
		loff_t pos = vfs_llseek(file, h->pos, SEEK_SET);

		if (pos != h->pos) {
			ret = pos < 0 ? pos : -EINVAL;
			ckpt_err(ctx, ret, "cannot seek %s to %lld", path, h->pos);
			goto err;
		}
	}
	ret = ckpt_obj_add_file(ctx, h->objref, file);
	if (!ret)
		return 0;
err:
	fput(file);
	return ret;
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

		if (ckpt_peek(ctx) == CKPT_HDR_PIPE || ckpt_peek(ctx) == CKPT_HDR_FILE) {
			ret = ckpt_peek(ctx) == CKPT_HDR_PIPE ? restore_pipe_obj(ctx) :
								restore_file_obj(ctx);
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
		ret = replace_fd(r->fd->fd, r->file, r->fd->cloexec ? O_CLOEXEC : 0);
		if (ret < 0)
			return ckpt_err(ctx, ret, "cannot install fd %d", r->fd->fd);
	}
	return 0;
}

void restore_fs(struct ckpt_ctx *ctx)
{
	set_fs_pwd(current->fs, &ctx->cwd);
	xchg(&current->fs->umask, ctx->fs->umask & 0777);
}
