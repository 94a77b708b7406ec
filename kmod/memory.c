// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: the address space.
 *
 * Every VMA is saved with its range, protection, kind and (for file
 * mappings) the file it maps, then the pages that hold state the file
 * does not: the anonymous pages of private mappings (heap, stack, malloc
 * arenas, the written-to parts of a library's data) and every page of
 * shared anonymous memory.  Shared file mappings carry no pages: their
 * contents are in the file.  All-zero anonymous pages are skipped, since a
 * fresh mapping reads as zeros.  The vDSO is not saved; it is mapped again
 * at its old address with arch_prctl(ARCH_MAP_VDSO_64)'s code.
 *
 * Restart unmaps everything the restarting task had, maps each VMA at its
 * address with vm_mmap() (so the usual permission and accounting checks
 * apply, with the caller's credentials), writes the saved pages and sets
 * the mm's bookkeeping (brk, argument and environment ranges, auxv).
 */

#include <linux/file.h>
#include <linux/highmem.h>
#include <linux/magic.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/vmalloc.h>
#include <asm/prctl.h>
#include <asm/proto.h>
#include <asm/vdso.h>

#include "ckpt.h"

struct ckpt_vma_desc {
	unsigned long start, end, pgoff, flags;
	u32 kind;
	bool anon;		/* has anonymous pages (anon_vma) */
	struct file *file;	/* referenced */
};

struct ckpt_pagebuf {
	unsigned int nr;
	u64 addr[CKPT_PAGES_PER_OBJ];
	void *data;		/* CKPT_PAGES_PER_OBJ pages */
	u64 total;
};

static u32 ckpt_vma_prot(unsigned long flags)
{
	return (flags & VM_READ ? PROT_READ : 0) |
	       (flags & VM_WRITE ? PROT_WRITE : 0) |
	       (flags & VM_EXEC ? PROT_EXEC : 0);
}

static int ckpt_vma_kind(struct ckpt_ctx *ctx, struct vm_area_struct *vma)
{
	struct file *file = vma->vm_file;

	if (vma->vm_flags & (VM_IO | VM_PFNMAP | VM_MIXEDMAP))
		goto unsupported;
	if (!file)
		return vma->vm_ops ? -EOPNOTSUPP : CKPT_VMA_ANON;
	if (IS_PRIVATE(file_inode(file))) {
		/* SysV shm: its own file wraps the shmem one, and the segment is not ours */
		if (file->f_op != file_inode(file)->i_fop)
			goto unsupported;
		if ((vma->vm_flags & VM_MAYSHARE) &&
		    file_inode(file)->i_sb->s_magic == TMPFS_MAGIC)
			return CKPT_VMA_SHANON;
		goto unsupported;
	}
	if (!S_ISREG(file_inode(file)->i_mode))
		goto unsupported;
	return vma->vm_flags & VM_MAYSHARE ? CKPT_VMA_SHFILE : CKPT_VMA_FILE;
unsupported:
	return -EOPNOTSUPP;
}

static int ckpt_pages_flush(struct ckpt_ctx *ctx, struct ckpt_pagebuf *pb)
{
	struct ckpt_hdr_pages h = { .nr = pb->nr };
	int ret;

	if (!pb->nr)
		return 0;
	ret = ckpt_write_hdr(ctx, CKPT_HDR_PAGES, sizeof(h) - sizeof(h.h) +
			     pb->nr * (sizeof(u64) + PAGE_SIZE));
	if (!ret)
		ret = ckpt_write(ctx, &h.nr, sizeof(h) - sizeof(h.h));
	if (!ret)
		ret = ckpt_write(ctx, pb->addr, pb->nr * sizeof(u64));
	if (!ret)
		ret = ckpt_write(ctx, pb->data, pb->nr * PAGE_SIZE);
	pb->total += pb->nr;
	pb->nr = 0;
	return ret;
}

static int checkpoint_vma_pages(struct ckpt_ctx *ctx, struct mm_struct *mm,
				struct ckpt_vma_desc *d, struct ckpt_pagebuf *pb)
{
	unsigned long addr;
	int ret;

	if (d->kind == CKPT_VMA_SHFILE)
		return 0;
	if ((d->kind == CKPT_VMA_ANON || d->kind == CKPT_VMA_FILE) && !d->anon)
		return 0;

	for (addr = d->start; addr < d->end; addr += PAGE_SIZE) {
		void *dst = pb->data + pb->nr * PAGE_SIZE;
		struct page *page;
		bool keep;
		void *src;
		long n;

		if (fatal_signal_pending(current))
			return -EINTR;
		if (mmap_read_lock_killable(mm))
			return -EINTR;
		n = get_user_pages_remote(mm, addr, 1, FOLL_FORCE, &page, NULL);
		mmap_read_unlock(mm);
		if (n != 1)
			continue;	/* nothing there */
		if (is_zero_page(page) ||
		    (d->kind != CKPT_VMA_SHANON && !PageAnon(page))) {
			put_page(page);
			continue;	/* the file or a fresh mapping has it */
		}
		src = kmap_local_page(page);
		memcpy(dst, src, PAGE_SIZE);
		kunmap_local(src);
		put_page(page);
		keep = d->kind == CKPT_VMA_FILE || memchr_inv(dst, 0, PAGE_SIZE);
		if (!keep)
			continue;
		pb->addr[pb->nr++] = addr;
		if (pb->nr == CKPT_PAGES_PER_OBJ) {
			ret = ckpt_pages_flush(ctx, pb);
			if (ret)
				return ret;
		}
		cond_resched();
	}
	return 0;
}

static int checkpoint_mm_obj(struct ckpt_ctx *ctx, struct mm_struct *mm,
			     struct ckpt_hdr_mm *h)
{
	const struct vdso_image *image = mm->context.vdso_image;
	unsigned int nr_auxv = min_t(unsigned int, CKPT_AUXV_WORDS,
				     ARRAY_SIZE(mm->saved_auxv));

	h->start_code = mm->start_code;
	h->end_code = mm->end_code;
	h->start_data = mm->start_data;
	h->end_data = mm->end_data;
	h->start_brk = mm->start_brk;
	h->brk = mm->brk;
	h->start_stack = mm->start_stack;
	h->arg_start = mm->arg_start;
	h->arg_end = mm->arg_end;
	h->env_start = mm->env_start;
	h->env_end = mm->env_end;
	h->vdso = (unsigned long)mm->context.vdso;
	if (h->vdso && image)
		h->vvar = h->vdso + image->sym_vvar_start;
	h->nr_auxv = nr_auxv;
	memcpy(h->saved_auxv, mm->saved_auxv, nr_auxv * sizeof(u64));
	return 0;
}

int checkpoint_mm(struct ckpt_ctx *ctx, struct task_struct *t)
{
	struct ckpt_pagebuf *pb = NULL;
	struct ckpt_vma_desc *descs;
	struct vm_area_struct *vma;
	struct ckpt_hdr_mm *h;
	unsigned long vdso_end = 0;
	struct mm_struct *mm;
	unsigned int nr = 0, i, max;
	int ret = 0;

	mm = get_task_mm(t);
	if (!mm)
		return ckpt_err(ctx, -EINVAL, "task has no address space");
	h = kzalloc(sizeof(*h), GFP_KERNEL);
	if (!h) {
		mmput(mm);
		return -ENOMEM;
	}
	if (mmap_read_lock_killable(mm)) {
		kfree(h);
		mmput(mm);
		return -EINTR;
	}
	max = mm->map_count;
	descs = kvcalloc(max ? max : 1, sizeof(*descs), GFP_KERNEL);
	if (!descs) {
		ret = -ENOMEM;
		goto unlock;
	}
	checkpoint_mm_obj(ctx, mm, h);
	if (h->vdso && mm->context.vdso_image)
		vdso_end = h->vdso + mm->context.vdso_image->size;
	{
		VMA_ITERATOR(vmi, mm, 0);

		for_each_vma(vmi, vma) {
			struct ckpt_vma_desc *d;
			int kind;

			if (vdso_end && vma->vm_start >= h->vvar &&
			    vma->vm_end <= vdso_end)
				continue;	/* [vvar] and [vdso] */
			kind = ckpt_vma_kind(ctx, vma);
			if (kind < 0) {
				ret = ckpt_err(ctx, kind, "mapping %lx-%lx (%pD) is not supported",
					       vma->vm_start, vma->vm_end, vma->vm_file);
				break;
			}
			if (nr == max) {
				ret = ckpt_err(ctx, -EAGAIN, "address space changed");
				break;
			}
			d = &descs[nr++];
			d->start = vma->vm_start;
			d->end = vma->vm_end;
			d->pgoff = vma->vm_pgoff;
			d->flags = vma->vm_flags;
			d->kind = kind;
			d->anon = !!vma->anon_vma;
			if (kind == CKPT_VMA_FILE || kind == CKPT_VMA_SHFILE)
				d->file = get_file(vma->vm_file);
		}
	}
unlock:
	mmap_read_unlock(mm);
	if (ret)
		goto out;

	h->nr_vmas = nr;
	ret = ckpt_write_obj(ctx, h, CKPT_HDR_MM, sizeof(*h));
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
		if (d->file)
			ret = checkpoint_file_obj(ctx, d->file, &v.objref);
		if (!ret)
			ret = ckpt_write_obj(ctx, &v, CKPT_HDR_VMA, sizeof(v));
	}
	if (!ret)
		ret = checkpoint_cpu(ctx, t);
	if (ret)
		goto out;

	pb = kzalloc(sizeof(*pb), GFP_KERNEL);
	if (pb)
		pb->data = vmalloc(CKPT_PAGES_PER_OBJ * PAGE_SIZE);
	if (!pb || !pb->data) {
		ret = -ENOMEM;
		goto out;
	}
	for (i = 0; !ret && i < nr; i++)
		ret = checkpoint_vma_pages(ctx, mm, &descs[i], pb);
	if (!ret)
		ret = ckpt_pages_flush(ctx, pb);
	if (!ret)
		ckpt_msg(ctx, "pid %d: %u mappings, %llu pages saved\n",
			 task_pid_vnr(t), nr, pb->total);
out:
	if (pb)
		vfree(pb->data);
	kfree(pb);
	for (i = 0; descs && i < nr; i++)
		if (descs[i].file)
			fput(descs[i].file);
	kvfree(descs);
	kfree(h);
	mmput(mm);
	return ret;
}

static bool ckpt_addr_ok(u64 addr)
{
	return addr <= TASK_SIZE_MAX;
}

static struct ckpt_rvma *ckpt_find_vma(struct ckpt_ctx *ctx, u64 addr)
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
	    !ckpt_addr_ok(v->end) || v->start < prev_end ||
	    v->kind < CKPT_VMA_ANON || v->kind > CKPT_VMA_SHFILE ||
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
	} else if (v->objref) {
		return ckpt_err(ctx, -EINVAL, "VMA %llx: anonymous with a file", v->start);
	}
	r->v = v;
	ctx->nr_vmas++;
	return 0;
}

static int restore_prepare_pages(struct ckpt_ctx *ctx)
{
	struct ckpt_obj *first = ctx->cur;

	while (ckpt_peek(ctx) == CKPT_HDR_PAGES) {
		struct ckpt_hdr_pages *p;
		struct ckpt_rvma *r;
		u64 *addr;
		u32 i;

		p = ckpt_next(ctx, CKPT_HDR_PAGES, sizeof(*p));
		if (IS_ERR(p))
			return PTR_ERR(p);
		if (!p->nr || p->nr > CKPT_PAGES_PER_OBJ ||
		    p->h.len != sizeof(*p) + p->nr * (sizeof(u64) + PAGE_SIZE))
			return ckpt_err(ctx, -EINVAL, "bad PAGES object");
		addr = (u64 *)(p + 1);
		for (i = 0; i < p->nr; i++) {
			r = ckpt_find_vma(ctx, addr[i]);
			if (!PAGE_ALIGNED(addr[i]) || !r || r->v->kind == CKPT_VMA_SHFILE)
				return ckpt_err(ctx, -EINVAL, "page at %llx is outside the saved mappings",
						addr[i]);
		}
		ctx->nr_pages += p->nr;
	}
	ctx->pages_first = ctx->nr_pages ? &first->list : NULL;
	return 0;
}

int restore_prepare_mm(struct ckpt_ctx *ctx)
{
	const struct vdso_image *image = current->mm->context.vdso_image;
	struct ckpt_hdr_mm *h;
	u64 prev_end = 0, vdso_lo = 0, vdso_hi = 0;
	int ret;

	h = ckpt_next(ctx, CKPT_HDR_MM, sizeof(*h));
	if (IS_ERR(h))
		return PTR_ERR(h);
	if (h->h.len != sizeof(*h) || h->nr_vmas > CKPT_VMAS_MAX ||
	    h->nr_auxv > min_t(size_t, CKPT_AUXV_WORDS, ARRAY_SIZE(current->mm->saved_auxv)) ||
	    !ckpt_addr_ok(h->start_code) || !ckpt_addr_ok(h->end_code) ||
	    !ckpt_addr_ok(h->start_data) || !ckpt_addr_ok(h->end_data) ||
	    !ckpt_addr_ok(h->start_stack) || h->start_brk > h->brk ||
	    !ckpt_addr_ok(h->brk) || h->arg_start > h->arg_end ||
	    !ckpt_addr_ok(h->arg_end) || h->env_start > h->env_end ||
	    !ckpt_addr_ok(h->env_end))
		return ckpt_err(ctx, -EINVAL, "bad MM object");
	if (h->vdso) {
		if (!image || !PAGE_ALIGNED(h->vdso) || !ckpt_addr_ok(h->vdso + image->size) ||
		    h->vvar != h->vdso + image->sym_vvar_start)
			return ckpt_err(ctx, -EINVAL, "the vDSO of the image does not fit this kernel");
		vdso_lo = h->vvar;
		vdso_hi = h->vdso + image->size;
	}
	ctx->mm = h;
	ctx->vmas = kvcalloc(max_t(u32, h->nr_vmas, 1), sizeof(*ctx->vmas),
			     GFP_KERNEL_ACCOUNT);
	if (!ctx->vmas)
		return -ENOMEM;
	for (;;) {
		u32 type = ckpt_peek(ctx);

		if (type == CKPT_HDR_FILE) {
			ret = restore_file_obj(ctx);
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
	ret = restore_prepare_cpu(ctx);
	if (!ret)
		ret = restore_prepare_pages(ctx);
	return ret;
}

static int restore_vma(struct ckpt_ctx *ctx, struct ckpt_rvma *r)
{
	struct ckpt_hdr_vma *v = r->v;
	unsigned long flags = MAP_FIXED_NOREPLACE, addr;

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
	return 0;
}

static int restore_pages(struct ckpt_ctx *ctx)
{
	struct list_head *pos = ctx->pages_first;

	for (; pos && pos != &ctx->objs; pos = pos->next) {
		struct ckpt_obj *obj = list_entry(pos, struct ckpt_obj, list);
		struct ckpt_hdr_pages *p = (void *)obj->h;
		u64 *addr = (u64 *)(p + 1);
		void *data = addr + p->nr;
		u32 i;

		if (p->h.type != CKPT_HDR_PAGES)
			break;
		for (i = 0; i < p->nr; i++) {
			int n = access_process_vm(current, addr[i], data + i * PAGE_SIZE,
						  PAGE_SIZE, FOLL_FORCE | FOLL_WRITE);

			if (n != PAGE_SIZE)
				return ckpt_err(ctx, -EFAULT, "cannot fill page %llx", addr[i]);
		}
		cond_resched();
	}
	return 0;
}

int restore_mm(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_mm *h = ctx->mm;
	struct mm_struct *mm = current->mm;
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
	if (h->vdso) {
		/* returns the size of the vDSO on success */
		ret = do_arch_prctl_64(current, ARCH_MAP_VDSO_64, h->vvar);
		if (ret < 0)
			return ckpt_err(ctx, ret, "cannot map the vDSO at %llx", h->vvar);
		if ((unsigned long)mm->context.vdso != h->vdso)
			return ckpt_err(ctx, -EINVAL, "the vDSO landed at %lx",
					(unsigned long)mm->context.vdso);
	}
	ret = restore_pages(ctx);
	if (ret)
		return ret;

	mmap_write_lock(mm);
	mm->start_code = h->start_code;
	mm->end_code = h->end_code;
	mm->start_data = h->start_data;
	mm->end_data = h->end_data;
	mm->start_brk = h->start_brk;
	mm->brk = h->brk;
	mm->start_stack = h->start_stack;
	mm->arg_start = h->arg_start;
	mm->arg_end = h->arg_end;
	mm->env_start = h->env_start;
	mm->env_end = h->env_end;
	memset(mm->saved_auxv, 0, sizeof(mm->saved_auxv));
	memcpy(mm->saved_auxv, h->saved_auxv, h->nr_auxv * sizeof(u64));
	mmap_write_unlock(mm);
	return 0;
}
