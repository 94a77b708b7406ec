// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: timerfds, with their clock, flags, interval, remaining
 * time and expirations not read yet.
 *
 * The state is read from the timerfd's fdinfo.  Restart makes a new one
 * with do_timerfd_create(), arms it with do_timerfd_settime() (kernel
 * patch 0012) and gives back the expirations with TFD_IOC_SET_TICKS.  A
 * relative timer runs on from the time it had left; an absolute timer on
 * CLOCK_REALTIME keeps its expiry in wall-clock time, as it would have
 * had the program never stopped.  A periodic timer that expired and was
 * not read yet fires again one interval after the restart.
 */

#include <linux/file.h>
#include <linux/fs.h>
#include <linux/slab.h>
#include <linux/time64.h>
#include <linux/timekeeping.h>
#include <linux/timerfd.h>

#include "ckpt.h"

static bool ckpt_timerfd_match(struct file *file)
{
	return ckpt_anon_is(file, "[timerfd]");
}

static bool ckpt_timerfd_realtime(s32 clockid)
{
	return clockid == CLOCK_REALTIME || clockid == CLOCK_REALTIME_ALARM;
}

static int checkpoint_timerfd_file(struct ckpt_ctx *ctx, struct file *file,
				   struct ckpt_hdr_file *h)
{
	struct ckpt_hdr_timerfd t = {};
	u64 vs, vns, is, ins;
	const char *l[5];
	char *info;
	int ret;

	info = ckpt_fdinfo(file, 512);
	if (!info)
		return ckpt_err(ctx, -EIO, "%pD: cannot read its state", file);
	l[0] = ckpt_fdinfo_line(info, "clockid:");
	l[1] = ckpt_fdinfo_line(info, "ticks:");
	l[2] = ckpt_fdinfo_line(info, "settime flags:");
	l[3] = ckpt_fdinfo_line(info, "it_value:");
	l[4] = ckpt_fdinfo_line(info, "it_interval:");
	ret = l[0] && l[1] && l[2] && l[3] && l[4] &&
	      sscanf(l[0], "clockid: %d", &t.clockid) == 1 &&
	      sscanf(l[1], "ticks: %llu", &t.ticks) == 1 &&
	      sscanf(l[2], "settime flags: %o", &t.settime_flags) == 1 &&
	      sscanf(l[3], "it_value: (%llu, %llu)", &vs, &vns) == 2 &&
	      sscanf(l[4], "it_interval: (%llu, %llu)", &is, &ins) == 2 ? 0 : -EIO;
	kvfree(info);
	if (ret)
		return ckpt_err(ctx, ret, "%pD: cannot read its state", file);
	t.value_ns = vs * NSEC_PER_SEC + vns;
	t.interval_ns = is * NSEC_PER_SEC + ins;
	if (t.value_ns && (t.settime_flags & TFD_TIMER_ABSTIME) &&
	    ckpt_timerfd_realtime(t.clockid))
		t.expiry_real_ns = ktime_get_real_ns() + t.value_ns;
	return checkpoint_state_obj(ctx, file->private_data, &t, CKPT_HDR_TIMERFD, sizeof(t), h);
}

int restore_timerfd_obj(struct ckpt_ctx *ctx)
{
	struct itimerspec64 its = {}, old;
	struct ckpt_hdr_timerfd *t;
	struct file *file;
	int fd, ret;

	t = ckpt_next(ctx, CKPT_HDR_TIMERFD, sizeof(*t));
	if (IS_ERR(t))
		return PTR_ERR(t);
	if (t->h.len != sizeof(*t) || t->objref <= 0 || (t->settime_flags & ~TFD_SETTIME_FLAGS) ||
	    (s64)t->value_ns < 0 || (s64)t->interval_ns < 0 || t->expiry_real_ns < 0)
		return ckpt_err(ctx, -EINVAL, "bad TIMERFD object");
	if (ckpt_obj_find_any(ctx, t->objref))
		return ckpt_err(ctx, -EINVAL, "timerfd %d defined twice", t->objref);
	fd = do_timerfd_create(t->clockid, TFD_CLOEXEC);
	if (fd < 0)
		return ckpt_err(ctx, fd, "cannot create a timerfd on clock %d", t->clockid);
	its.it_interval = ns_to_timespec64(t->interval_ns);
	if (t->expiry_real_ns)
		its.it_value = ns_to_timespec64(t->expiry_real_ns);
	else
		its.it_value = ns_to_timespec64(t->value_ns ? t->value_ns : t->interval_ns);
	ret = 0;
	if (its.it_value.tv_sec || its.it_value.tv_nsec)
		ret = do_timerfd_settime(fd, t->expiry_real_ns ? t->settime_flags :
					 t->settime_flags & ~TFD_SETTIME_FLAGS, &its, &old);
	file = ckpt_take_fd(fd);
	if (IS_ERR(file))
		return ckpt_err(ctx, PTR_ERR(file), "cannot create a timerfd");
	if (ret)
		ckpt_err(ctx, ret, "cannot arm a timerfd");
	if (!ret && t->ticks) {
		u64 ticks = t->ticks;

		ret = ckpt_user_ioctl(ctx, file, TFD_IOC_SET_TICKS, &ticks, sizeof(ticks));
		if (ret)
			ckpt_err(ctx, ret, "cannot give a timerfd its %llu expirations", t->ticks);
	}
	if (!ret)
		ret = ckpt_obj_add_file(ctx, t->objref, file);
	if (ret)
		fput(file);
	return ret;
}

const struct ckpt_file_ops ckpt_timerfd_ops = {
	.kind = CKPT_FILE_TIMERFD,
	.name = "timerfd",
	.match = ckpt_timerfd_match,
	.checkpoint = checkpoint_timerfd_file,
	.restore = restore_state_file,
};
