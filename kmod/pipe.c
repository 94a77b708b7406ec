// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: pipes and FIFOs, with their size and the bytes in flight.
 *
 * A pipe is saved once, as a PIPE object with its size (F_GETPIPE_SZ) and
 * then its data in DATA objects, when the first of its ends is saved; each
 * end is a FILE of kind CKPT_FILE_PIPE that names it.  Reading the data
 * copies the pipe buffers' pages without consuming them, so a checkpoint
 * that leaves the tasks running changes nothing.  Restart makes a new pipe
 * (create_pipe_files(), kernel patch 0007), gives it its size
 * (pipe_fcntl(), patch 0012) and writes the data back, then hands its ends
 * to every FILE that names it, in any task of the tree.
 *
 * A FIFO is a file reopened by path whose pipe is saved the same way: the
 * first of its ends to be reopened opens it for reading and writing as
 * well (so no later open blocks, and the pipe lives until the tree is
 * rebuilt), sizes it and writes the bytes into it.  Packet-mode pipes
 * (O_DIRECT) are refused.
 */

#include <linux/fcntl.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/magic.h>
#include <linux/pipe_fs_i.h>
#include <linux/slab.h>

#include "ckpt.h"

/* Restart: a FIFO's PIPE object, until the first of its ends is reopened */
struct ckpt_fifo {
	struct ckpt_hdr_pipe *h;
	struct ckpt_obj *data;	/* its first DATA object, or NULL */
};

bool ckpt_is_pipe(struct file *file)
{
	struct inode *inode = file_inode(file);

	return S_ISFIFO(inode->i_mode) && inode->i_sb->s_magic == PIPEFS_MAGIC &&
	       !(file->f_mode & FMODE_PATH);
}

static bool ckpt_fifo_match(struct file *file)
{
	return S_ISFIFO(file_inode(file)->i_mode) && !ckpt_is_pipe(file) &&
	       !(file->f_mode & FMODE_PATH) && !d_unlinked(file->f_path.dentry);
}

/* Copy what @pipe holds, at most @max bytes, into @data; the number of bytes */
static long ckpt_pipe_peek(struct pipe_inode_info *pipe, char *data, size_t max)
{
	unsigned int i, mask;
	long n = 0;

	pipe_lock(pipe);
	mask = pipe->ring_size - 1;
	for (i = pipe->tail; i != pipe->head; i++) {
		struct pipe_buffer *buf = &pipe->bufs[i & mask];
		void *src;

		if (n + buf->len > max) {
			n = -EAGAIN;
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
static int checkpoint_pipe(struct ckpt_ctx *ctx, struct file *file, s32 *objref)
{
	struct pipe_inode_info *pipe = file->private_data;
	struct ckpt_hdr_pipe h = {};
	size_t size, off;
	char *data;
	long n;
	int ret;

	if (file->f_flags & O_DIRECT)
		return ckpt_err(ctx, -EOPNOTSUPP, "%pD: a packet-mode pipe is not supported", file);
	if (!pipe)
		return ckpt_err(ctx, -EINVAL, "%pD: a FIFO without its pipe", file);
	*objref = ckpt_obj_lookup(ctx, pipe);
	if (*objref)
		return 0;
	size = (size_t)READ_ONCE(pipe->max_usage) * PAGE_SIZE;
	if (size > CKPT_PIPE_SIZE_MAX)
		return ckpt_err(ctx, -E2BIG, "%pD: a pipe of %zu bytes is too large", file, size);
	data = kvmalloc(size, GFP_KERNEL);
	if (!data)
		return -ENOMEM;
	n = ckpt_pipe_peek(pipe, data, size);
	if (n < 0) {
		ret = ckpt_err(ctx, n, "%pD changed while it was saved", file);
		goto out;
	}
	ret = ckpt_obj_add(ctx, pipe, CKPT_HDR_PIPE);
	if (ret < 0)
		goto out;
	*objref = ret;
	h.objref = ret;
	h.nr_bytes = n;
	h.size = size;
	h.fifo = !ckpt_is_pipe(file);
	ret = ckpt_write_obj(ctx, &h, CKPT_HDR_PIPE, sizeof(h));
	for (off = 0; !ret && off < n; off += CKPT_DATA_CHUNK)
		ret = checkpoint_data(ctx, h.objref, data + off,
				      min_t(size_t, n - off, CKPT_DATA_CHUNK), 0);
out:
	kvfree(data);
	return ret;
}

static int checkpoint_pipe_file(struct ckpt_ctx *ctx, struct file *file,
				struct ckpt_hdr_file *h)
{
	h->pos = 0;
	return checkpoint_pipe(ctx, file, &h->obj);
}

/* Write the DATA objects after the cursor into pipe (or FIFO) @wr of @h's size */
static int restore_pipe_data(struct ckpt_ctx *ctx, struct ckpt_hdr_pipe *h, struct file *wr)
{
	struct ckpt_hdr_data *d;
	u64 done = 0;
	long ret;

	if (pipe_fcntl(wr, F_GETPIPE_SZ, 0) != h->size) {
		ret = pipe_fcntl(wr, F_SETPIPE_SZ, h->size);
		if (ret < 0)
			return ckpt_err(ctx, ret, "cannot give pipe %d its size %u",
					h->objref, h->size);
	}
	/* the pipe holds it all, nobody reads it yet: no write may block */
	spin_lock(&wr->f_lock);
	wr->f_flags |= O_NONBLOCK;
	spin_unlock(&wr->f_lock);
	while ((d = restore_next_data(ctx, h->objref, h->nr_bytes))) {
		loff_t pos = 0;

		if (IS_ERR(d))
			return PTR_ERR(d);
		if (d->offset || d->len > h->nr_bytes - done)
			return ckpt_err(ctx, -EINVAL, "pipe %d: more data than it held", h->objref);
		ret = kernel_write(wr, d + 1, d->len, &pos);
		if (ret != d->len)
			return ckpt_err(ctx, ret < 0 ? ret : -EIO, "cannot refill pipe %d",
					h->objref);
		done += d->len;
	}
	if (done != h->nr_bytes)
		return ckpt_err(ctx, -EINVAL, "pipe %d: %llu of %u bytes", h->objref, done,
				h->nr_bytes);
	return 0;
}

int restore_pipe_obj(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_pipe *h;
	struct ckpt_fifo *fifo;
	struct ckpt_hdr_data *d;
	struct file *ends[2];
	u64 done = 0;
	int ret;

	h = ckpt_next(ctx, CKPT_HDR_PIPE, sizeof(*h));
	if (IS_ERR(h))
		return PTR_ERR(h);
	if (h->h.len != sizeof(*h) || h->objref <= 0 || h->nr_bytes > h->size ||
	    h->size < PAGE_SIZE || h->size > CKPT_PIPE_SIZE_MAX || h->fifo > 1)
		return ckpt_err(ctx, -EINVAL, "bad PIPE object");
	if (ckpt_obj_find_any(ctx, h->objref))
		return ckpt_err(ctx, -EINVAL, "pipe id %d defined twice", h->objref);
	if (!h->fifo) {
		ret = create_pipe_files(ends, 0);
		if (ret)
			return ckpt_err(ctx, ret, "cannot create pipe %d", h->objref);
		ret = restore_pipe_data(ctx, h, ends[1]);
		if (!ret)
			ret = ckpt_obj_add_pipe(ctx, h->objref, ends[0], ends[1]);
		if (ret) {
			fput(ends[0]);
			fput(ends[1]);
		}
		return ret;
	}
	/* a FIFO's pipe is filled when its first end is reopened: check the data now */
	fifo = kzalloc(sizeof(*fifo), GFP_KERNEL);
	if (!fifo)
		return -ENOMEM;
	fifo->h = h;
	fifo->data = ctx->cur;
	while ((d = restore_next_data(ctx, h->objref, h->nr_bytes)) && !IS_ERR(d))
		done += d->len;
	ret = IS_ERR(d) ? PTR_ERR(d) : 0;
	if (!ret && done != h->nr_bytes)
		ret = ckpt_err(ctx, -EINVAL, "FIFO %d: %llu of %u bytes", h->objref, done,
			       h->nr_bytes);
	if (!ret)
		ret = ckpt_obj_add_priv(ctx, h->objref, CKPT_HDR_PIPE, fifo);
	if (ret)
		kfree(fifo);
	return ret;
}

/* A pipe end: the end of the (already restored) pipe its access mode says */
static struct file *restore_pipe_file(struct ckpt_ctx *ctx, struct ckpt_hdr_file *h,
				      const char *path)
{
	unsigned int acc = h->f_flags & O_ACCMODE;
	struct file *end;

	if (acc == O_RDWR)
		return ERR_PTR(ckpt_err(ctx, -EINVAL, "FILE %d: a pipe end is read or write only",
					h->objref));
	end = ckpt_obj_pipe_end(ctx, h->obj, acc == O_WRONLY);
	if (!end)
		return ERR_PTR(ckpt_err(ctx, -EINVAL, "FILE %d: unknown pipe %d", h->objref,
					h->obj));
	return get_file(end);
}

static int checkpoint_fifo_file(struct ckpt_ctx *ctx, struct file *file,
				struct ckpt_hdr_file *h)
{
	h->pos = 0;
	return checkpoint_pipe(ctx, file, &h->obj);
}

/* The first reopened end of a FIFO gives it its size and its bytes */
static int restore_fifo_fill(struct ckpt_ctx *ctx, struct ckpt_objref *o, const char *path)
{
	struct ckpt_fifo *fifo = o->priv;
	struct ckpt_obj *cur = ctx->cur;
	struct file *both;
	int ret;

	both = ckpt_open_path(path, O_RDWR);
	if (IS_ERR(both))
		return ckpt_err(ctx, PTR_ERR(both), "cannot reopen %s", path);
	if (!S_ISFIFO(file_inode(both)->i_mode) || ckpt_is_pipe(both)) {
		fput(both);
		return ckpt_err(ctx, -EINVAL, "%s is no longer a FIFO", path);
	}
	ctx->cur = fifo->data;
	ret = restore_pipe_data(ctx, fifo->h, both);
	ctx->cur = cur;
	if (ret) {
		fput(both);
		return ret;
	}
	o->file = both;
	return 0;
}

/* A FIFO end: reopened by path, once its pipe holds the saved bytes */
static struct file *restore_fifo_file(struct ckpt_ctx *ctx, struct ckpt_hdr_file *h,
				      const char *path)
{
	struct ckpt_objref *o = ckpt_obj_find_any(ctx, h->obj);
	struct file *file;

	if (!o || o->type != CKPT_HDR_PIPE || !o->priv || path[0] != '/')
		return ERR_PTR(ckpt_err(ctx, -EINVAL, "FILE %d: unknown FIFO %d", h->objref,
					h->obj));
	if (!o->file) {
		int ret = restore_fifo_fill(ctx, o, path);

		if (ret)
			return ERR_PTR(ret);
	}
	file = ckpt_open_path(path, h->f_flags & (O_ACCMODE | O_LARGEFILE));
	if (IS_ERR(file))
		return ERR_PTR(ckpt_err(ctx, PTR_ERR(file), "cannot reopen %s", path));
	if (file_inode(file) != file_inode(o->file)) {
		fput(file);
		return ERR_PTR(ckpt_err(ctx, -EINVAL, "%s changed while it was reopened", path));
	}
	return file;
}

const struct ckpt_file_ops ckpt_pipe_ops = {
	.kind = CKPT_FILE_PIPE,
	.name = "pipe",
	.match = ckpt_is_pipe,
	.checkpoint = checkpoint_pipe_file,
	.restore = restore_pipe_file,
};

const struct ckpt_file_ops ckpt_fifo_ops = {
	.kind = CKPT_FILE_FIFO,
	.name = "FIFO",
	.match = ckpt_fifo_match,
	.checkpoint = checkpoint_fifo_file,
	.restore = restore_fifo_file,
};
