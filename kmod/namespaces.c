// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: the namespaces of a tree.
 *
 * A tree is checkpointed in the namespaces of the checkpointer, with two
 * exceptions: its root may have a UTS and an IPC namespace of its own
 * (ones its parent does not share, as after unshare -ui), which every
 * task of the tree shares; and the whole tree may live in a pid
 * namespace one level below the checkpointer's in which every task has
 * the pid it has outside (what `cr restore --pidns` makes).  Any other
 * namespace a task does not share with the checkpointer is refused by
 * name.
 *
 * The root's own namespaces are saved once, after the TREE object: the
 * UTS_NS object with the host and domain names, then the IPC namespace
 * (ipc.c).  Restart needs the root created in fresh namespaces of those
 * kinds (cr-mktree -n): there, before anything else of the tree is
 * rebuilt, the root sets the names with sethostname(2) and
 * setdomainname(2), replayed with the restarter's rights, and rebuilds
 * the IPC namespace.
 */

#include <linux/cred.h>
#include <linux/ipc_namespace.h>
#include <linux/nsproxy.h>
#include <linux/pid_namespace.h>
#include <linux/sched/task.h>
#include <linux/string.h>
#include <linux/syscalls.h>
#include <linux/utsname.h>

#include "ckpt.h"

/* The namespaces of @t: a copy of its nsproxy's pointers; false once it is exiting */
static bool ckpt_task_nsproxy(struct task_struct *t, struct nsproxy *ns)
{
	bool alive;

	task_lock(t);
	alive = t->nsproxy;
	if (alive)
		*ns = *t->nsproxy;
	task_unlock(t);
	return alive;
}

/* The namespaces of current's parent, or -EAGAIN if it is exiting */
static int ckpt_parent_nsproxy(struct task_struct *t, struct nsproxy *ns)
{
	struct task_struct *parent;
	bool alive;

	rcu_read_lock();
	parent = get_task_struct(rcu_dereference(t->real_parent));
	rcu_read_unlock();
	alive = ckpt_task_nsproxy(parent, ns);
	put_task_struct(parent);
	return alive ? 0 : -EAGAIN;
}

/* Every namespace of @t but UTS, IPC and pid is the checkpointer's */
static int checkpoint_may_task_ns(struct ckpt_ctx *ctx, struct task_struct *t,
				  struct nsproxy *ns, struct nsproxy *mine)
{
	const char *what = task_cred_xxx(t, user_ns) != current_user_ns() ? "user" :
			   ns->mnt_ns != mine->mnt_ns ? "mount" :
			   ns->net_ns != mine->net_ns ? "network" :
			   ns->cgroup_ns != mine->cgroup_ns ? "cgroup" :
			   ns->time_ns != mine->time_ns ||
			   ns->time_ns_for_children != mine->time_ns_for_children ? "time" : NULL;

	if (what)
		return ckpt_err(ctx, -EOPNOTSUPP,
				"pid %d: its %s namespace is not the checkpointer's: not supported",
				task_pid_vnr(t), what);
	if (ns->pid_ns_for_children != task_active_pid_ns(t))
		return ckpt_err(ctx, -EOPNOTSUPP,
				"pid %d made a new pid namespace for its children: not supported",
				task_pid_vnr(t));
	return 0;
}

/*
 * The tree's pid namespace is the checkpointer's, or one below it where
 * each task's pid is the one it has here; restart can make either.
 */
static int checkpoint_may_pid_ns(struct ckpt_ctx *ctx, struct task_struct *t,
				 struct pid_namespace *tree_ns)
{
	struct pid_namespace *mine = task_active_pid_ns(current);
	pid_t pid = task_pid_vnr(t), inside = task_pid_nr_ns(t, tree_ns);

	if (task_active_pid_ns(t) != tree_ns)
		return ckpt_err(ctx, -EOPNOTSUPP,
				"pid %d: its pid namespace is not its tree root's: not supported",
				pid);
	if (tree_ns != mine && (tree_ns->parent != mine || inside != pid))
		return ckpt_err(ctx, -EOPNOTSUPP,
				"pid %d is in a pid namespace that is not the checkpointer's (pid %d there): not supported",
				pid, inside);
	return 0;
}

/* @t's namespace of a kind the root may have of its own is the root's */
static int checkpoint_may_share_root(struct ckpt_ctx *ctx, struct task_struct *t,
				     struct nsproxy *ns, struct nsproxy *root)
{
	const char *what = ns->uts_ns != root->uts_ns ? "UTS" :
			   ns->ipc_ns != root->ipc_ns ? "IPC" : NULL;

	if (what)
		return ckpt_err(ctx, -EOPNOTSUPP,
				"pid %d: its %s namespace is not its tree root's: not supported",
				task_pid_vnr(t), what);
	return 0;
}

/*
 * Whether the root's namespace of a kind is its own (@ns is not its
 * parent's @parent); if it is its parent's, it must be the checkpointer's.
 */
static int ckpt_own_ns(struct ckpt_ctx *ctx, struct task_struct *root, const char *what,
		       void *ns, void *parent, void *mine)
{
	if (ns != parent)
		return 1;
	if (ns != mine)
		return ckpt_err(ctx, -EOPNOTSUPP,
				"pid %d: its %s namespace is its parent's, not the checkpointer's: not supported",
				task_pid_vnr(root), what);
	return 0;
}

static int checkpoint_uts_ns(struct ckpt_ctx *ctx, struct uts_namespace *uts)
{
	struct ckpt_hdr_uts_ns h = {};

	/* uts_sem is not for modules: the tree is frozen, and the copy ends in a NUL */
	memcpy(h.nodename, uts->name.nodename, sizeof(h.nodename) - 1);
	memcpy(h.domainname, uts->name.domainname, sizeof(h.domainname) - 1);
	return ckpt_write_obj(ctx, &h, CKPT_HDR_UTS_NS, sizeof(h));
}

/* The namespace checks on the frozen tree, and the root's own namespaces, after TREE */
int checkpoint_namespaces(struct ckpt_ctx *ctx, struct ckpt_tree *tree)
{
	struct task_struct *root = tree->tasks[0];
	struct nsproxy mine, rootns, pns, ns;
	struct pid_namespace *tree_pid_ns;
	int own_uts, own_ipc, ret;
	u32 i;

	/* a root that is a leader gone before its threads: its first thread's */
	for (i = 0; i + 1 < tree->nr && tree->zombie[i]; i++)
		if (!same_thread_group(tree->tasks[i + 1], root))
			break;
	root = tree->tasks[i];
	tree_pid_ns = task_active_pid_ns(root);
	ckpt_task_nsproxy(current, &mine);
	if (!ckpt_task_nsproxy(root, &rootns))
		return ckpt_err(ctx, -ESRCH, "pid %d is exiting", task_pid_vnr(root));
	for (i = 0; i < tree->nr; i++) {
		struct task_struct *t = tree->tasks[i];

		/* a zombie's namespaces are gone with it */
		if (tree->zombie[i] || !ckpt_task_nsproxy(t, &ns))
			continue;
		ret = checkpoint_may_task_ns(ctx, t, &ns, &mine);
		if (!ret)
			ret = checkpoint_may_pid_ns(ctx, t, tree_pid_ns);
		if (!ret)
			ret = checkpoint_may_share_root(ctx, t, &ns, &rootns);
		if (ret)
			return ret;
	}

	if (ckpt_parent_nsproxy(root, &pns))
		return ckpt_err(ctx, -EAGAIN,
				"the parent of pid %d is exiting",
				task_pid_vnr(root));
	own_uts = ckpt_own_ns(ctx, root, "UTS", rootns.uts_ns, pns.uts_ns, mine.uts_ns);
	own_ipc = ckpt_own_ns(ctx, root, "IPC", rootns.ipc_ns, pns.ipc_ns, mine.ipc_ns);
	if (own_uts < 0)
		return own_uts;
	if (own_ipc < 0)
		return own_ipc;
	ret = own_uts ? checkpoint_uts_ns(ctx, rootns.uts_ns) : 0;
	if (!ret && own_ipc)
		ret = checkpoint_ipc_ns(ctx, tree, rootns.ipc_ns);
	return ret;
}

static bool ckpt_uts_name_ok(const char *name, size_t size)
{
	return memchr(name, 0, size) && !memchr_inv(name + strlen(name), 0,
						  size - strlen(name));
}

/* After TREE, once for the group: the root's own namespaces, checked */
int restore_prepare_namespaces(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_uts_ns *h;

	if (ckpt_peek(ctx) == CKPT_HDR_UTS_NS) {
		h = ckpt_next(ctx, CKPT_HDR_UTS_NS, sizeof(*h));
		if (IS_ERR(h))
			return PTR_ERR(h);
		if (h->h.len != sizeof(*h) || !ckpt_uts_name_ok(h->nodename, sizeof(h->nodename)) ||
		    !ckpt_uts_name_ok(h->domainname, sizeof(h->domainname)))
			return ckpt_err(ctx, -EINVAL, "bad UTS_NS object");
		ctx->uts_ns = h;
	}
	return restore_prepare_ipc_ns(ctx);
}

/*
 * Where task @idx restarts: the root in fresh namespaces of the kinds it
 * had of its own (never the restarter's: sethostname(2) there would
 * rename the host), every other task in its parent's.
 */
int restore_prepare_task_namespaces(struct ckpt_ctx *ctx, u32 idx)
{
	struct nsproxy ns, pns;
	pid_t pid = task_pid_vnr(current);

	/* a thread, cloned from its leader, has the leader's */
	if (!thread_group_leader(current))
		return 0;
	ckpt_task_nsproxy(current, &ns);
	if (ckpt_parent_nsproxy(current, &pns))
		return ckpt_err(ctx, -EAGAIN, "the parent of pid %d is exiting", pid);
	if (idx) {
		if (ns.uts_ns != pns.uts_ns || ns.ipc_ns != pns.ipc_ns)
			return ckpt_err(ctx, -EINVAL,
					"pid %d does not share the UTS and IPC namespaces of its parent",
					pid);
		return 0;
	}
	if (ctx->uts_ns && ns.uts_ns == pns.uts_ns)
		return ckpt_err(ctx, -EINVAL,
				"pid %d had a UTS namespace of its own: restart it in a new one (cr-mktree -n)",
				pid);
	if (ctx->ipc && ns.ipc_ns == pns.ipc_ns)
		return ckpt_err(ctx, -EINVAL,
				"pid %d had an IPC namespace of its own: restart it in a new one (cr-mktree -n)",
				pid);
	return ctx->ipc ? restore_prepare_ipc_fresh(ctx, ns.ipc_ns) : 0;
}

static int restore_uts_name(struct ckpt_ctx *ctx, int nr, const char *name,
			    void __user *scratch)
{
	size_t len = strlen(name);
	void __user *uname = ckpt_stage(scratch, 0, name, len + 1);
	long ret = uname ? ckpt_syscall(nr, (unsigned long)uname, len) : -EFAULT;

	if (ret)
		return ckpt_err(ctx, ret, "cannot set the %s name %s",
				nr == __NR_sethostname ? "host" : "domain", name);
	return 0;
}

/* In the root, before anything of the tree changes: its own namespaces, rebuilt */
int restore_namespaces(struct ckpt_ctx *ctx)
{
	void __user *scratch;
	int ret = 0;

	if (ctx->ns_restored)
		return 0;
	ctx->ns_restored = true;
	if (ctx->uts_ns) {
		scratch = ckpt_scratch_map(ctx);
		if (IS_ERR(scratch))
			return PTR_ERR(scratch);
		ret = restore_uts_name(ctx, __NR_sethostname, ctx->uts_ns->nodename, scratch);
		if (!ret)
			ret = restore_uts_name(ctx, __NR_setdomainname, ctx->uts_ns->domainname,
					       scratch);
		ckpt_scratch_unmap(scratch);
	}
	if (!ret && ctx->ipc)
		ret = restore_ipc_ns(ctx);
	return ret;
}
