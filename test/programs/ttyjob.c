// SPDX-License-Identifier: GPL-2.0-only
/*
 * ttyjob: an interactive job that reads its terminal.
 *
 *   ttyjob LINES
 *
 * Opens /dev/tty at fd 3, then reads LINES lines from stdin and answers
 * each, checking that stdin, stdout and /dev/tty are one terminal, its
 * controlling terminal, and that its process group is the terminal's
 * foreground (a background job would be stopped by SIGTTIN); then prints
 * its pid.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char line[256];
	int i, lines, tty = dup2(open("/dev/tty", O_RDWR), 3);

	if (argc != 2 || tty != 3)
		return 2;
	lines = atoi(argv[1]);
	setvbuf(stdout, NULL, _IONBF, 0);
	for (i = 0; i < lines && fgets(line, sizeof(line), stdin); i++) {
		struct stat a, b;
		const char *name = ttyname(0), *out = ttyname(1);

		line[strcspn(line, "\r\n")] = 0;
		fstat(0, &a);
		fstat(3, &b);
		printf("answer %d to %s: %s, %s, %s\n", i, strstr(line, "line") ? "a line" : line,
		       name && out && !strcmp(name, out) ? "stdin and stdout one terminal" : "NOT ONE TERMINAL",
		       a.st_rdev == b.st_rdev || isatty(3) ? "/dev/tty it" : "/dev/tty ANOTHER",
		       tcgetpgrp(0) == getpgrp() ? "the foreground job" : "IN THE BACKGROUND");
	}
	printf("pid %d\n", getpid());
	return 0;
}
