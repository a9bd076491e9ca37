/* SPDX-License-Identifier: MIT */
/*
 * hugezero: THP emulated at extent granularity (seed 003).
 *
 * The claims are the kernel's: fault counts from the library are checked
 * against present bits and zero-page PFNs in /proc/self/pagemap,
 * PAGEMAP_SCAN's PAGE_IS_PFNZERO and the region's Rss in smaps.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <check.h>
#include <libuffd.h>

#define TIMEOUT_S	60
#define MIB		(1024 * 1024)
#define EXT_PAGES	512		/* 2 MiB of 4 KiB pages */

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

/* ------------------------------------------------------- fixtures */

static void setup(void)
{
	ck_assert_int_eq(uffd_ctx_create(&ctx, NULL), 0);
	ck_assert_int_eq(uffd_ctx_start(ctx), 0);
}

static void teardown(void)
{
	uffd_ctx_destroy(ctx);
	ctx = NULL;
}

static struct uffd_region *make(const char *spec, size_t len)
{
	struct uffd_region_opts o = {
		.size = sizeof(o), .type = LIBUFFD_MEM_ANON, .len = len,
		.pager = spec,
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

/* Present pages and zero-page pages among @n pages at @p. */
static void census(const char *p, size_t n, size_t *present, size_t *zero)
{
	uint64_t *pm = calloc(n, sizeof(*pm)), zpfn = zero_pfn();
	size_t i;

	ck_assert_ptr_nonnull(pm);
	pagemap(p, n, pm);
	*present = *zero = 0;
	for (i = 0; i < n; i++) {
		if (!(pm[i] & PM_PRESENT))
			continue;
		++*present;
		if ((pm[i] & PM_PFN_MASK) == zpfn)
			++*zero;
	}
	free(pm);
}

/* The 200 MiB read walk of seed 003, one byte per 4 KiB page. */
static void read_walk(char *p, size_t len)
{
	size_t off;

	for (off = 0; off < len; off += ps)
		ck_assert_int_eq(*(volatile char *)(p + off), 0);
}

/* ------------------------------------------------------- tests */

/* Huge zero page emulation: one fault per 2 MiB, (almost) no Rss. */
START_TEST(test_read_walk_200m)
{
	const size_t len = 200 * MIB, n = len / ps;
	struct uffd_region *r = make("hugezero", len);
	char *p = uffd_region_addr(r);
	size_t present, zero;
	struct uffd_stats st;
	long rss;

	ck_assert_uint_eq((uintptr_t)p % (2 * MIB), 0);
	read_walk(p, len);
	st = stats(r);
	ck_assert_uint_eq(st.faults_read, 100);
	ck_assert_uint_eq(st.faults_write, 0);
	ck_assert_uint_eq(st.pages_zero, n);
	ck_assert_uint_eq(st.pages_copy, 0);
	rss = smaps_rss(p);
	ck_assert_msg(rss >= 0 && rss < 1024, "Rss %ld KiB", rss);
	census(p, n, &present, &zero);
	ck_assert_uint_eq(present, n);
	ck_assert_uint_eq(zero, n);
	ck_assert_int_eq(scan_count(p, len, T_PAGE_IS_PFNZERO), (long)n);
	uffd_region_destroy(r);
}
END_TEST

/* nohzp=1: THP before the huge zero page, 200 MiB of real zeros. */
START_TEST(test_read_walk_200m_nohzp)
{
	const size_t len = 200 * MIB, n = len / ps;
	struct uffd_region *r = make("hugezero:nohzp=1", len);
	char *p = uffd_region_addr(r);
	size_t present, zero;
	struct uffd_stats st;
	long rss;

	read_walk(p, len);
	st = stats(r);
	ck_assert_uint_eq(st.faults_read, 100);
	ck_assert_uint_eq(st.faults_write, 0);
	ck_assert_uint_eq(st.pages_copy, n);
	ck_assert_uint_eq(st.pages_zero, 0);
	rss = smaps_rss(p);
	ck_assert_msg(rss >= 199 * 1024, "Rss %ld KiB", rss);
	census(p, n, &present, &zero);
	ck_assert_uint_eq(present, n);
	ck_assert_uint_eq(zero, 0);
	ck_assert_int_eq(scan_count(p, len, T_PAGE_IS_PFNZERO), 0);
	uffd_region_destroy(r);
}
END_TEST

/* A write after a read: the kernel's 4 KiB COW, exactly one real page. */
START_TEST(test_write_after_read_cow)
{
	struct uffd_region *r = make("hugezero", 4 * MIB);
	char *p = uffd_region_addr(r);
	uint64_t zpfn = zero_pfn(), pm[EXT_PAGES];
	size_t present, zero, i;
	struct uffd_stats st;

	ck_assert_int_eq(*(volatile char *)(p + 3 * ps + 11), 0);
	census(p, 2 * EXT_PAGES, &present, &zero);
	ck_assert_uint_eq(present, EXT_PAGES);
	ck_assert_uint_eq(zero, EXT_PAGES);

	p[7 * ps + 100] = 5;
	st = stats(r);
	ck_assert_uint_eq(st.faults_read, 1);
	ck_assert_uint_eq(st.faults_write, 0);	/* the kernel's COW */
	pagemap(p, EXT_PAGES, pm);
	for (i = 0; i < EXT_PAGES; i++) {
		ck_assert(pm[i] & PM_PRESENT);
		if (i == 7)
			ck_assert_uint_ne(pm[i] & PM_PFN_MASK, zpfn);
		else
			ck_assert_uint_eq(pm[i] & PM_PFN_MASK, zpfn);
	}
	ck_assert_int_eq(scan_count(p, 2 * MIB, T_PAGE_IS_PFNZERO),
			 EXT_PAGES - 1);
	ck_assert_int_le(smaps_rss(p), 8);
	ck_assert_int_eq(p[7 * ps + 100], 5);
	/* the next extent is untouched */
	census(p + 2 * MIB, EXT_PAGES, &present, &zero);
	ck_assert_uint_eq(present, 0);
	uffd_region_destroy(r);
}
END_TEST

/* A first write fills the whole extent with real zeroed pages. */
START_TEST(test_first_write_fills_extent)
{
	struct uffd_region *r = make("hugezero", 6 * MIB);
	char *p = uffd_region_addr(r);
	size_t present, zero, i;
	struct uffd_stats st;

	p[(EXT_PAGES + 77) * ps + 1] = 9;
	census(p + 2 * MIB, EXT_PAGES, &present, &zero);
	ck_assert_uint_eq(present, EXT_PAGES);
	ck_assert_uint_eq(zero, 0);
	census(p, EXT_PAGES, &present, &zero);
	ck_assert_uint_eq(present, 0);
	census(p + 4 * MIB, EXT_PAGES, &present, &zero);
	ck_assert_uint_eq(present, 0);
	st = stats(r);
	ck_assert_uint_eq(st.faults_write, 1);
	ck_assert_uint_eq(st.faults_read, 0);
	ck_assert_uint_eq(st.pages_copy, EXT_PAGES);
	ck_assert_int_ge(smaps_rss(p), 2048);
	/* and the pages are zero, but for our byte */
	p[(EXT_PAGES + 77) * ps + 1] = 0;
	for (i = 0; i < 2 * MIB; i++)
		if (p[2 * MIB + i])
			ck_abort_msg("byte %zu of the extent is %d", i,
				     p[2 * MIB + i]);
	/* the rest of the extent costs no more faults */
	for (i = 0; i < EXT_PAGES; i++)
		p[2 * MIB + i * ps] = 1;
	ck_assert_uint_eq(stats(r).faults_write, 1);
	uffd_region_destroy(r);
}
END_TEST

/* extent=64K: 16-page extents, the last one clipped to the region. */
START_TEST(test_extent_option)
{
	struct uffd_region *r = make("hugezero:extent=64K", 40 * 4096);
	char *p = uffd_region_addr(r);
	size_t present, zero;
	struct uffd_stats st;

	ck_assert_uint_eq(ps, 4096);
	(void)*(volatile char *)(p + 5 * ps);
	census(p, 40, &present, &zero);
	ck_assert_uint_eq(present, 16);
	ck_assert_uint_eq(zero, 16);
	census(p, 16, &present, &zero);
	ck_assert_uint_eq(present, 16);

	p[20 * ps] = 1;
	census(p + 16 * ps, 16, &present, &zero);
	ck_assert_uint_eq(present, 16);
	ck_assert_uint_eq(zero, 0);

	(void)*(volatile char *)(p + 39 * ps);
	census(p + 32 * ps, 8, &present, &zero);
	ck_assert_uint_eq(present, 8);
	ck_assert_uint_eq(zero, 8);

	st = stats(r);
	ck_assert_uint_eq(st.faults_read, 2);
	ck_assert_uint_eq(st.faults_write, 1);
	ck_assert_uint_eq(st.pages_zero, 24);
	ck_assert_uint_eq(st.pages_copy, 16);
	uffd_region_destroy(r);
}
END_TEST

/*
 * MADV_DONTNEED (a REMOVE event) resets the extents it touches: the next
 * fault there fills the missing part of the extent again, in one fault.
 */
START_TEST(test_remove_resets_extent)
{
	struct uffd_region *r = make("hugezero", 4 * MIB);
	char *p = uffd_region_addr(r);
	size_t present, zero;
	struct uffd_stats st;

	(void)*(volatile char *)p;
	p[5 * ps] = 1;				/* COW: real */
	ck_assert_int_eq(madvise(p + 100 * ps, 50 * ps, MADV_DONTNEED), 0);
	census(p, EXT_PAGES, &present, &zero);
	ck_assert_uint_eq(present, EXT_PAGES - 50);

	/* one fault brings all 50 back */
	(void)*(volatile char *)(p + 120 * ps);
	census(p, EXT_PAGES, &present, &zero);
	ck_assert_uint_eq(present, EXT_PAGES);
	ck_assert_uint_eq(zero, EXT_PAGES - 1);
	ck_assert_int_eq(p[5 * ps], 1);
	st = stats(r);
	ck_assert_uint_eq(st.faults_read, 2);
	ck_assert_uint_eq(st.pages_zero, EXT_PAGES + 50);
	ck_assert_uint_eq(st.events_remove, 1);

	/* a written extent, emptied, refills whole on the next write */
	p[2 * MIB + 3] = 1;
	ck_assert_int_eq(madvise(p + 2 * MIB, 2 * MIB, MADV_DONTNEED), 0);
	census(p + 2 * MIB, EXT_PAGES, &present, &zero);
	ck_assert_uint_eq(present, 0);
	p[2 * MIB + 300 * ps] = 1;
	census(p + 2 * MIB, EXT_PAGES, &present, &zero);
	ck_assert_uint_eq(present, EXT_PAGES);
	ck_assert_uint_eq(zero, 0);
	ck_assert_int_eq(p[2 * MIB + 3], 0);
	st = stats(r);
	ck_assert_uint_eq(st.faults_write, 2);
	ck_assert_uint_eq(st.pages_copy, 2 * EXT_PAGES);
	uffd_region_destroy(r);
}
END_TEST

/* Extents are relative to the region; small regions are one extent. */
START_TEST(test_small_region)
{
	struct uffd_region *r = make("hugezero", 24 * ps);
	char *p = uffd_region_addr(r);
	size_t present, zero;

	(void)*(volatile char *)(p + 23 * ps);
	census(p, 24, &present, &zero);
	ck_assert_uint_eq(present, 24);
	ck_assert_uint_eq(zero, 24);
	ck_assert_uint_eq(stats(r).faults_read, 1);
	uffd_region_destroy(r);
}
END_TEST

static Suite *hugezero_suite(void)
{
	Suite *s = suite_create("hugezero");
	TCase *tw = tcase_create("walks");
	TCase *te = tcase_create("extents");

	tcase_add_checked_fixture(tw, setup, teardown);
	tcase_set_timeout(tw, TIMEOUT_S);
	tcase_add_test(tw, test_read_walk_200m);
	tcase_add_test(tw, test_read_walk_200m_nohzp);
	suite_add_tcase(s, tw);

	tcase_add_checked_fixture(te, setup, teardown);
	tcase_set_timeout(te, TIMEOUT_S);
	tcase_add_test(te, test_write_after_read_cow);
	tcase_add_test(te, test_first_write_fills_extent);
	tcase_add_test(te, test_extent_option);
	tcase_add_test(te, test_remove_resets_extent);
	tcase_add_test(te, test_small_region);
	suite_add_tcase(s, te);
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
	if (ps != 4096) {
		fprintf(stderr, "SKIP: the extents here assume 4 KiB pages\n");
		return 77;
	}
	sr = srunner_create(hugezero_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
