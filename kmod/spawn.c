// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: spawning the tree at restart.
 *
 * Userspace creates the root of the tree; every other task is cloned by
 * its creator (its thread group's leader for a thread, the first task of
 * its parent process otherwise) once the creator is rebuilt, as fork(2)
 * and clone(2) made it the first time: a child forked from its rebuilt
 * parent shares the parent's private pages copy-on-write again, and a
 * task cloned with CLONE_VM, CLONE_FILES, CLONE_FS or CLONE_SIGHAND
 * shares the rebuilt object.  The credentials, limits, signal state and
 * registers of the creator are set only after its tasks are cloned, so
 * that they start with the restarter's.
 *
 * The clone is a real clone_with_pids(2): restart(2) returns into a stub,
 * two pages the engine maps at an address no mapping of the image uses,
 * with the registers set for one system call; the stub makes it and calls
 * restart(root, -1, RESTART_TASKSELF, -1) again, which goes on where the
 * task left off.  The child comes out of its clone in the stub too, and
 * calls restart the same way.  The same stub sets a created process's
 * session and process group (setsid(2), setpgid(2)) and ends a zombie the
 * way it ended.  While they run in the stub, the tasks block every signal
 * they can; the stub is unmapped before they return to their programs.
 */

#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/sort.h>
#include <linux/syscalls.h>
#include <linux/uaccess.h>
#include <asm/syscall.h>
#include <asm/unistd.h>

#include "ckpt.h"

/* kernel-patches/ 0001, 0002 */
#define CKPT_NR_RESTART		549
#define CKPT_NR_CLONE_WITH_PIDS	550

/*
 * Run the system call the registers hold, then restart(%r13, -1,
 * RESTART_TASKSELF, -1) with its result in %r12.  No stack is used.
 */
static const u8 ckpt_stub_code[] = {
	0x0f, 0x05,					/* syscall */
	0x49, 0x89, 0xc4,				/* mov %rax, %r12 */
	0xb8, 0x25, 0x02, 0x00, 0x00,			/* mov $549, %eax */
	0x4c, 0x89, 0xef,				/* mov %r13, %rdi */
	0x48, 0xc7, 0xc6, 0xff, 0xff, 0xff, 0xff,	/* mov $-1, %rsi */
	0xba, 0x01, 0x00, 0x00, 0x00,			/* mov $1, %edx */
	0x49, 0xc7, 0xc2, 0xff, 0xff, 0xff, 0xff,	/* mov $-1, %r10 */
	0x0f, 0x05,					/* syscall */
	0x0f, 0x0b,					/* ud2 */
};

/* What clone_with_pids(2) reads: one pid, for the innermost pid namespace */
struct ckpt_stub_data {
	struct clone_pid_set set;
	s32 pid[2];		/* innermost first */
};

static int ckpt_range_cmp(const void *a, const void *b)
{
	const struct ckpt_range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/*
 * Every range some mapping of the image (a VMA or a vDSO) takes, in any
 * mm of the tree, sorted and merged; *@nr of them.
 */
static struct ckpt_range *ckpt_image_ranges(struct ckpt_ctx *ctx, u32 *nr)
{
	const struct vdso_image *vdso = current->mm->context.vdso_image;
	struct ckpt_range *r;
	struct ckpt_obj *obj;
	u32 n = 0, max = 0, i, k;

	list_for_each_entry(obj, &ctx->objs, list)
		max += obj->h->type == CKPT_HDR_VMA || obj->h->type == CKPT_HDR_MM;
	r = kvcalloc(max_t(u32, max, 1), sizeof(*r), GFP_KERNEL);
	if (!r)
		return NULL;
	list_for_each_entry(obj, &ctx->objs, list) {
		u32 type = obj->h->type, len = obj->h->len;

		if (type == CKPT_HDR_VMA && len >= sizeof(struct ckpt_hdr_vma)) {
			struct ckpt_hdr_vma *v = (void *)obj->h;

			r[n].start = v->start;
			r[n++].end = v->end;
		} else if (type == CKPT_HDR_MM && len >= sizeof(struct ckpt_hdr_mm)) {
			struct ckpt_hdr_mm *m = (void *)obj->h;

			if (!m->vdso || !vdso)
				continue;
			r[n].start = m->vvar;
			r[n++].end = m->vdso + vdso->size;
		}
	}
	sort(r, n, sizeof(*r), ckpt_range_cmp, NULL);
	for (i = 0, k = 0; i < n; i++) {
		if (k && r[i].start <= r[k - 1].end)
			r[k - 1].end = max(r[k - 1].end, r[i].end);
		else
			r[k++] = r[i];
	}
	*nr = k;
	return r;
}

/* The code page read-only and executable, the data page writable */
static int ckpt_stub_try(u64 addr)
{
	unsigned long got;

	got = vm_mmap(NULL, addr, CKPT_STUB_SIZE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, 0);
	if (got != addr) {
		if (!IS_ERR_VALUE(got))
			vm_munmap(got, CKPT_STUB_SIZE);
		return -EEXIST;
	}
	got = vm_mmap(NULL, addr, PAGE_SIZE, PROT_READ | PROT_EXEC,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, 0);
	if (got == addr &&
	    access_process_vm(current, addr, (void *)ckpt_stub_code, sizeof(ckpt_stub_code),
			      FOLL_FORCE | FOLL_WRITE) == sizeof(ckpt_stub_code))
		return 0;
	vm_munmap(addr, CKPT_STUB_SIZE);
	return -EFAULT;
}

/*
 * Map the stub into current's mm, in the highest gap between the image's
 * mappings that current's mm has free too (a guard page either side); the
 * tasks cloned from current find it at the same place (ctx->stub).
 */
int ckpt_stub_map(struct ckpt_ctx *ctx)
{
	u64 top = TASK_SIZE - PAGE_SIZE, addr;
	struct ckpt_range *r;
	u32 n, i;

	/* the tasks cloned from the root find it where the root has it */
	if (ctx->stub)
		return ckpt_stub_try(ctx->stub) ?
		       ckpt_err(ctx, -ENOMEM, "cannot map the restart stub at %lx", ctx->stub) : 0;
	r = ckpt_image_ranges(ctx, &n);
	if (!r)
		return -ENOMEM;
	for (i = n + 1; i-- > 0 && !ctx->stub; ) {
		u64 lo = (i ? r[i - 1].end : SZ_1M) + PAGE_SIZE;
		u64 hi = i < n ? min(r[i].start, top) : top;

		if (hi < lo + CKPT_STUB_SIZE + PAGE_SIZE)
			continue;
		/* what the restarter has mapped there, if anything, is skipped */
		for (addr = hi - CKPT_STUB_SIZE - PAGE_SIZE; addr >= lo; addr -= SZ_1M) {
			if (!ckpt_stub_try(addr)) {
				ctx->stub = addr;
				break;
			}
			if (addr < lo + SZ_1M)
				break;
		}
	}
	kvfree(r);
	return ctx->stub ? 0 : ckpt_err(ctx, -ENOMEM, "no room for the restart stub");
}

/*
 * The stub is in current's mm (inherited, or mapped) at ctx->stub: its
 * code and data pages, two VMAs
 */
bool ckpt_stub_mapped(struct ckpt_ctx *ctx)
{
	struct vm_area_struct *vma;
	u64 addr = ctx->stub;
	bool ok = addr;

	mmap_read_lock(current->mm);
	while (ok && addr < ctx->stub + CKPT_STUB_SIZE) {
		vma = find_vma(current->mm, addr);
		ok = vma && vma->vm_start <= addr;
		if (ok)
			addr = vma->vm_end;
	}
	mmap_read_unlock(current->mm);
	return ok;
}

void ckpt_stub_unmap(struct ckpt_ctx *ctx)
{
	if (ctx->stub)
		vm_munmap(ctx->stub, CKPT_STUB_SIZE);
}

/* Whether [@start, @end) overlaps the stub */
bool ckpt_stub_overlaps(struct ckpt_ctx *ctx, u64 start, u64 end)
{
	return ctx->stub && start < ctx->stub + CKPT_STUB_SIZE && end > ctx->stub;
}

/*
 * Return to the stub to make system call @nr with @args: restart(2)
 * returns @nr, which the stub's syscall instruction then runs.
 */
long ckpt_stub_call(struct ckpt_ctx *ctx, pid_t root, long nr, long a0, long a1, long a2,
		    long a3, long a4)
{
	struct pt_regs *regs = current_pt_regs();

	regs->ip = ctx->stub;
	regs->di = a0;
	regs->si = a1;
	regs->dx = a2;
	regs->r10 = a3;
	regs->r8 = a4;
	regs->r9 = 0;
	regs->r13 = root;
	regs->cs = __USER_CS;
	regs->ss = __USER_DS;
	regs->flags = X86_EFLAGS_IF | X86_EFLAGS_FIXED;
	regs->orig_ax = -1;	/* nothing to restart on the way out */
	return nr;
}

/* What the last system call the stub made returned */
long ckpt_stub_result(void)
{
	return current_pt_regs()->r12;
}

/* Return to the stub to clone task @pid with @flags (CLONE_* and the exit signal) */
long ckpt_stub_clone(struct ckpt_ctx *ctx, pid_t root, u64 flags, pid_t pid, bool outer)
{
	unsigned long data = ctx->stub + PAGE_SIZE;
	struct ckpt_stub_data d = {
		.set = { .num_pids = outer ? 2 : 1,
			 .pids = data + offsetof(struct ckpt_stub_data, pid) },
		.pid = { pid, pid },
	};

	if (copy_to_user((void __user *)data, &d, sizeof(d)))
		return -EFAULT;
	return ckpt_stub_call(ctx, root, CKPT_NR_CLONE_WITH_PIDS, flags, 0, 0, 0, data);
}

/* The ids of what task @idx uses: its own, or a zombie leader's first live thread's */
static s32 *ckpt_spawn_ids(struct ckpt_group *g, u32 idx)
{
	u32 j;

	for (j = idx; j < g->nr_tasks && g->pids[j].tgid == g->pids[idx].tgid; j++)
		if (g->parts[j]->h->type == CKPT_HDR_TASK)
			return ((struct ckpt_hdr_task *)g->parts[j]->h)->share;
	return NULL;
}

s32 ckpt_spawn_share(struct ckpt_group *g, u32 idx, int kind)
{
	s32 *ids = ckpt_spawn_ids(g, idx);

	return ids ? ids[kind] : 0;
}

/*
 * Whether task @idx clones task @j: a leader (even one that exited) its
 * threads, the first live task of a process the child processes.
 */
bool ckpt_spawn_creates(struct ckpt_group *g, u32 idx, u32 j)
{
	struct ckpt_pids *p = g->pids;

	if (p[j].pid != p[j].tgid)
		return p[idx].pid == p[idx].tgid && p[j].tgid == p[idx].pid;
	return p[j].ppid == p[idx].tgid && ckpt_group_first_live(g, idx);
}

/*
 * The clone(2) flags that make task @j share with its creator @idx what
 * the image says they share, and its exit signal.  The engine checks
 * again what @j shares when @j is rebuilt; clone(2) refuses flags that
 * make no sense together.
 */
u64 ckpt_spawn_flags(struct ckpt_group *g, u32 idx, u32 j)
{
	s32 *mine = ckpt_spawn_ids(g, idx), *its = ckpt_spawn_ids(g, j);
	u64 flags = 0;
	int k;

	/* a zombie process shares nothing: it only ends again */
	if (!its || !mine)
		return SIGCHLD;
	for (k = 0; k < CKPT_SHARE_NR; k++)
		if (mine[k] == its[k])
			flags |= ckpt_share_flag[k];
	if (g->pids[j].pid != g->pids[j].tgid)
		return flags | CLONE_SYSVSEM;
	if (g->parts[j]->h->type == CKPT_HDR_TASK) {
		u32 sig = ((struct ckpt_hdr_task *)g->parts[j]->h)->exit_signal;

		return flags | (valid_signal(sig) && sig ? sig : SIGCHLD);
	}
	return flags | SIGCHLD;
}
