// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: things removed while in use, made again and removed again.
 *
 * A regular file unlinked while open (and linked nowhere else) has no
 * path to reopen.  Checkpoint saves it as a GHOST object, keyed by its
 * inode, with its old path, mode, owner, size and contents (DATA
 * objects, holes left out), as CRIU's ghost files do.  Restart creates a
 * file at the old path (or, if something else is there now, next to it),
 * fills it, gives it its owner, and unlinks it again; every FILE of it is
 * an open file of that inode with its own flags and position.
 *
 * A working directory that was removed is made again at its path with its
 * mode, entered, and removed again.
 */

#include <linux/file.h>
#include <linux/fs.h>
#include <linux/fs_struct.h>
#include <linux/mount.h>
#include <linux/namei.h>
#include <linux/sched.h>
#include <linux/slab.h>

#include "ckpt.h"

static const char ckpt_deleted[] = " (deleted)";

static bool ckpt_unlinked_match(struct file *file)
{
	return S_ISREG(file_inode(file)->i_mode) && !(file->f_mode & FMODE_PATH) &&
	       d_unlinked(file->f_path.dentry) &&
	       !(file->f_path.mnt->mnt_flags & MNT_INTERNAL);
}

/* The path a removed dentry had: d_path() less its " (deleted)" */
char *ckpt_deleted_path(const struct path *p, char *buf)
{
	char *path = d_path(p, buf, PATH_MAX);
	size_t len, dlen = strlen(ckpt_deleted);

	if (IS_ERR(path))
		return path;
	len = strlen(path);
	if (len <= dlen || strcmp(path + len - dlen, ckpt_deleted))
		return ERR_PTR(-ENOENT);
	path[len - dlen] = 0;
	return path;
}

/* The GHOST object of @file's inode, written once */
static int checkpoint_ghost(struct ckpt_ctx *ctx, struct file *file, s32 *objref)
{
	struct inode *inode = file_inode(file);
	struct user_namespace *ns = current_user_ns();
	struct ckpt_hdr_ghost h = {};
	struct dentry *parent;
	char *buf, *path;
	int ret;

	*objref = ckpt_obj_lookup(ctx, inode);
	if (*objref)
		return 0;
	if (inode->i_nlink)
		return ckpt_err(ctx, -EOPNOTSUPP,
				"%pD was unlinked but has %u other links: not supported",
				file, inode->i_nlink);
	parent = dget_parent(file->f_path.dentry);
	ret = d_unlinked(parent);
	dput(parent);
	if (ret)
		return ckpt_err(ctx, -EOPNOTSUPP,
				"%pD was unlinked and so was its directory: not supported", file);
	h.size = i_size_read(inode);
	if (h.size > CKPT_GHOST_SIZE_MAX)
		return ckpt_err(ctx, -EFBIG, "unlinked file %pD of %llu bytes is too large",
				file, h.size);
	buf = __getname();
	if (!buf)
		return -ENOMEM;
	path = ckpt_deleted_path(&file->f_path, buf);
	if (IS_ERR(path)) {
		ret = ckpt_err(ctx, PTR_ERR(path), "no path for unlinked file %pD", file);
		goto out;
	}
	ret = ckpt_obj_add(ctx, inode, CKPT_HDR_GHOST);
	if (ret < 0)
		goto out;
	*objref = ret;
	h.objref = ret;
	h.mode = inode->i_mode & 07777;
	h.uid = from_kuid_munged(ns, inode->i_uid);
	h.gid = from_kgid_munged(ns, inode->i_gid);
	h.path_len = strlen(path) + 1;
	ret = ckpt_write_obj_str(ctx, &h, CKPT_HDR_GHOST, sizeof(h), path);
	if (!ret)
		ret = checkpoint_file_data(ctx, h.objref, file, h.size);
out:
	__putname(buf);
	return ret;
}

static int checkpoint_unlinked_file(struct ckpt_ctx *ctx, struct file *file,
				    struct ckpt_hdr_file *h)
{
	return checkpoint_ghost(ctx, file, &h->obj);
}

/*
 * Create a new file or directory at @path with @mode exactly, or next to
 * it if something is there now; *@made is where it was made.
 */
static int ckpt_make_again(struct ckpt_ctx *ctx, const char *path, umode_t mode, bool dir,
			   struct path *made)
{
	char *alt = NULL;
	int ret, umask;

	/* @mode is what it had: the caller's umask is not for it */
	umask = xchg(&current->fs->umask, 0);
	for (;;) {
		const char *name = alt ? alt : path;

		if (dir) {
			struct path parent;
			struct dentry *d = kern_path_create(AT_FDCWD, name, &parent,
							    LOOKUP_DIRECTORY);

			ret = IS_ERR(d) ? PTR_ERR(d) :
			      vfs_mkdir(mnt_idmap(parent.mnt), d_inode(parent.dentry), d, mode);
			if (!IS_ERR(d))
				done_path_create(&parent, d);
			if (!ret)
				ret = kern_path(name, 0, made);
		} else {
			struct file *f = filp_open(name, O_CREAT | O_EXCL | O_RDWR | O_LARGEFILE,
						   mode);

			ret = PTR_ERR_OR_ZERO(f);
			if (!ret) {
				*made = f->f_path;
				path_get(made);
				fput(f);
			}
		}
		if (ret != -EEXIST || alt)
			break;
		alt = kasprintf(GFP_KERNEL, "%s.cr-%d", path, task_pid_vnr(current));
		if (!alt) {
			ret = -ENOMEM;
			break;
		}
		ckpt_msg(ctx, "note: %s is taken, made it again as %s\n", path, alt);
	}
	xchg(&current->fs->umask, umask);
	kfree(alt);
	if (ret)
		ckpt_err(ctx, ret, "cannot make %s again", path);
	return ret;
}

int restore_ghost_obj(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_ghost *h;
	struct path made;
	struct file *file;
	const char *path;
	int ret;

	h = ckpt_next(ctx, CKPT_HDR_GHOST, sizeof(*h));
	if (IS_ERR(h))
		return PTR_ERR(h);
	path = ckpt_str(ctx, h, sizeof(*h), h->path_len);
	if (!path)
		return -EINVAL;
	if (h->objref <= 0 || path[0] != '/' || (h->mode & ~07777) || h->size > CKPT_GHOST_SIZE_MAX)
		return ckpt_err(ctx, -EINVAL, "bad GHOST object for %s", path);
	if (ckpt_obj_find_any(ctx, h->objref))
		return ckpt_err(ctx, -EINVAL, "unlinked file %d defined twice", h->objref);
	ret = ckpt_make_again(ctx, path, S_IFREG | h->mode, false, &made);
	if (ret)
		return ret;
	file = dentry_open(&made, O_RDWR | O_LARGEFILE, current_cred());
	if (IS_ERR(file)) {
		ret = ckpt_err(ctx, PTR_ERR(file), "cannot open %s again", path);
		file = NULL;
	}
	if (!ret)
		ret = restore_file_data(ctx, h->objref, file, h->size);
	if (!ret)
		ret = ckpt_chown(ctx, &made, h->uid, h->gid);
	/* unlinked again whatever happened: it was made for the restart only */
	if (ckpt_unlink(ctx, &made) && !ret)
		ret = -ENOENT;
	path_put(&made);
	if (!ret)
		ret = ckpt_obj_add_file(ctx, h->objref, file);
	if (ret && file)
		fput(file);
	return ret;
}

#define CKPT_GHOST_FLAGS (O_ACCMODE | O_APPEND | O_NONBLOCK | O_DSYNC | __O_SYNC | \
			  O_NOATIME | O_LARGEFILE)

static struct file *restore_unlinked_file(struct ckpt_ctx *ctx, struct ckpt_hdr_file *h,
					  const char *path)
{
	struct file *ghost = ckpt_obj_file(ctx, h->obj), *file;
	loff_t pos;

	if (!ghost || !S_ISREG(file_inode(ghost)->i_mode))
		return ERR_PTR(ckpt_err(ctx, -EINVAL, "FILE %d: unknown unlinked file %d",
					h->objref, h->obj));
	file = dentry_open(&ghost->f_path, h->f_flags & CKPT_GHOST_FLAGS, current_cred());
	if (IS_ERR(file))
		return ERR_PTR(ckpt_err(ctx, PTR_ERR(file), "cannot open %s again", path));
	pos = h->pos ? vfs_llseek(file, h->pos, SEEK_SET) : 0;
	if (pos != h->pos) {
		fput(file);
		return ERR_PTR(ckpt_err(ctx, pos < 0 ? pos : -EINVAL, "cannot seek %s", path));
	}
	return file;
}

const struct ckpt_file_ops ckpt_unlinked_ops = {
	.kind = CKPT_FILE_GHOST,
	.name = "unlinked file",
	.match = ckpt_unlinked_match,
	.checkpoint = checkpoint_unlinked_file,
	.restore = restore_unlinked_file,
};

/* The working directory @path was removed: make it again, enter it, remove it */
int restore_deleted_cwd(struct ckpt_ctx *ctx, const char *path, u32 mode, u32 uid, u32 gid,
			struct path *cwd)
{
	int ret = ckpt_make_again(ctx, path, S_IFDIR | mode, true, cwd);

	if (ret)
		return ret;
	ret = ckpt_chown(ctx, cwd, uid, gid);
	if (!ret)
		ret = ckpt_unlink(ctx, cwd);
	if (ret) {
		path_put(cwd);
		memset(cwd, 0, sizeof(*cwd));
	}
	return ret;
}
