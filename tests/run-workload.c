// SPDX-License-Identifier: MIT
/*
 * run-workload: a deterministic program for test-run to run natively and
 * under uffd-run.  It uses every way a program gets anonymous memory that
 * uffd-run promises to page (the malloc family, direct mmap, mremap,
 * munmap, madvise, threads, fork, exec, and kernel-side writes into the
 * memory: read(2), O_DIRECT, MADV_POPULATE_WRITE), writes a known pattern
 * into what it gets, checks what it reads back, and prints one checksum
 * line per region.  Sizes are well above uffd-run's default --min-size
 * (1 MiB) for most regions and below it for some, so that both paths and
 * the crossings between them (realloc) are taken.
 *
 * Its stdout depends only on what the memory held, never on addresses,
 * ids or timing: a run under any pager must print byte for byte what a
 * native run prints.  A check that fails prints "FAIL: ..." on stdout
 * (so the comparison shows it) and the program exits 1.
 *
 *   run-workload            everything
 *   run-workload nokernel   without read(2), O_DIRECT and MADV_POPULATE,
 *                           the kernel-side writes (for SIGBUS delivery)
 *   run-workload die        allocate and touch 16 MiB, then SIGTERM itself
 *   run-workload exec-child what the fork+exec section runs (through sh)
 *
 * Uses libc only: linked against libuffd it would be a libtool wrapper
 * script, and uffd-run would page the shell that runs it as well.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE	23
#endif

#define KiB		(1024ul)
#define MiB		(1024ul * 1024)
#define NTHREADS	4
#define THREAD_LEN	(8 * MiB)
#define FILE_LEN	(6 * MiB)
#define DIRECT_LEN	(4 * MiB)

static int failures;
static size_t ps;

static void fail(const char *what, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void fail(const char *what, const char *fmt, ...)
{
	va_list ap;

	failures++;
	printf("FAIL: %s: ", what);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* Word @i of pattern @seed: splitmix64, so every word of a region differs. */
static uint64_t gen(uint64_t seed, uint64_t i)
{
	uint64_t z = seed * 0x9e3779b97f4a7c15ull + i;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Fill @len bytes (a multiple of 8) with pattern @seed from word @base. */
static void fill(void *p, size_t len, uint64_t seed, uint64_t base)
{
	uint64_t *w = p;
	size_t i;

	for (i = 0; i < len / 8; i++)
		w[i] = gen(seed, base + i);
}

/* Whether @p holds pattern @seed from word @base; says where it does not. */
static bool holds(const char *what, const void *p, size_t len, uint64_t seed,
		  uint64_t base)
{
	const uint64_t *w = p;
	size_t i;

	for (i = 0; i < len / 8; i++) {
		if (w[i] != gen(seed, base + i)) {
			fail(what, "byte %zu of %zu differs from the pattern",
			     i * 8, len);
			return false;
		}
	}
	return true;
}

static bool zeros(const char *what, const void *p, size_t len)
{
	const uint64_t *w = p;
	size_t i;

	for (i = 0; i < len / 8; i++) {
		if (w[i]) {
			fail(what, "byte %zu of %zu is not zero", i * 8, len);
			return false;
		}
	}
	return true;
}

/* FNV-1a over 64-bit words: the checksum every line prints. */
static uint64_t sum(const void *p, size_t len)
{
	const uint64_t *w = p;
	uint64_t h = 0xcbf29ce484222325ull;
	size_t i;

	for (i = 0; i < len / 8; i++) {
		h ^= w[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static void line(const char *what, const void *p, size_t len)
{
	printf("%-22s %9zu %016llx\n", what, len,
	       (unsigned long long)sum(p, len));
}

static void *xmap(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		printf("FAIL: mmap %zu: %s\n", len, strerror(errno));
		exit(1);
	}
	return p;
}

static void *xalloc(const char *what, void *p)
{
	if (!p) {
		printf("FAIL: %s: out of memory\n", what);
		exit(1);
	}
	return p;
}

/* ---- the malloc family ------------------------------------------- */

static void small_allocations(void)
{
	char *a = xalloc("malloc small", malloc(64 * KiB));
	char *b = xalloc("calloc small", calloc(1, 900 * KiB));

	fill(a, 64 * KiB, 1, 0);
	line("malloc small", a, 64 * KiB);
	zeros("calloc small", b, 900 * KiB);
	fill(b, 900 * KiB, 2, 0);
	line("calloc small", b, 900 * KiB);
	free(a);
	free(b);
}

/*
 * Seed 000's pattern: calloc, read every word (a read fault per page),
 * then write every word (the copy-on-write fault).
 */
static void calloc_walk(void)
{
	size_t len = 24 * MiB, i;
	uint32_t *a = xalloc("calloc", calloc(len / 4, 4));

	zeros("calloc", a, len);
	for (i = 0; i < len / 4; i++)
		a[i] = a[i] * 3 + (uint32_t)i;
	line("calloc walk", a, len);
	free(a);
}

static void malloc_large(void)
{
	size_t len = 16 * MiB;
	char *a = xalloc("malloc", malloc(len));

	fill(a, len, 3, 0);
	line("malloc", a, len);
	free(a);
}

/*
 * realloc from below --min-size to above it and back: every step keeps
 * the prefix, and the grown part is written afresh.
 */
static void realloc_chain(void)
{
	static const size_t steps[] = {
		512 * KiB, 3 * MiB, 8 * MiB, 2 * MiB, 256 * KiB,
	};
	size_t i, len = steps[0];
	char *p = xalloc("realloc", malloc(len)), *q;
	char what[32];

	fill(p, len, 4, 0);
	for (i = 1; i < sizeof(steps) / sizeof(steps[0]); i++) {
		size_t to = steps[i];

		q = realloc(p, to);
		snprintf(what, sizeof(what), "realloc %zuK", to / KiB);
		p = xalloc(what, q);
		holds(what, p, to < len ? to : len, 4, 0);
		if (to > len)
			fill(p + len, to - len, 4, len / 8);
		line(what, p, to);
		len = to;
	}
	free(p);
}

static void check_aligned(const char *what, const void *p, size_t align)
{
	if ((uintptr_t)p % align)
		fail(what, "not aligned to %zu", align);
}

static void aligned_family(void)
{
	void *a = NULL, *b, *c, *d;
	int ret;

	ret = posix_memalign(&a, 64 * KiB, 6 * MiB);
	if (ret)
		fail("posix_memalign", "%s", strerror(ret));
	xalloc("posix_memalign", a);
	b = xalloc("aligned_alloc", aligned_alloc(2 * MiB, 4 * MiB));
	c = xalloc("memalign", memalign(4096, 3 * MiB));
	d = xalloc("valloc", valloc(5 * MiB));
	check_aligned("posix_memalign", a, 64 * KiB);
	check_aligned("aligned_alloc", b, 2 * MiB);
	check_aligned("memalign", c, 4096);
	check_aligned("valloc", d, ps);
	fill(a, 6 * MiB, 5, 0);
	fill(b, 4 * MiB, 6, 0);
	fill(c, 3 * MiB, 7, 0);
	fill(d, 5 * MiB, 8, 0);
	line("posix_memalign", a, 6 * MiB);
	line("aligned_alloc", b, 4 * MiB);
	line("memalign", c, 3 * MiB);
	line("valloc", d, 5 * MiB);
	free(a);
	free(b);
	free(c);
	free(d);
}

/* ---- direct mappings --------------------------------------------- */

/*
 * mmap, grow in place or not (the tail stays untouched), move to a
 * fixed address, unmap a hole in the middle, shrink, unmap.  Untouched
 * pages must read as zeros wherever they went.
 */
static void mmap_remap(void)
{
	size_t len = 8 * MiB, big = 16 * MiB;
	char *p = xmap(len), *q, *dst;

	zeros("mmap", p, len);
	fill(p, len, 9, 0);
	line("mmap", p, len);

	q = mremap(p, len, big, MREMAP_MAYMOVE);
	if (q == MAP_FAILED) {
		printf("FAIL: mremap grow: %s\n", strerror(errno));
		exit(1);
	}
	holds("mremap grow", q, len, 9, 0);

	/* a free spot elsewhere, to force a move */
	dst = mmap(NULL, big, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (dst == MAP_FAILED) {
		printf("FAIL: mmap reserve: %s\n", strerror(errno));
		exit(1);
	}
	p = mremap(q, big, big, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	if (p != dst) {
		printf("FAIL: mremap move: %s\n", strerror(errno));
		exit(1);
	}
	holds("mremap move", p, len, 9, 0);
	zeros("mremap tail", p + len, big - len);
	fill(p + len, big - len, 9, len / 8);
	line("mremap moved", p, big);

	/* a hole at [4M, 6M): both sides keep their contents */
	if (munmap(p + 4 * MiB, 2 * MiB))
		fail("munmap part", "%s", strerror(errno));
	holds("munmap part low", p, 4 * MiB, 9, 0);
	holds("munmap part high", p + 6 * MiB, big - 6 * MiB, 9, 6 * MiB / 8);
	fill(p + 6 * MiB, 2 * MiB, 10, 0);
	line("munmap part high", p + 6 * MiB, big - 6 * MiB);

	q = mremap(p, 4 * MiB, 3 * MiB, 0);
	if (q != p)
		fail("mremap shrink", "%s", strerror(errno));
	holds("mremap shrink", p, 3 * MiB, 9, 0);
	line("mremap shrunk", p, 3 * MiB);
	if (munmap(p, 3 * MiB) || munmap(p + 6 * MiB, big - 6 * MiB))
		fail("munmap", "%s", strerror(errno));

	p = xmap(512 * KiB);
	fill(p, 512 * KiB, 11, 0);
	line("mmap small", p, 512 * KiB);
	munmap(p, 512 * KiB);

	/* lengths that are no multiple of the page, as the kernel allows */
	p = xmap(3 * MiB);
	fill(p, 3 * MiB, 25, 0);
	q = mremap(p, 3 * MiB - 100, 5 * MiB - 100, MREMAP_MAYMOVE);
	if (q == MAP_FAILED) {
		fail("mremap odd", "%s", strerror(errno));
		return;
	}
	holds("mremap odd", q, 3 * MiB, 25, 0);
	zeros("mremap odd tail", q + 3 * MiB, 2 * MiB);
	fill(q + 3 * MiB, 2 * MiB, 26, 0);
	line("mremap odd", q, 5 * MiB);
	if (munmap(q, 5 * MiB - 100))
		fail("munmap odd", "%s", strerror(errno));
	p = xmap(5 * MiB);	/* where q was, likely: nothing stale */
	zeros("mmap after odd", p, 5 * MiB);
	munmap(p, 5 * MiB);
}

/* MADV_DONTNEED throws pages away: they must read back as zeros. */
static void madv_dontneed(void)
{
	size_t len = 8 * MiB;
	char *p = xmap(len);

	fill(p, len, 12, 0);
	if (madvise(p + 2 * MiB, 4 * MiB, MADV_DONTNEED))
		fail("MADV_DONTNEED", "%s", strerror(errno));
	holds("dontneed low", p, 2 * MiB, 12, 0);
	zeros("dontneed", p + 2 * MiB, 4 * MiB);
	holds("dontneed high", p + 6 * MiB, 2 * MiB, 12, 6 * MiB / 8);
	fill(p + 2 * MiB, 4 * MiB, 13, 0);
	line("MADV_DONTNEED", p, len);
	munmap(p, len);
}

/*
 * MADV_FREE lets the kernel take pages back whenever it likes: each page
 * then holds either what was written or zeros, never anything else.  A
 * write makes it definite again.
 */
static void madv_free(void)
{
	size_t len = 8 * MiB, off;
	char *p = xmap(len);
	bool ok = true;

	fill(p, len, 14, 0);
	if (madvise(p, len, MADV_FREE))
		fail("MADV_FREE", "%s", strerror(errno));
	for (off = 0; off < len && ok; off += ps) {
		const uint64_t *w = (const uint64_t *)(p + off);
		size_t i;
		bool old = true, zero = true;

		for (i = 0; i < ps / 8; i++) {
			old &= w[i] == gen(14, off / 8 + i);
			zero &= !w[i];
		}
		if (!old && !zero) {
			fail("MADV_FREE", "page at %zu is neither kept nor "
			     "zero", off);
			ok = false;
		}
	}
	printf("%-22s %9zu %s\n", "MADV_FREE", len, ok ? "kept-or-zero" : "-");
	fill(p, len, 15, 0);
	line("MADV_FREE rewritten", p, len);
	munmap(p, len);
}

/* ---- threads ------------------------------------------------------ */

struct worker {
	pthread_t	t;
	uint64_t	seed;
	uint64_t	sum;
	bool		ok;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	char *p = malloc(THREAD_LEN);

	if (!p)
		return NULL;
	fill(p, THREAD_LEN, w->seed, 0);
	w->sum = sum(p, THREAD_LEN);
	w->ok = true;
	free(p);
	return NULL;
}

static void threads(void)
{
	struct worker w[NTHREADS];
	int i, ret;

	for (i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){ .seed = 100 + (uint64_t)i };
		ret = pthread_create(&w[i].t, NULL, work, &w[i]);
		if (ret) {
			printf("FAIL: pthread_create: %s\n", strerror(ret));
			exit(1);
		}
	}
	for (i = 0; i < NTHREADS; i++) {
		char what[16];

		pthread_join(w[i].t, NULL);
		if (!w[i].ok)
			fail("thread", "%d could not allocate", i);
		snprintf(what, sizeof(what), "thread %d", i);
		printf("%-22s %9zu %016llx\n", what, (size_t)THREAD_LEN,
		       (unsigned long long)w[i].sum);
	}
}

/* ---- kernel-side writes ------------------------------------------ */

/* A file of FILE_LEN bytes of pattern 16 in $TMPDIR; its fd, or -1. */
static int make_file(char *path, size_t len)
{
	const char *dir = getenv("TMPDIR");
	size_t chunk = 256 * KiB, off;
	char *buf = malloc(chunk);
	int fd;

	if (!dir || !*dir)
		dir = "/tmp";
	snprintf(path, len, "%s/run-workload.XXXXXX", dir);
	fd = mkstemp(path);
	if (fd < 0 || !buf) {
		printf("FAIL: mkstemp in %s: %s\n", dir, strerror(errno));
		exit(1);
	}
	for (off = 0; off < FILE_LEN; off += chunk) {
		fill(buf, chunk, 16, off / 8);
		if (write(fd, buf, chunk) != (ssize_t)chunk) {
			printf("FAIL: write %s: %s\n", path, strerror(errno));
			exit(1);
		}
	}
	free(buf);
	fsync(fd);
	return fd;
}

/* read(2) from a file straight into a large, untouched malloc buffer. */
static void file_read(int fd)
{
	char *p = xalloc("read", malloc(FILE_LEN));
	size_t got = 0;

	while (got < FILE_LEN) {
		ssize_t n = pread(fd, p + got, FILE_LEN - got, (off_t)got);

		if (n <= 0) {
			printf("%-22s %9zu error %s\n", "read(2)",
			       (size_t)FILE_LEN, n ? strerror(errno) : "EOF");
			failures++;
			free(p);
			return;
		}
		got += (size_t)n;
	}
	holds("read(2)", p, FILE_LEN, 16, 0);
	line("read(2)", p, FILE_LEN);
	free(p);

	/* into the middle of a fresh buffer: neither end of its mapping */
	p = xalloc("read middle", malloc(FILE_LEN));
	if (pread(fd, p + 3 * ps + 128, 5 * ps, 0) != (ssize_t)(5 * ps)) {
		fail("read(2) middle", "%s", strerror(errno));
	} else {
		holds("read(2) middle", p + 3 * ps + 128, 5 * ps, 16, 0);
		line("read(2) middle", p + 3 * ps + 128, 5 * ps);
	}
	free(p);
}

/*
 * O_DIRECT: the device DMAs (or the filesystem copies) into pages the
 * kernel pins with get_user_pages.  Some filesystems refuse O_DIRECT;
 * that prints a fixed line, the same in every run.
 */
static void direct_read(const char *path)
{
	void *p = NULL;
	ssize_t n;
	int fd, ret;

	ret = posix_memalign(&p, 4096, DIRECT_LEN);
	if (ret) {
		printf("FAIL: posix_memalign: %s\n", strerror(ret));
		exit(1);
	}
	fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (fd < 0 && errno == EINVAL) {
		printf("%-22s %9zu unsupported here\n", "O_DIRECT",
		       (size_t)DIRECT_LEN);
		free(p);
		return;
	}
	if (fd < 0) {
		fail("O_DIRECT", "open: %s", strerror(errno));
		free(p);
		return;
	}
	n = pread(fd, p, DIRECT_LEN, 0);
	if (n < 0 && errno == EINVAL) {
		printf("%-22s %9zu unsupported here\n", "O_DIRECT",
		       (size_t)DIRECT_LEN);
	} else if (n != (ssize_t)DIRECT_LEN) {
		fail("O_DIRECT", "read %zd: %s", n, n < 0 ?
		     strerror(errno) : "short");
	} else {
		holds("O_DIRECT", p, DIRECT_LEN, 16, 0);
		line("O_DIRECT", p, DIRECT_LEN);
	}
	close(fd);
	free(p);
}

/* MADV_POPULATE_WRITE faults the pages in from the kernel (5.14). */
static void populate_write(void)
{
	size_t len = 8 * MiB;
	char *p = xmap(len);

	if (madvise(p, len, MADV_POPULATE_WRITE)) {
		if (errno == EINVAL)
			printf("%-22s %9zu unsupported here\n",
			       "POPULATE_WRITE", len);
		else
			fail("MADV_POPULATE_WRITE", "%s", strerror(errno));
		munmap(p, len);
		return;
	}
	zeros("POPULATE_WRITE", p, len);
	fill(p, len, 17, 0);
	line("POPULATE_WRITE", p, len);
	munmap(p, len);

	/* a few pages in the middle of a mapping */
	p = xmap(len);
	if (madvise(p + 3 * ps, 4 * ps, MADV_POPULATE_WRITE)) {
		fail("POPULATE_WRITE middle", "%s", strerror(errno));
	} else {
		zeros("POPULATE_WRITE middle", p, len);
		fill(p + 3 * ps, 4 * ps, 18, 0);
		line("POPULATE_WRITE middle", p, len);
	}
	munmap(p, len);
}

/* ---- processes ---------------------------------------------------- */

/* Wait for @pid and say how it ended, in words that do not vary. */
static void reap(const char *what, pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) != pid) {
		fail(what, "waitpid: %s", strerror(errno));
		return;
	}
	if (WIFEXITED(status))
		printf("%-22s exit %d\n", what, WEXITSTATUS(status));
	else
		printf("%-22s signal %d\n", what, WTERMSIG(status));
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		failures++;
}

/*
 * The child writes into memory it inherited (the written part, which it
 * must see as the parent left it, and the untouched part, which must
 * read as zeros), and into a new allocation; the parent's copy must not
 * change.
 */
static void fork_child(void)
{
	size_t len = 16 * MiB, half = len / 2, mlen = 8 * MiB;
	char *f = xalloc("fork", calloc(1, len));
	char *g = xmap(mlen);
	pid_t pid;

	fill(f, half, 18, 0);
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		printf("FAIL: fork: %s\n", strerror(errno));
		exit(1);
	}
	if (!pid) {
		char *h;

		failures = 0;
		holds("child inherited", f, half, 18, 0);
		zeros("child untouched", f + half, len - half);
		zeros("child mmap", g, mlen);
		fill(f, 4 * MiB, 19, 0);
		fill(f + half, len - half, 20, 0);
		fill(g, mlen, 21, 0);
		h = xalloc("child malloc", malloc(12 * MiB));
		fill(h, 12 * MiB, 22, 0);
		line("child inherited", f, len);
		line("child mmap", g, mlen);
		line("child malloc", h, 12 * MiB);
		free(h);
		/* the parent's allocation, grown in the child */
		f = xalloc("child realloc", realloc(f, 3 * len));
		holds("child realloc", f + half, len - half, 20, 0);
		fill(f + len, 2 * len, 27, 0);
		line("child realloc", f, 3 * len);
		free(f);
		exit(failures ? 1 : 0);
	}
	reap("fork child", pid);
	holds("parent after fork", f, half, 18, 0);
	zeros("parent untouched", f + half, len - half);
	zeros("parent mmap", g, mlen);
	line("parent after fork", f, len);
	free(f);
	munmap(g, mlen);
}

/* fork + exec of sh -c, which execs this program again. */
static void fork_exec(void)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	pid_t pid;

	if (n <= 0) {
		printf("FAIL: readlink /proc/self/exe: %s\n", strerror(errno));
		exit(1);
	}
	self[n] = '\0';
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		printf("FAIL: fork: %s\n", strerror(errno));
		exit(1);
	}
	if (!pid) {
		execl("/bin/sh", "sh", "-c",
		      "echo from-sh; exec \"$0\" exec-child", self,
		      (char *)NULL);
		printf("FAIL: exec /bin/sh: %s\n", strerror(errno));
		fflush(stdout);
		_exit(127);
	}
	reap("fork+exec", pid);
}

static int exec_child(void)
{
	size_t len = 16 * MiB;
	char *p = xalloc("exec-child", calloc(1, len));

	zeros("exec-child", p, len);
	fill(p, len, 23, 0);
	line("exec-child calloc", p, len);
	free(p);
	return failures ? 1 : 0;
}

/* Touch paged memory, then die of SIGTERM (the stats must still come). */
static int die(void)
{
	size_t len = 16 * MiB;
	char *p = xalloc("die", calloc(1, len));

	zeros("die", p, len);
	fill(p, len, 24, 0);
	line("die calloc", p, len);
	fflush(stdout);
	raise(SIGTERM);
	printf("FAIL: still alive after SIGTERM\n");
	return 1;
}

/*
 * Read pages 0 and 3 of a fresh calloc.  Natively both read zeros; under
 * a pager made to fail page 3 the program must die of SIGBUS there.
 */
static int pagerfail(void)
{
	size_t len = 8 * MiB;
	volatile char *p = xalloc("pagerfail", calloc(1, len));

	printf("pagerfail page 0: %d\n", p[0]);
	fflush(stdout);
	printf("pagerfail page 3: %d\n", p[3 * ps]);
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	bool kernel = true;
	char path[PATH_MAX];
	int fd;

	ps = (size_t)sysconf(_SC_PAGESIZE);
	if (!strcmp(mode, "exec-child"))
		return exec_child();
	if (!strcmp(mode, "die"))
		return die();
	if (!strcmp(mode, "pagerfail"))
		return pagerfail();
	if (!strcmp(mode, "nokernel"))
		kernel = false;
	else if (*mode) {
		fprintf(stderr, "usage: run-workload [nokernel|die|pagerfail]\n");
		return 2;
	}

	small_allocations();
	calloc_walk();
	malloc_large();
	realloc_chain();
	aligned_family();
	mmap_remap();
	madv_dontneed();
	madv_free();
	threads();
	if (kernel) {
		fd = make_file(path, sizeof(path));
		file_read(fd);
		direct_read(path);
		close(fd);
		unlink(path);
		populate_write();
	}
	fork_child();
	fork_exec();
	printf("%s\n", failures ? "failed" : "done");
	return failures ? 1 : 0;
}
