// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: page contents.
 *
 * Saved are the pages that hold state the file does not: the anonymous
 * pages of private mappings (heap, stack, malloc arenas, the written-to
 * parts of a library's data).  Shared anonymous memory has its pages
 * saved once, with its SHMEM object (shmem.c); shared file mappings carry
 * none: their contents are in the file.  All-zero anonymous pages are
 * skipped, since a fresh mapping reads as zeros.  Pages go out
 * CKPT_PAGES_PER_OBJ to a PAGES object, addresses first; restart writes
 * them back once the VMAs are mapped.
 */

#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/vmalloc.h>

#include "ckpt.h"

struct ckpt_pagebuf {
	unsigned int nr;
	u64 addr[CKPT_PAGES_PER_OBJ];
	void *data;		/* CKPT_PAGES_PER_OBJ pages */
	u64 total;
};

struct ckpt_pagebuf *ckpt_pagebuf_new(void)
{
	struct ckpt_pagebuf *pb = kzalloc(sizeof(*pb), GFP_KERNEL);

	if (pb)
		pb->data = vmalloc(CKPT_PAGES_PER_OBJ * PAGE_SIZE);
	if (pb && !pb->data) {
		kfree(pb);
		pb = NULL;
	}
	return pb;
}

/* The number of pages written through @pb */
u64 ckpt_pagebuf_free(struct ckpt_pagebuf *pb)
{
	u64 total = pb->total;

	vfree(pb->data);
	kfree(pb);
	return total;
}

int ckpt_pages_flush(struct ckpt_ctx *ctx, struct ckpt_pagebuf *pb)
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

/*
 * Add @page at @addr to @pb, unless @zero_ok and it is all zeros (a fresh
 * mapping reads so); writes a PAGES object when @pb is full.
 */
/* Whether @page reads all zeros */
static bool ckpt_page_zero(struct page *page)
{
	void *p = kmap_local_page(page);
	bool zero = !memchr_inv(p, 0, PAGE_SIZE);

	kunmap_local(p);
	return zero;
}

int ckpt_pagebuf_add(struct ckpt_ctx *ctx, struct ckpt_pagebuf *pb, u64 addr,
		     struct page *page, bool zero_ok)
{
	void *dst = pb->data + pb->nr * PAGE_SIZE;
	void *src;

	src = kmap_local_page(page);
	memcpy(dst, src, PAGE_SIZE);
	kunmap_local(src);
	if (zero_ok && !memchr_inv(dst, 0, PAGE_SIZE))
		return 0;
	pb->addr[pb->nr++] = addr;
	return pb->nr == CKPT_PAGES_PER_OBJ ? ckpt_pages_flush(ctx, pb) : 0;
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
 * there is the zero page or the file's page (or no VMA: -EFAULT); an
 * error from the page reading fails the checkpoint, never reads as zeros.
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

/*
 * The pages of one VMA: its anonymous pages; for one fork(2) kept from
 * the parent (@parent), only those that are not the parent's very page,
 * and (in @db) where the parent has one of its own and the child none.
 */
static int checkpoint_vma_pages(struct ckpt_ctx *ctx, struct mm_struct *mm,
				struct ckpt_vma_desc *d, struct ckpt_pagebuf *pb,
				struct mm_struct *parent, struct ckpt_dropbuf *db)
{
	unsigned long addr;
	int ret = 0;

	/* shared memory is saved with its SHMEM object, or lives in its file */
	if (d->kind == CKPT_VMA_SHFILE || d->kind == CKPT_VMA_SHANON)
		return 0;
	if (!d->from_parent)
		parent = NULL;
	if (!d->anon && !parent)
		return 0;

	for (addr = d->start; !ret && addr < d->end; addr += PAGE_SIZE) {
		struct page *page, *theirs = NULL;

		if (ckpt_should_stop(ctx))
			return -EINTR;
		page = ckpt_anon_page(mm, addr);
		if (parent && !IS_ERR(page))
			theirs = ckpt_anon_page(parent, addr);
		if (IS_ERR(page) || IS_ERR(theirs)) {
			ret = ckpt_err(ctx, PTR_ERR(IS_ERR(page) ? page : theirs),
				       "cannot read the page at %lx", addr);
		} else if (page && page == theirs) {
			;	/* still shared with the parent: the fork copy has it */
		} else if (page && d->kind == CKPT_VMA_ANON && ckpt_page_zero(page)) {
			/* a fresh mapping reads zeros; the copy of the parent's must be dropped */
			if (theirs)
				ret = ckpt_drop(ctx, db, addr);
		} else if (page) {
			/* a private file page that reads zeros still differs from the file */
			ret = ckpt_pagebuf_add(ctx, pb, addr, page, false);
		} else if (theirs) {
			ret = ckpt_drop(ctx, db, addr);
		}
		if (!IS_ERR_OR_NULL(page))
			put_page(page);
		if (!IS_ERR_OR_NULL(theirs))
			put_page(theirs);
		cond_resched();
	}
	return ret;
}

int checkpoint_pages(struct ckpt_ctx *ctx, struct task_struct *t, struct mm_struct *mm,
		     struct ckpt_vma_desc *descs, unsigned int nr, struct mm_struct *parent)
{
	struct ckpt_dropbuf *db;
	struct ckpt_pagebuf *pb;
	unsigned int i;
	u64 total;
	int ret = 0;

	pb = ckpt_pagebuf_new();
	db = kzalloc(sizeof(*db), GFP_KERNEL);
	if (!pb || !db) {
		kfree(db);
		if (pb)
			ckpt_pagebuf_free(pb);
		return -ENOMEM;
	}
	for (i = 0; !ret && i < nr; i++)
		ret = checkpoint_vma_pages(ctx, mm, &descs[i], pb, parent, db);
	if (!ret)
		ret = ckpt_pages_flush(ctx, pb);
	if (!ret)
		ret = ckpt_drops_flush(ctx, db);
	total = ckpt_pagebuf_free(pb);
	kfree(db);
	if (!ret)
		ckpt_msg(ctx, "pid %d: %u mappings, %llu pages saved%s\n", task_pid_vnr(t), nr,
			 total, parent ? " (the rest shared with its parent)" : "");
	return ret;
}

/* The next PAGES object, its count and length checked; an ERR_PTR if none */
struct ckpt_hdr_pages *restore_next_pages(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_pages *p = ckpt_next(ctx, CKPT_HDR_PAGES, sizeof(*p));

	if (IS_ERR(p))
		return p;
	if (!p->nr || p->nr > CKPT_PAGES_PER_OBJ ||
	    p->h.len != sizeof(*p) + p->nr * (sizeof(u64) + PAGE_SIZE))
		return ERR_PTR(ckpt_err(ctx, -EINVAL, "bad PAGES object"));
	return p;
}

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

/* The PAGES (and DROP) objects after the VMAs */
int restore_prepare_pages(struct ckpt_ctx *ctx)
{
	struct ckpt_obj *first = ctx->cur;
	u32 nr_objs = 0;
	int ret;

	for (;; nr_objs++) {
		struct ckpt_hdr_pages *p;
		struct ckpt_rvma *r;
		u64 *addr;
		u32 i;

		if (ckpt_peek(ctx) == CKPT_HDR_DROP) {
			ret = restore_prepare_drop(ctx);
			if (ret)
				return ret;
			continue;
		}
		if (ckpt_peek(ctx) != CKPT_HDR_PAGES)
			break;
		p = restore_next_pages(ctx);
		if (IS_ERR(p))
			return PTR_ERR(p);
		addr = (u64 *)(p + 1);
		for (i = 0; i < p->nr; i++) {
			r = ckpt_find_vma(ctx, addr[i]);
			if (!PAGE_ALIGNED(addr[i]) || !r ||
			    (r->v->kind != CKPT_VMA_ANON && r->v->kind != CKPT_VMA_FILE))
				return ckpt_err(ctx, -EINVAL,
						"page at %llx is outside the saved mappings",
						addr[i]);
		}
		ctx->nr_pages += p->nr;
	}
	ctx->pages_first = nr_objs ? &first->list : NULL;
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

int restore_pages(struct ckpt_ctx *ctx)
{
	struct list_head *pos = ctx->pages_first;

	for (; pos && pos != &ctx->objs; pos = pos->next) {
		struct ckpt_obj *obj = list_entry(pos, struct ckpt_obj, list);
		struct ckpt_hdr_pages *p = (void *)obj->h;
		u64 *addr = (u64 *)(p + 1);
		void *data = addr + p->nr;
		u32 i;

		if (p->h.type == CKPT_HDR_DROP) {
			int ret = restore_drop(ctx, (struct ckpt_hdr_drop *)p);

			if (ret)
				return ret;
			continue;
		}
		if (p->h.type != CKPT_HDR_PAGES)
			break;
		for (i = 0; i < p->nr; i++) {
			int n = access_process_vm(current, addr[i], data + i * PAGE_SIZE,
						  PAGE_SIZE, FOLL_FORCE | FOLL_WRITE);

			if (n != PAGE_SIZE)
				return ckpt_err(ctx, -EFAULT, "cannot fill page %llx", addr[i]);
		}
		ckpt_progress(ctx);
		cond_resched();
	}
	return 0;
}
