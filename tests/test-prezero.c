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
 *
 * Without UFFDIO_MOVE (before 6.8) there is no pool: the cases about it
 * are left out (SKIP-CASE), and the fallback, a COPY of zeros per write
 * fault, is checked on every kernel with MOVE turned off.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include <check.h>

#include "helpers.h"

#define TIMEOUT_S	60

static size_t ps;

/* ------------------------------------------------------- oracles */

/* PFN of a present page, or 0. */
static uint64_t pfn_of(const void *addr)
{
	uint64_t pfn;
	int present;

	ck_assert_int_eq(page_lookup(addr, &present, &pfn), 0);
	return pfn;
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

	for (i = 0; i < TEST_WAIT_MS; i++) {
		rss = rss_kib(v->addr);
		if (rss == want)
			break;
		sleep_us(1000);
	}
	ck_assert_msg(rss == want, "pool Rss %ld KiB, want %ld", rss, want);
	ck_assert_int_eq(scan_present_pages(v->addr, v->pages * ps),
			 (long)v->pages);
	sleep_us(20000);
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
	uint64_t before[64], zpfn = zero_page_pfn();
	struct uffd_stats st;
	size_t i;
	char *p;

	ck_assert(moves_supported());
	ck_assert_int_eq(find_pools(64, NULL), 0);
	r = new_region(LIBUFFD_MEM_ANON, "prezero:batch=8,pool=64", 256,
		       NULL);
	p = uffd_region_addr(r);
	v = the_pool(64);
	wait_pool_full(&v);
	for (i = 0; i < 64; i++)
		before[i] = pfn_of(v.addr + i * ps);

	for (i = 0; i < 32; i++)
		p[i * ps + i] = (char)(i + 1);
	st = settled_stats(r);
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
		ck_assert_int_eq(kpagecount(pfn), 1);
		/* and the pool does not map it any more */
		for (j = 0; j < 64; j++)
			ck_assert_uint_ne(pfn_of(v.addr + j * ps), pfn);
		expect_page(p, i, i, (char)(i + 1));
	}
	ck_assert_int_eq(scan_present_pages(p, 256 * ps), 32);
	/* the scrubber refills the pool with other pages, and says so */
	wait_pool_full(&v);
	for (i = 0; i < 32; i++)
		ck_assert_int_eq(p[i * ps + i], (char)(i + 1));
	ck_assert_uint_gt(settled_stats(r).helper_cpu_ns, 0);
	uffd_region_destroy(r);
}
END_TEST

/*
 * Two regions never share a page, and writes show up nowhere else; with
 * or without MOVE.
 */
START_TEST(test_regions_private)
{
	struct uffd_region *a, *b;
	struct uffd_stats sa, sb;
	uint64_t pa[16], pb[16];
	struct pool_view va, vb;
	char *p, *q;
	size_t i;

	a = new_region(LIBUFFD_MEM_ANON, "prezero:batch=4,pool=32", 16,
		       NULL);
	/* a pool of another size, so that each can be found and waited for */
	b = new_region(LIBUFFD_MEM_ANON, "prezero:batch=4,pool=40", 16,
		       NULL);
	/* a loaded machine's scrubbers may not have filled them yet */
	if (moves_supported()) {
		va = the_pool(32);
		vb = the_pool(40);
		wait_pool_full(&va);
		wait_pool_full(&vb);
	}
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
		ck_assert_int_eq(kpagecount(pa[i]), 1);
		ck_assert_int_eq(kpagecount(pb[i]), 1);
		expect_page(q, i, 0, 1);
	}
	sa = settled_stats(a);
	sb = settled_stats(b);
	/* without MOVE, copies: private all the same */
	if (moves_supported())
		ck_assert_uint_gt(sa.pages_move + sb.pages_move, 0);
	else
		ck_assert_uint_eq(sa.pages_move + sb.pages_move, 0);
	ck_assert_uint_eq(sa.pages_move + sa.pages_copy, 16);
	ck_assert_uint_eq(sb.pages_move + sb.pages_copy, 16);
	uffd_region_destroy(a);
	uffd_region_destroy(b);
}
END_TEST

/*
 * Dirty every page, drop it (REMOVE), fault it again: whatever the pool
 * (or, without MOVE, the copy) hands out is zero, round after round.
 */
START_TEST(test_dirtied_pages_come_back_zero)
{
	const size_t n = 128;
	struct uffd_region *r = new_region(LIBUFFD_MEM_ANON,
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
			sleep_us(50000);
	}
	st = settled_stats(r);
	ck_assert_uint_eq(st.pages_move + st.pages_copy, 6 * n);
	if (moves_supported())
		ck_assert_uint_gt(st.pages_move, 0);
	else
		ck_assert_uint_eq(st.pages_move, 0);
	ck_assert_uint_eq(st.events_remove, 5);
	ck_assert_uint_eq(st.poisoned, 0);
	uffd_region_destroy(r);
}
END_TEST

/* The pool refills: once the scrubber caught up, no more misses. */
START_TEST(test_pool_refills)
{
	const size_t n = 4096;
	struct uffd_region *r = new_region(LIBUFFD_MEM_ANON,
					   "prezero:batch=1,pool=32,low=8",
					   n, NULL);
	char *p = uffd_region_addr(r);
	struct pool_view v = the_pool(32);
	struct uffd_stats st;
	uint64_t miss0;
	size_t i;

	wait_pool_full(&v);
	/* a full pool serves 32 faults, whatever the scrubber does */
	for (i = 0; i < 32; i++)
		p[i * ps] = 1;
	st = settled_stats(r);
	ck_assert_uint_eq(st.pager_misses, 0);
	ck_assert_uint_eq(st.pages_move, 32);

	/* a long walk: the pool may run dry, then must refill */
	for (; i < n - 64; i++)
		p[i * ps] = 1;
	wait_pool_full(&v);
	miss0 = settled_stats(r).pager_misses;
	for (; i < n - 32; i++)
		p[i * ps] = 1;
	st = settled_stats(r);
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
		struct uffd_region *r = new_region(LIBUFFD_MEM_ANON,
						   "prezero:batch=512,pool=512",
						   n, NULL);
		struct pool_view v = the_pool(512);
		char *p = uffd_region_addr(r);
		struct uffd_stats st;
		size_t i;

		wait_pool_full(&v);
		for (i = 0; i < n; i += 512)
			p[i * ps + 1] = 3;
		st = settled_stats(r);
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
	struct uffd_region *r = new_region(LIBUFFD_MEM_ANON,
					   "prezero:batch=1,pool=4", 64, NULL);
	char *p = uffd_region_addr(r);
	struct toucher t[8];
	pthread_t tid[8];
	struct uffd_stats st;
	int i;

	for (i = 0; i < 8; i++) {
		t[i].page = p + (size_t)i * 5 * ps;
		ck_assert_int_eq(pthread_create(&tid[i], NULL, toucher_main,
						&t[i]), 0);
	}
	ck_assert_int_eq(wait_pending(uffd_ctx_fd(ctx), 8, TEST_WAIT_MS), 8);
	/* never started: stop serves the queue, with no scrubber behind */
	ck_assert_int_eq(uffd_ctx_stop(ctx), -EALREADY);
	for (i = 0; i < 8; i++)
		pthread_join(tid[i], NULL);
	st = settled_stats(r);
	ck_assert_uint_eq(st.faults_write, 8);
	ck_assert_uint_eq(st.pager_misses, 8);
	ck_assert_uint_eq(st.pages_copy, 8);
	ck_assert_uint_eq(st.pages_move, 0);
	ck_assert_uint_eq(st.helper_cpu_ns, 0);
	for (i = 0; i < 8; i++)
		expect_page(p, (size_t)i * 5, 7, 7);
	ck_assert_int_eq(scan_present_pages(p, 64 * ps), 8);
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
	char *map = map_anon(16);
	uint64_t before[8], zpfn = zero_page_pfn();
	struct uffd_region *r;
	struct pool_view v;
	struct uffd_stats st;
	size_t i;

	madvise(map, 16 * ps, MADV_NOHUGEPAGE);
	map[2 * ps] = 0x77;
	map[6 * ps] = 0x66;
	r = new_region(LIBUFFD_MEM_ADOPT, "prezero:batch=8,pool=8", 16,
		       map);
	v = the_pool(8);
	wait_pool_full(&v);
	for (i = 0; i < 8; i++)
		before[i] = pfn_of(v.addr + i * ps);

	map[0] = 1;
	st = settled_stats(r);
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
		ck_assert_int_eq(kpagecount(pfn), 1);
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
	struct uffd_region *r = new_region(LIBUFFD_MEM_ANON,
					   "prezero:batch=8,pool=8", 16, NULL);
	char *p = uffd_region_addr(r);
	struct pool_view v = the_pool(8);
	uint64_t before[8], zpfn = zero_page_pfn();
	struct uffd_stats st;
	size_t i;

	wait_pool_full(&v);
	for (i = 0; i < 8; i++)
		before[i] = pfn_of(v.addr + i * ps);
	/* reads behave like "zero": one zero page, no pool page used */
	ck_assert_int_eq(*(volatile char *)(p + 3 * ps), 0);
	ck_assert_uint_eq(pfn_of(p + 3 * ps), zpfn);
	ck_assert_uint_eq(settled_stats(r).pages_zero, 1);
	ck_assert_uint_eq(pfn_of(v.addr + 3 * ps), before[3]);

	p[5 * ps] = 1;
	st = settled_stats(r);
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

/*
 * Stop and start: the handler and the scrubber (where MOVE is) go and
 * come back, nothing leaks.
 */
START_TEST(test_stop_leaks_nothing)
{
	int t0 = count_threads(), f0 = count_fds(), helpers, mv;
	struct uffd_region *r;
	struct pool_view v;
	int f1;
	char *p;

	ctx_setup_stopped();
	mv = moves_supported();
	helpers = mv ? 1 : 0;		/* the scrubber, where MOVE is */
	r = new_region(LIBUFFD_MEM_ANON, "prezero:batch=2,pool=64", 64,
		       NULL);
	p = uffd_region_addr(r);
	ck_assert_int_eq(find_pools(64, NULL), helpers);
	if (mv)
		v = the_pool(64);
	f1 = count_fds();
	ck_assert_int_eq(count_threads(), t0);

	ck_assert_int_eq(uffd_ctx_start(ctx), 0);
	ck_assert_int_eq(count_threads(), t0 + 1 + helpers);
	if (mv)
		wait_pool_full(&v);
	p[0] = 1;
	ck_assert_uint_eq(mv ? settled_stats(r).pages_move :
			  settled_stats(r).pages_copy, 2);
	ck_assert_int_eq(uffd_ctx_stop(ctx), 0);
	ck_assert_int_eq(wait_threads(t0, TEST_WAIT_MS), t0);
	ck_assert_int_eq(count_fds(), f1);

	ck_assert_int_eq(uffd_ctx_start(ctx), 0);
	ck_assert_int_eq(count_threads(), t0 + 1 + helpers);
	if (mv)
		wait_pool_full(&v);
	p[10 * ps] = 1;
	ck_assert_uint_eq(mv ? settled_stats(r).pages_move :
			  settled_stats(r).pages_copy, 4);
	ck_assert_uint_eq(settled_stats(r).pager_misses, mv ? 0 : 2);
	ck_assert_int_eq(uffd_ctx_stop(ctx), 0);
	ck_assert_int_eq(wait_threads(t0, TEST_WAIT_MS), t0);
	ck_assert_int_eq(count_fds(), f1);

	/* destroying a running context stops the scrubber too */
	ck_assert_int_eq(uffd_ctx_start(ctx), 0);
	uffd_ctx_destroy(ctx);
	ctx = NULL;
	ck_assert_int_eq(wait_threads(t0, TEST_WAIT_MS), t0);
	ck_assert_int_eq(count_fds(), f0);
	ck_assert_int_eq(find_pools(64, NULL), 0);
}
END_TEST

/* Shared memory cannot take MOVE: COPY, counted, and no scrubber. */
START_TEST(test_memfd_copies)
{
	int t0 = count_threads();
	struct uffd_region *r;
	struct uffd_stats st;
	char *p;
	size_t i;

	ck_assert_int_eq(uffd_ctx_create(&ctx, NULL), 0);
	r = new_region(LIBUFFD_MEM_MEMFD, "prezero:batch=4,pool=16", 16,
		       NULL);
	p = uffd_region_addr(r);
	ck_assert_int_eq(find_pools(16, NULL), 0);
	ck_assert_int_eq(uffd_ctx_start(ctx), 0);
	ck_assert_int_eq(count_threads(), t0 + 1);
	p[0] = 1;
	p[5 * ps] = 2;
	ck_assert_int_eq(*(volatile char *)(p + 9 * ps), 0);
	st = settled_stats(r);
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
	r = new_region(LIBUFFD_MEM_ADOPT, "prezero:batch=4,pool=16", 32,
		       map);
	v = the_pool(16);
	wait_pool_full(&v);
	for (i = 0; i < 32; i += 4)
		map[i * ps] = 1;
	st = settled_stats(r);
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

/*
 * Without MOVE (before 6.8, or turned off as here): no pool and no
 * scrubber; a write copies its window of zeros and counts a pool miss,
 * and a read maps the zero page, as "zero" does.
 */
START_TEST(test_without_move_copies)
{
	struct uffd_ctx_opts o = {
		.size = sizeof(o),
		.features_off = LIBUFFD_FEATURE_MOVE,
	};
	int t0 = count_threads();
	struct uffd_region *r;
	struct uffd_stats st;
	uint64_t kf;
	size_t i;
	char *p;

	ck_assert_int_eq(uffd_ctx_create(&ctx, &o), 0);
	ck_assert_int_eq(uffd_fdinfo_features(uffd_ctx_fd(ctx), &kf), 0);
	ck_assert(!(kf & LIBUFFD_FEATURE_MOVE));
	r = new_region(LIBUFFD_MEM_ANON, "prezero:batch=4,pool=16", 32,
		       NULL);
	p = uffd_region_addr(r);
	ck_assert_int_eq(find_pools(16, NULL), 0);
	ck_assert_int_eq(uffd_ctx_start(ctx), 0);
	/* the handler alone: no scrubber */
	ck_assert_int_eq(count_threads(), t0 + 1);
	p[0] = 1;
	p[9 * ps] = 2;
	ck_assert_int_eq(*(volatile char *)(p + 20 * ps), 0);
	ck_assert_int_eq(is_zero_page(p + 20 * ps), 1);
	st = settled_stats(r);
	ck_assert_uint_eq(st.faults_write, 2);
	ck_assert_uint_eq(st.faults_read, 1);
	ck_assert_uint_eq(st.pages_copy, 8);
	ck_assert_uint_eq(st.pages_move, 0);
	ck_assert_uint_eq(st.pager_misses, 2);
	ck_assert_uint_eq(st.pages_zero, 1);
	ck_assert_uint_eq(st.helper_cpu_ns, 0);
	ck_assert_int_eq(scan_present_pages(p, 32 * ps), 9);
	for (i = 0; i < 12; i++) {
		ck_assert_int_eq(is_zero_page(p + i * ps), 0);
		expect_page(p, i, 0, i == 0 ? 1 : i == 9 ? 2 : 0);
	}
	uffd_region_destroy(r);
}
END_TEST

static Suite *prezero_suite(void)
{
	Suite *s = suite_create("prezero");
	TCase *tc = add_tcase(s, "pool", ctx_setup, ctx_teardown);
	const uint64_t move = LIBUFFD_FEATURE_MOVE;

	tcase_set_timeout(tc, TIMEOUT_S);
	add_test_if(tc, test_moves_pool_pages, move, 0);
	tcase_add_test(tc, test_regions_private);
	tcase_add_test(tc, test_dirtied_pages_come_back_zero);
	add_test_if(tc, test_pool_refills, move, 0);
	add_test_if(tc, test_exhausted_pool_falls_back, move, 0);
	add_test_if(tc, test_move_eexist_keeps_source, move, 0);
	add_test_if(tc, test_move_skips_known_present, move, 0);
	add_test_if(tc, test_adopted_shared_copies, move, 0);

	/* with or without MOVE: no pool to take from */
	tc = add_tcase(s, "empty", ctx_setup_stopped, ctx_teardown);
	tcase_set_timeout(tc, TIMEOUT_S);
	tcase_add_test(tc, test_empty_pool_copies);

	/* these make their own context, to count threads and fds */
	tc = add_tcase(s, "lifecycle", NULL, ctx_teardown);
	tcase_set_timeout(tc, TIMEOUT_S);
	tcase_add_test(tc, test_stop_leaks_nothing);
	tcase_add_test(tc, test_memfd_copies);
	tcase_add_test(tc, test_without_move_copies);
	return s;
}

int main(void)
{
	require_kernel(0, 0);
	if (access("/proc/kpagecount", R_OK)) {
		fprintf(stderr, "SKIP: no /proc/kpagecount: not root\n");
		return TEST_EXIT_SKIP;
	}
	require_pfns();
	ps = page_size();
	return run_suite(prezero_suite());
}
