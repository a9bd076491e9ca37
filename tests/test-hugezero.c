/* SPDX-License-Identifier: MIT */
/*
 * hugezero: THP emulated at extent granularity (seed 003).
 *
 * The claims are the kernel's: fault counts from the library are checked
 * against present bits and zero-page PFNs in /proc/self/pagemap,
 * /proc/kpageflags (and PAGEMAP_SCAN's PAGE_IS_PFNZERO where the kernel
 * has it) and the region's Rss in smaps.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include <check.h>

#include "helpers.h"

#define TIMEOUT_S	60
#define MIB		(1024 * 1024)
#define EXT_PAGES	512		/* 2 MiB of 4 KiB pages */

static size_t ps;

/* An anonymous region of @len bytes served by @spec. */
static struct uffd_region *make(const char *spec, size_t len)
{
	return new_region(LIBUFFD_MEM_ANON, spec, len / ps, NULL);
}

/* Present pages and zero-page pages among @n pages at @p. */
static void census(const char *p, size_t n, size_t *present, size_t *zero)
{
	uint64_t *pm = calloc(n, sizeof(*pm)), zpfn = zero_page_pfn();
	size_t i;

	ck_assert_ptr_nonnull(pm);
	ck_assert_int_eq(pagemap_entries(p, n, pm), 0);
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
	st = settled_stats(r);
	ck_assert_uint_eq(st.faults_read, 100);
	ck_assert_uint_eq(st.faults_write, 0);
	ck_assert_uint_eq(st.pages_zero, n);
	ck_assert_uint_eq(st.pages_copy, 0);
	rss = rss_kib(p);
	ck_assert_msg(rss >= 0 && rss < 1024, "Rss %ld KiB", rss);
	census(p, n, &present, &zero);
	ck_assert_uint_eq(present, n);
	ck_assert_uint_eq(zero, n);
	ck_assert_int_eq(pfnzero_pages(p, len), (long)n);
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
	st = settled_stats(r);
	ck_assert_uint_eq(st.faults_read, 100);
	ck_assert_uint_eq(st.faults_write, 0);
	ck_assert_uint_eq(st.pages_copy, n);
	ck_assert_uint_eq(st.pages_zero, 0);
	rss = rss_kib(p);
	ck_assert_msg(rss >= 199 * 1024, "Rss %ld KiB", rss);
	census(p, n, &present, &zero);
	ck_assert_uint_eq(present, n);
	ck_assert_uint_eq(zero, 0);
	ck_assert_int_eq(pfnzero_pages(p, len), 0);
	uffd_region_destroy(r);
}
END_TEST

/* A write after a read: the kernel's 4 KiB COW, exactly one real page. */
START_TEST(test_write_after_read_cow)
{
	struct uffd_region *r = make("hugezero", 4 * MIB);
	char *p = uffd_region_addr(r);
	uint64_t zpfn = zero_page_pfn(), pm[EXT_PAGES];
	size_t present, zero, i;
	struct uffd_stats st;

	ck_assert_int_eq(*(volatile char *)(p + 3 * ps + 11), 0);
	census(p, 2 * EXT_PAGES, &present, &zero);
	ck_assert_uint_eq(present, EXT_PAGES);
	ck_assert_uint_eq(zero, EXT_PAGES);

	p[7 * ps + 100] = 5;
	st = settled_stats(r);
	ck_assert_uint_eq(st.faults_read, 1);
	ck_assert_uint_eq(st.faults_write, 0);	/* the kernel's COW */
	ck_assert_int_eq(pagemap_entries(p, EXT_PAGES, pm), 0);
	for (i = 0; i < EXT_PAGES; i++) {
		ck_assert(pm[i] & PM_PRESENT);
		if (i == 7)
			ck_assert_uint_ne(pm[i] & PM_PFN_MASK, zpfn);
		else
			ck_assert_uint_eq(pm[i] & PM_PFN_MASK, zpfn);
	}
	ck_assert_int_eq(pfnzero_pages(p, 2 * MIB),
			 EXT_PAGES - 1);
	ck_assert_int_le(rss_kib(p), 8);
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
	st = settled_stats(r);
	ck_assert_uint_eq(st.faults_write, 1);
	ck_assert_uint_eq(st.faults_read, 0);
	ck_assert_uint_eq(st.pages_copy, EXT_PAGES);
	ck_assert_int_ge(rss_kib(p), 2048);
	/* and the pages are zero, but for our byte */
	p[(EXT_PAGES + 77) * ps + 1] = 0;
	for (i = 0; i < 2 * MIB; i++)
		if (p[2 * MIB + i])
			ck_abort_msg("byte %zu of the extent is %d", i,
				     p[2 * MIB + i]);
	/* the rest of the extent costs no more faults */
	for (i = 0; i < EXT_PAGES; i++)
		p[2 * MIB + i * ps] = 1;
	ck_assert_uint_eq(settled_stats(r).faults_write, 1);
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

	st = settled_stats(r);
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
	st = settled_stats(r);
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
	st = settled_stats(r);
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
	ck_assert_uint_eq(settled_stats(r).faults_read, 1);
	uffd_region_destroy(r);
}
END_TEST

static Suite *hugezero_suite(void)
{
	Suite *s = suite_create("hugezero");
	TCase *tc = add_tcase(s, "walks", ctx_setup, ctx_teardown);

	tcase_set_timeout(tc, TIMEOUT_S);
	tcase_add_test(tc, test_read_walk_200m);
	tcase_add_test(tc, test_read_walk_200m_nohzp);

	tc = add_tcase(s, "extents", ctx_setup, ctx_teardown);
	tcase_set_timeout(tc, TIMEOUT_S);
	tcase_add_test(tc, test_write_after_read_cow);
	tcase_add_test(tc, test_first_write_fills_extent);
	tcase_add_test(tc, test_extent_option);
	tcase_add_test(tc, test_remove_resets_extent);
	tcase_add_test(tc, test_small_region);
	return s;
}

int main(void)
{
	require_kernel(0, 0);
	ps = page_size();
	if (ps != 4096) {
		fprintf(stderr, "SKIP: the extents here assume 4 KiB pages\n");
		return TEST_EXIT_SKIP;
	}
	require_pfns();
	return run_suite(hugezero_suite());
}
