// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: SysV shared memory segments and their attachments.
 *
 * A segment of the tree's own IPC namespace is saved once, as a SHM
 * object (key, id, owner, creator, mode, size) followed by DATA objects
 * (named by the segment's id) with its non-zero pages at their byte
 * offsets, read from the memory kernel patch 0013 hands out.  A segment
 * already removed (SHM_DEST) that no task of the tree still attaches is
 * gone once the others detach, and is not saved.  Each attachment is a
 * VMA of kind SYSVSHM naming the segment by id, split in several where
 * mprotect(2) split it; one that
 * is no longer whole (partly unmapped) is refused by name, as is a
 * segment on hugetlbfs.
 *
 * Restart creates each segment with shmget(2) and its id, writes its
 * pages, locks it (SHM_LOCK) and gives it its owner and mode, in the
 * root, before any task is rebuilt.  Each task then attaches its
 * segments where they were with shmat(2), gives each piece of an
 * attachment its own protection with mprotect(2), and removes a segment
 * that was removed again (IPC_RMID); all of it replayed with the
 * restarter's rights.
 */

#include <linux/file.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/ipc.h>
#include <linux/ipc_namespace.h>
#include <linux/magic.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/nsproxy.h>
#include <linux/pagemap.h>
#include <linux/sched/mm.h>
#include <linux/shm.h>
#include <linux/shmem_fs.h>
#include <linux/slab.h>
#include <linux/syscalls.h>
#include <linux/xarray.h>
#include <uapi/linux/shm.h>

#include "ckpt.h"

/* Whether a task of @tree still attaches the segment whose memory is @inode */
static bool ckpt_shm_attached(struct ckpt_tree *tree, struct inode *inode)
{
	bool found = false;
	u32 i;

	for (i = 0; !found && i < tree->nr; i++) {
		struct mm_struct *mm = tree->zombie[i] ? NULL : get_task_mm(tree->tasks[i]);
		struct vm_area_struct *vma;
		struct vma_iterator vmi;

		if (!mm)
			continue;
		vma_iter_init(&vmi, mm, 0);
		mmap_read_lock(mm);
		for_each_vma(vmi, vma)
			if (vma->vm_file && file_inode(vma->vm_file) == inode)
				found = true;
		mmap_read_unlock(mm);
		mmput(mm);
	}
	return found;
}

/* Keep the segments of @perm[*nr] that checkpoint saves; refuse what it cannot */
int ckpt_shm_keep(struct ckpt_ctx *ctx, struct ckpt_tree *tree, struct ckpt_ipc_perm *perm,
		  u32 *nr)
{
	u32 i, kept = 0;

	for (i = 0; i < *nr; i++) {
		struct file *file = shm_checkpoint_file(ctx->ipc->ns, perm[i].id);
		bool keep;

		if (IS_ERR(file))
			return ckpt_err(ctx, PTR_ERR(file),
					"SysV shm segment %d went away during the checkpoint",
					perm[i].id);
		if (file_inode(file)->i_sb->s_magic == HUGETLBFS_MAGIC) {
			fput(file);
			return ckpt_err(ctx, -EOPNOTSUPP,
					"SysV shm segment %d (key %#x) on hugetlbfs is not supported",
					perm[i].id, perm[i].key);
		}
		keep = !(perm[i].mode & SHM_DEST) || ckpt_shm_attached(tree, file_inode(file));
		fput(file);
		if (keep)
			perm[kept++] = perm[i];
	}
	*nr = kept;
	return 0;
}

/* The non-zero pages of @file, in memory or in swap, as DATA objects of @id */
static int checkpoint_shm_pages(struct ckpt_ctx *ctx, s32 id, struct file *file, u64 size)
{
	struct address_space *mapping = file->f_mapping;
	unsigned long index;
	void *entry;
	int ret = 0;

	xa_for_each(&mapping->i_pages, index, entry) {
		struct page *page;
		void *src;
		u64 pos;

		if ((u64)index << PAGE_SHIFT >= size)
			break;
		if (fatal_signal_pending(current))
			return -EINTR;
		page = shmem_read_mapping_page(mapping, index);
		if (IS_ERR(page))
			return ckpt_err(ctx, PTR_ERR(page), "cannot read SysV shm page %lu", index);
		pos = (u64)index << PAGE_SHIFT;
		src = kmap_local_page(page);
		if (memchr_inv(src, 0, PAGE_SIZE))
			ret = checkpoint_data(ctx, id, src, min_t(u64, PAGE_SIZE, size - pos), pos);
		kunmap_local(src);
		put_page(page);
		if (ret)
			return ret;
		cond_resched();
	}
	return 0;
}

int checkpoint_shm_segments(struct ckpt_ctx *ctx, struct ckpt_ipc_perm *perm, u32 nr)
{
	u32 i;
	int ret = 0;

	for (i = 0; !ret && i < nr; i++) {
		struct file *file = shm_checkpoint_file(ctx->ipc->ns, perm[i].id);
		struct ckpt_hdr_shm h = { .perm = perm[i] };

		if (IS_ERR(file))
			return ckpt_err(ctx, PTR_ERR(file),
					"SysV shm segment %d went away during the checkpoint",
					perm[i].id);
		h.size = i_size_read(file_inode(file));
		ret = ckpt_write_obj(ctx, &h, CKPT_HDR_SHM, sizeof(h));
		if (!ret)
			ret = checkpoint_shm_pages(ctx, perm[i].id, file, h.size);
		fput(file);
	}
	return ret;
}

/*
 * A VMA of a SysV shm file: an attachment of a segment of the tree's own
 * IPC namespace (its inode number is the segment's id, as in
 * /proc/PID/maps), or refused
 */
int ckpt_shm_vma_kind(struct ckpt_ctx *ctx, struct vm_area_struct *vma)
{
	struct inode *inode = file_inode(vma->vm_file);
	struct file *seg;
	bool ours;

	if (!ctx->ipc)
		return ckpt_err(ctx, -EOPNOTSUPP,
				"mapping %lx-%lx: SysV shm segment %lu of the checkpointer's IPC namespace is not supported",
				vma->vm_start, vma->vm_end, inode->i_ino);
	seg = shm_checkpoint_file(ctx->ipc->ns, inode->i_ino);
	ours = !IS_ERR(seg) && file_inode(seg) == inode;
	if (!IS_ERR(seg))
		fput(seg);
	if (!ours)
		return ckpt_err(ctx, -EOPNOTSUPP, "mapping %lx-%lx (%pD) is not supported",
				vma->vm_start, vma->vm_end, vma->vm_file);
	return CKPT_VMA_SYSVSHM;
}

static u64 ckpt_shm_pages(u64 size)
{
	return DIV_ROUND_UP(size, PAGE_SIZE);
}

static int ckpt_shm_partial(struct ckpt_ctx *ctx, struct ckpt_vma_desc *d)
{
	return ckpt_err(ctx, -EOPNOTSUPP,
			"mapping at %lx: SysV shm segment %lu attached but partly unmapped is not supported",
			d->start, file_inode(d->file)->i_ino);
}

/* One shmat(2) maps a whole segment: each attachment must still be whole */
int checkpoint_shm_attachments(struct ckpt_ctx *ctx, struct ckpt_vma_desc *descs,
			       unsigned int nr)
{
	struct ckpt_vma_desc *first = NULL;	/* the attachment whose pieces come next */
	unsigned long end = 0;
	u64 next = 0;				/* the page of it the next piece starts at */
	unsigned int i;

	for (i = 0; i <= nr; i++) {
		struct ckpt_vma_desc *d = i < nr ? &descs[i] : NULL;
		bool shm = d && d->kind == CKPT_VMA_SYSVSHM;

		if (first && shm && d->file == first->file && d->start == end && d->pgoff == next) {
			next += (d->end - d->start) >> PAGE_SHIFT;
			end = d->end;
			continue;
		}
		if (first && next != ckpt_shm_pages(i_size_read(file_inode(first->file))))
			return ckpt_shm_partial(ctx, first);
		first = NULL;
		if (!shm)
			continue;
		if (d->pgoff)
			return ckpt_shm_partial(ctx, d);
		first = d;
		end = d->end;
		next = (d->end - d->start) >> PAGE_SHIFT;
	}
	return 0;
}

/* After IPC_NS: @nr segments, each with the DATA that follow it */
int restore_prepare_shm_segments(struct ckpt_ctx *ctx, u32 nr, u64 shmmax)
{
	u32 i;

	for (i = 0; i < nr; i++) {
		struct ckpt_obj *obj = ctx->cur;
		struct ckpt_hdr_shm *h;
		struct ckpt_hdr_data *d;
		u32 nr_data = 0;
		int ret;

		h = ckpt_next(ctx, CKPT_HDR_SHM, sizeof(*h));
		if (IS_ERR(h))
			return PTR_ERR(h);
		if (h->h.len != sizeof(*h) || !h->size || h->size > shmmax ||
		    h->size > MAX_LFS_FILESIZE)
			return ckpt_err(ctx, -EINVAL, "bad SHM object (id %d)", h->perm.id);
		while ((d = restore_next_data(ctx, h->perm.id, h->size))) {
			if (IS_ERR(d))
				return PTR_ERR(d);
			nr_data++;
		}
		ret = restore_prepare_ipc_obj(ctx, IPC_SHM_IDS, &h->perm, obj, nr_data, h->size);
		if (ret)
			return ret;
	}
	return 0;
}

static long restore_shmget(struct ckpt_ctx *ctx, struct ckpt_ipc_obj *o, int flags)
{
	return ckpt_syscall(__NR_shmget, o->perm->key, o->size, flags);
}

/* The segment's contents, into the memory behind it */
static int restore_shm_pages(struct ckpt_ctx *ctx, struct ckpt_ipc_obj *o)
{
	struct file *file = shm_checkpoint_file(current->nsproxy->ipc_ns, o->perm->id);
	struct ckpt_obj *obj = o->obj;
	int ret = 0;
	u32 i;

	if (IS_ERR(file))
		return ckpt_err(ctx, PTR_ERR(file), "SysV shm %d is gone", o->perm->id);
	for (i = 0; !ret && i < o->nr; i++) {
		struct ckpt_hdr_data *d;
		u64 off, done;

		obj = list_next_entry(obj, list);
		d = (struct ckpt_hdr_data *)obj->h;
		/* checked against the segment's size by restore_next_data() */
		for (off = d->offset, done = 0; done < d->len;) {
			struct page *page = shmem_read_mapping_page(file->f_mapping,
								    off >> PAGE_SHIFT);
			size_t at = offset_in_page(off);
			size_t n = min_t(u64, PAGE_SIZE - at, d->len - done);
			void *dst;

			if (IS_ERR(page)) {
				ret = ckpt_err(ctx, PTR_ERR(page), "cannot fill SysV shm %d",
					       o->perm->id);
				break;
			}
			dst = kmap_local_page(page);
			memcpy(dst + at, (void *)(d + 1) + done, n);
			kunmap_local(dst);
			set_page_dirty(page);
			put_page(page);
			off += n;
			done += n;
		}
		cond_resched();
	}
	fput(file);
	return ret;
}

int restore_shm_segment(struct ckpt_ctx *ctx, struct ckpt_ipc_obj *o, void __user *scratch)
{
	struct ckpt_ipc_perm *perm = o->perm;
	struct shmid64_ds ds = {};
	void __user *uds;
	long ret;

	ret = restore_ipc_create(ctx, IPC_SHM_IDS, perm, restore_shmget, o);
	if (!ret)
		ret = restore_shm_pages(ctx, o);
	if (!ret && (perm->mode & SHM_LOCKED)) {
		ret = ckpt_syscall(__NR_shmctl, perm->id, SHM_LOCK, 0);
		if (ret)
			return ckpt_err(ctx, ret, "cannot lock SysV shm %d", perm->id);
	}
	if (!ret)
		ret = restore_ipc64_perm(ctx, &ds.shm_perm, perm);
	if (ret)
		return ret;
	uds = ckpt_stage(scratch, 0, &ds, sizeof(ds));
	ret = uds ? ckpt_syscall(__NR_shmctl, perm->id, IPC_SET, (unsigned long)uds) : -EFAULT;
	if (ret)
		return ckpt_err(ctx, ret, "cannot give SysV shm %d its owner and mode", perm->id);
	return restore_ipc_creator(ctx, IPC_SHM_IDS, perm);
}

/*
 * After the VMAs: each SYSVSHM VMA is a piece of a whole attachment of a
 * segment of the image, pieces in order, the first at the segment's start
 */
int restore_prepare_shm_vmas(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_vma *first = NULL;
	u64 next = 0, pages = 0, end = 0;
	unsigned int i;

	for (i = 0; i <= ctx->nr_vmas; i++) {
		struct ckpt_hdr_vma *v = i < ctx->nr_vmas ? ctx->vmas[i].v : NULL;
		bool shm = v && v->kind == CKPT_VMA_SYSVSHM;
		struct ckpt_ipc_obj *o;

		if (first && shm && v->objref == first->objref && v->start == end &&
		    v->pgoff == next && next < pages) {
			next += (v->end - v->start) >> PAGE_SHIFT;
			end = v->end;
			if (next > pages)
				break;
			continue;
		}
		if (first && next != pages)
			break;
		first = NULL;
		if (!shm)
			continue;
		o = ckpt_ipc_find(ctx, IPC_SHM_IDS, v->objref);
		if (!o)
			return ckpt_err(ctx, -EINVAL, "VMA %llx: no SysV shm %d in the image",
					v->start, v->objref);
		if (v->pgoff || v->growsdown)
			break;
		first = v;
		pages = ckpt_shm_pages(o->size);
		next = (v->end - v->start) >> PAGE_SHIFT;
		end = v->end;
		if (next > pages)
			break;
	}
	if (i <= ctx->nr_vmas)
		return ckpt_err(ctx, -EINVAL, "VMAs of SysV shm %d are not one whole attachment",
				(first ? first : ctx->vmas[i].v)->objref);
	return 0;
}

/* What shmat(2) gives the attachment whose first piece is @r: its widest protection */
static u32 ckpt_shm_attach_prot(struct ckpt_rvma *r, struct ckpt_rvma *last)
{
	u32 all = r->v->prot;

	/* checked: the pieces after the first go on from it */
	while (++r <= last && r->v->kind == CKPT_VMA_SYSVSHM && r->v->pgoff)
		all |= r->v->prot;
	return PROT_READ | (all & (PROT_WRITE | PROT_EXEC));
}

static int restore_shm_attach(struct ckpt_ctx *ctx, struct ckpt_hdr_vma *v, u32 prot)
{
	struct ckpt_ipc_obj *o = ckpt_ipc_find(ctx, IPC_SHM_IDS, v->objref);
	int flags = (prot & PROT_WRITE ? 0 : SHM_RDONLY) | (prot & PROT_EXEC ? SHM_EXEC : 0);
	long ret;

	ret = ckpt_syscall(__NR_shmat, v->objref, v->start, flags);
	if (IS_ERR_VALUE(ret))
		return ckpt_err(ctx, ret, "cannot attach SysV shm %d at %llx", v->objref, v->start);
	if (ret != v->start)
		return ckpt_err(ctx, -EINVAL, "SysV shm %d attached at %lx, not %llx",
				v->objref, ret, v->start);
	/* it was removed, and is still there for those who have it attached */
	if (o->perm->mode & SHM_DEST) {
		ret = ckpt_syscall(__NR_shmctl, v->objref, IPC_RMID, 0);
		if (ret)
			return ckpt_err(ctx, ret, "cannot remove SysV shm %d", v->objref);
	}
	return 0;
}

/*
 * A piece of an attachment: the first attaches the whole segment, then
 * each piece gets its own protection; @last is the last VMA of the task
 */
int restore_shm_vma(struct ckpt_ctx *ctx, struct ckpt_rvma *r, struct ckpt_rvma *last)
{
	struct ckpt_hdr_vma *v = r->v;
	struct ckpt_rvma *first = r;
	u32 prot;
	long ret;

	/* checked: its first piece comes before it */
	while (first->v->pgoff)
		first--;
	prot = ckpt_shm_attach_prot(first, last);
	if (r == first) {
		ret = restore_shm_attach(ctx, v, prot);
		if (ret)
			return ret;
	}
	if (v->prot == prot)
		return 0;
	ret = ckpt_syscall(__NR_mprotect, v->start, v->end - v->start, v->prot);
	if (ret)
		return ckpt_err(ctx, ret, "cannot protect %llx-%llx", v->start, v->end);
	return 0;
}
