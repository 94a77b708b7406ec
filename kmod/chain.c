// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: chains of checkpoints (pre-dumps and incremental dumps).
 *
 * A checkpoint with CHECKPOINT_TRACK saves everything, as any other, and
 * clears the soft-dirty bits of the tasks' pages while they are frozen
 * (pages.c): from then on the kernel marks every page they write.  The
 * engine remembers, per address space, the image that started the
 * tracking: its random id and its path.  A later checkpoint with
 * CHECKPOINT_INCREMENTAL saves the pages written since, and the others as
 * runs "in the parent"; its CHAIN object names that image.  A task with no
 * tracked address space (created since, or exec()ed) is saved whole.
 * Both flags together (a second pre-dump) extend the chain.  Nothing else
 * may clear the tasks' soft-dirty bits meanwhile (/proc/PID/clear_refs).
 *
 * Restart opens the parent by its path, with the restarter's credentials,
 * checks that it is the image the CHAIN object names (by id), that it is
 * whole (its trailer) and reads its page index; and so on up the chain.
 * Each unchanged page is then read (or mapped) from the newest image of
 * the chain that has it.
 */

#include <linux/file.h>
#include <linux/fs.h>
#include <linux/mutex.h>
#include <linux/random.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/string.h>

#include "ckpt.h"

/* An address space whose written pages are tracked, and since which image */
struct ckpt_track {
	struct list_head list;
	struct mm_struct *mm;	/* mmgrab()bed, so never another one at that address */
	u64 id;
	char *path;
};

#define CKPT_TRACKS_MAX		4096

static LIST_HEAD(ckpt_tracks);
static DEFINE_MUTEX(ckpt_tracks_lock);
static unsigned int ckpt_nr_tracks;

static void ckpt_track_free(struct ckpt_track *tr)
{
	list_del(&tr->list);
	mmdrop(tr->mm);
	kfree(tr->path);
	kfree(tr);
}

/* With ckpt_tracks_lock: forget address spaces that are gone, and @mm's if given */
static void ckpt_tracks_prune(struct mm_struct *mm)
{
	struct ckpt_track *tr, *tmp;

	lockdep_assert_held(&ckpt_tracks_lock);
	list_for_each_entry_safe(tr, tmp, &ckpt_tracks, list) {
		if (tr->mm != mm && atomic_read(&tr->mm->mm_users))
			continue;
		ckpt_track_free(tr);
		ckpt_nr_tracks--;
	}
}

static struct ckpt_track *ckpt_track_find(struct mm_struct *mm)
{
	struct ckpt_track *tr;

	lockdep_assert_held(&ckpt_tracks_lock);
	list_for_each_entry(tr, &ckpt_tracks, list)
		if (tr->mm == mm)
			return tr;
	return NULL;
}

/* Which image tracks @t's address space (0 if none), and where it is */
static u64 ckpt_tracked_by(struct task_struct *t, char **path)
{
	struct mm_struct *mm = get_task_mm(t);
	struct ckpt_track *tr;
	u64 id = 0;

	if (!mm)
		return 0;
	mutex_lock(&ckpt_tracks_lock);
	tr = ckpt_track_find(mm);
	if (tr) {
		id = tr->id;
		if (path && !*path)
			*path = kstrdup(tr->path, GFP_KERNEL);
	}
	mutex_unlock(&ckpt_tracks_lock);
	mmput(mm);
	return id;
}

/* After TREE, frozen: find the parent (INCREMENTAL), write the CHAIN object */
int checkpoint_chain(struct ckpt_ctx *ctx, struct ckpt_tree *tree)
{
	struct ckpt_hdr_chain h = {};
	u32 i;

	if (!(ctx->flags & (CHECKPOINT_TRACK | CHECKPOINT_INCREMENTAL)))
		return 0;
	if ((ctx->flags & CHECKPOINT_TRACK) && !S_ISREG(file_inode(ctx->file)->i_mode))
		return ckpt_err(ctx, -EINVAL,
				"a tracking checkpoint must go to a file: the next one names it by its path");
	mutex_lock(&ckpt_tracks_lock);
	ckpt_tracks_prune(NULL);
	mutex_unlock(&ckpt_tracks_lock);
	for (i = 0; (ctx->flags & CHECKPOINT_INCREMENTAL) && i < tree->nr; i++) {
		u64 id;

		if (tree->zombie[i])
			continue;
		id = ckpt_tracked_by(tree->tasks[i], &ctx->parent_path);
		if (id && ctx->parent_id && id != ctx->parent_id)
			return ckpt_err(ctx, -EINVAL,
					"pid %d was pre-dumped by another checkpoint than the rest of the tree",
					task_pid_vnr(tree->tasks[i]));
		if (id)
			ctx->parent_id = id;
	}
	if ((ctx->flags & CHECKPOINT_INCREMENTAL) && !ctx->parent_id)
		return ckpt_err(ctx, -ENOENT,
				"no pre-dump tracks the memory of pid %d: make one first (CHECKPOINT_TRACK)",
				task_pid_vnr(tree->tasks[0]));
	if (ctx->parent_id && !ctx->parent_path)
		return -ENOMEM;
	ctx->chain_id = get_random_u64() | 1;
	h.id = ctx->chain_id;
	h.parent_id = ctx->parent_id;
	h.tracking = !!(ctx->flags & CHECKPOINT_TRACK);
	if (!ctx->parent_path)
		return ckpt_write_obj(ctx, &h, CKPT_HDR_CHAIN, sizeof(h));
	h.path_len = strlen(ctx->parent_path) + 1;
	ckpt_msg(ctx, "incremental: unchanged pages are in %s\n", ctx->parent_path);
	return ckpt_write_obj_str(ctx, &h, CKPT_HDR_CHAIN, sizeof(h), ctx->parent_path);
}

/* CHECKPOINT_INCREMENTAL: whether @mm's soft-dirty bits tell what changed since the parent */
bool ckpt_chain_tracked(struct ckpt_ctx *ctx, struct mm_struct *mm)
{
	struct ckpt_track *tr;
	bool tracked;

	if (!ctx->parent_id)
		return false;
	mutex_lock(&ckpt_tracks_lock);
	tr = ckpt_track_find(mm);
	tracked = tr && tr->id == ctx->parent_id;
	mutex_unlock(&ckpt_tracks_lock);
	return tracked;
}

/*
 * CHECKPOINT_TRACK, before @mm's soft-dirty bits are cleared: whatever
 * tracked it is no longer true; this image will be, once it is complete.
 */
int ckpt_chain_track(struct ckpt_ctx *ctx, struct mm_struct *mm)
{
	struct ckpt_track *tr;
	char *buf, *path;

	tr = kzalloc(sizeof(*tr), GFP_KERNEL);
	buf = __getname();
	if (!tr || !buf) {
		kfree(tr);
		if (buf)
			__putname(buf);
		return -ENOMEM;
	}
	path = d_path(&ctx->file->f_path, buf, PATH_MAX);
	tr->path = IS_ERR(path) ? NULL : kstrdup(path, GFP_KERNEL);
	__putname(buf);
	if (!tr->path) {
		kfree(tr);
		if (IS_ERR(path))
			return ckpt_err(ctx, PTR_ERR(path), "no path for the image");
		return -ENOMEM;
	}
	mmgrab(mm);
	tr->mm = mm;
	tr->id = ctx->chain_id;
	list_add_tail(&tr->list, &ctx->tracked);
	mutex_lock(&ckpt_tracks_lock);
	ckpt_tracks_prune(mm);
	mutex_unlock(&ckpt_tracks_lock);
	return 0;
}

/* The checkpoint is over: a complete tracking image tracks its tasks from now on */
void ckpt_chain_done(struct ckpt_ctx *ctx, bool ok)
{
	struct ckpt_track *tr, *tmp;

	mutex_lock(&ckpt_tracks_lock);
	list_for_each_entry_safe(tr, tmp, &ctx->tracked, list) {
		if (!ok) {
			ckpt_track_free(tr);
			continue;
		}
		ckpt_tracks_prune(tr->mm);
		if (ckpt_nr_tracks == CKPT_TRACKS_MAX) {
			ckpt_track_free(list_first_entry(&ckpt_tracks, struct ckpt_track, list));
			ckpt_nr_tracks--;
		}
		list_move_tail(&tr->list, &ckpt_tracks);
		ckpt_nr_tracks++;
	}
	mutex_unlock(&ckpt_tracks_lock);
}

void ckpt_chain_exit(void)
{
	struct ckpt_track *tr, *tmp;

	mutex_lock(&ckpt_tracks_lock);
	list_for_each_entry_safe(tr, tmp, &ckpt_tracks, list)
		ckpt_track_free(tr);
	ckpt_nr_tracks = 0;
	mutex_unlock(&ckpt_tracks_lock);
}

/* A parent image as read: its header, then the CHAIN object naming it @id */
static int restore_parent_check(struct ckpt_ctx *ctx, struct ckpt_parent *p, const char *path,
				u64 id)
{
	struct ckpt_obj *head = list_first_entry_or_null(&p->objs, struct ckpt_obj, list);
	struct ckpt_obj *obj = head && !list_is_last(&head->list, &p->objs) ?
			       list_next_entry(head, list) : NULL;
	struct ckpt_hdr_chain *c;
	const char *parent;
	int ret;

	if (!head || head->h->type != CKPT_HDR_HEADER ||
	    head->h->len < sizeof(struct ckpt_hdr_header))
		return ckpt_err(ctx, -EINVAL, "parent image %s has no header", path);
	ret = ckpt_check_header(ctx, (void *)head->h);
	if (ret)
		return ret;
	c = obj ? (void *)obj->h : NULL;
	if (!c || c->h.type != CKPT_HDR_CHAIN || c->h.len < sizeof(*c) || c->id != id)
		return ckpt_err(ctx, -EINVAL, "%s is not the parent image named (replaced since?)",
				path);
	if (!c->parent_id)
		return 0;
	parent = ckpt_str(ctx, c, sizeof(*c), c->path_len);
	if (!parent)
		return -EINVAL;
	p->parent_id = c->parent_id;
	p->parent_path = kstrdup(parent, GFP_KERNEL);
	return p->parent_path ? 0 : -ENOMEM;
}

/* The first task, after TREE: the CHAIN object if any, and every parent image */
int restore_chain(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_chain *c;
	const char *path;
	u64 id;

	if (ckpt_peek(ctx) != CKPT_HDR_CHAIN)
		return 0;
	c = ckpt_next(ctx, CKPT_HDR_CHAIN, sizeof(*c));
	if (IS_ERR(c))
		return PTR_ERR(c);
	if (c->h.len != sizeof(*c) + ALIGN(c->path_len, 8) || c->tracking > 1 ||
	    !c->parent_id != !c->path_len)
		return ckpt_err(ctx, -EINVAL, "bad CHAIN object");
	if (!c->parent_id)
		return 0;
	path = ckpt_str(ctx, c, sizeof(*c), c->path_len);
	if (!path)
		return -EINVAL;
	ctx->parents = kcalloc(CKPT_CHAIN_MAX, sizeof(*ctx->parents), GFP_KERNEL);
	if (!ctx->parents)
		return -ENOMEM;
	for (id = c->parent_id; id; id = ctx->parents[ctx->nr_parents - 1].parent_id) {
		struct ckpt_parent *p = &ctx->parents[ctx->nr_parents];
		int ret;

		if (ctx->nr_parents == CKPT_CHAIN_MAX)
			return ckpt_err(ctx, -ELOOP, "a chain of more than %d images",
					CKPT_CHAIN_MAX);
		INIT_LIST_HEAD(&p->objs);
		ctx->nr_parents++;
		ckpt_msg(ctx, "reading the parent image %s\n", path);
		p->file = ckpt_open_path(path, O_RDONLY | O_LARGEFILE);
		if (IS_ERR(p->file)) {
			ret = PTR_ERR(p->file);
			p->file = NULL;
			return ckpt_err(ctx, ret, "cannot open the parent image %s", path);
		}
		if (!S_ISREG(file_inode(p->file)->i_mode))
			return ckpt_err(ctx, -EINVAL, "the parent image %s is not a regular file",
					path);
		ret = ckpt_read_parent(ctx, p);
		if (!ret)
			ret = restore_parent_check(ctx, p, path, id);
		if (ret)
			return ret;
		path = p->parent_path;
	}
	return 0;
}

static int ckpt_extent_push(struct ckpt_extents *x, const struct ckpt_extent *e)
{
	if (x->nr == x->max) {
		unsigned int max = max(2 * x->max, 16U);
		void *p = kvrealloc(x->e, max * sizeof(*x->e), GFP_KERNEL_ACCOUNT);

		if (!p)
			return -ENOMEM;
		x->e = p;
		x->max = max;
	}
	x->e[x->nr++] = *e;
	return 0;
}

static int ckpt_extent_cmp(const void *a, const void *b)
{
	const struct ckpt_extent *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

void ckpt_sort_extents(struct ckpt_extents *x)
{
	sort(x->e, x->nr, sizeof(*x->e), ckpt_extent_cmp, NULL);
}

/* Split the unresolved extents of @x (sorted) over @px, the parent's (sorted) */
static int ckpt_resolve_level(struct ckpt_ctx *ctx, pid_t pid, struct ckpt_extents *x,
			      struct ckpt_extents *px, struct ckpt_extents *out)
{
	unsigned int i, j = 0;
	int ret = 0;

	for (i = 0; !ret && i < x->nr; i++) {
		struct ckpt_extent *e = &x->e[i];
		u64 cur = e->addr, end = e->addr + (e->nr << PAGE_SHIFT);

		if (e->file) {
			ret = ckpt_extent_push(out, e);
			continue;
		}
		while (!ret && cur < end) {
			struct ckpt_extent piece;
			u64 pend;

			while (j < px->nr && px->e[j].addr + (px->e[j].nr << PAGE_SHIFT) <= cur)
				j++;
			if (j == px->nr || px->e[j].addr > cur)
				return ckpt_err(ctx, -EINVAL,
						"pid %d: the page at %llx is in no image of the chain",
						pid, cur);
			pend = min(end, px->e[j].addr + (px->e[j].nr << PAGE_SHIFT));
			piece.addr = cur;
			piece.nr = (pend - cur) >> PAGE_SHIFT;
			piece.file = px->e[j].file;
			piece.pos = piece.file ? px->e[j].pos + (cur - px->e[j].addr) : 0;
			ret = ckpt_extent_push(out, &piece);
			cur = pend;
		}
	}
	return ret;
}

/* Find the data of every page @x leaves in the parent, up the chain */
int restore_chain_resolve(struct ckpt_ctx *ctx, pid_t pid, struct ckpt_extents *x)
{
	unsigned int level, i;
	int ret = 0;

	for (level = 0; !ret && level < ctx->nr_parents; level++) {
		struct ckpt_parent *p = &ctx->parents[level];
		struct ckpt_extents px = {}, out = {};
		struct ckpt_obj *obj;

		for (i = 0; i < x->nr && x->e[i].file; i++)
			;
		if (i == x->nr)
			break;
		list_for_each_entry(obj, &p->objs, list) {
			struct ckpt_hdr_pages *h = (void *)obj->h;

			if (!ret && h->h.type == CKPT_HDR_PAGES && h->pid == pid)
				ret = ckpt_add_extents(ctx, &px, obj, p->file);
		}
		if (!ret) {
			ckpt_sort_extents(&px);
			ret = ckpt_resolve_level(ctx, pid, x, &px, &out);
		}
		kvfree(px.e);
		if (ret) {
			kvfree(out.e);
			break;
		}
		kvfree(x->e);
		*x = out;
	}
	for (i = 0; !ret && i < x->nr; i++)
		if (!x->e[i].file)
			ret = ckpt_err(ctx, -EINVAL,
				       "pid %d: the page at %llx is in no image of the chain",
				       pid, x->e[i].addr);
	return ret;
}

void ckpt_chain_free(struct ckpt_ctx *ctx)
{
	struct ckpt_track *tr, *tmp;
	unsigned int i;

	for (i = 0; i < ctx->nr_parents; i++) {
		struct ckpt_parent *p = &ctx->parents[i];

		ckpt_free_objs(&p->objs);
		if (p->file)
			fput(p->file);
		kfree(p->parent_path);
	}
	kfree(ctx->parents);
	kfree(ctx->parent_path);
	list_for_each_entry_safe(tr, tmp, &ctx->tracked, list)
		ckpt_track_free(tr);
}
