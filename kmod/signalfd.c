// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: signalfds, with the set of signals they read.
 *
 * The mask is read from the signalfd's fdinfo; restart makes a new one
 * with do_signalfd4() (kernel patch 0012).  The signals themselves are
 * the task's pending signals (signal.c).
 */

#include <linux/file.h>
#include <linux/fs.h>
#include <linux/signal.h>
#include <linux/signalfd.h>
#include <linux/slab.h>

#include "ckpt.h"

static bool ckpt_signalfd_match(struct file *file)
{
	return ckpt_anon_is(file, "[signalfd]");
}

static int checkpoint_signalfd_file(struct ckpt_ctx *ctx, struct file *file,
				    struct ckpt_hdr_file *h)
{
	struct ckpt_hdr_signalfd sfd = {};
	const char *line;
	char *info;
	int ret;

	info = ckpt_fdinfo(file, 128);
	line = info ? ckpt_fdinfo_line(info, "sigmask:") : NULL;
	ret = line && sscanf(line, "sigmask: %llx", &sfd.sigmask) == 1 ? 0 : -EIO;
	kvfree(info);
	if (ret)
		return ckpt_err(ctx, ret, "%pD: cannot read its mask", file);
	return checkpoint_state_obj(ctx, file->private_data, &sfd, CKPT_HDR_SIGNALFD, sizeof(sfd),
				    h);
}

int restore_signalfd_obj(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_signalfd *sfd;
	struct file *file;
	sigset_t mask;
	int ret;

	sfd = ckpt_next(ctx, CKPT_HDR_SIGNALFD, sizeof(*sfd));
	if (IS_ERR(sfd))
		return PTR_ERR(sfd);
	if (sfd->h.len != sizeof(*sfd) || sfd->objref <= 0)
		return ckpt_err(ctx, -EINVAL, "bad SIGNALFD object");
	if (ckpt_obj_find_any(ctx, sfd->objref))
		return ckpt_err(ctx, -EINVAL, "signalfd %d defined twice", sfd->objref);
	siginitset(&mask, sfd->sigmask);
	file = ckpt_take_fd(do_signalfd4(-1, &mask, SFD_CLOEXEC));
	if (IS_ERR(file))
		return ckpt_err(ctx, PTR_ERR(file), "cannot create a signalfd");
	ret = ckpt_obj_add_file(ctx, sfd->objref, file);
	if (ret)
		fput(file);
	return ret;
}

const struct ckpt_file_ops ckpt_signalfd_ops = {
	.kind = CKPT_FILE_SIGNALFD,
	.name = "signalfd",
	.match = ckpt_signalfd_match,
	.checkpoint = checkpoint_signalfd_file,
	.restore = restore_state_file,
};
