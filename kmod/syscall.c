// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: system calls replayed by the restarting task.
 *
 * Some state is rebuilt the way the task built it: through the system call
 * (timer_create(2), setitimer(2), sched_setattr(2), prctl(2), ...), run by
 * the restarting task on itself with the restarter's rights.  Restart then
 * creates nothing the caller could not have created, and the engine needs
 * no knowledge of the private structures behind those calls.  Kernel patch
 * 0011's checkpoint_replay_syscall() runs them, a fixed list, for a task
 * in restart(2) only.  Pointer arguments are staged in a scratch area of
 * the task's own address space, mapped for the replay only; it holds the
 * largest argument there is, a SysV message, and costs only the pages
 * written to.
 */

#include <linux/checkpoint.h>
#include <linux/err.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/uaccess.h>

#include "ckpt.h"

long ckpt_syscall_args(unsigned int nr, const unsigned long *a)
{
	struct pt_regs regs = {
		.di = a[0], .si = a[1], .dx = a[2],
		.r10 = a[3], .r8 = a[4], .r9 = a[5],
		.orig_ax = nr,
	};

	return checkpoint_replay_syscall(nr, &regs);
}

#define CKPT_SCRATCH_SIZE	(CKPT_OBJ_MAX + PAGE_SIZE)

/* A scratch area of current's address space, or an ERR_PTR */
void __user *ckpt_scratch_map(struct ckpt_ctx *ctx)
{
	unsigned long addr = vm_mmap(NULL, 0, CKPT_SCRATCH_SIZE, PROT_READ | PROT_WRITE,
				     MAP_PRIVATE | MAP_ANONYMOUS, 0);

	if (IS_ERR_VALUE(addr)) {
		ckpt_err(ctx, (long)addr, "cannot map a scratch area");
		return ERR_PTR((long)addr);
	}
	return (void __user *)addr;
}

void ckpt_scratch_unmap(void __user *scratch)
{
	vm_munmap((unsigned long)scratch, CKPT_SCRATCH_SIZE);
}

/* Copy @len bytes to @off in @scratch; returns where, or NULL */
void __user *ckpt_stage(void __user *scratch, size_t off, const void *buf, size_t len)
{
	if (off + len > CKPT_SCRATCH_SIZE || copy_to_user(scratch + off, buf, len))
		return NULL;
	return scratch + off;
}
