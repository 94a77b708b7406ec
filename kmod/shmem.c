// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: shared anonymous memory.
 *
 * A MAP_SHARED | MAP_ANONYMOUS mapping is backed by an unlinked shmem file
 * that fork(2) keeps: parent and child map the same pages, and a write by
 * one is seen by the other.  The engine saves that memory once, as a
 * SHMEM object (its size, then PAGES objects holding its non-zero pages at
 * byte offsets in it), the first time a VMA of the tree maps it; every
 * VMA that maps it names it by id.  Restart makes one new shmem object of
 * the same kind (what mmap(2) makes for a shared anonymous mapping), fills
 * it, and maps it into every task that had it, so it is shared again.
 */

#include <linux/file.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/shmem_fs.h>
#include <linux/xarray.h>

#include "ckpt.h"

/* Save the memory behind the shared anonymous mapping of @file once; *@objref is its id */
int checkpoint_shmem(struct ckpt_ctx *ctx, struct file *file, s32 *objref)
{
	struct inode *inode = file_inode(file);
	struct address_space *mapping = file->f_mapping;
	struct ckpt_hdr_shmem h = {};
	struct ckpt_pagebuf *pb;
	unsigned long index = 0;
	void *entry;
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
	if (ret)
		return ret;
	pb = ckpt_pagebuf_new();
	if (!pb)
		return -ENOMEM;
	/* what is in memory or in swap; a hole reads as zeros */
	xa_for_each(&mapping->i_pages, index, entry) {
		struct page *page;

		if ((u64)index << PAGE_SHIFT >= h.size)
			break;
		if (ckpt_should_stop(ctx)) {
			ret = -EINTR;
			break;
		}
		page = shmem_read_mapping_page(mapping, index);
		if (IS_ERR(page)) {
			ret = ckpt_err(ctx, PTR_ERR(page), "cannot read shared memory page %lu",
				       index);
			break;
		}
		ret = ckpt_pagebuf_add(ctx, pb, (u64)index << PAGE_SHIFT, page, true);
		put_page(page);
		if (ret)
			break;
		cond_resched();
	}
	if (!ret)
		ret = ckpt_pages_flush(ctx, pb);
	ckpt_pagebuf_free(pb);
	return ret;
}

static int restore_shmem_pages(struct ckpt_ctx *ctx, struct file *file, u64 size)
{
	struct address_space *mapping = file->f_mapping;

	while (ckpt_peek(ctx) == CKPT_HDR_PAGES) {
		struct ckpt_hdr_pages *p;
		u64 *off;
		void *data;
		u32 i;

		p = restore_next_pages(ctx);
		if (IS_ERR(p))
			return PTR_ERR(p);
		off = (u64 *)(p + 1);
		data = off + p->nr;
		for (i = 0; i < p->nr; i++) {
			struct page *page;
			void *dst;

			if (!PAGE_ALIGNED(off[i]) || off[i] >= size)
				return ckpt_err(ctx, -EINVAL,
						"shared memory page at %llx is beyond its size",
						off[i]);
			page = shmem_read_mapping_page(mapping, off[i] >> PAGE_SHIFT);
			if (IS_ERR(page))
				return ckpt_err(ctx, PTR_ERR(page), "cannot fill shared memory");
			dst = kmap_local_page(page);
			memcpy(dst, data + i * PAGE_SIZE, PAGE_SIZE);
			kunmap_local(dst);
			set_page_dirty(page);
			put_page(page);
		}
		ckpt_progress(ctx);
		cond_resched();
	}
	return 0;
}

/* A SHMEM object and its pages: a new shared anonymous memory object, filled */
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
	return restore_shmem_pages(ctx, file, h->size);
}
