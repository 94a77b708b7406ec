// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: credentials (ids, groups, capabilities, securebits).
 *
 * Restart never grants more than the restarting caller holds: ids other
 * than the caller's own need CAP_SETUID/CAP_SETGID, and each capability
 * set is the image's intersected with the caller's.  The opposite matters
 * as much: a task that ran with fewer rights than its restarter must not
 * come back with the restarter's, so the restored task takes the image's
 * ids and capabilities, not the caller's.
 *
 * The new credentials are built while the image is checked and committed
 * at the end of the restart, after every file was opened with the
 * caller's.  They keep the caller's user_struct and ucounts, so the
 * restarted task is counted against its restarter's per-user limits.
 */

#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/pid.h>
#include <linux/securebits.h>
#include <linux/slab.h>
#include <linux/uidgid.h>

#include "ckpt.h"

static u64 cap_val(kernel_cap_t c)
{
	return c.val;
}

int checkpoint_cred(struct ckpt_ctx *ctx, struct task_struct *t)
{
	struct user_namespace *ns = current_user_ns();
	const struct cred *c = get_task_cred(t);
	struct group_info *gi = c->group_info;
	struct ckpt_hdr_cred *h;
	u32 *groups;
	size_t len;
	int i, ret;

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
	h->uid = from_kuid_munged(ns, c->uid);
	h->euid = from_kuid_munged(ns, c->euid);
	h->suid = from_kuid_munged(ns, c->suid);
	h->fsuid = from_kuid_munged(ns, c->fsuid);
	h->gid = from_kgid_munged(ns, c->gid);
	h->egid = from_kgid_munged(ns, c->egid);
	h->sgid = from_kgid_munged(ns, c->sgid);
	h->fsgid = from_kgid_munged(ns, c->fsgid);
	h->cap_inheritable = cap_val(c->cap_inheritable);
	h->cap_permitted = cap_val(c->cap_permitted);
	h->cap_effective = cap_val(c->cap_effective);
	h->cap_bset = cap_val(c->cap_bset);
	h->cap_ambient = cap_val(c->cap_ambient);
	h->securebits = c->securebits;
	h->ngroups = gi->ngroups;
	groups = (u32 *)(h + 1);
	for (i = 0; i < gi->ngroups; i++)
		groups[i] = from_kgid_munged(ns, gi->gid[i]);
	ret = ckpt_write_obj(ctx, h, CKPT_HDR_CRED, len);
	kfree(h);
out:
	put_cred(c);
	return ret;
}

bool ckpt_uid_ok(const struct cred *old, kuid_t uid)
{
	return uid_eq(uid, old->uid) || uid_eq(uid, old->euid) ||
	       uid_eq(uid, old->suid) ||
	       ns_capable(current_user_ns(), CAP_SETUID);
}

bool ckpt_gid_ok(const struct cred *old, kgid_t gid)
{
	return gid_eq(gid, old->gid) || gid_eq(gid, old->egid) ||
	       gid_eq(gid, old->sgid) ||
	       ns_capable(current_user_ns(), CAP_SETGID);
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

/* @want, as far as the caller's @have allows; notes what it could not keep */
static kernel_cap_t ckpt_cap(struct ckpt_ctx *ctx, const char *set, u64 want,
			     kernel_cap_t have)
{
	kernel_cap_t c = { .val = want & CAP_VALID_MASK };

	if (c.val & ~have.val)
		ckpt_msg(ctx, "note: %s capabilities %#llx are beyond the caller's and were not restored\n",
			 set, c.val & ~have.val);
	return cap_intersect(c, have);
}

int restore_prepare_cred(struct ckpt_ctx *ctx)
{
	struct user_namespace *ns = current_user_ns();
	const struct cred *old = current_cred();
	struct group_info *gi;
	struct ckpt_hdr_cred *h;
	struct cred *new;
	kuid_t uids[4];
	kgid_t gids[4];
	u32 *groups;
	int i;

	h = ckpt_next(ctx, CKPT_HDR_CRED, sizeof(*h));
	if (IS_ERR(h))
		return PTR_ERR(h);
	if (h->ngroups > CKPT_NGROUPS_MAX ||
	    h->h.len != sizeof(*h) + ALIGN(h->ngroups * sizeof(u32), 8))
		return ckpt_err(ctx, -EINVAL, "bad CRED object");
	uids[0] = make_kuid(ns, h->uid);
	uids[1] = make_kuid(ns, h->euid);
	uids[2] = make_kuid(ns, h->suid);
	uids[3] = make_kuid(ns, h->fsuid);
	gids[0] = make_kgid(ns, h->gid);
	gids[1] = make_kgid(ns, h->egid);
	gids[2] = make_kgid(ns, h->sgid);
	gids[3] = make_kgid(ns, h->fsgid);
	for (i = 0; i < 4; i++) {
		if (!uid_valid(uids[i]) || !gid_valid(gids[i]))
			return ckpt_err(ctx, -EINVAL, "CRED object: an id has no mapping here");
		if (!ckpt_uid_ok(old, uids[i]))
			return ckpt_err(ctx, -EPERM, "the task ran as uid %u; the caller may not become it",
					from_kuid(ns, uids[i]));
		if (!ckpt_gid_ok(old, gids[i]))
			return ckpt_err(ctx, -EPERM, "the task ran as gid %u; the caller may not become it",
					from_kgid(ns, gids[i]));
	}
	if (h->securebits != old->securebits &&
	    !ns_capable(ns, CAP_SETPCAP))
		return ckpt_err(ctx, -EPERM, "the task's securebits %#x need CAP_SETPCAP",
				h->securebits);

	gi = groups_alloc(h->ngroups);
	if (!gi)
		return -ENOMEM;
	groups = (u32 *)(h + 1);
	for (i = 0; i < h->ngroups; i++) {
		gi->gid[i] = make_kgid(ns, groups[i]);
		if (!gid_valid(gi->gid[i])) {
			put_group_info(gi);
			return ckpt_err(ctx, -EINVAL, "CRED object: group %u has no mapping here",
					groups[i]);
		}
	}
	groups_sort(gi);
	if (!ckpt_same_groups(gi, old->group_info) && !ns_capable(ns, CAP_SETGID)) {
		put_group_info(gi);
		return ckpt_err(ctx, -EPERM, "the task's supplementary groups need CAP_SETGID");
	}

	new = prepare_creds();
	if (!new) {
		put_group_info(gi);
		return -ENOMEM;
	}
	set_groups(new, gi);
	put_group_info(gi);
	new->uid = uids[0];
	new->euid = uids[1];
	new->suid = uids[2];
	new->fsuid = uids[3];
	new->gid = gids[0];
	new->egid = gids[1];
	new->sgid = gids[2];
	new->fsgid = gids[3];
	new->securebits = h->securebits;
	new->cap_bset = ckpt_cap(ctx, "bounding", h->cap_bset, old->cap_bset);
	new->cap_permitted = ckpt_cap(ctx, "permitted", h->cap_permitted,
				      old->cap_permitted);
	new->cap_effective = ckpt_cap(ctx, "effective", h->cap_effective,
				      new->cap_permitted);
	new->cap_inheritable = ckpt_cap(ctx, "inheritable", h->cap_inheritable,
					cap_combine(old->cap_inheritable,
						    cap_intersect(old->cap_bset,
								  old->cap_permitted)));
	new->cap_ambient = ckpt_cap(ctx, "ambient", h->cap_ambient,
				    cap_intersect(new->cap_permitted,
						  new->cap_inheritable));
	ctx->new_cred = new;
	return 0;
}

/* Point of no return: the task takes the image's credentials */
void restore_cred(struct ckpt_ctx *ctx)
{
	commit_creds(ctx->new_cred);
	ctx->new_cred = NULL;
}
