// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: what tasks share.
 *
 * Threads share their address space, signal handlers and thread group,
 * and usually their fd table and fs_struct; clone(2) lets processes share
 * the same things (CLONE_VM, vfork(2), CLONE_FILES, CLONE_FS,
 * CLONE_SIGHAND).  Each such kernel object is saved once, with the first
 * task that uses it, and every task names the objects it uses by id in its
 * TASK object (enum ckpt_share).
 *
 * Userspace recreates the sharing when it creates the tasks: each task is
 * cloned from its creator (the leader of its thread group for a thread, of
 * its parent process otherwise) with the CLONE_* flags the TASK object
 * gives, so that it shares exactly what it shared with the creator.  A
 * pattern clone(2) cannot make again is refused at checkpoint; so is an
 * object that a task outside the tree also uses (it would be copied while
 * that task goes on changing it, and restart could not share it again).
 * Restart checks that each task shares what the image says before the
 * first of them rebuilds the object in place.
 */

#include <linux/fdtable.h>
#include <linux/file.h>
#include <linux/fs_struct.h>
#include <linux/hashtable.h>
#include <linux/mm.h>
#include <linux/pipe_fs_i.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>

#include "ckpt.h"

static const char * const ckpt_share_names[CKPT_SHARE_NR] = {
	[CKPT_SHARE_MM] = "address space",
	[CKPT_SHARE_FILES] = "fd table",
	[CKPT_SHARE_FS] = "fs_struct (cwd, umask)",
	[CKPT_SHARE_SIGHAND] = "signal handlers",
	[CKPT_SHARE_SIGNAL] = "thread group",
};

const char *ckpt_share_name(int kind)
{
	return ckpt_share_names[kind];
}

/* The object of kind @kind that @t uses (NULL for a zombie); @t is frozen */
static void *ckpt_share_obj(struct task_struct *t, int kind)
{
	switch (kind) {
	case CKPT_SHARE_MM:
		return READ_ONCE(t->mm);
	case CKPT_SHARE_FILES:
		return READ_ONCE(t->files);
	case CKPT_SHARE_FS:
		return READ_ONCE(t->fs);
	case CKPT_SHARE_SIGHAND:
		return rcu_dereference_raw(t->sighand);
	default:
		return t->signal;
	}
}

/* The index of @pid among the first @n tasks of @tree, or -1 */
static int ckpt_tree_find(struct ckpt_tree *tree, u32 n, pid_t pid)
{
	u32 i;

	for (i = 0; i < n; i++)
		if (task_pid_vnr(tree->tasks[i]) == pid)
			return i;
	return -1;
}

/* Whom userspace creates task @i from: its thread group's leader, or its parent's */
static int ckpt_creator(struct ckpt_tree *tree, u32 i)
{
	struct task_struct *t = tree->tasks[i];
	pid_t ppid;

	if (!thread_group_leader(t))
		return ckpt_tree_find(tree, i, task_tgid_vnr(t));
	if (!i)
		return -1;
	rcu_read_lock();
	ppid = task_tgid_vnr(rcu_dereference(t->real_parent));
	rcu_read_unlock();
	return ckpt_tree_find(tree, i, ppid);
}

/* The clone(2) flag that shares each kind with the creator */
const u64 ckpt_share_flag[CKPT_SHARE_NR] = {
	[CKPT_SHARE_MM] = CLONE_VM,
	[CKPT_SHARE_FILES] = CLONE_FILES,
	[CKPT_SHARE_FS] = CLONE_FS,
	[CKPT_SHARE_SIGHAND] = CLONE_SIGHAND,
	[CKPT_SHARE_SIGNAL] = CLONE_THREAD,
};

/*
 * The task whose mm @tree's task @i has a fork(2) copy of: the first live
 * task of its parent process, if that uses another mm (not CLONE_VM); -1
 * for the root, or a task made some other way.
 */
static int ckpt_cow_parent(struct ckpt_tree *tree, u32 i)
{
	struct task_struct *t = tree->tasks[i];
	pid_t ppid;
	u32 j;

	if (!i || task_tgid_vnr(t) == task_tgid_vnr(tree->tasks[0]))
		return -1;
	rcu_read_lock();
	ppid = task_tgid_vnr(rcu_dereference(t->real_parent));
	rcu_read_unlock();
	for (j = 0; j < i; j++) {
		if (tree->zombie[j] || task_tgid_vnr(tree->tasks[j]) != ppid)
			continue;
		/* CLONE_VM: one mm, nothing to copy */
		return tree->share[j][CKPT_SHARE_MM] == tree->share[i][CKPT_SHARE_MM] ? -1 : j;
	}
	return -1;
}

/*
 * Give every object a task of @tree uses an id, note which task uses it
 * first, and how each task is to be cloned from its creator.  A zombie
 * leader uses what its first live thread uses: userspace creates the
 * threads from it before it exits.
 */
int ckpt_share_tree(struct ckpt_ctx *ctx, struct ckpt_tree *tree)
{
	u32 i, j;
	int k;

	for (i = 0; i < tree->nr; i++) {
		struct task_struct *t = tree->tasks[i];

		if (tree->zombie[i])
			continue;
		for (k = 0; k < CKPT_SHARE_NR; k++) {
			const void *obj = ckpt_share_obj(t, k);
			s32 id = ckpt_obj_lookup(ctx, obj);

			if (!obj)
				return ckpt_err(ctx, -ESRCH, "pid %d has no %s: it is exiting",
						task_pid_vnr(t), ckpt_share_names[k]);
			if (!id) {
				id = ckpt_obj_add(ctx, obj, CKPT_HDR_TASK);
				if (id < 0)
					return id;
				tree->first[i] |= BIT(k);
			}
			tree->share[i][k] = id;
		}
		/* a zombie leader just before its first live thread takes its ids */
		if (i && tree->zombie[i - 1] && !thread_group_leader(t) &&
		    tree->tasks[i - 1] == t->group_leader)
			memcpy(tree->share[i - 1], tree->share[i], sizeof(tree->share[i]));
	}
	for (i = 0; i < tree->nr; i++) {
		struct task_struct *t = tree->tasks[i];
		int c = ckpt_creator(tree, i);

		tree->cow_parent[i] = tree->zombie[i] ? -1 : ckpt_cow_parent(tree, i);

		if (tree->zombie[i] && thread_group_empty(t))
			continue;	/* a zombie process shares nothing any more */
		if (!thread_group_leader(t))
			tree->clone_flags[i] = CLONE_SYSVSEM;
		for (k = 0; k < CKPT_SHARE_NR; k++) {
			bool with_creator = c >= 0 && tree->share[c][k] == tree->share[i][k];

			if (with_creator)
				tree->clone_flags[i] |= ckpt_share_flag[k];
			else if (!(tree->first[i] & BIT(k)) && !tree->zombie[i])
				goto impossible;
		}
		/* clone(2) cannot share handlers without the mm, nor make a thread without both */
		if ((tree->clone_flags[i] & CLONE_SIGHAND) && !(tree->clone_flags[i] & CLONE_VM))
			goto impossible;
		if (!thread_group_leader(t) != !!(tree->clone_flags[i] & CLONE_THREAD))
			goto impossible;
		continue;
impossible:
		for (j = 0; j < i; j++)
			for (k = 0; k < CKPT_SHARE_NR; k++)
				if (tree->share[j][k] == tree->share[i][k] && !tree->zombie[j])
					return ckpt_err(ctx, -EOPNOTSUPP,
							"pid %d shares its %s with pid %d, which did not create it: not supported",
							task_pid_vnr(t), ckpt_share_names[k],
							task_pid_vnr(tree->tasks[j]));
		return ckpt_err(ctx, -EOPNOTSUPP, "pid %d: its sharing cannot be recreated",
				task_pid_vnr(t));
	}
	return 0;
}

/* Some task outside @tree that uses @obj of kind @kind, for the message */
static pid_t ckpt_outside_user(struct ckpt_tree *tree, int kind, const void *obj)
{
	struct task_struct *p, *t;
	pid_t found = 0;

	rcu_read_lock();
	for_each_process_thread(p, t) {
		if (ckpt_share_obj(t, kind) == obj && !ckpt_in_tree(tree, t)) {
			found = task_pid_vnr(t);
			break;
		}
	}
	rcu_read_unlock();
	return found;
}

/* How many references to @obj of kind @kind there are, all users counted */
static long ckpt_share_count(int kind, void *obj)
{
	struct fs_struct *fs = obj;
	long n;

	switch (kind) {
	case CKPT_SHARE_MM:
		return atomic_read(&((struct mm_struct *)obj)->mm_users);
	case CKPT_SHARE_FILES:
		return atomic_read(&((struct files_struct *)obj)->count);
	case CKPT_SHARE_FS:
		spin_lock(&fs->lock);
		n = fs->users;
		spin_unlock(&fs->lock);
		return n;
	case CKPT_SHARE_SIGHAND:
		return refcount_read(&((struct sighand_struct *)obj)->count);
	}
	return 0;
}

/* A file the tree holds, with the references the tree has to it */
struct ckpt_fileref {
	struct hlist_node hash;
	struct file *file;
	long refs;
	bool saved_fd;		/* an fd the image has (not the restarter's stdio) holds it */
	pid_t pid;		/* a task whose fd @fd is that */
	int fd;
};

struct ckpt_filerefs {
	struct ckpt_ctx *ctx;
	DECLARE_HASHTABLE(hash, 8);
};

/* One reference from fd @fd (or, if -1, from a mapping) of @pid */
static int ckpt_fileref_add(struct ckpt_filerefs *refs, struct file *file, pid_t pid, int fd)
{
	struct ckpt_fileref *r;

	hash_for_each_possible(refs->hash, r, hash, (unsigned long)file)
		if (r->file == file)
			goto found;
	r = kzalloc(sizeof(*r), GFP_ATOMIC);
	if (!r)
		return -ENOMEM;
	r->file = file;
	hash_add(refs->hash, &r->hash, (unsigned long)file);
found:
	r->refs++;
	if (fd >= 0 && !r->saved_fd && !ckpt_fd_inherited(refs->ctx, file, fd)) {
		r->saved_fd = true;
		r->pid = pid;
		r->fd = fd;
	}
	return 0;
}

static bool ckpt_pipe_like(struct file *file)
{
	return S_ISFIFO(file_inode(file)->i_mode);
}

/* Count the references the fd table @files and the mm @mm of @t hold */
static int ckpt_count_filerefs(struct ckpt_filerefs *refs, struct task_struct *t,
			       struct files_struct *files, struct mm_struct *mm)
{
	pid_t pid = task_pid_vnr(t);
	int ret = 0;

	if (files) {
		struct fdtable *fdt;
		unsigned int fd;

		rcu_read_lock();
		fdt = files_fdtable(files);
		for (fd = 0; !ret && fd < fdt->max_fds; fd++) {
			struct file *file = rcu_dereference_raw(fdt->fd[fd]);

			if (file)
				ret = ckpt_fileref_add(refs, file, pid, fd);
		}
		rcu_read_unlock();
	}
	if (mm && !ret) {
		struct vm_area_struct *vma;
		struct vma_iterator vmi;

		if (mmap_read_lock_killable(mm))
			return -EINTR;
		vma_iter_init(&vmi, mm, 0);
		for_each_vma(vmi, vma)
			if (vma->vm_file && !ret)
				ret = ckpt_fileref_add(refs, vma->vm_file, pid, -1);
		/* the executable's file is the one its text is mapped from */
		if (mm->exe_file && !ret)
			ret = ckpt_fileref_add(refs, mm->exe_file, pid, -1);
		mmap_read_unlock(mm);
	}
	return ret;
}

/* A task outside @tree with @file in its fd table, or 0 */
static pid_t ckpt_file_outside(struct ckpt_tree *tree, struct file *file)
{
	struct task_struct *p, *t;
	pid_t found = 0;

	rcu_read_lock();
	for_each_process_thread(p, t) {
		struct file *f;
		unsigned int fd;

		if (ckpt_in_tree(tree, t))
			continue;
		for (fd = 0; !found && (f = task_lookup_next_fdget_rcu(t, &fd)); fd++) {
			if (f == file)
				found = task_pid_vnr(t);
			fput(f);
		}
		if (found)
			break;
	}
	rcu_read_unlock();
	return found;
}

/* Every open file (and pipe) the tree holds must be held by the tree alone */
static int ckpt_file_leaks(struct ckpt_ctx *ctx, struct ckpt_tree *tree)
{
	struct ckpt_filerefs *refs;
	struct ckpt_fileref *r, *q;
	struct hlist_node *tmp;
	u32 i;
	int bkt, ret = 0;

	refs = kzalloc(sizeof(*refs), GFP_KERNEL);
	if (!refs)
		return -ENOMEM;
	hash_init(refs->hash);
	refs->ctx = ctx;
	for (i = 0; !ret && i < tree->nr; i++) {
		struct task_struct *t = tree->tasks[i];

		if (tree->zombie[i])
			continue;
		ret = ckpt_count_filerefs(refs,	t,
					  tree->first[i] & BIT(CKPT_SHARE_FILES) ? t->files : NULL,
					  tree->first[i] & BIT(CKPT_SHARE_MM) ? t->mm : NULL);
	}
	hash_for_each(refs->hash, bkt, r, hash) {
		struct pipe_inode_info *pipe = NULL;
		unsigned int ends = 0;
		int qbkt;

		if (ret)
			break;
		/*
		 * Only an open file description matters: stdio the engine does
		 * not save is the restarter's, and a file that is only mapped
		 * (fork shares the struct file of a mapping) is reopened by path.
		 */
		if (!r->saved_fd)
			continue;
		/* a terminal shared with the shell is tty.c's to judge (CHECKPOINT_SHELL_JOB) */
		if (file_count(r->file) > r->refs && !S_ISCHR(file_inode(r->file)->i_mode)) {
			pid_t other = ckpt_file_outside(tree, r->file);

			if (other) {
				ret = ckpt_err(ctx, -EBUSY,
					       "pid %d fd %d: %pD is also open in pid %d, outside the tree",
					       r->pid, r->fd, r->file, other);
				break;
			}
		}
		if (!ckpt_pipe_like(r->file))
			continue;
		pipe = r->file->private_data;
		hash_for_each(refs->hash, qbkt, q, hash)
			ends += ckpt_pipe_like(q->file) && q->file->private_data == pipe;
		spin_lock(&file_inode(r->file)->i_lock);
		if (pipe && pipe->files > ends)
			ret = -EBUSY;
		spin_unlock(&file_inode(r->file)->i_lock);
		if (ret)
			ret = ckpt_err(ctx, ret,
				       "pid %d fd %d: an end of %pD is open outside the tree",
				       r->pid, r->fd, r->file);
	}
	hash_for_each_safe(refs->hash, bkt, tmp, r, hash) {
		hash_del(&r->hash);
		kfree(r);
	}
	kfree(refs);
	return ret;
}

/* Whether the object of kind @k task @i uses first has more users than the tree */
static int ckpt_share_leak(struct ckpt_ctx *ctx, struct ckpt_tree *tree, u32 i, int k)
{
	void *obj = ckpt_share_obj(tree->tasks[i], k);
	pid_t pid = task_pid_vnr(tree->tasks[i]);
	long users = 0;
	pid_t other;
	u32 j;

	/* a zombie leader keeps its handlers until it is reaped */
	for (j = 0; j < tree->nr; j++)
		users += ckpt_share_obj(tree->tasks[j], k) == obj;
	if (ckpt_share_count(k, obj) <= users)
		return 0;
	other = ckpt_outside_user(tree, k, obj);
	if (other)
		return ckpt_err(ctx, -EBUSY, "pid %d shares its %s with pid %d, outside the tree",
				pid, ckpt_share_names[k], other);
	return ckpt_err(ctx, -EBUSY, "pid %d: its %s is in use outside the tree",
			pid, ckpt_share_names[k]);
}

/*
 * linux-cr's leak detection: each mm, fd table, fs_struct and handler
 * table the tree uses, and each file it holds, has no more users than the
 * tree accounts for; else a task outside the tree shares it.
 */
int ckpt_share_leaks(struct ckpt_ctx *ctx, struct ckpt_tree *tree)
{
	u32 i;
	int k, ret;

	for (i = 0; i < tree->nr; i++) {
		for (k = 0; k < CKPT_SHARE_SIGNAL; k++) {
			if (tree->zombie[i] || !(tree->first[i] & BIT(k)))
				continue;
			ret = ckpt_share_leak(ctx, tree, i, k);
			if (ret)
				return ret;
		}
	}
	return ckpt_file_leaks(ctx, tree);
}

/*
 * Restart: the restarting task must share the objects the image says it
 * shares with the tasks restarted before it, and no other; the objects it
 * is the first to use it rebuilds in place (ctx->defines).
 */
int restore_prepare_share(struct ckpt_ctx *ctx)
{
	int k;

	ctx->defines = 0;
	for (k = 0; k < CKPT_SHARE_NR; k++) {
		s32 id = ctx->task->share[k];
		const void *mine = ckpt_share_obj(current, k);
		const void *known = ckpt_obj_kobj(ctx, id, CKPT_OBJ_SHARED(k));
		int j;

		for (j = 0; j < k; j++)
			if (ctx->task->share[j] == id)
				return ckpt_err(ctx, -EINVAL, "TASK %d: id %d names two objects",
						ctx->task->pid, id);
		if (!known && ckpt_obj_taken(ctx, id))
			return ckpt_err(ctx, -EINVAL, "TASK %d: id %d is not an %s",
					ctx->task->pid, id, ckpt_share_names[k]);

		if (known && known != mine)
			return ckpt_err(ctx, -EINVAL,
					"pid %d does not share the %s the image says it shares",
					ctx->task->pid, ckpt_share_names[k]);
		if (!known && ckpt_obj_kobj_known(ctx, CKPT_OBJ_SHARED(k), mine))
			return ckpt_err(ctx, -EINVAL,
					"pid %d shares an %s the image says it does not",
					ctx->task->pid, ckpt_share_names[k]);
		if (!known)
			ctx->defines |= BIT(k);
	}
	return 0;
}

/* After a task is rebuilt: the objects it defined are known by their ids */
int restore_share_done(struct ckpt_ctx *ctx)
{
	int k, ret;

	for (k = 0; k < CKPT_SHARE_NR; k++) {
		if (!(ctx->defines & BIT(k)))
			continue;
		ret = ckpt_obj_add_kobj(ctx, ctx->task->share[k], CKPT_OBJ_SHARED(k),
					ckpt_share_obj(current, k));
		if (ret)
			return ret;
	}
	return 0;
}
