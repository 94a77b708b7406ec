// SPDX-License-Identifier: GPL-2.0-only
/*
 * container: a process in its own UTS and IPC namespaces (unshared at
 * start) with SysV objects: a keyed shm segment it and its child attach,
 * a private one already marked for removal, a message queue with queued
 * messages of several types, and a semaphore set. Each step the child
 * writes into the segment and sends a message, the parent takes it, adds
 * to a semaphore and prints a checksum over both segments. Ids are made
 * non-trivial by removing an object of each kind first. At the end it
 * prints the names, ids, keys, modes, queued messages in order and
 * semaphore values, as an undisturbed run would.
 *
 *   container STEPS          in its own namespaces
 *   container STEPS host     in the caller's: just an attached (removed) segment
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#define SHM_KEY 0x1234cafe
#define MSG_KEY 0x1234beef
#define SEM_KEY 0x1234f00d
#define SHM_SIZE (3 * 4096 + 100)
#define PRIV_SIZE 8192

struct msg {
	long mtype;
	char text[64];
};

static int shm_id, priv_id, msq_id, sem_id;
static volatile unsigned char *shm, *priv;

static void die(const char *what)
{
	perror(what);
	exit(2);
}

static uint64_t checksum(void)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t i;

	for (i = 0; i < SHM_SIZE; i++)
		h = (h ^ shm[i]) * 0x100000001b3ULL;
	for (i = 0; i < PRIV_SIZE; i++)
		h = (h ^ priv[i]) * 0x100000001b3ULL;
	return h;
}

/* SysV calls fail with EINTR when the task is stopped (by a dump): retry. */
static void sem_add(int num, int delta)
{
	struct sembuf op = { .sem_num = num, .sem_op = delta };

	while (semop(sem_id, &op, 1) < 0)
		if (errno != EINTR)
			die("semop");
}

static void send(long type, const char *text)
{
	struct msg m = { .mtype = type };

	snprintf(m.text, sizeof(m.text), "%s", text);
	while (msgsnd(msq_id, &m, strlen(m.text) + 1, 0) < 0)
		if (errno != EINTR)
			die("msgsnd");
}

static ssize_t receive(long type, struct msg *m, int flags)
{
	ssize_t n;

	while ((n = msgrcv(msq_id, m, sizeof(m->text), type, flags)) < 0)
		if (errno != EINTR)
			return -1;
	return n;
}

static void *attach(int id)
{
	void *p = shmat(id, NULL, 0);

	if (p == (void *)-1)
		die("shmat");
	return p;
}

/* Remove one object of each kind, so the next ids carry a sequence number. */
static void burn_ids(void)
{
	int id;

	if ((id = shmget(IPC_PRIVATE, 4096, 0600)) < 0 || shmctl(id, IPC_RMID, NULL) < 0)
		die("shm");
	if ((id = msgget(IPC_PRIVATE, 0600)) < 0 || msgctl(id, IPC_RMID, NULL) < 0)
		die("msg");
	if ((id = semget(IPC_PRIVATE, 1, 0600)) < 0 || semctl(id, 0, IPC_RMID) < 0)
		die("sem");
}

static void setup(void)
{
	unsigned short values[3] = { 7, 0, 0 };
	struct msqid_ds mds;
	size_t i;

	if (unshare(CLONE_NEWUTS | CLONE_NEWIPC) < 0)
		die("unshare");
	if (sethostname("cr-lab-box", 10) < 0 || setdomainname("lab.example", 11) < 0)
		die("sethostname");
	burn_ids();
	burn_ids();

	if ((shm_id = shmget(SHM_KEY, SHM_SIZE, IPC_CREAT | 0640)) < 0)
		die("shmget");
	shm = attach(shm_id);
	/* The middle page stays zero. */
	for (i = 0; i < 4096; i++)
		shm[i] = i * 7;
	for (i = 2 * 4096; i < SHM_SIZE; i++)
		shm[i] = i * 13;
	if ((priv_id = shmget(IPC_PRIVATE, PRIV_SIZE, IPC_CREAT | 0600)) < 0)
		die("shmget private");
	priv = attach(priv_id);
	if (shmctl(priv_id, IPC_RMID, NULL) < 0)
		die("shmctl IPC_RMID");
	memset((void *)priv, 0x5a, PRIV_SIZE);

	if ((msq_id = msgget(MSG_KEY, IPC_CREAT | 0620)) < 0)
		die("msgget");
	if (msgctl(msq_id, IPC_STAT, &mds) < 0)
		die("msgctl");
	mds.msg_qbytes = 8192;
	if (msgctl(msq_id, IPC_SET, &mds) < 0)
		die("msgctl IPC_SET");
	send(3, "three");
	send(1, "one");
	send(2, "two");
	send(1, "one again");

	if ((sem_id = semget(SEM_KEY, 3, IPC_CREAT | 0604)) < 0)
		die("semget");
	if (semctl(sem_id, 0, SETALL, values) < 0)
		die("semctl SETALL");
}

static void child(int steps)
{
	char text[32];
	int i;

	for (i = 0; i < steps; i++) {
		sem_add(1, -1);
		shm[4096 + i % 4096] += i + 1;
		priv[i % PRIV_SIZE] ^= i;
		snprintf(text, sizeof(text), "child %d", i);
		send(100 + i % 3, text);
		sem_add(2, 1);
	}
	_exit(0);
}

static void report(void)
{
	struct shmid_ds sds;
	struct msqid_ds mds;
	struct semid_ds eds;
	unsigned short values[3];
	struct utsname u;
	struct msg m;

	uname(&u);
	printf("hostname %s domainname %s\n", u.nodename, u.domainname);
	if (shmctl(shm_id, IPC_STAT, &sds) < 0)
		die("shmctl");
	printf("shm id %d key %x mode %o size %zu nattch %lu lookup %s\n", shm_id, sds.shm_perm.__key, sds.shm_perm.mode,
	       sds.shm_segsz, (unsigned long)sds.shm_nattch, shmget(SHM_KEY, 0, 0) == shm_id ? "ok" : "FAILED");
	if (shmctl(priv_id, IPC_STAT, &sds) < 0)
		die("shmctl private");
	printf("private shm id %d mode %o size %zu nattch %lu\n", priv_id, sds.shm_perm.mode, sds.shm_segsz, (unsigned long)sds.shm_nattch);
	if (msgctl(msq_id, IPC_STAT, &mds) < 0)
		die("msgctl");
	printf("msq id %d key %x mode %o qnum %lu qbytes %lu lookup %s\n", msq_id, mds.msg_perm.__key, mds.msg_perm.mode,
	       (unsigned long)mds.msg_qnum, (unsigned long)mds.msg_qbytes, msgget(MSG_KEY, 0) == msq_id ? "ok" : "FAILED");
	while (receive(0, &m, IPC_NOWAIT) >= 0)
		printf("  message type %ld: %s\n", m.mtype, m.text);
	if (semctl(sem_id, 0, IPC_STAT, &eds) < 0 || semctl(sem_id, 0, GETALL, values) < 0)
		die("semctl");
	printf("sem id %d key %x mode %o nsems %lu values %u %u %u lookup %s\n", sem_id, eds.sem_perm.__key, eds.sem_perm.mode,
	       (unsigned long)eds.sem_nsems, values[0], values[1], values[2], semget(SEM_KEY, 0, 0) == sem_id ? "ok" : "FAILED");
	printf("sum %016llx\n", (unsigned long long)checksum());
}

/* In the caller's IPC namespace: only an attached segment, already removed so nothing outlives us. */
static void host(int steps)
{
	int i;

	if ((priv_id = shmget(IPC_PRIVATE, PRIV_SIZE, IPC_CREAT | 0600)) < 0)
		die("shmget");
	priv = attach(priv_id);
	shmctl(priv_id, IPC_RMID, NULL);
	for (i = 0; i < steps; i++) {
		priv[i % PRIV_SIZE] += i;
		printf("step %d\n", i);
		fflush(stdout);
		usleep(20000);
	}
}

int main(int argc, char **argv)
{
	int steps = argc > 1 ? atoi(argv[1]) : 100;
	struct msg m;
	pid_t pid;
	int i, status;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 2 && strcmp(argv[2], "host") == 0) {
		host(steps);
		printf("pid %d\n", getpid());
		return 0;
	}
	setup();
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0)
		child(steps);

	for (i = 0; i < steps; i++) {
		sem_add(1, 1);
		sem_add(2, -1);
		sem_add(0, 1);
		if (receive(100 + i % 3, &m, 0) < 0)
			die("msgrcv");
		printf("step %d sum %016llx got type %ld: %s\n", i, (unsigned long long)checksum(), m.mtype, m.text);
		usleep(20000);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			die("waitpid");
	printf("child exit %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	report();
	printf("pid %d\n", getpid());
	return 0;
}
