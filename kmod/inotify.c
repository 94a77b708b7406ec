// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: inotify files, with their watches (descriptor, mask, path).
 *
 * Checkpoint reads each watch's descriptor and mask from the inotify
 * file's fdinfo and the inode it watches from the group's mark, and names
 * the inode by a path from one of the tree's mounts (its root, working
 * directories and open files' mounts) that still leads to it.  Restart
 * makes a new inotify file with do_inotify_init() and adds each watch with
 * inotify_update_watch() (kernel patch 0012) after the same permission
 * check inotify_add_watch(2) makes, with the idr cursor set so that the
 * watch gets its old descriptor.  Events queued and not read yet are
 * refused: they cannot be made again.
 */

#include <linux/file.h>
#include <linux/fs.h>
#include <linux/fs_struct.h>
#include <linux/fdtable.h>
#include <linux/fsnotify_backend.h>
#include <linux/idr.h>
#include <linux/inotify.h>
#include <linux/namei.h>
#include <linux/slab.h>
#include <linux/sort.h>

#include "ckpt.h"

#define CKPT_INOTIFY_FDINFO	(CKPT_INOTIFY_WATCHES_MAX * 160)

static bool ckpt_inotify_match(struct file *file)
{
	return ckpt_anon_is(file, "inotify");
}

/* Whether @mnt shows @inode at a path that leads back to it; the path in @buf */
static char *ckpt_path_in(struct vfsmount *mnt, struct inode *inode, char *buf)
{
	struct dentry *d;
	struct path p, back;
	char *path = NULL;

	if (mnt->mnt_sb != inode->i_sb)
		return NULL;
	d = d_find_alias(inode);
	if (!d)
		return NULL;
	if (is_subdir(d, mnt->mnt_root)) {
		p.mnt = mnt;
		p.dentry = d;
		path = d_path(&p, buf, PATH_MAX);
		if (IS_ERR(path) || kern_path(path, 0, &back))
			path = NULL;
		else if (d_inode(back.dentry) != inode)
			path = NULL, path_put(&back);
		else
			path_put(&back);
	}
	dput(d);
	return path;
}

/* A path to @inode from the mounts the tree uses, or NULL */
static char *ckpt_inode_path(struct ckpt_ctx *ctx, struct inode *inode, char *buf)
{
	char *path = NULL;
	u32 i;

	for (i = 0; !path && ctx->tree && i < ctx->tree->nr; i++) {
		struct task_struct *t = ctx->tree->tasks[i];
		struct path root = {}, pwd = {};
		unsigned int fd;

		if (ctx->tree->zombie[i])
			continue;
		task_lock(t);
		if (t->fs) {
			get_fs_root(t->fs, &root);
			get_fs_pwd(t->fs, &pwd);
		}
		task_unlock(t);
		if (root.mnt)
			path = ckpt_path_in(root.mnt, inode, buf);
		if (!path && pwd.mnt)
			path = ckpt_path_in(pwd.mnt, inode, buf);
		path_put(&root);
		path_put(&pwd);
		for (fd = 0; !path; fd++) {
			struct file *file;

			file = ckpt_task_next_file(t, &fd);
			if (!file)
				break;
			path = ckpt_path_in(file->f_path.mnt, inode, buf);
			fput(file);
		}
	}
	return path;
}

/* The inode watch @wd of @group is on, referenced, or NULL */
static struct inode *ckpt_watched_inode(struct fsnotify_group *group, int wd)
{
	struct fsnotify_mark_connector *conn;
	struct fsnotify_mark *mark;
	struct inode *inode = NULL;

	fsnotify_group_lock(group);
	spin_lock(&group->inotify_data.idr_lock);
	/* an inotify mark starts with its fsnotify_mark */
	mark = idr_find(&group->inotify_data.idr, wd);
	spin_unlock(&group->inotify_data.idr_lock);
	conn = mark ? READ_ONCE(mark->connector) : NULL;
	if (conn && conn->type == FSNOTIFY_OBJ_TYPE_INODE)
		inode = igrab(conn->obj);
	fsnotify_group_unlock(group);
	return inode;
}

struct ckpt_watch {
	int wd;
	u32 mask;
	unsigned long ino;
};

static int ckpt_watch_cmp(const void *a, const void *b)
{
	return ((const struct ckpt_watch *)a)->wd - ((const struct ckpt_watch *)b)->wd;
}

static int checkpoint_inotify_file(struct ckpt_ctx *ctx, struct file *file,
				   struct ckpt_hdr_file *h)
{
	struct fsnotify_group *group = file->private_data;
	struct ckpt_hdr_inotify in = {};
	struct ckpt_watch *watches;
	char *info, *buf = NULL;
	const char *line;
	u32 i;
	int ret = 0;

	if (READ_ONCE(group->q_len))
		return ckpt_err(ctx, -EOPNOTSUPP, "inotify: %u events not read yet: not supported",
				READ_ONCE(group->q_len));
	info = ckpt_fdinfo(file, CKPT_INOTIFY_FDINFO);
	if (!info)
		return ckpt_err(ctx, -E2BIG, "inotify: more than %d watches",
				CKPT_INOTIFY_WATCHES_MAX);
	watches = kvcalloc(CKPT_INOTIFY_WATCHES_MAX, sizeof(*watches), GFP_KERNEL);
	if (!watches) {
		kvfree(info);
		return -ENOMEM;
	}
	for (line = ckpt_fdinfo_line(info, "inotify wd:"); line && !ret;
	     line = ckpt_fdinfo_line(line + 1, "inotify wd:")) {
		struct ckpt_watch *w = &watches[in.nr_watches];

		if (in.nr_watches == CKPT_INOTIFY_WATCHES_MAX ||
		    sscanf(line, "inotify wd:%x ino:%lx sdev:%*x mask:%x", &w->wd, &w->ino,
			   &w->mask) != 3)
			ret = ckpt_err(ctx, -EIO, "inotify: cannot read its watches");
		else
			in.nr_watches++;
	}
	kvfree(info);
	/* restart adds them in the order of their descriptors */
	sort(watches, in.nr_watches, sizeof(*watches), ckpt_watch_cmp, NULL);
	if (!ret)
		ret = checkpoint_state_obj(ctx, group, &in, CKPT_HDR_INOTIFY, sizeof(in), h);
	if (!ret) {
		buf = __getname();
		if (!buf)
			ret = -ENOMEM;
	}
	for (i = 0; !ret && i < in.nr_watches; i++) {
		struct ckpt_hdr_inotify_watch w = {
			.wd = watches[i].wd,
			.mask = watches[i].mask,
		};
		struct inode *inode;
		char *path;

		inode = ckpt_watched_inode(group, w.wd);
		if (!inode) {
			ret = ckpt_err(ctx, -EAGAIN, "inotify: watch %d changed while saved", w.wd);
			break;
		}
		path = ckpt_inode_path(ctx, inode, buf);
		iput(inode);
		if (!path) {
			ret = ckpt_err(ctx, -EOPNOTSUPP,
				       "inotify: watch %d on inode %lu: no path to it from the tree's mounts",
				       w.wd, watches[i].ino);
			break;
		}
		w.path_len = strlen(path) + 1;
		ret = ckpt_write_obj_str(ctx, &w, CKPT_HDR_INOTIFY_WATCH, sizeof(w), path);
	}
	if (buf)
		__putname(buf);
	kvfree(watches);
	return ret;
}

/* One watch, with its old descriptor */
static int restore_inotify_watch(struct ckpt_ctx *ctx, struct fsnotify_group *group, int last)
{
	struct ckpt_hdr_inotify_watch *w;
	struct path p;
	const char *path;
	int ret;

	w = ckpt_next(ctx, CKPT_HDR_INOTIFY_WATCH, sizeof(*w));
	if (IS_ERR(w))
		return PTR_ERR(w);
	path = ckpt_str(ctx, w, sizeof(*w), w->path_len);
	if (!path)
		return -EINVAL;
	if (w->wd <= last || path[0] != '/' || (w->mask & ~ALL_INOTIFY_BITS) ||
	    (w->mask & IN_MASK_CREATE))
		return ckpt_err(ctx, -EINVAL, "bad INOTIFY_WATCH object");
	ret = kern_path(path, w->mask & IN_DONT_FOLLOW ? 0 : LOOKUP_FOLLOW, &p);
	if (ret)
		return ckpt_err(ctx, ret, "inotify watch %d: %s is gone", w->wd, path);
	/* what inotify_add_watch(2) checks */
	ret = inode_permission(mnt_idmap(p.mnt), d_inode(p.dentry), MAY_READ);
	if (!ret && (w->mask & IN_ONLYDIR) && !d_is_dir(p.dentry))
		ret = -ENOTDIR;
	if (ret) {
		path_put(&p);
		return ckpt_err(ctx, ret, "inotify watch %d: no permission to watch %s", w->wd,
				path);
	}
	spin_lock(&group->inotify_data.idr_lock);
	idr_set_cursor(&group->inotify_data.idr, w->wd);
	spin_unlock(&group->inotify_data.idr_lock);
	ret = inotify_update_watch(group, d_inode(p.dentry), w->mask);
	path_put(&p);
	if (ret < 0)
		return ckpt_err(ctx, ret, "cannot watch %s again", path);
	if (ret != w->wd)
		return ckpt_err(ctx, -EBUSY, "watch %d of %s came back as %d", w->wd, path, ret);
	return w->wd;
}

int restore_inotify_obj(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_inotify *in;
	struct file *file;
	int ret = 0, last = 0;
	u32 i;

	in = ckpt_next(ctx, CKPT_HDR_INOTIFY, sizeof(*in));
	if (IS_ERR(in))
		return PTR_ERR(in);
	if (in->h.len != sizeof(*in) || in->objref <= 0 ||
	    in->nr_watches > CKPT_INOTIFY_WATCHES_MAX)
		return ckpt_err(ctx, -EINVAL, "bad INOTIFY object");
	if (ckpt_obj_find_any(ctx, in->objref))
		return ckpt_err(ctx, -EINVAL, "inotify %d defined twice", in->objref);
	file = ckpt_take_fd(do_inotify_init(IN_CLOEXEC));
	if (IS_ERR(file))
		return ckpt_err(ctx, PTR_ERR(file), "cannot create an inotify file");
	/* watches come in the order of their descriptors, so none takes another's */
	for (i = 0; i < in->nr_watches; i++) {
		ret = restore_inotify_watch(ctx, file->private_data, last);
		if (ret < 0)
			break;
		last = ret;
		ret = 0;
	}
	if (!ret)
		ret = ckpt_obj_add_file(ctx, in->objref, file);
	if (ret)
		fput(file);
	return ret;
}

const struct ckpt_file_ops ckpt_inotify_ops = {
	.kind = CKPT_FILE_INOTIFY,
	.name = "inotify",
	.match = ckpt_inotify_match,
	.checkpoint = checkpoint_inotify_file,
	.restore = restore_state_file,
};
