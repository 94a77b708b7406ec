// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: credentials (ids, groups, capabilities, securebits), and
 * the context that bounds them.
 *
 * Who may restart: restart(2) itself requires CAP_CHECKPOINT_RESTORE over
 * the caller's pid namespace (kernel patch 0001), so an unprivileged user
 * can restart its own tasks inside a user namespace it owns.  The image is
 * still untrusted, so each piece of it passes exactly the checks of the
 * system call that would set it, with the restarter's credentials:
 * setresuid(2)/setresgid(2) and setfsuid(2)/setfsgid(2) for the ids,
 * setgroups(2) for the groups (may_setgroups(): never in a user namespace
 * whose setgroups is "deny"), PR_SET_SECUREBITS for the securebits (no
 * undefined bit, no locked bit changed or unlocked, CAP_SETPCAP),
 * PR_CAPBSET_DROP for the bounding set, capset(2) (security_capset()) for
 * the permitted, effective and inheritable sets and PR_CAP_AMBIENT_RAISE
 * for the ambient set, each with the LSM hooks those calls run.  What
 * would be refused gives EPERM and changes nothing; nothing is silently
 * narrowed.  The new credentials are built while the image is checked and
 * committed at the end of the restart, after every file was opened with
 * the restarter's; like setresuid(2) they move the task to the per-user
 * accounting (user_struct, ucounts) of the uid it runs as.
 *
 * A restarted task lives in its restarter's user namespace and other
 * namespaces, under its root directory and LSM label.  Checkpoint refuses
 * a task whose own are different (net, mnt, user, cgroup, time, uts, ipc
 * and pid namespaces, a chroot, another LSM label) rather than let it
 * come back less confined.
 */

#include <linux/capability.h>
#include <linux/cgroup.h>
#include <linux/cred.h>
#include <linux/fs_struct.h>
#include <linux/ipc_namespace.h>
#include <linux/pid.h>
#include <linux/pid_namespace.h>
#include <linux/sched/user.h>
#include <linux/securebits.h>
#include <linux/security.h>
#include <linux/slab.h>
#include <linux/time_namespace.h>
#include <linux/uidgid.h>
#include <linux/user_namespace.h>
#include <linux/utsname.h>

#include "ckpt.h"

static u64 cap_val(kernel_cap_t c)
{
	return c.val;
}

/*
 * What bounds @t that a restarted task would not keep: refused by name
 * (namespaces: namespaces.c)
 */
static int checkpoint_confinement(struct ckpt_ctx *ctx, struct task_struct *t)
{
	pid_t pid = task_pid_vnr(t);
	struct path root, mine;
	u32 secid, my_secid;
	bool chrooted;

	task_lock(t);
	if (!t->fs) {
		task_unlock(t);
		return ckpt_err(ctx, -ESRCH, "pid %d is exiting", pid);
	}
	get_fs_root(t->fs, &root);
	task_unlock(t);
	get_fs_root(current->fs, &mine);
	chrooted = !path_equal(&root, &mine);
	path_put(&root);
	path_put(&mine);
	if (chrooted)
		return ckpt_err(ctx, -EOPNOTSUPP,
				"pid %d: a root directory other than the checkpointer's (chroot) is not supported",
				pid);
	rcu_read_lock();
	security_cred_getsecid(__task_cred(t), &secid);
	rcu_read_unlock();
	security_cred_getsecid(current_cred(), &my_secid);
	if (secid != my_secid)
		return ckpt_err(ctx, -EOPNOTSUPP,
				"pid %d: an LSM label other than the checkpointer's is not supported",
				pid);
	return 0;
}

/* Whether one of @nr ids is (u32)-1, what from_kuid() gives an unmapped one */
static bool ckpt_unmapped(const u32 *ids, u32 nr)
{
	u32 i;

	for (i = 0; i < nr; i++)
		if (ids[i] == (u32)-1)
			return true;
	return false;
}

int checkpoint_cred(struct ckpt_ctx *ctx, struct task_struct *t)
{
	struct user_namespace *ns = current_user_ns();
	struct ckpt_hdr_cred *h = NULL;
	const struct cred *c;
	struct group_info *gi;
	u32 *groups, ids[8];
	size_t len;
	int i, ret;

	ret = checkpoint_confinement(ctx, t);
	if (ret)
		return ret;
	c = get_task_cred(t);
	gi = c->group_info;
	if (gi->ngroups > CKPT_NGROUPS_MAX) {
		ret = ckpt_err(ctx, -E2BIG, "pid %d is in %d groups; at most %d are supported",
			       task_pid_vnr(t), gi->ngroups, CKPT_NGROUPS_MAX);
		goto out;
	}
	len = sizeof(*h) + ALIGN(gi->ngroups * sizeof(u32), 8);
	h = kzalloc(len, GFP_KERNEL);
	if (!h) {
		ret = -ENOMEM;
		goto out;
	}
	/* the same user namespace (checked above): every id has a mapping */
	h->uid = from_kuid(ns, c->uid);
	h->euid = from_kuid(ns, c->euid);
	h->suid = from_kuid(ns, c->suid);
	h->fsuid = from_kuid(ns, c->fsuid);
	h->gid = from_kgid(ns, c->gid);
	h->egid = from_kgid(ns, c->egid);
	h->sgid = from_kgid(ns, c->sgid);
	h->fsgid = from_kgid(ns, c->fsgid);
	h->cap_inheritable = cap_val(c->cap_inheritable);
	h->cap_permitted = cap_val(c->cap_permitted);
	h->cap_effective = cap_val(c->cap_effective);
	h->cap_bset = cap_val(c->cap_bset);
	h->cap_ambient = cap_val(c->cap_ambient);
	h->securebits = c->securebits;
	h->ngroups = gi->ngroups;
	groups = (u32 *)(h + 1);
	for (i = 0; i < gi->ngroups; i++)
		groups[i] = from_kgid(ns, gi->gid[i]);
	/* an id of an outer namespace (no uid_map yet, a group from before unshare) */
	ids[0] = h->uid;
	ids[1] = h->euid;
	ids[2] = h->suid;
	ids[3] = h->fsuid;
	ids[4] = h->gid;
	ids[5] = h->egid;
	ids[6] = h->sgid;
	ids[7] = h->fsgid;
	if (ckpt_unmapped(ids, ARRAY_SIZE(ids)) || ckpt_unmapped(groups, h->ngroups)) {
		ret = ckpt_err(ctx, -EOPNOTSUPP,
			       "pid %d has an id its user namespace does not map: it could not be given back",
			       task_pid_vnr(t));
		goto out;
	}
	ret = ckpt_write_obj(ctx, h, CKPT_HDR_CRED, len);
out:
	kfree(h);
	put_cred(c);
	return ret;
}

/* setresuid(2): each new id one of the old ones, or CAP_SETUID */
bool ckpt_uid_ok(const struct cred *old, kuid_t uid)
{
	return uid_eq(uid, old->uid) || uid_eq(uid, old->euid) ||
	       uid_eq(uid, old->suid) ||
	       ns_capable_setid(old->user_ns, CAP_SETUID);
}

bool ckpt_gid_ok(const struct cred *old, kgid_t gid)
{
	return gid_eq(gid, old->gid) || gid_eq(gid, old->egid) ||
	       gid_eq(gid, old->sgid) ||
	       ns_capable_setid(old->user_ns, CAP_SETGID);
}

static bool ckpt_same_groups(const struct group_info *a, const struct group_info *b)
{
	int i;

	if (a->ngroups != b->ngroups)
		return false;
	for (i = 0; i < a->ngroups; i++)
		if (!gid_eq(a->gid[i], b->gid[i]))
			return false;
	return true;
}

/* PR_SET_SECUREBITS's checks, as commoncap applies them */
static int ckpt_securebits_ok(struct ckpt_ctx *ctx, const struct cred *old, u32 bits)
{
	if (bits == old->securebits)
		return 0;
	if (bits & ~(SECURE_ALL_BITS | SECURE_ALL_LOCKS))
		return ckpt_err(ctx, -EPERM, "securebits %#x: %#x are not defined", bits,
				bits & ~(SECURE_ALL_BITS | SECURE_ALL_LOCKS));
	if ((((old->securebits & SECURE_ALL_LOCKS) >> 1) & (old->securebits ^ bits)) ||
	    (old->securebits & SECURE_ALL_LOCKS & ~bits))
		return ckpt_err(ctx, -EPERM, "securebits %#x change bits the caller's %#x lock",
				bits, old->securebits);
	if (!ns_capable(old->user_ns, CAP_SETPCAP))
		return ckpt_err(ctx, -EPERM, "securebits %#x need CAP_SETPCAP", bits);
	return 0;
}

/* The image's capability sets, as PR_CAPBSET_DROP, capset(2) and PR_CAP_AMBIENT_RAISE allow */
static int ckpt_caps(struct ckpt_ctx *ctx, struct ckpt_hdr_cred *h, const struct cred *old,
		     struct cred *new)
{
	kernel_cap_t bset = { .val = h->cap_bset }, inh = { .val = h->cap_inheritable };
	kernel_cap_t perm = { .val = h->cap_permitted }, eff = { .val = h->cap_effective };
	kernel_cap_t amb = { .val = h->cap_ambient };
	int ret;

	if ((h->cap_bset | h->cap_inheritable | h->cap_permitted | h->cap_effective |
	     h->cap_ambient) & ~CAP_VALID_MASK)
		return ckpt_err(ctx, -EINVAL,
				"CRED object: capabilities this kernel does not know");
	if (!cap_issubset(bset, old->cap_bset))
		return ckpt_err(ctx, -EPERM, "bounding set %#llx: the caller's %#llx cannot grow",
				h->cap_bset, cap_val(old->cap_bset));
	if (!cap_issubset(old->cap_bset, bset) && !ns_capable(old->user_ns, CAP_SETPCAP))
		return ckpt_err(ctx, -EPERM,
				"bounding set %#llx: dropping capabilities needs CAP_SETPCAP",
				h->cap_bset);
	/* capset(2) against the restarter's sets: the LSMs' say included */
	ret = security_capset(new, old, &eff, &inh, &perm);
	if (ret)
		return ckpt_err(ctx, ret,
				"capabilities %#llx/%#llx/%#llx (permitted/effective/inheritable) are beyond what capset(2) allows the caller",
				h->cap_permitted, h->cap_effective, h->cap_inheritable);
	new->cap_bset = bset;
	if (!cap_isclear(amb) &&
	    (!cap_issubset(amb, cap_intersect(perm, inh)) ||
	     (old->securebits & issecure_mask(SECURE_NO_CAP_AMBIENT_RAISE))))
		return ckpt_err(ctx, -EPERM,
				"ambient set %#llx: PR_CAP_AMBIENT_RAISE would refuse it",
				h->cap_ambient);
	new->cap_ambient = amb;
	return 0;
}

/* The image's groups, or NULL with the error reported */
static struct group_info *ckpt_groups(struct ckpt_ctx *ctx, struct ckpt_hdr_cred *h)
{
	struct user_namespace *ns = current_user_ns();
	struct group_info *gi = groups_alloc(h->ngroups);
	u32 *groups = (u32 *)(h + 1);
	int i;

	if (!gi)
		return ERR_PTR(-ENOMEM);
	for (i = 0; i < h->ngroups; i++) {
		gi->gid[i] = make_kgid(ns, groups[i]);
		if (!gid_valid(gi->gid[i])) {
			put_group_info(gi);
			return ERR_PTR(ckpt_err(ctx, -EINVAL,
						"CRED object: group %u has no mapping here",
						groups[i]));
		}
	}
	groups_sort(gi);
	return gi;
}

static int ckpt_ids(struct ckpt_ctx *ctx, struct ckpt_hdr_cred *h, const struct cred *old,
		    struct cred *new)
{
	struct user_namespace *ns = current_user_ns();
	kuid_t uids[4] = { make_kuid(ns, h->uid), make_kuid(ns, h->euid),
			   make_kuid(ns, h->suid), make_kuid(ns, h->fsuid) };
	kgid_t gids[4] = { make_kgid(ns, h->gid), make_kgid(ns, h->egid),
			   make_kgid(ns, h->sgid), make_kgid(ns, h->fsgid) };
	int i, ret;

	for (i = 0; i < 4; i++)
		if (!uid_valid(uids[i]) || !gid_valid(gids[i]))
			return ckpt_err(ctx, -EINVAL, "CRED object: an id has no mapping here");
	/* setresuid/setresgid, then setfsuid/setfsgid (among the new ids) */
	for (i = 0; i < 4; i++) {
		bool fs_id = i == 3;

		if (!ckpt_uid_ok(old, uids[i]) &&
		    !(fs_id && (uid_eq(uids[3], uids[0]) || uid_eq(uids[3], uids[1]) ||
				uid_eq(uids[3], uids[2]))))
			return ckpt_err(ctx, -EPERM,
					"the task ran as uid %u; the caller may not become it",
					from_kuid(ns, uids[i]));
		if (!ckpt_gid_ok(old, gids[i]) &&
		    !(fs_id && (gid_eq(gids[3], gids[0]) || gid_eq(gids[3], gids[1]) ||
				gid_eq(gids[3], gids[2]))))
			return ckpt_err(ctx, -EPERM,
					"the task ran as gid %u; the caller may not become it",
					from_kgid(ns, gids[i]));
	}
	new->uid = uids[0];
	new->euid = uids[1];
	new->suid = uids[2];
	new->fsuid = uids[3];
	new->gid = gids[0];
	new->egid = gids[1];
	new->sgid = gids[2];
	new->fsgid = gids[3];
	if (!uid_eq(new->uid, old->uid)) {
		/* set_user(): the uid's own per-user accounting */
		struct user_struct *user = alloc_uid(new->uid);

		if (!user)
			return -EAGAIN;
		free_uid(new->user);
		new->user = user;
	}
	ret = set_cred_ucounts(new);
	if (ret)
		return ret;
	ret = security_task_fix_setuid(new, old, LSM_SETID_RES);
	if (!ret)
		ret = security_task_fix_setuid(new, old, LSM_SETID_FS);
	if (!ret)
		ret = security_task_fix_setgid(new, old, LSM_SETID_RES);
	if (!ret)
		ret = security_task_fix_setgid(new, old, LSM_SETID_FS);
	if (ret)
		return ckpt_err(ctx, ret, "an LSM refused the task's uids or gids");
	return 0;
}

int restore_prepare_cred(struct ckpt_ctx *ctx)
{
	const struct cred *old = current_cred();
	struct ckpt_hdr_cred *h;
	struct group_info *gi;
	struct cred *new;
	int ret;

	h = ckpt_next(ctx, CKPT_HDR_CRED, sizeof(*h));
	if (IS_ERR(h))
		return PTR_ERR(h);
	if (h->ngroups > CKPT_NGROUPS_MAX ||
	    h->h.len != sizeof(*h) + ALIGN(h->ngroups * sizeof(u32), 8))
		return ckpt_err(ctx, -EINVAL, "bad CRED object");
	ret = ckpt_securebits_ok(ctx, old, h->securebits);
	if (ret)
		return ret;
	gi = ckpt_groups(ctx, h);
	if (IS_ERR(gi))
		return PTR_ERR(gi);
	new = prepare_creds();
	if (!new) {
		put_group_info(gi);
		return -ENOMEM;
	}
	if (!ckpt_same_groups(gi, old->group_info)) {
		/* setgroups(2) */
		if (!may_setgroups()) {
			ret = ckpt_err(ctx, -EPERM,
				       "the task's supplementary groups differ from the caller's, and setgroups(2) is not allowed here");
			put_group_info(gi);
			goto err;
		}
		set_groups(new, gi);
		ret = security_task_fix_setgroups(new, old);
		if (ret)
			ckpt_err(ctx, ret, "an LSM refused the task's supplementary groups");
	}
	put_group_info(gi);
	if (!ret)
		ret = ckpt_ids(ctx, h, old, new);
	if (!ret)
		ret = ckpt_caps(ctx, h, old, new);
	if (ret)
		goto err;
	new->securebits = h->securebits;
	ctx->new_cred = new;
	return 0;
err:
	abort_creds(new);
	return ret;
}

/* Point of no return: the task takes the image's credentials */
void restore_cred(struct ckpt_ctx *ctx)
{
	commit_creds(ctx->new_cred);
	ctx->new_cred = NULL;
}
