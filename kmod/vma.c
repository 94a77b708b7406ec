// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: the mappings (VMAs).
 *
 * Every VMA is saved with its range, protection, kind and (for file
 * mappings) the file it maps, defined once through the object hash.
 * Restart unmaps everything the restarting task had and maps each VMA at
 * its address with vm_mmap(), so the usual permission and accounting
 * checks apply, with the caller's credentials.
 */

#include <linux/file.h>
#include <linux/hugetlb_inline.h>
#include <linux/magic.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/slab.h>
#include <linux/unistd.h>

#include "ckpt.h"

static u32 ckpt_vma_prot(unsigned long flags)
{
	return (flags & VM_READ ? PROT_READ : 0) |
	       (flags & VM_WRITE ? PROT_WRITE : 0) |
	       (flags & VM_EXEC ? PROT_EXEC : 0);
}

static int ckpt_vma_kind(struct ckpt_ctx *ctx, struct vm_area_struct *vma)
{
	struct file *file = vma->vm_file;

	if ((vma->vm_flags & (VM_IO | VM_PFNMAP | VM_MIXEDMAP)) || is_vm_hugetlb_page(vma))
		goto unsupported;
	if (!file && !vma->vm_ops)
		return CKPT_VMA_ANON;
	if (!file)
		goto unsupported;
	if (IS_PRIVATE(file_inode(file))) {
		/* SysV shm: its own file wraps the shmem one */
		if (file->f_op != file_inode(file)->i_fop)
			return ckpt_shm_vma_kind(ctx, vma);
		if ((vma->vm_flags & VM_MAYSHARE) &&
		    file_inode(file)->i_sb->s_magic == TMPFS_MAGIC)
			return CKPT_VMA_SHANON;
		goto unsupported;
	}
	if (!S_ISREG(file_inode(file)->i_mode))
		goto unsupported;
	return vma->vm_flags & VM_MAYSHARE ? CKPT_VMA_SHFILE : CKPT_VMA_FILE;
unsupported:
	return ckpt_err(ctx, -EOPNOTSUPP, "mapping %lx-%lx (%pD) is not supported",
			vma->vm_start, vma->vm_end, vma->vm_file);
}

/*
 * Describe every VMA of @mm but [vvar] and [vdso] (@vvar to @vdso_end);
 * the caller holds the mmap lock.  *@descs is for ckpt_free_vmas().
 */
int ckpt_collect_vmas(struct ckpt_ctx *ctx, struct mm_struct *mm, u64 vvar, u64 vdso_end,
		      struct ckpt_vma_desc **descs, unsigned int *nr)
{
	unsigned int max = mm->map_count;
	struct vm_area_struct *vma;
	struct vma_iterator vmi;

	vma_iter_init(&vmi, mm, 0);
	*descs = kvcalloc(max ? max : 1, sizeof(**descs), GFP_KERNEL);
	if (!*descs)
		return -ENOMEM;
	for_each_vma(vmi, vma) {
		struct ckpt_vma_desc *d;
		int kind;

		if (vdso_end && vma->vm_start >= vvar && vma->vm_end <= vdso_end)
			continue;	/* [vvar] and [vdso] */
		kind = ckpt_vma_kind(ctx, vma);
		if (kind < 0)
			return kind;
		if (*nr == max)
			return ckpt_err(ctx, -EAGAIN, "address space changed");
		d = &(*descs)[(*nr)++];
		d->start = vma->vm_start;
		d->end = vma->vm_end;
		d->pgoff = vma->vm_pgoff;
		d->flags = vma->vm_flags;
		d->kind = kind;
		d->anon = !!vma->anon_vma;
		if (kind == CKPT_VMA_FILE && ckpt_mapped_image(vma->vm_file)) {
			/* restored by mapping an image: anonymous memory, every page saved */
			d->kind = CKPT_VMA_ANON;
			d->pgoff = 0;
			d->image = true;
		} else if (kind == CKPT_VMA_FILE || kind == CKPT_VMA_SHFILE ||
			   kind == CKPT_VMA_SYSVSHM) {
			d->file = get_file(vma->vm_file);
		} else if (kind == CKPT_VMA_SHANON) {
			d->shmem = get_file(vma->vm_file);
		}
	}
	return checkpoint_shm_attachments(ctx, *descs, *nr);
}

void ckpt_free_vmas(struct ckpt_vma_desc *descs, unsigned int nr)
{
	unsigned int i;

	for (i = 0; descs && i < nr; i++) {
		if (descs[i].file)
			fput(descs[i].file);
		if (descs[i].shmem)
			fput(descs[i].shmem);
	}
	kvfree(descs);
}

int checkpoint_vmas(struct ckpt_ctx *ctx, struct ckpt_vma_desc *descs, unsigned int nr)
{
	unsigned int i;
	int ret = 0;

	for (i = 0; !ret && i < nr; i++) {
		struct ckpt_vma_desc *d = &descs[i];
		struct ckpt_hdr_vma v = {};

		v.start = d->start;
		v.end = d->end;
		v.pgoff = d->pgoff;
		v.vm_flags = d->flags;
		v.kind = d->kind;
		v.prot = ckpt_vma_prot(d->flags);
		v.growsdown = !!(d->flags & VM_GROWSDOWN);
		if (d->kind == CKPT_VMA_SYSVSHM) {
			v.objref = file_inode(d->file)->i_ino;	/* the segment's id */
		} else if (d->file) {
			snprintf(ctx->where, sizeof(ctx->where), "mapping %lx-%lx", d->start,
				 d->end);
			ret = checkpoint_file_obj(ctx, d->file, &v.objref);
			ctx->where[0] = 0;
		}
		if (!ret)
			ret = ckpt_write_obj(ctx, &v, CKPT_HDR_VMA, sizeof(v));
	}
	return ret;
}

struct ckpt_rvma *ckpt_find_vma(struct ckpt_ctx *ctx, u64 addr)
{
	unsigned int lo = 0, hi = ctx->nr_vmas;

	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;
		struct ckpt_hdr_vma *v = ctx->vmas[mid].v;

		if (addr < v->start)
			hi = mid;
		else if (addr >= v->end)
			lo = mid + 1;
		else
			return &ctx->vmas[mid];
	}
	return NULL;
}

static int restore_prepare_vma(struct ckpt_ctx *ctx, u64 prev_end, u64 vdso_lo,
			       u64 vdso_hi)
{
	struct ckpt_rvma *r = &ctx->vmas[ctx->nr_vmas];
	struct ckpt_hdr_vma *v;
	u64 npages;

	v = ckpt_next(ctx, CKPT_HDR_VMA, sizeof(*v));
	if (IS_ERR(v))
		return PTR_ERR(v);
	if (v->h.len != sizeof(*v) || v->start >= v->end ||
	    !PAGE_ALIGNED(v->start) || !PAGE_ALIGNED(v->end) ||
	    v->end > TASK_SIZE_MAX || v->start < prev_end ||
	    v->kind < CKPT_VMA_ANON || v->kind > CKPT_VMA_SYSVSHM ||
	    (v->prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC)) || v->growsdown > 1 ||
	    (vdso_hi && v->start < vdso_hi && v->end > vdso_lo))
		return ckpt_err(ctx, -EINVAL, "bad VMA object %llx-%llx", v->start, v->end);
	npages = (v->end - v->start) >> PAGE_SHIFT;
	if (v->kind == CKPT_VMA_FILE || v->kind == CKPT_VMA_SHFILE) {
		r->file = ckpt_obj_file(ctx, v->objref);
		if (!r->file || !S_ISREG(file_inode(r->file)->i_mode))
			return ckpt_err(ctx, -EINVAL, "VMA %llx: bad file id %d",
					v->start, v->objref);
		if (v->pgoff > (ULONG_MAX >> PAGE_SHIFT) - npages)
			return ckpt_err(ctx, -EINVAL, "VMA %llx: bad offset", v->start);
	} else if (v->objref && v->kind != CKPT_VMA_SYSVSHM) {
		return ckpt_err(ctx, -EINVAL, "VMA %llx: anonymous with a file", v->start);
	}
	r->v = v;
	ctx->nr_vmas++;
	return 0;
}

/* The VMAs (and the files they map) after the MM object; none may overlap the vDSO */
int restore_prepare_vmas(struct ckpt_ctx *ctx, u64 vdso_lo, u64 vdso_hi)
{
	struct ckpt_hdr_mm *h = ctx->mm;
	u64 prev_end = 0;
	int ret;

	ctx->vmas = kvcalloc(max_t(u32, h->nr_vmas, 1), sizeof(*ctx->vmas),
			     GFP_KERNEL_ACCOUNT);
	if (!ctx->vmas)
		return -ENOMEM;
	for (;;) {
		u32 type = ckpt_peek(ctx);

		if (ckpt_is_file_part(type)) {
			ret = restore_file_objs(ctx);
		} else if (type == CKPT_HDR_VMA) {
			if (ctx->nr_vmas == h->nr_vmas)
				return ckpt_err(ctx, -EINVAL, "more VMAs than the MM object says");
			ret = restore_prepare_vma(ctx, prev_end, vdso_lo, vdso_hi);
			if (!ret)
				prev_end = ctx->vmas[ctx->nr_vmas - 1].v->end;
		} else {
			break;
		}
		if (ret)
			return ret;
	}
	if (ctx->nr_vmas != h->nr_vmas)
		return ckpt_err(ctx, -EINVAL, "MM object says %u VMAs, image has %u",
				h->nr_vmas, ctx->nr_vmas);
	return restore_prepare_shm_vmas(ctx);
}

/* What madvise(2) sets on a mapping, replayed on its range at restart */
static const struct {
	unsigned long flag;
	int advice;
} ckpt_vma_advice[] = {
	{ VM_DONTCOPY, MADV_DONTFORK },
	{ VM_DONTDUMP, MADV_DONTDUMP },
	{ VM_WIPEONFORK, MADV_WIPEONFORK },
	{ VM_HUGEPAGE, MADV_HUGEPAGE },
	{ VM_NOHUGEPAGE, MADV_NOHUGEPAGE },
	{ VM_MERGEABLE, MADV_MERGEABLE },
	{ VM_SEQ_READ, MADV_SEQUENTIAL },
	{ VM_RAND_READ, MADV_RANDOM },
};

static int restore_vma_advice(struct ckpt_ctx *ctx, struct ckpt_hdr_vma *v)
{
	unsigned long len = v->end - v->start;
	unsigned int i;
	long ret;

	for (i = 0; i < ARRAY_SIZE(ckpt_vma_advice); i++) {
		/* a flag this kernel lacks is 0 (VM_HUGEPAGE without THP) */
		if (!ckpt_vma_advice[i].flag || !(v->vm_flags & ckpt_vma_advice[i].flag))
			continue;
		ret = ckpt_syscall(__NR_madvise, v->start, len, ckpt_vma_advice[i].advice);
		if (ret)
			return ckpt_err(ctx, ret, "madvise(%d) of %llx-%llx",
					ckpt_vma_advice[i].advice, v->start, v->end);
	}
	if (v->vm_flags & VM_LOCKED) {
		ret = ckpt_syscall(__NR_mlock2, v->start, len,
				   v->vm_flags & VM_LOCKONFAULT ? MLOCK_ONFAULT : 0);
		if (ret)
			return ckpt_err(ctx, ret, "cannot mlock %llx-%llx", v->start, v->end);
	}
	return 0;
}

static int restore_vma(struct ckpt_ctx *ctx, struct ckpt_rvma *r)
{
	struct ckpt_hdr_vma *v = r->v;
	unsigned long flags = MAP_FIXED_NOREPLACE, addr;
	int ret;

	if (v->kind == CKPT_VMA_SYSVSHM) {
		ret = restore_shm_vma(ctx, r, &ctx->vmas[ctx->nr_vmas - 1]);
		return ret ? ret : restore_vma_advice(ctx, v);
	}
	if (v->kind == CKPT_VMA_SHANON || v->kind == CKPT_VMA_SHFILE)
		flags |= MAP_SHARED;
	else
		flags |= MAP_PRIVATE;
	if (v->kind == CKPT_VMA_ANON || v->kind == CKPT_VMA_SHANON)
		flags |= MAP_ANONYMOUS;
	if (v->growsdown)
		flags |= MAP_GROWSDOWN;
	addr = vm_mmap(r->file, v->start, v->end - v->start, v->prot, flags,
		       r->file ? v->pgoff << PAGE_SHIFT : 0);
	if (IS_ERR_VALUE(addr))
		return ckpt_err(ctx, (long)addr, "cannot map %llx-%llx", v->start, v->end);
	if (addr != v->start)
		return ckpt_err(ctx, -EINVAL, "mapping %llx landed at %lx", v->start, addr);
	return restore_vma_advice(ctx, v);
}

/* Replace the whole address space of current with the saved VMAs */
int restore_vmas(struct ckpt_ctx *ctx)
{
	unsigned int i;
	int ret;

	ret = vm_munmap(0, TASK_SIZE);
	if (ret)
		return ckpt_err(ctx, ret, "cannot empty the address space");
	for (i = 0; i < ctx->nr_vmas; i++) {
		ret = restore_vma(ctx, &ctx->vmas[i]);
		if (ret)
			return ret;
	}
	return 0;
}
