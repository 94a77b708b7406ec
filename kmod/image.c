// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: the image stream.  Objects out (checkpoint) and in
 * (restart), the header and trailer, and errors, which go to the log file
 * and, during a checkpoint, into the image as an ERROR object.
 *
 * Restart reads the whole image into memory and checks its framing and
 * checksum before anything of the restarting task is changed: the image is
 * untrusted, and a task half rebuilt from a bad one could not go back.
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

static void ckpt_log(struct ckpt_ctx *ctx, const char *fmt, va_list ap)
{
	char buf[320];
	int len;

	len = scnprintf(buf, sizeof(buf), "crengine[%d]: ", task_pid_vnr(current));
	len += vscnprintf(buf + len, sizeof(buf) - len, fmt, ap);
	if (len && buf[len - 1] != '\n' && len < sizeof(buf) - 1)
		buf[len++] = '\n';
	pr_debug("%s", buf);
	if (ctx->logfile)
		kernel_write(ctx->logfile, buf, len, &ctx->logfile->f_pos);
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
int ckpt_err(struct ckpt_ctx *ctx, int err, const char *fmt, ...)
{
	struct ckpt_hdr_error e = {};
	char msg[240];
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
		e.errno_value = err;
		ckpt_write_obj_str(ctx, &e, CKPT_HDR_ERROR, sizeof(e), msg);
	}
	return err;
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

/* Write @len bytes (a multiple of 8) of the stream */
int ckpt_write(struct ckpt_ctx *ctx, const void *buf, size_t len)
{
	ssize_t n;

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

/* Write the header of an object whose payload (unpadded) is @payload bytes */
int ckpt_write_hdr(struct ckpt_ctx *ctx, u32 type, u32 payload)
{
	struct ckpt_hdr h = {
		.type = type,
		.len = sizeof(h) + ALIGN(payload, 8),
	};

	ctx->nr_objects++;
	return ckpt_write(ctx, &h, sizeof(h));
}

/* Write a fixed-size object; @len includes the struct ckpt_hdr at @obj */
int ckpt_write_obj(struct ckpt_ctx *ctx, void *obj, u32 type, u32 len)
{
	struct ckpt_hdr *h = obj;

	h->type = type;
	h->len = len;
	ctx->nr_objects++;
	return ckpt_write(ctx, obj, len);
}

/* Write a fixed part followed by @blen bytes of @buf, padded to 8 */
int ckpt_write_obj_buf(struct ckpt_ctx *ctx, void *obj, u32 type, u32 len,
		       const void *buf, size_t blen)
{
	struct ckpt_hdr *h = obj;
	int ret;

	h->type = type;
	h->len = len + ALIGN(blen, 8);
	ctx->nr_objects++;
	/* write the rest in 8-byte pieces so the checksum sees whole words */
	ret = ckpt_write(ctx, obj, len);
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

/* Read exactly @len bytes; a short stream is a truncated image */
static int ckpt_read(struct ckpt_ctx *ctx, void *buf, size_t len)
{
	ssize_t n;

	while (len) {
		if (fatal_signal_pending(current))
			return -EINTR;
		n = kernel_read(ctx->file, buf, len, &ctx->file->f_pos);
		if (n < 0)
			return n;
		if (!n)
			return -ENODATA;
		buf += n;
		len -= n;
		ctx->bytes += n;
	}
	return 0;
}

/*
 * Read the whole image into ctx->objs, checking each object's framing and,
 * at the end, the trailer's magic, object count and checksum.
 */
int ckpt_read_image(struct ckpt_ctx *ctx)
{
	u64 sum = CKPT_CHECKSUM_SEED;
	struct ckpt_hdr h;
	int ret;

	for (;;) {
		struct ckpt_obj *obj;

		ret = ckpt_read(ctx, &h, sizeof(h));
		if (ret == -ENODATA)
			return ckpt_err(ctx, -EINVAL,
					"image truncated after %llu objects (%llu bytes)",
					ctx->nr_objects, ctx->bytes);
		if (ret)
			return ckpt_err(ctx, ret, "reading the image failed");
		if (h.len < sizeof(h) || h.len % 8 || h.len > CKPT_OBJ_MAX)
			return ckpt_err(ctx, -EINVAL, "object %llu (type %u): bad length %u",
					ctx->nr_objects, h.type, h.len);
		if (!strcmp(ckpt_type_name(h.type), "unknown"))
			return ckpt_err(ctx, -EINVAL, "object %llu: unknown type %u",
					ctx->nr_objects, h.type);
		if (ctx->bytes + h.len > CKPT_IMAGE_MAX ||
		    ctx->nr_objects >= CKPT_OBJECTS_MAX)
			return ckpt_err(ctx, -EFBIG, "image too large");

		obj = kzalloc(sizeof(*obj), GFP_KERNEL_ACCOUNT);
		if (!obj)
			return -ENOMEM;
		obj->h = kvmalloc(h.len, GFP_KERNEL_ACCOUNT);
		if (!obj->h) {
			kfree(obj);
			return -ENOMEM;
		}
		obj->index = ctx->nr_objects;
		list_add_tail(&obj->list, &ctx->objs);
		*obj->h = h;
		ret = ckpt_read(ctx, obj->h + 1, h.len - sizeof(h));
		if (ret == -ENODATA)
			return ckpt_err(ctx, -EINVAL, "image truncated in object %llu (%s)",
					ctx->nr_objects, ckpt_type_name(h.type));
		if (ret)
			return ckpt_err(ctx, ret, "reading the image failed");

		if (h.type == CKPT_HDR_TAIL) {
			struct ckpt_hdr_tail *t = (void *)obj->h;

			if (h.len != sizeof(*t) || t->magic != CKPT_MAGIC_TAIL)
				return ckpt_err(ctx, -EINVAL, "bad trailer");
			if (t->nr_objects != ctx->nr_objects)
				return ckpt_err(ctx, -EINVAL, "trailer counts %llu objects, image has %llu",
						t->nr_objects, ctx->nr_objects);
			if (t->checksum != sum)
				return ckpt_err(ctx, -EINVAL, "image checksum mismatch: it was changed or damaged");
			break;
		}
		if (h.type == CKPT_HDR_ERROR)
			return ckpt_err(ctx, -EINVAL, "image holds an ERROR object: its checkpoint failed");
		sum = ckpt_checksum(sum, obj->h, h.len);
		ctx->nr_objects++;
	}
	ctx->cur = list_first_entry_or_null(&ctx->objs, struct ckpt_obj, list);
	return 0;
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

int restore_header(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_header *h;

	h = ckpt_next(ctx, CKPT_HDR_HEADER, sizeof(*h));
	if (IS_ERR(h))
		return PTR_ERR(h);
	if (h->magic != CKPT_MAGIC_HEAD)
		return ckpt_err(ctx, -EINVAL, "not a checkpoint image (bad magic)");
	if (h->version != CKPT_IMAGE_VERSION)
		return ckpt_err(ctx, -EINVAL, "image version %u, this engine reads %u",
				h->version, CKPT_IMAGE_VERSION);
	if (h->arch != CKPT_ARCH_X86_64 || h->page_size != PAGE_SIZE)
		return ckpt_err(ctx, -EINVAL, "image is for another architecture");
	if (!memchr(h->release, 0, sizeof(h->release)))
		return ckpt_err(ctx, -EINVAL, "bad kernel release in header");
	if (strcmp(h->release, utsname()->release))
		ckpt_msg(ctx, "note: image written by kernel %s, restarting on %s\n",
			 h->release, utsname()->release);
	ctx->hdr = h;
	return 0;
}
