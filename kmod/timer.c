// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: interval timers (setitimer(2)) and POSIX timers
 * (timer_create(2)).
 *
 * A timer is saved as what is left of its value and its period, the way
 * getitimer(2) and timer_gettime(2) report them; time does not pass while
 * the image waits.  A periodic timer whose signal is still pending (it is
 * re-armed when that signal is delivered) is saved with its next expiry.
 * POSIX timers keep their id, clock, notification (SIGEV_SIGNAL, _NONE,
 * _THREAD_ID with the thread) and overrun count; the pending signal itself
 * is in SIGPENDING.  Timers on another process's CPU clock and alarm
 * timers are refused by name.
 *
 * Restart replays setitimer(2), timer_create(2) (with the id it must
 * return next set first) and timer_settime(2) in the restarting task,
 * after its signal state, so that an early expiry is not dropped with the
 * placeholder's signals.
 */

#include <linux/hrtimer.h>
#include <linux/posix-timers.h>
#include <linux/sched/cputime.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/syscalls.h>
#include <linux/time.h>

#include "ckpt.h"

#define CKPT_POSIX_TIMERS_MAX	4096

/* The value left of a timer that expires at @expires and is now at @now */
static struct ckpt_timer_value ckpt_timer_left(s64 expires, s64 now, s64 interval)
{
	struct ckpt_timer_value v = { .interval_ns = interval };
	s64 left = expires - now;

	/* past due, its signal not delivered yet: the next period */
	if (left <= 0 && interval > 0)
		left = interval - (-left % interval);
	v.value_ns = max_t(s64, left, 1);
	return v;
}

static struct ckpt_timer_value ckpt_hrtimer_left(struct hrtimer *timer, s64 interval)
{
	return ckpt_timer_left(ktime_to_ns(hrtimer_get_expires(timer)),
			       ktime_to_ns(timer->base->get_time()), interval);
}

/* What a process CPU clock (CPUCLOCK_PROF, _VIRT, _SCHED) of @sig reads, while timers run */
static u64 ckpt_process_cputime(struct signal_struct *sig, int which)
{
	struct task_cputime_atomic *at = &sig->cputimer.cputime_atomic;

	switch (which) {
	case CPUCLOCK_PROF:
		return atomic64_read(&at->utime) + atomic64_read(&at->stime);
	case CPUCLOCK_VIRT:
		return atomic64_read(&at->utime);
	}
	return atomic64_read(&at->sum_exec_runtime);
}

static u64 ckpt_thread_cputime(struct task_struct *t, int which)
{
	switch (which) {
	case CPUCLOCK_PROF:
		return t->utime + t->stime;
	case CPUCLOCK_VIRT:
		return t->utime;
	}
	return t->se.sum_exec_runtime;
}

static int checkpoint_itimers(struct ckpt_ctx *ctx, struct task_struct *t)
{
	struct signal_struct *sig = t->signal;
	struct ckpt_hdr_itimers h = {};
	static const int cpu[] = { [ITIMER_VIRTUAL] = CPUCLOCK_VIRT,
				   [ITIMER_PROF] = CPUCLOCK_PROF };
	int which;

	spin_lock_irq(&t->sighand->siglock);
	/* a periodic one is re-armed when its SIGALRM is delivered */
	if (hrtimer_is_queued(&sig->real_timer) || sig->it_real_incr)
		h.it[ITIMER_REAL] = ckpt_hrtimer_left(&sig->real_timer,
						      ktime_to_ns(sig->it_real_incr));
	for (which = ITIMER_VIRTUAL; which <= ITIMER_PROF; which++) {
		struct cpu_itimer *it = &sig->it[cpu[which]];

		if (it->expires)
			h.it[which] = ckpt_timer_left(it->expires,
						      ckpt_process_cputime(sig, cpu[which]),
						      it->incr);
	}
	spin_unlock_irq(&t->sighand->siglock);
	return ckpt_write_obj(ctx, &h, CKPT_HDR_ITIMERS, sizeof(h));
}

/* Clocks restart can arm again: hrtimer ones, and @t's own CPU clocks */
static int ckpt_posix_timer_clock(struct ckpt_ctx *ctx, struct task_struct *t,
				  struct k_itimer *timr)
{
	clockid_t clock = timr->it_clock;
	pid_t pid = task_pid_vnr(t);

	if (clock < 0 && CPUCLOCK_PID(clock) && CPUCLOCK_PID(clock) != pid)
		return ckpt_err(ctx, -EOPNOTSUPP,
				"pid %d: POSIX timer %d on the CPU clock of pid %d is not supported",
				pid, timr->it_id, CPUCLOCK_PID(clock));
	if (clock < 0 || clock == CLOCK_REALTIME || clock == CLOCK_MONOTONIC ||
	    clock == CLOCK_BOOTTIME || clock == CLOCK_TAI)
		return 0;
	return ckpt_err(ctx, -EOPNOTSUPP, "pid %d: POSIX timer %d on clock %d is not supported",
			pid, timr->it_id, clock);
}

/* One POSIX timer, its it_lock held */
static void ckpt_posix_timer(struct task_struct *t, struct k_itimer *timr,
			     struct ckpt_hdr_posix_timer *h)
{
	clockid_t clock = timr->it_clock;
	s64 interval = ktime_to_ns(timr->it_interval);
	int notify = timr->it_sigev_notify;
	bool none = (notify & ~SIGEV_THREAD_ID) == SIGEV_NONE;

	h->id = timr->it_id;
	h->clock = clock;
	h->notify = notify;
	h->overrun = timr->it_overrun_last;
	if (timr->sigq && !none) {
		h->signo = timr->sigq->info.si_signo;
		h->sigval = (unsigned long)timr->sigq->info.si_value.sival_ptr;
	}
	if (!none && (notify & SIGEV_THREAD_ID))
		h->tid = pid_vnr(timr->it_pid);

	if (clock < 0) {
		int which = CPUCLOCK_WHICH(clock);
		u64 expires = timr->it.cpu.node.expires;

		if (expires)
			h->v = ckpt_timer_left(expires, CPUCLOCK_PERTHREAD(clock) ?
					       ckpt_thread_cputime(t, which) :
					       ckpt_process_cputime(t->signal, which), interval);
		return;
	}
	/* as timer_gettime(2) sees it: a periodic timer with its signal pending is armed */
	if (hrtimer_is_queued(&timr->it.real.timer) || (interval && timr->it_requeue_pending) ||
	    (none && (interval || timr->it_active)))
		h->v = ckpt_hrtimer_left(&timr->it.real.timer, interval);
}

static int checkpoint_posix_timers(struct ckpt_ctx *ctx, struct task_struct *t)
{
	struct ckpt_hdr_posix_timer *h;
	struct k_itimer *timr;
	int i, nr = 0, ret = 0;

	/* frozen: nobody creates or deletes a timer of @t meanwhile */
	hlist_for_each_entry(timr, &t->signal->posix_timers, list)
		nr++;
	if (!nr)
		return 0;
	if (nr > CKPT_POSIX_TIMERS_MAX)
		return ckpt_err(ctx, -E2BIG, "pid %d: more than %d POSIX timers",
				task_pid_vnr(t), CKPT_POSIX_TIMERS_MAX);
	h = kvcalloc(nr, sizeof(*h), GFP_KERNEL);
	if (!h)
		return -ENOMEM;
	i = 0;
	hlist_for_each_entry(timr, &t->signal->posix_timers, list) {
		if (i == nr)
			break;
		ret = ckpt_posix_timer_clock(ctx, t, timr);
		if (ret)
			break;
		spin_lock_irq(&timr->it_lock);
		ckpt_posix_timer(t, timr, &h[i++]);
		spin_unlock_irq(&timr->it_lock);
	}
	/* the list is newest first: write them oldest first */
	while (!ret && i--)
		ret = ckpt_write_obj(ctx, &h[i], CKPT_HDR_POSIX_TIMER, sizeof(*h));
	kvfree(h);
	return ret;
}

int checkpoint_timers(struct ckpt_ctx *ctx, struct task_struct *t)
{
	return checkpoint_itimers(ctx, t) ?: checkpoint_posix_timers(ctx, t);
}

static bool ckpt_timer_value_ok(struct ckpt_timer_value *v)
{
	return v->value_ns <= KTIME_MAX && v->interval_ns <= KTIME_MAX;
}

static bool ckpt_posix_timer_ok(struct ckpt_hdr_posix_timer *h)
{
	u32 how = h->notify & ~SIGEV_THREAD_ID;
	bool cpu = h->clock < 0;

	if (h->h.len != sizeof(*h) || h->id < 0 || !ckpt_timer_value_ok(&h->v) ||
	    h->overrun < 0 || h->overrun > INT_MAX)
		return false;
	if (cpu ? CPUCLOCK_PID(h->clock) != 0 || CPUCLOCK_WHICH(h->clock) >= CPUCLOCK_MAX :
		  h->clock != CLOCK_REALTIME && h->clock != CLOCK_MONOTONIC &&
		  h->clock != CLOCK_BOOTTIME && h->clock != CLOCK_TAI)
		return false;
	if (how != SIGEV_NONE && how != SIGEV_SIGNAL)
		return false;
	if (how == SIGEV_NONE)
		return !(h->notify & SIGEV_THREAD_ID);
	return h->signo && valid_signal(h->signo) &&
	       (h->notify & SIGEV_THREAD_ID ? h->tid > 0 : !h->tid);
}

int restore_prepare_timers(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_itimers *h;
	s32 last = -1;
	int i;

	h = ckpt_next(ctx, CKPT_HDR_ITIMERS, sizeof(*h));
	if (IS_ERR(h))
		return PTR_ERR(h);
	for (i = 0; i < ARRAY_SIZE(h->it); i++)
		if (h->h.len != sizeof(*h) || !ckpt_timer_value_ok(&h->it[i]))
			return ckpt_err(ctx, -EINVAL, "bad ITIMERS object");
	ctx->itimers = h;
	ctx->posix_timers_first = ctx->cur ? &ctx->cur->list : NULL;
	ctx->nr_posix_timers = 0;
	while (ckpt_peek(ctx) == CKPT_HDR_POSIX_TIMER) {
		struct ckpt_hdr_posix_timer *t = ckpt_next(ctx, CKPT_HDR_POSIX_TIMER, sizeof(*t));

		if (IS_ERR(t))
			return PTR_ERR(t);
		if (!ckpt_posix_timer_ok(t) || t->id <= last ||
		    ++ctx->nr_posix_timers > CKPT_POSIX_TIMERS_MAX)
			return ckpt_err(ctx, -EINVAL, "bad POSIX_TIMER object (id %d)", t->id);
		last = t->id;
	}
	return 0;
}

static struct __kernel_old_timeval ckpt_timeval(u64 ns)
{
	struct timespec64 ts = ns_to_timespec64(ns);

	/* setitimer(2) rounds down to microseconds; never to 0, which disarms */
	if (ns && !ts.tv_sec && ts.tv_nsec < NSEC_PER_USEC)
		ts.tv_nsec = NSEC_PER_USEC;
	return (struct __kernel_old_timeval){ ts.tv_sec, ts.tv_nsec / NSEC_PER_USEC };
}

static int restore_itimers(struct ckpt_ctx *ctx, void __user *scratch)
{
	int which;

	/* all three: zero disarms what the placeholder may have had */
	for (which = 0; which < ARRAY_SIZE(ctx->itimers->it); which++) {
		struct ckpt_timer_value *v = &ctx->itimers->it[which];
		struct __kernel_old_itimerval it = {
			.it_interval = ckpt_timeval(v->interval_ns),
			.it_value = ckpt_timeval(v->value_ns),
		};
		void __user *uit = ckpt_stage(scratch, 0, &it, sizeof(it));
		long ret = -EFAULT;

		if (uit)
			ret = ckpt_syscall(__NR_setitimer, which, (unsigned long)uit, 0);

		if (ret)
			return ckpt_err(ctx, ret, "cannot arm interval timer %d", which);
	}
	return 0;
}

/* The overrun count is the one part of a timer no system call sets */
static void restore_timer_overrun(s32 id, s64 overrun)
{
	struct k_itimer *timr;

	/* only current changes its list of timers, and current is here */
	hlist_for_each_entry(timr, &current->signal->posix_timers, list) {
		if (timr->it_id != id)
			continue;
		spin_lock_irq(&timr->it_lock);
		timr->it_overrun_last = overrun;
		spin_unlock_irq(&timr->it_lock);
	}
}

static int restore_posix_timer(struct ckpt_ctx *ctx, struct ckpt_hdr_posix_timer *t,
			       void __user *scratch)
{
	struct sigevent ev = {
		.sigev_value.sival_ptr = (void __user *)(unsigned long)t->sigval,
		.sigev_signo = t->signo,
		.sigev_notify = t->notify,
	};
	struct timespec64 value = ns_to_timespec64(t->v.value_ns);
	struct timespec64 interval = ns_to_timespec64(t->v.interval_ns);
	struct __kernel_itimerspec its = {
		.it_interval = { interval.tv_sec, interval.tv_nsec },
		.it_value = { value.tv_sec, value.tv_nsec },
	};
	void __user *uev, *uid, *uits;
	timer_t id = -1;
	long ret = -EFAULT;

	ev.sigev_notify_thread_id = t->tid;
	uev = ckpt_stage(scratch, 0, &ev, sizeof(ev));
	uid = ckpt_stage(scratch, 128, &id, sizeof(id));
	uits = ckpt_stage(scratch, 256, &its, sizeof(its));
	/* timer_create(2) hands out this id next, if it is free */
	WRITE_ONCE(current->signal->next_posix_timer_id, t->id);
	if (uev && uid && uits)
		ret = ckpt_syscall(__NR_timer_create, t->clock, (unsigned long)uev,
				   (unsigned long)uid);
	if (ret)
		return ckpt_err(ctx, ret, "cannot create POSIX timer %d", t->id);
	if (get_user(id, (timer_t __user *)uid) || id != t->id)
		return ckpt_err(ctx, -EBUSY, "POSIX timer %d came back as %d", t->id, id);
	if (t->v.value_ns) {
		ret = ckpt_syscall(__NR_timer_settime, id, 0, (unsigned long)uits, 0);
		if (ret)
			return ckpt_err(ctx, ret, "cannot arm POSIX timer %d", id);
	}
	restore_timer_overrun(id, t->overrun);
	return 0;
}

int restore_timers(struct ckpt_ctx *ctx)
{
	void __user *scratch = ckpt_scratch_map(ctx);
	struct list_head *pos = ctx->posix_timers_first;
	unsigned int i;
	int ret;

	if (IS_ERR(scratch))
		return PTR_ERR(scratch);
	if (!hlist_empty(&current->signal->posix_timers))
		ret = ckpt_err(ctx, -EBUSY, "the restarting task has POSIX timers of its own");
	else
		ret = restore_itimers(ctx, scratch);
	/* checked by restore_prepare_timers(): the next nr_posix_timers objects */
	for (i = 0; !ret && i < ctx->nr_posix_timers; i++, pos = pos->next)
		ret = restore_posix_timer(ctx, (void *)list_entry(pos, struct ckpt_obj, list)->h,
					  scratch);
	ckpt_scratch_unmap(scratch);
	return ret;
}
