/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * cr-lab checkpoint/restart engine: context, object hash, image objects.
 *
 * Naming, as in linux-cr: ckpt_* are generic helpers, checkpoint_* save
 * state into an image, restore_* rebuild it in the restarting task.
 */
#ifndef CRENGINE_CKPT_H
#define CRENGINE_CKPT_H

#include <linux/bits.h>
#include <linux/checkpoint.h>
#include <linux/hashtable.h>
#include <linux/list.h>
#include <linux/mm_types.h>
#include <linux/path.h>
#include <linux/sched.h>
#include <linux/signal.h>
#include <linux/types.h>

#include "ckpt_image.h"

/* Limits on what restart accepts from an image (it is untrusted input) */
#define CKPT_OBJ_MAX		(512 * 1024)	/* bytes in one object */
#define CKPT_IMAGE_MAX		BIT_ULL(30)	/* bytes in one image */
#define CKPT_OBJECTS_MAX	BIT(22)
#define CKPT_FDS_MAX		4096
#define CKPT_VMAS_MAX		65530
#define CKPT_PAGES_PER_OBJ	64
#define CKPT_TASKS_MAX		1024

struct ckpt_obj {
	struct list_head list;
	struct ckpt_hdr *h;	/* header and payload, h->len bytes */
	u64 index;		/* position in the stream */
};

/* One entry of the object hash: a shared kernel object and its image id */
struct ckpt_objref {
	struct hlist_node hash;
	const void *ptr;	/* checkpoint: the kernel object */
	s32 objref;
	u32 type;		/* CKPT_HDR_* of the object that defines it */
	struct file *file;	/* restart: the object, one reference held */
	struct file *file2;	/* restart: a pipe's write end (file: its read end) */
};

/* A VMA found in the image, validated before anything is changed */
struct ckpt_rvma {
	struct ckpt_hdr_vma *v;
	struct file *file;	/* not referenced: owned by the objhash */
};

struct ckpt_rfd {
	struct ckpt_hdr_fd *fd;
	struct file *file;	/* not referenced: owned by the objhash */
};

struct ckpt_ctx {
	bool restart;
	unsigned long flags;
	struct file *file;	/* the image */
	struct file *logfile;	/* NULL if logfd was -1 */
	u64 nr_objects;
	u64 checksum;
	u64 bytes;
	bool error_written;

	DECLARE_HASHTABLE(objhash, 8);
	s32 next_objref;

	/* restart: the whole image, read and checked before use */
	struct list_head objs;
	struct ckpt_obj *cur;

	/* restart: the parsed state of the restarting task */
	struct ckpt_hdr_header *hdr;
	struct ckpt_hdr_task *task;
	struct ckpt_hdr_fs *fs;
	struct path cwd;
	struct ckpt_rfd *fds;
	unsigned int nr_fds;
	struct ckpt_hdr_mm *mm;
	struct ckpt_rvma *vmas;
	unsigned int nr_vmas;
	struct ckpt_hdr_cpu *cpu;
	struct ckpt_hdr_fpu *fpu;
	struct ckpt_hdr_signal *signal;
	struct ckpt_hdr_sigpending *sigpending;
	struct ckpt_hdr_rlimits *rlimits;
	struct cred *new_cred;		/* committed at the end of restart */
	struct list_head *pages_first;	/* first CKPT_HDR_PAGES object */
	u64 nr_pages;
};

/* main.c: context, object hash */
void ckpt_ctx_reset_task(struct ckpt_ctx *ctx);
void ckpt_ctx_free(struct ckpt_ctx *ctx);
s32 ckpt_obj_lookup(struct ckpt_ctx *ctx, const void *ptr);
s32 ckpt_obj_add(struct ckpt_ctx *ctx, const void *ptr, u32 type);
int ckpt_obj_add_file(struct ckpt_ctx *ctx, s32 objref, struct file *file);
struct file *ckpt_obj_file(struct ckpt_ctx *ctx, s32 objref);
int ckpt_obj_add_pipe(struct ckpt_ctx *ctx, s32 objref, struct file *rd, struct file *wr);
struct file *ckpt_obj_pipe_end(struct ckpt_ctx *ctx, s32 objref, bool write);
void ckpt_obj_pipe_replace(struct ckpt_ctx *ctx, s32 objref, struct file *both);

/* image.c: log, errors, object I/O */
__printf(2, 3) void ckpt_msg(struct ckpt_ctx *ctx, const char *fmt, ...);
__printf(3, 4) int ckpt_err(struct ckpt_ctx *ctx, int err, const char *fmt, ...);
u64 ckpt_checksum(u64 sum, const void *buf, size_t len);
int ckpt_write(struct ckpt_ctx *ctx, const void *buf, size_t len);
int ckpt_write_obj(struct ckpt_ctx *ctx, void *obj, u32 type, u32 len);
int ckpt_write_obj_str(struct ckpt_ctx *ctx, void *obj, u32 type, u32 len,
		       const char *str);
int ckpt_write_hdr(struct ckpt_ctx *ctx, u32 type, u32 payload);
int checkpoint_header(struct ckpt_ctx *ctx);
int checkpoint_tail(struct ckpt_ctx *ctx);
int ckpt_read_image(struct ckpt_ctx *ctx);
void *ckpt_next(struct ckpt_ctx *ctx, u32 type, u32 min_len);
u32 ckpt_peek(struct ckpt_ctx *ctx);
const char *ckpt_str(struct ckpt_ctx *ctx, void *obj, u32 fixed, u32 str_len);
const char *ckpt_type_name(u32 type);
int restore_header(struct ckpt_ctx *ctx);

/* task.c */
long checkpoint_tree(struct ckpt_ctx *ctx, pid_t pid);
long restore_self(struct ckpt_ctx **ctxp, pid_t root);

/* files.c */
int checkpoint_fs(struct ckpt_ctx *ctx, struct task_struct *t);
int checkpoint_files(struct ckpt_ctx *ctx, struct task_struct *t);
int checkpoint_file_obj(struct ckpt_ctx *ctx, struct file *file, s32 *objref);
int restore_prepare_fs(struct ckpt_ctx *ctx);
int restore_prepare_files(struct ckpt_ctx *ctx);
int restore_file_obj(struct ckpt_ctx *ctx);
void restore_fs(struct ckpt_ctx *ctx);
int restore_files(struct ckpt_ctx *ctx);

/* memory.c */
int checkpoint_mm(struct ckpt_ctx *ctx, struct task_struct *t);
int restore_prepare_mm(struct ckpt_ctx *ctx);
int restore_mm(struct ckpt_ctx *ctx);

/* cpu.c */
int checkpoint_cpu(struct ckpt_ctx *ctx, struct task_struct *t);
int restore_prepare_cpu(struct ckpt_ctx *ctx);
int restore_cpu(struct ckpt_ctx *ctx, long *ax);

/* signal.c */
int checkpoint_signal(struct ckpt_ctx *ctx, struct task_struct *t);
int restore_prepare_signal(struct ckpt_ctx *ctx);
void restore_signal(struct ckpt_ctx *ctx);

/* pipe.c */
bool ckpt_is_pipe(struct file *file);
int checkpoint_pipe(struct ckpt_ctx *ctx, struct file *file, s32 *objref);
int restore_pipe_obj(struct ckpt_ctx *ctx);
int restore_fifo_data(struct ckpt_ctx *ctx, s32 objref, struct file *fifo);

/* cred.c */
int checkpoint_cred(struct ckpt_ctx *ctx, struct task_struct *t);
int restore_prepare_cred(struct ckpt_ctx *ctx);
void restore_cred(struct ckpt_ctx *ctx);

/* rlimit.c */
int checkpoint_rlimits(struct ckpt_ctx *ctx, struct task_struct *t);
int restore_prepare_rlimits(struct ckpt_ctx *ctx);
void restore_rlimits(struct ckpt_ctx *ctx);

#endif /* CRENGINE_CKPT_H */
