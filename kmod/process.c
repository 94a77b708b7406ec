// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: process attributes that prctl(2), personality(2) and
 * sched_setattr(2) and sched_setaffinity(2) set, the executable, and a
 * job-control stop.
 *
 * The PROCESS object holds the personality, the parent-death signal,
 * dumpable, child subreaper, timer slack, no_new_privs, the scheduling
 * policy with its priority, nice value and deadline parameters, the CPU
 * affinity, the path of /proc/self/exe and whether the task was stopped by
 * a signal.  The comm (PR_SET_NAME) is in the TASK object.
 *
 * Restart replays personality(2), setpriority(2), sched_setaffinity(2),
 * sched_setattr(2) and prctl(PR_SET_MM_MAP) with the restarter's rights
 * before the task takes its own credentials; the parent-death signal and
 * dumpable come after them, since a change of credentials resets both.  A
 * stopped task re-enters its stop on its way back to user mode, without a
 * second notification to its parent.
 */

#include <linux/bitmap.h>
#include <linux/cpumask.h>
#include <linux/fdtable.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/prctl.h>
#include <linux/personality.h>
#include <linux/resource.h>
#include <linux/sched.h>
#include <linux/sched/coredump.h>
#include <linux/sched/jobctl.h>
#include <linux/sched/mm.h>
#include <linux/sched/prio.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/syscalls.h>
#include <uapi/linux/sched/types.h>

#include "ckpt.h"

#define CKPT_PROC_FLAGS (CKPT_PROC_SUBREAPER | CKPT_PROC_NO_NEW_PRIVS | \
			 CKPT_PROC_STOPPED | CKPT_PROC_RESET_ON_FORK)

/* The path of @mm's executable into @buf, NULL if none, or an ERR_PTR */
static char *ckpt_exe_path(struct ckpt_ctx *ctx, struct mm_struct *mm, pid_t pid, char *buf)
{
	struct file *exe;
	char *path = NULL;

	mmap_read_lock(mm);
	ckpt_hold_log(ctx);
	exe = rcu_dereference_protected(mm->exe_file, lockdep_is_held(&mm->mmap_lock));
	if (exe && d_unlinked(exe->f_path.dentry))
		path = ERR_PTR(ckpt_err(ctx, -EOPNOTSUPP,
					"pid %d: its executable %pD was deleted", pid, exe));
	else if (exe)
		path = d_path(&exe->f_path, buf, PATH_MAX);
	mmap_read_unlock(mm);
	ckpt_release_log(ctx);
	if (IS_ERR(path) && PTR_ERR(path) != -EOPNOTSUPP)
		ckpt_err(ctx, PTR_ERR(path), "pid %d: no path for its executable", pid);
	return path;
}

/* Bits of the PROCESS object's affinity bitmap that can name a CPU here */
static unsigned int ckpt_cpu_bits(void)
{
	return min_t(unsigned int, nr_cpu_ids, CKPT_CPUS_MAX);
}

/* The CPUs sched_getaffinity(2) reports for @t, into the bitmap @cpus */
static int checkpoint_affinity(struct ckpt_ctx *ctx, struct task_struct *t, pid_t pid,
			       __u64 *cpus)
{
	cpumask_var_t mask;
	int ret = 0;

	if (!alloc_cpumask_var(&mask, GFP_KERNEL))
		return -ENOMEM;
	if (!cpumask_and(mask, &t->cpus_mask, cpu_active_mask))
		ret = ckpt_err(ctx, -EOPNOTSUPP, "pid %d: CPU affinity %*pbl holds no active CPU",
			       pid, cpumask_pr_args(&t->cpus_mask));
	else if (cpumask_last(mask) >= CKPT_CPUS_MAX)
		ret = ckpt_err(ctx, -EOPNOTSUPP,
			       "pid %d: CPU affinity %*pbl names a CPU above %d: not supported",
			       pid, cpumask_pr_args(mask), CKPT_CPUS_MAX - 1);
	else
		bitmap_to_arr64(cpus, cpumask_bits(mask), ckpt_cpu_bits());
	free_cpumask_var(mask);
	return ret;
}

int checkpoint_process(struct ckpt_ctx *ctx, struct task_struct *t)
{
	struct ckpt_hdr_process h = {};
	pid_t pid = task_pid_vnr(t);
	struct mm_struct *mm;
	char *buf, *path;
	int ret;

	ret = checkpoint_affinity(ctx, t, pid, h.cpus);
	if (ret)
		return ret;
	h.personality = t->personality;
	h.pdeath_signal = t->pdeath_signal;
	h.flags = (t->signal->is_child_subreaper ? CKPT_PROC_SUBREAPER : 0) |
		  (task_no_new_privs(t) ? CKPT_PROC_NO_NEW_PRIVS : 0) |
		  (t->sched_reset_on_fork ? CKPT_PROC_RESET_ON_FORK : 0);
	h.timer_slack_ns = t->timer_slack_ns;
	h.default_timer_slack_ns = t->default_timer_slack_ns;
	h.policy = t->policy;
	h.rt_priority = t->rt_priority;
	h.nice = task_nice(t);
	if (t->policy == SCHED_DEADLINE) {
		h.dl_runtime = t->dl.dl_runtime;
		h.dl_deadline = t->dl.dl_deadline;
		h.dl_period = t->dl.dl_period;
	}
	spin_lock_irq(&t->sighand->siglock);
	if ((t->signal->flags & SIGNAL_STOP_STOPPED) && (t->jobctl & JOBCTL_STOPPED)) {
		h.flags |= CKPT_PROC_STOPPED;
		h.stop_signal = t->jobctl & JOBCTL_STOP_SIGMASK;
		h.stop_code = t->signal->group_exit_code;
	}
	spin_unlock_irq(&t->sighand->siglock);

	mm = get_task_mm(t);
	if (!mm)
		return ckpt_err(ctx, -EINVAL, "pid %d has no address space", pid);
	h.dumpable = get_dumpable(mm);
	/* PR_SET_DUMPABLE sets 0 or 1: what suid_dumpable=2 gave, restart could not */
	if (h.dumpable > SUID_DUMP_USER) {
		mmput(mm);
		return ckpt_err(ctx, -EOPNOTSUPP,
				"pid %d: dumpable %u (from suid_dumpable) cannot be restored by prctl(PR_SET_DUMPABLE)",
				pid, h.dumpable);
	}
	buf = __getname();
	if (!buf) {
		mmput(mm);
		return -ENOMEM;
	}
	path = ckpt_exe_path(ctx, mm, pid, buf);
	mmput(mm);
	if (IS_ERR(path)) {
		ret = PTR_ERR(path);
	} else if (path) {
		h.exe_len = strlen(path) + 1;
		ret = ckpt_write_obj_str(ctx, &h, CKPT_HDR_PROCESS, sizeof(h), path);
	} else {
		ret = ckpt_write_obj(ctx, &h, CKPT_HDR_PROCESS, sizeof(h));
	}
	__putname(buf);
	return ret;
}

static bool ckpt_sched_ok(struct ckpt_hdr_process *h)
{
	switch (h->policy) {
	case SCHED_NORMAL:
	case SCHED_BATCH:
	case SCHED_IDLE:
		return !h->rt_priority;
	case SCHED_FIFO:
	case SCHED_RR:
		return h->rt_priority >= 1 && h->rt_priority < MAX_RT_PRIO;
	case SCHED_DEADLINE:
		return !h->rt_priority;
	}
	return false;
}

int restore_prepare_process(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_process *h;
	struct file *exe;
	const char *path;

	h = ckpt_next(ctx, CKPT_HDR_PROCESS, sizeof(*h));
	if (IS_ERR(h))
		return PTR_ERR(h);
	if (h->h.len != sizeof(*h) + ALIGN(h->exe_len, 8) ||
	    !valid_signal(h->pdeath_signal) || h->dumpable > SUID_DUMP_USER ||
	    (h->flags & ~CKPT_PROC_FLAGS) || !ckpt_sched_ok(h) ||
	    h->nice < MIN_NICE || h->nice > MAX_NICE || h->personality == 0xffffffff ||
	    ((h->flags & CKPT_PROC_STOPPED) &&
	     (!h->stop_signal || !sig_kernel_stop(h->stop_signal) ||
	      (h->stop_code && h->stop_code != h->stop_signal))))
		return ckpt_err(ctx, -EINVAL, "bad PROCESS object");
	ctx->process = h;
	/* the executable is the mm's: set by the task that rebuilds it */
	if (!h->exe_len || !(ctx->defines & BIT(CKPT_SHARE_MM)))
		return 0;
	path = ckpt_str(ctx, h, sizeof(*h), h->exe_len);
	if (!path)
		return -EINVAL;
	if (path[0] != '/')
		return ckpt_err(ctx, -EINVAL, "PROCESS: bad executable path");
	exe = ckpt_open_path(path, O_RDONLY | O_LARGEFILE);
	if (IS_ERR(exe))
		return ckpt_err(ctx, PTR_ERR(exe), "cannot reopen the executable %s", path);
	ctx->exe = exe;
	return 0;
}

/*
 * /proc/self/exe: prctl(PR_SET_MM, PR_SET_MM_MAP) with the layout the task
 * has now and the executable on a descriptor lent for the call.  That form
 * needs CAP_CHECKPOINT_RESTORE in the caller's user namespace, as restart
 * does; PR_SET_MM_EXE_FILE would need CAP_SYS_RESOURCE in the initial one.
 */
static int restore_exe(struct ckpt_ctx *ctx)
{
	struct mm_struct *mm = current->mm;
	struct prctl_mm_map map = {};
	void __user *scratch, *umap;
	struct file *exe;
	bool same;
	long ret;
	int fd;

	/* the restarter ran the same program: nothing to change (a mapped old exe is EBUSY) */
	rcu_read_lock();
	exe = rcu_dereference(mm->exe_file);
	same = exe && path_equal(&exe->f_path, &ctx->exe->f_path);
	rcu_read_unlock();
	if (same)
		return 0;
	fd = get_unused_fd_flags(O_CLOEXEC);
	if (fd < 0)
		return ckpt_err(ctx, fd, "no descriptor free for the executable");
	fd_install(fd, get_file(ctx->exe));
	map.exe_fd = fd;
	/* the layout as it is, read as prctl_set_mm_map() writes it */
	mmap_read_lock(mm);
	spin_lock(&mm->arg_lock);
	map.start_code = mm->start_code;
	map.end_code = mm->end_code;
	map.start_data = mm->start_data;
	map.end_data = mm->end_data;
	map.start_brk = mm->start_brk;
	map.brk = mm->brk;
	map.start_stack = mm->start_stack;
	map.arg_start = mm->arg_start;
	map.arg_end = mm->arg_end;
	map.env_start = mm->env_start;
	map.env_end = mm->env_end;
	spin_unlock(&mm->arg_lock);
	mmap_read_unlock(mm);
	scratch = ckpt_scratch_map(ctx);
	if (IS_ERR(scratch)) {
		close_fd(fd);
		return PTR_ERR(scratch);
	}
	umap = ckpt_stage(scratch, 0, &map, sizeof(map));
	ret = umap ? ckpt_syscall(__NR_prctl, PR_SET_MM, PR_SET_MM_MAP, (unsigned long)umap,
				  sizeof(map), 0) : -EFAULT;
	ckpt_scratch_unmap(scratch);
	close_fd(fd);
	if (ret)
		return ckpt_err(ctx, ret, "cannot make %pD the executable", ctx->exe);
	return 0;
}

static int restore_sched(struct ckpt_ctx *ctx, struct ckpt_hdr_process *h)
{
	struct sched_attr attr = {
		.size = sizeof(attr),
		.sched_policy = h->policy,
		.sched_flags = h->flags & CKPT_PROC_RESET_ON_FORK ? SCHED_FLAG_RESET_ON_FORK : 0,
		.sched_nice = h->nice,
		.sched_priority = h->rt_priority,
		.sched_runtime = h->dl_runtime,
		.sched_deadline = h->dl_deadline,
		.sched_period = h->dl_period,
	};
	void __user *scratch, *uattr, *ucpus;
	long ret;

	/* a real-time task keeps a nice value of its own, for when it goes back */
	ret = ckpt_syscall(__NR_setpriority, PRIO_PROCESS, 0, h->nice);
	if (ret)
		return ckpt_err(ctx, ret, "cannot set nice %d", h->nice);
	scratch = ckpt_scratch_map(ctx);
	if (IS_ERR(scratch))
		return PTR_ERR(scratch);
	/* within the restarter's cpuset, as the call gives it to any task */
	ucpus = ckpt_stage(scratch, 0, h->cpus, sizeof(h->cpus));
	ret = ucpus ? ckpt_syscall(__NR_sched_setaffinity, 0, sizeof(h->cpus),
				   (unsigned long)ucpus) : -EFAULT;
	if (ret) {
		ckpt_scratch_unmap(scratch);
		return ckpt_err(ctx, ret, "cannot set CPU affinity %*pbl",
				(int)ckpt_cpu_bits(), (unsigned long *)h->cpus);
	}
	uattr = ckpt_stage(scratch, sizeof(h->cpus), &attr, sizeof(attr));
	ret = uattr ? ckpt_syscall(__NR_sched_setattr, 0, (unsigned long)uattr, 0) : -EFAULT;
	ckpt_scratch_unmap(scratch);
	if (ret)
		return ckpt_err(ctx, ret, "cannot set scheduling policy %u priority %u",
				h->policy, h->rt_priority);
	return 0;
}

/* Before the task takes its own credentials: what needs the restarter's rights */
int restore_process(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_process *h = ctx->process;
	long ret;

	if (ctx->exe) {
		ret = restore_exe(ctx);
		if (ret)
			return ret;
	}
	ret = ckpt_syscall(__NR_personality, h->personality);
	if (ret < 0)
		return ckpt_err(ctx, ret, "cannot set personality %#x", h->personality);
	ret = ckpt_syscall(__NR_prctl, PR_SET_CHILD_SUBREAPER,
			   !!(h->flags & CKPT_PROC_SUBREAPER));
	if (ret)
		return ckpt_err(ctx, ret, "cannot set the child subreaper");
	current->timer_slack_ns = h->timer_slack_ns;
	current->default_timer_slack_ns = h->default_timer_slack_ns;
	if (h->flags & CKPT_PROC_NO_NEW_PRIVS)
		task_set_no_new_privs(current);
	return restore_sched(ctx, h);
}

/* After the credentials, which reset both; and the stop, last of all */
void restore_process_late(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_process *h = ctx->process;
	struct signal_struct *sig = current->signal;

	current->pdeath_signal = h->pdeath_signal;
	set_mask_bits(&current->mm->flags, MMF_DUMPABLE_MASK, h->dumpable);
	if (!(h->flags & CKPT_PROC_STOPPED))
		return;
	/*
	 * Stopped, and counted as such: the task takes part in a group stop
	 * that is already complete, so its parent is not told again, and a
	 * stop it had not waited for yet is still there for it to wait for.
	 * Each stopped thread of the group counts once in the stop.
	 */
	spin_lock_irq(&current->sighand->siglock);
	signal_set_stop_flags(sig, SIGNAL_STOP_STOPPED);
	sig->group_exit_code = h->stop_code;
	sig->group_stop_count++;
	current->jobctl |= JOBCTL_STOP_PENDING | JOBCTL_STOP_CONSUME | h->stop_signal;
	set_tsk_thread_flag(current, TIF_SIGPENDING);
	spin_unlock_irq(&current->sighand->siglock);
}
