// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: the address space as a whole, and its bookkeeping.
 *
 * The MM object holds what the mm_struct records about the layout (code,
 * data, brk, stack, argument and environment ranges), the saved auxv and
 * where the vDSO is; the mappings themselves are VMA objects (vma.c), their
 * contents PAGES objects (pages.c).  The vDSO is not saved; it is mapped
 * again at its old address with map_vdso_once() (kernel patch 0006).
 *
 * Restart empties the restarting task's address space, maps the saved
 * VMAs, writes the saved pages and sets the mm's bookkeeping.  The layout
 * is checked as prctl(PR_SET_MM_MAP) checks it (validate_prctl_map_addr():
 * every address in [mmap_min_addr, TASK_SIZE), each range in order, brk
 * and data within RLIMIT_DATA), and the auxv always ends with its AT_NULL
 * pair, as prctl forces it: /proc/PID/auxv and core dumps read it up to
 * that pair.  Refused at checkpoint: sealed mappings (mseal) and memory
 * protection keys, which the engine does not restore.
 * A child that fork(2) made saves only how it differs from its parent
 * (the VMAs still the parent's, the pages where they differ): restart
 * forks it from its rebuilt parent and changes just that, so the pages the
 * two shared copy-on-write are shared again and the tree's memory does not
 * grow.
 */

#include <linux/auxvec.h>
#include <linux/mm.h>
#include <linux/pkeys.h>
#include <linux/resource.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/security.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <asm/vdso.h>

#include "ckpt.h"

/* The words of @auxv up to and including its AT_NULL pair */
static unsigned int ckpt_auxv_words(const unsigned long *auxv, unsigned int max)
{
	unsigned int n;

	for (n = 0; n + 2 <= max; n += 2)
		if (auxv[n] == AT_NULL)
			return n + 2;
	return max;
}

/* The bookkeeping of @mm, whose mmap_lock the caller holds for reading */
static void checkpoint_mm_obj(struct ckpt_ctx *ctx, struct mm_struct *mm,
			      struct ckpt_hdr_mm *h)
{
	const struct vdso_image *image = mm->context.vdso_image;

	BUILD_BUG_ON(ARRAY_SIZE(mm->saved_auxv) > CKPT_AUXV_WORDS);
	/* prctl(PR_SET_MM_MAP) sets them all under arg_lock (and mmap_lock read) */
	spin_lock(&mm->arg_lock);
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
	spin_unlock(&mm->arg_lock);
	h->vdso = (unsigned long)mm->context.vdso;
	if (h->vdso && image)
		h->vvar = h->vdso + image->sym_vvar_start;
	/* lockless, as /proc/PID/auxv reads it: prctl replaces it whole */
	h->nr_auxv = ckpt_auxv_words(mm->saved_auxv, ARRAY_SIZE(mm->saved_auxv));
	memcpy(h->saved_auxv, mm->saved_auxv, h->nr_auxv * sizeof(u64));
}

/* What confines the address space that restart would not give back */
static int checkpoint_mm_refused(struct ckpt_ctx *ctx, struct mm_struct *mm)
{
	struct vm_area_struct *vma;
	struct vma_iterator vmi;

#ifdef CONFIG_ARCH_HAS_PKEYS
	/* pkey 0 is every mm's; pkey_alloc() or an execute-only mapping adds others */
	if (arch_pkeys_enabled() &&
	    (mm_pkey_allocation_map(mm) != 1 || mm->context.execute_only_pkey != -1))
		return ckpt_err(ctx, -EOPNOTSUPP,
				"memory protection keys (pkey_alloc) are not supported");
#endif
	vma_iter_init(&vmi, mm, 0);
	for_each_vma(vmi, vma)
		if (vma->vm_flags & VM_SEALED)
			return ckpt_err(ctx, -EOPNOTSUPP,
					"mapping %lx-%lx is sealed (mseal): not supported",
					vma->vm_start, vma->vm_end);
	return 0;
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
	ckpt_hold_log(ctx);
	checkpoint_mm_obj(ctx, mm, h);
	if (h->vdso && mm->context.vdso_image)
		vdso_end = h->vdso + mm->context.vdso_image->size;
	ret = checkpoint_mm_refused(ctx, mm);
	if (!ret)
		ret = ckpt_collect_vmas(ctx, mm, h->vvar, vdso_end, parent, nr_parent, descs, nr);
	mmap_read_unlock(mm);
	ckpt_release_log(ctx);
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

	/* a chain of images keeps each task's pages of its own */
	if (ctx->flags & (CHECKPOINT_TRACK | CHECKPOINT_INCREMENTAL))
		parent = NULL;
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

/* validate_prctl_map_addr(): what prctl(PR_SET_MM_MAP) accepts as a layout */
static int ckpt_mm_layout_ok(struct ckpt_ctx *ctx, struct ckpt_hdr_mm *h)
{
	const u64 addrs[] = {
		h->start_code, h->end_code, h->start_data, h->end_data,
		h->start_brk, h->brk, h->start_stack, h->arg_start, h->arg_end,
		h->env_start, h->env_end,
	};
	/* the limit the task will have, once its RLIMITS are restored */
	u64 data_limit = ctx->rlimits ? ctx->rlimits->rlim[RLIMIT_DATA].cur : rlimit(RLIMIT_DATA);
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(addrs); i++)
		if (addrs[i] >= TASK_SIZE || addrs[i] < mmap_min_addr)
			return ckpt_err(ctx, -EINVAL,
					"MM object: address %#llx outside the user range",
					addrs[i]);
	if (h->start_code >= h->end_code || h->start_data > h->end_data ||
	    h->start_brk > h->brk || h->arg_start > h->arg_end || h->env_start > h->env_end)
		return ckpt_err(ctx, -EINVAL, "MM object: a range ends before it starts");
	/* check_data_rlimit() */
	if (data_limit < RLIM_INFINITY &&
	    (h->brk - h->start_brk) + (h->end_data - h->start_data) > data_limit)
		return ckpt_err(ctx, -EINVAL, "MM object: brk and data beyond RLIMIT_DATA");
	return 0;
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
	if (h->h.len != sizeof(*h) || h->nr_vmas > CKPT_VMAS_MAX || h->parent_mm < 0)
		return ckpt_err(ctx, -EINVAL, "bad MM object");
	/* as PR_SET_MM_MAP: no more than the kernel's own vector */
	if (h->nr_auxv > ARRAY_SIZE(current->mm->saved_auxv))
		return ckpt_err(ctx, -EINVAL,
				"MM object: an auxv of %u words; this kernel keeps %zu",
				h->nr_auxv, ARRAY_SIZE(current->mm->saved_auxv));
	ret = ckpt_mm_layout_ok(ctx, h);
	if (ret)
		return ret;
	if (h->vdso) {
		if (!image || !PAGE_ALIGNED(h->vdso) || h->vdso >= TASK_SIZE ||
		    h->vdso + image->size > TASK_SIZE ||
		    h->vvar != h->vdso + image->sym_vvar_start)
			return ckpt_err(ctx, -EINVAL,
					"the vDSO of the image does not fit this kernel");
		vdso_lo = h->vvar;
		vdso_hi = h->vdso + image->size;
	} else if (h->vvar) {
		return ckpt_err(ctx, -EINVAL, "MM object: vvar without a vDSO");
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
	/* the restarter's, checked at prepare time; unmapping keeps it */
	const struct vdso_image *image = mm->context.vdso_image;
	int ret;

	if (!h->vdso || kept)
		return 0;
	ret = map_vdso_once(image, h->vvar);
	if (ret)
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
	unsigned long auxv[ARRAY_SIZE(mm->saved_auxv)] = {};
	unsigned int nr_auxv;
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

	/* as prctl_set_mm_map(): the last pair is AT_NULL whatever the image says */
	nr_auxv = min_t(unsigned int, h->nr_auxv, ARRAY_SIZE(auxv) - 2);
	memcpy(auxv, h->saved_auxv, nr_auxv * sizeof(u64));
	mmap_read_lock(mm);
	spin_lock(&mm->arg_lock);
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
	spin_unlock(&mm->arg_lock);
	/* lockless for readers, as in prctl: one copy of a whole vector */
	memcpy(mm->saved_auxv, auxv, sizeof(auxv));
	mmap_read_unlock(mm);
	return 0;
}
