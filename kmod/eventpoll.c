// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: epoll files, with their interest lists.
 *
 * An epoll item is known by a file and the descriptor number it was added
 * with, which may since have been closed or moved: the item stays as long
 * as the file lives.  Checkpoint reads the items (descriptor, events,
 * data) from the epoll file's fdinfo and finds the file behind each with
 * get_epoll_tfile_raw_ptr() (exported by kernel patch 0012, which kcmp(2)
 * uses the same way); the files are saved first, so restart has them.
 * Restart makes a new epoll file with do_epoll_create() and adds each item
 * with do_epoll_ctl_file() for its file and its old descriptor number, so
 * the set reports the same events as before; nested epoll files included.
 */

#include <linux/file.h>
#include <linux/fs.h>
#include <linux/rcupdate.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
/* after fs.h: it uses struct file's fields */
#include <linux/eventpoll.h>

#include "ckpt.h"

#define CKPT_EPOLL_FDINFO	(CKPT_EPOLL_ITEMS_MAX * 96)

static bool ckpt_epoll_match(struct file *file)
{
	return ckpt_anon_is(file, "[eventpoll]");
}

/* A reference to the file of item (@tfd, @toff), which must still be there */
static struct file *ckpt_epoll_target(struct file *ep, int tfd, unsigned long toff)
{
	struct file *tfile = get_epoll_tfile_raw_ptr(ep, tfd, toff);
	bool got;

	if (IS_ERR(tfile))
		return tfile;
	/* files are freed by RCU: a raw pointer still names a struct file */
	rcu_read_lock();
	got = atomic_long_inc_not_zero(&tfile->f_count);
	rcu_read_unlock();
	if (!got)
		return ERR_PTR(-ENOENT);
	if (get_epoll_tfile_raw_ptr(ep, tfd, toff) != tfile) {
		fput(tfile);
		return ERR_PTR(-EAGAIN);
	}
	return tfile;
}

static int checkpoint_epoll_file(struct ckpt_ctx *ctx, struct file *file,
				 struct ckpt_hdr_file *h)
{
	struct ckpt_epoll_item *items;
	struct ckpt_hdr_epoll e = {};
	const char *line;
	char *info;
	u32 i, n = 0;
	int ret = 0;

	info = ckpt_fdinfo(file, CKPT_EPOLL_FDINFO);
	if (!info)
		return ckpt_err(ctx, -E2BIG, "%pD: more than %d items", file, CKPT_EPOLL_ITEMS_MAX);
	items = kvcalloc(CKPT_EPOLL_ITEMS_MAX, sizeof(*items), GFP_KERNEL);
	if (!items) {
		kvfree(info);
		return -ENOMEM;
	}
	for (line = ckpt_fdinfo_line(info, "tfd:"); line && !ret;
	     line = ckpt_fdinfo_line(line + 1, "tfd:")) {
		struct ckpt_epoll_item *it = &items[n];
		unsigned long toff = 0;
		struct file *tfile;

		if (n == CKPT_EPOLL_ITEMS_MAX) {
			ret = ckpt_err(ctx, -E2BIG, "%pD: more than %d items", file,
				       CKPT_EPOLL_ITEMS_MAX);
			break;
		}
		if (sscanf(line, "tfd: %d events: %x data: %llx", &it->tfd, &it->events,
			   &it->data) != 3) {
			ret = ckpt_err(ctx, -EIO, "%pD: cannot read its items", file);
			break;
		}
		/* items of one descriptor number come in order: the how-manyth this is */
		for (i = 0; i < n; i++)
			toff += items[i].tfd == it->tfd;
		tfile = ckpt_epoll_target(file, it->tfd, toff);
		if (IS_ERR(tfile)) {
			ret = ckpt_err(ctx, PTR_ERR(tfile), "%pD: item %d changed while saved",
				       file, it->tfd);
			break;
		}
		ret = checkpoint_file_obj(ctx, tfile, &it->file);
		fput(tfile);
		n++;
	}
	kvfree(info);
	if (!ret)
		ret = ckpt_obj_add(ctx, file->private_data, CKPT_HDR_EPOLL);
	if (ret >= 0) {
		e.objref = ret;
		e.nr_items = n;
		h->obj = ret;
		h->pos = 0;
		ret = ckpt_write_obj_buf(ctx, &e, CKPT_HDR_EPOLL, sizeof(e), items,
					 n * sizeof(*items));
	}
	kvfree(items);
	return ret;
}

int restore_epoll_obj(struct ckpt_ctx *ctx)
{
	struct ckpt_epoll_item *items;
	struct ckpt_hdr_epoll *e;
	struct file *file;
	u32 i;
	int ret = 0;

	e = ckpt_next(ctx, CKPT_HDR_EPOLL, sizeof(*e));
	if (IS_ERR(e))
		return PTR_ERR(e);
	if (e->objref <= 0 || e->nr_items > CKPT_EPOLL_ITEMS_MAX ||
	    e->h.len != sizeof(*e) + e->nr_items * sizeof(*items))
		return ckpt_err(ctx, -EINVAL, "bad EPOLL object");
	if (ckpt_obj_find_any(ctx, e->objref))
		return ckpt_err(ctx, -EINVAL, "epoll %d defined twice", e->objref);
	file = ckpt_take_fd(do_epoll_create(EPOLL_CLOEXEC));
	if (IS_ERR(file))
		return ckpt_err(ctx, PTR_ERR(file), "cannot create an epoll file");
	items = (struct ckpt_epoll_item *)(e + 1);
	for (i = 0; !ret && i < e->nr_items; i++) {
		struct file *tfile = ckpt_obj_file(ctx, items[i].file);
		struct epoll_event ev = {
			.events = items[i].events,
			.data = items[i].data,
		};

		if (!tfile || items[i].tfd < 0 || items[i].pad)
			ret = ckpt_err(ctx, -EINVAL, "epoll %d: bad item %u", e->objref, i);
		else
			ret = do_epoll_ctl_file(file, EPOLL_CTL_ADD, tfile, items[i].tfd, &ev,
						false);
		if (ret && tfile)
			ckpt_err(ctx, ret, "epoll %d: cannot add fd %d", e->objref, items[i].tfd);
	}
	if (!ret)
		ret = ckpt_obj_add_file(ctx, e->objref, file);
	if (ret)
		fput(file);
	return ret;
}

const struct ckpt_file_ops ckpt_epoll_ops = {
	.kind = CKPT_FILE_EPOLL,
	.name = "epoll",
	.match = ckpt_epoll_match,
	.checkpoint = checkpoint_epoll_file,
	.restore = restore_state_file,
};
