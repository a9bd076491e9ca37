/* SPDX-License-Identifier: MIT */
/*
 * REMOVE and UNMAP events: MADV_DONTNEED makes filled pages missing again
 * (they must fault back as zeros, not be skipped as "known present"), and
 * munmap of a live region must neither kill the handler nor let the
 * library later unmap memory that is no longer its own.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include <check.h>

#include "helpers.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE	0x100000
#endif

static size_t ps(void)
{
	return page_size();
}

/* ---- a zero pager that records the events it is given ------------- */

#define MAX_EVENTS	16

static struct uffd_event events[MAX_EVENTS];
static atomic_int nevents;

static void rec_event(void *state, const struct uffd_event *ev)
{
	int i = atomic_load(&nevents);

	(void)state;
	if (i < MAX_EVENTS) {
		events[i] = *ev;
		atomic_store(&nevents, i + 1);
	}
}

static const struct uffd_pager_ops rec_ops = {
	.version = LIBUFFD_PAGER_OPS_VERSION,
	.name = "recorder",
	.init = init_region_state,
	.fault = fault_like_zero,
	.event = rec_event,
};

static int wait_events(int n)
{
	uint64_t deadline = now_ns() + TEST_WAIT_MS * 1000000ULL;

	while (atomic_load(&nevents) < n && now_ns() < deadline)
		sleep_us(200);
	return atomic_load(&nevents);
}

static int wait_gone(struct uffd_region *r)
{
	uint64_t deadline = now_ns() + TEST_WAIT_MS * 1000000ULL;

	while (!uffd_region_gone(r) && now_ns() < deadline)
		sleep_us(200);
	return uffd_region_gone(r);
}

/* ---- REMOVE ------------------------------------------------------- */

START_TEST(dontneed_refaults_zero)
{
	struct uffd_region *r = NULL;
	struct uffd_stats st;
	uint8_t *p;
	int i;

	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_ANON, 16, NULL, &r), 0);
	p = uffd_region_addr(r);
	for (i = 0; i < 8; i++)
		poke(p + i * ps(), (uint8_t)(i + 1));
	ck_assert_int_eq(wait_region_stat(r, STAT_OFF(faults_write), 8,
					  TEST_WAIT_MS), 8);
	ck_assert_int_eq(rss_kib(p), (long)(8 * ps() / 1024));

	ck_assert_int_eq(madvise(p + 2 * ps(), 4 * ps(), MADV_DONTNEED), 0);
	ck_assert_int_eq(wait_region_stat(r, STAT_OFF(events_remove), 1,
					  TEST_WAIT_MS), 1);
	ck_assert_int_eq(present_pages(p + 2 * ps(), 4 * ps()), 0);
	ck_assert_int_eq(rss_kib(p), (long)(4 * ps() / 1024));

	/* Missing again: a read faults to the handler and gets zeros... */
	ck_assert_uint_eq(peek(p + 3 * ps()), 0);
	/* ...and so does a write, which must not find the page "present". */
	poke(p + 4 * ps() + 1, 0x77);
	ck_assert_uint_eq(peek(p + 4 * ps()), 0);
	ck_assert_uint_eq(peek(p + 4 * ps() + 1), 0x77);
	for (i = 0; i < 8; i++)
		if (i < 2 || i >= 6)
			ck_assert_uint_eq(peek(p + i * ps()), i + 1);
	ck_assert_uint_eq(peek(p + 2 * ps()), 0);
	ck_assert_uint_eq(peek(p + 5 * ps()), 0);

	ck_assert_int_eq(uffd_ctx_stop(ctx), 0);
	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.events_remove, 1);
	ck_assert_uint_eq(st.events_unmap, 0);
	/* 8 writes, then pages 3 and 2 and 5 read, page 4 written. */
	ck_assert_uint_eq(st.faults_write, 9);
	ck_assert_uint_eq(st.faults_read, 3);
	ck_assert_uint_eq(st.pages_copy, 9);
	ck_assert_uint_eq(st.pages_zero, 3);
	ck_assert_uint_eq(st.eexist, 0);
	ck_assert_uint_eq(st.poisoned, 0);
	ck_assert_int_eq(uffd_ctx_stats(ctx, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.events_remove, 1);
}
END_TEST

START_TEST(dontneed_zero_mapped)
{
	struct uffd_region *r = NULL;
	uint8_t *p;

	/* Zero-page mappings are removed too, and refault as zeros. */
	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_ANON, 4, NULL, &r), 0);
	p = uffd_region_addr(r);
	ck_assert_uint_eq(peek(p), 0);
	ck_assert_int_eq(madvise(p, 4 * ps(), MADV_DONTNEED), 0);
	ck_assert_int_eq(wait_region_stat(r, STAT_OFF(events_remove), 1,
					  TEST_WAIT_MS), 1);
	ck_assert_int_eq(present_pages(p, ps()), 0);
	poke(p, 3);
	ck_assert_uint_eq(peek(p), 3);
	ck_assert_int_ge(wait_region_stat(r, STAT_OFF(pages_copy), 1,
					  TEST_WAIT_MS), 1);
}
END_TEST

START_TEST(remove_memfd)
{
	struct uffd_region *r = NULL;
	uint8_t *p, b = 0xff;
	int fd;

	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_MEMFD, 4, NULL, &r), 0);
	p = uffd_region_addr(r);
	fd = uffd_region_memfd(r);
	ck_assert_int_ge(fd, 0);
	poke(p + ps() + 9, 0x42);
	ck_assert_int_eq(pread(fd, &b, 1, (off_t)ps() + 9), 1);
	ck_assert_uint_eq(b, 0x42);

	/* Punches the hole in the file: REMOVE, and the data is gone. */
	ck_assert_int_eq(madvise(p, 4 * ps(), MADV_REMOVE), 0);
	ck_assert_int_eq(wait_region_stat(r, STAT_OFF(events_remove), 1,
					  TEST_WAIT_MS), 1);
	ck_assert_int_eq(pread(fd, &b, 1, (off_t)ps() + 9), 1);
	ck_assert_uint_eq(b, 0);
	ck_assert_uint_eq(peek(p + ps() + 9), 0);
	poke(p + ps() + 9, 0x43);
	ck_assert_int_eq(pread(fd, &b, 1, (off_t)ps() + 9), 1);
	ck_assert_uint_eq(b, 0x43);
}
END_TEST

START_TEST(event_hook_clipped)
{
	struct uffd_region_opts o = {
		.size = sizeof(o),
		.type = LIBUFFD_MEM_ADOPT,
		.len = 8 * ps(),
		.ops = &rec_ops,
	};
	struct uffd_region *r = NULL;
	uint8_t *map, *p;
	int i;

	/* The region is pages [4, 12) of a 16-page mapping. */
	map = map_anon(16);
	p = map + 4 * ps();
	o.addr = p;
	ck_assert_int_eq(uffd_region_create(ctx, &o, &r), 0);
	ck_assert_str_eq(uffd_region_pager_name(r), "recorder");
	for (i = 0; i < 8; i++)
		poke(p + i * ps(), 1);

	/* [0, 8) of the mapping covers the region's first four pages. */
	ck_assert_int_eq(madvise(map, 8 * ps(), MADV_DONTNEED), 0);
	ck_assert_int_eq(wait_events(1), 1);
	ck_assert_int_eq(events[0].type, LIBUFFD_EVENT_REMOVE);
	ck_assert_uint_eq(events[0].offset, 0);
	ck_assert_uint_eq(events[0].len, 4 * ps());

	/* Outside the region: not this pager's business. */
	ck_assert_int_eq(madvise(map + 13 * ps(), 3 * ps(), MADV_DONTNEED),
			 0);
	/* Over its end: clipped to its last two pages. */
	ck_assert_int_eq(madvise(map + 10 * ps(), 6 * ps(), MADV_DONTNEED),
			 0);
	ck_assert_int_eq(wait_events(2), 2);
	ck_assert_int_eq(events[1].type, LIBUFFD_EVENT_REMOVE);
	ck_assert_uint_eq(events[1].offset, 6 * ps());
	ck_assert_uint_eq(events[1].len, 2 * ps());

	/* munmap over its end: UNMAP, clipped the same way. */
	ck_assert_int_eq(munmap(map + 11 * ps(), 5 * ps()), 0);
	ck_assert_int_eq(wait_events(3), 3);
	ck_assert_int_eq(events[2].type, LIBUFFD_EVENT_UNMAP);
	ck_assert_uint_eq(events[2].offset, 7 * ps());
	ck_assert_uint_eq(events[2].len, ps());
	ck_assert_int_eq(wait_region_stat(r, STAT_OFF(events_unmap), 1,
					  TEST_WAIT_MS), 1);
	ck_assert_int_eq(uffd_region_gone(r), 0);

	/* The rest is still served, zeros where pages were removed. */
	ck_assert_uint_eq(peek(p), 0);
	ck_assert_uint_eq(peek(p + 4 * ps()), 1);
	ck_assert_uint_eq(peek(p + 6 * ps()), 0);
	ck_assert_int_eq(atomic_load(&nevents), 3);
	uffd_region_destroy(r);
	munmap(map, 11 * ps());
}
END_TEST

/*
 * A fill while a REMOVE event waits unread: the kernel refuses it with
 * EAGAIN until the event is read.  A pager hook holds the handler so that
 * the event queues up behind the fault it is serving.
 */
static atomic_int hold, in_hook;

static int hold_fault(void *state, struct uffd_resolver *res,
		      const struct uffd_fault *f)
{
	int i;

	atomic_fetch_add(&in_hook, 1);
	for (i = 0; atomic_load(&hold) && i < 100000; i++)
		sleep_us(100);
	return fault_like_zero(state, res, f);
}

static const struct uffd_pager_ops hold_ops = {
	.version = LIBUFFD_PAGER_OPS_VERSION,
	.name = "hold",
	.init = init_region_state,
	.fault = hold_fault,
	.event = rec_event,
};

struct bg {
	pthread_t	thread;
	uint8_t		*addr;
	atomic_int	tid;
	int		ret;
};

static void *reader_fn(void *arg)
{
	struct bg *b = arg;

	atomic_store(&b->tid, gettid());
	b->ret = peek(b->addr);
	return NULL;
}

static void *dontneed_fn(void *arg)
{
	struct bg *b = arg;

	atomic_store(&b->tid, gettid());
	b->ret = madvise(b->addr, 4 * ps(), MADV_DONTNEED);
	return NULL;
}

/* Asleep in the kernel: the event wait is killable, so 'D', not 'S'. */
static int blocked(pid_t tid)
{
	char s = tid ? thread_state(tid) : 0;

	return s == 'S' || s == 'D';
}

START_TEST(fill_while_remove_pending)
{
	struct uffd_region_opts o = {
		.size = sizeof(o),
		.type = LIBUFFD_MEM_ANON,
		.len = 8 * ps(),
		.ops = &hold_ops,
	};
	struct uffd_region *r = NULL;
	struct uffd_stats st;
	struct bg rd = { .ret = -1 }, dn = { .ret = -1 };
	uint64_t deadline;
	uint8_t *p;
	int i;

	ck_assert_int_eq(uffd_region_create(ctx, &o, &r), 0);
	p = uffd_region_addr(r);
	for (i = 4; i < 8; i++)
		poke(p + i * ps(), 0x44);

	atomic_store(&hold, 1);
	rd.addr = p;
	ck_assert_int_eq(pthread_create(&rd.thread, NULL, reader_fn, &rd), 0);
	deadline = now_ns() + TEST_WAIT_MS * 1000000ULL;
	while (atomic_load(&in_hook) < 5 && now_ns() < deadline)
		sleep_us(100);
	ck_assert_int_eq(atomic_load(&in_hook), 5);

	/* The REMOVE waits behind the held fault... */
	dn.addr = p + 4 * ps();
	ck_assert_int_eq(pthread_create(&dn.thread, NULL, dontneed_fn, &dn),
			 0);
	while (!blocked(atomic_load(&dn.tid)) && now_ns() < deadline)
		sleep_us(100);
	ck_assert(blocked(atomic_load(&dn.tid)));
	ck_assert_int_eq(atomic_load(&nevents), 0);

	/* ...and the fill must read it to get through. */
	atomic_store(&hold, 0);
	ck_assert_int_eq(join_timeout(rd.thread, NULL, TEST_WAIT_MS), 0);
	ck_assert_int_eq(join_timeout(dn.thread, NULL, TEST_WAIT_MS), 0);
	ck_assert_int_eq(rd.ret, 0);
	ck_assert_int_eq(dn.ret, 0);
	ck_assert_int_eq(wait_events(1), 1);
	ck_assert_int_eq(events[0].type, LIBUFFD_EVENT_REMOVE);
	ck_assert_uint_eq(events[0].offset, 4 * ps());
	ck_assert_uint_eq(events[0].len, 4 * ps());
	ck_assert_uint_eq(peek(p + 5 * ps()), 0);

	ck_assert_int_eq(uffd_ctx_stop(ctx), 0);
	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.events_remove, 1);
	ck_assert_uint_eq(st.pager_errors, 0);
	ck_assert_uint_eq(st.poisoned, 0);
	ck_assert_uint_eq(st.faults_read, 2);
	ck_assert_uint_eq(st.pages_zero, 2);
}
END_TEST

/* ---- UNMAP -------------------------------------------------------- */

/* Map @n pages at @addr, which must be free, filled with @v. */
static uint8_t *map_at(void *addr, size_t n, uint8_t v)
{
	uint8_t *q = mmap(addr, n * ps(), PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
			  -1, 0);

	ck_assert_ptr_eq(q, addr);
	memset(q, v, n * ps());
	return q;
}

static void unmap_live_region(int destroy_explicitly)
{
	struct uffd_region *a = NULL, *b = NULL;
	struct uffd_stats st;
	uint8_t *pa, *pb, *q;

	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_ANON, 8, NULL, &a), 0);
	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_ANON, 8, NULL, &b), 0);
	pa = uffd_region_addr(a);
	pb = uffd_region_addr(b);
	poke(pa, 1);
	ck_assert_uint_eq(peek(pb), 0);

	ck_assert_int_eq(munmap(pa, 8 * ps()), 0);
	ck_assert_int_eq(wait_gone(a), 1);
	ck_assert_int_eq(uffd_region_unregister(a), -ENODEV);
	ck_assert_int_eq(uffd_region_stats(a, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.events_unmap, 1);
	ck_assert_uint_eq(st.faults_write, 1);
	ck_assert_int_eq(uffd_region_gone(b), 0);

	/* The handler lives on: b is still served. */
	poke(pb + ps(), 2);
	ck_assert_uint_eq(peek(pb + ps()), 2);
	ck_assert_uint_eq(peek(pb + 2 * ps()), 0);
	ck_assert_int_ge(wait_region_stat(b, STAT_OFF(faults_read), 2,
					  TEST_WAIT_MS), 2);

	/* Someone else's memory now lives where a was. */
	q = map_at(pa, 8, 0x5c);
	if (destroy_explicitly)
		uffd_region_destroy(a);
	ck_assert_int_eq(uffd_ctx_stop(ctx), 0);
	uffd_ctx_destroy(ctx);
	ctx = NULL;
	ck_assert_int_eq(mapped_pages(q, 8 * ps()), 8);
	ck_assert_uint_eq(peek(q), 0x5c);
	ck_assert_uint_eq(peek(q + 7 * ps()), 0x5c);
	/* b was the library's: gone with the context. */
	ck_assert_int_eq(mapped_pages(pb, 8 * ps()), 0);
	munmap(q, 8 * ps());
}

/* ---- mremap with busy handlers ------------------------------------- */

struct churn {
	uint8_t		*p;
	size_t		len;
	volatile int	stop;
};

/* Keep the handlers busy: discard and fault a region again and again. */
static void *churn_main(void *arg)
{
	struct churn *c = arg;
	size_t ps_ = ps(), i = 0;

	while (!c->stop) {
		madvise(c->p + (i % (c->len / ps_)) * ps_, 4 * ps_,
			MADV_DONTNEED);
		for (size_t k = 0; k < 4; k++)
			poke(c->p + ((i + k) % (c->len / ps_)) * ps_, 1);
		i += 4;
	}
	return NULL;
}

/*
 * mremap a whole region 200 times while three handlers are busy with
 * another region's faults and discards.  Each move must be followed at
 * once: uffd_region_addr() says where the region is as soon as mremap
 * returns, a touch there is served, nothing is dropped, and destroy
 * unmaps the last place.  The UNMAP of the old range that follows every
 * REMAP used to be ingested by another handler first (region gone, move
 * dropped, its new range unregistered), found by tests/stress.
 */
START_TEST(mremap_busy_handlers)
{
	struct uffd_ctx_opts o = { .size = sizeof(o), .handlers = 3 };
	size_t len = 64 * ps();
	struct uffd_region *a = NULL, *b = NULL;
	struct churn c = { 0 };
	struct uffd_stats st;
	pthread_t t;
	uint8_t *p;

	ck_assert_int_eq(uffd_ctx_create(&ctx, &o), 0);
	ck_assert_int_eq(uffd_ctx_start(ctx), 0);
	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_ANON, 64, NULL, &a), 0);
	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_ANON, 256, NULL, &b), 0);
	c.p = uffd_region_addr(b);
	c.len = 256 * ps();
	ck_assert_int_eq(pthread_create(&t, NULL, churn_main, &c), 0);
	p = uffd_region_addr(a);
	for (int i = 0; i < 200; i++) {
		uint8_t *res = mmap(NULL, 2 * len, PROT_NONE,
				    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		uint8_t *q;

		ck_assert_ptr_ne(res, MAP_FAILED);
		q = mremap(p, len, len, MREMAP_MAYMOVE | MREMAP_FIXED,
			   res + (i & 1) * len);
		ck_assert_ptr_ne(q, MAP_FAILED);
		munmap(q == res ? res + len : res, len);
		ck_assert_ptr_eq(uffd_region_addr(a), q);
		poke(q + (size_t)(i % 64) * ps(), (uint8_t)i);
		ck_assert_uint_eq(peek(q + (size_t)(i % 64) * ps()), (uint8_t)i);
		p = q;
	}
	c.stop = 1;
	pthread_join(t, NULL);
	ck_assert_int_eq(uffd_ctx_stats(ctx, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.remap_dropped, 0);
	ck_assert_uint_eq(st.events_remap, 200);
	ck_assert_int_eq(uffd_region_gone(a), 0);
	uffd_region_destroy(a);
	ck_assert_int_eq(mapped_pages(p, 64), 0);
}
END_TEST

START_TEST(munmap_region_destroyed)
{
	unmap_live_region(1);
}
END_TEST

START_TEST(munmap_region_left_to_ctx)
{
	unmap_live_region(0);
}
END_TEST

START_TEST(munmap_partial)
{
	struct uffd_region *r = NULL;
	uint8_t *p, *q;

	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_ANON, 8, NULL, &r), 0);
	p = uffd_region_addr(r);
	poke(p, 1);
	poke(p + 2 * ps(), 2);
	ck_assert_int_eq(munmap(p, 2 * ps()), 0);
	ck_assert_int_eq(wait_region_stat(r, STAT_OFF(events_unmap), 1,
					  TEST_WAIT_MS), 1);
	ck_assert_int_eq(uffd_region_gone(r), 0);
	/* The remaining pages are served as before. */
	ck_assert_uint_eq(peek(p + 2 * ps()), 2);
	ck_assert_uint_eq(peek(p + 3 * ps()), 0);
	poke(p + 7 * ps(), 7);
	ck_assert_uint_eq(peek(p + 7 * ps()), 7);

	q = map_at(p, 2, 0x6d);
	ck_assert_int_eq(uffd_region_unregister(r), 0);
	ck_assert_int_eq(vma_has_flag(p + 2 * ps(), "um"), 0);
	uffd_region_destroy(r);
	/* Only what was still the library's was unmapped. */
	ck_assert_int_eq(mapped_pages(q, 2 * ps()), 2);
	ck_assert_uint_eq(peek(q + ps()), 0x6d);
	ck_assert_int_eq(mapped_pages(p + 2 * ps(), 6 * ps()), 0);
	munmap(q, 2 * ps());
}
END_TEST

/* The library's present map follows fills and REMOVE events. */
START_TEST(page_present_hint)
{
	struct uffd_region *r = NULL;
	uint8_t *p;

	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_ANON, 8, NULL, &r), 0);
	p = uffd_region_addr(r);
	ck_assert_int_eq(uffd_region_page_present(r, 2 * ps()), 0);
	poke(p + 2 * ps(), 2);
	ck_assert_int_eq(wait_region_stat(r, STAT_OFF(pages_copy), 1,
					  TEST_WAIT_MS), 1);
	ck_assert_int_eq(uffd_region_page_present(r, 2 * ps()), 1);
	ck_assert_int_eq(uffd_region_page_present(r, 3 * ps()), 0);
	ck_assert_int_eq(madvise(p, 8 * ps(), MADV_DONTNEED), 0);
	/* madvise returns once the event is read; the map follows */
	ck_assert_int_eq(wait_region_stat(r, STAT_OFF(events_remove), 1,
					  TEST_WAIT_MS), 1);
	ck_assert_int_eq(uffd_region_page_present(r, 2 * ps()), 0);
	ck_assert_int_eq(uffd_region_page_present(r, 8 * ps()), -EINVAL);
	ck_assert_int_eq(uffd_region_page_present(NULL, 0), -EINVAL);
	uffd_region_destroy(r);
}
END_TEST

static Suite *events_suite(void)
{
	Suite *s = suite_create("events");
	TCase *tc = add_tcase(s, "remove", ctx_setup, ctx_teardown);

	tcase_add_test(tc, dontneed_refaults_zero);
	tcase_add_test(tc, page_present_hint);
	tcase_add_test(tc, dontneed_zero_mapped);
	tcase_add_test(tc, remove_memfd);
	tcase_add_test(tc, event_hook_clipped);
	tcase_add_test(tc, fill_while_remove_pending);

	tc = add_tcase(s, "remap", NULL, ctx_teardown);
	tcase_add_test(tc, mremap_busy_handlers);

	tc = add_tcase(s, "unmap", ctx_setup, ctx_teardown);
	tcase_add_test(tc, munmap_region_destroyed);
	tcase_add_test(tc, munmap_region_left_to_ctx);
	tcase_add_test(tc, munmap_partial);
	return s;
}

int main(void)
{
	require_kernel(LIBUFFD_FEATURE_EVENT_REMOVE |
		       LIBUFFD_FEATURE_EVENT_UNMAP |
		       LIBUFFD_FEATURE_MISSING_SHMEM, 0);
	return run_suite(events_suite());
}
