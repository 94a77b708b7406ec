// SPDX-License-Identifier: GPL-2.0-only
/*
 * caps: a root process that gave some of its rights away, as daemons do,
 * must not get them back from its (root) restorer.
 *
 *   caps TICKS [UID]
 *
 * Drops CAP_SYS_BOOT from the bounding set, CAP_SYS_BOOT and CAP_SYS_TIME
 * from the effective and permitted sets, makes CAP_NET_RAW inheritable and
 * ambient, and sets no_new_privs; with UID it then becomes that user,
 * keeping its permitted set (PR_SET_KEEPCAPS).  Prints the state every
 * 100 ms for TICKS ticks, then its pid.
 */
#define _GNU_SOURCE
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static void caps(struct __user_cap_data_struct d[2], int set)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };

	if (syscall(set ? SYS_capset : SYS_capget, &h, d)) {
		perror(set ? "capset" : "capget");
		exit(1);
	}
}

int main(int argc, char **argv)
{
	struct __user_cap_data_struct d[2];
	int i, ticks;

	close_range(3, ~0U, 0);
	if (argc < 2) {
		fprintf(stderr, "usage: caps TICKS [UID]\n");
		return 2;
	}
	ticks = atoi(argv[1]);
	if (prctl(PR_CAPBSET_DROP, CAP_SYS_BOOT))
		return perror("PR_CAPBSET_DROP"), 1;
	caps(d, 0);
	d[0].effective &= ~((1u << CAP_SYS_BOOT) | (1u << CAP_SYS_TIME));
	d[0].permitted &= ~((1u << CAP_SYS_BOOT) | (1u << CAP_SYS_TIME));
	d[0].inheritable |= 1u << CAP_NET_RAW;
	caps(d, 1);
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_RAW, 0, 0) ||
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return perror("prctl"), 1;
	if (argc > 2) {
		uid_t uid = atoi(argv[2]);

		if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) || setresuid(uid, uid, uid))
			return perror("setresuid"), 1;
		caps(d, 0);
		d[0].effective = d[0].permitted & ~(1u << CAP_SYS_ADMIN);
		caps(d, 1);
	}
	for (i = 0; i < ticks; i++) {
		caps(d, 0);
		printf("tick %d uid %d/%d eff %08x:%08x prm %08x:%08x inh %08x bset(boot) %d ambient(net_raw) %d nnp %d keepcaps %d\n",
		       i, getuid(), geteuid(), d[1].effective, d[0].effective, d[1].permitted, d[0].permitted,
		       d[0].inheritable, prctl(PR_CAPBSET_READ, CAP_SYS_BOOT),
		       prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_NET_RAW, 0, 0),
		       prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0), prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0));
		fflush(stdout);
		usleep(100000);
	}
	printf("pid %d\n", getpid());
	return 0;
}
