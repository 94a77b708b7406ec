// SPDX-License-Identifier: GPL-2.0-only
/*
 * kipc: SysV IPC and a UTS namespace of its own, across checkpoint/restart.
 *
 *   unshare -iu kipc
 *
 * In its own IPC and UTS namespaces (it checks that it has them), kipc
 * names its host and domain, then builds:
 *  - shm segment A (key 0x6b495043, 3 pages and 100 bytes, mode 0640,
 *    owner 65534:65534) filled with a pattern, attached twice: once
 *    read-write, its first page then made read-only with mprotect(2), and
 *    once read-only; its children inherit both attachments;
 *  - shm segment B (IPC_PRIVATE, 2 pages, mode 0600, locked) written but
 *    attached by nobody, and segment C attached and then removed (IPC_RMID);
 *  - message queue Q (key 0x6b4d5347, msg_qbytes 100000, above msgmnb)
 *    holding four messages of types 3, 1, 2, 3 and sizes 10, 0, 5000, 8000;
 *  - semaphore set S (key 0x6b53454d, 3 semaphores) on which child 1 makes
 *    SEM_UNDO adjustments +2 and -4 on semaphores 0 and 1, and child 2 +10
 *    on semaphore 2, leaving the values 3 4 1;
 *  - a message queue and a semaphore set with IPC_PRIVATE keys;
 *  - and, for the fuzz test's seed, a POSIX timer armed for 1000 s.
 * Objects of each kind created and removed first make the ids ones a fresh
 * namespace would not hand out.  It records every id, prints "ready" and
 * waits for SIGUSR1.  Then it
 * checks all of it: names, ids, keys, modes, owners, contents (child 1
 * writes into A and the root sees it), protections, the messages in
 * order, the values; tells child 1 and then child 2 to exit and checks
 * that their adjustments were undone exactly once (values 5 0 1, then
 * 5 0 11).  Prints "ok ..." or "FAIL ..." lines and exits with the
 * number of failures.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KEY_A 0x6b495043
#define KEY_Q 0x6b4d5347
#define KEY_S 0x6b53454d
#define PAGE 4096
#define SIZE_A (3 * PAGE + 100)
#define NOBODY 65534

static int failures;
static volatile sig_atomic_t go;

static void check(int ok, const char *what)
{
	printf("%s %s\n", ok ? "ok" : "FAIL", what);
	failures += !ok;
}

static void die(const char *what)
{
	printf("FAIL setup: %s: %s\n", what, strerror(errno));
	exit(100);
}

static void on_usr1(int sig)
{
	(void)sig;
	go = 1;
}

static void wait_go(void)
{
	sigset_t none;

	sigemptyset(&none);
	while (!go)
		sigsuspend(&none);
	go = 0;
}

static char pattern(size_t i, int seed)
{
	return (char)((i * 131 + seed) % 251);
}

static int pattern_ok(const char *p, size_t n, int seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != pattern(i, seed))
			return 0;
	return 1;
}

static void fill(char *p, size_t n, int seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = pattern(i, seed);
}

/* The permissions /proc/self/maps shows for the mapping that starts at @addr */
static const char *maps_perms(void *addr)
{
	static char perms[8];
	char line[512];
	FILE *f = fopen("/proc/self/maps", "r");
	unsigned long start;

	strcpy(perms, "?");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%*x %7s", &start, perms) == 2 && start == (unsigned long)addr)
			break;
		else
			strcpy(perms, "?");
	if (f)
		fclose(f);
	return perms;
}

static const struct {
	long type;
	size_t size;
} msgs[] = { { 3, 10 }, { 1, 0 }, { 2, 5000 }, { 3, 8000 } };

struct msg {
	long type;
	char text[8192];
};

static int sem_values(int id, unsigned short *v)
{
	return semctl(id, 0, GETALL, v);
}

static void semop1(int id, int num, int op, int flags)
{
	struct sembuf sop = { num, op, flags };

	if (semop(id, &sop, 1))
		die("semop");
}

/* A child of the root: its SEM_UNDO adjustments, then it waits; told, child 1 writes into A */
static pid_t child(int n, int sem, char *a)
{
	pid_t pid = fork();

	if (pid < 0)
		die("fork");
	if (pid)
		return pid;
	if (n == 1) {
		semop1(sem, 0, -2, SEM_UNDO);
		semop1(sem, 1, 4, SEM_UNDO);
	} else {
		semop1(sem, 2, -10, SEM_UNDO);
	}
	printf("child %d ready\n", n);
	wait_go();
	if (n == 1)
		strcpy(a + SIZE_A - 20, "child 1 was here");
	_exit(0);
}

static int ns_own(const char *kind)
{
	char mine[64], parent[64];
	struct stat a, b;

	snprintf(mine, sizeof(mine), "/proc/self/ns/%s", kind);
	snprintf(parent, sizeof(parent), "/proc/%d/ns/%s", getppid(), kind);
	return !stat(mine, &a) && !stat(parent, &b) && a.st_ino != b.st_ino;
}

int main(void)
{
	int a, b, c, q, s, qp, sp, i;
	char *a_rw, *a_ro, *p, *pc;
	struct shmid_ds sds;
	struct msqid_ds qds;
	struct semid_ds semds;
	unsigned short v[3], init[3] = { 5, 0, 11 };
	static struct msg m;
	char host[256], dom[256];
	struct utsname u;
	struct itimerspec left;
	timer_t timer;
	pid_t c1, c2;
	int status, nattch_a, nattch_c;

	setvbuf(stdout, NULL, _IONBF, 0);
	signal(SIGUSR1, on_usr1);
	if (!ns_own("ipc") || !ns_own("uts"))
		die("not in IPC and UTS namespaces of its own: run it with unshare -iu");
	if (sethostname("kipc-host", 9) || setdomainname("kipc.domain", 11))
		die("sethostname");

	/* the ids: a removed object leaves a hole and moves the sequence on */
	for (i = 0; i < 2; i++) {
		int x = shmget(IPC_PRIVATE, PAGE, IPC_CREAT | 0600), y = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
		int z = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);

		if (x < 0 || y < 0 || z < 0 || shmctl(x, IPC_RMID, NULL) || msgctl(y, IPC_RMID, NULL) ||
		    semctl(z, 0, IPC_RMID))
			die("ids");
	}
	a = shmget(KEY_A, SIZE_A, IPC_CREAT | IPC_EXCL | 0640);
	b = shmget(IPC_PRIVATE, 2 * PAGE, IPC_CREAT | 0600);
	c = shmget(IPC_PRIVATE, PAGE, IPC_CREAT | 0600);
	if (a < 0 || b < 0 || c < 0)
		die("shmget");
	a_rw = shmat(a, NULL, 0);
	a_ro = shmat(a, NULL, SHM_RDONLY);
	p = shmat(b, NULL, 0);
	pc = shmat(c, NULL, 0);
	if (a_rw == (void *)-1 || a_ro == (void *)-1 || p == (void *)-1 || pc == (void *)-1)
		die("shmat");
	fill(a_rw, SIZE_A, 1);
	fill(p, 2 * PAGE, 2);
	fill(pc, PAGE, 3);
	if (shmdt(p) || mprotect(a_rw, PAGE, PROT_READ) || shmctl(b, SHM_LOCK, NULL) ||
	    shmctl(c, IPC_RMID, NULL))
		die("shm setup");
	shmctl(a, IPC_STAT, &sds);
	sds.shm_perm.uid = NOBODY;
	sds.shm_perm.gid = NOBODY;
	if (shmctl(a, IPC_SET, &sds))
		die("shmctl IPC_SET");

	q = msgget(KEY_Q, IPC_CREAT | IPC_EXCL | 0620);
	qp = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
	if (q < 0 || qp < 0 || msgctl(q, IPC_STAT, &qds))
		die("msgget");
	qds.msg_qbytes = 100000;
	if (msgctl(q, IPC_SET, &qds))
		die("msgctl IPC_SET");
	for (i = 0; i < 4; i++) {
		m.type = msgs[i].type;
		fill(m.text, msgs[i].size, 10 + i);
		if (msgsnd(q, &m, msgs[i].size, IPC_NOWAIT))
			die("msgsnd");
	}

	s = semget(KEY_S, 3, IPC_CREAT | IPC_EXCL | 0600);
	sp = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
	if (s < 0 || sp < 0 || semctl(s, 0, SETALL, init))
		die("semget");
	c1 = child(1, s, a_rw);
	c2 = child(2, s, a_rw);
	for (;;) {
		sem_values(s, v);
		if (v[0] == 3 && v[1] == 4 && v[2] == 1)
			break;
		usleep(1000);
	}
	/* a piece that mprotect(2) split off counts as an attachment of its own */
	shmctl(a, IPC_STAT, &sds);
	nattch_a = sds.shm_nattch;
	shmctl(c, IPC_STAT, &sds);
	nattch_c = sds.shm_nattch;
	{
		struct sigevent ev = { .sigev_notify = SIGEV_NONE };
		struct itimerspec its = { { 1000, 0 }, { 1000, 0 } };

		if (timer_create(CLOCK_MONOTONIC, &ev, &timer) || timer_settime(timer, 0, &its, NULL))
			die("timer_create");
	}
	printf("ids %d %d %d %d %d %d %d\n", a, b, c, q, qp, s, sp);
	printf("ready\n");
	wait_go();

	check(!timer_gettime(timer, &left) && left.it_value.tv_sec > 0 && left.it_interval.tv_sec == 1000,
	      "POSIX timer still armed");

	/* UTS */
	gethostname(host, sizeof(host));
	getdomainname(dom, sizeof(dom));
	uname(&u);
	check(!strcmp(host, "kipc-host") && !strcmp(u.nodename, "kipc-host"), "hostname");
	check(!strcmp(dom, "kipc.domain"), "domainname");
	check(ns_own("ipc") && ns_own("uts"), "IPC and UTS namespaces of its own");

	/* shm */
	check(shmget(KEY_A, 0, 0) == a, "segment A has its id and key");
	check(!shmctl(a, IPC_STAT, &sds) && sds.shm_segsz == SIZE_A &&
	      (sds.shm_perm.mode & 0777) == 0640 && sds.shm_perm.uid == NOBODY &&
	      sds.shm_perm.gid == NOBODY && sds.shm_perm.cuid == getuid() &&
	      (int)sds.shm_nattch == nattch_a, "segment A: size, mode, owner, creator, attachments");
	check(pattern_ok(a_rw, SIZE_A - 20, 1) && pattern_ok(a_ro, SIZE_A - 20, 1),
	      "segment A's contents, through both attachments");
	check(!strcmp(maps_perms(a_rw), "r--s") && !strcmp(maps_perms(a_rw + PAGE), "rw-s") &&
	      !strcmp(maps_perms(a_ro), "r--s"), "attachments and their protections");
	check(!shmctl(b, IPC_STAT, &sds) && sds.shm_segsz == 2 * PAGE && sds.shm_nattch == 0 &&
	      (sds.shm_perm.mode & SHM_LOCKED) && sds.shm_perm.__key == IPC_PRIVATE,
	      "segment B: size, unattached, locked, private");
	p = shmat(b, NULL, SHM_RDONLY);
	check(p != (void *)-1 && pattern_ok(p, 2 * PAGE, 2), "segment B's contents");
	check(!shmctl(c, IPC_STAT, &sds) && (sds.shm_perm.mode & SHM_DEST) &&
	      (int)sds.shm_nattch == nattch_c && pattern_ok(pc, PAGE, 3),
	      "segment C: removed, still attached, its contents");

	/* messages */
	check(msgget(KEY_Q, 0) == q, "queue Q has its id and key");
	check(!msgctl(q, IPC_STAT, &qds) && qds.msg_qnum == 4 && qds.msg_qbytes == 100000 &&
	      (qds.msg_perm.mode & 0777) == 0620, "queue Q: 4 messages, qbytes, mode");
	for (i = 0; i < 4; i++) {
		ssize_t n = msgrcv(q, &m, sizeof(m.text), 0, IPC_NOWAIT);
		char what[64];

		snprintf(what, sizeof(what), "message %d: type %ld, %zu bytes", i, msgs[i].type,
			 msgs[i].size);
		check(n == (ssize_t)msgs[i].size && m.type == msgs[i].type &&
		      pattern_ok(m.text, n, 10 + i), what);
	}
	check(!msgctl(qp, IPC_STAT, &qds) && qds.msg_qnum == 0, "private queue");

	/* semaphores */
	check(semget(KEY_S, 0, 0) == s && !semctl(s, 0, IPC_STAT, &semds) && semds.sem_nsems == 3 &&
	      !semctl(sp, 0, IPC_STAT, &semds) && semds.sem_nsems == 1, "semaphore sets");
	check(!sem_values(s, v) && v[0] == 3 && v[1] == 4 && v[2] == 1, "values 3 4 1");

	/* the children: a write through the shared attachment, their adjustments undone once */
	kill(c1, SIGUSR1);
	check(waitpid(c1, &status, 0) == c1 && status == 0, "child 1 ends");
	check(!strcmp(a_ro + SIZE_A - 20, "child 1 was here"), "child 1's write is seen");
	check(!sem_values(s, v) && v[0] == 5 && v[1] == 0 && v[2] == 1,
	      "child 1's SEM_UNDO undone: 5 0 1");
	kill(c2, SIGUSR1);
	check(waitpid(c2, &status, 0) == c2 && status == 0, "child 2 ends");
	check(!sem_values(s, v) && v[0] == 5 && v[1] == 0 && v[2] == 11,
	      "child 2's SEM_UNDO undone: 5 0 11");
	return failures;
}
