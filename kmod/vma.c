// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: the mappings (VMAs).
 *
 * Every VMA is saved with its range, protection, kind and (for file
 * mappings) the file it maps, or (for shared anonymous memory) the SHMEM
 * object it maps, each defined once through the object hash.
 * Restart unmaps everything the restarting task had and maps each VMA at
 * its address with vm_mmap(), so the usual permission and accounting
 * checks apply, with the caller's credentials.
 */

#include <linux/file.h>
#include <linux/hugetlb_inline.h>
#include <linux/magic.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/pagemap.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/unistd.h>
#include <asm/vdso.h>

#include "ckpt.h"

u32 ckpt_vma_prot(unsigned long flags)
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
 * Whether @d is a mapping fork(2) copied from the parent's @parent (still
 * the same range, protection, file and offset) and will copy again.
 */
static bool ckpt_vma_from_parent(struct ckpt_vma_desc *d, struct ckpt_vma_desc *parent,
				 unsigned int nr_parent)
{
	/* and the madvise(2) flags, which the fork copy keeps (not mlock(2)'s) */
	const unsigned long same = VM_READ | VM_WRITE | VM_EXEC | VM_MAYSHARE | VM_GROWSDOWN |
				   VM_SEQ_READ | VM_RAND_READ | VM_HUGEPAGE | VM_NOHUGEPAGE |
				   VM_MERGEABLE | VM_DONTDUMP;
	unsigned int lo = 0, hi = nr_parent;

	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;
		struct ckpt_vma_desc *p = &parent[mid];

		if (d->start < p->start) {
			hi = mid;
		} else if (d->start > p->start) {
			lo = mid + 1;
		} else {
			return p->end == d->end && p->kind == d->kind && p->file == d->file &&
			       (p->kind == CKPT_VMA_ANON || p->pgoff == d->pgoff) &&
			       !((p->flags ^ d->flags) & same) &&
			       !((p->flags | d->flags) & (VM_DONTCOPY | VM_WIPEONFORK));
		}
	}
	return false;
}

/*
 * Describe every VMA of @mm but [vvar] and [vdso] (@vvar to @vdso_end),
 * marking those still the same as in @parent (the @nr_parent VMAs of the
 * mm @mm was forked from, if any); the caller holds the mmap lock.
 * *@descs is for ckpt_free_vmas().
 */
int ckpt_collect_vmas(struct ckpt_ctx *ctx, struct mm_struct *mm, u64 vvar, u64 vdso_end,
		      struct ckpt_vma_desc *parent, unsigned int nr_parent,
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
		} else if (vma->vm_file) {
			d->file = get_file(vma->vm_file);
		}
		/* SysV shm is attached again by the segment's restore */
		d->from_parent = !d->image && kind != CKPT_VMA_SYSVSHM &&
				 ckpt_vma_from_parent(d, parent, nr_parent);
	}
	return checkpoint_shm_attachments(ctx, *descs, *nr);
}

void ckpt_free_vmas(struct ckpt_vma_desc *descs, unsigned int nr)
{
	unsigned int i;

	for (i = 0; descs && i < nr; i++) {
		if (descs[i].file)
			fput(descs[i].file);
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
		v.from_parent = d->from_parent;
		if (d->kind == CKPT_VMA_SYSVSHM) {
			v.objref = file_inode(d->file)->i_ino;	/* the segment's id */
		} else if (d->kind == CKPT_VMA_SHANON) {
			ret = checkpoint_shmem(ctx, d->file, &v.objref);
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
	    v->from_parent > !!ctx->mm->parent_mm || ckpt_stub_overlaps(ctx, v->start, v->end) ||
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
	} else if (v->kind == CKPT_VMA_SHANON) {
		r->file = ckpt_obj_shmem(ctx, v->objref);
		if (!r->file)
			return ckpt_err(ctx, -EINVAL, "VMA %llx: bad shared memory id %d",
					v->start, v->objref);
		if (v->pgoff > (i_size_read(file_inode(r->file)) >> PAGE_SHIFT) ||
		    npages > (i_size_read(file_inode(r->file)) >> PAGE_SHIFT) - v->pgoff)
			return ckpt_err(ctx, -EINVAL,
					"VMA %llx: beyond its shared memory", v->start);
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
		} else if (type == CKPT_HDR_SHMEM) {
			ret = restore_shmem_obj(ctx);
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
	if (v->kind == CKPT_VMA_ANON)
		flags |= MAP_ANONYMOUS;
	if (v->growsdown)
		flags |= MAP_GROWSDOWN;
	/* shared anonymous memory: the object the image's SHMEM made, at its offset */
	addr = vm_mmap(r->file, v->start, v->end - v->start, v->prot, flags,
		       r->file ? v->pgoff << PAGE_SHIFT : 0);
	if (IS_ERR_VALUE(addr))
		return ckpt_err(ctx, (long)addr, "cannot map %llx-%llx", v->start, v->end);
	if (addr != v->start)
		return ckpt_err(ctx, -EINVAL, "mapping %llx landed at %lx", v->start, addr);
	return restore_vma_advice(ctx, v);
}

/* Replace the whole address space of current with the saved VMAs; the stub stays */
int restore_vmas(struct ckpt_ctx *ctx)
{
	unsigned int i;
	int ret;

	if (ckpt_stub_mapped(ctx)) {
		ret = vm_munmap(0, ctx->stub);
		if (!ret)
			ret = vm_munmap(ctx->stub + CKPT_STUB_SIZE,
					TASK_SIZE - ctx->stub - CKPT_STUB_SIZE);
	} else {
		ret = vm_munmap(0, TASK_SIZE);
	}
	if (ret)
		return ckpt_err(ctx, ret, "cannot empty the address space");
	for (i = 0; i < ctx->nr_vmas; i++) {
		ret = restore_vma(ctx, &ctx->vmas[i]);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * Whether the fork copy maps @r as the image has it, to keep.  Its VMA may
 * be larger: the parent's rebuilt mappings merge where they can (a RELRO
 * segment with the read-only data next to it, say).
 */
static bool restore_vma_same(struct mm_struct *mm, struct ckpt_rvma *r)
{
	struct ckpt_hdr_vma *v = r->v;
	bool shared = v->kind == CKPT_VMA_SHANON || v->kind == CKPT_VMA_SHFILE;
	struct vm_area_struct *vma = find_vma(mm, v->start);

	if (!vma || vma->vm_start > v->start || vma->vm_end < v->end)
		return false;
	return vma->vm_file == r->file &&
	       (!r->file || linear_page_index(vma, v->start) == v->pgoff) &&
	       (v->kind != CKPT_VMA_ANON || vma_is_anonymous(vma)) &&
	       ckpt_vma_prot(vma->vm_flags) == v->prot &&
	       !!(vma->vm_flags & VM_MAYSHARE) == shared &&
	       !!(vma->vm_flags & VM_GROWSDOWN) == v->growsdown;
}

static int ckpt_range_cmp(const void *a, const void *b)
{
	const struct ckpt_range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/*
 * current is a fork(2) copy of its parent's rebuilt mm: keep the VMAs the
 * image marks as the parent's (and the vDSO, if it is where the image has
 * it: *@vdso_kept), unmap what lies between them but the stub, and map
 * what is missing.
 */
int restore_vmas_forked(struct ckpt_ctx *ctx, bool *vdso_kept)
{
	const struct vdso_image *image = current->mm->context.vdso_image;
	struct mm_struct *mm = current->mm;
	unsigned long vdso = (unsigned long)mm->context.vdso;
	struct ckpt_range *keep;
	unsigned int n = 0, i;
	u64 end = 0;
	int ret = 0;

	keep = kvcalloc(ctx->nr_vmas + 2, sizeof(*keep), GFP_KERNEL);
	if (!keep)
		return -ENOMEM;
	*vdso_kept = vdso && image && vdso == ctx->mm->vdso;
	if (*vdso_kept) {
		keep[n].start = vdso + image->sym_vvar_start;
		keep[n++].end = vdso + image->size;
	}
	if (ctx->stub) {
		keep[n].start = ctx->stub;
		keep[n++].end = ctx->stub + CKPT_STUB_SIZE;
	}
	mmap_read_lock(mm);
	ckpt_hold_log(ctx);
	for (i = 0; i < ctx->nr_vmas; i++) {
		struct ckpt_rvma *r = &ctx->vmas[i];

		if (!r->v->from_parent)
			continue;
		if (!restore_vma_same(mm, r)) {
			ret = ckpt_err(ctx, -EINVAL, "VMA %llx is not in the parent's copy",
				       r->v->start);
			break;
		}
		r->kept = true;
		keep[n].start = r->v->start;
		keep[n++].end = r->v->end;
	}
	mmap_read_unlock(mm);
	ckpt_release_log(ctx);
	sort(keep, n, sizeof(*keep), ckpt_range_cmp, NULL);
	for (i = 0; !ret && i <= n; i++) {
		u64 next = i < n ? keep[i].start : TASK_SIZE;

		if (next > end)
			ret = vm_munmap(end, next - end);
		if (ret)
			ret = ckpt_err(ctx, ret, "cannot unmap what the fork copy has more");
		else if (i < n)
			end = max(end, keep[i].end);
	}
	kvfree(keep);
	for (i = 0; !ret && i < ctx->nr_vmas; i++) {
		struct ckpt_rvma *r = &ctx->vmas[i];

		/* a kept VMA is not locked: fork(2) does not copy mlock(2) */
		ret = r->kept ? restore_vma_advice(ctx, r->v) : restore_vma(ctx, r);
	}
	return ret;
}
