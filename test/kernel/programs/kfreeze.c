// SPDX-License-Identifier: GPL-2.0-only
/*
 * kfreeze: checkpoints of a task that is busy changing its registers see
 * them as one moment, and leave them as they were.
 *
 *   kfreeze N
 *
 * A child spins in a loop of its own (no C library, no stack): iteration
 * k sets %r12 to k, then its FS base to BASE + k pages (wrfsbase where the
 * kernel allows it, arch_prctl(2) otherwise), then its vector registers 1
 * to 15 (ymm where the CPU has AVX, xmm otherwise) to k, one after the
 * other, stores k in its memory, and checks that what it reads back from
 * its FS base and its registers is what it wrote; on a mismatch it exits
 * with status 1.  The parent checkpoints it N times, leaving it running
 * (checkpoint(2) without CHECKPOINT_KILL), and reads the CPU and FPU
 * objects of each image: with %r12 = k, the FS base is that of k or k-1
 * and the vector registers k up to some register and k-1 after it.
 * Registers read while the task was still on its CPU would be those of an
 * older moment.  Prints "ok ..." or "FAIL ..." lines and exits with the
 * number of failures.
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <elf.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define NR_checkpoint 548
#define FS_BASE 0x100000000000ULL	/* canonical, and nothing there */
#define HWCAP2_FSGSBASE (1 << 1)

static int failures;
static uint8_t image[4 << 20];
static unsigned char store[64 << 10];

static void check(int ok, const char *what)
{
	printf("%s %s\n", ok ? "ok" : "FAIL", what);
	failures += !ok;
}

/* The loop of the child; never returns.  %rdi: the store, %esi: wrfsbase?, %edx: AVX? */
extern void spin(unsigned char *store, int fsgsbase, int avx) __attribute__((noreturn));

__asm__(".text\n"
	".globl spin\n"
	"spin:\n"
	"	mov %rdi, %rbx\n"		/* the store */
	"	mov %esi, %r14d\n"		/* wrfsbase? */
	"	mov %edx, %r15d\n"		/* AVX? */
	"	xor %r12d, %r12d\n"
	"1:	inc %r12\n"
	/* FS base := FS_BASE + k pages */
	"	mov %r12, %r13\n"
	"	shl $12, %r13\n"
	"	movabs $0x100000000000, %rax\n"
	"	add %rax, %r13\n"
	"	test %r14d, %r14d\n"
	"	jz 2f\n"
	"	wrfsbase %r13\n"
	"	jmp 3f\n"
	"2:	mov $158, %eax\n"		/* arch_prctl(ARCH_SET_FS, base) */
	"	mov $0x1002, %edi\n"
	"	mov %r13, %rsi\n"
	"	syscall\n"
	"3:	test %r15d, %r15d\n"
	"	jz 4f\n"
	/* ymm1..15 := k in every qword, one register after the other */
	"	vmovq %r12, %xmm0\n"
	"	vpunpcklqdq %xmm0, %xmm0, %xmm0\n"
	"	vinsertf128 $1, %xmm0, %ymm0, %ymm0\n"
	"	vmovdqa %ymm0, %ymm1\n	vmovdqa %ymm0, %ymm2\n	vmovdqa %ymm0, %ymm3\n"
	"	vmovdqa %ymm0, %ymm4\n	vmovdqa %ymm0, %ymm5\n	vmovdqa %ymm0, %ymm6\n"
	"	vmovdqa %ymm0, %ymm7\n	vmovdqa %ymm0, %ymm8\n	vmovdqa %ymm0, %ymm9\n"
	"	vmovdqa %ymm0, %ymm10\n	vmovdqa %ymm0, %ymm11\n	vmovdqa %ymm0, %ymm12\n"
	"	vmovdqa %ymm0, %ymm13\n	vmovdqa %ymm0, %ymm14\n	vmovdqa %ymm0, %ymm15\n"
	"	vmovq %xmm15, %rax\n"
	"	jmp 5f\n"
	"4:	movq %r12, %xmm0\n"
	"	punpcklqdq %xmm0, %xmm0\n"
	"	movdqa %xmm0, %xmm1\n	movdqa %xmm0, %xmm2\n	movdqa %xmm0, %xmm3\n"
	"	movdqa %xmm0, %xmm4\n	movdqa %xmm0, %xmm5\n	movdqa %xmm0, %xmm6\n"
	"	movdqa %xmm0, %xmm7\n	movdqa %xmm0, %xmm8\n	movdqa %xmm0, %xmm9\n"
	"	movdqa %xmm0, %xmm10\n	movdqa %xmm0, %xmm11\n	movdqa %xmm0, %xmm12\n"
	"	movdqa %xmm0, %xmm13\n	movdqa %xmm0, %xmm14\n	movdqa %xmm0, %xmm15\n"
	"	movq %xmm15, %rax\n"
	/* busy writing its memory too */
	"5:	mov %r12, %rcx\n"
	"	and $0xffc0, %rcx\n"
	"	mov %r12, (%rbx,%rcx)\n"
	/* what it sees: its registers and its FS base are what it wrote */
	"	cmp %r12, %rax\n"
	"	jne 9f\n"
	"	test %r14d, %r14d\n"
	"	jz 6f\n"
	"	rdfsbase %rax\n"
	"	jmp 7f\n"
	"6:	mov $158, %eax\n"		/* arch_prctl(ARCH_GET_FS, &store[8]) */
	"	mov $0x1003, %edi\n"
	"	lea 8(%rbx), %rsi\n"
	"	syscall\n"
	"	mov 8(%rbx), %rax\n"
	"7:	cmp %r13, %rax\n"
	"	jne 9f\n"
	"	jmp 1b\n"
	"9:	mov $231, %eax\n"		/* exit_group(1) */
	"	mov $1, %edi\n"
	"	syscall\n");

/* The payload of the first object of @type in the image at @buf (@len bytes) */
static const uint8_t *object(const uint8_t *buf, size_t len, uint32_t type, uint32_t *size)
{
	size_t off = 0;

	while (off + 8 <= len) {
		uint32_t t, l;

		memcpy(&t, buf + off, 4);
		memcpy(&l, buf + off + 4, 4);
		if (l < 8 || off + l > len)
			return NULL;
		if (t == type) {
			*size = l;
			return buf + off;
		}
		off += l;
	}
	return NULL;
}

static uint64_t u64at(const uint8_t *p, size_t off)
{
	uint64_t v;

	memcpy(&v, p + off, 8);
	return v;
}

/*
 * Whether the CPU and FPU objects describe one moment of the loop; sets
 * *@mid if the vector registers were caught between k-1 and k.
 */
static int consistent(const uint8_t *cpu, const uint8_t *fpu, uint32_t fpu_len, int avx,
		      unsigned int ymm_off, int *mid)
{
	uint64_t k = u64at(cpu, 8 + 3 * 8);	/* r12 */
	uint64_t fs = u64at(cpu, 8 + 21 * 8);
	const uint8_t *xsave = fpu + 16;
	int j, at_k = 0, seen_old = 0;

	if (k < 2)
		return 1;	/* caught before the loop ran twice: nothing to compare */
	if (fs != FS_BASE + (k << 12) && fs != FS_BASE + ((k - 1) << 12))
		return 0;
	for (j = 1; j < 16; j++) {
		uint64_t lo = u64at(xsave, 160 + 16 * j), hi = u64at(xsave, 168 + 16 * j);
		uint64_t v = lo;

		if (lo != hi)
			return 0;
		if (avx) {
			if (ymm_off + 16 * j + 16 > fpu_len - 16 ||
			    u64at(xsave, ymm_off + 16 * j) != v || u64at(xsave, ymm_off + 16 * j + 8) != v)
				return 0;
		}
		if (v == k && !seen_old)
			at_k++;
		else if (v == k - 1)
			seen_old = 1;
		else
			return 0;
	}
	/* the FS base is set before the registers: k's registers need k's base */
	if (at_k && fs != FS_BASE + (k << 12))
		return 0;
	*mid = at_k > 0 && at_k < 15;
	return 1;
}

int main(int argc, char **argv)
{
	unsigned int eax, ebx, ecx, edx, ymm_off = 0;
	int n = argc > 1 ? atoi(argv[1]) : 10000, i, bad = 0, mid = 0, started = 0, warmups = 0, fsgsbase, avx, fd, logfd;
	int status, ready[2];
	char msg[160];
	pid_t child;

	setvbuf(stdout, NULL, _IONBF, 0);
	fsgsbase = !!(getauxval(AT_HWCAP2) & HWCAP2_FSGSBASE);
	__cpuid(1, eax, ebx, ecx, edx);
	/* AVX, and the OS saves it (OSXSAVE and XCR0's YMM bit) */
	avx = (ecx & bit_AVX) && (ecx & bit_OSXSAVE);
	if (avx) {
		uint32_t lo, hi;

		__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
		avx = (lo & 6) == 6;
	}
	if (avx) {
		__cpuid_count(0xd, 2, eax, ebx, ecx, edx);
		ymm_off = ebx;	/* where the XSAVE layout keeps the upper halves */
	}
	printf("kfreeze: %d checkpoints, FS base by %s, %s registers\n", n,
	       fsgsbase ? "wrfsbase" : "arch_prctl", avx ? "ymm" : "xmm");
	if (pipe(ready))
		return 100;
	child = fork();
	if (child == 0) {
		/* nothing shared with us, outside its tree: that would be refused */
		int null = open("/dev/null", O_RDWR);

		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		if (null > 2)
			close(null);
		close(ready[0]);
		if (write(ready[1], "r", 1) != 1)
			_exit(100);
		close(ready[1]);
		spin(store, fsgsbase, avx);
	}
	close(ready[1]);
	if (read(ready[0], msg, 1) != 1)
		return 100;
	close(ready[0]);
	fd = open("/tmp", O_TMPFILE | O_RDWR, 0600);
	logfd = open("/tmp", O_TMPFILE | O_RDWR, 0600);
	if (fd < 0 || logfd < 0)
		return 100;
	for (i = 0; i < n; i++) {
		const uint8_t *cpu, *fpu;
		uint32_t cpu_len, fpu_len;
		ssize_t len;
		int caught = 0;

		if (ftruncate(fd, 0) || lseek(fd, 0, SEEK_SET))
			return 100;
		if (syscall(NR_checkpoint, child, fd, 0, logfd) < 0) {
			ssize_t got = pread(logfd, image, sizeof(image) - 1, 0);

			image[got > 0 ? got : 0] = 0;
			snprintf(msg, sizeof(msg), "checkpoint %d of %d: %m", i, n);
			check(0, msg);
			fprintf(stderr, "%s", (char *)image);
			break;
		}
		if (ftruncate(logfd, 0) || lseek(logfd, 0, SEEK_SET))
			return 100;
		len = pread(fd, image, sizeof(image), 0);
		cpu = object(image, len, 9, &cpu_len);
		fpu = object(image, len, 10, &fpu_len);
		/* the child told us it runs before it enters its loop: until its FS base is ours */
		if (!started && cpu && cpu_len >= 8 + 27 * 8 && u64at(cpu, 176) < FS_BASE &&
		    warmups++ < 10000) {
			i--;
			continue;
		}
		started = 1;
		if (!cpu || !fpu || cpu_len < 8 + 27 * 8 || fpu_len < 16 + 512 ||
		    !consistent(cpu, fpu, fpu_len, avx && fpu_len > 16 + 576, ymm_off, &caught)) {
			if (!bad++)
				fprintf(stderr, "checkpoint %d: r12 %lu fs %#lx xmm1 %lu\n", i,
					cpu ? (unsigned long)u64at(cpu, 32) : 0,
					cpu ? (unsigned long)u64at(cpu, 176) : 0,
					fpu ? (unsigned long)u64at(fpu, 16 + 176) : 0);
		}
		mid += caught;
	}
	snprintf(msg, sizeof(msg), "%d checkpoints: each saw the registers, FPU and FS base of one moment",
		 n);
	check(!bad, msg);
	printf("kfreeze: %d caught between two registers, %d inconsistent\n", mid, bad);
	check(waitpid(child, &status, WNOHANG) == 0, "the task saw its own state after every thaw");
	kill(child, SIGKILL);
	waitpid(child, &status, 0);
	return failures;
}
