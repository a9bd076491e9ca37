/* SPDX-License-Identifier: MIT */
/*
 * prealloc: one fault fills its whole window, and the kernel agrees.
 *
 * Every claim is checked against the kernel's own view (/proc/self/pagemap
 * present bits and PFNs, /proc/kpageflags, PAGEMAP_SCAN where the kernel
 * has it, smaps Rss), not only against the library's counters.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <check.h>

#include "helpers.h"

#define TIMEOUT_S	60

static size_t ps;

/*
 * Exactly the pages in [lo, hi) of the @n pages at @base are present,
 * and every present page is real (write) or the zero page (read).
 */
static void expect_present(const char *base, size_t n, size_t lo, size_t hi,
			   bool zero)
{
	uint64_t *pm = calloc(n, sizeof(*pm)), zpfn = zero_page_pfn();
	size_t i;

	ck_assert_ptr_nonnull(pm);
	ck_assert_int_eq(pagemap_entries(base, n, pm), 0);
	for (i = 0; i < n; i++) {
		bool want = i >= lo && i < hi;
		bool present = pm[i] & PM_PRESENT;

		ck_assert_msg(present == want, "page %zu: present %d, want %d",
			      i, present, want);
		if (present)
			ck_assert_msg(((pm[i] & PM_PFN_MASK) == zpfn) == zero,
				      "page %zu: zero-page %d, want %d", i,
				      (pm[i] & PM_PFN_MASK) == zpfn, zero);
	}
	free(pm);
}

/* Every byte of [p, p + len) is zero. */
static bool all_zero(const char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* ------------------------------------------------------- tests */

/* A write at any page fills exactly its N-aligned window. */
START_TEST(test_write_fills_aligned_window)
{
	static const size_t at[] = { 0, 7, 8, 13, 15, 63 };
	size_t i;

	for (i = 0; i < ARRAY_SIZE(at); i++) {
		struct uffd_region *r = new_region(LIBUFFD_MEM_ANON,
						   "prealloc:batch=8", 64,
						   NULL);
		char *p = uffd_region_addr(r);
		size_t lo = at[i] / 8 * 8;
		struct uffd_stats st;

		p[at[i] * ps + 5] = 42;
		expect_present(p, 64, lo, lo + 8, false);
		st = settled_stats(r);
		ck_assert_uint_eq(st.faults_write, 1);
		ck_assert_uint_eq(st.faults_read, 0);
		ck_assert_uint_eq(st.pages_copy, 8);
		ck_assert_uint_eq(st.pages_zero, 0);
		ck_assert_int_eq(p[at[i] * ps + 5], 42);
		p[at[i] * ps + 5] = 0;
		ck_assert(all_zero(p + lo * ps, 8 * ps));
		uffd_region_destroy(r);
	}
}
END_TEST

/* The last window is cut at the region end. */
START_TEST(test_window_clipped_at_end)
{
	struct uffd_region *r = new_region(LIBUFFD_MEM_ANON,
					   "prealloc:batch=8", 20, NULL);
	char *p = uffd_region_addr(r);

	p[19 * ps] = 1;
	expect_present(p, 20, 16, 20, false);
	ck_assert_uint_eq(settled_stats(r).pages_copy, 4);
	ck_assert_uint_eq(settled_stats(r).faults_write, 1);
	uffd_region_destroy(r);
}
END_TEST

/*
 * A region inside a bigger mapping, smaller than one window: the window
 * is clipped on both sides, and nothing outside the region is touched.
 */
START_TEST(test_window_clipped_both_ends)
{
	char *map = map_anon(32);
	struct uffd_region *r;
	char *p;

	madvise(map, 32 * ps, MADV_NOHUGEPAGE);
	r = new_region(LIBUFFD_MEM_ADOPT, "prealloc:batch=16", 5,
		       map + 9 * ps);
	p = uffd_region_addr(r);
	p[2 * ps] = 1;
	/* pages 9..13 of the mapping, and only those */
	expect_present(map, 32, 9, 14, false);
	ck_assert_uint_eq(settled_stats(r).pages_copy, 5);

	/* reads too, with forward windows from the last page */
	uffd_region_destroy(r);
	r = new_region(LIBUFFD_MEM_ADOPT, "prealloc:batch=16,window=forward",
		       5, map + 20 * ps);
	p = uffd_region_addr(r);
	(void)*(volatile char *)(p + 3 * ps);
	expect_present(map + 20 * ps, 12, 3, 5, true);
	ck_assert_uint_eq(settled_stats(r).pages_zero, 2);
	uffd_region_destroy(r);
	munmap(map, 32 * ps);
}
END_TEST

/* A sequential write walk over K pages takes ceil(K / N) faults. */
START_TEST(test_sequential_walk_fault_count)
{
	static const size_t batches[] = { 1, 3, 16, 64, 500, 4096 };
	const size_t k = 1000;
	size_t i, j;

	for (i = 0; i < ARRAY_SIZE(batches); i++) {
		char spec[64];
		struct uffd_region *r;
		struct uffd_stats st;
		char *p;

		snprintf(spec, sizeof(spec), "prealloc:batch=%zu", batches[i]);
		r = new_region(LIBUFFD_MEM_ANON, spec, k, NULL);
		p = uffd_region_addr(r);
		for (j = 0; j < k; j++)
			p[j * ps] = (char)j;
		st = settled_stats(r);
		ck_assert_msg(st.faults_write ==
			      (k + batches[i] - 1) / batches[i],
			      "batch %zu: %llu faults", batches[i],
			      (unsigned long long)st.faults_write);
		ck_assert_uint_eq(st.faults_read, 0);
		ck_assert_uint_eq(st.pages_copy, k);
		ck_assert_uint_eq(st.eexist, 0);
		expect_present(p, k, 0, k, false);
		uffd_region_destroy(r);
	}
}
END_TEST

/* A read maps N zero-page entries; a later write is the kernel's COW. */
START_TEST(test_read_maps_zero_pages)
{
	struct uffd_region *r = new_region(LIBUFFD_MEM_ANON,
					   "prealloc:batch=32", 128, NULL);
	char *p = uffd_region_addr(r);
	uint64_t zpfn = zero_page_pfn(), e;
	struct uffd_stats st;

	ck_assert_int_eq(*(volatile char *)(p + 40 * ps), 0);
	expect_present(p, 128, 32, 64, true);
	ck_assert_int_eq(pfnzero_pages(p, 128 * ps), 32);
	ck_assert_int_eq(scan_present_pages(p, 128 * ps), 32);
	ck_assert_int_le(rss_kib(p), 4);
	st = settled_stats(r);
	ck_assert_uint_eq(st.faults_read, 1);
	ck_assert_uint_eq(st.pages_zero, 32);
	ck_assert_uint_eq(st.pages_copy, 0);

	/* no uffd fault: copy-on-write of that one page */
	p[50 * ps] = 7;
	st = settled_stats(r);
	ck_assert_uint_eq(st.faults_write, 0);
	ck_assert_uint_eq(st.faults_read, 1);
	ck_assert_int_eq(pagemap_entry(p + 50 * ps, &e), 0);
	ck_assert(e & PM_PRESENT);
	ck_assert_uint_ne(e & PM_PFN_MASK, zpfn);
	ck_assert_int_eq(pfnzero_pages(p, 128 * ps), 31);
	uffd_region_destroy(r);
}
END_TEST

/* window=forward: the N pages from the fault on. */
START_TEST(test_window_forward)
{
	struct uffd_region *r = new_region(LIBUFFD_MEM_ANON,
					   "prealloc:batch=8,window=forward",
					   32, NULL);
	char *p = uffd_region_addr(r);
	struct uffd_stats st;

	p[13 * ps] = 1;
	expect_present(p, 32, 13, 21, false);
	/* overlapping the first window: only the new pages are filled */
	p[9 * ps] = 1;
	expect_present(p, 32, 9, 21, false);
	/* clipped at the end */
	p[28 * ps] = 1;
	st = settled_stats(r);
	ck_assert_uint_eq(st.faults_write, 3);
	ck_assert_uint_eq(st.pages_copy, 8 + 4 + 4);
	ck_assert_uint_eq(st.eexist, 0);
	ck_assert_int_eq(scan_present_pages(p, 32 * ps), 16);
	uffd_region_destroy(r);
}
END_TEST

/* Present pages in a window are skipped and not counted as new. */
START_TEST(test_present_pages_skipped)
{
	struct uffd_region *r = new_region(LIBUFFD_MEM_ANON,
					   "prealloc:batch=16", 64, NULL);
	char *p = uffd_region_addr(r);
	struct uffd_stats st;

	/* a read fills [16, 32) with zero pages; a write at 20 is COW */
	(void)*(volatile char *)(p + 20 * ps);
	p[20 * ps] = 3;
	/* a write elsewhere in a full window: nothing to do for us */
	p[25 * ps] = 4;
	st = settled_stats(r);
	ck_assert_uint_eq(st.faults_read, 1);
	ck_assert_uint_eq(st.faults_write, 0);
	ck_assert_uint_eq(st.pages_zero, 16);
	ck_assert_uint_eq(st.pages_copy, 0);
	ck_assert_int_eq(p[20 * ps], 3);
	ck_assert_int_eq(p[25 * ps], 4);
	uffd_region_destroy(r);
}
END_TEST

/*
 * read=fill: a read fills the window with real zeroed pages, so the write
 * that follows takes no fault at all (seed 000's second fault is gone).
 */
START_TEST(test_read_fill)
{
	struct uffd_region *r = new_region(LIBUFFD_MEM_ANON,
					   "prealloc:batch=16,read=fill", 64,
					   NULL);
	struct uffd_region_opts o = {
		.size = sizeof(o), .type = LIBUFFD_MEM_ANON, .len = 16 * ps,
		.pager = "prealloc:read=maybe",
	};
	struct uffd_region *bad = NULL;
	char *p = uffd_region_addr(r);
	struct uffd_stats st;
	size_t i;

	ck_assert_int_eq(*(volatile char *)(p + 20 * ps), 0);
	expect_present(p, 64, 16, 32, false);
	ck_assert(all_zero(p + 16 * ps, 16 * ps));
	for (i = 16; i < 32; i++)
		p[i * ps] = (char)i;
	st = settled_stats(r);
	ck_assert_uint_eq(st.faults_read, 1);
	ck_assert_uint_eq(st.faults_write, 0);
	ck_assert_uint_eq(st.pages_copy, 16);
	ck_assert_uint_eq(st.pages_zero, 0);
	for (i = 16; i < 32; i++)
		ck_assert_int_eq(p[i * ps], (char)i);
	uffd_region_destroy(r);

	ck_assert_int_eq(uffd_region_create(ctx, &o, &bad), -EINVAL);
	ck_assert_ptr_null(bad);
	ck_assert_ptr_nonnull(strstr(uffd_last_error(), "read=maybe"));
	ck_assert_int_eq(uffd_pager_spec_check("prealloc:read=zero", 0), 0);
}
END_TEST

/* Shared memory: the same windows, on shmem. */
START_TEST(test_memfd_windows)
{
	struct uffd_region *r = new_region(LIBUFFD_MEM_MEMFD,
					   "prealloc:batch=8", 32, NULL);
	char *p = uffd_region_addr(r);
	struct uffd_stats st;

	p[3 * ps] = 9;
	ck_assert_int_eq(*(volatile char *)(p + 17 * ps), 0);
	ck_assert_int_eq(scan_present_pages(p, 32 * ps), 16);
	st = settled_stats(r);
	ck_assert_uint_eq(st.faults_write + st.faults_read, 2);
	ck_assert_uint_eq(st.pages_copy + st.pages_zero, 16);
	ck_assert_int_eq(p[3 * ps], 9);
	p[3 * ps] = 0;
	ck_assert(all_zero(p, 8 * ps));
	ck_assert(all_zero(p + 16 * ps, 8 * ps));
	uffd_region_destroy(r);
}
END_TEST

/* ---- overlapping windows raced by several threads ---- */

#define RACE_THREADS	4
#define RACE_PAGES	3000

struct racer {
	char		*base;
	unsigned int	id;
	unsigned int	errors;
};

/* Values written: a function of the page, so any page can be checked. */
static bool race_writes(size_t pg)
{
	return pg % 3 != 0;
}

static char race_value(size_t pg)
{
	return (char)(pg % 251 + 1);
}

static void *racer_main(void *arg)
{
	struct racer *t = arg;
	size_t k;

	/*
	 * Each thread owns the pages congruent to its id and walks them
	 * backwards, so that its windows keep running into pages (and
	 * windows) that other threads are faulting at the same time.
	 */
	for (k = RACE_PAGES; k-- > 0;) {
		char *pg = t->base + k * ps;

		if (k % RACE_THREADS != t->id)
			continue;
		if (race_writes(k))
			pg[k % ps] = race_value(k);
		else if (*(volatile char *)(pg + k % ps) != 0)
			t->errors++;
	}
	return NULL;
}

static void race(const char *spec)
{
	struct racer t[RACE_THREADS];
	pthread_t tid[RACE_THREADS];
	struct uffd_region *r = new_region(LIBUFFD_MEM_ANON, spec,
					   RACE_PAGES, NULL);
	char *p = uffd_region_addr(r);
	struct uffd_stats st;
	unsigned int i;
	long present;
	size_t k, j;

	for (i = 0; i < RACE_THREADS; i++) {
		t[i] = (struct racer){ .base = p, .id = i };
		ck_assert_int_eq(pthread_create(&tid[i], NULL, racer_main,
						&t[i]), 0);
	}
	for (i = 0; i < RACE_THREADS; i++) {
		pthread_join(tid[i], NULL);
		ck_assert_uint_eq(t[i].errors, 0);
	}
	/* contents: each page holds its value, or nothing at all */
	for (k = 0; k < RACE_PAGES; k++) {
		const char *pg = p + k * ps;

		for (j = 0; j < ps; j++) {
			char want = race_writes(k) && j == k % ps ?
				    race_value(k) : 0;

			if (pg[j] != want)
				ck_abort_msg("%s: page %zu byte %zu: %d != %d",
					     spec, k, j, pg[j], want);
		}
	}
	/* no page filled twice: new-page counts equal distinct pages */
	st = settled_stats(r);
	present = scan_present_pages(p, RACE_PAGES * ps);
	ck_assert_int_eq(present, RACE_PAGES);
	ck_assert_msg(st.pages_copy + st.pages_zero == (uint64_t)present,
		      "%s: copy %llu + zero %llu != %ld present", spec,
		      (unsigned long long)st.pages_copy,
		      (unsigned long long)st.pages_zero, present);
	ck_assert_uint_eq(st.poisoned, 0);
	ck_assert_uint_eq(st.pager_errors, 0);
	uffd_region_destroy(r);
}

START_TEST(test_race_forward)
{
	race("prealloc:batch=16,window=forward");
}
END_TEST

START_TEST(test_race_aligned)
{
	race("prealloc:batch=7");
}
END_TEST

/* The limits of batch: 1 behaves like "zero", 4096 fills 16 MiB. */
START_TEST(test_batch_limits)
{
	struct uffd_region *r = new_region(LIBUFFD_MEM_ANON,
					   "prealloc:batch=1", 16, NULL);
	struct uffd_region_opts o = {
		.size = sizeof(o), .type = LIBUFFD_MEM_ANON, .len = 16 * ps,
		.pager = "prealloc:batch=4097",
	};
	struct uffd_region *bad = NULL;
	char *p = uffd_region_addr(r);

	p[5 * ps] = 1;
	expect_present(p, 16, 5, 6, false);
	uffd_region_destroy(r);

	r = new_region(LIBUFFD_MEM_ANON, "prealloc:batch=4096", 4096 + 100,
		       NULL);
	p = uffd_region_addr(r);
	p[4095 * ps] = 1;
	ck_assert_int_eq(scan_present_pages(p, (4096 + 100) * ps),
			 4096);
	p[4100 * ps] = 1;
	ck_assert_int_eq(scan_present_pages(p, (4096 + 100) * ps),
			 4196);
	ck_assert_uint_eq(settled_stats(r).faults_write, 2);
	uffd_region_destroy(r);

	ck_assert_int_eq(uffd_region_create(ctx, &o, &bad), -EINVAL);
	ck_assert_ptr_null(bad);
	ck_assert_str_ne(uffd_last_error(), "");
}
END_TEST

static Suite *prealloc_suite(void)
{
	Suite *s = suite_create("prealloc");
	TCase *tc = add_tcase(s, "windows", ctx_setup, ctx_teardown);

	tcase_set_timeout(tc, TIMEOUT_S);
	tcase_add_test(tc, test_write_fills_aligned_window);
	tcase_add_test(tc, test_window_clipped_at_end);
	tcase_add_test(tc, test_window_clipped_both_ends);
	tcase_add_test(tc, test_sequential_walk_fault_count);
	tcase_add_test(tc, test_read_maps_zero_pages);
	tcase_add_test(tc, test_read_fill);
	tcase_add_test(tc, test_window_forward);
	tcase_add_test(tc, test_present_pages_skipped);
	tcase_add_test(tc, test_memfd_windows);
	tcase_add_test(tc, test_batch_limits);

	tc = add_tcase(s, "races", ctx_setup, ctx_teardown);
	tcase_set_timeout(tc, TIMEOUT_S);
	tcase_add_test(tc, test_race_forward);
	tcase_add_test(tc, test_race_aligned);
	return s;
}

int main(void)
{
	require_kernel(0, 0);
	require_pfns();
	ps = page_size();
	return run_suite(prealloc_suite());
}
