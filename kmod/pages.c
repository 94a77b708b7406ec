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

static int checkpoint_vma_pages(struct ckpt_ctx *ctx, struct mm_struct *mm,
				struct ckpt_vma_desc *d, struct ckpt_pagebuf *pb)
{
	unsigned long addr;
	int ret;

	/* shared memory is saved with its SHMEM object, or lives in its file */
	if (d->kind == CKPT_VMA_SHFILE || d->kind == CKPT_VMA_SHANON || !d->anon)
		return 0;

	for (addr = d->start; addr < d->end; addr += PAGE_SIZE) {
		struct page *page;
		long n;

		if (ckpt_should_stop(ctx))
			return -EINTR;
		if (mmap_read_lock_killable(mm))
			return -EINTR;
		n = get_user_pages_remote(mm, addr, 1, FOLL_FORCE, &page, NULL);
		mmap_read_unlock(mm);
		if (n != 1)
			continue;	/* nothing there */
		if (is_zero_page(page) || !PageAnon(page)) {
			put_page(page);
			continue;	/* the file or a fresh mapping has it */
		}
		/* a private file page that reads zeros still differs from the file */
		ret = ckpt_pagebuf_add(ctx, pb, addr, page, d->kind == CKPT_VMA_ANON);
		put_page(page);
		if (ret)
			return ret;
		cond_resched();
	}
	return 0;
}

int checkpoint_pages(struct ckpt_ctx *ctx, struct task_struct *t, struct mm_struct *mm,
		     struct ckpt_vma_desc *descs, unsigned int nr)
{
	struct ckpt_pagebuf *pb;
	unsigned int i;
	u64 total;
	int ret = 0;

	pb = ckpt_pagebuf_new();
	if (!pb)
		return -ENOMEM;
	for (i = 0; !ret && i < nr; i++)
		ret = checkpoint_vma_pages(ctx, mm, &descs[i], pb);
	if (!ret)
		ret = ckpt_pages_flush(ctx, pb);
	total = ckpt_pagebuf_free(pb);
	if (!ret)
		ckpt_msg(ctx, "pid %d: %u mappings, %llu pages saved\n",
			 task_pid_vnr(t), nr, total);
	return ret;
}

int restore_prepare_pages(struct ckpt_ctx *ctx)
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
			if (!PAGE_ALIGNED(addr[i]) || !r ||
			    (r->v->kind != CKPT_VMA_ANON && r->v->kind != CKPT_VMA_FILE))
				return ckpt_err(ctx, -EINVAL,
						"page at %llx is outside the saved mappings",
						addr[i]);
		}
		ctx->nr_pages += p->nr;
	}
	ctx->pages_first = ctx->nr_pages ? &first->list : NULL;
	return 0;
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
