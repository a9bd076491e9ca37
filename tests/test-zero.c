/* SPDX-License-Identifier: MIT */
/*
 * The zero pager against the kernel's own accounting: a read maps the
 * shared zero page (pagemap PFN, kpageflags, PAGEMAP_SCAN where the
 * kernel has it, Rss 0), a write installs a private zeroed page, and a
 * load-then-store walk faults twice per page (one uffd fault, then the
 * kernel's copy-on-write): seed 000.  All of it is what the library does,
 * so it holds whatever a native read fault maps on this kernel.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "helpers.h"

#define NPAGES	64
/*
 * Faults outside the walk (stack, sanitizer shadow...): a few, far fewer
 * than the NPAGES that tell one fault per page from two.
 */
#define FAULT_SLACK	(NPAGES / 4)

static struct uffd_region *reg;
static uint8_t *base;

static void setup(void)
{
	ctx_setup_stopped();
	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_ANON, NPAGES, "zero",
				     &reg), 0);
	ck_assert_int_eq(uffd_ctx_start(ctx), 0);
	base = uffd_region_addr(reg);
	/* Known before the walks so that finding it costs them nothing. */
	ck_assert_uint_ne(zero_page_pfn(), 0);
}

static uint8_t *page(size_t i)
{
	return base + i * page_size();
}

/*
 * Stop the handler: every fault it took is then fully accounted, so the
 * counters can be compared exactly.
 */
static void final_stats(struct uffd_stats *st)
{
	int ret = uffd_ctx_stop(ctx);

	ck_assert_int_eq(ret, 0);
	ck_assert_int_eq(uffd_region_stats(reg, st, sizeof(*st)), 0);
}

/*
 * The thread's faults, minor and major (thread_faults()): the kernel
 * counts a fault userfaultfd served as one or the other, by version.
 */
static void assert_faults(long got, long want)
{
	ck_assert_msg(got >= want && got <= want + FAULT_SLACK,
		      "faults %ld, expected %ld (+%d)", got, want,
		      FAULT_SLACK);
}

START_TEST(read_maps_zero_page)
{
	static const uint8_t zeros[4096];
	struct uffd_stats st;
	uint64_t pfn;
	int present;
	size_t off;

	ck_assert_int_eq(page_lookup(page(7), &present, &pfn), 0);
	ck_assert_int_eq(present, 0);
	ck_assert_uint_eq(peek(page(7) + 123), 0);
	for (off = 0; off < page_size(); off += sizeof(zeros))
		ck_assert_int_eq(memcmp(page(7) + off, zeros,
					sizeof(zeros)), 0);

	ck_assert_int_eq(page_lookup(page(7), &present, &pfn), 0);
	ck_assert_int_eq(present, 1);
	ck_assert_uint_eq(pfn, zero_page_pfn());
	ck_assert_int_eq(is_zero_page(page(7)), 1);
	ck_assert_int_eq(pfnzero_pages(base, NPAGES * page_size()), 1);
	/* The zero page is nobody's memory. */
	ck_assert_int_eq(rss_kib(base), 0);

	final_stats(&st);
	ck_assert_uint_eq(st.faults_read, 1);
	ck_assert_uint_eq(st.faults_write, 0);
	ck_assert_uint_eq(st.pages_zero, 1);
	ck_assert_uint_eq(st.pages_copy, 0);
	ck_assert_uint_eq(st.bytes_copied, 0);
}
END_TEST

START_TEST(write_then_read)
{
	struct uffd_stats st;
	uint64_t pfn;
	int present;

	poke(page(5) + 100, 0xc3);
	ck_assert_uint_eq(peek(page(5) + 100), 0xc3);
	ck_assert_uint_eq(peek(page(5) + 99), 0);
	ck_assert_uint_eq(peek(page(5) + page_size() - 1), 0);

	ck_assert_int_eq(page_lookup(page(5), &present, &pfn), 0);
	ck_assert_int_eq(present, 1);
	ck_assert_uint_ne(pfn, 0);
	ck_assert_uint_ne(pfn, zero_page_pfn());
	ck_assert_int_eq(is_zero_page(page(5)), 0);
	ck_assert_int_eq(pfnzero_pages(base, NPAGES * page_size()), 0);
	ck_assert_int_eq(rss_kib(base), (long)(page_size() / 1024));
	/* Neighbours untouched. */
	ck_assert_int_eq(present_pages(base, NPAGES * page_size()), 1);

	final_stats(&st);
	ck_assert_uint_eq(st.faults_write, 1);
	ck_assert_uint_eq(st.faults_read, 0);
	ck_assert_uint_eq(st.pages_copy, 1);
	ck_assert_uint_eq(st.pages_zero, 0);
	ck_assert_uint_eq(st.bytes_copied, page_size());
}
END_TEST

/*
 * The walk of seed 000: a load, then a store, as two instructions.  The
 * signal fence keeps the compiler from fusing them into one read-modify-
 * write instruction, which would fault once, as a write.
 */
static void walk_read_then_write(size_t n)
{
	size_t i;
	uint8_t v;

	for (i = 0; i < n; i++) {
		v = peek(page(i));
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		poke(page(i), (uint8_t)(v + 1));
	}
}

START_TEST(read_then_write_walk)
{
	struct uffd_stats st;
	long faults;
	size_t i;

	faults = thread_faults();
	walk_read_then_write(NPAGES);
	faults = thread_faults() - faults;

	for (i = 0; i < NPAGES; i++)
		ck_assert_uint_eq(peek(page(i)), 1);
	/* Every page was copied on write: none still maps the zero page. */
	ck_assert_int_eq(pfnzero_pages(base, NPAGES * page_size()), 0);
	ck_assert_int_eq(present_pages(base, NPAGES * page_size()), NPAGES);
	ck_assert_int_eq(rss_kib(base), (long)(NPAGES * page_size() / 1024));

	final_stats(&st);
	/* One uffd fault per page: the write was the kernel's CoW. */
	ck_assert_uint_eq(st.faults_read, NPAGES);
	ck_assert_uint_eq(st.faults_write, 0);
	ck_assert_uint_eq(st.pages_zero, NPAGES);
	ck_assert_uint_eq(st.pages_copy, 0);
	/* ...but two faults per page for the thread: the double fault. */
	assert_faults(faults, 2 * NPAGES);
}
END_TEST

START_TEST(write_walk)
{
	struct uffd_stats st;
	long faults;
	size_t i;

	faults = thread_faults();
	for (i = 0; i < NPAGES; i++)
		poke(page(i), (uint8_t)i);
	faults = thread_faults() - faults;

	for (i = 0; i < NPAGES; i++)
		ck_assert_uint_eq(peek(page(i)), (uint8_t)i);
	ck_assert_int_eq(pfnzero_pages(base, NPAGES * page_size()), 0);
	ck_assert_int_eq(rss_kib(base), (long)(NPAGES * page_size() / 1024));

	final_stats(&st);
	ck_assert_uint_eq(st.faults_write, NPAGES);
	ck_assert_uint_eq(st.faults_read, 0);
	ck_assert_uint_eq(st.pages_copy, NPAGES);
	ck_assert_uint_eq(st.pages_zero, 0);
	ck_assert_uint_eq(st.bytes_copied, NPAGES * page_size());
	assert_faults(faults, NPAGES);
}
END_TEST

START_TEST(read_walk)
{
	struct uffd_stats st;
	uint8_t any = 0;
	long faults;
	size_t i;

	faults = thread_faults();
	for (i = 0; i < NPAGES; i++)
		any |= peek(page(i) + i);
	faults = thread_faults() - faults;
	ck_assert_uint_eq(any, 0);

	ck_assert_int_eq(pfnzero_pages(base, NPAGES * page_size()), NPAGES);
	ck_assert_int_eq(rss_kib(base), 0);

	final_stats(&st);
	ck_assert_uint_eq(st.faults_read, NPAGES);
	ck_assert_uint_eq(st.faults_write, 0);
	ck_assert_uint_eq(st.pages_zero, NPAGES);
	ck_assert_uint_eq(st.pages_copy, 0);
	assert_faults(faults, NPAGES);
}
END_TEST

START_TEST(mixed_walk)
{
	struct uffd_stats st;
	size_t i, nread = 0, nwrite = 0;

	/* Every third page read only, the others written only. */
	for (i = 0; i < NPAGES; i++) {
		if (i % 3 == 0) {
			ck_assert_uint_eq(peek(page(i)), 0);
			nread++;
		} else {
			poke(page(i), 0xee);
			nwrite++;
		}
	}
	ck_assert_int_eq(pfnzero_pages(base, NPAGES * page_size()),
			 (long)nread);
	ck_assert_int_eq(rss_kib(base), (long)(nwrite * page_size() / 1024));

	final_stats(&st);
	ck_assert_uint_eq(st.faults_read, nread);
	ck_assert_uint_eq(st.faults_write, nwrite);
	ck_assert_uint_eq(st.pages_zero, nread);
	ck_assert_uint_eq(st.pages_copy, nwrite);
	ck_assert_uint_eq(st.eexist, 0);
}
END_TEST

#if defined(__x86_64__)
/* Whether this CPU faults an RMW instruction as a write (main() asks). */
static int rmw_write;

/*
 * One read-modify-write instruction faults once, and as a write, on
 * hardware.  An emulator may report it as a read (qemu's TCG loads
 * first): the zero page, then the kernel's copy-on-write, as for a load
 * and a store.  Which one this CPU does was asked of a raw userfaultfd.
 */
START_TEST(rmw_instruction_walk)
{
	struct uffd_stats st;
	long faults;
	size_t i;

	faults = thread_faults();
	for (i = 0; i < NPAGES; i++)
		__asm__ volatile("addb $1, %0" : "+m"(*page(i)));
	faults = thread_faults() - faults;

	for (i = 0; i < NPAGES; i++)
		ck_assert_uint_eq(peek(page(i)), 1);
	final_stats(&st);
	if (rmw_write) {
		ck_assert_uint_eq(st.faults_write, NPAGES);
		ck_assert_uint_eq(st.faults_read, 0);
		ck_assert_uint_eq(st.pages_copy, NPAGES);
		assert_faults(faults, NPAGES);
	} else {
		ck_assert_uint_eq(st.faults_read, NPAGES);
		ck_assert_uint_eq(st.faults_write, 0);
		ck_assert_uint_eq(st.pages_zero, NPAGES);
		assert_faults(faults, 2 * NPAGES);
	}
}
END_TEST
#endif

static Suite *zero_suite(void)
{
	Suite *s = suite_create("zero");
	TCase *tc = add_tcase(s, "zero", setup, ctx_teardown);

	tcase_add_test(tc, read_maps_zero_page);
	tcase_add_test(tc, write_then_read);
	tcase_add_test(tc, read_then_write_walk);
	tcase_add_test(tc, write_walk);
	tcase_add_test(tc, read_walk);
	tcase_add_test(tc, mixed_walk);
#if defined(__x86_64__)
	rmw_write = rmw_faults_as_write();
	if (rmw_write < 0)
		skip_case("rmw_instruction_walk", "the RMW probe failed: %s",
			  strerror(-rmw_write));
	else
		tcase_add_test(tc, rmw_instruction_walk);
#endif
	return s;
}

int main(void)
{
	require_kernel(0, 0);
	require_pfns();
	return run_suite(zero_suite());
}
