// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: shared anonymous memory.
 *
 * A MAP_SHARED | MAP_ANONYMOUS mapping is backed by an unlinked shmem file
 * that fork(2) keeps: parent and child map the same pages, and a write by
 * one is seen by the other.  The engine saves that memory once, as a
 * SHMEM object (its size, then DATA objects holding what it has, holes
 * left out), the first time a VMA of the tree maps it; every
 * VMA that maps it names it by id.  Restart makes one new shmem object of
 * the same kind (what mmap(2) makes for a shared anonymous mapping), fills
 * it, and maps it into every task that had it, so it is shared again.
 */

#include <linux/file.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/shmem_fs.h>

#include "ckpt.h"

/* Save the memory behind the shared anonymous mapping of @file once; *@objref is its id */
int checkpoint_shmem(struct ckpt_ctx *ctx, struct file *file, s32 *objref)
{
	struct inode *inode = file_inode(file);
	struct ckpt_hdr_shmem h = {};
	int ret;

	*objref = ckpt_obj_lookup(ctx, inode);
	if (*objref)
		return 0;
	ret = ckpt_obj_add(ctx, inode, CKPT_HDR_SHMEM);
	if (ret < 0)
		return ret;
	*objref = ret;
	h.objref = ret;
	h.size = i_size_read(inode);
	ret = ckpt_write_obj(ctx, &h, CKPT_HDR_SHMEM, sizeof(h));
	/* what is in memory or in swap; a hole reads as zeros */
	return ret ?: checkpoint_file_data(ctx, h.objref, file, h.size);
}

/* A SHMEM object and its data: a new shared anonymous memory object, filled */
int restore_shmem_obj(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_shmem *h;
	struct file *file;
	int ret;

	h = ckpt_next(ctx, CKPT_HDR_SHMEM, sizeof(*h));
	if (IS_ERR(h))
		return PTR_ERR(h);
	if (h->h.len != sizeof(*h) || !h->size || !PAGE_ALIGNED(h->size) ||
	    h->size > TASK_SIZE_MAX || h->objref <= 0)
		return ckpt_err(ctx, -EINVAL, "bad SHMEM object");
	if (ckpt_obj_taken(ctx, h->objref))
		return ckpt_err(ctx, -EINVAL, "shared memory id %d defined twice", h->objref);
	/* what shmem_zero_setup() makes for mmap(MAP_SHARED | MAP_ANONYMOUS) */
	file = shmem_kernel_file_setup("dev/zero", h->size, 0);
	if (IS_ERR(file))
		return ckpt_err(ctx, PTR_ERR(file), "cannot create %llu bytes of shared memory",
				h->size);
	ret = ckpt_obj_add_shmem(ctx, h->objref, file);
	if (ret) {
		fput(file);
		return ret;
	}
	return restore_file_data(ctx, h->objref, file, h->size);
}
