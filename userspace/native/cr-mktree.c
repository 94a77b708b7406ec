// SPDX-License-Identifier: GPL-2.0-only
/*
 * cr-mktree: create a tree of placeholder tasks with chosen pids.
 *
 * This is the only part of cr-lab's restore path that forks: Node cannot
 * fork itself safely, and a task's pid can only be chosen at clone time.
 *
 *   cr-mktree [-p] [-j] [-n CLONE_FLAGS] [-h COUNT] PID:PPID:PGID:SID[:zSTATUS|:f][:tTTY] ...
 *
 * -n gives CLONE_NEW* flags (hex) the root is created with: the restored
 * tree then lives in fresh namespaces of those kinds (UTS, IPC, ...).
 * -k IMAGE LOGFILE restarts from an in-kernel checkpoint image instead (the
 * kernel backend): the tasks are created the same way but with
 * clone_with_pids(2), and each, once its children exist, calls
 * restart(ROOT, fd, RESTART_TASKSELF, logfd), which returns into the
 * checkpointed program when the whole tree is rebuilt; the engine's log is
 * appended to LOGFILE and tells whether it worked.  With -F as well
 * (RESTART_FROZEN), the restarted tasks stay frozen until `cr thaw`; with
 * -m (RESTART_MAP), the engine maps private memory from the image instead
 * of copying it.
 * -h COUNT: the COUNT descriptors from fd 4 up are the restorer's, for the
 * tasks (pty masters): every task inherits them, cr-mktree itself closes
 * them once the root exists, so that they live only as long as the tree.
 * -p puts the tree in a new pid namespace, under a small init (pid 1
 * there) that reaps orphans and ends with the root's status; the tasks get
 * their original pids inside it.  With -k they get them outside it too,
 * where those are free (clone_with_pids(2) sets a pid per level), and -n's
 * namespaces are the root's, not the init's: the engine rebuilds them in
 * the root.
 * their original pids inside it.
 * -j restores a shell job: the root, which joined our session, makes its
 * process group the foreground job of our terminal (stdin), as a shell
 * does for a job it starts (CRIU's --shell-job).
 *
 * The first argument is the root (its PPID is ignored); every other task
 * names a parent listed before it. The user backend gives the root alone:
 * its restorer forks every other task from its restored parent, so that
 * it inherits the parent's memory (backends/user/tree.ts). Each task is created with clone3()'s
 * set_tid, takes its session and process group, creates its children,
 * reports "ready PID HOSTPID" on fd 3 (HOSTPID: its pid as the restorer
 * sees it, which differs inside a new pid namespace) and then waits in pause() until the restorer
 * (which seizes it with ptrace) replaces its whole state. A task given
 * zSTATUS is a zombie: it ends with that wait status once its place in
 * the tree is taken. A task marked f is created with CLONE_FILES: it shares
 * its parent's fd table, as it did when it was dumped. A session leader
 * given tTTY makes TTY its controlling terminal before it creates its
 * children, who then share it. A task that cannot be created reports "error PID: ..."
 * and the tree exits.
 *
 * cr-mktree itself stays the parent of the root and, when the root ends,
 * exits with the root's status, so `cr restore` can report it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define STATUS_FD 3
#define HANDED_FD 4
#define MAX_TASKS 4096
/* kernel-patches/: x86_64 numbers after the x32 range, and the flag we use */
#define NR_restart 549
#define NR_clone_with_pids 550
#define RESTART_TASKSELF 0x1
#define RESTART_FROZEN 0x2
#define RESTART_MAP 0x4

struct clone_pid_set {
	uint32_t num_pids;
	uint32_t reserved;
	uint64_t pids;
};

struct task {
	pid_t pid, ppid, pgid, sid;
	int zombie, status;
	int clone_files;
	const char *tty;
};

static struct task tasks[MAX_TASKS];
static int nr_tasks;
/* -k: the image, and the pipe the engine logs into for every task */
static const char *kimage;
/* -k -p: we are the init of the tree's pid namespace; each task's pid outside it */
static int kpidns;
static pid_t khostpid[MAX_TASKS];
static unsigned long krestart_flags = RESTART_TASKSELF;
static int klog_pipe[2] = { -1, -1 };
/* -j: the root becomes the foreground job of our terminal */
static int shell_job;

static void report(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (len > 0 && write(STATUS_FD, buf, len) < 0)
		_exit(125);
}

/* clone3() a child with pid @pid in the innermost pid namespace (any pid if 0). */
static pid_t clone_with_pid(pid_t pid, uint64_t flags)
{
	struct clone_args args;
	pid_t set_tid = pid;

	memset(&args, 0, sizeof(args));
	args.flags = flags;
	args.exit_signal = SIGCHLD;
	if (pid) {
		args.set_tid = (uintptr_t)&set_tid;
		args.set_tid_size = 1;
	}
	return syscall(SYS_clone3, &args, sizeof(args));
}

/*
 * -k: the same with clone_with_pids(2), the kernel backend's own call; in
 * our pid namespace, with the same pid in the one outside it if that is free
 */
static pid_t clone_with_pids(pid_t pid, uint64_t flags)
{
	pid_t pids[2] = { pid, pid };	/* innermost first */
	struct clone_pid_set set = { pid ? 1 + kpidns : 0, 0, (uintptr_t)pids };	/* 0: any pid */
	pid_t child = syscall(NR_clone_with_pids, SIGCHLD | flags, 0, NULL, NULL, &set);

	if (child < 0 && errno == EBUSY && set.num_pids == 2) {
		set.num_pids = 1;
		child = syscall(NR_clone_with_pids, SIGCHLD | flags, 0, NULL, NULL, &set);
	}
	return child;
}

static pid_t create_task(pid_t pid, uint64_t flags)
{
	return kimage ? clone_with_pids(pid, flags) : clone_with_pid(pid, flags);
}

/* Our pid in the pid namespace of the /proc we see: the restorer's. */
static pid_t host_pid(void)
{
	char buf[32];
	ssize_t n = readlink("/proc/self", buf, sizeof(buf) - 1);

	if (n <= 0)
		return -1;
	buf[n] = 0;
	return atoi(buf);
}

/* Wait for @pid, reaping any other child meanwhile (we may be an init). */
static int wait_for(pid_t pid)
{
	int status;
	pid_t got;

	for (;;) {
		got = waitpid(-1, &status, 0);
		if (got == pid)
			return status;
		if (got < 0 && errno != EINTR)
			_exit(125);
	}
}

static int in_tree_before(pid_t pid, int idx)
{
	int i;

	for (i = 0; i < idx; i++)
		if (tasks[i].pid == pid)
			return 1;
	return 0;
}

/* End the way the zombie ended: same exit code, or same signal (no core). */
static void __attribute__((noreturn)) become_zombie(int status)
{
	if (WIFSIGNALED(status)) {
		struct rlimit no_core = { 0, 0 };

		setrlimit(RLIMIT_CORE, &no_core);
		signal(WTERMSIG(status), SIG_DFL);
		kill(getpid(), WTERMSIG(status));
	}
	_exit(WEXITSTATUS(status));
}

/* Runs in task @idx: take its session and group, create its children, wait. */
static void __attribute__((noreturn)) become_task(int idx)
{
	struct task *t = &tasks[idx];
	int i;

	if (t->sid == t->pid) {
		setsid();
		if (t->tty) {
			int fd = open(t->tty, O_RDWR | O_NOCTTY | O_CLOEXEC);

			if (fd < 0 || ioctl(fd, TIOCSCTTY, 0) < 0) {
				report("error %d: cannot take terminal %s: %s\n", t->pid, t->tty, strerror(errno));
				_exit(125);
			}
			close(fd);
		}
	} else if (t->pgid == t->pid)
		setpgid(0, 0);
	else if (in_tree_before(t->pgid, idx) && getpgid(0) != t->pgid && setpgid(0, t->pgid) < 0) {
		report("error %d: cannot join process group %d: %s\n", t->pid, t->pgid, strerror(errno));
		_exit(125);
	}
	if (shell_job && idx == 0 && t->sid != t->pid && isatty(0)) {
		sigset_t ttou, old;

		/* a background group may take the terminal only with SIGTTOU held */
		sigemptyset(&ttou);
		sigaddset(&ttou, SIGTTOU);
		sigprocmask(SIG_BLOCK, &ttou, &old);
		if (tcsetpgrp(0, getpgrp()) < 0) {
			report("error %d: cannot become the terminal's foreground job: %s\n", t->pid,
			       strerror(errno));
			_exit(125);
		}
		sigprocmask(SIG_SETMASK, &old, NULL);
	}

	for (i = idx + 1; i < nr_tasks; i++) {
		pid_t child;

		if (tasks[i].ppid != t->pid)
			continue;
		child = create_task(tasks[i].pid, tasks[i].clone_files ? CLONE_FILES : 0);
		if (child < 0) {
			report("error %d: %s\n", tasks[i].pid,
			       errno == EEXIST || errno == EBUSY ? "pid is taken" : strerror(errno));
			_exit(125);
		}
		if (child == 0)
			become_task(i);
	}
	/* -k: the parent reports every task once the engine has restarted them all */
	if (!kimage)
		report("ready %d %d\n", t->pid, host_pid());
	if (t->zombie)
		become_zombie(t->status);	/* nothing to restore: it only ends again */
	if (kimage) {
		int fd = open(kimage, O_RDONLY | O_CLOEXEC);

		if (kpidns)
			dprintf(klog_pipe[1], "cr-mktree: pid %d is pid %d outside\n", t->pid, host_pid());

		if (fd >= 0)
			syscall(NR_restart, tasks[0].pid, fd, krestart_flags, klog_pipe[1]);
		/* only reached if restart failed before changing this task */
		dprintf(klog_pipe[1], "cr-mktree: pid %d: restart: %s\n", t->pid, strerror(errno));
		_exit(125);
	}
	for (;;)
		pause();
}

static void quiet_stdio(void)
{
	int devnull = open("/dev/null", O_RDWR);

	if (devnull < 0)
		return;
	dup2(devnull, 0);
	dup2(devnull, 1);
	dup2(devnull, 2);
	if (devnull > 2)
		close(devnull);
}

/*
 * -k: copy the engine's log from every task to @logpath until all have
 * restarted (their fd tables, and our pipe with them, replaced) or died;
 * report each task ready, or the engine's error and exit.
 */
static void kernel_wait_restarted(const char *logpath)
{
	int logfile = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	char buf[4096], last[512] = "", error[512] = "";
	int i, restarted = 0, live = 0;
	size_t len = 0;
	ssize_t n;

	for (;;) {
		char *line = buf, *nl;

		n = read(klog_pipe[0], buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (logfile >= 0 && write(logfile, buf + len, n) != n) {
			close(logfile);
			logfile = -1;
		}
		len += n;
		buf[len] = 0;
		for (; (nl = strchr(line, '\n')); line = nl + 1) {
			pid_t pid, outside;

			*nl = 0;
			if (sscanf(line, "cr-mktree: pid %d is pid %d outside", &pid, &outside) == 2) {
				for (i = 0; i < nr_tasks; i++)
					if (tasks[i].pid == pid)
						khostpid[i] = outside;
				continue;
			}
			if (strstr(line, "restarted pid "))
				restarted++;
			else if (!error[0] && strstr(line, "error"))
				snprintf(error, sizeof(error), "%.500s", line);
			snprintf(last, sizeof(last), "%.500s", line);
		}
		len = buf + len - line;
		memmove(buf, line, len);
		if (len == sizeof(buf) - 1)
			len = 0;	/* a line too long to matter */
	}
	for (i = 0; i < nr_tasks; i++)
		live += !tasks[i].zombie;
	/* an error after the last task was rebuilt still kills the whole tree */
	if (restarted == live && !error[0]) {
		for (i = 0; i < nr_tasks; i++)
			report("ready %d %d\n", tasks[i].pid, khostpid[i] ? khostpid[i] : tasks[i].pid);
		return;
	}
	report("error %d: %s\n", tasks[0].pid, error[0] ? error : last[0] ? last : "restart failed");
	exit(125);
}

int main(int argc, char **argv)
{
	const char *klog = NULL;
	uint64_t ns_flags = 0;
	int i, first = 1, pidns = 0, handed = 0, status;
	pid_t root;

	for (; first < argc && argv[first][0] == '-'; first++) {
		if (strcmp(argv[first], "-p") == 0)
			pidns = 1;
		else if (strcmp(argv[first], "-n") == 0 && first + 1 < argc)
			ns_flags = strtoull(argv[++first], NULL, 16);
		else if (strcmp(argv[first], "-j") == 0)
			shell_job = 1;
		else if (strcmp(argv[first], "-h") == 0 && first + 1 < argc)
			handed = atoi(argv[++first]);
		else if (strcmp(argv[first], "-F") == 0)
			krestart_flags |= RESTART_FROZEN;
		else if (strcmp(argv[first], "-k") == 0 && first + 2 < argc) {
			kimage = argv[++first];
			klog = argv[++first];
		} else if (strcmp(argv[first], "-m") == 0)
			krestart_flags |= RESTART_MAP;
		else
			break;
	}
	if (argc - first < 1 || argc - first > MAX_TASKS) {
		fprintf(stderr, "usage: cr-mktree [-p] [-j] [-n CLONE_FLAGS] [-h COUNT] [-m] [-k IMAGE LOGFILE [-F]] PID:PPID:PGID:SID[:zSTATUS|:f][:tTTY] ...\n");
		return 2;
	}
	for (i = first; i < argc; i++) {
		struct task *t = &tasks[nr_tasks++];
		int len = 0, n = sscanf(argv[i], "%d:%d:%d:%d%n", &t->pid, &t->ppid, &t->pgid, &t->sid, &len);
		const char *rest = argv[i] + len;

		if (n < 4 || t->pid < 0 || (t->pid == 0 && !kimage)) {
			fprintf(stderr, "cr-mktree: bad task '%s'\n", argv[i]);
			return 2;
		}
		if (!strncmp(rest, ":t", 2))
			t->tty = rest + 2;
		else if (sscanf(rest, ":z%d", &t->status) == 1)
			t->zombie = 1;
		else if (!strcmp(rest, ":f"))
			t->clone_files = 1;
		else if (!strncmp(rest, ":f:t", 4)) {
			t->clone_files = 1;
			t->tty = rest + 4;
		} else if (*rest) {
			fprintf(stderr, "cr-mktree: bad task '%s'\n", argv[i]);
			return 2;
		}
	}

	if ((krestart_flags & RESTART_FROZEN) && !kimage) {
		fprintf(stderr, "cr-mktree: -F needs -k\n");
		return 2;
	}
	if (kimage) {
		if (pipe(klog_pipe) < 0) {
			report("error %d: pipe: %s\n", tasks[0].pid, strerror(errno));
			return 125;
		}
	}

	if (pidns) {
		/* -k: the root gets the other namespaces, to be rebuilt there */
		pid_t init = clone_with_pid(0, (kimage ? 0 : ns_flags) | CLONE_NEWPID);

		if (init < 0) {
			report("error %d: cannot create a pid namespace: %s\n", tasks[0].pid, strerror(errno));
			return 125;
		}
		if (init == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (kimage)
				kpidns = 1;
			else
				ns_flags = 0;
		} else {
			if (handed)
				close_range(HANDED_FD, HANDED_FD + handed - 1, 0);
			close(STATUS_FD);
			/* the init reads the engine's log until every task has its end closed */
			if (kimage) {
				close(klog_pipe[0]);
				close(klog_pipe[1]);
			}
			quiet_stdio();
			status = wait_for(init);
			return WIFEXITED(status) ? WEXITSTATUS(status) : 125;
		}
	}

	root = create_task(tasks[0].pid, ns_flags);
	if (root < 0) {
		report("error %d: %s\n", tasks[0].pid,
		       errno == EEXIST || errno == EBUSY ? "pid is taken" : strerror(errno));
		return 125;
	}
	if (root == 0) {
		/* A restored tree must not outlive a restorer that died early. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		become_task(0);
	}
	if (kimage) {
		close(klog_pipe[1]);
		kernel_wait_restarted(klog);
	}
	if (handed)
		close_range(HANDED_FD, HANDED_FD + handed - 1, 0);
	close(STATUS_FD);
	/*
	 * Only the restored tasks may hold on to our caller's stdio: a caller
	 * that reads it until EOF must not wait for us, the silent parent.
	 */
	quiet_stdio();

	status = wait_for(root);
	/* An init cannot kill itself: say which signal the way a shell would. */
	if (WIFSIGNALED(status) && pidns)
		return 128 + WTERMSIG(status);
	if (WIFSIGNALED(status)) {
		signal(WTERMSIG(status), SIG_DFL);
		prctl(PR_SET_DUMPABLE, 0);	/* no core file of our own */
		kill(getpid(), WTERMSIG(status));
	}
	return WEXITSTATUS(status);
}
