/* SPDX-License-Identifier: MIT */
/*
 * Non-cooperative events: UFFD_EVENT_FORK (the child's copy of a region is
 * served by a child context with its own pager state) and
 * UFFD_EVENT_REMAP (a region follows mremap).  Contents are checked in
 * parent and child.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "helpers.h"

static void setup(void)
{
	struct uffd_ctx_opts o = {
		.size = sizeof(o),
		.handler_cpu = -1,
		.features = LIBUFFD_FEATURE_EVENT_FORK,
	};

	ck_assert_int_eq(uffd_ctx_create(&ctx, &o), 0);
}

/* Reap child @pid, which must exit 0: every one of its checks held. */
static void assert_child_passed(pid_t pid)
{
	int status;

	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
}

/* Child: exit 0 when every check holds, else the number of the failure. */
static int child_checks(uint8_t *p, size_t ps)
{
	if (peek(p) != 0x11)			/* filled before fork */
		return 1;
	if (peek(p + 5 * ps) != 0)		/* missing: the child's pager */
		return 2;
	poke(p + 6 * ps, 0x66);			/* write fault in the child */
	if (peek(p + 6 * ps) != 0x66)
		return 3;
	return 0;
}

START_TEST(fork_child_served)
{
	struct uffd_region *r;
	struct uffd_stats st;
	uint8_t *p;
	size_t ps = page_size();
	pid_t pid;

	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_ANON, 16, NULL, &r), 0);
	ck_assert_int_eq(uffd_ctx_start(ctx), 0);
	p = uffd_region_addr(r);
	poke(p, 0x11);

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(child_checks(p, ps));
	assert_child_passed(pid);

	/* one child context; it served the child's two faults */
	ck_assert_uint_eq(uffd_ctx_nchildren(ctx), 1);
	ck_assert_ptr_nonnull(uffd_ctx_child(ctx, 0));
	ck_assert_ptr_null(uffd_ctx_child(ctx, 1));
	ck_assert_int_eq(settled_ctx_stats(uffd_ctx_child(ctx, 0), &st,
					   TEST_WAIT_MS), 0);
	ck_assert_uint_eq(st.faults_read, 1);
	ck_assert_uint_eq(st.faults_write, 1);
	ck_assert_uint_eq(st.pages_zero, 1);
	ck_assert_uint_eq(st.pages_copy, 1);
	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.events_fork, 1);

	/* the parent's copy is untouched by what the child did */
	ck_assert_uint_eq(peek(p + 6 * ps), 0);
	ck_assert_uint_eq(peek(p), 0x11);
	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.faults_write, 1);
	ck_assert_uint_eq(st.faults_read, 1);
}
END_TEST

/* The child's regions get the same pager with its own state: prealloc. */
START_TEST(fork_same_pager)
{
	struct uffd_region *r;
	struct uffd_stats st;
	uint8_t *p;
	size_t ps = page_size();
	pid_t pid;

	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_ANON, 64,
				     "prealloc:batch=8", &r), 0);
	ck_assert_int_eq(uffd_ctx_start(ctx), 0);
	p = uffd_region_addr(r);
	poke(p, 0x11);			/* fills pages 0..7 in the parent */

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		size_t i;

		/* a write walk over pages 16..31: two batch-8 faults */
		for (i = 16; i < 32; i++)
			poke(p + i * ps, (uint8_t)i);
		for (i = 16; i < 32; i++)
			if (peek(p + i * ps) != (uint8_t)i)
				_exit(1);
		_exit(peek(p) == 0x11 ? 0 : 2);
	}
	assert_child_passed(pid);
	ck_assert_int_eq(settled_ctx_stats(uffd_ctx_child(ctx, 0), &st,
					   TEST_WAIT_MS), 0);
	ck_assert_uint_eq(st.faults_write, 2);
	ck_assert_uint_eq(st.pages_copy, 16);
	ck_assert_int_eq(present_pages(p + 16 * ps, 16 * ps), 0);
}
END_TEST

/* Two generations: the child's context handles the grandchild's fork. */
/*
 * The child's context handles the child's own events: MADV_DONTNEED in
 * the child (a REMOVE it must read, or the child blocks) and munmap (an
 * UNMAP); the parent's copy is untouched.
 */
START_TEST(fork_child_events)
{
	struct uffd_region *r;
	struct uffd_ctx *child;
	struct uffd_stats st;
	size_t ps = page_size();
	uint8_t *p;
	pid_t pid;

	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_ANON, 8, NULL, &r), 0);
	ck_assert_int_eq(uffd_ctx_start(ctx), 0);
	p = uffd_region_addr(r);
	poke(p, 0x11);
	poke(p + ps, 0x22);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (madvise(p, 2 * ps, MADV_DONTNEED))
			_exit(1);
		if (peek(p) != 0 || peek(p + ps) != 0)	/* zeros again */
			_exit(2);
		poke(p + ps, 0x33);
		if (peek(p + ps) != 0x33)
			_exit(3);
		_exit(munmap(p + 4 * ps, 4 * ps) ? 4 : 0);
	}
	assert_child_passed(pid);
	child = uffd_ctx_child(ctx, 0);
	ck_assert_ptr_nonnull(child);
	/*
	 * munmap returns once its event is read, before the handler counts
	 * it: the child may be gone by then, so wait for the count.
	 */
	ck_assert_int_eq(wait_ctx_stat(child, STAT_OFF(events_unmap), 1,
				       TEST_WAIT_MS), 1);
	ck_assert_int_eq(settled_ctx_stats(child, &st, TEST_WAIT_MS), 0);
	ck_assert_uint_eq(st.events_remove, 1);
	ck_assert_uint_eq(st.events_unmap, 1);
	/* two reads of removed pages; the write then is the kernel's CoW */
	ck_assert_uint_eq(st.faults_read, 2);
	ck_assert_uint_eq(st.faults_write, 0);
	/* the parent's memory is its own */
	ck_assert_uint_eq(peek(p), 0x11);
	ck_assert_uint_eq(peek(p + ps), 0x22);
	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.events_remove, 0);
}
END_TEST

START_TEST(fork_grandchild)
{
	struct uffd_region *r;
	uint8_t *p;
	size_t ps = page_size();
	pid_t pid;

	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_ANON, 8, NULL, &r), 0);
	ck_assert_int_eq(uffd_ctx_start(ctx), 0);
	p = uffd_region_addr(r);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		pid_t g = fork();
		int gs;

		if (g < 0)
			_exit(10);
		if (g == 0) {
			poke(p + 3 * ps, 3);
			_exit(peek(p + 3 * ps) == 3 && peek(p + 4 * ps) == 0 ?
			      0 : 1);
		}
		if (waitpid(g, &gs, 0) != g || !WIFEXITED(gs))
			_exit(11);
		_exit(WEXITSTATUS(gs) ? 12 : (peek(p + 3 * ps) == 0 ? 0 : 13));
	}
	assert_child_passed(pid);
	ck_assert_uint_eq(uffd_ctx_nchildren(ctx), 1);
	ck_assert_uint_eq(uffd_ctx_nchildren(uffd_ctx_child(ctx, 0)), 1);
}
END_TEST

/* Moving a whole region: it follows, faults are served at the new place. */
START_TEST(remap_whole)
{
	struct uffd_region *r;
	struct uffd_stats st;
	size_t ps = page_size(), len = 16 * ps;
	uint8_t *p, *dst, *q;

	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_ANON, 16, NULL, &r), 0);
	ck_assert_int_eq(uffd_ctx_start(ctx), 0);
	p = uffd_region_addr(r);
	poke(p + ps, 0x42);
	dst = mmap(NULL, 2 * len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
		   -1, 0);
	ck_assert_ptr_ne(dst, MAP_FAILED);
	q = mremap(p, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, dst + len);
	ck_assert_ptr_eq(q, dst + len);
	ck_assert_ptr_eq(uffd_region_addr(r), q);
	ck_assert_int_eq(vma_has_flag(q, "um"), 1);
	/* what was there moved along; the rest faults at the new place */
	ck_assert_uint_eq(peek(q + ps), 0x42);
	ck_assert_uint_eq(peek(q + 9 * ps), 0);
	poke(q + 10 * ps, 0x10);
	ck_assert_uint_eq(peek(q + 10 * ps), 0x10);
	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.events_remap, 1);
	ck_assert_uint_eq(st.faults_write, 2);
	ck_assert_uint_eq(st.faults_read, 1);
	ck_assert_uint_eq(st.stray_faults, 0);
	/* destroy unmaps the region where it is now, and nothing else */
	uffd_region_destroy(r);
	ck_assert_int_eq(mapped_pages(q, len), 0);
	ck_assert_int_eq(mapped_pages(dst, len), (long)(len / ps));
	munmap(dst, len);
}
END_TEST

/* Moving part of a region lets the moved part go, as ordinary memory. */
START_TEST(remap_part)
{
	struct uffd_region *r;
	struct uffd_stats st;
	size_t ps = page_size();
	uint8_t *p, *dst, *q;

	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_ANON, 16, NULL, &r), 0);
	ck_assert_int_eq(uffd_ctx_start(ctx), 0);
	p = uffd_region_addr(r);
	poke(p + 12 * ps, 0x12);
	dst = mmap(NULL, 4 * ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
		   -1, 0);
	ck_assert_ptr_ne(dst, MAP_FAILED);
	q = mremap(p + 12 * ps, 4 * ps, 4 * ps, MREMAP_MAYMOVE | MREMAP_FIXED,
		   dst);
	ck_assert_ptr_eq(q, dst);
	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.remap_dropped, 1);
	ck_assert_int_eq(vma_has_flag(q, "um"), 0);
	ck_assert_uint_eq(peek(q), 0x12);
	ck_assert_uint_eq(peek(q + ps), 0);	/* an ordinary fault now */
	/* the rest of the region is served as before */
	poke(p + 2 * ps, 2);
	ck_assert_uint_eq(peek(p + 2 * ps), 2);
	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.faults_write, 2);
	ck_assert_uint_eq(st.faults_read, 0);
	uffd_region_destroy(r);
	/* the moved part is not the region's to unmap any more */
	ck_assert_int_eq(mapped_pages(q, 4 * ps), 4);
	ck_assert_int_eq(mapped_pages(p, 12 * ps), 0);
	munmap(q, 4 * ps);
}
END_TEST

/*
 * Growing a whole region with mremap: the kernel carries the registration
 * into the grown part, which no region covers.  Its first fault lets the
 * whole grown part go as ordinary memory; the region is served as before.
 */
START_TEST(remap_grow)
{
	struct uffd_region *r;
	struct uffd_stats st;
	size_t ps = page_size(), len = 16 * ps;
	uint8_t *p, *q;

	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_ANON, 16, NULL, &r), 0);
	ck_assert_int_eq(uffd_ctx_start(ctx), 0);
	p = uffd_region_addr(r);
	poke(p + ps, 0x42);
	q = mremap(p, len, 4 * len, MREMAP_MAYMOVE);
	ck_assert_ptr_ne(q, MAP_FAILED);
	ck_assert_ptr_eq(uffd_region_addr(r), q);
	ck_assert_uint_eq(peek(q + ps), 0x42);
	/* the grown part: one stray fault, then ordinary memory */
	poke(q + 2 * len + 3 * ps, 7);
	ck_assert_uint_eq(peek(q + 2 * len + 3 * ps), 7);
	ck_assert_uint_eq(peek(q + len), 0);
	poke(q + 4 * len - ps, 9);
	ck_assert_int_eq(vma_has_flag(q + len, "um"), 0);
	ck_assert_int_eq(vma_has_flag(q, "um"), 1);
	ck_assert_int_eq(uffd_ctx_stats(ctx, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.stray_faults, 1);
	/* the region itself is still served */
	poke(q + 5 * ps, 5);
	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.faults_write, 2);
	uffd_region_destroy(r);
	munmap(q, 4 * len);
}
END_TEST

static Suite *fork_suite(void)
{
	Suite *s = suite_create("fork");
	TCase *tc = add_tcase(s, "fork", setup, ctx_teardown);

	tcase_add_test(tc, fork_child_served);
	tcase_add_test(tc, fork_same_pager);
	tcase_add_test(tc, fork_grandchild);
	tcase_add_test(tc, fork_child_events);
	tcase_add_test(tc, remap_grow);

	tc = add_tcase(s, "remap", setup, ctx_teardown);
	tcase_add_test(tc, remap_whole);
	tcase_add_test(tc, remap_part);
	return s;
}

int main(void)
{
	require_kernel(LIBUFFD_FEATURE_EVENT_FORK |
		       LIBUFFD_FEATURE_EVENT_REMAP |
		       LIBUFFD_FEATURE_EVENT_UNMAP, 0);
	return run_suite(fork_suite());
}
