/* SPDX-License-Identifier: MIT */
/*
 * prezero: a scrubber thread keeps a pool of zeroed pages that write
 * faults MOVE into the region (seed 002).
 *
 * The pool is private to the pager, so the tests find it the way an
 * operator would: in /proc/self/smaps, as the private anonymous mapping
 * of exactly pool pages whose VmFlags carry "nh" (MADV_NOHUGEPAGE) and
 * "dc" (MADV_DONTFORK).  Its Rss says how full it is, and its pagemap
 * says which physical pages it holds, so a test can prove that a page in
 * the region is the very page the pool held (zero-copy), that it is
 * mapped nowhere else (/proc/kpagecount), and that pages MOVE skipped
 * stayed in the pool.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <check.h>
#include <libuffd.h>

#define TIMEOUT_S	60
#define WAIT_MS		10000

static size_t ps;
static struct uffd_ctx *ctx;

/* ------------------------------------------------------- oracles */

#define PM_PRESENT	(1ULL << 63)
#define PM_PFN_MASK	((1ULL << 55) - 1)

/*
 * PAGEMAP_SCAN (6.7) is newer than the installed headers.  Values from
 * include/uapi/linux/fs.h: PAGE_IS_PFNZERO is bit 5 (bit 4 is SWAPPED).
 */
struct t_page_region {
	uint64_t start, end, categories;
};

struct t_pm_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask;
	uint64_t return_mask;
};

#define T_PAGEMAP_SCAN		_IOWR('f', 16, struct t_pm_scan_arg)
#define T_PAGE_IS_PRESENT	(1ULL << 3)
#define T_PAGE_IS_PFNZERO	(1ULL << 5)

/* The pagemap entries of @n pages from @addr. */
static void pagemap(const void *addr, size_t n, uint64_t *out)
{
	off_t off = (off_t)((uintptr_t)addr / ps * sizeof(*out));
	size_t want = n * sizeof(*out), got = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	while (got < want) {
		ssize_t r = pread(fd, (char *)out + got, want - got,
				  off + (off_t)got);

		ck_assert_int_gt(r, 0);
		got += (size_t)r;
	}
	close(fd);
}

/* PFN of the shared zero page: what a read of fresh anonymous memory maps */
static uint64_t zero_pfn(void)
{
	char *p = mmap(NULL, ps, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	uint64_t e;

	ck_assert_ptr_ne(p, MAP_FAILED);
	(void)*(volatile char *)p;
	pagemap(p, 1, &e);
	munmap(p, ps);
	ck_assert_msg(e & PM_PRESENT, "zero page not present");
	ck_assert_msg(e & PM_PFN_MASK, "PFNs hidden: not root?");
	return e & PM_PFN_MASK;
}

/* Pages of [addr, addr + len) in PAGEMAP_SCAN category @cat. */
static long scan_count(const void *addr, size_t len, uint64_t cat)
{
	struct t_page_region vec[64];
	uint64_t start = (uintptr_t)addr, end = start + len;
	long total = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	while (start < end) {
		struct t_pm_scan_arg a = {
			.size = sizeof(a), .start = start, .end = end,
			.vec = (uintptr_t)vec, .vec_len = 64,
			.category_mask = cat, .return_mask = cat,
		};
		int i, n = ioctl(fd, T_PAGEMAP_SCAN, &a);

		ck_assert_msg(n >= 0, "PAGEMAP_SCAN: %s", strerror(errno));
		for (i = 0; i < n; i++)
			total += (long)((vec[i].end - vec[i].start) / ps);
		if (a.walk_end <= start)
			break;
		start = a.walk_end;
	}
	close(fd);
	return total;
}

/* Rss in KiB of the mapping holding @addr, from /proc/self/smaps. */
static long smaps_rss(const void *addr)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	uintptr_t a = (uintptr_t)addr;
	bool in = false;
	char line[512];
	long rss = -1;

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		char perms[8];

		if (sscanf(line, "%lx-%lx %7s", &s, &e, perms) == 3) {
			in = a >= s && a < e;
			continue;
		}
		if (in && sscanf(line, "Rss: %ld kB", &rss) == 1)
			break;
	}
	fclose(f);
	return rss;
}

/* PFN of a present page, or 0. */
static uint64_t pfn_of(const void *addr)
{
	uint64_t e;

	pagemap(addr, 1, &e);
	return (e & PM_PRESENT) ? e & PM_PFN_MASK : 0;
}

/* How many times physical page @pfn is mapped (/proc/kpagecount). */
static uint64_t kpagecount(uint64_t pfn)
{
	int fd = open("/proc/kpagecount", O_RDONLY | O_CLOEXEC);
	uint64_t n = 0;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &n, sizeof(n), (off_t)(pfn * sizeof(n))),
			 (ssize_t)sizeof(n));
	close(fd);
	return n;
}

/* Entries in a /proc directory such as /proc/self/task. */
static int count_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Wait (bounded) until this process has @want threads. */
static int wait_threads(int want)
{
	int i, n = 0;

	for (i = 0; i < WAIT_MS; i++) {
		n = count_dir("/proc/self/task");
		if (n == want)
			break;
		sleep_ms(1);
	}
	return n;
}

/* The "pending:" faults of a userfaultfd, from its fdinfo. */
static long uffd_pending(int fd)
{
	char path[64], line[256];
	long n = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "re");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "pending: %ld", &n) == 1)
			break;
	fclose(f);
	return n;
}

/* ---- the pool, as smaps shows it ---- */

struct pool_view {
	char	*addr;
	size_t	pages;
	long	rss_kib;
};

/*
 * Find the prezero pools of @pages pages.  Returns how many there are
 * (the first one goes to *out).
 */
static int find_pools(size_t pages, struct pool_view *out)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	unsigned long s = 0, e = 0;
	char line[512], path[256];
	bool anon = false;
	long rss = 0;
	int found = 0;

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long a, b;
		char perms[8];
		int n;

		path[0] = '\0';
		n = sscanf(line, "%lx-%lx %7s %*s %*s %*s %255s", &a, &b,
			   perms, path);
		if (n >= 3) {
			s = a;
			e = b;
			anon = n == 3 && !strcmp(perms, "rw-p");
			rss = 0;
			continue;
		}
		if (sscanf(line, "Rss: %ld kB", &rss) == 1)
			continue;
		if (strncmp(line, "VmFlags:", 8) || !anon ||
		    e - s != pages * ps || !strstr(line, " nh") ||
		    !strstr(line, " dc"))
			continue;
		if (!found++ && out)
			*out = (struct pool_view){ (char *)s, pages, rss };
	}
	fclose(f);
	return found;
}

/* The one pool of @pages pages; fails the test if it is not unique. */
static struct pool_view the_pool(size_t pages)
{
	struct pool_view v;

	ck_assert_int_eq(find_pools(pages, &v), 1);
	return v;
}

/*
 * Wait (bounded) until the pool at @v holds all its pages, then a little
 * longer: the scrubber hands a chunk over just after populating it.
 */
static void wait_pool_full(const struct pool_view *v)
{
	long want = (long)(v->pages * ps / 1024), rss = -1;
	int i;

	for (i = 0; i < WAIT_MS; i++) {
		rss = smaps_rss(v->addr);
		if (rss == want)
			break;
		sleep_ms(1);
	}
	ck_assert_msg(rss == want, "pool Rss %ld KiB, want %ld", rss, want);
	ck_assert_int_eq(scan_count(v->addr, v->pages * ps,
				    T_PAGE_IS_PRESENT), (long)v->pages);
	sleep_ms(20);
}

/* ------------------------------------------------------- fixtures */

static void setup(void)
{
	ck_assert_int_eq(uffd_ctx_create(&ctx, NULL), 0);
	ck_assert_int_eq(uffd_ctx_start(ctx), 0);
}

static void setup_stopped(void)
{
	ck_assert_int_eq(uffd_ctx_create(&ctx, NULL), 0);
}

static void teardown(void)
{
	uffd_ctx_destroy(ctx);
	ctx = NULL;
}

static struct uffd_region *make(enum uffd_mem_type type, const char *spec,
				size_t npages, void *addr)
{
	struct uffd_region_opts o = {
		.size = sizeof(o), .type = type, .addr = addr,
		.len = npages * ps, .pager = spec,
	};
	struct uffd_region *r = NULL;
	int ret = uffd_region_create(ctx, &o, &r);

	ck_assert_msg(ret == 0, "create %s: %d (%s)", spec, ret,
		      uffd_last_error());
	return r;
}

/*
 * The region's counters once the handler has finished the bookkeeping of
 * every fault it took.  A one-page fill wakes the faulting thread before
 * the handler counts its pages, so a thread that just returned from a
 * fault may look too early.  Each fault served adds one histogram entry,
 * after its fill counters: wait (bounded) until entries match faults.
 */
static struct uffd_stats stats(const struct uffd_region *r)
{
	struct uffd_stats st;
	uint64_t served, faults;
	int i, b;

	for (i = 0; i < 100000; i++) {
		ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
		faults = st.faults_read + st.faults_write + st.faults_wp +
			 st.faults_minor;
		for (served = 0, b = 0; b < LIBUFFD_HIST_BUCKETS; b++)
			served += st.hist_us[b];
		if (served >= faults)
			break;
		usleep(100);
	}
	ck_assert_msg(served >= faults, "%llu faults, %llu served",
		      (unsigned long long)faults, (unsigned long long)served);
	return st;
}

/* Page @pg of @p is zero but for byte @at, which holds @v. */
static void expect_page(const char *p, size_t pg, size_t at, char v)
{
	const char *b = p + pg * ps;
	size_t i;

	for (i = 0; i < ps; i++)
		if (b[i] != (i == at ? v : 0))
			ck_abort_msg("page %zu byte %zu: %d", pg, i, b[i]);
}

static bool contains(const uint64_t *set, size_t n, uint64_t v)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (set[i] == v)
			return true;
	return false;
}

static bool moves_supported(void)
{
	return uffd_ctx_features(ctx) & LIBUFFD_FEATURE_MOVE;
}

/* ------------------------------------------------------- tests */

/*
 * A write fault gets the pool's own pages (zero-copy), private to the
 * region; the scrubber's work is reported as helper CPU.
 */
START_TEST(test_moves_pool_pages)
{
	struct uffd_region *r;
	struct pool_view v;
	uint64_t before[64], zpfn = zero_pfn();
	struct uffd_stats st;
	size_t i;
	char *p;

	ck_assert(moves_supported());
	ck_assert_int_eq(find_pools(64, NULL), 0);
	r = make(LIBUFFD_MEM_ANON, "prezero:batch=8,pool=64", 256, NULL);
	p = uffd_region_addr(r);
	v = the_pool(64);
	wait_pool_full(&v);
	for (i = 0; i < 64; i++)
		before[i] = pfn_of(v.addr + i * ps);

	for (i = 0; i < 32; i++)
		p[i * ps + i] = (char)(i + 1);
	st = stats(r);
	ck_assert_uint_eq(st.faults_write, 4);
	ck_assert_uint_eq(st.pages_move, 32);
	ck_assert_uint_eq(st.pages_copy, 0);
	ck_assert_uint_eq(st.pager_misses, 0);
	for (i = 0; i < 32; i++) {
		uint64_t pfn = pfn_of(p + i * ps);
		size_t j;

		ck_assert_uint_ne(pfn, 0);
		ck_assert_uint_ne(pfn, zpfn);
		ck_assert_msg(contains(before, 64, pfn),
			      "page %zu: PFN %#llx was not in the pool", i,
			      (unsigned long long)pfn);
		ck_assert_uint_eq(kpagecount(pfn), 1);
		/* and the pool does not map it any more */
		for (j = 0; j < 64; j++)
			ck_assert_uint_ne(pfn_of(v.addr + j * ps), pfn);
		expect_page(p, i, i, (char)(i + 1));
	}
	ck_assert_int_eq(scan_count(p, 256 * ps, T_PAGE_IS_PRESENT), 32);
	/* the scrubber refills the pool with other pages, and says so */
	wait_pool_full(&v);
	for (i = 0; i < 32; i++)
		ck_assert_int_eq(p[i * ps + i], (char)(i + 1));
	ck_assert_uint_gt(stats(r).helper_cpu_ns, 0);
	uffd_region_destroy(r);
}
END_TEST

/* Two regions never share a page, and writes show up nowhere else. */
START_TEST(test_regions_private)
{
	struct uffd_region *a, *b;
	uint64_t pa[16], pb[16];
	char *p, *q;
	size_t i;

	a = make(LIBUFFD_MEM_ANON, "prezero:batch=4,pool=32", 16, NULL);
	b = make(LIBUFFD_MEM_ANON, "prezero:batch=4,pool=32", 16, NULL);
	p = uffd_region_addr(a);
	q = uffd_region_addr(b);
	for (i = 0; i < 16; i++) {
		memset(p + i * ps, 0x5a, ps);
		q[i * ps] = 1;
	}
	for (i = 0; i < 16; i++) {
		pa[i] = pfn_of(p + i * ps);
		pb[i] = pfn_of(q + i * ps);
	}
	for (i = 0; i < 16; i++) {
		ck_assert_uint_ne(pa[i], 0);
		ck_assert(!contains(pb, 16, pa[i]));
		ck_assert(!contains(pa, i, pa[i]));
		ck_assert_uint_eq(kpagecount(pa[i]), 1);
		ck_assert_uint_eq(kpagecount(pb[i]), 1);
		expect_page(q, i, 0, 1);
	}
	ck_assert_uint_gt(stats(a).pages_move + stats(b).pages_move, 0);
	ck_assert_uint_eq(stats(a).pages_move + stats(a).pages_copy, 16);
	ck_assert_uint_eq(stats(b).pages_move + stats(b).pages_copy, 16);
	uffd_region_destroy(a);
	uffd_region_destroy(b);
}
END_TEST

/*
 * Dirty every page, drop it (REMOVE), fault it again: whatever the pool
 * hands out is zero, round after round.
 */
START_TEST(test_dirtied_pages_come_back_zero)
{
	const size_t n = 128;
	struct uffd_region *r = make(LIBUFFD_MEM_ANON,
				     "prezero:batch=4,pool=16", n, NULL);
	char *p = uffd_region_addr(r);
	struct uffd_stats st;
	unsigned int round;
	size_t i, at;

	for (round = 0; round < 6; round++) {
		at = (round * 997) % ps;
		if (round)
			ck_assert_int_eq(madvise(p, n * ps, MADV_DONTNEED), 0);
		for (i = 0; i < n; i++) {
			p[i * ps + at] = (char)(round + 1);
			expect_page(p, i, at, (char)(round + 1));
		}
		memset(p, 0xa5, n * ps);
		/* give the scrubber a chance to recycle, some rounds */
		if (round % 2)
			sleep_ms(50);
	}
	st = stats(r);
	ck_assert_uint_eq(st.pages_move + st.pages_copy, 6 * n);
	ck_assert_uint_gt(st.pages_move, 0);
	ck_assert_uint_eq(st.events_remove, 5);
	ck_assert_uint_eq(st.poisoned, 0);
	uffd_region_destroy(r);
}
END_TEST

/* The pool refills: once the scrubber caught up, no more misses. */
START_TEST(test_pool_refills)
{
	const size_t n = 4096;
	struct uffd_region *r = make(LIBUFFD_MEM_ANON,
				     "prezero:batch=1,pool=32,low=8", n, NULL);
	char *p = uffd_region_addr(r);
	struct pool_view v = the_pool(32);
	struct uffd_stats st;
	uint64_t miss0;
	size_t i;

	wait_pool_full(&v);
	/* a full pool serves 32 faults, whatever the scrubber does */
	for (i = 0; i < 32; i++)
		p[i * ps] = 1;
	st = stats(r);
	ck_assert_uint_eq(st.pager_misses, 0);
	ck_assert_uint_eq(st.pages_move, 32);

	/* a long walk: the pool may run dry, then must refill */
	for (; i < n - 64; i++)
		p[i * ps] = 1;
	wait_pool_full(&v);
	miss0 = stats(r).pager_misses;
	for (; i < n - 32; i++)
		p[i * ps] = 1;
	st = stats(r);
	ck_assert_uint_eq(st.pager_misses, miss0);
	ck_assert_uint_eq(st.pages_move + st.pages_copy, n - 32);
	ck_assert_uint_eq(st.pages_copy, st.pager_misses);
	uffd_region_destroy(r);
}
END_TEST

/*
 * A big walk against a one-chunk pool: faults outrun the scrubber, fall
 * back to COPY, are counted as misses, and still read zero.  The walk
 * touches one page per 2 MiB window, so that faults come back to back,
 * far faster than the scrubber can populate the next 512 pages, however
 * slow this process runs (sanitizers, a loaded machine).
 */
START_TEST(test_exhausted_pool_falls_back)
{
	const size_t n = 16384;
	unsigned int attempt;
	uint64_t misses = 0;

	for (attempt = 0; attempt < 5 && !misses; attempt++) {
		struct uffd_region *r = make(LIBUFFD_MEM_ANON,
					     "prezero:batch=512,pool=512",
					     n, NULL);
		struct pool_view v = the_pool(512);
		char *p = uffd_region_addr(r);
		struct uffd_stats st;
		size_t i;

		wait_pool_full(&v);
		for (i = 0; i < n; i += 512)
			p[i * ps + 1] = 3;
		st = stats(r);
		misses = st.pager_misses;
		ck_assert_uint_eq(st.faults_write, n / 512);
		/* the first fault had the full pool */
		ck_assert_uint_ge(st.pages_move, 512);
		ck_assert_uint_eq(st.pages_move + st.pages_copy, n);
		ck_assert_uint_eq(st.pages_copy, misses * 512);
		for (i = 0; i < n; i++)
			expect_page(p, i, 1, i % 512 ? 0 : 3);
		uffd_region_destroy(r);
	}
	ck_assert_uint_gt(misses, 0);
}
END_TEST

/* ---- an empty pool, deterministically: the scrubber never ran ---- */

struct toucher {
	char	*page;
};

static void *toucher_main(void *arg)
{
	struct toucher *t = arg;

	t->page[7] = 7;
	return NULL;
}

START_TEST(test_empty_pool_copies)
{
	struct uffd_region *r = make(LIBUFFD_MEM_ANON,
				     "prezero:batch=1,pool=4", 64, NULL);
	char *p = uffd_region_addr(r);
	struct toucher t[8];
	pthread_t tid[8];
	struct uffd_stats st;
	int i, waited;

	for (i = 0; i < 8; i++) {
		t[i].page = p + (size_t)i * 5 * ps;
		ck_assert_int_eq(pthread_create(&tid[i], NULL, toucher_main,
						&t[i]), 0);
	}
	for (waited = 0; waited < WAIT_MS; waited++) {
		if (uffd_pending(uffd_ctx_fd(ctx)) == 8)
			break;
		sleep_ms(1);
	}
	ck_assert_int_eq(uffd_pending(uffd_ctx_fd(ctx)), 8);
	/* never started: stop serves the queue, with no scrubber behind */
	ck_assert_int_eq(uffd_ctx_stop(ctx), -EALREADY);
	for (i = 0; i < 8; i++)
		pthread_join(tid[i], NULL);
	st = stats(r);
	ck_assert_uint_eq(st.faults_write, 8);
	ck_assert_uint_eq(st.pager_misses, 8);
	ck_assert_uint_eq(st.pages_copy, 8);
	ck_assert_uint_eq(st.pages_move, 0);
	ck_assert_uint_eq(st.helper_cpu_ns, 0);
	for (i = 0; i < 8; i++)
		expect_page(p, (size_t)i * 5, 7, 7);
	ck_assert_int_eq(scan_count(p, 64 * ps, T_PAGE_IS_PRESENT), 8);
	uffd_region_destroy(r);
}
END_TEST

/*
 * MOVE meets pages already present that the library did not fill
 * (EEXIST from the kernel): they keep their data, and the pool pages
 * meant for them stay in the pool, where they were.
 */
START_TEST(test_move_eexist_keeps_source)
{
	char *map = mmap(NULL, 16 * ps, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t before[8], zpfn = zero_pfn();
	struct uffd_region *r;
	struct pool_view v;
	struct uffd_stats st;
	size_t i;

	ck_assert_ptr_ne(map, MAP_FAILED);
	madvise(map, 16 * ps, MADV_NOHUGEPAGE);
	map[2 * ps] = 0x77;
	map[6 * ps] = 0x66;
	r = make(LIBUFFD_MEM_ADOPT, "prezero:batch=8,pool=8", 16, map);
	v = the_pool(8);
	wait_pool_full(&v);
	for (i = 0; i < 8; i++)
		before[i] = pfn_of(v.addr + i * ps);

	map[0] = 1;
	st = stats(r);
	ck_assert_uint_eq(st.faults_write, 1);
	ck_assert_uint_eq(st.pages_move, 6);
	ck_assert_uint_eq(st.eexist, 2);
	ck_assert_uint_eq(st.pager_misses, 0);
	ck_assert_int_eq(map[2 * ps], 0x77);
	ck_assert_int_eq(map[6 * ps], 0x66);
	for (i = 0; i < 8; i++) {
		uint64_t pfn = pfn_of(map + i * ps);

		if (i == 2 || i == 6) {
			ck_assert(!contains(before, 8, pfn));
			/* the slot meant for it still holds its page */
			ck_assert_uint_eq(pfn_of(v.addr + i * ps), before[i]);
			continue;
		}
		/* moved at matching offsets: slot i went to page i */
		ck_assert_uint_eq(pfn, before[i]);
		ck_assert_uint_ne(pfn, zpfn);
		ck_assert_uint_eq(kpagecount(pfn), 1);
		expect_page(map, i, 0, i ? 0 : 1);
	}
	/* refilled around them: the kept pages are reused, not replaced */
	wait_pool_full(&v);
	ck_assert_uint_eq(pfn_of(v.addr + 2 * ps), before[2]);
	ck_assert_uint_eq(pfn_of(v.addr + 6 * ps), before[6]);
	uffd_region_destroy(r);
	munmap(map, 16 * ps);
}
END_TEST

/* Pages the library knows are present are skipped the same way. */
START_TEST(test_move_skips_known_present)
{
	struct uffd_region *r = make(LIBUFFD_MEM_ANON,
				     "prezero:batch=8,pool=8", 16, NULL);
	char *p = uffd_region_addr(r);
	struct pool_view v = the_pool(8);
	uint64_t before[8], zpfn = zero_pfn();
	struct uffd_stats st;
	size_t i;

	wait_pool_full(&v);
	for (i = 0; i < 8; i++)
		before[i] = pfn_of(v.addr + i * ps);
	/* reads behave like "zero": one zero page, no pool page used */
	ck_assert_int_eq(*(volatile char *)(p + 3 * ps), 0);
	ck_assert_uint_eq(pfn_of(p + 3 * ps), zpfn);
	ck_assert_uint_eq(stats(r).pages_zero, 1);
	ck_assert_uint_eq(pfn_of(v.addr + 3 * ps), before[3]);

	p[5 * ps] = 1;
	st = stats(r);
	ck_assert_uint_eq(st.pages_move, 7);
	ck_assert_uint_eq(st.eexist, 0);
	ck_assert_uint_eq(pfn_of(p + 3 * ps), zpfn);
	ck_assert_uint_eq(pfn_of(v.addr + 3 * ps), before[3]);
	for (i = 0; i < 8; i++)
		if (i != 3)
			ck_assert_uint_eq(pfn_of(p + i * ps), before[i]);
	wait_pool_full(&v);
	ck_assert_uint_eq(pfn_of(v.addr + 3 * ps), before[3]);
	uffd_region_destroy(r);
}
END_TEST

/* Stop and start: the scrubber goes and comes back, nothing leaks. */
START_TEST(test_stop_leaks_nothing)
{
	int t0 = count_dir("/proc/self/task"), f0 = count_dir("/proc/self/fd");
	struct uffd_region *r;
	struct pool_view v;
	int f1;
	char *p;

	ck_assert_int_eq(uffd_ctx_create(&ctx, NULL), 0);
	r = make(LIBUFFD_MEM_ANON, "prezero:batch=2,pool=64", 64, NULL);
	p = uffd_region_addr(r);
	v = the_pool(64);
	f1 = count_dir("/proc/self/fd");
	ck_assert_int_eq(count_dir("/proc/self/task"), t0);

	ck_assert_int_eq(uffd_ctx_start(ctx), 0);
	ck_assert_int_eq(count_dir("/proc/self/task"), t0 + 2);
	wait_pool_full(&v);
	p[0] = 1;
	ck_assert_uint_eq(stats(r).pages_move, 2);
	ck_assert_int_eq(uffd_ctx_stop(ctx), 0);
	ck_assert_int_eq(wait_threads(t0), t0);
	ck_assert_int_eq(count_dir("/proc/self/fd"), f1);

	ck_assert_int_eq(uffd_ctx_start(ctx), 0);
	ck_assert_int_eq(count_dir("/proc/self/task"), t0 + 2);
	wait_pool_full(&v);
	p[10 * ps] = 1;
	ck_assert_uint_eq(stats(r).pages_move, 4);
	ck_assert_uint_eq(stats(r).pager_misses, 0);
	ck_assert_int_eq(uffd_ctx_stop(ctx), 0);
	ck_assert_int_eq(wait_threads(t0), t0);
	ck_assert_int_eq(count_dir("/proc/self/fd"), f1);

	/* destroying a running context stops the scrubber too */
	ck_assert_int_eq(uffd_ctx_start(ctx), 0);
	uffd_ctx_destroy(ctx);
	ctx = NULL;
	ck_assert_int_eq(wait_threads(t0), t0);
	ck_assert_int_eq(count_dir("/proc/self/fd"), f0);
	ck_assert_int_eq(find_pools(64, NULL), 0);
}
END_TEST

/* Shared memory cannot take MOVE: COPY, counted, and no scrubber. */
START_TEST(test_memfd_copies)
{
	int t0 = count_dir("/proc/self/task");
	struct uffd_region *r;
	struct uffd_stats st;
	char *p;
	size_t i;

	ck_assert_int_eq(uffd_ctx_create(&ctx, NULL), 0);
	r = make(LIBUFFD_MEM_MEMFD, "prezero:batch=4,pool=16", 16, NULL);
	p = uffd_region_addr(r);
	ck_assert_int_eq(find_pools(16, NULL), 0);
	ck_assert_int_eq(uffd_ctx_start(ctx), 0);
	ck_assert_int_eq(count_dir("/proc/self/task"), t0 + 1);
	p[0] = 1;
	p[5 * ps] = 2;
	ck_assert_int_eq(*(volatile char *)(p + 9 * ps), 0);
	st = stats(r);
	ck_assert_uint_eq(st.faults_write, 2);
	ck_assert_uint_eq(st.pages_copy, 8);
	ck_assert_uint_eq(st.pages_move, 0);
	ck_assert_uint_eq(st.pager_misses, 2);
	ck_assert_uint_eq(st.pages_zero, 1);
	for (i = 0; i < 8; i++)
		expect_page(p, i, 0, i == 0 ? 1 : i == 5 ? 2 : 0);
	uffd_region_destroy(r);
}
END_TEST

/*
 * An adopted mapping the kernel will not MOVE into (shared): the first
 * write finds out, copies, and the pool is not tried again.
 */
START_TEST(test_adopted_shared_copies)
{
	char *map = mmap(NULL, 32 * ps, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct uffd_region *r;
	struct pool_view v;
	struct uffd_stats st;
	size_t i;

	ck_assert_ptr_ne(map, MAP_FAILED);
	r = make(LIBUFFD_MEM_ADOPT, "prezero:batch=4,pool=16", 32, map);
	v = the_pool(16);
	wait_pool_full(&v);
	for (i = 0; i < 32; i += 4)
		map[i * ps] = 1;
	st = stats(r);
	ck_assert_uint_eq(st.faults_write, 8);
	ck_assert_uint_eq(st.pages_copy, 32);
	ck_assert_uint_eq(st.pages_move, 0);
	ck_assert_uint_eq(st.pager_misses, 8);
	ck_assert_uint_eq(st.poisoned, 0);
	for (i = 0; i < 32; i++)
		expect_page(map, i, 0, i % 4 ? 0 : 1);
	uffd_region_destroy(r);
	munmap(map, 32 * ps);
}
END_TEST

static Suite *prezero_suite(void)
{
	Suite *s = suite_create("prezero");
	TCase *tp = tcase_create("pool");
	TCase *te = tcase_create("empty");
	TCase *tl = tcase_create("lifecycle");

	tcase_add_checked_fixture(tp, setup, teardown);
	tcase_set_timeout(tp, TIMEOUT_S);
	tcase_add_test(tp, test_moves_pool_pages);
	tcase_add_test(tp, test_regions_private);
	tcase_add_test(tp, test_dirtied_pages_come_back_zero);
	tcase_add_test(tp, test_pool_refills);
	tcase_add_test(tp, test_exhausted_pool_falls_back);
	tcase_add_test(tp, test_move_eexist_keeps_source);
	tcase_add_test(tp, test_move_skips_known_present);
	tcase_add_test(tp, test_adopted_shared_copies);
	suite_add_tcase(s, tp);

	tcase_add_checked_fixture(te, setup_stopped, teardown);
	tcase_set_timeout(te, TIMEOUT_S);
	tcase_add_test(te, test_empty_pool_copies);
	suite_add_tcase(s, te);

	/* these make their own context, to count threads and fds */
	tcase_add_checked_fixture(tl, NULL, teardown);
	tcase_set_timeout(tl, TIMEOUT_S);
	tcase_add_test(tl, test_stop_leaks_nothing);
	tcase_add_test(tl, test_memfd_copies);
	suite_add_tcase(s, tl);
	return s;
}

int main(void)
{
	struct uffd_probe probe = { .size = sizeof(probe) };
	SRunner *sr;
	int ret, failed;

	ps = (size_t)sysconf(_SC_PAGESIZE);
	ret = uffd_probe(&probe);
	if (ret < 0) {
		fprintf(stderr, "SKIP: no userfaultfd: %s\n", strerror(-ret));
		return 77;
	}
	if (!(probe.features & LIBUFFD_FEATURE_MOVE)) {
		fprintf(stderr, "SKIP: kernel lacks UFFDIO_MOVE (6.8+)\n");
		return 77;
	}
	if (access("/proc/kpagecount", R_OK)) {
		fprintf(stderr, "SKIP: no /proc/kpagecount: not root\n");
		return 77;
	}
	sr = srunner_create(prezero_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
