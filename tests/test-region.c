/* SPDX-License-Identifier: MIT */
/*
 * Region lifecycle: create, register, serve, unregister, destroy, with
 * nothing left behind; adopted mappings; and every way to get creation
 * wrong, each of which must leave the process exactly as it was.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE	0x100000
#endif

#include <check.h>

#include "helpers.h"

static uint64_t region_faults(struct uffd_region *r)
{
	struct uffd_stats st;

	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	return st.faults_read + st.faults_write;
}

/*
 * glibc keeps the stacks of joined threads for reuse.  One context cycle
 * before a snapshot puts the handler's stack in that cache, so what a
 * later cycle leaves behind is the library's, not glibc's.
 */
static void warm_thread_cache(void)
{
	struct uffd_ctx *c = NULL;

	ck_assert_int_eq(uffd_ctx_create(&c, NULL), 0);
	ck_assert_int_eq(uffd_ctx_start(c), 0);
	uffd_ctx_destroy(c);
}

START_TEST(lifecycle)
{
	struct uffd_ctx *c = NULL;
	struct uffd_region *r = NULL;
	size_t ps = page_size(), len = 16 * ps;
	char *maps0;
	int fds0, fds1;
	uint8_t *p;

	warm_thread_cache();
	maps0 = maps_snapshot();
	ck_assert_ptr_nonnull(maps0);
	fds0 = count_fds();
	ck_assert_int_ge(fds0, 0);
	ck_assert_int_eq(uffd_ctx_create(&c, NULL), 0);
	ck_assert_int_eq(uffd_ctx_start(c), 0);
	fds1 = count_fds();

	ck_assert_int_eq(make_region(c, LIBUFFD_MEM_ANON, 16, NULL, &r), 0);
	ck_assert_ptr_nonnull(r);
	p = uffd_region_addr(r);
	ck_assert_uint_eq((uintptr_t)p % ps, 0);
	ck_assert_int_eq(mapped_pages(p, len), 16);
	/* Anonymous memory needs no descriptor of its own. */
	ck_assert_int_eq(count_fds(), fds1);
	/* The kernel's view: registered for missing faults. */
	ck_assert_int_eq(vma_has_flag(p, "um"), 1);

	/* Faults go to the handler: one read, one write. */
	ck_assert_uint_eq(peek(p + 3 * ps), 0);
	poke(p + 4 * ps, 0x44);
	ck_assert_uint_eq(peek(p + 4 * ps), 0x44);
	ck_assert_int_ge(wait_region_stat(r, STAT_OFF(faults_write), 1,
					  TEST_WAIT_MS), 1);

	ck_assert_int_eq(uffd_region_unregister(r), 0);
	ck_assert_int_eq(vma_has_flag(p, "um"), 0);
	/* Mapping kept, and a new touch is an ordinary kernel fault. */
	ck_assert_int_eq(mapped_pages(p, len), 16);
	poke(p + 5 * ps, 9);
	ck_assert_uint_eq(peek(p + 5 * ps), 9);
	ck_assert_uint_eq(peek(p + 3 * ps), 0);
	ck_assert_uint_eq(peek(p + 4 * ps), 0x44);
	ck_assert_uint_eq(region_faults(r), 2);

	uffd_region_destroy(r);
	/* The library mapped it, so the library unmapped it. */
	ck_assert_int_eq(mapped_pages(p, len), 0);
	ck_assert_int_eq(count_fds(), fds1);

	uffd_ctx_destroy(c);
	ck_assert_int_eq(count_fds(), fds0);
	/* Nothing else of the library's outlives its last context. */
	assert_maps_unchanged(maps0);
}
END_TEST

START_TEST(destroy_registered)
{
	struct uffd_region *r = NULL;
	size_t len = 8 * page_size();
	uint8_t *p;
	char *maps0;

	/*
	 * A first write fault before the snapshot: whatever the library
	 * sets up once per process is lifecycle's business, not ours.
	 */
	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_ANON, 1, NULL, &r), 0);
	poke(uffd_region_addr(r), 1);
	uffd_region_destroy(r);

	maps0 = maps_snapshot();
	ck_assert_ptr_nonnull(maps0);
	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_ANON, 8, NULL, &r), 0);
	p = uffd_region_addr(r);
	poke(p, 1);
	ck_assert_uint_eq(peek(p + page_size()), 0);
	/* Destroy without unregistering first does both. */
	uffd_region_destroy(r);
	ck_assert_int_eq(mapped_pages(p, len), 0);
	assert_maps_unchanged(maps0);
}
END_TEST

START_TEST(ctx_destroy_takes_regions)
{
	struct uffd_ctx *c = NULL;
	struct uffd_region *r1 = NULL, *r2 = NULL;
	int fds0 = count_fds();
	uint8_t *p1, *p2;

	ck_assert_int_eq(uffd_ctx_create(&c, NULL), 0);
	ck_assert_int_eq(uffd_ctx_start(c), 0);
	ck_assert_int_eq(make_region(c, LIBUFFD_MEM_ANON, 4, NULL, &r1), 0);
	ck_assert_int_eq(make_region(c, LIBUFFD_MEM_MEMFD, 4, NULL, &r2), 0);
	p1 = uffd_region_addr(r1);
	p2 = uffd_region_addr(r2);
	poke(p1, 1);
	poke(p2, 2);
	/* Regions still alive are destroyed with their context. */
	uffd_ctx_destroy(c);
	ck_assert_int_eq(mapped_pages(p1, 4 * page_size()), 0);
	ck_assert_int_eq(mapped_pages(p2, 4 * page_size()), 0);
	ck_assert_int_eq(count_fds(), fds0);
}
END_TEST

START_TEST(destroy_null)
{
	uffd_region_destroy(NULL);
	uffd_ctx_destroy(NULL);
}
END_TEST

START_TEST(adopt)
{
	struct uffd_region_opts o = { .size = sizeof(o) };
	struct uffd_region *r = NULL;
	size_t ps = page_size();
	uint8_t *p = map_anon(8);

	/* Page 0 is already present: it must keep its contents. */
	poke(p, 0x5a);
	o.type = LIBUFFD_MEM_ADOPT;
	o.addr = p;
	o.len = 8 * ps;
	o.pager = "zero";
	ck_assert_int_eq(uffd_region_create(ctx, &o, &r), 0);
	ck_assert_ptr_eq(uffd_region_addr(r), p);
	ck_assert_uint_eq(uffd_region_len(r), 8 * ps);
	ck_assert_int_eq(uffd_region_type(r), LIBUFFD_MEM_ADOPT);
	ck_assert_int_eq(uffd_region_memfd(r), -1);
	ck_assert_int_eq(vma_has_flag(p, "um"), 1);

	ck_assert_uint_eq(peek(p), 0x5a);
	ck_assert_uint_eq(peek(p + ps), 0);
	poke(p + 2 * ps, 0x33);
	ck_assert_uint_eq(peek(p + 2 * ps), 0x33);
	ck_assert_int_ge(wait_region_stat(r, STAT_OFF(faults_write), 1,
					  TEST_WAIT_MS), 1);
	/* Page 0 was present: two faults, not three. */
	ck_assert_uint_eq(region_faults(r), 2);

	uffd_region_destroy(r);
	/* Not ours to unmap: still mapped, contents kept, unregistered. */
	ck_assert_int_eq(mapped_pages(p, 8 * ps), 8);
	ck_assert_int_eq(vma_has_flag(p, "um"), 0);
	ck_assert_uint_eq(peek(p), 0x5a);
	ck_assert_uint_eq(peek(p + 2 * ps), 0x33);
	ck_assert_uint_eq(peek(p + 7 * ps), 0);
	munmap(p, 8 * ps);
}
END_TEST

START_TEST(overlap)
{
	struct uffd_region_opts o = {
		.size = sizeof(o),
		.type = LIBUFFD_MEM_ADOPT,
		.pager = "zero",
	};
	struct uffd_region *r = NULL, *a = NULL, *b = NULL;
	size_t ps = page_size();
	uint8_t *p = map_anon(8);

	/* A live region on pages [2, 4). */
	o.addr = p + 2 * ps;
	o.len = 2 * ps;
	ck_assert_int_eq(uffd_region_create(ctx, &o, &r), 0);

	o.addr = p + 2 * ps;		/* the same range */
	expect_create_fails(&o, -EEXIST);
	o.addr = p;			/* [0, 3): its head */
	o.len = 3 * ps;
	expect_create_fails(&o, -EEXIST);
	o.addr = p + 3 * ps;		/* [3, 6): its tail */
	expect_create_fails(&o, -EEXIST);
	o.addr = p + 3 * ps;		/* [3, 4): inside */
	o.len = ps;
	expect_create_fails(&o, -EEXIST);
	o.addr = p;			/* [0, 8): around */
	o.len = 8 * ps;
	expect_create_fails(&o, -EEXIST);
	/* The failures registered nothing around the live region. */
	ck_assert_int_eq(vma_has_flag(p, "um"), 0);
	ck_assert_int_eq(vma_has_flag(p + 4 * ps, "um"), 0);
	ck_assert_int_eq(vma_has_flag(p + 2 * ps, "um"), 1);

	/* Neighbours that touch but do not overlap are fine. */
	o.addr = p;
	o.len = 2 * ps;
	ck_assert_int_eq(uffd_region_create(ctx, &o, &a), 0);
	o.addr = p + 4 * ps;
	o.len = 4 * ps;
	ck_assert_int_eq(uffd_region_create(ctx, &o, &b), 0);
	ck_assert_uint_eq(peek(p + ps), 0);
	ck_assert_uint_eq(peek(p + 4 * ps), 0);
	ck_assert_int_ge(wait_region_stat(a, STAT_OFF(faults_read), 1,
					  TEST_WAIT_MS), 1);
	ck_assert_int_ge(wait_region_stat(b, STAT_OFF(faults_read), 1,
					  TEST_WAIT_MS), 1);
	/* Each fault went to the region that holds it. */
	ck_assert_uint_eq(region_faults(r), 0);

	/* Once destroyed, its range can be taken again. */
	uffd_region_destroy(r);
	o.addr = p + 2 * ps;
	o.len = 2 * ps;
	r = NULL;
	ck_assert_int_eq(uffd_region_create(ctx, &o, &r), 0);
	uffd_region_destroy(r);
	uffd_region_destroy(a);
	uffd_region_destroy(b);
	munmap(p, 8 * ps);
}
END_TEST

START_TEST(bad_geometry)
{
	struct uffd_region_opts o = { .size = sizeof(o), .pager = "zero" };
	size_t ps = page_size();
	uint8_t *p = map_anon(4);

	o.type = LIBUFFD_MEM_ANON;
	o.len = 0;
	expect_create_fails(&o, -EINVAL);
	o.len = ps + 1;
	expect_create_fails(&o, -EINVAL);
	o.len = ps - 1;
	expect_create_fails(&o, -EINVAL);
	o.type = LIBUFFD_MEM_MEMFD;
	o.len = 3 * ps / 2;
	expect_create_fails(&o, -EINVAL);

	o.type = LIBUFFD_MEM_ADOPT;
	o.addr = p + 1;
	o.len = ps;
	expect_create_fails(&o, -EINVAL);
	o.addr = p + ps / 2;
	expect_create_fails(&o, -EINVAL);
	o.addr = p;
	o.len = 0;
	expect_create_fails(&o, -EINVAL);
	o.len = 2 * ps + 8;
	expect_create_fails(&o, -EINVAL);
	o.addr = NULL;
	o.len = ps;
	expect_create_fails(&o, -EINVAL);
	ck_assert_int_eq(vma_has_flag(p, "um"), 0);
	munmap(p, 4 * ps);
}
END_TEST

START_TEST(bad_opts)
{
	static const struct uffd_pager_ops no_fault = {
		.version = LIBUFFD_PAGER_OPS_VERSION,
		.name = "no-fault",
		.init = NULL,
	};
	struct uffd_region_opts o = {
		.size = sizeof(o),
		.type = LIBUFFD_MEM_ANON,
		.len = page_size(),
		.pager = "zero",
	};
	struct uffd_region *r = NULL;

	ck_assert_int_eq(uffd_region_create(ctx, NULL, &r), -EINVAL);
	ck_assert_int_eq(uffd_region_create(ctx, &o, NULL), -EINVAL);
	ck_assert_int_eq(uffd_region_create(NULL, &o, &r), -EINVAL);
	ck_assert_ptr_null(r);
	o.size = 0;
	expect_create_fails(&o, -EINVAL);
	o.size = sizeof(o);
	o.type = (enum uffd_mem_type)42;
	expect_create_fails(&o, -EINVAL);
	o.type = LIBUFFD_MEM_ANON;
	/* An ops table without its required hooks. */
	o.pager = NULL;
	o.ops = &no_fault;
	expect_create_fails(&o, -EINVAL);
}
END_TEST

START_TEST(bad_ops_version)
{
	static const struct uffd_pager_ops *zero;
	struct uffd_pager_ops ops;
	struct uffd_region_opts o = {
		.size = sizeof(o),
		.type = LIBUFFD_MEM_ANON,
		.len = page_size(),
		.ops = &ops,
	};

	zero = uffd_pager_find("zero");
	ck_assert_ptr_nonnull(zero);
	memcpy(&ops, zero, sizeof(ops));
	ops.version = 0;
	expect_create_fails(&o, -EINVAL);
	ops.version = LIBUFFD_PAGER_OPS_VERSION + 1;
	expect_create_fails(&o, -EINVAL);
	ops.version = LIBUFFD_PAGER_OPS_VERSION;
	ops.fault = NULL;
	expect_create_fails(&o, -EINVAL);
}
END_TEST

/*
 * Four pages with the second one missing, far from where mmap() (or a
 * sanitizer's allocator) puts things, so nothing else fills the hole
 * before the library looks at it.
 */
static uint8_t *map_with_hole(void)
{
	uint8_t *hint = (uint8_t *)(uintptr_t)0x4f0000000000ULL, *p;
	size_t ps = page_size();

	p = mmap(hint, 4 * ps, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (p != hint) {
		if (p != MAP_FAILED)
			munmap(p, 4 * ps);
		p = map_anon(4);
	}
	ck_assert_int_eq(munmap(p + ps, ps), 0);
	return p;
}

START_TEST(adopt_unmapped)
{
	struct uffd_region_opts o = {
		.size = sizeof(o),
		.type = LIBUFFD_MEM_ADOPT,
		.len = 4 * page_size(),
		.pager = "zero",
	};
	struct uffd_region *r = NULL;
	int ret, fds = count_fds();
	uint8_t *p = map_with_hole();
	char *maps0;

	/*
	 * A hole in the middle: not one mapping.  The kernel registers such
	 * a range (6.18 does), so the library has to refuse it itself.
	 */
	ck_assert_int_eq(mapped_pages(p, 4 * page_size()), 3);
	o.addr = p;
	maps0 = maps_snapshot();
	clear_last_error();
	ret = uffd_region_create(ctx, &o, &r);
	ck_assert_msg(ret == -EINVAL || ret == -ENOMEM, "got %d", ret);
	ck_assert_ptr_null(r);
	ck_assert(*uffd_last_error());
	assert_maps_unchanged(maps0);
	ck_assert_int_eq(count_fds(), fds);
	ck_assert_int_eq(vma_has_flag(p, "um"), 0);
	ck_assert_int_eq(vma_has_flag(p + 2 * page_size(), "um"), 0);

	/* Once whole, the same range is accepted: nothing kept a claim. */
	ck_assert_ptr_eq(mmap(p + page_size(), page_size(),
			      PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0),
			 p + page_size());
	ck_assert_int_eq(uffd_region_create(ctx, &o, &r), 0);
	ck_assert_uint_eq(peek(p + page_size()), 0);
	ck_assert_int_eq(wait_region_stat(r, STAT_OFF(faults_read), 1,
					  TEST_WAIT_MS), 1);
	uffd_region_destroy(r);
	munmap(p, 4 * page_size());
}
END_TEST

static const char *const bad_specs[] = {
	"nope", "zero:", "zero:x=1", ":", "zero:=", "", "zero:,", "zero:=1",
	"zero:x", "zero:x=1,x=1",
};

START_TEST(bad_spec)
{
	struct uffd_region_opts o = {
		.size = sizeof(o),
		.type = LIBUFFD_MEM_ANON,
		.len = 4 * page_size(),
	};
	const char *spec = bad_specs[_i];

	o.pager = spec;
	expect_create_fails(&o, -EINVAL);
	/* Same answer without creating anything. */
	clear_last_error();
	ck_assert_int_eq(uffd_pager_spec_check(spec, 0), -EINVAL);
	ck_assert_msg(*uffd_last_error(), "no reason for \"%s\"", spec);
	/* The same spec also fails for an adopted mapping, which stays. */
	o.type = LIBUFFD_MEM_ADOPT;
	o.addr = map_anon(4);
	expect_create_fails(&o, -EINVAL);
	ck_assert_int_eq(vma_has_flag(o.addr, "um"), 0);
	munmap(o.addr, 4 * page_size());
}
END_TEST

START_TEST(good_spec)
{
	struct uffd_region *r = NULL;
	const struct uffd_pager_ops *const *list;
	int i, found = 0;

	ck_assert_int_eq(uffd_pager_spec_check("zero", 0), 0);
	ck_assert_int_eq(uffd_pager_spec_check("zero", page_size()), 0);
	ck_assert_ptr_nonnull(uffd_pager_find("zero"));
	ck_assert_str_eq(uffd_pager_find("zero")->name, "zero");
	ck_assert_ptr_null(uffd_pager_find("nope"));
	ck_assert_ptr_null(uffd_pager_find(""));
	list = uffd_pager_list();
	ck_assert_ptr_nonnull(list);
	for (i = 0; list[i]; i++) {
		ck_assert_ptr_eq(uffd_pager_find(list[i]->name), list[i]);
		found += !strcmp(list[i]->name, "zero");
	}
	ck_assert_int_eq(found, 1);
	/* A NULL spec means "zero". */
	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_ANON, 1, NULL, &r), 0);
	ck_assert_str_eq(uffd_region_pager_name(r), "zero");
	uffd_region_destroy(r);
}
END_TEST

START_TEST(opts_prefix)
{
	struct uffd_region_opts o;
	struct uffd_region *r = NULL;

	/* An older caller's struct ends before .ops: the rest is ignored. */
	memset(&o, 0, sizeof(o));
	o.size = offsetof(struct uffd_region_opts, ops);
	o.type = LIBUFFD_MEM_ANON;
	o.len = 2 * page_size();
	o.pager = "zero";
	o.ops = (const struct uffd_pager_ops *)(uintptr_t)0x1;
	o.args = "junk";
	ck_assert_int_eq(uffd_region_create(ctx, &o, &r), 0);
	ck_assert_str_eq(uffd_region_pager_name(r), "zero");
	ck_assert_uint_eq(peek(uffd_region_addr(r)), 0);
	ck_assert_int_eq(wait_region_stat(r, STAT_OFF(faults_read), 1,
					  TEST_WAIT_MS), 1);
	uffd_region_destroy(r);
}
END_TEST

START_TEST(unregister_twice)
{
	struct uffd_region *r = NULL;

	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_ANON, 2, NULL, &r), 0);
	ck_assert_int_eq(uffd_region_unregister(r), 0);
	ck_assert_int_eq(uffd_region_unregister(r), -EALREADY);
	ck_assert_int_eq(vma_has_flag(uffd_region_addr(r), "um"), 0);
	/* Still usable memory, served by the kernel. */
	poke(uffd_region_addr(r), 4);
	ck_assert_uint_eq(peek(uffd_region_addr(r)), 4);
	ck_assert_uint_eq(region_faults(r), 0);
	uffd_region_destroy(r);
}
END_TEST

START_TEST(accessors)
{
	struct uffd_region *r = NULL, *m = NULL;
	struct uffd_region_opts o = {
		.size = sizeof(o),
		.type = LIBUFFD_MEM_MEMFD,
		.len = 3 * page_size(),
		.pager = "zero",
	};

	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_ANON, 5, "zero", &r), 0);
	ck_assert_ptr_nonnull(uffd_region_addr(r));
	ck_assert_uint_eq(uffd_region_len(r), 5 * page_size());
	ck_assert_uint_eq(uffd_region_page_size(r), page_size());
	ck_assert_int_eq(uffd_region_type(r), LIBUFFD_MEM_ANON);
	ck_assert_str_eq(uffd_region_pager_name(r), "zero");
	ck_assert_int_eq(uffd_region_memfd(r), -1);
	ck_assert_int_eq(uffd_region_gone(r), 0);
	ck_assert_ptr_eq(uffd_region_ctx(r), ctx);

	ck_assert_int_eq(uffd_region_create(ctx, &o, &m), 0);
	ck_assert_uint_eq(uffd_region_len(m), 3 * page_size());
	ck_assert_int_eq(uffd_region_type(m), LIBUFFD_MEM_MEMFD);
	ck_assert_int_ge(uffd_region_memfd(m), 0);
	ck_assert_uint_eq(uffd_region_page_size(m), page_size());
	/* Distinct regions do not share memory. */
	ck_assert_ptr_ne(uffd_region_addr(m), uffd_region_addr(r));
	uffd_region_destroy(m);
	uffd_region_destroy(r);
}
END_TEST

static Suite *region_suite(void)
{
	Suite *s = suite_create("region");
	TCase *tc = add_tcase(s, "lifecycle", ctx_setup, ctx_teardown);

	tcase_add_test(tc, lifecycle);
	tcase_add_test(tc, destroy_registered);
	tcase_add_test(tc, ctx_destroy_takes_regions);
	tcase_add_test(tc, destroy_null);
	tcase_add_test(tc, adopt);
	tcase_add_test(tc, unregister_twice);
	tcase_add_test(tc, opts_prefix);
	tcase_add_test(tc, accessors);

	tc = add_tcase(s, "errors", ctx_setup, ctx_teardown);
	tcase_add_test(tc, overlap);
	tcase_add_test(tc, adopt_unmapped);
	tcase_add_test(tc, bad_geometry);
	tcase_add_test(tc, bad_opts);
	tcase_add_test(tc, bad_ops_version);
	tcase_add_loop_test(tc, bad_spec, 0, ARRAY_SIZE(bad_specs));
	tcase_add_test(tc, good_spec);
	return s;
}

int main(void)
{
	require_kernel(LIBUFFD_FEATURE_MISSING_SHMEM, 0);
	return run_suite(region_suite());
}
