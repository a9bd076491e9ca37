/* SPDX-License-Identifier: MIT */
/*
 * Many threads faulting at once: on disjoint pages, and all on the same
 * pages.  Every page must be filled exactly once, racing faults must be
 * counted as EEXIST rather than filled twice, and no write may be lost.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "helpers.h"

#define NTHREADS	8
#define PER_THREAD	32		/* pages each thread owns (disjoint) */
#define SHARED		64		/* pages all threads touch (shared) */
#define ROUNDS		4		/* fresh regions per shared test */

static pthread_barrier_t barrier;

struct worker {
	pthread_t	thread;
	int		idx;
	uint8_t		*base;
	int		bad;		/* pages whose contents were wrong */
};

static void setup(void)
{
	ctx_setup();
	ck_assert_int_eq(pthread_barrier_init(&barrier, NULL, NTHREADS), 0);
}

static void teardown(void)
{
	ctx_teardown();
	pthread_barrier_destroy(&barrier);
}

/* What thread @t does to its own page @j: 0 read, 1 write, 2 both. */
static int disjoint_op(int t, int j)
{
	return (t + j) % 3;
}

static uint8_t tag(int t, int j)
{
	return (uint8_t)(1 + t * PER_THREAD + j);
}

static void *disjoint_worker(void *arg)
{
	struct worker *w = arg;
	size_t ps = page_size();
	uint8_t *p;
	int j;

	pthread_barrier_wait(&barrier);
	for (j = 0; j < PER_THREAD; j++) {
		p = w->base + ((size_t)w->idx * PER_THREAD + (size_t)j) * ps;
		switch (disjoint_op(w->idx, j)) {
		case 0:
			w->bad += peek(p + 17) != 0;
			break;
		case 1:
			poke(p + 17, tag(w->idx, j));
			break;
		default:
			w->bad += peek(p + 17) != 0;
			poke(p + 17, tag(w->idx, j));
			break;
		}
	}
	return NULL;
}

static void run_workers(struct worker *w, void *(*fn)(void *), uint8_t *base)
{
	int i;

	for (i = 0; i < NTHREADS; i++) {
		w[i].idx = i;
		w[i].base = base;
		w[i].bad = 0;
		ck_assert_int_eq(pthread_create(&w[i].thread, NULL, fn,
						&w[i]), 0);
	}
	for (i = 0; i < NTHREADS; i++) {
		ck_assert_int_eq(join_timeout(w[i].thread, NULL,
					      TEST_WAIT_MS), 0);
		ck_assert_msg(w[i].bad == 0, "thread %d saw %d wrong bytes",
			      i, w[i].bad);
	}
}

/* The invariants of a fill-once pager, from final counters. */
static void assert_fill_once(const struct uffd_stats *st, uint64_t pages)
{
	ck_assert_uint_eq(st->pages_copy + st->pages_zero, pages);
	ck_assert_uint_eq(st->faults_read + st->faults_write,
			  st->pages_copy + st->pages_zero + st->eexist);
	ck_assert_uint_eq(st->poisoned, 0);
	ck_assert_uint_eq(st->pager_errors, 0);
	ck_assert_uint_eq(hist_total(st), st->faults_read + st->faults_write);
}

START_TEST(disjoint_pages)
{
	struct worker w[NTHREADS];
	struct uffd_region *r = NULL;
	struct uffd_stats st;
	size_t ps = page_size(), npages = NTHREADS * PER_THREAD;
	size_t written = 0, readonly = 0;
	uint8_t *base, *p;
	int t, j, op;

	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_ANON, npages, NULL,
				     &r), 0);
	base = uffd_region_addr(r);
	run_workers(w, disjoint_worker, base);

	for (t = 0; t < NTHREADS; t++) {
		for (j = 0; j < PER_THREAD; j++) {
			p = base + ((size_t)t * PER_THREAD + (size_t)j) * ps;
			op = disjoint_op(t, j);
			ck_assert_uint_eq(peek(p + 17),
					  op ? tag(t, j) : 0);
			ck_assert_uint_eq(peek(p + 16), 0);
			written += op != 0;
			readonly += op == 0;
		}
	}
	ck_assert_int_eq(pfnzero_pages(base, npages * ps), (long)readonly);
	ck_assert_int_eq(rss_kib(base), (long)(written * ps / 1024));

	ck_assert_int_eq(uffd_ctx_stop(ctx), 0);
	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	assert_fill_once(&st, npages);
	/* Each page was faulted by one thread only: no race to lose. */
	ck_assert_uint_eq(st.eexist, 0);
	ck_assert_uint_eq(st.faults_read + st.faults_write, npages);
	uffd_region_destroy(r);
}
END_TEST

/*
 * Shared pages: thread t starts at its own offset and wraps around, so the
 * threads meet on every page.  Threads 0..3 only read; 4..7 each write
 * byte t of every page (distinct bytes, so every write must survive).
 */
static int is_writer(int t)
{
	return t >= NTHREADS / 2;
}

static void *shared_worker(void *arg)
{
	struct worker *w = arg;
	size_t ps = page_size();
	uint8_t *p, v;
	int k, j;

	pthread_barrier_wait(&barrier);
	for (k = 0; k < SHARED; k++) {
		j = (k + w->idx * SHARED / NTHREADS) % SHARED;
		p = w->base + (size_t)j * ps;
		if (is_writer(w->idx)) {
			poke(p + w->idx, (uint8_t)(0x80 + w->idx));
		} else {
			/* A reader sees zeros, or a writer's tag. */
			v = peek(p + NTHREADS / 2 + w->idx % (NTHREADS / 2));
			w->bad += v != 0 &&
				  v != 0x80 + NTHREADS / 2 +
				       w->idx % (NTHREADS / 2);
			w->bad += peek(p + 100) != 0;
		}
	}
	return NULL;
}

START_TEST(shared_pages)
{
	struct worker w[NTHREADS];
	struct uffd_region *r;
	struct uffd_stats st, total;
	size_t ps = page_size();
	uint64_t races = 0;
	uint8_t *base;
	int round, t, j;

	memset(&total, 0, sizeof(total));
	for (round = 0; round < ROUNDS; round++) {
		r = NULL;
		ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_ANON, SHARED,
					     NULL, &r), 0);
		base = uffd_region_addr(r);
		run_workers(w, shared_worker, base);

		for (j = 0; j < SHARED; j++) {
			uint8_t *p = base + (size_t)j * ps;

			for (t = 0; t < NTHREADS; t++)
				ck_assert_uint_eq(peek(p + t),
						  is_writer(t) ? 0x80 + t : 0);
			ck_assert_uint_eq(peek(p + 100), 0);
		}
		/* Every page was written in the end: all private, none zero. */
		ck_assert_int_eq(pfnzero_pages(base, SHARED * ps), 0);
		ck_assert_int_eq(rss_kib(base), (long)(SHARED * ps / 1024));

		/* Settle the handler before reading exact counters. */
		ck_assert_int_eq(uffd_ctx_stop(ctx), 0);
		ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
		assert_fill_once(&st, SHARED);
		races += st.eexist;
		uffd_region_destroy(r);
		ck_assert_int_eq(uffd_ctx_start(ctx), 0);
	}
	/* The context kept the destroyed regions' counts. */
	ck_assert_int_eq(uffd_ctx_stop(ctx), 0);
	ck_assert_int_eq(uffd_ctx_stats(ctx, &total, sizeof(total)), 0);
	assert_fill_once(&total, ROUNDS * SHARED);
	ck_assert_uint_eq(total.eexist, races);
}
END_TEST

/* All threads read the same pages only: each is zero-mapped once. */
static void *reader_worker(void *arg)
{
	struct worker *w = arg;
	int k, j;

	pthread_barrier_wait(&barrier);
	for (k = 0; k < SHARED; k++) {
		j = (SHARED - 1 - k + w->idx * 3) % SHARED;
		w->bad += peek(w->base + (size_t)j * page_size() + j) != 0;
	}
	return NULL;
}

START_TEST(shared_readers)
{
	struct worker w[NTHREADS];
	struct uffd_region *r = NULL;
	struct uffd_stats st;
	uint8_t *base;

	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_ANON, SHARED, NULL,
				     &r), 0);
	base = uffd_region_addr(r);
	run_workers(w, reader_worker, base);
	ck_assert_int_eq(pfnzero_pages(base, SHARED * page_size()), SHARED);
	ck_assert_int_eq(rss_kib(base), 0);

	ck_assert_int_eq(uffd_ctx_stop(ctx), 0);
	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	assert_fill_once(&st, SHARED);
	ck_assert_uint_eq(st.pages_zero, SHARED);
	ck_assert_uint_eq(st.faults_write, 0);
	uffd_region_destroy(r);
}
END_TEST

/*
 * Regions come and go from one thread while others fault: creation and
 * destruction are safe while the handler runs, and no fault is lost or
 * counted twice.
 */
#define CHURN_ROUNDS	40

static atomic_int churn_bad;

static void *churn_fn(void *arg)
{
	struct uffd_region *r;
	uint8_t *p;
	int i;

	(void)arg;
	pthread_barrier_wait(&barrier);
	for (i = 0; i < CHURN_ROUNDS; i++) {
		r = NULL;
		if (make_region(ctx, LIBUFFD_MEM_ANON, 4, NULL, &r)) {
			atomic_fetch_add(&churn_bad, 1);
			continue;
		}
		p = uffd_region_addr(r);
		poke(p + (size_t)(i % 4) * page_size(), (uint8_t)i);
		if (peek(p + (size_t)(i % 4) * page_size()) != (uint8_t)i ||
		    peek(p + (size_t)((i + 1) % 4) * page_size()) != 0)
			atomic_fetch_add(&churn_bad, 1);
		uffd_region_destroy(r);
	}
	return NULL;
}

START_TEST(regions_churn)
{
	struct worker w[NTHREADS - 1];
	struct uffd_region *r = NULL;
	struct uffd_stats st;
	pthread_t churner;
	size_t copied = 0;
	uint8_t *base;
	int i, t, j;

	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_ANON,
				     NTHREADS * PER_THREAD, NULL, &r), 0);
	base = uffd_region_addr(r);
	ck_assert_int_eq(pthread_create(&churner, NULL, churn_fn, NULL), 0);
	for (i = 0; i < NTHREADS - 1; i++) {
		w[i].idx = i;
		w[i].base = base;
		w[i].bad = 0;
		ck_assert_int_eq(pthread_create(&w[i].thread, NULL,
						disjoint_worker, &w[i]), 0);
	}
	ck_assert_int_eq(join_timeout(churner, NULL, TEST_WAIT_MS), 0);
	for (i = 0; i < NTHREADS - 1; i++) {
		ck_assert_int_eq(join_timeout(w[i].thread, NULL,
					      TEST_WAIT_MS), 0);
		ck_assert_int_eq(w[i].bad, 0);
	}
	ck_assert_int_eq(atomic_load(&churn_bad), 0);
	for (t = 0; t < NTHREADS - 1; t++)
		for (j = 0; j < PER_THREAD; j++)
			copied += disjoint_op(t, j) == 1;

	ck_assert_int_eq(uffd_ctx_stop(ctx), 0);
	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	assert_fill_once(&st, (NTHREADS - 1) * PER_THREAD);
	/* Write-first pages were copied; read-first ones zero-mapped. */
	ck_assert_uint_eq(st.pages_copy, copied);
	/* The churned regions' faults are all in the context's total. */
	ck_assert_int_eq(uffd_ctx_stats(ctx, &st, sizeof(st)), 0);
	assert_fill_once(&st, (NTHREADS - 1) * PER_THREAD + CHURN_ROUNDS * 2);
	ck_assert_uint_eq(st.stray_faults, 0);
}
END_TEST

static Suite *concurrency_suite(void)
{
	Suite *s = suite_create("concurrency");
	TCase *tc = add_tcase(s, "threads", setup, teardown);

	tcase_add_test(tc, disjoint_pages);
	tcase_add_test(tc, shared_pages);
	tcase_add_test(tc, shared_readers);
	tcase_add_test(tc, regions_churn);
	return s;
}

int main(void)
{
	require_kernel(0, 0);
	require_zero_count();
	return run_suite(concurrency_suite());
}
