/* SPDX-License-Identifier: MIT */
/*
 * Pager specs of the built-in pagers: every malformed spec is -EINVAL
 * with a readable reason, through uffd_region_create() and through
 * uffd_pager_spec_check() alike, and leaves nothing behind; every valid
 * one is accepted by both.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include <check.h>

#include "helpers.h"

static const char *const bad_specs[] = {
	/* prealloc */
	"prealloc:batch=0",
	"prealloc:batch=4097",
	"prealloc:batch=x",
	"prealloc:batch=-1",
	"prealloc:batch=8k",		/* 8192 */
	"prealloc:batch=16x",
	"prealloc:batch= 16",
	"prealloc:batch=99999999999999999999999",
	"prealloc:bogus=1",
	"prealloc:window=sideways",
	"prealloc:window=Aligned",
	"prealloc:batch=",
	"prealloc:window=",
	"prealloc:=4",
	"prealloc:",
	"prealloc:batch",
	"prealloc:batch=8,",
	"prealloc:,batch=8",
	"prealloc:batch=8,,window=forward",
	"prealloc:batch=8,batch=8",
	"prealloc:window=forward,window=aligned",
	/* prezero */
	"prezero:pool=0",
	"prezero:pool=x",
	"prezero:pool=2000000",
	"prezero:batch=0",
	"prezero:batch=4097",
	"prezero:batch=64,pool=32",	/* not one batch */
	"prezero:low=10,high=5",
	"prezero:low=5,high=5",
	"prezero:pool=64,high=65",
	"prezero:pool=64,low=64",
	"prezero:high=0",
	"prezero:pool=",
	"prezero:pool=8,pool=8",
	"prezero:window=forward",
	"prezero:bogus=1",
	/* hugezero */
	"hugezero:extent=3M",
	"hugezero:extent=0",
	"hugezero:extent=1000",		/* below a page */
	"hugezero:extent=6000",		/* not a multiple of the page */
	"hugezero:extent=12K",
	"hugezero:extent=2G",
	"hugezero:extent=",
	"hugezero:nohzp=2",
	"hugezero:nohzp=yes",
	"hugezero:nohzp=",
	"hugezero:nohzp=1,nohzp=1",
	"hugezero:batch=4",
	/* names */
	"prealloc batch=4",
	"prealloc:batch=0x20",
	"Prealloc:batch=4",
	":batch=4",
};

static const char *const good_specs[] = {
	"prealloc",
	"prealloc:batch=1",
	"prealloc:batch=4096",
	"prealloc:batch=4K",
	"prealloc:batch=010",
	"prealloc:batch=32,window=forward",
	"prealloc:window=aligned,batch=7",
	"prealloc:window=forward",
	"prezero",
	"prezero:pool=1",
	"prezero:batch=16,pool=256",
	"prezero:batch=4,pool=64,low=8,high=32",
	"prezero:pool=64,low=0,high=1",
	"prezero:pool=64,high=64",
	"prezero:batch=4096,pool=4096",
	"hugezero",
	"hugezero:nohzp=0",
	"hugezero:nohzp=1",
	"hugezero:extent=2M",
	"hugezero:extent=4K",
	"hugezero:extent=64K,nohzp=1",
	"hugezero:extent=1G",
};

static int create(const char *spec, struct uffd_region **r)
{
	struct uffd_region_opts o = {
		.size = sizeof(o), .type = LIBUFFD_MEM_ANON,
		.len = 2u << 20, .pager = spec,
	};

	*r = NULL;
	return uffd_region_create(ctx, &o, r);
}

START_TEST(test_bad_spec_create)
{
	const char *spec = bad_specs[_i];
	struct uffd_region *r;
	int fds = count_fds();

	uffd_set_error("%s", "");
	ck_assert_msg(create(spec, &r) == -EINVAL, "\"%s\" accepted", spec);
	ck_assert_ptr_null(r);
	ck_assert_msg(strlen(uffd_last_error()) > 0, "\"%s\": no reason",
		      spec);
	ck_assert_int_eq(count_fds(), fds);
	/* the range is free again: a good region fits */
	ck_assert_int_eq(create("zero", &r), 0);
	uffd_region_destroy(r);
}
END_TEST

START_TEST(test_bad_spec_check)
{
	const char *spec = bad_specs[_i];
	int fds = count_fds();

	uffd_set_error("%s", "");
	ck_assert_msg(uffd_pager_spec_check(spec, 0) == -EINVAL,
		      "\"%s\" accepted", spec);
	ck_assert_msg(strlen(uffd_last_error()) > 0, "\"%s\": no reason",
		      spec);
	ck_assert_int_eq(count_fds(), fds);
}
END_TEST

START_TEST(test_good_spec)
{
	const char *spec = good_specs[_i];
	const char *colon = strchr(spec, ':');
	size_t n = colon ? (size_t)(colon - spec) : strlen(spec);
	struct uffd_region *r;
	int ret;

	ret = uffd_pager_spec_check(spec, 0);
	ck_assert_msg(ret == 0, "check \"%s\": %d (%s)", spec, ret,
		      uffd_last_error());
	ret = create(spec, &r);
	ck_assert_msg(ret == 0, "create \"%s\": %d (%s)", spec, ret,
		      uffd_last_error());
	ck_assert(!strncmp(uffd_region_pager_name(r), spec, n));
	ck_assert_uint_eq(strlen(uffd_region_pager_name(r)), n);
	uffd_region_destroy(r);
}
END_TEST

/* The reasons name what is wrong. */
START_TEST(test_reasons_are_specific)
{
	static const struct {
		const char *spec, *word;
	} cases[] = {
		{ "prealloc:batch=4097", "batch" },
		{ "prealloc:bogus=1", "bogus" },
		{ "prealloc:window=sideways", "sideways" },
		{ "prealloc:batch=8,batch=8", "batch" },
		{ "prezero:low=10,high=5", "low" },
		{ "prezero:batch=64,pool=32", "pool" },
		{ "hugezero:extent=3M", "extent" },
		{ "hugezero:nohzp=2", "nohzp" },
	};
	struct uffd_region *r;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		ck_assert_int_eq(create(cases[i].spec, &r), -EINVAL);
		ck_assert_msg(strstr(uffd_last_error(), cases[i].word),
			      "\"%s\": reason \"%s\"", cases[i].spec,
			      uffd_last_error());
		ck_assert_int_eq(uffd_pager_spec_check(cases[i].spec, 0),
				 -EINVAL);
		ck_assert_msg(strstr(uffd_last_error(), cases[i].word),
			      "check \"%s\": reason \"%s\"", cases[i].spec,
			      uffd_last_error());
	}
}
END_TEST

/* The same checks apply to a caller's ops table with an args string. */
START_TEST(test_ops_with_args)
{
	static const struct {
		const char *name, *args;
		int ret;
	} cases[] = {
		{ "prealloc", "batch=0", -EINVAL },
		{ "prealloc", "batch=8,window=forward", 0 },
		{ "prezero", "low=10,high=5", -EINVAL },
		{ "prezero", "batch=2,pool=8", 0 },
		{ "hugezero", "extent=3M", -EINVAL },
		{ "hugezero", NULL, 0 },
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		struct uffd_region_opts o = {
			.size = sizeof(o), .type = LIBUFFD_MEM_ANON,
			.len = 64 * page_size(),
			.ops = uffd_pager_find(cases[i].name),
			.args = cases[i].args,
		};
		struct uffd_region *r = NULL;

		ck_assert_ptr_nonnull(o.ops);
		ck_assert_int_eq(uffd_region_create(ctx, &o, &r),
				 cases[i].ret);
		if (cases[i].ret)
			ck_assert_ptr_null(r);
		uffd_region_destroy(r);
	}
}
END_TEST

/* The pagers are listed, findable, and well formed. */
START_TEST(test_builtin_table)
{
	static const char *const names[] = { "prealloc", "prezero",
					      "hugezero" };
	const struct uffd_pager_ops *const *list = uffd_pager_list();
	size_t i, j;

	for (i = 0; i < ARRAY_SIZE(names); i++) {
		const struct uffd_pager_ops *ops = uffd_pager_find(names[i]);
		bool listed = false;

		ck_assert_ptr_nonnull(ops);
		ck_assert_str_eq(ops->name, names[i]);
		ck_assert_uint_eq(ops->version, LIBUFFD_PAGER_OPS_VERSION);
		ck_assert_ptr_nonnull(ops->init);
		ck_assert_ptr_nonnull(ops->fault);
		for (j = 0; list[j]; j++)
			listed |= list[j] == ops;
		ck_assert(listed);
	}
	ck_assert_ptr_null(uffd_pager_find("prealloc:batch=4"));
}
END_TEST

/* Specs that depend on the region: hugetlb-sized pages, tiny regions. */
START_TEST(test_region_dependent)
{
	struct uffd_region_opts o = {
		.size = sizeof(o), .type = LIBUFFD_MEM_ANON,
		.len = page_size(), .pager = "hugezero:extent=1G",
	};
	struct uffd_region *r = NULL;

	/* an extent bigger than the region is just one clipped extent */
	ck_assert_int_eq(uffd_region_create(ctx, &o, &r), 0);
	uffd_region_destroy(r);
	o.pager = "prealloc:batch=4096";
	ck_assert_int_eq(uffd_region_create(ctx, &o, &r), 0);
	uffd_region_destroy(r);
	ck_assert_int_eq(uffd_pager_spec_check("prezero:pool=1", page_size()),
			 0);
	ck_assert_int_eq(uffd_pager_spec_check("prezero:pool=0", page_size()),
			 -EINVAL);
}
END_TEST

static Suite *specs_suite(void)
{
	Suite *s = suite_create("specs");
	TCase *tc = add_tcase(s, "bad", ctx_setup_stopped, ctx_teardown);

	tcase_add_loop_test(tc, test_bad_spec_create, 0, ARRAY_SIZE(bad_specs));
	tcase_add_loop_test(tc, test_bad_spec_check, 0, ARRAY_SIZE(bad_specs));
	tcase_add_test(tc, test_reasons_are_specific);

	tc = add_tcase(s, "good", ctx_setup_stopped, ctx_teardown);
	tcase_add_loop_test(tc, test_good_spec, 0, ARRAY_SIZE(good_specs));
	tcase_add_test(tc, test_ops_with_args);
	tcase_add_test(tc, test_builtin_table);
	tcase_add_test(tc, test_region_dependent);
	return s;
}

int main(void)
{
	require_kernel(0, 0);
	return run_suite(specs_suite());
}
