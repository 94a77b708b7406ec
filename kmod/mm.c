// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: the address space as a whole, and its bookkeeping.
 *
 * The MM object holds what the mm_struct records about the layout (code,
 * data, brk, stack, argument and environment ranges), the saved auxv and
 * where the vDSO is; the mappings themselves are VMA objects (vma.c), their
 * contents PAGES objects (pages.c).  The vDSO is not saved; it is mapped
 * again at its old address with arch_prctl(ARCH_MAP_VDSO_64)'s code.
 *
 * Restart empties the restarting task's address space, maps the saved
 * VMAs, writes the saved pages and sets the mm's bookkeeping.  A child
 * that fork(2) made saves only how it differs from its parent (the VMAs
 * still the parent's, the pages where they differ): restart forks it from
 * its rebuilt parent and changes just that, so the pages the two shared
 * copy-on-write are shared again and the tree's memory does not grow.
 */

#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <asm/prctl.h>
#include <asm/proto.h>
#include <asm/vdso.h>

#include "ckpt.h"

static void checkpoint_mm_obj(struct ckpt_ctx *ctx, struct mm_struct *mm,
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
}

/* The VMAs of @mm, but [vvar] and [vdso]; @h gets the bookkeeping */
static int ckpt_mm_vmas(struct ckpt_ctx *ctx, struct mm_struct *mm, struct ckpt_hdr_mm *h,
			struct ckpt_vma_desc *parent, unsigned int nr_parent,
			struct ckpt_vma_desc **descs, unsigned int *nr)
{
	unsigned long vdso_end = 0;
	int ret;

	if (mmap_read_lock_killable(mm))
		return -EINTR;
	checkpoint_mm_obj(ctx, mm, h);
	if (h->vdso && mm->context.vdso_image)
		vdso_end = h->vdso + mm->context.vdso_image->size;
	ret = ckpt_collect_vmas(ctx, mm, h->vvar, vdso_end, parent, nr_parent, descs, nr);
	mmap_read_unlock(mm);
	return ret;
}

/*
 * The address space of @t.  If @parent (its parent process's mm, id
 * @parent_id) is not NULL, @t was forked from it: the mappings that are
 * still the parent's are marked, and only the pages where the two differ
 * are saved, so that restart, forking @t from its rebuilt parent, keeps
 * the rest shared copy-on-write.
 */
int checkpoint_mm(struct ckpt_ctx *ctx, struct task_struct *t, struct mm_struct *parent,
		  s32 parent_id)
{
	struct ckpt_vma_desc *descs = NULL, *pdescs = NULL;
	unsigned int nr = 0, pnr = 0;
	struct ckpt_hdr_mm *h, *ph;
	struct mm_struct *mm;
	int ret;

	mm = get_task_mm(t);
	if (!mm)
		return ckpt_err(ctx, -EINVAL, "task has no address space");
	h = kzalloc(sizeof(*h), GFP_KERNEL);
	ph = kzalloc(sizeof(*ph), GFP_KERNEL);
	ret = h && ph ? 0 : -ENOMEM;
	if (!ret && parent)
		ret = ckpt_mm_vmas(ctx, parent, ph, NULL, 0, &pdescs, &pnr);
	if (!ret)
		ret = ckpt_mm_vmas(ctx, mm, h, pdescs, pnr, &descs, &nr);
	if (ret)
		goto out;

	h->nr_vmas = nr;
	h->parent_mm = parent ? parent_id : 0;
	ret = ckpt_write_obj(ctx, h, CKPT_HDR_MM, sizeof(*h));
	if (!ret)
		ret = checkpoint_vmas(ctx, descs, nr);
	if (!ret)
		ret = checkpoint_pages(ctx, t, mm, descs, nr, parent);
out:
	ckpt_free_vmas(descs, nr);
	ckpt_free_vmas(pdescs, pnr);
	kfree(ph);
	kfree(h);
	mmput(mm);
	return ret;
}

static bool ckpt_addr_ok(u64 addr)
{
	return addr <= TASK_SIZE_MAX;
}

int restore_prepare_mm(struct ckpt_ctx *ctx)
{
	const struct vdso_image *image = current->mm->context.vdso_image;
	struct ckpt_hdr_mm *h;
	u64 vdso_lo = 0, vdso_hi = 0;
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
	    !ckpt_addr_ok(h->env_end) || h->parent_mm < 0)
		return ckpt_err(ctx, -EINVAL, "bad MM object");
	if (h->vdso) {
		if (!image || !PAGE_ALIGNED(h->vdso) || !ckpt_addr_ok(h->vdso + image->size) ||
		    h->vvar != h->vdso + image->sym_vvar_start)
			return ckpt_err(ctx, -EINVAL,
					"the vDSO of the image does not fit this kernel");
		vdso_lo = h->vvar;
		vdso_hi = h->vdso + image->size;
	}
	ctx->mm = h;
	ret = restore_prepare_vmas(ctx, vdso_lo, vdso_hi);
	if (!ret)
		ret = restore_prepare_pages(ctx);
	return ret;
}

/* The vDSO where the image has it, unless the fork copy @kept it there */
static int restore_vdso(struct ckpt_ctx *ctx, bool kept)
{
	struct ckpt_hdr_mm *h = ctx->mm;
	struct mm_struct *mm = current->mm;
	int ret;

	if (!h->vdso || kept)
		return 0;
	/* returns the size of the vDSO on success */
	ret = do_arch_prctl_64(current, ARCH_MAP_VDSO_64, h->vvar);
	if (ret < 0)
		return ckpt_err(ctx, ret, "cannot map the vDSO at %llx", h->vvar);
	if ((unsigned long)mm->context.vdso != h->vdso)
		return ckpt_err(ctx, -EINVAL, "the vDSO landed at %lx",
				(unsigned long)mm->context.vdso);
	return 0;
}

/*
 * Rebuild current's address space: in place, or, for a task forked from
 * the rebuilt mm @forked_mm the image's copies from, by keeping what is
 * still the parent's and changing the rest.
 */
int restore_mm(struct ckpt_ctx *ctx, s32 forked_mm)
{
	struct ckpt_hdr_mm *h = ctx->mm;
	struct mm_struct *mm = current->mm;
	bool vdso_kept = false;
	int ret;

	if (h->parent_mm && h->parent_mm != forked_mm)
		return ckpt_err(ctx, -EINVAL,
				"pid %d: its memory is a copy of mm %d's, and it was not forked from it",
				ctx->task->pid, h->parent_mm);
	ret = h->parent_mm ? restore_vmas_forked(ctx, &vdso_kept) : restore_vmas(ctx);
	if (!ret)
		ret = restore_vdso(ctx, vdso_kept);
	if (!ret)
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
