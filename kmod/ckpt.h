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
#include <linux/refcount.h>
#include <linux/sched.h>
#include <linux/signal.h>
#include <linux/types.h>
#include <linux/wait.h>

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
	void *priv;		/* restart: a kind's own bookkeeping, kfree()d with it */
	u32 f_flags;		/* restart: a FILE's saved flags */
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

/* A POSIX lock to take once the task's descriptors are in place */
struct ckpt_rlock {
	struct ckpt_hdr_lock *l;
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
	bool self;		/* checkpoint: the caller checkpoints itself */

	DECLARE_HASHTABLE(objhash, 8);
	s32 next_objref;

	/* checkpoint: the tasks, and what is being saved ("pid 81 fd 5"), for errors */
	struct ckpt_tree *tree;
	char where[64];

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
	struct ckpt_rlock *locks;
	unsigned int nr_locks;
	struct ckpt_hdr_ctty *ctty;
	struct ckpt_hdr_mm *mm;
	struct ckpt_rvma *vmas;
	unsigned int nr_vmas;
	struct ckpt_hdr_cpu *cpu;
	struct ckpt_hdr_fpu *fpu;
	struct ckpt_hdr_signal *signal;
	struct ckpt_hdr_sigpending *sigpending;
	struct ckpt_hdr_rlimits *rlimits;
	struct ckpt_hdr_process *process;
	struct file *exe;		/* referenced */
	struct ckpt_hdr_itimers *itimers;
	struct list_head *posix_timers_first;	/* first CKPT_HDR_POSIX_TIMER object */
	unsigned int nr_posix_timers;
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
struct ckpt_objref *ckpt_obj_find(struct ckpt_ctx *ctx, s32 objref);
struct ckpt_objref *ckpt_obj_find_any(struct ckpt_ctx *ctx, s32 objref);
int ckpt_obj_add_priv(struct ckpt_ctx *ctx, s32 objref, u32 type, void *priv);

/* image.c: log, errors, object I/O */
__printf(2, 3) void ckpt_msg(struct ckpt_ctx *ctx, const char *fmt, ...);
__printf(3, 4) int ckpt_err(struct ckpt_ctx *ctx, int err, const char *fmt, ...);
u64 ckpt_checksum(u64 sum, const void *buf, size_t len);
int ckpt_write(struct ckpt_ctx *ctx, const void *buf, size_t len);
int ckpt_write_obj(struct ckpt_ctx *ctx, void *obj, u32 type, u32 len);
int ckpt_write_obj_buf(struct ckpt_ctx *ctx, void *obj, u32 type, u32 len,
		       const void *buf, size_t blen);
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

/* The tasks of one checkpoint: the root first, every parent before its children */
struct ckpt_tree {
	struct task_struct *tasks[CKPT_TASKS_MAX];
	u32 nr;
	u32 frozen;		/* the first frozen tasks hold a freeze, zombies excepted */
	bool zombie[CKPT_TASKS_MAX];
};

/*
 * A restart group: the tasks of one image restarting together (group.c).
 * The first to arrive reads and checks the image once; then the tasks
 * rebuild themselves one at a time in tree order.
 */
struct ckpt_group {
	struct list_head list;
	struct pid *root;	/* with the image, names the group */
	struct inode *image;
	refcount_t users;
	wait_queue_head_t wq;
	struct ckpt_ctx *ctx;	/* the image and its objects, shared */
	struct ckpt_pids *pids;	/* the tree, in image order */
	struct ckpt_obj **parts;	/* each task's TASK object */
	u32 nr_tasks;
	u32 done;		/* tasks rebuilt, in tree order */
	bool ready;		/* image read and checked */
	int error;
};

/* A zombie is saved as it is: it cannot freeze, and it only ends again */
static inline bool ckpt_zombie(struct task_struct *t)
{
	return READ_ONCE(t->exit_state) == EXIT_ZOMBIE;
}

/* syscall.c: system calls replayed by the restarting task, on itself */
long ckpt_syscall_args(unsigned int nr, const unsigned long *args);
#define ckpt_syscall(nr, ...) \
	ckpt_syscall_args(nr, (const unsigned long[6]) { __VA_ARGS__ })
void __user *ckpt_scratch_map(struct ckpt_ctx *ctx);
void ckpt_scratch_unmap(void __user *scratch);
void __user *ckpt_stage(void __user *scratch, size_t off, const void *buf, size_t len);

/* freeze.c: the checkpoint hold on the whole tree */
#define CKPT_FREEZE_TIMEOUT_MS 5000
int ckpt_freeze_tree(struct ckpt_ctx *ctx, struct ckpt_tree *tree);
void ckpt_thaw_tree(struct ckpt_tree *tree);
int ckpt_hold_restarted(struct pid *root);
long restore_thaw(pid_t root);
void ckpt_thaw_all_held(void);

/* tree.c: the tree walk, permission checks, the TREE object */
long checkpoint_tree(struct ckpt_ctx *ctx, pid_t pid);
int checkpoint_may(struct ckpt_ctx *ctx, struct task_struct *t);
int ckpt_tree_add_children(struct ckpt_ctx *ctx, struct ckpt_tree *tree);
int restore_tree(struct ckpt_ctx *ctx, struct ckpt_group *g);

/* group.c: the restart group */
long restore_self(struct ckpt_ctx **ctxp, pid_t root);

/* task.c: the TASK object, each task's parts in their order */
int checkpoint_task(struct ckpt_ctx *ctx, struct task_struct *t);
int restore_prepare_task(struct ckpt_ctx *ctx, struct ckpt_group *g, u32 idx);
int restore_commit_task(struct ckpt_ctx *ctx, long *ax);

/*
 * files.c: the fd table, cwd and umask, and what every kind of open file
 * shares.  Each kind lives in its own file and plugs in with one of these.
 */
struct ckpt_file_ops {
	u32 kind;		/* enum ckpt_file_kind */
	const char *name;	/* for messages: "eventfd", "unix socket", ... */
	bool (*match)(struct file *file);
	/*
	 * Checkpoint: write what @file's state needs before its FILE object
	 * (defined once for files that share it) and fill in @h (h->obj).
	 */
	int (*checkpoint)(struct ckpt_ctx *ctx, struct file *file,
			  struct ckpt_hdr_file *h);
	/* Restart: a new reference to the file the FILE object @h describes */
	struct file *(*restore)(struct ckpt_ctx *ctx, struct ckpt_hdr_file *h,
				const char *path);
};

/* A state object that FILE objects refer to, and how restart reads it */
struct ckpt_obj_ops {
	u32 type;		/* CKPT_HDR_* */
	int (*restore)(struct ckpt_ctx *ctx);
};

int checkpoint_fs(struct ckpt_ctx *ctx, struct task_struct *t);
int checkpoint_files(struct ckpt_ctx *ctx, struct task_struct *t);
int checkpoint_file_obj(struct ckpt_ctx *ctx, struct file *file, s32 *objref);
struct file *ckpt_task_next_file(struct task_struct *t, unsigned int *fd);
bool ckpt_tree_has_file(struct ckpt_ctx *ctx, bool (*match)(struct file *, const void *),
			const void *arg);
int checkpoint_state_obj(struct ckpt_ctx *ctx, const void *key, void *obj, u32 type, u32 len,
			 struct ckpt_hdr_file *h);
struct task_struct *ckpt_tree_task(struct ckpt_ctx *ctx, pid_t pid);
char *ckpt_fdinfo(struct file *file, size_t size);
const char *ckpt_fdinfo_line(const char *text, const char *key);
bool ckpt_anon_is(struct file *file, const char *name);
struct file *ckpt_take_fd(int fd);
struct file *restore_state_file(struct ckpt_ctx *ctx, struct ckpt_hdr_file *h,
				const char *path);
long ckpt_user_call(struct ckpt_ctx *ctx, void *arg, size_t len,
		    long (*fn)(void *priv, unsigned long uaddr), void *priv);
long ckpt_user_ioctl(struct ckpt_ctx *ctx, struct file *file, unsigned int cmd, void *arg,
		     size_t len);
int checkpoint_data(struct ckpt_ctx *ctx, s32 objref, const void *buf, u32 len, u64 offset);
int checkpoint_file_data(struct ckpt_ctx *ctx, s32 objref, struct file *file, u64 size);
struct ckpt_hdr_data *restore_next_data(struct ckpt_ctx *ctx, s32 objref, u64 limit);
int restore_file_data(struct ckpt_ctx *ctx, s32 objref, struct file *file, u64 size);
void ckpt_set_status_flags(struct file *file, u32 flags);
int ckpt_chown(struct ckpt_ctx *ctx, const struct path *path, u32 uid, u32 gid);
int ckpt_unlink(struct ckpt_ctx *ctx, const struct path *path);
int restore_prepare_fs(struct ckpt_ctx *ctx);
int restore_prepare_files(struct ckpt_ctx *ctx);
int restore_file_obj(struct ckpt_ctx *ctx);
bool ckpt_is_file_part(u32 type);
int restore_file_objs(struct ckpt_ctx *ctx);
void restore_fs(struct ckpt_ctx *ctx);
int restore_files(struct ckpt_ctx *ctx);

/* unlinked.c: regular files unlinked while open, and a deleted working directory */
extern const struct ckpt_file_ops ckpt_unlinked_ops;
char *ckpt_deleted_path(const struct path *p, char *buf);
int restore_ghost_obj(struct ckpt_ctx *ctx);
int restore_deleted_cwd(struct ckpt_ctx *ctx, const char *path, u32 mode, u32 uid, u32 gid,
			struct path *cwd);

/* memfd.c */
extern const struct ckpt_file_ops ckpt_memfd_ops;
int restore_memfd_obj(struct ckpt_ctx *ctx);

/* eventfd.c, timerfd.c, signalfd.c, eventpoll.c, inotify.c */
extern const struct ckpt_file_ops ckpt_eventfd_ops;
int restore_eventfd_obj(struct ckpt_ctx *ctx);
extern const struct ckpt_file_ops ckpt_timerfd_ops;
int restore_timerfd_obj(struct ckpt_ctx *ctx);
extern const struct ckpt_file_ops ckpt_signalfd_ops;
int restore_signalfd_obj(struct ckpt_ctx *ctx);
extern const struct ckpt_file_ops ckpt_epoll_ops;
int restore_epoll_obj(struct ckpt_ctx *ctx);
extern const struct ckpt_file_ops ckpt_inotify_ops;
int restore_inotify_obj(struct ckpt_ctx *ctx);

/* unix.c: unix sockets */
extern const struct ckpt_file_ops ckpt_unix_ops;
bool ckpt_unix_outside(struct ckpt_ctx *ctx, struct file *file);
int restore_socket_obj(struct ckpt_ctx *ctx);
const char *ckpt_socket_family(struct file *file);

/* locks.c: POSIX, OFD and flock locks */
int checkpoint_file_locks(struct ckpt_ctx *ctx, struct file *file, s32 objref);
int checkpoint_posix_locks(struct ckpt_ctx *ctx, struct task_struct *t);
int restore_lock_obj(struct ckpt_ctx *ctx);
int restore_posix_locks(struct ckpt_ctx *ctx);

/* tty.c: pseudo-terminals, the controlling terminal, a shell job's terminal */
extern const struct ckpt_file_ops ckpt_tty_ops;
extern const struct ckpt_file_ops ckpt_ctty_ops;
int checkpoint_ctty(struct ckpt_ctx *ctx, struct task_struct *t);
int restore_tty_obj(struct ckpt_ctx *ctx);
int restore_prepare_ctty(struct ckpt_ctx *ctx);

/* A VMA as checkpoint found it, with the mmap lock held */
struct ckpt_vma_desc {
	unsigned long start, end, pgoff, flags;
	u32 kind;
	bool anon;		/* has anonymous pages (anon_vma) */
	struct file *file;	/* referenced */
};

/* mm.c: the mm's bookkeeping (code, data, brk, stack, arguments, auxv, vDSO) */
int checkpoint_mm(struct ckpt_ctx *ctx, struct task_struct *t);
int restore_prepare_mm(struct ckpt_ctx *ctx);
int restore_mm(struct ckpt_ctx *ctx);

/* vma.c: the mappings */
int ckpt_collect_vmas(struct ckpt_ctx *ctx, struct mm_struct *mm, u64 vvar, u64 vdso_end,
		      struct ckpt_vma_desc **descs, unsigned int *nr);
void ckpt_free_vmas(struct ckpt_vma_desc *descs, unsigned int nr);
int checkpoint_vmas(struct ckpt_ctx *ctx, struct ckpt_vma_desc *descs, unsigned int nr);
int restore_prepare_vmas(struct ckpt_ctx *ctx, u64 vdso_lo, u64 vdso_hi);
struct ckpt_rvma *ckpt_find_vma(struct ckpt_ctx *ctx, u64 addr);
int restore_vmas(struct ckpt_ctx *ctx);

/* pages.c: page contents */
int checkpoint_pages(struct ckpt_ctx *ctx, struct task_struct *t, struct mm_struct *mm,
		     struct ckpt_vma_desc *descs, unsigned int nr);
int restore_prepare_pages(struct ckpt_ctx *ctx);
int restore_pages(struct ckpt_ctx *ctx);

/* cpu.c */
int checkpoint_cpu(struct ckpt_ctx *ctx, struct task_struct *t);
int restore_prepare_cpu(struct ckpt_ctx *ctx);
int restore_cpu(struct ckpt_ctx *ctx, long *ax);

/* signal.c */
int checkpoint_signal(struct ckpt_ctx *ctx, struct task_struct *t);
int restore_prepare_signal(struct ckpt_ctx *ctx);
void restore_signal(struct ckpt_ctx *ctx);

/* pipe.c: pipes and FIFOs */
extern const struct ckpt_file_ops ckpt_pipe_ops;
extern const struct ckpt_file_ops ckpt_fifo_ops;
bool ckpt_is_pipe(struct file *file);
int restore_pipe_obj(struct ckpt_ctx *ctx);

/* process.c: prctl(2) and sched_setattr(2) state, the executable, a job-control stop */
int checkpoint_process(struct ckpt_ctx *ctx, struct task_struct *t);
int restore_prepare_process(struct ckpt_ctx *ctx);
int restore_process(struct ckpt_ctx *ctx);
void restore_process_late(struct ckpt_ctx *ctx);

/* timer.c: interval timers and POSIX timers */
int checkpoint_timers(struct ckpt_ctx *ctx, struct task_struct *t);
int restore_prepare_timers(struct ckpt_ctx *ctx);
int restore_timers(struct ckpt_ctx *ctx);

/* cred.c */
int checkpoint_cred(struct ckpt_ctx *ctx, struct task_struct *t);
int restore_prepare_cred(struct ckpt_ctx *ctx);
void restore_cred(struct ckpt_ctx *ctx);
bool ckpt_uid_ok(const struct cred *old, kuid_t uid);
bool ckpt_gid_ok(const struct cred *old, kgid_t gid);

/* rlimit.c */
int checkpoint_rlimits(struct ckpt_ctx *ctx, struct task_struct *t);
int restore_prepare_rlimits(struct ckpt_ctx *ctx);
void restore_rlimits(struct ckpt_ctx *ctx);

#endif /* CRENGINE_CKPT_H */
