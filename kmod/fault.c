// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: fault injection, for testing what a failure leaves behind.
 *
 * The module parameter "fault" names one stage that then fails as if a
 * real error had happened there ("STAGE" or "STAGE:N", as CR_FAULT in
 * userspace, which sets it; empty: none).  Root only, never set in
 * normal use, and read without a lock: a debug switch, not an ABI.
 */

#include <linux/kernel.h>
#include <linux/moduleparam.h>
#include <linux/string.h>
#include <linux/sysfs.h>

#include "ckpt.h"

struct ckpt_fault_stage {
	const char *name;
	bool counted;		/* takes an N */
	u32 n;			/* its default */
};

static const struct ckpt_fault_stage ckpt_fault_stages[] = {
	[CKPT_FAULT_DUMP_FROZEN] = { "dump-frozen" },
	[CKPT_FAULT_DUMP_OBJECTS] = { "dump-objects", true, 1 },
	[CKPT_FAULT_DUMP_PAGES] = { "dump-pages", true, 1 },
	[CKPT_FAULT_RESTORE_PREPARE] = { "restore-prepare", true, 0 },
	[CKPT_FAULT_RESTORE_MEMBER] = { "restore-member", true, 1 },
	[CKPT_FAULT_RESTORE_TREE] = { "restore-tree" },
};

static enum ckpt_fault ckpt_fault_stage = CKPT_FAULT_NONE;
static u32 ckpt_fault_n;

static int ckpt_fault_set(const char *val, const struct kernel_param *kp)
{
	char buf[32], *colon;
	u32 n = 0;
	int i;

	if (strscpy(buf, val, sizeof(buf)) < 0)
		return -EINVAL;
	strim(buf);
	if (!buf[0]) {
		WRITE_ONCE(ckpt_fault_stage, CKPT_FAULT_NONE);
		return 0;
	}
	colon = strchr(buf, ':');
	if (colon) {
		*colon = 0;
		if (kstrtou32(colon + 1, 10, &n))
			return -EINVAL;
	}
	for (i = 1; i < ARRAY_SIZE(ckpt_fault_stages); i++) {
		const struct ckpt_fault_stage *s = &ckpt_fault_stages[i];

		if (strcmp(buf, s->name))
			continue;
		if (colon && !s->counted)
			return -EINVAL;
		WRITE_ONCE(ckpt_fault_n, colon ? n : s->n);
		WRITE_ONCE(ckpt_fault_stage, i);
		return 0;
	}
	return -EINVAL;
}

static int ckpt_fault_get(char *buf, const struct kernel_param *kp)
{
	enum ckpt_fault stage = READ_ONCE(ckpt_fault_stage);

	if (stage == CKPT_FAULT_NONE)
		return sysfs_emit(buf, "\n");
	if (!ckpt_fault_stages[stage].counted)
		return sysfs_emit(buf, "%s\n", ckpt_fault_stages[stage].name);
	return sysfs_emit(buf, "%s:%u\n", ckpt_fault_stages[stage].name, READ_ONCE(ckpt_fault_n));
}

static const struct kernel_param_ops ckpt_fault_ops = {
	.set = ckpt_fault_set,
	.get = ckpt_fault_get,
};

module_param_cb(fault, &ckpt_fault_ops, NULL, 0600);
MODULE_PARM_DESC(fault, "debug: make one stage fail (STAGE[:N], as CR_FAULT; empty: none)");

/* Fail with -EIO, naming the fault, if the parameter names @stage at count @n */
int ckpt_fault(struct ckpt_ctx *ctx, enum ckpt_fault stage, u64 n)
{
	const struct ckpt_fault_stage *s = &ckpt_fault_stages[stage];

	if (READ_ONCE(ckpt_fault_stage) != stage || (s->counted && READ_ONCE(ckpt_fault_n) != n))
		return 0;
	if (s->counted)
		return ckpt_err(ctx, -EIO, "injected fault %s:%llu (crengine.fault)", s->name, n);
	return ckpt_err(ctx, -EIO, "injected fault %s (crengine.fault)", s->name);
}
