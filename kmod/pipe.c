// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: pipes, with the bytes in flight.
 *
 * A pipe is saved once, as a PIPE object holding its data, when the first
 * of its ends is saved; each end is a FILE of kind CKPT_FILE_PIPE that
 * names it.  Reading the data copies the pipe buffers' pages without
 * consuming them, so a checkpoint that leaves the tasks running changes
 * nothing.  Restart makes a new pipe (create_pipe_files(), exported by
 * kernel patch 0007), writes the data back into it, and hands its ends to
 * every FILE that names it, in any task of the tree.
 *
 * A FIFO is a file reopened by path whose pipe is saved the same way: the
 * first of its ends to be reopened opens it for reading and writing (so no
 * later open blocks, and the pipe lives until the tree is rebuilt) and
 * takes the bytes over.  Packet-mode pipes (O_DIRECT) and pipes holding
 * more than a pipe of the default size holds are refused.
 */

#include <linux/file.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/magic.h>
#include <linux/pipe_fs_i.h>
#include <linux/slab.h>
#include <linux/uio.h>

#include "ckpt.h"

bool ckpt_is_pipe(struct file *file)
{
	struct inode *inode = file_inode(file);

	return S_ISFIFO(inode->i_mode) && inode->i_sb->s_magic == PIPEFS_MAGIC;
}

/* Copy what @pipe holds into @data; the number of bytes, or -E2BIG */
static long ckpt_pipe_peek(struct pipe_inode_info *pipe, char *data)
{
	unsigned int i, mask;
	long n = 0;

	pipe_lock(pipe);
	mask = pipe->ring_size - 1;
	for (i = pipe->tail; i != pipe->head; i++) {
		struct pipe_buffer *buf = &pipe->bufs[i & mask];
		void *src;

		if (n + buf->len > CKPT_PIPE_DATA_MAX) {
			n = -E2BIG;
			break;
		}
		src = kmap_local_page(buf->page);
		memcpy(data + n, src + buf->offset, buf->len);
		kunmap_local(src);
		n += buf->len;
	}
	pipe_unlock(pipe);
	return n;
}

/* Save the pipe behind @file once; *@objref is its id */
int checkpoint_pipe(struct ckpt_ctx *ctx, struct file *file, s32 *objref)
{
	struct pipe_inode_info *pipe = file->private_data;
	struct ckpt_hdr_pipe *h;
	long n;
	int ret;

	if (file->f_flags & O_DIRECT)
		return ckpt_err(ctx, -EOPNOTSUPP, "%pD: a packet-mode pipe is not supported", file);
	*objref = ckpt_obj_lookup(ctx, pipe);
	if (*objref)
		return 0;
	h = kvzalloc(sizeof(*h) + CKPT_PIPE_DATA_MAX, GFP_KERNEL);
	if (!h)
		return -ENOMEM;
	n = ckpt_pipe_peek(pipe, (char *)(h + 1));
	if (n < 0) {
		ret = ckpt_err(ctx, n, "%pD holds more than %d bytes: not supported",
			       file, CKPT_PIPE_DATA_MAX);
		goto out;
	}
	ret = ckpt_obj_add(ctx, pipe, CKPT_HDR_PIPE);
	if (ret < 0)
		goto out;
	*objref = ret;
	h->objref = ret;
	h->nr_bytes = n;
	ret = ckpt_write_obj(ctx, h, CKPT_HDR_PIPE, sizeof(*h) + ALIGN(n, 8));
out:
	kvfree(h);
	return ret;
}

int restore_pipe_obj(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_pipe *h;
	struct file *ends[2];
	loff_t pos = 0;
	ssize_t n;
	int ret;

	h = ckpt_next(ctx, CKPT_HDR_PIPE, sizeof(*h));
	if (IS_ERR(h))
		return PTR_ERR(h);
	if (h->objref <= 0 || h->nr_bytes > CKPT_PIPE_DATA_MAX ||
	    h->h.len != sizeof(*h) + ALIGN(h->nr_bytes, 8))
		return ckpt_err(ctx, -EINVAL, "bad PIPE object");
	if (ckpt_obj_file(ctx, h->objref))
		return ckpt_err(ctx, -EINVAL, "pipe id %d defined twice", h->objref);
	ret = create_pipe_files(ends, 0);
	if (ret)
		return ckpt_err(ctx, ret, "cannot create pipe %d", h->objref);
	if (h->nr_bytes) {
		/* a fresh pipe of the default size holds it all: this never blocks */
		n = kernel_write(ends[1], h + 1, h->nr_bytes, &pos);
		if (n != h->nr_bytes) {
			ret = ckpt_err(ctx, n < 0 ? n : -EIO, "cannot refill pipe %d", h->objref);
			goto err;
		}
	}
	ret = ckpt_obj_add_pipe(ctx, h->objref, ends[0], ends[1]);
	if (!ret)
		return 0;
err:
	fput(ends[0]);
	fput(ends[1]);
	return ret;
}

/* The first reopened end of a FIFO takes over the bytes restore_pipe_obj() saved aside */
int restore_fifo_data(struct ckpt_ctx *ctx, s32 objref, struct file *fifo)
{
	struct file *rd = ckpt_obj_pipe_end(ctx, objref, false);
	loff_t rpos = 0, wpos = 0;
	ssize_t n;
	char *buf;

	if (!rd || !ckpt_is_pipe(rd))
		return ckpt_err(ctx, -EINVAL, "FIFO: bad pipe id %d", objref);
	buf = kvmalloc(CKPT_PIPE_DATA_MAX, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	spin_lock(&rd->f_lock);
	rd->f_flags |= O_NONBLOCK;
	spin_unlock(&rd->f_lock);
	n = kernel_read(rd, buf, CKPT_PIPE_DATA_MAX, &rpos);
	if (n == -EAGAIN)
		n = 0;
	if (n > 0 && kernel_write(fifo, buf, n, &wpos) != n)
		n = -EIO;
	kvfree(buf);
	if (n < 0)
		return ckpt_err(ctx, n, "cannot refill FIFO %pD", fifo);
	ckpt_obj_pipe_replace(ctx, objref, fifo);
	return 0;
}
