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
#include <linux/completion.h>
#include <linux/mutex.h>
#include <linux/checkpoint.h>
#include <linux/hashtable.h>
#include <linux/list.h>
#include <linux/mm_types.h>
#include <linux/path.h>
#include <linux/refcount.h>
#include <linux/sched.h>
#include <linux/signal.h>
#include <linux/timer.h>
#include <linux/uidgid.h>
#include <linux/types.h>
#include <linux/wait.h>

#include "ckpt_image.h"

struct ipc64_perm;
struct ipc_namespace;

/* Limits on what restart accepts from an image (it is untrusted input) */
#define CKPT_OBJ_MAX		(512 * 1024)	/* bytes in one object, page data aside */
#define CKPT_META_MAX		BIT_ULL(28)	/* bytes of objects held at restart */
#define CKPT_OBJECTS_MAX	BIT(22)
#define CKPT_FDS_MAX		4096
#define CKPT_VMAS_MAX		65530
#define CKPT_TASKS_MAX		1024
/* One PAGES object: its runs fit CKPT_OBJ_MAX, its length 32 bits */
#define CKPT_RUNS_PER_OBJ	((CKPT_OBJ_MAX - PAGE_SIZE - sizeof(struct ckpt_hdr_pages)) / \
				 sizeof(struct ckpt_page_run))
#define CKPT_PAGES_PER_OBJ	((U32_MAX - CKPT_OBJ_MAX) / PAGE_SIZE)

struct ckpt_obj {
	struct list_head list;
	struct ckpt_hdr *h;	/* header and payload, h->len bytes (PAGES: data_off) */
	u64 index;		/* position in the stream */
	loff_t data_pos;	/* PAGES: where its page data is in the image file */
	struct ckpt_obj *next_pages;	/* PAGES: the task's next PAGES object */
};

/* Restart: pages of the restarting task and where their data is */
struct ckpt_extent {
	u64 addr;
	u64 nr;			/* pages */
	struct file *file;	/* the image holding the data; NULL: in the parent */
	loff_t pos;
};

struct ckpt_extents {
	struct ckpt_extent *e;
	unsigned int nr, max;
};

/* Restart: an image of the chain the restarted one takes unchanged pages from */
struct ckpt_parent {
	struct file *file;
	struct list_head objs;	/* its PAGES objects, without their data */
	u64 id, parent_id;
	char *parent_path;
};

/* One entry of the object hash: a shared kernel object and its image id */
struct ckpt_objref {
	struct hlist_node hash;
	const void *ptr;	/* the kernel object (at restart: the one rebuilt) */
	s32 objref;
	u32 type;		/* CKPT_HDR_* of the object that defines it, or CKPT_OBJ_SHARED() */
	struct file *file;	/* restart: the object, one reference held */
	struct file *file2;	/* restart: a pipe's write end (file: its read end) */
	void *priv;		/* restart: a kind's own bookkeeping, kfree()d with it */
	u32 f_flags;		/* restart: a FILE's saved flags */
};

/* A VMA found in the image, validated before anything is changed */
struct ckpt_rvma {
	struct ckpt_hdr_vma *v;
	struct file *file;	/* not referenced: owned by the objhash */
	bool kept;		/* the fork copy had it already */
};

struct ckpt_range {
	u64 start, end;
};

/* A SysV object of the image, at restart */
struct ckpt_ipc_obj {
	int kind;			/* IPC_SHM_IDS, IPC_MSG_IDS, IPC_SEM_IDS */
	struct ckpt_ipc_perm *perm;	/* in its defining object */
	struct ckpt_obj *obj;		/* that object: SHM, MSG_QUEUE or SEM */
	u32 nr;				/* DATA or MSG objects right after it */
	u64 size;			/* a segment's bytes, a set's semaphores */
};

/* A semaphore set of the tree's IPC namespace, at checkpoint */
struct ckpt_sem_set {
	s32 id;
	u32 nsems;
};

/* The tree's own IPC namespace (ipc.c) */
struct ckpt_ipc {
	/* checkpoint */
	struct ipc_namespace *ns;	/* referenced */
	struct ckpt_sem_set *sems;	/* for the tasks' SEM_UNDO adjustments */
	u32 nr_sems;
	/* restart */
	struct ckpt_hdr_ipc_ns *limits;
	struct ckpt_ipc_obj *objs;
	u32 nr_objs, max_objs;
};

struct ckpt_rfd {
	struct ckpt_hdr_fd *fd;
	struct file *file;	/* not referenced: owned by the objhash */
};

/* The objhash type of a shared kernel object of kind @kind (enum ckpt_share) */
#define CKPT_OBJ_SHARED(kind)	(0x1000 + (kind))

struct ckpt_tree;

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
	u64 nr_page_objs;	/* checkpoint: PAGES objects, for the dump-pages fault */
	u64 checksum;
	u64 bytes;
	loff_t start_pos;	/* of the image in its file */
	bool error_written;
	/*
	 * What is logged while the engine holds an mmap lock (ckpt_hold_log()),
	 * written once it lets go: the log and the image may be pipes or
	 * files, whose locks are taken before mmap_lock.
	 */
	unsigned int log_held;
	unsigned int held_len;
	char held_log[512];
	bool held_error;	/* checkpoint: an ERROR object waits, with this */
	int held_errno;
	char held_msg[240];
	bool self;		/* checkpoint: the caller checkpoints itself */
	const struct cred *cred;	/* the caller's, referenced */

	/* TCP connections in repair mode, let go at the end of the call (inet.c) */
	struct list_head tcp_repair;

	/* checkpoint: pages to write once the tasks run again (CHECKPOINT_COW) */
	struct list_head snaps;
	struct ckpt_early *early;	/* the root's pages, taken before the freeze */
	/* TRACK, INCREMENTAL: this image's id; its parent's id and path */
	u64 chain_id, parent_id;
	char *parent_path;
	struct list_head tracked;	/* mms whose written pages this checkpoint tracks */

	DECLARE_HASHTABLE(objhash, 8);
	s32 next_objref;
	u32 defines;		/* BIT(enum ckpt_share): what this task saves or rebuilds */
	unsigned long *progress;	/* restart: the group's clock of progress */
	unsigned long stub;	/* restart: where the stub is, in every mm of the tree */

	/* checkpoint: the tasks, and what is being saved ("pid 81 fd 5"), for errors */
	struct ckpt_tree *tree;
	char where[64];
	/* the root's own namespaces: checkpoint, and restart for the whole group */
	struct ckpt_hdr_uts_ns *uts_ns;	/* restart: its UTS_NS object */
	struct ckpt_ipc *ipc;		/* NULL if it had no IPC namespace of its own */
	bool ns_restored;		/* restart: the root rebuilt them */

	/* restart: the whole image but page data, read and checked before use */
	struct list_head objs;
	struct ckpt_obj *cur;
	u64 meta_bytes;
	struct ckpt_parent *parents;	/* its chain, the parent first */
	unsigned int nr_parents;

	/* restart: the parsed state of the restarting task */
	struct ckpt_hdr_header *hdr;
	struct ckpt_hdr_task *task;
	struct ckpt_hdr_thread *thread;
	struct ckpt_hdr_fs *fs;
	struct path cwd;
	struct ckpt_rfd *fds;
	unsigned int nr_fds;
	struct ckpt_rlock *locks;
	unsigned int nr_locks;
	struct ckpt_hdr_ctty *ctty;
	struct file *fg_tty;	/* a session leader's terminal, referenced, and its */
	pid_t fg_pgrp;		/* foreground group, set once the tree is rebuilt */
	struct ckpt_hdr_mm *mm;
	struct ckpt_rvma *vmas;
	unsigned int nr_vmas;
	struct ckpt_hdr_cpu *cpu;
	struct ckpt_hdr_fpu *fpu;
	struct ckpt_hdr_sighand *sighand;
	struct ckpt_hdr_signal *signal;
	struct ckpt_hdr_sigpending *sigpending;
	struct ckpt_hdr_rlimits *rlimits;
	struct ckpt_hdr_process *process;
	struct file *exe;		/* referenced */
	struct ckpt_hdr_itimers *itimers;
	struct list_head *posix_timers_first;	/* first CKPT_HDR_POSIX_TIMER object */
	unsigned int nr_posix_timers;
	struct ckpt_hdr_seccomp *seccomp;
	struct ckpt_obj *sem_undo_first;	/* first CKPT_HDR_SEM_UNDO object */
	unsigned int nr_sem_undo;
	struct cred *new_cred;		/* committed at the end of restart */
	struct ckpt_obj *pages_first;	/* its first PAGES object */
	struct ckpt_obj *drops_first;	/* its first DROP object, if nr_drops */
	unsigned int nr_drops;
	struct ckpt_extents extents;	/* its pages */
	u64 nr_pages;
};

/* main.c: context, object hash */
void ckpt_ctx_reset_task(struct ckpt_ctx *ctx);
void ckpt_ctx_free(struct ckpt_ctx *ctx);
s32 ckpt_obj_lookup(struct ckpt_ctx *ctx, const void *ptr);
s32 ckpt_obj_add(struct ckpt_ctx *ctx, const void *ptr, u32 type);
int ckpt_obj_add_file(struct ckpt_ctx *ctx, s32 objref, struct file *file);
struct file *ckpt_obj_file(struct ckpt_ctx *ctx, s32 objref);
int ckpt_obj_add_shmem(struct ckpt_ctx *ctx, s32 objref, struct file *file);
struct file *ckpt_obj_shmem(struct ckpt_ctx *ctx, s32 objref);
bool ckpt_obj_taken(struct ckpt_ctx *ctx, s32 objref);
int ckpt_obj_add_kobj(struct ckpt_ctx *ctx, s32 objref, u32 type, const void *ptr);
const void *ckpt_obj_kobj(struct ckpt_ctx *ctx, s32 objref, u32 type);
bool ckpt_obj_kobj_known(struct ckpt_ctx *ctx, u32 type, const void *ptr);
int ckpt_obj_add_pipe(struct ckpt_ctx *ctx, s32 objref, struct file *rd, struct file *wr);
struct file *ckpt_obj_pipe_end(struct ckpt_ctx *ctx, s32 objref, bool write);
struct ckpt_objref *ckpt_obj_find(struct ckpt_ctx *ctx, s32 objref);
struct ckpt_objref *ckpt_obj_find_any(struct ckpt_ctx *ctx, s32 objref);
int ckpt_obj_add_priv(struct ckpt_ctx *ctx, s32 objref, u32 type, void *priv);

/* fault.c: fault injection (the "fault" module parameter, CR_FAULT) */
enum ckpt_fault {
	CKPT_FAULT_NONE,
	CKPT_FAULT_DUMP_FROZEN,
	CKPT_FAULT_DUMP_OBJECTS,
	CKPT_FAULT_DUMP_PAGES,
	CKPT_FAULT_RESTORE_PREPARE,
	CKPT_FAULT_RESTORE_MEMBER,
	CKPT_FAULT_RESTORE_TREE,
};

int ckpt_fault(struct ckpt_ctx *ctx, enum ckpt_fault stage, u64 n);

/* image.c: log, errors, object I/O */
__printf(2, 3) void ckpt_msg(struct ckpt_ctx *ctx, const char *fmt, ...);
__printf(3, 4) int ckpt_err(struct ckpt_ctx *ctx, int err, const char *fmt, ...);
void ckpt_hold_log(struct ckpt_ctx *ctx);
void ckpt_release_log(struct ckpt_ctx *ctx);
u64 ckpt_checksum(u64 sum, const void *buf, size_t len);
int ckpt_write(struct ckpt_ctx *ctx, const void *buf, size_t len);
int ckpt_write_obj(struct ckpt_ctx *ctx, void *obj, u32 type, u32 len);
int ckpt_write_obj_buf(struct ckpt_ctx *ctx, void *obj, u32 type, u32 len,
		       const void *buf, size_t blen);
int ckpt_write_obj_str(struct ckpt_ctx *ctx, void *obj, u32 type, u32 len,
		       const char *str);
int ckpt_count_obj(struct ckpt_ctx *ctx, u32 type);
int ckpt_write_hdr(struct ckpt_ctx *ctx, u32 type, u32 payload);
int checkpoint_header(struct ckpt_ctx *ctx);
int checkpoint_tail(struct ckpt_ctx *ctx);
int ckpt_read_image(struct ckpt_ctx *ctx);
int ckpt_read_parent(struct ckpt_ctx *ctx, struct ckpt_parent *p);
void ckpt_free_objs(struct list_head *objs);
void *ckpt_next(struct ckpt_ctx *ctx, u32 type, u32 min_len);
u32 ckpt_peek(struct ckpt_ctx *ctx);
const char *ckpt_str(struct ckpt_ctx *ctx, void *obj, u32 fixed, u32 str_len);
const char *ckpt_type_name(u32 type);
int ckpt_check_header(struct ckpt_ctx *ctx, struct ckpt_hdr_header *h);
int restore_header(struct ckpt_ctx *ctx);
void ckpt_progress(struct ckpt_ctx *ctx);

/*
 * The tasks of one checkpoint, every thread of every process: the root
 * first, every parent before its children, each thread group's leader
 * before its threads (once frozen and checked, tree.c)
 */
struct ckpt_tree {
	struct task_struct *tasks[CKPT_TASKS_MAX];
	u32 nr;
	bool zombie[CKPT_TASKS_MAX];	/* a zombie process, or a leader that exited */
	u16 holds[CKPT_TASKS_MAX];	/* checkpoint holds it is frozen with */
	s32 share[CKPT_TASKS_MAX][CKPT_SHARE_NR];	/* ids of what it uses */
	u8 first[CKPT_TASKS_MAX];	/* BIT(enum ckpt_share): it uses it first */
	u64 clone_flags[CKPT_TASKS_MAX];	/* how restart clones it from its creator */
	s32 cow_parent[CKPT_TASKS_MAX];	/* whose mm its own is a fork(2) copy of, or -1 */
	pid_t vfork_child[CKPT_TASKS_MAX];	/* the child it waits for in vfork(2) */
	/* while the image is written (freeze.c) */
	struct timer_list watchdog;
	struct task_struct *checkpointer;
	struct task_struct *killed;	/* a held task with a fatal signal */
};

/* A task of a restart group (group.c) */
enum ckpt_member_state {
	CKPT_MEMBER_NONE,	/* not cloned yet */
	CKPT_MEMBER_CREATED,	/* cloned by its creator; it has not called restart yet */
	CKPT_MEMBER_IN,		/* in the group, not rebuilt */
	CKPT_MEMBER_SPAWNING,	/* half rebuilt: cloning the tasks it creates */
	CKPT_MEMBER_DONE,	/* rebuilt; waits for the others */
	CKPT_MEMBER_ENDED,	/* gone from the group */
};

enum ckpt_member_step {
	CKPT_STEP_NONE,
	CKPT_STEP_PGRP,		/* taking its session and process group */
};

struct ckpt_member {
	struct pid *pid;	/* its task, once it came in */
	struct pid *creator;	/* the task that cloned it */
	u8 state;		/* enum ckpt_member_state */
	u8 step;		/* enum ckpt_member_step */
	bool issued;		/* the stub made a step's system call */
	bool in_call;		/* it is inside restart(2) */
	bool rebuilt;		/* it was changed: a failure kills it */
	bool last;		/* its last stub call (a zombie's end) */
	bool unmaps_stub;	/* it rebuilt its mm: the stub there is its to unmap */
	u32 next;		/* spawning: the next task to look at */
	pid_t cloning;		/* spawning: the pid the stub is cloning */
	bool inner_only;	/* spawning: its pid is taken outside, clone it inside only */
	struct file *fg_tty;	/* done: the terminal to give fg_pgrp, referenced */
	pid_t fg_pgrp;
	s32 forked_mm;		/* the id of the mm it is a fork(2) copy of, 0 if none */
	struct completion *vfork;	/* a vfork(2) wait again for its child, */
	struct task_struct *vfork_task;	/* this one (referenced) */
};

/*
 * A restart group: the tasks of one image restarting together (group.c).
 * The root reads and checks the image once; the tasks rebuild themselves
 * one at a time in tree order, each cloned by its creator (spawn.c).
 */
struct ckpt_group {
	struct list_head list;
	struct pid *root;	/* names the group */
	kuid_t euid;		/* of the root */
	refcount_t users;	/* each member from its cloning until it is done; each call */
	wait_queue_head_t wq;
	struct mutex lock;	/* the members' states */
	struct ckpt_ctx *ctx;	/* the image and its objects, shared */
	struct ckpt_pids *pids;	/* the tree, in image order */
	struct ckpt_obj **parts;	/* each task's TASK (or ZOMBIE) object */
	struct ckpt_obj **pages;	/* each task's first PAGES object */
	struct ckpt_member *members;
	u32 nr_tasks;
	u32 done;		/* tasks rebuilt, in tree order */
	bool outer_pids;	/* in a pid namespace of its own: the same pid outside too */
	atomic_t fg_pending;	/* terminals whose foreground group is still to be set */
	unsigned long progress;	/* jiffies when a member last got on */
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
void ckpt_watchdog_start(struct ckpt_tree *tree);
int ckpt_watchdog_stop(struct ckpt_ctx *ctx, struct ckpt_tree *tree);
bool ckpt_should_stop(struct ckpt_ctx *ctx);
int ckpt_hold_restarted(struct pid *root);
long restore_thaw(pid_t root);
void ckpt_thaw_all_held(void);

/* tree.c: the tree walk, permission checks, the TREE object */
long checkpoint_tree(struct ckpt_ctx *ctx, pid_t pid);
int checkpoint_may(struct ckpt_ctx *ctx, struct task_struct *t);
bool ckpt_in_tree(struct ckpt_tree *tree, struct task_struct *t);
int ckpt_tree_grow(struct ckpt_ctx *ctx, struct ckpt_tree *tree);
int restore_tree(struct ckpt_ctx *ctx, struct ckpt_group *g);

/* share.c: what tasks share, and with whom */
extern const u64 ckpt_share_flag[CKPT_SHARE_NR];
const char *ckpt_share_name(int kind);
int ckpt_share_tree(struct ckpt_ctx *ctx, struct ckpt_tree *tree);
int ckpt_share_leaks(struct ckpt_ctx *ctx, struct ckpt_tree *tree);
int restore_prepare_share(struct ckpt_ctx *ctx);
int restore_share_done(struct ckpt_ctx *ctx);

/* group.c: the restart group */
long restore_self(struct ckpt_ctx **ctxp, pid_t root);
long restore_continue(pid_t root);
bool ckpt_group_first_live(struct ckpt_group *g, u32 idx);
void ckpt_groups_exit(void);

/* spawn.c: cloning the tree's tasks from their rebuilt creators, through the stub */
int ckpt_stub_map(struct ckpt_ctx *ctx);
bool ckpt_stub_mapped(struct ckpt_ctx *ctx);
void ckpt_stub_unmap(struct ckpt_ctx *ctx);
bool ckpt_stub_overlaps(struct ckpt_ctx *ctx, u64 start, u64 end);
#define CKPT_STUB_SIZE	(2 * PAGE_SIZE)	/* code, then data */
long ckpt_stub_call(struct ckpt_ctx *ctx, pid_t root, long nr, long a0, long a1, long a2,
		    long a3, long a4);
long ckpt_stub_result(void);
long ckpt_stub_clone(struct ckpt_ctx *ctx, pid_t root, u64 flags, pid_t pid, bool outer);
bool ckpt_spawn_creates(struct ckpt_group *g, u32 idx, u32 j);
u64 ckpt_spawn_flags(struct ckpt_group *g, u32 idx, u32 j);
s32 ckpt_spawn_share(struct ckpt_group *g, u32 idx, int kind);

/* task.c: the TASK object, each task's parts in their order */
int checkpoint_task(struct ckpt_ctx *ctx, struct ckpt_tree *tree, u32 i);
int restore_prepare_task(struct ckpt_ctx *ctx, struct ckpt_group *g, u32 idx);
int restore_rebuild_task(struct ckpt_ctx *ctx, s32 forked_mm);
int restore_finish_task(struct ckpt_ctx *ctx, struct ckpt_member *m, long *ax);
int restore_vfork_wait(struct completion **vfork, struct task_struct **child);
void restore_vfork_abort(struct completion **vfork, struct task_struct **child);

/* thread.c: what is a thread's own */
int checkpoint_thread(struct ckpt_ctx *ctx, struct task_struct *t);
int restore_prepare_thread(struct ckpt_ctx *ctx);
void restore_thread_clear(void);
void restore_thread(struct ckpt_ctx *ctx);

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
struct file *ckpt_open_path(const char *path, int flags);
int ckpt_chown(struct ckpt_ctx *ctx, const struct path *path, u32 uid, u32 gid);
int ckpt_unlink(struct ckpt_ctx *ctx, const struct path *path);
int restore_prepare_fs(struct ckpt_ctx *ctx);
int restore_prepare_files(struct ckpt_ctx *ctx);
bool ckpt_fd_inherited(struct ckpt_ctx *ctx, struct file *file, unsigned int fd);
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

struct sock;
struct socket;

/* unix.c: unix sockets, and what every socket shares */
extern const struct ckpt_file_ops ckpt_unix_ops;
bool ckpt_unix_outside(struct ckpt_ctx *ctx, struct file *file);
int restore_socket_obj(struct ckpt_ctx *ctx);
const char *ckpt_socket_family(struct file *file);
struct socket *ckpt_sock_of(struct file *file);
bool ckpt_sock_in_tree(struct ckpt_ctx *ctx, struct sock *sk);

/* inet.c: TCP and UDP sockets over IPv4 and IPv6 */
extern const struct ckpt_file_ops ckpt_inet_ops;
const char *ckpt_inet_kind(struct sock *sk);
void checkpoint_inet_done(struct ckpt_ctx *ctx, bool killed);
int restore_inet_obj(struct ckpt_ctx *ctx);
int restore_inet_live(struct ckpt_ctx *ctx);

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
int restore_tty_foreground(struct ckpt_ctx *ctx, struct file *tty, pid_t pgrp);

/* A VMA as checkpoint found it, with the mmap lock held */
struct ckpt_vma_desc {
	unsigned long start, end, pgoff, flags;
	u32 kind;
	bool anon;		/* has anonymous pages (anon_vma) */
	bool from_parent;	/* the parent's still, as fork(2) copied it */
	bool image;		/* memory restart mapped from an image: saved as ANON */
	struct file *file;	/* referenced */
};

/* mm.c: the mm's bookkeeping (code, data, brk, stack, arguments, auxv, vDSO) */
int checkpoint_mm(struct ckpt_ctx *ctx, struct task_struct *t, struct mm_struct *parent,
		  s32 parent_id);
int restore_prepare_mm(struct ckpt_ctx *ctx);
int restore_mm(struct ckpt_ctx *ctx, s32 forked_mm);

/* vma.c: the mappings */
int ckpt_collect_vmas(struct ckpt_ctx *ctx, struct mm_struct *mm, u64 vvar, u64 vdso_end,
		      struct ckpt_vma_desc *parent, unsigned int nr_parent,
		      struct ckpt_vma_desc **descs, unsigned int *nr);
u32 ckpt_vma_prot(unsigned long flags);
void ckpt_free_vmas(struct ckpt_vma_desc *descs, unsigned int nr);
int checkpoint_vmas(struct ckpt_ctx *ctx, struct ckpt_vma_desc *descs, unsigned int nr);
int restore_prepare_vmas(struct ckpt_ctx *ctx, u64 vdso_lo, u64 vdso_hi);
struct ckpt_rvma *ckpt_find_vma(struct ckpt_ctx *ctx, u64 addr);
int restore_vmas(struct ckpt_ctx *ctx);
int restore_vmas_forked(struct ckpt_ctx *ctx, bool *vdso_kept);

/* shmem.c: shared anonymous memory */
int checkpoint_shmem(struct ckpt_ctx *ctx, struct file *file, s32 *objref);
int restore_shmem_obj(struct ckpt_ctx *ctx);

/* pages.c: page contents */
struct ckpt_snap;
struct ckpt_early;
int checkpoint_pages_early(struct ckpt_ctx *ctx, struct task_struct *t);
int checkpoint_pages(struct ckpt_ctx *ctx, struct task_struct *t, struct mm_struct *mm,
		     struct ckpt_vma_desc *descs, unsigned int nr, struct mm_struct *parent);
int ckpt_write_snapshots(struct ckpt_ctx *ctx);
void ckpt_drop_snapshots(struct ckpt_ctx *ctx);
bool ckpt_mapped_image(struct file *file);
int restore_check_pages(struct ckpt_ctx *ctx, struct ckpt_obj *obj);
int ckpt_add_extents(struct ckpt_ctx *ctx, struct ckpt_extents *x, struct ckpt_obj *obj,
		     struct file *file);
int restore_prepare_pages(struct ckpt_ctx *ctx);
int restore_pages(struct ckpt_ctx *ctx);

/* chain.c: tracked and incremental checkpoints, and their chains at restart */
int checkpoint_chain(struct ckpt_ctx *ctx, struct ckpt_tree *tree);
bool ckpt_chain_tracked(struct ckpt_ctx *ctx, struct mm_struct *mm);
int ckpt_chain_track(struct ckpt_ctx *ctx, struct mm_struct *mm);
void ckpt_chain_done(struct ckpt_ctx *ctx, bool ok);
void ckpt_chain_exit(void);
int restore_chain(struct ckpt_ctx *ctx);
int restore_chain_resolve(struct ckpt_ctx *ctx, pid_t pid, struct ckpt_extents *x);
void ckpt_sort_extents(struct ckpt_extents *x);
void ckpt_chain_free(struct ckpt_ctx *ctx);

/* cpu.c */
int checkpoint_cpu(struct ckpt_ctx *ctx, struct task_struct *t);
int restore_prepare_cpu(struct ckpt_ctx *ctx);
int restore_cpu(struct ckpt_ctx *ctx, long *ax);

/* signal.c */
int checkpoint_sighand(struct ckpt_ctx *ctx, struct task_struct *t);
int checkpoint_signal(struct ckpt_ctx *ctx, struct task_struct *t, bool group);
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

/* namespaces.c: the tree's namespaces, the root's own UTS namespace */
int checkpoint_namespaces(struct ckpt_ctx *ctx, struct ckpt_tree *tree);
int restore_prepare_namespaces(struct ckpt_ctx *ctx);
int restore_prepare_task_namespaces(struct ckpt_ctx *ctx, u32 idx);
int restore_namespaces(struct ckpt_ctx *ctx);

/* ipc.c: the root's own IPC namespace, what its SysV objects have in common */
int checkpoint_ipc_ns(struct ckpt_ctx *ctx, struct ckpt_tree *tree, struct ipc_namespace *ns);
void ckpt_ipc_free(struct ckpt_ctx *ctx);
const char *ckpt_ipc_kind(int kind);
int ckpt_ipc_collect(struct ipc_namespace *ns, int kind, struct ckpt_ipc_perm **out, u32 *nr);
struct ckpt_ipc_obj *ckpt_ipc_find(struct ckpt_ctx *ctx, int kind, s32 id);
int restore_prepare_ipc_ns(struct ckpt_ctx *ctx);
int restore_prepare_ipc_fresh(struct ckpt_ctx *ctx, struct ipc_namespace *ns);
int restore_prepare_ipc_obj(struct ckpt_ctx *ctx, int kind, struct ckpt_ipc_perm *perm,
			    struct ckpt_obj *obj, u32 nr, u64 size);
int restore_ipc_create(struct ckpt_ctx *ctx, int kind, struct ckpt_ipc_perm *perm,
		       long (*create)(struct ckpt_ctx *ctx, struct ckpt_ipc_obj *o, int flags),
		       struct ckpt_ipc_obj *o);
int restore_ipc64_perm(struct ckpt_ctx *ctx, struct ipc64_perm *p, struct ckpt_ipc_perm *perm);
int restore_ipc_creator(struct ckpt_ctx *ctx, int kind, struct ckpt_ipc_perm *perm);
int restore_ipc_ns(struct ckpt_ctx *ctx);

/* shm.c: SysV shm segments and their attachments */
int ckpt_shm_keep(struct ckpt_ctx *ctx, struct ckpt_tree *tree, struct ckpt_ipc_perm *perm,
		  u32 *nr);
int checkpoint_shm_segments(struct ckpt_ctx *ctx, struct ckpt_ipc_perm *perm, u32 nr);
int ckpt_shm_vma_kind(struct ckpt_ctx *ctx, struct vm_area_struct *vma);
int checkpoint_shm_attachments(struct ckpt_ctx *ctx, struct ckpt_vma_desc *descs,
			       unsigned int nr);
int restore_prepare_shm_segments(struct ckpt_ctx *ctx, u32 nr, u64 shmmax);
int restore_shm_segment(struct ckpt_ctx *ctx, struct ckpt_ipc_obj *o, void __user *scratch);
int restore_prepare_shm_vmas(struct ckpt_ctx *ctx);
int restore_shm_vma(struct ckpt_ctx *ctx, struct ckpt_rvma *r, struct ckpt_rvma *last);

/* msg.c: SysV message queues */
int checkpoint_msg_queues(struct ckpt_ctx *ctx, struct ckpt_ipc_perm *perm, u32 nr);
int restore_prepare_msg_queues(struct ckpt_ctx *ctx, u32 nr, u32 msgmax);
int restore_msg_queue(struct ckpt_ctx *ctx, struct ckpt_ipc_obj *o, void __user *scratch);

/* sem.c: SysV semaphore sets, each process's SEM_UNDO adjustments */
int checkpoint_sem_sets(struct ckpt_ctx *ctx, struct ckpt_ipc_perm *perm, u32 nr);
int checkpoint_sem_undo(struct ckpt_ctx *ctx, struct task_struct *t);
int checkpoint_may_sem_undo(struct ckpt_ctx *ctx, struct task_struct *a, struct task_struct *b);
int restore_prepare_sem_sets(struct ckpt_ctx *ctx, u32 nr, u32 semmsl);
int restore_sem_set(struct ckpt_ctx *ctx, struct ckpt_ipc_obj *o, void __user *scratch);
int restore_prepare_sem_undo(struct ckpt_ctx *ctx);
int restore_sem_undo(struct ckpt_ctx *ctx);

/* cred.c */
int checkpoint_cred(struct ckpt_ctx *ctx, struct task_struct *t);
int restore_prepare_cred(struct ckpt_ctx *ctx);
void restore_cred(struct ckpt_ctx *ctx);
bool ckpt_uid_ok(const struct cred *old, kuid_t uid);
bool ckpt_gid_ok(const struct cred *old, kgid_t gid);

/* seccomp.c */
int checkpoint_seccomp(struct ckpt_ctx *ctx, struct task_struct *t);
int restore_prepare_seccomp(struct ckpt_ctx *ctx);
int restore_seccomp(struct ckpt_ctx *ctx);

/* rlimit.c */
int checkpoint_rlimits(struct ckpt_ctx *ctx, struct task_struct *t);
int restore_prepare_rlimits(struct ckpt_ctx *ctx);
void restore_rlimits(struct ckpt_ctx *ctx);

#endif /* CRENGINE_CKPT_H */
