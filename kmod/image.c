// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: the image stream.  Objects out (checkpoint) and in
 * (restart), the header and trailer, and errors, which go to the log file
 * and, during a checkpoint, into the image as an ERROR object.
 *
 * Restart reads the whole image into memory, page data aside, and checks
 * its framing and checksum before anything of the restarting task is
 * changed: the image is untrusted, and a task half rebuilt from a bad one
 * could not go back.  Page data is read from the file when its task is
 * rebuilt (pages.c); the checksum does not cover it, any more than it
 * covers the files that file mappings map.
 */

#include <linux/fs.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/timekeeping.h>
#include <linux/utsname.h>
#include <asm/fpu/api.h>

#include "ckpt.h"

static const char * const ckpt_type_names[] = {
	[CKPT_HDR_HEADER] = "HEADER",
	[CKPT_HDR_TREE] = "TREE",
	[CKPT_HDR_TASK] = "TASK",
	[CKPT_HDR_FS] = "FS",
	[CKPT_HDR_FILE] = "FILE",
	[CKPT_HDR_FD] = "FD",
	[CKPT_HDR_MM] = "MM",
	[CKPT_HDR_VMA] = "VMA",
	[CKPT_HDR_CPU] = "CPU",
	[CKPT_HDR_FPU] = "FPU",
	[CKPT_HDR_PAGES] = "PAGES",
	[CKPT_HDR_SIGNAL] = "SIGNAL",
	[CKPT_HDR_SIGPENDING] = "SIGPENDING",
	[CKPT_HDR_CRED] = "CRED",
	[CKPT_HDR_RLIMITS] = "RLIMITS",
	[CKPT_HDR_PIPE] = "PIPE",
	[CKPT_HDR_ZOMBIE] = "ZOMBIE",
	[CKPT_HDR_THREAD] = "THREAD",
	[CKPT_HDR_SIGHAND] = "SIGHAND",
	[CKPT_HDR_SHMEM] = "SHMEM",
	[CKPT_HDR_DROP] = "DROP",
	[CKPT_HDR_DATA] = "DATA",
	[CKPT_HDR_SOCKET] = "SOCKET",
	[CKPT_HDR_SKB] = "SKB",
	[CKPT_HDR_EVENTFD] = "EVENTFD",
	[CKPT_HDR_TIMERFD] = "TIMERFD",
	[CKPT_HDR_SIGNALFD] = "SIGNALFD",
	[CKPT_HDR_EPOLL] = "EPOLL",
	[CKPT_HDR_INOTIFY] = "INOTIFY",
	[CKPT_HDR_INOTIFY_WATCH] = "INOTIFY_WATCH",
	[CKPT_HDR_MEMFD] = "MEMFD",
	[CKPT_HDR_GHOST] = "GHOST",
	[CKPT_HDR_LOCK] = "LOCK",
	[CKPT_HDR_TTY] = "TTY",
	[CKPT_HDR_CTTY] = "CTTY",
	[CKPT_HDR_PROCESS] = "PROCESS",
	[CKPT_HDR_ITIMERS] = "ITIMERS",
	[CKPT_HDR_POSIX_TIMER] = "POSIX_TIMER",
	[CKPT_HDR_SECCOMP] = "SECCOMP",
	[CKPT_HDR_UTS_NS] = "UTS_NS",
	[CKPT_HDR_IPC_NS] = "IPC_NS",
	[CKPT_HDR_SHM] = "SHM",
	[CKPT_HDR_MSG_QUEUE] = "MSG_QUEUE",
	[CKPT_HDR_MSG] = "MSG",
	[CKPT_HDR_SEM] = "SEM",
	[CKPT_HDR_SEM_UNDO] = "SEM_UNDO",
	[CKPT_HDR_CHAIN] = "CHAIN",
	[CKPT_HDR_INET] = "INET",
	[CKPT_HDR_DGRAM] = "DGRAM",
	[CKPT_HDR_ERROR] = "ERROR",
	[CKPT_HDR_TAIL] = "TAIL",
};

const char *ckpt_type_name(u32 type)
{
	if (type < ARRAY_SIZE(ckpt_type_names) && ckpt_type_names[type])
		return ckpt_type_names[type];
	return "unknown";
}

static __printf(2, 0) void ckpt_log(struct ckpt_ctx *ctx, const char *fmt, va_list ap)
{
	char buf[320];
	int len;

	len = scnprintf(buf, sizeof(buf), "crengine[%d]: ", task_pid_vnr(current));
	len += vscnprintf(buf + len, sizeof(buf) - len, fmt, ap);
	if (len && buf[len - 1] != '\n' && len < sizeof(buf) - 1)
		buf[len++] = '\n';
	pr_debug("%s", buf);
	if (ctx->log_held) {
		len = min_t(int, len, sizeof(ctx->held_log) - ctx->held_len);
		memcpy(ctx->held_log + ctx->held_len, buf, len);
		ctx->held_len += len;
	} else if (ctx->logfile) {
		kernel_write(ctx->logfile, buf, len, &ctx->logfile->f_pos);
	}
}

void ckpt_msg(struct ckpt_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ckpt_log(ctx, fmt, ap);
	va_end(ap);
}

/*
 * Report @err: to the log file, and during a checkpoint also into the image
 * as an ERROR object followed by the message (only the first error).
 * Returns @err so callers can "return ckpt_err(...)".
 */
static void ckpt_write_error(struct ckpt_ctx *ctx, int err, const char *msg)
{
	struct ckpt_hdr_error e = { .errno_value = err };

	ckpt_write_obj_str(ctx, &e, CKPT_HDR_ERROR, sizeof(e), msg);
}

int ckpt_err(struct ckpt_ctx *ctx, int err, const char *fmt, ...)
{
	char msg[sizeof(ctx->held_msg)];
	va_list ap;
	int len = 0;

	/* checkpoint: say which process and descriptor it is about */
	if (ctx->where[0])
		len = scnprintf(msg, sizeof(msg), "%s: ", ctx->where);
	va_start(ap, fmt);
	vscnprintf(msg + len, sizeof(msg) - len, fmt, ap);
	va_end(ap);
	ckpt_msg(ctx, "error %d: %s", err, msg);

	if (!ctx->restart && !ctx->error_written) {
		ctx->error_written = true;
		if (ctx->log_held) {
			ctx->held_error = true;
			ctx->held_errno = err;
			strscpy(ctx->held_msg, msg);
		} else {
			ckpt_write_error(ctx, err, msg);
		}
	}
	return err;
}

/*
 * Around a section under an mmap lock (any task's: lockdep sees one
 * class): ckpt_msg() and ckpt_err() keep what they would write to the log
 * and the image until ckpt_release_log().  Writing a pipe or a file takes
 * its locks, which others hold while they fault on user memory.
 */
void ckpt_hold_log(struct ckpt_ctx *ctx)
{
	ctx->log_held++;
}

void ckpt_release_log(struct ckpt_ctx *ctx)
{
	if (WARN_ON_ONCE(!ctx->log_held) || --ctx->log_held)
		return;
	if (ctx->held_len && ctx->logfile)
		kernel_write(ctx->logfile, ctx->held_log, ctx->held_len, &ctx->logfile->f_pos);
	ctx->held_len = 0;
	if (ctx->held_error) {
		ctx->held_error = false;
		ckpt_write_error(ctx, ctx->held_errno, ctx->held_msg);
	}
}

/* The image checksum: 64-bit FNV-style over little 8-byte words */
u64 ckpt_checksum(u64 sum, const void *buf, size_t len)
{
	const u64 *p = buf;
	size_t i;

	for (i = 0; i < len / 8; i++)
		sum = (sum ^ p[i]) * 0x100000001b3ULL;
	return sum;
}

#define CKPT_CHECKSUM_SEED 0xcbf29ce484222325ULL

/* Restart: a member of the group got on (the group's timeout counts idle time) */
void ckpt_progress(struct ckpt_ctx *ctx)
{
	if (ctx->progress)
		WRITE_ONCE(*ctx->progress, jiffies);
}

/* Write @len bytes (a multiple of 8) of the stream */
int ckpt_write(struct ckpt_ctx *ctx, const void *buf, size_t len)
{
	ssize_t n;

	if (ctx->tree && READ_ONCE(ctx->tree->killed))
		return -EINTR;	/* a held task was killed: the checkpoint ends */
	ctx->checksum = ckpt_checksum(ctx->checksum, buf, len);
	while (len) {
		n = kernel_write(ctx->file, buf, len, &ctx->file->f_pos);
		if (n < 0)
			return n;
		if (!n)
			return -EIO;
		buf += n;
		len -= n;
		ctx->bytes += n;
	}
	return 0;
}

/* One more object of @type in the stream, unless a fault is injected before it */
int ckpt_count_obj(struct ckpt_ctx *ctx, u32 type)
{
	int ret = 0;

	if (type == CKPT_HDR_PAGES)
		ret = ckpt_fault(ctx, CKPT_FAULT_DUMP_PAGES, ctx->nr_page_objs++);
	if (!ret && type != CKPT_HDR_ERROR)
		ret = ckpt_fault(ctx, CKPT_FAULT_DUMP_OBJECTS, ctx->nr_objects);
	if (!ret)
		ctx->nr_objects++;
	return ret;
}

/* Write the header of an object whose payload (unpadded) is @payload bytes */
int ckpt_write_hdr(struct ckpt_ctx *ctx, u32 type, u32 payload)
{
	struct ckpt_hdr h = {
		.type = type,
		.len = sizeof(h) + ALIGN(payload, 8),
	};

	return ckpt_count_obj(ctx, type) ?: ckpt_write(ctx, &h, sizeof(h));
}

/* Write a fixed-size object; @len includes the struct ckpt_hdr at @obj */
int ckpt_write_obj(struct ckpt_ctx *ctx, void *obj, u32 type, u32 len)
{
	struct ckpt_hdr *h = obj;

	h->type = type;
	h->len = len;
	return ckpt_count_obj(ctx, type) ?: ckpt_write(ctx, obj, len);
}

/* Write a fixed part followed by @blen bytes of @buf, padded to 8 */
int ckpt_write_obj_buf(struct ckpt_ctx *ctx, void *obj, u32 type, u32 len,
		       const void *buf, size_t blen)
{
	struct ckpt_hdr *h = obj;
	int ret;

	h->type = type;
	h->len = len + ALIGN(blen, 8);
	/* write the rest in 8-byte pieces so the checksum sees whole words */
	ret = ckpt_count_obj(ctx, type) ?: ckpt_write(ctx, obj, len);
	if (!ret && blen - (blen % 8))
		ret = ckpt_write(ctx, buf, blen - (blen % 8));
	if (!ret && blen % 8) {
		char last[8] = {};

		memcpy(last, buf + blen - (blen % 8), blen % 8);
		ret = ckpt_write(ctx, last, 8);
	}
	return ret;
}

/* Write a fixed part followed by a NUL-terminated string, padded to 8 */
int ckpt_write_obj_str(struct ckpt_ctx *ctx, void *obj, u32 type, u32 len,
		       const char *str)
{
	return ckpt_write_obj_buf(ctx, obj, type, len, str, strlen(str) + 1);
}

int checkpoint_header(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_header h = {};

	ctx->checksum = CKPT_CHECKSUM_SEED;
	h.magic = CKPT_MAGIC_HEAD;
	h.version = CKPT_IMAGE_VERSION;
	h.arch = CKPT_ARCH_X86_64;
	h.flags = ctx->flags;
	h.time = ktime_get_real_seconds();
	h.page_size = PAGE_SIZE;
	h.xstate_size = 0;	/* per FPU object */
	strscpy_pad(h.release, utsname()->release, sizeof(h.release));
	return ckpt_write_obj(ctx, &h, CKPT_HDR_HEADER, sizeof(h));
}

int checkpoint_tail(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_tail t = {};

	t.magic = CKPT_MAGIC_TAIL;
	t.nr_objects = ctx->nr_objects;
	t.checksum = ctx->checksum;
	return ckpt_write_obj(ctx, &t, CKPT_HDR_TAIL, sizeof(t));
}

/* Read exactly @len bytes at *@pos; a short stream is a truncated image */
static int ckpt_read(struct file *file, void *buf, size_t len, loff_t *pos)
{
	ssize_t n;

	while (len) {
		/* a signal to the task reading the image ends the whole restart */
		if (signal_pending(current))
			return -EINTR;
		n = kernel_read(file, buf, len, pos);
		if (n == -ERESTARTSYS)
			return -EINTR;
		if (n < 0)
			return n;
		if (!n)
			return -ENODATA;
		buf += n;
		len -= n;
	}
	return 0;
}

/*
 * How much of an object restart holds: all of it, but of a PAGES object
 * only what comes before its data.  @p is the start of the object.
 */
static int ckpt_obj_meta_len(struct ckpt_ctx *ctx, struct ckpt_hdr_pages *p, u64 index,
			     u32 *meta)
{
	struct ckpt_hdr *h = &p->h;
	u64 data;

	*meta = h->len;
	if (h->type != CKPT_HDR_PAGES && h->len > CKPT_OBJ_MAX)
		return ckpt_err(ctx, -EINVAL, "object %llu (type %u): bad length %u",
				index, h->type, h->len);
	if (h->type != CKPT_HDR_PAGES)
		return 0;
	data = h->len - p->data_off;
	if (h->len < sizeof(*p) || p->data_off < sizeof(*p) || p->data_off % 8 ||
	    p->data_off > CKPT_OBJ_MAX || p->data_off > h->len ||
	    p->nr_runs > (p->data_off - sizeof(*p)) / sizeof(struct ckpt_page_run) ||
	    data % PAGE_SIZE || data >> PAGE_SHIFT != p->nr_pages)
		return ckpt_err(ctx, -EINVAL, "object %llu (PAGES): bad layout", index);
	*meta = p->data_off;
	return 0;
}

/* Of a parent image, restart needs its header, its place in the chain and its pages */
static bool ckpt_keep_in_parent(u32 type)
{
	return type == CKPT_HDR_HEADER || type == CKPT_HDR_CHAIN || type == CKPT_HDR_PAGES;
}

/*
 * Read the image in @file into @objs: every object but the page data of
 * PAGES objects (its place in the file is noted instead), checking each
 * object's framing and, at the end, the trailer's magic, object count
 * and checksum (which covers everything but page data).  Of a @parent,
 * only what ckpt_keep_in_parent() says is held.
 */
static int ckpt_read_stream(struct ckpt_ctx *ctx, struct file *file, struct list_head *objs,
			    bool parent, u64 *nr_objects)
{
	u64 sum = CKPT_CHECKSUM_SEED;
	loff_t pos = file->f_pos;
	struct ckpt_hdr_pages first;
	int ret;

	if (!S_ISREG(file_inode(file)->i_mode))
		return ckpt_err(ctx, -EINVAL, "the image must be a regular file");
	for (*nr_objects = 0;; (*nr_objects)++) {
		struct ckpt_hdr *h = &first.h;
		struct ckpt_obj *obj;
		size_t got;
		u32 meta;

		/* the header, and the fixed part of a PAGES object if it is one */
		memset(&first, 0, sizeof(first));
		ret = ckpt_read(file, h, sizeof(*h), &pos);
		got = sizeof(*h);
		if (!ret && h->type == CKPT_HDR_PAGES && h->len >= sizeof(first)) {
			ret = ckpt_read(file, h + 1, sizeof(first) - sizeof(*h), &pos);
			got = sizeof(first);
		}
		if (ret == -ENODATA)
			return ckpt_err(ctx, -EINVAL,
					"image truncated after %llu objects (%lld bytes)",
					*nr_objects, pos);
		if (ret)
			return ckpt_err(ctx, ret, "reading the image failed");
		if (h->len < sizeof(*h) || h->len % 8)
			return ckpt_err(ctx, -EINVAL, "object %llu (type %u): bad length %u",
					*nr_objects, h->type, h->len);
		if (!strcmp(ckpt_type_name(h->type), "unknown"))
			return ckpt_err(ctx, -EINVAL, "object %llu: unknown type %u",
					*nr_objects, h->type);
		ret = ckpt_obj_meta_len(ctx, &first, *nr_objects, &meta);
		if (ret)
			return ret;
		if (*nr_objects >= CKPT_OBJECTS_MAX || ctx->meta_bytes + meta > CKPT_META_MAX)
			return ckpt_err(ctx, -EFBIG,
					"image too large: over %llu MiB of objects besides page data",
					CKPT_META_MAX >> 20);

		obj = kzalloc(sizeof(*obj), GFP_KERNEL_ACCOUNT);
		if (!obj)
			return -ENOMEM;
		obj->h = kvmalloc(max_t(size_t, meta, sizeof(first)), GFP_KERNEL_ACCOUNT);
		if (!obj->h) {
			kfree(obj);
			return -ENOMEM;
		}
		obj->index = *nr_objects;
		list_add_tail(&obj->list, objs);
		ctx->meta_bytes += meta;
		memcpy(obj->h, &first, got);
		ret = meta > got ? ckpt_read(file, (void *)obj->h + got, meta - got, &pos) : 0;
		if (ret == -ENODATA)
			return ckpt_err(ctx, -EINVAL, "image truncated in object %llu (%s)",
					*nr_objects, ckpt_type_name(h->type));
		if (ret)
			return ckpt_err(ctx, ret, "reading the image failed");
		if (h->type == CKPT_HDR_PAGES) {
			obj->data_pos = pos;
			pos += h->len - meta;	/* the data stays in the file */
			ret = restore_check_pages(ctx, obj);
			if (ret)
				return ret;
		}

		if (h->type == CKPT_HDR_TAIL) {
			struct ckpt_hdr_tail *t = (void *)obj->h;

			if (h->len != sizeof(*t) || t->magic != CKPT_MAGIC_TAIL)
				return ckpt_err(ctx, -EINVAL, "bad trailer");
			if (t->nr_objects != *nr_objects)
				return ckpt_err(ctx, -EINVAL,
						"trailer counts %llu objects, image has %llu",
						t->nr_objects, *nr_objects);
			if (t->checksum != sum)
				return ckpt_err(ctx, -EINVAL,
						"image checksum mismatch: it was changed or damaged");
			break;
		}
		if (h->type == CKPT_HDR_ERROR)
			return ckpt_err(ctx, -EINVAL,
					"image holds an ERROR object: its checkpoint failed");
		ckpt_progress(ctx);
		sum = ckpt_checksum(sum, obj->h, meta);
		if (parent && !ckpt_keep_in_parent(h->type)) {
			list_del(&obj->list);
			ctx->meta_bytes -= meta;
			kvfree(obj->h);
			kfree(obj);
		}
	}
	return 0;
}

/* The image restart was given, every object but the page data */
int ckpt_read_image(struct ckpt_ctx *ctx)
{
	int ret = ckpt_read_stream(ctx, ctx->file, &ctx->objs, false, &ctx->nr_objects);

	ctx->cur = list_first_entry_or_null(&ctx->objs, struct ckpt_obj, list);
	return ret;
}

/* A parent image of the chain: what is needed of it to find its pages */
int ckpt_read_parent(struct ckpt_ctx *ctx, struct ckpt_parent *p)
{
	u64 nr;

	return ckpt_read_stream(ctx, p->file, &p->objs, true, &nr);
}

void ckpt_free_objs(struct list_head *objs)
{
	struct ckpt_obj *obj, *tmp;

	list_for_each_entry_safe(obj, tmp, objs, list) {
		list_del(&obj->list);
		kvfree(obj->h);
		kfree(obj);
	}
}

u32 ckpt_peek(struct ckpt_ctx *ctx)
{
	return ctx->cur ? ctx->cur->h->type : 0;
}

/* Take the next object, which must be a @type of at least @min_len bytes */
void *ckpt_next(struct ckpt_ctx *ctx, u32 type, u32 min_len)
{
	struct ckpt_obj *obj = ctx->cur;

	if (!obj || obj->h->type != type) {
		ckpt_err(ctx, -EINVAL, "object %llu: expected %s, found %s",
			 obj ? obj->index : ctx->nr_objects, ckpt_type_name(type),
			 obj ? ckpt_type_name(obj->h->type) : "end");
		return ERR_PTR(-EINVAL);
	}
	if (obj->h->len < min_len) {
		ckpt_err(ctx, -EINVAL, "object %llu (%s): %u bytes, need %u",
			 obj->index, ckpt_type_name(type), obj->h->len, min_len);
		return ERR_PTR(-EINVAL);
	}
	if (list_is_last(&obj->list, &ctx->objs))
		ctx->cur = NULL;
	else
		ctx->cur = list_next_entry(obj, list);
	return obj->h;
}

/*
 * The string of @str_len bytes (NUL included) that ends @obj after its
 * @fixed bytes, or NULL if it does not fill the rest of the object or is
 * not terminated where it says.
 */
const char *ckpt_str(struct ckpt_ctx *ctx, void *obj, u32 fixed, u32 str_len)
{
	struct ckpt_hdr *h = obj;
	const char *s = obj + fixed;

	if (!str_len || str_len > PATH_MAX || h->len != fixed + ALIGN(str_len, 8) ||
	    s[str_len - 1] || strlen(s) != str_len - 1) {
		ckpt_err(ctx, -EINVAL, "%s object: bad string", ckpt_type_name(h->type));
		return NULL;
	}
	return s;
}

/* The header of an image this engine can restart from */
int ckpt_check_header(struct ckpt_ctx *ctx, struct ckpt_hdr_header *h)
{
	if (h->magic != CKPT_MAGIC_HEAD)
		return ckpt_err(ctx, -EINVAL, "not a checkpoint image (bad magic)");
	if (h->version != CKPT_IMAGE_VERSION)
		return ckpt_err(ctx, -EINVAL, "image version %u, this engine reads %u",
				h->version, CKPT_IMAGE_VERSION);
	if (h->arch != CKPT_ARCH_X86_64 || h->page_size != PAGE_SIZE)
		return ckpt_err(ctx, -EINVAL, "image is for another architecture");
	if (h->flags & ~CHECKPOINT_FLAGS_MASK)
		return ckpt_err(ctx, -EINVAL, "image flags %#llx are not checkpoint(2) flags",
				h->flags);
	if (!memchr(h->release, 0, sizeof(h->release)) || memchr_inv(h->pad, 0, sizeof(h->pad)))
		return ckpt_err(ctx, -EINVAL, "bad kernel release in header");
	return 0;
}

int restore_header(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_header *h;
	int ret;

	h = ckpt_next(ctx, CKPT_HDR_HEADER, sizeof(*h));
	if (IS_ERR(h))
		return PTR_ERR(h);
	ret = ckpt_check_header(ctx, h);
	if (ret)
		return ret;
	if (strcmp(h->release, utsname()->release))
		ckpt_msg(ctx, "note: image written by kernel %s, restarting on %s\n",
			 h->release, utsname()->release);
	ctx->hdr = h;
	return 0;
}
