// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-lab engine: terminals.
 *
 * A pseudo-terminal whose master is open in the tree is a TTY object of
 * kind PTY, saved once: its index, lock state, packet mode, window size,
 * and the termios of both sides.  Restart opens /dev/ptmx until it gets
 * the same index (devpts gives the lowest free one), sets all that, and
 * reopens slaves by path; a session leader whose controlling terminal it
 * is gets it back (CTTY object), with its foreground process group.
 *
 * A terminal whose other end is outside the tree (the shell's, for a tree
 * run as a job of an interactive shell) cannot be restarted as it was; as
 * with CRIU's --shell-job, a checkpoint with CHECKPOINT_SHELL_JOB saves it
 * as a TTY object of kind INHERIT: restart reopens the terminal on the
 * restarter's standard input in its place and gives it the saved termios
 * and window size (the restarter makes the restored job the terminal's
 * foreground job).  Without the flag such a terminal is refused by name.
 * /dev/tty is reopened as /dev/tty: it is whatever the session's
 * controlling terminal is.  Bytes in flight in a pty are refused.
 */

#include <linux/file.h>
#include <linux/fs.h>
#include <linux/kdev_t.h>
#include <linux/major.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/tty.h>
#include <linux/tty_driver.h>
#include <linux/tty_ldisc.h>

#include "ckpt.h"

#define CKPT_PTYS_MAX		4096

/* Restart: a TTY object's pty or terminal */
struct ckpt_rtty {
	struct ckpt_hdr_tty *h;
	struct tty_struct *tty;		/* the terminal side (a pty's slave) */
	char slave[32];			/* a pty slave's path */
};

/* A character device that is a terminal, and the tty behind it */
static struct tty_struct *ckpt_file_tty(struct file *file)
{
	struct inode *inode = file_inode(file);
	dev_t dev = inode->i_rdev;
	struct tty_struct *tty;

	if (!S_ISCHR(inode->i_mode) || (file->f_mode & FMODE_PATH) || !file->private_data)
		return NULL;
	if (!(MAJOR(dev) == TTYAUX_MAJOR && MINOR(dev) <= 2) && MAJOR(dev) != TTY_MAJOR &&
	    (MAJOR(dev) < UNIX98_PTY_SLAVE_MAJOR ||
	     MAJOR(dev) >= UNIX98_PTY_SLAVE_MAJOR + UNIX98_PTY_MAJOR_COUNT))
		return NULL;
	tty = ((struct tty_file_private *)file->private_data)->tty;
	/* /dev/tty, /dev/console and /dev/ptmx name the tty they opened */
	if (MAJOR(dev) != TTYAUX_MAJOR && tty_devnum(tty) != dev)
		return NULL;
	return tty;
}

static bool ckpt_is_dev_tty(struct file *file)
{
	return file_inode(file)->i_rdev == MKDEV(TTYAUX_MAJOR, 0);
}

static bool ckpt_tty_match(struct file *file)
{
	return ckpt_file_tty(file) && !ckpt_is_dev_tty(file);
}

static bool ckpt_ctty_match(struct file *file)
{
	return ckpt_file_tty(file) && ckpt_is_dev_tty(file);
}

static bool ckpt_pty_master(struct tty_struct *tty)
{
	return tty->driver->type == TTY_DRIVER_TYPE_PTY &&
	       tty->driver->subtype == PTY_TYPE_MASTER;
}

static bool ckpt_pty_slave(struct tty_struct *tty)
{
	return tty->driver->type == TTY_DRIVER_TYPE_PTY &&
	       tty->driver->subtype == PTY_TYPE_SLAVE;
}

static bool ckpt_file_is_tty(struct file *file, const void *tty)
{
	return ckpt_file_tty(file) == tty && !ckpt_is_dev_tty(file);
}

static void ckpt_termios_of(struct tty_struct *tty, struct ckpt_termios *t)
{
	down_read(&tty->termios_rwsem);
	t->c_iflag = tty->termios.c_iflag;
	t->c_oflag = tty->termios.c_oflag;
	t->c_cflag = tty->termios.c_cflag;
	t->c_lflag = tty->termios.c_lflag;
	t->c_line = tty->termios.c_line;
	memcpy(t->c_cc, tty->termios.c_cc, min(sizeof(t->c_cc), sizeof(tty->termios.c_cc)));
	t->c_ispeed = tty->termios.c_ispeed;
	t->c_ospeed = tty->termios.c_ospeed;
	up_read(&tty->termios_rwsem);
}

static long ckpt_ldisc_inq(void *priv, unsigned long uaddr)
{
	struct tty_struct *tty = priv;
	struct tty_ldisc *ld = tty_ldisc_ref(tty);
	long ret = 0;

	if (ld && ld->ops->ioctl)
		ret = ld->ops->ioctl(tty, TIOCINQ, uaddr);
	if (ld)
		tty_ldisc_deref(ld);
	return ret;
}

/* Bytes a tty's line discipline holds (TIOCINQ) */
static int ckpt_tty_inq(struct ckpt_ctx *ctx, struct tty_struct *tty)
{
	int n = 0;
	long ret = ckpt_user_call(ctx, &n, sizeof(n), ckpt_ldisc_inq, tty);

	return ret < 0 ? ret : n;
}

/* The TTY object for @tty (a pty's master, or a terminal to inherit), once */
static int checkpoint_tty(struct ckpt_ctx *ctx, struct tty_struct *tty, u32 kind, s32 *objref)
{
	struct tty_struct *term = kind == CKPT_TTY_PTY ? tty->link : tty;
	struct ckpt_hdr_tty h = {};
	int inq;

	*objref = ckpt_obj_lookup(ctx, tty);
	if (*objref)
		return 0;
	if (term->termios.c_line != N_TTY)
		return ckpt_err(ctx, -EOPNOTSUPP,
				"terminal %s: line discipline %d is not supported",
				term->name, term->termios.c_line);
	if (READ_ONCE(term->flow.stopped))
		return ckpt_err(ctx, -EOPNOTSUPP, "terminal %s is stopped (^S): not supported",
				term->name);
	if (test_bit(TTY_EXCLUSIVE, &term->flags))
		return ckpt_err(ctx, -EOPNOTSUPP, "terminal %s in TIOCEXCL mode: not supported",
				term->name);
	if (kind == CKPT_TTY_PTY) {
		inq = ckpt_tty_inq(ctx, tty);
		if (!inq)
			inq = ckpt_tty_inq(ctx, term);
		if (inq)
			return ckpt_err(ctx, inq < 0 ? inq : -EOPNOTSUPP,
					"pty %s has bytes in flight: not supported", term->name);
		h.index = tty->index;
		/* unlockpt(3) clears it on the master */
		h.locked = test_bit(TTY_PTY_LOCK, &tty->flags);
		h.packet = READ_ONCE(tty->ctrl.packet);
	}
	*objref = ckpt_obj_add(ctx, tty, CKPT_HDR_TTY);
	if (*objref < 0)
		return *objref;
	h.objref = *objref;
	h.kind = kind;
	ckpt_termios_of(term, &h.termios);
	mutex_lock(&term->winsize_mutex);
	h.ws_row = term->winsize.ws_row;
	h.ws_col = term->winsize.ws_col;
	h.ws_xpixel = term->winsize.ws_xpixel;
	h.ws_ypixel = term->winsize.ws_ypixel;
	mutex_unlock(&term->winsize_mutex);
	return ckpt_write_obj(ctx, &h, CKPT_HDR_TTY, sizeof(h));
}

/* A pty whose master the tree holds, or the shell's terminal (a shell job) */
static int checkpoint_tty_of(struct ckpt_ctx *ctx, struct tty_struct *tty, s32 *objref)
{
	if (ckpt_pty_master(tty))
		return checkpoint_tty(ctx, tty, CKPT_TTY_PTY, objref);
	if (ckpt_pty_slave(tty) && ckpt_tree_has_file(ctx, ckpt_file_is_tty, tty->link))
		return checkpoint_tty(ctx, tty->link, CKPT_TTY_PTY, objref);
	if (ctx->flags & CHECKPOINT_SHELL_JOB)
		return checkpoint_tty(ctx, tty, CKPT_TTY_INHERIT, objref);
	return ckpt_err(ctx, -EOPNOTSUPP,
			"terminal %s belongs to a session outside the tree: dump it as a shell job (--shell-job)",
			tty->name);
}

static int checkpoint_tty_file(struct ckpt_ctx *ctx, struct file *file,
			       struct ckpt_hdr_file *h)
{
	h->pos = 0;
	h->rdev = new_encode_dev(file_inode(file)->i_rdev);
	return checkpoint_tty_of(ctx, ckpt_file_tty(file), &h->obj);
}

/* /dev/tty: whatever the session's controlling terminal is; it must come back too */
static int checkpoint_ctty_file(struct ckpt_ctx *ctx, struct file *file,
				struct ckpt_hdr_file *h)
{
	s32 objref;

	h->pos = 0;
	h->rdev = new_encode_dev(file_inode(file)->i_rdev);
	return checkpoint_tty_of(ctx, ckpt_file_tty(file), &objref);
}

/*
 * A task's controlling terminal, before its files.  The shell's, for a
 * shell job, is the restarter's: nothing to save.
 */
int checkpoint_ctty(struct ckpt_ctx *ctx, struct task_struct *t)
{
	struct ckpt_hdr_ctty c = {};
	struct tty_struct *tty;
	struct pid *pgrp;
	u32 i;
	int ret = 0;

	spin_lock_irq(&t->sighand->siglock);
	tty = tty_kref_get(t->signal->tty);
	spin_unlock_irq(&t->sighand->siglock);
	if (!tty)
		return 0;
	c.leader = task_session(t) == task_pid(t);
	snprintf(ctx->where, sizeof(ctx->where), "pid %d", task_pid_vnr(t));
	if (!ckpt_pty_slave(tty) || !ckpt_tree_has_file(ctx, ckpt_file_is_tty, tty->link)) {
		if (c.leader)
			ret = ckpt_err(ctx, -EOPNOTSUPP,
				       "its controlling terminal %s is not a pty of the tree: not supported",
				       tty->name);
		else if (!(ctx->flags & CHECKPOINT_SHELL_JOB))
			ret = ckpt_err(ctx, -EOPNOTSUPP,
				       "its controlling terminal %s belongs to a session outside the tree: dump it as a shell job (--shell-job)",
				       tty->name);
		goto out;
	}
	ret = checkpoint_tty(ctx, tty->link, CKPT_TTY_PTY, &c.tty);
	if (ret || !c.leader)
		goto write;
	pgrp = tty_get_pgrp(tty);
	c.pgrp = pid_vnr(pgrp);
	for (i = 0; pgrp && i < ctx->tree->nr && task_pgrp(ctx->tree->tasks[i]) != pgrp; i++)
		;
	put_pid(pgrp);
	if (pgrp && i == ctx->tree->nr)
		ret = ckpt_err(ctx, -EOPNOTSUPP,
			       "the foreground process group %d of %s is outside the tree",
			       c.pgrp, tty->name);
write:
	if (!ret)
		ret = ckpt_write_obj(ctx, &c, CKPT_HDR_CTTY, sizeof(c));
out:
	ctx->where[0] = 0;
	tty_kref_put(tty);
	return ret;
}

static void ckpt_ktermios(const struct ckpt_termios *t, struct ktermios *k)
{
	memset(k, 0, sizeof(*k));
	k->c_iflag = t->c_iflag;
	k->c_oflag = t->c_oflag;
	k->c_cflag = t->c_cflag;
	k->c_lflag = t->c_lflag;
	k->c_line = N_TTY;
	memcpy(k->c_cc, t->c_cc, min(sizeof(t->c_cc), sizeof(k->c_cc)));
	k->c_ispeed = t->c_ispeed;
	k->c_ospeed = t->c_ospeed;
}

static int restore_tty_settings(struct ckpt_ctx *ctx, struct tty_struct *tty,
				struct ckpt_hdr_tty *h)
{
	struct winsize ws = {
		.ws_row = h->ws_row,
		.ws_col = h->ws_col,
		.ws_xpixel = h->ws_xpixel,
		.ws_ypixel = h->ws_ypixel,
	};
	struct ktermios k;
	int ret;

	ckpt_ktermios(&h->termios, &k);
	ret = tty_set_termios(tty, &k);
	if (!ret)
		ret = tty_do_resize(tty, &ws);
	if (ret)
		ckpt_err(ctx, ret, "terminal %s: cannot set it as it was", tty->name);
	return ret;
}

/* A new pty with index @index: open /dev/ptmx until devpts gives it */
static struct file *ckpt_open_pty(struct ckpt_ctx *ctx, u32 index)
{
	struct file **extra, *master = NULL;
	unsigned int n = 0;

	extra = kvcalloc(CKPT_PTYS_MAX, sizeof(*extra), GFP_KERNEL);
	if (!extra)
		return ERR_PTR(-ENOMEM);
	while (!master && n < CKPT_PTYS_MAX) {
		struct file *f = filp_open("/dev/ptmx", O_RDWR | O_NOCTTY, 0);
		struct tty_struct *tty;

		if (IS_ERR(f)) {
			master = f;
			ckpt_err(ctx, PTR_ERR(f), "cannot open /dev/ptmx");
			break;
		}
		tty = ckpt_file_tty(f);
		if (tty && tty->index == index) {
			master = f;
		} else if (tty && tty->index < index) {
			extra[n++] = f;
		} else {
			fput(f);
			master = ERR_PTR(ckpt_err(ctx, -EBUSY, "pty %u is taken", index));
		}
	}
	while (n--)
		fput(extra[n]);
	kvfree(extra);
	return master ? master : ERR_PTR(ckpt_err(ctx, -EBUSY, "pty %u is taken", index));
}

int restore_tty_obj(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_tty *h;
	struct ckpt_rtty *rt;
	struct file *file;
	int ret;

	h = ckpt_next(ctx, CKPT_HDR_TTY, sizeof(*h));
	if (IS_ERR(h))
		return PTR_ERR(h);
	if (h->h.len != sizeof(*h) || h->objref <= 0 || h->kind < CKPT_TTY_PTY ||
	    h->kind > CKPT_TTY_INHERIT || h->locked > 1 || h->packet > 1 ||
	    h->index >= CKPT_PTYS_MAX || h->termios.c_line != N_TTY || h->pad || h->pad2)
		return ckpt_err(ctx, -EINVAL, "bad TTY object");
	if (ckpt_obj_find_any(ctx, h->objref))
		return ckpt_err(ctx, -EINVAL, "terminal %d defined twice", h->objref);
	rt = kzalloc(sizeof(*rt), GFP_KERNEL);
	if (!rt)
		return -ENOMEM;
	rt->h = h;
	if (h->kind == CKPT_TTY_INHERIT) {
		/* a shell job's terminal: the one the restarter was started on */
		struct file *in = fget(0);

		if (in && ckpt_tty_match(in))
			file = dentry_open(&in->f_path, O_RDWR | O_NOCTTY | O_LARGEFILE,
					   current_cred());
		else
			file = ERR_PTR(ckpt_err(ctx, -ENOTTY,
						"shell job: the restarter's stdin is no terminal"));
		if (in)
			fput(in);
	} else {
		file = ckpt_open_pty(ctx, h->index);
	}
	if (IS_ERR(file)) {
		kfree(rt);
		return PTR_ERR(file);
	}
	rt->tty = ckpt_file_tty(file);
	ret = 0;
	if (h->kind == CKPT_TTY_PTY) {
		int pkt = h->packet;

		rt->tty = rt->tty->link;
		snprintf(rt->slave, sizeof(rt->slave), "/dev/pts/%u", h->index);
		if (pkt)
			ret = ckpt_user_ioctl(ctx, file, TIOCPKT, &pkt, sizeof(pkt));
		if (ret)
			ckpt_err(ctx, ret, "pty %u: cannot set packet mode again", h->index);
		if (!h->locked)
			clear_bit(TTY_PTY_LOCK, &rt->tty->link->flags);
	}
	if (!ret)
		ret = restore_tty_settings(ctx, rt->tty, h);
	if (!ret)
		ret = ckpt_obj_add_file(ctx, h->objref, file);
	if (ret) {
		fput(file);
		kfree(rt);
		return ret;
	}
	ckpt_obj_find(ctx, h->objref)->priv = rt;
	return 0;
}

static struct ckpt_rtty *ckpt_rtty(struct ckpt_ctx *ctx, s32 objref)
{
	struct ckpt_objref *o = ckpt_obj_find(ctx, objref);

	return o && o->type == CKPT_HDR_FILE && o->priv && ckpt_tty_match(o->file) ?
		o->priv : NULL;
}

/* A pty's slave, by @path, while it is unlocked */
static struct file *ckpt_open_slave(struct ckpt_ctx *ctx, struct ckpt_rtty *rt,
				    const char *path, u32 flags)
{
	bool locked = test_and_clear_bit(TTY_PTY_LOCK, &rt->tty->link->flags);
	struct file *file = ckpt_open_path(path, flags | O_LARGEFILE);

	if (locked)
		set_bit(TTY_PTY_LOCK, &rt->tty->link->flags);
	if (IS_ERR(file))
		return ERR_PTR(ckpt_err(ctx, PTR_ERR(file), "cannot open %s again", path));
	if (ckpt_file_tty(file) != rt->tty) {
		fput(file);
		return ERR_PTR(ckpt_err(ctx, -EINVAL, "%s is not the pty it was", path));
	}
	return file;
}

#define CKPT_TTY_FLAGS (O_ACCMODE | O_NONBLOCK | O_APPEND)

static struct file *restore_tty_file(struct ckpt_ctx *ctx, struct ckpt_hdr_file *h,
				     const char *path)
{
	struct ckpt_rtty *rt = ckpt_rtty(ctx, h->obj);
	struct file *term;

	if (!rt)
		return ERR_PTR(ckpt_err(ctx, -EINVAL, "FILE %d: unknown terminal %d", h->objref,
					h->obj));
	term = ckpt_obj_file(ctx, h->obj);
	if (rt->h->kind == CKPT_TTY_INHERIT)
		return dentry_open(&term->f_path, (h->f_flags & CKPT_TTY_FLAGS) | O_NOCTTY,
				   current_cred());
	/* the master is the file that made the pty; the slaves are opened again */
	if (h->rdev == new_encode_dev(MKDEV(TTYAUX_MAJOR, 2)))
		return get_file(term);
	if (path[0] != '/')
		return ERR_PTR(ckpt_err(ctx, -EINVAL, "FILE %d: bad path", h->objref));
	return ckpt_open_slave(ctx, rt, path, (h->f_flags & CKPT_TTY_FLAGS) | O_NOCTTY);
}

static struct file *restore_ctty_file(struct ckpt_ctx *ctx, struct ckpt_hdr_file *h,
				      const char *path)
{
	struct file *file;

	if (h->rdev != new_encode_dev(MKDEV(TTYAUX_MAJOR, 0)))
		return ERR_PTR(ckpt_err(ctx, -EINVAL, "FILE %d: bad /dev/tty", h->objref));
	file = filp_open("/dev/tty", (h->f_flags & CKPT_TTY_FLAGS) | O_NOCTTY | O_LARGEFILE, 0);
	if (IS_ERR(file))
		return ERR_PTR(ckpt_err(ctx, PTR_ERR(file),
					"cannot open /dev/tty again: no controlling terminal"));
	return file;
}

/* Another task of the session: the terminal its leader took back is its own too */
static int restore_session_ctty(struct ckpt_ctx *ctx, struct ckpt_rtty *rt)
{
	struct tty_struct *old;
	bool ours;

	spin_lock_irq(&rt->tty->ctrl.lock);
	ours = rt->tty->ctrl.session == task_session(current);
	spin_unlock_irq(&rt->tty->ctrl.lock);
	if (!ours)
		return ckpt_err(ctx, -EINVAL, "%s does not control the task's session", rt->slave);
	/* what fork(2) gives a child of the session */
	spin_lock_irq(&current->sighand->siglock);
	old = current->signal->tty;
	current->signal->tty = tty_kref_get(rt->tty);
	spin_unlock_irq(&current->sighand->siglock);
	tty_kref_put(old);
	return 0;
}

/* A task's controlling terminal; a session leader's also gets its foreground group */
int restore_prepare_ctty(struct ckpt_ctx *ctx)
{
	struct ckpt_hdr_ctty *c;
	struct ckpt_rtty *rt;
	struct tty_struct *ctty;
	struct file *file;
	int ret;

	c = ckpt_next(ctx, CKPT_HDR_CTTY, sizeof(*c));
	if (IS_ERR(c))
		return PTR_ERR(c);
	rt = ckpt_rtty(ctx, c->tty);
	if (c->h.len != sizeof(*c) || !rt || rt->h->kind != CKPT_TTY_PTY || c->pgrp < 0 ||
	    c->leader > 1 || (c->pgrp && !c->leader) || c->pad || ctx->ctty)
		return ckpt_err(ctx, -EINVAL, "bad CTTY object");
	if (c->leader != (task_session(current) == task_pid(current)))
		return ckpt_err(ctx, -EINVAL, "CTTY: the task %s a session leader",
				c->leader ? "is not" : "is");
	ctx->ctty = c;
	if (!c->leader)
		return restore_session_ctty(ctx, rt);
	/* a session leader without a terminal that opens one makes it its own */
	file = ckpt_open_slave(ctx, rt, rt->slave, O_RDWR);
	if (IS_ERR(file))
		return PTR_ERR(file);
	ctty = get_current_tty();
	ret = ctty == rt->tty ? 0 :
		ckpt_err(ctx, -EBUSY, "%s did not become the controlling terminal", rt->slave);
	tty_kref_put(ctty);
	/* its foreground group is made later in the restart: set once all tasks are */
	if (!ret && c->pgrp) {
		ctx->fg_tty = file;
		ctx->fg_pgrp = c->pgrp;
		return 0;
	}
	fput(file);
	return ret;
}

/* Once the whole tree is rebuilt: the foreground group of a session leader's terminal */
int restore_tty_foreground(struct ckpt_ctx *ctx, struct file *tty, pid_t pgrp)
{
	int arg = pgrp;
	long ret = ckpt_user_ioctl(ctx, tty, TIOCSPGRP, &arg, sizeof(arg));

	if (ret)
		return ckpt_err(ctx, ret, "%pD: cannot make %d its foreground group", tty, pgrp);
	return 0;
}

const struct ckpt_file_ops ckpt_tty_ops = {
	.kind = CKPT_FILE_TTY,
	.name = "terminal",
	.match = ckpt_tty_match,
	.checkpoint = checkpoint_tty_file,
	.restore = restore_tty_file,
};

const struct ckpt_file_ops ckpt_ctty_ops = {
	.kind = CKPT_FILE_CTTY,
	.name = "/dev/tty",
	.match = ckpt_ctty_match,
	.checkpoint = checkpoint_ctty_file,
	.restore = restore_ctty_file,
};
