// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: memfds, with their name, contents, seals, mode and owner.
 *
 * A memfd is a shmem file without a path.  Checkpoint saves it once per
 * inode as a MEMFD object, its contents as DATA objects (holes left out).
 * Restart makes a new one the way memfd_create(2) does, with
 * shmem_file_setup() and the same name, writes the contents back, and
 * only then adds the seals, so that F_SEAL_WRITE and friends bind the
 * program, not the restart.  Every FILE of the memfd is an open file of
 * that inode; a shared mapping of it (vma.c) maps the same object, so a
 * write through the mapping is still seen through the descriptor.
 * hugetlbfs memfds are refused.
 */

#include <linux/fcntl.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <linux/mm.h>
#include <linux/mount.h>
#include <linux/shmem_fs.h>
#include <linux/slab.h>

#include "ckpt.h"

#define CKPT_MEMFD_PREFIX	"memfd:"
#define CKPT_MEMFD_SEALS	(F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | \
				 F_SEAL_FUTURE_WRITE | F_SEAL_EXEC)

static bool ckpt_memfd_match(struct file *file)
{
	struct inode *inode = file_inode(file);

	return S_ISREG(inode->i_mode) && !IS_PRIVATE(inode) && !(file->f_mode & FMODE_PATH) &&
	       (file->f_path.mnt->mnt_flags & MNT_INTERNAL) &&
	       !strncmp(file->f_path.dentry->d_name.name, CKPT_MEMFD_PREFIX,
			strlen(CKPT_MEMFD_PREFIX));
}

static int checkpoint_memfd(struct ckpt_ctx *ctx, struct file *file, s32 *objref)
{
	struct inode *inode = file_inode(file);
	struct user_namespace *ns = current_user_ns();
	struct ckpt_hdr_memfd h = {};
	const char *name;
	int ret;

	*objref = ckpt_obj_lookup(ctx, inode);
	if (*objref)
		return 0;
	if (!shmem_mapping(inode->i_mapping))
		return ckpt_err(ctx, -EOPNOTSUPP, "%pD: a hugetlbfs memfd is not supported", file);
	h.size = i_size_read(inode);
	if (h.size > CKPT_GHOST_SIZE_MAX)
		return ckpt_err(ctx, -EFBIG, "%pD of %llu bytes is too large", file, h.size);
	ret = ckpt_obj_add(ctx, inode, CKPT_HDR_MEMFD);
	if (ret < 0)
		return ret;
	*objref = ret;
	h.objref = ret;
	inode_lock_shared(inode);
	h.seals = SHMEM_I(inode)->seals;
	inode_unlock_shared(inode);
	/* restart seals it before it maps it: a writable mapping would be refused */
	if ((h.seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) &&
	    mapping_writably_mapped(inode->i_mapping))
		return ckpt_err(ctx, -EOPNOTSUPP,
				"%pD is sealed against writes but still mapped writable: not supported",
				file);
	h.mode = inode->i_mode & 07777;
	h.uid = from_kuid_munged(ns, inode->i_uid);
	h.gid = from_kgid_munged(ns, inode->i_gid);
	name = file->f_path.dentry->d_name.name + strlen(CKPT_MEMFD_PREFIX);
	h.name_len = strlen(name) + 1;
	ret = ckpt_write_obj_str(ctx, &h, CKPT_HDR_MEMFD, sizeof(h), name);
	if (!ret)
		ret = checkpoint_file_data(ctx, h.objref, file, h.size);
	return ret;
}

static int checkpoint_memfd_file(struct ckpt_ctx *ctx, struct file *file,
				 struct ckpt_hdr_file *h)
{
	return checkpoint_memfd(ctx, file, &h->obj);
}

int restore_memfd_obj(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_memfd *h;
	struct inode *inode;
	struct file *file;
	const char *name;
	char *full;
	int ret;

	h = ckpt_next(ctx, CKPT_HDR_MEMFD, sizeof(*h));
	if (IS_ERR(h))
		return PTR_ERR(h);
	name = ckpt_str(ctx, h, sizeof(*h), h->name_len);
	if (!name)
		return -EINVAL;
	if (h->objref <= 0 || (h->seals & ~CKPT_MEMFD_SEALS) || (h->mode & ~07777) ||
	    h->size > CKPT_GHOST_SIZE_MAX || h->name_len > NAME_MAX - strlen(CKPT_MEMFD_PREFIX) ||
	    strchr(name, '/'))
		return ckpt_err(ctx, -EINVAL, "bad MEMFD object");
	if (ckpt_obj_find_any(ctx, h->objref))
		return ckpt_err(ctx, -EINVAL, "memfd %d defined twice", h->objref);
	full = kasprintf(GFP_KERNEL, CKPT_MEMFD_PREFIX "%s", name);
	if (!full)
		return -ENOMEM;
	file = shmem_file_setup(full, 0, VM_NORESERVE);
	kfree(full);
	if (IS_ERR(file))
		return ckpt_err(ctx, PTR_ERR(file), "cannot create memfd %s", name);
	/* what memfd_create(2) gives its file */
	file->f_mode |= FMODE_LSEEK | FMODE_PREAD | FMODE_PWRITE;
	file->f_flags |= O_LARGEFILE;
	ret = restore_file_data(ctx, h->objref, file, h->size);
	if (!ret)
		ret = ckpt_chown(ctx, &file->f_path, h->uid, h->gid);
	if (ret)
		goto err;
	inode = file_inode(file);
	inode_lock(inode);
	inode->i_mode = (inode->i_mode & S_IFMT) | h->mode;
	/* no mapping exists yet: denying writable ones cannot fail */
	if (h->seals & F_SEAL_WRITE)
		ret = mapping_deny_writable(file->f_mapping);
	if (!ret)
		SHMEM_I(inode)->seals = h->seals;
	inode_unlock(inode);
	if (!ret)
		ret = ckpt_obj_add_file(ctx, h->objref, file);
	if (!ret)
		return 0;
err:
	fput(file);
	return ret;
}

#define CKPT_MEMFD_FLAGS (O_ACCMODE | O_APPEND | O_NONBLOCK | O_LARGEFILE)

/* An open file of the memfd: its own, with its flags and position */
static struct file *restore_memfd_file(struct ckpt_ctx *ctx, struct ckpt_hdr_file *h,
				       const char *path)
{
	struct file *memfd = ckpt_obj_file(ctx, h->obj), *file;
	loff_t pos;

	if (!memfd || !ckpt_memfd_match(memfd))
		return ERR_PTR(ckpt_err(ctx, -EINVAL, "FILE %d: unknown memfd %d", h->objref,
					h->obj));
	file = dentry_open(&memfd->f_path, h->f_flags & CKPT_MEMFD_FLAGS, current_cred());
	if (IS_ERR(file))
		return ERR_PTR(ckpt_err(ctx, PTR_ERR(file), "cannot open %s again", path));
	file->f_mode |= FMODE_LSEEK | FMODE_PREAD | FMODE_PWRITE;
	pos = h->pos ? vfs_llseek(file, h->pos, SEEK_SET) : 0;
	if (pos != h->pos) {
		fput(file);
		return ERR_PTR(ckpt_err(ctx, pos < 0 ? pos : -EINVAL, "cannot seek %s", path));
	}
	return file;
}

const struct ckpt_file_ops ckpt_memfd_ops = {
	.kind = CKPT_FILE_MEMFD,
	.name = "memfd",
	.match = ckpt_memfd_match,
	.checkpoint = checkpoint_memfd_file,
	.restore = restore_memfd_file,
};
