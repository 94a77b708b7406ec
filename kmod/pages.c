// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: page contents.
 *
 * Saved are the pages that hold state the file does not: the anonymous
 * pages of private mappings (heap, stack, malloc arenas, the written-to
 * parts of a library's data).  Shared anonymous memory has its contents
 * saved once, with its SHMEM object (shmem.c); shared file mappings carry
 * no pages: their contents are in the file; SysV shm attachments neither:
 * a segment's pages are saved once, with it (shm.c).  A child that fork(2)
 * made saves, in the mappings still its parent's, only the pages that are
 * not the parent's very page, and DROP ranges where the parent has a page
 * of its own and the child none: restart forks it from its rebuilt parent,
 * so the pages the two shared copy-on-write stay shared.
 *
 * Checkpoint walks the page tables of the frozen task (nothing is faulted
 * in: empty entries and the zero page are holes), takes a reference on
 * every page to save and writes them from those references, many pages
 * per write, straight from the pages into the image.  Shared anonymous
 * Three flags change the walk:
 *
 * CHECKPOINT_COW write-protects the private pages and marks them shared
 * as fork() does, so the tasks can run again before the pages are
 * written: their next write to such a page copies it, and the reference
 * keeps what was there.  A page pinned for DMA cannot be shared that way
 * and is copied while the tasks are frozen.
 *
 * CHECKPOINT_TRACK clears the soft-dirty bits (and write-protects the
 * pages, so that the next write sets them again): the pages written from
 * now on are the ones a later CHECKPOINT_INCREMENTAL saves.  The others
 * are saved as runs that say "in the parent image" (chain.c).
 *
 * The data of each PAGES object starts page-aligned in the image file.
 * Restart reads it from the file when its task is rebuilt (it is never
 * held whole in memory), straight into the new address space, or maps it
 * copy-on-write from the image (RESTART_MAP).  Memory restored by mapping
 * is a private mapping of the image file; checkpointed again, it is saved
 * as the anonymous memory it was, every page of it.
 */

#include <linux/bvec.h>
#include <linux/file.h>
#include <linux/fsnotify.h>
#include <linux/highmem.h>
#include <linux/hugetlb_inline.h>
#include <linux/ktime.h>
#include <linux/mm.h>
#include <linux/mm_inline.h>
#include <linux/mman.h>
#include <linux/pagemap.h>
#include <linux/rmap.h>
#include <linux/sched/signal.h>
#include <linux/shmem_fs.h>
#include <linux/slab.h>
#include <linux/swapops.h>
#include <linux/uio.h>
#include <asm/tlbflush.h>

#include "ckpt.h"

/*
 * The walk relies on every anonymous page being mapped by a PTE: with
 * transparent huge pages a PMD could map one, which apply_to_existing_page_range()
 * does not handle.
 */
#if IS_ENABLED(CONFIG_TRANSPARENT_HUGEPAGE)
#error "crengine's page walk needs a kernel without CONFIG_TRANSPARENT_HUGEPAGE"
#endif

#define CKPT_WRITE_BATCH	256	/* pages per write to the image */
#define CKPT_COPY_MAX		16	/* pages to copy before the thaw, per walk step */
#define CKPT_MAP_MIN		64	/* pages: shorter runs are copied, not mapped */
#define CKPT_BOUNCE_SIZE	(256 * 1024)

/* The pages of one task to save, taken while it is frozen */
struct ckpt_snap {
	struct list_head list;	/* ctx->snaps: written after the thaw */
	pid_t pid;
	struct ckpt_page_run *runs;
	unsigned int nr_runs, max_runs;
	bool new_run;		/* the next page starts a run (a new VMA) */
	struct page **pages;	/* a reference each: the data of the runs, in order */
	unsigned long nr_pages, max_pages;
};

static struct ckpt_snap *ckpt_snap_alloc(pid_t pid, unsigned long pages)
{
	struct ckpt_snap *s = kzalloc(sizeof(*s), GFP_KERNEL);

	if (!s)
		return NULL;
	s->pid = pid;
	s->max_runs = 64;
	s->max_pages = max(pages, 64UL);
	s->runs = kvmalloc_array(s->max_runs, sizeof(*s->runs), GFP_KERNEL);
	s->pages = kvmalloc_array(s->max_pages, sizeof(*s->pages), GFP_KERNEL);
	if (!s->runs || !s->pages) {
		kvfree(s->runs);
		kvfree(s->pages);
		kfree(s);
		return NULL;
	}
	return s;
}

static void ckpt_snap_free(struct ckpt_snap *s)
{
	unsigned long i;

	if (!s)
		return;
	for (i = 0; i < s->nr_pages; i++)
		if (s->pages[i])
			put_page(s->pages[i]);
	kvfree(s->runs);
	kvfree(s->pages);
	kfree(s);
}

/* Room for at least @pages more pages and one more run */
static int ckpt_snap_grow(struct ckpt_snap *s, unsigned long pages)
{
	if (s->nr_runs == s->max_runs) {
		void *p = kvrealloc(s->runs, 2 * s->max_runs * sizeof(*s->runs), GFP_KERNEL);

		if (!p)
			return -ENOMEM;
		s->runs = p;
		s->max_runs *= 2;
	}
	if (s->max_pages - s->nr_pages < pages) {
		unsigned long max = max(2 * s->max_pages, s->nr_pages + pages);
		void *p = kvrealloc(s->pages, max * sizeof(*s->pages), GFP_KERNEL);

		if (!p)
			return -ENOMEM;
		s->pages = p;
		s->max_pages = max;
	}
	return 0;
}

/* Append the page at @addr to the runs; @page is its data (none for a PARENT run) */
static void ckpt_snap_add(struct ckpt_snap *s, unsigned long addr, u32 flags, struct page *page)
{
	struct ckpt_page_run *r = s->nr_runs ? &s->runs[s->nr_runs - 1] : NULL;

	if (!s->new_run && r && r->flags == flags && r->nr < U32_MAX &&
	    r->addr + ((u64)r->nr << PAGE_SHIFT) == addr) {
		r->nr++;
	} else {
		r = &s->runs[s->nr_runs++];
		r->addr = addr;
		r->nr = 1;
		r->flags = flags;
		s->new_run = false;
	}
	if (!(flags & CKPT_RUN_PARENT))
		s->pages[s->nr_pages++] = page;
}

static bool ckpt_snap_full(struct ckpt_snap *s)
{
	return s->nr_runs == s->max_runs || s->nr_pages == s->max_pages;
}

/* The page tables of one VMA, walked under the mmap lock */
struct ckpt_walk {
	struct vm_area_struct *vma;
	struct ckpt_snap *snap;
	bool cow;		/* write-protect and share what is saved */
	bool track;		/* clear soft-dirty bits */
	bool all_written;	/* not tracked (or a new VMA): every page is saved */
	bool early;		/* before the freeze: the copy list waits for it */
	bool modified;		/* a PTE changed: flush the TLBs */
	unsigned long addr;	/* the first address not yet looked at */
	/* frozen, after an early walk that is not the snapshot: its pages */
	struct ckpt_snap *prev;
	unsigned int prev_run;		/* the first of its runs not behind addr */
	unsigned long prev_page;	/* in prev->pages: that run's first page */
	unsigned long kept;		/* of its pages, taken over */
	struct {
		unsigned long page;	/* in snap->pages */
		unsigned long addr;
	} copy[CKPT_COPY_MAX];	/* pages to look up or copy before the thaw */
	unsigned int nr_copy;
};

static void ckpt_walk_copy_later(struct ckpt_walk *w, unsigned long page, unsigned long addr)
{
	w->copy[w->nr_copy].page = page;
	w->copy[w->nr_copy].addr = addr;
	w->nr_copy++;
}

/* The early walk's reference to the page at @addr, if it took one (the walk goes up) */
static struct page **ckpt_walk_prev(struct ckpt_walk *w, unsigned long addr)
{
	struct ckpt_snap *p = w->prev;

	for (; w->prev_run < p->nr_runs; w->prev_run++) {
		struct ckpt_page_run *r = &p->runs[w->prev_run];

		if (addr < r->addr)
			return NULL;
		if (addr < r->addr + ((u64)r->nr << PAGE_SHIFT))
			return &p->pages[w->prev_page + ((addr - r->addr) >> PAGE_SHIFT)];
		w->prev_page += r->nr;
	}
	return NULL;
}

/*
 * One present or swapped PTE, with its page table lock held: nothing may
 * sleep.  Returns -ENOSPC, having changed nothing, when the snapshot or
 * the copy list is full; the caller makes room and walks on from w->addr.
 */
static int ckpt_walk_pte(pte_t *ptep, unsigned long addr, void *data)
{
	struct ckpt_walk *w = data;
	pte_t pte = ptep_get(ptep);
	struct folio *folio;
	struct page *page;

	w->addr = addr;
	if (ckpt_snap_full(w->snap) || w->nr_copy == CKPT_COPY_MAX)
		return -ENOSPC;
	w->addr = addr + PAGE_SIZE;
	if (!pte_present(pte)) {
		swp_entry_t entry = pte_to_swp_entry(pte);

		if (is_pte_marker(pte) && !is_poisoned_swp_entry(entry))
			return 0;	/* no page (a userfaultfd marker) */
		if (!is_migration_entry(entry)) {
			w->addr = addr;	/* poisoned, or swap this engine cannot read */
			return -EIO;
		}
		/* being migrated: the page is looked up once the move is done */
		if (!w->all_written && !pte_swp_soft_dirty(pte)) {
			ckpt_snap_add(w->snap, addr, CKPT_RUN_PARENT, NULL);
			return 0;
		}
		ckpt_walk_copy_later(w, w->snap->nr_pages, addr);
		ckpt_snap_add(w->snap, addr, 0, NULL);
		return 0;
	}
	if (pte_special(pte))
		return 0;	/* the zero page: a hole */
	page = pte_page(pte);
	folio = page_folio(page);
	if (!folio_test_anon(folio))
		return 0;	/* a file page under a private mapping: the file has it */
	if (!w->all_written && !pte_soft_dirty(pte)) {
		ckpt_snap_add(w->snap, addr, CKPT_RUN_PARENT, NULL);
		return 0;
	}
	if (w->prev && !pte_write(pte) && !PageAnonExclusive(page)) {
		struct page **prev = ckpt_walk_prev(w, addr);

		/* shared and write-protected early, and still: that reference will do */
		if (prev && *prev == page) {
			ckpt_snap_add(w->snap, addr, 0, page);
			*prev = NULL;
			w->kept++;
			return 0;
		}
	}
	folio_get(folio);
	ckpt_snap_add(w->snap, addr, 0, page);
	if (w->cow || w->track) {
		pte_t old = ptep_modify_prot_start(w->vma, addr, ptep);
		pte_t new = pte_wrprotect(old);

		if (w->track)
			new = pte_clear_soft_dirty(new);
		/* as fork's copy_present_pte(): a pinned page cannot become shared */
		if (w->cow && PageAnonExclusive(page) &&
		    folio_try_share_anon_rmap_pte(folio, page)) {
			new = old;
			ckpt_walk_copy_later(w, w->snap->nr_pages - 1, addr);
		}
		ptep_modify_prot_commit(w->vma, addr, ptep, old, new);
		w->modified = true;
	}
	return 0;
}

/* The pages of the copy list: looked up (migrating ones), and copied for COW */
static int ckpt_walk_copy(struct ckpt_ctx *ctx, struct mm_struct *mm, struct ckpt_walk *w)
{
	struct ckpt_snap *s = w->snap;
	unsigned int i;

	for (i = 0; i < w->nr_copy; i++) {
		struct page **slot = &s->pages[w->copy[i].page];
		unsigned long addr = w->copy[i].addr;
		struct page *copy;

		if (!*slot) {
			if (get_user_pages_remote(mm, addr, 1, FOLL_FORCE, slot, NULL) != 1) {
				*slot = NULL;
				return ckpt_err(ctx, -EIO, "cannot read the page at %lx", addr);
			}
		}
		if (!w->cow)
			continue;
		copy = alloc_page(GFP_KERNEL_ACCOUNT);
		if (!copy)
			return -ENOMEM;
		copy_highpage(copy, *slot);
		put_page(*slot);
		*slot = copy;
	}
	w->nr_copy = 0;
	return 0;
}

/*
 * Early (w->early), -EAGAIN where the walk before the freeze gives up:
 * a page it cannot read, more pages to copy than the copy list holds.
 */
static int ckpt_walk_vma(struct ckpt_ctx *ctx, struct mm_struct *mm, struct ckpt_walk *w)
{
	unsigned long end = w->vma->vm_end;
	int ret;

	w->addr = w->vma->vm_start;
	w->snap->new_run = true;
	while (w->addr < end) {
		if (fatal_signal_pending(current))
			return -EINTR;
		ret = apply_to_existing_page_range(mm, w->addr, end - w->addr, ckpt_walk_pte, w);
		if (ret == -EIO && w->early)
			return -EAGAIN;
		if (ret == -EIO)
			return ckpt_err(ctx, -EIO,
					"cannot read the page at %lx: it is poisoned or swapped out",
					w->addr);
		if (ret && ret != -ENOSPC)
			return ret;
		if (!ret)
			w->addr = end;
		if (w->early && w->nr_copy == CKPT_COPY_MAX)
			return -EAGAIN;
		ret = w->early ? 0 : ckpt_walk_copy(ctx, mm, w);
		if (!ret)
			ret = ckpt_snap_grow(w->snap, PTRS_PER_PTE);
		if (ret)
			return ret;
		cond_resched();
	}
	return 0;
}

/* Memory restart mapped from an image: every page, as the task sees it */
static int ckpt_image_pages(struct ckpt_ctx *ctx, struct mm_struct *mm,
			    struct ckpt_vma_desc *d, struct ckpt_snap *s)
{
	unsigned long addr = d->start;

	s->new_run = true;
	while (addr < d->end) {
		unsigned long n = min_t(unsigned long, CKPT_WRITE_BATCH,
					(d->end - addr) >> PAGE_SHIFT);
		struct page **pages;
		long got, i;
		int ret = ckpt_snap_grow(s, n);

		if (ret)
			return ret;
		pages = s->pages + s->nr_pages;
		got = get_user_pages_remote(mm, addr, n, FOLL_FORCE, pages, NULL);
		if (got <= 0)
			return ckpt_err(ctx, got ? got : -EIO, "cannot read the page at %lx", addr);
		for (i = 0; i < got; i++) {
			struct page *page = pages[i];

			if (ctx->flags & CHECKPOINT_COW) {
				/* copied now: its anonymous copies are not write-protected */
				struct page *copy = alloc_page(GFP_KERNEL_ACCOUNT);

				if (!copy) {
					for (; i < got; i++)
						put_page(pages[i]);
					return -ENOMEM;
				}
				copy_highpage(copy, page);
				put_page(page);
				page = copy;
			}
			ckpt_snap_add(s, addr + (i << PAGE_SHIFT), 0, page);
		}
		addr += got << PAGE_SHIFT;
		if (fatal_signal_pending(current))
			return -EINTR;
		cond_resched();
	}
	return 0;
}

static void ckpt_flush_tlb_cpu(void *unused)
{
	__flush_tlb_all();
}

/*
 * CHECKPOINT_COW takes the root's pages before the freeze, while it runs:
 * the same walk, sharing them and write-protecting them as fork() does.
 * Frozen, the task has still exactly these pages where nothing of its
 * memory changed since: a present PTE is changed (a copy-on-write fault,
 * an unmap, a migration, mprotect) only with a TLB flush, which moves the
 * mm's TLB generation on; a page appears where there was none only
 * counted in its anonymous pages, which no such change lowers again
 * without a flush.  If both are as before the walk, and so are the VMAs
 * walked, the pages taken early are the snapshot, and the frozen time
 * does not grow with the memory; otherwise they are dropped and the pages
 * taken again.  A pinned page stays writable: it is copied frozen.
 */
struct ckpt_early {
	struct mm_struct *mm;	/* grabbed */
	u64 tlb_gen;		/* the mm's, before the walk */
	s64 anon;		/* its anonymous pages, before the walk */
	struct ckpt_snap *snap;
	struct ckpt_early_vma {
		unsigned long start, end;
	} *vmas;		/* walked, in order */
	unsigned int nr_vmas;
	struct ckpt_walk w;	/* its copy list: pinned pages, to copy frozen */
};

static void ckpt_early_free(struct ckpt_early *e)
{
	if (!e)
		return;
	ckpt_snap_free(e->snap);
	kvfree(e->vmas);
	if (e->mm)
		mmdrop(e->mm);
	kfree(e);
}

/* The VMAs the frozen walk takes pages of, as far as a running task's can tell */
static bool ckpt_early_vma(struct vm_area_struct *vma)
{
	struct file *file = vma->vm_file;

	if (!vma->anon_vma || (vma->vm_flags & (VM_MAYSHARE | VM_IO | VM_PFNMAP | VM_MIXEDMAP)) ||
	    is_vm_hugetlb_page(vma))
		return false;
	if (!file)
		return !vma->vm_ops;
	return S_ISREG(file_inode(file)->i_mode) && !IS_PRIVATE(file_inode(file)) &&
	       !ckpt_mapped_image(file);
}

static int ckpt_early_walk(struct ckpt_ctx *ctx, struct mm_struct *mm, struct ckpt_early *e)
{
	struct vm_area_struct *vma;
	struct vma_iterator vmi;
	int ret = 0;

	e->vmas = kvmalloc_array(max(mm->map_count, 1), sizeof(*e->vmas), GFP_KERNEL);
	if (!e->vmas)
		return -ENOMEM;
	/*
	 * Read before the walk: a write-protect fault on a page behind it
	 * (ptep_clear_flush() -> flush_tlb_mm_range() -> inc_mm_tlb_gen())
	 * moves it on, and this walk's own flush (__flush_tlb_all()) does not.
	 */
	e->tlb_gen = atomic64_read(&mm->context.tlb_gen);
	e->anon = get_mm_counter_sum(mm, MM_ANONPAGES);
	e->w.snap = e->snap;
	e->w.cow = true;
	e->w.all_written = true;
	e->w.early = true;
	vma_iter_init(&vmi, mm, 0);
	for_each_vma(vmi, vma) {
		if (!ckpt_early_vma(vma))
			continue;
		if (e->nr_vmas == max(mm->map_count, 1))
			return -EAGAIN;
		e->vmas[e->nr_vmas].start = vma->vm_start;
		e->vmas[e->nr_vmas++].end = vma->vm_end;
		e->w.vma = vma;
		ret = ckpt_walk_vma(ctx, mm, &e->w);
		if (ret)
			break;
	}
	return ret;
}

/*
 * Before the freeze (CHECKPOINT_COW): the pages of @t's mm, into
 * ctx->early.  Nothing but a signal makes it fail: the frozen walk does
 * what this one could not.
 */
int checkpoint_pages_early(struct ckpt_ctx *ctx, struct task_struct *t)
{
	struct mm_struct *mm;
	struct ckpt_early *e;
	int ret;

	if (ctx->flags & (CHECKPOINT_TRACK | CHECKPOINT_INCREMENTAL))
		return 0;
	mm = get_task_mm(t);
	if (!mm)
		return 0;
	e = kzalloc(sizeof(*e), GFP_KERNEL);
	if (e)
		e->snap = ckpt_snap_alloc(task_pid_vnr(t), get_mm_counter(mm, MM_ANONPAGES));
	ret = e && e->snap ? 0 : -ENOMEM;
	/*
	 * The task runs: a thread of it may pin a page by GUP-fast between the
	 * walk's check for pins and its write-protect, and the page, shared
	 * and read-only in the snapshot, would change under DMA.  As fork()'s
	 * copy_page_range(), the walk holds the mmap lock for writing and
	 * write_protect_seq odd, which GUP-fast's FOLL_PIN checks and backs off.
	 */
	if (!ret && mmap_write_lock_killable(mm))
		ret = -EINTR;
	if (!ret) {
		ckpt_hold_log(ctx);
		raw_write_seqcount_begin(&mm->write_protect_seq);
		inc_tlb_flush_pending(mm);
		ret = ckpt_early_walk(ctx, mm, e);
		if (e->w.modified)
			on_each_cpu(ckpt_flush_tlb_cpu, NULL, 1);
		dec_tlb_flush_pending(mm);
		raw_write_seqcount_end(&mm->write_protect_seq);
		mmap_write_unlock(mm);
		ckpt_release_log(ctx);
	}
	if (!ret) {
		mmgrab(mm);
		e->mm = mm;
		ctx->early = e;
	} else {
		ckpt_early_free(e);
	}
	mmput(mm);
	return ret == -EINTR ? ret : 0;
}

/* Frozen, with the mmap lock: whether ctx->early is still @mm's snapshot */
static bool ckpt_early_current(struct ckpt_ctx *ctx, struct mm_struct *mm,
			       struct ckpt_vma_desc *descs, unsigned int nr)
{
	struct ckpt_early *e = ctx->early;
	unsigned int i, v = 0;

	if (!e || e->mm != mm || atomic64_read(&mm->context.tlb_gen) != e->tlb_gen ||
	    get_mm_counter_sum(mm, MM_ANONPAGES) != e->anon)
		return false;
	for (i = 0; i < nr; i++) {
		struct ckpt_vma_desc *d = &descs[i];

		if (d->image)
			return false;
		if (d->kind == CKPT_VMA_SHANON || d->kind == CKPT_VMA_SHFILE ||
		    d->kind == CKPT_VMA_SYSVSHM || !d->anon)
			continue;
		if (v == e->nr_vmas || e->vmas[v].start != d->start || e->vmas[v].end != d->end)
			return false;
		v++;
	}
	return v == e->nr_vmas;
}

/* The pages taken early become @priv's; the pinned ones are copied now */
static int ckpt_early_take(struct ckpt_ctx *ctx, struct mm_struct *mm, struct ckpt_snap *priv)
{
	struct ckpt_early *e = ctx->early;

	swap(priv->runs, e->snap->runs);
	swap(priv->nr_runs, e->snap->nr_runs);
	swap(priv->max_runs, e->snap->max_runs);
	swap(priv->pages, e->snap->pages);
	swap(priv->nr_pages, e->snap->nr_pages);
	swap(priv->max_pages, e->snap->max_pages);
	e->w.snap = priv;
	return ckpt_walk_copy(ctx, mm, &e->w);
}

/*
 * Take the pages of every VMA of the frozen @mm into @priv.  @incremental:
 * @mm is tracked since the parent image, so unchanged pages go as PARENT
 * runs.
 */
static int ckpt_take_pages(struct ckpt_ctx *ctx, struct mm_struct *mm, bool incremental,
			   struct ckpt_vma_desc *descs, unsigned int nr, struct ckpt_snap *priv)
{
	bool track = ctx->flags & CHECKPOINT_TRACK;
	struct ckpt_walk w = {
		.snap = priv,
		.cow = ctx->flags & CHECKPOINT_COW,
		.track = track,
	};
	unsigned int i;
	int ret = 0;

	/* clearing VM_SOFTDIRTY needs the lock for writing */
	ret = track ? mmap_write_lock_killable(mm) : mmap_read_lock_killable(mm);
	if (ret)
		return -EINTR;
	ckpt_hold_log(ctx);
	if (!incremental && ckpt_early_current(ctx, mm, descs, nr)) {
		ret = ckpt_early_take(ctx, mm, priv);
		ckpt_msg(ctx, "pid %d: the pages shared before the freeze are unchanged\n",
			 priv->pid);
		goto unlock;
	}
	/* else the walk takes over those of them still mapped as they were */
	if (!incremental && ctx->early && ctx->early->mm == mm) {
		w.prev = ctx->early->snap;
		ret = ckpt_snap_grow(priv, w.prev->nr_pages);
	}
	inc_tlb_flush_pending(mm);
	for (i = 0; !ret && i < nr; i++) {
		struct ckpt_vma_desc *d = &descs[i];
		struct vm_area_struct *vma = find_vma(mm, d->start);

		if (!vma || vma->vm_start != d->start || vma->vm_end != d->end) {
			ret = ckpt_err(ctx, -EAGAIN, "address space changed at %lx", d->start);
			break;
		}
		if (d->image) {
			ret = ckpt_image_pages(ctx, mm, d, priv);
		} else if (d->kind != CKPT_VMA_SHANON && d->kind != CKPT_VMA_SHFILE &&
			   d->kind != CKPT_VMA_SYSVSHM && d->anon) {
			w.vma = vma;
			w.all_written = !incremental || (vma->vm_flags & VM_SOFTDIRTY);
			if (track)
				vm_flags_clear(vma, VM_SOFTDIRTY);
			ret = ckpt_walk_vma(ctx, mm, &w);
		}
	}
	if (w.modified)
		on_each_cpu(ckpt_flush_tlb_cpu, NULL, 1);
	dec_tlb_flush_pending(mm);
	if (w.prev)
		ckpt_msg(ctx, "pid %d: %lu of its pages were as shared before the freeze\n",
			 priv->pid, w.kept);
unlock:
	if (track)
		mmap_write_unlock(mm);
	else
		mmap_read_unlock(mm);
	ckpt_release_log(ctx);
	return ret;
}

static int ckpt_write_zeros(struct ckpt_ctx *ctx, size_t len)
{
	return len ? ckpt_write(ctx, page_address(ZERO_PAGE(0)), len) : 0;
}

/*
 * @n pages into the page cache of a tmpfs image at its (page-aligned)
 * position, each copied whole by copy_highpage() into the image's folio:
 * the steps of shmem_file_write_iter() and generic_perform_write(), but
 * without their byte copy, which on a CPU without FSRM is the kernel's
 * unrolled memcpy(), several times slower than copy_page()'s rep movsq
 * (about four times under QEMU's TCG).
 */
static ssize_t ckpt_write_cached(struct file *file, struct page **pages, unsigned int n)
{
	struct address_space *mapping = file->f_mapping;
	const struct address_space_operations *a_ops = mapping->a_ops;
	struct inode *inode = mapping->host;
	loff_t count = (loff_t)n << PAGE_SHIFT;
	struct kiocb kiocb;
	ssize_t ret;
	unsigned int i;

	init_sync_kiocb(&kiocb, file);
	kiocb.ki_pos = file->f_pos;
	file_start_write(file);
	inode_lock(inode);
	ret = generic_write_checks_count(&kiocb, &count);
	if (!ret && count != (loff_t)n << PAGE_SHIFT)
		ret = -EFBIG;
	if (!ret)
		ret = file_remove_privs(file) ?: file_update_time(file);
	for (i = 0; !ret && i < n; i++) {
		loff_t pos = kiocb.ki_pos;
		struct folio *folio;
		void *fsdata = NULL;
		struct page *to;
		int status;

		balance_dirty_pages_ratelimited(mapping);
		status = a_ops->write_begin(file, mapping, pos, PAGE_SIZE, &folio, &fsdata);
		if (status < 0) {
			ret = status;
			break;
		}
		if (mapping_writably_mapped(mapping))
			flush_dcache_folio(folio);
		to = folio_page(folio, offset_in_folio(folio, pos) >> PAGE_SHIFT);
		copy_highpage(to, pages[i]);
		flush_dcache_folio(folio);
		status = a_ops->write_end(file, mapping, pos, PAGE_SIZE, PAGE_SIZE, folio, fsdata);
		if (status != PAGE_SIZE)
			ret = status < 0 ? status : -EIO;
		else
			kiocb.ki_pos += PAGE_SIZE;
	}
	inode_unlock(inode);
	if (kiocb.ki_pos != file->f_pos)
		fsnotify_modify(file);
	file_end_write(file);
	count = kiocb.ki_pos - file->f_pos;
	file->f_pos = kiocb.ki_pos;
	return count ?: ret;
}

/* @n pages from @bv: through the file's ->write_iter() */
static ssize_t ckpt_write_bvec(struct file *file, struct bio_vec *bv, struct page **pages,
			       unsigned int n)
{
	struct iov_iter iter;
	unsigned int j;

	for (j = 0; j < n; j++)
		bvec_set_page(&bv[j], pages[j], PAGE_SIZE, 0);
	iov_iter_bvec(&iter, ITER_SOURCE, bv, n, n << PAGE_SHIFT);
	return vfs_iter_write(file, &iter, &file->f_pos, 0);
}

/* Write @nr pages of data from their references, dropping each once written */
static int ckpt_write_pages(struct ckpt_ctx *ctx, struct page **pages, unsigned long nr)
{
	struct file *file = ctx->file;
	bool cached = shmem_mapping(file->f_mapping) && PAGE_ALIGNED(file->f_pos);
	struct bio_vec *bv = NULL;
	unsigned long i = 0;
	int ret = 0;

	if (!cached) {
		bv = kmalloc_array(CKPT_WRITE_BATCH, sizeof(*bv), GFP_KERNEL);
		if (!bv)
			return -ENOMEM;
	}
	while (!ret && i < nr) {
		unsigned int n = min_t(unsigned long, CKPT_WRITE_BATCH, nr - i), done = 0, j;

		while (done < n) {
			ssize_t w = cached ? ckpt_write_cached(file, pages + i + done, n - done) :
				    ckpt_write_bvec(file, bv, pages + i + done, n - done);

			if (w <= 0 || !PAGE_ALIGNED(w)) {
				ret = w < 0 ? w : -EIO;
				break;
			}
			ctx->bytes += w;
			done += w >> PAGE_SHIFT;
		}
		for (j = 0; j < n; j++) {
			put_page(pages[i + j]);
			pages[i + j] = NULL;
		}
		i += n;
		if (fatal_signal_pending(current))
			ret = -EINTR;
		cond_resched();
	}
	kfree(bv);
	return ret;
}

/*
 * Write the snapshot as PAGES objects, the data from the page references
 * (each dropped once written: a copy-on-write task stops copying it).
 */
static int ckpt_write_snap(struct ckpt_ctx *ctx, struct ckpt_snap *s)
{
	struct ckpt_page_run *runs;
	unsigned int ri = 0;	/* the next run */
	u32 done = 0;		/* pages of it in earlier objects */
	unsigned long pi = 0;	/* the next page of s->pages */
	int ret = 0;

	runs = kvmalloc_array(min_t(unsigned int, max(s->nr_runs, 1U), CKPT_RUNS_PER_OBJ),
			      sizeof(*runs), GFP_KERNEL);
	if (!runs)
		return -ENOMEM;
	while (!ret && ri < s->nr_runs) {
		struct ckpt_hdr_pages h = { .pid = s->pid };
		size_t meta;
		u64 at;

		while (ri < s->nr_runs && h.nr_runs < CKPT_RUNS_PER_OBJ &&
		       h.nr_pages < CKPT_PAGES_PER_OBJ) {
			struct ckpt_page_run *r = &runs[h.nr_runs++];
			u32 n = s->runs[ri].nr - done;

			*r = s->runs[ri];
			r->addr += (u64)done << PAGE_SHIFT;
			if (!(r->flags & CKPT_RUN_PARENT))
				n = min_t(u64, n, CKPT_PAGES_PER_OBJ - h.nr_pages);
			r->nr = n;
			if (!(r->flags & CKPT_RUN_PARENT))
				h.nr_pages += n;
			done += n;
			if (done == s->runs[ri].nr) {
				ri++;
				done = 0;
			}
		}
		meta = sizeof(h) + h.nr_runs * sizeof(*runs);
		at = ctx->start_pos + ctx->bytes;
		h.data_off = ALIGN(at + meta, PAGE_SIZE) - at;
		h.h.type = CKPT_HDR_PAGES;
		h.h.len = h.data_off + (h.nr_pages << PAGE_SHIFT);
		ret = ckpt_count_obj(ctx, CKPT_HDR_PAGES) ?:
		      ckpt_write(ctx, &h, sizeof(h));
		if (!ret)
			ret = ckpt_write(ctx, runs, h.nr_runs * sizeof(*runs));
		if (!ret)
			ret = ckpt_write_zeros(ctx, h.data_off - meta);
		if (!ret)
			ret = ckpt_write_pages(ctx, s->pages + pi, h.nr_pages);
		pi += h.nr_pages;
	}
	kvfree(runs);
	return ret;
}

static unsigned long ckpt_parent_pages(struct ckpt_snap *s)
{
	unsigned long n = 0;
	unsigned int i;

	for (i = 0; i < s->nr_runs; i++)
		if (s->runs[i].flags & CKPT_RUN_PARENT)
			n += s->runs[i].nr;
	return n;
}

/* Ranges a child drops from the parent's copy, written out 256 to a DROP object */
#define CKPT_DROPS_PER_OBJ	256

struct ckpt_dropbuf {
	struct ckpt_hdr_drop h;
	struct ckpt_drop_range r[CKPT_DROPS_PER_OBJ];
};

static int ckpt_drops_flush(struct ckpt_ctx *ctx, struct ckpt_dropbuf *db)
{
	int ret;

	if (!db->h.nr)
		return 0;
	ret = ckpt_write_obj(ctx, db, CKPT_HDR_DROP, sizeof(db->h) + db->h.nr * sizeof(db->r[0]));
	db->h.nr = 0;
	return ret;
}

static int ckpt_drop(struct ckpt_ctx *ctx, struct ckpt_dropbuf *db, u64 addr)
{
	struct ckpt_drop_range *last = db->h.nr ? &db->r[db->h.nr - 1] : NULL;

	if (last && last->end == addr) {
		last->end += PAGE_SIZE;
		return 0;
	}
	if (db->h.nr == CKPT_DROPS_PER_OBJ) {
		int ret = ckpt_drops_flush(ctx, db);

		if (ret)
			return ret;
	}
	db->r[db->h.nr].start = addr;
	db->r[db->h.nr++].end = addr + PAGE_SIZE;
	return 0;
}

/*
 * The anonymous page of @mm at @addr, referenced, or NULL if what is
 * there is the zero page or the file's page (or nothing); an error from
 * the page reading fails the checkpoint, never reads as zeros.
 */
static struct page *ckpt_anon_page(struct mm_struct *mm, unsigned long addr)
{
	struct page *page;
	long n;

	if (mmap_read_lock_killable(mm))
		return ERR_PTR(-EINTR);
	n = get_user_pages_remote(mm, addr, 1, FOLL_FORCE, &page, NULL);
	mmap_read_unlock(mm);
	if (n == -EFAULT || !n)
		return NULL;
	if (n < 0)
		return ERR_PTR(n);
	if (is_zero_page(page) || !PageAnon(page)) {
		put_page(page);
		return NULL;
	}
	return page;
}

static struct ckpt_vma_desc *ckpt_desc_at(struct ckpt_vma_desc *descs, unsigned int nr,
					  unsigned long addr)
{
	unsigned int lo = 0, hi = nr;

	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		if (addr < descs[mid].start)
			hi = mid;
		else if (addr >= descs[mid].end)
			lo = mid + 1;
		else
			return &descs[mid];
	}
	return NULL;
}

/* Whether the runs of @s have a page at @addr */
static bool ckpt_snap_has(struct ckpt_snap *s, unsigned long addr)
{
	unsigned int lo = 0, hi = s->nr_runs;

	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;
		struct ckpt_page_run *r = &s->runs[mid];

		if (addr < r->addr)
			hi = mid;
		else if (addr >= r->addr + ((u64)r->nr << PAGE_SHIFT))
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

/* Of a page of @s in a mapping still the parent's: whether it is the parent's very page */
static int ckpt_parents_page(struct ckpt_ctx *ctx, struct mm_struct *parent,
			     struct ckpt_vma_desc *descs, unsigned int nr, unsigned long addr,
			     struct page *page)
{
	struct ckpt_vma_desc *d = ckpt_desc_at(descs, nr, addr);
	struct page *theirs;

	if (!d || !d->from_parent)
		return 0;
	theirs = ckpt_anon_page(parent, addr);
	if (IS_ERR(theirs))
		return ckpt_err(ctx, PTR_ERR(theirs), "cannot read the parent's page at %lx", addr);
	if (theirs)
		put_page(theirs);
	return theirs == page;
}

/*
 * A fork(2) child's pages @*sp, as how they differ from @parent's: a page
 * that is the parent's very page stays out (the fork copy at restart has
 * it), and a page the parent has and the child not is a DROP range.
 */
static int ckpt_fork_diff(struct ckpt_ctx *ctx, struct ckpt_snap **sp, struct mm_struct *parent,
			  struct ckpt_vma_desc *descs, unsigned int nr)
{
	struct ckpt_snap *s = *sp, *out;
	struct ckpt_dropbuf *db;
	unsigned long pi = 0, addr;
	unsigned int ri, i;
	int ret = 0;

	out = ckpt_snap_alloc(s->pid, s->nr_pages);
	db = kzalloc(sizeof(*db), GFP_KERNEL);
	if (!out || !db) {
		ckpt_snap_free(out);
		kfree(db);
		return -ENOMEM;
	}
	for (ri = 0; !ret && ri < s->nr_runs; ri++) {
		struct ckpt_page_run *r = &s->runs[ri];
		u32 k;

		out->new_run = true;
		for (k = 0; !ret && k < r->nr; k++, pi++) {
			struct page *page = s->pages[pi];

			addr = r->addr + ((unsigned long)k << PAGE_SHIFT);
			ret = ckpt_parents_page(ctx, parent, descs, nr, addr, page);
			if (ret > 0) {
				ret = 0;
				out->new_run = true;
				continue;	/* s keeps the reference, and drops it */
			}
			if (!ret)
				ret = ckpt_snap_grow(out, 1);
			if (!ret) {
				ckpt_snap_add(out, addr, 0, page);
				s->pages[pi] = NULL;
			}
		}
	}
	for (i = 0; !ret && i < nr; i++) {
		if (!descs[i].from_parent)
			continue;
		for (addr = descs[i].start; !ret && addr < descs[i].end; addr += PAGE_SIZE) {
			struct page *theirs;

			if (ckpt_should_stop(ctx)) {
				ret = -EINTR;
				break;
			}
			if (ckpt_snap_has(s, addr))
				continue;
			theirs = ckpt_anon_page(parent, addr);
			if (IS_ERR(theirs)) {
				ret = ckpt_err(ctx, PTR_ERR(theirs),
					       "cannot read the parent's page at %lx", addr);
			} else if (theirs) {
				put_page(theirs);
				ret = ckpt_drop(ctx, db, addr);
			}
			cond_resched();
		}
	}
	if (!ret)
		ret = ckpt_drops_flush(ctx, db);
	kfree(db);
	if (ret) {
		ckpt_snap_free(out);
		return ret;
	}
	ckpt_snap_free(s);
	*sp = out;
	return 0;
}

/*
 * The pages of frozen task @t (a fork(2) child of @parent's, if not NULL),
 * written now, or with CHECKPOINT_COW after the thaw (ckpt_write_snapshots()).
 */
int checkpoint_pages(struct ckpt_ctx *ctx, struct task_struct *t, struct mm_struct *mm,
		     struct ckpt_vma_desc *descs, unsigned int nr, struct mm_struct *parent)
{
	pid_t pid = task_pid_vnr(t);
	bool incremental = ckpt_chain_tracked(ctx, mm);
	struct ckpt_snap *priv;
	ktime_t t0, t1;
	int ret = -ENOMEM;

	/* pages taken early come with arrays of their own */
	priv = ckpt_snap_alloc(pid, ctx->early && ctx->early->mm == mm ? 0 :
				    get_mm_counter(mm, MM_ANONPAGES));
	if (!priv)
		goto out;
	ret = 0;
	if (ctx->flags & CHECKPOINT_TRACK)
		ret = ckpt_chain_track(ctx, mm);
	t0 = ktime_get();
	if (!ret)
		ret = ckpt_take_pages(ctx, mm, incremental, descs, nr, priv);
	if (!ret && parent)
		ret = ckpt_fork_diff(ctx, &priv, parent, descs, nr);
	if (ret)
		goto out;
	t1 = ktime_get();
	ckpt_msg(ctx,
		 "pid %d: %u mappings, %lu pages saved%s, %lu unchanged since the parent, taken in %lld us\n",
		 pid, nr, priv->nr_pages, parent ? " (the rest shared with its parent)" : "",
		 ckpt_parent_pages(priv), ktime_us_delta(t1, t0));
	if (ctx->flags & CHECKPOINT_COW) {
		list_add_tail(&priv->list, &ctx->snaps);
		priv = NULL;
	} else {
		ret = ckpt_write_snap(ctx, priv);
	}
	if (!ret)
		ckpt_msg(ctx, "pid %d: pages written in %lld us%s\n", pid,
			 ktime_us_delta(ktime_get(), t1), priv ? "" : " (after the thaw)");
out:
	ckpt_snap_free(priv);
	return ret;
}

/* CHECKPOINT_COW, once the tasks run again: the private pages of every task */
int ckpt_write_snapshots(struct ckpt_ctx *ctx)
{
	struct ckpt_snap *s, *tmp;
	int ret = 0;

	/* taken early and not used (or used: its arrays are empty) */
	ckpt_early_free(ctx->early);
	ctx->early = NULL;
	list_for_each_entry_safe(s, tmp, &ctx->snaps, list) {
		ktime_t t0 = ktime_get();

		if (!ret)
			ret = ckpt_write_snap(ctx, s);
		if (!ret)
			ckpt_msg(ctx, "pid %d: private pages written in %lld us\n", s->pid,
				 ktime_us_delta(ktime_get(), t0));
		list_del(&s->list);
		ckpt_snap_free(s);
	}
	return ret;
}

/* A checkpoint that failed before its pages were written */
void ckpt_drop_snapshots(struct ckpt_ctx *ctx)
{
	struct ckpt_snap *s, *tmp;

	ckpt_early_free(ctx->early);
	ctx->early = NULL;
	list_for_each_entry_safe(s, tmp, &ctx->snaps, list) {
		list_del(&s->list);
		ckpt_snap_free(s);
	}
}

/*
 * Whether a private mapping of @file is memory that restart mapped from an
 * image (RESTART_MAP): the file is a checkpoint image, as its header says.
 * Told by the file itself rather than remembered, so that nothing but the
 * mappings keeps an image alive (and its space taken) once it is deleted.
 */
bool ckpt_mapped_image(struct file *file)
{
	struct ckpt_hdr_header h;
	loff_t pos = 0;

	if (!(file->f_mode & FMODE_READ) || i_size_read(file_inode(file)) < sizeof(h))
		return false;
	return kernel_read(file, &h, sizeof(h), &pos) == sizeof(h) &&
	       h.h.type == CKPT_HDR_HEADER && h.magic == CKPT_MAGIC_HEAD;
}

/* Restart: the pages of the restarting task, and where their data is */
int ckpt_add_extents(struct ckpt_ctx *ctx, struct ckpt_extents *x, struct ckpt_obj *obj,
		     struct file *file)
{
	struct ckpt_hdr_pages *p = (void *)obj->h;
	struct ckpt_page_run *runs = (void *)(p + 1);
	loff_t pos = obj->data_pos;
	u32 i;

	if (x->max - x->nr < p->nr_runs) {
		unsigned int max = x->nr + max(p->nr_runs, x->max);
		void *e = kvrealloc(x->e, max * sizeof(*x->e), GFP_KERNEL_ACCOUNT);

		if (!e)
			return -ENOMEM;
		x->e = e;
		x->max = max;
	}
	for (i = 0; i < p->nr_runs; i++) {
		struct ckpt_extent *e = &x->e[x->nr++];

		e->addr = runs[i].addr;
		e->nr = runs[i].nr;
		e->file = runs[i].flags & CKPT_RUN_PARENT ? NULL : file;
		e->pos = e->file ? pos : 0;
		if (e->file)
			pos += (loff_t)e->nr << PAGE_SHIFT;
	}
	return 0;
}

/* A PAGES object as read: its runs add up, lie in user space, say nothing unknown */
int restore_check_pages(struct ckpt_ctx *ctx, struct ckpt_obj *obj)
{
	struct ckpt_hdr_pages *p = (void *)obj->h;
	struct ckpt_page_run *runs = (void *)(p + 1);
	u64 data = 0;
	u32 i;

	for (i = 0; i < p->nr_runs; i++) {
		u64 len = (u64)runs[i].nr << PAGE_SHIFT;

		if (!runs[i].nr || (runs[i].flags & ~CKPT_RUN_PARENT) ||
		    !PAGE_ALIGNED(runs[i].addr) || runs[i].addr >= TASK_SIZE_MAX ||
		    len > TASK_SIZE_MAX - runs[i].addr)
			return ckpt_err(ctx, -EINVAL, "PAGES object %llu: bad run at %llx",
					obj->index, runs[i].addr);
		if (!(runs[i].flags & CKPT_RUN_PARENT))
			data += runs[i].nr;
	}
	if (data != p->nr_pages)
		return ckpt_err(ctx, -EINVAL, "PAGES object %llu: runs of %llu pages, data of %llu",
				obj->index, data, p->nr_pages);
	return 0;
}

/* A DROP object after the VMAs: ranges in mappings kept from the parent's fork copy */
static int restore_prepare_drop(struct ckpt_ctx *ctx)
{
	struct ckpt_drop_range *r;
	struct ckpt_hdr_drop *h;
	u32 i;

	h = ckpt_next(ctx, CKPT_HDR_DROP, sizeof(*h));
	if (IS_ERR(h))
		return PTR_ERR(h);
	if (!h->nr || h->nr > CKPT_DROPS_PER_OBJ || h->h.len != sizeof(*h) + h->nr * sizeof(*r))
		return ckpt_err(ctx, -EINVAL, "bad DROP object");
	r = (struct ckpt_drop_range *)(h + 1);
	for (i = 0; i < h->nr; i++) {
		struct ckpt_rvma *v = ckpt_find_vma(ctx, r[i].start);

		if (!PAGE_ALIGNED(r[i].start) || !PAGE_ALIGNED(r[i].end) ||
		    r[i].start >= r[i].end || !v || !v->v->from_parent || r[i].end > v->v->end)
			return ckpt_err(ctx, -EINVAL,
					"DROP range %llx-%llx is not in a mapping kept from the parent",
					r[i].start, r[i].end);
	}
	return 0;
}

/*
 * The restarting task's DROP and PAGES objects: every page in a saved
 * mapping that has page data, once, and in an image of the chain (changes
 * nothing)
 */
int restore_prepare_pages(struct ckpt_ctx *ctx)
{
	struct ckpt_extents *x = &ctx->extents;
	struct ckpt_obj *obj;
	u64 prev_end = 0;
	unsigned int i;
	int ret;

	ctx->drops_first = ctx->cur;
	for (ctx->nr_drops = 0; ckpt_peek(ctx) == CKPT_HDR_DROP; ctx->nr_drops++) {
		ret = restore_prepare_drop(ctx);
		if (ret)
			return ret;
	}

	for (obj = ctx->pages_first; obj; obj = obj->next_pages) {
		ret = ckpt_add_extents(ctx, x, obj, ctx->file);
		if (ret)
			return ret;
	}
	ckpt_sort_extents(x);
	ret = restore_chain_resolve(ctx, ctx->task->pid, x);
	if (ret)
		return ret;
	for (i = 0; i < x->nr; i++) {
		struct ckpt_extent *e = &x->e[i];
		u64 end = e->addr + (e->nr << PAGE_SHIFT);
		struct ckpt_rvma *r = ckpt_find_vma(ctx, e->addr);

		if (e->addr < prev_end || !r || r->v->kind == CKPT_VMA_SHFILE ||
		    r->v->kind == CKPT_VMA_SHANON || r->v->kind == CKPT_VMA_SYSVSHM ||
		    end > r->v->end)
			return ckpt_err(ctx, -EINVAL,
					"pages at %llx-%llx are outside the saved mappings",
					e->addr, end);
		prev_end = end;
		ctx->nr_pages += e->nr;
	}
	return 0;
}

static bool restore_can_map(struct ckpt_ctx *ctx, struct ckpt_rvma *r, struct ckpt_extent *e)
{
	return (ctx->flags & RESTART_MAP) && r->v->kind == CKPT_VMA_ANON && !r->v->growsdown &&
	       e->nr >= CKPT_MAP_MIN && PAGE_ALIGNED(e->pos) && e->file->f_op->mmap;
}

/* Into memory the task may not write: through a bounce buffer */
static int restore_extent_bounce(struct ckpt_ctx *ctx, struct ckpt_rvma *r,
				 struct ckpt_extent *e)
{
	u64 addr = e->addr, end = e->addr + (e->nr << PAGE_SHIFT);
	loff_t pos = e->pos;
	void *buf;
	int ret = 0;

	buf = kvmalloc(CKPT_BOUNCE_SIZE, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	while (!ret && addr < end) {
		size_t n = min_t(u64, CKPT_BOUNCE_SIZE, end - addr);
		ssize_t got = kernel_read(e->file, buf, n, &pos);

		if (got != n) {
			ret = ckpt_err(ctx, got < 0 ? got : -EIO,
				       "image ends in the data of the pages at %llx", addr);
			break;
		}
		got = access_process_vm(current, addr, buf, n, FOLL_FORCE | FOLL_WRITE);
		if (got != n)
			ret = ckpt_err(ctx, got < 0 ? got : -EFAULT,
				       "cannot fill the pages at %llx", addr);
		addr += n;
	}
	kvfree(buf);
	return ret;
}

#define CKPT_READ_CHUNK		(64 << 20)

/* Read the data of @e straight into the restarted task's memory */
static int restore_extent_copy(struct ckpt_ctx *ctx, struct ckpt_rvma *r, struct ckpt_extent *e)
{
	u64 addr = e->addr, end = e->addr + (e->nr << PAGE_SHIFT);
	loff_t pos = e->pos;

	if (!(r->v->prot & PROT_WRITE))
		return restore_extent_bounce(ctx, r, e);
	while (addr < end) {
		size_t n = min_t(u64, CKPT_READ_CHUNK, end - addr);
		struct iov_iter iter;
		int ret = import_ubuf(ITER_DEST, u64_to_user_ptr(addr), n, &iter);

		while (!ret && iov_iter_count(&iter)) {
			ssize_t got = vfs_iter_read(e->file, &iter, &pos, 0);

			if (got <= 0)
				ret = got ? got : -EIO;
		}
		if (ret)
			return ckpt_err(ctx, ret, "cannot fill the pages at %llx from the image",
					addr);
		addr += n;
		if (fatal_signal_pending(current))
			return -EINTR;
		cond_resched();
	}
	return 0;
}

/* Drop pages of a VMA kept from the fork copy: they read as zeros (or the file) again */
static int restore_drop(struct ckpt_ctx *ctx, struct ckpt_hdr_drop *h)
{
	struct ckpt_drop_range *r = (struct ckpt_drop_range *)(h + 1);
	struct mm_struct *mm = current->mm;
	int ret = 0;
	u32 i;

	mmap_read_lock(mm);
	for (i = 0; !ret && i < h->nr; i++) {
		struct vm_area_struct *vma = find_vma(mm, r[i].start);
		struct ckpt_rvma *v = ckpt_find_vma(ctx, r[i].start);

		if (!vma || vma->vm_start > r[i].start || vma->vm_end < r[i].end || !v || !v->kept)
			ret = -EINVAL;
		else
			zap_page_range_single(vma, r[i].start, r[i].end - r[i].start, NULL);
	}
	mmap_read_unlock(mm);
	return ret ? ckpt_err(ctx, ret, "cannot drop pages at %llx", r[i - 1].start) : 0;
}

/* Fill (or map) the restarted task's pages, and drop what it had not; its VMAs are mapped */
int restore_pages(struct ckpt_ctx *ctx)
{
	struct ckpt_extents *x = &ctx->extents;
	struct ckpt_obj *drop = ctx->drops_first;
	unsigned long mapped = 0;
	unsigned int i;

	for (i = 0; i < ctx->nr_drops; i++, drop = list_next_entry(drop, list)) {
		int ret = restore_drop(ctx, (struct ckpt_hdr_drop *)drop->h);

		if (ret)
			return ret;
	}

	for (i = 0; i < x->nr; i++) {
		struct ckpt_extent *e = &x->e[i];
		struct ckpt_rvma *r = ckpt_find_vma(ctx, e->addr);
		int ret;

		if (restore_can_map(ctx, r, e)) {
			unsigned long addr = vm_mmap(e->file, e->addr, e->nr << PAGE_SHIFT,
						     r->v->prot, MAP_PRIVATE | MAP_FIXED, e->pos);

			if (addr == e->addr) {
				mapped += e->nr;
				continue;
			}
			/* refused before anything was unmapped (a noexec mount): copy */
			if (addr != -EPERM && addr != -EACCES)
				return ckpt_err(ctx, IS_ERR_VALUE(addr) ? (long)addr : -EINVAL,
						"cannot map the pages at %llx from the image",
						e->addr);
		}
		ret = restore_extent_copy(ctx, r, e);
		if (ret)
			return ret;
	}
	ckpt_msg(ctx, "pid %d: %llu pages restored, %lu of them mapped from the image\n",
		 task_pid_vnr(current), ctx->nr_pages, mapped);
	return 0;
}
