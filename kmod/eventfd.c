// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: eventfds, with their counter and semaphore mode.
 *
 * The counter is read from the eventfd's fdinfo, which does not consume
 * it; restart makes a new eventfd with do_eventfd() (kernel patch 0012)
 * and adds the counter with a write, as a program would.
 */

#include <linux/eventfd.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/slab.h>

#include "ckpt.h"

static bool ckpt_eventfd_match(struct file *file)
{
	struct eventfd_ctx *ectx = eventfd_ctx_fileget(file);

	if (IS_ERR(ectx))
		return false;
	eventfd_ctx_put(ectx);
	return true;
}

static int checkpoint_eventfd_file(struct ckpt_ctx *ctx, struct file *file,
				   struct ckpt_hdr_file *h)
{
	struct ckpt_hdr_eventfd e = {};
	const char *line;
	unsigned int sem = 0;
	char *info;
	int ret;

	info = ckpt_fdinfo(file, 256);
	if (!info)
		return ckpt_err(ctx, -EIO, "%pD: cannot read its state", file);
	line = ckpt_fdinfo_line(info, "eventfd-count:");
	ret = line && sscanf(line, "eventfd-count: %llx", &e.count) == 1 ? 0 : -EIO;
	line = ckpt_fdinfo_line(info, "eventfd-semaphore:");
	if (!ret && (!line || sscanf(line, "eventfd-semaphore: %u", &sem) != 1))
		ret = -EIO;
	kvfree(info);
	if (ret)
		return ckpt_err(ctx, ret, "%pD: cannot read its state", file);
	e.flags = sem ? EFD_SEMAPHORE : 0;
	return checkpoint_state_obj(ctx, file->private_data, &e, CKPT_HDR_EVENTFD, sizeof(e), h);
}

static long ckpt_eventfd_add(void *priv, unsigned long uaddr)
{
	struct file *file = priv;
	loff_t pos = 0;

	return file->f_op->write(file, (const char __user *)uaddr, sizeof(u64), &pos);
}

int restore_eventfd_obj(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_eventfd *e;
	struct file *file;
	u64 count;
	int ret;

	e = ckpt_next(ctx, CKPT_HDR_EVENTFD, sizeof(*e));
	if (IS_ERR(e))
		return PTR_ERR(e);
	if (e->h.len != sizeof(*e) || e->objref <= 0 || (e->flags & ~EFD_SEMAPHORE) ||
	    e->count == ULLONG_MAX)
		return ckpt_err(ctx, -EINVAL, "bad EVENTFD object");
	if (ckpt_obj_find_any(ctx, e->objref))
		return ckpt_err(ctx, -EINVAL, "eventfd %d defined twice", e->objref);
	file = ckpt_take_fd(do_eventfd(0, e->flags | EFD_CLOEXEC));
	if (IS_ERR(file))
		return ckpt_err(ctx, PTR_ERR(file), "cannot create an eventfd");
	/* a new counter is 0: this write(2) adds the saved one and never blocks */
	if (e->count) {
		count = e->count;
		ret = ckpt_user_call(ctx, &count, sizeof(count), ckpt_eventfd_add, file);
		if (ret != sizeof(count)) {
			fput(file);
			return ckpt_err(ctx, ret < 0 ? ret : -EIO,
					"cannot set an eventfd's counter");
		}
	}
	ret = ckpt_obj_add_file(ctx, e->objref, file);
	if (ret)
		fput(file);
	return ret;
}

const struct ckpt_file_ops ckpt_eventfd_ops = {
	.kind = CKPT_FILE_EVENTFD,
	.name = "eventfd",
	.match = ckpt_eventfd_match,
	.checkpoint = checkpoint_eventfd_file,
	.restore = restore_state_file,
};
