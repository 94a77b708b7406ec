// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: registers, FPU/extended state, FS/GS base (x86_64).
 *
 * The target of a checkpoint is frozen, so its user registers are in
 * pt_regs and its FPU state is in memory; the FPU state is saved through
 * the ptrace regset (XSAVE layout, or FXSAVE on CPUs without XSAVE).
 * Restart loads that image into current with x86_set_current_fpstate()
 * (kernel-patches/ 0006), which applies the regset setters' checks of a
 * user-supplied image.
 *
 * A task that checkpoints itself is saved in checkpoint(2), which it
 * returns from with 0 when restarted.
 *
 * A task may have been frozen inside a system call.  At restart it returns
 * from restart(2) straight into the checkpointed code, so such a call is
 * restarted the way signal delivery restarts an interrupted call.
 */

#include <linux/elf.h>
#include <linux/errno.h>
#include <linux/regset.h>
#include <linux/ptrace.h>
#include <linux/sched/task_stack.h>
#include <linux/slab.h>
#include <asm/fpu/regset.h>
#include <asm/proto.h>
#include <asm/ptrace.h>
#include <asm/segment.h>

#include "ckpt.h"

#define CKPT_USER_EFLAGS (X86_EFLAGS_CF | X86_EFLAGS_PF | X86_EFLAGS_AF | \
			  X86_EFLAGS_ZF | X86_EFLAGS_SF | X86_EFLAGS_DF | \
			  X86_EFLAGS_OF | X86_EFLAGS_AC | X86_EFLAGS_ID)

static const struct user_regset *ckpt_regset(struct task_struct *t, unsigned int note)
{
	const struct user_regset_view *view = task_user_regset_view(t);
	unsigned int i;

	for (i = 0; i < view->n; i++)
		if (view->regsets[i].core_note_type == note &&
		    view->regsets[i].n)
			return &view->regsets[i];
	return NULL;
}

static int checkpoint_fpu(struct ckpt_ctx *ctx, struct task_struct *t)
{
	static const unsigned int notes[] = { NT_X86_XSTATE, NT_PRFPREG };
	struct ckpt_hdr_fpu *h;
	unsigned int i, size;
	int ret = -EOPNOTSUPP;

	for (i = 0; i < ARRAY_SIZE(notes); i++) {
		const struct user_regset *rs = ckpt_regset(t, notes[i]);

		if (!rs)
			continue;
		size = rs->n * rs->size;
		h = kzalloc(sizeof(*h) + ALIGN(size, 8), GFP_KERNEL);
		if (!h)
			return -ENOMEM;
		ret = regset_get(t, rs, size, h + 1);
		if (ret == size) {
			h->note = notes[i];
			h->size = size;
			ret = ckpt_write_obj(ctx, h, CKPT_HDR_FPU,
					     sizeof(*h) + ALIGN(size, 8));
			kfree(h);
			return ret;
		}
		kfree(h);
		if (ret >= 0)
			ret = -EIO;
	}
	return ckpt_err(ctx, ret, "cannot read the FPU state");
}

/* current's FS/GS base, which only the general regset reads from the CPU */
static int checkpoint_own_bases(struct ckpt_hdr_cpu *h)
{
	const struct user_regset *rs = ckpt_regset(current, NT_PRSTATUS);
	struct user_regs_struct regs;
	int ret;

	if (!rs)
		return -EOPNOTSUPP;
	ret = regset_get(current, rs, sizeof(regs), &regs);
	if (ret != sizeof(regs))
		return ret < 0 ? ret : -EIO;
	h->fs_base = regs.fs_base;
	h->gs_base = regs.gs_base;
	return 0;
}

int checkpoint_cpu(struct ckpt_ctx *ctx, struct task_struct *t)
{
	struct pt_regs *regs = task_pt_regs(t);
	struct ckpt_hdr_cpu h = {};

	if (!user_64bit_mode(regs))
		return ckpt_err(ctx, -EOPNOTSUPP, "only 64-bit tasks are supported");
	h.r15 = regs->r15;
	h.r14 = regs->r14;
	h.r13 = regs->r13;
	h.r12 = regs->r12;
	h.bp = regs->bp;
	h.bx = regs->bx;
	h.r11 = regs->r11;
	h.r10 = regs->r10;
	h.r9 = regs->r9;
	h.r8 = regs->r8;
	h.ax = regs->ax;
	h.cx = regs->cx;
	h.dx = regs->dx;
	h.si = regs->si;
	h.di = regs->di;
	h.orig_ax = regs->orig_ax;
	h.ip = regs->ip;
	h.cs = regs->cs;
	h.flags = regs->flags;
	h.sp = regs->sp;
	h.ss = regs->ss;
	/* a frozen task is switched out: its bases are in thread_struct */
	h.fs_base = t->thread.fsbase;
	h.gs_base = t->thread.gsbase;
	h.ds = t->thread.ds;
	h.es = t->thread.es;
	h.fs = t->thread.fsindex;
	h.gs = t->thread.gsindex;
	if (t == current) {
		/* a self-checkpoint: the bases are in the CPU; restarted, it returns 0 */
		int ret = checkpoint_own_bases(&h);

		if (ret)
			return ckpt_err(ctx, ret, "cannot read the FS/GS base");
		h.ax = 0;
		h.orig_ax = -1;
	}
	return ckpt_write_obj(ctx, &h, CKPT_HDR_CPU, sizeof(h)) ?:
	       checkpoint_fpu(ctx, t);
}

int restore_prepare_cpu(struct ckpt_ctx *ctx)
{
	const struct user_regset *rs;
	struct ckpt_hdr_cpu *c;
	struct ckpt_hdr_fpu *f;

	c = ckpt_next(ctx, CKPT_HDR_CPU, sizeof(*c));
	if (IS_ERR(c))
		return PTR_ERR(c);
	if (c->h.len != sizeof(*c) || c->cs != __USER_CS ||
	    c->ip >= TASK_SIZE_MAX || c->sp >= TASK_SIZE_MAX ||
	    c->fs_base >= TASK_SIZE_MAX || c->gs_base >= TASK_SIZE_MAX)
		return ckpt_err(ctx, -EINVAL, "bad CPU object");
	ctx->cpu = c;

	f = ckpt_next(ctx, CKPT_HDR_FPU, sizeof(*f));
	if (IS_ERR(f))
		return PTR_ERR(f);
	if (f->note != NT_X86_XSTATE && f->note != NT_PRFPREG)
		return ckpt_err(ctx, -EINVAL, "bad FPU object");
	rs = ckpt_regset(current, f->note);
	if (!rs || rs->n * rs->size != f->size ||
	    f->h.len != sizeof(*f) + ALIGN(f->size, 8))
		return ckpt_err(ctx, -EINVAL,
				"the FPU state of the image (%u bytes) does not fit this CPU",
				f->size);
	ctx->fpu = f;
	return 0;
}

/* Return value of restart(2) for a task frozen at @c, adjusting @regs */
static long restore_syscall(struct ckpt_hdr_cpu *c, struct pt_regs *regs)
{
	if ((long)c->orig_ax < 0)
		return c->ax;		/* frozen in user mode */

	/*
	 * Frozen in a freezable sleep, before the call set its result: ax
	 * still holds what the entry code puts there (-ENOSYS), as ours does
	 * while restart(2) runs.
	 */
	if (c->ax == regs->ax) {
		regs->ip -= 2;		/* the syscall instruction, again */
		return c->orig_ax;
	}
	switch ((long)c->ax) {
	case -ERESTARTNOHAND:
	case -ERESTARTSYS:
	case -ERESTARTNOINTR:
		regs->ip -= 2;		/* the syscall instruction, again */
		return c->orig_ax;
	case -ERESTART_RESTARTBLOCK:
		return -EINTR;		/* its restart block was not saved */
	}
	return c->ax;
}

int restore_cpu(struct ckpt_ctx *ctx, long *ax)
{
	struct pt_regs *regs = current_pt_regs();
	struct ckpt_hdr_cpu *c = ctx->cpu;
	struct ckpt_hdr_fpu *f = ctx->fpu;
	int ret;

	ret = x86_set_current_fsgsbase(c->fs_base, c->gs_base);
	if (ret)
		return ckpt_err(ctx, ret, "cannot set the FS/GS base");

	/* the regset setters are for a stopped tracee: this one is for current */
	ret = x86_set_current_fpstate(f + 1, f->size);
	if (ret)
		return ckpt_err(ctx, ret, "the FPU state of the image was refused");

	regs->r15 = c->r15;
	regs->r14 = c->r14;
	regs->r13 = c->r13;
	regs->r12 = c->r12;
	regs->bp = c->bp;
	regs->bx = c->bx;
	regs->r11 = c->r11;
	regs->r10 = c->r10;
	regs->r9 = c->r9;
	regs->r8 = c->r8;
	regs->cx = c->cx;
	regs->dx = c->dx;
	regs->si = c->si;
	regs->di = c->di;
	regs->ip = c->ip;
	regs->sp = c->sp;
	regs->flags = (c->flags & CKPT_USER_EFLAGS) | X86_EFLAGS_IF | X86_EFLAGS_FIXED;
	regs->cs = __USER_CS;
	regs->ss = __USER_DS;
	/* in vfork(2), it returns the child's pid (restore_vfork()) */
	if (!(ctx->task->flags & CKPT_TASK_VFORK_WAIT))
		*ax = restore_syscall(c, regs);
	/* regs->orig_ax still says restart(2): replays check it; task.c clears it */
	return 0;
}
